//! `lvt demo`: the whole loop on one machine. Starts the built-in simulated fleet, probes every
//! orchestrator at once, and prints one comparison table, best first.

use std::sync::Arc;
use std::time::Duration;

use lvt_gateway::live::OrchestratorUri;
use lvt_gateway::sim::{self, FleetConfig};
use lvt_schema::SessionReport;

use crate::cli::{CliError, EXIT_FAILED, EXIT_OK, ctrl_c_token};
use crate::encode::{ClipConfig, encode_clip};
use crate::probe::{self, ProbeOptions};
use crate::report;

/// Runs the demo and returns the exit code: 0 when the table could be produced.
pub async fn run(duration: Duration, json: bool) -> Result<u8, CliError> {
    let cancel = ctrl_c_token();
    let fleet = FleetConfig::builtin();
    let shutdown = cancel.child_token();
    let sims = sim::start_fleet(&fleet, std::net::IpAddr::from([127, 0, 0, 1]), async move {
        shutdown.cancelled().await
    })
    .await
    .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot start the simulated fleet: {e}")))?;
    eprintln!("lvt demo: started {} simulated orchestrators:", sims.len());
    for o in &sims {
        eprintln!("  {:<8} {}  {}", o.name, o.eth_address, o.uri);
    }
    let clip = Arc::new(
        encode_clip(&ClipConfig::default())
            .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot encode the input clip: {e}")))?,
    );
    let http = probe::http_client().map_err(|e| CliError::Failed(e.into()))?;
    eprintln!(
        "lvt demo: probing each orchestrator for {:?} (512x512 H.264 at 30 fps, model noop)...",
        duration
    );

    let mut tasks = tokio::task::JoinSet::new();
    for o in &sims {
        let target: OrchestratorUri = o
            .uri
            .parse()
            .map_err(|e| CliError::Failed(anyhow::anyhow!("simulator URI {}: {e}", o.uri)))?;
        let mut opts = ProbeOptions::new(target);
        opts.duration = duration;
        opts.params_update_offsets = vec![duration / 2];
        opts.params = serde_json::json!({"prompt": "watercolor painting style"});
        let (clip, http, cancel, name) =
            (clip.clone(), http.clone(), cancel.clone(), o.name.clone());
        tasks.spawn(async move {
            let r = probe::probe(&opts, clip, &http, cancel).await;
            eprintln!("lvt demo: {name}: {}", report::outcome_label(&r));
            (name, r)
        });
    }
    let mut reports: Vec<(String, SessionReport)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(r) => reports.push(r),
            Err(e) => {
                return Err(CliError::Failed(anyhow::anyhow!(
                    "a probe task failed: {e}"
                )));
            }
        }
    }
    report::rank(&mut reports);
    cancel.cancel();

    if json {
        let v: Vec<_> = reports.iter().map(|(_, r)| r).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| CliError::Failed(e.into()))?
        );
    } else {
        println!();
        print!(
            "{}",
            report::table(
                report::COMPARISON_HEADER,
                &report::comparison_rows(&reports)
            )
        );
        println!(
            "\nscore: 100 x (0.4 delivered/sent fps + 0.3 startup 1 s..8 s + 0.3 e2e p50 100..3000 ms); \
             failed = 0; busy = unscored, not failed (docs/metrics.md)"
        );
    }
    Ok(if reports.is_empty() {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}
