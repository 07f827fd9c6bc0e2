//! lvt-collector: receives signed result records from tester agents, stores them, turns them
//! into SLA scores and serves them publicly.
//!
//! The crate is in layers, bottom to top, and no module imports one above it (a test,
//! `layers_import_only_downward`, reads the sources and checks it):
//!
//! 1. the pure core: [`sla`] (sums in, scores out), [`stored`] (the forms in which records are
//!    kept) and [`verify`] (signature and record checks, time as an input, their own errors);
//! 2. state: [`store`] (the storage trait and its backends), [`organic`] (organic-load sessions
//!    folded from gateway events), [`kafka_health`] and [`metrics`] (the collector's own health
//!    and Prometheus counters), and [`config`] (the `--store` spec and settings file);
//! 3. the application: [`app`] (the shared state and the ingest services, the retention sweep,
//!    the organic replay, agent statuses, the SLA answer cache);
//! 4. the edges, side by side and neither importing the other: [`http`] (the handlers, RFC 7807
//!    problems, OpenAPI, the dashboard) and [`kafka`] (the consumer of the results and events
//!    topics);
//! 5. [`server`]: [`run`] and [`serve`], which wire the edges to the application.

pub mod app;
pub mod config;
pub mod http;
pub mod kafka;
pub mod kafka_health;
pub mod metrics;
pub mod organic;
pub mod server;
pub mod sla;
pub mod store;
pub mod stored;
pub mod verify;

pub use server::{run, serve};

#[cfg(test)]
mod layers;
