//! `lvt validate`: checks scenario files and prints every problem located at file:line:column.

use std::path::PathBuf;

use clap::Args;

use super::common::{EXIT_OK, EXIT_USAGE};

/// The long help of `lvt validate` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "Check scenario files: TOML syntax and types, unknown keys, threshold \
expressions (real metrics, statistics and rates), label filters, input and load ranges, and that \
scenario ids are unique across all files. Directories are searched for *.toml files (not \
recursively).\n\n\
With --base REF (a branch, tag, origin/main, a commit id: anything git rev-parse takes) the files \
are also compared with the same paths at that revision of the repository holding them: a \
scenario whose meaning changed (its canonical sha256; comments and formatting do not count) must \
raise its semantic version, a file's id must not change, and no file may take over an id another \
file had; a removed scenario is reported as a note. This is the CI gate of a scenario repository \
(docs/scenarios.md shows a GitHub Actions workflow).\n\n\
Every problem is printed to stderr as file:line:column with what was expected and a hint. With \
--format github (the default when GITHUB_ACTIONS=true) each is also printed to stdout as a GitHub \
Actions annotation (::error file=F,line=L,col=C::message), and each removed scenario as a \
::notice.\n\n\
Exit codes: 0 every scenario is valid; 2 at least one error (or --base cannot be read).";

/// How problems are printed besides the located text on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Located text on stderr only.
    Text,
    /// Also GitHub Actions annotations on stdout.
    Github,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files or directories of them.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// Compare with this git revision of the repository holding the files (version bumps,
    /// ids kept with their files, removed scenarios).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// `github` also prints GitHub Actions annotations to stdout; the default is `github` when
    /// GITHUB_ACTIONS=true, `text` otherwise.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// A GitHub Actions workflow command's message or property, escaped as the runner expects.
fn escape(text: &str, property: bool) -> String {
    let mut out = text
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

/// The `::error` annotation of one diagnostic.
pub fn github_annotation(d: &crate::scenario::validate::Diagnostic) -> String {
    let mut message = d.message.clone();
    if let Some(expected) = &d.expected {
        message.push_str(&format!("\nexpected: {expected}"));
    }
    if let Some(hint) = &d.hint {
        message.push_str(&format!("\nhint: {hint}"));
    }
    format!(
        "::error file={},line={},col={}::{}",
        escape(&d.path, true),
        d.line,
        d.column,
        escape(&message, false)
    )
}

/// Runs `lvt validate` and returns its exit code.
pub fn run(args: &ValidateArgs) -> u8 {
    let github = match args.format {
        Some(format) => format == Format::Github,
        None => std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true"),
    };
    let mut report = crate::scenario::validate::validate_paths(&args.paths);
    let mut removed = Vec::new();
    if let Some(base) = &args.base {
        match crate::scenario::repo::base_files(base, &args.paths) {
            Ok((commit, base_files)) => {
                let head: Vec<(String, String)> = report
                    .files
                    .iter()
                    .filter_map(|file| {
                        let text = std::fs::read_to_string(file).ok()?;
                        Some((file.display().to_string(), text))
                    })
                    .collect();
                let base_texts: Vec<(String, String)> =
                    base_files.into_iter().map(|f| (f.path, f.text)).collect();
                let history = crate::scenario::validate::history::compare(&base_texts, &head);
                eprintln!(
                    "lvt: compared with {base} ({}): {} scenario file(s) there",
                    &commit[..commit.len().min(12)],
                    base_texts.len()
                );
                report.diagnostics.extend(history.errors);
                removed = history.removed;
            }
            Err(error) => {
                eprintln!("lvt: {error}");
                return EXIT_USAGE;
            }
        }
    }
    for d in &report.diagnostics {
        eprintln!("{d}");
        if github {
            println!("{}", github_annotation(d));
        }
    }
    for (id, file) in &removed {
        let base = args.base.as_deref().unwrap_or_default();
        eprintln!("{file}: note: scenario `{id}` was removed since {base}");
        if github {
            println!(
                "::notice file={}::{}",
                escape(file, true),
                escape(&format!("scenario `{id}` was removed since {base}"), false)
            );
        }
    }
    let files = report.files.len();
    if report.is_ok() {
        if files == 0 {
            let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
            eprintln!("lvt: no scenario files (*.toml) in {}", paths.join(", "));
            return EXIT_USAGE;
        }
        eprintln!("{} scenario(s) valid", report.scenarios.len());
        EXIT_OK
    } else {
        eprintln!(
            "{} error(s) in {} of {} file(s)",
            report.diagnostics.len(),
            report.files_with_errors(),
            files
        );
        EXIT_USAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_escape_what_the_runner_would_misread() {
        let d = crate::scenario::validate::Diagnostic {
            path: "scenarios/a,b:c.toml".into(),
            line: 2,
            column: 11,
            message: "100% wrong\nreally".into(),
            expected: Some("a version above 1.0.0".into()),
            hint: None,
        };
        assert_eq!(
            github_annotation(&d),
            "::error file=scenarios/a%2Cb%3Ac.toml,line=2,col=11::100%25 wrong%0Areally%0Aexpected: a version above 1.0.0"
        );
    }
}
