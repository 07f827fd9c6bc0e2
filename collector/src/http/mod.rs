//! The HTTP edge: one handler module per group of routes, each parsing its request, calling the
//! application layer ([`crate::app`]) and answering with JSON or an RFC 7807 problem
//! ([`problem`]). Nothing below this module knows HTTP, and the Kafka consumer
//! ([`crate::kafka`]), its sibling edge, does not import it.
//!
//! [`ingest`] (`POST /v1/results`, and the signed-body reading every signed endpoint shares),
//! [`events`] (`POST` and `GET /v1/events`), [`fleet`] (`POST /v1/agents/heartbeat`), [`api`]
//! (the read endpoints, `/healthz`, `/metrics`), [`sla`] (the SLA, GPU and demand endpoints),
//! [`openapi`] (`/openapi.json`) and [`dashboard`] (the page at `/`).

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};

use crate::app::AppState;

pub mod api;
pub mod dashboard;
pub mod events;
pub mod fleet;
pub mod ingest;
pub mod openapi;
pub mod problem;
pub mod sla;

/// Every routed path with its handlers. [`router`] is built from this list and a test checks
/// that each path is in the OpenAPI document ([`openapi`]).
pub fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        (
            "/v1/results",
            post(ingest::handle_results_post).get(api::handle_results_get),
        ),
        (
            "/v1/events",
            post(events::handle_events_post).get(events::handle_events_get),
        ),
        ("/v1/batches/{id}", get(api::handle_batch_get)),
        ("/v1/agents", get(api::handle_agents_get)),
        ("/v1/agents/heartbeat", post(fleet::handle_heartbeat_post)),
        ("/v1/sla/compliance", get(sla::handle_compliance_get)),
        ("/v1/sla/orchestrators", get(sla::handle_orchestrators_get)),
        ("/v1/gpu/metrics", get(sla::handle_gpu_metrics_get)),
        ("/v1/network/demand", get(sla::handle_demand_get)),
        ("/healthz", get(api::handle_healthz)),
        ("/metrics", get(api::handle_metrics)),
        ("/openapi.json", get(openapi::handle_openapi_get)),
        ("/", get(dashboard::handle_dashboard_get)),
    ]
}

/// Every route of the collector.
pub fn router(state: Arc<AppState>) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers)
        })
        .fallback(api::handle_not_found)
        // The ingest handler enforces its own, configurable limit while streaming.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(api::cors))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_routed_path_is_documented() {
        let document = openapi::document();
        for (path, _) in routes() {
            assert!(
                document["paths"].get(path).is_some(),
                "{path} is routed but not in /openapi.json"
            );
        }
        let routed: Vec<&str> = routes().into_iter().map(|(path, _)| path).collect();
        for operation in openapi::OPERATIONS {
            assert!(
                routed.contains(&operation.path),
                "{} is documented but not routed",
                operation.path
            );
        }
    }
}
