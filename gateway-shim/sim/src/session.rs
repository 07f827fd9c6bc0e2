//! The tokio driver of one simulated session: it reads the input channel, runs the frames
//! through [`PipelineCore`], writes the scheduled frames to the output channel at their due
//! time, applies control messages and publishes events.
//!
//! Three small tasks feed one loop: the input reader (trickle segments -> `TsDemuxer` ->
//! frames stamped with the tokio clock), the control reader (one JSON document per segment),
//! and the loop itself, which sleeps until the earliest of the next due frame and the core's
//! next timeout. Due frames are written as soon as their timer fires, never batched, because
//! the tester measures latency to the millisecond. The session ends when the input channel
//! disappears (the publisher deleted it, or the idle sweeper did), when the injected crash
//! happens, or at shutdown; it then deletes its four channels and frees its capacity slot.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use lvt_media::flat::FlatPicture;
use lvt_media::ts::{Frame, MuxConfig, MuxFrame, STREAM_TYPE_H264, TsDemuxer, TsMuxer};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::events::EventDoc;
use super::pipeline::{
    Decision, InputFrame, PipelineConfig, PipelineCore, PipelineOutput, ScheduledOutput,
};
use super::server::{SessionChannels, Shared, SlotGuard};
use lvt_wire::trickle::{LocalPublisher, LocalSegmentWriter, LocalSubscriber};

/// Largest control message accepted; a params update is a few kilobytes at most.
const MAX_CONTROL_BYTES: usize = 1 << 20;
/// Between the crash events and the channels vanishing: long enough for an events subscriber
/// blocked on the next segment to receive the `error` and final status documents (a real
/// runner's death also takes a moment to reach the orchestrator's channels).
const CRASH_GRACE: Duration = Duration::from_millis(200);
/// tokio's timer fires on the first millisecond tick at or after a deadline, so a frame would
/// leave on average about a millisecond late. Waking half a tick early and writing every frame
/// due within that half tick centres the error on zero (never more than 0.5 ms early), which
/// keeps the latency a tester measures close to the injected value.
const TIMER_SLACK_US: u64 = 500;

/// What the job start handler decided about a new session.
pub(crate) struct SessionStart {
    /// Position among the orchestrator's sessions, from 0 (varies the jitter seed).
    pub(crate) index: u64,
    pub(crate) model_id: String,
    /// The job request's initial params.
    pub(crate) params: Value,
    pub(crate) start_unix_ms: i64,
    /// Model load time of this session: the profile's cold or warm startup.
    pub(crate) startup_us: u64,
}

/// Everything a session task needs, prepared by the job start handler before it answers, so
/// that the input subscriber already waits for segment 0 when the gateway starts publishing.
pub(crate) struct SessionContext {
    shared: Arc<Shared>,
    channels: SessionChannels,
    start: SessionStart,
    slot: SlotGuard,
    input: LocalSubscriber,
    control: LocalSubscriber,
    output: LocalPublisher,
    events: LocalPublisher,
}

impl SessionContext {
    pub(crate) fn new(
        shared: Arc<Shared>,
        channels: SessionChannels,
        start: SessionStart,
        slot: SlotGuard,
    ) -> Result<Self, String> {
        let missing = |name: &str| format!("trickle channel {name} vanished during job start");
        let input = shared
            .trickle
            .local_subscriber(&channels.input)
            .ok_or_else(|| missing(&channels.input))?;
        let control = shared
            .trickle
            .local_subscriber(&channels.control)
            .ok_or_else(|| missing(&channels.control))?;
        let output = shared
            .trickle
            .local_publisher(&channels.output)
            .ok_or_else(|| missing(&channels.output))?;
        let events = shared
            .trickle
            .local_publisher(&channels.events)
            .ok_or_else(|| missing(&channels.events))?;
        Ok(Self {
            shared,
            channels,
            start,
            slot,
            input,
            control,
            output,
            events,
        })
    }
}

/// What the input reader hands to the session loop.
enum InputMsg {
    /// A new input segment started arriving at this time.
    Segment(u64),
    /// A complete H.264 frame.
    Frame(Frame),
}

/// Microseconds since `origin` on the tokio clock (so paused-time tests work).
fn micros_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Runs one session to its end. Never panics on input: bad TS is counted by the demuxer, bad
/// control JSON is logged and ignored.
pub(crate) async fn run_session(ctx: SessionContext) {
    let SessionContext {
        shared,
        channels,
        start,
        slot,
        input,
        control,
        output,
        events,
    } = ctx;
    let origin = Instant::now();
    let cfg = &shared.cfg;
    let status_interval_us = u64::try_from(cfg.status_interval.as_micros()).unwrap_or(u64::MAX);
    let mut pipeline_cfg = PipelineConfig::from_profile(
        &cfg.profile,
        &start.model_id,
        start.index,
        status_interval_us,
    );
    // The job start handler decided between the profile's cold and warm load time.
    pipeline_cfg.startup_us = start.startup_us;
    let mut core = PipelineCore::new(pipeline_cfg, 0, start.start_unix_ms, start.params);
    let stop = shared.stop.child_token();

    let (input_tx, mut input_rx) = mpsc::channel::<InputMsg>(1024);
    let input_task = tokio::spawn(read_input(input, origin, input_tx));
    let (control_tx, mut control_rx) = mpsc::channel::<(Value, u64)>(64);
    let control_task = tokio::spawn(read_control(control, origin, control_tx));

    let mut writer = OutputWriter::new(output);
    let mut events = EventWriter { publisher: events };
    let mut pending: VecDeque<ScheduledOutput<Frame>> = VecDeque::new();
    let mut control_open = true;
    let mut crashed = false;
    let mut overlay = OverlayPictures::default();

    loop {
        while let Some(out) = core.poll_output() {
            match out {
                PipelineOutput::Event(doc) => events.publish(&doc),
                PipelineOutput::Crash => crashed = true,
            }
        }
        if crashed {
            warn!(
                message = "Simulated crash: deleting the session's channels.",
                orchestrator = %cfg.name,
                manifest_id = %channels.mid
            );
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(CRASH_GRACE) => {}
            }
            break;
        }
        let next_due = pending
            .front()
            .map(|o| o.due_us.saturating_sub(TIMER_SLACK_US));
        let deadline_us = match (next_due, core.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match deadline_us {
                Some(at) => tokio::time::sleep_until(origin + Duration::from_micros(at)).await,
                None => std::future::pending().await,
            }
        };

        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = sleep => {
                let now = micros_since(origin);
                core.handle_timeout(now);
                while pending
                    .front()
                    .is_some_and(|o| o.due_us <= now + TIMER_SLACK_US)
                {
                    if let Some(out) = pending.pop_front() {
                        writer.write(&out);
                        core.handle_output_written(micros_since(origin));
                    }
                }
            }
            msg = input_rx.recv() => match msg {
                Some(InputMsg::Segment(at_us)) => core.handle_input_segment(at_us),
                Some(InputMsg::Frame(frame)) => {
                    let received_us = frame.last_byte_us;
                    core.handle_timeout(received_us);
                    let Some(pts) = frame.pts else {
                        debug!(message = "Input frame without PTS dropped.", manifest_id = %channels.mid);
                        continue;
                    };
                    let keyframe = frame.keyframe;
                    if keyframe {
                        overlay.observe_input(&frame.data);
                    }
                    let decision = core.handle_input_frame(
                        InputFrame { pts, keyframe, payload: frame },
                        received_us,
                    );
                    if let Decision::Output(mut out) = decision {
                        if out.overlay {
                            match overlay.picture(out.keyframe) {
                                Some(data) => out.payload.data = data.into(),
                                None => continue,
                            }
                        }
                        pending.push_back(out);
                    }
                }
                None => {
                    info!(
                        message = "Input channel closed: session ends.",
                        orchestrator = %cfg.name,
                        manifest_id = %channels.mid
                    );
                    break;
                }
            },
            msg = control_rx.recv(), if control_open => match msg {
                Some((params, at_us)) => {
                    core.handle_timeout(at_us);
                    if core.handle_control(params, at_us) {
                        info!(message = "Params updated.", manifest_id = %channels.mid);
                    }
                }
                None => control_open = false,
            },
        }
    }

    writer.finish();
    channels.delete_all(&shared.trickle);
    input_task.abort();
    control_task.abort();
    let stats = core.stats();
    info!(
        message = "Session ended.",
        orchestrator = %cfg.name,
        manifest_id = %channels.mid,
        crashed,
        frames_in = stats.frames_in,
        frames_written = stats.frames_written,
        dropped_loading = stats.dropped_loading,
        dropped_decimated = stats.dropped_decimated,
        dropped_stalled = stats.dropped_stalled
    );
    drop(slot);
}

/// Reads input segments, demuxes them and forwards complete H.264 frames with the tokio time
/// their bytes arrived.
async fn read_input(mut sub: LocalSubscriber, origin: Instant, tx: mpsc::Sender<InputMsg>) {
    let mut demux = TsDemuxer::new();
    while let Some(mut segment) = sub.next_segment().await {
        if tx
            .send(InputMsg::Segment(micros_since(origin)))
            .await
            .is_err()
        {
            return;
        }
        while let Some(chunk) = segment.next_chunk().await {
            demux.handle_bytes(&chunk, micros_since(origin));
            if !forward_frames(&mut demux, &tx).await {
                return;
            }
        }
        // A segment holds whole frames, so its end completes the last one.
        demux.finish(micros_since(origin));
        if !forward_frames(&mut demux, &tx).await {
            return;
        }
    }
}

/// Sends every complete video frame; false when the session loop has gone.
async fn forward_frames(demux: &mut TsDemuxer, tx: &mpsc::Sender<InputMsg>) -> bool {
    while let Some(frame) = demux.poll_frame() {
        // The simulated model only sees video; audio is not passed through (ai-runner's noop
        // pipeline forwards it, but the measurements lvt makes are on video).
        if frame.stream_type != STREAM_TYPE_H264 {
            continue;
        }
        if tx.send(InputMsg::Frame(frame)).await.is_err() {
            return false;
        }
    }
    true
}

/// Reads control segments: one JSON document each.
async fn read_control(mut sub: LocalSubscriber, origin: Instant, tx: mpsc::Sender<(Value, u64)>) {
    while let Some(mut segment) = sub.next_segment().await {
        let mut body: Vec<u8> = Vec::new();
        let mut too_big = false;
        while let Some(chunk) = segment.next_chunk().await {
            if body.len() + chunk.len() > MAX_CONTROL_BYTES {
                too_big = true;
                continue;
            }
            body.extend_from_slice(&chunk);
        }
        if too_big {
            warn!(
                message = "Control message too large; ignored.",
                limit = MAX_CONTROL_BYTES
            );
            continue;
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => {
                if tx.send((value, micros_since(origin))).await.is_err() {
                    return;
                }
            }
            // ai-runner logs a bad control message and carries on; so does the simulator.
            Err(error) => warn!(message = "Control message is not JSON; ignored.", %error),
        }
    }
}

/// The loading overlay's pictures, sized like the input (read from its SPS).
#[derive(Default)]
struct OverlayPictures {
    flat: Option<FlatPicture>,
    /// Frames of the current run after its IDR.
    repeats: u32,
    /// IDR pictures written, for `idr_pic_id`.
    idrs: u32,
}

impl OverlayPictures {
    /// An input keyframe: follows the input's picture size.
    fn observe_input(&mut self, access_unit: &[u8]) {
        let Some(sps) = lvt_media::h264::find_sps(access_unit) else {
            return;
        };
        let same = self
            .flat
            .as_ref()
            .is_some_and(|f| (f.width(), f.height()) == (sps.width, sps.height));
        if !same {
            self.flat = FlatPicture::new(sps.width, sps.height);
        }
    }

    /// The next overlay frame: the run's IDR when `starts_run`, else a repeat of it. `None`
    /// before any input picture size is known (or for a size H.264 cannot carry); the frame
    /// is then not sent.
    fn picture(&mut self, starts_run: bool) -> Option<Vec<u8>> {
        let flat = self.flat.as_ref()?;
        if starts_run {
            self.repeats = 0;
            self.idrs = self.idrs.wrapping_add(1);
            // Two IDR pictures in a row must differ in idr_pic_id; libx264 starts from 0.
            Some(flat.idr(self.idrs))
        } else {
            self.repeats = self.repeats.wrapping_add(1);
            Some(flat.repeat(self.repeats))
        }
    }
}

/// Muxes scheduled frames with the session's TS muxer, one output segment per keyframe.
struct OutputWriter {
    publisher: LocalPublisher,
    muxer: TsMuxer,
    segment: Option<LocalSegmentWriter>,
    buf: Vec<u8>,
}

impl OutputWriter {
    fn new(publisher: LocalPublisher) -> Self {
        Self {
            publisher,
            muxer: TsMuxer::new(MuxConfig::default()),
            segment: None,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    fn write(&mut self, out: &ScheduledOutput<Frame>) {
        if out.keyframe || self.segment.is_none() {
            if let Some(previous) = self.segment.take() {
                previous.close();
            }
            self.segment = Some(self.publisher.begin_segment());
        }
        self.buf.clear();
        self.muxer.mux_frame(
            &MuxFrame {
                pts: out.pts,
                dts: out.payload.dts,
                keyframe: out.keyframe,
                data: &out.payload.data,
            },
            &mut self.buf,
        );
        if let Some(segment) = &self.segment {
            segment.write(&self.buf);
        }
    }

    fn finish(&mut self) {
        if let Some(segment) = self.segment.take() {
            segment.close();
        }
    }
}

/// Publishes event documents, one per segment.
struct EventWriter {
    publisher: LocalPublisher,
}

impl EventWriter {
    fn publish(&mut self, doc: &EventDoc) {
        let segment = self.publisher.begin_segment();
        segment.write(doc.to_json().as_bytes());
        segment.close();
    }
}
