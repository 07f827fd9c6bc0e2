//! measure: the sans-IO recorder that turns one session's observations into its metrics.
//!
//! It owns every measured value of a [`lvt_schema::SessionMetrics`] that comes from the media
//! and events channels (latency, startup, FPS, jitter, stalls, counters) and the runner's
//! self-reports ([`lvt_schema::RunnerReport`]). The probe engine feeds it frames, segments and
//! events together with the times it observed them, on the session's monotonic clock in
//! microseconds; the recorder never reads a clock, so every timing case is testable exactly.
//!
//! Memory stays bounded for a session of any practical length: input send times live in a
//! bounded FIFO map ([`MAX_PENDING_FRAMES`]), latencies in an HDR histogram, output FPS in one
//! counter per window and intervals in streaming sums; no per-frame list is kept. `finish` is
//! linear in the number of FPS windows.
//!
//! docs/metrics.md is the catalog that defines each metric and names the code computing it.

mod content;
mod events;

pub use events::envelope;
mod latency;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use lvt_schema::{
    FpsSummary, LatencySummary, LoadingOverlay, MediaErrors, RunnerReport, SessionMetrics,
    StallSummary,
};

use self::events::RunnerTracker;
use self::latency::LatencyHistogram;
use self::stats::{RunningStats, nearest_rank};

/// How many sent input frames are remembered for PTS matching. At 30 fps this covers about nine
/// minutes of input, far beyond any latency worth measuring; frames the runner drops (for
/// example 30 fps in, 12 fps out) fall out of the FIFO instead of growing it.
pub const MAX_PENDING_FRAMES: usize = 16_384;

/// The most FPS windows counted: about twelve days of one-second windows. It only guards memory
/// against a nonsensical clock; later frames still count for everything but FPS.
const MAX_FPS_WINDOWS: usize = 1 << 20;

/// Output frames needed before their PTS matching is judged ([`SessionRecorder::finish`]'s
/// `pts_untrusted`): a third of a second at 30 fps.
pub const PLAUSIBLE_MIN_FRAMES: u64 = 10;

/// Tuning of a [`SessionRecorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureConfig {
    /// A gap between consecutive output frames longer than this is a stall (default 500 ms).
    pub stall_threshold_ms: u64,
    /// Length of the windows output FPS is counted in (default 1000 ms; 0 is treated as 1 ms).
    pub fps_window_ms: u64,
    /// Bound on each list of runner self-reports kept (error messages, states, trace types)
    /// (default 64).
    pub max_events_kept: usize,
    /// The output's timestamps are not the input's (a gateway's WebRTC playback rewrites
    /// them): e2e latency comes from the pictures alone, and output PTS are neither matched nor
    /// judged (default false).
    pub timestamps_rewritten: bool,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        Self {
            stall_threshold_ms: 500,
            fps_window_ms: 1000,
            max_events_kept: 64,
            timestamps_rewritten: false,
        }
    }
}

/// When an input frame was sent, and whether its output has arrived yet.
#[derive(Debug, Clone, Copy)]
struct PendingFrame {
    sent_at_us: u64,
    arrived: bool,
}

/// Sent input frames by PTS, evicted oldest first once [`MAX_PENDING_FRAMES`] is reached.
#[derive(Debug, Default)]
struct PendingFrames {
    by_pts: HashMap<u64, PendingFrame>,
    /// Insertion order as `(pts, sent_at_us)`; the send time tells a stale entry (its PTS was
    /// sent again later) from the live one, so evicting it leaves the newer send in place.
    order: VecDeque<(u64, u64)>,
}

impl PendingFrames {
    fn insert(&mut self, pts: u64, sent_at_us: u64) {
        if self.order.len() >= MAX_PENDING_FRAMES
            && let Some((old_pts, old_sent_at_us)) = self.order.pop_front()
            && self
                .by_pts
                .get(&old_pts)
                .is_some_and(|frame| frame.sent_at_us == old_sent_at_us)
        {
            self.by_pts.remove(&old_pts);
        }
        // A PTS sent again (the encoder restarted its timestamps) replaces the earlier send:
        // outputs from now on answer the new frame.
        self.by_pts.insert(
            pts,
            PendingFrame {
                sent_at_us,
                arrived: false,
            },
        );
        self.order.push_back((pts, sent_at_us));
    }
}

/// Output frame rate, counted per window starting at the first output frame.
#[derive(Debug, Default)]
struct FpsWindows {
    /// Output frames counted in each window, indexed from the first output frame's window.
    counts: Vec<u32>,
}

impl FpsWindows {
    fn count(&mut self, window_index: u64) {
        let Ok(index) = usize::try_from(window_index) else {
            return;
        };
        if index >= MAX_FPS_WINDOWS {
            return;
        }
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] = self.counts[index].saturating_add(1);
    }
}

/// Records one session's observations and computes its metrics; see the module documentation.
#[derive(Debug)]
pub struct SessionRecorder {
    config: MeasureConfig,

    frames_sent: u64,
    first_sent_at_us: Option<u64>,
    last_sent_at_us: Option<u64>,
    segments_sent: u64,
    bytes_sent: u64,
    pending: PendingFrames,

    frames_received: u64,
    frames_unmatched: u64,
    frames_duplicate: u64,
    output_keyframes: u64,
    output_video_bytes: u64,
    segments_received: u64,
    bytes_received: u64,
    first_output_at_us: Option<u64>,
    last_output_at_us: Option<u64>,
    /// The latencies, in an HDR histogram's buckets (1 us to 1 h, 0.1 %) kept sparse: a few
    /// KB for the buckets a session uses instead of 94 KB for all of them.
    latency_us: LatencyHistogram,
    latency_sum_us: u128,
    latency_min_us: u64,
    latency_max_us: u64,
    interval_ms: RunningStats,
    stall_count: u32,
    stall_total_us: u64,
    stall_longest_us: u64,
    fps_windows: FpsWindows,
    /// Output frame arrivals recorded (the N of the span-based mean FPS).
    arrivals: u64,

    resolution: Option<(u32, u32)>,
    media_errors: MediaErrors,
    runner: RunnerTracker,
    content: content::ContentTracker,
    overlay_frames: u64,
    /// Arrivals of the first and the latest loading overlay frame.
    overlay_span_us: Option<(u64, u64)>,
    /// Output frames the session ended before their pictures were read
    /// ([`Self::handle_unread_frame`]).
    unread_frames: u64,
}

impl SessionRecorder {
    /// Creates a recorder for one session.
    pub fn new(config: MeasureConfig) -> Self {
        let runner = RunnerTracker::new(config.max_events_kept);
        Self {
            config,
            frames_sent: 0,
            first_sent_at_us: None,
            last_sent_at_us: None,
            segments_sent: 0,
            bytes_sent: 0,
            pending: PendingFrames::default(),
            frames_received: 0,
            frames_unmatched: 0,
            frames_duplicate: 0,
            output_keyframes: 0,
            output_video_bytes: 0,
            segments_received: 0,
            bytes_received: 0,
            first_output_at_us: None,
            last_output_at_us: None,
            latency_us: LatencyHistogram::default(),
            latency_sum_us: 0,
            latency_min_us: u64::MAX,
            latency_max_us: 0,
            interval_ms: RunningStats::default(),
            stall_count: 0,
            stall_total_us: 0,
            stall_longest_us: 0,
            fps_windows: FpsWindows::default(),
            arrivals: 0,
            resolution: None,
            media_errors: MediaErrors::default(),
            runner,
            content: content::ContentTracker::default(),
            overlay_frames: 0,
            overlay_span_us: None,
            unread_frames: 0,
        }
    }

    /// An input video frame with presentation timestamp `pts` started going out at `at_us`
    /// (the moment its first byte was written).
    pub fn handle_input_frame_sent(&mut self, pts: u64, at_us: u64) {
        self.frames_sent = self.frames_sent.saturating_add(1);
        self.first_sent_at_us = Some(
            self.first_sent_at_us
                .map_or(at_us, |first| first.min(at_us)),
        );
        self.last_sent_at_us = Some(self.last_sent_at_us.map_or(at_us, |last| last.max(at_us)));
        self.pending.insert(pts, at_us);
    }

    /// The input frame `pts` sent at `at_us` (reported to [`Self::handle_input_frame_sent`])
    /// carries frame number `code` and segment marker `marker` (`session::segment_marker`, bit
    /// 0 the luminance step marker) in its picture: what the content check reads back.
    pub fn handle_input_frame_code(&mut self, pts: u64, at_us: u64, code: u32, marker: u8) {
        self.content.handle_sent(pts, at_us, code, marker);
    }

    /// The content check by the luminance marker (the frame number was unreadable): output
    /// frame `pts`, arrived at `at_us`, is the first whose PTS names a frame past a step of the
    /// marker into state `bright`, and the first frame from it on that showed that state
    /// arrived at `found_at_us` (`None`: none did).
    pub fn handle_step_sample(
        &mut self,
        pts: u64,
        at_us: u64,
        bright: bool,
        found_at_us: Option<u64>,
        tolerance_us: u64,
    ) {
        let pts_sent_at_us = self.sent_at_us(pts);
        self.content
            .handle_step(at_us, bright, found_at_us, pts_sent_at_us, tolerance_us);
    }

    /// A decoded output frame with timestamp `pts`, arrived at `at_us`, shows frame number
    /// `code` (`None`: unreadable). Timestamps and pictures may disagree by `tolerance_us`
    /// (a frame and a half) before the sample counts against the timestamps. With
    /// [`MeasureConfig::timestamps_rewritten`] only the picture counts, and its segment marker
    /// `marker` places it when the number is unreadable (samples in arrival order, each the
    /// decoded frame after the previous one); otherwise `marker` is not used.
    pub fn handle_content_sample(
        &mut self,
        pts: u64,
        at_us: u64,
        code: Option<u32>,
        marker: Option<u8>,
        tolerance_us: u64,
    ) {
        if self.config.timestamps_rewritten {
            self.content.handle_sample_by_content(at_us, code, marker);
            return;
        }
        let pts_sent_at_us = self.sent_at_us(pts);
        self.content
            .handle_sample(pts, at_us, code, pts_sent_at_us, tolerance_us);
    }

    /// An input segment of `bytes` bytes was published, completing at `at_us` (the time is
    /// taken so drivers report every observation alike; only counts are derived from it today).
    pub fn handle_segment_sent(&mut self, bytes: u64, _at_us: u64) {
        self.segments_sent = self.segments_sent.saturating_add(1);
        self.bytes_sent = self.bytes_sent.saturating_add(bytes);
    }

    /// An output video frame with presentation timestamp `pts` arrived; `at_us` is the arrival
    /// of its first byte.
    ///
    /// Its latency is `at_us` minus the send time of the input frame with the same PTS. An
    /// output whose PTS was never sent (or was forgotten, or would precede its input) counts as
    /// unmatched; a PTS arriving again counts as a duplicate, only the first arrival has a
    /// latency. Arrivals are expected in order; an earlier `at_us` than the previous output's is
    /// treated as arriving together with it for the timing statistics.
    pub fn handle_output_frame(&mut self, pts: u64, at_us: u64, keyframe: bool, size_bytes: usize) {
        self.frames_received = self.frames_received.saturating_add(1);
        if keyframe {
            self.output_keyframes = self.output_keyframes.saturating_add(1);
        }
        self.output_video_bytes = self
            .output_video_bytes
            .saturating_add(u64::try_from(size_bytes).unwrap_or(u64::MAX));

        if !self.config.timestamps_rewritten {
            self.record_latency(pts, at_us);
        }
        self.record_arrival(at_us);
    }

    /// An output frame arrived at `at_us` that is a loading overlay, not processed output
    /// (told by its picture): it is counted apart and for nothing else.
    pub fn handle_overlay_frame(&mut self, at_us: u64) {
        self.overlay_frames = self.overlay_frames.saturating_add(1);
        self.overlay_span_us = Some(match self.overlay_span_us {
            Some((first, last)) => (first.min(at_us), last.max(at_us)),
            None => (at_us, at_us),
        });
    }

    /// An output frame arrived that the session ended before its picture told overlay from
    /// processed output, while the pipeline may still have been loading: it counts for nothing
    /// but the outcome (media came, none of it known to be output).
    pub fn handle_unread_frame(&mut self) {
        self.unread_frames = self.unread_frames.saturating_add(1);
    }

    /// Frames counted by [`Self::handle_unread_frame`].
    pub fn unread_frames(&self) -> u64 {
        self.unread_frames
    }

    fn record_latency(&mut self, pts: u64, at_us: u64) {
        match self.pending.by_pts.get_mut(&pts) {
            Some(frame) if frame.arrived => {
                self.frames_duplicate = self.frames_duplicate.saturating_add(1);
            }
            Some(frame) if at_us >= frame.sent_at_us => {
                frame.arrived = true;
                let latency_us = at_us - frame.sent_at_us;
                // A latency beyond the bound lands in the top bucket.
                self.latency_us.record(latency_us);
                self.latency_sum_us += u128::from(latency_us);
                self.latency_min_us = self.latency_min_us.min(latency_us);
                self.latency_max_us = self.latency_max_us.max(latency_us);
            }
            // An output cannot answer an input sent after it arrived, and an unknown PTS
            // answers nothing we sent.
            Some(_) | None => {
                self.frames_unmatched = self.frames_unmatched.saturating_add(1);
            }
        }
    }

    fn record_arrival(&mut self, at_us: u64) {
        let window_us = self.fps_window_us();
        let (first_us, at_us) = match (self.first_output_at_us, self.last_output_at_us) {
            (Some(first_us), Some(last_us)) => {
                let at_us = at_us.max(last_us);
                let gap_us = at_us - last_us;
                self.interval_ms.push(us_to_ms(gap_us));
                if gap_us > self.stall_threshold_us() {
                    self.record_stall(gap_us);
                }
                (first_us, at_us)
            }
            _ => {
                self.first_output_at_us = Some(at_us);
                (at_us, at_us)
            }
        };
        self.last_output_at_us = Some(at_us);
        self.arrivals = self.arrivals.saturating_add(1);
        self.fps_windows.count((at_us - first_us) / window_us);
    }

    fn record_stall(&mut self, gap_us: u64) {
        self.stall_count = self.stall_count.saturating_add(1);
        self.stall_total_us = self.stall_total_us.saturating_add(gap_us);
        self.stall_longest_us = self.stall_longest_us.max(gap_us);
    }

    /// An output segment of `bytes` bytes was received, completing at `at_us` (the time is
    /// taken so drivers report every observation alike; only counts are derived from it today).
    pub fn handle_segment_received(&mut self, bytes: u64, _at_us: u64) {
        self.segments_received = self.segments_received.saturating_add(1);
        self.bytes_received = self.bytes_received.saturating_add(bytes);
    }

    /// The output video's resolution is `width` x `height` pixels (the last call wins).
    pub fn handle_resolution(&mut self, width: u32, height: u32) {
        self.resolution = Some((width, height));
    }

    /// One events-channel document arrived at `at_us`: the envelope
    /// `{"event": {"type": ...}, "queue_event_type": ...}`. Anything else is counted as
    /// malformed (`RunnerReport::events_malformed`), never an error.
    pub fn handle_event(&mut self, event: &serde_json::Value, at_us: u64) {
        self.runner.handle_event(event, at_us);
    }

    /// Like [`Self::handle_event`] for the raw bytes of an events segment; bytes that are not
    /// JSON count as a malformed event.
    pub fn handle_event_bytes(&mut self, bytes: &[u8], at_us: u64) {
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(value) => self.runner.handle_event(&value, at_us),
            Err(_) => self.runner.handle_malformed(at_us),
        }
    }

    /// Adds demultiplexer error counts (call with each demuxer's final counters, or deltas).
    pub fn handle_media_errors(&mut self, errors: MediaErrors) {
        let total = &mut self.media_errors;
        total.cc_errors = total.cc_errors.saturating_add(errors.cc_errors);
        total.sync_losses = total.sync_losses.saturating_add(errors.sync_losses);
        total.pes_errors = total.pes_errors.saturating_add(errors.pes_errors);
        total.truncated_frames = total
            .truncated_frames
            .saturating_add(errors.truncated_frames);
    }

    /// When the first output frame arrived, if one has; drivers use it for the startup timeout.
    pub fn first_output_at_us(&self) -> Option<u64> {
        self.first_output_at_us
    }

    /// When the latest output frame arrived, if one has; drivers use it for the output timeout.
    pub fn last_output_at_us(&self) -> Option<u64> {
        self.last_output_at_us
    }

    /// When the latest events-channel document arrived (malformed ones included), if one has;
    /// drivers use it for the events timeout.
    pub fn last_event_at_us(&self) -> Option<u64> {
        self.runner.last_event_at_us()
    }

    /// The state reported by the latest status event, if any (for example `ERROR`).
    pub fn runner_state(&self) -> Option<&str> {
        self.runner.last_state()
    }

    /// When the input frame `pts` was sent, if it was and is still remembered.
    pub fn sent_at_us(&self, pts: u64) -> Option<u64> {
        self.pending.by_pts.get(&pts).map(|frame| frame.sent_at_us)
    }

    /// The median latency of the output frames matched so far, us.
    pub fn latency_p50_us(&self) -> Option<u64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.value_at_quantile(0.5))
    }

    /// Loading overlay frames received so far ([`Self::handle_overlay_frame`]).
    pub fn overlay_frames(&self) -> u64 {
        self.overlay_frames
    }

    /// Number of output video frames received so far.
    pub fn frames_received(&self) -> u64 {
        self.frames_received
    }

    /// Computes the session's metrics as of `end_us`, the end of the measured period (when the
    /// tester stopped expecting output). Output FPS windows end there, and a gap from the last
    /// output frame to `end_us` longer than the stall threshold is a trailing stall.
    ///
    /// The fields this recorder does not observe (`get_orchestrator_ms`, `job_start_ms`,
    /// `swaps`) are left `None` or empty for the caller to fill.
    pub fn finish(&self, end_us: u64) -> (SessionMetrics, RunnerReport) {
        let (fps, fps_jitter) = self.output_fps(end_us);
        // Timestamps the pictures contradict, or that mostly name no input frame sent before
        // their output arrived, measure nothing: the latency comes from the pictures then (and
        // is not stated without any).
        let pts_untrusted = !self.config.timestamps_rewritten
            && (self.content.pts_untrusted() || self.pts_implausible());
        let e2e_latency_ms = if pts_untrusted || self.config.timestamps_rewritten {
            self.content.summary()
        } else {
            self.latency_summary()
        };
        let metrics = SessionMetrics {
            get_orchestrator_ms: None,
            job_start_ms: None,
            startup_ms: self.startup_ms(),
            e2e_latency_ms,
            output_fps: fps,
            input_fps: self.input_fps(),
            fps_jitter,
            frame_interval_jitter_ms: self.interval_ms.population_std(),
            stalls: self.stalls(end_us),
            segments_sent: self.segments_sent,
            segments_received: self.segments_received,
            frames_sent: self.frames_sent,
            frames_received: self.frames_received,
            frames_unmatched: self.frames_unmatched,
            frames_duplicate: self.frames_duplicate,
            output_keyframes: self.output_keyframes,
            output_video_bytes: self.output_video_bytes,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            output_width: self.resolution.map(|(width, _)| width),
            output_height: self.resolution.map(|(_, height)| height),
            // Not measured: ai-runner sets `last_params_hash` when an update is queued and
            // reports status about every 10 s, so the time to a confirming status was mostly
            // the phase of that tick, not the update taking effect (docs/metrics.md).
            params_update_latency_ms: None,
            media_errors: self.media_errors,
            swaps: Vec::new(),
            content_check: self.content.check(),
            pts_untrusted,
            loading_overlay: self.loading_overlay(),
            gateway: None,
        };
        (metrics, self.runner.report())
    }

    fn loading_overlay(&self) -> Option<LoadingOverlay> {
        let (first_us, last_us) = self.overlay_span_us?;
        let sent_us = self.first_sent_at_us.unwrap_or(first_us);
        Some(LoadingOverlay {
            frames: self.overlay_frames,
            first_ms: us_to_ms(first_us.saturating_sub(sent_us)),
            last_ms: us_to_ms(last_us.saturating_sub(sent_us)),
        })
    }

    /// The plausibility check that needs no decoding: of at least [`PLAUSIBLE_MIN_FRAMES`]
    /// output frames, more than half carry a PTS that no input frame sent before their arrival
    /// had (a PTS never sent, or one sent only later: output ahead of its input). An honest
    /// runner keeps the input's PTS, so nearly all match.
    fn pts_implausible(&self) -> bool {
        self.frames_received >= PLAUSIBLE_MIN_FRAMES
            && self.frames_unmatched.saturating_mul(2) > self.frames_received
    }

    fn startup_ms(&self) -> Option<f64> {
        let first_output_us = self.first_output_at_us?;
        let first_sent_us = self.first_sent_at_us?;
        first_output_us.checked_sub(first_sent_us).map(us_to_ms)
    }

    fn input_fps(&self) -> Option<f64> {
        let span_us = self.last_sent_at_us? - self.first_sent_at_us?;
        if self.frames_sent < 2 || span_us == 0 {
            return None;
        }
        // N frames sent over the span from the first to the last cover N - 1 frame intervals.
        Some((self.frames_sent - 1) as f64 * 1e6 / span_us as f64)
    }

    fn latency_summary(&self) -> Option<LatencySummary> {
        let count = self.latency_us.len();
        if count == 0 {
            return None;
        }
        // The histogram answers with the highest value equivalent to a bucket; clamping to the
        // exact extremes keeps a constant latency exact and a percentile never above the max.
        let quantile_ms = |quantile: f64| {
            let value_us = self
                .latency_us
                .value_at_quantile(quantile)
                .clamp(self.latency_min_us, self.latency_max_us);
            us_to_ms(value_us)
        };
        Some(LatencySummary {
            count,
            p50: quantile_ms(0.50),
            p90: quantile_ms(0.90),
            p95: quantile_ms(0.95),
            p99: quantile_ms(0.99),
            max: us_to_ms(self.latency_max_us),
            mean: self.latency_sum_us as f64 / count as f64 / 1000.0,
            min: us_to_ms(self.latency_min_us),
        })
    }

    /// Output FPS over the full windows between the first output frame and `end_us`, and the
    /// FPS jitter (population std / mean of the per-window FPS).
    fn output_fps(&self, end_us: u64) -> (Option<FpsSummary>, Option<f64>) {
        let Some(first_us) = self.first_output_at_us else {
            return (None, None);
        };
        let window_us = self.fps_window_us();
        let full_windows = end_us.saturating_sub(first_us) / window_us;
        let full_windows = usize::try_from(full_windows)
            .unwrap_or(usize::MAX)
            .min(MAX_FPS_WINDOWS);
        if full_windows == 0 {
            return (None, None);
        }
        // Windows after the last output frame hold no frames but are real: output stopped.
        let mut counts: Vec<u32> = (0..full_windows)
            .map(|index| self.fps_windows.counts.get(index).copied().unwrap_or(0))
            .collect();
        let fps_per_frame = 1000.0 / self.config.fps_window_ms.max(1) as f64;
        let mut stats = RunningStats::default();
        for &count in &counts {
            stats.push(f64::from(count) * fps_per_frame);
        }
        let window_mean = stats.mean().unwrap_or(0.0);
        let std = stats.population_std().unwrap_or(0.0);
        // The mean is the frame rate over the output span: N frames cover N - 1 intervals from
        // the first to the last arrival. Counting frames per window instead would be off by a
        // whole frame whenever arrival jitter moves a frame across a window boundary (2% of a
        // 12 fps, 4-window session). A trailing stall extends the span to `end_us`, so output
        // that stopped early lowers the mean as it lowers the windows.
        let mean = match self.last_output_at_us {
            Some(last_us) if self.arrivals >= 2 => {
                let span_end_us = if end_us.saturating_sub(last_us) > self.stall_threshold_us() {
                    end_us
                } else {
                    last_us
                };
                let span_us = span_end_us.saturating_sub(first_us);
                if span_us > 0 {
                    (self.arrivals - 1) as f64 * 1e6 / span_us as f64
                } else {
                    window_mean
                }
            }
            _ => window_mean,
        };
        let p5 = f64::from(nearest_rank(&mut counts, 5.0)) * fps_per_frame;
        let p50 = f64::from(nearest_rank(&mut counts, 50.0)) * fps_per_frame;
        let summary = FpsSummary {
            mean,
            p5,
            p50,
            windows: u32::try_from(full_windows).unwrap_or(u32::MAX),
        };
        // The first window always holds the first output frame, so the mean is positive; the
        // guard only keeps a ratio from ever being NaN.
        let jitter = (window_mean > 0.0).then(|| std / window_mean);
        (Some(summary), jitter)
    }

    fn stalls(&self, end_us: u64) -> StallSummary {
        let mut count = self.stall_count;
        let mut total_us = self.stall_total_us;
        let mut longest_us = self.stall_longest_us;
        if let Some(last_us) = self.last_output_at_us {
            let trailing_us = end_us.saturating_sub(last_us);
            if trailing_us > self.stall_threshold_us() {
                count = count.saturating_add(1);
                total_us = total_us.saturating_add(trailing_us);
                longest_us = longest_us.max(trailing_us);
            }
        }
        StallSummary {
            count,
            total_ms: us_to_ms(total_us),
            longest_ms: us_to_ms(longest_us),
        }
    }

    fn fps_window_us(&self) -> u64 {
        self.config.fps_window_ms.max(1).saturating_mul(1000)
    }

    /// A gap between output frames longer than this is a stall, us.
    pub fn stall_threshold_us(&self) -> u64 {
        self.config.stall_threshold_ms.saturating_mul(1000)
    }
}

/// Microseconds to milliseconds, the unit every reported duration uses.
fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
