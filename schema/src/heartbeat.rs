//! The heartbeat a regional agent (`lvt agent`) sends its collector every `heartbeat_s`: signed
//! like a result batch (same key, timestamp window and nonce), so the fleet view shows only
//! what the agents themselves said. The collector keeps the latest per agent and derives a
//! status from it (docs/agent.md, "Heartbeats").

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// When the agent sent it, ms since the Unix epoch (its own clock).
    pub sent_at_unix_ms: i64,
    /// How often the agent sends one, seconds; three missed intervals make it stale.
    pub interval_s: u64,
    /// The agent's region label.
    pub region: String,
    /// The tester's version, for example `lvt 0.1.0`.
    pub lvt_version: String,
    /// When the agent process started, ms since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// The scenario repository it pulls, when it pulls one.
    #[serde(default)]
    pub scenario_repository: Option<String>,
    /// The scenario commit in use.
    #[serde(default)]
    pub scenario_commit: Option<String>,
    /// The ref's newest commit when it was refused (the commit in use stayed).
    #[serde(default)]
    pub refused_commit: Option<String>,
    /// Why it was refused, `file:line:col: ...` where the reason has a place.
    #[serde(default)]
    pub refused_reasons: Vec<String>,
    /// Why the last pull of the repository failed, when it did.
    #[serde(default)]
    pub last_pull_error: Option<String>,
    /// Every schedule with its next start.
    #[serde(default)]
    pub schedules: Vec<HeartbeatSchedule>,
    /// Runs started since the agent started.
    pub runs_started: u64,
    /// Runs going on now.
    pub runs_running: u64,
    /// Runs the agent found cut off when it started (a crash or `kill -9` of its previous
    /// process): interrupted by the tester, never failures of an orchestrator.
    #[serde(default)]
    pub runs_interrupted: u64,
    /// Scheduled runs not started, by reason (`overlap`, `missed`, `spool_full`).
    #[serde(default)]
    pub runs_skipped: BTreeMap<String, u64>,
    /// Finished sessions by outcome.
    #[serde(default)]
    pub sessions: BTreeMap<String, u64>,
    /// Planned sessions not started, by reason (`budget`).
    #[serde(default)]
    pub sessions_skipped: BTreeMap<String, u64>,
    /// Session-seconds the `[budget]` admitted today (UTC) per target.
    #[serde(default)]
    pub budget_session_seconds_today: BTreeMap<String, u64>,
    /// What today's (UTC) sessions paid on chain, in wei of ticket expected value (decimal
    /// digits); absent when the agent pays offchain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_payment_wei_today: Option<String>,
    /// Batches waiting in the agent's spool.
    pub spool_batches: u64,
    /// Their bytes.
    pub spool_bytes: u64,
    /// The spool is at its cap: no new run starts until it drains.
    pub spool_full: bool,
    /// The last thing that went wrong, if anything did.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// One schedule as a heartbeat reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSchedule {
    /// The scenario id it runs.
    pub scenario: String,
    /// Its next start, ms since the Unix epoch.
    #[serde(default)]
    pub next_unix_ms: Option<i64>,
    /// Its last start.
    #[serde(default)]
    pub last_start_unix_ms: Option<i64>,
}

/// What a collector makes of an agent's latest heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentHealth {
    /// Heard from recently, nothing wrong reported.
    Ok,
    /// Heard from recently, but its spool is backing up, its newest scenario commit was
    /// refused, or its last pull failed.
    Degraded,
    /// No heartbeat for three of its intervals.
    Stale,
    /// Never sent a heartbeat (a configured agent that has not run, or one without heartbeats).
    Unknown,
}

impl AgentHealth {
    /// The status of an agent whose latest heartbeat (`None`: none) was received at
    /// `received_at_unix_ms`, at `now_ms`, with the reasons for anything but `ok`.
    pub fn classify(latest: Option<(&Heartbeat, i64)>, now_ms: i64) -> (Self, Vec<String>) {
        let Some((heartbeat, received_at)) = latest else {
            return (Self::Unknown, vec!["no heartbeat received".to_owned()]);
        };
        let interval_ms = i64::try_from(heartbeat.interval_s.max(1))
            .unwrap_or(i64::MAX / 4)
            .saturating_mul(1000);
        let silent_ms = now_ms.saturating_sub(received_at);
        if silent_ms > interval_ms.saturating_mul(3) {
            return (
                Self::Stale,
                vec![format!(
                    "no heartbeat for {} s (it sends one every {} s)",
                    silent_ms / 1000,
                    heartbeat.interval_s
                )],
            );
        }
        let mut reasons = Vec::new();
        if heartbeat.spool_full {
            reasons.push(format!(
                "its spool is full ({} batch(es), {} bytes): no new run starts",
                heartbeat.spool_batches, heartbeat.spool_bytes
            ));
        } else if heartbeat.spool_batches > 0 {
            reasons.push(format!(
                "its spool is backing up ({} batch(es), {} bytes)",
                heartbeat.spool_batches, heartbeat.spool_bytes
            ));
        }
        if let Some(commit) = &heartbeat.refused_commit {
            reasons.push(format!(
                "scenario commit {commit} was refused: {}",
                heartbeat.refused_reasons.join("; ")
            ));
        }
        if let Some(error) = &heartbeat.last_pull_error {
            reasons.push(format!("its last scenario pull failed: {error}"));
        }
        if reasons.is_empty() {
            (Self::Ok, reasons)
        } else {
            (Self::Degraded, reasons)
        }
    }

    /// The status's name in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Stale => "stale",
            Self::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat() -> Heartbeat {
        Heartbeat {
            sent_at_unix_ms: 1_000_000,
            interval_s: 30,
            region: "eu-west".into(),
            lvt_version: "lvt 0.1.0".into(),
            ..Heartbeat::default()
        }
    }

    #[test]
    fn a_recent_quiet_heartbeat_is_ok_and_three_missed_intervals_are_stale() {
        let b = beat();
        assert_eq!(
            AgentHealth::classify(Some((&b, 1_000_000)), 1_000_000).0,
            AgentHealth::Ok
        );
        assert_eq!(
            AgentHealth::classify(Some((&b, 1_000_000)), 1_090_000).0,
            AgentHealth::Ok,
            "exactly three intervals is not yet stale"
        );
        let (status, reasons) = AgentHealth::classify(Some((&b, 1_000_000)), 1_090_001);
        assert_eq!(status, AgentHealth::Stale);
        assert!(reasons[0].contains("no heartbeat for 90 s"), "{reasons:?}");
        assert_eq!(AgentHealth::classify(None, 0).0, AgentHealth::Unknown);
    }

    #[test]
    fn a_backed_up_spool_a_refused_commit_or_a_failed_pull_is_degraded() {
        for change in [
            (|b: &mut Heartbeat| b.spool_batches = 2) as fn(&mut Heartbeat),
            |b| {
                b.spool_batches = 9;
                b.spool_full = true;
            },
            |b| b.refused_commit = Some("abc".into()),
            |b| b.last_pull_error = Some("connection refused".into()),
        ] {
            let mut b = beat();
            change(&mut b);
            let (status, reasons) = AgentHealth::classify(Some((&b, 1_000_000)), 1_000_500);
            assert_eq!(status, AgentHealth::Degraded, "{b:?}");
            assert_eq!(reasons.len(), 1, "{reasons:?}");
        }
    }
}
