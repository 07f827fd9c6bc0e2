//! The driver of `lvt agent`: one loop that asks the [`Scheduler`] what is due, starts each
//! scheduled run as a task, hands every finished session to the shipper the moment it ends,
//! keeps `state.json` current, drains the spool in the background, and on shutdown lets the
//! runs finish for the grace period before ending them as tester-interrupted.
//!
//! Scenarios come from one of two places. When `[scenarios] git` names a repository (a URL,
//! or the path of a git repository), the agent pulls it at start and every `poll_s`
//! ([`super::pull`]), adopts a new commit only when it is valid as a whole, and each run uses
//! the commit adopted when it starts. When it names a plain folder, each run reads its scenario
//! file as it is then; an invalid or missing scenario skips the run, logged.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::admin::{AgentStatus, ScheduleStatus, StatusBoard};
use super::adopt::Adopted;
use super::config::AgentConfig;
use super::pull::{Pulled, Puller};
use super::schedule::{Action, Scheduler, SkipReason};
use super::state::AgentState;
use crate::probe::unix_ms;
use crate::run::executor::{self, RunOptions};
use crate::run::output::RunReport;
use crate::run::progress::ProgressMode;
use crate::run::record::ScenarioIdentity;
use crate::scenario::{Scenario, identity, validate};
use crate::ship::{SessionShipper, Transport};

/// The longest the loop sleeps without looking at the schedules again (the wall clock may
/// jump; a long sleep would then wake late).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What the agent needs beyond its configuration.
pub struct AgentSetup {
    /// The parsed configuration file.
    pub config: AgentConfig,
    /// The agent's id for the jitter: its key id, so each agent keeps its own offsets.
    pub agent_id: String,
    /// Where finished sessions are shipped.
    pub transport: Transport,
    /// The transport that re-sends spooled batches (the collector or the brokers).
    pub drain: Option<Transport>,
    /// Where the admin endpoints are served (`admin_listen`, bound by the caller); `None`: off.
    pub admin: Option<tokio::net::TcpListener>,
    /// Where heartbeats go; `None` without a collector URL.
    pub heartbeat: Option<super::heartbeat::HeartbeatTarget>,
    /// The configuration file, read again on each message of `reloads`.
    pub config_path: Option<PathBuf>,
    /// One message per reload request (SIGHUP).
    pub reloads: tokio::sync::mpsc::Receiver<()>,
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// `state_dir/state.json` could not be read or written.
    #[error(transparent)]
    State(#[from] super::state::StateError),
    /// A scheduled scenario is not in the scenario directory, or is invalid.
    #[error("{0}")]
    Scenario(String),
    /// The admin server failed.
    #[error("the admin server failed: {0}")]
    Admin(std::io::Error),
}

/// What the agent did, for its final report.
#[derive(Debug, Default)]
pub struct AgentSummary {
    /// Runs started.
    pub runs: u64,
    /// Sessions finished over all runs.
    pub sessions: u64,
    /// What shipping did.
    pub shipped: crate::ship::Shipped,
}

/// How the agent ended: its summary and the transport it shipped over.
pub struct AgentEnd {
    /// What it did.
    pub summary: AgentSummary,
    /// The transport, for the final report's wording.
    pub transport: Transport,
}

/// Where a run reads its scenario: a folder as it is at the run's start, or the commit adopted
/// then.
#[derive(Debug, Clone)]
enum RunSource {
    Folder(PathBuf),
    Git(Arc<Adopted>),
}

impl RunSource {
    fn find(&self, id: &str) -> Result<(Scenario, ScenarioIdentity), String> {
        match self {
            Self::Folder(dir) => find_scenario(dir, id),
            Self::Git(adopted) => adopted.find(id),
        }
    }
}

/// The scenario directory: `[scenarios] git` (a plain path) joined with `path`.
pub fn scenario_dir(config: &AgentConfig) -> PathBuf {
    Path::new(config.scenarios.git.get_ref()).join(&config.scenarios.path)
}

/// Finds the scenario with id `id` among the `*.toml` files of `dir` and validates it. An
/// invalid file that could be the one wanted is reported with its diagnostics.
pub fn find_scenario(dir: &Path, id: &str) -> Result<(Scenario, ScenarioIdentity), String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the scenario directory {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    let mut broken = Vec::new();
    for path in &paths {
        match validate::load_file(path) {
            Ok(scenario) if scenario.id == id => {
                let identity = identity::identify(&scenario, Some(path));
                return Ok((scenario, identity));
            }
            Ok(_) => {}
            Err(diagnostics) => broken.extend(diagnostics.iter().map(ToString::to_string)),
        }
    }
    let mut message = format!("no valid scenario with id {id:?} in {}", dir.display());
    if !broken.is_empty() {
        message.push_str("; invalid files there:\n");
        message.push_str(&broken.join("\n"));
    }
    Err(message)
}

/// Runs the agent until `shutdown` is cancelled, then stops as the module documentation says.
pub async fn run_agent(
    setup: AgentSetup,
    shutdown: CancellationToken,
) -> Result<AgentEnd, AgentError> {
    let AgentSetup {
        config,
        agent_id,
        transport,
        drain,
        admin,
        heartbeat,
        config_path,
        mut reloads,
    } = setup;
    let mut config = config;
    let dir = scenario_dir(&config);
    let mut puller = super::pull::is_git(&config).then(|| Puller::new(&config));
    if puller.is_none() {
        // Every scheduled scenario must exist and be valid at start: a typo in an id is the
        // operator's to fix now, not an hourly skipped run. (A repository's commit is checked
        // as a whole when it is pulled, below.)
        for schedule in &config.schedules {
            find_scenario(&dir, schedule.scenario.get_ref()).map_err(AgentError::Scenario)?;
        }
    }
    let state_dir = config.state_dir.clone();
    let mut state = AgentState::load(&state_dir)?;
    // Runs a crash or `kill -9` cut off: their sessions never ended, so there is no record to
    // ship; they are reported as interrupted by the tester, never as failures.
    let interrupted = std::mem::take(&mut state.runs_in_flight);
    for run in interrupted.values() {
        warn!(
            message = "A run was cut off by a crash or kill -9; it counts as interrupted, not failed.",
            scenario = %run.scenario,
            started_unix_ms = run.started_at_unix_ms
        );
    }
    if !interrupted.is_empty() {
        state.save(&state_dir)?;
    }
    let mut scheduler = scheduler_for(&config, &agent_id, &state);
    let budget = Arc::new(super::budget::AgentBudget::new(
        &config.budget,
        state.budget.clone(),
    ));
    // How the sessions' jobs are paid; fixed for the process (a reload cannot change it).
    let payment = lvt_wire::payment::PaymentConfig {
        signer_url: config
            .remote_signer
            .as_ref()
            // Invariant: `AgentConfig::parse` checked that it is an http(s) URL.
            .and_then(|url| reqwest::Url::parse(url.get_ref()).ok()),
    };
    let onchain = payment.signer_url.is_some();
    for (scenario, next) in scheduler.next_starts() {
        info!(message = "Schedule loaded.", scenario, next_unix_ms = next);
    }

    let shipper = SessionShipper::start(transport);
    let spool_dir = state_dir.join("spool");
    let board = Arc::new(StatusBoard::new(
        AgentStatus {
            agent_id: agent_id.clone(),
            region: config.region.get_ref().clone(),
            started_at_unix_ms: unix_ms(),
            schedules: config
                .schedules
                .iter()
                .map(|s| ScheduleStatus {
                    scenario: s.scenario.get_ref().clone(),
                    ..ScheduleStatus::default()
                })
                .collect(),
            runs_interrupted: u64::try_from(interrupted.len()).unwrap_or(u64::MAX),
            ..AgentStatus::default()
        },
        spool_dir.clone(),
        config.spool_max_bytes,
    ));
    keep_budget(&mut state, &budget, &board, onchain);
    // The repository: go on with the commit adopted before a restart, then pull once; with no
    // usable commit at all the agent cannot run anything and says why.
    let mut adopted: Option<Arc<Adopted>> = None;
    let mut refused_logged: Option<String> = None;
    if let Some(puller) = &puller {
        board.lock().scenario_repository = Some(puller.repository().to_owned());
        if let Some(commit) = state.adopted_commit.clone() {
            let restoring = puller.clone();
            match tokio::task::spawn_blocking(move || restoring.restore(&commit)).await {
                Ok(Ok(restored)) => {
                    board.lock().scenario_commit = Some(restored.commit.clone());
                    adopted = Some(Arc::new(restored));
                }
                Ok(Err(error)) => {
                    warn!(message = "The adopted scenario commit cannot be read back.", error = %error);
                }
                Err(error) => warn!(message = "Reading the adopted commit failed.", error = %error),
            }
        }
        let pulled = pull_blocking(puller, adopted.clone()).await;
        apply_pull(
            pulled,
            &mut adopted,
            &mut state,
            &state_dir,
            &board,
            &mut refused_logged,
        )?;
        if adopted.is_none() {
            let status = board.lock().clone();
            let why = status
                .last_pull_error
                .map(|e| vec![e])
                .unwrap_or(status.refused_reasons);
            return Err(AgentError::Scenario(format!(
                "no usable scenario commit from {}:\n{}",
                puller.repository(),
                why.join("\n")
            )));
        }
    }
    // Heartbeats start once the board says which commit is in use.
    let heartbeat_stop = CancellationToken::new();
    let heartbeat_task = heartbeat.map(|target| {
        tokio::spawn(super::heartbeat::run(
            target,
            Arc::clone(&board),
            heartbeat_stop.clone(),
        ))
    });
    let poll = Duration::from_secs(config.scenarios.poll_s.max(1));
    let mut next_pull = tokio::time::Instant::now() + poll;
    let (pulled_tx, mut pulled_rx) = tokio::sync::mpsc::channel::<Pulled>(1);
    let mut pulling = false;
    let admin_stop = CancellationToken::new();
    let admin_task = admin.map(|listener| {
        tokio::spawn(super::admin::serve(
            listener,
            Arc::clone(&board),
            admin_stop.clone(),
        ))
    });
    // Finished sessions pass the board (counted by outcome) on their way to the shipper. The
    // runs share one memory of trusted certificates, kept in state.json.
    let (finished, mut counted) =
        tokio::sync::mpsc::unbounded_channel::<lvt_schema::SessionReport>();
    let trusted = Arc::new(std::sync::Mutex::new(state.fingerprints.clone()));
    let forwarder = {
        let board = Arc::clone(&board);
        let ship = shipper.sender();
        let budget = Arc::clone(&budget);
        tokio::spawn(async move {
            while let Some(report) = counted.recv().await {
                // What the session paid counts against the day's payment budget at once, so
                // that the next session to start sees it.
                if let Some(wei) = report
                    .payment
                    .as_ref()
                    .and_then(|p| p.expected_value_wei.parse::<u128>().ok())
                {
                    budget.paid(wei, unix_ms());
                }
                let outcome = serde_json::to_value(report.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                *board.lock().sessions.entry(outcome).or_default() += 1;
                let _ = ship.send(report);
            }
        })
    };
    // The drain stops after the shipper, so its last pass sees what the shutdown spooled.
    let drain_stop = CancellationToken::new();
    let drain_every = Duration::from_secs(*config.spool_drain_s.get_ref());
    let drain_task = drain.map(|drain| {
        tokio::spawn(drain_spool(
            drain,
            spool_dir,
            drain_every,
            drain_stop.clone(),
        ))
    });
    let runs_cancel = CancellationToken::new();
    // Each run remembers the schedule generation it started under: after a reload its
    // schedule index may name another schedule.
    let mut generation: u64 = 0;
    let mut runs: JoinSet<(u64, usize, String, u64)> = JoinSet::new();
    let mut summary = AgentSummary::default();
    let mut spool_full_logged = false;

    loop {
        while let Some(action) = scheduler.poll(unix_ms()) {
            match action {
                Action::Start { schedule, due_ms } => {
                    let Some(entry) = config.schedules.get(schedule) else {
                        continue;
                    };
                    let id = entry.scenario.get_ref().clone();
                    // A full spool stops new runs (a record is never dropped); they resume
                    // once the drain brings it under the cap.
                    let spool = board.spool();
                    if spool.full {
                        if !spool_full_logged {
                            warn!(
                                message = "The spool is full: no new run starts until it drains.",
                                bytes = spool.bytes,
                                max_bytes = spool.max_bytes
                            );
                            spool_full_logged = true;
                        }
                        *board
                            .lock()
                            .runs_skipped
                            .entry("spool_full".to_owned())
                            .or_default() += 1;
                        scheduler.handle_run_finished(schedule);
                        continue;
                    }
                    if spool_full_logged {
                        info!(message = "The spool is under its cap again: runs resume.");
                        spool_full_logged = false;
                    }
                    state.last_starts.insert(id.clone(), due_ms);
                    let run_key = format!("{id}@{due_ms}");
                    state.runs_in_flight.insert(
                        run_key.clone(),
                        super::state::RunInFlight {
                            scenario: id.clone(),
                            started_at_unix_ms: unix_ms(),
                        },
                    );
                    keep_budget(&mut state, &budget, &board, onchain);
                    keep_trusted(&mut state, &trusted);
                    state.save(&state_dir)?;
                    summary.runs += 1;
                    {
                        let now = unix_ms();
                        let mut status = board.lock();
                        status.runs_started += 1;
                        status.runs_running += 1;
                        if let Some(s) = status.schedules.get_mut(schedule) {
                            s.last_start_unix_ms = Some(now);
                            s.last_lag_ms = Some(now - due_ms);
                        }
                    }
                    let source = match &adopted {
                        Some(adopted) => RunSource::Git(Arc::clone(adopted)),
                        None => RunSource::Folder(dir.clone()),
                    };
                    let job = RunJob {
                        source,
                        scenario_id: id,
                        targets: entry.targets.clone(),
                        region: config.region.get_ref().clone(),
                        finished: finished.clone(),
                        cancel: runs_cancel.child_token(),
                        board: Arc::clone(&board),
                        budget: Arc::clone(&budget),
                        trusted: Arc::clone(&trusted),
                        payment: payment.clone(),
                        refuse_changed_certificates: config.refuse_changed_certificates,
                        // Invariant: `AgentConfig::parse` built it once already.
                        verify_addresses: config
                            .verify_addresses
                            .as_ref()
                            .and_then(|verify| verify.get_ref().chain_source().ok()),
                    };
                    let started_in = generation;
                    runs.spawn(async move { (started_in, schedule, run_key, job.run().await) });
                }
                Action::Skipped {
                    schedule,
                    due_ms,
                    reason,
                } => {
                    let scenario = config
                        .schedules
                        .get(schedule)
                        .map_or("?", |s| s.scenario.get_ref().as_str());
                    info!(message = "Scheduled run skipped.", scenario, due_unix_ms = due_ms, reason = ?reason);
                    let reason = match reason {
                        SkipReason::Overlap => "overlap",
                        SkipReason::Missed => "missed",
                    };
                    *board
                        .lock()
                        .runs_skipped
                        .entry(reason.to_owned())
                        .or_default() += 1;
                }
            }
        }
        {
            let mut status = board.lock();
            for (s, (_, next)) in status.schedules.iter_mut().zip(scheduler.next_starts()) {
                s.next_unix_ms = next;
            }
        }
        let wait = scheduler.poll_timeout().map_or(MAX_SLEEP, |at| {
            Duration::from_millis(u64::try_from(at.saturating_sub(unix_ms())).unwrap_or(0))
                .min(MAX_SLEEP)
        });
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = runs.join_next() => {
                board.lock().runs_running = u64::try_from(runs.len()).unwrap_or(0);
                if let Ok((_, _, run_key, _)) = &done {
                    state.runs_in_flight.remove(run_key);
                }
                keep_budget(&mut state, &budget, &board, onchain);
                    keep_trusted(&mut state, &trusted);
                state.save(&state_dir)?;
                if let Ok((started_in, schedule, _, sessions)) = done {
                    summary.sessions += sessions;
                    if started_in == generation {
                        scheduler.handle_run_finished(schedule);
                    }
                }
            }
            () = tokio::time::sleep_until(next_pull), if puller.is_some() && !pulling => {
                if let Some(puller) = &puller {
                    pulling = true;
                    let puller = puller.clone();
                    let current = adopted.clone();
                    let tx = pulled_tx.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(pull_blocking(&puller, current).await).await;
                    });
                }
            }
            Some(pulled) = pulled_rx.recv() => {
                pulling = false;
                next_pull = tokio::time::Instant::now() + poll;
                apply_pull(pulled, &mut adopted, &mut state, &state_dir, &board, &mut refused_logged)?;
            }
            Some(()) = reloads.recv() => {
                let Some(path) = &config_path else { continue };
                match reload(path, &config, adopted.as_deref(), &dir) {
                    Ok(new) => {
                        let ref_changed = new.scenarios.git_ref != config.scenarios.git_ref
                            || new.scenarios.allow_force_push != config.scenarios.allow_force_push;
                        config = new;
                        generation += 1;
                        scheduler = scheduler_for(&config, &agent_id, &state);
                        if puller.is_some() {
                            puller = Some(Puller::new(&config));
                            if ref_changed {
                                next_pull = tokio::time::Instant::now();
                            }
                        }
                        let mut status = board.lock();
                        status.region = config.region.get_ref().clone();
                        status.schedules = config
                            .schedules
                            .iter()
                            .map(|s| ScheduleStatus {
                                scenario: s.scenario.get_ref().clone(),
                                ..ScheduleStatus::default()
                            })
                            .collect();
                        status.last_reload_unix_ms = Some(unix_ms());
                        status.last_reload_error = None;
                        info!(message = "Configuration reloaded.", schedules = config.schedules.len(), region = %config.region.get_ref());
                    }
                    Err(error) => {
                        warn!(message = "Reload refused; the running configuration stays.", error = %error);
                        let mut status = board.lock();
                        status.last_reload_error = Some(error.clone());
                        status.last_error = Some(format!("reload refused: {error}"));
                    }
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }

    // Stop starting runs; let the running ones finish for the grace period, then end them
    // (their sessions are recorded as interrupted by the tester, never as failures).
    let grace = Duration::from_secs(config.shutdown_grace_s);
    if !runs.is_empty() {
        info!(
            message = "Stopping: waiting for the running runs.",
            runs = runs.len(),
            grace_s = grace.as_secs()
        );
    }
    let finished_in_grace = tokio::time::timeout(grace, async {
        while let Some(done) = runs.join_next().await {
            if let Ok((_, _, run_key, sessions)) = done {
                state.runs_in_flight.remove(&run_key);
                summary.sessions += sessions;
            }
        }
    })
    .await;
    if finished_in_grace.is_err() {
        warn!(
            message = "Grace period over: ending the running sessions.",
            runs = runs.len()
        );
        runs_cancel.cancel();
        while let Some(done) = runs.join_next().await {
            if let Ok((_, _, run_key, sessions)) = done {
                state.runs_in_flight.remove(&run_key);
                summary.sessions += sessions;
            }
        }
    }
    drop(finished);
    let _ = forwarder.await;
    let (transport, shipped) = shipper.finish().await;
    summary.shipped = shipped;
    drain_stop.cancel();
    if let Some(task) = drain_task {
        let _ = task.await;
    }
    keep_budget(&mut state, &budget, &board, onchain);
    keep_trusted(&mut state, &trusted);
    state.save(&state_dir)?;
    heartbeat_stop.cancel();
    if let Some(task) = heartbeat_task {
        let _ = task.await;
    }
    admin_stop.cancel();
    if let Some(task) = admin_task
        && let Ok(Err(error)) = task.await
    {
        return Err(AgentError::Admin(error));
    }
    Ok(AgentEnd { summary, transport })
}

/// The scheduler of `config`'s schedules now, continuing from the last starts in `state` (at
/// start and after a reload).
fn scheduler_for(config: &AgentConfig, agent_id: &str, state: &AgentState) -> Scheduler {
    let last_starts: HashMap<String, i64> = state
        .last_starts
        .iter()
        .map(|(id, at)| (id.clone(), *at))
        .collect();
    Scheduler::new(config.schedules(agent_id), unix_ms(), &last_starts)
}

/// Reads the configuration at `path` again for a reload: the file must be valid, change only
/// what can change while running ([`AgentConfig::reload_refusal`]), and every scheduled
/// scenario must be in the scenarios in use (the adopted commit, or the folder `dir`).
fn reload(
    path: &Path,
    current: &AgentConfig,
    adopted: Option<&Adopted>,
    dir: &Path,
) -> Result<AgentConfig, String> {
    let new = AgentConfig::load(path).map_err(|e| e.to_string())?;
    if let Some(refusal) = current.reload_refusal(&new) {
        return Err(format!("{}: {refusal}", path.display()));
    }
    for schedule in &new.schedules {
        let id = schedule.scenario.get_ref();
        match adopted {
            Some(adopted) => adopted.find(id).map(drop),
            None => find_scenario(dir, id).map(drop),
        }
        .map_err(|e| format!("{}: [[schedule]] scenario {id:?}: {e}", path.display()))?;
    }
    Ok(new)
}

/// Copies the certificates trusted so far into the state to save.
fn keep_trusted(state: &mut AgentState, trusted: &std::sync::Mutex<BTreeMap<String, String>>) {
    state.fingerprints = trusted
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
}

/// Copies the budget's day counters into the state (for `state.json`) and the board.
fn keep_budget(
    state: &mut AgentState,
    budget: &super::budget::AgentBudget,
    board: &StatusBoard,
    onchain: bool,
) {
    let day = budget.day();
    let now = unix_ms();
    {
        let mut status = board.lock();
        status.budget_session_seconds_today = if day.day == super::state::BudgetDay::day_of(now) {
            day.session_seconds.clone()
        } else {
            std::collections::BTreeMap::new()
        };
        status.budget_payment_wei_today = onchain.then(|| day.paid(now).to_string());
    }
    state.budget = day;
}

/// Runs one pull off the async threads (gix blocks on the network).
async fn pull_blocking(puller: &Puller, current: Option<Arc<Adopted>>) -> Pulled {
    let puller = puller.clone();
    tokio::task::spawn_blocking(move || puller.pull(current.as_deref()))
        .await
        .unwrap_or_else(|error| Pulled::Failed(format!("the pull stopped: {error}")))
}

/// Takes in what a pull found: an adopted commit becomes the one new runs use (and is written
/// to `state.json`); a refusal or a failure keeps the commit in use and is shown on the board
/// and logged (a refusal once per refused commit).
fn apply_pull(
    pulled: Pulled,
    adopted: &mut Option<Arc<Adopted>>,
    state: &mut AgentState,
    state_dir: &Path,
    board: &StatusBoard,
    refused_logged: &mut Option<String>,
) -> Result<(), AgentError> {
    let now = unix_ms();
    let mut status = board.lock();
    status.last_pull_unix_ms = Some(now);
    match pulled {
        Pulled::Failed(error) => {
            warn!(message = "Pulling the scenario repository failed; keeping the commit in use.", error = %error);
            status.last_pull_error = Some(error);
        }
        Pulled::Unchanged => {
            status.last_pull_error = None;
            status.refused_commit = None;
            status.refused_reasons.clear();
        }
        Pulled::Refused { commit, reasons } => {
            status.last_pull_error = None;
            if refused_logged.as_deref() != Some(commit.as_str()) {
                warn!(
                    message = "Scenario commit refused; keeping the commit in use.",
                    commit = %commit,
                    in_use = adopted.as_ref().map_or("none", |a| a.commit.as_str()),
                    reasons = %reasons.join("\n")
                );
                *refused_logged = Some(commit.clone());
            }
            status.refused_commit = Some(commit);
            status.refused_reasons = reasons;
        }
        Pulled::Adopted(new) => {
            info!(
                message = "Scenario commit adopted.",
                commit = %new.commit,
                previous = adopted.as_ref().map_or("none", |a| a.commit.as_str()),
                files = new.files.len()
            );
            status.last_pull_error = None;
            status.refused_commit = None;
            status.refused_reasons.clear();
            status.scenario_commit = Some(new.commit.clone());
            state.adopted_commit = Some(new.commit.clone());
            *adopted = Some(new);
            drop(status);
            state.save(state_dir)?;
        }
    }
    Ok(())
}

/// One scheduled run.
struct RunJob {
    source: RunSource,
    scenario_id: String,
    targets: Option<crate::scenario::Targets>,
    region: String,
    finished: tokio::sync::mpsc::UnboundedSender<lvt_schema::SessionReport>,
    cancel: CancellationToken,
    board: Arc<StatusBoard>,
    budget: Arc<super::budget::AgentBudget>,
    trusted: crate::run::trust::TrustedCertificates,
    payment: lvt_wire::payment::PaymentConfig,
    refuse_changed_certificates: bool,
    /// The chain whose ServiceRegistry checks claimed addresses; each run reads it afresh.
    verify_addresses: Option<lvt_gateway::discovery::ChainSource>,
}

impl RunJob {
    /// Runs the scenario as it is on disk now and returns how many sessions finished. A run
    /// that cannot start (the scenario became invalid, its targets cannot be resolved) is
    /// logged and skipped: the agent goes on with its other schedules.
    async fn run(self) -> u64 {
        let (mut scenario, identity) = match self.source.find(&self.scenario_id) {
            Ok(found) => found,
            Err(message) => {
                warn!(message = "Scheduled run skipped: the scenario is not usable.", scenario = %self.scenario_id, error = %message);
                self.board.lock().last_error = Some(message);
                return 0;
            }
        };
        self.board
            .lock()
            .scenario_commit
            .clone_from(&identity.git_commit);
        if let Some(targets) = self.targets {
            scenario.targets = targets;
        }
        let http = match crate::probe::http_client() {
            Ok(http) => http,
            Err(error) => {
                warn!(message = "Scheduled run skipped: no HTTP client.", error = %error);
                return 0;
            }
        };
        let resolved = match crate::run::targets::resolve_run(
            &scenario.targets,
            &http,
            &scenario.model_id,
        )
        .await
        {
            Ok(resolved) => resolved,
            Err(error) => {
                warn!(message = "Scheduled run skipped: its targets cannot be resolved.", scenario = %self.scenario_id, error = %error);
                self.board.lock().last_error = Some(format!(
                    "{}: cannot resolve the targets: {error}",
                    self.scenario_id
                ));
                return 0;
            }
        };
        info!(message = "Run started.", scenario = %identity.id, version = %identity.version, targets = resolved.labels().len());
        let opts = RunOptions {
            progress: ProgressMode::Off,
            region: Some(self.region),
            finished: Some(self.finished),
            admission: Some(self.budget.clone()),
            trusted_certificates: Some(self.trusted),
            payment: self.payment,
            refuse_changed_certificates: self.refuse_changed_certificates,
            // One verifier per run: a run judges each address by one answer, and the next run
            // sees a registration that changed.
            address_verifier: self.verify_addresses.map(|chain| {
                Arc::new(lvt_gateway::identity::AddressVerifier::new(
                    chain,
                    http.clone(),
                ))
            }),
            ..RunOptions::default()
        };
        match executor::execute_targets(&scenario, identity, resolved, &opts, self.cancel).await {
            Ok(report) => {
                log_run(&report);
                if report.skipped_for_budget > 0 {
                    *self
                        .board
                        .lock()
                        .sessions_skipped
                        .entry("budget".to_owned())
                        .or_default() += report.skipped_for_budget;
                }
                u64::try_from(report.sessions.len()).unwrap_or(u64::MAX)
            }
            Err(error) => {
                warn!(message = "Run failed to execute.", scenario = %self.scenario_id, error = %error);
                0
            }
        }
    }
}

fn log_run(report: &RunReport) {
    let mut outcomes: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for session in &report.sessions {
        *outcomes
            .entry(format!("{:?}", session.report.outcome))
            .or_default() += 1;
    }
    let failed_thresholds = report.verdicts.iter().filter(|v| v.failed()).count();
    info!(
        message = "Run ended.",
        scenario = %report.scenario.id,
        version = %report.scenario.version,
        sessions = report.sessions.len(),
        outcomes = ?outcomes,
        thresholds_failed = failed_thresholds,
        skipped_for_budget = report.skipped_for_budget
    );
}

/// Offers the spool to the collector every `every` (`spool_drain_s`) until `shutdown`, and
/// once more at shutdown, so that nothing waits for a person to run `lvt ship-spool`.
async fn drain_spool(
    drain: Transport,
    spool_dir: PathBuf,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(every) => false,
        };
        if crate::ship::spool_files(&spool_dir).is_ok_and(|files| !files.is_empty()) {
            match drain.ship_spool(&spool_dir).await {
                Ok(delivery) if delivery.is_complete() => {
                    info!(message = "Spool drained.", records = delivery.records);
                }
                Ok(delivery) => {
                    info!(
                        message = "Spool partly drained; the rest is kept.",
                        records = delivery.records,
                        failed = delivery.failed.len()
                    );
                }
                Err(error) => warn!(message = "Spool drain failed.", error = %error),
            }
        }
        if stopping {
            return;
        }
    }
}
