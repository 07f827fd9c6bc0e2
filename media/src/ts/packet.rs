//! Parsing of the fixed 4-byte transport packet header and the adaptation field.
//!
//! Shared by the demuxer and the segmenter so that both agree on what a malformed packet is.

use super::PACKET_SIZE;

/// The parts of one 188-byte packet that lvt uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Packet<'a> {
    pub transport_error: bool,
    pub payload_unit_start: bool,
    pub pid: u16,
    pub scrambling: u8,
    pub has_payload: bool,
    pub continuity_counter: u8,
    pub discontinuity: bool,
    pub random_access: bool,
    /// PCR base (90 kHz) when the adaptation field carries one.
    pub pcr_base: Option<u64>,
    pub payload: &'a [u8],
}

/// Why a packet's layout could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketError {
    /// `adaptation_field_control` is the reserved value `00`.
    ReservedAdaptationControl,
    /// The adaptation field claims more bytes than the packet holds.
    AdaptationFieldTooLong,
}

/// Parses a packet whose first byte has already been checked to be the sync byte.
pub(crate) fn parse(pkt: &[u8; PACKET_SIZE]) -> Result<Packet<'_>, PacketError> {
    let transport_error = pkt[1] & 0x80 != 0;
    let payload_unit_start = pkt[1] & 0x40 != 0;
    let pid = u16::from(pkt[1] & 0x1f) << 8 | u16::from(pkt[2]);
    let scrambling = pkt[3] >> 6;
    let adaptation_control = (pkt[3] >> 4) & 0x3;
    let continuity_counter = pkt[3] & 0x0f;
    let has_adaptation = adaptation_control & 0x2 != 0;
    let has_payload = adaptation_control & 0x1 != 0;
    if adaptation_control == 0 {
        return Err(PacketError::ReservedAdaptationControl);
    }

    let mut packet = Packet {
        transport_error,
        payload_unit_start,
        pid,
        scrambling,
        has_payload,
        continuity_counter,
        discontinuity: false,
        random_access: false,
        pcr_base: None,
        payload: &[],
    };
    let mut payload_start = 4;
    if has_adaptation {
        let af_len = usize::from(pkt[4]);
        // With a payload at least one payload byte must remain (max 182); without one the
        // field fills the packet (183). Shorter adaptation-only fields are tolerated because
        // some muxers write them and nothing after them is read.
        let max_len = if has_payload { 182 } else { 183 };
        if af_len > max_len {
            return Err(PacketError::AdaptationFieldTooLong);
        }
        if af_len > 0 {
            let flags = pkt[5];
            packet.discontinuity = flags & 0x80 != 0;
            packet.random_access = flags & 0x40 != 0;
            if flags & 0x10 != 0 && af_len >= 7 {
                let b = &pkt[6..12];
                packet.pcr_base = Some(
                    u64::from(b[0]) << 25
                        | u64::from(b[1]) << 17
                        | u64::from(b[2]) << 9
                        | u64::from(b[3]) << 1
                        | u64::from(b[4] >> 7),
                );
            }
        }
        payload_start = 5 + af_len;
    }
    if has_payload {
        packet.payload = &pkt[payload_start..];
    }
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(b1: u8, b2: u8, b3: u8, rest: &[u8]) -> [u8; PACKET_SIZE] {
        let mut p = [0xffu8; PACKET_SIZE];
        p[..4].copy_from_slice(&[0x47, b1, b2, b3]);
        p[4..4 + rest.len()].copy_from_slice(rest);
        p
    }

    #[test]
    fn parses_header_fields() {
        let p = packet(0x41, 0x00, 0x17, &[]);
        let parsed = parse(&p).unwrap();
        assert!(parsed.payload_unit_start);
        assert!(!parsed.transport_error);
        assert_eq!(parsed.pid, 0x100);
        assert_eq!(parsed.continuity_counter, 7);
        assert_eq!(parsed.payload.len(), 184);
    }

    #[test]
    fn parses_adaptation_field_with_pcr() {
        // AF length 7, RAI + PCR flags, PCR base 0x1_0000_0001.
        let p = packet(
            0x01,
            0x00,
            0x30,
            &[7, 0x50, 0x80, 0x00, 0x00, 0x00, 0xfe, 0x00],
        );
        let parsed = parse(&p).unwrap();
        assert!(parsed.random_access);
        assert_eq!(parsed.pcr_base, Some(0x1_0000_0001));
        assert_eq!(parsed.payload.len(), 184 - 8);
    }

    #[test]
    fn rejects_bad_adaptation_fields() {
        assert_eq!(
            parse(&packet(0x01, 0x00, 0x30, &[183])).unwrap_err(),
            PacketError::AdaptationFieldTooLong
        );
        assert_eq!(
            parse(&packet(0x01, 0x00, 0x20, &[184])).unwrap_err(),
            PacketError::AdaptationFieldTooLong
        );
        assert_eq!(
            parse(&packet(0x01, 0x00, 0x00, &[])).unwrap_err(),
            PacketError::ReservedAdaptationControl
        );
        let raw = packet(0x01, 0x00, 0x20, &[183, 0]);
        let af_only = parse(&raw).unwrap();
        assert!(!af_only.has_payload);
        assert!(af_only.payload.is_empty());
    }
}
