//! Trickle publisher on the client's own connections ([`crate::http1::client`]): the same
//! protocol as [`super::TricklePublisher`] (a chunked POST per segment at `{url}/{seq}`, the
//! next one preconnected, retry only when none of the segment's bytes left, `DELETE
//! {url}/{seq}` for a segment that failed part-way, `DELETE {url}` at the end), with each
//! frame written by the caller's task in one write instead of through hyper's connection task.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::publisher::{Counters, PublisherConfig, PublisherStats, SegmentOutcome};
use super::{HEADER_CLOSED, TrickleError};
use crate::http1::client::{ClientConn, ClientError, ConnPool, ResponseHead};

/// How much of an error response's body is kept for the error.
const ERROR_BODY_LIMIT: usize = 4096;

/// The TLS configuration of trickle connections: any certificate (orchestrators are
/// self-signed), HTTP/1.1, one session cache for the process.
pub fn client_tls() -> Arc<rustls::ClientConfig> {
    static TLS: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    TLS.get_or_init(|| crate::tls::insecure_client_config(&[crate::tls::ALPN_HTTP1]).0)
        .clone()
}

struct Shared {
    pool: ConnPool,
    mime: String,
    write_timeout: Duration,
    counters: Counters,
}

impl Shared {
    fn segment_path(&self, seq: i64) -> Result<String, ClientError> {
        Ok(format!("{}/{seq}", self.pool.endpoint()?.path()))
    }

    /// A connection with the POST head for segment `seq` written, waiting for the body.
    async fn open_post(&self, seq: i64) -> Result<ClientConn, ClientError> {
        let path = self.segment_path(seq)?;
        let mut conn = self.pool.checkout().await?;
        let headers = [("content-type", self.mime.as_str())];
        conn.send_head("POST", self.pool.endpoint()?, &path, &headers, true)
            .await?;
        Ok(conn)
    }

    /// Best-effort `DELETE {url}/{seq}` so readers waiting on a dropped segment move on.
    async fn delete_segment(&self, seq: i64) {
        let Ok(path) = self.segment_path(seq) else {
            return;
        };
        if let Err(error) = self
            .pool
            .simple("DELETE", &path, self.write_timeout, 0)
            .await
        {
            tracing::debug!(message = "Trickle segment DELETE failed.", seq, %error);
        }
    }
}

/// Whether a final answer says the channel is gone.
fn gone(head: &ResponseHead) -> bool {
    head.headers.contains_key(HEADER_CLOSED) || head.status.as_u16() == 404
}

type Preconnect = (i64, JoinHandle<Result<ClientConn, ClientError>>);

/// Publishes segments to one trickle channel over its own connections.
pub struct SocketPublisher {
    shared: Arc<Shared>,
    next_seq: i64,
    pending: Option<Preconnect>,
}

impl Drop for SocketPublisher {
    fn drop(&mut self) {
        if let Some((_, task)) = self.pending.take() {
            task.abort();
        }
    }
}

impl SocketPublisher {
    /// A publisher for the channel at `url`, starting at `config.start_seq`. A URL this
    /// client cannot reach fails each segment with the reason.
    pub fn new(url: &str, config: PublisherConfig) -> Self {
        let url = url.trim_end_matches('/');
        Self {
            shared: Arc::new(Shared {
                pool: ConnPool::new(url, client_tls(), config.write_timeout),
                mime: config.mime,
                write_timeout: config.write_timeout,
                counters: Counters::default(),
            }),
            next_seq: config.start_seq,
            pending: None,
        }
    }

    /// The sequence number the next segment will get.
    pub fn seq(&self) -> i64 {
        self.next_seq
    }

    pub fn stats(&self) -> PublisherStats {
        self.shared.counters.snapshot()
    }

    fn preconnect(&self, seq: i64) -> Preconnect {
        let shared = Arc::clone(&self.shared);
        (
            seq,
            tokio::spawn(async move { shared.open_post(seq).await }),
        )
    }

    /// Starts the next segment on its (usually preconnected) POST and preconnects the one
    /// after it. Fails with [`TrickleError::ChannelGone`] when the server already said the
    /// channel is gone.
    pub async fn begin_segment(&mut self) -> Result<SocketSegmentWriter, TrickleError> {
        let seq = self.next_seq;
        let opened = match self.pending.take() {
            Some((s, mut task)) if s == seq => match (&mut task).await {
                Ok(result) => result,
                Err(_) => Err(ClientError::Closed),
            },
            Some((_, task)) => {
                task.abort();
                self.shared.open_post(seq).await
            }
            None => self.shared.open_post(seq).await,
        };
        // A preconnected POST the server already answered, or whose connection broke, sent
        // none of our bytes: one fresh POST is safe.
        let ready = match opened {
            Ok(mut conn) => match conn.early_response() {
                Ok(None) => Some(conn),
                Ok(Some(head)) if gone(&head) => return Err(TrickleError::ChannelGone),
                Ok(Some(_)) | Err(_) => None,
            },
            Err(_) => None,
        };
        let conn = match ready {
            Some(conn) => conn,
            None => {
                Counters::add(&self.shared.counters.retries, 1);
                self.shared.open_post(seq).await?
            }
        };
        self.next_seq = seq + 1;
        self.pending = Some(self.preconnect(self.next_seq));
        Ok(SocketSegmentWriter {
            shared: Arc::clone(&self.shared),
            seq,
            conn: Some(conn),
            unsent: Vec::new(),
            sent: false,
            bytes: 0,
            retried: false,
            failed: false,
        })
    }

    /// Ends the stream: `DELETE {url}`, then drops the preconnected POST.
    pub async fn try_close(mut self) -> Result<(), TrickleError> {
        if let Some((_, task)) = self.pending.take() {
            task.abort();
        }
        let path = self.shared.pool.endpoint()?.path().to_owned();
        let (status, _, body) = self
            .shared
            .pool
            .simple("DELETE", &path, self.shared.write_timeout, ERROR_BODY_LIMIT)
            .await?;
        match status.as_u16() {
            200 => Ok(()),
            404 => Err(TrickleError::ChannelGone),
            status => Err(TrickleError::Status {
                status,
                body: body.trim_end().to_owned(),
            }),
        }
    }

    /// [`SocketPublisher::try_close`], logging a failure.
    pub async fn close(self) {
        if let Err(error) = self.try_close().await {
            tracing::debug!(message = "Trickle channel DELETE failed.", %error);
        }
    }
}

/// One segment being published; each write is one chunk of the POST body.
pub struct SocketSegmentWriter {
    shared: Arc<Shared>,
    seq: i64,
    conn: Option<ClientConn>,
    /// The bytes written while none had been taken yet, for the one retry.
    unsent: Vec<Bytes>,
    /// A chunk of this segment was taken by the connection: a retry could duplicate it.
    sent: bool,
    bytes: u64,
    retried: bool,
    failed: bool,
}

impl SocketSegmentWriter {
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// Writes `data` as the next chunk of the segment's body.
    pub async fn write(&mut self, data: Bytes) -> Result<(), TrickleError> {
        if self.failed {
            return Err(TrickleError::SegmentFailed);
        }
        if data.is_empty() {
            return Ok(());
        }
        self.bytes += data.len() as u64;
        if !self.sent {
            self.unsent.push(data.clone());
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(TrickleError::SegmentFailed);
        };
        // The server may have answered before the body is complete (the channel closed, the
        // segment refused); the check reads nothing from the socket unless bytes are there.
        let early = conn.early_response();
        let written = match early {
            Ok(None) => conn.write_chunk(&data, self.shared.write_timeout).await,
            Ok(Some(head)) => return self.answered_early(&head).await,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        match written {
            Ok(()) => {
                self.sent = true;
                self.unsent.clear();
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                self.drop_segment().await;
                Err(TrickleError::Timeout)
            }
            Err(e) => self.broken(ClientError::Io(e)).await,
        }
    }

    /// The server gave its final answer while the segment was still being written.
    async fn answered_early(&mut self, head: &ResponseHead) -> Result<(), TrickleError> {
        if gone(head) {
            self.failed = true;
            self.conn = None;
            Counters::add(&self.shared.counters.errors, 1);
            return Err(TrickleError::ChannelGone);
        }
        let status = head.status.as_u16();
        self.broken(ClientError::Protocol(format!(
            "the server answered {status} before the segment was complete"
        )))
        .await
    }

    /// The POST broke: retry once when none of our bytes left, else drop the segment.
    async fn broken(&mut self, error: ClientError) -> Result<(), TrickleError> {
        self.conn = None;
        if !self.sent && !self.retried {
            return self.retry().await;
        }
        self.drop_segment().await;
        Err(error.into())
    }

    /// Re-sends the segment on a fresh POST with the bytes written so far.
    async fn retry(&mut self) -> Result<(), TrickleError> {
        self.retried = true;
        Counters::add(&self.shared.counters.retries, 1);
        Counters::add(&self.shared.counters.errors, 1);
        tracing::debug!(
            message = "Retrying a trickle segment that sent nothing.",
            seq = self.seq
        );
        let mut conn = match self.shared.open_post(self.seq).await {
            Ok(conn) => conn,
            Err(error) => {
                self.drop_segment().await;
                return Err(error.into());
            }
        };
        for data in std::mem::take(&mut self.unsent) {
            if let Err(error) = conn.write_chunk(&data, self.shared.write_timeout).await {
                self.drop_segment().await;
                return Err(ClientError::Io(error).into());
            }
            self.sent = true;
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// Marks the segment failed and tells the server to close it.
    async fn drop_segment(&mut self) {
        self.failed = true;
        self.conn = None;
        self.shared.counters.dropped(self.seq);
        self.shared.delete_segment(self.seq).await;
    }

    /// Ends the segment's body and waits for the server to confirm it.
    pub async fn finish(mut self) -> Result<SegmentOutcome, TrickleError> {
        loop {
            if self.failed {
                return Err(TrickleError::SegmentFailed);
            }
            let Some(mut conn) = self.conn.take() else {
                return Err(TrickleError::SegmentFailed);
            };
            let timeout = self.shared.write_timeout;
            let answer = async {
                conn.end_body(timeout).await?;
                let head = conn.response(false).await?;
                let body = conn.body_text(ERROR_BODY_LIMIT).await?;
                Ok::<_, ClientError>((head, body))
            };
            let answer = match tokio::time::timeout(timeout, answer).await {
                Ok(answer) => answer,
                Err(_) => {
                    self.drop_segment().await;
                    return Err(TrickleError::Timeout);
                }
            };
            match answer {
                Ok((head, _)) if gone(&head) => {
                    self.failed = true;
                    Counters::add(&self.shared.counters.errors, 1);
                    return Err(TrickleError::ChannelGone);
                }
                Ok((head, _)) if head.status.as_u16() == 200 => {
                    self.shared.pool.checkin(conn);
                    self.shared.counters.confirmed(self.bytes);
                    self.failed = true; // finished: the Drop guard has nothing left to do
                    return Ok(SegmentOutcome {
                        seq: self.seq,
                        bytes: self.bytes,
                        retried: self.retried,
                    });
                }
                Ok((head, body)) => {
                    let error = TrickleError::Status {
                        status: head.status.as_u16(),
                        body: body.trim_end().to_owned(),
                    };
                    if !self.sent && !self.retried {
                        self.retry().await?;
                        continue;
                    }
                    self.drop_segment().await;
                    return Err(error);
                }
                Err(error) => {
                    if !self.sent && !self.retried {
                        self.retry().await?;
                        continue;
                    }
                    self.drop_segment().await;
                    return Err(error.into());
                }
            }
        }
    }
}

impl Drop for SocketSegmentWriter {
    fn drop(&mut self) {
        // A segment abandoned part-way is closed on the server so its readers move on.
        if self.failed || self.conn.is_none() {
            return;
        }
        self.conn = None;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            let seq = self.seq;
            runtime.spawn(async move { shared.delete_segment(seq).await });
        }
    }
}
