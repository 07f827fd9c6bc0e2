//! The fleet of regional agents as the collector sees it: each agent's status (`ok`, `degraded`,
//! `stale`, `unknown`) derived at read time from its latest stored heartbeat, for `/v1/agents`,
//! `/metrics` and the dashboard.

use std::collections::BTreeMap;

use lvt_schema::heartbeat::{AgentHealth, Heartbeat};

use crate::store::StoredHeartbeat;

/// One agent's latest heartbeat and what it makes of the agent now.
#[derive(Debug, Clone)]
pub struct AgentStatus {
    /// The heartbeat as sent, when one was received (`None` for one that no longer parses).
    pub heartbeat: Option<serde_json::Value>,
    /// When it was received (the collector's clock).
    pub received_at_unix_ms: Option<i64>,
    /// The status.
    pub health: AgentHealth,
    /// Why it is not `ok`.
    pub reasons: Vec<String>,
}

/// The status of every agent with a stored heartbeat, by agent id, at `now_ms`.
pub fn agent_statuses(beats: &[StoredHeartbeat], now_ms: i64) -> BTreeMap<String, AgentStatus> {
    beats
        .iter()
        .map(|stored| {
            let value: Option<serde_json::Value> =
                serde_json::from_str(&stored.heartbeat_json).ok();
            let parsed: Option<Heartbeat> = value
                .as_ref()
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            let (health, reasons) = match &parsed {
                Some(beat) => {
                    AgentHealth::classify(Some((beat, stored.received_at_unix_ms)), now_ms)
                }
                None => (
                    AgentHealth::Unknown,
                    vec!["its stored heartbeat cannot be read".to_owned()],
                ),
            };
            (
                stored.agent_id.clone(),
                AgentStatus {
                    heartbeat: value,
                    received_at_unix_ms: Some(stored.received_at_unix_ms),
                    health,
                    reasons,
                },
            )
        })
        .collect()
}

/// `lvt_collector_agents{status}`: how many agents are in each status (every status written, 0
/// included, so a dashboard's query never reads a missing series as "no stale agents").
pub fn render_metrics(counts: &BTreeMap<&'static str, u64>) -> String {
    let mut out = String::from(
        "# HELP lvt_collector_agents Agents by the status of their latest heartbeat (ok, degraded, stale; unknown: agents with a stored heartbeat that cannot be read).\n# TYPE lvt_collector_agents gauge\n",
    );
    for status in [
        AgentHealth::Ok,
        AgentHealth::Degraded,
        AgentHealth::Stale,
        AgentHealth::Unknown,
    ] {
        let name = status.as_str();
        out.push_str(&format!(
            "lvt_collector_agents{{status=\"{name}\"}} {}\n",
            counts.get(name).copied().unwrap_or(0)
        ));
    }
    out
}
