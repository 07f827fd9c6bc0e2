//! `lvt bench`: how many concurrent live sessions one tester holds, what each costs in tester
//! CPU, and how far the measured e2e latency is from the latency the simulator injects.
//!
//! The simulator runs as a child process (`lvt sim`), so each process's cost is its own: CPU is
//! utime + stime from `/proc/PID/stat`, memory the resident set (`VmRSS` of `/proc/PID/status`)
//! sampled while a step's sessions run, per stream as the growth over the idle process. Figures
//! are printed, never asserted: this machine is shared and noisy. With `floor`, each step is
//! followed by the same number of streams doing only their I/O ([`floor`]), the baseline the
//! tester's figure is read against.

pub mod floor;

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
    /// Run gateway-mode sessions (WHIP in, WHEP out) against `lvt sim gateway` instead of
    /// direct sessions against `lvt sim` (docs/gateway-mode.md). Output pictures are decoded at
    /// keyframes only, so e2e comes from one sample per second per stream.
    pub gateway: bool,
    /// With `gateway`: the simulated gateway relays each stream over trickle to an `lvt sim`
    /// orchestrator child (`lvt sim gateway --orchestrator`), which injects the latency; the
    /// simulator figures are the gateway's alone.
    pub relay: bool,
    /// After each step, run the same number of bare I/O streams against an echo child
    /// ([`floor`]) and report their cost beside the sessions'. Direct plaintext sessions only.
    pub floor: bool,
}

/// Figures of one ramp step.
#[derive(Debug, serde::Serialize)]
pub struct StepFigures {
    pub sessions: u32,
    pub held: u32,
    pub failed: u32,
    /// Sessions not held, by failure class (`unscored_*` outcomes under their class too), and
    /// under [`BELOW_HELD_FPS`] the ones that passed with too little output, with one example
    /// detail each: what went wrong, not only how often.
    pub failures: std::collections::BTreeMap<String, FailureCount>,
    pub cpu_us_per_stream_second: f64,
    /// The system (kernel) part of `cpu_us_per_stream_second`.
    pub sys_us_per_stream_second: f64,
    /// The simulator child's CPU per stream-second, for comparison.
    pub sim_cpu_us_per_stream_second: Option<f64>,
    /// The system (kernel) part of `sim_cpu_us_per_stream_second`.
    pub sim_sys_us_per_stream_second: Option<f64>,
    /// The tester's resident memory growth over its idle size, per concurrent stream (the
    /// highest sample of the step).
    pub rss_bytes_per_stream: Option<f64>,
    /// The same for the simulator child.
    pub sim_rss_bytes_per_stream: Option<f64>,
    pub latency_error_ms_median: Option<f64>,
    pub latency_error_ms_max: Option<f64>,
    pub output_fps_median: Option<f64>,
    pub wall_s: f64,
    /// With `--floor`: the same number of streams doing only their I/O, run right after.
    pub floor: Option<floor::Floor>,
}

/// Output FPS a passed session needs to count as held.
pub const HELD_FPS: f64 = 27.0;

/// The `failures` key of sessions that passed with output under [`HELD_FPS`].
pub const BELOW_HELD_FPS: &str = "passed_below_27_fps";

/// How many sessions of a step failed in one class, and one of their details.
#[derive(Debug, serde::Serialize)]
pub struct FailureCount {
    pub sessions: u32,
    pub example: String,
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
    let mut echo = match opts.floor {
        true => Some(EchoChild::start().await?),
        false => None,
    };
    let sizes: Arc<[usize]> = floor::frame_sizes(&clip).into();
    // The idle sizes the per-stream memory figures grow from: the clip is encoded and the
    // simulator listens, no session runs.
    let idle = Processes {
        tester: ProcSample::read(Pid::Own),
        sim: sim.pid().and_then(|pid| ProcSample::read(Pid::Other(pid))),
    };
    let mut figures = Vec::new();
    let mut n = opts.step.min(opts.streams);
    loop {
        eprintln!("lvt bench: {n} concurrent sessions for {:?}...", opts.hold);
        let step = Step {
            n,
            bench: opts,
            uri: &sim.uri,
            sim_pid: sim.pid(),
            idle: &idle,
        };
        let mut f = run_step(&step, clip.clone(), &http, cancel.clone()).await;
        if let Some(echo) = &echo
            && !cancel.is_cancelled()
        {
            eprintln!(
                "lvt bench: the floor, {n} bare I/O streams for {:?}...",
                opts.hold
            );
            let fps = clip.config.fps;
            let shape = |shape| echo.run(shape, n, opts.hold, fps, sizes.clone());
            let per_stream = shape(floor::Shape::PerStream).await?;
            let paced = shape(floor::Shape::Paced).await?;
            eprintln!(
                "lvt bench: floor {:.1} us CPU per stream-second one task per stream, {:.1} \
                 paced ({:.1} and {:.1} in the kernel)",
                per_stream.cpu_us_per_stream_second,
                paced.cpu_us_per_stream_second,
                per_stream.sys_us_per_stream_second,
                paced.sys_us_per_stream_second
            );
            f.floor = Some(floor::Floor { per_stream, paced });
        }
        eprintln!(
            "lvt bench: {} held of {}, {:.1} us CPU per stream-second, latency error median {} ms",
            f.held,
            f.sessions,
            f.cpu_us_per_stream_second,
            f.latency_error_ms_median
                .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
        );
        for (class, count) in &f.failures {
            eprintln!(
                "lvt bench: {} sessions {class}, for example: {}",
                count.sessions, count.example
            );
        }
        let saturated = f.held < n;
        figures.push(f);
        if saturated || n >= opts.streams || cancel.is_cancelled() {
            break;
        }
        n = (n + opts.step).min(opts.streams);
    }
    sim.stop().await;
    if let Some(echo) = &mut echo {
        let _ = echo.child.kill().await;
    }
    Ok(figures)
}

/// One step of the ramp: its size and where it measures.
struct Step<'a> {
    n: u32,
    bench: &'a BenchOptions,
    uri: &'a str,
    sim_pid: Option<u32>,
    idle: &'a Processes,
}

/// A sample of both processes.
struct Processes {
    tester: Option<ProcSample>,
    sim: Option<ProcSample>,
}

async fn run_step(
    step: &Step<'_>,
    clip: Arc<crate::encode::Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
) -> StepFigures {
    let (n, bench, uri) = (step.n, step.bench, step.uri);
    let sample = || Processes {
        tester: ProcSample::read(Pid::Own),
        sim: step
            .sim_pid
            .and_then(|pid| ProcSample::read(Pid::Other(pid))),
    };
    let start = sample();
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (clip, http, cancel) = (clip.clone(), http.clone(), cancel.clone());
        // Spread session starts over one segment so that segment boundaries do not all align.
        let delay = Duration::from_micros(u64::from(i) * 1_000_000 / u64::from(n));
        if bench.gateway {
            let Ok(url) = uri.parse::<reqwest::Url>() else {
                break;
            };
            let mut opts = ProbeOptions::new(lvt_wire::live::OrchestratorUri::new(
                lvt_wire::live::Scheme::Https,
                "gateway.invalid",
                443,
            ));
            opts.duration = bench.hold;
            opts.params_update_offsets.clear();
            let mut gateway = probe::gateway::GatewayOptions::new(url);
            gateway.decode_keyframes_only = true;
            tasks.spawn(async move {
                tokio::time::sleep(delay).await;
                probe::gateway::probe_gateway(&opts, &gateway, clip, &http, cancel).await
            });
            continue;
        }
        let Ok(target) = uri.parse() else { break };
        let mut opts = ProbeOptions::new(target);
        opts.duration = bench.hold;
        opts.params_update_offsets.clear();
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            probe::probe(&opts, clip, &http, cancel).await
        });
    }
    // Resident memory is sampled while the sessions run; the highest sample counts.
    let mut peak_rss = (0u64, 0u64);
    let mut reports = Vec::new();
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(Ok(r)) => reports.push(r),
                Some(Err(_)) => {}
                None => break,
            },
            _ = every.tick() => {
                let now = sample();
                let rss = |p: &Option<ProcSample>| p.as_ref().map_or(0, |p| p.rss_bytes);
                peak_rss = (peak_rss.0.max(rss(&now.tester)), peak_rss.1.max(rss(&now.sim)));
            }
        }
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let end = sample();
    let stream_seconds = f64::from(n) * bench.hold.as_secs_f64();
    let cpu_per_stream_second =
        |a: &Option<ProcSample>, b: &Option<ProcSample>| per_stream_second(a, b, stream_seconds);
    let growth_per_stream = |idle: &Option<ProcSample>, peak: u64| {
        idle.as_ref()
            .filter(|_| peak > 0)
            .map(|idle| peak.saturating_sub(idle.rss_bytes) as f64 / f64::from(n))
    };
    let Tally {
        held,
        failed,
        failures,
        mut errors,
        mut fps,
    } = tally(&reports, bench.latency_ms);
    StepFigures {
        sessions: n,
        held,
        failed,
        failures,
        cpu_us_per_stream_second: cpu_per_stream_second(&start.tester, &end.tester).unwrap_or(0.0),
        sys_us_per_stream_second: sys_per_stream_second(&start.tester, &end.tester, stream_seconds),
        sim_cpu_us_per_stream_second: cpu_per_stream_second(&start.sim, &end.sim),
        sim_sys_us_per_stream_second: (start.sim.is_some() && end.sim.is_some())
            .then(|| sys_per_stream_second(&start.sim, &end.sim, stream_seconds)),
        rss_bytes_per_stream: growth_per_stream(&step.idle.tester, peak_rss.0),
        sim_rss_bytes_per_stream: growth_per_stream(&step.idle.sim, peak_rss.1),
        latency_error_ms_median: median(&mut errors),
        latency_error_ms_max: errors.iter().copied().reduce(f64::max),
        output_fps_median: median(&mut fps),
        wall_s,
        floor: None,
    }
}

/// What a step's reports add up to.
struct Tally {
    held: u32,
    failed: u32,
    failures: std::collections::BTreeMap<String, FailureCount>,
    /// Each session's e2e p50 against the injected latency, in ms.
    errors: Vec<f64>,
    /// Each session's mean output FPS.
    fps: Vec<f64>,
}

/// Adds up a step's reports: held (passed with output at [`HELD_FPS`] or more), failed, the
/// sessions not held by failure class or [`BELOW_HELD_FPS`], the latency errors against
/// `latency_ms` and the output FPS.
fn tally(reports: &[lvt_schema::SessionReport], latency_ms: u64) -> Tally {
    let mut t = Tally {
        held: 0,
        failed: 0,
        failures: Default::default(),
        errors: Vec::new(),
        fps: Vec::new(),
    };
    let mut not_held = |key: String, example: String| {
        t.failures
            .entry(key)
            .or_insert(FailureCount {
                sessions: 0,
                example,
            })
            .sessions += 1;
    };
    for r in reports {
        let fps = r.metrics.output_fps.as_ref().map(|f| f.mean);
        if let Some(failure) = &r.failure {
            not_held(
                crate::report::class_name(failure.class),
                failure.detail.clone(),
            );
        } else if r.outcome == Outcome::Passed && !fps.is_some_and(|f| f >= HELD_FPS) {
            let example = fps.map_or_else(
                || "no output FPS measured".to_string(),
                |f| format!("output {f:.2} fps"),
            );
            not_held(BELOW_HELD_FPS.to_string(), example);
        }
        if r.outcome == Outcome::Passed && fps.is_some_and(|f| f >= HELD_FPS) {
            t.held += 1;
        }
        if r.outcome == Outcome::Failed {
            t.failed += 1;
        }
        t.fps.extend(fps);
        if let Some(l) = &r.metrics.e2e_latency_ms {
            t.errors.push((l.p50 - latency_ms as f64).abs());
        }
    }
    t
}

/// CPU time (user + system) between two samples of one process, per stream-second.
fn per_stream_second(
    a: &Option<ProcSample>,
    b: &Option<ProcSample>,
    stream_seconds: f64,
) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(b.cpu_us.saturating_sub(a.cpu_us) as f64 / stream_seconds),
        _ => None,
    }
}

/// The system part of the CPU time between two samples, per stream-second (0 without both).
fn sys_per_stream_second(
    a: &Option<ProcSample>,
    b: &Option<ProcSample>,
    stream_seconds: f64,
) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => b.sys_us.saturating_sub(a.sys_us) as f64 / stream_seconds,
        _ => 0.0,
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Which process to sample.
#[derive(Clone, Copy)]
enum Pid {
    Own,
    Other(u32),
}

/// CPU time and resident memory of a process, from `/proc`.
struct ProcSample {
    /// User plus system time, in microseconds.
    cpu_us: u64,
    /// System time alone, in microseconds.
    sys_us: u64,
    rss_bytes: u64,
}

impl ProcSample {
    fn read(pid: Pid) -> Option<Self> {
        let dir = match pid {
            Pid::Own => "/proc/self".to_string(),
            Pid::Other(pid) => format!("/proc/{pid}"),
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let (user_us, sys_us) = cpu_us_of_stat(&stat)?;
        Some(Self {
            cpu_us: user_us + sys_us,
            sys_us,
            rss_bytes: rss_bytes_of_status(&status)?,
        })
    }
}

/// CPU time (user, system) from a `/proc/PID/stat` line, in microseconds. Linux reports it
/// in USER_HZ ticks, which are 100 per second on every Linux architecture.
fn cpu_us_of_stat(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are plain.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, i.e. 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some((ticks(11)? * 10_000, ticks(12)? * 10_000))
}

/// `VmRSS` of a `/proc/PID/status` text, in bytes.
fn rss_bytes_of_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(kb * 1024)
}

/// The simulator child process.
struct SimChild {
    child: tokio::process::Child,
    /// The orchestrator a relaying gateway relays to.
    orchestrator: Option<tokio::process::Child>,
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
        let mut cmd = tokio::process::Command::new(&exe);
        let mut orchestrator = None;
        if opts.gateway && opts.relay {
            // go-livepeer's gateway, simulated, relaying to a simulated orchestrator.
            let orch_port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let mut orch = tokio::process::Command::new(&exe);
            orch.arg("sim")
                .arg("--listen")
                .arg(format!("127.0.0.1:{orch_port}"))
                .arg("--profile")
                .arg(profile.path())
                .arg("--plaintext")
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true);
            if std::env::var_os("RUST_LOG").is_none() {
                orch.env("RUST_LOG", "error");
            }
            orchestrator = Some(orch.spawn()?);
            wait_listening(orch_port).await?;
            cmd.args(["sim", "gateway", "--viewer-limit", "unlimited"])
                .arg("--orchestrator")
                .arg(format!("http://127.0.0.1:{orch_port}"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"));
        } else if opts.gateway {
            // go-livepeer's gateway, simulated: its built-in runner adds the latency.
            cmd.args([
                "sim",
                "gateway",
                "--viewer-limit",
                "unlimited",
                "--startup-ms",
                "0",
            ])
            .arg("--latency-ms")
            .arg(opts.latency_ms.to_string())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        } else {
            cmd.arg("sim")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--profile")
                .arg(profile.path());
        }
        cmd.stdout(std::process::Stdio::null()).kill_on_drop(true);
        // The simulator logs every session at info; in a benchmark only its errors matter.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "error");
        }
        if !opts.tls && !opts.gateway {
            cmd.arg("--plaintext");
        }
        let child = cmd.spawn()?;
        let scheme = if opts.tls && !opts.gateway {
            "https"
        } else {
            "http"
        };
        wait_listening(port).await?;
        Ok(Self {
            child,
            orchestrator,
            uri: format!("{scheme}://127.0.0.1:{port}"),
            _profile: profile,
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn stop(&mut self) {
        let _ = self.child.kill().await;
        if let Some(orchestrator) = &mut self.orchestrator {
            let _ = orchestrator.kill().await;
        }
    }
}

/// The floor's echo peer, a child process (`lvt bench --echo-peer`) so that its CPU is its own.
struct EchoChild {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
}

impl EchoChild {
    async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("bench")
            .arg("--echo-peer")
            .arg(addr.to_string())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        wait_listening(port).await?;
        Ok(Self { child, addr })
    }

    /// Runs `n` floor streams of `shape` for `hold` and measures this process and the echo
    /// child.
    async fn run(
        &self,
        shape: floor::Shape,
        n: u32,
        hold: Duration,
        fps: u32,
        sizes: Arc<[usize]>,
    ) -> anyhow::Result<floor::FloorFigures> {
        let echo_pid = self.child.id();
        let sample = || {
            (
                ProcSample::read(Pid::Own),
                echo_pid.and_then(|pid| ProcSample::read(Pid::Other(pid))),
            )
        };
        let before = sample();
        let totals = floor::drive(self.addr, shape, n, hold, fps, sizes)
            .await
            .map_err(|e| anyhow::anyhow!("the floor's streams failed: {e}"))?;
        let after = sample();
        let stream_seconds = f64::from(n) * hold.as_secs_f64();
        Ok(floor::FloorFigures {
            cpu_us_per_stream_second: per_stream_second(&before.0, &after.0, stream_seconds)
                .unwrap_or(0.0),
            sys_us_per_stream_second: sys_per_stream_second(&before.0, &after.0, stream_seconds),
            echo_cpu_us_per_stream_second: per_stream_second(&before.1, &after.1, stream_seconds),
            bytes_written: totals.written,
            bytes_returned: totals.returned,
        })
    }
}

/// Waits until something listens on 127.0.0.1:`port` (a simulator or echo child starting).
async fn wait_listening(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            anyhow::bail!("the child process did not listen on 127.0.0.1:{port} within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
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
        let cpu = || {
            ProcSample::read(Pid::Own)
                .expect("/proc/self is readable")
                .cpu_us
        };
        let a = cpu();
        let t = Instant::now();
        let mut x = 0u64;
        while cpu() <= a && t.elapsed() < Duration::from_secs(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let b = cpu();
        // The tick may land before the first check, so the loop may not run at all; `x` only
        // keeps the spin from being optimised away.
        std::hint::black_box(x);
        assert!(
            b > a,
            "CPU time did not advance in 30 s of spinning: {a} -> {b}"
        );
    }

    #[test]
    fn proc_texts_are_parsed() {
        let stat = "4242 (lvt (x) y) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 4 0 100 0 0";
        assert_eq!(cpu_us_of_stat(stat), Some((2_500_000, 750_000)));
        assert_eq!(cpu_us_of_stat("garbage"), None);
        let status = "Name:\tlvt\nVmPeak:\t  2000 kB\nVmRSS:\t    1536 kB\nThreads:\t4\n";
        assert_eq!(rss_bytes_of_status(status), Some(1536 * 1024));
        assert_eq!(rss_bytes_of_status("Name: lvt\n"), None);
        let own = ProcSample::read(Pid::Own).expect("/proc/self");
        assert!(
            own.rss_bytes > 1 << 20,
            "a running test uses more than 1 MiB"
        );
    }

    #[test]
    fn sessions_not_held_are_listed_with_why_slow_ones_too() {
        use lvt_schema::{Failure, FailureClass, FpsSummary, SessionReport};
        let report = |outcome, fps: Option<f64>, failure: Option<(FailureClass, &str)>| {
            let mut r = SessionReport::new("s", "noop", 1_700_000_000_000);
            r.outcome = outcome;
            r.metrics.output_fps = fps.map(|mean| FpsSummary {
                mean,
                p5: mean,
                p50: mean,
                windows: 10,
            });
            r.failure = failure.map(|(class, detail)| Failure {
                class,
                detail: detail.into(),
            });
            r
        };
        let reports = [
            report(Outcome::Passed, Some(30.0), None),
            report(Outcome::Passed, Some(29.9), None),
            report(Outcome::Passed, Some(20.5), None),
            report(Outcome::Passed, Some(12.0), None),
            report(Outcome::Passed, None, None),
            report(
                Outcome::Failed,
                None,
                Some((FailureClass::OutputTimeout, "no output for 30 s")),
            ),
        ];
        let t = tally(&reports, 40);
        assert_eq!((t.held, t.failed), (2, 1));
        let slow = &t.failures[BELOW_HELD_FPS];
        assert_eq!(slow.sessions, 3);
        assert_eq!(slow.example, "output 20.50 fps");
        let timeout = &t.failures[&crate::report::class_name(FailureClass::OutputTimeout)];
        assert_eq!(
            (timeout.sessions, timeout.example.as_str()),
            (1, "no output for 30 s")
        );
        assert_eq!(t.failures.len(), 2);
        assert_eq!(t.fps, [30.0, 29.9, 20.5, 12.0]);
    }

    #[test]
    fn median_of_values() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
    }
}
