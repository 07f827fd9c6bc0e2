//! Bulk loading of precomputed SLA cell sums into an SQLite store, for the benchmarks and for
//! imports of a rollup computed elsewhere.
//!
//! The normal path adds to `sla_cells` record by record inside each batch's transaction; filling
//! a store with the rollup of millions of sessions that way would mean generating and storing
//! every record. [`load_cells`] writes ready-made cells directly instead, in the same encoding the
//! store reads back, through a connection of its own, and then recomputes the cohort rollup rows
//! of the hours it touched (a replaced cell cannot be followed by adding sums).

use std::collections::BTreeSet;

use rusqlite::{Connection, params};

use super::SqliteConfig;
use super::write::{CohortHour, rebuild_cohort_hours};
use crate::sla::{CellKey, CellSums, codec};
use crate::store::StoreError;

/// How many cells one transaction writes: large enough that commits (each one synced) are a
/// small part of the time, small enough that the write-ahead log stays bounded.
const CELLS_PER_TRANSACTION: usize = 50_000;

/// Writes `cells` into the `sla_cells` table of the database at `config`, replacing any stored
/// cell with the same key, and returns how many were written. The database must already have
/// been opened once with [`super::SqliteStore::open`], which creates the tables.
///
/// Cells are written in transactions of [`CELLS_PER_TRANSACTION`]; a failure leaves the cells
/// of the committed transactions stored.
pub fn load_cells(
    config: &SqliteConfig,
    cells: impl IntoIterator<Item = (CellKey, CellSums)>,
) -> Result<u64, StoreError> {
    let mut connection = Connection::open(&config.path)?;
    connection.busy_timeout(std::time::Duration::from_millis(config.busy_timeout_ms))?;
    let mut written: u64 = 0;
    let mut touched: BTreeSet<CohortHour> = BTreeSet::new();
    let mut cells = cells.into_iter().peekable();
    while cells.peek().is_some() {
        let transaction = connection.transaction()?;
        {
            let mut statement = transaction.prepare_cached(
                "INSERT OR REPLACE INTO sla_cells (hour_unix_s, orchestrator, pipeline, model_id,
                     gpu, region, complexity, test_load, sums)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (key, sums) in cells.by_ref().take(CELLS_PER_TRANSACTION) {
                touched.insert(CohortHour::of(&key));
                statement.execute(params![
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
                written += 1;
            }
        }
        transaction.commit()?;
    }
    rebuild_cohort_hours(&connection, Some(&touched))?;
    // Folding the log back into the database keeps the first reads after a large load from
    // walking a log of the whole load.
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{SlaFilter, Store};

    fn key(hour_unix_s: i64, orchestrator: &str) -> CellKey {
        CellKey {
            hour_unix_s,
            orchestrator: orchestrator.to_owned(),
            pipeline: "live-video-to-video".to_owned(),
            model_id: "streamdiffusion".to_owned(),
            gpu: "RTX 4090".to_owned(),
            region: "eu-west".to_owned(),
            complexity: "low".to_owned(),
            test_load: true,
        }
    }

    fn sums(sessions: u64) -> CellSums {
        CellSums {
            sessions,
            passed: sessions,
            ..CellSums::default()
        }
    }

    #[tokio::test]
    async fn loaded_cells_read_back_through_the_store_and_replace_same_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SqliteConfig::new(dir.path().join("lvt.db"));
        let store = SqliteStore::open(&config).expect("open");
        // More cells than one transaction holds, so the batching loop is exercised.
        let count = CELLS_PER_TRANSACTION as i64 + 3;
        let written = load_cells(
            &config,
            (0..count).map(|i| (key(i * 3600, "0xaa"), sums(2))),
        )
        .expect("load");
        assert_eq!(written, u64::try_from(count).expect("positive"));
        let replaced = load_cells(&config, [(key(0, "0xaa"), sums(7))]).expect("reload");
        assert_eq!(replaced, 1);

        let cells = store
            .sla_cells(&SlaFilter {
                end_unix_s: Some(2 * 3600),
                ..SlaFilter::default()
            })
            .await
            .expect("read");
        assert_eq!(
            cells,
            vec![(key(0, "0xaa"), sums(7)), (key(3600, "0xaa"), sums(2))]
        );
        // The cohort rollup follows the replacement rather than adding to it.
        let filter = SlaFilter {
            end_unix_s: Some(2 * 3600),
            ..SlaFilter::default()
        };
        let cohort = store.sla_cohort_cells(&filter).await.expect("cohort");
        assert_eq!(cohort, crate::store::roll_up_cohort_cells(cells));
        assert_eq!(cohort[0].1.sessions, 7);
    }
}
