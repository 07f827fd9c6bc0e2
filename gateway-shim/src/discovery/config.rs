//! The pieces of a discovery source's description that more than one place needs: a static
//! list's entry, the on-chain source's configuration and its checks, the defaults, and the URL
//! rule every source's URL follows. The description itself, in both its forms, is
//! [`super::SourceSpec`]. Unknown keys are rejected so that a typo does not silently select a
//! default.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// How long a webhook's or a NaaP API's request may take unless the configuration says
/// otherwise, in milliseconds.
pub const DEFAULT_SOURCE_TIMEOUT_MS: u32 = 5_000;

/// One orchestrator of a static list: in a scenario's `orchestrators = [{ address, score }]`,
/// or one URI of a `static:URI,...` spec (which has no score).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "DiscoveredOrchestrator")]
#[schemars(description = "One entry of a discovery answer.")]
pub struct StaticEntry {
    /// The orchestrator's service URI (go-livepeer calls it `address`).
    pub address: String,
    /// Higher is better; absent counts as 0.
    // A written list without a score means 0, as scenarios have always read it; only a
    // `static:URI` spec, which cannot say a score, leaves it out.
    #[serde(default = "zero_score")]
    #[schemars(with = "f64")]
    pub score: Option<f64>,
}

fn zero_score() -> Option<f64> {
    Some(0.0)
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

/// Parses a ServiceRegistry override: an address, or `ai` (any case) for the AI service
/// registry on Arbitrum One.
pub fn parse_service_registry(value: &str) -> Result<EthAddress, ChainConfigError> {
    let value = if value.trim().eq_ignore_ascii_case("ai") {
        ARBITRUM_ONE_AI_SERVICE_REGISTRY_HEX
    } else {
        value
    };
    parse_eth_address("service_registry", value)
}

/// Whether `url` is an absolute http or https URL, the rule for every URL a discovery source
/// requests: the URL parser's verdict, so that a URL that passes is one the request can use.
pub fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
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
        if !is_http_url(&self.rpc_url) {
            return Err(ChainConfigError::BadRpcUrl {
                value: self.rpc_url,
            });
        }
        if self.max_orchestrators == 0 {
            return Err(ChainConfigError::NoOrchestrators);
        }
        let service_registry = self
            .service_registry
            .as_deref()
            .map(parse_service_registry)
            .transpose()?;
        Ok(CheckedChainConfig {
            controller: parse_eth_address("controller", &self.controller)?,
            rpc_url: self.rpc_url,
            service_registry,
            timeout: Duration::from_millis(self.timeout_ms),
            max_orchestrators: self.max_orchestrators,
        })
    }
}
