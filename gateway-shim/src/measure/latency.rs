//! The e2e latency distribution of one recorder: the figures of an HDR histogram (1 us to 1 h at
//! 3 significant digits) in the memory of the buckets actually used.
//!
//! A full `hdrhistogram::Histogram` of those bounds is 23,552 counters (94 KB with 4-byte
//! counters) per recorder, though a session's latencies fill a few dozen to a few hundred
//! buckets. [`LatencyHistogram`] keeps only the buckets that hold a count, keyed by the lowest
//! value of each, and answers quantiles exactly as the full histogram would; the bucket
//! arithmetic is hdrhistogram's own, through one shared, empty histogram of the same bounds
//! (`SHAPE`). A test records random latencies into both and compares every answer. Latencies
//! spread over more than 2,048 buckets move it to the full array, so no input makes it larger
//! than the full histogram.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use hdrhistogram::Histogram;

/// Significant digits of the latency histogram: 0.1 % relative precision.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The largest latency the histogram tells apart, one hour in microseconds; larger values are
/// recorded as this (the exact maximum is kept beside the histogram by the recorder).
const HIGHEST_US: u64 = 3_600_000_000;

/// The bucket layout: an empty histogram of the bounds, only ever asked about values. Its
/// 1-byte counters cost 23 KB once per process.
static SHAPE: LazyLock<Histogram<u8>> = LazyLock::new(|| {
    Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
        // Invariant: the bounds and precision are constants hdrhistogram accepts (lowest >= 1,
        // highest >= 2 * lowest, 3 significant digits within 0..=5).
        .expect("constant histogram bounds are valid")
});

/// The highest value the buckets hold: the last bucket reaches past [`HIGHEST_US`], and only
/// what lies beyond it is clamped, as hdrhistogram clamps a saturating record.
static HIGHEST_HELD_US: LazyLock<u64> = LazyLock::new(|| {
    SHAPE
        .iter_all()
        .last()
        .map_or(HIGHEST_US, |bucket| bucket.value_iterated_to())
});

/// The most buckets kept sparse. Past this many (about 60 KB of map), a session's latencies are
/// spread so widely that the full array (94 KB) is the smaller form, and the histogram moves to
/// it, so that no input can make it larger than that.
const MAX_SPARSE_BUCKETS: usize = 2_048;

/// The full histogram of the bounds, 4-byte counters.
fn full() -> Histogram<u32> {
    Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
        // Invariant: the same constant bounds as `SHAPE`.
        .expect("constant histogram bounds are valid")
}

/// Recorded latencies, by bucket; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    /// Count per bucket, keyed by the lowest value of the bucket, while sparse.
    buckets: BTreeMap<u64, u64>,
    /// The full histogram, once the buckets used passed [`MAX_SPARSE_BUCKETS`].
    dense: Option<Box<Histogram<u32>>>,
    total: u64,
}

impl LatencyHistogram {
    /// Records one latency; one beyond [`HIGHEST_US`] counts as that, as a saturating record
    /// into the full histogram does.
    pub fn record(&mut self, latency_us: u64) {
        self.total += 1;
        if let Some(dense) = self.dense.as_mut() {
            dense.saturating_record(latency_us);
            return;
        }
        let shape = &*SHAPE;
        let value = if latency_us > *HIGHEST_HELD_US {
            shape.high()
        } else {
            latency_us
        };
        *self
            .buckets
            .entry(shape.lowest_equivalent(value))
            .or_insert(0) += 1;
        if self.buckets.len() > MAX_SPARSE_BUCKETS {
            let mut dense = full();
            for (&lowest, &count) in &self.buckets {
                dense.saturating_record_n(lowest, u32::try_from(count).unwrap_or(u32::MAX));
            }
            self.buckets = BTreeMap::new();
            self.dense = Some(Box::new(dense));
        }
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True before the first record.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value at `quantile` (0 to 1) as `hdrhistogram::Histogram::value_at_quantile` answers
    /// it: the highest value equivalent to the bucket where the count reaches `quantile` of the
    /// total (the lowest for quantile 0); 0 when empty.
    pub fn value_at_quantile(&self, quantile: f64) -> u64 {
        if let Some(dense) = &self.dense {
            return dense.value_at_quantile(quantile);
        }
        let quantile = quantile.min(1.0);
        let target = ((quantile * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (&lowest, &count) in &self.buckets {
            seen += count;
            if seen >= target {
                return if quantile == 0.0 {
                    lowest
                } else {
                    SHAPE.highest_equivalent(lowest)
                };
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng as _, SeedableRng as _};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const QUANTILES: [f64; 12] = [
        0.0, 0.001, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0, 1.5,
    ];

    /// Records `values` into both and compares; returns whether the sparse one went dense.
    fn check(values: &[u64]) -> bool {
        let mut sparse = LatencyHistogram::default();
        let mut dense = full();
        for &value in values {
            sparse.record(value);
            dense.saturating_record(value);
        }
        assert_eq!(sparse.len(), dense.len());
        for quantile in QUANTILES {
            assert_eq!(
                sparse.value_at_quantile(quantile),
                dense.value_at_quantile(quantile),
                "quantile {quantile} of {} values",
                values.len()
            );
        }
        sparse.dense.is_some()
    }

    #[test]
    fn answers_as_the_full_histogram_does() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut went_dense = 0;
        // Latencies as sessions have them (tens of ms, a few outliers), spread over every
        // magnitude, and beyond the highest trackable value.
        for round in 0..200 {
            // Some rounds spread over more buckets than are kept sparse.
            let count = if round % 8 == 2 {
                rng.random_range(3_000..6_000)
            } else {
                rng.random_range(1..2_000)
            };
            let values: Vec<u64> = (0..count)
                .map(|_| match round % 4 {
                    0 => rng.random_range(30_000..60_000),
                    1 => 1u64 << rng.random_range(0..33),
                    2 => rng.random_range(0..5_000_000_000),
                    _ => rng.random_range(HIGHEST_US - 10..HIGHEST_US * 2),
                })
                .collect();
            went_dense += usize::from(check(&values));
        }
        assert!(went_dense > 0, "some rounds compare the full array too");
        check(&[]);
        check(&[0]);
        check(&[u64::MAX, 1]);
    }

    #[test]
    fn keeps_only_the_buckets_it_uses() {
        let mut histogram = LatencyHistogram::default();
        for i in 0..100_000u64 {
            // A steady 40 ms with 2 ms of jitter: one bucket per 32 us, about 125 buckets.
            histogram.record(39_000 + i % 2_000);
        }
        assert_eq!(histogram.len(), 100_000);
        assert!(histogram.dense.is_none());
        assert!(
            histogram.buckets.len() <= 130,
            "{}",
            histogram.buckets.len()
        );
    }

    #[test]
    fn latencies_spread_over_too_many_buckets_move_to_the_full_array() {
        let mut histogram = LatencyHistogram::default();
        for i in 0..=MAX_SPARSE_BUCKETS as u64 {
            // Below 2,048 us every microsecond is a bucket of its own.
            histogram.record(i);
        }
        assert!(histogram.dense.is_some(), "no larger than the full array");
        assert!(histogram.buckets.is_empty());
        assert_eq!(histogram.len(), MAX_SPARSE_BUCKETS as u64 + 1);
    }
}
