//! Orchestrator side of `net.Orchestrator`: the generated service mounted as axum routes, so
//! that one router (and so one port) serves gRPC next to the orchestrator's HTTP endpoints.

use tonic::server::NamedService;
use tower::ServiceExt as _;

use super::proto::orchestrator_server::{Orchestrator, OrchestratorServer};

/// Routes `/net.Orchestrator/*` to `svc`. Merge the result with the HTTP routes:
/// `grpc_router(svc).merge(http_routes)`.
///
/// Unlike `tonic::service::Routes`, the router has no fallback of its own, so merging it with a
/// router that has one (for example a 404 handler) works. go-livepeer dispatches on
/// `content-type: application/grpc*`; dispatching on the path is equivalent because no HTTP
/// route of an orchestrator lives under `/net.Orchestrator/`.
pub fn grpc_router<S: Orchestrator>(svc: S) -> axum::Router {
    let service = OrchestratorServer::new(svc)
        .map_request(|req: http::Request<axum::body::Body>| req.map(tonic::body::Body::new));
    let path = format!(
        "/{}/{{*rest}}",
        <OrchestratorServer<S> as NamedService>::NAME
    );
    axum::Router::new().route_service(&path, service)
}
