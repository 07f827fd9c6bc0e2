//! On-chain discovery against a real Ethereum node: ganache started by `ci/ethereum` on
//! 127.0.0.1, with the stand-in contracts of contracts/ compiled by solcjs and deployed here
//! through plain JSON-RPC from ganache's unlocked account. Orchestrators registered on chain
//! are simulators started in this process, so the inventory after discovery talks to real
//! gRPC servers. If the node tools are missing, the tests fail and say to run ci/setup.

#![cfg(feature = "chain")]

use std::str::FromStr;
use std::time::Duration;

use alloy_primitives::Address;
use lvt_gateway::discovery::chain::{SkipReason, WalkEnd};
use lvt_gateway::discovery::{
    ChainConfig, ChainError, ChainSource, DiscoverySource as _, DropReason, InventoryOptions,
    Status, inventory,
};
use lvt_sim::{OrchestratorConfig, Profile};
use lvt_testkit::sim::LoopbackSim;

use lvt_testkit::chain::{BondingManagerAdmin, ControllerAdmin, Livepeer, compile, start_node};

async fn start_sim(name: &str) -> LoopbackSim {
    let mut cfg = OrchestratorConfig::new(name, Profile::default());
    cfg.plaintext = true;
    LoopbackSim::start(cfg).await
}

/// A port that was just free: nothing listens there.
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn eth(sim: &LoopbackSim) -> Address {
    Address::from_str(&sim.orch.eth_address).expect("the simulator's address")
}

#[tokio::test]
async fn chain_discovery_finds_registered_orchestrators_in_pool_order() {
    let (contracts, node) = tokio::join!(compile(), start_node());
    let livepeer = Livepeer::deploy(&node, &contracts).await;
    let (a, b) = tokio::join!(start_sim("chain-a"), start_sim("chain-b"));
    let unreachable = Address::repeat_byte(0xc1);
    let malformed = Address::repeat_byte(0xd1);
    let unregistered = Address::repeat_byte(0xe1);
    let unreachable_uri = closed_port_url();
    livepeer
        .set_pool(&[eth(&b), unreachable, eth(&a), malformed, unregistered])
        .await;
    let registry = livepeer.service_registry;
    livepeer.set_uri(registry, eth(&a), &a.orch.uri).await;
    livepeer.set_uri(registry, eth(&b), &b.orch.uri).await;
    livepeer
        .set_uri(registry, unreachable, &unreachable_uri)
        .await;
    livepeer
        .set_uri(registry, malformed, "ftp://orchestrator.example:21/x")
        .await;

    let http = reqwest::Client::new();
    let found = livepeer.source().discover(&http).await.unwrap();
    assert_eq!(found.bonding_manager, livepeer.bonding_manager);
    assert_eq!(found.service_registry, registry);
    assert_eq!(found.walk_end, WalkEnd::Complete);
    // Pool order is kept for the members with a usable URI.
    let in_order: Vec<Address> = found.orchestrators.iter().map(|o| o.eth_address).collect();
    assert_eq!(in_order, [eth(&b), unreachable, eth(&a)]);
    let candidates = found.candidates();
    let uris: Vec<String> = candidates.iter().map(|c| c.uri.to_string()).collect();
    assert_eq!(
        uris,
        [b.orch.uri.clone(), unreachable_uri, a.orch.uri.clone()]
    );
    assert!(candidates.iter().all(|c| c.source == "chain"));
    // The malformed and the missing URI are skipped, each with its reason.
    let skipped: Vec<(Address, SkipReason)> = found
        .skipped
        .iter()
        .map(|s| (s.eth_address, s.reason))
        .collect();
    assert_eq!(
        skipped,
        [
            (malformed, SkipReason::MalformedServiceUri),
            (unregistered, SkipReason::NoServiceUri)
        ]
    );
    assert!(
        found.skipped[0].detail.contains("ftp"),
        "{:?}",
        found.skipped
    );

    // The inventory asks each candidate: the two simulators answer with the address they are
    // registered under; the third is dropped as unreachable.
    let opts = InventoryOptions {
        timeout: Duration::from_secs(3),
        ..InventoryOptions::default()
    };
    let inv = inventory(candidates, &opts).await;
    let usable: Vec<&str> = inv
        .usable()
        .map(|e| {
            e.info
                .as_ref()
                .and_then(|i| i.eth_address.as_deref())
                .unwrap_or("-")
        })
        .collect();
    assert_eq!(usable.len(), 2, "{}", inv.table());
    for entry in inv.usable() {
        let on_chain = found
            .eth_address_of(&entry.candidate.uri)
            .expect("found on chain");
        let advertised = entry.info.as_ref().and_then(|i| i.eth_address.clone());
        assert_eq!(
            advertised.map(|s| Address::from_str(&s).unwrap()),
            Some(on_chain)
        );
    }
    let dropped: Vec<&lvt_gateway::discovery::InventoryEntry> = inv.dropped().collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        found.eth_address_of(&dropped[0].candidate.uri),
        Some(unreachable)
    );
    assert!(matches!(
        dropped[0].status,
        Status::Dropped {
            reason: DropReason::Unreachable,
            ..
        }
    ));

    // The AI service registry override: URIs come from the given registry instead of the
    // Controller's, so only what is registered there is found.
    let ai_registry = livepeer.chain.deploy(&contracts, "ServiceRegistry").await;
    livepeer.set_uri(ai_registry, eth(&a), &a.orch.uri).await;
    let mut source = livepeer.source();
    source.service_registry = Some(ai_registry);
    let found = source.discover(&http).await.unwrap();
    assert_eq!(found.service_registry, ai_registry);
    let in_order: Vec<Address> = found.orchestrators.iter().map(|o| o.eth_address).collect();
    assert_eq!(in_order, [eth(&a)]);
    assert_eq!(found.skipped.len(), 4);

    // The same source through the configuration and the generic trait.
    let source = ChainSource::try_from(ChainConfig {
        rpc_url: node.url.clone(),
        controller: livepeer.controller.to_string(),
        ..ChainConfig::default()
    })
    .unwrap();
    assert_eq!(source.kind(), "chain");
    assert_eq!(source.candidates(&http).await.unwrap().len(), 3);
}

#[tokio::test]
async fn chain_discovery_errors_are_precise_and_a_cycle_is_cut() {
    let (contracts, node) = tokio::join!(compile(), start_node());
    let livepeer = Livepeer::deploy(&node, &contracts).await;
    let http = reqwest::Client::new();
    let (x, y, z) = (
        Address::repeat_byte(0x11),
        Address::repeat_byte(0x22),
        Address::repeat_byte(0x33),
    );
    for (who, port) in [(x, 9001), (y, 9002), (z, 9003)] {
        livepeer
            .set_uri(
                livepeer.service_registry,
                who,
                &format!("http://127.0.0.1:{port}"),
            )
            .await;
    }

    // An empty pool is no candidate and no error.
    let found = livepeer.source().discover(&http).await.unwrap();
    assert!(found.orchestrators.is_empty() && found.skipped.is_empty());
    assert_eq!(found.walk_end, WalkEnd::Complete);

    // x -> y -> z -> y: the walk stops before reading y twice.
    livepeer.set_pool(&[x, y, z]).await;
    livepeer
        .chain
        .send(
            livepeer.bonding_manager,
            BondingManagerAdmin::setNextCall {
                transcoder: z,
                nextTranscoder: y,
            },
        )
        .await;
    let found = livepeer.source().discover(&http).await.unwrap();
    assert_eq!(found.walk_end, WalkEnd::Cycle { repeated: y });
    assert_eq!(found.orchestrators.len(), 3);

    // The limit cuts the walk too.
    let mut limited = livepeer.source();
    limited.max_orchestrators = 2;
    let found = limited.discover(&http).await.unwrap();
    assert_eq!(found.walk_end, WalkEnd::Limit { max: 2 });
    assert_eq!(found.orchestrators.len(), 2);

    // A Controller that does not know the BondingManager (a fresh one) answers the zero
    // address, as the real one does for an unknown name.
    let empty_controller = livepeer.chain.deploy(&contracts, "Controller").await;
    let mut source = livepeer.source();
    source.controller = empty_controller;
    let e = source.discover(&http).await.unwrap_err();
    assert!(
        matches!(e, ChainError::NotRegistered { name: "BondingManager", controller } if controller == empty_controller),
        "{e}"
    );

    // An address without code (wrong chain): the call returns no data.
    let mut source = livepeer.source();
    source.controller = Address::repeat_byte(0x77);
    let e = source.discover(&http).await.unwrap_err();
    assert!(matches!(e, ChainError::NoContract { .. }), "{e}");
    assert!(e.to_string().contains("Controller.getContract"), "{e}");

    // A reverting call carries its reason.
    livepeer
        .chain
        .send(
            livepeer.controller,
            ControllerAdmin::setRevertingCall { value: true },
        )
        .await;
    let e = livepeer.source().discover(&http).await.unwrap_err();
    match &e {
        ChainError::Reverted {
            call,
            contract,
            reason,
        } => {
            assert_eq!(*contract, livepeer.controller);
            assert!(call.contains("BondingManager"), "{call}");
            assert_eq!(reason, "Controller: lookups disabled");
        }
        other => panic!("expected a revert, got {other}"),
    }
}

#[tokio::test]
async fn chain_discovery_names_a_refusing_rpc_url() {
    let url = closed_port_url();
    let source = ChainSource::arbitrum_one(url.clone());
    let e = source.discover(&reqwest::Client::new()).await.unwrap_err();
    assert!(
        matches!(&e, ChainError::Unreachable { rpc_url, .. } if *rpc_url == url),
        "{e}"
    );
    assert!(e.to_string().contains(&url), "{e}");
}

#[tokio::test]
async fn claimed_addresses_are_verified_against_the_service_registry() {
    use lvt_gateway::identity::AddressVerifier;
    use lvt_schema::AddressCheck;

    let (contracts, node) = tokio::join!(compile(), start_node());
    let livepeer = Livepeer::deploy(&node, &contracts).await;
    let honest = start_sim("honest").await;
    let registry = livepeer.service_registry;
    livepeer
        .set_uri(registry, eth(&honest), &honest.orch.uri)
        .await;
    let verifier = AddressVerifier::new(livepeer.source(), reqwest::Client::new());
    let claimed = honest.orch.eth_address.clone();

    // The address registered the URI the tester connected to.
    assert_eq!(
        verifier.check(&claimed, &honest.orch.uri).await,
        AddressCheck::Verified
    );
    // An impostor elsewhere claiming the same address is caught, with what is registered.
    assert_eq!(
        verifier
            .check(&claimed, "https://impostor.example:8935")
            .await,
        AddressCheck::Mismatch {
            registered_uri: Some(honest.orch.uri.clone())
        }
    );
    // An address that registered nothing, and a claim that is not an address.
    let nobody = format!("{}", Address::repeat_byte(0x5a));
    assert_eq!(
        verifier.check(&nobody, &honest.orch.uri).await,
        AddressCheck::Mismatch {
            registered_uri: None
        }
    );
    assert_eq!(
        verifier.check("me, honestly", &honest.orch.uri).await,
        AddressCheck::Mismatch {
            registered_uri: None
        }
    );
    // The answer is kept for the verifier's lifetime: a registration changed since is not read
    // again (a run judges by what it saw first).
    livepeer
        .set_uri(registry, eth(&honest), "https://moved.example:8935")
        .await;
    assert_eq!(
        verifier.check(&claimed, &honest.orch.uri).await,
        AddressCheck::Verified
    );
    let fresh = AddressVerifier::new(livepeer.source(), reqwest::Client::new());
    assert!(matches!(
        fresh.check(&claimed, &honest.orch.uri).await,
        AddressCheck::Mismatch { .. }
    ));

    // A chain that cannot be read leaves the claim unverified, never verified.
    let mut down = livepeer.source();
    down.rpc_url = closed_port_url();
    let unreadable = AddressVerifier::new(down, reqwest::Client::new());
    match unreadable.check(&claimed, &honest.orch.uri).await {
        AddressCheck::Unverified { reason } => {
            assert!(reason.contains("could not be read"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
