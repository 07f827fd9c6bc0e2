//! A store double: a real store behind a switch that makes its writes fail as a store that is
//! down does, and optionally behind only the [`Store`] methods every backend must implement (the
//! events methods then answer `StoreError::Unsupported`, as the trait's defaults do, and so do
//! the SLA rollup's everywhere), to check that a caller copes with a backend that lacks them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lvt_collector::store::{
    AgentStats, EventBatch, EventFilter, EventInsertOutcome, EventsPage, InsertOutcome,
    ResultCursor, ResultFilter, ResultsPage, Store, StoreError, StoreFuture, StoredBatch,
    StoredEvent, StoredHeartbeat, StoredResult,
};

/// `inner` behind a `down` switch; see the module's documentation.
pub struct StoreDouble {
    inner: Arc<dyn Store>,
    /// Whether the events methods reach `inner` (else they answer `Unsupported`).
    events: bool,
    /// While set, `insert_batch` and `insert_events` fail with a worker error and store nothing.
    pub down: AtomicBool,
}

impl StoreDouble {
    /// `inner` behind the required methods only, up.
    pub fn required_only(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            events: false,
            down: AtomicBool::new(false),
        }
    }

    /// `inner` with its events methods too, up.
    pub fn with_events(inner: Arc<dyn Store>) -> Self {
        Self {
            events: true,
            ..Self::required_only(inner)
        }
    }

    fn refuse(&self) -> Option<StoreError> {
        self.down
            .load(Ordering::SeqCst)
            .then(|| StoreError::Worker("the test store is down".to_owned()))
    }
}

impl Store for StoreDouble {
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.inner.ping()
    }
    fn insert_batch(
        &self,
        batch: StoredBatch,
        results: Vec<StoredResult>,
    ) -> StoreFuture<'_, InsertOutcome> {
        match self.refuse() {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.insert_batch(batch, results),
        }
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
    fn insert_events(
        &self,
        batch: EventBatch,
        events: Vec<StoredEvent>,
    ) -> StoreFuture<'_, EventInsertOutcome> {
        if !self.events {
            return Box::pin(async { Err(StoreError::Unsupported("insert_events")) });
        }
        match self.refuse() {
            Some(error) => Box::pin(async move { Err(error) }),
            None => self.inner.insert_events(batch, events),
        }
    }
    fn events_page(
        &self,
        filter: EventFilter,
        after_seq: Option<i64>,
        limit: usize,
    ) -> StoreFuture<'_, EventsPage> {
        if !self.events {
            return Box::pin(async { Err(StoreError::Unsupported("events_page")) });
        }
        self.inner.events_page(filter, after_seq, limit)
    }
}
