//! [`SqliteStore`]: the [`Store`] trait over a rusqlite connection pair, with the SLA rollup
//! (`sla_cells`, one row of [`CellSums`] per [`CellKey`]) kept in the same transactions as the
//! records it sums, and the go-livepeer event tables (`events`, `events_aside`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvt_schema::SessionReport;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::SqliteConfig;
use crate::sla::{CellKey, CellSums};
use crate::store::{
    AgentStats, EventBatch, EventFilter, EventInsertOutcome, EventRow, EventsPage, InsertOutcome,
    ResultCursor, ResultFilter, ResultRow, ResultsPage, SlaFilter, Store, StoreError, StoreFuture,
    StoredBatch, StoredEvent, StoredResult,
};

/// The layout version written to `PRAGMA user_version`; a database with a higher one was made
/// by a newer collector and is refused rather than misread. Version 2 added `sla_cells`; opening a
/// version 1 database builds it from the stored records. Version 3 added the event tables, which
/// start empty.
const SCHEMA_VERSION: i64 = 3;

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
";

/// An SQLite database holding the collector's data.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
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
        writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let reader = open_connection(config)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
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
}

fn open_connection(config: &SqliteConfig) -> Result<Connection, StoreError> {
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

fn insert(
    connection: &mut Connection,
    batch: &StoredBatch,
    results: &[StoredResult],
) -> Result<InsertOutcome, StoreError> {
    let transaction = connection.transaction()?;
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
    let mut cells: BTreeMap<CellKey, CellSums> = BTreeMap::new();
    {
        let mut statement = transaction.prepare_cached(
            "INSERT OR IGNORE INTO results (session_id, batch_id, agent_id, orchestrator_address,
                 orchestrator_uri, gpu, region, pipeline, model_id, complexity, outcome,
                 started_at_unix_ms, ended_at_unix_ms, record_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for result in results {
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
                result.record_json,
            ])?;
            if changed == 1 {
                outcome.inserted += 1;
                // Only a newly stored record adds to the rollup, so a retried batch changes no
                // sum.
                add_to_cells(&mut cells, &result.session_id, &result.record_json);
            } else {
                outcome.duplicates += 1;
            }
        }
    }
    merge_cells(&transaction, &cells)?;
    transaction.commit()?;
    Ok(outcome)
}

/// Adds one stored record to the pending cell sums. The ingest stores only records that parsed
/// as a [`SessionReport`], so a record that does not parse can only come from a caller that
/// bypassed it (a test, a manual import); it is stored but adds to no cell, and says so.
fn add_to_cells(cells: &mut BTreeMap<CellKey, CellSums>, session_id: &str, record_json: &str) {
    match serde_json::from_str::<SessionReport>(record_json) {
        Ok(report) => cells.entry(CellKey::of(&report)).or_default().add(&report),
        Err(error) => tracing::warn!(
            message = "Stored record is not a session report; it adds to no SLA cell.",
            session_id,
            error = %error
        ),
    }
}

/// Adds pending sums to the stored cells, inside the caller's transaction.
fn merge_cells(
    transaction: &rusqlite::Transaction<'_>,
    cells: &BTreeMap<CellKey, CellSums>,
) -> Result<(), StoreError> {
    let mut select = transaction.prepare_cached(
        "SELECT sums FROM sla_cells
         WHERE hour_unix_s = ?1 AND orchestrator = ?2 AND pipeline = ?3 AND model_id = ?4
           AND gpu = ?5 AND region = ?6 AND complexity = ?7 AND test_load = ?8",
    )?;
    let mut upsert = transaction.prepare_cached(
        "INSERT OR REPLACE INTO sla_cells (hour_unix_s, orchestrator, pipeline, model_id, gpu,
             region, complexity, test_load, sums)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
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
        let stored: Option<String> = select.query_row(key_params, |row| row.get(0)).optional()?;
        let mut sums = match stored {
            Some(text) => decode_sums(&text)?,
            None => CellSums::default(),
        };
        sums.merge(added);
        let text = serde_json::to_string(&sums)
            .map_err(|error| StoreError::Corrupt(format!("cannot encode cell sums: {error}")))?;
        upsert.execute(params![
            key.hour_unix_s,
            key.orchestrator,
            key.pipeline,
            key.model_id,
            key.gpu,
            key.region,
            key.complexity,
            key.test_load,
            text,
        ])?;
    }
    Ok(())
}

fn decode_sums(text: &str) -> Result<CellSums, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("stored cell sums: {error}")))
}

/// Builds `sla_cells` from every stored record (the upgrade from layout version 1), in one
/// transaction so that a crash leaves either no cells or all of them.
fn rebuild_sla_cells(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection.transaction()?;
    transaction.execute("DELETE FROM sla_cells", [])?;
    let mut cells = BTreeMap::new();
    {
        let mut statement = transaction.prepare("SELECT session_id, record_json FROM results")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let session_id: String = row.get(0)?;
            let record_json: String = row.get(1)?;
            add_to_cells(&mut cells, &session_id, &record_json);
        }
    }
    merge_cells(&transaction, &cells)?;
    transaction.commit()?;
    Ok(())
}

fn read_cells(
    connection: &mut Connection,
    filter: &SlaFilter,
) -> Result<Vec<(CellKey, CellSums)>, StoreError> {
    // As for result pages, a NULL parameter disables its condition.
    let mut statement = connection.prepare_cached(
        "SELECT hour_unix_s, orchestrator, pipeline, model_id, gpu, region, complexity, test_load,
                sums
         FROM sla_cells
         WHERE (?1 IS NULL OR hour_unix_s >= ?1)
           AND (?2 IS NULL OR hour_unix_s < ?2)
           AND (?3 IS NULL OR orchestrator = ?3)
           AND (?4 IS NULL OR region = ?4)
           AND (?5 IS NULL OR pipeline = ?5)
           AND (?6 IS NULL OR model_id = ?6)
           AND (?7 IS NULL OR gpu = ?7)
           AND (?8 IS NULL OR complexity = ?8)
           AND (?9 IS NULL OR test_load = ?9)
         ORDER BY hour_unix_s, orchestrator, pipeline, model_id, gpu, region, complexity,
                  test_load",
    )?;
    let rows: Vec<(CellKey, String)> = statement
        .query_map(
            params![
                filter.start_unix_s,
                filter.end_unix_s,
                filter.orchestrator,
                filter.region,
                filter.pipeline,
                filter.model_id,
                filter.gpu,
                filter.complexity,
                filter.test_load,
            ],
            |row| {
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
                    row.get(8)?,
                ))
            },
        )?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(key, text)| Ok((key, decode_sums(&text)?)))
        .collect()
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
    let mut rows: Vec<ResultRow> = statement
        .query_map(
            params![
                filter.orchestrator,
                filter.since_unix_ms,
                filter.until_unix_ms,
                cursor.map(|c| c.ended_at_unix_ms),
                cursor.map(|c| c.session_id.as_str()),
                fetch,
            ],
            |row| {
                Ok(ResultRow {
                    agent_id: row.get(0)?,
                    batch_id: row.get(1)?,
                    ended_at_unix_ms: row.get(2)?,
                    session_id: row.get(3)?,
                    record_json: row.get(4)?,
                })
            },
        )?
        .collect::<Result<_, _>>()?;
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

fn insert_events(
    connection: &mut Connection,
    batch: &EventBatch,
    events: &[StoredEvent],
) -> Result<EventInsertOutcome, StoreError> {
    let transaction = connection.transaction()?;
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
    transaction.commit()?;
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
        Self::with(&self.writer, move |connection| {
            insert(connection, &batch, &results)
        })
    }

    fn remember_nonce(
        &self,
        key_id: String,
        nonce: String,
        timestamp_ms: i64,
    ) -> StoreFuture<'_, bool> {
        Self::with(&self.writer, move |connection| {
            let changed = connection.execute(
                "INSERT OR IGNORE INTO nonces (key_id, nonce, timestamp_ms) VALUES (?1, ?2, ?3)",
                params![key_id, nonce, timestamp_ms],
            )?;
            Ok(changed == 1)
        })
    }

    fn prune_nonces(&self, before_unix_ms: i64) -> StoreFuture<'_, u64> {
        Self::with(&self.writer, move |connection| {
            let deleted = connection.execute(
                "DELETE FROM nonces WHERE timestamp_ms < ?1",
                params![before_unix_ms],
            )?;
            Ok(to_u64(deleted))
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
        Self::with(&self.writer, move |connection| {
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
            read_cells(connection, &filter)
        })
    }

    fn insert_events(
        &self,
        batch: EventBatch,
        events: Vec<StoredEvent>,
    ) -> StoreFuture<'_, EventInsertOutcome> {
        Self::with(&self.writer, move |connection| {
            insert_events(connection, &batch, &events)
        })
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
}
