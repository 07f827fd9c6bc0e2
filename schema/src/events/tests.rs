//! Tests of the analytics event envelope and its typed views, on sample documents written from
//! the protocol reference (section 7) and the status event of section 4.

use super::*;
use serde_json::json;

/// The sample envelopes, one of each family plus an unknown one (tests/data/events.jsonl).
const SAMPLES: &str = include_str!("../../tests/data/events.jsonl");

/// Parses `line` as an envelope and returns its view; every test goes through here so that the
/// envelope and the view are always checked together.
fn view_of(line: &str) -> (EventEnvelope, EventView) {
    let envelope = EventEnvelope::parse(line.as_bytes()).expect("sample envelopes parse");
    let view = envelope
        .view()
        .expect("sample payloads have their family's shape");
    (envelope, view)
}

/// The sample line with the given envelope id suffix (the samples' ids end in 1..b).
fn sample(id_suffix: char) -> &'static str {
    SAMPLES
        .lines()
        .find(|line| {
            line.contains(&format!(
                "\"id\":\"5f0c7a9e-1b2d-4c3e-8f00-00000000000{id_suffix}\""
            ))
        })
        .expect("the sample exists")
}

fn o1() -> Option<OrchestratorInfo> {
    Some(OrchestratorInfo {
        address: Some("0x00000000000000000000000000000000000000aa".to_owned()),
        url: Some("https://o1.example:8935".to_owned()),
    })
}

#[test]
fn every_sample_parses_and_names_its_family() {
    let families: Vec<EventFamily> = SAMPLES
        .lines()
        .map(|line| view_of(line).0.family())
        .collect();
    assert_eq!(
        families,
        vec![
            EventFamily::StreamTrace,
            EventFamily::StreamTrace,
            EventFamily::StreamTrace,
            EventFamily::AiStreamStatus,
            EventFamily::AiStreamEvents,
            EventFamily::AiStreamEvents,
            EventFamily::NetworkCapabilities,
            EventFamily::DiscoveryResults,
            EventFamily::StreamIngestMetrics,
            EventFamily::CreateNewPayment,
            EventFamily::Unknown("byoc_custom_event".to_owned()),
        ]
    );
    for family in families {
        assert_eq!(EventFamily::from_name(family.name()), family);
    }
}

#[test]
fn envelope_fields_and_timestamp() {
    let (envelope, _) = view_of(sample('1'));
    assert_eq!(envelope.id, "5f0c7a9e-1b2d-4c3e-8f00-000000000001");
    assert_eq!(envelope.family, "stream_trace");
    assert_eq!(envelope.gateway, "gw-1.example:9935");
    assert_eq!(envelope.timestamp, "1764270000000");
    assert_eq!(envelope.timestamp_unix_ms(), Some(1_764_270_000_000));
}

#[test]
fn envelope_round_trips_with_the_timestamp_as_a_string() {
    let (envelope, _) = view_of(sample('4'));
    let value = serde_json::to_value(&envelope).expect("an envelope serializes");
    assert_eq!(value["timestamp"], json!("1764270010000"));
    assert_eq!(value["type"], json!("ai_stream_status"));
    let original: Value = serde_json::from_str(sample('4')).expect("the sample is JSON");
    assert_eq!(value, original, "the data is kept verbatim");
}

#[test]
fn numeric_envelope_timestamp_is_accepted() {
    let envelope = EventEnvelope::parse(
        br#"{"id":"x","type":"stream_trace","timestamp":1764270000000,"gateway":"g","data":{"type":"orchestrator_swap"}}"#,
    )
    .expect("a numeric timestamp is tolerated");
    assert_eq!(envelope.timestamp, "1764270000000");
    assert_eq!(envelope.timestamp_unix_ms(), Some(1_764_270_000_000));
}

#[test]
fn non_numeric_envelope_timestamp_has_no_unix_ms() {
    let envelope = EventEnvelope::parse(
        br#"{"id":"x","type":"stream_trace","timestamp":"yesterday","gateway":"g","data":{}}"#,
    )
    .expect("the envelope itself is well formed");
    assert_eq!(envelope.timestamp_unix_ms(), None);
}

#[test]
fn stream_trace_request_has_empty_orchestrator_as_none() {
    let (_, view) = view_of(sample('1'));
    let EventView::StreamTrace(trace) = view else {
        panic!("expected a stream trace, got {view:?}");
    };
    assert_eq!(trace.kind(), TraceKind::GatewayReceiveStreamRequest);
    assert_eq!(trace.timestamp, Some(1_764_270_000_000));
    assert_eq!(trace.context.stream_id.as_deref(), Some("str_1"));
    assert_eq!(trace.context.request_id.as_deref(), Some("req_1"));
    assert_eq!(trace.context.pipeline_id.as_deref(), Some("pip_1"));
    assert_eq!(
        trace.context.orchestrator_info,
        Some(OrchestratorInfo::default()),
        "Go's empty strings read as absent"
    );
}

#[test]
fn orchestrator_swap_carries_its_cause() {
    let (_, view) = view_of(sample('3'));
    let EventView::StreamTrace(trace) = view else {
        panic!("expected a stream trace, got {view:?}");
    };
    assert_eq!(trace.kind(), TraceKind::OrchestratorSwap);
    assert_eq!(trace.message.as_deref(), Some("no output segment for 30s"));
    assert_eq!(
        trace.context.pipeline.as_deref(),
        Some("live-video-to-video")
    );
    assert_eq!(trace.context.orchestrator_info, o1());
    assert_eq!(trace.timestamp, None);
}

#[test]
fn trace_kinds_cover_the_reference_subtypes() {
    let cases = [
        (
            "gateway_receive_stream_request",
            TraceKind::GatewayReceiveStreamRequest,
        ),
        (
            "gateway_ingest_stream_closed",
            TraceKind::GatewayIngestStreamClosed,
        ),
        (
            "gateway_send_first_ingest_segment",
            TraceKind::GatewaySendFirstIngestSegment,
        ),
        (
            "gateway_receive_first_processed_segment",
            TraceKind::GatewayReceiveFirstProcessedSegment,
        ),
        (
            "gateway_receive_few_processed_segments",
            TraceKind::GatewayReceiveFewProcessedSegments,
        ),
        (
            "gateway_no_orchestrators_available",
            TraceKind::GatewayNoOrchestratorsAvailable,
        ),
        ("orchestrator_swap", TraceKind::OrchestratorSwap),
        (
            "runner_send_first_processed_segment",
            TraceKind::Runner("runner_send_first_processed_segment".to_owned()),
        ),
        (
            "gateway_receive_first_data_segment",
            TraceKind::Other("gateway_receive_first_data_segment".to_owned()),
        ),
    ];
    for (name, kind) in cases {
        assert_eq!(TraceKind::from_name(name), kind, "{name}");
    }
}

#[test]
fn ai_stream_status_reads_the_runner_status() {
    let (_, view) = view_of(sample('4'));
    let EventView::AiStreamStatus(status) = view else {
        panic!("expected a status, got {view:?}");
    };
    assert_eq!(status.event_type.as_deref(), Some("status"));
    assert_eq!(status.state.as_deref(), Some("ONLINE"));
    assert_eq!(status.timestamp, Some(1_764_270_010_000));
    assert_eq!(status.start_time, Some(1_764_269_999.5));
    assert_eq!(status.context.orchestrator_info, o1());
    assert_eq!(status.context.pipeline.as_deref(), Some("streamdiffusion"));
    let input = status.input_status.expect("input_status is present");
    assert_eq!(input.fps, Some(30.0));
    let inference = status
        .inference_status
        .expect("inference_status is present");
    assert_eq!(inference.fps, Some(12.5));
    assert_eq!(
        inference.last_params_hash.as_deref(),
        Some("d41d8cd98f00b204e9800998ecf8427e")
    );
    assert_eq!(
        inference.last_params,
        Some(json!({"prompt": "watercolor painting style"}))
    );
    assert_eq!(inference.restart_count, Some(0));
    assert_eq!(inference.last_error, None);
    assert_eq!(inference.last_restart_logs, None);
}

#[test]
fn ai_stream_events_error_and_restart() {
    let (_, view) = view_of(sample('5'));
    let EventView::AiStreamEvent(error) = view else {
        panic!("expected an ai stream event, got {view:?}");
    };
    assert_eq!(error.kind(), AiStreamEventKind::Error);
    assert_eq!(error.message.as_deref(), Some("CUDA out of memory"));
    assert_eq!(error.context.stream_id.as_deref(), Some("str_1"));

    let (_, view) = view_of(sample('6'));
    let EventView::AiStreamEvent(restart) = view else {
        panic!("expected an ai stream event, got {view:?}");
    };
    assert_eq!(restart.kind(), AiStreamEventKind::Restart);
    assert_eq!(restart.restart_count, Some(2));
    assert_eq!(
        restart.restart_logs,
        Some(json!(["loading model", "ready"]))
    );
}

#[test]
fn ai_stream_events_params_update_and_other_kinds() {
    let line = r#"{"id":"p","type":"ai_stream_events","timestamp":"1","gateway":"g","data":{"type":"params_update","params":{"prompt":"x"},"stream_id":"s"}}"#;
    let (_, view) = view_of(line);
    let EventView::AiStreamEvent(update) = view else {
        panic!("expected an ai stream event, got {view:?}");
    };
    assert_eq!(update.kind(), AiStreamEventKind::ParamsUpdate);
    assert_eq!(update.params, Some(json!({"prompt": "x"})));

    let line = r#"{"id":"p","type":"ai_stream_events","timestamp":"1","gateway":"g","data":{"type":"heartbeat"}}"#;
    let (_, view) = view_of(line);
    let EventView::AiStreamEvent(other) = view else {
        panic!("expected an ai stream event, got {view:?}");
    };
    assert_eq!(
        other.kind(),
        AiStreamEventKind::Other("heartbeat".to_owned())
    );
}

#[test]
fn network_capabilities_reads_hardware_and_tolerates_nulls() {
    let (_, view) = view_of(sample('7'));
    let EventView::NetworkCapabilities(orchestrators) = view else {
        panic!("expected capabilities, got {view:?}");
    };
    assert_eq!(orchestrators.len(), 2);
    let first = &orchestrators[0];
    assert_eq!(first.orch_uri.as_deref(), Some("https://o1.example:8935"));
    assert_eq!(
        first.local_address.as_deref(),
        Some("0x00000000000000000000000000000000000000bb")
    );
    assert_eq!(first.hardware.len(), 1);
    let hardware = &first.hardware[0];
    assert_eq!(hardware.model_id.as_deref(), Some("streamdiffusion"));
    let gpu = &hardware.gpu_info["0"];
    assert_eq!(gpu.name.as_deref(), Some("NVIDIA GeForce RTX 4090"));
    assert_eq!(gpu.memory_total_bytes, Some(25_757_220_864));
    assert_eq!(gpu.memory_free_bytes, Some(20_000_000_000));
    assert_eq!((gpu.major, gpu.minor), (Some(8), Some(9)));
    assert_eq!(
        first.capabilities.as_ref().map(|c| &c["version"]),
        Some(&json!("0.8.0"))
    );

    let second = &orchestrators[1];
    assert_eq!(second.local_address, None);
    assert_eq!(second.capabilities, None);
    assert!(second.hardware.is_empty());
}

#[test]
fn discovery_results_read_string_latencies() {
    let (_, view) = view_of(sample('8'));
    let EventView::DiscoveryResults(found) = view else {
        panic!("expected discovery results, got {view:?}");
    };
    assert_eq!(
        found,
        vec![
            DiscoveredOrchestrator {
                address: Some("0x00000000000000000000000000000000000000aa".to_owned()),
                url: Some("https://o1.example:8935".to_owned()),
                latency_ms: Some(42.0),
            },
            DiscoveredOrchestrator {
                address: Some("0x00000000000000000000000000000000000000cc".to_owned()),
                url: Some("https://o2.example:8935".to_owned()),
                latency_ms: Some(131.0),
            },
        ]
    );
}

#[test]
fn a_single_object_is_accepted_where_a_list_belongs() {
    let line = r#"{"id":"d","type":"discovery_results","timestamp":"1","gateway":"g","data":{"address":"0xaa","url":"https://o","latency_ms":7}}"#;
    let (_, view) = view_of(line);
    let EventView::DiscoveryResults(found) = view else {
        panic!("expected discovery results, got {view:?}");
    };
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].latency_ms, Some(7.0));
}

#[test]
fn families_without_a_view_and_unknown_families_are_untyped_not_errors() {
    let (_, view) = view_of(sample('9'));
    assert_eq!(view, EventView::Untyped(EventFamily::StreamIngestMetrics));
    let (_, view) = view_of(sample('a'));
    assert_eq!(view, EventView::Untyped(EventFamily::CreateNewPayment));
    let (envelope, view) = view_of(sample('b'));
    assert_eq!(
        view,
        EventView::Untyped(EventFamily::Unknown("byoc_custom_event".to_owned()))
    );
    assert_eq!(envelope.data, json!({"anything": "goes"}));
}

#[test]
fn lenient_numbers_accept_strings_and_whole_floats() {
    let line = r#"{"id":"s","type":"ai_stream_status","timestamp":"1","gateway":"g","data":{"type":"status","timestamp":"1764270010000","inference_status":{"restart_count":3.0,"fps":"12.5"}}}"#;
    let (_, view) = view_of(line);
    let EventView::AiStreamStatus(status) = view else {
        panic!("expected a status, got {view:?}");
    };
    assert_eq!(status.timestamp, Some(1_764_270_010_000));
    let inference = status.inference_status.expect("present");
    assert_eq!(inference.restart_count, Some(3));
    assert_eq!(inference.fps, Some(12.5));
}

#[test]
fn unknown_fields_in_envelope_and_data_are_ignored() {
    let line = r#"{"id":"u","type":"stream_trace","timestamp":"1","gateway":"g","partition":3,"data":{"type":"orchestrator_swap","new_field":{"a":1},"orchestrator_info":{"address":"0xaa","url":"https://o","region":"eu"}}}"#;
    let (_, view) = view_of(line);
    let EventView::StreamTrace(trace) = view else {
        panic!("expected a stream trace, got {view:?}");
    };
    assert_eq!(
        trace.context.orchestrator_info,
        Some(OrchestratorInfo {
            address: Some("0xaa".to_owned()),
            url: Some("https://o".to_owned()),
        })
    );
}

#[test]
fn malformed_envelopes_are_envelope_errors() {
    for bad in [
        &b"not json"[..],
        br#"[1,2,3]"#,
        br#"{"type":"stream_trace","timestamp":"1","data":{}}"#,
        br#"{"id":"x","timestamp":"1","data":{}}"#,
        br#"{"id":"x","type":"stream_trace","timestamp":true,"data":{}}"#,
    ] {
        let result = EventEnvelope::parse(bad);
        assert!(
            matches!(result, Err(EventError::Envelope(_))),
            "{:?} gave {result:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn wrong_payload_shapes_of_known_families_are_view_errors() {
    let cases = [
        (
            r#"{"id":"x","type":"stream_trace","timestamp":"1","gateway":"g","data":"oops"}"#,
            "stream_trace",
        ),
        (
            r#"{"id":"x","type":"stream_trace","timestamp":"1","gateway":"g","data":{"stream_id":"s"}}"#,
            "stream_trace",
        ),
        (
            r#"{"id":"x","type":"ai_stream_status","timestamp":"1","gateway":"g","data":{"inference_status":{"fps":"fast"}}}"#,
            "ai_stream_status",
        ),
        (
            r#"{"id":"x","type":"discovery_results","timestamp":"1","gateway":"g","data":[{"latency_ms":[1]}]}"#,
            "discovery_results",
        ),
        (
            r#"{"id":"x","type":"network_capabilities","timestamp":"1","gateway":"g","data":[{"hardware":{"gpu":1}}]}"#,
            "network_capabilities",
        ),
    ];
    for (line, expected_family) in cases {
        let envelope = EventEnvelope::parse(line.as_bytes()).expect("the envelope is fine");
        match envelope.view() {
            Err(EventError::View { family, .. }) => assert_eq!(family, expected_family, "{line}"),
            other => panic!("{line} gave {other:?}"),
        }
    }
}

/// A small deterministic fuzz: every prefix and every single-byte corruption of every sample is
/// either parsed or rejected with an error, never a panic.
#[test]
fn truncated_and_corrupted_samples_never_panic() {
    for line in SAMPLES.lines() {
        let bytes = line.as_bytes();
        for end in 0..bytes.len() {
            if let Ok(envelope) = EventEnvelope::parse(&bytes[..end]) {
                let _ = envelope.view();
            }
        }
        for position in (0..bytes.len()).step_by(7) {
            for replacement in [b'"', b'{', b'0', b'x', b'\\'] {
                let mut corrupted = bytes.to_vec();
                corrupted[position] = replacement;
                if let Ok(envelope) = EventEnvelope::parse(&corrupted) {
                    let _ = envelope.view();
                }
            }
        }
    }
}
