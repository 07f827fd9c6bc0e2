//! Tests of the JSON form of the session report: it is the wire contract, so the exact spelling
//! of enums, nulls and the tolerance of unknown fields are checked, not just the round trip.

use super::*;
use serde_json::{Value, json};

/// A report with every optional part filled, so a round trip exercises every field.
fn full_report() -> SessionReport {
    SessionReport {
        schema_version: SCHEMA_VERSION,
        session_id: "0190f7a2-0000-7000-8000-000000000001".to_owned(),
        started_at_unix_ms: 1_700_000_000_000,
        ended_at_unix_ms: 1_700_000_060_000,
        mode: TargetMode::Network,
        orchestrator: Some(OrchestratorRef {
            address: Some("0x00000000000000000000000000000000000000aa".to_owned()),
            uri: "https://o.example:8935".to_owned(),
            cert_sha256: Some("ab".repeat(32)),
            cert_trust: None,
            address_check: None,
        }),
        gpu: Some(Gpu {
            name: "NVIDIA GeForce RTX 4090".to_owned(),
            memory_bytes: Some(25_757_220_864),
        }),
        pipeline: "live-video-to-video".to_owned(),
        model_id: "streamdiffusion".to_owned(),
        prompt: Some(PromptRef {
            id: Some("watercolor".to_owned()),
            complexity: Some(Complexity::Medium),
            params_hash: "d41d8cd98f00b204e9800998ecf8427e".to_owned(),
        }),
        outcome: Outcome::Failed,
        failure: Some(Failure {
            class: FailureClass::OutputTimeout,
            detail: "no output frame within 30 s".to_owned(),
        }),
        metrics: SessionMetrics {
            get_orchestrator_ms: Some(12.5),
            job_start_ms: Some(800.25),
            startup_ms: Some(2100.0),
            e2e_latency_ms: Some(LatencySummary {
                count: 900,
                p50: 250.0,
                p90: 300.5,
                p95: 320.0,
                p99: 400.0,
                max: 410.0,
                mean: 260.0,
                min: 200.0,
            }),
            output_fps: Some(FpsSummary {
                mean: 12.0,
                p5: 11.0,
                p50: 12.0,
                windows: 30,
            }),
            input_fps: Some(30.0),
            fps_jitter: Some(0.05),
            frame_interval_jitter_ms: Some(3.5),
            stalls: StallSummary {
                count: 1,
                total_ms: 2000.0,
                longest_ms: 2000.0,
            },
            segments_sent: 30,
            segments_received: 29,
            frames_sent: 900,
            frames_received: 360,
            frames_unmatched: 2,
            frames_duplicate: 1,
            output_keyframes: 12,
            output_video_bytes: 2_900_000,
            bytes_sent: 3_750_000,
            bytes_received: 3_000_000,
            output_width: Some(512),
            output_height: Some(512),
            params_update_latency_ms: Some(9_800.0),
            media_errors: MediaErrors {
                cc_errors: 1,
                sync_losses: 2,
                pes_errors: 3,
                truncated_frames: 4,
            },
            swaps: vec![Swap {
                at_unix_ms: 1_700_000_030_000,
                from: "https://a.example:8935".to_owned(),
                to: "https://b.example:8935".to_owned(),
                cause: "no output segment for 30 s".to_owned(),
                freeze_ms: Some(4_000.0),
            }],
            content_check: Some(ContentCheck {
                samples: 6,
                unreadable: 1,
                disagreements: 5,
                by_luminance: 2,
                latency_p50_ms: Some(412.5),
            }),
            pts_untrusted: true,
            loading_overlay: Some(LoadingOverlay {
                frames: 15,
                first_ms: 40.0,
                last_ms: 510.5,
            }),
            gateway: Some(GatewayFigures {
                url: Some("http://gw.example:8937".into()),
                orchestrator_pin: Some("orch-1".into()),
                whip_answer_ms: Some(12.5),
                ice_connected_ms: Some(20.0),
                dtls_connected_ms: Some(31.0),
                whep_answer_ms: Some(8.0),
                whep_not_found: 2,
                whep_connected_ms: Some(640.0),
                plis_received: 3,
                ingest: RtpLeg {
                    packets: 2400,
                    bytes: 1_900_000,
                    loss: Some(0.0),
                    nacks: 1,
                    jitter_ms: Some(0.4),
                    bitrate_kbps: Some(1480.0),
                },
                playback: RtpLeg::default(),
                runner_states: vec![StateSeen {
                    state: "ONLINE".to_owned(),
                    at_ms: 900.0,
                }],
                gateway_ingest: vec![GatewayTrackStats {
                    kind: "video".to_owned(),
                    packets_received: Some(2400),
                    packets_lost: Some(0),
                    jitter: Some(0.002),
                    rtt: Some(0.001),
                    latency_s: Some(0.9),
                }],
            }),
        },
        runner: RunnerReport {
            status_events: 6,
            last_state: Some("ONLINE".to_owned()),
            states_seen: vec!["LOADING".to_owned(), "ONLINE".to_owned()],
            input_fps: Some(29.9),
            output_fps: Some(12.1),
            restart_count: Some(0),
            errors: vec!["CUDA out of memory".to_owned()],
            last_params_hash: Some("d41d8cd98f00b204e9800998ecf8427e".to_owned()),
            traces: vec!["runner_receive_stream_request".to_owned()],
            events_received: 10,
            events_malformed: 1,
            error_events: 1,
        },
        is_test_load: true,
        region: Some("eu-west".to_owned()),
        tester_version: Some("lvt 0.1.0".to_owned()),
        scenario: None,
        served_by: Vec::new(),
        payment: None,
        slo: Some(SessionSlo {
            startup_ms: Some(8000.0),
            e2e_latency_ms: None,
            output_fps: Some(12.0),
        }),
    }
}

/// A report in which every optional part is absent, as a session that failed before it started
/// would produce.
fn empty_report() -> SessionReport {
    SessionReport {
        schema_version: SCHEMA_VERSION,
        session_id: "s".to_owned(),
        started_at_unix_ms: 0,
        ended_at_unix_ms: 0,
        mode: TargetMode::Direct,
        orchestrator: None,
        gpu: None,
        pipeline: "live-video-to-video".to_owned(),
        model_id: "noop".to_owned(),
        prompt: None,
        outcome: Outcome::UnscoredIndeterminate,
        failure: None,
        metrics: SessionMetrics::default(),
        runner: RunnerReport::default(),
        is_test_load: true,
        region: None,
        tester_version: None,
        scenario: None,
        served_by: Vec::new(),
        payment: None,
        slo: None,
    }
}

#[test]
fn full_report_round_trips_through_json() {
    let report = full_report();
    let text = serde_json::to_string(&report).expect("a report always serializes");
    let back: SessionReport = serde_json::from_str(&text).expect("own output parses");
    assert_eq!(back, report);
}

#[test]
fn empty_report_round_trips_through_json() {
    let report = empty_report();
    let text = serde_json::to_string(&report).expect("a report always serializes");
    let back: SessionReport = serde_json::from_str(&text).expect("own output parses");
    assert_eq!(back, report);
}

#[test]
fn enums_serialize_in_snake_case() {
    let cases: Vec<(Value, &str)> = vec![
        (json!(TargetMode::Direct), "direct"),
        (json!(TargetMode::Network), "network"),
        (json!(Outcome::Passed), "passed"),
        (json!(Outcome::Failed), "failed"),
        (json!(Outcome::UnscoredBusy), "unscored_busy"),
        (
            json!(Outcome::UnscoredIndeterminate),
            "unscored_indeterminate",
        ),
        (json!(Complexity::Low), "low"),
        (json!(Complexity::Medium), "medium"),
        (json!(Complexity::High), "high"),
        (json!(FailureClass::GrpcError), "grpc_error"),
        (json!(FailureClass::Capacity), "capacity"),
        (json!(FailureClass::Auth), "auth"),
        (json!(FailureClass::Payment), "payment"),
        (json!(FailureClass::StartError), "start_error"),
        (json!(FailureClass::PublishLost), "publish_lost"),
        (json!(FailureClass::OutputTimeout), "output_timeout"),
        (json!(FailureClass::EventsTimeout), "events_timeout"),
        (json!(FailureClass::RunnerError), "runner_error"),
        (json!(FailureClass::ProtocolError), "protocol_error"),
        (json!(FailureClass::Internal), "internal"),
    ];
    for (value, expected) in cases {
        assert_eq!(value, Value::String(expected.to_owned()));
    }
    let outcome: Outcome = serde_json::from_str("\"unscored_busy\"").expect("snake_case parses");
    assert_eq!(outcome, Outcome::UnscoredBusy);
}

#[test]
fn missing_metrics_serialize_as_null_not_zero() {
    let value = serde_json::to_value(empty_report()).expect("a report always serializes");
    let metrics = &value["metrics"];
    for field in [
        "get_orchestrator_ms",
        "job_start_ms",
        "startup_ms",
        "e2e_latency_ms",
        "output_fps",
        "input_fps",
        "fps_jitter",
        "frame_interval_jitter_ms",
        "output_width",
        "output_height",
        "params_update_latency_ms",
    ] {
        assert_eq!(metrics.get(field), Some(&Value::Null), "metrics.{field}");
    }
    for field in ["orchestrator", "gpu", "prompt", "failure", "region"] {
        assert_eq!(value.get(field), Some(&Value::Null), "{field}");
    }
    for field in [
        "last_state",
        "input_fps",
        "output_fps",
        "restart_count",
        "last_params_hash",
    ] {
        assert_eq!(
            value["runner"].get(field),
            Some(&Value::Null),
            "runner.{field}"
        );
    }
}

#[test]
fn unknown_fields_are_tolerated_at_every_level() {
    let mut value = serde_json::to_value(full_report()).expect("a report always serializes");
    value["added_in_v2"] = json!({"anything": [1, 2, 3]});
    value["metrics"]["new_metric_ms"] = json!(1.5);
    value["metrics"]["e2e_latency_ms"]["p999"] = json!(500.0);
    value["runner"]["new_counter"] = json!(7);
    value["orchestrator"]["region"] = json!("eu");
    let back: SessionReport = serde_json::from_value(value).expect("unknown fields are ignored");
    assert_eq!(back, full_report());
}

#[test]
fn absent_optional_fields_and_lists_read_as_none_and_empty() {
    let mut value = serde_json::to_value(full_report()).expect("a report always serializes");
    let report = value.as_object_mut().expect("a report is a JSON object");
    report.remove("region");
    report.remove("tester_version");
    report.remove("gpu");
    let metrics = value["metrics"]
        .as_object_mut()
        .expect("metrics is a JSON object");
    metrics.remove("swaps");
    metrics.remove("startup_ms");
    let back: SessionReport = serde_json::from_value(value).expect("absent optionals are fine");
    assert_eq!(back.region, None);
    assert_eq!(back.gpu, None);
    assert_eq!(back.metrics.startup_ms, None);
    assert!(back.metrics.swaps.is_empty());
}

#[test]
fn report_json_uses_the_documented_field_names() {
    let value = serde_json::to_value(full_report()).expect("a report always serializes");
    assert_eq!(value["schema_version"], json!(1));
    assert_eq!(value["is_test_load"], json!(true));
    assert_eq!(value["mode"], json!("network"));
    assert_eq!(value["failure"]["class"], json!("output_timeout"));
    assert_eq!(value["prompt"]["complexity"], json!("medium"));
    assert_eq!(value["metrics"]["e2e_latency_ms"]["p95"], json!(320.0));
    assert_eq!(value["metrics"]["stalls"]["longest_ms"], json!(2000.0));
    assert_eq!(value["metrics"]["media_errors"]["sync_losses"], json!(2));
    assert_eq!(value["metrics"]["swaps"][0]["freeze_ms"], json!(4000.0));
    assert_eq!(value["gpu"]["memory_bytes"], json!(25_757_220_864u64));
}

/// Where the checked-in schema lives, relative to this crate.
const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/result.schema.json");

/// The checked-in schema must be what the types generate today; with `LVT_BLESS=1` the test
/// rewrites the file instead of failing.
#[test]
fn checked_in_schema_is_current() {
    let generated = format!(
        "{}\n",
        serde_json::to_string_pretty(&result_schema()).expect("a schema serializes")
    );
    if std::env::var_os("LVT_BLESS").is_some_and(|value| value == "1") {
        std::fs::write(SCHEMA_FILE, &generated).expect("the schema file is writable");
        return;
    }
    let checked_in = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
    assert!(
        checked_in == generated,
        "schema/result.schema.json is stale: run `LVT_BLESS=1 cargo test -p lvt-schema`"
    );
}

/// Collects every object in `value` (depth first) into `out`.
fn objects<'a>(value: &'a Value, out: &mut Vec<&'a serde_json::Map<String, Value>>) {
    match value {
        Value::Object(map) => {
            out.push(map);
            map.values().for_each(|inner| objects(inner, out));
        }
        Value::Array(items) => items.iter().for_each(|inner| objects(inner, out)),
        _ => {}
    }
}

#[test]
fn schema_never_forbids_unknown_fields() {
    let schema = result_schema();
    let mut all = Vec::new();
    objects(&schema, &mut all);
    assert!(all.len() > 20, "the schema describes every nested type");
    for map in all {
        assert_ne!(
            map.get("additionalProperties"),
            Some(&Value::Bool(false)),
            "readers tolerate unknown fields: {map:?}"
        );
    }
}

/// Follows a `$ref` of the form `#/$defs/Name` within `schema`.
fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/$defs/");
            &schema["$defs"][name]
        }
        None => node,
    }
}

/// Checks that every property `value` has is described by `node`, and every required one is
/// present, recursing into nested objects; a light structural validation without a validator.
fn check_against(schema: &Value, node: &Value, value: &Value, path: &str) {
    let node = resolve(schema, node);
    let Value::Object(fields) = value else {
        return;
    };
    let properties = node["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{path} is described as an object with properties"));
    for required in node["required"].as_array().into_iter().flatten() {
        let name = required.as_str().expect("required names are strings");
        assert!(
            fields.contains_key(name),
            "{path}.{name} is required but absent"
        );
    }
    for (name, inner) in fields {
        let described = properties
            .get(name)
            .unwrap_or_else(|| panic!("{path}.{name} is not in the schema"));
        // Optional nested types are `anyOf: [{$ref}, {type: null}]`; descend into the object arm.
        let described = described["anyOf"]
            .as_array()
            .and_then(|arms| arms.iter().find(|arm| arm.get("$ref").is_some()))
            .unwrap_or(described);
        if inner.is_object() {
            check_against(schema, described, inner, &format!("{path}.{name}"));
        }
        if let (Some(items), Some(schema_items)) = (inner.as_array(), described.get("items")) {
            for item in items {
                check_against(schema, schema_items, item, &format!("{path}.{name}[]"));
            }
        }
    }
}

#[test]
fn full_and_empty_reports_match_the_schema_structure() {
    let schema = result_schema();
    assert_eq!(schema["title"], json!("SessionReport"));
    for report in [full_report(), empty_report()] {
        let value = serde_json::to_value(report).expect("a report always serializes");
        check_against(&schema, &schema, &value, "report");
    }
}

/// Readers tolerate unknown fields: a report written by a newer tester, with extra fields at the
/// top level and in nested objects and list items, reads as the report it contains.
#[test]
fn a_newer_writers_report_with_extra_fields_deserializes() {
    let mut value = serde_json::to_value(full_report()).expect("a report always serializes");
    value["result_id"] = json!("0190f7a2-0000-7000-8000-0000000000ff");
    value["agent"] = json!({"id": "agent-eu-1", "build": 3});
    value["gpu"]["driver"] = json!("550.54");
    value["prompt"]["text"] = json!("watercolor");
    value["failure"]["retryable"] = json!(false);
    value["metrics"]["stalls"]["median_ms"] = json!(100.0);
    value["metrics"]["media_errors"]["pts_jumps"] = json!(0);
    value["metrics"]["output_fps"]["p95"] = json!(13.0);
    value["metrics"]["swaps"][0]["confirmed"] = json!(true);
    let text = serde_json::to_string(&value).expect("a Value serializes");
    let back: SessionReport = serde_json::from_str(&text).expect("unknown fields are ignored");
    assert_eq!(back, full_report());
}
