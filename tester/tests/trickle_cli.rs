//! `lvt trickle`'s publish, subscribe and serve loops against a trickle server on 127.0.0.1.
//! The protocol itself (server semantics, client retries) is tested in the gateway crate;
//! these tests cover the operator loops built on it: real-time pacing, writing what arrives,
//! and a server that stops on shutdown.

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use bytes::Bytes;
use lvt_tester::cmd::trickle::{publish_file, serve, subscribe_to};
use lvt_wire::http1::serve_connection;
use lvt_wire::trickle::{TrickleConfig, TricklePublisher, TrickleServer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// A trickle server on 127.0.0.1 that reports every request line (`GET /ai/trickle/x/-1`) it
/// receives, so a test can wait until a subscriber is connected instead of sleeping.
struct Server {
    server: TrickleServer,
    url: String,
    requests: mpsc::UnboundedReceiver<String>,
    /// Accept loop and connections; dropping the set aborts them.
    _tasks: JoinSet<()>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ai/trickle/", listener.local_addr().unwrap());
        let server = TrickleServer::new(TrickleConfig::default());
        let (seen, requests) = mpsc::unbounded_channel();
        let router =
            server
                .router()
                .layer(middleware::from_fn(move |request: Request, next: Next| {
                    let _ = seen.send(format!("{} {}", request.method(), request.uri().path()));
                    next.run(request)
                }));
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                connections.spawn(serve_connection(
                    socket,
                    router.clone(),
                    std::future::pending(),
                ));
            }
        });
        Self {
            server,
            url,
            requests,
            _tasks: tasks,
        }
    }

    /// Waits until the server received `request` (method and path).
    async fn wait_for_request(&mut self, request: &str) {
        let wait = async {
            while let Some(seen) = self.requests.recv().await {
                if seen == request {
                    return;
                }
            }
            panic!("the server stopped before {request}");
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {request}"));
    }
}

/// An H.264-in-TS stream of `gops` GOPs with `frames_per_gop` frames at `fps`. The access
/// units are not decodable pictures; only framing, PTS and keyframe flags matter here.
fn synthetic_ts(gops: usize, frames_per_gop: usize, fps: u64) -> Vec<u8> {
    use lvt_media::ts::{MuxConfig, MuxFrame, TsMuxer};
    let mut muxer = TsMuxer::new(MuxConfig::default());
    let mut out = Vec::new();
    let mut pts = 900_000;
    for gop in 0..gops {
        for frame in 0..frames_per_gop {
            let keyframe = frame == 0;
            let mut access_unit = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 0x88];
            access_unit.extend(std::iter::repeat_n((gop * 16 + frame + 1) as u8, 400));
            muxer.mux_frame(
                &MuxFrame {
                    pts,
                    dts: None,
                    keyframe,
                    data: &access_unit,
                },
                &mut out,
            );
            pts += 90_000 / fps;
        }
    }
    out
}

#[tokio::test]
async fn publish_file_paces_segments_and_subscribe_to_records_them() {
    let mut s = Server::start().await;
    s.server.create_channel("cli", "video/MP2T");
    let ts = synthetic_ts(3, 6, 60);
    let url = format!("{}cli", s.url);
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut progress = Vec::new();
    let subscribe = subscribe_to(client.clone(), &url, &mut out);
    let publish = async {
        s.wait_for_request("GET /ai/trickle/cli/-1").await;
        let started = tokio::time::Instant::now();
        let summary = publish_file(client.clone(), &url, &ts[..], |p| progress.push(p.clone()))
            .await
            .unwrap();
        (summary, started.elapsed())
    };
    let (subscribed, (summary, elapsed)) = tokio::join!(subscribe, publish);
    let subscribed = subscribed.unwrap();
    assert!(
        out == ts,
        "the subscriber wrote back exactly the published stream"
    );
    assert_eq!(
        progress
            .iter()
            .map(|p| (p.seq, p.frames, p.confirmed))
            .collect::<Vec<_>>(),
        vec![(0, 6, true), (1, 6, true), (2, 6, true)]
    );
    assert_eq!((summary.segments, summary.bytes), (3, ts.len() as u64));
    // Seventeen frame intervals at 60 fps: the file went out at its real-time pace.
    assert!(elapsed >= Duration::from_millis(270), "{elapsed:?}");
    assert_eq!(
        (subscribed.segments, subscribed.bytes),
        (3, ts.len() as u64)
    );
    assert_eq!(subscribed.gaps, 0);
    assert!(
        !s.server.channel_exists("cli"),
        "publishing ends with DELETE"
    );
}

#[tokio::test]
async fn serve_autocreates_and_stops_on_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, true, async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/ai/trickle/served");
    let mut publisher = TricklePublisher::new(client.clone(), &url);
    publisher
        .publish(Bytes::from_static(b"hello"))
        .await
        .unwrap();
    let read = client.get(format!("{url}/0")).send().await.unwrap();
    assert_eq!(read.text().await.unwrap(), "hello");
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
    let after = reqwest::Client::new()
        .get(format!("{url}/next"))
        .send()
        .await;
    assert!(after.is_err(), "the listener is closed");
}
