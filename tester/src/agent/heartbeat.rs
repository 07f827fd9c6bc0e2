//! The agent's heartbeat: every `heartbeat_s` the status board becomes a
//! [`lvt_schema::heartbeat::Heartbeat`], signed with the agent's key like a result batch (fresh
//! timestamp and nonce) and posted to `{collector}/v1/agents/heartbeat`. A heartbeat that cannot
//! be delivered is not spooled: only the latest matters, and the next one follows; the failure
//! shows in `/status` (`last_heartbeat_error`) and the log.

use std::sync::Arc;
use std::time::Duration;

use lvt_schema::heartbeat::{Heartbeat, HeartbeatSchedule};
use lvt_schema::sign::SigningKey;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::admin::StatusBoard;
use crate::probe::unix_ms;

/// Where and how often heartbeats go.
pub struct HeartbeatTarget {
    /// The collector's base URL.
    pub collector: String,
    /// The agent's signing key.
    pub key: SigningKey,
    /// The interval (`heartbeat_s`).
    pub every: Duration,
}

/// The heartbeat the board says now.
pub fn heartbeat_of(board: &StatusBoard, interval: Duration) -> Heartbeat {
    let spool = board.spool();
    let status = board.lock().clone();
    Heartbeat {
        sent_at_unix_ms: unix_ms(),
        interval_s: interval.as_secs().max(1),
        region: status.region,
        lvt_version: format!("lvt {}", env!("CARGO_PKG_VERSION")),
        started_at_unix_ms: status.started_at_unix_ms,
        scenario_repository: status.scenario_repository,
        scenario_commit: status.scenario_commit,
        refused_commit: status.refused_commit,
        refused_reasons: status.refused_reasons,
        last_pull_error: status.last_pull_error,
        schedules: status
            .schedules
            .into_iter()
            .map(|s| HeartbeatSchedule {
                scenario: s.scenario,
                next_unix_ms: s.next_unix_ms,
                last_start_unix_ms: s.last_start_unix_ms,
            })
            .collect(),
        runs_started: status.runs_started,
        runs_running: status.runs_running,
        runs_interrupted: status.runs_interrupted,
        runs_skipped: status.runs_skipped,
        sessions: status.sessions,
        sessions_skipped: status.sessions_skipped,
        budget_session_seconds_today: status.budget_session_seconds_today,
        budget_payment_wei_today: status.budget_payment_wei_today,
        spool_batches: spool.batches,
        spool_bytes: spool.bytes,
        spool_full: spool.full,
        last_error: status.last_error,
    }
}

/// Sends one heartbeat; the error says what failed.
async fn send(
    http: &reqwest::Client,
    target: &HeartbeatTarget,
    heartbeat: &Heartbeat,
) -> Result<(), String> {
    let value = serde_json::to_value(heartbeat).map_err(|e| e.to_string())?;
    let signature = lvt_schema::sign::sign_batch(
        &target.key,
        &value,
        heartbeat.sent_at_unix_ms,
        lvt_schema::sign::random_nonce(),
    );
    let url = format!(
        "{}/v1/agents/heartbeat",
        target.collector.trim_end_matches('/')
    );
    let mut request = http
        .post(&url)
        .header("Content-Type", "application/json")
        .body(value.to_string());
    for (name, header) in signature.to_headers() {
        request = request.header(name, header);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let body = response.text().await.unwrap_or_default();
        Err(format!("{url} answered {status}: {body}"))
    }
}

/// Sends a heartbeat at once and then every `target.every` until `shutdown`.
pub async fn run(target: HeartbeatTarget, board: Arc<StatusBoard>, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(http) => http,
        Err(error) => {
            warn!(message = "Heartbeats are off: no HTTP client.", error = %error);
            return;
        }
    };
    loop {
        let heartbeat = heartbeat_of(&board, target.every);
        let sent = send(&http, &target, &heartbeat).await;
        {
            let mut status = board.lock();
            match sent {
                Ok(()) => {
                    debug!(message = "Heartbeat sent.");
                    status.last_heartbeat_unix_ms = Some(heartbeat.sent_at_unix_ms);
                    status.last_heartbeat_error = None;
                }
                Err(error) => {
                    if status.last_heartbeat_error.is_none() {
                        warn!(message = "Heartbeat not delivered.", error = %error);
                    }
                    status.last_heartbeat_error = Some(error);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(target.every) => {}
        }
    }
}
