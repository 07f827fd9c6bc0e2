//! One start attempt, the IO half of the core's [`Output::Start`]: GetOrchestrator, the
//! payment and the job start, each failure typed here, at the protocol edge, as a
//! [`StartFailure`].
//!
//! [`Output::Start`]: lvt_gateway::session::Output::Start

use std::sync::Arc;

use lvt_gateway::session::{JobRefusal, StartFailure, StartInfo, is_busy_text, stream_id};
use lvt_schema::{Gpu, OrchestratorRef};
use lvt_wire::grpc::{self, OrchestratorClient};
use lvt_wire::live::{self, JobUrls, LiveVideoToVideoRequest, OrchestratorUri};
use lvt_wire::payment::{self, Payer, SpendMeter};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Clock, ProbeOptions};

/// A job the orchestrator accepted: its trickle URLs and the guard of its payment loop.
pub(crate) struct StartedJob {
    pub urls: JobUrls,
    /// Pays the orchestrator every 5 s while the job runs (on chain; offchain the loop ends at
    /// once). Dropping the guard stops the loop, so the holder keeps it for the job's life.
    pub payments: DropGuard,
}

impl StartedJob {
    /// A job started by someone else: its URLs are known and nobody pays for it here.
    pub(crate) fn given(urls: JobUrls) -> Self {
        Self {
            urls,
            payments: CancellationToken::new().drop_guard(),
        }
    }
}

/// GetOrchestrator then job start on `target`, paid through the remote signer when one is
/// configured (every payment counted into `spent`). What was learnt is returned whether or not
/// the job started.
pub(crate) async fn start_job(
    opts: &ProbeOptions,
    target: &OrchestratorUri,
    http: &reqwest::Client,
    clock: &Clock,
    session_id: &str,
    spent: Arc<SpendMeter>,
) -> (StartInfo, Result<StartedJob, StartFailure>) {
    let mut info = StartInfo {
        orchestrator: None,
        ..StartInfo::default()
    };
    let result = attempt(opts, target, http, clock, session_id, spent, &mut info).await;
    (info, result)
}

async fn attempt(
    opts: &ProbeOptions,
    target: &OrchestratorUri,
    http: &reqwest::Client,
    clock: &Clock,
    session_id: &str,
    spent: Arc<SpendMeter>,
    found: &mut StartInfo,
) -> Result<StartedJob, StartFailure> {
    let mut orch_req = grpc::live_request(opts.gateway_address, None);
    payment::sign_orchestrator_request(&opts.payment, http, &mut orch_req)
        .await
        .map_err(|e| StartFailure::Signer {
            detail: e.to_string(),
        })?;
    let t = clock.now_us();
    let answer = tokio::time::timeout(opts.timeouts.grpc, async {
        let mut client = OrchestratorClient::connect(target, opts.timeouts.grpc).await?;
        let fingerprint = client.cert_fingerprint();
        let info = client.get_orchestrator(orch_req.clone()).await?;
        Ok::<_, grpc::GrpcError>((info, fingerprint, client))
    })
    .await;
    let (info, fingerprint, client) = match answer {
        Err(_) => {
            return Err(StartFailure::GrpcTimeout {
                timeout: opts.timeouts.grpc,
            });
        }
        Ok(Err(e)) => {
            let detail = e.to_string();
            return Err(StartFailure::Grpc {
                busy: is_busy_text(&detail),
                detail,
            });
        }
        Ok(Ok(v)) => v,
    };
    found.get_orchestrator_ms = Some(ms_since(clock, t));
    let summary = grpc::summarize(&info);
    found.orchestrator = Some(OrchestratorRef {
        address: summary.eth_address.clone(),
        uri: target.to_string(),
        cert_sha256: fingerprint,
        cert_trust: None,
        address_check: None,
    });
    if let Some(trusted) = &opts.refuse_changed_certificates {
        let seen = found
            .orchestrator
            .as_ref()
            .and_then(|o| o.cert_sha256.as_deref());
        crate::run::trust::check_unchanged(trusted, &target.to_string(), seen)
            .map_err(|detail| StartFailure::CertificateChanged { detail })?;
    }
    found.gpu = summary.gpus.first().map(|g| Gpu {
        name: g.name.clone(),
        memory_bytes: u64::try_from(g.memory_total_bytes).ok().filter(|b| *b > 0),
    });
    if info.auth_token.is_none() {
        return Err(StartFailure::NoAuthToken);
    }
    let transcoder = if summary.transcoder_uri.is_empty() {
        target.to_string()
    } else {
        summary.transcoder_uri.clone()
    };
    let req = LiveVideoToVideoRequest {
        model_id: opts.model_id.clone(),
        params: opts.params.clone(),
        gateway_request_id: session_id.to_string(),
        stream_id: stream_id(session_id),
    };
    let mut payer = Payer::new(&opts.payment, http.clone(), info.clone())
        .with_refresher(payment::grpc_refresher(client, orch_req))
        .with_meter(spent);
    let headers = payer
        .job_headers()
        .await
        .map_err(|e| StartFailure::Payment {
            detail: e.to_string(),
        })?;
    let t = clock.now_us();
    let urls = live::start_job_with_headers(
        http,
        &transcoder,
        &headers.segment,
        &headers.payment,
        &req,
        opts.timeouts.start,
    )
    .await
    .map_err(|e| StartFailure::Job(JobRefusal::from_start_error(&e)))?;
    found.job_start_ms = Some(ms_since(clock, t));
    payer.set_manifest_id(urls.manifest_id.clone());
    let stop = CancellationToken::new();
    payment::spawn_loop(payer, transcoder, payment::PAYMENT_INTERVAL, stop.clone());
    Ok(StartedJob {
        urls,
        payments: stop.drop_guard(),
    })
}

fn ms_since(clock: &Clock, t_us: u64) -> f64 {
    clock.now_us().saturating_sub(t_us) as f64 / 1000.0
}
