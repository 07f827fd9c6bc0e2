//! What runs a stream's pipeline behind the simulated gateway: the [`Runner`] contract, and
//! the built-in runner that gives every access unit back after a fixed latency.
//!
//! go-livepeer relays a WHIP stream to an orchestrator over trickle and plays what comes back.
//! The gateway here hands each stream to a [`Runner`]: the [`BuiltInRunner`] below (no
//! orchestrator at all), or a relay to orchestrators through lvt's selection and swap core,
//! which lives with the gateway code (`lvt_gateway::gateway::relay`) and is plugged in by
//! `lvt sim gateway --orchestrator`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::events::PipelineState;

/// One stream as the gateway hands it to its runner.
#[derive(Debug, Clone)]
pub struct StreamStart {
    /// The stream name of the WHIP path.
    pub name: String,
    /// The `streamId` query parameter (the key of the status route).
    pub stream_id: String,
    /// The gateway's request id of this ingest.
    pub request_id: String,
    /// The `pipeline` query parameter (the model id).
    pub pipeline: String,
    /// The `params` query parameter (a JSON object; `{}` when absent).
    pub params: Value,
    /// The `orchestrator` query parameter: pins the stream to orchestrators whose URL contains
    /// it (a runner relaying to orchestrators applies it; the built-in one has none).
    pub orchestrator: Option<String>,
}

/// What the gateway hands its runner.
#[derive(Debug, Clone)]
pub enum RunnerInput {
    /// One received video access unit (Annex B): its PTS on the ingest's timeline (90 kHz, 0
    /// at the first access unit: `IngestClock`), when it arrived and whether it is an IDR.
    Video {
        pts: u64,
        at: Instant,
        data: Bytes,
        keyframe: bool,
    },
    /// One received Opus packet, its PTS on the video's timeline (90 kHz: go-livepeer's
    /// segmenter rescales audio to it). Only once video has started, as go-livepeer drops
    /// audio until its segmenter has.
    Audio { pts: u64, data: Bytes },
    /// A params update (the body of the update route).
    Params(Value),
}

/// What the runner gives back.
#[derive(Debug, Clone)]
pub enum RunnerOutput {
    /// One output access unit, its PTS as RTP time (90 kHz).
    Video {
        pts: u64,
        data: Bytes,
        keyframe: bool,
    },
    /// The pipeline's state changed (the gateway builds its status from it).
    State(PipelineState),
    /// The runner's latest status event, as an orchestrator's events channel carries it; the
    /// status route shows it as go-livepeer does.
    Status(Value),
    /// The runner gave up on the stream (no orchestrator took it, too many swaps): the gateway
    /// closes the ingest, as go-livepeer does when its stream ends.
    Ended(String),
}

/// The two ends of one stream's runner.
pub struct RunnerLink {
    /// Hands the runner one input; `false` once it takes no more. Dropped when the ingest
    /// ends, which ends the runner's stream.
    pub input: Box<dyn FnMut(RunnerInput) -> bool + Send>,
    /// What the runner gives back, until it ends.
    pub output: mpsc::UnboundedReceiver<RunnerOutput>,
}

impl RunnerLink {
    /// A link over a channel of inputs: what a runner running as a task needs.
    pub fn channel() -> (
        RunnerLink,
        mpsc::UnboundedReceiver<RunnerInput>,
        mpsc::UnboundedSender<RunnerOutput>,
    ) {
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let link = RunnerLink {
            input: Box::new(move |input| in_tx.send(input).is_ok()),
            output: out_rx,
        };
        (link, in_rx, out_tx)
    }
}

/// Runs the pipeline of each stream the gateway ingests.
pub trait Runner: Send + Sync + 'static {
    /// Starts one stream; called from within the gateway's tokio runtime.
    fn start(&self, stream: StreamStart) -> RunnerLink;
}

/// The built-in runner: each access unit comes back `latency` after it arrived, once the runner
/// is ONLINE (`startup` after the first video; LOADING before, and no output).
///
/// With `swap`, it plays what a viewer sees when the gateway swaps orchestrators in the middle
/// of a stream: at `at` after the first video the output stops (what was still in processing
/// is lost, the state goes back to LOADING), input is dropped for `freeze` (the next
/// orchestrator's start), and output resumes from the next input keyframe (its first segment).
#[derive(Debug, Clone, Copy)]
pub struct BuiltInRunner {
    pub latency: Duration,
    pub startup: Duration,
    pub swap: Option<InjectedSwap>,
}

/// A swap the built-in runner plays: when, and how long no input is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedSwap {
    pub at: Duration,
    pub freeze: Duration,
}

impl BuiltInRunner {
    /// The runner `config` describes.
    pub fn new(config: &super::GatewayConfig) -> Self {
        BuiltInRunner {
            latency: config.latency,
            startup: config.startup,
            swap: config.swap,
        }
    }
}

impl Runner for BuiltInRunner {
    fn start(&self, _stream: StreamStart) -> RunnerLink {
        let (link, input, output) = RunnerLink::channel();
        tokio::spawn(built_in(*self, input, output));
        link
    }
}

async fn built_in(
    runner: BuiltInRunner,
    mut input: mpsc::UnboundedReceiver<RunnerInput>,
    output: mpsc::UnboundedSender<RunnerOutput>,
) {
    let mut queue: VecDeque<(Instant, RunnerOutput)> = VecDeque::new();
    let mut online_at: Option<Instant> = None;
    let mut online = false;
    // The injected swap: when it starts, and when input is taken again (from a keyframe).
    let mut swap: Option<(Instant, Instant)> = None;
    let mut resumed = true;
    loop {
        let next_due = queue.front().map(|(due, _)| *due);
        tokio::select! {
            got = input.recv() => match got {
                Some(RunnerInput::Video { pts, at, data, keyframe }) => {
                    if online_at.is_none() {
                        online_at = Some(at + runner.startup);
                        swap = runner.swap.map(|s| (at + s.at, at + s.at + s.freeze));
                        let _ = output.send(RunnerOutput::State(PipelineState::Loading));
                    }
                    if let Some((from, until)) = swap
                        && at >= from
                    {
                        if resumed {
                            // The orchestrator is left: what it had not output is lost.
                            resumed = false;
                            queue.clear();
                            online = false;
                            let _ = output.send(RunnerOutput::State(PipelineState::Loading));
                        }
                        if at < until || !keyframe {
                            continue;
                        }
                        swap = None;
                        resumed = true;
                    }
                    queue.push_back((at + runner.latency, RunnerOutput::Video { pts, data, keyframe }));
                }
                // The built-in pipeline gives back video only.
                Some(RunnerInput::Params(_) | RunnerInput::Audio { .. }) => {}
                None => return,
            },
            _ = sleep_until_opt(next_due) => {
                let now = Instant::now();
                while queue.front().is_some_and(|(due, _)| *due <= now) {
                    let (_, frame) = queue.pop_front().expect("front exists");
                    if online_at.is_some_and(|at| at <= now) {
                        if !online {
                            online = true;
                            let _ = output.send(RunnerOutput::State(PipelineState::Online));
                        }
                        if output.send(frame).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever without one.
pub(super) async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
