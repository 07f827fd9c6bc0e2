//! The SQLite backend: one database file in WAL mode, the embedded default.
//!
//! Writes go through one connection (SQLite has one writer at a time anyway) and reads through a
//! second, so a long page read never waits for an insert's fsync. Both run on tokio's blocking
//! pool. `synchronous=FULL` makes every committed transaction durable before the insert returns,
//! which is what lets the HTTP layer acknowledge a batch only once it survives a `kill -9`.

pub mod bulk;
mod checkpoint;
mod config;
mod events_retention;
mod nonces;
pub mod record_codec;
mod store;

pub use config::SqliteConfig;
pub use store::SqliteStore;

#[cfg(test)]
mod tests;
