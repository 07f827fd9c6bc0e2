//! [`Interleaver`]: a stream's video and audio put in timestamp order before they are muxed
//! into its segments, as go-livepeer's `RTPSegmenter` does.
//!
//! go-livepeer queues each track's units and writes whichever queue's head is older (video by
//! its DTS, audio by its PTS rescaled to 90 kHz), so while both tracks flow a video access
//! unit waits until an audio packet at least as late has arrived (up to one audio packet
//! interval, 20 ms with WebRTC's Opus). A queue longer than 20 units is drained from its
//! oldest (a track that stopped does not hold the other back for long), anything older than
//! the last unit written (the watermark) is dropped, and a stream without audio writes video
//! as it comes. When a segment starts at a keyframe, what is queued from before that
//! keyframe goes into the segment it ends.
//!
//! Where lvt differs: go-livepeer knows whether the stream has audio from the tracks it
//! gathered before segmenting; the interleaver learns it from the first audio packet, so video
//! before it is written as it comes (the simulated gateway gathers the audio track as
//! go-livepeer does, so only that packet's own wait differs).

use std::collections::VecDeque;

use bytes::Bytes;

/// go-livepeer's `maxQueueSize`: units held per track at most.
pub const MAX_QUEUED: usize = 20;

/// One unit to mux, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// An H.264 access unit (its DTS equals its PTS: WebRTC's constrained baseline has no
    /// B-frames).
    Video {
        pts: u64,
        data: Bytes,
        keyframe: bool,
    },
    /// An Opus packet, its PTS on the video's 90 kHz timeline.
    Audio { pts: u64, data: Bytes },
}

impl Unit {
    /// The timestamp the two queues are ordered by.
    pub fn ts(&self) -> u64 {
        match self {
            Unit::Video { pts, .. } | Unit::Audio { pts, .. } => *pts,
        }
    }
}

/// The two queues of one stream; see the module documentation.
#[derive(Debug, Default)]
pub struct Interleaver {
    video: VecDeque<Unit>,
    audio: VecDeque<Unit>,
    has_audio: bool,
    /// The timestamp of the last unit written; 0 until one is (go-livepeer's `tsWatermark`,
    /// which checks only when it is above 0).
    watermark: u64,
    /// Units dropped for arriving behind the watermark.
    late: u64,
}

impl Interleaver {
    /// True once an audio packet has come: the stream has an audio track.
    pub fn has_audio(&self) -> bool {
        self.has_audio
    }

    /// Units dropped so far for coming after a later one was written.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Queues a video access unit and hands `write` every unit now due, in order.
    pub fn push_video(&mut self, pts: u64, data: Bytes, keyframe: bool, write: impl FnMut(Unit)) {
        let unit = Unit::Video {
            pts,
            data,
            keyframe,
        };
        self.push(unit, write);
    }

    /// Queues an audio packet (PTS at 90 kHz) and hands `write` every unit now due, in order.
    pub fn push_audio(&mut self, pts: u64, data: Bytes, write: impl FnMut(Unit)) {
        self.has_audio = true;
        self.push(Unit::Audio { pts, data }, write);
    }

    /// Hands `write` every queued unit older than `stop` (all of them when `None`): video's
    /// first, then audio's, as go-livepeer's `flushQueues` does when a segment starts or the
    /// stream ends.
    pub fn flush(&mut self, stop: Option<u64>, mut write: impl FnMut(Unit)) {
        for queue in [&mut self.video, &mut self.audio] {
            while let Some(unit) = queue.front() {
                if stop.is_some_and(|stop| stop > 0 && unit.ts() >= stop) {
                    break;
                }
                let unit = queue.pop_front().expect("front exists");
                self.watermark = unit.ts();
                write(unit);
            }
        }
    }

    fn push(&mut self, unit: Unit, mut write: impl FnMut(Unit)) {
        if self.watermark > 0 && unit.ts() < self.watermark {
            self.late += 1;
            return;
        }
        match unit {
            Unit::Video { .. } => self.video.push_back(unit),
            Unit::Audio { .. } => self.audio.push_back(unit),
        }
        if !self.has_audio {
            self.flush(None, &mut write);
        }
        while let (Some(v), Some(a)) = (self.video.front(), self.audio.front()) {
            let queue = if v.ts() <= a.ts() {
                &mut self.video
            } else {
                &mut self.audio
            };
            let unit = queue.pop_front().expect("front exists");
            self.watermark = unit.ts();
            write(unit);
        }
        for queue in [&mut self.video, &mut self.audio] {
            while queue.len() > MAX_QUEUED {
                let unit = queue.pop_front().expect("longer than the limit");
                self.watermark = unit.ts();
                write(unit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(units: &[Unit]) -> Vec<(char, u64)> {
        units
            .iter()
            .map(|u| match u {
                Unit::Video { pts, .. } => ('v', *pts),
                Unit::Audio { pts, .. } => ('a', *pts),
            })
            .collect()
    }

    #[test]
    fn without_audio_video_is_written_as_it_comes() {
        let mut il = Interleaver::default();
        let mut out = Vec::new();
        for pts in [0, 3000, 6000] {
            il.push_video(pts, Bytes::new(), pts == 0, |u| out.push(u));
        }
        assert_eq!(order(&out), vec![('v', 0), ('v', 3000), ('v', 6000)]);
    }

    #[test]
    fn video_waits_for_audio_at_least_as_late_and_both_come_out_in_order() {
        let mut il = Interleaver::default();
        let mut out = Vec::new();
        // Audio every 1,800 (20 ms), video every 3,000 (30 fps), as they arrive.
        il.push_audio(0, Bytes::new(), |u| out.push(u));
        il.push_video(0, Bytes::new(), true, |u| out.push(u));
        assert_eq!(order(&out), vec![('v', 0)], "video 0 is not after audio 0");
        il.push_audio(1800, Bytes::new(), |u| out.push(u));
        il.push_video(3000, Bytes::new(), false, |u| out.push(u));
        // Video 3000 waits: no audio at or after it yet.
        assert_eq!(order(&out), vec![('v', 0), ('a', 0), ('a', 1800)]);
        il.push_audio(3600, Bytes::new(), |u| out.push(u));
        assert_eq!(
            order(&out)[3..],
            [('v', 3000)],
            "audio 3600 releases video 3000 and waits itself"
        );
        // A segment starting at video 6000 takes what is queued before it into the old one.
        il.flush(Some(6000), |u| out.push(u));
        assert_eq!(order(&out)[4..], [('a', 3600)]);
    }

    #[test]
    fn a_stalled_track_holds_the_other_back_for_twenty_units_at_most() {
        let mut il = Interleaver::default();
        let mut out = Vec::new();
        il.push_audio(0, Bytes::new(), |u| out.push(u));
        // Audio stops after its first packet: video queues up to the limit, then its oldest
        // goes out one by one.
        for n in 0..25u64 {
            il.push_video(3000 * (n + 1), Bytes::new(), false, |u| out.push(u));
        }
        assert_eq!(order(&out)[..2], [('a', 0), ('v', 3000)]);
        assert_eq!(out.len(), 6, "audio 0, then the 5 videos over the limit");
        // Late audio, behind what was written, is dropped.
        il.push_audio(1800, Bytes::new(), |u| out.push(u));
        assert_eq!(il.late(), 1);
        // The end flushes the rest.
        il.flush(None, |u| out.push(u));
        assert_eq!(out.len(), 26);
        assert!(out.windows(2).all(|w| w[0].ts() <= w[1].ts()));
    }
}
