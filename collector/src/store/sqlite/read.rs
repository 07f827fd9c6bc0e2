//! The SQLite read path: pages of results and events, the SLA cells and cohort cells a filter
//! selects, per-orchestrator sums, and the decoding of stored cell sums (binary, or JSON text
//! from an older collector).

use rusqlite::ToSql;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, params};

use super::record_codec;
use crate::sla::{CellKey, CellSums, codec};
use crate::store::{
    EventFilter, EventRow, EventsPage, OrchestratorFold, OrchestratorSums, ResultCursor,
    ResultFilter, ResultRow, ResultsPage, SlaFilter, StoreError, StoredEvent,
};

/// Decodes stored cell sums without their histograms (see
/// [`codec::decode_without_histograms`]); JSON text is decoded whole.
pub(super) fn decode_stored_without_histograms(
    value: ValueRef<'_>,
) -> Result<CellSums, StoreError> {
    match value {
        ValueRef::Blob(bytes) => codec::decode_without_histograms(bytes)
            .map_err(|error| StoreError::Corrupt(format!("stored cell sums: {error}"))),
        other => decode_stored(other),
    }
}

/// Decodes stored cell sums: the binary encoding, or JSON text written by an older collector.
pub(super) fn decode_stored(value: ValueRef<'_>) -> Result<CellSums, StoreError> {
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

/// The `WHERE` clause over `sla_cells` of the filters set in `filter`, and their values.
pub(super) fn cell_conditions(filter: &SlaFilter) -> (String, Vec<&dyn ToSql>) {
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
pub(super) fn read_orchestrator_sums(
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
pub(super) fn row_text<'r>(
    row: &'r rusqlite::Row<'_>,
    index: usize,
) -> Result<&'r str, StoreError> {
    row.get_ref(index)?
        .as_str()
        .map_err(|error| StoreError::Corrupt(format!("sla_cells column {index}: {error}")))
}

pub(super) fn read_cells(
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
pub(super) fn conditions<'a>(
    parts: &[(&str, Option<&'a dyn ToSql>)],
) -> (String, Vec<&'a dyn ToSql>) {
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

pub(super) fn sql_value<T: ToSql>(value: &T) -> &dyn ToSql {
    value
}

/// The cohort rollup rows matching `filter` (its time range, pipeline, model and load kind; the
/// other fields must be unset), as cells whose orchestrator, GPU, region and complexity are empty.
pub(super) fn read_cohort_cells(
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

pub(super) fn page(
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

pub(super) fn events_page(
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
