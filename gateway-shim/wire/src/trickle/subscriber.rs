//! Trickle subscriber client: GET `{url}/{seq}` from -1, follow `Lp-Trickle-Seq + 1` with
//! the next GET preconnected, jump to `Lp-Trickle-Latest` on 470, stop on 404 or
//! `Lp-Trickle-Closed`, and re-issue a GET that saw no response headers in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use tokio::task::JoinHandle;

use super::{HEADER_CLOSED, HEADER_LATEST, HEADER_SEQ, TrickleError};

/// Subscriber settings.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// A GET that saw no response headers for this long is cancelled and sent again
    /// (go-livepeer uses 20 s).
    pub first_byte_timeout: Duration,
    /// The first sequence number requested: -1 is the next segment (go-livepeer), -2 the
    /// one being written (the Python gateway), 0 the channel's beginning.
    pub start_seq: i64,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        Self {
            first_byte_timeout: Duration::from_secs(20),
            start_seq: -1,
        }
    }
}

/// Counters a tester reports for one subscriber.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Segments whose headers arrived.
    pub segments: u64,
    /// Failed requests or body reads.
    pub errors: u64,
    /// Segments skipped by jumping to `Lp-Trickle-Latest` after a 470.
    pub gaps: u64,
    /// GETs re-issued after `first_byte_timeout` without headers.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    segments: AtomicU64,
    errors: AtomicU64,
    gaps: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A GET in flight (preconnected or current).
struct PendingGet {
    seq: i64,
    task: JoinHandle<Result<reqwest::Response, reqwest::Error>>,
}

impl Drop for PendingGet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one trickle channel segment by segment.
pub struct TrickleSubscriber {
    client: reqwest::Client,
    url: String,
    config: SubscriberConfig,
    seq: i64,
    pending: Option<PendingGet>,
    counters: Arc<Counters>,
    /// Consecutive 470s that did not move us forward; used to back off.
    stuck_470s: u32,
}

impl TrickleSubscriber {
    /// A subscriber for the channel at `url`, starting at the next segment (-1).
    pub fn new(client: reqwest::Client, url: impl Into<String>) -> Self {
        Self::with_config(client, url, SubscriberConfig::default())
    }

    pub fn with_config(
        client: reqwest::Client,
        url: impl Into<String>,
        config: SubscriberConfig,
    ) -> Self {
        let url = url.into().trim_end_matches('/').to_owned();
        let seq = config.start_seq;
        Self {
            client,
            url,
            config,
            seq,
            pending: None,
            counters: Arc::new(Counters::default()),
            stuck_470s: 0,
        }
    }

    /// Starts at `seq` instead of the configured start (see [`SubscriberConfig::start_seq`]).
    pub fn starting_at(mut self, seq: i64) -> Self {
        self.seq = seq;
        self.pending = None;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The sequence number requested next.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    pub fn stats(&self) -> SubscriberStats {
        let c = &self.counters;
        SubscriberStats {
            segments: c.segments.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    fn start_get(&self, seq: i64) -> PendingGet {
        let client = self.client.clone();
        let url = format!("{}/{seq}", self.url);
        let timeout = self.config.first_byte_timeout;
        let counters = self.counters.clone();
        let task = tokio::spawn(async move {
            loop {
                match tokio::time::timeout(timeout, client.get(&url).send()).await {
                    Ok(result) => return result,
                    Err(_) => {
                        // No headers in time: the connection may be dead; ask again.
                        Counters::add(&counters.retries, 1);
                        tracing::debug!(message = "Re-issuing a trickle GET without headers.", url);
                    }
                }
            }
        });
        PendingGet { seq, task }
    }

    /// Waits for the next segment's response headers. `Ok(None)` means the stream ended
    /// (404 or `Lp-Trickle-Closed`). After an error the caller may call again to retry.
    pub async fn next_segment(&mut self) -> Result<Option<SubscribedSegment>, TrickleError> {
        loop {
            let mut pending = match self.pending.take() {
                Some(pending) if pending.seq == self.seq => pending,
                _ => self.start_get(self.seq),
            };
            let requested = pending.seq;
            let response = match (&mut pending.task).await {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    Counters::add(&self.counters.errors, 1);
                    return Err(TrickleError::Http(error));
                }
                Err(_) => {
                    Counters::add(&self.counters.errors, 1);
                    return Err(TrickleError::Cancelled);
                }
            };
            let headers = response.headers();
            if headers.contains_key(HEADER_CLOSED) {
                return Ok(None);
            }
            let latest = header_int(headers, HEADER_LATEST);
            let seq = header_int(headers, HEADER_SEQ);
            match response.status().as_u16() {
                404 => return Ok(None),
                470 => {
                    let latest = latest.unwrap_or(-1);
                    if requested >= 0 && latest > requested {
                        Counters::add(&self.counters.gaps, (latest - requested) as u64);
                        self.stuck_470s = 0;
                    } else {
                        // The server has nothing newer yet (a segment was dropped before
                        // the next one started); back off a little instead of spinning.
                        self.stuck_470s = self.stuck_470s.saturating_add(1);
                        let backoff_ms = 25 * u64::from(self.stuck_470s.min(20));
                        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    }
                    tracing::debug!(
                        message = "Trickle segment missing; jumping to the latest.",
                        requested,
                        latest
                    );
                    self.seq = latest;
                }
                200 => {
                    self.stuck_470s = 0;
                    let seq = seq.unwrap_or(requested);
                    self.seq = seq + 1;
                    self.pending = Some(self.start_get(self.seq));
                    Counters::add(&self.counters.segments, 1);
                    let content_type = response
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    return Ok(Some(SubscribedSegment {
                        seq,
                        latest,
                        content_type,
                        response,
                        counters: self.counters.clone(),
                    }));
                }
                status => {
                    Counters::add(&self.counters.errors, 1);
                    let body = response.text().await.unwrap_or_default();
                    return Err(TrickleError::Status {
                        status,
                        body: body.trim_end().to_owned(),
                    });
                }
            }
        }
    }
}

fn header_int(headers: &http::HeaderMap, name: &str) -> Option<i64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// One segment being received; its bytes arrive as the publisher sends them.
pub struct SubscribedSegment {
    /// The segment's sequence number (`Lp-Trickle-Seq`).
    pub seq: i64,
    /// `Lp-Trickle-Latest` when the server sent it (the segment is not the newest).
    pub latest: Option<i64>,
    /// The channel's MIME type.
    pub content_type: Option<String>,
    response: reqwest::Response,
    counters: Arc<Counters>,
}

impl SubscribedSegment {
    /// The next bytes of the segment; `Ok(None)` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, TrickleError> {
        match self.response.chunk().await {
            Ok(chunk) => Ok(chunk),
            Err(error) => {
                Counters::add(&self.counters.errors, 1);
                Err(TrickleError::Http(error))
            }
        }
    }

    /// Reads the rest of the segment into memory (for small JSON segments).
    pub async fn read_all(&mut self) -> Result<Bytes, TrickleError> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}
