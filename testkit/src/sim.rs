//! Simulated orchestrators (`lvt-sim`) on loopback, for tests that need a real orchestrator
//! endpoint: TLS or plaintext, status events every second, stopped by a cancellation token.

use std::time::Duration;

use lvt_sim::{OrchestratorConfig, Profile, RunningOrchestrator};
use tokio_util::sync::CancellationToken;

/// Starts one simulated orchestrator with `profile` on 127.0.0.1 (TLS unless `plaintext`,
/// status events every second); it stops when the returned token is cancelled.
pub async fn start_sim(
    profile: Profile,
    plaintext: bool,
) -> (RunningOrchestrator, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_sim_on(profile, plaintext, listener).await
}

/// [`start_sim`] on a given listener (for example the port of a simulator just stopped, to
/// stand in for an orchestrator that came back with another certificate).
pub async fn start_sim_on(
    profile: Profile,
    plaintext: bool,
    listener: tokio::net::TcpListener,
) -> (RunningOrchestrator, CancellationToken) {
    let mut cfg = OrchestratorConfig::new("test", profile);
    cfg.plaintext = plaintext;
    cfg.status_interval = Duration::from_secs(1);
    start_sim_config(cfg, listener).await
}

/// A simulator as `cfg` says (for example with tickets worth something) on `listener`.
pub async fn start_sim_config(
    cfg: OrchestratorConfig,
    listener: tokio::net::TcpListener,
) -> (RunningOrchestrator, CancellationToken) {
    let stop = CancellationToken::new();
    let s = stop.clone();
    let orch = lvt_sim::start(cfg, listener, async move { s.cancelled().await })
        .await
        .expect("start simulator");
    (orch, stop)
}

/// A simulated orchestrator on loopback that stops when dropped.
pub struct LoopbackSim {
    /// The running simulator: its address, URI and counters.
    pub orch: RunningOrchestrator,
    _stop: tokio_util::sync::DropGuard,
}

impl LoopbackSim {
    /// Starts a simulator as `cfg` says on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When it cannot bind or start: the test cannot proceed without it.
    pub async fn start(cfg: OrchestratorConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let stop = CancellationToken::new();
        let orch = lvt_sim::start(cfg, listener, stop.clone().cancelled_owned())
            .await
            .expect("start simulator");
        Self {
            orch,
            _stop: stop.drop_guard(),
        }
    }
}
