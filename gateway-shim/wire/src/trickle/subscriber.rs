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
use crate::http1::client::{ClientConn, ConnPool, ResponseHead};

/// How much of an error response's body is kept for the error.
const ERROR_BODY_LIMIT: usize = 4096;

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

/// How the subscriber's requests travel.
enum Transport {
    Reqwest(reqwest::Client),
    /// The client's own connections: a body's bytes are read by the task that reads the
    /// segment, not handed over by hyper's connection task.
    Sockets(Arc<ConnPool>),
}

/// A response whose head has arrived.
enum Reply {
    Reqwest(reqwest::Response),
    Socket(ClientConn, ResponseHead, Arc<ConnPool>),
}

impl Reply {
    fn status(&self) -> u16 {
        match self {
            Reply::Reqwest(r) => r.status().as_u16(),
            Reply::Socket(_, head, _) => head.status.as_u16(),
        }
    }

    fn headers(&self) -> &http::HeaderMap {
        match self {
            Reply::Reqwest(r) => r.headers(),
            Reply::Socket(_, head, _) => &head.headers,
        }
    }

    /// The body as text (error explanations); a socket goes back to its pool.
    async fn text(self) -> String {
        match self {
            Reply::Reqwest(r) => r.text().await.unwrap_or_default(),
            Reply::Socket(mut conn, _, pool) => {
                let text = conn.body_text(ERROR_BODY_LIMIT).await.unwrap_or_default();
                pool.checkin(conn);
                text
            }
        }
    }
}

/// A GET in flight (preconnected or current).
struct PendingGet {
    seq: i64,
    task: JoinHandle<Result<Reply, TrickleError>>,
}

impl Drop for PendingGet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one trickle channel segment by segment.
pub struct TrickleSubscriber {
    transport: Transport,
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
            transport: Transport::Reqwest(client),
            url,
            config,
            seq,
            pending: None,
            counters: Arc::new(Counters::default()),
            stuck_470s: 0,
        }
    }

    /// A subscriber for the channel at `url` on the client's own connections
    /// ([`crate::http1::client`]; TLS accepts any certificate, as gateways do with
    /// orchestrators). A URL this client cannot reach fails
    /// each read with the reason.
    pub fn over_sockets(url: impl Into<String>, config: SubscriberConfig) -> Self {
        let url = url.into().trim_end_matches('/').to_owned();
        let pool = ConnPool::new(&url, super::client_tls(), config.first_byte_timeout);
        Self {
            transport: Transport::Sockets(Arc::new(pool)),
            url,
            seq: config.start_seq,
            config,
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
        let transport = match &self.transport {
            Transport::Reqwest(client) => Transport::Reqwest(client.clone()),
            Transport::Sockets(pool) => Transport::Sockets(Arc::clone(pool)),
        };
        let url = format!("{}/{seq}", self.url);
        let timeout = self.config.first_byte_timeout;
        let counters = self.counters.clone();
        let task = tokio::spawn(async move {
            loop {
                let get = async {
                    match &transport {
                        Transport::Reqwest(client) => {
                            Ok(Reply::Reqwest(client.get(&url).send().await?))
                        }
                        Transport::Sockets(pool) => {
                            let endpoint = pool.endpoint()?;
                            let path = format!("{}/{seq}", endpoint.path());
                            let mut conn = pool.checkout().await?;
                            conn.send_head("GET", endpoint, &path, &[], false)
                                .await
                                .map_err(crate::http1::client::ClientError::Io)?;
                            let head = conn.response(false).await?;
                            Ok(Reply::Socket(conn, head, Arc::clone(pool)))
                        }
                    }
                };
                match tokio::time::timeout(timeout, get).await {
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
                    return Err(error);
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
            match response.status() {
                404 => return Ok(None),
                470 => {
                    // Read to its end, so the connection can carry the next GET.
                    response.text().await;
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
                    let body = match response {
                        Reply::Reqwest(response) => Body::Reqwest(response),
                        Reply::Socket(conn, _, pool) => Body::Socket {
                            conn: Some(conn),
                            pool,
                        },
                    };
                    return Ok(Some(SubscribedSegment {
                        seq,
                        latest,
                        content_type,
                        body,
                        counters: self.counters.clone(),
                    }));
                }
                status => {
                    Counters::add(&self.counters.errors, 1);
                    let body = response.text().await;
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
    body: Body,
    counters: Arc<Counters>,
}

/// Where a segment's body comes from.
enum Body {
    Reqwest(reqwest::Response),
    /// The connection is `None` once the body was read to its end (it went back to the pool).
    Socket {
        conn: Option<ClientConn>,
        pool: Arc<ConnPool>,
    },
}

impl SubscribedSegment {
    /// The next bytes of the segment; `Ok(None)` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, TrickleError> {
        let result = match &mut self.body {
            Body::Reqwest(response) => response.chunk().await.map_err(TrickleError::Http),
            Body::Socket { conn, pool } => match conn.as_mut() {
                None => Ok(None),
                Some(c) => match c.body_chunk().await {
                    Ok(Some(data)) => Ok(Some(data)),
                    Ok(None) => {
                        if let Some(c) = conn.take() {
                            pool.checkin(c);
                        }
                        Ok(None)
                    }
                    Err(error) => {
                        *conn = None;
                        Err(TrickleError::Connection(error))
                    }
                },
            },
        };
        if result.is_err() {
            Counters::add(&self.counters.errors, 1);
        }
        result
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
