//! The behavioural suite every [`Store`] backend must pass.
//!
//! It is library code (not `#[cfg(test)]`) so that each backend's tests, in this crate or
//! behind a feature later, call the same function. It panics on the first behaviour that
//! differs, like any test assertion, and expects an empty store.

use super::{ResultCursor, ResultFilter, Store, StoredBatch, StoredResult};

fn batch(
    agent_id: &str,
    nonce_byte: u8,
    session_ids: &[&str],
    received_at_unix_ms: i64,
) -> StoredBatch {
    StoredBatch {
        agent_id: agent_id.to_owned(),
        key_id: format!("{:016x}", agent_id.len()),
        timestamp_ms: received_at_unix_ms - 5,
        nonce: format!("{nonce_byte:02x}").repeat(16),
        signature: "c2lnbmF0dXJl".to_owned(),
        canonical_sha256: "ab".repeat(32),
        session_ids: session_ids.iter().map(|id| (*id).to_owned()).collect(),
        received_at_unix_ms,
    }
}

fn result(
    session_id: &str,
    uri: &str,
    address: Option<&str>,
    ended_at_unix_ms: i64,
) -> StoredResult {
    StoredResult {
        session_id: session_id.to_owned(),
        orchestrator_address: address.map(str::to_owned),
        orchestrator_uri: Some(uri.to_owned()),
        gpu: Some("RTX 4090".to_owned()),
        region: Some("eu".to_owned()),
        pipeline: "live-video-to-video".to_owned(),
        model_id: "noop".to_owned(),
        complexity: Some("low".to_owned()),
        outcome: "passed".to_owned(),
        started_at_unix_ms: ended_at_unix_ms - 30_000,
        ended_at_unix_ms,
        record_json: format!("{{\"session_id\":\"{session_id}\"}}"),
    }
}

/// Runs every behaviour check against `store`, which must start empty.
pub async fn suite(store: &dyn Store) {
    store.ping().await.expect("ping");
    assert_eq!(store.count_results().await.expect("count"), 0);
    inserts_are_idempotent(store).await;
    nonces_are_remembered_per_key(store).await;
    pages_walk_in_key_order(store).await;
    filters_select_results(store).await;
    batches_and_agents_read_back(store).await;
    retention_deletes_old_results(store).await;
}

async fn inserts_are_idempotent(store: &dyn Store) {
    let first = vec![
        result("s1", "https://a:8935", Some("0xaa"), 1_000),
        result("s2", "https://a:8935", Some("0xaa"), 2_000),
        result("s3", "https://b:8935", None, 3_000),
    ];
    let outcome = store
        .insert_batch(batch("agent-a", 1, &["s1", "s2", "s3"], 10_000), first)
        .await
        .expect("insert");
    assert_eq!((outcome.inserted, outcome.duplicates), (3, 0));

    // A retry of part of the batch with one new record stores only the new one, and a session
    // repeated within one batch counts once.
    let retry = vec![
        result("s2", "https://a:8935", Some("0xaa"), 2_000),
        result("s4", "https://b:8935", None, 4_000),
        result("s4", "https://b:8935", None, 4_000),
    ];
    let outcome = store
        .insert_batch(batch("agent-b", 2, &["s2", "s4", "s4"], 11_000), retry)
        .await
        .expect("insert");
    assert_eq!((outcome.inserted, outcome.duplicates), (1, 2));
    assert_eq!(store.count_results().await.expect("count"), 4);

    // A duplicate keeps the first stored copy and its provenance.
    let page = store
        .results_page(ResultFilter::default(), None, 10)
        .await
        .expect("page");
    let s2 = page
        .rows
        .iter()
        .find(|row| row.session_id == "s2")
        .expect("s2 stored");
    assert_eq!(s2.agent_id, "agent-a");
}

async fn nonces_are_remembered_per_key(store: &dyn Store) {
    let fresh =
        |key: &str, nonce: &str, at: i64| store.remember_nonce(key.into(), nonce.into(), at);
    assert!(fresh("k1", "n1", 100).await.expect("nonce"));
    assert!(
        !fresh("k1", "n1", 100).await.expect("nonce"),
        "a reused nonce is a replay"
    );
    assert!(
        fresh("k2", "n1", 100).await.expect("nonce"),
        "nonces are per key"
    );
    assert!(fresh("k1", "n2", 500).await.expect("nonce"));
    assert_eq!(store.prune_nonces(200).await.expect("prune"), 2);
    assert!(
        !fresh("k1", "n2", 500).await.expect("nonce"),
        "a young nonce is kept"
    );
    assert!(
        fresh("k1", "n1", 100).await.expect("nonce"),
        "a pruned nonce is forgotten"
    );
}

async fn pages_walk_in_key_order(store: &dyn Store) {
    // Two results share an end time so that the session id breaks the tie.
    store
        .insert_batch(
            batch("agent-a", 3, &["s0b", "s0a"], 12_000),
            vec![
                result("s0b", "https://c:8935", None, 2_000),
                result("s0a", "https://c:8935", None, 2_000),
            ],
        )
        .await
        .expect("insert");
    let mut cursor: Option<ResultCursor> = None;
    let mut seen = Vec::new();
    loop {
        let page = store
            .results_page(ResultFilter::default(), cursor.clone(), 2)
            .await
            .expect("page");
        assert!(page.rows.len() <= 2);
        seen.extend(page.rows.iter().map(|row| row.session_id.clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["s1", "s0a", "s0b", "s2", "s3", "s4"]);
    let all = store
        .results_page(ResultFilter::default(), None, 6)
        .await
        .expect("page");
    assert_eq!(all.rows.len(), 6);
    assert_eq!(
        all.next, None,
        "an exactly full last page has no next cursor"
    );
}

async fn filters_select_results(store: &dyn Store) {
    let ids = |filter: ResultFilter| async move {
        store
            .results_page(filter, None, 100)
            .await
            .expect("page")
            .rows
            .into_iter()
            .map(|row| row.session_id)
            .collect::<Vec<_>>()
    };
    let by_uri = ResultFilter {
        orchestrator: Some("https://b:8935".into()),
        ..ResultFilter::default()
    };
    assert_eq!(ids(by_uri).await, ["s3", "s4"]);
    let by_address = ResultFilter {
        orchestrator: Some("0xaa".into()),
        ..ResultFilter::default()
    };
    assert_eq!(ids(by_address).await, ["s1", "s2"]);
    let window = ResultFilter {
        since_unix_ms: Some(2_000),
        until_unix_ms: Some(4_000),
        ..ResultFilter::default()
    };
    assert_eq!(ids(window).await, ["s0a", "s0b", "s2", "s3"]);
}

async fn batches_and_agents_read_back(store: &dyn Store) {
    let page = store
        .results_page(ResultFilter::default(), None, 1)
        .await
        .expect("page");
    let row = &page.rows[0];
    assert_eq!(row.record_json, "{\"session_id\":\"s1\"}");
    let stored = store
        .batch(row.batch_id)
        .await
        .expect("batch")
        .expect("batch exists");
    assert_eq!(stored, batch("agent-a", 1, &["s1", "s2", "s3"], 10_000));
    assert_eq!(store.batch(-1).await.expect("batch"), None);

    let agents = store.agents().await.expect("agents");
    let summary: Vec<_> = agents
        .iter()
        .map(|a| (a.agent_id.as_str(), a.last_seen_unix_ms, a.result_count))
        .collect();
    assert_eq!(
        summary,
        [("agent-a", Some(12_000), 5), ("agent-b", Some(11_000), 1)]
    );
}

async fn retention_deletes_old_results(store: &dyn Store) {
    assert_eq!(store.delete_older_than(2_001).await.expect("delete"), 4);
    assert_eq!(store.count_results().await.expect("count"), 2);
    let page = store
        .results_page(ResultFilter::default(), None, 10)
        .await
        .expect("page");
    let ids: Vec<_> = page
        .rows
        .iter()
        .map(|row| row.session_id.as_str())
        .collect();
    assert_eq!(ids, ["s3", "s4"]);
    // Batches that still hold a result stay, so stored results remain verifiable.
    assert!(
        store
            .batch(page.rows[0].batch_id)
            .await
            .expect("batch")
            .is_some()
    );
}
