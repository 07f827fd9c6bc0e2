//! Aggregation of a run's sessions: the mergeable [`Distribution`] every cross-session
//! statistic is read from, the labels sessions are grouped and filtered by, the per-group
//! [`GroupSummary`] written to `run.json`, and the summary table `lvt run` prints.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use lvt_schema::{Complexity, Outcome};
use serde::{Deserialize, Serialize};

use crate::run::record::{SessionRecord, StartKind};
use crate::scenario::Label;
use crate::scenario::threshold::{Metric, Stat};

/// Values are kept in the histogram in thousandths of their unit (µs for a metric in ms), so
/// fractional FPS and jitter values keep three decimals before the histogram's own rounding.
const SCALE: f64 = 1000.0;

/// The largest value kept, in the metric's unit: 10^12 ms is over 30 years, so anything larger
/// is a bug upstream, and refusing it keeps the histogram's range (and memory) bounded.
const MAX_VALUE: f64 = 1e12;

/// Three significant digits: every quantile is within 0.1 % of an exact value.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Up to this many values are also kept as they are, so the quantiles of a run of ordinary
/// size are exact (a threshold right at its limit is judged on the real value, and a table
/// shows 1100 for a session that took 1100 ms); beyond it only the histogram is kept, which
/// bounds memory for runs of any length.
pub const EXACT_VALUES_MAX: usize = 4096;

/// The distribution of one metric across sessions.
///
/// Values go into an HDR histogram, so memory stays bounded however many sessions a run has
/// and two distributions merge without losing anything; count, min, max and sum are kept
/// exactly beside it so the mean is exact and quantiles can be clamped to the real range.
/// While there are at most [`EXACT_VALUES_MAX`] values they are kept too and quantiles are
/// exact.
#[derive(Debug, Clone)]
pub struct Distribution {
    histogram: Histogram<u64>,
    /// Every value recorded, while there are at most `EXACT_VALUES_MAX`; `None` after.
    exact: Option<Vec<f64>>,
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    rejected: u64,
}

impl Default for Distribution {
    fn default() -> Self {
        Self::new()
    }
}

impl Distribution {
    /// An empty distribution.
    pub fn new() -> Self {
        Self {
            // Creation only fails for more than five significant digits; SIGNIFICANT_DIGITS
            // is a constant 3, and `new` makes the histogram grow to any value recorded.
            histogram: Histogram::new(SIGNIFICANT_DIGITS)
                .expect("3 significant digits is a valid histogram precision"),
            exact: Some(Vec::new()),
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            rejected: 0,
        }
    }

    /// A distribution of `values`.
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Self {
        let mut d = Self::new();
        for v in values {
            d.record(v);
        }
        d
    }

    /// Adds one value. Negative, non-finite and absurdly large values cannot be a latency,
    /// rate or count; they are left out and counted in [`Distribution::rejected`] so a bug
    /// upstream stays visible.
    pub fn record(&mut self, value: f64) {
        if !value.is_finite() || !(0.0..=MAX_VALUE).contains(&value) {
            self.rejected += 1;
            return;
        }
        // A value the histogram refuses is rejected too, so the exact fields never disagree
        // with the histogram.
        let scaled = (value * SCALE).round() as u64;
        if self.histogram.record(scaled).is_err() {
            self.rejected += 1;
            return;
        }
        self.count += 1;
        if let Some(values) = &mut self.exact {
            if values.len() < EXACT_VALUES_MAX {
                values.push(value);
            } else {
                self.exact = None;
            }
        }
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Distribution) {
        self.rejected += other.rejected;
        if other.count == 0 {
            return;
        }
        if self.histogram.add(&other.histogram).is_err() {
            // Both histograms auto-resize, so adding cannot run out of range; should it ever,
            // the other side's values are counted as rejected rather than half merged.
            self.rejected += other.count;
            return;
        }
        self.exact = match (self.exact.take(), &other.exact) {
            (Some(mut mine), Some(theirs)) if mine.len() + theirs.len() <= EXACT_VALUES_MAX => {
                mine.extend_from_slice(theirs);
                Some(mine)
            }
            _ => None,
        };
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of values left out because they were negative or not finite.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Sum of the values recorded; `None` when there are none.
    pub fn sum(&self) -> Option<f64> {
        (self.count > 0).then_some(self.sum)
    }

    /// The statistic `stat`; `None` when no value was recorded. Quantiles are nearest rank
    /// (the value at rank `ceil(q * count)`): exact while the values are kept, afterwards
    /// within the histogram's 0.1 % and clamped to the exact min and max.
    pub fn stat(&self, stat: Stat) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(match stat {
            Stat::Min => self.min,
            Stat::Max => self.max,
            Stat::Mean => self.sum / self.count as f64,
            Stat::Count => self.count as f64,
            Stat::P5 | Stat::P10 | Stat::P50 | Stat::P90 | Stat::P95 | Stat::P99 => {
                let q = stat.quantile().unwrap_or(0.5);
                if let Some(values) = &self.exact {
                    return Some(nearest_rank(values, q));
                }
                let raw = self.histogram.value_at_quantile(q) as f64 / SCALE;
                raw.clamp(self.min, self.max)
            }
        })
    }

    /// The summary written to `run.json`.
    pub fn stats(&self) -> Stats {
        Stats {
            count: self.count,
            min: self.stat(Stat::Min),
            max: self.stat(Stat::Max),
            mean: self.stat(Stat::Mean),
            p5: self.stat(Stat::P5),
            p50: self.stat(Stat::P50),
            p95: self.stat(Stat::P95),
            sum: self.sum(),
        }
    }
}

/// The value at rank `ceil(q * n)` (from 1) of `values`, which is not empty.
fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    // The small slack keeps binary rounding (0.1 * 30 = 3.0000000000000004) from moving the
    // rank up by one.
    let rank = ((q * n as f64 - 1e-9).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// A metric's statistics across the sessions of one group; `None` (JSON `null`) when no
/// session had a value, never 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Sessions that had a value.
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub p5: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    /// Sum over the sessions (used for counters such as stalls).
    pub sum: Option<f64>,
}

/// The name of a complexity as scenario files and results spell it.
pub fn complexity_name(c: Complexity) -> &'static str {
    match c {
        Complexity::Low => "low",
        Complexity::Medium => "medium",
        Complexity::High => "high",
    }
}

/// The label named `name` in a scenario file (`target`, `complexity`, `prompt`, `start`).
pub fn label_from_name(name: &str) -> Option<Label> {
    Label::ALL.into_iter().find(|l| l.as_str() == name)
}

/// Every label of a session, as thresholds' `where` filters and the summary's groups see them.
pub fn labels(s: &SessionRecord) -> BTreeMap<Label, String> {
    Label::ALL
        .into_iter()
        .map(|l| (l, label_value(s, l)))
        .collect()
}

fn label_value(s: &SessionRecord, label: Label) -> String {
    match label {
        Label::Target => s.target.clone(),
        Label::Complexity => complexity_name(s.complexity).to_string(),
        Label::Prompt => s.prompt_id.clone(),
        Label::Start => s.start.as_str().to_string(),
    }
}

/// Where a label value sorts among its group: complexities low to high and cold before warm,
/// rather than alphabetically, so tables read in a natural order.
fn label_rank(s: &SessionRecord, label: Label) -> u8 {
    match label {
        Label::Complexity => match s.complexity {
            Complexity::Low => 0,
            Complexity::Medium => 1,
            Complexity::High => 2,
        },
        Label::Start => match s.start {
            StartKind::Cold => 0,
            StartKind::Warm => 1,
        },
        Label::Target | Label::Prompt => 0,
    }
}

/// Outcomes and metric statistics of the sessions sharing one set of label values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// The group's label values, in the scenario's `group_by` order; empty for the whole run.
    pub key: Vec<(Label, String)>,
    pub sessions: u64,
    pub passed: u64,
    pub failed: u64,
    /// Sessions the target refused for capacity (`unscored_busy`): not failures.
    pub busy: u64,
    /// Sessions whose result cannot be attributed to the target (`unscored_indeterminate`).
    pub indeterminate: u64,
    /// Failed sessions per failure class (snake_case names as in the result schema).
    pub failure_classes: BTreeMap<String, u64>,
    /// Startup latency from the scheduled start, ms (the `startup_ms` threshold metric).
    pub startup_ms: Stats,
    /// Each session's median end-to-end latency, ms.
    pub e2e_latency_ms: Stats,
    /// Each session's 95th percentile end-to-end latency, ms.
    pub e2e_latency_p95_ms: Stats,
    /// Each session's mean output FPS.
    pub output_fps: Stats,
    /// Each session's FPS jitter (standard deviation over mean of per-second FPS).
    pub fps_jitter: Stats,
    /// Stalls per session (sessions past job start only).
    pub stalls: Stats,
    /// Orchestrator swaps per session (sessions past job start only).
    pub swaps: Stats,
    /// How late each session started against its schedule, ms.
    pub queue_delay_ms: Stats,
}

fn metric_stats<'a>(metric: Metric, sessions: impl Iterator<Item = &'a SessionRecord>) -> Stats {
    Distribution::from_values(sessions.filter_map(|s| metric.session_value(s))).stats()
}

fn summarize_group(key: Vec<(Label, String)>, sessions: &[&SessionRecord]) -> GroupSummary {
    let mut g = GroupSummary {
        key,
        sessions: sessions.len() as u64,
        passed: 0,
        failed: 0,
        busy: 0,
        indeterminate: 0,
        failure_classes: BTreeMap::new(),
        startup_ms: Stats::default(),
        e2e_latency_ms: Stats::default(),
        e2e_latency_p95_ms: Stats::default(),
        output_fps: Stats::default(),
        fps_jitter: Stats::default(),
        stalls: Stats::default(),
        swaps: Stats::default(),
        queue_delay_ms: Stats::default(),
    };
    for s in sessions {
        match s.report.outcome {
            Outcome::Passed => g.passed += 1,
            Outcome::Failed => {
                g.failed += 1;
                let class = s.report.failure.as_ref().map_or_else(
                    || "unclassified".to_string(),
                    |f| crate::report::class_name(f.class),
                );
                *g.failure_classes.entry(class).or_default() += 1;
            }
            Outcome::UnscoredBusy => g.busy += 1,
            Outcome::UnscoredIndeterminate => g.indeterminate += 1,
        }
    }
    let it = || sessions.iter().copied();
    g.startup_ms = metric_stats(Metric::StartupMs, it());
    g.e2e_latency_ms = metric_stats(Metric::E2eLatencyMs, it());
    g.e2e_latency_p95_ms = metric_stats(Metric::E2eLatencyP95Ms, it());
    g.output_fps = metric_stats(Metric::OutputFps, it());
    g.fps_jitter = metric_stats(Metric::FpsJitter, it());
    g.stalls = metric_stats(Metric::Stalls, it());
    g.swaps = metric_stats(Metric::Swaps, it());
    g.queue_delay_ms = metric_stats(Metric::QueueDelayMs, it());
    g
}

/// One summary per distinct combination of the `group_by` labels, in sorted key order
/// (complexity low to high, start cold before warm, targets and prompts alphabetically).
/// No sessions give no groups.
pub fn summarize(sessions: &[SessionRecord], group_by: &[Label]) -> Vec<GroupSummary> {
    type SortKey = Vec<(Label, u8, String)>;
    let mut groups: BTreeMap<SortKey, Vec<&SessionRecord>> = BTreeMap::new();
    for s in sessions {
        let key = group_by
            .iter()
            .map(|&l| (l, label_rank(s, l), label_value(s, l)))
            .collect();
        groups.entry(key).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(key, members)| {
            let key = key.into_iter().map(|(l, _, v)| (l, v)).collect();
            summarize_group(key, &members)
        })
        .collect()
}

/// The summary of the whole run (an empty key).
pub fn overall(sessions: &[SessionRecord]) -> GroupSummary {
    let all: Vec<&SessionRecord> = sessions.iter().collect();
    summarize_group(Vec::new(), &all)
}

/// Formats an optional value with `decimals` decimals; no data is `-`, never 0.
pub(crate) fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The header and rows of the summary table, shared by the terminal table and report.html.
///
/// Each column is a statistic across the group's sessions of one per-session value:
/// `startup p50/p95 ms` of the startup latency from the scheduled start; `e2e p50 ms` is the
/// median session's median frame latency and `e2e p95 ms` the median session's 95th
/// percentile; `fps p50`/`fps p5` are the median and 5th percentile session's mean output FPS
/// (the latter shows the bad sessions); `fps jitter p50` the median session's jitter;
/// `stalls` the total over the group and `swaps max` the most any session had.
pub fn summary_rows(groups: &[GroupSummary]) -> (Vec<String>, Vec<Vec<String>>) {
    let labels: Vec<Label> = groups
        .first()
        .map(|g| g.key.iter().map(|(l, _)| *l).collect())
        .unwrap_or_default();
    let mut header: Vec<String> = labels.iter().map(|l| l.as_str().to_string()).collect();
    header.extend(
        [
            "sessions",
            "pass/fail/busy/indet",
            "startup p50 ms",
            "startup p95 ms",
            "e2e p50 ms",
            "e2e p95 ms",
            "fps p50",
            "fps p5",
            "fps jitter p50",
            "stalls",
            "swaps max",
        ]
        .map(str::to_string),
    );
    let rows = groups
        .iter()
        .map(|g| {
            let mut row: Vec<String> = g.key.iter().map(|(_, v)| v.clone()).collect();
            row.extend([
                g.sessions.to_string(),
                format!("{}/{}/{}/{}", g.passed, g.failed, g.busy, g.indeterminate),
                fmt_opt(g.startup_ms.p50, 0),
                fmt_opt(g.startup_ms.p95, 0),
                fmt_opt(g.e2e_latency_ms.p50, 1),
                fmt_opt(g.e2e_latency_p95_ms.p50, 1),
                fmt_opt(g.output_fps.p50, 1),
                fmt_opt(g.output_fps.p5, 1),
                fmt_opt(g.fps_jitter.p50, 3),
                fmt_opt(g.stalls.sum, 0),
                fmt_opt(g.swaps.max, 0),
            ]);
            row
        })
        .collect();
    (header, rows)
}

/// The summary table `lvt run` prints at the end: one row per group.
pub fn summary_table(groups: &[GroupSummary]) -> String {
    let (header, rows) = summary_rows(groups);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    crate::report::table(&header, &rows)
}
