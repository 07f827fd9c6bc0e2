//! `lvt sim gateway` over real HTTP and real WebRTC on loopback: go-livepeer's status codes,
//! headers and bodies, and media through WHIP in and WHEP out with the runner's latency.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use lvt_sim::gateway::{GatewayConfig, RunningGateway, start_gateway};
use lvt_webrtc::{
    CloseReason, ExchangeError, Peer, PeerEvent, PeerHandle, PeerOptions, Role, exchange,
};
use tokio::net::TcpListener;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn gateway(config: GatewayConfig) -> RunningGateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_gateway(config, listener, std::future::pending())
        .await
        .unwrap()
}

/// A synthetic access unit: one NAL of type 5 (IDR) or 1, with a payload free of start codes.
fn access_unit(index: u32, keyframe: bool) -> Bytes {
    let mut au = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
    au.extend(index.to_be_bytes().iter().map(|b| b | 0x10));
    au.extend(std::iter::repeat_n(0x5a, 3000));
    Bytes::from(au)
}

async fn wait_connected(peer: &mut PeerHandle) -> Instant {
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = peer.events.recv() => match event {
                Some(PeerEvent::Connected(at)) => return at,
                Some(PeerEvent::Closed(reason)) => panic!("closed before connecting: {reason:?}"),
                None => panic!("peer gone"),
                Some(_) => {}
            },
            _ = &mut deadline => panic!("not connected within 10 s"),
        }
    }
}

/// Publishes over WHIP to `stream` and returns the peer and the answer.
async fn publish(
    client: &reqwest::Client,
    gw: &RunningGateway,
    query: &str,
) -> (PeerHandle, lvt_webrtc::Answer) {
    let (pending, offer) = Peer::offer(LOCAL, Role::Publish).await.unwrap();
    let url = format!("{}/live/video-to-video/s1/whip?{query}", gw.url);
    let answer = exchange(client, &url, &offer, &HeaderMap::new())
        .await
        .unwrap();
    let peer = pending.accept(&answer.sdp).unwrap();
    (peer.spawn(PeerOptions::default()), answer)
}

async fn play(client: &reqwest::Client, url: &str) -> Result<PeerHandle, ExchangeError> {
    let (pending, offer) = Peer::offer(LOCAL, Role::Play).await.unwrap();
    let answer = exchange(client, url, &offer, &HeaderMap::new()).await?;
    let peer = pending.accept(&answer.sdp).unwrap();
    Ok(peer.spawn(PeerOptions::default()))
}

/// Posts `body` as `content_type` and returns the status and body.
async fn post(
    client: &reqwest::Client,
    url: String,
    content_type: &str,
    body: &'static str,
) -> (u16, String) {
    let response = client
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    text(response).await
}

async fn text(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn routes_refuse_like_go_livepeer() {
    let gw = gateway(GatewayConfig::default()).await;
    let client = reqwest::Client::new();
    let base = format!("{}/live/video-to-video", gw.url);

    let no_sdp = post(&client, format!("{base}/s1/whip"), "application/json", "{}").await;
    assert_eq!(
        no_sdp,
        (
            415,
            "Unsupported Media Type, expected application/sdp\n".into()
        )
    );
    let head = client.head(format!("{base}/s1/whip")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 405);
    let options = client
        .request(reqwest::Method::OPTIONS, format!("{base}/s1/whip"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status().as_u16(), 204);

    let malformed = post(&client, format!("{base}/s1/whep"), "application/sdp", "v=0").await;
    assert_eq!(malformed, (404, "Malformed stream ID\n".into()));
    let unknown = post(
        &client,
        format!("{base}/nope-out/whep"),
        "application/sdp",
        "v=0",
    )
    .await;
    assert_eq!(unknown, (404, "Stream not found\n".into()));
    let patch = client
        .patch(format!("{base}/nope-out/whep"))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status().as_u16(), 501);

    let status = client
        .get(format!("{base}/id1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(text(status).await, (404, "Stream not found\n".into()));
    let update = client
        .post(format!("{base}/s1/update"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text(update).await, (404, "Stream not found\n".into()));

    let bad_params = post(
        &client,
        format!("{base}/s1/whip?params=notjson"),
        "application/sdp",
        "v=0",
    )
    .await;
    assert_eq!(bad_params, (400, "Invalid pipeline params\n".into()));
}

#[tokio::test]
async fn media_goes_through_with_the_runner_latency() {
    let latency = Duration::from_millis(120);
    let gw = gateway(GatewayConfig {
        latency,
        startup: Duration::from_millis(300),
        viewer_limit: Some(1),
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    let (mut publisher, answer) = publish(&client, &gw, "pipeline=noop&streamId=id1").await;

    // go-livepeer's headers on the 201.
    let location = answer.location.clone().unwrap();
    assert!(
        location.starts_with(&format!("{}//live/video-to-video/s1/whip/", gw.url)),
        "{location}"
    );
    assert!(answer.etag.as_deref().unwrap().starts_with("W/\""));
    let playback = answer.playback_url.clone().unwrap();
    assert!(
        playback.starts_with(&format!("{}/live/video-to-video/s1-", gw.url))
            && playback.ends_with("-out/whep"),
        "{playback}"
    );
    assert!(answer.sdp.contains("profile-level-id=42001f"));

    wait_connected(&mut publisher).await;
    let mut viewer = play(&client, &playback).await.unwrap();
    wait_connected(&mut viewer).await;

    // One viewer allowed: the second is refused with go-livepeer's 429.
    let refused = play(&client, &playback).await.err().unwrap();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(429), "{refused}");

    // 3 s at 30 fps, a keyframe every second; each send time kept by PTS.
    let sender = publisher.sender();
    let sends = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut sent = Vec::new();
        for i in 0..90u32 {
            tokio::time::sleep_until(start + Duration::from_millis(u64::from(i) * 1000 / 30)).await;
            let pts = u64::from(i) * 3000;
            sent.push((pts, Instant::now()));
            sender.send_video(pts, access_unit(i, i % 30 == 0));
        }
        sent
    });
    let mut received = Vec::new();
    let collect = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(collect);
    loop {
        tokio::select! {
            event = viewer.events.recv() => match event {
                Some(PeerEvent::Video { rtp_time, at, data, .. }) => received.push((rtp_time, at, data)),
                Some(PeerEvent::Closed(_)) | None => break,
                Some(_) => {}
            },
            _ = &mut collect => break,
        }
    }
    let sent = sends.await.unwrap();

    // Output starts at a keyframe once the runner is online (after 300 ms of LOADING).
    assert!(!received.is_empty(), "no output frames");
    let first = &received[0];
    assert!(
        lvt_media::h264::contains_idr(&first.2),
        "output starts at a keyframe"
    );
    assert!(received.len() >= 40, "{} frames", received.len());
    // The same bytes come out as went in.
    let index = (first.0 / 3000) as u32;
    assert_eq!(first.2, access_unit(index, true));

    let mut delays: Vec<Duration> = received
        .iter()
        .filter_map(|(pts, at, _)| {
            let (_, sent_at) = sent.iter().find(|(p, _)| p == pts)?;
            Some(at.duration_since(*sent_at))
        })
        .collect();
    delays.sort();
    let p50 = delays[delays.len() / 2];
    assert!(
        p50 >= latency && p50 < latency + Duration::from_millis(60),
        "p50 {p50:?} against {latency:?}"
    );

    // The status route, by stream id: the runner ONLINE and the gateway's ingest figures.
    let status: serde_json::Value = client
        .get(format!("{}/live/video-to-video/id1/status", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "ONLINE");
    assert_eq!(status["pipeline"], "noop");
    assert_eq!(status["gateway_status"]["whep_url"], playback);
    assert!(
        status["gateway_status"]["frames_received"]
            .as_u64()
            .unwrap()
            >= 80
    );

    let update = client
        .post(format!("{}/live/video-to-video/s1/update", gw.url))
        .body(r#"{"prompt":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(update.status().as_u16(), 200);
    let status: serde_json::Value = client
        .get(format!("{}/live/video-to-video/id1/status", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["inference_status"]["last_params"]["prompt"], "x");

    // Closing the ingest ends the stream; the viewer's connection is closed with it.
    publisher.close();
    let (reason, _) = closed_within(&mut viewer, Duration::from_secs(5)).await;
    assert_eq!(reason, CloseReason::Remote);
}

/// Waits for the peer's end and how long it took.
async fn closed_within(peer: &mut PeerHandle, limit: Duration) -> (CloseReason, Duration) {
    let start = Instant::now();
    tokio::time::timeout(limit, async {
        loop {
            match peer.events.recv().await {
                Some(PeerEvent::Closed(reason)) => return (reason, start.elapsed()),
                None => panic!("events ended without Closed"),
                Some(_) => {}
            }
        }
    })
    .await
    .expect("closed in time")
}

#[tokio::test]
async fn an_auth_refusal_closes_the_connection_after_the_201() {
    let gw = gateway(GatewayConfig {
        refuse_auth: true,
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    let (mut publisher, answer) = publish(&client, &gw, "streamId=id2").await;
    assert!(answer.playback_url.is_some(), "the 201 came first");
    let connected = wait_connected(&mut publisher).await;
    let (reason, _) = closed_within(&mut publisher, Duration::from_secs(5)).await;
    assert_eq!(reason, CloseReason::Remote);
    assert!(connected.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn ice_that_never_connects_ends_as_disconnected() {
    let gw = gateway(GatewayConfig {
        ice_never: true,
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    let (mut publisher, _) = publish(&client, &gw, "").await;
    let (reason, took) = closed_within(&mut publisher, Duration::from_secs(60)).await;
    assert_eq!(reason, CloseReason::Disconnected, "after {took:?}");
}

/// A webhook that records every request it gets and answers `status`.
async fn auth_webhook(
    status: u16,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(HeaderMap, serde_json::Value)>>>,
) {
    use axum::extract::State;
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(HeaderMap, serde_json::Value)>>>;
    let seen: Seen = Default::default();
    let app = axum::Router::new()
        .route(
            "/auth",
            axum::routing::post(
                move |State(seen): State<Seen>, headers: HeaderMap, body: bytes::Bytes| async move {
                    let doc = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    seen.lock().unwrap().push((headers, doc));
                    (
                        http::StatusCode::from_u16(status).unwrap(),
                        r#"{"stream_id":""}"#,
                    )
                },
            ),
        )
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/auth", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn the_auth_webhook_is_asked_in_go_livepeers_shape_and_a_refusal_closes() {
    // Allowed: the stream flows, and the webhook saw go-livepeer's AIAuthRequest.
    let (allow_url, seen) = auth_webhook(200).await;
    let gw = gateway(GatewayConfig {
        auth_webhook: Some(allow_url),
        auth_api_key: "gw-key".into(),
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    let (mut publisher, answer) =
        publish(&client, &gw, "streamId=id7&pipeline=noop&params=%7B%7D").await;
    wait_connected(&mut publisher).await;
    // Not closed: allowed streams live on.
    let still_open = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match publisher.events.recv().await {
                Some(PeerEvent::Closed(reason)) => return Some(reason),
                None => return None,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(
        still_open.is_err(),
        "an allowed stream was closed: {still_open:?}"
    );
    let (headers, doc) = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["x-api-key"], "gw-key");
    assert_eq!(headers["authorization"], "gw-key");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(doc["stream"], "s1");
    assert_eq!(doc["stream_key"], "s1");
    assert_eq!(doc["type"], "livepeer-whip");
    // Go's url.Values.Encode: keys sorted, form-encoded.
    assert_eq!(
        doc["query_params"],
        "params=%7B%7D&pipeline=noop&streamId=id7"
    );
    assert_eq!(
        doc["whep_url"],
        answer.playback_url.clone().unwrap().as_str()
    );
    let host = gw.url.trim_start_matches("http://");
    assert_eq!(doc["gateway_host"], host);
    assert_eq!(
        doc["status_url"],
        format!("https://{host}/live/video-to-video/id7//status").as_str()
    );
    assert_eq!(
        doc["update_url"],
        format!("https://{host}/live/video-to-video/s1//update").as_str()
    );
    publisher.close();

    // Refused (403): the 201 came, then the connection is closed by the gateway.
    let (deny_url, denied) = auth_webhook(403).await;
    let gw = gateway(GatewayConfig {
        auth_webhook: Some(deny_url),
        ..Default::default()
    })
    .await;
    let (mut publisher, answer) = publish(&client, &gw, "streamId=id8").await;
    assert!(answer.playback_url.is_some(), "the 201 came first");
    wait_connected(&mut publisher).await;
    let (reason, _) = closed_within(&mut publisher, Duration::from_secs(5)).await;
    assert_eq!(reason, CloseReason::Remote);
    assert_eq!(denied.lock().unwrap().len(), 1);

    // A webhook nobody answers at is a refusal too.
    let gw = gateway(GatewayConfig {
        auth_webhook: Some("http://127.0.0.1:9/auth".into()),
        ..Default::default()
    })
    .await;
    let (mut publisher, _) = publish(&client, &gw, "streamId=id9").await;
    wait_connected(&mut publisher).await;
    let (reason, _) = closed_within(&mut publisher, Duration::from_secs(5)).await;
    assert_eq!(reason, CloseReason::Remote);
}

/// A runner that keeps what the gateway hands it: each stream's inputs, in order, with when
/// they came.
struct Capture(tokio::sync::mpsc::UnboundedSender<(Instant, lvt_sim::gateway::RunnerInput)>);

impl lvt_sim::gateway::Runner for Capture {
    fn start(&self, _stream: lvt_sim::gateway::StreamStart) -> lvt_sim::gateway::RunnerLink {
        let (link, mut inputs, output) = lvt_sim::gateway::RunnerLink::channel();
        let kept = self.0.clone();
        tokio::spawn(async move {
            // The output stays open while the stream lasts (a runner gone ends the stream).
            let _output = output;
            while let Some(input) = inputs.recv().await {
                let _ = kept.send((Instant::now(), input));
            }
        });
        link
    }
}

/// Publishes 2 s at 30 fps (a keyframe a second) with 20 ms Opus packets sent as lvt's
/// publisher sends them (after each frame, the audio up to the next), the audio starting
/// `audio_after` into the stream (none without it: the offer still has its audio track);
/// returns when the first frame was sent and what the runner was handed.
async fn publish_with_audio(
    audio_after: Option<Duration>,
) -> (Instant, Vec<(Instant, lvt_sim::gateway::RunnerInput)>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = lvt_sim::gateway::start_gateway_with(
        GatewayConfig::default(),
        std::sync::Arc::new(Capture(tx)),
        listener,
        std::future::pending(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let (mut publisher, _) = publish(&client, &gw, "pipeline=noop&streamId=a1").await;
    wait_connected(&mut publisher).await;
    let sender = publisher.sender();
    let start = tokio::time::Instant::now();
    let silence = Bytes::from_static(&[0xf8, 0xff, 0xfe]);
    let first_sample = audio_after.map_or(u64::MAX, |after| after.as_millis() as u64 * 48);
    let mut samples = first_sample;
    for i in 0..60u64 {
        tokio::time::sleep_until(start + Duration::from_millis(i * 1000 / 30)).await;
        sender.send_video(i * 3000, access_unit(i as u32, i % 30 == 0));
        while samples < (i + 1) * 48_000 / 30 {
            if samples >= first_sample {
                sender.send_audio(samples, silence.clone());
            }
            samples += 960;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    publisher.close();
    let mut got = Vec::new();
    while let Ok(Some(input)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        got.push(input);
    }
    (start.into_std(), got)
}

/// The PTS of the video handed to the runner, in order.
fn video_pts(got: &[(Instant, lvt_sim::gateway::RunnerInput)]) -> Vec<u64> {
    got.iter()
        .filter_map(|(_, i)| match i {
            lvt_sim::gateway::RunnerInput::Video { pts, .. } => Some(*pts),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn audio_is_handed_on_on_the_video_timeline_once_video_has_started() {
    use lvt_sim::gateway::RunnerInput;
    let (start, got) = publish_with_audio(Some(Duration::ZERO)).await;
    // The audio track came with the video: nothing waited for it (the gather wait would be
    // 500 ms; the margin below it is for a loaded machine).
    let waited = got[0].0 - start;
    assert!(
        waited < Duration::from_millis(400),
        "first input after {waited:?}"
    );
    let video = video_pts(&got);
    let audio: Vec<u64> = got
        .iter()
        .filter_map(|(_, i)| match i {
            RunnerInput::Audio { pts, data } => {
                assert_eq!(&data[..], &[0xf8, 0xff, 0xfe], "the packet as sent");
                Some(*pts)
            }
            _ => None,
        })
        .collect();
    // Video starts the timeline at 0, whatever its RTP start, and keeps its own steps.
    assert_eq!(video, (0..60).map(|i| i * 3000).collect::<Vec<_>>());
    // Nothing of the audio comes before the first (key)frame.
    assert!(matches!(got[0].1, RunnerInput::Video { pts: 0, .. }));
    // The audio follows on the same timeline: each packet at its sample time (90 kHz) plus
    // the skew between the first audio packet's arrival and the first frame's (the audio
    // joins the timeline at the wall time since the video's last packet, as go-livepeer's
    // decoder does), and 20 ms (1,800) apart. The packets are sent back to back, so the skew
    // is a few milliseconds on a quiet machine; a loaded one (CI runs tests in parallel on 2
    // cores) has shown 35 ms. The clock's arithmetic at set arrival times is unit-tested in
    // the gateway's clock module.
    assert!(audio.len() >= 95, "{} audio packets", audio.len());
    assert!(audio.windows(2).all(|w| w[1] - w[0] == 1800), "{audio:?}");
    let skew = audio[0] as i64; // the first packet's true time is 0
    assert!(
        (0..27_000).contains(&skew),
        "audio starts {skew} (90 kHz) off the video"
    );
}

#[tokio::test]
async fn audio_that_starts_after_the_gather_timeout_is_not_segmented() {
    use lvt_sim::gateway::RunnerInput;
    // go-livepeer waits 500 ms after the video track for audio; a track that comes later is
    // not taken into the stream.
    let (_, got) = publish_with_audio(Some(Duration::from_millis(800))).await;
    assert!(
        got.iter()
            .any(|(_, i)| matches!(i, RunnerInput::Video { .. }))
    );
    assert!(
        !got.iter()
            .any(|(_, i)| matches!(i, RunnerInput::Audio { .. })),
        "late audio was handed on"
    );
}

#[tokio::test]
async fn an_offered_audio_track_that_never_comes_holds_the_video_for_the_gather_timeout() {
    // go-livepeer waits up to 500 ms after the video track for the audio the offer announced;
    // the video that came meanwhile is handed on then, none of it lost.
    let (start, got) = publish_with_audio(None).await;
    let waited = got[0].0 - start;
    assert!(
        waited >= Duration::from_millis(490) && waited < Duration::from_millis(900),
        "first input after {waited:?}"
    );
    let video = video_pts(&got);
    assert_eq!(video, (0..60).map(|i| i * 3000).collect::<Vec<_>>());
}
