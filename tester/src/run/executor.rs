//! The driver of `lvt run`: feeds a [`Plan`] with tokio time, runs one probe per planned
//! session, records each session with its schedule and labels, checks abort-on-fail
//! thresholds as sessions finish, and assembles the [`RunReport`].
//!
//! What is scheduled when is decided by `plan`; what a session measured by `probe`; what the
//! numbers mean by `summary` and `verdict`. This file only owns the clock, the tasks and the
//! bookkeeping between them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use lvt_gateway::gateway::observe::ObservationSink;
use lvt_schema::Outcome;
use lvt_wire::live::{OrchestratorUri, Scheme};
use thiserror::Error;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::encode::{Clip, ClipConfig, EncodeError, encode_clip};
use crate::probe::network::{NetworkOptions, StrategyConfig, run_network};
use crate::probe::{self, ProbeOptions, ProbeRun, Timeouts};
use crate::run::output::RunReport;
use crate::run::plan::{Plan, PlannedSession};
use crate::run::progress::{Progress, ProgressMode};
use crate::run::record::{ScenarioIdentity, SessionRecord, StartKind, StopReason};
use crate::run::summary::{complexity_name, label_from_name, labels};
use crate::run::targets::RunTargets;
use crate::run::verdict::{VerdictStatus, declared_slo, evaluate};
use crate::scenario::threshold::ThresholdExpr;
use crate::scenario::{Label, Scenario, Threshold};

/// A target that ran nothing for this long is cold again (its model may have been unloaded).
pub const COLD_AFTER_IDLE_MS: f64 = 60_000.0;

/// Segments in the input clip; the replayer loops over them.
const CLIP_SEGMENTS: u32 = 4;

/// How a run is executed, beyond what the scenario says.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// How progress is shown on stderr.
    pub progress: ProgressMode,
    /// The probe's step timeouts.
    pub timeouts: Timeouts,
    /// Where network-mode sessions send what their gateway observed (for the analytics
    /// events); `None` drops it.
    pub observations: Option<ObservationSink>,
    /// How every session's jobs are paid (offchain by default, or through a remote signer):
    /// deployment, not scenario, so the same scenario runs offchain and on chain.
    pub payment: lvt_wire::payment::PaymentConfig,
    /// The tester's region label, written into every record (`--region`).
    pub region: Option<String>,
    /// Where each session's record goes the moment the session ends, so that it can be made
    /// durable (shipped or spooled) before the run ends: a crash in the middle of a long run
    /// loses no finished session. `None` keeps the records for the report only.
    pub finished: Option<tokio::sync::mpsc::UnboundedSender<lvt_schema::SessionReport>>,
    /// Asked before each session starts (the agent's `[budget]`); `None` admits every session.
    pub admission: Option<Arc<dyn SessionAdmission>>,
    /// The certificates trusted on first use, shared with the caller (the agent keeps them
    /// across runs); `None`: the run keeps its own for its sessions.
    pub trusted_certificates: Option<super::trust::TrustedCertificates>,
    /// Refuse a session whose orchestrator presents another certificate than the one trusted
    /// for its URI (a failed start of class `auth`), instead of only saying so in the record.
    pub refuse_changed_certificates: bool,
    /// Checks the addresses orchestrators claim against the on-chain ServiceRegistry, once per
    /// address for the run. `None`: a network run whose targets include an on-chain source
    /// checks through that source; otherwise claims are recorded unverified.
    pub address_verifier: Option<Arc<lvt_gateway::identity::AddressVerifier>>,
}

/// Decides whether a planned session may start: the agent's budget. A refused session is not
/// started and is counted in the report's `skipped_for_budget`; the plan goes on as if it had
/// ended at once.
pub trait SessionAdmission: Send + Sync + std::fmt::Debug {
    /// Admits a session of `session_s` seconds on `target` (a URI, or `network`), returning what
    /// the session holds until it ends (a concurrency permit), or why it may not start.
    ///
    /// # Errors
    /// The budget has no room for the session.
    fn admit(&self, target: &str, session_s: u64) -> Result<Box<dyn std::any::Any + Send>, String>;
}

/// Why a run could not be executed. Sessions failing is not an error: it is in the report.
#[derive(Debug, Error)]
pub enum RunError {
    /// The input clip described by the scenario could not be encoded.
    #[error("cannot encode the input clip: {0}")]
    Clip(#[from] EncodeError),
    /// The clip encoder's task died.
    #[error("the clip encoder stopped unexpectedly: {0}")]
    ClipTask(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// An abort-on-fail threshold does not parse (validation rejects these before a run).
    #[error("threshold `{expr}` is not valid: {message}")]
    BadThreshold { expr: String, message: String },
    /// There is nothing to run against.
    #[error("the run has no targets")]
    NoTargets,
}

/// Runs `scenario` against `targets` and reports every session. `cancel` (Ctrl-C) stops
/// scheduling, stops the sessions in flight cleanly and still returns the report.
pub async fn execute(
    scenario: &Scenario,
    identity: ScenarioIdentity,
    targets: Vec<OrchestratorUri>,
    opts: &RunOptions,
    cancel: CancellationToken,
) -> Result<RunReport, RunError> {
    execute_targets(
        scenario,
        identity,
        RunTargets::Direct(targets),
        opts,
        cancel,
    )
    .await
}

/// [`execute`] for any kind of target: fixed orchestrators, or the network, whose sessions
/// each select (and may swap) orchestrators themselves and count as one target, `network`.
pub async fn execute_targets(
    scenario: &Scenario,
    identity: ScenarioIdentity,
    targets: RunTargets,
    opts: &RunOptions,
    cancel: CancellationToken,
) -> Result<RunReport, RunError> {
    let labels = targets.labels();
    if labels.is_empty() {
        return Err(RunError::NoTargets);
    }
    let aborts = abort_checks(&scenario.thresholds)?;
    let clip = encode_input(scenario).await?;
    let http = probe::http_client()?;
    let address_verifier = opts
        .address_verifier
        .clone()
        .or_else(|| chain_verifier(&targets, &http));
    let started_at_unix_ms = unix_ms();
    let mut run = Execution {
        address_verifier,
        scenario,
        targets: &targets,
        labels: labels.clone(),
        opts,
        clip,
        http,
        t0: Instant::now(),
        plan: Plan::new(&scenario.load, labels.len(), &scenario.prompts),
        tasks: JoinSet::new(),
        in_flight: HashMap::new(),
        target_state: vec![TargetState::default(); labels.len()],
        sessions: Vec::new(),
        peak_in_flight: 0,
        stop: None,
        sessions_cancel: CancellationToken::new(),
        progress: Progress::new(opts.progress),
        aborts,
        scenario_ref: identity.scenario_ref(),
        skipped_for_budget: 0,
        trusted: opts.trusted_certificates.clone().unwrap_or_default(),
    };
    run.drive(cancel).await;
    let ended_at_unix_ms = unix_ms();
    let Execution {
        mut sessions,
        plan,
        peak_in_flight,
        stop,
        skipped_for_budget,
        ..
    } = run;
    sessions.sort_by_key(|s| s.index);
    let mut report = RunReport::build(
        identity,
        scenario,
        started_at_unix_ms,
        ended_at_unix_ms,
        stop.unwrap_or(StopReason::Completed),
        labels,
        sessions,
        plan.dropped(),
        peak_in_flight,
    );
    report.skipped_for_budget = skipped_for_budget;
    Ok(report)
}

/// The abort-on-fail thresholds, parsed once before the run.
/// A verifier reading the ServiceRegistry of the first on-chain source of network targets.
fn chain_verifier(
    targets: &RunTargets,
    http: &reqwest::Client,
) -> Option<Arc<lvt_gateway::identity::AddressVerifier>> {
    let RunTargets::Network(network) = targets else {
        return None;
    };
    lvt_gateway::identity::AddressVerifier::of_sources(&network.sources, http).map(Arc::new)
}

fn abort_checks(thresholds: &[Threshold]) -> Result<Vec<(Threshold, ThresholdExpr)>, RunError> {
    thresholds
        .iter()
        .filter(|t| t.abort_on_fail)
        .map(|t| {
            ThresholdExpr::parse(&t.expr)
                .map(|e| (t.clone(), e))
                .map_err(|e| RunError::BadThreshold {
                    expr: t.expr.clone(),
                    message: e.to_string(),
                })
        })
        .collect()
}

/// Encodes the scenario's input clip once, off the async threads (libx264 is CPU work).
async fn encode_input(scenario: &Scenario) -> Result<Arc<Clip>, RunError> {
    let i = scenario.input;
    let cfg = ClipConfig {
        width: i.width,
        height: i.height,
        fps: i.fps,
        segment_ms: i.segment_ms,
        segments: CLIP_SEGMENTS,
        bitrate_kbps: i.bitrate_kbps,
    };
    let clip = tokio::task::spawn_blocking(move || encode_clip(&cfg))
        .await
        .map_err(|e| RunError::ClipTask(e.to_string()))??;
    Ok(Arc::new(clip))
}

/// What the run knows about one target, for telling cold starts from warm ones.
#[derive(Debug, Clone, Default)]
struct TargetState {
    running: u32,
    started: u64,
    last_end_ms: Option<f64>,
}

impl TargetState {
    /// Cold for the target's first session, and after it ran nothing for
    /// [`COLD_AFTER_IDLE_MS`]; warm otherwise.
    fn start_kind(&self, now_ms: f64) -> StartKind {
        let idle_long = self.running == 0
            && self
                .last_end_ms
                .is_none_or(|end| now_ms - end >= COLD_AFTER_IDLE_MS);
        if self.started == 0 || idle_long {
            StartKind::Cold
        } else {
            StartKind::Warm
        }
    }
}

/// A session in flight: what the plan said and when it really started.
struct InFlight {
    planned: PlannedSession,
    start: StartKind,
    queue_delay_ms: f64,
    opts: ProbeOptions,
}

/// The state of one run while it executes.
struct Execution<'a> {
    scenario: &'a Scenario,
    targets: &'a RunTargets,
    /// The target label of each plan target (a URI, or `network`).
    labels: Vec<String>,
    opts: &'a RunOptions,
    /// Trust on first use of the orchestrators' certificates ([`super::trust`]).
    trusted: super::trust::TrustedCertificates,
    clip: Arc<Clip>,
    http: reqwest::Client,
    /// The run's start: plan time 0.
    t0: Instant,
    plan: Plan,
    tasks: JoinSet<ProbeRun>,
    in_flight: HashMap<Id, InFlight>,
    target_state: Vec<TargetState>,
    sessions: Vec<SessionRecord>,
    peak_in_flight: u64,
    stop: Option<StopReason>,
    /// Cancels every running session (abort or interrupt); each session gets a child token.
    sessions_cancel: CancellationToken,
    progress: Progress,
    aborts: Vec<(Threshold, ThresholdExpr)>,
    /// The scenario's identity as every session record carries it.
    scenario_ref: lvt_schema::ScenarioRef,
    /// Sessions the admission (the agent's budget) refused.
    skipped_for_budget: u64,
    /// The run's address verifier ([`RunOptions::address_verifier`], or the network targets'
    /// on-chain source).
    address_verifier: Option<Arc<lvt_gateway::identity::AddressVerifier>>,
}

impl Execution<'_> {
    fn now_ms(&self) -> f64 {
        self.t0.elapsed().as_secs_f64() * 1000.0
    }

    fn at(&self, ms: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }

    /// Starts what is due, then waits for the next due time, a finished session, the tick or
    /// the cancel token, until the plan is done and nothing runs.
    async fn drive(&mut self, cancel: CancellationToken) {
        let tick_ms = self.opts.progress.tick_ms();
        let mut tick = tick_ms.map(|ms| {
            let period = Duration::from_secs_f64(ms / 1000.0);
            let mut i = tokio::time::interval_at(self.t0 + period, period);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            i
        });
        loop {
            self.start_due();
            if self.plan.is_done() && self.tasks.is_empty() {
                break;
            }
            let due = self.plan.next_due_ms().map(|ms| self.at(ms));
            tokio::select! {
                () = cancel.cancelled(), if self.stop.is_none() => {
                    self.progress.message("interrupted: stopping the sessions in flight");
                    self.halt(StopReason::Interrupted);
                }
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.handle_done(done);
                }
                () = sleep_until_opt(due) => {}
                _ = tick_opt(&mut tick) => {
                    let now = self.now_ms();
                    self.progress.counters.dropped = self.plan.dropped();
                    self.progress.handle_tick(now);
                }
            }
        }
        self.progress.counters.dropped = self.plan.dropped();
        let now = self.now_ms();
        self.progress.finish(now);
    }

    /// Stops scheduling and cancels every running session.
    fn halt(&mut self, reason: StopReason) {
        if self.stop.is_none() {
            self.stop = Some(reason);
        }
        self.plan.stop();
        self.sessions_cancel.cancel();
    }

    /// Spawns every session the plan has due now.
    fn start_due(&mut self) {
        if self.stop.is_some() {
            return;
        }
        loop {
            let now = self.now_ms();
            let Some(planned) = self.plan.poll_start(now) else {
                break;
            };
            self.spawn(planned, now);
        }
        self.progress.counters.dropped = self.plan.dropped();
    }

    fn spawn(&mut self, planned: PlannedSession, now_ms: f64) {
        let permit = match &self.opts.admission {
            None => None,
            Some(admission) => {
                let session_s = u64::from(self.scenario.session.duration_s);
                match admission.admit(&self.labels[planned.target], session_s) {
                    Ok(permit) => Some(permit),
                    Err(why) => {
                        info!(
                            message = "Session skipped for budget.",
                            index = planned.index,
                            target = %self.labels[planned.target],
                            why = %why
                        );
                        self.skipped_for_budget += 1;
                        self.plan.handle_finished(planned.target, now_ms, false);
                        return;
                    }
                }
            }
        };
        let state = &mut self.target_state[planned.target];
        let start = state.start_kind(now_ms);
        state.running += 1;
        state.started += 1;
        let prompt = &self.scenario.prompts[planned.prompt];
        let session = &self.scenario.session;
        let target = match self.targets {
            RunTargets::Direct(uris) => uris[planned.target].clone(),
            RunTargets::Network(_) | RunTargets::Gateway(_) => network_placeholder(),
        };
        let mut opts = ProbeOptions::new(target);
        opts.model_id = self.scenario.model_id.clone();
        opts.params = serde_json::Value::Object(prompt.params.clone());
        opts.prompt_id = Some(prompt.id.clone());
        opts.complexity = Some(prompt.complexity);
        opts.scenario = Some(self.scenario_ref.clone());
        opts.duration = Duration::from_secs(u64::from(session.duration_s));
        opts.params_update_offsets = session
            .params_updates
            .offsets_s(session.duration_s)
            .into_iter()
            .map(|s| Duration::from_secs(u64::from(s)))
            .collect();
        opts.timeouts = self.opts.timeouts.clone();
        opts.payment = self.opts.payment.clone();
        opts.region = self.opts.region.clone();
        opts.refuse_changed_certificates = self
            .opts
            .refuse_changed_certificates
            .then(|| Arc::clone(&self.trusted));
        let labels = BTreeMap::from([
            (Label::Target, self.labels[planned.target].clone()),
            (
                Label::Complexity,
                complexity_name(prompt.complexity).to_owned(),
            ),
            (Label::Prompt, prompt.id.clone()),
            (Label::Start, start.as_str().to_owned()),
        ]);
        opts.slo = declared_slo(&self.scenario.thresholds, &labels);
        opts.address_verifier = self.address_verifier.clone();
        let (task_opts, clip, http, cancel) = (
            opts.clone(),
            self.clip.clone(),
            self.http.clone(),
            self.sessions_cancel.child_token(),
        );
        let handle = match self.targets {
            RunTargets::Direct(_) => self.tasks.spawn(async move {
                // Held until the session ends.
                let _permit = permit;
                probe::probe_run(&task_opts, clip, &http, cancel).await
            }),
            RunTargets::Network(network) => {
                let mut net = NetworkOptions::new(
                    task_opts,
                    network.sources.clone(),
                    match network.strategy {
                        // Each session draws with its own seed so that sessions differ while
                        // the run as a whole repeats.
                        StrategyConfig::ScoreWeighted { seed, ref sla_url } => {
                            StrategyConfig::ScoreWeighted {
                                seed: seed.wrapping_add(planned.index),
                                sla_url: sla_url.clone(),
                            }
                        }
                        StrategyConfig::GoLivepeer => StrategyConfig::GoLivepeer,
                    },
                );
                net.discovery_timeout = network.discovery_timeout;
                let sink = self.opts.observations.clone();
                self.tasks.spawn(async move {
                    let _permit = permit;
                    run_network(&net, clip, &http, cancel, sink).await
                })
            }
            RunTargets::Gateway(gateway) => {
                let gw = gateway.session(planned.target);
                self.tasks.spawn(async move {
                    let _permit = permit;
                    probe::gateway::gateway_run(&task_opts, &gw, clip, &http, cancel).await
                })
            }
        };
        info!(
            message = "Session started.",
            index = planned.index,
            target = %self.labels[planned.target],
            prompt = %prompt.id,
            start = start.as_str()
        );
        self.in_flight.insert(
            handle.id(),
            InFlight {
                planned,
                start,
                queue_delay_ms: (now_ms - planned.scheduled_at_ms).max(0.0),
                opts,
            },
        );
        self.peak_in_flight = self.peak_in_flight.max(self.tasks.len() as u64);
        self.progress.handle_started(now_ms);
    }

    fn handle_done(&mut self, done: Result<(Id, ProbeRun), tokio::task::JoinError>) {
        let now = self.now_ms();
        let (id, run) = match done {
            Ok((id, run)) => (id, run),
            Err(e) => {
                // A probe never fails by design; a task that died is a tester bug. Its session
                // is still accounted for, as unscored, so the run's counts stay whole.
                error!(message = "A session task died.", error = %e);
                let Some(f) = self.in_flight.get(&e.id()) else {
                    return;
                };
                let mut report = probe::tester_failure_report(
                    &f.opts,
                    format!("the session's task stopped unexpectedly: {e}"),
                );
                // No orchestrator can be named: a network session's own selection never
                // reported, and a gateway names none.
                let mode = match self.targets {
                    RunTargets::Network(_) => Some(lvt_schema::TargetMode::Network),
                    RunTargets::Gateway(_) => Some(lvt_schema::TargetMode::Gateway),
                    RunTargets::Direct(_) => None,
                };
                if let Some(mode) = mode {
                    report.mode = mode;
                    report.orchestrator = None;
                }
                (
                    e.id(),
                    ProbeRun {
                        report,
                        interrupted: false,
                    },
                )
            }
        };
        let Some(f) = self.in_flight.remove(&id) else {
            return;
        };
        let target = f.planned.target;
        let state = &mut self.target_state[target];
        state.running = state.running.saturating_sub(1);
        state.last_end_ms = Some(now);
        let busy = run.report.outcome == Outcome::UnscoredBusy;
        self.plan.handle_finished(target, now, busy);
        let mut record = self.record(f, run);
        super::trust::judge(&self.trusted, &mut record.report);
        self.progress.handle_finished(&record, now);
        if let Some(finished) = &self.opts.finished {
            // The receiver going away (its shipper task died) only loses the early copy: the
            // report still holds the record.
            let _ = finished.send(record.report.clone());
        }
        self.sessions.push(record);
        self.check_aborts();
    }

    /// The run's record of a finished session.
    fn record(&self, f: InFlight, run: ProbeRun) -> SessionRecord {
        let mut report = run.report;
        // A session the run cut short (Ctrl-C or an abort) had no chance to produce output:
        // judging it failed would blame the orchestrator for the tester stopping. It is kept,
        // unscored, with the reason in its failure detail.
        if run.interrupted && report.outcome == Outcome::Failed {
            report.outcome = Outcome::UnscoredIndeterminate;
            if let Some(failure) = report.failure.as_mut() {
                failure.detail = format!(
                    "interrupted by the run before the session ended ({})",
                    failure.detail
                );
            }
        }
        let prompt = &self.scenario.prompts[f.planned.prompt];
        let startup_from_schedule_ms = report.metrics.startup_ms.map(|s| s + f.queue_delay_ms);
        SessionRecord {
            index: f.planned.index,
            target: self.labels[f.planned.target].clone(),
            prompt_id: prompt.id.clone(),
            complexity: prompt.complexity,
            start: f.start,
            scheduled_at_ms: f.planned.scheduled_at_ms,
            queue_delay_ms: f.queue_delay_ms,
            startup_from_schedule_ms,
            report,
        }
    }

    /// Stops the run when an abort-on-fail threshold fails over at least its `min_sessions`
    /// matching sessions. Only a measured failure aborts: "no data yet" may still change as
    /// sessions finish, and is judged at the end.
    fn check_aborts(&mut self) {
        if self.stop.is_some() {
            return;
        }
        for (t, expr) in &self.aborts {
            let matched = self.sessions.iter().filter(|s| matches_where(t, s)).count() as u64;
            if matched < u64::from(t.min_sessions) {
                continue;
            }
            let v = evaluate(t, expr, &self.sessions);
            if v.status == VerdictStatus::Fail {
                let name = v.name();
                self.progress
                    .message(&format!("aborting: threshold {name} failed: {}", v.message));
                self.halt(StopReason::Aborted { threshold: name });
                return;
            }
        }
    }
}

/// Whether `s` is one of the sessions threshold `t` is evaluated over.
fn matches_where(t: &Threshold, s: &SessionRecord) -> bool {
    let l = labels(s);
    t.r#where.iter().all(|(k, want)| {
        label_from_name(k)
            .and_then(|label| l.get(&label))
            .is_some_and(|have| have == want)
    })
}

/// The `target` of a network or gateway session's options: never contacted (a network try sets
/// the candidate it starts on); a reserved name (RFC 2606) so that it can never reach a real host.
fn network_placeholder() -> OrchestratorUri {
    OrchestratorUri::new(Scheme::Https, "network.invalid", 443)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick_opt(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn unix_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
