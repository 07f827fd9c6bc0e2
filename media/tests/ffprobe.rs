//! The muxer's output must be accepted by ffprobe (the reference for what orchestrators and
//! ai-runner will accept): one H.264 stream, every packet with the PTS and keyframe flag it was
//! muxed with. ffprobe is required: without it this test fails rather than skipping, because a
//! silently skipped compatibility check is worse than a loud one.

mod common;

use common::*;

/// Runs `ffprobe -show_packets -show_streams` on `ts` via stdin; returns (exit ok, stdout,
/// stderr). A missing ffprobe fails the test with the reason: it is a required tool here.
fn ffprobe(ts: &[u8]) -> (bool, String, String) {
    let report = lvt_media::ffprobe::probe(ts, &["-show_packets", "-show_streams"])
        .unwrap_or_else(|e| panic!("{e}"));
    (report.success, report.stdout, report.stderr)
}

/// Values of `key=` lines inside `[SECTION]` blocks of ffprobe's default output.
fn section_values(out: &str, section: &str, key: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut inside = false;
    for line in out.lines() {
        if line == format!("[{section}]") {
            inside = true;
        } else if line == format!("[/{section}]") {
            inside = false;
        } else if inside && let Some(v) = line.strip_prefix(&format!("{key}=")) {
            values.push(v.to_string());
        }
    }
    values
}

#[test]
fn ffprobe_accepts_muxed_clip() {
    let mut frames = clip_frames();
    // Grow one frame past 64 KiB with a filler-data NAL unit (type 12, ignored by decoders) so
    // that the unbounded PES length path (PES_packet_length = 0) is checked too.
    frames[2].data.extend_from_slice(&[0, 0, 0, 1, 0x0c]);
    frames[2].data.extend(std::iter::repeat_n(0xff, 70_000));
    frames[2].data.push(0x80);
    let (ts, _) = mux_all(&frames);

    let (ok, out, err) = ffprobe(&ts);
    assert!(ok, "ffprobe failed: {err}");
    assert_eq!(err.trim(), "", "ffprobe reported problems");
    assert_eq!(section_values(&out, "STREAM", "codec_name"), vec!["h264"]);
    assert_eq!(section_values(&out, "STREAM", "width"), vec!["64"]);
    assert_eq!(section_values(&out, "STREAM", "height"), vec!["64"]);

    let pts = section_values(&out, "PACKET", "pts");
    let want: Vec<String> = frames.iter().map(|f| f.pts.to_string()).collect();
    assert_eq!(pts, want);
    let keys: Vec<bool> = section_values(&out, "PACKET", "flags")
        .iter()
        .map(|f| f.starts_with('K'))
        .collect();
    assert_eq!(keys, frames.iter().map(|f| f.keyframe).collect::<Vec<_>>());
    let sizes: Vec<usize> = section_values(&out, "PACKET", "size")
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(
        sizes,
        frames.iter().map(|f| f.data.len()).collect::<Vec<_>>()
    );
}

/// The loading overlay picture of the simulator ([`lvt_media::flat::FlatPicture`]) decodes in
/// FFmpeg to exactly what it claims, mid gray in every plane, for the IDR and for every repeat,
/// also at a size that needs cropping.
#[test]
fn ffmpeg_decodes_the_flat_overlay_picture_to_mid_gray() {
    use lvt_media::flat::FlatPicture;
    use lvt_media::ts::{MuxConfig, MuxFrame, TsMuxer};
    use std::io::Write;
    use std::process::{Command, Stdio};

    for (w, h) in [(512u32, 512u32), (200, 120)] {
        let flat = FlatPicture::new(w, h).unwrap();
        let mut muxer = TsMuxer::new(MuxConfig::default());
        let mut ts = Vec::new();
        let frames = 20u32;
        for i in 0..frames {
            let data = if i == 0 { flat.idr(1) } else { flat.repeat(i) };
            muxer.mux_frame(
                &MuxFrame {
                    pts: 90_000 + u64::from(i) * 3_000,
                    dts: None,
                    keyframe: i == 0,
                    data: &data,
                },
                &mut ts,
            );
        }
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-f", "mpegts", "-i", "pipe:0"])
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg is required (apt-get install ffmpeg)");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&ts));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{w}x{h}: {stderr}");
        assert_eq!(stderr.trim(), "", "{w}x{h}: ffmpeg reported problems");
        let picture = (w * h * 3 / 2) as usize;
        assert_eq!(
            out.stdout.len(),
            picture * frames as usize,
            "{w}x{h}: frames decoded"
        );
        assert!(
            out.stdout.iter().all(|&b| b == 128),
            "{w}x{h}: every sample mid gray"
        );
    }
}

#[test]
fn ffprobe_reads_the_opus_track_beside_the_video() {
    use lvt_media::ts::{MuxConfig, MuxFrame, TsMuxer};
    // A 20 ms CELT packet of silence, as lvt's WHIP publisher sends: the Opus track the relay
    // muxes, interleaved with the video by timestamp.
    const SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];
    let frames = clip_frames();
    let mut mux = TsMuxer::new(MuxConfig::default().with_opus(2));
    let mut ts = Vec::new();
    let first = frames[0].pts;
    let end = frames.last().unwrap().pts + 9000;
    let mut audio_pts = first;
    let mut audio = Vec::new();
    for frame in &frames {
        while audio_pts < frame.pts {
            mux.mux_opus(audio_pts, &SILENCE, &mut ts).unwrap();
            audio.push(audio_pts);
            audio_pts += 1800;
        }
        mux.mux_frame(
            &MuxFrame {
                pts: frame.pts,
                dts: frame.dts,
                keyframe: frame.keyframe,
                data: &frame.data,
            },
            &mut ts,
        );
    }
    while audio_pts < end {
        mux.mux_opus(audio_pts, &SILENCE, &mut ts).unwrap();
        audio.push(audio_pts);
        audio_pts += 1800;
    }

    let (ok, out, err) = ffprobe(&ts);
    assert!(ok, "ffprobe failed: {err}");
    assert_eq!(err.trim(), "", "ffprobe reported problems");
    assert_eq!(
        section_values(&out, "STREAM", "codec_name"),
        vec!["h264", "opus"]
    );
    assert_eq!(section_values(&out, "STREAM", "channels"), vec!["2"]);
    assert_eq!(section_values(&out, "STREAM", "sample_rate"), vec!["48000"]);
    // Every packet of each stream, with the PTS it was muxed with and its payload whole.
    let mut video_pts = Vec::new();
    let mut audio_seen = Vec::new();
    let mut inside = false;
    let (mut index, mut pts, mut size) = (String::new(), String::new(), String::new());
    for line in out.lines() {
        match line {
            "[PACKET]" => inside = true,
            "[/PACKET]" => {
                inside = false;
                if index == "1" {
                    assert_eq!(size, SILENCE.len().to_string());
                    audio_seen.push(pts.parse::<u64>().unwrap());
                } else {
                    video_pts.push(pts.parse::<u64>().unwrap());
                }
            }
            _ if inside => {
                if let Some(v) = line.strip_prefix("stream_index=") {
                    index = v.to_string();
                } else if let Some(v) = line.strip_prefix("pts=") {
                    pts = v.to_string();
                } else if let Some(v) = line.strip_prefix("size=") {
                    size = v.to_string();
                }
            }
            _ => {}
        }
    }
    assert_eq!(video_pts, frames.iter().map(|f| f.pts).collect::<Vec<_>>());
    assert_eq!(audio_seen, audio);
}
