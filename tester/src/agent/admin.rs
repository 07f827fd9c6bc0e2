//! The agent's admin endpoints on `admin_listen`: `/healthz`, `/status` (JSON) and `/metrics`
//! (Prometheus text). The driver writes what it does on a [`StatusBoard`]; the server only
//! reads it (and the spool folder, measured at request time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// One schedule as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleStatus {
    /// The scheduled scenario id.
    pub scenario: String,
    /// The next start (jitter included), ms since the Unix epoch; `None` if the pattern has
    /// no further occurrence.
    pub next_unix_ms: Option<i64>,
    /// When the last run started and how late that was after its due time.
    pub last_start_unix_ms: Option<i64>,
    /// The last start's delay after its (jittered) due time, in ms.
    pub last_lag_ms: Option<i64>,
}

/// What the agent is doing, as the driver last wrote it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentStatus {
    /// The agent's id (its key id).
    pub agent_id: String,
    /// Its region label.
    pub region: String,
    /// When it started, ms since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// Runs started since then.
    pub runs_started: u64,
    /// Runs going on now.
    pub runs_running: u64,
    /// Runs found cut off at start (by a crash or `kill -9` of the previous process).
    pub runs_interrupted: u64,
    /// Finished sessions by outcome (`passed`, `failed`, `unscored_busy`,
    /// `unscored_indeterminate`).
    pub sessions: BTreeMap<String, u64>,
    /// Every schedule.
    pub schedules: Vec<ScheduleStatus>,
    /// The scenario commit in use: the adopted one (a repository), or the commit of the folder
    /// the last run read when that folder is a git checkout.
    pub scenario_commit: Option<String>,
    /// The scenario repository pulled, when `[scenarios] git` names one.
    pub scenario_repository: Option<String>,
    /// When the repository was last pulled, ms since the Unix epoch.
    pub last_pull_unix_ms: Option<i64>,
    /// Why the last pull failed (the fetch itself), if it did.
    pub last_pull_error: Option<String>,
    /// The newest commit of the ref when it was refused (invalid, a history rewrite, a change
    /// without a version bump); the commit in use stays.
    pub refused_commit: Option<String>,
    /// Why it was refused, one reason each, `file:line:col: ...` where it has a place.
    pub refused_reasons: Vec<String>,
    /// The last thing that went wrong (a skipped run, a failed shipment), if any.
    pub last_error: Option<String>,
    /// Scheduled runs not started, by reason (`overlap`, `missed`, `spool_full`).
    pub runs_skipped: BTreeMap<String, u64>,
    /// Planned sessions not started, by reason (`budget`).
    pub sessions_skipped: BTreeMap<String, u64>,
    /// Session-seconds admitted today per target (the `[budget]` counters).
    pub budget_session_seconds_today: BTreeMap<String, u64>,
    /// On chain (a `remote_signer`): what today's sessions paid, in wei of ticket expected
    /// value, as decimal digits (the `[budget]` counter of `max_payment_wei_per_day`).
    pub budget_payment_wei_today: Option<String>,
    /// When the last heartbeat was delivered, ms since the Unix epoch.
    pub last_heartbeat_unix_ms: Option<i64>,
    /// Why the last heartbeat was not delivered, if it was not.
    pub last_heartbeat_error: Option<String>,
    /// When the configuration was last reloaded (SIGHUP), ms since the Unix epoch.
    pub last_reload_unix_ms: Option<i64>,
    /// Why the last reload was refused, if it was (the running configuration stayed).
    pub last_reload_error: Option<String>,
}

/// The spool as measured at request time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SpoolStatus {
    /// Batches waiting.
    pub batches: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The cap (`spool_max_bytes`).
    pub max_bytes: u64,
    /// At or above the cap: no new run starts until it drains.
    pub full: bool,
}

/// The status the driver writes and the admin server reads.
#[derive(Debug, Default)]
pub struct StatusBoard {
    status: Mutex<AgentStatus>,
    spool_dir: PathBuf,
    spool_max_bytes: u64,
}

impl StatusBoard {
    /// A board for an agent whose spool is `spool_dir`, capped at `spool_max_bytes`.
    pub fn new(status: AgentStatus, spool_dir: PathBuf, spool_max_bytes: u64) -> Self {
        Self {
            status: Mutex::new(status),
            spool_dir,
            spool_max_bytes,
        }
    }

    /// The status, to read or change.
    pub fn lock(&self) -> MutexGuard<'_, AgentStatus> {
        // A panic while holding the lock leaves figures that are still worth showing.
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The spool measured now.
    pub fn spool(&self) -> SpoolStatus {
        let files = crate::ship::spool_files(&self.spool_dir).unwrap_or_default();
        let bytes = files
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|meta| meta.len())
            .sum();
        SpoolStatus {
            batches: u64::try_from(files.len()).unwrap_or(u64::MAX),
            bytes,
            max_bytes: self.spool_max_bytes,
            full: bytes >= self.spool_max_bytes,
        }
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` is cancelled.
///
/// # Errors
/// When the server fails (the listener breaks).
pub async fn serve(
    listener: tokio::net::TcpListener,
    board: Arc<StatusBoard>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(board);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn status(State(board): State<Arc<StatusBoard>>) -> Response {
    let spool = board.spool();
    let status = board.lock().clone();
    let mut body = serde_json::to_value(&status).unwrap_or_default();
    body["spool"] = serde_json::to_value(spool).unwrap_or_default();
    axum::Json(body).into_response()
}

async fn metrics(State(board): State<Arc<StatusBoard>>) -> Response {
    let spool = board.spool();
    let status = board.lock().clone();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render(&status, spool),
    )
        .into_response()
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render(status: &AgentStatus, spool: SpoolStatus) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "lvt_agent_runs_started_total",
        "counter",
        "Scheduled runs started.",
    );
    let _ = writeln!(out, "lvt_agent_runs_started_total {}", status.runs_started);
    header(
        &mut out,
        "lvt_agent_runs_running",
        "gauge",
        "Runs going on now.",
    );
    let _ = writeln!(out, "lvt_agent_runs_running {}", status.runs_running);
    header(
        &mut out,
        "lvt_agent_runs_interrupted",
        "gauge",
        "Runs found cut off at start (a crash or kill -9 of the previous process).",
    );
    let _ = writeln!(
        out,
        "lvt_agent_runs_interrupted {}",
        status.runs_interrupted
    );
    header(
        &mut out,
        "lvt_agent_sessions_total",
        "counter",
        "Finished sessions by outcome.",
    );
    for (outcome, count) in &status.sessions {
        let _ = writeln!(
            out,
            "lvt_agent_sessions_total{{outcome=\"{outcome}\"}} {count}"
        );
    }
    header(
        &mut out,
        "lvt_agent_spool_batches",
        "gauge",
        "Batches waiting in the spool.",
    );
    let _ = writeln!(out, "lvt_agent_spool_batches {}", spool.batches);
    header(
        &mut out,
        "lvt_agent_spool_bytes",
        "gauge",
        "Bytes waiting in the spool.",
    );
    let _ = writeln!(out, "lvt_agent_spool_bytes {}", spool.bytes);
    header(
        &mut out,
        "lvt_agent_spool_max_bytes",
        "gauge",
        "The spool's byte cap (spool_max_bytes).",
    );
    let _ = writeln!(out, "lvt_agent_spool_max_bytes {}", spool.max_bytes);
    header(
        &mut out,
        "lvt_agent_spool_full",
        "gauge",
        "1 when the spool is at or above its cap: no new run starts until it drains.",
    );
    let _ = writeln!(out, "lvt_agent_spool_full {}", u8::from(spool.full));
    if let Some(wei) = &status.budget_payment_wei_today {
        header(
            &mut out,
            "lvt_agent_budget_payment_wei_today",
            "gauge",
            "What today's (UTC) sessions paid on chain, wei of ticket expected value.",
        );
        let _ = writeln!(out, "lvt_agent_budget_payment_wei_today {wei}");
    }
    header(
        &mut out,
        "lvt_agent_runs_skipped_total",
        "counter",
        "Scheduled runs not started, by reason (overlap, missed, spool_full).",
    );
    for (reason, count) in &status.runs_skipped {
        let _ = writeln!(
            out,
            "lvt_agent_runs_skipped_total{{reason=\"{reason}\"}} {count}"
        );
    }
    header(
        &mut out,
        "lvt_agent_schedule_lag_seconds",
        "gauge",
        "How late each schedule's last run started after its jittered due time.",
    );
    for schedule in &status.schedules {
        if let Some(lag) = schedule.last_lag_ms {
            let _ = writeln!(
                out,
                "lvt_agent_schedule_lag_seconds{{scenario=\"{}\"}} {}",
                schedule.scenario,
                lag as f64 / 1000.0
            );
        }
    }
    header(
        &mut out,
        "lvt_agent_schedule_next_start_seconds",
        "gauge",
        "Each schedule's next start, seconds since the Unix epoch.",
    );
    for schedule in &status.schedules {
        if let Some(next) = schedule.next_unix_ms {
            let _ = writeln!(
                out,
                "lvt_agent_schedule_next_start_seconds{{scenario=\"{}\"}} {}",
                schedule.scenario,
                next / 1000
            );
        }
    }
    if status.scenario_repository.is_some() {
        header(
            &mut out,
            "lvt_agent_scenario_pull_failed",
            "gauge",
            "1 when the last pull of the scenario repository failed (the fetch itself).",
        );
        let _ = writeln!(
            out,
            "lvt_agent_scenario_pull_failed {}",
            u8::from(status.last_pull_error.is_some())
        );
        header(
            &mut out,
            "lvt_agent_scenario_commit_refused",
            "gauge",
            "1 when the ref's newest commit was refused (invalid, a history rewrite, a change \
             without a version bump) and an older one is in use.",
        );
        let _ = writeln!(
            out,
            "lvt_agent_scenario_commit_refused {}",
            u8::from(status.refused_commit.is_some())
        );
        if let Some(at) = status.last_pull_unix_ms {
            header(
                &mut out,
                "lvt_agent_scenario_last_pull_seconds",
                "gauge",
                "When the scenario repository was last pulled, seconds since the Unix epoch.",
            );
            let _ = writeln!(out, "lvt_agent_scenario_last_pull_seconds {}", at / 1000);
        }
    }
    if let Some(commit) = &status.scenario_commit {
        header(
            &mut out,
            "lvt_agent_scenario_commit_info",
            "gauge",
            "The scenario commit in use.",
        );
        let _ = writeln!(
            out,
            "lvt_agent_scenario_commit_info{{commit=\"{commit}\"}} 1"
        );
    }
    out
}
