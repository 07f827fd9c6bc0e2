//! Shared harness for the three binaries: CLI, clip loading, CPU / RSS
//! accounting and the final JSON line. Contains no WebRTC code, so the
//! `baseline` binary measures exactly this plus tokio.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Frame interval for 30 fps.
pub const FRAME_INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / 30);
/// RTP clock ticks per frame at 90 kHz / 30 fps.
pub const TICKS_PER_FRAME: u64 = 3000;
/// How long to wait for every session to connect before giving up on stragglers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace period after the publishers stop, so in-flight frames still count.
pub const DRAIN: Duration = Duration::from_millis(500);

pub struct Args {
    pub sessions: usize,
    pub seconds: u64,
    pub clip: String,
}

/// `--sessions N --seconds T --clip PATH` (defaults 100, 20, ./clip.h264).
pub fn parse_args() -> Args {
    let mut a = Args {
        sessions: 100,
        seconds: 20,
        clip: "clip.h264".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--sessions" => a.sessions = v.parse().expect("--sessions N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds T"),
            "--clip" => a.clip = v,
            _ => panic!("unknown argument {k} (use --sessions N --seconds T --clip PATH)"),
        }
    }
    a
}

/// Load an Annex-B H.264 stream and split it into access units at each
/// access unit delimiter (NAL type 9; make-clip.sh has x264 emit them).
/// Each returned unit starts with its AUD's start code.
pub fn load_access_units(path: &str) -> Vec<Vec<u8>> {
    let data = std::fs::read(path)
        .unwrap_or_else(|e| panic!("read {path}: {e} (run ./make-clip.sh first)"));
    // Offsets of every start code (00 00 01, or 00 00 00 01) that precedes an AUD.
    let mut cuts = Vec::new();
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if data[i + 3] & 0x1f == 9 {
                let start = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
                cuts.push(start);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    assert!(
        !cuts.is_empty(),
        "{path}: no AUD NAL units; regenerate with make-clip.sh"
    );
    cuts.push(data.len());
    cuts.windows(2).map(|w| data[w[0]..w[1]].to_vec()).collect()
}

/// CPU time (user, sys) of this process so far, in seconds.
pub fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Median of the setup times, in milliseconds.
pub fn p50_ms(mut v: Vec<Duration>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// The measured window: CPU snapshot at start, wall clock, CPU at end.
pub struct Window {
    cpu0: (f64, f64),
    t0: Instant,
}

impl Window {
    pub fn start() -> Self {
        Window {
            cpu0: cpu_times(),
            t0: Instant::now(),
        }
    }
    /// (user, sys) seconds spent since `start`.
    pub fn cpu(&self) -> (f64, f64) {
        let (u, s) = cpu_times();
        (u - self.cpu0.0, s - self.cpu0.1)
    }
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }
}

pub struct Report {
    pub krate: &'static str,
    pub sessions: usize,
    pub seconds: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub cpu: (f64, f64),
    pub setup: Vec<Duration>,
    pub connected_sessions: usize,
}

impl Report {
    /// Print the one JSON result line (hand-formatted: no serde in the baseline).
    pub fn print(self) {
        let (u, s) = self.cpu;
        let per = (u + s) * 1e6 / (self.sessions as f64 * self.seconds as f64);
        println!(
            "{{\"crate\":\"{}\",\"sessions\":{},\"seconds\":{},\"frames_sent\":{},\
             \"frames_received\":{},\"cpu_user_s\":{:.3},\"cpu_sys_s\":{:.3},\
             \"cpu_us_per_session_second\":{:.1},\"peak_rss_kib\":{},\"setup_ms_p50\":{:.1},\
             \"connected_sessions\":{}}}",
            self.krate,
            self.sessions,
            self.seconds,
            self.frames_sent,
            self.frames_received,
            u,
            s,
            per,
            peak_rss_kib(),
            p50_ms(self.setup),
            self.connected_sessions
        );
    }
}
