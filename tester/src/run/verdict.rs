//! Threshold verdicts: evaluating a scenario's SLO expressions over a run's sessions, and the
//! verdict table `lvt run` prints. A threshold that cannot be verified (no session has the
//! metric) is not met: `NoData` fails a run just as `Fail` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::run::record::SessionRecord;
use crate::run::summary::{Distribution, label_from_name, labels};
use crate::scenario::threshold::{Metric, Op, Stat, Subject, ThresholdExpr};
use crate::scenario::{Label, Scenario, Threshold};

/// How a threshold fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictStatus {
    Pass,
    Fail,
    /// No matching session had a value for the metric (or counted toward the rate).
    NoData,
}

impl VerdictStatus {
    /// The status as printed: `PASS`, `FAIL`, `NO DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictStatus::Pass => "PASS",
            VerdictStatus::Fail => "FAIL",
            VerdictStatus::NoData => "NO DATA",
        }
    }
}

/// One threshold's verdict over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The expression as written in the scenario.
    pub expr: String,
    /// The threshold's session filter, as written.
    pub r#where: BTreeMap<String, String>,
    pub status: VerdictStatus,
    /// The statistic or rate observed; `None` without data.
    pub observed: Option<f64>,
    /// Matching sessions that had a value (for a rate: its denominator).
    pub sessions: u64,
    /// A sentence for people: observed value, limit and how many sessions it rests on.
    pub message: String,
}

impl Verdict {
    /// True for `Fail` and `NoData`: an SLO that cannot be verified is not met.
    pub fn failed(&self) -> bool {
        !matches!(self.status, VerdictStatus::Pass)
    }

    /// The expression with its filter, as in `startup_ms.p95 < 8000 where complexity=high`.
    pub fn name(&self) -> String {
        if self.r#where.is_empty() {
            return self.expr.clone();
        }
        let filter: Vec<String> = self
            .r#where
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} where {}", self.expr, filter.join(", "))
    }
}

/// The unit a metric's values are printed with.
fn unit(metric: Metric, stat: Stat) -> &'static str {
    if stat == Stat::Count {
        return "";
    }
    match metric {
        Metric::OutputFps | Metric::OutputFpsP5 => " fps",
        m if m.as_str().ends_with("_ms") => " ms",
        _ => "",
    }
}

/// Prints an observed value with as many decimals as its size needs to be read against a limit.
pub(crate) fn fmt_observed(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The per-session limits `thresholds` declare for a session with `labels` (the record's `slo`,
/// which the collector's `lvt-v1` formula scores latency and FPS against while its cohort is
/// thin): `startup_ms.* <` or `<=` gives the startup limit, `e2e_latency_ms.* <` or `<=` the e2e
/// limit and `output_fps.* >` or `>=` the FPS limit, whatever the statistic, from the thresholds
/// whose `where` filter the labels match; the tightest wins when several do. `None` when no
/// threshold declares any of them.
pub fn declared_slo(
    thresholds: &[Threshold],
    labels: &BTreeMap<Label, String>,
) -> Option<lvt_schema::SessionSlo> {
    let mut slo = lvt_schema::SessionSlo::default();
    for t in thresholds {
        let Ok(expr) = ThresholdExpr::parse(&t.expr) else {
            continue;
        };
        let Subject::Metric { metric, .. } = expr.subject else {
            continue;
        };
        // A threshold naming an unknown label matches no session (validation refuses it).
        if !where_filter(t).is_ok_and(|filter| filter_matches(&filter, labels)) {
            continue;
        }
        let limit = expr.limit;
        let at_most = matches!(expr.op, Op::Lt | Op::Le);
        let at_least = matches!(expr.op, Op::Gt | Op::Ge);
        match metric {
            Metric::StartupMs if at_most => {
                slo.startup_ms = Some(slo.startup_ms.map_or(limit, |l| l.min(limit)));
            }
            Metric::E2eLatencyMs if at_most => {
                slo.e2e_latency_ms = Some(slo.e2e_latency_ms.map_or(limit, |l| l.min(limit)));
            }
            Metric::OutputFps if at_least => {
                slo.output_fps = Some(slo.output_fps.map_or(limit, |l| l.max(limit)));
            }
            _ => {}
        }
    }
    (!slo.is_empty()).then_some(slo)
}

/// A threshold's `where` filter as labels and wanted values; an unknown label is an error
/// that names it.
fn where_filter(t: &Threshold) -> Result<Vec<(Label, &str)>, String> {
    t.r#where
        .iter()
        .map(|(k, v)| {
            label_from_name(k).map(|l| (l, v.as_str())).ok_or_else(|| {
                format!(
                    "unknown label `{k}` in where (expected target, complexity, prompt or start)"
                )
            })
        })
        .collect()
}

/// Whether a session with `labels` matches every label of `filter`.
fn filter_matches(filter: &[(Label, &str)], labels: &BTreeMap<Label, String>) -> bool {
    filter
        .iter()
        .all(|(label, want)| labels.get(label).is_some_and(|have| have == want))
}

/// Evaluates one threshold, already parsed as `expr`, over `sessions` (the threshold's `where`
/// filter applied first).
pub fn evaluate(t: &Threshold, expr: &ThresholdExpr, sessions: &[SessionRecord]) -> Verdict {
    let mut verdict = Verdict {
        expr: t.expr.clone(),
        r#where: t.r#where.clone(),
        status: VerdictStatus::NoData,
        observed: None,
        sessions: 0,
        message: String::new(),
    };
    // Validation rejects unknown labels before a run; a threshold that still names one can
    // match nothing, which is a failure to verify, said plainly.
    let filter = match where_filter(t) {
        Ok(filter) => filter,
        Err(message) => {
            verdict.status = VerdictStatus::Fail;
            verdict.message = message;
            return verdict;
        }
    };
    let matched: Vec<&SessionRecord> = sessions
        .iter()
        .filter(|s| filter_matches(&filter, &labels(s)))
        .collect();
    let limit = format!("limit {} {}", expr.op.as_str(), expr.limit);
    match expr.subject {
        Subject::Metric { metric, stat } => {
            let dist =
                Distribution::from_values(matched.iter().filter_map(|s| metric.session_value(s)));
            verdict.sessions = dist.count();
            let Some(observed) = dist.stat(stat) else {
                verdict.message = format!(
                    "no session has a {} value (0 of {} matched sessions)",
                    metric.as_str(),
                    matched.len()
                );
                return verdict;
            };
            verdict.observed = Some(observed);
            verdict.status = status(expr, observed);
            verdict.message = format!(
                "{} = {}{}, {limit} ({} sessions)",
                expr.subject,
                fmt_observed(observed),
                unit(metric, stat),
                dist.count()
            );
        }
        Subject::Rate(rate) => {
            let (num, den) = rate.counts(matched.iter().map(|s| &s.report.outcome));
            verdict.sessions = den;
            if den == 0 {
                verdict.message = format!(
                    "no session counts toward {} (0 of {} matched sessions)",
                    rate.as_str(),
                    matched.len()
                );
                return verdict;
            }
            let observed = num as f64 / den as f64;
            verdict.observed = Some(observed);
            verdict.status = status(expr, observed);
            verdict.message = format!(
                "{} = {} ({num} of {den}), {limit} ({} sessions)",
                rate.as_str(),
                fmt_observed(observed),
                matched.len()
            );
        }
    }
    verdict
}

fn status(expr: &ThresholdExpr, observed: f64) -> VerdictStatus {
    if expr.op.holds(observed, expr.limit) {
        VerdictStatus::Pass
    } else {
        VerdictStatus::Fail
    }
}

/// Evaluates every threshold of `scenario`, in file order. An expression that does not parse
/// (validation rejects those before a run) fails with the parse error as its message.
pub fn evaluate_all(scenario: &Scenario, sessions: &[SessionRecord]) -> Vec<Verdict> {
    scenario
        .thresholds
        .iter()
        .map(|t| match ThresholdExpr::parse(&t.expr) {
            Ok(expr) => evaluate(t, &expr, sessions),
            Err(error) => Verdict {
                expr: t.expr.clone(),
                r#where: t.r#where.clone(),
                status: VerdictStatus::Fail,
                observed: None,
                sessions: 0,
                message: format!("invalid threshold expression: {error}"),
            },
        })
        .collect()
}

/// The verdict table `lvt run` prints: status, threshold, observed value and message.
pub fn verdict_table(verdicts: &[Verdict]) -> String {
    let rows: Vec<Vec<String>> = verdicts
        .iter()
        .map(|v| {
            vec![
                v.status.as_str().to_string(),
                v.name(),
                v.observed.map_or_else(|| "-".to_string(), fmt_observed),
                v.message.clone(),
            ]
        })
        .collect();
    crate::report::table(&["status", "threshold", "observed", "detail"], &rows)
}
