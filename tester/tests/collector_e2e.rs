//! The tester and the collector together, as an operator deploys them: `lvt keygen` makes the
//! agent's key pair, the collector's settings name its public key, `lvt run --collector` ships
//! every session's record signed, and the collector's public API serves exactly those records
//! back. Nothing here is mocked: the real `lvt` binary, the real collector on loopback with an
//! SQLite file, a simulated orchestrator.

mod common;

use std::process::{Command, Output};

use common::{AgentCollector, start_sim};
use lvt_sim::Profile;
use serde_json::{Value, json};

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

async fn lvt(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(LVT).args(&args).output().unwrap())
        .await
        .unwrap()
}

const SCENARIO: &str = r#"id = "ship-e2e"
version = "1.0.0"
description = "two short sessions shipped to the collector"
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "calm-lake"
complexity = "low"
params = { prompt = "a calm lake at dawn" }

[[prompts]]
id = "neon-city"
complexity = "high"
params = { prompt = "a neon city in the rain" }

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
concurrency = 2

[[thresholds]]
expr = "failure_rate < 0.5"

[[thresholds]]
expr = "startup_ms.p95 < 9000"

[[thresholds]]
expr = "e2e_latency_ms.p50 < 400"
where = { complexity = "high" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ships_signed_records_that_the_collector_serves_back() {
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

    // The agent's key pair, made the way an operator makes it, and the collector that knows it.
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let collector_url = collector.url.clone();

    let scenario = dir.path().join("ship-e2e.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out_dir = dir.path().join("out");
    let out = lvt(vec![
        "run".into(),
        scenario.display().to_string(),
        "--target".into(),
        orch.uri.clone(),
        "--out".into(),
        out_dir.display().to_string(),
        "--collector".into(),
        collector_url.clone(),
        "--key".into(),
        collector.key_path.display().to_string(),
        "--spool".into(),
        dir.path().join("spool").display().to_string(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("shipped 2 record(s)") && stderr.contains("inserted 2, duplicates 0"),
        "{stderr}"
    );

    // What the run wrote locally is exactly what the collector serves publicly.
    let run: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("run.json")).unwrap()).unwrap();
    let mut local: Vec<String> = run["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["report"]["session_id"].as_str().unwrap().to_string())
        .collect();
    local.sort();

    let http = reqwest::Client::new();
    let page: Value = http
        .get(format!("{collector_url}/v1/results?limit=10"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let results = page["results"].as_array().unwrap();
    let mut served: Vec<String> = results
        .iter()
        .map(|r| r["record"]["session_id"].as_str().unwrap().to_string())
        .collect();
    served.sort();
    assert_eq!(served, local);
    for r in results {
        assert_eq!(r["agent_id"], "agent-eu-1");
        assert_eq!(r["record"]["is_test_load"], true);
        assert_eq!(r["record"]["outcome"], "passed");
        // Every record names the scenario it ran under, with the same hash run.json has.
        assert_eq!(r["record"]["scenario"]["id"], "ship-e2e");
        assert_eq!(r["record"]["scenario"]["version"], "1.0.0");
        assert_eq!(r["record"]["scenario"]["sha256"], run["scenario"]["sha256"]);
        // And the limits its thresholds declare for it, which the collector's lvt-v1 formula
        // scores against.
        let slo = &r["record"]["slo"];
        assert_eq!(slo["startup_ms"], 9000.0, "{slo}");
        match r["record"]["prompt"]["complexity"].as_str() {
            Some("high") => assert_eq!(slo["e2e_latency_ms"], 400.0, "{slo}"),
            _ => assert!(slo.get("e2e_latency_ms").is_none(), "{slo}"),
        }
    }
    let agents: Value = http
        .get(format!("{collector_url}/v1/agents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(agents.to_string().contains("agent-eu-1"), "{agents}");

    // Shipping the same records again (an agent retrying after a lost answer) stores nothing
    // twice: spool them by hand and let `lvt ship-spool` deliver them.
    let spool = dir.path().join("respool");
    std::fs::create_dir_all(&spool).unwrap();
    let records: Vec<&Value> = run["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["report"])
        .collect();
    lvt_tester::ship::spool_batch(&spool, &serde_json::to_value(&records).unwrap()).unwrap();
    let out = lvt(vec![
        "ship-spool".into(),
        spool.display().to_string(),
        "--collector".into(),
        collector_url.clone(),
        "--key".into(),
        collector.key_path.display().to_string(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = http
        .get(format!("{collector_url}/v1/results?limit=10"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["results"].as_array().unwrap().len(), 2);

    collector.stop().await;
    stop_sim.cancel();
}

const FLEET_SCENARIO: &str = r#"id = "dashboard-e2e"
version = "1.0.0"
description = "one 16 s session on each orchestrator of the built-in fleet, all at once"
pipeline = "live-video-to-video"
model_id = "streamdiffusion"

[[prompts]]
id = "anime-style"
complexity = "low"
params = { prompt = "anime style" }

[input]
width = 256
height = 256
fps = 15
segment_ms = 1000
bitrate_kbps = 300

[session]
duration_s = 16

[targets]
source = "explicit"
uris = ["http://127.0.0.1:1"]

[load]
executor = "closed"
sessions_per_target = 1
concurrency = 4
"#;

/// The dashboard against a collector filled by a real run: `lvt run` drives one 16 s session on
/// each orchestrator of the built-in simulated fleet (`good`, `slow`, `flaky` that crashes 12 s
/// in, `busy` that refuses every job) and ships the records signed; headless Chromium renders
/// the page, which must list the orchestrators in the collector's ranking order, and that order
/// must be the fleet's (the healthy two first, the crashing one below them, the unscored busy one
/// last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_ranks_the_fleet_of_a_real_run() {
    use lvt_sim::FleetConfig;
    use tokio_util::sync::CancellationToken;

    let dir = tempfile::tempdir().unwrap();
    let stop_fleet = CancellationToken::new();
    let stopped = stop_fleet.clone();
    let fleet = lvt_sim::start_fleet(
        &FleetConfig::builtin(),
        std::net::IpAddr::from([127, 0, 0, 1]),
        async move { stopped.cancelled().await },
    )
    .await
    .expect("start the built-in fleet");
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let scenario = dir.path().join("dashboard-e2e.toml");
    std::fs::write(&scenario, FLEET_SCENARIO).unwrap();
    let mut args = vec!["run".to_owned(), scenario.display().to_string()];
    for orchestrator in &fleet {
        args.extend(["--target".to_owned(), orchestrator.uri.clone()]);
    }
    args.extend([
        "--out".to_owned(),
        dir.path().join("out").display().to_string(),
        "--collector".to_owned(),
        collector.url.clone(),
        "--key".to_owned(),
        collector.key_path.display().to_string(),
        "--spool".to_owned(),
        dir.path().join("spool").display().to_string(),
        "--region".to_owned(),
        "eu-west".to_owned(),
    ]);
    let out = lvt(args).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("shipped 4 record(s)") && stderr.contains("inserted 4, duplicates 0"),
        "{stderr}"
    );

    let run: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out").join("run.json")).unwrap())
            .unwrap();
    for session in run["sessions"].as_array().unwrap() {
        assert_eq!(session["report"]["region"], "eu-west", "{session}");
    }

    // The collector's ranking, named by the fleet (records name an orchestrator by address,
    // else by URI).
    let name_of = |orchestrator: &str| {
        fleet
            .iter()
            .find(|o| o.eth_address.eq_ignore_ascii_case(orchestrator) || o.uri == orchestrator)
            .map_or_else(|| format!("unknown {orchestrator}"), |o| o.name.clone())
    };
    let ranking: Value = reqwest::get(format!("{}/v1/sla/orchestrators", collector.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ranked: Vec<String> = ranking["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["orchestrator"].as_str().unwrap().to_owned())
        .collect();
    let names: Vec<String> = ranked.iter().map(|o| name_of(o)).collect();
    // A fresh collector has no seven-day cohort, so latency and FPS score 0.5 for everyone
    // (docs/sla.md, "The 0.5 rules") and the two healthy orchestrators tie; the crash and the
    // refusals still separate the rest.
    let mut healthy = names[..2].to_vec();
    healthy.sort();
    assert_eq!(healthy, ["good", "slow"], "{ranking}");
    assert_eq!(names[2..], ["flaky", "busy"], "{ranking}");
    let ranks: Vec<Value> = ranking["orchestrators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["rank"].clone())
        .collect();
    // busy is unscored: listed last, without a rank.
    assert_eq!(
        ranks,
        [json!(1), json!(2), json!(3), Value::Null],
        "{ranking}"
    );

    let url = format!("{}/", collector.url);
    let dom = lvt_testkit::chromium::rendered_dom(&url).await;
    assert_eq!(
        lvt_testkit::chromium::leaderboard_order(&dom),
        ranked,
        "{dom}"
    );
    // The run's --region is the grid's one column.
    assert!(dom.contains("<th class=\"num\">eu-west</th>"), "{dom}");
    lvt_testkit::chromium::keep_screenshot(&url, "dashboard-real-run.png").await;

    collector.stop().await;
    stop_fleet.cancel();
}

/// A session's record is durable when the session ends, not when the run ends: with two
/// sessions one after the other, the first is stored by the collector while the run is still
/// going, and killing the run with SIGKILL then does not lose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_session_is_shipped_before_the_run_ends_and_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (orch, stop_sim) = start_sim(
        Profile {
            latency_ms: 20,
            capacity: 1,
            ..Profile::default()
        },
        true,
    )
    .await;
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let scenario = dir.path().join("sequential.toml");
    std::fs::write(
        &scenario,
        SCENARIO
            .replace("duration_s = 2", "duration_s = 4")
            .replace("concurrency = 2", "concurrency = 1"),
    )
    .unwrap();
    let mut run = Command::new(LVT)
        .args([
            "run",
            &scenario.display().to_string(),
            "--target",
            &orch.uri,
        ])
        .arg("--out")
        .arg(dir.path().join("out"))
        .args(["--collector", &collector.url, "--key"])
        .arg(&collector.key_path)
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let stored = loop {
        let page: Value = http
            .get(format!("{}/v1/results?limit=10", collector.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let results = page["results"].as_array().cloned().unwrap_or_default();
        if !results.is_empty() {
            break results;
        }
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended before any record was stored"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "no record stored within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        run.try_wait().unwrap().is_none(),
        "the second session is still running when the first is stored"
    );
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(
        !dir.path().join("out").join("run.json").exists(),
        "the run was killed before its own outputs"
    );
    let page: Value = http
        .get(format!("{}/v1/results?limit=10", collector.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["results"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["results"][0]["record"]["outcome"], "passed", "{page}");
    stop_sim.cancel();
    collector.stop().await;
}
