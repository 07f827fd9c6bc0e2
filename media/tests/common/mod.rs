//! Helpers shared by the lvt-media integration tests: fixtures, muxing of test streams and
//! seeded chunking, so that every test builds its input the same way.

#![allow(dead_code)]

use std::ops::Range;

use lvt_media::h264;
use lvt_media::ts::{MuxConfig, MuxFrame, PACKET_SIZE, TsMuxer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A real libx264 clip: 64x64, 10 frames at 10 fps, IDR every 5 frames, no B-frames, with
/// access unit delimiters so that it splits into access units without a slice parser.
pub const CLIP64: &[u8] = include_bytes!("../data/clip64_aud.h264");

/// One access unit to mux, owned.
#[derive(Debug, Clone)]
pub struct TestFrame {
    pub pts: u64,
    pub dts: Option<u64>,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Splits an Annex B stream into access units at its access unit delimiters; each unit keeps
/// its start codes.
pub fn split_access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut starts: Vec<usize> = Vec::new();
    let mut i = 0;
    while i + 3 < stream.len() {
        if stream[i..i + 3] == [0, 0, 1] && stream[i + 3] & 0x1f == h264::NAL_AUD {
            // Include the leading zero of a four-byte start code.
            starts.push(if i > 0 && stream[i - 1] == 0 {
                i - 1
            } else {
                i
            });
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| stream[s..starts.get(n + 1).copied().unwrap_or(stream.len())].to_vec())
        .collect()
}

/// The fixture clip as frames at 10 fps starting at PTS 90000.
pub fn clip_frames() -> Vec<TestFrame> {
    split_access_units(CLIP64)
        .into_iter()
        .enumerate()
        .map(|(i, data)| TestFrame {
            pts: 90_000 + i as u64 * 9_000,
            dts: None,
            keyframe: h264::contains_idr(&data),
            data,
        })
        .collect()
}

/// Random frames that contain no start code (every byte is non-zero), so the demuxer's IDR
/// check cannot fire by accident: only the muxer's random_access_indicator marks keyframes.
pub fn synthetic_frames(rng: &mut ChaCha8Rng, count: usize, max_size: usize) -> Vec<TestFrame> {
    let mut pts = 1_000u64;
    (0..count)
        .map(|i| {
            let size = match rng.random_range(0..10) {
                0 => rng.random_range(0..200),
                1 => rng.random_range(65_000..70_000).min(max_size),
                _ => rng.random_range(0..max_size.min(20_000)),
            };
            pts += 3_000;
            let dts = rng
                .random_bool(0.3)
                .then(|| pts - rng.random_range(1..3_000));
            TestFrame {
                pts,
                dts,
                keyframe: i % 7 == 0,
                data: (0..size).map(|_| rng.random_range(1..=255u8)).collect(),
            }
        })
        .collect()
}

/// Muxes frames with a fresh default muxer; returns the stream and each frame's byte range.
pub fn mux_all(frames: &[TestFrame]) -> (Vec<u8>, Vec<Range<usize>>) {
    let mut mux = TsMuxer::new(MuxConfig::default());
    let mut out = Vec::new();
    let ranges = frames
        .iter()
        .map(|f| {
            mux.mux_frame(
                &MuxFrame {
                    pts: f.pts,
                    dts: f.dts,
                    keyframe: f.keyframe,
                    data: &f.data,
                },
                &mut out,
            )
        })
        .collect();
    (out, ranges)
}

/// Offset of the first packet in `range` that is on `pid` and starts a payload unit.
pub fn first_pes_packet(stream: &[u8], range: Range<usize>, pid: u16) -> usize {
    (range.start..range.end)
        .step_by(PACKET_SIZE)
        .find(|&o| {
            let p = &stream[o..o + PACKET_SIZE];
            p[1] & 0x40 != 0 && (u16::from(p[1] & 0x1f) << 8 | u16::from(p[2])) == pid
        })
        .expect("every muxed frame has a PES start packet")
}

/// Random chunk boundaries over `len` bytes: sizes from 1 byte to a few packets, so packets
/// straddle chunks in every possible way.
pub fn random_chunks(rng: &mut ChaCha8Rng, len: usize) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < len {
        let size = match rng.random_range(0..4) {
            0 => rng.random_range(1..16),
            1 => PACKET_SIZE,
            _ => rng.random_range(1..4 * PACKET_SIZE),
        };
        let end = (at + size).min(len);
        chunks.push(at..end);
        at = end;
    }
    chunks
}

/// Arrival time of chunk `index` in the tests' made-up clock.
pub fn chunk_time_us(index: usize) -> u64 {
    1_000_000 + index as u64 * 1_337
}

/// Index of the chunk holding byte `offset`.
pub fn chunk_of(chunks: &[Range<usize>], offset: usize) -> usize {
    chunks.partition_point(|c| c.end <= offset)
}
