//! The content check of one share, at the luminance steps of the input clip.
//!
//! lvt's clip carries two content markers: its frame number (digits and a block code) and a
//! big square that flips between black and white at every segment start
//! ([`super::beacon_bright`]). The timestamps of the output name input frames; at every Nth
//! output frame whose timestamp names a frame past a step (the first frame of a new marker
//! state by its PTS), the check asks the driver to look at the picture. When the frame number
//! is readable it decides (the exact check, [`crate::measure`]'s content tracker). When it is
//! not (restyled beyond the digits), the marker does: if the picture already shows the new
//! state, the timestamps agree; if it still shows the old one, the timestamps run ahead of the
//! pictures, and the following frames are looked at until one shows the new state. Its arrival
//! minus the send time of the input step frame is the latency by content, which no timestamp
//! can shorten. A picture that shows neither state (the loading overlay, an undecodable frame)
//! ends the check without evidence. Pure: the answers come from the driver.

use std::collections::VecDeque;

use super::PictureLook;

/// One open check: the sampled frame and the frames asked about since.
#[derive(Debug)]
struct Search {
    /// The sampled frame: its PTS and arrival.
    pts: u64,
    at_us: u64,
    /// The marker state its PTS names (the state after the step).
    bright: bool,
    /// Frames asked about and not yet answered, `(pts, arrival)`, in order.
    pending: VecDeque<(u64, u64)>,
    /// Frames asked about in this check.
    asked: u32,
    /// Whether the sampled frame's own answer came (it decides between the two markers).
    sampled_answered: bool,
}

/// What a finished check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepSample {
    /// The sampled frame's number is readable: the exact check.
    Code { pts: u64, at_us: u64, code: u32 },
    /// By the marker: the sampled frame, and the arrival of the first frame from it on that
    /// shows the state its PTS names (`None`: none did within the frames looked at).
    Luminance {
        pts: u64,
        at_us: u64,
        bright: bool,
        found_at_us: Option<u64>,
    },
}

/// One share's step checks; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct StepProbe {
    /// The marker state the previous output frame's PTS named.
    last_bright: Option<bool>,
    /// Steps seen by PTS.
    steps: u32,
    /// Which steps are checked besides the first: those where `steps + phase` is a multiple of
    /// the cadence.
    phase: u32,
    search: Option<Search>,
}

impl StepProbe {
    /// A probe that checks the first step, then every step where the count of steps seen plus
    /// `phase` is a multiple of the cadence (with `phase` 0: steps 0, N, 2N, ...). Sessions
    /// started together with different phases hold frames for their checks at different
    /// times, so that the frames held at once are a share of theirs rather than all of them.
    pub fn with_phase(phase: u32) -> Self {
        Self {
            phase,
            ..Self::default()
        }
    }

    /// Whether the step after `steps` steps seen is checked.
    fn due(&self, steps: u32, every: u32) -> bool {
        steps == 0 || steps.wrapping_add(self.phase).is_multiple_of(every)
    }

    /// Output frame `pts`, arrived at `at_us`, whose PTS names marker state `bright`. Returns
    /// whether the driver must look at it, and a check that ended without an answer (it looked
    /// at `max_frames` frames and none showed the step).
    pub fn handle_frame(
        &mut self,
        pts: u64,
        at_us: u64,
        bright: bool,
        every: u32,
        max_frames: u32,
    ) -> (bool, Option<StepSample>) {
        let step = self.last_bright.is_some_and(|last| last != bright);
        self.last_bright = Some(bright);
        let mut given_up = None;
        if let Some(search) = &mut self.search {
            if search.asked < max_frames {
                search.asked += 1;
                search.pending.push_back((pts, at_us));
                return (true, None);
            }
            given_up = Some(StepSample::Luminance {
                pts: search.pts,
                at_us: search.at_us,
                bright: search.bright,
                found_at_us: None,
            });
            self.search = None;
        }
        if !step || every == 0 {
            return (false, given_up);
        }
        let due = self.due(self.steps, every);
        self.steps = self.steps.wrapping_add(1);
        if !due {
            return (false, given_up);
        }
        self.search = Some(Search {
            pts,
            at_us,
            bright,
            pending: VecDeque::from([(pts, at_us)]),
            asked: 1,
            sampled_answered: false,
        });
        (true, given_up)
    }

    /// The driver's look at output frame `pts` (asked by this probe or by the overlay watch;
    /// answers come in the order asked); with `read_numbers` a readable frame number of the
    /// sampled frame decides. Returns the check it finishes, if any.
    pub fn handle_look(
        &mut self,
        pts: u64,
        look: Option<PictureLook>,
        read_numbers: bool,
    ) -> Option<StepSample> {
        let search = self.search.as_mut()?;
        let &(front, at_us) = search.pending.front()?;
        if front != pts {
            return None;
        }
        search.pending.pop_front();
        let first = !search.sampled_answered;
        search.sampled_answered = true;
        if first
            && read_numbers
            && let Some(code) = look.and_then(|l| l.code)
        {
            let sample = StepSample::Code {
                pts: search.pts,
                at_us: search.at_us,
                code,
            };
            self.search = None;
            return Some(sample);
        }
        // Only a chain of pictures in the old state, then one in the new, is evidence. A
        // picture showing neither (the gray loading overlay, an undecodable frame) ends the
        // check without any: a runner that was loading would otherwise look late.
        let found_at_us = match look.and_then(|l| l.beacon) {
            Some(shown) if shown == search.bright => Some(at_us),
            Some(_) => return None,
            None => None,
        };
        let sample = StepSample::Luminance {
            pts: search.pts,
            at_us: search.at_us,
            bright: search.bright,
            found_at_us,
        };
        self.search = None;
        Some(sample)
    }

    /// Whether a check waits for answers (the driver must keep decoding this share's frames).
    pub fn is_searching(&self) -> bool {
        self.search.is_some()
    }

    /// Whether the driver should be handed this share's frames: a check is open, or one of the
    /// next two steps is due (so that the sampled frame's keyframe is among them even when the
    /// output's keyframes are up to two segments apart). With `every` at 10 that is a fifth
    /// of the time; otherwise the driver holds no frame.
    pub fn wants_frames(&self, every: u32) -> bool {
        every > 0
            && (self.search.is_some()
                || self.due(self.steps, every)
                || self.due(self.steps.wrapping_add(1), every))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(code: Option<u32>, beacon: Option<bool>) -> Option<PictureLook> {
        Some(PictureLook {
            colourless: false,
            code,
            beacon,
            marker: None,
        })
    }

    #[test]
    fn every_nth_step_by_pts_is_sampled() {
        let mut probe = StepProbe::default();
        // States by PTS: 3 frames bright, 3 dark, 3 bright, 3 dark.
        let mut sampled = Vec::new();
        for k in 0..12u64 {
            let bright = (k / 3) % 2 == 0;
            let (look, _) = probe.handle_frame(k, k * 10, bright, 2, 5);
            if look {
                sampled.push(k);
                // The frame number is readable: the check ends at once.
                assert!(matches!(
                    probe.handle_look(k, look_code(k), true),
                    Some(StepSample::Code { pts, .. }) if pts == k
                ));
            }
        }
        // Steps at frames 3, 6 and 9; every second one from the first.
        assert_eq!(sampled, vec![3, 9]);
    }

    fn look_code(k: u64) -> Option<PictureLook> {
        look(Some(k as u32), None)
    }

    #[test]
    fn an_unreadable_number_falls_back_to_the_marker_and_searches_for_the_step() {
        let mut probe = StepProbe::default();
        assert_eq!(probe.handle_frame(0, 0, false, 1, 10), (false, None));
        // Frame 1 names the bright state, but the picture still shows dark: look on.
        assert_eq!(probe.handle_frame(1, 100, true, 1, 10), (true, None));
        assert_eq!(probe.handle_look(1, look(None, Some(false)), true), None);
        assert_eq!(probe.handle_frame(2, 133, true, 1, 10), (true, None));
        assert_eq!(probe.handle_look(2, look(None, Some(false)), true), None);
        assert_eq!(probe.handle_frame(3, 166, true, 1, 10), (true, None));
        // A later frame's number is not the sampled frame's: the marker still decides.
        assert_eq!(
            probe.handle_look(3, look(Some(77), Some(true)), true),
            Some(StepSample::Luminance {
                pts: 1,
                at_us: 100,
                bright: true,
                found_at_us: Some(166)
            })
        );
        assert!(!probe.is_searching());
        // An answer for a frame nobody here asked about changes nothing.
        assert_eq!(probe.handle_look(9, look(None, Some(true)), true), None);

        // A picture showing neither state (the loading overlay, or undecodable) in the chain
        // ends the check without evidence, whatever comes after.
        for neither in [None, look(None, None)] {
            let mut loading = StepProbe::default();
            loading.handle_frame(0, 0, false, 1, 10);
            loading.handle_frame(1, 100, true, 1, 10);
            loading.handle_frame(2, 133, true, 1, 10);
            assert_eq!(loading.handle_look(1, look(None, Some(false)), true), None);
            assert_eq!(
                loading.handle_look(2, neither, true),
                Some(StepSample::Luminance {
                    pts: 1,
                    at_us: 100,
                    bright: true,
                    found_at_us: None
                })
            );
            assert!(!loading.is_searching());
        }

        // Told not to read numbers, a readable one does not decide.
        let mut blind = StepProbe::default();
        blind.handle_frame(0, 0, false, 1, 10);
        assert_eq!(blind.handle_frame(1, 100, true, 1, 10), (true, None));
        assert!(matches!(
            blind.handle_look(1, look(Some(1), Some(true)), false),
            Some(StepSample::Luminance {
                found_at_us: Some(100),
                ..
            })
        ));
    }

    #[test]
    fn frames_are_wanted_from_two_steps_before_a_check_to_its_end() {
        let mut probe = StepProbe::default();
        let mut wanted = Vec::new();
        for k in 0..40u64 {
            let bright = (k / 3) % 2 == 0;
            let (look, _) = probe.handle_frame(k, k * 10, bright, 4, 5);
            if look {
                // The sampled picture still shows the old state; the next one the new.
                let shown = look_beacon(k, bright);
                probe.handle_look(k, shown, true);
            }
            wanted.push(probe.wants_frames(4));
        }
        // Steps at 3, 6, ..., 39; checks at every fourth from the first (frames 3, 15, 27, 39),
        // each over with the answer for the frame after it. Wanted from the first frame (the
        // first step is due) until the check at 3 is over, then from two steps before each
        // check until it is over.
        let expected: Vec<bool> = (0..40u64)
            .map(|k| k <= 3 || (9..=15).contains(&k) || (21..=27).contains(&k) || k >= 33)
            .collect();
        assert_eq!(wanted, expected);
        assert!(!probe.wants_frames(0));
    }

    /// With a phase, the first step is still checked, then every Nth counted from the phase;
    /// frames are wanted around those checks only.
    #[test]
    fn a_phase_moves_the_checks_after_the_first() {
        let mut probe = StepProbe::with_phase(3);
        let (mut sampled, mut wanted) = (Vec::new(), Vec::new());
        for k in 0..40u64 {
            let bright = (k / 3) % 2 == 0;
            let (look, _) = probe.handle_frame(k, k * 10, bright, 4, 5);
            if look {
                sampled.push(k);
                probe.handle_look(k, look_code(k), true);
            }
            wanted.push(probe.wants_frames(4));
        }
        // Steps at 3, 6, ..., 39 (step indices 0 to 12): the first, then the indices where
        // index + 3 is a multiple of 4 (1, 5, 9): frames 6, 18, 30. Each check is over with
        // its sampled frame's answer (the number is readable); frames are wanted from two
        // steps before it (from the first frame for the first two).
        assert_eq!(sampled, vec![3, 6, 18, 30]);
        let expected: Vec<bool> = (0..40u64)
            .map(|k| k < 6 || (12..18).contains(&k) || (24..30).contains(&k) || k >= 36)
            .collect();
        assert_eq!(wanted, expected);
    }

    /// The sampled frame `k` of a step shows the state before it; later frames the new one.
    fn look_beacon(k: u64, bright: bool) -> Option<PictureLook> {
        look(
            None,
            Some(if k.is_multiple_of(3) { !bright } else { bright }),
        )
    }

    #[test]
    fn a_search_gives_up_after_its_frames() {
        let mut probe = StepProbe::default();
        probe.handle_frame(0, 0, false, 1, 2);
        assert_eq!(probe.handle_frame(1, 10, true, 1, 2), (true, None));
        assert_eq!(probe.handle_frame(2, 20, true, 1, 2), (true, None));
        // Two frames asked: the third ends the check without a step seen.
        assert_eq!(
            probe.handle_frame(3, 30, true, 1, 2),
            (
                false,
                Some(StepSample::Luminance {
                    pts: 1,
                    at_us: 10,
                    bright: true,
                    found_at_us: None
                })
            )
        );
        assert!(!probe.is_searching());
    }
}
