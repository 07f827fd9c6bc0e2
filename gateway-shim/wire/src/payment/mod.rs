//! Paying orchestrators for live video-to-video jobs, the way go-livepeer's gateway does.
//!
//! Offchain (the default) a job start carries an empty `Livepeer-Payment` and the auth token
//! from `GetOrchestrator` in `Livepeer-Segment`, and nothing is paid afterwards. On-chain, lvt
//! never holds an Ethereum key: a **remote signer** (go-livepeer's `-remoteSigner` mode, see its
//! doc/signer-protocol.md) does every signature:
//!
//! 1. `POST {signer}/sign-orchestrator-info` gives the gateway address and signature that go
//!    into the `GetOrchestrator` request ([`SignerClient::sign_orchestrator_info`]).
//! 2. `POST {signer}/generate-live-payment` turns the orchestrator's `OrchestratorInfo` (its
//!    ticket parameters) and the signer's opaque state into the `Livepeer-Payment` and
//!    `Livepeer-Segment` values: once for the job start (the signer preloads 60 s of 720p30
//!    pixels) and then every 5 s for `POST {transcoder}/payment` ([`Payer`]).
//! 3. A signer answer **480** means the ticket parameters are stale: the gateway fetches a fresh
//!    `OrchestratorInfo` (`GetOrchestrator` again, through an [`InfoRefresher`]) and retries, up
//!    to [`MAX_REFRESH_RETRIES`] times.
//!
//! [`spawn_loop`] runs the 5 s payment loop as a task stopped by a cancellation token; its timing
//! core [`run_every`] takes the work as a closure so that the schedule is tested on paused time.
//! [`stand_in`] is a deterministic signer for tests.

pub mod signer;
pub mod stand_in;
pub mod value;

use std::time::Duration;

use futures::future::BoxFuture;
use prost::Message as _;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use signer::{SignerClient, SignerMaterial};
pub use value::{PaymentValue, ValueError, payment_value};

use crate::grpc::{OrchestratorClient, proto};
use crate::live::{PAYMENT_HEADER, SEGMENT_HEADER, payment_header_empty, segment_header};

/// Path of the orchestrator's payment endpoint under its service URI.
pub const PAYMENT_PATH: &str = "/payment";
/// How often a live job is paid for after its start (go-livepeer's `-livePaymentInterval`).
pub const PAYMENT_INTERVAL: Duration = Duration::from_secs(5);
/// How many times a 480 from the signer is answered with fresh orchestrator info before the
/// payment fails (go-livepeer and the Python gateway use a small fixed limit).
pub const MAX_REFRESH_RETRIES: u32 = 3;
/// The signer's job type for live video-to-video: it computes pixels from elapsed time.
pub const LIVE_PAYMENT_TYPE: &str = "lv2v";
/// How long one payment request to the orchestrator may take.
pub const PAYMENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How a gateway pays: offchain unless a remote signer is configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentConfig {
    /// The remote signer's base URL (`http://host:port`); `None` is offchain.
    pub signer_url: Option<reqwest::Url>,
}

/// The two headers that carry a payment, for a job start or a `POST /payment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentHeaders {
    /// `Livepeer-Payment`: base64 protobuf `net.Payment` (empty offchain).
    pub payment: String,
    /// `Livepeer-Segment`: base64 protobuf `net.SegData` carrying the auth token.
    pub segment: String,
}

/// Why a payment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The orchestrator's info has no auth token, which every job start needs.
    #[error("the orchestrator sent no auth token")]
    NoAuthToken,
    /// The signer answered with an error status other than 480.
    #[error("remote signer {endpoint} answered HTTP {status}: {body}")]
    Signer {
        /// The signer path called.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the error body.
        body: String,
    },
    /// The signer could not be reached or did not answer in time.
    #[error("remote signer {endpoint} unreachable: {error}")]
    SignerUnreachable {
        /// The signer path called.
        endpoint: &'static str,
        /// The transport error.
        error: String,
    },
    /// The signer's answer is not the expected JSON.
    #[error("remote signer {endpoint} answered unexpectedly: {detail}")]
    SignerAnswer {
        /// The signer path called.
        endpoint: &'static str,
        /// What is wrong with the answer.
        detail: String,
    },
    /// The signer still asked for a refresh (480) after every allowed refresh.
    #[error("remote signer still asks for fresh orchestrator info after {attempts} refresh(es)")]
    RefreshExhausted {
        /// Refreshes made.
        attempts: u32,
    },
    /// The signer asked for a refresh (480) but this payer cannot fetch orchestrator info.
    #[error("remote signer asks for fresh orchestrator info but no refresher is configured")]
    NoRefresher,
    /// Fetching fresh orchestrator info failed.
    #[error("refreshing orchestrator info failed: {0}")]
    Refresh(String),
    /// The orchestrator refused a payment.
    #[error("orchestrator payment answered HTTP {status}: {body}")]
    Orchestrator {
        /// The HTTP status (402 undecodable payment, 403 credentials, 400 processing).
        status: u16,
        /// The start of the error body.
        body: String,
    },
    /// The orchestrator's payment endpoint could not be reached.
    #[error("orchestrator payment request failed: {0}")]
    OrchestratorUnreachable(String),
}

/// Puts the remote signer's address and signature into a `GetOrchestrator` request; offchain
/// the request stays as it is (offchain orchestrators do not check `sig`). go-livepeer caches
/// this signature for the process, since it is static; a caller making many requests may keep
/// the [`SignerMaterial`] from [`SignerClient::sign_orchestrator_info`] and `apply` it instead.
pub async fn sign_orchestrator_request(
    config: &PaymentConfig,
    http: &reqwest::Client,
    request: &mut proto::OrchestratorRequest,
) -> Result<(), PaymentError> {
    if let Some(url) = &config.signer_url {
        SignerClient::new(url.clone(), http.clone())
            .sign_orchestrator_info()
            .await?
            .apply(request);
    }
    Ok(())
}

/// Fetches a fresh `OrchestratorInfo` (normally `GetOrchestrator` again) when the signer answers
/// 480. The error is a message: the payment error wraps it.
pub type InfoRefresher =
    Box<dyn FnMut() -> BoxFuture<'static, Result<proto::OrchestratorInfo, String>> + Send>;

/// An [`InfoRefresher`] that repeats `request` on `client`.
pub fn grpc_refresher(
    client: OrchestratorClient,
    request: proto::OrchestratorRequest,
) -> InfoRefresher {
    Box::new(move || {
        let mut client = client.clone();
        let request = request.clone();
        Box::pin(async move {
            client
                .get_orchestrator(request)
                .await
                .map_err(|e| e.to_string())
        })
    })
}

/// go-livepeer's `net.PaymentResult`, the body of a successful `POST /payment`: the
/// orchestrator's info with possibly updated ticket parameters. It is not part of the gRPC
/// service, so it is declared here rather than generated.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PaymentResult {
    /// The orchestrator's current info.
    #[prost(message, optional, tag = "16")]
    pub info: Option<proto::OrchestratorInfo>,
}

/// Pays one orchestrator for one job: the job start headers, then each periodic payment.
pub struct Payer {
    signer: Option<SignerClient>,
    info: proto::OrchestratorInfo,
    manifest_id: Option<String>,
    /// The signer's opaque state, sent back verbatim with the next request.
    state: Option<Value>,
    refresh: Option<InfoRefresher>,
    http: reqwest::Client,
    max_refresh_retries: u32,
    refreshes: u32,
    meter: Option<std::sync::Arc<SpendMeter>>,
}

/// What a session's payments are worth so far: every payment the signer generated for it
/// (the job start's and each periodic one), whether or not the orchestrator took it, since the
/// tickets were handed over. Shared by the payers of a session's jobs.
#[derive(Debug, Default)]
pub struct SpendMeter {
    spent: std::sync::Mutex<PaymentValue>,
}

impl SpendMeter {
    /// Adds one payment.
    pub fn add(&self, value: PaymentValue) {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        *spent = spent.saturating_add(value);
    }

    /// The total so far.
    pub fn spent(&self) -> PaymentValue {
        *self.spent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payer")
            .field("signer", &self.signer)
            .field("transcoder", &self.info.transcoder)
            .field("manifest_id", &self.manifest_id)
            .field("refreshes", &self.refreshes)
            .finish_non_exhaustive()
    }
}

impl Payer {
    /// A payer for the orchestrator that answered `info`. `http` talks to the signer and to the
    /// orchestrator's payment endpoint, so it must accept the orchestrator's self-signed
    /// certificate (see [`crate::live::insecure_http_client`]).
    pub fn new(
        config: &PaymentConfig,
        http: reqwest::Client,
        info: proto::OrchestratorInfo,
    ) -> Self {
        Self {
            signer: config
                .signer_url
                .clone()
                .map(|url| SignerClient::new(url, http.clone())),
            info,
            manifest_id: None,
            state: None,
            refresh: None,
            http,
            max_refresh_retries: MAX_REFRESH_RETRIES,
            refreshes: 0,
            meter: None,
        }
    }

    /// Counts every payment this payer generates into `meter`.
    pub fn with_meter(mut self, meter: std::sync::Arc<SpendMeter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Sets how fresh orchestrator info is fetched when the signer answers 480.
    pub fn with_refresher(mut self, refresh: InfoRefresher) -> Self {
        self.refresh = Some(refresh);
        self
    }

    /// True when a remote signer pays (on-chain), false offchain.
    pub fn is_onchain(&self) -> bool {
        self.signer.is_some()
    }

    /// The manifest id the signer ties its accounting to (the job's, once it started).
    pub fn set_manifest_id(&mut self, manifest_id: impl Into<String>) {
        self.manifest_id = Some(manifest_id.into());
    }

    /// The orchestrator info payments are made against (refreshed on 480 and by payment
    /// answers).
    pub fn info(&self) -> &proto::OrchestratorInfo {
        &self.info
    }

    /// How many times the orchestrator info was refreshed after a 480.
    pub fn refreshes(&self) -> u32 {
        self.refreshes
    }

    /// The headers of the next payment: offchain an empty payment and the auth token, on-chain
    /// whatever the signer generates (refreshing the orchestrator info on 480).
    pub async fn job_headers(&mut self) -> Result<PaymentHeaders, PaymentError> {
        let Some(signer) = self.signer.clone() else {
            let token = self
                .info
                .auth_token
                .as_ref()
                .ok_or(PaymentError::NoAuthToken)?;
            return Ok(PaymentHeaders {
                payment: payment_header_empty(),
                segment: segment_header(token),
            });
        };
        let mut refreshes = 0;
        loop {
            let request = signer::LivePaymentRequest {
                orchestrator: self.info.encode_to_vec(),
                manifest_id: self.manifest_id.clone(),
                state: self.state.clone(),
                payment_type: LIVE_PAYMENT_TYPE.to_owned(),
            };
            match signer.generate_live_payment(&request).await {
                Ok(answer) => {
                    self.state = Some(answer.state);
                    // A payment worth an unknown amount cannot be counted against a budget,
                    // and an orchestrator could not redeem it either: the signer is at fault.
                    let value =
                        payment_value(&answer.payment).map_err(|e| PaymentError::SignerAnswer {
                            endpoint: signer::GENERATE_LIVE_PAYMENT_PATH,
                            detail: e.to_string(),
                        })?;
                    if let Some(meter) = &self.meter {
                        meter.add(value);
                    }
                    let segment = match answer.seg_creds {
                        Some(creds) if !creds.is_empty() => creds,
                        // A signer may leave the credentials to the gateway; the auth token
                        // from GetOrchestrator is what they carry.
                        _ => segment_header(
                            self.info
                                .auth_token
                                .as_ref()
                                .ok_or(PaymentError::NoAuthToken)?,
                        ),
                    };
                    return Ok(PaymentHeaders {
                        payment: answer.payment,
                        segment,
                    });
                }
                Err(signer::GenerateError::RefreshSession) => {
                    if refreshes >= self.max_refresh_retries {
                        return Err(PaymentError::RefreshExhausted {
                            attempts: refreshes,
                        });
                    }
                    let refresh = self.refresh.as_mut().ok_or(PaymentError::NoRefresher)?;
                    let fresh = refresh().await.map_err(PaymentError::Refresh)?;
                    tracing::info!(
                        message = "Remote signer asked for fresh orchestrator info; refreshed.",
                        transcoder = %fresh.transcoder
                    );
                    self.info = fresh;
                    refreshes += 1;
                    self.refreshes += 1;
                }
                Err(signer::GenerateError::Payment(error)) => return Err(error),
            }
        }
    }

    /// One periodic payment: `POST {transcoder}/payment` with freshly generated headers. The
    /// orchestrator's answer may carry updated ticket parameters, which later payments use.
    /// Offchain this does nothing.
    pub async fn pay(&mut self, transcoder: &str) -> Result<(), PaymentError> {
        if !self.is_onchain() {
            return Ok(());
        }
        let headers = self.job_headers().await?;
        let url = format!("{}{PAYMENT_PATH}", transcoder.trim_end_matches('/'));
        let response = self
            .http
            .post(&url)
            .header(PAYMENT_HEADER, &headers.payment)
            .header(SEGMENT_HEADER, &headers.segment)
            .timeout(PAYMENT_REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| PaymentError::OrchestratorUnreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| PaymentError::OrchestratorUnreachable(e.to_string()))?;
        if status != 200 {
            return Err(PaymentError::Orchestrator {
                status,
                body: short_text(&body),
            });
        }
        // An answer that is not a PaymentResult still means the payment was taken; the current
        // ticket parameters stay in use until the signer asks for a refresh.
        if let Ok(PaymentResult { info: Some(info) }) = PaymentResult::decode(body.as_ref()) {
            if info.ticket_params.is_some() {
                self.info.ticket_params = info.ticket_params;
            }
            if info.price_info.is_some() {
                self.info.price_info = info.price_info;
            }
        }
        Ok(())
    }
}

/// The start of an error body as text, for messages.
pub(crate) fn short_text(body: &[u8]) -> String {
    const MAX_CHARS: usize = 300;
    String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(MAX_CHARS)
        .collect()
}

/// What a payment loop did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentLoopReport {
    /// Payments the orchestrator accepted.
    pub payments: u64,
    /// Payments that failed (signer or orchestrator); the loop goes on after each.
    pub failures: u64,
    /// The last failure, for the session's log.
    pub last_error: Option<String>,
}

/// The timing core of the payment loop: calls `tick` every `interval` (the first call one
/// interval after the start, because the job start carried the first payment) until `cancel`
/// fires. A tick that overruns delays the next one instead of bunching payments up.
pub async fn run_every<F, Fut>(
    interval: Duration,
    cancel: CancellationToken,
    mut tick: F,
) -> PaymentLoopReport
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), PaymentError>>,
{
    let mut report = PaymentLoopReport::default();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return report,
            _ = ticker.tick() => {}
        }
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => return report,
            result = tick() => result,
        };
        match result {
            Ok(()) => report.payments += 1,
            Err(error) => {
                tracing::warn!(message = "Live payment failed.", error = %error);
                report.failures += 1;
                report.last_error = Some(error.to_string());
            }
        }
    }
}

/// Spawns the payment loop of one job: [`Payer::pay`] to `transcoder` every `interval`
/// ([`PAYMENT_INTERVAL`] in go-livepeer) until `cancel` fires. Offchain the task ends at once
/// with an empty report, since nothing is paid.
pub fn spawn_loop(
    payer: Payer,
    transcoder: String,
    interval: Duration,
    cancel: CancellationToken,
) -> JoinHandle<PaymentLoopReport> {
    tokio::spawn(async move {
        if !payer.is_onchain() {
            return PaymentLoopReport::default();
        }
        // `run_every` keeps the closure across awaits, so each tick borrows the payer through
        // a shared lock rather than from the closure.
        let payer = std::sync::Arc::new(tokio::sync::Mutex::new(payer));
        run_every(interval, cancel, || {
            let payer = std::sync::Arc::clone(&payer);
            let transcoder = transcoder.clone();
            async move { payer.lock().await.pay(&transcoder).await }
        })
        .await
    })
}

#[cfg(test)]
mod tests;
