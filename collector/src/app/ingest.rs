//! The ingest services every signed HTTP endpoint calls: a signed body checked in the fixed
//! order ([`verify_signed`]), then its result records ([`store_results`]), event envelopes
//! ([`store_events`]) or heartbeat ([`store_heartbeat`]) stored durably; and the one path by
//! which durably stored events reach the organic-load fold ([`feed_organic_load`]), which the
//! Kafka consumer calls too.
//!
//! Each refusal is an [`IngestError`] naming the check that failed; the HTTP layer answers it as
//! the problem of the same name.

use lvt_schema::heartbeat::{AgentHealth, Heartbeat};
use lvt_schema::sign::{self, BatchSignature};
use sha2::{Digest as _, Sha256};

use super::{AppState, timed};
use crate::config::Agent;
use crate::store::{EventBatch, InsertOutcome, StoreError, StoredBatch};
use crate::verify::{
    RecordError, SignatureError, SignedJson, canonical_sha256_of, check_signature_headers,
    json_pointer, validate_events,
};

/// A signed body that passed every check shared by the signed endpoints.
pub struct VerifiedBody {
    /// The agent whose key signed it.
    pub agent: Agent,
    /// The signature headers.
    pub signature: BatchSignature,
    /// The body's JSON.
    pub json: SignedJson,
    /// The canonical bytes of the body, over which the signature was checked.
    pub canonical: Vec<u8>,
    /// The clock reading the timestamp was checked against, milliseconds since the Unix epoch.
    pub now_ms: i64,
}

impl VerifiedBody {
    /// Lowercase hex SHA-256 of the body's canonical bytes (what the signature covers).
    pub fn canonical_sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.canonical))
    }
}

/// Why a signed body was not stored: which check refused it, or the store failing.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The signature headers, key, timestamp, signature or nonce.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body's JSON or its records.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The store could not check the nonce or store the contents.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The checks every signed endpoint runs on a body already read (its size is the reader's to
/// bound), in their fixed order: signature headers, key, timestamp, JSON, signature, nonce.
/// What the body must contain is the caller's to check afterwards. The signature comes before
/// the nonce so that only the key's holder can make the collector remember a nonce: key ids are
/// public (`/v1/agents`), and a forger could otherwise grow the nonce store without limit.
///
/// # Errors
/// The first check that refuses the body, or the store failing on the nonce.
pub async fn verify_signed(
    state: &AppState,
    header: impl Fn(&str) -> Option<String>,
    body: Vec<u8>,
) -> Result<VerifiedBody, IngestError> {
    let settings = &state.settings;
    let now_ms = (state.clock)();
    let (signature, agent) = check_signature_headers(
        header,
        &state.agents_by_key,
        now_ms,
        settings.timestamp_window_ms,
    )?;

    // The body must be JSON before the signature can be checked (it covers the canonical form);
    // text that is not JSON at all is refused here rather than as a bad signature.
    let json = SignedJson::read(body)?;

    let canonical = json.canonical_bytes();
    sign::verify_canonical_batch(&agent.public_key, &canonical, &signature)
        .map_err(|error| SignatureError::BadSignature(error.to_string()))?;
    let fresh = timed(
        state,
        "remember_nonce",
        state.store.remember_nonce(
            signature.key_id.clone(),
            signature.nonce.clone(),
            signature.timestamp_ms,
        ),
    )
    .await?;
    if !fresh {
        return Err(SignatureError::ReplayedNonce(signature.nonce).into());
    }
    Ok(VerifiedBody {
        agent: agent.clone(),
        signature,
        json,
        canonical,
        now_ms,
    })
}

/// Checks the result records of a verified body (types, bounds, time bounds) and stores them
/// with their batch, durably; an empty array stores nothing.
///
/// # Errors
/// A record refused, at its pointer, or the store failing.
pub async fn store_results(
    state: &AppState,
    verified: VerifiedBody,
) -> Result<InsertOutcome, IngestError> {
    let results = verified.json.validate_results()?;
    state
        .settings
        .time_bounds(verified.now_ms)
        .check(&results)?;
    if results.is_empty() {
        return Ok(InsertOutcome::default());
    }
    let canonical_sha256 = canonical_sha256_of(&results);
    let VerifiedBody {
        agent,
        signature,
        now_ms,
        ..
    } = verified;
    let batch = StoredBatch::signed(&agent.id, signature, canonical_sha256, &results, now_ms);
    let outcome = timed(
        state,
        "insert_batch",
        state.store.insert_batch(batch, results),
    )
    .await?;
    state
        .metrics
        .handle_insert(outcome.inserted, outcome.duplicates);
    tracing::debug!(
        message = "Result batch stored.",
        agent = %agent.id,
        inserted = outcome.inserted,
        duplicates = outcome.duplicates
    );
    Ok(outcome)
}

/// What one event batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsStored {
    /// Usable events newly stored.
    pub stored: u64,
    /// Events whose id was already stored (or repeated within the batch).
    pub duplicates: u64,
    /// Events newly kept aside.
    pub kept_aside: u64,
}

/// Checks the event envelopes of a verified body and stores them with their batch, durably,
/// then feeds the usable stream-scoped ones to the organic-load fold.
///
/// # Errors
/// An element that is not an envelope, at its pointer, or the store failing.
pub async fn store_events(
    state: &AppState,
    verified: VerifiedBody,
) -> Result<EventsStored, IngestError> {
    let canonical_sha256 = verified.canonical_sha256();
    let VerifiedBody {
        agent,
        signature,
        json,
        now_ms,
        ..
    } = verified;
    let events = validate_events(&json.into_value())?;
    if events.is_empty() {
        return Ok(EventsStored::default());
    }
    let batch = EventBatch::signed(&agent.id, signature, canonical_sha256, now_ms);
    // Kept for the organic-load fold, which only sees what the store took durably; only the
    // stream-scoped families say anything about a stream, so only those are copied.
    let usable: Vec<String> = events
        .iter()
        .filter(|event| event.aside_reason.is_none())
        .filter(|event| crate::organic::folds_family(&event.family))
        .map(|event| event.envelope_json.clone())
        .collect();
    let outcome = timed(
        state,
        "insert_events",
        state.store.insert_events(batch, events),
    )
    .await?;
    feed_organic_load(state, usable.iter().map(String::as_str), now_ms).await;
    state
        .metrics
        .handle_events_insert(&outcome.stored, &outcome.kept_aside, outcome.duplicates);
    let stored = EventsStored {
        stored: outcome.stored_total(),
        duplicates: outcome.duplicates,
        kept_aside: outcome.kept_aside_total(),
    };
    tracing::debug!(
        message = "Event batch stored.",
        agent = %agent.id,
        stored = stored.stored,
        duplicates = stored.duplicates,
        kept_aside = stored.kept_aside
    );
    Ok(stored)
}

/// Reads a verified body as the agent's heartbeat and keeps it as the agent's latest; returns
/// the status it gives the agent now, with the reasons it is not `ok`.
///
/// # Errors
/// A body that is not a heartbeat, at its pointer, or the store failing.
pub async fn store_heartbeat(
    state: &AppState,
    verified: VerifiedBody,
) -> Result<(AgentHealth, Vec<String>), IngestError> {
    let agent = verified.agent.id.clone();
    let now_ms = verified.now_ms;
    let value = verified.json.into_value();
    let heartbeat: Heartbeat =
        serde_path_to_error::deserialize(&value).map_err(|error| RecordError::InvalidRecord {
            pointer: json_pointer(error.path()),
            detail: error.inner().to_string(),
        })?;
    let text = value.to_string();
    timed(
        state,
        "put_heartbeat",
        state.store.put_heartbeat(agent.clone(), now_ms, text),
    )
    .await?;
    let (status, reasons) = AgentHealth::classify(Some((&heartbeat, now_ms)), now_ms);
    tracing::debug!(message = "Heartbeat stored.", agent = %agent, status = status.as_str());
    Ok((status, reasons))
}

/// Folds durably stored, usable envelopes (their stored JSON) into the organic-load sessions and
/// stores the streams that are now finished. This is the one path every event ingest (HTTP and
/// Kafka, after their inserts) and the periodic flush call. A failure to store the sessions is
/// logged, never the ingest's answer: the events themselves are durable, and the sessions are
/// retried at the next flush.
pub async fn feed_organic_load<'a>(
    state: &AppState,
    envelopes_json: impl IntoIterator<Item = &'a str>,
    arrival_unix_ms: i64,
) {
    state.organic.observe(envelopes_json, arrival_unix_ms);
    match state
        .organic
        .flush(state.store.as_ref(), arrival_unix_ms)
        .await
    {
        Ok(outcome) if outcome.inserted > 0 => {
            tracing::debug!(
                message = "Organic sessions stored.",
                inserted = outcome.inserted,
                duplicates = outcome.duplicates
            );
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(message = "Organic sessions not stored yet.", error = %error);
        }
    }
}
