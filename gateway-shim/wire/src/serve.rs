//! One listening port for gRPC and HTTP, the way a go-livepeer orchestrator serves them.
//!
//! Each accepted connection optionally goes through a TLS handshake, then is served as HTTP/2
//! when ALPN chose `h2` or when its first bytes are the HTTP/2 client preface, and as HTTP/1.1
//! otherwise (by the crate's own HTTP/1.1 driver, which tolerates what trickle needs). Both
//! protocols hand requests to the same `axum::Router`; gRPC requests reach the tonic routes
//! inside it (see [`crate::grpc::grpc_router`]).
//!
//! A connection that fails (bad TLS, garbage, a reset) is logged and dropped; the server keeps
//! accepting. Shutdown stops accepting, asks every connection to finish (HTTP/2 GOAWAY, HTTP/1
//! close after the current response), waits a bounded grace period and then aborts the rest.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// After a failed `accept` (for example out of file descriptors) wait this long before trying
/// again, so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Limits of the shared-port server.
#[derive(Clone, Copy, Debug)]
pub struct ServeConfig {
    /// Longest a connection may take to finish its TLS handshake and send the bytes that tell
    /// HTTP/2 from HTTP/1.1.
    pub handshake_timeout: Duration,
    /// Longest connections may take to finish after shutdown before they are aborted.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` (gRPC and HTTP on one port) until `shutdown` completes, with
/// TLS when `tls` is given. See [`serve_with_config`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with_config(listener, tls, router, shutdown, ServeConfig::default()).await
}

/// [`serve`] with explicit limits.
///
/// Returns once `shutdown` completed and every connection finished or was aborted after
/// `config.shutdown_grace`. Accept errors and failing connections are logged, never returned.
pub async fn serve_with_config(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    config: ServeConfig,
) -> io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(handle_connection(
                        stream,
                        peer,
                        acceptor.clone(),
                        router.clone(),
                        stop.clone(),
                        config,
                    ));
                }
                Err(error) => {
                    warn!(message = "Accepting a connection failed.", %error);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap finished connections so the set does not grow with the server's age.
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                log_join(joined);
            }
        }
    }

    drop(listener);
    stop.cancel();
    let drain = async {
        while let Some(joined) = connections.join_next().await {
            log_join(joined);
        }
    };
    if tokio::time::timeout(config.shutdown_grace, drain)
        .await
        .is_err()
    {
        debug!(
            message = "Aborting connections still open after the shutdown grace period.",
            open = connections.len()
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        warn!(message = "A connection task panicked.", %error);
    }
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    router: axum::Router,
    stop: CancellationToken,
    config: ServeConfig,
) {
    // Responses are small frames that should leave at once.
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = acceptor else {
        sniff_and_serve(stream, peer, router, stop, config).await;
        return;
    };
    let handshake = tokio::time::timeout(config.handshake_timeout, acceptor.accept(stream));
    let tls_stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(tls_stream)) => tls_stream,
            Ok(Err(error)) => {
                debug!(message = "TLS handshake failed.", %peer, %error);
                return;
            }
            Err(_) => {
                debug!(message = "TLS handshake timed out.", %peer);
                return;
            }
        },
        () = stop.cancelled() => return,
    };
    let alpn = tls_stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    match alpn.as_deref() {
        Some(crate::tls::ALPN_H2) => serve_h2(tls_stream, peer, router, stop).await,
        Some(crate::tls::ALPN_HTTP1) => serve_http1(tls_stream, peer, router, stop).await,
        // No ALPN (or one we did not offer): look at the bytes, like plaintext.
        _ => sniff_and_serve(tls_stream, peer, router, stop, config).await,
    }
}

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    H2,
    Http1,
    Closed,
}

/// Reads just enough bytes to tell the HTTP/2 preface from anything else.
async fn sniff<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<(Sniffed, Vec<u8>)> {
    let mut seen = Vec::with_capacity(H2_PREFACE.len());
    let mut chunk = [0u8; 24];
    while seen.len() < H2_PREFACE.len() {
        let want = H2_PREFACE.len() - seen.len();
        let n = io.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Ok((Sniffed::Closed, seen));
        }
        seen.extend_from_slice(&chunk[..n]);
        if !H2_PREFACE.starts_with(&seen) {
            return Ok((Sniffed::Http1, seen));
        }
    }
    Ok((Sniffed::H2, seen))
}

async fn sniff_and_serve<IO>(
    mut io: IO,
    peer: SocketAddr,
    router: axum::Router,
    stop: CancellationToken,
    config: ServeConfig,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let sniffed = tokio::select! {
        result = tokio::time::timeout(config.handshake_timeout, sniff(&mut io)) => result,
        () = stop.cancelled() => return,
    };
    let (protocol, seen) = match sniffed {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            debug!(message = "Reading the first bytes of a connection failed.", %peer, %error);
            return;
        }
        Err(_) => {
            debug!(message = "Connection sent nothing before the handshake timeout.", %peer);
            return;
        }
    };
    let io = Rewind::new(seen, io);
    match protocol {
        Sniffed::H2 => serve_h2(io, peer, router, stop).await,
        Sniffed::Http1 => serve_http1(io, peer, router, stop).await,
        Sniffed::Closed => {}
    }
}

async fn serve_h2<IO>(io: IO, peer: SocketAddr, router: axum::Router, stop: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            // GOAWAY: streams in flight finish, new ones are refused.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        debug!(message = "HTTP/2 connection ended with an error.", %peer, %error);
    }
}

async fn serve_http1<IO>(io: IO, peer: SocketAddr, router: axum::Router, stop: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Err(error) = crate::http1::serve_connection(io, router, stop.cancelled_owned()).await {
        debug!(message = "HTTP/1.1 connection ended with an error.", %peer, %error);
    }
}

/// A stream that first replays bytes already read from it.
struct Rewind<IO> {
    prefix: Vec<u8>,
    position: usize,
    inner: IO,
}

impl<IO> Rewind<IO> {
    fn new(prefix: Vec<u8>, inner: IO) -> Self {
        Self {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.position < this.prefix.len() {
            let rest = &this.prefix[this.position..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.position += n;
            if this.position == this.prefix.len() {
                // The replay is over; free it.
                this.prefix = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn sniff_bytes(chunks: &[&[u8]]) -> (Sniffed, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(64);
        for chunk in chunks {
            client.write_all(chunk).await.expect("write");
        }
        drop(client);
        sniff(&mut server).await.expect("sniff")
    }

    #[tokio::test]
    async fn sniff_tells_h2_from_http1_and_keeps_the_bytes() {
        assert_eq!(
            sniff_bytes(&[H2_PREFACE]).await,
            (Sniffed::H2, H2_PREFACE.to_vec())
        );
        assert_eq!(
            sniff_bytes(&[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\nmore"])
                .await
                .0,
            Sniffed::H2
        );
        assert_eq!(
            sniff_bytes(&[b"GET / HTTP/1.1\r\n\r\n"]).await,
            (Sniffed::Http1, b"GET / HTTP/1.1\r\n\r\n".to_vec())
        );
        assert_eq!(
            sniff_bytes(&[b"PRX"]).await,
            (Sniffed::Http1, b"PRX".to_vec())
        );
        assert_eq!(
            sniff_bytes(&[b"PRI"]).await,
            (Sniffed::Closed, b"PRI".to_vec())
        );
        assert_eq!(sniff_bytes(&[]).await, (Sniffed::Closed, Vec::new()));
    }

    #[tokio::test]
    async fn rewind_replays_then_reads_on() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.expect("write");
        drop(client);
        let mut io = Rewind::new(b"hello".to_vec(), server);
        let mut all = String::new();
        io.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "hello world");
    }
}
