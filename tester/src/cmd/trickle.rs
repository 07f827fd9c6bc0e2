//! `lvt trickle`: trickle protocol tools for debugging a real node. It owns the subcommands'
//! arguments and the operator-facing loops on top of the protocol in `lvt_wire::trickle`:
//! a standalone trickle server, publishing a TS file or stdin at its real-time pace, and
//! subscribing to a channel into a file or stdout.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::pin;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Subcommand;
use lvt_media::ts::{PTS_HZ, PTS_MASK, Segmenter, TsSegment};
use lvt_wire::http1::serve_connection;
use lvt_wire::trickle::{
    SegmentWriter, SubscriberStats, TrickleConfig, TrickleError, TricklePublisher, TrickleServer,
    TrickleSubscriber,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::common::{CliError, EXIT_OK};
use crate::probe;
use crate::shutdown::ctrl_c_token;

#[derive(Debug, Subcommand)]
pub enum TrickleCommand {
    /// Run a trickle server (go-livepeer semantics) on plain HTTP/1.1.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8935")]
        listen: SocketAddr,
        /// Create channels on first publish (orchestrators do not).
        #[arg(long)]
        autocreate: bool,
    },
    /// Publish an MPEG-TS file (or - for stdin) to a channel, one segment per GOP, at real-time pace.
    Pub {
        /// The channel URL, e.g. http://host:port/ai/trickle/abcd1234.
        channel_url: String,
        /// The TS file to publish, or - for stdin.
        file: String,
    },
    /// Subscribe to a channel and write what arrives to a file (or stdout).
    Sub {
        /// The channel URL, e.g. https://host:port/ai/trickle/abcd1234-out.
        channel_url: String,
        /// Output file; stdout when omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// Runs one `lvt trickle` subcommand until it ends (or Ctrl-C stops a server).
pub async fn run(cmd: TrickleCommand) -> Result<u8, CliError> {
    let cancel = ctrl_c_token();
    match cmd {
        TrickleCommand::Serve { listen, autocreate } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot listen on {listen}: {e}")))?;
            let local = listener
                .local_addr()
                .map_err(|e| CliError::Failed(e.into()))?;
            eprintln!("lvt: trickle server on http://{local}/ai/trickle/ (Ctrl-C stops it)");
            serve(
                listener,
                autocreate,
                async move { cancel.cancelled().await },
            )
            .await?;
        }
        TrickleCommand::Pub { channel_url, file } => {
            let http = probe::http_client().map_err(|e| CliError::Failed(e.into()))?;
            let progress = |p: &PubProgress| {
                eprintln!(
                    "lvt: segment {} {} bytes, {} frames{}",
                    p.seq,
                    p.bytes,
                    p.frames,
                    if p.confirmed { "" } else { " (dropped)" }
                );
            };
            let summary = if file == "-" {
                publish_file(http, &channel_url, tokio::io::stdin(), progress).await?
            } else {
                let f = tokio::fs::File::open(&file)
                    .await
                    .map_err(|e| CliError::Usage(format!("cannot open {file}: {e}")))?;
                publish_file(http, &channel_url, f, progress).await?
            };
            eprintln!(
                "lvt: published {} segments ({} bytes) in {} ms; {} dropped, {} retried",
                summary.segments,
                summary.bytes,
                summary.elapsed_ms,
                summary.dropped_segments,
                summary.retries
            );
        }
        TrickleCommand::Sub {
            channel_url,
            output,
        } => {
            let http = probe::http_client().map_err(|e| CliError::Failed(e.into()))?;
            let summary = match output {
                Some(path) => {
                    let f = tokio::fs::File::create(&path).await.map_err(|e| {
                        CliError::Usage(format!("cannot create {}: {e}", path.display()))
                    })?;
                    subscribe_to(http, &channel_url, f).await?
                }
                None => subscribe_to(http, &channel_url, tokio::io::stdout()).await?,
            };
            eprintln!(
                "lvt: received {} segments ({} bytes); {} skipped to the live edge, {} errors",
                summary.segments, summary.bytes, summary.gaps, summary.errors
            );
        }
    }
    Ok(EXIT_OK)
}

/// Consecutive failed segments (or reads) after which a command gives up.
const MAX_CONSECUTIVE_ERRORS: u32 = 5;
/// How long in-flight requests get to finish after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs a plain-HTTP/1.1 trickle server on `listener` until `shutdown` completes. At shutdown
/// every channel is closed, so blocked readers get `Lp-Trickle-Closed`.
pub async fn serve(
    listener: TcpListener,
    autocreate: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let server = TrickleServer::new(TrickleConfig {
        autocreate,
        ..TrickleConfig::default()
    });
    let sweeper = server.spawn_sweeper();
    let router = server.router();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    tracing::info!(message = "Trickle server listening.", addr = ?listener.local_addr().ok(), autocreate);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    // Segments trickle out in small writes; Nagle would hold them back.
                    let _ = socket.set_nodelay(true);
                    let router = router.clone();
                    let mut stop = stop_rx.clone();
                    connections.spawn(async move {
                        let stopped = async move {
                            let _ = stop.wait_for(|stopped| *stopped).await;
                        };
                        if let Err(error) = serve_connection(socket, router, stopped).await {
                            tracing::debug!(message = "Trickle connection failed.", %peer, %error);
                        }
                    });
                }
                Err(error) => {
                    // Usually descriptor exhaustion; pausing keeps this from spinning.
                    tracing::warn!(message = "Accepting a connection failed.", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    let _ = stop_tx.send(true);
    for name in server.channel_names() {
        server.delete_channel(&name);
    }
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drain).await;
    connections.abort_all();
    sweeper.abort();
    tracing::info!(message = "Trickle server stopped.");
    Ok(())
}

/// Progress of [`publish_file`], reported after each segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubProgress {
    pub seq: i64,
    pub bytes: u64,
    /// Video frames in the segment.
    pub frames: usize,
    /// Whether the server confirmed the segment (false: it was dropped).
    pub confirmed: bool,
}

/// Totals of [`publish_file`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PubSummary {
    /// Segments the server confirmed.
    pub segments: u64,
    pub bytes: u64,
    /// Segments dropped after a failure.
    pub dropped_segments: u64,
    /// Segment requests retried because nothing had been sent yet.
    pub retries: u64,
    /// Wall-clock time from the first byte sent to the end.
    pub elapsed_ms: u64,
}

/// Publishes an MPEG-TS stream to `channel_url`, one keyframe-aligned segment per POST, each
/// frame's bytes sent when its PTS comes due relative to the stream's first PTS (so a file is
/// sent at real-time speed). At the end of input the channel is closed with DELETE.
///
/// Segments are cut by [`Segmenter`], which completes a segment when it sees the next
/// keyframe: live input is therefore sent one GOP behind.
pub async fn publish_file(
    client: reqwest::Client,
    channel_url: &str,
    mut input: impl AsyncRead + Unpin,
    mut progress: impl FnMut(&PubProgress),
) -> anyhow::Result<PubSummary> {
    let mut publisher = TricklePublisher::new(client, channel_url);
    let mut segmenter = Segmenter::new();
    let mut pacer = Pacer::default();
    let mut consecutive_errors = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    let mut input_done = false;
    while !input_done {
        let n = input.read(&mut buf).await.context("reading the TS input")?;
        let segments = if n == 0 {
            input_done = true;
            segmenter.finish().into_iter().collect()
        } else {
            segmenter.push(&buf[..n])
        };
        for segment in segments {
            let seq = publisher.seq();
            let result = send_segment(&mut publisher, &segment, &mut pacer).await;
            let confirmed = match result {
                Ok(()) => {
                    consecutive_errors = 0;
                    true
                }
                Err(TrickleError::ChannelGone) => {
                    bail!("the trickle channel {channel_url} is gone (404 or closed)")
                }
                Err(error) => {
                    consecutive_errors += 1;
                    tracing::warn!(message = "Trickle segment failed.", seq, %error);
                    if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                        return Err(error).context(format!(
                            "{consecutive_errors} segments in a row failed on {channel_url}"
                        ));
                    }
                    false
                }
            };
            progress(&PubProgress {
                seq,
                bytes: segment.data.len() as u64,
                frames: segment.frames.len(),
                confirmed,
            });
        }
    }
    let stats = publisher.stats();
    publisher.close().await;
    Ok(PubSummary {
        segments: stats.segments,
        bytes: stats.bytes,
        dropped_segments: stats.dropped_segments,
        retries: stats.retries,
        elapsed_ms: pacer
            .started_at
            .map(|at| at.elapsed().as_millis() as u64)
            .unwrap_or(0),
    })
}

/// Maps PTS to wall-clock deadlines: the first PTS seen is "now", later ones are offsets.
#[derive(Debug, Default)]
struct Pacer {
    started_at: Option<Instant>,
    last_pts: Option<u64>,
    /// Media time of `last_pts` since the first PTS, unwrapped across the 33-bit rollover.
    media_ticks: i64,
}

impl Pacer {
    /// The instant a frame with `pts` is due (now for the first frame, or when PTS is absent).
    fn due(&mut self, pts: Option<u64>) -> Instant {
        let started_at = *self.started_at.get_or_insert_with(Instant::now);
        if let Some(pts) = pts {
            if let Some(last) = self.last_pts {
                self.media_ticks += signed_pts_delta(last, pts);
            }
            self.last_pts = Some(pts);
        }
        let ticks = u64::try_from(self.media_ticks.max(0)).unwrap_or(0);
        started_at + Duration::from_micros(ticks.saturating_mul(1_000_000) / PTS_HZ)
    }
}

/// `to - from` in 90 kHz ticks modulo 2^33, taken as negative past half the range (frames
/// out of presentation order, or a backwards jump).
fn signed_pts_delta(from: u64, to: u64) -> i64 {
    let delta = to.wrapping_sub(from) & PTS_MASK;
    if delta > PTS_MASK / 2 {
        delta as i64 - (PTS_MASK as i64 + 1)
    } else {
        delta as i64
    }
}

async fn send_segment(
    publisher: &mut TricklePublisher,
    segment: &TsSegment,
    pacer: &mut Pacer,
) -> Result<(), TrickleError> {
    let mut writer = publisher.begin_segment().await?;
    if segment.frames.is_empty() {
        pacer.due(None);
        writer.write(segment.data.clone()).await?;
        return writer.finish().await.map(|_| ());
    }
    // Bytes before the first frame (tables) go with it; each frame runs to the next one.
    for (i, frame) in segment.frames.iter().enumerate() {
        let start = if i == 0 { 0 } else { frame.offset };
        let end = segment
            .frames
            .get(i + 1)
            .map_or(segment.data.len(), |next| next.offset);
        tokio::time::sleep_until(pacer.due(frame.pts)).await;
        write_range(&mut writer, &segment.data, start, end).await?;
    }
    writer.finish().await.map(|_| ())
}

async fn write_range(
    writer: &mut SegmentWriter,
    data: &Bytes,
    start: usize,
    end: usize,
) -> Result<(), TrickleError> {
    if start < end && end <= data.len() {
        writer.write(data.slice(start..end)).await?;
    }
    Ok(())
}

/// Totals of [`subscribe_to`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubSummary {
    pub segments: u64,
    pub bytes: u64,
    /// Segments skipped by jumping to the live edge.
    pub gaps: u64,
    pub errors: u64,
    /// GETs re-issued for lack of response headers.
    pub retries: u64,
}

/// Reads `channel_url` from its next segment until the stream ends, writing every byte to
/// `out` as it arrives (flushed per chunk, so a player can follow along).
pub async fn subscribe_to(
    client: reqwest::Client,
    channel_url: &str,
    mut out: impl AsyncWrite + Unpin,
) -> anyhow::Result<SubSummary> {
    let mut subscriber = TrickleSubscriber::new(client, channel_url);
    let mut bytes = 0u64;
    let mut consecutive_errors = 0u32;
    loop {
        let mut segment = match subscriber.next_segment().await {
            Ok(Some(segment)) => segment,
            Ok(None) => break,
            Err(error) => {
                consecutive_errors += 1;
                tracing::warn!(message = "Trickle subscribe failed.", %error);
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                    return Err(error).context(format!(
                        "{consecutive_errors} requests in a row failed on {channel_url}"
                    ));
                }
                let backoff = Duration::from_millis(200 * u64::from(consecutive_errors));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        consecutive_errors = 0;
        loop {
            match segment.chunk().await {
                Ok(Some(chunk)) => {
                    bytes += chunk.len() as u64;
                    out.write_all(&chunk).await.context("writing the output")?;
                    out.flush().await.context("flushing the output")?;
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(message = "Trickle segment read failed.", seq = segment.seq, %error);
                    break;
                }
            }
        }
    }
    out.flush().await.context("flushing the output")?;
    let SubscriberStats {
        segments,
        errors,
        gaps,
        retries,
    } = subscriber.stats();
    Ok(SubSummary {
        segments,
        bytes,
        gaps,
        errors,
        retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pts_deltas_unwrap_across_the_33_bit_rollover() {
        assert_eq!(signed_pts_delta(0, 3000), 3000);
        assert_eq!(signed_pts_delta(3000, 0), -3000);
        assert_eq!(signed_pts_delta(PTS_MASK - 1499, 1500), 3000);
        assert_eq!(signed_pts_delta(1500, PTS_MASK - 1499), -3000);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_schedules_frames_by_pts() {
        let mut pacer = Pacer::default();
        let start = Instant::now();
        assert_eq!(pacer.due(Some(PTS_MASK - 2999)), start);
        assert_eq!(
            pacer.due(Some(0)),
            start + Duration::from_millis(33) + Duration::from_micros(333)
        );
        assert_eq!(pacer.due(None), start + Duration::from_micros(33_333));
        assert_eq!(
            pacer.due(Some(90_000 - 3000)),
            start + Duration::from_secs(1)
        );
    }
}
