//! The SQLite backend against the shared behavioural suite, plus what only SQLite has: a file
//! that survives reopening.

use super::{SqliteConfig, SqliteStore};
use crate::sla::{CellKey, CellSums};
use crate::store::{SlaFilter, Store, StoredBatch, StoredResult};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&SqliteConfig::new(dir.path().join("lvt.db"))).expect("open store")
}

#[tokio::test]
async fn sqlite_passes_the_store_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    crate::store::suite(&store).await;
    // The suite's event section really ran: SQLite stores events.
    let page = store
        .events_page(crate::store::EventFilter::default(), None, 10)
        .await
        .expect("page");
    assert_eq!(page.rows.len(), 3);
}

#[tokio::test]
async fn sqlite_passes_the_sla_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    crate::store::sla_suite(&store).await;
}

#[tokio::test]
async fn data_and_nonces_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = StoredBatch {
        agent_id: "a".into(),
        key_id: "00".repeat(8),
        timestamp_ms: 1000,
        nonce: "11".repeat(16),
        signature: "sig".into(),
        canonical_sha256: "22".repeat(32),
        session_ids: vec!["s1".into()],
        received_at_unix_ms: 1001,
    };
    let result = StoredResult {
        session_id: "s1".into(),
        orchestrator_address: None,
        orchestrator_uri: Some("https://o:8935".into()),
        gpu: None,
        region: None,
        pipeline: "p".into(),
        model_id: "m".into(),
        complexity: None,
        outcome: "passed".into(),
        started_at_unix_ms: 1,
        ended_at_unix_ms: 2,
        record_json: "{}".into(),
    };
    {
        let store = open(&dir);
        store
            .insert_batch(batch.clone(), vec![result.clone()])
            .await
            .expect("insert");
        assert!(
            store
                .remember_nonce("k".into(), "n".into(), 5)
                .await
                .expect("nonce")
        );
    }
    let store = open(&dir);
    assert_eq!(store.count_results().await.expect("count"), 1);
    assert!(
        !store
            .remember_nonce("k".into(), "n".into(), 5)
            .await
            .expect("nonce"),
        "a remembered nonce must stay remembered across a restart"
    );
    let outcome = store
        .insert_batch(batch, vec![result])
        .await
        .expect("insert");
    assert_eq!(outcome.duplicates, 1);
}

#[tokio::test]
async fn opening_a_version_1_database_builds_the_rollup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut report = lvt_schema::SessionReport::new("s1", "noop", 7_200_000);
    report.outcome = lvt_schema::Outcome::Passed;
    report.metrics.startup_ms = Some(500.0);
    let value = serde_json::to_value(&report).expect("serialize");
    let result = StoredResult {
        session_id: "s1".into(),
        orchestrator_address: None,
        orchestrator_uri: None,
        gpu: None,
        region: None,
        pipeline: report.pipeline.clone(),
        model_id: report.model_id.clone(),
        complexity: None,
        outcome: "passed".into(),
        started_at_unix_ms: report.started_at_unix_ms,
        ended_at_unix_ms: report.ended_at_unix_ms,
        record_json: String::from_utf8(lvt_schema::sign::canonical_bytes(&value)).expect("utf-8"),
    };
    let batch = StoredBatch {
        agent_id: "a".into(),
        key_id: "k".into(),
        timestamp_ms: 1,
        nonce: "n".into(),
        signature: "s".into(),
        canonical_sha256: "h".into(),
        session_ids: vec!["s1".into()],
        received_at_unix_ms: 1,
    };
    open(&dir)
        .insert_batch(batch, vec![result])
        .await
        .expect("insert");
    {
        // Make the file look like one written by a version 1 collector: no rollup rows.
        let connection = rusqlite::Connection::open(dir.path().join("lvt.db")).expect("raw open");
        connection
            .execute_batch("DELETE FROM sla_cells; PRAGMA user_version = 1;")
            .expect("downgrade");
    }
    let store = open(&dir);
    let cells = store.sla_cells(&SlaFilter::default()).await.expect("cells");
    assert_eq!(
        cells,
        vec![(CellKey::of(&report), CellSums::from_sessions([&report]))]
    );
}

#[test]
fn opening_in_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SqliteConfig::new(dir.path().join("missing").join("lvt.db"));
    assert!(SqliteStore::open(&config).is_err());
}
