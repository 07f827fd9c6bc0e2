//! H.264 (ISO/IEC 14496-10) Annex B bitstream helpers.
//!
//! This module owns the little H.264 knowledge lvt needs: splitting an Annex B byte stream into
//! NAL units, telling whether an access unit is an IDR (a clean random access point), and reading
//! the picture size and profile out of a sequence parameter set. It never decodes pictures.

use thiserror::Error;

/// NAL unit type of a coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of a coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Why a sequence parameter set could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum H264Error {
    /// The NAL unit was empty.
    #[error("empty NAL unit")]
    Empty,
    /// The NAL unit is not a sequence parameter set.
    #[error("NAL unit type {nal_type} is not a sequence parameter set")]
    NotSps {
        /// The `nal_unit_type` that was found instead.
        nal_type: u8,
    },
    /// The bitstream ended before the syntax element named `field`.
    #[error("SPS truncated while reading {field}")]
    Truncated {
        /// The syntax element being read.
        field: &'static str,
    },
    /// A syntax element holds a value the specification does not allow.
    #[error("SPS field {field} has out-of-range value {value}")]
    OutOfRange {
        /// The syntax element that was out of range.
        field: &'static str,
        /// The value that was read.
        value: u64,
    },
    /// The cropping window removes the whole picture or more.
    #[error("SPS cropping window is larger than the coded picture")]
    InvalidCropping,
}

/// The parts of a sequence parameter set lvt reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 baseline, 77 main, 100 high, ...).
    pub profile_idc: u8,
    /// `level_idc` (ten times the level number, e.g. 31 for level 3.1).
    pub level_idc: u8,
    /// Displayed width in pixels, after frame cropping.
    pub width: u32,
    /// Displayed height in pixels, after frame cropping.
    pub height: u32,
}

/// Iterates over the NAL units of an Annex B byte stream.
///
/// Each item is one NAL unit without its start code (it begins with the NAL header byte) and
/// without trailing zero bytes. Bytes before the first start code are not a NAL unit and are
/// skipped; empty NAL units are skipped too.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    NalUnits {
        rest: match find_start_code(data) {
            Some((_, after)) => &data[after..],
            None => &[],
        },
    }
}

struct NalUnits<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (nal, rest) = match find_start_code(self.rest) {
                Some((at, after)) => (&self.rest[..at], &self.rest[after..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            // Trailing zeros belong to trailing_zero_8bits or to the leading zero of a
            // four-byte start code, never to the NAL unit (whose last byte holds the stop bit).
            let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            if end > 0 {
                return Some(&nal[..end]);
            }
        }
    }
}

/// Finds the first three-byte start code `00 00 01`; returns its offset and the offset just
/// after it.
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    let mut from = 2;
    while from < data.len() {
        let pos = from + data[from..].iter().position(|&b| b == 1)?;
        if data[pos - 1] == 0 && data[pos - 2] == 0 {
            return Some((pos - 2, pos + 1));
        }
        from = pos + 1;
    }
    None
}

/// The `nal_unit_type` of a NAL unit (its first byte's low five bits).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// True if any NAL unit in `data` is a slice of an IDR picture.
pub fn contains_idr(data: &[u8]) -> bool {
    nal_units(data).any(|nal| nal_type(nal) == Some(NAL_IDR))
}

/// True if the access unit's primary coded picture is an IDR picture.
///
/// All slices of a picture share its IDR-ness, so the answer is known at the first slice NAL
/// unit; unlike [`contains_idr`] this stops there instead of scanning the slice data, which
/// makes it cheap enough to run on every demuxed frame.
pub fn access_unit_is_idr(au: &[u8]) -> bool {
    for nal in nal_units(au) {
        match nal_type(nal) {
            Some(NAL_IDR) => return true,
            Some(t) if (NAL_SLICE..NAL_IDR).contains(&t) => return false,
            _ => {}
        }
    }
    false
}

/// Finds and parses the first valid sequence parameter set in an Annex B access unit.
pub fn find_sps(au: &[u8]) -> Option<Sps> {
    nal_units(au)
        .filter(|nal| nal_type(nal) == Some(NAL_SPS))
        .find_map(|nal| parse_sps(nal).ok())
}

/// Removes emulation prevention bytes: every `00 00 03` becomes `00 00`.
fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Profiles whose SPS carries chroma format, bit depth and scaling matrix fields.
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parses a sequence parameter set NAL unit (NAL header included, start code excluded).
///
/// Reads up to and including the frame cropping fields; VUI is not needed for the picture size
/// and is not parsed, so an SPS whose VUI is damaged still parses.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, H264Error> {
    let header = *nal.first().ok_or(H264Error::Empty)?;
    let nal_type = header & 0x1f;
    if nal_type != NAL_SPS {
        return Err(H264Error::NotSps { nal_type });
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp);

    let profile_idc = r.bits(8, "profile_idc")? as u8;
    r.bits(8, "constraint_set_flags")?;
    let level_idc = r.bits(8, "level_idc")? as u8;
    r.ue_max("seq_parameter_set_id", 31)?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if HIGH_PROFILES.contains(&profile_idc) {
        chroma_format_idc = r.ue_max("chroma_format_idc", 3)?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag("separate_colour_plane_flag")?;
        }
        r.ue_max("bit_depth_luma_minus8", 6)?;
        r.ue_max("bit_depth_chroma_minus8", 6)?;
        r.flag("qpprime_y_zero_transform_bypass_flag")?;
        if r.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    r.ue_max("log2_max_frame_num_minus4", 12)?;
    match r.ue_max("pic_order_cnt_type", 2)? {
        0 => {
            r.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            r.flag("delta_pic_order_always_zero_flag")?;
            r.se("offset_for_non_ref_pic")?;
            r.se("offset_for_top_to_bottom_field")?;
            let cycle = r.ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..cycle {
                r.se("offset_for_ref_frame")?;
            }
        }
        _ => {}
    }
    r.ue("max_num_ref_frames")?;
    r.flag("gaps_in_frame_num_value_allowed_flag")?;
    // A coded picture can be at most 2^16 pixels wide or tall (level limits are far lower), so
    // these bounds reject garbage without rejecting any real stream.
    let width_mbs = r.ue_max("pic_width_in_mbs_minus1", 4095)? + 1;
    let height_map_units = r.ue_max("pic_height_in_map_units_minus1", 4095)? + 1;
    let frame_mbs_only = r.flag("frame_mbs_only_flag")?;
    if !frame_mbs_only {
        r.flag("mb_adaptive_frame_field_flag")?;
    }
    r.flag("direct_8x8_inference_flag")?;
    let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0, 0, 0, 0);
    if r.flag("frame_cropping_flag")? {
        crop_left = r.ue("frame_crop_left_offset")?;
        crop_right = r.ue("frame_crop_right_offset")?;
        crop_top = r.ue("frame_crop_top_offset")?;
        crop_bottom = r.ue("frame_crop_bottom_offset")?;
    }

    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let coded_width = width_mbs * 16;
    let coded_height = field_factor * height_map_units * 16;
    let crop_x = crop_left
        .checked_add(crop_right)
        .and_then(|c| c.checked_mul(crop_unit_x))
        .ok_or(H264Error::InvalidCropping)?;
    let crop_y = crop_top
        .checked_add(crop_bottom)
        .and_then(|c| c.checked_mul(crop_unit_y))
        .ok_or(H264Error::InvalidCropping)?;
    if crop_x >= coded_width || crop_y >= coded_height {
        return Err(H264Error::InvalidCropping);
    }
    // Both values are below 2^17 (checked above), so they fit in u32.
    Ok(Sps {
        profile_idc,
        level_idc,
        width: (coded_width - crop_x) as u32,
        height: (coded_height - crop_y) as u32,
    })
}

/// Skips one `scaling_list()` of `size` coefficients; the values are not needed, but the
/// number of bits they take depends on them.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(H264Error::OutOfRange {
                    field: "delta_scale",
                    value: delta.unsigned_abs(),
                });
            }
            next_scale = (last_scale + delta + 256).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Reads bits MSB first from an RBSP.
struct BitReader<'a> {
    data: &'a [u8],
    bit_pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, bit_pos: 0 }
    }

    fn bit(&mut self, field: &'static str) -> Result<u64, H264Error> {
        let byte = self
            .data
            .get(self.bit_pos / 8)
            .ok_or(H264Error::Truncated { field })?;
        let bit = (byte >> (7 - self.bit_pos % 8)) & 1;
        self.bit_pos += 1;
        Ok(u64::from(bit))
    }

    fn bits(&mut self, count: u32, field: &'static str) -> Result<u64, H264Error> {
        let mut value = 0;
        for _ in 0..count {
            value = (value << 1) | self.bit(field)?;
        }
        Ok(value)
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, H264Error> {
        Ok(self.bit(field)? == 1)
    }

    /// Reads an unsigned exp-Golomb code. Codes longer than 32 leading zeros cannot occur in a
    /// valid SPS and are reported as out of range rather than overflowing.
    fn ue(&mut self, field: &'static str) -> Result<u64, H264Error> {
        let mut leading_zeros = 0u32;
        while self.bit(field)? == 0 {
            leading_zeros += 1;
            if leading_zeros > 32 {
                return Err(H264Error::OutOfRange {
                    field,
                    value: u64::MAX,
                });
            }
        }
        Ok((1u64 << leading_zeros) - 1 + self.bits(leading_zeros, field)?)
    }

    fn ue_max(&mut self, field: &'static str, max: u64) -> Result<u64, H264Error> {
        let value = self.ue(field)?;
        if value > max {
            return Err(H264Error::OutOfRange { field, value });
        }
        Ok(value)
    }

    /// Reads a signed exp-Golomb code: 1, 2, 3, 4 map to 1, -1, 2, -2.
    fn se(&mut self, field: &'static str) -> Result<i64, H264Error> {
        let code = self.ue(field)?;
        // ue() is at most 2^33 - 2, so the halved value fits in i64.
        let magnitude = code.div_ceil(2) as i64;
        Ok(if code % 2 == 1 { magnitude } else { -magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_units_handles_three_and_four_byte_start_codes() {
        let data = [
            0xAA, 0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 0, 1, 0x65, 7, 0, 0, 1,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![&[0x09, 0xF0][..], &[0x67, 1, 2][..], &[0x65, 7][..]]
        );
        assert!(contains_idr(&data));
        assert!(access_unit_is_idr(&data));
    }

    #[test]
    fn nal_units_without_start_code_yields_nothing() {
        assert_eq!(nal_units(&[1, 2, 3, 0, 0]).count(), 0);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn non_idr_access_unit_is_not_idr() {
        let au = [
            0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x41, 0x9A, 0, 0, 1, 0x65, 0x88,
        ];
        assert!(!access_unit_is_idr(&au));
        // contains_idr scans everything, so it still finds the (odd) IDR NAL unit later on.
        assert!(contains_idr(&au));
    }

    #[test]
    fn unescape_removes_emulation_prevention() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 0]
        );
    }

    #[test]
    fn exp_golomb_reads_known_codes() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue: 0, 1, 2, 3 then se(4 -> -2)
        let bits = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&bits);
        assert_eq!(r.ue("a").unwrap(), 0);
        assert_eq!(r.ue("b").unwrap(), 1);
        assert_eq!(r.ue("c").unwrap(), 2);
        assert_eq!(r.ue("d").unwrap(), 3);
        assert_eq!(r.se("e").unwrap(), -2);
    }

    #[test]
    fn parse_sps_rejects_other_nal_types_and_garbage() {
        assert_eq!(parse_sps(&[]), Err(H264Error::Empty));
        assert_eq!(
            parse_sps(&[0x68, 0xEE]),
            Err(H264Error::NotSps { nal_type: 8 })
        );
        assert!(matches!(
            parse_sps(&[0x67, 0x64]),
            Err(H264Error::Truncated { .. })
        ));
        assert!(parse_sps(&[0x67, 0x64, 0, 0x1e, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
