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
injected latency. With --floor, each step is followed by the same number of streams doing \
only their I/O (one write of each frame when it is due, over loopback TCP to an echo child, \
and the read back), whose cost is printed beside the sessions': the baseline no change to the \
tester's own code can go below.";

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
    /// After each step, run the same number of bare I/O streams (each frame written when due
    /// to an echo child over loopback TCP, and read back) and print their CPU beside the
    /// sessions': the floor of the tester's cost (direct plaintext sessions only).
    #[arg(long, conflicts_with_all = ["tls", "gateway"])]
    pub floor: bool,
    /// Internal: serve as the floor's echo peer on this address (`lvt bench --floor` starts
    /// it as a child process).
    #[arg(long, hide = true, value_name = "ADDR")]
    pub echo_peer: Option<std::net::SocketAddr>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Validates the ramp, runs it and prints its figures as a table or JSON.
pub async fn run(args: BenchArgs) -> Result<u8, CliError> {
    if let Some(addr) = args.echo_peer {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot listen on {addr}: {e}")))?;
        bench::floor::serve_echo(listener)
            .await
            .map_err(|e| CliError::Failed(e.into()))?;
        return Ok(EXIT_OK);
    }
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
        floor: args.floor,
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
        print_floor(&figures);
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

/// The floor's table (`--floor`): each step's sessions beside the same number of bare I/O
/// streams, in both shapes.
fn print_floor(figures: &[bench::StepFigures]) {
    let us = |v: f64| format!("{v:.1}");
    let mut rows: Vec<Vec<String>> = Vec::new();
    for f in figures {
        let Some(floor) = &f.floor else { continue };
        for (shape, floor) in [
            ("one task per stream", &floor.per_stream),
            ("paced", &floor.paced),
        ] {
            rows.push(vec![
                f.sessions.to_string(),
                us(f.cpu_us_per_stream_second),
                us(f.sys_us_per_stream_second),
                shape.to_string(),
                us(floor.cpu_us_per_stream_second),
                us(floor.sys_us_per_stream_second),
                floor
                    .echo_cpu_us_per_stream_second
                    .map_or_else(|| "-".into(), us),
                if floor.cpu_us_per_stream_second > 0.0 {
                    format!(
                        "{:.2}",
                        f.cpu_us_per_stream_second / floor.cpu_us_per_stream_second
                    )
                } else {
                    "-".into()
                },
                if floor.bytes_returned == floor.bytes_written {
                    "all".into()
                } else {
                    format!("{} of {}", floor.bytes_returned, floor.bytes_written)
                },
            ]);
        }
    }
    if rows.is_empty() {
        return;
    }
    println!(
        "\nthe floor: as many streams doing only their I/O (one write per frame when due, the \
         read back), one task per stream or one pacer for all (1 ms ticks)"
    );
    print!(
        "{}",
        report::table(
            &[
                "sessions",
                "tester CPU us/stream-s",
                "of it kernel",
                "floor shape",
                "floor CPU us/stream-s",
                "of it kernel",
                "echo CPU us/stream-s",
                "tester / floor",
                "bytes back",
            ],
            &rows
        )
    );
}
