//! Which cells a session adds to: one for a directly tested session, one per serving
//! orchestrator for a network-mode session that reports its shares ([`SessionReport::served_by`]),
//! none for a session through a gateway (it names no orchestrator).
//!
//! A session through a gateway may be served by several orchestrators in turn: the gateway swaps
//! away from one that fails. Charging the whole session to any single one of them would blame the
//! replacement for its predecessor's failure, or credit the failing one with its replacement's
//! output. So each share is scored as an attempt on its own orchestrator (docs/sla.md, "Network
//! mode"): the session's start (startup success and latency) is the first orchestrator's; a share
//! that ended in a swap with a failure the target is answerable for counts against its
//! orchestrator's no-swap rate; e2e latency, FPS and stalls come from the share's own measurements.

use std::collections::BTreeMap;

use lvt_schema::{Outcome, ServedBy, SessionReport, TargetMode};

use super::cell::{
    CellKey, CellSums, Evidence, hour_floor_unix_s, is_excused, measured, only_loading,
    orchestrator_key,
};

/// The cells `session` adds to, each with the sums of its part of the session, in share order.
/// A session without shares (direct mode, or a network record from before shares were reported)
/// adds its whole evidence to [`CellKey::of`].
pub fn contributions(session: &SessionReport) -> Vec<(CellKey, CellSums)> {
    let mut out = Vec::new();
    for_each_contribution(session, |key, evidence| {
        let mut sums = CellSums::default();
        sums.add_evidence(evidence);
        out.push((key, sums));
    });
    out
}

/// Adds `session` to the cells it contributes to (see [`contributions`]).
pub fn add_session(cells: &mut BTreeMap<CellKey, CellSums>, session: &SessionReport) {
    for_each_contribution(session, |key, evidence| {
        cells.entry(key).or_default().add_evidence(evidence);
    });
}

fn for_each_contribution(session: &SessionReport, mut add: impl FnMut(CellKey, &Evidence)) {
    if session.mode == TargetMode::Gateway {
        // Through a gateway, the record names no orchestrator (the gateway does not say which
        // one served, and a pin is only a substring of a URL): charging it to any would be a
        // guess. Such records are kept and listed, not scored (docs/sla.md).
        return;
    }
    let session_key = CellKey::of(session);
    if session.mode != TargetMode::Network || session.served_by.is_empty() {
        add(session_key, &Evidence::of_session(session));
        return;
    }
    let last = session.served_by.len() - 1;
    for (index, share) in session.served_by.iter().enumerate() {
        let key = CellKey {
            hour_unix_s: if index == 0 {
                session_key.hour_unix_s
            } else {
                hour_floor_unix_s(share.from_unix_ms)
            },
            orchestrator: orchestrator_key(&share.orchestrator, session.is_test_load),
            gpu: share
                .gpu
                .as_ref()
                .map(|gpu| gpu.name.clone())
                .unwrap_or_default(),
            ..session_key.clone()
        };
        add(key, &share_evidence(session, share, index, index == last));
    }
}

/// The evidence of one share: share `index` of `session`, `last` when it held the session's end.
fn share_evidence(session: &SessionReport, share: &ServedBy, index: usize, last: bool) -> Evidence {
    let (outcome, failure_class) = if last {
        // The last orchestrator held the session when it ended, so the session's outcome is its.
        (
            session.outcome,
            session.failure.as_ref().map(|failure| failure.class),
        )
    } else {
        match share.failure {
            Some(class) => (Outcome::Failed, Some(class)),
            // A swap whose cause maps to no failure (a gateway decision, not a fault) leaves the
            // share as served well.
            None => (Outcome::Passed, None),
        }
    };
    let (started, startup_ms, share_start_unix_ms) = if index == 0 {
        // The session's start is the first orchestrator's: its startup success and latency are
        // the session's, measured from the session's start.
        let startup_ms = measured(session.metrics.startup_ms);
        (startup_ms.is_some(), startup_ms, session.started_at_unix_ms)
    } else {
        // A later orchestrator took over a running stream: whether it produced output is its
        // startup success, but its takeover time is not a session startup and joins no latency
        // sum or percentile.
        let started = measured(share.startup_ms).is_some() || share.frames_received > 0;
        (started, None, share.from_unix_ms)
    };
    Evidence {
        outcome,
        failure_class,
        started,
        startup_ms,
        e2e_p50_ms: measured(share.e2e_latency_ms.map(|latency| latency.p50)),
        e2e_expected: session.is_test_load,
        output_fps: measured(share.output_fps.map(|fps| fps.mean)),
        // Jitter is measured over the whole session; it describes a share only when the share is
        // the whole session.
        fps_jitter: if session.served_by.len() == 1 {
            measured(session.metrics.fps_jitter)
        } else {
            None
        },
        only_loading: only_loading(&session.runner.states_seen),
        swaps: u64::from(share.ended_by.is_some()),
        broke: share.failure.is_some() && !is_excused(share.failure),
        stalls: share.stalls.count,
        stall_ms: share.stalls.total_ms,
        length_ms: share.to_unix_ms.saturating_sub(share_start_unix_ms),
        slo: session.slo,
    }
}
