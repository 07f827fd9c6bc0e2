//! The organic-load fold against hand-written event sequences shaped like a go-livepeer gateway's.

use lvt_schema::events::EventEnvelope;
use lvt_schema::{FailureClass, Outcome, TargetMode};
use serde_json::{Value, json};

use super::report::swap_failure_class;
use super::*;
use crate::sla::{CellKey, CellSums};
use crate::store::sqlite::{SqliteConfig, SqliteStore};
use crate::store::{InsertOutcome, SlaFilter, Store};

/// The JSON of one envelope: `data` with `type` = `family`.
fn envelope_json(id: &str, family: &str, gateway: &str, at_unix_ms: i64, data: Value) -> Value {
    json!({
        "id": id,
        "type": family,
        "timestamp": at_unix_ms.to_string(),
        "gateway": gateway,
        "data": data,
    })
}

const GATEWAY: &str = "0x00000000000000000000000000000000000000gw";
const T0: i64 = 1_764_000_000_000;
const ORCH_A: &str = "0xAAaa000000000000000000000000000000000001";
const ORCH_B: &str = "0xbbbb000000000000000000000000000000000002";

fn orch(address: &str) -> Value {
    json!({"address": address, "url": format!("https://{}:8935", &address[..6])})
}

fn trace(stream: &str, kind: &str, at: i64, orchestrator: Option<&str>) -> Value {
    let mut data = json!({
        "type": kind,
        "stream_id": stream,
        "request_id": format!("req-{stream}"),
        "pipeline": "streamdiffusion",
        "pipeline_id": "pip_123",
        "timestamp": at,
    });
    if let Some(address) = orchestrator {
        data["orchestrator_info"] = orch(address);
    }
    if kind == "orchestrator_swap" {
        data["message"] = json!("timeout waiting for segments");
    }
    envelope_json(
        &format!("{stream}-{kind}-{at}"),
        "stream_trace",
        GATEWAY,
        at,
        data,
    )
}

fn status(stream: &str, at: i64, state: &str, fps: f64, orchestrator: &str) -> Value {
    envelope_json(
        &format!("{stream}-status-{at}"),
        "ai_stream_status",
        GATEWAY,
        at,
        json!({
            "type": "status",
            "stream_id": stream,
            "request_id": format!("req-{stream}"),
            "pipeline": "streamdiffusion",
            "timestamp": at,
            "state": state,
            "orchestrator_info": orch(orchestrator),
            "input_status": {"fps": 30.0},
            "inference_status": {
                "fps": fps,
                "restart_count": 1,
                "last_error": if state == "ERROR" { json!("CUDA out of memory") } else { Value::Null },
                "last_params_hash": "00112233445566778899aabbccddeeff",
            },
        }),
    )
}

/// A stream served by orchestrator A: requested, ingest at +100, output at +900, three status
/// events (one while loading), closed at +60 s.
fn served_stream(stream: &str) -> Vec<Value> {
    vec![
        trace(stream, "gateway_receive_stream_request", T0, None),
        trace(
            stream,
            "gateway_send_first_ingest_segment",
            T0 + 100,
            Some(ORCH_A),
        ),
        trace(
            stream,
            "gateway_receive_first_processed_segment",
            T0 + 900,
            Some(ORCH_A),
        ),
        status(stream, T0 + 500, "LOADING", 0.0, ORCH_A),
        status(stream, T0 + 10_000, "ONLINE", 20.0, ORCH_A),
        status(stream, T0 + 20_000, "ONLINE", 22.0, ORCH_A),
        trace(
            stream,
            "gateway_ingest_stream_closed",
            T0 + 60_000,
            Some(ORCH_A),
        ),
    ]
}

fn fold_all(fold: &mut OrganicFold, events: &[Value], arrival_unix_ms: i64) {
    for event in events {
        let envelope: EventEnvelope =
            serde_json::from_value(event.clone()).expect("fixtures are envelopes");
        fold.push(&envelope, arrival_unix_ms);
    }
}

#[test]
fn a_served_stream_becomes_a_passed_organic_session() {
    let mut fold = OrganicFold::new(OrganicSettings::default());
    fold_all(&mut fold, &served_stream("s1"), T0 + 61_000);
    let reports = fold.take_finished(T0 + 61_000);
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    assert_eq!(report.session_id, format!("organic:{GATEWAY}:s1"));
    assert!(!report.is_test_load);
    assert_eq!(report.mode, TargetMode::Network);
    assert_eq!(report.pipeline, "live-video-to-video");
    assert_eq!(report.model_id, "streamdiffusion");
    assert_eq!(
        (report.started_at_unix_ms, report.ended_at_unix_ms),
        (T0, T0 + 60_000)
    );
    assert_eq!(report.outcome, Outcome::Passed);
    assert_eq!(report.metrics.startup_ms, Some(800.0));
    let fps = report.metrics.output_fps.expect("output fps");
    // The loading-state sample is not output of the stream.
    assert_eq!(
        (fps.mean, fps.p5, fps.p50, fps.windows),
        (21.0, 20.0, 20.0, 2)
    );
    let jitter = report.metrics.fps_jitter.expect("jitter");
    assert!((jitter - 1.0 / 21.0).abs() < 1e-12, "{jitter}");
    let orchestrator = report.orchestrator.as_ref().expect("orchestrator");
    assert_eq!(orchestrator.address.as_deref(), Some(ORCH_A));
    assert_eq!(orchestrator.uri, "https://0xAAaa:8935");
    assert!(report.metrics.swaps.is_empty());
    assert_eq!(report.runner.status_events, 3);
    assert_eq!(report.runner.states_seen, ["LOADING", "ONLINE"]);
    assert_eq!(report.runner.restart_count, Some(1));
    assert_eq!(report.metrics.input_fps, Some(30.0));
    assert_eq!(
        report.prompt.as_ref().map(|p| p.params_hash.as_str()),
        Some("00112233445566778899aabbccddeeff")
    );
    assert_eq!(report.served_by.len(), 1);
    assert_eq!(report.served_by[0].startup_ms, Some(800.0));
    assert_eq!(fold.open_streams(), 0);
    assert_eq!(fold.stats().sessions, 1);

    // Its cell is an organic-load cell, and it counts as a started, viable, swap-free attempt.
    let key = CellKey::of(report);
    assert!(!key.test_load);
    assert_eq!(key.orchestrator, ORCH_A.to_ascii_lowercase());
    let mut sums = CellSums::default();
    sums.add(report);
    assert_eq!(
        (
            sums.startup_attempts,
            sums.startup_successes,
            sums.output_viable,
            sums.no_swap
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn outcomes_follow_the_trace_sequence() {
    let mut fold = OrganicFold::new(OrganicSettings::default());
    let busy = [
        trace("busy", "gateway_receive_stream_request", T0, None),
        trace(
            "busy",
            "gateway_no_orchestrators_available",
            T0 + 2_000,
            None,
        ),
        trace("busy", "gateway_ingest_stream_closed", T0 + 2_100, None),
    ];
    let dark = [
        trace("dark", "gateway_receive_stream_request", T0, None),
        trace(
            "dark",
            "gateway_send_first_ingest_segment",
            T0 + 50,
            Some(ORCH_B),
        ),
        status("dark", T0 + 5_000, "LOADING", 0.0, ORCH_B),
        trace(
            "dark",
            "gateway_ingest_stream_closed",
            T0 + 40_000,
            Some(ORCH_B),
        ),
    ];
    let gone = [
        trace("gone", "gateway_receive_stream_request", T0, None),
        trace("gone", "gateway_ingest_stream_closed", T0 + 300, None),
    ];
    for events in [&busy[..], &dark[..], &gone[..]] {
        fold_all(&mut fold, events, T0 + 41_000);
    }
    let reports = fold.take_finished(T0 + 41_000);
    let outcomes: Vec<(&str, Outcome, Option<FailureClass>)> = reports
        .iter()
        .map(|r| {
            (
                r.session_id.rsplit(':').next().unwrap_or_default(),
                r.outcome,
                r.failure.as_ref().map(|f| f.class),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("busy", Outcome::UnscoredBusy, Some(FailureClass::Capacity)),
            ("dark", Outcome::Failed, Some(FailureClass::OutputTimeout)),
            ("gone", Outcome::UnscoredIndeterminate, None),
        ]
    );
    let dark = &reports[1];
    assert_eq!(dark.metrics.startup_ms, None);
    assert_eq!(dark.metrics.output_fps, None, "loading fps is no output");
    let mut sums = CellSums::default();
    for report in &reports {
        sums.add(report);
    }
    // Only the failed stream is an attempt: busy is a capacity signal, an early leave excused.
    assert_eq!((sums.startup_attempts, sums.startup_successes), (1, 0));
    assert_eq!(sums.unscored_busy, 1);
}

#[test]
fn a_lost_close_finishes_the_stream_after_the_idle_timeout() {
    let settings = OrganicSettings {
        idle_timeout_ms: 120_000,
        ..OrganicSettings::default()
    };
    let mut fold = OrganicFold::new(settings);
    let mut events = served_stream("quiet");
    events.pop();
    fold_all(&mut fold, &events, T0 + 30_000);
    assert!(fold.take_finished(T0 + 30_000 + 119_999).is_empty());
    assert_eq!(fold.open_streams(), 1);
    let reports = fold.take_finished(T0 + 30_000 + 120_000);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, Outcome::Passed);
    // Without a close the session ends at its last event.
    assert_eq!(reports[0].ended_at_unix_ms, T0 + 20_000);
}

#[test]
fn swaps_name_both_orchestrators_and_split_served_by() {
    let mut fold = OrganicFold::new(OrganicSettings::default());
    let mut events = served_stream("swapped");
    events.pop();
    events.extend([
        trace("swapped", "orchestrator_swap", T0 + 30_000, None),
        status("swapped", T0 + 40_000, "ONLINE", 18.0, ORCH_B),
        trace(
            "swapped",
            "gateway_ingest_stream_closed",
            T0 + 60_000,
            Some(ORCH_B),
        ),
    ]);
    fold_all(&mut fold, &events, T0 + 61_000);
    let report = fold.take_finished(T0 + 61_000).remove(0);
    assert_eq!(report.metrics.swaps.len(), 1);
    let swap = &report.metrics.swaps[0];
    assert_eq!(
        (
            swap.at_unix_ms,
            swap.from.as_str(),
            swap.to.as_str(),
            swap.cause.as_str()
        ),
        (
            T0 + 30_000,
            "https://0xAAaa:8935",
            "https://0xbbbb:8935",
            "timeout waiting for segments"
        )
    );
    // A served until the swap, which broke its share; B from then on, first output 10 s in.
    let shares: Vec<_> = report
        .served_by
        .iter()
        .map(|s| {
            (
                s.orchestrator.uri.as_str(),
                s.from_unix_ms,
                s.to_unix_ms,
                s.startup_ms,
                s.output_fps.map(|fps| fps.mean),
                s.ended_by.as_deref(),
                s.failure,
            )
        })
        .collect();
    assert_eq!(
        shares,
        [
            (
                "https://0xAAaa:8935",
                T0,
                T0 + 30_000,
                Some(800.0),
                Some(21.0),
                Some("timeout waiting for segments"),
                Some(FailureClass::OutputTimeout)
            ),
            (
                "https://0xbbbb:8935",
                T0 + 30_000,
                T0 + 60_000,
                Some(10_000.0),
                Some(18.0),
                None,
                None
            ),
        ]
    );
    // Each orchestrator's cell gets its own share: A one the swap broke, B a clean takeover.
    let cells = crate::sla::contributions(&report);
    let by_orchestrator: Vec<(&str, u64, u64, u64)> = cells
        .iter()
        .map(|(key, sums)| {
            (
                key.orchestrator.as_str(),
                sums.swaps,
                sums.no_swap,
                sums.output_viable,
            )
        })
        .collect();
    let a = ORCH_A.to_ascii_lowercase();
    assert_eq!(by_orchestrator, [(a.as_str(), 1, 0, 1), (ORCH_B, 0, 1, 1)]);
}

#[test]
fn swap_causes_map_to_failure_classes() {
    let cases = [
        (
            "stream no longer exists on orchestrator; terminating",
            Some(FailureClass::PublishLost),
        ),
        ("orchestrator is slow", Some(FailureClass::PublishLost)),
        (
            "timeout waiting for segments",
            Some(FailureClass::OutputTimeout),
        ),
        (
            "trickle subscribe stopping, retries exceeded",
            Some(FailureClass::OutputTimeout),
        ),
        (
            "timeout waiting for events",
            Some(FailureClass::EventsTimeout),
        ),
        ("control write failed", Some(FailureClass::ProtocolError)),
        ("a cause from a newer gateway", None),
    ];
    for (cause, class) in cases {
        assert_eq!(swap_failure_class(cause), class, "{cause}");
    }
}

#[test]
fn order_repeats_and_late_events_do_not_change_the_session() {
    let events = served_stream("s");
    let mut in_order = OrganicFold::new(OrganicSettings::default());
    fold_all(&mut in_order, &events, T0 + 61_000);
    let expected = in_order.take_finished(T0 + 61_000);

    let mut shuffled = OrganicFold::new(OrganicSettings::default());
    let mut reversed = events.clone();
    reversed.reverse();
    // Every event twice (a retried batch), in reverse order.
    fold_all(&mut shuffled, &reversed, T0 + 61_000);
    fold_all(&mut shuffled, &reversed, T0 + 61_000);
    assert_eq!(shuffled.stats().events_repeated, events.len() as u64);
    assert_eq!(shuffled.take_finished(T0 + 61_000), expected);

    // A status sent before the close but delivered after it is late, not a new stream.
    fold_all(
        &mut shuffled,
        &[status("s", T0 + 59_000, "ONLINE", 1.0, ORCH_A)],
        T0 + 62_000,
    );
    assert_eq!(shuffled.stats().events_late, 1);
    assert_eq!(shuffled.open_streams(), 0);
    // Once the idle timeout has passed since the finish, the stream id is free again.
    assert!(
        shuffled
            .take_finished(T0 + 62_000 + DEFAULT_IDLE_TIMEOUT_MS)
            .is_empty()
    );
    fold_all(
        &mut shuffled,
        &[trace(
            "s",
            "gateway_receive_stream_request",
            T0 + 500_000,
            None,
        )],
        T0 + 500_000,
    );
    assert_eq!(shuffled.open_streams(), 1);
}

#[test]
fn unrequested_streams_test_gateways_and_other_families_are_not_sessions() {
    let settings = OrganicSettings {
        test_gateways: [GATEWAY.to_owned()].into(),
        ..OrganicSettings::default()
    };
    let mut test_fold = OrganicFold::new(settings);
    fold_all(&mut test_fold, &served_stream("t"), T0);
    assert_eq!(test_fold.stats().events_test_load, 7);
    assert!(test_fold.take_finished(T0 + 1).is_empty());

    let mut fold = OrganicFold::new(OrganicSettings::default());
    let mut events = served_stream("late-start");
    events.remove(0);
    events.push(envelope_json(
        "caps",
        "network_capabilities",
        GATEWAY,
        T0,
        json!([{"address": ORCH_A}]),
    ));
    events.push(envelope_json(
        "nostream",
        "stream_trace",
        GATEWAY,
        T0,
        json!({"type": "gateway_receive_stream_request"}),
    ));
    fold_all(&mut fold, &events, T0 + 61_000);
    assert!(fold.take_finished(T0 + 61_000).is_empty());
    let stats = fold.stats();
    // The capabilities snapshot is folded (it names GPUs), the trace without a stream is not.
    assert_eq!((stats.streams_unrequested, stats.events_ignored), (1, 1));
}

#[test]
fn open_streams_are_capped() {
    let settings = OrganicSettings {
        max_open_streams: 2,
        ..OrganicSettings::default()
    };
    let mut fold = OrganicFold::new(settings);
    for stream in ["a", "b", "c"] {
        fold_all(
            &mut fold,
            &[trace(stream, "gateway_receive_stream_request", T0, None)],
            T0,
        );
    }
    assert_eq!(fold.open_streams(), 2);
    assert_eq!(fold.stats().events_over_capacity, 1);
}

#[tokio::test]
async fn flushed_sessions_become_organic_cells_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("lvt.db"))).expect("open");
    let organic = OrganicLoad::default();
    let events = served_stream("s1");
    let texts: Vec<String> = events.iter().map(Value::to_string).collect();
    organic.observe(texts.iter().map(String::as_str), T0 + 61_000);
    let outcome = organic.flush(&store, T0 + 61_000).await.expect("flush");
    assert_eq!(outcome.inserted, 1);

    // The same events replayed (a restarted consumer) after the stream was forgotten make the
    // same session id, which the store counts as a duplicate.
    let replay = OrganicLoad::default();
    replay.observe(texts.iter().map(String::as_str), T0 + 70_000);
    let outcome = replay.flush(&store, T0 + 70_000).await.expect("flush");
    assert_eq!((outcome.inserted, outcome.duplicates), (0, 1));

    let organic_cells = store
        .sla_cells(&SlaFilter {
            test_load: Some(false),
            ..SlaFilter::default()
        })
        .await
        .expect("cells");
    assert_eq!(organic_cells.len(), 1);
    assert_eq!(organic_cells[0].1.sessions, 1);
    let test_cells = store
        .sla_cells(&SlaFilter {
            test_load: Some(true),
            ..SlaFilter::default()
        })
        .await
        .expect("cells");
    assert!(test_cells.is_empty());
    let agents = store.agents().await.expect("agents");
    assert_eq!(agents[0].agent_id, ORGANIC_AGENT_ID);
    // Nothing finished: a flush stores nothing and does not touch the store.
    assert_eq!(
        organic.flush(&store, T0 + 80_000).await.expect("flush"),
        InsertOutcome::default()
    );
}

#[tokio::test]
async fn an_unstorable_session_is_dropped_without_holding_back_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&SqliteConfig::new(dir.path().join("lvt.db"))).expect("open");
    let organic = OrganicLoad::default();
    let mut events = served_stream("fine");
    let mut absurd = served_stream("absurd");
    // Two finite samples whose sum overflows: the mean is infinite, which no record can carry.
    absurd[4] = status("absurd", T0 + 10_000, "ONLINE", f64::MAX, ORCH_A);
    absurd[5] = status("absurd", T0 + 20_000, "ONLINE", f64::MAX, ORCH_A);
    events.extend(absurd);
    let texts: Vec<String> = events.iter().map(Value::to_string).collect();
    organic.observe(texts.iter().map(String::as_str), T0 + 61_000);
    let outcome = organic.flush(&store, T0 + 61_000).await.expect("flush");
    assert_eq!(outcome.inserted, 1);
    let page = store
        .results_page(crate::store::ResultFilter::default(), None, 10)
        .await
        .expect("page");
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].session_id, format!("organic:{GATEWAY}:fine"));
    // Nothing waits for a retry either.
    assert_eq!(
        organic.flush(&store, T0 + 62_000).await.expect("flush"),
        InsertOutcome::default()
    );
}

#[test]
fn gpus_come_from_what_the_orchestrators_advertised_for_the_model() {
    let capabilities = envelope_json(
        "caps",
        "network_capabilities",
        GATEWAY,
        T0 - 60_000,
        json!([
            {
                // Lowercase here, mixed case in the stream's events: the same orchestrator.
                "address": ORCH_A.to_ascii_lowercase(),
                "orch_uri": "https://0xAAaa:8935",
                "hardware": [
                    {"pipeline": "live-video-to-video", "model_id": "comfyui",
                     "gpu_info": {"0": {"name": "NVIDIA A100", "memory_total": 1}}},
                    {"pipeline": "live-video-to-video", "model_id": "streamdiffusion",
                     "gpu_info": {"1": {"name": "NVIDIA GeForce RTX 5090", "memory_total": 32},
                                  "0": {"name": "NVIDIA GeForce RTX 4090",
                                        "memory_total": 25_757_220_864u64}}}
                ]
            },
            {"address": ORCH_B, "hardware": null}
        ]),
    );
    let mut fold = OrganicFold::new(OrganicSettings::default());
    let mut events = vec![capabilities];
    events.extend(served_stream("s"));
    events.pop();
    events.extend([
        trace("s", "orchestrator_swap", T0 + 30_000, None),
        status("s", T0 + 40_000, "ONLINE", 18.0, ORCH_B),
        trace(
            "s",
            "gateway_ingest_stream_closed",
            T0 + 60_000,
            Some(ORCH_B),
        ),
    ]);
    fold_all(&mut fold, &events, T0 + 61_000);
    let report = fold.take_finished(T0 + 61_000).remove(0);
    let rtx_4090 = lvt_schema::Gpu {
        name: "NVIDIA GeForce RTX 4090".to_owned(),
        memory_bytes: Some(25_757_220_864),
    };
    // The first device (by key) with a name, for the session's model.
    assert_eq!(report.gpu.as_ref(), Some(&rtx_4090));
    let gpus: Vec<Option<&str>> = report
        .served_by
        .iter()
        .map(|share| share.gpu.as_ref().map(|gpu| gpu.name.as_str()))
        .collect();
    // B advertised no hardware: its share has no GPU rather than a guess.
    assert_eq!(gpus, [Some("NVIDIA GeForce RTX 4090"), None]);
    assert_eq!(CellKey::of(&report).gpu, "NVIDIA GeForce RTX 4090");
}
