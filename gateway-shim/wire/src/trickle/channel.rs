//! Trickle server state for one channel: a ring of five segments (`idx % 5`), each an
//! append-only buffer that readers follow from byte 0 to the live tail.
//!
//! This is plain synchronous state with wakeups; HTTP handlers and the local API drive it, and
//! time arrives as an argument so idle sweeps are decided by the caller's clock.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Segments kept per channel, as in go-livepeer.
pub const RING_SEGMENTS: usize = 5;

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves the state consistent between statements, so the data stays valid.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn slot(idx: i64) -> usize {
    // rem_euclid keeps the slot in 0..RING_SEGMENTS even for negative input.
    idx.rem_euclid(RING_SEGMENTS as i64) as usize
}

/// One segment: an append-only list of byte chunks plus a closed flag.
pub struct Segment {
    idx: i64,
    state: Mutex<SegmentState>,
    changed: Notify,
}

#[derive(Default)]
struct SegmentState {
    chunks: Vec<Bytes>,
    closed: bool,
}

impl Segment {
    fn new(idx: i64) -> Arc<Self> {
        Arc::new(Self {
            idx,
            state: Mutex::new(SegmentState::default()),
            changed: Notify::new(),
        })
    }

    pub fn idx(&self) -> i64 {
        self.idx
    }

    /// Appends bytes and wakes readers. Writes to a closed segment are dropped (returns false):
    /// a closed segment is final for every reader.
    pub fn write(&self, data: Bytes) -> bool {
        if data.is_empty() {
            return true;
        }
        let mut state = lock(&self.state);
        if state.closed {
            return false;
        }
        state.chunks.push(data);
        drop(state);
        self.changed.notify_waiters();
        true
    }

    /// Marks the segment complete and wakes readers and a waiting publisher.
    pub fn close(&self) {
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        state.closed = true;
        drop(state);
        self.changed.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Returns the chunk at `*pos` (advancing it), waiting for it to be written; `None` once
    /// the segment is closed and fully read.
    pub async fn next_chunk(&self, pos: &mut usize) -> Option<Bytes> {
        loop {
            // Register for wakeups before looking, so a write in between is not missed.
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let state = lock(&self.state);
                if let Some(chunk) = state.chunks.get(*pos) {
                    *pos += 1;
                    return Some(chunk.clone());
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Completes when the segment is closed.
    pub async fn wait_closed(&self) {
        loop {
            let notified = self.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

/// What a read lookup found.
pub struct ReadLookup {
    /// The segment, when it exists (or was just precreated for a waiting reader).
    pub segment: Option<Arc<Segment>>,
    /// The requested index with -1 / -2 resolved.
    pub idx: i64,
    /// The channel's next write index at lookup time (`Lp-Trickle-Latest`).
    pub latest: i64,
    /// Whether the channel is closed.
    pub closed: bool,
}

/// A channel: name, MIME type and the segment ring.
pub struct Channel {
    name: String,
    mime: String,
    state: Mutex<ChannelState>,
    /// Bumped whenever the next write index changes or the channel closes.
    signal: watch::Sender<u64>,
}

struct ChannelState {
    ring: [Option<Arc<Segment>>; RING_SEGMENTS],
    next_write: i64,
    write_time: Instant,
    closed: bool,
}

impl Channel {
    pub fn new(name: &str, mime: &str, now: Instant) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            mime: mime.to_owned(),
            state: Mutex::new(ChannelState {
                ring: Default::default(),
                next_write: 0,
                write_time: now,
                closed: false,
            }),
            signal: watch::Sender::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mime(&self) -> &str {
        &self.mime
    }

    pub fn next_write(&self) -> i64 {
        lock(&self.state).next_write
    }

    pub fn write_time(&self) -> Instant {
        lock(&self.state).write_time
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// A receiver that changes whenever the next write index moves or the channel closes.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.signal.subscribe()
    }

    fn bump(&self) {
        self.signal
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Finds or creates the segment a publisher writes to. `-1` means the next index.
    ///
    /// An open segment with the same index is reused (a retried or preconnected POST); any
    /// other occupant of the ring slot is closed and replaced. With `reset`, the publisher
    /// restarts its numbering: every other segment is closed so blocked readers wake, except
    /// the one right after (which a preconnect may already hold), and the next write index
    /// becomes `idx` so `-1` readers and `Lp-Trickle-Latest` point at the new numbering.
    pub fn segment_for_write(&self, idx: i64, reset: bool) -> (Arc<Segment>, i64) {
        let mut state = lock(&self.state);
        let idx = if idx == -1 { state.next_write } else { idx };
        if reset {
            for entry in state.ring.iter_mut() {
                if let Some(segment) = entry
                    && segment.idx != idx
                    && segment.idx != idx + 1
                {
                    segment.close();
                    *entry = None;
                }
            }
            if state.next_write != idx {
                state.next_write = idx;
                drop(state);
                self.bump();
                state = lock(&self.state);
            }
        }
        let position = slot(idx);
        if let Some(segment) = &state.ring[position] {
            if segment.idx == idx && !segment.is_closed() {
                return (segment.clone(), idx);
            }
            segment.close();
        }
        let segment = Segment::new(idx);
        state.ring[position] = Some(segment.clone());
        (segment, idx)
    }

    /// Records a write to segment `idx`. The first byte of a segment moves the next write
    /// index to `idx + 1` (as go-livepeer does); every write refreshes the idle clock.
    pub fn note_write(&self, idx: i64, first_byte: bool, now: Instant) {
        let mut state = lock(&self.state);
        state.write_time = now;
        if first_byte && state.next_write != idx + 1 {
            state.next_write = idx + 1;
            drop(state);
            self.bump();
        }
    }

    /// Records that `segment` ended without a byte. Its index is used up (the next write
    /// index moves past it, as go-livepeer does, so readers do not wait on it) unless the
    /// segment already left the ring: a reset or a newer segment replaced it, and moving the
    /// index then would undo the newer numbering.
    pub fn note_empty_segment(&self, segment: &Arc<Segment>, now: Instant) {
        let mut state = lock(&self.state);
        let current = state.ring[slot(segment.idx)]
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(held, segment));
        if !current {
            return;
        }
        state.write_time = now;
        if state.next_write != segment.idx + 1 {
            state.next_write = segment.idx + 1;
            drop(state);
            self.bump();
        }
    }

    /// Finds the segment a reader asked for. `-1` is the next segment to be written, `-2` the
    /// one being written. A reader asking for exactly the next index (or for 1 before anything
    /// was written) gets a precreated segment to wait on: this is how readers preconnect.
    pub fn segment_for_read(&self, idx: i64) -> ReadLookup {
        let mut state = lock(&self.state);
        let idx = match idx {
            -1 => state.next_write,
            -2 => (state.next_write - 1).max(0),
            other => other,
        };
        let position = slot(idx);
        let mut segment = state.ring[position]
            .as_ref()
            .filter(|segment| segment.idx == idx)
            .cloned();
        let preconnect = idx == state.next_write || (state.next_write == 0 && idx == 1);
        if segment.is_none() && preconnect && !state.closed {
            let fresh = Segment::new(idx);
            state.ring[position] = Some(fresh.clone());
            segment = Some(fresh);
        }
        ReadLookup {
            segment,
            idx,
            latest: state.next_write,
            closed: state.closed,
        }
    }

    /// Closes segment `idx` if the ring holds it; false when it does not.
    pub fn close_segment(&self, idx: i64) -> bool {
        let state = lock(&self.state);
        match &state.ring[slot(idx)] {
            Some(segment) if segment.idx == idx => {
                segment.close();
                true
            }
            _ => false,
        }
    }

    /// Closes the channel: every segment is closed (waking readers and waiting publishers)
    /// and dropped from the ring.
    pub fn close(&self) {
        let mut state = lock(&self.state);
        for entry in state.ring.iter_mut() {
            if let Some(segment) = entry.take() {
                segment.close();
            }
        }
        state.closed = true;
        drop(state);
        self.bump();
    }

    /// Completes once the channel is closed.
    pub async fn wait_closed(&self) {
        let mut signal = self.watch();
        loop {
            signal.borrow_and_update();
            if self.is_closed() {
                return;
            }
            if signal.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Arc<Channel> {
        Channel::new("c", "video/MP2T", Instant::now())
    }

    #[test]
    fn reader_of_next_index_gets_a_precreated_segment() {
        let ch = channel();
        let lookup = ch.segment_for_read(-1);
        assert_eq!(lookup.idx, 0);
        assert!(lookup.segment.is_some());
        // The special case: index 1 before anything was written.
        assert!(ch.segment_for_read(1).segment.is_some());
        // Too far ahead: nothing.
        let lookup = ch.segment_for_read(2);
        assert!(lookup.segment.is_none());
        assert_eq!(lookup.latest, 0);
        // A writer of 0 reuses the precreated segment the reader waits on.
        let reader_segment = ch.segment_for_read(0).segment.unwrap();
        let (writer_segment, idx) = ch.segment_for_write(-1, false);
        assert_eq!(idx, 0);
        assert!(Arc::ptr_eq(&reader_segment, &writer_segment));
    }

    #[test]
    fn ring_evicts_the_sixth_oldest() {
        let ch = channel();
        for idx in 0..6 {
            let (segment, _) = ch.segment_for_write(idx, false);
            ch.note_write(idx, true, Instant::now());
            segment.write(Bytes::from_static(b"x"));
            segment.close();
        }
        assert!(ch.segment_for_read(0).segment.is_none());
        assert!(ch.segment_for_read(1).segment.is_some());
        assert_eq!(ch.segment_for_read(-2).idx, 5);
        assert_eq!(ch.next_write(), 6);
    }

    #[test]
    fn reset_closes_other_segments_but_keeps_the_next() {
        let ch = channel();
        let segments: Vec<_> = (0..4).map(|i| ch.segment_for_write(i, false).0).collect();
        ch.note_write(3, true, Instant::now());
        let (again, idx) = ch.segment_for_write(2, true);
        assert_eq!(idx, 2);
        assert!(Arc::ptr_eq(&again, &segments[2]));
        assert!(segments[0].is_closed() && segments[1].is_closed());
        assert!(!segments[2].is_closed() && !segments[3].is_closed());
        assert_eq!(ch.next_write(), 2);
    }

    #[test]
    fn reset_to_zero_wakes_a_reader_waiting_far_ahead() {
        let ch = channel();
        ch.note_write(8, true, Instant::now());
        let waiting = ch.segment_for_read(-1).segment.unwrap();
        assert_eq!(waiting.idx(), 9);
        let (_, idx) = ch.segment_for_write(0, true);
        assert_eq!(idx, 0);
        assert!(waiting.is_closed());
        assert_eq!(ch.segment_for_read(-1).idx, 0);
    }

    #[test]
    fn closed_segment_with_same_index_is_replaced_for_a_new_writer() {
        let ch = channel();
        let (first, _) = ch.segment_for_write(0, false);
        first.close();
        let (second, _) = ch.segment_for_write(0, false);
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(!second.is_closed());
        assert!(!first.write(Bytes::from_static(b"late")));
    }

    #[tokio::test]
    async fn readers_follow_the_live_tail_from_byte_zero() {
        let segment = Segment::new(0);
        segment.write(Bytes::from_static(b"a"));
        let mut pos = 0;
        assert_eq!(segment.next_chunk(&mut pos).await.unwrap(), "a");
        let waiter = {
            let segment = segment.clone();
            tokio::spawn(async move {
                let mut pos = 1;
                let b = segment.next_chunk(&mut pos).await;
                let end = segment.next_chunk(&mut pos).await;
                (b, end)
            })
        };
        tokio::task::yield_now().await;
        segment.write(Bytes::from_static(b"b"));
        segment.close();
        let (b, end) = waiter.await.unwrap();
        assert_eq!(b.unwrap(), "b");
        assert!(end.is_none());
        // A late reader still starts at byte 0.
        let mut pos = 0;
        assert_eq!(segment.next_chunk(&mut pos).await.unwrap(), "a");
    }
}
