//! The NaaP "quality-benchmark-v1" SLA formula over a cell's sums and its cohort, plus the
//! figures lvt publishes beyond it (Wilson intervals, FPS jitter, stall rate, busy rate).
//!
//! ```text
//! reliability = 0.4*startup_success_rate + 0.2*no_swap_rate + 0.4*output_viability_rate
//! latency     = 0.6*ptff_score + 0.4*e2e_score
//! quality     = 0.6*latency + 0.4*fps_score
//! sla_score   = 100 * health_signal_coverage * (0.7*reliability + 0.3*quality)
//! ```
//!
//! docs/sla.md maps every input to the tester's evidence and works two examples through.

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

/// The SLA of one cell (or of merged cells): the NaaP components and lvt's extra figures.
///
/// Formula components are `None` only when the cell has no attempt (for example only busy
/// sessions); otherwise a component without data takes the neutral 0.5 the formula prescribes.
/// Measured figures (means, rates) are `None` whenever they have no data, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlaScore {
    /// `100 * health_signal_coverage * (0.7 * reliability + 0.3 * quality)`, 0 to 100.
    pub sla_score: Option<f64>,
    /// `0.4 * startup success + 0.2 * no swap + 0.4 * output viability`.
    pub reliability: Option<f64>,
    /// `0.6 * ptff_score + 0.4 * e2e_score`.
    pub latency: Option<f64>,
    /// `0.6 * latency + 0.4 * fps_score`.
    pub quality: Option<f64>,
    /// Startup (time to first frame) score against the cohort, damped.
    pub ptff_score: Option<f64>,
    /// E2E latency score against the cohort, damped.
    pub e2e_score: Option<f64>,
    /// FPS score against the cohort, damped.
    pub fps_score: Option<f64>,
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
    let startup_success = Rate::of(cell.startup_successes, cell.startup_attempts);
    let no_swap = Rate::of(cell.no_swap, cell.startup_successes);
    let output_viability = Rate::of(cell.output_viable, cell.startup_attempts);
    let pass = Rate::of(cell.passed, cell.passed.saturating_add(cell.failed));

    let startup_ms_mean = cell.startup_ms.mean();
    let e2e_p50_ms_mean = cell.e2e_p50_ms.mean();
    let output_fps_mean = cell.output_fps.mean();

    let session_minutes = cell.session_ms.sum() / 60_000.0;
    let stalls_per_minute = (session_minutes > 0.0).then(|| cell.stalls as f64 / session_minutes);
    let stall_time_fraction = (cell.session_ms.sum() > 0.0)
        .then(|| (cell.stall_ms.sum() / cell.session_ms.sum()).min(1.0));
    let busy_rate = (cell.sessions > 0).then(|| cell.unscored_busy as f64 / cell.sessions as f64);

    let mut result = SlaScore {
        sla_score: None,
        reliability: None,
        latency: None,
        quality: None,
        ptff_score: None,
        e2e_score: None,
        fps_score: None,
        health_signal_coverage: None,
        startup_success,
        no_swap,
        output_viability,
        pass,
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

    let rate_or_neutral = |rate: Option<Rate>| rate.map_or(NEUTRAL, |rate| rate.rate);
    let reliability = W_STARTUP_SUCCESS * rate_or_neutral(startup_success)
        + W_NO_SWAP * rate_or_neutral(no_swap)
        + W_OUTPUT_VIABILITY * rate_or_neutral(output_viability);

    let ptff_score = metric_score(
        startup_ms_mean,
        cell.startup_ms.count,
        benchmark(
            cohort.startup_rows,
            cohort.startup_p50_ms,
            cohort.startup_p90_ms,
        ),
        LATENCY_FULL_WEIGHT_SAMPLES,
        lower_is_better,
    );
    let e2e_score = metric_score(
        e2e_p50_ms_mean,
        cell.e2e_p50_ms.count,
        benchmark(cohort.e2e_rows, cohort.e2e_p50_ms, cohort.e2e_p90_ms),
        LATENCY_FULL_WEIGHT_SAMPLES,
        lower_is_better,
    );
    let fps_score = metric_score(
        output_fps_mean,
        cell.output_fps.count,
        benchmark(cohort.fps_rows, cohort.fps_p10, cohort.fps_p50),
        FPS_FULL_WEIGHT_SAMPLES,
        higher_is_better,
    );
    let latency = W_PTFF * ptff_score + W_E2E * e2e_score;
    let quality = W_LATENCY * latency + W_FPS * fps_score;
    let coverage = cell.evidence_complete as f64 / cell.startup_attempts as f64;
    let sla_score = 100.0 * coverage * (W_RELIABILITY * reliability + W_QUALITY * quality);

    result.sla_score = Some(sla_score);
    result.reliability = Some(reliability);
    result.latency = Some(latency);
    result.quality = Some(quality);
    result.ptff_score = Some(ptff_score);
    result.e2e_score = Some(e2e_score);
    result.fps_score = Some(fps_score);
    result.health_signal_coverage = Some(coverage);
    result
}

/// The two cohort percentiles a metric is scored between, when the cohort has enough rows for
/// them to be a benchmark.
fn benchmark(rows: u64, first: Option<f64>, second: Option<f64>) -> Option<(f64, f64)> {
    if rows < MIN_COHORT_ROWS {
        return None;
    }
    Some((first?, second?))
}

/// A metric's damped score: neutral without a value or a benchmark, else the raw score damped
/// toward neutral by the cell's sample count `n`.
fn metric_score(
    value: Option<f64>,
    n: u64,
    benchmark: Option<(f64, f64)>,
    full_weight_samples: f64,
    raw: fn(f64, f64, f64) -> f64,
) -> f64 {
    match (value, benchmark) {
        (Some(value), Some((first, second))) => {
            damp(raw(value, first, second), n, full_weight_samples)
        }
        _ => NEUTRAL,
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
