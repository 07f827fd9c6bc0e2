//! Helpers of the tests that run `lvt agent` processes: spawning and signalling them, reading
//! their admin endpoints and the collector's API, committing scenarios.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::git_server::{GitServer, git};

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

pub async fn results(collector: &str) -> Vec<Value> {
    let page: Value = reqwest::get(format!("{collector}/v1/results?limit=100"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["results"].as_array().cloned().unwrap_or_default()
}

/// Polls `check` every 100 ms until it answers `Some`, failing after `timeout_s` with `what`
/// and the agent's log.
pub async fn wait_for<T, F, Fut>(timeout_s: u64, what: &str, log: &Path, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {timeout_s} s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The admin address an agent printed in its log.
pub async fn admin_address(log: &Path) -> String {
    wait_for(20, "an admin address in the log", log, || async {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix("lvt: agent admin on "))
            .and_then(|rest| rest.split(' ').next())
            .map(str::to_owned)
    })
    .await
}

/// Waits until the collector's `/v1/agents` lists `agent` with `status`; returns its entry.
pub async fn fleet_status(collector: &str, agent: &str, status: &str, log: &Path) -> Value {
    wait_for(
        30,
        &format!("{agent} {status} in /v1/agents"),
        log,
        || async {
            let listed = get_json(format!("{collector}/v1/agents")).await;
            listed["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["id"] == agent && a["status"] == status)
                .cloned()
        },
    )
    .await
}

pub async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The body of `GET url` as text (an agent's `/metrics`).
#[allow(dead_code)] // used by some of the test binaries that include this module
pub async fn get_text(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

pub fn spawn_agent(config: &Path, log: &Path) -> std::process::Child {
    super::dies_with_test(&mut Command::new(LVT))
        .args(["agent", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

pub fn sigterm(agent: std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut agent = agent;
    agent.wait().unwrap()
}

/// Commits `text` as `scenarios/agent-quick.toml` in the work tree `upstream` and returns
/// the commit id.
pub fn commit_scenario(upstream: &Path, text: &str, message: &str) -> String {
    commit_file(upstream, "scenarios/agent-quick.toml", text, message)
}

/// Commits `text` as `file` (relative to the work tree `upstream`) and returns the commit id.
pub fn commit_file(upstream: &Path, file: &str, text: &str, message: &str) -> String {
    std::fs::write(upstream.join(file), text).unwrap();
    git(upstream, &["add", "-A"]);
    git(upstream, &["commit", "-q", "-m", message]);
    git(upstream, &["rev-parse", "HEAD"])
}

pub fn signal(agent: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The `fleet` scenario at `version`: one 1 s session per orchestrator of `orchestrators`.
pub fn fleet_scenario(version: &str, orchestrators: &[String]) -> String {
    let uris: Vec<String> = orchestrators.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"id = "fleet"
version = "{version}"
description = "one short session per orchestrator, from every region"
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "calm-lake"
complexity = "low"
params = {{ prompt = "a calm lake at dawn" }}

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
uris = [{}]

[load]
executor = "closed"
sessions_per_target = 1
concurrency = 2
"#,
        uris.join(", ")
    )
}

/// Every stored result, all pages.
pub async fn all_results(collector: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{collector}/v1/results?limit=1000");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = get_json(url).await;
        items.extend(page["results"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Writes a key pair `dir/agent-{region}.key` and `.pub` for each region and returns the
/// collector settings' `[[agents]]` tables naming them (`id = "agent-{region}"`).
pub fn agent_keys(dir: &Path, regions: &[&str]) -> String {
    let mut settings = String::new();
    for region in regions {
        let (key, _) =
            lvt_schema::sign::write_keypair(&dir.join(format!("agent-{region}"))).unwrap();
        let public = lvt_schema::sign::read_signing_key(&key)
            .unwrap()
            .verifying_key();
        settings.push_str(&format!(
            "[[agents]]\nid = \"agent-{region}\"\nregion = \"{region}\"\npublic_key = \"{}\"\n",
            lvt_schema::sign::public_key_line(&public).trim()
        ));
    }
    settings
}

/// A scenario repository `lvt-scenarios` with one commit, `scenarios/fleet.toml` (the `fleet`
/// scenario 1.0.0 against `orchestrators`), served over smart HTTP from `dir/served`.
pub struct FleetRepository {
    pub server: GitServer,
    /// The working copy to commit into.
    pub upstream: std::path::PathBuf,
    /// The URL agents clone.
    pub url: String,
}

pub fn serve_fleet_repository(dir: &Path, orchestrators: &[String]) -> FleetRepository {
    let root = dir.join("served");
    let upstream = root.join("lvt-scenarios");
    std::fs::create_dir_all(upstream.join("scenarios")).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    std::fs::write(
        upstream.join("scenarios/fleet.toml"),
        fleet_scenario("1.0.0", orchestrators),
    )
    .unwrap();
    git(&upstream, &["add", "-A"]);
    git(&upstream, &["commit", "-q", "-m", "fleet 1.0.0"]);
    let server = GitServer::start(&root);
    let url = format!("{}/lvt-scenarios", server.url);
    FleetRepository {
        server,
        upstream,
        url,
    }
}

/// Writes `dir/agent-{region}.toml` for a fleet agent (key `dir/agent-{region}.key`, state
/// `dir/state-{region}`, heartbeats every second, the `fleet` schedule every 3 s from
/// `repository`) and returns its path; `extra` goes after the top-level keys (settings, then
/// any tables such as `[kafka]`).
pub fn write_fleet_agent_config(
    dir: &Path,
    region: &str,
    collector: &str,
    repository: &str,
    extra: &str,
) -> std::path::PathBuf {
    let config = dir.join(format!("agent-{region}.toml"));
    std::fs::write(
        &config,
        format!(
            "region = \"{region}\"\nkey = \"{}\"\ncollector = \"{collector}\"\nstate_dir = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\nheartbeat_s = 1\nshutdown_grace_s = 20\n{extra}\n[scenarios]\ngit = \"{repository}\"\npoll_s = 1\n\n[[schedule]]\nscenario = \"fleet\"\ncron = \"*/3 * * * * *\"\n",
            dir.join(format!("agent-{region}.key")).display(),
            dir.join(format!("state-{region}")).display(),
        ),
    )
    .unwrap();
    config
}

/// Every stored result's session id, asserting that none is stored twice; gives how many.
pub async fn stored_once(collector: &str) -> usize {
    let stored = all_results(collector).await;
    let mut ids: Vec<&str> = stored
        .iter()
        .filter_map(|item| item["record"]["session_id"].as_str())
        .collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "no record stored twice");
    total
}
