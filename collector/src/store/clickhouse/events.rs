//! The go-livepeer event tables of the ClickHouse backend: `event_batches` and `events` (see
//! [`super::sql::schema`] for the layout and why idempotency is an existence check).
//!
//! ClickHouse has no sequences, so the arrival sequence number `seq` that pages walk is handed
//! out by this process: the table's largest `seq` is read once, on the first insert, and every
//! new event takes the next number while the write lock is held. One collector per database
//! keeps it exact, which is the same condition under which the results' duplicate check is exact.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::sql;
use super::store::{ClickHouseStore, json_lines};
use crate::store::{
    EventBatch, EventFilter, EventInsertOutcome, EventRow, EventsPage, StoreError, StoredEvent,
};

/// How many event ids one duplicate check names (see `SESSION_CHECK_CHUNK`; envelope ids are
/// UUIDs, so this stays far below `max_query_size`).
const ID_CHECK_CHUNK: usize = 1000;

/// One row of `event_batches` as inserted.
#[derive(Serialize)]
struct EventBatchLine<'a> {
    batch_id: i64,
    agent_id: &'a str,
    key_id: &'a str,
    timestamp_ms: i64,
    nonce: &'a str,
    signature: &'a str,
    canonical_sha256: &'a str,
    received_at_unix_ms: i64,
}

/// One row of `events`, as inserted and as read back.
#[derive(Serialize, Deserialize)]
struct EventLine {
    seq: i64,
    id: String,
    family: String,
    timestamp_ms: Option<i64>,
    gateway: String,
    envelope_json: String,
    aside_reason: Option<String>,
    batch_id: i64,
    received_at_unix_ms: i64,
}

#[derive(Deserialize)]
struct IdLine {
    id: String,
}

#[derive(Deserialize)]
struct MaxSeqLine {
    max_seq: i64,
}

/// The id of an event batch: 63 bits of SHA-256 over its provenance. Result batches are named by
/// (key id, nonce) alone, but event batches from Kafka carry neither (they are unsigned), so the
/// agent, content hash and arrival time go in too; a signed batch is still unique by its nonce.
fn event_batch_id(batch: &EventBatch) -> i64 {
    let mut digest = Sha256::new();
    for part in [
        batch.agent_id.as_bytes(),
        batch.key_id.as_bytes(),
        batch.nonce.as_bytes(),
        batch.canonical_sha256.as_bytes(),
    ] {
        digest.update(part);
        digest.update([0]);
    }
    digest.update(batch.received_at_unix_ms.to_be_bytes());
    let digest = digest.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first) & i64::MAX
}

impl ClickHouseStore {
    /// The ids among `ids` that `events` already holds (usable or kept aside).
    async fn stored_event_ids(&self, ids: &[&str]) -> Result<HashSet<String>, StoreError> {
        let db = &self.config.database;
        let mut stored = HashSet::new();
        for chunk in ids.chunks(ID_CHECK_CHUNK) {
            let list = chunk
                .iter()
                .map(|id| sql::string(id))
                .collect::<Vec<_>>()
                .join(",");
            let rows: Vec<IdLine> = self
                .rows(&format!(
                    "SELECT DISTINCT id FROM {db}.events WHERE id IN ({list})"
                ))
                .await?;
            stored.extend(rows.into_iter().map(|row| row.id));
        }
        Ok(stored)
    }

    /// The last `seq` handed out, read from the table the first time. Call with the write lock
    /// held.
    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let cached = *self
            .event_seq
            .lock()
            .map_err(|_| StoreError::Worker("event sequence lock poisoned".into()))?;
        if let Some(seq) = cached {
            return Ok(seq);
        }
        let db = &self.config.database;
        // `max` of an empty table is 0, which is also where SQLite's rowids start from.
        let rows: Vec<MaxSeqLine> = self
            .rows(&format!("SELECT max(seq) AS max_seq FROM {db}.events"))
            .await?;
        Ok(rows.first().map_or(0, |row| row.max_seq))
    }

    pub(super) async fn insert_events_now(
        &self,
        batch: EventBatch,
        events: Vec<StoredEvent>,
    ) -> Result<EventInsertOutcome, StoreError> {
        let _writer = self.write_lock.lock().await;
        let mut outcome = EventInsertOutcome::default();
        // The first copy of an id repeated within the batch is the one kept.
        let mut in_batch = HashSet::new();
        let mut fresh: Vec<&StoredEvent> = Vec::with_capacity(events.len());
        for event in &events {
            if in_batch.insert(event.id.as_str()) {
                fresh.push(event);
            } else {
                outcome.duplicates += 1;
            }
        }
        let ids: Vec<&str> = fresh.iter().map(|event| event.id.as_str()).collect();
        let stored = self.stored_event_ids(&ids).await?;
        fresh.retain(|event| !stored.contains(&event.id));
        outcome.duplicates += u64::try_from(stored.len()).unwrap_or(u64::MAX);

        // The batch row goes first, as for results: a failure between the two inserts leaves a
        // batch without events (removed by retention), never events without their batch.
        let id = event_batch_id(&batch);
        let batch_row = json_lines([EventBatchLine {
            batch_id: id,
            agent_id: &batch.agent_id,
            key_id: &batch.key_id,
            timestamp_ms: batch.timestamp_ms,
            nonce: &batch.nonce,
            signature: &batch.signature,
            canonical_sha256: &batch.canonical_sha256,
            received_at_unix_ms: batch.received_at_unix_ms,
        }])?;
        self.insert("event_batches", batch_row).await?;
        if fresh.is_empty() {
            return Ok(outcome);
        }
        let last = self.last_event_seq().await?;
        let mut seq = last;
        let mut lines = Vec::with_capacity(fresh.len());
        for event in &fresh {
            seq = seq.saturating_add(1);
            let counts = if event.aside_reason.is_some() {
                &mut outcome.kept_aside
            } else {
                &mut outcome.stored
            };
            *counts.entry(event.family.clone()).or_default() += 1;
            lines.push(EventLine {
                seq,
                id: event.id.clone(),
                family: event.family.clone(),
                timestamp_ms: event.timestamp_ms,
                gateway: event.gateway.clone(),
                envelope_json: event.envelope_json.clone(),
                aside_reason: event.aside_reason.clone(),
                batch_id: id,
                received_at_unix_ms: batch.received_at_unix_ms,
            });
        }
        // One INSERT is one part, written wholly or not at all: usable and kept-aside events of
        // the batch become durable together.
        self.insert("events", json_lines(lines)?).await?;
        // The numbers are only taken once the insert succeeded; a failed insert reuses them,
        // which is safe because none of its rows exist.
        *self
            .event_seq
            .lock()
            .map_err(|_| StoreError::Worker("event sequence lock poisoned".into()))? = Some(seq);
        Ok(outcome)
    }

    pub(super) async fn first_event_seq_since_now(
        &self,
        unix_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        #[derive(Deserialize)]
        struct First {
            seq: Option<i64>,
        }
        let db = &self.config.database;
        let rows: Vec<First> = self
            .rows(&format!(
                "SELECT minOrNull(seq) AS seq FROM {db}.events
                 WHERE aside_reason IS NULL AND timestamp_ms >= {unix_ms}"
            ))
            .await?;
        Ok(rows.into_iter().next().and_then(|row| row.seq))
    }

    pub(super) async fn events_page_now(
        &self,
        filter: EventFilter,
        after_seq: Option<i64>,
        limit: usize,
    ) -> Result<EventsPage, StoreError> {
        let db = &self.config.database;
        let mut conditions = vec![if filter.kept_aside {
            "aside_reason IS NOT NULL".to_owned()
        } else {
            "aside_reason IS NULL".to_owned()
        }];
        if let Some(family) = &filter.family {
            conditions.push(format!("family = {}", sql::string(family)));
        }
        if let Some(after) = after_seq {
            conditions.push(format!("seq > {after}"));
        }
        // One row more than asked tells whether another page follows.
        let fetch = limit.saturating_add(1);
        let lines: Vec<EventLine> = self
            .rows(&format!(
                "SELECT seq, id, family, timestamp_ms, gateway, envelope_json, aside_reason,
                        batch_id, received_at_unix_ms
                 FROM {db}.events
                 WHERE {}
                 ORDER BY seq
                 LIMIT {fetch}",
                conditions.join(" AND ")
            ))
            .await?;
        let mut rows: Vec<EventRow> = lines
            .into_iter()
            .map(|line| EventRow {
                seq: line.seq,
                batch_id: line.batch_id,
                event: StoredEvent {
                    id: line.id,
                    family: line.family,
                    timestamp_ms: line.timestamp_ms,
                    gateway: line.gateway,
                    envelope_json: line.envelope_json,
                    aside_reason: line.aside_reason,
                },
            })
            .collect();
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

    /// Deletes events older than `unix_ms` by envelope timestamp (by arrival when the timestamp
    /// was not a number), then event batches received before it that hold no event any more.
    ///
    /// This is a lightweight `DELETE` run by the retention sweep rather than a table `TTL`: the
    /// cutoff comes from the collector's `retention_days` setting, which can change between
    /// starts, whereas a TTL is fixed in the table definition; and a TTL is applied when
    /// ClickHouse merges parts, on its own schedule, so the events would outlive the retention
    /// by an unknown time and a test could not observe the deletion.
    pub(super) async fn delete_events_older_than_now(
        &self,
        unix_ms: i64,
    ) -> Result<u64, StoreError> {
        let _writer = self.write_lock.lock().await;
        let db = &self.config.database;
        let deleted = self
            .delete_where(
                "events",
                &format!("coalesce(timestamp_ms, received_at_unix_ms) < {unix_ms}"),
            )
            .await?;
        self.delete_where(
            "event_batches",
            &format!(
                "received_at_unix_ms < {unix_ms}
                 AND batch_id NOT IN (SELECT batch_id FROM {db}.events)"
            ),
        )
        .await?;
        Ok(deleted)
    }
}
