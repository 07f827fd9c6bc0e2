//! str0m load loop: N sessions, each a publisher (offerer, sendonly H.264) and
//! a player (answerer, recvonly) in this process over real UDP on 127.0.0.1.
//!
//! str0m is sans-IO: each peer is one tokio task that owns an `Rtc` and a
//! `UdpSocket` and runs the canonical loop (drain `poll_output` to `Timeout`,
//! then wait for a datagram / the timeout / the next frame tick). Frame mode
//! (rtp_mode off): the publisher calls `Writer::write` with whole Annex-B
//! access units; the player counts `Event::MediaData` (one per depacketized
//! frame). One socket per peer keeps the comparison with webrtc-rs even;
//! str0m could also serve many sessions on one socket by routing each
//! datagram to the `Rtc` whose `accepts(&input)` is true.

#[path = "../harness.rs"]
mod harness;

use harness::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    Setup,
    Run,
    Stop,
}

/// Only one codec on both sides: H.264 constrained baseline 42e01f,
/// packetization-mode=1 (PT 108, RTX 109, as in str0m's defaults).
fn new_rtc() -> Rtc {
    let mut cfg = Rtc::builder().clear_codecs();
    cfg.codec_config()
        .add_h264(108.into(), Some(109.into()), true, 0x42e01f);
    cfg.build(Instant::now())
}

/// What a peer task does besides driving its `Rtc`.
enum Role {
    /// Sends the clip's access units at 30 fps on `mid` while phase is Run.
    Publisher {
        mid: Mid,
        aus: Arc<Vec<Arc<[u8]>>>,
        sent: Arc<AtomicU64>,
    },
    /// Counts received frames.
    Player { received: Arc<AtomicU64> },
}

/// What woke the peer task up.
enum Wake {
    Datagram(usize, SocketAddr),
    Timeout,
    Tick,
    Phase,
}

async fn run_peer(
    mut rtc: Rtc,
    sock: UdpSocket,
    role: Role,
    mut phase: watch::Receiver<Phase>,
    connected: oneshot::Sender<Instant>,
) {
    let local = sock.local_addr().unwrap();
    let mut connected = Some(connected);
    let mut buf = vec![0u8; 2000];
    let mut tick = tokio::time::interval(FRAME_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut frame_no: u64 = 0;
    let is_publisher = matches!(role, Role::Publisher { .. });

    loop {
        // Drain all output until str0m hands back its next deadline.
        let deadline = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(Event::Connected)) => {
                    if let Some(tx) = connected.take() {
                        let _ = tx.send(Instant::now());
                    }
                }
                Ok(Output::Event(Event::MediaData(_))) => {
                    if let Role::Player { received } = &role {
                        received.fetch_add(1, Relaxed);
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    eprintln!("str0m error: {e}");
                    return;
                }
            }
        };
        if !rtc.is_alive() {
            return;
        }

        let sending = is_publisher && *phase.borrow() == Phase::Run;
        let wake = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, src)) => Wake::Datagram(n, src),
                Err(_) => continue,
            },
            _ = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
            _ = tick.tick(), if sending => Wake::Tick,
            r = phase.changed() => { if r.is_err() { return; } Wake::Phase }
        };

        // Exactly one mutation per wake-up, then back to draining.
        match wake {
            Wake::Datagram(n, source) => {
                let Ok(contents) = buf[..n].try_into() else {
                    continue;
                };
                let input = Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents,
                    },
                );
                if let Err(e) = rtc.handle_input(input) {
                    eprintln!("str0m handle_input: {e}");
                }
            }
            Wake::Timeout => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
            Wake::Tick => {
                let Role::Publisher { mid, aus, sent } = &role else {
                    unreachable!()
                };
                let Some(writer) = rtc.writer(*mid) else {
                    continue;
                };
                let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
                    continue;
                };
                let au = aus[(frame_no as usize) % aus.len()].clone();
                let rtp_time = MediaTime::new(frame_no * TICKS_PER_FRAME, Frequency::NINETY_KHZ);
                match writer.write(pt, Instant::now(), rtp_time, au) {
                    Ok(()) => {
                        sent.fetch_add(1, Relaxed);
                        frame_no += 1;
                    }
                    Err(e) => eprintln!("str0m write: {e}"),
                }
            }
            Wake::Phase => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let aus: Arc<Vec<Arc<[u8]>>> = Arc::new(
        load_access_units(&args.clip)
            .into_iter()
            .map(Arc::from)
            .collect(),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);

    // Start every session's setup; each yields (offer instant, both connected).
    let mut pending = Vec::new();
    for _ in 0..args.sessions {
        let pub_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let play_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();

        let t0 = Instant::now();
        // Publisher: host candidate for its socket, one sendonly video m-line.
        let mut publisher = new_rtc();
        publisher
            .add_local_candidate(Candidate::host(pub_sock.local_addr().unwrap(), "udp").unwrap());
        let mut change = publisher.sdp_api();
        let mid = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending_offer) = change.apply().unwrap();
        let offer_sdp = offer.to_sdp_string();

        // Player: answers from the SDP string (recvonly follows from sendonly).
        let mut player = new_rtc();
        player
            .add_local_candidate(Candidate::host(play_sock.local_addr().unwrap(), "udp").unwrap());
        let answer = player
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(&offer_sdp).unwrap())
            .unwrap();
        let answer_sdp = answer.to_sdp_string();
        publisher
            .sdp_api()
            .accept_answer(
                pending_offer,
                SdpAnswer::from_sdp_string(&answer_sdp).unwrap(),
            )
            .unwrap();

        let (ptx, prx) = oneshot::channel();
        let (ctx, crx) = oneshot::channel();
        let role = Role::Publisher {
            mid,
            aus: aus.clone(),
            sent: sent.clone(),
        };
        tokio::spawn(run_peer(publisher, pub_sock, role, phase_rx.clone(), ptx));
        let role = Role::Player {
            received: received.clone(),
        };
        tokio::spawn(run_peer(player, play_sock, role, phase_rx.clone(), ctx));
        pending.push((t0, prx, crx));
    }

    // Wait for all sessions (bounded), then run the measured window.
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut setup = Vec::new();
    for (t0, prx, crx) in pending {
        let both = async { (prx.await, crx.await) };
        if let Ok((Ok(a), Ok(b))) = tokio::time::timeout_at(deadline, both).await {
            setup.push(a.max(b) - t0);
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
        krate: "str0m",
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
