//! The organic-load fold: per (gateway, stream) state built from the stream-scoped events and
//! the orchestrators' capability snapshots, finished at a close or after the idle timeout.

use std::collections::{BTreeMap, HashMap, HashSet};

use lvt_schema::events::{
    AiStreamEventKind, EventEnvelope, EventView, OrchestratorCapabilities, OrchestratorInfo,
    StreamContext, TraceKind,
};
use lvt_schema::{Gpu, OrchestratorRef, SessionReport};

use super::report::build_report;
use super::{
    LIVE_PIPELINE, MAX_ITEMS_PER_STREAM, MAX_KNOWN_ORCHESTRATORS, NOT_SERVING_STATES,
    OrganicSettings,
};

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
pub(super) struct StreamKey {
    pub(super) gateway: String,
    pub(super) stream: String,
}

/// An orchestrator as the events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Orchestrator {
    pub(super) address: Option<String>,
    pub(super) url: Option<String>,
}

impl Orchestrator {
    pub(super) fn of(info: &OrchestratorInfo) -> Option<Self> {
        (info.address.is_some() || info.url.is_some()).then(|| Self {
            address: info.address.clone(),
            url: info.url.clone(),
        })
    }

    /// One orchestrator is the same whatever case its address is written in.
    pub(super) fn same_as(&self, other: &Self) -> bool {
        match (&self.address, &other.address) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => self.url == other.url,
        }
    }

    /// How a swap names it: its URL, else its address.
    pub(super) fn label(&self) -> String {
        self.url
            .clone()
            .or_else(|| self.address.clone())
            .unwrap_or_default()
    }

    /// The key of its hardware: the lowercase address, else the URL (as SLA cells name it).
    pub(super) fn hardware_key(&self) -> String {
        match &self.address {
            Some(address) => address.to_ascii_lowercase(),
            None => self.url.clone().unwrap_or_default(),
        }
    }

    pub(super) fn reference(&self) -> OrchestratorRef {
        OrchestratorRef {
            address: self.address.clone(),
            uri: self.url.clone().unwrap_or_default(),
            cert_sha256: None,
            cert_trust: None,
            address_check: None,
        }
    }
}

/// What is known of one open stream.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    /// The collector's clock when the stream's last event arrived: the idle timeout runs on it.
    pub(super) last_arrival_unix_ms: i64,
    pub(super) last_event_unix_ms: Option<i64>,
    pub(super) seen_ids: HashSet<String>,
    pub(super) requested_at: Option<i64>,
    pub(super) first_ingest_at: Option<i64>,
    pub(super) first_output_at: Option<i64>,
    pub(super) playable_at: Option<i64>,
    pub(super) no_orchestrators_at: Option<i64>,
    pub(super) closed_at: Option<i64>,
    /// `(at, cause)` of every `orchestrator_swap`.
    pub(super) swaps: Vec<(i64, String)>,
    /// `(at, orchestrator)` of every event that named one.
    pub(super) sightings: Vec<(i64, Orchestrator)>,
    pub(super) model_id: Option<String>,
    pub(super) status_events: u32,
    /// `(at, fps)` of `inference_status.fps` of status events in a serving state.
    pub(super) output_fps_samples: Vec<(i64, f64)>,
    /// The latest-by-event-time values, as `(at, value)`, so that arrival order does not matter.
    pub(super) last_output_fps: Option<(i64, f64)>,
    pub(super) last_input_fps: Option<(i64, f64)>,
    pub(super) last_params_hash: Option<(i64, String)>,
    /// `(at, state)` of every status event; sorted when the session is built.
    pub(super) states: Vec<(i64, String)>,
    pub(super) restart_count: Option<u64>,
    /// `(at, message)` of every error seen; sorted and deduplicated when the session is built.
    pub(super) errors: Vec<(i64, String)>,
    pub(super) error_events: u32,
    pub(super) events: u32,
    /// `(at, subtype)` of every trace; sorted when the session is built.
    pub(super) traces: Vec<(i64, String)>,
}

/// Keeps the value with the later event time (the later one wins a tie, so a repeat is a no-op).
pub(super) fn latest<T>(slot: &mut Option<(i64, T)>, at: i64, value: T) {
    if slot.as_ref().is_none_or(|(known_at, _)| at >= *known_at) {
        *slot = Some((at, value));
    }
}

/// Keeps the earliest of two times.
pub(super) fn earliest(slot: &mut Option<i64>, at: i64) {
    *slot = Some(slot.map_or(at, |known| known.min(at)));
}

/// Appends unless the list is full.
pub(super) fn bounded_push<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_ITEMS_PER_STREAM {
        list.push(item);
    }
}

impl StreamState {
    pub(super) fn saw_event(&mut self, at: i64) {
        self.last_event_unix_ms = Some(self.last_event_unix_ms.map_or(at, |last| last.max(at)));
        self.events = self.events.saturating_add(1);
    }

    pub(super) fn saw_context(&mut self, context: &StreamContext, at: i64) {
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
    pub(super) fn learn_hardware(&mut self, orchestrators: &[OrchestratorCapabilities]) {
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
