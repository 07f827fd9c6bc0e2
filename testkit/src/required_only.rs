//! SQLite behind only the [`Store`] methods every backend must implement, so that
//! the events methods and the SLA rollup keep the trait's defaults (answering
//! `StoreError::Unsupported`), with a switch that makes result inserts fail as a store that is
//! down does.

use std::sync::atomic::{AtomicBool, Ordering};

use lvt_collector::store::sqlite::SqliteStore;
use lvt_collector::store::{
    AgentStats, InsertOutcome, ResultCursor, ResultFilter, ResultsPage, Store, StoreError,
    StoreFuture, StoredBatch, StoredHeartbeat, StoredResult,
};

/// SQLite with the required methods only; inserts fail while `down` is set.
pub struct RequiredOnly {
    inner: SqliteStore,
    /// While set, `insert_batch` fails with a worker error and stores nothing.
    pub down: AtomicBool,
}

impl RequiredOnly {
    /// `inner` behind the required methods, up.
    pub fn new(inner: SqliteStore) -> Self {
        Self {
            inner,
            down: AtomicBool::new(false),
        }
    }
}

impl Store for RequiredOnly {
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.inner.ping()
    }
    fn insert_batch(
        &self,
        batch: StoredBatch,
        results: Vec<StoredResult>,
    ) -> StoreFuture<'_, InsertOutcome> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Worker("down for the test".into())) });
        }
        self.inner.insert_batch(batch, results)
    }
    fn remember_nonce(
        &self,
        key_id: String,
        nonce: String,
        timestamp_ms: i64,
    ) -> StoreFuture<'_, bool> {
        self.inner.remember_nonce(key_id, nonce, timestamp_ms)
    }
    fn prune_nonces(&self, before_unix_ms: i64) -> StoreFuture<'_, u64> {
        self.inner.prune_nonces(before_unix_ms)
    }
    fn results_page(
        &self,
        filter: ResultFilter,
        cursor: Option<ResultCursor>,
        limit: usize,
    ) -> StoreFuture<'_, ResultsPage> {
        self.inner.results_page(filter, cursor, limit)
    }
    fn batch(&self, batch_id: i64) -> StoreFuture<'_, Option<StoredBatch>> {
        self.inner.batch(batch_id)
    }
    fn agents(&self) -> StoreFuture<'_, Vec<AgentStats>> {
        self.inner.agents()
    }
    fn put_heartbeat(
        &self,
        agent_id: String,
        received_at_unix_ms: i64,
        heartbeat_json: String,
    ) -> StoreFuture<'_, ()> {
        self.inner
            .put_heartbeat(agent_id, received_at_unix_ms, heartbeat_json)
    }
    fn heartbeats(&self) -> StoreFuture<'_, Vec<StoredHeartbeat>> {
        self.inner.heartbeats()
    }
    fn count_results(&self) -> StoreFuture<'_, u64> {
        self.inner.count_results()
    }
    fn delete_older_than(&self, unix_ms: i64) -> StoreFuture<'_, u64> {
        self.inner.delete_older_than(unix_ms)
    }
}
