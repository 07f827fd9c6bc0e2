//! The records a run writes to `run.json`: the scenario's identity, every session (the
//! collector's `SessionReport` plus the run's own labels and schedule), the grouped summary and
//! each threshold's verdict. This is the file format other tools read; fields are only added.

use lvt_schema::{Complexity, SessionReport};
use serde::{Deserialize, Serialize};

/// Bumped when a field of `run.json` changes meaning or disappears.
pub const RUN_FORMAT_VERSION: u32 = 1;

/// Who the scenario is: recorded in every run so results of different versions never mix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioIdentity {
    pub id: String,
    pub version: String,
    /// SHA-256 (hex) of the scenario's canonical form: the parsed scenario serialized as JSON
    /// with sorted keys, so formatting and comments do not change it.
    pub sha256: String,
    /// The file the scenario was read from, as given; `None` for an embedded scenario.
    pub path: Option<String>,
    /// The commit of the git repository holding the file, when it is in one.
    pub git_commit: Option<String>,
    /// The file's path relative to that repository's root.
    pub git_path: Option<String>,
    /// True when the file differs from that commit (uncommitted changes).
    pub git_dirty: Option<bool>,
    /// The repository the scenario was pulled from (`lvt agent`); `None` for a local file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_repository: Option<String>,
}

impl ScenarioIdentity {
    /// The part of the identity every session record carries (the file path is local to the
    /// machine that ran it, so it stays in run.json only).
    pub fn scenario_ref(&self) -> lvt_schema::ScenarioRef {
        lvt_schema::ScenarioRef {
            id: self.id.clone(),
            version: self.version.clone(),
            sha256: self.sha256.clone(),
            git_commit: self.git_commit.clone(),
            git_dirty: self.git_dirty,
            git_repository: self.git_repository.clone(),
            git_path: self.git_path.clone(),
        }
    }
}

/// Whether a session was the first on its target (cold) or followed another closely (warm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    Cold,
    Warm,
}

impl StartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StartKind::Cold => "cold",
            StartKind::Warm => "warm",
        }
    }
}

/// One session of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Position in the plan, from 0, in scheduled order.
    pub index: u64,
    /// The orchestrator URI the session ran against.
    pub target: String,
    pub prompt_id: String,
    pub complexity: Complexity,
    pub start: StartKind,
    /// When the session was due, ms after the run started.
    pub scheduled_at_ms: f64,
    /// How late it actually started against that schedule, ms (>= 0).
    pub queue_delay_ms: f64,
    /// `report.metrics.startup_ms + queue_delay_ms`: startup measured from the scheduled start
    /// (coordinated-omission free); `None` when the session produced no output.
    pub startup_from_schedule_ms: Option<f64>,
    /// The session's result record, as the collector receives it.
    pub report: SessionReport,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// Every planned session ran.
    Completed,
    /// Ctrl-C (or another shutdown request); sessions in flight were stopped cleanly.
    Interrupted,
    /// A threshold with `abort_on_fail` failed.
    Aborted { threshold: String },
}
