//! [`SessionCore`]: the session's decisions, fed inputs with their times, asked for outputs.

use std::collections::VecDeque;

use bytes::Bytes;
use lvt_media::ts::{DemuxStats, TsDemuxer};
use lvt_schema::{Failure, FailureClass, Gpu, MediaErrors, OrchestratorRef, SessionReport};
use serde_json::Value;
use tracing::{info, warn};

use super::overlay::{Expected, HeldFrame, OverlayWatch, Verdict};
use super::report::{self, ShareRecord};
use super::steps::{StepProbe, StepSample};
use super::{
    CONTROL_REPLAY_TRIES, ChannelEnd, DRAIN_IDLE_US, FLUSH_LIMIT_US, Finished, Input, Mode,
    NO_ORCHESTRATORS_AVAILABLE, OVERLAY_WATCH_AFTER_UPDATE_US, OVERLAY_WATCH_BEFORE_UPDATE_US,
    Output, PictureLook, PublishError, SessionPlan, ShareId, StartFailure, StartInfo,
    segment_marker, updated_params,
};
use crate::gateway::observe::{Observation, OrchestratorInfo, StreamContext};
use crate::gateway::select::{
    AttemptResult, Candidate, Next, SelectionStrategy, StartAttempts, StartLimits,
};
use crate::gateway::swap::{
    Decision, SuspendReason, Suspensions, SwapCause, SwapConfig, SwapMonitor,
};
use crate::measure::{MeasureConfig, SessionRecorder};

/// H.264 in MPEG-TS (ISO/IEC 13818-1 stream_type 0x1B).
const STREAM_TYPE_H264: u8 = 0x1b;

/// Gateway mode: most content samples whose pictures are awaited at once; older ones are given
/// up (their decoder went without answering).
const MAX_SAMPLES_AWAITED: usize = 256;

/// What the mode adds: nothing for a direct session; selection and swaps through the network;
/// content samples of every decoded picture through a gateway.
enum Policy {
    Direct,
    Gateway {
        every_frame: bool,
    },
    Network {
        strategy: Box<dyn SelectionStrategy + Send>,
        swap: SwapConfig,
        limits: StartLimits,
        /// Boxed: it is most of the policy's size, and a direct session has none.
        monitor: Option<Box<SwapMonitor>>,
    },
}

/// A start loop in progress: the initial start, or a reselection after a swap.
struct StartLoop {
    attempts: StartAttempts,
    suspended: Suspensions,
    /// The try in flight.
    in_flight: Option<usize>,
    /// For a reselection: the share left and why.
    swap_from: Option<(ShareId, SwapCause)>,
}

/// A start that found nobody: go-livepeer's message, the tries made, and whether go-livepeer
/// would emit `gateway_no_orchestrators_available` (not on its deadline path).
struct NoneAvailable {
    tries: u32,
    message: String,
    trace: bool,
}

impl NoneAvailable {
    fn out_of_step(tries: u32) -> Self {
        Self {
            tries,
            message: NO_ORCHESTRATORS_AVAILABLE.to_string(),
            trace: true,
        }
    }
}

/// One orchestrator's part of the session.
struct Share {
    candidate: usize,
    orchestrator: OrchestratorRef,
    gpu: Option<Gpu>,
    get_orchestrator_ms: Option<f64>,
    job_start_ms: Option<f64>,
    from_unix_ms: i64,
    to_unix_ms: Option<i64>,
    /// The end of its measured period, on the driver's clock.
    end_us: Option<u64>,
    ended_by: Option<SwapCause>,
    /// The failure that ended the session while this share held it, with no swap after it
    /// (the swap limit was reached): it counts against the share as a swap's failure does.
    broke: Option<FailureClass>,
    /// Network mode keeps a recorder per share for its `served_by` figures; a direct session
    /// has only the session's.
    recorder: Option<SessionRecorder>,
    demux: TsDemuxer,
    have_resolution: bool,
    /// Bytes of the output segment being read.
    segment_bytes: u64,
    last_output_pts: Option<u64>,
    output_ended: bool,
    media_errors: MediaErrors,
    segments_in_flight: u32,
    /// Its readers and control channel were stopped: nothing it still sends counts.
    stopped: bool,
    control_dead: bool,
    next_keepalive_us: u64,
    first_ingest_sent: bool,
    first_output_seen: bool,
    /// The content check at the luminance steps of its output.
    steps: StepProbe,
    /// Frames were handed to the driver ([`Output::ClassifyFrame`]) since it was last told to
    /// let them and its decoder go ([`Output::ClassifyEnd`]).
    handed_over: bool,
    /// Output frames held until their pictures tell overlay from processed output.
    watch: OverlayWatch,
    /// Gateway mode: the frame number the latest processed picture showed (an overlay after a
    /// reload repeats it), when the latest output frame arrived, and the frames asked about
    /// outside a watch whose answers are awaited (`pts`, arrival).
    last_code: Option<u32>,
    last_at_us: Option<u64>,
    sampled: VecDeque<(u64, u64)>,
}

impl Share {
    fn info(&self, uri: &str) -> OrchestratorInfo {
        OrchestratorInfo {
            address: self.orchestrator.address.clone(),
            url: uri.to_string(),
        }
    }
}

/// The segment whose frames are being written.
struct OpenSegment {
    share: Option<ShareId>,
    start_us: u64,
    next_index: u32,
}

/// Where publishing stands.
struct Publisher {
    start_us: u64,
    end_us: u64,
    next_seq: u64,
    open: Option<OpenSegment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The first start loop runs.
    Starting,
    Publishing,
    /// Every segment is written; waiting for the last ones to be confirmed.
    Flushing {
        since_us: u64,
    },
    /// Waiting for the output of the last input frames.
    Draining {
        since_us: u64,
    },
    Done,
}

/// How the session ended.
enum End {
    /// Publishing and the drain completed.
    Completed,
    /// A failure ended it.
    Failed(Failure),
    /// No orchestrator accepted the stream at start (network mode).
    NoneAvailable(NoneAvailable),
    /// [`Input::Cancel`] ended it.
    Interrupted,
}

/// One live session; see the module documentation of [`super`].
pub struct SessionCore {
    policy: Policy,
    plan: SessionPlan,
    candidates: Vec<Candidate>,
    template: SessionReport,
    stream: StreamContext,
    /// The driver's clock at construction, and the wall clock then.
    t0_us: u64,
    origin_unix_ms: i64,
    now_us: u64,
    phase: Phase,
    start: Option<StartLoop>,
    /// The last start's findings, kept for a direct session's record.
    last_start: StartInfo,
    shares: Vec<Share>,
    current: Option<ShareId>,
    recorder: SessionRecorder,
    publisher: Option<Publisher>,
    first_input_us: Option<u64>,
    last_input_us: Option<u64>,
    last_input_pts: Option<u64>,
    /// When the first share's channels opened: the events watchdog counts from here.
    events_opened_us: Option<u64>,
    /// The params the next update builds on (the last one sent, or the start params).
    last_params: Value,
    next_update: usize,
    outputs: VecDeque<Output>,
    /// Gateway mode: the playback is up, and how often it answered 404 before.
    playing: bool,
    playback_not_found: u32,
}

impl SessionCore {
    /// A session over `candidates` (one, for a direct session), starting at `now_us` on the
    /// driver's clock, which is `origin_unix_ms` on the wall clock. `template` carries the
    /// record's identity (session id, model, prompt, scenario, region; for a direct session the
    /// orchestrator), which the core fills with what it measures.
    pub fn new(
        mode: Mode,
        plan: SessionPlan,
        candidates: Vec<Candidate>,
        template: SessionReport,
        now_us: u64,
        origin_unix_ms: i64,
    ) -> Self {
        let stream = StreamContext {
            stream_id: super::stream_id(&template.session_id),
            request_id: template.session_id.clone(),
            pipeline: template.pipeline.clone(),
            model_id: template.model_id.clone(),
        };
        let policy = match mode {
            Mode::Direct => Policy::Direct,
            Mode::Gateway { every_frame } => Policy::Gateway { every_frame },
            Mode::Network {
                strategy,
                swap,
                start,
            } => Policy::Network {
                strategy,
                swap,
                limits: start,
                monitor: None,
            },
        };
        // A gateway rewrites timestamps: e2e latency comes from the pictures alone.
        let timestamps_rewritten = matches!(policy, Policy::Gateway { .. });
        let mut core = Self {
            policy,
            last_params: plan.params.clone(),
            plan,
            candidates,
            template,
            stream,
            t0_us: now_us,
            origin_unix_ms,
            now_us,
            phase: Phase::Starting,
            start: None,
            last_start: StartInfo::default(),
            shares: Vec::new(),
            current: None,
            recorder: SessionRecorder::new(MeasureConfig {
                timestamps_rewritten,
                ..MeasureConfig::default()
            }),
            publisher: None,
            first_input_us: None,
            last_input_us: None,
            last_input_pts: None,
            events_opened_us: None,
            next_update: 0,
            outputs: VecDeque::new(),
            playing: false,
            playback_not_found: 0,
        };
        if core.is_network() {
            core.trace("gateway_receive_stream_request", None);
        }
        let suspended = Suspensions::new();
        core.begin_start(suspended, None);
        core
    }

    /// Feeds one input observed by the driver; `now_us` is the driver's clock when it hands the
    /// input over (inputs that carry their own `at_us` were stamped where they happened).
    pub fn handle_input(&mut self, input: Input, now_us: u64) {
        self.now_us = self.now_us.max(now_us);
        if self.phase == Phase::Done {
            return;
        }
        match input {
            Input::Timeout => {}
            Input::Cancel => {
                self.end(End::Interrupted);
                return;
            }
            Input::StartResult {
                candidate,
                info,
                result,
            } => self.handle_start_result(candidate, info, result),
            Input::FrameSent { share, pts, at_us } => {
                if self.live(share) {
                    self.first_input_us.get_or_insert(at_us);
                    self.last_input_us = Some(at_us);
                    self.last_input_pts = Some(pts);
                    let code = self.plan.clip.code_of(pts);
                    let marker = segment_marker(code, self.plan.clip.frames_per_segment);
                    self.each_recorder(share, |r| {
                        r.handle_input_frame_sent(pts, at_us);
                        r.handle_input_frame_code(pts, at_us, code, marker);
                    });
                }
            }
            Input::SegmentWritten { share, bytes } => {
                let now = self.now_us;
                if self.live(share) {
                    self.each_recorder(share, |r| r.handle_segment_sent(bytes, now));
                }
            }
            Input::SegmentDone { share, result } => self.handle_segment_done(share, result),
            Input::OutputBytes {
                share,
                bytes,
                at_us,
            } => self.handle_output_bytes(share, &bytes, at_us),
            Input::OutputSegmentEnd { share } => self.handle_output_segment_end(share),
            Input::OutputEnd { share, end } => self.handle_output_end(share, end),
            Input::Event { share, doc, at_us } => self.handle_event(share, &doc, at_us),
            Input::EventsEnd { share, end } => {
                let now_ms = self.rel_ms(self.now_us);
                self.if_current(share, |m| match end {
                    ChannelEnd::Ended => m.handle_events_end(now_ms),
                    ChannelEnd::Error | ChannelEnd::CopyError => m.handle_events_error(now_ms),
                });
            }
            Input::ControlGone { share } => {
                if let Some(s) = self.shares.get_mut(share) {
                    s.control_dead = true;
                }
                let now_ms = self.rel_ms(self.now_us);
                self.if_current(share, |m| m.handle_control_not_found(now_ms));
            }
            Input::FrameLook { share, pts, look } => self.handle_frame_look(share, pts, look),
            Input::ControlReplayFailed { share } => {
                if let Some(s) = self.shares.get_mut(share) {
                    s.control_dead = true;
                }
                let now_ms = self.rel_ms(self.now_us);
                self.if_current(share, |m| m.handle_control_write_failed(now_ms));
            }
            Input::OutputFrame {
                share,
                pts,
                at_us,
                data,
            } => self.handle_output_frame(share, pts, at_us, data),
            Input::PlaybackUp { share } => {
                if self.live(share) {
                    self.playing = true;
                }
            }
            Input::PlaybackNotFound { share } => {
                if self.live(share) {
                    self.playback_not_found += 1;
                }
            }
            Input::Failed { share, failure } => {
                if self.live(share) {
                    self.end(End::Failed(failure));
                    return;
                }
            }
        }
        self.drive();
    }

    /// The next thing to do; [`Output::Timeout`] when there is nothing until then.
    pub fn poll_output(&mut self) -> Output {
        if let Some(out) = self.outputs.pop_front() {
            return out;
        }
        Output::Timeout(self.poll_timeout().unwrap_or(u64::MAX))
    }

    /// Whether the session is over ([`Output::Finished`] was queued).
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The params the session sent last (the start params until an update was sent).
    pub fn last_params(&self) -> &Value {
        &self.last_params
    }

    fn is_network(&self) -> bool {
        matches!(self.policy, Policy::Network { .. })
    }

    /// Gateway mode, and whether every output frame is decoded for the content samples.
    fn gateway(&self) -> Option<bool> {
        match self.policy {
            Policy::Gateway { every_frame } => Some(every_frame),
            _ => None,
        }
    }

    fn rel_ms(&self, at_us: u64) -> u64 {
        at_us.saturating_sub(self.t0_us) / 1000
    }

    fn unix_ms(&self, at_us: u64) -> i64 {
        let ms = i64::try_from(self.rel_ms(at_us)).unwrap_or(i64::MAX);
        self.origin_unix_ms.saturating_add(ms)
    }

    fn monitor(&mut self) -> Option<&mut SwapMonitor> {
        match &mut self.policy {
            Policy::Network { monitor, .. } => monitor.as_deref_mut(),
            Policy::Direct | Policy::Gateway { .. } => None,
        }
    }

    /// A share whose inputs still count: it exists and was not stopped.
    fn live(&self, share: ShareId) -> bool {
        self.shares.get(share).is_some_and(|s| !s.stopped)
    }

    /// Runs `f` on the monitor when `share` is the one serving: go-livepeer gives each
    /// orchestrator its own channels and counters, so a share left behind reports nothing.
    fn if_current(&mut self, share: ShareId, f: impl FnOnce(&mut SwapMonitor)) {
        if self.current == Some(share)
            && let Some(m) = self.monitor()
        {
            f(m);
        }
    }

    /// Runs `f` on the session's recorder and on `share`'s own, so that each frame counts for
    /// the session and for the orchestrator that produced it.
    fn each_recorder(&mut self, share: ShareId, mut f: impl FnMut(&mut SessionRecorder)) {
        f(&mut self.recorder);
        if let Some(r) = self.shares.get_mut(share).and_then(|s| s.recorder.as_mut()) {
            f(r);
        }
    }

    fn observe(&mut self, observation: Observation) {
        if self.is_network() {
            self.outputs.push_back(Output::Observe(observation));
        }
    }

    fn trace(&mut self, kind: &'static str, orchestrator: Option<OrchestratorInfo>) {
        let observation = Observation::Trace {
            at_unix_ms: self.unix_ms(self.now_us),
            stream: self.stream.clone(),
            kind,
            orchestrator,
        };
        self.observe(observation);
    }

    fn share_info(&self, share: ShareId) -> Option<OrchestratorInfo> {
        let s = self.shares.get(share)?;
        Some(s.info(&self.candidates[s.candidate].uri))
    }

    // ---- Starting -------------------------------------------------------------------------

    /// Begins a start loop over the strategy's order (a direct session has one candidate).
    fn begin_start(&mut self, suspended: Suspensions, swap_from: Option<(ShareId, SwapCause)>) {
        let now_ms = self.rel_ms(self.now_us);
        let (order, limits) = match &mut self.policy {
            Policy::Direct | Policy::Gateway { .. } => (
                vec![0],
                StartLimits {
                    max_tries: 1,
                    ..StartLimits::default()
                },
            ),
            Policy::Network {
                strategy, limits, ..
            } => (
                strategy.order(&self.candidates, &suspended, now_ms),
                *limits,
            ),
        };
        let order = order
            .into_iter()
            .filter(|&i| i < self.candidates.len())
            .collect();
        self.start = Some(StartLoop {
            attempts: StartAttempts::with_limits(order, limits, now_ms),
            suspended,
            in_flight: None,
            swap_from,
        });
        self.step_start();
    }

    /// Asks the start loop for its next step: a try, or its end.
    fn step_start(&mut self) {
        let Some(start) = self.start.as_mut() else {
            return;
        };
        if start.in_flight.is_some() {
            return;
        }
        match start.attempts.poll_next() {
            Next::Try(idx) => {
                start.in_flight = Some(idx);
                let uri = self.candidates[idx].uri.clone();
                self.outputs.push_back(Output::Start {
                    candidate: idx,
                    uri,
                });
            }
            Next::GiveUp(end) => {
                info!(
                    message = "No orchestrator accepted the stream.",
                    tries = end.tries
                );
                let limits = match &self.policy {
                    Policy::Network { limits, .. } => *limits,
                    Policy::Direct | Policy::Gateway { .. } => StartLimits::default(),
                };
                let none = NoneAvailable {
                    tries: end.tries,
                    message: end.message(limits.retry_timeout_ms),
                    trace: end.emits_no_orchestrators_trace(),
                };
                self.start_failed(none);
            }
            Next::Started(_) | Next::Wait | Next::Rejected(_) => {
                // A start without a job (Started is only reported together with the job) or a
                // rejection: nobody serves.
                let tries = start.attempts.tries();
                self.start_failed(NoneAvailable::out_of_step(tries));
            }
        }
    }

    fn handle_start_result(
        &mut self,
        candidate: usize,
        info: StartInfo,
        result: Result<(), StartFailure>,
    ) {
        let now_ms = self.rel_ms(self.now_us);
        let Some(start) = self.start.as_mut() else {
            return;
        };
        if start.in_flight != Some(candidate) {
            warn!(
                message = "A start result arrived for no try in flight.",
                candidate
            );
            return;
        }
        start.in_flight = None;
        self.last_start = info.clone();
        let attempt = match &result {
            Ok(()) => AttemptResult::Ok,
            Err(f) => f.attempt_result(),
        };
        let uri = self.candidates[candidate].uri.clone();
        if let Err(failure) = &result {
            let f = failure.failure();
            info!(message = "Job start refused.", uri, class = ?f.class, detail = %f.detail);
            if !matches!(self.policy, Policy::Network { .. }) {
                // A direct session (or one through a gateway) has one candidate: its failure
                // is the session's.
                self.start = None;
                self.end(End::Failed(f));
                return;
            }
        }
        match attempt {
            AttemptResult::Busy => {
                start.suspended.suspend(&uri, now_ms, SuspendReason::Busy);
            }
            AttemptResult::Err => {
                start
                    .suspended
                    .suspend(&uri, now_ms, SuspendReason::StartFailed);
            }
            _ => {}
        }
        if let Err(e) = start
            .attempts
            .handle_attempt_result(candidate, attempt, now_ms)
        {
            // Invariant: the try just reported is the one in flight; if not, stop rather
            // than loop.
            warn!(message = "Start loop out of step.", error = %e);
            let tries = start.attempts.tries();
            self.start_failed(NoneAvailable::out_of_step(tries));
            return;
        }
        if result.is_ok() {
            self.started(candidate, info);
        } else {
            self.step_start();
        }
    }

    /// A start loop found nobody: at start the session ends; after a swap the monitor decides.
    fn start_failed(&mut self, none: NoneAvailable) {
        let Some(start) = self.start.take() else {
            return;
        };
        if none.trace {
            let observation = Observation::NoOrchestratorsAvailable {
                at_unix_ms: self.unix_ms(self.now_us),
                stream: self.stream.clone(),
                tries: none.tries,
                message: none.message.clone(),
            };
            self.observe(observation);
        }
        match start.swap_from {
            None => self.end(End::NoneAvailable(none)),
            Some((from, _)) => {
                self.stop_share(from);
                let now_ms = self.rel_ms(self.now_us);
                if let Some(m) = self.monitor() {
                    for (uri, s) in start.suspended.iter() {
                        m.suspensions_mut().suspend(uri, s.at_ms, s.reason);
                    }
                    if let Err(e) = m.handle_reselection_failed(now_ms) {
                        warn!(message = "Reselection failed without a pending swap.", error = %e);
                    }
                }
            }
        }
    }

    /// `candidate` accepted the job: it serves from now.
    fn started(&mut self, candidate: usize, info: StartInfo) {
        let Some(start) = self.start.take() else {
            return;
        };
        let now = self.now_us;
        let now_ms = self.rel_ms(now);
        let uri = self.candidates[candidate].uri.clone();
        let mut replay = None;
        match &mut self.policy {
            Policy::Direct | Policy::Gateway { .. } => {}
            Policy::Network { monitor, swap, .. } => match monitor {
                None => {
                    let mut m = SwapMonitor::with_config(uri.clone(), *swap, now_ms);
                    for (u, s) in start.suspended.iter() {
                        m.suspensions_mut().suspend(u, s.at_ms, s.reason);
                    }
                    *monitor = Some(Box::new(m));
                }
                Some(m) => {
                    for (u, s) in start.suspended.iter() {
                        m.suspensions_mut().suspend(u, s.at_ms, s.reason);
                    }
                    if let Err(e) = m.handle_swap_completed(uri.clone(), now_ms) {
                        warn!(message = "Swap completed without a pending swap.", error = %e);
                    }
                    replay = m.params_to_replay().map(Bytes::copy_from_slice);
                }
            },
        }
        if let Some((from, _)) = start.swap_from {
            // The share left kept reading until now so that its last frames count for the
            // freeze; a frame still in flight from it is no longer wanted.
            self.stop_share(from);
        }
        let network = self.is_network();
        let share = self.shares.len();
        let orchestrator = info.orchestrator.clone().unwrap_or(OrchestratorRef {
            address: None,
            uri: uri.clone(),
            cert_sha256: None,
            cert_trust: None,
            address_check: None,
        });
        self.shares.push(Share {
            candidate,
            orchestrator,
            gpu: info.gpu.clone(),
            get_orchestrator_ms: info.get_orchestrator_ms,
            job_start_ms: info.job_start_ms,
            from_unix_ms: self.unix_ms(now),
            to_unix_ms: None,
            end_us: None,
            ended_by: None,
            broke: None,
            recorder: network.then(|| SessionRecorder::new(MeasureConfig::default())),
            demux: TsDemuxer::new(),
            have_resolution: false,
            segment_bytes: 0,
            last_output_pts: None,
            output_ended: false,
            media_errors: MediaErrors::default(),
            segments_in_flight: 0,
            stopped: false,
            control_dead: false,
            // A gateway keeps its own control channel alive: updates are all it is sent.
            next_keepalive_us: if self.gateway().is_some() {
                u64::MAX
            } else {
                now.saturating_add(self.plan.keepalive_interval_us)
            },
            first_ingest_sent: false,
            first_output_seen: false,
            steps: StepProbe::with_phase(self.plan.content_check_phase),
            handed_over: false,
            watch: OverlayWatch::default(),
            last_code: None,
            last_at_us: None,
            sampled: VecDeque::new(),
        });
        if self.plan.watch_overlay {
            self.shares[share].watch.open_start();
        }
        self.current = Some(share);
        info!(message = "Orchestrator serving.", uri, share);
        self.outputs.push_back(Output::OpenShare {
            share,
            candidate,
            retry_reads: network,
        });
        self.events_opened_us.get_or_insert(now);
        if let Some(message) = replay {
            self.outputs.push_back(Output::Control {
                share,
                message,
                tries: CONTROL_REPLAY_TRIES,
            });
        }
        if self.publisher.is_none() {
            self.publisher = Some(Publisher {
                start_us: now,
                end_us: now.saturating_add(self.plan.duration_us),
                next_seq: 0,
                open: None,
            });
            self.phase = Phase::Publishing;
        }
        // Updates already due belong to the time nobody served; an orchestrator that takes
        // over gets the ones still ahead.
        let publish_start = self.publisher.as_ref().map_or(now, |p| p.start_us);
        let offsets = &self.plan.params_update_offsets_us;
        while self.next_update < offsets.len()
            && publish_start.saturating_add(offsets[self.next_update]) < now
        {
            self.next_update += 1;
        }
        if let Some((from, cause)) = start.swap_from {
            let from = self.share_info(from);
            if let Some(from) = from {
                let observation = Observation::Swap {
                    at_unix_ms: self.unix_ms(now),
                    stream: self.stream.clone(),
                    from,
                    to: OrchestratorInfo {
                        address: info.orchestrator.as_ref().and_then(|o| o.address.clone()),
                        url: uri,
                    },
                    cause: cause.message().to_string(),
                };
                self.observe(observation);
            }
        }
    }

    fn stop_share(&mut self, share: ShareId) {
        if let Some(s) = self.shares.get_mut(share)
            && !s.stopped
        {
            s.stopped = true;
            self.outputs.push_back(Output::StopShare { share });
        }
    }

    // ---- Input channel --------------------------------------------------------------------

    fn handle_segment_done(&mut self, share: ShareId, result: Result<(), PublishError>) {
        if let Some(s) = self.shares.get_mut(share) {
            s.segments_in_flight = s.segments_in_flight.saturating_sub(1);
        }
        match &self.policy {
            Policy::Direct | Policy::Gateway { .. } => {
                if let Err(e) = result {
                    self.end(End::Failed(e.failure()));
                }
            }
            Policy::Network { .. } => {
                let now_ms = self.rel_ms(self.now_us);
                let gone = matches!(&result, Err(e) if e.gone);
                self.if_current(share, |m| {
                    m.handle_input_segment_finished(now_ms);
                    if gone {
                        m.handle_publish_not_found(now_ms);
                    }
                });
            }
        }
    }

    /// The share that takes the segment beginning now, or `None` to skip it.
    fn choose_input_share(&mut self) -> Option<ShareId> {
        let current = self.current?;
        let now_ms = self.rel_ms(self.now_us);
        if let Some(m) = self.monitor() {
            let before = (m.records().len(), m.is_ended());
            m.handle_input_segment_started(now_ms);
            if (m.records().len(), m.is_ended()) != before {
                // The slow-orchestrator check fired: this segment is not sent.
                return None;
            }
        }
        let first = self
            .shares
            .get_mut(current)
            .is_some_and(|s| !std::mem::replace(&mut s.first_ingest_sent, true));
        if first {
            let info = self.share_info(current);
            self.trace("gateway_send_first_ingest_segment", info);
        }
        Some(current)
    }

    /// Emits every segment start and frame due by now.
    fn run_publisher(&mut self) {
        let clip = self.plan.clip;
        loop {
            let Some(p) = self.publisher.as_mut() else {
                return;
            };
            if let Some(open) = p.open.as_mut() {
                if open.next_index < clip.frames_per_segment {
                    let due = open.start_us + clip.frame_offset_us(open.next_index);
                    if due > self.now_us {
                        return;
                    }
                    let index = open.next_index;
                    open.next_index += 1;
                    if let Some(share) = open.share {
                        self.outputs.push_back(Output::WriteFrame { share, index });
                    }
                } else {
                    if let Some(share) = open.share {
                        self.outputs.push_back(Output::EndSegment { share });
                    }
                    p.open = None;
                }
                continue;
            }
            let seg_start = p.start_us + p.next_seq.saturating_mul(clip.segment_us);
            if seg_start >= p.end_us {
                if self.phase == Phase::Publishing {
                    self.phase = Phase::Flushing {
                        since_us: self.now_us,
                    };
                }
                return;
            }
            if seg_start > self.now_us {
                return;
            }
            let seq = p.next_seq;
            p.next_seq += 1;
            let share = self.choose_input_share();
            if let Some(s) = share.and_then(|s| self.shares.get_mut(s)) {
                s.segments_in_flight += 1;
            }
            self.outputs.push_back(Output::BeginSegment { share, seq });
            if let Some(p) = self.publisher.as_mut() {
                p.open = Some(OpenSegment {
                    share,
                    start_us: seg_start,
                    next_index: 0,
                });
            }
        }
    }

    fn next_publish_us(&self) -> Option<u64> {
        if self.phase != Phase::Publishing {
            return None;
        }
        let p = self.publisher.as_ref()?;
        let clip = self.plan.clip;
        Some(match &p.open {
            Some(open) if open.next_index < clip.frames_per_segment => {
                open.start_us + clip.frame_offset_us(open.next_index)
            }
            Some(_) => self.now_us,
            None => (p.start_us + p.next_seq.saturating_mul(clip.segment_us)).min(p.end_us),
        })
    }

    // ---- Output and events ----------------------------------------------------------------

    fn handle_output_bytes(&mut self, share: ShareId, bytes: &[u8], at_us: u64) {
        if !self.live(share) {
            return;
        }
        let s = &mut self.shares[share];
        s.segment_bytes += bytes.len() as u64;
        s.demux.handle_bytes(bytes, at_us);
        self.drain_frames(share);
    }

    fn handle_output_segment_end(&mut self, share: ShareId) {
        if !self.live(share) {
            return;
        }
        let now = self.now_us;
        let s = &mut self.shares[share];
        s.demux.finish(now);
        self.drain_frames(share);
        let s = &mut self.shares[share];
        let bytes = std::mem::take(&mut s.segment_bytes);
        // The recorder adds what it is given: the demuxer's totals are kept and handed over
        // once, at the end.
        s.media_errors = media_errors(s.demux.stats());
        let first = !std::mem::replace(&mut s.first_output_seen, true);
        self.each_recorder(share, |r| r.handle_segment_received(bytes, now));
        let now_ms = self.rel_ms(now);
        self.if_current(share, |m| m.handle_output_segment(now_ms));
        if first {
            let info = self.share_info(share);
            self.trace("gateway_receive_first_processed_segment", info);
        }
    }

    fn drain_frames(&mut self, share: ShareId) {
        loop {
            let s = &mut self.shares[share];
            let Some(frame) = s.demux.poll_frame() else {
                break;
            };
            if frame.stream_type != STREAM_TYPE_H264 {
                continue;
            }
            let Some(pts) = frame.pts else { continue };
            self.take_frame(share, pts, frame.first_byte_us, frame.keyframe, frame.data);
        }
    }

    /// Gateway mode: one output access unit. Output that comes back after a stall may be a
    /// new runner loading (the gateway swapped orchestrators, which a viewer sees only as a
    /// freeze): it is watched for the loading overlay as after a params update.
    fn handle_output_frame(&mut self, share: ShareId, pts: u64, at_us: u64, data: Bytes) {
        if !self.live(share) {
            return;
        }
        let stall_us = self.recorder.stall_threshold_us();
        let resumed = self.shares[share]
            .last_at_us
            .replace(at_us)
            .is_some_and(|last| at_us.saturating_sub(last) > stall_us);
        if resumed && self.plan.watch_overlay {
            if self.shares[share].watch.expired(at_us) {
                self.close_watch(share);
            }
            let until = at_us.saturating_add(OVERLAY_WATCH_AFTER_UPDATE_US);
            self.shares[share].watch.open_update(until, None);
        }
        let keyframe = lvt_media::h264::contains_idr(&data);
        self.take_frame(share, pts, at_us, keyframe, data);
    }

    /// One output frame of `share`, stamped `pts`, that arrived at `at_us`: the swap monitor
    /// sees it, the content check and the loading overlay watch may ask the driver to look at
    /// it, and it counts as output (once its picture was read, while a watch holds it).
    fn take_frame(&mut self, share: ShareId, pts: u64, at_us: u64, keyframe: bool, data: Bytes) {
        // Frames still decoded from the orchestrator being left count for the freeze (the
        // last frame before the swap), so they are reported while the swap runs too.
        let reporting = self.current == Some(share)
            || (self.current.is_none() && self.shares.len().checked_sub(1) == Some(share));
        let s = &mut self.shares[share];
        let sps = (!s.have_resolution && keyframe)
            .then(|| lvt_media::h264::find_sps(&data))
            .flatten();
        if sps.is_some() {
            s.have_resolution = true;
        }
        s.last_output_pts = Some(s.last_output_pts.map_or(pts, |p| p.max(pts)));
        let mut held = HeldFrame {
            pts,
            at_us,
            keyframe,
            picture: data,
            sps,
            look: false,
        };
        // go-livepeer cannot tell an overlay from output: its swap decisions see both.
        let at_ms = self.rel_ms(held.at_us);
        if reporting && let Some(m) = self.monitor() {
            m.handle_output_frame(at_ms);
        }
        // Through a gateway every decoded picture is a content sample: every frame, or the
        // keyframes alone.
        let gateway = self.gateway();
        let step_look = match gateway {
            Some(every_frame) => every_frame || keyframe,
            None => self.step_check(share, pts, held.at_us),
        };
        self.watch_for_update(share, held.at_us);
        if !self.shares[share].watch.is_open() {
            let kept = gateway.is_none()
                && self.shares[share]
                    .steps
                    .wants_frames(self.plan.content_check_every);
            if gateway == Some(false) && step_look {
                self.await_sample(share, pts, held.at_us);
                self.outputs.push_back(Output::LookAlone {
                    share,
                    pts,
                    picture: held.picture.clone(),
                });
            } else if step_look || kept {
                if gateway.is_some() {
                    self.await_sample(share, pts, held.at_us);
                }
                self.shares[share].handed_over = true;
                self.outputs.push_back(Output::ClassifyFrame {
                    share,
                    pts,
                    keyframe: held.keyframe,
                    picture: held.picture.clone(),
                    look: step_look,
                });
            }
            self.count_output(share, held);
            return;
        }
        held.look = self.shares[share].watch.looks_at_everything()
            || self.arrived_early(share, pts, held.at_us);
        if gateway.is_some() {
            self.await_sample(share, pts, held.at_us);
        }
        self.outputs.push_back(Output::ClassifyFrame {
            share,
            pts,
            keyframe: held.keyframe,
            picture: held.picture.clone(),
            look: held.look || step_look,
        });
        self.shares[share].handed_over = true;
        let watch = &mut self.shares[share].watch;
        if held.look || watch.is_holding() {
            watch.hold(held);
        } else {
            self.count_output(share, held);
        }
    }

    /// Gateway mode: the picture of output frame `pts` of `share`, which arrived at `at_us`, is
    /// a content sample once its answer comes. Answers that never come (a decoder gone) do not
    /// pile up: past [`MAX_SAMPLES_AWAITED`] the oldest is given up.
    fn await_sample(&mut self, share: ShareId, pts: u64, at_us: u64) {
        let sampled = &mut self.shares[share].sampled;
        sampled.push_back((pts, at_us));
        if sampled.len() > MAX_SAMPLES_AWAITED {
            sampled.pop_front();
        }
    }

    /// Ends an expired watch of `share` and opens one ahead of a params update that is due
    /// soon, on the share that will receive it.
    fn watch_for_update(&mut self, share: ShareId, at_us: u64) {
        if self.shares[share].watch.expired(at_us) {
            self.close_watch(share);
        }
        // Through a gateway the watch opens with the update (below, `run_control`): keeping
        // frames ahead of it serves a decoder that starts at the keyframe before the update,
        // and there a decoder of the share's own starts with the watch.
        if !self.plan.watch_overlay
            || self.current != Some(share)
            || self.shares[share].watch.is_open()
            || self.gateway().is_some()
        {
            return;
        }
        let due = self.publisher.as_ref().and_then(|p| {
            self.plan
                .params_update_offsets_us
                .get(self.next_update)
                .map(|offset| p.start_us.saturating_add(*offset))
        });
        if let Some(due) = due
            && at_us.saturating_add(OVERLAY_WATCH_BEFORE_UPDATE_US) >= due
        {
            let until = due.max(at_us).saturating_add(OVERLAY_WATCH_AFTER_UPDATE_US);
            let median = self.share_recorder(share).latency_p50_us();
            self.shares[share].watch.open_update(until, median);
        }
    }

    /// The recorder of `share`'s own figures: its own in network mode, the session's in a
    /// direct session.
    fn share_recorder(&self, share: ShareId) -> &SessionRecorder {
        self.shares[share]
            .recorder
            .as_ref()
            .unwrap_or(&self.recorder)
    }

    /// Whether output frame `pts` arrived suspiciously early after its input: more than half
    /// a frame interval before `share`'s median latency when its watch opened. A loading
    /// overlay skips inference; processed frames gather around the median. Without a median
    /// (or a send time) every frame is suspect.
    fn arrived_early(&self, share: ShareId, pts: u64, at_us: u64) -> bool {
        // A gateway's timestamps name no input frame.
        if self.gateway().is_some() {
            return true;
        }
        let sent_us = self.share_recorder(share).sent_at_us(pts);
        let (Some(sent_us), Some(p50_us)) = (sent_us, self.shares[share].watch.median_us()) else {
            return true;
        };
        let half_frame_us = 500_000 / u64::from(self.plan.clip.fps.max(1));
        at_us.saturating_sub(sent_us).saturating_add(half_frame_us) < p50_us
    }

    /// Output frame `pts` of `share` arrived at `at_us`: whether the content check wants the
    /// driver to look at it ([`StepProbe`]). A check that gave up is recorded.
    fn step_check(&mut self, share: ShareId, pts: u64, at_us: u64) -> bool {
        let every = self.plan.content_check_every;
        if every == 0 {
            return false;
        }
        let bright = self.plan.clip.bright_of(pts);
        // Past one run of the marker its state repeats: looking further proves nothing.
        let max_frames = self.plan.clip.frames_per_segment.max(1);
        let (look, given_up) = self.shares[share]
            .steps
            .handle_frame(pts, at_us, bright, every, max_frames);
        if let Some(sample) = given_up {
            self.record_step_sample(share, sample);
            self.end_hand_over_if_idle(share);
        }
        look
    }

    /// A finished content check of `share` goes to its recorders.
    fn record_step_sample(&mut self, share: ShareId, sample: StepSample) {
        let tolerance_us = self.plan.clip.content_tolerance_us();
        self.each_recorder(share, |r| match sample {
            StepSample::Code { pts, at_us, code } => {
                r.handle_content_sample(pts, at_us, Some(code), None, tolerance_us);
            }
            StepSample::Luminance {
                pts,
                at_us,
                bright,
                found_at_us,
            } => r.handle_step_sample(pts, at_us, bright, found_at_us, tolerance_us),
        });
    }

    /// An output frame counts: the recorders measure it.
    fn count_output(&mut self, share: ShareId, frame: HeldFrame) {
        let size = frame.picture.len();
        self.each_recorder(share, |r| {
            if let Some(sps) = &frame.sps {
                r.handle_resolution(sps.width, sps.height);
            }
            r.handle_output_frame(frame.pts, frame.at_us, frame.keyframe, size);
        });
    }

    /// The driver's look at a frame: the content check reads it, and a held frame counts as
    /// overlay or as output.
    fn handle_frame_look(&mut self, share: ShareId, pts: u64, look: Option<PictureLook>) {
        if self.gateway().is_some() {
            self.handle_gateway_look(share, pts, look);
            return;
        }
        let code = self.plan.clip.code_of(pts);
        let Some(s) = self.shares.get_mut(share) else {
            return;
        };
        if let Some(sample) = s.steps.handle_look(pts, look, self.plan.read_frame_numbers) {
            self.record_step_sample(share, sample);
            self.end_hand_over_if_idle(share);
        }
        let s = &mut self.shares[share];
        if let Some(answered) = s.watch.answer(pts, look, Expected::Code(code)) {
            self.take_verdict(share, answered, None);
        }
    }

    /// A held frame's verdict: an overlay counts apart, anything else as output (through a
    /// gateway with `sample`, its picture, as a content sample); the watch closes with it if it
    /// should, else the frames waiting behind it that no answer is asked for go on.
    fn take_verdict(
        &mut self,
        share: ShareId,
        (frame, verdict, closes): (HeldFrame, Verdict, bool),
        sample: Option<Option<PictureLook>>,
    ) {
        match verdict {
            Verdict::Overlay => {
                // The output's size is the processed pictures': read it from the next keyframe.
                if frame.sps.is_some() {
                    self.shares[share].have_resolution = false;
                }
                let at_us = frame.at_us;
                self.each_recorder(share, |r| r.handle_overlay_frame(at_us));
            }
            Verdict::Processed | Verdict::Unknown => {
                let (pts, at_us) = (frame.pts, frame.at_us);
                self.count_output(share, frame);
                if let Some(look) = sample {
                    self.sample_picture(share, pts, at_us, look);
                }
            }
        }
        if closes {
            self.close_watch(share);
        } else {
            for frame in self.shares[share].watch.release_unasked() {
                self.count_output(share, frame);
            }
        }
    }

    /// Gateway mode: the picture of an output frame. A held frame counts as overlay or as
    /// output, as in the other modes but against the last frame number seen (the timestamps
    /// name no input frame); every picture that is not the overlay is a content sample.
    fn handle_gateway_look(&mut self, share: ShareId, pts: u64, look: Option<PictureLook>) {
        let Some(s) = self.shares.get_mut(share) else {
            return;
        };
        let sampled = s
            .sampled
            .iter()
            .position(|(asked, _)| *asked == pts)
            .and_then(|i| s.sampled.remove(i));
        let expected = Expected::Rewritten { last: s.last_code };
        match s.watch.answer(pts, look, expected) {
            Some(answered) => self.take_verdict(share, answered, Some(look)),
            // Asked outside a watch, or held by one that closed before the answer came.
            None => {
                if let Some((_, at_us)) = sampled {
                    self.sample_picture(share, pts, at_us, look);
                }
            }
        }
    }

    /// Gateway mode: a decoded output picture (`None`: undecodable) as a content sample: the
    /// frame number it shows (unless the plan judges by the segment marker alone) and its
    /// segment marker, matched to the input frame that carried them.
    fn sample_picture(&mut self, share: ShareId, pts: u64, at_us: u64, look: Option<PictureLook>) {
        let shown = look.and_then(|l| l.code);
        if let Some(s) = self.shares.get_mut(share)
            && shown.is_some()
        {
            s.last_code = shown;
        }
        let code = shown.filter(|_| self.plan.read_frame_numbers);
        let marker = look.and_then(|l| l.marker);
        let tolerance_us = self.plan.clip.content_tolerance_us();
        self.each_recorder(share, |r| {
            r.handle_content_sample(pts, at_us, code, marker, tolerance_us);
        });
    }

    /// Ends `share`'s watch: the frames still held count as output.
    fn close_watch(&mut self, share: ShareId) {
        let Some(s) = self.shares.get_mut(share) else {
            return;
        };
        if !s.watch.is_open() {
            return;
        }
        for frame in s.watch.close() {
            self.count_output(share, frame);
        }
        self.end_hand_over_if_idle(share);
    }

    /// Lets the driver's decoder of `share` go when no answer is awaited (no overlay watch, no
    /// open content check): a decoder holds megabytes of pictures. While the content check still
    /// wants frames, the ones kept since their keyframe stay, so that a later check decodes from
    /// it with a fresh decoder; otherwise they go too.
    fn end_hand_over_if_idle(&mut self, share: ShareId) {
        let every = self.plan.content_check_every;
        let gateway = self.gateway();
        if gateway == Some(true) {
            // Every frame is decoded: the decoder stays for the next.
            return;
        }
        let s = &mut self.shares[share];
        if s.handed_over && !s.watch.is_open() && !s.steps.is_searching() {
            let keep_frames = gateway.is_none() && s.steps.wants_frames(every);
            s.handed_over = keep_frames;
            self.outputs
                .push_back(Output::ClassifyEnd { share, keep_frames });
        }
    }

    fn handle_output_end(&mut self, share: ShareId, end: ChannelEnd) {
        if !self.live(share) {
            return;
        }
        let now_ms = self.rel_ms(self.now_us);
        match (&self.policy, end) {
            // A direct session does not retry: any end of the subscription is its end.
            (Policy::Direct | Policy::Gateway { .. }, ChannelEnd::Ended | ChannelEnd::Error) => {
                self.shares[share].output_ended = true;
            }
            (Policy::Direct | Policy::Gateway { .. }, ChannelEnd::CopyError) => {}
            (Policy::Network { .. }, ChannelEnd::Ended) => {
                self.shares[share].output_ended = true;
                // The subscriber cannot tell 404 from end of stream; both swap, with the
                // same class.
                self.if_current(share, |m| m.handle_subscribe_eos(now_ms));
            }
            (Policy::Network { .. }, ChannelEnd::Error) => {
                self.if_current(share, |m| m.handle_subscribe_error(now_ms));
            }
            (Policy::Network { .. }, ChannelEnd::CopyError) => {
                self.if_current(share, |m| m.handle_output_copy_error(now_ms));
            }
        }
    }

    fn handle_event(&mut self, share: ShareId, doc: &[u8], at_us: u64) {
        if !self.live(share) {
            return;
        }
        self.each_recorder(share, |r| r.handle_event_bytes(doc, at_us));
        if !self.is_network() {
            return;
        }
        let now_ms = at_us.saturating_sub(self.t0_us) / 1000;
        match serde_json::from_slice::<Value>(doc) {
            Ok(event) => {
                self.if_current(share, |m| m.handle_event(now_ms));
                if let Some(orchestrator) = self.share_info(share) {
                    let observation = Observation::RunnerEvent {
                        at_unix_ms: self.unix_ms(self.now_us),
                        stream: self.stream.clone(),
                        orchestrator,
                        event,
                    };
                    self.observe(observation);
                }
            }
            Err(_) => self.if_current(share, |m| m.handle_event_malformed(now_ms)),
        }
    }

    // ---- Time -----------------------------------------------------------------------------

    /// Everything time or the last input may have made due: publishing, control, the monitor's
    /// decisions or the watchdog, the flush and the drain.
    fn drive(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        let now = self.now_us;
        let now_ms = self.rel_ms(now);
        if let Some(m) = self.monitor() {
            m.handle_tick(now_ms);
        }
        self.run_publisher();
        self.run_control();
        if self.handle_decisions() {
            return;
        }
        if let Some(failure) = self.watchdog() {
            self.end(End::Failed(failure));
            return;
        }
        match self.phase {
            Phase::Flushing { since_us } => {
                let in_flight: u32 = self.shares.iter().map(|s| s.segments_in_flight).sum();
                let limit_passed =
                    self.is_network() && now >= since_us.saturating_add(FLUSH_LIMIT_US);
                if in_flight == 0 || limit_passed {
                    self.phase = Phase::Draining { since_us: now };
                    self.check_drain();
                }
            }
            Phase::Draining { .. } => self.check_drain(),
            _ => {}
        }
    }

    /// Carries out the monitor's decisions; true when the session ended.
    fn handle_decisions(&mut self) -> bool {
        loop {
            let Some(decision) = self.monitor().and_then(SwapMonitor::poll_decision) else {
                return false;
            };
            match decision {
                Decision::End { reason, at_ms } => {
                    warn!(message = "Session ended by the gateway.", reason = %reason.message(), at_ms);
                    // The orchestrator serving when the limit was reached failed as surely as
                    // the ones swapped away before it; without a swap to carry the failure, the
                    // share carries it itself.
                    if let Some(s) = self.current.and_then(|c| self.shares.get_mut(c)) {
                        s.broke = Some(reason.failure_class());
                    }
                    self.end(End::Failed(Failure {
                        class: reason.failure_class(),
                        detail: reason.message(),
                    }));
                    return true;
                }
                Decision::Swap { cause, at_ms, .. } => self.swap(cause, at_ms),
            }
        }
    }

    /// Leaves the serving orchestrator (its input channel ends; its readers go on until the
    /// new one serves, for the freeze), and selects again without the suspended ones.
    fn swap(&mut self, cause: SwapCause, at_ms: u64) {
        let now = self.now_us;
        let Some(old) = self.current.take() else {
            return;
        };
        let to_unix = self.unix_ms(now);
        let from = self.share_info(old);
        if let Some(s) = self.shares.get_mut(old) {
            s.end_us = Some(now);
            s.to_unix_ms = Some(to_unix);
            s.ended_by = Some(cause);
        }
        warn!(message = "Swapping orchestrators.", cause = cause.as_str(), at_ms, from = ?from.as_ref().map(|f| &f.url));
        // Ending the old job's input channel is how go-livepeer stops an orchestrator it leaves.
        self.outputs.push_back(Output::LeaveShare { share: old });
        let suspended = self
            .monitor()
            .map(|m| m.suspensions().clone())
            .unwrap_or_default();
        self.begin_start(suspended, Some((old, cause)));
    }

    /// A direct session's watchdog (and a gateway session's): output or events silent for
    /// longer than allowed.
    fn watchdog(&self) -> Option<Failure> {
        if self.is_network() || self.phase == Phase::Starting {
            return None;
        }
        let now = self.now_us;
        let t = &self.plan.timeouts;
        let duration = |us: u64| std::time::Duration::from_micros(us);
        match (self.first_input_us, self.recorder.last_output_at_us()) {
            (Some(first_in), None) if now.saturating_sub(first_in) > t.first_output_us => {
                return Some(self.no_first_output(duration(t.first_output_us)));
            }
            (_, Some(last_out)) if now.saturating_sub(last_out) > t.output_gap_us => {
                return Some(Failure {
                    class: FailureClass::OutputTimeout,
                    detail: format!(
                        "output stopped for longer than {:?}",
                        duration(t.output_gap_us)
                    ),
                });
            }
            _ => {}
        }
        // A gateway's status route is polled: its silence says nothing of the runner.
        if self.gateway().is_some() {
            return None;
        }
        let since = self
            .recorder
            .last_event_at_us()
            .or(self.events_opened_us)
            .unwrap_or(now);
        (now.saturating_sub(since) > t.events_us).then(|| Failure {
            class: FailureClass::EventsTimeout,
            detail: format!("no event for longer than {:?}", duration(t.events_us)),
        })
    }

    /// No output frame within `limit` of the first input: through a gateway, a playback that
    /// never came up is the gateway refusing it; otherwise the orchestrator's (or the gateway's)
    /// output timed out.
    fn no_first_output(&self, limit: std::time::Duration) -> Failure {
        let loading = loading(&self.recorder);
        if self.gateway().is_none() {
            return Failure {
                class: FailureClass::OutputTimeout,
                detail: format!("no output frame within {limit:?} of the first input{loading}"),
            };
        }
        if self.playing {
            Failure {
                class: FailureClass::NoOutput,
                detail: format!("no output frame within {limit:?} of the first input{loading}"),
            }
        } else {
            Failure {
                class: FailureClass::WhepRefused,
                detail: format!(
                    "the playback did not start within {limit:?} of the first input (WHEP \
                     answered 404 {} times)",
                    self.playback_not_found
                ),
            }
        }
    }

    fn watchdog_deadline(&self) -> Option<u64> {
        if self.is_network() || self.phase == Phase::Starting {
            return None;
        }
        let t = &self.plan.timeouts;
        let output = match (self.first_input_us, self.recorder.last_output_at_us()) {
            (Some(first_in), None) => Some(first_in.saturating_add(t.first_output_us)),
            (_, Some(last_out)) => Some(last_out.saturating_add(t.output_gap_us)),
            (None, None) => None,
        };
        let events = self
            .recorder
            .last_event_at_us()
            .or(self.events_opened_us)
            .filter(|_| self.gateway().is_none())
            .map(|since| since.saturating_add(t.events_us));
        // The watchdog fires once the silence is longer than the limit.
        [output, events]
            .into_iter()
            .flatten()
            .min()
            .map(|d| d.saturating_add(1))
    }

    /// The drain ends when the output caught up with the last input PTS, the output channel
    /// ended, no output came for [`DRAIN_IDLE_US`] (the orchestrator may have dropped the last
    /// frames, for example to lower its frame rate), or the drain timeout passed.
    fn check_drain(&mut self) {
        let Phase::Draining { since_us } = self.phase else {
            return;
        };
        let now = self.now_us;
        let Some(current) = self.current else {
            // Nobody serves (a swap is under way): there is no output to wait for.
            self.end(End::Completed);
            return;
        };
        let s = &self.shares[current];
        // A gateway's output timestamps name no input frame: only the idle time and the drain
        // timeout end its drain.
        let caught_up = self.gateway().is_none()
            && matches!((self.last_input_pts, s.last_output_pts), (Some(i), Some(o)) if o >= i);
        if caught_up || s.output_ended {
            self.end(End::Completed);
            return;
        }
        let idle_since = self
            .drain_recorder(current)
            .last_output_at_us()
            .unwrap_or(0)
            .max(since_us);
        if now.saturating_sub(idle_since) > DRAIN_IDLE_US
            || now >= since_us.saturating_add(self.plan.timeouts.drain_us)
        {
            self.end(End::Completed);
        }
    }

    /// The recorder holding the output the drain waits for: the serving share's.
    fn drain_recorder(&self, share: ShareId) -> &SessionRecorder {
        self.shares[share]
            .recorder
            .as_ref()
            .unwrap_or(&self.recorder)
    }

    fn drain_deadline(&self) -> Option<u64> {
        let Phase::Draining { since_us } = self.phase else {
            return None;
        };
        let current = self.current?;
        let idle_since = self
            .drain_recorder(current)
            .last_output_at_us()
            .unwrap_or(0)
            .max(since_us);
        Some(
            idle_since
                .saturating_add(DRAIN_IDLE_US + 1)
                .min(since_us.saturating_add(self.plan.timeouts.drain_us)),
        )
    }

    /// Keepalives and params updates to the serving share.
    fn run_control(&mut self) {
        let Some(current) = self.current else { return };
        let now = self.now_us;
        let interval = self.plan.keepalive_interval_us.max(1);
        let publish_start = self.publisher.as_ref().map(|p| p.start_us);
        loop {
            let s = &self.shares[current];
            if s.stopped || s.control_dead {
                return;
            }
            let update_due = publish_start.and_then(|start| {
                self.plan
                    .params_update_offsets_us
                    .get(self.next_update)
                    .map(|o| start.saturating_add(*o))
            });
            let keepalive_due = s.next_keepalive_us;
            match update_due {
                Some(due) if due <= now && due <= keepalive_due => {
                    self.next_update += 1;
                    let params = updated_params(&self.last_params);
                    let text = params.to_string();
                    if let Some(m) = self.monitor() {
                        m.handle_params(text.clone().into_bytes());
                    }
                    self.last_params = params;
                    self.outputs.push_back(Output::Control {
                        share: current,
                        message: Bytes::from(text),
                        tries: 1,
                    });
                    if self.plan.watch_overlay {
                        let until = now.saturating_add(OVERLAY_WATCH_AFTER_UPDATE_US);
                        let median = self
                            .share_recorder(current)
                            .latency_p50_us()
                            .filter(|_| self.gateway().is_none());
                        self.shares[current].watch.open_update(until, median);
                    }
                }
                _ if keepalive_due <= now => {
                    // Keepalives missed while the driver was late are not made up.
                    let s = &mut self.shares[current];
                    let missed = (now - keepalive_due) / interval + 1;
                    s.next_keepalive_us = keepalive_due.saturating_add(missed * interval);
                    self.outputs.push_back(Output::Control {
                        share: current,
                        message: Bytes::from_static(br#"{"keep":"alive"}"#),
                        tries: 1,
                    });
                }
                _ => return,
            }
        }
    }

    fn control_deadline(&self) -> Option<u64> {
        let current = self.current?;
        let s = &self.shares[current];
        if s.stopped || s.control_dead {
            return None;
        }
        let update = self.publisher.as_ref().and_then(|p| {
            self.plan
                .params_update_offsets_us
                .get(self.next_update)
                .map(|o| p.start_us.saturating_add(*o))
        });
        Some(update.map_or(s.next_keepalive_us, |u| u.min(s.next_keepalive_us)))
    }

    fn poll_timeout(&self) -> Option<u64> {
        if self.phase == Phase::Done {
            return None;
        }
        let monitor = match &self.policy {
            Policy::Network {
                monitor: Some(m), ..
            } => m
                .poll_timeout()
                .map(|ms| self.t0_us.saturating_add(ms.saturating_mul(1000))),
            _ => None,
        };
        let flush = match self.phase {
            Phase::Flushing { since_us } if self.is_network() => {
                Some(since_us.saturating_add(FLUSH_LIMIT_US))
            }
            _ => None,
        };
        [
            self.next_publish_us(),
            self.watchdog_deadline(),
            monitor,
            self.control_deadline(),
            self.drain_deadline(),
            flush,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- The end --------------------------------------------------------------------------

    /// Ends the session: fixes the measured period, closes the serving orchestrator's input
    /// channel and stops every share, then queues the record.
    fn end(&mut self, end: End) {
        if self.phase == Phase::Done {
            return;
        }
        let now = self.now_us;
        if let End::Failed(f) = &end {
            warn!(message = "Session failed.", class = ?f.class, detail = %f.detail);
        }
        // Frames still waiting for their pictures count as output once the share has shown
        // processed output; while it may still be loading they prove nothing and are dropped.
        for share in 0..self.shares.len() {
            let Some(s) = self.shares.get_mut(share) else {
                continue;
            };
            if !s.watch.is_open() {
                continue;
            }
            let (output, unread) = s.watch.close_at_end();
            for frame in output {
                self.count_output(share, frame);
            }
            for _ in 0..unread {
                self.each_recorder(share, SessionRecorder::handle_unread_frame);
            }
            self.end_hand_over_if_idle(share);
        }
        // Output is expected until the last input frame was sent: a gap between the last
        // output and that moment is a trailing stall. A session cut short ends where it was
        // cut.
        let measured_end_us = match (&end, &self.policy, self.last_input_us) {
            (End::Completed, _, Some(last)) => last,
            (End::Interrupted, Policy::Direct, Some(last)) => last,
            _ => now,
        };
        if let Some(current) = self.current.take() {
            let to_unix = self.unix_ms(now);
            if let Some(s) = self.shares.get_mut(current) {
                s.end_us = Some(measured_end_us);
                s.to_unix_ms = Some(to_unix);
            }
            self.outputs
                .push_back(Output::LeaveShare { share: current });
            let info = self.share_info(current);
            self.trace("gateway_ingest_stream_closed", info);
        }
        for share in 0..self.shares.len() {
            self.stop_share(share);
        }
        self.start = None;
        self.phase = Phase::Done;
        let interrupted = matches!(end, End::Interrupted);
        let mut fatal = match end {
            End::Completed | End::Interrupted => None,
            End::Failed(f) => Some(f),
            End::NoneAvailable(none) => Some(Failure {
                class: FailureClass::Capacity,
                detail: none.message,
            }),
        };
        // Through a gateway, a session that ran its course without processed output failed to
        // give any (the other modes judge by the bytes their output channel carried).
        if self.gateway().is_some()
            && fatal.is_none()
            && !interrupted
            && self.recorder.frames_received() == 0
        {
            fatal = Some(Failure {
                class: FailureClass::NoOutput,
                detail: format!(
                    "the session ended without a processed output frame{}",
                    loading(&self.recorder)
                ),
            });
        }
        let report = self.report(fatal, measured_end_us);
        self.outputs.push_back(Output::Finished(Box::new(Finished {
            report,
            interrupted,
        })));
    }

    fn report(&mut self, fatal: Option<Failure>, measured_end_us: u64) -> SessionReport {
        let ended_at_unix_ms = self.unix_ms(self.now_us);
        let template = self.template.clone();
        match &self.policy {
            Policy::Direct | Policy::Gateway { .. } => {
                let media = self
                    .shares
                    .first()
                    .map(|s| s.media_errors)
                    .unwrap_or_default();
                self.recorder.handle_media_errors(media);
                report::direct(
                    template,
                    &self.last_start,
                    &self.recorder,
                    measured_end_us,
                    fatal,
                    ended_at_unix_ms,
                )
            }
            Policy::Network { monitor, .. } => {
                let swaps = monitor
                    .as_ref()
                    .map(|m| m.records().to_vec())
                    .unwrap_or_default();
                let end_us = self
                    .shares
                    .last()
                    .and_then(|s| s.end_us)
                    .unwrap_or(self.now_us);
                let shares: Vec<ShareRecord<'_>> = self
                    .shares
                    .iter()
                    .map(|s| ShareRecord {
                        orchestrator: &s.orchestrator,
                        gpu: s.gpu.as_ref(),
                        get_orchestrator_ms: s.get_orchestrator_ms,
                        job_start_ms: s.job_start_ms,
                        from_unix_ms: s.from_unix_ms,
                        to_unix_ms: s.to_unix_ms.unwrap_or(ended_at_unix_ms),
                        end_us: s.end_us.unwrap_or(end_us),
                        ended_by: s.ended_by,
                        failure: s.ended_by.map(|c| c.failure_class()).or(s.broke),
                        recorder: s.recorder.as_ref(),
                        media_errors: s.media_errors,
                    })
                    .collect();
                report::network(report::NetworkRecord {
                    template,
                    session: &self.recorder,
                    shares: &shares,
                    swaps: &swaps,
                    origin_unix_ms: self.origin_unix_ms,
                    end_us,
                    fatal,
                    ended_at_unix_ms,
                })
            }
        }
    }
}

/// What a session without processed output saw instead, for its failure detail.
fn loading(recorder: &SessionRecorder) -> String {
    match (recorder.overlay_frames(), recorder.unread_frames()) {
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

fn media_errors(s: &DemuxStats) -> MediaErrors {
    MediaErrors {
        cc_errors: s.cc_errors,
        sync_losses: s.sync_losses,
        pes_errors: s.pes_errors,
        truncated_frames: s.truncated_frames,
    }
}
