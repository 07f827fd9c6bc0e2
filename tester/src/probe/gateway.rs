//! Gateway mode: one session through a gateway as users stream into it (docs/gateway-mode.md).
//!
//! The clip goes out over WHIP (its pre-encoded H.264 access units, packetized to RTP by
//! str0m, and an Opus track of silence), the output comes back over WHEP, the status route is
//! polled and params updates go to the update route; both peer connections are closed at the
//! end. The session is the same [`SessionCore`] the other modes run, in [`Mode::Gateway`]:
//! it decides when each frame is due, the timeouts, the drain, the updates, the loading overlay
//! watch and the record, measured on the tester's clock from the WHIP `POST` by the same
//! recorder, configured with `timestamps_rewritten`: a gateway rewrites RTP timestamps, so e2e
//! latency comes from the pictures alone (each decoded output frame's number, matched to the
//! send time of the input frame that carried it). This driver moves the bytes and keeps the
//! gateway-mode figures (WHIP, ICE, DTLS and WHEP times, RTP legs, runner states).
//!
//! The loading overlay is told apart as in the other modes: from the first output frame to the
//! first processed one, after a params update and when output comes back after a stall, every
//! frame is decoded by a decoder of the session's own and held until its picture says which it
//! is. With `decode_keyframes_only` that decoder lives only while a watch is open (the keyframes
//! between watches go to decoders all sessions share).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use lvt_gateway::gateway::select::Candidate;
use lvt_gateway::session::{
    ChannelEnd, Finished, Input, Mode, Output, PictureLook, SessionCore, ShareId, StartFailure,
    StartInfo,
};
use lvt_schema::{
    Failure, FailureClass, GatewayFigures, GatewayTrackStats, Outcome, RtpLeg, SessionReport,
    StateSeen, TargetMode,
};
use lvt_webrtc::codecs::{OPUS_FRAME_SAMPLES, OPUS_SILENCE};
use lvt_webrtc::{
    CloseReason, ExchangeError, Peer, PeerEvent, PeerHandle, PeerOptions, Role, exchange,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ProbeOptions, ProbeRun, fail, report_template, session_plan, unix_ms};
use crate::encode::{Clip, PictureReader};

/// go-livepeer's ICE failed timeout: a connection not up by then is not coming.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// WHEP is retried this often while it answers 404 (the output not ready yet).
const PLAYBACK_RETRY: Duration = Duration::from_millis(500);
/// The status route is polled this often.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Where and how to reach the gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The gateway's base URL, for example `http://127.0.0.1:8937`.
    pub url: reqwest::Url,
    /// The stream name in the WHIP path (go-livepeer splits playback paths on `-`, so it has
    /// none).
    pub stream: String,
    /// The `streamId` query parameter: the key of the status route.
    pub stream_id: String,
    /// Pins the orchestrator by a substring of its URL (`orchestrator` query parameter).
    pub orchestrator: Option<String>,
    /// Sent with the WHIP, WHEP, status and update requests (a stream key, an API key).
    pub headers: HeaderMap,
    /// Outside the loading overlay watch, decode only the output keyframes (one content sample
    /// per segment) instead of every frame: for load, where decoding every frame of every
    /// stream would cost more than the rest of the session (`lvt bench --gateway`).
    pub decode_keyframes_only: bool,
}

impl GatewayOptions {
    /// A fresh stream on the gateway at `url`.
    pub fn new(url: reqwest::Url) -> Self {
        let name = uuid::Uuid::new_v4().simple().to_string();
        GatewayOptions {
            url,
            stream: format!("lvt{}", &name[..12]),
            stream_id: format!("lvt{}", &name[12..24]),
            orchestrator: None,
            headers: HeaderMap::new(),
            decode_keyframes_only: false,
        }
    }

    fn route(&self, path: &str) -> reqwest::Url {
        let mut url = self.url.clone();
        url.set_path(&format!(
            "{}/live/video-to-video/{path}",
            self.url.path().trim_end_matches('/')
        ));
        url
    }

    /// The WHIP URL with its query: pipeline, params, stream id, the orchestrator pin.
    pub fn whip_url(&self, opts: &ProbeOptions) -> reqwest::Url {
        let mut url = self.route(&format!("{}/whip", self.stream));
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("pipeline", &opts.model_id);
            query.append_pair("params", &opts.params.to_string());
            query.append_pair("streamId", &self.stream_id);
            if let Some(pin) = &self.orchestrator {
                query.append_pair("orchestrator", pin);
            }
        }
        url
    }
}

/// Parses a gateway's base URL: `http://host:port` or `https://host:port`.
///
/// # Errors
/// What is wrong with it.
pub fn parse_gateway_url(raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| e.to_string())?;
    if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() {
        Ok(url)
    } else {
        Err("expected http://host:port or https://host:port".to_owned())
    }
}

/// Checks a stream name for the WHIP path: letters, digits and `_` only, since go-livepeer
/// splits playback paths on `-`.
///
/// # Errors
/// What is wrong with the name.
pub fn check_stream_name(name: &str) -> Result<(), &'static str> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("letters, digits and _ only (go-livepeer splits playback paths on '-')")
    }
}

/// What a decoder says of one output frame: its timestamp and its picture (`None`:
/// undecodable).
struct Look {
    pts: u64,
    look: Option<PictureLook>,
}

/// A session's own decoder, kept by one of the [`stream_decoders`] threads; it goes when this
/// is dropped.
struct OwnDecoder {
    stream: u64,
    jobs: &'static std::sync::mpsc::Sender<StreamJob>,
}

impl Drop for OwnDecoder {
    fn drop(&mut self) {
        let _ = self.jobs.send(StreamJob::End {
            stream: self.stream,
        });
    }
}

/// Where the core's questions about output pictures are answered: frames handed over in
/// stream order ([`Output::ClassifyFrame`]) by a decoder of the session's own, which goes when
/// the core says no answer is awaited ([`Output::ClassifyEnd`]); keyframes asked about alone
/// ([`Output::LookAlone`]) by the decoders all sessions of the process share. The answers come
/// back on one channel; a frame no decoder can read (FFmpeg without H.264, a decoding thread
/// gone) is answered at once, undecodable.
struct Decoders {
    own: Option<OwnDecoder>,
    looks: mpsc::UnboundedSender<Look>,
}

impl Decoders {
    /// Decoders answering on the receiver returned.
    fn new() -> (Self, mpsc::UnboundedReceiver<Look>) {
        let (looks, rx) = mpsc::unbounded_channel();
        (Decoders { own: None, looks }, rx)
    }

    /// The next frame of the session's output, decoded after the ones before it (the session's
    /// decoder is made at the first); answered when `answer`.
    fn frame(&mut self, pts: u64, unit: Bytes, answer: bool) {
        if self.own.is_none() {
            static STREAMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let stream = STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.own = stream_decoders()
                .and_then(|threads| threads.get(stream as usize % threads.len()))
                .map(|jobs| OwnDecoder { stream, jobs });
        }
        let sent = self.own.as_ref().is_some_and(|own| {
            own.jobs
                .send(StreamJob::Frame {
                    stream: own.stream,
                    pts,
                    unit,
                    answer,
                    done: self.looks.clone(),
                })
                .is_ok()
        });
        if !sent && answer {
            let _ = self.looks.send(Look { pts, look: None });
        }
    }

    /// A keyframe decoded by itself, on the shared decoders.
    fn alone(&self, pts: u64, unit: Bytes) {
        let sent = shared_keyframe_decoders()
            .is_some_and(|jobs| jobs.send((pts, unit, self.looks.clone())).is_ok());
        if !sent {
            let _ = self.looks.send(Look { pts, look: None });
        }
    }

    /// No answer is awaited from the session's own decoder: it goes.
    fn end(&mut self) {
        self.own = None;
    }
}

/// A keyframe to decode and where its look goes.
type KeyframeJob = (u64, Bytes, mpsc::UnboundedSender<Look>);

/// The keyframe decoders shared by every gateway session of the process, one per core: an IDR
/// access unit needs no earlier frame (and carries its parameter sets), so any decoder reads any
/// session's keyframe, and a load of sessions costs a few decoders (their picture buffers and
/// threads) instead of one each. `None` when FFmpeg has no H.264 decoder.
fn shared_keyframe_decoders() -> Option<&'static std::sync::mpsc::Sender<KeyframeJob>> {
    static JOBS: std::sync::OnceLock<Option<std::sync::mpsc::Sender<KeyframeJob>>> =
        std::sync::OnceLock::new();
    JOBS.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let (jobs, inbox) = std::sync::mpsc::channel::<KeyframeJob>();
        let inbox = Arc::new(std::sync::Mutex::new(inbox));
        let mut started = 0;
        for index in 0..threads {
            let Some(mut reader) = PictureReader::new() else {
                break;
            };
            let inbox = Arc::clone(&inbox);
            let spawned = std::thread::Builder::new()
                .name(format!("lvt-keyframe-decode-{index}"))
                .spawn(move || {
                    loop {
                        // The lock is held while waiting for the next job, never while
                        // decoding: one thread waits, the others decode.
                        let job = inbox.lock().map(|inbox| inbox.recv());
                        let Ok(Ok((pts, unit, done))) = job else {
                            return;
                        };
                        let look = reader.look(&unit);
                        let _ = done.send(Look { pts, look });
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then_some(jobs)
    })
    .as_ref()
}

/// Work for a thread of [`stream_decoders`].
enum StreamJob {
    /// One access unit of `stream`, decoded by that stream's decoder (made at its first unit);
    /// its look goes to `done` when `answer`.
    Frame {
        stream: u64,
        pts: u64,
        unit: Bytes,
        answer: bool,
        done: mpsc::UnboundedSender<Look>,
    },
    /// `stream`'s decoder goes.
    End { stream: u64 },
}

/// The threads that keep the sessions' own decoders, one per core; a session's decoder stays on
/// one thread (its frames are decoded in order). A thread of each session's own, for a watch of
/// its first frames, left its pictures' memory in that thread's malloc arena when it ended:
/// about 135 KB per stream under `lvt bench --gateway` (docs/benchmarks.md). Here the same few
/// arenas serve every session in turn. `None` when FFmpeg has no H.264 decoder.
fn stream_decoders() -> Option<&'static [std::sync::mpsc::Sender<StreamJob>]> {
    static THREADS: std::sync::OnceLock<Vec<std::sync::mpsc::Sender<StreamJob>>> =
        std::sync::OnceLock::new();
    let threads = THREADS.get_or_init(|| {
        if PictureReader::new().is_none() {
            return Vec::new();
        }
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        (0..count)
            .filter_map(|index| {
                let (jobs, inbox) = std::sync::mpsc::channel::<StreamJob>();
                std::thread::Builder::new()
                    .name(format!("lvt-stream-decode-{index}"))
                    .spawn(move || decode_streams(&inbox))
                    .ok()
                    .map(|_| jobs)
            })
            .collect()
    });
    (!threads.is_empty()).then_some(threads.as_slice())
}

/// One thread of [`stream_decoders`]: the decoders of the streams it was given, by stream.
fn decode_streams(inbox: &std::sync::mpsc::Receiver<StreamJob>) {
    let mut readers: std::collections::HashMap<u64, Option<PictureReader>> = Default::default();
    while let Ok(job) = inbox.recv() {
        match job {
            StreamJob::Frame {
                stream,
                pts,
                unit,
                answer,
                done,
            } => {
                // Made at the stream's first unit; `None` (no decoder) answers every unit
                // with no picture.
                let reader = match readers.entry(stream) {
                    std::collections::hash_map::Entry::Occupied(kept) => kept.into_mut(),
                    std::collections::hash_map::Entry::Vacant(new) => {
                        new.insert(PictureReader::new())
                    }
                };
                let look = reader.as_mut().and_then(|r| r.look(&unit));
                if answer {
                    let _ = done.send(Look { pts, look });
                }
            }
            StreamJob::End { stream } => {
                readers.remove(&stream);
            }
        }
    }
}

/// The session's state the driver keeps beside the core: how to reach the gateway, its clock
/// and the gateway-mode figures.
struct Session<'a> {
    opts: &'a ProbeOptions,
    gateway: &'a GatewayOptions,
    http: &'a reqwest::Client,
    /// The session's clock: the core's times are microseconds since.
    t0: Instant,
    figures: GatewayFigures,
}

impl Session<'_> {
    fn us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.t0).as_micros()).unwrap_or(u64::MAX)
    }

    fn ms(&self, at: Instant) -> f64 {
        self.us(at) as f64 / 1000.0
    }

    fn now_us(&self) -> u64 {
        self.us(Instant::now())
    }

    /// A request to the gateway's live route `path`, with the session's headers.
    fn call(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.gateway.route(path))
            .headers(self.gateway.headers.clone())
    }
}

/// Runs one gateway-mode session and returns its record.
pub async fn probe_gateway(
    opts: &ProbeOptions,
    gateway: &GatewayOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
) -> SessionReport {
    gateway_run(opts, gateway, clip, http, cancel).await.report
}

/// [`probe_gateway`], also telling whether `cancel` cut the session short (as
/// [`super::probe_run`] does for the other modes).
pub async fn gateway_run(
    opts: &ProbeOptions,
    gateway: &GatewayOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
) -> ProbeRun {
    let mut session = Session {
        opts,
        gateway,
        http,
        t0: Instant::now(),
        figures: GatewayFigures {
            url: Some(redacted(&gateway.url)),
            orchestrator_pin: gateway.orchestrator.clone(),
            ..GatewayFigures::default()
        },
    };
    let mut plan = session_plan(opts, &clip);
    // Every decoded output picture is a content sample here (the timestamps name no input
    // frame, so the steps of the marker cannot be found by them).
    plan.content_check_every = 0;
    let mode = Mode::Gateway {
        every_frame: !gateway.decode_keyframes_only,
    };
    let candidates = vec![Candidate::new(redacted(&gateway.url), 0)];
    let template = report_template(opts, TargetMode::Gateway);
    let core = SessionCore::new(mode, plan, candidates, template, 0, unix_ms());
    let finished = drive(&mut session, core, &clip, cancel).await;
    let mut report = finished.report;
    report.metrics.gateway = Some(session.figures);
    if finished.interrupted {
        report.outcome = Outcome::UnscoredIndeterminate;
        report.failure = Some(fail(
            FailureClass::Internal,
            "interrupted: the tester stopped".into(),
        ));
    }
    ProbeRun {
        report,
        interrupted: finished.interrupted,
    }
}

/// `url` as a record may show it: scheme, host, port and path, without credentials or query.
fn redacted(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.as_str().trim_end_matches('/').to_owned()
}

/// Resolves the gateway's address, to offer a host candidate on the interface that reaches it.
async fn gateway_addr(url: &reqwest::Url) -> Option<SocketAddr> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .ok()?
        .next()
}

/// When a leg came up: ICE connected (if seen), DTLS connected.
struct Up {
    ice: Option<Instant>,
    dtls: Instant,
}

/// Waits until `peer` is connected (DTLS up), or the failure if it does not come up within
/// [`CONNECT_TIMEOUT`]. No session state: the playback leg waits in its own task, so that
/// publishing goes on meanwhile.
async fn connect(peer: &mut PeerHandle, ingest: bool) -> Result<Up, (FailureClass, String)> {
    let deadline = tokio::time::sleep(CONNECT_TIMEOUT);
    tokio::pin!(deadline);
    let leg = if ingest { "ingest" } else { "playback" };
    let mut ice = None;
    loop {
        tokio::select! {
            event = peer.events.recv() => match event {
                Some(PeerEvent::IceConnected(at)) => ice = Some(at),
                Some(PeerEvent::Connected(at)) => return Ok(Up { ice, dtls: at }),
                Some(PeerEvent::Closed(CloseReason::Remote)) if ingest => {
                    return Err((FailureClass::AuthClosed, "the gateway closed the ingest connection after its 201".into()));
                }
                Some(PeerEvent::Closed(reason)) => {
                    let class = if ice.is_some() { FailureClass::DtlsFailed } else { FailureClass::IceFailed };
                    return Err((class, format!("the {leg} connection closed before it was up: {reason:?}")));
                }
                None => return Err((FailureClass::Internal, format!("the {leg} peer task ended"))),
                Some(_) => {}
            },
            _ = &mut deadline => {
                let (class, what) = if ice.is_some() {
                    (FailureClass::DtlsFailed, "DTLS did not complete")
                } else {
                    (FailureClass::IceFailed, "ICE did not connect")
                };
                return Err((class, format!("{leg}: {what} within {} s", CONNECT_TIMEOUT.as_secs())));
            }
        }
    }
}

/// The WHIP leg up to connected; the publisher and the playback URL.
async fn publish(
    session: &mut Session<'_>,
    ip: std::net::IpAddr,
) -> Result<(PeerHandle, reqwest::Url), (FailureClass, String)> {
    let (pending, offer) = Peer::offer(ip, Role::Publish)
        .await
        .map_err(|e| (FailureClass::Internal, format!("WHIP offer: {e}")))?;
    let url = session.gateway.whip_url(session.opts);
    let answer = exchange(session.http, url.as_str(), &offer, &session.gateway.headers)
        .await
        .map_err(|e| (FailureClass::WhipRefused, e.to_string()))?;
    session.figures.whip_answer_ms = Some(session.ms(Instant::now()));
    let playback = answer
        .playback_url
        .as_deref()
        .ok_or_else(|| {
            (
                FailureClass::ProtocolError,
                "the WHIP answer has no Livepeer-Playback-URL".to_owned(),
            )
        })
        .and_then(|raw| {
            session.gateway.url.join(raw).map_err(|e| {
                (
                    FailureClass::ProtocolError,
                    format!("Livepeer-Playback-URL {raw:?}: {e}"),
                )
            })
        })?;
    let peer = pending
        .accept(&answer.sdp)
        .map_err(|e| (FailureClass::ProtocolError, format!("WHIP answer: {e}")))?;
    let mut publisher = peer.spawn(PeerOptions {
        pli_every: None,
        stats_every: Some(Duration::from_secs(1)),
    });
    let up = match connect(&mut publisher, true).await {
        // go-livepeer may close an ingest whose pipeline failed before ICE is up, which the
        // publisher sees as an ICE or DTLS failure: the status route says which it was.
        Err((class, detail)) => Err(closed_ingest(session, false, class, detail).await),
        up => up,
    };
    if let Ok(up) = &up {
        session.figures.ice_connected_ms = up.ice.map(|at| session.ms(at));
        session.figures.dtls_connected_ms = Some(session.ms(up.dtls));
    }
    up?;
    Ok((publisher, playback))
}

/// How long the status route gets to say why the gateway closed an ingest connection.
const CLOSE_REASON_TIMEOUT: Duration = Duration::from_secs(2);

/// The class of a session whose ingest connection the gateway closed or never let up (`class`
/// and `detail` say what was seen), from the status route: go-livepeer stores the error that
/// ended a stream's pipeline there (`gateway_status.error`, `LiveErrorEventSender`) before it
/// closes the connection, and stores nothing for a stream its auth webhook refused. No error:
/// `class` as seen; `no orchestrators available` before any output: `capacity` (busy,
/// unscored, as in network mode); another error before any output: `start_error`; after
/// output started: `class` with the error in the detail.
async fn closed_ingest(
    session: &Session<'_>,
    output_started: bool,
    class: FailureClass,
    detail: String,
) -> (FailureClass, String) {
    let path = format!("{}/status", session.gateway.stream_id);
    let request = session
        .call(reqwest::Method::GET, &path)
        .timeout(CLOSE_REASON_TIMEOUT)
        .send();
    let error = match request.await {
        Ok(response) if response.status().is_success() => {
            response.json::<Value>().await.ok().and_then(|doc| {
                let status = &doc["gateway_status"];
                status["error"]["error_message"]
                    .as_str()
                    .or_else(|| status["last_error"].as_str())
                    .map(str::to_owned)
            })
        }
        _ => None,
    };
    classify_close(error, output_started, class, detail)
}

/// [`closed_ingest`]'s decision, from the error the status route gave.
fn classify_close(
    error: Option<String>,
    output_started: bool,
    class: FailureClass,
    detail: String,
) -> (FailureClass, String) {
    match error {
        None => (class, detail),
        Some(error) if output_started => (class, format!("{detail}: {error}")),
        Some(error) if error.contains(lvt_gateway::session::NO_ORCHESTRATORS_AVAILABLE) => (
            FailureClass::Capacity,
            format!("the gateway found no orchestrator: {error}"),
        ),
        Some(error) => (
            FailureClass::StartError,
            format!("the gateway's pipeline ended before any output: {error}"),
        ),
    }
}

/// One WHEP attempt: the player not yet connected, or the refusal.
async fn play_once(
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    ip: std::net::IpAddr,
) -> Result<PeerHandle, ExchangeError> {
    let (pending, offer) =
        Peer::offer(ip, Role::Play)
            .await
            .map_err(|e| ExchangeError::Unreachable {
                url: url.to_string(),
                message: e.to_string(),
            })?;
    let answer = exchange(&http, url.as_str(), &offer, &headers).await?;
    let peer = pending
        .accept(&answer.sdp)
        .map_err(|e| ExchangeError::NotSdp {
            url: url.to_string(),
            content_type: e.to_string(),
        })?;
    Ok(peer.spawn(PeerOptions {
        pli_every: None,
        stats_every: Some(Duration::from_secs(1)),
    }))
}

fn leg_of(packets: u64, bytes: u64, loss: Option<f32>, nacks: u64, span: Duration) -> RtpLeg {
    let secs = span.as_secs_f64();
    RtpLeg {
        packets,
        bytes,
        loss: loss.map(f64::from),
        nacks,
        jitter_ms: None,
        bitrate_kbps: (secs > 0.0).then(|| bytes as f64 * 8.0 / secs / 1000.0),
    }
}

/// Reads go-livepeer's `gateway_status.ingest_metrics.stats.track_stats` (an array, or an
/// object by kind), field names as Go writes them or in snake case.
fn track_stats(status: &Value) -> Vec<GatewayTrackStats> {
    let tracks = &status["gateway_status"]["ingest_metrics"]["stats"]["track_stats"];
    let list: Vec<&Value> = match tracks {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => Vec::new(),
    };
    let field = |track: &Value, names: &[&str]| -> Option<Value> {
        names.iter().find_map(|n| track.get(*n).cloned())
    };
    list.into_iter()
        .map(|track| GatewayTrackStats {
            kind: field(track, &["type", "Type", "kind"])
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            packets_received: field(track, &["packets_received", "PacketsReceived"])
                .and_then(|v| v.as_u64()),
            packets_lost: field(track, &["packets_lost", "PacketsLost"]).and_then(|v| v.as_i64()),
            jitter: field(track, &["jitter", "Jitter"]).and_then(|v| v.as_f64()),
            rtt: field(track, &["rtt", "RTT"]).and_then(|v| v.as_f64()),
            latency_s: field(track, &["latency", "Latency"]).and_then(|v| v.as_f64()),
        })
        .collect()
}

/// A WHEP attempt's end: when it was asked and answered, and the player connected, the
/// failure to connect it, or the refusal.
type PlayAttempt = (
    Instant,
    Result<Result<(PeerHandle, Up), (FailureClass, String)>, ExchangeError>,
    Instant,
);

/// Runs `core` to its end over WebRTC and the gateway's HTTP routes: the start is the WHIP
/// exchange up to a connected ingest; the share, the playback (WHEP, retried while it answers
/// 404) and the status polling; each frame the core says is due goes out over RTP with the
/// Opus silence up to the next; params updates go to the update route; output access units,
/// decoded pictures, status documents and closed connections come back as the core's inputs.
async fn drive(
    session: &mut Session<'_>,
    mut core: SessionCore,
    clip: &Arc<Clip>,
    cancel: CancellationToken,
) -> Finished {
    let fps = u64::from(clip.config.fps.max(1));
    let frames_per_segment = u64::from(clip.frames_per_segment());
    let clip_frames = (clip.frames.len() as u64).max(1);
    let mut publisher: Option<PeerHandle> = None;
    let mut player: Option<PeerHandle> = None;
    let mut playback: Option<reqwest::Url> = None;
    let mut ip = None;
    let mut share: ShareId = 0;
    let mut segment: u64 = 0;
    let mut audio_samples: u64 = 0;
    // When publishing began and ends: a playback closed before then ended the stream.
    let mut publish_started: Option<Instant> = None;
    let mut output_seen = false;
    let mut playing_since: Option<Instant> = None;
    let mut last_status_stamp: Option<Value> = None;
    let (mut decoders, mut looks) = Decoders::new();
    let (player_tx, mut player_rx) = mpsc::unbounded_channel::<PlayAttempt>();
    let (status_tx, mut statuses) = mpsc::unbounded_channel::<(Instant, Value)>();
    let mut status_task: Option<tokio::task::JoinHandle<()>> = None;
    let mut cancelled = false;
    let sleep = tokio::time::sleep_until(session.t0.into());
    tokio::pin!(sleep);
    let mut armed_us = None;
    loop {
        let deadline_us = loop {
            match core.poll_output() {
                Output::Timeout(t) => break t,
                Output::Start { candidate, .. } => {
                    let result = tokio::select! {
                        up = start(session, &mut ip) => Some(up),
                        () = cancel.cancelled(), if !cancelled => None,
                    };
                    let Some(result) = result else {
                        cancelled = true;
                        core.handle_input(Input::Cancel, session.now_us());
                        continue;
                    };
                    let result = result
                        .map(|(peer, url)| {
                            publisher = Some(peer);
                            playback = Some(url);
                        })
                        .map_err(|(class, detail)| {
                            StartFailure::Gateway(Failure { class, detail })
                        });
                    let input = Input::StartResult {
                        candidate,
                        info: StartInfo::default(),
                        result,
                    };
                    core.handle_input(input, session.now_us());
                }
                Output::OpenShare { share: opened, .. } => {
                    share = opened;
                    if let (Some(url), Some(ip)) = (&playback, ip) {
                        spawn_play(session, url.clone(), ip, Duration::ZERO, &player_tx);
                    }
                    status_task = Some(poll_status(session, status_tx.clone()));
                }
                Output::BeginSegment { seq, .. } => segment = seq,
                Output::WriteFrame { share, index } => {
                    let Some(publisher) = &publisher else {
                        continue;
                    };
                    // One video frame (the clip loops) and the audio up to the next.
                    let n = segment * frames_per_segment + u64::from(index);
                    let frame = &clip.frames[(n % clip_frames) as usize];
                    let pts = n * 90_000 / fps;
                    let at = Instant::now();
                    publish_started.get_or_insert(at);
                    publisher.send_video(pts, frame.data.clone());
                    let due_samples = ((n + 1) * 48_000) / fps;
                    while audio_samples < due_samples {
                        publisher.send_audio(audio_samples, Bytes::from_static(&OPUS_SILENCE));
                        audio_samples += OPUS_FRAME_SAMPLES;
                    }
                    let at_us = session.us(at);
                    core.handle_input(Input::FrameSent { share, pts, at_us }, at_us);
                }
                Output::EndSegment { share } => {
                    // Frames go out one by one: a segment is only the clip's GOP.
                    let done = Input::SegmentDone {
                        share,
                        result: Ok(()),
                    };
                    core.handle_input(done, session.now_us());
                }
                Output::Control { message, .. } => {
                    let path = format!("{}/update", session.gateway.stream);
                    let request = session.call(reqwest::Method::POST, &path).body(message);
                    tokio::spawn(async move {
                        let _ = request.send().await;
                    });
                }
                // Teardown is closing the peer connections (go-livepeer has no DELETE).
                Output::LeaveShare { .. } => {
                    if let Some(publisher) = publisher.take() {
                        publisher.close();
                    }
                }
                Output::StopShare { .. } => {
                    if let Some(player) = player.take() {
                        player.close();
                    }
                    if let Some(task) = status_task.take() {
                        task.abort();
                    }
                }
                Output::ClassifyFrame {
                    pts, picture, look, ..
                } => decoders.frame(pts, picture, look),
                Output::LookAlone { pts, picture, .. } => decoders.alone(pts, picture),
                Output::ClassifyEnd { .. } => decoders.end(),
                Output::Observe(_) => {}
                Output::Finished(finished) => {
                    for peer in [publisher.take(), player.take()].into_iter().flatten() {
                        peer.close();
                    }
                    if let Some(task) = status_task.take() {
                        task.abort();
                    }
                    return *finished;
                }
            }
        };
        let waiting = deadline_us != u64::MAX;
        if waiting && armed_us != Some(deadline_us) {
            let at = session.t0 + Duration::from_micros(deadline_us);
            sleep.as_mut().reset(at.into());
            armed_us = Some(deadline_us);
        }
        tokio::select! {
            biased;
            () = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                core.handle_input(Input::Cancel, session.now_us());
            }
            () = &mut sleep, if waiting => {
                armed_us = None;
                core.handle_input(Input::Timeout, session.now_us());
            }
            event = async { publisher.as_mut()?.events.recv().await }, if publisher.is_some() => match event {
                Some(PeerEvent::KeyframeRequest(_)) => session.figures.plis_received += 1,
                Some(PeerEvent::Egress(stats)) if stats.video => {
                    let span = publish_started.map(|at| at.elapsed()).unwrap_or_default();
                    let mut leg = leg_of(stats.packets, stats.bytes, stats.loss, stats.nacks_received, span);
                    leg.jitter_ms = session.figures.ingest.jitter_ms;
                    session.figures.ingest = leg;
                }
                Some(PeerEvent::Closed(reason)) => {
                    publisher = None;
                    let at_us = session.now_us();
                    let detail = format!("the gateway ended the ingest connection ({reason:?})");
                    let seen = if output_seen { FailureClass::PublishLost } else { FailureClass::AuthClosed };
                    let (class, detail) = closed_ingest(session, output_seen, seen, detail).await;
                    core.handle_input(Input::Failed { share, failure: Failure { class, detail } }, at_us);
                }
                None => {
                    publisher = None;
                    let failure = Failure { class: FailureClass::Internal, detail: "the ingest peer task ended".into() };
                    core.handle_input(Input::Failed { share, failure }, session.now_us());
                }
                Some(_) => {}
            },
            Some((asked, result, answered)) = player_rx.recv() => {
                match result {
                    Ok(up) => {
                        if session.figures.whep_answer_ms.is_none() {
                            session.figures.whep_answer_ms = Some(answered.saturating_duration_since(asked).as_secs_f64() * 1000.0);
                        }
                        match up {
                            Ok((peer, up)) => {
                                session.figures.whep_connected_ms = Some(session.ms(up.dtls));
                                playing_since = Some(up.dtls);
                                player = Some(peer);
                                core.handle_input(Input::PlaybackUp { share }, session.now_us());
                            }
                            Err((class, detail)) => {
                                let failure = Failure { class, detail };
                                core.handle_input(Input::Failed { share, failure }, session.now_us());
                            }
                        }
                    }
                    Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => {
                        session.figures.whep_not_found += 1;
                        core.handle_input(Input::PlaybackNotFound { share }, session.now_us());
                        if let (Some(url), Some(ip)) = (&playback, ip) {
                            spawn_play(session, url.clone(), ip, PLAYBACK_RETRY, &player_tx);
                        }
                    }
                    Err(e) => {
                        let failure = Failure { class: FailureClass::WhepRefused, detail: e.to_string() };
                        core.handle_input(Input::Failed { share, failure }, session.now_us());
                    }
                }
            }
            event = async { player.as_mut()?.events.recv().await }, if player.is_some() => match event {
                Some(PeerEvent::Video { rtp_time, at, data, .. }) => {
                    output_seen = true;
                    let at_us = session.us(at);
                    core.handle_input(Input::OutputFrame { share, pts: rtp_time, at_us, data }, session.now_us());
                }
                Some(PeerEvent::Ingress(stats)) if stats.video => {
                    let span = playing_since.map(|at| at.elapsed()).unwrap_or_default();
                    let mut leg = leg_of(stats.packets, stats.bytes, stats.loss, stats.nacks_sent, span);
                    leg.jitter_ms = Some(f64::from(stats.jitter) / 90.0);
                    session.figures.playback = leg;
                }
                Some(PeerEvent::Closed(reason)) => {
                    player = None;
                    let at_us = session.now_us();
                    let publishing = publish_started.is_none_or(|at| at.elapsed() < session.opts.duration);
                    if publishing {
                        // A gateway ending the stream closes both legs, in either order: the
                        // status route says why, as for a closed ingest.
                        let detail = format!("the gateway ended the playback connection ({reason:?})");
                        let (class, detail) = closed_ingest(session, output_seen, FailureClass::OutputTimeout, detail).await;
                        core.handle_input(Input::Failed { share, failure: Failure { class, detail } }, at_us);
                    } else {
                        core.handle_input(Input::OutputEnd { share, end: ChannelEnd::Ended }, at_us);
                    }
                }
                None => {
                    player = None;
                    core.handle_input(Input::OutputEnd { share, end: ChannelEnd::Ended }, session.now_us());
                }
                Some(_) => {}
            },
            Some(Look { pts, look }) = looks.recv() => {
                core.handle_input(Input::FrameLook { share, pts, look }, session.now_us());
            }
            Some((at, doc)) = statuses.recv() => {
                let at_us = session.us(at);
                // The route repeats the runner's last status event until the next one: each
                // new one (by its timestamp) counts once, as it would on the events channel.
                if doc.get("type").is_some() && doc.get("timestamp") != last_status_stamp.as_ref() {
                    last_status_stamp = doc.get("timestamp").cloned();
                    let event = Bytes::from(serde_json::json!({ "event": &doc }).to_string());
                    core.handle_input(Input::Event { share, doc: event, at_us }, session.now_us());
                }
                if let Some(state) = doc["state"].as_str()
                    && session.figures.runner_states.last().is_none_or(|seen| seen.state != state)
                {
                    session.figures.runner_states.push(StateSeen { state: state.to_owned(), at_ms: at_us as f64 / 1000.0 });
                }
                let tracks = track_stats(&doc);
                if !tracks.is_empty() {
                    session.figures.gateway_ingest = tracks;
                }
            }
        }
    }
}

/// The start: the gateway's address resolved (kept in `ip`, the interface that reaches it),
/// then the WHIP leg up to connected.
async fn start(
    session: &mut Session<'_>,
    ip: &mut Option<std::net::IpAddr>,
) -> Result<(PeerHandle, reqwest::Url), (FailureClass, String)> {
    let Some(addr) = gateway_addr(&session.gateway.url).await else {
        let detail = format!("{}: the host does not resolve", session.gateway.url);
        return Err((FailureClass::WhipRefused, detail));
    };
    let local = lvt_webrtc::local_ip_towards(addr);
    *ip = Some(local);
    publish(session, local).await
}

/// A WHEP attempt after `delay`, in the background; its end goes to `done`. The playback comes
/// up there, off the session's loop, which goes on publishing.
fn spawn_play(
    session: &Session<'_>,
    url: reqwest::Url,
    ip: std::net::IpAddr,
    delay: Duration,
    done: &mpsc::UnboundedSender<PlayAttempt>,
) {
    let (http, headers, done) = (
        session.http.clone(),
        session.gateway.headers.clone(),
        done.clone(),
    );
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let asked = Instant::now();
        let played = play_once(http, url, headers, ip).await;
        let answered = Instant::now();
        let played = match played {
            Ok(mut peer) => match connect(&mut peer, false).await {
                Ok(up) => Ok(Ok((peer, up))),
                Err(failure) => Ok(Err(failure)),
            },
            Err(refused) => Err(refused),
        };
        let _ = done.send((asked, played, answered));
    });
}

/// Polls the status route every [`STATUS_EVERY`] in the background; each document goes to
/// `docs` with when it came.
fn poll_status(
    session: &Session<'_>,
    docs: mpsc::UnboundedSender<(Instant, Value)>,
) -> tokio::task::JoinHandle<()> {
    let url = session
        .gateway
        .route(&format!("{}/status", session.gateway.stream_id));
    let (http, headers) = (session.http.clone(), session.gateway.headers.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(STATUS_EVERY);
        loop {
            tick.tick().await;
            let Ok(response) = http.get(url.clone()).headers(headers.clone()).send().await else {
                continue;
            };
            if !response.status().is_success() {
                continue;
            }
            if let Ok(doc) = response.json::<Value>().await
                && docs.send((Instant::now(), doc)).is_err()
            {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_livepeer_track_stats_are_read_in_either_spelling() {
        let doc = serde_json::json!({"gateway_status": {"ingest_metrics": {"stats": {"track_stats": [
            {"Type": "video", "Jitter": 0.5, "PacketsLost": 2, "PacketsReceived": 900, "RTT": 0.01, "Latency": 1.2},
            {"type": "audio", "packets_received": 50}
        ]}}}});
        let tracks = track_stats(&doc);
        assert_eq!(tracks.len(), 2);
        assert_eq!(tracks[0].kind, "video");
        assert_eq!(tracks[0].packets_lost, Some(2));
        assert_eq!(tracks[0].latency_s, Some(1.2));
        assert_eq!(tracks[1].packets_received, Some(50));
        assert!(track_stats(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn the_record_names_the_gateway_without_its_credentials() {
        let url = "https://user:secret@gw.example:8937/base/?key=k#x"
            .parse()
            .unwrap();
        assert_eq!(redacted(&url), "https://gw.example:8937/base");
        let plain = "http://127.0.0.1:8937".parse().unwrap();
        assert_eq!(redacted(&plain), "http://127.0.0.1:8937");
    }

    #[test]
    fn whip_url_carries_the_query_go_livepeer_reads() {
        let mut opts = ProbeOptions::new("https://o.invalid:8935".parse().unwrap());
        opts.model_id = "noop".into();
        opts.params = serde_json::json!({"prompt": "a b"});
        let mut gw = GatewayOptions::new("http://gw.invalid:8937/".parse().unwrap());
        gw.stream = "abc".into();
        gw.stream_id = "id9".into();
        gw.orchestrator = Some("orch-1".into());
        let url = gw.whip_url(&opts);
        assert_eq!(url.path(), "/live/video-to-video/abc/whip");
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["pipeline"], "noop");
        assert_eq!(query["streamId"], "id9");
        assert_eq!(query["orchestrator"], "orch-1");
        assert_eq!(
            serde_json::from_str::<Value>(&query["params"]).unwrap(),
            opts.params
        );
        assert!(!gw.stream.contains('-'));
    }

    #[test]
    fn a_closed_ingest_is_classed_by_the_error_the_status_route_gives() {
        let closed = || "closed".to_owned();
        let seen = |output| {
            if output {
                FailureClass::PublishLost
            } else {
                FailureClass::AuthClosed
            }
        };
        let class = |error: Option<&str>, output| {
            classify_close(error.map(str::to_owned), output, seen(output), closed()).0
        };
        // Nothing stored: what was seen (go-livepeer's auth refusal, a lost ingest, or an ICE
        // failure that was one).
        assert_eq!(class(None, false), FailureClass::AuthClosed);
        assert_eq!(class(None, true), FailureClass::PublishLost);
        assert_eq!(
            classify_close(None, false, FailureClass::IceFailed, closed()).0,
            FailureClass::IceFailed
        );
        // A pipeline that failed before ICE was up: the status route says so.
        assert_eq!(
            classify_close(
                Some("no orchestrators available".into()),
                false,
                FailureClass::IceFailed,
                closed()
            )
            .0,
            FailureClass::Capacity
        );
        // The pipeline's error, as LiveErrorEventSender stores it.
        assert_eq!(
            class(Some("no orchestrators available"), false),
            FailureClass::Capacity
        );
        assert_eq!(
            class(Some("no orchestrators available within 2s timeout"), false),
            FailureClass::Capacity
        );
        assert_eq!(
            class(Some("invalid publish URL: x"), false),
            FailureClass::StartError
        );
        let (lost, detail) = classify_close(
            Some("Too many swaps: x".into()),
            true,
            FailureClass::PublishLost,
            closed(),
        );
        assert_eq!(lost, FailureClass::PublishLost);
        assert_eq!(detail, "closed: Too many swaps: x");
    }
}
