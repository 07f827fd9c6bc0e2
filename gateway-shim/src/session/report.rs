//! The finished session's record: a pure function of what the core measured.
//!
//! Metrics come from the recorders, the outcome from [`classify`] over the evidence, and in
//! network mode one `served_by` share per orchestrator that served, with the swaps between
//! them. Nothing here reads a clock: the times are the core's.

use lvt_schema::{
    Failure, FailureClass, Gpu, MediaErrors, OrchestratorRef, ServedBy, SessionReport,
};

use super::StartInfo;
use super::classify::{Evidence, classify};
use crate::gateway::swap::{SwapCause, SwapRecord};
use crate::measure::SessionRecorder;

/// A direct session's record: the recorder's metrics, the start's identity and timings, and
/// the outcome.
pub fn direct(
    mut report: SessionReport,
    start: &StartInfo,
    recorder: &SessionRecorder,
    end_us: u64,
    fatal: Option<Failure>,
    ended_at_unix_ms: i64,
) -> SessionReport {
    if let Some(claimed) = &start.orchestrator {
        let o = report.orchestrator.get_or_insert_with(|| claimed.clone());
        o.address = claimed.address.clone();
        o.cert_sha256 = claimed.cert_sha256.clone();
    }
    if start.gpu.is_some() {
        report.gpu = start.gpu.clone();
    }
    let (mut metrics, runner) = recorder.finish(end_us);
    metrics.get_orchestrator_ms = start.get_orchestrator_ms;
    metrics.job_start_ms = start.job_start_ms;
    let unread = recorder.unread_frames();
    conclude(report, metrics, runner, fatal, unread, ended_at_unix_ms)
}

/// What the record needs of one share.
pub struct ShareRecord<'a> {
    pub orchestrator: &'a OrchestratorRef,
    pub gpu: Option<&'a Gpu>,
    pub get_orchestrator_ms: Option<f64>,
    pub job_start_ms: Option<f64>,
    pub from_unix_ms: i64,
    pub to_unix_ms: i64,
    /// The end of its measured period on the core's clock.
    pub end_us: u64,
    /// The swap that ended it.
    pub ended_by: Option<SwapCause>,
    /// The failure it is answerable for: its swap's, or the one that ended the session while
    /// it served.
    pub failure: Option<FailureClass>,
    pub recorder: Option<&'a SessionRecorder>,
    pub media_errors: MediaErrors,
}

/// What a network session's record is made of.
pub struct NetworkRecord<'a> {
    pub template: SessionReport,
    /// Every frame of the session, whoever served it.
    pub session: &'a SessionRecorder,
    pub shares: &'a [ShareRecord<'a>],
    pub swaps: &'a [SwapRecord],
    /// The wall clock at the monitor's time zero.
    pub origin_unix_ms: i64,
    /// The end of the measured period: the last share's.
    pub end_us: u64,
    pub fatal: Option<Failure>,
    pub ended_at_unix_ms: i64,
}

/// A network session's record: session metrics from every frame, one `served_by` share per
/// orchestrator, the swaps, and the outcome. The orchestrator named is the one that served
/// last: the session ended with it.
pub fn network(r: NetworkRecord<'_>) -> SessionReport {
    let mut report = r.template;
    let (mut metrics, _) = r.session.finish(r.end_us);
    let mut served_by = Vec::with_capacity(r.shares.len());
    let mut last_runner = None;
    let mut media = MediaErrors::default();
    for share in r.shares {
        media.cc_errors += share.media_errors.cc_errors;
        media.sync_losses += share.media_errors.sync_losses;
        media.pes_errors += share.media_errors.pes_errors;
        media.truncated_frames += share.media_errors.truncated_frames;
        let Some(recorder) = share.recorder else {
            continue;
        };
        let (m, runner) = recorder.finish(share.end_us);
        served_by.push(ServedBy {
            orchestrator: share.orchestrator.clone(),
            gpu: share.gpu.cloned(),
            from_unix_ms: share.from_unix_ms,
            to_unix_ms: share.to_unix_ms,
            startup_ms: m.startup_ms,
            frames_received: m.frames_received,
            e2e_latency_ms: m.e2e_latency_ms,
            output_fps: m.output_fps,
            stalls: m.stalls,
            ended_by: share.ended_by.map(|c| c.message().to_string()),
            failure: share.failure,
        });
        last_runner = Some(runner);
    }
    metrics.media_errors = media;
    if let Some(first) = r.shares.first() {
        metrics.get_orchestrator_ms = first.get_orchestrator_ms;
        metrics.job_start_ms = first.job_start_ms;
    }
    metrics.swaps = r
        .swaps
        .iter()
        .map(|s| s.to_schema(r.origin_unix_ms))
        .collect();
    if let Some(last) = r.shares.last() {
        report.orchestrator = Some(last.orchestrator.clone());
        report.gpu = last.gpu.cloned();
    }
    report.served_by = served_by;
    let runner = last_runner.unwrap_or_default();
    let unread = r.session.unread_frames();
    conclude(report, metrics, runner, r.fatal, unread, r.ended_at_unix_ms)
}

/// Classifies the session from its evidence and completes the record.
fn conclude(
    mut report: SessionReport,
    metrics: lvt_schema::SessionMetrics,
    runner: lvt_schema::RunnerReport,
    fatal: Option<Failure>,
    unread_frames: u64,
    ended_at_unix_ms: i64,
) -> SessionReport {
    let evidence = Evidence {
        fatal,
        frames_received: metrics.frames_received,
        // Overlay frames are media too: a runner that only ever loaded did not send garbage,
        // and produced no output either.
        overlay_frames: metrics
            .loading_overlay
            .as_ref()
            .map_or(0, |overlay| overlay.frames),
        unread_frames,
        bytes_received: metrics.bytes_received,
        events_malformed: u64::from(runner.events_malformed),
        runner_reported_error: runner.errors.first().cloned().or_else(|| {
            (runner.last_state.as_deref() == Some("ERROR")).then(|| "state ERROR".into())
        }),
    };
    let (outcome, failure) = classify(&evidence);
    report.metrics = metrics;
    report.runner = runner;
    report.outcome = outcome;
    report.failure = failure;
    report.ended_at_unix_ms = ended_at_unix_ms;
    report
}
