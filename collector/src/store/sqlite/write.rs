//! The SQLite write path: result batches queued and committed together by whichever thread
//! holds the writer (group commit), the SLA cell and cohort rollups updated in the same
//! transactions as the records they sum, and the insertion of go-livepeer event batches.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use lvt_schema::SessionReport;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::nonces::NonceLog;
use super::read::decode_stored;
use super::record_codec;
use super::store::lock;
use crate::sla::{CellKey, CellSums, codec};
use crate::store::{
    EventBatch, EventInsertOutcome, InsertOutcome, StoreError, StoredBatch, StoredEvent,
    StoredResult,
};

/// A result batch waiting to be committed, and where its outcome goes.
pub(super) struct PendingInsert {
    pub(super) batch: StoredBatch,
    pub(super) results: Vec<PreparedResult>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// A result in the form the writer stores it, prepared before it reaches the writer (on the
/// caller's blocking thread, so concurrent batches prepare in parallel while the one writer
/// only inserts).
pub(super) struct PreparedResult {
    pub(super) result: StoredResult,
    /// `record_json` compressed by [`record_codec::encode`].
    pub(super) record_blob: Vec<u8>,
    /// What the record adds to the SLA rollup when it is newly stored.
    pub(super) cells: Vec<(CellKey, CellSums)>,
}

impl PreparedResult {
    pub(super) fn of(mut result: StoredResult) -> PreparedResult {
        let cells = result.sla_cells.take().unwrap_or_else(|| {
            let mut cells = BTreeMap::new();
            add_to_cells(&mut cells, &result.session_id, &result.record_json);
            cells.into_iter().collect()
        });
        PreparedResult {
            record_blob: record_codec::encode(&result.record_json),
            result,
            cells,
        }
    }
}

/// Commits what is queued in `pending`, unless another thread holds the writer: that thread
/// commits it instead (group commit without a convoy).
///
/// A thread that has queued a batch calls this. If the writer is free it takes it and commits
/// every queued batch, group after group, until the queue is empty; if it is busy the thread
/// leaves at once, because the holder takes the queue again before it lets the writer go. After
/// letting it go the holder looks at the queue once more and starts over if a batch came in
/// between its last look and the release: so every queued batch is taken by some thread, and
/// none waits on the lock only to find its batch already committed by another.
pub(super) fn drain_pending(
    writer: &Mutex<Connection>,
    pending: &Mutex<Vec<PendingInsert>>,
    nonces: &NonceLog,
) {
    loop {
        {
            let mut connection = match writer.try_lock() {
                Ok(connection) => connection,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            loop {
                let jobs = std::mem::take(&mut *lock(pending));
                if jobs.is_empty() {
                    break;
                }
                insert_group(&mut connection, nonces, jobs);
            }
        }
        if lock(pending).is_empty() {
            return;
        }
    }
}

/// Commits every pending batch in one transaction, each inside a savepoint of its own so that
/// one failing batch leaves the others stored, and answers each batch only after the commit (so
/// an acknowledged batch is durable). Concurrent batches thus share one synced commit instead of
/// paying one each, and the SLA rollup is updated once for the whole group (one upsert per
/// cell the group touches, not one per batch), in the same transaction.
pub(super) fn insert_group(
    connection: &mut Connection,
    nonces: &NonceLog,
    jobs: Vec<PendingInsert>,
) {
    let (mut transaction, saved_nonces) = match connection
        .transaction()
        .map_err(StoreError::from)
        .and_then(|transaction| {
            let saved = nonces.save(&transaction)?;
            Ok((transaction, saved))
        }) {
        Ok(transaction) => transaction,
        Err(error) => {
            let message = error.to_string();
            for job in jobs {
                // A caller that stopped waiting has nothing to be told.
                let _ = job
                    .reply
                    .send(Err(StoreError::Worker(format!("cannot begin: {message}"))));
            }
            return;
        }
    };
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut cells: BTreeMap<CellKey, CellSums> = BTreeMap::new();
    for job in jobs {
        let outcome = transaction
            .savepoint()
            .map_err(StoreError::from)
            .and_then(|savepoint| {
                let (outcome, added) = insert(&savepoint, &job.batch, &job.results)?;
                savepoint.commit()?;
                // Only a batch whose savepoint held adds its records' cells.
                for (key, sums) in added {
                    merge_into(&mut cells, key, sums);
                }
                Ok(outcome)
            });
        outcomes.push((job.reply, outcome));
    }
    let committed = merge_cells(&transaction, &cells)
        .map_err(|error| error.to_string())
        .and_then(|()| transaction.commit().map_err(|error| error.to_string()));
    match committed {
        Ok(()) => {
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome);
            }
        }
        Err(message) => {
            nonces.unsaved_again(saved_nonces);
            for (reply, _) in outcomes {
                let _ = reply.send(Err(StoreError::Worker(format!("commit failed: {message}"))));
            }
        }
    }
}

/// One cell's key and sums.
pub(super) type Cell = (CellKey, CellSums);

/// Adds `sums` to the cell `key` of `cells`.
pub(super) fn merge_into(cells: &mut BTreeMap<CellKey, CellSums>, key: &CellKey, sums: &CellSums) {
    match cells.get_mut(key) {
        Some(mine) => mine.merge(sums),
        None => {
            cells.insert(key.clone(), sums.clone());
        }
    }
}

/// Stores one batch inside the caller's transaction or savepoint, and returns what it did and
/// the cells of the records it newly stored (a record already stored adds nothing, so a retried
/// batch changes no sum).
pub(super) fn insert<'a>(
    transaction: &Connection,
    batch: &StoredBatch,
    results: &'a [PreparedResult],
) -> Result<(InsertOutcome, Vec<&'a Cell>), StoreError> {
    let session_ids = serde_json::to_string(&batch.session_ids)
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
    transaction.execute(
        "INSERT INTO batches (agent_id, key_id, timestamp_ms, nonce, signature, canonical_sha256,
                              session_ids, received_at_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            batch.agent_id,
            batch.key_id,
            batch.timestamp_ms,
            batch.nonce,
            batch.signature,
            batch.canonical_sha256,
            session_ids,
            batch.received_at_unix_ms,
        ],
    )?;
    let batch_id = transaction.last_insert_rowid();
    let mut outcome = InsertOutcome::default();
    let mut cells = Vec::new();
    {
        let mut statement = transaction.prepare_cached(
            "INSERT OR IGNORE INTO results (session_id, batch_id, agent_id, orchestrator_address,
                 orchestrator_uri, gpu, region, pipeline, model_id, complexity, outcome,
                 started_at_unix_ms, ended_at_unix_ms, record_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for prepared in results {
            let result = &prepared.result;
            let changed = statement.execute(params![
                result.session_id,
                batch_id,
                batch.agent_id,
                result.orchestrator_address,
                result.orchestrator_uri,
                result.gpu,
                result.region,
                result.pipeline,
                result.model_id,
                result.complexity,
                result.outcome,
                result.started_at_unix_ms,
                result.ended_at_unix_ms,
                prepared.record_blob,
            ])?;
            if changed == 1 {
                outcome.inserted += 1;
                cells.extend(&prepared.cells);
            } else {
                outcome.duplicates += 1;
            }
        }
    }
    Ok((outcome, cells))
}

/// Adds one stored record to the pending cell sums. The ingest stores only records that parsed
/// as a [`SessionReport`], so a record that does not parse can only come from a caller that
/// bypassed it (a test, a manual import); it is stored but adds to no cell, and says so.
pub(super) fn add_to_cells(
    cells: &mut BTreeMap<CellKey, CellSums>,
    session_id: &str,
    record_json: &str,
) {
    match serde_json::from_str::<SessionReport>(record_json) {
        Ok(report) => crate::sla::add_session(cells, &report),
        Err(error) => tracing::warn!(
            message = "Stored record is not a session report; it adds to no SLA cell.",
            session_id,
            error = %error
        ),
    }
}

/// Adds pending sums to the stored cells and to the cohort rollup, inside the caller's
/// transaction.
pub(super) fn merge_cells(
    transaction: &Connection,
    cells: &BTreeMap<CellKey, CellSums>,
) -> Result<(), StoreError> {
    let mut select = transaction.prepare_cached(
        "SELECT sums FROM sla_cells
         WHERE hour_unix_s = ?1 AND orchestrator = ?2 AND pipeline = ?3 AND model_id = ?4
           AND gpu = ?5 AND region = ?6 AND complexity = ?7 AND test_load = ?8",
    )?;
    // An upsert that updates only `sums` leaves the key and its index entries in place, where
    // `INSERT OR REPLACE` would delete and reinsert the row in the table and in both indexes.
    let mut upsert = transaction.prepare_cached(
        "INSERT INTO sla_cells (hour_unix_s, orchestrator, pipeline, model_id, gpu, region,
             complexity, test_load, sums)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT DO UPDATE SET sums = excluded.sums",
    )?;
    let mut cohorts: BTreeMap<CohortHour, CellSums> = BTreeMap::new();
    for (key, added) in cells {
        let key_params = params![
            key.hour_unix_s,
            key.orchestrator,
            key.pipeline,
            key.model_id,
            key.gpu,
            key.region,
            key.complexity,
            key.test_load,
        ];
        let stored: Option<CellSums> = select
            .query_row(key_params, |row| Ok(decode_stored(row.get_ref(0)?)))
            .optional()?
            .transpose()?;
        let mut sums = stored.unwrap_or_default();
        sums.merge(added);
        upsert.execute(params![
            key.hour_unix_s,
            key.orchestrator,
            key.pipeline,
            key.model_id,
            key.gpu,
            key.region,
            key.complexity,
            key.test_load,
            codec::encode(&sums),
        ])?;
        cohorts.entry(CohortHour::of(key)).or_default().merge(added);
    }
    merge_cohort_hours(transaction, &cohorts)
}

/// One row of the cohort rollup: (pipeline, model, test load, hour).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct CohortHour {
    pub(super) pipeline: String,
    pub(super) model_id: String,
    pub(super) test_load: bool,
    pub(super) hour_unix_s: i64,
}

impl CohortHour {
    pub(super) fn of(key: &CellKey) -> CohortHour {
        CohortHour {
            pipeline: key.pipeline.clone(),
            model_id: key.model_id.clone(),
            test_load: key.test_load,
            hour_unix_s: key.hour_unix_s,
        }
    }
}

/// Adds pending sums to the cohort rollup, inside the caller's transaction.
pub(super) fn merge_cohort_hours(
    transaction: &Connection,
    cohorts: &BTreeMap<CohortHour, CellSums>,
) -> Result<(), StoreError> {
    let mut select = transaction.prepare_cached(
        "SELECT sums FROM sla_cohort_hours
         WHERE pipeline = ?1 AND model_id = ?2 AND test_load = ?3 AND hour_unix_s = ?4",
    )?;
    let mut upsert = transaction.prepare_cached(
        "INSERT INTO sla_cohort_hours (pipeline, model_id, test_load, hour_unix_s, sums)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO UPDATE SET sums = excluded.sums",
    )?;
    for (cohort, added) in cohorts {
        let stored: Option<CellSums> = select
            .query_row(
                params![
                    cohort.pipeline,
                    cohort.model_id,
                    cohort.test_load,
                    cohort.hour_unix_s
                ],
                |row| Ok(decode_stored(row.get_ref(0)?)),
            )
            .optional()?
            .transpose()?;
        let mut sums = stored.unwrap_or_default();
        sums.merge(added);
        upsert.execute(params![
            cohort.pipeline,
            cohort.model_id,
            cohort.test_load,
            cohort.hour_unix_s,
            codec::encode(&sums),
        ])?;
    }
    Ok(())
}

/// Recomputes cohort rollup rows from `sla_cells`: every row when `only` is `None`, else the rows
/// named (the bulk loader replaces cells, which an additive update cannot follow).
pub(super) fn rebuild_cohort_hours(
    connection: &Connection,
    only: Option<&BTreeSet<CohortHour>>,
) -> Result<(), StoreError> {
    let transaction = connection.unchecked_transaction()?;
    let mut sums: BTreeMap<CohortHour, CellSums> = BTreeMap::new();
    match only {
        None => {
            transaction.execute("DELETE FROM sla_cohort_hours", [])?;
            let mut statement = transaction.prepare(
                "SELECT pipeline, model_id, test_load, hour_unix_s, sums FROM sla_cells",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let cohort = CohortHour {
                    pipeline: row.get(0)?,
                    model_id: row.get(1)?,
                    test_load: row.get(2)?,
                    hour_unix_s: row.get(3)?,
                };
                let cell = decode_stored(row.get_ref(4)?)?;
                sums.entry(cohort).or_default().merge(&cell);
            }
        }
        Some(cohorts) => {
            let mut delete = transaction.prepare_cached(
                "DELETE FROM sla_cohort_hours
                 WHERE pipeline = ?1 AND model_id = ?2 AND test_load = ?3 AND hour_unix_s = ?4",
            )?;
            let mut statement = transaction.prepare_cached(
                "SELECT sums FROM sla_cells
                 WHERE pipeline = ?1 AND model_id = ?2 AND test_load = ?3 AND hour_unix_s = ?4",
            )?;
            for cohort in cohorts {
                let cohort_params = params![
                    cohort.pipeline,
                    cohort.model_id,
                    cohort.test_load,
                    cohort.hour_unix_s
                ];
                delete.execute(cohort_params)?;
                let mut merged = CellSums::default();
                let mut rows = statement.query(cohort_params)?;
                while let Some(row) = rows.next()? {
                    merged.merge(&decode_stored(row.get_ref(0)?)?);
                }
                sums.insert(cohort.clone(), merged);
            }
        }
    }
    merge_cohort_hours(&transaction, &sums)?;
    transaction.commit()?;
    Ok(())
}

/// Stores one event batch in a transaction of its own, which also saves the nonces remembered
/// since the last commit.
pub(super) fn insert_events(
    connection: &mut Connection,
    nonces: &NonceLog,
    batch: &EventBatch,
    events: &[StoredEvent],
) -> Result<EventInsertOutcome, StoreError> {
    let transaction = connection.transaction()?;
    let saved = nonces.save(&transaction)?;
    let stored = insert_events_in(&transaction, batch, events)
        .and_then(|outcome| Ok(transaction.commit().map(|()| outcome)?));
    if stored.is_err() {
        nonces.unsaved_again(saved);
    }
    stored
}

pub(super) fn insert_events_in(
    transaction: &Connection,
    batch: &EventBatch,
    events: &[StoredEvent],
) -> Result<EventInsertOutcome, StoreError> {
    transaction.execute(
        "INSERT INTO event_batches (agent_id, key_id, timestamp_ms, nonce, signature,
                                    canonical_sha256, received_at_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            batch.agent_id,
            batch.key_id,
            batch.timestamp_ms,
            batch.nonce,
            batch.signature,
            batch.canonical_sha256,
            batch.received_at_unix_ms,
        ],
    )?;
    let batch_id = transaction.last_insert_rowid();
    let mut outcome = EventInsertOutcome::default();
    {
        // An id is stored once across both tables: an event first kept aside and later resent
        // (or the reverse) is a duplicate, not a second copy.
        let mut known = transaction.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM events WHERE id = ?1)
                 OR EXISTS (SELECT 1 FROM events_aside WHERE id = ?1)",
        )?;
        let mut usable = transaction.prepare_cached(
            "INSERT INTO events (id, family, timestamp_ms, gateway, envelope_json, batch_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut aside = transaction.prepare_cached(
            "INSERT INTO events_aside (id, family, timestamp_ms, gateway, envelope_json, reason,
                                       batch_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for event in events {
            let exists: bool = known.query_row(params![event.id], |row| row.get(0))?;
            if exists {
                outcome.duplicates += 1;
                continue;
            }
            match &event.aside_reason {
                None => {
                    usable.execute(params![
                        event.id,
                        event.family,
                        event.timestamp_ms,
                        event.gateway,
                        event.envelope_json,
                        batch_id,
                    ])?;
                    *outcome.stored.entry(event.family.clone()).or_default() += 1;
                }
                Some(reason) => {
                    aside.execute(params![
                        event.id,
                        event.family,
                        event.timestamp_ms,
                        event.gateway,
                        event.envelope_json,
                        reason,
                        batch_id,
                    ])?;
                    *outcome.kept_aside.entry(event.family.clone()).or_default() += 1;
                }
            }
        }
    }
    Ok(outcome)
}
