//! Comparing scenario files with an earlier state of the same repository (a base commit): the
//! rules that keep one scenario version measuring one thing. A scenario whose meaning changed
//! (its canonical hash, see `scenario::identity`) must raise its semantic version; an id stays
//! with its file (a file's id does not change, and no other file takes it over); a removed
//! scenario is reported, not refused. `lvt agent` applies them before adopting a new commit.
//!
//! Files that do not load on either side are skipped here: the per-file checks report them.

use std::collections::BTreeMap;

use super::locate::{Locator, Seg};
use super::{Diagnostic, load_str};
use crate::scenario::Scenario;
use crate::scenario::identity::canonical_sha256;

/// What a comparison found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Changes that break the rules, located in the new files.
    pub errors: Vec<Diagnostic>,
    /// Scenarios of the base that are gone: `(id, base file)`.
    pub removed: Vec<(String, String)>,
}

struct Loaded<'t> {
    label: &'t str,
    text: &'t str,
    scenario: Scenario,
}

fn load_all(files: &[(String, String)]) -> Vec<Loaded<'_>> {
    files
        .iter()
        .filter_map(|(label, text)| {
            load_str(label, text).ok().map(|scenario| Loaded {
                label,
                text,
                scenario,
            })
        })
        .collect()
}

/// Compares `head` (the new files, `(label, text)`) with `base` (the same repository earlier).
/// Files are matched by label, so both sides must name files the same way (their paths in the
/// repository).
pub fn compare(base: &[(String, String)], head: &[(String, String)]) -> History {
    let base = load_all(base);
    let head = load_all(head);
    let base_by_id: BTreeMap<&str, &Loaded<'_>> =
        base.iter().map(|b| (b.scenario.id.as_str(), b)).collect();
    let base_by_file: BTreeMap<&str, &Loaded<'_>> = base.iter().map(|b| (b.label, b)).collect();
    let mut history = History::default();
    for new in &head {
        let locator = Locator::new(new.text);
        let id = new.scenario.id.as_str();
        if let Some(old) = base_by_file.get(new.label)
            && old.scenario.id != id
        {
            history.errors.push(
                locator.diagnostic(
                    new.label,
                    locator.value_offset(&[Seg::Key("id")]),
                    format!(
                        "the id of this file changed from `{}` to `{id}`",
                        old.scenario.id
                    ),
                    Some(format!("id = \"{}\"", old.scenario.id)),
                    Some(
                        "an id names a scenario's results across versions: keep it, or add a new \
                     file for a new scenario"
                            .to_string(),
                    ),
                ),
            );
            continue;
        }
        let Some(old) = base_by_id.get(id) else {
            continue;
        };
        if old.label != new.label {
            history.errors.push(
                locator.diagnostic(
                    new.label,
                    locator.value_offset(&[Seg::Key("id")]),
                    format!("scenario id `{id}` belonged to {} at the base", old.label),
                    Some("an id no other file used at the base".to_string()),
                    Some(
                        "an id stays with its file; give this scenario its own id (a renamed file \
                     is a new scenario)"
                            .to_string(),
                    ),
                ),
            );
            continue;
        }
        if canonical_sha256(&old.scenario) != canonical_sha256(&new.scenario)
            && new.scenario.version <= old.scenario.version
        {
            let mut bumped = old.scenario.version.clone();
            bumped.patch += 1;
            bumped.pre = semver::Prerelease::EMPTY;
            bumped.build = semver::BuildMetadata::EMPTY;
            history.errors.push(locator.diagnostic(
                new.label,
                locator.value_offset(&[Seg::Key("version")]),
                format!(
                    "scenario `{id}` changed since the base but its version {} did not go up \
                     (base: {})",
                    new.scenario.version, old.scenario.version
                ),
                Some(format!("a version above {}", old.scenario.version)),
                Some(format!(
                    "results of one version must measure one thing: set version = \"{bumped}\" \
                     or higher"
                )),
            ));
        }
    }
    let head_ids: std::collections::BTreeSet<&str> =
        head.iter().map(|h| h.scenario.id.as_str()).collect();
    for old in &base {
        if !head_ids.contains(old.scenario.id.as_str()) {
            history
                .removed
                .push((old.scenario.id.clone(), old.label.to_string()));
        }
    }
    history
}
