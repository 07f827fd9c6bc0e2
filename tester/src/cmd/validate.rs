//! `lvt validate`: checks scenario files and prints every problem located at file:line:column.

use std::path::PathBuf;

use clap::Args;

use super::common::{EXIT_OK, EXIT_USAGE};

/// The long help of `lvt validate` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "Check scenario files: TOML syntax and types, unknown keys, threshold \
expressions (real metrics, statistics and rates), label filters, input and load ranges, and that \
scenario ids are unique across all files. Directories are searched for *.toml files (not \
recursively).\n\n\
Every problem is printed to stderr as file:line:column with what was expected and a hint.\n\n\
Exit codes: 0 every scenario is valid; 2 at least one error.";

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files or directories of them.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
}

/// Runs `lvt validate` and returns its exit code.
pub fn run(args: &ValidateArgs) -> u8 {
    let report = crate::scenario::validate::validate_paths(&args.paths);
    for d in &report.diagnostics {
        eprintln!("{d}");
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
