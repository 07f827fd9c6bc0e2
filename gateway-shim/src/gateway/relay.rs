//! The relay: one live stream carried to orchestrators over trickle, as go-livepeer's gateway
//! carries a WHIP stream, through lvt's own selection and swap cores.
//!
//! A gateway that ingests video (the simulated gateway of `lvt sim gateway --orchestrator`)
//! hands each stream's access units to [`relay`], which
//!
//! - selects an orchestrator as go-livepeer does ([`GoLivepeerDefault`]'s order over the
//!   configured candidates, [`StartAttempts`]' tries and limits, failed candidates suspended for
//!   the stream) and starts the job on it (`crate::start`: GetOrchestrator, payment, job start);
//! - cuts the input into MPEG-TS segments as go-livepeer's `RTPSegmenter` does: a segment starts
//!   at a keyframe once the current one has lasted `LIVE_AI_MIN_SEG_DUR` (1 s) by the wall clock
//!   and by PTS; the stream's Opus packets go into the same segments as their own track, put in
//!   timestamp order with the video as go-livepeer does ([`Interleaver`]), and each unit is
//!   muxed and written to the segment's open `POST` when it is due, so nothing waits for a
//!   whole segment;
//! - reads the output channel, demuxes it and hands each access unit back with its PTS (which
//!   the WHEP side sends as RTP time), and reads the events channel: each `status` event is
//!   handed back as the stream's status (go-livepeer's status route shows the last one);
//! - sends keepalives and params updates on the control channel;
//! - feeds [`SwapMonitor`] what it observes and carries out its decisions: on a swap the job is
//!   left (its input channel closed), another orchestrator is selected with the left one
//!   suspended, the last params are replayed to it, and output resumes from it; when the chain
//!   limit is reached or nobody takes over, the stream ends.
//!
//! Every decision is the sans-IO cores'; this module only moves bytes and reports what it saw,
//! each observation stamped on one monotonic clock.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lvt_media::ts::{MuxConfig, MuxFrame, TsDemuxer, TsMuxer};
use lvt_wire::live::{JobUrls, OrchestratorUri};
use lvt_wire::payment::{PaymentConfig, SpendMeter};
use lvt_wire::trickle::{
    PublisherConfig, SocketPublisher, SocketSegmentWriter, SubscriberConfig, TrickleError,
    TricklePublisher, TrickleSubscriber,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info};

use super::interleave::{Interleaver, Unit};
use super::select::{
    AttemptResult, Candidate, GoLivepeerDefault, Next, SelectionStrategy, StartAttempts,
    StartLimits,
};
use super::swap::{Decision, EndReason, Suspensions, SwapConfig, SwapMonitor, SwapRecord};
use crate::session::StartFailure;
use crate::start::{JobRequest, StartedJob, start_job};

/// go-livepeer's `LIVE_AI_MIN_SEG_DUR` default: the shortest input segment.
pub const MIN_SEGMENT: Duration = Duration::from_secs(1);

/// The control channel's keepalive period (go-livepeer's `startControlPublish`).
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// Channels of the Opus track in the segments: go-livepeer's WHIP server registers Opus as
/// 48 kHz stereo only, so every negotiated audio track has two.
pub const OPUS_CHANNELS: u8 = 2;

/// How the relay reaches orchestrators.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The candidate orchestrators' service URIs, in the order discovery gave them.
    pub orchestrators: Vec<String>,
    /// The gateway's Ethereum address sent in GetOrchestrator.
    pub gateway_address: [u8; 20],
    pub payment: PaymentConfig,
    pub grpc_timeout: Duration,
    pub start_timeout: Duration,
    pub start: StartLimits,
    pub swap: SwapConfig,
    /// The shortest input segment ([`MIN_SEGMENT`]).
    pub min_segment: Duration,
    /// The control keepalive period ([`KEEPALIVE`]).
    pub keepalive: Duration,
}

impl RelayConfig {
    /// go-livepeer's defaults over `orchestrators`, offchain.
    pub fn new(orchestrators: Vec<String>) -> Self {
        Self {
            orchestrators,
            gateway_address: [0; 20],
            payment: PaymentConfig::default(),
            grpc_timeout: Duration::from_secs(5),
            start_timeout: Duration::from_secs(5),
            start: StartLimits::default(),
            swap: SwapConfig::default(),
            min_segment: MIN_SEGMENT,
            keepalive: KEEPALIVE,
        }
    }
}

/// One stream to relay.
#[derive(Debug, Clone)]
pub struct RelayStream {
    /// The gateway's request id (the job's `gateway_request_id`).
    pub request_id: String,
    /// The stream's id (the WHIP `streamId`), sent as the job's `stream_id` as go-livepeer
    /// does; empty: one is made from the request id.
    pub stream_id: String,
    /// The pipeline (model id) asked for.
    pub model_id: String,
    /// The params of the job start.
    pub params: Value,
    /// The WHIP `orchestrator` query parameter: only orchestrators whose URI contains it are
    /// asked; each other one the start loop reaches costs a try and is skipped, not suspended
    /// (go-livepeer's `processAIRequest`).
    pub pin: Option<String>,
}

/// What the gateway hands the relay.
#[derive(Debug, Clone)]
pub enum RelayInput {
    /// One input access unit (Annex B) with its PTS (90 kHz).
    Video {
        pts: u64,
        data: Bytes,
        keyframe: bool,
    },
    /// One input Opus packet with its PTS on the video's timeline (90 kHz).
    Audio { pts: u64, data: Bytes },
    /// A params update, sent on the control channel (and replayed after a swap).
    Params(Value),
}

/// What the relay gives back.
#[derive(Debug, Clone)]
pub enum RelayOutput {
    /// One output access unit, with the PTS the orchestrator gave it.
    Video {
        pts: u64,
        data: Bytes,
        keyframe: bool,
    },
    /// The orchestrator's last `status` event (the inner event of its events channel's
    /// document), which go-livepeer's status route shows.
    Status(Value),
    /// The stream runs on this orchestrator from now (its first, or the one a swap chose).
    Serving { orchestrator: String },
    /// A swap finished (or failed: `to` is `None`).
    Swapped(SwapRecord),
    /// The relay gave up; go-livepeer's error text.
    Ended(String),
}

/// What one job's tasks observed.
#[derive(Debug)]
enum Seen {
    SegmentDone {
        gone: bool,
    },
    OutputFrame {
        pts: u64,
        data: Bytes,
        keyframe: bool,
    },
    OutputSegment,
    OutputEnded,
    OutputError,
    OutputCopyError,
    Event(Value),
    EventsEnded,
    EventsError,
    ControlGone,
    ReplayFailed,
}

/// A publishing command for a job's input channel.
enum PublishCmd {
    Begin,
    Write(Bytes),
    End,
}

/// The job serving the stream.
struct Job {
    /// Counts jobs, so that what a left job's tasks still report is told apart.
    generation: u64,
    publish: mpsc::UnboundedSender<PublishCmd>,
    control: mpsc::UnboundedSender<(Bytes, u32)>,
    muxer: TsMuxer,
    /// Muxed bytes of the frame being written (reused).
    buf: Vec<u8>,
    /// The open segment's start: when and at which PTS.
    segment: Option<(Instant, u64)>,
    stop: CancellationToken,
    _payments: DropGuard,
}

type Started = (usize, Result<StartedJob, StartFailure>);

/// Relays one stream until its input ends (`input` closed) or the relay gives up. Every
/// output goes to `output`; when it answers `false` (nobody listens) the relay stops.
pub async fn relay(
    config: Arc<RelayConfig>,
    http: reqwest::Client,
    stream: RelayStream,
    mut input: mpsc::UnboundedReceiver<RelayInput>,
    mut output: impl FnMut(RelayOutput) -> bool + Send,
) {
    let t0 = Instant::now();
    let now_ms = move || u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    let candidates: Vec<Candidate> = config
        .orchestrators
        .iter()
        .map(|uri| Candidate::new(uri.clone(), 0))
        .collect();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(u64, Seen)>();
    let (start_tx, mut start_rx) = mpsc::unbounded_channel::<Started>();
    let spent = Arc::new(SpendMeter::default());
    let mut generation = 0u64;
    let mut job: Option<Job> = None;
    let mut monitor: Option<SwapMonitor> = None;
    let mut startup_suspensions = Suspensions::new();
    let starter = Starter {
        config: &config,
        candidates: &candidates,
        http: &http,
        stream: &stream,
        spent: &spent,
        tx: &start_tx,
    };
    let mut selecting = starter.begin(&startup_suspensions, now_ms());
    if selecting.is_none() {
        output(RelayOutput::Ended(
            crate::session::NO_ORCHESTRATORS_AVAILABLE.to_owned(),
        ));
        return;
    }
    let mut params = stream.params.clone();
    // The stream's units in timestamp order (it outlives the jobs, as go-livepeer's segmenter
    // outlives its orchestrators).
    let mut interleave = Interleaver::default();
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + config.keepalive, config.keepalive);

    loop {
        let timer = monitor
            .as_ref()
            .and_then(SwapMonitor::poll_timeout)
            .map(|ms| t0 + Duration::from_millis(ms));
        tokio::select! {
            got = input.recv() => match got {
                Some(RelayInput::Video { pts, data, keyframe }) => {
                    if let Some(job) = job.as_mut() {
                        let now = Instant::now();
                        if write_video(job, &mut interleave, &config, now, pts, data, keyframe)
                            && let Some(monitor) = monitor.as_mut()
                        {
                            monitor.handle_input_segment_started(now_ms());
                        }
                    }
                }
                Some(RelayInput::Audio { pts, data }) => {
                    if let Some(job) = job.as_mut() {
                        write_audio(job, &mut interleave, pts, data);
                    }
                }
                Some(RelayInput::Params(update)) => {
                    params = update;
                    let message = Bytes::from(serde_json::to_vec(&params).unwrap_or_default());
                    if let Some(monitor) = monitor.as_mut() {
                        monitor.handle_params(message.to_vec());
                    }
                    if let Some(job) = &job {
                        let _ = job.control.send((message, 1));
                    }
                }
                None => {
                    // The ingest ended: what is queued goes into the last segment.
                    if let Some(job) = job.as_mut()
                        && job.segment.is_some()
                    {
                        interleave.flush(None, |unit| job.mux(unit));
                        send_muxed(job);
                    }
                    break;
                }
            },
            Some((generation_seen, seen)) = seen_rx.recv() => {
                if job.as_ref().is_none_or(|j| j.generation != generation_seen) {
                    continue; // a left job's tasks: go-livepeer's counters are per orchestrator
                }
                let now = now_ms();
                if let Seen::OutputFrame { pts, data, keyframe } = seen {
                    if let Some(monitor) = monitor.as_mut() {
                        monitor.handle_output_frame(now);
                    }
                    if !output(RelayOutput::Video { pts, data, keyframe }) {
                        break;
                    }
                    continue;
                }
                if let Seen::Event(doc) = &seen
                    && let Some((event, "status")) = crate::measure::envelope(doc)
                    && !output(RelayOutput::Status(event.clone()))
                {
                    break;
                }
                if let Some(monitor) = monitor.as_mut() {
                    observe(monitor, &seen, now);
                }
            }
            Some((idx, result)) = start_rx.recv() => {
                let Some(attempts) = selecting.as_mut() else { continue };
                let uri = candidates[idx].uri.clone();
                let outcome = match &result {
                    Ok(_) => AttemptResult::Ok,
                    Err(failure) => failure.attempt_result(),
                };
                if let Err(failure) = &result {
                    info!(message = "Orchestrator did not start the job.", orchestrator = %uri, error = %failure.failure().detail);
                    let suspensions = match monitor.as_mut() {
                        Some(m) => m.suspensions_mut(),
                        None => &mut startup_suspensions,
                    };
                    suspensions.suspend(&uri, now_ms(), super::swap::SuspendReason::StartFailed);
                }
                let _ = attempts.handle_attempt_result(idx, outcome, now_ms());
                match poll_try(attempts, &candidates, stream.pin.as_deref(), now_ms()) {
                    Next::Try(next) => {
                        starter.spawn(next, &params);
                    }
                    Next::Wait => {}
                    Next::Started(_) => {
                        selecting = None;
                        let Ok(started) = result else { continue };
                        generation += 1;
                        job = Some(open_job(generation, started, &http, &seen_tx));
                        let now = now_ms();
                        match monitor.as_mut() {
                            None => monitor = Some(SwapMonitor::with_config(uri.clone(), config.swap, now)),
                            Some(monitor) => {
                                let _ = monitor.handle_swap_completed(uri.clone(), now);
                                if let Some(replay) = monitor.params_to_replay()
                                    && let Some(job) = &job
                                {
                                    let _ = job.control.send((Bytes::copy_from_slice(replay), crate::session::CONTROL_REPLAY_TRIES));
                                }
                                if let Some(record) = monitor.records().last()
                                    && !output(RelayOutput::Swapped(record.clone()))
                                {
                                    break;
                                }
                            }
                        }
                        if !output(RelayOutput::Serving { orchestrator: uri }) {
                            break;
                        }
                    }
                    Next::Rejected(_) | Next::GiveUp(_) => {
                        selecting = None;
                        match monitor.as_mut() {
                            // The end it decides is carried out below.
                            Some(monitor) => {
                                let _ = monitor.handle_reselection_failed(now_ms());
                            }
                            None => {
                                output(RelayOutput::Ended(crate::session::NO_ORCHESTRATORS_AVAILABLE.to_owned()));
                                break;
                            }
                        }
                    }
                }
            }
            _ = sleep_until_opt(timer) => {
                if let Some(monitor) = monitor.as_mut() {
                    monitor.handle_tick(now_ms());
                }
            }
            _ = keepalive.tick() => {
                if let Some(job) = &job {
                    let _ = job.control.send((Bytes::from_static(br#"{"keep":"alive"}"#), 1));
                }
            }
        }

        // Carry out what the swap monitor decided.
        let Some(m) = monitor.as_mut() else { continue };
        let mut ended = false;
        while let Some(decision) = m.poll_decision() {
            match decision {
                Decision::Swap { cause, .. } => {
                    info!(message = "Swapping orchestrator.", from = %m.orchestrator(), cause = cause.as_str());
                    if let Some(left) = job.take() {
                        left.stop.cancel(); // ends its readers and closes its input channel
                    }
                    selecting = starter.begin(m.suspensions(), now_ms());
                    if selecting.is_none() {
                        let _ = m.handle_reselection_failed(now_ms());
                    }
                }
                Decision::End { reason, .. } => {
                    // A swap nobody took over is final now; "Too many swaps" adds no record.
                    if matches!(reason, EndReason::NoOrchestratorsAvailable { .. })
                        && let Some(record) = m.records().last()
                    {
                        output(RelayOutput::Swapped(record.clone()));
                    }
                    output(RelayOutput::Ended(reason.message()));
                    ended = true;
                }
            }
        }
        if ended {
            break;
        }
    }
    if let Some(left) = job.take() {
        left.stop.cancel();
    }
}

/// What every start attempt of one stream needs.
struct Starter<'a> {
    config: &'a Arc<RelayConfig>,
    candidates: &'a [Candidate],
    http: &'a reqwest::Client,
    stream: &'a RelayStream,
    spent: &'a Arc<SpendMeter>,
    /// Where each attempt reports.
    tx: &'a mpsc::UnboundedSender<Started>,
}

impl Starter<'_> {
    /// Starts a selection over the candidates not suspended, its first attempt running;
    /// `None` when there is nobody to try.
    fn begin(&self, suspended: &Suspensions, now_ms: u64) -> Option<StartAttempts> {
        let order = GoLivepeerDefault::new(None).order(self.candidates, suspended, now_ms);
        let mut attempts = StartAttempts::with_limits(order, self.config.start, now_ms);
        match poll_try(
            &mut attempts,
            self.candidates,
            self.stream.pin.as_deref(),
            now_ms,
        ) {
            Next::Try(idx) => {
                self.spawn(idx, &self.stream.params);
                Some(attempts)
            }
            _ => None,
        }
    }

    /// One start attempt on candidate `idx` with `params`, reported on `tx`.
    fn spawn(&self, idx: usize, params: &Value) {
        let (config, http, spent, tx) = (
            Arc::clone(self.config),
            self.http.clone(),
            Arc::clone(self.spent),
            self.tx.clone(),
        );
        let uri = self.candidates[idx].uri.clone();
        let (stream, params) = (self.stream.clone(), params.clone());
        tokio::spawn(async move {
            let result = match uri.parse::<OrchestratorUri>() {
                Err(e) => Err(StartFailure::Grpc {
                    busy: false,
                    detail: format!("invalid orchestrator address {uri}: {e}"),
                }),
                Ok(target) => {
                    let stream_id = if stream.stream_id.is_empty() {
                        crate::session::stream_id(&stream.request_id)
                    } else {
                        stream.stream_id.clone()
                    };
                    let request = JobRequest {
                        gateway_address: config.gateway_address,
                        payment: &config.payment,
                        model_id: &stream.model_id,
                        params: &params,
                        session_id: &stream.request_id,
                        stream_id: &stream_id,
                        grpc_timeout: config.grpc_timeout,
                        start_timeout: config.start_timeout,
                    };
                    start_job(&request, &target, &http, spent, |_| Ok(()))
                        .await
                        .1
                }
            };
            let _ = tx.send((idx, result));
        });
    }
}

/// The start loop's next step, past the candidates the stream's pin rules out: go-livepeer
/// counts each as a try and skips it (`processAIRequest`).
fn poll_try(
    attempts: &mut StartAttempts,
    candidates: &[Candidate],
    pin: Option<&str>,
    now_ms: u64,
) -> Next {
    loop {
        match attempts.poll_next() {
            Next::Try(idx) if pin.is_some_and(|pin| !candidates[idx].uri.contains(pin)) => {
                let _ = attempts.handle_attempt_result(idx, AttemptResult::Err, now_ms);
            }
            next => return next,
        }
    }
}

/// What the swap monitor hears of one observation.
fn observe(monitor: &mut SwapMonitor, seen: &Seen, now: u64) {
    match seen {
        Seen::SegmentDone { gone: true } => monitor.handle_publish_not_found(now),
        Seen::SegmentDone { gone: false } => monitor.handle_input_segment_finished(now),
        Seen::OutputFrame { .. } => monitor.handle_output_frame(now),
        Seen::OutputSegment => monitor.handle_output_segment(now),
        Seen::OutputEnded => monitor.handle_subscribe_eos(now),
        Seen::OutputError => monitor.handle_subscribe_error(now),
        Seen::OutputCopyError => monitor.handle_output_copy_error(now),
        Seen::Event(_) => monitor.handle_event(now),
        Seen::EventsEnded => monitor.handle_events_end(now),
        Seen::EventsError => monitor.handle_events_error(now),
        Seen::ControlGone => monitor.handle_control_not_found(now),
        Seen::ReplayFailed => monitor.handle_control_write_failed(now),
    }
}

/// Takes one access unit into the job's input channel, opening a segment at a keyframe when
/// the open one has lasted the minimum (wall clock and PTS) or none is open: what is queued
/// from before the keyframe ends the old segment, and the new one has an Opus track if the
/// stream has audio. Frames before the first keyframe are dropped. True when a segment was
/// opened.
fn write_video(
    job: &mut Job,
    interleave: &mut Interleaver,
    config: &RelayConfig,
    now: Instant,
    pts: u64,
    data: Bytes,
    keyframe: bool,
) -> bool {
    let opens = starts_segment(job.segment, now, pts, keyframe, config.min_segment);
    if opens {
        interleave.flush(Some(pts), |unit| job.mux(unit));
        if job.segment.is_some() {
            send_muxed(job);
            let _ = job.publish.send(PublishCmd::End);
        } else {
            // The job's first segment: what is queued was meant for the job before it.
            job.buf.clear();
        }
        job.muxer
            .set_opus(interleave.has_audio().then_some(OPUS_CHANNELS));
        let _ = job.publish.send(PublishCmd::Begin);
        job.segment = Some((now, pts));
    }
    if job.segment.is_none() {
        return false;
    }
    interleave.push_video(pts, data, keyframe, |unit| job.mux(unit));
    send_muxed(job);
    opens
}

/// Takes one Opus packet into the job's input channel; dropped while no segment is open
/// (go-livepeer drops audio until its segmenter has started).
fn write_audio(job: &mut Job, interleave: &mut Interleaver, pts: u64, data: Bytes) {
    if job.segment.is_some() {
        interleave.push_audio(pts, data, |unit| job.mux(unit));
        send_muxed(job);
    }
}

impl Job {
    /// Appends one unit, muxed, to the bytes written next. An audio packet is dropped when the
    /// open segment has no Opus track (audio that came after the segment began without it).
    fn mux(&mut self, unit: Unit) {
        let (muxer, buf) = (&mut self.muxer, &mut self.buf);
        match unit {
            Unit::Video {
                pts,
                data,
                keyframe,
            } => {
                let frame = MuxFrame {
                    pts,
                    dts: None,
                    keyframe,
                    data: &data,
                };
                muxer.mux_frame(&frame, buf);
            }
            Unit::Audio { pts, data } => {
                let _ = muxer.mux_opus(pts, &data, buf);
            }
        }
    }
}

/// Writes what was muxed since the last write to the open segment, in one piece.
fn send_muxed(job: &mut Job) {
    if !job.buf.is_empty() {
        let _ = job
            .publish
            .send(PublishCmd::Write(Bytes::copy_from_slice(&job.buf)));
        job.buf.clear();
    }
}

/// go-livepeer's `RTPSegmenter` rule: a new segment starts at a keyframe, when none is open or
/// the open one (begun at `open`: when, and at which PTS) has lasted `min` both by the wall clock
/// and by PTS (90 kHz).
fn starts_segment(
    open: Option<(Instant, u64)>,
    now: Instant,
    pts: u64,
    keyframe: bool,
    min: Duration,
) -> bool {
    let min_pts = u64::try_from(min.as_micros() * 90 / 1000).unwrap_or(u64::MAX);
    keyframe
        && open.is_none_or(|(began, began_pts)| {
            now.duration_since(began) >= min && pts.wrapping_sub(began_pts) >= min_pts
        })
}

/// Opens a started job's four channels: a publishing task for the input, readers for the
/// output and the events, and a control task.
fn open_job(
    generation: u64,
    started: StartedJob,
    http: &reqwest::Client,
    seen: &mpsc::UnboundedSender<(u64, Seen)>,
) -> Job {
    let StartedJob { urls, payments } = started;
    let JobUrls {
        publish_url,
        subscribe_url,
        control_url,
        events_url,
        ..
    } = urls;
    let stop = CancellationToken::new();
    let report = {
        let seen = seen.clone();
        move |s: Seen| seen.send((generation, s)).is_ok()
    };
    let (publish, publish_rx) = mpsc::unbounded_channel();
    // The media both ways on the client's own connections (each access unit one write and
    // one read on the task that carries it), the control and events channels on reqwest.
    tokio::spawn(publish_task(
        SocketPublisher::new(&publish_url, PublisherConfig::default()),
        publish_rx,
        stop.clone(),
        report.clone(),
    ));
    // -2: the orchestrator may have published output segment 0 before this GET arrives.
    let output =
        TrickleSubscriber::over_sockets(subscribe_url, SubscriberConfig::default()).starting_at(-2);
    tokio::spawn(output_task(output, stop.clone(), report.clone()));
    let events = TrickleSubscriber::new(http.clone(), events_url);
    tokio::spawn(events_task(events, stop.clone(), report.clone()));
    let (control, control_rx) = mpsc::unbounded_channel();
    tokio::spawn(control_task(
        TricklePublisher::new(http.clone(), control_url),
        control_rx,
        stop.clone(),
        report,
    ));
    Job {
        generation,
        publish,
        control,
        muxer: TsMuxer::new(MuxConfig::default()),
        buf: Vec::with_capacity(64 * 1024),
        segment: None,
        stop,
        _payments: payments,
    }
}

/// Writes the input segments in order; each finished segment's answer is awaited beside the
/// next one. When stopped, the channel is closed (`DELETE`), which is how a gateway leaves a
/// job.
async fn publish_task(
    mut publisher: SocketPublisher,
    mut commands: mpsc::UnboundedReceiver<PublishCmd>,
    stop: CancellationToken,
    report: impl Fn(Seen) -> bool + Clone + Send + 'static,
) {
    let mut open: Option<SocketSegmentWriter> = None;
    loop {
        let command = tokio::select! {
            () = stop.cancelled() => break,
            c = commands.recv() => match c {
                Some(c) => c,
                None => break,
            },
        };
        match command {
            PublishCmd::Begin => match publisher.begin_segment().await {
                Ok(writer) => open = Some(writer),
                Err(e) => {
                    debug!(message = "Input segment not opened.", error = %e);
                    report(Seen::SegmentDone {
                        gone: matches!(e, TrickleError::ChannelGone),
                    });
                }
            },
            PublishCmd::Write(bytes) => {
                if let Some(writer) = open.as_mut()
                    && let Err(e) = writer.write(bytes).await
                {
                    debug!(message = "Input segment write failed.", error = %e);
                }
            }
            PublishCmd::End => {
                if let Some(writer) = open.take() {
                    let report = report.clone();
                    tokio::spawn(async move {
                        let gone = matches!(writer.finish().await, Err(TrickleError::ChannelGone));
                        report(Seen::SegmentDone { gone });
                    });
                }
            }
        }
    }
    if let Some(writer) = open.take() {
        let _ = writer.finish().await;
    }
    publisher.close().await;
}

/// Reads the output channel: each access unit as it is demuxed, each segment's end, and how
/// the subscription ended; after a failed read it pauses and reads again (go-livepeer's
/// subscriber), the swap monitor counting the failures.
async fn output_task(
    mut sub: TrickleSubscriber,
    stop: CancellationToken,
    report: impl Fn(Seen) -> bool,
) {
    let mut demuxer = TsDemuxer::new();
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            s = sub.next_segment() => s,
        };
        let mut segment = match next {
            Ok(Some(segment)) => segment,
            Ok(None) => {
                report(Seen::OutputEnded);
                return;
            }
            Err(e) => {
                debug!(message = "Output read failed.", error = %e);
                if !report(Seen::OutputError) || pause(&stop).await {
                    return;
                }
                continue;
            }
        };
        loop {
            let chunk = tokio::select! {
                () = stop.cancelled() => return,
                c = segment.chunk() => c,
            };
            match chunk {
                Ok(Some(bytes)) => demuxer.handle_bytes(&bytes, 0),
                Ok(None) => {
                    demuxer.finish(0);
                    break;
                }
                Err(e) => {
                    debug!(message = "Output segment read failed.", error = %e);
                    demuxer.finish(0);
                    if !report(Seen::OutputCopyError) {
                        return;
                    }
                    break;
                }
            }
            while let Some(frame) = demuxer.poll_frame() {
                let Some(pts) = frame.pts else { continue };
                let seen = Seen::OutputFrame {
                    pts,
                    data: frame.data,
                    keyframe: frame.keyframe,
                };
                if !report(seen) {
                    return;
                }
            }
        }
        while let Some(frame) = demuxer.poll_frame() {
            if let Some(pts) = frame.pts {
                report(Seen::OutputFrame {
                    pts,
                    data: frame.data,
                    keyframe: frame.keyframe,
                });
            }
        }
        if !report(Seen::OutputSegment) {
            return;
        }
    }
}

/// Reads the events channel: one JSON document per segment.
async fn events_task(
    mut sub: TrickleSubscriber,
    stop: CancellationToken,
    report: impl Fn(Seen) -> bool,
) {
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            s = sub.next_segment() => s,
        };
        let read = match next {
            Ok(Some(mut segment)) => tokio::select! {
                () = stop.cancelled() => return,
                r = segment.read_all() => r,
            },
            Ok(None) => {
                report(Seen::EventsEnded);
                return;
            }
            Err(e) => Err(e),
        };
        let seen = match read {
            Ok(doc) => match serde_json::from_slice::<Value>(&doc) {
                Ok(doc) => Seen::Event(doc),
                Err(_) => continue, // go-livepeer logs and skips a document it cannot parse
            },
            Err(e) => {
                debug!(message = "Events read failed.", error = %e);
                if !report(Seen::EventsError) || pause(&stop).await {
                    return;
                }
                continue;
            }
        };
        if !report(seen) {
            return;
        }
    }
}

/// Publishes control messages in order; a message sent with several tries (the params replayed
/// after a swap) that fails every time is reported, as is a channel that is gone.
async fn control_task(
    mut publisher: TricklePublisher,
    mut messages: mpsc::UnboundedReceiver<(Bytes, u32)>,
    stop: CancellationToken,
    report: impl Fn(Seen) -> bool,
) {
    loop {
        let (message, tries) = tokio::select! {
            () = stop.cancelled() => break,
            m = messages.recv() => match m {
                Some(m) => m,
                None => break,
            },
        };
        let mut delivered = false;
        for _ in 0..tries.max(1) {
            match publisher.publish(message.clone()).await {
                Ok(()) => {
                    delivered = true;
                    break;
                }
                Err(TrickleError::ChannelGone) => {
                    report(Seen::ControlGone);
                    return;
                }
                Err(e) => debug!(message = "Control message not delivered.", error = %e),
            }
        }
        if !delivered && tries > 1 {
            report(Seen::ReplayFailed);
        }
    }
    publisher.close().await;
}

/// go-livepeer's pause after a failed read; true when stopped meanwhile.
async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(crate::session::READ_RETRY_PAUSE) => false,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 90_000;

    #[test]
    fn segments_start_at_keyframes_once_the_minimum_has_passed_by_clock_and_pts() {
        let t0 = Instant::now();
        let min = MIN_SEGMENT;
        let at = |ms| t0 + Duration::from_millis(ms);
        // The first segment starts at the first keyframe, not before.
        assert!(!starts_segment(None, t0, 0, false, min));
        assert!(starts_segment(None, t0, 0, true, min));
        let open = Some((t0, 0));
        // A keyframe before a second has passed (a publisher's PLI answer) does not cut.
        assert!(!starts_segment(open, at(500), SECOND / 2, true, min));
        // A second by both clocks: it cuts, but only at a keyframe.
        assert!(starts_segment(open, at(1000), SECOND, true, min));
        assert!(!starts_segment(open, at(1500), SECOND * 3 / 2, false, min));
        // Both clocks must agree: a burst of late frames (a second of PTS within 200 ms) does
        // not cut before a second of wall clock, and a second of wall clock with little PTS
        // (frames lost) does not either.
        assert!(!starts_segment(open, at(200), SECOND, true, min));
        assert!(!starts_segment(open, at(1200), SECOND / 3, true, min));
    }

    /// A job whose channels the test reads.
    fn test_job() -> (Job, mpsc::UnboundedReceiver<PublishCmd>) {
        let (publish, rx) = mpsc::unbounded_channel();
        let (control, _) = mpsc::unbounded_channel();
        let job = Job {
            generation: 1,
            publish,
            control,
            muxer: TsMuxer::new(MuxConfig::default()),
            buf: Vec::new(),
            segment: None,
            stop: CancellationToken::new(),
            _payments: CancellationToken::new().drop_guard(),
        };
        (job, rx)
    }

    /// The segments written, each as its bytes.
    fn segments(rx: &mut mpsc::UnboundedReceiver<PublishCmd>) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                PublishCmd::Begin => out.push(Vec::new()),
                PublishCmd::Write(bytes) => {
                    out.last_mut().expect("begun").extend_from_slice(&bytes)
                }
                PublishCmd::End => {}
            }
        }
        out
    }

    #[test]
    fn segments_carry_the_opus_track_in_timestamp_order_with_the_video() {
        let (mut job, mut rx) = test_job();
        let mut interleave = Interleaver::default();
        let config = RelayConfig::new(vec![]);
        let t0 = Instant::now();
        let key = Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x80]);
        let delta = Bytes::from_static(&[0, 0, 0, 1, 0x41, 0x9a, 0x80]);
        let silence = Bytes::from_static(&[0xf8, 0xff, 0xfe]);
        // Audio before the first keyframe is dropped (the segmenter has not started).
        write_audio(&mut job, &mut interleave, 0, silence.clone());
        // 2.5 s at 30 fps with a keyframe every second; after each video frame, the audio up
        // to the next one (20 ms packets), as lvt's WHIP publisher sends them.
        let mut audio_pts = 0;
        for n in 0..75u64 {
            let pts = n * 3000;
            let frame = if n % 30 == 0 { &key } else { &delta };
            let at = t0 + Duration::from_millis(n * 1000 / 30);
            write_video(
                &mut job,
                &mut interleave,
                &config,
                at,
                pts,
                frame.clone(),
                n % 30 == 0,
            );
            while audio_pts < pts + 3000 {
                write_audio(&mut job, &mut interleave, audio_pts, silence.clone());
                audio_pts += 1800;
            }
        }
        let segments = segments(&mut rx);
        assert_eq!(segments.len(), 3, "one per second, at the keyframes");
        let mut all_audio = Vec::new();
        for (i, bytes) in segments.iter().enumerate() {
            let mut demux = TsDemuxer::new();
            demux.handle_bytes(bytes, 0);
            demux.finish(0);
            let mut units = Vec::new();
            while let Some(frame) = demux.poll_frame() {
                units.push((frame.stream_type, frame.pts.expect("a PTS")));
            }
            let first_key = i as u64 * 30 * 3000;
            // The segment starts with its keyframe; audio from before it went into the last.
            assert_eq!(units[0], (0x1b, first_key), "segment {i}");
            let ts: Vec<u64> = units.iter().map(|u| u.1).collect();
            assert!(ts.windows(2).all(|w| w[0] <= w[1]), "in order: {ts:?}");
            let audio: Vec<u64> = units.iter().filter(|u| u.0 == 0x06).map(|u| u.1).collect();
            assert!(audio.iter().all(|&a| a >= first_key));
            // The first segment began before any audio: its program is video only, and the
            // audio that came during it waits for the next one (dropped, as a segment without
            // the track cannot carry it). From the second on, both.
            if i == 0 {
                assert!(audio.is_empty());
            } else {
                // 50 packets a second; the last segment is half a second, its last packet
                // still queued.
                let least = if i == 1 { 50 } else { 24 };
                assert!(
                    audio.len() >= least,
                    "segment {i}: {} audio packets",
                    audio.len()
                );
                let report = lvt_media::ffprobe::probe(bytes, &["-show_streams"])
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(report.success, "{}", report.stderr);
                assert!(
                    report.stdout.contains("codec_name=opus"),
                    "{}",
                    report.stdout
                );
            }
            all_audio.extend(audio);
        }
        // Every audio packet of the second and third segments' spans went out, once.
        let last = *all_audio.last().expect("audio");
        let want: Vec<u64> = (50..)
            .map(|n| n * 1800)
            .take_while(|&a| a <= last)
            .collect();
        assert_eq!(all_audio, want);
        assert_eq!(interleave.late(), 0);
    }

    #[test]
    fn a_pin_skips_other_orchestrators_at_the_cost_of_a_try() {
        let candidates: Vec<Candidate> = ["https://a:1", "https://b:2", "https://c:3"]
            .into_iter()
            .map(|uri| Candidate::new(uri, 0))
            .collect();
        let mut attempts = StartAttempts::new(vec![0, 1, 2], 0);
        assert_eq!(
            poll_try(&mut attempts, &candidates, Some("b:2"), 0),
            Next::Try(1)
        );
        assert_eq!(attempts.tries(), 2, "the skipped one counts as a try");
        // A pin nobody matches: every candidate skipped, nobody asked.
        let mut none = StartAttempts::new(vec![0, 1, 2], 0);
        assert!(matches!(
            poll_try(&mut none, &candidates, Some("z:9"), 0),
            Next::GiveUp(_)
        ));
        // No pin: the order as it is.
        let mut all = StartAttempts::new(vec![2, 0, 1], 0);
        assert_eq!(poll_try(&mut all, &candidates, None, 0), Next::Try(2));
    }
}
