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
    let mut opts = probe_options(duration);
    opts.params_update_offsets = vec![duration / 2];
    opts.timeouts.first_output = first_output;
    probe_with(url, &opts).await
}

/// A session of `duration` with the `noop` pipeline and no params update.
fn probe_options(duration: Duration) -> ProbeOptions {
    let mut opts = ProbeOptions::new("https://unused.invalid:1".parse().unwrap());
    opts.duration = duration;
    opts.model_id = "noop".into();
    opts.params = serde_json::json!({"prompt": "watercolor"});
    opts
}

/// One gateway-mode session with `opts` against the gateway at `url`.
async fn probe_with(url: &str, opts: &ProbeOptions) -> SessionReport {
    probe_decoding(url, opts, false).await
}

/// The same, decoding only the output keyframes outside the overlay watch when
/// `keyframes_only` (as under load).
async fn probe_decoding(url: &str, opts: &ProbeOptions, keyframes_only: bool) -> SessionReport {
    let mut options = GatewayOptions::new(url.parse().unwrap());
    options.decode_keyframes_only = keyframes_only;
    let http = probe::http_client().unwrap();
    probe_gateway(opts, &options, clip(), &http, CancellationToken::new()).await
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
/// sessions and prints its figures; with `--relay` the gateway relays them over trickle to an
/// `lvt sim` orchestrator child, which injects the latency.
#[tokio::test]
async fn lvt_bench_gateway_holds_a_small_ramp() {
    for relay in [false, true] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_lvt"))
            .args(["bench", "--gateway", "--streams", "2", "--step", "2"])
            .args(["--hold", "4s", "--latency-ms", "60", "--json"])
            .args(relay.then_some("--relay"))
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "relay {relay}: {stderr}");
        let steps: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let step = &steps[0];
        assert_eq!(step["sessions"], 2, "{steps}");
        assert_eq!(step["held"], 2, "relay {relay}: {steps} {stderr}");
        assert!(step["cpu_us_per_stream_second"].as_f64().unwrap() > 0.0);
        // e2e from the keyframes' pictures lands near the injected 60 ms.
        let error = step["latency_error_ms_median"].as_f64().expect("latency");
        assert!(error < 1000.0 / 30.0, "relay {relay}: {steps}");
    }
}

/// A scenario streaming through the gateway at `url`, one orchestrator pin per target, the
/// header's value from the environment.
fn gateway_scenario(url: &str) -> String {
    format!(
        r#"id = "through-gateway"
version = "1.0.0"
description = "lvt run through a gateway"
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "calm-lake"
complexity = "low"
params = {{ prompt = "a calm lake at dawn" }}

[input]
width = 256
height = 256
fps = 30
segment_ms = 1000
bitrate_kbps = 300

[session]
duration_s = 4

[targets]
source = "gateway"
url = "{url}"
pins = ["orch-a", "orch-b"]
headers_from_env = {{ X-Lvt-Key = "LVT_TEST_GATEWAY_KEY" }}

[load]
executor = "closed"
sessions_per_target = 1
concurrency = 1

[[thresholds]]
expr = "failure_rate == 0"

[[thresholds]]
expr = "e2e_latency_ms.p50 < 250"
where = {{ target = "{url}?orchestrator=orch-a" }}
"#
    )
}

/// `lvt run` with a `gateway` target: each pin is a target of its own, its sessions stream
/// through the gateway in gateway mode, thresholds judge them by label; a header whose
/// environment variable is unset stops the run before any session, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lvt_run_streams_through_a_gateway_target_per_pin() {
    let gw = gateway(GatewayConfig {
        latency: Duration::from_millis(150),
        startup: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("gateway.toml");
    std::fs::write(&scenario, gateway_scenario(&gw.url)).unwrap();
    let out_dir = dir.path().join("out");
    let run = |with_key: bool| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lvt"));
        command
            .arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(&out_dir)
            .env_remove("LVT_TEST_GATEWAY_KEY")
            .kill_on_drop(true);
        if with_key {
            command.env("LVT_TEST_GATEWAY_KEY", "k-123");
        }
        command.output()
    };

    let unset = run(false).await.unwrap();
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert_eq!(unset.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("LVT_TEST_GATEWAY_KEY is not set"),
        "{stderr}"
    );
    assert!(!out_dir.join("run.json").exists());

    let output = run(true).await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    let labels = [
        format!("{}?orchestrator=orch-a", gw.url),
        format!("{}?orchestrator=orch-b", gw.url),
    ];
    assert_eq!(run["targets"], serde_json::json!(labels));
    let sessions = run["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{run}");
    let mut targets: Vec<&str> = sessions
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    targets.sort_unstable();
    assert_eq!(targets, labels);
    for s in sessions {
        let report = &s["report"];
        assert_eq!(report["mode"], "gateway", "{s}");
        assert_eq!(report["outcome"], "passed", "{s}");
        assert!(report["orchestrator"].is_null(), "{s}");
        let p50 = report["metrics"]["e2e_latency_ms"]["p50"].as_f64().unwrap();
        assert!((150.0..=150.0 + 1000.0 / 30.0).contains(&p50), "{p50}");
        assert!(
            report["metrics"]["gateway"]["whip_answer_ms"].is_number(),
            "{s}"
        );
        // The record names the gateway and the pin it asked for.
        assert_eq!(report["metrics"]["gateway"]["url"], gw.url.as_str(), "{s}");
        let pin = s["target"].as_str().unwrap().rsplit('=').next().unwrap();
        assert_eq!(report["metrics"]["gateway"]["orchestrator_pin"], pin, "{s}");
    }
    assert_eq!(run["verdicts"][0]["status"], "pass", "{run}");
    assert_eq!(run["verdicts"][1]["status"], "pass", "{run}");
}

/// The page headless Chromium opens: it plays `?whep=URL` over WHEP with Chromium's own WebRTC
/// engine, waits for 60 decoded frames, reads the mean luminance of the clip's corner marker
/// from the decoded picture, and posts what it saw (`/seen`) and the picture as a PNG
/// (`/frame.png`) back to the test.
const WHEP_PAGE: &str = r#"<!doctype html>
<html><body>
<video id="v" autoplay muted playsinline></video><canvas id="c"></canvas>
<script>
const whep = new URLSearchParams(location.search).get("whep");
const say = (doc) => fetch("/seen", { method: "POST", body: JSON.stringify(doc) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  try {
    const pc = new RTCPeerConnection();
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const v = document.getElementById("v");
    pc.ontrack = (e) => { if (e.track.kind === "video") v.srcObject = new MediaStream([e.track]); };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => {
      if (pc.iceGatheringState === "complete") return r();
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") r(); };
    });
    let answer = null, statuses = [];
    for (let i = 0; i < 40 && answer === null; i++) {
      let res;
      try {
        res = await fetch(whep, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
      } catch (e) {
        // go-livepeer's 404 before the stream exists carries no CORS headers: the browser
        // only sees a failed fetch.
        statuses.push("blocked"); await sleep(250); continue;
      }
      statuses.push(res.status);
      if (res.status === 201) answer = await res.text(); else await sleep(250);
    }
    if (answer === null) throw new Error("WHEP never answered 201: " + statuses.join(","));
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    let frames = 0;
    await new Promise((r) => {
      const each = () => { frames += 1; if (frames >= 60) r(); else v.requestVideoFrameCallback(each); };
      v.requestVideoFrameCallback(each);
    });
    const c = document.getElementById("c");
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext("2d", { willReadFrequently: true });
    g.drawImage(v, 0, 0);
    // The clip's marker: a square of a quarter of the shorter side in the top-right corner,
    // white or black; its inner half is read, as lvt's own reader does.
    const side = Math.floor(Math.min(c.width, c.height) / 4);
    const px = g.getImageData(c.width - side + side / 4, side / 4, side / 2, side / 2).data;
    let sum = 0;
    for (let i = 0; i < px.length; i += 4) sum += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    const quality = v.getVideoPlaybackQuality();
    const png = await new Promise((r) => c.toBlob(r, "image/png"));
    await fetch("/frame.png", { method: "POST", body: png });
    await say({ frames, width: c.width, height: c.height, corner_luma: sum / (px.length / 4),
                decoded: quality.totalVideoFrames, statuses });
  } catch (e) {
    await say({ error: String(e) });
  }
})();
</script>
</body></html>
"#;

/// Headless Chromium (its own WebRTC engine and H.264 decoder) plays the simulated gateway's
/// WHEP output while lvt publishes over WHIP: the page decodes the clip's pictures (the corner
/// marker reads white or black, not gray) and a decoded frame is kept as a test artifact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_plays_the_gateways_whep_output() {
    use axum::extract::State;
    use axum::routing::{get, post};
    let gw = gateway(GatewayConfig {
        latency: Duration::from_millis(100),
        startup: Duration::from_millis(300),
        allow_cors: true,
        ..Default::default()
    })
    .await;

    // lvt publishes (and plays, as one viewer) for 20 s under a known stream name.
    let mut opts = ProbeOptions::new("https://unused.invalid:1".parse().unwrap());
    opts.duration = Duration::from_secs(20);
    opts.model_id = "noop".into();
    let mut options = GatewayOptions::new(gw.url.parse().unwrap());
    options.stream = "chromiumplays".into();
    let publishing = tokio::spawn(async move {
        let http = probe::http_client().unwrap();
        probe_gateway(&opts, &options, clip(), &http, CancellationToken::new()).await
    });

    // The page's server (another origin than the gateway's: CORS as go-livepeer answers it).
    type Seen = tokio::sync::mpsc::UnboundedSender<(String, bytes::Bytes)>;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route("/", get(|| async { axum::response::Html(WHEP_PAGE) }))
        .route(
            "/{what}",
            post(
                |State(tx): State<Seen>,
                 axum::extract::Path(what): axum::extract::Path<String>,
                 body: bytes::Bytes| async move {
                    let _ = tx.send((what, body));
                },
            ),
        )
        .with_state(seen_tx);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page = format!(
        "http://{}/?whep={}/live/video-to-video/chromiumplays-out/whep",
        listener.local_addr().unwrap(),
        gw.url
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (mut browser, _profile) = lvt_testkit::chromium::open_page(&page);

    let mut png = None;
    let report = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (what, body) = seen.recv().await.expect("the page's server runs");
            match what.as_str() {
                "frame.png" => png = Some(body),
                "seen" => return serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
                _ => {}
            }
        }
    })
    .await
    .expect("the page reports within 60 s");
    let _ = browser.kill().await;

    assert!(report["error"].is_null(), "the page failed: {report}");
    assert_eq!(report["frames"], 60, "{report}");
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(512), Some(512)),
        "{report}"
    );
    // The decoded picture is the clip's: its marker is white or black, far from mid gray.
    let luma = report["corner_luma"].as_f64().unwrap();
    assert!(
        (luma - 128.0).abs() >= 48.0,
        "corner luminance {luma}: {report}"
    );
    let png = png.expect("the page sent its frame");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let artifacts = lvt_testkit::chromium::artifacts_dir();
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("gateway-whep-chromium.png"), &png).unwrap();

    let published = publishing.await.unwrap();
    assert_eq!(
        published.outcome,
        Outcome::Passed,
        "{:?}",
        published.failure
    );
}

/// When restyling leaves no digit readable, the segment marker places the pictures: with the
/// numbers ignored (as if unreadable) and a gateway 1.3 s late (longer than a segment, where one
/// luminance square would alias), the latency at each step of the marker lands within a frame
/// of the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_segment_marker_measures_latency_when_numbers_are_unreadable() {
    let latency = Duration::from_millis(1_300);
    let gw = gateway(GatewayConfig {
        latency,
        startup: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut opts = probe_options(Duration::from_secs(8));
    opts.read_frame_numbers = false;
    let report = probe_with(&gw.url, &opts).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    let m = &report.metrics;
    let check = m.content_check.as_ref().expect("content samples");
    // Output from about 1.5 s on: a step each second after the first picture.
    assert!(check.by_luminance >= 4, "{check:?}");
    assert_eq!(check.unreadable, 0, "{check:?}");
    let e2e = m.e2e_latency_ms.as_ref().expect("e2e latency by marker");
    assert_eq!(e2e.count, u64::from(check.by_luminance));
    assert!(
        e2e.min >= 1_300.0 && e2e.max <= 1_300.0 + 1000.0 / 30.0,
        "{e2e:?} against 1300 ms"
    );
}

/// A simulated gateway relaying its streams to `orchestrators`, and its relay (to see which
/// orchestrators served and the swaps).
async fn relaying_gateway(
    orchestrators: Vec<String>,
) -> (
    std::sync::Arc<lvt_tester::relay::RelayRunner>,
    RunningGateway,
) {
    let relay = std::sync::Arc::new(lvt_tester::relay::RelayRunner::new(
        lvt_gateway::gateway::relay::RelayConfig::new(orchestrators),
        probe::http_client().unwrap(),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = lvt_sim::gateway::start_gateway_with(
        GatewayConfig::default(),
        relay.clone(),
        listener,
        std::future::pending(),
    )
    .await
    .unwrap();
    (relay, gw)
}

/// `lvt sim gateway --orchestrator`: each stream relayed over trickle to simulated
/// orchestrators through lvt's selection and swap cores. The first orchestrator's session
/// crashes 3 s in (its output channel ends); the relay swaps to the second, and the user's
/// WHEP output goes on with the same latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_relays_to_orchestrators_and_swaps_when_one_fails() {
    use lvt_gateway::gateway::swap::SwapCause;
    use lvt_sim::Profile;
    use lvt_testkit::sim::start_sim;

    let profile = |crash_after_s| Profile {
        latency_ms: 60,
        startup_ms: 200,
        crash_after_s,
        capacity: 4,
        ..Profile::default()
    };
    let (crashy, _stop_a) = start_sim(profile(Some(3.0)), true).await;
    let (steady, _stop_b) = start_sim(profile(None), true).await;
    let (relay, gw) = relaying_gateway(vec![crashy.uri.clone(), steady.uri.clone()]).await;

    let report = session(&gw, Duration::from_secs(9)).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);

    // go-livepeer's order over two equal candidates is the given one: the crashing one serves
    // first, then the swap hands the stream to the other, with the left one suspended.
    assert_eq!(relay.served(), vec![crashy.uri.clone(), steady.uri.clone()]);
    // Each job carries the stream's own id (the WHIP `streamId`), as go-livepeer sends it.
    assert_eq!(crashy.stream_ids().len(), 1);
    assert_eq!(crashy.stream_ids(), steady.stream_ids());
    // The probe's streamId is `lvt` and 12 hex digits; one made from a request id would be
    // `lvt-...`.
    let id = &crashy.stream_ids()[0];
    assert!(
        id.len() == 15 && id.starts_with("lvt") && !id.contains('-'),
        "{id}"
    );
    let swaps = relay.swaps();
    assert_eq!(swaps.len(), 1, "{swaps:?}");
    assert_eq!(swaps[0].from, crashy.uri);
    assert_eq!(swaps[0].to.as_deref(), Some(steady.uri.as_str()));
    assert!(
        matches!(
            swaps[0].cause,
            SwapCause::SubscribeEos | SwapCause::SubscribeNotFound
        ),
        "{:?}",
        swaps[0].cause
    );

    // Output came from both: before the crash and for most of the 6 s after it.
    let m = &report.metrics;
    assert!(
        m.frames_received > 30 * 6,
        "{} frames received of {}",
        m.frames_received,
        m.frames_sent
    );
    // The relay adds only its muxing and loopback hops to the orchestrators' 60 ms.
    let e2e = m.e2e_latency_ms.as_ref().expect("e2e latency by content");
    assert!(
        (60.0..60.0 + 1000.0 / 30.0).contains(&e2e.p50),
        "e2e p50 {} ms through the relay, 60 ms injected",
        e2e.p50
    );
    // The swap shows to the user as one freeze of the output (the new orchestrator's first
    // segment starts at the next input keyframe).
    assert!(m.stalls.count >= 1, "{:?}", m.stalls);
}

/// The WHIP `orchestrator` pin through the relay: only the orchestrator whose URL contains it
/// serves, as go-livepeer's start loop skips the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_stream_is_relayed_to_the_pinned_orchestrator_only() {
    use lvt_sim::Profile;
    use lvt_testkit::sim::start_sim;

    let steady = || Profile {
        latency_ms: 60,
        startup_ms: 100,
        capacity: 4,
        ..Profile::default()
    };
    let (first, _stop_a) = start_sim(steady(), true).await;
    let (second, _stop_b) = start_sim(steady(), true).await;
    let (relay, gw) = relaying_gateway(vec![first.uri.clone(), second.uri.clone()]).await;
    let mut opts = ProbeOptions::new("https://unused.invalid:1".parse().unwrap());
    opts.duration = Duration::from_secs(3);
    opts.params_update_offsets = Vec::new();
    let mut options = GatewayOptions::new(gw.url.parse().unwrap());
    options.orchestrator = Some(format!(":{}", second.local_addr.port()));
    let http = probe::http_client().unwrap();
    let report = probe_gateway(&opts, &options, clip(), &http, CancellationToken::new()).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    assert_eq!(relay.served(), vec![second.uri.clone()]);
    assert_eq!(first.sessions_started(), 0);
}

/// Three orchestrators that each fail 1.5 s into their session: two swaps, and the third
/// failure is one too many (go-livepeer's chain limit): the gateway ends the stream with
/// `Too many swaps` in its status, which the session reads when its ingest is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_failure_within_the_swap_chain_ends_the_stream() {
    use lvt_sim::Profile;
    use lvt_testkit::sim::start_sim;

    let crashing = || Profile {
        latency_ms: 60,
        startup_ms: 100,
        crash_after_s: Some(1.5),
        capacity: 4,
        ..Profile::default()
    };
    let (a, _stop_a) = start_sim(crashing(), true).await;
    let (b, _stop_b) = start_sim(crashing(), true).await;
    let (c, _stop_c) = start_sim(crashing(), true).await;
    let (relay, gw) = relaying_gateway(vec![a.uri.clone(), b.uri.clone(), c.uri.clone()]).await;
    let report = session(&gw, Duration::from_secs(10)).await;
    assert_eq!(
        relay.served(),
        vec![a.uri.clone(), b.uri.clone(), c.uri.clone()]
    );
    let swaps = relay.swaps();
    assert_eq!(swaps.len(), 2, "{swaps:?}");
    assert!(swaps.iter().all(|s| s.to.is_some()), "{swaps:?}");
    assert_eq!(report.outcome, Outcome::Failed, "{report:?}");
    let failure = report.failure.as_ref().expect("a failure");
    // The gateway closes both legs; whichever the session sees first names the class, and the
    // status route gives the reason either way.
    assert!(
        matches!(
            failure.class,
            FailureClass::PublishLost | FailureClass::OutputTimeout
        ),
        "{failure:?}"
    );
    assert!(failure.detail.contains("Too many swaps"), "{failure:?}");
    assert!(report.metrics.frames_received > 0);
}

/// A relay with nobody to take the stream ends it: the gateway stores go-livepeer's error in
/// the status route and closes the ingest; the session reads why and is busy (unscored), not an
/// auth refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_closes_a_stream_no_orchestrator_takes() {
    use lvt_sim::Profile;
    use lvt_testkit::sim::start_sim;

    let busy = Profile {
        start_status: Some(503),
        ..Profile::default()
    };
    let (refusing, _stop) = start_sim(busy, true).await;
    let (relay, gw) = relaying_gateway(vec![refusing.uri.clone()]).await;
    let report = session(&gw, Duration::from_secs(4)).await;
    assert_eq!(report.outcome, Outcome::UnscoredBusy, "{report:?}");
    let failure = report.failure.as_ref().expect("a failure");
    assert_eq!(failure.class, FailureClass::Capacity, "{failure:?}");
    assert!(
        failure.detail.contains("no orchestrators available"),
        "{failure:?}"
    );
    assert!(relay.served().is_empty());
}

/// `lvt sim gateway --swap-at-s 3`: a swap of orchestrators in the middle of the stream, as a
/// viewer sees it: the output freezes once (the freeze, then the wait for the next keyframe),
/// and the latency around it is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_swap_shows_as_one_freeze() {
    let gw = gateway(GatewayConfig {
        latency: Duration::from_millis(100),
        startup: Duration::from_millis(200),
        swap: Some(lvt_sim::gateway::InjectedSwap {
            at: Duration::from_secs(3),
            freeze: Duration::from_millis(500),
        }),
        ..Default::default()
    })
    .await;
    let report = session(&gw, Duration::from_secs(8)).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    let m = &report.metrics;
    assert_eq!(m.stalls.count, 1, "{:?}", m.stalls);
    // At least the freeze; at most the freeze, a segment to the next keyframe and the latency.
    assert!(
        (500.0..=500.0 + 1000.0 + 100.0 + 100.0).contains(&m.stalls.longest_ms),
        "{:?}",
        m.stalls
    );
    let e2e = m.e2e_latency_ms.as_ref().expect("e2e latency by content");
    assert!(
        (100.0..=100.0 + 1000.0 / 30.0).contains(&e2e.p50),
        "{e2e:?}"
    );
}

/// Output that stops for longer than the output gap ends a gateway session as
/// `output_timeout`, as it does a direct one; a shorter freeze is a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_stopped_past_the_gap_is_output_timeout() {
    let gw = gateway(GatewayConfig {
        latency: Duration::from_millis(100),
        startup: Duration::from_millis(200),
        swap: Some(lvt_sim::gateway::InjectedSwap {
            at: Duration::from_secs(2),
            freeze: Duration::from_millis(2_500),
        }),
        ..Default::default()
    })
    .await;
    let mut opts = probe_options(Duration::from_secs(8));
    opts.timeouts.output_gap = Duration::from_secs(1);
    let report = probe_with(&gw.url, &opts).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let failure = report.failure.expect("a failure");
    assert_eq!(failure.class, FailureClass::OutputTimeout, "{failure:?}");
    assert!(
        failure.detail.contains("output stopped for longer than 1s"),
        "{failure:?}"
    );
    // Cut at the watchdog: about 2 s of output, then 1 s of silence.
    let ended_ms = report.ended_at_unix_ms - report.started_at_unix_ms;
    assert!(
        (3_000..6_000).contains(&ended_ms),
        "ended after {ended_ms} ms"
    );
}

/// ai-runner's loading overlay reaches the user through a gateway too: relayed from an
/// orchestrator whose model loads for 1.5 s (`lvt sim` answers each input frame meanwhile with
/// the flat gray overlay), the overlay frames are counted apart and startup is the first
/// processed frame. Without the watch they pass for output and startup looks 1.5 s better.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loading_overlay_through_a_gateway_is_not_output() {
    loading_overlay_is_not_output(false).await;
}

/// The same under load, where outside the watch only the output keyframes are decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loading_overlay_is_not_output_when_only_keyframes_are_decoded() {
    loading_overlay_is_not_output(true).await;
}

async fn loading_overlay_is_not_output(keyframes_only: bool) {
    use lvt_sim::Profile;
    use lvt_testkit::sim::start_sim;

    let (orch, _stop) = start_sim(
        Profile {
            latency_ms: 60,
            startup_ms: 1_500,
            capacity: 4,
            ..Profile::default()
        },
        true,
    )
    .await;
    let (_relay, gw) = relaying_gateway(vec![orch.uri.clone()]).await;
    let run = |watch_overlay: bool| {
        let mut opts = probe_options(Duration::from_secs(6));
        opts.watch_overlay = watch_overlay;
        let url = gw.url.clone();
        async move { probe_decoding(&url, &opts, keyframes_only).await }
    };

    let report = run(true).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    let m = &report.metrics;
    let overlay = m.loading_overlay.as_ref().expect("overlay frames seen");
    // Up to 1.5 s of input frames at 30 fps came back as overlay; the player sees them from
    // the overlay's first keyframe after it connected (the overlay repeats its IDR every
    // second, and the first one may go out before the player is up).
    assert!(
        (10..=50).contains(&overlay.frames),
        "{} overlay frames",
        overlay.frames
    );
    let startup = m.startup_ms.expect("startup");
    assert!(startup >= 1_500.0, "startup {startup} ms with a 1.5 s load");
    let e2e = m.e2e_latency_ms.as_ref().expect("e2e latency by content");
    assert!(
        (60.0..60.0 + 1000.0 / 30.0).contains(&e2e.p50),
        "e2e p50 {} ms, 60 ms injected",
        e2e.p50
    );

    // Without the watch, the first overlay frame the player sees (from the overlay's first or
    // second keyframe, at about 0 or 1 s) is taken for output.
    let blind = run(false).await;
    assert_eq!(blind.metrics.loading_overlay, None);
    let startup = blind.metrics.startup_ms.expect("startup");
    assert!(startup < 1_400.0, "startup {startup} ms without the watch");
}

/// A params update that makes the runner reload: through the gateway, the reload's overlay is
/// counted apart (the watch opened by the update) and shows as a stall of processed output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_after_an_update_shows_as_overlay_through_a_gateway() {
    reload_after_update_is_overlay(false).await;
}

/// The same under load: the update's watch gets a decoder of the session's own, which reads
/// pictures from the overlay's keyframe on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_shows_as_overlay_when_only_keyframes_are_decoded() {
    reload_after_update_is_overlay(true).await;
}

async fn reload_after_update_is_overlay(keyframes_only: bool) {
    use lvt_sim::Profile;
    use lvt_testkit::sim::start_sim;

    let (orch, _stop) = start_sim(
        Profile {
            latency_ms: 60,
            startup_ms: 100,
            reload_ms: 1_000,
            capacity: 4,
            ..Profile::default()
        },
        true,
    )
    .await;
    let (_relay, gw) = relaying_gateway(vec![orch.uri.clone()]).await;
    let mut opts = probe_options(Duration::from_secs(8));
    opts.params_update_offsets = vec![Duration::from_secs(3)];
    let report = probe_decoding(&gw.url, &opts, keyframes_only).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    let m = &report.metrics;
    let overlay = m.loading_overlay.as_ref().expect("the reload's overlay");
    // The reload answers about a second of input with overlay (the player sees it from the
    // overlay's keyframe on), after the update; the start's 100 ms load may add a few frames
    // (without the update's watch, those few were all that was counted).
    assert!(
        (10..=45).contains(&overlay.frames),
        "{} overlay frames",
        overlay.frames
    );
    assert!(overlay.last_ms >= 3_000.0, "{overlay:?}");
    // The processed output stopped for the reload and came back at a keyframe.
    assert!(m.stalls.longest_ms >= 900.0, "{:?}", m.stalls);
    let e2e = m.e2e_latency_ms.as_ref().expect("e2e latency by content");
    assert!(
        (60.0..60.0 + 1000.0 / 30.0).contains(&e2e.p50),
        "e2e p50 {} ms, 60 ms injected",
        e2e.p50
    );
}

/// A swap through a gateway shows to a viewer as a freeze, then the new orchestrator's loading
/// overlay: output that comes back after a stall is watched, so that overlay is counted apart
/// too, and the freeze lasts until processed output is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlay_of_a_swapped_in_orchestrator_is_not_output() {
    swapped_in_overlay_is_not_output(false).await;
}

/// The same under load: output back after the stall is watched with a decoder of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_in_overlay_is_not_output_when_only_keyframes_are_decoded() {
    swapped_in_overlay_is_not_output(true).await;
}

async fn swapped_in_overlay_is_not_output(keyframes_only: bool) {
    use lvt_sim::Profile;
    use lvt_testkit::sim::start_sim;

    let profile = |crash_after_s, startup_ms| Profile {
        latency_ms: 60,
        startup_ms,
        crash_after_s,
        capacity: 4,
        ..Profile::default()
    };
    let (crashy, _stop_a) = start_sim(profile(Some(3.0), 100), true).await;
    let (loading, _stop_b) = start_sim(profile(None, 1_500), true).await;
    let (relay, gw) = relaying_gateway(vec![crashy.uri.clone(), loading.uri.clone()]).await;
    let mut opts = probe_options(Duration::from_secs(9));
    opts.params_update_offsets = vec![Duration::from_secs_f64(4.5)];
    opts.timeouts.first_output = Duration::from_secs(8);
    let report = probe_decoding(&gw.url, &opts, keyframes_only).await;
    assert_eq!(report.outcome, Outcome::Passed, "{:?}", report.failure);
    assert_eq!(
        relay.served(),
        vec![crashy.uri.clone(), loading.uri.clone()]
    );
    let m = &report.metrics;
    let overlay = m
        .loading_overlay
        .as_ref()
        .expect("the new orchestrator's overlay");
    // The second orchestrator loads for 1.5 s after the swap (3 s in): its overlay, from the
    // player's first keyframe of it, comes after the swap.
    assert!(overlay.frames >= 10, "{overlay:?}");
    assert!(overlay.last_ms >= 3_000.0, "{overlay:?}");
    // The user saw no processed output from the crash until the new model had loaded.
    assert!(m.stalls.longest_ms >= 1_400.0, "{:?}", m.stalls);
}
