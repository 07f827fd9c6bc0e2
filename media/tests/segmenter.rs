//! Segmenter behaviour: cuts at keyframes (by random_access_indicator or by finding the IDR
//! slice), PAT/PMT travel with the keyframe they precede, frame offsets and PTS are exact, and
//! no byte is lost or reordered. Also checks the demuxer and segmenter on a stream written by
//! ffmpeg itself (H.264 + Opus, SDT, unbounded video PES).

mod common;

use common::*;
use lvt_media::ts::{
    PACKET_SIZE, STREAM_TYPE_H264, STREAM_TYPE_PRIVATE_PES, Segmenter, TsDemuxer, TsSegment,
};

/// A real ffmpeg 5.1 transport stream: 2 s of 64x64 H.264 at 10 fps (GOP 5, no B-frames,
/// PID 0x100) and Opus audio (PID 0x101).
const FFMPEG_TS: &[u8] = include_bytes!("data/ffmpeg_h264_opus.ts");

fn segment_chunked(stream: &[u8], seed: u64) -> Vec<TsSegment> {
    let mut rng = rng(seed);
    let mut segmenter = Segmenter::new();
    let mut segments = Vec::new();
    for c in random_chunks(&mut rng, stream.len()) {
        segments.extend(segmenter.push(&stream[c]));
    }
    segments.extend(segmenter.finish());
    segments
}

fn pid_at(data: &[u8], offset: usize) -> u16 {
    u16::from(data[offset + 1] & 0x1f) << 8 | u16::from(data[offset + 2])
}

/// Two passes over the clip: 20 frames, IDR every 5, continuous PTS.
fn two_loops() -> Vec<TestFrame> {
    let mut frames = clip_frames();
    let again: Vec<TestFrame> = frames
        .iter()
        .map(|f| TestFrame {
            pts: f.pts + 90_000,
            ..f.clone()
        })
        .collect();
    frames.extend(again);
    frames
}

fn check_segments(segments: &[TsSegment], stream: &[u8], frames: &[TestFrame]) {
    assert_eq!(segments.len(), 4);
    let joined: Vec<u8> = segments
        .iter()
        .flat_map(|s| s.data.iter().copied())
        .collect();
    assert_eq!(joined, stream, "segments are the input, cut");
    for (n, seg) in segments.iter().enumerate() {
        // PAT, PMT, then the keyframe's first packet.
        assert_eq!(pid_at(&seg.data, 0), 0x0000, "segment {n}");
        assert_eq!(pid_at(&seg.data, PACKET_SIZE), 0x1000, "segment {n}");
        assert_eq!(seg.frames.len(), 5);
        assert_eq!(seg.frames[0].offset, 2 * PACKET_SIZE);
        assert_eq!(seg.first_pts, Some(frames[n * 5].pts));
        for (k, pos) in seg.frames.iter().enumerate() {
            assert_eq!(pos.pts, Some(frames[n * 5 + k].pts));
            assert_eq!(pid_at(&seg.data, pos.offset), 0x100);
            assert_ne!(seg.data[pos.offset + 1] & 0x40, 0, "frame starts with PUSI");
        }
    }
}

#[test]
fn splits_at_keyframes_marked_with_random_access_indicator() {
    let frames = two_loops();
    let (stream, _) = mux_all(&frames);
    for seed in 0..20 {
        check_segments(&segment_chunked(&stream, seed), &stream, &frames);
    }
}

#[test]
fn splits_at_idr_access_units_without_random_access_indicator() {
    let frames = two_loops();
    let (mut stream, _) = mux_all(&frames);
    // Clear every random_access_indicator: the segmenter must find the IDR slices itself,
    // which in the first IDR sits several packets in (after x264's SEI).
    for p in (0..stream.len()).step_by(PACKET_SIZE) {
        if stream[p + 3] & 0x20 != 0 && stream[p + 4] > 0 {
            stream[p + 5] &= !0x40;
        }
    }
    for seed in 0..20 {
        check_segments(&segment_chunked(&stream, seed), &stream, &frames);
    }
}

#[test]
fn stream_not_starting_with_a_keyframe_yields_a_leading_partial_segment() {
    let frames = two_loops();
    let (stream, ranges) = mux_all(&frames[2..]);
    let segments = segment_chunked(&stream, 1);
    // Frames 2-4 come before any PAT/PMT, so the video PID is not known yet: they are passed
    // through as the first segment without frame positions. Then three whole GOPs.
    assert_eq!(segments.len(), 4);
    assert_eq!(segments[0].data.len(), ranges[2].end);
    assert!(segments[0].frames.is_empty());
    assert_eq!(segments[0].first_pts, None);
    assert_eq!(segments[1].first_pts, Some(frames[5].pts));
    assert_eq!(segments[3].frames.len(), 5);
}

#[test]
fn segmenter_drops_garbage_and_partial_tail() {
    let frames = two_loops();
    let (stream, _) = mux_all(&frames);
    let mut damaged = vec![1, 2, 3];
    damaged.extend_from_slice(&stream);
    damaged.extend_from_slice(&stream[..100]);
    let segments = segment_chunked(&damaged, 5);
    check_segments(&segments, &stream, &frames);
}

#[test]
fn demuxes_real_ffmpeg_stream_with_audio() {
    let mut demux = TsDemuxer::new();
    let mut rng = rng(3);
    let mut frames = Vec::new();
    for (i, c) in random_chunks(&mut rng, FFMPEG_TS.len())
        .into_iter()
        .enumerate()
    {
        demux.handle_bytes(&FFMPEG_TS[c], chunk_time_us(i));
        frames.extend(std::iter::from_fn(|| demux.poll_frame()));
    }
    demux.finish(0);
    frames.extend(std::iter::from_fn(|| demux.poll_frame()));
    let stats = demux.stats();
    assert_eq!(stats.errors(), 0, "{stats:?}");

    let video: Vec<_> = frames.iter().filter(|f| f.pid == 0x100).collect();
    let audio: Vec<_> = frames.iter().filter(|f| f.pid == 0x101).collect();
    assert_eq!(video.len(), 20);
    assert!(video.iter().all(|f| f.stream_type == STREAM_TYPE_H264));
    // ffprobe reports video PTS 126585 + 9000 * k for this file.
    for (k, f) in video.iter().enumerate() {
        assert_eq!(f.pts, Some(126_585 + 9_000 * k as u64));
        assert_eq!(f.keyframe, k % 5 == 0, "frame {k}");
    }
    assert!(!audio.is_empty());
    assert!(
        audio
            .iter()
            .all(|f| f.stream_type == STREAM_TYPE_PRIVATE_PES && f.pts.is_some())
    );
    let sps = lvt_media::h264::find_sps(&video[0].data).expect("IDR has SPS");
    assert_eq!((sps.width, sps.height), (64, 64));
}

#[test]
fn segments_real_ffmpeg_stream_at_its_keyframes() {
    let segments = segment_chunked(FFMPEG_TS, 11);
    assert_eq!(segments.len(), 4);
    let joined: Vec<u8> = segments
        .iter()
        .flat_map(|s| s.data.iter().copied())
        .collect();
    assert_eq!(joined, FFMPEG_TS);
    for (n, seg) in segments.iter().enumerate() {
        assert_eq!(seg.frames.len(), 5, "segment {n}");
        assert_eq!(seg.first_pts, Some(126_585 + 45_000 * n as u64));
        // Every segment after the first starts with ffmpeg's PAT/PMT repetition or the
        // keyframe itself; either way it demuxes on its own once it has a PAT and PMT.
        let mut demux = TsDemuxer::new();
        demux.handle_bytes(&segments[0].data[..2 * PACKET_SIZE], 0);
        demux.handle_bytes(&seg.data, 1);
        demux.finish(2);
        let first_video = std::iter::from_fn(|| demux.poll_frame())
            .find(|f| f.pid == 0x100)
            .expect("segment holds video");
        assert!(first_video.keyframe, "segment {n}");
    }
}
