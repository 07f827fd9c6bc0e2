//! `lvt sim gateway` against aiortc (PyPI), an independent WebRTC implementation: aiortc
//! publishes H.264 over WHIP and plays the output over WHEP, decoding it with its own decoder.
//! The venv comes from `ci/setup` (`ci/aiortc --install`); without it the test fails saying so.

use std::path::Path;
use std::time::Duration;

use lvt_sim::gateway::{GatewayConfig, start_gateway};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_publishes_over_whip_and_plays_over_whep() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = start_gateway(
        GatewayConfig {
            latency: Duration::from_millis(100),
            ..Default::default()
        },
        listener,
        std::future::pending(),
    )
    .await
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ci/aiortc");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(script)
            .args([
                "--no-install",
                "client",
                "--gateway",
                &gw.url,
                "--seconds",
                "4",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("aiortc finished within 90 s")
    .expect("ci/aiortc runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(3),
        "aiortc is not installed: run ci/setup ({stderr})"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("aiortc printed {stdout:?} ({e}); stderr: {stderr}"));
    assert_eq!(result["whip_status"], 201, "{result}");
    assert!(
        result["location"]
            .as_str()
            .is_some_and(|l| l.contains("//live/video-to-video/")),
        "{result}"
    );
    assert_eq!(result["whep_status"], 201, "{result}");
    // aiortc's own decoder read the relayed H.264: at 30 fps for 4 s, well over a second's worth.
    assert!(
        result["frames_decoded"].as_u64().unwrap_or(0) >= 30,
        "{result}"
    );
    assert_eq!(
        (result["width"].clone(), result["height"].clone()),
        (320.into(), 240.into())
    );
}
