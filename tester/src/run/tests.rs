//! Unit tests of run aggregation and verdicts: distributions against exact expectations,
//! labels and grouping, every rate, and threshold verdicts at their boundaries.

use std::collections::BTreeMap;

use lvt_schema::{
    Complexity, Failure, FailureClass, FpsSummary, LatencySummary, Outcome, SessionMetrics,
    SessionReport, Swap,
};

use crate::run::junit::{escape_attr, escape_xml};
use crate::run::record::{SessionRecord, StartKind};
use crate::run::summary::{
    Distribution, EXACT_VALUES_MAX, labels, overall, summarize, summary_table,
};
use crate::run::verdict::{VerdictStatus, declared_slo, evaluate, verdict_table};
use crate::scenario::threshold::{Metric, Op, Rate, Stat, Subject, ThresholdExpr};
use crate::scenario::{Label, Threshold};

/// Builds a `SessionRecord` around a `SessionReport`: a passed session that got past job start
/// on target `a:1` with a low-complexity prompt, unless told otherwise.
struct SessionBuilder {
    record: SessionRecord,
}

fn session(index: u64) -> SessionBuilder {
    let report = SessionReport {
        ended_at_unix_ms: 1_700_000_010_000,
        outcome: Outcome::Passed,
        metrics: SessionMetrics {
            job_start_ms: Some(40.0),
            ..SessionMetrics::default()
        },
        ..SessionReport::new(format!("s{index}"), "noop", 1_700_000_000_000)
    };
    SessionBuilder {
        record: SessionRecord {
            index,
            target: "a:1".into(),
            prompt_id: "p-low".into(),
            complexity: Complexity::Low,
            start: StartKind::Warm,
            scheduled_at_ms: index as f64 * 1000.0,
            queue_delay_ms: 0.0,
            startup_from_schedule_ms: None,
            report,
        },
    }
}

impl SessionBuilder {
    fn target(mut self, t: &str) -> Self {
        self.record.target = t.into();
        self
    }
    fn complexity(mut self, c: Complexity) -> Self {
        self.record.complexity = c;
        self.record.prompt_id = format!("p-{}", crate::run::summary::complexity_name(c));
        self
    }
    fn start(mut self, s: StartKind) -> Self {
        self.record.start = s;
        self
    }
    fn outcome(mut self, o: Outcome) -> Self {
        self.record.report.outcome = o;
        if o == Outcome::Failed {
            self.record.report.failure = Some(Failure {
                class: FailureClass::OutputTimeout,
                detail: "no output".into(),
            });
        }
        if matches!(o, Outcome::UnscoredBusy | Outcome::UnscoredIndeterminate) {
            self.record.report.metrics.job_start_ms = None;
        }
        self
    }
    fn startup(mut self, ms: f64) -> Self {
        self.record.report.metrics.startup_ms = Some(ms);
        self.record.startup_from_schedule_ms = Some(ms + self.record.queue_delay_ms);
        self
    }
    fn e2e(mut self, p50: f64, p95: f64) -> Self {
        self.record.report.metrics.e2e_latency_ms = Some(LatencySummary {
            count: 100,
            p50,
            p90: p95,
            p95,
            p99: p95,
            max: p95,
            mean: p50,
            min: p50,
        });
        self
    }
    fn fps(mut self, mean: f64) -> Self {
        self.record.report.metrics.output_fps = Some(FpsSummary {
            mean,
            p5: mean,
            p50: mean,
            windows: 10,
        });
        self.record.report.metrics.fps_jitter = Some(0.02);
        self
    }
    fn stalls(mut self, n: u32) -> Self {
        self.record.report.metrics.stalls.count = n;
        self.record.report.metrics.stalls.total_ms = f64::from(n) * 600.0;
        self
    }
    fn swaps(mut self, n: usize) -> Self {
        self.record.report.metrics.swaps = (0..n)
            .map(|i| Swap {
                at_unix_ms: i as i64,
                from: "a:1".into(),
                to: "b:1".into(),
                cause: "test".into(),
                freeze_ms: None,
            })
            .collect();
        self
    }
    fn build(self) -> SessionRecord {
        self.record
    }
}

fn threshold(expr: &str, filter: &[(&str, &str)]) -> Threshold {
    Threshold {
        expr: expr.into(),
        r#where: filter
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        abort_on_fail: false,
        min_sessions: 5,
    }
}

fn metric_expr(metric: Metric, stat: Stat, op: Op, limit: f64) -> ThresholdExpr {
    ThresholdExpr {
        subject: Subject::Metric { metric, stat },
        op,
        limit,
    }
}

fn rate_expr(rate: Rate, op: Op, limit: f64) -> ThresholdExpr {
    ThresholdExpr {
        subject: Subject::Rate(rate),
        op,
        limit,
    }
}

/// Asserts `got` is within the histogram's 0.1 % of `want`.
fn assert_close(got: Option<f64>, want: f64) {
    let got = got.expect("a statistic over recorded values");
    assert!(
        (got - want).abs() <= want.abs() * 0.001 + 1e-9,
        "got {got}, want {want} within 0.1 %"
    );
}

#[test]
fn distribution_of_1_to_100_has_exact_nearest_rank_quantiles_and_mean() {
    // Recorded out of order: quantiles must not depend on it.
    let d = Distribution::from_values((1..=100).rev().map(f64::from));
    assert_eq!(d.count(), 100);
    assert_eq!(d.stat(Stat::Count), Some(100.0));
    assert_eq!(d.stat(Stat::Min), Some(1.0));
    assert_eq!(d.stat(Stat::Max), Some(100.0));
    assert_eq!(d.stat(Stat::Mean), Some(50.5));
    assert_eq!(d.sum(), Some(5050.0));
    let quantiles = [
        (Stat::P5, 5.0),
        (Stat::P10, 10.0),
        (Stat::P50, 50.0),
        (Stat::P90, 90.0),
        (Stat::P95, 95.0),
        (Stat::P99, 99.0),
    ];
    for (stat, want) in quantiles {
        assert_eq!(d.stat(stat), Some(want), "{stat:?}");
    }
    // Nearest rank is ceil(q * n): the 3rd of 30 values is p10, even though 0.1 * 30 is not
    // exactly 3 in binary.
    let d = Distribution::from_values((1..=30).map(f64::from));
    assert_eq!(d.stat(Stat::P10), Some(3.0));
    assert_eq!(d.stat(Stat::P50), Some(15.0));
    assert_eq!(d.stat(Stat::P95), Some(29.0));
}

#[test]
fn large_distribution_falls_back_to_the_histogram_within_a_tenth_of_a_percent() {
    let n = EXACT_VALUES_MAX as u32 * 3;
    let d = Distribution::from_values((1..=n).map(f64::from));
    let n = f64::from(n);
    assert_eq!(d.count(), n as u64);
    assert_eq!(d.stat(Stat::Mean), Some((n + 1.0) / 2.0));
    assert_eq!(d.stat(Stat::Max), Some(n));
    assert_close(d.stat(Stat::P5), (0.05 * n).ceil());
    assert_close(d.stat(Stat::P50), (0.5 * n).ceil());
    assert_close(d.stat(Stat::P95), (0.95 * n).ceil());
    assert_close(d.stat(Stat::P99), (0.99 * n).ceil());
}

#[test]
fn distribution_keeps_fractions_and_clamps_quantiles_to_the_exact_range() {
    // One value: every quantile is that value exactly, not its histogram bucket's edge.
    let d = Distribution::from_values([8000.0]);
    for stat in Stat::ALL {
        let want = if stat == Stat::Count { 1.0 } else { 8000.0 };
        assert_eq!(d.stat(stat), Some(want), "{stat:?}");
    }
    // Small fractional values (jitter, rates) survive the integer histogram.
    let d = Distribution::from_values([0.05, 0.05, 0.05]);
    assert_eq!(d.stat(Stat::P50), Some(0.05));
    let d = Distribution::from_values([0.0, 0.0]);
    assert_eq!(d.stat(Stat::P95), Some(0.0));
    assert_eq!(d.stat(Stat::Mean), Some(0.0));
}

#[test]
fn empty_distribution_has_no_statistic_not_zero() {
    let d = Distribution::new();
    for stat in Stat::ALL {
        assert_eq!(d.stat(stat), None, "{stat:?}");
    }
    let s = d.stats();
    assert_eq!(s.count, 0);
    assert_eq!((s.min, s.p50, s.sum), (None, None, None));
}

#[test]
fn distribution_rejects_negative_and_non_finite_values() {
    let mut d = Distribution::new();
    for v in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
        d.record(v);
    }
    d.record(3.0);
    assert_eq!(d.rejected(), 5);
    assert_eq!(d.count(), 1);
    assert_eq!(d.stat(Stat::Max), Some(3.0));
}

#[test]
fn merged_distributions_equal_one_over_all_values() {
    // Small enough to stay exact, and large enough that the merge falls back to the histogram.
    for n in [100, EXACT_VALUES_MAX as u32 + 10] {
        let half = n / 2;
        let mut a = Distribution::from_values((1..=half).map(f64::from));
        let b = Distribution::from_values((half + 1..=n).map(f64::from));
        a.merge(&b);
        a.merge(&Distribution::new());
        let all = Distribution::from_values((1..=n).map(f64::from));
        for stat in Stat::ALL {
            assert_eq!(a.stat(stat), all.stat(stat), "{stat:?} over 1..={n}");
        }
        let mut empty = Distribution::new();
        empty.merge(&all);
        assert_eq!(empty.stats(), all.stats());
    }
}

#[test]
fn labels_name_target_complexity_prompt_and_start() {
    let s = session(0)
        .target("o.example:8935")
        .complexity(Complexity::High)
        .start(StartKind::Cold)
        .build();
    let want: BTreeMap<Label, String> = [
        (Label::Target, "o.example:8935".to_string()),
        (Label::Complexity, "high".to_string()),
        (Label::Prompt, "p-high".to_string()),
        (Label::Start, "cold".to_string()),
    ]
    .into();
    assert_eq!(labels(&s), want);
}

#[test]
fn groups_are_sorted_with_complexity_low_to_high_and_count_outcomes() {
    let sessions = vec![
        session(0)
            .target("b:1")
            .complexity(Complexity::High)
            .build(),
        session(1)
            .target("a:1")
            .complexity(Complexity::High)
            .build(),
        session(2)
            .target("a:1")
            .complexity(Complexity::Low)
            .outcome(Outcome::Failed)
            .build(),
        session(3)
            .target("a:1")
            .complexity(Complexity::Medium)
            .build(),
        session(4)
            .target("a:1")
            .complexity(Complexity::Low)
            .startup(900.0)
            .build(),
        session(5)
            .target("a:1")
            .complexity(Complexity::Low)
            .outcome(Outcome::UnscoredBusy)
            .build(),
    ];
    let groups = summarize(&sessions, &[Label::Target, Label::Complexity]);
    let keys: Vec<Vec<&str>> = groups
        .iter()
        .map(|g| g.key.iter().map(|(_, v)| v.as_str()).collect())
        .collect();
    assert_eq!(
        keys,
        vec![
            vec!["a:1", "low"],
            vec!["a:1", "medium"],
            vec!["a:1", "high"],
            vec!["b:1", "high"],
        ]
    );
    let a_low = &groups[0];
    assert_eq!(a_low.key[0].0, Label::Target);
    assert_eq!(
        (
            a_low.sessions,
            a_low.passed,
            a_low.failed,
            a_low.busy,
            a_low.indeterminate
        ),
        (3, 1, 1, 1, 0)
    );
    assert_eq!(a_low.failure_classes.get("output_timeout"), Some(&1));
    assert_eq!(a_low.startup_ms.count, 1);
    assert_eq!(a_low.startup_ms.p50, Some(900.0));

    let all = overall(&sessions);
    assert!(all.key.is_empty());
    assert_eq!(
        (all.sessions, all.passed, all.failed, all.busy),
        (6, 4, 1, 1)
    );
    assert!(summarize(&[], &[Label::Target]).is_empty());
    // With no group_by, every session is in one group with an empty key.
    let one = summarize(&sessions, &[]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0], all);
}

#[test]
fn counters_only_count_sessions_that_got_past_job_start() {
    let sessions = vec![
        session(0).stalls(2).swaps(1).build(),
        session(1).stalls(1).build(),
        // Refused at the door: no chance to stall, so not a zero either.
        session(2).outcome(Outcome::UnscoredBusy).build(),
    ];
    let g = overall(&sessions);
    assert_eq!(g.stalls.count, 2);
    assert_eq!(g.stalls.sum, Some(3.0));
    assert_eq!(g.swaps.max, Some(1.0));
    assert_eq!(g.queue_delay_ms.count, 3);
}

#[test]
fn summary_table_prints_dash_for_no_data_never_zero() {
    let sessions = vec![
        session(0)
            .startup(1200.0)
            .e2e(300.0, 450.0)
            .fps(29.5)
            .stalls(1)
            .build(),
        session(1).target("b:1").outcome(Outcome::Failed).build(),
    ];
    let groups = summarize(&sessions, &[Label::Target]);
    let table = summary_table(&groups);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("target"), "{table}");
    assert!(lines[0].contains("startup p95 ms"), "{table}");
    let a: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        a,
        [
            "a:1", "1", "1/0/0/0", "1200", "1200", "300.0", "450.0", "29.5", "29.5", "0.020", "1",
            "0"
        ]
    );
    let b: Vec<&str> = lines[3].split_whitespace().collect();
    // A failed session past job start has real counters (0 stalls) but no latency or FPS.
    assert_eq!(
        b,
        [
            "b:1", "1", "0/1/0/0", "-", "-", "-", "-", "-", "-", "-", "0", "0"
        ]
    );
}

/// Sessions with every outcome: 3 passed, 1 failed, 2 busy, 1 indeterminate.
fn mixed_outcomes() -> Vec<SessionRecord> {
    let outcomes = [
        Outcome::Passed,
        Outcome::Passed,
        Outcome::Passed,
        Outcome::Failed,
        Outcome::UnscoredBusy,
        Outcome::UnscoredBusy,
        Outcome::UnscoredIndeterminate,
    ];
    outcomes
        .iter()
        .enumerate()
        .map(|(i, &o)| session(i as u64).outcome(o).build())
        .collect()
}

#[test]
fn every_rate_has_its_own_numerator_and_denominator() {
    let sessions = mixed_outcomes();
    let cases = [
        (Rate::FailureRate, 1.0 / 4.0, 4),
        (Rate::SuccessRate, 3.0 / 4.0, 4),
        (Rate::BusyRate, 2.0 / 7.0, 7),
        (Rate::UnscoredRate, 3.0 / 7.0, 7),
    ];
    for (rate, want, den) in cases {
        let v = evaluate(
            &threshold(rate.as_str(), &[]),
            &rate_expr(rate, Op::Le, 1.0),
            &sessions,
        );
        assert_eq!(v.observed, Some(want), "{rate:?}");
        assert_eq!(v.sessions, den, "{rate:?}");
        assert_eq!(v.status, VerdictStatus::Pass, "{rate:?}");
    }
}

#[test]
fn rate_without_scored_sessions_has_no_data_and_fails() {
    let sessions = vec![session(0).outcome(Outcome::UnscoredBusy).build()];
    let v = evaluate(
        &threshold("failure_rate < 0.05", &[]),
        &rate_expr(Rate::FailureRate, Op::Lt, 0.05),
        &sessions,
    );
    assert_eq!(v.status, VerdictStatus::NoData);
    assert!(v.failed());
    assert_eq!(v.observed, None);
    assert_eq!(
        v.message,
        "no session counts toward failure_rate (0 of 1 matched sessions)"
    );
    let v = evaluate(
        &threshold("failure_rate < 0.05", &[]),
        &rate_expr(Rate::FailureRate, Op::Lt, 0.3),
        &mixed_outcomes(),
    );
    assert_eq!(v.status, VerdictStatus::Pass);
    assert_eq!(
        v.message,
        "failure_rate = 0.250 (1 of 4), limit < 0.3 (7 sessions)"
    );
}

#[test]
fn metric_verdict_passes_fails_and_says_why() {
    let sessions: Vec<SessionRecord> = (0..12)
        .map(|i| session(i).startup(5000.0 + 400.0 * i as f64).build())
        .collect();
    // Startups 5000..=9400 in steps of 400: nearest-rank p95 is the 12th value, 9400.
    let t = threshold("startup_ms.p95 < 8000", &[]);
    let v = evaluate(
        &t,
        &metric_expr(Metric::StartupMs, Stat::P95, Op::Lt, 8000.0),
        &sessions,
    );
    assert_eq!(v.status, VerdictStatus::Fail);
    assert!(v.failed());
    assert_eq!(v.sessions, 12);
    assert_close(v.observed, 9400.0);
    assert_eq!(
        v.message,
        "startup_ms.p95 = 9400.0 ms, limit < 8000 (12 sessions)"
    );
    assert_eq!(v.expr, "startup_ms.p95 < 8000");

    let v = evaluate(
        &t,
        &metric_expr(Metric::StartupMs, Stat::P50, Op::Lt, 8000.0),
        &sessions,
    );
    assert_eq!(v.status, VerdictStatus::Pass);
    assert!(!v.failed());
}

#[test]
fn strict_and_inclusive_operators_differ_at_equality() {
    let sessions: Vec<SessionRecord> = (0..3).map(|i| session(i).swaps(1).build()).collect();
    let t = threshold("swaps.max <= 1", &[]);
    let at = |op| {
        evaluate(
            &t,
            &metric_expr(Metric::Swaps, Stat::Max, op, 1.0),
            &sessions,
        )
        .status
    };
    assert_eq!(at(Op::Le), VerdictStatus::Pass);
    assert_eq!(at(Op::Lt), VerdictStatus::Fail);
    assert_eq!(at(Op::Ge), VerdictStatus::Pass);
    assert_eq!(at(Op::Gt), VerdictStatus::Fail);
    assert_eq!(at(Op::Eq), VerdictStatus::Pass);
    assert_eq!(at(Op::Ne), VerdictStatus::Fail);
    // A quantile sits exactly on the limit too, not on its histogram bucket's edge.
    let sessions: Vec<SessionRecord> = (0..5).map(|i| session(i).startup(8000.0).build()).collect();
    let t = threshold("startup_ms.p95 < 8000", &[]);
    let at = |op| {
        evaluate(
            &t,
            &metric_expr(Metric::StartupMs, Stat::P95, op, 8000.0),
            &sessions,
        )
        .status
    };
    assert_eq!(at(Op::Lt), VerdictStatus::Fail);
    assert_eq!(at(Op::Le), VerdictStatus::Pass);
}

#[test]
fn where_filters_select_the_matching_sessions() {
    let sessions = vec![
        session(0).complexity(Complexity::Low).fps(30.0).build(),
        session(1).complexity(Complexity::High).fps(8.0).build(),
        session(2)
            .complexity(Complexity::High)
            .target("b:1")
            .fps(20.0)
            .build(),
    ];
    let expr = metric_expr(Metric::OutputFps, Stat::Min, Op::Ge, 12.0);
    let all = evaluate(&threshold("output_fps.min >= 12", &[]), &expr, &sessions);
    assert_eq!((all.status, all.sessions), (VerdictStatus::Fail, 3));
    let low = evaluate(
        &threshold("output_fps.min >= 12", &[("complexity", "low")]),
        &expr,
        &sessions,
    );
    assert_eq!((low.status, low.sessions), (VerdictStatus::Pass, 1));
    let high_b = evaluate(
        &threshold(
            "output_fps.min >= 12",
            &[("complexity", "high"), ("target", "b:1")],
        ),
        &expr,
        &sessions,
    );
    assert_eq!(
        (high_b.status, high_b.observed),
        (VerdictStatus::Pass, Some(20.0))
    );
    assert_eq!(
        high_b.name(),
        "output_fps.min >= 12 where complexity=high, target=b:1"
    );
    assert_eq!(
        high_b.message,
        "output_fps.min = 20.0 fps, limit >= 12 (1 sessions)"
    );
    let cold = evaluate(
        &threshold("output_fps.min >= 12", &[("start", "cold")]),
        &expr,
        &sessions,
    );
    assert_eq!(cold.status, VerdictStatus::NoData);
    assert_eq!(
        cold.message,
        "no session has a output_fps value (0 of 0 matched sessions)"
    );
}

#[test]
fn metric_without_values_has_no_data_and_fails() {
    let sessions: Vec<SessionRecord> = (0..12)
        .map(|i| session(i).outcome(Outcome::Failed).build())
        .collect();
    let v = evaluate(
        &threshold("startup_ms.p95 < 8000", &[]),
        &metric_expr(Metric::StartupMs, Stat::P95, Op::Lt, 8000.0),
        &sessions,
    );
    assert_eq!(v.status, VerdictStatus::NoData);
    assert!(v.failed());
    assert_eq!(v.sessions, 0);
    assert_eq!(
        v.message,
        "no session has a startup_ms value (0 of 12 matched sessions)"
    );
}

#[test]
fn unknown_where_label_fails_plainly() {
    let v = evaluate(
        &threshold("failure_rate < 0.05", &[("region", "eu")]),
        &rate_expr(Rate::FailureRate, Op::Lt, 0.05),
        &mixed_outcomes(),
    );
    assert_eq!(v.status, VerdictStatus::Fail);
    assert!(
        v.message.contains("unknown label `region`"),
        "{}",
        v.message
    );
}

#[test]
fn verdict_table_shows_each_status() {
    let sessions = vec![session(0).startup(1000.0).build()];
    let t = threshold("startup_ms.max < 2000", &[]);
    let verdicts = vec![
        evaluate(
            &t,
            &metric_expr(Metric::StartupMs, Stat::Max, Op::Lt, 2000.0),
            &sessions,
        ),
        evaluate(
            &t,
            &metric_expr(Metric::StartupMs, Stat::Max, Op::Lt, 500.0),
            &sessions,
        ),
        evaluate(
            &t,
            &metric_expr(Metric::OutputFps, Stat::P50, Op::Ge, 12.0),
            &sessions,
        ),
    ];
    let table = verdict_table(&verdicts);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("status"), "{table}");
    assert!(lines[2].starts_with("PASS "), "{table}");
    assert!(lines[3].starts_with("FAIL "), "{table}");
    assert!(lines[4].starts_with("NO DATA "), "{table}");
    assert!(lines[4].contains(" - "), "{table}");
}

#[test]
fn xml_escaping_covers_all_five_entities_and_drops_invalid_characters() {
    assert_eq!(
        escape_xml("<a href=\"x\">&'b'</a>"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&apos;b&apos;&lt;/a&gt;"
    );
    assert_eq!(
        escape_xml("a\u{0}b\u{1b}c\u{fffe}\td\u{1F600}"),
        "abc\td\u{1F600}"
    );
    assert_eq!(
        escape_attr("line 1\nline 2\r\t"),
        "line 1&#10;line 2&#13;&#9;"
    );
}

#[test]
fn thresholds_declare_each_session_its_slo() {
    let thresholds = [
        threshold("startup_ms.p95 < 8000", &[]),
        threshold("startup_ms.p50 <= 3000", &[("complexity", "low")]),
        threshold("e2e_latency_ms.p50 < 500", &[]),
        threshold(
            "e2e_latency_ms.p95 < 100",
            &[("target", "https://other:8935")],
        ),
        threshold("output_fps.p50 >= 12", &[]),
        threshold(
            "output_fps.mean > 20",
            &[("complexity", "low"), ("start", "warm")],
        ),
        // Neither an upper bound on latency nor a lower bound on FPS: no limit.
        threshold("output_fps.max <= 60", &[]),
        threshold("startup_ms.min > 10", &[]),
        threshold("failure_rate < 0.05", &[]),
        threshold("stalls.max <= 1", &[]),
    ];
    let labels = |complexity: &str, start: &str| {
        BTreeMap::from([
            (Label::Target, "https://o:8935".to_owned()),
            (Label::Complexity, complexity.to_owned()),
            (Label::Prompt, "p".to_owned()),
            (Label::Start, start.to_owned()),
        ])
    };
    let high = declared_slo(&thresholds, &labels("high", "cold")).expect("declared");
    assert_eq!(
        high,
        lvt_schema::SessionSlo {
            startup_ms: Some(8000.0),
            e2e_latency_ms: Some(500.0),
            output_fps: Some(12.0),
        }
    );
    // The tightest of the thresholds a session matches.
    let low_warm = declared_slo(&thresholds, &labels("low", "warm")).expect("declared");
    assert_eq!(low_warm.startup_ms, Some(3000.0));
    assert_eq!(low_warm.output_fps, Some(20.0));
    assert_eq!(low_warm.e2e_latency_ms, Some(500.0));
    assert_eq!(
        declared_slo(&thresholds[8..], &labels("high", "cold")),
        None,
        "rates and counters declare no limit"
    );
}
