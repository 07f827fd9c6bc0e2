//! The `lvt` command line, one file per command in the style of mini-redis's `cmd/`: this
//! module holds the `Cli`, the logging setup and the dispatch; `common` the exit codes,
//! `CliError` and the duration parser; `shipping` the flags and helpers that `probe` and `run`
//! share; every other file one command, owning its arguments and its `run`.
//!
//! Commands call into the library's engines (`probe`, `run`, `demo`, `bench`, `scenario`,
//! `ship`, `lvt_gateway`); those never import `cmd`, so the dependency runs one way.

use clap::{Parser, Subcommand};

pub mod agent;
pub mod bench;
pub mod common;
pub mod demo;
pub mod discover;
pub mod keygen;
pub mod probe;
pub mod run;
pub mod ship_spool;
pub mod shipping;
pub mod sim;
pub mod trickle;
pub mod validate;

pub use common::{CliError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, parse_duration};

#[derive(Debug, Parser)]
#[command(
    name = "lvt",
    version,
    about = "Measures how well Livepeer orchestrators serve live AI video-to-video.",
    long_about = "Measures how well Livepeer orchestrators serve live AI video-to-video.\n\n\
        Logs go to stderr and follow RUST_LOG (for example RUST_LOG=lvt_tester=debug); \
        reports go to stdout."
)]
pub struct Cli {
    /// Write logs as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one live video-to-video session against one orchestrator now and report it.
    #[command(long_about = probe::HELP)]
    Probe(Box<probe::ProbeArgs>),
    /// Run simulated orchestrators (one, a fleet from a file, or the built-in fleet).
    #[command(long_about = sim::HELP)]
    Sim(sim::SimArgs),
    /// Trickle protocol tools for debugging a real node: serve, publish, subscribe.
    #[command(subcommand)]
    Trickle(trickle::TrickleCommand),
    /// Run sla-hourly against the built-in simulated fleet, rank it, ship it to an embedded
    /// collector and print its SLA table (the dashboard stays up on a terminal until Ctrl-C).
    Demo(demo::DemoArgs),
    /// Ramp concurrent probe sessions against a local simulator and print capacity figures.
    #[command(long_about = bench::HELP)]
    Bench(bench::BenchArgs),
    /// Check scenario files: syntax, unknown keys, thresholds, ranges, unique ids.
    #[command(long_about = validate::HELP)]
    Validate(validate::ValidateArgs),
    /// Run a scenario against its targets and judge its thresholds.
    #[command(long_about = run::HELP)]
    Run(run::RunArgs),
    /// Write a new signing key pair for shipping results to a collector.
    #[command(long_about = keygen::HELP)]
    Keygen(keygen::KeygenArgs),
    /// Send batches spooled by a failed shipment to a collector, removing each one it accepts.
    #[command(name = "ship-spool", long_about = ship_spool::HELP)]
    ShipSpool(ship_spool::ShipSpoolArgs),
    /// List orchestrators from discovery sources: what each offers and whether it is usable.
    #[command(long_about = discover::HELP)]
    Discover(discover::DiscoverArgs),
    /// Run as a regional tester agent: scheduled scenarios, results shipped as sessions end.
    #[command(long_about = agent::HELP)]
    Agent(agent::AgentArgs),
}

/// Sets up `tracing` from RUST_LOG. Without it: `lvt sim` and `lvt trickle serve` log at info
/// (they are servers, their log is their output), `demo` and `bench` only errors (their
/// simulators' injected faults would drown the table), everything else warnings.
pub fn init_tracing(json: bool, command: &Command) {
    use std::io::IsTerminal;
    let default = match command {
        Command::Sim(_)
        | Command::Agent(_)
        | Command::Trickle(trickle::TrickleCommand::Serve { .. }) => "info",
        // A run reports every session itself; the probe's per-session warnings would repeat it.
        Command::Demo(_) | Command::Bench(_) | Command::Run(_) => "error",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs a parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Probe(args) => probe::run(*args).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Trickle(cmd) => trickle::run(cmd).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Validate(args) => Ok(validate::run(&args)),
        Command::Run(args) => run::run(args).await,
        Command::Keygen(args) => keygen::run(&args),
        Command::ShipSpool(args) => ship_spool::run(args).await,
        Command::Discover(args) => discover::run(args).await,
        Command::Agent(args) => agent::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(msg)) => {
            eprintln!("lvt: {msg}");
            EXIT_USAGE
        }
        Err(CliError::Failed(e)) => {
            eprintln!("lvt: {e:#}");
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_labels_are_single_words() {
        use clap::Parser;
        let region = |args: &[&str]| {
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Run(args) => args.ship.region,
                Command::Probe(args) => args.ship.region,
                _ => unreachable!("only run and probe are parsed here"),
            })
        };
        assert_eq!(
            region(&["lvt", "run", "s.toml", "--region", "eu-west"]).expect("valid"),
            Some("eu-west".to_owned())
        );
        assert_eq!(
            region(&["lvt", "probe", "o:8935", "--region", "us-east"]).expect("valid"),
            Some("us-east".to_owned())
        );
        assert_eq!(region(&["lvt", "run", "s.toml"]).expect("valid"), None);
        for bad in ["", "eu west", "eu\twest"] {
            let error = region(&["lvt", "run", "s.toml", "--region", bad]).expect_err(bad);
            assert!(
                error
                    .to_string()
                    .contains("a region label is a non-empty word"),
                "{error}"
            );
        }
    }

    /// The commands call the engines, never the other way round: no library source outside
    /// `cmd/` names `crate::cmd`.
    #[test]
    fn no_engine_imports_the_commands() {
        fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("the crate's src directory is readable") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        assert!(files.len() > 20, "found only {files:?}");
        let offenders: Vec<_> = files
            .iter()
            .filter(|f| !f.starts_with(src.join("cmd")))
            .filter(|f| {
                let text = std::fs::read_to_string(f).expect("a readable source file");
                text.contains("crate::cmd") || text.contains("super::cmd")
            })
            .collect();
        assert!(offenders.is_empty(), "{offenders:?} import cmd");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
