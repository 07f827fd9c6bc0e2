//! Trickle client against trickle server over real sockets on 127.0.0.1, served by our
//! HTTP/1.1 driver. One harness starts the server with a tap that records the bytes each side
//! sent, so tests can check the wire as well as the API. The `conformance_*` tests at the end
//! check both sides against exchanges recorded from go-livepeer's trickle server.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use lvt_wire::http1::serve_connection;
use lvt_wire::trickle::{
    PublisherConfig, PublisherStats, SegmentOutcome, SegmentWriter, SocketPublisher,
    SocketSegmentWriter, SubscriberConfig, TrickleConfig, TrickleError, TricklePublisher,
    TrickleServer, TrickleSubscriber,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

/// Records what passes through a connection and signals each transfer.
struct Tap<IO> {
    io: IO,
    read: Arc<Mutex<Vec<u8>>>,
    written: Arc<Mutex<Vec<u8>>>,
    activity: Arc<Notify>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tap<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if result.is_ready() {
            let new = buf.filled()[before..].to_vec();
            self.read.lock().unwrap().extend_from_slice(&new);
            self.activity.notify_waiters();
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tap<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.written.lock().unwrap().extend_from_slice(&buf[..n]);
            self.activity.notify_waiters();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

struct Harness {
    server: TrickleServer,
    addr: SocketAddr,
    client: reqwest::Client,
    read: Arc<Mutex<Vec<u8>>>,
    written: Arc<Mutex<Vec<u8>>>,
    activity: Arc<Notify>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl Harness {
    async fn start(config: TrickleConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = TrickleServer::new(config);
        let read = Arc::new(Mutex::new(Vec::new()));
        let written = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let activity = Arc::new(Notify::new());
        let accept = {
            let router = server.router();
            let (read, written, connections) = (read.clone(), written.clone(), connections.clone());
            let activity = activity.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    let io = Tap {
                        io: socket,
                        read: read.clone(),
                        written: written.clone(),
                        activity: activity.clone(),
                    };
                    let task =
                        tokio::spawn(serve_connection(io, router.clone(), std::future::pending()));
                    connections.lock().unwrap().push(task.abort_handle());
                }
            })
        };
        Self {
            server,
            addr,
            client: reqwest::Client::new(),
            read,
            written,
            activity,
            connections,
            accept,
        }
    }

    /// Waits (on connection activity, not on a timer) until `condition` holds.
    async fn wait_until(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        let wait = async {
            loop {
                let notified = self.activity.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if condition(self) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
    }

    /// Waits until the server has read `count` copies of `text` from clients.
    async fn wait_for_request(&self, text: &str, count: usize) {
        self.wait_until(text, |h| h.server_read().matches(text).count() >= count)
            .await;
    }

    fn url(&self, channel: &str) -> String {
        format!("http://{}/ai/trickle/{channel}", self.addr)
    }

    fn server_wrote(&self) -> String {
        String::from_utf8_lossy(&self.written.lock().unwrap()).into_owned()
    }

    fn server_read(&self) -> String {
        String::from_utf8_lossy(&self.read.lock().unwrap()).into_owned()
    }

    /// Breaks every open connection, as a crashed or partitioned server would.
    fn kill_connections(&self) {
        for handle in self.connections.lock().unwrap().drain(..) {
            handle.abort();
        }
    }

    fn publisher(&self, channel: &str) -> TricklePublisher {
        TricklePublisher::new(self.client.clone(), self.url(channel))
    }

    fn subscriber(&self, channel: &str) -> TrickleSubscriber {
        TrickleSubscriber::new(self.client.clone(), self.url(channel))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.accept.abort();
        self.kill_connections();
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Publishes one segment made of `parts`.
async fn publish_parts(publisher: &mut TricklePublisher, parts: &[&'static [u8]]) -> i64 {
    let mut segment = publisher.begin_segment().await.unwrap();
    for part in parts {
        segment.write(Bytes::from_static(part)).await.unwrap();
    }
    segment.finish().await.unwrap().seq
}

async fn read_segment(subscriber: &mut TrickleSubscriber) -> Option<(i64, Vec<u8>)> {
    let mut segment = subscriber.next_segment().await.unwrap()?;
    let data = segment.read_all().await.unwrap();
    Some((segment.seq, data.to_vec()))
}

async fn get(h: &Harness, path: &str) -> reqwest::Response {
    h.client.get(h.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn published_segments_reach_a_subscriber_in_order() {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("s", "video/MP2T");
    let mut subscriber = h.subscriber("s").starting_at(0);
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(segment) = read_segment(&mut subscriber).await {
            got_tx.send(segment).unwrap();
        }
        subscriber.stats()
    });
    let mut publisher = h.publisher("s");
    for i in 0..4 {
        assert_eq!(publisher.seq(), i);
        assert_eq!(publish_parts(&mut publisher, &[b"seg", b"ment"]).await, i);
    }
    for i in 0..4 {
        assert_eq!(got_rx.recv().await.unwrap(), (i, b"segment".to_vec()));
    }
    let stats = publisher.stats();
    assert_eq!((stats.segments, stats.bytes, stats.retries), (4, 28, 0));
    // Closing the stream deletes the channel and ends the subscriber.
    publisher.close().await;
    let stats = reader.await.unwrap();
    assert!(!h.server.channel_exists("s"));
    assert_eq!((stats.segments, stats.errors, stats.gaps), (4, 0, 0));
    // The publisher preconnected each next segment before writing the current one.
    assert!(h.server_read().contains("POST /ai/trickle/s/4 HTTP/1.1"));
}

#[tokio::test]
async fn ring_eviction_answers_470_and_the_subscriber_jumps_to_latest() {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("r", "video/MP2T");
    let mut publisher = h.publisher("r");
    for _ in 0..7 {
        publish_parts(&mut publisher, &[b"data"]).await;
    }
    // Segments 0 to 2 fell out of the five-segment ring.
    let evicted = get(&h, "r/0").await;
    assert_eq!(evicted.status().as_u16(), 470);
    assert_eq!(header(&evicted, "lp-trickle-latest"), Some("7"));
    assert_eq!(header(&evicted, "lp-trickle-seq"), Some("0"));
    assert_eq!(evicted.text().await.unwrap(), "Entry not found");
    // The publisher's preconnected POST for 7 already took segment 2's ring slot.
    assert_eq!(get(&h, "r/2").await.status().as_u16(), 470);
    let kept = get(&h, "r/3").await;
    assert_eq!(kept.status().as_u16(), 200);
    assert_eq!(header(&kept, "lp-trickle-seq"), Some("3"));
    assert_eq!(header(&kept, "lp-trickle-latest"), Some("7"));
    assert_eq!(kept.text().await.unwrap(), "data");
    // Too far ahead is 470 as well.
    assert_eq!(get(&h, "r/9").await.status().as_u16(), 470);

    // Both subscribers jump from the evicted start to the live edge.
    let subscriber = h.subscriber("r").starting_at(0);
    jumps_to_the_live_edge(&h, subscriber, &mut publisher, 7).await;
    // (The first one's preconnected GET for 8 is on the server's record already.)
    let subscriber = TrickleSubscriber::over_sockets(h.url("r"), SubscriberConfig::default());
    jumps_to_the_live_edge(&h, subscriber.starting_at(0), &mut publisher, 8).await;
}

/// A subscriber of channel `r` from segment 0 reads segment `live` once it is published,
/// counting the segments it skipped. Segment `live` is published once the server has seen
/// `live - 6` GETs for it (one per subscriber of this test that reached it).
async fn jumps_to_the_live_edge(
    h: &Harness,
    mut subscriber: TrickleSubscriber,
    publisher: &mut TricklePublisher,
    live: i64,
) {
    let reader = tokio::spawn(async move {
        let segment = read_segment(&mut subscriber).await;
        (segment, subscriber.stats())
    });
    let gets = usize::try_from(live - 6).unwrap();
    h.wait_for_request(&format!("GET /ai/trickle/r/{live} "), gets)
        .await;
    publish_parts(publisher, &[b"live"]).await;
    let (segment, stats) = reader.await.unwrap();
    assert_eq!(segment, Some((live, b"live".to_vec())));
    assert_eq!(stats.gaps, live as u64);
}

#[tokio::test]
async fn preconnected_get_blocks_until_first_bytes_then_follows_the_tail() {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("b", "video/MP2T");
    let pending_get = tokio::spawn(h.client.get(h.url("b/-1")).send());
    let mut publisher = h.publisher("b");
    let mut segment = publisher.begin_segment().await.unwrap();
    h.wait_for_request("GET /ai/trickle/b/-1 ", 1).await;
    h.wait_for_request("POST /ai/trickle/b/0 ", 1).await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        !pending_get.is_finished(),
        "no headers before the first byte"
    );
    assert!(!h.server_wrote().contains("lp-trickle-seq"));

    segment.write(Bytes::from_static(b"first")).await.unwrap();
    let mut response = pending_get.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(header(&response, "lp-trickle-seq"), Some("0"));
    assert_eq!(header(&response, "content-type"), Some("video/MP2T"));
    assert_eq!(header(&response, "lp-trickle-latest"), None);
    // The reader gets bytes while the segment is still being written.
    assert_eq!(response.chunk().await.unwrap().unwrap(), "first");
    segment.write(Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(response.chunk().await.unwrap().unwrap(), "second");
    segment.finish().await.unwrap();
    assert!(response.chunk().await.unwrap().is_none());
}

#[tokio::test]
async fn minus_one_minus_two_and_next() {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("n", "video/MP2T");
    let next = get(&h, "n/next").await;
    assert_eq!(header(&next, "lp-trickle-latest"), Some("0"));
    assert_eq!(next.text().await.unwrap(), "0");

    let mut publisher = h.publisher("n");
    publish_parts(&mut publisher, &[b"zero"]).await;
    publish_parts(&mut publisher, &[b"one"]).await;

    let current = get(&h, "n/-2").await;
    assert_eq!(current.status().as_u16(), 200);
    assert_eq!(header(&current, "lp-trickle-seq"), Some("1"));
    assert_eq!(header(&current, "lp-trickle-latest"), Some("2"));
    assert_eq!(current.text().await.unwrap(), "one");

    let next = get(&h, "n/next").await;
    assert_eq!(header(&next, "lp-trickle-latest"), Some("2"));
    assert_eq!(header(&next, "lp-trickle-closed"), None);
    assert_eq!(next.text().await.unwrap(), "2");

    let waiting = tokio::spawn(h.client.get(h.url("n/-1")).send());
    h.wait_for_request("GET /ai/trickle/n/-1 ", 1).await;
    publish_parts(&mut publisher, &[b"two"]).await;
    let response = waiting.await.unwrap().unwrap();
    assert_eq!(header(&response, "lp-trickle-seq"), Some("2"));
    assert_eq!(response.text().await.unwrap(), "two");

    assert_eq!(get(&h, "n/-3").await.status().as_u16(), 400);
    let invalid = get(&h, "n/abc").await;
    assert_eq!(invalid.status().as_u16(), 400);
    assert_eq!(invalid.text().await.unwrap(), "Invalid idx\n");
}

#[tokio::test]
async fn unknown_channel_is_404_and_post_closes_the_connection() {
    let h = Harness::start(TrickleConfig::default()).await;
    let missing = get(&h, "missing/0").await;
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        header(&missing, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(missing.text().await.unwrap(), "Stream not found\n");
    assert_eq!(get(&h, "missing/next").await.status().as_u16(), 404);

    let post = h
        .client
        .post(h.url("missing/0"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 404);
    assert_eq!(header(&post, "connection"), Some("close"));

    let mut publisher = h.publisher("missing");
    let result = publisher.publish(Bytes::from_static(b"{}")).await;
    assert!(
        matches!(result, Err(TrickleError::ChannelGone)),
        "{result:?}"
    );
    let mut subscriber = h.subscriber("missing");
    assert!(subscriber.next_segment().await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_channel_ends_blocked_readers_with_the_closed_header() {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("c", "video/MP2T");
    let blocked = tokio::spawn(h.client.get(h.url("c/-1")).send());
    let mut subscriber = h.subscriber("c");
    let subscribed =
        tokio::spawn(async move { subscriber.next_segment().await.map(|s| s.is_none()) });
    h.wait_for_request("GET /ai/trickle/c/-1 ", 2).await;

    let deleted = h.client.delete(h.url("c")).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    let response = blocked.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(header(&response, "lp-trickle-closed"), Some("terminated"));
    assert_eq!(header(&response, "lp-trickle-seq"), Some("0"));
    assert!(
        subscribed.await.unwrap().unwrap(),
        "subscriber sees the end"
    );
    assert!(!h.server.channel_exists("c"));
    assert_eq!(get(&h, "c/0").await.status().as_u16(), 404);
}

#[tokio::test]
async fn delete_semantics() {
    let h = Harness::start(TrickleConfig::default()).await;
    let unknown = h.client.delete(h.url("none")).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 400);
    assert_eq!(unknown.text().await.unwrap(), "Invalid stream\n");
    let unknown_seq = h.client.delete(h.url("none/0")).send().await.unwrap();
    assert_eq!(unknown_seq.status().as_u16(), 404);

    h.server.create_channel("d", "video/MP2T");
    let bad = h.client.delete(h.url("d/abc")).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(bad.text().await.unwrap(), "Invalid idx\n");
    let absent = h.client.delete(h.url("d/3")).send().await.unwrap();
    assert_eq!(absent.status().as_u16(), 400);
    assert_eq!(absent.text().await.unwrap(), "Nonexistent segment\n");

    // Closing the segment a reader waits on ends that read with 470 and the live edge.
    let blocked = tokio::spawn(h.client.get(h.url("d/0")).send());
    h.wait_for_request("GET /ai/trickle/d/0 ", 1).await;
    let closed = h.client.delete(h.url("d/0")).send().await.unwrap();
    assert_eq!(closed.status().as_u16(), 200);
    let response = blocked.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 470);
    assert_eq!(header(&response, "lp-trickle-seq"), Some("0"));
    assert_eq!(header(&response, "lp-trickle-latest"), Some("0"));

    let gone = h.client.delete(h.url("d")).send().await.unwrap();
    assert_eq!(gone.status().as_u16(), 200);
    assert!(!h.server.channel_exists("d"));
}

#[tokio::test]
async fn reset_header_closes_older_segments_and_restarts_numbering() {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("x", "video/MP2T");
    let mut publisher = h.publisher("x");
    for _ in 0..3 {
        publish_parts(&mut publisher, &[b"old"]).await;
    }
    let blocked = tokio::spawn(h.client.get(h.url("x/-1")).send());
    h.wait_for_request("GET /ai/trickle/x/-1 ", 1).await;

    let restart = h
        .client
        .post(h.url("x/0"))
        .header("Lp-Trickle-Reset", "1")
        .body("restart")
        .send()
        .await
        .unwrap();
    assert_eq!(restart.status().as_u16(), 200);
    assert_eq!(header(&restart, "lp-trickle-seq"), Some("0"));

    // The reader waiting on segment 3 is released and pointed at the new numbering.
    let response = blocked.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 470);
    assert_eq!(header(&response, "lp-trickle-seq"), Some("3"));
    let latest = header(&response, "lp-trickle-latest").unwrap().to_owned();
    assert!(latest == "0" || latest == "1", "latest {latest}");
    assert_eq!(get(&h, "x/0").await.text().await.unwrap(), "restart");
    assert_eq!(get(&h, "x/next").await.text().await.unwrap(), "1");
}

#[tokio::test]
async fn channels_are_not_autocreated_by_default() {
    let h = Harness::start(TrickleConfig::default()).await;
    let create = h
        .client
        .post(h.url("auto"))
        .header("Expect-Content", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(create.status().as_u16(), 404);
    let publish = h
        .client
        .post(h.url("auto/0"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status().as_u16(), 404);
    assert!(!h.server.channel_exists("auto"));

    let h = Harness::start(TrickleConfig {
        autocreate: true,
        ..TrickleConfig::default()
    })
    .await;
    let create = h
        .client
        .post(h.url("auto"))
        .header("Expect-Content", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(create.status().as_u16(), 200);
    let publish = h
        .client
        .post(h.url("auto/0"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(publish.status().as_u16(), 200);
    let read = get(&h, "auto/0").await;
    assert_eq!(header(&read, "content-type"), Some("application/json"));
    // Publishing to an unknown channel creates it with the POST's Content-Type.
    let mut publisher = h.publisher("auto2");
    publisher.publish(Bytes::from_static(b"ts")).await.unwrap();
    assert_eq!(
        header(&get(&h, "auto2/0").await, "content-type"),
        Some("video/MP2T")
    );
}

#[tokio::test(start_paused = true)]
async fn idle_channels_are_swept_on_paused_time() {
    let server = TrickleServer::new(TrickleConfig::default());
    for name in ["idle", "busy", "_internal"] {
        server.create_channel(name, "video/MP2T");
    }
    let mut subscriber = server.local_subscriber("idle").unwrap();
    let ended = tokio::spawn(async move { subscriber.next_segment().await.is_none() });
    let mut publisher = server.local_publisher("busy").unwrap();
    let sweeper = server.spawn_sweeper();
    // Four minutes: nothing is idle long enough yet.
    for _ in 0..8 {
        publisher.begin_segment().write(b"tick");
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    assert_eq!(server.channel_names(), vec!["_internal", "busy", "idle"]);
    // Past five minutes plus a sweep interval, the silent channel is gone.
    for _ in 0..6 {
        publisher.begin_segment().write(b"tick");
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    assert_eq!(server.channel_names(), vec!["_internal", "busy"]);
    assert!(ended.await.unwrap(), "a reader of the swept channel ends");
    server.closed("idle").await;
    sweeper.abort();
}

#[tokio::test]
async fn keepalive_100_continue_repeats_while_the_body_is_silent() {
    let h = Harness::start(TrickleConfig {
        keepalive_interval: Duration::from_millis(30),
        ..TrickleConfig::default()
    })
    .await;
    h.server.create_channel("k", "video/MP2T");
    let mut socket = TcpStream::connect(h.addr).await.unwrap();
    socket
        .write_all(
            b"POST /ai/trickle/k/0 HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut socket, &mut text, "HTTP/1.1 100 Continue\r\n\r\n", 3).await;
    assert!(!text.contains("HTTP/1.1 200"), "{text}");
    socket.write_all(b"5\r\nhello\r\n0\r\n\r\n").await.unwrap();
    read_until(&mut socket, &mut text, "lp-trickle-seq: 0\r\n", 1).await;
    let final_at = text.find("HTTP/1.1 200 OK\r\n").expect("final response");
    assert!(final_at > text.rfind("100 Continue").unwrap(), "{text}");
    assert_eq!(get(&h, "k/0").await.text().await.unwrap(), "hello");
}

async fn read_until(socket: &mut TcpStream, text: &mut String, needle: &str, count: usize) {
    let read = async {
        while text.matches(needle).count() < count {
            let mut chunk = [0u8; 1024];
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {text}");
            text.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in {text:?}"));
}

#[tokio::test]
async fn publisher_retries_a_segment_only_when_no_byte_was_sent() {
    // Wait for the client to notice, so the failure is certain to precede our first byte.
    let noticed = async |publisher: &TricklePublisher| {
        tokio::time::timeout(Duration::from_secs(20), async {
            while publisher.is_preconnected() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the preconnected POST fails");
    };
    publisher_retries_only_when_nothing_was_sent(Harness::publisher, noticed).await;
}

#[tokio::test]
async fn socket_publisher_retries_a_segment_only_when_no_byte_was_sent() {
    // The connection's end reaches the client over loopback well within this.
    let noticed = async |_: &SocketPublisher| tokio::time::sleep(Duration::from_millis(200)).await;
    publisher_retries_only_when_nothing_was_sent(socket_publisher, noticed).await;
}

/// The preconnected POST for segment 1 dies before anything is written to it: the segment is
/// sent again on a new POST, once, and nothing is dropped.
async fn publisher_retries_only_when_nothing_was_sent<P: Publish>(
    make: MakePublisher<P>,
    noticed: impl AsyncFnOnce(&P),
) {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("rt", "video/MP2T");
    let mut publisher = make(&h, "rt");
    let mut segment = publisher.begin().await.unwrap();
    segment.put(b"zero").await.unwrap();
    segment.done().await.unwrap();
    h.wait_for_request("POST /ai/trickle/rt/1 ", 1).await;
    h.kill_connections();
    noticed(&publisher).await;
    let mut segment = publisher.begin().await.unwrap();
    segment.put(b"after").await.unwrap();
    let outcome = segment.done().await.unwrap();
    assert_eq!(outcome.seq, 1);
    let stats = publisher.counters();
    assert_eq!(stats.retries, 1, "{stats:?}");
    assert_eq!(stats.dropped_segments, 0, "{stats:?}");
    assert_eq!(get(&h, "rt/1").await.text().await.unwrap(), "after");
}

#[tokio::test]
async fn publisher_config_sets_content_type_and_start() {
    let h = Harness::start(TrickleConfig {
        autocreate: true,
        ..TrickleConfig::default()
    })
    .await;
    let mut publisher = TricklePublisher::with_config(
        h.client.clone(),
        format!("{}/", h.url("ctl")),
        PublisherConfig {
            mime: "application/json".to_owned(),
            start_seq: 3,
            ..PublisherConfig::default()
        },
    );
    publisher
        .publish(Bytes::from_static(br#"{"keep":"alive"}"#))
        .await
        .unwrap();
    let response = get(&h, "ctl/3").await;
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    assert_eq!(response.text().await.unwrap(), r#"{"keep":"alive"}"#);
}

/// The tester spawns these futures on other tasks; this fails to compile if they stop being
/// `Send + 'static`.
#[allow(dead_code)]
fn client_futures_can_be_spawned(
    mut publisher: TricklePublisher,
    segment: SegmentWriter,
    mut subscriber: TrickleSubscriber,
) {
    fn spawnable<T: Send + 'static>(_: T) {}
    spawnable(segment.finish());
    spawnable(async move {
        let _ = publisher.begin_segment().await;
        let _ = publisher.publish(Bytes::new()).await;
        publisher.close().await;
    });
    spawnable(async move {
        if let Ok(Some(mut segment)) = subscriber.next_segment().await {
            let _ = segment.chunk().await;
        }
    });
    spawnable(serve_connection(
        tokio::io::duplex(1).0,
        axum::Router::new(),
        std::future::pending(),
    ));
}

// ---- conformance: exchanges recorded from go-livepeer ------------------------------------------
//
// Exchanges written down from go-livepeer's trickle server (`trickle/trickle_server.go`:
// `handleGet`, `handlePost`, `closeSeq`, `handleDelete`, the 470 answer and its
// `Lp-Trickle-Latest`/`Lp-Trickle-Seq` headers, `Lp-Trickle-Closed` on a deleted channel), as
// data, checked two ways: against lvt's server (each request sent over a socket must get the
// recorded status, headers and body), and against lvt's client (a replay server answers lvt's
// subscriber and publisher with the recorded answers; the client must send the recorded requests
// and draw the conclusion a go-livepeer client draws: jump to the live edge, end on a closed
// channel, give up on an unknown one). Checking the client against recorded answers rather than
// against lvt's own server means a misreading shared by both sides cannot pass. Only what
// go-livepeer's code pins is recorded: a header it sets is listed with its value; one that its
// versions set differently is not listed.

/// The channel every exchange uses, created with this MIME type.
const CHANNEL: &str = "ch";
const MIME: &str = "video/MP2T";

/// One recorded request and go-livepeer's answer to it.
#[derive(Clone, Copy, Debug)]
struct Exchange {
    method: &'static str,
    /// Below `/ai/trickle/`.
    path: &'static str,
    body: &'static str,
    status: u16,
    /// Headers the answer carries, with their values.
    headers: &'static [(&'static str, &'static str)],
    /// The answer's body; `None` where go-livepeer's body is not pinned.
    answer: Option<&'static str>,
}

const fn post(path: &'static str, body: &'static str) -> Exchange {
    Exchange {
        method: "POST",
        path,
        body,
        status: 200,
        headers: &[],
        answer: None,
    }
}

/// A segment is published and read back: the reader gets its bytes, its sequence number, the
/// channel's MIME type and, since the write head has moved past it, the live edge.
const PUBLISH_AND_READ: &[Exchange] = &[
    post("ch/0", "seg0"),
    Exchange {
        method: "GET",
        path: "ch/0",
        body: "",
        status: 200,
        headers: &[
            ("lp-trickle-seq", "0"),
            ("lp-trickle-latest", "1"),
            ("content-type", MIME),
        ],
        answer: Some("seg0"),
    },
];

/// Seven segments through a five-segment ring: the oldest is gone (470 with the live edge and
/// the asked index), a kept one is served, and one too far ahead is 470 as well.
const EVICTED: &[Exchange] = &[
    post("ch/0", "s0"),
    post("ch/1", "s1"),
    post("ch/2", "s2"),
    post("ch/3", "s3"),
    post("ch/4", "s4"),
    post("ch/5", "s5"),
    post("ch/6", "s6"),
    Exchange {
        method: "GET",
        path: "ch/0",
        body: "",
        status: 470,
        headers: &[("lp-trickle-latest", "7"), ("lp-trickle-seq", "0")],
        answer: Some("Entry not found"),
    },
    Exchange {
        method: "GET",
        path: "ch/6",
        body: "",
        status: 200,
        headers: &[("lp-trickle-seq", "6"), ("lp-trickle-latest", "7")],
        answer: Some("s6"),
    },
    Exchange {
        method: "GET",
        path: "ch/9",
        body: "",
        status: 470,
        headers: &[("lp-trickle-latest", "7"), ("lp-trickle-seq", "9")],
        answer: Some("Entry not found"),
    },
];

/// Requests go-livepeer refuses: an unknown channel (404 on GET and POST, 400 on DELETE), an
/// index that is not a number, a segment that does not exist.
const REFUSED: &[Exchange] = &[
    Exchange {
        method: "GET",
        path: "nope/0",
        body: "",
        status: 404,
        headers: &[],
        answer: Some("Stream not found\n"),
    },
    Exchange {
        method: "POST",
        path: "nope/0",
        body: "x",
        status: 404,
        headers: &[],
        answer: Some("Stream not found\n"),
    },
    Exchange {
        method: "DELETE",
        path: "nope",
        body: "",
        status: 400,
        headers: &[],
        answer: Some("Invalid stream\n"),
    },
    Exchange {
        method: "GET",
        path: "ch/x",
        body: "",
        status: 400,
        headers: &[],
        answer: Some("Invalid idx\n"),
    },
    Exchange {
        method: "POST",
        path: "ch/x",
        body: "x",
        status: 400,
        headers: &[],
        answer: Some("Invalid idx\n"),
    },
    Exchange {
        method: "DELETE",
        path: "ch/x",
        body: "",
        status: 400,
        headers: &[],
        answer: Some("Invalid idx\n"),
    },
    Exchange {
        method: "DELETE",
        path: "ch/3",
        body: "",
        status: 400,
        headers: &[],
        answer: Some("Nonexistent segment\n"),
    },
];

/// A channel deleted while a reader waits at the head: the reader's answer is a 200 without a
/// body, `Lp-Trickle-Closed: terminated`; the channel is then unknown.
const CLOSED_WHILE_WAITING: &[Exchange] = &[
    Exchange {
        method: "GET",
        path: "ch/0",
        body: "",
        status: 200,
        headers: &[("lp-trickle-closed", "terminated"), ("lp-trickle-seq", "0")],
        answer: Some(""),
    },
    Exchange {
        method: "DELETE",
        path: "ch",
        body: "",
        status: 200,
        headers: &[],
        answer: None,
    },
    Exchange {
        method: "GET",
        path: "ch/0",
        body: "",
        status: 404,
        headers: &[],
        answer: Some("Stream not found\n"),
    },
];

// ---- conformance against lvt's server -------------------------------------------------------

impl Harness {
    fn recorded(&self, exchange: &Exchange) -> reqwest::RequestBuilder {
        let url = format!("http://{}/ai/trickle/{}", self.addr, exchange.path);
        let method = reqwest::Method::from_bytes(exchange.method.as_bytes()).unwrap();
        let mut request = self.client.request(method, url);
        if exchange.method == "POST" {
            request = request
                .header("content-type", MIME)
                .body(exchange.body.to_owned());
        }
        request
    }

    async fn check_recorded(&self, exchange: &Exchange) {
        let response = self.recorded(exchange).send().await.unwrap();
        check_answer(exchange, response).await;
    }
}

async fn check_answer(exchange: &Exchange, response: reqwest::Response) {
    let what = format!("{} /ai/trickle/{}", exchange.method, exchange.path);
    assert_eq!(response.status().as_u16(), exchange.status, "{what}");
    for (name, value) in exchange.headers {
        let got = response.headers().get(*name).and_then(|v| v.to_str().ok());
        assert_eq!(got, Some(*value), "{what}: header {name}");
    }
    let body = response.text().await.unwrap();
    if let Some(answer) = exchange.answer {
        assert_eq!(body, answer, "{what}: body");
    }
}

#[tokio::test]
async fn conformance_lvts_server_answers_as_recorded() {
    for exchanges in [PUBLISH_AND_READ, EVICTED, REFUSED] {
        let h = Harness::start(TrickleConfig::default()).await;
        h.server.create_channel(CHANNEL, MIME);
        for exchange in exchanges {
            h.check_recorded(exchange).await;
        }
    }
    // The closed channel: the first GET waits at the head until the DELETE ends it.
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel(CHANNEL, MIME);
    let (waiting, delete, after) = (
        &CLOSED_WHILE_WAITING[0],
        &CLOSED_WHILE_WAITING[1],
        &CLOSED_WHILE_WAITING[2],
    );
    let pending = tokio::spawn(h.recorded(waiting).send());
    h.wait_for_request("GET /ai/trickle/ch/0 ", 1).await;
    h.check_recorded(delete).await;
    check_answer(waiting, pending.await.unwrap().unwrap()).await;
    h.check_recorded(after).await;
}

// ---- conformance against lvt's client -------------------------------------------------------

/// The recorded answers to one `METHOD /path`, in order.
type RecordedAnswers = (String, VecDeque<Exchange>);

/// Answers each request with the next recorded answer for its method and path, and logs the
/// requests; a request nobody recorded is answered 404, as for an unknown channel.
#[derive(Clone, Default)]
struct Replay {
    answers: Arc<Mutex<Vec<RecordedAnswers>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Replay {
    fn answering(exchanges: &[Exchange]) -> Replay {
        let replay = Replay::default();
        for exchange in exchanges {
            let key = format!("{} /ai/trickle/{}", exchange.method, exchange.path);
            let mut answers = replay.answers.lock().unwrap();
            match answers.iter_mut().find(|(k, _)| *k == key) {
                Some((_, queue)) => queue.push_back(*exchange),
                None => answers.push((key, VecDeque::from([*exchange]))),
            }
        }
        replay
    }

    async fn start(self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(answer).with_state(self);
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/ai/trickle/{CHANNEL}")
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

async fn answer(State(replay): State<Replay>, request: Request) -> Response {
    let key = format!("{} {}", request.method(), request.uri().path());
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    replay.log.lock().unwrap().push(match content_type {
        Some(content_type) if !body.is_empty() => {
            format!("{key} ({content_type}) {}", String::from_utf8_lossy(&body))
        }
        _ => key.clone(),
    });
    let recorded = replay
        .answers
        .lock()
        .unwrap()
        .iter_mut()
        .find(|(k, _)| *k == key)
        .and_then(|(_, queue)| queue.pop_front());
    let Some(exchange) = recorded else {
        return Response::builder()
            .status(404)
            .body(Body::from("Stream not found\n"))
            .unwrap();
    };
    let mut response = Response::builder().status(exchange.status);
    for (name, value) in exchange.headers {
        response = response.header(*name, *value);
    }
    response
        .body(Body::from(exchange.answer.unwrap_or("")))
        .unwrap()
}

fn exchange(method: &'static str, path: &'static str, from: &[Exchange]) -> Exchange {
    *from
        .iter()
        .find(|e| e.method == method && e.path == path)
        .expect("recorded")
}

#[tokio::test]
async fn conformance_lvts_subscriber_reads_the_recorded_answers_as_go_livepeer_means_them() {
    // A segment answered 200 is read whole, with its sequence number.
    let replay = Replay::answering(&[exchange("GET", "ch/0", PUBLISH_AND_READ)]);
    let url = replay.clone().start().await;
    let mut subscriber = TrickleSubscriber::new(reqwest::Client::new(), url).starting_at(0);
    let mut segment = subscriber.next_segment().await.unwrap().expect("a segment");
    assert_eq!(segment.seq, 0);
    assert_eq!(
        segment.read_all().await.unwrap(),
        Bytes::from_static(b"seg0")
    );
    assert_eq!(replay.requests()[0], "GET /ai/trickle/ch/0");

    // 470 with the live edge: the subscriber jumps to it, counting the gap.
    let replay = Replay::answering(&[
        exchange("GET", "ch/0", EVICTED),
        Exchange {
            path: "ch/7",
            headers: &[("lp-trickle-seq", "7")],
            answer: Some("live"),
            ..exchange("GET", "ch/6", EVICTED)
        },
    ]);
    let url = replay.clone().start().await;
    let mut subscriber = TrickleSubscriber::new(reqwest::Client::new(), url).starting_at(0);
    let mut segment = subscriber.next_segment().await.unwrap().expect("a segment");
    assert_eq!(segment.seq, 7);
    assert_eq!(
        segment.read_all().await.unwrap(),
        Bytes::from_static(b"live")
    );
    assert_eq!(subscriber.stats().gaps, 7);
    assert_eq!(
        replay.requests()[..2],
        ["GET /ai/trickle/ch/0", "GET /ai/trickle/ch/7"]
    );

    // A closed channel ends the subscription; an unknown one too, without retrying forever.
    for recorded in [CLOSED_WHILE_WAITING[0], exchange("GET", "nope/0", REFUSED)] {
        let replay = Replay::answering(&[Exchange {
            path: "ch/0",
            ..recorded
        }]);
        let url = replay.clone().start().await;
        let mut subscriber = TrickleSubscriber::new(reqwest::Client::new(), url).starting_at(0);
        let next = tokio::time::timeout(Duration::from_secs(10), subscriber.next_segment())
            .await
            .expect("the subscriber decides in time");
        let ended = match next {
            Ok(None) => "ended".to_owned(),
            Ok(Some(segment)) => format!("segment {}", segment.seq),
            Err(error) => format!("error {error}"),
        };
        assert_eq!(ended, "ended", "{} {}", recorded.status, recorded.path);
    }
}

#[tokio::test]
async fn conformance_lvts_publisher_sends_the_recorded_requests() {
    let replay = Replay::answering(&[
        post("ch/0", "seg0"),
        post("ch/1", "seg1"),
        Exchange {
            method: "DELETE",
            path: "ch",
            ..post("ch", "")
        },
    ]);
    let url = replay.clone().start().await;
    let mut publisher = TricklePublisher::new(reqwest::Client::new(), url);
    publisher
        .publish(Bytes::from_static(b"seg0"))
        .await
        .unwrap();
    publisher
        .publish(Bytes::from_static(b"seg1"))
        .await
        .unwrap();
    publisher.close().await;
    let requests = replay.requests();
    // The publisher may preconnect the next segment (an empty POST held open); the segments
    // themselves and the channel's deletion come as go-livepeer's server expects them.
    let with_bodies: Vec<&String> = requests
        .iter()
        .filter(|r| !r.starts_with("POST") || r.contains(") "))
        .collect();
    assert_eq!(
        with_bodies,
        [
            "POST /ai/trickle/ch/0 (video/MP2T) seg0",
            "POST /ai/trickle/ch/1 (video/MP2T) seg1",
            "DELETE /ai/trickle/ch",
        ],
        "{requests:?}"
    );
}

// The client on its own connections (`SocketPublisher`, `TrickleSubscriber::over_sockets`),
// which the tester uses for the media it sends and reads: the same protocol as the `reqwest`
// client above, against the same server.

fn socket_publisher(h: &Harness, channel: &str) -> SocketPublisher {
    SocketPublisher::new(&h.url(channel), PublisherConfig::default())
}

fn socket_subscriber(h: &Harness, channel: &str) -> TrickleSubscriber {
    TrickleSubscriber::over_sockets(h.url(channel), SubscriberConfig::default())
}

async fn publish_over_sockets(publisher: &mut SocketPublisher, parts: &[&'static [u8]]) -> i64 {
    let mut segment = publisher.begin_segment().await.unwrap();
    for part in parts {
        segment.write(Bytes::from_static(part)).await.unwrap();
    }
    segment.finish().await.unwrap().seq
}

/// What both publishers offer, so that one test body checks both transports.
trait Publish {
    type Segment: Segment;
    async fn begin(&mut self) -> Result<Self::Segment, TrickleError>;
    fn counters(&self) -> PublisherStats;
}

trait Segment {
    async fn put(&mut self, data: &'static [u8]) -> Result<(), TrickleError>;
    async fn done(self) -> Result<SegmentOutcome, TrickleError>;
}

/// Both publishers have the same methods under the same names.
macro_rules! publishes {
    ($publisher:ty, $segment:ty) => {
        impl Publish for $publisher {
            type Segment = $segment;
            async fn begin(&mut self) -> Result<$segment, TrickleError> {
                self.begin_segment().await
            }
            fn counters(&self) -> PublisherStats {
                self.stats()
            }
        }

        impl Segment for $segment {
            async fn put(&mut self, data: &'static [u8]) -> Result<(), TrickleError> {
                self.write(Bytes::from_static(data)).await
            }
            async fn done(self) -> Result<SegmentOutcome, TrickleError> {
                self.finish().await
            }
        }
    };
}

publishes!(TricklePublisher, SegmentWriter);
publishes!(SocketPublisher, SocketSegmentWriter);

/// A publisher's constructor: the reqwest one or the socket one.
type MakePublisher<P> = fn(&Harness, &str) -> P;

async fn publisher_skips_repeated_100_continue<P: Publish>(make: MakePublisher<P>) {
    let h = Harness::start(TrickleConfig {
        keepalive_interval: Duration::from_millis(20),
        ..TrickleConfig::default()
    })
    .await;
    h.server.create_channel("p", "video/MP2T");
    let mut publisher = make(&h, "p");
    let mut segment = publisher.begin().await.unwrap();
    h.wait_until("several keepalives were sent", |h| {
        h.server_wrote().matches("HTTP/1.1 100 Continue").count() >= 6
    })
    .await;
    segment.put(b"late data").await.unwrap();
    let outcome = segment.done().await.unwrap();
    assert_eq!((outcome.seq, outcome.bytes, outcome.retried), (0, 9, false));
    assert_eq!(get(&h, "p/0").await.text().await.unwrap(), "late data");
    // The interim answers waiting on the next preconnected POST are skipped too.
    let mut segment = publisher.begin().await.unwrap();
    segment.put(b"next").await.unwrap();
    segment.done().await.unwrap();
    assert_eq!(get(&h, "p/1").await.text().await.unwrap(), "next");
}

#[tokio::test]
async fn reqwest_publisher_tolerates_repeated_100_continue() {
    publisher_skips_repeated_100_continue(Harness::publisher).await;
}

#[tokio::test]
async fn socket_publisher_skips_repeated_100_continue() {
    publisher_skips_repeated_100_continue(socket_publisher).await;
}

async fn publisher_drops_a_partly_sent_segment<P: Publish>(make: MakePublisher<P>) {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("pf", "video/MP2T");
    let mut reader = h.server.local_subscriber("pf").unwrap();
    let mut publisher = make(&h, "pf");
    let mut segment = publisher.begin().await.unwrap();
    segment.put(b"partial").await.unwrap();
    let mut received = reader.next_segment().await.unwrap();
    assert_eq!(received.next_chunk().await.unwrap(), "partial");

    h.kill_connections();
    let write = segment.put(b"more").await;
    let finish = segment.done().await;
    assert!(finish.is_err(), "write {write:?}, finish {finish:?}");
    let stats = publisher.counters();
    assert_eq!(stats.dropped_segments, 1, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
    assert!(h.server_read().contains("DELETE /ai/trickle/pf/0 HTTP/1.1"));
    // The DELETE closed the segment, so its reader reaches the end.
    let rest = tokio::time::timeout(Duration::from_secs(5), received.next_chunk())
        .await
        .expect("segment closed");
    assert!(rest.is_none());
}

#[tokio::test]
async fn publisher_drops_a_partly_sent_segment_with_delete() {
    publisher_drops_a_partly_sent_segment(Harness::publisher).await;
}

#[tokio::test]
async fn socket_publisher_drops_a_partly_sent_segment_with_delete() {
    publisher_drops_a_partly_sent_segment(socket_publisher).await;
}

async fn subscriber_reissues_a_get<F>(make: F)
where
    F: FnOnce(String, SubscriberConfig) -> TrickleSubscriber,
{
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("slow", "video/MP2T");
    let mut subscriber = make(
        h.url("slow"),
        SubscriberConfig {
            first_byte_timeout: Duration::from_millis(150),
            ..SubscriberConfig::default()
        },
    );
    let reader = tokio::spawn(async move {
        let segment = read_segment(&mut subscriber).await;
        (segment, subscriber.stats())
    });
    h.wait_for_request("GET /ai/trickle/slow/-1 ", 3).await;
    let mut publisher = h.server.local_publisher("slow").unwrap();
    let writer = publisher.begin_segment();
    writer.write(b"finally");
    writer.close();
    let (segment, stats) = reader.await.unwrap();
    assert_eq!(segment, Some((0, b"finally".to_vec())));
    assert!(stats.retries >= 2, "{stats:?}");
}

#[tokio::test]
async fn subscriber_reissues_a_get_that_saw_no_headers() {
    let client = reqwest::Client::new();
    subscriber_reissues_a_get(|url, config| TrickleSubscriber::with_config(client, url, config))
        .await;
}

#[tokio::test]
async fn socket_subscriber_reissues_a_get_that_saw_no_headers() {
    subscriber_reissues_a_get(TrickleSubscriber::over_sockets).await;
}

#[tokio::test]
async fn socket_clients_carry_segments_in_order_on_kept_alive_connections() {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("s", "video/MP2T");
    let mut subscriber = socket_subscriber(&h, "s").starting_at(0);
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(segment) = read_segment(&mut subscriber).await {
            got_tx.send(segment).unwrap();
        }
        subscriber.stats()
    });
    let mut publisher = socket_publisher(&h, "s");
    for i in 0..8 {
        assert_eq!(publisher.seq(), i);
        assert_eq!(
            publish_over_sockets(&mut publisher, &[b"seg", b"ment"]).await,
            i
        );
        assert_eq!(got_rx.recv().await.unwrap(), (i, b"segment".to_vec()));
    }
    let stats = publisher.stats();
    assert_eq!((stats.segments, stats.bytes, stats.retries), (8, 56, 0));
    // The body went out chunk by chunk, as written.
    assert!(
        h.server_read()
            .contains("3\r\nseg\r\n4\r\nment\r\n0\r\n\r\n")
    );
    // Each next segment was preconnected before the current one was written.
    assert!(h.server_read().contains("POST /ai/trickle/s/8 HTTP/1.1"));
    // Eight segments each way, plus the preconnects, on a few kept-alive connections.
    let connections = h.connections.lock().unwrap().len();
    assert!(connections <= 6, "{connections} connections");
    publisher.close().await;
    let stats = reader.await.unwrap();
    assert!(!h.server.channel_exists("s"));
    assert_eq!((stats.segments, stats.errors, stats.gaps), (8, 0, 0));
}

#[tokio::test]
async fn socket_publisher_sees_a_closed_channel() {
    let h = Harness::start(TrickleConfig::default()).await;
    h.server.create_channel("gone", "video/MP2T");
    let mut publisher = socket_publisher(&h, "gone");
    publish_over_sockets(&mut publisher, &[b"one"]).await;
    h.wait_for_request("POST /ai/trickle/gone/1 ", 1).await;
    // Another party deletes the channel: the preconnected POST is answered at once.
    assert_eq!(
        h.client
            .delete(h.url("gone"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    h.wait_until("the preconnected POST was answered", |h| {
        h.server_wrote().matches("HTTP/1.1 ").count() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let begun = publisher.begin_segment().await;
    assert!(
        matches!(begun, Err(TrickleError::ChannelGone)),
        "{:?}",
        begun.err()
    );
    // Unknown channels are 404, which ends the stream as well.
    let mut unknown = socket_publisher(&h, "never");
    let mut segment = unknown.begin_segment().await.unwrap();
    let _ = segment.write(Bytes::from_static(b"x")).await;
    assert!(matches!(
        segment.finish().await,
        Err(TrickleError::ChannelGone | TrickleError::SegmentFailed)
    ));
}

#[tokio::test]
async fn socket_clients_fail_clearly_on_a_bad_url_or_a_dead_server() {
    let mut publisher = SocketPublisher::new("ftp://h/x", PublisherConfig::default());
    let error = publisher.begin_segment().await.err().unwrap().to_string();
    assert!(error.contains("scheme"), "{error}");
    // A port nothing listens on.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/ai/trickle/x");
    let mut subscriber = TrickleSubscriber::over_sockets(url, SubscriberConfig::default());
    let error = subscriber.next_segment().await.err().unwrap();
    assert!(matches!(error, TrickleError::Connection(_)), "{error:?}");
}
