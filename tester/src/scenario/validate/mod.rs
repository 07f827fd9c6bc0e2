//! Loading scenario files with located diagnostics: TOML syntax and type errors from serde,
//! then the semantic checks serde cannot express (ranges, cross-references between sections,
//! threshold expressions, ids unique across files). Every diagnostic names the file, the line
//! and column of the offending key or value, what was expected there and how to fix it.
//! `lvt validate` and `lvt run` both load scenarios through here, so a file that validates is
//! exactly a file that runs.
//!
//! Layout: `locate` finds the source position of keys and values (a span-preserving parse),
//! `syntax` turns serde's errors into located diagnostics, and `checks` (the sections),
//! `targets` (targets and network discovery) and `thresholds` hold the semantic checks.

mod checks;
pub mod history;
mod locate;
mod syntax;
mod targets;
mod thresholds;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use self::checks::Checker;
use self::locate::{Locator, Seg};
use self::syntax::serde_diagnostic;
use super::Scenario;

/// The longest run a scenario may plan: a week. Anything longer is almost certainly a typo
/// (seconds written as milliseconds) and would tie up a regional runner indefinitely.
pub const MAX_PLANNED_RUN_S: u64 = 7 * 86_400;

/// One problem in one scenario file, located at the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as it was given (or as found in a directory that was given).
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What was expected at that place.
    pub expected: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.path, self.line, self.column, self.message
        )?;
        if let Some(expected) = &self.expected {
            write!(f, "\n  expected: {expected}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Parses and checks one scenario held in memory; `path_label` is only used in diagnostics.
pub fn load_str(path_label: &str, text: &str) -> Result<Scenario, Vec<Diagnostic>> {
    let locator = Locator::new(text);
    let scenario: Scenario = match toml::from_str(text) {
        Ok(scenario) => scenario,
        Err(error) => return Err(vec![serde_diagnostic(path_label, &locator, &error)]),
    };
    let mut checker = Checker {
        label: path_label,
        locator: &locator,
        diagnostics: Vec::new(),
    };
    checker.check(&scenario);
    // The checks run section by section; report in file order, as a reader scans the file.
    checker.diagnostics.sort_by_key(|d| (d.line, d.column));
    if checker.diagnostics.is_empty() {
        Ok(scenario)
    } else {
        Err(checker.diagnostics)
    }
}

/// Reads and checks one scenario file; an unreadable file is one diagnostic at 1:1.
pub fn load_file(path: &Path) -> Result<Scenario, Vec<Diagnostic>> {
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&label, &text),
        Err(error) => Err(vec![file_diagnostic(&label, &error)]),
    }
}

/// What validating a set of paths found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every scenario that loaded, with the file it came from, in the order the files were
    /// examined.
    pub scenarios: Vec<(PathBuf, Scenario)>,
    /// Every problem found, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// Every scenario file examined (directories expanded), valid or not.
    pub files: Vec<PathBuf>,
}

impl Report {
    /// True when no file had a problem.
    pub fn is_ok(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// How many distinct files have at least one diagnostic.
    pub fn files_with_errors(&self) -> usize {
        self.diagnostics
            .iter()
            .map(|d| d.path.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// Validates every given file, and every `*.toml` file directly inside every given directory
/// (sorted by name), then checks that scenario ids are unique across all of them. Calling it
/// with no paths yields an empty report: the caller decides what the default is.
pub fn validate_paths(paths: &[PathBuf]) -> Report {
    let mut report = Report::default();
    // The file each id was first loaded from, for the cross-file duplicate check.
    let mut first_by_id: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in expand_paths(paths, &mut report.diagnostics) {
        let label = file.display().to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => check_file(&mut report, &mut first_by_id, file, &text),
            Err(error) => {
                report.files.push(file);
                report.diagnostics.push(file_diagnostic(&label, &error));
            }
        }
    }
    report
}

/// Validates scenario files held in memory (`(label, text)`, for example read from a git
/// commit), as [`validate_paths`] validates files: each one's checks, then ids unique across
/// all of them. Labels name the files in diagnostics.
pub fn validate_texts(files: &[(String, String)]) -> Report {
    let mut report = Report::default();
    let mut first_by_id: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (label, text) in files {
        check_file(&mut report, &mut first_by_id, PathBuf::from(label), text);
    }
    report
}

/// Checks one file's text and adds what it finds to `report`.
fn check_file(
    report: &mut Report,
    first_by_id: &mut BTreeMap<String, PathBuf>,
    file: PathBuf,
    text: &str,
) {
    report.files.push(file.clone());
    let label = file.display().to_string();
    match load_str(&label, text) {
        Ok(scenario) => {
            if let Some(first) = first_by_id.get(&scenario.id) {
                let locator = Locator::new(text);
                let offset = locator.value_offset(&[Seg::Key("id")]);
                report.diagnostics.push(locator.diagnostic(
                    &label,
                    offset,
                    format!(
                        "scenario id `{}` is already used by {}",
                        scenario.id,
                        first.display()
                    ),
                    Some("an id no other scenario file uses".to_string()),
                    Some(
                        "ids name a scenario's results across versions; give this one its own id"
                            .to_string(),
                    ),
                ));
            } else {
                first_by_id.insert(scenario.id.clone(), file.clone());
            }
            report.scenarios.push((file, scenario));
        }
        Err(mut diagnostics) => report.diagnostics.append(&mut diagnostics),
    }
}

/// The files to validate: files as given, directories expanded to their `*.toml` entries.
fn expand_paths(paths: &[PathBuf], diagnostics: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        let label = path.display().to_string();
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) => {
                diagnostics.push(file_diagnostic(&label, &error));
                continue;
            }
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
            .collect();
        found.sort();
        if found.is_empty() {
            diagnostics.push(Diagnostic {
                path: label,
                line: 1,
                column: 1,
                message: "no scenario files in this directory".to_string(),
                expected: Some("at least one `*.toml` file".to_string()),
                hint: Some("pass the scenario files or the directory holding them".to_string()),
            });
        }
        files.extend(found);
    }
    files
}

fn file_diagnostic(label: &str, error: &std::io::Error) -> Diagnostic {
    Diagnostic {
        path: label.to_string(),
        line: 1,
        column: 1,
        message: format!("cannot read the file: {error}"),
        expected: Some("a readable UTF-8 TOML file".to_string()),
        hint: Some("check the path and its permissions".to_string()),
    }
}

#[cfg(test)]
pub(crate) fn position_for_tests(text: &str, offset: usize) -> (usize, usize) {
    Locator::new(text).position(offset)
}
