//! The go-livepeer analytics event envelope, as gateways publish it to Kafka, with typed views of
//! the event families the collector uses.
//!
//! Every event is one JSON object `{"id", "type", "timestamp", "gateway", "data"}`: `type` names
//! the family, `timestamp` is Unix milliseconds written as a string, `gateway` is the publishing
//! gateway's address and `data` is the family's payload. The envelope keeps `data` as raw JSON so
//! that nothing a gateway sends is lost; [`EventEnvelope::view`] reads it as one of the typed
//! views below. A family this crate does not know is not an error: it parses as
//! [`EventFamily::Unknown`] and its view is [`EventView::Untyped`], so the collector can count it
//! and keep it aside.
//!
//! The views are lenient the way the producers require: every field but the discriminating `type`
//! is optional, numbers are accepted as JSON numbers or as numeric strings (discovery results
//! carry `latency_ms` as a string), and unknown fields are ignored. Only a payload of the wrong
//! JSON shape (say a string where an object belongs) is a [`EventError::View`].

use std::collections::BTreeMap;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `gateway` an lvt agent writes in the analytics envelopes of its own (test-load) network
/// sessions: `lvt-` and the id of its signing key. The collector knows every agent's key id, so
/// it recognises these envelopes as test load and never folds them into organic load.
pub fn agent_gateway_name(key_id: &str) -> String {
    format!("lvt-{key_id}")
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The bytes are not a JSON event envelope.
    #[error("not an event envelope: {0}")]
    Envelope(#[source] serde_json::Error),
    /// The envelope is fine but its `data` does not have the shape of its (known) family.
    #[error("the data of a `{family}` event has the wrong shape: {source}")]
    View {
        /// The family whose view failed.
        family: &'static str,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
}

/// One analytics event as a gateway publishes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    /// A UUID chosen by the gateway (also the Kafka message key). At-most-once delivery means
    /// an id is normally seen once, but a replayed topic repeats it, so it deduplicates.
    pub id: String,
    /// The event family, for example `stream_trace`; see [`EventFamily`].
    #[serde(rename = "type")]
    pub family: String,
    /// Enqueue time at the gateway, Unix milliseconds as a decimal string (a JSON number is
    /// accepted too and kept as its decimal text); see [`EventEnvelope::timestamp_unix_ms`].
    #[serde(deserialize_with = "string_or_number")]
    pub timestamp: String,
    /// The address the gateway's Kafka producer was configured with.
    #[serde(default)]
    pub gateway: String,
    /// The family's payload, kept verbatim: an object for most families, an array for
    /// `network_capabilities` and `discovery_results`.
    #[serde(default)]
    pub data: Value,
}

impl EventEnvelope {
    /// Parses one envelope from JSON bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, EventError> {
        serde_json::from_slice(bytes).map_err(EventError::Envelope)
    }

    /// The family named by `type`.
    pub fn family(&self) -> EventFamily {
        EventFamily::from_name(&self.family)
    }

    /// The enqueue time in Unix milliseconds, when `timestamp` is a decimal integer.
    pub fn timestamp_unix_ms(&self) -> Option<i64> {
        self.timestamp.trim().parse().ok()
    }

    /// The payload read as the typed view of its family.
    ///
    /// Unknown families and known ones without a typed view give [`EventView::Untyped`]; only a
    /// payload whose shape contradicts its family is an error.
    pub fn view(&self) -> Result<EventView, EventError> {
        let family = self.family();
        let view = match &family {
            EventFamily::StreamTrace => EventView::StreamTrace(self.read_data("stream_trace")?),
            EventFamily::AiStreamStatus => {
                EventView::AiStreamStatus(self.read_data("ai_stream_status")?)
            }
            EventFamily::AiStreamEvents => {
                EventView::AiStreamEvent(self.read_data("ai_stream_events")?)
            }
            EventFamily::NetworkCapabilities => {
                let list: OneOrMany<OrchestratorCapabilities> =
                    self.read_data("network_capabilities")?;
                EventView::NetworkCapabilities(list.into_vec())
            }
            EventFamily::DiscoveryResults => {
                let list: OneOrMany<DiscoveredOrchestrator> =
                    self.read_data("discovery_results")?;
                EventView::DiscoveryResults(list.into_vec())
            }
            EventFamily::StreamIngestMetrics
            | EventFamily::CreateNewPayment
            | EventFamily::Unknown(_) => EventView::Untyped(family),
        };
        Ok(view)
    }

    fn read_data<T: de::DeserializeOwned>(&self, family: &'static str) -> Result<T, EventError> {
        T::deserialize(&self.data).map_err(|source| EventError::View { family, source })
    }
}

/// The event families named in the protocol reference; anything else is [`EventFamily::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventFamily {
    /// `stream_trace`: lifecycle traces of a stream at the gateway and runner.
    StreamTrace,
    /// `ai_stream_status`: the runner's periodic status event, forwarded with stream context.
    AiStreamStatus,
    /// `ai_stream_events`: errors, params updates, restarts and other forwarded events.
    AiStreamEvents,
    /// `stream_ingest_metrics`: WHIP ingest jitter, loss and round trip (no typed view).
    StreamIngestMetrics,
    /// `network_capabilities`: what each known orchestrator offers.
    NetworkCapabilities,
    /// `discovery_results`: the orchestrators a discovery round found.
    DiscoveryResults,
    /// `create_new_payment`: payment tickets sent (no typed view).
    CreateNewPayment,
    /// Any other family, with its name; counted and kept aside, never an error.
    Unknown(String),
}

impl EventFamily {
    /// The family for a `type` value.
    pub fn from_name(name: &str) -> Self {
        match name {
            "stream_trace" => Self::StreamTrace,
            "ai_stream_status" => Self::AiStreamStatus,
            "ai_stream_events" => Self::AiStreamEvents,
            "stream_ingest_metrics" => Self::StreamIngestMetrics,
            "network_capabilities" => Self::NetworkCapabilities,
            "discovery_results" => Self::DiscoveryResults,
            "create_new_payment" => Self::CreateNewPayment,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// The `type` value of this family.
    pub fn name(&self) -> &str {
        match self {
            Self::StreamTrace => "stream_trace",
            Self::AiStreamStatus => "ai_stream_status",
            Self::AiStreamEvents => "ai_stream_events",
            Self::StreamIngestMetrics => "stream_ingest_metrics",
            Self::NetworkCapabilities => "network_capabilities",
            Self::DiscoveryResults => "discovery_results",
            Self::CreateNewPayment => "create_new_payment",
            Self::Unknown(name) => name,
        }
    }
}

/// The payload of an event read by its family.
#[derive(Debug, Clone, PartialEq)]
pub enum EventView {
    /// A `stream_trace` event.
    StreamTrace(StreamTrace),
    /// An `ai_stream_status` event.
    AiStreamStatus(AiStreamStatus),
    /// An `ai_stream_events` event.
    AiStreamEvent(AiStreamEvent),
    /// A `network_capabilities` snapshot, one entry per orchestrator.
    NetworkCapabilities(Vec<OrchestratorCapabilities>),
    /// A `discovery_results` list, one entry per orchestrator found.
    DiscoveryResults(Vec<DiscoveredOrchestrator>),
    /// A family without a typed view (known or unknown); the envelope's `data` is all there is.
    Untyped(EventFamily),
}

/// The orchestrator a stream event concerns, as the gateway adds it to the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrchestratorInfo {
    /// The orchestrator's Ethereum address; empty or absent before one was selected.
    #[serde(default, deserialize_with = "opt_string")]
    pub address: Option<String>,
    /// The orchestrator's service URL; empty or absent before one was selected.
    #[serde(default, deserialize_with = "opt_string")]
    pub url: Option<String>,
}

/// The context fields the gateway adds to every stream event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamContext {
    /// The gateway's stream id.
    #[serde(default, deserialize_with = "opt_string")]
    pub stream_id: Option<String>,
    /// The gateway's request id for the job.
    #[serde(default, deserialize_with = "opt_string")]
    pub request_id: Option<String>,
    /// The pipeline instance id.
    #[serde(default, deserialize_with = "opt_string")]
    pub pipeline_id: Option<String>,
    /// The pipeline name, for example `live-video-to-video` or the runner's pipeline.
    #[serde(default, deserialize_with = "opt_string")]
    pub pipeline: Option<String>,
    /// The orchestrator serving the stream, when one was selected.
    #[serde(default)]
    pub orchestrator_info: Option<OrchestratorInfo>,
}

/// A `stream_trace` event: one step of a stream's life at the gateway or runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamTrace {
    /// The trace subtype, for example `gateway_receive_stream_request`; see [`TraceKind`].
    #[serde(rename = "type")]
    pub trace_type: String,
    /// Stream id, request id, pipeline and orchestrator.
    #[serde(flatten)]
    pub context: StreamContext,
    /// When the step happened, Unix milliseconds (absent on some subtypes).
    #[serde(default, deserialize_with = "opt_i64")]
    pub timestamp: Option<i64>,
    /// Free text; for `orchestrator_swap` the cause of the swap.
    #[serde(default, deserialize_with = "opt_string")]
    pub message: Option<String>,
}

impl StreamTrace {
    /// The subtype as an enum.
    pub fn kind(&self) -> TraceKind {
        TraceKind::from_name(&self.trace_type)
    }
}

/// The `stream_trace` subtypes the SLA method uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TraceKind {
    /// `gateway_receive_stream_request`: the stream was requested.
    GatewayReceiveStreamRequest,
    /// `gateway_ingest_stream_closed`: the ingest connection closed.
    GatewayIngestStreamClosed,
    /// `gateway_send_first_ingest_segment`: the first input segment went to an orchestrator.
    GatewaySendFirstIngestSegment,
    /// `gateway_receive_first_processed_segment`: the first output segment came back.
    GatewayReceiveFirstProcessedSegment,
    /// `gateway_receive_few_processed_segments`: a few output segments came back (playable).
    GatewayReceiveFewProcessedSegments,
    /// `gateway_no_orchestrators_available`: selection found no orchestrator.
    GatewayNoOrchestratorsAvailable,
    /// `orchestrator_swap`: the gateway swapped orchestrators mid-stream.
    OrchestratorSwap,
    /// `runner_*`: a step reported by the runner, with the full subtype.
    Runner(String),
    /// Any other subtype, with its name.
    Other(String),
}

impl TraceKind {
    /// The kind for a subtype name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "gateway_receive_stream_request" => Self::GatewayReceiveStreamRequest,
            "gateway_ingest_stream_closed" => Self::GatewayIngestStreamClosed,
            "gateway_send_first_ingest_segment" => Self::GatewaySendFirstIngestSegment,
            "gateway_receive_first_processed_segment" => Self::GatewayReceiveFirstProcessedSegment,
            "gateway_receive_few_processed_segments" => Self::GatewayReceiveFewProcessedSegments,
            "gateway_no_orchestrators_available" => Self::GatewayNoOrchestratorsAvailable,
            "orchestrator_swap" => Self::OrchestratorSwap,
            runner if runner.starts_with("runner_") => Self::Runner(runner.to_owned()),
            other => Self::Other(other.to_owned()),
        }
    }
}

/// An `ai_stream_status` event: the runner's status, forwarded with stream context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiStreamStatus {
    /// Always `status` for this family.
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    pub event_type: Option<String>,
    /// Stream id, request id, pipeline and orchestrator.
    #[serde(flatten)]
    pub context: StreamContext,
    /// When the runner sent the status, Unix milliseconds.
    #[serde(default, deserialize_with = "opt_i64")]
    pub timestamp: Option<i64>,
    /// The runner state: `LOADING`, `OFFLINE`, `ONLINE`, `DEGRADED_INPUT`, `DEGRADED_INFERENCE`
    /// or `ERROR`.
    #[serde(default, deserialize_with = "opt_string")]
    pub state: Option<String>,
    /// When the pipeline started, as the runner wrote it (the reference fixes no unit).
    #[serde(default, deserialize_with = "opt_f64")]
    pub start_time: Option<f64>,
    /// When `state` last changed, as the runner wrote it (the reference fixes no unit).
    #[serde(default, deserialize_with = "opt_f64")]
    pub last_state_update_time: Option<f64>,
    /// What the runner sees of its input.
    #[serde(default)]
    pub input_status: Option<InputStatus>,
    /// What the runner reports of its inference.
    #[serde(default)]
    pub inference_status: Option<InferenceStatus>,
}

/// `input_status` of a status event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputStatus {
    /// When the last input frame arrived, as the runner wrote it.
    #[serde(default, deserialize_with = "opt_f64")]
    pub last_input_time: Option<f64>,
    /// Input frames per second the runner sees.
    #[serde(default, deserialize_with = "opt_f64")]
    pub fps: Option<f64>,
}

/// `inference_status` of a status event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceStatus {
    /// When the last output frame was produced, as the runner wrote it.
    #[serde(default, deserialize_with = "opt_f64")]
    pub last_output_time: Option<f64>,
    /// Output frames per second the runner produces.
    #[serde(default, deserialize_with = "opt_f64")]
    pub fps: Option<f64>,
    /// When params were last updated, as the runner wrote it.
    #[serde(default, deserialize_with = "opt_f64")]
    pub last_params_update_time: Option<f64>,
    /// The params document the runner applies, verbatim.
    #[serde(default)]
    pub last_params: Option<Value>,
    /// MD5 (hex) of the canonical params JSON the runner applies.
    #[serde(default, deserialize_with = "opt_string")]
    pub last_params_hash: Option<String>,
    /// When the runner last saw an error, as the runner wrote it.
    #[serde(default, deserialize_with = "opt_f64")]
    pub last_error_time: Option<f64>,
    /// The last error message.
    #[serde(default, deserialize_with = "opt_string")]
    pub last_error: Option<String>,
    /// When the pipeline last restarted, as the runner wrote it.
    #[serde(default, deserialize_with = "opt_f64")]
    pub last_restart_time: Option<f64>,
    /// Logs of the last restart, verbatim (a list of lines or a string).
    #[serde(default)]
    pub last_restart_logs: Option<Value>,
    /// How many times the pipeline restarted.
    #[serde(default, deserialize_with = "opt_u64")]
    pub restart_count: Option<u64>,
}

/// An `ai_stream_events` event: an error, params update, restart or other forwarded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiStreamEvent {
    /// The event type, for example `error`, `params_update` or `restart`; see
    /// [`AiStreamEventKind`].
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    pub event_type: Option<String>,
    /// Stream id, request id, pipeline and orchestrator.
    #[serde(flatten)]
    pub context: StreamContext,
    /// When the event was sent, Unix milliseconds.
    #[serde(default, deserialize_with = "opt_i64")]
    pub timestamp: Option<i64>,
    /// The error text of an `error` event.
    #[serde(default, deserialize_with = "opt_string")]
    pub message: Option<String>,
    /// The params of a `params_update` event, verbatim.
    #[serde(default)]
    pub params: Option<Value>,
    /// The restart count of a `restart` event.
    #[serde(default, deserialize_with = "opt_u64")]
    pub restart_count: Option<u64>,
    /// The logs of a `restart` event, verbatim.
    #[serde(default)]
    pub restart_logs: Option<Value>,
}

impl AiStreamEvent {
    /// The event type as an enum.
    pub fn kind(&self) -> AiStreamEventKind {
        match self.event_type.as_deref() {
            Some("error") => AiStreamEventKind::Error,
            Some("params_update") => AiStreamEventKind::ParamsUpdate,
            Some("restart") => AiStreamEventKind::Restart,
            Some(other) => AiStreamEventKind::Other(other.to_owned()),
            None => AiStreamEventKind::Other(String::new()),
        }
    }
}

/// The `ai_stream_events` types the collector tells apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AiStreamEventKind {
    /// `error`: the gateway or runner reported an error.
    Error,
    /// `params_update`: the stream's params changed.
    ParamsUpdate,
    /// `restart`: the runner restarted its pipeline.
    Restart,
    /// Any other type, with its name (empty when the event had none).
    Other(String),
}

/// One orchestrator of a `network_capabilities` snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorCapabilities {
    /// The orchestrator's Ethereum address.
    #[serde(default, deserialize_with = "opt_string")]
    pub address: Option<String>,
    /// The address of the node that answered, when it differs from `address`.
    #[serde(default, deserialize_with = "opt_string")]
    pub local_address: Option<String>,
    /// The orchestrator's service URI.
    #[serde(default, deserialize_with = "opt_string")]
    pub orch_uri: Option<String>,
    /// The advertised capabilities (the protobuf `Capabilities` in JSON), verbatim.
    #[serde(default)]
    pub capabilities: Option<Value>,
    /// Prices per capability and model, verbatim.
    #[serde(default)]
    pub capabilities_prices: Option<Value>,
    /// Hardware per pipeline and model.
    #[serde(default, deserialize_with = "opt_hardware")]
    pub hardware: Vec<HardwareInfo>,
}

/// The hardware an orchestrator runs one pipeline and model on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HardwareInfo {
    /// The pipeline name.
    #[serde(default, deserialize_with = "opt_string")]
    pub pipeline: Option<String>,
    /// The model id.
    #[serde(default, deserialize_with = "opt_string")]
    pub model_id: Option<String>,
    /// GPUs by the orchestrator's own key (usually the device index as a string).
    #[serde(default)]
    pub gpu_info: BTreeMap<String, GpuInfo>,
}

/// One GPU of [`HardwareInfo`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// The device id (for example a GPU UUID).
    #[serde(default, deserialize_with = "opt_string")]
    pub id: Option<String>,
    /// The GPU model name.
    #[serde(default, deserialize_with = "opt_string")]
    pub name: Option<String>,
    /// CUDA compute capability, major part.
    #[serde(default, deserialize_with = "opt_u64")]
    pub major: Option<u64>,
    /// CUDA compute capability, minor part.
    #[serde(default, deserialize_with = "opt_u64")]
    pub minor: Option<u64>,
    /// Free memory in bytes.
    #[serde(default, rename = "memory_free", deserialize_with = "opt_u64")]
    pub memory_free_bytes: Option<u64>,
    /// Total memory in bytes.
    #[serde(default, rename = "memory_total", deserialize_with = "opt_u64")]
    pub memory_total_bytes: Option<u64>,
}

/// One orchestrator of a `discovery_results` list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredOrchestrator {
    /// The orchestrator's Ethereum address.
    #[serde(default, deserialize_with = "opt_string")]
    pub address: Option<String>,
    /// The orchestrator's service URL.
    #[serde(default, deserialize_with = "opt_string")]
    pub url: Option<String>,
    /// How long the discovery request to it took, in milliseconds (sent as a string).
    #[serde(default, deserialize_with = "opt_f64")]
    pub latency_ms: Option<f64>,
}

/// A payload that should be a list but is accepted as a single object too.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::Many(items) => items,
            Self::One(item) => vec![item],
        }
    }
}

/// Reads a JSON string or number as its text (the envelope's `timestamp`).
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(de::Error::custom(format!(
            "expected a string or number, found {other}"
        ))),
    }
}

/// Reads an optional string; `null` and the empty string (Go's zero value) are `None`, and a
/// number is kept as its text.
fn opt_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) if text.is_empty() => Ok(None),
        Value::String(text) => Ok(Some(text)),
        Value::Number(number) => Ok(Some(number.to_string())),
        other => Err(de::Error::custom(format!(
            "expected a string, found {other}"
        ))),
    }
}

/// Reads an optional number given as a JSON number or a numeric string; `null` and `""` are
/// `None`.
fn opt_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Number(number) => Ok(number.as_f64()),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        Value::String(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|value| value.is_finite())
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("expected a number, found {text:?}"))),
        other => Err(de::Error::custom(format!(
            "expected a number, found {other}"
        ))),
    }
}

/// Reads an optional integer: a JSON integer, a float without fraction (Python writes `3.0`
/// sometimes) or a numeric string.
fn opt_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().and_then(whole_f64_to_i64))
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("expected an integer, found {number}"))),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        Value::String(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| text.trim().parse::<f64>().ok().and_then(whole_f64_to_i64))
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("expected an integer, found {text:?}"))),
        other => Err(de::Error::custom(format!(
            "expected an integer, found {other}"
        ))),
    }
}

/// Like [`opt_i64`], for values that cannot be negative.
fn opt_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    match opt_i64(deserializer)? {
        None => Ok(None),
        Some(value) => u64::try_from(value).map(Some).map_err(|_| {
            de::Error::custom(format!("expected a non-negative integer, found {value}"))
        }),
    }
}

/// Reads `hardware`, which Go writes as `null` when the orchestrator sent none.
fn opt_hardware<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<HardwareInfo>, D::Error> {
    Ok(Option::<Vec<HardwareInfo>>::deserialize(deserializer)?.unwrap_or_default())
}

fn whole_f64_to_i64(value: f64) -> Option<i64> {
    // 2^63 as f64; values at or beyond it do not fit an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (value.fract() == 0.0 && (-LIMIT..LIMIT).contains(&value)).then_some(value as i64)
}

#[cfg(test)]
mod tests;
