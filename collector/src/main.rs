//! `lvt-collector`: thin binary over the library. Parses options, loads the settings, binds the
//! listener and runs the server until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lvt_collector::app::{open_store, system_clock};
use lvt_collector::config::{CollectorConfig, Settings, StoreSpec};
use lvt_collector::server::serve;

/// Receives signed result records from lvt agents, stores them and serves them.
#[derive(Debug, Parser)]
#[command(name = "lvt-collector", version)]
struct Options {
    /// Address to listen on, for example 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long)]
    listen: String,
    /// Where to store results: sqlite:PATH, or clickhouse:URL (a ClickHouse server over HTTP).
    #[arg(long)]
    store: String,
    /// The settings file (TOML): agents and their keys, timestamp window, body limit, retention,
    /// and the `[kafka]` consumer (brokers, group, results and events topics).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Exit status for a configuration error (bad file, bad store spec, backend not built).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = Options::parse();
    let config = match load(&options) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("lvt-collector: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lvt-collector: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options, config))
}

fn load(options: &Options) -> Result<CollectorConfig, String> {
    let store: StoreSpec = options.store.parse().map_err(|error| format!("{error}"))?;
    let settings = match &options.config {
        Some(path) => Settings::load(path).map_err(|error| error.to_string())?,
        None => Settings::default(),
    };
    Ok(CollectorConfig { store, settings })
}

async fn run(options: Options, config: CollectorConfig) -> ExitCode {
    let store = match open_store(&config.store).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("lvt-collector: opening the store: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&options.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("lvt-collector: binding {}: {error}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        // Tests and scripts read this line to learn the port when listening on port 0.
        Ok(address) => println!("lvt-collector listening on http://{address}"),
        Err(error) => {
            eprintln!("lvt-collector: {error}");
            return ExitCode::FAILURE;
        }
    }
    let shutdown = async {
        wait_for_signal().await;
        tracing::info!(message = "Shutting down.");
    };
    match serve(listener, config.settings, store, system_clock(), shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lvt-collector: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
