//! The `lvt` binary as a user runs it: exit codes, the JSON record, the table, usage errors.

mod common;

use std::process::{Command, Output};

use common::start_sim;
use lvt_gateway::sim::Profile;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

async fn lvt(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || Command::new(LVT).args(&args).output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_exit_codes_and_outputs() {
    let (good, stop_good) = start_sim(
        Profile {
            capacity: 1,
            latency_ms: 30,
            ..Profile::default()
        },
        true,
    )
    .await;
    let (busy, stop_busy) = start_sim(
        Profile {
            capacity: 0,
            ..Profile::default()
        },
        true,
    )
    .await;

    let out = lvt(&["probe", &good.uri, "--duration", "2s", "--json"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON record");
    assert_eq!(record["outcome"], "passed");
    assert_eq!(record["is_test_load"], true);
    assert!(record["metrics"]["e2e_latency_ms"]["p50"].as_f64().unwrap() >= 30.0);

    let out = lvt(&[
        "probe",
        &good.uri,
        "--duration",
        "2s",
        "--prompt",
        "neon city",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("outcome") && l.ends_with("passed")),
        "{table}"
    );
    assert!(table.contains("e2e ms p50/p90/p95/p99/max"), "{table}");

    let out = lvt(&["probe", &busy.uri, "--duration", "2s"]).await;
    assert_eq!(out.status.code(), Some(1), "busy is not a pass");
    assert!(String::from_utf8_lossy(&out.stdout).contains("unscored_busy"));

    for bad in [
        vec!["probe", "not a uri"],
        vec!["probe", &good.uri, "--params", "{not json"],
        vec!["probe", &good.uri, "--duration", "ten"],
        vec!["probe", &good.uri, "--complexity", "extreme"],
    ] {
        let out = lvt(&bad).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty(), "{bad:?} explains itself");
    }
    stop_good.cancel();
    stop_busy.cancel();
}

#[tokio::test]
async fn sim_rejects_a_bad_profile_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "latency_ms = 10\nlatncy_jitter_ms = 5\n").unwrap();
    let out = lvt(&[
        "sim",
        "--listen",
        "127.0.0.1:0",
        "--profile",
        path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("p.toml:2:"), "{err}");
    assert!(err.contains("latncy_jitter_ms"), "{err}");
}
