//! `lvt agent` end to end: the real binary with an agent.toml, a scenario directory, a
//! simulated orchestrator and a real collector on loopback. The agent runs its schedule every
//! two seconds, every record reaches the collector labelled with the agent's region, SIGTERM
//! stops it cleanly, and its state file remembers each schedule's last start.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{AgentCollector, start_sim};
use lvt_sim::Profile;
use serde_json::Value;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

const SCENARIO: &str = r#"id = "agent-quick"
version = "1.0.0"
description = "one short session, scheduled by an agent"
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
duration_s = 1

[targets]
source = "explicit"
uris = ["ORCH"]

[load]
executor = "closed"
sessions_per_target = 1
concurrency = 1
"#;

/// Writes the scenario directory and agent.toml under `dir`, and returns the config's path.
fn write_agent(dir: &Path, orch: &str, collector: &str, extra: &str) -> std::path::PathBuf {
    let scenarios = dir.join("repo").join("scenarios");
    std::fs::create_dir_all(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("agent-quick.toml"),
        SCENARIO.replace("ORCH", orch),
    )
    .unwrap();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "region = \"eu-west\"\nkey = \"{}\"\ncollector = \"{collector}\"\nstate_dir = \"{}\"\nshutdown_grace_s = 20\n{extra}\n[scenarios]\ngit = \"{}\"\npath = \"scenarios\"\n\n[[schedule]]\nscenario = \"agent-quick\"\ncron = \"*/2 * * * * *\"\n",
            dir.join("agent.key").display(),
            dir.join("state").display(),
            dir.join("repo").display(),
        ),
    )
    .unwrap();
    config
}

async fn results(collector: &str) -> Vec<Value> {
    let page: Value = reqwest::get(format!("{collector}/v1/results?limit=100"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["results"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_runs_its_schedule_ships_with_its_region_and_stops_on_sigterm() {
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
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let config = write_agent(
        dir.path(),
        &orch.uri,
        &collector.url,
        "admin_listen = \"127.0.0.1:0\"\n",
    );
    let log = dir.path().join("agent.log");
    let mut agent = Command::new(LVT)
        .args(["agent", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    // Two scheduled runs, one session each, stored while the agent keeps running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = results(&collector.url).await;
        if stored.len() >= 2 {
            break stored;
        }
        assert!(
            agent.try_wait().unwrap().is_none(),
            "the agent exited:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than two records within 60 s:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for item in &stored {
        let record = &item["record"];
        assert_eq!(record["region"], "eu-west", "{record}");
        assert_eq!(record["scenario"]["id"], "agent-quick", "{record}");
        assert_eq!(record["outcome"], "passed", "{record}");
        assert_eq!(item["agent_id"], "agent-eu-1");
    }

    // The admin endpoints say what it did: the address it bound is in its log.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let admin = text
        .lines()
        .find_map(|line| line.strip_prefix("lvt: agent admin on "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no admin address in the log:\n{text}"))
        .to_owned();
    let get_json = |path: &str| {
        let url = format!("{admin}{path}");
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(get_json("/healthz").await["status"], "ok");
    let status = get_json("/status").await;
    assert_eq!(status["region"], "eu-west", "{status}");
    assert!(
        status["runs_started"].as_u64().unwrap_or(0) >= 2,
        "{status}"
    );
    assert!(
        status["sessions"]["passed"].as_u64().unwrap_or(0) >= 2,
        "{status}"
    );
    assert_eq!(
        status["schedules"][0]["scenario"], "agent-quick",
        "{status}"
    );
    let next = status["schedules"][0]["next_unix_ms"].as_i64().unwrap_or(0);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    assert!(
        (now - 5_000..=now + 5_000).contains(&next),
        "the next start is within one period: {status}"
    );
    assert_eq!(status["spool"]["batches"], 0, "{status}");
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "lvt_agent_sessions_total{outcome=\"passed\"}",
        "lvt_agent_schedule_lag_seconds{scenario=\"agent-quick\"}",
        "lvt_agent_spool_bytes 0",
    ] {
        assert!(metrics.contains(expected), "{expected}:\n{metrics}");
    }

    // SIGTERM: the agent stops starting runs, lets the running one end, ships, exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || agent.wait().unwrap())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(exit.code(), Some(0), "{text}");
    assert!(text.contains("stopping (SIGTERM)"), "{text}");
    assert!(text.contains("agent stopped after"), "{text}");

    // Every session once, none lost: what the agent ran is what the collector holds.
    let stored = results(&collector.url).await;
    let mut ids: Vec<&str> = stored
        .iter()
        .filter_map(|item| item["record"]["session_id"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "no record stored twice");
    let runs: u64 = text
        .lines()
        .find_map(|line| {
            line.split("agent stopped after ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert_eq!(
        u64::try_from(count).unwrap(),
        runs,
        "one session per run, all stored:\n{text}"
    );

    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state").join("state.json")).unwrap(),
    )
    .unwrap();
    assert!(
        state["last_starts"]["agent-quick"].as_i64().unwrap_or(0) > 0,
        "{state}"
    );
    stop_sim.cancel();
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_refuses_what_it_cannot_do_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let run = |config: &Path| {
        let out = Command::new(LVT)
            .args(["agent", "--config"])
            .arg(config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The key the config names.
    let out = Command::new(LVT)
        .args(["keygen", "--out"])
        .arg(dir.path().join("agent"))
        .output()
        .unwrap();
    assert!(out.status.success());

    // A misspelt key, located.
    let config = write_agent(
        dir.path(),
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        "regoin = \"x\"\n",
    );
    let (code, err) = run(&config);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("agent.toml:6:1"), "{err}");

    // Pulling over git is not built: said so, not ignored.
    let config = write_agent(dir.path(), "http://127.0.0.1:1", "http://127.0.0.1:2", "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("git = \"{}\"", dir.path().join("repo").display()),
        "git = \"https://git.example/s.git\"",
    );
    std::fs::write(&config, text).unwrap();
    let (code, err) = run(&config);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("pulling scenarios over git is not built yet"),
        "{err}"
    );

    // A scheduled scenario that is not there.
    let config = write_agent(dir.path(), "http://127.0.0.1:1", "http://127.0.0.1:2", "");
    std::fs::remove_file(dir.path().join("repo/scenarios/agent-quick.toml")).unwrap();
    let (code, err) = run(&config);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no valid scenario with id \"agent-quick\""),
        "{err}"
    );
}
