//! session: one live video-to-video session as a sans-IO state machine, [`SessionCore`].
//!
//! The core owns everything a session decides: when each input frame is due and which
//! orchestrator it goes to, the start loop over the candidates ([`StartAttempts`] with
//! suspensions), the swap monitor ([`SwapMonitor`]) or, for a direct session, the watchdog, the
//! control channel's keepalives and params updates, the drain after the last input frame, and
//! one share per serving orchestrator with its [`SessionRecorder`] and [`TsDemuxer`]. It reads
//! no clock, spawns nothing and touches no socket: a driver feeds it [`Input`]s stamped with
//! the driver's monotonic clock (`handle_input(input, now_us)`) and carries out its
//! [`Output`]s (`poll_output()` until it answers [`Output::Timeout`]), in the style of str0m's
//! `Rtc` and quinn-proto's `Connection`.
//!
//! One core serves every transport: a direct probe is a session with one fixed candidate and
//! swaps off ([`Mode::Direct`]), a session through network selection has several candidates
//! and go-livepeer's swap rules ([`Mode::Network`]), and a session through a gateway has the
//! gateway as its one candidate, publishes over WHIP and plays over WHEP ([`Mode::Gateway`]).
//! The drivers (the tester's `probe` over trickle, its gateway driver over WebRTC; the unit
//! tests over the simulator's `pipeline` on simulated time) differ only in how bytes move. The finished [`SessionReport`] is a pure function of the core's state
//! ([`report`]).
//!
//! Failures at the protocol edge arrive typed ([`StartFailure`], [`JobRefusal`],
//! [`PublishError`]) and the core picks a failure class with a `match`, never from an error's
//! text.
//!
//! [`StartAttempts`]: crate::gateway::select::StartAttempts
//! [`SwapMonitor`]: crate::gateway::swap::SwapMonitor
//! [`SessionRecorder`]: crate::measure::SessionRecorder
//! [`TsDemuxer`]: lvt_media::ts::TsDemuxer

pub mod classify;
mod core;
pub mod overlay;
pub mod report;
mod steps;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;
use lvt_schema::{Failure, FailureClass, Gpu, OrchestratorRef, SessionReport};
use serde_json::Value;

use crate::gateway::observe::Observation;
use crate::gateway::select::{AttemptResult, SelectionStrategy, StartLimits};
use crate::gateway::swap::SwapConfig;

pub use self::core::SessionCore;

/// Index of a share: one orchestrator's part of the session, in the order they served.
pub type ShareId = usize;

/// go-livepeer's message when no orchestrator accepted a stream.
pub const NO_ORCHESTRATORS_AVAILABLE: &str = "no orchestrators available";

/// After publishing, the drain ends once output has been silent this long.
pub const DRAIN_IDLE_US: u64 = 1_000_000;

/// Replaying params to a new orchestrator is given up after this many failed writes
/// (go-livepeer's `startControlPublish`).
pub const CONTROL_REPLAY_TRIES: u32 = 3;

/// go-livepeer's `retryPause` after a failed subscription read.
pub const READ_RETRY_PAUSE: Duration = Duration::from_millis(300);

/// In network mode, the segments of an orchestrator being left get this long to be confirmed
/// after publishing ended before the drain starts without them.
const FLUSH_LIMIT_US: u64 = 5_000_000;

/// How the session reaches orchestrators.
pub enum Mode {
    /// One fixed candidate, no swaps: failures end the session, and a watchdog judges silence
    /// on the output and events channels with [`SessionTimeouts`].
    Direct,
    /// go-livepeer's gateway: the start loop over `strategy`'s order of the candidates, and
    /// swaps on go-livepeer's triggers ([`SwapConfig`]); read errors are retried.
    Network {
        strategy: Box<dyn SelectionStrategy + Send>,
        swap: SwapConfig,
        start: StartLimits,
    },
    /// Through a gateway, as users stream into it: its one candidate is the gateway (the
    /// start is the WHIP exchange up to a connected ingest, [`StartFailure::Gateway`] when it
    /// fails), frames go out one by one, output comes back as access units
    /// ([`Input::OutputFrame`]) whose timestamps the gateway rewrote, so latency comes from
    /// the pictures: each output picture the driver decodes is a content sample, matched to
    /// the input frame it shows. Params updates go to the gateway's update route
    /// ([`Output::Control`]), with no keepalives; status documents come as events, with no
    /// silence limit (the driver polls them).
    Gateway {
        /// Decode every output frame for the content samples (P-frames by a decoder of the
        /// share's own, [`Output::ClassifyFrame`]); otherwise only the keyframes, each on its
        /// own ([`Output::LookAlone`]), and every frame only while a loading overlay watch is
        /// open: for load, where decoding every frame of every stream would cost more than the
        /// rest of the session.
        every_frame: bool,
    },
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Direct => f.write_str("Direct"),
            Self::Network { swap, start, .. } => f
                .debug_struct("Network")
                .field("swap", swap)
                .field("start", start)
                .finish_non_exhaustive(),
            Self::Gateway { every_frame } => f
                .debug_struct("Gateway")
                .field("every_frame", every_frame)
                .finish(),
        }
    }
}

/// The timing of the input clip as it is published: segment `k` starts `k * segment_us` after
/// publishing began and its frame `i` is due `i * 1_000_000 / fps` after the segment's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipTiming {
    pub segment_us: u64,
    pub fps: u32,
    pub frames_per_segment: u32,
    /// Segments in the clip, which loops: frame numbers drawn in the pictures repeat every
    /// `segments x frames_per_segment` frames.
    pub segments: u32,
}

impl ClipTiming {
    /// The offset of frame `index` from the start of its segment.
    pub fn frame_offset_us(&self, index: u32) -> u64 {
        u64::from(index) * 1_000_000 / u64::from(self.fps.max(1))
    }

    /// The frame number drawn in the picture of the input frame stamped `pts`, for a clip
    /// replayed from PTS 0 (frame k is stamped `floor(k x 90000 / fps)`, as the driver's
    /// replayer stamps it), so the picture shows `k` modulo the clip's length.
    pub fn code_of(&self, pts: u64) -> u32 {
        let fps = u128::from(self.fps.max(1));
        let k = (u128::from(pts) * fps).div_ceil(90_000);
        let frames = u128::from(self.frames_per_segment.max(1)) * u128::from(self.segments.max(1));
        // The remainder is below the clip's frame count, a u32 product.
        (k % frames) as u32
    }

    /// Whether the luminance step marker of the input frame stamped `pts` is bright
    /// ([`beacon_bright`] of the frame number its picture shows).
    pub fn bright_of(&self, pts: u64) -> bool {
        beacon_bright(self.code_of(pts), self.frames_per_segment)
    }

    /// A frame and a half: how far a picture and its timestamp may disagree.
    pub fn content_tolerance_us(&self) -> u64 {
        1_500_000 / u64::from(self.fps.max(1))
    }
}

/// Whether frame `frame` of lvt's clip has its luminance step marker bright: the marker is
/// bright through the first `run` frames of the clip, dark through the next `run`, and so on,
/// so it steps at every segment start (`run` is the clip's frames per segment, and each
/// segment starts with a keyframe). A big flat square flipping between black and white
/// survives restyling that leaves no digit readable; the clip draws it
/// (`encode::pattern` in the tester) and the content check reads it back.
pub fn beacon_bright(frame: u32, run: u32) -> bool {
    run == 0 || (frame / run).is_multiple_of(2)
}

/// Bits of the segment marker ([`segment_marker`]).
pub const MARKER_BITS: u32 = 4;

/// The segment marker of frame `frame` of lvt's clip (segments of `run` frames): the index of
/// its segment modulo 2^[`MARKER_BITS`], drawn as that many flat squares, each white for a 0
/// bit and black for a 1. Bit 0 is the luminance step marker ([`beacon_bright`]); the other
/// bits tell which step a picture shows, so that a latency longer than a segment is not taken
/// for a shorter one when the frame number cannot be read (gateway mode).
pub fn segment_marker(frame: u32, run: u32) -> u8 {
    if run == 0 {
        return 0;
    }
    // Below 2^MARKER_BITS, so within a u8.
    ((frame / run) % (1 << MARKER_BITS)) as u8
}

/// How long each part of a direct session may stay silent before it is classified as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// From the first input frame sent to the first output frame.
    pub first_output_us: u64,
    /// The longest gap in output once it started; go-livepeer swaps after 30 s.
    pub output_gap_us: u64,
    /// The longest silence on the events channel; go-livepeer stops a job after 30 s.
    pub events_us: u64,
    /// After the last input frame, how long to wait for its output.
    pub drain_us: u64,
}

impl Default for SessionTimeouts {
    fn default() -> Self {
        Self {
            first_output_us: 20_000_000,
            output_gap_us: 30_000_000,
            events_us: 30_000_000,
            drain_us: 5_000_000,
        }
    }
}

/// Everything the core needs to know about the session before it starts.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    pub clip: ClipTiming,
    /// How long input is published.
    pub duration_us: u64,
    pub timeouts: SessionTimeouts,
    /// The params sent at job start; params updates build on them.
    pub params: Value,
    /// When to send params updates, as offsets from the start of publishing.
    pub params_update_offsets_us: Vec<u64>,
    /// Interval of `{"keep":"alive"}` control messages.
    pub keepalive_interval_us: u64,
    /// Check the content at the first luminance step of each share's output and every Nth
    /// after it, as `content_check_phase` says (the first output frame whose timestamp names
    /// a frame past a step of the marker, and, when its frame
    /// number cannot be read, the frames after it until the marker shows the step); 0 checks
    /// none. From two steps before a check to its end, output frames are handed to the driver
    /// ([`Output::ClassifyFrame`]) so that it can decode from a keyframe.
    pub content_check_every: u32,
    /// Which steps are checked after each share's first: those where the count of steps seen
    /// plus this phase is a multiple of `content_check_every` (0: steps 0, N, 2N, ...). Drivers
    /// give the sessions they run at once different phases, so that their frames are not all
    /// handed over at the same time (the frames of a check's window are the driver's memory).
    pub content_check_phase: u32,
    /// Let a readable frame number decide a content check (the default); `false` judges by the
    /// luminance marker alone, as if every picture were restyled beyond its digits (to test
    /// the marker end to end, or to compare the two).
    pub read_frame_numbers: bool,
    /// Tell loading overlay frames from processed output ([`Output::ClassifyFrame`]) while a
    /// runner may be loading: from each share's first output frame to its first processed one,
    /// and from [`OVERLAY_WATCH_BEFORE_UPDATE_US`] before each params update to
    /// [`OVERLAY_WATCH_AFTER_UPDATE_US`] after it.
    pub watch_overlay: bool,
}

/// How long before a params update the driver starts keeping the output frames (not decoding
/// them): a frame after the update can only be decoded from the keyframe before it, and live
/// output has a keyframe every second or two.
pub const OVERLAY_WATCH_BEFORE_UPDATE_US: u64 = 2_000_000;

/// How long after a params update output frames are classified when no loading overlay shows:
/// ai-runner starts a reload as soon as it has taken the update (it polls its params queue
/// every 100 ms, and `update_params` hands the reload back as a task) and shows the overlay
/// from then until the reload is over, so its first overlay frame comes well within this.
/// Only frames that arrive suspiciously early are decoded meanwhile (session::overlay), so an
/// update without a reload normally costs no decoding at all.
pub const OVERLAY_WATCH_AFTER_UPDATE_US: u64 = 2_000_000;

/// Most output frames classified in one watch: two minutes at 30 fps. A runner showing its
/// overlay longer has failed anyway (the startup timeout ends it), and a decoder that cannot
/// tell must not decode a whole session.
pub const MAX_OVERLAY_WATCH_FRAMES: u32 = 3_600;

/// What the driver saw in a decoded output picture ([`Input::FrameLook`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureLook {
    /// No colour anywhere: both chroma planes flat at their midpoint. ai-runner's loading
    /// overlay is grayscale (a dimmed gray copy of its last output, or mid gray).
    pub colourless: bool,
    /// The frame number drawn in the picture, if readable.
    pub code: Option<u32>,
    /// The luminance step marker ([`beacon_bright`]): bright, dark, or not clearly either.
    pub beacon: Option<bool>,
    /// The whole segment marker ([`segment_marker`]), when every square of it reads clearly.
    pub marker: Option<u8>,
}

/// What a finished start attempt learnt about the orchestrator, whether or not it started the
/// job: the record keeps the identity and timings of a refusal too.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartInfo {
    /// The identity GetOrchestrator gave (address claimed, certificate fingerprint), if it
    /// answered.
    pub orchestrator: Option<OrchestratorRef>,
    pub gpu: Option<Gpu>,
    pub get_orchestrator_ms: Option<f64>,
    pub job_start_ms: Option<f64>,
}

/// Why a job start request was refused, typed once at the protocol edge from the status and
/// go-livepeer's error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// No capacity (503, `insufficient capacity`, `OrchestratorCapped`, `OrchestratorBusy`).
    Busy,
    /// 402, or a 400 about balance or payment.
    Payment,
    /// 403.
    Auth,
    /// Any other status.
    Other,
}

/// A job start that did not give a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRefusal {
    /// The orchestrator answered with an error status.
    Refused {
        status: u16,
        reason: RefusalReason,
        detail: String,
    },
    /// It answered 200 with something that is not a job (bad JSON, a missing field).
    BadAnswer { detail: String },
    /// No answer: timeout or transport error.
    NoAnswer { detail: String },
}

/// Why a start attempt (GetOrchestrator, payment, job start) did not start a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// The remote signer could not sign the GetOrchestrator request.
    Signer { detail: String },
    /// GetOrchestrator did not answer within the timeout.
    GrpcTimeout { timeout: Duration },
    /// GetOrchestrator failed; `busy` when go-livepeer's capped or busy status came back.
    Grpc { busy: bool, detail: String },
    /// OrchestratorInfo carries no auth token.
    NoAuthToken,
    /// The payment for the job could not be made.
    Payment { detail: String },
    /// The job start request failed.
    Job(JobRefusal),
    /// The orchestrator presented another TLS certificate than the one trusted for its URI and
    /// the tester refuses such orchestrators: it may not be who it was.
    CertificateChanged { detail: String },
    /// Gateway mode: the stream did not come up (WHIP refused, ICE or DTLS not connected, the
    /// ingest closed after its 201), classified by the driver, which can ask the gateway's
    /// status route why.
    Gateway(Failure),
}

impl StartFailure {
    /// The session failure this start failure is: its class picked by kind, never by text.
    pub fn failure(&self) -> Failure {
        let (class, detail) = match self {
            Self::Signer { detail } => (FailureClass::Payment, format!("remote signer: {detail}")),
            Self::GrpcTimeout { timeout } => (
                FailureClass::GrpcError,
                format!("GetOrchestrator did not answer within {timeout:?}"),
            ),
            Self::Grpc { busy, detail } => (
                if *busy {
                    FailureClass::Capacity
                } else {
                    FailureClass::GrpcError
                },
                format!("GetOrchestrator: {detail}"),
            ),
            Self::NoAuthToken => (
                FailureClass::ProtocolError,
                "OrchestratorInfo carries no auth_token, which job start requires".into(),
            ),
            Self::Payment { detail } => (FailureClass::Payment, format!("payment: {detail}")),
            Self::CertificateChanged { detail } => (FailureClass::Auth, detail.clone()),
            Self::Gateway(failure) => return failure.clone(),
            Self::Job(refusal) => {
                let (class, detail) = match refusal {
                    JobRefusal::Refused { reason, detail, .. } => (
                        match reason {
                            RefusalReason::Busy => FailureClass::Capacity,
                            RefusalReason::Payment => FailureClass::Payment,
                            RefusalReason::Auth => FailureClass::Auth,
                            RefusalReason::Other => FailureClass::StartError,
                        },
                        detail,
                    ),
                    JobRefusal::BadAnswer { detail } => (FailureClass::ProtocolError, detail),
                    JobRefusal::NoAnswer { detail } => (FailureClass::StartError, detail),
                };
                (class, format!("job start: {detail}"))
            }
        };
        Failure { class, detail }
    }

    /// Whether the orchestrator was busy: a capacity signal, not a failure of it.
    pub fn is_busy(&self) -> bool {
        self.failure().class == FailureClass::Capacity
    }

    /// What the start loop makes of this failure: a busy orchestrator or another failure; both
    /// drop the orchestrator from the start and the loop tries the next.
    pub fn attempt_result(&self) -> AttemptResult {
        if self.is_busy() {
            AttemptResult::Busy
        } else {
            AttemptResult::Err
        }
    }
}

/// A failure on an input channel (publishing a segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    /// The server said the channel is gone (404): the orchestrator dropped the session.
    pub gone: bool,
    pub detail: String,
}

impl PublishError {
    fn failure(&self) -> Failure {
        Failure {
            class: FailureClass::PublishLost,
            detail: if self.gone {
                "the input channel vanished (404): the orchestrator dropped the session".into()
            } else {
                format!("publishing failed: {}", self.detail)
            },
        }
    }
}

/// How a subscription (output or events) stopped delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelEnd {
    /// 404 or end of stream.
    Ended,
    /// A read failed.
    Error,
    /// Copying a segment failed after its read began (output only).
    CopyError,
}

/// What the driver observed, stamped where it was observed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A deadline the core asked for ([`Output::Timeout`]) has passed.
    Timeout,
    /// The tester is stopping (Ctrl-C, a run's abort): end the session now, as interrupted.
    Cancel,
    /// A start attempt on `candidate` ended.
    StartResult {
        candidate: usize,
        info: StartInfo,
        result: Result<(), StartFailure>,
    },
    /// The first byte of input frame `pts` is about to be written to `share`'s input channel,
    /// at `at_us`.
    FrameSent {
        share: ShareId,
        pts: u64,
        at_us: u64,
    },
    /// Every frame of `share`'s open segment (`bytes` in all) is written.
    SegmentWritten { share: ShareId, bytes: u64 },
    /// A segment on `share`'s input channel ended: confirmed, or failed (opening it, writing
    /// to it, or its answer).
    SegmentDone {
        share: ShareId,
        result: Result<(), PublishError>,
    },
    /// Bytes of `share`'s output channel; their first byte arrived at `at_us`.
    OutputBytes {
        share: ShareId,
        bytes: Bytes,
        at_us: u64,
    },
    /// The output segment being read ended.
    OutputSegmentEnd { share: ShareId },
    /// The output subscription stopped.
    OutputEnd { share: ShareId, end: ChannelEnd },
    /// One whole events document of `share`, complete at `at_us`.
    Event {
        share: ShareId,
        doc: Bytes,
        at_us: u64,
    },
    /// The events subscription stopped ([`ChannelEnd::CopyError`] counts as an error).
    EventsEnd { share: ShareId, end: ChannelEnd },
    /// A control message got 404: the channel is gone.
    ControlGone { share: ShareId },
    /// Replaying the params to `share` failed [`CONTROL_REPLAY_TRIES`] times.
    ControlReplayFailed { share: ShareId },
    /// The output frame `pts` of `share` ([`Output::ClassifyFrame`], [`Output::LookAlone`])
    /// looks like this (`None`: it could not be decoded, for example a frame before the
    /// decoder's first keyframe).
    FrameLook {
        share: ShareId,
        pts: u64,
        look: Option<PictureLook>,
    },
    /// Gateway mode: one output access unit of `share`, stamped `pts` by the gateway (RTP time,
    /// 90 kHz), whose first packet arrived at `at_us`.
    OutputFrame {
        share: ShareId,
        pts: u64,
        at_us: u64,
        data: Bytes,
    },
    /// Gateway mode: the playback of `share` is up (WHEP answered, and connected).
    PlaybackUp { share: ShareId },
    /// Gateway mode: the playback request answered 404 (the output is not ready yet); the
    /// driver asks again.
    PlaybackNotFound { share: ShareId },
    /// The driver saw `share`'s transport fail and classified it (gateway mode: the gateway
    /// closed a connection, or refused the playback): the session ends with `failure`, its
    /// measured period at the moment handed over with the input.
    Failed { share: ShareId, failure: Failure },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Nothing more until this time (`u64::MAX`: until an input arrives).
    Timeout(u64),
    /// Run a start attempt (GetOrchestrator, payment, job start) on `candidate`, then report
    /// [`Input::StartResult`]. The driver keeps the job's channels until [`Output::OpenShare`]
    /// names the attempt's candidate, or drops them at the end.
    Start { candidate: usize, uri: String },
    /// The job started on `candidate` serves from now as `share`: open its channels (input,
    /// output, events, control). `retry_reads`: after a failed read, report it, pause
    /// [`READ_RETRY_PAUSE`] and read again (go-livepeer's subscriptions); otherwise a failed
    /// read ends the subscription.
    OpenShare {
        share: ShareId,
        candidate: usize,
        retry_reads: bool,
    },
    /// Open input segment `seq` on `share`'s channel. `None`: nobody takes input right now,
    /// and the segment is skipped (its frames are not sent, but the clip moves on so that
    /// timestamps continue).
    BeginSegment { share: Option<ShareId>, seq: u64 },
    /// Write frame `index` of the open segment and report [`Input::FrameSent`] with the
    /// moment its first byte goes out.
    WriteFrame { share: ShareId, index: u32 },
    /// The open segment is complete: finish it without holding up the next one, then report
    /// [`Input::SegmentWritten`] and [`Input::SegmentDone`].
    EndSegment { share: ShareId },
    /// Publish one control message, trying up to `tries` times (gateway mode: post the params
    /// to the update route).
    Control {
        share: ShareId,
        message: Bytes,
        tries: u32,
    },
    /// The session leaves `share`: end its input channel (how a gateway ends a job). Its
    /// readers go on until [`Output::StopShare`], so that its last frames count.
    LeaveShare { share: ShareId },
    /// Stop `share`'s readers, control channel and payments.
    StopShare { share: ShareId },
    /// `picture` is the next output frame of `share` (frames come in stream order, P-frames
    /// included, so a decoder keeps its state per share). With `look`, decode it (and the
    /// frames before it since a keyframe that were kept) and report [`Input::FrameLook`] for
    /// it, in the same order as asked (the loading overlay watch holds the frame until its
    /// answer comes; the content check reads the frame number and the luminance marker).
    /// Without, keep it in case a later frame is asked about (from its keyframe on).
    ClassifyFrame {
        share: ShareId,
        pts: u64,
        keyframe: bool,
        picture: Bytes,
        look: bool,
    },
    /// Gateway mode: decode keyframe `picture` of `share` by itself (an IDR needs no earlier
    /// frame, so any decoder will do; it is not part of the frames handed over with
    /// [`Output::ClassifyFrame`]) and report [`Input::FrameLook`] for it.
    LookAlone {
        share: ShareId,
        pts: u64,
        picture: Bytes,
    },
    /// No answer is awaited for `share`: its decoder can go. With `keep_frames` the frames kept
    /// since their keyframe stay (a later question decodes them again with a fresh decoder);
    /// without, they go too, and frames handed over afterwards are kept anew.
    ClassifyEnd { share: ShareId, keep_frames: bool },
    /// An observation for the analytics events.
    Observe(Observation),
    /// The session is over; nothing else follows.
    Finished(Box<Finished>),
}

/// The end of a session: its record, and whether a cancel cut it short.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub report: SessionReport,
    /// True when [`Input::Cancel`] ended the session before it ran its course (no failure had
    /// stopped it first). Such a session's outcome judges a shortened session.
    pub interrupted: bool,
}

/// The params update a session sends: the same params with the prompt changed, so that a
/// runner applying it must report a new hash. Applied to its own result it changes the hash
/// again.
pub fn updated_params(params: &Value) -> Value {
    let mut p = match params {
        Value::Object(m) => Value::Object(m.clone()),
        _ => serde_json::json!({}),
    };
    let prompt = p.get("prompt").and_then(Value::as_str).map_or_else(
        || "lvt params update".to_string(),
        |s| format!("{s}, updated"),
    );
    p["prompt"] = Value::String(prompt);
    p
}

/// go-livepeer's `stream_id` for a session: `lvt-` and the last 12 characters of its id.
pub fn stream_id(session_id: &str) -> String {
    let tail = session_id
        .char_indices()
        .rev()
        .nth(11)
        .map_or(session_id, |(i, _)| &session_id[i..]);
    format!("lvt-{tail}")
}

impl JobRefusal {
    /// Types a job start error once, at the protocol edge: the status says most, and
    /// go-livepeer's busy texts (`insufficient capacity`, `OrchestratorCapped`,
    /// `OrchestratorBusy`) and payment texts say the rest.
    pub fn from_start_error(e: &lvt_wire::live::StartJobError) -> Self {
        use lvt_wire::live::StartJobError;
        let detail = e.to_string();
        match e {
            StartJobError::Status { status, body } => {
                let reason = match status {
                    503 => RefusalReason::Busy,
                    403 => RefusalReason::Auth,
                    402 => RefusalReason::Payment,
                    400 if body.contains("balance") || body.to_lowercase().contains("payment") => {
                        RefusalReason::Payment
                    }
                    _ if is_busy_text(body) => RefusalReason::Busy,
                    _ => RefusalReason::Other,
                };
                Self::Refused {
                    status: *status,
                    reason,
                    detail,
                }
            }
            StartJobError::BadJson { .. } | StartJobError::MissingField { .. } => {
                Self::BadAnswer { detail }
            }
            StartJobError::Timeout | StartJobError::Transport(_) => Self::NoAnswer { detail },
        }
    }
}

/// The texts go-livepeer sends when an orchestrator is busy rather than broken.
pub fn is_busy_text(text: &str) -> bool {
    [
        "OrchestratorCapped",
        "OrchestratorBusy",
        "insufficient capacity",
    ]
    .iter()
    .any(|t| text.contains(t))
}
