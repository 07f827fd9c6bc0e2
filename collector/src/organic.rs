//! Organic load: sessions of real gateway traffic, derived from the go-livepeer events the
//! collector stores, so that the SLA has organic-load cells (`test_load = false`) beside the
//! tester's test-load cells and never mixed with them.
//!
//! [`OrganicFold`] is the sans-IO core: it folds `stream_trace`, `ai_stream_status` and
//! `ai_stream_events` envelopes per (gateway, stream) and, once a stream is finished, turns it
//! into a [`SessionReport`] with `is_test_load = false` and `mode = network`; the GPUs come from
//! the orchestrators' `network_capabilities` snapshots. A stream is
//! finished at `gateway_ingest_stream_closed`, or when no event of it arrived for the idle
//! timeout: go-livepeer delivers events at most once, so a lost close must not keep a stream
//! open forever. Time is an input (the collector's arrival clock), never read here.
//!
//! [`OrganicLoad`] is the thin edge the server holds: the events ingest feeds it what it stored,
//! and it ships finished sessions through the normal [`Store::insert_batch`], so their SLA cells
//! follow like any record's. docs/sla.md ("Organic load") states every rule, and
//! [`OrganicFold::take_finished`] and `build_report` implement them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use lvt_schema::events::{
    AiStreamEventKind, EventEnvelope, EventView, OrchestratorCapabilities, OrchestratorInfo,
    StreamContext, TraceKind,
};
use lvt_schema::{
    Failure, FailureClass, FpsSummary, Gpu, OrchestratorRef, Outcome, PromptRef, ServedBy,
    SessionReport, Swap, TargetMode,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::store::{InsertOutcome, Store, StoreError, StoredBatch};

/// How long a stream may go without any event before it is finished anyway, in milliseconds.
/// A running stream sends a status event every 10 s and the gateway stops a job that sent none
/// for 30 s, so two minutes of silence means the stream is over and its close was lost.
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 120_000;

/// How many streams may be open at once by default; events of further streams are dropped and
/// counted, so a flood of bogus stream ids cannot grow the collector without bound.
pub const DEFAULT_MAX_OPEN_STREAMS: usize = 100_000;

/// The agent id the stored organic batches carry: they are derived by the collector, not shipped
/// by an agent, and `/v1/agents` lists them under this id.
pub const ORGANIC_AGENT_ID: &str = "organic";

/// The pipeline of every organic session: the gateway events describe live video-to-video
/// streams only.
pub const LIVE_PIPELINE: &str = "live-video-to-video";

/// The model id of a session whose events never named one.
pub const UNKNOWN_MODEL: &str = "unknown";

/// The most entries one stream keeps per list (traces, errors, status samples, orchestrator
/// sightings), so that one very long or very chatty stream stays bounded in memory.
const MAX_ITEMS_PER_STREAM: usize = 4096;

/// How many orchestrators' hardware the fold remembers at most (the network has a few hundred).
const MAX_KNOWN_ORCHESTRATORS: usize = 10_000;

/// How many finished sessions wait for the store at most when it keeps failing; beyond this the
/// oldest are dropped (and logged) rather than held forever.
const MAX_PENDING_SESSIONS: usize = 100_000;

/// The runner states whose `inference_status.fps` is not output of the stream yet.
const NOT_SERVING_STATES: [&str; 2] = ["LOADING", "OFFLINE"];

/// Whether the fold reads events of `family` (the envelope `type`): the stream-scoped families,
/// and `network_capabilities` for the orchestrators' GPUs. A caller can skip handing it anything
/// else.
pub fn folds_family(family: &str) -> bool {
    matches!(
        family,
        "stream_trace" | "ai_stream_status" | "ai_stream_events" | "network_capabilities"
    )
}

/// What the fold is told to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganicSettings {
    /// See [`DEFAULT_IDLE_TIMEOUT_MS`].
    pub idle_timeout_ms: i64,
    /// See [`DEFAULT_MAX_OPEN_STREAMS`].
    pub max_open_streams: usize,
    /// Gateways whose traffic is test load (lvt's own gateways): their events never become
    /// organic sessions. Compared with the envelope's `gateway` exactly.
    pub test_gateways: HashSet<String>,
}

impl Default for OrganicSettings {
    fn default() -> Self {
        Self {
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_open_streams: DEFAULT_MAX_OPEN_STREAMS,
            test_gateways: HashSet::new(),
        }
    }
}

/// Counters of what the fold did with the events it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldStats {
    /// Events folded into a stream.
    pub events_folded: u64,
    /// Events of a family or shape that says nothing about a stream (network capabilities,
    /// discovery, payments, no stream id).
    pub events_ignored: u64,
    /// Events whose id this stream already folded (a replayed topic, a retried batch).
    pub events_repeated: u64,
    /// Events of a test gateway.
    pub events_test_load: u64,
    /// Events arriving for a stream that was finished less than an idle timeout ago.
    pub events_late: u64,
    /// Events dropped because [`OrganicSettings::max_open_streams`] streams were open.
    pub events_over_capacity: u64,
    /// Streams finished into a session.
    pub sessions: u64,
    /// Streams finished without a `gateway_receive_stream_request`, so not a session.
    pub streams_unrequested: u64,
}

/// One (gateway, stream) pair: the identity of an organic stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct StreamKey {
    gateway: String,
    stream: String,
}

/// An orchestrator as the events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Orchestrator {
    address: Option<String>,
    url: Option<String>,
}

impl Orchestrator {
    fn of(info: &OrchestratorInfo) -> Option<Self> {
        (info.address.is_some() || info.url.is_some()).then(|| Self {
            address: info.address.clone(),
            url: info.url.clone(),
        })
    }

    /// One orchestrator is the same whatever case its address is written in.
    fn same_as(&self, other: &Self) -> bool {
        match (&self.address, &other.address) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => self.url == other.url,
        }
    }

    /// How a swap names it: its URL, else its address.
    fn label(&self) -> String {
        self.url
            .clone()
            .or_else(|| self.address.clone())
            .unwrap_or_default()
    }

    /// The key of its hardware: the lowercase address, else the URL (as SLA cells name it).
    fn hardware_key(&self) -> String {
        match &self.address {
            Some(address) => address.to_ascii_lowercase(),
            None => self.url.clone().unwrap_or_default(),
        }
    }

    fn reference(&self) -> OrchestratorRef {
        OrchestratorRef {
            address: self.address.clone(),
            uri: self.url.clone().unwrap_or_default(),
            cert_sha256: None,
        }
    }
}

/// What is known of one open stream.
#[derive(Debug, Default)]
struct StreamState {
    /// The collector's clock when the stream's last event arrived: the idle timeout runs on it.
    last_arrival_unix_ms: i64,
    last_event_unix_ms: Option<i64>,
    seen_ids: HashSet<String>,
    requested_at: Option<i64>,
    first_ingest_at: Option<i64>,
    first_output_at: Option<i64>,
    playable_at: Option<i64>,
    no_orchestrators_at: Option<i64>,
    closed_at: Option<i64>,
    /// `(at, cause)` of every `orchestrator_swap`.
    swaps: Vec<(i64, String)>,
    /// `(at, orchestrator)` of every event that named one.
    sightings: Vec<(i64, Orchestrator)>,
    model_id: Option<String>,
    status_events: u32,
    /// `(at, fps)` of `inference_status.fps` of status events in a serving state.
    output_fps_samples: Vec<(i64, f64)>,
    /// The latest-by-event-time values, as `(at, value)`, so that arrival order does not matter.
    last_output_fps: Option<(i64, f64)>,
    last_input_fps: Option<(i64, f64)>,
    last_params_hash: Option<(i64, String)>,
    /// `(at, state)` of every status event; sorted when the session is built.
    states: Vec<(i64, String)>,
    restart_count: Option<u64>,
    /// `(at, message)` of every error seen; sorted and deduplicated when the session is built.
    errors: Vec<(i64, String)>,
    error_events: u32,
    events: u32,
    /// `(at, subtype)` of every trace; sorted when the session is built.
    traces: Vec<(i64, String)>,
}

/// Keeps the value with the later event time (the later one wins a tie, so a repeat is a no-op).
fn latest<T>(slot: &mut Option<(i64, T)>, at: i64, value: T) {
    if slot.as_ref().is_none_or(|(known_at, _)| at >= *known_at) {
        *slot = Some((at, value));
    }
}

/// Keeps the earliest of two times.
fn earliest(slot: &mut Option<i64>, at: i64) {
    *slot = Some(slot.map_or(at, |known| known.min(at)));
}

/// Appends unless the list is full.
fn bounded_push<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_ITEMS_PER_STREAM {
        list.push(item);
    }
}

impl StreamState {
    fn saw_event(&mut self, at: i64) {
        self.last_event_unix_ms = Some(self.last_event_unix_ms.map_or(at, |last| last.max(at)));
        self.events = self.events.saturating_add(1);
    }

    fn saw_context(&mut self, context: &StreamContext, at: i64) {
        if let Some(orchestrator) = context
            .orchestrator_info
            .as_ref()
            .and_then(Orchestrator::of)
        {
            bounded_push(&mut self.sightings, (at, orchestrator));
        }
        // go-livepeer's `pipeline` on stream events is the requested model (`streamdiffusion`,
        // `comfyui`, ...); the pipeline name itself says nothing and `pipeline_id` is an instance
        // id that would split every cohort, so neither is used.
        if let Some(model) = context
            .pipeline
            .as_deref()
            .filter(|model| !model.is_empty() && *model != LIVE_PIPELINE)
            && self.model_id.is_none()
        {
            self.model_id = Some(model.to_owned());
        }
    }
}

/// The sans-IO fold of gateway events into organic sessions.
#[derive(Debug, Default)]
pub struct OrganicFold {
    settings: OrganicSettings,
    /// Open streams, ordered so that finished sessions come out in a deterministic order.
    streams: BTreeMap<StreamKey, StreamState>,
    /// Streams finished recently, with the arrival time they finished at: their late events
    /// (a status sent just before the close, delivered after it) are dropped, not made into a
    /// second, partial stream.
    finished: HashMap<StreamKey, i64>,
    /// The GPU each orchestrator last advertised per model (`network_capabilities`), by
    /// [`Orchestrator::hardware_key`].
    hardware: HashMap<String, HashMap<String, Gpu>>,
    stats: FoldStats,
}

impl OrganicFold {
    /// An empty fold.
    pub fn new(settings: OrganicSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// What the fold did so far.
    pub fn stats(&self) -> FoldStats {
        self.stats
    }

    /// How many streams are open.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Folds one stored, usable envelope that arrived at `arrival_unix_ms` (the collector's
    /// clock). Events are folded in any order; times inside a stream come from the events.
    pub fn push(&mut self, envelope: &EventEnvelope, arrival_unix_ms: i64) {
        let Ok(view) = envelope.view() else {
            self.stats.events_ignored += 1;
            return;
        };
        let context = match &view {
            EventView::StreamTrace(trace) => &trace.context,
            EventView::AiStreamStatus(status) => &status.context,
            EventView::AiStreamEvent(event) => &event.context,
            EventView::NetworkCapabilities(orchestrators) => {
                self.learn_hardware(orchestrators);
                self.stats.events_folded += 1;
                return;
            }
            _ => {
                self.stats.events_ignored += 1;
                return;
            }
        };
        let Some(stream) = context
            .stream_id
            .clone()
            .or_else(|| context.request_id.clone())
        else {
            self.stats.events_ignored += 1;
            return;
        };
        if self.settings.test_gateways.contains(&envelope.gateway) {
            self.stats.events_test_load += 1;
            return;
        }
        let key = StreamKey {
            gateway: envelope.gateway.clone(),
            stream,
        };
        if self.finished.contains_key(&key) {
            self.stats.events_late += 1;
            return;
        }
        if !self.streams.contains_key(&key) && self.streams.len() >= self.settings.max_open_streams
        {
            self.stats.events_over_capacity += 1;
            return;
        }
        let state = self.streams.entry(key).or_default();
        state.last_arrival_unix_ms = state.last_arrival_unix_ms.max(arrival_unix_ms);
        // Beyond the per-stream bound, ids are no longer remembered: repeats that late in a
        // very long stream fold twice, which only affects counts, rather than memory growing.
        if state.seen_ids.contains(&envelope.id) {
            self.stats.events_repeated += 1;
            return;
        }
        if state.seen_ids.len() < MAX_ITEMS_PER_STREAM * 4 {
            state.seen_ids.insert(envelope.id.clone());
        }
        self.stats.events_folded += 1;
        let envelope_at = envelope.timestamp_unix_ms().unwrap_or(arrival_unix_ms);
        match view {
            EventView::StreamTrace(trace) => {
                let at = trace.timestamp.unwrap_or(envelope_at);
                state.saw_event(at);
                state.saw_context(&trace.context, at);
                bounded_push(&mut state.traces, (at, trace.trace_type.clone()));
                match trace.kind() {
                    TraceKind::GatewayReceiveStreamRequest => earliest(&mut state.requested_at, at),
                    TraceKind::GatewaySendFirstIngestSegment => {
                        earliest(&mut state.first_ingest_at, at);
                    }
                    TraceKind::GatewayReceiveFirstProcessedSegment => {
                        earliest(&mut state.first_output_at, at);
                    }
                    TraceKind::GatewayReceiveFewProcessedSegments => {
                        earliest(&mut state.playable_at, at);
                    }
                    TraceKind::GatewayNoOrchestratorsAvailable => {
                        earliest(&mut state.no_orchestrators_at, at);
                    }
                    TraceKind::GatewayIngestStreamClosed => earliest(&mut state.closed_at, at),
                    TraceKind::OrchestratorSwap => bounded_push(
                        &mut state.swaps,
                        (at, trace.message.clone().unwrap_or_default()),
                    ),
                    TraceKind::Runner(_) | TraceKind::Other(_) => {}
                }
            }
            EventView::AiStreamStatus(status) => {
                let at = status.timestamp.unwrap_or(envelope_at);
                state.saw_event(at);
                state.saw_context(&status.context, at);
                state.status_events = state.status_events.saturating_add(1);
                if let Some(run_state) = &status.state {
                    bounded_push(&mut state.states, (at, run_state.clone()));
                }
                let serving = status.state.as_deref().is_none_or(|run_state| {
                    !NOT_SERVING_STATES
                        .iter()
                        .any(|not| run_state.eq_ignore_ascii_case(not))
                });
                if let Some(inference) = &status.inference_status {
                    if let Some(fps) = inference.fps.filter(|fps| fps.is_finite() && *fps >= 0.0) {
                        latest(&mut state.last_output_fps, at, fps);
                        if serving {
                            bounded_push(&mut state.output_fps_samples, (at, fps));
                        }
                    }
                    if let Some(count) = inference.restart_count {
                        state.restart_count = Some(state.restart_count.unwrap_or(0).max(count));
                    }
                    if let Some(error) = &inference.last_error {
                        bounded_push(&mut state.errors, (at, error.clone()));
                    }
                    if let Some(hash) = &inference.last_params_hash {
                        latest(&mut state.last_params_hash, at, hash.clone());
                    }
                }
                if let Some(fps) = status
                    .input_status
                    .as_ref()
                    .and_then(|input| input.fps)
                    .filter(|fps| fps.is_finite() && *fps >= 0.0)
                {
                    latest(&mut state.last_input_fps, at, fps);
                }
            }
            EventView::AiStreamEvent(event) => {
                let at = event.timestamp.unwrap_or(envelope_at);
                state.saw_event(at);
                state.saw_context(&event.context, at);
                match event.kind() {
                    AiStreamEventKind::Error => {
                        state.error_events = state.error_events.saturating_add(1);
                        if let Some(message) = &event.message {
                            bounded_push(&mut state.errors, (at, message.clone()));
                        }
                    }
                    AiStreamEventKind::Restart => {
                        if let Some(count) = event.restart_count {
                            state.restart_count = Some(state.restart_count.unwrap_or(0).max(count));
                        }
                    }
                    AiStreamEventKind::ParamsUpdate | AiStreamEventKind::Other(_) => {}
                }
            }
            // Filtered out above: only stream-scoped families reach this match.
            EventView::NetworkCapabilities(_)
            | EventView::DiscoveryResults(_)
            | EventView::Untyped(_) => {}
        }
    }

    /// Remembers the GPU every orchestrator of a `network_capabilities` snapshot runs each model
    /// on: the first named GPU of its hardware entry for that model (entries are keyed by
    /// device, in key order). A later snapshot replaces what an orchestrator advertised before.
    fn learn_hardware(&mut self, orchestrators: &[OrchestratorCapabilities]) {
        for entry in orchestrators {
            let orchestrator = Orchestrator {
                address: entry.address.clone(),
                url: entry.orch_uri.clone(),
            };
            let key = orchestrator.hardware_key();
            if key.is_empty()
                || (!self.hardware.contains_key(&key)
                    && self.hardware.len() >= MAX_KNOWN_ORCHESTRATORS)
            {
                continue;
            }
            let mut models = HashMap::new();
            for hardware in &entry.hardware {
                let Some(model) = &hardware.model_id else {
                    continue;
                };
                let gpu = hardware.gpu_info.values().find_map(|gpu| {
                    gpu.name.as_ref().map(|name| Gpu {
                        name: name.clone(),
                        memory_bytes: gpu.memory_total_bytes,
                    })
                });
                if let Some(gpu) = gpu {
                    models.insert(model.clone(), gpu);
                }
            }
            if !models.is_empty() {
                self.hardware.insert(key, models);
            }
        }
    }

    /// Finishes and returns every stream that is over at `now_unix_ms` (the collector's clock):
    /// closed by `gateway_ingest_stream_closed`, or silent for the idle timeout. A stream whose
    /// `gateway_receive_stream_request` was never seen (lost, or sent before the collector
    /// listened) is dropped and counted instead: without it the start of the session and its
    /// startup are unknown, and NaaP counts a session as requested only on that trace too.
    pub fn take_finished(&mut self, now_unix_ms: i64) -> Vec<SessionReport> {
        let idle_timeout_ms = self.settings.idle_timeout_ms;
        self.finished
            .retain(|_, finished_at| now_unix_ms.saturating_sub(*finished_at) < idle_timeout_ms);
        let over: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, state)| {
                state.closed_at.is_some()
                    || now_unix_ms.saturating_sub(state.last_arrival_unix_ms) >= idle_timeout_ms
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut reports = Vec::with_capacity(over.len());
        for key in over {
            let Some(state) = self.streams.remove(&key) else {
                continue;
            };
            let report = build_report(&key, &state, &self.hardware);
            self.finished.insert(key, now_unix_ms);
            match report {
                Some(report) => {
                    self.stats.sessions += 1;
                    reports.push(report);
                }
                None => self.stats.streams_unrequested += 1,
            }
        }
        reports
    }
}

/// The session id of an organic stream: stable, so that folding the same events again (a
/// replayed topic after a restart) yields a duplicate the store drops, never a second session.
pub fn organic_session_id(gateway: &str, stream: &str) -> String {
    format!("organic:{gateway}:{stream}")
}

/// The orchestrator serving at `at`: the last one seen at or before it, else the first one seen.
fn serving_at(sightings: &[(i64, Orchestrator)], at: i64) -> Option<&Orchestrator> {
    sightings
        .iter()
        .rev()
        .find(|(seen_at, _)| *seen_at <= at)
        .or_else(|| sightings.first())
        .map(|(_, orchestrator)| orchestrator)
}

fn fps_summary(samples: &[f64]) -> Option<FpsSummary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Nearest-rank percentiles: the sample at ceil(p * n), 1-based.
    let rank = |p: f64| {
        let index = (p * sorted.len() as f64).ceil() as usize;
        sorted[index.clamp(1, sorted.len()) - 1]
    };
    Some(FpsSummary {
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
        p5: rank(0.05),
        p50: rank(0.5),
        windows: u32::try_from(samples.len()).unwrap_or(u32::MAX),
    })
}

/// The standard deviation over the mean of the samples (population), when there are at least
/// two and the mean is above 0.
fn fps_jitter(samples: &[f64]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return None;
    }
    let variance = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Some(variance.sqrt() / mean)
}

/// The session of a finished stream, or `None` when it was never requested.
fn build_report(
    key: &StreamKey,
    state: &StreamState,
    hardware: &HashMap<String, HashMap<String, Gpu>>,
) -> Option<SessionReport> {
    let started_at = state.requested_at?;
    let ended_at = state
        .closed_at
        .or(state.last_event_unix_ms)
        .unwrap_or(started_at)
        .max(started_at);
    let mut sightings = state.sightings.clone();
    sightings.sort_by_key(|(at, _)| *at);
    // Everything is put in event-time order first (ties broken by value), so that the session
    // is the same whatever order the events arrived in.
    let mut swaps = state.swaps.clone();
    swaps.sort();
    let mut timed_samples = state.output_fps_samples.clone();
    timed_samples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let samples: Vec<f64> = timed_samples.iter().map(|(_, fps)| *fps).collect();
    let mut states = state.states.clone();
    states.sort();
    let mut states_seen: Vec<String> = Vec::new();
    for (_, run_state) in &states {
        if !states_seen.contains(run_state) {
            states_seen.push(run_state.clone());
        }
    }
    let mut errors = state.errors.clone();
    errors.sort();
    let mut distinct_errors: Vec<String> = Vec::new();
    for (_, error) in errors {
        if !distinct_errors.contains(&error) {
            distinct_errors.push(error);
        }
    }
    let mut traces = state.traces.clone();
    traces.sort();
    let params_hash = state
        .last_params_hash
        .as_ref()
        .map(|(_, hash)| hash.clone());

    let mut report = SessionReport::new(
        organic_session_id(&key.gateway, &key.stream),
        state
            .model_id
            .clone()
            .unwrap_or_else(|| UNKNOWN_MODEL.to_owned()),
        started_at,
    );
    report.ended_at_unix_ms = ended_at;
    report.mode = TargetMode::Network;
    report.is_test_load = false;
    report.pipeline = LIVE_PIPELINE.to_owned();
    // The session belongs to the orchestrator it started on: its startup (or startup failure)
    // is the one measured, and later orchestrators show in `served_by` and `swaps`.
    report.orchestrator = sightings.first().map(|(_, first)| first.reference());
    // The GPU is what the orchestrator last advertised for the session's model before the
    // session finished; events of the stream itself never name it.
    let model_id = report.model_id.clone();
    let gpu_of = |orchestrator: &Orchestrator| {
        hardware
            .get(&orchestrator.hardware_key())
            .and_then(|models| models.get(&model_id))
            .cloned()
    };
    report.gpu = sightings.first().and_then(|(_, first)| gpu_of(first));

    let startup_ms = match (state.first_ingest_at, state.first_output_at) {
        (Some(ingest), Some(output)) if output >= ingest => Some((output - ingest) as f64),
        _ => None,
    };
    let (outcome, failure) = if state.first_output_at.is_some() {
        (Outcome::Passed, None)
    } else if state.no_orchestrators_at.is_some() {
        (
            Outcome::UnscoredBusy,
            Some(Failure {
                class: FailureClass::Capacity,
                detail: "gateway_no_orchestrators_available".to_owned(),
            }),
        )
    } else if state.first_ingest_at.is_none() {
        // The client left before the gateway sent any input to an orchestrator: nothing was
        // asked of an orchestrator, so nothing is held against one (NaaP excuses client-side
        // disconnects the same way).
        (Outcome::UnscoredIndeterminate, None)
    } else {
        let how = if state.closed_at.is_some() {
            "the stream closed"
        } else {
            "the stream went silent"
        };
        (
            Outcome::Failed,
            Some(Failure {
                class: FailureClass::OutputTimeout,
                detail: format!("input was sent but no processed segment came back before {how}"),
            }),
        )
    };
    report.outcome = outcome;
    report.failure = failure;

    let metrics = &mut report.metrics;
    metrics.startup_ms = startup_ms;
    metrics.output_fps = fps_summary(&samples);
    metrics.fps_jitter = fps_jitter(&samples);
    metrics.input_fps = state.last_input_fps.map(|(_, fps)| fps);
    metrics.swaps = swaps
        .iter()
        .map(|(at, cause)| {
            let from = serving_at(&sightings, at.saturating_sub(1));
            // The orchestrator swapped to is the first different one seen after the swap; the
            // events do not always name it (the stream may have ended first).
            let to = from.and_then(|from| {
                sightings
                    .iter()
                    .find(|(seen_at, seen)| *seen_at >= *at && !seen.same_as(from))
                    .map(|(_, seen)| seen)
            });
            Swap {
                at_unix_ms: *at,
                from: from.map(Orchestrator::label).unwrap_or_default(),
                to: to.map(Orchestrator::label).unwrap_or_default(),
                cause: cause.clone(),
                freeze_ms: None,
            }
        })
        .collect();
    report.served_by = served_by(
        &sightings,
        &gpu_of,
        &swaps,
        &timed_samples,
        started_at,
        ended_at,
        startup_ms,
    );

    let runner = &mut report.runner;
    runner.status_events = state.status_events;
    runner.last_state = states.last().map(|(_, run_state)| run_state.clone());
    runner.states_seen = states_seen;
    runner.input_fps = state.last_input_fps.map(|(_, fps)| fps);
    runner.output_fps = state.last_output_fps.map(|(_, fps)| fps);
    runner.restart_count = state
        .restart_count
        .map(|count| u32::try_from(count).unwrap_or(u32::MAX));
    runner.errors = distinct_errors;
    runner.error_events = state.error_events;
    runner.events_received = state.events;
    runner.traces = traces.into_iter().map(|(_, kind)| kind).collect();
    report.prompt = params_hash.as_ref().map(|hash| PromptRef {
        id: None,
        complexity: None,
        params_hash: hash.clone(),
    });
    runner.last_params_hash = params_hash;
    Some(report)
}

/// The failure class go-livepeer's swap cause names, from the `message` of its
/// `orchestrator_swap` trace (the error texts of its live pipeline; see the protocol reference,
/// section 5). A cause this collector does not recognise is no failure: the share still counts
/// as swapped away from, but not as broken.
pub fn swap_failure_class(cause: &str) -> Option<FailureClass> {
    let cause = cause.to_ascii_lowercase();
    if cause.contains("stream no longer exists")
        || cause.contains("orchestrator is slow")
        || cause.contains("control channel does not exist")
    {
        Some(FailureClass::PublishLost)
    } else if cause.contains("trickle subscribe") || cause.contains("waiting for segments") {
        Some(FailureClass::OutputTimeout)
    } else if cause.contains("waiting for events") || cause.contains("reading events") {
        Some(FailureClass::EventsTimeout)
    } else if cause.contains("control write failed") {
        Some(FailureClass::ProtocolError)
    } else {
        None
    }
}

/// The orchestrators that served the stream, one share per run of sightings of the same one.
///
/// A share changes hands at the last swap before the new orchestrator was first seen (that
/// swap's cause ends the share), or at that sighting when no swap trace came (it was lost). A
/// swap after the last change of hands ends the last share. Each share gets the output FPS of
/// the status samples in its span; the first share's startup is the session's, a later share's
/// is the time from its start to its first sample with output above 0 FPS.
fn served_by(
    sightings: &[(i64, Orchestrator)],
    gpu_of: &dyn Fn(&Orchestrator) -> Option<Gpu>,
    swaps: &[(i64, String)],
    samples: &[(i64, f64)],
    started_at: i64,
    ended_at: i64,
    startup_ms: Option<f64>,
) -> Vec<ServedBy> {
    let mut shares: Vec<ServedBy> = Vec::new();
    let mut current: Option<&Orchestrator> = None;
    let mut previous_at = started_at;
    let mut used_swap: Option<usize> = None;
    for (at, orchestrator) in sightings {
        if current.is_some_and(|current| current.same_as(orchestrator)) {
            previous_at = *at;
            continue;
        }
        let handover = swaps
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (swap_at, _))| *swap_at > previous_at && *swap_at <= *at);
        previous_at = *at;
        if let Some(last) = shares.last_mut() {
            let (from, cause) = match handover {
                Some((index, (swap_at, cause))) => {
                    used_swap = Some(index);
                    (*swap_at, cause.clone())
                }
                None => (*at, "orchestrator changed (swap trace lost)".to_owned()),
            };
            last.to_unix_ms = from.clamp(started_at, ended_at);
            last.failure = swap_failure_class(&cause);
            last.ended_by = Some(cause);
        }
        let from = shares.last().map_or(started_at, |last| last.to_unix_ms);
        shares.push(ServedBy {
            orchestrator: orchestrator.reference(),
            gpu: gpu_of(orchestrator),
            from_unix_ms: from,
            to_unix_ms: ended_at,
            startup_ms: None,
            frames_received: 0,
            e2e_latency_ms: None,
            output_fps: None,
            stalls: Default::default(),
            ended_by: None,
            failure: None,
        });
        current = Some(orchestrator);
    }
    // A swap after the last change of hands (its successor never showed in the events) ends the
    // last share.
    let unmatched = swaps
        .iter()
        .enumerate()
        .filter(|(index, _)| used_swap.is_none_or(|used| *index > used))
        .find(|(_, (swap_at, _))| {
            shares
                .last()
                .is_some_and(|last| *swap_at > last.from_unix_ms)
        });
    if let (Some((_, (swap_at, cause))), Some(last)) = (unmatched, shares.last_mut()) {
        last.to_unix_ms = (*swap_at).clamp(last.from_unix_ms, ended_at);
        last.failure = swap_failure_class(cause);
        last.ended_by = Some(cause.clone());
    }
    let count = shares.len();
    for (index, share) in shares.iter_mut().enumerate() {
        let last = index + 1 == count;
        let in_share: Vec<(i64, f64)> = samples
            .iter()
            .copied()
            .filter(|(at, _)| {
                *at >= share.from_unix_ms && (*at < share.to_unix_ms || (last && *at <= ended_at))
            })
            .collect();
        let fps: Vec<f64> = in_share.iter().map(|(_, fps)| *fps).collect();
        share.output_fps = fps_summary(&fps);
        share.startup_ms = if index == 0 {
            startup_ms
        } else {
            in_share
                .iter()
                .find(|(_, fps)| *fps > 0.0)
                .map(|(at, _)| (at - share.from_unix_ms) as f64)
        };
    }
    shares
}

/// The organic-load edge the server holds: a fold behind a lock, plus finished sessions the
/// store has not taken yet.
#[derive(Debug)]
pub struct OrganicLoad {
    fold: Mutex<OrganicFold>,
    pending: Mutex<Vec<SessionReport>>,
}

impl Default for OrganicLoad {
    fn default() -> Self {
        Self::new(OrganicSettings::default())
    }
}

impl OrganicLoad {
    /// An empty organic load with `settings`.
    pub fn new(settings: OrganicSettings) -> Self {
        Self {
            fold: Mutex::new(OrganicFold::new(settings)),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// What the fold did so far.
    pub fn stats(&self) -> FoldStats {
        self.fold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .stats()
    }

    /// How many streams are open (folded, not finished yet).
    pub fn open_streams(&self) -> usize {
        self.fold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .open_streams()
    }

    /// Folds the usable events just stored, given as their stored envelope JSON, that arrived at
    /// `arrival_unix_ms`. JSON that does not read as an envelope is skipped: the ingest already
    /// parsed it, so only a caller that bypassed it can pass such text.
    pub fn observe<'a>(
        &self,
        envelopes_json: impl IntoIterator<Item = &'a str>,
        arrival_unix_ms: i64,
    ) {
        // A poisoned lock means a fold step panicked; the fold's maps are still well formed
        // (every step leaves them consistent between statements), so folding goes on.
        let mut fold = self
            .fold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for json in envelopes_json {
            if let Ok(envelope) = EventEnvelope::parse(json.as_bytes()) {
                fold.push(&envelope, arrival_unix_ms);
            }
        }
    }

    /// Stores every stream finished at `now_unix_ms` as a session through the normal
    /// [`Store::insert_batch`], so its SLA cells follow like any record's. Sessions the store
    /// refuses wait for the next flush. Returns what the insert did.
    pub async fn flush(
        &self,
        store: &dyn Store,
        now_unix_ms: i64,
    ) -> Result<InsertOutcome, StoreError> {
        let mut reports = self
            .fold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take_finished(now_unix_ms);
        {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut waiting = std::mem::take(&mut *pending);
            waiting.append(&mut reports);
            reports = waiting;
        }
        if reports.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let Some((batch, results)) = organic_batch(&reports, now_unix_ms) else {
            return Ok(InsertOutcome::default());
        };
        match store.insert_batch(batch, results).await {
            Ok(outcome) => Ok(outcome),
            Err(error) => {
                let mut pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut kept = reports;
                kept.append(&mut pending);
                if kept.len() > MAX_PENDING_SESSIONS {
                    let dropped = kept.len() - MAX_PENDING_SESSIONS;
                    tracing::warn!(
                        message = "Organic sessions dropped: the store keeps failing.",
                        dropped
                    );
                    kept.drain(..dropped);
                }
                *pending = kept;
                Err(error)
            }
        }
    }
}

/// The stored batch and records of organic `reports`, or `None` when none of them is storable.
///
/// Each report goes through the same validation as a shipped record. One that fails it (only
/// possible with absurd event values, such as FPS so large that a mean overflows) is dropped
/// with a warning, so that it cannot hold back every later session by failing their batch.
///
/// The batch is the collector's own, not an agent's: it carries [`ORGANIC_AGENT_ID`], no
/// signature, and a nonce derived from its content and time so that its id is unique;
/// `canonical_sha256` is still the hash of the stored records joined as an array, so the batch
/// reads back like any other.
fn organic_batch(
    reports: &[SessionReport],
    now_unix_ms: i64,
) -> Option<(StoredBatch, Vec<crate::store::StoredResult>)> {
    let mut results = Vec::with_capacity(reports.len());
    for report in reports {
        let checked = serde_json::to_value(std::slice::from_ref(report))
            .map_err(|error| error.to_string())
            .and_then(|value| {
                crate::ingest::validate_records(&value).map_err(|problem| problem.detail)
            });
        match checked {
            Ok(mut one) => results.append(&mut one),
            Err(reason) => tracing::warn!(
                message = "Organic session dropped: it is not a valid record.",
                session_id = %report.session_id,
                reason = %reason
            ),
        }
    }
    if results.is_empty() {
        return None;
    }
    let mut canonical = String::from("[");
    for (index, result) in results.iter().enumerate() {
        if index > 0 {
            canonical.push(',');
        }
        canonical.push_str(&result.record_json);
    }
    canonical.push(']');
    let canonical_sha256 = hex::encode(Sha256::digest(canonical.as_bytes()));
    let nonce_digest = Sha256::new()
        .chain_update(now_unix_ms.to_be_bytes())
        .chain_update(canonical_sha256.as_bytes())
        .finalize();
    let batch = StoredBatch {
        agent_id: ORGANIC_AGENT_ID.to_owned(),
        key_id: ORGANIC_AGENT_ID.to_owned(),
        timestamp_ms: now_unix_ms,
        nonce: hex::encode(&nonce_digest[..16]),
        signature: String::new(),
        canonical_sha256,
        session_ids: results.iter().map(|r| r.session_id.clone()).collect(),
        received_at_unix_ms: now_unix_ms,
    };
    Some((batch, results))
}

/// The JSON of one envelope, for tests and fixtures: `data` with `type` = `family`.
pub fn envelope_json(id: &str, family: &str, gateway: &str, at_unix_ms: i64, data: Value) -> Value {
    serde_json::json!({
        "id": id,
        "type": family,
        "timestamp": at_unix_ms.to_string(),
        "gateway": gateway,
        "data": data,
    })
}

#[cfg(test)]
mod tests;
