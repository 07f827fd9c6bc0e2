//! Fixed-layout, additive histograms for the per-session values the cohort percentiles come from.
//!
//! A cohort is seven days of cells; its percentiles must come from sums, never from averaging
//! per-cell percentiles. So each cell keeps bucket counts over a layout fixed here for all time:
//! merging two cells adds their counts bucket by bucket, and a percentile of any union of cells is
//! read off the merged counts. The counts are sparse (only non-empty buckets are stored) because
//! an hourly cell holds a few sessions while the layouts have hundreds of buckets.
//!
//! Changing a layout constant changes the meaning of stored bucket indexes: it needs a new
//! histogram type, not an edit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The smallest latency with a bucket of its own, in milliseconds; smaller values share the
/// underflow bucket 0.
pub const LATENCY_MIN_MS: f64 = 1.0;
/// The largest latency with a bucket of its own, in milliseconds (ten minutes); larger values share
/// the overflow bucket.
pub const LATENCY_MAX_MS: f64 = 600_000.0;
/// Each latency bucket's upper bound is this factor times its lower bound: 5 % resolution.
pub const LATENCY_GROWTH: f64 = 1.05;
/// Number of log-spaced latency buckets between [`LATENCY_MIN_MS`] and [`LATENCY_MAX_MS`]:
/// `ceil(ln(600000) / ln(1.05))`. Bucket `k` in `1..=273` covers `[1.05^(k-1), 1.05^k)` ms (the
/// last one cut at 600 000 ms), bucket 0 covers `[0, 1)` ms and bucket 274 `[600000, inf)` ms.
pub const LATENCY_LOG_BUCKETS: u16 = 273;

/// Width of one FPS bucket, in frames per second.
pub const FPS_BUCKET_WIDTH: f64 = 0.25;
/// The largest FPS with a bucket of its own; larger values share the overflow bucket.
pub const FPS_MAX: f64 = 120.0;
/// Number of linear FPS buckets: bucket `k` in `0..480` covers `[0.25 k, 0.25 (k + 1))` FPS and
/// bucket 480 covers `[120, inf)`.
pub const FPS_LINEAR_BUCKETS: u16 = 480;

/// Sparse bucket counts shared by both layouts: bucket index to number of values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BucketCounts(BTreeMap<u16, u64>);

impl BucketCounts {
    /// The non-empty buckets and their counts, in bucket order (for the binary cell encoding).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().map(|(&bucket, &count)| (bucket, count))
    }

    /// Adds `count` values to `bucket` (for decoding the binary cell encoding).
    pub(crate) fn add_count(&mut self, bucket: u16, count: u64) {
        if count > 0 {
            let mine = self.0.entry(bucket).or_insert(0);
            *mine = mine.saturating_add(count);
        }
    }

    fn record(&mut self, bucket: u16) {
        let count = self.0.entry(bucket).or_insert(0);
        *count = count.saturating_add(1);
    }

    fn merge(&mut self, other: &BucketCounts) {
        for (&bucket, &count) in &other.0 {
            let mine = self.0.entry(bucket).or_insert(0);
            *mine = mine.saturating_add(count);
        }
    }

    fn total(&self) -> u64 {
        self.0
            .values()
            .fold(0u64, |sum, &count| sum.saturating_add(count))
    }

    /// The index of the bucket holding the nearest-rank `q` quantile: the smallest bucket whose
    /// cumulative count reaches `ceil(q * total)` (at least rank 1).
    fn quantile_bucket(&self, q: f64) -> Option<u16> {
        let total = self.total();
        if total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (&bucket, &count) in &self.0 {
            seen = seen.saturating_add(count);
            if seen >= rank {
                return Some(bucket);
            }
        }
        // Unreachable in exact arithmetic (the last bucket brings `seen` to `total >= rank`), but a
        // saturated total from corrupt stored counts could get here; the last bucket is then the
        // honest answer.
        self.0.keys().next_back().copied()
    }
}

/// Counts of latencies in milliseconds over log-spaced buckets (1 ms to 600 s, 5 % apart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LatencyHistogram(BucketCounts);

impl LatencyHistogram {
    /// The bucket counts (for the binary cell encoding).
    pub(crate) fn counts(&self) -> &BucketCounts {
        &self.0
    }

    /// The bucket counts, mutably (for decoding the binary cell encoding).
    pub(crate) fn counts_mut(&mut self) -> &mut BucketCounts {
        &mut self.0
    }

    /// The bucket a latency falls in; `None` for a negative, NaN or infinite value, which is not a
    /// latency and is never recorded.
    pub fn bucket_of(latency_ms: f64) -> Option<u16> {
        if !latency_ms.is_finite() || latency_ms < 0.0 {
            return None;
        }
        if latency_ms < LATENCY_MIN_MS {
            return Some(0);
        }
        if latency_ms >= LATENCY_MAX_MS {
            return Some(LATENCY_LOG_BUCKETS + 1);
        }
        // The logarithm gives the bucket up to rounding at the bounds; the two checks below move a
        // value that rounding put one bucket off back to the bucket whose bounds hold it.
        let estimate = (latency_ms.ln() / LATENCY_GROWTH.ln()).floor() as i32 + 1;
        // The clamp keeps the estimate in 1..=273, so it fits a u16.
        let mut bucket = estimate.clamp(1, i32::from(LATENCY_LOG_BUCKETS)) as u16;
        if bucket > 1 && latency_ms < Self::lower_bound_ms(bucket) {
            bucket -= 1;
        } else if bucket < LATENCY_LOG_BUCKETS && latency_ms >= Self::lower_bound_ms(bucket + 1) {
            bucket += 1;
        }
        Some(bucket)
    }

    /// The smallest latency in a bucket, ms: `1.05^(bucket - 1)` for the log-spaced buckets, 0 for
    /// the underflow bucket and 600 000 for the overflow bucket.
    pub fn lower_bound_ms(bucket: u16) -> f64 {
        if bucket == 0 {
            return 0.0;
        }
        if bucket > LATENCY_LOG_BUCKETS {
            return LATENCY_MAX_MS;
        }
        LATENCY_GROWTH.powi(i32::from(bucket) - 1)
    }

    /// The value a bucket stands for in percentiles: the geometric middle of its bounds (so the
    /// error is at most 2.5 %), 0.5 ms for the underflow bucket and 600 000 ms for the overflow
    /// bucket (a lower bound: "at least ten minutes").
    pub fn representative_ms(bucket: u16) -> f64 {
        if bucket == 0 {
            return LATENCY_MIN_MS / 2.0;
        }
        if bucket > LATENCY_LOG_BUCKETS {
            return LATENCY_MAX_MS;
        }
        let lower = Self::lower_bound_ms(bucket);
        let upper = (lower * LATENCY_GROWTH).min(LATENCY_MAX_MS);
        (lower * upper).sqrt()
    }

    /// Counts one latency; values that are not latencies (see [`Self::bucket_of`]) are ignored.
    pub fn record(&mut self, latency_ms: f64) {
        if let Some(bucket) = Self::bucket_of(latency_ms) {
            self.0.record(bucket);
        }
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.0.merge(&other.0);
    }

    /// Number of values counted.
    pub fn total(&self) -> u64 {
        self.0.total()
    }

    /// The nearest-rank `q` quantile (`q` in `[0, 1]`) as its bucket's representative value;
    /// `None` when the histogram is empty or `q` is out of range.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.0.quantile_bucket(q).map(Self::representative_ms)
    }
}

/// Counts of frame rates over linear buckets 0.25 FPS wide from 0 to 120 FPS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FpsHistogram(BucketCounts);

impl FpsHistogram {
    /// The bucket counts (for the binary cell encoding).
    pub(crate) fn counts(&self) -> &BucketCounts {
        &self.0
    }

    /// The bucket counts, mutably (for decoding the binary cell encoding).
    pub(crate) fn counts_mut(&mut self) -> &mut BucketCounts {
        &mut self.0
    }

    /// The bucket a frame rate falls in; `None` for a negative, NaN or infinite value.
    pub fn bucket_of(fps: f64) -> Option<u16> {
        if !fps.is_finite() || fps < 0.0 {
            return None;
        }
        if fps >= FPS_MAX {
            return Some(FPS_LINEAR_BUCKETS);
        }
        // 0.25 is a power of two, so the division is exact and the floor is the bucket; the clamp
        // only guards the invariant `fps < 120`.
        let bucket = (fps / FPS_BUCKET_WIDTH).floor() as u16;
        Some(bucket.min(FPS_LINEAR_BUCKETS - 1))
    }

    /// The value a bucket stands for in percentiles: its middle (error at most 0.125 FPS), and
    /// 120 FPS for the overflow bucket.
    pub fn representative_fps(bucket: u16) -> f64 {
        if bucket >= FPS_LINEAR_BUCKETS {
            return FPS_MAX;
        }
        (f64::from(bucket) + 0.5) * FPS_BUCKET_WIDTH
    }

    /// Counts one frame rate; values that are not frame rates are ignored.
    pub fn record(&mut self, fps: f64) {
        if let Some(bucket) = Self::bucket_of(fps) {
            self.0.record(bucket);
        }
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &FpsHistogram) {
        self.0.merge(&other.0);
    }

    /// Number of values counted.
    pub fn total(&self) -> u64 {
        self.0.total()
    }

    /// The nearest-rank `q` quantile (`q` in `[0, 1]`) as its bucket's representative value;
    /// `None` when the histogram is empty or `q` is out of range.
    pub fn quantile_fps(&self, q: f64) -> Option<f64> {
        self.0.quantile_bucket(q).map(Self::representative_fps)
    }
}
