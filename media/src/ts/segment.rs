//! Cutting a transport stream into keyframe-aligned segments.
//!
//! [`Segmenter`] is what `lvt trickle pub` uses to turn a TS file or stdin into trickle
//! segments: each segment starts at a video keyframe (together with the PAT and PMT that
//! precede it), so a subscriber can decode every segment on its own. It also records where
//! every video frame starts inside the segment so that a publisher can pace the bytes out in
//! real time.
//!
//! The video stream is found through the PAT and PMT, so video frames that come before the
//! first PMT are passed through in the first segment without being listed in its `frames`.

use bytes::Bytes;

use super::demux::parse_pes_header;
use super::packet;
use super::psi::{self, SectionAssembler};
use super::sync::PacketSync;
use super::{PACKET_SIZE, PAT_PID, STREAM_TYPE_H264, is_video_stream_type};
use crate::h264::{NAL_IDR, NAL_SLICE};

/// PIDs up to this one carry PAT, CAT and DVB service information tables.
const LAST_SI_PID: u16 = 0x1f;

/// Where one video frame starts in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePos {
    /// Byte offset of the frame's first TS packet within [`TsSegment::data`].
    pub offset: usize,
    /// The frame's PTS (90 kHz), when its first packet carried a readable PES header.
    pub pts: Option<u64>,
}

/// One keyframe-aligned run of whole TS packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsSegment {
    /// The packets, back to back.
    pub data: Bytes,
    /// PTS of the segment's first video frame.
    pub first_pts: Option<u64>,
    /// Every video frame that starts in this segment, in order.
    pub frames: Vec<FramePos>,
}

/// Incremental scan of an H.264 access unit for the type of its first slice.
#[derive(Debug, Clone, Copy, Default)]
struct IdrScan {
    zeros: u8,
    /// The previous bytes were a start code: the next byte is a NAL header.
    at_nal_header: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdrVerdict {
    Idr,
    NotIdr,
    Undecided,
}

impl IdrScan {
    fn feed(&mut self, bytes: &[u8]) -> IdrVerdict {
        for &b in bytes {
            if self.at_nal_header {
                self.at_nal_header = false;
                match b & 0x1f {
                    NAL_IDR => return IdrVerdict::Idr,
                    t if (NAL_SLICE..NAL_IDR).contains(&t) => return IdrVerdict::NotIdr,
                    _ => {}
                }
            }
            if b == 0 {
                self.zeros = self.zeros.saturating_add(1);
            } else {
                self.at_nal_header = b == 1 && self.zeros >= 2;
                self.zeros = 0;
            }
        }
        IdrVerdict::Undecided
    }
}

/// A video frame whose first packet had no random_access_indicator: whether it is a keyframe
/// is decided once its first slice NAL unit has been seen.
#[derive(Debug, Clone, Copy)]
struct PendingKey {
    /// Where the segment would be cut (before the PAT/PMT preceding the frame).
    cut_at: usize,
    scan: IdrScan,
}

/// Splits a TS byte stream at video keyframes; see the module documentation.
#[derive(Debug, Default)]
pub struct Segmenter {
    sync: PacketSync,
    pat: SectionAssembler,
    /// The PMT PID of the first program in the PAT, and its assembler.
    pmt: Option<(u16, SectionAssembler)>,
    /// The first video stream of that program: PID and stream type.
    video: Option<(u16, u8)>,
    /// Packets of the segment being built.
    current: Vec<u8>,
    frames: Vec<FramePos>,
    /// Offset in `current` of the first table packet (PAT, PMT, SI) since the last video
    /// packet.
    psi_run_start: Option<usize>,
    pending: Option<PendingKey>,
    /// Segments completed by the current call.
    done: Vec<TsSegment>,
    /// Set while `finish` drains the last packets: they join the final segment rather than
    /// starting a new one, because `finish` can return only one segment.
    finishing: bool,
}

impl Segmenter {
    /// Creates a segmenter that waits for a PAT and PMT to find the video stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the segments they completed (a segment completes when the next
    /// keyframe is recognised).
    pub fn push(&mut self, data: &[u8]) -> Vec<TsSegment> {
        let mut sync = std::mem::take(&mut self.sync);
        sync.handle(data, 0, &mut |pkt, _, _| self.handle_packet(pkt));
        self.sync = sync;
        std::mem::take(&mut self.done)
    }

    /// Ends the input and returns the last segment, if it holds any packet. Bytes of a final
    /// partial packet are dropped: segments only ever hold whole packets.
    pub fn finish(&mut self) -> Option<TsSegment> {
        let mut sync = std::mem::take(&mut self.sync);
        self.finishing = true;
        sync.finish(&mut |pkt, _, _| self.handle_packet(pkt));
        self.finishing = false;
        self.sync = sync;
        self.pending = None;
        self.psi_run_start = None;
        self.cut(self.current.len());
        self.done.pop()
    }

    fn handle_packet(&mut self, pkt: &[u8; PACKET_SIZE]) {
        let offset = self.current.len();
        self.current.extend_from_slice(pkt);
        // A packet whose layout is broken is still passed through; it just cannot start a
        // segment.
        let Ok(packet) = packet::parse(pkt) else {
            return;
        };
        let pid = packet.pid;
        let is_pmt = self.pmt.as_ref().is_some_and(|(p, _)| *p == pid);
        if pid <= LAST_SI_PID || is_pmt {
            // Tables (PAT, PMT, and SI such as ffmpeg's SDT) written just before a keyframe
            // describe it, so they start its segment.
            self.psi_run_start.get_or_insert(offset);
            if pid == PAT_PID || is_pmt {
                self.handle_psi(pid, packet.payload, packet.payload_unit_start);
            }
            return;
        }
        let Some((video_pid, stream_type)) = self.video else {
            return;
        };
        if pid != video_pid || packet.scrambling != 0 {
            return;
        }
        let cut_at = self.psi_run_start.take().unwrap_or(offset);
        if packet.payload_unit_start {
            self.pending = None;
            let header = parse_pes_header(packet.payload).ok();
            self.frames.push(FramePos {
                offset,
                pts: header.and_then(|h| h.pts),
            });
            if packet.random_access {
                self.cut(cut_at);
                return;
            }
            if stream_type != STREAM_TYPE_H264 {
                return;
            }
            let body = header
                .and_then(|h| packet.payload.get(h.payload_start..))
                .unwrap_or(packet.payload);
            let mut scan = IdrScan::default();
            match scan.feed(body) {
                IdrVerdict::Idr => self.cut(cut_at),
                IdrVerdict::NotIdr => {}
                IdrVerdict::Undecided => self.pending = Some(PendingKey { cut_at, scan }),
            }
        } else if let Some(mut pending) = self.pending.take() {
            match pending.scan.feed(packet.payload) {
                IdrVerdict::Idr => self.cut(pending.cut_at),
                IdrVerdict::NotIdr => {}
                IdrVerdict::Undecided => self.pending = Some(pending),
            }
        }
    }

    fn handle_psi(&mut self, pid: u16, payload: &[u8], payload_unit_start: bool) {
        if pid == PAT_PID {
            for section in self.pat.push(payload, payload_unit_start).sections {
                let Ok(entries) = psi::parse_pat(&section) else {
                    continue;
                };
                let first = entries.iter().find(|e| e.program_number != 0);
                match (first, &self.pmt) {
                    (Some(e), Some((p, _))) if *p == e.pmt_pid => {}
                    (Some(e), _) => self.pmt = Some((e.pmt_pid, SectionAssembler::default())),
                    (None, _) => {}
                }
            }
        } else if let Some((_, asm)) = self.pmt.as_mut() {
            for section in asm.push(payload, payload_unit_start).sections {
                let Ok(pmt) = psi::parse_pmt(&section) else {
                    continue;
                };
                if let Some(es) = pmt
                    .streams
                    .iter()
                    .find(|s| is_video_stream_type(s.stream_type))
                {
                    self.video = Some((es.pid, es.stream_type));
                }
            }
        }
    }

    /// Ends the current segment before byte `at` of `current`; the rest starts the next one.
    fn cut(&mut self, at: usize) {
        if at == 0 || (self.finishing && at < self.current.len()) {
            return;
        }
        let rest = self.current.split_off(at);
        let data = std::mem::replace(&mut self.current, rest);
        let split = self.frames.partition_point(|f| f.offset < at);
        let mut later = self.frames.split_off(split);
        for f in &mut later {
            f.offset -= at;
        }
        let frames = std::mem::replace(&mut self.frames, later);
        self.done.push(TsSegment {
            data: Bytes::from(data),
            first_pts: frames.first().and_then(|f| f.pts),
            frames,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idr_scan_decides_across_feeds() {
        let mut scan = IdrScan::default();
        assert_eq!(
            scan.feed(&[0, 0, 0, 1, 0x09, 0xf0, 0, 0]),
            IdrVerdict::Undecided
        );
        assert_eq!(scan.feed(&[1]), IdrVerdict::Undecided);
        assert_eq!(scan.feed(&[0x65, 0x88]), IdrVerdict::Idr);

        let mut scan = IdrScan::default();
        assert_eq!(
            scan.feed(&[0, 0, 1, 0x67, 0, 0, 1, 0x41]),
            IdrVerdict::NotIdr
        );
    }
}
