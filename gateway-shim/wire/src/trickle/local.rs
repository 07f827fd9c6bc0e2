//! In-process trickle publisher and subscriber: the simulator reads and writes channels of its
//! own [`TrickleServer`](super::TrickleServer) through these, with the same segment semantics as
//! HTTP clients but without a socket.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::channel::{Channel, Segment};

/// Writes segments into one channel, numbering them from the channel's next index.
pub struct LocalPublisher {
    channel: Arc<Channel>,
    next_seq: i64,
}

impl LocalPublisher {
    pub(crate) fn new(channel: Arc<Channel>) -> Self {
        let next_seq = channel.next_write();
        Self { channel, next_seq }
    }

    /// The sequence number the next segment will get.
    pub fn seq(&self) -> i64 {
        self.next_seq
    }

    /// Whether the channel was closed or deleted (writes then go nowhere).
    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }

    /// Opens the next segment. Readers waiting for it see bytes as soon as they are written.
    pub fn begin_segment(&mut self) -> LocalSegmentWriter {
        let (segment, seq) = self.channel.segment_for_write(self.next_seq, false);
        self.next_seq = seq + 1;
        LocalSegmentWriter {
            channel: self.channel.clone(),
            segment,
            seq,
            wrote: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// One segment being written locally. Closing it (or dropping it) ends the segment for readers.
pub struct LocalSegmentWriter {
    channel: Arc<Channel>,
    segment: Arc<Segment>,
    seq: i64,
    wrote: std::sync::atomic::AtomicBool,
}

impl LocalSegmentWriter {
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// Appends bytes to the segment.
    pub fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let first = !self.wrote.swap(true, std::sync::atomic::Ordering::SeqCst);
        self.channel.note_write(self.seq, first, Instant::now());
        self.segment.write(Bytes::copy_from_slice(data));
    }

    /// Ends the segment.
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for LocalSegmentWriter {
    fn drop(&mut self) {
        if !self.wrote.load(std::sync::atomic::Ordering::SeqCst) {
            // An empty segment still uses up its index, like an empty POST does.
            self.channel
                .note_empty_segment(&self.segment, Instant::now());
        }
        self.segment.close();
    }
}

/// Reads a channel segment after segment, starting at the segment after the ones already
/// written when it was created.
pub struct LocalSubscriber {
    channel: Arc<Channel>,
    seq: i64,
}

impl LocalSubscriber {
    pub(crate) fn new(channel: Arc<Channel>) -> Self {
        let seq = channel.next_write();
        Self { channel, seq }
    }

    /// The sequence number this subscriber will read next.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// Waits for the next segment's first bytes. Segments that vanish unwritten are skipped
    /// by jumping to the channel's next index, like an HTTP reader following a 470.
    /// `None` once the channel is closed or deleted.
    pub async fn next_segment(&mut self) -> Option<LocalSegmentReader> {
        loop {
            // Watch before looking, so a change between the lookup and the wait is not missed.
            let mut signal = self.channel.watch();
            signal.borrow_and_update();
            let lookup = self.channel.segment_for_read(self.seq);
            if lookup.closed {
                return None;
            }
            let Some(segment) = lookup.segment else {
                if lookup.latest != self.seq {
                    self.seq = lookup.latest;
                    continue;
                }
                // Unreachable in practice (the next index is always precreated); wait anyway.
                if signal.changed().await.is_err() {
                    return None;
                }
                continue;
            };
            let mut pos = 0;
            match segment.next_chunk(&mut pos).await {
                Some(first) => {
                    let seq = segment.idx();
                    self.seq = seq + 1;
                    return Some(LocalSegmentReader {
                        seq,
                        segment,
                        pos,
                        first: Some(first),
                    });
                }
                None => {
                    if self.channel.is_closed() {
                        return None;
                    }
                    // The segment was dropped unwritten. Later segments may exist already,
                    // so step to the next one; a missing one resolves to the live edge above.
                    let latest = self.channel.next_write();
                    if latest > segment.idx() {
                        self.seq = segment.idx() + 1;
                    } else if signal.changed().await.is_err() {
                        // The index did not move yet: wait until a publisher moves it.
                        return None;
                    } else {
                        self.seq = self.channel.next_write();
                    }
                }
            }
        }
    }
}

/// One segment being read locally.
pub struct LocalSegmentReader {
    pub seq: i64,
    segment: Arc<Segment>,
    pos: usize,
    first: Option<Bytes>,
}

impl LocalSegmentReader {
    /// The next bytes of the segment as they are written; `None` at the segment's end.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        self.segment.next_chunk(&mut self.pos).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::{TrickleConfig, TrickleServer};

    #[tokio::test(start_paused = true)]
    async fn local_publisher_and_subscriber_exchange_segments() {
        let server = TrickleServer::new(TrickleConfig::default());
        server.create_channel("sim-in", "video/MP2T");
        let mut subscriber = server.local_subscriber("sim-in").unwrap();
        let mut publisher = server.local_publisher("sim-in").unwrap();
        let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(mut segment) = subscriber.next_segment().await {
                let mut bytes = Vec::new();
                while let Some(chunk) = segment.next_chunk().await {
                    bytes.extend_from_slice(&chunk);
                }
                let _ = got_tx.send((segment.seq, bytes));
            }
        });
        for i in 0..3u8 {
            let writer = publisher.begin_segment();
            assert_eq!(writer.seq(), i64::from(i));
            writer.write(&[i, i]);
            writer.write(&[i]);
            writer.close();
        }
        // An empty segment is skipped by readers.
        publisher.begin_segment().close();
        let writer = publisher.begin_segment();
        writer.write(b"last");
        drop(writer);
        let mut got = Vec::new();
        for _ in 0..4 {
            // Paused time makes this timeout fire at once if the reader is stuck.
            let segment = tokio::time::timeout(std::time::Duration::from_secs(60), got_rx.recv())
                .await
                .expect("reader made progress");
            got.push(segment.unwrap());
        }
        assert_eq!(
            got,
            vec![
                (0, vec![0, 0, 0]),
                (1, vec![1, 1, 1]),
                (2, vec![2, 2, 2]),
                (4, b"last".to_vec()),
            ]
        );
        // Deleting the channel ends the subscriber.
        assert!(server.delete_channel("sim-in"));
        reader.await.unwrap();
        assert!(got_rx.recv().await.is_none());
        assert!(publisher.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn closed_resolves_when_the_channel_is_deleted() {
        let server = TrickleServer::new(TrickleConfig::default());
        server.create_channel("c", "application/json");
        let waiter = {
            let server = server.clone();
            tokio::spawn(async move { server.closed("c").await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        server.delete_channel("c");
        waiter.await.unwrap();
        // A missing channel counts as closed.
        server.closed("never-existed").await;
    }
}
