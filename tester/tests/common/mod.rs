//! Helpers shared by the tester's integration tests: the input clip, encoded once per test
//! binary, and a collector on loopback; the simulated orchestrator on loopback and the other
//! harnesses shared across crates are `lvt-testkit`'s.

#![allow(dead_code)] // Each test binary uses its own subset.

pub mod agents;
pub mod git_server;
#[allow(unused_imports)] // Each test binary uses its own subset.
pub use lvt_testkit::noise::with_scheduling_noise;
#[allow(unused_imports)] // Each test binary uses its own subset.
pub use lvt_testkit::sim::{start_sim, start_sim_config, start_sim_on};

use std::sync::{Arc, OnceLock};

use lvt_tester::encode::{Clip, ClipConfig, encode_clip};
use tokio_util::sync::CancellationToken;

/// The default input clip, encoded once per test binary.
pub fn clip() -> Arc<Clip> {
    static CLIP: OnceLock<Arc<Clip>> = OnceLock::new();
    CLIP.get_or_init(|| Arc::new(encode_clip(&ClipConfig::default()).expect("encode clip")))
        .clone()
}

/// The `lvt` binary under test.
#[allow(dead_code)] // used by some of the test binaries that include this module
pub const LVT: &str = env!("CARGO_BIN_EXE_lvt");

/// Runs `lvt ARGS` to completion off the async workers (the simulators and collectors a test
/// starts keep answering meanwhile).
#[allow(dead_code)] // used by some of the test binaries that include this module
pub async fn lvt_output(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(LVT)
            .args(&args)
            .output()
            .expect("lvt runs")
    })
    .await
    .expect("the lvt task ends")
}

/// A real collector on loopback (SQLite in `dir`) that knows one agent, whose key pair was made
/// by `lvt keygen` exactly as an operator makes it: `dir/agent.key` signs, and the collector's
/// settings name `dir/agent.pub` as agent `agent_id` in region `eu-west`.
pub struct AgentCollector {
    pub url: String,
    pub key_path: std::path::PathBuf,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), lvt_collector::server::RunError>>,
}

impl AgentCollector {
    /// `lvt keygen --out dir/agent`.
    async fn keygen(lvt_binary: &str, dir: &std::path::Path) {
        let binary = lvt_binary.to_owned();
        let prefix = dir.join("agent");
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(binary)
                .arg("keygen")
                .arg("--out")
                .arg(prefix)
                .output()
                .expect("run lvt keygen")
        })
        .await
        .expect("keygen task");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn start(lvt_binary: &str, dir: &std::path::Path, agent_id: &str) -> Self {
        Self::start_at(lvt_binary, dir, agent_id, "127.0.0.1:0").await
    }

    /// As [`Self::start`], listening on `address`; an existing `dir/agent.key` is kept (so a
    /// collector restarted on the same address and folder knows the same agent and store).
    pub async fn start_at(
        lvt_binary: &str,
        dir: &std::path::Path,
        agent_id: &str,
        address: &str,
    ) -> Self {
        if !dir.join("agent.pub").exists() {
            Self::keygen(lvt_binary, dir).await;
        }
        let public_line = std::fs::read_to_string(dir.join("agent.pub")).expect("agent.pub");
        let settings_path = dir.join("collector.toml");
        std::fs::write(
            &settings_path,
            format!(
                "[[agents]]\nid = \"{agent_id}\"\nregion = \"eu-west\"\npublic_key = \"{}\"\n",
                public_line.trim()
            ),
        )
        .expect("write settings");
        let (url, stop, task) = spawn_sqlite_collector(&settings_path, dir, address).await;
        Self {
            url,
            key_path: dir.join("agent.key"),
            stop,
            task,
        }
    }

    /// Stops the collector and checks that it shut down cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task
            .await
            .expect("collector task")
            .expect("collector ran");
    }
}

/// Makes the process `command` starts receive SIGKILL when the thread that starts it ends, so a
/// test that fails (or is killed by nextest's timeout) leaves no agent or collector running to
/// load the machine for the tests after it. Start such processes from the test's own thread
/// (the body of the test), which lives as long as the test.
pub fn dies_with_test(command: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of the calling (child) process; it
    // allocates nothing and is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A collector in this process on `address`, with the settings file `settings` and a SQLite
/// store `dir/results.db`; stopped by cancelling the token, its task gives how it ended.
pub async fn spawn_sqlite_collector(
    settings: &std::path::Path,
    dir: &std::path::Path,
    address: &str,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), lvt_collector::server::RunError>>,
) {
    use lvt_collector::config::{CollectorConfig, Settings, StoreSpec};
    let settings = Settings::load(settings).expect("collector settings");
    let store: StoreSpec = format!("sqlite:{}", dir.join("results.db").display())
        .parse()
        .expect("store spec");
    let listener = tokio::net::TcpListener::bind(address).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(lvt_collector::run(
        listener,
        CollectorConfig { store, settings },
        async move { s.cancelled().await },
    ));
    (url, stop, task)
}

/// The `lvt-collector` binary beside `lvt_binary`, as `lvt demo` finds it. A workspace build
/// makes it; `cargo nextest run -p lvt-tester` alone does not build another package's binaries,
/// so it is built here when missing (cargo's lock is free: tests run after the build). It is not
/// rebuilt when present: `cargo build -p lvt-collector` resolves features for that package alone
/// and would rebuild dependencies the workspace build shares (minutes, inside a test). A binary
/// left by a `--no-default-features` build has no Kafka; the workspace suite rebuilds it, and
/// ci/test runs its builds without default features last.
pub fn collector_beside(lvt_binary: &str) -> std::path::PathBuf {
    let beside = std::path::Path::new(lvt_binary).with_file_name("lvt-collector");
    if beside.is_file() {
        return beside;
    }
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--locked",
            "-p",
            "lvt-collector",
            "--bin",
            "lvt-collector",
        ])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building lvt-collector failed");
    assert!(beside.is_file(), "{} was not built", beside.display());
    beside
}
