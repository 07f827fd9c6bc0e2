//! Unit tests of the scenario module: the threshold expression parser (through one `check`
//! harness), positions in characters, the canonical hash and git identity.

use std::path::Path;
use std::process::Command;

use super::identity::{canonical_json, canonical_sha256, identify};
use super::threshold::{Metric, Op, Rate, Stat, Subject, ThresholdExpr, edit_distance, nearest};
use super::validate::{load_str, position_for_tests};

/// Parses `input` and compares with `expected`: `Ok(rendered)` for a valid expression (its
/// `Display`), or `Err((offset, message, hint))` for an error.
fn check(input: &str, expected: Result<&str, (usize, &str, Option<&str>)>) {
    match (ThresholdExpr::parse(input), expected) {
        (Ok(expr), Ok(rendered)) => assert_eq!(expr.to_string(), rendered, "{input:?}"),
        (Err(error), Err((offset, message, hint))) => {
            assert_eq!(
                (error.offset, error.message.as_str(), error.hint.as_deref()),
                (offset, message, hint),
                "{input:?}"
            );
            assert!(!error.expected.is_empty());
        }
        (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn threshold_expressions_parse() {
    check("startup_ms.p95 < 8000", Ok("startup_ms.p95 < 8000"));
    check("output_fps.p50>=12", Ok("output_fps.p50 >= 12"));
    check("  failure_rate <0.05 ", Ok("failure_rate < 0.05"));
    check("swaps.max <= 1", Ok("swaps.max <= 1"));
    check("stalls.count != -0", Ok("stalls.count != -0"));
    check(
        "e2e_latency_ms.mean == 1.5e3",
        Ok("e2e_latency_ms.mean == 1500"),
    );
    check("fps_jitter.p99 > .25", Ok("fps_jitter.p99 > 0.25"));
    check("busy_rate >= 1E-2", Ok("busy_rate >= 0.01"));
    let parsed = ThresholdExpr::parse("queue_delay_ms.p10 > 3").expect("valid");
    assert_eq!(
        parsed,
        ThresholdExpr {
            subject: Subject::Metric {
                metric: Metric::QueueDelayMs,
                stat: Stat::P10
            },
            op: Op::Gt,
            limit: 3.0
        }
    );
    assert_eq!(
        ThresholdExpr::parse("unscored_rate < 1").map(|e| e.subject),
        Ok(Subject::Rate(Rate::UnscoredRate))
    );
}

#[test]
fn every_catalog_name_parses() {
    for metric in Metric::ALL {
        for stat in Stat::ALL {
            let text = format!("{}.{} < 1", metric.as_str(), stat.as_str());
            let parsed = ThresholdExpr::parse(&text).expect("catalog name");
            assert_eq!(parsed.subject, Subject::Metric { metric, stat });
        }
    }
    for rate in Rate::ALL {
        let parsed = ThresholdExpr::parse(&format!("{} < 1", rate.as_str())).expect("rate");
        assert_eq!(parsed.subject, Subject::Rate(rate));
    }
}

#[test]
fn threshold_errors_say_where_and_why() {
    check(
        "startup.p95 < 8000",
        Err((
            0,
            "unknown metric `startup`",
            Some("did you mean `startup_ms`?"),
        )),
    );
    check(
        "  stalss.max < 1",
        Err((2, "unknown metric `stalss`", Some("did you mean `stalls`?"))),
    );
    check(
        "failure_rate.p95 < 0.05",
        Err((
            12,
            "`failure_rate` is a rate and takes no statistic",
            Some("remove `.p95`: rates compare directly, as in `failure_rate < 0.05`"),
        )),
    );
    check(
        "startup_ms < 8000",
        Err((
            10,
            "metric `startup_ms` needs a statistic",
            Some(
                "add a statistic: min, max, mean, p5, p10, p50, p90, p95, p99, count (for example `startup_ms.p95`)",
            ),
        )),
    );
    check(
        "startup_ms.p97 < 1",
        Err((11, "unknown statistic `p97`", Some("did you mean `p90`?"))),
    );
    check(
        "startup_ms. < 1",
        Err((11, "missing statistic after `startup_ms.`", None)),
    );
    check(
        "swaps.max = 1",
        Err((
            10,
            "unknown operator `=`",
            Some("use `==` to compare for equality"),
        )),
    );
    check(
        "swaps.max 1",
        Err((
            10,
            "missing comparison operator",
            Some("write for example `startup_ms.p95 < 8000`"),
        )),
    );
    check("swaps.max <", Err((11, "missing number", None)));
    check(
        "swaps.max < inf",
        Err((
            12,
            "`inf` is not a number",
            Some("units are implied by the metric's name (ms, fps, count); write only the number"),
        )),
    );
    check(
        "swaps.max < 1_000",
        Err((
            12,
            "`1_000` is not a number",
            Some("digit separators are not allowed: write `10000`"),
        )),
    );
    check(
        "swaps.max < 1 and stalls.max < 1",
        Err((
            14,
            "unexpected `and stalls.max < 1` after the number",
            Some(
                "a threshold compares one subject with one number; write one threshold per condition",
            ),
        )),
    );
    check("", Err((0, "expected a metric or a rate", None)));
    check("é < 1", Err((0, "expected a metric or a rate", None)));
    check(
        "1e < 1",
        Err((
            0,
            "unknown metric `1e`",
            Some(
                "metrics are startup_ms, e2e_latency_ms, e2e_latency_p95_ms, output_fps, output_fps_p5, fps_jitter, frame_interval_jitter_ms, stalls, stall_ms, get_orchestrator_ms, job_start_ms, swaps, media_errors, queue_delay_ms",
            ),
        )),
    );
}

#[test]
fn nearest_names_are_typos_or_prefixes() {
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("é", "e"), 1);
    assert_eq!(
        nearest("startup", ["startup_ms", "stalls"]),
        Some("startup_ms")
    );
    assert_eq!(
        nearest("concurency", ["concurrency", "seed"]),
        Some("concurrency")
    );
    assert_eq!(nearest("zzz", ["concurrency", "seed"]), None);
}

#[test]
fn columns_count_characters_not_bytes() {
    let text = "a = \"é\"\nbé = 1\n";
    assert_eq!(position_for_tests(text, 0), (1, 1));
    // The closing quote of line 1: `é` is two bytes but one column.
    assert_eq!(position_for_tests(text, 7), (1, 7));
    // `=` on line 2 is at byte 13 (after "bé "), column 4.
    assert_eq!(position_for_tests(text, 13), (2, 4));
    // Past the end and inside a character clamp instead of panicking.
    assert_eq!(position_for_tests(text, 999), (3, 1));
    assert_eq!(position_for_tests(text, 6), (1, 6));
}

const SCENARIO: &str = r#"
id = "identity"
version = "1.0.0"
description = "Identity test."
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "p"
complexity = "low"
params = { b = 1, a = { z = 1, y = 2 } }

[session]
duration_s = 10

[targets]
source = "explicit"
uris = ["127.0.0.1:8935"]

[load]
executor = "closed"
sessions_per_target = 1
concurrency = 1
"#;

#[test]
fn canonical_hash_ignores_formatting_but_not_meaning() {
    let scenario = load_str("a.toml", SCENARIO).expect("valid");
    let reformatted = SCENARIO
        .replace(
            "params = { b = 1, a = { z = 1, y = 2 } }",
            "params.a = { y = 2, z = 1 }\nparams.b = 1",
        )
        .replace("id = \"identity\"", "# A comment.\nid    =   \"identity\"");
    let same = load_str("b.toml", &reformatted).expect("valid");
    assert_eq!(canonical_sha256(&scenario), canonical_sha256(&same));
    let changed = load_str(
        "c.toml",
        &SCENARIO.replace("duration_s = 10", "duration_s = 11"),
    )
    .expect("valid");
    assert_ne!(canonical_sha256(&scenario), canonical_sha256(&changed));

    let json = canonical_json(&scenario);
    assert!(
        json.contains(r#""params":{"a":{"y":2,"z":1},"b":1}"#),
        "{json}"
    );
    assert!(
        !json.contains(": ") && !json.contains('\n'),
        "compact: {json}"
    );
    let hash = canonical_sha256(&scenario);
    assert_eq!(hash.len(), 64);
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=lvt", "-c", "user.email=lvt@example.com"])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git runs");
    assert!(status.status.success(), "git {args:?}: {status:?}");
}

#[test]
fn identity_records_git_commit_path_and_dirtiness() {
    let scenario = load_str("s.toml", SCENARIO).expect("valid");
    let repo = tempfile::tempdir().expect("tempdir");
    let dir = repo.path().join("scenarios");
    std::fs::create_dir(&dir).expect("mkdir");
    let file = dir.join("identity.toml");
    std::fs::write(&file, SCENARIO).expect("write");

    // Not a repository yet: no git fields, no error.
    let outside = identify(&scenario, Some(&file));
    assert_eq!(outside.id, "identity");
    assert_eq!(outside.version, "1.0.0");
    assert_eq!(outside.sha256, canonical_sha256(&scenario));
    assert_eq!(
        outside.path.as_deref(),
        Some(file.display().to_string().as_str())
    );
    assert_eq!(
        (outside.git_commit, outside.git_path, outside.git_dirty),
        (None, None, None)
    );

    git(repo.path(), &["init", "-q"]);
    std::fs::write(repo.path().join("README"), "x").expect("write");
    git(repo.path(), &["add", "README"]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    // In a repository but untracked: dirty, no repository path.
    let untracked = identify(&scenario, Some(&file));
    assert!(untracked.git_commit.is_some());
    assert_eq!(
        (untracked.git_path, untracked.git_dirty),
        (None, Some(true))
    );

    git(repo.path(), &["add", "scenarios/identity.toml"]);
    git(repo.path(), &["commit", "-q", "-m", "scenario"]);
    let clean = identify(&scenario, Some(&file));
    let commit = clean.git_commit.clone().expect("commit");
    assert_eq!(commit.len(), 40);
    assert_ne!(Some(commit.clone()), untracked.git_commit);
    assert_eq!(clean.git_path.as_deref(), Some("scenarios/identity.toml"));
    assert_eq!(clean.git_dirty, Some(false));

    std::fs::write(&file, format!("{SCENARIO}\n# edited\n")).expect("write");
    let dirty = identify(&scenario, Some(&file));
    assert_eq!(dirty.git_commit, Some(commit));
    assert_eq!(dirty.git_path.as_deref(), Some("scenarios/identity.toml"));
    assert_eq!(dirty.git_dirty, Some(true));

    let embedded = identify(&scenario, None);
    assert_eq!((embedded.path, embedded.git_commit), (None, None));
}

#[test]
fn a_threshold_on_the_retired_params_update_latency_is_refused_with_the_reason() {
    let e = ThresholdExpr::parse("params_update_latency_ms.p95 < 12000").expect_err("refused");
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("`params_update_latency_ms` is no longer measured"),
        "{text}"
    );
    assert!(text.contains("status about every 10 s"), "{text}");
}
