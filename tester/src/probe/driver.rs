//! The trickle driver of a [`SessionCore`]: one `select!` loop that feeds the core what the
//! channels saw and carries out what it decides.
//!
//! The channels only move bytes: each share's input channel runs the publishing commands the
//! core emits (stamping each frame right before its bytes are written), its output and events
//! channels are streams handing bytes and documents over with the moment they arrived, and a
//! control task publishes what the core sends. All of it but the control task and the job
//! starts is polled on the driver's own task, so a frame costs no wakeup of another task.
//! Every decision (timing, swaps, timeouts, the drain, the record) is the core's, so the same
//! core runs under the simulated-time tests in `lvt_gateway::session`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, SelectAll, Stream, StreamExt as _};
use lvt_gateway::gateway::observe::{ObservationSink, observe};
use lvt_gateway::gateway::select::Candidate;
use lvt_gateway::session::{
    ChannelEnd, Input, Mode, Output, PublishError, READ_RETRY_PAUSE, SessionCore, SessionPlan,
    ShareId, StartFailure, StartInfo,
};
use lvt_media::ts::{MuxConfig, TsMuxer};
use lvt_schema::SessionReport;
use lvt_wire::live::OrchestratorUri;
use lvt_wire::payment::SpendMeter;
use lvt_wire::trickle::{
    PublisherConfig, SocketPublisher, SocketSegmentWriter, SubscribedSegment, SubscriberConfig,
    TrickleError, TricklePublisher, TrickleSubscriber,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

use super::pictures::Pictures;
use super::start::start_job;
use super::{Clock, ProbeOptions, ProbeRun, unix_ms};
use crate::encode::{Clip, PlannedSegment, Replayer};
use lvt_gateway::start::StartedJob;

/// How the driver gets a job for a start attempt.
pub(crate) enum Starter {
    /// GetOrchestrator, payment and job start, as a gateway does.
    Gateway,
    /// The job was started by something else: its URLs are known.
    Given(lvt_wire::live::JobUrls),
}

/// What the driver needs besides the core.
pub(crate) struct Edge<'a> {
    pub opts: &'a ProbeOptions,
    pub clip: Arc<Clip>,
    pub http: &'a reqwest::Client,
    pub starter: Starter,
    pub sink: Option<ObservationSink>,
}

/// A publishing command for a share's input channel.
enum PublishCmd {
    Begin(PlannedSegment),
    Frame(u32),
    End,
    /// End the input channel (DELETE), which is how a gateway ends a job.
    Close,
}

/// A share's input channel: its publisher, its muxer and the segment being written.
struct ShareInput {
    /// On the client's own connections: each frame is one write on the driver's task.
    publisher: SocketPublisher,
    /// Muxes each frame when it is written, so that only that frame's bytes are held rather
    /// than the whole segment's; its continuity counters run on across the share's segments.
    muxer: TsMuxer,
    open: Option<OpenSegment>,
}

/// The segment a share is writing.
struct OpenSegment {
    plan: PlannedSegment,
    writer: SocketSegmentWriter,
    /// Bytes written so far.
    bytes: u64,
}

/// What one publishing command did: the inputs for the core, a segment to finish, and the
/// channel back (`None` once closed).
struct Applied {
    share: ShareId,
    input: Option<ShareInput>,
    inputs: Vec<Input>,
    finish: Option<SocketSegmentWriter>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type InputStream = Pin<Box<dyn Stream<Item = Input> + Send>>;

/// Commands for one channel, run one at a time and in the order given: while one runs (it
/// holds the channel), the next wait behind it.
struct Lane<C, I> {
    /// The channel; `None` while a command runs on it, or once it is closed.
    idle: Option<I>,
    /// Commands waiting for the one that runs (a write that had to wait for the server).
    queue: VecDeque<C>,
}

impl<C, I> Lane<C, I> {
    fn new(channel: I) -> Self {
        Self {
            idle: Some(channel),
            queue: VecDeque::new(),
        }
    }

    /// Queues `cmd`; returns the command to run now, with the channel, when none is running.
    fn submit(&mut self, cmd: C) -> Option<(I, C)> {
        self.queue.push_back(cmd);
        self.next()
    }

    /// The channel is back from a command (`None`: the command closed it); returns the next
    /// command to run, the oldest waiting.
    fn give_back(&mut self, channel: Option<I>) -> Option<(I, C)> {
        self.idle = channel;
        self.next()
    }

    fn next(&mut self) -> Option<(I, C)> {
        if self.queue.is_empty() {
            return None;
        }
        let channel = self.idle.take()?;
        self.queue.pop_front().map(|cmd| (channel, cmd))
    }
}

/// The IO of one share.
struct ShareIo {
    /// The input channel and the publishing commands for it.
    input: Lane<PublishCmd, ShareInput>,
    control: mpsc::UnboundedSender<(Bytes, u32)>,
    /// Stops the readers and the control task.
    stop: CancellationToken,
    /// The job's payment loop runs while the share does.
    payments: Option<DropGuard>,
}

/// Runs `core` to its end over trickle. Never fails: the record says what happened.
///
/// Everything but the job starts and the control channel runs on this one task: publishing
/// commands are futures and the readers are streams, polled here, so that a frame costs no
/// wakeup of another task and each input reaches the core the moment it is observed.
pub(crate) async fn drive(
    mode: Mode,
    plan: SessionPlan,
    candidates: Vec<Candidate>,
    template: SessionReport,
    edge: Edge<'_>,
    cancel: CancellationToken,
) -> ProbeRun {
    let clock = Clock::start();
    let session_id = template.session_id.clone();
    let mut core = SessionCore::new(mode, plan, candidates, template, clock.now_us(), unix_ms());
    let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
    let mut starts: JoinSet<(usize, StartInfo, Result<StartedJob, StartFailure>)> = JoinSet::new();
    let mut jobs: HashMap<usize, StartedJob> = HashMap::new();
    let mut shares: Vec<Option<ShareIo>> = Vec::new();
    let mut controls = JoinSet::new();
    let mut streams: SelectAll<InputStream> = SelectAll::new();
    let mut ops: FuturesUnordered<BoxFuture<Applied>> = FuturesUnordered::new();
    let mut finishing: FuturesUnordered<BoxFuture<(ShareId, Result<(), PublishError>)>> =
        FuturesUnordered::new();
    // Output frames being decoded for the content check and the loading overlay watch, in
    // order per share.
    let mut pictures = Pictures::default();
    let mut replayer = Replayer::new(edge.clip.clone(), 0);
    let mut given = match edge.starter {
        Starter::Given(urls) => Some(urls),
        Starter::Gateway => None,
    };
    let mut cancelled = false;
    // What the session's jobs were paid, over all its orchestrators (on chain only).
    let spent = Arc::new(SpendMeter::default());
    // One timer for the whole session, moved only when the core's deadline moves: a new timer
    // per loop turn would cost a registration per frame.
    let sleep = tokio::time::sleep_until(clock.at(0));
    tokio::pin!(sleep);
    let mut armed_us = None;
    loop {
        let deadline_us = loop {
            let publish = |shares: &mut Vec<Option<ShareIo>>, share: ShareId, cmd| {
                if let Some(Some(io)) = shares.get_mut(share) {
                    // Now, or after the commands already waiting on the channel.
                    run(&ops, share, io.input.submit(cmd), &clock);
                }
            };
            match core.poll_output() {
                Output::Timeout(t) => break t,
                Output::Start { candidate, uri } => {
                    if let Some(urls) = given.take() {
                        let job = StartedJob::given(urls);
                        starts.spawn(async move { (candidate, StartInfo::default(), Ok(job)) });
                        continue;
                    }
                    let opts = edge.opts.clone();
                    let http = edge.http.clone();
                    let session_id = session_id.clone();
                    let spent = Arc::clone(&spent);
                    starts.spawn(async move {
                        let Ok(target) = uri.parse::<OrchestratorUri>() else {
                            let failure = StartFailure::Grpc {
                                busy: false,
                                detail: format!("invalid orchestrator address {uri}"),
                            };
                            return (candidate, StartInfo::default(), Err(failure));
                        };
                        let (info, result) =
                            start_job(&opts, &target, &http, &session_id, spent).await;
                        (candidate, info, result)
                    });
                }
                Output::OpenShare {
                    share,
                    candidate,
                    retry_reads,
                } => {
                    let Some(job) = jobs.remove(&candidate) else {
                        continue;
                    };
                    let urls = &job.urls;
                    let http = edge.http;
                    let stop = CancellationToken::new();
                    let reader = Reader {
                        share,
                        retry: retry_reads,
                        clock: clock.clone(),
                        stop: stop.clone(),
                    };
                    streams.push(Box::pin(
                        reader
                            .clone()
                            // -2, the segment being written (as the Python SDK starts): a
                            // runner that answers at once (its loading overlay) may have begun
                            // segment 0 before this GET arrives, and -1 would skip it.
                            .output(
                                TrickleSubscriber::over_sockets(
                                    &urls.subscribe_url,
                                    SubscriberConfig::default(),
                                )
                                .starting_at(-2),
                            ),
                    ));
                    streams.push(Box::pin(
                        reader
                            .clone()
                            .events(TrickleSubscriber::new(http.clone(), &urls.events_url)),
                    ));
                    let (control, control_rx) = mpsc::unbounded_channel();
                    controls.spawn(reader.control(
                        TricklePublisher::new(http.clone(), &urls.control_url),
                        control_rx,
                        tx.clone(),
                    ));
                    if shares.len() <= share {
                        shares.resize_with(share + 1, || None);
                    }
                    shares[share] = Some(ShareIo {
                        input: Lane::new(ShareInput {
                            publisher: SocketPublisher::new(
                                &urls.publish_url,
                                PublisherConfig::default(),
                            ),
                            muxer: TsMuxer::new(MuxConfig::default()),
                            open: None,
                        }),
                        control,
                        stop,
                        payments: Some(job.payments),
                    });
                }
                Output::BeginSegment { share, seq } => {
                    let segment = replayer.plan_segment();
                    debug_assert_eq!(segment.seq, seq, "the core and the clip count alike");
                    if let Some(share) = share {
                        publish(&mut shares, share, PublishCmd::Begin(segment));
                    }
                }
                Output::WriteFrame { share, index } => {
                    publish(&mut shares, share, PublishCmd::Frame(index));
                }
                Output::EndSegment { share } => publish(&mut shares, share, PublishCmd::End),
                Output::LeaveShare { share } => publish(&mut shares, share, PublishCmd::Close),
                Output::Control {
                    share,
                    message,
                    tries,
                } => {
                    if let Some(Some(io)) = shares.get(share) {
                        let _ = io.control.send((message, tries));
                    }
                }
                Output::StopShare { share } => {
                    if let Some(Some(io)) = shares.get_mut(share) {
                        io.stop.cancel();
                        io.payments = None;
                    }
                }
                Output::ClassifyFrame {
                    share,
                    pts,
                    keyframe,
                    picture,
                    look,
                } => pictures.classify(share, pts, keyframe, picture, look),
                // Gateway mode's (an IDR on its own); decoded here like any keyframe asked about.
                Output::LookAlone {
                    share,
                    pts,
                    picture,
                } => pictures.classify(share, pts, true, picture, true),
                Output::ClassifyEnd { share, keep_frames } => pictures.end(share, keep_frames),
                Output::Observe(observation) => observe(edge.sink.as_ref(), observation),
                Output::Finished(finished) => {
                    starts.abort_all();
                    // Each input channel is ended (DELETE, bounded by its own timeout), after
                    // the commands queued before it.
                    let closing = async {
                        while let Some(applied) = ops.next().await {
                            // The session is over: what the commands report no longer counts.
                            let _ = settle(applied, &mut shares, &ops, &clock, |_| {});
                        }
                    };
                    if tokio::time::timeout(Duration::from_secs(3), closing)
                        .await
                        .is_err()
                    {
                        debug!(message = "Closing the input channels timed out.");
                    }
                    controls.abort_all();
                    let mut report = finished.report;
                    if edge.opts.payment.signer_url.is_some() {
                        report.payment = Some(paid(&spent));
                    }
                    return ProbeRun {
                        report,
                        interrupted: finished.interrupted,
                    };
                }
            }
        };
        let waiting = deadline_us != u64::MAX;
        if waiting && armed_us != Some(deadline_us) {
            sleep.as_mut().reset(clock.at(deadline_us));
            armed_us = Some(deadline_us);
        }
        tokio::select! {
            biased;
            () = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                core.handle_input(Input::Cancel, clock.now_us());
            }
            Some(applied) = ops.next() => {
                let finish = settle(applied, &mut shares, &ops, &clock, |input| {
                    core.handle_input(input, clock.now_us());
                });
                // A segment whose frames are all written is finished without holding up the
                // next one.
                if let Some((share, writer)) = finish {
                    finishing.push(Box::pin(async move {
                        let result = writer.finish().await.map(|_| ()).map_err(|e| publish_error(&e));
                        (share, result)
                    }));
                }
            }
            Some(input) = streams.next() => core.handle_input(input, clock.now_us()),
            Some((share, result)) = finishing.next() => {
                core.handle_input(Input::SegmentDone { share, result }, clock.now_us());
            }
            Some(input) = rx.recv() => core.handle_input(input, clock.now_us()),
            looks = pictures.next() => {
                for input in looks {
                    core.handle_input(input, clock.now_us());
                }
            }
            Some(done) = starts.join_next() => {
                let Ok((candidate, info, result)) = done else { continue };
                let result = result.map(|job| {
                    jobs.insert(candidate, job);
                });
                core.handle_input(Input::StartResult { candidate, info, result }, clock.now_us());
            }
            () = &mut sleep, if waiting => {
                armed_us = None;
                core.handle_input(Input::Timeout, clock.now_us());
            }
        }
    }
}

/// A session's payments as its record carries them.
fn paid(spent: &SpendMeter) -> lvt_schema::PaymentSpent {
    let spent = spent.spent();
    lvt_schema::PaymentSpent {
        tickets: spent.tickets,
        expected_value_wei: spent.expected_value_wei.to_string(),
    }
}

/// Starts the command a share's input lane says is next, if any.
fn run(
    ops: &FuturesUnordered<BoxFuture<Applied>>,
    share: ShareId,
    next: Option<(ShareInput, PublishCmd)>,
    clock: &Clock,
) {
    if let Some((input, cmd)) = next {
        ops.push(Box::pin(apply(share, input, cmd, clock.clone())));
    }
}

/// Takes a finished command's results: its inputs go to `feed`, the channel goes back to its
/// share, and the next queued command runs. Returns a complete segment to finish.
fn settle(
    applied: Applied,
    shares: &mut [Option<ShareIo>],
    ops: &FuturesUnordered<BoxFuture<Applied>>,
    clock: &Clock,
    mut feed: impl FnMut(Input),
) -> Option<(ShareId, SocketSegmentWriter)> {
    let Applied {
        share,
        input,
        inputs,
        finish,
    } = applied;
    for i in inputs {
        feed(i);
    }
    if let Some(Some(io)) = shares.get_mut(share) {
        run(ops, share, io.input.give_back(input), clock);
    }
    finish.map(|writer| (share, writer))
}

fn publish_error(e: &TrickleError) -> PublishError {
    PublishError {
        gone: matches!(e, TrickleError::ChannelGone),
        detail: e.to_string(),
    }
}

/// Runs one publishing command. A frame's send time is taken right before its bytes are
/// written; a segment that failed is answered at once with [`Input::SegmentDone`], a complete
/// one is handed back to be finished.
async fn apply(share: ShareId, mut input: ShareInput, cmd: PublishCmd, clock: Clock) -> Applied {
    let mut inputs = Vec::new();
    let mut finish = None;
    match cmd {
        PublishCmd::Begin(segment) => match input.publisher.begin_segment().await {
            Ok(writer) => {
                input.open = Some(OpenSegment {
                    plan: segment,
                    writer,
                    bytes: 0,
                });
            }
            Err(e) => {
                input.open = None;
                inputs.push(Input::SegmentDone {
                    share,
                    result: Err(publish_error(&e)),
                });
            }
        },
        PublishCmd::Frame(index) => {
            if let Some(open) = input.open.as_mut()
                && let Some(frame) = open.plan.frames.get(index as usize)
                && let Some(data) = open.plan.mux_frame(index as usize, &mut input.muxer)
            {
                inputs.push(Input::FrameSent {
                    share,
                    pts: frame.pts,
                    at_us: clock.now_us(),
                });
                open.bytes += data.len() as u64;
                if let Err(e) = open.writer.write(data).await {
                    debug!(message = "Input segment write failed.", error = %e);
                    input.open = None;
                    inputs.push(Input::SegmentDone {
                        share,
                        result: Err(publish_error(&e)),
                    });
                }
            }
        }
        PublishCmd::End => {
            if let Some(open) = input.open.take() {
                inputs.push(Input::SegmentWritten {
                    share,
                    bytes: open.bytes,
                });
                finish = Some(open.writer);
            }
        }
        PublishCmd::Close => {
            drop(input.open.take());
            if tokio::time::timeout(Duration::from_secs(2), input.publisher.close())
                .await
                .is_err()
            {
                debug!(message = "Closing the input channel timed out.");
            }
            return Applied {
                share,
                input: None,
                inputs,
                finish,
            };
        }
    }
    Applied {
        share,
        input: Some(input),
        inputs,
        finish,
    }
}

/// What a share's readers and control task share.
#[derive(Clone)]
struct Reader {
    share: ShareId,
    /// Retry a failed read after [`READ_RETRY_PAUSE`], as go-livepeer's subscriptions do.
    retry: bool,
    clock: Clock,
    stop: CancellationToken,
}

/// How the read of a segment's next chunk went.
enum Chunk {
    Bytes(Bytes),
    /// The segment is complete.
    End,
    /// The read failed after the segment began.
    Failed,
    /// The share stopped.
    Stopped,
}

/// A reader's place in its subscription.
struct ReadState {
    reader: Reader,
    sub: TrickleSubscriber,
    seg: Option<SubscribedSegment>,
    /// Pause before the next read (a read failed and reads are retried).
    pause: bool,
    /// The subscription is over.
    done: bool,
    /// A segment broke off: its end is still to be reported.
    end_pending: bool,
}

impl ReadState {
    fn new(reader: Reader, sub: TrickleSubscriber) -> Self {
        Self {
            reader,
            sub,
            seg: None,
            pause: false,
            done: false,
            end_pending: false,
        }
    }

    /// Opens the next segment. `Err(Some(input))` when the subscription ended or a read failed
    /// (with retries, the next call reads again after the pause), `Err(None)` when it is over.
    async fn open_segment(
        &mut self,
        channel: &'static str,
        end: fn(ShareId, ChannelEnd) -> Input,
    ) -> Result<(), Option<Input>> {
        let stop = self.reader.stop.clone();
        if self.done || stop.is_cancelled() {
            return Err(None);
        }
        if std::mem::take(&mut self.pause) {
            tokio::select! {
                () = stop.cancelled() => return Err(None),
                () = tokio::time::sleep(READ_RETRY_PAUSE) => {}
            }
        }
        let next = tokio::select! {
            () = stop.cancelled() => return Err(None),
            s = self.sub.next_segment() => s,
        };
        let share = self.reader.share;
        match next {
            Ok(Some(seg)) => {
                self.seg = Some(seg);
                Ok(())
            }
            Ok(None) => {
                self.done = true;
                Err(Some(end(share, ChannelEnd::Ended)))
            }
            Err(error) => {
                debug!(message = "Subscription read failed.", channel, %error);
                if self.reader.retry {
                    self.pause = true;
                } else {
                    self.done = true;
                }
                Err(Some(end(share, ChannelEnd::Error)))
            }
        }
    }

    async fn chunk(&mut self, channel: &'static str) -> Chunk {
        let Some(seg) = self.seg.as_mut() else {
            return Chunk::End;
        };
        let next = tokio::select! {
            () = self.reader.stop.cancelled() => return Chunk::Stopped,
            c = seg.chunk() => c,
        };
        match next {
            Ok(Some(bytes)) => Chunk::Bytes(bytes),
            Ok(None) => Chunk::End,
            Err(error) => {
                debug!(message = "Segment read ended with an error.", channel, %error);
                Chunk::Failed
            }
        }
    }

    /// The next input of the output channel: bytes as they arrive (stamped with the moment
    /// they came in, so each frame's arrival is that of its first byte), the end of each
    /// segment, and how the subscription ended.
    async fn next_output(&mut self) -> Option<Input> {
        let share = self.reader.share;
        loop {
            if std::mem::take(&mut self.end_pending) {
                if self.reader.stop.is_cancelled() {
                    return None;
                }
                return Some(Input::OutputSegmentEnd { share });
            }
            if self.seg.is_none() {
                let end = |share, end| Input::OutputEnd { share, end };
                if let Err(input) = self.open_segment("output", end).await {
                    return input;
                }
            }
            match self.chunk("output").await {
                Chunk::Bytes(bytes) => {
                    return Some(Input::OutputBytes {
                        share,
                        bytes,
                        at_us: self.reader.clock.now_us(),
                    });
                }
                Chunk::End => {
                    self.seg = None;
                    self.end_pending = true;
                }
                Chunk::Failed => {
                    self.seg = None;
                    self.end_pending = true;
                    return Some(Input::OutputEnd {
                        share,
                        end: ChannelEnd::CopyError,
                    });
                }
                Chunk::Stopped => return None,
            }
        }
    }

    /// The next input of the events channel: one JSON document per segment, or how the
    /// subscription ended.
    async fn next_event(&mut self) -> Option<Input> {
        /// An event larger than this is not an event: stop reading it rather than buffer
        /// forever.
        const MAX_EVENT_BYTES: usize = 1 << 20;
        let share = self.reader.share;
        let end = |share, end| Input::EventsEnd { share, end };
        {
            if let Err(input) = self.open_segment("events", end).await {
                return input;
            }
            let mut doc = Vec::new();
            let mut failed = false;
            loop {
                match self.chunk("events").await {
                    Chunk::Bytes(chunk) => {
                        doc.extend_from_slice(&chunk);
                        if doc.len() > MAX_EVENT_BYTES {
                            break;
                        }
                    }
                    Chunk::End => break,
                    Chunk::Failed => {
                        failed = true;
                        break;
                    }
                    // A document cut short by the end of the session is not a malformed one.
                    Chunk::Stopped => return None,
                }
            }
            self.seg = None;
            if self.reader.stop.is_cancelled() {
                return None;
            }
            if failed && self.reader.retry {
                // A read cut short is a read error, not a malformed event: go-livepeer counts
                // it toward the events subscription's retries.
                return Some(end(share, ChannelEnd::Error));
            }
            Some(Input::Event {
                share,
                doc: Bytes::from(doc),
                at_us: self.reader.clock.now_us(),
            })
        }
    }
}

impl Reader {
    /// The output channel as a stream of inputs.
    fn output(self, sub: TrickleSubscriber) -> impl Stream<Item = Input> + Send {
        // Boxed: the state holds the subscription and is moved at every item.
        futures::stream::unfold(Box::new(ReadState::new(self, sub)), |mut st| async move {
            let input = st.next_output().await?;
            Some((input, st))
        })
    }

    /// The events channel as a stream of inputs.
    fn events(self, sub: TrickleSubscriber) -> impl Stream<Item = Input> + Send {
        // Boxed: the state holds the subscription and is moved at every item.
        futures::stream::unfold(Box::new(ReadState::new(self, sub)), |mut st| async move {
            let input = st.next_event().await?;
            Some((input, st))
        })
    }

    /// Publishes the control messages the core sends, in order; a message sent with several
    /// tries (the params replayed to a new orchestrator) that fails every time ends the task.
    async fn control(
        self,
        mut publisher: TricklePublisher,
        mut rx: mpsc::UnboundedReceiver<(Bytes, u32)>,
        tx: mpsc::UnboundedSender<Input>,
    ) {
        let share = self.share;
        loop {
            let (message, tries) = tokio::select! {
                () = self.stop.cancelled() => return,
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => return,
                },
            };
            let mut delivered = false;
            for _ in 0..tries.max(1) {
                if self.stop.is_cancelled() {
                    return;
                }
                match publisher.publish(message.clone()).await {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    Err(TrickleError::ChannelGone) => {
                        let _ = tx.send(Input::ControlGone { share });
                        return;
                    }
                    Err(e) => debug!(message = "Control message not delivered.", error = %e),
                }
            }
            if !delivered && tries > 1 {
                let _ = tx.send(Input::ControlReplayFailed { share });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Lane;

    #[test]
    fn a_lane_runs_commands_one_at_a_time_in_the_order_given() {
        let mut lane = Lane::new("channel");
        assert_eq!(lane.submit(1), Some(("channel", 1)), "idle: runs at once");
        // While the first runs (a write waiting for the server), many more arrive.
        for cmd in 2..=40 {
            assert_eq!(lane.submit(cmd), None, "{cmd} must wait");
        }
        let mut ran = vec![1];
        while let Some((channel, cmd)) = lane.give_back(Some("channel")) {
            assert_eq!(channel, "channel");
            ran.push(cmd);
            assert_eq!(lane.submit(100 + cmd), None, "the channel is busy again");
            if cmd == 40 {
                break;
            }
        }
        assert_eq!(ran, (1..=40).collect::<Vec<_>>());
        // Those submitted meanwhile follow, still in order.
        let (_, next) = lane.give_back(Some("channel")).unwrap();
        assert_eq!(next, 102);
    }

    #[test]
    fn a_closed_lane_runs_nothing_more() {
        let mut lane = Lane::new("channel");
        assert!(lane.submit(1).is_some());
        assert_eq!(lane.submit(2), None);
        assert_eq!(lane.give_back(None), None, "the command closed the channel");
        assert_eq!(lane.submit(3), None);
    }
}
