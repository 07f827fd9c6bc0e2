//! The discovery inventory against simulated orchestrators started in this process: usable,
//! unreachable (a closed port), incapable (a model the simulator does not offer), busy, and
//! slow candidates (the `get_orchestrator_delay_ms` profile key), each dropped or ranked with
//! its reason.

use std::time::Duration;

use lvt_gateway::discovery::{
    Candidate, DropReason, InventoryOptions, StaticSource, Status, inventory,
};
use lvt_sim::{OrchestratorConfig, Profile};
use lvt_testkit::sim::LoopbackSim;

async fn start(name: &str, profile: Profile, plaintext: bool) -> LoopbackSim {
    let mut cfg = OrchestratorConfig::new(name, profile);
    cfg.plaintext = plaintext;
    LoopbackSim::start(cfg).await
}

fn candidates(uris: &[String]) -> Vec<Candidate> {
    StaticSource::from_addresses(uris.iter().cloned())
        .resolve()
        .unwrap()
}

/// A port that was just free: nothing listens there.
fn closed_port_uri() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn reason_of(status: &Status) -> Option<DropReason> {
    match status {
        Status::Usable => None,
        Status::Dropped { reason, .. } => Some(*reason),
    }
}

#[tokio::test]
async fn inventory_ranks_usable_and_records_why_others_are_dropped() {
    let fast = start("fast", Profile::default(), true).await;
    // The delay as a profile file writes it.
    let slow_profile = Profile::from_toml_str("get_orchestrator_delay_ms = 300", "slow.toml")
        .expect("a valid profile");
    assert!(
        slow_profile
            .summary()
            .ends_with("GetOrchestrator after 300 ms")
    );
    let slow = start("slow", slow_profile, true).await;
    let busy = start(
        "busy",
        Profile {
            capacity: 0,
            ..Profile::default()
        },
        true,
    )
    .await;
    let closed = closed_port_uri();
    let uris = vec![
        slow.orch.uri.clone(),
        closed.clone(),
        busy.orch.uri.clone(),
        fast.orch.uri.clone(),
    ];
    let opts = InventoryOptions {
        timeout: Duration::from_secs(5),
        ..InventoryOptions::default()
    };
    let inv = inventory(candidates(&uris), &opts).await;
    assert_eq!(inv.model_id, "noop");
    let got: Vec<(String, Option<DropReason>)> = inv
        .entries
        .iter()
        .map(|e| (e.candidate.uri.to_string(), reason_of(&e.status)))
        .collect();
    // Both usable ones are warm, so the faster answer ranks first; dropped ones keep their
    // candidate order.
    assert_eq!(
        got,
        [
            (fast.orch.uri.clone(), None),
            (slow.orch.uri.clone(), None),
            (closed, Some(DropReason::Unreachable)),
            (busy.orch.uri.clone(), Some(DropReason::NoCapacity)),
        ]
    );
    let fast_entry = &inv.entries[0];
    let slow_entry = &inv.entries[1];
    assert!(slow_entry.latency_ms.unwrap() >= 300, "{slow_entry:?}");
    assert!(fast_entry.latency_ms.unwrap() < slow_entry.latency_ms.unwrap());
    // The answer's details are kept: address, models with capacity, GPUs and prices (the
    // request carries no capabilities, so hardware and prices are included).
    let info = fast_entry.info.as_ref().unwrap();
    // The simulator prints its address checksummed; the summary keeps it lowercase.
    assert_eq!(
        info.eth_address.as_deref(),
        Some(fast.orch.eth_address.to_lowercase().as_str())
    );
    let model = fast_entry.model("noop").unwrap();
    assert!(model.warm);
    assert_eq!((model.capacity, model.capacity_in_use), (1, 0));
    assert!(!info.gpus.is_empty());
    assert!(!info.live_prices.is_empty());
    // TLS candidates have their certificate recorded, plaintext ones do not.
    assert!(fast_entry.cert_fingerprint.is_none());
    assert_eq!(slow_entry.cert_fingerprint, slow.orch.cert_fingerprint);
    assert_eq!(inv.usable().count(), 2);
    assert_eq!(inv.dropped().count(), 2);
    // A busy orchestrator answered: its latency is known even though it is dropped.
    assert!(inv.entries[3].latency_ms.is_some());
}

#[tokio::test]
async fn a_model_the_orchestrator_does_not_offer_is_incapable() {
    let orch = start("o", Profile::default(), true).await;
    let opts = InventoryOptions {
        model_id: "not-a-model".into(),
        timeout: Duration::from_secs(5),
        ..InventoryOptions::default()
    };
    let inv = inventory(candidates(std::slice::from_ref(&orch.orch.uri)), &opts).await;
    let Status::Dropped { reason, detail } = &inv.entries[0].status else {
        panic!("expected a drop: {:?}", inv.entries[0]);
    };
    assert_eq!(*reason, DropReason::Incapable);
    assert_eq!(
        detail,
        "model not-a-model not offered (offers: noop, streamdiffusion)"
    );
    // The same orchestrator is usable for a model it serves.
    let opts = InventoryOptions {
        model_id: "streamdiffusion".into(),
        ..opts
    };
    let inv = inventory(candidates(std::slice::from_ref(&orch.orch.uri)), &opts).await;
    assert_eq!(inv.entries[0].status, Status::Usable);
}

#[tokio::test]
async fn a_candidate_slower_than_the_timeout_is_dropped_as_timeout() {
    let slow = start(
        "slow",
        Profile {
            get_orchestrator_delay_ms: 5_000,
            ..Profile::default()
        },
        false,
    )
    .await;
    let fast = start("fast", Profile::default(), false).await;
    let opts = InventoryOptions {
        timeout: Duration::from_millis(400),
        concurrency: 1,
        ..InventoryOptions::default()
    };
    let started = std::time::Instant::now();
    let inv = inventory(
        candidates(&[slow.orch.uri.clone(), fast.orch.uri.clone()]),
        &opts,
    )
    .await;
    // The slow candidate costs the timeout, not its full delay.
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(inv.entries[0].candidate.uri.to_string(), fast.orch.uri);
    assert_eq!(inv.entries[0].status, Status::Usable);
    let Status::Dropped { reason, detail } = &inv.entries[1].status else {
        panic!("expected a drop: {:?}", inv.entries[1]);
    };
    assert_eq!(*reason, DropReason::Timeout);
    assert!(detail.contains("timed out after 400 ms"), "{detail}");
    assert_eq!(inv.entries[1].latency_ms, None);
}
