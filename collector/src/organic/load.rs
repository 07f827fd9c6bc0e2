//! [`OrganicLoad`], the edge the server holds: the fold behind a lock, fed the events the ingest
//! stored, and the finished sessions shipped through [`Store::insert_batch`].

use std::sync::Mutex;

use lvt_schema::SessionReport;
use lvt_schema::events::EventEnvelope;
use sha2::{Digest as _, Sha256};

use crate::store::{InsertOutcome, Store, StoreError, StoredBatch};

use super::fold::{FoldStats, OrganicFold};
use super::{MAX_PENDING_SESSIONS, ORGANIC_AGENT_ID, OrganicSettings};

/// The organic-load edge the server holds: a fold behind a lock, plus finished sessions the
/// store has not taken yet.
#[derive(Debug)]
pub struct OrganicLoad {
    fold: Mutex<OrganicFold>,
    pending: Mutex<Vec<SessionReport>>,
}

impl Default for OrganicLoad {
    fn default() -> Self {
        Self::new(OrganicSettings::default())
    }
}

impl OrganicLoad {
    /// An empty organic load with `settings`.
    pub fn new(settings: OrganicSettings) -> Self {
        Self {
            fold: Mutex::new(OrganicFold::new(settings)),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// What the fold did so far.
    pub fn stats(&self) -> FoldStats {
        self.fold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .stats()
    }

    /// How many streams are open (folded, not finished yet).
    pub fn open_streams(&self) -> usize {
        self.fold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .open_streams()
    }

    /// Folds the usable events just stored, given as their stored envelope JSON, that arrived at
    /// `arrival_unix_ms`. JSON that does not read as an envelope is skipped: the ingest already
    /// parsed it, so only a caller that bypassed it can pass such text.
    pub fn observe<'a>(
        &self,
        envelopes_json: impl IntoIterator<Item = &'a str>,
        arrival_unix_ms: i64,
    ) {
        // A poisoned lock means a fold step panicked; the fold's maps are still well formed
        // (every step leaves them consistent between statements), so folding goes on.
        let mut fold = self
            .fold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for json in envelopes_json {
            if let Ok(envelope) = EventEnvelope::parse(json.as_bytes()) {
                fold.push(&envelope, arrival_unix_ms);
            }
        }
    }

    /// Stores every stream finished at `now_unix_ms` as a session through the normal
    /// [`Store::insert_batch`], so its SLA cells follow like any record's. Sessions the store
    /// refuses wait for the next flush. Returns what the insert did.
    pub async fn flush(
        &self,
        store: &dyn Store,
        now_unix_ms: i64,
    ) -> Result<InsertOutcome, StoreError> {
        let mut reports = self
            .fold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take_finished(now_unix_ms);
        {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut waiting = std::mem::take(&mut *pending);
            waiting.append(&mut reports);
            reports = waiting;
        }
        if reports.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let Some((batch, results)) = organic_batch(&reports, now_unix_ms) else {
            return Ok(InsertOutcome::default());
        };
        match store.insert_batch(batch, results).await {
            Ok(outcome) => Ok(outcome),
            Err(error) => {
                let mut pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut kept = reports;
                kept.append(&mut pending);
                if kept.len() > MAX_PENDING_SESSIONS {
                    let dropped = kept.len() - MAX_PENDING_SESSIONS;
                    tracing::warn!(
                        message = "Organic sessions dropped: the store keeps failing.",
                        dropped
                    );
                    kept.drain(..dropped);
                }
                *pending = kept;
                Err(error)
            }
        }
    }
}

/// The stored batch and records of organic `reports`, or `None` when none of them is storable.
///
/// Each report goes through the same validation as a shipped record. One that fails it (only
/// possible with absurd event values, such as FPS so large that a mean overflows) is dropped
/// with a warning, so that it cannot hold back every later session by failing their batch.
///
/// The batch is the collector's own, not an agent's: it carries [`ORGANIC_AGENT_ID`], no
/// signature, and a nonce derived from its content and time so that its id is unique;
/// `canonical_sha256` is still the hash of the stored records joined as an array, so the batch
/// reads back like any other.
pub(super) fn organic_batch(
    reports: &[SessionReport],
    now_unix_ms: i64,
) -> Option<(StoredBatch, Vec<crate::store::StoredResult>)> {
    let mut results = Vec::with_capacity(reports.len());
    for report in reports {
        let checked = serde_json::to_value(std::slice::from_ref(report))
            .map_err(|error| error.to_string())
            .and_then(|value| {
                crate::verify::validate_records(&value).map_err(|error| error.to_string())
            });
        match checked {
            Ok(mut one) => results.append(&mut one),
            Err(reason) => tracing::warn!(
                message = "Organic session dropped: it is not a valid record.",
                session_id = %report.session_id,
                reason = %reason
            ),
        }
    }
    if results.is_empty() {
        return None;
    }
    let mut canonical = String::from("[");
    for (index, result) in results.iter().enumerate() {
        if index > 0 {
            canonical.push(',');
        }
        canonical.push_str(&result.record_json);
    }
    canonical.push(']');
    let canonical_sha256 = hex::encode(Sha256::digest(canonical.as_bytes()));
    let nonce_digest = Sha256::new()
        .chain_update(now_unix_ms.to_be_bytes())
        .chain_update(canonical_sha256.as_bytes())
        .finalize();
    let batch = StoredBatch {
        agent_id: ORGANIC_AGENT_ID.to_owned(),
        key_id: ORGANIC_AGENT_ID.to_owned(),
        timestamp_ms: now_unix_ms,
        nonce: hex::encode(&nonce_digest[..16]),
        signature: String::new(),
        canonical_sha256,
        session_ids: results.iter().map(|r| r.session_id.clone()).collect(),
        received_at_unix_ms: now_unix_ms,
    };
    Some((batch, results))
}
