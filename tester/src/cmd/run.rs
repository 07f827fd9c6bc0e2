//! `lvt run`: loads a scenario (a file or a shipped id), resolves its targets, executes it,
//! writes run.json, junit.xml and report.html, prints the tables and exits by the thresholds.

use std::path::PathBuf;

use clap::Args;
use lvt_wire::live::OrchestratorUri;

use super::common::{CliError, VerifyArgs, address_verifier, payment_config};
use super::shipping::{GatewayEvents, ShipArgs, report_shipped, shipper_from};
use crate::probe;
use crate::shutdown::ctrl_c_token;

/// The long help of `lvt run` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "Run a scenario: resolve its targets, run its sessions under its load \
(closed: sessions per target at a fixed concurrency; open: an arrival rate with ramp stages, \
startup measured from each session's scheduled start), then print a summary per group and \
each threshold's verdict.\n\n\
SCENARIO is a scenario file, or the id of a scenario shipped with lvt (smoke, sla-hourly, soak, \
capacity, startup). --target replaces the scenario's targets with explicit orchestrators.\n\n\
Writes run.json (every session record), junit.xml (one test case per threshold) and \
report.html to --out (default lvt-runs/ID-TIMESTAMP). Ctrl-C stops the sessions in flight \
cleanly and still writes the report.\n\n\
Exit codes: 0 every threshold passed; 99 a threshold failed or had no data; 1 the run could \
not proceed (targets unresolvable, input clip not encodable, output directory not writable); \
2 bad input (an invalid scenario, a bad --target).";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A scenario file, or the id of a shipped scenario.
    pub scenario: String,
    /// Run against this orchestrator instead of the scenario's targets (repeatable).
    #[arg(long = "target", value_name = "URI")]
    pub targets: Vec<String>,
    /// Output directory for run.json, junit.xml and report.html.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print run.json to stdout instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Live progress on stderr: a redrawn line on a terminal, log lines otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
    /// Pay every session's jobs on chain through this remote signer (go-livepeer's
    /// /sign-orchestrator-info and /generate-live-payment). Default: offchain.
    #[arg(long, value_name = "URL")]
    pub remote_signer: Option<String>,
    /// Refuse a session whose orchestrator presents another TLS certificate than the one first
    /// seen for its URI in this run (a failed start, class auth); without it the record only
    /// says `cert_trust: changed`.
    #[arg(long)]
    pub refuse_changed_certificates: bool,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub ship: ShipArgs,
}

/// The `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Terminal,
    Lines,
    Off,
}

/// `lvt run`: load and validate, resolve targets, check the output directory, execute, write
/// the outputs, print the tables, exit by the thresholds.
pub async fn run(args: RunArgs) -> Result<u8, CliError> {
    use crate::run::{executor, output, summary, targets, verdict};
    use crate::scenario::{Targets, identity, validate};

    let (mut scenario, identity) = {
        let path = std::path::Path::new(&args.scenario);
        let shipped = crate::scenario::shipped::shipped(&args.scenario);
        // A file of that name wins over a shipped id, so a local edit is always what runs.
        let loaded = match shipped {
            Some(text) if !path.is_file() => {
                let label = format!("scenarios/{}.toml (shipped)", args.scenario);
                validate::load_str(&label, text).map(|s| {
                    let id = identity::identify(&s, None);
                    (s, id)
                })
            }
            _ => validate::load_file(path).map(|s| {
                let id = identity::identify(&s, Some(path));
                (s, id)
            }),
        };
        match loaded {
            Ok(v) => v,
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                if !path.exists() && shipped.is_none() {
                    let ids: Vec<&str> = crate::scenario::shipped::SHIPPED
                        .iter()
                        .map(|(id, _)| *id)
                        .collect();
                    return Err(CliError::Usage(format!(
                        "SCENARIO {:?} is neither a file nor a shipped scenario ({})",
                        args.scenario,
                        ids.join(", ")
                    )));
                }
                return Err(CliError::Usage(format!(
                    "{} error(s) in {}",
                    diagnostics.len(),
                    args.scenario
                )));
            }
        }
    };
    if !args.targets.is_empty() {
        for t in &args.targets {
            t.parse::<OrchestratorUri>()
                .map_err(|e| CliError::Usage(format!("--target {t:?}: {e}")))?;
        }
        scenario.targets = Targets::Explicit {
            uris: args.targets.clone(),
        };
    }

    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&scenario.id));
    check_writable(&out_dir).map_err(CliError::Failed)?;
    let shipper = shipper_from(&args.ship)?;

    let http = probe::http_client()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot build the HTTP client: {e}")))?;
    let address_verifier = address_verifier(&args.verify, &http)?;
    let resolved = targets::resolve_run(&scenario.targets, &http, &scenario.model_id)
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot resolve the targets: {e}")))?;
    let labels = resolved.labels();
    eprintln!(
        "lvt: running {}@{} against {} target(s): {}",
        identity.id,
        identity.version,
        labels.len(),
        labels.join(", ")
    );

    let opts = executor::RunOptions {
        progress: match args.progress {
            ProgressArg::Auto => crate::run::progress::ProgressMode::Auto,
            ProgressArg::Terminal => crate::run::progress::ProgressMode::Terminal,
            ProgressArg::Lines => crate::run::progress::ProgressMode::Lines,
            ProgressArg::Off => crate::run::progress::ProgressMode::Off,
        },
        payment: payment_config(args.remote_signer.as_deref())?,
        region: args.ship.region.clone(),
        refuse_changed_certificates: args.refuse_changed_certificates,
        address_verifier,
        ..Default::default()
    };
    let events = if matches!(resolved, targets::RunTargets::Network(_)) {
        GatewayEvents::start(&args.ship)?
    } else {
        GatewayEvents::default()
    };
    // Each session's record is shipped (or spooled) as the session ends, not at the end of the
    // run: a crash in the middle of a long run loses no finished session.
    let shipping = shipper.map(crate::ship::SessionShipper::start);
    let opts = executor::RunOptions {
        observations: events.sink(),
        finished: shipping.as_ref().map(crate::ship::SessionShipper::sender),
        ..opts
    };
    let cancel = ctrl_c_token();
    let report = executor::execute_targets(&scenario, identity, resolved, &opts, cancel).await;
    drop(opts);
    events.finish().await;
    let report = report.map_err(|e| CliError::Failed(e.into()))?;
    let paths = output::write_outputs(&report, &out_dir)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot write the outputs: {e}")))?;

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| CliError::Failed(e.into()))?
        );
    } else {
        println!("{}", run_headline(&report));
        println!();
        print!("{}", summary::summary_table(&report.groups));
        println!();
        if report.verdicts.is_empty() {
            println!("no thresholds");
        } else {
            print!("{}", verdict::verdict_table(&report.verdicts));
        }
    }
    for p in [&paths.run_json, &paths.junit_xml, &paths.report_html] {
        eprintln!("lvt: wrote {}", p.display());
    }
    for v in report.verdicts.iter().filter(|v| v.failed()) {
        eprintln!(
            "lvt: threshold {} {}: {}",
            v.name(),
            v.status.as_str(),
            v.message
        );
    }
    let code = output::exit_code(&report);
    Ok(match shipping {
        Some(shipping) => {
            let (transport, shipped) = shipping.finish().await;
            report_shipped(&transport, &shipped, code)
        }
        None => code,
    })
}

/// One line saying what ran, how it ended and how many sessions it had.
fn run_headline(report: &crate::run::output::RunReport) -> String {
    use crate::run::record::StopReason;
    let stop = match &report.stop {
        StopReason::Completed => "completed".to_string(),
        StopReason::Interrupted => "interrupted".to_string(),
        StopReason::Aborted { threshold } => format!("aborted: threshold {threshold} failed"),
    };
    let mut line = format!(
        "{}@{}: {} session(s) against {} target(s) in {:.1} s, {stop}; peak {} in flight",
        report.scenario.id,
        report.scenario.version,
        report.sessions.len(),
        report.targets.len(),
        report.duration_s(),
        report.peak_in_flight
    );
    if report.dropped_arrivals > 0 {
        line.push_str(&format!(
            ", {} arrival(s) dropped (max_in_flight reached)",
            report.dropped_arrivals
        ));
    }
    if let Some(paid) = &report.payment {
        line.push_str(&format!(
            "; paid {} ticket(s) worth {} wei (expected value)",
            paid.tickets, paid.expected_value_wei
        ));
    }
    line
}

/// `lvt-runs/{id}-{UTC yyyymmddThhmmssZ}`.
fn default_out_dir(id: &str) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    PathBuf::from("lvt-runs").join(format!("{id}-{stamp}"))
}

/// Creates `dir` and proves a file can be written in it, before a run that may last hours.
fn check_writable(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create output directory {}: {e}", dir.display()))?;
    let probe_file = dir.join(".lvt-write-check");
    std::fs::write(&probe_file, b"")
        .map_err(|e| anyhow::anyhow!("output directory {} is not writable: {e}", dir.display()))?;
    // The check file is empty and ours; failing to remove it changes nothing about the run.
    let _ = std::fs::remove_file(&probe_file);
    Ok(())
}
