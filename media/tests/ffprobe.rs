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
