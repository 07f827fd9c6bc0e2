//! webrtc-rs (0.21, the async layer over the sans-IO `rtc` crate) load loop:
//! N sessions, each a publisher (offerer, sendonly H.264 via
//! `TrackLocalStaticSample`) and a player (answerer; recvonly since it has no
//! track) as two `PeerConnection`s in this process, each bound to its own UDP
//! socket on 127.0.0.1 (`with_udp_addrs`; the crate has no shared UDP mux).
//! Full ICE gathering: each side waits for gathering Complete, then the SDP
//! (host candidates included) is passed on as a string. The publisher calls
//! `write_sample` with whole Annex-B access units; the player drains
//! `TrackRemote::poll`, depacketizes every RTP packet with `H264Packet` and
//! counts a frame at each marker bit whose packets arrived without a sequence
//! gap. (rtc's `SampleBuilder` would do the same but preallocates two
//! 65,536-slot arrays per track, which would dominate the RSS figure.)

#[path = "../harness.rs"]
mod harness;

use bytes::Bytes;
use harness::*;
use rtc::interceptor::Registry;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCPeerConnectionState,
};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    Setup,
    Run,
    Stop,
}

/// The only codec on both sides: H.264 constrained baseline, packetization-mode=1.
fn h264_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                .to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 102,
        ..Default::default()
    }
}

/// One connection's signals: gathering complete and connected.
struct Handler {
    gathered: mpsc::Sender<()>,
    connected: mpsc::Sender<Instant>,
    /// Player only: where to count received frames.
    received: Option<Arc<AtomicU64>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            let _ = self.connected.try_send(Instant::now());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(received) = self.received.clone() else {
            return;
        };
        tokio::spawn(async move {
            let mut depack = H264Packet::default();
            let mut frame: Vec<u8> = Vec::with_capacity(64 * 1024);
            let mut next_seq: Option<u16> = None;
            let mut intact = true; // no gap since the current frame began
            while let Some(evt) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(pkt) = evt else {
                    continue;
                };
                let seq = pkt.header.sequence_number;
                if next_seq.is_some_and(|s| s != seq) {
                    intact = false;
                }
                next_seq = Some(seq.wrapping_add(1));
                match depack.depacketize(&pkt.payload) {
                    Ok(nalus) => frame.extend_from_slice(&nalus),
                    Err(_) => intact = false,
                }
                if pkt.header.marker {
                    if intact && !frame.is_empty() {
                        received.fetch_add(1, Relaxed);
                    }
                    frame.clear();
                    intact = true;
                }
            }
        });
    }
}

async fn new_pc(handler: Handler) -> impl PeerConnection {
    let mut media = MediaEngine::default();
    media
        .register_codec(h264_codec(), RtpCodecKind::Video)
        .unwrap();
    // NACK, RTCP reports, TWCC etc., as a real client would run them.
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    PeerConnectionBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .unwrap()
}

/// Set up one session; returns the publisher's track, ssrc and payload type
/// plus the offer→both-connected time. Both connections are returned so the
/// caller keeps them alive.
async fn session(
    received: Arc<AtomicU64>,
) -> (
    impl PeerConnection,
    impl PeerConnection,
    Arc<TrackLocalStaticSample>,
    u32,
    u8,
    Duration,
) {
    let (pg_tx, mut pg_rx) = mpsc::channel(1);
    let (pc_tx, mut pc_rx) = mpsc::channel(1);
    let (ag_tx, mut ag_rx) = mpsc::channel(1);
    let (ac_tx, mut ac_rx) = mpsc::channel(1);
    let publisher = new_pc(Handler {
        gathered: pg_tx,
        connected: pc_tx,
        received: None,
    })
    .await;
    let player = new_pc(Handler {
        gathered: ag_tx,
        connected: ac_tx,
        received: Some(received),
    })
    .await;

    let ssrc = rand_ssrc();
    let track = Arc::new(
        TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "lvt".to_owned(),
                "video".to_owned(),
                "video".to_owned(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: h264_codec().rtp_codec,
                    ..Default::default()
                }],
            ),
        )
        .unwrap(),
    );
    let transceiver = publisher
        .add_transceiver_from_track(
            Arc::clone(&track) as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                ..Default::default()
            }),
        )
        .await
        .unwrap();

    let t0 = Instant::now();
    // Offer with full (non-trickle) ICE gathering, passed on as a string.
    let offer = publisher.create_offer(None).await.unwrap();
    publisher.set_local_description(offer).await.unwrap();
    pg_rx.recv().await;
    let offer_sdp = publisher.local_description().await.unwrap().sdp;

    player
        .set_remote_description(RTCSessionDescription::offer(offer_sdp).unwrap())
        .await
        .unwrap();
    let answer = player.create_answer(None).await.unwrap();
    player.set_local_description(answer).await.unwrap();
    ag_rx.recv().await;
    let answer_sdp = player.local_description().await.unwrap().sdp;
    publisher
        .set_remote_description(RTCSessionDescription::answer(answer_sdp).unwrap())
        .await
        .unwrap();

    let a = pc_rx.recv().await.unwrap();
    let b = ac_rx.recv().await.unwrap();
    let setup = a.max(b) - t0;

    // write_sample needs the negotiated payload type of the sender's codec.
    let sender = transceiver.sender().await.unwrap().unwrap();
    let pt = sender.get_parameters().await.unwrap().rtp_parameters.codecs[0].payload_type;
    (publisher, player, track, ssrc, pt, setup)
}

fn rand_ssrc() -> u32 {
    // Distinct enough for a benchmark: nanos of now mixed with a counter.
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.subsec_nanos() as u64 ^ n.wrapping_mul(0x9E37_79B9)) as u32 | 1
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let aus: Arc<Vec<Bytes>> = Arc::new(
        load_access_units(&args.clip)
            .into_iter()
            .map(Bytes::from)
            .collect(),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);

    // Set every session up concurrently; each then runs its own publisher task.
    let mut setups = Vec::new();
    for _ in 0..args.sessions {
        let (aus, sent, received, mut phase) = (
            aus.clone(),
            sent.clone(),
            received.clone(),
            phase_rx.clone(),
        );
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (_publisher, _player, track, ssrc, pt, setup) = session(received).await;
            let _ = done_tx.send(setup);
            phase.wait_for(|p| *p != Phase::Setup).await.unwrap();
            let mut tick = tokio::time::interval(FRAME_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for au in aus.iter().cycle() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = phase.wait_for(|p| *p == Phase::Stop) => break,
                }
                let sample = Sample {
                    data: au.clone(),
                    duration: FRAME_INTERVAL,
                    ..Sample::new(Instant::now())
                };
                match track.sample_writer(ssrc, pt).write_sample(&sample).await {
                    Ok(()) => {
                        sent.fetch_add(1, Relaxed);
                    }
                    Err(e) => eprintln!("write_sample: {e}"),
                }
            }
            // Keep both connections alive until the process exits.
            std::future::pending::<()>().await;
        });
        setups.push(done_rx);
    }

    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut setup = Vec::new();
    for rx in setups {
        if let Ok(Ok(d)) = tokio::time::timeout_at(deadline, rx).await {
            setup.push(d);
        }
    }
    let connected_sessions = setup.len();

    let window = Window::start();
    phase_tx.send(Phase::Run).unwrap();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    phase_tx.send(Phase::Stop).unwrap();
    let cpu = window.cpu();
    tokio::time::sleep(DRAIN).await;

    Report {
        krate: "webrtc-rs",
        sessions: args.sessions,
        seconds: args.seconds,
        frames_sent: sent.load(Relaxed),
        frames_received: received.load(Relaxed),
        cpu,
        setup,
        connected_sessions,
    }
    .print();
    std::process::exit(0);
}
