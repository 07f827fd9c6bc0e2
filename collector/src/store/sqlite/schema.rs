//! The SQLite layout: the tables and indexes ([`SCHEMA`]), the layout version the file records
//! ([`SCHEMA_VERSION`]) with the upgrades from older versions, and how a connection is opened
//! (WAL, `synchronous=FULL`, foreign keys).

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::Connection;

use super::write::{add_to_cells, merge_cells};
use super::{SqliteConfig, record_codec};
use crate::store::StoreError;

/// The layout version written to `PRAGMA user_version`; a database with a higher one was made
/// by a newer collector and is refused rather than misread. Version 2 added `sla_cells`; opening a
/// version 1 database builds it from the stored records. Version 3 added the event tables, which
/// start empty. Version 4 added `sla_cohort_hours`; opening an older database builds it from
/// `sla_cells`. Version 5 stores each record's JSON compressed, as a blob of
/// [`record_codec`], in the same `record_json` column; records stored as text by older versions
/// are read as they are, and a collector older than version 5 refuses the file rather than
/// misread the blobs.
pub(super) const SCHEMA_VERSION: i64 = 5;

pub(super) const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS agent_heartbeats (
    agent_id            TEXT    PRIMARY KEY,
    received_at_unix_ms INTEGER NOT NULL,
    heartbeat_json      TEXT    NOT NULL
);
";

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

/// Builds `sla_cells` from every stored record (the upgrade from layout version 1), in one
/// transaction so that a crash leaves either no cells or all of them.
pub(super) fn rebuild_sla_cells(connection: &mut Connection) -> Result<(), StoreError> {
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
