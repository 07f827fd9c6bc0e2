//! A flat gray picture as H.264, written without an encoder: what a simulated runner shows
//! while its pipeline loads.
//!
//! ai-runner replaces every input frame with a loading overlay while its pipeline (re)loads: a
//! grayscale, dimmed copy of the last output (mid gray when there is none) with a spinner and
//! "Loading pipeline…" on it. Its defining trait for a tester is that the picture carries no
//! colour and not the input's picture. [`FlatPicture`] writes the no-last-output case (flat mid
//! gray, Y = Cb = Cr = 128) as a baseline-profile stream: [`FlatPicture::idr`] is an access unit
//! with its own SPS and PPS and one IDR slice of `I_16x16` macroblocks predicted from DC with no
//! residual (8 bits per macroblock), and [`FlatPicture::repeat`] a P slice that skips every
//! macroblock, so a run of overlay frames costs a few bytes per frame after the first.
//!
//! The parameter sets use ids 0, as libx264's do: an overlay IDR replaces the stream's
//! parameters and the next IDR of the real output replaces them back, which every decoder
//! supports at IDR boundaries. Pure: no IO, no clock.

/// `log2_max_frame_num_minus4` of the SPS: `frame_num` counts modulo 16.
const LOG2_MAX_FRAME_NUM: u32 = 4;

/// A flat mid-gray picture of a given size, as H.264 access units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatPicture {
    width: u32,
    height: u32,
    width_mbs: u32,
    height_mbs: u32,
}

impl FlatPicture {
    /// A picture `width` x `height` pixels; `None` unless both are even and within 2..=4096
    /// (4:2:0 cropping works in pairs of pixels, and H.264 levels stop well below 4096).
    pub fn new(width: u32, height: u32) -> Option<Self> {
        let valid = |v: u32| (2..=4096).contains(&v) && v.is_multiple_of(2);
        if !valid(width) || !valid(height) {
            return None;
        }
        Some(Self {
            width,
            height,
            width_mbs: width.div_ceil(16),
            height_mbs: height.div_ceil(16),
        })
    }

    /// Picture width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Picture height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    fn macroblocks(&self) -> u32 {
        self.width_mbs * self.height_mbs
    }

    /// SPS, PPS and an IDR slice (Annex B, four-byte start codes). `idr_pic_id` must differ
    /// from the previous IDR's when two IDR pictures follow each other.
    pub fn idr(&self, idr_pic_id: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.macroblocks() as usize);
        push_nal(&mut out, 0x67, &self.sps());
        push_nal(&mut out, 0x68, &pps());

        let mut w = BitWriter::default();
        w.ue(0); // first_mb_in_slice
        w.ue(7); // slice_type: I, every slice of the picture
        w.ue(0); // pic_parameter_set_id
        w.bits(0, LOG2_MAX_FRAME_NUM); // frame_num
        w.ue(idr_pic_id % 65_536);
        w.bit(false); // no_output_of_prior_pics_flag
        w.bit(false); // long_term_reference_flag
        w.se(0); // slice_qp_delta
        w.ue(1); // disable_deblocking_filter_idc: off (a flat picture has no edges)
        for _ in 0..self.macroblocks() {
            // mb_type 3 = I_16x16_2_0_0: DC prediction, no coded luma or chroma blocks. With
            // nothing decoded yet DC predicts 128, and every later block predicts from 128s.
            w.ue(3);
            w.ue(0); // intra_chroma_pred_mode: DC
            w.se(0); // mb_qp_delta
            w.bit(true); // Intra16x16DCLevel coeff_token (nC = 0): no coefficients
        }
        w.trailing();
        push_nal(&mut out, 0x65, &w.finish());
        out
    }

    /// A P slice repeating the previous picture (every macroblock skipped). `frame_num` counts
    /// the reference pictures since the IDR (the IDR is 0, the first repeat 1).
    pub fn repeat(&self, frame_num: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.ue(0); // first_mb_in_slice
        w.ue(5); // slice_type: P, every slice of the picture
        w.ue(0); // pic_parameter_set_id
        w.bits(frame_num % (1 << LOG2_MAX_FRAME_NUM), LOG2_MAX_FRAME_NUM);
        w.bit(false); // num_ref_idx_active_override_flag
        w.bit(false); // ref_pic_list_modification_flag_l0
        w.bit(false); // adaptive_ref_pic_marking_mode_flag
        w.se(0); // slice_qp_delta
        w.ue(1); // disable_deblocking_filter_idc
        w.ue(self.macroblocks()); // mb_skip_run: the whole picture
        w.trailing();
        let mut out = Vec::with_capacity(16);
        push_nal(&mut out, 0x41, &w.finish());
        out
    }

    fn sps(&self) -> Vec<u8> {
        let mbs = self.macroblocks();
        // The smallest level whose frame size fits (3.1, 4.0, 5.1).
        let level = if mbs <= 3_600 {
            31
        } else if mbs <= 8_192 {
            40
        } else {
            51
        };
        let mut w = BitWriter::default();
        w.bits(66, 8); // profile_idc: baseline
        w.bits(0xc0, 8); // constraint_set0 and set1: constrained baseline
        w.bits(level, 8);
        w.ue(0); // seq_parameter_set_id
        w.ue(LOG2_MAX_FRAME_NUM - 4);
        w.ue(2); // pic_order_cnt_type 2: output order is decoding order
        w.ue(1); // max_num_ref_frames
        w.bit(false); // gaps_in_frame_num_value_allowed_flag
        w.ue(self.width_mbs - 1);
        w.ue(self.height_mbs - 1);
        w.bit(true); // frame_mbs_only_flag
        w.bit(true); // direct_8x8_inference_flag
        let crop_right = (self.width_mbs * 16 - self.width) / 2;
        let crop_bottom = (self.height_mbs * 16 - self.height) / 2;
        let crop = crop_right > 0 || crop_bottom > 0;
        w.bit(crop);
        if crop {
            w.ue(0);
            w.ue(crop_right);
            w.ue(0);
            w.ue(crop_bottom);
        }
        w.bit(false); // vui_parameters_present_flag
        w.trailing();
        w.finish()
    }
}

fn pps() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(0); // pic_parameter_set_id
    w.ue(0); // seq_parameter_set_id
    w.bit(false); // entropy_coding_mode_flag: CAVLC
    w.bit(false); // bottom_field_pic_order_in_frame_present_flag
    w.ue(0); // num_slice_groups_minus1
    w.ue(0); // num_ref_idx_l0_default_active_minus1
    w.ue(0); // num_ref_idx_l1_default_active_minus1
    w.bit(false); // weighted_pred_flag
    w.bits(0, 2); // weighted_bipred_idc
    w.se(0); // pic_init_qp_minus26
    w.se(0); // pic_init_qs_minus26
    w.se(0); // chroma_qp_index_offset
    w.bit(true); // deblocking_filter_control_present_flag
    w.bit(false); // constrained_intra_pred_flag
    w.bit(false); // redundant_pic_cnt_present_flag
    w.trailing();
    w.finish()
}

/// Appends a start code, the NAL header and the RBSP with emulation prevention bytes.
fn push_nal(out: &mut Vec<u8>, header: u8, rbsp: &[u8]) {
    out.extend_from_slice(&[0, 0, 0, 1, header]);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// MSB-first bit writer with Exp-Golomb codes.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    current: u8,
    used: u32,
}

impl BitWriter {
    fn bit(&mut self, one: bool) {
        self.current = (self.current << 1) | u8::from(one);
        self.used += 1;
        if self.used == 8 {
            self.bytes.push(self.current);
            self.current = 0;
            self.used = 0;
        }
    }

    fn bits(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.bit((value >> i) & 1 == 1);
        }
    }

    /// Unsigned Exp-Golomb.
    fn ue(&mut self, value: u32) {
        let coded = u64::from(value) + 1;
        let len = 64 - coded.leading_zeros();
        for _ in 1..len {
            self.bit(false);
        }
        for i in (0..len).rev() {
            self.bit((coded >> i) & 1 == 1);
        }
    }

    /// Signed Exp-Golomb.
    fn se(&mut self, value: i32) {
        let mapped = if value > 0 {
            2 * value.unsigned_abs() - 1
        } else {
            2 * value.unsigned_abs()
        };
        self.ue(mapped);
    }

    /// `rbsp_trailing_bits`: a stop bit, then zeros to the byte boundary.
    fn trailing(&mut self) {
        self.bit(true);
        while self.used != 0 {
            self.bit(false);
        }
    }

    fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::{self, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS};

    #[test]
    fn the_idr_carries_parameter_sets_of_the_right_size() {
        for (w, h) in [(512, 512), (1280, 720), (1920, 1080), (2, 2), (650, 362)] {
            let flat = FlatPicture::new(w, h).unwrap();
            let au = flat.idr(0);
            let types: Vec<u8> = h264::nal_units(&au).filter_map(h264::nal_type).collect();
            assert_eq!(types, [NAL_SPS, NAL_PPS, NAL_IDR], "{w}x{h}");
            let sps = h264::find_sps(&au).expect("our SPS parses");
            assert_eq!((sps.width, sps.height, sps.profile_idc), (w, h, 66));
            assert!(h264::access_unit_is_idr(&au));
            let repeat = flat.repeat(1);
            let types: Vec<u8> = h264::nal_units(&repeat)
                .filter_map(h264::nal_type)
                .collect();
            assert_eq!(types, [NAL_SLICE]);
            assert!(!h264::access_unit_is_idr(&repeat));
        }
    }

    #[test]
    fn odd_or_absurd_sizes_are_refused() {
        for (w, h) in [(511, 512), (512, 0), (0, 0), (4098, 2), (513, 513)] {
            assert_eq!(FlatPicture::new(w, h), None, "{w}x{h}");
        }
    }

    #[test]
    fn exp_golomb_codes_match_the_standard_table() {
        let code = |f: &dyn Fn(&mut BitWriter)| {
            let mut w = BitWriter::default();
            f(&mut w);
            w.trailing();
            w.finish()
        };
        // ue(0) = 1, ue(3) = 00100, se(-1) = ue(2) = 011, se(1) = ue(1) = 010.
        assert_eq!(code(&|w| w.ue(0)), [0b1100_0000]);
        assert_eq!(code(&|w| w.ue(3)), [0b0010_0100]);
        assert_eq!(code(&|w| w.se(-1)), [0b0111_0000]);
        assert_eq!(code(&|w| w.se(1)), [0b0101_0000]);
        // One I_16x16 macroblock of the IDR: 00100 1 1 1.
        assert_eq!(
            code(&|w| {
                w.ue(3);
                w.ue(0);
                w.se(0);
                w.bit(true);
            }),
            [0b0010_0111, 0b1000_0000]
        );
    }

    #[test]
    fn emulation_prevention_escapes_start_code_prefixes() {
        let mut out = Vec::new();
        push_nal(&mut out, 0x65, &[0, 0, 1, 0, 0, 0, 0, 0, 4]);
        assert_eq!(out[5..], [0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 0, 4]);
    }
}
