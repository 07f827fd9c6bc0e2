//! `lvt agent` end to end: the real binary with an agent.toml, a scenario directory, a
//! simulated orchestrator and a real collector on loopback. The agent runs its schedule every
//! two seconds, every record reaches the collector labelled with the agent's region, SIGTERM
//! stops it cleanly, and its state file remembers each schedule's last start. Scenarios come
//! from a plain folder, or from a real git repository served over git's smart HTTP protocol
//! (and `file://`), adopted commit by commit only when valid.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::agents::{
    admin_address, commit_scenario, fleet_status, get_json, get_text, results, signal, sigterm,
    spawn_agent, wait_for,
};
use common::git_server::{GitServer, git};
use common::{AgentCollector, start_sim, start_sim_config};
use lvt_sim::{OrchestratorConfig, Profile, TicketTerms};
use lvt_wire::payment::stand_in::StandInSigner;
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
    let repo = dir.join("repo").display().to_string();
    write_config(dir, collector, &repo, extra, "")
}

/// Writes agent.toml under `dir` (key `dir/agent.key`, state in `dir/state`) with scenarios
/// from `git`, `extra` at the top level and `scenarios_extra` in `[scenarios]`; one schedule
/// runs `agent-quick` every two seconds.
fn write_config(
    dir: &Path,
    collector: &str,
    git: &str,
    extra: &str,
    scenarios_extra: &str,
) -> std::path::PathBuf {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "region = \"eu-west\"\nkey = \"{}\"\ncollector = \"{collector}\"\nstate_dir = \"{}\"\nshutdown_grace_s = 20\n{extra}\n[scenarios]\ngit = \"{git}\"\npath = \"scenarios\"\n{scenarios_extra}\n[[schedule]]\nscenario = \"agent-quick\"\ncron = \"*/2 * * * * *\"\n",
            dir.join("agent.key").display(),
            dir.join("state").display(),
        ),
    )
    .unwrap();
    config
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
    let mut agent = spawn_agent(&config, &log);

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
    let admin = admin_address(&log).await;
    assert_eq!(get_json(format!("{admin}/healthz")).await["status"], "ok");
    let status = get_json(format!("{admin}/status")).await;
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
    let metrics = get_text(format!("{admin}/metrics")).await;
    for expected in [
        "lvt_agent_sessions_total{outcome=\"passed\"}",
        "lvt_agent_schedule_lag_seconds{scenario=\"agent-quick\"}",
        "lvt_agent_spool_bytes 0",
    ] {
        assert!(metrics.contains(expected), "{expected}:\n{metrics}");
    }

    // SIGTERM: the agent stops starting runs, lets the running one end, ships, exits 0.
    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
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

    // A repository that cannot be reached at the first start: no commit to run, said so.
    let config = write_config(
        dir.path(),
        "http://127.0.0.1:2",
        "http://127.0.0.1:1/scenarios.git",
        "",
        "",
    );
    let (code, err) = run(&config);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no usable scenario commit from http://127.0.0.1:1/scenarios.git"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_pulls_scenarios_over_smart_http_and_adopts_only_valid_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (orch, stop_sim) = start_sim(
        Profile {
            latency_ms: 20,
            capacity: 4,
            ..Profile::default()
        },
        true,
    )
    .await;
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    // The scenario repository: a work tree whose commits the server serves as they are made.
    let root = dir.path().join("served");
    let upstream = root.join("lvt-scenarios");
    std::fs::create_dir_all(upstream.join("scenarios")).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    let v1 = SCENARIO.replace("ORCH", &orch.uri);
    let first = commit_scenario(&upstream, &v1, "first");
    let server = GitServer::start(&root);
    let url = format!("{}/lvt-scenarios", server.url);
    let config = write_config(
        dir.path(),
        &collector.url,
        &url,
        "admin_listen = \"127.0.0.1:0\"\nheartbeat_s = 1\n",
        "poll_s = 1\n",
    );
    let log = dir.path().join("agent.log");
    let agent = spawn_agent(&config, &log);
    let admin = admin_address(&log).await;

    // The first commit is adopted; its records say where the scenario came from.
    let record = wait_for(60, "a record of the first commit", &log, || async {
        results(&collector.url)
            .await
            .into_iter()
            .map(|item| item["record"].clone())
            .find(|r| r["scenario"]["git_commit"] == first.as_str())
    })
    .await;
    let scenario = &record["scenario"];
    assert_eq!(scenario["git_repository"], url.as_str(), "{record}");
    assert_eq!(
        scenario["git_path"], "scenarios/agent-quick.toml",
        "{record}"
    );
    assert_eq!(scenario["git_dirty"], false, "{record}");
    assert_eq!(scenario["version"], "1.0.0", "{record}");
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r == "GET /lvt-scenarios/info/refs?service=git-upload-pack"),
        "the agent spoke git's smart HTTP protocol: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r == "POST /lvt-scenarios/git-upload-pack"),
        "{requests:?}"
    );

    // A change without a version bump is refused, located, and the first commit stays.
    let unbumped = commit_scenario(
        &upstream,
        &v1.replace("duration_s = 1", "duration_s = 2"),
        "longer, same version",
    );
    let status = wait_for(30, "the unbumped commit refused", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        (status["refused_commit"] == unbumped.as_str()).then_some(status)
    })
    .await;
    assert_eq!(status["scenario_commit"], first.as_str(), "{status}");
    let reasons = status["refused_reasons"].to_string();
    assert!(
        reasons.contains("scenarios/agent-quick.toml:2:11") && reasons.contains("did not go up"),
        "{status}"
    );
    let metrics = get_text(format!("{admin}/metrics")).await;
    assert!(
        metrics.contains("lvt_agent_scenario_commit_refused 1"),
        "{metrics}"
    );
    // The collector's fleet view shows it from the agent's signed heartbeat.
    let fleet = fleet_status(&collector.url, "agent-eu-1", "degraded", &log).await;
    assert_eq!(
        fleet["heartbeat"]["refused_commit"],
        unbumped.as_str(),
        "{fleet}"
    );
    assert!(
        fleet["status_reasons"].to_string().contains("was refused"),
        "{fleet}"
    );

    // An invalid file is refused the same way.
    let invalid = commit_scenario(
        &upstream,
        &v1.replace("duration_s = 1", "duration_s = \"one\""),
        "broken",
    );
    wait_for(30, "the invalid commit refused", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        (status["refused_commit"] == invalid.as_str()
            && status["refused_reasons"]
                .to_string()
                .contains("scenarios/agent-quick.toml:"))
        .then_some(())
    })
    .await;

    // A bumped version is adopted; new records carry the new commit and version.
    let bumped = commit_scenario(
        &upstream,
        &v1.replace("version = \"1.0.0\"", "version = \"1.1.0\""),
        "1.1.0",
    );
    let record = wait_for(60, "a record of the bumped commit", &log, || async {
        results(&collector.url)
            .await
            .into_iter()
            .map(|item| item["record"].clone())
            .find(|r| r["scenario"]["git_commit"] == bumped.as_str())
    })
    .await;
    assert_eq!(record["scenario"]["version"], "1.1.0", "{record}");
    let status = get_json(format!("{admin}/status")).await;
    assert_eq!(status["scenario_commit"], bumped.as_str(), "{status}");
    assert!(status["refused_commit"].is_null(), "{status}");
    let fleet = fleet_status(&collector.url, "agent-eu-1", "ok", &log).await;
    assert_eq!(
        fleet["heartbeat"]["scenario_commit"],
        bumped.as_str(),
        "{fleet}"
    );
    assert_eq!(fleet["heartbeat"]["region"], "eu-west", "{fleet}");

    // A history rewrite of the ref is refused (allow_force_push is off).
    git(&upstream, &["reset", "-q", "--hard", &first]);
    let rewritten = commit_scenario(
        &upstream,
        &v1.replace("version = \"1.0.0\"", "version = \"1.2.0\""),
        "rewritten",
    );
    let status = wait_for(30, "the rewrite refused", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        (status["refused_commit"] == rewritten.as_str()).then_some(status)
    })
    .await;
    assert!(
        status["refused_reasons"]
            .to_string()
            .contains("history rewrite"),
        "{status}"
    );
    assert_eq!(status["scenario_commit"], bumped.as_str(), "{status}");

    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(
        exit.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state").join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["adopted_commit"], bumped.as_str(), "{state}");
    // Stopped and silent for three heartbeat intervals: stale in the fleet view.
    let fleet = fleet_status(&collector.url, "agent-eu-1", "stale", &log).await;
    assert!(
        fleet["status_reasons"]
            .to_string()
            .contains("no heartbeat for"),
        "{fleet}"
    );

    // Restarted with the server gone, the agent goes on with the commit it adopted and says
    // the pull fails.
    drop(server);
    let log = dir.path().join("agent-offline.log");
    let agent = spawn_agent(&config, &log);
    let admin = admin_address(&log).await;
    let status = wait_for(30, "the offline agent's status", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        status["last_pull_error"].is_string().then_some(status)
    })
    .await;
    assert_eq!(status["scenario_commit"], bumped.as_str(), "{status}");
    let fleet = fleet_status(&collector.url, "agent-eu-1", "degraded", &log).await;
    assert!(
        fleet["status_reasons"]
            .to_string()
            .contains("last scenario pull failed"),
        "{fleet}"
    );
    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    stop_sim.cancel();
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_pulls_a_file_url_repository() {
    let dir = tempfile::tempdir().unwrap();
    let (orch, stop_sim) = start_sim(Profile::default(), true).await;
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-2").await;
    let upstream = dir.path().join("upstream");
    std::fs::create_dir_all(upstream.join("scenarios")).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    let commit = commit_scenario(&upstream, &SCENARIO.replace("ORCH", &orch.uri), "first");
    let url = format!("file://{}", upstream.display());
    let config = write_config(dir.path(), &collector.url, &url, "", "");
    let log = dir.path().join("agent.log");
    let agent = spawn_agent(&config, &log);
    let record = wait_for(60, "a record from the file:// repository", &log, || async {
        results(&collector.url)
            .await
            .into_iter()
            .map(|item| item["record"].clone())
            .next()
    })
    .await;
    assert_eq!(
        record["scenario"]["git_commit"],
        commit.as_str(),
        "{record}"
    );
    assert_eq!(
        record["scenario"]["git_repository"],
        url.as_str(),
        "{record}"
    );
    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    stop_sim.cancel();
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_stops_new_runs_until_it_drains_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (orch, stop_sim) = start_sim(
        Profile {
            latency_ms: 20,
            capacity: 4,
            ..Profile::default()
        },
        true,
    )
    .await;
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let address = collector.url.trim_start_matches("http://").to_owned();
    // A one-byte cap: any spooled batch fills the spool.
    let config = write_agent(
        dir.path(),
        &orch.uri,
        &collector.url,
        "admin_listen = \"127.0.0.1:0\"\nspool_max_bytes = 1\nspool_drain_s = 1\n",
    );
    let log = dir.path().join("agent.log");
    let agent = spawn_agent(&config, &log);
    let admin = admin_address(&log).await;
    wait_for(60, "a first stored record", &log, || async {
        (!results(&collector.url).await.is_empty()).then_some(())
    })
    .await;

    // The collector goes away: the next session's record is spooled, the spool is over its
    // cap, and scheduled runs stop starting.
    collector.stop().await;
    let status = wait_for(60, "runs skipped for a full spool", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        (status["runs_skipped"]["spool_full"].as_u64().unwrap_or(0) >= 2).then_some(status)
    })
    .await;
    assert_eq!(status["spool"]["full"], true, "{status}");
    assert!(
        status["spool"]["batches"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    let started = status["runs_started"].as_u64().unwrap();
    let metrics = get_text(format!("{admin}/metrics")).await;
    assert!(metrics.contains("lvt_agent_spool_full 1"), "{metrics}");
    assert!(
        metrics.contains("lvt_agent_runs_skipped_total{reason=\"spool_full\"}"),
        "{metrics}"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("The spool is full: no new run starts until it drains."),
        "{text}"
    );

    // The collector is back on the same address and store: the drain empties the spool and
    // runs start again.
    let collector = AgentCollector::start_at(LVT, dir.path(), "agent-eu-1", &address).await;
    wait_for(60, "the spool drained and runs resumed", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        (status["spool"]["batches"] == 0 && status["runs_started"].as_u64().unwrap_or(0) > started)
            .then_some(())
    })
    .await;

    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(exit.code(), Some(0), "{text}");
    // Every session the agent finished is stored, once.
    let sessions: usize = text
        .lines()
        .find_map(|line| {
            let rest = line.split(" run(s) and ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no summary line:\n{text}"));
    let stored = results(&collector.url).await;
    let mut ids: Vec<&str> = stored
        .iter()
        .filter_map(|item| item["record"]["session_id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), stored.len(), "no record stored twice");
    assert_eq!(
        stored.len(),
        sessions,
        "every finished session stored:\n{text}"
    );
    stop_sim.cancel();
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (orch, stop_sim) = start_sim(Profile::default(), true).await;
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let config = write_agent(
        dir.path(),
        &orch.uri,
        &collector.url,
        "admin_listen = \"127.0.0.1:0\"\n",
    );
    let good = std::fs::read_to_string(&config).unwrap();
    let log = dir.path().join("agent.log");
    let mut agent = spawn_agent(&config, &log);
    let admin = admin_address(&log).await;
    wait_for(60, "a first record", &log, || async {
        (!results(&collector.url).await.is_empty()).then_some(())
    })
    .await;

    // A file with a typo is refused at its place; the agent goes on with what it runs.
    let reloaded = |status: &Value, fragment: &str| {
        status["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains(fragment))
    };
    std::fs::write(&config, good.replace("region = ", "regoin = ")).unwrap();
    signal(&agent, "HUP");
    wait_for(20, "the typo refused", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        reloaded(&status, "agent.toml:1:1").then_some(())
    })
    .await;
    // What needs a restart is refused too.
    std::fs::write(&config, good.replace(&collector.url, "http://127.0.0.1:9")).unwrap();
    signal(&agent, "HUP");
    wait_for(20, "a new collector refused", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        reloaded(&status, "need a restart").then_some(())
    })
    .await;
    assert!(agent.try_wait().unwrap().is_none(), "the agent still runs");

    // A new region is taken: the next records carry it.
    std::fs::write(&config, good.replace("\"eu-west\"", "\"us-east\"")).unwrap();
    signal(&agent, "HUP");
    let status = wait_for(20, "the reload taken", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        (status["region"] == "us-east").then_some(status)
    })
    .await;
    assert!(status["last_reload_error"].is_null(), "{status}");
    assert!(status["last_reload_unix_ms"].is_i64(), "{status}");
    wait_for(60, "a record from us-east", &log, || async {
        results(&collector.url)
            .await
            .into_iter()
            .any(|item| item["record"]["region"] == "us-east")
            .then_some(())
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("Reload refused"), "{text}");
    assert!(text.contains("Configuration reloaded"), "{text}");

    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    stop_sim.cancel();
    collector.stop().await;
}

/// The systemd unit docs/agent.md ships passes `systemd-analyze verify` (with the unit's
/// binary path pointed at the built `lvt`, which verify requires to exist).
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lvt-agent.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/lvt agent --config /etc/lvt/agent.toml"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lvt-agent.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/lvt", LVT)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package; ci/setup installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("lvt-agent.service"),
        "no warning about the unit: {stderr}"
    );
}

/// Starts the agent of `config` again (log `dir/agent-again.log`), waits until it skips a
/// session for budget, stops it with SIGTERM (exit 0) and returns its log.
async fn restarted_until_skipped_for_budget(config: &Path, dir: &Path) -> String {
    let log = dir.join("agent-again.log");
    let agent = spawn_agent(config, &log);
    let admin = admin_address(&log).await;
    wait_for(
        30,
        "a session skipped for budget after the restart",
        &log,
        || async {
            let status = get_json(format!("{admin}/status")).await;
            (status["sessions_skipped"]["budget"].as_u64().unwrap_or(0) >= 1).then_some(())
        },
    )
    .await;
    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_runs_only_the_sessions_that_fit_the_day_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (orch, stop_sim) = start_sim(Profile::default(), true).await;
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    // Sessions of 1 s, two session-seconds a day on the orchestrator: two runs fit.
    let config = write_agent(
        dir.path(),
        &orch.uri,
        &collector.url,
        "admin_listen = \"127.0.0.1:0\"\n[budget]\nmax_session_seconds_per_orchestrator_per_day = 2\nmax_concurrent_sessions = 4\n",
    );
    let log = dir.path().join("agent.log");
    let agent = spawn_agent(&config, &log);
    let admin = admin_address(&log).await;
    let skipped = |status: &Value| status["sessions_skipped"]["budget"].as_u64().unwrap_or(0);
    let status = wait_for(60, "a session skipped for budget", &log, || async {
        let status = get_json(format!("{admin}/status")).await;
        (skipped(&status) >= 1).then_some(status)
    })
    .await;
    let used: u64 = status["budget_session_seconds_today"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    assert_eq!(used, 2, "{status}");
    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    assert_eq!(results(&collector.url).await.len(), 2, "only what fit ran");
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state").join("state.json")).unwrap(),
    )
    .unwrap();
    let counters = state["budget"]["session_seconds"].as_object().unwrap();
    assert_eq!(
        counters.values().filter_map(Value::as_u64).sum::<u64>(),
        2,
        "{state}"
    );

    // A restart the same day keeps the counters: nothing more runs.
    let text = restarted_until_skipped_for_budget(&config, dir.path()).await;
    assert_eq!(results(&collector.url).await.len(), 2);
    assert!(text.contains("Session skipped for budget."), "{text}");
    stop_sim.cancel();
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_signer_pays_and_the_day_stops_at_the_payment_budget_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Tickets of 2e12 wei that win half the time: each is worth 1e12 wei, and a 1 s session
    // pays once (the job start; the 5 s payment loop never comes round).
    let mut cfg = OrchestratorConfig::new("paid", Profile::default());
    cfg.plaintext = true;
    cfg.status_interval = Duration::from_secs(1);
    cfg.ticket = TicketTerms::new(2_000_000_000_000, 0.5);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (orch, stop_sim) = start_sim_config(cfg, listener).await;
    let signer = StandInSigner::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .expect("stand-in signer");
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    // Two sessions' worth a day.
    let config = write_agent(
        dir.path(),
        &orch.uri,
        &collector.url,
        &format!(
            "admin_listen = \"127.0.0.1:0\"\nremote_signer = \"{}\"\n[budget]\nmax_payment_wei_per_day = 2000000000000\n",
            signer.url()
        ),
    );
    let log = dir.path().join("agent.log");
    let agent = spawn_agent(&config, &log);
    let admin = admin_address(&log).await;
    let skipped = |status: &Value| status["sessions_skipped"]["budget"].as_u64().unwrap_or(0);
    let status = wait_for(
        60,
        "a session skipped for the payment budget",
        &log,
        || async {
            let status = get_json(format!("{admin}/status")).await;
            (skipped(&status) >= 1).then_some(status)
        },
    )
    .await;
    assert_eq!(
        status["budget_payment_wei_today"], "2000000000000",
        "{status}"
    );
    let metrics = get_text(format!("{admin}/metrics")).await;
    assert!(
        metrics.contains("lvt_agent_budget_payment_wei_today 2000000000000"),
        "{metrics}"
    );
    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    let records = results(&collector.url).await;
    assert_eq!(records.len(), 2, "only what the day could pay for ran");
    for stored in &records {
        // Whatever the outcome of a 1 s session on a loaded machine, its start was paid.
        let record = &stored["record"];
        assert_eq!(
            record["payment"],
            serde_json::json!({ "tickets": 1, "expected_value_wei": "1000000000000" }),
            "{record}"
        );
    }
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state").join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["budget"]["payment_wei"], 2_000_000_000_000u64,
        "{state}"
    );

    // A restart the same day keeps the day's payments: nothing more runs.
    let text = restarted_until_skipped_for_budget(&config, dir.path()).await;
    assert_eq!(results(&collector.url).await.len(), 2);
    assert!(
        text.contains("max_payment_wei_per_day = 2000000000000"),
        "the log says why: {text}"
    );
    // One signer payment per session, none for the refused ones.
    let payments = signer
        .calls()
        .iter()
        .filter(|c| c.path == "/generate-live-payment")
        .count();
    assert_eq!(payments, 2);
    stop_sim.cancel();
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_off_by_kill_9_is_reported_as_interrupted_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (orch, stop_sim) = start_sim(Profile::default(), true).await;
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let config = write_agent(
        dir.path(),
        &orch.uri,
        &collector.url,
        "admin_listen = \"127.0.0.1:0\"\n",
    );
    // A 30 s session: the run is surely in flight when the agent is killed.
    std::fs::write(
        dir.path().join("repo/scenarios/agent-quick.toml"),
        SCENARIO
            .replace("ORCH", &orch.uri)
            .replace("duration_s = 1", "duration_s = 30"),
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let mut agent = spawn_agent(&config, &log);
    wait_for(30, "a run started", &log, || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Session started.")
            .then_some(())
    })
    .await;
    agent.kill().unwrap();
    agent.wait().unwrap();
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state").join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["runs_in_flight"]
            .as_object()
            .map_or(0, |runs| runs.len()),
        1,
        "{state}"
    );

    // Restarted (with a schedule that does not fire now): the cut-off run is reported as
    // interrupted, and nothing about it is stored as a failure.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("*/2 * * * * *", "0 0 1 1 *");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("agent-again.log");
    let agent = spawn_agent(&config, &log);
    let admin = admin_address(&log).await;
    let status = get_json(format!("{admin}/status")).await;
    assert_eq!(status["runs_interrupted"], 1, "{status}");
    let metrics = get_text(format!("{admin}/metrics")).await;
    assert!(
        metrics.contains("lvt_agent_runs_interrupted 1"),
        "{metrics}"
    );
    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("A run was cut off by a crash or kill -9"),
        "{text}"
    );
    assert!(
        results(&collector.url)
            .await
            .iter()
            .all(|item| item["record"]["outcome"] != "failed"),
        "no failure recorded for the cut-off run"
    );
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state").join("state.json")).unwrap(),
    )
    .unwrap();
    assert!(
        state["runs_in_flight"]
            .as_object()
            .is_none_or(|runs| runs.is_empty()),
        "{state}"
    );
    stop_sim.cancel();
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_trusted_on_first_use_and_a_changed_one_is_flagged_then_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A TLS orchestrator: its records carry its certificate's fingerprint.
    let (orch, stop_sim) = start_sim(Profile::default(), false).await;
    let first = orch.cert_fingerprint.clone().expect("a TLS simulator");
    let collector = AgentCollector::start(LVT, dir.path(), "agent-eu-1").await;
    let config = write_agent(dir.path(), &orch.uri, &collector.url, "");
    let log = dir.path().join("agent.log");
    let agent = spawn_agent(&config, &log);
    let trust = |item: &Value| item["record"]["orchestrator"]["cert_trust"].clone();
    wait_for(40, "two records", &log, || async {
        (results(&collector.url).await.len() >= 2).then_some(())
    })
    .await;
    let mut seen: Vec<Value> = results(&collector.url).await;
    seen.sort_by_key(|item| item["record"]["started_at_unix_ms"].as_i64());
    assert_eq!(trust(&seen[0]), serde_json::json!({"status": "first_use"}));
    assert_eq!(trust(&seen[1]), serde_json::json!({"status": "matches"}));
    assert_eq!(
        seen[0]["record"]["orchestrator"]["cert_sha256"],
        first.as_str()
    );

    // The orchestrator comes back on the same address with another certificate.
    stop_sim.cancel();
    let address = orch.uri.trim_start_matches("https://").to_owned();
    let listener = wait_for(20, "the simulator's port free again", &log, || async {
        tokio::net::TcpListener::bind(&address).await.ok()
    })
    .await;
    let (other, stop_other) = common::start_sim_on(Profile::default(), false, listener).await;
    let second = other.cert_fingerprint.clone().expect("a TLS simulator");
    assert_ne!(first, second);
    let changed = wait_for(
        40,
        "a record with the changed certificate",
        &log,
        || async {
            results(&collector.url)
                .await
                .into_iter()
                .find(|item| item["record"]["orchestrator"]["cert_sha256"] == second.as_str())
        },
    )
    .await;
    assert_eq!(
        trust(&changed),
        serde_json::json!({"status": "changed", "known_sha256": first}),
    );
    assert_ne!(
        changed["record"]["failure"]["class"], "auth",
        "only flagged, not refused"
    );

    // With refuse_changed_certificates (a reload takes it) the changed orchestrator is refused
    // before its job starts: a failed start of class auth naming both fingerprints.
    write_agent(
        dir.path(),
        &orch.uri,
        &collector.url,
        "refuse_changed_certificates = true\n",
    );
    signal(&agent, "HUP");
    let refused = wait_for(
        40,
        "a session refused for its certificate",
        &log,
        || async {
            results(&collector.url)
                .await
                .into_iter()
                .find(|item| item["record"]["failure"]["class"] == "auth")
        },
    )
    .await;
    let record = &refused["record"];
    assert_eq!(record["outcome"], "failed", "{record}");
    let detail = record["failure"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "presented TLS certificate sha256 {second}, not the {first} trusted for it"
        )),
        "{detail}"
    );
    assert_eq!(
        record["metrics"]["job_start_ms"],
        Value::Null,
        "no job started"
    );
    assert_eq!(
        trust(&refused),
        serde_json::json!({"status": "changed", "known_sha256": first}),
    );
    let exit = tokio::task::spawn_blocking(move || sigterm(agent))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("another TLS certificate"), "{text}");
    // state.json keeps the first certificate, across restarts.
    let state: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state").join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["fingerprints"][&orch.uri], first.as_str(), "{state}");
    stop_other.cancel();
    collector.stop().await;
}
