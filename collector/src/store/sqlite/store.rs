//! [`SqliteStore`]: the [`Store`] trait over a rusqlite connection pair, with the SLA rollup
//! (`sla_cells`, one row of [`CellSums`] per [`CellKey`]) kept in the same transactions as the
//! records it sums, the cohort rollup (`sla_cohort_hours`, the same sums merged per hour x
//! pipeline x model x load kind, which is what seven-day cohorts are read from), and the
//! go-livepeer event tables (`events`, `events_aside`).
//!
//! Cell sums are stored in the binary encoding of [`crate::sla::codec`]; sums that an older
//! collector wrote as JSON text are still read, and rewritten in binary the next time their cell
//! changes.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension as _, params};

use super::SqliteConfig;
use super::checkpoint::{self, Checkpointer};
use super::nonces::NonceLog;
use super::read::{events_page, page, read_cells, read_cohort_cells, read_orchestrator_sums};
use super::schema::{SCHEMA, SCHEMA_VERSION, open_connection, rebuild_sla_cells};
use super::write::{
    PendingInsert, PreparedResult, drain_pending, insert_events, rebuild_cohort_hours,
};
use crate::sla::{CellKey, CellSums};
use crate::store::{
    AgentStats, EventBatch, EventFilter, EventInsertOutcome, EventsPage, InsertOutcome,
    OrchestratorSums, ResultCursor, ResultFilter, ResultsPage, SlaFilter, Store, StoreError,
    StoreFuture, StoredBatch, StoredEvent, StoredHeartbeat, StoredResult,
};

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

/// Locks a mutex of the store. A poisoned lock means an earlier operation panicked mid-call;
/// rusqlite rolls back an unfinished transaction when it is dropped, and the pending queue only
/// ever holds whole entries, so what the lock guards is still consistent and can be used.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn to_u64(count: usize) -> u64 {
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

    fn put_heartbeat(
        &self,
        agent_id: String,
        received_at_unix_ms: i64,
        heartbeat_json: String,
    ) -> StoreFuture<'_, ()> {
        let nonces = Arc::clone(&self.nonces);
        self.with_writer(move |connection| {
            let transaction = connection.transaction()?;
            // The heartbeat's nonce was remembered in memory; this commit saves it too.
            nonces.save(&transaction)?;
            transaction.execute(
                "INSERT INTO agent_heartbeats (agent_id, received_at_unix_ms, heartbeat_json)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (agent_id) DO UPDATE SET
                     received_at_unix_ms = excluded.received_at_unix_ms,
                     heartbeat_json = excluded.heartbeat_json
                 WHERE excluded.received_at_unix_ms >= agent_heartbeats.received_at_unix_ms",
                params![agent_id, received_at_unix_ms, heartbeat_json],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }

    fn heartbeats(&self) -> StoreFuture<'_, Vec<StoredHeartbeat>> {
        Self::with(&self.reader, |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT agent_id, received_at_unix_ms, heartbeat_json
                 FROM agent_heartbeats ORDER BY agent_id",
            )?;
            let beats = statement
                .query_map([], |row| {
                    Ok(StoredHeartbeat {
                        agent_id: row.get(0)?,
                        received_at_unix_ms: row.get(1)?,
                        heartbeat_json: row.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(beats)
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
