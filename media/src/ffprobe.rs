//! FFmpeg's own opinion of a TS stream: runs `ffprobe` on bytes held in memory.
//!
//! lvt writes MPEG-TS with its own muxer, so the question "would a real player accept this?"
//! is answered by FFmpeg's demuxer, not by our own. Tests of every crate that produces TS (the
//! muxer, the replayed input clip, the simulator's output) ask it through this one function.

use std::io::Write;
use std::process::{Command, Stdio};

/// What ffprobe printed and whether it exited successfully.
#[derive(Debug, Clone)]
pub struct Report {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Why ffprobe could not give an answer at all.
#[derive(Debug, thiserror::Error)]
pub enum FfprobeError {
    #[error(
        "ffprobe could not be started ({0}); install FFmpeg (Debian: apt-get install ffmpeg) \
         so that ffprobe is on PATH"
    )]
    Spawn(#[source] std::io::Error),
    #[error("ffprobe did not run to completion: {0}")]
    Wait(#[source] std::io::Error),
}

/// Runs `ffprobe -v error <args> -i pipe:0` with `ts` on its standard input.
pub fn probe(ts: &[u8], args: &[&str]) -> Result<Report, FfprobeError> {
    let mut child = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-i", "pipe:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(FfprobeError::Spawn)?;
    let writer = child.stdin.take().map(|mut stdin| {
        let input = ts.to_vec();
        // Writing from another thread keeps a full stdout pipe from deadlocking the writer;
        // ffprobe may stop reading early on bad input, which its exit status reports.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let output = child.wait_with_output().map_err(FfprobeError::Wait)?;
    if let Some(writer) = writer {
        // The thread only writes to a pipe; a panic there cannot carry information we need.
        let _ = writer.join();
    }
    Ok(Report {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}
