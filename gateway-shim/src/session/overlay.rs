//! The loading overlay watch of one share: which output frames wait for their picture to be
//! classified before they count.
//!
//! While ai-runner's pipeline (re)loads, it answers each input frame with a loading overlay of
//! the same PTS (`show_reloading_frame`, on by default): a grayscale, dimmed copy of its last
//! output (mid gray when there is none) with a spinner. Counted as output, those frames would
//! make startup, latency and FPS look better than the AI is. Nothing on the wire marks them, so
//! the pictures decide: while a share may be loading, the core hands each output frame to the
//! driver ([`super::Output::ClassifyFrame`]), holds the ones it asks to look at and counts each
//! when the answer comes, as overlay or as output. From a share's first output frame to its
//! first processed one every frame is looked at. Around a params update (from a little before
//! it, so that the driver has the frames since a keyframe, to a while after it) only frames
//! that come suspiciously early are: an overlay skips inference, so it arrives sooner after its
//! input than processed frames do; once one was an overlay, every frame is looked at until a
//! processed one. The driver decodes only up to frames it is asked about. Outside a watch no
//! frame is handed over.

use std::collections::VecDeque;

use bytes::Bytes;
use lvt_media::h264::Sps;

use super::{MAX_OVERLAY_WATCH_FRAMES, PictureLook};

/// An output frame waiting for its classification.
pub struct HeldFrame {
    pub pts: u64,
    pub at_us: u64,
    pub keyframe: bool,
    pub picture: Bytes,
    pub sps: Option<Sps>,
    /// Whether the driver was asked to look at it (else it only waits for the ones before it).
    pub look: bool,
}

/// Why a watch is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// From the share's start until its first processed frame.
    Start,
    /// After a params update: until `until_us` if no overlay shows, else until the first
    /// processed frame after the overlay.
    Update { until_us: u64 },
}

/// What an answer says about the frame it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Overlay,
    Processed,
    /// Not decodable: counted as output, the watch goes on.
    Unknown,
}

/// What a processed picture shows, to tell it from an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The frame number of the input frame its timestamp names (direct and network modes).
    Code(u32),
    /// The timestamps were rewritten on the way (gateway mode): the number of the latest
    /// processed picture, if any. A gray picture is an overlay when it shows no number (a
    /// runner with no output yet) or that same number again (ai-runner's overlay is a grayscale
    /// copy of its last output); processed pictures, grayscale styles too, move on.
    Rewritten { last: Option<u32> },
}

/// One share's watch; see the module documentation.
#[derive(Default)]
pub struct OverlayWatch {
    open: Option<Watch>,
    held: VecDeque<HeldFrame>,
    /// Frames sent for classification in this watch.
    asked: u32,
    seen_overlay: bool,
    /// The share's median latency when an update watch opened: frames arriving well before it
    /// are looked at.
    median_us: Option<u64>,
}

impl OverlayWatch {
    /// Opens the start watch.
    pub fn open_start(&mut self) {
        self.open = Some(Watch::Start);
        self.asked = 0;
        self.seen_overlay = false;
    }

    /// Opens (or extends) a watch around a params update, unless the start watch is open.
    /// `median_us` is the share's median latency now (kept from the opening when extended).
    pub fn open_update(&mut self, until_us: u64, median_us: Option<u64>) {
        match self.open {
            Some(Watch::Start) => {}
            Some(Watch::Update { .. }) => self.open = Some(Watch::Update { until_us }),
            None => {
                self.open = Some(Watch::Update { until_us });
                self.asked = 0;
                self.seen_overlay = false;
                self.median_us = median_us;
            }
        }
    }

    /// The median latency an update watch compares arrivals with.
    pub fn median_us(&self) -> Option<u64> {
        self.median_us
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Whether the start watch is open (every frame is looked at).
    pub fn looks_at_everything(&self) -> bool {
        self.open == Some(Watch::Start) || (self.open.is_some() && self.seen_overlay)
    }

    /// Whether frames wait for an answer (later frames must wait behind them).
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Whether a frame arriving at `at_us` finds the watch over: an update watch that saw no
    /// overlay in its time, or a watch that asked [`MAX_OVERLAY_WATCH_FRAMES`].
    pub fn expired(&self, at_us: u64) -> bool {
        match self.open {
            None => false,
            Some(Watch::Update { until_us }) if !self.seen_overlay && at_us > until_us => true,
            Some(_) => self.asked >= MAX_OVERLAY_WATCH_FRAMES,
        }
    }

    /// Holds a frame until its answer, or (not looked at) until the frames before it are
    /// answered.
    pub fn hold(&mut self, frame: HeldFrame) {
        self.asked = self.asked.saturating_add(u32::from(frame.look));
        self.held.push_back(frame);
    }

    /// The frames at the front that wait for no answer of their own.
    pub fn release_unasked(&mut self) -> Vec<HeldFrame> {
        let mut out = Vec::new();
        while self.held.front().is_some_and(|f| !f.look) {
            out.extend(self.held.pop_front());
        }
        out
    }

    /// The answer for the oldest held frame, which must carry `pts` (answers come in order; one
    /// for a frame no longer held, released when its watch closed, is ignored). `expected` is
    /// what a processed picture would show. Returns the frame, what it is, and whether the
    /// watch closes with it.
    pub fn answer(
        &mut self,
        pts: u64,
        look: Option<PictureLook>,
        expected: Expected,
    ) -> Option<(HeldFrame, Verdict, bool)> {
        let front = self.held.front()?;
        if front.pts != pts || !front.look {
            return None;
        }
        let frame = self.held.pop_front()?;
        let verdict = match look {
            None => Verdict::Unknown,
            // Grayscale and not the picture its timestamp names: ai-runner's overlay shows no
            // colour and either no input picture or a stale one. A processed frame carries
            // colour, or (a grayscale style) still the input's frame number.
            Some(look)
                if look.colourless
                    && match expected {
                        Expected::Code(code) => look.code != Some(code),
                        Expected::Rewritten { last } => look.code.is_none() || look.code == last,
                    } =>
            {
                Verdict::Overlay
            }
            Some(_) => Verdict::Processed,
        };
        if verdict == Verdict::Overlay {
            self.seen_overlay = true;
        }
        let closes = verdict == Verdict::Processed
            && match self.open {
                Some(Watch::Start) => true,
                Some(Watch::Update { .. }) => self.seen_overlay,
                None => false,
            };
        Some((frame, verdict, closes))
    }

    /// Closes the watch; returns the frames still held, in order, to count as output.
    pub fn close(&mut self) -> VecDeque<HeldFrame> {
        self.open = None;
        std::mem::take(&mut self.held)
    }

    /// Closes the watch because the session ended; returns the frames still held that count as
    /// output. Before the share's first processed frame (the start watch), and after an overlay
    /// with no processed frame since, a frame whose picture was not read yet proves nothing:
    /// the pipeline may still be loading. Those frames are dropped, neither output nor overlay,
    /// so a session cut while its runner loads is not taken for one that produced output.
    /// Otherwise (an update watch that saw no overlay) they count as output, as when a watch
    /// closes in time.
    /// The second value counts the frames dropped.
    pub fn close_at_end(&mut self) -> (VecDeque<HeldFrame>, usize) {
        let loading = self.open == Some(Watch::Start) || self.seen_overlay;
        let held = self.close();
        if loading {
            (VecDeque::new(), held.len())
        } else {
            (held, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pts: u64) -> HeldFrame {
        HeldFrame {
            pts,
            at_us: pts,
            keyframe: false,
            picture: Bytes::new(),
            sps: None,
            look: true,
        }
    }

    const GRAY: Option<PictureLook> = Some(PictureLook {
        colourless: true,
        code: None,
        beacon: None,
        marker: None,
    });

    fn colour(code: u32) -> Option<PictureLook> {
        Some(PictureLook {
            colourless: false,
            code: Some(code),
            beacon: None,
            marker: None,
        })
    }

    /// An update watch over frames 1 and 2 whose first answer was the overlay.
    fn reloading() -> OverlayWatch {
        let mut w = OverlayWatch::default();
        w.open_update(1_000, None);
        w.hold(frame(1));
        w.hold(frame(2));
        assert_eq!(
            w.answer(1, GRAY, Expected::Code(1)).unwrap().1,
            Verdict::Overlay
        );
        w
    }

    #[test]
    fn frames_unread_at_the_end_count_only_once_processed_output_showed() {
        let mut w = OverlayWatch::default();
        w.open_start();
        w.hold(frame(1));
        assert_eq!(w.close_at_end().1, 1, "still loading: proves nothing");

        let mut w = OverlayWatch::default();
        w.open_update(1_000, None);
        w.hold(frame(1));
        let (output, unread) = w.close_at_end();
        assert_eq!(
            (output.len(), unread),
            (1, 0),
            "no overlay since the update"
        );

        let mut w = reloading();
        let (output, unread) = w.close_at_end();
        assert_eq!((output.len(), unread), (0, 1), "reloading since the update");
    }

    #[test]
    fn the_start_watch_closes_at_the_first_processed_frame() {
        let mut w = OverlayWatch::default();
        w.open_start();
        for pts in 1..=3 {
            w.hold(frame(pts));
        }
        let (_, v, closes) = w.answer(1, GRAY, Expected::Code(1)).unwrap();
        assert_eq!((v, closes), (Verdict::Overlay, false));
        let (_, v, closes) = w.answer(2, None, Expected::Code(2)).unwrap();
        assert_eq!((v, closes), (Verdict::Unknown, false));
        let (_, v, closes) = w.answer(3, colour(3), Expected::Code(3)).unwrap();
        assert_eq!((v, closes), (Verdict::Processed, true));
        assert!(w.close().is_empty());
        assert!(!w.is_open());
    }

    /// ai-runner's overlay over its last output is gray but shows a stale frame number; a
    /// grayscale style of the input still shows the frame its timestamp names.
    #[test]
    fn gray_pictures_are_overlay_only_without_the_frame_their_timestamp_names() {
        let mut w = OverlayWatch::default();
        w.open_start();
        w.hold(frame(10));
        w.hold(frame(11));
        let stale = Some(PictureLook {
            colourless: true,
            code: Some(4),
            beacon: None,
            marker: None,
        });
        assert_eq!(
            w.answer(10, stale, Expected::Code(10)).unwrap().1,
            Verdict::Overlay
        );
        let styled = Some(PictureLook {
            colourless: true,
            code: Some(11),
            beacon: None,
            marker: None,
        });
        assert_eq!(
            w.answer(11, styled, Expected::Code(11)).unwrap().1,
            Verdict::Processed
        );
    }

    /// Through a gateway the timestamps name no input frame: a gray picture without a frame
    /// number is an overlay, one that shows a number (a grayscale style) is output.
    #[test]
    fn without_the_input_timestamps_a_gray_picture_with_no_number_is_overlay() {
        let mut w = OverlayWatch::default();
        w.open_start();
        for pts in [7_000, 10_000, 13_000] {
            w.hold(frame(pts));
        }
        assert_eq!(
            w.answer(7_000, GRAY, Expected::Rewritten { last: None })
                .unwrap()
                .1,
            Verdict::Overlay
        );
        let styled = Some(PictureLook {
            colourless: true,
            code: Some(41),
            beacon: None,
            marker: None,
        });
        let (_, v, closes) = w
            .answer(10_000, styled, Expected::Rewritten { last: None })
            .unwrap();
        assert_eq!((v, closes), (Verdict::Processed, true));
        assert_eq!(w.close().len(), 1, "the frame behind it counts as output");

        // After a reload the overlay is a gray copy of the last output: its number is stale.
        let mut w = OverlayWatch::default();
        w.open_update(u64::MAX, None);
        w.hold(frame(1));
        w.hold(frame(2));
        let gray_of = |code| {
            Some(PictureLook {
                colourless: true,
                code: Some(code),
                beacon: None,
                marker: None,
            })
        };
        let last = Expected::Rewritten { last: Some(90) };
        assert_eq!(w.answer(1, gray_of(90), last).unwrap().1, Verdict::Overlay);
        let (_, v, closes) = w.answer(2, gray_of(131), last).unwrap();
        assert_eq!((v, closes), (Verdict::Processed, true));
    }

    #[test]
    fn an_update_watch_ends_after_its_time_without_overlay_or_after_the_overlay() {
        let mut w = OverlayWatch::default();
        w.open_update(1_000, None);
        w.hold(frame(1));
        let (_, v, closes) = w.answer(1, colour(1), Expected::Code(1)).unwrap();
        assert_eq!(
            (v, closes),
            (Verdict::Processed, false),
            "a reload may follow"
        );
        assert!(!w.expired(1_000));
        assert!(w.expired(1_001));

        let mut w = reloading();
        assert!(!w.expired(5_000), "an overlay keeps it open past its time");
        let (_, v, closes) = w.answer(2, colour(2), Expected::Code(2)).unwrap();
        assert_eq!((v, closes), (Verdict::Processed, true));
    }

    #[test]
    fn answers_out_of_order_or_for_released_frames_are_ignored() {
        let mut w = OverlayWatch::default();
        w.open_start();
        w.hold(frame(1));
        w.hold(frame(2));
        assert!(w.answer(2, GRAY, Expected::Code(2)).is_none());
        let released = w.close();
        assert_eq!(released.iter().map(|f| f.pts).collect::<Vec<_>>(), [1, 2]);
        assert!(w.answer(1, GRAY, Expected::Code(1)).is_none());
    }

    /// Frames not looked at wait behind the ones that are, and leave with them in order.
    #[test]
    fn unasked_frames_wait_behind_asked_ones() {
        let mut w = OverlayWatch::default();
        w.open_update(10_000, None);
        assert!(!w.looks_at_everything());
        w.hold(frame(1));
        w.hold(HeldFrame {
            look: false,
            ..frame(2)
        });
        assert!(
            w.release_unasked().is_empty(),
            "frame 1 is not answered yet"
        );
        assert!(
            w.answer(2, GRAY, Expected::Code(2)).is_none(),
            "no answer is asked for frame 2"
        );
        assert_eq!(
            w.answer(1, GRAY, Expected::Code(1)).unwrap().1,
            Verdict::Overlay
        );
        assert!(
            w.looks_at_everything(),
            "after an overlay, until a processed frame"
        );
        let released: Vec<u64> = w.release_unasked().iter().map(|f| f.pts).collect();
        assert_eq!(released, [2]);
        assert!(!w.is_holding());
    }

    #[test]
    fn a_watch_asks_a_bounded_number_of_frames() {
        let mut w = OverlayWatch::default();
        w.open_start();
        for pts in 0..u64::from(MAX_OVERLAY_WATCH_FRAMES) {
            assert!(!w.expired(pts));
            w.hold(frame(pts));
            w.answer(pts, GRAY, Expected::Code(0)).unwrap();
        }
        assert!(w.expired(0));
    }
}
