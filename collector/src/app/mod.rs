//! The application layer: the state every edge shares ([`AppState`]: settings, agents, store,
//! metrics, clock, the organic-load fold, the SLA answer cache) and the services the edges call
//! ([`ingest`]: signed bodies checked and stored; [`maintenance`]: retention and the organic
//! replay; [`fleet`]: agent statuses). The HTTP handlers ([`crate::http`]) and the Kafka consumer
//! ([`crate::kafka`]) sit above it side by side; it imports neither, and answers with its own
//! errors ([`ingest::IngestError`], [`StoreError`]), never HTTP problems.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Agent, Settings, StoreSpec};
use crate::metrics::Metrics;
use crate::store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError, StoreFuture};

pub mod cache;
pub mod fleet;
pub mod ingest;
pub mod maintenance;

pub use cache::ResponseCache;
pub use maintenance::{OrganicReplay, replay_organic, sweep};

/// The wall clock the server reads: milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How often the retention sweep runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// How often open organic streams are checked for the idle timeout: every `idle_timeout_s`, at
/// most once a second and at least once a minute, so that a stream whose close was lost is
/// stored between one and two idle timeouts (at most one minute past one) after its last event.
pub fn organic_flush_interval(idle_timeout_s: u64) -> Duration {
    Duration::from_secs(idle_timeout_s.clamp(1, 60))
}

/// The system clock as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// What every handler shares.
pub struct AppState {
    /// The resolved settings.
    pub settings: Settings,
    /// The configured agents by key id.
    pub agents_by_key: HashMap<String, Agent>,
    /// Where results are stored.
    pub store: Arc<dyn Store>,
    /// The collector's own metrics.
    pub metrics: Metrics,
    /// The wall clock.
    pub clock: Clock,
    /// The organic-load sessions being folded from gateway events ([`crate::organic`]).
    pub organic: crate::organic::OrganicLoad,
    /// SLA answers already computed for the store's current data version.
    pub sla_cache: ResponseCache,
}

impl AppState {
    /// Builds the shared state.
    pub fn new(settings: Settings, store: Arc<dyn Store>, clock: Clock) -> Self {
        let agents_by_key = settings
            .agents
            .iter()
            .map(|agent| (agent.key_id.clone(), agent.clone()))
            .collect();
        let organic = crate::organic::OrganicLoad::new(crate::organic::OrganicSettings {
            // lvt agents' own gateway events describe test load, never organic load, and so do
            // those of the gateways the settings name.
            test_gateways: settings
                .agents
                .iter()
                .map(|agent| lvt_schema::events::agent_gateway_name(&agent.key_id))
                .chain(settings.organic.test_gateways.iter().cloned())
                .collect(),
            idle_timeout_ms: i64::try_from(settings.organic.idle_timeout_s)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
            ..Default::default()
        });
        Self {
            settings,
            agents_by_key,
            store,
            metrics: Metrics::default(),
            clock,
            organic,
            sla_cache: ResponseCache::default(),
        }
    }
}

/// Opens the store named by `spec` (creating its tables when missing).
pub async fn open_store(spec: &StoreSpec) -> Result<Arc<dyn Store>, StoreError> {
    match spec {
        StoreSpec::Sqlite(config) => Ok(Arc::new(SqliteStore::open(config)?)),
        StoreSpec::ClickHouse(url) => Ok(Arc::new(
            ClickHouseStore::open(ClickHouseConfig::new(url.clone())).await?,
        )),
    }
}

/// Runs a store operation and records its latency; a failure is logged here, once, and returned
/// for the caller to answer in its own terms (a 503 problem over HTTP, a retry in the Kafka
/// consumer, a warning in the sweep).
pub async fn timed<T>(
    state: &AppState,
    operation: &'static str,
    future: StoreFuture<'_, T>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = future.await;
    state
        .metrics
        .handle_store_latency(operation, started.elapsed());
    result.inspect_err(|error| {
        tracing::warn!(message = "Store operation failed.", operation, error = %error);
    })
}
