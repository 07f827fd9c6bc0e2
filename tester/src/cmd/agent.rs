//! `lvt agent`: the long-running regional tester. Reads `agent.toml`, refuses what is not
//! built yet with a clear message, builds the shipping transport and runs
//! [`crate::agent::driver`] until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use clap::Args;

use super::common::{CliError, EXIT_OK};
use super::shipping::{ShipArgs, report_shipped, shipper_from};
use crate::agent::config::AgentConfig;
use crate::agent::driver::{AgentError, AgentSetup, run_agent};

/// The long help of `lvt agent` (`--help`).
pub const HELP: &str = "Run as a regional tester agent: run the scenarios of agent.toml's \
[[schedule]] entries on their cron patterns (UTC, with a per-agent jitter), label every record \
with the agent's region, and ship each session's signed record to the collector (or Kafka) as \
the session ends; batches that cannot be delivered, or are not acknowledged within \
ship_timeout_s (60 s), go to state_dir/spool and are re-sent every spool_drain_s (30 s). \
state_dir/state.json keeps each schedule's last start across restarts (for `missed`) and the \
TLS certificate first seen per orchestrator (every record says whether its own matches). \
With admin_listen it serves /healthz, /status (JSON) and /metrics (Prometheus text).\n\n\
Scenarios come from [scenarios] git: a repository (an https, http or file:// URL, or the path \
of a git repository) is fetched into state_dir at start and every poll_s, and a new commit of \
[scenarios] ref is adopted only when all its scenario files in [scenarios] path are valid, every \
scheduled scenario is there, every changed scenario raised its version and the ref moved by a \
fast-forward (unless allow_force_push); otherwise the commit in use stays and /status says why. \
Runs finish on the commit they started with. A plain folder (not a repository) is read as it is \
at each run's start.\n\nSIGHUP reads the config file again: schedules, region, shutdown_grace_s and [scenarios] ref, \
poll_s and allow_force_push change at once; a bad file, or one changing what needs a restart \
(key, collector, [kafka], state_dir, admin_listen, spool, heartbeat and ship_timeout_s settings, \
remote_signer, [budget], [scenarios] git and path), is refused and the running configuration stays.\n\n\
SIGTERM or Ctrl-C stops starting runs, lets running ones finish for shutdown_grace_s, then \
ends them as interrupted by the tester (never a failure of the orchestrator), ships or spools \
everything and exits 0.\n\n\
remote_signer = URL pays every session's jobs on chain through a go-livepeer remote signer \
(default offchain); each record then carries what its tickets were worth.\n\n\
[budget] caps concurrent sessions over all runs, each target's session-seconds per UTC day and, \
with a remote signer, the day's payments in wei (max_payment_wei_per_day); sessions that do not \
fit are skipped (counted in run.json and /status).\n\n\
With both collector = URL and [kafka], results go to Kafka and heartbeats to the collector.\n\n\
Exit codes: 0 stopped cleanly; 1 the agent could not go on (state_dir not writable); 2 bad \
input (the config file, a scheduled scenario missing or invalid, no usable scenario commit, the \
key).";

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `lvt agent --config FILE`.
pub async fn run(args: AgentArgs) -> Result<u8, CliError> {
    let config = AgentConfig::load(&args.config).map_err(|e| CliError::Usage(e.to_string()))?;
    let key = lvt_schema::sign::read_signing_key(&config.key)
        .map_err(|e| CliError::Usage(format!("key {}: {e}", config.key.display())))?;
    let agent_id = lvt_schema::sign::key_id(&key.verifying_key());
    let spool = config.state_dir.join("spool");
    let spool_dir = spool.clone();
    // With both a collector and [kafka], results go to Kafka and heartbeats to the collector.
    let ship = ShipArgs {
        collector: config
            .collector
            .as_ref()
            .filter(|_| config.kafka.is_none())
            .map(|url| url.get_ref().clone()),
        kafka: config.kafka.as_ref().map(|k| k.brokers.get_ref().clone()),
        kafka_topic: config.kafka.as_ref().and_then(|k| k.topic.clone()),
        events_topic: None,
        key: Some(config.key.clone()),
        spool: spool.clone(),
        region: Some(config.region.get_ref().clone()),
        request_timeout: Some(std::time::Duration::from_secs(
            *config.ship_timeout_s.get_ref(),
        )),
    };
    let Some(transport) = shipper_from(&ship)? else {
        return Err(CliError::Usage(
            "no destination for results: give collector = URL or a [kafka] table".to_owned(),
        ));
    };
    // A second transport of the same kind re-sends the spool (the first one belongs to the
    // session shipper).
    let drain = shipper_from(&ship)?;
    eprintln!(
        "lvt: agent {agent_id} in {} running {} schedule(s); results to {}",
        config.region.get_ref(),
        config.schedules.len(),
        transport.destination()
    );
    let admin = match &config.admin_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address.get_ref().as_str())
                .await
                .map_err(|e| CliError::Usage(format!("admin_listen {}: {e}", address.get_ref())))?;
            if let Ok(bound) = listener.local_addr() {
                eprintln!("lvt: agent admin on http://{bound} (/healthz, /status, /metrics)");
            }
            Some(listener)
        }
        None => None,
    };
    let heartbeat = config
        .collector
        .as_ref()
        .map(|url| crate::agent::heartbeat::HeartbeatTarget {
            collector: url.get_ref().clone(),
            key: key.clone(),
            every: std::time::Duration::from_secs(*config.heartbeat_s.get_ref()),
        });
    let setup = AgentSetup {
        config,
        agent_id,
        transport,
        drain,
        admin,
        heartbeat,
        config_path: Some(args.config.clone()),
        reloads: crate::shutdown::hangup_signals(),
    };
    let shutdown = crate::shutdown::terminate_token();
    let end = run_agent(setup, shutdown).await.map_err(|e| match e {
        AgentError::Scenario(message) => CliError::Usage(message),
        AgentError::State(error) => CliError::Failed(error.into()),
        AgentError::Admin(error) => CliError::Failed(error.into()),
    })?;
    eprintln!(
        "lvt: agent stopped after {} run(s) and {} session(s)",
        end.summary.runs, end.summary.sessions
    );
    // Batches that failed went to the spool, which the agent drains (and drains again at its
    // next start): a clean stop exits 0 whatever the collector did.
    let _ = report_shipped(&end.transport, &end.summary.shipped, EXIT_OK);
    let left = crate::ship::spool_files(&spool_dir).map_or(0, |files| files.len());
    eprintln!(
        "lvt: the spool holds {left} batch(es){}",
        if left > 0 {
            "; the agent sends them when it runs again"
        } else {
            ""
        }
    );
    Ok(EXIT_OK)
}
