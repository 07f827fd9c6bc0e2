//! Driver tests over in-memory duplex pipes: every exchange is checked byte for byte.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{Notify, mpsc, oneshot};

use super::*;

/// Starts the driver on one end of a pipe and returns the client end plus the driver task.
fn start(
    router: Router,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<Result<(), Http1Error>>,
) {
    start_with(router, std::future::pending(), Http1Config::default())
}

fn start_with(
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    config: Http1Config,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<Result<(), Http1Error>>,
) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(serve_connection_with(server, router, shutdown, config));
    (client, task)
}

/// Reads until `text` holds `count` occurrences of `needle`, failing after 30 s (paused
/// time makes that instant when the driver is stuck).
async fn read_until(client: &mut DuplexStream, text: &mut String, needle: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while text.matches(needle).count() < count {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, client.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {text:?}"))
            .expect("read from the driver");
        assert!(
            n > 0,
            "connection closed while waiting for {needle:?}; got {text:?}"
        );
        text.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

/// Reads everything until the driver closes the connection.
async fn read_to_close(client: &mut DuplexStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), client.read_to_end(&mut out))
        .await
        .expect("driver closes the connection")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

fn echo_router() -> Router {
    Router::new().route("/hello", get(|| async { "hi" })).route(
        "/echo",
        post(|body: Body| async move {
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            format!(
                "got {} bytes: {}",
                bytes.len(),
                String::from_utf8_lossy(&bytes)
            )
        }),
    )
}

#[tokio::test(start_paused = true)]
async fn pipelined_requests_are_answered_in_order() {
    let (mut client, _task) = start(echo_router());
    client
        .write_all(
            b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\
              POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
              GET /missing HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut client, &mut text, "HTTP/1.1 ", 3).await;
    read_until(&mut client, &mut text, "got 3 bytes: abc", 1).await;
    let first = text.find("hi").unwrap();
    let second = text.find("got 3 bytes: abc").unwrap();
    let third = text.find("HTTP/1.1 404").unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(first < second && second < third, "{text}");
    assert!(text.contains("content-length: 2\r\n"));
}

#[tokio::test(start_paused = true)]
async fn chunked_request_body_is_decoded_across_writes() {
    let (mut client, _task) = start(echo_router());
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        .await
        .unwrap();
    tokio::task::yield_now().await;
    client.write_all(b"lo\r\n7\r\n, worl").await.unwrap();
    tokio::task::yield_now().await;
    client.write_all(b"d\r\n0\r\n\r\n").await.unwrap();
    let mut text = String::new();
    read_until(&mut client, &mut text, "got 12 bytes: hello, world", 1).await;
}

#[tokio::test(start_paused = true)]
async fn request_body_streams_to_handler_before_it_ends() {
    // The handler reports each frame as it arrives, proving nothing is buffered whole.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Bytes>();
    let router = Router::new().route(
        "/up",
        post(move |body: Body| {
            let seen_tx = seen_tx.clone();
            async move {
                let mut stream = body.into_data_stream();
                while let Some(Ok(frame)) = stream.next().await {
                    let _ = seen_tx.send(frame);
                }
                "done"
            }
        }),
    );
    let (mut client, _task) = start(router);
    client
        .write_all(b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfirs\r\n")
        .await
        .unwrap();
    assert_eq!(seen_rx.recv().await.unwrap(), Bytes::from_static(b"firs"));
    client.write_all(b"3\r\nt!!\r\n0\r\n\r\n").await.unwrap();
    assert_eq!(seen_rx.recv().await.unwrap(), Bytes::from_static(b"t!!"));
    let mut text = String::new();
    read_until(&mut client, &mut text, "done", 1).await;
}

#[tokio::test(start_paused = true)]
async fn streamed_response_frames_are_flushed_one_by_one() {
    let (frame_tx, frame_rx) = mpsc::channel::<Bytes>(1);
    let frame_rx = Arc::new(tokio::sync::Mutex::new(Some(frame_rx)));
    let router = Router::new().route(
        "/live",
        get(move || {
            let frame_rx = frame_rx.clone();
            async move {
                let rx = frame_rx.lock().await.take().unwrap();
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
                });
                Body::from_stream(stream)
            }
        }),
    );
    let (mut client, _task) = start(router);
    client
        .write_all(b"GET /live HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    frame_tx.send(Bytes::from_static(b"one")).await.unwrap();
    let mut text = String::new();
    read_until(&mut client, &mut text, "3\r\none\r\n", 1).await;
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    frame_tx.send(Bytes::from_static(b"second")).await.unwrap();
    read_until(&mut client, &mut text, "6\r\nsecond\r\n", 1).await;
    drop(frame_tx);
    read_until(&mut client, &mut text, "0\r\n\r\n", 1).await;
}

#[tokio::test(start_paused = true)]
async fn oversized_head_gets_431_and_close() {
    let config = Http1Config {
        head_limits: HeadLimits {
            max_head_bytes: 128,
            max_headers: 8,
        },
        idle_timeout: None,
    };
    let (mut client, task) = start_with(echo_router(), std::future::pending(), config);
    let mut request = b"GET /hello HTTP/1.1\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'z', 200));
    client.write_all(&request).await.unwrap();
    let text = read_to_close(&mut client).await;
    assert!(
        text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{text}"
    );
    assert!(text.contains("connection: close\r\n"));
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn too_many_headers_gets_431_and_garbage_gets_400() {
    let config = Http1Config {
        head_limits: HeadLimits {
            max_head_bytes: 4096,
            max_headers: 2,
        },
        idle_timeout: None,
    };
    let (mut client, _task) = start_with(echo_router(), std::future::pending(), config);
    client
        .write_all(b"GET /hello HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_to_close(&mut client)
            .await
            .starts_with("HTTP/1.1 431 ")
    );

    let (mut client, _task) = start(echo_router());
    client.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
    assert!(
        read_to_close(&mut client)
            .await
            .starts_with("HTTP/1.1 400 ")
    );

    let (mut client, _task) = start(echo_router());
    client
        .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab")
        .await
        .unwrap();
    assert!(
        read_to_close(&mut client)
            .await
            .starts_with("HTTP/1.1 400 ")
    );
}

#[tokio::test(start_paused = true)]
async fn interim_continue_can_be_sent_repeatedly_before_the_response() {
    let router = Router::new().route(
        "/wait",
        post(
            |Extension(interim): Extension<Interim>, body: Body| async move {
                interim.send_continue().await.unwrap();
                interim.send_continue().await.unwrap();
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                format!("len {}", bytes.len())
            },
        ),
    );
    let (mut client, _task) = start(router);
    client
        .write_all(b"POST /wait HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut client, &mut text, "HTTP/1.1 100 Continue\r\n\r\n", 2).await;
    assert!(!text.contains("200"), "{text}");
    client.write_all(b"2\r\nok\r\n0\r\n\r\n").await.unwrap();
    read_until(&mut client, &mut text, "len 2", 1).await;
    assert_eq!(
        text.matches("HTTP/1.1 100 Continue\r\n\r\n").count(),
        2,
        "{text}"
    );
    let final_at = text.find("HTTP/1.1 200 OK").unwrap();
    assert!(final_at > text.rfind("100 Continue").unwrap());
}

#[tokio::test(start_paused = true)]
async fn interim_is_refused_after_the_final_response() {
    let (done_tx, done_rx) = oneshot::channel();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let router = Router::new().route(
        "/late",
        get(move |Extension(interim): Extension<Interim>| {
            let done_tx = done_tx.clone();
            async move {
                // Try again once the response is written.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let result = interim.send_continue().await;
                    let _ = done_tx.lock().unwrap().take().unwrap().send(result);
                });
                "now"
            }
        }),
    );
    let (mut client, _task) = start(router);
    client
        .write_all(b"GET /late HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut client, &mut text, "now", 1).await;
    let result = done_rx.await.unwrap();
    assert!(
        matches!(result, Err(Http1Error::ResponseStarted)),
        "{result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn expect_continue_is_answered_when_the_handler_reads() {
    let (mut client, _task) = start(echo_router());
    client
        .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut client, &mut text, "HTTP/1.1 100 Continue\r\n\r\n", 1).await;
    client.write_all(b"data").await.unwrap();
    read_until(&mut client, &mut text, "got 4 bytes: data", 1).await;
}

#[tokio::test(start_paused = true)]
async fn head_request_gets_length_but_no_body() {
    let (mut client, _task) = start(echo_router());
    client
        .write_all(b"HEAD /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut client).await;
    let second = text.find("HTTP/1.1 200 OK").and_then(|first| {
        text[first + 1..]
            .find("HTTP/1.1 200 OK")
            .map(|i| i + first + 1)
    });
    let second = second.expect("two responses");
    let head_response = &text[..second];
    assert!(head_response.contains("content-length: 2\r\n"), "{text}");
    assert!(
        head_response.ends_with("\r\n\r\n"),
        "HEAD has no body: {text}"
    );
    assert!(text[second..].ends_with("hi"), "{text}");
    assert!(text[second..].contains("connection: close\r\n"));
}

#[tokio::test(start_paused = true)]
async fn http10_request_is_answered_and_closed() {
    let (mut client, _task) = start(echo_router());
    client
        .write_all(b"GET /hello HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut client).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("hi"));
}

/// Sets a flag when dropped, so a test can see a handler future being cancelled.
struct DropFlag(Arc<AtomicBool>, Arc<Notify>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        self.1.notify_one();
    }
}

#[tokio::test(start_paused = true)]
async fn client_disconnect_drops_a_blocked_handler() {
    let dropped = Arc::new(AtomicBool::new(false));
    let notify = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    let router = {
        let dropped = dropped.clone();
        let notify = notify.clone();
        let started = started.clone();
        Router::new().route(
            "/block",
            get(move || {
                let guard = DropFlag(dropped.clone(), notify.clone());
                let started = started.clone();
                async move {
                    let _guard = guard;
                    started.notify_one();
                    std::future::pending::<()>().await;
                    "never"
                }
            }),
        )
    };
    let (mut client, task) = start(router);
    client
        .write_all(b"GET /block HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    started.notified().await;
    assert!(!dropped.load(Ordering::SeqCst));
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("handler dropped after disconnect");
    assert!(dropped.load(Ordering::SeqCst));
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_an_idle_connection_and_finishes_a_busy_one() {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (mut client, task) = start_with(
        echo_router(),
        async move {
            let _ = stop_rx.await;
        },
        Http1Config::default(),
    );
    client
        .write_all(b"GET /hello HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut client, &mut text, "hi", 1).await;
    stop_tx.send(()).unwrap();
    let rest = read_to_close(&mut client).await;
    assert!(rest.is_empty(), "{rest}");
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn unread_body_closes_the_connection_after_the_response() {
    let router = Router::new().route("/ignore", post(|| async { "ignored" }));
    let (mut client, task) = start(router);
    client
        .write_all(b"POST /ignore HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial")
        .await
        .unwrap();
    let mut text = String::new();
    read_until(&mut client, &mut text, "ignored", 1).await;
    // The rest of the body never comes; the driver gives up after a short drain.
    let rest = read_to_close(&mut client).await;
    assert!(rest.is_empty(), "{rest}");
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_a_silent_connection() {
    let config = Http1Config {
        idle_timeout: Some(Duration::from_secs(5)),
        ..Http1Config::default()
    };
    let (mut client, task) = start_with(echo_router(), std::future::pending(), config);
    let start = tokio::time::Instant::now();
    assert!(read_to_close(&mut client).await.is_empty());
    assert!(start.elapsed() >= Duration::from_secs(5));
    task.await.unwrap().unwrap();
}
