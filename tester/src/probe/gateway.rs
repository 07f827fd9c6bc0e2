//! Gateway mode: one session through a gateway as users stream into it (docs/gateway-mode.md).
//!
//! The clip goes out over WHIP (its pre-encoded H.264 access units, packetized to RTP by
//! str0m, and an Opus track of silence), the output comes back over WHEP, the status route is
//! polled and params updates go to the update route; both peer connections are closed at the
//! end. Everything is measured on the tester's clock from the WHIP `POST` into the same
//! [`SessionRecorder`] the other modes use, configured with `timestamps_rewritten`: a gateway
//! rewrites RTP timestamps, so e2e latency comes from the pictures alone (each decoded output
//! frame's number, matched to the send time of the input frame that carried it).
//!
//! The loading overlay is told apart as in the other modes, with the same watch
//! ([`OverlayWatch`]): from the first output frame to the first processed one, after a params
//! update and when output comes back after a stall, every frame is decoded and held until its
//! picture says which it is. With `decode_keyframes_only` the session has a decoder of its own
//! only while a watch is open (the keyframes between watches go to the shared decoders).
//!
//! Not built yet: running through `SessionCore` (this driver keeps its own small loop).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use lvt_gateway::measure::{MeasureConfig, SessionRecorder};
use lvt_gateway::session::overlay::{Expected, HeldFrame, OverlayWatch, Verdict};
use lvt_gateway::session::{
    OVERLAY_WATCH_AFTER_UPDATE_US, PictureLook, segment_marker, updated_params,
};
use lvt_schema::{
    FailureClass, GatewayFigures, GatewayTrackStats, Outcome, RtpLeg, SessionReport, StateSeen,
    TargetMode,
};
use lvt_webrtc::codecs::{OPUS_FRAME_SAMPLES, OPUS_SILENCE};
use lvt_webrtc::{
    CloseReason, ExchangeError, Peer, PeerEvent, PeerHandle, PeerOptions, Role, exchange,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ProbeOptions, ProbeRun, fail, report_template, unix_ms};
use crate::encode::{Clip, PictureReader};

/// go-livepeer's ICE failed timeout: a connection not up by then is not coming.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// WHEP is retried this often while it answers 404 (the output not ready yet).
const PLAYBACK_RETRY: Duration = Duration::from_millis(500);
/// The status route is polled this often.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// After the last input frame, output silent this long ends the drain.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

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

/// What the decoding thread says of one output frame.
struct Look {
    rtp_time: u64,
    at_us: u64,
    look: Option<PictureLook>,
}

/// Where a session's output access units are decoded.
enum Decoder {
    /// Every frame, in order, by a decoder of the session's own (P-frames need the frames
    /// before them).
    Own(OwnDecoder),
    /// Keyframes only, on the decoders all sessions of the process share.
    Shared(
        &'static std::sync::mpsc::Sender<KeyframeJob>,
        mpsc::UnboundedSender<Look>,
    ),
}

/// A session's own decoder, kept by one of the [`stream_decoders`] threads; it goes when this
/// is dropped.
struct OwnDecoder {
    stream: u64,
    jobs: &'static std::sync::mpsc::Sender<StreamJob>,
    done: mpsc::UnboundedSender<Look>,
}

impl Drop for OwnDecoder {
    fn drop(&mut self) {
        let _ = self.jobs.send(StreamJob::End {
            stream: self.stream,
        });
    }
}

impl Decoder {
    /// `keyframes_only`: the shared keyframe decoders, else a decoder of its own. Looks go to
    /// `done`; `None` when FFmpeg has no H.264 decoder.
    fn start(keyframes_only: bool, done: mpsc::UnboundedSender<Look>) -> Option<Decoder> {
        if keyframes_only {
            return shared_keyframe_decoders().map(|jobs| Decoder::Shared(jobs, done));
        }
        static STREAMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let stream = STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let threads = stream_decoders()?;
        let jobs = threads.get(stream as usize % threads.len())?;
        Some(Decoder::Own(OwnDecoder { stream, jobs, done }))
    }

    /// Queues one access unit; a decoder that has gone (its decoding thread ended) loses it,
    /// and the session counts no sample for it.
    fn send(&self, rtp_time: u64, at_us: u64, unit: Bytes) {
        match self {
            Decoder::Own(own) => {
                let _ = own.jobs.send(StreamJob::Frame {
                    stream: own.stream,
                    rtp_time,
                    at_us,
                    unit,
                    done: own.done.clone(),
                });
            }
            Decoder::Shared(jobs, done) => {
                let _ = jobs.send((rtp_time, at_us, unit, done.clone()));
            }
        }
    }
}

/// What becomes of the output frames: the loading overlay watch, the decoding and the content
/// samples (docs/metrics.md, "Loading overlay" and "Through a gateway").
struct Frames {
    watch: OverlayWatch,
    decoder: Option<Decoder>,
    /// Keeps the looks' channel open while the session runs (without a decoder it would be
    /// closed at once, and the session's loop would wake on it without end); dropped with the
    /// decoder at the end, so that the looks run out.
    looks: Option<mpsc::UnboundedSender<Look>>,
    keyframes_only: bool,
    watch_overlay: bool,
    read_numbers: bool,
    tolerance_us: u64,
    /// The frame number the latest processed picture showed: an overlay after a reload repeats
    /// it.
    last_code: Option<u32>,
    /// When the latest output frame arrived, overlay or not.
    last_at_us: Option<u64>,
}

impl Frames {
    /// Opens the start watch when `watch_overlay` and a decoder of the session's own can be had
    /// (the watch decodes every frame up to the first processed one, P-frames too); otherwise
    /// frames count as output as they come. With `keyframes_only`, that decoder goes when the
    /// watch closes and the shared keyframe decoders take over. Looks arrive on the receiver
    /// returned.
    fn new(
        keyframes_only: bool,
        watch_overlay: bool,
        read_numbers: bool,
        tolerance_us: u64,
    ) -> (Self, mpsc::UnboundedReceiver<Look>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watch = OverlayWatch::default();
        let decoder = match watch_overlay.then(|| Decoder::start(false, tx.clone())) {
            Some(Some(own)) => {
                watch.open_start();
                Some(own)
            }
            _ => Decoder::start(keyframes_only, tx.clone()),
        };
        let frames = Frames {
            watch,
            decoder,
            looks: Some(tx),
            keyframes_only,
            watch_overlay,
            read_numbers,
            tolerance_us,
            last_code: None,
            last_at_us: None,
        };
        (frames, rx)
    }

    /// A params update went out at `at_us`, or output came back after a stall (a swap): a
    /// runner that reloads, or a new one that loads, shows its overlay, so every frame is held
    /// until read from now until [`OVERLAY_WATCH_AFTER_UPDATE_US`] later if no overlay shows,
    /// or until the first processed frame after one. With `keyframes_only`, a fresh decoder
    /// of the session's own reads the frames while the watch is open: it sees pictures from the
    /// next keyframe on, so frames before that one give no picture and count as output (an
    /// overlay is seen up to one GOP late, docs/gateway-mode.md).
    fn open_update(&mut self, at_us: u64) {
        if !self.watch_overlay || self.decoder.is_none() {
            return;
        }
        if self.keyframes_only && !self.watch.is_open() {
            let own = self
                .looks
                .as_ref()
                .and_then(|looks| Decoder::start(false, looks.clone()));
            match own {
                Some(own) => self.decoder = Some(own),
                None => return,
            }
        }
        self.watch
            .open_update(at_us.saturating_add(OVERLAY_WATCH_AFTER_UPDATE_US), None);
    }

    /// One output access unit that arrived at `at_us`.
    fn frame(&mut self, recorder: &mut SessionRecorder, rtp_time: u64, at_us: u64, data: Bytes) {
        let keyframe = lvt_media::h264::contains_idr(&data);
        // Output that comes back after a stall may be a new runner loading: the gateway swapped
        // orchestrators, which a viewer sees only as a freeze. It is watched like an update.
        let resumed = self
            .last_at_us
            .replace(at_us)
            .is_some_and(|last| at_us.saturating_sub(last) > recorder.stall_threshold_us());
        if self.watch.is_open() && self.watch.expired(at_us) {
            self.close_watch(recorder);
        }
        if resumed {
            self.open_update(at_us);
        }
        if self.watch.is_open() {
            if let Some(decoder) = &self.decoder {
                decoder.send(rtp_time, at_us, data.clone());
            }
            self.watch.hold(HeldFrame {
                pts: rtp_time,
                at_us,
                keyframe,
                picture: data,
                sps: None,
                look: true,
            });
            return;
        }
        recorder.handle_output_frame(rtp_time, at_us, keyframe, data.len());
        if let Some(decoder) = &self.decoder
            && (keyframe || !self.keyframes_only)
        {
            decoder.send(rtp_time, at_us, data);
        }
    }

    /// A decoded picture: the answer of a held frame (overlay or output), and a content sample
    /// unless it is an overlay.
    fn look(&mut self, recorder: &mut SessionRecorder, look: Look) {
        let Look {
            rtp_time,
            at_us,
            look,
        } = look;
        let expected = Expected::Rewritten {
            last: self.last_code,
        };
        if let Some((frame, verdict, closes)) = self.watch.answer(rtp_time, look, expected) {
            match verdict {
                Verdict::Overlay => recorder.handle_overlay_frame(frame.at_us),
                Verdict::Processed | Verdict::Unknown => {
                    count(recorder, &frame);
                    self.sample(recorder, rtp_time, at_us, look);
                }
            }
            if closes {
                self.close_watch(recorder);
            }
            return;
        }
        self.sample(recorder, rtp_time, at_us, look);
    }

    fn sample(
        &mut self,
        recorder: &mut SessionRecorder,
        rtp_time: u64,
        at_us: u64,
        look: Option<PictureLook>,
    ) {
        if let Some(code) = look.and_then(|l| l.code) {
            self.last_code = Some(code);
        }
        let (code, marker) = read_look(look, self.read_numbers);
        recorder.handle_content_sample(rtp_time, at_us, code, marker, self.tolerance_us);
    }

    /// The first processed frame came (or the watch ran out): the frames held count as output.
    /// With `keyframes_only`, the session's own decoder goes (its decoding thread drops it
    /// once it has answered what it was given) and the shared keyframe decoders take over.
    fn close_watch(&mut self, recorder: &mut SessionRecorder) {
        for frame in self.watch.close() {
            count(recorder, &frame);
        }
        if self.keyframes_only
            && matches!(self.decoder, Some(Decoder::Own(_)))
            && let Some(looks) = &self.looks
        {
            self.decoder = Decoder::start(true, looks.clone());
        }
    }

    /// The session is over: the looks still on their way are taken (each within 500 ms), then
    /// the frames still held count as the watch's end decides ([`OverlayWatch::close_at_end`]).
    async fn finish(
        mut self,
        recorder: &mut SessionRecorder,
        looks: &mut mpsc::UnboundedReceiver<Look>,
    ) {
        self.decoder = None;
        self.looks = None;
        while let Ok(Some(look)) =
            tokio::time::timeout(Duration::from_millis(500), looks.recv()).await
        {
            self.look(recorder, look);
        }
        let (output, unread) = self.watch.close_at_end();
        for frame in output {
            count(recorder, &frame);
        }
        for _ in 0..unread {
            recorder.handle_unread_frame();
        }
    }
}

/// Counts a held frame as output, with its own arrival time.
fn count(recorder: &mut SessionRecorder, frame: &HeldFrame) {
    recorder.handle_output_frame(frame.pts, frame.at_us, frame.keyframe, frame.picture.len());
}

/// A keyframe to decode and where its look goes.
type KeyframeJob = (u64, u64, Bytes, mpsc::UnboundedSender<Look>);

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
                        let Ok(Ok((rtp_time, at_us, unit, done))) = job else {
                            return;
                        };
                        let look = reader.look(&unit);
                        let _ = done.send(Look {
                            rtp_time,
                            at_us,
                            look,
                        });
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
    /// One access unit of `stream`, decoded by that stream's decoder (made at its first unit).
    Frame {
        stream: u64,
        rtp_time: u64,
        at_us: u64,
        unit: Bytes,
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
                rtp_time,
                at_us,
                unit,
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
                let _ = done.send(Look {
                    rtp_time,
                    at_us,
                    look,
                });
            }
            StreamJob::End { stream } => {
                readers.remove(&stream);
            }
        }
    }
}

/// The session's state while it runs.
struct Session<'a> {
    opts: &'a ProbeOptions,
    gateway: &'a GatewayOptions,
    http: &'a reqwest::Client,
    t0: Instant,
    recorder: SessionRecorder,
    figures: GatewayFigures,
    failure: Option<(FailureClass, String)>,
    interrupted: bool,
}

impl Session<'_> {
    fn us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.t0).as_micros()).unwrap_or(u64::MAX)
    }

    fn ms(&self, at: Instant) -> f64 {
        self.us(at) as f64 / 1000.0
    }

    fn fail(&mut self, class: FailureClass, detail: String) {
        self.failure.get_or_insert((class, detail));
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
    let mut report = report_template(opts, TargetMode::Gateway);
    let mut session = Session {
        opts,
        gateway,
        http,
        t0: Instant::now(),
        recorder: SessionRecorder::new(MeasureConfig {
            timestamps_rewritten: true,
            ..MeasureConfig::default()
        }),
        figures: GatewayFigures {
            url: Some(redacted(&gateway.url)),
            orchestrator_pin: gateway.orchestrator.clone(),
            ..GatewayFigures::default()
        },
        failure: None,
        interrupted: false,
    };
    let end_us = match run(&mut session, &clip, &cancel).await {
        Ok(end_us) | Err(end_us) => end_us,
    };
    // A session too short for the first-output timeout can still end without output: only
    // loading overlay frames, frames unread at the end, or nothing.
    if session.recorder.frames_received() == 0 && !session.interrupted {
        let detail = format!(
            "the session ended without a processed output frame{}",
            loading(&session.recorder)
        );
        session.fail(FailureClass::NoOutput, detail);
    }
    let (mut metrics, runner) = session.recorder.finish(end_us);
    metrics.gateway = Some(session.figures);
    report.metrics = metrics;
    report.runner = runner;
    report.ended_at_unix_ms = unix_ms();
    match session.failure {
        _ if session.interrupted => {
            report.outcome = Outcome::UnscoredIndeterminate;
            report.failure = Some(fail(
                FailureClass::Internal,
                "interrupted: the tester stopped".into(),
            ));
        }
        Some((class, detail)) => {
            // Busy is not failed: nobody had room for the stream (docs/metrics.md).
            report.outcome = if class == FailureClass::Capacity {
                Outcome::UnscoredBusy
            } else {
                Outcome::Failed
            };
            report.failure = Some(fail(class, detail));
        }
        None => report.outcome = Outcome::Passed,
    }
    ProbeRun {
        report,
        interrupted: session.interrupted,
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
    let url = session
        .gateway
        .route(&format!("{}/status", session.gateway.stream_id));
    let request = session
        .http
        .get(url)
        .headers(session.gateway.headers.clone())
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

/// The session itself; `Ok` or `Err` carry the end of the measured period (us).
async fn run(
    session: &mut Session<'_>,
    clip: &Arc<Clip>,
    cancel: &CancellationToken,
) -> Result<u64, u64> {
    let Some(addr) = gateway_addr(&session.gateway.url).await else {
        session.fail(
            FailureClass::WhipRefused,
            format!("{}: the host does not resolve", session.gateway.url),
        );
        return Err(session.us(Instant::now()));
    };
    let ip = lvt_webrtc::local_ip_towards(addr);
    let (publisher, playback) = match publish(session, ip).await {
        Ok(up) => up,
        Err((class, detail)) => {
            session.fail(class, detail);
            return Err(session.us(Instant::now()));
        }
    };
    let end = media(session, clip, cancel, publisher, playback, ip).await;
    Ok(end)
}

/// Publishing, playback, status and updates until the end of the session.
async fn media(
    session: &mut Session<'_>,
    clip: &Arc<Clip>,
    cancel: &CancellationToken,
    mut publisher: PeerHandle,
    playback: reqwest::Url,
    ip: std::net::IpAddr,
) -> u64 {
    let opts = session.opts;
    let fps = u64::from(clip.config.fps.max(1));
    let frame_interval = Duration::from_micros(1_000_000 / fps);
    let frames_per_segment = clip.frames_per_segment();
    let start = tokio::time::Instant::now();
    let publish_end = start + opts.duration;
    let first_output_by = start + opts.timeouts.first_output;
    let mut next_frame: u64 = 0;
    let mut audio_samples: u64 = 0;
    let mut params = opts.params.clone();
    let mut updates = opts.params_update_offsets.clone();
    updates.sort();
    let mut updates = updates.into_iter().peekable();

    let (mut frames, mut looks) = Frames::new(
        session.gateway.decode_keyframes_only,
        opts.watch_overlay,
        opts.read_frame_numbers,
        1_500_000 / fps,
    );

    // WHEP: attempts in the background, retried on 404 while the output is not ready.
    let (player_tx, mut player_rx) = mpsc::unbounded_channel();
    let spawn_play = |delay: Duration| {
        let (http, url, headers, tx) = (
            session.http.clone(),
            playback.clone(),
            session.gateway.headers.clone(),
            player_tx.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let asked = Instant::now();
            let played = play_once(http, url, headers, ip).await;
            let answered = Instant::now();
            // The playback comes up here, off the session's loop, which goes on publishing.
            let played = match played {
                Ok(mut peer) => match connect(&mut peer, false).await {
                    Ok(up) => Ok(Ok((peer, up))),
                    Err(failure) => Ok(Err(failure)),
                },
                Err(refused) => Err(refused),
            };
            let _ = tx.send((asked, played, answered));
        });
    };
    spawn_play(Duration::ZERO);
    let mut player: Option<PeerHandle> = None;
    let mut playing_since: Option<Instant> = None;

    // The status route, polled in the background.
    let (status_tx, mut statuses) = mpsc::unbounded_channel::<(Instant, Value)>();
    let status_task = {
        let url = session
            .gateway
            .route(&format!("{}/status", session.gateway.stream_id));
        let (http, headers) = (session.http.clone(), session.gateway.headers.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATUS_EVERY);
            loop {
                tick.tick().await;
                let Ok(response) = http.get(url.clone()).headers(headers.clone()).send().await
                else {
                    continue;
                };
                if !response.status().is_success() {
                    continue;
                }
                if let Ok(doc) = response.json::<Value>().await
                    && status_tx.send((Instant::now(), doc)).is_err()
                {
                    return;
                }
            }
        })
    };

    let publish_started = Instant::now();
    // The latest output frame, loading overlay or not.
    let mut last_media: Option<Instant> = None;
    let mut last_sent_us: Option<u64> = None;
    let mut last_status_stamp: Option<Value> = None;
    let mut drain_by: Option<tokio::time::Instant> = None;
    let end_us = loop {
        let next_due = start + frame_interval * u32::try_from(next_frame).unwrap_or(u32::MAX);
        let publishing = next_due < publish_end;
        if !publishing && drain_by.is_none() {
            drain_by = Some(tokio::time::Instant::now() + opts.timeouts.drain);
        }
        let idle_end = last_media
            .map(|at| tokio::time::Instant::from_std(at + DRAIN_IDLE))
            .filter(|_| !publishing);
        // Processed output that stops for longer than the output gap ends the session, as in
        // the other modes (go-livepeer swaps after 30 s; the user watched a frozen picture).
        let gap_end = session
            .recorder
            .last_output_at_us()
            .map(|at_us| {
                tokio::time::Instant::from_std(session.t0 + Duration::from_micros(at_us))
                    + opts.timeouts.output_gap
            })
            .filter(|_| publishing);
        let wake = [
            publishing.then_some(next_due),
            drain_by,
            idle_end,
            gap_end,
            (session.recorder.frames_received() == 0).then_some(first_output_by),
            updates.peek().map(|offset| start + *offset),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(publish_end);
        tokio::select! {
            _ = cancel.cancelled() => {
                session.interrupted = true;
                break session.us(Instant::now());
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = tokio::time::Instant::now();
                if publishing && now >= next_due {
                    // One video frame (the clip loops) and the audio up to its time.
                    let count = clip.frames.len() as u64;
                    let frame = &clip.frames[(next_frame % count.max(1)) as usize];
                    let pts = next_frame * 90_000 / fps;
                    let at = Instant::now();
                    let at_us = session.us(at);
                    publisher.send_video(pts, frame.data.clone());
                    session.recorder.handle_input_frame_sent(pts, at_us);
                    last_sent_us = Some(at_us);
                    let code = (next_frame % count.max(1)) as u32;
                    session.recorder.handle_input_frame_code(
                        pts,
                        at_us,
                        code,
                        segment_marker(code, frames_per_segment),
                    );
                    next_frame += 1;
                    let due_samples = (next_frame * 48_000) / fps;
                    while audio_samples < due_samples {
                        publisher.send_audio(audio_samples, Bytes::from_static(&OPUS_SILENCE));
                        audio_samples += OPUS_FRAME_SAMPLES;
                    }
                }
                if updates.peek().is_some_and(|offset| start + *offset <= now) {
                    updates.next();
                    frames.open_update(session.us(Instant::now()));
                    params = updated_params(&params);
                    let url = session.gateway.route(&format!("{}/update", session.gateway.stream));
                    let (http, headers, body) =
                        (session.http.clone(), session.gateway.headers.clone(), params.to_string());
                    tokio::spawn(async move {
                        let _ = http.post(url).headers(headers).body(body).send().await;
                    });
                }
                if gap_end.is_some_and(|by| now >= by) {
                    let detail = format!("output stopped for longer than {:?}", opts.timeouts.output_gap);
                    session.fail(FailureClass::OutputTimeout, detail);
                    break session.us(Instant::now());
                }
                if session.recorder.frames_received() == 0 && now >= first_output_by {
                    let class = if player.is_some() { FailureClass::NoOutput } else { FailureClass::WhepRefused };
                    let detail = if player.is_some() {
                        format!("no output frame within {} s{}", opts.timeouts.first_output.as_secs(), loading(&session.recorder))
                    } else {
                        format!("the playback did not start within {} s (WHEP answered 404 {} times)", opts.timeouts.first_output.as_secs(), session.figures.whep_not_found)
                    };
                    session.fail(class, detail);
                    break session.us(Instant::now());
                }
                if !publishing && (drain_by.is_some_and(|by| now >= by) || idle_end.is_some_and(|by| now >= by)) {
                    // Output is expected until the last input frame went out (as in the other
                    // modes): a gap from the last output to then is a trailing stall.
                    break last_sent_us.unwrap_or_else(|| session.us(Instant::now()));
                }
            }
            event = publisher.events.recv() => match event {
                Some(PeerEvent::KeyframeRequest(_)) => session.figures.plis_received += 1,
                Some(PeerEvent::Egress(stats)) if stats.video => {
                    let mut leg = leg_of(stats.packets, stats.bytes, stats.loss, stats.nacks_received, publish_started.elapsed());
                    leg.jitter_ms = session.figures.ingest.jitter_ms;
                    session.figures.ingest = leg;
                }
                Some(PeerEvent::Closed(reason)) => {
                    let at = Instant::now();
                    let detail = format!("the gateway ended the ingest connection ({reason:?})");
                    let seen = if last_media.is_none() { FailureClass::AuthClosed } else { FailureClass::PublishLost };
                    let (class, detail) = closed_ingest(session, last_media.is_some(), seen, detail).await;
                    session.fail(class, detail);
                    break session.us(at);
                }
                None => break session.us(Instant::now()),
                Some(_) => {}
            },
            attempt = player_rx.recv() => {
                let Some((asked, result, answered)) = attempt else { continue };
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
                            }
                            Err((class, detail)) => {
                                session.fail(class, detail);
                                break session.us(Instant::now());
                            }
                        }
                    }
                    Err(e) if e.status() == Some(http::StatusCode::NOT_FOUND) => {
                        session.figures.whep_not_found += 1;
                        spawn_play(PLAYBACK_RETRY);
                    }
                    Err(e) => {
                        session.fail(FailureClass::WhepRefused, e.to_string());
                        break session.us(Instant::now());
                    }
                }
            }
            event = async { player.as_mut()?.events.recv().await }, if player.is_some() => match event {
                Some(PeerEvent::Video { rtp_time, at, data, .. }) => {
                    let at_us = session.us(at);
                    frames.frame(&mut session.recorder, rtp_time, at_us, data);
                    last_media = Some(at);
                }
                Some(PeerEvent::Ingress(stats)) if stats.video => {
                    let span = playing_since.map(|at| at.elapsed()).unwrap_or_default();
                    let mut leg = leg_of(stats.packets, stats.bytes, stats.loss, stats.nacks_sent, span);
                    leg.jitter_ms = Some(f64::from(stats.jitter) / 90.0);
                    session.figures.playback = leg;
                }
                Some(PeerEvent::Closed(reason)) => {
                    let at = Instant::now();
                    if publishing {
                        // A gateway ending the stream closes both legs, in either order: the
                        // status route says why, as for a closed ingest.
                        let detail = format!("the gateway ended the playback connection ({reason:?})");
                        let (class, detail) = closed_ingest(session, last_media.is_some(), FailureClass::OutputTimeout, detail).await;
                        session.fail(class, detail);
                    }
                    break session.us(at);
                }
                None => break session.us(Instant::now()),
                Some(_) => {}
            },
            look = looks.recv() => {
                if let Some(look) = look {
                    frames.look(&mut session.recorder, look);
                }
            }
            status = statuses.recv() => {
                if let Some((at, doc)) = status {
                    let at_us = session.us(at);
                    // The route repeats the runner's last status event until the next one: each
                    // new one (by its timestamp) counts once, as it would on the events channel.
                    if doc.get("type").is_some() && doc.get("timestamp") != last_status_stamp.as_ref() {
                        last_status_stamp = doc.get("timestamp").cloned();
                        session.recorder.handle_event(&serde_json::json!({ "event": doc }), at_us);
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
    };
    status_task.abort();
    // Teardown is closing the peer connections (go-livepeer has no DELETE).
    publisher.close();
    if let Some(player) = &player {
        player.close();
    }
    // Decoded frames still on their way count.
    frames.finish(&mut session.recorder, &mut looks).await;
    end_us
}

/// What a session without processed output saw instead, for its failure detail.
fn loading(recorder: &SessionRecorder) -> String {
    let (overlay, unread) = (recorder.overlay_frames(), recorder.unread_frames());
    match (overlay, unread) {
        (0, 0) => String::new(),
        (overlay, 0) => {
            format!(" ({overlay} loading overlay frames: the pipeline was still loading)")
        }
        (overlay, unread) => format!(
            " ({overlay} loading overlay frames, {unread} frames still being read at the end: \
             the pipeline may still have been loading)"
        ),
    }
}

/// The frame number (unless `read_numbers` is off: judged by the segment marker alone, as if
/// restyling had left no digit) and the segment marker a decoded output picture shows.
fn read_look(look: Option<PictureLook>, read_numbers: bool) -> (Option<u32>, Option<u8>) {
    let code = look.and_then(|l| l.code).filter(|_| read_numbers);
    (code, look.and_then(|l| l.marker))
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
