//! Integration tests of the simulated orchestrator over real sockets (127.0.0.1:0), TLS and
//! plaintext: discovery, job start, media through the pipeline, events, control, faults.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lvt_media::ts::{MuxConfig, MuxFrame, TsDemuxer, TsMuxer};
use lvt_sim::{FleetConfig, OrchestratorConfig, Profile, RunningOrchestrator};
use lvt_wire::grpc::{
    CAPABILITY_LIVE_VIDEO_TO_VIDEO, GrpcError, OrchestratorClient, has_capability, live_request,
    orchestrator_request, proto,
};
use lvt_wire::live::{
    self, AuthTokens, JobUrls, LiveVideoToVideoRequest, OrchestratorUri, StartJobError,
};
use lvt_wire::trickle::{
    SegmentWriter, SubscriberConfig, TrickleError, TricklePublisher, TrickleSubscriber,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

const SECRET: [u8; 32] = [7; 32];
const GATEWAY: [u8; 20] = [0x11; 20];
const BASE_PTS: u64 = 900_000;
/// Generous bound for things that should happen within a second; a test that hits it fails
/// instead of hanging.
const WAIT: Duration = Duration::from_secs(10);

struct Sim {
    orch: RunningOrchestrator,
    stop: CancellationToken,
}

impl Sim {
    async fn start(profile: Profile, plaintext: bool) -> Sim {
        Sim::start_with(profile, plaintext, |_| {}).await
    }

    async fn start_with(
        profile: Profile,
        plaintext: bool,
        edit: impl FnOnce(&mut OrchestratorConfig),
    ) -> Sim {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = OrchestratorConfig::new("test-orch", profile);
        cfg.plaintext = plaintext;
        cfg.status_interval = Duration::from_millis(300);
        cfg.auth_secret = Some(SECRET);
        edit(&mut cfg);
        let stop = CancellationToken::new();
        let orch = lvt_sim::start(cfg, listener, stop.clone().cancelled_owned())
            .await
            .unwrap();
        Sim { orch, stop }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        timeout(WAIT, self.orch.join()).await.unwrap().unwrap();
    }

    async fn info(&self, model: Option<&str>) -> Result<proto::OrchestratorInfo, GrpcError> {
        get_info(&self.orch.uri, live_request(GATEWAY, model)).await
    }

    async fn start_job(&self, model: &str) -> Result<JobUrls, StartJobError> {
        let info = self.info(None).await.unwrap();
        let token = info.auth_token.expect("auth token");
        let (client, _) = live::insecure_http_client().unwrap();
        let req = LiveVideoToVideoRequest {
            model_id: model.into(),
            params: json!({"prompt": "a"}),
            gateway_request_id: "gw-1".into(),
            stream_id: "stream-1".into(),
        };
        live::start_job(
            &client,
            &info.transcoder,
            &token,
            &req,
            Duration::from_secs(5),
        )
        .await
    }
}

async fn get_info(
    uri: &str,
    req: proto::OrchestratorRequest,
) -> Result<proto::OrchestratorInfo, GrpcError> {
    let uri: OrchestratorUri = uri.parse().unwrap();
    let mut client = OrchestratorClient::connect(&uri, Duration::from_secs(5)).await?;
    client.get_orchestrator(req).await
}

fn http_client() -> reqwest::Client {
    live::insecure_http_client().unwrap().0
}

fn unix_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn micros_since(origin: Instant) -> u64 {
    origin.elapsed().as_micros() as u64
}

/// One access unit of the fixture clip.
struct Au {
    data: Bytes,
    keyframe: bool,
}

/// The fixture's access units, split at each access unit delimiter.
fn fixture_aus() -> Vec<Au> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sim/clip64_gop15.h264");
    let bytes = std::fs::read(path).unwrap();
    let mut starts: Vec<usize> = (0..bytes.len().saturating_sub(4))
        .filter(|&i| bytes[i..i + 4] == [0, 0, 0, 1] && bytes[i + 4] & 0x1f == 9)
        .collect();
    starts.push(bytes.len());
    let aus: Vec<Au> = starts
        .windows(2)
        .map(|w| {
            let data = Bytes::copy_from_slice(&bytes[w[0]..w[1]]);
            let keyframe = lvt_media::h264::contains_idr(&data);
            Au { data, keyframe }
        })
        .collect();
    assert_eq!(aus.len(), 60, "fixture has 60 frames");
    assert_eq!(aus.iter().filter(|a| a.keyframe).count(), 4);
    aus
}

fn pts_of(i: usize) -> u64 {
    BASE_PTS + i as u64 * 3000
}

/// Publishes `aus` at 30 fps in real time, one trickle segment per GOP, recording when each
/// frame's first byte was handed to the publisher (keyed by PTS).
async fn publish_clip(
    publisher: &mut TricklePublisher,
    aus: &[Au],
    origin: Instant,
    sent: &Mutex<HashMap<u64, u64>>,
) -> Result<(), TrickleError> {
    let mut muxer = TsMuxer::new(MuxConfig::default());
    let start = Instant::now();
    let mut writer: Option<SegmentWriter> = None;
    for (i, au) in aus.iter().enumerate() {
        tokio::time::sleep_until(start + Duration::from_micros(i as u64 * 1_000_000 / 30)).await;
        if au.keyframe || writer.is_none() {
            if let Some(w) = writer.take() {
                w.finish().await?;
            }
            writer = Some(publisher.begin_segment().await?);
        }
        let mut buf = Vec::new();
        let pts = pts_of(i);
        muxer.mux_frame(
            &MuxFrame {
                pts,
                dts: None,
                keyframe: au.keyframe,
                data: &au.data,
            },
            &mut buf,
        );
        sent.lock().unwrap().insert(pts, micros_since(origin));
        if let Some(w) = writer.as_mut() {
            w.write(Bytes::from(buf)).await?;
        }
    }
    if let Some(w) = writer.take() {
        w.finish().await?;
    }
    Ok(())
}

/// What came out of the `-out` channel.
#[derive(Default)]
struct Output {
    /// (pts, dts, keyframe, first byte time) per frame, in arrival order.
    frames: Vec<(u64, Option<u64>, bool, u64)>,
    /// Whether each output segment started with a keyframe.
    segment_starts_on_key: Vec<bool>,
    /// All bytes, concatenated (a valid TS stream since PAT/PMT precede every keyframe).
    bytes: Vec<u8>,
}

/// Reads the output channel until it disappears, demuxing as bytes arrive.
/// Reads the output channel until it ends; `frames` follows how many frames have been read, so
/// a test waits for them instead of sleeping.
async fn collect_output(
    url: String,
    origin: Instant,
    frames: tokio::sync::watch::Sender<usize>,
) -> Output {
    let mut sub = TrickleSubscriber::new(http_client(), url);
    let mut demux = TsDemuxer::new();
    let mut out = Output::default();
    while let Ok(Some(mut segment)) = sub.next_segment().await {
        let mut first_in_segment = true;
        while let Ok(Some(chunk)) = segment.chunk().await {
            demux.handle_bytes(&chunk, micros_since(origin));
            out.bytes.extend_from_slice(&chunk);
            while let Some(f) = demux.poll_frame() {
                if first_in_segment {
                    out.segment_starts_on_key.push(f.keyframe);
                    first_in_segment = false;
                }
                out.frames
                    .push((f.pts.unwrap_or(0), f.dts, f.keyframe, f.first_byte_us));
            }
            frames.send_replace(out.frames.len());
        }
        demux.finish(micros_since(origin));
        while let Some(f) = demux.poll_frame() {
            out.frames
                .push((f.pts.unwrap_or(0), f.dts, f.keyframe, f.first_byte_us));
        }
        frames.send_replace(out.frames.len());
    }
    out
}

/// Waits until the output collector has read `count` frames.
async fn wait_for_frames(frames: &mut tokio::sync::watch::Receiver<usize>, count: usize) {
    timeout(WAIT, frames.wait_for(|read| *read >= count))
        .await
        .unwrap_or_else(|_| panic!("{count} output frames within {WAIT:?}"))
        .expect("output collector alive");
}

/// Reads event documents until the channel disappears or `stop_when` returns true.
async fn collect_events(
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    notify: Arc<tokio::sync::Notify>,
) {
    // Start at segment 0: the first events are published before the job start answers.
    let config = SubscriberConfig {
        start_seq: 0,
        ..SubscriberConfig::default()
    };
    let mut sub = TrickleSubscriber::with_config(http_client(), url, config);
    while let Ok(Some(mut segment)) = sub.next_segment().await {
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = segment.chunk().await {
            body.extend_from_slice(&chunk);
        }
        if let Ok(doc) = serde_json::from_slice::<Value>(&body) {
            seen.lock().unwrap().push(doc);
            notify.notify_waiters();
        }
    }
}

/// Waits until an event document matches `pred`.
async fn wait_event(
    seen: &Arc<Mutex<Vec<Value>>>,
    notify: &Arc<tokio::sync::Notify>,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    timeout(WAIT, async {
        loop {
            let notified = notify.notified();
            if let Some(doc) = seen.lock().unwrap().iter().find(|d| pred(d)) {
                return doc.clone();
            }
            notified.await;
        }
    })
    .await
    .expect("event did not arrive")
}

fn ffprobe_packets(ts: &[u8]) -> (String, Vec<f64>) {
    let output = lvt_media::ffprobe::probe(ts, &["-show_streams", "-show_packets", "-of", "json"])
        .unwrap_or_else(|e| panic!("checking the simulator's output: {e}"));
    assert!(
        output.success,
        "ffprobe rejected the output: {}",
        output.stderr
    );
    let report: Value = serde_json::from_str(&output.stdout).unwrap();
    let codec = report["streams"][0]["codec_name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pts = report["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pts_time"].as_str().unwrap().parse::<f64>().unwrap())
        .collect();
    (codec, pts)
}

#[tokio::test]
async fn get_orchestrator_reports_live_capability_models_and_hardware() {
    for plaintext in [false, true] {
        let profile = Profile {
            capacity: 2,
            ..Profile::default()
        };
        let sim = Sim::start(profile, plaintext).await;
        let scheme = if plaintext { "http://" } else { "https://" };
        assert!(sim.orch.uri.starts_with(scheme), "{}", sim.orch.uri);
        assert_eq!(sim.orch.cert_fingerprint.is_some(), !plaintext);

        let uri: OrchestratorUri = sim.orch.uri.parse().unwrap();
        let mut client = OrchestratorClient::connect(&uri, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(client.cert_fingerprint(), sim.orch.cert_fingerprint);
        let info = client
            .get_orchestrator(live_request(GATEWAY, None))
            .await
            .unwrap();
        assert_eq!(info.transcoder, sim.orch.uri);
        assert_eq!(
            lvt_sim::format_eth_address(&info.address.clone().try_into().unwrap()),
            sim.orch.eth_address
        );
        let caps = info.capabilities.as_ref().unwrap();
        assert!(has_capability(
            &caps.bitstring,
            CAPABILITY_LIVE_VIDEO_TO_VIDEO
        ));
        let models = &caps.constraints.as_ref().unwrap().per_capability
            [&CAPABILITY_LIVE_VIDEO_TO_VIDEO]
            .models;
        for model in ["noop", "streamdiffusion"] {
            let m = &models[model];
            assert!(m.warm);
            assert_eq!((m.capacity, m.capacity_in_use), (2, 0));
            assert!(!m.runner_version.is_empty());
        }
        assert_eq!(info.hardware.len(), 2, "hardware without capabilities");
        let gpu = &info.hardware[0].gpu_info["0"];
        assert_eq!(info.hardware[0].pipeline, "live-video-to-video");
        assert_eq!(gpu.name, "NVIDIA GeForce RTX 4090");
        assert_eq!(gpu.memory_total, 24 << 30);
        assert!(gpu.memory_free > 0 && gpu.memory_free < gpu.memory_total);
        assert!(!info.capabilities_prices.is_empty());
        assert!(info.price_info.as_ref().unwrap().price_per_unit > 0);
        let token = info.auth_token.unwrap();
        AuthTokens::new(SECRET.to_vec())
            .verify(&token, unix_s())
            .expect("token verifies with the orchestrator's secret");

        let with_caps = sim.info(Some("noop")).await.unwrap();
        assert!(
            with_caps.hardware.is_empty(),
            "no hardware with capabilities"
        );
        assert!(with_caps.capabilities_prices.is_empty());
        assert!(with_caps.auth_token.is_some());
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn busy_orchestrator_is_capped_and_refuses_jobs() {
    let sim = Sim::start(Profile::builtin("busy").unwrap(), true).await;
    let err = sim.info(Some("noop")).await.unwrap_err();
    assert!(err.to_string().contains("OrchestratorCapped"), "{err}");
    // Refreshing with ignoreCapacityCheck, or asking without capabilities, still answers.
    let caps = lvt_wire::grpc::live_capabilities("noop");
    get_info(
        &sim.orch.uri,
        orchestrator_request(GATEWAY, Some(caps), true),
    )
    .await
    .unwrap();
    let info = sim.info(None).await.unwrap();
    let models = &info
        .capabilities
        .unwrap()
        .constraints
        .unwrap()
        .per_capability[&CAPABILITY_LIVE_VIDEO_TO_VIDEO]
        .models;
    assert_eq!(models["noop"].capacity, 0);

    match sim.start_job("noop").await {
        Err(e) => {
            assert_eq!(e.status(), Some(503), "{e}");
            assert!(e.to_string().contains("insufficient capacity"), "{e}");
        }
        Ok(urls) => panic!("busy orchestrator started {urls:?}"),
    }
    sim.shutdown().await;
}

/// Posts a raw job start request and returns (status, body).
async fn raw_start(uri: &str, body: &str, segment: Option<&str>, payment: &str) -> (u16, String) {
    let mut req = http_client()
        .post(format!("{uri}/live-video-to-video"))
        .header("Content-Type", "application/json")
        .header("Livepeer-Payment", payment)
        .header("Authorization", "Livepeer-AI-Worker-1.0")
        .body(body.to_string());
    if let Some(segment) = segment {
        req = req.header("Livepeer-Segment", segment);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn job_start_checks_in_go_livepeer_order() {
    let sim = Sim::start(Profile::default(), false).await;
    let uri = sim.orch.uri.clone();
    let good_body = r#"{"model_id":"noop","params":{"prompt":"a"}}"#;
    let tokens = AuthTokens::new(SECRET.to_vec());
    let valid = live::segment_header(&tokens.mint("sess", unix_s()));
    let expired = live::segment_header(&tokens.mint("sess", unix_s() - 31 * 60));
    let mut forged_token = tokens.mint("sess", unix_s());
    forged_token.token[0] ^= 0xff;
    let forged = live::segment_header(&forged_token);

    assert_eq!(raw_start(&uri, "{not json", Some(&valid), "").await.0, 400);
    assert_eq!(
        raw_start(&uri, good_body, Some(&valid), "!!notbase64")
            .await
            .0,
        402
    );
    assert_eq!(
        raw_start(&uri, good_body, None, "").await,
        (403, "missing auth token\n".to_string())
    );
    assert_eq!(
        raw_start(&uri, good_body, Some(&forged), "").await,
        (403, "invalid auth token\n".to_string())
    );
    assert_eq!(
        raw_start(&uri, good_body, Some(&expired), "").await,
        (403, "expired auth token\n".to_string())
    );
    let unknown_model = r#"{"model_id":"no-such-model"}"#;
    assert_eq!(
        raw_start(&uri, unknown_model, Some(&valid), "").await,
        (503, "insufficient capacity\n".to_string())
    );
    assert_eq!(
        sim.orch.sessions_in_use(),
        0,
        "failed starts free their slot"
    );

    let (status, body) = raw_start(&uri, good_body, Some(&valid), "").await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let mid = answer["manifest_id"].as_str().unwrap().to_string();
    assert_eq!(mid.len(), 8);
    assert!(mid.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        answer["publish_url"],
        format!("{uri}/ai/trickle/{mid}"),
        "absolute URLs under the service URI"
    );
    for (field, suffix) in [
        ("subscribe_url", "-out"),
        ("control_url", "-control"),
        ("events_url", "-events"),
    ] {
        assert_eq!(answer[field], format!("{uri}/ai/trickle/{mid}{suffix}"));
    }
    for suffix in ["", "-out", "-control", "-events"] {
        assert!(sim.orch.trickle().channel_exists(&format!("{mid}{suffix}")));
    }
    assert_eq!(sim.orch.sessions_in_use(), 1);
    // The only slot is taken: capacity is checked before credentials, as go-livepeer does.
    assert_eq!(raw_start(&uri, good_body, None, "").await.0, 503);
    sim.shutdown().await;

    // A profile refusing every start with 500 answers after the credential checks.
    let failing = Profile {
        start_status: Some(500),
        ..Profile::default()
    };
    let sim = Sim::start(failing, true).await;
    let uri = sim.orch.uri.clone();
    assert_eq!(raw_start(&uri, good_body, None, "").await.0, 403);
    let (status, body) = raw_start(&uri, good_body, Some(&valid), "").await;
    assert_eq!(status, 500);
    assert!(body.contains("failed to start"), "{body}");
    assert_eq!(sim.orch.sessions_in_use(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn media_passes_through_with_same_pts_and_injected_latency() {
    const LATENCY_MS: u64 = 60;
    let profile = Profile {
        latency_ms: LATENCY_MS,
        capacity: 1,
        ..Profile::default()
    };
    let sim = Sim::start(profile, false).await;
    let urls = sim.start_job("noop").await.unwrap();
    let origin = Instant::now();
    let (frames, mut frames_read) = tokio::sync::watch::channel(0);
    let output = tokio::spawn(collect_output(urls.subscribe_url.clone(), origin, frames));

    let aus = fixture_aus();
    let sent = Mutex::new(HashMap::new());
    let mut publisher = TricklePublisher::new(http_client(), urls.publish_url.clone());
    // The scheduling noise of this run is measured beside the stream, and the latency's
    // tolerance is derived from it rather than fixed (a loaded machine delays every timer).
    let ((), noise_ms) = lvt_testkit::noise::with_scheduling_noise(async {
        publish_clip(&mut publisher, &aus, origin, &sent)
            .await
            .unwrap();
        // Let the last frame come out before ending the stream.
        wait_for_frames(&mut frames_read, 60).await;
    })
    .await;
    publisher.close().await;
    let output = timeout(WAIT, output).await.unwrap().unwrap();
    timeout(WAIT, sim.orch.wait_sessions_in_use(0))
        .await
        .unwrap();

    let sent = sent.into_inner().unwrap();
    assert_eq!(output.frames.len(), 60, "every frame comes out");
    let pts: Vec<u64> = output.frames.iter().map(|f| f.0).collect();
    let expected: Vec<u64> = (0..60).map(pts_of).collect();
    assert_eq!(pts, expected, "PTS kept and in order");
    assert!(
        output.frames.iter().all(|f| f.1.is_none()),
        "DTS kept (absent)"
    );
    assert!(output.segment_starts_on_key.iter().all(|k| *k));
    assert_eq!(
        output.segment_starts_on_key.len(),
        4,
        "one output segment per GOP"
    );

    let mut e2e_ms: Vec<f64> = output
        .frames
        .iter()
        .map(|(pts, _, _, first_byte_us)| (*first_byte_us as f64 - sent[pts] as f64) / 1000.0)
        .collect();
    e2e_ms.sort_by(f64::total_cmp);
    let p50 = e2e_ms[e2e_ms.len() / 2];
    eprintln!(
        "e2e ms: min {:.2} p50 {p50:.2} max {:.2}",
        e2e_ms[0],
        e2e_ms[e2e_ms.len() - 1]
    );
    let tolerance_ms = 5.0 + 2.0 * noise_ms;
    assert!(
        (p50 - LATENCY_MS as f64).abs() <= tolerance_ms,
        "p50 e2e {p50:.1} ms for injected {LATENCY_MS} ms, tolerance {tolerance_ms:.1} ms from \
         the run's scheduling noise (p99 timer lateness {noise_ms:.1} ms); all: {e2e_ms:?}"
    );
    assert!(
        e2e_ms[0] >= LATENCY_MS as f64 - 1.0,
        "never early: {e2e_ms:?}"
    );

    let (codec, probe_pts) = ffprobe_packets(&output.bytes);
    assert_eq!(codec, "h264");
    let expected_s: Vec<f64> = expected.iter().map(|p| *p as f64 / 90_000.0).collect();
    assert_eq!(probe_pts.len(), 60);
    for (got, want) in probe_pts.iter().zip(&expected_s) {
        assert!((got - want).abs() < 1e-6, "ffprobe pts {got} vs {want}");
    }
    assert!(
        !sim.orch.trickle().channel_exists(&urls.manifest_id),
        "channels deleted"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn decimated_output_keeps_rate_and_starts_segments_on_idr() {
    let profile = Profile {
        latency_ms: 20,
        fps: Some(15),
        ..Profile::default()
    };
    let sim = Sim::start(profile, true).await;
    let urls = sim.start_job("streamdiffusion").await.unwrap();
    let origin = Instant::now();
    let (frames, mut frames_read) = tokio::sync::watch::channel(0);
    let output = tokio::spawn(collect_output(urls.subscribe_url.clone(), origin, frames));
    let sent = Mutex::new(HashMap::new());
    let mut publisher = TricklePublisher::new(http_client(), urls.publish_url.clone());
    publish_clip(&mut publisher, &fixture_aus(), origin, &sent)
        .await
        .unwrap();
    wait_for_frames(&mut frames_read, 30).await;
    publisher.close().await;
    let output = timeout(WAIT, output).await.unwrap().unwrap();
    assert_eq!(output.frames.len(), 30, "30 fps in, 15 fps out over 2 s");
    assert!(output.segment_starts_on_key.iter().all(|k| *k));
    let (codec, probe_pts) = ffprobe_packets(&output.bytes);
    assert_eq!((codec.as_str(), probe_pts.len()), ("h264", 30));
    sim.shutdown().await;
}

#[tokio::test]
async fn events_report_traces_status_and_params_updates() {
    let profile = Profile {
        latency_ms: 10,
        startup_ms: 200,
        ..Profile::default()
    };
    let sim = Sim::start(profile, true).await;
    let urls = sim.start_job("noop").await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let notify = Arc::new(tokio::sync::Notify::new());
    let events = tokio::spawn(collect_events(
        urls.events_url.clone(),
        seen.clone(),
        notify.clone(),
    ));
    let origin = Instant::now();
    let sent = Mutex::new(HashMap::new());
    let mut publisher = TricklePublisher::new(http_client(), urls.publish_url.clone());
    let aus = fixture_aus();
    publish_clip(&mut publisher, &aus[..30], origin, &sent)
        .await
        .unwrap();

    let is = |kind: &'static str| move |d: &Value| d["event"]["type"] == kind;
    let request = wait_event(&seen, &notify, is("runner_receive_stream_request")).await;
    assert!(request["event"]["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    let loading = wait_event(&seen, &notify, is("status")).await;
    assert_eq!(
        loading["event"]["state"], "LOADING",
        "the first status is sent while loading"
    );
    assert_eq!(
        loading["event"]["inference_status"]["last_params"],
        json!({"prompt": "a"})
    );
    let ingest = wait_event(&seen, &notify, is("runner_receive_first_ingest_segment")).await;
    assert_eq!(ingest["queue_event_type"], "stream_trace");
    wait_event(&seen, &notify, is("runner_send_first_processed_segment")).await;
    let online = wait_event(&seen, &notify, |d| {
        d["event"]["type"] == "status"
            && d["event"]["state"] == "ONLINE"
            && d["event"]["input_status"]["fps"].as_f64().unwrap_or(0.0) > 20.0
            && d["event"]["inference_status"]["fps"]
                .as_f64()
                .unwrap_or(0.0)
                > 20.0
    })
    .await;
    let status = &online["event"];
    assert_eq!(online["queue_event_type"], "ai_stream_events");
    assert_eq!(status["pipeline"], "noop");
    assert!(status["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(status["inference_status"]["fps"].as_f64().unwrap() > 20.0);
    assert_eq!(
        status["inference_status"]["last_params_hash"],
        lvt_wire::live::params::params_hash(&json!({"prompt": "a"})),
        "initial params from the job request"
    );

    // A keepalive changes nothing; a params update is reported with its hash.
    let mut control = TricklePublisher::new(http_client(), urls.control_url.clone());
    control
        .publish(Bytes::from_static(br#"{"keep":"alive"}"#))
        .await
        .unwrap();
    let params = json!({"prompt": "b", "strength": 0.5, "nested": {"z": 1, "a": [true]}});
    control
        .publish(Bytes::from(params.to_string()))
        .await
        .unwrap();
    let hash = lvt_wire::live::params::params_hash(&params);
    let update = wait_event(&seen, &notify, |d| {
        d["event"]["inference_status"]["last_params_hash"] == hash.as_str()
    })
    .await;
    assert_eq!(update["event"]["inference_status"]["last_params"], params);
    assert!(
        update["event"]["inference_status"]["last_params_update_time"]
            .as_i64()
            .unwrap()
            > 1_600_000_000_000
    );

    publisher.close().await;
    timeout(WAIT, events).await.unwrap().unwrap();
    timeout(WAIT, sim.orch.wait_sessions_in_use(0))
        .await
        .unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn crash_deletes_channels_after_an_error_event() {
    let profile = Profile {
        latency_ms: 10,
        crash_after_s: Some(0.5),
        ..Profile::default()
    };
    let sim = Sim::start(profile, false).await;
    let urls = sim.start_job("noop").await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let notify = Arc::new(tokio::sync::Notify::new());
    let events = tokio::spawn(collect_events(
        urls.events_url.clone(),
        seen.clone(),
        notify.clone(),
    ));
    let origin = Instant::now();
    let sent = Mutex::new(HashMap::new());
    let mut publisher = TricklePublisher::new(http_client(), urls.publish_url.clone());
    let aus = fixture_aus();
    let error = timeout(WAIT, async {
        loop {
            if let Err(e) = publish_clip(&mut publisher, &aus, origin, &sent).await {
                return e;
            }
        }
    })
    .await
    .expect("the publisher notices the crash");
    assert!(matches!(error, TrickleError::ChannelGone), "{error:?}");
    let error = wait_event(&seen, &notify, |d| d["event"]["type"] == "error").await;
    assert!(
        error["event"]["message"]
            .as_str()
            .unwrap()
            .contains("crash")
    );
    timeout(WAIT, events).await.unwrap().unwrap();
    let docs = seen.lock().unwrap().clone();
    let last_status = docs
        .iter()
        .rev()
        .find(|d| d["event"]["type"] == "status")
        .unwrap();
    assert_eq!(last_status["event"]["state"], "ERROR");
    timeout(WAIT, sim.orch.wait_sessions_in_use(0))
        .await
        .unwrap();
    for suffix in ["", "-out", "-control", "-events"] {
        assert!(
            !sim.orch
                .trickle()
                .channel_exists(&format!("{}{suffix}", urls.manifest_id))
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn session_end_frees_capacity() {
    let profile = Profile {
        capacity: 1,
        ..Profile::default()
    };
    let sim = Sim::start_with(profile, true, |cfg| {
        cfg.idle_timeout = Duration::from_millis(400);
        cfg.sweep_interval = Duration::from_millis(100);
    })
    .await;
    let first = sim.start_job("noop").await.unwrap();
    assert_eq!(sim.start_job("noop").await.unwrap_err().status(), Some(503));
    let info = sim.info(None).await.unwrap();
    let models = &info
        .capabilities
        .unwrap()
        .constraints
        .unwrap()
        .per_capability[&CAPABILITY_LIVE_VIDEO_TO_VIDEO]
        .models;
    assert_eq!(
        (models["noop"].capacity, models["noop"].capacity_in_use),
        (0, 1)
    );

    // The gateway ends the stream with DELETE: the slot comes back.
    let publisher = TricklePublisher::new(http_client(), first.publish_url.clone());
    publisher.close().await;
    timeout(WAIT, sim.orch.wait_sessions_in_use(0))
        .await
        .unwrap();
    assert!(!sim.orch.trickle().channel_exists(&first.manifest_id));

    // A session whose input stays silent ends at the idle timeout.
    let second = sim.start_job("noop").await.unwrap();
    assert_ne!(second.manifest_id, first.manifest_id);
    assert_eq!(sim.orch.sessions_in_use(), 1);
    timeout(WAIT, sim.orch.wait_sessions_in_use(0))
        .await
        .unwrap();
    assert!(!sim.orch.trickle().channel_exists(&second.manifest_id));
    sim.start_job("noop").await.unwrap();
    sim.shutdown().await;
}

/// The first status event of a new session: `LOADING` while the model loads, `ONLINE` when it
/// needs no load time.
async fn first_state(urls: &JobUrls) -> Value {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let notify = Arc::new(tokio::sync::Notify::new());
    let events = tokio::spawn(collect_events(
        urls.events_url.clone(),
        seen.clone(),
        notify.clone(),
    ));
    let status = wait_event(&seen, &notify, |d| d["event"]["type"] == "status").await;
    events.abort();
    status["event"]["state"].clone()
}

#[tokio::test]
async fn cold_start_loads_longer_and_idle_makes_the_model_cold_again() {
    // No warm load time at all, so a session's first status tells which kind of start it got.
    let profile = Profile {
        capacity: 2,
        startup_ms: 0,
        cold_startup_ms: Some(300),
        ..Profile::default()
    };
    let sim = Sim::start(profile.clone(), true).await;
    assert_eq!(
        sim.orch.next_start(),
        lvt_sim::StartKind::Cold,
        "nothing ran yet"
    );
    let first = sim.start_job("noop").await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let notify = Arc::new(tokio::sync::Notify::new());
    let events = tokio::spawn(collect_events(
        first.events_url.clone(),
        seen.clone(),
        notify.clone(),
    ));
    let status = |d: &Value| d["event"]["type"] == "status";
    let loading = wait_event(&seen, &notify, status).await;
    assert_eq!(loading["event"]["state"], "LOADING", "the cold load");
    assert_eq!(
        sim.orch.next_start(),
        lvt_sim::StartKind::Warm,
        "one is running"
    );
    // A session starting during the cold load would wait for it, so let it finish first.
    wait_event(&seen, &notify, |d| {
        status(d) && d["event"]["state"] == "ONLINE"
    })
    .await;
    events.abort();
    TricklePublisher::new(http_client(), first.publish_url.clone())
        .close()
        .await;
    timeout(WAIT, sim.orch.wait_sessions_in_use(0))
        .await
        .unwrap();
    // Idle for far less than the 60 s window: the model is still loaded.
    assert_eq!(sim.orch.next_start(), lvt_sim::StartKind::Warm);
    let second = sim.start_job("noop").await.unwrap();
    assert_eq!(first_state(&second).await, "ONLINE");
    sim.shutdown().await;

    // With a zero idle window the model unloads as soon as the last session ends.
    let sim = Sim::start(
        Profile {
            cold_after_idle_s: 0,
            ..profile
        },
        true,
    )
    .await;
    let first = sim.start_job("noop").await.unwrap();
    assert_eq!(sim.orch.next_start(), lvt_sim::StartKind::Warm);
    TricklePublisher::new(http_client(), first.publish_url.clone())
        .close()
        .await;
    timeout(WAIT, sim.orch.wait_sessions_in_use(0))
        .await
        .unwrap();
    assert_eq!(sim.orch.next_start(), lvt_sim::StartKind::Cold);
    let second = sim.start_job("noop").await.unwrap();
    assert_eq!(first_state(&second).await, "LOADING");
    sim.shutdown().await;
}

#[tokio::test]
async fn fleet_starts_builtin_orchestrators_with_distinct_identities() {
    let stop = CancellationToken::new();
    let mut fleet = FleetConfig::builtin();
    fleet.plaintext = true;
    let running = lvt_sim::start_fleet(
        &fleet,
        "127.0.0.1".parse().unwrap(),
        stop.clone().cancelled_owned(),
    )
    .await
    .unwrap();
    assert_eq!(running.len(), 4);
    let text = lvt_sim::listing_text(&running);
    assert_eq!(text.lines().count(), 4);
    for orch in &running {
        assert!(text.contains(&orch.uri) && text.contains(&orch.eth_address));
    }
    let listing = lvt_sim::listing_json(&running);
    assert_eq!(listing.as_array().unwrap().len(), 4);
    assert_eq!(listing[3]["gpu"]["name"], "Tesla T4");
    let ports: std::collections::HashSet<u16> =
        running.iter().map(|o| o.local_addr.port()).collect();
    assert_eq!(ports.len(), 4);

    let busy = running.iter().find(|o| o.name == "busy").unwrap();
    let err = get_info(&busy.uri, live_request(GATEWAY, Some("noop")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("OrchestratorCapped"), "{err}");
    let good = running.iter().find(|o| o.name == "good").unwrap();
    let info = get_info(&good.uri, live_request(GATEWAY, None))
        .await
        .unwrap();
    assert_eq!(
        info.hardware[0].gpu_info["0"].name,
        "NVIDIA GeForce RTX 4090"
    );

    stop.cancel();
    for orch in running {
        timeout(WAIT, orch.join()).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn options_start_one_orchestrator_from_a_profile_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(
        &path,
        "[profile]\nlatency_ms = 25\ncapacity = 3\nseed = 5\n",
    )
    .unwrap();
    let opts = lvt_sim::SimOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        profile: Some(path.display().to_string()),
        plaintext: true,
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let running = lvt_sim::start_from_options(&opts, stop.clone().cancelled_owned())
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].name, "edge");
    assert!(running[0].uri.starts_with("http://127.0.0.1:"));
    let info = get_info(&running[0].uri, live_request(GATEWAY, None))
        .await
        .unwrap();
    let models = &info
        .capabilities
        .unwrap()
        .constraints
        .unwrap()
        .per_capability[&CAPABILITY_LIVE_VIDEO_TO_VIDEO]
        .models;
    assert_eq!(models["noop"].capacity, 3);

    let bad = lvt_sim::SimOptions {
        profile: Some("no-such-profile".into()),
        ..Default::default()
    };
    let err = lvt_sim::start_from_options(&bad, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, lvt_sim::SimError::UnknownProfile { name } if name == "no-such-profile"),
        "{err}"
    );

    stop.cancel();
    for orch in running {
        timeout(WAIT, orch.join()).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn same_seed_gives_same_manifest_ids() {
    let mut mids = Vec::new();
    for _ in 0..2 {
        let sim = Sim::start(
            Profile {
                capacity: 3,
                seed: 99,
                ..Profile::default()
            },
            true,
        )
        .await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(sim.start_job("noop").await.unwrap().manifest_id);
        }
        mids.push(ids);
        sim.shutdown().await;
    }
    assert_eq!(mids[0], mids[1]);
}

#[tokio::test]
async fn options_start_a_fleet_from_a_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sim/fleet.toml");
    let opts = lvt_sim::SimOptions {
        config: Some(path.clone()),
        ..Default::default()
    };
    let stop = CancellationToken::new();
    let running = lvt_sim::start_from_options(&opts, stop.clone().cancelled_owned())
        .await
        .unwrap();
    let names: Vec<&str> = running.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["steady", "laggy"]);
    assert!(
        running
            .iter()
            .all(|o| o.uri.starts_with("http://127.0.0.1:"))
    );
    assert_eq!(running[1].profile_label, "inline");
    assert_eq!(
        running[1].eth_address.to_lowercase(),
        "0x00000000000000000000000000000000000000a1"
    );
    let info = get_info(&running[1].uri, live_request(GATEWAY, None))
        .await
        .unwrap();
    assert_eq!(info.hardware[0].gpu_info["0"].name, "Tesla T4");

    let mixed = lvt_sim::SimOptions {
        config: Some(path),
        profile: Some("good".into()),
        ..Default::default()
    };
    assert!(matches!(
        lvt_sim::start_from_options(&mixed, std::future::pending()).await,
        Err(lvt_sim::SimError::ProfileWithFleet)
    ));
    stop.cancel();
    for orch in running {
        timeout(WAIT, orch.join()).await.unwrap().unwrap();
    }
}
