//! SPS parsing against real libx264 parameter sets and against synthetic ones that exercise
//! the syntax x264 does not emit (scaling lists, POC type 1, 4:2:2 cropping, emulation
//! prevention).

mod common;

use lvt_media::h264::{self, H264Error, Sps, find_sps, parse_sps};

/// Parses tests/data/x264_sps.txt: `width height profile_idc level_idc hex` per line.
fn x264_fixtures() -> Vec<(Sps, Vec<u8>)> {
    include_str!("data/x264_sps.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let sps = Sps {
                width: f[0].parse().unwrap(),
                height: f[1].parse().unwrap(),
                profile_idc: f[2].parse().unwrap(),
                level_idc: f[3].parse().unwrap(),
            };
            let nal = (0..f[4].len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&f[4][i..i + 2], 16).unwrap())
                .collect();
            (sps, nal)
        })
        .collect()
}

#[test]
fn parses_real_x264_sps() {
    let fixtures = x264_fixtures();
    assert_eq!(fixtures.len(), 8);
    for (want, nal) in fixtures {
        assert_eq!(parse_sps(&nal), Ok(want), "{want:?}");
    }
}

#[test]
fn finds_sps_in_real_access_unit() {
    let aus = common::split_access_units(common::CLIP64);
    let sps = find_sps(&aus[0]).expect("first AU is an IDR with SPS");
    assert_eq!(
        sps,
        Sps {
            profile_idc: 100,
            level_idc: 10,
            width: 64,
            height: 64
        }
    );
    assert!(find_sps(&aus[1]).is_none());
    assert!(h264::contains_idr(&aus[0]) && h264::access_unit_is_idr(&aus[0]));
    assert!(!h264::contains_idr(&aus[1]) && !h264::access_unit_is_idr(&aus[1]));
}

#[test]
fn truncated_real_sps_is_an_error_not_a_panic() {
    for (_, nal) in x264_fixtures() {
        for len in 0..nal.len() {
            // Any prefix either parses (the tail was VUI, which is not read) or fails cleanly.
            let _ = parse_sps(&nal[..len]);
        }
        assert!(matches!(
            parse_sps(&nal[..6]),
            Err(H264Error::Truncated { .. })
        ));
    }
}

/// Writes RBSP bits MSB first and escapes them into a NAL unit.
#[derive(Default)]
struct BitWriter {
    bits: Vec<bool>,
}

impl BitWriter {
    fn u(&mut self, n: u32, v: u64) -> &mut Self {
        for i in (0..n).rev() {
            self.bits.push(v >> i & 1 == 1);
        }
        self
    }
    fn ue(&mut self, v: u64) -> &mut Self {
        let code = v + 1;
        let len = 64 - code.leading_zeros();
        self.u(len - 1, 0).u(len, code)
    }
    fn se(&mut self, v: i64) -> &mut Self {
        let code = if v > 0 {
            2 * v as u64 - 1
        } else {
            2 * v.unsigned_abs()
        };
        self.ue(code)
    }
    /// NAL header 0x67, the bits, the stop bit, and emulation prevention bytes.
    fn into_nal(mut self) -> Vec<u8> {
        self.bits.push(true);
        while !self.bits.len().is_multiple_of(8) {
            self.bits.push(false);
        }
        let rbsp: Vec<u8> = self
            .bits
            .chunks(8)
            .map(|c| c.iter().fold(0u8, |acc, &b| acc << 1 | u8::from(b)))
            .collect();
        let mut nal = vec![0x67];
        let mut zeros = 0;
        for b in rbsp {
            if zeros == 2 && b <= 3 {
                nal.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            nal.push(b);
        }
        nal
    }
}

#[test]
fn parses_high_422_with_scaling_lists_poc_type_1_and_cropping() {
    let mut w = BitWriter::default();
    w.u(8, 122).u(8, 0).u(8, 40).ue(3); // profile High 4:2:2, level 4.0, sps id 3
    w.ue(2).ue(2).ue(2).u(1, 0); // chroma 4:2:2, 10-bit, no bypass
    w.u(1, 1); // seq_scaling_matrix_present_flag
    for i in 0..8 {
        match i {
            // List 0: explicit deltas, ending early with next_scale == 0.
            0 => {
                w.u(1, 1).se(8).se(-16);
            }
            // List 6 (8x8): all 64 deltas present (next_scale never 0).
            6 => {
                w.u(1, 1);
                for j in 0..64 {
                    w.se(if j % 2 == 0 { 3 } else { -3 });
                }
            }
            _ => {
                w.u(1, 0);
            }
        }
    }
    w.ue(0).ue(1); // log2_max_frame_num_minus4, pic_order_cnt_type 1
    w.u(1, 0).se(-2).se(5).ue(3).se(1).se(-1).se(100); // POC type 1 fields, 3 ref offsets
    w.ue(4).u(1, 0); // max_num_ref_frames, gaps
    w.ue(119).ue(67); // 120 x 68 macroblocks = 1920 x 1088
    w.u(1, 1).u(1, 1); // frame_mbs_only, direct_8x8
    w.u(1, 1).ue(1).ue(2).ue(0).ue(4); // cropping: 4:2:2 units are 2 x 1
    w.u(1, 0); // no VUI
    let nal = w.into_nal();
    assert_eq!(
        parse_sps(&nal),
        Ok(Sps {
            profile_idc: 122,
            level_idc: 40,
            width: 1920 - 2 * 3,
            height: 1088 - 4,
        })
    );
}

#[test]
fn parses_444_with_twelve_scaling_lists_and_field_coding() {
    let mut w = BitWriter::default();
    w.u(8, 244).u(8, 0).u(8, 30).ue(0);
    w.ue(3).u(1, 0).ue(0).ue(0).u(1, 0); // 4:4:4, not separate planes, 8-bit
    w.u(1, 1);
    for i in 0..12 {
        // Only the last 8x8 list (index 11) is sent; it only exists for 4:4:4.
        if i == 11 {
            w.u(1, 1).se(-8); // next_scale becomes 0 at once: the rest is implied
        } else {
            w.u(1, 0);
        }
    }
    w.ue(0).ue(2); // POC type 2
    w.ue(1).u(1, 0);
    w.ue(44).ue(17); // 45 x 18 map units
    w.u(1, 0).u(1, 0).u(1, 1); // field coding: frame_mbs_only 0, mbaff 0, direct_8x8
    w.u(1, 1).ue(0).ue(0).ue(1).ue(1); // 4:4:4 field crop units are 1 x 2
    w.u(1, 0);
    let nal = w.into_nal();
    assert_eq!(
        parse_sps(&nal),
        Ok(Sps {
            profile_idc: 244,
            level_idc: 30,
            width: 720,
            height: 2 * 18 * 16 - 4,
        })
    );
}

#[test]
fn emulation_prevention_is_removed_before_parsing() {
    // Baseline 16x16 whose offset_for_non_ref_pic is so large that its exp-Golomb code starts
    // with 30 zero bits, which always contains `00 00 0x` and so forces an escape.
    let mut w = BitWriter::default();
    w.u(8, 66).u(8, 0).u(8, 10).ue(0);
    w.ue(0).ue(1).u(1, 0).se(1 << 29).se(0).ue(0);
    w.ue(1).u(1, 0).ue(0).ue(0).u(1, 1).u(1, 0).u(1, 0).u(1, 0);
    let nal = w.into_nal();
    assert!(nal.windows(3).any(|x| x == [0, 0, 3]), "{nal:02x?}");
    assert_eq!(
        parse_sps(&nal),
        Ok(Sps {
            profile_idc: 66,
            level_idc: 10,
            width: 16,
            height: 16
        })
    );
}

#[test]
fn rejects_impossible_values() {
    let mut w = BitWriter::default();
    w.u(8, 66).u(8, 0).u(8, 30).ue(32); // sps id > 31
    assert!(matches!(
        parse_sps(&w.into_nal()),
        Err(H264Error::OutOfRange {
            field: "seq_parameter_set_id",
            ..
        })
    ));

    let mut w = BitWriter::default();
    w.u(8, 66)
        .u(8, 0)
        .u(8, 30)
        .ue(0)
        .ue(0)
        .ue(0)
        .ue(1)
        .ue(0)
        .u(1, 0);
    w.ue(0)
        .ue(0)
        .u(1, 1)
        .u(1, 0)
        .u(1, 1)
        .ue(8)
        .ue(0)
        .ue(0)
        .ue(0); // crop 16 of 16 columns
    assert_eq!(parse_sps(&w.into_nal()), Err(H264Error::InvalidCropping));
}
