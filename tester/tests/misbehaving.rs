//! Orchestrators that misbehave in ways the simulator does not: a server that accepts and never
//! answers, garbage instead of MPEG-TS, an output segment that never ends, event documents that
//! are not JSON. Each must end in a classified failure within the configured timeouts, never a
//! hang or a panic.

mod common;

use std::time::{Duration, Instant};

use common::clip;
use lvt_schema::{FailureClass, Outcome, SessionReport};
use lvt_tester::probe::{self, ProbeOptions, Timeouts};
use lvt_wire::live::JobUrls;
use lvt_wire::trickle::{TrickleConfig, TrickleServer};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

fn short_timeouts() -> Timeouts {
    Timeouts {
        grpc: Duration::from_secs(1),
        start: Duration::from_secs(1),
        first_output: Duration::from_secs(2),
        output_gap: Duration::from_secs(2),
        events: Duration::from_secs(30),
        drain: Duration::from_secs(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_and_never_answers_is_a_grpc_error_in_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept connections and hold them open without ever writing a byte.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    for target in [format!("http://{addr}"), format!("https://{addr}")] {
        let mut opts = ProbeOptions::new(target.parse().unwrap());
        opts.timeouts = short_timeouts();
        let http = probe::http_client().unwrap();
        let t = Instant::now();
        let r = probe::probe(&opts, clip(), &http, CancellationToken::new()).await;
        let took = t.elapsed();
        assert_eq!(r.outcome, Outcome::Failed, "{target}");
        assert_eq!(
            r.failure.as_ref().unwrap().class,
            FailureClass::GrpcError,
            "{target}"
        );
        assert!(
            took < Duration::from_secs(4),
            "{target}: took {took:?} for a 1 s timeout"
        );
    }
    holder.abort();
}

/// What the fake runner does with each session.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Random bytes on the output channel, valid events.
    GarbageOutput,
    /// One output segment that is opened and never written nor closed.
    EndlessSegment,
    /// Output echoes the input (valid TS), but events are not JSON.
    InvalidEvents,
}

/// A trickle server with the four channels of one job and a runner that misbehaves.
async fn fake_job(kind: Misbehaviour) -> (JobUrls, CancellationToken) {
    let trickle = TrickleServer::new(TrickleConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/ai/trickle", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let s = stop.clone();
    let router = trickle.router();
    tokio::spawn(async move {
        let _ = lvt_wire::serve::serve(listener, None, router, async move { s.cancelled().await })
            .await;
    });
    let mid = "deadbeef";
    for (suffix, mime) in [
        ("", "video/MP2T"),
        ("-out", "video/MP2T"),
        ("-control", "application/json"),
        ("-events", "application/json"),
    ] {
        trickle.create_channel(&format!("{mid}{suffix}"), mime);
    }
    let urls = JobUrls {
        publish_url: format!("{base}/{mid}"),
        subscribe_url: format!("{base}/{mid}-out"),
        control_url: format!("{base}/{mid}-control"),
        events_url: format!("{base}/{mid}-events"),
        manifest_id: mid.to_string(),
    };
    let runner_stop = stop.clone();
    tokio::spawn(async move {
        let mut out = trickle.local_publisher(&format!("{mid}-out")).unwrap();
        let mut events = trickle.local_publisher(&format!("{mid}-events")).unwrap();
        let mut input = trickle.local_subscriber(mid).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let status = br#"{"event":{"type":"status","timestamp":1,"state":"ONLINE"},"queue_event_type":"ai_stream_events"}"#;
        let mut endless = None;
        loop {
            let seg = tokio::select! {
                () = runner_stop.cancelled() => break,
                s = input.next_segment() => s,
            };
            let Some(mut seg) = seg else { break };
            let ev = events.begin_segment();
            match kind {
                Misbehaviour::InvalidEvents => ev.write(b"{\"event\": {\"type\": \"status\", "),
                _ => ev.write(status),
            }
            ev.close();
            match kind {
                Misbehaviour::GarbageOutput => {
                    let w = out.begin_segment();
                    let mut junk = vec![0u8; 20_000];
                    rng.fill(&mut junk[..]);
                    w.write(&junk);
                    while seg.next_chunk().await.is_some() {}
                    w.close();
                }
                Misbehaviour::EndlessSegment => {
                    if endless.is_none() {
                        endless = Some(out.begin_segment());
                    }
                    while seg.next_chunk().await.is_some() {}
                }
                Misbehaviour::InvalidEvents => {
                    let w = out.begin_segment();
                    while let Some(chunk) = seg.next_chunk().await {
                        w.write(&chunk);
                    }
                    w.close();
                }
            }
        }
        drop(endless);
    });
    (urls, stop)
}

async fn probe_fake(kind: Misbehaviour) -> (SessionReport, Duration) {
    let (urls, stop) = fake_job(kind).await;
    let mut opts = ProbeOptions::new("http://127.0.0.1:1".parse().unwrap());
    opts.duration = Duration::from_secs(4);
    opts.params_update_offsets = vec![opts.duration / 2];
    opts.timeouts = short_timeouts();
    let http = probe::http_client().unwrap();
    let t = Instant::now();
    let r = probe::probe_started_job(&opts, clip(), &http, &urls, CancellationToken::new()).await;
    let took = t.elapsed();
    stop.cancel();
    (r, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_ts_is_a_protocol_error() {
    let (r, took) = probe_fake(Misbehaviour::GarbageOutput).await;
    assert_eq!(r.outcome, Outcome::Failed);
    let f = r.failure.unwrap();
    assert_eq!(f.class, FailureClass::ProtocolError, "{}", f.detail);
    assert!(r.metrics.bytes_received > 0);
    assert_eq!(r.metrics.frames_received, 0);
    assert!(
        r.metrics.media_errors.sync_losses > 0,
        "{:?}",
        r.metrics.media_errors
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_that_never_ends_is_an_output_timeout() {
    let (r, took) = probe_fake(Misbehaviour::EndlessSegment).await;
    assert_eq!(r.outcome, Outcome::Failed);
    let f = r.failure.unwrap();
    assert_eq!(f.class, FailureClass::OutputTimeout, "{}", f.detail);
    // The first-output timeout is 2 s; the session must not wait for its full 4 s, let alone hang.
    assert!(took < Duration::from_secs(7), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_event_json_is_a_protocol_error_despite_good_output() {
    let (r, took) = probe_fake(Misbehaviour::InvalidEvents).await;
    assert_eq!(r.outcome, Outcome::Failed);
    let f = r.failure.unwrap();
    assert_eq!(f.class, FailureClass::ProtocolError, "{}", f.detail);
    assert!(r.metrics.frames_received > 60, "echoed output was measured");
    assert!(r.runner.events_malformed >= 1);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
