//! The floor of `lvt bench --floor`: the same number of streams doing nothing but their media
//! I/O, measured in the same run, so that the tester's own figure has a baseline beside it.
//!
//! Each floor stream is one TCP connection over loopback to an echo peer (a child process,
//! `lvt bench --echo-peer`) that writes each frame of the clip, muxed to MPEG-TS as a session
//! muxes it, when it is due (`fps` a second, the streams' phases spread over one frame
//! interval), and reads back what the peer returns. No HTTP, no trickle, no demuxing, no
//! measurement: what is left is the kernel's TCP work over loopback, the runtime's timers and
//! wakeups, one write and at least one read per frame. Two shapes ([`Shape`]): one task per
//! stream that wakes for each of its frames (as lvt's sessions are built), and one pacer for all
//! streams that wakes once a millisecond and writes every frame due (the fewest wakeups a
//! sender can have without moving frames off their times by more than a millisecond). A tester
//! that sends each frame when it is due (and takes its send time then) cannot do with less than
//! the paced floor, so a CPU target below it is out of reach of any change to lvt's own code
//! (docs/benchmarks.md, "The floor").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lvt_media::ts::{MuxConfig, MuxFrame, TsMuxer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::encode::Clip;

/// How the floor's streams are woken to write their frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// One task per stream, woken by its own timer for each frame and by its socket for each
    /// read: the shape of lvt's sessions.
    PerStream,
    /// One pacer task for all streams, woken every [`PACER_TICK`], writing every frame due;
    /// one reader task per stream.
    Paced,
}

/// The paced floor's tick: frames leave at most this late.
pub const PACER_TICK: Duration = Duration::from_millis(1);

/// The floor's figures for one ramp step, both shapes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Floor {
    pub per_stream: FloorFigures,
    pub paced: FloorFigures,
}

/// The floor's figures for one shape (same stream count and hold as the step).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FloorFigures {
    /// The bench process's CPU (user + system) per stream-second while the floor streams ran.
    pub cpu_us_per_stream_second: f64,
    /// The system (kernel) part of it.
    pub sys_us_per_stream_second: f64,
    /// The echo peer's CPU per stream-second.
    pub echo_cpu_us_per_stream_second: Option<f64>,
    /// Bytes written by all floor streams.
    pub bytes_written: u64,
    /// Bytes the echo peer returned: equal to `bytes_written` when nothing was lost.
    pub bytes_returned: u64,
}

/// The size of each frame of `clip` as a session's muxer writes it (PES header, TS packets,
/// PAT and PMT before a keyframe), in clip order.
pub fn frame_sizes(clip: &Clip) -> Vec<usize> {
    let mut mux = TsMuxer::new(MuxConfig::default());
    let mut out = Vec::new();
    clip.frames
        .iter()
        .map(|f| {
            out.clear();
            let range = mux.mux_frame(
                &MuxFrame {
                    pts: 0,
                    dts: None,
                    keyframe: f.keyframe,
                    data: &f.data,
                },
                &mut out,
            );
            range.len()
        })
        .collect()
}

/// Returns every byte each connection sends until it closes its side, then closes too.
pub async fn serve_echo(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (mut socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if socket.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// Bytes that went out and came back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub written: u64,
    pub returned: u64,
}

/// Runs `streams` floor streams of `shape` against the echo peer at `peer`, each writing
/// `hold x fps` frames of the sizes in `sizes` (in order, looping) when they are due, and waits
/// until each has read back all it wrote (or its connection failed).
pub async fn drive(
    peer: SocketAddr,
    shape: Shape,
    streams: u32,
    hold: Duration,
    fps: u32,
    sizes: Arc<[usize]>,
) -> std::io::Result<Totals> {
    let period = Duration::from_nanos(1_000_000_000 / u64::from(fps.max(1)));
    let writes = Writes {
        period,
        count: (hold.as_secs_f64() * f64::from(fps)).round() as u64,
        zeros: vec![0u8; sizes.iter().copied().max().unwrap_or(0)].into(),
        sizes,
    };
    let mut sockets = Vec::with_capacity(streams as usize);
    for _ in 0..streams {
        let socket = TcpStream::connect(peer).await?;
        socket.set_nodelay(true)?;
        sockets.push(socket);
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let first = |i: usize| start + period.mul_f64(i as f64 / f64::from(streams.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    match shape {
        Shape::PerStream => {
            for (i, socket) in sockets.into_iter().enumerate() {
                tasks.spawn(stream(socket, first(i), writes.clone()));
            }
        }
        Shape::Paced => {
            let mut writers = Vec::with_capacity(sockets.len());
            for (i, socket) in sockets.into_iter().enumerate() {
                let (reader, writer) = socket.into_split();
                tasks.spawn(read_back(reader));
                writers.push(Paced {
                    writer,
                    due: first(i),
                    sent: 0,
                    written: 0,
                });
            }
            tasks.spawn(pace(writers, start, writes));
        }
    }
    let mut totals = Totals::default();
    while let Some(done) = tasks.join_next().await {
        let t = done.map_err(std::io::Error::other)??;
        totals.written += t.written;
        totals.returned += t.returned;
    }
    Ok(totals)
}

/// What each floor stream writes: `count` frames, one every `period`, of the clip's `sizes` in
/// order (looping).
#[derive(Clone)]
struct Writes {
    period: Duration,
    count: u64,
    sizes: Arc<[usize]>,
    /// As many zero bytes as the largest frame.
    zeros: Arc<[u8]>,
}

impl Writes {
    /// The bytes of frame `k`.
    fn frame(&self, k: u64) -> &[u8] {
        let size = self.sizes.get(k as usize % self.sizes.len().max(1));
        &self.zeros[..size.copied().unwrap_or(0)]
    }
}

/// One floor stream: one task, as one session is one driver loop.
async fn stream(
    mut socket: TcpStream,
    first: tokio::time::Instant,
    writes: Writes,
) -> std::io::Result<Totals> {
    let mut ticks = tokio::time::interval_at(first, writes.period);
    let mut buf = vec![0u8; 64 * 1024];
    let mut t = Totals::default();
    let (mut reader, mut writer) = socket.split();
    let mut k = 0u64;
    while k < writes.count {
        tokio::select! {
            _ = ticks.tick() => {
                let frame = writes.frame(k);
                writer.write_all(frame).await?;
                t.written += frame.len() as u64;
                k += 1;
            }
            read = reader.read(&mut buf) => match read? {
                0 => return Ok(t),
                n => t.returned += n as u64,
            },
        }
    }
    writer.shutdown().await?;
    while t.returned < t.written {
        match reader.read(&mut buf).await? {
            0 => break,
            n => t.returned += n as u64,
        }
    }
    Ok(t)
}

/// One stream's sending side under the pacer.
struct Paced {
    writer: tokio::net::tcp::OwnedWriteHalf,
    due: tokio::time::Instant,
    sent: u64,
    written: u64,
}

/// The pacer: wakes every [`PACER_TICK`] and writes every frame due, then closes the streams'
/// sending sides. Its totals carry what was written; the readers', what came back.
async fn pace(
    mut streams: Vec<Paced>,
    start: tokio::time::Instant,
    writes: Writes,
) -> std::io::Result<Totals> {
    let mut ticks = tokio::time::interval_at(start, PACER_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut left = streams.len();
    while left > 0 {
        let now = ticks.tick().await;
        for s in streams.iter_mut().filter(|s| s.sent < writes.count) {
            while s.sent < writes.count && s.due <= now {
                let frame = writes.frame(s.sent);
                s.writer.write_all(frame).await?;
                s.written += frame.len() as u64;
                s.sent += 1;
                s.due += writes.period;
            }
            if s.sent == writes.count {
                s.writer.shutdown().await?;
                left -= 1;
            }
        }
    }
    Ok(Totals {
        written: streams.iter().map(|s| s.written).sum(),
        returned: 0,
    })
}

/// A paced stream's receiving side: counts what comes back until the peer closes.
async fn read_back(mut reader: tokio::net::tcp::OwnedReadHalf) -> std::io::Result<Totals> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut t = Totals::default();
    loop {
        match reader.read(&mut buf).await? {
            0 => return Ok(t),
            n => t.returned += n as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_frame_goes_out_when_due_and_comes_back_in_both_shapes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        tokio::spawn(serve_echo(listener));
        for shape in [Shape::PerStream, Shape::Paced] {
            let sizes: Arc<[usize]> = vec![3_760, 188, 1_128].into();
            let began = std::time::Instant::now();
            let totals = drive(peer, shape, 3, Duration::from_millis(500), 30, sizes)
                .await
                .unwrap();
            // 15 frames per stream: sizes 3,760, 188 and 1,128 five times each.
            assert_eq!(totals.written, 3 * 5 * (3_760 + 188 + 1_128), "{shape:?}");
            assert_eq!(totals.returned, totals.written, "{shape:?}");
            // Written when due, not at once: the 15th frame is due 14 intervals after the
            // first.
            assert!(
                began.elapsed() >= Duration::from_millis(14 * 33),
                "{shape:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_peer_that_is_not_there_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        drop(listener);
        let sizes: Arc<[usize]> = vec![188].into();
        for shape in [Shape::PerStream, Shape::Paced] {
            assert!(
                drive(
                    peer,
                    shape,
                    2,
                    Duration::from_millis(100),
                    30,
                    sizes.clone()
                )
                .await
                .is_err()
            );
        }
    }

    #[test]
    fn frame_sizes_are_whole_ts_packets_and_keyframes_carry_the_tables() {
        let clip = crate::encode::encode_clip(&crate::encode::ClipConfig::default()).unwrap();
        let sizes = frame_sizes(&clip);
        assert_eq!(sizes.len(), clip.frames.len());
        for (size, frame) in sizes.iter().zip(&clip.frames) {
            assert_eq!(size % 188, 0);
            assert!(*size >= frame.data.len());
            if frame.keyframe {
                // PAT and PMT go in front of a keyframe.
                assert!(*size >= frame.data.len() + 2 * 188);
            }
        }
    }
}
