//! The H.264 transport stream muxer.
//!
//! [`TsMuxer`] packs one H.264 access unit at a time into 188-byte packets: one program with
//! one video stream, PAT and PMT in front of every keyframe (so every keyframe-aligned segment
//! is decodable on its own), a PCR and the random_access_indicator on keyframes, and
//! continuity counters that carry on across calls. It writes into a caller-owned buffer and
//! allocates nothing per frame, so replaying a clip to hundreds of streams stays cheap.

use std::ops::Range;

use super::psi::{self, PatEntry, PmtStream};
use super::{PACKET_SIZE, PAT_PID, PTS_MASK, STREAM_TYPE_H264, SYNC_BYTE};

/// Payload bytes of a packet without adaptation field.
const PAYLOAD_SIZE: usize = PACKET_SIZE - 4;
/// PES stream id of the first video stream.
const STREAM_ID_VIDEO: u8 = 0xe0;

/// PIDs and program number of the single program the muxer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxConfig {
    /// PID of the H.264 stream (default 0x100, as ffmpeg uses).
    pub video_pid: u16,
    /// PID of the PMT (default 0x1000, as ffmpeg uses).
    pub pmt_pid: u16,
    /// Program number in PAT and PMT (default 1).
    pub program_number: u16,
}

impl Default for MuxConfig {
    fn default() -> Self {
        Self {
            video_pid: 0x100,
            pmt_pid: 0x1000,
            program_number: 1,
        }
    }
}

/// One access unit to mux.
#[derive(Debug, Clone, Copy)]
pub struct MuxFrame<'a> {
    /// Presentation timestamp, 90 kHz; written modulo 2^33.
    pub pts: u64,
    /// Decoding timestamp, 90 kHz; only written when it differs from `pts`.
    pub dts: Option<u64>,
    /// True for an IDR access unit: PAT, PMT, PCR and random_access_indicator go with it.
    pub keyframe: bool,
    /// One H.264 access unit in Annex B format.
    pub data: &'a [u8],
}

/// Transport stream muxer for one H.264 stream; see the module documentation.
#[derive(Debug, Clone)]
pub struct TsMuxer {
    config: MuxConfig,
    /// The PAT and PMT packets, built once; only their continuity counters change.
    pat_packet: [u8; PACKET_SIZE],
    pmt_packet: [u8; PACKET_SIZE],
    pat_cc: u8,
    pmt_cc: u8,
    video_cc: u8,
}

impl TsMuxer {
    /// Creates a muxer whose first packets on every PID carry continuity counter 0.
    pub fn new(config: MuxConfig) -> Self {
        let mut pat = Vec::with_capacity(16);
        psi::write_pat(
            1,
            PatEntry {
                program_number: config.program_number,
                pmt_pid: config.pmt_pid,
            },
            &mut pat,
        );
        let mut pmt = Vec::with_capacity(32);
        psi::write_pmt(
            config.program_number,
            config.video_pid,
            &[PmtStream {
                stream_type: STREAM_TYPE_H264,
                pid: config.video_pid,
            }],
            &mut pmt,
        );
        Self {
            config,
            pat_packet: psi_packet(PAT_PID, &pat),
            pmt_packet: psi_packet(config.pmt_pid, &pmt),
            pat_cc: 0,
            pmt_cc: 0,
            video_cc: 0,
        }
    }

    /// The configuration this muxer was built with.
    pub fn config(&self) -> &MuxConfig {
        &self.config
    }

    /// Appends `frame` to `out` and returns the byte range it occupies there, including the
    /// PAT and PMT written in front of a keyframe.
    pub fn mux_frame(&mut self, frame: &MuxFrame<'_>, out: &mut Vec<u8>) -> Range<usize> {
        let start = out.len();
        let mut header = [0u8; 19];
        let header_len = write_pes_header(frame, &mut header);
        let total = header_len + frame.data.len();
        let packets = total.div_ceil(PAYLOAD_SIZE - 8).max(1) + 2;
        out.reserve(packets * PACKET_SIZE);

        if frame.keyframe {
            out.extend_from_slice(&self.pat_packet);
            set_cc(out, &mut self.pat_cc);
            out.extend_from_slice(&self.pmt_packet);
            set_cc(out, &mut self.pmt_cc);
        }

        let pes = Chain {
            head: &header[..header_len],
            tail: frame.data,
        };
        let pcr_base = frame.dts.unwrap_or(frame.pts) & PTS_MASK;
        let mut written = 0;
        while written < total {
            let first = written == 0;
            let with_pcr = first && frame.keyframe;
            // Adaptation field: RAI flag + 6-byte PCR on the first packet of a keyframe.
            let mut af_len: Option<usize> = with_pcr.then_some(7);
            let af_bytes = af_len.map_or(0, |l| l + 1);
            let space = PAYLOAD_SIZE - af_bytes;
            let chunk = space.min(total - written);
            let stuffing = space - chunk;
            if stuffing > 0 {
                // The last packet is filled up with adaptation field stuffing, never with
                // payload padding, so the PES length stays exact.
                af_len = Some(match af_len {
                    Some(l) => l + stuffing,
                    None => stuffing - 1,
                });
            }

            let pid = self.config.video_pid;
            out.push(SYNC_BYTE);
            let pusi = if first { 0x40 } else { 0 };
            out.push(pusi | ((pid >> 8) as u8 & 0x1f));
            out.push(pid as u8);
            let control = if af_len.is_some() { 0x30 } else { 0x10 };
            out.push(control | self.video_cc);
            self.video_cc = (self.video_cc + 1) & 0x0f;

            if let Some(len) = af_len {
                out.push(len as u8);
                if len > 0 {
                    let mut used = 1;
                    if with_pcr {
                        // random_access_indicator + PCR_flag.
                        out.push(0x50);
                        out.extend_from_slice(&encode_pcr(pcr_base));
                        used += 6;
                    } else {
                        out.push(0);
                    }
                    out.resize(out.len() + (len - used), 0xff);
                }
            }
            pes.copy_to(written, chunk, out);
            written += chunk;
        }
        start..out.len()
    }
}

/// Builds a full packet carrying one PSI section, stuffed with 0xff; continuity counter 0.
fn psi_packet(pid: u16, section: &[u8]) -> [u8; PACKET_SIZE] {
    let mut p = [0xffu8; PACKET_SIZE];
    p[0] = SYNC_BYTE;
    // payload_unit_start_indicator: the section starts here.
    p[1] = 0x40 | ((pid >> 8) as u8 & 0x1f);
    p[2] = pid as u8;
    p[3] = 0x10;
    p[4] = 0; // pointer_field
    // One-program PAT and one-stream PMT sections are far shorter than a packet.
    p[5..5 + section.len()].copy_from_slice(section);
    p
}

/// Sets the continuity counter of the packet just appended to `out` and advances it.
fn set_cc(out: &mut [u8], cc: &mut u8) {
    let at = out.len() - PACKET_SIZE + 3;
    out[at] = (out[at] & 0xf0) | *cc;
    *cc = (*cc + 1) & 0x0f;
}

/// Writes the PES header for `frame` and returns its length (14 or 19 bytes).
fn write_pes_header(frame: &MuxFrame<'_>, h: &mut [u8; 19]) -> usize {
    let dts = frame.dts.filter(|&d| d != frame.pts);
    let header_data_length = if dts.is_some() { 10 } else { 5 };
    h[..4].copy_from_slice(&[0, 0, 1, STREAM_ID_VIDEO]);
    let pes_length = 3 + header_data_length + frame.data.len();
    // Video PES packets longer than 16 bits declare length 0 ("unbounded"), as allowed.
    let field = u16::try_from(pes_length).unwrap_or(0);
    h[4..6].copy_from_slice(&field.to_be_bytes());
    // Marker '10', data_alignment_indicator: the PES starts with an access unit.
    h[6] = 0x84;
    h[7] = if dts.is_some() { 0xc0 } else { 0x80 };
    h[8] = header_data_length as u8;
    match dts {
        Some(dts) => {
            encode_timestamp(0x3, frame.pts, &mut h[9..14]);
            encode_timestamp(0x1, dts, &mut h[14..19]);
        }
        None => encode_timestamp(0x2, frame.pts, &mut h[9..14]),
    }
    9 + header_data_length
}

/// Encodes a 33-bit timestamp with its 4-bit prefix and marker bits.
fn encode_timestamp(prefix: u8, ts: u64, out: &mut [u8]) {
    let ts = ts & PTS_MASK;
    out[0] = prefix << 4 | ((ts >> 29) as u8 & 0x0e) | 1;
    out[1] = (ts >> 22) as u8;
    out[2] = ((ts >> 14) as u8 & 0xfe) | 1;
    out[3] = (ts >> 7) as u8;
    out[4] = ((ts << 1) as u8 & 0xfe) | 1;
}

/// Encodes a PCR with the given 90 kHz base and a zero 27 MHz extension.
///
/// The PCR equals the frame's DTS: publishers pace frames in real time, so a decoder that
/// follows the PCR presents each frame as soon as it arrives, which is what a live test wants.
fn encode_pcr(base: u64) -> [u8; 6] {
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base & 1) as u8) << 7 | 0x7e,
        0,
    ]
}

/// The PES packet as its header followed by the access unit, without concatenating them.
struct Chain<'a> {
    head: &'a [u8],
    tail: &'a [u8],
}

impl Chain<'_> {
    /// Appends `len` bytes starting at `offset` of the chained bytes to `out`.
    fn copy_to(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        let end = offset + len;
        if offset < self.head.len() {
            out.extend_from_slice(&self.head[offset..end.min(self.head.len())]);
        }
        if end > self.head.len() {
            let from = offset.saturating_sub(self.head.len());
            out.extend_from_slice(&self.tail[from..end - self.head.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::demux::parse_pes_header;

    #[test]
    fn timestamps_round_trip_through_pes_header() {
        for (pts, dts) in [
            (0, None),
            (PTS_MASK, Some(1)),
            (123_456_789, Some(123_000_000)),
        ] {
            let frame = MuxFrame {
                pts,
                dts,
                keyframe: false,
                data: &[],
            };
            let mut h = [0u8; 19];
            let len = write_pes_header(&frame, &mut h);
            let parsed = parse_pes_header(&h[..len]).unwrap();
            assert_eq!(parsed.pts, Some(pts));
            assert_eq!(parsed.dts, dts);
            assert_eq!(parsed.payload_start, len);
        }
    }

    #[test]
    fn packets_are_well_formed_and_stuffed() {
        let mut mux = TsMuxer::new(MuxConfig::default());
        let mut out = Vec::new();
        for size in [0usize, 1, 170, 171, 183, 184, 185, 1000, 70_000] {
            for keyframe in [false, true] {
                let data = vec![0xabu8; size];
                let range = mux.mux_frame(
                    &MuxFrame {
                        pts: 9000,
                        dts: None,
                        keyframe,
                        data: &data,
                    },
                    &mut out,
                );
                assert_eq!(range.end, out.len());
                assert_eq!(range.len() % PACKET_SIZE, 0, "size {size}");
                let pes_packets = range.len() / PACKET_SIZE - if keyframe { 2 } else { 0 };
                // No packet is wasted: one fewer would not hold the PES.
                let capacity = pes_packets * PAYLOAD_SIZE - if keyframe { 8 } else { 0 };
                assert!(capacity >= 14 + size);
                assert!(capacity - (14 + size) < PAYLOAD_SIZE);
            }
        }
        assert!(out.chunks(PACKET_SIZE).all(|p| p[0] == SYNC_BYTE));
    }

    #[test]
    fn chain_copies_across_the_seam() {
        let chain = Chain {
            head: &[1, 2, 3],
            tail: &[4, 5, 6, 7],
        };
        let mut out = Vec::new();
        chain.copy_to(0, 2, &mut out);
        chain.copy_to(2, 3, &mut out);
        chain.copy_to(5, 2, &mut out);
        assert_eq!(out, vec![1, 2, 3, 4, 5, 6, 7]);
    }
}
