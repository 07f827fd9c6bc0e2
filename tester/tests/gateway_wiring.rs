//! The gateway pieces as `lvt` wires them, through the real binary: jobs paid through a remote
//! signer (`lvt probe --remote-signer`), and the go-livepeer analytics events of a network
//! session shipped into a real collector (`lvt probe --network --collector --key`).

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use common::{AgentCollector, start_sim};
use lvt_schema::{FailureClass, Outcome, SessionReport};
use lvt_sim::Profile;
use lvt_wire::payment::stand_in::StandInSigner;
use serde_json::Value;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

async fn lvt(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(LVT).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn paid_profile() -> Profile {
    Profile {
        latency_ms: 20,
        capacity: 2,
        require_payment: true,
        ..Profile::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_signer_pays_the_job_and_its_payment_loop() {
    let (orch, stop_sim) = start_sim(paid_profile(), true).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let signer = StandInSigner::start(listener).expect("stand-in signer");

    // Offchain (no signer) the orchestrator refuses the job with 402: a payment failure.
    let out = lvt(args(&["probe", &orch.uri, "--duration", "1s", "--json"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let report: SessionReport = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.failure.map(|f| f.class), Some(FailureClass::Payment));
    assert_eq!(report.payment, None, "offchain nothing is paid");
    assert_eq!(orch.payments_received(), 0);

    // Through the signer the job starts, and a 6 s session makes one periodic payment at 5 s.
    let out = lvt(args(&[
        "probe",
        &orch.uri,
        "--duration",
        "6s",
        "--json",
        "--remote-signer",
        signer.url(),
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: SessionReport = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report.outcome, Outcome::Passed);
    assert!(orch.payments_received() >= 1, "{stderr}");
    let paths: Vec<&str> = signer.calls().iter().map(|c| c.path).collect();
    assert_eq!(paths.first(), Some(&"/sign-orchestrator-info"), "{paths:?}");
    // One payment for the job start, one per periodic payment.
    let payments = paths
        .iter()
        .filter(|p| **p == "/generate-live-payment")
        .count();
    assert!(payments >= 2, "{paths:?}");
    // The record counts every ticket the signer made (one per payment here), and what they
    // were worth: the simulator's default tickets are worth nothing.
    let spent = report
        .payment
        .expect("an on-chain session says what it paid");
    assert_eq!(usize::try_from(spent.tickets).unwrap(), payments);
    assert_eq!(spent.expected_value_wei, "0");

    // `lvt run` pays every session the same way: the shipped smoke scenario (one 10 s session)
    // passes against the paying orchestrator only with the signer.
    let out_dir = tempfile::tempdir().unwrap();
    let run_args = |signer: Option<&str>| {
        let mut a = args(&["run", "smoke", "--target", &orch.uri, "--progress", "off"]);
        a.extend(["--out".to_string(), out_dir.path().display().to_string()]);
        if let Some(url) = signer {
            a.extend(["--remote-signer".to_string(), url.to_string()]);
        }
        a
    };
    let out = lvt(run_args(Some(signer.url()))).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The run adds up what its sessions paid, in run.json and in its headline.
    let run: Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("run.json")).expect("run.json"))
            .expect("run.json is JSON");
    let tickets: u64 = run["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["report"]["payment"]["tickets"].as_u64().expect("paid"))
        .sum();
    assert!(tickets >= 2, "the start and the 5 s payment: {run}");
    assert_eq!(
        run["payment"],
        serde_json::json!({"tickets": tickets, "expected_value_wei": "0"})
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("paid {tickets} ticket(s) worth 0 wei")),
        "{stdout}"
    );
    let out = lvt(run_args(None)).await;
    assert_eq!(
        out.status.code(),
        Some(99),
        "unpaid, the failure_rate threshold fails"
    );

    // A signer URL that is not http(s) is a usage error.
    let out = lvt(args(&["probe", &orch.uri, "--remote-signer", "ftp://x"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--remote-signer"));
    stop_sim.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_session_ships_its_gateway_events_to_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let (orch, stop_sim) = start_sim(
        Profile {
            latency_ms: 20,
            capacity: 2,
            ..Profile::default()
        },
        true,
    )
    .await;
    let collector = AgentCollector::start(LVT, dir.path(), "agent-1").await;
    let collector_url = collector.url.clone();

    let discovery = format!("static:{}", orch.uri);
    let out = lvt(args(&[
        "probe",
        "--network",
        "--discovery",
        &discovery,
        "--duration",
        "2s",
        "--json",
        "--collector",
        &collector_url,
        "--key",
        &collector.key_path.display().to_string(),
        "--spool",
        &dir.path().join("spool").display().to_string(),
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("lvt: gateway events:"), "{stderr}");
    let report: SessionReport = serde_json::from_str(&stdout).unwrap();

    // The events are in the collector, signed by the agent, in go-livepeer's shapes.
    let page: Value = reqwest::get(format!("{collector_url}/v1/events?limit=500"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = page["events"].as_array().cloned().unwrap_or_default();
    let mut traces = BTreeSet::new();
    let mut families = BTreeSet::new();
    for row in &events {
        assert!(row["kept_aside_reason"].is_null(), "{row}");
        let event = &row["event"];
        families.insert(event["type"].as_str().unwrap_or("").to_owned());
        if event["type"] == "stream_trace" && event["data"]["request_id"] == report.session_id {
            traces.insert(event["data"]["type"].as_str().unwrap_or("").to_owned());
        }
    }
    for family in ["discovery_results", "stream_trace", "ai_stream_status"] {
        assert!(
            families.contains(family),
            "{family} missing from {families:?}"
        );
    }
    for kind in [
        "gateway_receive_stream_request",
        "gateway_send_first_ingest_segment",
        "gateway_receive_first_processed_segment",
        "gateway_ingest_stream_closed",
    ] {
        assert!(traces.contains(kind), "{kind} missing from {traces:?}");
    }
    // And the session record itself went the usual way. The agent's own gateway events are
    // test load: the collector does not fold them into an organic session beside it.
    let results: Value = reqwest::get(format!("{collector_url}/v1/results"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = results["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 1, "{results}");
    assert_eq!(records[0]["record"]["session_id"], report.session_id);
    assert_eq!(records[0]["record"]["is_test_load"], true);

    collector.stop().await;
    stop_sim.cancel();
}
