//! The behavioural suites every collector [`Store`] backend must pass: [`suite`] (results,
//! batches, nonces, heartbeats, then [`events_suite`]), [`sla_suite`] (the hourly SLA cells and
//! their rollups) and [`events_suite`] (go-livepeer envelopes).
//!
//! Each backend's tests (`collector/tests/store_suites.rs`) call the same functions, so a new
//! backend is correct when they pass. They panic on the first behaviour that differs, like any
//! test assertion, and expect an empty store.

use lvt_schema::{
    Complexity, FpsSummary, Gpu, LatencySummary, OrchestratorRef, Outcome, PromptRef, SessionReport,
};

use lvt_collector::sla::{CellKey, CellSums};
use lvt_collector::store::{
    EventBatch, EventFilter, ResultCursor, ResultFilter, SlaFilter, Store, StoreError, StoredBatch,
    StoredEvent, StoredResult,
};

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
        sla_cells: None,
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
    heartbeats_keep_the_latest_per_agent(store).await;
    events_suite(store).await;
}

async fn heartbeats_keep_the_latest_per_agent(store: &dyn Store) {
    assert!(store.heartbeats().await.expect("heartbeats").is_empty());
    let put = |agent: &str, at: i64, text: &str| {
        store.put_heartbeat(agent.to_owned(), at, text.to_owned())
    };
    put("agent-b", 5_000, "{\"n\":1}").await.expect("put");
    put("agent-a", 5_000, "{\"n\":1}").await.expect("put");
    put("agent-a", 6_000, "{\"n\":2}").await.expect("put");
    // One received earlier than the kept one (a slow request) does not replace it.
    put("agent-a", 5_500, "{\"n\":0}").await.expect("put");
    let beats = store.heartbeats().await.expect("heartbeats");
    let summary: Vec<_> = beats
        .iter()
        .map(|b| {
            (
                b.agent_id.as_str(),
                b.received_at_unix_ms,
                b.heartbeat_json.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("agent-a", 6_000, "{\"n\":2}"),
            ("agent-b", 5_000, "{\"n\":1}")
        ]
    );
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

/// A session of orchestrator `address` in region `region`, started at `started_at_unix_ms`, with
/// `startup_ms` as its startup latency (`None`: a startup failure).
fn sla_report(
    session_id: &str,
    address: &str,
    region: &str,
    started_at_unix_ms: i64,
    startup_ms: Option<f64>,
) -> SessionReport {
    let mut report = SessionReport::new(session_id, "noop", started_at_unix_ms);
    report.ended_at_unix_ms = started_at_unix_ms + 30_000;
    report.orchestrator = Some(OrchestratorRef {
        // Mixed case on purpose: one orchestrator is one cell whatever case its address has.
        address: Some(address.to_owned()),
        uri: format!("https://{address}:8935"),
        cert_sha256: None,
        cert_trust: None,
        address_check: Some(lvt_schema::AddressCheck::Verified),
    });
    report.gpu = Some(Gpu {
        name: "RTX 4090".to_owned(),
        memory_bytes: None,
    });
    report.region = Some(region.to_owned());
    report.prompt = Some(PromptRef {
        id: None,
        complexity: Some(Complexity::Medium),
        params_hash: "00".repeat(16),
    });
    report.outcome = if startup_ms.is_some() {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    report.metrics.startup_ms = startup_ms;
    if let Some(startup_ms) = startup_ms {
        report.metrics.e2e_latency_ms = Some(LatencySummary {
            count: 100,
            p50: startup_ms / 2.0,
            p90: startup_ms,
            p95: startup_ms,
            p99: startup_ms,
            max: startup_ms,
            mean: startup_ms / 2.0,
            min: 1.0,
        });
        report.metrics.output_fps = Some(FpsSummary {
            mean: 24.5,
            p5: 20.0,
            p50: 25.0,
            windows: 30,
        });
    }
    report
}

fn stored(report: &SessionReport) -> StoredResult {
    let value = serde_json::to_value(report).expect("a report serializes");
    StoredResult {
        session_id: report.session_id.clone(),
        orchestrator_address: report.orchestrator.as_ref().and_then(|o| o.address.clone()),
        orchestrator_uri: report.orchestrator.as_ref().map(|o| o.uri.clone()),
        gpu: report.gpu.as_ref().map(|gpu| gpu.name.clone()),
        region: report.region.clone(),
        pipeline: report.pipeline.clone(),
        model_id: report.model_id.clone(),
        complexity: Some("medium".to_owned()),
        outcome: match report.outcome {
            Outcome::Passed => "passed",
            _ => "failed",
        }
        .to_owned(),
        started_at_unix_ms: report.started_at_unix_ms,
        ended_at_unix_ms: report.ended_at_unix_ms,
        sla_cells: None,
        record_json: String::from_utf8(lvt_schema::sign::canonical_bytes(&value))
            .expect("canonical JSON is UTF-8"),
    }
}

/// The cells of `reports` computed directly from the records: what a rollup must equal.
fn expected_cells(reports: &[&SessionReport]) -> Vec<(CellKey, CellSums)> {
    let mut cells: std::collections::BTreeMap<CellKey, CellSums> = Default::default();
    for report in reports {
        cells.entry(CellKey::of(report)).or_default().add(report);
    }
    cells.into_iter().collect()
}

/// The SLA rollup checks every backend with [`Store::sla_cells`] must pass, on an empty store:
/// the cells equal [`CellSums`] of the distinct stored records, whatever duplicates arrive, and
/// filters select cells.
pub async fn sla_suite(store: &dyn Store) {
    const HOUR_MS: i64 = 3_600_000;
    let t0 = 1_764_000_000_000 - 1_764_000_000_000 % HOUR_MS;
    let a1 = sla_report("r1", "0xAAA", "eu", t0 + 10, Some(800.0));
    let a2 = sla_report("r2", "0xaaa", "eu", t0 + 20, None);
    let a3 = sla_report("r3", "0xaaa", "eu", t0 + HOUR_MS + 5, Some(900.0));
    let b1 = sla_report("r4", "0xbbb", "us", t0 + 30, Some(1500.0));
    let b2 = sla_report("r5", "0xbbb", "us", t0 + 40, Some(1700.0));

    let first = [&a1, &a2, &b1];
    let outcome = store
        .insert_batch(
            batch("agent-a", 1, &["r1", "r2", "r4"], t0 + 60_000),
            first.iter().map(|report| stored(report)).collect(),
        )
        .await
        .expect("insert");
    assert_eq!(outcome.inserted, 3);
    let everything = SlaFilter::default();
    assert_eq!(
        store.sla_cells(&everything).await.expect("cells"),
        expected_cells(&first)
    );

    // A retried batch repeats r1 and r4 beside two new records; only the new ones add up.
    let retry = [&a1, &b1, &a3, &b2, &b2];
    let outcome = store
        .insert_batch(
            batch("agent-a", 2, &["r1", "r4", "r3", "r5", "r5"], t0 + 90_000),
            retry.iter().map(|report| stored(report)).collect(),
        )
        .await
        .expect("insert");
    assert_eq!((outcome.inserted, outcome.duplicates), (2, 3));
    let distinct = [&a1, &a2, &a3, &b1, &b2];
    let cells = store.sla_cells(&everything).await.expect("cells");
    assert_eq!(cells, expected_cells(&distinct));
    assert_eq!(
        cells.len(),
        3,
        "0xAAA and 0xaaa share a cell; a new hour is a new cell"
    );

    let keys = |filter: SlaFilter| async move {
        store
            .sla_cells(&filter)
            .await
            .expect("cells")
            .into_iter()
            .map(|(key, sums)| (key.orchestrator, key.hour_unix_s, sums.sessions))
            .collect::<Vec<_>>()
    };
    let t0_s = t0 / 1000;
    let first_hour = SlaFilter {
        start_unix_s: Some(t0_s),
        end_unix_s: Some(t0_s + 3600),
        ..SlaFilter::default()
    };
    assert_eq!(
        keys(first_hour).await,
        [("0xaaa".to_owned(), t0_s, 2), ("0xbbb".to_owned(), t0_s, 2)]
    );
    let by_orchestrator = SlaFilter {
        orchestrator: Some("0xaaa".into()),
        region: Some("eu".into()),
        pipeline: Some("live-video-to-video".into()),
        model_id: Some("noop".into()),
        gpu: Some("RTX 4090".into()),
        complexity: Some("medium".into()),
        test_load: Some(true),
        ..SlaFilter::default()
    };
    assert_eq!(
        keys(by_orchestrator).await,
        [
            ("0xaaa".to_owned(), t0_s, 2),
            ("0xaaa".to_owned(), t0_s + 3600, 1)
        ]
    );
    let organic = SlaFilter {
        test_load: Some(false),
        ..SlaFilter::default()
    };
    assert!(keys(organic).await.is_empty());
    let other_region = SlaFilter {
        region: Some("ap".into()),
        ..SlaFilter::default()
    };
    assert!(keys(other_region).await.is_empty());

    // The leaderboard's fold: both hours of 0xaaa merged, each orchestrator with its region and
    // cohort.
    let folded: Vec<_> = store
        .sla_orchestrator_sums(&everything)
        .await
        .expect("orchestrator sums")
        .into_iter()
        .map(|group| {
            (
                group.orchestrator,
                group.sums.sessions,
                group.regions.into_iter().collect::<Vec<_>>(),
                group.cohorts.len(),
            )
        })
        .collect();
    assert_eq!(
        folded,
        [
            ("0xaaa".to_owned(), 3, vec!["eu".to_owned()], 1),
            ("0xbbb".to_owned(), 2, vec!["us".to_owned()], 1)
        ]
    );

    // Retention drops the cells whose whole hour is past the cutoff, with their records.
    store.delete_older_than(t0 + HOUR_MS).await.expect("delete");
    assert_eq!(
        keys(SlaFilter::default()).await,
        [("0xaaa".to_owned(), t0_s + 3600, 1)]
    );
}

fn event_batch(nonce_byte: u8) -> EventBatch {
    EventBatch {
        agent_id: "gateway-agent".to_owned(),
        key_id: "00".repeat(8),
        timestamp_ms: 1_000,
        nonce: format!("{nonce_byte:02x}").repeat(16),
        signature: "c2lnbmF0dXJl".to_owned(),
        canonical_sha256: "cd".repeat(32),
        received_at_unix_ms: 1_005,
    }
}

fn event(id: &str, family: &str, aside_reason: Option<&str>) -> StoredEvent {
    StoredEvent {
        id: id.to_owned(),
        family: family.to_owned(),
        timestamp_ms: Some(1_000),
        gateway: "0xgateway".to_owned(),
        envelope_json: format!("{{\"id\":\"{id}\",\"type\":\"{family}\"}}"),
        aside_reason: aside_reason.map(str::to_owned),
    }
}

/// The event section of [`suite`]: idempotent inserts across both places, kept-aside events
/// apart, keyset pages by family, and retention by envelope timestamp. Every backend must store
/// events (the collector's event ingest needs them): one that answers
/// [`StoreError::Unsupported`] fails the suite instead of passing it without the section.
pub async fn events_suite(store: &dyn Store) {
    let first = vec![
        event("e1", "stream_trace", None),
        event("e2", "ai_stream_status", None),
        event("e3", "mystery_family", Some("unknown family")),
        event("e4", "stream_trace", None),
        event("e1", "stream_trace", None),
    ];
    let outcome = match store.insert_events(event_batch(1), first).await {
        Err(StoreError::Unsupported(what)) => panic!(
            "the store answered Unsupported for {what}: every backend must store gateway events"
        ),
        other => other.expect("insert events"),
    };
    assert_eq!(outcome.stored_total(), 3);
    assert_eq!(outcome.stored.get("stream_trace"), Some(&2));
    assert_eq!(outcome.kept_aside.get("mystery_family"), Some(&1));
    assert_eq!(
        outcome.duplicates, 1,
        "an id repeated within a batch counts once"
    );

    // A retry stores nothing twice, in either table, even when the retried copy would now land
    // in the other table.
    let retry = vec![
        event("e2", "ai_stream_status", None),
        event("e3", "mystery_family", None),
        event("e5", "ai_stream_events", Some("wrong shape")),
    ];
    let outcome = store
        .insert_events(event_batch(2), retry)
        .await
        .expect("retry");
    assert_eq!(
        (
            outcome.stored_total(),
            outcome.kept_aside_total(),
            outcome.duplicates
        ),
        (0, 1, 2)
    );

    // Pages walk in arrival order and stop with no cursor.
    let all = EventFilter::default();
    let first_page = store.events_page(all.clone(), None, 2).await.expect("page");
    let ids: Vec<&str> = first_page
        .rows
        .iter()
        .map(|r| r.event.id.as_str())
        .collect();
    assert_eq!(ids, ["e1", "e2"]);
    let after = first_page.next_after_seq.expect("more pages");
    let second = store.events_page(all, Some(after), 2).await.expect("page");
    let ids: Vec<&str> = second.rows.iter().map(|r| r.event.id.as_str()).collect();
    assert_eq!(ids, ["e4"]);
    assert_eq!(second.next_after_seq, None);
    assert!(second.rows.iter().all(|r| r.event.aside_reason.is_none()));
    assert_eq!(
        second.rows[0].event.envelope_json,
        event("e4", "stream_trace", None).envelope_json
    );

    let traces = EventFilter {
        family: Some("stream_trace".to_owned()),
        kept_aside: false,
    };
    let page = store.events_page(traces, None, 10).await.expect("page");
    let ids: Vec<&str> = page.rows.iter().map(|r| r.event.id.as_str()).collect();
    assert_eq!(ids, ["e1", "e4"]);

    let aside = EventFilter {
        family: None,
        kept_aside: true,
    };
    let page = store.events_page(aside, None, 10).await.expect("page");
    let kept: Vec<(&str, Option<&str>)> = page
        .rows
        .iter()
        .map(|r| (r.event.id.as_str(), r.event.aside_reason.as_deref()))
        .collect();
    assert_eq!(
        kept,
        [("e3", Some("unknown family")), ("e5", Some("wrong shape"))]
    );
    assert_ne!(page.rows[0].batch_id, page.rows[1].batch_id);

    // Where an organic replay starts: the first usable event at or after a timestamp (every
    // event here is timestamped 1 000).
    assert_eq!(
        store.first_event_seq_since(1_000).await.expect("first seq"),
        Some(first_page.rows[0].seq)
    );
    assert_eq!(
        store
            .first_event_seq_since(i64::MIN)
            .await
            .expect("first seq"),
        Some(first_page.rows[0].seq)
    );
    assert_eq!(
        store.first_event_seq_since(1_001).await.expect("first seq"),
        None
    );

    events_retention(store).await;
}

/// Retention of events by envelope timestamp, falling back to the batch's arrival time. It runs
/// on the events of [`events_suite`] (all timestamped 1 000) plus older ones it adds, and deletes
/// only the older ones, so the store ends with the events the section stored before.
async fn events_retention(store: &dyn Store) {
    let timed = |id: &str, at: Option<i64>, aside: Option<&str>| StoredEvent {
        timestamp_ms: at,
        ..event(id, "stream_trace", aside)
    };
    let mut early = event_batch(3);
    early.received_at_unix_ms = 50;
    let old = vec![
        timed("r1", Some(100), None),
        // No numeric timestamp: the batch's arrival (50) decides.
        timed("r2", None, None),
        timed("r3", Some(499), Some("wrong shape")),
        // Exactly at the cutoff is kept: the cutoff is exclusive, as for results.
        timed("r4", Some(500), Some("wrong shape")),
    ];
    let outcome = store.insert_events(early, old).await.expect("insert");
    assert_eq!((outcome.stored_total(), outcome.kept_aside_total()), (2, 2));
    let mut late = event_batch(4);
    late.received_at_unix_ms = 600;
    let outcome = store
        .insert_events(late, vec![timed("r5", None, None)])
        .await
        .expect("insert");
    assert_eq!(outcome.stored_total(), 1);

    let deleted = store
        .delete_events_older_than(500)
        .await
        .expect("delete events");
    assert_eq!(deleted, 3, "r1, r2 and r3 are older than the cutoff");
    let ids = |kept_aside: bool| async move {
        let filter = EventFilter {
            family: None,
            kept_aside,
        };
        store
            .events_page(filter, None, 100)
            .await
            .expect("page")
            .rows
            .into_iter()
            .map(|row| row.event.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(false).await, ["e1", "e2", "e4", "r5"]);
    assert_eq!(ids(true).await, ["e3", "e5", "r4"]);
    // A second sweep with the same cutoff finds nothing left to delete.
    assert_eq!(
        store
            .delete_events_older_than(500)
            .await
            .expect("delete events"),
        0
    );

    // r5 goes by its batch's arrival (600), not by the time of the sweep; r4 goes too.
    assert_eq!(
        store
            .delete_events_older_than(601)
            .await
            .expect("delete events"),
        2
    );
    assert_eq!(ids(false).await, ["e1", "e2", "e4"]);
    assert_eq!(ids(true).await, ["e3", "e5"]);
}
