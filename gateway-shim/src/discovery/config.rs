//! How a user describes each discovery source in a configuration file. Unknown keys are
//! rejected so that a typo does not silently select a default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{NaapSource, StaticSource, WebhookSource};

/// How long a source's HTTP request may take unless the configuration says otherwise.
pub const DEFAULT_SOURCE_TIMEOUT_MS: u64 = 5_000;

fn default_timeout_ms() -> u64 {
    DEFAULT_SOURCE_TIMEOUT_MS
}

/// A fixed list of orchestrators, like go-livepeer's `-orchAddr`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// The orchestrators, in the order to list them.
    pub orchestrators: Vec<StaticEntry>,
}

/// One orchestrator of a static list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticEntry {
    /// `host:port` (TLS), `https://host:port` or `http://host:port`.
    pub address: String,
    /// Your own score for it, 0-1, higher is better; optional.
    #[serde(default)]
    pub score: Option<f64>,
}

/// A webhook answering `GET` with a JSON array of `{address, score}`, like go-livepeer's
/// `-orchWebhookUrl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The webhook's URL.
    pub url: String,
    /// How long the request may take, in milliseconds (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// A NaaP discovery API (`GET {base_url}/v1/discover/orchestrators?caps=...`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaapConfig {
    /// The API's base URL, for example `https://naap-api.example.com`.
    pub base_url: String,
    /// The live video-to-video model to ask for (`caps=live-video-to-video/MODEL`).
    pub model: String,
    /// How long the request may take, in milliseconds (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl From<StaticConfig> for StaticSource {
    fn from(config: StaticConfig) -> Self {
        StaticSource {
            orchestrators: config.orchestrators,
        }
    }
}

impl From<WebhookConfig> for WebhookSource {
    fn from(config: WebhookConfig) -> Self {
        WebhookSource {
            url: config.url,
            timeout: Duration::from_millis(config.timeout_ms),
        }
    }
}

impl From<NaapConfig> for NaapSource {
    fn from(config: NaapConfig) -> Self {
        NaapSource {
            base_url: config.base_url,
            model: config.model,
            timeout: Duration::from_millis(config.timeout_ms),
        }
    }
}
