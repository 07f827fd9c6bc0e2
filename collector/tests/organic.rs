//! Organic load end to end over loopback: go-livepeer gateway events posted to `/v1/events`
//! become organic sessions whose SLA cells show up under `test_load=false`, apart from the
//! tester's records under `test_load=true`.

mod common;

use common::{TestCollector, agent_key, batch, now_ms, post, signed};
use serde_json::{Value, json};

const GATEWAY: &str = "0x00000000000000000000000000000000000000aa";
const ORCH_A: &str = "0x1111111111111111111111111111111111111111";
const ORCH_B: &str = "0x2222222222222222222222222222222222222222";

fn envelope(id: &str, family: &str, at: i64, data: Value) -> Value {
    json!({
        "id": id,
        "type": family,
        "timestamp": at.to_string(),
        "gateway": GATEWAY,
        "data": data,
    })
}

fn trace(stream: &str, kind: &str, at: i64, orchestrator: Option<&str>) -> Value {
    let mut data = json!({
        "type": kind,
        "stream_id": stream,
        "request_id": format!("req-{stream}"),
        "pipeline": "streamdiffusion",
        "timestamp": at,
    });
    if let Some(address) = orchestrator {
        data["orchestrator_info"] = json!({"address": address, "url": "https://o.example:8935"});
    }
    envelope(&format!("{stream}/{kind}"), "stream_trace", at, data)
}

fn status(stream: &str, at: i64, fps: f64, orchestrator: &str) -> Value {
    envelope(
        &format!("{stream}/status/{at}"),
        "ai_stream_status",
        at,
        json!({
            "type": "status",
            "stream_id": stream,
            "request_id": format!("req-{stream}"),
            "pipeline": "streamdiffusion",
            "timestamp": at,
            "state": "ONLINE",
            "orchestrator_info": {"address": orchestrator, "url": "https://o.example:8935"},
            "inference_status": {"fps": fps},
        }),
    )
}

async fn post_events(collector: &TestCollector, events: &Value, counter: u64) -> Value {
    let (body, headers) = signed(&agent_key(), events, now_ms(), counter);
    let (status, answer, _) = post(
        &collector.client,
        &collector.url("/v1/events"),
        body,
        &headers,
    )
    .await
    .expect("post events");
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn compliance(collector: &TestCollector, query: &str) -> Vec<Value> {
    let response = collector
        .client
        .get(collector.url(&format!("/v1/sla/compliance?grain=window{query}")))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json");
    body["rows"].as_array().cloned().expect("rows")
}

#[tokio::test]
async fn gateway_events_become_organic_cells_apart_from_test_load() {
    let collector = TestCollector::start().await;
    // A tester record: test load on orchestrator 0xabc.
    let records = batch("tester", 1, now_ms());
    let (body, headers) = signed(&agent_key(), &records, now_ms(), 1);
    let (code, answer, _) = post(
        &collector.client,
        &collector.url("/v1/results"),
        body,
        &headers,
    )
    .await
    .expect("post results");
    assert_eq!(code, 200, "{answer}");

    // Three organic streams, recorded-looking: A serves one, B takes another that never
    // produces output, and one finds no orchestrator. The first batch leaves every stream open.
    let t0 = now_ms() - 120_000;
    let first = json!([
        trace("served", "gateway_receive_stream_request", t0, None),
        trace(
            "served",
            "gateway_send_first_ingest_segment",
            t0 + 200,
            Some(ORCH_A)
        ),
        trace(
            "served",
            "gateway_receive_first_processed_segment",
            t0 + 1_400,
            Some(ORCH_A)
        ),
        status("served", t0 + 10_000, 19.0, ORCH_A),
        trace("dark", "gateway_receive_stream_request", t0, None),
        trace(
            "dark",
            "gateway_send_first_ingest_segment",
            t0 + 100,
            Some(ORCH_B)
        ),
        trace("busy", "gateway_receive_stream_request", t0, None),
        trace(
            "busy",
            "gateway_no_orchestrators_available",
            t0 + 2_000,
            None
        ),
    ]);
    let answer = post_events(&collector, &first, 2).await;
    assert_eq!(answer["stored"], 8, "{answer}");
    assert!(
        compliance(&collector, "&test_load=false").await.is_empty(),
        "no stream is finished yet"
    );

    let second = json!([
        status("served", t0 + 20_000, 21.0, ORCH_A),
        trace(
            "served",
            "gateway_ingest_stream_closed",
            t0 + 60_000,
            Some(ORCH_A)
        ),
        trace(
            "dark",
            "gateway_ingest_stream_closed",
            t0 + 30_000,
            Some(ORCH_B)
        ),
        trace("busy", "gateway_ingest_stream_closed", t0 + 2_100, None),
    ]);
    post_events(&collector, &second, 3).await;
    // A retried delivery of the whole sequence changes nothing.
    let mut all = first.as_array().cloned().expect("array");
    all.extend(second.as_array().cloned().expect("array"));
    let answer = post_events(&collector, &Value::Array(all), 4).await;
    assert_eq!(answer["duplicates"], 12, "{answer}");

    let organic = compliance(&collector, "&test_load=false").await;
    let mut cells: Vec<(String, String, u64, u64)> = organic
        .iter()
        .map(|row| {
            assert_eq!(row["test_load"], false, "{row}");
            (
                row["orchestrator"].as_str().unwrap_or("").to_owned(),
                row["model_id"].as_str().unwrap_or("").to_owned(),
                row["score"]["sessions"].as_u64().unwrap_or(0),
                row["score"]["startup_success"]["successes"]
                    .as_u64()
                    .unwrap_or(0),
            )
        })
        .collect();
    cells.sort();
    assert_eq!(
        cells,
        [
            // The busy stream has no orchestrator: a capacity signal, no attempt.
            (String::new(), "streamdiffusion".to_owned(), 1, 0),
            (ORCH_A.to_owned(), "streamdiffusion".to_owned(), 1, 1),
            (ORCH_B.to_owned(), "streamdiffusion".to_owned(), 1, 0),
        ]
    );
    let served = organic
        .iter()
        .find(|row| row["orchestrator"] == ORCH_A)
        .expect("served cell");
    assert_eq!(served["score"]["startup_ms_mean"], 1_200.0, "{served}");
    assert_eq!(served["score"]["output_fps_mean"], 20.0, "{served}");
    assert_eq!(served["score"]["startup_success"]["trials"], 1);
    // Gateway events carry no e2e latency, and an organic session is not expected to: its
    // output FPS makes its evidence complete, so the cell scores (0.5 for the missing e2e).
    assert_eq!(served["score"]["health_signal_coverage"], 1.0, "{served}");
    assert!(
        served["score"]["sla_score"]
            .as_f64()
            .is_some_and(|s| s > 50.0),
        "{served}"
    );
    let dark = organic
        .iter()
        .find(|row| row["orchestrator"] == ORCH_B)
        .expect("dark cell");
    // The stream that never got output scores low, below the served one: its startup failed.
    assert!(
        dark["score"]["sla_score"]
            .as_f64()
            .is_some_and(|s| s < 25.0),
        "{dark}"
    );

    let tested = compliance(&collector, "&test_load=true").await;
    assert_eq!(tested.len(), 1);
    assert_eq!(tested[0]["orchestrator"], "0xabc");
    assert_eq!(tested[0]["score"]["sessions"], 1);
    // Without the filter the two kinds are still separate rows, never merged.
    let both = compliance(&collector, "").await;
    assert_eq!(both.len(), 4);
    collector.stop().await;
}

/// An in-process collector (no HTTP) on a fresh SQLite file, with a clock the test moves, fed the
/// events of [`unclosed_stream`] (which starts at `t0`, ten minutes ago) at `t0 + 30 s`; the
/// clock reads that time.
struct FedCollector {
    _dir: tempfile::TempDir,
    store: std::sync::Arc<dyn lvt_collector::store::Store>,
    clock: std::sync::Arc<std::sync::atomic::AtomicI64>,
    state: lvt_collector::app::AppState,
    t0: i64,
}

impl FedCollector {
    async fn start(settings: lvt_collector::config::Settings) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicI64, Ordering};

        let dir = tempfile::tempdir().expect("tempdir");
        let spec: lvt_collector::config::StoreSpec =
            format!("sqlite:{}", dir.path().join("lvt.db").display())
                .parse()
                .expect("store spec");
        let store = lvt_collector::app::open_store(&spec)
            .await
            .expect("open store");
        let t0 = now_ms() - 600_000;
        let clock = Arc::new(AtomicI64::new(t0 + 30_000));
        let read = Arc::clone(&clock);
        let state = lvt_collector::app::AppState::new(
            settings,
            Arc::clone(&store),
            Arc::new(move || read.load(Ordering::SeqCst)),
        );
        let texts = unclosed_stream(t0);
        lvt_collector::app::ingest::feed_organic_load(
            &state,
            texts.iter().map(String::as_str),
            t0 + 30_000,
        )
        .await;
        Self {
            _dir: dir,
            store,
            clock,
            state,
            t0,
        }
    }

    /// Moves the clock `silence_ms` past the feed, sweeps, and returns the organic cells.
    async fn organic_cells_after(
        &self,
        silence_ms: i64,
    ) -> Vec<(lvt_collector::sla::CellKey, lvt_collector::sla::CellSums)> {
        self.clock.store(
            self.t0 + 30_000 + silence_ms,
            std::sync::atomic::Ordering::SeqCst,
        );
        lvt_collector::app::sweep(&self.state).await;
        let organic = lvt_collector::store::SlaFilter {
            test_load: Some(false),
            ..lvt_collector::store::SlaFilter::default()
        };
        self.store.sla_cells(&organic).await.expect("cells")
    }
}

#[tokio::test]
async fn the_sweep_finishes_a_stream_whose_close_was_lost() {
    use lvt_collector::organic::DEFAULT_IDLE_TIMEOUT_MS;

    let fed = FedCollector::start(lvt_collector::config::Settings::default()).await;
    assert!(
        fed.organic_cells_after(0).await.is_empty(),
        "an open stream is not a session yet"
    );
    let cells = fed.organic_cells_after(DEFAULT_IDLE_TIMEOUT_MS).await;
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].0.orchestrator, ORCH_A);
    assert_eq!(cells[0].1.startup_successes, 1);
    assert_eq!(fed.state.organic.stats().sessions, 1);
}

/// The events of a stream that started on ORCH_A at `t0`, ran for 20 s and was never closed.
fn unclosed_stream(t0: i64) -> Vec<String> {
    [
        trace("lost", "gateway_receive_stream_request", t0, None),
        trace(
            "lost",
            "gateway_send_first_ingest_segment",
            t0 + 100,
            Some(ORCH_A),
        ),
        trace(
            "lost",
            "gateway_receive_first_processed_segment",
            t0 + 700,
            Some(ORCH_A),
        ),
        status("lost", t0 + 20_000, 24.0, ORCH_A),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

#[tokio::test]
async fn the_settings_name_test_gateways_and_the_idle_timeout() {
    // (settings, organic sessions after 10 s of silence, after 120 s)
    let cases = [
        ("[organic]\nidle_timeout_s = 5\n".to_owned(), 1, 1),
        (String::new(), 0, 1),
        (
            format!("[organic]\ntest_gateways = [\"{GATEWAY}\"]\nidle_timeout_s = 5\n"),
            0,
            0,
        ),
    ];
    for (text, after_10_s, after_120_s) in cases {
        let settings =
            lvt_collector::config::Settings::parse(&text, std::path::Path::new("c.toml"))
                .expect("valid settings");
        let fed = FedCollector::start(settings).await;
        for (silence_ms, expected) in [(10_000, after_10_s), (120_000, after_120_s)] {
            let cells = fed.organic_cells_after(silence_ms).await;
            assert_eq!(
                cells.len(),
                expected,
                "{text:?} after {silence_ms} ms of silence"
            );
        }
    }
}

/// The running collector finishes an idle stream on its own, without waiting for the
/// ten-minute retention sweep: with `idle_timeout_s = 1` the unclosed stream becomes an organic
/// session within seconds of its last event.
#[tokio::test]
async fn the_server_stores_an_idle_stream_after_the_configured_timeout() {
    let collector =
        TestCollector::start_with(common::settings_with("[organic]\nidle_timeout_s = 1\n")).await;
    let events: Vec<Value> = unclosed_stream(now_ms() - 60_000)
        .iter()
        .map(|text| serde_json::from_str(text).expect("event json"))
        .collect();
    post_events(&collector, &Value::Array(events), 1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let rows = compliance(&collector, "&test_load=false").await;
        if rows.len() == 1 {
            assert_eq!(rows[0]["orchestrator"], ORCH_A);
            assert_eq!(rows[0]["score"]["sessions"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle stream was not stored: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    collector.stop().await;
}

/// A restart forgets no stream: the collector stops while one stream is open (its events are
/// stored, its session is not) and after another was stored; the next collector on the same
/// file folds the stored events again, so the open stream becomes its session once idle, and the
/// stored one comes out again only as a duplicate. With `replay_window_s = 0` the open stream is
/// lost, as it was before replays existed.
#[tokio::test]
async fn a_restart_rebuilds_open_streams_from_stored_events() {
    let closed_stream = |stream: &str, t0: i64| {
        json!([
            trace(stream, "gateway_receive_stream_request", t0, None),
            trace(
                stream,
                "gateway_send_first_ingest_segment",
                t0 + 100,
                Some(ORCH_A)
            ),
            trace(
                stream,
                "gateway_receive_first_processed_segment",
                t0 + 600,
                Some(ORCH_A)
            ),
            status(stream, t0 + 5_000, 24.0, ORCH_A),
            trace(
                stream,
                "gateway_ingest_stream_closed",
                t0 + 9_000,
                Some(ORCH_A)
            ),
        ])
    };
    let organic_sessions = |rows: &[Value]| {
        rows.iter()
            .map(|row| row["score"]["sessions"].as_u64().expect("sessions"))
            .sum::<u64>()
    };
    for (replay_window_s, expected) in [(7_200, 2), (0, 1)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("lvt.db");
        let tables =
            format!("[organic]\nidle_timeout_s = 1\nreplay_window_s = {replay_window_s}\n");
        // The first collector has a long idle timeout, so the open stream stays open until it
        // stops.
        let first = TestCollector::start_at(
            &db,
            common::settings_with("[organic]\nidle_timeout_s = 3600\n"),
        )
        .await;
        let t0 = now_ms() - 60_000;
        post_events(&first, &closed_stream("done", t0), 1).await;
        let open: Vec<Value> = unclosed_stream(t0)
            .iter()
            .map(|text| serde_json::from_str(text).expect("event json"))
            .collect();
        post_events(&first, &Value::Array(open), 2).await;
        assert_eq!(
            organic_sessions(&compliance(&first, "&test_load=false").await),
            1,
            "only the closed stream is a session before the stop"
        );
        first.stop().await;

        let second = TestCollector::start_at(&db, common::settings_with(&tables)).await;
        // Within a few idle timeouts the replayed open stream is finished and stored.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
        let mut sessions = 0;
        while std::time::Instant::now() < deadline {
            sessions = organic_sessions(&compliance(&second, "&test_load=false").await);
            // With no replay nothing more may come: wait out the deadline.
            if replay_window_s > 0 && sessions == expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(sessions, expected, "replay_window_s = {replay_window_s}");
        second.stop().await;
    }
}

/// A finished stream the fold turns into one session once the store takes it.
fn served_stream(stream: &str, t0: i64) -> Vec<String> {
    [
        trace(stream, "gateway_receive_stream_request", t0, None),
        trace(
            stream,
            "gateway_send_first_ingest_segment",
            t0 + 100,
            Some(ORCH_A),
        ),
        trace(
            stream,
            "gateway_receive_first_processed_segment",
            t0 + 900,
            Some(ORCH_A),
        ),
        status(stream, t0 + 10_000, 20.0, ORCH_A),
        status(stream, t0 + 20_000, 22.0, ORCH_A),
        trace(
            stream,
            "gateway_ingest_stream_closed",
            t0 + 60_000,
            Some(ORCH_A),
        ),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

#[tokio::test]
async fn sessions_the_store_refuses_are_stored_at_the_next_flush() {
    use lvt_collector::store::Store as _;
    use std::sync::atomic::Ordering;

    let dir = tempfile::tempdir().expect("tempdir");
    // SQLite that refuses inserts while `down` is set.
    let store = lvt_testkit::store_double::StoreDouble::required_only(std::sync::Arc::new(
        lvt_collector::store::sqlite::SqliteStore::open(
            &lvt_collector::store::sqlite::SqliteConfig::new(dir.path().join("lvt.db")),
        )
        .expect("open"),
    ));
    store.down.store(true, Ordering::SeqCst);
    let organic = lvt_collector::organic::OrganicLoad::default();
    let t0 = 1_732_700_000_000;
    let texts = served_stream("s", t0);
    organic.observe(texts.iter().map(String::as_str), t0 + 61_000);
    organic
        .flush(&store, t0 + 61_000)
        .await
        .expect_err("the store is down");
    assert_eq!(store.count_results().await.expect("count"), 0);

    store.down.store(false, Ordering::SeqCst);
    let outcome = organic.flush(&store, t0 + 70_000).await.expect("flush");
    assert_eq!(outcome.inserted, 1);
    assert_eq!(store.count_results().await.expect("count"), 1);
}
