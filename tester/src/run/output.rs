//! A finished run's report (`run.json`) and the files written beside it: `junit.xml` for CI
//! systems and a self-contained `report.html` for people. Also the run's exit code as far as
//! thresholds decide it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use lvt_wire::payment::PaymentValue;
use serde::{Deserialize, Serialize};

use crate::run::record::{RUN_FORMAT_VERSION, ScenarioIdentity, SessionRecord, StopReason};
use crate::run::summary::{GroupSummary, overall, summarize};
use crate::run::verdict::{Verdict, evaluate_all};
use crate::scenario::Scenario;

/// The exit code of a run in which at least one threshold failed (or had no data).
pub const EXIT_THRESHOLD_FAILED: u8 = 99;

/// Everything a run produced: `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// [`RUN_FORMAT_VERSION`] at the writer.
    pub format_version: u32,
    pub scenario: ScenarioIdentity,
    /// The scenario's description.
    pub description: String,
    /// Wall-clock start and end of the run, ms since the Unix epoch.
    pub started_at_unix_ms: i64,
    pub ended_at_unix_ms: i64,
    pub stop: StopReason,
    /// The orchestrator URIs the run tested, after discovery.
    pub targets: Vec<String>,
    /// The scenario's `load` section, as JSON.
    pub load: serde_json::Value,
    /// Every session, in scheduled order.
    pub sessions: Vec<SessionRecord>,
    /// Open-model arrivals not started because `max_in_flight` sessions were running.
    pub dropped_arrivals: u64,
    /// Most sessions in flight at once.
    pub peak_in_flight: u64,
    /// Planned sessions not started because the agent's `[budget]` had no room for them
    /// (always 0 outside `lvt agent`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_for_budget: u64,
    /// On chain: what all the sessions paid together (the sum of their records' `payment`);
    /// absent when no session was paid through a remote signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<lvt_schema::PaymentSpent>,
    /// One summary per group of the scenario's `report.group_by`.
    pub groups: Vec<GroupSummary>,
    /// The summary of all sessions.
    pub overall: GroupSummary,
    /// One verdict per threshold, in scenario order.
    pub verdicts: Vec<Verdict>,
    /// The lvt version that ran the scenario.
    pub tester_version: String,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl RunReport {
    /// Assembles the report of a finished run: groups, overall summary and verdicts are
    /// computed from `sessions`.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        identity: ScenarioIdentity,
        scenario: &Scenario,
        started_at_unix_ms: i64,
        ended_at_unix_ms: i64,
        stop: StopReason,
        targets: Vec<String>,
        sessions: Vec<SessionRecord>,
        dropped_arrivals: u64,
        peak_in_flight: u64,
    ) -> RunReport {
        let groups = summarize(&sessions, &scenario.report.group_by);
        let overall = overall(&sessions);
        let verdicts = evaluate_all(scenario, &sessions);
        let payment = total_payment(&sessions);
        // The load section is plain data (numbers, strings, booleans); serializing it to a
        // JSON value cannot fail, and `Null` would only hide a field, not corrupt the report.
        let load = serde_json::to_value(&scenario.load).unwrap_or(serde_json::Value::Null);
        RunReport {
            format_version: RUN_FORMAT_VERSION,
            scenario: identity,
            description: scenario.description.clone(),
            started_at_unix_ms,
            ended_at_unix_ms,
            stop,
            targets,
            load,
            sessions,
            dropped_arrivals,
            peak_in_flight,
            skipped_for_budget: 0,
            payment,
            groups,
            overall,
            verdicts,
            tester_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The run's wall-clock length in seconds (0 if the clock went backwards).
    pub fn duration_s(&self) -> f64 {
        (self.ended_at_unix_ms - self.started_at_unix_ms).max(0) as f64 / 1000.0
    }

    /// True when any threshold failed or could not be verified.
    pub fn any_threshold_failed(&self) -> bool {
        self.verdicts.iter().any(Verdict::failed)
    }
}

/// The sum of the sessions' on-chain payments, `None` when none was paid.
fn total_payment(sessions: &[SessionRecord]) -> Option<lvt_schema::PaymentSpent> {
    let mut paid = sessions
        .iter()
        .filter_map(|s| s.report.payment.as_ref())
        .peekable();
    paid.peek()?;
    let total = paid.fold(PaymentValue::default(), |total, p| {
        total.saturating_add(PaymentValue {
            tickets: p.tickets,
            expected_value_wei: p.expected_value_wei.parse().unwrap_or(0),
        })
    });
    Some(lvt_schema::PaymentSpent {
        tickets: total.tickets,
        expected_value_wei: total.expected_value_wei.to_string(),
    })
}

/// The exit code thresholds give a run: 99 when any failed (or had no data), else 0. The CLI
/// uses 1 (could not proceed) and 2 (bad input) for runs that did not get this far.
pub fn exit_code(report: &RunReport) -> u8 {
    if report.any_threshold_failed() {
        EXIT_THRESHOLD_FAILED
    } else {
        0
    }
}

/// Where [`write_outputs`] put the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPaths {
    pub run_json: PathBuf,
    pub junit_xml: PathBuf,
    pub report_html: PathBuf,
}

/// Why the outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot create output directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialize run.json: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Writes `run.json`, `junit.xml` and `report.html` into `dir`, creating it. Each file is
/// written under a temporary name in `dir` and renamed into place, so a reader (or a CI step
/// after a crash) sees either the previous file or the complete new one, never half of one.
pub fn write_outputs(report: &RunReport, dir: &Path) -> Result<OutputPaths, OutputError> {
    fs::create_dir_all(dir).map_err(|source| OutputError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut json = serde_json::to_string_pretty(report)?;
    json.push('\n');
    let paths = OutputPaths {
        run_json: dir.join("run.json"),
        junit_xml: dir.join("junit.xml"),
        report_html: dir.join("report.html"),
    };
    write_atomically(&paths.run_json, json.as_bytes())?;
    write_atomically(
        &paths.junit_xml,
        crate::run::junit::junit_xml(report).as_bytes(),
    )?;
    write_atomically(
        &paths.report_html,
        crate::run::html::report_html(report).as_bytes(),
    )?;
    Ok(paths)
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), OutputError> {
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        // The temporary file is ours and useless after a failure; removing it is best effort.
        let _ = fs::remove_file(&tmp);
        OutputError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}
