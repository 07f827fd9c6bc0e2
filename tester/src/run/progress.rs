//! Live progress of `lvt run` on stderr: one status line redrawn in place on a terminal, plain
//! log lines otherwise (one per finished session and a status line every 10 s), so CI logs
//! stay readable.
//!
//! The counters and the formatting are pure: [`Counters`] takes what happened, [`status_line`]
//! and [`session_line`] turn it into text. [`Progress`] only decides when to write, from the
//! time the executor hands it.

use std::io::{IsTerminal, Write};

use lvt_schema::Outcome;

use crate::run::record::SessionRecord;
use crate::run::summary::Distribution;
use crate::scenario::threshold::{Metric, Stat};

/// How often the terminal status line is redrawn, at most.
const TERMINAL_REDRAW_MS: f64 = 500.0;
/// How often a plain status line is logged when stderr is not a terminal.
const LOG_STATUS_EVERY_MS: f64 = 10_000.0;

/// Where and how progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A redrawn status line when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// One status line redrawn in place.
    Terminal,
    /// Plain lines: one per finished session, a status line every 10 s.
    Lines,
    /// Nothing.
    Off,
}

impl ProgressMode {
    /// `Auto` decided by whether stderr is a terminal; other modes as they are.
    pub fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Terminal,
            ProgressMode::Auto => ProgressMode::Lines,
            other => other,
        }
    }

    /// How often the executor should call [`Progress::handle_tick`], ms; `None` when never.
    pub fn tick_ms(self) -> Option<f64> {
        match self.resolve() {
            ProgressMode::Terminal => Some(TERMINAL_REDRAW_MS),
            ProgressMode::Lines => Some(LOG_STATUS_EVERY_MS),
            ProgressMode::Auto | ProgressMode::Off => None,
        }
    }
}

/// What the run has done so far.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub running: u64,
    pub done: u64,
    pub passed: u64,
    pub failed: u64,
    pub busy: u64,
    pub indeterminate: u64,
    /// Open arrivals dropped because the run was full.
    pub dropped: u64,
    /// Startup from the scheduled start, of finished sessions, ms.
    pub startup_ms: Distribution,
    /// Each finished session's median end-to-end latency, ms.
    pub e2e_latency_ms: Distribution,
    /// Each finished session's mean output FPS.
    pub output_fps: Distribution,
}

impl Counters {
    /// A session started.
    pub fn handle_started(&mut self) {
        self.running += 1;
    }

    /// A session finished with this record.
    pub fn handle_finished(&mut self, s: &SessionRecord) {
        self.running = self.running.saturating_sub(1);
        self.done += 1;
        match s.report.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::UnscoredBusy => self.busy += 1,
            Outcome::UnscoredIndeterminate => self.indeterminate += 1,
        }
        for (metric, dist) in [
            (Metric::StartupMs, &mut self.startup_ms),
            (Metric::E2eLatencyMs, &mut self.e2e_latency_ms),
            (Metric::OutputFps, &mut self.output_fps),
        ] {
            if let Some(v) = metric.session_value(s) {
                dist.record(v);
            }
        }
    }
}

/// The status line: elapsed time, session counts and the current medians.
pub fn status_line(elapsed_ms: f64, c: &Counters) -> String {
    let mut line = format!(
        "{} running {} done {} passed {} failed {} busy {}",
        elapsed(elapsed_ms),
        c.running,
        c.done,
        c.passed,
        c.failed,
        c.busy
    );
    if c.indeterminate > 0 {
        line.push_str(&format!(" unscored {}", c.indeterminate));
    }
    if c.dropped > 0 {
        line.push_str(&format!(" dropped {}", c.dropped));
    }
    line.push_str(&format!(
        " | startup p50 {} e2e p50 {} fps p50 {}",
        ms(c.startup_ms.stat(Stat::P50)),
        ms(c.e2e_latency_ms.stat(Stat::P50)),
        fps(c.output_fps.stat(Stat::P50)),
    ));
    line
}

/// The log line of one finished session.
pub fn session_line(s: &SessionRecord) -> String {
    let mut line = format!(
        "session {} target={} prompt={} outcome={}",
        s.index,
        s.target,
        s.prompt_id,
        outcome_name(s.report.outcome)
    );
    if let Some(f) = &s.report.failure {
        line.push_str(&format!(" failure={}", crate::report::class_name(f.class)));
    }
    line.push_str(&format!(
        " startup={} e2e p50={} fps={}",
        ms(Metric::StartupMs.session_value(s)),
        ms(Metric::E2eLatencyMs.session_value(s)),
        fps(Metric::OutputFps.session_value(s)),
    ));
    if s.queue_delay_ms >= 1.0 {
        line.push_str(&format!(" queued={}", ms(Some(s.queue_delay_ms))));
    }
    line
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::UnscoredBusy => "unscored_busy",
        Outcome::UnscoredIndeterminate => "unscored_indeterminate",
    }
}

fn elapsed(ms: f64) -> String {
    let total_s = (ms.max(0.0) / 1000.0).floor() as u64;
    let (h, m, s) = (total_s / 3600, total_s / 60 % 60, total_s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}ms"))
}

fn fps(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

/// Writes progress to stderr according to its mode.
#[derive(Debug)]
pub struct Progress {
    mode: ProgressMode,
    pub counters: Counters,
    /// When the status was last written, ms since the run started.
    last_status_ms: Option<f64>,
    /// A status line is on screen and must be cleared before other output.
    line_drawn: bool,
}

impl Progress {
    /// Progress in `mode` (`Auto` is resolved against stderr now).
    pub fn new(mode: ProgressMode) -> Self {
        Self {
            mode: mode.resolve(),
            counters: Counters::default(),
            last_status_ms: None,
            line_drawn: false,
        }
    }

    /// A session started at `now_ms`.
    pub fn handle_started(&mut self, now_ms: f64) {
        self.counters.handle_started();
        self.redraw(now_ms, false);
    }

    /// A session finished at `now_ms`.
    pub fn handle_finished(&mut self, s: &SessionRecord, now_ms: f64) {
        self.counters.handle_finished(s);
        match self.mode {
            ProgressMode::Lines => write_stderr(&format!("lvt: {}\n", session_line(s))),
            ProgressMode::Terminal => self.redraw(now_ms, true),
            ProgressMode::Auto | ProgressMode::Off => {}
        }
    }

    /// The periodic tick: redraws the terminal line or logs the status when it is due.
    pub fn handle_tick(&mut self, now_ms: f64) {
        match self.mode {
            ProgressMode::Terminal => self.redraw(now_ms, false),
            ProgressMode::Lines => {
                let due = self
                    .last_status_ms
                    .is_none_or(|t| now_ms - t >= LOG_STATUS_EVERY_MS);
                if due && now_ms > 0.0 {
                    self.last_status_ms = Some(now_ms);
                    write_stderr(&format!("lvt: {}\n", status_line(now_ms, &self.counters)));
                }
            }
            ProgressMode::Auto | ProgressMode::Off => {}
        }
    }

    /// Writes a message on its own line (clearing the status line first, on a terminal).
    pub fn message(&mut self, text: &str) {
        if self.mode == ProgressMode::Off {
            return;
        }
        self.clear();
        write_stderr(&format!("lvt: {text}\n"));
    }

    /// The run is over: the final status stays on screen (terminal) or is logged (lines).
    pub fn finish(&mut self, now_ms: f64) {
        match self.mode {
            ProgressMode::Terminal => {
                self.redraw(now_ms, true);
                write_stderr("\n");
                self.line_drawn = false;
            }
            ProgressMode::Lines => {
                write_stderr(&format!("lvt: {}\n", status_line(now_ms, &self.counters)))
            }
            ProgressMode::Auto | ProgressMode::Off => {}
        }
    }

    fn redraw(&mut self, now_ms: f64, force: bool) {
        if self.mode != ProgressMode::Terminal {
            return;
        }
        let due = self
            .last_status_ms
            .is_none_or(|t| now_ms - t >= TERMINAL_REDRAW_MS);
        if !(due || force) {
            return;
        }
        self.last_status_ms = Some(now_ms);
        // `\r` and "erase line" keep one line on screen however often it is redrawn.
        write_stderr(&format!("\r\x1b[2K{}", status_line(now_ms, &self.counters)));
        self.line_drawn = true;
    }

    fn clear(&mut self) {
        if self.line_drawn {
            write_stderr("\r\x1b[2K");
            self.line_drawn = false;
        }
    }
}

fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    // Progress is best effort: a closed stderr must not stop the run.
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::record::StartKind;
    use lvt_schema::{Complexity, Failure, FailureClass, LatencySummary, SessionReport};

    fn record(outcome: Outcome, startup_ms: Option<f64>, e2e_ms: Option<f64>) -> SessionRecord {
        let mut report = SessionReport::new("s", "noop", 0);
        report.outcome = outcome;
        report.metrics.startup_ms = startup_ms;
        report.metrics.e2e_latency_ms = e2e_ms.map(|p50| LatencySummary {
            count: 10,
            p50,
            p90: p50,
            p95: p50,
            p99: p50,
            max: p50,
            mean: p50,
            min: p50,
        });
        if outcome == Outcome::Failed {
            report.failure = Some(Failure {
                class: FailureClass::OutputTimeout,
                detail: "x".into(),
            });
        }
        SessionRecord {
            index: 12,
            target: "https://127.0.0.1:8935".into(),
            prompt_id: "neon".into(),
            complexity: Complexity::Low,
            start: StartKind::Warm,
            scheduled_at_ms: 0.0,
            queue_delay_ms: 0.0,
            startup_from_schedule_ms: startup_ms,
            report,
        }
    }

    #[test]
    fn status_line_counts_and_medians() {
        let mut c = Counters::default();
        assert_eq!(
            status_line(0.0, &c),
            "00:00 running 0 done 0 passed 0 failed 0 busy 0 | startup p50 - e2e p50 - fps p50 -"
        );
        for _ in 0..4 {
            c.handle_started();
        }
        c.handle_finished(&record(Outcome::Passed, Some(800.0), Some(40.0)));
        c.handle_finished(&record(Outcome::Passed, Some(812.0), Some(45.0)));
        c.handle_finished(&record(Outcome::Failed, None, None));
        c.dropped = 2;
        assert_eq!(
            status_line(83_500.0, &c),
            "01:23 running 1 done 3 passed 2 failed 1 busy 0 dropped 2 \
             | startup p50 800ms e2e p50 40ms fps p50 -"
        );
        c.handle_finished(&record(Outcome::UnscoredIndeterminate, None, None));
        assert!(
            status_line(3_723_000.0, &c).starts_with("1:02:03 running 0 done 4"),
            "{}",
            status_line(3_723_000.0, &c)
        );
        assert!(status_line(0.0, &c).contains(" unscored 1 "));
    }

    #[test]
    fn session_line_names_outcome_and_values() {
        assert_eq!(
            session_line(&record(Outcome::Passed, Some(812.4), Some(45.0))),
            "session 12 target=https://127.0.0.1:8935 prompt=neon outcome=passed \
             startup=812ms e2e p50=45ms fps=-"
        );
        let mut failed = record(Outcome::Failed, None, None);
        failed.queue_delay_ms = 250.0;
        assert_eq!(
            session_line(&failed),
            "session 12 target=https://127.0.0.1:8935 prompt=neon outcome=failed \
             failure=output_timeout startup=- e2e p50=- fps=- queued=250ms"
        );
    }

    #[test]
    fn tick_interval_follows_the_mode() {
        assert_eq!(ProgressMode::Terminal.tick_ms(), Some(500.0));
        assert_eq!(ProgressMode::Lines.tick_ms(), Some(10_000.0));
        assert_eq!(ProgressMode::Off.tick_ms(), None);
    }
}
