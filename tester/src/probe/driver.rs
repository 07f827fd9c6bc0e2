//! The trickle driver of a [`SessionCore`]: one `select!` loop that feeds the core what the
//! channels saw and carries out what it decides.
//!
//! Channel tasks only move bytes: a publisher per share writes the frames the core schedules
//! (stamping each frame when its first byte goes out), two readers per share hand output bytes
//! and event documents over with the moment they arrived, and a control task publishes what
//! the core sends. Every decision (timing, swaps, timeouts, the drain, the record) is the
//! core's, so the same core runs under the simulated-time tests in `lvt_gateway::session`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lvt_gateway::gateway::observe::{ObservationSink, observe};
use lvt_gateway::gateway::select::Candidate;
use lvt_gateway::live::OrchestratorUri;
use lvt_gateway::session::{
    ChannelEnd, Input, Mode, Output, PublishError, READ_RETRY_PAUSE, SessionCore, SessionPlan,
    ShareId, StartFailure, StartInfo,
};
use lvt_gateway::trickle::{SegmentWriter, TrickleError, TricklePublisher, TrickleSubscriber};
use lvt_schema::SessionReport;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

use super::start::{StartedJob, start_job};
use super::{Clock, ProbeOptions, ProbeRun, unix_ms};
use crate::encode::{Clip, ReplaySegment, Replayer};

/// How the driver gets a job for a start attempt.
pub(crate) enum Starter {
    /// GetOrchestrator, payment and job start, as a gateway does.
    Gateway,
    /// The job was started by something else: its URLs are known.
    Given(lvt_gateway::live::JobUrls),
}

/// What the driver needs besides the core.
pub(crate) struct Edge<'a> {
    pub opts: &'a ProbeOptions,
    pub clip: Arc<Clip>,
    pub http: &'a reqwest::Client,
    pub starter: Starter,
    pub sink: Option<ObservationSink>,
}

/// A command for a share's publishing task.
enum PublishCmd {
    Begin(ReplaySegment),
    Frame(u32),
    End,
    /// End the input channel (DELETE), which is how a gateway ends a job.
    Close,
}

/// The IO of one share.
struct ShareIo {
    publish: mpsc::UnboundedSender<PublishCmd>,
    control: mpsc::UnboundedSender<(Bytes, u32)>,
    /// Stops the readers and the control task.
    stop: CancellationToken,
    /// The job's payment loop runs while the share does.
    _payments: DropGuard,
}

/// Runs `core` to its end over trickle. Never fails: the record says what happened.
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
    let mut tasks = Tasks {
        http: edge.http,
        clock: clock.clone(),
        tx: tx.clone(),
        readers: JoinSet::new(),
        publishers: JoinSet::new(),
    };
    let mut replayer = Replayer::new(edge.clip.clone(), 0);
    let mut given = match edge.starter {
        Starter::Given(urls) => Some(urls),
        Starter::Gateway => None,
    };
    let mut cancelled = false;
    loop {
        let deadline_us = loop {
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
                    let clock = clock.clone();
                    let session_id = session_id.clone();
                    starts.spawn(async move {
                        let Ok(target) = uri.parse::<OrchestratorUri>() else {
                            let failure = StartFailure::Grpc {
                                busy: false,
                                detail: format!("invalid orchestrator address {uri}"),
                            };
                            return (candidate, StartInfo::default(), Err(failure));
                        };
                        let (info, result) =
                            start_job(&opts, &target, &http, &clock, &session_id).await;
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
                    let io = tasks.open_share(job, share, retry_reads);
                    if shares.len() <= share {
                        shares.resize_with(share + 1, || None);
                    }
                    shares[share] = Some(io);
                }
                Output::BeginSegment { share, seq } => {
                    let segment = replayer.next_segment();
                    debug_assert_eq!(segment.seq, seq, "the core and the clip count alike");
                    if let Some(io) = share.and_then(|s| shares.get(s)).and_then(Option::as_ref) {
                        let _ = io.publish.send(PublishCmd::Begin(segment));
                    }
                }
                Output::WriteFrame { share, index } => {
                    send_publish(&shares, share, PublishCmd::Frame(index));
                }
                Output::EndSegment { share } => send_publish(&shares, share, PublishCmd::End),
                Output::LeaveShare { share } => send_publish(&shares, share, PublishCmd::Close),
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
                    if let Some(io) = shares.get_mut(share).and_then(Option::take) {
                        io.stop.cancel();
                    }
                }
                Output::Observe(observation) => observe(edge.sink.as_ref(), observation),
                Output::Finished(finished) => {
                    starts.abort_all();
                    // Each publisher ends its input channel (bounded by its own timeout);
                    // then the readers, already stopped, are given a moment to end.
                    let Tasks {
                        mut readers,
                        mut publishers,
                        ..
                    } = tasks;
                    let closing = async { while publishers.join_next().await.is_some() {} };
                    if tokio::time::timeout(Duration::from_secs(3), closing)
                        .await
                        .is_err()
                    {
                        debug!(message = "Closing the input channels timed out.");
                        publishers.abort_all();
                    }
                    let joining = async { while readers.join_next().await.is_some() {} };
                    if tokio::time::timeout(Duration::from_secs(3), joining)
                        .await
                        .is_err()
                    {
                        readers.abort_all();
                    }
                    return ProbeRun {
                        report: finished.report,
                        interrupted: finished.interrupted,
                    };
                }
            }
        };
        let sleep = async {
            if deadline_us == u64::MAX {
                std::future::pending::<()>().await;
            } else {
                tokio::time::sleep_until(clock.at(deadline_us)).await;
            }
        };
        tokio::select! {
            biased;
            () = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                core.handle_input(Input::Cancel, clock.now_us());
            }
            Some(input) = rx.recv() => {
                core.handle_input(input, clock.now_us());
                // Take what else is queued in one go: one wakeup, many inputs.
                while let Ok(input) = rx.try_recv() {
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
            () = sleep => core.handle_input(Input::Timeout, clock.now_us()),
        }
    }
}

fn send_publish(shares: &[Option<ShareIo>], share: ShareId, cmd: PublishCmd) {
    if let Some(Some(io)) = shares.get(share) {
        let _ = io.publish.send(cmd);
    }
}

/// The channel tasks of every share, and what starting them takes.
struct Tasks<'a> {
    http: &'a reqwest::Client,
    clock: Clock,
    tx: mpsc::UnboundedSender<Input>,
    readers: JoinSet<()>,
    publishers: JoinSet<()>,
}

impl Tasks<'_> {
    /// Starts the four channel tasks of a share.
    fn open_share(&mut self, job: StartedJob, share: ShareId, retry_reads: bool) -> ShareIo {
        let urls = &job.urls;
        let http = self.http;
        let stop = CancellationToken::new();
        let reader = Reader {
            share,
            retry: retry_reads,
            clock: self.clock.clone(),
            tx: self.tx.clone(),
            stop: stop.clone(),
        };
        self.readers.spawn(
            reader
                .clone()
                .output(TrickleSubscriber::new(http.clone(), &urls.subscribe_url)),
        );
        self.readers.spawn(
            reader
                .clone()
                .events(TrickleSubscriber::new(http.clone(), &urls.events_url)),
        );
        let (control, control_rx) = mpsc::unbounded_channel();
        self.readers.spawn(reader.control(
            TricklePublisher::new(http.clone(), &urls.control_url),
            control_rx,
        ));
        let (publish, publish_rx) = mpsc::unbounded_channel();
        self.publishers.spawn(publish_task(
            TricklePublisher::new(http.clone(), &urls.publish_url),
            publish_rx,
            share,
            self.clock.clone(),
            self.tx.clone(),
        ));
        ShareIo {
            publish,
            control,
            stop,
            _payments: job.payments,
        }
    }
}

fn publish_error(e: &TrickleError) -> PublishError {
    PublishError {
        gone: matches!(e, TrickleError::ChannelGone),
        detail: e.to_string(),
    }
}

/// Writes what the core schedules to one input channel. Each segment is answered exactly once
/// with [`Input::SegmentDone`]; a segment's answer never holds up the next segment.
async fn publish_task(
    mut publisher: TricklePublisher,
    mut rx: mpsc::UnboundedReceiver<PublishCmd>,
    share: ShareId,
    clock: Clock,
    tx: mpsc::UnboundedSender<Input>,
) {
    let mut open: Option<(ReplaySegment, SegmentWriter)> = None;
    let mut finishing = JoinSet::new();
    loop {
        let cmd = tokio::select! {
            cmd = rx.recv() => cmd,
            Some(done) = finishing.join_next() => {
                let result = match done {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(publish_error(&e)),
                    Err(e) => Err(PublishError { gone: false, detail: e.to_string() }),
                };
                let _ = tx.send(Input::SegmentDone { share, result });
                continue;
            }
        };
        match cmd {
            None => return,
            Some(PublishCmd::Begin(segment)) => match publisher.begin_segment().await {
                Ok(writer) => open = Some((segment, writer)),
                Err(e) => {
                    open = None;
                    let result = Err(publish_error(&e));
                    let _ = tx.send(Input::SegmentDone { share, result });
                }
            },
            Some(PublishCmd::Frame(index)) => {
                let Some((segment, writer)) = open.as_mut() else {
                    continue;
                };
                let Some(frame) = segment.frames.get(index as usize) else {
                    continue;
                };
                let at_us = clock.now_us();
                let _ = tx.send(Input::FrameSent {
                    share,
                    pts: frame.pts,
                    at_us,
                });
                if let Err(e) = writer.write(segment.data.slice(frame.range.clone())).await {
                    debug!(message = "Input segment write failed.", error = %e);
                    open = None;
                    let _ = tx.send(Input::SegmentDone {
                        share,
                        result: Err(publish_error(&e)),
                    });
                }
            }
            Some(PublishCmd::End) => {
                if let Some((segment, writer)) = open.take() {
                    let bytes = segment.data.len() as u64;
                    let _ = tx.send(Input::SegmentWritten { share, bytes });
                    finishing.spawn(writer.finish());
                }
            }
            Some(PublishCmd::Close) => {
                drop(open.take());
                if tokio::time::timeout(Duration::from_secs(2), publisher.close())
                    .await
                    .is_err()
                {
                    debug!(message = "Closing the input channel timed out.");
                }
                return;
            }
        }
    }
}

/// What a share's reading tasks share.
#[derive(Clone)]
struct Reader {
    share: ShareId,
    /// Retry a failed read after [`READ_RETRY_PAUSE`], as go-livepeer's subscriptions do.
    retry: bool,
    clock: Clock,
    tx: mpsc::UnboundedSender<Input>,
    stop: CancellationToken,
}

impl Reader {
    fn send(&self, input: Input) {
        let _ = self.tx.send(input);
    }

    /// The next segment of a subscription. When it ended (404 or end of stream) or a read
    /// failed, the core is told through `end`; `Some(None)` means read again (after the retry
    /// pause), `None` that the subscription is over.
    async fn next_segment(
        &self,
        sub: &mut TrickleSubscriber,
        channel: &'static str,
        end: impl Fn(ChannelEnd) -> Input,
    ) -> Option<Option<lvt_gateway::trickle::SubscribedSegment>> {
        let next = tokio::select! {
            () = self.stop.cancelled() => return None,
            s = sub.next_segment() => s,
        };
        match next {
            Ok(Some(seg)) => Some(Some(seg)),
            Ok(None) => {
                self.send(end(ChannelEnd::Ended));
                None
            }
            Err(error) => {
                debug!(message = "Subscription read failed.", channel, %error);
                self.send(end(ChannelEnd::Error));
                self.retry_after_error().await.then_some(None)
            }
        }
    }

    /// After a failed read: with retries, pauses and says to go on.
    async fn retry_after_error(&self) -> bool {
        if !self.retry {
            return false;
        }
        tokio::select! {
            () = self.stop.cancelled() => false,
            () = tokio::time::sleep(READ_RETRY_PAUSE) => true,
        }
    }

    /// The next chunk of a segment, `None` at its end, on a read error (`Err(())`), or when
    /// the share stopped.
    async fn next_chunk(
        &self,
        seg: &mut lvt_gateway::trickle::SubscribedSegment,
        channel: &'static str,
    ) -> Result<Option<Bytes>, ()> {
        let next = tokio::select! {
            () = self.stop.cancelled() => return Ok(None),
            c = seg.chunk() => c,
        };
        next.map_err(|error| {
            debug!(message = "Segment read ended with an error.", channel, %error);
        })
    }

    /// Reads the output channel, handing bytes over as they arrive so each frame's arrival is
    /// the moment its first byte came in.
    async fn output(self, mut sub: TrickleSubscriber) {
        let share = self.share;
        loop {
            let end = |end| Input::OutputEnd { share, end };
            let mut seg = match self.next_segment(&mut sub, "output", end).await {
                Some(Some(seg)) => seg,
                Some(None) => continue,
                None => return,
            };
            loop {
                match self.next_chunk(&mut seg, "output").await {
                    Ok(Some(bytes)) => self.send(Input::OutputBytes {
                        share,
                        bytes,
                        at_us: self.clock.now_us(),
                    }),
                    Ok(None) => break,
                    Err(()) => {
                        self.send(Input::OutputEnd {
                            share,
                            end: ChannelEnd::CopyError,
                        });
                        break;
                    }
                }
            }
            if self.stop.is_cancelled() {
                return;
            }
            self.send(Input::OutputSegmentEnd { share });
        }
    }

    /// Reads the events channel: one JSON document per segment.
    async fn events(self, mut sub: TrickleSubscriber) {
        /// An event larger than this is not an event: stop reading it rather than buffer
        /// forever.
        const MAX_EVENT_BYTES: usize = 1 << 20;
        let share = self.share;
        loop {
            let end = |end| Input::EventsEnd { share, end };
            let mut seg = match self.next_segment(&mut sub, "events", end).await {
                Some(Some(seg)) => seg,
                Some(None) => continue,
                None => return,
            };
            let mut doc = Vec::new();
            let mut failed = false;
            loop {
                match self.next_chunk(&mut seg, "events").await {
                    Ok(Some(chunk)) => {
                        doc.extend_from_slice(&chunk);
                        if doc.len() > MAX_EVENT_BYTES {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(()) => {
                        failed = true;
                        break;
                    }
                }
            }
            if self.stop.is_cancelled() {
                // A document cut short by the end of the session is not a malformed one.
                return;
            }
            if failed && self.retry {
                // A read cut short is a read error, not a malformed event: go-livepeer counts
                // it toward the events subscription's retries.
                self.send(Input::EventsEnd {
                    share,
                    end: ChannelEnd::Error,
                });
                continue;
            }
            self.send(Input::Event {
                share,
                doc: Bytes::from(doc),
                at_us: self.clock.now_us(),
            });
        }
    }

    /// Publishes the control messages the core sends, in order; a message sent with several
    /// tries (the params replayed to a new orchestrator) that fails every time ends the task.
    async fn control(
        self,
        mut publisher: TricklePublisher,
        mut rx: mpsc::UnboundedReceiver<(Bytes, u32)>,
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
                        self.send(Input::ControlGone { share });
                        return;
                    }
                    Err(e) => debug!(message = "Control message not delivered.", error = %e),
                }
            }
            if !delivered && tries > 1 {
                self.send(Input::ControlReplayFailed { share });
                return;
            }
        }
    }
}
