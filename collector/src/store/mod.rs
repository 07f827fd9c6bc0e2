//! Storage behind one trait: what the collector keeps (batches, results, nonces, the hourly
//! SLA cell sums derived from the results, and go-livepeer event envelopes) and how it reads it
//! back.
//!
//! Every backend has the same layout (`<backend>/{mod.rs, config.rs, store.rs, tests.rs}`) and
//! runs the same behavioural suites (`lvt_testkit::store_suite`, run by
//! `collector/tests/store_suites.rs`), so a new backend is correct when they pass.
//! The trait returns boxed futures rather than using `async fn` so that it stays object safe
//! (`Arc<dyn Store>`) and a backend over HTTP (ClickHouse) can implement it as naturally as one
//! over a blocking library (SQLite, through `spawn_blocking`).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::sla::{CellKey, CellSums};

pub mod clickhouse;
pub mod sqlite;

/// The future every [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed. Every variant means "try again later" to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite library reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file or its directory could not be prepared.
    #[error("store file {path}: {source}")]
    Io {
        /// The path concerned.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The blocking worker running the operation was lost (it panicked or the runtime is
    /// shutting down).
    #[error("store worker lost: {0}")]
    Worker(String),
    /// Stored data does not have the expected shape (a schema from a newer collector).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The ClickHouse server could not be reached or answered with an error.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::ClickHouseError),
    /// This backend does not implement the operation (yet).
    #[error("{0} is not supported by this store backend")]
    Unsupported(&'static str),
}

pub use crate::stored::{StoredBatch, StoredResult};

/// What an insert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Records newly stored.
    pub inserted: u64,
    /// Records whose session id was already stored (or repeated within the batch).
    pub duplicates: u64,
}

/// Which results a page covers. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultFilter {
    /// Only results of this orchestrator, matched against its address or its URI.
    pub orchestrator: Option<String>,
    /// Only sessions that ended at or after this time, milliseconds since the Unix epoch.
    pub since_unix_ms: Option<i64>,
    /// Only sessions that ended before this time, milliseconds since the Unix epoch.
    pub until_unix_ms: Option<i64>,
}

/// A keyset position: the page continues strictly after this (end time, session id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResultCursor {
    /// The end time of the last result of the previous page.
    pub ended_at_unix_ms: i64,
    /// The session id of the last result of the previous page.
    pub session_id: String,
}

/// One stored result as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    /// The agent that shipped it.
    pub agent_id: String,
    /// The batch it arrived in ([`Store::batch`]).
    pub batch_id: i64,
    /// Session end, milliseconds since the Unix epoch.
    pub ended_at_unix_ms: i64,
    /// The session id.
    pub session_id: String,
    /// The record's canonical JSON, as stored.
    pub record_json: String,
}

/// A page of results in (end time, session id) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultsPage {
    /// The results of this page.
    pub rows: Vec<ResultRow>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<ResultCursor>,
}

/// What the store knows about one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStats {
    /// The agent id.
    pub agent_id: String,
    /// When its last batch was accepted, milliseconds since the Unix epoch.
    pub last_seen_unix_ms: Option<i64>,
    /// How many results of it are stored.
    pub result_count: u64,
}

/// An agent's latest heartbeat as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHeartbeat {
    /// The agent id (the configured name of the key that signed it).
    pub agent_id: String,
    /// When the collector accepted it, ms since the Unix epoch (the collector's clock).
    pub received_at_unix_ms: i64,
    /// The heartbeat as the agent sent it (JSON).
    pub heartbeat_json: String,
}

/// Which SLA cells [`Store::sla_cells`] returns; it lives in the pure core with the query
/// parsing that fills it.
pub use crate::sla::SlaFilter;

pub use crate::stored::{EventBatch, StoredEvent};

/// What an event insert did. Per-family counts are keyed by the family name as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInsertOutcome {
    /// Usable events newly stored, by family.
    pub stored: BTreeMap<String, u64>,
    /// Events newly kept aside, by family.
    pub kept_aside: BTreeMap<String, u64>,
    /// Events whose id was already stored (or repeated within the batch).
    pub duplicates: u64,
}

impl EventInsertOutcome {
    /// Usable events newly stored, all families.
    pub fn stored_total(&self) -> u64 {
        self.stored.values().sum()
    }

    /// Events newly kept aside, all families.
    pub fn kept_aside_total(&self) -> u64 {
        self.kept_aside.values().sum()
    }
}

/// Which events [`Store::events_page`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of this family (the `type` as sent).
    pub family: Option<String>,
    /// Read the kept-aside events instead of the usable ones.
    pub kept_aside: bool,
}

/// One stored event as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// The store's arrival sequence number: the keyset pagination key.
    pub seq: i64,
    /// The batch it arrived in.
    pub batch_id: i64,
    /// The stored event.
    pub event: StoredEvent,
}

/// A page of events in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsPage {
    /// The events of this page.
    pub rows: Vec<EventRow>,
    /// The `seq` after which the next page starts; `None` when this page is the last.
    pub next_after_seq: Option<i64>,
}

/// Merges cells per hour x pipeline x model x load kind (the rows of [`Store::sla_cohort_cells`]).
pub fn roll_up_cohort_cells(
    cells: impl IntoIterator<Item = (CellKey, CellSums)>,
) -> Vec<(CellKey, CellSums)> {
    let mut merged: std::collections::BTreeMap<CellKey, CellSums> =
        std::collections::BTreeMap::new();
    for (key, sums) in cells {
        let cohort_key = CellKey {
            orchestrator: String::new(),
            gpu: String::new(),
            region: String::new(),
            complexity: String::new(),
            ..key
        };
        merged.entry(cohort_key).or_default().merge(&sums);
    }
    merged.into_iter().collect()
}

/// The cells of one orchestrator merged, as a leaderboard ranks them
/// ([`Store::sla_orchestrator_sums`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrchestratorSums {
    /// The orchestrator ([`CellKey::orchestrator`]).
    pub orchestrator: String,
    /// The merged sums of its cells, without histograms (as [`Store::sla_cells_for_scoring`]).
    pub sums: CellSums,
    /// The (pipeline, model, test load) of every cell merged in: the cohorts it is scored
    /// against.
    pub cohorts: std::collections::BTreeSet<(String, String, bool)>,
    /// The non-empty regions of its cells.
    pub regions: std::collections::BTreeSet<String>,
}

/// Merges cells per orchestrator from borrowed key parts, so that a backend reading rows can
/// fold them without allocating a key per cell (one string per orchestrator, cohort and region).
#[derive(Debug, Default)]
pub struct OrchestratorFold {
    groups: BTreeMap<String, OrchestratorSums>,
}

impl OrchestratorFold {
    /// Adds one cell.
    pub fn add(
        &mut self,
        orchestrator: &str,
        pipeline: &str,
        model_id: &str,
        region: &str,
        test_load: bool,
        sums: &CellSums,
    ) {
        let group = match self.groups.get_mut(orchestrator) {
            Some(group) => group,
            None => self
                .groups
                .entry(orchestrator.to_owned())
                .or_insert_with(|| OrchestratorSums {
                    orchestrator: orchestrator.to_owned(),
                    ..OrchestratorSums::default()
                }),
        };
        group.sums.merge(sums);
        let known = group
            .cohorts
            .iter()
            .any(|(p, m, t)| p.as_str() == pipeline && m.as_str() == model_id && *t == test_load);
        if !known {
            group
                .cohorts
                .insert((pipeline.to_owned(), model_id.to_owned(), test_load));
        }
        if !region.is_empty() && !group.regions.contains(region) {
            group.regions.insert(region.to_owned());
        }
    }

    /// The groups, in orchestrator order.
    pub fn finish(self) -> Vec<OrchestratorSums> {
        self.groups.into_values().collect()
    }
}

/// A storage backend of the collector.
pub trait Store: Send + Sync {
    /// Checks that the store answers.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Stores a batch and its records atomically: after `Ok` every new record is durable, and
    /// records whose session id is already stored are counted as duplicates and left unchanged.
    fn insert_batch(
        &self,
        batch: StoredBatch,
        results: Vec<StoredResult>,
    ) -> StoreFuture<'_, InsertOutcome>;

    /// Remembers `nonce` for `key_id`; `true` when it was fresh, `false` when it was already
    /// remembered (a replay). Remembered nonces survive a restart.
    fn remember_nonce(
        &self,
        key_id: String,
        nonce: String,
        timestamp_ms: i64,
    ) -> StoreFuture<'_, bool>;

    /// Forgets nonces whose signed timestamp is before `before_unix_ms`; returns how many.
    /// Called with `now - window`: such batches are refused as stale anyway.
    fn prune_nonces(&self, before_unix_ms: i64) -> StoreFuture<'_, u64>;

    /// Up to `limit` results matching `filter` after `cursor`, in (end time, session id) order.
    fn results_page(
        &self,
        filter: ResultFilter,
        cursor: Option<ResultCursor>,
        limit: usize,
    ) -> StoreFuture<'_, ResultsPage>;

    /// The stored batch with this id, when it exists.
    fn batch(&self, batch_id: i64) -> StoreFuture<'_, Option<StoredBatch>>;

    /// Per-agent statistics for every agent that has shipped a batch.
    fn agents(&self) -> StoreFuture<'_, Vec<AgentStats>>;

    /// Keeps `heartbeat_json` (a [`lvt_schema::heartbeat::Heartbeat`]) as the latest heartbeat
    /// of `agent_id`, received at `received_at_unix_ms`; one received earlier than the one kept
    /// is ignored.
    fn put_heartbeat(
        &self,
        agent_id: String,
        received_at_unix_ms: i64,
        heartbeat_json: String,
    ) -> StoreFuture<'_, ()>;

    /// The latest heartbeat of every agent that sent one, by agent id.
    fn heartbeats(&self) -> StoreFuture<'_, Vec<StoredHeartbeat>>;

    /// How many results are stored.
    fn count_results(&self) -> StoreFuture<'_, u64>;

    /// Deletes results whose session ended before `unix_ms` (and batches left without results
    /// that were received before it); returns how many results were deleted.
    fn delete_older_than(&self, unix_ms: i64) -> StoreFuture<'_, u64>;

    /// The SLA rollup: every cell matching `filter` with the sums of the distinct records stored
    /// in it, in [`CellKey`] order. A backend keeps these sums up to date as records are inserted
    /// (duplicates add nothing), so the API never rescans raw records.
    fn sla_cells(&self, filter: &SlaFilter) -> StoreFuture<'_, Vec<(CellKey, CellSums)>> {
        let _ = filter;
        Box::pin(async { Err(StoreError::Unsupported("sla_cells")) })
    }

    /// [`Store::sla_cells`] for callers that only score the cells or groups of them: a backend may
    /// leave the histograms empty (only cohorts need histograms, and they come from
    /// [`Store::sla_cohort_cells`]). The default returns the full cells.
    fn sla_cells_for_scoring(
        &self,
        filter: &SlaFilter,
    ) -> StoreFuture<'_, Vec<(CellKey, CellSums)>> {
        self.sla_cells(filter)
    }

    /// The cells matching `filter` merged per orchestrator, in orchestrator order: what a
    /// leaderboard ranks. A backend may fold its rows without building every cell; the default
    /// folds [`Store::sla_cells_for_scoring`].
    fn sla_orchestrator_sums(&self, filter: &SlaFilter) -> StoreFuture<'_, Vec<OrchestratorSums>> {
        let cells = self.sla_cells_for_scoring(filter);
        Box::pin(async move {
            let mut fold = OrchestratorFold::default();
            for (key, sums) in cells.await? {
                fold.add(
                    &key.orchestrator,
                    &key.pipeline,
                    &key.model_id,
                    &key.region,
                    key.test_load,
                    &sums,
                );
            }
            Ok(fold.finish())
        })
    }

    /// A number that changes whenever stored SLA data may have changed, so that answers computed
    /// from the rollup can be cached until it does; `None` (the default) when the backend cannot
    /// tell, which disables caching.
    fn sla_generation(&self) -> StoreFuture<'_, Option<u64>> {
        Box::pin(async { Ok(None) })
    }

    /// The cohort rollup: the sums of every cell matching `filter` merged per hour x pipeline x
    /// model x load kind, as cells whose orchestrator, GPU, region and complexity are empty, in
    /// [`CellKey`] order. Seven-day cohorts are merged from these, so a backend that keeps them
    /// precomputed answers SLA queries without reading every cell of the fleet; the default
    /// computes them from [`Store::sla_cells`].
    fn sla_cohort_cells(&self, filter: &SlaFilter) -> StoreFuture<'_, Vec<(CellKey, CellSums)>> {
        let cells = self.sla_cells(filter);
        Box::pin(async move { Ok(roll_up_cohort_cells(cells.await?)) })
    }

    /// Stores a batch of go-livepeer events atomically: after `Ok` every new event is durable,
    /// usable ones with the events and those with an [`StoredEvent::aside_reason`] kept aside;
    /// an id already stored in either place is a duplicate and left unchanged.
    fn insert_events(
        &self,
        batch: EventBatch,
        events: Vec<StoredEvent>,
    ) -> StoreFuture<'_, EventInsertOutcome> {
        let _ = (batch, events);
        Box::pin(async { Err(StoreError::Unsupported("insert_events")) })
    }

    /// Up to `limit` events matching `filter` with a `seq` above `after_seq`, in arrival order.
    fn events_page(
        &self,
        filter: EventFilter,
        after_seq: Option<i64>,
        limit: usize,
    ) -> StoreFuture<'_, EventsPage> {
        let _ = (filter, after_seq, limit);
        Box::pin(async { Err(StoreError::Unsupported("events_page")) })
    }

    /// The smallest `seq` of a usable event whose envelope timestamp is at or after `unix_ms`,
    /// `None` when there is none: where the organic fold's replay starts when the collector
    /// starts (events arrive roughly in timestamp order, so the replay reads from there on).
    fn first_event_seq_since(&self, unix_ms: i64) -> StoreFuture<'_, Option<i64>> {
        let _ = unix_ms;
        Box::pin(async { Err(StoreError::Unsupported("first_event_seq_since")) })
    }

    /// Deletes stored events (usable and kept aside) whose envelope timestamp is before
    /// `unix_ms`; an event whose timestamp was not a number goes by its batch's arrival time
    /// instead. Event batches received before `unix_ms` that no longer hold any event go too.
    /// Returns how many events were deleted. The retention sweep calls it with the same cutoff
    /// as [`Store::delete_older_than`].
    fn delete_events_older_than(&self, unix_ms: i64) -> StoreFuture<'_, u64> {
        let _ = unix_ms;
        Box::pin(async { Err(StoreError::Unsupported("delete_events_older_than")) })
    }
}
