//! The incremental transport stream demuxer.
//!
//! [`TsDemuxer`] is fed chunks as they arrive off the network, each with its arrival time, and
//! yields one [`Frame`] per PES packet (for video, one access unit) as soon as the frame is
//! known to be complete. Every frame carries the arrival time of the chunk that brought its
//! first byte, which is what end-to-end latency is computed from. Damaged input is never an
//! error: it is skipped, resynchronised over and counted in [`DemuxStats`].

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::packet::{self, Packet, PacketError};
use super::psi::{self, SectionAssembler, SectionError};
use super::sync::PacketSync;
use super::{NULL_PID, PACKET_SIZE, PAT_PID, STREAM_TYPE_H264};
use crate::h264;

/// A PES packet larger than this is garbage (a real access unit is far smaller); it is
/// dropped so that a stream that never ends a PES cannot grow memory without bound.
const MAX_PES_BYTES: usize = 16 << 20;

/// One elementary stream frame: the payload of one PES packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// PID the frame was carried on.
    pub pid: u16,
    /// The stream's `stream_type` from the PMT (0x1b is H.264).
    pub stream_type: u8,
    /// Presentation timestamp (90 kHz, 33 bits as on the wire).
    pub pts: Option<u64>,
    /// Decoding timestamp (90 kHz, 33 bits); `None` when the PES carried only a PTS, which
    /// means DTS equals PTS.
    pub dts: Option<u64>,
    /// True when the first packet's random_access_indicator was set or, for H.264, the access
    /// unit is an IDR picture.
    pub keyframe: bool,
    /// The elementary stream payload (for H.264 an Annex B access unit).
    pub data: Bytes,
    /// Arrival time of the chunk that carried the first byte of the PES's first packet.
    pub first_byte_us: u64,
    /// Arrival time of the chunk that carried the last byte of the PES's last packet.
    pub last_byte_us: u64,
}

/// Counters of what the demuxer saw; error counters only ever grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Complete 188-byte packets processed.
    pub packets: u64,
    /// Bytes fed in through [`TsDemuxer::handle_bytes`].
    pub bytes: u64,
    /// Runs of bytes skipped because they did not start a packet (each run counts once).
    pub sync_losses: u64,
    /// Bytes skipped while out of sync or left over as a partial packet at `finish`.
    pub discarded_bytes: u64,
    /// Partial packets (starting with a sync byte) left over at `finish`.
    pub truncated_packets: u64,
    /// Packets with the transport_error_indicator set (processed anyway).
    pub transport_error_packets: u64,
    /// Continuity counter gaps (lost, reordered or corrupted packets).
    pub cc_errors: u64,
    /// Duplicate packets (same continuity counter repeated once), dropped as the standard says.
    pub duplicate_packets: u64,
    /// Packets dropped because their adaptation field length was out of range or their
    /// adaptation_field_control was the reserved value.
    pub adaptation_field_errors: u64,
    /// PAT/PMT sections that failed their CRC, were malformed or cut short.
    pub psi_errors: u64,
    /// PES packets dropped for a missing start code, a malformed header or an oversize body.
    pub pes_errors: u64,
    /// Payload packets of a stream that arrived with no PES started (e.g. after joining
    /// mid-frame or after a dropped PES).
    pub orphan_packets: u64,
    /// Frames emitted with bytes missing: shorter than their PES_packet_length, or with a
    /// continuity gap or scrambled packet inside.
    pub truncated_frames: u64,
    /// Packets on PIDs that are not PAT, a known PMT, a known stream, null or DVB SI.
    pub unknown_pid_packets: u64,
    /// Valid PAT sections parsed.
    pub pat_count: u64,
    /// Valid PMT sections parsed.
    pub pmt_count: u64,
    /// Packets whose transport_scrambling_control was set (payload not readable).
    pub scrambled_packets: u64,
    /// Frames emitted.
    pub frames: u64,
}

impl DemuxStats {
    /// Sum of all counters that indicate damaged or unexpected input.
    pub fn errors(&self) -> u64 {
        self.sync_losses
            + self.truncated_packets
            + self.transport_error_packets
            + self.cc_errors
            + self.adaptation_field_errors
            + self.psi_errors
            + self.pes_errors
            + self.orphan_packets
            + self.truncated_frames
            + self.unknown_pid_packets
            + self.scrambled_packets
    }
}

/// Continuity state of one PID, packed into a byte: bit 4 = a counter is known, bit 5 = the
/// last packet was already a duplicate, bits 0-3 = the last counter.
const CC_KNOWN: u8 = 0x10;
const CC_DUPLICATE: u8 = 0x20;

/// A PES packet being assembled.
#[derive(Debug)]
struct PesBuilder {
    /// The PES bytes received so far, header included.
    raw: Vec<u8>,
    /// `6 + PES_packet_length` once known and non-zero.
    total_len: Option<usize>,
    random_access: bool,
    /// Set when a packet of this PES was lost or unreadable.
    damaged: bool,
    first_byte_us: u64,
    last_byte_us: u64,
}

#[derive(Debug)]
struct Stream {
    stream_type: u8,
    /// The PMT PID that announced this stream, so that a PMT update only affects its own
    /// program's streams.
    pmt_pid: u16,
    pes: Option<PesBuilder>,
    /// Size of the last frame, used to pre-size the next PES buffer when the PES does not
    /// declare its length.
    size_hint: usize,
}

/// Incremental MPEG-TS demuxer; see the module documentation.
#[derive(Debug)]
pub struct TsDemuxer {
    sync: PacketSync,
    stats: DemuxStats,
    pat: SectionAssembler,
    /// PMT PIDs announced by the PAT, with their section assemblers.
    pmts: BTreeMap<u16, SectionAssembler>,
    streams: BTreeMap<u16, Stream>,
    continuity: Box<[u8; 8192]>,
    frames: VecDeque<Frame>,
}

impl Default for TsDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl TsDemuxer {
    /// Creates a demuxer that knows no program yet: it waits for a PAT and PMT.
    pub fn new() -> Self {
        Self {
            sync: PacketSync::default(),
            stats: DemuxStats::default(),
            pat: SectionAssembler::default(),
            pmts: BTreeMap::new(),
            streams: BTreeMap::new(),
            continuity: Box::new([0; 8192]),
            frames: VecDeque::new(),
        }
    }

    /// Feeds one chunk of the stream, received at `now_us`. Packets may straddle chunks.
    pub fn handle_bytes(&mut self, data: &[u8], now_us: u64) {
        self.stats.bytes += data.len() as u64;
        let mut sync = std::mem::take(&mut self.sync);
        sync.handle(data, now_us, &mut |pkt, first_us, last_us| {
            self.handle_packet(pkt, first_us, last_us);
        });
        self.sync = sync;
        self.copy_sync_stats();
    }

    /// Marks the end of the input (the end of one trickle segment). Emits every pending PES as
    /// a frame, counting those known to be incomplete as truncated. Program tables and
    /// continuity counters are kept so that the next segment continues the same stream.
    pub fn finish(&mut self, now_us: u64) {
        let mut sync = std::mem::take(&mut self.sync);
        sync.finish(&mut |pkt, first_us, last_us| {
            self.handle_packet(pkt, first_us, last_us);
        });
        self.sync = sync;
        self.copy_sync_stats();
        let pids: Vec<u16> = self.streams.keys().copied().collect();
        for pid in pids {
            self.flush_stream(pid);
        }
        // `now_us` is part of the contract so that callers mark the end of input explicitly;
        // frames flushed here keep the arrival time of their last packet rather than the time
        // the caller noticed the end, which may be much later.
        let _ = now_us;
    }

    /// Forgets every continuity counter, for when the next input is known to restart them
    /// (e.g. each trickle segment written by a fresh muxer).
    pub fn reset_continuity(&mut self) {
        self.continuity.fill(0);
    }

    /// The next completed frame, in completion order.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    /// What has been seen so far.
    pub fn stats(&self) -> &DemuxStats {
        &self.stats
    }

    fn copy_sync_stats(&mut self) {
        self.stats.sync_losses = self.sync.stats.sync_losses;
        self.stats.discarded_bytes = self.sync.stats.discarded_bytes;
        self.stats.truncated_packets = self.sync.stats.truncated_packets;
    }

    fn handle_packet(&mut self, pkt: &[u8; PACKET_SIZE], first_us: u64, last_us: u64) {
        self.stats.packets += 1;
        let packet = match packet::parse(pkt) {
            Ok(p) => p,
            Err(PacketError::AdaptationFieldTooLong | PacketError::ReservedAdaptationControl) => {
                self.stats.adaptation_field_errors += 1;
                return;
            }
        };
        if packet.transport_error {
            self.stats.transport_error_packets += 1;
        }
        if packet.pid == NULL_PID {
            return;
        }
        match self.check_continuity(&packet) {
            Continuity::Ok => {}
            Continuity::Duplicate => {
                self.stats.duplicate_packets += 1;
                return;
            }
            Continuity::Gap => {
                self.stats.cc_errors += 1;
                self.handle_gap(packet.pid);
            }
        }
        if packet.scrambling != 0 {
            self.stats.scrambled_packets += 1;
            if let Some(pes) = self
                .streams
                .get_mut(&packet.pid)
                .and_then(|s| s.pes.as_mut())
            {
                pes.damaged = true;
            }
            return;
        }
        if packet.pid == PAT_PID {
            self.handle_pat_payload(&packet);
        } else if self.pmts.contains_key(&packet.pid) {
            self.handle_pmt_payload(&packet);
        } else if self.streams.contains_key(&packet.pid) {
            self.handle_pes_payload(&packet, first_us, last_us);
        } else if packet.pid > 0x1f {
            // PIDs 0x01-0x1f carry CAT and DVB service information, which lvt does not need
            // but which is normal (ffmpeg writes an SDT), so it is not counted as unknown.
            self.stats.unknown_pid_packets += 1;
        }
    }

    fn check_continuity(&mut self, packet: &Packet<'_>) -> Continuity {
        let state = &mut self.continuity[usize::from(packet.pid)];
        let cc = packet.continuity_counter;
        let known = *state & CC_KNOWN != 0;
        let last = *state & 0x0f;
        if !packet.has_payload {
            // Packets without payload do not advance the counter.
            return Continuity::Ok;
        }
        if !known || packet.discontinuity {
            *state = CC_KNOWN | cc;
            return Continuity::Ok;
        }
        if cc == (last + 1) & 0x0f {
            *state = CC_KNOWN | cc;
            Continuity::Ok
        } else if cc == last && *state & CC_DUPLICATE == 0 {
            *state |= CC_DUPLICATE;
            Continuity::Duplicate
        } else {
            *state = CC_KNOWN | cc;
            Continuity::Gap
        }
    }

    /// Something was lost on `pid`: the partial section or PES there is damaged.
    fn handle_gap(&mut self, pid: u16) {
        if pid == PAT_PID {
            self.pat.reset();
        } else if let Some(asm) = self.pmts.get_mut(&pid) {
            asm.reset();
        } else if let Some(pes) = self.streams.get_mut(&pid).and_then(|s| s.pes.as_mut()) {
            pes.damaged = true;
        }
    }

    fn handle_pat_payload(&mut self, packet: &Packet<'_>) {
        let out = self.pat.push(packet.payload, packet.payload_unit_start);
        self.stats.psi_errors += out.errors;
        for section in out.sections {
            match psi::parse_pat(&section) {
                Ok(entries) => {
                    self.stats.pat_count += 1;
                    self.apply_pat(&entries);
                }
                // A table of another type on the PAT PID and a not-yet-current table are
                // legal and carry nothing to apply.
                Err(SectionError::WrongTable | SectionError::NotCurrent) => {}
                Err(SectionError::Malformed) => self.stats.psi_errors += 1,
            }
        }
    }

    fn apply_pat(&mut self, entries: &[psi::PatEntry]) {
        let pmt_pids: Vec<u16> = entries
            .iter()
            .filter(|e| e.program_number != 0 && e.pmt_pid != PAT_PID && e.pmt_pid != NULL_PID)
            .map(|e| e.pmt_pid)
            .collect();
        // Programs that disappeared take their streams with them.
        let gone: Vec<u16> = self
            .streams
            .iter()
            .filter(|(_, s)| !pmt_pids.contains(&s.pmt_pid))
            .map(|(&pid, _)| pid)
            .collect();
        for pid in gone {
            self.flush_stream(pid);
            self.streams.remove(&pid);
        }
        self.pmts.retain(|pid, _| pmt_pids.contains(pid));
        for pid in pmt_pids {
            // A stream PID that turns out to be a PMT PID can only be a broken table; the PMT
            // wins so that the program stays discoverable.
            if self.streams.remove(&pid).is_some() {
                self.stats.psi_errors += 1;
            }
            self.pmts.entry(pid).or_default();
        }
    }

    fn handle_pmt_payload(&mut self, packet: &Packet<'_>) {
        let Some(asm) = self.pmts.get_mut(&packet.pid) else {
            return;
        };
        let out = asm.push(packet.payload, packet.payload_unit_start);
        self.stats.psi_errors += out.errors;
        for section in out.sections {
            match psi::parse_pmt(&section) {
                Ok(pmt) => {
                    self.stats.pmt_count += 1;
                    self.apply_pmt(packet.pid, &pmt);
                }
                Err(SectionError::WrongTable | SectionError::NotCurrent) => {}
                Err(SectionError::Malformed) => self.stats.psi_errors += 1,
            }
        }
    }

    fn apply_pmt(&mut self, pmt_pid: u16, pmt: &psi::Pmt) {
        let listed = |pid: u16| pmt.streams.iter().any(|s| s.pid == pid);
        let gone: Vec<u16> = self
            .streams
            .iter()
            .filter(|(pid, s)| s.pmt_pid == pmt_pid && !listed(**pid))
            .map(|(&pid, _)| pid)
            .collect();
        for pid in gone {
            self.flush_stream(pid);
            self.streams.remove(&pid);
        }
        for es in &pmt.streams {
            if es.pid == PAT_PID || es.pid == NULL_PID || self.pmts.contains_key(&es.pid) {
                self.stats.psi_errors += 1;
                continue;
            }
            match self.streams.get_mut(&es.pid) {
                Some(stream) if stream.stream_type == es.stream_type => {
                    stream.pmt_pid = pmt_pid;
                }
                _ => {
                    // A new stream, or a PID whose stream type changed: start it afresh.
                    self.flush_stream(es.pid);
                    self.streams.insert(
                        es.pid,
                        Stream {
                            stream_type: es.stream_type,
                            pmt_pid,
                            pes: None,
                            size_hint: 0,
                        },
                    );
                }
            }
        }
    }

    fn handle_pes_payload(&mut self, packet: &Packet<'_>, first_us: u64, last_us: u64) {
        let pid = packet.pid;
        if packet.payload_unit_start {
            self.flush_stream(pid);
            let Some(stream) = self.streams.get_mut(&pid) else {
                return;
            };
            let mut raw = Vec::with_capacity(pes_capacity(packet.payload, stream.size_hint));
            raw.extend_from_slice(packet.payload);
            stream.pes = Some(PesBuilder {
                raw,
                total_len: None,
                random_access: packet.random_access,
                damaged: false,
                first_byte_us: first_us,
                last_byte_us: last_us,
            });
        } else {
            let Some(stream) = self.streams.get_mut(&pid) else {
                return;
            };
            match stream.pes.as_mut() {
                Some(pes) => {
                    pes.raw.extend_from_slice(packet.payload);
                    pes.last_byte_us = last_us;
                }
                None => {
                    if !packet.payload.is_empty() {
                        self.stats.orphan_packets += 1;
                    }
                    return;
                }
            }
        }

        let Some(pes) = self.streams.get_mut(&pid).and_then(|s| s.pes.as_mut()) else {
            return;
        };
        if pes.total_len.is_none() && pes.raw.len() >= 6 {
            let declared = usize::from(u16::from_be_bytes([pes.raw[4], pes.raw[5]]));
            if declared != 0 {
                pes.total_len = Some(6 + declared);
            }
        }
        let complete = pes.total_len.is_some_and(|total| pes.raw.len() >= total);
        if complete {
            self.flush_stream(pid);
        } else if pes.raw.len() > MAX_PES_BYTES {
            self.stats.pes_errors += 1;
            if let Some(stream) = self.streams.get_mut(&pid) {
                stream.pes = None;
            }
        }
    }

    /// Ends the PES pending on `pid`, if any, and emits it as a frame.
    fn flush_stream(&mut self, pid: u16) {
        let Some(stream) = self.streams.get_mut(&pid) else {
            return;
        };
        let Some(mut pes) = stream.pes.take() else {
            return;
        };
        let header = match parse_pes_header(&pes.raw) {
            Ok(h) => h,
            Err(()) => {
                self.stats.pes_errors += 1;
                return;
            }
        };
        let mut truncated = pes.damaged;
        if let Some(total) = pes.total_len {
            if pes.raw.len() < total {
                truncated = true;
            } else {
                // Bytes after the declared length are not part of this PES.
                pes.raw.truncate(total);
            }
            if header.payload_start > total {
                self.stats.pes_errors += 1;
                return;
            }
        }
        if header.padding {
            return;
        }
        if truncated {
            self.stats.truncated_frames += 1;
        }
        stream.size_hint = pes.raw.len();
        let data = Bytes::from(pes.raw).slice(header.payload_start..);
        let keyframe = pes.random_access
            || (stream.stream_type == STREAM_TYPE_H264 && h264::access_unit_is_idr(&data));
        self.stats.frames += 1;
        self.frames.push_back(Frame {
            pid,
            stream_type: stream.stream_type,
            pts: header.pts,
            dts: header.dts,
            keyframe,
            data,
            first_byte_us: pes.first_byte_us,
            last_byte_us: pes.last_byte_us,
        });
    }
}

enum Continuity {
    Ok,
    Duplicate,
    Gap,
}

/// How much to reserve for a PES whose first packet carries `payload`: the declared length
/// when there is one, else the previous frame's size, so most frames never reallocate.
fn pes_capacity(payload: &[u8], size_hint: usize) -> usize {
    let declared = match payload {
        [_, _, _, _, hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => 0,
    };
    let wanted = if declared != 0 {
        6 + declared
    } else {
        size_hint + size_hint / 8
    };
    wanted.clamp(payload.len(), MAX_PES_BYTES)
}

/// What a PES header says about its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PesHeader {
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    /// Offset of the first payload byte in the PES packet.
    pub payload_start: usize,
    /// True for padding streams, whose payload is meaningless.
    pub padding: bool,
}

/// Parses the PES header at the start of `raw`.
pub(crate) fn parse_pes_header(raw: &[u8]) -> Result<PesHeader, ()> {
    if raw.len() < 6 || raw[..3] != [0, 0, 1] {
        return Err(());
    }
    let stream_id = raw[3];
    // These stream ids have no optional PES header: the payload follows the length field.
    let no_optional_header = matches!(
        stream_id,
        0xbc | 0xbe | 0xbf | 0xf0 | 0xf1 | 0xf2 | 0xf8 | 0xff
    );
    if no_optional_header {
        return Ok(PesHeader {
            pts: None,
            dts: None,
            payload_start: 6,
            padding: stream_id == 0xbe,
        });
    }
    if raw.len() < 9 || raw[6] & 0xc0 != 0x80 {
        return Err(());
    }
    let flags = raw[7];
    let header_data_length = usize::from(raw[8]);
    let payload_start = 9 + header_data_length;
    if raw.len() < payload_start {
        return Err(());
    }
    let fields = &raw[9..payload_start];
    let (pts, dts) = match flags >> 6 {
        0b00 => (None, None),
        0b10 if fields.len() >= 5 => (Some(read_timestamp(&fields[..5])), None),
        0b11 if fields.len() >= 10 => (
            Some(read_timestamp(&fields[..5])),
            Some(read_timestamp(&fields[5..10])),
        ),
        // 0b01 is forbidden, and the others need more header bytes than were declared.
        _ => return Err(()),
    };
    Ok(PesHeader {
        pts,
        dts,
        payload_start,
        padding: false,
    })
}

/// Reads a 33-bit PTS/DTS from its 5-byte encoding (marker bits are not checked: a flipped
/// marker bit does not change the timestamp bits).
fn read_timestamp(b: &[u8]) -> u64 {
    u64::from(b[0] >> 1 & 0x07) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}
