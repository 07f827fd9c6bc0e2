//! go-livepeer-compatible analytics events: what a gateway session observed, as the envelopes
//! go-livepeer's gateway publishes (monitor/kafka.go), and the task that ships them to a
//! collector's `POST /v1/events`.
//!
//! The translation is pure: [`EventTranslator::translate`] turns one [`Observation`] into one
//! [`EventEnvelope`] with exactly the payload go-livepeer builds for that happening, so NaaP
//! pipelines that read go-livepeer's events read lvt's the same way:
//!
//! | observation | family | payload (go-livepeer call site) |
//! |---|---|---|
//! | `Trace` | `stream_trace` | `{type, timestamp, stream_id, pipeline_id, request_id, orchestrator_info}` (ai_mediaserver.go, ai_live_video.go) |
//! | `Swap` | `stream_trace` | `{type: "orchestrator_swap", stream_id, request_id, pipeline, pipeline_id, message, orchestrator_info}` with the orchestrator left behind |
//! | `NoOrchestratorsAvailable` | `stream_trace` | `{type: "gateway_no_orchestrators_available", timestamp, stream_id, pipeline_id, request_id, orchestrator_info: {"", ""}}` (ai_process.go) |
//! | `RunnerEvent` | `ai_stream_status` for `type: "status"`, else the segment's `queue_event_type` (`ai_stream_events` when absent) | the runner's event plus `stream_id`, `request_id`, `pipeline_id`, `orchestrator_info` |
//! | `DiscoveryResults` | `discovery_results` | `[{address, url, latency_ms}]`, every value a string (discovery.go) |
//! | `Capabilities` | `network_capabilities` | `[{address, local_address, orch_uri, capabilities, capabilities_prices, hardware}]` |
//!
//! go-livepeer coalesces the large `last_params` and `last_restart_logs` fields of a status
//! event with the previous status of the same stream (the runner sends them once); the
//! translator keeps that per-stream memory, which is why it is a struct and not a function.
//!
//! [`spawn_emitter`] runs the shipping side: it drains an [`ObservationSink`]'s receiver,
//! batches envelopes, signs each batch like result batches (`lvt_schema::sign`, a fresh
//! signature per attempt) and posts it, retrying transient failures with backoff. The collector
//! deduplicates by envelope id, so a retry after a lost answer stores nothing twice. Sessions
//! never wait for it: the sink is an unbounded channel. It can produce to Kafka instead, in
//! go-livepeer's layout (one topic, one unsigned envelope per message, key = envelope id), which
//! the collector's events-topic consumer and existing NaaP pipelines read.
//!
//! [`ObservationSink`]: super::observe::ObservationSink

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lvt_schema::events::EventEnvelope;
use lvt_schema::sign::{self, SigningKey};
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::observe::{DiscoveredCandidate, Observation, OrchestratorInfo, StreamContext};
use lvt_wire::grpc::OrchestratorSummary;
use lvt_wire::grpc::{CAPABILITY_LIVE_VIDEO_TO_VIDEO, proto};

/// The collector's event ingest path, appended to the collector URL.
pub const EVENTS_PATH: &str = "/v1/events";
/// Most envelopes in one batch. go-livepeer's producer buffers 100 events; batches of the same
/// size keep a request well under the collector's body limit.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 100;
/// How long an envelope may wait for companions before its batch is sent anyway.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The backoff before the first retry of a batch; each further retry doubles it.
pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Attempts per batch still made after shutdown was requested (the first one included), so
/// that stopping a run does not hang on a collector that is down.
pub const DEFAULT_DRAIN_ATTEMPTS: u32 = 3;
/// How long one request may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The family of `stream_trace` events.
pub const FAMILY_STREAM_TRACE: &str = "stream_trace";
/// The family of relayed runner status events.
pub const FAMILY_AI_STREAM_STATUS: &str = "ai_stream_status";
/// The family of relayed runner events other than status.
pub const FAMILY_AI_STREAM_EVENTS: &str = "ai_stream_events";
/// The family of discovery rounds.
pub const FAMILY_DISCOVERY_RESULTS: &str = "discovery_results";
/// The family of orchestrator capability snapshots.
pub const FAMILY_NETWORK_CAPABILITIES: &str = "network_capabilities";

/// What go-livepeer writes for an orchestrator address it does not know: `hexutil.Encode` of
/// zero bytes.
const EMPTY_HEX_ADDRESS: &str = "0x";

/// Turns observations into go-livepeer envelopes. See the module documentation for the shapes.
#[derive(Debug, Clone)]
pub struct EventTranslator {
    /// The envelope's `gateway` field: the publishing gateway's address.
    gateway: String,
    /// The last `inference_status` seen per stream id, for go-livepeer's status coalescing.
    last_inference_status: HashMap<String, Map<String, Value>>,
}

impl EventTranslator {
    /// A translator whose envelopes name `gateway` as their publisher.
    pub fn new(gateway: impl Into<String>) -> Self {
        Self {
            gateway: gateway.into(),
            last_inference_status: HashMap::new(),
        }
    }

    /// The envelope for `observation` with envelope id `id` (a UUID), or `None` when go-livepeer
    /// would publish nothing: a runner event that is not a JSON object (go-livepeer skips what
    /// it cannot parse as one) and an empty discovery round (it only publishes non-empty ones).
    ///
    /// The envelope `timestamp` is the observation's time: go-livepeer stamps the enqueue time,
    /// which is the same instant for a gateway that enqueues as it observes.
    pub fn translate(&mut self, observation: &Observation, id: String) -> Option<EventEnvelope> {
        let (at_unix_ms, family, data) = match observation {
            Observation::Trace {
                at_unix_ms,
                stream,
                kind,
                orchestrator,
            } => (
                *at_unix_ms,
                FAMILY_STREAM_TRACE.to_owned(),
                trace_data(*at_unix_ms, stream, kind, orchestrator.as_ref()),
            ),
            Observation::Swap {
                at_unix_ms,
                stream,
                from,
                to: _,
                cause,
            } => (
                *at_unix_ms,
                FAMILY_STREAM_TRACE.to_owned(),
                swap_data(stream, from, cause),
            ),
            Observation::NoOrchestratorsAvailable {
                at_unix_ms, stream, ..
            } => (
                *at_unix_ms,
                FAMILY_STREAM_TRACE.to_owned(),
                trace_data(
                    *at_unix_ms,
                    stream,
                    "gateway_no_orchestrators_available",
                    None,
                ),
            ),
            Observation::RunnerEvent {
                at_unix_ms,
                stream,
                orchestrator,
                event,
            } => {
                let (family, data) = self.relay_runner_event(stream, orchestrator, event)?;
                (*at_unix_ms, family, data)
            }
            Observation::DiscoveryResults {
                at_unix_ms,
                candidates,
            } => {
                if candidates.is_empty() {
                    return None;
                }
                (
                    *at_unix_ms,
                    FAMILY_DISCOVERY_RESULTS.to_owned(),
                    discovery_data(candidates),
                )
            }
            Observation::Capabilities {
                at_unix_ms,
                orchestrator,
                summary,
            } => (
                *at_unix_ms,
                FAMILY_NETWORK_CAPABILITIES.to_owned(),
                Value::Array(vec![network_capabilities_entry(orchestrator, summary)]),
            ),
        };
        Some(EventEnvelope {
            id,
            family,
            timestamp: at_unix_ms.to_string(),
            gateway: self.gateway.clone(),
            data,
        })
    }

    /// go-livepeer's events subscription (ai_live_video.go `startEventsSubscribe`): unwrap
    /// `{"event", "queue_event_type"}` (or take the whole document as an `ai_stream_events`
    /// event), add the stream context, route `type: "status"` to `ai_stream_status` and
    /// coalesce its large fields with the stream's previous status.
    fn relay_runner_event(
        &mut self,
        stream: &StreamContext,
        orchestrator: &OrchestratorInfo,
        document: &Value,
    ) -> Option<(String, Value)> {
        let Value::Object(body) = document else {
            return None;
        };
        let (mut event, mut family) = match body.get("event") {
            Some(Value::Object(inner)) => {
                let family = match body.get("queue_event_type") {
                    Some(Value::String(name)) if !name.is_empty() => name.clone(),
                    _ => FAMILY_AI_STREAM_EVENTS.to_owned(),
                };
                (inner.clone(), family)
            }
            _ => (body.clone(), FAMILY_AI_STREAM_EVENTS.to_owned()),
        };
        event.insert("stream_id".into(), json!(stream.stream_id));
        event.insert("request_id".into(), json!(stream.request_id));
        event.insert("pipeline_id".into(), json!(stream.model_id));
        event.insert(
            "orchestrator_info".into(),
            orchestrator_info_value(Some(orchestrator)),
        );
        if event.get("type").and_then(Value::as_str) == Some("status") {
            family = FAMILY_AI_STREAM_STATUS.to_owned();
            self.coalesce_status(&stream.stream_id, &mut event);
        }
        Some((family, Value::Object(event)))
    }

    /// Fills `last_restart_logs` and `last_params` of a status's `inference_status` from the
    /// stream's previous status when the runner left them out or null, then remembers it.
    fn coalesce_status(&mut self, stream_id: &str, event: &mut Map<String, Value>) {
        let Some(Value::Object(inference)) = event.get_mut("inference_status") else {
            return;
        };
        if let Some(previous) = self.last_inference_status.get(stream_id) {
            for field in ["last_restart_logs", "last_params"] {
                let missing = inference.get(field).is_none_or(Value::is_null);
                if missing && let Some(value) = previous.get(field) {
                    inference.insert(field.to_owned(), value.clone());
                }
            }
        }
        self.last_inference_status
            .insert(stream_id.to_owned(), inference.clone());
    }

    /// Forgets the status memory of a stream that ended.
    pub fn forget_stream(&mut self, stream_id: &str) {
        self.last_inference_status.remove(stream_id);
    }
}

/// go-livepeer's `orchestrator_info` object; empty strings before an orchestrator is selected.
fn orchestrator_info_value(orchestrator: Option<&OrchestratorInfo>) -> Value {
    match orchestrator {
        Some(info) => json!({
            "address": info.address.clone().unwrap_or_default(),
            "url": info.url,
        }),
        None => json!({"address": "", "url": ""}),
    }
}

/// The common `stream_trace` payload of the gateway's own lifecycle traces.
fn trace_data(
    at_unix_ms: i64,
    stream: &StreamContext,
    kind: &str,
    orchestrator: Option<&OrchestratorInfo>,
) -> Value {
    json!({
        "type": kind,
        "timestamp": at_unix_ms,
        "stream_id": stream.stream_id,
        "pipeline_id": stream.model_id,
        "request_id": stream.request_id,
        "orchestrator_info": orchestrator_info_value(orchestrator),
    })
}

/// The `orchestrator_swap` payload: go-livepeer reports the orchestrator it leaves, the cause
/// as `message`, and no timestamp (the envelope carries the time).
fn swap_data(stream: &StreamContext, from: &OrchestratorInfo, cause: &str) -> Value {
    json!({
        "type": "orchestrator_swap",
        "stream_id": stream.stream_id,
        "request_id": stream.request_id,
        "pipeline": pipeline_name(stream),
        "pipeline_id": stream.model_id,
        "message": cause,
        "orchestrator_info": orchestrator_info_value(Some(from)),
    })
}

/// go-livepeer fills `pipeline` from the ingest's `pipeline` parameter, which is the model id
/// (its own comment: "this `pipeline` is actually modelID"); the pipeline name stands in when
/// no model is known.
fn pipeline_name(stream: &StreamContext) -> &str {
    if stream.model_id.is_empty() {
        &stream.pipeline
    } else {
        &stream.model_id
    }
}

/// `discovery_results`: one entry per candidate in selection order, every value a string.
fn discovery_data(candidates: &[DiscoveredCandidate]) -> Value {
    Value::Array(
        candidates
            .iter()
            .map(|candidate| {
                json!({
                    "address": candidate.address.clone().unwrap_or_else(|| EMPTY_HEX_ADDRESS.to_owned()),
                    "url": candidate.url,
                    "latency_ms": candidate.latency_ms.to_string(),
                })
            })
            .collect(),
    )
}

/// One `network_capabilities` entry (go-livepeer's `common.OrchNetworkCapabilities`).
///
/// `summary` may already be in go-livepeer's shape (as [`capabilities_json`] builds it from an
/// `OrchestratorInfo`: keys `capabilities`, `capabilities_prices`, `hardware`), or be an
/// [`OrchestratorSummary`], which is converted; anything else travels as `capabilities` so that
/// nothing is lost.
fn network_capabilities_entry(orchestrator: &OrchestratorInfo, summary: &Value) -> Value {
    let address = orchestrator.address.clone().unwrap_or_default();
    let (capabilities, prices, hardware) = if let Value::Object(map) = summary
        && (map.contains_key("capabilities")
            || map.contains_key("capabilities_prices")
            || map.contains_key("hardware"))
    {
        (
            map.get("capabilities").cloned().unwrap_or(Value::Null),
            map.get("capabilities_prices")
                .cloned()
                .unwrap_or(Value::Null),
            map.get("hardware").cloned().unwrap_or(Value::Null),
        )
    } else if let Ok(parsed) = OrchestratorSummary::deserialize(summary) {
        summary_as_go_livepeer(&parsed)
    } else {
        (summary.clone(), Value::Null, Value::Null)
    };
    json!({
        "address": address,
        "local_address": "",
        "orch_uri": orchestrator.url,
        "capabilities": capabilities,
        "capabilities_prices": prices,
        "hardware": hardware,
    })
}

/// Rebuilds the go-livepeer JSON of capabilities, prices and hardware from a summary. Only what
/// the summary kept comes back: capability 35's models, its prices and the GPUs.
fn summary_as_go_livepeer(summary: &OrchestratorSummary) -> (Value, Value, Value) {
    let models: Map<String, Value> = summary
        .live_models
        .iter()
        .map(|model| {
            (
                model.model_id.clone(),
                json!({
                    "warm": model.warm,
                    "capacity": model.capacity,
                    "runnerVersion": model.runner_version,
                    "capacityInUse": model.capacity_in_use,
                }),
            )
        })
        .collect();
    let capabilities = json!({
        "constraints": {
            "PerCapability": {
                CAPABILITY_LIVE_VIDEO_TO_VIDEO.to_string(): {"models": models}
            }
        }
    });
    let prices: Vec<Value> = summary
        .live_prices
        .iter()
        .map(|price| {
            json!({
                "pricePerUnit": price.price_per_unit,
                "pixelsPerUnit": price.pixels_per_unit,
                "capability": CAPABILITY_LIVE_VIDEO_TO_VIDEO,
                "constraint": price.model_id,
            })
        })
        .collect();
    let mut hardware: Vec<(String, String, Map<String, Value>)> = Vec::new();
    for gpu in &summary.gpus {
        let position = hardware
            .iter()
            .position(|(pipeline, model, _)| *pipeline == gpu.pipeline && *model == gpu.model_id);
        let index = match position {
            Some(index) => index,
            None => {
                hardware.push((gpu.pipeline.clone(), gpu.model_id.clone(), Map::new()));
                hardware.len() - 1
            }
        };
        let gpus = &mut hardware[index].2;
        gpus.insert(
            gpus.len().to_string(),
            json!({
                "id": gpu.id,
                "name": gpu.name,
                "major": gpu.compute_major,
                "minor": gpu.compute_minor,
                "memory_free": gpu.memory_free_bytes,
                "memory_total": gpu.memory_total_bytes,
            }),
        );
    }
    let hardware: Vec<Value> = hardware
        .into_iter()
        .map(|(pipeline, model_id, gpu_info)| {
            json!({"pipeline": pipeline, "model_id": model_id, "gpu_info": gpu_info})
        })
        .collect();
    (capabilities, Value::Array(prices), Value::Array(hardware))
}

/// The go-livepeer JSON of an `OrchestratorInfo`'s capabilities, prices and hardware, as a
/// driver puts it into [`Observation::Capabilities`]: `{capabilities, capabilities_prices,
/// hardware}` with the field names Go's JSON encoding of the protobuf structs uses.
pub fn capabilities_json(info: &proto::OrchestratorInfo) -> Value {
    let capabilities = info.capabilities.as_ref().map(|caps| {
        let per_capability: Map<String, Value> = caps
            .constraints
            .as_ref()
            .map(|constraints| {
                constraints
                    .per_capability
                    .iter()
                    .map(|(capability, per)| {
                        let models: Map<String, Value> = per
                            .models
                            .iter()
                            .map(|(model_id, model)| {
                                (
                                    model_id.clone(),
                                    json!({
                                        "warm": model.warm,
                                        "capacity": model.capacity,
                                        "runnerVersion": model.runner_version,
                                        "capacityInUse": model.capacity_in_use,
                                    }),
                                )
                            })
                            .collect();
                        (capability.to_string(), json!({"models": models}))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let capacities: Map<String, Value> = caps
            .capacities
            .iter()
            .map(|(capability, capacity)| (capability.to_string(), json!(capacity)))
            .collect();
        json!({
            "bitstring": caps.bitstring,
            "mandatories": caps.mandatories,
            "capacities": capacities,
            "version": caps.version,
            "constraints": {
                "minVersion": caps.constraints.as_ref().map(|c| c.min_version.clone()).unwrap_or_default(),
                "PerCapability": per_capability,
            },
        })
    });
    let prices: Vec<Value> = info
        .capabilities_prices
        .iter()
        .map(|price| {
            json!({
                "pricePerUnit": price.price_per_unit,
                "pixelsPerUnit": price.pixels_per_unit,
                "capability": price.capability,
                "constraint": price.constraint,
            })
        })
        .collect();
    let hardware: Vec<Value> = info
        .hardware
        .iter()
        .map(|hw| {
            let gpu_info: Map<String, Value> = hw
                .gpu_info
                .iter()
                .map(|(key, gpu)| {
                    (
                        key.clone(),
                        json!({
                            "id": gpu.id,
                            "name": gpu.name,
                            "major": gpu.major,
                            "minor": gpu.minor,
                            "memory_free": gpu.memory_free,
                            "memory_total": gpu.memory_total,
                        }),
                    )
                })
                .collect();
            json!({"pipeline": hw.pipeline, "model_id": hw.model_id, "gpu_info": gpu_info})
        })
        .collect();
    json!({
        "capabilities": capabilities,
        "capabilities_prices": prices,
        "hardware": hardware,
    })
}

/// A random (version 4) UUID in its hyphenated lowercase form, made from 16 random bytes.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Where the emitter ships envelopes.
#[derive(Clone)]
pub enum EventDestination {
    /// Signed batches to `POST {url}/v1/events`.
    Collector {
        /// The collector (`http://host:port`, optionally with a path prefix).
        url: String,
        /// The agent key batches are signed with; the collector must know its key id.
        key: SigningKey,
    },
    /// go-livepeer's Kafka layout: one unsigned envelope per message on `topic`, keyed by the
    /// envelope id.
    Kafka {
        /// Bootstrap brokers, `host:port[,host:port...]`.
        brokers: String,
        /// The gateway events topic.
        topic: String,
    },
}

impl std::fmt::Debug for EventDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The signing key is secret and must never reach a log: only its id is shown.
            Self::Collector { url, key } => f
                .debug_struct("Collector")
                .field("url", url)
                .field("key_id", &sign::key_id(&key.verifying_key()))
                .finish(),
            Self::Kafka { brokers, topic } => f
                .debug_struct("Kafka")
                .field("brokers", brokers)
                .field("topic", topic)
                .finish(),
        }
    }
}

/// How the emitter batches, retries and signs.
#[derive(Clone)]
pub struct EmitterConfig {
    /// Where envelopes go.
    pub destination: EventDestination,
    /// The envelope's `gateway` field.
    pub gateway: String,
    /// Most envelopes in one batch (at least 1 is used).
    pub max_batch_events: usize,
    /// Longest wait before a partial batch is sent.
    pub flush_interval: Duration,
    /// The backoff before the first retry; it doubles per retry up to `max_backoff`.
    pub base_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Attempts per batch made after shutdown was requested.
    pub drain_attempts: u32,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Seed of envelope ids and backoff jitter; `None` draws one from the operating system so
    /// that two gateways never mint the same ids.
    pub seed: Option<u64>,
}

impl std::fmt::Debug for EmitterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key is secret and must never reach a log.
        f.debug_struct("EmitterConfig")
            .field("destination", &self.destination)
            .field("gateway", &self.gateway)
            .field("max_batch_events", &self.max_batch_events)
            .field("flush_interval", &self.flush_interval)
            .finish_non_exhaustive()
    }
}

impl EmitterConfig {
    /// Signed batches to the collector at `collector_url`; defaults for everything else.
    pub fn new(
        collector_url: impl Into<String>,
        key: SigningKey,
        gateway: impl Into<String>,
    ) -> Self {
        Self::with_destination(
            EventDestination::Collector {
                url: collector_url.into(),
                key,
            },
            gateway,
        )
    }

    /// go-livepeer's Kafka layout on `brokers` and `topic`; defaults for everything else.
    pub fn kafka(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        gateway: impl Into<String>,
    ) -> Self {
        Self::with_destination(
            EventDestination::Kafka {
                brokers: brokers.into(),
                topic: topic.into(),
            },
            gateway,
        )
    }

    fn with_destination(destination: EventDestination, gateway: impl Into<String>) -> Self {
        Self {
            destination,
            gateway: gateway.into(),
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            base_backoff: DEFAULT_BASE_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            drain_attempts: DEFAULT_DRAIN_ATTEMPTS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            seed: None,
        }
    }
}

/// Why the emitter could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    /// The collector URL is not an absolute http(s) URL without query or fragment.
    #[error("collector URL {url:?} is not an http:// or https:// URL")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The Kafka producer could not be built (no broker or topic, or librdkafka refused it).
    #[error("kafka producer ({brokers}): {error}")]
    Kafka {
        /// The brokers as given.
        brokers: String,
        /// Why.
        error: String,
    },
}

/// What the emitter did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitterReport {
    /// Observations received from the sink.
    pub observations: u64,
    /// Envelopes built (observations go-livepeer would publish nothing for are not counted).
    pub envelopes: u64,
    /// Batches the collector acknowledged.
    pub batches: u64,
    /// Envelopes the collector newly stored as usable events.
    pub stored: u64,
    /// Envelopes the collector already had (a retry after a lost answer).
    pub duplicates: u64,
    /// Envelopes the collector kept aside.
    pub kept_aside: u64,
    /// Envelopes a Kafka broker acknowledged (the Kafka destination's "delivered").
    pub produced: u64,
    /// Attempts beyond the first, over all batches.
    pub retries: u64,
    /// Envelopes dropped because the collector refused their batch for good (4xx other than
    /// 409) or was still failing when the drain attempts ran out.
    pub dropped: u64,
}

/// The collector's answer to a stored batch.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct EventsAck {
    #[serde(default)]
    stored: u64,
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    kept_aside: u64,
    /// Set by the Kafka destination: envelopes the broker acknowledged.
    #[serde(skip)]
    produced: u64,
}

/// How an attempt's HTTP status is handled; the same split as result shipping: 2xx delivered,
/// 409 (nonce or timestamp refused) and 5xx worth a re-signed retry, anything else final.
fn is_retryable_status(status: u16) -> bool {
    status == 409 || (500..=599).contains(&status)
}

/// The wait before retry `retry` (1 for the first): `base * 2^(retry-1)`, capped, scaled by
/// `0.5 + jitter / 2` for `jitter` in `[0, 1]`.
pub fn backoff(base: Duration, max: Duration, retry: u32, jitter: f64) -> Duration {
    let doublings = retry.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << doublings).min(max);
    full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// Starts the emitter: it reads `observations` until every sender is dropped or `shutdown` is
/// cancelled, ships what it has (making at most [`EmitterConfig::drain_attempts`] attempts per
/// batch once stopping), and returns its report.
pub fn spawn_emitter(
    observations: mpsc::UnboundedReceiver<Observation>,
    config: EmitterConfig,
    shutdown: CancellationToken,
) -> Result<JoinHandle<EmitterReport>, EmitterError> {
    let sink = match &config.destination {
        EventDestination::Collector { url, key } => {
            let bad_url = || EmitterError::BadUrl { url: url.clone() };
            let base = reqwest::Url::parse(url).map_err(|_| bad_url())?;
            if !matches!(base.scheme(), "http" | "https")
                || base.host_str().is_none()
                || base.query().is_some()
                || base.fragment().is_some()
            {
                return Err(bad_url());
            }
            let endpoint = reqwest::Url::parse(&format!(
                "{}{EVENTS_PATH}",
                base.as_str().trim_end_matches('/')
            ))
            .map_err(|_| bad_url())?;
            let http = reqwest::Client::builder()
                .timeout(config.request_timeout)
                .build()?;
            Sink::Collector {
                endpoint,
                http,
                key: Box::new(key.clone()),
            }
        }
        EventDestination::Kafka { brokers, topic } => Sink::Kafka(
            kafka::KafkaSink::new(brokers, topic, config.request_timeout).map_err(|error| {
                EmitterError::Kafka {
                    brokers: brokers.clone(),
                    error,
                }
            })?,
        ),
    };
    let seed = config.seed.unwrap_or_else(|| rand::rng().random());
    let emitter = Emitter {
        translator: EventTranslator::new(config.gateway.clone()),
        rng: ChaCha8Rng::seed_from_u64(seed),
        sink,
        config,
        shutdown,
        report: EmitterReport::default(),
    };
    Ok(tokio::spawn(emitter.run(observations)))
}

/// Where the emitter task sends, built from an [`EventDestination`].
enum Sink {
    Collector {
        endpoint: reqwest::Url,
        http: reqwest::Client,
        // Boxed: a signing key is several times larger than the Kafka variant.
        key: Box<SigningKey>,
    },
    Kafka(kafka::KafkaSink),
}

/// The emitter task's state.
struct Emitter {
    translator: EventTranslator,
    rng: ChaCha8Rng,
    sink: Sink,
    config: EmitterConfig,
    shutdown: CancellationToken,
    report: EmitterReport,
}

impl Emitter {
    async fn run(
        mut self,
        mut observations: mpsc::UnboundedReceiver<Observation>,
    ) -> EmitterReport {
        let max_batch = self.config.max_batch_events.max(1);
        let mut pending: Vec<Value> = Vec::new();
        let mut open = true;
        while open {
            // Wait for the first envelope of a batch without a deadline, then give it
            // companions until the batch is full or the flush interval has passed.
            let first = tokio::select! {
                biased;
                received = observations.recv() => received,
                () = self.shutdown.cancelled() => None,
            };
            match first {
                Some(observation) => self.accept(&observation, &mut pending),
                None => open = false,
            }
            if open && !pending.is_empty() {
                let deadline = tokio::time::Instant::now() + self.config.flush_interval;
                while pending.len() < max_batch {
                    tokio::select! {
                        biased;
                        received = observations.recv() => match received {
                            Some(observation) => self.accept(&observation, &mut pending),
                            None => { open = false; break; }
                        },
                        () = self.shutdown.cancelled() => { open = false; break; }
                        () = tokio::time::sleep_until(deadline) => break,
                    }
                }
            }
            // Collection stops at `max_batch`, so the pending envelopes fit one batch.
            if !pending.is_empty() {
                let batch = std::mem::take(&mut pending);
                self.deliver(batch).await;
            }
        }
        // Stopping: whatever is still queued in the channel goes out too.
        while let Ok(observation) = observations.try_recv() {
            self.accept(&observation, &mut pending);
        }
        while !pending.is_empty() {
            let take = pending.len().min(max_batch);
            let batch: Vec<Value> = pending.drain(..take).collect();
            self.deliver(batch).await;
        }
        self.report
    }

    fn accept(&mut self, observation: &Observation, pending: &mut Vec<Value>) {
        self.report.observations += 1;
        if let Observation::Trace { stream, kind, .. } = observation
            && *kind == "gateway_ingest_stream_closed"
        {
            self.translator.forget_stream(&stream.stream_id);
        }
        let mut id_bytes = [0u8; 16];
        self.rng.fill_bytes(&mut id_bytes);
        if let Some(envelope) = self.translator.translate(observation, uuid_v4(id_bytes)) {
            self.report.envelopes += 1;
            // An envelope has string keys and JSON values only, so it always serializes.
            pending.push(serde_json::to_value(&envelope).unwrap_or(Value::Null));
        }
    }

    /// Delivers one batch, retrying transient failures with a fresh signature each attempt.
    async fn deliver(&mut self, batch: Vec<Value>) {
        let count = batch.len() as u64;
        let batch = Value::Array(batch);
        // Serializing a `Value` cannot fail: it has string keys only.
        let body = serde_json::to_vec(&batch).unwrap_or_default();
        let mut attempt: u32 = 1;
        let mut attempts_after_shutdown: u32 = 0;
        loop {
            if self.shutdown.is_cancelled() {
                attempts_after_shutdown += 1;
            }
            match self.attempt(&batch, body.clone()).await {
                Ok(ack) => {
                    self.report.batches += 1;
                    self.report.stored += ack.stored;
                    self.report.duplicates += ack.duplicates;
                    self.report.kept_aside += ack.kept_aside;
                    self.report.produced += ack.produced;
                    self.report.retries += u64::from(attempt - 1);
                    return;
                }
                Err(AttemptError::Final { status, detail }) => {
                    tracing::warn!(
                        message = "Event batch refused by the collector; dropping it.",
                        status,
                        events = count,
                        error = %detail
                    );
                    self.report.dropped += count;
                    self.report.retries += u64::from(attempt - 1);
                    return;
                }
                Err(AttemptError::Retry(error)) => {
                    if attempts_after_shutdown >= self.config.drain_attempts.max(1) {
                        tracing::warn!(
                            message = "Event batch not delivered before shutdown; dropping it.",
                            events = count,
                            error = %error
                        );
                        self.report.dropped += count;
                        self.report.retries += u64::from(attempt - 1);
                        return;
                    }
                    let jitter: f64 = self.rng.random();
                    let wait = backoff(
                        self.config.base_backoff,
                        self.config.max_backoff,
                        attempt,
                        jitter,
                    );
                    tracing::info!(
                        message = "Event batch attempt failed; retrying.",
                        attempt,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %error
                    );
                    if self.shutdown.is_cancelled() {
                        tokio::time::sleep(wait).await;
                    } else {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = self.shutdown.cancelled() => {}
                        }
                    }
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(&self, batch: &Value, body: Vec<u8>) -> Result<EventsAck, AttemptError> {
        let (endpoint, http, key) = match &self.sink {
            Sink::Collector {
                endpoint,
                http,
                key,
            } => (endpoint, http, key),
            Sink::Kafka(sink) => {
                let envelopes = batch.as_array().map(Vec::as_slice).unwrap_or_default();
                return sink
                    .produce(envelopes)
                    .await
                    .map(|produced| EventsAck {
                        produced,
                        ..EventsAck::default()
                    })
                    .map_err(AttemptError::Retry);
            }
        };
        let signature = sign::sign_batch(key, batch, now_unix_ms(), sign::random_nonce());
        let mut request = http
            .post(endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in signature.to_headers() {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| AttemptError::Retry(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| AttemptError::Retry(e.to_string()))?;
        if (200..=299).contains(&status) {
            // A 2xx whose body is unreadable still stored the batch; count it as delivered.
            return Ok(serde_json::from_str(&text).unwrap_or_default());
        }
        let detail = text.chars().take(300).collect::<String>();
        if is_retryable_status(status) {
            Err(AttemptError::Retry(format!("HTTP {status}: {detail}")))
        } else {
            Err(AttemptError::Final { status, detail })
        }
    }
}

/// How one delivery attempt failed.
enum AttemptError {
    /// Worth another attempt (connection failure, 409, 5xx).
    Retry(String),
    /// The collector refused the batch for good.
    Final { status: u16, detail: String },
}

fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(feature = "kafka")]
mod kafka;
#[cfg(not(feature = "kafka"))]
#[path = "events/kafka_disabled.rs"]
mod kafka;

#[cfg(test)]
mod tests;
