//! [`SqliteStore`]: the [`Store`] trait over a rusqlite connection pair, with the SLA rollup
//! (`sla_cells`, one row of [`CellSums`] per [`CellKey`]) kept in the same transactions as the
//! records it sums, the cohort rollup (`sla_cohort_hours`, the same sums merged per hour x
//! pipeline x model x load kind, which is what seven-day cohorts are read from), and the
//! go-livepeer event tables (`events`, `events_aside`).
//!
//! Cell sums are stored in the binary encoding of [`crate::sla::codec`]; sums that an older
//! collector wrote as JSON text are still read, and rewritten in binary the next time their cell
//! changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvt_schema::SessionReport;
use rusqlite::ToSql;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::checkpoint::{self, Checkpointer};
use super::nonces::NonceLog;
use super::{SqliteConfig, record_codec};
use crate::sla::{CellKey, CellSums, codec};
use crate::store::{
    AgentStats, EventBatch, EventFilter, EventInsertOutcome, EventRow, EventsPage, InsertOutcome,
    OrchestratorFold, OrchestratorSums, ResultCursor, ResultFilter, ResultRow, ResultsPage,
    SlaFilter, Store, StoreError, StoreFuture, StoredBatch, StoredEvent, StoredResult,
};

/// The layout version written to `PRAGMA user_version`; a database with a higher one was made
/// by a newer collector and is refused rather than misread. Version 2 added `sla_cells`; opening a
/// version 1 database builds it from the stored records. Version 3 added the event tables, which
/// start empty. Version 4 added `sla_cohort_hours`; opening an older database builds it from
/// `sla_cells`. Version 5 stores each record's JSON compressed, as a blob of
/// [`record_codec`], in the same `record_json` column; records stored as text by older versions
/// are read as they are, and a collector older than version 5 refuses the file rather than
/// misread the blobs.
const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
    batch_id            INTEGER PRIMARY KEY,
    agent_id            TEXT    NOT NULL,
    key_id              TEXT    NOT NULL,
    timestamp_ms        INTEGER NOT NULL,
    nonce               TEXT    NOT NULL,
    signature           TEXT    NOT NULL,
    canonical_sha256    TEXT    NOT NULL,
    session_ids         TEXT    NOT NULL,
    received_at_unix_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_agent ON batches (agent_id, received_at_unix_ms);
CREATE TABLE IF NOT EXISTS results (
    session_id           TEXT    PRIMARY KEY,
    batch_id             INTEGER NOT NULL REFERENCES batches (batch_id),
    agent_id             TEXT    NOT NULL,
    orchestrator_address TEXT,
    orchestrator_uri     TEXT,
    gpu                  TEXT,
    region               TEXT,
    pipeline             TEXT    NOT NULL,
    model_id             TEXT    NOT NULL,
    complexity           TEXT,
    outcome              TEXT    NOT NULL,
    started_at_unix_ms   INTEGER NOT NULL,
    ended_at_unix_ms     INTEGER NOT NULL,
    -- A blob of record_codec (layout 5), or the JSON text itself (older layouts).
    record_json          TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS results_ended ON results (ended_at_unix_ms, session_id);
CREATE INDEX IF NOT EXISTS results_uri ON results (orchestrator_uri, ended_at_unix_ms, session_id);
CREATE INDEX IF NOT EXISTS results_address ON results (orchestrator_address, ended_at_unix_ms, session_id);
CREATE INDEX IF NOT EXISTS results_agent ON results (agent_id);
CREATE INDEX IF NOT EXISTS results_batch ON results (batch_id);
CREATE TABLE IF NOT EXISTS nonces (
    key_id       TEXT    NOT NULL,
    nonce        TEXT    NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_timestamp ON nonces (timestamp_ms);
CREATE TABLE IF NOT EXISTS sla_cells (
    hour_unix_s  INTEGER NOT NULL,
    orchestrator TEXT    NOT NULL,
    pipeline     TEXT    NOT NULL,
    model_id     TEXT    NOT NULL,
    gpu          TEXT    NOT NULL,
    region       TEXT    NOT NULL,
    complexity   TEXT    NOT NULL,
    test_load    INTEGER NOT NULL,
    sums         TEXT    NOT NULL,
    PRIMARY KEY (hour_unix_s, orchestrator, pipeline, model_id, gpu, region, complexity, test_load)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sla_cells_model ON sla_cells (pipeline, model_id, hour_unix_s);
CREATE INDEX IF NOT EXISTS sla_cells_orchestrator ON sla_cells (orchestrator, hour_unix_s);
CREATE TABLE IF NOT EXISTS sla_cohort_hours (
    pipeline     TEXT    NOT NULL,
    model_id     TEXT    NOT NULL,
    test_load    INTEGER NOT NULL,
    hour_unix_s  INTEGER NOT NULL,
    sums         BLOB    NOT NULL,
    PRIMARY KEY (pipeline, model_id, test_load, hour_unix_s)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_batches (
    batch_id            INTEGER PRIMARY KEY,
    agent_id            TEXT    NOT NULL,
    key_id              TEXT    NOT NULL,
    timestamp_ms        INTEGER NOT NULL,
    nonce               TEXT    NOT NULL,
    signature           TEXT    NOT NULL,
    canonical_sha256    TEXT    NOT NULL,
    received_at_unix_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq           INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    family        TEXT    NOT NULL,
    timestamp_ms  INTEGER,
    gateway       TEXT    NOT NULL,
    envelope_json TEXT    NOT NULL,
    batch_id      INTEGER NOT NULL REFERENCES event_batches (batch_id)
);
CREATE INDEX IF NOT EXISTS events_family ON events (family, seq);
CREATE TABLE IF NOT EXISTS events_aside (
    seq           INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    family        TEXT    NOT NULL,
    timestamp_ms  INTEGER,
    gateway       TEXT    NOT NULL,
    envelope_json TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    batch_id      INTEGER NOT NULL REFERENCES event_batches (batch_id)
);
CREATE INDEX IF NOT EXISTS events_aside_family ON events_aside (family, seq);
CREATE INDEX IF NOT EXISTS events_timestamp ON events (timestamp_ms);
CREATE INDEX IF NOT EXISTS events_aside_timestamp ON events_aside (timestamp_ms);
CREATE INDEX IF NOT EXISTS events_batch ON events (batch_id);
CREATE INDEX IF NOT EXISTS events_aside_batch ON events_aside (batch_id);
";

/// An SQLite database holding the collector's data.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    /// Result batches waiting for the writer, committed together (group commit, see
    /// [`SqliteStore::insert_batch`]).
    pending: Arc<Mutex<Vec<PendingInsert>>>,
    /// The nonces of signed requests, answered from memory and saved by the writer's commits.
    nonces: Arc<NonceLog>,
    /// The WAL checkpoint thread, which stops with the last clone of the store. Only clones of
    /// the store hold it, so its count tells the last clone that it is the last.
    checkpointer: Arc<Checkpointer>,
}

impl Drop for SqliteStore {
    /// The last clone saves the nonces no commit has saved yet, now: a thread still committing
    /// queued batches holds the nonce log too, and would otherwise save them only when it ends,
    /// possibly after the database was opened again.
    fn drop(&mut self) {
        if Arc::strong_count(&self.checkpointer) == 1 {
            self.nonces.save_on_close();
        }
    }
}

/// A result batch waiting to be committed, and where its outcome goes.
struct PendingInsert {
    batch: StoredBatch,
    results: Vec<PreparedResult>,
    reply: tokio::sync::oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// A result in the form the writer stores it, prepared before it reaches the writer (on the
/// caller's blocking thread, so concurrent batches prepare in parallel while the one writer
/// only inserts).
struct PreparedResult {
    result: StoredResult,
    /// `record_json` compressed by [`record_codec::encode`].
    record_blob: Vec<u8>,
    /// What the record adds to the SLA rollup when it is newly stored.
    cells: Vec<(CellKey, CellSums)>,
}

impl PreparedResult {
    fn of(mut result: StoredResult) -> PreparedResult {
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

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database of `config`, switches it to WAL with
    /// `synchronous=FULL` and creates the tables.
    pub fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        let mut writer = open_connection(config)?;
        let version: i64 = writer.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "database layout version {version} is newer than this collector's {SCHEMA_VERSION}"
            )));
        }
        writer.execute_batch(SCHEMA)?;
        if version < 2 {
            rebuild_sla_cells(&mut writer)?;
        }
        if version < 4 {
            rebuild_cohort_hours(&writer, None)?;
        }
        writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        writer.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)?;
        let reader = open_connection(config)?;
        let checkpointer = Checkpointer::start(config)?;
        let writer = Arc::new(Mutex::new(writer));
        let nonces = NonceLog::load(Arc::clone(&writer), &lock(&writer))?;
        Ok(Self {
            writer,
            reader: Arc::new(Mutex::new(reader)),
            pending: Arc::new(Mutex::new(Vec::new())),
            nonces: Arc::new(nonces),
            checkpointer: Arc::new(checkpointer),
        })
    }

    /// Runs `work` with one of the connections on the blocking pool.
    fn with<T: Send + 'static>(
        connection: &Arc<Mutex<Connection>>,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let connection = Arc::clone(connection);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // A poisoned lock means an earlier operation panicked mid-call; rusqlite rolls
                // back an unfinished transaction when it is dropped, so the connection is still
                // consistent and can be used.
                let mut guard = connection
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                work(&mut guard)
            })
            .await
            .map_err(|error| StoreError::Worker(error.to_string()))?
        })
    }

    /// [`Self::with`] on the writer. Afterwards the thread commits any result batch queued while
    /// it held the writer ([`drain_pending`]): that batch's own thread left it to the holder.
    pub(super) fn with_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let writer = Arc::clone(&self.writer);
        let pending = Arc::clone(&self.pending);
        let nonces = Arc::clone(&self.nonces);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let answer = work(&mut lock(&writer));
                drain_pending(&writer, &pending, &nonces);
                answer
            })
            .await
            .map_err(|error| StoreError::Worker(error.to_string()))?
        })
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
fn drain_pending(
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

/// Locks a mutex of the store. A poisoned lock means an earlier operation panicked mid-call;
/// rusqlite rolls back an unfinished transaction when it is dropped, and the pending queue only
/// ever holds whole entries, so what the lock guards is still consistent and can be used.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn open_connection(config: &SqliteConfig) -> Result<Connection, StoreError> {
    let connection = Connection::open(&config.path)?;
    connection.busy_timeout(Duration::from_millis(config.busy_timeout_ms))?;
    // WAL lets the reader connection read while the writer commits; FULL syncs the WAL on every
    // commit, so an acknowledged batch survives power loss, not only a process kill.
    let mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "could not switch {} to WAL (journal mode {mode})",
            config.path.display()
        )));
    }
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

/// Commits every pending batch in one transaction, each inside a savepoint of its own so that
/// one failing batch leaves the others stored, and answers each batch only after the commit (so
/// an acknowledged batch is durable). Concurrent batches thus share one synced commit instead of
/// paying one each, and the SLA rollup is updated once for the whole group (one upsert per
/// cell the group touches, not one per batch), in the same transaction.
fn insert_group(connection: &mut Connection, nonces: &NonceLog, jobs: Vec<PendingInsert>) {
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
type Cell = (CellKey, CellSums);

/// Adds `sums` to the cell `key` of `cells`.
fn merge_into(cells: &mut BTreeMap<CellKey, CellSums>, key: &CellKey, sums: &CellSums) {
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
fn insert<'a>(
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
fn add_to_cells(cells: &mut BTreeMap<CellKey, CellSums>, session_id: &str, record_json: &str) {
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
fn merge_cells(
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
fn merge_cohort_hours(
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

/// Decodes stored cell sums without their histograms (see
/// [`codec::decode_without_histograms`]); JSON text is decoded whole.
fn decode_stored_without_histograms(value: ValueRef<'_>) -> Result<CellSums, StoreError> {
    match value {
        ValueRef::Blob(bytes) => codec::decode_without_histograms(bytes)
            .map_err(|error| StoreError::Corrupt(format!("stored cell sums: {error}"))),
        other => decode_stored(other),
    }
}

/// Decodes stored cell sums: the binary encoding, or JSON text written by an older collector.
fn decode_stored(value: ValueRef<'_>) -> Result<CellSums, StoreError> {
    match value {
        ValueRef::Blob(bytes) => codec::decode(bytes)
            .map_err(|error| StoreError::Corrupt(format!("stored cell sums: {error}"))),
        ValueRef::Text(text) => serde_json::from_slice(text)
            .map_err(|error| StoreError::Corrupt(format!("stored cell sums: {error}"))),
        other => Err(StoreError::Corrupt(format!(
            "stored cell sums have type {}",
            other.data_type()
        ))),
    }
}

/// Builds `sla_cells` from every stored record (the upgrade from layout version 1), in one
/// transaction so that a crash leaves either no cells or all of them.
fn rebuild_sla_cells(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection.transaction()?;
    transaction.execute("DELETE FROM sla_cells", [])?;
    transaction.execute("DELETE FROM sla_cohort_hours", [])?;
    let mut cells = BTreeMap::new();
    {
        let mut statement = transaction.prepare("SELECT session_id, record_json FROM results")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let session_id: String = row.get(0)?;
            let record_json = record_codec::stored_text(row.get_ref(1)?)?;
            add_to_cells(&mut cells, &session_id, &record_json);
        }
    }
    merge_cells(&transaction, &cells)?;
    transaction.commit()?;
    Ok(())
}

/// The `WHERE` clause over `sla_cells` of the filters set in `filter`, and their values.
fn cell_conditions(filter: &SlaFilter) -> (String, Vec<&dyn ToSql>) {
    conditions(&[
        (
            "hour_unix_s >= ?",
            filter.start_unix_s.as_ref().map(sql_value),
        ),
        ("hour_unix_s < ?", filter.end_unix_s.as_ref().map(sql_value)),
        (
            "orchestrator = ?",
            filter.orchestrator.as_ref().map(sql_value),
        ),
        ("region = ?", filter.region.as_ref().map(sql_value)),
        ("pipeline = ?", filter.pipeline.as_ref().map(sql_value)),
        ("model_id = ?", filter.model_id.as_ref().map(sql_value)),
        ("gpu = ?", filter.gpu.as_ref().map(sql_value)),
        ("complexity = ?", filter.complexity.as_ref().map(sql_value)),
        ("test_load = ?", filter.test_load.as_ref().map(sql_value)),
    ])
}

/// The cells matching `filter` folded per orchestrator as the rows are read: no key is built
/// per cell and no histogram decoded, which is most of what reading a leaderboard's tens of
/// thousands of cells otherwise costs.
fn read_orchestrator_sums(
    connection: &mut Connection,
    filter: &SlaFilter,
) -> Result<Vec<OrchestratorSums>, StoreError> {
    let (where_sql, values) = cell_conditions(filter);
    let sql = format!(
        "SELECT orchestrator, pipeline, model_id, region, test_load, sums FROM sla_cells WHERE {}",
        where_sql
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(values.as_slice())?;
    let mut fold = OrchestratorFold::default();
    while let Some(row) = rows.next()? {
        let sums = decode_stored_without_histograms(row.get_ref(5)?)?;
        fold.add(
            row_text(row, 0)?,
            row_text(row, 1)?,
            row_text(row, 2)?,
            row_text(row, 3)?,
            row.get(4)?,
            &sums,
        );
    }
    Ok(fold.finish())
}

/// Column `index` of `row` as borrowed text.
fn row_text<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> Result<&'r str, StoreError> {
    row.get_ref(index)?
        .as_str()
        .map_err(|error| StoreError::Corrupt(format!("sla_cells column {index}: {error}")))
}

fn read_cells(
    connection: &mut Connection,
    filter: &SlaFilter,
    histograms: bool,
) -> Result<Vec<(CellKey, CellSums)>, StoreError> {
    let (where_sql, values) = cell_conditions(filter);
    let sql = format!(
        "SELECT hour_unix_s, orchestrator, pipeline, model_id, gpu, region, complexity, test_load,
                sums
         FROM sla_cells
         WHERE {}
         ORDER BY hour_unix_s, orchestrator, pipeline, model_id, gpu, region, complexity,
                  test_load",
        where_sql
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let rows: Vec<(CellKey, CellSums)> = statement
        .query_map(values.as_slice(), |row| {
            Ok((
                CellKey {
                    hour_unix_s: row.get(0)?,
                    orchestrator: row.get(1)?,
                    pipeline: row.get(2)?,
                    model_id: row.get(3)?,
                    gpu: row.get(4)?,
                    region: row.get(5)?,
                    complexity: row.get(6)?,
                    test_load: row.get(7)?,
                },
                if histograms {
                    decode_stored(row.get_ref(8)?)
                } else {
                    decode_stored_without_histograms(row.get_ref(8)?)
                },
            ))
        })?
        .map(|row| {
            let (key, sums) = row?;
            Ok((key, sums?))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(rows)
}

/// The `WHERE` clause of the conditions whose filter is set, and their values in order. Only
/// those are written into the statement (rather than `?n IS NULL OR ...`, which hides them from
/// SQLite's planner), so that a time range or an orchestrator reads through an index instead of
/// scanning every cell.
fn conditions<'a>(parts: &[(&str, Option<&'a dyn ToSql>)]) -> (String, Vec<&'a dyn ToSql>) {
    let mut sql = Vec::new();
    let mut values = Vec::new();
    for (condition, value) in parts {
        if let Some(value) = value {
            sql.push(*condition);
            values.push(*value);
        }
    }
    let sql = if sql.is_empty() {
        "1".to_owned()
    } else {
        sql.join(" AND ")
    };
    (sql, values)
}

fn sql_value<T: ToSql>(value: &T) -> &dyn ToSql {
    value
}

/// The cohort rollup rows matching `filter` (its time range, pipeline, model and load kind; the
/// other fields must be unset), as cells whose orchestrator, GPU, region and complexity are empty.
fn read_cohort_cells(
    connection: &mut Connection,
    filter: &SlaFilter,
) -> Result<Vec<(CellKey, CellSums)>, StoreError> {
    let (where_sql, values) = conditions(&[
        (
            "hour_unix_s >= ?",
            filter.start_unix_s.as_ref().map(sql_value),
        ),
        ("hour_unix_s < ?", filter.end_unix_s.as_ref().map(sql_value)),
        ("pipeline = ?", filter.pipeline.as_ref().map(sql_value)),
        ("model_id = ?", filter.model_id.as_ref().map(sql_value)),
        ("test_load = ?", filter.test_load.as_ref().map(sql_value)),
    ]);
    let sql = format!(
        "SELECT pipeline, model_id, test_load, hour_unix_s, sums
         FROM sla_cohort_hours
         WHERE {}
         ORDER BY hour_unix_s, pipeline, model_id, test_load",
        where_sql
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut rows = statement.query(values.as_slice())?;
    let mut cells = Vec::new();
    while let Some(row) = rows.next()? {
        let key = CellKey {
            hour_unix_s: row.get(3)?,
            orchestrator: String::new(),
            pipeline: row.get(0)?,
            model_id: row.get(1)?,
            gpu: String::new(),
            region: String::new(),
            complexity: String::new(),
            test_load: row.get(2)?,
        };
        cells.push((key, decode_stored(row.get_ref(4)?)?));
    }
    Ok(cells)
}

fn page(
    connection: &mut Connection,
    filter: &ResultFilter,
    cursor: Option<&ResultCursor>,
    limit: usize,
) -> Result<ResultsPage, StoreError> {
    // One statement covers every filter combination: a NULL parameter disables its condition.
    // The cursor condition is written as a row-value comparison so SQLite walks the
    // (ended_at_unix_ms, session_id) index from the cursor on.
    let mut statement = connection.prepare_cached(
        "SELECT agent_id, batch_id, ended_at_unix_ms, session_id, record_json
         FROM results
         WHERE (?1 IS NULL OR orchestrator_uri = ?1 OR orchestrator_address = ?1)
           AND (?2 IS NULL OR ended_at_unix_ms >= ?2)
           AND (?3 IS NULL OR ended_at_unix_ms < ?3)
           AND (?4 IS NULL OR (ended_at_unix_ms, session_id) > (?4, ?5))
         ORDER BY ended_at_unix_ms, session_id
         LIMIT ?6",
    )?;
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut selected = statement.query(params![
        filter.orchestrator,
        filter.since_unix_ms,
        filter.until_unix_ms,
        cursor.map(|c| c.ended_at_unix_ms),
        cursor.map(|c| c.session_id.as_str()),
        fetch,
    ])?;
    let mut rows = Vec::new();
    while let Some(row) = selected.next()? {
        rows.push(ResultRow {
            agent_id: row.get(0)?,
            batch_id: row.get(1)?,
            ended_at_unix_ms: row.get(2)?,
            session_id: row.get(3)?,
            record_json: record_codec::stored_text(row.get_ref(4)?)?,
        });
    }
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| ResultCursor {
            ended_at_unix_ms: row.ended_at_unix_ms,
            session_id: row.session_id.clone(),
        })
    } else {
        None
    };
    Ok(ResultsPage { rows, next })
}

/// Stores one event batch in a transaction of its own, which also saves the nonces remembered
/// since the last commit.
fn insert_events(
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

fn insert_events_in(
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

fn events_page(
    connection: &mut Connection,
    filter: &EventFilter,
    after_seq: Option<i64>,
    limit: usize,
) -> Result<EventsPage, StoreError> {
    // Both tables are read with the same column list; the usable one has no reason.
    let sql = if filter.kept_aside {
        "SELECT seq, batch_id, id, family, timestamp_ms, gateway, envelope_json, reason
         FROM events_aside
         WHERE (?1 IS NULL OR family = ?1) AND (?2 IS NULL OR seq > ?2)
         ORDER BY seq LIMIT ?3"
    } else {
        "SELECT seq, batch_id, id, family, timestamp_ms, gateway, envelope_json, NULL
         FROM events
         WHERE (?1 IS NULL OR family = ?1) AND (?2 IS NULL OR seq > ?2)
         ORDER BY seq LIMIT ?3"
    };
    let mut statement = connection.prepare_cached(sql)?;
    let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
    let mut rows: Vec<EventRow> = statement
        .query_map(params![filter.family, after_seq, fetch], |row| {
            Ok(EventRow {
                seq: row.get(0)?,
                batch_id: row.get(1)?,
                event: StoredEvent {
                    id: row.get(2)?,
                    family: row.get(3)?,
                    timestamp_ms: row.get(4)?,
                    gateway: row.get(5)?,
                    envelope_json: row.get(6)?,
                    aside_reason: row.get(7)?,
                },
            })
        })?
        .collect::<Result<_, _>>()?;
    let next_after_seq = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|row| row.seq)
    } else {
        None
    };
    Ok(EventsPage {
        rows,
        next_after_seq,
    })
}

fn to_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

impl Store for SqliteStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Self::with(&self.reader, |connection| {
            connection.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
    }

    fn insert_batch(
        &self,
        batch: StoredBatch,
        results: Vec<StoredResult>,
    ) -> StoreFuture<'_, InsertOutcome> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let writer = Arc::clone(&self.writer);
        let pending = Arc::clone(&self.pending);
        let nonces = Arc::clone(&self.nonces);
        Box::pin(async move {
            // The caller waits for its answer only, not for the thread: that thread may go on
            // committing other callers' batches after its own is answered.
            drop(tokio::task::spawn_blocking(move || {
                // Compressing and summing happen here, before the batch joins the queue, so the
                // writer holds its lock only to insert.
                let results = results.into_iter().map(PreparedResult::of).collect();
                lock(&pending).push(PendingInsert {
                    batch,
                    results,
                    reply,
                });
                drain_pending(&writer, &pending, &nonces);
            }));
            answer.await.map_err(|_| {
                StoreError::Worker("the batch was dropped before it was committed".to_owned())
            })?
        })
    }

    fn remember_nonce(
        &self,
        key_id: String,
        nonce: String,
        timestamp_ms: i64,
    ) -> StoreFuture<'_, bool> {
        // Answered from memory; the writer's next commit saves it (see `super::nonces`).
        let fresh = self.nonces.remember(key_id, nonce, timestamp_ms);
        Box::pin(async move { Ok(fresh) })
    }

    fn prune_nonces(&self, before_unix_ms: i64) -> StoreFuture<'_, u64> {
        let nonces = Arc::clone(&self.nonces);
        self.with_writer(move |connection| {
            let transaction = connection.transaction()?;
            let saved = nonces.save(&transaction)?;
            let deleted = transaction
                .execute(
                    "DELETE FROM nonces WHERE timestamp_ms < ?1",
                    params![before_unix_ms],
                )
                .and_then(|deleted| transaction.commit().map(|()| deleted));
            match deleted {
                Ok(deleted) => {
                    nonces.forget_before(before_unix_ms);
                    Ok(to_u64(deleted))
                }
                Err(error) => {
                    nonces.unsaved_again(saved);
                    Err(error.into())
                }
            }
        })
    }

    fn results_page(
        &self,
        filter: ResultFilter,
        cursor: Option<ResultCursor>,
        limit: usize,
    ) -> StoreFuture<'_, ResultsPage> {
        Self::with(&self.reader, move |connection| {
            page(connection, &filter, cursor.as_ref(), limit)
        })
    }

    fn batch(&self, batch_id: i64) -> StoreFuture<'_, Option<StoredBatch>> {
        Self::with(&self.reader, move |connection| {
            let row = connection
                .query_row(
                    "SELECT agent_id, key_id, timestamp_ms, nonce, signature, canonical_sha256,
                            session_ids, received_at_unix_ms
                     FROM batches WHERE batch_id = ?1",
                    params![batch_id],
                    |row| {
                        Ok((
                            StoredBatch {
                                agent_id: row.get(0)?,
                                key_id: row.get(1)?,
                                timestamp_ms: row.get(2)?,
                                nonce: row.get(3)?,
                                signature: row.get(4)?,
                                canonical_sha256: row.get(5)?,
                                session_ids: Vec::new(),
                                received_at_unix_ms: row.get(7)?,
                            },
                            row.get::<_, String>(6)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(mut batch, session_ids)| {
                batch.session_ids = serde_json::from_str(&session_ids)
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                Ok(batch)
            })
            .transpose()
        })
    }

    fn agents(&self) -> StoreFuture<'_, Vec<AgentStats>> {
        Self::with(&self.reader, |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT b.agent_id, MAX(b.received_at_unix_ms),
                        (SELECT COUNT(*) FROM results r WHERE r.agent_id = b.agent_id)
                 FROM batches b GROUP BY b.agent_id ORDER BY b.agent_id",
            )?;
            let agents = statement
                .query_map([], |row| {
                    Ok(AgentStats {
                        agent_id: row.get(0)?,
                        last_seen_unix_ms: row.get(1)?,
                        result_count: row.get::<_, i64>(2)?.max(0).unsigned_abs(),
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(agents)
        })
    }

    fn count_results(&self) -> StoreFuture<'_, u64> {
        Self::with(&self.reader, |connection| {
            let count: i64 =
                connection.query_row("SELECT COUNT(*) FROM results", [], |row| row.get(0))?;
            Ok(count.max(0).unsigned_abs())
        })
    }

    fn delete_older_than(&self, unix_ms: i64) -> StoreFuture<'_, u64> {
        self.with_writer(move |connection| {
            let transaction = connection.transaction()?;
            let deleted = transaction.execute(
                "DELETE FROM results WHERE ended_at_unix_ms < ?1",
                params![unix_ms],
            )?;
            // Cells are dropped once their whole hour is past the cutoff, so the rollup covers the
            // same span as the records.
            transaction.execute(
                "DELETE FROM sla_cells WHERE (hour_unix_s + 3600) * 1000 <= ?1",
                params![unix_ms],
            )?;
            transaction.execute(
                "DELETE FROM sla_cohort_hours WHERE (hour_unix_s + 3600) * 1000 <= ?1",
                params![unix_ms],
            )?;
            transaction.execute(
                "DELETE FROM batches WHERE received_at_unix_ms < ?1
                   AND NOT EXISTS (SELECT 1 FROM results r WHERE r.batch_id = batches.batch_id)",
                params![unix_ms],
            )?;
            transaction.commit()?;
            Ok(to_u64(deleted))
        })
    }

    fn sla_cells(&self, filter: &SlaFilter) -> StoreFuture<'_, Vec<(CellKey, CellSums)>> {
        let filter = filter.clone();
        Self::with(&self.reader, move |connection| {
            read_cells(connection, &filter, true)
        })
    }

    fn sla_cells_for_scoring(
        &self,
        filter: &SlaFilter,
    ) -> StoreFuture<'_, Vec<(CellKey, CellSums)>> {
        let filter = filter.clone();
        Self::with(&self.reader, move |connection| {
            read_cells(connection, &filter, false)
        })
    }

    fn sla_orchestrator_sums(&self, filter: &SlaFilter) -> StoreFuture<'_, Vec<OrchestratorSums>> {
        let filter = filter.clone();
        Self::with(&self.reader, move |connection| {
            read_orchestrator_sums(connection, &filter)
        })
    }

    fn sla_generation(&self) -> StoreFuture<'_, Option<u64>> {
        Self::with(&self.reader, |connection| {
            // `data_version` changes whenever another connection (the writer, or another process
            // such as a bulk load) commits, so it covers every way the rollup can change.
            let version: i64 = connection.query_row("PRAGMA data_version", [], |row| row.get(0))?;
            Ok(Some(version.unsigned_abs()))
        })
    }

    fn sla_cohort_cells(&self, filter: &SlaFilter) -> StoreFuture<'_, Vec<(CellKey, CellSums)>> {
        let filter = filter.clone();
        if filter.orchestrator.is_some()
            || filter.region.is_some()
            || filter.gpu.is_some()
            || filter.complexity.is_some()
        {
            // The rollup has merged these fields away; the trait's default answers from cells.
            let cells = self.sla_cells(&filter);
            return Box::pin(async move { Ok(crate::store::roll_up_cohort_cells(cells.await?)) });
        }
        Self::with(&self.reader, move |connection| {
            read_cohort_cells(connection, &filter)
        })
    }

    fn insert_events(
        &self,
        batch: EventBatch,
        events: Vec<StoredEvent>,
    ) -> StoreFuture<'_, EventInsertOutcome> {
        let nonces = Arc::clone(&self.nonces);
        self.with_writer(move |connection| insert_events(connection, &nonces, &batch, &events))
    }

    fn events_page(
        &self,
        filter: EventFilter,
        after_seq: Option<i64>,
        limit: usize,
    ) -> StoreFuture<'_, EventsPage> {
        Self::with(&self.reader, move |connection| {
            events_page(connection, &filter, after_seq, limit)
        })
    }

    fn first_event_seq_since(&self, unix_ms: i64) -> StoreFuture<'_, Option<i64>> {
        Self::with(&self.reader, move |connection| {
            // A range of the events_timestamp index.
            Ok(connection
                .prepare_cached("SELECT min(seq) FROM events WHERE timestamp_ms >= ?1")?
                .query_row(params![unix_ms], |row| row.get(0))?)
        })
    }

    fn delete_events_older_than(&self, unix_ms: i64) -> StoreFuture<'_, u64> {
        self.with_writer(move |c| super::events_retention::delete_events_older_than(c, unix_ms))
    }
}
