//! How a user describes each discovery source in a configuration file. Unknown keys are
//! rejected so that a typo does not silently select a default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use alloy_primitives::Address;

use super::chain::{
    ARBITRUM_ONE_AI_SERVICE_REGISTRY, ARBITRUM_ONE_CONTROLLER, DEFAULT_CALL_TIMEOUT,
    DEFAULT_MAX_ORCHESTRATORS, DEFAULT_RPC_URL,
};
use super::{ChainSource, NaapSource, StaticSource, WebhookSource};

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

/// The Livepeer transcoder pool on chain: Controller, BondingManager pool walk, ServiceRegistry
/// URIs, read through an Ethereum JSON-RPC node with `eth_call` only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// The JSON-RPC URL (default Arbitrum's public endpoint, which is rate-limited).
    #[serde(default = "default_rpc_url")]
    pub rpc_url: String,
    /// The Livepeer Controller's address (default the one on Arbitrum One).
    #[serde(default = "default_controller")]
    pub controller: String,
    /// A ServiceRegistry to read URIs from instead of the Controller's: an address, or `ai`
    /// for the AI service registry on Arbitrum One.
    #[serde(default)]
    pub service_registry: Option<String>,
    /// How long each JSON-RPC call may take, in milliseconds (default 10000).
    #[serde(default = "default_chain_timeout_ms")]
    pub timeout_ms: u64,
    /// How many pool members are read at most (default 1000).
    #[serde(default = "default_max_orchestrators")]
    pub max_orchestrators: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            rpc_url: default_rpc_url(),
            controller: default_controller(),
            service_registry: None,
            timeout_ms: default_chain_timeout_ms(),
            max_orchestrators: default_max_orchestrators(),
        }
    }
}

fn default_rpc_url() -> String {
    DEFAULT_RPC_URL.to_string()
}

fn default_controller() -> String {
    ARBITRUM_ONE_CONTROLLER.to_string()
}

fn default_chain_timeout_ms() -> u64 {
    u64::try_from(DEFAULT_CALL_TIMEOUT.as_millis()).unwrap_or(u64::MAX)
}

fn default_max_orchestrators() -> usize {
    DEFAULT_MAX_ORCHESTRATORS
}

/// A chain configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChainConfigError {
    #[error("{field} {value:?} is not an Ethereum address (0x and 40 hex digits)")]
    BadAddress { field: &'static str, value: String },
    #[error("rpc_url {value:?} is not an http(s) URL")]
    BadRpcUrl { value: String },
    #[error("max_orchestrators must be at least 1")]
    NoOrchestrators,
}

/// Parses an address written in a configuration; `field` names it in the error.
pub fn parse_eth_address(field: &'static str, value: &str) -> Result<Address, ChainConfigError> {
    value
        .trim()
        .parse::<Address>()
        .map_err(|_| ChainConfigError::BadAddress {
            field,
            value: value.to_string(),
        })
}

impl TryFrom<ChainConfig> for ChainSource {
    type Error = ChainConfigError;

    fn try_from(config: ChainConfig) -> Result<Self, Self::Error> {
        let rpc_ok = reqwest::Url::parse(&config.rpc_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !rpc_ok {
            return Err(ChainConfigError::BadRpcUrl {
                value: config.rpc_url,
            });
        }
        if config.max_orchestrators == 0 {
            return Err(ChainConfigError::NoOrchestrators);
        }
        let service_registry = match config.service_registry.as_deref() {
            None => None,
            Some(v) if v.trim().eq_ignore_ascii_case("ai") => {
                Some(ARBITRUM_ONE_AI_SERVICE_REGISTRY)
            }
            Some(v) => Some(parse_eth_address("service_registry", v)?),
        };
        Ok(ChainSource {
            controller: parse_eth_address("controller", &config.controller)?,
            rpc_url: config.rpc_url,
            service_registry,
            timeout: Duration::from_millis(config.timeout_ms),
            max_orchestrators: config.max_orchestrators,
        })
    }
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
