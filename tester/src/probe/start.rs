//! One start attempt, the IO half of the core's [`Output::Start`]: `lvt_gateway::start` with
//! the probe's options, and the trust-on-first-use check of the orchestrator's certificate.
//!
//! [`Output::Start`]: lvt_gateway::session::Output::Start

use std::sync::Arc;

use lvt_gateway::session::{StartFailure, StartInfo};
use lvt_gateway::start::{JobRequest, StartedJob};
use lvt_wire::live::OrchestratorUri;
use lvt_wire::payment::SpendMeter;

use super::ProbeOptions;

/// GetOrchestrator then job start on `target` with `opts`; an orchestrator presenting another
/// certificate than the one trusted for it is refused when `opts` says so.
pub(crate) async fn start_job(
    opts: &ProbeOptions,
    target: &OrchestratorUri,
    http: &reqwest::Client,
    session_id: &str,
    spent: Arc<SpendMeter>,
) -> (StartInfo, Result<StartedJob, StartFailure>) {
    let stream_id = lvt_gateway::session::stream_id(session_id);
    let request = JobRequest {
        gateway_address: opts.gateway_address,
        payment: &opts.payment,
        model_id: &opts.model_id,
        params: &opts.params,
        session_id,
        stream_id: &stream_id,
        grpc_timeout: opts.timeouts.grpc,
        start_timeout: opts.timeouts.start,
    };
    let uri = target.to_string();
    lvt_gateway::start::start_job(&request, target, http, spent, |seen| {
        match &opts.refuse_changed_certificates {
            Some(trusted) => crate::run::trust::check_unchanged(trusted, &uri, seen),
            None => Ok(()),
        }
    })
    .await
}
