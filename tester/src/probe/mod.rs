//! The probe engine: one live video-to-video session against one orchestrator, measured.
//!
//! A probe does what a gateway does (GetOrchestrator, job start, publish input, read output and
//! events, send control) and records every step on its own clock. The session itself is
//! `lvt_gateway::session::SessionCore`, a sans-IO state machine that decides everything (when
//! each frame is due, timeouts, swaps, the drain, the record); this module turns the options
//! into the core's plan, and [`driver`] moves the bytes over trickle. A direct probe is a
//! session with one fixed candidate and swaps off; [`network`] runs the same core through
//! network selection.
//!
//! Every session ends in a [`SessionReport`] with a classified outcome: an orchestrator that
//! refuses, hangs, lies or crashes is a measurement, never an `Err`.

mod driver;
pub mod gateway;
pub mod network;
mod pictures;
mod start;

use std::sync::Arc;
use std::time::Duration;

use lvt_gateway::gateway::select::Candidate;
use lvt_gateway::session::{ClipTiming, Mode, SessionPlan, SessionTimeouts};
use lvt_schema::{
    Complexity, Failure, FailureClass, OrchestratorRef, Outcome, PromptRef, SessionReport,
    TargetMode,
};
use lvt_wire::live::{JobUrls, OrchestratorUri};
use lvt_wire::payment::PaymentConfig;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::encode::Clip;
use driver::{Edge, Starter, drive};

pub use lvt_gateway::session::updated_params;

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
    /// When set, the certificates trusted on first use: an orchestrator presenting another
    /// certificate than the one trusted for its URI is refused before its job starts.
    pub refuse_changed_certificates: Option<crate::run::trust::TrustedCertificates>,
    /// The limits the scenario's thresholds declare for this session, copied into the record
    /// (`slo`); `None` for `lvt probe`.
    pub slo: Option<lvt_schema::SessionSlo>,
    /// Checks the addresses orchestrators claim against the on-chain ServiceRegistry (shared by
    /// a run's sessions, so each address is read once); `None` records every claim unverified.
    pub address_verifier: Option<Arc<lvt_gateway::identity::AddressVerifier>>,
    /// At the first step of the clip's luminance marker and every Nth after it (from the
    /// session's phase, `SessionPlan::content_check_phase`), decode the first output frame past
    /// it and read the frame number in its picture, or the marker when the number is unreadable
    /// (the content check, docs/metrics.md); 0 checks none. Default [`CONTENT_CHECK_EVERY`].
    pub content_check_every: u32,
    /// Let a readable frame number decide a content check; `false` judges by the luminance
    /// marker alone (docs/metrics.md, "Content check"). Default true.
    pub read_frame_numbers: bool,
    /// Tell loading overlay frames from processed output by their pictures while a runner may
    /// be loading (docs/metrics.md, "Loading overlay"). Default true.
    pub watch_overlay: bool,
}

/// The default content check: one step of the marker in ten (it steps at every segment start:
/// one check every 10 s with 1 s segments, two or three in a 30 s session). When the output
/// keeps the input's keyframes (as `lvt sim` does) each check decodes one 512x512 IDR, about
/// 1.4 ms of CPU in a release build, so this costs about 140 us per stream-second
/// (docs/benchmarks.md); an output with its own keyframes is decoded from the keyframe before
/// the sampled frame.
pub const CONTENT_CHECK_EVERY: u32 = 10;

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
            refuse_changed_certificates: None,
            slo: None,
            address_verifier: None,
            content_check_every: CONTENT_CHECK_EVERY,
            read_frame_numbers: true,
            watch_overlay: true,
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
    /// True when the cancel token ended the session before it ran its course (no failure had
    /// stopped it first). Such a session's outcome judges a shortened session: no output yet
    /// is then not evidence against the orchestrator.
    pub interrupted: bool,
}

/// [`probe`], also telling whether the session was interrupted by `cancel`.
pub async fn probe_run(
    opts: &ProbeOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
) -> ProbeRun {
    direct(opts, clip, http, Starter::Gateway, cancel).await
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
    direct(opts, clip, http, Starter::Given(urls.clone()), cancel)
        .await
        .report
}

async fn direct(
    opts: &ProbeOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    starter: Starter,
    cancel: CancellationToken,
) -> ProbeRun {
    let plan = session_plan(opts, &clip);
    let candidates = vec![Candidate::new(opts.target.to_string(), 0)];
    let edge = Edge {
        opts,
        clip,
        http,
        starter,
        sink: None,
    };
    let template = report_template(opts, TargetMode::Direct);
    let mut run = drive(Mode::Direct, plan, candidates, template, edge, cancel).await;
    check_identities(&mut run.report, opts).await;
    run
}

/// Sets how every orchestrator the record names was identified: its claimed address checked
/// against the ServiceRegistry when the options carry a verifier, else unverified.
async fn check_identities(report: &mut SessionReport, opts: &ProbeOptions) {
    lvt_gateway::identity::check_report(report, opts.address_verifier.as_deref()).await;
}

/// The record of a session the tester could not run at all (its task died): unscored, with an
/// `internal` failure, so the run still accounts for it.
pub fn tester_failure_report(opts: &ProbeOptions, detail: String) -> SessionReport {
    let mut report = report_template(opts, TargetMode::Direct);
    report.outcome = Outcome::UnscoredIndeterminate;
    report.failure = Some(fail(FailureClass::Internal, detail));
    report
}

/// The record before the session: its identity, and for a direct session the orchestrator.
fn report_template(opts: &ProbeOptions, mode: TargetMode) -> SessionReport {
    SessionReport {
        mode,
        orchestrator: (mode == TargetMode::Direct).then(|| OrchestratorRef {
            address: None,
            uri: opts.target.to_string(),
            cert_sha256: None,
            cert_trust: None,
            address_check: None,
        }),
        prompt: Some(PromptRef {
            id: opts.prompt_id.clone(),
            complexity: opts.complexity,
            params_hash: params_hash(&opts.params),
        }),
        tester_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        scenario: opts.scenario.clone(),
        region: opts.region.clone(),
        slo: opts.slo,
        ..SessionReport::new(
            uuid::Uuid::now_v7().to_string(),
            opts.model_id.clone(),
            unix_ms(),
        )
    }
}

/// The core's plan from the options and the clip.
fn session_plan(opts: &ProbeOptions, clip: &Clip) -> SessionPlan {
    SessionPlan {
        clip: ClipTiming {
            segment_us: u64::from(clip.config.segment_ms) * 1000,
            fps: clip.config.fps,
            frames_per_segment: clip.frames_per_segment(),
            segments: clip.config.segments,
        },
        duration_us: us(opts.duration),
        timeouts: SessionTimeouts {
            first_output_us: us(opts.timeouts.first_output),
            output_gap_us: us(opts.timeouts.output_gap),
            events_us: us(opts.timeouts.events),
            drain_us: us(opts.timeouts.drain),
        },
        params: opts.params.clone(),
        params_update_offsets_us: opts.params_update_offsets.iter().copied().map(us).collect(),
        keepalive_interval_us: us(opts.keepalive_interval),
        content_check_every: opts.content_check_every,
        content_check_phase: next_check_phase(opts.content_check_every),
        read_frame_numbers: opts.read_frame_numbers,
        watch_overlay: opts.watch_overlay,
    }
}

/// The content check's phase of the next session of the process: 0, 1, ... up to `every` - 1
/// and round again, so that sessions started together spread their checks (and the frames each
/// holds for one) over the cadence instead of all holding frames at the same time.
fn next_check_phase(every: u32) -> u32 {
    static SESSIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    n.checked_rem(every).unwrap_or(0)
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) fn fail(class: FailureClass, detail: String) -> Failure {
    Failure { class, detail }
}

/// The hash the runner reports as `last_params_hash`: hex md5 of the canonical params JSON.
///
/// The canonical form is ai-runner's (`json.dumps(params, sort_keys=True)`), so the hash
/// matches what a real runner reports.
pub fn params_hash(params: &Value) -> String {
    lvt_wire::live::params::params_hash(params)
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

pub(crate) fn unix_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
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
        use lvt_gateway::session::is_busy_text;
        assert!(is_busy_text("status: OrchestratorCapped"));
        assert!(is_busy_text("503: insufficient capacity"));
        assert!(!is_busy_text("invalid auth token"));
    }
}
