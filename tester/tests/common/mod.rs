//! Helpers shared by the tester's integration tests: the input clip, encoded once per test
//! binary, and a simulated orchestrator on loopback.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lvt_gateway::sim::{self, OrchestratorConfig, Profile, RunningOrchestrator};
use lvt_tester::encode::{Clip, ClipConfig, encode_clip};
use tokio_util::sync::CancellationToken;

/// The default input clip, encoded once per test binary.
pub fn clip() -> Arc<Clip> {
    static CLIP: OnceLock<Arc<Clip>> = OnceLock::new();
    CLIP.get_or_init(|| Arc::new(encode_clip(&ClipConfig::default()).expect("encode clip")))
        .clone()
}

/// Starts one simulated orchestrator with `profile` on 127.0.0.1 (TLS unless `plaintext`,
/// status events every second); it stops when the returned token is cancelled.
pub async fn start_sim(
    profile: Profile,
    plaintext: bool,
) -> (RunningOrchestrator, CancellationToken) {
    let mut cfg = OrchestratorConfig::new("test", profile);
    cfg.plaintext = plaintext;
    cfg.status_interval = Duration::from_secs(1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let orch = sim::start(cfg, listener, async move { s.cancelled().await })
        .await
        .expect("start simulator");
    (orch, stop)
}
