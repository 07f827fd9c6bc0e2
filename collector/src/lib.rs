//! lvt-collector: receives signed result records from tester agents, stores them, turns them
//! into SLA scores and serves them publicly.
//!
//! `sla` is the pure scoring core (sums in, scores out); the rest are its IO edges:
//! [`config`] (the `--store` spec and settings file), [`store`] (the storage trait and its
//! backends), [`ingest`] (`POST /v1/results`), [`events`] (`POST` and `GET /v1/events`),
//! [`organic`] (organic-load sessions folded from gateway events), [`api`] (the read
//! endpoints), [`problem`] (RFC 7807 errors), [`metrics`] (Prometheus), [`sla_api`] (the SLA,
//! GPU and demand endpoints over the store's hourly cell sums), [`openapi`] (`/openapi.json`), [`dashboard`] (the page at
//! `/`), [`kafka`] (the consumer of the results and events topics) and [`server`] (routes,
//! [`run`], [`serve`]).

pub mod api;
pub mod config;
pub mod dashboard;
pub mod events;
pub mod fleet;
pub mod ingest;
pub mod kafka;
pub mod kafka_health;
pub mod metrics;
pub mod openapi;
pub mod organic;
pub mod problem;
pub mod server;
pub mod sla;
pub mod sla_api;
pub mod store;

pub use server::{run, serve};
