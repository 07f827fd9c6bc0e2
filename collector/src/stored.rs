//! The forms in which the collector keeps what agents send: the signed batches and their
//! records, as [`crate::verify`] produces them and every [`crate::store`] backend persists them.
//! Plain data with no behaviour, at the bottom of the crate so that the checks below the store
//! and the store itself share them.

use lvt_schema::sign::BatchSignature;

use crate::sla::{CellKey, CellSums};

/// The signature and provenance of one accepted batch, stored once and referenced by its
/// results so that anyone can re-verify the batch later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// The configured id of the agent whose key signed the batch.
    pub agent_id: String,
    /// The key id the signature states.
    pub key_id: String,
    /// The signed timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The signed nonce (32 lowercase hex digits).
    pub nonce: String,
    /// The ed25519 signature, base64.
    pub signature: String,
    /// Lowercase hex SHA-256 of the batch's canonical bytes (the signed array).
    pub canonical_sha256: String,
    /// The session ids of the batch in order: the canonical batch is `[` + the stored records of
    /// these sessions joined by `,` + `]`, which lets a reader rebuild the signed bytes.
    pub session_ids: Vec<String>,
    /// When the collector accepted the batch, milliseconds since the Unix epoch.
    pub received_at_unix_ms: i64,
}

impl StoredBatch {
    /// The batch `agent_id` signed with `signature`, holding `results`, accepted at
    /// `received_at_unix_ms`.
    pub fn signed(
        agent_id: &str,
        signature: BatchSignature,
        canonical_sha256: String,
        results: &[StoredResult],
        received_at_unix_ms: i64,
    ) -> Self {
        Self {
            agent_id: agent_id.to_owned(),
            key_id: signature.key_id,
            timestamp_ms: signature.timestamp_ms,
            nonce: signature.nonce,
            signature: signature.signature,
            canonical_sha256,
            session_ids: results.iter().map(|r| r.session_id.clone()).collect(),
            received_at_unix_ms,
        }
    }
}

/// One result record as stored: its exact canonical JSON plus the columns it is filtered by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// The record's `session_id`: the idempotency key (a second record with it is a duplicate).
    pub session_id: String,
    /// The orchestrator's Ethereum address, when the record names one.
    pub orchestrator_address: Option<String>,
    /// The orchestrator's service URI, when the record names one.
    pub orchestrator_uri: Option<String>,
    /// The GPU name, when reported.
    pub gpu: Option<String>,
    /// The tester's region label.
    pub region: Option<String>,
    /// The pipeline name.
    pub pipeline: String,
    /// The model id.
    pub model_id: String,
    /// The prompt complexity (`low`, `medium`, `high`), when known.
    pub complexity: Option<String>,
    /// The outcome (`passed`, `failed`, `unscored_busy`, `unscored_indeterminate`).
    pub outcome: String,
    /// Session start, milliseconds since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// Session end, milliseconds since the Unix epoch; the pagination and retention key.
    pub ended_at_unix_ms: i64,
    /// The record's canonical JSON bytes ([`lvt_schema::sign::canonical_bytes`]), exactly the
    /// bytes that were part of the signed message.
    pub record_json: String,
    /// What the record adds to the SLA rollup ([`crate::sla::add_session`]), when the caller
    /// already parsed it (the ingest does); `None` lets a store that keeps the rollup compute
    /// it from `record_json`. Either way a record adds to the rollup only when it is newly
    /// stored.
    pub sla_cells: Option<Vec<(CellKey, CellSums)>>,
}

/// The signature and provenance of one accepted `POST /v1/events` batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    /// The configured id of the agent whose key signed the batch.
    pub agent_id: String,
    /// The key id the signature states.
    pub key_id: String,
    /// The signed timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The signed nonce.
    pub nonce: String,
    /// The ed25519 signature, base64.
    pub signature: String,
    /// Lowercase hex SHA-256 of the batch's canonical bytes (the signed array).
    pub canonical_sha256: String,
    /// When the collector accepted the batch, milliseconds since the Unix epoch.
    pub received_at_unix_ms: i64,
}

impl EventBatch {
    /// The event batch `agent_id` signed with `signature`, accepted at `received_at_unix_ms`.
    pub fn signed(
        agent_id: &str,
        signature: BatchSignature,
        canonical_sha256: String,
        received_at_unix_ms: i64,
    ) -> Self {
        Self {
            agent_id: agent_id.to_owned(),
            key_id: signature.key_id,
            timestamp_ms: signature.timestamp_ms,
            nonce: signature.nonce,
            signature: signature.signature,
            canonical_sha256,
            received_at_unix_ms,
        }
    }
}

/// One go-livepeer event envelope as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The envelope `id`: the idempotency key.
    pub id: String,
    /// The envelope `type` (the family name as sent).
    pub family: String,
    /// The envelope timestamp, when it is a decimal integer of milliseconds.
    pub timestamp_ms: Option<i64>,
    /// The publishing gateway's address.
    pub gateway: String,
    /// The envelope's canonical JSON bytes, exactly as they were part of the signed batch.
    pub envelope_json: String,
    /// Why the event is kept aside rather than stored with the usable events: an unknown family,
    /// or a known family whose payload has the wrong shape. `None` for a usable event.
    pub aside_reason: Option<String>,
}
