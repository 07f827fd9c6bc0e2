//! `lvt validate --base REF`, the CI gate of a scenario repository, run exactly as the
//! workflow in docs/scenarios.md runs it: in a clone of a real repository, on a branch, against
//! `origin/main`. A change without a version bump fails with a located error and a GitHub
//! annotation; the same change with a bump passes; a removed scenario is a notice.

mod common;

use std::path::Path;
use std::process::Command;

use common::git_server::git;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `lvt validate ARGS` in `dir` with `github` as GITHUB_ACTIONS; returns the exit code,
/// stdout and stderr.
fn validate(dir: &Path, args: &[&str], github: bool) -> (Option<i32>, String, String) {
    let mut command = Command::new(LVT);
    command.current_dir(dir).arg("validate").args(args);
    if github {
        command.env("GITHUB_ACTIONS", "true");
    } else {
        command.env_remove("GITHUB_ACTIONS");
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The 1-based line of the first line of `text` starting with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

#[test]
fn validate_base_refuses_an_unbumped_change_and_accepts_a_bumped_one() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream");
    std::fs::create_dir_all(upstream.join("scenarios")).unwrap();
    let smoke = shipped("smoke.toml");
    std::fs::write(upstream.join("scenarios/smoke.toml"), &smoke).unwrap();
    std::fs::write(
        upstream.join("scenarios/startup.toml"),
        shipped("startup.toml"),
    )
    .unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    git(&upstream, &["add", "-A"]);
    git(&upstream, &["commit", "-q", "-m", "scenarios"]);
    let work = dir.path().join("work");
    git(
        dir.path(),
        &["clone", "-q", upstream.to_str().unwrap(), "work"],
    );
    git(&work, &["checkout", "-q", "-b", "change"]);

    // Unchanged: valid, no annotation.
    let (code, out, err) = validate(&work, &["--base", "origin/main", "scenarios"], true);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("compared with origin/main"), "{err}");

    // A bad change: a threshold loosened without a version bump, and a scenario removed.
    let loosened = smoke.replace("failure_rate < 0.5", "failure_rate < 0.9");
    assert_ne!(
        loosened, smoke,
        "the shipped smoke scenario has the threshold changed here"
    );
    std::fs::write(work.join("scenarios/smoke.toml"), &loosened).unwrap();
    std::fs::remove_file(work.join("scenarios/startup.toml")).unwrap();
    git(&work, &["commit", "-q", "-am", "loosen smoke"]);
    let version_line = line_of(&loosened, "version = ");
    let (code, out, err) = validate(&work, &["--base", "origin/main", "scenarios"], true);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "scenarios/smoke.toml:{version_line}:11: error: scenario `smoke` changed since the base but its version 1.0.0 did not go up"
        )),
        "{err}"
    );
    assert!(
        out.contains(&format!(
            "::error file=scenarios/smoke.toml,line={version_line},col=11::scenario `smoke` changed since the base"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "::notice file=scenarios/startup.toml::scenario `startup` was removed since origin/main"
        ),
        "{out}"
    );
    // Outside GitHub Actions the annotations are asked for with --format github only.
    let (code, out, _) = validate(&work, &["--base", "origin/main", "scenarios"], false);
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    let (_, out, _) = validate(
        &work,
        &["--base", "origin/main", "--format", "github", "scenarios"],
        false,
    );
    assert!(out.contains("::error file=scenarios/smoke.toml"), "{out}");

    // The good change: the same with the version raised.
    let bumped = loosened.replace("version = \"1.0.0\"", "version = \"1.1.0\"");
    std::fs::write(work.join("scenarios/smoke.toml"), &bumped).unwrap();
    git(&work, &["commit", "-q", "-am", "bump smoke"]);
    let (code, out, err) = validate(&work, &["--base", "origin/main", "scenarios"], true);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains("::error"), "{out}");

    // A base that does not exist, and a folder outside any repository, are usage errors.
    let (code, _, err) = validate(&work, &["--base", "origin/nope", "scenarios"], false);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--base origin/nope"), "{err}");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("smoke.toml"), &smoke).unwrap();
    let (code, _, err) = validate(outside.path(), &["--base", "main", "."], false);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--base needs a git repository"), "{err}");
}
