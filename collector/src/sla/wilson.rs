//! The Wilson score interval for a binomial proportion: the confidence interval every success
//! rate of the SLA is published with.
//!
//! Wilson rather than the normal ("Wald") interval because SLA cells are small (a tester runs a
//! handful of sessions per hour) and their rates sit near 1, exactly where the Wald interval
//! collapses to zero width or leaves [0, 1].

/// The normal quantile for a two-sided 95 % interval, rounded to the conventional 1.96 (the exact
/// value is 1.95996...) so that anyone can reproduce the published bounds by hand.
pub const Z_95: f64 = 1.96;

/// The Wilson score interval `(low, high)` for `successes` out of `n` trials at normal quantile
/// `z` ([`Z_95`] for 95 %).
///
/// `None` when there is no trial (`n == 0`), when `successes > n`, or when `z` is not a finite
/// non-negative number: no data has no interval, and a nonsensical count is never scored.
pub fn wilson_interval(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n || !z.is_finite() || z < 0.0 {
        return None;
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half_width = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // Rounding can push a bound a hair past [0, 1] when p is 0 or 1; the true bounds never do.
    Some((
        (center - half_width).clamp(0.0, 1.0),
        (center + half_width).clamp(0.0, 1.0),
    ))
}
