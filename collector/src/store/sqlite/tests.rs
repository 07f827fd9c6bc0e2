//! What only the SQLite backend has (a file that survives reopening, bulk loads); the shared
//! behavioural suites run in `collector/tests/store_suites.rs`.

use super::{SqliteConfig, SqliteStore};
use crate::sla::{CellKey, CellSums};
use crate::store::{SlaFilter, Store, StoredBatch, StoredResult};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&SqliteConfig::new(dir.path().join("lvt.db"))).expect("open store")
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
        sla_cells: None,
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
        sla_cells: None,
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

/// Random sessions for the rollup equivalence test: several pipelines, models, orchestrators,
/// regions, complexities, both load kinds, every outcome, and network sessions served by one to
/// three orchestrators.
fn random_reports(seed: u64, count: usize) -> Vec<lvt_schema::SessionReport> {
    use lvt_schema::{
        Complexity, Failure, FailureClass, FpsSummary, Gpu, LatencySummary, OrchestratorRef,
        Outcome, PromptRef, ServedBy, SessionReport, TargetMode,
    };
    use rand::{Rng as _, SeedableRng as _};

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let orchestrator = |index: u32| OrchestratorRef {
        address: Some(format!("0xAB{index:02}")),
        uri: format!("https://o{index}:8935"),
        cert_sha256: None,
        cert_trust: None,
        address_check: Some(lvt_schema::AddressCheck::Verified),
    };
    let latency = |p50: f64| LatencySummary {
        count: 10,
        p50,
        p90: p50,
        p95: p50,
        p99: p50,
        max: p50,
        mean: p50,
        min: p50,
    };
    let fps = |mean: f64| FpsSummary {
        mean,
        p5: mean,
        p50: mean,
        windows: 10,
    };
    let start_unix_ms = 1_795_788_000_000_i64;
    (0..count)
        .map(|index| {
            let started_at_unix_ms = start_unix_ms + rng.random_range(0..12 * 24 * 3_600_000_i64);
            let model = ["streamdiffusion", "comfyui"][rng.random_range(0..2)];
            let mut report = SessionReport::new(format!("r{index}"), model, started_at_unix_ms);
            report.ended_at_unix_ms = started_at_unix_ms + rng.random_range(0..600_000);
            report.pipeline = ["live-video-to-video", "other"][rng.random_range(0..2)].into();
            report.orchestrator = Some(orchestrator(rng.random_range(0..5)));
            report.gpu = Some(Gpu {
                name: ["RTX 4090", "A100"][rng.random_range(0..2)].into(),
                memory_bytes: None,
            });
            report.region = Some(["eu-west", "us-east"][rng.random_range(0..2)].into());
            report.prompt = Some(PromptRef {
                id: None,
                complexity: Some(
                    [Complexity::Low, Complexity::Medium, Complexity::High][rng.random_range(0..3)],
                ),
                params_hash: "00".repeat(16),
            });
            report.is_test_load = rng.random_bool(0.7);
            report.outcome = [
                Outcome::Passed,
                Outcome::Passed,
                Outcome::Failed,
                Outcome::UnscoredBusy,
                Outcome::UnscoredIndeterminate,
            ][rng.random_range(0..5)];
            if report.outcome == Outcome::Failed {
                report.failure = Some(Failure {
                    class: [FailureClass::OutputTimeout, FailureClass::Capacity]
                        [rng.random_range(0..2)],
                    detail: "x".into(),
                });
            }
            if rng.random_bool(0.8) {
                report.metrics.startup_ms = Some(rng.random_range(100.0..5000.0));
                report.metrics.e2e_latency_ms = Some(latency(rng.random_range(50.0..900.0)));
                report.metrics.output_fps = Some(fps(rng.random_range(0.0..30.0)));
                report.metrics.fps_jitter = Some(rng.random_range(0.0..0.5));
            }
            if rng.random_bool(0.3) {
                report.mode = TargetMode::Network;
                let shares = rng.random_range(1..4_i64);
                let span_ms = (report.ended_at_unix_ms - started_at_unix_ms) / shares;
                report.served_by = (0..shares)
                    .map(|share| {
                        let from_unix_ms = started_at_unix_ms + share * span_ms;
                        let last = share == shares - 1;
                        ServedBy {
                            orchestrator: orchestrator(rng.random_range(0..5)),
                            gpu: None,
                            from_unix_ms,
                            to_unix_ms: from_unix_ms + span_ms,
                            startup_ms: rng.random_bool(0.8).then(|| rng.random_range(50.0..900.0)),
                            frames_received: rng.random_range(0..100),
                            e2e_latency_ms: Some(latency(rng.random_range(50.0..900.0))),
                            output_fps: Some(fps(rng.random_range(0.0..30.0))),
                            stalls: lvt_schema::StallSummary::default(),
                            ended_by: (!last).then(|| "cause".to_owned()),
                            failure: (!last && rng.random_bool(0.5))
                                .then_some(FailureClass::OutputTimeout),
                        }
                    })
                    .collect();
            }
            report
        })
        .collect()
}

fn stored_result(report: &lvt_schema::SessionReport) -> StoredResult {
    StoredResult {
        session_id: report.session_id.clone(),
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
        sla_cells: None,
        record_json: serde_json::to_string(report).expect("a report serializes"),
    }
}

/// The fast paths (binary cell sums, the precomputed cohort rollup) must give exactly what the
/// slow recomputation gives: the cells recomputed from the raw records, and the cohort of every
/// bucket merged from every cell of the fleet.
/// A batch of `reports` under `nonce`, with their stored forms.
fn batch_of(
    nonce: &str,
    reports: &[&lvt_schema::SessionReport],
) -> (StoredBatch, Vec<StoredResult>) {
    let batch = StoredBatch {
        agent_id: "a".into(),
        key_id: "k".into(),
        timestamp_ms: 1,
        nonce: nonce.into(),
        signature: "s".into(),
        canonical_sha256: "h".into(),
        session_ids: reports.iter().map(|r| r.session_id.clone()).collect(),
        received_at_unix_ms: 1,
    };
    (batch, reports.iter().map(|r| stored_result(r)).collect())
}

#[tokio::test]
async fn rollups_equal_the_slow_recomputation_on_random_data() {
    use std::collections::{BTreeMap, BTreeSet};

    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let reports = random_reports(7, 600);
    for (index, chunk) in reports.chunks(37).enumerate() {
        let records: Vec<&lvt_schema::SessionReport> = chunk.iter().collect();
        let (batch, results) = batch_of(&format!("n{index}"), &records);
        store
            .insert_batch(batch.clone(), results.clone())
            .await
            .expect("insert");
        // A retried batch must add nothing to either rollup.
        let again = store.insert_batch(batch, results).await.expect("retry");
        assert_eq!(again.inserted, 0);
    }

    let mut slow: BTreeMap<CellKey, CellSums> = BTreeMap::new();
    for report in &reports {
        crate::sla::add_session(&mut slow, report);
    }
    let cells = store.sla_cells(&SlaFilter::default()).await.expect("cells");
    assert_eq!(cells, slow.clone().into_iter().collect::<Vec<_>>());

    let mut filters = vec![SlaFilter::default()];
    let hour0 = 1_795_788_000_i64;
    for pipeline in ["live-video-to-video", "other"] {
        for model in ["streamdiffusion", "comfyui"] {
            for test_load in [None, Some(true), Some(false)] {
                filters.push(SlaFilter {
                    start_unix_s: Some(hour0 + 3 * 3600),
                    end_unix_s: Some(hour0 + 9 * 24 * 3600),
                    pipeline: Some(pipeline.into()),
                    model_id: Some(model.into()),
                    test_load,
                    ..SlaFilter::default()
                });
            }
        }
    }
    for filter in &filters {
        let fast = store.sla_cohort_cells(filter).await.expect("cohort");
        let slow =
            crate::store::roll_up_cohort_cells(store.sla_cells(filter).await.expect("cells"));
        assert_eq!(fast, slow, "{filter:?}");
    }

    // The leaderboard's per-orchestrator fold equals grouping every cell by hand, with and
    // without filters.
    filters.push(SlaFilter {
        start_unix_s: Some(hour0 + 5 * 3600),
        end_unix_s: Some(hour0 + 2 * 24 * 3600),
        test_load: Some(true),
        ..SlaFilter::default()
    });
    filters.push(SlaFilter {
        region: Some("eu-west".into()),
        complexity: Some("high".into()),
        ..SlaFilter::default()
    });
    for filter in &filters {
        let mut slow: BTreeMap<String, crate::store::OrchestratorSums> = BTreeMap::new();
        for (key, mut sums) in store.sla_cells(filter).await.expect("cells") {
            sums.startup_ms_buckets = Default::default();
            sums.e2e_p50_ms_buckets = Default::default();
            sums.output_fps_buckets = Default::default();
            let group = slow.entry(key.orchestrator.clone()).or_default();
            group.orchestrator = key.orchestrator.clone();
            group.sums.merge(&sums);
            group
                .cohorts
                .insert((key.pipeline.clone(), key.model_id.clone(), key.test_load));
            if !key.region.is_empty() {
                group.regions.insert(key.region.clone());
            }
        }
        let fast = store
            .sla_orchestrator_sums(filter)
            .await
            .expect("orchestrator sums");
        assert_eq!(fast, slow.into_values().collect::<Vec<_>>(), "{filter:?}");
    }

    // Cohorts of buckets merged from the rollup equal those merged from every cell.
    let mut from_cells = crate::sla::aggregate::CohortCells::default();
    let mut from_rollup = crate::sla::aggregate::CohortCells::default();
    for pipeline in ["live-video-to-video", "other"] {
        for model in ["streamdiffusion", "comfyui"] {
            let filter = SlaFilter {
                pipeline: Some(pipeline.into()),
                model_id: Some(model.into()),
                ..SlaFilter::default()
            };
            let all = store.sla_cells(&filter).await.expect("cells");
            from_cells.insert(pipeline.into(), model.into(), all);
            let rolled = store.sla_cohort_cells(&filter).await.expect("cohort");
            from_rollup.insert(pipeline.into(), model.into(), rolled);
        }
    }
    for day in 0..12 {
        let cohorts: BTreeSet<(String, String, bool)> = [
            ("live-video-to-video".into(), "streamdiffusion".into(), true),
            ("other".into(), "comfyui".into(), day % 2 == 0),
        ]
        .into();
        let bucket = hour0 + day * 24 * 3600 + 5 * 3600;
        assert_eq!(
            from_cells.cohort(bucket, &cohorts),
            from_rollup.cohort(bucket, &cohorts)
        );
    }

    // A database from before the cohort rollup builds it on opening, equal to the live one.
    let live = store
        .sla_cohort_cells(&SlaFilter::default())
        .await
        .expect("cohort");
    drop(store);
    {
        let connection = rusqlite::Connection::open(dir.path().join("lvt.db")).expect("raw open");
        connection
            .execute_batch("DELETE FROM sla_cohort_hours; PRAGMA user_version = 3;")
            .expect("downgrade");
    }
    let store = open(&dir);
    assert_eq!(
        store
            .sla_cohort_cells(&SlaFilter::default())
            .await
            .expect("cohort"),
        live
    );
}

/// Cells an older collector stored as JSON text still read, and merge with new sums.
#[tokio::test]
async fn json_cells_of_older_collectors_still_read_and_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let reports = random_reports(11, 2);
    let mut first = reports[0].clone();
    first.mode = lvt_schema::TargetMode::Direct;
    first.served_by.clear();
    let key = CellKey::of(&first);
    let old = CellSums::from_sessions([&first]);
    {
        let connection = rusqlite::Connection::open(dir.path().join("lvt.db")).expect("raw open");
        connection
            .execute(
                "INSERT INTO sla_cells VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    key.hour_unix_s,
                    key.orchestrator,
                    key.pipeline,
                    key.model_id,
                    key.gpu,
                    key.region,
                    key.complexity,
                    key.test_load,
                    serde_json::to_string(&old).expect("json"),
                ],
            )
            .expect("legacy cell");
    }
    assert_eq!(
        store.sla_cells(&SlaFilter::default()).await.expect("cells"),
        vec![(key.clone(), old.clone())]
    );
    let mut second = first.clone();
    second.session_id = "second".into();
    let batch = StoredBatch {
        agent_id: "a".into(),
        key_id: "k".into(),
        timestamp_ms: 1,
        nonce: "n".into(),
        signature: "s".into(),
        canonical_sha256: "h".into(),
        session_ids: vec!["second".into()],
        received_at_unix_ms: 1,
    };
    store
        .insert_batch(batch, vec![stored_result(&second)])
        .await
        .expect("insert");
    let mut merged = old;
    merged.add(&second);
    assert_eq!(
        store.sla_cells(&SlaFilter::default()).await.expect("cells"),
        vec![(key, merged)]
    );
}

/// Concurrent batches share commits (group commit) yet each gets its own outcome: every record is
/// stored once, a record sent in two concurrent batches is a duplicate in exactly one of them,
/// and the rollup counts each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_are_committed_together_and_answered_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(open(&dir));
    let reports = random_reports(3, 120);
    let mut tasks = Vec::new();
    for (index, chunk) in reports.chunks(10).enumerate() {
        // Each batch also repeats the first record of the next chunk, so neighbours overlap.
        let mut records: Vec<&lvt_schema::SessionReport> = chunk.iter().collect();
        if let Some(next) = reports.get((index + 1) * 10) {
            records.push(next);
        }
        let (batch, results) = batch_of(&format!("n{index}"), &records);
        let store = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.insert_batch(batch, results).await
        }));
    }
    let mut inserted = 0;
    let mut duplicates = 0;
    for task in tasks {
        let outcome = task.await.expect("task").expect("insert");
        inserted += outcome.inserted;
        duplicates += outcome.duplicates;
    }
    assert_eq!(inserted, 120);
    assert_eq!(duplicates, 11);
    assert_eq!(store.count_results().await.expect("count"), 120);
    let sessions: u64 = store
        .sla_cells(&SlaFilter::default())
        .await
        .expect("cells")
        .iter()
        .map(|(_, sums)| sums.sessions)
        .sum();
    let shares: usize = reports
        .iter()
        .map(|report| crate::sla::contributions(report).len())
        .sum();
    assert_eq!(sessions, shares as u64);
}

/// A thread that queues a batch while another holds the writer leaves it to that holder; no
/// batch may be left in the queue with nobody to commit it. Many small batches race with each
/// other and with writer work that is not a batch (nonce pruning, retention): every insert must
/// be answered, in bounded time, and every record stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_racing_other_writer_work_are_all_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(open(&dir));
    let reports = random_reports(11, 600);
    let mut tasks = Vec::new();
    for (index, chunk) in reports.chunks(3).enumerate() {
        let records: Vec<&lvt_schema::SessionReport> = chunk.iter().collect();
        let (batch, results) = batch_of(&format!("n{index}"), &records);
        let inserting = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            inserting
                .insert_batch(batch, results)
                .await
                .map(|o| o.inserted)
        }));
        if index % 10 == 0 {
            let pruning = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                pruning.prune_nonces(0).await.map(|_| 0)
            }));
            let deleting = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                deleting.delete_older_than(i64::MIN).await.map(|_| 0)
            }));
        }
    }
    let all = async {
        let mut inserted = 0;
        for task in tasks {
            inserted += task.await.expect("task").expect("store call");
        }
        inserted
    };
    let inserted = tokio::time::timeout(std::time::Duration::from_secs(120), all)
        .await
        .expect("every batch is answered (none is left queued)");
    assert_eq!(inserted, 600);
    assert_eq!(store.count_results().await.expect("count"), 600);
}

/// The case the race above can only hit by chance: a batch queued while other writer work holds
/// the writer finds it busy and leaves; that work must commit the batch once it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_queued_behind_other_writer_work_is_committed_by_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(open(&dir));
    let (entered, in_writer) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = tokio::spawn(store.with_writer(move |_connection| {
        let _ = entered.send(());
        let _ = released.recv();
        Ok(())
    }));
    tokio::task::spawn_blocking(move || in_writer.recv())
        .await
        .expect("join")
        .expect("the writer is held");
    let reports = random_reports(5, 3);
    let records: Vec<&lvt_schema::SessionReport> = reports.iter().collect();
    let (batch, results) = batch_of("n", &records);
    let inserting = std::sync::Arc::clone(&store);
    let insert = tokio::spawn(async move { inserting.insert_batch(batch, results).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!insert.is_finished(), "the writer is still held");
    release.send(()).expect("release");
    holder.await.expect("join").expect("writer work");
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(30), insert)
        .await
        .expect("the queued batch was committed after the writer was let go")
        .expect("join")
        .expect("insert");
    assert_eq!(outcome.inserted, 3);
}

/// The data version the SLA answer cache is keyed by moves with every committed write, whoever
/// makes it, and stays put between writes.
#[tokio::test]
async fn the_sla_generation_changes_with_every_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let first = store.sla_generation().await.expect("generation");
    assert!(first.is_some(), "SQLite can tell");
    assert_eq!(store.sla_generation().await.expect("generation"), first);
    let report = &random_reports(5, 1)[0];
    let batch = StoredBatch {
        agent_id: "a".into(),
        key_id: "k".into(),
        timestamp_ms: 1,
        nonce: "n".into(),
        signature: "s".into(),
        canonical_sha256: "h".into(),
        session_ids: vec![report.session_id.clone()],
        received_at_unix_ms: 1,
    };
    store
        .insert_batch(batch, vec![stored_result(report)])
        .await
        .expect("insert");
    let second = store.sla_generation().await.expect("generation");
    assert_ne!(second, first);
    // A write by another connection (a bulk load) moves it too.
    super::bulk::load_cells(
        &SqliteConfig::new(dir.path().join("lvt.db")),
        crate::sla::contributions(report),
    )
    .expect("load");
    assert_ne!(store.sla_generation().await.expect("generation"), second);
}
