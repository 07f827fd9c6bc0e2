//! Retention of the SQLite backend's go-livepeer event tables (`events`, `events_aside`,
//! `event_batches`): what `Store::delete_events_older_than` does there.

use rusqlite::{Connection, params};

use crate::store::StoreError;

/// The retention time of an event: its envelope timestamp, or its batch's arrival time when the
/// timestamp was not a number (such an event must still leave one day).
const EVENT_TIME: &str = "COALESCE(timestamp_ms,
    (SELECT b.received_at_unix_ms FROM event_batches b WHERE b.batch_id = {table}.batch_id))";

/// Deletes events, usable and kept aside, older than `unix_ms` (see [`EVENT_TIME`]), and event
/// batches received before it that hold no event any more, in one transaction; returns how many
/// events were deleted.
pub(super) fn delete_events_older_than(
    connection: &mut Connection,
    unix_ms: i64,
) -> Result<u64, StoreError> {
    // The schema's indexes on `timestamp_ms` and `batch_id` of both event tables keep this from
    // scanning every stored event.
    let transaction = connection.transaction()?;
    let mut deleted = 0_u64;
    for table in ["events", "events_aside"] {
        let time = EVENT_TIME.replace("{table}", table);
        // The indexed comparison finds the timed events; the second one only looks at the
        // (rare) events without a numeric timestamp.
        let count = transaction.execute(
            &format!(
                "DELETE FROM {table}
                 WHERE timestamp_ms < ?1 OR (timestamp_ms IS NULL AND {time} < ?1)"
            ),
            params![unix_ms],
        )?;
        deleted = deleted.saturating_add(u64::try_from(count).unwrap_or(u64::MAX));
    }
    transaction.execute(
        "DELETE FROM event_batches WHERE received_at_unix_ms < ?1
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.batch_id = event_batches.batch_id)
           AND NOT EXISTS (SELECT 1 FROM events_aside a WHERE a.batch_id = event_batches.batch_id)",
        params![unix_ms],
    )?;
    transaction.commit()?;
    Ok(deleted)
}
