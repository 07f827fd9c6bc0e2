//! What a gateway session observes, as plain data: the seam between the IO driver that runs
//! sessions through network selection and whatever reports on them (the go-livepeer-compatible
//! analytics events, logs, tests).
//!
//! The driver pushes one [`Observation`] per happening into an [`ObservationSink`]; it never
//! waits on the consumer, so a slow or absent event pipeline cannot slow a measured session.
//! Times are Unix milliseconds because that is what every consumer (event envelopes, records)
//! writes.

use serde_json::Value;
use tokio::sync::mpsc;

/// The orchestrator an observation is about, as go-livepeer's `orchestrator_info` names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrchestratorInfo {
    /// The on-chain (or configured) ETH address, when GetOrchestrator reported one.
    pub address: Option<String>,
    /// The orchestrator's service URI.
    pub url: String,
}

/// The identity of one gateway stream, shared by every observation about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamContext {
    /// go-livepeer's `stream_id`.
    pub stream_id: String,
    /// go-livepeer's `request_id` (lvt uses the session id).
    pub request_id: String,
    /// The pipeline, `live-video-to-video`.
    pub pipeline: String,
    /// The model (`pipeline_id` in go-livepeer's status events).
    pub model_id: String,
}

/// One discovered candidate with its GetOrchestrator round trip, for `discovery_results`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredCandidate {
    pub address: Option<String>,
    pub url: String,
    pub latency_ms: u64,
}

/// One happening in a gateway session.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Discovery finished: the usable candidates in selection order.
    DiscoveryResults {
        at_unix_ms: i64,
        candidates: Vec<DiscoveredCandidate>,
    },
    /// What an orchestrator advertised in GetOrchestrator (`network_capabilities`): the raw
    /// summary as JSON so that no field is lost on the way to the event.
    Capabilities {
        at_unix_ms: i64,
        orchestrator: OrchestratorInfo,
        summary: Value,
    },
    /// A `stream_trace` of the gateway's own lifecycle, `kind` being go-livepeer's subtype
    /// (`gateway_receive_stream_request`, `gateway_send_first_ingest_segment`,
    /// `gateway_receive_first_processed_segment`, `gateway_receive_few_processed_segments`,
    /// `gateway_ingest_stream_closed`).
    Trace {
        at_unix_ms: i64,
        stream: StreamContext,
        kind: &'static str,
        orchestrator: Option<OrchestratorInfo>,
    },
    /// The gateway left `from` for `to` (`stream_trace` `orchestrator_swap`, message = cause).
    Swap {
        at_unix_ms: i64,
        stream: StreamContext,
        from: OrchestratorInfo,
        to: OrchestratorInfo,
        cause: String,
    },
    /// No orchestrator accepted the stream (`gateway_no_orchestrators_available`).
    NoOrchestratorsAvailable {
        at_unix_ms: i64,
        stream: StreamContext,
        tries: u32,
        message: String,
    },
    /// A status or event document read from an orchestrator's events channel, relayed verbatim
    /// (`ai_stream_status` for `type: "status"`, `ai_stream_events` otherwise).
    RunnerEvent {
        at_unix_ms: i64,
        stream: StreamContext,
        orchestrator: OrchestratorInfo,
        event: Value,
    },
}

/// Where a driver sends its observations. Unbounded so that sending never blocks a session;
/// the consumer is expected to keep up (an event is a few hundred bytes).
pub type ObservationSink = mpsc::UnboundedSender<Observation>;

/// Sends when there is a sink; a consumer that went away is not the session's problem.
pub fn observe(sink: Option<&ObservationSink>, observation: Observation) {
    if let Some(sink) = sink {
        // The receiver may be gone (the event shipper stopped); the session goes on regardless.
        let _ = sink.send(observation);
    }
}
