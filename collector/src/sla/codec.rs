//! The compact binary encoding of [`CellSums`] that stores keep per cell.
//!
//! JSON spells every field name and every histogram bucket as text (about 1 KB a cell), and
//! decoding it dominated SLA queries that read tens of thousands of cells. This encoding writes
//! the same numbers as LEB128 varints in a fixed field order, and each histogram as its number of
//! non-empty buckets followed by (bucket index delta, count) pairs: a typical hourly cell takes
//! well under 100 bytes and decodes without parsing text. The first byte is a format version, so
//! a later layout can be told apart from this one. The encoding is exact: decoding an encoded
//! value gives it back unchanged.

use super::cell::{CellSums, MetricSum};
use super::histogram::BucketCounts;

/// The first byte of the first layout: the 12 counters and 6 metric sums, then the histograms.
/// Still decoded (cells written by older collectors); the counters it lacks read as 0.
const FORMAT_V1: u8 = 1;
/// The first byte of every encoding this module writes: the v1 layout with the 8 counters of
/// completion and the declared SLO ([`slo_counters`]) between the metric sums and the histograms.
const FORMAT_V2: u8 = 2;

/// Why bytes could not be decoded as cell sums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The bytes ended inside a value.
    #[error("cell sums end early, at byte {0}")]
    Truncated(usize),
    /// The first byte names a format this collector does not know.
    #[error("unknown cell sums format {0}")]
    UnknownFormat(u8),
    /// A varint is longer than a u64 can hold.
    #[error("varint at byte {0} overflows 64 bits")]
    Overflow(usize),
    /// A histogram bucket index is beyond the u16 range.
    #[error("histogram bucket index at byte {0} is out of range")]
    BucketOutOfRange(usize),
    /// Bytes follow the last value.
    #[error("{0} bytes follow the cell sums")]
    Trailing(usize),
}

/// Encodes `sums` in the binary format.
pub fn encode(sums: &CellSums) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(FORMAT_V2);
    for count in counters(sums) {
        put(&mut out, count);
    }
    for metric in metrics(sums) {
        put(&mut out, metric.count);
        put(&mut out, metric.sum_millionths);
    }
    for count in slo_counters(sums) {
        put(&mut out, count);
    }
    put_buckets(&mut out, sums.startup_ms_buckets.counts());
    put_buckets(&mut out, sums.e2e_p50_ms_buckets.counts());
    put_buckets(&mut out, sums.output_fps_buckets.counts());
    out
}

/// Decodes bytes written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<CellSums, CodecError> {
    let mut reader = Reader { bytes, at: 0 };
    let mut sums = decode_head(&mut reader)?;
    reader.buckets(sums.startup_ms_buckets.counts_mut())?;
    reader.buckets(sums.e2e_p50_ms_buckets.counts_mut())?;
    reader.buckets(sums.output_fps_buckets.counts_mut())?;
    if reader.at != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - reader.at));
    }
    Ok(sums)
}

/// Decodes the counters and metric sums of bytes written by [`encode`], leaving the histograms
/// empty. Scoring a cell or a merged group needs no histogram of its own (only cohorts do), and
/// building the histograms' maps is most of the decoding work, so reads that only score skip it.
pub fn decode_without_histograms(bytes: &[u8]) -> Result<CellSums, CodecError> {
    decode_head(&mut Reader { bytes, at: 0 })
}

fn decode_head(reader: &mut Reader<'_>) -> Result<CellSums, CodecError> {
    let format = reader.byte()?;
    if format != FORMAT_V1 && format != FORMAT_V2 {
        return Err(CodecError::UnknownFormat(format));
    }
    let mut sums = CellSums::default();
    for count in counters_mut(&mut sums) {
        *count = reader.varint()?;
    }
    for metric in metrics_mut(&mut sums) {
        metric.count = reader.varint()?;
        metric.sum_millionths = reader.varint()?;
    }
    if format == FORMAT_V2 {
        for count in slo_counters_mut(&mut sums) {
            *count = reader.varint()?;
        }
    }
    Ok(sums)
}

/// The plain counters of the v1 layout in their encoded order. Adding a field to [`CellSums`]
/// needs a new format version; the exhaustive destructuring below makes forgetting it a compile
/// error.
fn counters(sums: &CellSums) -> [u64; 12] {
    let CellSums {
        completed: _,
        completion_trials: _,
        slo_startup_trials: _,
        slo_startup_met: _,
        slo_e2e_trials: _,
        slo_e2e_met: _,
        slo_fps_trials: _,
        slo_fps_met: _,
        sessions,
        passed,
        failed,
        unscored_busy,
        unscored_indeterminate,
        startup_attempts,
        startup_successes,
        no_swap,
        swaps,
        output_viable,
        evidence_complete,
        stalls,
        startup_ms: _,
        e2e_p50_ms: _,
        output_fps: _,
        fps_jitter: _,
        stall_ms: _,
        session_ms: _,
        startup_ms_buckets: _,
        e2e_p50_ms_buckets: _,
        output_fps_buckets: _,
    } = sums;
    [
        *sessions,
        *passed,
        *failed,
        *unscored_busy,
        *unscored_indeterminate,
        *startup_attempts,
        *startup_successes,
        *no_swap,
        *swaps,
        *output_viable,
        *evidence_complete,
        *stalls,
    ]
}

fn counters_mut(sums: &mut CellSums) -> [&mut u64; 12] {
    [
        &mut sums.sessions,
        &mut sums.passed,
        &mut sums.failed,
        &mut sums.unscored_busy,
        &mut sums.unscored_indeterminate,
        &mut sums.startup_attempts,
        &mut sums.startup_successes,
        &mut sums.no_swap,
        &mut sums.swaps,
        &mut sums.output_viable,
        &mut sums.evidence_complete,
        &mut sums.stalls,
    ]
}

/// The counters v2 added, in their encoded order.
fn slo_counters(sums: &CellSums) -> [u64; 8] {
    [
        sums.completed,
        sums.completion_trials,
        sums.slo_startup_trials,
        sums.slo_startup_met,
        sums.slo_e2e_trials,
        sums.slo_e2e_met,
        sums.slo_fps_trials,
        sums.slo_fps_met,
    ]
}

fn slo_counters_mut(sums: &mut CellSums) -> [&mut u64; 8] {
    [
        &mut sums.completed,
        &mut sums.completion_trials,
        &mut sums.slo_startup_trials,
        &mut sums.slo_startup_met,
        &mut sums.slo_e2e_trials,
        &mut sums.slo_e2e_met,
        &mut sums.slo_fps_trials,
        &mut sums.slo_fps_met,
    ]
}

fn metrics(sums: &CellSums) -> [&MetricSum; 6] {
    [
        &sums.startup_ms,
        &sums.e2e_p50_ms,
        &sums.output_fps,
        &sums.fps_jitter,
        &sums.stall_ms,
        &sums.session_ms,
    ]
}

fn metrics_mut(sums: &mut CellSums) -> [&mut MetricSum; 6] {
    [
        &mut sums.startup_ms,
        &mut sums.e2e_p50_ms,
        &mut sums.output_fps,
        &mut sums.fps_jitter,
        &mut sums.stall_ms,
        &mut sums.session_ms,
    ]
}

fn put(out: &mut Vec<u8>, mut value: u64) {
    loop {
        // The mask keeps the low seven bits, so the cast cannot truncate anything kept.
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn put_buckets(out: &mut Vec<u8>, counts: &BucketCounts) {
    let buckets: Vec<(u16, u64)> = counts.iter().collect();
    put(out, buckets.len() as u64);
    let mut previous = 0u16;
    for (bucket, count) in buckets {
        // Buckets come in increasing order, so each delta is small and never negative.
        put(out, u64::from(bucket - previous));
        put(out, count);
        previous = bucket;
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or(CodecError::Truncated(self.at))?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let start = self.at;
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if (shift == 63 && bits > 1) || shift > 63 {
                return Err(CodecError::Overflow(start));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn buckets(&mut self, counts: &mut BucketCounts) -> Result<(), CodecError> {
        let len = self.varint()?;
        let mut bucket = 0u64;
        for _ in 0..len {
            let at = self.at;
            bucket = bucket.saturating_add(self.varint()?);
            let index = u16::try_from(bucket).map_err(|_| CodecError::BucketOutOfRange(at))?;
            counts.add_count(index, self.varint()?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_their_edges() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put(&mut out, value);
            let mut reader = Reader { bytes: &out, at: 0 };
            assert_eq!(reader.varint(), Ok(value));
            assert_eq!(reader.at, out.len());
        }
        let too_long = [0xff; 11];
        let mut reader = Reader {
            bytes: &too_long,
            at: 0,
        };
        assert_eq!(reader.varint(), Err(CodecError::Overflow(0)));
    }

    #[test]
    fn cells_of_the_v1_layout_still_decode_with_the_new_counters_at_zero() {
        // A cell an older collector wrote: sessions 3, startup attempts 2, one stall, a startup
        // latency sum of 1.5 s over one value and one startup bucket.
        let mut sums = CellSums {
            sessions: 3,
            startup_attempts: 2,
            stalls: 1,
            completed: 7,
            slo_fps_met: 5,
            ..CellSums::default()
        };
        sums.startup_ms.add(1500.0);
        sums.startup_ms_buckets.record(1500.0);
        let v2 = encode(&sums);
        assert_eq!(v2[0], FORMAT_V2);
        assert_eq!(decode(&v2), Ok(sums.clone()));
        // The v1 bytes are the v2 bytes without the 8 counters after the metric sums (one byte
        // each at these values).
        let head_len = 1
            + counters(&sums)
                .iter()
                .map(|c| varint_len(*c))
                .sum::<usize>()
            + metrics(&sums)
                .iter()
                .map(|m| varint_len(m.count) + varint_len(m.sum_millionths))
                .sum::<usize>();
        let mut v1 = vec![FORMAT_V1];
        v1.extend_from_slice(&v2[1..head_len]);
        v1.extend_from_slice(&v2[head_len + 8..]);
        let old = decode(&v1).expect("v1 decodes");
        assert_eq!(
            old,
            CellSums {
                completed: 0,
                slo_fps_met: 0,
                ..sums
            }
        );
    }

    fn varint_len(value: u64) -> usize {
        let mut out = Vec::new();
        put(&mut out, value);
        out.len()
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        let mut sums = CellSums {
            sessions: 3,
            completed: 2,
            slo_e2e_trials: 1,
            ..CellSums::default()
        };
        sums.startup_ms_buckets.record(1500.0);
        let bytes = encode(&sums);
        assert_eq!(decode(&bytes), Ok(sums.clone()));
        let light = decode_without_histograms(&bytes).expect("light");
        assert_eq!(light.startup_ms_buckets.total(), 0);
        assert_eq!(
            light,
            CellSums {
                startup_ms_buckets: Default::default(),
                ..sums
            }
        );
        for end in 0..bytes.len() {
            assert!(decode(&bytes[..end]).is_err(), "prefix of {end} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(CodecError::Trailing(1)));
        let mut other = bytes;
        other[0] = 9;
        assert_eq!(decode(&other), Err(CodecError::UnknownFormat(9)));
    }
}
