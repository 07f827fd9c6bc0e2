//! The top of the collector: `run` and `serve` wire the application state ([`crate::app`]) to
//! its two edges, the HTTP routes ([`crate::http`]) and the Kafka consumer ([`crate::kafka`]),
//! and to the background work ([`crate::app::maintenance`]). Tests call them with a listener on
//! `127.0.0.1:0` and a shutdown future.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::maintenance::{organic_loop, sweep_loop};
use crate::app::{AppState, Clock, open_store, replay_organic, system_clock};
use crate::config::{CollectorConfig, Settings};
use crate::http::router;
use crate::kafka::{ConsumerOptions, KafkaConsumer};
use crate::store::{Store, StoreError};

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
