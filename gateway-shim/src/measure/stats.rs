//! Streaming statistics the recorder needs: mean and population standard deviation in constant
//! memory, and nearest-rank percentiles in linear time.

/// Count, mean and spread of a stream of values, in constant memory (Welford's algorithm, which
/// stays accurate where the naive sum-of-squares formula cancels catastrophically).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RunningStats {
    count: u64,
    mean: f64,
    /// Sum of squared deviations from the running mean.
    m2: f64,
}

impl RunningStats {
    pub(super) fn push(&mut self, value: f64) {
        self.count += 1;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// The mean, or `None` before the first value.
    pub(super) fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean)
    }

    /// The population standard deviation, or `None` before the first value.
    pub(super) fn population_std(&self) -> Option<f64> {
        // Rounding can leave m2 a hair below zero for identical values; zero is the truth.
        (self.count > 0).then(|| (self.m2 / self.count as f64).max(0.0).sqrt())
    }
}

/// The nearest-rank `percentile` (0..=100) of `values`: the smallest value such that at least
/// `percentile` % of the values are at or below it. Reorders `values`; expected linear time.
/// Returns 0 for an empty slice (callers only ask about non-empty ones).
pub(super) fn nearest_rank(values: &mut [u32], percentile: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    let rank = (percentile / 100.0 * values.len() as f64).ceil() as usize;
    let index = rank.clamp(1, values.len()) - 1;
    *values.select_nth_unstable(index).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_stats_match_the_two_pass_formula() {
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut stats = RunningStats::default();
        for value in values {
            stats.push(value);
        }
        assert_eq!(stats.mean(), Some(5.0));
        assert_eq!(stats.population_std(), Some(2.0));
    }

    #[test]
    fn running_stats_without_values_have_none() {
        let stats = RunningStats::default();
        assert_eq!(stats.mean(), None);
        assert_eq!(stats.population_std(), None);
    }

    #[test]
    fn nearest_rank_follows_its_definition() {
        let mut values: Vec<u32> = (1..=20).rev().collect();
        assert_eq!(nearest_rank(&mut values, 5.0), 1);
        assert_eq!(nearest_rank(&mut values, 50.0), 10);
        assert_eq!(nearest_rank(&mut values, 51.0), 11);
        assert_eq!(nearest_rank(&mut values, 100.0), 20);
        assert_eq!(nearest_rank(&mut values, 0.0), 1);
        assert_eq!(nearest_rank(&mut [], 50.0), 0);
        assert_eq!(nearest_rank(&mut [7], 5.0), 7);
    }
}
