//! One start attempt as a gateway makes it: GetOrchestrator, the payment and the job start,
//! each failure typed here, at the protocol edge, as a [`StartFailure`].
//!
//! The tester's sessions (`Output::Start` of the session core) and the relay of a simulated
//! gateway ([`crate::gateway::relay`]) both start jobs through [`start_job`].
//!
//! [`StartFailure`]: crate::session::StartFailure

use std::sync::Arc;
use std::time::Duration;

use lvt_schema::{Gpu, OrchestratorRef};
use lvt_wire::grpc::{self, OrchestratorClient};
use lvt_wire::live::{self, JobUrls, LiveVideoToVideoRequest, OrchestratorUri};
use lvt_wire::payment::{self, Payer, PaymentConfig, SpendMeter};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::session::{JobRefusal, StartFailure, StartInfo, is_busy_text};

/// What a job start asks for, and how long each step may take.
#[derive(Debug, Clone, Copy)]
pub struct JobRequest<'a> {
    /// The gateway's Ethereum address sent in GetOrchestrator (offchain it is not verified).
    pub gateway_address: [u8; 20],
    /// How the job is paid: offchain (an empty payment) or through a remote signer.
    pub payment: &'a PaymentConfig,
    pub model_id: &'a str,
    /// The pipeline params sent with the job start.
    pub params: &'a Value,
    /// The gateway's request id (`gateway_request_id`).
    pub session_id: &'a str,
    /// The job's `stream_id`: the stream's own id through a gateway, or one made from the
    /// session id ([`crate::session::stream_id`]) for lvt's sessions.
    pub stream_id: &'a str,
    /// Connecting and answering GetOrchestrator.
    pub grpc_timeout: Duration,
    /// The job start request.
    pub start_timeout: Duration,
}

/// A job the orchestrator accepted: its trickle URLs and the guard of its payment loop.
pub struct StartedJob {
    pub urls: JobUrls,
    /// Pays the orchestrator every 5 s while the job runs (on chain; offchain the loop ends at
    /// once). Dropping the guard stops the loop, so the holder keeps it for the job's life.
    pub payments: DropGuard,
}

impl StartedJob {
    /// A job started by someone else: its URLs are known and nobody pays for it here.
    pub fn given(urls: JobUrls) -> Self {
        Self {
            urls,
            payments: CancellationToken::new().drop_guard(),
        }
    }
}

/// GetOrchestrator then job start on `target`, paid through the remote signer when one is
/// configured (every payment counted into `spent`). `check_certificate` sees the fingerprint
/// of the certificate the orchestrator presented (`None` in plaintext) and may refuse it before
/// the job starts. What was learnt is returned whether or not the job started.
pub async fn start_job(
    request: &JobRequest<'_>,
    target: &OrchestratorUri,
    http: &reqwest::Client,
    spent: Arc<SpendMeter>,
    check_certificate: impl FnOnce(Option<&str>) -> Result<(), String>,
) -> (StartInfo, Result<StartedJob, StartFailure>) {
    let mut info = StartInfo {
        orchestrator: None,
        ..StartInfo::default()
    };
    let result = attempt(request, target, http, spent, check_certificate, &mut info).await;
    (info, result)
}

async fn attempt(
    request: &JobRequest<'_>,
    target: &OrchestratorUri,
    http: &reqwest::Client,
    spent: Arc<SpendMeter>,
    check_certificate: impl FnOnce(Option<&str>) -> Result<(), String>,
    found: &mut StartInfo,
) -> Result<StartedJob, StartFailure> {
    let mut orch_req = grpc::live_request(request.gateway_address, None);
    payment::sign_orchestrator_request(request.payment, http, &mut orch_req)
        .await
        .map_err(|e| StartFailure::Signer {
            detail: e.to_string(),
        })?;
    let t = Instant::now();
    let answer = tokio::time::timeout(request.grpc_timeout, async {
        let mut client = OrchestratorClient::connect(target, request.grpc_timeout).await?;
        let fingerprint = client.cert_fingerprint();
        let info = client.get_orchestrator(orch_req.clone()).await?;
        Ok::<_, grpc::GrpcError>((info, fingerprint, client))
    })
    .await;
    let (info, fingerprint, client) = match answer {
        Err(_) => {
            return Err(StartFailure::GrpcTimeout {
                timeout: request.grpc_timeout,
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
    found.get_orchestrator_ms = Some(ms_since(t));
    let summary = grpc::summarize(&info);
    found.orchestrator = Some(OrchestratorRef {
        address: summary.eth_address.clone(),
        uri: target.to_string(),
        cert_sha256: fingerprint,
        cert_trust: None,
        address_check: None,
    });
    let seen = found
        .orchestrator
        .as_ref()
        .and_then(|o| o.cert_sha256.as_deref());
    check_certificate(seen).map_err(|detail| StartFailure::CertificateChanged { detail })?;
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
        model_id: request.model_id.to_owned(),
        params: request.params.clone(),
        gateway_request_id: request.session_id.to_owned(),
        stream_id: request.stream_id.to_owned(),
    };
    let mut payer = Payer::new(request.payment, http.clone(), info.clone())
        .with_refresher(payment::grpc_refresher(client, orch_req))
        .with_meter(spent);
    let headers = payer
        .job_headers()
        .await
        .map_err(|e| StartFailure::Payment {
            detail: e.to_string(),
        })?;
    let t = Instant::now();
    let urls = live::start_job_with_headers(
        http,
        &transcoder,
        &headers.segment,
        &headers.payment,
        &req,
        request.start_timeout,
    )
    .await
    .map_err(|e| StartFailure::Job(JobRefusal::from_start_error(&e)))?;
    found.job_start_ms = Some(ms_since(t));
    payer.set_manifest_id(urls.manifest_id.clone());
    let stop = CancellationToken::new();
    payment::spawn_loop(payer, transcoder, payment::PAYMENT_INTERVAL, stop.clone());
    Ok(StartedJob {
        urls,
        payments: stop.drop_guard(),
    })
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_micros() as f64 / 1000.0
}
