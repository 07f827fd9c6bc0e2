//! The H.264 transport stream muxer.
//!
//! [`TsMuxer`] packs one H.264 access unit at a time into 188-byte packets: one program with
//! one video stream, PAT and PMT in front of every keyframe (so every keyframe-aligned segment
//! is decodable on its own), a PCR and the random_access_indicator on keyframes, and
//! continuity counters that carry on across calls. It writes into a caller-owned buffer and
//! allocates nothing per frame, so replaying a clip to hundreds of streams stays cheap.
//!
//! With [`MuxConfig::with_opus`] the program also has an Opus track, carried as go-livepeer's
//! gateway carries a WHIP stream's audio (mediacommon's MPEG-TS writer, ETSI TS 102 366 Annex
//! for Opus): private PES data (stream_type 0x06) with an `Opus` registration descriptor and an
//! extension descriptor giving the channel count, each packet its own PES (stream id 0xc0,
//! a PTS, the random_access_indicator set) behind an Opus control header.

use std::ops::Range;

use super::psi::{self, PatEntry, PmtStream};
use super::{PACKET_SIZE, PAT_PID, PTS_MASK, STREAM_TYPE_H264, STREAM_TYPE_PRIVATE_PES, SYNC_BYTE};

/// Payload bytes of a packet without adaptation field.
const PAYLOAD_SIZE: usize = PACKET_SIZE - 4;
/// PES stream id of the first video stream.
const STREAM_ID_VIDEO: u8 = 0xe0;
/// PES stream id of the first audio stream (mediacommon writes Opus with it).
const STREAM_ID_AUDIO: u8 = 0xc0;
/// The Opus control header's 11-bit prefix (0x3ff) with no trim and no extension flags.
const OPUS_CONTROL_PREFIX: [u8; 2] = [0x7f, 0xe0];
/// The largest Opus packet one PES holds: its length field counts the PES header's 8 bytes
/// after it, the control header (up to 2 + 256 bytes here) and the packet. Real Opus packets
/// are far smaller (at most 120 ms at 510 kbit/s, about 7.7 KB).
pub const MAX_OPUS_PACKET: usize = 65_000;

/// PIDs and program number of the single program the muxer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxConfig {
    /// PID of the H.264 stream (default 0x100, as ffmpeg uses).
    pub video_pid: u16,
    /// PID of the PMT (default 0x1000, as ffmpeg uses).
    pub pmt_pid: u16,
    /// Program number in PAT and PMT (default 1).
    pub program_number: u16,
    /// An Opus track beside the video (none by default).
    pub opus: Option<OpusTrack>,
}

/// The Opus track of a program: its PID and channel count (from the SDP, as go-livepeer
/// takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusTrack {
    pub pid: u16,
    pub channels: u8,
}

impl Default for MuxConfig {
    fn default() -> Self {
        Self {
            video_pid: 0x100,
            pmt_pid: 0x1000,
            program_number: 1,
            opus: None,
        }
    }
}

impl MuxConfig {
    /// This configuration with an Opus track of `channels` on the PID after the video's
    /// (mediacommon numbers tracks from 0x100 in order: video, then audio).
    pub fn with_opus(self, channels: u8) -> Self {
        Self {
            opus: Some(OpusTrack {
                pid: self.video_pid + 1,
                channels,
            }),
            ..self
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
    audio_cc: u8,
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
        Self {
            config,
            pat_packet: psi_packet(PAT_PID, &pat),
            pmt_packet: pmt_packet(&config),
            pat_cc: 0,
            pmt_cc: 0,
            video_cc: 0,
            audio_cc: 0,
        }
    }

    /// The configuration this muxer was built with.
    pub fn config(&self) -> &MuxConfig {
        &self.config
    }

    /// Adds an Opus track of `channels` (or removes it with `None`) from the next PMT on,
    /// keeping every continuity counter: the stream goes on, its program changes.
    pub fn set_opus(&mut self, channels: Option<u8>) {
        let video_only = MuxConfig {
            opus: None,
            ..self.config
        };
        let config = channels.map_or(video_only, |channels| video_only.with_opus(channels));
        if config != self.config {
            self.config = config;
            self.pmt_packet = pmt_packet(&config);
        }
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
        let first = if frame.keyframe {
            FirstPacket::RandomAccessPcr(frame.dts.unwrap_or(frame.pts) & PTS_MASK)
        } else {
            FirstPacket::Plain
        };
        packetize(self.config.video_pid, &mut self.video_cc, &pes, first, out);
        start..out.len()
    }

    /// Appends one Opus packet with its PTS (90 kHz) to `out` as its own PES, and returns the
    /// byte range it occupies there; `None` (nothing written) when this muxer has no Opus
    /// track or the packet is larger than [`MAX_OPUS_PACKET`].
    pub fn mux_opus(&mut self, pts: u64, packet: &[u8], out: &mut Vec<u8>) -> Option<Range<usize>> {
        let track = self.config.opus?;
        if packet.len() > MAX_OPUS_PACKET {
            return None;
        }
        let start = out.len();
        // PES header (14 bytes), then the control header: its prefix and the packet's size as
        // a run of 255s and the remainder.
        let mut head = [0u8; 14 + 2 + MAX_OPUS_PACKET / 255 + 1];
        let size_bytes = packet.len() / 255 + 1;
        let control_len = 2 + size_bytes;
        let pes_length = 3 + 5 + control_len + packet.len();
        head[..4].copy_from_slice(&[0, 0, 1, STREAM_ID_AUDIO]);
        head[4..6].copy_from_slice(&(pes_length as u16).to_be_bytes());
        head[6] = 0x80; // marker '10', nothing else
        head[7] = 0x80; // PTS only
        head[8] = 5;
        encode_timestamp(0x2, pts, &mut head[9..14]);
        head[14..16].copy_from_slice(&OPUS_CONTROL_PREFIX);
        head[16..16 + size_bytes - 1].fill(255);
        head[16 + size_bytes - 1] = (packet.len() % 255) as u8;
        let pes = Chain {
            head: &head[..14 + control_len],
            tail: packet,
        };
        out.reserve((14 + control_len + packet.len()).div_ceil(PAYLOAD_SIZE - 2) * PACKET_SIZE);
        packetize(
            track.pid,
            &mut self.audio_cc,
            &pes,
            FirstPacket::RandomAccess,
            out,
        );
        Some(start..out.len())
    }
}

/// What the adaptation field of a PES's first packet carries.
#[derive(Debug, Clone, Copy)]
enum FirstPacket {
    /// No adaptation field (unless stuffing needs one).
    Plain,
    /// The random_access_indicator.
    RandomAccess,
    /// The random_access_indicator and a PCR with this 90 kHz base.
    RandomAccessPcr(u64),
}

/// Appends the PES `pes` on `pid` as whole packets, advancing the continuity counter `cc`.
/// The last packet is filled up with adaptation field stuffing, never with payload padding,
/// so the PES length stays exact.
fn packetize(pid: u16, cc: &mut u8, pes: &Chain<'_>, first: FirstPacket, out: &mut Vec<u8>) {
    let total = pes.head.len() + pes.tail.len();
    let mut written = 0;
    while written < total {
        let at_first = written == 0;
        // Adaptation field content length: the flags byte, plus a 6-byte PCR.
        let mut af_len: Option<usize> = match (at_first, first) {
            (true, FirstPacket::RandomAccessPcr(_)) => Some(7),
            (true, FirstPacket::RandomAccess) => Some(1),
            _ => None,
        };
        let af_bytes = af_len.map_or(0, |l| l + 1);
        let space = PAYLOAD_SIZE - af_bytes;
        let chunk = space.min(total - written);
        let stuffing = space - chunk;
        if stuffing > 0 {
            af_len = Some(match af_len {
                Some(l) => l + stuffing,
                None => stuffing - 1,
            });
        }

        out.push(SYNC_BYTE);
        let pusi = if at_first { 0x40 } else { 0 };
        out.push(pusi | ((pid >> 8) as u8 & 0x1f));
        out.push(pid as u8);
        let control = if af_len.is_some() { 0x30 } else { 0x10 };
        out.push(control | *cc);
        *cc = (*cc + 1) & 0x0f;

        if let Some(len) = af_len {
            out.push(len as u8);
            if len > 0 {
                let mut used = 1;
                match (at_first, first) {
                    (true, FirstPacket::RandomAccessPcr(pcr)) => {
                        // random_access_indicator + PCR_flag.
                        out.push(0x50);
                        out.extend_from_slice(&encode_pcr(pcr));
                        used += 6;
                    }
                    (true, FirstPacket::RandomAccess) => out.push(0x40),
                    _ => out.push(0),
                }
                out.resize(out.len() + (len - used), 0xff);
            }
        }
        pes.copy_to(written, chunk, out);
        written += chunk;
    }
}

/// The PMT packet of `config`'s program: the video, and the Opus track if it has one.
fn pmt_packet(config: &MuxConfig) -> [u8; PACKET_SIZE] {
    let mut pmt = Vec::with_capacity(48);
    let video = PmtStream {
        stream_type: STREAM_TYPE_H264,
        pid: config.video_pid,
    };
    match config.opus {
        None => psi::write_pmt(
            config.program_number,
            config.video_pid,
            &[(video, &[])],
            &mut pmt,
        ),
        Some(opus) => {
            // A registration descriptor ("Opus") and a DVB extension descriptor (tag 0x80:
            // the channel configuration), as mediacommon's CodecOpus writes them.
            let descriptors = [
                0x05,
                4,
                b'O',
                b'p',
                b'u',
                b's',
                0x7f,
                2,
                0x80,
                opus.channels,
            ];
            let audio = PmtStream {
                stream_type: STREAM_TYPE_PRIVATE_PES,
                pid: opus.pid,
            };
            psi::write_pmt(
                config.program_number,
                config.video_pid,
                &[(video, &[]), (audio, &descriptors)],
                &mut pmt,
            );
        }
    }
    psi_packet(config.pmt_pid, &pmt)
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
    fn opus_packets_come_back_from_the_demuxer_behind_their_control_header() {
        use crate::ts::TsDemuxer;
        let mut mux = TsMuxer::new(MuxConfig::default().with_opus(2));
        let mut out = Vec::new();
        let key = MuxFrame {
            pts: 9000,
            dts: None,
            keyframe: true,
            data: &[0, 0, 0, 1, 0x65, 0x88],
        };
        mux.mux_frame(&key, &mut out);
        let sizes = [0usize, 1, 3, 254, 255, 256, 600, 1000];
        for (i, &size) in sizes.iter().enumerate() {
            let packet = vec![i as u8; size];
            let range = mux
                .mux_opus(9000 + 1800 * i as u64, &packet, &mut out)
                .expect("an Opus track");
            assert_eq!(range.len() % PACKET_SIZE, 0);
            // The random_access_indicator on the first packet, as mediacommon sets it.
            let first = &out[range.start..range.start + PACKET_SIZE];
            assert_eq!(first[3] & 0x20, 0x20, "adaptation field");
            assert_eq!(first[5] & 0x40, 0x40, "random_access_indicator");
        }
        let mut demux = TsDemuxer::new();
        demux.handle_bytes(&out, 0);
        demux.finish(0);
        let mut opus = Vec::new();
        while let Some(frame) = demux.poll_frame() {
            if frame.stream_type == STREAM_TYPE_PRIVATE_PES {
                assert_eq!(frame.pid, 0x101);
                opus.push(frame);
            }
        }
        assert_eq!(opus.len(), sizes.len());
        for (i, (frame, &size)) in opus.iter().zip(&sizes).enumerate() {
            assert_eq!(frame.pts, Some(9000 + 1800 * i as u64));
            // 0x7fe0, then the size as 255s and the remainder, then the packet.
            let runs = size / 255;
            let mut want = vec![0x7f, 0xe0];
            want.extend(std::iter::repeat_n(255u8, runs));
            want.push((size % 255) as u8);
            want.extend(std::iter::repeat_n(i as u8, size));
            assert_eq!(&frame.data[..], &want[..], "size {size}");
        }
        let stats = demux.stats();
        assert_eq!(
            (stats.cc_errors, stats.pes_errors, stats.truncated_frames),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_muxer_without_an_opus_track_writes_no_audio() {
        let mut mux = TsMuxer::new(MuxConfig::default());
        let mut out = Vec::new();
        assert_eq!(mux.mux_opus(0, &[0xf8, 0xff, 0xfe], &mut out), None);
        let mut mux = TsMuxer::new(MuxConfig::default().with_opus(2));
        assert_eq!(
            mux.mux_opus(0, &vec![0; MAX_OPUS_PACKET + 1], &mut out),
            None
        );
        assert!(out.is_empty());
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
