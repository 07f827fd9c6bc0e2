//! The scheduling noise of a test run, from which timing tolerances are derived (the tester's
//! and the simulator's timing tests).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `work` while a sampler on the same runtime measures how late its timers fire, and
/// returns the work's output with the 99th percentile of that lateness in milliseconds: the
/// scheduling noise of this run, from which timing tolerances are derived instead of fixed
/// numbers that a loaded machine breaks.
pub async fn with_scheduling_noise<T>(work: impl std::future::Future<Output = T>) -> (T, f64) {
    let stop = CancellationToken::new();
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut late_ms = Vec::new();
            while !stop.is_cancelled() {
                let asked = Duration::from_millis(5);
                let t = tokio::time::Instant::now();
                tokio::time::sleep(asked).await;
                late_ms.push(t.elapsed().saturating_sub(asked).as_secs_f64() * 1000.0);
            }
            late_ms
        })
    };
    let out = work.await;
    stop.cancel();
    let mut late_ms = sampler.await.unwrap_or_default();
    late_ms.sort_by(f64::total_cmp);
    let p99 = late_ms
        .get((late_ms.len() * 99 / 100).min(late_ms.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    (out, p99)
}
