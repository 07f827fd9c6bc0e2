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
