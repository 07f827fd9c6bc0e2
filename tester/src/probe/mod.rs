//! The probe engine: one live video-to-video session against one orchestrator, measured.
//!
//! A probe does what a gateway does (GetOrchestrator, job start, publish input, read output and
//! events, send control) and records every step on its own clock in a
//! [`SessionRecorder`](crate::measure::SessionRecorder). The driver here is thin: it owns the
//! sockets and timers; what the timings mean is decided by `measure` and `classify`.
//!
//! Every session ends in a [`SessionReport`] with a classified outcome: an orchestrator that
//! refuses, hangs, lies or crashes is a measurement, never an `Err`.
//!
//! The channel code (publishing the clip through an `InputSink`, reading output and events,
//! the control channel) is shared with [`network`], the driver of sessions run through network
//! selection: it feeds the same functions a recorder per orchestrator share and
//! `ChannelHooks` that report to its swap monitor; a direct probe passes `Unobserved`.

pub mod classify;
pub mod network;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lvt_gateway::grpc::{self, OrchestratorClient};
use lvt_gateway::live::{self, JobUrls, LiveVideoToVideoRequest, OrchestratorUri, StartJobError};
use lvt_gateway::payment::{self, Payer, PaymentConfig};
use lvt_gateway::trickle::{
    SegmentOutcome, SegmentWriter, TrickleError, TricklePublisher, TrickleSubscriber,
};
use lvt_media::ts::TsDemuxer;
use lvt_schema::{
    Complexity, Failure, FailureClass, Gpu, OrchestratorRef, Outcome, PromptRef, SessionReport,
};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use crate::encode::{Clip, Replayer};
use crate::measure::{MeasureConfig, SessionRecorder};
use classify::{Evidence, classify};

/// After publishing, the drain ends once output has been silent this long.
const DRAIN_IDLE: Duration = Duration::from_millis(1000);

/// H.264 in MPEG-TS (ISO/IEC 13818-1 stream_type 0x1B).
const STREAM_TYPE_H264: u8 = 0x1b;

/// How long each step of a session may take before it is classified as failed.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Connecting and answering GetOrchestrator.
    pub grpc: Duration,
    /// The job start request; go-livepeer's gateway gives it 5 s.
    pub start: Duration,
    /// From the first input frame sent to the first output frame.
    pub first_output: Duration,
    /// The longest gap in output once it started; go-livepeer swaps after 30 s.
    pub output_gap: Duration,
    /// The longest silence on the events channel; go-livepeer stops a job after 30 s.
    pub events: Duration,
    /// After the last input frame, how long to wait for its output.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            grpc: Duration::from_secs(5),
            start: Duration::from_secs(5),
            first_output: Duration::from_secs(20),
            output_gap: Duration::from_secs(30),
            events: Duration::from_secs(30),
            drain: Duration::from_secs(5),
        }
    }
}

/// What to run against one orchestrator.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub target: OrchestratorUri,
    pub model_id: String,
    /// The pipeline params sent at job start (for example `{"prompt": "..."}`).
    pub params: Value,
    pub prompt_id: Option<String>,
    pub complexity: Option<Complexity>,
    /// How long input is published.
    pub duration: Duration,
    /// When to send params updates, as offsets from the start of publishing. Each update
    /// re-sends the previous params with the prompt changed (so every update has a new hash);
    /// the reported params update latency is that of the first update the runner confirms.
    /// Offsets at or past the end of publishing are never reached.
    pub params_update_offsets: Vec<Duration>,
    /// Interval of `{"keep":"alive"}` control messages.
    pub keepalive_interval: Duration,
    pub timeouts: Timeouts,
    /// The gateway's Ethereum address sent in GetOrchestrator (offchain it is not verified).
    pub gateway_address: [u8; 20],
    /// The scenario this session is part of, copied into the record; `None` for `lvt probe`.
    pub scenario: Option<lvt_schema::ScenarioRef>,
    /// The tester's region label, written into the record (`--region`); SLA scores are cut by it.
    pub region: Option<String>,
    /// How jobs are paid: offchain (the default, an empty payment) or through a remote signer.
    pub payment: PaymentConfig,
}

impl ProbeOptions {
    /// Options with the defaults of `lvt probe`: noop model, 30 s, params update halfway.
    pub fn new(target: OrchestratorUri) -> Self {
        let duration = Duration::from_secs(30);
        Self {
            target,
            model_id: "noop".to_string(),
            params: serde_json::json!({}),
            prompt_id: None,
            complexity: None,
            duration,
            params_update_offsets: vec![duration / 2],
            keepalive_interval: Duration::from_secs(10),
            timeouts: Timeouts::default(),
            gateway_address: DEFAULT_GATEWAY_ADDRESS,
            scenario: None,
            region: None,
            payment: PaymentConfig::default(),
        }
    }
}

/// A fixed offchain gateway identity; go-livepeer does not verify it offchain.
pub const DEFAULT_GATEWAY_ADDRESS: [u8; 20] = [
    0x1d, 0x70, 0x7e, 0x57, 0xe5, 0x70, 0x1d, 0x70, 0x7e, 0x57, 0xe5, 0x70, 0x1d, 0x70, 0x7e, 0x57,
    0xe5, 0x70, 0x1d, 0x70,
];

/// The shared HTTP client for trickle and job start: orchestrators serve self-signed
/// certificates, which gateways accept (trust on first use; the gRPC step records the
/// fingerprint). HTTP/1.1 only, like go-livepeer's trickle transport.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .build()
}

/// Runs one probe session to its end and reports it. Never fails: every problem becomes the
/// report's outcome and failure class.
pub async fn probe(
    opts: &ProbeOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
) -> SessionReport {
    probe_run(opts, clip, http, cancel).await.report
}

/// A finished probe session and whether `cancel` cut it short.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    pub report: SessionReport,
    /// True when the cancel token ended the media phase before the session ran its course
    /// (no failure had stopped it first). Such a session's outcome judges a shortened session:
    /// no output yet is then not evidence against the orchestrator.
    pub interrupted: bool,
}

/// [`probe`], also telling whether the session was interrupted by `cancel`.
pub async fn probe_run(
    opts: &ProbeOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
) -> ProbeRun {
    let mut p = Probe::new(opts);
    match discover_and_start(opts, http, &p.clock, &mut p.report).await {
        Ok(started) => {
            // The payment loop runs while the job does and stops when its guard drops.
            let _payments = started.payments;
            p.run_job(opts, clip, http, &started.urls, cancel).await;
        }
        Err(failure) => p.fatal = Some(failure),
    }
    let interrupted = p.interrupted;
    ProbeRun {
        report: p.finish(),
        interrupted,
    }
}

/// The record of a session the tester could not run at all (its task died): unscored, with an
/// `internal` failure, so the run still accounts for it.
pub fn tester_failure_report(opts: &ProbeOptions, detail: String) -> SessionReport {
    let mut report = Probe::new(opts).report;
    report.outcome = Outcome::UnscoredIndeterminate;
    report.failure = Some(fail(FailureClass::Internal, detail));
    report
}

/// Probes a job that is already started (its trickle URLs known), skipping GetOrchestrator and
/// job start: for jobs started by something else, and for testing the media phase against
/// orchestrators that misbehave in ways the simulator does not.
pub async fn probe_started_job(
    opts: &ProbeOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    urls: &JobUrls,
    cancel: CancellationToken,
) -> SessionReport {
    let mut p = Probe::new(opts);
    p.run_job(opts, clip, http, urls, cancel).await;
    p.finish()
}

/// One probe in progress: its clock, the report being filled and the recorder.
struct Probe {
    clock: Clock,
    report: SessionReport,
    recorder: Arc<Mutex<SessionRecorder>>,
    fatal: Option<Failure>,
    measured_end_us: Option<u64>,
    interrupted: bool,
}

impl Probe {
    fn new(opts: &ProbeOptions) -> Self {
        let started_at_unix_ms = unix_ms();
        let report = SessionReport {
            orchestrator: Some(OrchestratorRef {
                address: None,
                uri: opts.target.to_string(),
                cert_sha256: None,
            }),
            prompt: Some(PromptRef {
                id: opts.prompt_id.clone(),
                complexity: opts.complexity,
                params_hash: params_hash(&opts.params),
            }),
            tester_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            scenario: opts.scenario.clone(),
            region: opts.region.clone(),
            ..SessionReport::new(
                uuid::Uuid::now_v7().to_string(),
                opts.model_id.clone(),
                started_at_unix_ms,
            )
        };
        Self {
            clock: Clock::start(),
            report,
            recorder: Arc::new(Mutex::new(SessionRecorder::new(MeasureConfig::default()))),
            fatal: None,
            measured_end_us: None,
            interrupted: false,
        }
    }

    async fn run_job(
        &mut self,
        opts: &ProbeOptions,
        clip: Arc<Clip>,
        http: &reqwest::Client,
        urls: &JobUrls,
        cancel: CancellationToken,
    ) {
        info!(
            message = "Job started.",
            orchestrator = %opts.target,
            manifest_id = %urls.manifest_id
        );
        let session = Session {
            opts,
            clip,
            http,
            clock: self.clock.clone(),
            recorder: self.recorder.clone(),
            cancel,
        };
        let end = session.run(urls).await;
        self.fatal = end.fatal;
        self.measured_end_us = end.measured_end_us;
        self.interrupted = end.interrupted;
    }

    /// Computes the metrics and classifies the session.
    fn finish(self) -> SessionReport {
        let mut report = self.report;
        let end_us = self.measured_end_us.unwrap_or_else(|| self.clock.now_us());
        let (metrics, runner) = lock(&self.recorder).finish(end_us);
        let keep_start = (
            report.metrics.get_orchestrator_ms,
            report.metrics.job_start_ms,
        );
        report.metrics = metrics;
        (
            report.metrics.get_orchestrator_ms,
            report.metrics.job_start_ms,
        ) = keep_start;
        let evidence = Evidence {
            fatal: self.fatal,
            frames_received: report.metrics.frames_received,
            bytes_received: report.metrics.bytes_received,
            events_malformed: u64::from(runner.events_malformed),
            runner_reported_error: runner.errors.first().cloned().or_else(|| {
                (runner.last_state.as_deref() == Some("ERROR")).then(|| "state ERROR".into())
            }),
        };
        report.runner = runner;
        let (outcome, failure) = classify(&evidence);
        report.outcome = outcome;
        report.failure = failure;
        report.ended_at_unix_ms = unix_ms();
        report
    }
}

/// GetOrchestrator then job start. Fills the report's orchestrator identity and timings.
/// A job the orchestrator accepted: its trickle URLs and the guard of its payment loop.
pub(crate) struct StartedJob {
    pub urls: JobUrls,
    /// Pays the orchestrator every 5 s while the job runs (on chain; offchain the loop ends at
    /// once). Dropping the guard stops the loop, so the holder keeps it for the job's life.
    pub payments: DropGuard,
}

/// GetOrchestrator then job start, paid through the remote signer when one is configured.
/// Fills the report's orchestrator identity and timings.
pub(crate) async fn discover_and_start(
    opts: &ProbeOptions,
    http: &reqwest::Client,
    clock: &Clock,
    report: &mut SessionReport,
) -> Result<StartedJob, Failure> {
    let session_id = report.session_id.clone();
    let mut orch_req = grpc::live_request(opts.gateway_address, None);
    payment::sign_orchestrator_request(&opts.payment, http, &mut orch_req)
        .await
        .map_err(|e| fail(FailureClass::Payment, format!("remote signer: {e}")))?;
    let t = clock.now_us();
    let info = tokio::time::timeout(opts.timeouts.grpc, async {
        let mut client = OrchestratorClient::connect(&opts.target, opts.timeouts.grpc).await?;
        let fingerprint = client.cert_fingerprint();
        let info = client.get_orchestrator(orch_req.clone()).await?;
        Ok::<_, grpc::GrpcError>((info, fingerprint, client))
    })
    .await;
    let (info, fingerprint, client) = match info {
        Err(_) => {
            return Err(fail(
                FailureClass::GrpcError,
                format!(
                    "GetOrchestrator did not answer within {:?}",
                    opts.timeouts.grpc
                ),
            ));
        }
        Ok(Err(e)) => {
            let text = e.to_string();
            let class = if is_busy_text(&text) {
                FailureClass::Capacity
            } else {
                FailureClass::GrpcError
            };
            return Err(fail(class, format!("GetOrchestrator: {text}")));
        }
        Ok(Ok(v)) => v,
    };
    report.metrics.get_orchestrator_ms = Some(ms_since(clock, t));
    let summary = grpc::summarize(&info);
    if let Some(o) = report.orchestrator.as_mut() {
        o.address = summary.eth_address.clone();
        o.cert_sha256 = fingerprint;
    }
    report.gpu = summary.gpus.first().map(|g| Gpu {
        name: g.name.clone(),
        memory_bytes: u64::try_from(g.memory_total_bytes).ok().filter(|b| *b > 0),
    });
    if info.auth_token.is_none() {
        return Err(fail(
            FailureClass::ProtocolError,
            "OrchestratorInfo carries no auth_token, which job start requires".into(),
        ));
    }
    let transcoder = if summary.transcoder_uri.is_empty() {
        opts.target.to_string()
    } else {
        summary.transcoder_uri.clone()
    };

    let req = LiveVideoToVideoRequest {
        model_id: opts.model_id.clone(),
        params: opts.params.clone(),
        gateway_request_id: session_id.to_string(),
        stream_id: format!("lvt-{}", &session_id[session_id.len().saturating_sub(12)..]),
    };
    let mut payer = Payer::new(&opts.payment, http.clone(), info.clone())
        .with_refresher(payment::grpc_refresher(client, orch_req));
    let headers = payer
        .job_headers()
        .await
        .map_err(|e| fail(FailureClass::Payment, format!("payment: {e}")))?;
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
    .map_err(start_failure)?;
    report.metrics.job_start_ms = Some(ms_since(clock, t));
    payer.set_manifest_id(urls.manifest_id.clone());
    let stop = CancellationToken::new();
    payment::spawn_loop(payer, transcoder, payment::PAYMENT_INTERVAL, stop.clone());
    Ok(StartedJob {
        urls,
        payments: stop.drop_guard(),
    })
}

fn start_failure(e: StartJobError) -> Failure {
    let text = e.to_string();
    let class = match e.status() {
        Some(503) => FailureClass::Capacity,
        Some(403) => FailureClass::Auth,
        Some(402) => FailureClass::Payment,
        Some(400) if text.contains("balance") || text.to_lowercase().contains("payment") => {
            FailureClass::Payment
        }
        Some(_) => FailureClass::StartError,
        None => match e {
            StartJobError::BadJson { .. } | StartJobError::MissingField { .. } => {
                FailureClass::ProtocolError
            }
            _ => FailureClass::StartError,
        },
    };
    let class = if class == FailureClass::StartError && is_busy_text(&text) {
        FailureClass::Capacity
    } else {
        class
    };
    fail(class, format!("job start: {text}"))
}

/// The texts go-livepeer and the old tester treat as "busy" rather than broken.
fn is_busy_text(text: &str) -> bool {
    [
        "OrchestratorCapped",
        "OrchestratorBusy",
        "insufficient capacity",
    ]
    .iter()
    .any(|t| text.contains(t))
}

pub(crate) fn fail(class: FailureClass, detail: String) -> Failure {
    Failure { class, detail }
}

/// The hash the runner reports as `last_params_hash`: hex md5 of the canonical params JSON.
///
/// The canonical form is ai-runner's (`json.dumps(params, sort_keys=True)`), so the hash
/// matches what a real runner reports.
pub fn params_hash(params: &Value) -> String {
    lvt_gateway::sim::params_hash(params)
}

/// The session's own monotonic clock: microseconds since the probe started.
#[derive(Clone)]
pub(crate) struct Clock {
    t0: Instant,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Self { t0: Instant::now() }
    }
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
    pub(crate) fn at(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }
}

fn ms_since(clock: &Clock, t_us: u64) -> f64 {
    clock.now_us().saturating_sub(t_us) as f64 / 1000.0
}

pub(crate) fn unix_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a measurement task panicked; the data is still the best we have.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Progress the tasks of a session share with the watchdog and the drain, on the session
/// clock. Everything that is a metric lives in the recorder; this is only control state.
#[derive(Default)]
pub(crate) struct Liveness {
    pub(crate) first_input_us: Option<u64>,
    pub(crate) last_input_us: Option<u64>,
    pub(crate) last_input_pts: Option<u64>,
    pub(crate) last_output_pts: Option<u64>,
    pub(crate) output_ended: bool,
    /// When the events channel was opened: the events timeout counts from here until the first
    /// event arrives.
    pub(crate) events_opened_us: u64,
    /// The end of the measured period: when output was no longer expected.
    pub(crate) measured_end_us: Option<u64>,
    pub(crate) media_errors: lvt_schema::MediaErrors,
}

/// How a session's media phase ended.
struct SessionEnd {
    fatal: Option<Failure>,
    measured_end_us: Option<u64>,
    /// The cancel token, not the session's own course, ended it.
    interrupted: bool,
}

/// The recorders one channel feeds: the session's, and in network mode also the recorder of
/// the share of the orchestrator that owns the channel, so that each frame counts for the
/// session and for the orchestrator that produced it.
#[derive(Clone)]
pub(crate) struct Recorders(Vec<Arc<Mutex<SessionRecorder>>>);

impl Recorders {
    pub(crate) fn new(recorders: Vec<Arc<Mutex<SessionRecorder>>>) -> Self {
        Self(recorders)
    }

    fn each(&self, mut f: impl FnMut(&mut SessionRecorder)) {
        for r in &self.0 {
            f(&mut lock(r));
        }
    }
}

/// What a gateway driver wants to know about the channels beyond the metrics: the network
/// driver feeds its swap monitor from these. Every method has a no-op default, which is what a
/// direct probe uses ([`Unobserved`]): it judges silence with its own watchdog.
pub(crate) trait ChannelHooks: Send + Sync {
    /// Whether subscriptions retry after a read error, as go-livepeer's do (its monitor counts
    /// the errors); without hooks a read error ends the subscription and the watchdog judges.
    fn retries_reads(&self) -> bool {
        false
    }
    /// An output video frame arrived (its first byte at `at_us`).
    fn output_frame(&self, _at_us: u64) {}
    /// An output segment was read to its end.
    fn output_segment(&self, _at_us: u64) {}
    /// The output subscription ended (404 or end of stream).
    fn output_ended(&self, _at_us: u64) {}
    /// An output read failed.
    fn output_error(&self, _at_us: u64) {}
    /// Copying an output segment failed after its read began.
    fn output_copy_error(&self, _at_us: u64) {}
    /// An events document arrived: `Some` when it parsed as JSON.
    fn event(&self, _doc: Option<&Value>, _at_us: u64) {}
    /// The events subscription ended (404 or end of stream).
    fn events_ended(&self, _at_us: u64) {}
    /// An events read failed.
    fn events_error(&self, _at_us: u64) {}
    /// A control message got 404: the channel is gone.
    fn control_not_found(&self, _at_us: u64) {}
    /// Replaying the cached params to a new orchestrator failed every time.
    fn control_write_failed(&self, _at_us: u64) {}
    /// A params update was sent on the control channel.
    fn params_sent(&self, _params: &Value) {}
}

/// The hooks of a direct probe: nothing beyond the recorder.
pub(crate) struct Unobserved;

impl ChannelHooks for Unobserved {}

pub(crate) type Hooks = Arc<dyn ChannelHooks>;

/// What the control task of one job sends.
#[derive(Clone)]
pub(crate) struct ControlPlan {
    /// When publishing started: params update offsets count from here.
    pub start: Instant,
    /// Params update offsets from `start`; those already past when the task starts belong to
    /// an earlier orchestrator of the session and are skipped.
    pub offsets: Vec<Duration>,
    /// The params the next update builds on.
    pub params: Value,
    /// Params to write first, before anything else: the last update replayed to the
    /// orchestrator that took over after a swap.
    pub replay: Option<Bytes>,
    pub keepalive_interval: Duration,
}

/// Replaying params to a new orchestrator is given up after this many failed writes
/// (go-livepeer's `startControlPublish`).
const CONTROL_REPLAY_TRIES: u32 = 3;

/// go-livepeer's `retryPause` after a failed subscription read.
const READ_RETRY_PAUSE: Duration = Duration::from_millis(300);

struct Session<'a> {
    opts: &'a ProbeOptions,
    clip: Arc<Clip>,
    http: &'a reqwest::Client,
    clock: Clock,
    recorder: Arc<Mutex<SessionRecorder>>,
    cancel: CancellationToken,
}

impl Session<'_> {
    /// Publishes input for the configured duration while reading output and events, then drains
    /// and closes.
    async fn run(&self, urls: &JobUrls) -> SessionEnd {
        let live = Arc::new(Mutex::new(Liveness::default()));
        let stop = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        lock(&live).events_opened_us = self.clock.now_us();
        let recorders = Recorders::new(vec![self.recorder.clone()]);
        let hooks: Hooks = Arc::new(Unobserved);

        tasks.spawn(read_output(
            TrickleSubscriber::new(self.http.clone(), &urls.subscribe_url),
            self.clock.clone(),
            recorders.clone(),
            live.clone(),
            hooks.clone(),
            stop.clone(),
        ));
        tasks.spawn(read_events(
            TrickleSubscriber::new(self.http.clone(), &urls.events_url),
            self.clock.clone(),
            recorders.clone(),
            hooks.clone(),
            stop.clone(),
        ));
        tasks.spawn(send_control(
            TricklePublisher::new(self.http.clone(), &urls.control_url),
            ControlPlan {
                start: Instant::now(),
                offsets: self.opts.params_update_offsets.clone(),
                params: self.opts.params.clone(),
                replay: None,
                keepalive_interval: self.opts.keepalive_interval,
            },
            self.clock.clone(),
            recorders,
            hooks,
            stop.clone(),
        ));

        let mut publisher = TricklePublisher::new(self.http.clone(), &urls.publish_url);
        let fatal = {
            let mut input = DirectInput {
                publisher: &mut publisher,
                recorder: &self.recorder,
                finishing: tokio::task::JoinSet::new(),
            };
            tokio::select! {
                r = publish_clip(&self.clip, &self.clock, self.opts.duration, &live, &mut input) => match r {
                    Ok(()) => tokio::select! {
                        () = drain_output(&self.clock, self.opts.timeouts.drain, &self.recorder, &live, &live) => None,
                        f = self.watchdog(&live) => Some(f),
                        () = self.cancel.cancelled() => None,
                    },
                    Err(f) => Some(f),
                },
                f = self.watchdog(&live) => Some(f),
                () = self.cancel.cancelled() => None,
            }
        };
        if let Some(f) = &fatal {
            warn!(message = "Session failed.", class = ?f.class, detail = %f.detail);
        }
        let interrupted = fatal.is_none() && self.cancel.is_cancelled();
        {
            // Output is expected until the last input frame was sent: a gap between the last
            // output and that moment is a trailing stall. Output arriving later (latency) is
            // still measured. A session cut short ends where it was cut.
            let now = self.clock.now_us();
            let mut l = lock(&live);
            l.measured_end_us = Some(match (&fatal, l.last_input_us) {
                (None, Some(last_input_us)) => last_input_us,
                _ => now,
            });
        }

        // Ending the input channel is how a gateway ends the job; the orchestrator then deletes
        // the other channels, which also ends our readers.
        stop.cancel();
        if tokio::time::timeout(Duration::from_secs(2), publisher.close())
            .await
            .is_err()
        {
            debug!(message = "Closing the input channel timed out.");
        }
        let join_all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(3), join_all)
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        let l = lock(&live);
        lock(&self.recorder).handle_media_errors(l.media_errors);
        SessionEnd {
            fatal,
            measured_end_us: l.measured_end_us,
            interrupted,
        }
    }

    /// Fires when output or events stay away for longer than the timeouts allow.
    async fn watchdog(&self, live: &Mutex<Liveness>) -> Failure {
        let t = &self.opts.timeouts;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            let now = self.clock.now_us();
            let (first_input_us, events_opened_us) = {
                let l = lock(live);
                (l.first_input_us, l.events_opened_us)
            };
            let (last_output_us, last_event_us) = {
                let r = lock(&self.recorder);
                (r.last_output_at_us(), r.last_event_at_us())
            };
            match (first_input_us, last_output_us) {
                (Some(first_in), None) if now.saturating_sub(first_in) > us(t.first_output) => {
                    return fail(
                        FailureClass::OutputTimeout,
                        format!(
                            "no output frame within {:?} of the first input",
                            t.first_output
                        ),
                    );
                }
                (_, Some(last_out)) if now.saturating_sub(last_out) > us(t.output_gap) => {
                    return fail(
                        FailureClass::OutputTimeout,
                        format!("output stopped for longer than {:?}", t.output_gap),
                    );
                }
                _ => {}
            }
            if now.saturating_sub(last_event_us.unwrap_or(events_opened_us)) > us(t.events) {
                return fail(
                    FailureClass::EventsTimeout,
                    format!("no event for longer than {:?}", t.events),
                );
            }
        }
    }
}

/// Where published input goes: one job's input channel in a direct probe; in network mode,
/// whichever orchestrator serves the session at the moment.
pub(crate) trait InputSink {
    /// Opens the next input segment at `at_us`; `Ok(None)` skips it, and its frames are not
    /// sent (no orchestrator takes input right now); `Err` ends the session.
    fn begin_segment(
        &mut self,
        at_us: u64,
    ) -> impl Future<Output = Result<Option<SegmentWriter>, Failure>> + Send;
    /// An input frame is about to be written (its first byte at `at_us`).
    fn frame_sent(&mut self, pts: u64, at_us: u64);
    /// Writing to the open segment failed: `Err` ends the session, `Ok` drops the segment.
    fn write_failed(&mut self, error: TrickleError, at_us: u64) -> Result<(), Failure>;
    /// Every frame of the segment (`bytes` in all) is written; the sink finishes it without
    /// holding up the next one. `Err` ends the session.
    fn segment_written(
        &mut self,
        writer: SegmentWriter,
        bytes: u64,
        at_us: u64,
    ) -> Result<(), Failure>;
    /// Publishing is over: waits for the segments still being confirmed.
    fn flush(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// A direct probe's input: one publisher; any publishing failure ends the session.
struct DirectInput<'a> {
    publisher: &'a mut TricklePublisher,
    recorder: &'a Arc<Mutex<SessionRecorder>>,
    finishing: tokio::task::JoinSet<Result<SegmentOutcome, TrickleError>>,
}

impl InputSink for DirectInput<'_> {
    async fn begin_segment(&mut self, _at_us: u64) -> Result<Option<SegmentWriter>, Failure> {
        self.publisher
            .begin_segment()
            .await
            .map(Some)
            .map_err(publish_failure)
    }

    fn frame_sent(&mut self, pts: u64, at_us: u64) {
        lock(self.recorder).handle_input_frame_sent(pts, at_us);
    }

    fn write_failed(&mut self, error: TrickleError, _at_us: u64) -> Result<(), Failure> {
        Err(publish_failure(error))
    }

    fn segment_written(
        &mut self,
        writer: SegmentWriter,
        bytes: u64,
        at_us: u64,
    ) -> Result<(), Failure> {
        lock(self.recorder).handle_segment_sent(bytes, at_us);
        // The response to a finished segment is not on the publishing path: a slow answer
        // must not delay the next segment, but a lost channel must still end the session.
        self.finishing.spawn(writer.finish());
        while let Some(done) = self.finishing.try_join_next() {
            if let Ok(Err(e)) = done {
                return Err(publish_failure(e));
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        while let Some(done) = self.finishing.join_next().await {
            if let Ok(Err(e)) = done {
                return Err(publish_failure(e));
            }
        }
        Ok(())
    }
}

/// Replays the clip in real time for `duration`: each frame's bytes are written at its
/// scheduled time, and its send time is the scheduled time's actual write moment on the
/// session clock. A segment the sink skips keeps its place in the schedule, so PTS and timing
/// continue across it.
pub(crate) async fn publish_clip(
    clip: &Arc<Clip>,
    clock: &Clock,
    duration: Duration,
    live: &Mutex<Liveness>,
    sink: &mut impl InputSink,
) -> Result<(), Failure> {
    let mut replayer = Replayer::new(clip.clone(), 0);
    let segment_us = u64::from(clip.config.segment_ms) * 1000;
    let start_us = clock.now_us();
    let end_us = start_us + u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    let mut k = 0u64;
    loop {
        let seg_start_us = start_us + k * segment_us;
        if seg_start_us >= end_us {
            break;
        }
        k += 1;
        let seg = replayer.next_segment();
        tokio::time::sleep_until(clock.at(seg_start_us)).await;
        let Some(mut writer) = sink.begin_segment(clock.now_us()).await? else {
            continue;
        };
        let mut written = true;
        for f in &seg.frames {
            tokio::time::sleep_until(clock.at(seg_start_us + f.offset_us)).await;
            let now = clock.now_us();
            sink.frame_sent(f.pts, now);
            {
                let mut l = lock(live);
                l.first_input_us.get_or_insert(now);
                l.last_input_us = Some(now);
                l.last_input_pts = Some(f.pts);
            }
            if let Err(e) = writer.write(seg.data.slice(f.range.clone())).await {
                sink.write_failed(e, clock.now_us())?;
                written = false;
                break;
            }
        }
        if written {
            sink.segment_written(writer, seg.data.len() as u64, clock.now_us())?;
        }
    }
    sink.flush().await
}

/// Waits for the output of the last input frames: until the output caught up with the last
/// PTS sent (`input`), the output channel ended (`output`), no output came for [`DRAIN_IDLE`]
/// (the orchestrator may have dropped the last frames, for example to lower its frame rate),
/// or `timeout` passed. `recorder` is the one holding the output being waited for.
pub(crate) async fn drain_output(
    clock: &Clock,
    timeout: Duration,
    recorder: &Mutex<SessionRecorder>,
    input: &Mutex<Liveness>,
    output: &Mutex<Liveness>,
) {
    let drain_start_us = clock.now_us();
    let deadline = Instant::now() + timeout;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let last_input_pts = lock(input).last_input_pts;
        {
            let l = lock(output);
            let caught_up = match (last_input_pts, l.last_output_pts) {
                (Some(i), Some(o)) => o >= i,
                _ => false,
            };
            if caught_up || l.output_ended {
                return;
            }
        }
        let last_output_us = lock(recorder).last_output_at_us().unwrap_or(0);
        let idle_since_us = last_output_us.max(drain_start_us);
        if clock.now_us().saturating_sub(idle_since_us) > us(DRAIN_IDLE)
            || Instant::now() >= deadline
        {
            return;
        }
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn publish_failure(e: TrickleError) -> Failure {
    match e {
        TrickleError::ChannelGone => fail(
            FailureClass::PublishLost,
            "the input channel vanished (404): the orchestrator dropped the session".into(),
        ),
        other => fail(
            FailureClass::PublishLost,
            format!("publishing failed: {other}"),
        ),
    }
}

/// How a subscription read ended.
enum Read<T> {
    Got(T),
    /// 404 or end of stream.
    Ended,
    Failed,
    Stopped,
}

/// The next segment of a subscription.
async fn next_segment(
    sub: &mut TrickleSubscriber,
    stop: &CancellationToken,
    channel: &'static str,
) -> Read<lvt_gateway::trickle::SubscribedSegment> {
    let next = tokio::select! {
        () = stop.cancelled() => return Read::Stopped,
        s = sub.next_segment() => s,
    };
    match next {
        Ok(Some(seg)) => Read::Got(seg),
        Ok(None) => Read::Ended,
        Err(error) => {
            debug!(message = "Subscription read failed.", channel, %error);
            Read::Failed
        }
    }
}

/// After a failed read: with hooks that retry, reports the error, pauses and says to go on;
/// otherwise the subscription ends (a failed subscription is not a session failure by itself:
/// the watchdog judges what its silence means).
async fn retry_after_error(
    hooks: &Hooks,
    report: impl FnOnce(&dyn ChannelHooks),
    stop: &CancellationToken,
) -> bool {
    if !hooks.retries_reads() {
        return false;
    }
    report(hooks.as_ref());
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(READ_RETRY_PAUSE) => true,
    }
}

/// Reads the output channel, demuxing as bytes arrive so each frame's arrival is the moment
/// its first byte came in.
pub(crate) async fn read_output(
    mut sub: TrickleSubscriber,
    clock: Clock,
    recorders: Recorders,
    live: Arc<Mutex<Liveness>>,
    hooks: Hooks,
    stop: CancellationToken,
) {
    let mut demux = TsDemuxer::new();
    let mut have_resolution = false;
    loop {
        let mut seg = match next_segment(&mut sub, &stop, "output").await {
            Read::Got(seg) => seg,
            Read::Ended => {
                hooks.output_ended(clock.now_us());
                break;
            }
            Read::Failed => {
                let at_us = clock.now_us();
                if retry_after_error(&hooks, |h| h.output_error(at_us), &stop).await {
                    continue;
                }
                break;
            }
            Read::Stopped => break,
        };
        let mut seg_bytes = 0u64;
        let copy_error = || hooks.output_copy_error(clock.now_us());
        while let Some(chunk) = next_chunk(&mut seg, &stop, "output", copy_error).await {
            let now = clock.now_us();
            seg_bytes += chunk.len() as u64;
            demux.handle_bytes(&chunk, now);
            drain_frames(&mut demux, &recorders, &live, &hooks, &mut have_resolution);
        }
        demux.finish(clock.now_us());
        drain_frames(&mut demux, &recorders, &live, &hooks, &mut have_resolution);
        let now = clock.now_us();
        recorders.each(|r| r.handle_segment_received(seg_bytes, now));
        // The recorder adds what it is given: hand it the demuxer's totals once, at the end.
        lock(&live).media_errors = media_errors(demux.stats());
        if stop.is_cancelled() {
            break;
        }
        hooks.output_segment(now);
    }
    lock(&live).output_ended = true;
}

fn media_errors(s: &lvt_media::ts::DemuxStats) -> lvt_schema::MediaErrors {
    lvt_schema::MediaErrors {
        cc_errors: s.cc_errors,
        sync_losses: s.sync_losses,
        pes_errors: s.pes_errors,
        truncated_frames: s.truncated_frames,
    }
}

fn drain_frames(
    demux: &mut TsDemuxer,
    recorders: &Recorders,
    live: &Mutex<Liveness>,
    hooks: &Hooks,
    have_resolution: &mut bool,
) {
    while let Some(frame) = demux.poll_frame() {
        if frame.stream_type != STREAM_TYPE_H264 {
            continue;
        }
        let Some(pts) = frame.pts else { continue };
        let sps = (!*have_resolution && frame.keyframe)
            .then(|| lvt_media::h264::find_sps(&frame.data))
            .flatten();
        recorders.each(|rec| {
            if let Some(sps) = &sps {
                rec.handle_resolution(sps.width, sps.height);
            }
            rec.handle_output_frame(pts, frame.first_byte_us, frame.keyframe, frame.data.len());
        });
        if sps.is_some() {
            *have_resolution = true;
        }
        hooks.output_frame(frame.first_byte_us);
        let mut l = lock(live);
        l.last_output_pts = Some(l.last_output_pts.map_or(pts, |p| p.max(pts)));
    }
}

/// Reads the events channel: one JSON document per segment.
pub(crate) async fn read_events(
    mut sub: TrickleSubscriber,
    clock: Clock,
    recorders: Recorders,
    hooks: Hooks,
    stop: CancellationToken,
) {
    /// An event larger than this is not an event: stop reading it rather than buffer forever.
    const MAX_EVENT_BYTES: usize = 1 << 20;
    loop {
        let mut seg = match next_segment(&mut sub, &stop, "events").await {
            Read::Got(seg) => seg,
            Read::Ended => {
                hooks.events_ended(clock.now_us());
                break;
            }
            Read::Failed => {
                let at_us = clock.now_us();
                if retry_after_error(&hooks, |h| h.events_error(at_us), &stop).await {
                    continue;
                }
                break;
            }
            Read::Stopped => break,
        };
        let mut doc = Vec::new();
        let mut failed = false;
        while let Some(chunk) = next_chunk(&mut seg, &stop, "events", || failed = true).await {
            doc.extend_from_slice(&chunk);
            if doc.len() > MAX_EVENT_BYTES {
                break;
            }
        }
        if stop.is_cancelled() {
            // A document cut short by the end of the session is not a malformed one.
            break;
        }
        if failed && hooks.retries_reads() {
            // A read cut short is a read error, not a malformed event: go-livepeer counts it
            // toward the events subscription's retries.
            hooks.events_error(clock.now_us());
            continue;
        }
        let now = clock.now_us();
        recorders.each(|r| r.handle_event_bytes(&doc, now));
        let parsed = serde_json::from_slice::<Value>(&doc).ok();
        hooks.event(parsed.as_ref(), now);
    }
}

/// The next chunk of a segment, or `None` at its end, on a read error (after `on_error`), or
/// when the session stopped.
async fn next_chunk(
    seg: &mut lvt_gateway::trickle::SubscribedSegment,
    stop: &CancellationToken,
    channel: &'static str,
    on_error: impl FnOnce(),
) -> Option<Bytes> {
    let next = tokio::select! {
        () = stop.cancelled() => return None,
        c = seg.chunk() => c,
    };
    next.unwrap_or_else(|error| {
        debug!(message = "Segment read ended with an error.", channel, %error);
        on_error();
        None
    })
}

/// Sends the replayed params (if any), then keepalives and the params updates at their offsets.
pub(crate) async fn send_control(
    mut publisher: TricklePublisher,
    plan: ControlPlan,
    clock: Clock,
    recorders: Recorders,
    hooks: Hooks,
    stop: CancellationToken,
) {
    if let Some(replay) = &plan.replay {
        let mut delivered = false;
        for _ in 0..CONTROL_REPLAY_TRIES {
            if stop.is_cancelled() {
                return;
            }
            match publisher.publish(replay.clone()).await {
                Ok(()) => {
                    delivered = true;
                    break;
                }
                Err(TrickleError::ChannelGone) => {
                    hooks.control_not_found(clock.now_us());
                    return;
                }
                Err(e) => debug!(message = "Params replay not delivered.", error = %e),
            }
        }
        if !delivered {
            hooks.control_write_failed(clock.now_us());
            return;
        }
    }
    let now = Instant::now();
    let mut offsets: Vec<Duration> = plan
        .offsets
        .iter()
        .copied()
        .filter(|o| plan.start + *o >= now)
        .collect();
    offsets.sort_unstable();
    let mut pending_updates = offsets.into_iter();
    let mut update_at = pending_updates.next().map(|o| plan.start + o);
    // Each update builds on the one before, so every update carries a hash of its own and a
    // runner that applies it must report something new.
    let mut params = plan.params.clone();
    let mut keepalive =
        tokio::time::interval_at(now + plan.keepalive_interval, plan.keepalive_interval);
    loop {
        let update_sleep = async {
            match update_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let msg = tokio::select! {
            () = stop.cancelled() => break,
            _ = keepalive.tick() => Bytes::from_static(br#"{"keep":"alive"}"#),
            () = update_sleep => {
                update_at = pending_updates.next().map(|o| plan.start + o);
                params = updated_params(&params);
                let hash = params_hash(&params);
                let now = clock.now_us();
                recorders.each(|r| r.handle_params_sent(&hash, now));
                hooks.params_sent(&params);
                Bytes::from(params.to_string())
            }
        };
        if let Err(e) = publisher.publish(msg).await {
            debug!(message = "Control message not delivered.", error = %e);
            if matches!(e, TrickleError::ChannelGone) {
                hooks.control_not_found(clock.now_us());
                break;
            }
        }
    }
    // The control channel is closed by the orchestrator when the session ends.
}

/// The params update a probe sends: the same params with the prompt changed, so that a runner
/// applying it must report a new hash. Applied to its own result it changes the hash again.
pub fn updated_params(params: &Value) -> Value {
    let mut p = match params {
        Value::Object(m) => Value::Object(m.clone()),
        _ => serde_json::json!({}),
    };
    let prompt = p.get("prompt").and_then(Value::as_str).map_or_else(
        || "lvt params update".to_string(),
        |s| format!("{s}, updated"),
    );
    p["prompt"] = Value::String(prompt);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_update_changes_the_hash() {
        let p = serde_json::json!({"prompt": "watercolor", "strength": 0.5});
        let u = updated_params(&p);
        assert_eq!(u["prompt"], "watercolor, updated");
        assert_eq!(u["strength"], 0.5);
        assert_ne!(params_hash(&p), params_hash(&u));
        // Key order does not change the hash: it is over the canonical form.
        let q: Value = serde_json::from_str(r#"{"strength":0.5,"prompt":"watercolor"}"#).unwrap();
        assert_eq!(params_hash(&p), params_hash(&q));
    }

    #[test]
    fn busy_texts_are_recognised() {
        assert!(is_busy_text("status: OrchestratorCapped"));
        assert!(is_busy_text("503: insufficient capacity"));
        assert!(!is_busy_text("invalid auth token"));
    }
}
