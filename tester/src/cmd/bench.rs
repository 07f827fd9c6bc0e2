//! `lvt bench`: ramps concurrent probe sessions against a local simulator (the engine is
//! `crate::bench`) and prints the capacity figures.

use std::time::Duration;

use clap::Args;

use super::common::{CliError, EXIT_OK, parse_duration};
use crate::bench::{self, BenchOptions};
use crate::report;
use crate::shutdown::ctrl_c_token;

/// The long help of `lvt bench` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "Ramp concurrent probe sessions against a local simulator and print \
how many sessions one tester holds, the tester's CPU time per stream-second and memory per \
stream (from /proc for this process only), the same figures for the simulator (which runs as \
a separate process), and the error of the measured e2e latency against the simulator's \
injected latency.";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The highest number of concurrent sessions to try.
    #[arg(long, default_value_t = 500)]
    pub streams: u32,
    /// Sessions added at each ramp step.
    #[arg(long, default_value_t = 100)]
    pub step: u32,
    /// How long each step's sessions publish.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Latency the simulator injects per frame, in milliseconds.
    #[arg(long, default_value_t = 40)]
    pub latency_ms: u64,
    /// Talk TLS to the simulator (the default is plaintext, to measure the tester's own cost).
    #[arg(long)]
    pub tls: bool,
    /// Gateway-mode sessions (WHIP in, WHEP out) against `lvt sim gateway` instead of direct
    /// sessions against `lvt sim`; output pictures are decoded at keyframes only.
    #[arg(long, conflicts_with = "tls")]
    pub gateway: bool,
    /// With --gateway: the simulated gateway relays every stream over trickle to an `lvt sim`
    /// orchestrator child (which injects the latency) instead of running its built-in runner;
    /// the gateway's figures then include the relay.
    #[arg(long, requires = "gateway")]
    pub relay: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Validates the ramp, runs it and prints its figures as a table or JSON.
pub async fn run(args: BenchArgs) -> Result<u8, CliError> {
    if args.streams == 0 || args.step == 0 {
        return Err(CliError::Usage(
            "--streams and --step must be at least 1".into(),
        ));
    }
    let opts = BenchOptions {
        streams: args.streams,
        step: args.step,
        hold: args.hold,
        latency_ms: args.latency_ms,
        tls: args.tls,
        gateway: args.gateway,
        relay: args.relay,
    };
    let figures = bench::ramp(&opts, ctrl_c_token()).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&figures).map_err(|e| CliError::Failed(e.into()))?
        );
    } else {
        let rows: Vec<Vec<String>> = figures
            .iter()
            .map(|f| {
                let o = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}"));
                let kb =
                    |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{:.0}", v / 1024.0));
                vec![
                    f.sessions.to_string(),
                    f.held.to_string(),
                    f.failed.to_string(),
                    format!("{:.1}", f.cpu_us_per_stream_second),
                    kb(f.rss_bytes_per_stream),
                    f.sim_cpu_us_per_stream_second
                        .map_or_else(|| "-".into(), |v| format!("{v:.1}")),
                    kb(f.sim_rss_bytes_per_stream),
                    o(f.latency_error_ms_median),
                    o(f.latency_error_ms_max),
                    o(f.output_fps_median),
                ]
            })
            .collect();
        print!(
            "{}",
            report::table(
                &[
                    "sessions",
                    "held",
                    "failed",
                    "tester CPU us/stream-s",
                    "tester KB/stream",
                    "sim CPU us/stream-s",
                    "sim KB/stream",
                    "e2e error ms p50",
                    "e2e error ms max",
                    "fps p50",
                ],
                &rows
            )
        );
        println!(
            "\ninjected latency {} ms; held = passed with output FPS >= 27; KB/stream = resident \
             memory growth over the idle process, per concurrent stream; targets: {}",
            args.latency_ms,
            if args.gateway {
                "200 held, tester CPU < 1000 us/stream-s (gateway mode: WHIP + WHEP, e2e from \
                 the output keyframes' pictures)"
            } else {
                "500 held, error < 5 ms, tester CPU < 200 us/stream-s"
            }
        );
    }
    Ok(EXIT_OK)
}
