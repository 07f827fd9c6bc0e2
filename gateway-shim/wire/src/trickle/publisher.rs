//! Trickle publisher client: one chunked POST per segment at `{url}/{seq}`, the next POST
//! preconnected as soon as the current segment starts, retry only when no byte was sent,
//! `DELETE {url}/{seq}` for a segment that failed part-way, `DELETE {url}` at the end.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

use super::{HEADER_CLOSED, TrickleError};

/// Publisher settings.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// `Content-Type` of every POST (used by servers that autocreate the channel).
    pub mime: String,
    /// The first sequence number.
    pub start_seq: i64,
    /// How long one write may wait for the server to take bytes before the segment fails.
    pub write_timeout: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        Self {
            mime: "video/MP2T".to_owned(),
            start_seq: 0,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters a tester reports for one publisher.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublisherStats {
    /// Segments the server confirmed.
    pub segments: u64,
    /// Bytes in confirmed segments.
    pub bytes: u64,
    /// Segment requests re-sent because the first attempt failed before any byte left.
    pub retries: u64,
    /// Segments that failed after bytes were sent, and were dropped with DELETE.
    pub dropped_segments: u64,
    /// Failed requests of any kind.
    pub errors: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) segments: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) dropped_segments: AtomicU64,
    pub(super) errors: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A segment that failed after its bytes began to leave is dropped.
    pub(super) fn dropped(&self, seq: i64) {
        Self::add(&self.errors, 1);
        Self::add(&self.dropped_segments, 1);
        tracing::info!(message = "Dropping a failed trickle segment.", seq);
    }

    /// The server confirmed a segment of `bytes`.
    pub(super) fn confirmed(&self, bytes: u64) {
        Self::add(&self.segments, 1);
        Self::add(&self.bytes, bytes);
    }

    pub(super) fn snapshot(&self) -> PublisherStats {
        PublisherStats {
            segments: self.segments.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dropped_segments: self.dropped_segments.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// What the server said to one POST.
struct PostReply {
    status: u16,
    closed: bool,
    body: String,
}

/// A POST in flight whose body is fed through a channel.
struct PendingPost {
    seq: i64,
    frames: Option<mpsc::Sender<Bytes>>,
    /// Set once the HTTP stack pulled a body chunk to send: from then on a retry could
    /// duplicate bytes, so the segment is dropped instead.
    consumed: Arc<AtomicBool>,
    task: JoinHandle<Result<PostReply, reqwest::Error>>,
}

impl Drop for PendingPost {
    fn drop(&mut self) {
        // An abandoned POST must not complete as if the segment were whole.
        self.task.abort();
    }
}

impl PendingPost {
    fn start(shared: &Shared, seq: i64) -> Self {
        let (frames_tx, frames_rx) = mpsc::channel::<Bytes>(4);
        let consumed = Arc::new(AtomicBool::new(false));
        let flag = consumed.clone();
        let body = futures::stream::unfold(frames_rx, move |mut frames| {
            let flag = flag.clone();
            async move {
                let data = frames.recv().await?;
                flag.store(true, Ordering::SeqCst);
                Some((Ok::<Bytes, io::Error>(data), frames))
            }
        });
        let request = shared
            .client
            .post(format!("{}/{seq}", shared.url))
            .header(CONTENT_TYPE, shared.config.mime.as_str())
            .body(reqwest::Body::wrap_stream(body));
        let task = tokio::spawn(async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let closed = response.headers().contains_key(HEADER_CLOSED);
            // The body of an error explains it; a failure to read it is not worth more.
            let body = response.text().await.unwrap_or_default();
            Ok(PostReply {
                status,
                closed,
                body,
            })
        });
        Self {
            seq,
            frames: Some(frames_tx),
            consumed,
            task,
        }
    }

    fn consumed(&self) -> bool {
        self.consumed.load(Ordering::SeqCst)
    }

    /// Ends the body and waits for the server's answer.
    async fn finish(&mut self) -> Result<Result<PostReply, reqwest::Error>, JoinError> {
        self.frames = None;
        (&mut self.task).await
    }
}

/// How a finished POST turned out.
enum PostResult {
    Done,
    Gone,
    Failed(TrickleError),
}

fn classify(
    reply: Result<Result<PostReply, reqwest::Error>, JoinError>,
    wrote_data: bool,
    consumed: bool,
) -> PostResult {
    match reply {
        Err(_) => PostResult::Failed(TrickleError::Cancelled),
        Ok(Err(error)) => PostResult::Failed(TrickleError::Http(error)),
        Ok(Ok(reply)) if reply.closed || reply.status == 404 => PostResult::Gone,
        // The server may finish a preconnected POST early (its segment was closed); if our
        // bytes never left, the segment did not get through.
        Ok(Ok(reply)) if reply.status == 200 && wrote_data && !consumed => {
            PostResult::Failed(TrickleError::Status {
                status: 200,
                body: "segment ended before its data was sent".to_owned(),
            })
        }
        Ok(Ok(reply)) if reply.status == 200 => PostResult::Done,
        Ok(Ok(reply)) => PostResult::Failed(TrickleError::Status {
            status: reply.status,
            body: reply.body.trim_end().to_owned(),
        }),
    }
}

/// What publisher and segment writers share.
struct Shared {
    client: reqwest::Client,
    url: String,
    config: PublisherConfig,
    counters: Counters,
}

impl Shared {
    /// Best-effort `DELETE {url}/{seq}` so readers waiting on a dropped segment move on.
    async fn delete_segment(&self, seq: i64) {
        let request = self.client.delete(format!("{}/{seq}", self.url)).send();
        match tokio::time::timeout(self.config.write_timeout, request).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::debug!(message = "Trickle segment DELETE failed.", seq, %error);
            }
            Err(_) => tracing::debug!(message = "Trickle segment DELETE timed out.", seq),
        }
    }
}

/// Publishes segments to one trickle channel.
pub struct TricklePublisher {
    shared: Arc<Shared>,
    next_seq: i64,
    pending: Option<PendingPost>,
}

impl TricklePublisher {
    /// A publisher for the channel at `url` (for example `https://o:8935/ai/trickle/abcd`),
    /// starting at segment 0.
    pub fn new(client: reqwest::Client, url: impl Into<String>) -> Self {
        Self::with_config(client, url, PublisherConfig::default())
    }

    pub fn with_config(
        client: reqwest::Client,
        url: impl Into<String>,
        config: PublisherConfig,
    ) -> Self {
        let url = url.into().trim_end_matches('/').to_owned();
        let next_seq = config.start_seq;
        Self {
            shared: Arc::new(Shared {
                client,
                url,
                config,
                counters: Counters::default(),
            }),
            next_seq,
            pending: None,
        }
    }

    /// The channel URL.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The sequence number the next segment will get.
    pub fn seq(&self) -> i64 {
        self.next_seq
    }

    pub fn stats(&self) -> PublisherStats {
        self.shared.counters.snapshot()
    }

    /// Whether the POST for the next segment is open and waiting for data. It is false
    /// before the first segment and after that POST ended early (the next
    /// [`TricklePublisher::begin_segment`] then reconnects).
    pub fn is_preconnected(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|post| post.seq == self.next_seq && !post.task.is_finished())
    }

    /// Starts the next segment on its (usually preconnected) POST and preconnects the one
    /// after it. Fails with [`TrickleError::ChannelGone`] when the server already said the
    /// channel is gone.
    pub async fn begin_segment(&mut self) -> Result<SegmentWriter, TrickleError> {
        let seq = self.next_seq;
        let mut post = match self.pending.take() {
            Some(post) if post.seq == seq => post,
            _ => PendingPost::start(&self.shared, seq),
        };
        if post.task.is_finished() {
            // The preconnect already ended, so none of our bytes went out: a retry is safe.
            let reply = post.finish().await;
            match classify(reply, false, false) {
                PostResult::Gone => return Err(TrickleError::ChannelGone),
                PostResult::Done | PostResult::Failed(_) => {
                    Counters::add(&self.shared.counters.retries, 1);
                    post = PendingPost::start(&self.shared, seq);
                }
            }
        }
        self.next_seq = seq + 1;
        self.pending = Some(PendingPost::start(&self.shared, self.next_seq));
        Ok(SegmentWriter {
            shared: self.shared.clone(),
            seq,
            post: Some(post),
            unsent: Vec::new(),
            bytes: 0,
            retried: false,
            failed: false,
        })
    }

    /// Publishes one whole small segment (for example a control message).
    pub async fn publish(&mut self, data: Bytes) -> Result<(), TrickleError> {
        let mut segment = self.begin_segment().await?;
        segment.write(data).await?;
        segment.finish().await.map(|_| ())
    }

    /// Ends the stream: `DELETE {url}`, then drops the preconnected POST. Failures are
    /// logged; use [`TricklePublisher::try_close`] to see them.
    pub async fn close(self) {
        let url = self.shared.url.clone();
        if let Err(error) = self.try_close().await {
            tracing::debug!(message = "Trickle channel DELETE failed.", url, %error);
        }
    }

    /// [`TricklePublisher::close`], reporting whether the server accepted the DELETE.
    pub async fn try_close(mut self) -> Result<(), TrickleError> {
        let result = self.shared.client.delete(&self.shared.url).send().await;
        self.pending = None;
        let response = result?;
        match response.status().as_u16() {
            200 => Ok(()),
            404 => Err(TrickleError::ChannelGone),
            status => Err(TrickleError::Status {
                status,
                body: response.text().await.unwrap_or_default(),
            }),
        }
    }
}

/// The outcome of a confirmed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentOutcome {
    pub seq: i64,
    pub bytes: u64,
    /// Whether the segment needed its one retry.
    pub retried: bool,
}

/// One segment being published. Bytes stream into the POST body as they are written.
pub struct SegmentWriter {
    shared: Arc<Shared>,
    seq: i64,
    post: Option<PendingPost>,
    /// Copies of the bytes written while none had left yet, for the one retry.
    unsent: Vec<Bytes>,
    bytes: u64,
    retried: bool,
    failed: bool,
}

impl SegmentWriter {
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// Streams `data` into the segment's request body.
    pub async fn write(&mut self, data: Bytes) -> Result<(), TrickleError> {
        if self.failed {
            return Err(TrickleError::SegmentFailed);
        }
        if data.is_empty() {
            return Ok(());
        }
        self.bytes += data.len() as u64;
        let consumed = self.post.as_ref().is_some_and(PendingPost::consumed);
        if consumed {
            self.unsent.clear();
        } else {
            self.unsent.push(data.clone());
        }
        match self.send(data).await {
            SendOutcome::Sent => Ok(()),
            SendOutcome::TimedOut => {
                self.drop_segment().await;
                Err(TrickleError::Timeout)
            }
            SendOutcome::Closed => self.recover().await,
        }
    }

    async fn send(&mut self, data: Bytes) -> SendOutcome {
        let Some(frames) = self.post.as_ref().and_then(|post| post.frames.clone()) else {
            return SendOutcome::Closed;
        };
        match tokio::time::timeout(self.shared.config.write_timeout, frames.send(data)).await {
            Ok(Ok(())) => SendOutcome::Sent,
            Ok(Err(_)) => SendOutcome::Closed,
            Err(_) => SendOutcome::TimedOut,
        }
    }

    /// The request ended while we were writing. Retry once if none of our bytes left,
    /// otherwise drop the segment.
    async fn recover(&mut self) -> Result<(), TrickleError> {
        let Some(mut post) = self.post.take() else {
            return Err(TrickleError::SegmentFailed);
        };
        let consumed = post.consumed();
        let reply = post.finish().await;
        match classify(reply, true, consumed) {
            PostResult::Gone => {
                self.failed = true;
                Counters::add(&self.shared.counters.errors, 1);
                Err(TrickleError::ChannelGone)
            }
            PostResult::Done | PostResult::Failed(_) if !consumed && !self.retried => {
                self.retry().await
            }
            PostResult::Done => {
                self.drop_segment().await;
                Err(TrickleError::SegmentFailed)
            }
            PostResult::Failed(error) => {
                self.drop_segment().await;
                Err(error)
            }
        }
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
        self.post = Some(PendingPost::start(&self.shared, self.seq));
        for data in self.unsent.clone() {
            match self.send(data).await {
                SendOutcome::Sent => {}
                SendOutcome::TimedOut => {
                    self.drop_segment().await;
                    return Err(TrickleError::Timeout);
                }
                SendOutcome::Closed => {
                    self.drop_segment().await;
                    return Err(TrickleError::SegmentFailed);
                }
            }
        }
        Ok(())
    }

    /// Marks the segment failed and tells the server to close it.
    async fn drop_segment(&mut self) {
        self.failed = true;
        self.post = None;
        self.shared.counters.dropped(self.seq);
        self.shared.delete_segment(self.seq).await;
    }

    /// Ends the segment's body and waits for the server to confirm it.
    pub async fn finish(mut self) -> Result<SegmentOutcome, TrickleError> {
        loop {
            if self.failed {
                return Err(TrickleError::SegmentFailed);
            }
            let Some(mut post) = self.post.take() else {
                return Err(TrickleError::SegmentFailed);
            };
            let reply = post.finish().await;
            let consumed = post.consumed();
            match classify(reply, !self.unsent.is_empty(), consumed) {
                PostResult::Done => {
                    self.shared.counters.confirmed(self.bytes);
                    self.failed = true; // finished: the Drop guard has nothing left to do
                    return Ok(SegmentOutcome {
                        seq: self.seq,
                        bytes: self.bytes,
                        retried: self.retried,
                    });
                }
                PostResult::Gone => {
                    self.failed = true;
                    Counters::add(&self.shared.counters.errors, 1);
                    return Err(TrickleError::ChannelGone);
                }
                PostResult::Failed(_) if !consumed && !self.retried => {
                    self.retry().await?;
                }
                PostResult::Failed(error) => {
                    self.drop_segment().await;
                    return Err(error);
                }
            }
        }
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // A segment abandoned part-way is closed on the server so its readers move on.
        if self.failed || self.post.is_none() {
            return;
        }
        self.post = None;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            let seq = self.seq;
            runtime.spawn(async move { shared.delete_segment(seq).await });
        }
    }
}

enum SendOutcome {
    Sent,
    Closed,
    TimedOut,
}
