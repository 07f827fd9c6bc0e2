//! The signature checks of a signed body (result batches, event batches, heartbeats), before
//! anything reads a store: the signature headers, the key, the timestamp against a clock reading
//! given as input, and the body's JSON in the canonical form the signature covers.

use std::collections::HashMap;
use std::ops::Range;

use lvt_schema::sign::{self, BatchSignature, SignError, VerifyingKey};
use serde_json::Value;
use serde_json::value::RawValue;

use super::records::{RecordError, validate_canonical_records, validate_records};
use crate::stored::StoredResult;

/// An agent with its key resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The agent's configured id.
    pub id: String,
    /// The agent's configured region.
    pub region: Option<String>,
    /// The agent's public key.
    pub public_key: VerifyingKey,
    /// The key id the agent's signatures state ([`sign::key_id`]).
    pub key_id: String,
}

/// A signed body's JSON, as the signature check read it.
#[derive(Debug)]
pub enum SignedJson {
    /// A JSON array whose every item is already in canonical form (what lvt's shippers send):
    /// the body and each item's byte range in it. The signature was checked over these bytes
    /// without parsing any item into a `Value` or writing it out again.
    CanonicalArray {
        body: String,
        items: Vec<Range<usize>>,
    },
    /// Any other JSON, parsed.
    Value(Value),
}

impl SignedJson {
    /// Reads `body` the cheap way when it is an array of canonical items, else parses it.
    pub fn read(body: Vec<u8>) -> Result<Self, RecordError> {
        let body = match String::from_utf8(body) {
            Ok(text) => match canonical_items(&text) {
                Some(items) => return Ok(Self::CanonicalArray { body: text, items }),
                None => text.into_bytes(),
            },
            Err(error) => error.into_bytes(),
        };
        serde_json::from_slice(&body)
            .map(Self::Value)
            .map_err(|error| RecordError::malformed(format!("the body is not JSON: {error}")))
    }

    /// The canonical bytes of the whole body (what the signature covers).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        match self {
            Self::CanonicalArray { body, items } => {
                let mut bytes = Vec::with_capacity(body.len() + 2);
                bytes.push(b'[');
                for (index, range) in items.iter().enumerate() {
                    if index > 0 {
                        bytes.push(b',');
                    }
                    bytes.extend_from_slice(&body.as_bytes()[range.clone()]);
                }
                bytes.push(b']');
                bytes
            }
            Self::Value(value) => sign::canonical_bytes(value),
        }
    }

    /// The result records of the body in their stored form ([`validate_records`]).
    pub fn validate_results(&self) -> Result<Vec<StoredResult>, RecordError> {
        match self {
            Self::CanonicalArray { body, items } => validate_canonical_records(body, items),
            Self::Value(value) => validate_records(value),
        }
    }

    /// The JSON as a `Value` (parsed now for a canonical array).
    pub fn into_value(self) -> Value {
        match self {
            // The text was read as JSON already, so it parses.
            Self::CanonicalArray { body, .. } => serde_json::from_str(&body).unwrap_or(Value::Null),
            Self::Value(value) => value,
        }
    }
}

/// The byte range of every item of `text` when it is a JSON array whose items are each already
/// canonical ([`sign::is_canonical_json`]); `None` for anything else, including text that is
/// not JSON.
fn canonical_items(text: &str) -> Option<Vec<Range<usize>>> {
    let raw: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    let start = text.as_ptr() as usize;
    raw.iter()
        .map(|item| {
            let item = item.get();
            sign::is_canonical_json(item.as_bytes()).then(|| {
                let offset = item.as_ptr() as usize - start;
                offset..offset + item.len()
            })
        })
        .collect()
}

/// Why a signed request was refused by the signature checks, before any HTTP. The HTTP layer
/// answers each as the problem of the same name (`From<SignatureError> for Problem`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A signature header is missing.
    #[error("{0}")]
    MissingSignature(String),
    /// A signature header is present but unreadable.
    #[error("{0}")]
    MalformedSignature(String),
    /// No configured agent has the stated key id.
    #[error("no configured agent has key id {0}")]
    UnknownKey(String),
    /// The signed timestamp is outside the accepted window around the current time.
    #[error("{0}")]
    StaleTimestamp(String),
    /// The nonce was already used by this key.
    #[error("nonce {0} was already used by this key")]
    ReplayedNonce(String),
    /// The signature does not verify over the body's canonical bytes.
    #[error("{0}")]
    BadSignature(String),
}

/// The header checks of a signed request, in their fixed order: signature headers, key,
/// timestamp against `now_ms` (an input: this reads no clock). Returns the signature and the
/// agent whose key it names.
pub fn check_signature_headers(
    header: impl Fn(&str) -> Option<String>,
    agents_by_key: &HashMap<String, Agent>,
    now_ms: i64,
    timestamp_window_ms: u64,
) -> Result<(BatchSignature, &Agent), SignatureError> {
    let signature = BatchSignature::from_headers(header).map_err(|error| match error {
        SignError::MissingHeader(_) => SignatureError::MissingSignature(error.to_string()),
        _ => SignatureError::MalformedSignature(error.to_string()),
    })?;
    let agent = agents_by_key
        .get(&signature.key_id)
        .ok_or_else(|| SignatureError::UnknownKey(signature.key_id.clone()))?;
    sign::check_timestamp(signature.timestamp_ms, now_ms, timestamp_window_ms)
        .map_err(|error| SignatureError::StaleTimestamp(error.to_string()))?;
    Ok((signature, agent))
}
