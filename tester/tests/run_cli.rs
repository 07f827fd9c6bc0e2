//! `lvt run` and `lvt validate` as a user runs them: scenarios written into a temporary
//! directory, simulated orchestrators in this process, the binary's exit codes, output files
//! and messages. Sessions last 2-3 s of real time, because what is measured is real time; the
//! tests run concurrently.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::start_sim;
use lvt_schema::Outcome;
use lvt_sim::Profile;
use lvt_tester::probe;
use lvt_tester::run::executor::{RunOptions, execute};
use lvt_tester::run::progress::ProgressMode;
use lvt_tester::run::record::{StartKind, StopReason};
use lvt_tester::scenario::{identity, validate};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

async fn lvt(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(LVT).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sim_profile(f: impl FnOnce(&mut Profile)) -> Profile {
    let mut p = Profile {
        latency_ms: 20,
        capacity: 4,
        seed: 5,
        ..Profile::default()
    };
    f(&mut p);
    p
}

/// The common part of every test scenario: a small input so encoding is quick, two prompts.
fn scenario_head(id: &str, duration_s: u32) -> String {
    format!(
        r#"id = "{id}"
version = "1.2.0"
description = "lvt run integration test"
tags = ["test"]
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "calm-lake"
complexity = "low"
params = {{ prompt = "a calm lake at dawn" }}

[[prompts]]
id = "neon-city"
complexity = "high"
params = {{ prompt = "a neon city in the rain", num_inference_steps = 4 }}

[input]
width = 256
height = 256
fps = 15
segment_ms = 1000
bitrate_kbps = 300

[session]
duration_s = {duration_s}
"#
    )
}

fn explicit(uri: &str) -> String {
    format!("\n[targets]\nsource = \"explicit\"\nuris = [\"{uri}\"]\n")
}

/// Writes `toml` as `name` in a fresh temporary directory.
fn write_scenario(name: &str, toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, toml).unwrap();
    (dir, path)
}

fn run_args(scenario: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        scenario.display().to_string(),
        "--out".to_string(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_run_against_a_good_simulator_passes() {
    let (orch, stop) = start_sim(sim_profile(|_| {}), true).await;
    let toml = format!(
        "{}params_updates = {{ at_s = [1, 2] }}\n{}\n[load]\nexecutor = \"closed\"\n\
         sessions_per_target = 1\nconcurrency = 2\nseed = 3\n\n\
         [[thresholds]]\nexpr = \"failure_rate < 0.05\"\n\n\
         [[thresholds]]\nexpr = \"e2e_latency_ms.p50 < 500\"\nwhere = {{ complexity = \"high\" }}\n",
        scenario_head("run-good", 4),
        explicit(&orch.uri)
    );
    let (dir, path) = write_scenario("good.toml", &toml);
    let out_dir = dir.path().join("out");
    let out = lvt(run_args(&path, &out_dir, &[])).await;
    stop.cancel();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    let run = read_json(&out_dir.join("run.json"));
    assert_eq!(run["scenario"]["id"], "run-good");
    assert_eq!(run["scenario"]["version"], "1.2.0");
    assert_eq!(run["stop"]["reason"], "completed");
    assert_eq!(run["targets"], serde_json::json!([orch.uri]));
    let sessions = run["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let mut prompts: Vec<&str> = sessions
        .iter()
        .map(|s| s["prompt_id"].as_str().unwrap())
        .collect();
    prompts.sort_unstable();
    assert_eq!(prompts, ["calm-lake", "neon-city"]);
    let mut starts: Vec<&str> = sessions
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    starts.sort_unstable();
    // Both start together: the first is the target's first session (cold), the second joins a
    // running one (warm).
    assert_eq!(starts, ["cold", "warm"]);
    for s in sessions {
        assert_eq!(s["target"], orch.uri.as_str());
        assert_eq!(s["report"]["outcome"], "passed", "{s}");
        assert_eq!(s["scheduled_at_ms"], 0.0);
        // The simulator claims an address; with no chain to check it, it stays a claim.
        let orchestrator = &s["report"]["orchestrator"];
        assert_eq!(
            orchestrator["address"],
            orch.eth_address.to_ascii_lowercase().as_str()
        );
        assert_eq!(orchestrator["address_check"]["status"], "unverified", "{s}");
        let complexity = if s["prompt_id"] == "calm-lake" {
            "low"
        } else {
            "high"
        };
        assert_eq!(s["complexity"], complexity);
        assert_eq!(s["report"]["prompt"]["complexity"], complexity);
        assert!(s["queue_delay_ms"].as_f64().unwrap() >= 0.0);
        let startup = s["report"]["metrics"]["startup_ms"].as_f64().unwrap();
        let from_schedule = s["startup_from_schedule_ms"].as_f64().unwrap();
        assert!(from_schedule >= startup, "{from_schedule} < {startup}");
        // The params update latency is not measured (docs/metrics.md): the field stays null.
        assert!(
            s["report"]["metrics"]["params_update_latency_ms"].is_null(),
            "{s}"
        );
        let prompt = if complexity == "low" {
            "a calm lake at dawn"
        } else {
            "a neon city in the rain"
        };
        let mut params = serde_json::json!({ "prompt": prompt });
        if complexity == "high" {
            params["num_inference_steps"] = 4.into();
        }
        let twice = probe::updated_params(&probe::updated_params(&params));
        assert_eq!(
            s["report"]["runner"]["last_params_hash"],
            probe::params_hash(&twice).as_str(),
            "{s}"
        );
    }
    assert_eq!(run["peak_in_flight"], 2);
    assert_eq!(run["verdicts"][0]["status"], "pass");
    assert_eq!(run["verdicts"][1]["status"], "pass");
    assert!(out_dir.join("junit.xml").is_file());
    assert!(out_dir.join("report.html").is_file());
    // Progress as log lines (stderr is not a terminal), the tables on stdout.
    assert!(stderr.contains("session 0 target="), "{stderr}");
    assert!(stderr.contains("outcome=passed"), "{stderr}");
    assert!(stderr.contains("run.json"), "{stderr}");
    assert!(stdout.contains("run-good@1.2.0"), "{stdout}");
    assert!(stdout.contains("e2e_latency_ms.p50 < 500"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_slow_simulator_fails_the_threshold_with_99() {
    let (orch, stop) = start_sim(sim_profile(|p| p.latency_ms = 800), true).await;
    let toml = format!(
        "{}{}\n[load]\nexecutor = \"closed\"\nsessions_per_target = 1\nconcurrency = 2\n\n\
         [[thresholds]]\nexpr = \"e2e_latency_ms.p50 < 500\"\n\n\
         [[thresholds]]\nexpr = \"failure_rate < 0.05\"\n",
        scenario_head("run-slow", 2),
        explicit(&orch.uri)
    );
    let (dir, path) = write_scenario("slow.toml", &toml);
    let out_dir = dir.path().join("out");
    let out = lvt(run_args(&path, &out_dir, &[])).await;
    stop.cancel();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(99), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("threshold e2e_latency_ms.p50 < 500 FAIL"),
        "{stderr}"
    );
    assert!(stdout.contains("FAIL"), "{stdout}");
    let run = read_json(&out_dir.join("run.json"));
    assert_eq!(run["verdicts"][0]["status"], "fail");
    assert!(run["verdicts"][0]["observed"].as_f64().unwrap() >= 800.0);
    assert_eq!(run["verdicts"][1]["status"], "pass");
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_run() {
    let (orch, stop) = start_sim(sim_profile(|p| p.latency_ms = 300), true).await;
    let toml = format!(
        "{}{}\n[load]\nexecutor = \"closed\"\nsessions_per_target = 3\nconcurrency = 1\n\n\
         [[thresholds]]\nexpr = \"e2e_latency_ms.p50 < 100\"\nabort_on_fail = true\nmin_sessions = 1\n",
        scenario_head("run-abort", 2),
        explicit(&orch.uri)
    );
    let (dir, path) = write_scenario("abort.toml", &toml);
    let out_dir = dir.path().join("out");
    let out = lvt(run_args(&path, &out_dir, &["--json"])).await;
    stop.cancel();
    assert_eq!(out.status.code(), Some(99), "{}", text(&out.stderr));
    // --json prints run.json itself to stdout.
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["stop"]["reason"], "aborted");
    assert_eq!(run["stop"]["threshold"], "e2e_latency_ms.p50 < 100");
    assert_eq!(run["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(run, read_json(&out_dir.join("run.json")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_load_records_queue_delays_and_drops() {
    let (orch, stop) = start_sim(sim_profile(|_| {}), true).await;
    // An arrival every 500 ms for 3 s, at most 2 in flight, sessions of 2 s: the third and
    // fourth arrivals find the run full.
    let toml = format!(
        "{}{}\n[load]\nexecutor = \"open\"\nstart_rate_per_min = 120.0\nmax_in_flight = 2\n\
         seed = 1\nstages = [{{ duration_s = 3, target_rate_per_min = 120.0 }}]\n",
        scenario_head("run-open", 2),
        explicit(&orch.uri)
    );
    let (dir, path) = write_scenario("open.toml", &toml);
    let out_dir = dir.path().join("out");
    let out = lvt(run_args(&path, &out_dir, &[])).await;
    stop.cancel();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let run = read_json(&out_dir.join("run.json"));
    let sessions = run["sessions"].as_array().unwrap();
    let dropped = run["dropped_arrivals"].as_u64().unwrap();
    assert_eq!(sessions.len() as u64 + dropped, 6, "{run}");
    assert!(dropped >= 2, "{dropped} dropped");
    assert_eq!(run["peak_in_flight"], 2);
    assert_eq!(sessions[0]["scheduled_at_ms"], 500.0);
    assert_eq!(sessions[1]["scheduled_at_ms"], 1000.0);
    for s in sessions {
        let delay = s["queue_delay_ms"].as_f64().unwrap();
        assert!((0.0..250.0).contains(&delay), "queue delay {delay}");
        let startup = s["report"]["metrics"]["startup_ms"].as_f64().unwrap();
        let from_schedule = s["startup_from_schedule_ms"].as_f64().unwrap();
        assert!((from_schedule - startup - delay).abs() < 1e-6);
    }
    assert!(stdout.contains("dropped"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_run_still_reports_and_does_not_blame_the_target() {
    // A model that takes 10 s to load: interrupted while loading, a session has no output,
    // which must not count as the orchestrator failing.
    let (orch, stop) = start_sim(sim_profile(|p| p.startup_ms = 10_000), true).await;
    let toml = format!(
        "{}{}\n[load]\nexecutor = \"closed\"\nsessions_per_target = 2\nconcurrency = 1\n\n\
         [[thresholds]]\nexpr = \"failure_rate < 0.05\"\n",
        scenario_head("run-interrupt", 8),
        explicit(&orch.uri)
    );
    let scenario = validate::load_str("interrupt.toml", &toml).unwrap();
    let ident = identity::identify(&scenario, None);
    let cancel = CancellationToken::new();
    let opts = RunOptions {
        progress: ProgressMode::Off,
        ..Default::default()
    };
    let targets = vec![orch.uri.parse().unwrap()];
    let run = execute(&scenario, ident, targets, &opts, cancel.clone());
    let interrupt = async {
        orch.wait_sessions_in_use(1).await;
        cancel.cancel();
    };
    let (report, ()) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(run, interrupt)
    })
    .await
    .expect("the run stops soon after the interrupt");
    stop.cancel();
    let report = report.unwrap();
    assert_eq!(report.stop, StopReason::Interrupted);
    assert_eq!(
        report.sessions.len(),
        1,
        "no new session after the interrupt"
    );
    let s = &report.sessions[0];
    assert_eq!(s.start, StartKind::Cold);
    assert_eq!(s.report.outcome, Outcome::UnscoredIndeterminate);
    let detail = &s.report.failure.as_ref().unwrap().detail;
    assert!(detail.starts_with("interrupted by the run"), "{detail}");
    // Nothing was scored, so the failure rate has no data: the threshold cannot be met.
    assert!(report.verdicts[0].failed());
}

#[tokio::test]
async fn malformed_scenario_exits_2_with_its_location() {
    let toml = format!(
        "{}{}\n[load]\nexecutor = \"closed\"\nsessions_per_target = 1\nconcurrency = 1\n",
        scenario_head("run-bad", 2),
        explicit("127.0.0.1:1")
    )
    .replace("model_id = \"noop\"\n", "model_id = \"noop\"\nspeed = 3\n");
    let (dir, path) = write_scenario("bad.toml", &toml);
    let out = lvt(run_args(&path, &dir.path().join("out"), &[])).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = toml.lines().position(|l| l.starts_with("speed")).unwrap() + 1;
    assert!(
        stderr.contains(&format!("{}:{line}:1: error:", path.display())),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists(), "nothing ran");

    let out = lvt(vec!["run".into(), "no-such-scenario".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("neither a file nor a shipped scenario"));

    let good = format!(
        "{}{}\n[load]\nexecutor = \"closed\"\nsessions_per_target = 1\nconcurrency = 1\n",
        scenario_head("run-bad-target", 2),
        explicit("127.0.0.1:1")
    );
    let (dir, path) = write_scenario("target.toml", &good);
    let out = lvt(run_args(
        &path,
        &dir.path().join("out"),
        &["--target", "ftp://x:1"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--target \"ftp://x:1\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_targets_run_through_selection_and_swap() {
    // The first candidate answers discovery first and crashes 1.5 s into each session; the
    // second takes over. Both sessions run under the one target label `network`.
    let (crasher, s1) = start_sim(sim_profile(|p| p.crash_after_s = Some(1.5)), true).await;
    let (good, s2) = start_sim(sim_profile(|p| p.get_orchestrator_delay_ms = 200), true).await;
    let toml = format!(
        "{}\n[targets]\nsource = \"network\"\nstrategy = \"go-livepeer\"\n\
         discovery_timeout_ms = 1500\n\
         discovery = {{ source = \"static\", orchestrators = [{{ address = \"{}\" }}, {{ address = \"{}\" }}] }}\n\n\
         [load]\nexecutor = \"closed\"\nsessions_per_target = 1\nconcurrency = 1\n",
        scenario_head("run-network", 4),
        crasher.uri,
        good.uri
    );
    let (dir, path) = write_scenario("network.toml", &toml);
    let out_dir = dir.path().join("out");
    let out = lvt(run_args(&path, &out_dir, &[])).await;
    s1.cancel();
    s2.cancel();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let run = read_json(&out_dir.join("run.json"));
    assert_eq!(run["targets"], serde_json::json!(["network"]));
    let sessions = run["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    for s in sessions {
        assert_eq!(s["target"], "network");
        let r = &s["report"];
        assert_eq!(r["mode"], "network", "{s}");
        assert_eq!(r["outcome"], "passed", "{s}");
        let swaps = r["metrics"]["swaps"].as_array().unwrap();
        assert_eq!(swaps.len(), 1, "{s}");
        assert_eq!(swaps[0]["from"], crasher.uri.as_str());
        assert_eq!(swaps[0]["to"], good.uri.as_str());
        let served: Vec<&str> = r["served_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|share| share["orchestrator"]["uri"].as_str().unwrap())
            .collect();
        assert_eq!(served, [crasher.uri.as_str(), good.uri.as_str()]);
    }
    assert!(stderr.contains("against 1 target(s): network"), "{stderr}");
}

#[tokio::test]
async fn unwritable_output_directory_cannot_proceed() {
    let toml = format!(
        "{}{}\n[load]\nexecutor = \"closed\"\nsessions_per_target = 1\nconcurrency = 1\n",
        scenario_head("run-out", 2),
        explicit("127.0.0.1:1")
    );
    let (dir, path) = write_scenario("out.toml", &toml);
    // A file where the output directory should be.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let out = lvt(run_args(&path, &blocked.join("out"), &[])).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create output directory"),
        "{stderr}"
    );
}

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[tokio::test]
async fn validate_accepts_the_shipped_scenarios_and_rejects_broken_ones() {
    let out = lvt(vec!["validate".into(), shipped_dir().display().to_string()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("scenario(s) valid"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "id = 3\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "[[[\n").unwrap();
    let out = lvt(vec!["validate".into(), dir.path().display().to_string()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a.toml:1:"), "{stderr}");
    assert!(stderr.contains("error(s) in 2 of 2 file(s)"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_smoke_runs_by_id_against_a_simulator() {
    let (orch, stop) = start_sim(sim_profile(|_| {}), true).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = lvt(vec![
        "run".into(),
        "smoke".into(),
        "--target".into(),
        orch.uri.clone(),
        "--out".into(),
        out_dir.display().to_string(),
    ])
    .await;
    stop.cancel();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run = read_json(&out_dir.join("run.json"));
    assert_eq!(run["scenario"]["id"], "smoke");
    assert_eq!(run["scenario"]["path"], Value::Null);
    assert_eq!(run["targets"], serde_json::json!([orch.uri]));
    assert!(!run["sessions"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_trusts_each_orchestrator_certificate_on_first_use() {
    // A TLS simulator; two sessions one after the other.
    let (orch, stop) = start_sim(sim_profile(|_| {}), false).await;
    let toml = format!(
        "{}{}\n[load]\nexecutor = \"closed\"\nsessions_per_target = 1\nconcurrency = 1\n",
        scenario_head("run-tofu", 1),
        explicit(&orch.uri)
    );
    let (dir, path) = write_scenario("tofu.toml", &toml);
    let out_dir = dir.path().join("out");
    // Refusing changed certificates refuses nothing while the certificate stays the same.
    let out = lvt(run_args(
        &path,
        &out_dir,
        &["--refuse-changed-certificates"],
    ))
    .await;
    stop.cancel();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = read_json(&out_dir.join("run.json"));
    let mut sessions = run["sessions"].as_array().unwrap().clone();
    sessions.sort_by_key(|s| s["report"]["started_at_unix_ms"].as_i64());
    for session in &sessions {
        assert_eq!(session["report"]["outcome"], "passed", "{session}");
    }
    let orchestrators: Vec<&Value> = sessions
        .iter()
        .map(|s| &s["report"]["orchestrator"])
        .collect();
    assert_eq!(orchestrators.len(), 2);
    let fingerprint = orch.cert_fingerprint.clone().unwrap();
    for orchestrator in &orchestrators {
        assert_eq!(orchestrator["cert_sha256"], fingerprint.as_str());
    }
    assert_eq!(
        orchestrators[0]["cert_trust"],
        serde_json::json!({"status": "first_use"})
    );
    assert_eq!(
        orchestrators[1]["cert_trust"],
        serde_json::json!({"status": "matches"})
    );
}

#[cfg(feature = "chain")] // without it, --verify-addresses is refused, naming the feature
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_stay_unverified_when_the_chain_cannot_be_read() {
    let (orch, stop) = start_sim(sim_profile(|_| {}), true).await;
    let toml = format!(
        "{}\n{}\n[load]\nexecutor = \"closed\"\nsessions_per_target = 1\nconcurrency = 2\n",
        scenario_head("run-verify", 1),
        explicit(&orch.uri)
    );
    let (dir, path) = write_scenario("verify.toml", &toml);
    // A bad RPC URL is a usage error before anything runs.
    let out = lvt(run_args(
        &path,
        &dir.path().join("bad"),
        &["--verify-addresses", "ftp://node.example"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--verify-addresses"),
        "{}",
        text(&out.stderr)
    );

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let out_dir = dir.path().join("out");
    let out = lvt(run_args(&path, &out_dir, &["--verify-addresses", &closed])).await;
    stop.cancel();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let run = read_json(&out_dir.join("run.json"));
    for s in run["sessions"].as_array().unwrap() {
        let check = &s["report"]["orchestrator"]["address_check"];
        assert_eq!(check["status"], "unverified", "{s}");
        assert!(
            check["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("could not be read")),
            "{check}"
        );
    }
}
