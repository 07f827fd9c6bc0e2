//! A scenario's identity, recorded in every run: id and version as written, the SHA-256 of
//! its canonical form (so reformatting or comments do not change it but any change of meaning
//! does), and where the file sits in git (commit, repository path, uncommitted changes).
//! Git is asked through the `git` binary; without git or outside a repository the git fields
//! are simply absent.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Scenario;
use crate::run::record::ScenarioIdentity;

/// SHA-256 (lowercase hex) of the scenario's canonical form: the parsed scenario (defaults
/// filled in) as compact JSON with every object's keys sorted.
pub fn canonical_sha256(s: &Scenario) -> String {
    hex::encode(Sha256::digest(canonical_json(s).as_bytes()))
}

/// The canonical form hashed by [`canonical_sha256`].
pub fn canonical_json(s: &Scenario) -> String {
    // Every map in a scenario has string keys and every value is plain data, so conversion to
    // a JSON value cannot fail; a non-finite float would become null, which still hashes.
    let value = serde_json::to_value(s).expect("a Scenario always converts to a JSON value");
    sorted(value).to_string()
}

/// Rebuilds every object with its keys in sorted order. serde_json's map is already sorted
/// unless its `preserve_order` feature is on (a dependency could turn it on for the whole
/// build); inserting in sorted order gives the same bytes either way.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The identity of `s`, read from `path` (`None` for a scenario that has no file). Git fields
/// are `None` when git is missing or the file is not inside a repository with a commit; a
/// file git does not track counts as dirty and has no `git_path`.
pub fn identify(s: &Scenario, path: Option<&Path>) -> ScenarioIdentity {
    let mut identity = ScenarioIdentity {
        id: s.id.clone(),
        version: s.version.to_string(),
        sha256: canonical_sha256(s),
        path: path.map(|p| p.display().to_string()),
        git_commit: None,
        git_path: None,
        git_dirty: None,
        git_repository: None,
    };
    let Some(path) = path else {
        return identity;
    };
    let Some(file_name) = path.file_name() else {
        return identity;
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Some(commit) = git(dir, &["rev-parse", "HEAD"]) else {
        return identity;
    };
    let file = file_name.to_string_lossy();
    let tracked = git(dir, &["ls-files", "--full-name", "--", &file]).filter(|p| !p.is_empty());
    let changed = git(dir, &["status", "--porcelain", "--", &file]);
    identity.git_commit = Some(commit);
    identity.git_dirty = match (&tracked, changed) {
        (None, _) => Some(true),
        (Some(_), Some(status)) => Some(!status.is_empty()),
        (Some(_), None) => None,
    };
    identity.git_path = tracked;
    identity
}

/// Runs `git -C dir ARGS` and returns its trimmed stdout, or `None` when git is missing or
/// fails (not a repository, no commit yet).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // The repository is the one holding the file, whatever the caller's environment
        // points git at.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}
