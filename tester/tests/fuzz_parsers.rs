//! Property tests of the parsers that read outside input on the tester's and the collector's
//! side: scenario TOML, threshold expressions, `agent.toml`, the collector's settings, the
//! runner's events JSON, gateway event envelopes, and signed ingest bodies and headers.
//! Whatever the input (arbitrary text, or a valid document with bytes changed), each parser
//! answers a value or an error with a message, without panicking.
//!
//! The suite runs proptest's default number of cases; `ci/fuzz` runs every `fuzz_` test with
//! many more (`PROPTEST_CASES`).

use std::collections::HashMap;
use std::path::Path;

use lvt_collector::config::Settings;
use lvt_collector::verify::{check_signature_headers, validate_records};
use lvt_gateway::measure::{MeasureConfig, SessionRecorder};
use lvt_schema::events::EventEnvelope;
use lvt_tester::agent::config::AgentConfig;
use lvt_tester::scenario::threshold::ThresholdExpr;
use lvt_tester::scenario::validate::load_str;
use proptest::prelude::*;
use serde_json::{Value, json};

const SCENARIO: &str = include_str!("../../scenarios/sla-hourly.toml");

const AGENT: &str = r#"region = "eu-west"
key = "agent.key"
collector = "https://collector.example"
state_dir = "/var/lib/lvt-agent"
remote_signer = "http://127.0.0.1:7936"

[scenarios]
git = "https://git.example/scenarios.git"

[[schedule]]
scenario = "sla-hourly"
cron = "0 * * * *"
jitter_s = 300

[budget]
max_concurrent_sessions = 20
max_payment_wei_per_day = 1000
"#;

const SETTINGS: &str = r#"listen = "127.0.0.1:8080"
[store]
backend = "sqlite"
path = "lvt.db"
"#;

/// `text` with up to eight bytes replaced, inserted or removed at random places (kept UTF-8:
/// the parsers take text).
fn mutated(text: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8).prop_map(move |edits| {
        let mut bytes = text.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let at = at % bytes.len();
            match kind {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        Just(json!("ai_stream_status")),
        Just(json!("stream_trace")),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    any::<String>(),
                    Just("type".to_owned()),
                    Just("event".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("data".to_owned()),
                    Just("session_id".to_owned()),
                ],
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn fuzz_scenarios_never_panic(text in prop_oneof![mutated(SCENARIO), any::<String>()]) {
        if let Err(diagnostics) = load_str("fuzz.toml", &text) {
            prop_assert!(!diagnostics.is_empty(), "a refusal says why");
        }
    }

    #[test]
    fn fuzz_thresholds_never_panic(text in prop_oneof![
        any::<String>(),
        mutated("e2e_latency_ms.p95 < 800 && failure_rate < 0.05"),
    ]) {
        if let Err(error) = ThresholdExpr::parse(&text) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn fuzz_agent_configs_never_panic(text in prop_oneof![mutated(AGENT), any::<String>()]) {
        if let Err(error) = AgentConfig::parse(&text, "agent.toml") {
            prop_assert!(error.to_string().starts_with("agent.toml:"), "{}", error);
        }
    }

    #[test]
    fn fuzz_collector_settings_never_panic(text in prop_oneof![mutated(SETTINGS), any::<String>()]) {
        if let Err(error) = Settings::parse(&text, Path::new("/nonexistent/collector.toml")) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn fuzz_runner_events_never_panic(
        events in proptest::collection::vec(
            prop_oneof![
                json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
                json_value().prop_map(|v| serde_json::to_vec(&json!({"event": v, "queue_event_type": "ai_stream_events"})).unwrap()),
                proptest::collection::vec(any::<u8>(), 0..64),
            ],
            0..12,
        ),
    ) {
        let mut recorder = SessionRecorder::new(MeasureConfig::default());
        for (i, bytes) in events.iter().enumerate() {
            recorder.handle_event_bytes(bytes, i as u64 * 1_000);
        }
        let (_metrics, runner) = recorder.finish(20_000);
        // Every document counts once, malformed ones included.
        prop_assert_eq!(runner.events_received as usize, events.len());
        prop_assert!(runner.events_malformed <= runner.events_received);
    }

    #[test]
    fn fuzz_gateway_event_envelopes_never_panic(bytes in prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        json_value().prop_map(|data| serde_json::to_vec(&json!({"id": "e1", "type": "stream_trace", "timestamp": 1, "data": data})).unwrap()),
        proptest::collection::vec(any::<u8>(), 0..128),
    ]) {
        if let Ok(envelope) = EventEnvelope::parse(&bytes) {
            let _ = envelope.family();
        }
    }

    #[test]
    fn fuzz_ingest_bodies_never_panic(value in prop_oneof![
        json_value(),
        json_value().prop_map(|record| json!([record])),
        // A valid record with one field replaced by anything.
        (json_value(), 0usize..8).prop_map(|(field, which)| {
            let mut record = serde_json::to_value(lvt_schema::SessionReport::new(
                "01a2492b-929e-73aa-af6f-646a8b577cf8",
                "noop",
                1_796_000_000_000,
            ))
            .unwrap();
            let name = ["metrics", "outcome", "orchestrator", "started_at_unix_ms", "scenario", "served_by", "payment", "runner"][which];
            record[name] = field;
            json!([record])
        }),
    ]) {
        if let Err(error) = validate_records(&value) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn fuzz_signature_headers_never_panic(
        headers in proptest::collection::vec((
            prop_oneof![
                Just("lvt-key-id".to_owned()),
                Just("lvt-timestamp".to_owned()),
                Just("lvt-nonce".to_owned()),
                Just("lvt-signature".to_owned()),
                any::<String>(),
            ],
            any::<String>(),
        ), 0..6),
    ) {
        let headers: HashMap<String, String> = headers.into_iter().collect();
        let nobody = HashMap::new();
        let result = check_signature_headers(
            |name| headers.get(&name.to_ascii_lowercase()).cloned(),
            &nobody,
            1_800_000_000_000,
            300_000,
        );
        // Nobody is known, so nothing passes; every refusal says why.
        let error = result.map(|_| ()).unwrap_err();
        prop_assert!(!error.to_string().is_empty());
    }
}
