//! Replaying an encoded clip as an endless live stream of MPEG-TS segments.
//!
//! A [`Replayer`] walks the clip's segments in a loop and muxes them with its own
//! [`TsMuxer`], so continuity counters and timestamps run on across segments and loops exactly
//! as if the stream were encoded live. The only per-segment work is copying the access units
//! into one buffer.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use lvt_media::ts::{MuxConfig, MuxFrame, PACKET_SIZE, PTS_HZ, PTS_MASK, TsMuxer};

use super::Clip;

/// One frame of a replayed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayFrame {
    /// PTS as written into the stream (90 kHz, modulo 2^33), so it compares directly with
    /// what a demuxer reads back.
    pub pts: u64,
    /// True for the IDR that starts the segment.
    pub keyframe: bool,
    /// Bytes of this frame (PAT and PMT included for the keyframe) in the segment's `data`.
    pub range: Range<usize>,
    /// When this frame is due, relative to the segment start, when sending in real time:
    /// `frame_in_segment * 1_000_000 / fps`.
    pub offset_us: u64,
}

/// One muxed segment, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySegment {
    /// Segment number since the replayer started, from 0 (the trickle sequence number when
    /// publishing starts at 0).
    pub seq: u64,
    /// The MPEG-TS bytes: PAT, PMT, the IDR, then the rest of the GOP.
    pub data: Bytes,
    /// The frames in `data`, in order.
    pub frames: Vec<ReplayFrame>,
}

/// Endless segment source over a shared clip; see the module documentation.
#[derive(Debug, Clone)]
pub struct Replayer {
    clip: Arc<Clip>,
    start_pts: u64,
    muxer: TsMuxer,
    seq: u64,
    /// Frames emitted so far; frame k has PTS `start_pts + k * 90000 / fps`.
    frames_sent: u64,
}

impl Replayer {
    /// Starts replaying `clip` from its first segment with the first frame at `start_pts`
    /// (90 kHz).
    pub fn new(clip: Arc<Clip>, start_pts: u64) -> Self {
        Self {
            clip,
            start_pts,
            muxer: TsMuxer::new(MuxConfig::default()),
            seq: 0,
            frames_sent: 0,
        }
    }

    /// The clip being replayed.
    pub fn clip(&self) -> &Arc<Clip> {
        &self.clip
    }

    /// The sequence number the next call to [`Replayer::next_segment`] will return.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// PTS (unwrapped, 90 kHz) of the `k`-th frame since the start. Computed from `k` each
    /// time, so it never drifts even when 90000 is not a multiple of the frame rate.
    fn pts_of(&self, k: u64) -> u64 {
        let fps = u128::from(self.clip.config.fps.max(1));
        let offset = u128::from(k) * u128::from(PTS_HZ) / fps;
        self.start_pts.wrapping_add(offset as u64)
    }

    /// Muxes the next segment of the loop.
    pub fn next_segment(&mut self) -> ReplaySegment {
        let clip = Arc::clone(&self.clip);
        let frames = clip.segment_frames(self.seq);
        let fps = u64::from(clip.config.fps.max(1));

        // Every PES adds a 14-byte header and up to one packet of stuffing, and each packet
        // costs 4 header bytes per 184 of payload; reserve that once so muxing never
        // reallocates.
        let payload: usize = frames.iter().map(|f| f.data.len()).sum();
        let capacity = payload + payload / 40 + (frames.len() + 2) * 2 * PACKET_SIZE;
        let mut data = Vec::with_capacity(capacity);
        let mut out = Vec::with_capacity(frames.len());
        for (i, frame) in frames.iter().enumerate() {
            let pts = self.pts_of(self.frames_sent) & PTS_MASK;
            let range = self.muxer.mux_frame(
                &MuxFrame {
                    pts,
                    dts: None,
                    keyframe: frame.keyframe,
                    data: &frame.data,
                },
                &mut data,
            );
            out.push(ReplayFrame {
                pts,
                keyframe: frame.keyframe,
                range,
                offset_us: i as u64 * 1_000_000 / fps,
            });
            self.frames_sent += 1;
        }
        let segment = ReplaySegment {
            seq: self.seq,
            data: Bytes::from(data),
            frames: out,
        };
        self.seq += 1;
        segment
    }
}
