//! Program-specific information: the PAT and PMT sections, their CRC, and reassembly of
//! sections from packet payloads.
//!
//! The demuxer and segmenter use the parsers; the muxer uses the writers.

/// Table id of a program association section.
const TABLE_PAT: u8 = 0x00;
/// Table id of a program map section.
const TABLE_PMT: u8 = 0x02;
/// A PSI section is at most 1024 bytes long (`section_length` <= 1021).
const MAX_SECTION_LENGTH: usize = 1021;

/// CRC-32/MPEG-2 lookup table (polynomial 0x04C11DB7, MSB first).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC-32/MPEG-2 of `data`; over a whole section including its CRC field the result is 0.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}

/// Reassembles PSI sections from the payloads of one PID.
#[derive(Debug, Default)]
pub(crate) struct SectionAssembler {
    buf: Vec<u8>,
    /// True while a section has started and not yet ended.
    active: bool,
}

/// What one payload produced.
#[derive(Debug, Default)]
pub(crate) struct Sections {
    /// Complete sections whose CRC checked out.
    pub sections: Vec<Vec<u8>>,
    /// Sections that were malformed, failed their CRC or were cut short.
    pub errors: u64,
}

impl SectionAssembler {
    /// Drops any partial section, e.g. after a continuity error.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.active = false;
    }

    /// Feeds one packet payload.
    pub fn push(&mut self, payload: &[u8], payload_unit_start: bool) -> Sections {
        let mut out = Sections::default();
        if payload_unit_start {
            let Some((&pointer, rest)) = payload.split_first() else {
                out.errors += 1;
                self.reset();
                return out;
            };
            let pointer = usize::from(pointer);
            if pointer > rest.len() {
                out.errors += 1;
                self.reset();
                return out;
            }
            let (tail_of_previous, start) = rest.split_at(pointer);
            if self.active {
                self.buf.extend_from_slice(tail_of_previous);
                self.drain(&mut out);
                if self.active {
                    // The new section starts before the previous one ended.
                    out.errors += 1;
                }
            }
            self.reset();
            self.active = true;
            self.buf.extend_from_slice(start);
            self.drain(&mut out);
        } else if self.active {
            self.buf.extend_from_slice(payload);
            self.drain(&mut out);
        }
        out
    }

    fn drain(&mut self, out: &mut Sections) {
        loop {
            match self.buf.first() {
                // 0xff after a section is stuffing: nothing more in this packet.
                None | Some(0xff) => {
                    self.reset();
                    return;
                }
                Some(_) => {}
            }
            if self.buf.len() < 3 {
                return;
            }
            let length = usize::from(self.buf[1] & 0x0f) << 8 | usize::from(self.buf[2]);
            if length > MAX_SECTION_LENGTH {
                out.errors += 1;
                self.reset();
                return;
            }
            let total = 3 + length;
            if self.buf.len() < total {
                return;
            }
            let section: Vec<u8> = self.buf.drain(..total).collect();
            let long_form = section[1] & 0x80 != 0;
            if long_form && (length < 9 || crc32(&section) != 0) {
                out.errors += 1;
            } else {
                out.sections.push(section);
            }
        }
    }
}

/// One program listed in a PAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PatEntry {
    pub program_number: u16,
    pub pmt_pid: u16,
}

/// One elementary stream listed in a PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
}

/// A parsed program map section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pmt {
    pub program_number: u16,
    pub streams: Vec<PmtStream>,
}

/// Why a section was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionError {
    WrongTable,
    Malformed,
    /// `current_next_indicator` is 0: the table is announced but not yet valid. Not an error
    /// in the stream, but nothing to apply either.
    NotCurrent,
}

/// Checks the long-form header shared by PAT and PMT and returns the table body (between the
/// 8-byte header and the CRC).
fn long_section_body(section: &[u8], table_id: u8) -> Result<&[u8], SectionError> {
    if section.len() < 12 {
        return Err(SectionError::Malformed);
    }
    if section[0] != table_id {
        return Err(SectionError::WrongTable);
    }
    if section[1] & 0x80 == 0 {
        return Err(SectionError::Malformed);
    }
    if section[5] & 0x01 == 0 {
        return Err(SectionError::NotCurrent);
    }
    Ok(&section[8..section.len() - 4])
}

/// Parses a PAT section (as returned by [`SectionAssembler`], CRC already checked).
pub(crate) fn parse_pat(section: &[u8]) -> Result<Vec<PatEntry>, SectionError> {
    let body = long_section_body(section, TABLE_PAT)?;
    if body.len() % 4 != 0 {
        return Err(SectionError::Malformed);
    }
    Ok(body
        .chunks_exact(4)
        .map(|e| PatEntry {
            program_number: u16::from_be_bytes([e[0], e[1]]),
            pmt_pid: u16::from_be_bytes([e[2] & 0x1f, e[3]]),
        })
        .collect())
}

/// Parses a PMT section (as returned by [`SectionAssembler`], CRC already checked).
pub(crate) fn parse_pmt(section: &[u8]) -> Result<Pmt, SectionError> {
    let body = long_section_body(section, TABLE_PMT)?;
    let program_number = u16::from_be_bytes([section[3], section[4]]);
    if body.len() < 4 {
        return Err(SectionError::Malformed);
    }
    let program_info_length = usize::from(body[2] & 0x0f) << 8 | usize::from(body[3]);
    let mut rest = body
        .get(4 + program_info_length..)
        .ok_or(SectionError::Malformed)?;
    let mut streams = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err(SectionError::Malformed);
        }
        let es_info_length = usize::from(rest[3] & 0x0f) << 8 | usize::from(rest[4]);
        streams.push(PmtStream {
            stream_type: rest[0],
            pid: u16::from_be_bytes([rest[1] & 0x1f, rest[2]]),
        });
        rest = rest
            .get(5 + es_info_length..)
            .ok_or(SectionError::Malformed)?;
    }
    Ok(Pmt {
        program_number,
        streams,
    })
}

/// Appends a long-form section with the given table id, id extension and body, and its CRC.
fn write_long_section(table_id: u8, id_extension: u16, body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    // section_length counts the 5 bytes after it, the body and the 4-byte CRC.
    let length = 5 + body.len() + 4;
    out.push(table_id);
    // section_syntax_indicator = 1, '0', reserved '11', then 12 bits of length.
    out.push(0xb0 | ((length >> 8) as u8 & 0x0f));
    out.push(length as u8);
    out.extend_from_slice(&id_extension.to_be_bytes());
    // reserved '11', version 0, current_next_indicator 1.
    out.push(0xc1);
    out.push(0); // section_number
    out.push(0); // last_section_number
    out.extend_from_slice(body);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Writes a one-program PAT section.
pub(crate) fn write_pat(transport_stream_id: u16, entry: PatEntry, out: &mut Vec<u8>) {
    let mut body = [0u8; 4];
    body[..2].copy_from_slice(&entry.program_number.to_be_bytes());
    body[2..].copy_from_slice(&(0xe000 | entry.pmt_pid).to_be_bytes());
    write_long_section(TABLE_PAT, transport_stream_id, &body, out);
}

/// Writes a PMT section for one program whose PCR travels on `pcr_pid`; each stream comes
/// with its descriptors (the ES_info bytes, often none).
pub(crate) fn write_pmt(
    program_number: u16,
    pcr_pid: u16,
    streams: &[(PmtStream, &[u8])],
    out: &mut Vec<u8>,
) {
    let mut body = Vec::with_capacity(4 + 5 * streams.len());
    body.extend_from_slice(&(0xe000 | pcr_pid).to_be_bytes());
    body.extend_from_slice(&0xf000u16.to_be_bytes()); // program_info_length = 0
    for (s, descriptors) in streams {
        body.push(s.stream_type);
        body.extend_from_slice(&(0xe000 | s.pid).to_be_bytes());
        // ES_info_length: 12 bits; descriptors of one stream are far shorter.
        body.extend_from_slice(&(0xf000 | descriptors.len() as u16).to_be_bytes());
        body.extend_from_slice(descriptors);
    }
    write_long_section(TABLE_PMT, program_number, &body, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_known_vector() {
        // CRC-32/MPEG-2 check value for "123456789".
        assert_eq!(crc32(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn pat_and_pmt_round_trip_through_the_assembler() {
        let mut sections = Vec::new();
        write_pat(
            1,
            PatEntry {
                program_number: 1,
                pmt_pid: 0x1000,
            },
            &mut sections,
        );
        let pat_len = sections.len();
        let streams = [
            PmtStream {
                stream_type: 0x1b,
                pid: 0x100,
            },
            PmtStream {
                stream_type: 0x06,
                pid: 0x101,
            },
        ];
        // The second stream with descriptors (Opus's registration and extension), which the
        // parser steps over.
        let opus: &[u8] = &[0x05, 4, b'O', b'p', b'u', b's', 0x7f, 2, 0x80, 2];
        write_pmt(
            1,
            0x100,
            &[(streams[0], &[]), (streams[1], opus)],
            &mut sections,
        );

        // Both sections in one payload, followed by stuffing, then split over three pushes.
        let mut payload = vec![0u8];
        payload.extend_from_slice(&sections);
        payload.extend_from_slice(&[0xff; 10]);
        let mut asm = SectionAssembler::default();
        let mut got = asm.push(&payload[..7], true);
        for (part, pusi) in [(&payload[7..20], false), (&payload[20..], false)] {
            let more = asm.push(part, pusi);
            got.sections.extend(more.sections);
            got.errors += more.errors;
        }
        assert_eq!(got.errors, 0);
        assert_eq!(got.sections.len(), 2);
        assert_eq!(got.sections[0], sections[..pat_len]);
        assert_eq!(
            parse_pat(&got.sections[0]).unwrap(),
            vec![PatEntry {
                program_number: 1,
                pmt_pid: 0x1000
            }]
        );
        let pmt = parse_pmt(&got.sections[1]).unwrap();
        assert_eq!(pmt.program_number, 1);
        assert_eq!(pmt.streams, streams);
    }

    #[test]
    fn corrupted_section_fails_crc() {
        let mut section = Vec::new();
        write_pat(
            1,
            PatEntry {
                program_number: 1,
                pmt_pid: 0x1000,
            },
            &mut section,
        );
        section[9] ^= 0x01;
        let mut payload = vec![0u8];
        payload.extend_from_slice(&section);
        let got = SectionAssembler::default().push(&payload, true);
        assert_eq!(got.errors, 1);
        assert!(got.sections.is_empty());
    }
}
