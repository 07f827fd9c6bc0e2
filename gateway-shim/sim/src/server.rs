//! One simulated orchestrator on one port: `GetOrchestrator` over gRPC, `POST
//! /live-video-to-video`, and the trickle channels of its sessions, all served by
//! [`lvt_wire::serve::serve`] with a self-signed certificate (or plaintext).
//!
//! The job start handler follows go-livepeer's `StartLiveVideoToVideo` (server/ai_http.go) check
//! by check and text by text; each accepted job becomes a session task (see `session.rs`) that
//! holds one capacity slot until it ends.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use prost::Message as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use sha3::{Digest, Keccak256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::SimError;
use super::fleet::{GpuConfig, OrchestratorConfig, format_eth_address};
use super::session::{SessionContext, SessionStart, run_session};
use super::warmth::{StartDecision, StartKind, WarmthConfig, WarmthTracker};
use lvt_wire::grpc::{CAPABILITY_LIVE_VIDEO_TO_VIDEO, capability_bitstring, grpc_router, proto};
use lvt_wire::live::{AuthTokens, PAYMENT_HEADER, SEGMENT_HEADER, decode_segment_header};
use lvt_wire::trickle::{TrickleConfig, TrickleServer};

/// Pipeline name go-livepeer uses for live video-to-video in hardware info and capacity checks.
pub const LIVE_PIPELINE: &str = "live-video-to-video";
/// Version reported for the simulated runners (`runnerVersion` in the model constraints).
pub const RUNNER_VERSION: &str = concat!("lvt-sim-", env!("CARGO_PKG_VERSION"));
/// Node version reported in `Capabilities.version`. Build metadata keeps it ordered like the
/// go-livepeer release it imitates when a gateway compares it with a minimum version.
pub const NODE_VERSION: &str = "0.8.5+lvtsim";
/// Price in wei per `PIXELS_PER_UNIT` pixels: small, but not zero.
const PRICE_PER_UNIT: i64 = 1;
const PIXELS_PER_UNIT: i64 = 1_000_000;

/// A started simulated orchestrator.
pub struct RunningOrchestrator {
    pub name: String,
    /// EIP-55 checksummed `0x` address.
    pub eth_address: String,
    /// Service URI: `https://host:port` (or `http://` in plaintext mode).
    pub uri: String,
    /// Lowercase hex SHA-256 of its certificate; `None` in plaintext mode.
    pub cert_fingerprint: Option<String>,
    /// How its profile was given (built-in name, `inline`, file path).
    pub profile_label: String,
    pub gpu: GpuConfig,
    pub local_addr: SocketAddr,
    shared: Arc<Shared>,
    join: JoinHandle<Result<(), SimError>>,
}

impl std::fmt::Debug for RunningOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningOrchestrator")
            .field("name", &self.name)
            .field("eth_address", &self.eth_address)
            .field("uri", &self.uri)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RunningOrchestrator {
    /// Sessions currently holding a capacity slot.
    pub fn sessions_in_use(&self) -> u32 {
        self.shared.slots().in_use
    }

    /// Whether a session starting now would be a cold or a warm start.
    pub fn next_start(&self) -> StartKind {
        let now_us = self.shared.clock_us();
        self.shared.slots().warmth.peek_start(now_us).kind
    }

    /// Waits until exactly `n` sessions hold a capacity slot.
    pub async fn wait_sessions_in_use(&self, n: u32) {
        let mut rx = self.shared.in_use_watch.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|&in_use| in_use == n).await;
    }

    /// Sessions started since the orchestrator started.
    pub fn sessions_started(&self) -> u64 {
        self.shared.session_counter.load(Ordering::Relaxed)
    }

    /// The `stream_id` of every job started, in order (what the gateway said the stream is).
    pub fn stream_ids(&self) -> Vec<String> {
        self.shared
            .stream_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Payments (`POST /payment`) accepted since the orchestrator started.
    pub fn payments_received(&self) -> u64 {
        *self.shared.payments.borrow()
    }

    /// Waits until at least `n` payments were accepted.
    pub async fn wait_payments(&self, n: u64) {
        let mut rx = self.shared.payments.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|&count| count >= n).await;
    }

    /// The trickle server holding this orchestrator's channels (tests look channels up).
    pub fn trickle(&self) -> &TrickleServer {
        &self.shared.trickle
    }

    /// Waits until the server stopped (after the shutdown future completed) and every session
    /// ended.
    pub async fn join(self) -> Result<(), SimError> {
        match self.join.await {
            Ok(result) => result,
            Err(e) => Err(SimError::Task(e.to_string())),
        }
    }
}

/// State shared by the gRPC service, the HTTP handler and the sessions.
pub(crate) struct Shared {
    pub(crate) cfg: OrchestratorConfig,
    pub(crate) uri: String,
    pub(crate) trickle: TrickleServer,
    auth: AuthTokens,
    slots: Mutex<Slots>,
    /// The clock origin of cold/warm decisions (tokio's clock, so paused-time tests work).
    clock_origin: tokio::time::Instant,
    /// The number of sessions holding a slot, for whoever wants to wait for a change.
    in_use_watch: tokio::sync::watch::Sender<u32>,
    rng: Mutex<ChaCha8Rng>,
    session_counter: AtomicU64,
    /// The `stream_id` of every job started, in order.
    stream_ids: Mutex<Vec<String>>,
    /// Payments accepted by `POST /payment`, watchable so tests wait for a count.
    payments: tokio::sync::watch::Sender<u64>,
    pub(crate) stop: CancellationToken,
    /// Session tasks; finished ones are reaped whenever a new one starts.
    sessions: Mutex<tokio::task::JoinSet<()>>,
}

/// Capacity slots in use and the model's load state, under one lock so that a session start
/// sees both consistently.
#[derive(Debug)]
pub(crate) struct Slots {
    pub(crate) in_use: u32,
    warmth: WarmthTracker,
}

impl Shared {
    pub(crate) fn slots(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding this lock cannot leave the counter half-updated (it is one
        // integer), so a poisoned lock is still safe to use.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sessions(&self) -> MutexGuard<'_, tokio::task::JoinSet<()>> {
        // Spawning and reaping cannot leave the set inconsistent, even after a panic elsewhere.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rng(&self) -> MutexGuard<'_, ChaCha8Rng> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn idle_capacity(&self) -> u32 {
        self.cfg
            .profile
            .capacity
            .saturating_sub(self.slots().in_use)
    }

    /// Takes a capacity slot if one is free; the guard gives it back when dropped.
    fn try_reserve(self: &Arc<Self>) -> Option<SlotGuard> {
        let mut slots = self.slots();
        if slots.in_use >= self.cfg.profile.capacity {
            return None;
        }
        slots.in_use += 1;
        self.in_use_watch.send_replace(slots.in_use);
        Some(SlotGuard {
            shared: Arc::clone(self),
            session_started: false,
        })
    }

    /// Microseconds since the orchestrator started, on tokio's clock.
    fn clock_us(&self) -> u64 {
        u64::try_from(self.clock_origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// One capacity slot, released on drop (session end or a failed job start).
pub(crate) struct SlotGuard {
    shared: Arc<Shared>,
    /// True once the slot's session was counted as started for cold/warm decisions, so its end
    /// is counted too; a job refused after reserving the slot never ran a model.
    session_started: bool,
}

impl SlotGuard {
    /// Counts the slot's session as started now and decides whether it is a cold start.
    fn begin_session(&mut self) -> StartDecision {
        let now_us = self.shared.clock_us();
        let mut slots = self.shared.slots();
        self.session_started = true;
        slots.warmth.handle_session_start(now_us)
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let now_us = self.shared.clock_us();
        let mut slots = self.shared.slots();
        slots.in_use = slots.in_use.saturating_sub(1);
        if self.session_started {
            slots.warmth.handle_session_end(now_us);
        }
        self.shared.in_use_watch.send_replace(slots.in_use);
    }
}

/// Starts one simulated orchestrator on `listener`; it runs until `shutdown` completes.
pub async fn start(
    cfg: OrchestratorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningOrchestrator, SimError> {
    cfg.profile
        .validate(&format!("orchestrator `{}`", cfg.name))
        .map_err(SimError::Profile)?;
    let local_addr = listener.local_addr().map_err(SimError::Listener)?;
    let host = advertise_host(&cfg, local_addr.ip());
    let scheme = if cfg.plaintext { "http" } else { "https" };
    let uri = format!("{scheme}://{}:{}", bracket_ipv6(&host), local_addr.port());

    let (tls, cert_fingerprint) = if cfg.plaintext {
        (None, None)
    } else {
        let mut hosts = vec![
            host.clone(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        hosts.sort();
        hosts.dedup();
        let cert = lvt_wire::tls::self_signed(&hosts)?;
        let config = lvt_wire::tls::try_server_config(&cert)?;
        (Some(config), Some(cert.fingerprint_sha256.clone()))
    };

    let trickle = TrickleServer::new(TrickleConfig {
        idle_timeout: cfg.idle_timeout,
        sweep_interval: cfg.sweep_interval,
        ..TrickleConfig::default()
    });
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.profile.seed ^ name_seed(&cfg.name));
    // A simulator's token secret only has to be unguessable by accident, and deriving it from
    // the seed keeps every run repeatable.
    let derived: [u8; 32] = rng.random();
    let secret = cfg.auth_secret.unwrap_or(derived);
    let stop = CancellationToken::new();
    let shared = Arc::new(Shared {
        uri: uri.clone(),
        trickle: trickle.clone(),
        auth: AuthTokens::new(secret.to_vec()),
        slots: Mutex::new(Slots {
            in_use: 0,
            warmth: WarmthTracker::new(WarmthConfig::from_profile(&cfg.profile)),
        }),
        clock_origin: tokio::time::Instant::now(),
        in_use_watch: tokio::sync::watch::Sender::new(0),
        rng: Mutex::new(rng),
        session_counter: AtomicU64::new(0),
        stream_ids: Mutex::new(Vec::new()),
        payments: tokio::sync::watch::Sender::new(0),
        stop: stop.clone(),
        sessions: Mutex::new(tokio::task::JoinSet::new()),
        cfg,
    });

    let router = grpc_router(GrpcService {
        shared: Arc::clone(&shared),
    })
    .merge(
        axum::Router::new()
            .route("/live-video-to-video", post(start_job))
            .route(lvt_wire::payment::PAYMENT_PATH, post(receive_payment))
            .with_state(Arc::clone(&shared)),
    )
    .merge(trickle.router());

    let sweeper = trickle.spawn_sweeper();
    let name = shared.cfg.name.clone();
    info!(message = "Simulated orchestrator listening.", name = %name, uri = %uri);
    let stop_serving = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop_serving.cancel();
    });
    let task_shared = Arc::clone(&shared);
    let join = tokio::spawn(async move {
        let served =
            lvt_wire::serve::serve(listener, tls, router, stop.clone().cancelled_owned()).await;
        // Sessions watch the same token; wait for them to delete their channels and free slots.
        let mut sessions = std::mem::take(&mut *task_shared.sessions());
        while sessions.join_next().await.is_some() {}
        sweeper.abort();
        served.map_err(SimError::Serve)
    });

    Ok(RunningOrchestrator {
        name: shared.cfg.name.clone(),
        eth_address: format_eth_address(&shared.cfg.eth_address),
        uri,
        cert_fingerprint,
        profile_label: shared.cfg.profile_label.clone(),
        gpu: shared.cfg.gpu.clone(),
        local_addr,
        shared,
        join,
    })
}

fn name_seed(name: &str) -> u64 {
    let digest = Keccak256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

fn advertise_host(cfg: &OrchestratorConfig, ip: IpAddr) -> String {
    match &cfg.advertise_host {
        Some(host) => host.clone(),
        None if ip.is_unspecified() => Ipv4Addr::LOCALHOST.to_string(),
        None => ip.to_string(),
    }
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn unix_now() -> (i64, i64) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
    )
}

/// The gRPC half.
struct GrpcService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl lvt_wire::grpc::Orchestrator for GrpcService {
    async fn get_orchestrator(
        &self,
        request: tonic::Request<proto::OrchestratorRequest>,
    ) -> Result<tonic::Response<proto::OrchestratorInfo>, tonic::Status> {
        let req = request.into_inner();
        let shared = &self.shared;
        let delay_ms = shared.cfg.profile.get_orchestrator_delay_ms;
        if delay_ms > 0 {
            // The delay comes before any answer, capped or not, as a distant node's would.
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        }
        // Offchain orchestrators do not verify `sig`, so neither does the simulator.
        let asks_live = req.capabilities.as_ref().is_some_and(|caps| {
            lvt_wire::grpc::has_capability(&caps.bitstring, CAPABILITY_LIVE_VIDEO_TO_VIDEO)
                || caps.constraints.as_ref().is_some_and(|c| {
                    c.per_capability
                        .contains_key(&CAPABILITY_LIVE_VIDEO_TO_VIDEO)
                })
        });
        if asks_live && !req.ignore_capacity_check && shared.idle_capacity() == 0 {
            // go-livepeer returns a plain Go error here, which grpc-go sends as code Unknown
            // with the error text; getOrchestrator wraps it as "Invalid orchestrator request
            // (...)" around core.ErrOrchCap's "OrchestratorCapped".
            return Err(tonic::Status::unknown(
                "Invalid orchestrator request (OrchestratorCapped)",
            ));
        }
        Ok(tonic::Response::new(orchestrator_info(
            shared,
            req.capabilities.is_none(),
        )))
    }

    async fn end_transcoding_session(
        &self,
        _request: tonic::Request<proto::EndTranscodingSessionRequest>,
    ) -> Result<tonic::Response<proto::EndTranscodingSessionResponse>, tonic::Status> {
        Ok(tonic::Response::new(
            proto::EndTranscodingSessionResponse::default(),
        ))
    }

    async fn ping(
        &self,
        request: tonic::Request<proto::PingPong>,
    ) -> Result<tonic::Response<proto::PingPong>, tonic::Status> {
        // go-livepeer signs the value with its eth key; without a key the simulator answers
        // with the keccak of its address and the value, which is as opaque to a gateway.
        let mut hasher = Keccak256::new();
        hasher.update(self.shared.cfg.eth_address);
        hasher.update(&request.get_ref().value);
        Ok(tonic::Response::new(proto::PingPong {
            value: hasher.finalize().to_vec(),
        }))
    }
}

/// Builds the `OrchestratorInfo` answer. Hardware and per-model prices only go to requests
/// without capabilities, as in go-livepeer.
fn orchestrator_info(shared: &Shared, with_hardware: bool) -> proto::OrchestratorInfo {
    use proto::capabilities::{CapabilityConstraints, Constraints, capability_constraints};

    let cfg = &shared.cfg;
    let in_use = shared.slots().in_use;
    let idle = cfg.profile.capacity.saturating_sub(in_use);
    let models: std::collections::HashMap<String, capability_constraints::ModelConstraint> = cfg
        .models
        .iter()
        .map(|model| {
            (
                model.clone(),
                capability_constraints::ModelConstraint {
                    warm: true,
                    capacity: idle,
                    runner_version: RUNNER_VERSION.to_string(),
                    capacity_in_use: in_use,
                },
            )
        })
        .collect();
    let capabilities = proto::Capabilities {
        bitstring: capability_bitstring(&[CAPABILITY_LIVE_VIDEO_TO_VIDEO]),
        mandatories: Vec::new(),
        capacities: [(CAPABILITY_LIVE_VIDEO_TO_VIDEO, cfg.profile.capacity)]
            .into_iter()
            .collect(),
        version: NODE_VERSION.to_string(),
        constraints: Some(Constraints {
            min_version: String::new(),
            per_capability: [(
                CAPABILITY_LIVE_VIDEO_TO_VIDEO,
                CapabilityConstraints { models },
            )]
            .into_iter()
            .collect(),
        }),
    };

    let (now_s, _) = unix_now();
    let session_id = {
        let mut rng = shared.rng();
        let bytes: [u8; 8] = rng.random();
        hex::encode(bytes)
    };
    let auth_token = shared.auth.mint(&session_id, now_s);

    let hardware = if with_hardware {
        let (major, minor) = cfg.gpu.compute_capability();
        let total = i64::try_from(cfg.gpu.memory_bytes()).unwrap_or(i64::MAX);
        // Each running session occupies a few GiB, like a loaded model would.
        let used = (1i64 << 30) + i64::from(in_use) * (4i64 << 30);
        let gpu = proto::GpuComputeInfo {
            id: format!(
                "GPU-{}",
                &hex::encode(Keccak256::digest(cfg.name.as_bytes()))[..32]
            ),
            name: cfg.gpu.name.clone(),
            major,
            minor,
            memory_free: (total - used).max(0),
            memory_total: total,
        };
        cfg.models
            .iter()
            .map(|model| proto::HardwareInformation {
                pipeline: LIVE_PIPELINE.to_string(),
                model_id: model.clone(),
                gpu_info: [("0".to_string(), gpu.clone())].into_iter().collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let capabilities_prices = if with_hardware {
        cfg.models
            .iter()
            .map(|model| proto::PriceInfo {
                price_per_unit: PRICE_PER_UNIT,
                pixels_per_unit: PIXELS_PER_UNIT,
                capability: CAPABILITY_LIVE_VIDEO_TO_VIDEO,
                constraint: model.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };

    let recipient_rand_hash = Keccak256::digest(session_id.as_bytes()).to_vec();
    proto::OrchestratorInfo {
        transcoder: shared.uri.clone(),
        ticket_params: Some(proto::TicketParams {
            recipient: cfg.eth_address.to_vec(),
            face_value: cfg.ticket.face_value.clone(),
            win_prob: cfg.ticket.win_prob.clone(),
            recipient_rand_hash,
            seed: session_id.as_bytes().to_vec(),
            expiration_block: vec![0x01],
            expiration_params: Some(proto::TicketExpirationParams::default()),
        }),
        price_info: Some(proto::PriceInfo {
            price_per_unit: PRICE_PER_UNIT,
            pixels_per_unit: PIXELS_PER_UNIT,
            capability: 0,
            constraint: String::new(),
        }),
        address: cfg.eth_address.to_vec(),
        capabilities: Some(capabilities),
        auth_token: Some(auth_token),
        hardware,
        storage: Vec::new(),
        capabilities_prices,
        nodes: Vec::new(),
    }
}

/// Plain-text error answer the way Go's `http.Error` writes it.
fn http_error(status: StatusCode, message: &str) -> Response {
    let mut response = (status, format!("{message}\n")).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The parts of the job request body the simulator uses.
struct JobRequest {
    model_id: String,
    params: Value,
    stream_id: String,
    gateway_request_id: String,
}

fn parse_job_request(body: &[u8]) -> Result<JobRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(map) = value else {
        return Err("json: cannot unmarshal non-object into the request body".into());
    };
    let text_field = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("json: cannot unmarshal {key}: not a string")),
        }
    };
    let params = match map.get("params") {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::Object(p)) => Value::Object(p.clone()),
        Some(_) => return Err("json: cannot unmarshal params: not an object".into()),
    };
    Ok(JobRequest {
        // go-livepeer's gateway always sends model_id (defaulting it to noop); the simulator
        // applies the same default rather than failing on a request that leaves it out.
        model_id: text_field("model_id")?.unwrap_or_else(|| "noop".into()),
        params,
        stream_id: text_field("stream_id")?.unwrap_or_default(),
        gateway_request_id: text_field("gateway_request_id")?.unwrap_or_default(),
    })
}

/// Decodes `Livepeer-Payment` like go-livepeer's `getPayment`: base64, then protobuf.
fn decode_payment(header: &str) -> Result<proto::Payment, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header.trim())
        .map_err(|e| format!("base64 decode error: {e}"))?;
    proto::Payment::decode(bytes.as_slice()).map_err(|e| format!("protobuf unmarshal error: {e}"))
}

/// `POST /live-video-to-video`, in go-livepeer's order: body (400), capacity (503), payment
/// (402), credentials (403), runner start (500).
async fn start_job(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if shared.stop.is_cancelled() {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    }
    let request = match parse_job_request(&body) {
        Ok(r) => r,
        Err(message) => return http_error(StatusCode::BAD_REQUEST, &message),
    };
    let cfg = &shared.cfg;

    let serves_model = cfg.models.contains(&request.model_id);
    let refuse_busy = cfg.profile.start_status == Some(503);
    let slot = if serves_model && !refuse_busy {
        shared.try_reserve()
    } else {
        None
    };
    let Some(mut slot) = slot else {
        info!(
            message = "Job refused: no capacity.",
            orchestrator = %cfg.name,
            model_id = %request.model_id
        );
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    };

    let payment_header = header_text(&headers, PAYMENT_HEADER);
    let payment = match decode_payment(&payment_header) {
        Ok(payment) => payment,
        Err(message) => return http_error(StatusCode::PAYMENT_REQUIRED, &message),
    };
    if cfg.profile.require_payment && is_empty_payment(&payment) {
        // An on-chain orchestrator cannot credit a job that brings no ticket.
        return http_error(StatusCode::PAYMENT_REQUIRED, MISSING_PAYMENT);
    }

    let segment_header = header_text(&headers, SEGMENT_HEADER);
    let (now_s, now_ms) = unix_now();
    let segment = match decode_segment_header(&segment_header) {
        Ok(seg) => seg,
        Err(e) => return http_error(StatusCode::FORBIDDEN, &e.to_string()),
    };
    if let Err(e) = shared.auth.verify_segment(&segment, now_s) {
        return http_error(StatusCode::FORBIDDEN, &e.to_string());
    }

    if let Some(status) = cfg.profile.start_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // The text a failed runner start produces in go-livepeer (worker start error wrapped
        // by the orchestrator), so classifiers see a realistic message.
        return http_error(
            status,
            "error starting live video-to-video: runner container failed to start: simulated failure",
        );
    }

    // Manifest ids are 8 hex characters, drawn from the seeded generator; a collision with a
    // live session (one in four billion) draws again.
    let mid = loop {
        let candidate = {
            let mut rng = shared.rng();
            let bytes: [u8; 4] = rng.random();
            hex::encode(bytes)
        };
        if !shared.trickle.channel_exists(&candidate) {
            break candidate;
        }
    };
    let channels = SessionChannels::new(&mid);
    shared.trickle.create_channel(&channels.input, "video/MP2T");
    shared
        .trickle
        .create_channel(&channels.output, "video/MP2T");
    shared
        .trickle
        .create_channel(&channels.control, "application/json");
    shared
        .trickle
        .create_channel(&channels.events, "application/json");

    let session_index = shared.session_counter.fetch_add(1, Ordering::Relaxed);
    let start = slot.begin_session();
    let context = SessionContext::new(
        Arc::clone(&shared),
        channels.clone(),
        SessionStart {
            index: session_index,
            model_id: request.model_id.clone(),
            params: request.params,
            start_unix_ms: now_ms,
            startup_us: start.startup_us,
        },
        slot,
    );
    let context = match context {
        Ok(c) => c,
        Err(message) => {
            channels.delete_all(&shared.trickle);
            warn!(message = "Job start failed.", error = %message);
            return http_error(StatusCode::INTERNAL_SERVER_ERROR, &message);
        }
    };
    {
        let mut sessions = shared.sessions();
        while sessions.try_join_next().is_some() {}
        sessions.spawn(run_session(context));
    }
    shared
        .stream_ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(request.stream_id.clone());
    info!(
        message = "Live job started.",
        orchestrator = %cfg.name,
        manifest_id = %mid,
        model_id = %request.model_id,
        start = start.kind.as_str(),
        startup_ms = start.startup_us / 1000,
        stream_id = %request.stream_id,
        gateway_request_id = %request.gateway_request_id
    );

    let base = format!("{}/ai/trickle/{}", shared.uri, mid);
    let answer = serde_json::json!({
        "publish_url": base,
        "subscribe_url": format!("{base}-out"),
        "control_url": format!("{base}-control"),
        "events_url": format!("{base}-events"),
        "request_id": mid,
        "manifest_id": mid,
    });
    let mut response = (StatusCode::OK, answer.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The 402 text of a job start without a ticket on an orchestrator that requires payment.
pub const MISSING_PAYMENT: &str = "missing payment: Livepeer-Payment carries no ticket";

/// True for the offchain payment: no sender and no ticket.
fn is_empty_payment(payment: &proto::Payment) -> bool {
    payment.sender.is_empty()
        && payment.ticket_params.is_none()
        && payment.ticket_sender_params.is_empty()
}

/// `POST /payment`, in go-livepeer's order (`lphttp.Payment`): payment header (402), segment
/// credentials (403), payment processing (400; here the profile's `payment_status`), then 200
/// with a protobuf `PaymentResult` carrying the orchestrator's info and the caller's token.
async fn receive_payment(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let payment = match decode_payment(&header_text(&headers, PAYMENT_HEADER)) {
        Ok(payment) => payment,
        Err(message) => return http_error(StatusCode::PAYMENT_REQUIRED, &message),
    };
    let (now_s, _) = unix_now();
    let segment = match decode_segment_header(&header_text(&headers, SEGMENT_HEADER)) {
        Ok(seg) => seg,
        Err(e) => return http_error(StatusCode::FORBIDDEN, &e.to_string()),
    };
    if let Err(e) = shared.auth.verify_segment(&segment, now_s) {
        return http_error(StatusCode::FORBIDDEN, &e.to_string());
    }
    if let Some(status) = shared.cfg.profile.payment_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        return http_error(status, "error processing payment: simulated failure");
    }
    if shared.cfg.profile.require_payment && is_empty_payment(&payment) {
        return http_error(StatusCode::BAD_REQUEST, MISSING_PAYMENT);
    }
    shared.payments.send_modify(|count| *count += 1);
    // go-livepeer keeps the caller's auth token: new tokens only come from GetOrchestrator.
    let mut info = orchestrator_info(&shared, false);
    info.auth_token = segment.auth_token;
    let result = lvt_wire::payment::PaymentResult { info: Some(info) };
    (StatusCode::OK, result.encode_to_vec()).into_response()
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The four channel names of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionChannels {
    pub(crate) mid: String,
    pub(crate) input: String,
    pub(crate) output: String,
    pub(crate) control: String,
    pub(crate) events: String,
}

impl SessionChannels {
    pub(crate) fn new(mid: &str) -> Self {
        Self {
            mid: mid.to_string(),
            input: mid.to_string(),
            output: format!("{mid}-out"),
            control: format!("{mid}-control"),
            events: format!("{mid}-events"),
        }
    }

    /// Deletes whichever of the four channels still exist.
    pub(crate) fn delete_all(&self, trickle: &TrickleServer) {
        for name in [&self.input, &self.output, &self.control, &self.events] {
            trickle.delete_channel(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_request_parsing_defaults_and_errors() {
        let r = parse_job_request(br#"{"model_id":"streamdiffusion","params":{"prompt":"x"}}"#)
            .unwrap();
        assert_eq!(r.model_id, "streamdiffusion");
        assert_eq!(r.params["prompt"], "x");
        let r = parse_job_request(b"{}").unwrap();
        assert_eq!(r.model_id, "noop");
        assert!(r.params.as_object().unwrap().is_empty());
        assert!(parse_job_request(b"not json").is_err());
        assert!(parse_job_request(b"[1]").is_err());
        assert!(parse_job_request(br#"{"params": 3}"#).is_err());
        assert!(parse_job_request(br#"{"model_id": 3}"#).is_err());
    }

    #[test]
    fn payment_decoding_accepts_empty_and_rejects_garbage() {
        assert!(decode_payment("").is_ok());
        let encoded = base64::engine::general_purpose::STANDARD.encode(
            proto::Payment {
                sender: vec![1; 20],
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert_eq!(decode_payment(&encoded).unwrap().sender, vec![1; 20]);
        assert!(
            decode_payment("!!!")
                .unwrap_err()
                .starts_with("base64 decode error")
        );
        let junk = base64::engine::general_purpose::STANDARD.encode([0xff, 0xff, 0xff]);
        assert!(
            decode_payment(&junk)
                .unwrap_err()
                .starts_with("protobuf unmarshal error")
        );
    }

    #[test]
    fn host_formatting() {
        assert_eq!(bracket_ipv6("::1"), "[::1]");
        assert_eq!(bracket_ipv6("127.0.0.1"), "127.0.0.1");
        let cfg = OrchestratorConfig::new("a", super::super::profile::Profile::default());
        assert_eq!(
            advertise_host(&cfg, "0.0.0.0".parse().unwrap()),
            "127.0.0.1"
        );
        assert_eq!(
            advertise_host(&cfg, "10.1.2.3".parse().unwrap()),
            "10.1.2.3"
        );
    }
}
