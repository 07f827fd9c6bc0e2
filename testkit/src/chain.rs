//! A real Ethereum node for tests: ganache started by `ci/ethereum` on 127.0.0.1, and the
//! stand-in Livepeer contracts of contracts/ compiled by solcjs and deployed through plain
//! JSON-RPC from ganache's unlocked account. Used by gateway-shim/tests/chain.rs and the
//! tester's end-to-end identity test. If the node tools are missing, the tests fail and say to
//! run ci/setup.

use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_sol_types::{SolCall, sol};
use lvt_gateway::discovery::ChainSource;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, ChildStdin, Command};

sol! {
    interface ControllerAdmin {
        function setContractInfo(bytes32 id, address contractAddress) external;
        function setReverting(bool value) external;
    }
    interface BondingManagerAdmin {
        function setPool(address[] pool) external;
        function setNext(address transcoder, address nextTranscoder) external;
    }
    interface ServiceRegistryAdmin {
        function setServiceURIFor(address serviceProvider, string serviceURI) external;
    }
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// `ci/ethereum --no-install ARGS`, failing the test with the fix when the tools are missing.
pub fn ethereum_script(args: &[&str]) -> Command {
    let mut cmd = Command::new(workspace_root().join("ci/ethereum"));
    cmd.arg("--no-install").args(args).kill_on_drop(true);
    cmd
}

pub fn missing_tools(status: std::process::ExitStatus, stderr: &str) -> ! {
    if status.code() == Some(3) {
        panic!("ganache/solc are not installed: run ci/setup ({stderr})");
    }
    panic!("ci/ethereum failed with {status}: {stderr}");
}

/// The stand-in contracts compiled by solcjs: name -> creation bytecode.
pub async fn compile() -> serde_json::Map<String, Value> {
    let root = workspace_root();
    let files: Vec<String> = ["Controller", "BondingManager", "ServiceRegistry"]
        .iter()
        .map(|n| {
            root.join(format!("contracts/{n}.sol"))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["--compile"];
    args.extend(files.iter().map(String::as_str));
    let out = ethereum_script(&args)
        .output()
        .await
        .expect("ci/ethereum runs");
    if !out.status.success() {
        missing_tools(out.status, &String::from_utf8_lossy(&out.stderr));
    }
    match serde_json::from_slice(&out.stdout).expect("solcjs output is JSON") {
        Value::Object(map) => map,
        other => panic!("unexpected compiler output {other}"),
    }
}

/// A ganache node on 127.0.0.1; it stops when this is dropped (stdin closes, and the child is
/// killed on drop).
pub struct Node {
    pub url: String,
    _child: Child,
    _stdin: ChildStdin,
}

pub async fn start_node() -> Node {
    let mut child = ethereum_script(&["--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Inherited rather than piped: nothing reads a pipe while the node runs, and a full
        // one would stall it.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ci/ethereum starts");
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("ganache prints its URL within 60 s")
        .expect("stdout is readable");
    let Some(url) = first else {
        let status = child.wait().await.expect("ci/ethereum exits");
        missing_tools(status, "see its stderr above");
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Node {
        url,
        _child: child,
        _stdin: stdin,
    }
}

/// Plain JSON-RPC to the test node: deployment and setters, which product code never does.
pub struct Chain {
    pub http: reqwest::Client,
    pub url: String,
    pub from: String,
}

impl Chain {
    pub async fn connect(url: &str) -> Chain {
        let mut chain = Chain {
            http: reqwest::Client::new(),
            url: url.to_string(),
            from: String::new(),
        };
        let accounts = chain.rpc("eth_accounts", json!([])).await;
        chain.from = accounts[0]
            .as_str()
            .expect("an unlocked account")
            .to_string();
        chain
    }

    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .expect("the node answers")
            .json()
            .await
            .expect("a JSON answer");
        match answer.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {answer}"),
        }
    }

    /// Sends a transaction and returns its receipt, which must show success.
    pub async fn transact(&self, to: Option<Address>, data: Vec<u8>) -> Value {
        let mut tx = json!({"from": self.from, "data": Bytes::from(data), "gas": "0x989680"});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let hash = self.rpc("eth_sendTransaction", json!([tx])).await;
        // ganache mines each transaction as it arrives, so the receipt exists now.
        let receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
        assert_eq!(receipt["status"], "0x1", "transaction failed: {receipt}");
        receipt
    }

    pub async fn deploy(&self, contracts: &serde_json::Map<String, Value>, name: &str) -> Address {
        let code = contracts[name]["bytecode"]
            .as_str()
            .expect("bytecode is a string");
        let code = Bytes::from_str(code).expect("bytecode is hex");
        let receipt = self.transact(None, code.to_vec()).await;
        Address::from_str(
            receipt["contractAddress"]
                .as_str()
                .expect("a contract address"),
        )
        .expect("an address")
    }

    pub async fn send(&self, to: Address, call: impl SolCall) {
        self.transact(Some(to), call.abi_encode()).await;
    }
}

/// The three contracts, deployed and registered in the Controller.
pub struct Livepeer {
    pub chain: Chain,
    pub controller: Address,
    pub bonding_manager: Address,
    pub service_registry: Address,
}

impl Livepeer {
    pub async fn deploy(node: &Node, contracts: &serde_json::Map<String, Value>) -> Livepeer {
        let chain = Chain::connect(&node.url).await;
        let controller = chain.deploy(contracts, "Controller").await;
        let bonding_manager = chain.deploy(contracts, "BondingManager").await;
        let service_registry = chain.deploy(contracts, "ServiceRegistry").await;
        let livepeer = Livepeer {
            chain,
            controller,
            bonding_manager,
            service_registry,
        };
        livepeer.register("BondingManager", bonding_manager).await;
        livepeer.register("ServiceRegistry", service_registry).await;
        livepeer
    }

    pub async fn register(&self, name: &str, address: Address) {
        let id: B256 = keccak256(name.as_bytes());
        self.chain
            .send(
                self.controller,
                ControllerAdmin::setContractInfoCall {
                    id,
                    contractAddress: address,
                },
            )
            .await;
    }

    pub async fn set_pool(&self, pool: &[Address]) {
        self.chain
            .send(
                self.bonding_manager,
                BondingManagerAdmin::setPoolCall {
                    pool: pool.to_vec(),
                },
            )
            .await;
    }

    pub async fn set_uri(&self, registry: Address, who: Address, uri: &str) {
        self.chain
            .send(
                registry,
                ServiceRegistryAdmin::setServiceURIForCall {
                    serviceProvider: who,
                    serviceURI: uri.to_string(),
                },
            )
            .await;
    }

    pub fn source(&self) -> ChainSource {
        ChainSource {
            rpc_url: self.chain.url.clone(),
            controller: self.controller,
            service_registry: None,
            timeout: Duration::from_secs(10),
            max_orchestrators: 100,
        }
    }
}
