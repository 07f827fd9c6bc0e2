//! Tests of the clip encoder and replayer: structure of the encoded clip, what a demuxer reads
//! back from replayed segments, and ffprobe's verdict on them.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use lvt_media::h264;
use lvt_media::ts::{MuxConfig, PACKET_SIZE, STREAM_TYPE_H264, TsDemuxer, TsMuxer};

use super::*;

/// The default clip, encoded once for all tests in this module.
fn default_clip() -> Arc<Clip> {
    static CLIP: OnceLock<Arc<Clip>> = OnceLock::new();
    CLIP.get_or_init(|| {
        let started = Instant::now();
        let clip = encode_clip(&ClipConfig::default()).expect("default clip encodes");
        println!("encoded default clip in {:?}", started.elapsed());
        Arc::new(clip)
    })
    .clone()
}

#[test]
fn default_config_is_the_pipeline_default() {
    let c = ClipConfig::default();
    assert_eq!(
        (
            c.width,
            c.height,
            c.fps,
            c.segment_ms,
            c.segments,
            c.bitrate_kbps
        ),
        (512, 512, 30, 1000, 4, 1000)
    );
}

#[test]
fn encodes_default_clip_with_idr_at_each_segment_start() {
    let clip = default_clip();
    assert_eq!(clip.frames_per_segment(), 30);
    assert_eq!(clip.segment_count(), 4);
    assert_eq!(clip.frames.len(), 120);
    for (i, f) in clip.frames.iter().enumerate() {
        assert_eq!(f.index as usize, i);
        assert_eq!(f.keyframe, i % 30 == 0, "frame {i}");
        assert_eq!(h264::access_unit_is_idr(&f.data), i % 30 == 0, "frame {i}");
        // Annex B: starts with a start code.
        assert!(f.data.starts_with(&[0, 0, 0, 1]) || f.data.starts_with(&[0, 0, 1]));
    }
    let sps = h264::find_sps(&clip.frames[30].data).expect("every IDR repeats the SPS");
    assert_eq!((sps.width, sps.height), (512, 512));
    // Zero latency, no B-frames: output order is input order (checked via index above). The
    // size is within 3x of 1 Mbit/s over the clip's 4 seconds (500 kB).
    let bytes: usize = clip.frames.iter().map(|f| f.data.len()).sum();
    let target = 1_000_000 / 8 * 4;
    assert!(bytes > target / 3 && bytes < target * 3, "{bytes} bytes");
}

#[test]
fn rejects_invalid_configs() {
    for bad in [
        ClipConfig {
            width: 511,
            ..ClipConfig::default()
        },
        ClipConfig {
            height: 0,
            ..ClipConfig::default()
        },
        ClipConfig {
            fps: 0,
            ..ClipConfig::default()
        },
        ClipConfig {
            fps: 25,
            segment_ms: 1_100,
            ..ClipConfig::default()
        },
        ClipConfig {
            segments: 0,
            ..ClipConfig::default()
        },
        ClipConfig {
            bitrate_kbps: 0,
            ..ClipConfig::default()
        },
    ] {
        assert!(
            matches!(encode_clip(&bad), Err(EncodeError::InvalidConfig(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn small_odd_rate_clip_encodes() {
    let config = ClipConfig {
        width: 64,
        height: 48,
        fps: 24,
        segment_ms: 500,
        segments: 2,
        bitrate_kbps: 200,
    };
    let clip = encode_clip(&config).expect("encodes");
    assert_eq!(clip.frames_per_segment(), 12);
    assert_eq!(clip.frames.len(), 24);
    let sps = h264::find_sps(&clip.frames[12].data).expect("SPS");
    assert_eq!((sps.width, sps.height), (64, 48));
}

#[test]
fn frames_muxed_one_at_a_time_are_the_whole_segments_bytes() {
    // A publisher that muxes each frame as it writes it (the probe's driver) must send exactly
    // the bytes of the whole-segment mux: same PTS, same continuity counters, across the loop.
    let clip = default_clip();
    let mut whole = Replayer::new(Arc::clone(&clip), 1_234);
    let mut planned = Replayer::new(Arc::clone(&clip), 1_234);
    let mut muxer = TsMuxer::new(MuxConfig::default());
    for _ in 0..u64::from(clip.segment_count()) * 2 + 1 {
        let segment = whole.next_segment();
        let plan = planned.plan_segment();
        assert_eq!(plan.seq, segment.seq);
        assert_eq!(plan.frames.len(), segment.frames.len());
        let mut bytes = Vec::new();
        for (i, (frame, planned)) in segment.frames.iter().zip(&plan.frames).enumerate() {
            assert_eq!(
                (planned.pts, planned.keyframe, planned.offset_us),
                (frame.pts, frame.keyframe, frame.offset_us)
            );
            let data = plan
                .mux_frame(i, &mut muxer)
                .expect("a frame of the segment");
            assert_eq!(data, segment.data.slice(frame.range.clone()), "frame {i}");
            bytes.extend_from_slice(&data);
        }
        assert_eq!(bytes, segment.data);
        assert!(plan.mux_frame(plan.frames.len(), &mut muxer).is_none());
    }
}

#[test]
fn replayed_segments_demux_with_continuous_pts_across_loops() {
    let clip = default_clip();
    let start_pts = 900_000;
    let mut replayer = Replayer::new(Arc::clone(&clip), start_pts);
    let mut demux = TsDemuxer::new();
    let mut k = 0u64;
    // Two full loops plus one segment: PTS, keyframes and CC must carry across the wrap.
    for seq in 0..9u64 {
        let segment = replayer.next_segment();
        assert_eq!(segment.seq, seq);
        assert_eq!(segment.frames.len(), 30);
        assert_eq!(segment.data.len() % PACKET_SIZE, 0);
        assert_eq!(segment.data[0], 0x47);
        // The segment starts with PAT (PID 0).
        assert_eq!(segment.data[1] & 0x1f, 0);
        assert_eq!(segment.data[2], 0);
        assert_eq!(segment.frames[0].range.start, 0);
        assert_eq!(
            segment.frames.last().map(|f| f.range.end),
            Some(segment.data.len())
        );

        demux.handle_bytes(&segment.data, seq);
        demux.finish(seq);
        let frames: Vec<_> = std::iter::from_fn(|| demux.poll_frame()).collect();
        assert_eq!(frames.len(), 30, "segment {seq}");
        for (i, (got, sent)) in frames.iter().zip(&segment.frames).enumerate() {
            let want_pts = start_pts + k * 3_000;
            assert_eq!(sent.pts, want_pts);
            assert_eq!(got.pts, Some(want_pts), "segment {seq} frame {i}");
            assert_eq!(got.keyframe, i == 0);
            assert_eq!(sent.keyframe, i == 0);
            assert_eq!(sent.offset_us, i as u64 * 1_000_000 / 30);
            assert_eq!(got.stream_type, STREAM_TYPE_H264);
            let clip_frame = &clip.frames[(seq % 4) as usize * 30 + i];
            assert_eq!(got.data, clip_frame.data);
            k += 1;
        }
        let sps = h264::find_sps(&frames[0].data).expect("keyframe carries SPS");
        assert_eq!((sps.width, sps.height), (512, 512));
    }
    let stats = demux.stats();
    assert_eq!(stats.errors(), 0, "{stats:?}");
    assert_eq!(stats.cc_errors, 0);
    assert_eq!(stats.frames, 270);
}

#[test]
fn pts_does_not_drift_when_90khz_is_not_a_multiple_of_fps() {
    let clip = Arc::new(Clip {
        config: ClipConfig {
            fps: 7,
            segment_ms: 1_000,
            segments: 1,
            ..ClipConfig::default()
        },
        frames: (0..7)
            .map(|i| EncodedFrame {
                index: i,
                keyframe: i == 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x09, 0xf0]),
            })
            .collect(),
    });
    let mut replayer = Replayer::new(clip, 0);
    let mut last = 0;
    for _ in 0..1_000 {
        last = replayer
            .next_segment()
            .frames
            .last()
            .map(|f| f.pts)
            .unwrap_or(0);
    }
    // Frame 6999 at 7 fps is at 999.857 s: exactly 6999 * 90000 / 7 = 89_987_142 ticks.
    assert_eq!(last, 6_999 * 90_000 / 7);
}

/// Runs ffprobe on `ts` (via stdin) and returns its stdout; panics if ffprobe is missing or
/// fails.
fn ffprobe(ts: &[u8]) -> String {
    let report = lvt_media::ffprobe::probe(ts, &["-show_packets", "-show_streams"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.success, "ffprobe failed: {}", report.stderr);
    assert_eq!(report.stderr.trim(), "", "ffprobe reported problems");
    report.stdout
}

#[test]
fn ffprobe_accepts_concatenated_replayed_segments() {
    let clip = default_clip();
    let mut replayer = Replayer::new(clip, 90_000);
    // Five segments: a whole loop and the first segment again.
    let mut ts = Vec::new();
    for _ in 0..5 {
        ts.extend_from_slice(&replayer.next_segment().data);
    }
    let out = ffprobe(&ts);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"codec_name=h264"), "{out}");
    assert!(lines.contains(&"width=512") && lines.contains(&"height=512"));
    assert!(lines.contains(&"has_b_frames=0"));
    let pts: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("pts="))
        .map(|v| v.parse().expect("numeric pts"))
        .collect();
    let want: Vec<u64> = (0..150).map(|k| 90_000 + k * 3_000).collect();
    assert_eq!(pts, want);
    let keys = lines.iter().filter(|l| l.starts_with("flags=K")).count();
    assert_eq!(keys, 5);
}

#[test]
fn replaying_is_cheap() {
    let clip = default_clip();
    let mut replayer = Replayer::new(clip, 0);
    let segments = 200;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..segments {
        bytes += replayer.next_segment().data.len();
    }
    let per_segment = started.elapsed() / segments;
    // Printed, not asserted: timing depends on the machine and build profile.
    println!(
        "replay: {per_segment:?} per 1 s segment ({} KiB), i.e. one core can feed ~{} streams",
        bytes / segments as usize / 1024,
        (1.0 / per_segment.as_secs_f64().max(1e-9)) as u64
    );
    assert_eq!(replayer.next_seq(), u64::from(segments));
}

#[test]
fn decoded_frames_carry_their_frame_number() {
    use ffmpeg_next as ffmpeg;

    let clip = default_clip();
    let codec = ffmpeg::decoder::find(ffmpeg::codec::Id::H264).expect("h264 decoder");
    let mut decoder = ffmpeg::codec::context::Context::new_with_codec(codec)
        .decoder()
        .video()
        .expect("decoder opens");
    let mut decoded = ffmpeg::frame::Video::empty();
    let mut numbers = Vec::new();
    let mut receive = |decoder: &mut ffmpeg::decoder::Video, numbers: &mut Vec<u32>| {
        while decoder.receive_frame(&mut decoded).is_ok() {
            let code = pattern::read_code(
                decoded.data(0),
                decoded.stride(0),
                decoded.width() as usize,
                decoded.height() as usize,
            );
            numbers.push(code.expect("512x512 holds the code"));
        }
    };
    // The first 40 frames cover a segment boundary.
    for f in &clip.frames[..40] {
        decoder
            .send_packet(&ffmpeg::Packet::copy(&f.data))
            .expect("decoder accepts the access unit");
        receive(&mut decoder, &mut numbers);
    }
    decoder.send_eof().expect("eof");
    receive(&mut decoder, &mut numbers);
    assert_eq!(numbers, (0..40).collect::<Vec<u32>>());
}

/// The loading overlay check's reader: the clip's pictures, decoded one at a time in stream
/// order, show colour and their frame number at once (no decoder delay); the simulator's
/// overlay (flat gray, an IDR then repeats) shows neither, and a gray picture is not frame 0;
/// the clip resumes after it at its next IDR; a fresh reader answers nothing before a keyframe.
#[test]
fn the_picture_reader_tells_the_overlay_from_the_clip_frame_by_frame() {
    use lvt_gateway::session::PictureLook;
    use lvt_media::flat::FlatPicture;

    let clip = default_clip();
    let mut reader = PictureReader::new().expect("h264 decoder");
    for (i, f) in clip.frames[..40].iter().enumerate() {
        let look = reader.look(&f.data);
        assert_eq!(
            look,
            Some(PictureLook {
                colourless: false,
                code: Some(i as u32),
                beacon: Some(i < 30),
                marker: Some(u8::from(i >= 30)),
            }),
            "clip frame {i}"
        );
    }
    let flat = FlatPicture::new(512, 512).unwrap();
    for i in 0..10 {
        let au = if i == 0 { flat.idr(1) } else { flat.repeat(i) };
        assert_eq!(
            reader.look(&au),
            Some(PictureLook {
                colourless: true,
                code: None,
                beacon: None,
                marker: None,
            }),
            "overlay frame {i}"
        );
    }
    // Back to the clip at its next IDR (frame 60, the third segment's first).
    for (i, f) in clip.frames.iter().enumerate().skip(60).take(5) {
        let look = reader.look(&f.data).expect("decodes after the IDR");
        assert!(!look.colourless, "clip frame {i}");
        assert_eq!(look.code, Some(i as u32));
    }

    let mut fresh = PictureReader::new().unwrap();
    assert_eq!(fresh.look(&clip.frames[5].data), None, "a P-frame first");
    assert!(fresh.look(&clip.frames[30].data).is_some(), "then an IDR");
}
