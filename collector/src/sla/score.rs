//! The SLA formulas over a cell's sums and its cohort, plus the figures lvt publishes beyond them
//! (Wilson intervals, completion, SLO shares, FPS jitter, stall rate, busy rate).
//!
//! `naap-v1` is NaaP's "quality-benchmark-v1", kept exactly for comparability:
//!
//! ```text
//! reliability = 0.4*startup_success_rate + 0.2*no_swap_rate + 0.4*output_viability_rate
//! latency     = 0.6*ptff_score + 0.4*e2e_score
//! quality     = 0.6*latency + 0.4*fps_score
//! sla_score   = 100 * health_signal_coverage * (0.7*reliability + 0.3*quality)
//! ```
//!
//! `lvt-v1` is lvt's own: it counts sessions that die before their planned end, stalls, and
//! while the cohort is too thin to be a benchmark it scores latency and FPS against the
//! scenario's declared SLO instead of a neutral 0.5:
//!
//! ```text
//! reliability = 0.3*startup_success + 0.3*completion + 0.1*no_swap + 0.3*output_viability
//! latency     = 0.6*ptff_score + 0.4*e2e_score      (cohort, else SLO share, else 0.5)
//! stall_score = 0.5*(1 - min(1, stall_time_fraction/0.05)) + 0.5*(1 - min(1, stalls_per_minute/2))
//! quality     = 0.45*latency + 0.3*fps_score + 0.25*stall_score
//! sla_score   = 100 * health_signal_coverage * (0.6*reliability + 0.4*quality)
//! ```
//!
//! docs/sla.md maps every input to the tester's evidence and works examples through.

use serde::{Deserialize, Serialize};

use super::cell::CellSums;
use super::wilson::{Z_95, wilson_interval};

/// Weight of the startup success rate in reliability.
pub const W_STARTUP_SUCCESS: f64 = 0.4;
/// Weight of the no-swap rate in reliability.
pub const W_NO_SWAP: f64 = 0.2;
/// Weight of the output viability rate in reliability.
pub const W_OUTPUT_VIABILITY: f64 = 0.4;
/// Weight of the startup (ptff) score in latency.
pub const W_PTFF: f64 = 0.6;
/// Weight of the e2e score in latency.
pub const W_E2E: f64 = 0.4;
/// Weight of latency in quality.
pub const W_LATENCY: f64 = 0.6;
/// Weight of the FPS score in quality.
pub const W_FPS: f64 = 0.4;
/// Weight of reliability in the SLA score.
pub const W_RELIABILITY: f64 = 0.7;
/// Weight of quality in the SLA score.
pub const W_QUALITY: f64 = 0.3;
/// The neutral value of any component without data (and the damping target).
pub const NEUTRAL: f64 = 0.5;
/// A cohort metric with fewer benchmark rows than this is no benchmark: its score is neutral.
pub const MIN_COHORT_ROWS: u64 = 48;
/// Samples at which a latency score (ptff, e2e) is no longer damped toward neutral.
pub const LATENCY_FULL_WEIGHT_SAMPLES: f64 = 10.0;
/// Samples at which the FPS score is no longer damped toward neutral.
pub const FPS_FULL_WEIGHT_SAMPLES: f64 = 30.0;

/// lvt-v1: weight of the startup success rate in reliability.
pub const LVT_W_STARTUP_SUCCESS: f64 = 0.3;
/// lvt-v1: weight of the completion rate (started attempts that ran to their planned end).
pub const LVT_W_COMPLETION: f64 = 0.3;
/// lvt-v1: weight of the no-swap rate in reliability.
pub const LVT_W_NO_SWAP: f64 = 0.1;
/// lvt-v1: weight of the output viability rate in reliability.
pub const LVT_W_OUTPUT_VIABILITY: f64 = 0.3;
/// lvt-v1: weight of latency in quality.
pub const LVT_W_LATENCY: f64 = 0.45;
/// lvt-v1: weight of the FPS score in quality.
pub const LVT_W_FPS: f64 = 0.3;
/// lvt-v1: weight of the stall score in quality.
pub const LVT_W_STALL: f64 = 0.25;
/// lvt-v1: weight of reliability in the SLA score.
pub const LVT_W_RELIABILITY: f64 = 0.6;
/// lvt-v1: weight of quality in the SLA score.
pub const LVT_W_QUALITY: f64 = 0.4;
/// lvt-v1: the share of started time spent stalled at which the stall-time half scores 0.
pub const STALL_TIME_FRACTION_ZERO: f64 = 0.05;
/// lvt-v1: the stalls per minute at which the stall-rate half scores 0.
pub const STALLS_PER_MINUTE_ZERO: f64 = 2.0;

/// The formula an SLA score follows (`?formula=` on the SLA endpoints).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Formula {
    /// NaaP's "quality-benchmark-v1", exactly: the default, for comparability.
    #[default]
    #[serde(rename = "naap-v1")]
    NaapV1,
    /// lvt's own: completion, stalls and the declared SLO count (docs/sla.md).
    #[serde(rename = "lvt-v1")]
    LvtV1,
}

impl Formula {
    /// Every formula.
    pub const ALL: [Formula; 2] = [Formula::NaapV1, Formula::LvtV1];

    /// The name used in `?formula=` and in answers.
    pub fn name(self) -> &'static str {
        match self {
            Formula::NaapV1 => "naap-v1",
            Formula::LvtV1 => "lvt-v1",
        }
    }

    /// The formula named `name`, if any.
    pub fn from_name(name: &str) -> Option<Formula> {
        Formula::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What a latency or FPS component was scored against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The cohort's percentiles (both formulas, once the cohort has enough rows).
    Cohort,
    /// The share of sessions within the scenario's declared SLO (lvt-v1, thin cohort).
    Slo,
    /// Nothing to score against: the neutral 0.5.
    Neutral,
}

/// The benchmark a cell is scored against: the same pipeline and model over the seven days before
/// the scored hour (all orchestrators, GPUs, regions and complexities), read from merged sums.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    /// Attempts (scored, attributable sessions) in the cohort.
    pub rows: u64,
    /// Sessions with a startup latency: the benchmark rows of the startup percentiles.
    pub startup_rows: u64,
    /// Sessions with an e2e latency median: the benchmark rows of the e2e percentiles.
    pub e2e_rows: u64,
    /// Sessions with a mean output FPS: the benchmark rows of the FPS percentiles.
    pub fps_rows: u64,
    /// Median startup latency, ms.
    pub startup_p50_ms: Option<f64>,
    /// 90th percentile startup latency, ms.
    pub startup_p90_ms: Option<f64>,
    /// Median of the per-session e2e latency medians, ms.
    pub e2e_p50_ms: Option<f64>,
    /// 90th percentile of the per-session e2e latency medians, ms.
    pub e2e_p90_ms: Option<f64>,
    /// 10th percentile of the per-session mean output FPS.
    pub fps_p10: Option<f64>,
    /// Median of the per-session mean output FPS.
    pub fps_p50: Option<f64>,
}

impl Cohort {
    /// The cohort of the merged sums of its cells (nearest-rank percentiles of the bucket counts).
    pub fn from_sums(sums: &CellSums) -> Cohort {
        Cohort {
            rows: sums.startup_attempts,
            startup_rows: sums.startup_ms_buckets.total(),
            e2e_rows: sums.e2e_p50_ms_buckets.total(),
            fps_rows: sums.output_fps_buckets.total(),
            startup_p50_ms: sums.startup_ms_buckets.quantile_ms(0.5),
            startup_p90_ms: sums.startup_ms_buckets.quantile_ms(0.9),
            e2e_p50_ms: sums.e2e_p50_ms_buckets.quantile_ms(0.5),
            e2e_p90_ms: sums.e2e_p50_ms_buckets.quantile_ms(0.9),
            fps_p10: sums.output_fps_buckets.quantile_fps(0.1),
            fps_p50: sums.output_fps_buckets.quantile_fps(0.5),
        }
    }
}

/// A success rate with its Wilson 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Trials that succeeded.
    pub successes: u64,
    /// Trials.
    pub trials: u64,
    /// `successes / trials`.
    pub rate: f64,
    /// Lower bound of the Wilson 95 % interval.
    pub ci95_low: f64,
    /// Upper bound of the Wilson 95 % interval.
    pub ci95_high: f64,
}

impl Rate {
    /// The rate of `successes` in `trials`; `None` without trials (no data is not a 0 % rate).
    pub fn of(successes: u64, trials: u64) -> Option<Rate> {
        let (ci95_low, ci95_high) = wilson_interval(successes, trials, Z_95)?;
        Some(Rate {
            successes,
            trials,
            rate: successes as f64 / trials as f64,
            ci95_low,
            ci95_high,
        })
    }
}

/// The SLA of one cell (or of merged cells): the components of one formula and lvt's extra
/// figures.
///
/// Formula components are `None` only when the cell has no attempt (for example only busy
/// sessions); otherwise a component without data takes the neutral 0.5 the formula prescribes.
/// Measured figures (means, rates) are `None` whenever they have no data, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlaScore {
    /// The formula `sla_score` and its components follow.
    pub formula: Formula,
    /// `100 * health_signal_coverage * (0.7 * reliability + 0.3 * quality)` (naap-v1; lvt-v1
    /// weighs 0.6 and 0.4), 0 to 100.
    pub sla_score: Option<f64>,
    /// naap-v1: `0.4 * startup success + 0.2 * no swap + 0.4 * output viability`; lvt-v1:
    /// `0.3 * startup success + 0.3 * completion + 0.1 * no swap + 0.3 * output viability`.
    pub reliability: Option<f64>,
    /// `0.6 * ptff_score + 0.4 * e2e_score`.
    pub latency: Option<f64>,
    /// naap-v1: `0.6 * latency + 0.4 * fps_score`; lvt-v1: `0.45 * latency + 0.3 * fps_score +
    /// 0.25 * stall_score`.
    pub quality: Option<f64>,
    /// Startup (time to first frame) score, damped: against the cohort, or (lvt-v1, thin
    /// cohort) the share of sessions within the declared startup SLO.
    pub ptff_score: Option<f64>,
    /// What `ptff_score` was scored against.
    pub ptff_basis: Option<Basis>,
    /// E2E latency score, damped, against the cohort or (lvt-v1) the declared SLO.
    pub e2e_score: Option<f64>,
    /// What `e2e_score` was scored against.
    pub e2e_basis: Option<Basis>,
    /// FPS score, damped, against the cohort or (lvt-v1) the declared SLO.
    pub fps_score: Option<f64>,
    /// What `fps_score` was scored against.
    pub fps_basis: Option<Basis>,
    /// lvt-v1 only: `0.5 * (1 - min(1, stall_time_fraction / 0.05)) + 0.5 * (1 - min(1,
    /// stalls_per_minute / 2))`, 0.5 without started time.
    pub stall_score: Option<f64>,
    /// Share of attempts with complete health evidence.
    pub health_signal_coverage: Option<f64>,
    /// Started attempts over attempts.
    pub startup_success: Option<Rate>,
    /// Started attempts without an orchestrator swap over started attempts.
    pub no_swap: Option<Rate>,
    /// Attempts with viable output over attempts.
    pub output_viability: Option<Rate>,
    /// Passed sessions over passed and failed sessions, as the tester scored them.
    pub pass: Option<Rate>,
    /// Started attempts that ran to their planned end over started attempts (cells stored
    /// before completion was counted add nothing to either side).
    pub completion: Option<Rate>,
    /// Started attempts within their declared startup SLO over those that declared one.
    pub slo_startup: Option<Rate>,
    /// Attempts within their declared e2e SLO over those that declared one and measured e2e.
    pub slo_e2e: Option<Rate>,
    /// Attempts at or above their declared FPS SLO over those that declared one and measured FPS.
    pub slo_fps: Option<Rate>,
    /// Mean startup latency of started attempts, ms: the cell's input to `ptff_score`.
    pub startup_ms_mean: Option<f64>,
    /// Mean of the per-session e2e latency medians, ms: the cell's input to `e2e_score`.
    pub e2e_p50_ms_mean: Option<f64>,
    /// Mean of the per-session mean output FPS: the cell's input to `fps_score`.
    pub output_fps_mean: Option<f64>,
    /// Mean of the per-session FPS jitter (std/mean of the per-window FPS; target <= 0.1).
    pub fps_jitter: Option<f64>,
    /// Output stalls per minute of started sessions.
    pub stalls_per_minute: Option<f64>,
    /// Share of started sessions' time spent stalled.
    pub stall_time_fraction: Option<f64>,
    /// Busy sessions over all sessions: a capacity signal, never counted as failure.
    pub busy_rate: Option<f64>,
    /// All sessions of the cell, whatever their outcome.
    pub sessions: u64,
    /// Attempts: the sessions the formula scores.
    pub attempts: u64,
}

/// Scores a cell's sums against its cohort with the NaaP "quality-benchmark-v1" formula.
pub fn score(cell: &CellSums, cohort: &Cohort) -> SlaScore {
    score_with(Formula::NaapV1, cell, cohort)
}

/// Scores a cell's sums against its cohort with `formula`.
pub fn score_with(formula: Formula, cell: &CellSums, cohort: &Cohort) -> SlaScore {
    let startup_success = Rate::of(cell.startup_successes, cell.startup_attempts);
    let no_swap = Rate::of(cell.no_swap, cell.startup_successes);
    let output_viability = Rate::of(cell.output_viable, cell.startup_attempts);
    let pass = Rate::of(cell.passed, cell.passed.saturating_add(cell.failed));
    let completion = Rate::of(cell.completed, cell.completion_trials);
    let slo_startup = Rate::of(cell.slo_startup_met, cell.slo_startup_trials);
    let slo_e2e = Rate::of(cell.slo_e2e_met, cell.slo_e2e_trials);
    let slo_fps = Rate::of(cell.slo_fps_met, cell.slo_fps_trials);

    let startup_ms_mean = cell.startup_ms.mean();
    let e2e_p50_ms_mean = cell.e2e_p50_ms.mean();
    let output_fps_mean = cell.output_fps.mean();

    let session_minutes = cell.session_ms.sum() / 60_000.0;
    let stalls_per_minute = (session_minutes > 0.0).then(|| cell.stalls as f64 / session_minutes);
    let stall_time_fraction = (cell.session_ms.sum() > 0.0)
        .then(|| (cell.stall_ms.sum() / cell.session_ms.sum()).min(1.0));
    let busy_rate = (cell.sessions > 0).then(|| cell.unscored_busy as f64 / cell.sessions as f64);

    let mut result = SlaScore {
        formula,
        sla_score: None,
        reliability: None,
        latency: None,
        quality: None,
        ptff_score: None,
        ptff_basis: None,
        e2e_score: None,
        e2e_basis: None,
        fps_score: None,
        fps_basis: None,
        stall_score: None,
        health_signal_coverage: None,
        startup_success,
        no_swap,
        output_viability,
        pass,
        completion,
        slo_startup,
        slo_e2e,
        slo_fps,
        startup_ms_mean,
        e2e_p50_ms_mean,
        output_fps_mean,
        fps_jitter: cell.fps_jitter.mean(),
        stalls_per_minute,
        stall_time_fraction,
        busy_rate,
        sessions: cell.sessions,
        attempts: cell.startup_attempts,
    };
    if cell.startup_attempts == 0 {
        // Nothing the target is accountable for happened in this cell: no score, not a 0.
        return result;
    }

    // lvt-v1 falls back on the declared SLO where naap-v1 falls back on neutral.
    let slo = |rate: Option<Rate>| (formula == Formula::LvtV1).then_some(rate).flatten();
    let (ptff_score, ptff_basis) = metric_score(
        startup_ms_mean,
        cell.startup_ms.count,
        benchmark(
            cohort.startup_rows,
            cohort.startup_p50_ms,
            cohort.startup_p90_ms,
        ),
        slo(slo_startup),
        LATENCY_FULL_WEIGHT_SAMPLES,
        lower_is_better,
    );
    let (e2e_score, e2e_basis) = metric_score(
        e2e_p50_ms_mean,
        cell.e2e_p50_ms.count,
        benchmark(cohort.e2e_rows, cohort.e2e_p50_ms, cohort.e2e_p90_ms),
        slo(slo_e2e),
        LATENCY_FULL_WEIGHT_SAMPLES,
        lower_is_better,
    );
    let (fps_score, fps_basis) = metric_score(
        output_fps_mean,
        cell.output_fps.count,
        benchmark(cohort.fps_rows, cohort.fps_p10, cohort.fps_p50),
        slo(slo_fps),
        FPS_FULL_WEIGHT_SAMPLES,
        higher_is_better,
    );
    let rate_or_neutral = |rate: Option<Rate>| rate.map_or(NEUTRAL, |rate| rate.rate);
    let latency = W_PTFF * ptff_score + W_E2E * e2e_score;
    let coverage = cell.evidence_complete as f64 / cell.startup_attempts as f64;
    let (reliability, quality, sla_score) = match formula {
        Formula::NaapV1 => {
            let reliability = W_STARTUP_SUCCESS * rate_or_neutral(startup_success)
                + W_NO_SWAP * rate_or_neutral(no_swap)
                + W_OUTPUT_VIABILITY * rate_or_neutral(output_viability);
            let quality = W_LATENCY * latency + W_FPS * fps_score;
            let sla_score = 100.0 * coverage * (W_RELIABILITY * reliability + W_QUALITY * quality);
            (reliability, quality, sla_score)
        }
        Formula::LvtV1 => {
            let reliability = LVT_W_STARTUP_SUCCESS * rate_or_neutral(startup_success)
                + LVT_W_COMPLETION * rate_or_neutral(completion)
                + LVT_W_NO_SWAP * rate_or_neutral(no_swap)
                + LVT_W_OUTPUT_VIABILITY * rate_or_neutral(output_viability);
            let stall_score = stall_score(stall_time_fraction, stalls_per_minute);
            result.stall_score = Some(stall_score);
            let quality =
                LVT_W_LATENCY * latency + LVT_W_FPS * fps_score + LVT_W_STALL * stall_score;
            let sla_score =
                100.0 * coverage * (LVT_W_RELIABILITY * reliability + LVT_W_QUALITY * quality);
            (reliability, quality, sla_score)
        }
    };

    result.sla_score = Some(sla_score);
    result.reliability = Some(reliability);
    result.latency = Some(latency);
    result.quality = Some(quality);
    result.ptff_score = Some(ptff_score);
    result.ptff_basis = Some(ptff_basis);
    result.e2e_score = Some(e2e_score);
    result.e2e_basis = Some(e2e_basis);
    result.fps_score = Some(fps_score);
    result.fps_basis = Some(fps_basis);
    result.health_signal_coverage = Some(coverage);
    result
}

/// lvt-v1's stall score: half for the share of started time spent stalled (0 at 5 %), half for
/// how often output stalled (0 at 2 stalls a minute); neutral without started time.
pub fn stall_score(stall_time_fraction: Option<f64>, stalls_per_minute: Option<f64>) -> f64 {
    match (stall_time_fraction, stalls_per_minute) {
        (Some(fraction), Some(per_minute)) => {
            0.5 * (1.0 - (fraction / STALL_TIME_FRACTION_ZERO).min(1.0))
                + 0.5 * (1.0 - (per_minute / STALLS_PER_MINUTE_ZERO).min(1.0))
        }
        _ => NEUTRAL,
    }
}

/// The two cohort percentiles a metric is scored between, when the cohort has enough rows for
/// them to be a benchmark.
fn benchmark(rows: u64, first: Option<f64>, second: Option<f64>) -> Option<(f64, f64)> {
    if rows < MIN_COHORT_ROWS {
        return None;
    }
    Some((first?, second?))
}

/// A metric's damped score and its basis: with a value and a cohort benchmark, the raw score
/// against the benchmark damped toward neutral by the cell's sample count `n`; else, when the
/// formula falls back on the declared SLO and sessions were judged against it, the share within
/// it damped by the judged count; else neutral.
fn metric_score(
    value: Option<f64>,
    n: u64,
    benchmark: Option<(f64, f64)>,
    slo: Option<Rate>,
    full_weight_samples: f64,
    raw: fn(f64, f64, f64) -> f64,
) -> (f64, Basis) {
    match (value, benchmark, slo) {
        (Some(value), Some((first, second)), _) => (
            damp(raw(value, first, second), n, full_weight_samples),
            Basis::Cohort,
        ),
        (_, None, Some(slo)) => (damp(slo.rate, slo.trials, full_weight_samples), Basis::Slo),
        _ => (NEUTRAL, Basis::Neutral),
    }
}

/// `0.5 + min(n / full_weight_samples, 1) * (raw - 0.5)`.
pub fn damp(raw: f64, n: u64, full_weight_samples: f64) -> f64 {
    let weight = (n as f64 / full_weight_samples).min(1.0);
    NEUTRAL + weight * (raw - NEUTRAL)
}

/// 1 at or below `p50`, 0 at or above `p90`, linear between (the ptff and e2e scores).
pub fn lower_is_better(value: f64, p50: f64, p90: f64) -> f64 {
    if value <= p50 {
        1.0
    } else if value >= p90 {
        0.0
    } else {
        (p90 - value) / (p90 - p50)
    }
}

/// 1 at or above `p50`, 0 at or below `p10`, linear between (the FPS score).
pub fn higher_is_better(value: f64, p10: f64, p50: f64) -> f64 {
    if value >= p50 {
        1.0
    } else if value <= p10 {
        0.0
    } else {
        (value - p10) / (p50 - p10)
    }
}
