//! gRPC client and server over real sockets, on one port that also serves HTTP (HTTP/2 and
//! HTTP/1.1), with and without TLS; bad connections do not take the server down; shutdown is
//! graceful and bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use lvt_wire::grpc::{
    self, CAPABILITY_LIVE_VIDEO_TO_VIDEO, GrpcError, GrpcStage, OrchestratorClient, proto,
};
use lvt_wire::live::{AuthTokens, OrchestratorUri, Scheme};
use lvt_wire::serve::{ServeConfig, serve, serve_with_config};
use lvt_wire::tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const NOW_UNIX_S: i64 = 1_700_000_000;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A minimal orchestrator: answers with a fixed info and a minted token, refuses live requests
/// with `OrchestratorCapped` when `capped`, and can be made to hang in `Ping`.
struct TestOrchestrator {
    transcoder: String,
    tokens: AuthTokens,
    capped: bool,
    ping_hangs: bool,
}

#[tonic::async_trait]
impl grpc::Orchestrator for TestOrchestrator {
    async fn get_orchestrator(
        &self,
        request: tonic::Request<proto::OrchestratorRequest>,
    ) -> Result<tonic::Response<proto::OrchestratorInfo>, tonic::Status> {
        let request = request.into_inner();
        if self.capped && request.capabilities.is_some() && !request.ignore_capacity_check {
            // go-livepeer returns a plain Go error, which grpc-go turns into code Unknown.
            return Err(tonic::Status::unknown("OrchestratorCapped"));
        }
        let with_hardware = request.capabilities.is_none();
        let hardware = if with_hardware {
            vec![proto::HardwareInformation {
                pipeline: "live-video-to-video".to_string(),
                model_id: "noop".to_string(),
                gpu_info: [(
                    "0".to_string(),
                    proto::GpuComputeInfo {
                        id: "GPU-0".to_string(),
                        name: "Test GPU".to_string(),
                        memory_total: 8 << 30,
                        ..Default::default()
                    },
                )]
                .into_iter()
                .collect(),
            }]
        } else {
            Vec::new()
        };
        Ok(tonic::Response::new(proto::OrchestratorInfo {
            transcoder: self.transcoder.clone(),
            address: vec![0x11; 20],
            auth_token: Some(self.tokens.mint(&hex::encode(&request.address), NOW_UNIX_S)),
            capabilities: Some(proto::Capabilities {
                bitstring: grpc::capability_bitstring(&[CAPABILITY_LIVE_VIDEO_TO_VIDEO]),
                ..Default::default()
            }),
            hardware,
            ..Default::default()
        }))
    }

    async fn end_transcoding_session(
        &self,
        request: tonic::Request<proto::EndTranscodingSessionRequest>,
    ) -> Result<tonic::Response<proto::EndTranscodingSessionResponse>, tonic::Status> {
        let token = request
            .into_inner()
            .auth_token
            .ok_or_else(|| tonic::Status::invalid_argument("missing auth token"))?;
        self.tokens
            .verify(&token, NOW_UNIX_S)
            .map_err(|e| tonic::Status::permission_denied(e.to_string()))?;
        Ok(tonic::Response::new(
            proto::EndTranscodingSessionResponse {},
        ))
    }

    async fn ping(
        &self,
        request: tonic::Request<proto::PingPong>,
    ) -> Result<tonic::Response<proto::PingPong>, tonic::Status> {
        if self.ping_hangs {
            std::future::pending::<()>().await;
        }
        let mut value = request.into_inner().value;
        value.reverse();
        Ok(tonic::Response::new(proto::PingPong { value }))
    }
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .expect("server task")
            .expect("server result");
    }
}

fn orchestrator(transcoder: String, capped: bool, ping_hangs: bool) -> TestOrchestrator {
    TestOrchestrator {
        transcoder,
        tokens: AuthTokens::new(b"test secret".to_vec()),
        capped,
        ping_hangs,
    }
}

fn router(orch: TestOrchestrator) -> axum::Router {
    let http = axum::Router::new()
        .route("/hello", get(|| async { "hello over http" }))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not here") });
    grpc::grpc_router(orch).merge(http)
}

async fn start(
    tls_config: Option<Arc<rustls::ServerConfig>>,
    capped: bool,
    ping_hangs: bool,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    let orch = orchestrator(format!("{scheme}://{addr}"), capped, ping_hangs);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, tls_config, router(orch), async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

fn self_signed() -> tls::SelfSigned {
    tls::self_signed(&["localhost".to_string(), "127.0.0.1".to_string()]).expect("cert")
}

fn uri(scheme: Scheme, addr: SocketAddr) -> OrchestratorUri {
    OrchestratorUri::new(scheme, addr.ip().to_string(), addr.port())
}

/// An HTTP/1.1-only client over TLS offering `alpn`, accepting the self-signed certificate.
fn https_http1_client(alpn: &[&[u8]]) -> reqwest::Client {
    let (config, _) = tls::insecure_client_config(alpn);
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(&config))
        .http1_only()
        .build()
        .expect("client")
}

async fn check_grpc(uri: &OrchestratorUri, expect_fingerprint: Option<&str>) {
    let mut client = OrchestratorClient::connect(uri, TIMEOUT)
        .await
        .expect("connect");
    assert_eq!(client.cert_fingerprint().as_deref(), expect_fingerprint);

    let info = client
        .get_orchestrator(grpc::live_request([0x22; 20], None))
        .await
        .expect("GetOrchestrator");
    assert_eq!(info.transcoder, uri.to_string());
    let summary = grpc::summarize(&info);
    assert!(summary.advertises_live_video_to_video);
    assert_eq!(
        summary.gpus.len(),
        1,
        "no capabilities asked, so hardware is sent"
    );
    let token = info.auth_token.expect("auth token");
    assert_eq!(token.session_id, hex::encode([0x22; 20]));
    AuthTokens::new(b"test secret".to_vec())
        .verify(&token, NOW_UNIX_S)
        .expect("token verifies");

    let info = client
        .get_orchestrator(grpc::live_request([0x22; 20], Some("noop")))
        .await
        .expect("GetOrchestrator with capabilities");
    assert!(info.hardware.is_empty());

    assert_eq!(
        client.ping(vec![1, 2, 3]).await.expect("ping"),
        vec![3, 2, 1]
    );
    client
        .end_transcoding_session(token)
        .await
        .expect("end session");
}

#[tokio::test]
async fn tls_port_serves_grpc_h2_and_http1() {
    let cert = self_signed();
    let server = start(Some(tls::server_config(&cert)), false, false).await;

    check_grpc(
        &uri(Scheme::Https, server.addr),
        Some(cert.fingerprint_sha256.as_str()),
    )
    .await;

    let url = format!("https://{}/hello", server.addr);
    let (h2, recorder) = lvt_wire::live::insecure_http_client().expect("client");
    let response = h2.get(&url).send().await.expect("h2 GET");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.expect("body"), "hello over http");
    assert_eq!(
        recorder.fingerprint(),
        Some(cert.fingerprint_sha256.clone())
    );

    let h1 = https_http1_client(&[tls::ALPN_HTTP1]);
    let response = h1.get(&url).send().await.expect("HTTP/1.1 GET");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.expect("body"), "hello over http");

    // No ALPN at all: the server falls back to looking at the bytes.
    let no_alpn = https_http1_client(&[]);
    let response = no_alpn.get(&url).send().await.expect("GET without ALPN");
    assert_eq!(response.text().await.expect("body"), "hello over http");

    let response = h1
        .get(format!("https://{}/missing", server.addr))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);

    server.shutdown().await;
}

#[tokio::test]
async fn plaintext_port_serves_grpc_h2c_and_http1() {
    let server = start(None, false, false).await;

    check_grpc(&uri(Scheme::Http, server.addr), None).await;

    let url = format!("http://{}/hello", server.addr);
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = h2c.get(&url).send().await.expect("h2c GET");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.expect("body"), "hello over http");

    let h1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let response = h1.get(&url).send().await.expect("HTTP/1.1 GET");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.expect("body"), "hello over http");

    server.shutdown().await;
}

#[tokio::test]
async fn capped_orchestrator_error_keeps_code_and_message() {
    let server = start(None, true, false).await;
    let mut client = OrchestratorClient::connect(&uri(Scheme::Http, server.addr), TIMEOUT)
        .await
        .expect("connect");
    let error = client
        .get_orchestrator(grpc::live_request([1; 20], Some("noop")))
        .await
        .expect_err("capped");
    assert!(error.is_capped(), "{error}");
    assert_eq!(error.code(), Some(tonic::Code::Unknown));
    assert_eq!(error.stage(), GrpcStage::Call);
    // The same orchestrator still answers a request that does not check capacity.
    let mut request = grpc::live_request([1; 20], Some("noop"));
    request.ignore_capacity_check = true;
    client
        .get_orchestrator(request)
        .await
        .expect("ignoring capacity");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_connections_do_not_stop_the_server() {
    let cert = self_signed();
    let tls_server = start(Some(tls::server_config(&cert)), false, false).await;
    let plain_server = start(None, false, false).await;

    // Plaintext HTTP against the TLS port: the handshake fails, the server carries on.
    let mut raw = TcpStream::connect(tls_server.addr).await.expect("connect");
    raw.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut sink = Vec::new();
    let _ = raw.read_to_end(&mut sink).await;
    // A connection that closes before saying anything.
    drop(TcpStream::connect(tls_server.addr).await.expect("connect"));
    drop(
        TcpStream::connect(plain_server.addr)
            .await
            .expect("connect"),
    );
    // Garbage on the plaintext port goes to the HTTP/1.1 driver, which refuses it.
    let mut raw = TcpStream::connect(plain_server.addr)
        .await
        .expect("connect");
    raw.write_all(b"\x00\x01\x02garbage\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A gRPC client speaking TLS to the plaintext port fails in the TLS stage...
    let error = OrchestratorClient::connect(&uri(Scheme::Https, plain_server.addr), TIMEOUT)
        .await
        .expect_err("TLS to plaintext");
    assert!(matches!(error, GrpcError::Tls { .. }), "{error:?}");
    // ...and one speaking plaintext HTTP/2 to the TLS port fails at its first call: the
    // HTTP/2 client sends its preface without waiting for the server's, so connect succeeds.
    let outcome = async {
        let mut client =
            OrchestratorClient::connect(&uri(Scheme::Http, tls_server.addr), TIMEOUT).await?;
        client
            .get_orchestrator(grpc::live_request([1; 20], None))
            .await
    }
    .await;
    match outcome {
        Err(GrpcError::Handshake { .. }) => {}
        Err(GrpcError::Status { code, .. }) => assert_ne!(code, tonic::Code::Ok),
        other => panic!("h2c to a TLS port must fail, got {other:?}"),
    }

    check_grpc(
        &uri(Scheme::Https, tls_server.addr),
        Some(cert.fingerprint_sha256.as_str()),
    )
    .await;
    check_grpc(&uri(Scheme::Http, plain_server.addr), None).await;

    tls_server.shutdown().await;
    plain_server.shutdown().await;
}

#[tokio::test]
async fn connect_errors_are_classified() {
    // A port with nothing listening: bind, note the address, close.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let error = OrchestratorClient::connect(&uri(Scheme::Http, closed), TIMEOUT)
        .await
        .expect_err("refused");
    assert!(matches!(error, GrpcError::Connect { .. }), "{error:?}");
    assert_eq!(error.stage(), GrpcStage::Connect);
}

#[tokio::test(start_paused = true)]
async fn silent_server_times_out_in_connect() {
    // Accepts TCP but never answers the TLS ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        std::future::pending::<()>().await;
        drop(stream);
    });
    let error = OrchestratorClient::connect(&uri(Scheme::Https, addr), Duration::from_secs(3))
        .await
        .expect_err("timeout");
    assert!(
        matches!(
            error,
            GrpcError::Timeout {
                stage: GrpcStage::Connect,
                timeout_ms: 3000,
                ..
            }
        ),
        "{error:?}"
    );
    held.abort();
}

#[tokio::test]
async fn hanging_call_times_out_in_call_stage() {
    let server = start(None, false, true).await;
    let mut client = OrchestratorClient::connect(&uri(Scheme::Http, server.addr), TIMEOUT)
        .await
        .expect("connect");
    client.set_timeout(Duration::from_millis(200));
    let error = client.ping(vec![1]).await.expect_err("timeout");
    assert!(
        matches!(
            error,
            GrpcError::Timeout {
                stage: GrpcStage::Call,
                ..
            }
        ),
        "{error:?}"
    );
    // The hung call must not hold shutdown beyond its grace period.
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_requests_finish_then_bounds_the_wait() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<&'static str>();
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let slow_arrived = arrived_tx.clone();
    let app = axum::Router::new()
        .route(
            "/slow",
            get(move || {
                let arrived = slow_arrived.clone();
                let mut release = release.clone();
                async move {
                    let _ = arrived.send("slow");
                    let _ = release.wait_for(|released| *released).await;
                    "finished"
                }
            }),
        )
        .route(
            "/stuck",
            get(move || {
                let arrived = arrived_tx.clone();
                async move {
                    let _ = arrived.send("stuck");
                    std::future::pending::<&'static str>().await
                }
            }),
        );
    let (stop, stopped) = oneshot::channel::<()>();
    let config = ServeConfig {
        shutdown_grace: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let server = tokio::spawn(serve_with_config(
        listener,
        None,
        app,
        async {
            let _ = stopped.await;
        },
        config,
    ));

    let h1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let slow = tokio::spawn({
        let h1 = h1.clone();
        async move {
            h1.get(format!("http://{addr}/slow"))
                .send()
                .await?
                .text()
                .await
        }
    });
    let stuck = tokio::spawn({
        let h1 = h1.clone();
        async move { h1.get(format!("http://{addr}/stuck")).send().await }
    });
    let mut seen = vec![
        arrived.recv().await.expect("first"),
        arrived.recv().await.expect("second"),
    ];
    seen.sort_unstable();
    assert_eq!(seen, ["slow", "stuck"]);

    let _ = stop.send(());
    // Shutdown has begun once the listener is closed and connects are refused; wait for that
    // before letting the slow request finish, so it provably finishes during shutdown.
    while TcpStream::connect(addr).await.is_ok() {
        tokio::task::yield_now().await;
    }
    release_tx.send(true).expect("release");
    assert_eq!(
        slow.await.expect("join").expect("slow finishes"),
        "finished"
    );

    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server returns after the grace period")
        .expect("join")
        .expect("serve");
    assert!(
        stuck.await.expect("join").is_err(),
        "stuck request is cut off"
    );
}
