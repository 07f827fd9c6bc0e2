//! The SQLite backend: one database file in WAL mode, the embedded default.
//!
//! Writes go through one connection (SQLite has one writer at a time anyway) and reads through a
//! second, so a long page read never waits for an insert's fsync. Both run on tokio's blocking
//! pool. `synchronous=FULL` makes every committed transaction durable before the insert returns,
//! which is what lets the HTTP layer acknowledge a batch only once it survives a `kill -9`.
//!
//! By job: `schema` (the tables, the layout version and its upgrades, opening a connection),
//! `write` (group commit of result batches, the SLA rollups kept in the same transactions, event
//! inserts), `read` (pages and SLA cells) and `store` ([`SqliteStore`] itself: the connection
//! pair and the [`crate::store::Store`] impl that sends each call to the right one).

pub mod bulk;
mod checkpoint;
mod config;
mod events_retention;
mod nonces;
mod read;
pub mod record_codec;
mod schema;
mod store;
mod write;

pub use config::SqliteConfig;
pub use store::SqliteStore;

#[cfg(test)]
mod tests;
