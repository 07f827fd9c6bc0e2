//! Baseline: the same harness (tokio, CLI, clip, per-session publisher/player
//! tasks over real UDP on 127.0.0.1, counters, rusage) with no WebRTC. Each
//! access unit is cut into <=1200-byte datagrams with a 1-byte "last" flag and
//! the player counts frames by that flag. Exists so binary growth of a WebRTC
//! crate = size(crate binary) - size(baseline), and as a raw-UDP CPU floor.

#[path = "../harness.rs"]
mod harness;

use harness::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::watch;

#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Setup,
    Run,
    Stop,
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let aus = Arc::new(load_access_units(&args.clip));
    let sent = Arc::new(AtomicU64::new(0));
    let recv = Arc::new(AtomicU64::new(0));
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);

    let mut setup = Vec::new();
    for _ in 0..args.sessions {
        let t0 = Instant::now();
        let pub_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let play_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        pub_sock
            .connect(play_sock.local_addr().unwrap())
            .await
            .unwrap();
        setup.push(t0.elapsed());

        // Player: count datagrams that carry the "last chunk of frame" flag.
        let recv = recv.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok(n) = play_sock.recv(&mut buf).await {
                if n > 0 && buf[0] == 1 {
                    recv.fetch_add(1, Relaxed);
                }
            }
        });

        // Publisher: one access unit every 1/30 s, chunked into datagrams.
        let (aus, sent, mut phase) = (aus.clone(), sent.clone(), phase_rx.clone());
        tokio::spawn(async move {
            phase.wait_for(|p| *p != Phase::Setup).await.unwrap();
            let mut tick = tokio::time::interval(FRAME_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut pkt = Vec::with_capacity(1201);
            for au in aus.iter().cycle() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = phase.wait_for(|p| *p == Phase::Stop) => break,
                }
                let chunks: Vec<&[u8]> = au.chunks(1200).collect();
                for (i, c) in chunks.iter().enumerate() {
                    pkt.clear();
                    pkt.push((i + 1 == chunks.len()) as u8);
                    pkt.extend_from_slice(c);
                    let _ = pub_sock.send(&pkt).await;
                }
                sent.fetch_add(1, Relaxed);
            }
        });
    }

    let window = Window::start();
    phase_tx.send(Phase::Run).unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(args.seconds)).await;
    phase_tx.send(Phase::Stop).unwrap();
    let cpu = window.cpu();
    tokio::time::sleep(DRAIN).await;

    Report {
        krate: "baseline-udp",
        sessions: args.sessions,
        seconds: args.seconds,
        frames_sent: sent.load(Relaxed),
        frames_received: recv.load(Relaxed),
        cpu,
        setup,
        connected_sessions: args.sessions,
    }
    .print();
    std::process::exit(0);
}
