//! Configuration of the SQLite backend (`--store sqlite:PATH`).

use std::path::PathBuf;

use serde::Deserialize;

/// Where and how the SQLite database is opened.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file; created with its tables when missing. Its directory must exist.
    pub path: PathBuf,
    /// How long a connection waits for a lock held by another process before failing, in
    /// milliseconds. Default 5000.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
}

fn default_busy_timeout_ms() -> u64 {
    5000
}

impl SqliteConfig {
    /// The configuration for `path` with default settings.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            busy_timeout_ms: default_busy_timeout_ms(),
        }
    }
}
