//! The content check: which input frame an output picture shows, read from the picture, against
//! which one its timestamp names.
//!
//! e2e latency matches output to input by equal PTS, which the orchestrator writes. One that
//! shifts its output PTS forward by D would be measured D faster than it is, and nothing in the
//! timestamps betrays it. Every input picture carries its frame number as a block code
//! (lvt's clip, `encode::pattern`); the driver decodes sampled output frames and reads the
//! code back. This tracker keeps the recent sent frames with their codes and, for each sample,
//! finds the input frame the picture shows (the latest sent with that code before the sample
//! arrived), compares it with the frame its PTS names, and keeps the latency by content.
//!
//! When the number cannot be read (restyling that keeps no digit), the luminance step marker
//! decides ([`ContentTracker::handle_step`]): the session core samples the first output frame
//! whose PTS names a frame past a step of the marker and, if its picture still shows the state
//! before the step, the frames after it until one shows the new state. That arrival minus the
//! send time of the input frame at the step is the latency by content: never shorter than the
//! truth (the picture cannot show the step before it was sent) and at most one output frame
//! interval longer (a runner that drops frames may skip the step frame itself). Pure: no
//! decoding and no clock here.
//!
//! Where timestamps are rewritten on the way (gateway mode), a picture whose number cannot be
//! read is placed by the segment marker instead ([`ContentTracker::handle_sample_by_content`]):
//! the big square and three smaller ones carry the segment's index modulo 16. Between two
//! consecutive samples whose markers differ the output crossed a step; the later sample's
//! arrival minus the send time of the first input frame of the segment its marker names is
//! its latency, never shorter than the truth and longer by the frames between the step and
//! the sample (none when every output frame is decoded and none was dropped). The index tells
//! the steps apart, so a latency longer than a segment is not taken for a shorter one.

use std::collections::VecDeque;

use lvt_schema::{ContentCheck, LatencySummary};

/// Recent sent frames kept for content matching: about 8.5 s at 30 fps, twice the default
/// clip's loop (frame numbers repeat after it, so older sends could not be told apart anyway).
const MAX_SENT: usize = 256;

/// One sent input frame: its PTS, its send time, the frame number its picture carries and its
/// segment marker (bit 0: the luminance step marker, dark when set).
#[derive(Debug, Clone, Copy)]
struct Sent {
    pts: u64,
    at_us: u64,
    code: u32,
    marker: u8,
}

impl Sent {
    fn bright(&self) -> bool {
        self.marker & 1 == 0
    }
}

/// The content samples of one session (or one share).
#[derive(Debug, Default)]
pub(crate) struct ContentTracker {
    sent: VecDeque<Sent>,
    samples: u32,
    unreadable: u32,
    disagreements: u32,
    /// Samples decided by the luminance marker.
    by_luminance: u32,
    /// Latency by content of each readable sample, us.
    latencies_us: Vec<u64>,
    /// The segment marker of the previous sample by content (`None`: unread).
    last_marker: Option<u8>,
}

impl ContentTracker {
    /// Input frame `pts` carrying frame number `code` and segment marker `marker` went out at
    /// `at_us`.
    pub(crate) fn handle_sent(&mut self, pts: u64, at_us: u64, code: u32, marker: u8) {
        if self.sent.len() >= MAX_SENT {
            self.sent.pop_front();
        }
        self.sent.push_back(Sent {
            pts,
            at_us,
            code,
            marker,
        });
    }

    /// A check by the luminance marker: output frame `pts`, arrived at `at_us`, is the first
    /// whose PTS names a frame past a step into state `bright`; `found_at_us` is the arrival of
    /// the first frame from it on whose picture shows that state (`None`: none did, or no
    /// picture could be read). `pts_sent_at_us` is the send time of the input frame its PTS
    /// names. The timestamps agree when the picture showed the step within `tolerance_us` of
    /// the sampled frame.
    pub(crate) fn handle_step(
        &mut self,
        at_us: u64,
        bright: bool,
        found_at_us: Option<u64>,
        pts_sent_at_us: Option<u64>,
        tolerance_us: u64,
    ) {
        self.samples = self.samples.saturating_add(1);
        let step_at_us =
            found_at_us.and_then(|found| self.step_sent_before(|s| s.bright() == bright, found));
        let (Some(found_at_us), Some(step_at_us)) = (found_at_us, step_at_us) else {
            self.unreadable = self.unreadable.saturating_add(1);
            return;
        };
        self.by_luminance = self.by_luminance.saturating_add(1);
        self.latencies_us.push(found_at_us - step_at_us);
        // The sampled frame's PTS names a frame sent at or after the step; the picture agrees
        // when it (or a frame right after it) already showed the step.
        let agrees = pts_sent_at_us.is_some_and(|sent| sent >= step_at_us && sent <= at_us)
            && found_at_us.saturating_sub(at_us) <= tolerance_us;
        if !agrees {
            self.disagreements = self.disagreements.saturating_add(1);
        }
    }

    /// The send time of the latest input frame sent by `before_us` where the marker stepped
    /// into a state `shows` (the frame before it did not show it).
    fn step_sent_before(&self, shows: impl Fn(&Sent) -> bool, before_us: u64) -> Option<u64> {
        let mut sent = self.sent.iter().rev().skip_while(|s| s.at_us > before_us);
        // The latest frame in the state, then back to the first of its run.
        let mut run_start = sent.find(|s| shows(s))?;
        for earlier in sent {
            if !shows(earlier) {
                return Some(run_start.at_us);
            }
            run_start = earlier;
        }
        // The run reaches back past what is kept: where it started is not known.
        None
    }

    /// A decoded output frame with timestamp `pts`, arrived at `at_us`, whose picture shows
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
        let Some(shown) = self.shown(code, at_us) else {
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

    /// A decoded output frame arrived at `at_us` showing frame number `code` and segment
    /// marker `marker`, where its timestamp says nothing (rewritten on the way): only its
    /// latency by content counts. Samples must come in arrival order, each the output frame
    /// after the previous one decoded. A readable number decides; else a marker that differs
    /// from the previous sample's places the sample at a step (module documentation); a marker
    /// equal to the previous one gives no latency (the sample is between steps) and counts
    /// only as a sample.
    pub(crate) fn handle_sample_by_content(
        &mut self,
        at_us: u64,
        code: Option<u32>,
        marker: Option<u8>,
    ) {
        self.samples = self.samples.saturating_add(1);
        let previous = std::mem::replace(&mut self.last_marker, marker);
        if let Some(shown) = self.shown(code, at_us) {
            self.latencies_us.push(at_us - shown.at_us);
            return;
        }
        match (previous, marker) {
            (Some(previous), Some(marker)) if previous != marker => {
                match self.step_sent_before(|s| s.marker == marker, at_us) {
                    Some(step_at_us) => {
                        self.by_luminance = self.by_luminance.saturating_add(1);
                        self.latencies_us.push(at_us - step_at_us);
                    }
                    None => self.unreadable = self.unreadable.saturating_add(1),
                }
            }
            (_, Some(_)) => {}
            (_, None) => self.unreadable = self.unreadable.saturating_add(1),
        }
    }

    /// The input frame a picture showing `code` at `at_us` answers: the latest sent with that
    /// number before it arrived. A number never sent (a misread, or not our picture) is no
    /// evidence either way.
    fn shown(&self, code: Option<u32>, at_us: u64) -> Option<Sent> {
        let code = code?;
        self.sent
            .iter()
            .rev()
            .find(|sent| sent.code == code && sent.at_us <= at_us)
            .copied()
    }

    /// The check as the record carries it, or `None` without samples.
    pub(crate) fn check(&self) -> Option<ContentCheck> {
        (self.samples > 0).then(|| ContentCheck {
            samples: self.samples,
            unreadable: self.unreadable,
            disagreements: self.disagreements,
            by_luminance: self.by_luminance,
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

    /// 30 fps: frame k sent at k x 33,333 us with PTS k x 3000 and code k mod 120; the marker
    /// is bright for codes 0-29 and 60-89.
    fn sent(tracker: &mut ContentTracker, frames: u64) {
        for k in 0..frames {
            let code = (k % 120) as u32;
            tracker.handle_sent(k * 3000, k * 33_333, code, (code / 30 % 16) as u8);
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
    fn the_luminance_step_agrees_with_honest_timestamps() {
        let mut tracker = ContentTracker::default();
        sent(&mut tracker, 200);
        // The marker steps to dark at frame 30; the output stamped 30 shows it, 200 ms late.
        let at = 30 * 33_333 + 200_000;
        tracker.handle_step(at, false, Some(at), Some(30 * 33_333), TOLERANCE_US);
        assert!(!tracker.pts_untrusted());
        let check = tracker.check().expect("a sample");
        assert_eq!(
            (check.samples, check.by_luminance, check.disagreements),
            (1, 1, 0)
        );
        assert_eq!(check.latency_p50_ms, Some(200.0));
        // A runner that drops frames: the first output past the next step to dark (frame 90) is
        // stamped 92 and shows 92. The latency by content is frame 90's, 2 frames longer, and
        // the stamps agree.
        let at = 92 * 33_333 + 200_000;
        tracker.handle_step(at, false, Some(at), Some(92 * 33_333), TOLERANCE_US);
        assert!(!tracker.pts_untrusted());
        assert_eq!(tracker.summary().map(|s| s.max), Some(266.666));
    }

    #[test]
    fn the_luminance_step_catches_timestamps_ahead_of_the_pictures() {
        let mut tracker = ContentTracker::default();
        sent(&mut tracker, 200);
        // Shown 200 ms late, stamped 3 frames ahead: the output stamped 30 (past the step to
        // dark) shows frame 27, still bright; the one showing 30 comes 100 ms later.
        for k in [30u64, 90, 150] {
            let at = (k - 3) * 33_333 + 200_000;
            let found = k * 33_333 + 200_000;
            tracker.handle_step(at, false, Some(found), Some(k * 33_333), TOLERANCE_US);
        }
        assert!(tracker.pts_untrusted());
        let check = tracker.check().expect("samples");
        assert_eq!((check.by_luminance, check.disagreements), (3, 3));
        assert_eq!(check.latency_p50_ms, Some(200.0));
        // No frame showed the step, or the step is older than what is kept: no evidence.
        let mut blind = ContentTracker::default();
        sent(&mut blind, 200);
        blind.handle_step(1_000_000, false, None, Some(30 * 33_333), TOLERANCE_US);
        let mut short = ContentTracker::default();
        for k in 0..20u64 {
            short.handle_sent(k * 3000, k * 33_333, k as u32, 0);
        }
        short.handle_step(900_000, true, Some(900_000), Some(0), TOLERANCE_US);
        for tracker in [blind, short] {
            assert!(!tracker.pts_untrusted());
            let check = tracker.check().expect("a sample");
            assert_eq!((check.unreadable, check.by_luminance), (1, 0));
        }
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

    /// The sample of output frame `k` by content alone: arrived `latency_us` after frame `k`
    /// was sent, number unreadable, marker `k`'s (as `sent` draws it) or none.
    fn by_marker(tracker: &mut ContentTracker, k: u64, latency_us: u64, readable: bool) {
        let marker = ((k % 120) / 30 % 16) as u8;
        tracker.handle_sample_by_content(k * 33_333 + latency_us, None, readable.then_some(marker));
    }

    #[test]
    fn the_segment_marker_places_unreadable_pictures_at_each_step() {
        // Every output frame decoded, 1.3 s late (longer than a segment), no number readable:
        // each step (frames 30, 60, 90, 120, 150) gives the latency exactly; the frames between
        // steps give none.
        let mut tracker = ContentTracker::default();
        sent(&mut tracker, 200);
        for k in 0..=150 {
            by_marker(&mut tracker, k, 1_300_000, true);
        }
        let check = tracker.check().expect("samples");
        assert_eq!(
            (check.samples, check.by_luminance, check.unreadable),
            (151, 5, 0)
        );
        let summary = tracker.summary().expect("latencies");
        assert_eq!((summary.min, summary.max), (1_300.0, 1_300.0));
    }

    #[test]
    fn the_segment_index_keeps_latencies_longer_than_two_segments_apart() {
        // 2.3 s late: when frame 30 (the step into segment 1) shows, frame 90 (the step into
        // segment 3, as dark as segment 1) has gone out too. The luminance step alone would
        // take it for 0.3 s; the index tells segment 1 from segment 3.
        let mut tracker = ContentTracker::default();
        sent(&mut tracker, 200);
        for k in 29..=31 {
            by_marker(&mut tracker, k, 2_300_000, true);
        }
        let summary = tracker.summary().expect("a latency");
        assert_eq!((summary.count, summary.p50), (1, 2_300.0));
    }

    #[test]
    fn keyframes_one_segment_apart_are_steps_and_an_unread_sample_breaks_the_chain() {
        // Only the first frame of each segment decoded (load mode), 200 ms late.
        let mut tracker = ContentTracker::default();
        sent(&mut tracker, 200);
        for k in [0, 30, 60] {
            by_marker(&mut tracker, k, 200_000, true);
        }
        // An unreadable picture (an overlay): the next marker cannot tell whether a step was
        // crossed in between, so it gives nothing; the one after it does again.
        by_marker(&mut tracker, 90, 200_000, false);
        by_marker(&mut tracker, 120, 200_000, true);
        by_marker(&mut tracker, 150, 200_000, true);
        let check = tracker.check().expect("samples");
        assert_eq!(
            (check.samples, check.by_luminance, check.unreadable),
            (6, 3, 1)
        );
        assert_eq!(check.latency_p50_ms, Some(200.0));
        // A readable number still decides, whatever the marker.
        tracker.handle_sample_by_content(170 * 33_333 + 200_000, Some(50), Some(9));
        assert_eq!(tracker.summary().map(|s| s.count), Some(4));
    }
}
