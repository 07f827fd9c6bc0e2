//! Threshold expressions: the catalog of metrics, statistics and rates a scenario may name, the
//! parsed form of `METRIC.STAT OP NUMBER` / `RATE OP NUMBER`, and how each metric is read from
//! one session record. Evaluation over a run lives in `crate::run::verdict`.

use std::fmt;

use lvt_schema::Outcome;

use crate::run::record::SessionRecord;

/// A per-session metric a threshold aggregates across sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Startup latency in ms: first input frame sent to first output frame, plus the time the
    /// session waited past its scheduled start (open executor), so queueing cannot hide.
    StartupMs,
    /// The session's median end-to-end frame latency, ms.
    E2eLatencyMs,
    /// The session's 95th percentile end-to-end frame latency, ms.
    E2eLatencyP95Ms,
    /// The session's mean output FPS.
    OutputFps,
    /// The session's 5th percentile of per-second output FPS.
    OutputFpsP5,
    /// Standard deviation over mean of the session's per-second output FPS.
    FpsJitter,
    /// Standard deviation of output frame intervals, ms.
    FrameIntervalJitterMs,
    /// Number of output stalls in the session.
    Stalls,
    /// Total stalled time in the session, ms.
    StallMs,
    /// GetOrchestrator round trip, ms.
    GetOrchestratorMs,
    /// Job start (`POST /live-video-to-video`) round trip, ms.
    JobStartMs,
    /// Params update sent to confirmed by the runner, ms.
    ParamsUpdateLatencyMs,
    /// Orchestrator swaps in the session.
    Swaps,
    /// Output media errors (continuity, sync, PES, truncation) in the session.
    MediaErrors,
    /// How late the session started against its schedule, ms.
    QueueDelayMs,
}

impl Metric {
    /// Every metric, in the order docs/scenarios.md lists them.
    pub const ALL: [Metric; 15] = [
        Metric::StartupMs,
        Metric::E2eLatencyMs,
        Metric::E2eLatencyP95Ms,
        Metric::OutputFps,
        Metric::OutputFpsP5,
        Metric::FpsJitter,
        Metric::FrameIntervalJitterMs,
        Metric::Stalls,
        Metric::StallMs,
        Metric::GetOrchestratorMs,
        Metric::JobStartMs,
        Metric::ParamsUpdateLatencyMs,
        Metric::Swaps,
        Metric::MediaErrors,
        Metric::QueueDelayMs,
    ];

    /// The name used in threshold expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::StartupMs => "startup_ms",
            Metric::E2eLatencyMs => "e2e_latency_ms",
            Metric::E2eLatencyP95Ms => "e2e_latency_p95_ms",
            Metric::OutputFps => "output_fps",
            Metric::OutputFpsP5 => "output_fps_p5",
            Metric::FpsJitter => "fps_jitter",
            Metric::FrameIntervalJitterMs => "frame_interval_jitter_ms",
            Metric::Stalls => "stalls",
            Metric::StallMs => "stall_ms",
            Metric::GetOrchestratorMs => "get_orchestrator_ms",
            Metric::JobStartMs => "job_start_ms",
            Metric::ParamsUpdateLatencyMs => "params_update_latency_ms",
            Metric::Swaps => "swaps",
            Metric::MediaErrors => "media_errors",
            Metric::QueueDelayMs => "queue_delay_ms",
        }
    }

    /// The metric named `name`, if any.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The metric's value for one session; `None` when the session has no such measurement
    /// (no output, call not made): such sessions are left out of the statistic, never
    /// counted as 0. Counters (stalls, swaps, media errors) only count for sessions that got
    /// past job start, since a session refused at the door had no chance to stall.
    pub fn session_value(self, s: &SessionRecord) -> Option<f64> {
        let m = &s.report.metrics;
        let started = m.job_start_ms.is_some();
        match self {
            Metric::StartupMs => s.startup_from_schedule_ms,
            Metric::E2eLatencyMs => m.e2e_latency_ms.map(|l| l.p50),
            Metric::E2eLatencyP95Ms => m.e2e_latency_ms.map(|l| l.p95),
            Metric::OutputFps => m.output_fps.map(|f| f.mean),
            Metric::OutputFpsP5 => m.output_fps.map(|f| f.p5),
            Metric::FpsJitter => m.fps_jitter,
            Metric::FrameIntervalJitterMs => m.frame_interval_jitter_ms,
            Metric::Stalls => started.then_some(m.stalls.count as f64),
            Metric::StallMs => started.then_some(m.stalls.total_ms),
            Metric::GetOrchestratorMs => m.get_orchestrator_ms,
            Metric::JobStartMs => m.job_start_ms,
            Metric::ParamsUpdateLatencyMs => m.params_update_latency_ms,
            Metric::Swaps => started.then_some(m.swaps.len() as f64),
            Metric::MediaErrors => started.then_some(
                (m.media_errors.cc_errors
                    + m.media_errors.sync_losses
                    + m.media_errors.pes_errors
                    + m.media_errors.truncated_frames) as f64,
            ),
            Metric::QueueDelayMs => Some(s.queue_delay_ms),
        }
    }
}

/// A statistic over the sessions' values of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    Min,
    Max,
    Mean,
    P5,
    P10,
    P50,
    P90,
    P95,
    P99,
    /// Number of sessions that have a value.
    Count,
}

impl Stat {
    /// Every statistic.
    pub const ALL: [Stat; 10] = [
        Stat::Min,
        Stat::Max,
        Stat::Mean,
        Stat::P5,
        Stat::P10,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::Count,
    ];

    /// The name used in threshold expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Mean => "mean",
            Stat::P5 => "p5",
            Stat::P10 => "p10",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Count => "count",
        }
    }

    /// The statistic named `name`, if any.
    pub fn from_name(name: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The percentile this statistic stands for, if it is one.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Stat::P5 => Some(0.05),
            Stat::P10 => Some(0.10),
            Stat::P50 => Some(0.50),
            Stat::P90 => Some(0.90),
            Stat::P95 => Some(0.95),
            Stat::P99 => Some(0.99),
            _ => None,
        }
    }
}

/// A run-level proportion of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rate {
    /// failed / (passed + failed): busy and indeterminate sessions are not scored.
    FailureRate,
    /// passed / (passed + failed).
    SuccessRate,
    /// unscored_busy / all sessions: how often targets refused for capacity.
    BusyRate,
    /// (unscored_busy + unscored_indeterminate) / all sessions.
    UnscoredRate,
}

impl Rate {
    /// Every rate.
    pub const ALL: [Rate; 4] = [
        Rate::FailureRate,
        Rate::SuccessRate,
        Rate::BusyRate,
        Rate::UnscoredRate,
    ];

    /// The name used in threshold expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            Rate::FailureRate => "failure_rate",
            Rate::SuccessRate => "success_rate",
            Rate::BusyRate => "busy_rate",
            Rate::UnscoredRate => "unscored_rate",
        }
    }

    /// The rate named `name`, if any.
    pub fn from_name(name: &str) -> Option<Rate> {
        Rate::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// (numerator, denominator) over `outcomes`; the denominator may be 0 (no data).
    pub fn counts<'a>(self, outcomes: impl IntoIterator<Item = &'a Outcome>) -> (u64, u64) {
        let (mut passed, mut failed, mut busy, mut indeterminate) = (0u64, 0u64, 0u64, 0u64);
        for o in outcomes {
            match o {
                Outcome::Passed => passed += 1,
                Outcome::Failed => failed += 1,
                Outcome::UnscoredBusy => busy += 1,
                Outcome::UnscoredIndeterminate => indeterminate += 1,
            }
        }
        let all = passed + failed + busy + indeterminate;
        match self {
            Rate::FailureRate => (failed, passed + failed),
            Rate::SuccessRate => (passed, passed + failed),
            Rate::BusyRate => (busy, all),
            Rate::UnscoredRate => (busy + indeterminate, all),
        }
    }
}

/// What a threshold compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A statistic of a per-session metric across sessions.
    Metric { metric: Metric, stat: Stat },
    /// A proportion of sessions.
    Rate(Rate),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Metric { metric, stat } => write!(f, "{}.{}", metric.as_str(), stat.as_str()),
            Subject::Rate(r) => f.write_str(r.as_str()),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// Whether `observed OP limit` holds.
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
            Op::Eq => observed == limit,
            Op::Ne => observed != limit,
        }
    }
}

/// A parsed threshold expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdExpr {
    pub subject: Subject,
    pub op: Op,
    pub limit: f64,
}

impl fmt::Display for ThresholdExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.subject, self.op.as_str(), self.limit)
    }
}
