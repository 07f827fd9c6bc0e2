//! The ClickHouse backend (`--store clickhouse:URL`): MergeTree tables over ClickHouse's HTTP
//! interface, for deployments that keep months of sessions from many agents.
//!
//! It speaks plain HTTP with `JSONEachRow` rather than the native protocol, so it works against
//! any ClickHouse >= 24 and against `ci/clickhouse-adapter` (PyPI's chdb behind a small HTTP
//! server), which is what the tests use (`lvt_testkit::clickhouse`). ClickHouse has no multi-statement transactions and no
//! unique keys, so idempotency and nonce checks are done by this backend under a lock, with
//! `ReplacingMergeTree` deduplication as the backstop when several collectors share one server;
//! docs/collector.md ("ClickHouse backend") explains the trade-offs. The `events` module holds the
//! go-livepeer event tables.

mod config;
mod events;
mod sql;
mod store;

pub use config::ClickHouseConfig;
pub use store::{ClickHouseError, ClickHouseStore, HourlyCount};

#[cfg(test)]
mod tests;
