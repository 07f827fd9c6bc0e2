//! Gateway side of `net.Orchestrator`: connect (TCP, optional TLS, HTTP/2) and call.
//!
//! Connecting and calling are separate awaits so that the caller can time discovery the way
//! go-livepeer reports it (connect latency versus `GetOrchestrator` latency). We dial the first
//! connection ourselves, before handing it to tonic, so that a refused TCP connection, a failed
//! TLS handshake and a failed HTTP/2 handshake come back as distinct errors.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use super::proto;
use super::proto::orchestrator_client::OrchestratorClient as GeneratedClient;
use crate::live::OrchestratorUri;
use crate::tls::{ALPN_H2, ClientIo, FingerprintRecorder, insecure_client_config};

/// Which part of a gRPC exchange an error belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcStage {
    /// TCP, TLS and HTTP/2 handshakes.
    Connect,
    /// One RPC on an established connection.
    Call,
}

impl std::fmt::Display for GrpcStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GrpcStage::Connect => "gRPC connect",
            GrpcStage::Call => "gRPC call",
        })
    }
}

/// Why talking to an orchestrator over gRPC failed.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The address cannot be turned into a gRPC endpoint.
    #[error("invalid orchestrator address {addr}: {reason}")]
    InvalidUri { addr: String, reason: String },
    /// TCP connect failed (refused, unreachable, DNS).
    #[error("could not connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The HTTP/2 connection could not be set up over an established transport.
    #[error("HTTP/2 handshake with {addr} failed: {source}")]
    Handshake {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The stage did not finish within the timeout.
    #[error("{stage} to {addr} timed out after {timeout_ms} ms")]
    Timeout {
        stage: GrpcStage,
        addr: String,
        timeout_ms: u64,
    },
    /// The call completed with a non-OK gRPC status. `OrchestratorCapped` arrives here, as the
    /// message of an `Unknown` status.
    #[error("orchestrator answered {code:?}: {message}")]
    Status { code: tonic::Code, message: String },
}

impl GrpcError {
    /// The gRPC status code, for `Status` errors.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            GrpcError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the orchestrator refused because it has no free capacity.
    pub fn is_capped(&self) -> bool {
        matches!(self, GrpcError::Status { message, .. } if message.contains("OrchestratorCapped"))
    }

    /// The stage the error happened in.
    pub fn stage(&self) -> GrpcStage {
        match self {
            GrpcError::Status { .. } => GrpcStage::Call,
            GrpcError::Timeout { stage, .. } => *stage,
            _ => GrpcStage::Connect,
        }
    }

    fn from_status(status: tonic::Status) -> Self {
        GrpcError::Status {
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

/// A gRPC connection to one orchestrator.
#[derive(Clone, Debug)]
pub struct OrchestratorClient {
    inner: GeneratedClient<Channel>,
    addr: String,
    recorder: Option<FingerprintRecorder>,
    timeout: Duration,
}

impl OrchestratorClient {
    /// Connects: TCP, then TLS (https, any certificate accepted and its fingerprint recorded)
    /// or nothing (http, HTTP/2 with prior knowledge), then the HTTP/2 client preface. `timeout`
    /// bounds the whole connect and, later, each call.
    ///
    /// The HTTP/2 client does not wait for the server's preface, so a peer that accepts the
    /// transport but does not speak HTTP/2 is only noticed by the first call.
    pub async fn connect(uri: &OrchestratorUri, timeout: Duration) -> Result<Self, GrpcError> {
        let addr = uri.to_string();
        let timeout_error = || GrpcError::Timeout {
            stage: GrpcStage::Connect,
            addr: addr.clone(),
            timeout_ms: duration_ms(timeout),
        };
        let deadline = tokio::time::Instant::now() + timeout;

        let (tls, recorder) = if uri.is_tls() {
            let (config, recorder) = insecure_client_config(&[ALPN_H2]);
            (
                Some(tokio_rustls::TlsConnector::from(config)),
                Some(recorder),
            )
        } else {
            (None, None)
        };
        let dialer = Dialer {
            host: uri.host.clone(),
            port: uri.port,
            tls,
        };
        let first = tokio::time::timeout_at(deadline, dialer.dial())
            .await
            .map_err(|_| timeout_error())?
            .map_err(|e| match e {
                DialError::Connect(source) => GrpcError::Connect {
                    addr: addr.clone(),
                    source,
                },
                DialError::Tls(source) => GrpcError::Tls {
                    addr: addr.clone(),
                    source,
                },
            })?;

        // tonic only uses the endpoint URI to address requests: our connector dials by itself.
        // The origin carries the real scheme and authority into each request's `:scheme` and
        // `:authority`. The connect URI stays `http` so that no TLS layer of tonic's (should a
        // feature ever enable one) wraps our already-encrypted stream a second time.
        let invalid = |reason: String| GrpcError::InvalidUri {
            addr: addr.clone(),
            reason,
        };
        let origin: http::Uri = addr
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        let endpoint = Endpoint::from_shared(format!("http://{}", uri.authority()))
            .map_err(|e| invalid(e.to_string()))?
            .origin(origin)
            .tcp_nodelay(true);
        let connector = Connector {
            first: Arc::new(Mutex::new(Some(first))),
            dialer: Arc::new(dialer),
        };
        let channel = tokio::time::timeout_at(deadline, endpoint.connect_with_connector(connector))
            .await
            .map_err(|_| timeout_error())?
            .map_err(|source| GrpcError::Handshake {
                addr: addr.clone(),
                source,
            })?;
        Ok(Self {
            inner: GeneratedClient::new(channel),
            addr,
            recorder,
            timeout,
        })
    }

    /// Lowercase hex SHA-256 of the orchestrator's leaf certificate (https only). Trust on
    /// first use: the caller records it and compares on later connections.
    pub fn cert_fingerprint(&self) -> Option<String> {
        self.recorder
            .as_ref()
            .and_then(FingerprintRecorder::fingerprint)
    }

    /// The address this client talks to, as a URL.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Changes the per-call timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    async fn call<T, F, Fut>(
        &mut self,
        request: T,
        rpc: F,
    ) -> Result<tonic::Response<T::Output>, GrpcError>
    where
        T: IntoGrpcRequest,
        F: FnOnce(GeneratedClient<Channel>, tonic::Request<T>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T::Output>, tonic::Status>>,
    {
        // The deadline is enforced here rather than with `Request::set_timeout`: tonic's channel
        // turns that header into a `Cancelled` status of its own, which would hide a timeout
        // among real cancellations.
        let request = tonic::Request::new(request);
        tokio::time::timeout(self.timeout, rpc(self.inner.clone(), request))
            .await
            .map_err(|_| GrpcError::Timeout {
                stage: GrpcStage::Call,
                addr: self.addr.clone(),
                timeout_ms: duration_ms(self.timeout),
            })?
            .map_err(GrpcError::from_status)
    }

    /// `GetOrchestrator`.
    pub async fn get_orchestrator(
        &mut self,
        req: proto::OrchestratorRequest,
    ) -> Result<proto::OrchestratorInfo, GrpcError> {
        let response = self
            .call(req, |mut client, request| async move {
                client.get_orchestrator(request).await
            })
            .await?;
        Ok(response.into_inner())
    }

    /// `Ping`, echoing `value` in an implementation-defined way.
    pub async fn ping(&mut self, value: Vec<u8>) -> Result<Vec<u8>, GrpcError> {
        let response = self
            .call(
                proto::PingPong { value },
                |mut client, request| async move { client.ping(request).await },
            )
            .await?;
        Ok(response.into_inner().value)
    }

    /// `EndTranscodingSession` for the session `auth_token` opened.
    pub async fn end_transcoding_session(
        &mut self,
        auth_token: proto::AuthToken,
    ) -> Result<(), GrpcError> {
        let request = proto::EndTranscodingSessionRequest {
            auth_token: Some(auth_token),
        };
        self.call(request, |mut client, request| async move {
            client.end_transcoding_session(request).await
        })
        .await?;
        Ok(())
    }
}

/// Ties each request message to its response message, so `call` can be generic.
trait IntoGrpcRequest {
    type Output;
}

impl IntoGrpcRequest for proto::OrchestratorRequest {
    type Output = proto::OrchestratorInfo;
}

impl IntoGrpcRequest for proto::PingPong {
    type Output = proto::PingPong;
}

impl IntoGrpcRequest for proto::EndTranscodingSessionRequest {
    type Output = proto::EndTranscodingSessionResponse;
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

enum DialError {
    Connect(io::Error),
    Tls(io::Error),
}

/// Opens transports to one orchestrator.
struct Dialer {
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Dialer {
    async fn dial(&self) -> Result<ClientIo, DialError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(DialError::Connect)?;
        // Small gRPC frames should leave at once; Nagle would add latency we then measure.
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(ClientIo::Plain(tcp));
        };
        let server_name = ServerName::try_from(self.host.clone()).map_err(|e| {
            DialError::Tls(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("host is not a valid TLS server name: {e}"),
            ))
        })?;
        let stream = tls
            .connect(server_name, tcp)
            .await
            .map_err(DialError::Tls)?;
        Ok(ClientIo::Tls(Box::new(stream)))
    }
}

/// The tower connector tonic calls: hands out the connection dialed in `connect` first, and
/// dials again if tonic ever needs to reconnect.
#[derive(Clone)]
struct Connector {
    first: Arc<Mutex<Option<ClientIo>>>,
    dialer: Arc<Dialer>,
}

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<ClientIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let first = match self.first.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let dialer = self.dialer.clone();
        Box::pin(async move {
            if let Some(io) = first {
                return Ok(TokioIo::new(io));
            }
            match dialer.dial().await {
                Ok(io) => Ok(TokioIo::new(io)),
                Err(DialError::Connect(e) | DialError::Tls(e)) => Err(e),
            }
        })
    }
}
