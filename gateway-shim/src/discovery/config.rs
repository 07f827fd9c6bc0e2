//! How a user describes each discovery source in a configuration file. Unknown keys are
//! rejected so that a typo does not silently select a default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{NaapSource, StaticSource, WebhookSource};

/// Livepeer's Controller on Arbitrum One, as written in configurations (EIP-55 checksummed).
pub const ARBITRUM_ONE_CONTROLLER_HEX: &str = "0xD8E8328501E9645d16Cf49539efC04f734606ee4";

/// The AI service registry on Arbitrum One, where orchestrators offering AI pipelines (live
/// video-to-video among them) register their URI; go-livepeer's `-aiServiceRegistry` flag
/// uses it in place of the Controller's ServiceRegistry. Configurations name it `ai`.
pub const ARBITRUM_ONE_AI_SERVICE_REGISTRY_HEX: &str = "0x04C0b249740175999E5BF5c9ac1dA92431EF34C5";

/// Arbitrum's public JSON-RPC endpoint, used when no RPC URL is given. It is rate-limited;
/// give your own provider's URL for regular use.
pub const DEFAULT_RPC_URL: &str = "https://arb1.arbitrum.io/rpc";

/// How many pool members are read at most. Livepeer's active set is 100 on Arbitrum One, so
/// the default leaves room without letting a broken list run on for long.
pub const DEFAULT_MAX_ORCHESTRATORS: usize = 1_000;

/// How long one JSON-RPC call may take unless configured otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An Ethereum address's 20 bytes, as parsed from a configuration.
pub type EthAddress = [u8; 20];

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
    ARBITRUM_ONE_CONTROLLER_HEX.to_string()
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
    /// The configuration is valid but this build has no on-chain discovery.
    #[error(
        "on-chain discovery is not in this build: it was built without the `chain` cargo \
         feature (on by default); rebuild with `--features chain`"
    )]
    NotBuilt,
}

/// Parses an address written in a configuration (`0x` and 40 hex digits, any case; the `0x` may
/// be left out); `field` names it in the error.
pub fn parse_eth_address(field: &'static str, value: &str) -> Result<EthAddress, ChainConfigError> {
    let bad = || ChainConfigError::BadAddress {
        field,
        value: value.to_string(),
    };
    let trimmed = value.trim();
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    if digits.len() != 40 {
        return Err(bad());
    }
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(digits, &mut bytes).map_err(|_| bad())?;
    Ok(bytes)
}

/// A chain configuration checked, with its addresses parsed: what a [`super::ChainSource`] is
/// built from, and what a build without the `chain` feature still checks before refusing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedChainConfig {
    /// The JSON-RPC URL, http or https.
    pub rpc_url: String,
    /// The Controller.
    pub controller: EthAddress,
    /// The ServiceRegistry override, `ai` resolved.
    pub service_registry: Option<EthAddress>,
    /// Bound on each JSON-RPC call.
    pub timeout: Duration,
    /// At least one.
    pub max_orchestrators: usize,
}

impl ChainConfig {
    /// Checks every field and parses the addresses.
    ///
    /// # Errors
    /// The first field that cannot be used.
    pub fn check(self) -> Result<CheckedChainConfig, ChainConfigError> {
        let rpc_ok = reqwest::Url::parse(&self.rpc_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !rpc_ok {
            return Err(ChainConfigError::BadRpcUrl {
                value: self.rpc_url,
            });
        }
        if self.max_orchestrators == 0 {
            return Err(ChainConfigError::NoOrchestrators);
        }
        let service_registry = match self.service_registry.as_deref() {
            None => None,
            Some(v) if v.trim().eq_ignore_ascii_case("ai") => Some(parse_eth_address(
                "service_registry",
                ARBITRUM_ONE_AI_SERVICE_REGISTRY_HEX,
            )?),
            Some(v) => Some(parse_eth_address("service_registry", v)?),
        };
        Ok(CheckedChainConfig {
            controller: parse_eth_address("controller", &self.controller)?,
            rpc_url: self.rpc_url,
            service_registry,
            timeout: Duration::from_millis(self.timeout_ms),
            max_orchestrators: self.max_orchestrators,
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
