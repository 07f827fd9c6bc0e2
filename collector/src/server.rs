//! The HTTP server: routes, shared state, the retention sweep, and `run`/`serve`, which tests
//! call with a listener on `127.0.0.1:0` and a shutdown future.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use tokio::net::TcpListener;

use crate::config::{Agent, CollectorConfig, Settings, StoreSpec};
use crate::kafka::{ConsumerOptions, KafkaConsumer};
use crate::metrics::Metrics;
use crate::store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use crate::{api, dashboard, events, ingest, openapi, sla_api};

/// The wall clock the server reads: milliseconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How often the retention sweep runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

const DAY_MS: i64 = 86_400_000;

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
    pub sla_cache: crate::sla_api::ResponseCache,
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
            sla_cache: crate::sla_api::ResponseCache::default(),
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
    /// The Kafka consumer of `[kafka]` could not start.
    #[error("{0}")]
    Kafka(#[from] crate::kafka::KafkaError),
}

/// Every routed path with its handlers. [`router`] is built from this list and a test checks
/// that each path is in the OpenAPI document ([`crate::openapi`]).
pub fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        (
            "/v1/results",
            post(ingest::handle_results_post).get(api::handle_results_get),
        ),
        (
            "/v1/events",
            post(events::handle_events_post).get(events::handle_events_get),
        ),
        ("/v1/batches/{id}", get(api::handle_batch_get)),
        ("/v1/agents", get(api::handle_agents_get)),
        (
            "/v1/agents/heartbeat",
            post(crate::fleet::handle_heartbeat_post),
        ),
        ("/v1/sla/compliance", get(sla_api::handle_compliance_get)),
        (
            "/v1/sla/orchestrators",
            get(sla_api::handle_orchestrators_get),
        ),
        ("/v1/gpu/metrics", get(sla_api::handle_gpu_metrics_get)),
        ("/v1/network/demand", get(sla_api::handle_demand_get)),
        ("/healthz", get(api::handle_healthz)),
        ("/metrics", get(api::handle_metrics)),
        ("/openapi.json", get(openapi::handle_openapi_get)),
        ("/", get(dashboard::handle_dashboard_get)),
    ]
}

/// Every route of the collector.
pub fn router(state: Arc<AppState>) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers)
        })
        .fallback(api::handle_not_found)
        // The ingest handler enforces its own, configurable limit while streaming.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(api::cors))
        .with_state(state)
}

/// Opens the store named by `spec` (creating its tables when missing).
pub async fn open_store(spec: &StoreSpec) -> Result<Arc<dyn Store>, RunError> {
    match spec {
        StoreSpec::Sqlite(config) => Ok(Arc::new(SqliteStore::open(config)?)),
        StoreSpec::ClickHouse(url) => Ok(Arc::new(
            ClickHouseStore::open(ClickHouseConfig::new(url.clone())).await?,
        )),
    }
}

/// Opens the configured store and serves on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: CollectorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let store = open_store(&config.store).await?;
    serve(listener, config.settings, store, system_clock(), shutdown).await
}

/// Serves on `listener` with an opened store and a clock until `shutdown` completes; runs the
/// retention sweep meanwhile, and the Kafka consumer when `settings.kafka` is set.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    store: Arc<dyn Store>,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    serve_with(
        listener,
        settings,
        store,
        clock,
        ConsumerOptions::default(),
        shutdown,
    )
    .await
}

/// [`serve`] with the Kafka consumer's batching and retry options. The consumer starts before
/// the first request is answered (a bad `[kafka]` is an error at start) and stops on the same
/// `shutdown` as the HTTP server; `serve_with` returns once both have stopped.
pub async fn serve_with(
    listener: TcpListener,
    settings: Settings,
    store: Arc<dyn Store>,
    clock: Clock,
    mut kafka_options: ConsumerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    if let Some(seconds) = settings.kafka.as_ref().and_then(|k| k.session_timeout_s) {
        kafka_options.session_timeout = std::time::Duration::from_secs(seconds);
    }
    let state = Arc::new(AppState::new(settings, store, clock));
    // Before anything is served, so that no flush finishes a stream half replayed.
    match replay_organic(&state).await {
        Ok(replayed) if replayed.events > 0 => tracing::info!(
            message = "Organic streams rebuilt from stored events.",
            events = replayed.events,
            open_streams = replayed.open_streams
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(
            message = "Organic streams could not be rebuilt; streams open at the last stop are lost.",
            error = %error
        ),
    }
    let consumer = match &state.settings.kafka {
        Some(config) => Some(KafkaConsumer::new(
            Arc::clone(&state),
            config,
            kafka_options,
        )?),
        None => None,
    };
    // One shutdown stops both the HTTP server and the consumer: the caller's future flips this
    // flag, and so does the server stopping for any other reason.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    let consumer_task = consumer.map(|consumer| {
        let mut stopped = stopped.clone();
        tokio::spawn(consumer.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    let sweeper = tokio::spawn(sweep_loop(Arc::clone(&state)));
    let organic_flusher = tokio::spawn(organic_loop(Arc::clone(&state)));
    let stop_on_shutdown = Arc::clone(&stop);
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop_on_shutdown.send_replace(true);
        })
        .await;
    stop.send_replace(true);
    sweeper.abort();
    organic_flusher.abort();
    if let Some(task) = consumer_task
        && let Err(error) = task.await
    {
        tracing::warn!(message = "The Kafka consumer task was lost.", error = %error);
    }
    result.map_err(RunError::from)
}

async fn sweep_loop(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        sweep(&state).await;
    }
}

/// What [`replay_organic`] folded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrganicReplay {
    /// Stored events folded again.
    pub events: u64,
    /// Streams open once they were folded.
    pub open_streams: usize,
}

/// How many stored events one replay read asks for.
const REPLAY_PAGE: usize = 1_000;

/// Folds the usable events stored in the last `[organic] replay_window_s` (by envelope
/// timestamp) into the organic load again, as if they arrived now: streams that were open when
/// the collector stopped go on with the events still to come, and those that were already over
/// are finished one idle timeout later. A stream stored before the stop comes out with the same
/// session id, so storing it again is a duplicate that adds nothing. Called once at start,
/// before anything is served; nothing is flushed here.
pub async fn replay_organic(state: &AppState) -> Result<OrganicReplay, StoreError> {
    let window_s = state.settings.organic.replay_window_s;
    let now_ms = (state.clock)();
    let mut replayed = OrganicReplay::default();
    if window_s == 0 {
        return Ok(replayed);
    }
    let window_ms = i64::try_from(window_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let Some(first) = state
        .store
        .first_event_seq_since(now_ms.saturating_sub(window_ms))
        .await?
    else {
        return Ok(replayed);
    };
    let mut after = Some(first.saturating_sub(1));
    while let Some(after_seq) = after {
        let page = state
            .store
            .events_page(
                crate::store::EventFilter::default(),
                Some(after_seq),
                REPLAY_PAGE,
            )
            .await?;
        state.organic.observe(
            page.rows
                .iter()
                .filter(|row| crate::organic::folds_family(&row.event.family))
                .map(|row| row.event.envelope_json.as_str()),
            now_ms,
        );
        replayed.events += u64::try_from(page.rows.len()).unwrap_or(u64::MAX);
        after = page.next_after_seq;
    }
    replayed.open_streams = state.organic.open_streams();
    Ok(replayed)
}

async fn organic_loop(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(organic_flush_interval(
        state.settings.organic.idle_timeout_s,
    ));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the sweep at start already flushed.
    interval.tick().await;
    loop {
        interval.tick().await;
        // Streams silent for the idle timeout are finished and stored.
        events::feed_organic_load(&state, std::iter::empty(), (state.clock)()).await;
    }
}

/// Deletes results past the retention and nonces past the timestamp window. A failure is
/// logged and retried at the next sweep.
pub async fn sweep(state: &AppState) {
    let now_ms = (state.clock)();
    let retention_ms = i64::from(state.settings.retention_days).saturating_mul(DAY_MS);
    let results_before = now_ms.saturating_sub(retention_ms);
    match ingest::timed(
        state,
        "delete_older_than",
        state.store.delete_older_than(results_before),
    )
    .await
    {
        Ok(deleted) if deleted > 0 => {
            tracing::info!(
                message = "Old results deleted.",
                deleted,
                before_unix_ms = results_before
            );
        }
        Ok(_) => {}
        Err(problem) => {
            tracing::warn!(message = "Retention sweep failed.", error = %problem.detail);
        }
    }
    // Events go by the same cutoff as results, by envelope timestamp.
    match ingest::timed(
        state,
        "delete_events_older_than",
        state.store.delete_events_older_than(results_before),
    )
    .await
    {
        Ok(deleted) if deleted > 0 => {
            tracing::info!(
                message = "Old events deleted.",
                deleted,
                before_unix_ms = results_before
            );
        }
        Ok(_) => {}
        Err(problem) => {
            tracing::warn!(message = "Event retention failed.", error = %problem.detail);
        }
    }
    // Organic streams whose close was lost are finished here once their idle timeout passed.
    events::feed_organic_load(state, std::iter::empty(), now_ms).await;
    // A nonce signed before now - window can only come with a stale timestamp, which is refused
    // before the nonce is looked at, so forgetting it cannot reopen a replay.
    let window_ms = i64::try_from(state.settings.timestamp_window_ms).unwrap_or(i64::MAX);
    let nonces_before = now_ms.saturating_sub(window_ms);
    if let Err(problem) = ingest::timed(
        state,
        "prune_nonces",
        state.store.prune_nonces(nonces_before),
    )
    .await
    {
        tracing::warn!(message = "Nonce pruning failed.", error = %problem.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{SqliteConfig, SqliteStore};
    use crate::store::{StoredBatch, StoredResult};

    fn result(session_id: &str, ended_at_unix_ms: i64) -> StoredResult {
        StoredResult {
            session_id: session_id.to_owned(),
            orchestrator_address: None,
            orchestrator_uri: Some("https://o:8935".to_owned()),
            gpu: None,
            region: None,
            pipeline: "p".to_owned(),
            model_id: "m".to_owned(),
            complexity: None,
            outcome: "passed".to_owned(),
            started_at_unix_ms: ended_at_unix_ms - 1,
            ended_at_unix_ms,
            sla_cells: None,
            record_json: "{}".to_owned(),
        }
    }

    #[test]
    fn every_routed_path_is_documented() {
        let document = crate::openapi::document();
        for (path, _) in routes() {
            assert!(
                document["paths"].get(path).is_some(),
                "{path} is routed but not in /openapi.json"
            );
        }
        let routed: Vec<&str> = routes().into_iter().map(|(path, _)| path).collect();
        for operation in crate::openapi::OPERATIONS {
            assert!(
                routed.contains(&operation.path),
                "{} is documented but not routed",
                operation.path
            );
        }
    }

    #[tokio::test]
    async fn sweep_applies_retention_and_forgets_expired_nonces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteStore::open(&SqliteConfig::new(dir.path().join("lvt.db"))).expect("open"),
        );
        let now_ms = 200 * DAY_MS;
        let settings = Settings {
            retention_days: 90,
            ..Settings::default()
        };
        let state = AppState::new(settings, store.clone(), Arc::new(move || now_ms));
        let batch = StoredBatch {
            agent_id: "a".into(),
            key_id: "k".into(),
            timestamp_ms: now_ms,
            nonce: "n".into(),
            signature: "s".into(),
            canonical_sha256: "h".into(),
            session_ids: vec!["old".into(), "kept".into()],
            received_at_unix_ms: now_ms,
        };
        let results = vec![
            result("old", now_ms - 90 * DAY_MS - 1),
            result("kept", now_ms - 90 * DAY_MS),
        ];
        store.insert_batch(batch, results).await.expect("insert");
        assert!(
            store
                .remember_nonce("k".into(), "expired".into(), now_ms - 300_001)
                .await
                .expect("nonce")
        );
        assert!(
            store
                .remember_nonce("k".into(), "live".into(), now_ms - 300_000)
                .await
                .expect("nonce")
        );

        sweep(&state).await;

        assert_eq!(store.count_results().await.expect("count"), 1);
        let fresh = |nonce: &'static str| store.remember_nonce("k".into(), nonce.into(), now_ms);
        assert!(
            fresh("expired").await.expect("nonce"),
            "expired nonce forgotten"
        );
        assert!(
            !fresh("live").await.expect("nonce"),
            "nonce in the window kept"
        );
    }
}
