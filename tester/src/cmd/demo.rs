//! `lvt demo`: the whole loop on one machine (the engine is `crate::demo`); this file maps the
//! flags onto its options.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::common::{CliError, EXIT_OK, parse_duration};
use crate::demo::{self as engine, DemoOptions};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Override the session length of the sla-hourly scenario (default: the scenario's 30 s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print the run report as JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Also write run.json, junit.xml and report.html into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit after printing; by default, on a terminal, the collector and its dashboard
    /// keep running until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// Runs the demo: 0 when the tables could be produced. Threshold failures are part of what the
/// demo shows (the flaky orchestrator fails on purpose), so they do not change the exit code.
pub async fn run(args: DemoArgs) -> Result<u8, CliError> {
    engine::run(DemoOptions {
        session_duration: args.duration,
        json: args.json,
        out: args.out,
        exit: args.exit,
    })
    .await?;
    Ok(EXIT_OK)
}
