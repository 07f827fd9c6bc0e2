//! A finished organic stream turned into a [`SessionReport`]: outcome, startup, frame rates,
//! swaps and the orchestrators that served it, by the rules of docs/sla.md ("Organic load").

use std::collections::HashMap;

use lvt_schema::{
    Failure, FailureClass, FpsSummary, Gpu, Outcome, PromptRef, ServedBy, SessionReport, Swap,
    TargetMode,
};

use super::fold::{Orchestrator, StreamKey, StreamState};
use super::{LIVE_PIPELINE, UNKNOWN_MODEL};

/// The session id of an organic stream: stable, so that folding the same events again (a
/// replayed topic after a restart) yields a duplicate the store drops, never a second session.
pub fn organic_session_id(gateway: &str, stream: &str) -> String {
    format!("organic:{gateway}:{stream}")
}

/// The orchestrator serving at `at`: the last one seen at or before it, else the first one seen.
pub(super) fn serving_at(sightings: &[(i64, Orchestrator)], at: i64) -> Option<&Orchestrator> {
    sightings
        .iter()
        .rev()
        .find(|(seen_at, _)| *seen_at <= at)
        .or_else(|| sightings.first())
        .map(|(_, orchestrator)| orchestrator)
}

pub(super) fn fps_summary(samples: &[f64]) -> Option<FpsSummary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Nearest-rank percentiles: the sample at ceil(p * n), 1-based.
    let rank = |p: f64| {
        let index = (p * sorted.len() as f64).ceil() as usize;
        sorted[index.clamp(1, sorted.len()) - 1]
    };
    Some(FpsSummary {
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
        p5: rank(0.05),
        p50: rank(0.5),
        windows: u32::try_from(samples.len()).unwrap_or(u32::MAX),
    })
}

/// The standard deviation over the mean of the samples (population), when there are at least
/// two and the mean is above 0.
pub(super) fn fps_jitter(samples: &[f64]) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return None;
    }
    let variance = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Some(variance.sqrt() / mean)
}

/// The session of a finished stream, or `None` when it was never requested.
pub(super) fn build_report(
    key: &StreamKey,
    state: &StreamState,
    hardware: &HashMap<String, HashMap<String, Gpu>>,
) -> Option<SessionReport> {
    let started_at = state.requested_at?;
    let ended_at = state
        .closed_at
        .or(state.last_event_unix_ms)
        .unwrap_or(started_at)
        .max(started_at);
    let mut sightings = state.sightings.clone();
    sightings.sort_by_key(|(at, _)| *at);
    // Everything is put in event-time order first (ties broken by value), so that the session
    // is the same whatever order the events arrived in.
    let mut swaps = state.swaps.clone();
    swaps.sort();
    let mut timed_samples = state.output_fps_samples.clone();
    timed_samples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let samples: Vec<f64> = timed_samples.iter().map(|(_, fps)| *fps).collect();
    let mut states = state.states.clone();
    states.sort();
    let mut states_seen: Vec<String> = Vec::new();
    for (_, run_state) in &states {
        if !states_seen.contains(run_state) {
            states_seen.push(run_state.clone());
        }
    }
    let mut errors = state.errors.clone();
    errors.sort();
    let mut distinct_errors: Vec<String> = Vec::new();
    for (_, error) in errors {
        if !distinct_errors.contains(&error) {
            distinct_errors.push(error);
        }
    }
    let mut traces = state.traces.clone();
    traces.sort();
    let params_hash = state
        .last_params_hash
        .as_ref()
        .map(|(_, hash)| hash.clone());

    let mut report = SessionReport::new(
        organic_session_id(&key.gateway, &key.stream),
        state
            .model_id
            .clone()
            .unwrap_or_else(|| UNKNOWN_MODEL.to_owned()),
        started_at,
    );
    report.ended_at_unix_ms = ended_at;
    report.mode = TargetMode::Network;
    report.is_test_load = false;
    report.pipeline = LIVE_PIPELINE.to_owned();
    // The session belongs to the orchestrator it started on: its startup (or startup failure)
    // is the one measured, and later orchestrators show in `served_by` and `swaps`.
    report.orchestrator = sightings.first().map(|(_, first)| first.reference());
    // The GPU is what the orchestrator last advertised for the session's model before the
    // session finished; events of the stream itself never name it.
    let model_id = report.model_id.clone();
    let gpu_of = |orchestrator: &Orchestrator| {
        hardware
            .get(&orchestrator.hardware_key())
            .and_then(|models| models.get(&model_id))
            .cloned()
    };
    report.gpu = sightings.first().and_then(|(_, first)| gpu_of(first));

    let startup_ms = match (state.first_ingest_at, state.first_output_at) {
        (Some(ingest), Some(output)) if output >= ingest => Some((output - ingest) as f64),
        _ => None,
    };
    let (outcome, failure) = if state.first_output_at.is_some() {
        (Outcome::Passed, None)
    } else if state.no_orchestrators_at.is_some() {
        (
            Outcome::UnscoredBusy,
            Some(Failure {
                class: FailureClass::Capacity,
                detail: "gateway_no_orchestrators_available".to_owned(),
            }),
        )
    } else if state.first_ingest_at.is_none() {
        // The client left before the gateway sent any input to an orchestrator: nothing was
        // asked of an orchestrator, so nothing is held against one (NaaP excuses client-side
        // disconnects the same way).
        (Outcome::UnscoredIndeterminate, None)
    } else {
        let how = if state.closed_at.is_some() {
            "the stream closed"
        } else {
            "the stream went silent"
        };
        (
            Outcome::Failed,
            Some(Failure {
                class: FailureClass::OutputTimeout,
                detail: format!("input was sent but no processed segment came back before {how}"),
            }),
        )
    };
    report.outcome = outcome;
    report.failure = failure;

    let metrics = &mut report.metrics;
    metrics.startup_ms = startup_ms;
    metrics.output_fps = fps_summary(&samples);
    metrics.fps_jitter = fps_jitter(&samples);
    metrics.input_fps = state.last_input_fps.map(|(_, fps)| fps);
    metrics.swaps = swaps
        .iter()
        .map(|(at, cause)| {
            let from = serving_at(&sightings, at.saturating_sub(1));
            // The orchestrator swapped to is the first different one seen after the swap; the
            // events do not always name it (the stream may have ended first).
            let to = from.and_then(|from| {
                sightings
                    .iter()
                    .find(|(seen_at, seen)| *seen_at >= *at && !seen.same_as(from))
                    .map(|(_, seen)| seen)
            });
            Swap {
                at_unix_ms: *at,
                from: from.map(Orchestrator::label).unwrap_or_default(),
                to: to.map(Orchestrator::label).unwrap_or_default(),
                cause: cause.clone(),
                freeze_ms: None,
            }
        })
        .collect();
    report.served_by = served_by(
        &sightings,
        &gpu_of,
        &swaps,
        &timed_samples,
        started_at,
        ended_at,
        startup_ms,
    );

    let runner = &mut report.runner;
    runner.status_events = state.status_events;
    runner.last_state = states.last().map(|(_, run_state)| run_state.clone());
    runner.states_seen = states_seen;
    runner.input_fps = state.last_input_fps.map(|(_, fps)| fps);
    runner.output_fps = state.last_output_fps.map(|(_, fps)| fps);
    runner.restart_count = state
        .restart_count
        .map(|count| u32::try_from(count).unwrap_or(u32::MAX));
    runner.errors = distinct_errors;
    runner.error_events = state.error_events;
    runner.events_received = state.events;
    runner.traces = traces.into_iter().map(|(_, kind)| kind).collect();
    report.prompt = params_hash.as_ref().map(|hash| PromptRef {
        id: None,
        complexity: None,
        params_hash: hash.clone(),
    });
    runner.last_params_hash = params_hash;
    Some(report)
}

/// The failure class go-livepeer's swap cause names, from the `message` of its
/// `orchestrator_swap` trace (the error texts of its live pipeline; see the protocol reference,
/// section 5). A cause this collector does not recognise is no failure: the share still counts
/// as swapped away from, but not as broken.
pub fn swap_failure_class(cause: &str) -> Option<FailureClass> {
    let cause = cause.to_ascii_lowercase();
    if cause.contains("stream no longer exists")
        || cause.contains("orchestrator is slow")
        || cause.contains("control channel does not exist")
    {
        Some(FailureClass::PublishLost)
    } else if cause.contains("trickle subscribe") || cause.contains("waiting for segments") {
        Some(FailureClass::OutputTimeout)
    } else if cause.contains("waiting for events") || cause.contains("reading events") {
        Some(FailureClass::EventsTimeout)
    } else if cause.contains("control write failed") {
        Some(FailureClass::ProtocolError)
    } else {
        None
    }
}

/// The orchestrators that served the stream, one share per run of sightings of the same one.
///
/// A share changes hands at the last swap before the new orchestrator was first seen (that
/// swap's cause ends the share), or at that sighting when no swap trace came (it was lost). A
/// swap after the last change of hands ends the last share. Each share gets the output FPS of
/// the status samples in its span; the first share's startup is the session's, a later share's
/// is the time from its start to its first sample with output above 0 FPS.
pub(super) fn served_by(
    sightings: &[(i64, Orchestrator)],
    gpu_of: &dyn Fn(&Orchestrator) -> Option<Gpu>,
    swaps: &[(i64, String)],
    samples: &[(i64, f64)],
    started_at: i64,
    ended_at: i64,
    startup_ms: Option<f64>,
) -> Vec<ServedBy> {
    let mut shares: Vec<ServedBy> = Vec::new();
    let mut current: Option<&Orchestrator> = None;
    let mut previous_at = started_at;
    let mut used_swap: Option<usize> = None;
    for (at, orchestrator) in sightings {
        if current.is_some_and(|current| current.same_as(orchestrator)) {
            previous_at = *at;
            continue;
        }
        let handover = swaps
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (swap_at, _))| *swap_at > previous_at && *swap_at <= *at);
        previous_at = *at;
        if let Some(last) = shares.last_mut() {
            let (from, cause) = match handover {
                Some((index, (swap_at, cause))) => {
                    used_swap = Some(index);
                    (*swap_at, cause.clone())
                }
                None => (*at, "orchestrator changed (swap trace lost)".to_owned()),
            };
            last.to_unix_ms = from.clamp(started_at, ended_at);
            last.failure = swap_failure_class(&cause);
            last.ended_by = Some(cause);
        }
        let from = shares.last().map_or(started_at, |last| last.to_unix_ms);
        shares.push(ServedBy {
            orchestrator: orchestrator.reference(),
            gpu: gpu_of(orchestrator),
            from_unix_ms: from,
            to_unix_ms: ended_at,
            startup_ms: None,
            frames_received: 0,
            e2e_latency_ms: None,
            output_fps: None,
            stalls: Default::default(),
            ended_by: None,
            failure: None,
        });
        current = Some(orchestrator);
    }
    // A swap after the last change of hands (its successor never showed in the events) ends the
    // last share.
    let unmatched = swaps
        .iter()
        .enumerate()
        .filter(|(index, _)| used_swap.is_none_or(|used| *index > used))
        .find(|(_, (swap_at, _))| {
            shares
                .last()
                .is_some_and(|last| *swap_at > last.from_unix_ms)
        });
    if let (Some((_, (swap_at, cause))), Some(last)) = (unmatched, shares.last_mut()) {
        last.to_unix_ms = (*swap_at).clamp(last.from_unix_ms, ended_at);
        last.failure = swap_failure_class(cause);
        last.ended_by = Some(cause.clone());
    }
    let count = shares.len();
    for (index, share) in shares.iter_mut().enumerate() {
        let last = index + 1 == count;
        let in_share: Vec<(i64, f64)> = samples
            .iter()
            .copied()
            .filter(|(at, _)| {
                *at >= share.from_unix_ms && (*at < share.to_unix_ms || (last && *at <= ended_at))
            })
            .collect();
        let fps: Vec<f64> = in_share.iter().map(|(_, fps)| *fps).collect();
        share.output_fps = fps_summary(&fps);
        share.startup_ms = if index == 0 {
            startup_ms
        } else {
            in_share
                .iter()
                .find(|(_, fps)| *fps > 0.0)
                .map(|(at, _)| (at - share.from_unix_ms) as f64)
        };
    }
    shares
}
