//! Our own HTTP/1.1 server connection driver, serving an `axum::Router`.
//!
//! It exists because hyper's server cannot send repeated interim `100 Continue` responses,
//! which the trickle server sends every 10 s as a keepalive while a preconnected POST waits
//! for its first body byte. Handlers reach that ability through the [`Interim`] request
//! extension. The parsing lives in sans-IO parts ([`head`], [`chunked`]); this module is the
//! thin tokio driver that feeds them.
//!
//! Behaviour: keep-alive with sequential (pipelined) requests; `Content-Length` and chunked
//! request bodies streamed to the handler as they arrive; `Expect: 100-continue` answered when
//! the handler first polls the body; responses with a known length or streamed chunked, each
//! body frame flushed as soon as the handler yields it; HEAD; `Connection: close`. While a
//! request is in flight the driver keeps reading the socket, so a client that disconnects
//! cancels (drops) the handler future instead of leaving it blocked forever.

pub mod chunked;
pub mod client;
pub mod head;

mod body;

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc, oneshot};
use tower::ServiceExt;

use self::body::IncomingBody;
use self::chunked::{ChunkedDecoder, Decoded, LAST_CHUNK, encode_chunk};
use self::head::{
    CONTINUE_RESPONSE, HeadLimits, RequestFraming, ResponseFraming, encode_error_response,
    encode_response_head, header_has_token, parse_request_head, request_framing,
};

/// Errors of the HTTP/1.1 driver.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    /// Reading from or writing to the connection failed for a reason other than the peer
    /// going away.
    #[error("HTTP/1.1 connection I/O failed: {0}")]
    Io(#[from] io::Error),
    /// An interim response was requested after the final response head was written (or for
    /// a request that is already finished).
    #[error("the final response has already started")]
    ResponseStarted,
    /// HTTP/1.0 clients do not understand interim responses, so none may be sent to them.
    #[error("interim responses cannot be sent to an HTTP/1.0 client")]
    InterimNotAllowed,
}

/// Settings of the connection driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct Http1Config {
    /// Limits on request heads; breaking them is answered with 431.
    pub head_limits: HeadLimits,
    /// How long a connection may sit without a complete request head before it is closed.
    /// `None` (the default, like Go's `http.Server`) waits forever.
    pub idle_timeout: Option<Duration>,
}

/// How many body frames may wait between the socket and a slow handler.
const BODY_CHANNEL_FRAMES: usize = 8;
/// How long we keep reading (and discarding) an unread request body before closing, so the
/// client receives our response instead of a connection reset.
const CLOSE_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// The most unread request-body bytes we discard before closing anyway.
const CLOSE_DRAIN_MAX_BYTES: usize = 1024 * 1024;

/// The write side of a connection, shared by the response writer and [`Interim`] handles.
struct WriterState {
    io: Box<dyn AsyncWrite + Send + Unpin>,
    /// Number of the request being answered; interim handles of older requests are stale.
    current_request: u64,
    /// Whether the final response head of `current_request` was written.
    final_started: bool,
    /// Whether the current request was HTTP/1.1 (1.0 clients get no interim responses).
    interim_allowed: bool,
}

type SharedWriter = Arc<Mutex<WriterState>>;

impl WriterState {
    async fn write_all_flush(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }
}

/// Request extension that lets a handler send interim `100 Continue` responses.
///
/// Only requests served by this driver carry it; requests arriving over HTTP/2 do not, so
/// handlers must treat it as optional (`Option<Extension<Interim>>`).
#[derive(Clone)]
pub struct Interim {
    writer: SharedWriter,
    request_id: u64,
}

impl std::fmt::Debug for Interim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interim")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl Interim {
    /// Writes `HTTP/1.1 100 Continue` immediately. May be called several times, but only
    /// before the handler's final response starts.
    pub async fn send_continue(&self) -> Result<(), Http1Error> {
        send_continue(&self.writer, self.request_id).await
    }
}

async fn send_continue(writer: &SharedWriter, request_id: u64) -> Result<(), Http1Error> {
    let mut state = writer.lock().await;
    if state.current_request != request_id || state.final_started {
        return Err(Http1Error::ResponseStarted);
    }
    if !state.interim_allowed {
        return Err(Http1Error::InterimNotAllowed);
    }
    state.write_all_flush(CONTINUE_RESPONSE).await?;
    Ok(())
}

/// Serves HTTP/1.1 requests on `io` with `service` until the client closes the connection, a
/// response requires closing it, or `shutdown` completes.
///
/// On shutdown an idle connection closes at once; a request in flight is answered first and
/// the connection closes after it.
pub async fn serve_connection<IO>(
    io: IO,
    service: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Http1Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_connection_with(io, service, shutdown, Http1Config::default()).await
}

/// [`serve_connection`] with explicit settings.
pub async fn serve_connection_with<IO>(
    io: IO,
    service: Router,
    shutdown: impl Future<Output = ()>,
    config: Http1Config,
) -> Result<(), Http1Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, write_half) = tokio::io::split(io);
    let writer: SharedWriter = Arc::new(Mutex::new(WriterState {
        io: Box::new(write_half),
        current_request: 0,
        final_started: false,
        interim_allowed: false,
    }));
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut shutdown = pin!(shutdown);
    let mut shutdown_fired = false;
    let mut request_id: u64 = 0;

    loop {
        // Phase 1: wait for a complete request head (pipelined bytes may already be buffered).
        let head = {
            let mut idle = pin!(idle_timer(config.idle_timeout));
            loop {
                match parse_request_head(&buf, &config.head_limits) {
                    Ok(Some((head, used))) => {
                        let _ = buf.split_to(used);
                        break head;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(message = "Refusing a malformed request head.", %error);
                        let response = encode_error_response(error.status(), &error.to_string());
                        close_connection(&writer, &mut reader, false, Some(&response)).await;
                        return Ok(());
                    }
                }
                if shutdown_fired && buf.is_empty() {
                    close_connection(&writer, &mut reader, true, None).await;
                    return Ok(());
                }
                reserve_read_space(&mut buf);
                tokio::select! {
                    read = reader.read_buf(&mut buf) => match read {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        Err(error) if is_disconnect(&error) => return Ok(()),
                        Err(error) => return Err(error.into()),
                    },
                    () = &mut shutdown, if !shutdown_fired => shutdown_fired = true,
                    () = &mut idle => {
                        tracing::debug!(message = "Closing an idle HTTP/1.1 connection.");
                        close_connection(&writer, &mut reader, true, None).await;
                        return Ok(());
                    }
                }
            }
        };

        // Phase 2: build the request around a streaming body.
        request_id += 1;
        let framing = match request_framing(&head) {
            Ok(framing) => framing,
            Err(error) => {
                tracing::debug!(message = "Refusing a request with invalid framing.", %error);
                let response = encode_error_response(error.status(), &error.to_string());
                close_connection(&writer, &mut reader, false, Some(&response)).await;
                return Ok(());
            }
        };
        let keep_alive = head.wants_keep_alive();
        let expect_continue = head.expects_continue() && framing != RequestFraming::Empty;
        let is_head_method = head.method == Method::HEAD;
        let version = head.version;
        {
            let mut state = writer.lock().await;
            state.current_request = request_id;
            state.final_started = false;
            state.interim_allowed = version == Version::HTTP_11;
        }
        let (body, feed) = match framing {
            RequestFraming::Empty => (Body::empty(), None),
            RequestFraming::Length(_) | RequestFraming::Chunked => {
                let (frames_tx, frames_rx) = mpsc::channel(BODY_CHANNEL_FRAMES);
                let (wanted_tx, wanted_rx) = oneshot::channel();
                let length = match framing {
                    RequestFraming::Length(n) => Some(n),
                    _ => None,
                };
                let body = Body::new(IncomingBody::new(frames_rx, wanted_tx, length));
                (
                    body,
                    Some(BodyFeed {
                        frames: frames_tx,
                        wanted: wanted_rx,
                    }),
                )
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = head.method;
        *request.uri_mut() = head.uri;
        *request.version_mut() = version;
        *request.headers_mut() = head.headers;
        request.extensions_mut().insert(Interim {
            writer: writer.clone(),
            request_id,
        });

        // Phase 3: run the handler while the body is pumped in and the socket watched.
        let mut progress = if framing == RequestFraming::Empty {
            BodyProgress::Complete
        } else {
            BodyProgress::Reading
        };
        let outcome = {
            let respond = pin!(respond(
                service.clone(),
                request,
                writer.clone(),
                is_head_method,
                keep_alive,
                version,
            ));
            let pump = pin!(pump_body(PumpArgs {
                reader: &mut reader,
                buf: &mut buf,
                framing,
                feed,
                writer: &writer,
                request_id,
                expect_continue,
                progress: &mut progress,
                watch_limit_bytes: config.head_limits.max_head_bytes,
            }));
            let mut respond = respond;
            let mut pump = pump;
            let mut pump_stopped = false;
            loop {
                tokio::select! {
                    outcome = &mut respond => break outcome,
                    stop = &mut pump, if !pump_stopped => match stop {
                        PumpStop::Disconnected => {
                            // Returning drops the handler future: blocked handlers must not
                            // outlive their client.
                            tracing::debug!(message = "Client disconnected; cancelling the handler.");
                            return Ok(());
                        }
                        PumpStop::BodyInvalid | PumpStop::BufferFull => pump_stopped = true,
                    },
                    () = &mut shutdown, if !shutdown_fired => shutdown_fired = true,
                }
            }
        };
        let close = match outcome {
            Ok(close) => close,
            Err(error) if is_disconnect(&error) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let body_complete = progress == BodyProgress::Complete;
        if close || !body_complete || shutdown_fired {
            close_connection(&writer, &mut reader, body_complete, None).await;
            return Ok(());
        }
    }
}

async fn idle_timer(timeout: Option<Duration>) {
    match timeout {
        Some(timeout) => tokio::time::sleep(timeout).await,
        None => std::future::pending().await,
    }
}

fn reserve_read_space(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 4 * 1024 {
        buf.reserve(8 * 1024);
    }
}

/// Whether an I/O error just means the peer went away.
fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

/// Optionally writes `final_bytes`, then flushes, shuts the write side and, when the request
/// body was not fully read, drains it briefly so the client sees our answer, not a reset.
async fn close_connection<R: AsyncRead + Unpin>(
    writer: &SharedWriter,
    reader: &mut R,
    body_complete: bool,
    final_bytes: Option<&[u8]>,
) {
    {
        let mut state = writer.lock().await;
        if let Some(bytes) = final_bytes {
            let _ = state.io.write_all(bytes).await;
        }
        let _ = state.io.flush().await;
        let _ = state.io.shutdown().await;
    }
    if body_complete {
        return;
    }
    let drain = async {
        let mut scratch = vec![0u8; 16 * 1024];
        let mut drained = 0usize;
        while drained < CLOSE_DRAIN_MAX_BYTES {
            match reader.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_DRAIN_TIMEOUT, drain).await;
}

/// Calls the handler and writes its response. Returns whether the connection must close.
async fn respond(
    service: Router,
    request: Request<Body>,
    writer: SharedWriter,
    is_head_method: bool,
    keep_alive: bool,
    version: Version,
) -> io::Result<bool> {
    let response = match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    write_response(&writer, response, is_head_method, keep_alive, version).await
}

async fn write_response(
    writer: &SharedWriter,
    response: Response<Body>,
    is_head_method: bool,
    keep_alive: bool,
    version: Version,
) -> io::Result<bool> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let mut close = !keep_alive || header_has_token(&parts.headers, &CONNECTION, "close");
    let declared_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let exact_length = body.size_hint().exact();
    let framing = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        ResponseFraming::NoBody {
            announced_length: None,
        }
    } else if is_head_method {
        ResponseFraming::NoBody {
            // axum empties HEAD bodies but keeps the GET body's length as a header.
            announced_length: declared_length.or(exact_length),
        }
    } else if let Some(length) = exact_length.or(declared_length) {
        ResponseFraming::Length(length)
    } else if version == Version::HTTP_10 {
        close = true;
        ResponseFraming::UntilClose
    } else {
        ResponseFraming::Chunked
    };

    let head = encode_response_head(status, &parts.headers, framing, close);
    {
        let mut state = writer.lock().await;
        state.final_started = true;
        state.write_all_flush(&head).await?;
    }
    if matches!(framing, ResponseFraming::NoBody { .. }) {
        return Ok(close);
    }

    let mut written: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                // The body cannot be completed; closing tells the client it is truncated.
                tracing::debug!(message = "Response body failed; closing the connection.", %error);
                return Ok(true);
            }
        };
        let Ok(data) = frame.into_data() else {
            // Trailers are not sent over HTTP/1.1 here.
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let mut state = writer.lock().await;
        match framing {
            ResponseFraming::Chunked => state.write_all_flush(&encode_chunk(&data)).await?,
            ResponseFraming::Length(length) => {
                let room = length.saturating_sub(written);
                let take = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
                state.write_all_flush(&data[..take]).await?;
                written += take as u64;
                if take < data.len() {
                    // The handler produced more than it announced; the extra bytes would
                    // corrupt the next response, so they are dropped and the connection closed.
                    return Ok(true);
                }
            }
            ResponseFraming::UntilClose => state.write_all_flush(&data).await?,
            ResponseFraming::NoBody { .. } => {}
        }
    }
    match framing {
        ResponseFraming::Chunked => {
            writer.lock().await.write_all_flush(LAST_CHUNK).await?;
        }
        ResponseFraming::Length(length) if written != length => close = true,
        _ => {}
    }
    Ok(close)
}

/// Where the request body stands, written by the pump and read after the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyProgress {
    Reading,
    Complete,
    Failed,
}

/// Why the pump stopped before the response finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PumpStop {
    /// The client closed the connection or it broke.
    Disconnected,
    /// The chunked framing was invalid; the handler got an error and the connection closes.
    BodyInvalid,
    /// Pipelined bytes filled the buffer; we stop reading until this request is answered.
    BufferFull,
}

struct BodyFeed {
    frames: mpsc::Sender<Result<Bytes, io::Error>>,
    wanted: oneshot::Receiver<()>,
}

struct PumpArgs<'a, R> {
    reader: &'a mut R,
    buf: &'a mut BytesMut,
    framing: RequestFraming,
    feed: Option<BodyFeed>,
    writer: &'a SharedWriter,
    request_id: u64,
    expect_continue: bool,
    progress: &'a mut BodyProgress,
    watch_limit_bytes: usize,
}

/// Reads the request body off the socket into the handler's body channel, then keeps
/// reading (buffering pipelined bytes) only to notice a disconnect.
async fn pump_body<R: AsyncRead + Unpin>(args: PumpArgs<'_, R>) -> PumpStop {
    let PumpArgs {
        reader,
        buf,
        framing,
        feed,
        writer,
        request_id,
        expect_continue,
        progress,
        watch_limit_bytes,
    } = args;

    if let Some(BodyFeed { frames, wanted }) = feed {
        if expect_continue && buf.is_empty() {
            // The client waits for our go-ahead; it is given once the handler reads the body.
            // A handler that answers without reading never receives it.
            let wanted_now = tokio::select! {
                result = wanted => result.is_ok(),
                () = frames.closed() => false,
            };
            if wanted_now {
                // An error here means the final response already started; nothing to do.
                let _ = send_continue(writer, request_id).await;
            }
        }
        let mut frames = Some(frames);
        match framing {
            RequestFraming::Empty => {}
            RequestFraming::Length(mut remaining) => {
                while remaining > 0 {
                    if buf.is_empty() && !read_more(reader, buf).await {
                        return PumpStop::Disconnected;
                    }
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let data = buf.split_to(take).freeze();
                    remaining -= take as u64;
                    forward(&mut frames, Ok(data)).await;
                }
            }
            RequestFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                loop {
                    match decoder.decode(buf) {
                        Ok(Decoded::Data(data)) => forward(&mut frames, Ok(data)).await,
                        Ok(Decoded::NeedMore) => {
                            if !read_more(reader, buf).await {
                                return PumpStop::Disconnected;
                            }
                        }
                        Ok(Decoded::Done) => break,
                        Err(error) => {
                            *progress = BodyProgress::Failed;
                            let error = io::Error::new(io::ErrorKind::InvalidData, error);
                            forward(&mut frames, Err(error)).await;
                            return PumpStop::BodyInvalid;
                        }
                    }
                }
            }
        }
        *progress = BodyProgress::Complete;
        // Dropping the sender ends the handler's body stream.
        drop(frames);
    }

    loop {
        if buf.len() >= watch_limit_bytes {
            return PumpStop::BufferFull;
        }
        if !read_more(reader, buf).await {
            return PumpStop::Disconnected;
        }
    }
}

/// Reads more bytes into `buf`; false when the connection ended or broke.
async fn read_more<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut BytesMut) -> bool {
    reserve_read_space(buf);
    matches!(reader.read_buf(buf).await, Ok(n) if n > 0)
}

/// Hands a body frame to the handler. If the handler dropped its body, the rest of the body
/// is read and discarded so the connection stays usable.
async fn forward(
    frames: &mut Option<mpsc::Sender<Result<Bytes, io::Error>>>,
    item: Result<Bytes, io::Error>,
) {
    if let Some(sender) = frames
        && sender.send(item).await.is_err()
    {
        *frames = None;
    }
}

#[cfg(test)]
mod tests;
