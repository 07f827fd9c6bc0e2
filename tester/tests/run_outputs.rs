//! The files a run writes: `run.json` round-trips through serde, `junit.xml` and
//! `report.html` are well-formed XML with the expected test cases and charts, input is escaped,
//! and the page names no external URL.

use lvt_schema::{
    Complexity, Failure, FailureClass, FpsSummary, LatencySummary, Outcome, SessionMetrics,
    SessionReport,
};
use lvt_tester::run::output::{RunReport, exit_code, write_outputs};
use lvt_tester::run::record::{ScenarioIdentity, SessionRecord, StartKind, StopReason};
use lvt_tester::run::verdict::VerdictStatus;
use lvt_tester::scenario::Scenario;

/// A session record around a `SessionReport`, as the executor produces them.
fn session(
    index: u64,
    target: &str,
    complexity: Complexity,
    outcome: Outcome,
    startup_ms: Option<f64>,
) -> SessionRecord {
    let mut metrics = SessionMetrics {
        job_start_ms: (outcome != Outcome::UnscoredBusy).then_some(35.0),
        startup_ms,
        ..SessionMetrics::default()
    };
    if startup_ms.is_some() {
        metrics.e2e_latency_ms = Some(LatencySummary {
            count: 300,
            p50: 250.0 + index as f64,
            p90: 400.0,
            p95: 420.0,
            p99: 480.0,
            max: 500.0,
            mean: 260.0,
            min: 200.0,
        });
        metrics.output_fps = Some(FpsSummary {
            mean: 29.0,
            p5: 27.0,
            p50: 29.0,
            windows: 9,
        });
        metrics.fps_jitter = Some(0.03);
    }
    let failure = (outcome == Outcome::Failed).then(|| Failure {
        class: FailureClass::OutputTimeout,
        detail: "no output within 30 s <timeout> & \"more\"".into(),
    });
    SessionRecord {
        index,
        target: target.into(),
        prompt_id: format!("prompt-{index}"),
        complexity,
        start: if index == 0 {
            StartKind::Cold
        } else {
            StartKind::Warm
        },
        scheduled_at_ms: index as f64 * 2500.0,
        queue_delay_ms: 0.0,
        startup_from_schedule_ms: startup_ms,
        report: SessionReport {
            ended_at_unix_ms: 1_764_000_010_000 + index as i64 * 2500,
            outcome,
            failure,
            metrics,
            ..SessionReport::new(
                format!("session-{index}"),
                "noop",
                1_764_000_000_000 + index as i64 * 2500,
            )
        },
    }
}

const SCENARIO: &str = r#"
id = "smoke"
version = "1.2.0"
description = "Smoke <test> & 'quotes' \"double\" with a control char \u0001"
tags = ["ci"]
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "plain"
complexity = "low"

[session]
duration_s = 10

[targets]
source = "explicit"
uris = ["127.0.0.1:1"]

[load]
executor = "closed"
sessions_per_target = 2
concurrency = 1

[[thresholds]]
expr = "startup_ms.p95 < 8000"

[[thresholds]]
expr = "failure_rate < 0.05"

[[thresholds]]
expr = "output_fps.p50 >= 12"
where = { complexity = "high" }

[[thresholds]]
expr = "swaps.max <= 1"
"#;

fn scenario() -> Scenario {
    toml::from_str(SCENARIO).expect("the test scenario is valid TOML of the scenario format")
}

fn identity() -> ScenarioIdentity {
    ScenarioIdentity {
        id: "smoke".into(),
        version: "1.2.0".into(),
        sha256: "ab".repeat(32),
        path: Some("scenarios/smoke&<x>.toml".into()),
        git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        git_path: Some("scenarios/smoke.toml".into()),
        git_dirty: Some(true),
        git_repository: None,
    }
}

/// A run with a passed, a failed (no output) and a busy session on two targets, with a target
/// URI that needs escaping.
fn report() -> RunReport {
    let sessions = vec![
        session(
            0,
            "127.0.0.1:1",
            Complexity::Low,
            Outcome::Passed,
            Some(1500.0),
        ),
        session(1, "127.0.0.1:1", Complexity::Low, Outcome::Failed, None),
        session(
            2,
            "evil<&>\"'.example:1",
            Complexity::Low,
            Outcome::UnscoredBusy,
            None,
        ),
    ];
    RunReport::build(
        identity(),
        &scenario(),
        1_764_000_000_000,
        1_764_000_042_500,
        StopReason::Completed,
        vec!["127.0.0.1:1".into(), "evil<&>\"'.example:1".into()],
        sessions,
        0,
        1,
    )
}

#[test]
fn build_computes_groups_overall_and_verdicts() {
    let r = report();
    assert_eq!(
        r.format_version,
        lvt_tester::run::record::RUN_FORMAT_VERSION
    );
    assert_eq!(r.groups.len(), 2);
    assert_eq!(r.overall.sessions, 3);
    let statuses: Vec<VerdictStatus> = r.verdicts.iter().map(|v| v.status).collect();
    // startup p95 over the one session with output passes; 1 failed of 2 scored is a 50 %
    // failure rate; no high-complexity session ran, so that threshold cannot be verified.
    assert_eq!(
        statuses,
        [
            VerdictStatus::Pass,
            VerdictStatus::Fail,
            VerdictStatus::NoData,
            VerdictStatus::Pass
        ]
    );
    assert_eq!(exit_code(&r), 99);
    assert_eq!(r.load["executor"], "closed");
    assert_eq!(r.load["sessions_per_target"], 2);
}

#[test]
fn a_run_whose_thresholds_all_pass_exits_0() {
    let mut scenario = scenario();
    scenario.thresholds.truncate(1);
    let sessions = vec![session(
        0,
        "127.0.0.1:1",
        Complexity::Low,
        Outcome::Passed,
        Some(900.0),
    )];
    let r = RunReport::build(
        identity(),
        &scenario,
        0,
        1000,
        StopReason::Completed,
        vec![],
        sessions,
        0,
        1,
    );
    assert_eq!(exit_code(&r), 0);
}

#[test]
fn run_json_round_trips_through_serde() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("nested/out");
    let r = report();
    let paths = write_outputs(&r, &out).expect("outputs are written");
    assert_eq!(paths.run_json, out.join("run.json"));
    let text = std::fs::read_to_string(&paths.run_json).expect("run.json exists");
    let back: RunReport = serde_json::from_str(&text).expect("run.json parses as a RunReport");
    assert_eq!(back, r);
    let v: serde_json::Value = serde_json::from_str(&text).expect("run.json is JSON");
    assert_eq!(v["stop"]["reason"], "completed");
    assert_eq!(v["verdicts"][2]["status"], "no_data");
    assert_eq!(v["groups"][0]["key"][0][0], "target");
    // No data is null, never 0.
    assert!(v["groups"][0]["startup_ms"]["p50"].is_number());
    assert!(v["groups"][1]["startup_ms"]["p50"].is_null());
    // Only the three outputs are left behind: no temporary files.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("the output directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["junit.xml", "report.html", "run.json"]);
}

#[test]
fn junit_xml_is_well_formed_with_one_case_per_threshold() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let r = report();
    let paths = write_outputs(&r, dir.path()).expect("outputs are written");
    let text = std::fs::read_to_string(&paths.junit_xml).expect("junit.xml exists");
    let doc = roxmltree::Document::parse(&text).expect("junit.xml is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.attribute("name"), Some("smoke@1.2.0"));
    assert_eq!(suite.attribute("tests"), Some("4"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    assert_eq!(suite.attribute("time"), Some("42.500"));
    assert_eq!(root.attribute("failures"), Some("2"));
    let property = |name: &str| {
        suite
            .descendants()
            .find(|n| n.has_tag_name("property") && n.attribute("name") == Some(name))
            .and_then(|n| n.attribute("value"))
    };
    assert_eq!(property("scenario.sha256"), Some("ab".repeat(32).as_str()));
    assert_eq!(
        property("scenario.git_commit"),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    assert_eq!(property("scenario.path"), Some("scenarios/smoke&<x>.toml"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert_eq!(
        names,
        [
            "startup_ms.p95 < 8000",
            "failure_rate < 0.05",
            "output_fps.p50 >= 12 where complexity=high",
            "swaps.max <= 1"
        ]
    );
    assert!(
        cases
            .iter()
            .all(|c| c.attribute("classname") == Some("thresholds"))
    );
    let failures: Vec<_> = cases
        .iter()
        .filter_map(|c| c.children().find(|n| n.has_tag_name("failure")))
        .collect();
    assert_eq!(failures.len(), 2);
    assert!(
        failures
            .iter()
            .all(|f| f.attribute("type") == Some("threshold"))
    );
    assert_eq!(
        failures[0].attribute("message"),
        Some(r.verdicts[1].message.as_str())
    );
    assert!(
        failures[1]
            .attribute("message")
            .is_some_and(|m| m.starts_with("no session has a output_fps value")),
        "{failures:?}"
    );
}

/// Asserts the page loads or links nothing: no attribute but the namespace holds a URL, and the
/// stylesheet imports nothing.
fn assert_loads_nothing(doc: &roxmltree::Document<'_>) {
    for node in doc.descendants() {
        for a in node.attributes() {
            assert!(
                !a.value().contains("://") || a.value() == "http://www.w3.org/1999/xhtml",
                "attribute {}={:?} holds a URL",
                a.name(),
                a.value()
            );
        }
        if node.has_tag_name("style") {
            let css = node.text().unwrap_or_default();
            assert!(!css.contains("url(") && !css.contains("@import"), "{css}");
        }
    }
}

fn parse_html(text: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(text, options).expect("report.html is well-formed")
}

#[test]
fn report_html_is_well_formed_self_contained_and_escaped() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let r = report();
    let paths = write_outputs(&r, dir.path()).expect("outputs are written");
    let text = std::fs::read_to_string(&paths.report_html).expect("report.html exists");
    assert!(text.starts_with("<!DOCTYPE html>\n"));
    let doc = parse_html(&text);
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "html");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/1999/xhtml")
    );
    // One inline SVG per chart, and no script.
    let svgs = root.descendants().filter(|n| n.has_tag_name("svg")).count();
    assert_eq!(svgs, 3);
    assert_eq!(text.matches("<svg").count(), 3);
    assert!(!text.contains("<script"));
    // No external URL: the only "http" is the XHTML namespace.
    let without_ns = text.replacen("http://www.w3.org/1999/xhtml", "", 1);
    assert!(
        !without_ns.contains("http://"),
        "report.html names an http URL"
    );
    assert!(
        !without_ns.contains("https://"),
        "report.html names an https URL"
    );
    assert_loads_nothing(&doc);
    // Input is escaped: the evil target arrives as text, never as markup.
    let all_text: String = root
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    assert!(all_text.contains("evil<&>\"'.example:1"));
    assert!(all_text.contains("Smoke <test> & 'quotes' \"double\""));
    assert!(
        !text.contains('\u{1}'),
        "a control character reached the page"
    );
    // The verdicts are there, coloured by status.
    let cells: Vec<(&str, &str)> = root
        .descendants()
        .filter(|n| n.has_tag_name("td") && n.attribute("class").is_some())
        .filter_map(|n| Some((n.attribute("class")?, n.text()?)))
        .filter(|(class, _)| *class != "num")
        .collect();
    assert_eq!(
        cells,
        [
            ("pass", "PASS"),
            ("fail", "FAIL"),
            ("nodata", "NO DATA"),
            ("pass", "PASS")
        ]
    );
    // The scatter has one point per session: the two without output in the "no output" band.
    let circles = root
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert_eq!(circles, 3);
}

#[test]
fn report_html_of_an_empty_run_is_still_well_formed() {
    let r = RunReport::build(
        identity(),
        &scenario(),
        0,
        0,
        StopReason::Interrupted,
        vec![],
        vec![],
        0,
        0,
    );
    let text = lvt_tester::run::html::report_html(&r);
    let doc = parse_html(&text);
    let svgs = doc
        .root_element()
        .descendants()
        .filter(|n| n.has_tag_name("svg"))
        .count();
    assert_eq!(svgs, 3);
    let junit = lvt_tester::run::junit::junit_xml(&r);
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml is well-formed XML");
    assert_eq!(doc.root_element().attribute("failures"), Some("4"));
    assert_eq!(exit_code(&r), 99);
}

#[test]
fn report_html_shows_target_urls_as_text_only() {
    let target = "https://o.example:8935/?a=1&b=<2>";
    let sessions = vec![session(
        0,
        target,
        Complexity::High,
        Outcome::Passed,
        Some(700.0),
    )];
    let r = RunReport::build(
        identity(),
        &scenario(),
        0,
        10_000,
        StopReason::Aborted {
            threshold: "failure_rate < 0.05".into(),
        },
        vec![target.into()],
        sessions,
        0,
        1,
    );
    let text = lvt_tester::run::html::report_html(&r);
    let doc = parse_html(&text);
    assert_loads_nothing(&doc);
    let all_text: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    assert!(all_text.contains(target));
    assert!(all_text.contains("aborted: threshold failure_rate < 0.05 failed"));
}

#[test]
fn a_run_adds_up_what_its_sessions_paid_on_chain() {
    let offchain = report();
    assert_eq!(offchain.payment, None, "nothing paid, nothing said");
    let text = serde_json::to_string(&offchain).unwrap();
    assert!(
        !text.contains("\"payment\""),
        "absent from run.json offchain"
    );

    let mut sessions = offchain.sessions.clone();
    let paid = |tickets, wei: &str| {
        Some(lvt_schema::PaymentSpent {
            tickets,
            expected_value_wei: wei.into(),
        })
    };
    // Above what a u64 holds: the sum is exact in u128.
    sessions[0].report.payment = paid(3, "18446744073709551615");
    sessions[1].report.payment = paid(2, "1000000000000");
    // The busy session paid nothing: no job started.
    let run = RunReport::build(
        identity(),
        &scenario(),
        1_764_000_000_000,
        1_764_000_042_500,
        StopReason::Completed,
        offchain.targets.clone(),
        sessions,
        0,
        1,
    );
    assert_eq!(run.payment, paid(5, "18446745073709551615"));
    let html = lvt_tester::run::html::report_html(&run);
    assert!(
        html.contains("5 ticket(s), 18446745073709551615 wei expected value"),
        "{html}"
    );
}
