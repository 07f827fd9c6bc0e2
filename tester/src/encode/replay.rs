//! Replaying an encoded clip as an endless live stream of MPEG-TS segments.
//!
//! A [`Replayer`] walks the clip's segments in a loop and muxes them with its own
//! [`TsMuxer`], so continuity counters and timestamps run on across segments and loops exactly
//! as if the stream were encoded live. The only per-segment work is copying the access units
//! into one buffer.
//!
//! A live publisher that writes a segment frame by frame over its duration need not hold the
//! whole muxed segment: [`Replayer::plan_segment`] gives the segment's frames with their
//! timestamps, and [`PlannedSegment::mux_frame`] muxes each one when it is written, with the
//! publisher's own muxer, so only the frame being written is in memory.

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

/// One segment's frames with their timestamps, muxed one at a time when written
/// ([`PlannedSegment::mux_frame`]).
#[derive(Debug, Clone)]
pub struct PlannedSegment {
    /// Segment number since the replayer started, from 0.
    pub seq: u64,
    /// The clip the frames come from.
    clip: Arc<Clip>,
    /// Each frame's PTS as written into the stream (90 kHz, modulo 2^33), whether it is the
    /// segment's IDR, and when it is due relative to the segment start.
    pub frames: Vec<PlannedFrame>,
}

/// One frame of a [`PlannedSegment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedFrame {
    /// PTS as written into the stream (90 kHz, modulo 2^33).
    pub pts: u64,
    /// True for the IDR that starts the segment.
    pub keyframe: bool,
    /// When this frame is due, relative to the segment start, when sending in real time.
    pub offset_us: u64,
}

impl PlannedSegment {
    /// Muxes frame `index` with `muxer` and returns its bytes (PAT and PMT in front of the IDR);
    /// `None` past the last frame. Frames must be muxed in order, segment after segment, for the
    /// continuity counters to run on.
    pub fn mux_frame(&self, index: usize, muxer: &mut TsMuxer) -> Option<Bytes> {
        let mut data = Vec::new();
        self.mux_frame_into(index, muxer, &mut data)?;
        Some(Bytes::from(data))
    }

    /// [`PlannedSegment::mux_frame`] appending to `out`; returns the frame's range there.
    fn mux_frame_into(
        &self,
        index: usize,
        muxer: &mut TsMuxer,
        out: &mut Vec<u8>,
    ) -> Option<Range<usize>> {
        let planned = self.frames.get(index)?;
        let frame = self.clip.segment_frames(self.seq).get(index)?;
        Some(muxer.mux_frame(
            &MuxFrame {
                pts: planned.pts,
                dts: None,
                keyframe: frame.keyframe,
                data: &frame.data,
            },
            out,
        ))
    }
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

    /// The next segment of the loop, not muxed: its frames and their timestamps.
    pub fn plan_segment(&mut self) -> PlannedSegment {
        let fps = u64::from(self.clip.config.fps.max(1));
        let frames: Vec<PlannedFrame> = self
            .clip
            .segment_frames(self.seq)
            .iter()
            .enumerate()
            .map(|(i, frame)| PlannedFrame {
                pts: self.pts_of(self.frames_sent + i as u64) & PTS_MASK,
                keyframe: frame.keyframe,
                offset_us: i as u64 * 1_000_000 / fps,
            })
            .collect();
        self.frames_sent += frames.len() as u64;
        let segment = PlannedSegment {
            seq: self.seq,
            clip: Arc::clone(&self.clip),
            frames,
        };
        self.seq += 1;
        segment
    }

    /// Muxes the next segment of the loop whole.
    pub fn next_segment(&mut self) -> ReplaySegment {
        let plan = self.plan_segment();
        let frames = plan.clip.segment_frames(plan.seq);

        // Every PES adds a 14-byte header and up to one packet of stuffing, and each packet
        // costs 4 header bytes per 184 of payload; reserve that once so muxing never
        // reallocates.
        let payload: usize = frames.iter().map(|f| f.data.len()).sum();
        let capacity = payload + payload / 40 + (frames.len() + 2) * 2 * PACKET_SIZE;
        let mut data = Vec::with_capacity(capacity);
        let mut out = Vec::with_capacity(plan.frames.len());
        for (i, planned) in plan.frames.iter().enumerate() {
            let Some(range) = plan.mux_frame_into(i, &mut self.muxer, &mut data) else {
                break;
            };
            out.push(ReplayFrame {
                pts: planned.pts,
                keyframe: planned.keyframe,
                range,
                offset_us: planned.offset_us,
            });
        }
        ReplaySegment {
            seq: plan.seq,
            data: Bytes::from(data),
            frames: out,
        }
    }
}
