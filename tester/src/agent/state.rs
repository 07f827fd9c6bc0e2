//! The agent's durable state in `state_dir/state.json`: what it must remember across a crash
//! or a restart, written atomically (a temporary file, fsync, rename, fsync of the folder) so
//! that a `kill -9` at any moment leaves either the old state or the new one, never a torn file.
//!
//! It holds the adopted scenario commit, the last start of each schedule (for `missed`), the
//! budget counters of the current UTC day, and the certificate fingerprint first seen for each
//! orchestrator (trust on first use).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name inside `state_dir`.
pub const STATE_FILE: &str = "state.json";

/// Everything the agent keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentState {
    /// The scenario commit in use (hex), once one was adopted.
    #[serde(default)]
    pub adopted_commit: Option<String>,
    /// The last start of each schedule, by scenario id, in ms since the Unix epoch.
    #[serde(default)]
    pub last_starts: BTreeMap<String, i64>,
    #[serde(default)]
    pub budget: BudgetDay,
    /// SHA-256 certificate fingerprints by orchestrator URI, as first seen.
    #[serde(default)]
    pub fingerprints: BTreeMap<String, String>,
    /// Runs started and not finished, by run key (`scenario@due_ms`): what is left here at a
    /// start was cut off by a crash or `kill -9`, and is reported as interrupted.
    #[serde(default)]
    pub runs_in_flight: BTreeMap<String, RunInFlight>,
}

/// A run that started and has not finished.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInFlight {
    /// The scenario id.
    pub scenario: String,
    /// When it started, ms since the Unix epoch.
    pub started_at_unix_ms: i64,
}

/// The budget spent on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetDay {
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    /// Session-seconds run against each orchestrator that day, by URI.
    pub session_seconds: BTreeMap<String, u64>,
    /// What the day's sessions paid on chain, in wei of ticket expected value.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payment_wei: u128,
}

fn is_zero(value: &u128) -> bool {
    *value == 0
}

impl BudgetDay {
    /// The day of `unix_ms`.
    pub fn day_of(unix_ms: i64) -> i64 {
        unix_ms.div_euclid(86_400_000)
    }

    /// Session-seconds used on `orchestrator` on the day of `now_ms` (0 on a new day).
    pub fn used(&self, orchestrator: &str, now_ms: i64) -> u64 {
        if self.day != Self::day_of(now_ms) {
            return 0;
        }
        self.session_seconds.get(orchestrator).copied().unwrap_or(0)
    }

    /// How many sessions of `session_s` seconds each still fit on `orchestrator` today under
    /// `limit` session-seconds a day (`None`: unlimited).
    pub fn sessions_that_fit(
        &self,
        orchestrator: &str,
        session_s: u64,
        limit: Option<u64>,
        now_ms: i64,
    ) -> u64 {
        match limit {
            None => u64::MAX,
            Some(limit) => {
                let left = limit.saturating_sub(self.used(orchestrator, now_ms));
                left.checked_div(session_s.max(1)).unwrap_or(0)
            }
        }
    }

    /// Wei paid on the day of `now_ms` (0 on a new day).
    pub fn paid(&self, now_ms: i64) -> u128 {
        if self.day == Self::day_of(now_ms) {
            self.payment_wei
        } else {
            0
        }
    }

    /// Adds `wei` paid at `now_ms`; a new UTC day starts from zero.
    pub fn pay(&mut self, wei: u128, now_ms: i64) {
        self.turn(now_ms);
        self.payment_wei = self.payment_wei.saturating_add(wei);
    }

    /// Starts the day of `now_ms` from zero if it is a new one.
    fn turn(&mut self, now_ms: i64) {
        let day = Self::day_of(now_ms);
        if self.day != day {
            self.day = day;
            self.session_seconds.clear();
            self.payment_wei = 0;
        }
    }

    /// Adds `seconds` run on `orchestrator` at `now_ms`; a new UTC day starts from zero.
    pub fn spend(&mut self, orchestrator: &str, seconds: u64, now_ms: i64) {
        self.turn(now_ms);
        let used = self
            .session_seconds
            .entry(orchestrator.to_string())
            .or_default();
        *used = used.saturating_add(seconds);
    }
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an agent state file: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl AgentState {
    /// Reads `dir/state.json`; a missing file is a fresh agent.
    pub fn load(dir: &Path) -> Result<Self, StateError> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Writes `dir/state.json` atomically: a crash at any moment leaves the old state or the
    /// new one.
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(STATE_FILE);
        let temporary = dir.join(format!(".{STATE_FILE}.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StateError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        {
            let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
            file.write_all(&bytes).map_err(io(&temporary))?;
            file.sync_all().map_err(io(&temporary))?;
        }
        std::fs::rename(&temporary, &path).map_err(io(&path))?;
        // The rename is durable only once the folder's entry is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn the_state_survives_a_restart_and_a_fresh_dir_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(AgentState::load(dir.path()).unwrap(), AgentState::default());
        let mut s = AgentState {
            adopted_commit: Some("0123abcd".into()),
            ..AgentState::default()
        };
        s.last_starts.insert("sla-hourly".into(), 1_796_428_800_000);
        s.budget.spend("https://o1:8935", 30, 1_796_428_800_000);
        // Wei beyond what a u64 holds survive the JSON round trip.
        s.budget.pay(u128::from(u64::MAX) * 3, 1_796_428_800_000);
        s.fingerprints.insert("https://o1:8935".into(), "aa".into());
        s.save(dir.path()).unwrap();
        assert_eq!(AgentState::load(dir.path()).unwrap(), s);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![STATE_FILE.to_string()]);
    }

    #[test]
    fn a_torn_or_foreign_file_is_refused_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), b"{\"adopted_commit\": \"ab").unwrap();
        let e = AgentState::load(dir.path()).unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        std::fs::write(dir.path().join(STATE_FILE), b"{\"mystery\": 1}").unwrap();
        assert!(AgentState::load(dir.path()).is_err());
    }

    #[test]
    fn the_budget_resets_each_utc_day() {
        let day0 = 20_000 * DAY_MS;
        let mut b = BudgetDay::default();
        b.spend("o", 3_000, day0 + 1);
        b.spend("o", 500, day0 + DAY_MS - 1);
        assert_eq!(b.used("o", day0 + 10), 3_500);
        assert_eq!(b.sessions_that_fit("o", 30, Some(3_600), day0 + 10), 3);
        assert_eq!(b.sessions_that_fit("o", 30, Some(3_000), day0 + 10), 0);
        assert_eq!(b.sessions_that_fit("o", 30, None, day0 + 10), u64::MAX);
        b.pay(1_000, day0 + 2);
        b.pay(500, day0 + 3);
        assert_eq!(b.paid(day0 + 10), 1_500);
        assert_eq!(b.paid(day0 + DAY_MS), 0, "a new day has paid nothing");
        // The next day starts from zero.
        assert_eq!(b.used("o", day0 + DAY_MS), 0);
        assert_eq!(
            b.sessions_that_fit("o", 30, Some(3_600), day0 + DAY_MS),
            120
        );
        b.spend("o", 60, day0 + DAY_MS);
        assert_eq!(b.used("o", day0 + DAY_MS), 60);
        assert_eq!(b.session_seconds.len(), 1);
        assert_eq!(b.payment_wei, 0, "the new day dropped the old payments");
    }
}
