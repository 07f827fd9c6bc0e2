//! The SLA grain ([`CellKey`]) and the additive sums kept per cell ([`CellSums`]).
//!
//! A cell is one hour x orchestrator x pipeline x model x GPU x region x prompt complexity x
//! test-load flag. Everything a cell keeps is a count or a sum, so the sums of any coarser grain
//! (a day, a region, the seven-day cohort) are the field-by-field sums of its cells: scores are
//! always computed from merged sums, never by averaging scores. Sums of measured values are kept
//! as integer millionths of their unit so that merging is exact and associative, whatever the
//! order in which a store adds cells up.

use lvt_schema::{FailureClass, Outcome, SessionReport, SessionSlo, TargetMode};
use serde::{Deserialize, Serialize};

use super::histogram::{FpsHistogram, LatencyHistogram};

/// Milliseconds in one hour, the width of a cell.
const HOUR_MS: i64 = 3_600_000;

/// The identity of one SLA cell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellKey {
    /// Start of the hour the session started in, seconds since the Unix epoch (a multiple of
    /// 3600).
    pub hour_unix_s: i64,
    /// The orchestrator's Ethereum address in lowercase when it is verified (test load: checked
    /// against the ServiceRegistry) or reported by a gateway (organic load), else its service
    /// URI, else `""` (a network session that could name no orchestrator).
    pub orchestrator: String,
    /// The pipeline, for example `live-video-to-video`.
    pub pipeline: String,
    /// The model id, for example `streamdiffusion`.
    pub model_id: String,
    /// The GPU name the orchestrator reported, or `""`.
    pub gpu: String,
    /// The tester's region label, or `""`.
    pub region: String,
    /// The prompt complexity, `low`, `medium` or `high`, or `""` when the session named none.
    pub complexity: String,
    /// Whether the session was synthetic test load; test and organic load never share a cell.
    pub test_load: bool,
}

impl CellKey {
    /// The cell a session belongs to.
    pub fn of(session: &SessionReport) -> CellKey {
        let orchestrator = session
            .orchestrator
            .as_ref()
            .map(|orchestrator| orchestrator_key(orchestrator, session.is_test_load))
            .unwrap_or_default();
        let complexity = session
            .prompt
            .as_ref()
            .and_then(|prompt| prompt.complexity)
            .map(|complexity| match complexity {
                lvt_schema::Complexity::Low => "low",
                lvt_schema::Complexity::Medium => "medium",
                lvt_schema::Complexity::High => "high",
            })
            .unwrap_or_default();
        CellKey {
            hour_unix_s: hour_floor_unix_s(session.started_at_unix_ms),
            orchestrator,
            pipeline: session.pipeline.clone(),
            model_id: session.model_id.clone(),
            gpu: session
                .gpu
                .as_ref()
                .map(|gpu| gpu.name.clone())
                .unwrap_or_default(),
            region: session.region.clone().unwrap_or_default(),
            complexity: complexity.to_owned(),
            test_load: session.is_test_load,
        }
    }
}

/// The start of the hour holding `at_unix_ms`, in seconds since the Unix epoch (floored, so times
/// before 1970 land in the hour that contains them too).
pub fn hour_floor_unix_s(at_unix_ms: i64) -> i64 {
    at_unix_ms.div_euclid(HOUR_MS) * (HOUR_MS / 1000)
}

/// The hours, as `[start, end)` in seconds since the Unix epoch, whose cells form the cohort of a
/// cell scored at `hour_unix_s`: the seven days (168 hours) before it, the scored hour excluded.
pub fn cohort_window_unix_s(hour_unix_s: i64) -> std::ops::Range<i64> {
    let start = hour_unix_s.saturating_sub(7 * 24 * 3600);
    start..hour_unix_s
}

/// A count and an exact sum of one measured value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSum {
    /// Number of values added.
    pub count: u64,
    /// Sum of the values in millionths of the value's unit (rounded per value), so that sums
    /// merge exactly in any order.
    pub sum_millionths: u64,
}

impl MetricSum {
    /// Adds one value; a negative, NaN or infinite value is not a measurement and is ignored, so
    /// that one corrupt record cannot poison a seven-day cohort.
    pub fn add(&mut self, value: f64) {
        if let Some(millionths) = to_millionths(value) {
            self.count = self.count.saturating_add(1);
            self.sum_millionths = self.sum_millionths.saturating_add(millionths);
        }
    }

    /// Adds another sum to this one.
    pub fn merge(&mut self, other: &MetricSum) {
        self.count = self.count.saturating_add(other.count);
        self.sum_millionths = self.sum_millionths.saturating_add(other.sum_millionths);
    }

    /// The sum in the value's unit.
    pub fn sum(&self) -> f64 {
        self.sum_millionths as f64 / 1e6
    }

    /// The mean in the value's unit; `None` without values.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum() / self.count as f64)
    }
}

fn to_millionths(value: f64) -> Option<u64> {
    // A float-to-int `as` saturates, so an absurdly large value caps instead of wrapping.
    (value.is_finite() && value >= 0.0).then(|| (value * 1e6).round() as u64)
}

/// A value if it is a usable measurement (finite and not negative).
pub(crate) fn measured(value: Option<f64>) -> Option<f64> {
    value.filter(|value| value.is_finite() && *value >= 0.0)
}

/// The additive sums of one cell (or, merged, of any set of cells).
///
/// Denominators, as docs/sla.md explains: an *attempt* is a passed session or a failed one whose
/// failure is the target's (busy, indeterminate and tester-internal failures are excused); a
/// *started* attempt is one whose first output frame arrived (`startup_ms` present).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellSums {
    /// Every session added, whatever its outcome.
    pub sessions: u64,
    /// Sessions with outcome `passed`.
    pub passed: u64,
    /// Sessions with outcome `failed`.
    pub failed: u64,
    /// Sessions with outcome `unscored_busy`: a capacity signal, not a failure.
    pub unscored_busy: u64,
    /// Sessions with outcome `unscored_indeterminate`: not attributable to the target.
    pub unscored_indeterminate: u64,
    /// Attempts: the denominator of startup success, output viability and coverage.
    pub startup_attempts: u64,
    /// Attempts whose first output frame arrived.
    pub startup_successes: u64,
    /// Started attempts during which the gateway swapped no orchestrator.
    pub no_swap: u64,
    /// Orchestrator swaps summed over started attempts.
    pub swaps: u64,
    /// Attempts with viable output: mean output FPS above 0 and not only the runner's loading
    /// state.
    pub output_viable: u64,
    /// Attempts whose health evidence is complete: a startup failure, or a started session that
    /// carries both e2e latency and output FPS.
    pub evidence_complete: u64,
    /// Startup latency of started attempts, ms.
    pub startup_ms: MetricSum,
    /// Per-session e2e latency median of attempts that measured one, ms.
    pub e2e_p50_ms: MetricSum,
    /// Per-session mean output FPS of attempts that measured one.
    pub output_fps: MetricSum,
    /// Per-session FPS jitter (std/mean of the per-window FPS), dimensionless.
    pub fps_jitter: MetricSum,
    /// Output stalls summed over started attempts.
    pub stalls: u64,
    /// Stalled time of started attempts, ms (one value per started attempt).
    pub stall_ms: MetricSum,
    /// Wall-clock length of started attempts, ms (one value per started attempt): the exposure
    /// stall rates are per.
    pub session_ms: MetricSum,
    /// Startup latencies of started attempts, for cohort percentiles.
    pub startup_ms_buckets: LatencyHistogram,
    /// Per-session e2e latency medians, for cohort percentiles.
    pub e2e_p50_ms_buckets: LatencyHistogram,
    /// Per-session mean output FPS, for cohort percentiles.
    pub output_fps_buckets: FpsHistogram,
    /// Started attempts that ran to their planned end (outcome `passed`; a network share the
    /// gateway swapped away from without a fault counts as run to its end).
    #[serde(default)]
    pub completed: u64,
    /// Started attempts counted for completion: the denominator of `completed`. Kept apart from
    /// `startup_successes` because cells stored before completion was counted have neither.
    #[serde(default)]
    pub completion_trials: u64,
    /// Started attempts whose session declared a startup SLO ([`SessionSlo::startup_ms`]).
    #[serde(default)]
    pub slo_startup_trials: u64,
    /// Of those, the ones whose startup latency was within it.
    #[serde(default)]
    pub slo_startup_met: u64,
    /// Attempts with an e2e latency median whose session declared an e2e SLO.
    #[serde(default)]
    pub slo_e2e_trials: u64,
    /// Of those, the ones whose e2e latency median was within it.
    #[serde(default)]
    pub slo_e2e_met: u64,
    /// Attempts with a mean output FPS whose session declared an FPS SLO.
    #[serde(default)]
    pub slo_fps_trials: u64,
    /// Of those, the ones whose mean output FPS reached it.
    #[serde(default)]
    pub slo_fps_met: u64,
}

impl CellSums {
    /// Sums of the given sessions (in any order: the result is the same).
    pub fn from_sessions<'a>(sessions: impl IntoIterator<Item = &'a SessionReport>) -> CellSums {
        let mut sums = CellSums::default();
        for session in sessions {
            sums.add(session);
        }
        sums
    }

    /// Adds one session's evidence.
    pub fn add(&mut self, session: &SessionReport) {
        self.add_evidence(&Evidence::of_session(session));
    }

    /// Adds one attempt's evidence: a whole session, or one orchestrator's share of a network
    /// session (see [`super::attribution`]).
    pub(crate) fn add_evidence(&mut self, evidence: &Evidence) {
        bump(&mut self.sessions);
        let attempt = match evidence.outcome {
            Outcome::Passed => {
                bump(&mut self.passed);
                true
            }
            Outcome::Failed => {
                bump(&mut self.failed);
                // The tester reports busy targets as `unscored_busy`, but a failed session that
                // still names capacity (or a tester bug) is excused the same way: neither says
                // anything about how the orchestrator serves a stream it accepted.
                !is_excused(evidence.failure_class)
            }
            Outcome::UnscoredBusy => {
                bump(&mut self.unscored_busy);
                false
            }
            Outcome::UnscoredIndeterminate => {
                bump(&mut self.unscored_indeterminate);
                false
            }
        };
        if !attempt {
            return;
        }
        bump(&mut self.startup_attempts);

        let slo = evidence.slo.unwrap_or_default();
        if let Some(value) = evidence.e2e_p50_ms {
            self.e2e_p50_ms.add(value);
            self.e2e_p50_ms_buckets.record(value);
            judge(
                &mut self.slo_e2e_trials,
                &mut self.slo_e2e_met,
                slo.e2e_latency_ms.map(|limit| value <= limit),
            );
        }
        if let Some(value) = evidence.output_fps {
            self.output_fps.add(value);
            self.output_fps_buckets.record(value);
            judge(
                &mut self.slo_fps_trials,
                &mut self.slo_fps_met,
                slo.output_fps.map(|limit| value >= limit),
            );
        }
        if let Some(value) = evidence.fps_jitter {
            self.fps_jitter.add(value);
        }
        if evidence.output_fps.is_some_and(|fps| fps > 0.0) && !evidence.only_loading {
            bump(&mut self.output_viable);
        }

        if !evidence.started {
            // A session without a first output frame is a startup failure, and that failure is
            // complete evidence of how the session went.
            bump(&mut self.evidence_complete);
            return;
        }
        bump(&mut self.startup_successes);
        bump(&mut self.completion_trials);
        if evidence.outcome == Outcome::Passed {
            bump(&mut self.completed);
        }
        if let Some(startup_ms) = evidence.startup_ms {
            self.startup_ms.add(startup_ms);
            self.startup_ms_buckets.record(startup_ms);
            judge(
                &mut self.slo_startup_trials,
                &mut self.slo_startup_met,
                slo.startup_ms.map(|limit| startup_ms <= limit),
            );
        }
        if (evidence.e2e_p50_ms.is_some() || !evidence.e2e_expected)
            && evidence.output_fps.is_some()
        {
            bump(&mut self.evidence_complete);
        }
        self.swaps = self.swaps.saturating_add(evidence.swaps);
        if !evidence.broke {
            bump(&mut self.no_swap);
        }
        self.stalls = self.stalls.saturating_add(u64::from(evidence.stalls));
        self.stall_ms.add(evidence.stall_ms);
        self.session_ms.add(evidence.length_ms.max(0) as f64);
    }

    /// Adds another set of sums to this one, field by field.
    pub fn merge(&mut self, other: &CellSums) {
        self.sessions = self.sessions.saturating_add(other.sessions);
        self.passed = self.passed.saturating_add(other.passed);
        self.failed = self.failed.saturating_add(other.failed);
        self.unscored_busy = self.unscored_busy.saturating_add(other.unscored_busy);
        self.unscored_indeterminate = self
            .unscored_indeterminate
            .saturating_add(other.unscored_indeterminate);
        self.startup_attempts = self.startup_attempts.saturating_add(other.startup_attempts);
        self.startup_successes = self
            .startup_successes
            .saturating_add(other.startup_successes);
        self.no_swap = self.no_swap.saturating_add(other.no_swap);
        self.swaps = self.swaps.saturating_add(other.swaps);
        self.output_viable = self.output_viable.saturating_add(other.output_viable);
        self.evidence_complete = self
            .evidence_complete
            .saturating_add(other.evidence_complete);
        self.startup_ms.merge(&other.startup_ms);
        self.e2e_p50_ms.merge(&other.e2e_p50_ms);
        self.output_fps.merge(&other.output_fps);
        self.fps_jitter.merge(&other.fps_jitter);
        self.stalls = self.stalls.saturating_add(other.stalls);
        self.stall_ms.merge(&other.stall_ms);
        self.session_ms.merge(&other.session_ms);
        self.startup_ms_buckets.merge(&other.startup_ms_buckets);
        self.e2e_p50_ms_buckets.merge(&other.e2e_p50_ms_buckets);
        self.output_fps_buckets.merge(&other.output_fps_buckets);
        self.completed = self.completed.saturating_add(other.completed);
        self.completion_trials = self
            .completion_trials
            .saturating_add(other.completion_trials);
        self.slo_startup_trials = self
            .slo_startup_trials
            .saturating_add(other.slo_startup_trials);
        self.slo_startup_met = self.slo_startup_met.saturating_add(other.slo_startup_met);
        self.slo_e2e_trials = self.slo_e2e_trials.saturating_add(other.slo_e2e_trials);
        self.slo_e2e_met = self.slo_e2e_met.saturating_add(other.slo_e2e_met);
        self.slo_fps_trials = self.slo_fps_trials.saturating_add(other.slo_fps_trials);
        self.slo_fps_met = self.slo_fps_met.saturating_add(other.slo_fps_met);
    }
}

/// Counts one judgement against a declared limit: `None` when the session declared none.
fn judge(trials: &mut u64, met: &mut u64, within: Option<bool>) {
    if let Some(within) = within {
        bump(trials);
        if within {
            bump(met);
        }
    }
}

/// One attempt's evidence, as [`CellSums::add_evidence`] counts it. Only usable measurements
/// (finite, not negative) are set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Evidence {
    /// How the attempt ended.
    pub outcome: Outcome,
    /// The failure class of a failed attempt.
    pub failure_class: Option<FailureClass>,
    /// Whether its output started (a first output frame arrived).
    pub started: bool,
    /// The startup latency sample it carries, ms; only a session's start carries one.
    pub startup_ms: Option<f64>,
    /// Its e2e latency median, ms.
    pub e2e_p50_ms: Option<f64>,
    /// Whether e2e latency belongs to its complete evidence: the tester measures it on every
    /// stream, but gateway events (organic load) carry none, so an organic session is complete
    /// with its output FPS alone, as NaaP's coverage counts only the telemetry it expects.
    pub e2e_expected: bool,
    /// Its mean output FPS.
    pub output_fps: Option<f64>,
    /// Its FPS jitter (std/mean).
    pub fps_jitter: Option<f64>,
    /// Whether the runner only ever reported its loading state.
    pub only_loading: bool,
    /// Orchestrator swaps it ended in or contained.
    pub swaps: u64,
    /// Whether it broke in a way that counts against the no-swap rate.
    pub broke: bool,
    /// Output stalls in it.
    pub stalls: u32,
    /// Stalled time in it, ms.
    pub stall_ms: f64,
    /// Its wall-clock length, ms.
    pub length_ms: i64,
    /// The limits its session was held to, if its scenario declared any.
    pub slo: Option<SessionSlo>,
}

impl Evidence {
    /// The evidence of a whole session, attributed to the one orchestrator its key names.
    pub(crate) fn of_session(session: &SessionReport) -> Evidence {
        let metrics = &session.metrics;
        let startup_ms = measured(metrics.startup_ms);
        let swaps = metrics.swaps.len() as u64;
        Evidence {
            outcome: session.outcome,
            failure_class: session.failure.as_ref().map(|failure| failure.class),
            started: startup_ms.is_some(),
            startup_ms,
            e2e_p50_ms: measured(metrics.e2e_latency_ms.map(|latency| latency.p50)),
            e2e_expected: session.is_test_load,
            output_fps: measured(metrics.output_fps.map(|fps| fps.mean)),
            fps_jitter: measured(metrics.fps_jitter),
            only_loading: only_loading(&session.runner.states_seen),
            swaps,
            broke: swaps > 0 || gateway_would_swap(session),
            stalls: metrics.stalls.count,
            stall_ms: metrics.stalls.total_ms,
            length_ms: session
                .ended_at_unix_ms
                .saturating_sub(session.started_at_unix_ms),
            slo: session.slo,
        }
    }
}

/// Whether a failure class excuses the target: capacity (it said it was busy) and the tester's
/// own faults say nothing about how the orchestrator serves a stream it accepted.
pub(crate) fn is_excused(class: Option<FailureClass>) -> bool {
    matches!(class, Some(FailureClass::Capacity | FailureClass::Internal))
}

/// The key an orchestrator has in a cell: its Ethereum address in lowercase when it is the
/// orchestrator's, else its service URI.
///
/// A tester's record (test load) names an address as the orchestrator's own only when the
/// tester verified it against the ServiceRegistry (`address_check` = verified): any
/// orchestrator can claim any address in GetOrchestrator, and a claimed address would let it
/// take another's score and charge its failures to it. Organic records come from a gateway's
/// own events, whose orchestrator addresses are the gateway's to vouch for, as NaaP keys them.
pub(crate) fn orchestrator_key(
    orchestrator: &lvt_schema::OrchestratorRef,
    test_load: bool,
) -> String {
    let vouched =
        !test_load || lvt_schema::AddressCheck::is_verified(orchestrator.address_check.as_ref());
    match &orchestrator.address {
        // Addresses are hex and may arrive checksummed (mixed case); one orchestrator must land
        // in one cell whatever case its discovery source used.
        Some(address) if vouched && !address.is_empty() => address.to_ascii_lowercase(),
        _ => orchestrator.uri.clone(),
    }
}

/// Counts one more; saturating, because stored sums read back from a database are input too.
fn bump(count: &mut u64) {
    *count = count.saturating_add(1);
}

/// Whether the runner only ever reported its loading state: its output, however fast, was the
/// loading placeholder, which NaaP counts as an output failure. A session without status events
/// is judged by its frame rate alone.
pub(crate) fn only_loading(states_seen: &[String]) -> bool {
    !states_seen.is_empty()
        && states_seen
            .iter()
            .all(|state| state.eq_ignore_ascii_case("LOADING"))
}

/// Whether a directly tested session failed, after its output started, in a way on which
/// go-livepeer's gateway swaps orchestrators (publish 404, output or events timeout, runner
/// error, protocol error). In direct mode the tester cannot swap, so `metrics.swaps` stays
/// empty; counting such a session as swap-free would let an orchestrator that crashes every
/// stream keep a perfect no-swap rate.
fn gateway_would_swap(session: &SessionReport) -> bool {
    session.outcome == Outcome::Failed
        && session.mode == TargetMode::Direct
        && session.failure.as_ref().is_some_and(|f| {
            matches!(
                f.class,
                FailureClass::PublishLost
                    | FailureClass::OutputTimeout
                    | FailureClass::EventsTimeout
                    | FailureClass::RunnerError
                    | FailureClass::ProtocolError
            )
        })
}
