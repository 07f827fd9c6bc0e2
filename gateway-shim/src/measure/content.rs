//! The content check: which input frame an output picture shows, read from the picture, against
//! which one its timestamp names.
//!
//! e2e latency matches output to input by equal PTS, which the orchestrator writes. One that
//! shifts its output PTS forward by D would be measured D faster than it is, and nothing in the
//! timestamps betrays it. Every input picture carries its frame number as a block code
//! (lvt's clip, `encode::pattern`); the driver decodes sampled output keyframes and reads the
//! code back. This tracker keeps the recent sent frames with their codes and, for each sample,
//! finds the input frame the picture shows (the latest sent with that code before the sample
//! arrived), compares it with the frame its PTS names, and keeps the latency by content. Pure:
//! no decoding and no clock here.

use std::collections::VecDeque;

use lvt_schema::{ContentCheck, LatencySummary};

/// Recent sent frames kept for content matching: about 8.5 s at 30 fps, twice the default
/// clip's loop (frame numbers repeat after it, so older sends could not be told apart anyway).
const MAX_SENT: usize = 256;

/// One sent input frame: its PTS, its send time and the frame number its picture carries.
#[derive(Debug, Clone, Copy)]
struct Sent {
    pts: u64,
    at_us: u64,
    code: u32,
}

/// The content samples of one session (or one share).
#[derive(Debug, Default)]
pub(crate) struct ContentTracker {
    sent: VecDeque<Sent>,
    samples: u32,
    unreadable: u32,
    disagreements: u32,
    /// Latency by content of each readable sample, us.
    latencies_us: Vec<u64>,
}

impl ContentTracker {
    /// Input frame `pts` carrying frame number `code` went out at `at_us`.
    pub(crate) fn handle_sent(&mut self, pts: u64, at_us: u64, code: u32) {
        if self.sent.len() >= MAX_SENT {
            self.sent.pop_front();
        }
        self.sent.push_back(Sent { pts, at_us, code });
    }

    /// A decoded output keyframe with timestamp `pts`, arrived at `at_us`, whose picture shows
    /// frame number `code` (`None`: unreadable). `pts_sent_at_us` is the send time of the input
    /// frame with that PTS, if one was sent; `tolerance_us` how far the two may disagree (a
    /// frame and a half).
    pub(crate) fn handle_sample(
        &mut self,
        pts: u64,
        at_us: u64,
        code: Option<u32>,
        pts_sent_at_us: Option<u64>,
        tolerance_us: u64,
    ) {
        self.samples = self.samples.saturating_add(1);
        // The picture answers the latest input frame with its number sent before it arrived; a
        // number never sent (a misread, or not our picture) is no evidence either way.
        let shown = code.and_then(|code| {
            self.sent
                .iter()
                .rev()
                .find(|sent| sent.code == code && sent.at_us <= at_us)
        });
        let Some(shown) = shown else {
            self.unreadable = self.unreadable.saturating_add(1);
            return;
        };
        let by_content_us = at_us - shown.at_us;
        self.latencies_us.push(by_content_us);
        let agrees = shown.pts == pts
            || pts_sent_at_us
                .filter(|sent| *sent <= at_us)
                .is_some_and(|sent| (at_us - sent).abs_diff(by_content_us) <= tolerance_us);
        if !agrees {
            self.disagreements = self.disagreements.saturating_add(1);
        }
    }

    /// The check as the record carries it, or `None` without samples.
    pub(crate) fn check(&self) -> Option<ContentCheck> {
        (self.samples > 0).then(|| ContentCheck {
            samples: self.samples,
            unreadable: self.unreadable,
            disagreements: self.disagreements,
            latency_p50_ms: self.summary().map(|summary| summary.p50),
        })
    }

    /// Whether the timestamps are not to be trusted: most readable samples disagree.
    pub(crate) fn pts_untrusted(&self) -> bool {
        let readable = self.samples - self.unreadable;
        readable > 0 && self.disagreements * 2 > readable
    }

    /// The latency by content of the readable samples (nearest-rank percentiles).
    pub(crate) fn summary(&self) -> Option<LatencySummary> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        let rank = |quantile: f64| {
            let index = (quantile * sorted.len() as f64).ceil() as usize;
            ms(sorted[index.clamp(1, sorted.len()) - 1])
        };
        let sum: u128 = sorted.iter().map(|us| u128::from(*us)).sum();
        Some(LatencySummary {
            count: sorted.len() as u64,
            p50: rank(0.50),
            p90: rank(0.90),
            p95: rank(0.95),
            p99: rank(0.99),
            max: ms(sorted[sorted.len() - 1]),
            mean: sum as f64 / sorted.len() as f64 / 1000.0,
            min: ms(sorted[0]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 fps: frame k sent at k x 33,333 us with PTS k x 3000 and code k mod 120.
    fn sent(tracker: &mut ContentTracker, frames: u64) {
        for k in 0..frames {
            tracker.handle_sent(k * 3000, k * 33_333, (k % 120) as u32);
        }
    }

    const TOLERANCE_US: u64 = 50_000;

    #[test]
    fn honest_timestamps_agree_with_the_pictures() {
        let mut tracker = ContentTracker::default();
        sent(&mut tracker, 200);
        // Frame 30 shown 200 ms after it was sent, with its own PTS.
        let at = 30 * 33_333 + 200_000;
        tracker.handle_sample(30 * 3000, at, Some(30), Some(30 * 33_333), TOLERANCE_US);
        assert!(!tracker.pts_untrusted());
        let check = tracker.check().expect("a sample");
        assert_eq!((check.samples, check.disagreements), (1, 0));
        assert_eq!(check.latency_p50_ms, Some(200.0));
    }

    #[test]
    fn shifted_timestamps_are_caught_and_the_latency_comes_from_the_pictures() {
        let mut tracker = ContentTracker::default();
        sent(&mut tracker, 200);
        // Frames shown 200 ms late, stamped 3 frames (100 ms) ahead: PTS-matching would say
        // 100 ms.
        for k in [30, 60, 90] {
            let at = k * 33_333 + 200_000;
            let pts = (k + 3) * 3000;
            tracker.handle_sample(
                pts,
                at,
                Some(k as u32),
                Some((k + 3) * 33_333),
                TOLERANCE_US,
            );
        }
        assert!(tracker.pts_untrusted());
        let summary = tracker.summary().expect("samples");
        assert_eq!((summary.count, summary.p50), (3, 200.0));
        // A PTS that names nothing sent disagrees too.
        let mut unmatched = ContentTracker::default();
        sent(&mut unmatched, 200);
        unmatched.handle_sample(1, 30 * 33_333 + 200_000, Some(30), None, TOLERANCE_US);
        assert!(unmatched.pts_untrusted());
    }

    #[test]
    fn unreadable_pictures_are_no_evidence() {
        let mut tracker = ContentTracker::default();
        sent(&mut tracker, 300);
        tracker.handle_sample(0, 1_000_000, None, Some(0), TOLERANCE_US);
        // A number that was never sent before the sample arrived (a misread).
        tracker.handle_sample(0, 1_000_000, Some(119), Some(0), TOLERANCE_US);
        assert!(!tracker.pts_untrusted());
        let check = tracker.check().expect("samples");
        assert_eq!((check.samples, check.unreadable), (2, 2));
        assert_eq!(check.latency_p50_ms, None);
        // The clip loops: a code matches its latest send before the sample.
        tracker.handle_sample(
            150 * 3000,
            150 * 33_333 + 100_000,
            Some(30),
            Some(150 * 33_333),
            TOLERANCE_US,
        );
        assert_eq!(tracker.summary().map(|s| s.p50), Some(100.0));
    }
}
