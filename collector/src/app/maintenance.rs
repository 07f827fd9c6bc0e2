//! The collector's background work: the retention sweep, the organic-load flush, and the
//! replay of stored events into the organic fold at start.

use std::sync::Arc;

use super::{AppState, SWEEP_INTERVAL, organic_flush_interval, timed};
use crate::store::StoreError;

const DAY_MS: i64 = 86_400_000;

pub async fn sweep_loop(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        sweep(&state).await;
    }
}

/// What [`replay_organic`] folded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrganicReplay {
    /// Stored events folded again.
    pub events: u64,
    /// Streams open once they were folded.
    pub open_streams: usize,
}

/// How many stored events one replay read asks for.
const REPLAY_PAGE: usize = 1_000;

/// Folds the usable events stored in the last `[organic] replay_window_s` (by envelope
/// timestamp) into the organic load again, as if they arrived now: streams that were open when
/// the collector stopped go on with the events still to come, and those that were already over
/// are finished one idle timeout later. A stream stored before the stop comes out with the same
/// session id, so storing it again is a duplicate that adds nothing. Called once at start,
/// before anything is served; nothing is flushed here.
pub async fn replay_organic(state: &AppState) -> Result<OrganicReplay, StoreError> {
    let window_s = state.settings.organic.replay_window_s;
    let now_ms = (state.clock)();
    let mut replayed = OrganicReplay::default();
    if window_s == 0 {
        return Ok(replayed);
    }
    let window_ms = i64::try_from(window_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let Some(first) = state
        .store
        .first_event_seq_since(now_ms.saturating_sub(window_ms))
        .await?
    else {
        return Ok(replayed);
    };
    let mut after = Some(first.saturating_sub(1));
    while let Some(after_seq) = after {
        let page = state
            .store
            .events_page(
                crate::store::EventFilter::default(),
                Some(after_seq),
                REPLAY_PAGE,
            )
            .await?;
        state.organic.observe(
            page.rows
                .iter()
                .filter(|row| crate::organic::folds_family(&row.event.family))
                .map(|row| row.event.envelope_json.as_str()),
            now_ms,
        );
        replayed.events += u64::try_from(page.rows.len()).unwrap_or(u64::MAX);
        after = page.next_after_seq;
    }
    replayed.open_streams = state.organic.open_streams();
    Ok(replayed)
}

pub async fn organic_loop(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(organic_flush_interval(
        state.settings.organic.idle_timeout_s,
    ));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the sweep at start already flushed.
    interval.tick().await;
    loop {
        interval.tick().await;
        // Streams silent for the idle timeout are finished and stored.
        super::ingest::feed_organic_load(&state, std::iter::empty(), (state.clock)()).await;
    }
}

/// Deletes results past the retention and nonces past the timestamp window. A failure is
/// logged and retried at the next sweep.
pub async fn sweep(state: &AppState) {
    let now_ms = (state.clock)();
    let retention_ms = i64::from(state.settings.retention_days).saturating_mul(DAY_MS);
    let results_before = now_ms.saturating_sub(retention_ms);
    match timed(
        state,
        "delete_older_than",
        state.store.delete_older_than(results_before),
    )
    .await
    {
        Ok(deleted) if deleted > 0 => {
            tracing::info!(
                message = "Old results deleted.",
                deleted,
                before_unix_ms = results_before
            );
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(message = "Retention sweep failed.", error = %error);
        }
    }
    // Events go by the same cutoff as results, by envelope timestamp.
    match timed(
        state,
        "delete_events_older_than",
        state.store.delete_events_older_than(results_before),
    )
    .await
    {
        Ok(deleted) if deleted > 0 => {
            tracing::info!(
                message = "Old events deleted.",
                deleted,
                before_unix_ms = results_before
            );
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(message = "Event retention failed.", error = %error);
        }
    }
    // Organic streams whose close was lost are finished here once their idle timeout passed.
    super::ingest::feed_organic_load(state, std::iter::empty(), now_ms).await;
    // A nonce signed before now - window can only come with a stale timestamp, which is refused
    // before the nonce is looked at, so forgetting it cannot reopen a replay.
    let window_ms = i64::try_from(state.settings.timestamp_window_ms).unwrap_or(i64::MAX);
    let nonces_before = now_ms.saturating_sub(window_ms);
    if let Err(error) = timed(
        state,
        "prune_nonces",
        state.store.prune_nonces(nonces_before),
    )
    .await
    {
        tracing::warn!(message = "Nonce pruning failed.", error = %error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::store::Store as _;
    use crate::store::sqlite::{SqliteConfig, SqliteStore};
    use crate::store::{StoredBatch, StoredResult};

    fn result(session_id: &str, ended_at_unix_ms: i64) -> StoredResult {
        StoredResult {
            session_id: session_id.to_owned(),
            orchestrator_address: None,
            orchestrator_uri: Some("https://o:8935".to_owned()),
            gpu: None,
            region: None,
            pipeline: "p".to_owned(),
            model_id: "m".to_owned(),
            complexity: None,
            outcome: "passed".to_owned(),
            started_at_unix_ms: ended_at_unix_ms - 1,
            ended_at_unix_ms,
            sla_cells: None,
            record_json: "{}".to_owned(),
        }
    }

    #[tokio::test]
    async fn sweep_applies_retention_and_forgets_expired_nonces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteStore::open(&SqliteConfig::new(dir.path().join("lvt.db"))).expect("open"),
        );
        let now_ms = 200 * DAY_MS;
        let settings = Settings {
            retention_days: 90,
            ..Settings::default()
        };
        let state = AppState::new(settings, store.clone(), Arc::new(move || now_ms));
        let batch = StoredBatch {
            agent_id: "a".into(),
            key_id: "k".into(),
            timestamp_ms: now_ms,
            nonce: "n".into(),
            signature: "s".into(),
            canonical_sha256: "h".into(),
            session_ids: vec!["old".into(), "kept".into()],
            received_at_unix_ms: now_ms,
        };
        let results = vec![
            result("old", now_ms - 90 * DAY_MS - 1),
            result("kept", now_ms - 90 * DAY_MS),
        ];
        store.insert_batch(batch, results).await.expect("insert");
        assert!(
            store
                .remember_nonce("k".into(), "expired".into(), now_ms - 300_001)
                .await
                .expect("nonce")
        );
        assert!(
            store
                .remember_nonce("k".into(), "live".into(), now_ms - 300_000)
                .await
                .expect("nonce")
        );

        sweep(&state).await;

        assert_eq!(store.count_results().await.expect("count"), 1);
        let fresh = |nonce: &'static str| store.remember_nonce("k".into(), nonce.into(), now_ms);
        assert!(
            fresh("expired").await.expect("nonce"),
            "expired nonce forgotten"
        );
        assert!(
            !fresh("live").await.expect("nonce"),
            "nonce in the window kept"
        );
    }
}
