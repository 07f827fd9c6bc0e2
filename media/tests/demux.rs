//! Demuxer behaviour on valid and damaged streams: mux -> demux round trips under random
//! chunking, continuity errors, duplicates and resynchronisation.

mod common;

use common::*;
use lvt_media::ts::{Frame, PACKET_SIZE, STREAM_TYPE_H264, TsDemuxer};

/// Feeds `stream` in the given chunks (chunk i arrives at `chunk_time_us(i)`), then finishes.
fn demux_chunked(stream: &[u8], chunks: &[std::ops::Range<usize>]) -> (Vec<Frame>, TsDemuxer) {
    let mut demux = TsDemuxer::new();
    let mut frames = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        demux.handle_bytes(&stream[c.clone()], chunk_time_us(i));
        while let Some(f) = demux.poll_frame() {
            frames.push(f);
        }
    }
    demux.finish(chunk_time_us(chunks.len()));
    while let Some(f) = demux.poll_frame() {
        frames.push(f);
    }
    (frames, demux)
}

fn demux_whole(stream: &[u8]) -> (Vec<Frame>, TsDemuxer) {
    let whole = std::iter::once(0..stream.len()).collect::<Vec<_>>();
    demux_chunked(stream, &whole)
}

/// Checks every demuxed frame against what was muxed, including the arrival times.
fn check_round_trip(input: &[TestFrame], seed: u64) {
    let (stream, ranges) = mux_all(input);
    let mut rng = rng(seed);
    let chunks = random_chunks(&mut rng, stream.len());
    let (frames, demux) = demux_chunked(&stream, &chunks);

    assert_eq!(frames.len(), input.len(), "seed {seed}");
    for (i, (got, want)) in frames.iter().zip(input).enumerate() {
        assert_eq!(got.pid, 0x100);
        assert_eq!(got.stream_type, STREAM_TYPE_H264);
        assert_eq!(got.pts, Some(want.pts), "frame {i} seed {seed}");
        assert_eq!(got.dts, want.dts.filter(|&d| d != want.pts), "frame {i}");
        assert_eq!(got.keyframe, want.keyframe, "frame {i} seed {seed}");
        assert_eq!(got.data, want.data, "frame {i} seed {seed}");
        let first_packet = first_pes_packet(&stream, ranges[i].clone(), 0x100);
        assert_eq!(
            got.first_byte_us,
            chunk_time_us(chunk_of(&chunks, first_packet)),
            "frame {i} seed {seed}"
        );
        assert_eq!(
            got.last_byte_us,
            chunk_time_us(chunk_of(&chunks, ranges[i].end - 1)),
            "frame {i} seed {seed}"
        );
    }
    let stats = demux.stats();
    assert_eq!(stats.errors(), 0, "{stats:?}");
    assert_eq!(stats.frames, input.len() as u64);
    assert_eq!(stats.bytes, stream.len() as u64);
    assert_eq!(stats.packets, (stream.len() / PACKET_SIZE) as u64);
    let keyframes = input.iter().filter(|f| f.keyframe).count() as u64;
    assert_eq!(stats.pat_count, keyframes);
    assert_eq!(stats.pmt_count, keyframes);
}

#[test]
fn round_trip_real_clip_with_random_chunking() {
    let input = clip_frames();
    assert_eq!(input.len(), 10);
    assert_eq!(input.iter().filter(|f| f.keyframe).count(), 2);
    for seed in 0..50 {
        check_round_trip(&input, seed);
    }
}

#[test]
fn round_trip_synthetic_frames_with_random_chunking() {
    for seed in 0..20 {
        let mut rng = rng(1000 + seed);
        let input = synthetic_frames(&mut rng, 30, 70_000);
        check_round_trip(&input, seed);
    }
}

#[test]
fn demuxed_clip_keyframes_carry_sps() {
    let (stream, _) = mux_all(&clip_frames());
    let (frames, _) = demux_whole(&stream);
    let sps = lvt_media::h264::find_sps(&frames[0].data).expect("IDR carries an SPS");
    assert_eq!((sps.width, sps.height), (64, 64));
    assert!(frames[0].keyframe && frames[5].keyframe);
}

#[test]
fn frame_with_declared_length_is_emitted_with_its_last_packet() {
    let mut rng = rng(7);
    let mut input = synthetic_frames(&mut rng, 3, 2_000);
    input[1].data = vec![9; 1_000];
    let (stream, ranges) = mux_all(&input);
    let mut demux = TsDemuxer::new();
    // Feed everything up to the last byte of frame 1: it must come out without waiting for
    // frame 2's first packet.
    demux.handle_bytes(&stream[..ranges[1].end - 1], 5);
    assert_eq!(demux.poll_frame().map(|f| f.pts), Some(Some(input[0].pts)));
    assert!(demux.poll_frame().is_none());
    demux.handle_bytes(&stream[ranges[1].end - 1..ranges[1].end], 6);
    let f = demux.poll_frame().expect("frame 1 complete");
    assert_eq!(
        (f.pts, f.first_byte_us, f.last_byte_us),
        (Some(input[1].pts), 5, 6)
    );
}

#[test]
fn unbounded_pes_is_emitted_at_next_start_or_finish() {
    let mut rng = rng(8);
    let mut input = synthetic_frames(&mut rng, 2, 2_000);
    input[0].data = vec![7; 66_000];
    input[1].data = vec![8; 66_000];
    let (stream, ranges) = mux_all(&input);
    let mut demux = TsDemuxer::new();
    demux.handle_bytes(&stream[..ranges[0].end], 1);
    assert!(demux.poll_frame().is_none(), "length 0: end unknown yet");
    demux.handle_bytes(&stream[ranges[1].clone()], 2);
    assert_eq!(demux.poll_frame().map(|f| f.data.len()), Some(66_000));
    assert!(demux.poll_frame().is_none());
    demux.finish(3);
    let last = demux.poll_frame().expect("flushed at finish");
    assert_eq!(last.data.len(), 66_000);
    assert_eq!(demux.stats().truncated_frames, 0);
}

#[test]
fn finish_flushes_incomplete_frame_as_truncated_and_keeps_tables() {
    let input = clip_frames();
    let (stream, ranges) = mux_all(&input);
    let mut demux = TsDemuxer::new();
    // Segment 1 ends in the middle of frame 5, the second IDR (on a packet boundary).
    let cut = first_pes_packet(&stream, ranges[5].clone(), 0x100) + 2 * PACKET_SIZE;
    demux.handle_bytes(&stream[..cut], 1);
    demux.finish(2);
    let frames: Vec<Frame> = std::iter::from_fn(|| demux.poll_frame()).collect();
    assert_eq!(frames.len(), 6);
    assert!(frames[5].data.len() < input[5].data.len());
    assert_eq!(demux.stats().truncated_frames, 1);
    // Segment 2 starts with the rest of frame 5 (orphan packets) and continues without PAT.
    demux.handle_bytes(&stream[cut..], 3);
    demux.finish(4);
    let rest: Vec<Frame> = std::iter::from_fn(|| demux.poll_frame()).collect();
    assert_eq!(rest.len(), 4);
    assert_eq!(rest[0].pts, Some(input[6].pts));
    assert_eq!(rest[0].data, input[6].data);
    assert!(demux.stats().orphan_packets > 0);
    assert_eq!(demux.stats().cc_errors, 0);
}

/// Byte offsets of the packets on `pid` in a stream.
fn packets_on(stream: &[u8], pid: u16) -> Vec<usize> {
    (0..stream.len())
        .step_by(PACKET_SIZE)
        .filter(|&o| u16::from(stream[o + 1] & 0x1f) << 8 | u16::from(stream[o + 2]) == pid)
        .collect()
}

#[test]
fn lost_packet_is_a_cc_error_and_truncates_its_frame() {
    let input = clip_frames();
    let (mut stream, ranges) = mux_all(&input);
    // Drop the second packet of frame 0's PES (not the first: that one starts the frame).
    let first = first_pes_packet(&stream, ranges[0].clone(), 0x100);
    stream.drain(first + PACKET_SIZE..first + 2 * PACKET_SIZE);
    let (frames, demux) = demux_whole(&stream);
    assert_eq!(demux.stats().cc_errors, 1);
    assert_eq!(demux.stats().truncated_frames, 1);
    assert_eq!(frames.len(), input.len());
    assert_eq!(frames[0].data.len(), input[0].data.len() - 184);
    for (got, want) in frames.iter().zip(&input).skip(1) {
        assert_eq!(got.data, want.data);
    }
}

#[test]
fn duplicate_packet_is_dropped_without_error() {
    let input = clip_frames();
    let (mut stream, ranges) = mux_all(&input);
    let at = first_pes_packet(&stream, ranges[3].clone(), 0x100);
    let packet = stream[at..at + PACKET_SIZE].to_vec();
    stream.splice(at + PACKET_SIZE..at + PACKET_SIZE, packet);
    let (frames, demux) = demux_whole(&stream);
    assert_eq!(demux.stats().duplicate_packets, 1);
    assert_eq!(demux.stats().errors(), 0);
    assert_eq!(frames[3].data, input[3].data);
}

#[test]
fn reset_continuity_forgets_counters_between_segments() {
    let input = clip_frames();
    // Two segments written by independent muxers, each starting its counters at 0.
    let (seg_a, _) = mux_all(&input[..3]);
    let (seg_b, _) = mux_all(&input[5..]);
    assert_ne!(
        packets_on(&seg_a, 0x100).len() % 16,
        0,
        "the test needs a CC jump"
    );

    let mut demux = TsDemuxer::new();
    demux.handle_bytes(&seg_a, 1);
    demux.finish(1);
    demux.handle_bytes(&seg_b, 2);
    demux.finish(2);
    assert!(demux.stats().cc_errors > 0);

    let mut demux = TsDemuxer::new();
    demux.handle_bytes(&seg_a, 1);
    demux.finish(1);
    demux.reset_continuity();
    demux.handle_bytes(&seg_b, 2);
    demux.finish(2);
    assert_eq!(demux.stats().cc_errors, 0);
    assert_eq!(std::iter::from_fn(|| demux.poll_frame()).count(), 8);
}

#[test]
fn resyncs_after_garbage_between_and_inside_packets() {
    let input = clip_frames();
    let (clean, ranges) = mux_all(&input);
    let mut stream = clean.clone();
    // 3 bytes inserted inside the second packet of frame 5's PES, which breaks that packet's
    // alignment, and garbage with fake sync bytes between frames 3 and 4.
    let inside = first_pes_packet(&clean, ranges[5].clone(), 0x100) + PACKET_SIZE + 100;
    stream.splice(inside..inside, [0x47, 0x00, 0x47]);
    stream.splice(
        ranges[4].start..ranges[4].start,
        [0x47, 1, 2, 3, 0x47, 0, 0, 0x47, 9],
    );
    let mut rng = rng(99);
    let chunks = random_chunks(&mut rng, stream.len());
    let (frames, demux) = demux_chunked(&stream, &chunks);
    let stats = demux.stats();
    assert_eq!(stats.sync_losses, 2, "{stats:?}");
    // The 9 garbage bytes, and the 3 bytes pushed out of the damaged packet.
    assert_eq!(stats.discarded_bytes, 12, "{stats:?}");
    let pts: Vec<Option<u64>> = frames.iter().map(|f| f.pts).collect();
    assert_eq!(pts, input.iter().map(|f| Some(f.pts)).collect::<Vec<_>>());
    for (i, (got, want)) in frames.iter().zip(&input).enumerate() {
        if i != 5 {
            assert_eq!(got.data, want.data, "frame {i}");
        }
    }
    // Frame 5 keeps its length (the packet still carried 184 payload bytes) but not its bytes.
    assert_eq!(frames[5].data.len(), input[5].data.len());
    assert_ne!(frames[5].data, input[5].data);
}

#[test]
fn stream_not_starting_at_a_packet_boundary_resyncs() {
    let input = clip_frames();
    let (stream, _) = mux_all(&input);
    let (frames, demux) = demux_whole(&stream[50..]);
    assert_eq!(demux.stats().sync_losses, 1);
    // The first (cut) packet held the PAT; the next keyframe's PAT/PMT brings the program
    // back, so frames 5.. come out.
    assert_eq!(frames.first().and_then(|f| f.pts), Some(input[5].pts));
    assert!(demux.stats().unknown_pid_packets > 0);
}

#[test]
fn scrambled_and_bad_adaptation_packets_are_counted() {
    let input = clip_frames();
    let (mut stream, ranges) = mux_all(&input);
    let a = first_pes_packet(&stream, ranges[0].clone(), 0x100) + PACKET_SIZE;
    stream[a + 3] |= 0x80; // transport_scrambling_control = 10
    let b = first_pes_packet(&stream, ranges[5].clone(), 0x100);
    let b_last = ranges[5].end - PACKET_SIZE;
    assert!(b_last > b, "frame 5 spans several packets");
    // The last packet of a frame carries a stuffing adaptation field; make its length absurd.
    stream[b_last + 4] = 200;
    let (frames, demux) = demux_whole(&stream);
    let stats = demux.stats();
    assert_eq!(stats.scrambled_packets, 1);
    assert_eq!(stats.adaptation_field_errors, 1);
    assert_eq!(stats.cc_errors, 1, "the dropped packet leaves a gap");
    assert_eq!(stats.truncated_frames, 2);
    assert_eq!(frames.len(), input.len());
}
