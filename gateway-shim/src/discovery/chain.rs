//! The on-chain source: the Livepeer transcoder pool read from an Ethereum JSON-RPC node, as
//! go-livepeer's gateway reads it (`TranscoderPool` in eth/client.go).
//!
//! Three contracts are involved. The Controller maps `keccak256(name)` to each protocol
//! contract's address (`getContract(bytes32)`); the BondingManager keeps the active pool as a
//! linked list walked with `getFirstTranscoderInPool()` and `getNextTranscoderInPool(address)`
//! until the zero address; the ServiceRegistry maps each orchestrator's address to its service
//! URI (`getServiceURI(address)`). The ServiceRegistry can be overridden, for the AI service
//! registry that AI orchestrators register in.
//!
//! Only `eth_call` is used, all at one block number read first, so that the walk sees one
//! consistent pool even while blocks are produced. No key, no transaction. The walk is bounded
//! (`max_orchestrators`) and guarded against a cycle, which a correct contract never has but a
//! wrong address or a stand-in could. An orchestrator whose URI is missing or malformed is
//! skipped with its reason, not an error of the whole source.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use alloy_primitives::{Address, Bytes, keccak256};
use alloy_sol_types::{SolCall, SolError as _, sol};
use futures::StreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Candidate, DiscoverySource, SourceError};
use lvt_wire::live::OrchestratorUri;

sol! {
    /// Livepeer's Controller: the registry of protocol contract addresses.
    interface IController {
        function getContract(bytes32 id) external view returns (address);
    }

    /// The pool walk of Livepeer's BondingManager.
    interface IBondingManager {
        function getFirstTranscoderInPool() external view returns (address);
        function getNextTranscoderInPool(address transcoder) external view returns (address);
    }

    /// Livepeer's ServiceRegistry: where each orchestrator says it can be reached.
    interface IServiceRegistry {
        function getServiceURI(address addr) external view returns (string);
    }
}

pub use super::config::{DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_ORCHESTRATORS, DEFAULT_RPC_URL};

/// Livepeer's Controller on Arbitrum One ([`super::config::ARBITRUM_ONE_CONTROLLER_HEX`]).
pub const ARBITRUM_ONE_CONTROLLER: Address =
    alloy_primitives::address!("D8E8328501E9645d16Cf49539efC04f734606ee4");

/// The AI service registry on Arbitrum One
/// ([`super::config::ARBITRUM_ONE_AI_SERVICE_REGISTRY_HEX`]).
pub const ARBITRUM_ONE_AI_SERVICE_REGISTRY: Address =
    alloy_primitives::address!("04C0b249740175999E5BF5c9ac1dA92431EF34C5");

impl TryFrom<super::config::ChainConfig> for ChainSource {
    type Error = super::config::ChainConfigError;

    fn try_from(config: super::config::ChainConfig) -> Result<Self, Self::Error> {
        let checked = config.check()?;
        Ok(ChainSource {
            rpc_url: checked.rpc_url,
            controller: Address::from(checked.controller),
            service_registry: checked.service_registry.map(Address::from),
            timeout: checked.timeout,
            max_orchestrators: checked.max_orchestrators,
        })
    }
}

/// How many `getServiceURI` calls are in flight at once. The pool walk itself is sequential
/// (each step needs the previous answer); the URI reads are independent.
const URI_CONCURRENCY: usize = 8;

/// An answer of the RPC node larger than this is not an `eth_call` result we can use.
const MAX_RPC_BODY_BYTES: usize = 1 << 20;

/// The on-chain discovery source.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainSource {
    /// An Ethereum JSON-RPC URL (http or https) of the chain the Controller lives on.
    pub rpc_url: String,
    /// The Controller's address.
    pub controller: Address,
    /// A ServiceRegistry to read URIs from instead of the Controller's one.
    pub service_registry: Option<Address>,
    /// Bound on each JSON-RPC call, body included.
    pub timeout: Duration,
    /// How many pool members are read at most (at least one).
    pub max_orchestrators: usize,
}

impl ChainSource {
    /// Arbitrum One through `rpc_url`, with the Controller's own ServiceRegistry.
    pub fn arbitrum_one(rpc_url: impl Into<String>) -> Self {
        ChainSource {
            rpc_url: rpc_url.into(),
            controller: ARBITRUM_ONE_CONTROLLER,
            service_registry: None,
            timeout: DEFAULT_CALL_TIMEOUT,
            max_orchestrators: DEFAULT_MAX_ORCHESTRATORS,
        }
    }

    /// How errors name this source.
    pub fn origin(&self) -> String {
        format!("on-chain discovery through {}", self.rpc_url)
    }

    /// Reads the pool: resolves the contracts, walks the pool and reads each URI.
    pub async fn discover(&self, http: &reqwest::Client) -> Result<ChainDiscovery, ChainError> {
        let rpc = Rpc {
            http,
            url: &self.rpc_url,
            timeout: self.timeout,
        };
        let block = rpc.block_number().await?;
        let at = BlockTag(block);
        let bonding_manager = self.resolve(&rpc, at, "BondingManager").await?;
        let service_registry = match self.service_registry {
            Some(address) => address,
            None => self.resolve(&rpc, at, "ServiceRegistry").await?,
        };

        let max = self.max_orchestrators.max(1);
        let mut pool: Vec<Address> = Vec::new();
        let mut seen: HashSet<Address> = HashSet::new();
        let mut current = rpc
            .call(
                at,
                bonding_manager,
                "BondingManager.getFirstTranscoderInPool()".to_string(),
                IBondingManager::getFirstTranscoderInPoolCall {},
            )
            .await?;
        let walk_end = loop {
            if current == Address::ZERO {
                break WalkEnd::Complete;
            }
            if pool.len() >= max {
                break WalkEnd::Limit { max };
            }
            if !seen.insert(current) {
                // A linked list that comes back to a member would be walked forever.
                break WalkEnd::Cycle { repeated: current };
            }
            pool.push(current);
            current = rpc
                .call(
                    at,
                    bonding_manager,
                    format!("BondingManager.getNextTranscoderInPool({current})"),
                    IBondingManager::getNextTranscoderInPoolCall {
                        transcoder: current,
                    },
                )
                .await?;
        };
        if !matches!(walk_end, WalkEnd::Complete) {
            tracing::warn!(
                message = "The transcoder pool walk was cut.",
                rpc_url = %self.rpc_url,
                walk_end = %walk_end,
                members = pool.len()
            );
        }

        let uris: Vec<(Address, Result<String, ChainError>)> = futures::stream::iter(pool)
            .map(|eth_address| {
                let rpc = &rpc;
                async move {
                    let uri = rpc
                        .call(
                            at,
                            service_registry,
                            format!("ServiceRegistry.getServiceURI({eth_address})"),
                            IServiceRegistry::getServiceURICall { addr: eth_address },
                        )
                        .await;
                    (eth_address, uri)
                }
            })
            .buffered(URI_CONCURRENCY)
            .collect()
            .await;

        let mut orchestrators = Vec::new();
        let mut skipped = Vec::new();
        for (eth_address, uri) in uris {
            match classify_service_uri(eth_address, uri)? {
                Ok(found) => orchestrators.push(found),
                Err(skip) => {
                    tracing::info!(
                        message = "Orchestrator skipped by on-chain discovery.",
                        eth_address = %skip.eth_address,
                        reason = skip.reason.as_str(),
                        detail = %skip.detail
                    );
                    skipped.push(skip);
                }
            }
        }
        Ok(ChainDiscovery {
            rpc_url: self.rpc_url.clone(),
            block_number: block,
            controller: self.controller,
            bonding_manager,
            service_registry,
            orchestrators,
            skipped,
            walk_end,
        })
    }

    /// The service URI `address` registered in the ServiceRegistry (this source's override, or
    /// the Controller's), read at the latest block; `None` when it registered none (an empty
    /// string). What an orchestrator claiming `address` must be reachable at
    /// ([`crate::identity`]).
    ///
    /// # Errors
    /// The RPC node cannot be read, or a contract call fails.
    pub async fn registered_uri(
        &self,
        http: &reqwest::Client,
        address: super::config::EthAddress,
    ) -> Result<Option<String>, ChainError> {
        let rpc = Rpc {
            http,
            url: &self.rpc_url,
            timeout: self.timeout,
        };
        let at = BlockTag(rpc.block_number().await?);
        let service_registry = match self.service_registry {
            Some(registry) => registry,
            None => self.resolve(&rpc, at, "ServiceRegistry").await?,
        };
        let address = Address::from(address);
        let uri = rpc
            .call(
                at,
                service_registry,
                format!("ServiceRegistry.getServiceURI({address})"),
                IServiceRegistry::getServiceURICall { addr: address },
            )
            .await?;
        Ok((!uri.trim().is_empty()).then_some(uri))
    }

    /// `Controller.getContract(keccak256(name))`, which must not be the zero address.
    async fn resolve(
        &self,
        rpc: &Rpc<'_>,
        at: BlockTag,
        name: &'static str,
    ) -> Result<Address, ChainError> {
        let address = rpc
            .call(
                at,
                self.controller,
                format!("Controller.getContract(keccak256(\"{name}\"))"),
                IController::getContractCall {
                    id: keccak256(name.as_bytes()),
                },
            )
            .await?;
        if address == Address::ZERO {
            return Err(ChainError::NotRegistered {
                controller: self.controller,
                name,
            });
        }
        Ok(address)
    }
}

/// What an orchestrator's registered URI means: a candidate, a skip with its reason, or (for
/// a transport failure) an error of the whole discovery, since later calls would fail alike.
fn classify_service_uri(
    eth_address: Address,
    uri: Result<String, ChainError>,
) -> Result<Result<ChainOrchestrator, SkippedOrchestrator>, ChainError> {
    let skip = |service_uri: Option<String>, reason, detail: String| {
        Ok(Err(SkippedOrchestrator {
            eth_address,
            service_uri,
            reason,
            detail,
        }))
    };
    let service_uri = match uri {
        Ok(uri) => uri,
        Err(
            e @ (ChainError::Reverted { .. }
            | ChainError::BadReturn { .. }
            | ChainError::NoContract { .. }),
        ) => return skip(None, SkipReason::UnreadableServiceUri, e.to_string()),
        Err(e) => return Err(e),
    };
    if service_uri.trim().is_empty() {
        return skip(
            Some(service_uri),
            SkipReason::NoServiceUri,
            "no service URI registered".to_string(),
        );
    }
    match OrchestratorUri::from_str(&service_uri) {
        Ok(uri) => Ok(Ok(ChainOrchestrator {
            eth_address,
            service_uri,
            uri,
        })),
        Err(e) => skip(
            Some(service_uri),
            SkipReason::MalformedServiceUri,
            e.to_string(),
        ),
    }
}

/// What the on-chain walk found, at one block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainDiscovery {
    pub rpc_url: String,
    /// The block every call was made at.
    pub block_number: u64,
    pub controller: Address,
    pub bonding_manager: Address,
    /// The registry the URIs were read from (the Controller's, or the override).
    pub service_registry: Address,
    /// Pool members with a usable URI, in pool order.
    pub orchestrators: Vec<ChainOrchestrator>,
    /// Pool members left out, in pool order, each with its reason.
    pub skipped: Vec<SkippedOrchestrator>,
    /// How the walk ended.
    pub walk_end: WalkEnd,
}

impl ChainDiscovery {
    /// The candidates for the inventory, in pool order, each URI once (two members
    /// registering one URI are one orchestrator to ask).
    pub fn candidates(&self) -> Vec<Candidate> {
        super::dedup_best(
            self.orchestrators
                .iter()
                .map(|o| Candidate {
                    uri: o.uri.clone(),
                    score: None,
                    source: "chain",
                })
                .collect(),
        )
    }

    /// What the walk found, one line, then one line per member left out with its reason: what
    /// `lvt discover` prints on stderr.
    pub fn report_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "on chain at block {}: BondingManager {}, ServiceRegistry {}, {} orchestrator(s) \
             with a URI, {} skipped, pool walk {}",
            self.block_number,
            self.bonding_manager,
            self.service_registry,
            self.orchestrators.len(),
            self.skipped.len(),
            self.walk_end
        )];
        lines.extend(self.skipped.iter().map(|skipped| {
            format!(
                "skipped {}: {} ({})",
                skipped.eth_address,
                skipped.reason.as_str(),
                skipped.detail
            )
        }));
        lines
    }

    /// The on-chain address that registered `uri`, for matching inventory entries back.
    pub fn eth_address_of(&self, uri: &OrchestratorUri) -> Option<Address> {
        self.orchestrators
            .iter()
            .find(|o| &o.uri == uri)
            .map(|o| o.eth_address)
    }
}

/// One pool member with a usable service URI.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainOrchestrator {
    pub eth_address: Address,
    /// The URI as registered.
    pub service_uri: String,
    /// The URI as parsed.
    pub uri: OrchestratorUri,
}

/// One pool member that cannot be a candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkippedOrchestrator {
    pub eth_address: Address,
    /// The URI as registered, when it could be read.
    pub service_uri: Option<String>,
    pub reason: SkipReason,
    pub detail: String,
}

/// Why a pool member is not a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The registry has an empty URI for it.
    NoServiceUri,
    /// The URI is not `host:port`, `https://host:port` or `http://host:port`.
    MalformedServiceUri,
    /// `getServiceURI` reverted or returned something that is not a string.
    UnreadableServiceUri,
}

impl SkipReason {
    /// The snake_case name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoServiceUri => "no_service_uri",
            SkipReason::MalformedServiceUri => "malformed_service_uri",
            SkipReason::UnreadableServiceUri => "unreadable_service_uri",
        }
    }
}

/// How the pool walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum WalkEnd {
    /// It reached the zero address: the whole pool was read.
    Complete,
    /// A member came back; the walk stopped before repeating it.
    Cycle { repeated: Address },
    /// `max_orchestrators` members were read and the list went on.
    Limit { max: usize },
}

impl fmt::Display for WalkEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkEnd::Complete => write!(f, "complete"),
            WalkEnd::Cycle { repeated } => {
                write!(f, "cut at a cycle: {repeated} came back")
            }
            WalkEnd::Limit { max } => write!(f, "cut at the limit of {max} orchestrators"),
        }
    }
}

/// Why on-chain discovery failed. Every variant names the RPC URL or the contract call.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No HTTP connection to the RPC node.
    #[error("Ethereum RPC {rpc_url} is unreachable: {detail}")]
    Unreachable { rpc_url: String, detail: String },
    /// The node did not answer a call in time.
    #[error("Ethereum RPC {rpc_url}: no answer to {call} within {timeout_ms} ms")]
    Timeout {
        rpc_url: String,
        call: String,
        timeout_ms: u64,
    },
    /// The node answered with an HTTP status other than 200.
    #[error("Ethereum RPC {rpc_url} answered HTTP {status} to {call}")]
    HttpStatus {
        rpc_url: String,
        call: String,
        status: u16,
    },
    /// The node's answer is not a JSON-RPC response.
    #[error("Ethereum RPC {rpc_url}: {call}: {detail}")]
    BadResponse {
        rpc_url: String,
        call: String,
        detail: String,
    },
    /// The node answered with a JSON-RPC error that is not a revert.
    #[error("Ethereum RPC {rpc_url}: {call} failed with JSON-RPC error {code}: {message}")]
    Rpc {
        rpc_url: String,
        call: String,
        code: i64,
        message: String,
    },
    /// The contract call reverted.
    #[error("{call} reverted at {contract}: {reason}")]
    Reverted {
        call: String,
        contract: Address,
        reason: String,
    },
    /// The call returned no data: nothing is deployed at the address on this chain.
    #[error("{call}: no contract at {contract} on this chain (the call returned no data)")]
    NoContract { call: String, contract: Address },
    /// The call returned data that does not decode as the function's return type.
    #[error("{call} at {contract} returned data that does not decode: {detail}")]
    BadReturn {
        call: String,
        contract: Address,
        detail: String,
    },
    /// The Controller does not know the contract (it answers the zero address).
    #[error(
        "the Controller at {controller} has no {name} registered (getContract returned the zero \
         address): wrong Controller address or wrong chain"
    )]
    NotRegistered {
        controller: Address,
        name: &'static str,
    },
}

impl DiscoverySource for ChainSource {
    fn kind(&self) -> &'static str {
        "chain"
    }

    async fn candidates(&self, http: &reqwest::Client) -> Result<Vec<Candidate>, SourceError> {
        // Callers that mix sources get the on-chain error's full text; callers that need the
        // variant use `discover`.
        let found = self
            .discover(http)
            .await
            .map_err(|e| SourceError::Request {
                origin: self.origin(),
                detail: e.to_string(),
            })?;
        Ok(found.candidates())
    }
}

/// The block all calls of one discovery are made at.
#[derive(Clone, Copy, Debug)]
struct BlockTag(u64);

impl BlockTag {
    fn to_json(self) -> Value {
        Value::String(format!("0x{:x}", self.0))
    }
}

/// A minimal JSON-RPC client over the shared reqwest client: discovery needs two methods,
/// which does not justify a provider stack.
struct Rpc<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
    timeout: Duration,
}

impl Rpc<'_> {
    /// `eth_blockNumber`.
    async fn block_number(&self) -> Result<u64, ChainError> {
        let call = "eth_blockNumber".to_string();
        let result = self
            .request(&call, "eth_blockNumber", json!([]))
            .await
            .map_err(|e| e.into_chain_error(self.url, self.timeout, &call, None))?;
        let text = result.as_str().unwrap_or_default();
        u64::from_str_radix(text.trim_start_matches("0x"), 16).map_err(|_| {
            ChainError::BadResponse {
                rpc_url: self.url.to_string(),
                call,
                detail: format!("the result {result} is not a hex block number"),
            }
        })
    }

    /// `eth_call` of `input` at `to`, decoded as the function's return value.
    async fn call<C: SolCall>(
        &self,
        at: BlockTag,
        to: Address,
        call: String,
        input: C,
    ) -> Result<C::Return, ChainError> {
        let params = json!([
            {"to": to, "data": Bytes::from(input.abi_encode())},
            at.to_json(),
        ]);
        let result = self
            .request(&call, "eth_call", params)
            .await
            .map_err(|e| e.into_chain_error(self.url, self.timeout, &call, Some(to)))?;
        let data = result
            .as_str()
            .and_then(|s| Bytes::from_str(s).ok())
            .ok_or_else(|| ChainError::BadResponse {
                rpc_url: self.url.to_string(),
                call: call.clone(),
                detail: format!("the eth_call result {result} is not hex data"),
            })?;
        if data.is_empty() {
            return Err(ChainError::NoContract { call, contract: to });
        }
        C::abi_decode_returns(&data).map_err(|e| ChainError::BadReturn {
            call,
            contract: to,
            detail: e.to_string(),
        })
    }

    /// One JSON-RPC request, within the timeout (body included).
    async fn request(&self, call: &str, method: &str, params: Value) -> Result<Value, RpcFailure> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let exchange = async {
            let mut resp = self
                .http
                .post(self.url)
                .timeout(self.timeout)
                .json(&body)
                .send()
                .await
                .map_err(RpcFailure::from_reqwest)?;
            let status = resp.status();
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(RpcFailure::from_reqwest)? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_RPC_BODY_BYTES {
                    return Err(RpcFailure::Body(format!(
                        "the answer is larger than {MAX_RPC_BODY_BYTES} bytes"
                    )));
                }
            }
            // Some nodes put a JSON-RPC error (a revert among them) in a non-200 answer; the
            // error is more precise than the status, so it is looked for first.
            let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
            if let Some(error) = parsed.as_ref().and_then(|v| v.get("error")) {
                return Err(RpcFailure::from_error_object(error));
            }
            if status != reqwest::StatusCode::OK {
                return Err(RpcFailure::Status(status.as_u16()));
            }
            let Some(mut parsed) = parsed else {
                return Err(RpcFailure::Body(format!(
                    "the answer is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )));
            };
            match parsed.get_mut("result") {
                Some(result) => Ok(result.take()),
                None => Err(RpcFailure::Body(
                    "the answer has neither result nor error".to_string(),
                )),
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(RpcFailure::Timeout),
        }
        .inspect_err(|failure| {
            tracing::debug!(message = "JSON-RPC call failed.", call, error = ?failure);
        })
    }
}

/// One JSON-RPC request's failure before it is named with its call.
#[derive(Debug)]
enum RpcFailure {
    Unreachable(String),
    Timeout,
    Status(u16),
    Body(String),
    Error {
        code: i64,
        message: String,
        data: Option<Bytes>,
    },
}

impl RpcFailure {
    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            RpcFailure::Timeout
        } else if e.is_connect() || e.is_request() {
            RpcFailure::Unreachable(super::error_chain(&e))
        } else {
            RpcFailure::Body(super::error_chain(&e))
        }
    }

    /// A JSON-RPC `error` object. Revert data is `data` as hex (geth, anvil) or
    /// `data.data` (some ganache and hardhat versions).
    fn from_error_object(error: &Value) -> Self {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("(no message)")
            .to_string();
        let data = error
            .get("data")
            .and_then(|d| d.as_str().or_else(|| d.get("data").and_then(Value::as_str)))
            .and_then(|s| Bytes::from_str(s).ok());
        RpcFailure::Error {
            code,
            message,
            data,
        }
    }

    fn into_chain_error(
        self,
        url: &str,
        timeout: Duration,
        call: &str,
        contract: Option<Address>,
    ) -> ChainError {
        let rpc_url = url.to_string();
        let call = call.to_string();
        match self {
            RpcFailure::Unreachable(detail) => ChainError::Unreachable { rpc_url, detail },
            RpcFailure::Timeout => ChainError::Timeout {
                rpc_url,
                call,
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            },
            RpcFailure::Status(status) => ChainError::HttpStatus {
                rpc_url,
                call,
                status,
            },
            RpcFailure::Body(detail) => ChainError::BadResponse {
                rpc_url,
                call,
                detail,
            },
            RpcFailure::Error {
                code,
                message,
                data,
            } => match contract {
                Some(contract) if is_revert(code, &message, data.as_ref()) => {
                    // `Error(string)` gives the contract's own words; other payloads (a
                    // panic code, a custom error) get alloy's description, else the message.
                    let reason = data
                        .as_ref()
                        .and_then(|d| {
                            alloy_sol_types::Revert::abi_decode(d)
                                .map(|r| r.reason)
                                .ok()
                                .or_else(|| alloy_sol_types::decode_revert_reason(d))
                        })
                        .unwrap_or(message);
                    ChainError::Reverted {
                        call,
                        contract,
                        reason,
                    }
                }
                _ => ChainError::Rpc {
                    rpc_url,
                    call,
                    code,
                    message,
                },
            },
        }
    }
}

/// Whether a JSON-RPC error is an execution revert: geth and most nodes use code 3 with
/// revert data; ganache uses -32000 with "revert" in the message.
fn is_revert(code: i64, message: &str, data: Option<&Bytes>) -> bool {
    code == 3 || data.is_some_and(|d| !d.is_empty()) || message.to_lowercase().contains("revert")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_the_livepeer_contracts() {
        // The 4-byte selectors are what the deployed contracts dispatch on; a typo in a
        // signature would make every call revert or return nothing.
        assert_eq!(
            IController::getContractCall::SIGNATURE,
            "getContract(bytes32)"
        );
        assert_eq!(
            IBondingManager::getFirstTranscoderInPoolCall::SIGNATURE,
            "getFirstTranscoderInPool()"
        );
        assert_eq!(
            IBondingManager::getNextTranscoderInPoolCall::SIGNATURE,
            "getNextTranscoderInPool(address)"
        );
        assert_eq!(
            IServiceRegistry::getServiceURICall::SIGNATURE,
            "getServiceURI(address)"
        );
        assert_eq!(
            IController::getContractCall::SELECTOR,
            keccak256("getContract(bytes32)")[..4]
        );
    }

    #[test]
    fn revert_reasons_are_decoded_from_error_data() {
        // Error(string) with "nope", as a node puts it in `error.data`.
        let data = alloy_sol_types::Revert::from("nope").abi_encode();
        let error = json!({"code": 3, "message": "execution reverted", "data": Bytes::from(data)});
        let failure = RpcFailure::from_error_object(&error);
        let e = failure.into_chain_error(
            "http://rpc",
            Duration::from_secs(1),
            "C.f()",
            Some(Address::ZERO),
        );
        assert!(
            matches!(&e, ChainError::Reverted { reason, .. } if reason == "nope"),
            "{e}"
        );
        // Without data, ganache's message is the reason.
        let error = json!({"code": -32000, "message": "VM Exception while processing transaction: revert x"});
        let e = RpcFailure::from_error_object(&error).into_chain_error(
            "http://rpc",
            Duration::from_secs(1),
            "C.f()",
            Some(Address::ZERO),
        );
        assert!(matches!(&e, ChainError::Reverted { reason, .. } if reason.ends_with("revert x")));
        // Any other error stays a JSON-RPC error with its code.
        let error = json!({"code": -32601, "message": "method not found"});
        let e = RpcFailure::from_error_object(&error).into_chain_error(
            "http://rpc",
            Duration::from_secs(1),
            "C.f()",
            Some(Address::ZERO),
        );
        assert!(matches!(e, ChainError::Rpc { code: -32601, .. }), "{e}");
    }

    #[test]
    fn config_defaults_to_arbitrum_one_and_checks_its_values() {
        use super::super::config::{ChainConfig, ChainConfigError};
        let config: ChainConfig = toml::from_str("").unwrap();
        let source = ChainSource::try_from(config).unwrap();
        assert_eq!(source, ChainSource::arbitrum_one(DEFAULT_RPC_URL));
        let config: ChainConfig = toml::from_str(
            "rpc_url = \"http://127.0.0.1:8545\"\nservice_registry = \"ai\"\n\
             controller = \"0x00000000000000000000000000000000000000aa\"\ntimeout_ms = 250",
        )
        .unwrap();
        let source = ChainSource::try_from(config).unwrap();
        assert_eq!(
            source.service_registry,
            Some(ARBITRUM_ONE_AI_SERVICE_REGISTRY)
        );
        assert_eq!(source.controller, Address::with_last_byte(0xaa));
        assert_eq!(source.timeout, Duration::from_millis(250));
        assert!(toml::from_str::<ChainConfig>("rpc = \"http://x\"").is_err());
        let bad = ChainConfig {
            controller: "0x1234".into(),
            ..ChainConfig::default()
        };
        assert!(matches!(
            ChainSource::try_from(bad),
            Err(ChainConfigError::BadAddress {
                field: "controller",
                ..
            })
        ));
        let bad = ChainConfig {
            rpc_url: "ws://node:8546".into(),
            ..ChainConfig::default()
        };
        assert!(matches!(
            ChainSource::try_from(bad),
            Err(ChainConfigError::BadRpcUrl { .. })
        ));
    }

    #[test]
    fn service_uris_are_classified() {
        let a = Address::repeat_byte(1);
        let ok = classify_service_uri(a, Ok("https://o.example:8935".into())).unwrap();
        assert_eq!(ok.unwrap().uri.to_string(), "https://o.example:8935");
        let empty = classify_service_uri(a, Ok(String::new())).unwrap();
        assert_eq!(empty.unwrap_err().reason, SkipReason::NoServiceUri);
        let bad = classify_service_uri(a, Ok("ftp://o.example:21".into())).unwrap();
        let bad = bad.unwrap_err();
        assert_eq!(bad.reason, SkipReason::MalformedServiceUri);
        assert_eq!(bad.service_uri.as_deref(), Some("ftp://o.example:21"));
        let reverted = classify_service_uri(
            a,
            Err(ChainError::Reverted {
                call: "ServiceRegistry.getServiceURI".into(),
                contract: Address::ZERO,
                reason: "x".into(),
            }),
        )
        .unwrap();
        assert_eq!(
            reverted.unwrap_err().reason,
            SkipReason::UnreadableServiceUri
        );
        // A transport failure is not one orchestrator's fault: the whole discovery fails.
        assert!(
            classify_service_uri(
                a,
                Err(ChainError::Unreachable {
                    rpc_url: "http://rpc".into(),
                    detail: "refused".into(),
                }),
            )
            .is_err()
        );
    }
}
