//! Packetisation of an arbitrarily chunked byte stream into 188-byte packets, with resync.
//!
//! [`PacketSync`] owns packet alignment: it carries partial packets across chunks, remembers
//! which chunk (and so which arrival time) every byte came from, and after a sync loss skips
//! bytes until it finds a sync byte that is confirmed by another one a packet later.
//!
//! While in sync a packet is accepted as soon as its last byte is there, so frames are never
//! held back waiting for the next chunk. When the byte after a packet is already available
//! and is not a sync byte, the packet is checked more closely (see `scan`); how damaged input
//! is recovered can therefore depend on where chunks happen to end, but valid input never
//! does.

use super::{PACKET_SIZE, SYNC_BYTE};

/// Counters kept by [`PacketSync`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SyncStats {
    pub sync_losses: u64,
    pub discarded_bytes: u64,
    pub truncated_packets: u64,
}

/// Splits chunks into packets; see the module documentation.
#[derive(Debug)]
pub(crate) struct PacketSync {
    /// Bytes not yet turned into packets; `buf[0]` is at stream offset `buf_offset`.
    buf: Vec<u8>,
    buf_offset: u64,
    /// `(stream offset of a chunk's first byte, arrival time)` for every chunk that still has
    /// bytes in `buf`, oldest first.
    chunk_times: Vec<(u64, u64)>,
    /// True while packets follow each other back to back; a packet is then accepted on its
    /// own sync byte without looking ahead. Every input (a file, a trickle segment) starts at
    /// a packet boundary, so this starts out true; after a sync loss a candidate sync byte
    /// must be confirmed by another one a packet later.
    synced: bool,
    /// True while inside a run of skipped bytes, so that one run counts as one sync loss.
    in_loss: bool,
    pub stats: SyncStats,
}

impl Default for PacketSync {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            buf_offset: 0,
            chunk_times: Vec::new(),
            synced: true,
            in_loss: false,
            stats: SyncStats::default(),
        }
    }
}

impl PacketSync {
    /// Feeds one chunk that arrived at `now_us`; calls `on_packet(packet, first_byte_us,
    /// last_byte_us)` for every packet it completes, in stream order.
    pub fn handle(
        &mut self,
        data: &[u8],
        now_us: u64,
        on_packet: &mut impl FnMut(&[u8; PACKET_SIZE], u64, u64),
    ) {
        if data.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            // Fast path: nothing is carried over, so packets are read straight from the chunk
            // and only its tail is copied.
            let times = [(self.buf_offset, now_us)];
            let consumed = self.scan(data, self.buf_offset, &times, false, on_packet);
            self.buf_offset += consumed as u64;
            if consumed < data.len() {
                self.buf.extend_from_slice(&data[consumed..]);
                self.chunk_times.clear();
                self.chunk_times.push((self.buf_offset, now_us));
            }
            return;
        }
        let chunk_offset = self.buf_offset + self.buf.len() as u64;
        self.buf.extend_from_slice(data);
        self.chunk_times.push((chunk_offset, now_us));
        self.drain(false, on_packet);
    }

    /// Ends the input: accepts a final unconfirmed packet, and discards (and counts) any
    /// partial packet that will never be completed.
    pub fn finish(&mut self, on_packet: &mut impl FnMut(&[u8; PACKET_SIZE], u64, u64)) {
        if !self.buf.is_empty() {
            self.drain(true, on_packet);
        }
        if !self.buf.is_empty() {
            let leftover = self.buf.len() as u64;
            if self.buf[0] == SYNC_BYTE {
                self.stats.truncated_packets += 1;
            } else if !self.in_loss {
                self.stats.sync_losses += 1;
            }
            self.stats.discarded_bytes += leftover;
            self.buf_offset += leftover;
            self.buf.clear();
            self.chunk_times.clear();
        }
        // The next input (the next trickle segment) starts at a packet boundary again, and a
        // run of garbage there is a new sync loss.
        self.synced = true;
        self.in_loss = false;
    }

    fn drain(&mut self, at_end: bool, on_packet: &mut impl FnMut(&[u8; PACKET_SIZE], u64, u64)) {
        let buf = std::mem::take(&mut self.buf);
        let times = std::mem::take(&mut self.chunk_times);
        let consumed = self.scan(&buf, self.buf_offset, &times, at_end, on_packet);
        self.buf = buf;
        self.chunk_times = times;
        self.buf.drain(..consumed);
        self.buf_offset += consumed as u64;
        // Keep only the chunks that still own bytes in `buf`: the last chunk starting at or
        // before `buf_offset`, and all later ones.
        let keep_from = self
            .chunk_times
            .iter()
            .rposition(|&(offset, _)| offset <= self.buf_offset)
            .unwrap_or(0);
        self.chunk_times.drain(..keep_from);
        if self.buf.is_empty() {
            self.chunk_times.clear();
        }
    }

    /// Emits every packet that can be emitted from `bytes` (which start at stream offset
    /// `base`) and returns how many bytes were consumed.
    fn scan(
        &mut self,
        bytes: &[u8],
        base: u64,
        times: &[(u64, u64)],
        at_end: bool,
        on_packet: &mut impl FnMut(&[u8; PACKET_SIZE], u64, u64),
    ) -> usize {
        let time_at = |offset: u64| -> u64 {
            let i = times.partition_point(|&(start, _)| start <= offset);
            // `times[0]` starts at or before every byte in `bytes`, so `i >= 1`.
            times[i.saturating_sub(1)].1
        };
        let mut pos = 0;
        while pos < bytes.len() {
            let remaining = bytes.len() - pos;
            if bytes[pos] == SYNC_BYTE {
                if remaining < PACKET_SIZE {
                    break;
                }
                let confirmed = if remaining > PACKET_SIZE {
                    if bytes[pos + PACKET_SIZE] == SYNC_BYTE {
                        true
                    } else if self.synced {
                        // The packet after this one is misaligned. Either bytes were inserted
                        // or lost inside this packet (keep it: its start is aligned with the
                        // previous packet), or this "packet" is garbage that happens to start
                        // with a sync byte and overlaps the real next packet. Only the second
                        // case has a confirmed packet start less than a packet away.
                        let window_end = pos + 2 * PACKET_SIZE;
                        if window_end > bytes.len() && !at_end {
                            break;
                        }
                        !(pos + 1..pos + PACKET_SIZE).any(|q| {
                            bytes[q] == SYNC_BYTE && bytes.get(q + PACKET_SIZE) == Some(&SYNC_BYTE)
                        })
                    } else {
                        false
                    }
                } else if self.synced || at_end {
                    // Nothing follows yet. In sync, the packet is taken at once so that frames
                    // complete without waiting for the next chunk.
                    true
                } else {
                    // A lone candidate: wait for the byte that confirms it.
                    break;
                };
                if confirmed {
                    self.synced = true;
                    self.in_loss = false;
                    let packet: &[u8; PACKET_SIZE] = bytes[pos..pos + PACKET_SIZE]
                        .try_into()
                        .expect("slice is exactly PACKET_SIZE long");
                    let start = base + pos as u64;
                    on_packet(
                        packet,
                        time_at(start),
                        time_at(start + PACKET_SIZE as u64 - 1),
                    );
                    pos += PACKET_SIZE;
                    continue;
                }
            }
            // Not a packet start: skip to the next candidate sync byte.
            self.synced = false;
            if !self.in_loss {
                self.in_loss = true;
                self.stats.sync_losses += 1;
            }
            let skip = bytes[pos + 1..]
                .iter()
                .position(|&b| b == SYNC_BYTE)
                .map_or(remaining, |i| i + 1);
            self.stats.discarded_bytes += skip as u64;
            pos += skip;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(tag: u8) -> Vec<u8> {
        let mut p = vec![tag; PACKET_SIZE];
        p[0] = SYNC_BYTE;
        p
    }

    fn collect(
        sync: &mut PacketSync,
        chunks: &[(&[u8], u64)],
        finish: bool,
    ) -> Vec<(u8, u64, u64)> {
        let mut out = Vec::new();
        let mut push = |p: &[u8; PACKET_SIZE], first: u64, last: u64| out.push((p[1], first, last));
        for (chunk, now) in chunks {
            sync.handle(chunk, *now, &mut push);
        }
        if finish {
            sync.finish(&mut push);
        }
        out
    }

    #[test]
    fn straddling_packets_keep_first_and_last_chunk_times() {
        let stream: Vec<u8> = [packet(1), packet(2), packet(3)].concat();
        let mut sync = PacketSync::default();
        let chunks: [(&[u8], u64); 3] = [
            (&stream[..100], 10),
            (&stream[100..300], 20),
            (&stream[300..], 30),
        ];
        let out = collect(&mut sync, &chunks, true);
        assert_eq!(out, vec![(1, 10, 20), (2, 20, 30), (3, 30, 30)]);
        assert_eq!(sync.stats, SyncStats::default());
    }

    #[test]
    fn resyncs_after_garbage_and_counts_one_loss_per_run() {
        let stream: Vec<u8> = [
            packet(1),
            vec![0x00, 0x47, 0x12, 0x47],
            packet(2),
            packet(3),
        ]
        .concat();
        let mut sync = PacketSync::default();
        let out = collect(&mut sync, &[(&stream, 5)], true);
        assert_eq!(out.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(sync.stats.sync_losses, 1);
        assert_eq!(sync.stats.discarded_bytes, 4);
    }

    #[test]
    fn finish_counts_truncated_packet() {
        let stream: Vec<u8> = [packet(1), packet(2)[..50].to_vec()].concat();
        let mut sync = PacketSync::default();
        let out = collect(&mut sync, &[(&stream, 5)], true);
        assert_eq!(out.len(), 1);
        assert_eq!(sync.stats.truncated_packets, 1);
        assert_eq!(sync.stats.discarded_bytes, 50);
    }
}
