//! What only the ClickHouse backend has: the hourly rollup and ClickHouse's error answers (the
//! shared behavioural suites run in `collector/tests/store_suites.rs`).
//!
//! The tests run against the ClickHouse engine from PyPI's chdb behind `ci/clickhouse-adapter`
//! (`lvt_testkit::clickhouse`). Each test works in its own database, so they run in parallel on
//! one adapter.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ClickHouseConfig, ClickHouseError, ClickHouseStore, HourlyCount};
use lvt_schema::SessionReport;

use crate::store::{ResultFilter, SlaFilter, Store, StoredBatch, StoredResult};

static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

fn adapter_url() -> String {
    lvt_testkit::clickhouse::url()
}

/// The configuration of a database no other test uses.
fn fresh_config() -> ClickHouseConfig {
    let mut config = ClickHouseConfig::new(adapter_url());
    config.database = format!("t{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
    config
}

/// A store in a database no other test uses.
async fn fresh_store() -> ClickHouseStore {
    ClickHouseStore::open(fresh_config())
        .await
        .expect("open store")
}

fn batch(nonce: &str, session_ids: &[&str], received_at_unix_ms: i64) -> StoredBatch {
    StoredBatch {
        agent_id: "agent".into(),
        key_id: "00".repeat(8),
        timestamp_ms: received_at_unix_ms,
        nonce: nonce.into(),
        signature: "sig".into(),
        canonical_sha256: "22".repeat(32),
        session_ids: session_ids.iter().map(|id| (*id).to_owned()).collect(),
        received_at_unix_ms,
    }
}

fn result(session_id: &str, started_at_unix_ms: i64, outcome: &str) -> StoredResult {
    StoredResult {
        session_id: session_id.into(),
        orchestrator_address: Some("0xaa".into()),
        orchestrator_uri: Some("https://o:8935".into()),
        gpu: Some("RTX 4090".into()),
        region: None,
        pipeline: "live-video-to-video".into(),
        model_id: "streamdiffusion".into(),
        complexity: Some("low".into()),
        outcome: outcome.into(),
        started_at_unix_ms,
        ended_at_unix_ms: started_at_unix_ms + 30_000,
        sla_cells: None,
        record_json: format!("{{\"session_id\":\"{session_id}\",\"note\":\"it's \\\\ fine\"}}"),
    }
}

#[tokio::test]
async fn hourly_rollup_counts_sessions_by_grain() {
    let store = fresh_store().await;
    let hour_ms = 3_600_000;
    let base = 480_000 * hour_ms;
    let outcome = store
        .insert_batch(
            batch("n1", &["a", "b", "c"], base + 2 * hour_ms),
            vec![
                result("a", base + 10, "passed"),
                result("b", base + hour_ms - 1, "passed"),
                result("c", base + hour_ms, "failed"),
            ],
        )
        .await
        .expect("insert");
    assert_eq!(outcome.inserted, 3);
    // A retried session is not counted again: the rollup only sees rows actually inserted.
    store
        .insert_batch(
            batch("n2", &["a", "d"], base + 2 * hour_ms),
            vec![
                result("a", base + 10, "passed"),
                result("d", base + hour_ms + 5, "failed"),
            ],
        )
        .await
        .expect("insert");

    let cells = store
        .hourly_counts(base, base + 2 * hour_ms)
        .await
        .expect("rollup");
    let cell = |hour_unix_s: i64, outcome: &str, sessions: u64| HourlyCount {
        hour_unix_s,
        orchestrator_address: "0xaa".into(),
        orchestrator_uri: "https://o:8935".into(),
        pipeline: "live-video-to-video".into(),
        model_id: "streamdiffusion".into(),
        gpu: "RTX 4090".into(),
        region: String::new(),
        complexity: "low".into(),
        outcome: outcome.into(),
        sessions,
    };
    let base_s = base / 1000;
    assert_eq!(
        cells,
        [cell(base_s, "passed", 2), cell(base_s + 3600, "failed", 2)]
    );
    let first_hour = store
        .hourly_counts(base, base + hour_ms)
        .await
        .expect("rollup");
    assert_eq!(first_hour, [cell(base_s, "passed", 2)]);
}

#[tokio::test]
async fn data_and_nonces_survive_reopening() {
    let config = fresh_config();
    let first = ClickHouseStore::open(config.clone()).await.expect("open");
    first
        .insert_batch(batch("n1", &["s1"], 1_000), vec![result("s1", 1, "passed")])
        .await
        .expect("insert");
    assert!(
        first
            .remember_nonce("k".into(), "n".into(), 5)
            .await
            .expect("nonce")
    );
    drop(first);

    let store = ClickHouseStore::open(config).await.expect("reopen");
    assert_eq!(store.count_results().await.expect("count"), 1);
    assert!(
        !store
            .remember_nonce("k".into(), "n".into(), 5)
            .await
            .expect("nonce"),
        "a remembered nonce must stay remembered across a reopen"
    );
    let outcome = store
        .insert_batch(batch("n2", &["s1"], 2_000), vec![result("s1", 1, "passed")])
        .await
        .expect("insert");
    assert_eq!((outcome.inserted, outcome.duplicates), (0, 1));
    let page = store
        .results_page(ResultFilter::default(), None, 10)
        .await
        .expect("page");
    assert_eq!(
        page.rows[0].record_json, "{\"session_id\":\"s1\",\"note\":\"it's \\\\ fine\"}",
        "quotes and backslashes round-trip"
    );
}

#[tokio::test]
async fn server_errors_carry_clickhouse_exception_text() {
    let store = fresh_store().await;
    let error = store
        .execute("SELECT no_such_column", None)
        .await
        .expect_err("bad query");
    match error {
        ClickHouseError::Server { status, message } => {
            assert_eq!(status, 500);
            assert!(message.contains("DB::Exception"), "{message}");
        }
        other => panic!("expected a server error, got {other}"),
    }
}

#[tokio::test]
async fn bad_configuration_fails_to_open() {
    let mut config = ClickHouseConfig::new(adapter_url());
    config.database = "lvt; DROP DATABASE x".into();
    let error = ClickHouseStore::open(config)
        .await
        .expect_err("the name would need quoting");
    assert!(error.to_string().contains("database name"), "{error}");

    // A port that was just free answers nothing: opening fails instead of hanging.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let mut config = ClickHouseConfig::new(format!("http://127.0.0.1:{port}"));
    config.timeout_ms = 2_000;
    let error = ClickHouseStore::open(config)
        .await
        .expect_err("nothing listens");
    assert!(error.to_string().contains("request to"), "{error}");
}

#[tokio::test]
async fn a_racing_duplicate_collapses_to_the_first_copy() {
    // Two collectors on one server each check for duplicates under their own lock, so both can
    // insert the same session. Simulate the loser's row (received later, hence a lower
    // keep_rank) written behind this store's back: every read must still see one row, the first.
    let config = fresh_config();
    let db = config.database.clone();
    let store = ClickHouseStore::open(config).await.expect("open");
    store
        .insert_batch(batch("n1", &["s1"], 1_000), vec![result("s1", 1, "passed")])
        .await
        .expect("insert");
    let late = format!(
        "{{\"session_id\":\"s1\",\"batch_id\":7,\"agent_id\":\"other\",\
         \"pipeline\":\"p\",\"model_id\":\"m\",\"outcome\":\"failed\",\
         \"started_at_unix_ms\":1,\"ended_at_unix_ms\":30001,\"record_json\":\"{{}}\",\
         \"keep_rank\":{}}}\n",
        super::store::keep_rank(2_000)
    );
    store
        .execute(
            &format!("INSERT INTO {db}.results FORMAT JSONEachRow"),
            Some(late),
        )
        .await
        .expect("raw insert");
    assert_eq!(store.count_results().await.expect("count"), 1);
    let page = store
        .results_page(ResultFilter::default(), None, 10)
        .await
        .expect("page");
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].agent_id, "agent", "the first copy wins");
}

#[tokio::test]
async fn large_batches_check_duplicates_in_chunks() {
    // More sessions than one duplicate check names, so the check runs in several queries.
    let store = fresh_store().await;
    let ids: Vec<String> = (0..2_500).map(|i| format!("session-{i:05}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let results = |ids: &[String]| -> Vec<StoredResult> {
        ids.iter().map(|id| result(id, 1_000, "passed")).collect()
    };
    let first = store
        .insert_batch(batch("n1", &id_refs, 5_000), results(&ids))
        .await
        .expect("insert");
    assert_eq!((first.inserted, first.duplicates), (2_500, 0));
    let mut retry_ids = ids.clone();
    retry_ids.push("session-new".to_owned());
    let retry = store
        .insert_batch(batch("n2", &id_refs, 6_000), results(&retry_ids))
        .await
        .expect("insert");
    assert_eq!((retry.inserted, retry.duplicates), (1, 2_500));
    assert_eq!(store.count_results().await.expect("count"), 2_501);
}

#[tokio::test]
async fn lost_sla_partials_are_rebuilt_from_the_records() {
    let config = fresh_config();
    let db = config.database.clone();
    let store = ClickHouseStore::open(config).await.expect("open");
    let hour_ms = 3_600_000;
    let base = 490_000 * hour_ms;
    let reports: Vec<StoredResult> = (0..3)
        .map(|i| {
            let mut report = SessionReport::new(format!("r{i}"), "noop", base + i * hour_ms / 2);
            report.ended_at_unix_ms = report.started_at_unix_ms + 30_000;
            let mut stored = result(&report.session_id, report.started_at_unix_ms, "passed");
            stored.ended_at_unix_ms = report.ended_at_unix_ms;
            stored.record_json = serde_json::to_string(&report).expect("a report serializes");
            stored
        })
        .collect();
    store
        .insert_batch(batch("n1", &["r0", "r1", "r2"], base), reports)
        .await
        .expect("insert");
    let everything = SlaFilter::default();
    let before = store.sla_cells(&everything).await.expect("cells");
    let sessions: Vec<u64> = before.iter().map(|(_, sums)| sums.sessions).collect();
    assert_eq!(sessions, [2, 1], "r0 and r1 share the first hour");

    // The collector died after storing the records but before their partial sums.
    store
        .execute(&format!("TRUNCATE TABLE {db}.sla_partials"), None)
        .await
        .expect("truncate");
    assert!(
        store
            .sla_cells(&everything)
            .await
            .expect("cells")
            .is_empty()
    );
    assert_eq!(store.rebuild_sla_cells().await.expect("rebuild"), 3);
    assert_eq!(store.sla_cells(&everything).await.expect("cells"), before);
}

#[tokio::test]
async fn events_keep_their_order_and_ids_across_reopening() {
    use crate::store::{EventBatch, EventFilter, StoredEvent};
    let batch = |nonce: &str| EventBatch {
        agent_id: "gateway".into(),
        key_id: "00".repeat(8),
        timestamp_ms: 1_000,
        nonce: nonce.into(),
        signature: "sig".into(),
        canonical_sha256: "33".repeat(32),
        received_at_unix_ms: 1_000,
    };
    let event = |id: &str| StoredEvent {
        id: id.into(),
        family: "stream_trace".into(),
        timestamp_ms: Some(1_000),
        gateway: "0xgw".into(),
        envelope_json: format!("{{\"id\":\"{id}\",\"note\":\"it's \\\\ fine\"}}"),
        aside_reason: None,
    };
    let config = fresh_config();
    let first = ClickHouseStore::open(config.clone()).await.expect("open");
    first
        .insert_events(batch("n1"), vec![event("a"), event("b")])
        .await
        .expect("insert");
    drop(first);

    // A reopened store continues the arrival sequence after what is stored and still knows
    // every stored id.
    let store = ClickHouseStore::open(config).await.expect("reopen");
    let outcome = store
        .insert_events(batch("n2"), vec![event("b"), event("c")])
        .await
        .expect("insert");
    assert_eq!((outcome.stored_total(), outcome.duplicates), (1, 1));
    let page = store
        .events_page(EventFilter::default(), None, 10)
        .await
        .expect("page");
    let rows: Vec<(i64, &str)> = page
        .rows
        .iter()
        .map(|row| (row.seq, row.event.id.as_str()))
        .collect();
    assert_eq!(rows, [(1, "a"), (2, "b"), (3, "c")]);
    assert_eq!(
        page.rows[0].event.envelope_json, "{\"id\":\"a\",\"note\":\"it's \\\\ fine\"}",
        "quotes and backslashes round-trip"
    );
    let after_first = store
        .events_page(EventFilter::default(), Some(1), 10)
        .await
        .expect("page");
    assert_eq!(after_first.rows.len(), 2);
}

#[tokio::test]
async fn unsigned_event_batches_get_distinct_ids() {
    use crate::store::{EventBatch, EventFilter, StoredEvent};
    // Kafka's event batches carry no key id and no nonce; each still needs its own id.
    let batch = |sha: &str| EventBatch {
        agent_id: "kafka:events".into(),
        key_id: String::new(),
        timestamp_ms: 1_000,
        nonce: String::new(),
        signature: String::new(),
        canonical_sha256: sha.repeat(32),
        received_at_unix_ms: 1_000,
    };
    let event = |id: &str| StoredEvent {
        id: id.into(),
        family: "stream_trace".into(),
        timestamp_ms: Some(1_000),
        gateway: "0xgw".into(),
        envelope_json: "{}".into(),
        aside_reason: None,
    };
    let store = fresh_store().await;
    for (sha, id) in [("aa", "x"), ("bb", "y")] {
        store
            .insert_events(batch(sha), vec![event(id)])
            .await
            .expect("insert");
    }
    let page = store
        .events_page(EventFilter::default(), None, 10)
        .await
        .expect("page");
    assert_eq!(page.rows.len(), 2);
    assert_ne!(page.rows[0].batch_id, page.rows[1].batch_id);
}
