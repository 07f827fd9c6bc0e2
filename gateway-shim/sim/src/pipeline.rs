//! The sans-IO heart of a simulated session: which input frames come out, when, and which
//! events the runner publishes.
//!
//! [`PipelineCore`] takes input frames, params updates and the time (microseconds on any
//! monotonic clock the driver chooses) and returns scheduled outputs and event documents. It
//! never reads a clock, sleeps or touches the network; the session driver in `session.rs`
//! feeds it from trickle channels and a tokio clock, and the unit tests below feed it explicit
//! times. A frame's due time is the time it was fully received plus the profile's latency (and
//! seeded jitter), so a tester measuring end-to-end latency sees the injected value.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::events::{self, EventDoc, PipelineState, StatusSnapshot};
use super::profile::Profile;
use lvt_wire::live::params::params_hash;

/// 90 kHz ticks per second (MPEG-TS timestamps).
const TICKS_PER_S: u64 = 90_000;
/// Frame interval assumed until two PTS values have been seen: 30 fps.
const DEFAULT_FRAME_TICKS: u64 = 3_000;
/// PTS are 33-bit counters.
const PTS_MODULO: u64 = 1 << 33;

/// A run of loading overlay frames repeats its IDR this often (input PTS, 90 kHz): one second.
const OVERLAY_KEYFRAME_INTERVAL: u64 = 90_000;
/// Slow mode processes at 0.6x real time: one frame interval of input costs 1/0.6 intervals of
/// work.
const SLOW_SPEED: f64 = 0.6;
/// Slow mode stops queueing once the backlog is this long, so memory stays bounded in sessions
/// that run for hours; latency has long stopped being useful by then.
const MAX_BACKLOG_US: u64 = 120_000_000;

/// Static settings of one session, derived from a [`Profile`] and the job request.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Pipeline name reported in events (ai-runner reports its pipeline, we report the model id).
    pub pipeline: String,
    pub latency_us: u64,
    pub jitter_us: u64,
    pub fps: Option<u32>,
    /// Latency added per denoising step beyond the first ([`Profile::step_latency_ms`]).
    pub step_latency_us: u64,
    /// Output rate divisor per step beyond the first ([`Profile::step_fps_cost`]).
    pub step_fps_cost: f64,
    /// Added to every output PTS, 90 kHz ([`Profile::pts_shift_ms`]).
    pub pts_shift: u64,
    pub startup_us: u64,
    /// Answer input with loading overlay frames while loading ([`Profile::loading_overlay`]).
    pub loading_overlay: bool,
    /// Reload time of a params update ([`Profile::reload_ms`]).
    pub reload_us: u64,
    /// `(start, end)` of the stall window, relative to the session start.
    pub stall_us: Option<(u64, u64)>,
    /// Crash time relative to the session start.
    pub crash_after_us: Option<u64>,
    pub slow: bool,
    /// Seed of the jitter sequence.
    pub seed: u64,
    /// Period of `status` events.
    pub status_interval_us: u64,
}

impl PipelineConfig {
    /// Settings from a profile. `session_index` varies the seed per session so concurrent
    /// sessions do not jitter in lockstep while a run stays repeatable.
    pub fn from_profile(
        profile: &Profile,
        pipeline: &str,
        session_index: u64,
        status_interval_us: u64,
    ) -> Self {
        let secs_to_us = |s: f64| (s * 1_000_000.0).round() as u64;
        Self {
            pipeline: pipeline.to_string(),
            latency_us: profile.latency_ms.saturating_mul(1000),
            jitter_us: profile.latency_jitter_ms.saturating_mul(1000),
            fps: profile.fps,
            step_latency_us: profile.step_latency_ms.saturating_mul(1000),
            step_fps_cost: profile.step_fps_cost,
            pts_shift: profile.pts_shift_ms.saturating_mul(90),
            startup_us: profile.startup_ms.saturating_mul(1000),
            loading_overlay: profile.loading_overlay,
            reload_us: profile.reload_ms.saturating_mul(1000),
            stall_us: profile.stall_at_s.map(|at| {
                let start = secs_to_us(at);
                (start, start.saturating_add(secs_to_us(profile.stall_s)))
            }),
            crash_after_us: profile.crash_after_s.map(secs_to_us),
            slow: profile.slow,
            seed: profile
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(session_index),
            status_interval_us: status_interval_us.max(1),
        }
    }
}

/// An input video frame as the core sees it. `payload` is carried through untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFrame<F> {
    /// Presentation time, 90 kHz.
    pub pts: u64,
    pub keyframe: bool,
    pub payload: F,
}

/// A frame to output at `due_us` (same clock as the `now_us` inputs).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledOutput<F> {
    pub due_us: u64,
    pub pts: u64,
    pub keyframe: bool,
    /// A loading overlay frame: the driver sends the overlay picture instead of the payload
    /// (an IDR when `keyframe`, which starts each run of them, else a repeat of it).
    pub overlay: bool,
    pub payload: F,
}

/// Why an input frame produced no output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The model was still loading (and the overlay is off).
    Loading,
    /// Removed to reach the profile's output frame rate.
    Decimated,
    /// Output (re)starts at a keyframe so that every output segment begins with an IDR frame.
    AwaitingKeyframe,
    /// Its output time fell inside the stall window.
    Stalled,
    /// Slow mode's backlog is full.
    Backlog,
    /// The session has crashed.
    Ended,
}

/// What the core decided for one input frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<F> {
    Output(ScheduledOutput<F>),
    Dropped(DropReason),
}

impl<F> Decision<F> {
    /// The scheduled output, if any.
    pub fn into_output(self) -> Option<ScheduledOutput<F>> {
        match self {
            Decision::Output(out) => Some(out),
            Decision::Dropped(_) => None,
        }
    }
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineOutput {
    /// Publish this document as one segment on the events channel.
    Event(EventDoc),
    /// The injected crash happened: delete the session's four channels and end the session.
    Crash,
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub frames_in: u64,
    pub frames_scheduled: u64,
    pub frames_written: u64,
    pub dropped_loading: u64,
    /// Loading overlay frames scheduled in place of input frames.
    pub overlay_frames: u64,
    pub dropped_decimated: u64,
    pub dropped_awaiting_keyframe: u64,
    pub dropped_stalled: u64,
    pub dropped_backlog: u64,
    pub dropped_ended: u64,
}

/// The sans-IO session state machine. See the module documentation.
pub struct PipelineCore {
    config: PipelineConfig,
    start_us: u64,
    start_unix_ms: i64,
    rng: ChaCha8Rng,

    last_pts: Option<u64>,
    frame_ticks: u64,
    /// Decimation credit in `fps * ticks` units; a frame is kept when it reaches one second.
    credit: f64,
    /// Denoising steps of the current params (the length of `t_index_list`, at least 1).
    steps: u32,
    awaiting_keyframe: bool,
    /// The params allow the loading overlay (`show_reloading_frame`, default true).
    overlay_allowed: bool,
    /// A run of overlay frames is going out: the input PTS of its latest IDR (the next frames
    /// repeat it until [`OVERLAY_KEYFRAME_INTERVAL`] has passed).
    overlay_run: Option<u64>,
    /// End of the reload in progress, on the core's clock.
    reload_until_us: Option<u64>,
    /// Slow mode: when the simulated model finishes the frames queued so far.
    busy_until_us: u64,
    last_due_us: u64,
    crashed: bool,

    state: PipelineState,
    loaded: bool,
    stall_started: bool,
    stall_ended: bool,
    next_status_us: u64,
    window_start_us: u64,
    window_in: u64,
    window_out: u64,
    last_status_unix_s: f64,
    first_ingest_seen: bool,
    first_output_seen: bool,
    snapshot: StatusSnapshot,

    outputs: VecDeque<PipelineOutput>,
    stats: PipelineStats,
}

impl PipelineCore {
    /// A session that starts at `now_us` (monotonic) = `start_unix_ms` (wall clock), with the
    /// job request's initial `params`. Emits `runner_receive_stream_request` and a first status.
    pub fn new(config: PipelineConfig, now_us: u64, start_unix_ms: i64, params: Value) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let steps = denoising_steps(&params);
        let overlay_allowed = overlay_allowed(&params);
        let loaded = config.startup_us == 0;
        let state = if loaded {
            PipelineState::Online
        } else {
            PipelineState::Loading
        };
        let snapshot = StatusSnapshot {
            pipeline: config.pipeline.clone(),
            start_time_ms: start_unix_ms,
            state: Some(state),
            last_state_update_time_ms: Some(start_unix_ms),
            last_params_update_time_ms: Some(start_unix_ms),
            last_params_hash: Some(params_hash(&params)),
            last_params: Some(params),
            ..StatusSnapshot::default()
        };
        let mut core = Self {
            next_status_us: now_us.saturating_add(config.status_interval_us),
            config,
            start_us: now_us,
            start_unix_ms,
            rng,
            last_pts: None,
            frame_ticks: DEFAULT_FRAME_TICKS,
            credit: 0.0,
            steps,
            awaiting_keyframe: true,
            overlay_allowed,
            overlay_run: None,
            reload_until_us: None,
            busy_until_us: now_us,
            last_due_us: now_us,
            crashed: false,
            state,
            loaded,
            stall_started: false,
            stall_ended: false,
            window_start_us: now_us,
            window_in: 0,
            window_out: 0,
            last_status_unix_s: start_unix_ms as f64 / 1000.0,
            first_ingest_seen: false,
            first_output_seen: false,
            snapshot,
            outputs: VecDeque::new(),
            stats: PipelineStats::default(),
        };
        core.push_event(events::trace_event(
            "runner_receive_stream_request",
            start_unix_ms,
        ));
        core.push_status(now_us);
        core
    }

    /// The settings this session runs with.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// The state the next status event will report.
    pub fn state(&self) -> PipelineState {
        self.state
    }

    /// Whether the injected crash has happened.
    pub fn is_crashed(&self) -> bool {
        self.crashed
    }

    /// Wall-clock milliseconds for a monotonic time of this session.
    pub fn unix_ms(&self, now_us: u64) -> i64 {
        let elapsed_ms = now_us.saturating_sub(self.start_us) / 1000;
        self.start_unix_ms
            .saturating_add(i64::try_from(elapsed_ms).unwrap_or(i64::MAX))
    }

    /// A new input trickle segment started arriving.
    pub fn handle_input_segment(&mut self, now_us: u64) {
        if !self.first_ingest_seen {
            self.first_ingest_seen = true;
            let ms = self.unix_ms(now_us);
            self.push_event(events::trace_event(
                "runner_receive_first_ingest_segment",
                ms,
            ));
        }
    }

    /// One input video frame, fully received at `now_us`. Returns when (and whether) it is
    /// output. Call [`Self::handle_timeout`] first if a timeout has passed, so state changes
    /// are applied in time order.
    pub fn handle_input_frame<F>(&mut self, frame: InputFrame<F>, now_us: u64) -> Decision<F> {
        self.stats.frames_in += 1;
        self.window_in += 1;
        self.snapshot.last_input_time_ms = Some(self.unix_ms(now_us));
        self.observe_pts(frame.pts);

        if self.is_loading(now_us) && !self.crashed {
            return self.overlay_or_drop(frame, now_us);
        }
        self.overlay_run = None;
        let decision = self.decide(&frame, now_us);
        match decision {
            Ok(due_us) => {
                self.stats.frames_scheduled += 1;
                Decision::Output(ScheduledOutput {
                    due_us,
                    pts: frame.pts.wrapping_add(self.config.pts_shift) % PTS_MODULO,
                    keyframe: frame.keyframe,
                    overlay: false,
                    payload: frame.payload,
                })
            }
            Err(reason) => {
                let counter = match reason {
                    DropReason::Loading => &mut self.stats.dropped_loading,
                    DropReason::Decimated => &mut self.stats.dropped_decimated,
                    DropReason::AwaitingKeyframe => &mut self.stats.dropped_awaiting_keyframe,
                    DropReason::Stalled => &mut self.stats.dropped_stalled,
                    DropReason::Backlog => &mut self.stats.dropped_backlog,
                    DropReason::Ended => &mut self.stats.dropped_ended,
                };
                *counter += 1;
                Decision::Dropped(reason)
            }
        }
    }

    /// Whether the pipeline is loading at `now_us`: the initial load, or a reload.
    fn is_loading(&self, now_us: u64) -> bool {
        now_us.saturating_sub(self.start_us) < self.config.startup_us
            || self.reload_until_us.is_some_and(|until| now_us < until)
    }

    /// An input frame that arrived while loading: ai-runner's input loop answers it at once
    /// with an overlay frame of the same PTS (the model's frame rate does not apply), unless the
    /// overlay is off. The real output restarts at a keyframe afterwards.
    fn overlay_or_drop<F>(&mut self, frame: InputFrame<F>, now_us: u64) -> Decision<F> {
        self.awaiting_keyframe = true;
        let crash_due = self
            .config
            .crash_after_us
            .is_some_and(|crash| now_us.saturating_sub(self.start_us) >= crash);
        if !(self.config.loading_overlay && self.overlay_allowed) || crash_due {
            self.stats.dropped_loading += 1;
            return Decision::Dropped(DropReason::Loading);
        }
        let due_us = now_us.max(self.last_due_us);
        if let Some((start, end)) = self.config.stall_us
            && (start..end).contains(&due_us.saturating_sub(self.start_us))
        {
            self.overlay_run = None;
            self.stats.dropped_stalled += 1;
            return Decision::Dropped(DropReason::Stalled);
        }
        self.last_due_us = due_us;
        // ai-runner encodes the overlay like its output, with a keyframe at each GOP: a viewer
        // joining in the middle of a load sees it from the next one.
        let keyframe = self.overlay_run.is_none_or(|since| {
            frame.pts.wrapping_sub(since) % PTS_MODULO >= OVERLAY_KEYFRAME_INTERVAL
        });
        if keyframe {
            self.overlay_run = Some(frame.pts);
        }
        self.stats.frames_scheduled += 1;
        self.stats.overlay_frames += 1;
        Decision::Output(ScheduledOutput {
            due_us,
            pts: frame.pts.wrapping_add(self.config.pts_shift) % PTS_MODULO,
            keyframe,
            overlay: true,
            payload: frame.payload,
        })
    }

    /// The driver wrote a scheduled frame to the output channel at `now_us`.
    pub fn handle_output_written(&mut self, now_us: u64) {
        self.stats.frames_written += 1;
        self.window_out += 1;
        let ms = self.unix_ms(now_us);
        self.snapshot.last_output_time_ms = Some(ms);
        if !self.first_output_seen {
            self.first_output_seen = true;
            self.push_event(events::trace_event(
                "runner_send_first_processed_segment",
                ms,
            ));
        }
    }

    /// A control message arrived. Keepalives are ignored; anything else replaces the params.
    /// Returns whether the params were updated.
    pub fn handle_control(&mut self, message: Value, now_us: u64) -> bool {
        if is_keepalive(&message) {
            return false;
        }
        self.snapshot.last_params_hash = Some(params_hash(&message));
        self.steps = denoising_steps(&message);
        self.overlay_allowed = overlay_allowed(&message);
        let reloads = self.config.reload_us > 0;
        self.snapshot.last_params = Some(message);
        self.snapshot.last_params_update_time_ms = Some(self.unix_ms(now_us));
        // ai-runner applies the update without emitting anything (its `params_update` event is
        // commented out in process_guardian.py because gateways struggled with the event rate);
        // the simulator still reports a status right away so that a tester can see the new
        // hash without waiting a whole status interval.
        self.push_status(now_us);
        if reloads {
            // ai-runner marks the pipeline not ready for the reload's length: status says
            // LOADING and input comes back as overlay frames.
            self.reload_until_us = Some(now_us.saturating_add(self.config.reload_us));
            self.set_state(PipelineState::Loading, now_us);
        }
        true
    }

    /// The next time [`Self::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.crashed {
            return None;
        }
        let mut next = self.next_status_us;
        if !self.loaded {
            next = next.min(self.start_us.saturating_add(self.config.startup_us));
        }
        if let Some(until) = self.reload_until_us {
            next = next.min(until);
        }
        if let Some((start, end)) = self.config.stall_us {
            if !self.stall_started {
                next = next.min(self.start_us.saturating_add(start));
            } else if !self.stall_ended {
                next = next.min(self.start_us.saturating_add(end));
            }
        }
        if let Some(crash) = self.config.crash_after_us {
            next = next.min(self.start_us.saturating_add(crash));
        }
        Some(next)
    }

    /// Applies everything scheduled at or before `now_us`, in time order.
    pub fn handle_timeout(&mut self, now_us: u64) {
        while let Some(deadline) = self.poll_timeout() {
            if deadline > now_us {
                break;
            }
            self.fire(deadline);
        }
    }

    /// The next document to publish or action to take.
    pub fn poll_output(&mut self) -> Option<PipelineOutput> {
        self.outputs.pop_front()
    }

    fn fire(&mut self, at_us: u64) {
        let rel = at_us.saturating_sub(self.start_us);
        if let Some(crash) = self.config.crash_after_us
            && rel >= crash
        {
            let ms = self.unix_ms(at_us);
            let message = format!(
                "simulated crash: the runner process died {:.1}s into the session",
                crash as f64 / 1e6
            );
            self.snapshot.last_error = Some(message.clone());
            self.snapshot.last_error_time_ms = Some(ms);
            self.push_event(events::error_event(&self.config.pipeline, &message, ms));
            self.set_state(PipelineState::Error, at_us);
            self.crashed = true;
            self.outputs.push_back(PipelineOutput::Crash);
            return;
        }
        if !self.loaded && rel >= self.config.startup_us {
            self.loaded = true;
            if self.state == PipelineState::Loading {
                self.set_state(PipelineState::Online, at_us);
            }
            return;
        }
        if let Some(until) = self.reload_until_us
            && at_us >= until
        {
            self.reload_until_us = None;
            if self.loaded && self.state == PipelineState::Loading {
                self.set_state(PipelineState::Online, at_us);
            }
            return;
        }
        if let Some((start, end)) = self.config.stall_us {
            if !self.stall_started && rel >= start {
                self.stall_started = true;
                self.set_state(PipelineState::DegradedInference, at_us);
                return;
            }
            if self.stall_started && !self.stall_ended && rel >= end {
                self.stall_ended = true;
                let ms = self.unix_ms(at_us);
                self.snapshot.restart_count += 1;
                self.snapshot.last_restart_time_ms = Some(ms);
                let logs = vec![format!(
                    "simulated stall: no output for {:.1}s, pipeline restarted",
                    (end - start) as f64 / 1e6
                )];
                self.snapshot.last_restart_logs = Some(logs.clone());
                let count = self.snapshot.restart_count;
                self.push_event(events::restart_event(
                    &self.config.pipeline,
                    count,
                    &logs,
                    ms,
                ));
                let next = if self.loaded {
                    PipelineState::Online
                } else {
                    PipelineState::Loading
                };
                self.set_state(next, at_us);
                return;
            }
        }
        if at_us >= self.next_status_us {
            // FPS over the interval that just ended, like ai-runner's FPSCounter windows.
            let window_s = (at_us.saturating_sub(self.window_start_us)) as f64 / 1e6;
            if window_s > 0.0 {
                self.snapshot.input_fps = self.window_in as f64 / window_s;
                self.snapshot.output_fps = self.window_out as f64 / window_s;
            }
            self.window_in = 0;
            self.window_out = 0;
            self.window_start_us = at_us;
            self.next_status_us = at_us.saturating_add(self.config.status_interval_us);
            self.push_status(at_us);
        }
    }

    fn set_state(&mut self, state: PipelineState, at_us: u64) {
        if self.state != state {
            self.state = state;
            self.snapshot.state = Some(state);
            self.snapshot.last_state_update_time_ms = Some(self.unix_ms(at_us));
            self.push_status(at_us);
        }
    }

    fn push_status(&mut self, at_us: u64) {
        let ms = self.unix_ms(at_us);
        let doc = events::status_event(&self.snapshot, ms, self.last_status_unix_s);
        self.last_status_unix_s = ms as f64 / 1000.0;
        // ai-runner reports the large transient fields once and then clears them
        // (`get_status(clear_transient=True)`); the hash and times stay.
        self.snapshot.last_params = None;
        self.snapshot.last_restart_logs = None;
        self.push_event(doc);
    }

    fn push_event(&mut self, doc: EventDoc) {
        self.outputs.push_back(PipelineOutput::Event(doc));
    }

    fn observe_pts(&mut self, pts: u64) {
        if let Some(last) = self.last_pts {
            let delta = pts.wrapping_sub(last) % PTS_MODULO;
            // Only plausible frame intervals update the estimate; jumps and repeats keep it.
            if delta > 0 && delta < TICKS_PER_S {
                self.frame_ticks = delta;
            }
        }
        self.last_pts = Some(pts);
    }

    fn decide<F>(&mut self, frame: &InputFrame<F>, now_us: u64) -> Result<u64, DropReason> {
        if self.crashed {
            return Err(DropReason::Ended);
        }
        if !self.keep_for_fps(frame.keyframe) {
            return Err(DropReason::Decimated);
        }
        if self.awaiting_keyframe {
            if !frame.keyframe {
                return Err(DropReason::AwaitingKeyframe);
            }
            self.awaiting_keyframe = false;
        }

        let mut ready_us = now_us;
        if self.config.slow {
            let interval_us = self.frame_ticks * 1_000_000 / TICKS_PER_S;
            let work_us = (interval_us as f64 / SLOW_SPEED).round() as u64;
            let start = self.busy_until_us.max(now_us);
            if start.saturating_sub(now_us) > MAX_BACKLOG_US {
                return Err(DropReason::Backlog);
            }
            self.busy_until_us = start + work_us;
            ready_us = self.busy_until_us;
        }
        let step_us = self
            .config
            .step_latency_us
            .saturating_mul(u64::from(self.steps.saturating_sub(1)));
        let mut due_us = ready_us
            .saturating_add(self.config.latency_us)
            .saturating_add(step_us);
        if self.config.jitter_us > 0 {
            let j = self.config.jitter_us as i64;
            let offset = self.rng.random_range(-j..=j);
            due_us = due_us.saturating_add_signed(offset).max(ready_us);
        }
        // Output keeps input order (DTS must not go backwards), so a frame never overtakes the
        // previous one even when jitter would have it so.
        due_us = due_us.max(self.last_due_us);

        if let Some((start, end)) = self.config.stall_us {
            let rel_due = due_us.saturating_sub(self.start_us);
            if rel_due >= start && rel_due < end {
                // After the stall the output restarts at a keyframe, like a restarted encoder.
                self.awaiting_keyframe = true;
                return Err(DropReason::Stalled);
            }
        }
        if let Some(crash) = self.config.crash_after_us
            && due_us.saturating_sub(self.start_us) >= crash
        {
            return Err(DropReason::Ended);
        }
        self.last_due_us = due_us;
        Ok(due_us)
    }

    /// Even decimation to the target rate: every frame earns `fps * interval` credit and a
    /// frame is kept when the credit reaches one second. A keyframe that would be dropped is
    /// kept by borrowing one frame of credit (the next kept frame comes later instead), so the
    /// rate stays exact and output segments can start on IDR frames.
    ///
    /// The rate is `fps` (or the input rate) divided by the params' step cost; the credit sums
    /// whole numbers while there is no cost, so the plain rates stay exact.
    fn keep_for_fps(&mut self, keyframe: bool) -> bool {
        let slowdown = 1.0 + self.config.step_fps_cost * f64::from(self.steps.saturating_sub(1));
        let one_second = TICKS_PER_S as f64;
        let earned = match self.config.fps {
            Some(fps) => f64::from(fps) * self.frame_ticks as f64 / slowdown,
            // Every input frame is one frame-interval of a second: keep 1 in `slowdown`.
            None if slowdown > 1.0 => one_second / slowdown,
            None => return true,
        };
        self.credit += earned;
        let force = keyframe && (self.credit >= 0.0 || self.awaiting_keyframe);
        let keep = self.credit >= one_second || force;
        if keep {
            self.credit = (self.credit - one_second).max(-one_second);
        }
        // Input slower than the target keeps every frame without hoarding credit for bursts.
        self.credit = self.credit.min(one_second);
        keep
    }
}

/// The denoising steps a params document asks for: StreamDiffusion runs one per entry of
/// `t_index_list`; without one (or with an empty one), one step. Capped at 1000.
pub fn denoising_steps(params: &Value) -> u32 {
    params
        .get("t_index_list")
        .and_then(Value::as_array)
        .map_or(1, |list| {
            u32::try_from(list.len().clamp(1, 1000)).unwrap_or(1)
        })
}

/// Whether params allow the loading overlay: ai-runner's `show_reloading_frame`, true unless
/// set to `false`.
fn overlay_allowed(params: &Value) -> bool {
    params.get("show_reloading_frame").and_then(Value::as_bool) != Some(false)
}

/// ai-runner's keepalive control message, `{"keep": "alive"}`.
pub fn is_keepalive(message: &Value) -> bool {
    message
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.get("keep").and_then(Value::as_str) == Some("alive"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(profile: &Profile) -> PipelineConfig {
        PipelineConfig::from_profile(profile, "noop", 0, 10_000_000)
    }

    fn frame(i: u64, gop: u64) -> InputFrame<u64> {
        InputFrame {
            pts: 90_000 + i * 3_000,
            keyframe: i.is_multiple_of(gop),
            payload: i,
        }
    }

    /// Feeds `n` frames at 30 fps starting at t=0 (arrival = i * 33.333 ms) and collects the
    /// decisions, applying timeouts first as the driver does.
    fn run(core: &mut PipelineCore, n: u64, gop: u64) -> Vec<Decision<u64>> {
        (0..n)
            .map(|i| {
                let now = i * 1_000_000 / 30;
                core.handle_timeout(now);
                core.handle_input_frame(frame(i, gop), now)
            })
            .collect()
    }

    fn drain_events(core: &mut PipelineCore) -> Vec<PipelineOutput> {
        std::iter::from_fn(|| core.poll_output()).collect()
    }

    /// The states the status events published so far report, in order.
    fn status_states(core: &mut PipelineCore) -> Vec<String> {
        drain_events(core)
            .into_iter()
            .filter_map(|o| match o {
                PipelineOutput::Event(e) if e.kind() == "status" => {
                    Some(e.event["state"].as_str().unwrap_or_default().to_string())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn latency_is_added_to_receive_time() {
        let profile = Profile {
            latency_ms: 40,
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 1_000, json!({}));
        let out = run(&mut core, 60, 30);
        for (i, d) in out.iter().enumerate() {
            let Decision::Output(o) = d else {
                panic!("frame {i} dropped: {d:?}")
            };
            assert_eq!(o.due_us, i as u64 * 1_000_000 / 30 + 40_000);
            assert_eq!(o.payload, i as u64);
            assert_eq!(o.pts, 90_000 + i as u64 * 3_000, "PTS is kept");
        }
    }

    #[test]
    fn jitter_is_bounded_symmetric_and_ordered() {
        let profile = Profile {
            latency_ms: 100,
            latency_jitter_ms: 10,
            seed: 7,
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 0, json!({}));
        let outs: Vec<_> = run(&mut core, 600, 30)
            .into_iter()
            .filter_map(Decision::into_output)
            .collect();
        assert_eq!(outs.len(), 600);
        let mut extra: Vec<i64> = Vec::new();
        let mut last = 0;
        for o in &outs {
            let arrival = o.payload * 1_000_000 / 30;
            let delay = o.due_us as i64 - arrival as i64;
            assert!((90_000..=110_000).contains(&delay), "delay {delay}");
            assert!(o.due_us >= last, "output order is kept");
            last = o.due_us;
            extra.push(delay - 100_000);
        }
        extra.sort();
        let median = extra[extra.len() / 2];
        assert!(median.abs() < 1_500, "median offset {median} us");
        assert!(
            extra[0] < -8_000 && extra[extra.len() - 1] > 8_000,
            "spread is used"
        );
    }

    #[test]
    fn same_seed_same_schedule_other_seed_differs() {
        let profile = Profile {
            latency_ms: 100,
            latency_jitter_ms: 20,
            fps: Some(20),
            stall_at_s: Some(1.0),
            stall_s: 0.5,
            seed: 42,
            ..Profile::default()
        };
        let schedule = |p: &Profile| {
            let mut core = PipelineCore::new(config(p), 0, 0, json!({}));
            let decisions = run(&mut core, 120, 30);
            let events: Vec<_> = drain_events(&mut core);
            (decisions, events)
        };
        let a = schedule(&profile);
        let b = schedule(&profile);
        assert_eq!(a, b);
        let c = schedule(&Profile {
            seed: 43,
            ..profile
        });
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn denoising_steps_cost_latency_and_frame_rate_and_an_update_changes_them() {
        let profile = Profile {
            latency_ms: 40,
            step_latency_ms: 15,
            step_fps_cost: 0.5,
            ..Profile::default()
        };
        let low = json!({"prompt": "anime style"});
        let high = json!({"prompt": "detailed", "t_index_list": [8, 16, 26]});
        assert_eq!(denoising_steps(&low), 1);
        assert_eq!(denoising_steps(&high), 3);
        assert_eq!(denoising_steps(&json!({"t_index_list": []})), 1);
        assert_eq!(
            denoising_steps(&json!({"t_index_list": 4})),
            1,
            "not a list"
        );

        // One step: every frame, 40 ms.
        let mut core = PipelineCore::new(config(&profile), 0, 0, low.clone());
        let outs: Vec<_> = run(&mut core, 60, 30)
            .into_iter()
            .filter_map(Decision::into_output)
            .collect();
        assert_eq!(outs.len(), 60);
        assert_eq!(outs[0].due_us, 40_000);

        // Three steps: 40 + 2 x 15 ms, and 30 fps / (1 + 2 x 0.5) = 15 fps.
        let mut core = PipelineCore::new(config(&profile), 0, 0, high.clone());
        let outs: Vec<_> = run(&mut core, 60, 30)
            .into_iter()
            .filter_map(Decision::into_output)
            .collect();
        assert_eq!(outs.len(), 30, "half the frames");
        let arrival = outs[0].payload * 1_000_000 / 30;
        assert_eq!(outs[0].due_us - arrival, 70_000);

        // A params update to one step makes the next frames cheap again.
        assert!(core.handle_control(low, 2_000_000));
        let now = 2_000_000;
        let Decision::Output(next) = core.handle_input_frame(frame(60, 30), now) else {
            panic!("a keyframe after the update is kept")
        };
        assert_eq!(next.due_us, now + 40_000);

        // A fixed target rate is divided the same way: 12 fps becomes 6.
        let capped = Profile {
            fps: Some(12),
            ..profile
        };
        let mut core = PipelineCore::new(config(&capped), 0, 0, high);
        let kept = run(&mut core, 300, 30)
            .into_iter()
            .filter_map(Decision::into_output)
            .count();
        assert_eq!(kept, 60, "6 fps over 10 s");
    }

    #[test]
    fn fps_decimation_keeps_exactly_twelve_of_thirty() {
        let profile = Profile {
            fps: Some(12),
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 0, json!({}));
        let out = run(&mut core, 300, 30);
        for second in 0..10 {
            let kept: Vec<_> = out[second * 30..second * 30 + 30]
                .iter()
                .filter_map(|d| match d {
                    Decision::Output(o) => Some(o),
                    Decision::Dropped(_) => None,
                })
                .collect();
            assert_eq!(kept.len(), 12, "second {second}");
            assert!(
                kept[0].keyframe,
                "each second (GOP) starts with its keyframe"
            );
        }
        // Kept frames are spread evenly: gaps of two or three input frames.
        let idx: Vec<u64> = out
            .iter()
            .filter_map(|d| match d {
                Decision::Output(o) => Some(o.payload),
                Decision::Dropped(_) => None,
            })
            .collect();
        for w in idx.windows(2) {
            assert!((1..=4).contains(&(w[1] - w[0])), "gap {:?}", w);
        }
    }

    #[test]
    fn fps_decimation_exact_with_other_rates_and_gops() {
        for (fps, gop) in [(24, 30), (15, 60), (29, 45), (1, 30), (30, 30), (60, 30)] {
            let profile = Profile {
                fps: Some(fps),
                ..Profile::default()
            };
            let mut core = PipelineCore::new(config(&profile), 0, 0, json!({}));
            let out = run(&mut core, 600, gop);
            let kept = out
                .iter()
                .filter(|d| matches!(d, Decision::Output(_)))
                .count() as i64;
            let expected = i64::from(fps.min(30)) * 20;
            assert!(
                (kept - expected).abs() <= 1,
                "fps {fps} gop {gop}: kept {kept}, expected {expected}"
            );
        }
    }

    #[test]
    fn startup_drops_input_and_output_starts_at_keyframe() {
        let profile = Profile {
            startup_ms: 500,
            latency_ms: 10,
            loading_overlay: false,
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 0, json!({}));
        assert_eq!(core.state(), PipelineState::Loading);
        let out = run(&mut core, 90, 30);
        for (i, d) in out.iter().enumerate() {
            let i = i as u64;
            let arrival = i * 1_000_000 / 30;
            if arrival < 500_000 {
                assert_eq!(d, &Decision::Dropped(DropReason::Loading), "frame {i}");
            } else if i < 30 {
                assert_eq!(
                    d,
                    &Decision::Dropped(DropReason::AwaitingKeyframe),
                    "frame {i}"
                );
            } else {
                assert!(matches!(d, Decision::Output(_)), "frame {i}: {d:?}");
            }
        }
        assert_eq!(core.state(), PipelineState::Online);
        let states = status_states(&mut core);
        assert_eq!(states, ["LOADING", "ONLINE"]);
    }

    /// While the model loads, every input frame comes back at once as an overlay frame with its
    /// PTS (the first of the run an IDR, the rest repeats), at the input rate whatever the
    /// profile's FPS; the real output starts at the first keyframe after the load.
    #[test]
    fn loading_answers_input_with_overlay_frames_then_real_output_at_a_keyframe() {
        let profile = Profile {
            startup_ms: 500,
            latency_ms: 10,
            fps: Some(12),
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 0, json!({}));
        let out = run(&mut core, 90, 30);
        let mut overlays = 0;
        for (i, d) in out.iter().enumerate() {
            let i = i as u64;
            let arrival = i * 1_000_000 / 30;
            if arrival < 500_000 {
                let Decision::Output(o) = d else {
                    panic!("frame {i}: {d:?}")
                };
                assert!(o.overlay, "frame {i}");
                assert_eq!(o.keyframe, i == 0, "frame {i}: the run starts with an IDR");
                assert_eq!(
                    (o.due_us, o.pts, o.payload),
                    (arrival, 90_000 + i * 3_000, i)
                );
                overlays += 1;
            } else if i < 30 {
                assert!(matches!(d, Decision::Dropped(_)), "frame {i}: {d:?}");
            } else if let Decision::Output(o) = d {
                assert!(!o.overlay, "frame {i}");
            }
        }
        assert!(matches!(&out[30], Decision::Output(o) if o.keyframe));
        assert_eq!(overlays, 15);
        assert_eq!(core.stats().overlay_frames, 15);
        assert_eq!(core.stats().dropped_loading, 0);
    }

    /// A long load repeats the overlay's IDR every second of input, as an encoder with a
    /// one-second GOP would.
    #[test]
    fn a_long_load_repeats_the_overlay_keyframe_every_second() {
        let profile = Profile {
            startup_ms: 2_500,
            latency_ms: 10,
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 0, json!({}));
        let out = run(&mut core, 75, 30);
        let keyframes: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d, Decision::Output(o) if o.overlay && o.keyframe))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(keyframes, vec![0, 30, 60]);
    }

    /// The job's params can turn the overlay off as they can on ai-runner.
    #[test]
    fn params_without_the_reloading_frame_get_no_overlay() {
        let profile = Profile {
            startup_ms: 500,
            ..Profile::default()
        };
        let params = json!({"show_reloading_frame": false});
        let mut core = PipelineCore::new(config(&profile), 0, 0, params);
        let out = run(&mut core, 15, 30);
        assert!(
            out.iter()
                .all(|d| d == &Decision::Dropped(DropReason::Loading))
        );
        assert_eq!(core.stats().overlay_frames, 0);
    }

    /// With `reload_ms`, a params update reloads: status says LOADING, input comes back as a
    /// new overlay run (starting with an IDR), then ONLINE and real output from the next
    /// keyframe. A keepalive is no update; without `reload_ms` updates apply in place.
    #[test]
    fn an_update_reloads_with_overlay_frames_when_the_profile_says_so() {
        let mut in_place = PipelineCore::new(config(&Profile::default()), 0, 0, json!({}));
        in_place.handle_control(json!({"model_id": "b"}), 0);
        assert_eq!(in_place.state(), PipelineState::Online);
        let profile = Profile {
            reload_ms: 400,
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 0, json!({"model_id": "a"}));
        let mut decisions = Vec::new();
        for i in 0..120u64 {
            let now = i * 1_000_000 / 30;
            core.handle_timeout(now);
            if i == 20 {
                core.handle_control(json!({"keep": "alive"}), now);
                assert_eq!(
                    core.state(),
                    PipelineState::Online,
                    "a keepalive changes nothing"
                );
            }
            if i == 40 {
                core.handle_control(json!({"model_id": "b"}), now);
                assert_eq!(core.state(), PipelineState::Loading);
            }
            decisions.push(core.handle_input_frame(frame(i, 30), now));
        }
        let overlay: Vec<u64> = decisions
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match d {
                Decision::Output(o) if o.overlay => Some(i as u64),
                _ => None,
            })
            .collect();
        // 400 ms from frame 40's arrival: frames 40..=51.
        assert_eq!(overlay, (40..52).collect::<Vec<_>>());
        let Decision::Output(first) = &decisions[40] else {
            unreachable!()
        };
        assert!(first.keyframe, "a new run starts with an IDR");
        for (i, d) in decisions.iter().enumerate().take(60).skip(52) {
            assert_eq!(
                d,
                &Decision::Dropped(DropReason::AwaitingKeyframe),
                "frame {i}"
            );
        }
        assert!(matches!(&decisions[60], Decision::Output(o) if !o.overlay && o.keyframe));
        assert_eq!(core.state(), PipelineState::Online);
        let states = status_states(&mut core);
        assert!(
            states.windows(2).any(|w| w == ["LOADING", "ONLINE"]),
            "{states:?}"
        );
    }

    #[test]
    fn stall_window_has_no_output_then_restart_event() {
        let profile = Profile {
            latency_ms: 20,
            stall_at_s: Some(1.0),
            stall_s: 0.5,
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 5_000, json!({}));
        let out = run(&mut core, 90, 15);
        let mut resumed_at = None;
        for (i, d) in out.iter().enumerate() {
            if let Decision::Output(o) = d {
                assert!(
                    !(1_000_000..1_500_000).contains(&o.due_us),
                    "frame {i} due inside the stall at {}",
                    o.due_us
                );
                if o.due_us >= 1_500_000 && resumed_at.is_none() {
                    resumed_at = Some(i);
                    assert!(o.keyframe, "output resumes on a keyframe");
                }
            }
        }
        assert_eq!(resumed_at, Some(45), "first keyframe after the stall");
        let kinds: Vec<(String, String)> = drain_events(&mut core)
            .into_iter()
            .filter_map(|o| match o {
                PipelineOutput::Event(e) => Some((
                    e.kind().to_string(),
                    e.event
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                )),
                PipelineOutput::Crash => None,
            })
            .collect();
        let expected = [
            ("runner_receive_stream_request", ""),
            ("status", "ONLINE"),
            ("status", "DEGRADED_INFERENCE"),
            ("restart", ""),
            ("status", "ONLINE"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(kinds, expected);
    }

    #[test]
    fn slow_mode_latency_grows_without_bound() {
        let profile = Profile {
            latency_ms: 10,
            slow: true,
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 0, json!({}));
        let outs: Vec<_> = run(&mut core, 300, 30)
            .into_iter()
            .filter_map(Decision::into_output)
            .collect();
        assert_eq!(outs.len(), 300, "slow mode queues rather than drops");
        let delay = |o: &ScheduledOutput<u64>| o.due_us - o.payload * 1_000_000 / 30;
        let first = delay(&outs[0]);
        let after_1s = delay(&outs[30]);
        let after_10s = delay(&outs[299]);
        assert!(first < 80_000, "first frame {first}");
        assert!(after_1s > first + 500_000, "1 s in: {after_1s}");
        // 0.6x speed: ten seconds of input take 16.7 s, so the backlog is ~6.6 s.
        assert!(
            (6_200_000..7_000_000).contains(&after_10s),
            "10 s in: {after_10s}"
        );
        // Output rate is 0.6 of the input rate.
        let span = outs[299].due_us - outs[0].due_us;
        let rate = 299.0 / (span as f64 / 1e6);
        assert!((rate - 18.0).abs() < 0.5, "output rate {rate}");
    }

    #[test]
    fn crash_emits_error_then_crash_action() {
        let profile = Profile {
            latency_ms: 10,
            crash_after_s: Some(1.0),
            ..Profile::default()
        };
        let mut core = PipelineCore::new(config(&profile), 0, 0, json!({}));
        let out = run(&mut core, 60, 30);
        assert!(core.is_crashed());
        assert!(matches!(out[10], Decision::Output(_)));
        assert_eq!(out[40], Decision::Dropped(DropReason::Ended));
        let outputs = drain_events(&mut core);
        let n = outputs.len();
        assert_eq!(outputs[n - 1], PipelineOutput::Crash);
        let PipelineOutput::Event(status) = &outputs[n - 2] else {
            panic!("status before crash")
        };
        assert_eq!(status.event["state"], "ERROR");
        let PipelineOutput::Event(error) = &outputs[n - 3] else {
            panic!("error before status")
        };
        assert_eq!(error.kind(), "error");
        assert_eq!(error.event["timestamp"], 1_000);
        assert_eq!(core.poll_timeout(), None);
    }

    #[test]
    fn status_reports_fps_of_the_last_interval_and_params() {
        let profile = Profile::default();
        let cfg = PipelineConfig::from_profile(&profile, "noop", 0, 1_000_000);
        let mut core = PipelineCore::new(cfg, 0, 10_000, json!({"prompt": "a"}));
        let first = drain_events(&mut core);
        let PipelineOutput::Event(initial) = &first[1] else {
            panic!()
        };
        assert_eq!(
            initial.event["inference_status"]["last_params"],
            json!({"prompt": "a"})
        );
        // 30 fps in, every frame written immediately, for 2.5 s.
        for i in 0..75u64 {
            let now = i * 1_000_000 / 30;
            core.handle_timeout(now);
            if let Decision::Output(o) = core.handle_input_frame(frame(i, 30), now) {
                core.handle_output_written(o.due_us);
            }
        }
        core.handle_timeout(2_000_000);
        let statuses: Vec<Value> = drain_events(&mut core)
            .into_iter()
            .filter_map(|o| match o {
                PipelineOutput::Event(e) if e.kind() == "status" => Some(e.event),
                _ => None,
            })
            .collect();
        assert_eq!(statuses.len(), 2, "one per second");
        for s in &statuses {
            let fps_in = s["input_status"]["fps"].as_f64().unwrap();
            let fps_out = s["inference_status"]["fps"].as_f64().unwrap();
            assert!((fps_in - 30.0).abs() <= 1.0, "{fps_in}");
            assert!((fps_out - 30.0).abs() <= 1.0, "{fps_out}");
            assert_eq!(
                s["inference_status"]["last_params"],
                Value::Null,
                "cleared after report"
            );
            assert_eq!(
                s["inference_status"]["last_params_hash"],
                params_hash(&json!({"prompt": "a"}))
            );
        }
        assert_eq!(statuses[0]["timestamp"], 11_000);
        // A params update is applied and reported promptly; keepalives are not.
        assert!(!core.handle_control(json!({"keep": "alive"}), 2_100_000));
        assert!(drain_events(&mut core).is_empty());
        assert!(core.handle_control(json!({"prompt": "b"}), 2_200_000));
        let PipelineOutput::Event(update) = &drain_events(&mut core)[0] else {
            panic!()
        };
        let inf = &update.event["inference_status"];
        assert_eq!(inf["last_params"], json!({"prompt": "b"}));
        assert_eq!(inf["last_params_update_time"], 12_200);
        assert_eq!(
            inf["last_params_hash"],
            params_hash(&json!({"prompt": "b"}))
        );
    }

    #[test]
    fn trace_events_fire_once() {
        let mut core = PipelineCore::new(config(&Profile::default()), 0, 0, json!({}));
        core.handle_input_segment(1_000);
        core.handle_input_segment(2_000);
        core.handle_output_written(3_000);
        core.handle_output_written(4_000);
        let traces: Vec<String> = drain_events(&mut core)
            .into_iter()
            .filter_map(|o| match o {
                PipelineOutput::Event(e)
                    if e.queue_event_type == events::QueueEventType::StreamTrace =>
                {
                    Some(e.kind().to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            traces,
            [
                "runner_receive_stream_request",
                "runner_receive_first_ingest_segment",
                "runner_send_first_processed_segment"
            ]
        );
    }

    /// Seeded random profiles and inputs (PTS jumps and wraps, bursts, gaps, random keyframes)
    /// never panic and always keep the scheduling invariants.
    #[test]
    fn random_inputs_keep_invariants() {
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        for round in 0..200 {
            let profile = Profile {
                latency_ms: rng.random_range(0..300),
                latency_jitter_ms: rng.random_range(0..100),
                fps: rng.random_bool(0.5).then(|| rng.random_range(1..60)),
                startup_ms: rng.random_range(0..2000),
                stall_at_s: rng.random_bool(0.3).then(|| rng.random_range(0.0..5.0)),
                stall_s: rng.random_range(0.1..3.0),
                crash_after_s: rng.random_bool(0.2).then(|| rng.random_range(0.0..8.0)),
                slow: rng.random_bool(0.2),
                seed: rng.random(),
                ..Profile::default()
            };
            let cfg = PipelineConfig::from_profile(&profile, "noop", round, 1_000_000);
            let stall = cfg.stall_us;
            let mut core = PipelineCore::new(cfg, 0, 0, json!({}));
            let mut now = 0u64;
            let mut pts: u64 = rng.random_range(0..PTS_MODULO);
            let mut last_due = 0;
            let mut first_output = true;
            for _ in 0..300 {
                now += rng.random_range(0..80_000);
                pts = (pts + rng.random_range(0..9_000)) % PTS_MODULO;
                if rng.random_bool(0.01) {
                    pts = rng.random_range(0..PTS_MODULO);
                }
                core.handle_timeout(now);
                let frame = InputFrame {
                    pts,
                    keyframe: rng.random_bool(0.1),
                    payload: (),
                };
                if let Decision::Output(o) = core.handle_input_frame(frame, now) {
                    assert!(o.due_us >= now, "round {round}: output before input");
                    assert!(o.due_us >= last_due, "round {round}: order");
                    if first_output {
                        assert!(o.keyframe, "round {round}: output starts on a keyframe");
                        first_output = false;
                    }
                    if let Some((start, end)) = stall {
                        assert!(!(start..end).contains(&o.due_us), "round {round}: stall");
                    }
                    last_due = o.due_us;
                }
                while core.poll_output().is_some() {}
            }
            let s = core.stats();
            let dropped = s.dropped_loading
                + s.dropped_decimated
                + s.dropped_awaiting_keyframe
                + s.dropped_stalled
                + s.dropped_backlog
                + s.dropped_ended;
            assert_eq!(s.frames_in, s.frames_scheduled + dropped, "round {round}");
        }
    }

    #[test]
    fn keepalive_detection() {
        assert!(is_keepalive(&json!({"keep": "alive"})));
        assert!(!is_keepalive(&json!({"keep": "alive", "prompt": "x"})));
        assert!(!is_keepalive(&json!("keep")));
    }
}
