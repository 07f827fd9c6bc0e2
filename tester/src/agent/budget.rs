//! The agent's `[budget]`, enforced where each session starts (the executor's
//! [`SessionAdmission`]): at most `max_concurrent_sessions` sessions at once over all runs, and at
//! most `max_session_seconds_per_orchestrator_per_day` planned session-seconds per target per UTC
//! day. A session that does not fit is not started: the run goes on with the sessions that fit
//! and reports the rest as skipped for budget. The day's counters live in `state.json`
//! ([`BudgetDay`]), so a restart does not reset them.
//!
//! A session's seconds are counted when it is admitted (its planned duration), not when it
//! ends: runs started together cannot overshoot the day's limit, and a session that fails
//! early still counts what was reserved for it. A network session counts against the target
//! `network` (its orchestrators are only known once it selects them).
//!
//! With a remote signer, `max_payment_wei_per_day` bounds what the day's sessions pay: the
//! expected value of the tickets each session's record carries ([`AgentBudget::paid`], counted
//! as each session ends). Once the day's payments reach the limit no session starts until the
//! next UTC day. What a session will pay is not known when it starts (it pays every 5 s for as
//! long as it runs), so the sessions running when the limit is reached may take the day past
//! it, by at most what they pay.

use std::any::Any;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::config::Budget;
use super::state::BudgetDay;
use crate::probe::unix_ms;
use crate::run::executor::SessionAdmission;

/// The budget of one agent.
#[derive(Debug)]
pub struct AgentBudget {
    sessions: Option<Arc<Semaphore>>,
    max_sessions: Option<u32>,
    per_target_s: Option<u64>,
    payment_wei: Option<u64>,
    day: Mutex<BudgetDay>,
}

impl AgentBudget {
    /// The budget `config` asks for, continuing the day's counters `day` (from `state.json`).
    pub fn new(config: &Budget, day: BudgetDay) -> Self {
        Self {
            sessions: config
                .max_concurrent_sessions
                .map(|n| Arc::new(Semaphore::new(usize::try_from(n).unwrap_or(usize::MAX)))),
            max_sessions: config.max_concurrent_sessions,
            per_target_s: config.max_session_seconds_per_orchestrator_per_day,
            payment_wei: config
                .max_payment_wei_per_day
                .as_ref()
                .map(|w| *w.get_ref()),
            day: Mutex::new(day),
        }
    }

    /// The day's counters now, for `state.json` and the heartbeat.
    pub fn day(&self) -> BudgetDay {
        self.lock().clone()
    }

    /// Counts what a session that ended at `now_ms` paid.
    pub fn paid(&self, wei: u128, now_ms: i64) {
        if wei > 0 {
            self.lock().pay(wei, now_ms);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetDay> {
        self.day
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a session of `session_s` seconds on `target` at `now_ms`.
    fn admit_at(
        &self,
        target: &str,
        session_s: u64,
        now_ms: i64,
    ) -> Result<Box<dyn Any + Send>, String> {
        if let Some(limit) = self.payment_wei {
            let paid = self.lock().paid(now_ms);
            if paid >= u128::from(limit) {
                return Err(format!(
                    "the day's payments reached {paid} wei of max_payment_wei_per_day = {limit}"
                ));
            }
        }
        let permit = match &self.sessions {
            None => None,
            Some(sessions) => Some(Arc::clone(sessions).try_acquire_owned().map_err(|_| {
                format!(
                    "max_concurrent_sessions = {} sessions already run",
                    self.max_sessions.unwrap_or(0)
                )
            })?),
        };
        if let Some(limit) = self.per_target_s {
            let mut day = self.lock();
            if day.sessions_that_fit(target, session_s, Some(limit), now_ms) == 0 {
                return Err(format!(
                    "{target} has used {} of its {limit} session-seconds today",
                    day.used(target, now_ms)
                ));
            }
            day.spend(target, session_s, now_ms);
        }
        Ok(Box::new(permit))
    }
}

impl SessionAdmission for AgentBudget {
    fn admit(&self, target: &str, session_s: u64) -> Result<Box<dyn Any + Send>, String> {
        self.admit_at(target, session_s, unix_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn sessions_fit_the_day_per_target_and_a_new_day_starts_from_zero() {
        let budget = AgentBudget::new(
            &Budget {
                max_concurrent_sessions: None,
                max_session_seconds_per_orchestrator_per_day: Some(100),
                max_payment_wei_per_day: None,
            },
            BudgetDay::default(),
        );
        let at = 10 * DAY_MS + 5;
        for _ in 0..3 {
            assert!(budget.admit_at("https://a", 30, at).is_ok());
        }
        let refused = budget.admit_at("https://a", 30, at).map(drop).unwrap_err();
        assert!(refused.contains("used 90 of its 100"), "{refused}");
        assert!(budget.admit_at("https://b", 30, at).is_ok(), "per target");
        assert!(
            budget.admit_at("https://a", 30, 11 * DAY_MS).is_ok(),
            "a new UTC day"
        );
        // The counters continue across a restart through state.json.
        let again = AgentBudget::new(
            &Budget {
                max_concurrent_sessions: None,
                max_session_seconds_per_orchestrator_per_day: Some(100),
                max_payment_wei_per_day: None,
            },
            budget.day(),
        );
        assert_eq!(again.day().used("https://a", 11 * DAY_MS), 30);
    }

    #[test]
    fn concurrency_is_held_until_the_session_lets_go() {
        let budget = AgentBudget::new(
            &Budget {
                max_concurrent_sessions: Some(2),
                max_session_seconds_per_orchestrator_per_day: None,
                max_payment_wei_per_day: None,
            },
            BudgetDay::default(),
        );
        let first = budget.admit_at("https://a", 10, 0).unwrap();
        let _second = budget.admit_at("https://b", 10, 0).unwrap();
        let refused = budget.admit_at("https://c", 10, 0).map(drop).unwrap_err();
        assert!(refused.contains("max_concurrent_sessions = 2"), "{refused}");
        drop(first);
        assert!(budget.admit_at("https://c", 10, 0).is_ok());
    }

    #[test]
    fn sessions_stop_starting_once_the_days_payments_reach_the_limit() {
        let budget = AgentBudget::new(
            &Budget {
                max_concurrent_sessions: None,
                max_session_seconds_per_orchestrator_per_day: None,
                max_payment_wei_per_day: Some(toml::Spanned::new(0..0, 3_000)),
            },
            BudgetDay::default(),
        );
        let at = 10 * DAY_MS + 5;
        assert!(budget.admit_at("https://a", 10, at).is_ok());
        budget.paid(2_000, at);
        assert!(
            budget.admit_at("https://b", 10, at).is_ok(),
            "2,000 < 3,000"
        );
        budget.paid(1_500, at);
        let refused = budget.admit_at("https://a", 10, at).map(drop).unwrap_err();
        assert_eq!(
            refused,
            "the day's payments reached 3500 wei of max_payment_wei_per_day = 3000"
        );
        assert_eq!(budget.day().paid(at), 3_500);
        assert!(
            budget.admit_at("https://a", 10, 11 * DAY_MS).is_ok(),
            "a new UTC day"
        );
    }
}
