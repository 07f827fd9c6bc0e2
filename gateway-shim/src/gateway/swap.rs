//! Mid-stream swaps: when the gateway leaves an orchestrator, when it gives up, and what each
//! swap cost the viewer.
//!
//! It owns [`SwapMonitor`], a sans-IO state machine fed with what the driver observes on the
//! four trickle channels (each input carries `now_ms`) and ticked at [`SwapMonitor::poll_timeout`];
//! it answers through [`SwapMonitor::poll_decision`] with [`Decision::Swap`] or
//! [`Decision::End`]. It also owns the session's [`Suspensions`], the [`SwapRecord`]s with
//! their output freeze, and the last control params to replay to the next orchestrator.
//!
//! The triggers, thresholds and the chain limit are go-livepeer's (server/ai_live_video.go and
//! `processStream` in server/ai_mediaserver.go); each is cited where it is implemented.

use std::collections::{BTreeMap, VecDeque};

use lvt_schema::FailureClass;

/// Why the gateway left an orchestrator mid-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwapCause {
    /// Publishing an input segment got 404: the input channel is gone.
    PublishNotFound,
    /// An input segment was about to start while 3 were still in flight.
    SlowOrchestrator,
    /// The output subscription read the end of stream.
    SubscribeEos,
    /// The output subscription got 404.
    SubscribeNotFound,
    /// The output subscription failed more than 5 times in a row.
    SubscribeErrors,
    /// Copying an output segment failed while input was recent.
    OutputCopyError,
    /// No output segment for 30 s while input was recent.
    OutputTimeout,
    /// No event for more than 30 s.
    EventsTimeout,
    /// The events subscription failed more than 5 times in a row.
    EventsErrors,
    /// The control keepalive got 404: the control channel is gone.
    ControlNotFound,
    /// Replaying the cached params on the control channel failed 3 times.
    ControlWriteFailed,
}

impl SwapCause {
    /// A stable snake_case key for reports and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PublishNotFound => "publish_not_found",
            Self::SlowOrchestrator => "slow_orchestrator",
            Self::SubscribeEos => "subscribe_eos",
            Self::SubscribeNotFound => "subscribe_not_found",
            Self::SubscribeErrors => "subscribe_errors",
            Self::OutputCopyError => "output_copy_error",
            Self::OutputTimeout => "output_timeout",
            Self::EventsTimeout => "events_timeout",
            Self::EventsErrors => "events_errors",
            Self::ControlNotFound => "control_not_found",
            Self::ControlWriteFailed => "control_write_failed",
        }
    }

    /// go-livepeer's error text for this cause, which it sends as the `message` of the
    /// `orchestrator_swap` stream trace. Where go-livepeer appends a wrapped error of its own
    /// (copy and events read errors), only its fixed part is given.
    pub fn message(&self) -> &'static str {
        match self {
            Self::PublishNotFound => "stream no longer exists on orchestrator; terminating",
            Self::SlowOrchestrator => "orchestrator is slow",
            Self::SubscribeEos => "trickle subscribe stopping, stream not found, err=End of stream",
            Self::SubscribeNotFound => {
                "trickle subscribe stopping, stream not found, err=stream not found"
            }
            Self::SubscribeErrors => "trickle subscribe stopping, retries exceeded",
            Self::OutputCopyError => "trickle subscribe error, swapping",
            Self::OutputTimeout => "timeout waiting for segments",
            Self::EventsTimeout => "timeout waiting for events",
            Self::EventsErrors => "too many errors reading events; stopping subscription",
            Self::ControlNotFound => "control channel does not exist",
            Self::ControlWriteFailed => "control write failed",
        }
    }

    /// go-livepeer calls `suspendOrchestrator` before stopping for these causes only: a slow
    /// orchestrator, and missing or broken output while the input was recent.
    pub fn go_livepeer_suspends(&self) -> bool {
        matches!(
            self,
            Self::SlowOrchestrator | Self::OutputCopyError | Self::OutputTimeout
        )
    }

    /// The session failure class when a session ends on this cause (docs/metrics.md).
    ///
    /// Every channel of a session is deleted together when the orchestrator drops it, so a 404
    /// on the control channel is the same loss as one on the input channel; a slow
    /// orchestrator is one that stopped taking input. Both are `publish_lost`, as the probe
    /// classifies every publishing failure. What breaks the output is `output_timeout`, what
    /// breaks the events `events_timeout`; a control channel that refuses writes without
    /// vanishing speaks the protocol wrong.
    pub fn failure_class(&self) -> FailureClass {
        match self {
            Self::PublishNotFound | Self::SlowOrchestrator | Self::ControlNotFound => {
                FailureClass::PublishLost
            }
            Self::SubscribeEos
            | Self::SubscribeNotFound
            | Self::SubscribeErrors
            | Self::OutputCopyError
            | Self::OutputTimeout => FailureClass::OutputTimeout,
            Self::EventsTimeout | Self::EventsErrors => FailureClass::EventsTimeout,
            Self::ControlWriteFailed => FailureClass::ProtocolError,
        }
    }
}

/// Why an orchestrator is suspended for the rest of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendReason {
    /// It was busy at start.
    Busy,
    /// Its job start failed.
    StartFailed,
    /// The session swapped away from it.
    Swap(SwapCause),
}

/// One suspension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspension {
    pub at_ms: u64,
    pub reason: SuspendReason,
}

/// The orchestrators one session will not select again, keyed by service URI.
///
/// go-livepeer suspends gateway-wide for about 30 minutes (`aiLiveVideoToVideoPenalty` pool
/// refreshes of 6 minutes); a test session is shorter, so here a suspension lasts for the rest
/// of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suspensions {
    by_uri: BTreeMap<String, Suspension>,
}

impl Suspensions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Suspends `uri`; returns false when it already was, keeping the first reason.
    pub fn suspend(&mut self, uri: &str, at_ms: u64, reason: SuspendReason) -> bool {
        if self.by_uri.contains_key(uri) {
            return false;
        }
        self.by_uri
            .insert(uri.to_string(), Suspension { at_ms, reason });
        true
    }

    pub fn is_suspended(&self, uri: &str) -> bool {
        self.by_uri.contains_key(uri)
    }

    pub fn suspension(&self, uri: &str) -> Option<&Suspension> {
        self.by_uri.get(uri)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Suspension)> {
        self.by_uri.iter().map(|(uri, s)| (uri.as_str(), s))
    }

    pub fn len(&self) -> usize {
        self.by_uri.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uri.is_empty()
    }
}

/// The thresholds of [`SwapMonitor`]; the defaults are go-livepeer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapConfig {
    /// `maxInflightSegments`: a new input segment while this many are in flight is a swap.
    pub max_inflight_segments: u32,
    /// `maxRetries` of the output subscription: an error after more than this many in a row.
    pub max_subscribe_retries: u32,
    /// `retryPause` after an output read error; the output watchdog restarts after it.
    pub subscribe_retry_pause_ms: u64,
    /// `outSegmentTimeout` (default 30 s): the output watchdog period. Input is "recent" when
    /// its last segment began less than half of this ago.
    pub output_timeout_ms: u64,
    /// `eventCheckInterval`: the events watchdog ticks this often from the subscription start.
    pub event_check_interval_ms: u64,
    /// `maxEventGap`: a tick more than this after the last event is a swap.
    pub max_event_gap_ms: u64,
    /// `maxRetries` of the events subscription.
    pub max_event_retries: u32,
    /// `recentSwapInterval`: a swap less than this after the previous one extends the chain.
    pub recent_swap_interval_ms: u64,
    /// `maxRecentSwapsCount`: swaps allowed in one chain; the next trigger ends the session.
    pub max_recent_swaps: u32,
    /// Suspend the orchestrator left behind on every swap (lvt's rule: a failed orchestrator
    /// is not selected again in the session). When false, only the causes go-livepeer suspends
    /// for do ([`SwapCause::go_livepeer_suspends`]); go-livepeer may then pick the same
    /// orchestrator again.
    pub suspend_on_every_swap: bool,
}

impl Default for SwapConfig {
    fn default() -> Self {
        Self {
            max_inflight_segments: 3,
            max_subscribe_retries: 5,
            subscribe_retry_pause_ms: 300,
            output_timeout_ms: 30_000,
            event_check_interval_ms: 10_000,
            max_event_gap_ms: 30_000,
            max_event_retries: 5,
            recent_swap_interval_ms: 180_000,
            max_recent_swaps: 2,
            suspend_on_every_swap: true,
        }
    }
}

/// Why a session ends instead of swapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A trigger came with the chain already at its limit (go-livepeer: `Too many swaps`).
    TooManySwaps { cause: SwapCause },
    /// The swap found no orchestrator to take over.
    NoOrchestratorsAvailable { cause: SwapCause },
}

impl EndReason {
    /// The cause of the trigger that ended the session.
    pub fn cause(&self) -> SwapCause {
        match *self {
            Self::TooManySwaps { cause } | Self::NoOrchestratorsAvailable { cause } => cause,
        }
    }

    /// The session's failure class: that of the trigger that ended it, since that failure is
    /// what the session suffered last.
    pub fn failure_class(&self) -> FailureClass {
        self.cause().failure_class()
    }

    /// go-livepeer's error text: `Too many swaps: <cause>` (it wraps the cause with `%w: %w`)
    /// or `no orchestrators available`.
    pub fn message(&self) -> String {
        match self {
            Self::TooManySwaps { cause } => format!("Too many swaps: {}", cause.message()),
            Self::NoOrchestratorsAvailable { .. } => "no orchestrators available".to_string(),
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Stop the current orchestrator, select another one (suspending the current one when
    /// `suspend` is set), start it, replay [`SwapMonitor::params_to_replay`], then report
    /// [`SwapMonitor::handle_swap_completed`] or [`SwapMonitor::handle_reselection_failed`].
    Swap {
        cause: SwapCause,
        at_ms: u64,
        suspend: bool,
    },
    /// Stop the session.
    End { reason: EndReason, at_ms: u64 },
}

/// One swap as the session saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapRecord {
    /// When the trigger fired.
    pub at_ms: u64,
    /// The orchestrator left.
    pub from: String,
    /// The orchestrator that took over; `None` while reselecting or when nobody did.
    pub to: Option<String>,
    pub cause: SwapCause,
    /// From the last output frame before the swap to the first one after it; `None` when no
    /// frame came before it, or none came from the next orchestrator before it too was left.
    pub freeze_ms: Option<u64>,
}

impl SwapRecord {
    /// The record in the result schema; `origin_unix_ms` is the wall-clock time of `now_ms`
    /// zero on the driver's clock. A swap nobody took over has an empty `to`.
    pub fn to_schema(&self, origin_unix_ms: i64) -> lvt_schema::Swap {
        let at = i64::try_from(self.at_ms).unwrap_or(i64::MAX);
        lvt_schema::Swap {
            at_unix_ms: origin_unix_ms.saturating_add(at),
            from: self.from.clone(),
            to: self.to.clone().unwrap_or_default(),
            cause: self.cause.message().to_string(),
            freeze_ms: self.freeze_ms.map(|ms| ms as f64),
        }
    }
}

/// An input that does not fit the state machine: a driver bug, reported rather than panicking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    #[error("no swap is pending")]
    NoSwapPending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    Swapping { cause: SwapCause },
    Ended,
}

/// Watches one live session and decides when to swap orchestrators and when to give up.
///
/// Timers: an input at `now_ms` first lets every timer due at or before `now_ms` fire (at its
/// own due time), so a driver that ticks late still gets the decision go-livepeer would have
/// made, stamped with the time it would have made it. The driver should still call
/// [`SwapMonitor::handle_tick`] at [`SwapMonitor::poll_timeout`].
///
/// Inputs describe the current orchestrator only: go-livepeer gives each orchestrator its own
/// publisher, subscribers and counters, so the driver must not report, say, the end of a
/// segment still in flight to the orchestrator it left.
///
/// After a [`Decision::Swap`], triggers are ignored until the swap completes (go-livepeer
/// cancels the orchestrator's context with the first cause); after a [`Decision::End`] the
/// monitor only keeps its records.
#[derive(Debug, Clone)]
pub struct SwapMonitor {
    config: SwapConfig,
    orchestrator: String,
    phase: Phase,
    now_ms: u64,
    // The swap chain of go-livepeer's `orchestratorSwapper`.
    last_swapped_ms: u64,
    recent_swaps: u32,
    // The state of the current orchestrator.
    inflight_segments: u32,
    last_input_ms: Option<u64>,
    subscribe_errors: u32,
    output_deadline_ms: u64,
    event_errors: u32,
    last_event_ms: u64,
    next_event_check_ms: Option<u64>,
    // Freeze measurement.
    last_frame_ms: Option<u64>,
    awaiting_freeze: Option<(usize, u64)>,
    records: Vec<SwapRecord>,
    decisions: VecDeque<Decision>,
    params: Option<Vec<u8>>,
    suspensions: Suspensions,
}

impl SwapMonitor {
    /// A session that started on `orchestrator` at `now_ms`, with go-livepeer's thresholds.
    pub fn new(orchestrator: impl Into<String>, now_ms: u64) -> Self {
        Self::with_config(orchestrator, SwapConfig::default(), now_ms)
    }

    pub fn with_config(orchestrator: impl Into<String>, config: SwapConfig, now_ms: u64) -> Self {
        let mut monitor = Self {
            config,
            orchestrator: orchestrator.into(),
            phase: Phase::Serving,
            now_ms,
            // go-livepeer's `NewOrchestratorSwapper` sets `lastSwapped` to the stream start.
            last_swapped_ms: now_ms,
            recent_swaps: 0,
            inflight_segments: 0,
            last_input_ms: None,
            subscribe_errors: 0,
            output_deadline_ms: 0,
            event_errors: 0,
            last_event_ms: 0,
            next_event_check_ms: None,
            last_frame_ms: None,
            awaiting_freeze: None,
            records: Vec::new(),
            decisions: VecDeque::new(),
            params: None,
            suspensions: Suspensions::new(),
        };
        monitor.start_serving(now_ms);
        monitor
    }

    /// Resets what belongs to one orchestrator: go-livepeer builds fresh `liveRequestParams`,
    /// a fresh `SlowOrchChecker` and fresh watchdogs for each one.
    fn start_serving(&mut self, now_ms: u64) {
        self.phase = Phase::Serving;
        self.inflight_segments = 0;
        self.last_input_ms = None;
        self.subscribe_errors = 0;
        self.output_deadline_ms = now_ms.saturating_add(self.config.output_timeout_ms);
        self.event_errors = 0;
        self.last_event_ms = now_ms;
        self.next_event_check_ms = Some(now_ms.saturating_add(self.config.event_check_interval_ms));
    }

    /// Moves the clock to `now_ms` (never backwards) and fires the timers due by then.
    fn advance(&mut self, now_ms: u64) -> u64 {
        self.now_ms = self.now_ms.max(now_ms);
        self.run_timers();
        self.now_ms
    }

    fn is_serving(&self) -> bool {
        self.phase == Phase::Serving
    }

    /// The output watchdog (`segmentTicker` in `startTrickleSubscribe`): it fires
    /// `output_timeout_ms` after the subscriber last started a read, and swaps only when the
    /// last input segment began less than half that period before (`hasRecentInput`). Without
    /// recent input the ticker simply fires again a period later.
    fn output_fire_ms(&self) -> Option<u64> {
        let due = self.output_deadline_ms;
        if due > self.now_ms {
            return None;
        }
        let recent = self
            .last_input_ms
            .is_some_and(|t| due.saturating_sub(t) < self.config.output_timeout_ms / 2);
        recent.then_some(due)
    }

    /// The events watchdog (`eventTicker` in `startEventsSubscribe`): it ticks every
    /// `event_check_interval_ms` from the subscription start and swaps at the first tick more
    /// than `max_event_gap_ms` after the last event (`time.Now().Sub(eventTime) > maxEventGap`).
    fn event_fire_ms(&self) -> Option<u64> {
        let next = self.next_event_check_ms?;
        let interval = self.config.event_check_interval_ms.max(1);
        let threshold = self
            .last_event_ms
            .saturating_add(self.config.max_event_gap_ms);
        let fire = if next > threshold {
            next
        } else {
            next.saturating_add(((threshold - next) / interval + 1).saturating_mul(interval))
        };
        (fire <= self.now_ms).then_some(fire)
    }

    fn run_timers(&mut self) {
        if !self.is_serving() {
            return;
        }
        // Both watchdogs run on their own in go-livepeer; whichever fires first wins, and the
        // output watchdog wins a tie.
        let fired = match (self.output_fire_ms(), self.event_fire_ms()) {
            (Some(out), Some(ev)) if ev < out => Some((SwapCause::EventsTimeout, ev)),
            (Some(out), _) => Some((SwapCause::OutputTimeout, out)),
            (None, Some(ev)) => Some((SwapCause::EventsTimeout, ev)),
            (None, None) => None,
        };
        if let Some((cause, at_ms)) = fired {
            self.trigger(cause, at_ms);
            return;
        }
        // Nothing fired: move the periodic timers past now, skipping ticks that found nothing
        // (the state they would have looked at did not change in between).
        let now = self.now_ms;
        let period = self.config.output_timeout_ms.max(1);
        if self.output_deadline_ms <= now {
            let missed = (now - self.output_deadline_ms) / period + 1;
            self.output_deadline_ms = self
                .output_deadline_ms
                .saturating_add(missed.saturating_mul(period));
        }
        let interval = self.config.event_check_interval_ms.max(1);
        if let Some(next) = self.next_event_check_ms
            && next <= now
        {
            let missed = (now - next) / interval + 1;
            self.next_event_check_ms = Some(next.saturating_add(missed.saturating_mul(interval)));
        }
    }

    /// go-livepeer's `orchestratorSwapper.checkSwap`: a swap less than `recent_swap_interval_ms`
    /// after the previous one (or the stream start) extends the chain, a later one starts a new
    /// chain of one; a chain longer than `max_recent_swaps` ends the stream.
    fn trigger(&mut self, cause: SwapCause, at_ms: u64) {
        if !self.is_serving() {
            return;
        }
        let recent =
            at_ms.saturating_sub(self.last_swapped_ms) < self.config.recent_swap_interval_ms;
        self.recent_swaps = if recent { self.recent_swaps + 1 } else { 1 };
        if self.recent_swaps > self.config.max_recent_swaps {
            self.phase = Phase::Ended;
            self.decisions.push_back(Decision::End {
                reason: EndReason::TooManySwaps { cause },
                at_ms,
            });
            return;
        }
        self.last_swapped_ms = at_ms;
        self.phase = Phase::Swapping { cause };
        // A freeze still waiting for its first frame will not get one from this orchestrator.
        self.awaiting_freeze = None;
        self.records.push(SwapRecord {
            at_ms,
            from: self.orchestrator.clone(),
            to: None,
            cause,
            freeze_ms: None,
        });
        let suspend = self.config.suspend_on_every_swap || cause.go_livepeer_suspends();
        if suspend {
            self.suspensions
                .suspend(&self.orchestrator, at_ms, SuspendReason::Swap(cause));
        }
        self.decisions.push_back(Decision::Swap {
            cause,
            at_ms,
            suspend,
        });
    }

    /// Publishing a segment got 404 (`trickle.StreamNotFoundErr` in `startTricklePublish`).
    pub fn handle_publish_not_found(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        self.trigger(SwapCause::PublishNotFound, now);
    }

    /// An input segment is about to be published (`SlowOrchChecker.BeginSegment`): with
    /// `max_inflight_segments` already in flight this is a swap, and the segment is not sent.
    pub fn handle_input_segment_started(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        if !self.is_serving() {
            return;
        }
        if self.inflight_segments >= self.config.max_inflight_segments {
            self.trigger(SwapCause::SlowOrchestrator, now);
            return;
        }
        self.inflight_segments += 1;
        self.last_input_ms = Some(now);
    }

    /// An input segment finished publishing, whether it succeeded or not (`EndSegment`).
    pub fn handle_input_segment_finished(&mut self, now_ms: u64) {
        self.advance(now_ms);
        self.inflight_segments = self.inflight_segments.saturating_sub(1);
    }

    /// An output segment was read to its end: the read loop starts over, which resets the
    /// error count and restarts the output watchdog.
    pub fn handle_output_segment(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        if !self.is_serving() {
            return;
        }
        self.subscribe_errors = 0;
        self.output_deadline_ms = now.saturating_add(self.config.output_timeout_ms);
    }

    /// An output video frame arrived; it measures the freeze around swaps.
    pub fn handle_output_frame(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        if self.is_serving()
            && let Some((idx, before_ms)) = self.awaiting_freeze.take()
            && let Some(record) = self.records.get_mut(idx)
        {
            record.freeze_ms = Some(now.saturating_sub(before_ms));
        }
        self.last_frame_ms = Some(now);
    }

    /// The output subscription read the end of stream (`trickle.EOS`).
    pub fn handle_subscribe_eos(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        self.trigger(SwapCause::SubscribeEos, now);
    }

    /// The output subscription got 404 (`trickle.StreamNotFoundErr`).
    pub fn handle_subscribe_not_found(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        self.trigger(SwapCause::SubscribeNotFound, now);
    }

    /// An output read failed otherwise (for example 470 or a broken connection). go-livepeer
    /// stops when an error arrives with more than `max_subscribe_retries` already counted, so
    /// with the default of 5 the seventh error in a row swaps; otherwise it pauses and reads
    /// again, restarting the output watchdog.
    pub fn handle_subscribe_error(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        if !self.is_serving() {
            return;
        }
        if self.subscribe_errors > self.config.max_subscribe_retries {
            self.trigger(SwapCause::SubscribeErrors, now);
            return;
        }
        self.subscribe_errors += 1;
        self.output_deadline_ms = now
            .saturating_add(self.config.subscribe_retry_pause_ms)
            .saturating_add(self.config.output_timeout_ms);
    }

    /// Copying an output segment failed after its read began. With recent input go-livepeer
    /// swaps at once; without, it counts one more error and reads the same segment again.
    pub fn handle_output_copy_error(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        if !self.is_serving() {
            return;
        }
        let recent = self
            .last_input_ms
            .is_some_and(|t| now.saturating_sub(t) < self.config.output_timeout_ms / 2);
        if recent {
            self.trigger(SwapCause::OutputCopyError, now);
            return;
        }
        self.subscribe_errors += 1;
        self.output_deadline_ms = now.saturating_add(self.config.output_timeout_ms);
    }

    /// An event document parsed as JSON arrived; it feeds the events watchdog.
    pub fn handle_event(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        if !self.is_serving() {
            return;
        }
        self.event_errors = 0;
        self.last_event_ms = now;
    }

    /// An events segment arrived but was not JSON: the read succeeded (errors reset), but
    /// go-livepeer does not count it as an event for the watchdog.
    pub fn handle_event_malformed(&mut self, now_ms: u64) {
        self.advance(now_ms);
        if self.is_serving() {
            self.event_errors = 0;
        }
    }

    /// An events read failed; more than `max_event_retries` in a row is a swap, as on output.
    pub fn handle_events_error(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        if !self.is_serving() {
            return;
        }
        if self.event_errors > self.config.max_event_retries {
            self.trigger(SwapCause::EventsErrors, now);
            return;
        }
        self.event_errors += 1;
    }

    /// The events subscription ended (end of stream or 404). go-livepeer then just stops
    /// reading events and stops their watchdog with it: no swap, and no events timeout later.
    pub fn handle_events_end(&mut self, now_ms: u64) {
        self.advance(now_ms);
        if self.is_serving() {
            self.next_event_check_ms = None;
        }
    }

    /// The control keepalive got 404 (`control channel does not exist`).
    pub fn handle_control_not_found(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        self.trigger(SwapCause::ControlNotFound, now);
    }

    /// Replaying the cached params to a new orchestrator failed 3 times (`control write failed`).
    pub fn handle_control_write_failed(&mut self, now_ms: u64) {
        let now = self.advance(now_ms);
        self.trigger(SwapCause::ControlWriteFailed, now);
    }

    /// A params update was sent on the control channel; the last one is replayed after a
    /// swap, as go-livepeer caches `LivePipeline.Params` and writes it to the new control
    /// channel. The params of the job start request are not cached: they travel in every job
    /// start body anyway.
    pub fn handle_params(&mut self, params: impl Into<Vec<u8>>) {
        self.params = Some(params.into());
    }

    /// The swap finished: `to` accepted the job at `now_ms`, and its channels start now.
    pub fn handle_swap_completed(
        &mut self,
        to: impl Into<String>,
        now_ms: u64,
    ) -> Result<(), SwapError> {
        if !matches!(self.phase, Phase::Swapping { .. }) {
            return Err(SwapError::NoSwapPending);
        }
        self.now_ms = self.now_ms.max(now_ms);
        let to = to.into();
        let idx = self.records.len().saturating_sub(1);
        if let Some(record) = self.records.last_mut() {
            record.to = Some(to.clone());
        }
        self.awaiting_freeze = self.last_frame_ms.map(|before| (idx, before));
        self.orchestrator = to;
        self.start_serving(self.now_ms);
        Ok(())
    }

    /// The swap found nobody to take over; the session ends.
    pub fn handle_reselection_failed(&mut self, now_ms: u64) -> Result<(), SwapError> {
        let Phase::Swapping { cause } = self.phase else {
            return Err(SwapError::NoSwapPending);
        };
        self.now_ms = self.now_ms.max(now_ms);
        self.phase = Phase::Ended;
        self.decisions.push_back(Decision::End {
            reason: EndReason::NoOrchestratorsAvailable { cause },
            at_ms: self.now_ms,
        });
        Ok(())
    }

    /// Time passed; fires the timers due by `now_ms`.
    pub fn handle_tick(&mut self, now_ms: u64) {
        self.advance(now_ms);
    }

    /// When the next timer is due; `None` while no timer runs (swapping or ended).
    pub fn poll_timeout(&self) -> Option<u64> {
        if !self.is_serving() {
            return None;
        }
        Some(match self.next_event_check_ms {
            Some(ev) => ev.min(self.output_deadline_ms),
            None => self.output_deadline_ms,
        })
    }

    /// The next decision, oldest first.
    pub fn poll_decision(&mut self) -> Option<Decision> {
        self.decisions.pop_front()
    }

    /// The last params update, to write to the new orchestrator's control channel.
    pub fn params_to_replay(&self) -> Option<&[u8]> {
        self.params.as_deref()
    }

    /// Every swap so far, in order.
    pub fn records(&self) -> &[SwapRecord] {
        &self.records
    }

    /// The orchestrators left behind and suspended for the rest of the session.
    pub fn suspensions(&self) -> &Suspensions {
        &self.suspensions
    }

    /// The session's suspensions, for the driver to add start-time failures to.
    pub fn suspensions_mut(&mut self) -> &mut Suspensions {
        &mut self.suspensions
    }

    /// The orchestrator serving the session (or the one being left while swapping).
    pub fn orchestrator(&self) -> &str {
        &self.orchestrator
    }

    /// Swaps in the current chain.
    pub fn swaps_in_chain(&self) -> u32 {
        self.recent_swaps
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "https://a:8935";
    const B: &str = "https://b:8935";
    const C: &str = "https://c:8935";

    fn swap(cause: SwapCause, at_ms: u64) -> Option<Decision> {
        Some(Decision::Swap {
            cause,
            at_ms,
            suspend: true,
        })
    }

    /// Feeds one input segment every 2 s from `from_ms` to `to_ms` (inclusive), each finished
    /// 500 ms later, so the input stays recent and nothing piles up.
    fn feed_input(m: &mut SwapMonitor, from_ms: u64, to_ms: u64) {
        let mut t = from_ms;
        while t <= to_ms {
            m.handle_input_segment_started(t);
            m.handle_input_segment_finished(t + 500);
            t += 2_000;
        }
    }

    #[test]
    fn publish_not_found_swaps_at_once() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_publish_not_found(1_234);
        assert_eq!(m.poll_decision(), swap(SwapCause::PublishNotFound, 1_234));
        assert_eq!(m.poll_decision(), None);
        assert!(m.suspensions().is_suspended(A));
    }

    #[test]
    fn a_fourth_segment_with_three_in_flight_swaps() {
        let mut m = SwapMonitor::new(A, 0);
        for t in [0, 1_000, 2_000] {
            m.handle_input_segment_started(t);
        }
        assert_eq!(m.poll_decision(), None, "three in flight are allowed");
        m.handle_input_segment_finished(2_500);
        m.handle_input_segment_started(3_000);
        assert_eq!(
            m.poll_decision(),
            None,
            "one finished, so three are in flight again"
        );
        m.handle_input_segment_started(4_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::SlowOrchestrator, 4_000));
    }

    #[test]
    fn subscribe_end_of_stream_and_not_found_swap() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_subscribe_eos(10);
        assert_eq!(m.poll_decision(), swap(SwapCause::SubscribeEos, 10));
        let mut m = SwapMonitor::new(A, 0);
        m.handle_subscribe_not_found(11);
        assert_eq!(m.poll_decision(), swap(SwapCause::SubscribeNotFound, 11));
    }

    #[test]
    fn the_seventh_subscribe_error_in_a_row_swaps() {
        let mut m = SwapMonitor::new(A, 0);
        for t in 1..=6 {
            m.handle_subscribe_error(t * 300);
        }
        assert_eq!(
            m.poll_decision(),
            None,
            "six errors: retries reached 6, not yet checked"
        );
        m.handle_subscribe_error(2_100);
        assert_eq!(m.poll_decision(), swap(SwapCause::SubscribeErrors, 2_100));
    }

    #[test]
    fn an_output_segment_resets_the_subscribe_error_count() {
        let mut m = SwapMonitor::new(A, 0);
        for t in 1..=6 {
            m.handle_subscribe_error(t * 100);
        }
        m.handle_output_segment(1_000);
        for t in 1..=6 {
            m.handle_subscribe_error(1_000 + t * 100);
        }
        assert_eq!(m.poll_decision(), None);
    }

    #[test]
    fn output_timeout_fires_at_thirty_seconds_with_recent_input() {
        let mut m = SwapMonitor::new(A, 0);
        feed_input(&mut m, 0, 28_000);
        m.handle_event(28_500);
        assert_eq!(m.poll_timeout(), Some(30_000));
        m.handle_tick(29_999);
        assert_eq!(m.poll_decision(), None);
        m.handle_tick(30_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::OutputTimeout, 30_000));
    }

    #[test]
    fn output_segments_restart_the_output_watchdog() {
        let mut m = SwapMonitor::new(A, 0);
        // Without events their watchdog would fire first; these tests look at output only.
        m.handle_events_end(0);
        feed_input(&mut m, 0, 8_000);
        m.handle_output_segment(10_000);
        feed_input(&mut m, 10_000, 38_000);
        m.handle_tick(39_999);
        assert_eq!(m.poll_decision(), None);
        m.handle_tick(40_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::OutputTimeout, 40_000));
    }

    #[test]
    fn output_timeout_needs_input_newer_than_fifteen_seconds() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_events_end(0);
        // The last input began at 15 000: at 30 000 it is exactly 15 s old, not recent.
        m.handle_input_segment_started(15_000);
        m.handle_input_segment_finished(15_500);
        m.handle_tick(30_000);
        assert_eq!(m.poll_decision(), None);
        assert_eq!(
            m.poll_timeout(),
            Some(60_000),
            "the ticker fires again a period later"
        );
        // Input that began at 45 001 is recent at 60 000.
        m.handle_input_segment_started(45_001);
        m.handle_input_segment_finished(45_500);
        m.handle_tick(59_999);
        assert_eq!(m.poll_decision(), None);
        m.handle_tick(60_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::OutputTimeout, 60_000));
    }

    #[test]
    fn an_output_copy_error_swaps_only_with_recent_input() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_output_copy_error(500);
        assert_eq!(
            m.poll_decision(),
            None,
            "no input yet: retried, not swapped"
        );
        m.handle_input_segment_started(1_000);
        m.handle_output_copy_error(16_000);
        assert_eq!(m.poll_decision(), None, "the input is exactly 15 s old");
        m.handle_output_copy_error(15_999);
        assert_eq!(m.poll_decision(), None, "time never runs backwards");
        let mut m = SwapMonitor::new(A, 0);
        m.handle_input_segment_started(1_000);
        m.handle_output_copy_error(15_999);
        assert_eq!(m.poll_decision(), swap(SwapCause::OutputCopyError, 15_999));
    }

    #[test]
    fn events_timeout_fires_at_the_first_check_more_than_thirty_seconds_after_the_last_event() {
        // No event at all: checks at 10, 20, 30 s find gaps of at most 30 s; 40 s fires.
        let mut m = SwapMonitor::new(A, 0);
        m.handle_tick(30_000);
        assert_eq!(
            m.poll_decision(),
            None,
            "a gap of exactly 30 s is not more than 30 s"
        );
        m.handle_tick(39_999);
        assert_eq!(m.poll_decision(), None);
        m.handle_tick(40_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::EventsTimeout, 40_000));

        // The last event at 10 s: the 40 s check sees exactly 30 s, the 50 s check fires.
        let mut m = SwapMonitor::new(A, 0);
        m.handle_event(10_000);
        m.handle_tick(49_999);
        assert_eq!(m.poll_decision(), None);
        m.handle_tick(50_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::EventsTimeout, 50_000));
    }

    #[test]
    fn a_late_tick_reports_the_time_the_timer_was_due() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_event(5_000);
        m.handle_tick(100_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::EventsTimeout, 40_000));
    }

    #[test]
    fn the_seventh_events_error_swaps_and_events_end_stops_the_events_watchdog() {
        let mut m = SwapMonitor::new(A, 0);
        for t in 1..=6 {
            m.handle_events_error(t);
        }
        assert_eq!(m.poll_decision(), None);
        m.handle_events_error(7);
        assert_eq!(m.poll_decision(), swap(SwapCause::EventsErrors, 7));

        let mut m = SwapMonitor::new(A, 0);
        m.handle_events_end(1_000);
        m.handle_tick(120_000);
        assert_eq!(
            m.poll_decision(),
            None,
            "no events watchdog after the subscription ended"
        );
    }

    #[test]
    fn a_malformed_event_resets_errors_but_not_the_gap() {
        let mut m = SwapMonitor::new(A, 0);
        for t in 1..=6 {
            m.handle_events_error(t);
        }
        m.handle_event_malformed(20);
        m.handle_events_error(30);
        assert_eq!(m.poll_decision(), None);
        m.handle_tick(40_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::EventsTimeout, 40_000));
    }

    #[test]
    fn control_not_found_and_write_failure_swap() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_control_not_found(50);
        assert_eq!(m.poll_decision(), swap(SwapCause::ControlNotFound, 50));
        let mut m = SwapMonitor::new(A, 0);
        m.handle_control_write_failed(60);
        assert_eq!(m.poll_decision(), swap(SwapCause::ControlWriteFailed, 60));
    }

    #[test]
    fn only_the_first_trigger_counts_until_the_swap_completes() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_publish_not_found(100);
        m.handle_subscribe_eos(150);
        m.handle_tick(200_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::PublishNotFound, 100));
        assert_eq!(m.poll_decision(), None);
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(m.records().len(), 1);
    }

    #[test]
    fn a_third_trigger_within_the_chain_ends_the_session() {
        let mut m = SwapMonitor::new(A, 0);
        // Events are not what these tests look at; their watchdog would fire first.
        m.handle_events_end(0);
        m.handle_publish_not_found(60_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::PublishNotFound, 60_000));
        m.handle_swap_completed(B, 61_000).unwrap();
        m.handle_events_end(61_000);
        m.handle_subscribe_eos(120_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::SubscribeEos, 120_000));
        m.handle_swap_completed(C, 121_000).unwrap();
        m.handle_events_end(121_000);
        m.handle_control_not_found(170_000);
        let end = m.poll_decision();
        assert_eq!(
            end,
            Some(Decision::End {
                reason: EndReason::TooManySwaps {
                    cause: SwapCause::ControlNotFound
                },
                at_ms: 170_000
            })
        );
        let Some(Decision::End { reason, .. }) = end else {
            unreachable!()
        };
        assert_eq!(
            reason.message(),
            "Too many swaps: control channel does not exist"
        );
        assert_eq!(reason.failure_class(), FailureClass::PublishLost);
        assert!(m.is_ended());
        assert_eq!(m.records().len(), 2, "the ending trigger is not a swap");
        m.handle_publish_not_found(171_000);
        assert_eq!(
            m.poll_decision(),
            None,
            "an ended session decides nothing more"
        );
    }

    #[test]
    fn a_swap_three_minutes_after_the_previous_one_starts_a_new_chain() {
        // go-livepeer: `time.Since(lastSwapped) < recentSwapInterval` extends the chain.
        let chain = |third_at_ms: u64| {
            let mut m = SwapMonitor::new(A, 0);
            // Events are not what these tests look at; their watchdog would fire first.
            m.handle_events_end(0);
            m.handle_publish_not_found(10_000);
            m.handle_swap_completed(B, 10_500).unwrap();
            m.handle_events_end(10_500);
            m.handle_publish_not_found(100_000);
            m.handle_swap_completed(C, 100_500).unwrap();
            m.handle_events_end(100_500);
            m.handle_publish_not_found(third_at_ms);
            let _ = m.poll_decision();
            let _ = m.poll_decision();
            (m.poll_decision(), m.swaps_in_chain())
        };
        assert_eq!(
            chain(279_999),
            (
                Some(Decision::End {
                    reason: EndReason::TooManySwaps {
                        cause: SwapCause::PublishNotFound
                    },
                    at_ms: 279_999
                }),
                3
            )
        );
        assert_eq!(
            chain(280_000),
            (swap(SwapCause::PublishNotFound, 280_000), 1)
        );
    }

    #[test]
    fn the_chain_is_measured_from_the_previous_swap_not_the_first() {
        // Swaps 150 s apart form one chain although the first and third are 300 s apart.
        let mut m = SwapMonitor::new(A, 0);
        // Events are not what these tests look at; their watchdog would fire first.
        m.handle_events_end(0);
        m.handle_publish_not_found(100_000);
        m.handle_swap_completed(B, 100_100).unwrap();
        m.handle_events_end(100_100);
        m.handle_publish_not_found(250_000);
        m.handle_swap_completed(C, 250_100).unwrap();
        m.handle_events_end(250_100);
        m.handle_publish_not_found(400_000);
        let decisions: Vec<_> = std::iter::from_fn(|| m.poll_decision()).collect();
        assert!(matches!(
            decisions.last(),
            Some(Decision::End {
                reason: EndReason::TooManySwaps { .. },
                at_ms: 400_000
            })
        ));
    }

    #[test]
    fn a_new_orchestrator_gets_fresh_watchdogs_and_counters() {
        let mut m = SwapMonitor::new(A, 0);
        for t in 1..=6 {
            m.handle_subscribe_error(t);
        }
        m.handle_publish_not_found(1_000);
        let _ = m.poll_decision();
        m.handle_swap_completed(B, 3_000).unwrap();
        assert_eq!(m.orchestrator(), B);
        m.handle_subscribe_error(3_100);
        assert_eq!(m.poll_decision(), None, "B starts with no errors counted");
        m.handle_tick(42_999);
        assert_eq!(
            m.poll_decision(),
            None,
            "B's events watchdog counts from 3 000"
        );
        m.handle_tick(43_000);
        assert_eq!(m.poll_decision(), swap(SwapCause::EventsTimeout, 43_000));
    }

    #[test]
    fn suspension_follows_the_policy() {
        let config = SwapConfig {
            suspend_on_every_swap: false,
            ..SwapConfig::default()
        };
        let mut m = SwapMonitor::with_config(A, config, 0);
        m.handle_publish_not_found(10);
        assert_eq!(
            m.poll_decision(),
            Some(Decision::Swap {
                cause: SwapCause::PublishNotFound,
                at_ms: 10,
                suspend: false
            })
        );
        assert!(!m.suspensions().is_suspended(A));
        m.handle_swap_completed(B, 20).unwrap();
        for t in [30, 40, 50, 60] {
            m.handle_input_segment_started(t);
        }
        assert_eq!(
            m.poll_decision(),
            Some(Decision::Swap {
                cause: SwapCause::SlowOrchestrator,
                at_ms: 60,
                suspend: true
            })
        );
        assert_eq!(
            m.suspensions().suspension(B),
            Some(&Suspension {
                at_ms: 60,
                reason: SuspendReason::Swap(SwapCause::SlowOrchestrator)
            })
        );
    }

    #[test]
    fn an_orchestrator_left_behind_is_not_selected_again() {
        use crate::gateway::select::{Candidate, GoLivepeerDefault, SelectionStrategy};
        let candidates = vec![
            Candidate {
                warm: true,
                ..Candidate::new(A, 10)
            },
            Candidate {
                warm: true,
                ..Candidate::new(B, 20)
            },
            Candidate::new(C, 5),
        ];
        let mut strategy = GoLivepeerDefault::default();
        let mut m = SwapMonitor::new(A, 0);
        assert_eq!(
            strategy.order(&candidates, m.suspensions(), 0),
            vec![0, 1, 2]
        );
        m.handle_subscribe_eos(1_000);
        let _ = m.poll_decision();
        assert_eq!(
            strategy.order(&candidates, m.suspensions(), 1_000),
            vec![1, 2]
        );
        m.handle_swap_completed(B, 1_500).unwrap();
        m.handle_publish_not_found(2_000);
        let _ = m.poll_decision();
        assert_eq!(strategy.order(&candidates, m.suspensions(), 2_000), vec![2]);
    }

    #[test]
    fn suspensions_keep_the_first_reason() {
        let mut s = Suspensions::new();
        assert!(s.suspend(A, 1, SuspendReason::Busy));
        assert!(!s.suspend(A, 2, SuspendReason::StartFailed));
        assert_eq!(s.suspension(A).map(|x| x.reason), Some(SuspendReason::Busy));
        assert_eq!(s.len(), 1);
        assert!(!s.is_suspended(B));
    }

    #[test]
    fn freeze_runs_from_the_last_frame_before_to_the_first_frame_after() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_output_frame(9_000);
        m.handle_output_frame(9_040);
        m.handle_subscribe_eos(10_000);
        let _ = m.poll_decision();
        // A frame still decoded from A's last bytes counts as before the swap.
        m.handle_output_frame(10_020);
        m.handle_swap_completed(B, 11_000).unwrap();
        assert_eq!(
            m.records()[0].freeze_ms,
            None,
            "not measured until B's first frame"
        );
        m.handle_output_frame(13_520);
        m.handle_output_frame(13_560);
        assert_eq!(
            m.records(),
            &[SwapRecord {
                at_ms: 10_000,
                from: A.to_string(),
                to: Some(B.to_string()),
                cause: SwapCause::SubscribeEos,
                freeze_ms: Some(3_500),
            }]
        );
        let schema = m.records()[0].to_schema(1_700_000_000_000);
        assert_eq!(schema.at_unix_ms, 1_700_000_010_000);
        assert_eq!(schema.to, B);
        assert_eq!(
            schema.cause,
            "trickle subscribe stopping, stream not found, err=End of stream"
        );
        assert_eq!(schema.freeze_ms, Some(3_500.0));
    }

    #[test]
    fn no_freeze_without_a_frame_before_or_after() {
        let mut m = SwapMonitor::new(A, 0);
        m.handle_publish_not_found(1_000);
        let _ = m.poll_decision();
        m.handle_swap_completed(B, 2_000).unwrap();
        m.handle_output_frame(5_000);
        assert_eq!(
            m.records()[0].freeze_ms,
            None,
            "no frame came before the swap"
        );
        m.handle_publish_not_found(6_000);
        let _ = m.poll_decision();
        m.handle_swap_completed(C, 7_000).unwrap();
        m.handle_publish_not_found(8_000);
        let _ = m.poll_decision();
        assert_eq!(m.records()[1].freeze_ms, None, "C never produced a frame");
    }

    #[test]
    fn reselection_failure_ends_the_session_with_the_swap_cause() {
        let mut m = SwapMonitor::new(A, 0);
        assert_eq!(
            m.handle_reselection_failed(5),
            Err(SwapError::NoSwapPending)
        );
        assert_eq!(m.handle_swap_completed(B, 5), Err(SwapError::NoSwapPending));
        m.handle_subscribe_not_found(10);
        let _ = m.poll_decision();
        m.handle_reselection_failed(2_010).unwrap();
        let end = m.poll_decision();
        assert_eq!(
            end,
            Some(Decision::End {
                reason: EndReason::NoOrchestratorsAvailable {
                    cause: SwapCause::SubscribeNotFound
                },
                at_ms: 2_010
            })
        );
        assert_eq!(m.records()[0].to, None);
        assert_eq!(m.records()[0].to_schema(0).to, "");
        let Some(Decision::End { reason, .. }) = end else {
            unreachable!()
        };
        assert_eq!(reason.failure_class(), FailureClass::OutputTimeout);
        assert_eq!(reason.message(), "no orchestrators available");
    }

    #[test]
    fn the_last_params_are_kept_for_replay() {
        let mut m = SwapMonitor::new(A, 0);
        assert_eq!(m.params_to_replay(), None);
        m.handle_params(br#"{"prompt":"a"}"#.to_vec());
        m.handle_params(br#"{"prompt":"b"}"#.to_vec());
        m.handle_publish_not_found(10);
        m.handle_swap_completed(B, 20).unwrap();
        assert_eq!(m.params_to_replay(), Some(&br#"{"prompt":"b"}"#[..]));
    }

    #[test]
    fn causes_map_to_failure_classes() {
        use SwapCause::*;
        let expected = [
            (PublishNotFound, FailureClass::PublishLost),
            (SlowOrchestrator, FailureClass::PublishLost),
            (SubscribeEos, FailureClass::OutputTimeout),
            (SubscribeNotFound, FailureClass::OutputTimeout),
            (SubscribeErrors, FailureClass::OutputTimeout),
            (OutputCopyError, FailureClass::OutputTimeout),
            (OutputTimeout, FailureClass::OutputTimeout),
            (EventsTimeout, FailureClass::EventsTimeout),
            (EventsErrors, FailureClass::EventsTimeout),
            (ControlNotFound, FailureClass::PublishLost),
            (ControlWriteFailed, FailureClass::ProtocolError),
        ];
        for (cause, class) in expected {
            assert_eq!(cause.failure_class(), class, "{}", cause.as_str());
        }
    }
}
