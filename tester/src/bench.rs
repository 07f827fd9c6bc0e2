//! `lvt bench`: how many concurrent live sessions one tester holds, what each costs in tester
//! CPU, and how far the measured e2e latency is from the latency the simulator injects.
//!
//! The simulator runs as a child process (`lvt sim`), so the CPU figure is the tester's own
//! (utime + stime of this process from /proc/self/stat), not the simulator's. Figures are
//! printed, never asserted: this machine is shared and noisy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lvt_schema::Outcome;
use tokio_util::sync::CancellationToken;

use crate::encode::{ClipConfig, encode_clip};
use crate::probe::{self, ProbeOptions};

/// What a ramp is asked for (`lvt bench`'s flags).
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The highest number of concurrent sessions to try.
    pub streams: u32,
    /// Sessions added at each ramp step.
    pub step: u32,
    /// How long each step's sessions publish.
    pub hold: Duration,
    /// Latency the simulator injects per frame, in milliseconds.
    pub latency_ms: u64,
    /// Talk TLS to the simulator instead of plaintext.
    pub tls: bool,
}

/// Figures of one ramp step.
#[derive(Debug, serde::Serialize)]
pub struct StepFigures {
    pub sessions: u32,
    pub held: u32,
    pub failed: u32,
    pub cpu_us_per_stream_second: f64,
    pub latency_error_ms_median: Option<f64>,
    pub latency_error_ms_max: Option<f64>,
    pub output_fps_median: Option<f64>,
    pub wall_s: f64,
}

/// Starts the simulator child, then runs steps of `step` more concurrent sessions (up to
/// `streams`) until a step does not hold all of its sessions, the last step ran, or `cancel`
/// fires. Each step's figures are logged on stderr as they come.
pub async fn ramp(
    opts: &BenchOptions,
    cancel: CancellationToken,
) -> anyhow::Result<Vec<StepFigures>> {
    let mut sim = SimChild::start(opts).await?;
    let clip = Arc::new(
        encode_clip(&ClipConfig::default())
            .map_err(|e| anyhow::anyhow!("cannot encode the input clip: {e}"))?,
    );
    let http = probe::http_client()?;
    let mut figures = Vec::new();
    let mut n = opts.step.min(opts.streams);
    loop {
        eprintln!("lvt bench: {n} concurrent sessions for {:?}...", opts.hold);
        let f = run_step(n, opts, &sim.uri, clip.clone(), &http, cancel.clone()).await;
        eprintln!(
            "lvt bench: {} held of {}, {:.1} us CPU per stream-second, latency error median {} ms",
            f.held,
            f.sessions,
            f.cpu_us_per_stream_second,
            f.latency_error_ms_median
                .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
        );
        let saturated = f.held < n;
        figures.push(f);
        if saturated || n >= opts.streams || cancel.is_cancelled() {
            break;
        }
        n = (n + opts.step).min(opts.streams);
    }
    sim.stop().await;
    Ok(figures)
}

async fn run_step(
    n: u32,
    bench: &BenchOptions,
    uri: &str,
    clip: Arc<crate::encode::Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
) -> StepFigures {
    let cpu0 = process_cpu_us();
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let Ok(target) = uri.parse() else { break };
        let mut opts = ProbeOptions::new(target);
        opts.duration = bench.hold;
        opts.params_update_offsets.clear();
        let (clip, http, cancel) = (clip.clone(), http.clone(), cancel.clone());
        // Spread session starts over one segment so that segment boundaries do not all align.
        let delay = Duration::from_micros(u64::from(i) * 1_000_000 / u64::from(n));
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            probe::probe(&opts, clip, &http, cancel).await
        });
    }
    let mut reports = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r {
            reports.push(r);
        }
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_us = process_cpu_us().saturating_sub(cpu0) as f64;
    let stream_seconds = f64::from(n) * bench.hold.as_secs_f64();
    let mut errors: Vec<f64> = Vec::new();
    let mut fps: Vec<f64> = Vec::new();
    let mut held = 0;
    let mut failed = 0;
    for r in &reports {
        let f = r.metrics.output_fps.as_ref().map(|f| f.mean);
        if let Some(f) = f {
            fps.push(f);
        }
        if r.outcome == Outcome::Passed && f.is_some_and(|f| f >= 27.0) {
            held += 1;
        }
        if r.outcome == Outcome::Failed {
            failed += 1;
        }
        if let Some(l) = &r.metrics.e2e_latency_ms {
            errors.push((l.p50 - bench.latency_ms as f64).abs());
        }
    }
    StepFigures {
        sessions: n,
        held,
        failed,
        cpu_us_per_stream_second: cpu_us / stream_seconds,
        latency_error_ms_median: median(&mut errors),
        latency_error_ms_max: errors.iter().copied().reduce(f64::max),
        output_fps_median: median(&mut fps),
        wall_s,
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// CPU time (user + system) this process used so far, in microseconds, from /proc/self/stat.
/// Linux reports it in USER_HZ ticks, which are 100 per second on every Linux architecture.
fn process_cpu_us() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are plain.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, i.e. 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * 10_000
}

/// The simulator child process.
struct SimChild {
    child: tokio::process::Child,
    uri: String,
    _profile: tempfile_path::TempProfile,
}

impl SimChild {
    async fn start(opts: &BenchOptions) -> anyhow::Result<Self> {
        let profile = tempfile_path::TempProfile::write(&format!(
            "latency_ms = {}\nlatency_jitter_ms = 0\nstartup_ms = 0\ncapacity = {}\nseed = 1\n",
            opts.latency_ms,
            opts.streams.saturating_mul(2)
        ))?;
        // Reserve a free port, then hand it to the child.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = std::env::current_exe()?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("sim")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--profile")
            .arg(profile.path())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        // The simulator logs every session at info; in a benchmark only its errors matter.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "error");
        }
        if !opts.tls {
            cmd.arg("--plaintext");
        }
        let child = cmd.spawn()?;
        let scheme = if opts.tls { "https" } else { "http" };
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                anyhow::bail!("the simulator did not listen on 127.0.0.1:{port} within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            uri: format!("{scheme}://127.0.0.1:{port}"),
            _profile: profile,
        })
    }

    async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

mod tempfile_path {
    //! A profile file that is removed when dropped.
    use std::path::{Path, PathBuf};

    pub struct TempProfile(PathBuf);

    impl TempProfile {
        pub fn write(contents: &str) -> std::io::Result<Self> {
            let path =
                std::env::temp_dir().join(format!("lvt-bench-profile-{}.toml", std::process::id()));
            std::fs::write(&path, contents)?;
            Ok(Self(path))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempProfile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_time_is_readable_and_grows() {
        // Spin until the kernel's 10 ms tick accounts CPU time to us; on a loaded machine that
        // can take longer than 10 ms of wall time, so bound the wait generously instead.
        let a = process_cpu_us();
        let t = Instant::now();
        let mut x = 0u64;
        while process_cpu_us() <= a && t.elapsed() < Duration::from_secs(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = process_cpu_us();
        // The tick may land before the first check, so the loop may not run at all; `x` only
        // keeps the spin from being optimised away.
        std::hint::black_box(x);
        assert!(
            b > a,
            "CPU time did not advance in 30 s of spinning: {a} -> {b}"
        );
    }

    #[test]
    fn median_of_values() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
    }
}
