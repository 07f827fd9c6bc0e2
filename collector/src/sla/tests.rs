//! Tests of the SLA core: the worked examples of docs/sla.md (checked against the document's own
//! text), merging, the 0.5 and damping rules at their boundaries, Wilson intervals, histograms and
//! the no-data rules.

use lvt_schema::{
    Complexity, Failure, FailureClass, FpsSummary, Gpu, LatencySummary, OrchestratorRef, Outcome,
    PromptRef, SessionReport, StallSummary, Swap, TargetMode,
};

use super::histogram::{FPS_LINEAR_BUCKETS, LATENCY_LOG_BUCKETS};
use super::score::{damp, higher_is_better, lower_is_better};
use super::*;

/// The SLA method document; the worked examples below must appear in it verbatim.
const SLA_DOC: &str = include_str!("../../../docs/sla.md");

/// 2026-11-27 14:00:00 UTC.
const HOUR_UNIX_S: i64 = 1_795_788_000;

/// A session of the worked examples' cell, starting `minute` minutes into the hour and lasting
/// `length_s` seconds, with no measurements yet.
fn session(outcome: Outcome, minute: i64, length_s: i64) -> SessionReport {
    let started_at_unix_ms = HOUR_UNIX_S * 1000 + minute * 60_000;
    SessionReport {
        ended_at_unix_ms: started_at_unix_ms + length_s * 1000,
        orchestrator: Some(OrchestratorRef {
            address: Some("0xAbC0000000000000000000000000000000000001".into()),
            uri: "https://o1.example:8935".into(),
            cert_sha256: None,
            cert_trust: None,
            address_check: Some(lvt_schema::AddressCheck::Verified),
        }),
        gpu: Some(Gpu {
            name: "NVIDIA GeForce RTX 4090".into(),
            memory_bytes: Some(25_757_220_864),
        }),
        prompt: Some(PromptRef {
            id: Some("cyberpunk".into()),
            complexity: Some(Complexity::Medium),
            params_hash: "0123456789abcdef0123456789abcdef".into(),
        }),
        outcome,
        region: Some("eu-west".into()),
        tester_version: Some("lvt 0.1.0".into()),
        ..SessionReport::new(format!("s-{minute}"), "streamdiffusion", started_at_unix_ms)
    }
}

fn latency(p50: f64) -> LatencySummary {
    LatencySummary {
        count: 900,
        p50,
        p90: p50 * 1.2,
        p95: p50 * 1.3,
        p99: p50 * 1.5,
        max: p50 * 2.0,
        mean: p50 * 1.05,
        min: p50 * 0.8,
    }
}

fn fps(mean: f64) -> FpsSummary {
    FpsSummary {
        mean,
        p5: mean * 0.8,
        p50: mean,
        windows: 59,
    }
}

/// A passed, 60 s session with the given measurements.
fn passed(
    minute: i64,
    startup_ms: f64,
    e2e_p50_ms: Option<f64>,
    output_fps: f64,
    jitter: f64,
) -> SessionReport {
    let mut report = session(Outcome::Passed, minute, 60);
    report.metrics.startup_ms = Some(startup_ms);
    report.metrics.e2e_latency_ms = e2e_p50_ms.map(latency);
    report.metrics.output_fps = Some(fps(output_fps));
    report.metrics.fps_jitter = Some(jitter);
    report.runner.states_seen = vec!["LOADING".into(), "ONLINE".into()];
    report
}

fn failed(minute: i64, class: FailureClass) -> SessionReport {
    let mut report = session(Outcome::Failed, minute, 30);
    report.failure = Some(Failure {
        class,
        detail: "no output".into(),
    });
    report
}

fn busy(minute: i64) -> SessionReport {
    let mut report = session(Outcome::UnscoredBusy, minute, 1);
    report.failure = Some(Failure {
        class: FailureClass::Capacity,
        detail: "OrchestratorCapped".into(),
    });
    report
}

fn stalls(report: &mut SessionReport, count: u32, total_ms: f64) {
    report.metrics.stalls = StallSummary {
        count,
        total_ms,
        longest_ms: total_ms / f64::from(count),
    };
}

/// Example 1 of docs/sla.md: a healthy, busy hour.
fn example_one_sessions() -> Vec<SessionReport> {
    let mut sessions = Vec::new();
    for minute in 0..6 {
        sessions.push(passed(minute * 5, 1200.0, Some(350.0), 15.0, 0.05));
    }
    for minute in 6..11 {
        let mut report = passed(minute * 5, 1860.0, Some(460.0), 12.8, 0.12);
        stalls(&mut report, 1, 700.0);
        if minute == 6 {
            report.mode = TargetMode::Network;
            report.metrics.swaps.push(Swap {
                at_unix_ms: report.started_at_unix_ms + 20_000,
                from: "https://o1.example:8935".into(),
                to: "https://o2.example:8935".into(),
                cause: "no output for 30s".into(),
                freeze_ms: Some(900.0),
            });
        }
        sessions.push(report);
    }
    sessions.push(failed(56, FailureClass::OutputTimeout));
    sessions.push(busy(58));
    sessions
}

fn example_one_cohort() -> Cohort {
    Cohort {
        rows: 500,
        startup_rows: 480,
        e2e_rows: 470,
        fps_rows: 470,
        startup_p50_ms: Some(1200.0),
        startup_p90_ms: Some(3000.0),
        e2e_p50_ms: Some(300.0),
        e2e_p90_ms: Some(900.0),
        fps_p10: Some(8.0),
        fps_p50: Some(16.0),
    }
}

/// Example 2 of docs/sla.md: a sparse hour against a young e2e benchmark.
fn example_two_sessions() -> Vec<SessionReport> {
    let mut slow = passed(10, 5000.0, None, 6.0, 0.3);
    stalls(&mut slow, 2, 1500.0);
    vec![busy(5), slow, failed(20, FailureClass::RunnerError)]
}

fn example_two_cohort() -> Cohort {
    Cohort {
        e2e_rows: 47,
        rows: 200,
        startup_rows: 190,
        fps_rows: 190,
        ..example_one_cohort()
    }
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "null".to_owned(), |value| format!("{value:.decimals$}"))
}

fn rate(rate: Option<Rate>) -> String {
    rate.map_or_else(
        || "null".to_owned(),
        |rate| {
            format!(
                "{}/{} = {:.4}  [{:.4}, {:.4}]",
                rate.successes, rate.trials, rate.rate, rate.ci95_low, rate.ci95_high
            )
        },
    )
}

/// The results block the document shows for a worked example.
fn render(score: &SlaScore) -> String {
    let lines = [
        ("startup_success", rate(score.startup_success)),
        ("no_swap", rate(score.no_swap)),
        ("output_viability", rate(score.output_viability)),
        ("reliability", number(score.reliability, 4)),
        ("startup_ms_mean", number(score.startup_ms_mean, 1)),
        ("ptff_score", number(score.ptff_score, 4)),
        ("e2e_p50_ms_mean", number(score.e2e_p50_ms_mean, 1)),
        ("e2e_score", number(score.e2e_score, 4)),
        ("latency", number(score.latency, 4)),
        ("output_fps_mean", number(score.output_fps_mean, 2)),
        ("fps_score", number(score.fps_score, 4)),
        ("quality", number(score.quality, 4)),
        (
            "health_signal_coverage",
            number(score.health_signal_coverage, 4),
        ),
        ("sla_score", number(score.sla_score, 2)),
        ("pass", rate(score.pass)),
        ("fps_jitter", number(score.fps_jitter, 4)),
        ("stalls_per_minute", number(score.stalls_per_minute, 4)),
        ("stall_time_fraction", number(score.stall_time_fraction, 4)),
        ("busy_rate", number(score.busy_rate, 4)),
    ];
    lines
        .iter()
        .map(|(name, value)| format!("{name:<23}{value}\n"))
        .collect()
}

fn assert_close(actual: Option<f64>, expected: f64) {
    let actual = actual.expect("a value was expected");
    assert!(
        (actual - expected).abs() < 1e-9,
        "{actual} is not {expected}"
    );
}

#[test]
fn worked_example_one_matches_hand_computation_and_doc() {
    let sessions = example_one_sessions();
    let keys: Vec<CellKey> = sessions.iter().map(CellKey::of).collect();
    assert!(keys.iter().all(|key| *key == keys[0]), "one cell");
    let cell = CellSums::from_sessions(&sessions);
    assert_eq!(cell.sessions, 13);
    assert_eq!(cell.startup_attempts, 12);
    assert_eq!(cell.startup_successes, 11);
    assert_eq!(cell.no_swap, 10);
    assert_eq!(cell.output_viable, 11);
    assert_eq!(cell.evidence_complete, 12);
    assert_eq!(cell.stalls, 5);

    let score = score(&cell, &example_one_cohort());
    // The hand computation of docs/sla.md, unrounded.
    assert_close(
        score.reliability,
        0.4 * 11.0 / 12.0 + 0.2 * 10.0 / 11.0 + 0.4 * 11.0 / 12.0,
    );
    assert_close(score.ptff_score, (3000.0 - 1500.0) / (3000.0 - 1200.0));
    assert_close(score.e2e_score, (900.0 - 400.0) / (900.0 - 300.0));
    assert_close(
        score.fps_score,
        0.5 + 11.0 / 30.0 * ((14.0 - 8.0) / (16.0 - 8.0) - 0.5),
    );
    assert_close(score.health_signal_coverage, 1.0);
    assert_close(score.sla_score, 86.160_606_060_606_06);
    assert_close(score.busy_rate, 1.0 / 13.0);
    assert_close(score.stalls_per_minute, 5.0 / 11.0);

    let block = render(&score);
    assert!(
        SLA_DOC.contains(&block),
        "docs/sla.md must show example 1 as:\n{block}"
    );
}

#[test]
fn worked_example_two_matches_hand_computation_and_doc() {
    let cell = CellSums::from_sessions(&example_two_sessions());
    let score = score(&cell, &example_two_cohort());
    assert_close(score.reliability, 0.6);
    assert_close(score.ptff_score, 0.45);
    assert_close(score.e2e_score, 0.5);
    assert_close(score.fps_score, 0.5 - 0.5 / 30.0);
    assert_close(score.health_signal_coverage, 0.5);
    assert_close(score.sla_score, 28.13);
    assert_eq!(score.e2e_p50_ms_mean, None);

    let block = render(&score);
    assert!(
        SLA_DOC.contains(&block),
        "docs/sla.md must show example 2 as:\n{block}"
    );
}

#[test]
fn wilson_interval_matches_known_values() {
    let (low, high) = wilson_interval(8, 10, 1.96).expect("10 trials");
    assert_eq!(format!("{low:.4} {high:.4}"), "0.4902 0.9433");
    let (low, high) = wilson_interval(0, 10, 1.96).expect("10 trials");
    assert_eq!(low, 0.0);
    assert_eq!(format!("{high:.4}"), "0.2775");
    let (low, high) = wilson_interval(10, 10, 1.96).expect("10 trials");
    assert_eq!(format!("{low:.4}"), "0.7225");
    assert_eq!(high, 1.0);
    // Without spread (z = 0) the interval is the point estimate.
    assert_eq!(wilson_interval(3, 4, 0.0), Some((0.75, 0.75)));
    assert_eq!(wilson_interval(0, 0, 1.96), None);
    assert_eq!(wilson_interval(11, 10, 1.96), None);
    assert_eq!(wilson_interval(1, 2, f64::NAN), None);
}

#[test]
fn merging_hours_equals_the_day_computed_at_once() {
    // Deterministic pseudo-random sessions over 24 hours (a fixed-seed LCG).
    let mut state: u64 = 0x5eed;
    let mut next = move |modulus: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % modulus
    };
    let mut day = Vec::new();
    for hour in 0..24 {
        for slot in 0..(1 + next(6) as i64) {
            let minute = hour * 60 + slot * 7;
            let report = match next(5) {
                0 => failed(minute, FailureClass::OutputTimeout),
                1 => busy(minute),
                _ => {
                    let mut report = passed(
                        minute,
                        300.0 + next(5000) as f64 * 1.37,
                        (next(4) > 0).then(|| 80.0 + next(900) as f64 / 3.0),
                        next(3000) as f64 / 97.0,
                        next(1000) as f64 / 7919.0,
                    );
                    stalls(&mut report, next(3) as u32 + 1, next(4000) as f64 * 0.1);
                    report
                }
            };
            day.push(report);
        }
    }
    let at_once = CellSums::from_sessions(&day);
    let hourly: Vec<CellSums> = (0..24)
        .map(|hour| {
            CellSums::from_sessions(
                day.iter()
                    .filter(|report| CellKey::of(report).hour_unix_s == HOUR_UNIX_S + hour * 3600),
            )
        })
        .collect();
    assert_eq!(
        hourly.iter().map(|sums| sums.sessions).sum::<u64>(),
        day.len() as u64
    );

    let mut forward = CellSums::default();
    hourly.iter().for_each(|sums| forward.merge(sums));
    let mut backward = CellSums::default();
    hourly.iter().rev().for_each(|sums| backward.merge(sums));
    // (h0 + ... + h11) + (h12 + ... + h23): another association of the same sums.
    let mut halves = [CellSums::default(), CellSums::default()];
    for (index, sums) in hourly.iter().enumerate() {
        halves[index / 12].merge(sums);
    }
    let [mut grouped, second] = halves;
    grouped.merge(&second);

    assert_eq!(forward, at_once);
    assert_eq!(backward, at_once);
    assert_eq!(grouped, at_once);
    let cohort = Cohort::from_sums(&at_once);
    assert_eq!(score(&forward, &cohort), score(&at_once, &cohort));
}

#[test]
fn cohort_with_47_rows_is_no_benchmark_and_48_is() {
    // One session: fast start (raw ptff 1), slow e2e (raw 0), high FPS (raw 1); damped with n = 1.
    let cell = CellSums::from_sessions(&[passed(0, 1000.0, Some(1000.0), 20.0, 0.1)]);
    let with_rows = |rows: u64| Cohort {
        startup_rows: rows,
        e2e_rows: rows,
        fps_rows: rows,
        ..example_one_cohort()
    };
    let young = score(&cell, &with_rows(47));
    assert_eq!(young.ptff_score, Some(0.5));
    assert_eq!(young.e2e_score, Some(0.5));
    assert_eq!(young.fps_score, Some(0.5));
    let grown = score(&cell, &with_rows(48));
    assert_close(grown.ptff_score, 0.5 + 0.1 * 0.5);
    assert_close(grown.e2e_score, 0.5 - 0.1 * 0.5);
    assert_close(grown.fps_score, 0.5 + 0.5 / 30.0);
    // Each metric is gated by its own rows.
    let mixed = Cohort {
        e2e_rows: 47,
        ..with_rows(48)
    };
    let mixed = score(&cell, &mixed);
    assert_close(mixed.ptff_score, 0.55);
    assert_eq!(mixed.e2e_score, Some(0.5));
    // A missing percentile is a missing benchmark whatever the row count.
    let no_p90 = Cohort {
        startup_p90_ms: None,
        ..with_rows(1000)
    };
    assert_eq!(score(&cell, &no_p90).ptff_score, Some(0.5));
}

#[test]
fn damping_reaches_full_weight_at_10_samples_and_30_for_fps() {
    assert_close(Some(damp(1.0, 0, 10.0)), 0.5);
    assert_close(Some(damp(1.0, 9, 10.0)), 0.95);
    assert_close(Some(damp(1.0, 10, 10.0)), 1.0);
    assert_close(Some(damp(0.0, 11, 10.0)), 0.0);
    assert_close(Some(damp(1.0, 29, 30.0)), 0.5 + 29.0 / 60.0);
    assert_close(Some(damp(1.0, 30, 30.0)), 1.0);

    // Through `score`: n fast sessions (startup at the cohort p50, FPS above the p50).
    let cell_of = |n: i64| {
        CellSums::from_sessions(
            &(0..n)
                .map(|i| passed(i, 1200.0, Some(300.0), 20.0, 0.0))
                .collect::<Vec<_>>(),
        )
    };
    let cohort = example_one_cohort();
    assert_close(score(&cell_of(9), &cohort).ptff_score, 0.95);
    assert_close(score(&cell_of(10), &cohort).ptff_score, 1.0);
    assert_close(
        score(&cell_of(10), &cohort).fps_score,
        0.5 + 0.5 * 10.0 / 30.0,
    );
    assert_close(score(&cell_of(30), &cohort).fps_score, 1.0);
}

#[test]
fn metric_scores_are_linear_between_the_percentiles() {
    assert_eq!(lower_is_better(1200.0, 1200.0, 3000.0), 1.0);
    assert_eq!(lower_is_better(3000.0, 1200.0, 3000.0), 0.0);
    assert_close(Some(lower_is_better(2100.0, 1200.0, 3000.0)), 0.5);
    assert_eq!(higher_is_better(16.0, 8.0, 16.0), 1.0);
    assert_eq!(higher_is_better(8.0, 8.0, 16.0), 0.0);
    assert_close(Some(higher_is_better(10.0, 8.0, 16.0)), 0.25);
    // A degenerate cohort (p50 == p90) is a step, not a division by zero.
    assert_eq!(lower_is_better(1000.0, 1000.0, 1000.0), 1.0);
    assert_eq!(lower_is_better(1000.1, 1000.0, 1000.0), 0.0);
    assert_eq!(higher_is_better(7.9, 8.0, 8.0), 0.0);
}

#[test]
fn busy_is_not_a_failure() {
    let scored = example_one_sessions()
        .into_iter()
        .filter(|report| report.outcome != Outcome::UnscoredBusy)
        .collect::<Vec<_>>();
    let mut with_busy = scored.clone();
    with_busy.extend((0..20).map(busy));
    let cohort = example_one_cohort();
    let without = score(&CellSums::from_sessions(&scored), &cohort);
    let with = score(&CellSums::from_sessions(&with_busy), &cohort);
    assert_eq!(with.sla_score, without.sla_score);
    assert_eq!(with.startup_success, without.startup_success);
    assert_eq!(with.pass, without.pass);
    assert_eq!(without.busy_rate, Some(0.0));
    assert_close(with.busy_rate, 20.0 / 32.0);

    // A cell of busy sessions only has nothing to score: no score, not a zero.
    let only_busy = score(&CellSums::from_sessions(&[busy(0), busy(1)]), &cohort);
    assert_eq!(only_busy.sla_score, None);
    assert_eq!(only_busy.reliability, None);
    assert_eq!(only_busy.startup_success, None);
    assert_eq!(only_busy.pass, None);
    assert_eq!(only_busy.busy_rate, Some(1.0));

    // A failed session that names capacity, or a tester bug, is excused the same way.
    let excused = CellSums::from_sessions(&[
        failed(0, FailureClass::Capacity),
        failed(1, FailureClass::Internal),
    ]);
    assert_eq!(excused.startup_attempts, 0);
    assert_eq!(excused.failed, 2);
}

#[test]
fn no_data_is_none_never_zero() {
    let empty = score(&CellSums::default(), &example_one_cohort());
    assert_eq!(
        empty,
        SlaScore {
            formula: Formula::NaapV1,
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
            startup_success: None,
            no_swap: None,
            output_viability: None,
            pass: None,
            completion: None,
            slo_startup: None,
            slo_e2e: None,
            slo_fps: None,
            startup_ms_mean: None,
            e2e_p50_ms_mean: None,
            output_fps_mean: None,
            fps_jitter: None,
            stalls_per_minute: None,
            stall_time_fraction: None,
            busy_rate: None,
            sessions: 0,
            attempts: 0,
        }
    );
    // Attempts that never started: rates exist (0), the measured means and stall figures do not,
    // and the formula's metric components are the neutral 0.5.
    let never_started = score(
        &CellSums::from_sessions(&[failed(0, FailureClass::OutputTimeout)]),
        &example_one_cohort(),
    );
    assert_eq!(
        never_started.startup_success.map(|rate| rate.rate),
        Some(0.0)
    );
    assert_eq!(never_started.no_swap, None);
    assert_eq!(never_started.startup_ms_mean, None);
    assert_eq!(never_started.fps_jitter, None);
    assert_eq!(never_started.stalls_per_minute, None);
    assert_eq!(never_started.ptff_score, Some(0.5));
    // reliability = 0.4 * 0 + 0.2 * 0.5 (no started session) + 0.4 * 0 = 0.1.
    assert_close(never_started.reliability, 0.1);
    assert_close(never_started.sla_score, 100.0 * (0.7 * 0.1 + 0.3 * 0.5));
}

#[test]
fn loading_only_and_zero_fps_output_is_not_viable() {
    let mut loading = passed(0, 900.0, Some(200.0), 24.0, 0.0);
    loading.runner.states_seen = vec!["LOADING".into()];
    let zero = passed(1, 900.0, Some(200.0), 0.0, 0.0);
    let mut silent_runner = passed(2, 900.0, Some(200.0), 24.0, 0.0);
    silent_runner.runner.states_seen.clear();
    let cell = CellSums::from_sessions(&[loading, zero, silent_runner]);
    assert_eq!(cell.startup_successes, 3);
    assert_eq!(cell.output_viable, 1);
}

#[test]
fn health_signal_coverage_counts_started_sessions_missing_evidence() {
    let complete = passed(0, 900.0, Some(200.0), 24.0, 0.0);
    let no_e2e = passed(1, 900.0, None, 24.0, 0.0);
    let mut no_fps = passed(2, 900.0, Some(200.0), 24.0, 0.0);
    no_fps.metrics.output_fps = None;
    let never_started = failed(3, FailureClass::StartError);
    let cell = CellSums::from_sessions(&[complete, no_e2e, no_fps, never_started]);
    assert_eq!(cell.evidence_complete, 2);
    assert_close(
        score(&cell, &example_one_cohort()).health_signal_coverage,
        0.5,
    );
}

#[test]
fn corrupt_values_are_ignored_not_summed() {
    let mut report = passed(0, 900.0, Some(-5.0), f64::INFINITY, f64::NAN);
    report.metrics.startup_ms = Some(-1.0);
    let cell = CellSums::from_sessions(&[report]);
    assert_eq!(cell.startup_attempts, 1);
    assert_eq!(cell.startup_successes, 0);
    assert_eq!(cell.e2e_p50_ms, MetricSum::default());
    assert_eq!(cell.output_fps, MetricSum::default());
    assert_eq!(cell.fps_jitter, MetricSum::default());
    assert_eq!(cell.startup_ms_buckets.total(), 0);
}

#[test]
fn cell_key_follows_the_grain() {
    let report = passed(59, 900.0, None, 24.0, 0.0);
    let key = CellKey::of(&report);
    assert_eq!(
        key,
        CellKey {
            hour_unix_s: HOUR_UNIX_S,
            orchestrator: "0xabc0000000000000000000000000000000000001".into(),
            pipeline: "live-video-to-video".into(),
            model_id: "streamdiffusion".into(),
            gpu: "NVIDIA GeForce RTX 4090".into(),
            region: "eu-west".into(),
            complexity: "medium".into(),
            test_load: true,
        }
    );
    let mut bare = report.clone();
    bare.orchestrator.as_mut().expect("set above").address = None;
    bare.gpu = None;
    bare.region = None;
    bare.prompt = None;
    bare.started_at_unix_ms += 60_000;
    let key = CellKey::of(&bare);
    assert_eq!(key.orchestrator, "https://o1.example:8935");
    assert_eq!(key.hour_unix_s, HOUR_UNIX_S + 3600);
    assert_eq!(
        (
            key.gpu.as_str(),
            key.region.as_str(),
            key.complexity.as_str()
        ),
        ("", "", "")
    );
    bare.orchestrator = None;
    assert_eq!(CellKey::of(&bare).orchestrator, "");

    assert_eq!(hour_floor_unix_s(-1), -3600);
    assert_eq!(hour_floor_unix_s(3_599_999), 0);
    assert_eq!(
        cohort_window_unix_s(HOUR_UNIX_S),
        HOUR_UNIX_S - 168 * 3600..HOUR_UNIX_S
    );
}

#[test]
fn latency_buckets_are_five_percent_wide_and_exact_at_their_bounds() {
    assert_eq!(LatencyHistogram::bucket_of(0.0), Some(0));
    assert_eq!(LatencyHistogram::bucket_of(0.999), Some(0));
    assert_eq!(LatencyHistogram::bucket_of(1.0), Some(1));
    assert_eq!(LatencyHistogram::bucket_of(1.05), Some(2));
    assert_eq!(
        LatencyHistogram::bucket_of(599_999.0),
        Some(LATENCY_LOG_BUCKETS)
    );
    assert_eq!(
        LatencyHistogram::bucket_of(600_000.0),
        Some(LATENCY_LOG_BUCKETS + 1)
    );
    assert_eq!(LatencyHistogram::bucket_of(-0.1), None);
    assert_eq!(LatencyHistogram::bucket_of(f64::NAN), None);
    for bucket in 1..=LATENCY_LOG_BUCKETS {
        let lower = LatencyHistogram::lower_bound_ms(bucket);
        assert_eq!(
            LatencyHistogram::bucket_of(lower),
            Some(bucket),
            "lower bound of {bucket}"
        );
        let representative = LatencyHistogram::representative_ms(bucket);
        assert_eq!(LatencyHistogram::bucket_of(representative), Some(bucket));
        assert!(representative / lower < 1.025 + 1e-12);
    }
    assert!(LatencyHistogram::lower_bound_ms(LATENCY_LOG_BUCKETS) < 600_000.0);
    assert!(LatencyHistogram::lower_bound_ms(LATENCY_LOG_BUCKETS) * 1.05 >= 600_000.0);
}

#[test]
fn fps_buckets_are_a_quarter_frame_wide() {
    assert_eq!(FpsHistogram::bucket_of(0.0), Some(0));
    assert_eq!(FpsHistogram::bucket_of(0.25), Some(1));
    assert_eq!(
        FpsHistogram::bucket_of(119.99),
        Some(FPS_LINEAR_BUCKETS - 1)
    );
    assert_eq!(FpsHistogram::bucket_of(120.0), Some(FPS_LINEAR_BUCKETS));
    assert_eq!(FpsHistogram::bucket_of(-1.0), None);
    assert_eq!(FpsHistogram::representative_fps(0), 0.125);
    assert_eq!(FpsHistogram::representative_fps(FPS_LINEAR_BUCKETS), 120.0);
}

#[test]
fn cohort_percentiles_come_from_merged_buckets() {
    // 100 sessions with startups 100, 200, ..., 10 000 ms, split over two cells.
    let sessions: Vec<SessionReport> = (1..=100)
        .map(|i| {
            passed(
                i % 60,
                100.0 * i as f64,
                Some(10.0 * i as f64),
                0.25 * i as f64,
                0.0,
            )
        })
        .collect();
    let mut cohort_sums = CellSums::from_sessions(&sessions[..37]);
    cohort_sums.merge(&CellSums::from_sessions(&sessions[37..]));
    let cohort = Cohort::from_sums(&cohort_sums);
    assert_eq!(cohort.rows, 100);
    assert_eq!(
        (cohort.startup_rows, cohort.e2e_rows, cohort.fps_rows),
        (100, 100, 100)
    );
    // Nearest rank: p50 is the 50th value, p90 the 90th; buckets hold them within 2.5 %.
    let within = |actual: Option<f64>, expected: f64| {
        let actual = actual.expect("a percentile");
        assert!(
            (actual / expected - 1.0).abs() <= 0.025,
            "{actual} vs {expected}"
        );
    };
    within(cohort.startup_p50_ms, 5000.0);
    within(cohort.startup_p90_ms, 9000.0);
    within(cohort.e2e_p50_ms, 500.0);
    within(cohort.e2e_p90_ms, 900.0);
    // FPS 0.25 i sits at the bottom of bucket i: the 10th value is 2.5 FPS, shown as 2.625.
    assert_eq!(cohort.fps_p10, Some(2.625));
    assert_eq!(cohort.fps_p50, Some(12.625));

    let empty = Cohort::from_sums(&CellSums::default());
    assert_eq!(empty.startup_p50_ms, None);
    assert_eq!(empty.fps_p10, None);
}

#[test]
fn sums_survive_a_json_round_trip() {
    let sums = CellSums::from_sessions(&example_one_sessions());
    let json = serde_json::to_string(&sums).expect("sums serialize");
    let back: CellSums = serde_json::from_str(&json).expect("sums deserialize");
    assert_eq!(back, sums);
}

/// A direct session whose stream broke after output started (the input channel vanished) is a
/// session a gateway would have swapped away from: it loses its no-swap, while its startup
/// still counts as a success.
#[test]
fn a_stream_that_broke_mid_session_is_not_swap_free() {
    let mut crashed = passed(0, 1200.0, Some(150.0), 17.5, 0.4);
    crashed.outcome = Outcome::Failed;
    crashed.failure = Some(Failure {
        class: FailureClass::PublishLost,
        detail: "input channel gone (404) mid-stream".into(),
    });
    let healthy = passed(1, 1100.0, Some(40.0), 30.0, 0.01);
    let sums = CellSums::from_sessions([&crashed, &healthy]);
    assert_eq!(sums.startup_attempts, 2);
    assert_eq!(sums.startup_successes, 2);
    assert_eq!(sums.no_swap, 1);

    // A start that never produced output is not in the no-swap denominator at all.
    let never_started = failed(2, FailureClass::StartError);
    let sums = CellSums::from_sessions([&never_started, &healthy]);
    assert_eq!(sums.startup_successes, 1);
    assert_eq!(sums.no_swap, 1);
}

/// The network-mode example of docs/sla.md: one session, two orchestrators. The first started
/// the stream and was swapped away from on an output timeout; the second finished it.
fn network_example() -> SessionReport {
    let mut report = passed(0, 1200.0, Some(120.0), 24.0, 0.2);
    report.ended_at_unix_ms = report.started_at_unix_ms + 300_000;
    report.mode = TargetMode::Network;
    let start = report.started_at_unix_ms;
    let share = |index: u8, from_s: i64, to_s: i64| lvt_schema::ServedBy {
        orchestrator: OrchestratorRef {
            address: Some(format!(
                "0xAbC00000000000000000000000000000000000{index:02}"
            )),
            uri: format!("https://o{index}.example:8935"),
            cert_sha256: None,
            cert_trust: None,
            address_check: Some(lvt_schema::AddressCheck::Verified),
        },
        gpu: Some(Gpu {
            name: "NVIDIA GeForce RTX 4090".into(),
            memory_bytes: None,
        }),
        from_unix_ms: start + from_s * 1000,
        to_unix_ms: start + to_s * 1000,
        startup_ms: Some(700.0),
        frames_received: 1000,
        e2e_latency_ms: None,
        output_fps: None,
        stalls: StallSummary::default(),
        ended_by: None,
        failure: None,
    };
    let mut first = share(1, 1, 120);
    first.startup_ms = Some(1100.0);
    first.e2e_latency_ms = Some(latency(150.0));
    first.output_fps = Some(fps(15.0));
    first.stalls = StallSummary {
        count: 2,
        total_ms: 900.0,
        longest_ms: 600.0,
    };
    first.ended_by = Some("output timeout".into());
    first.failure = Some(FailureClass::OutputTimeout);
    let mut second = share(2, 121, 300);
    second.e2e_latency_ms = Some(latency(90.0));
    second.output_fps = Some(fps(30.0));
    report.served_by = vec![first, second];
    report
}

/// One row of the network-mode example's table in docs/sla.md.
fn contribution_row(key: &CellKey, sums: &CellSums) -> String {
    format!(
        "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        key.orchestrator,
        sums.sessions,
        sums.passed,
        sums.failed,
        sums.startup_attempts,
        sums.startup_successes,
        number(sums.startup_ms.mean(), 0),
        sums.no_swap,
        sums.swaps,
        number(sums.e2e_p50_ms.mean(), 0),
        number(sums.output_fps.mean(), 1),
        sums.stalls,
        number(sums.session_ms.mean().map(|ms| ms / 1000.0), 0),
    )
}

#[test]
fn network_sessions_are_attributed_per_serving_orchestrator() {
    let report = network_example();
    let parts = contributions(&report);
    assert_eq!(parts.len(), 2);
    let (first_key, first) = &parts[0];
    let (second_key, second) = &parts[1];
    assert_eq!(
        first_key.orchestrator,
        "0xabc0000000000000000000000000000000000001"
    );
    assert_eq!(
        second_key.orchestrator,
        "0xabc0000000000000000000000000000000000002"
    );
    // Everything but the orchestrator comes from the session (both shares start in its hour).
    let session_key = CellKey::of(&report);
    for key in [first_key, second_key] {
        assert_eq!(
            CellKey {
                orchestrator: session_key.orchestrator.clone(),
                ..key.clone()
            },
            session_key
        );
    }

    // The first orchestrator: the session's start (1200 ms, not its own 1100 ms), a failure
    // swap against its no-swap rate, its own e2e, FPS and stalls.
    assert_eq!((first.sessions, first.passed, first.failed), (1, 0, 1));
    assert_eq!((first.startup_attempts, first.startup_successes), (1, 1));
    assert_eq!(first.startup_ms.mean(), Some(1200.0));
    assert_eq!(first.startup_ms_buckets.total(), 1);
    assert_eq!((first.no_swap, first.swaps), (0, 1));
    assert_eq!(first.e2e_p50_ms.mean(), Some(150.0));
    assert_eq!(first.output_fps.mean(), Some(15.0));
    assert_eq!(
        first.fps_jitter.count, 0,
        "jitter is the session's, not a share's"
    );
    assert_eq!((first.stalls, first.stall_ms.sum()), (2, 900.0));
    assert_eq!(first.session_ms.sum(), 120_000.0);

    // The second: the session's passed outcome, output started but no startup sample, swap-free.
    assert_eq!((second.sessions, second.passed, second.failed), (1, 1, 0));
    assert_eq!((second.startup_attempts, second.startup_successes), (1, 1));
    assert_eq!(second.startup_ms.count, 0);
    assert_eq!(second.startup_ms_buckets.total(), 0);
    assert_eq!((second.no_swap, second.swaps), (1, 0));
    assert_eq!(second.e2e_p50_ms.mean(), Some(90.0));
    assert_eq!(second.output_fps.mean(), Some(30.0));
    assert_eq!(second.session_ms.sum(), 179_000.0);

    for (key, sums) in &parts {
        let row = contribution_row(key, sums);
        assert!(SLA_DOC.contains(&row), "docs/sla.md lacks the row\n{row}");
    }

    // A swap the target is not answerable for (capacity) costs it no no-swap.
    let mut excused = report.clone();
    excused.served_by[0].failure = Some(FailureClass::Capacity);
    let parts = contributions(&excused);
    assert_eq!(parts[0].1.startup_attempts, 0, "a capacity swap is excused");

    // The swap limit reached: the share serving then broke without a swap after it. The
    // tester's session core records that failure on the share, and it costs the share its
    // no-swap credit as a direct session's failure does, while no swap is counted.
    let mut limit = report.clone();
    limit.outcome = Outcome::Failed;
    limit.failure = Some(Failure {
        class: FailureClass::OutputTimeout,
        detail: "Too many swaps: output timeout".into(),
    });
    let parts = contributions(&limit);
    assert_eq!(
        (parts[1].1.no_swap, parts[1].1.swaps),
        (1, 0),
        "without the share's failure the break keeps its credit"
    );
    limit.served_by[1].failure = Some(FailureClass::OutputTimeout);
    let parts = contributions(&limit);
    assert_eq!((parts[1].1.no_swap, parts[1].1.swaps), (0, 0));
    assert_eq!(parts[1].1.failed, 1);

    // A later share that produced no output is that orchestrator's startup failure.
    let mut dead = report.clone();
    dead.served_by[1].startup_ms = None;
    dead.served_by[1].frames_received = 0;
    let parts = contributions(&dead);
    assert_eq!(parts[1].1.startup_successes, 0);
    assert_eq!(parts[1].1.evidence_complete, 1);
}

#[test]
fn sessions_without_shares_keep_one_cell() {
    let mut report = network_example();
    report.served_by.clear();
    let whole = vec![(CellKey::of(&report), CellSums::from_sessions([&report]))];
    assert_eq!(contributions(&report), whole);
    // Direct mode ignores shares even if a writer filled them.
    let mut direct = network_example();
    direct.mode = TargetMode::Direct;
    assert_eq!(
        contributions(&direct),
        vec![(CellKey::of(&direct), CellSums::from_sessions([&direct]))]
    );
    // Through the cell map, the two shares land in two cells of the same hour.
    let mut cells = std::collections::BTreeMap::new();
    add_session(&mut cells, &network_example());
    assert_eq!(cells.len(), 2);
    assert_eq!(cells.values().map(|sums| sums.sessions).sum::<u64>(), 2);
}

#[test]
fn binary_sums_round_trip_exactly_on_random_cells() {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    for _ in 0..200 {
        let mut sums = CellSums::default();
        for _ in 0..rng.random_range(0..20) {
            let mut report = passed(
                rng.random_range(0..60),
                rng.random_range(0.0..700_000.0),
                rng.random_bool(0.8).then(|| rng.random_range(0.0..5000.0)),
                rng.random_range(0.0..130.0),
                rng.random_range(0.0..1.0),
            );
            if rng.random_bool(0.2) {
                report.outcome = Outcome::Failed;
            }
            stalls(
                &mut report,
                rng.random_range(1..5),
                rng.random_range(0.0..9000.0),
            );
            sums.add(&report);
        }
        // Extreme counters must survive too.
        sums.swaps = rng.random();
        sums.session_ms.sum_millionths = u64::MAX;
        let bytes = codec::encode(&sums);
        assert_eq!(codec::decode(&bytes), Ok(sums.clone()));
        let json = serde_json::to_string(&sums).expect("json");
        assert!(
            bytes.len() * 3 < json.len().max(60),
            "{} vs {}",
            bytes.len(),
            json.len()
        );
    }
}

/// The limits sla-hourly-like scenarios declare: first output within 8 s, median e2e within
/// 500 ms, at least 12 fps.
fn declared_slo() -> lvt_schema::SessionSlo {
    lvt_schema::SessionSlo {
        startup_ms: Some(8000.0),
        e2e_latency_ms: Some(500.0),
        output_fps: Some(12.0),
    }
}

/// `count` passed sessions of `length_s` seconds with the given measurements and the declared SLO.
fn held_to_slo(count: i64, length_s: i64, e2e_p50_ms: f64, output_fps: f64) -> Vec<SessionReport> {
    (0..count)
        .map(|minute| {
            let mut report = passed(minute, 1000.0, Some(e2e_p50_ms), output_fps, 0.02);
            report.ended_at_unix_ms = report.started_at_unix_ms + length_s * 1000;
            report.slo = Some(declared_slo());
            report
        })
        .collect()
}

/// A fresh collector's cohort: no rows at all.
fn empty_cohort() -> Cohort {
    Cohort::from_sums(&CellSums::default())
}

#[test]
fn the_declared_slo_is_counted_per_session_and_merges() {
    let mut sessions = held_to_slo(3, 60, 400.0, 14.0);
    // One slow to start, one over the e2e limit, one under the frame rate; one without an SLO.
    sessions[0].metrics.startup_ms = Some(9000.0);
    sessions[1].metrics.e2e_latency_ms = Some(latency(500.5));
    sessions[2].metrics.output_fps = Some(fps(11.9));
    sessions.push(passed(30, 100_000.0, Some(5000.0), 1.0, 0.0));
    let cell = CellSums::from_sessions(&sessions);
    assert_eq!((cell.slo_startup_met, cell.slo_startup_trials), (2, 3));
    assert_eq!((cell.slo_e2e_met, cell.slo_e2e_trials), (2, 3));
    assert_eq!((cell.slo_fps_met, cell.slo_fps_trials), (2, 3));
    assert_eq!((cell.completed, cell.completion_trials), (4, 4));
    let mut merged = CellSums::from_sessions(&sessions[..2]);
    merged.merge(&CellSums::from_sessions(&sessions[2..]));
    assert_eq!(merged, cell);
    let round_trip = codec::decode(&codec::encode(&cell)).expect("decodes");
    assert_eq!(round_trip, cell);
}

#[test]
fn lvt_v1_counts_sessions_that_die_before_their_planned_end() {
    // `good` runs every session to its end; `flaky` serves as well while it lives but loses every
    // session 12 s in, as the demo fleet's flaky orchestrator does.
    let good = CellSums::from_sessions(&held_to_slo(6, 60, 40.0, 30.0));
    let flaky_sessions: Vec<SessionReport> = held_to_slo(6, 60, 40.0, 30.0)
        .into_iter()
        .map(|mut report| {
            report.outcome = Outcome::Failed;
            report.failure = Some(Failure {
                class: FailureClass::RunnerError,
                detail: "runner exited".into(),
            });
            report.ended_at_unix_ms = report.started_at_unix_ms + 12_000;
            report
        })
        .collect();
    let flaky = CellSums::from_sessions(&flaky_sessions);
    assert_eq!((flaky.completed, flaky.completion_trials), (0, 6));

    let cohort = empty_cohort();
    let naap = (score(&good, &cohort), score(&flaky, &cohort));
    // naap-v1 sees the break only through the no-swap rate (0.2 of reliability).
    assert_close(naap.0.reliability, 1.0);
    assert_close(naap.1.reliability, 0.8);
    assert_eq!(naap.1.stall_score, None, "naap-v1 has no stall component");

    let lvt = (
        score_with(Formula::LvtV1, &good, &cohort),
        score_with(Formula::LvtV1, &flaky, &cohort),
    );
    assert_eq!(lvt.1.formula, Formula::LvtV1);
    assert_close(lvt.0.reliability, 1.0);
    assert_close(lvt.1.reliability, 0.3 + 0.3);
    assert_eq!(lvt.1.completion.map(|rate| rate.rate), Some(0.0));
    let gap = |pair: &(SlaScore, SlaScore)| pair.0.sla_score.unwrap() - pair.1.sla_score.unwrap();
    assert_close(Some(gap(&naap)), 100.0 * 0.7 * 0.2);
    assert_close(Some(gap(&lvt)), 100.0 * 0.6 * 0.4);
}

#[test]
fn lvt_v1_scores_stalls_that_naap_v1_never_sees() {
    // Eight-second sessions, one of which freezes 2 s in every session.
    let good = CellSums::from_sessions(&held_to_slo(10, 8, 40.0, 30.0));
    let frozen_sessions: Vec<SessionReport> = held_to_slo(10, 8, 40.0, 30.0)
        .into_iter()
        .map(|mut report| {
            stalls(&mut report, 1, 2000.0);
            report
        })
        .collect();
    let frozen = CellSums::from_sessions(&frozen_sessions);
    let cohort = empty_cohort();
    assert_eq!(
        score(&good, &cohort).sla_score,
        score(&frozen, &cohort).sla_score,
        "naap-v1 scores a stalling orchestrator as a smooth one"
    );
    let good = score_with(Formula::LvtV1, &good, &cohort);
    let frozen = score_with(Formula::LvtV1, &frozen, &cohort);
    assert_close(good.stall_score, 1.0);
    // 25 % of the time stalled and 7.5 stalls a minute: both halves at 0.
    assert_close(frozen.stall_time_fraction, 0.25);
    assert_close(frozen.stalls_per_minute, 7.5);
    assert_close(frozen.stall_score, 0.0);
    assert_close(
        Some(good.sla_score.unwrap() - frozen.sla_score.unwrap()),
        100.0 * 0.4 * 0.25,
    );
    // Half the tolerated stalled time and one stall a minute score half on each side.
    assert_close(Some(score::stall_score(Some(0.025), Some(1.0))), 0.5);
    assert_close(Some(score::stall_score(None, None)), 0.5);
}

#[test]
fn lvt_v1_scores_latency_and_fps_against_the_declared_slo_while_the_cohort_is_thin() {
    // The demo's `good` (40 ms, 30 fps) and `slow` (710 ms, 9 fps) on a fresh collector.
    let good = CellSums::from_sessions(&held_to_slo(10, 60, 40.0, 30.0));
    let slow = CellSums::from_sessions(&held_to_slo(10, 60, 710.0, 9.0));
    let cohort = empty_cohort();
    let naap = (score(&good, &cohort), score(&slow, &cohort));
    assert_eq!(naap.0.sla_score, naap.1.sla_score, "naap-v1 ties them");
    assert_close(naap.0.sla_score, 85.0);
    assert_eq!(naap.0.e2e_basis, Some(Basis::Neutral));

    let good = score_with(Formula::LvtV1, &good, &cohort);
    let slow = score_with(Formula::LvtV1, &slow, &cohort);
    assert_eq!(
        (good.ptff_basis, good.e2e_basis, good.fps_basis),
        (Some(Basis::Slo), Some(Basis::Slo), Some(Basis::Slo))
    );
    // Ten sessions give latency full weight; FPS takes 30 samples to (damped toward 0.5).
    assert_close(good.latency, 1.0);
    assert_close(good.fps_score, 0.5 + 10.0 / 30.0 * 0.5);
    assert_close(
        good.sla_score,
        100.0 * (0.6 + 0.4 * (0.45 + 0.3 * (0.5 + 10.0 / 60.0) + 0.25)),
    );
    // slow starts within its 8 s but misses the e2e and FPS limits in every session.
    assert_close(slow.ptff_score, 1.0);
    assert_close(slow.e2e_score, 0.0);
    assert_close(slow.fps_score, 0.5 + 10.0 / 30.0 * (0.0 - 0.5));
    let quality = 0.45 * 0.6 + 0.3 * (0.5 - 10.0 / 60.0) + 0.25;
    assert_close(slow.quality, quality);
    assert_close(slow.sla_score, 100.0 * (0.6 + 0.4 * quality));

    // Once the cohort is a benchmark, both formulas score against it, SLO or not.
    let grown = Cohort {
        rows: 500,
        startup_rows: 500,
        e2e_rows: 500,
        fps_rows: 500,
        startup_p50_ms: Some(1000.0),
        startup_p90_ms: Some(3000.0),
        e2e_p50_ms: Some(100.0),
        e2e_p90_ms: Some(900.0),
        fps_p10: Some(8.0),
        fps_p50: Some(20.0),
    };
    let slow_sums = CellSums::from_sessions(&held_to_slo(10, 60, 710.0, 9.0));
    let against_cohort = score_with(Formula::LvtV1, &slow_sums, &grown);
    assert_eq!(against_cohort.e2e_basis, Some(Basis::Cohort));
    assert_eq!(
        against_cohort.e2e_score,
        score(&slow_sums, &grown).e2e_score
    );
    // Without a declared SLO, lvt-v1 falls back on neutral as naap-v1 does.
    let undeclared: Vec<SessionReport> = held_to_slo(10, 60, 710.0, 9.0)
        .into_iter()
        .map(|mut report| {
            report.slo = None;
            report
        })
        .collect();
    let neutral = score_with(
        Formula::LvtV1,
        &CellSums::from_sessions(&undeclared),
        &cohort,
    );
    assert_eq!(neutral.e2e_basis, Some(Basis::Neutral));
    assert_close(neutral.latency, 0.5);
}

#[test]
fn formulas_are_named_as_the_api_spells_them() {
    for formula in Formula::ALL {
        assert_eq!(Formula::from_name(formula.name()), Some(formula));
        assert_eq!(
            serde_json::to_value(formula).unwrap(),
            serde_json::json!(formula.name())
        );
    }
    assert_eq!(Formula::from_name("NAAP-V1"), None);
    assert_eq!(Formula::default(), Formula::NaapV1);
}

/// Example 3 of docs/sla.md: lvt-v1 on a fresh collector, every session held to the declared SLO.
fn example_three_sessions() -> Vec<SessionReport> {
    let with_slo = |mut report: SessionReport| {
        report.slo = Some(declared_slo());
        report
    };
    let mut lagging = passed(20, 1800.0, Some(620.0), 11.0, 0.08);
    stalls(&mut lagging, 1, 3000.0);
    let mut crashed = passed(30, 1500.0, Some(400.0), 14.0, 0.04);
    crashed.outcome = Outcome::Failed;
    crashed.failure = Some(Failure {
        class: FailureClass::RunnerError,
        detail: "runner exited".into(),
    });
    crashed.ended_at_unix_ms = crashed.started_at_unix_ms + 20_000;
    vec![
        with_slo(passed(0, 1200.0, Some(350.0), 15.0, 0.03)),
        with_slo(passed(10, 1200.0, Some(350.0), 15.0, 0.03)),
        with_slo(lagging),
        with_slo(crashed),
    ]
}

/// The results block the document shows for an lvt-v1 example.
fn render_lvt(score: &SlaScore, naap: &SlaScore) -> String {
    let basis = |basis: Option<Basis>| {
        basis.map_or_else(
            || "null".to_owned(),
            |basis| {
                serde_json::to_value(basis)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            },
        )
    };
    let lines = [
        ("formula", score.formula.name().to_owned()),
        ("startup_success", rate(score.startup_success)),
        ("completion", rate(score.completion)),
        ("no_swap", rate(score.no_swap)),
        ("output_viability", rate(score.output_viability)),
        ("reliability", number(score.reliability, 4)),
        ("slo_startup", rate(score.slo_startup)),
        (
            "ptff_score",
            format!(
                "{} ({})",
                number(score.ptff_score, 4),
                basis(score.ptff_basis)
            ),
        ),
        ("slo_e2e", rate(score.slo_e2e)),
        (
            "e2e_score",
            format!(
                "{} ({})",
                number(score.e2e_score, 4),
                basis(score.e2e_basis)
            ),
        ),
        ("latency", number(score.latency, 4)),
        ("slo_fps", rate(score.slo_fps)),
        (
            "fps_score",
            format!(
                "{} ({})",
                number(score.fps_score, 4),
                basis(score.fps_basis)
            ),
        ),
        ("stalls_per_minute", number(score.stalls_per_minute, 4)),
        ("stall_time_fraction", number(score.stall_time_fraction, 4)),
        ("stall_score", number(score.stall_score, 4)),
        ("quality", number(score.quality, 4)),
        (
            "health_signal_coverage",
            number(score.health_signal_coverage, 4),
        ),
        ("sla_score", number(score.sla_score, 2)),
        ("naap-v1 sla_score", number(naap.sla_score, 2)),
    ];
    lines
        .iter()
        .map(|(name, value)| format!("{name:<23}{value}\n"))
        .collect()
}

#[test]
fn worked_example_three_matches_hand_computation_and_doc() {
    let cell = CellSums::from_sessions(&example_three_sessions());
    let cohort = empty_cohort();
    let lvt = score_with(Formula::LvtV1, &cell, &cohort);
    let naap = score(&cell, &cohort);
    assert_close(lvt.reliability, 0.3 + 0.3 * 0.75 + 0.1 * 0.75 + 0.3);
    assert_close(lvt.ptff_score, 0.5 + 0.4 * 0.5);
    assert_close(lvt.e2e_score, 0.5 + 0.4 * 0.25);
    assert_close(lvt.fps_score, 0.5 + 4.0 / 30.0 * 0.25);
    assert_close(lvt.latency, 0.6 * 0.7 + 0.4 * 0.6);
    let stall_score = 0.5 * (1.0 - 0.3 / 2.0) + 0.5 * (1.0 - 0.015 / 0.05);
    assert_close(lvt.stall_score, stall_score);
    let quality = 0.45 * 0.66 + 0.3 * (0.5 + 4.0 / 30.0 * 0.25) + 0.25 * stall_score;
    assert_close(lvt.quality, quality);
    assert_close(lvt.sla_score, 100.0 * (0.6 * 0.9 + 0.4 * quality));
    assert_close(naap.sla_score, 100.0 * (0.7 * 0.95 + 0.3 * 0.5));

    let block = render_lvt(&lvt, &naap);
    assert!(
        SLA_DOC.contains(&block),
        "docs/sla.md must show example 3 as:\n{block}"
    );
}

#[test]
fn only_a_verified_address_keys_a_test_load_cell() {
    use lvt_schema::AddressCheck;
    let honest = passed(0, 900.0, Some(300.0), 24.0, 0.0);
    let address = "0xabc0000000000000000000000000000000000001";
    assert_eq!(CellKey::of(&honest).orchestrator, address);
    // An impostor claiming the same address from its own URI, as each check can leave it.
    let impostor = |check: Option<AddressCheck>| {
        let mut report = honest.clone();
        let orchestrator = report.orchestrator.as_mut().expect("set");
        orchestrator.uri = "https://impostor.example:8935".into();
        orchestrator.address_check = check;
        report.outcome = Outcome::Failed;
        report.failure = Some(Failure {
            class: FailureClass::RunnerError,
            detail: "crashed".into(),
        });
        report
    };
    for check in [
        None,
        Some(AddressCheck::Unverified {
            reason: "no chain".into(),
        }),
        Some(AddressCheck::Mismatch {
            registered_uri: Some("https://o1.example:8935".into()),
        }),
    ] {
        let report = impostor(check.clone());
        assert_eq!(
            CellKey::of(&report).orchestrator,
            "https://impostor.example:8935",
            "{check:?}"
        );
        // Its failures land in its own cell, not in the honest orchestrator's.
        let mut cells = std::collections::BTreeMap::new();
        add_session(&mut cells, &honest);
        add_session(&mut cells, &report);
        let honest_cell = &cells[&CellKey::of(&honest)];
        assert_eq!((honest_cell.passed, honest_cell.failed), (1, 0));
    }
    // A network share is keyed the same way.
    let mut network = honest.clone();
    network.mode = TargetMode::Network;
    network.served_by = vec![lvt_schema::ServedBy {
        orchestrator: impostor(None).orchestrator.expect("set"),
        gpu: None,
        from_unix_ms: network.started_at_unix_ms,
        to_unix_ms: network.ended_at_unix_ms,
        startup_ms: Some(900.0),
        frames_received: 10,
        e2e_latency_ms: None,
        output_fps: Some(fps(24.0)),
        stalls: StallSummary::default(),
        ended_by: None,
        failure: None,
    }];
    let keys: Vec<String> = contributions(&network)
        .into_iter()
        .map(|(key, _)| key.orchestrator)
        .collect();
    assert_eq!(keys, ["https://impostor.example:8935"]);
    // Organic records carry the gateway's own view, keyed by address as NaaP keys them.
    let mut organic = impostor(None);
    organic.is_test_load = false;
    assert_eq!(CellKey::of(&organic).orchestrator, address);
}

#[test]
fn gateway_sessions_are_kept_but_add_to_no_cell() {
    // A passed session through a gateway, pinned to a substring of o1's URL: still no
    // orchestrator's evidence, and no cell of an unnamed orchestrator either.
    let mut report = session(Outcome::Passed, 5, 60);
    report.mode = TargetMode::Gateway;
    report.orchestrator = None;
    report.metrics.e2e_latency_ms = Some(latency(180.0));
    report.metrics.gateway = Some(lvt_schema::GatewayFigures {
        url: Some("http://gw.example:8937".into()),
        orchestrator_pin: Some("o1.example".into()),
        ..Default::default()
    });
    assert!(contributions(&report).is_empty());
    let mut cells = std::collections::BTreeMap::new();
    add_session(&mut cells, &report);
    assert!(cells.is_empty());
    // The same session in direct mode does add to o1's cell: the rule is the mode's.
    report.mode = TargetMode::Direct;
    report.orchestrator = session(Outcome::Passed, 5, 60).orchestrator;
    assert_eq!(contributions(&report).len(), 1);
}
