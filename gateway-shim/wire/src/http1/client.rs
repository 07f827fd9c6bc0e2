//! HTTP/1.1 client connections on plain tokio sockets, for the trickle hot path.
//!
//! A tester writes one frame and reads one frame per stream about thirty times a second. Through
//! `reqwest` each of them crosses a channel into hyper's connection task (one more task wakeup
//! and a poll of its machinery per frame). A [`ClientConn`] is driven by whoever owns it: a
//! frame is one `write` on the caller's task and a read is one `read` there, with the framing
//! done by the sans-IO parts of this module ([`super::chunked`], `httparse`).
//!
//! What it does: one request at a time on a keep-alive connection, over TCP or TLS (rustls, the
//! caller's configuration); request bodies chunked, written as the caller hands them over;
//! response heads read after any number of interim `1xx` responses (the trickle server sends
//! `100 Continue` every 10 s to a POST that waits for its first byte); response bodies framed by
//! `Content-Length`, chunked or the connection's end. It does not follow redirects, use proxies
//! or speak HTTP/2: trickle needs none of them, and `reqwest` stays where it does.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::chunked::{ChunkedDecoder, ChunkedError, Decoded, LAST_CHUNK};
use crate::tls::ClientIo;

/// Most response header fields we parse.
const MAX_HEADERS: usize = 64;
/// Longest response head we accept, interim responses included.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How much we ask the socket for per read.
const READ_CHUNK: usize = 16 * 1024;

/// Why a client exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not one this client can reach.
    #[error("invalid URL {url}: {reason}")]
    Url { url: String, reason: &'static str },
    /// Connecting, reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server closed the connection before its response was complete.
    #[error("the server closed the connection before the response was complete")]
    Closed,
    /// The response was not valid HTTP/1.1.
    #[error("invalid HTTP response: {0}")]
    Protocol(String),
    /// Connecting took longer than allowed.
    #[error("connecting timed out")]
    ConnectTimeout,
}

impl From<ChunkedError> for ClientError {
    fn from(e: ChunkedError) -> Self {
        Self::Protocol(format!("chunked body: {e}"))
    }
}

/// Where requests go: scheme, host and port of a URL, and its path.
#[derive(Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    /// The URL's path (and query), without a trailing slash.
    path: String,
    /// Set for `https` URLs.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("authority", &self.authority)
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// Parses an `http` or `https` URL; `tls` serves `https` ones.
    pub fn parse(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self, ClientError> {
        let bad = |reason| ClientError::Url {
            url: url.to_owned(),
            reason,
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map_or("", |p| p.as_str())
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            host: host.to_owned(),
            port,
            authority: authority.as_str().to_owned(),
            path,
            tls: secure.then_some(tls),
        })
    }

    /// The URL's path, to which requests add their own part.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A final response's status line and headers.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

impl ResponseHead {
    /// A header's value as text, when present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// How the body of the response being read is framed.
#[derive(Debug)]
enum BodyState {
    /// No response body is being read.
    Idle,
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Up to the connection's end.
    UntilClose,
}

/// One HTTP/1.1 connection, driven by its owner's task.
pub struct ClientConn {
    stream: ClientIo,
    /// Bytes read and not consumed yet.
    read: BytesMut,
    /// Scratch buffer for what is written next.
    write: Vec<u8>,
    body: BodyState,
    /// The connection may carry another request after this one.
    reusable: bool,
    /// The server ended the connection (read returned 0).
    eof: bool,
}

impl ClientConn {
    /// Connects to `endpoint` (and shakes hands over TLS for `https`) within `timeout`.
    pub async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Self, ClientError> {
        let connect = async {
            let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
            tcp.set_nodelay(true)?;
            let stream = match &endpoint.tls {
                None => ClientIo::Plain(tcp),
                Some(config) => {
                    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad host"))?;
                    let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                        .connect(name, tcp)
                        .await?;
                    ClientIo::Tls(Box::new(tls))
                }
            };
            Ok::<_, io::Error>(stream)
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ClientError::ConnectTimeout)??;
        Ok(Self {
            stream,
            read: BytesMut::with_capacity(READ_CHUNK),
            write: Vec::with_capacity(READ_CHUNK),
            body: BodyState::Idle,
            reusable: true,
            eof: false,
        })
    }

    /// Writes a request head. With `chunked`, a body follows through
    /// [`ClientConn::write_chunk`] and [`ClientConn::end_body`]; without, the request has none.
    pub async fn send_head(
        &mut self,
        method: &str,
        endpoint: &Endpoint,
        path: &str,
        headers: &[(&str, &str)],
        chunked: bool,
    ) -> io::Result<()> {
        self.write.clear();
        let w = &mut self.write;
        w.extend_from_slice(method.as_bytes());
        w.push(b' ');
        w.extend_from_slice(if path.is_empty() {
            b"/"
        } else {
            path.as_bytes()
        });
        w.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        w.extend_from_slice(endpoint.authority.as_bytes());
        w.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            w.extend_from_slice(name.as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(value.as_bytes());
            w.extend_from_slice(b"\r\n");
        }
        if chunked {
            w.extend_from_slice(b"transfer-encoding: chunked\r\n");
        } else if method == "POST" || method == "PUT" {
            w.extend_from_slice(b"content-length: 0\r\n");
        }
        w.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.write).await?;
        // Over TLS a write may leave records in rustls's buffer: push them out now.
        self.stream.flush().await
    }

    /// Writes `data` as one chunk of the request body: one write, which in the common case
    /// completes at once, so no timer is set then.
    pub async fn write_chunk(&mut self, data: &[u8], timeout: Duration) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.write.clear();
        let mut size = [0u8; 16];
        let digits = hex_digits(data.len(), &mut size);
        self.write.extend_from_slice(digits);
        self.write.extend_from_slice(b"\r\n");
        self.write.extend_from_slice(data);
        self.write.extend_from_slice(b"\r\n");
        write_bounded(&mut self.stream, &self.write, timeout).await
    }

    /// Ends a chunked request body.
    pub async fn end_body(&mut self, timeout: Duration) -> io::Result<()> {
        write_bounded(&mut self.stream, LAST_CHUNK, timeout).await
    }

    /// Reads the final response head, skipping interim ones, and prepares to read its body
    /// (`head_request`: the request was HEAD, so no body follows).
    pub async fn response(&mut self, head_request: bool) -> Result<ResponseHead, ClientError> {
        loop {
            if let Some(head) = self.parse_head(head_request)? {
                return Ok(head);
            }
            if self.fill().await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// A final response head that has already arrived, without waiting: how a writer learns
    /// that the server answered before the request was complete (interim responses are
    /// skipped). `Ok(None)` when there is none yet; an error when the connection ended.
    pub fn early_response(&mut self) -> Result<Option<ResponseHead>, ClientError> {
        loop {
            if let Some(head) = self.parse_head(false)? {
                return Ok(Some(head));
            }
            if self.eof {
                return Err(ClientError::Closed);
            }
            // A read that is not ready returns at once (tokio keeps the socket's readiness, so
            // no system call is made for it).
            match self.fill().now_or_never() {
                None => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The next piece of the response body; `Ok(None)` at its end.
    pub async fn body_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            match &mut self.body {
                BodyState::Idle => return Ok(None),
                BodyState::Length(0) => {
                    self.body = BodyState::Idle;
                    return Ok(None);
                }
                BodyState::Length(remaining) => {
                    if !self.read.is_empty() {
                        let take = usize::try_from(*remaining)
                            .unwrap_or(usize::MAX)
                            .min(self.read.len());
                        *remaining -= take as u64;
                        return Ok(Some(self.read.split_to(take).freeze()));
                    }
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut self.read)? {
                    Decoded::Data(data) => return Ok(Some(data)),
                    Decoded::Done => {
                        self.body = BodyState::Idle;
                        return Ok(None);
                    }
                    Decoded::NeedMore => {}
                },
                BodyState::UntilClose => {
                    if !self.read.is_empty() {
                        return Ok(Some(self.read.split().freeze()));
                    }
                    if self.eof {
                        self.body = BodyState::Idle;
                        return Ok(None);
                    }
                }
            }
            if self.fill().await? == 0 && !matches!(self.body, BodyState::UntilClose) {
                return Err(ClientError::Closed);
            }
        }
    }

    /// Reads the rest of the body as text (error explanations), at most `limit` bytes kept.
    pub async fn body_text(&mut self, limit: usize) -> Result<String, ClientError> {
        let mut out = Vec::new();
        while let Some(data) = self.body_chunk().await? {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Whether another request may follow on this connection: the last response was read to
    /// its end, did not ask to close, and nothing unexpected is waiting.
    pub fn reusable(&self) -> bool {
        self.reusable && !self.eof && matches!(self.body, BodyState::Idle) && self.read.is_empty()
    }

    /// Checks an idle connection before reuse: a server that closed it, or sent something
    /// unasked, makes it unusable.
    pub fn still_idle(&mut self) -> bool {
        if !self.reusable() {
            return false;
        }
        // Anything readable (the end, or bytes nobody asked for) means it is not.
        self.fill().now_or_never().is_none()
    }

    /// Reads more bytes into the buffer; 0 at the connection's end.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        self.read.reserve(READ_CHUNK);
        let n = self.stream.read_buf(&mut self.read).await?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }

    /// Parses a final response head from the buffer, dropping interim responses.
    fn parse_head(&mut self, head_request: bool) -> Result<Option<ResponseHead>, ClientError> {
        loop {
            if self.read.is_empty() {
                return Ok(None);
            }
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut fields);
            let len = match response.parse(&self.read) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if self.read.len() > MAX_HEAD_BYTES => {
                    return Err(ClientError::Protocol("response head too long".to_owned()));
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            };
            let code = response.code.unwrap_or(0);
            let status = StatusCode::from_u16(code)
                .map_err(|_| ClientError::Protocol(format!("status {code}")))?;
            let http10 = response.version == Some(0);
            let mut headers = HeaderMap::with_capacity(response.headers.len());
            for field in response.headers.iter() {
                let name = HeaderName::from_bytes(field.name.as_bytes())
                    .map_err(|_| ClientError::Protocol("invalid header name".to_owned()))?;
                let value = HeaderValue::from_bytes(field.value)
                    .map_err(|_| ClientError::Protocol("invalid header value".to_owned()))?;
                headers.append(name, value);
            }
            bytes::Buf::advance(&mut self.read, len);
            if status.is_informational() {
                continue;
            }
            let close = super::head::header_has_token(&headers, &http::header::CONNECTION, "close")
                || (http10
                    && !super::head::header_has_token(
                        &headers,
                        &http::header::CONNECTION,
                        "keep-alive",
                    ));
            let chunked = headers
                .get_all(http::header::TRANSFER_ENCODING)
                .iter()
                .any(|v| {
                    v.to_str()
                        .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
                });
            let length = headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().parse::<u64>());
            self.body = if head_request
                || status == StatusCode::NO_CONTENT
                || status == StatusCode::NOT_MODIFIED
            {
                BodyState::Idle
            } else if chunked {
                BodyState::Chunked(ChunkedDecoder::new())
            } else {
                match length {
                    Some(Ok(n)) => BodyState::Length(n),
                    Some(Err(_)) => {
                        return Err(ClientError::Protocol("invalid Content-Length".to_owned()));
                    }
                    None => BodyState::UntilClose,
                }
            };
            self.reusable = !close && !matches!(self.body, BodyState::UntilClose);
            return Ok(Some(ResponseHead { status, headers }));
        }
    }
}

/// Idle keep-alive connections to one endpoint, shared by the requests of one trickle channel.
pub struct ConnPool {
    endpoint: Result<Endpoint, String>,
    connect_timeout: Duration,
    idle: std::sync::Mutex<Vec<ClientConn>>,
}

/// Connections kept idle per pool: a channel has at most a segment in flight and the next one
/// preconnected.
const POOL_IDLE: usize = 2;

impl ConnPool {
    /// A pool for `url`. A URL this client cannot reach fails each request with the reason.
    pub fn new(url: &str, tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Self {
        Self {
            endpoint: Endpoint::parse(url, tls).map_err(|e| e.to_string()),
            connect_timeout,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The endpoint, or why the URL cannot be used.
    pub fn endpoint(&self) -> Result<&Endpoint, ClientError> {
        self.endpoint
            .as_ref()
            .map_err(|reason| ClientError::Protocol(reason.clone()))
    }

    /// An idle connection that is still open, or a new one.
    pub async fn checkout(&self) -> Result<ClientConn, ClientError> {
        let endpoint = self.endpoint()?;
        loop {
            let conn = match self.idle.lock() {
                Ok(mut idle) => idle.pop(),
                Err(poisoned) => poisoned.into_inner().pop(),
            };
            match conn {
                Some(mut conn) => {
                    if conn.still_idle() {
                        return Ok(conn);
                    }
                }
                None => break,
            }
        }
        ClientConn::connect(endpoint, self.connect_timeout).await
    }

    /// Gives a connection back for reuse when its last exchange left it reusable.
    pub fn checkin(&self, conn: ClientConn) {
        if !conn.reusable() {
            return;
        }
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        if idle.len() < POOL_IDLE {
            idle.push(conn);
        }
    }

    /// One request without a body, its response read whole (at most `limit` bytes of text),
    /// within `timeout`; the connection goes back to the pool.
    pub async fn simple(
        &self,
        method: &str,
        path: &str,
        timeout: Duration,
        limit: usize,
    ) -> Result<(StatusCode, HeaderMap, String), ClientError> {
        let exchange = async {
            let mut conn = self.checkout().await?;
            conn.send_head(method, self.endpoint()?, path, &[], false)
                .await?;
            let head = conn.response(method == "HEAD").await?;
            let text = conn.body_text(limit).await?;
            self.checkin(conn);
            Ok((head.status, head.headers, text))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Io(io::Error::new(io::ErrorKind::TimedOut, "timed out")))?
    }
}

/// Writes all of `data` onto the socket: at once when the socket takes it (no timer), else
/// within `timeout`. Over TLS, rustls may accept the bytes while the socket is full and keep
/// their records; they are flushed here too, so that what was written has left (a frame's
/// send time is taken at its write, and a body's end must reach the server).
async fn write_bounded(stream: &mut ClientIo, data: &[u8], timeout: Duration) -> io::Result<()> {
    let mut write = std::pin::pin!(async {
        stream.write_all(data).await?;
        stream.flush().await
    });
    if let Some(result) = (&mut write).now_or_never() {
        return result;
    }
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the server took no bytes in time",
        )),
    }
}

/// `n` in lowercase hex, without leading zeros.
fn hex_digits(mut n: usize, out: &mut [u8; 16]) -> &[u8] {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &out[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn sizes_are_written_in_hex() {
        let mut buf = [0u8; 16];
        assert_eq!(hex_digits(0, &mut buf), b"0");
        assert_eq!(hex_digits(255, &mut buf), b"ff");
        assert_eq!(hex_digits(0x1a2b3, &mut buf), b"1a2b3");
    }

    /// A loopback server that answers each connection with `answer`, written a few bytes at
    /// a time, then closes or keeps the connection open as told.
    async fn serve(answer: &'static [u8], close: bool) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            for piece in answer.chunks(3) {
                socket.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            if !close {
                std::future::pending::<()>().await;
            }
        });
        let tls = crate::tls::insecure_client_config(&[crate::tls::ALPN_HTTP1]).0;
        Endpoint::parse(&format!("http://{addr}/c"), tls).unwrap()
    }

    /// A connection to `endpoint` with a request head for `/c/0` sent.
    async fn open(endpoint: &Endpoint, method: &str, chunked: bool) -> ClientConn {
        let mut conn = ClientConn::connect(endpoint, Duration::from_secs(5))
            .await
            .unwrap();
        conn.send_head(method, endpoint, "/c/0", &[], chunked)
            .await
            .unwrap();
        conn
    }

    async fn exchange(answer: &'static [u8], close: bool) -> (ClientConn, ResponseHead) {
        let endpoint = serve(answer, close).await;
        let mut conn = open(&endpoint, "GET", false).await;
        let head = conn.response(false).await.unwrap();
        (conn, head)
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_pipelined_answers_kept() {
        let (mut conn, head) = exchange(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 200 OK\r\nLp-Trickle-Seq: 4\r\ncontent-length: 5\r\n\r\nhello\
              HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.header("lp-trickle-seq"), Some("4"));
        assert_eq!(conn.body_text(100).await.unwrap(), "hello");
        // The next answer on the connection is read as the next response, not as body.
        let next = conn.response(false).await.unwrap();
        assert_eq!(next.status, StatusCode::NOT_FOUND);
        assert_eq!(conn.body_chunk().await.unwrap(), None);
        assert!(conn.reusable());
    }

    #[tokio::test]
    async fn chunked_bodies_are_read_across_splits() {
        let (mut conn, _) = exchange(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\ntrailer: x\r\n\r\n",
            false,
        )
        .await;
        assert_eq!(conn.body_text(100).await.unwrap(), "abcdefgh");
        assert!(conn.reusable());
    }

    #[tokio::test]
    async fn a_body_without_length_runs_to_the_close_and_ends_the_connection() {
        let (mut conn, head) = exchange(b"HTTP/1.0 200 OK\r\n\r\nall of it", true).await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(conn.body_text(100).await.unwrap(), "all of it");
        assert!(!conn.reusable());
    }

    #[tokio::test]
    async fn broken_answers_are_errors_not_panics() {
        let endpoint = serve(b"HTTP/1.1 abc nonsense\r\n\r\n", true).await;
        let mut conn = open(&endpoint, "GET", false).await;
        assert!(matches!(
            conn.response(false).await,
            Err(ClientError::Protocol(_))
        ));
        // A body cut short by the server's close.
        let (mut conn, _) =
            exchange(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true).await;
        assert!(matches!(
            conn.body_text(100).await,
            Err(ClientError::Closed)
        ));
        // A connection closed before any answer.
        let (mut conn, _) = exchange(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true).await;
        assert_eq!(conn.body_chunk().await.unwrap(), None);
        assert!(matches!(
            conn.response(false).await,
            Err(ClientError::Closed)
        ));
    }

    /// Over TLS, bytes rustls took while the socket was full must still leave: the end of a
    /// body written behind a large chunk, to a server that reads slowly, reaches it and gets
    /// the answer (without a flush it stays in rustls's buffer and the answer never comes).
    #[tokio::test]
    async fn tls_writes_leave_even_when_the_socket_was_full() {
        let cert = crate::tls::self_signed(&["127.0.0.1".to_owned()]).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(&cert));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(socket).await.unwrap();
            // Slower than the client writes, so its socket stays full until the end.
            let mut seen = Vec::new();
            let mut piece = vec![0u8; 256 * 1024];
            while !seen.ends_with(LAST_CHUNK) {
                let n = tls.read(&mut piece).await.unwrap();
                assert!(n > 0, "the client closed before the body's end");
                seen.extend_from_slice(&piece[..n]);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            tls.flush().await.unwrap();
            seen.len()
        });
        let tls = crate::tls::insecure_client_config(&[crate::tls::ALPN_HTTP1]).0;
        let endpoint = Endpoint::parse(&format!("https://{addr}/c"), tls).unwrap();
        let mut conn = open(&endpoint, "POST", true).await;
        // More than loopback's socket buffers hold on both sides together.
        let chunk = vec![b'x'; 24 * 1024 * 1024];
        let timeout = Duration::from_secs(30);
        conn.write_chunk(&chunk, timeout).await.unwrap();
        conn.end_body(timeout).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(20), conn.response(false))
            .await
            .expect("the server never saw the body's end")
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert!(server.await.unwrap() > chunk.len());
    }

    #[test]
    fn endpoints_keep_host_port_and_path() {
        let tls = crate::tls::insecure_client_config(&[crate::tls::ALPN_HTTP1]).0;
        let e = Endpoint::parse("https://o.example:8935/ai/trickle/abc/", tls.clone()).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("o.example", 8935));
        assert_eq!(e.path(), "/ai/trickle/abc");
        assert!(e.tls.is_some());
        let e = Endpoint::parse("http://[::1]/x", tls.clone()).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.authority.as_str()),
            ("::1", 80, "[::1]")
        );
        assert!(e.tls.is_none());
        for bad in ["ftp://h/x", "/relative", "http://:80/x"] {
            assert!(Endpoint::parse(bad, tls.clone()).is_err(), "{bad}");
        }
    }
}
