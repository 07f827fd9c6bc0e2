//! Human-readable renderings of session reports: the probe's detail table and the demo's
//! comparison table. Missing data prints as `-`, never as 0.

use std::fmt::Write;

use lvt_schema::{Outcome, SessionReport};

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// The outcome as printed: `passed`, `failed (class)`, `unscored_busy`.
pub fn outcome_label(r: &SessionReport) -> String {
    match (&r.outcome, &r.failure) {
        (Outcome::Passed, _) => "passed".into(),
        (Outcome::Failed, Some(f)) => format!("failed ({})", class_name(f.class)),
        (Outcome::Failed, None) => "failed".into(),
        (Outcome::UnscoredBusy, _) => "unscored_busy".into(),
        (Outcome::UnscoredIndeterminate, _) => "unscored_indeterminate".into(),
    }
}

/// A failure class as result records write it (`output_timeout`), taken from serde so the two
/// never differ.
pub(crate) fn class_name(c: lvt_schema::FailureClass) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{c:?}"))
}

/// The detail table `lvt probe` prints for one session.
pub fn session_table(r: &SessionReport) -> String {
    let m = &r.metrics;
    let mut rows: Vec<(&str, String)> = Vec::new();
    rows.push(("outcome", outcome_label(r)));
    if let Some(f) = &r.failure {
        rows.push(("failure", f.detail.clone()));
    }
    if let Some(o) = &r.orchestrator {
        rows.push(("orchestrator", o.uri.clone()));
        rows.push(("address", o.address.clone().unwrap_or_else(|| "-".into())));
        if let Some(fp) = &o.cert_sha256 {
            rows.push(("cert sha256", fp.clone()));
        }
    }
    rows.push((
        "gpu",
        r.gpu.as_ref().map_or_else(
            || "-".into(),
            |g| match g.memory_bytes {
                Some(b) => format!("{} ({:.0} GiB)", g.name, b as f64 / (1u64 << 30) as f64),
                None => g.name.clone(),
            },
        ),
    ));
    rows.push(("model", r.model_id.clone()));
    match &m.gateway {
        // Gateway mode: the WebRTC legs in place of GetOrchestrator and job start.
        Some(g) => {
            rows.push(("WHIP answer ms", opt(g.whip_answer_ms, 1)));
            rows.push((
                "ICE / DTLS connected ms",
                format!(
                    "{} / {}",
                    opt(g.ice_connected_ms, 1),
                    opt(g.dtls_connected_ms, 1)
                ),
            ));
            rows.push((
                "WHEP answer ms (404s)",
                format!("{} ({})", opt(g.whep_answer_ms, 1), g.whep_not_found),
            ));
            rows.push(("WHEP connected ms", opt(g.whep_connected_ms, 1)));
            rows.push(("PLIs from the gateway", g.plis_received.to_string()));
            rows.push((
                "RTP in / out kbit/s",
                format!(
                    "{} / {}",
                    opt(g.ingest.bitrate_kbps, 0),
                    opt(g.playback.bitrate_kbps, 0)
                ),
            ));
        }
        None => {
            rows.push(("GetOrchestrator ms", opt(m.get_orchestrator_ms, 1)));
            rows.push(("job start ms", opt(m.job_start_ms, 1)));
        }
    }
    rows.push(("startup ms", opt(m.startup_ms, 1)));
    rows.push((
        "e2e ms p50/p90/p95/p99/max",
        m.e2e_latency_ms.as_ref().map_or_else(
            || "-".into(),
            |l| {
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} / {:.1}",
                    l.p50, l.p90, l.p95, l.p99, l.max
                )
            },
        ),
    ));
    rows.push((
        "output fps mean/p5/p50",
        m.output_fps.as_ref().map_or_else(
            || "-".into(),
            |f| format!("{:.2} / {:.2} / {:.2}", f.mean, f.p5, f.p50),
        ),
    ));
    rows.push(("input fps", opt(m.input_fps, 2)));
    rows.push(("fps jitter (std/mean)", opt(m.fps_jitter, 3)));
    rows.push((
        "frame interval jitter ms",
        opt(m.frame_interval_jitter_ms, 2),
    ));
    rows.push((
        "stalls (count, total ms)",
        format!("{}, {:.0}", m.stalls.count, m.stalls.total_ms),
    ));
    rows.push((
        "segments sent/received",
        format!("{} / {}", m.segments_sent, m.segments_received),
    ));
    rows.push((
        "frames sent/received",
        format!("{} / {}", m.frames_sent, m.frames_received),
    ));
    rows.push((
        "output resolution",
        match (m.output_width, m.output_height) {
            (Some(w), Some(h)) => format!("{w}x{h}"),
            _ => "-".into(),
        },
    ));
    if let Some(o) = &m.loading_overlay {
        rows.push((
            "loading overlay",
            format!(
                "{} frames, {:.0} to {:.0} ms (not counted as output)",
                o.frames, o.first_ms, o.last_ms
            ),
        ));
    }
    if m.pts_untrusted {
        rows.push((
            "output timestamps",
            "untrusted: e2e comes from the pictures".into(),
        ));
    }
    let ru = &r.runner;
    rows.push((
        "runner state",
        ru.last_state.clone().unwrap_or_else(|| "-".into()),
    ));
    rows.push((
        "runner fps in/out",
        format!("{} / {}", opt(ru.input_fps, 2), opt(ru.output_fps, 2)),
    ));
    rows.push((
        "runner restarts",
        ru.restart_count
            .map_or_else(|| "-".into(), |c| c.to_string()),
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    out
}

/// A plain text table with a header row and left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(c.chars().count());
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(header.to_vec(), &mut out);
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
        &mut out,
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// One comparison row per session, as `lvt demo` prints them.
pub fn comparison_rows(reports: &[(String, SessionReport)]) -> Vec<Vec<String>> {
    reports
        .iter()
        .enumerate()
        .map(|(i, (name, r))| {
            let m = &r.metrics;
            vec![
                (i + 1).to_string(),
                name.clone(),
                outcome_label(r),
                r.gpu
                    .as_ref()
                    .map_or_else(|| "-".into(), |g| g.name.clone()),
                opt(m.startup_ms, 0),
                opt(m.e2e_latency_ms.as_ref().map(|l| l.p50), 1),
                opt(m.e2e_latency_ms.as_ref().map(|l| l.p95), 1),
                opt(m.output_fps.as_ref().map(|f| f.mean), 1),
                opt(m.output_fps.as_ref().map(|f| f.p5), 1),
                opt(m.fps_jitter, 3),
                format!("{}/{:.0}", m.stalls.count, m.stalls.total_ms),
                opt(score(r), 1),
            ]
        })
        .collect()
}

/// Header of [`comparison_rows`].
pub const COMPARISON_HEADER: &[&str] = &[
    "rank",
    "orchestrator",
    "outcome",
    "gpu",
    "startup ms",
    "e2e p50",
    "e2e p95",
    "fps",
    "fps p5",
    "jitter",
    "stalls n/ms",
    "score",
];

/// The probe score used to rank sessions in `lvt demo` (0 to 100, see docs/metrics.md):
/// `100 * (0.4 * delivery + 0.3 * startup + 0.3 * latency)` where `delivery` is the output FPS
/// over the input FPS (capped at 1), `startup` falls linearly from 1 at 1 s to 0 at 8 s (the
/// existing tester's maximum initial latency), and `latency` falls linearly from 1 at an e2e
/// p50 of 100 ms to 0 at 3000 ms (the documented e2e target). A missing measurement counts 0.
/// Failed sessions score 0; unscored sessions have no score. It ranks one probe of each
/// orchestrator; the collector's SLA score, computed against cohorts, is a different number.
pub fn score(r: &SessionReport) -> Option<f64> {
    match r.outcome {
        Outcome::Passed => {}
        Outcome::Failed => return Some(0.0),
        Outcome::UnscoredBusy | Outcome::UnscoredIndeterminate => return None,
    }
    let m = &r.metrics;
    let linear =
        |value: f64, best: f64, worst: f64| ((worst - value) / (worst - best)).clamp(0.0, 1.0);
    let delivery = match (m.output_fps.as_ref(), m.input_fps) {
        (Some(out), Some(input)) if input > 0.0 => (out.mean / input).min(1.0),
        _ => 0.0,
    };
    let startup = m.startup_ms.map_or(0.0, |s| linear(s, 1000.0, 8000.0));
    let latency = m
        .e2e_latency_ms
        .as_ref()
        .map_or(0.0, |l| linear(l.p50, 100.0, 3000.0));
    Some(100.0 * (0.4 * delivery + 0.3 * startup + 0.3 * latency))
}

/// Orders sessions best first: passed by score (ties by lower e2e p50), then failed, then unscored.
pub fn rank(reports: &mut [(String, SessionReport)]) {
    fn key(r: &SessionReport) -> (u8, f64, f64) {
        let class = match r.outcome {
            Outcome::Passed => 0,
            Outcome::Failed => 1,
            Outcome::UnscoredBusy | Outcome::UnscoredIndeterminate => 2,
        };
        let e2e = r
            .metrics
            .e2e_latency_ms
            .as_ref()
            .map_or(f64::INFINITY, |l| l.p50);
        (class, -score(r).unwrap_or(0.0), e2e)
    }
    reports.sort_by(|a, b| {
        let (ka, kb) = (key(&a.1), key(&b.1));
        ka.0.cmp(&kb.0)
            .then(ka.1.total_cmp(&kb.1))
            .then(ka.2.total_cmp(&kb.2))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvt_schema::LoadingOverlay;

    #[test]
    fn the_table_says_what_was_not_output_and_untrusted_timestamps() {
        let mut r = SessionReport::new("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "noop", 0);
        let plain = session_table(&r);
        assert!(!plain.contains("loading overlay"), "{plain}");
        assert!(!plain.contains("output timestamps"), "{plain}");
        r.metrics.loading_overlay = Some(LoadingOverlay {
            frames: 15,
            first_ms: 0.4,
            last_ms: 466.7,
        });
        r.metrics.pts_untrusted = true;
        let table = session_table(&r);
        assert!(
            table.contains("15 frames, 0 to 467 ms (not counted as output)"),
            "{table}"
        );
        assert!(
            table.contains("untrusted: e2e comes from the pictures"),
            "{table}"
        );
    }
}
