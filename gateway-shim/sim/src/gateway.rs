//! `lvt sim gateway`: go-livepeer's gateway as users see it, on one machine.
//!
//! The routes, status codes, headers and bodies of go-livepeer's live video-to-video gateway
//! (`server/ai_mediaserver.go`, `media/whip_server.go`, `media/whep_server.go`):
//!
//! - `POST /live/video-to-video/{stream}/whip`: `Content-Type: application/sdp` or 415; `201`
//!   with the SDP answer (ICE gathered, no trickle), `Location` (the request URL, with
//!   go-livepeer's double slash, and a resource id), a weak `ETag`, a `Link` ice-server header
//!   and `Livepeer-Playback-URL` (`{whep base}{stream}-{request id}-out/whep`). `HEAD` 405,
//!   `OPTIONS` 204. No video within 5 s closes the peer connection; the gateway asks for a
//!   keyframe (PLI) every 2 s.
//! - `POST /live/video-to-video/{stream}-{request id}-out/whep` (or `{stream}-out/whep`): 415
//!   without SDP, 404 `Malformed stream ID` / `Stream not found`, 429 `Too many viewers for this
//!   stream` past the viewer limit (default 5), else `201` with the answer and no `Location`.
//!   Output starts at a keyframe; when the stream ends the viewer's connection is closed.
//!   `HEAD` 405, `OPTIONS` 204, `PATCH` 501.
//! - `GET /live/video-to-video/{streamId}/status`: 404 `Stream not found` until the stream id is
//!   known, then the runner's last status event with `gateway_status` (`whep_url`,
//!   `ingest_metrics`).
//! - `POST /live/video-to-video/{stream}/update`: 404 `Stream not found`, else 200 (the params
//!   are kept and show in the status).
//!
//! Where go-livepeer relays the ingest to an orchestrator over trickle, this gateway hands each
//! stream to a [`Runner`]: by default the [`BuiltInRunner`] (every received access unit comes
//! back on the output after [`GatewayConfig::latency`], once the runner is ONLINE,
//! [`GatewayConfig::startup`] after the first video), or one given to [`start_gateway_with`],
//! such as lvt's relay to orchestrators over trickle (`lvt sim gateway --orchestrator`).
//!
//! Auth: with [`GatewayConfig::auth_webhook`], each WHIP stream is posted to the webhook in
//! go-livepeer's `AIAuthRequest` shape while its SDP exchange goes on; a refusal closes the
//! ingest peer connection after the 201.
//!
//! Faults: a slow SDP answer, ICE that never connects (the answer names a port nobody reads),
//! an auth refusal after the 201 (the ingest peer connection is closed once up, as go-livepeer
//! does when its auth webhook refuses a WHIP stream), a viewer limit.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use lvt_webrtc::{Peer, PeerEvent, PeerHandle, PeerOptions};
use rand::Rng;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::events::{PipelineState, StatusSnapshot, status_event};

mod clock;
mod runner;

pub use clock::{IngestClock, Tracks};

pub use runner::{
    BuiltInRunner, InjectedSwap, Runner, RunnerInput, RunnerLink, RunnerOutput, StreamStart,
};

/// Ended streams whose status stays answerable.
const ENDED_KEPT: usize = 256;

/// go-livepeer's `LIVE_AI_WHEP_MAX_SESSIONS` default.
pub const DEFAULT_VIEWER_LIMIT: usize = 5;
/// go-livepeer's `LIVE_AI_VIDEO_GATHER_TIMEOUT` default: no video track by then closes the
/// ingest.
const VIDEO_GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// go-livepeer's ingest asks for a keyframe this often (`keyframeInterval`).
const PLI_EVERY: Duration = Duration::from_secs(2);
/// The ICE server go-livepeer advertises in `Link` (its `WebrtcConfig`).
const ICE_LINK: &str = "<stun:stun.l.google.com:19302>; rel=\"ice-server\"";

/// How the simulated gateway behaves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The built-in runner's processing time: each access unit comes back this much later.
    pub latency: Duration,
    /// From the first video until the runner is ONLINE (LOADING before: no output).
    pub startup: Duration,
    /// Held before the SDP answers of WHIP and WHEP (a slow gateway).
    pub answer_delay: Duration,
    /// The built-in runner plays a swap of orchestrators in the middle of each stream
    /// ([`BuiltInRunner`]).
    pub swap: Option<InjectedSwap>,
    /// Answer, then never read the peer's socket: ICE cannot connect.
    pub ice_never: bool,
    /// Close every ingest peer connection right after its 201 (an auth refusal on WHIP).
    pub refuse_auth: bool,
    /// go-livepeer's `-liveAIAuthWebhookUrl`: each WHIP stream is `POST`ed there (the
    /// `AIAuthRequest` JSON) while its SDP exchange goes on; an answer other than 2xx, or no
    /// answer, closes the ingest peer connection after its 201, as go-livepeer does.
    pub auth_webhook: Option<String>,
    /// go-livepeer's `-liveAIAuthApiKey`: sent to the webhook as `x-api-key` and
    /// `Authorization`.
    pub auth_api_key: String,
    /// Viewers per stream (`None`: unlimited, go-livepeer's `unlimited`).
    pub viewer_limit: Option<usize>,
    /// go-livepeer's `LIVE_AI_ALLOW_CORS`: CORS headers on `OPTIONS`, WHEP and update answers,
    /// so that a page from another origin can play (a browser).
    pub allow_cors: bool,
    /// The address the peers' UDP sockets bind to (the host candidate).
    pub media_ip: IpAddr,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            latency: Duration::from_millis(100),
            startup: Duration::from_millis(500),
            answer_delay: Duration::ZERO,
            swap: None,
            ice_never: false,
            refuse_auth: false,
            auth_webhook: None,
            auth_api_key: String::new(),
            viewer_limit: Some(DEFAULT_VIEWER_LIMIT),
            allow_cors: false,
            media_ip: IpAddr::from([127, 0, 0, 1]),
        }
    }
}

/// One output access unit.
#[derive(Debug, Clone)]
struct Frame {
    pts: u64,
    data: Bytes,
    keyframe: bool,
}

/// One live stream: a WHIP ingest and its output.
struct Stream {
    name: String,
    request_id: String,
    stream_id: String,
    pipeline: String,
    whep_url: String,
    started_ms: i64,
    /// The output while the ingest runs; taken (and so closed for every viewer) when it ends.
    output: Mutex<Option<broadcast::Sender<Frame>>>,
    viewers: AtomicUsize,
    status: Mutex<StreamStatus>,
    frames_in: AtomicU64,
    /// Params updates for the runner, taken by the ingest task.
    updates: tokio::sync::mpsc::UnboundedSender<Value>,
}

#[derive(Default)]
struct StreamStatus {
    state: Option<PipelineState>,
    state_ms: Option<i64>,
    last_input_ms: Option<i64>,
    last_output_ms: Option<i64>,
    params: Option<Value>,
    params_ms: Option<i64>,
    ingest: Option<Value>,
    /// The runner's own last status event, when it gives one (a relay to an orchestrator):
    /// shown as it is instead of the gateway's snapshot.
    runner_event: Option<Value>,
    /// go-livepeer's `gateway_status.error` (`LiveErrorEventSender`): the first error that
    /// ended the stream's pipeline, with its time.
    error: Option<(String, i64)>,
}

/// The gateway's state.
pub struct Gateway {
    config: GatewayConfig,
    runner: Arc<dyn Runner>,
    /// Streams by name (one ingest per name: a new one replaces the old).
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    /// Streams that ended, newest last: go-livepeer's status store outlives a stream, so its
    /// status route still answers (with the error that ended it).
    ended: Mutex<VecDeque<Arc<Stream>>>,
    /// For the auth webhook.
    http: reqwest::Client,
}

impl Gateway {
    /// A gateway with no streams yet and the built-in runner, for [`router`].
    pub fn new(config: GatewayConfig) -> Arc<Gateway> {
        let runner = Arc::new(BuiltInRunner::new(&config));
        Gateway::with_runner(config, runner)
    }

    /// A gateway with no streams yet whose streams `runner` runs, for [`router`].
    pub fn with_runner(config: GatewayConfig, runner: Arc<dyn Runner>) -> Arc<Gateway> {
        Arc::new(Gateway {
            config,
            runner,
            streams: Mutex::new(HashMap::new()),
            ended: Mutex::new(VecDeque::new()),
            http: reqwest::Client::builder()
                .timeout(AUTH_TIMEOUT)
                .build()
                .unwrap_or_default(),
        })
    }

    /// The live stream named `name`.
    fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .lock()
            .expect("streams lock")
            .get(name)
            .cloned()
    }
}

/// A gateway serving on a listener.
pub struct RunningGateway {
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// `http://{addr}`.
    pub url: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningGateway {
    /// Waits for the server to stop (after the shutdown future resolves).
    pub async fn join(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Serves a gateway with the built-in runner on `listener` until `shutdown` resolves.
pub async fn start_gateway(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningGateway> {
    let runner = Arc::new(BuiltInRunner::new(&config));
    start_gateway_with(config, runner, listener, shutdown).await
}

/// Serves a gateway whose streams `runner` runs on `listener` until `shutdown` resolves.
pub async fn start_gateway_with(
    config: GatewayConfig,
    runner: Arc<dyn Runner>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningGateway> {
    let addr = listener.local_addr()?;
    let app = router(Gateway::with_runner(config, runner));
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok(RunningGateway {
        addr,
        url: format!("http://{addr}"),
        task,
    })
}

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    // One parameter name at each position: the router cannot tell `{stream}` from `{path}`.
    Router::new()
        .route("/live/video-to-video/{name}/whip", any(whip))
        .route("/live/video-to-video/{name}/whep", any(whep))
        .route("/live/video-to-video/{name}/update", any(update))
        .route("/live/video-to-video/{name}/status", any(status))
        .with_state(gateway)
}

/// The auth webhook gets this long to answer (go-livepeer uses Go's default client, which has
/// no timeout; a simulator that waits forever would hide the fault, so it counts as a refusal).
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// go-livepeer's `AIAuthRequest`, as its WHIP route fills it.
#[derive(Debug, serde::Serialize)]
struct AuthRequest {
    stream: String,
    stream_key: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    query_params: String,
    gateway_host: String,
    whep_url: String,
    status_url: String,
    update_url: String,
}

/// Asks the auth webhook about one stream, as go-livepeer's `authenticateAIStream` does: `POST`
/// of the JSON with `x-api-key` and `Authorization` set to the gateway's key; 2xx allows.
async fn authenticate(
    http: &reqwest::Client,
    url: &str,
    api_key: &str,
    request: &AuthRequest,
) -> Result<(), String> {
    let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    let response = http
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", api_key)
        .header(header::AUTHORIZATION, api_key)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = response.text().await.unwrap_or_default();
        Err(format!("status={} error={text}", status.as_u16()))
    }
}

/// Go's `url.Values.Encode`: the query's pairs sorted by key (values in their order),
/// form-encoded.
fn encode_query(raw: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(&format!("http://q.invalid/?{raw}")) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = reqwest::Url::parse("http://q.invalid/").expect("a valid URL");
    out.query_pairs_mut().extend_pairs(pairs);
    out.query().unwrap_or_default().to_owned()
}

/// go's `http.Error`: the message and a newline as plain text.
fn go_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{message}\n"),
    )
        .into_response()
}

fn code(status: StatusCode) -> Response {
    status.into_response()
}

/// The answer of the WHIP and WHEP routes to anything but `POST` (go-livepeer registers `HEAD`
/// 405 and `OPTIONS` 204 on both, `PATCH` 501 on WHEP); `None` for a `POST`.
fn not_a_post(
    config: &GatewayConfig,
    method: &Method,
    patch_not_implemented: bool,
) -> Option<Response> {
    Some(match *method {
        Method::POST => return None,
        Method::HEAD => code(StatusCode::METHOD_NOT_ALLOWED),
        Method::OPTIONS => cors(config, method, code(StatusCode::NO_CONTENT)),
        Method::PATCH if patch_not_implemented => code(StatusCode::NOT_IMPLEMENTED),
        _ => go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    })
}

/// go-livepeer's `corsHeaders`, when `LIVE_AI_ALLOW_CORS` is set: any origin, the
/// `Content-Type` header, and on `OPTIONS` the methods and the ICE server `Link`.
fn cors(config: &GatewayConfig, method: &Method, mut response: Response) -> Response {
    if !config.allow_cors {
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    if *method == Method::OPTIONS {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("OPTIONS, POST, GET"),
        );
        headers.insert(header::LINK, HeaderValue::from_static(ICE_LINK));
    }
    response
}

fn not_sdp() -> Response {
    go_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Unsupported Media Type, expected application/sdp",
    )
}

fn is_sdp(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/sdp")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn sdp_created(answer: String, extra: Vec<(header::HeaderName, String)>) -> Response {
    let mut response = Response::new(Body::from(answer));
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    response
}

async fn whip(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = not_a_post(&gateway.config, &method, false) {
        return refused;
    }
    if !is_sdp(&headers) {
        return not_sdp();
    }
    if let Some(raw) = query.get("params").filter(|p| !p.is_empty())
        && serde_json::from_str::<serde_json::Map<String, Value>>(raw).is_err()
    {
        return go_error(StatusCode::BAD_REQUEST, "Invalid pipeline params");
    }
    let config = &gateway.config;
    let offer = String::from_utf8_lossy(&body);
    let (peer, answer) = match Peer::answer(config.media_ip, &offer).await {
        Ok(made) => made,
        Err(e) => {
            return go_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("SetRemoteDescription failed: {e}"),
            );
        }
    };
    tokio::time::sleep(config.answer_delay).await;

    let request_id = random_hex(4);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let whep_url = format!("http://{host}/live/video-to-video/{name}-{request_id}-out/whep");
    let (output, _) = broadcast::channel(64);
    let (updates, updates_rx) = tokio::sync::mpsc::unbounded_channel();
    let params: Value = query
        .get("params")
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_else(|| json!({}));
    let stream = Arc::new(Stream {
        name: name.clone(),
        request_id: request_id.clone(),
        stream_id: query.get("streamId").cloned().unwrap_or_default(),
        pipeline: query.get("pipeline").cloned().unwrap_or_default(),
        whep_url: whep_url.clone(),
        started_ms: now_ms(),
        output: Mutex::new(Some(output)),
        viewers: AtomicUsize::new(0),
        status: Mutex::new(StreamStatus {
            params: query
                .get("params")
                .and_then(|p| serde_json::from_str(p).ok()),
            ..Default::default()
        }),
        frames_in: AtomicU64::new(0),
        updates,
    });
    gateway
        .streams
        .lock()
        .expect("streams lock")
        .insert(name.clone(), stream.clone());

    let auth = config.auth_webhook.as_ref().map(|url| {
        let request = AuthRequest {
            stream: name.clone(),
            stream_key: name.clone(),
            kind: "livepeer-whip",
            query_params: uri.query().map(encode_query).unwrap_or_default(),
            whep_url: whep_url.clone(),
            update_url: format!("https://{host}/live/video-to-video/{name}//update"),
            status_url: format!(
                "https://{host}/live/video-to-video/{}//status",
                stream.stream_id
            ),
            gateway_host: host.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (http, url, key) = (
            gateway.http.clone(),
            url.clone(),
            config.auth_api_key.clone(),
        );
        tokio::spawn(async move {
            let _ = tx.send(authenticate(&http, &url, &key, &request).await);
        });
        rx
    });
    if config.ice_never {
        // The answer names the peer's socket; dropping the peer closes it unread.
        drop(peer);
    } else {
        let handle = peer.spawn(PeerOptions {
            pli_every: Some(PLI_EVERY),
            stats_every: Some(Duration::from_secs(1)),
        });
        let link = gateway.runner.start(StreamStart {
            name: name.clone(),
            stream_id: stream.stream_id.clone(),
            request_id: request_id.clone(),
            pipeline: stream.pipeline.clone(),
            params,
            orchestrator: query.get("orchestrator").filter(|o| !o.is_empty()).cloned(),
        });
        tokio::spawn(ingest(
            gateway.clone(),
            stream,
            handle,
            auth,
            link,
            updates_rx,
            offer.lines().any(|line| line.starts_with("m=audio")),
        ));
    }

    // go-livepeer's getRequestURL joins host and path with a slash, and the path starts with
    // one: the resource URL has a double slash.
    let location = format!("http://{host}/{}/{}", uri.path(), random_hex(8));
    sdp_created(
        answer,
        vec![
            (header::LOCATION, location),
            (header::ETAG, format!("W/\"{}\"", random_hex(8))),
            (header::LINK, ICE_LINK.to_owned()),
            (
                header::HeaderName::from_static("livepeer-playback-url"),
                whep_url,
            ),
            (
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                "Location, ETag, Link, Livepeer-Playback-URL".to_owned(),
            ),
        ],
    )
}

/// The ingest of one stream: its received access units go to the stream's runner, what the
/// runner gives back goes to the viewers and the status.
async fn ingest(
    gateway: Arc<Gateway>,
    stream: Arc<Stream>,
    mut peer: PeerHandle,
    mut auth: Option<tokio::sync::oneshot::Receiver<Result<(), String>>>,
    link: RunnerLink,
    mut updates: tokio::sync::mpsc::UnboundedReceiver<Value>,
    expects_audio: bool,
) {
    let config = &gateway.config;
    let RunnerLink {
        input: mut to_runner,
        output: mut from_runner,
    } = link;
    let gather_deadline = Instant::now() + VIDEO_GATHER_TIMEOUT;
    let (mut connected, mut refused, mut got_video) = (false, false, false);
    // go-livepeer's track gathering, and both tracks on one timeline.
    let mut tracks = Tracks::new(expects_audio);
    // The runner ended the stream (its error is in the status).
    let mut kicked = false;
    let mut runner_open = true;
    loop {
        tokio::select! {
            event = peer.events.recv() => match event {
                Some(PeerEvent::Video { rtp_time, at, data, .. }) => {
                    got_video = true;
                    stream.frames_in.fetch_add(1, Ordering::Relaxed);
                    stream.status.lock().expect("status lock").last_input_ms = Some(now_ms());
                    tracks.video(rtp_time, at, data, |input| { to_runner(input); });
                }
                Some(PeerEvent::Audio { rtp_time, at, data }) => {
                    tracks.audio(rtp_time, at, data, |input| { to_runner(input); });
                }
                Some(PeerEvent::Ingress(stats)) => {
                    let kind = if stats.video { "video" } else { "audio" };
                    let mut status = stream.status.lock().expect("status lock");
                    let ingest = status.ingest.get_or_insert_with(|| json!({ "stats": { "track_stats": {} } }));
                    ingest["stats"]["track_stats"][kind] = json!({
                        "type": kind,
                        "packets_received": stats.packets,
                        "bytes_received": stats.bytes,
                        "jitter": stats.jitter,
                        "packets_lost_fraction": stats.loss,
                    });
                }
                Some(PeerEvent::Connected(_)) => {
                    connected = true;
                    if config.refuse_auth || refused || kicked {
                        // The auth webhook said no while the SDP exchange went on: go-livepeer
                        // closes the peer connection it has just answered.
                        peer.close();
                    }
                }
                Some(PeerEvent::Closed(_)) | None => break,
                Some(_) => {}
            },
            out = from_runner.recv(), if runner_open => match out {
                Some(RunnerOutput::Video { pts, data, keyframe }) => {
                    stream.status.lock().expect("status lock").last_output_ms = Some(now_ms());
                    if let Some(output) = &*stream.output.lock().expect("output lock") {
                        let _ = output.send(Frame { pts, data, keyframe });
                    }
                }
                Some(RunnerOutput::State(state)) => {
                    let mut status = stream.status.lock().expect("status lock");
                    status.state = Some(state);
                    status.state_ms = Some(now_ms());
                }
                Some(RunnerOutput::Status(event)) => {
                    stream.status.lock().expect("status lock").runner_event = Some(event);
                }
                Some(RunnerOutput::Ended(why)) => {
                    // go-livepeer's `kickInput`: the error into the status, then the ingest
                    // closed (once up, as for an auth refusal: docs/gateway-mode.md).
                    tracing::info!(message = "Live video pipeline finished with error.", stream = %stream.name, error = %why);
                    stream.status.lock().expect("status lock").error.get_or_insert((why, now_ms()));
                    kicked = true;
                    if connected {
                        peer.close();
                    }
                }
                None => {
                    // The runner is gone: the stream ends with it (once up, as above).
                    runner_open = false;
                    kicked = true;
                    if connected {
                        peer.close();
                    }
                }
            },
            Some(params) = updates.recv() => {
                to_runner(RunnerInput::Params(params));
            }
            verdict = async { auth.as_mut().expect("guarded").await }, if auth.is_some() => {
                auth = None;
                if let Ok(Err(why)) | Err(why) = verdict.map_err(|_| "the auth task ended".to_owned()) {
                    // go-livepeer: "Live AI auth failed", and `whipConn.Close()`. Closed once
                    // up, so that the publisher sees a close (docs/gateway-mode.md).
                    tracing::info!(message = "Live AI auth failed.", stream = %stream.name, error = %why);
                    refused = true;
                    if connected {
                        peer.close();
                    }
                }
            }
            () = runner::sleep_until_opt(tracks.gather_deadline()) => {
                tracks.stop_waiting(|input| { to_runner(input); });
            }
            _ = tokio::time::sleep_until(gather_deadline.into()), if !got_video => {
                // No video track within the gather timeout: go-livepeer closes ("missing video").
                peer.close();
            }
        }
    }
    drop(to_runner);
    stream.output.lock().expect("output lock").take();
    let mut streams = gateway.streams.lock().expect("streams lock");
    if streams
        .get(&stream.name)
        .is_some_and(|s| s.request_id == stream.request_id)
    {
        streams.remove(&stream.name);
    }
    drop(streams);
    if refused || config.refuse_auth {
        // go-livepeer returns before it stores any status for a stream its webhook refused.
        return;
    }
    // go-livepeer's close watcher: "whip disconnected", unless an error came first.
    stream
        .status
        .lock()
        .expect("status lock")
        .error
        .get_or_insert_with(|| ("whip disconnected".to_owned(), now_ms()));
    let mut ended = gateway.ended.lock().expect("ended lock");
    if ended.len() >= ENDED_KEPT {
        ended.pop_front();
    }
    ended.push_back(stream);
}

/// `{stream}-{request id}-out` or `{stream}-out`, split on `-` as go-livepeer does.
fn parse_playback(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.split('-').collect();
    match parts.as_slice() {
        [stream, request, "out"] => Some((stream, request)),
        [stream, "out"] => Some((stream, "")),
        _ => None,
    }
}

/// Releases a viewer's place when dropped.
struct ViewerSlot(Arc<Stream>);

impl Drop for ViewerSlot {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn whep(
    State(gateway): State<Arc<Gateway>>,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = not_a_post(&gateway.config, &method, true) {
        return refused;
    }
    let Some((name, request_id)) = parse_playback(&path) else {
        return go_error(StatusCode::NOT_FOUND, "Malformed stream ID");
    };
    let stream = gateway.stream(name);
    let Some(stream) = stream.filter(|s| request_id.is_empty() || s.request_id == request_id)
    else {
        return go_error(StatusCode::NOT_FOUND, "Stream not found");
    };
    let response = play_stream(&gateway, stream, &headers, &body).await;
    cors(&gateway.config, &method, response)
}

/// The WHEP answer for a stream that exists.
async fn play_stream(
    gateway: &Arc<Gateway>,
    stream: Arc<Stream>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if !is_sdp(headers) {
        return not_sdp();
    }
    let config = &gateway.config;
    let taken = stream.viewers.fetch_add(1, Ordering::AcqRel);
    let slot = ViewerSlot(stream.clone());
    if config.viewer_limit.is_some_and(|limit| taken >= limit) {
        return go_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many viewers for this stream",
        );
    }
    let offer = String::from_utf8_lossy(body);
    let (peer, answer) = match Peer::answer(config.media_ip, &offer).await {
        Ok(made) => made,
        Err(_) => return go_error(StatusCode::BAD_REQUEST, "SetRemoteDescription failed"),
    };
    tokio::time::sleep(config.answer_delay).await;
    if config.ice_never {
        drop(peer);
    } else {
        let frames = stream
            .output
            .lock()
            .expect("output lock")
            .as_ref()
            .map(|output| output.subscribe());
        let Some(frames) = frames else {
            return go_error(StatusCode::NOT_FOUND, "Stream not found");
        };
        let handle = peer.spawn(PeerOptions::default());
        tokio::spawn(play(handle, frames, slot));
    }
    sdp_created(answer, Vec::new())
}

/// One viewer: the stream's output from its next keyframe on, until either side ends.
async fn play(mut peer: PeerHandle, mut frames: broadcast::Receiver<Frame>, _slot: ViewerSlot) {
    let mut connected = false;
    let mut started = false;
    loop {
        tokio::select! {
            event = peer.events.recv() => match event {
                Some(PeerEvent::Connected(_)) => connected = true,
                Some(PeerEvent::Closed(_)) | None => return,
                Some(_) => {}
            },
            frame = frames.recv() => match frame {
                Ok(frame) => {
                    if !connected {
                        continue;
                    }
                    if !started && !frame.keyframe {
                        continue; // drop until the next keyframe, as go-livepeer does
                    }
                    started = true;
                    peer.send_video(frame.pts, frame.data);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => started = false,
                Err(broadcast::error::RecvError::Closed) => {
                    peer.close();
                    return;
                }
            }
        }
    }
}

async fn update(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
    method: Method,
    body: Bytes,
) -> Response {
    match method {
        Method::POST => {}
        Method::OPTIONS => {
            return cors(&gateway.config, &method, code(StatusCode::NO_CONTENT));
        }
        _ => return go_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    }
    let stream = gateway.stream(&name);
    let Some(stream) = stream else {
        return go_error(StatusCode::NOT_FOUND, "Stream not found");
    };
    let params: Option<Value> = serde_json::from_slice(&body).ok();
    if let Some(params) = &params {
        let _ = stream.updates.send(params.clone());
    }
    let mut status = stream.status.lock().expect("status lock");
    status.params = params;
    status.params_ms = Some(now_ms());
    cors(&gateway.config, &method, StatusCode::OK.into_response())
}

async fn status(
    State(gateway): State<Arc<Gateway>>,
    Path(stream_id): Path<String>,
    method: Method,
) -> Response {
    if method == Method::OPTIONS {
        return code(StatusCode::NO_CONTENT);
    }
    let is_it = |s: &&Arc<Stream>| !s.stream_id.is_empty() && s.stream_id == stream_id;
    let live = gateway
        .streams
        .lock()
        .expect("streams lock")
        .values()
        .find(is_it)
        .cloned();
    let stream = live.or_else(|| {
        let ended = gateway.ended.lock().expect("ended lock");
        ended.iter().rev().find(is_it).cloned()
    });
    let Some(stream) = stream else {
        return go_error(StatusCode::NOT_FOUND, "Stream not found");
    };
    let status = stream.status.lock().expect("status lock");
    let snapshot = StatusSnapshot {
        pipeline: stream.pipeline.clone(),
        start_time_ms: stream.started_ms,
        state: status.state,
        last_state_update_time_ms: status.state_ms,
        last_input_time_ms: status.last_input_ms,
        last_output_time_ms: status.last_output_ms,
        last_params_update_time_ms: status.params_ms,
        last_params: status.params.clone(),
        ..Default::default()
    };
    // The runner's last status event: its own when it gives one (an orchestrator's events
    // channel, as go-livepeer's status store keeps it), else one stamped when its state last
    // changed, not per request.
    let mut doc = match &status.runner_event {
        Some(event) => event.clone(),
        None => {
            let stamp = status.state_ms.unwrap_or(stream.started_ms);
            status_event(&snapshot, stamp, 0.0).event
        }
    };
    let error = status
        .error
        .as_ref()
        .map(|(message, at_ms)| json!({ "error_message": message, "error_time": at_ms }));
    doc["gateway_status"] = json!({
        "error": error,
        "whep_url": stream.whep_url,
        "ingest_metrics": status.ingest.clone(),
        "frames_received": stream.frames_in.load(Ordering::Relaxed),
    });
    let mut body = serde_json::to_vec(&doc).unwrap_or_default();
    body.push(b'\n'); // go's json.Encoder ends each value with a newline
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_paths_split_like_go_livepeer() {
        assert_eq!(parse_playback("abc-1234-out"), Some(("abc", "1234")));
        assert_eq!(parse_playback("abc-out"), Some(("abc", "")));
        assert_eq!(parse_playback("abc"), None);
        assert_eq!(parse_playback("a-b-c-out"), None);
        assert_eq!(parse_playback("abc-1234-in"), None);
    }
}
