//! The network-selection session driver: one measured session run through lvt's gateway side
//! the way go-livepeer's gateway runs a user's stream.
//!
//! It owns the IO around the sans-IO cores of `lvt_gateway::gateway`: discovery (through
//! `lvt_gateway::discovery::inventory`), the start loop ([`StartAttempts`] over a
//! [`SelectionStrategy`]'s order, each try a GetOrchestrator plus job start), and mid-stream
//! swaps ([`SwapMonitor`] fed from the real channels). The media side (publishing the clip,
//! reading output and events, the control channel) is the direct probe's code in
//! [`super`], given hooks that report to the monitor and a recorder per orchestrator share.
//!
//! One session publishes ONE clip stream from start to end: after a swap the next input
//! segment goes to the new orchestrator with its PTS continuing, so end-to-end matching goes
//! on. Every output frame is attributed to the orchestrator whose channel delivered it: it
//! counts for the session and for that orchestrator's share (`served_by`).
//!
//! Like a probe, a session never fails with an `Err`: discovery finding nobody, every
//! orchestrator busy, or the swap limit are outcomes of the report.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use lvt_gateway::discovery::{
    self, DiscoverySource as _, Inventory, InventoryEntry, InventoryOptions, Source,
};
use lvt_gateway::gateway::observe::{
    DiscoveredCandidate, Observation, ObservationSink, OrchestratorInfo, StreamContext, observe,
};
use lvt_gateway::gateway::select::{
    AttemptResult, Candidate, GoLivepeerDefault, Next, Price, ScoreWeightedRandom,
    SelectionStrategy, StartAttempts, StartLimits,
};
use lvt_gateway::gateway::swap::{
    Decision, EndReason, SuspendReason, Suspensions, SwapCause, SwapConfig, SwapMonitor,
};
use lvt_gateway::live::JobUrls;
use lvt_gateway::trickle::{SegmentWriter, TrickleError, TricklePublisher, TrickleSubscriber};
use lvt_schema::{
    Failure, FailureClass, Gpu, OrchestratorRef, Outcome, PromptRef, ServedBy, SessionReport,
    TargetMode,
};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use super::classify::{Evidence, classify};
use super::{
    ChannelHooks, Clock, ControlPlan, Hooks, InputSink, Liveness, ProbeOptions, ProbeRun,
    Recorders, discover_and_start, drain_output, fail, lock, params_hash, publish_clip,
    read_events, read_output, send_control, unix_ms,
};
use crate::encode::Clip;
use crate::measure::{MeasureConfig, SessionRecorder};

/// go-livepeer's message when no orchestrator accepted a stream.
pub const NO_ORCHESTRATORS_AVAILABLE: &str = "no orchestrators available";

/// How a gateway orders the candidates it tries.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategyConfig {
    /// go-livepeer's default: warm first, then by discovery latency ([`GoLivepeerDefault`]).
    GoLivepeer,
    /// Weighted random by SLA score, seeded ([`ScoreWeightedRandom`]). Each candidate's score
    /// is the collector's `sla_score` when `sla_url` is given and ranks it, else its discovery
    /// source's score (0-1, scaled to 0-100).
    ScoreWeighted {
        seed: u64,
        /// A collector's base URL, read at `GET /v1/sla/orchestrators`.
        sla_url: Option<String>,
    },
}

impl StrategyConfig {
    fn build(&self) -> Box<dyn SelectionStrategy + Send> {
        match self {
            Self::GoLivepeer => Box::new(GoLivepeerDefault::default()),
            Self::ScoreWeighted { seed, .. } => Box::new(ScoreWeightedRandom::new(*seed)),
        }
    }

    /// The strategy's report name (`go-livepeer`, `score-weighted-random`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::GoLivepeer => "go-livepeer",
            Self::ScoreWeighted { .. } => "score-weighted-random",
        }
    }
}

/// What to run through network selection.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// The session itself: model, params, duration, params updates, timeouts. Its `target` is
    /// not used: each try sets the candidate it starts on.
    pub session: ProbeOptions,
    /// Where candidates come from; several sources are merged, the first naming an
    /// orchestrator keeping it.
    pub sources: Vec<Source>,
    pub strategy: StrategyConfig,
    /// Bound on each candidate's GetOrchestrator during discovery (go-livepeer: 3 s).
    pub discovery_timeout: Duration,
    /// The swap triggers and chain limit; go-livepeer's by default.
    pub swap: SwapConfig,
    /// The start loop's limits; go-livepeer's by default (20 tries, 2 s).
    pub start: StartLimits,
}

impl NetworkOptions {
    pub fn new(session: ProbeOptions, sources: Vec<Source>, strategy: StrategyConfig) -> Self {
        Self {
            session,
            sources,
            strategy,
            discovery_timeout: discovery::inventory::DEFAULT_GET_ORCHESTRATOR_TIMEOUT,
            swap: SwapConfig::default(),
            start: StartLimits::default(),
        }
    }
}

/// Runs one session through network selection and reports it; observations go to `sink`
/// when there is one. Never fails: every problem becomes the report's outcome.
pub async fn run_network(
    opts: &NetworkOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
    sink: Option<ObservationSink>,
) -> ProbeRun {
    let clock = Clock::start();
    let origin_unix_ms = unix_ms();
    let s = &opts.session;
    let mut report = SessionReport {
        mode: TargetMode::Network,
        prompt: Some(PromptRef {
            id: s.prompt_id.clone(),
            complexity: s.complexity,
            params_hash: params_hash(&s.params),
        }),
        tester_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        scenario: s.scenario.clone(),
        region: s.region.clone(),
        ..SessionReport::new(
            uuid::Uuid::now_v7().to_string(),
            s.model_id.clone(),
            origin_unix_ms,
        )
    };
    let stream = StreamContext {
        stream_id: stream_id(&report.session_id),
        request_id: report.session_id.clone(),
        pipeline: report.pipeline.clone(),
        model_id: s.model_id.clone(),
    };
    observe(
        sink.as_ref(),
        Observation::Trace {
            at_unix_ms: unix_ms(),
            stream: stream.clone(),
            kind: "gateway_receive_stream_request",
            orchestrator: None,
        },
    );

    let candidates = match discover(opts, http, sink.as_ref()).await {
        Ok(c) => c,
        Err(failure) => {
            warn!(message = "Discovery failed.", detail = %failure.detail);
            report.outcome = Outcome::UnscoredIndeterminate;
            report.failure = Some(failure);
            report.ended_at_unix_ms = unix_ms();
            return ProbeRun {
                report,
                interrupted: false,
            };
        }
    };

    let shared = Arc::new(Shared {
        clock: clock.clone(),
        notify: Notify::new(),
        sink,
        stream,
        session_recorder: Arc::new(Mutex::new(SessionRecorder::new(MeasureConfig::default()))),
        state: Mutex::new(State {
            monitor: None,
            current: None,
            shares: Vec::new(),
            incoming: None,
            last_params: s.params.clone(),
        }),
    });
    let mut driver = Driver {
        opts,
        http,
        clip,
        shared: shared.clone(),
        candidates,
        strategy: opts.strategy.build(),
        session_id: report.session_id.clone(),
        stop: CancellationToken::new(),
        publish_start: None,
    };
    let end = driver.run(cancel).await;
    driver.finish(report, end, origin_unix_ms)
}

/// Reads every source and asks every candidate, reporting `discovery_results` and each usable
/// orchestrator's capabilities. Sources that fail are skipped when another one answered.
async fn discover(
    opts: &NetworkOptions,
    http: &reqwest::Client,
    sink: Option<&ObservationSink>,
) -> Result<Vec<Candidate>, Failure> {
    let mut lists = Vec::with_capacity(opts.sources.len());
    let mut errors = Vec::new();
    for source in &opts.sources {
        match source.candidates(http).await {
            Ok(found) => lists.push(found),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if lists.is_empty() {
        let detail = if errors.is_empty() {
            "no discovery source configured".to_string()
        } else {
            format!("discovery failed: {}", errors.join("; "))
        };
        return Err(fail(FailureClass::Internal, detail));
    }
    let inventory = discovery::inventory(
        discovery::merge(lists),
        &InventoryOptions {
            model_id: opts.session.model_id.clone(),
            timeout: opts.discovery_timeout,
            gateway_address: opts.session.gateway_address,
            ..InventoryOptions::default()
        },
    )
    .await;
    for dropped in inventory.dropped() {
        info!(
            message = "Candidate dropped by discovery.",
            uri = %dropped.candidate.uri,
            status = ?dropped.status
        );
    }
    report_inventory(&inventory, sink);
    let mut candidates: Vec<Candidate> = inventory
        .usable()
        .map(|e| candidate(e, &inventory.model_id))
        .collect();
    if let StrategyConfig::ScoreWeighted {
        sla_url: Some(url), ..
    } = &opts.strategy
    {
        match sla_scores(http, url, &opts.session.model_id).await {
            Ok(scores) => {
                for (c, e) in candidates.iter_mut().zip(inventory.usable()) {
                    let address = e
                        .info
                        .as_ref()
                        .and_then(|i| i.eth_address.as_deref())
                        .map(str::to_ascii_lowercase);
                    let known = address
                        .and_then(|a| scores.get(&a))
                        .or_else(|| scores.get(&c.uri.to_ascii_lowercase()));
                    if let Some(score) = known {
                        c.sla_score = Some(*score);
                    }
                }
            }
            // Selection still works without the collector: the discovery scores stand.
            Err(error) => warn!(message = "SLA scores unavailable.", url, %error),
        }
    }
    Ok(candidates)
}

/// How long the collector's SLA ranking may take.
const SLA_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the collector's SLA ranking could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    #[error("GET {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: the body is not an SLA ranking: {source}")]
    Body {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The collector's SLA scores (0-100) by orchestrator, from `GET {base}/v1/sla/orchestrators`
/// for `model_id` (docs/collector.md). Keys are as the collector keeps them: the lowercase
/// address, or the URI of an orchestrator without one. Unscored orchestrators are left out.
pub async fn sla_scores(
    http: &reqwest::Client,
    base: &str,
    model_id: &str,
) -> Result<std::collections::HashMap<String, f64>, SlaError> {
    #[derive(serde::Deserialize)]
    struct Ranking {
        orchestrators: Vec<Ranked>,
    }
    #[derive(serde::Deserialize)]
    struct Ranked {
        orchestrator: Option<String>,
        score: RankedScore,
    }
    #[derive(serde::Deserialize)]
    struct RankedScore {
        sla_score: Option<f64>,
    }
    let url = format!("{}/v1/sla/orchestrators", base.trim_end_matches('/'));
    let request = |url: String| async move {
        let response = http
            .get(&url)
            .query(&[("model", model_id)])
            .timeout(SLA_TIMEOUT)
            .send()
            .await
            .map_err(|source| SlaError::Request {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(SlaError::Status { url, status });
        }
        let body = response.bytes().await.map_err(|source| SlaError::Request {
            url: url.clone(),
            source,
        })?;
        serde_json::from_slice::<Ranking>(&body).map_err(|source| SlaError::Body { url, source })
    };
    let ranking = request(url).await?;
    Ok(ranking
        .orchestrators
        .into_iter()
        .filter_map(|r| {
            let score = r.score.sla_score.filter(|s| s.is_finite())?;
            Some((r.orchestrator?.to_ascii_lowercase(), score))
        })
        .collect())
}

fn report_inventory(inventory: &Inventory, sink: Option<&ObservationSink>) {
    let at_unix_ms = unix_ms();
    observe(
        sink,
        Observation::DiscoveryResults {
            at_unix_ms,
            candidates: inventory
                .usable()
                .map(|e| DiscoveredCandidate {
                    address: e.info.as_ref().and_then(|i| i.eth_address.clone()),
                    url: e.candidate.uri.to_string(),
                    latency_ms: e.latency_ms.unwrap_or(0),
                })
                .collect(),
        },
    );
    for entry in inventory.usable() {
        let Some(info) = &entry.info else { continue };
        observe(
            sink,
            Observation::Capabilities {
                at_unix_ms,
                orchestrator: OrchestratorInfo {
                    address: info.eth_address.clone(),
                    url: entry.candidate.uri.to_string(),
                },
                summary: serde_json::to_value(info).unwrap_or(Value::Null),
            },
        );
    }
}

/// What selection knows about one usable inventory entry. A discovery score (0-1, as webhooks
/// and NaaP give it) becomes an SLA score on the 0-100 scale.
fn candidate(entry: &InventoryEntry, model_id: &str) -> Candidate {
    let model = entry.model(model_id);
    let price = entry.info.as_ref().and_then(|i| {
        i.live_prices
            .iter()
            .find(|p| p.model_id == model_id)
            .and_then(|p| Price::new(p.price_per_unit, p.pixels_per_unit))
    });
    Candidate {
        uri: entry.candidate.uri.to_string(),
        latency_ms: entry.latency_ms.unwrap_or(u64::MAX),
        warm: model.is_some_and(|m| m.warm),
        idle_capacity: model.map(|m| m.capacity),
        capacity_in_use: model.map(|m| m.capacity_in_use),
        price,
        sla_score: entry.candidate.score.map(|s| (s * 100.0).clamp(0.0, 100.0)),
    }
}

/// go-livepeer's `stream_id`, as the direct probe forms it.
fn stream_id(session_id: &str) -> String {
    format!("lvt-{}", &session_id[session_id.len().saturating_sub(12)..])
}

/// What the session's tasks share: the monitor and the shares, behind one lock that is never
/// held across an await.
struct Shared {
    clock: Clock,
    /// Wakes the driver when the monitor may have a decision.
    notify: Notify,
    sink: Option<ObservationSink>,
    stream: StreamContext,
    session_recorder: Arc<Mutex<SessionRecorder>>,
    state: Mutex<State>,
}

struct State {
    /// `None` until the first orchestrator accepted the stream.
    monitor: Option<SwapMonitor>,
    /// The share serving now; `None` while swapping and after the end.
    current: Option<usize>,
    shares: Vec<Share>,
    /// A new orchestrator's input channel, for the publisher to pick up at its next segment.
    incoming: Option<(usize, TricklePublisher)>,
    /// The params the next update builds on (the last one sent, or the start params).
    last_params: Value,
}

/// One orchestrator's part of the session.
struct Share {
    uri: String,
    orchestrator: OrchestratorRef,
    gpu: Option<Gpu>,
    get_orchestrator_ms: Option<f64>,
    job_start_ms: Option<f64>,
    from_unix_ms: i64,
    to_unix_ms: Option<i64>,
    /// The end of its measured period on the session clock.
    end_us: Option<u64>,
    ended_by: Option<SwapCause>,
    recorder: Arc<Mutex<SessionRecorder>>,
    live: Arc<Mutex<Liveness>>,
    stop: CancellationToken,
    publish_url: String,
    first_ingest_sent: bool,
    first_output_seen: bool,
}

impl Share {
    fn info(&self) -> OrchestratorInfo {
        OrchestratorInfo {
            address: self.orchestrator.address.clone(),
            url: self.uri.clone(),
        }
    }
}

fn ms(us: u64) -> u64 {
    us / 1000
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Runs `f` on the monitor when `share` is the one serving, then wakes the driver.
    fn if_current(&self, share: usize, f: impl FnOnce(&mut SwapMonitor)) {
        {
            let mut st = self.state();
            if st.current != Some(share) {
                return;
            }
            if let Some(m) = st.monitor.as_mut() {
                f(m);
            }
        }
        self.notify.notify_one();
    }

    fn trace(&self, kind: &'static str, orchestrator: Option<OrchestratorInfo>) {
        observe(
            self.sink.as_ref(),
            Observation::Trace {
                at_unix_ms: unix_ms(),
                stream: self.stream.clone(),
                kind,
                orchestrator,
            },
        );
    }
}

/// The channel hooks of one share: they report to the monitor only while the share serves.
struct ShareHooks {
    shared: Arc<Shared>,
    share: usize,
}

impl ChannelHooks for ShareHooks {
    fn retries_reads(&self) -> bool {
        true
    }

    fn output_frame(&self, at_us: u64) {
        // Frames still decoded from the orchestrator being left count for the freeze (the
        // last frame before the swap), so they are reported while the swap runs too.
        {
            let mut st = self.shared.state();
            let last = st.shares.len().checked_sub(1);
            let reporting = st.current == Some(self.share)
                || (st.current.is_none() && last == Some(self.share));
            if !reporting {
                return;
            }
            if let Some(m) = st.monitor.as_mut() {
                m.handle_output_frame(ms(at_us));
            }
        }
        self.shared.notify.notify_one();
    }

    fn output_segment(&self, at_us: u64) {
        self.shared
            .if_current(self.share, |m| m.handle_output_segment(ms(at_us)));
        let first = {
            let mut st = self.shared.state();
            st.shares.get_mut(self.share).and_then(|s| {
                (!std::mem::replace(&mut s.first_output_seen, true)).then(|| s.info())
            })
        };
        if let Some(info) = first {
            self.shared
                .trace("gateway_receive_first_processed_segment", Some(info));
        }
    }

    fn output_ended(&self, at_us: u64) {
        // The subscriber cannot tell 404 from end of stream; both swap, with the same class.
        self.shared
            .if_current(self.share, |m| m.handle_subscribe_eos(ms(at_us)));
    }

    fn output_error(&self, at_us: u64) {
        self.shared
            .if_current(self.share, |m| m.handle_subscribe_error(ms(at_us)));
    }

    fn output_copy_error(&self, at_us: u64) {
        self.shared
            .if_current(self.share, |m| m.handle_output_copy_error(ms(at_us)));
    }

    fn event(&self, doc: Option<&Value>, at_us: u64) {
        match doc {
            Some(doc) => {
                self.shared
                    .if_current(self.share, |m| m.handle_event(ms(at_us)));
                let info = self.shared.state().shares.get(self.share).map(Share::info);
                if let Some(orchestrator) = info {
                    observe(
                        self.shared.sink.as_ref(),
                        Observation::RunnerEvent {
                            at_unix_ms: unix_ms(),
                            stream: self.shared.stream.clone(),
                            orchestrator,
                            event: doc.clone(),
                        },
                    );
                }
            }
            None => self
                .shared
                .if_current(self.share, |m| m.handle_event_malformed(ms(at_us))),
        }
    }

    fn events_ended(&self, at_us: u64) {
        self.shared
            .if_current(self.share, |m| m.handle_events_end(ms(at_us)));
    }

    fn events_error(&self, at_us: u64) {
        self.shared
            .if_current(self.share, |m| m.handle_events_error(ms(at_us)));
    }

    fn control_not_found(&self, at_us: u64) {
        self.shared
            .if_current(self.share, |m| m.handle_control_not_found(ms(at_us)));
    }

    fn control_write_failed(&self, at_us: u64) {
        self.shared
            .if_current(self.share, |m| m.handle_control_write_failed(ms(at_us)));
    }

    fn params_sent(&self, params: &Value) {
        let mut st = self.shared.state();
        st.last_params = params.clone();
        if let Some(m) = st.monitor.as_mut() {
            m.handle_params(params.to_string().into_bytes());
        }
    }
}

/// The network session's input: whichever orchestrator serves at the moment. A segment that
/// begins while nobody serves (a swap in progress) is skipped; its frames are not sent.
struct NetworkInput {
    shared: Arc<Shared>,
    publisher: Option<(usize, TricklePublisher)>,
    /// The share the open segment goes to.
    writing: Option<usize>,
    finishing: tokio::task::JoinSet<()>,
}

impl NetworkInput {
    fn record(&self, share: usize) -> Recorders {
        let st = self.shared.state();
        let mut all = vec![self.shared.session_recorder.clone()];
        if let Some(s) = st.shares.get(share) {
            all.push(s.recorder.clone());
        }
        Recorders::new(all)
    }
}

impl InputSink for NetworkInput {
    async fn begin_segment(&mut self, at_us: u64) -> Result<Option<SegmentWriter>, Failure> {
        self.writing = None;
        let (current, first_ingest) = {
            let mut st = self.shared.state();
            if let Some(incoming) = st.incoming.take() {
                // The orchestrator left was already closed by the driver; dropping its
                // publisher only drops the preconnected request.
                self.publisher = Some(incoming);
            }
            let Some(current) = st.current else {
                return Ok(None);
            };
            if self.publisher.as_ref().map(|(i, _)| *i) != Some(current) {
                return Ok(None);
            }
            let Some(m) = st.monitor.as_mut() else {
                return Ok(None);
            };
            let swaps_before = (m.records().len(), m.is_ended());
            m.handle_input_segment_started(ms(at_us));
            if (m.records().len(), m.is_ended()) != swaps_before {
                // The slow-orchestrator check fired: this segment is not sent.
                drop(st);
                self.shared.notify.notify_one();
                return Ok(None);
            }
            let first = st.shares.get_mut(current).and_then(|s| {
                (!std::mem::replace(&mut s.first_ingest_sent, true)).then(|| s.info())
            });
            (current, first)
        };
        let Some((_, publisher)) = self.publisher.as_mut() else {
            return Ok(None);
        };
        match publisher.begin_segment().await {
            Ok(writer) => {
                if let Some(info) = first_ingest {
                    self.shared
                        .trace("gateway_send_first_ingest_segment", Some(info));
                }
                self.writing = Some(current);
                Ok(Some(writer))
            }
            Err(e) => {
                let now_ms = ms(self.shared.clock.now_us());
                let gone = matches!(e, TrickleError::ChannelGone);
                self.shared.if_current(current, |m| {
                    m.handle_input_segment_finished(now_ms);
                    if gone {
                        m.handle_publish_not_found(now_ms);
                    }
                });
                Ok(None)
            }
        }
    }

    fn frame_sent(&mut self, pts: u64, at_us: u64) {
        if let Some(share) = self.writing {
            self.record(share)
                .each(|r| r.handle_input_frame_sent(pts, at_us));
        }
    }

    fn write_failed(&mut self, error: TrickleError, at_us: u64) -> Result<(), Failure> {
        debug!(message = "Input segment write failed; dropping it.", %error);
        if let Some(share) = self.writing.take() {
            let gone = matches!(error, TrickleError::ChannelGone);
            self.shared.if_current(share, |m| {
                m.handle_input_segment_finished(ms(at_us));
                if gone {
                    m.handle_publish_not_found(ms(at_us));
                }
            });
        }
        Ok(())
    }

    fn segment_written(
        &mut self,
        writer: SegmentWriter,
        bytes: u64,
        at_us: u64,
    ) -> Result<(), Failure> {
        let Some(share) = self.writing.take() else {
            return Ok(());
        };
        self.record(share)
            .each(|r| r.handle_segment_sent(bytes, at_us));
        let shared = self.shared.clone();
        self.finishing.spawn(async move {
            let result = writer.finish().await;
            let now_ms = ms(shared.clock.now_us());
            shared.if_current(share, |m| {
                m.handle_input_segment_finished(now_ms);
                if matches!(result, Err(TrickleError::ChannelGone)) {
                    m.handle_publish_not_found(now_ms);
                }
            });
        });
        while self.finishing.try_join_next().is_some() {}
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        let all = async { while self.finishing.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .is_err()
        {
            self.finishing.abort_all();
        }
        Ok(())
    }
}

/// How the session's media phase ended.
enum End {
    /// Publishing and the drain completed.
    Completed,
    /// The monitor ended the session (too many swaps, or nobody took over).
    Ended { reason: EndReason },
    /// No orchestrator accepted the stream at start.
    NoneAvailable(NoneAvailable),
    /// The cancel token stopped it.
    Interrupted,
}

struct Driver<'a> {
    opts: &'a NetworkOptions,
    http: &'a reqwest::Client,
    clip: Arc<Clip>,
    shared: Arc<Shared>,
    candidates: Vec<Candidate>,
    strategy: Box<dyn SelectionStrategy + Send>,
    session_id: String,
    /// Stops every channel task of every share at the end of the session.
    stop: CancellationToken,
    publish_start: Option<Instant>,
}

/// A start that found nobody: go-livepeer's message, the tries made, and whether go-livepeer
/// would emit `gateway_no_orchestrators_available` (not on its deadline path).
struct NoneAvailable {
    tries: u32,
    message: String,
    trace: bool,
}

impl NoneAvailable {
    fn out_of_step(tries: u32) -> Self {
        Self {
            tries,
            message: NO_ORCHESTRATORS_AVAILABLE.to_string(),
            trace: true,
        }
    }

    fn observe(&self, shared: &Shared) {
        if self.trace {
            observe(
                shared.sink.as_ref(),
                Observation::NoOrchestratorsAvailable {
                    at_unix_ms: unix_ms(),
                    stream: shared.stream.clone(),
                    tries: self.tries,
                    message: self.message.clone(),
                },
            );
        }
    }
}

/// A try's outcome as the start loop needs it.
struct Started {
    urls: JobUrls,
    scratch: SessionReport,
    /// The job's payment loop; it runs until the share stops.
    payments: DropGuard,
}

impl Driver<'_> {
    fn now_ms(&self) -> u64 {
        ms(self.shared.clock.now_us())
    }

    async fn run(&mut self, cancel: CancellationToken) -> End {
        let mut suspended = Suspensions::new();
        let started = tokio::select! {
            s = self.start(&mut suspended) => s,
            () = cancel.cancelled() => return End::Interrupted,
        };
        let (idx, started) = match started {
            Ok(v) => v,
            Err(none) => return End::NoneAvailable(none),
        };
        let uri = self.candidates[idx].uri.clone();
        let mut monitor = SwapMonitor::with_config(uri, self.opts.swap, self.now_ms());
        for (uri, s) in suspended.iter() {
            monitor.suspensions_mut().suspend(uri, s.at_ms, s.reason);
        }
        self.shared.state().monitor = Some(monitor);
        self.publish_start = Some(Instant::now());
        self.open_share(idx, started, None);

        let input_live = Mutex::new(Liveness::default());
        let mut input = NetworkInput {
            shared: self.shared.clone(),
            publisher: None,
            writing: None,
            finishing: tokio::task::JoinSet::new(),
        };
        let session = &self.opts.session;
        let clip = self.clip.clone();
        let clock = self.shared.clock.clone();
        let shared = self.shared.clone();
        let publishing = async {
            // Publishing never fails in network mode: a lost channel is a swap.
            let _ = publish_clip(&clip, &clock, session.duration, &input_live, &mut input).await;
            let (recorder, live) = {
                let st = shared.state();
                let share = st.current.and_then(|i| st.shares.get(i));
                (
                    share.map(|s| s.recorder.clone()),
                    share.map(|s| s.live.clone()),
                )
            };
            if let (Some(recorder), Some(live)) = (recorder, live) {
                drain_output(
                    &clock,
                    session.timeouts.drain,
                    &recorder,
                    &input_live,
                    &live,
                )
                .await;
            }
        };
        let supervising = supervise(
            &shared,
            &mut *self.strategy,
            &self.candidates,
            self.opts,
            self.http,
            &self.session_id,
            self.publish_start,
            &self.stop,
        );
        let end = tokio::select! {
            () = publishing => End::Completed,
            reason = supervising => End::Ended { reason },
            () = cancel.cancelled() => End::Interrupted,
        };
        let measured_end_us = match (&end, lock(&input_live).last_input_us) {
            (End::Completed, Some(last)) => last,
            _ => self.shared.clock.now_us(),
        };
        self.close(measured_end_us, input.publisher.take()).await;
        end
    }

    /// Runs go-livepeer's start loop over the strategy's order, suspending every candidate
    /// that was busy or failed. `Err` carries the tries made and go-livepeer's message.
    async fn start(
        &mut self,
        suspended: &mut Suspensions,
    ) -> Result<(usize, Started), NoneAvailable> {
        start_on(
            &mut *self.strategy,
            &self.candidates,
            suspended,
            &self.opts.session,
            self.opts.start,
            self.http,
            &self.shared.clock,
            &self.session_id,
        )
        .await
    }

    fn open_share(&self, idx: usize, started: Started, replay: Option<Bytes>) {
        open_share(
            &self.shared,
            &self.candidates[idx].uri,
            started,
            replay,
            &self.opts.session,
            self.http,
            self.publish_start.unwrap_or_else(Instant::now),
            &self.stop,
        );
    }

    /// Ends the session: closes the serving orchestrator's input channel (how a gateway ends
    /// a job), stops every channel task and fixes the end of the last share.
    async fn close(&mut self, end_us: u64, publisher: Option<(usize, TricklePublisher)>) {
        let (current, url) = {
            let mut st = self.shared.state();
            let current = st.current.take();
            let incoming = st.incoming.take();
            let url = current
                .and_then(|i| st.shares.get(i))
                .map(|s| s.publish_url.clone());
            if let Some(i) = current
                && let Some(s) = st.shares.get_mut(i)
            {
                s.end_us = Some(end_us);
                s.to_unix_ms = Some(unix_ms());
            }
            drop(incoming);
            (current, url)
        };
        let closing = match (publisher, url) {
            (Some((i, p)), _) if Some(i) == current => Some(p),
            (_, Some(url)) => Some(TricklePublisher::new(self.http.clone(), url)),
            _ => None,
        };
        if let Some(p) = closing
            && tokio::time::timeout(Duration::from_secs(2), p.close())
                .await
                .is_err()
        {
            debug!(message = "Closing the input channel timed out.");
        }
        // Give the readers a moment to end on their own (the orchestrator deletes the
        // channels), then stop them.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.stop.cancel();
        if let Some(i) = current {
            let info = self.shared.state().shares.get(i).map(Share::info);
            self.shared.trace("gateway_ingest_stream_closed", info);
        }
    }

    /// The report: session metrics from every frame, one `served_by` share per orchestrator,
    /// the swaps, and the outcome.
    fn finish(self, mut report: SessionReport, end: End, origin_unix_ms: i64) -> ProbeRun {
        let interrupted = matches!(end, End::Interrupted);
        let mut st = self.shared.state();
        let records = st
            .monitor
            .as_ref()
            .map(|m| m.records().to_vec())
            .unwrap_or_default();
        let end_us = st
            .shares
            .last()
            .and_then(|s| s.end_us)
            .unwrap_or_else(|| self.shared.clock.now_us());
        let (mut metrics, _) = lock(&self.shared.session_recorder).finish(end_us);
        let mut served_by = Vec::with_capacity(st.shares.len());
        let mut last_runner = None;
        let mut media = lvt_schema::MediaErrors::default();
        for share in &mut st.shares {
            let share_end_us = share.end_us.unwrap_or(end_us);
            let errors = lock(&share.live).media_errors;
            media.cc_errors += errors.cc_errors;
            media.sync_losses += errors.sync_losses;
            media.pes_errors += errors.pes_errors;
            media.truncated_frames += errors.truncated_frames;
            let (m, runner) = lock(&share.recorder).finish(share_end_us);
            served_by.push(ServedBy {
                orchestrator: share.orchestrator.clone(),
                gpu: share.gpu.clone(),
                from_unix_ms: share.from_unix_ms,
                to_unix_ms: share.to_unix_ms.unwrap_or_else(unix_ms),
                startup_ms: m.startup_ms,
                frames_received: m.frames_received,
                e2e_latency_ms: m.e2e_latency_ms,
                output_fps: m.output_fps,
                stalls: m.stalls,
                ended_by: share.ended_by.map(|c| c.message().to_string()),
                failure: share.ended_by.map(|c| c.failure_class()),
            });
            last_runner = Some(runner);
        }
        metrics.media_errors = media;
        if let Some(first) = st.shares.first() {
            metrics.get_orchestrator_ms = first.get_orchestrator_ms;
            metrics.job_start_ms = first.job_start_ms;
        }
        metrics.swaps = records
            .iter()
            .map(|r| r.to_schema(origin_unix_ms))
            .collect();
        // The orchestrator named is the one that served last: the session ended with it.
        if let Some(last) = st.shares.last() {
            report.orchestrator = Some(last.orchestrator.clone());
            report.gpu = last.gpu.clone();
        }
        drop(st);
        let runner = last_runner.unwrap_or_default();
        let fatal = match &end {
            End::Completed | End::Interrupted => None,
            End::Ended { reason } => Some(fail(reason.failure_class(), reason.message())),
            End::NoneAvailable(none) => {
                none.observe(&self.shared);
                Some(fail(FailureClass::Capacity, none.message.clone()))
            }
        };
        let evidence = Evidence {
            fatal,
            frames_received: metrics.frames_received,
            bytes_received: metrics.bytes_received,
            events_malformed: u64::from(runner.events_malformed),
            runner_reported_error: runner.errors.first().cloned().or_else(|| {
                (runner.last_state.as_deref() == Some("ERROR")).then(|| "state ERROR".into())
            }),
        };
        let (outcome, failure) = classify(&evidence);
        report.metrics = metrics;
        report.runner = runner;
        report.served_by = served_by;
        report.outcome = outcome;
        report.failure = failure;
        report.ended_at_unix_ms = unix_ms();
        ProbeRun {
            report,
            interrupted,
        }
    }
}

/// go-livepeer's start loop: tries the strategy's order, each try a GetOrchestrator and a job
/// start; busy and failed candidates are suspended for the session.
#[allow(clippy::too_many_arguments)]
async fn start_on(
    strategy: &mut (dyn SelectionStrategy + Send),
    candidates: &[Candidate],
    suspended: &mut Suspensions,
    session: &ProbeOptions,
    limits: StartLimits,
    http: &reqwest::Client,
    clock: &Clock,
    session_id: &str,
) -> Result<(usize, Started), NoneAvailable> {
    let now_ms = ms(clock.now_us());
    let order = strategy.order(candidates, suspended, now_ms);
    let mut attempts = StartAttempts::with_limits(order, limits, now_ms);
    loop {
        match attempts.poll_next() {
            Next::Try(idx) => {
                let uri = &candidates[idx].uri;
                let (result, started) = try_start(session, uri, http, clock, session_id).await;
                let now_ms = ms(clock.now_us());
                match result {
                    AttemptResult::Busy => {
                        suspended.suspend(uri, now_ms, SuspendReason::Busy);
                    }
                    AttemptResult::Err => {
                        suspended.suspend(uri, now_ms, SuspendReason::StartFailed);
                    }
                    _ => {}
                }
                if let Err(e) = attempts.handle_attempt_result(idx, result, now_ms) {
                    // Invariant: the try just reported is the one in flight; if not, stop
                    // rather than loop.
                    warn!(message = "Start loop out of step.", error = %e);
                    return Err(NoneAvailable::out_of_step(attempts.tries()));
                }
                if let Some(started) = started {
                    return Ok((idx, started));
                }
            }
            Next::Started(_) | Next::Wait | Next::Rejected(_) => {
                // A start without a job (Started is only reported together with the job
                // above) or a rejection: nobody serves.
                return Err(NoneAvailable::out_of_step(attempts.tries()));
            }
            Next::GiveUp(end) => {
                info!(
                    message = "No orchestrator accepted the stream.",
                    tries = end.tries
                );
                return Err(NoneAvailable {
                    tries: end.tries,
                    message: end.message(limits.retry_timeout_ms),
                    trace: end.emits_no_orchestrators_trace(),
                });
            }
        }
    }
}

/// One try: GetOrchestrator then job start on `uri`, through the probe's own start function
/// (where a payment will be added). A busy orchestrator is `Busy`; every other failure `Err`.
async fn try_start(
    session: &ProbeOptions,
    uri: &str,
    http: &reqwest::Client,
    clock: &Clock,
    session_id: &str,
) -> (AttemptResult, Option<Started>) {
    let Ok(target) = uri.parse() else {
        return (AttemptResult::Err, None);
    };
    let mut opts = session.clone();
    opts.target = target;
    let mut scratch = SessionReport {
        orchestrator: Some(OrchestratorRef {
            address: None,
            uri: uri.to_string(),
            cert_sha256: None,
        }),
        ..SessionReport::new(session_id, session.model_id.clone(), unix_ms())
    };
    match discover_and_start(&opts, http, clock, &mut scratch).await {
        Ok(job) => (
            AttemptResult::Ok,
            Some(Started {
                urls: job.urls,
                scratch,
                payments: job.payments,
            }),
        ),
        Err(failure) => {
            info!(message = "Job start refused.", uri, class = ?failure.class, detail = %failure.detail);
            let result = if failure.class == FailureClass::Capacity {
                AttemptResult::Busy
            } else {
                AttemptResult::Err
            };
            (result, None)
        }
    }
}

/// Makes `started` the serving share: its recorder, its channel tasks, and its input
/// channel for the publisher to pick up.
#[allow(clippy::too_many_arguments)]
fn open_share(
    shared: &Arc<Shared>,
    uri: &str,
    started: Started,
    replay: Option<Bytes>,
    session: &ProbeOptions,
    http: &reqwest::Client,
    publish_start: Instant,
    stop: &CancellationToken,
) {
    let Started {
        urls,
        scratch,
        payments,
    } = started;
    let recorder = Arc::new(Mutex::new(SessionRecorder::new(MeasureConfig::default())));
    let live = Arc::new(Mutex::new(Liveness::default()));
    let share_stop = stop.child_token();
    // The share's job is paid for as long as it serves: its payment loop stops with the share.
    let share_ended = share_stop.clone();
    tokio::spawn(async move {
        share_ended.cancelled().await;
        drop(payments);
    });
    let (idx, params) = {
        let mut st = shared.state();
        let idx = st.shares.len();
        st.shares.push(Share {
            uri: uri.to_string(),
            orchestrator: scratch.orchestrator.clone().unwrap_or(OrchestratorRef {
                address: None,
                uri: uri.to_string(),
                cert_sha256: None,
            }),
            gpu: scratch.gpu.clone(),
            get_orchestrator_ms: scratch.metrics.get_orchestrator_ms,
            job_start_ms: scratch.metrics.job_start_ms,
            from_unix_ms: unix_ms(),
            to_unix_ms: None,
            end_us: None,
            ended_by: None,
            recorder: recorder.clone(),
            live: live.clone(),
            stop: share_stop.clone(),
            publish_url: urls.publish_url.clone(),
            first_ingest_sent: false,
            first_output_seen: false,
        });
        st.current = Some(idx);
        st.incoming = Some((idx, TricklePublisher::new(http.clone(), &urls.publish_url)));
        (idx, st.last_params.clone())
    };
    info!(message = "Orchestrator serving.", uri, manifest_id = %urls.manifest_id, share = idx);
    let recorders = Recorders::new(vec![shared.session_recorder.clone(), recorder]);
    let hooks: Hooks = Arc::new(ShareHooks {
        shared: shared.clone(),
        share: idx,
    });
    let clock = shared.clock.clone();
    tokio::spawn(read_output(
        TrickleSubscriber::new(http.clone(), &urls.subscribe_url),
        clock.clone(),
        recorders.clone(),
        live,
        hooks.clone(),
        share_stop.clone(),
    ));
    tokio::spawn(read_events(
        TrickleSubscriber::new(http.clone(), &urls.events_url),
        clock.clone(),
        recorders.clone(),
        hooks.clone(),
        share_stop.clone(),
    ));
    tokio::spawn(send_control(
        TricklePublisher::new(http.clone(), &urls.control_url),
        ControlPlan {
            start: publish_start,
            offsets: session.params_update_offsets.clone(),
            params,
            replay,
            keepalive_interval: session.keepalive_interval,
        },
        clock,
        recorders,
        hooks,
        share_stop,
    ));
}

/// Waits on the monitor: ticks it at its timeouts and carries out its decisions. Returns
/// only when it ends the session.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    shared: &Arc<Shared>,
    strategy: &mut (dyn SelectionStrategy + Send),
    candidates: &[Candidate],
    opts: &NetworkOptions,
    http: &reqwest::Client,
    session_id: &str,
    publish_start: Option<Instant>,
    stop: &CancellationToken,
) -> EndReason {
    loop {
        let (decision, timeout_ms) = {
            let mut st = shared.state();
            match st.monitor.as_mut() {
                Some(m) => (m.poll_decision(), m.poll_timeout()),
                None => (None, None),
            }
        };
        match decision {
            Some(Decision::End { reason, at_ms }) => {
                warn!(message = "Session ended by the gateway.", reason = %reason.message(), at_ms);
                return reason;
            }
            Some(Decision::Swap { cause, at_ms, .. }) => {
                swap(
                    shared,
                    strategy,
                    candidates,
                    opts,
                    http,
                    session_id,
                    publish_start,
                    stop,
                    cause,
                    at_ms,
                )
                .await;
                continue;
            }
            None => {}
        }
        let wake = async {
            match timeout_ms {
                Some(at_ms) => {
                    tokio::time::sleep_until(shared.clock.at(at_ms.saturating_mul(1000))).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shared.notify.notified() => {}
            () = wake => {
                let now_ms = ms(shared.clock.now_us());
                if let Some(m) = shared.state().monitor.as_mut() {
                    m.handle_tick(now_ms);
                }
            }
        }
    }
}

/// Carries out a swap: leaves the serving orchestrator (ends its input channel, stops its
/// channel tasks), selects again without the suspended ones, starts on the new one with the
/// last params replayed, and tells the monitor how it went.
#[allow(clippy::too_many_arguments)]
async fn swap(
    shared: &Arc<Shared>,
    strategy: &mut (dyn SelectionStrategy + Send),
    candidates: &[Candidate],
    opts: &NetworkOptions,
    http: &reqwest::Client,
    session_id: &str,
    publish_start: Option<Instant>,
    stop: &CancellationToken,
    cause: SwapCause,
    at_ms: u64,
) {
    let now_us = shared.clock.now_us();
    let (from, old_url, old_stop, mut suspended) = {
        let mut st = shared.state();
        let old = st.current.take();
        st.incoming = None;
        let mut from = None;
        let mut old_url = None;
        let mut old_stop = None;
        if let Some(s) = old.and_then(|i| st.shares.get_mut(i)) {
            s.end_us = Some(now_us);
            s.to_unix_ms = Some(unix_ms());
            s.ended_by = Some(cause);
            from = Some(s.info());
            old_url = Some(s.publish_url.clone());
            old_stop = Some(s.stop.clone());
        }
        let suspended = st
            .monitor
            .as_ref()
            .map(|m| m.suspensions().clone())
            .unwrap_or_default();
        (from, old_url, old_stop, suspended)
    };
    warn!(message = "Swapping orchestrators.", cause = cause.as_str(), at_ms, from = ?from.as_ref().map(|f| &f.url));
    // Ending the old job's input channel is how go-livepeer stops an orchestrator it leaves.
    if let Some(url) = old_url {
        let publisher = TricklePublisher::new(http.clone(), url);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), publisher.close()).await;
        });
    }
    let started = start_on(
        strategy,
        candidates,
        &mut suspended,
        &opts.session,
        opts.start,
        http,
        &shared.clock,
        session_id,
    )
    .await;
    // The old share's readers kept running until now so that its last frames count for the
    // freeze; a frame still in flight from it is no longer wanted.
    if let Some(old_stop) = old_stop {
        old_stop.cancel();
    }
    let now_ms = ms(shared.clock.now_us());
    match started {
        Ok((idx, started)) => {
            let to = candidates[idx].uri.clone();
            let replay = {
                let mut st = shared.state();
                let Some(m) = st.monitor.as_mut() else {
                    return;
                };
                for (uri, s) in suspended.iter() {
                    m.suspensions_mut().suspend(uri, s.at_ms, s.reason);
                }
                if let Err(e) = m.handle_swap_completed(to.clone(), now_ms) {
                    warn!(message = "Swap completed without a pending swap.", error = %e);
                }
                m.params_to_replay().map(Bytes::copy_from_slice)
            };
            let address = started
                .scratch
                .orchestrator
                .as_ref()
                .and_then(|o| o.address.clone());
            open_share(
                shared,
                &to,
                started,
                replay,
                &opts.session,
                http,
                publish_start.unwrap_or_else(Instant::now),
                stop,
            );
            if let Some(from) = from {
                observe(
                    shared.sink.as_ref(),
                    Observation::Swap {
                        at_unix_ms: unix_ms(),
                        stream: shared.stream.clone(),
                        from,
                        to: OrchestratorInfo { address, url: to },
                        cause: cause.message().to_string(),
                    },
                );
            }
        }
        Err(none) => {
            none.observe(shared);
            let mut st = shared.state();
            if let Some(m) = st.monitor.as_mut() {
                for (uri, s) in suspended.iter() {
                    m.suspensions_mut().suspend(uri, s.at_ms, s.reason);
                }
                if let Err(e) = m.handle_reselection_failed(now_ms) {
                    warn!(message = "Reselection failed without a pending swap.", error = %e);
                }
            }
        }
    }
    shared.notify.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvt_gateway::discovery::{Candidate as Discovered, Status};
    use lvt_gateway::grpc::{LiveModelSummary, LivePrice, OrchestratorSummary};

    fn entry(score: Option<f64>, models: Vec<LiveModelSummary>) -> InventoryEntry {
        InventoryEntry {
            candidate: Discovered {
                uri: "https://o.example:8935".parse().unwrap(),
                score,
                source: "static",
            },
            latency_ms: Some(42),
            cert_fingerprint: None,
            info: Some(OrchestratorSummary {
                transcoder_uri: "https://o.example:8935".into(),
                eth_address: Some("0xAbC".into()),
                advertises_live_video_to_video: true,
                live_models: models,
                gpus: Vec::new(),
                price_per_unit: None,
                pixels_per_unit: None,
                live_prices: vec![LivePrice {
                    model_id: "noop".into(),
                    price_per_unit: 3,
                    pixels_per_unit: 2,
                }],
                auth_token_present: true,
                auth_token_expiration_unix_s: None,
                nodes: Vec::new(),
            }),
            status: Status::Usable,
        }
    }

    fn model(id: &str, warm: bool, capacity: u32, in_use: u32) -> LiveModelSummary {
        LiveModelSummary {
            model_id: id.into(),
            warm,
            capacity,
            capacity_in_use: in_use,
            runner_version: String::new(),
        }
    }

    #[test]
    fn candidates_carry_what_selection_needs_for_the_model() {
        let e = entry(
            Some(0.8),
            vec![model("other", false, 0, 3), model("noop", true, 2, 1)],
        );
        let c = candidate(&e, "noop");
        assert_eq!(c.uri, "https://o.example:8935");
        assert_eq!(c.latency_ms, 42);
        assert!(c.warm);
        assert_eq!((c.idle_capacity, c.capacity_in_use), (Some(2), Some(1)));
        assert_eq!(c.price, Price::new(3, 2));
        // A discovery score of 0-1 becomes an SLA score of 0-100.
        assert_eq!(c.sla_score, Some(80.0));
        let c = candidate(&entry(Some(7.0), Vec::new()), "noop");
        assert_eq!(c.sla_score, Some(100.0), "clamped to the scale");
        assert!(!c.warm && c.idle_capacity.is_none());
        assert_eq!(candidate(&entry(None, Vec::new()), "noop").sla_score, None);
    }

    #[test]
    fn stream_ids_are_the_probes() {
        assert_eq!(
            stream_id("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            "lvt-0c1d2e3f4a5b"
        );
        assert_eq!(stream_id("short"), "lvt-short");
    }
}
