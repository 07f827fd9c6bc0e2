//! Cold and warm starts of a simulated orchestrator: whether a new session finds the model
//! already loaded, and so how long it loads before the first output.
//!
//! A real orchestrator that has run nothing for a while has unloaded its model (or stopped its
//! runner container), so the next session pays the full load time; a session that starts while
//! others run, or shortly after one ended, finds the model in memory. [`WarmthTracker`] keeps
//! the little state this needs and makes the decision from times it is given (microseconds on
//! any monotonic clock the caller chooses); it never reads a clock, so the unit tests below
//! cover every case with explicit times. The job start handler owns one per orchestrator.

use super::profile::Profile;

/// Whether a session had to load the model first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// The first session, or the first after the orchestrator ran nothing for at least
    /// `cold_after_idle_s`: it loads for `cold_startup_ms`.
    Cold,
    /// The model was loaded (or being loaded): it loads for `startup_ms`, or for the rest of a
    /// cold load still in progress if that is longer.
    Warm,
}

impl StartKind {
    /// `cold` or `warm`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StartKind::Cold => "cold",
            StartKind::Warm => "warm",
        }
    }
}

/// The decision for one session start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartDecision {
    pub kind: StartKind,
    /// How long the session loads before it can produce output, in microseconds.
    pub startup_us: u64,
}

/// The load times and idle window of a profile, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmthConfig {
    pub warm_startup_us: u64,
    pub cold_startup_us: u64,
    pub cold_after_idle_us: u64,
}

impl WarmthConfig {
    /// The profile's timings; without `cold_startup_ms` a cold start loads as long as a warm one.
    pub fn from_profile(profile: &Profile) -> Self {
        let warm_startup_us = profile.startup_ms.saturating_mul(1000);
        Self {
            warm_startup_us,
            cold_startup_us: profile
                .cold_startup_ms
                .map_or(warm_startup_us, |ms| ms.saturating_mul(1000)),
            cold_after_idle_us: profile.cold_after_idle_s.saturating_mul(1_000_000),
        }
    }
}

/// The model state of one orchestrator, updated as sessions start and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmthTracker {
    config: WarmthConfig,
    /// Sessions started and not yet ended.
    running: u32,
    /// When the last session ended leaving none running; `None` before the first session ever,
    /// which makes the very first session cold.
    idle_since_us: Option<u64>,
    /// When the most recent cold load finishes (or finished).
    loaded_at_us: u64,
    /// True once any session started.
    started_any: bool,
}

impl WarmthTracker {
    pub fn new(config: WarmthConfig) -> Self {
        Self {
            config,
            running: 0,
            idle_since_us: None,
            loaded_at_us: 0,
            started_any: false,
        }
    }

    /// Sessions started and not yet ended.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// What a session starting at `now_us` would get, without recording it.
    pub fn peek_start(&self, now_us: u64) -> StartDecision {
        let idle_long = self.running == 0
            && self.idle_since_us.is_some_and(|since| {
                now_us.saturating_sub(since) >= self.config.cold_after_idle_us
            });
        if !self.started_any || idle_long {
            return StartDecision {
                kind: StartKind::Cold,
                startup_us: self.config.cold_startup_us,
            };
        }
        // A session arriving while a cold load is still running waits for that load: the model
        // it needs is not in memory yet, however warm the orchestrator otherwise is.
        let remaining_cold_us = self.loaded_at_us.saturating_sub(now_us);
        StartDecision {
            kind: StartKind::Warm,
            startup_us: self.config.warm_startup_us.max(remaining_cold_us),
        }
    }

    /// Records a session starting at `now_us` and returns how it starts.
    pub fn handle_session_start(&mut self, now_us: u64) -> StartDecision {
        let decision = self.peek_start(now_us);
        if decision.kind == StartKind::Cold {
            self.loaded_at_us = now_us.saturating_add(decision.startup_us);
        }
        self.started_any = true;
        self.running = self.running.saturating_add(1);
        decision
    }

    /// Records a session (one that [`handle_session_start`](Self::handle_session_start)
    /// recorded) ending at `now_us`.
    pub fn handle_session_end(&mut self, now_us: u64) {
        self.running = self.running.saturating_sub(1);
        if self.running == 0 {
            self.idle_since_us = Some(now_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn tracker() -> WarmthTracker {
        WarmthTracker::new(WarmthConfig {
            warm_startup_us: 500_000,
            cold_startup_us: 2_500_000,
            cold_after_idle_us: 60 * S,
        })
    }

    fn cold() -> StartDecision {
        StartDecision {
            kind: StartKind::Cold,
            startup_us: 2_500_000,
        }
    }

    fn warm() -> StartDecision {
        StartDecision {
            kind: StartKind::Warm,
            startup_us: 500_000,
        }
    }

    #[test]
    fn the_very_first_session_is_cold_even_at_time_zero() {
        let mut t = tracker();
        assert_eq!(t.handle_session_start(0), cold());
        assert_eq!(t.running(), 1);
    }

    #[test]
    fn back_to_back_sessions_are_warm_after_the_first() {
        let mut t = tracker();
        assert_eq!(t.handle_session_start(0), cold());
        t.handle_session_end(30 * S);
        assert_eq!(t.handle_session_start(30 * S), warm());
        t.handle_session_end(60 * S);
        assert_eq!(t.handle_session_start(61 * S), warm());
    }

    #[test]
    fn idle_for_the_window_makes_the_next_start_cold_and_just_under_keeps_it_warm() {
        let mut t = tracker();
        t.handle_session_start(0);
        t.handle_session_end(10 * S);
        assert_eq!(t.peek_start(70 * S - 1), warm(), "one microsecond short");
        assert_eq!(t.handle_session_start(70 * S), cold(), "exactly the window");
        t.handle_session_end(80 * S);
        assert_eq!(t.handle_session_start(200 * S), cold());
    }

    #[test]
    fn a_running_session_keeps_the_model_warm_however_long_ago_it_started() {
        let mut t = tracker();
        t.handle_session_start(0);
        assert_eq!(t.handle_session_start(3600 * S), warm());
        t.handle_session_end(3601 * S);
        // One is still running, so the orchestrator was never idle.
        assert_eq!(t.handle_session_start(3700 * S), warm());
    }

    #[test]
    fn idle_time_counts_from_the_last_session_to_end() {
        let mut t = tracker();
        t.handle_session_start(0);
        t.handle_session_start(S);
        t.handle_session_end(10 * S);
        t.handle_session_end(50 * S);
        assert_eq!(
            t.peek_start(100 * S),
            warm(),
            "idle 50 s since the last end"
        );
        assert_eq!(
            t.peek_start(110 * S),
            cold(),
            "idle 60 s since the last end"
        );
    }

    #[test]
    fn a_start_during_a_cold_load_waits_for_the_rest_of_it() {
        let mut t = tracker();
        t.handle_session_start(0);
        assert_eq!(
            t.handle_session_start(1_000_000),
            StartDecision {
                kind: StartKind::Warm,
                startup_us: 1_500_000,
            }
        );
        // Past the point where the remaining load is shorter than a warm start.
        assert_eq!(t.handle_session_start(2_200_000), warm());
    }

    #[test]
    fn without_a_cold_startup_cold_and_warm_load_equally_long() {
        let profile = Profile {
            startup_ms: 700,
            ..Profile::default()
        };
        let config = WarmthConfig::from_profile(&profile);
        assert_eq!(config.cold_startup_us, 700_000);
        assert_eq!(config.warm_startup_us, 700_000);
        assert_eq!(config.cold_after_idle_us, 60 * S, "default window 60 s");
        let mut t = WarmthTracker::new(config);
        let first = t.handle_session_start(0);
        assert_eq!((first.kind, first.startup_us), (StartKind::Cold, 700_000));
    }

    #[test]
    fn profile_timings_convert_to_microseconds() {
        let profile = Profile {
            startup_ms: 500,
            cold_startup_ms: Some(2_500),
            cold_after_idle_s: 5,
            ..Profile::default()
        };
        assert_eq!(
            WarmthConfig::from_profile(&profile),
            WarmthConfig {
                warm_startup_us: 500_000,
                cold_startup_us: 2_500_000,
                cold_after_idle_us: 5 * S,
            }
        );
    }

    #[test]
    fn an_end_without_a_start_does_not_underflow() {
        let mut t = tracker();
        t.handle_session_end(5 * S);
        assert_eq!(t.running(), 0);
        assert_eq!(t.handle_session_start(6 * S), cold());
    }
}
