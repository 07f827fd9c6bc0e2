//! Gateway mode (`lvt probe --gateway`) against `lvt sim gateway` over real HTTP and WebRTC on
//! loopback: e2e latency read from the output pictures lands within one frame interval of the
//! latency the gateway injects, and each gateway fault ends in its failure class.
//!
//! Sessions run in real time, because what is measured is real time.

mod common;

use std::time::Duration;

use common::clip;
use lvt_schema::{FailureClass, Outcome, SessionReport, TargetMode};
use lvt_sim::gateway::{GatewayConfig, RunningGateway, start_gateway};
use lvt_tester::probe::gateway::{GatewayOptions, probe_gateway};
use lvt_tester::probe::{self, ProbeOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn gateway(config: GatewayConfig) -> RunningGateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_gateway(config, listener, std::future::pending())
        .await
        .unwrap()
}

async fn session(gw: &RunningGateway, duration: Duration) -> SessionReport {
    session_at(&gw.url, duration, Duration::from_secs(8)).await
}

/// One gateway-mode session of `duration` against the gateway at `url`.
async fn session_at(url: &str, duration: Duration, first_output: Duration) -> SessionReport {
    let mut opts = ProbeOptions::new("https://unused.invalid:1".parse().unwrap());
    opts.duration = duration;
    opts.model_id = "noop".into();
    opts.params = serde_json::json!({"prompt": "watercolor"});
    opts.params_update_offsets = vec![duration / 2];
    opts.timeouts.first_output = first_output;
    let options = GatewayOptions::new(url.parse().unwrap());
    let http = probe::http_client().unwrap();
    probe_gateway(&opts, &options, clip(), &http, CancellationToken::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_latency_by_content_matches_the_injected_latency() {
    let latency = Duration::from_millis(200);
    let gw = gateway(GatewayConfig {
        latency,
        startup: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let report = session(&gw, Duration::from_secs(6)).await;
    assert_eq!(report.mode, TargetMode::Gateway);
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    let m = &report.metrics;

    // Latency from the pictures: never below the truth, at most one frame interval above.
    let e2e = m.e2e_latency_ms.as_ref().expect("e2e latency by content");
    let injected = latency.as_secs_f64() * 1000.0;
    let frame_ms = 1000.0 / 30.0;
    assert!(
        e2e.p50 >= injected && e2e.p50 <= injected + frame_ms,
        "p50 {} against {injected} ms",
        e2e.p50
    );
    let check = m.content_check.as_ref().expect("content samples");
    assert!(check.samples >= 100, "{check:?}");
    assert!(check.unreadable * 10 <= check.samples, "{check:?}");
    assert!(
        !m.pts_untrusted,
        "timestamps are not judged in gateway mode"
    );

    // Startup: the runner's LOADING (400 ms) and its latency, then the next keyframe.
    let startup = m.startup_ms.expect("startup");
    assert!((600.0..2_500.0).contains(&startup), "startup {startup}");
    let fps = m.output_fps.as_ref().expect("fps");
    assert!((fps.p50 - 30.0).abs() < 3.0, "{fps:?}");
    assert_eq!(m.stalls.count, 0, "{:?}", m.stalls);

    let g = m.gateway.as_ref().expect("gateway figures");
    for (name, value) in [
        ("whip_answer_ms", g.whip_answer_ms),
        ("ice_connected_ms", g.ice_connected_ms),
        ("dtls_connected_ms", g.dtls_connected_ms),
        ("whep_answer_ms", g.whep_answer_ms),
        ("whep_connected_ms", g.whep_connected_ms),
    ] {
        assert!(value.is_some_and(|v| v >= 0.0), "{name}: {value:?}");
    }
    assert!(g.dtls_connected_ms >= g.ice_connected_ms);
    // The gateway asks for a keyframe every 2 s.
    assert!(g.plis_received >= 2, "{} PLIs", g.plis_received);
    assert!(g.ingest.packets > 0 && g.playback.packets > 0, "{g:?}");
    let states: Vec<&str> = g.runner_states.iter().map(|s| s.state.as_str()).collect();
    assert!(states.contains(&"ONLINE"), "{states:?}");
    assert!(
        !g.gateway_ingest.is_empty(),
        "the status route's ingest stats"
    );
    assert_eq!(report.runner.last_state.as_deref(), Some("ONLINE"));
}

#[tokio::test]
async fn an_auth_refusal_after_the_201_is_auth_closed() {
    let gw = gateway(GatewayConfig {
        refuse_auth: true,
        ..Default::default()
    })
    .await;
    let report = session(&gw, Duration::from_secs(3)).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let failure = report.failure.expect("failure");
    assert_eq!(
        failure.class,
        FailureClass::AuthClosed,
        "{}",
        failure.detail
    );
    let g = report.metrics.gateway.expect("figures");
    assert!(g.whip_answer_ms.is_some());
}

#[tokio::test]
async fn ice_that_never_connects_is_ice_failed() {
    let gw = gateway(GatewayConfig {
        ice_never: true,
        ..Default::default()
    })
    .await;
    let report = session(&gw, Duration::from_secs(3)).await;
    let failure = report.failure.expect("failure");
    assert_eq!(failure.class, FailureClass::IceFailed, "{}", failure.detail);
    assert!(report.metrics.gateway.unwrap().ice_connected_ms.is_none());
}

#[tokio::test]
async fn a_refused_whip_is_whip_refused() {
    // Nothing listens there: the POST cannot be made.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let report = session_at(&url, Duration::from_secs(1), Duration::from_secs(8)).await;
    let failure = report.failure.expect("failure");
    assert_eq!(
        failure.class,
        FailureClass::WhipRefused,
        "{}",
        failure.detail
    );
}

#[tokio::test]
async fn a_full_viewer_limit_is_whep_refused() {
    // No place left for any viewer: every WHEP is answered 429.
    let gw = gateway(GatewayConfig {
        viewer_limit: Some(0),
        ..Default::default()
    })
    .await;
    let report = session(&gw, Duration::from_secs(3)).await;
    let failure = report.failure.expect("failure");
    assert_eq!(
        failure.class,
        FailureClass::WhepRefused,
        "{}",
        failure.detail
    );
    assert!(failure.detail.contains("429"), "{}", failure.detail);
}

/// lvt's client against aiortc (PyPI) as the WHIP/WHEP server: an independent WebRTC stack
/// (its own ICE, DTLS, SRTP, depacketizer, H.264 decoder and encoder) answers lvt's offers,
/// decodes lvt's stream and plays it back re-encoded; lvt reads its frame numbers in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvt_publishes_to_and_plays_from_aiortc() {
    use tokio::io::AsyncBufReadExt;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/aiortc");
    let mut server = tokio::process::Command::new(script)
        .args(["--no-install", "serve"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ci/aiortc runs");
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("aiortc serves within 60 s")
        .unwrap()
        .unwrap_or_else(|| panic!("aiortc exited: {:?} (3: run ci/setup)", server.try_wait()));
    let url = first
        .strip_prefix("serving ")
        .unwrap_or_else(|| panic!("aiortc printed {first:?}"))
        .to_owned();

    let report = session_at(&url, Duration::from_secs(5), Duration::from_secs(10)).await;
    drop(server.stdin.take()); // the server stops when its stdin closes
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    let m = &report.metrics;
    assert!(m.frames_received >= 100, "{} frames", m.frames_received);
    let check = m.content_check.as_ref().expect("content samples");
    assert!(check.unreadable * 10 <= check.samples, "{check:?}");
    let e2e = m.e2e_latency_ms.as_ref().expect("e2e by content");
    assert!(e2e.p50 > 0.0 && e2e.p50 < 1_000.0, "{e2e:?}");
    let g = m.gateway.as_ref().unwrap();
    assert!(
        g.dtls_connected_ms.is_some() && g.whep_connected_ms.is_some(),
        "{g:?}"
    );
}

/// `lvt bench --gateway`: a small ramp against `lvt sim gateway` as a child process holds its
/// sessions and prints its figures.
#[tokio::test]
async fn lvt_bench_gateway_holds_a_small_ramp() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lvt"))
        .args(["bench", "--gateway", "--streams", "2", "--step", "2"])
        .args(["--hold", "4s", "--latency-ms", "60", "--json"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let steps: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let step = &steps[0];
    assert_eq!(step["sessions"], 2, "{steps}");
    assert_eq!(step["held"], 2, "{steps} {stderr}");
    assert!(step["cpu_us_per_stream_second"].as_f64().unwrap() > 0.0);
    // e2e from the keyframes' pictures lands near the injected 60 ms.
    let error = step["latency_error_ms_median"].as_f64().expect("latency");
    assert!(error < 1000.0 / 30.0, "{steps}");
}
