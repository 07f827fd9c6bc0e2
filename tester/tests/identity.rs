//! Whose cell is it, end to end: a real Ethereum node (ganache) with the stand-in Livepeer
//! contracts, an honest simulator registered in the ServiceRegistry, an impostor claiming the
//! honest one's address from its own URI, `lvt run --verify-addresses` against both shipping to
//! a real collector, and the collector's ranking keyed accordingly: the honest orchestrator by
//! its address, the impostor by its URI, so the impostor neither borrows the honest score nor
//! charges its failures to it.

#![cfg(feature = "chain")]

mod common;

use std::str::FromStr;

use alloy_primitives::Address;
use common::{AgentCollector, LVT, lvt_output, start_sim_config};
use lvt_sim::{OrchestratorConfig, Profile};
use serde_json::Value;

const SCENARIO: &str = r#"id = "identity-e2e"
version = "1.0.0"
description = "one short session per orchestrator, addresses checked on chain"
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "calm-lake"
complexity = "low"
params = { prompt = "a calm lake at dawn" }

[input]
width = 256
height = 256
fps = 15
segment_ms = 1000
bitrate_kbps = 300

[session]
duration_s = 2

[targets]
source = "explicit"
uris = ["http://127.0.0.1:1"]

[load]
executor = "closed"
sessions_per_target = 1
concurrency = 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_address_keys_nothing_and_a_verified_one_keys_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    let (contracts, node) = tokio::join!(
        lvt_testkit::chain::compile(),
        lvt_testkit::chain::start_node()
    );
    let livepeer = lvt_testkit::chain::Livepeer::deploy(&node, &contracts).await;

    let sim = |name: &str, eth_address: Option<[u8; 20]>| {
        let mut cfg = OrchestratorConfig::new(name, Profile::default());
        cfg.plaintext = true;
        if let Some(address) = eth_address {
            cfg.eth_address = address;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        async move { start_sim_config(cfg, tokio::net::TcpListener::from_std(listener).unwrap()).await }
    };
    let (honest, stop_honest) = sim("honest", None).await;
    let honest_address = Address::from_str(&honest.eth_address).unwrap();
    let (impostor, stop_impostor) = sim("impostor", Some(honest_address.into())).await;
    assert_eq!(
        impostor.eth_address, honest.eth_address,
        "the impostor claims the address"
    );
    livepeer
        .set_uri(livepeer.service_registry, honest_address, &honest.uri)
        .await;

    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let scenario = dir.path().join("identity.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out_dir = dir.path().join("out");
    let out = lvt_output(vec![
        "run".into(),
        scenario.display().to_string(),
        "--target".into(),
        honest.uri.clone(),
        "--target".into(),
        impostor.uri.clone(),
        "--verify-addresses".into(),
        node.url.clone(),
        "--verify-controller".into(),
        livepeer.controller.to_string(),
        "--out".into(),
        out_dir.display().to_string(),
        "--collector".into(),
        collector.url.clone(),
        "--key".into(),
        collector.key_path.display().to_string(),
        "--spool".into(),
        dir.path().join("spool").display().to_string(),
    ])
    .await;
    stop_honest.cancel();
    stop_impostor.cancel();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    // Each record says what its orchestrator's claim is worth.
    let run: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("run.json")).unwrap()).unwrap();
    let check_of = |uri: &str| {
        run["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["report"]["orchestrator"]["uri"] == uri)
            .unwrap_or_else(|| panic!("no session against {uri}: {run}"))["report"]["orchestrator"]
            ["address_check"]
            .clone()
    };
    assert_eq!(check_of(&honest.uri)["status"], "verified");
    let impostor_check = check_of(&impostor.uri);
    assert_eq!(impostor_check["status"], "mismatch");
    assert_eq!(impostor_check["registered_uri"], honest.uri.as_str());

    // The collector keys the honest orchestrator's cell by its address, the impostor's by its
    // URI: two rows, never one merged under the address.
    let ranking: Value = reqwest::get(format!("{}/v1/sla/orchestrators", collector.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut keys: Vec<String> = ranking["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["orchestrator"].as_str().unwrap_or_default().to_owned())
        .collect();
    keys.sort();
    let mut expected = vec![
        honest.eth_address.to_ascii_lowercase(),
        impostor.uri.clone(),
    ];
    expected.sort();
    assert_eq!(keys, expected, "{ranking}");
}
