//! Configuration of the ClickHouse backend (`--store clickhouse:URL`).

use serde::Deserialize;

/// Which ClickHouse server and database the backend uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// The HTTP interface's base URL, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// The database holding the collector's tables; created when missing. Default `lvt`.
    /// Letters, digits and `_` only, not starting with a digit.
    #[serde(default = "default_database")]
    pub database: String,
    /// The user, sent as `X-ClickHouse-User` when set.
    #[serde(default)]
    pub user: Option<String>,
    /// The password, sent as `X-ClickHouse-Key` when set.
    #[serde(default)]
    pub password: Option<String>,
    /// How long one HTTP request may take before it fails, in milliseconds. Default 30000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_database() -> String {
    "lvt".to_owned()
}

fn default_timeout_ms() -> u64 {
    30_000
}

impl ClickHouseConfig {
    /// The configuration for the server at `url` with default settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: default_database(),
            user: None,
            password: None,
            timeout_ms: default_timeout_ms(),
        }
    }
}
