//! Envelope shapes, checked field by field through lvt-schema's typed views so that the
//! collector reads exactly what the emitter writes.

use lvt_schema::events::{AiStreamEventKind, EventEnvelope, EventFamily, EventView, TraceKind};
use rand::Rng as _;
use serde_json::{Value, json};

use super::*;

const AT: i64 = 1_764_237_600_123;

fn stream() -> StreamContext {
    StreamContext {
        stream_id: "stream-1".into(),
        request_id: "session-1".into(),
        pipeline: "live-video-to-video".into(),
        model_id: "streamdiffusion".into(),
    }
}

fn orch(address: Option<&str>, url: &str) -> OrchestratorInfo {
    OrchestratorInfo {
        address: address.map(str::to_owned),
        url: url.into(),
    }
}

fn translate(observation: Observation) -> EventEnvelope {
    EventTranslator::new("lvt-gateway")
        .translate(&observation, "id-1".into())
        .expect("go-livepeer publishes this observation")
}

/// The envelope survives the wire: serialize, parse as the collector does, compare.
fn round_trip(envelope: &EventEnvelope) -> EventEnvelope {
    let bytes = serde_json::to_vec(envelope).expect("serializes");
    let value: Value = serde_json::from_slice(&bytes).expect("json");
    assert!(
        value["timestamp"].is_string(),
        "timestamp is a string: {value}"
    );
    EventEnvelope::parse(&bytes).expect("parses as an envelope")
}

#[test]
fn trace_has_go_livepeer_fields_and_reads_as_stream_trace() {
    let envelope = translate(Observation::Trace {
        at_unix_ms: AT,
        stream: stream(),
        kind: "gateway_send_first_ingest_segment",
        orchestrator: Some(orch(Some("0xabc"), "https://o1:8935")),
    });
    assert_eq!(envelope.family, "stream_trace");
    assert_eq!(envelope.timestamp, AT.to_string());
    assert_eq!(envelope.gateway, "lvt-gateway");
    assert_eq!(envelope.id, "id-1");
    assert_eq!(
        envelope.data,
        json!({
            "type": "gateway_send_first_ingest_segment",
            "timestamp": AT,
            "stream_id": "stream-1",
            "pipeline_id": "streamdiffusion",
            "request_id": "session-1",
            "orchestrator_info": {"address": "0xabc", "url": "https://o1:8935"},
        })
    );
    let parsed = round_trip(&envelope);
    assert_eq!(parsed.timestamp_unix_ms(), Some(AT));
    let EventView::StreamTrace(trace) = parsed.view().expect("view") else {
        panic!("not a stream trace");
    };
    assert_eq!(trace.kind(), TraceKind::GatewaySendFirstIngestSegment);
    assert_eq!(trace.timestamp, Some(AT));
    assert_eq!(trace.context.stream_id.as_deref(), Some("stream-1"));
    assert_eq!(trace.context.request_id.as_deref(), Some("session-1"));
    assert_eq!(
        trace.context.pipeline_id.as_deref(),
        Some("streamdiffusion")
    );
    let info = trace.context.orchestrator_info.expect("orchestrator info");
    assert_eq!(info.address.as_deref(), Some("0xabc"));
    assert_eq!(info.url.as_deref(), Some("https://o1:8935"));
}

#[test]
fn trace_before_selection_has_empty_orchestrator_info() {
    let envelope = translate(Observation::Trace {
        at_unix_ms: AT,
        stream: stream(),
        kind: "gateway_receive_stream_request",
        orchestrator: None,
    });
    assert_eq!(
        envelope.data["orchestrator_info"],
        json!({"address": "", "url": ""})
    );
    let EventView::StreamTrace(trace) = round_trip(&envelope).view().expect("view") else {
        panic!("not a stream trace");
    };
    // Go's empty strings read as "no orchestrator yet".
    let info = trace.context.orchestrator_info.expect("present");
    assert_eq!((info.address, info.url), (None, None));
}

#[test]
fn swap_reports_the_orchestrator_left_and_the_cause() {
    let envelope = translate(Observation::Swap {
        at_unix_ms: AT,
        stream: stream(),
        from: orch(Some("0xold"), "https://old:8935"),
        to: orch(Some("0xnew"), "https://new:8935"),
        cause: "trickle subscribe error, swapping: EOF".into(),
    });
    assert_eq!(
        envelope.data,
        json!({
            "type": "orchestrator_swap",
            "stream_id": "stream-1",
            "request_id": "session-1",
            "pipeline": "streamdiffusion",
            "pipeline_id": "streamdiffusion",
            "message": "trickle subscribe error, swapping: EOF",
            "orchestrator_info": {"address": "0xold", "url": "https://old:8935"},
        })
    );
    let EventView::StreamTrace(trace) = round_trip(&envelope).view().expect("view") else {
        panic!("not a stream trace");
    };
    assert_eq!(trace.kind(), TraceKind::OrchestratorSwap);
    assert_eq!(
        trace.message.as_deref(),
        Some("trickle subscribe error, swapping: EOF")
    );
    assert_eq!(trace.timestamp, None, "go-livepeer's swap has no timestamp");
    assert_eq!(trace.context.pipeline.as_deref(), Some("streamdiffusion"));
    assert_eq!(
        trace
            .context
            .orchestrator_info
            .and_then(|i| i.url)
            .as_deref(),
        Some("https://old:8935")
    );
}

#[test]
fn no_orchestrators_available_is_a_trace_without_orchestrator() {
    let envelope = translate(Observation::NoOrchestratorsAvailable {
        at_unix_ms: AT,
        stream: stream(),
        tries: 20,
        message: "no orchestrators available".into(),
    });
    assert_eq!(
        envelope.data,
        json!({
            "type": "gateway_no_orchestrators_available",
            "timestamp": AT,
            "stream_id": "stream-1",
            "pipeline_id": "streamdiffusion",
            "request_id": "session-1",
            "orchestrator_info": {"address": "", "url": ""},
        })
    );
    let EventView::StreamTrace(trace) = round_trip(&envelope).view().expect("view") else {
        panic!("not a stream trace");
    };
    assert_eq!(trace.kind(), TraceKind::GatewayNoOrchestratorsAvailable);
}

fn status_document(last_params: Value) -> Value {
    json!({
        "event": {
            "type": "status",
            "timestamp": AT,
            "pipeline": "streamdiffusion",
            "start_time": 1_764_237_590.5,
            "state": "ONLINE",
            "last_state_update_time": 1_764_237_595.0,
            "input_status": {"last_input_time": 1_764_237_600.0, "fps": 30.0},
            "inference_status": {
                "last_output_time": 1_764_237_600.1,
                "fps": 29.5,
                "last_params": last_params,
                "last_params_hash": "0123",
                "last_restart_logs": null,
                "restart_count": 0,
            },
        },
        "queue_event_type": "ai_stream_events",
    })
}

#[test]
fn status_is_relayed_as_ai_stream_status_with_context() {
    let envelope = translate(Observation::RunnerEvent {
        at_unix_ms: AT,
        stream: stream(),
        orchestrator: orch(Some("0xabc"), "https://o1:8935"),
        event: status_document(json!({"prompt": "a cat"})),
    });
    assert_eq!(envelope.family, "ai_stream_status");
    assert!(envelope.data.get("queue_event_type").is_none());
    let EventView::AiStreamStatus(status) = round_trip(&envelope).view().expect("view") else {
        panic!("not a status");
    };
    assert_eq!(status.event_type.as_deref(), Some("status"));
    assert_eq!(status.state.as_deref(), Some("ONLINE"));
    assert_eq!(status.timestamp, Some(AT));
    assert_eq!(status.start_time, Some(1_764_237_590.5));
    assert_eq!(status.context.stream_id.as_deref(), Some("stream-1"));
    assert_eq!(status.context.request_id.as_deref(), Some("session-1"));
    assert_eq!(
        status.context.pipeline_id.as_deref(),
        Some("streamdiffusion")
    );
    assert_eq!(status.context.pipeline.as_deref(), Some("streamdiffusion"));
    assert_eq!(
        status
            .context
            .orchestrator_info
            .and_then(|i| i.address)
            .as_deref(),
        Some("0xabc")
    );
    assert_eq!(status.input_status.and_then(|i| i.fps), Some(30.0));
    let inference = status.inference_status.expect("inference status");
    assert_eq!(inference.fps, Some(29.5));
    assert_eq!(inference.last_params, Some(json!({"prompt": "a cat"})));
}

#[test]
fn status_coalesces_params_with_the_previous_status_of_the_stream() {
    let mut translator = EventTranslator::new("g");
    let event = |params: Value| Observation::RunnerEvent {
        at_unix_ms: AT,
        stream: stream(),
        orchestrator: orch(None, "https://o1:8935"),
        event: status_document(params),
    };
    translator
        .translate(&event(json!({"prompt": "a cat"})), "a".into())
        .expect("first");
    let second = translator
        .translate(&event(Value::Null), "b".into())
        .expect("second");
    assert_eq!(
        second.data["inference_status"]["last_params"],
        json!({"prompt": "a cat"}),
        "a null last_params takes the previous value, as go-livepeer does"
    );
    translator.forget_stream("stream-1");
    let third = translator
        .translate(&event(Value::Null), "c".into())
        .expect("third");
    assert_eq!(third.data["inference_status"]["last_params"], Value::Null);
}

#[test]
fn other_runner_events_keep_their_queue_family() {
    let error = translate(Observation::RunnerEvent {
        at_unix_ms: AT,
        stream: stream(),
        orchestrator: orch(Some("0xabc"), "https://o1:8935"),
        event: json!({
            "event": {"type": "error", "message": "boom", "time": 1.5, "timestamp": AT},
            "queue_event_type": "ai_stream_events",
        }),
    });
    assert_eq!(error.family, "ai_stream_events");
    let EventView::AiStreamEvent(event) = round_trip(&error).view().expect("view") else {
        panic!("not an ai stream event");
    };
    assert_eq!(event.kind(), AiStreamEventKind::Error);
    assert_eq!(event.message.as_deref(), Some("boom"));
    assert_eq!(event.context.stream_id.as_deref(), Some("stream-1"));

    let runner_trace = translate(Observation::RunnerEvent {
        at_unix_ms: AT,
        stream: stream(),
        orchestrator: orch(Some("0xabc"), "https://o1:8935"),
        event: json!({
            "event": {"type": "runner_send_first_processed_segment", "timestamp": AT},
            "queue_event_type": "stream_trace",
        }),
    });
    assert_eq!(runner_trace.family, "stream_trace");
    let EventView::StreamTrace(trace) = round_trip(&runner_trace).view().expect("view") else {
        panic!("not a trace");
    };
    assert_eq!(
        trace.kind(),
        TraceKind::Runner("runner_send_first_processed_segment".into())
    );

    // A document without the wrapper is an `ai_stream_events` event as a whole.
    let bare = translate(Observation::RunnerEvent {
        at_unix_ms: AT,
        stream: stream(),
        orchestrator: orch(None, "https://o1:8935"),
        event: json!({"type": "restart", "restart_count": 2}),
    });
    assert_eq!(bare.family, "ai_stream_events");
    assert_eq!(bare.data["restart_count"], 2);

    // Something that is not an object is skipped, like go-livepeer's failed unmarshal.
    let mut translator = EventTranslator::new("g");
    let skipped = Observation::RunnerEvent {
        at_unix_ms: AT,
        stream: stream(),
        orchestrator: orch(None, "u"),
        event: json!([1, 2]),
    };
    assert!(translator.translate(&skipped, "x".into()).is_none());
}

#[test]
fn discovery_results_are_strings_in_selection_order() {
    let envelope = translate(Observation::DiscoveryResults {
        at_unix_ms: AT,
        candidates: vec![
            DiscoveredCandidate {
                address: Some("0xaaa".into()),
                url: "https://a:8935".into(),
                latency_ms: 12,
            },
            DiscoveredCandidate {
                address: None,
                url: "https://b:8935".into(),
                latency_ms: 34,
            },
        ],
    });
    assert_eq!(envelope.family, "discovery_results");
    assert_eq!(
        envelope.data,
        json!([
            {"address": "0xaaa", "url": "https://a:8935", "latency_ms": "12"},
            {"address": "0x", "url": "https://b:8935", "latency_ms": "34"},
        ])
    );
    let EventView::DiscoveryResults(list) = round_trip(&envelope).view().expect("view") else {
        panic!("not discovery results");
    };
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].latency_ms, Some(12.0));
    assert_eq!(list[1].url.as_deref(), Some("https://b:8935"));
    let mut translator = EventTranslator::new("g");
    let empty = Observation::DiscoveryResults {
        at_unix_ms: AT,
        candidates: Vec::new(),
    };
    assert!(translator.translate(&empty, "x".into()).is_none());
}

fn sample_info() -> proto::OrchestratorInfo {
    use proto::capabilities::{CapabilityConstraints, Constraints, capability_constraints};
    proto::OrchestratorInfo {
        transcoder: "https://o1:8935".into(),
        address: vec![0xab; 20],
        capabilities: Some(proto::Capabilities {
            bitstring: vec![1u64 << 35],
            version: "0.8.5".into(),
            constraints: Some(Constraints {
                min_version: String::new(),
                per_capability: [(
                    CAPABILITY_LIVE_VIDEO_TO_VIDEO,
                    CapabilityConstraints {
                        models: [(
                            "streamdiffusion".to_owned(),
                            capability_constraints::ModelConstraint {
                                warm: true,
                                capacity: 2,
                                runner_version: "v1".into(),
                                capacity_in_use: 1,
                            },
                        )]
                        .into_iter()
                        .collect(),
                    },
                )]
                .into_iter()
                .collect(),
            }),
            ..Default::default()
        }),
        capabilities_prices: vec![proto::PriceInfo {
            price_per_unit: 3,
            pixels_per_unit: 1_000_000,
            capability: CAPABILITY_LIVE_VIDEO_TO_VIDEO,
            constraint: "streamdiffusion".into(),
        }],
        hardware: vec![proto::HardwareInformation {
            pipeline: "live-video-to-video".into(),
            model_id: "streamdiffusion".into(),
            gpu_info: [(
                "0".to_owned(),
                proto::GpuComputeInfo {
                    id: "GPU-1".into(),
                    name: "RTX 4090".into(),
                    major: 8,
                    minor: 9,
                    memory_free: 10,
                    memory_total: 24,
                },
            )]
            .into_iter()
            .collect(),
        }],
        ..Default::default()
    }
}

fn check_capabilities(envelope: &EventEnvelope) {
    assert_eq!(envelope.family, "network_capabilities");
    let EventView::NetworkCapabilities(list) = round_trip(envelope).view().expect("view") else {
        panic!("not network capabilities");
    };
    assert_eq!(list.len(), 1);
    let entry = &list[0];
    assert_eq!(entry.address.as_deref(), Some("0xabab"));
    assert_eq!(entry.orch_uri.as_deref(), Some("https://o1:8935"));
    assert_eq!(entry.local_address, None);
    let model = &entry.capabilities.as_ref().expect("capabilities")["constraints"]["PerCapability"]
        ["35"]["models"]["streamdiffusion"];
    assert_eq!(model["capacity"], 2);
    assert_eq!(model["capacityInUse"], 1);
    assert_eq!(model["warm"], true);
    let prices = entry.capabilities_prices.as_ref().expect("prices");
    assert_eq!(prices[0]["pricePerUnit"], 3);
    assert_eq!(prices[0]["constraint"], "streamdiffusion");
    assert_eq!(entry.hardware.len(), 1);
    let gpu = &entry.hardware[0].gpu_info["0"];
    assert_eq!(gpu.name.as_deref(), Some("RTX 4090"));
    assert_eq!((gpu.major, gpu.minor), (Some(8), Some(9)));
    assert_eq!(gpu.memory_total_bytes, Some(24));
    assert_eq!(
        entry.hardware[0].model_id.as_deref(),
        Some("streamdiffusion")
    );
}

#[test]
fn capabilities_from_an_orchestrator_info_read_as_network_capabilities() {
    let envelope = translate(Observation::Capabilities {
        at_unix_ms: AT,
        orchestrator: orch(Some("0xabab"), "https://o1:8935"),
        summary: capabilities_json(&sample_info()),
    });
    check_capabilities(&envelope);
    assert_eq!(
        envelope.data[0]["capabilities"]["version"], "0.8.5",
        "the full capabilities travel when the driver gives them"
    );
}

#[test]
fn capabilities_from_a_summary_are_converted() {
    let summary = lvt_wire::grpc::summarize(&sample_info());
    let envelope = translate(Observation::Capabilities {
        at_unix_ms: AT,
        orchestrator: orch(Some("0xabab"), "https://o1:8935"),
        summary: serde_json::to_value(summary).expect("summary serializes"),
    });
    check_capabilities(&envelope);
}

#[test]
fn unknown_capability_summaries_are_kept_verbatim() {
    let envelope = translate(Observation::Capabilities {
        at_unix_ms: AT,
        orchestrator: orch(None, "https://o1:8935"),
        summary: json!({"anything": 1}),
    });
    assert_eq!(envelope.data[0]["capabilities"], json!({"anything": 1}));
    assert!(matches!(
        round_trip(&envelope).view().expect("view"),
        EventView::NetworkCapabilities(_)
    ));
    assert_eq!(envelope.family(), EventFamily::NetworkCapabilities);
}

#[test]
fn uuid_v4_sets_version_and_variant() {
    let id = uuid_v4([0xff; 16]);
    assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    let id = uuid_v4([0; 16]);
    assert_eq!(id, "00000000-0000-4000-8000-000000000000");
}

#[test]
fn backoff_doubles_caps_and_jitters() {
    let base = Duration::from_millis(100);
    let max = Duration::from_millis(1000);
    assert_eq!(backoff(base, max, 1, 1.0), Duration::from_millis(100));
    assert_eq!(backoff(base, max, 2, 1.0), Duration::from_millis(200));
    assert_eq!(backoff(base, max, 3, 0.0), Duration::from_millis(200));
    assert_eq!(backoff(base, max, 9, 1.0), Duration::from_millis(1000));
    assert_eq!(backoff(base, max, 40, 2.0), Duration::from_millis(1000));
}

#[test]
fn bad_collector_urls_are_refused() {
    for url in ["not a url", "ftp://x", "http://x/?q=1"] {
        let (_tx, rx) = mpsc::unbounded_channel();
        let config = EmitterConfig::new(url, SigningKey::from_bytes(&[1; 32]), "g");
        assert!(matches!(
            spawn_emitter(rx, config, CancellationToken::new()),
            Err(EmitterError::BadUrl { .. })
        ));
    }
}

/// A random JSON value of bounded depth from a seeded generator.
fn random_json(rng: &mut ChaCha8Rng, depth: u32) -> Value {
    let keys = [
        "event",
        "queue_event_type",
        "type",
        "inference_status",
        "last_params",
        "x",
    ];
    match rng.random_range(0..if depth == 0 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random_range(-5i64..5)),
        3 => json!(
            ["status", "error", "stream_trace", "", "ai_stream_events"][rng.random_range(0..5)]
        ),
        4 => Value::Array(
            (0..rng.random_range(0..3))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.random_range(0..4))
                .map(|_| {
                    (
                        keys[rng.random_range(0..keys.len())].to_owned(),
                        random_json(rng, depth - 1),
                    )
                })
                .collect(),
        ),
    }
}

/// Whatever a runner writes on its events channel, the relay never panics, and what it
/// publishes is an object with the stream context that the collector can parse.
#[test]
fn arbitrary_runner_documents_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut translator = EventTranslator::new("g");
    for i in 0..3000 {
        let event = random_json(&mut rng, 4);
        let observation = Observation::RunnerEvent {
            at_unix_ms: AT,
            stream: stream(),
            orchestrator: orch(None, "u"),
            event: event.clone(),
        };
        let Some(envelope) = translator.translate(&observation, format!("id-{i}")) else {
            assert!(!event.is_object(), "only non-objects are skipped: {event}");
            continue;
        };
        assert!(!envelope.family.is_empty());
        assert_eq!(envelope.data["stream_id"], "stream-1", "{event}");
        let parsed = round_trip(&envelope);
        // A known family either reads as its view or is a shape error, never a panic.
        let _ = parsed.view();
    }
}
