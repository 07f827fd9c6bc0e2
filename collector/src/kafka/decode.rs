//! What one Kafka message means: the pure decoding and verification of a message of the results
//! topic (a signed batch) or of the events topic (go-livepeer envelopes), with no client, clock
//! or store, so that every rule is unit-tested without a broker.
//!
//! A results message carries the same bytes and signature as a `POST /v1/results` body, with the
//! four signature headers (`Lvt-Key-Id`, `Lvt-Timestamp`, `Lvt-Nonce`, `Lvt-Signature`) as Kafka
//! headers. The key must be a configured agent's and the signature must verify, exactly as over
//! HTTP. The timestamp window and the nonce check do not apply: Kafka redelivers messages by
//! design (a consumer restarted before its commit reads them again, a new consumer group reads
//! the whole retained topic), so an old timestamp or a seen nonce is normal there. A replay can
//! do no harm because results are stored once per `session_id`; it only costs a duplicate count.
//!
//! An events message is what go-livepeer publishes: one envelope object per message, unsigned.
//! An array of envelopes is accepted too. Envelopes go through the same validation as
//! `POST /v1/events` ([`crate::verify::validate_events`]).

use std::collections::HashMap;

use lvt_schema::sign::{self, BatchSignature};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::config::Agent;
use crate::verify::{TimeBounds, validate_events, validate_records};

use crate::store::{StoredBatch, StoredEvent, StoredResult};

/// Which topic a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// The results topic: signed batches of result records.
    Results,
    /// The events topic: go-livepeer envelopes.
    Events,
}

impl MessageKind {
    /// The `kind` label of the consumer's metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Results => "results",
            Self::Events => "events",
        }
    }
}

/// Why a message is skipped. None of these can change on redelivery, so a rejected message is
/// counted and its offset committed with the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The message is not what its topic carries: no value, not JSON, missing or malformed
    /// signature headers, or records or envelopes that do not validate.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The batch names a key no configured agent has.
    #[error("unknown key: {0}")]
    UnknownKey(String),
    /// The signature does not verify with the named agent's key (a forged or altered batch).
    #[error("bad signature: {0}")]
    BadSignature(String),
}

impl Rejection {
    /// The `outcome` label of the consumer's metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownKey(_) => "unknown_key",
            Self::BadSignature(_) => "bad_signature",
        }
    }
}

/// A verified results message, ready for [`crate::store::Store::insert_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsMessage {
    /// The batch's signature and provenance.
    pub batch: StoredBatch,
    /// Its records; may be empty, in which case nothing is written.
    pub results: Vec<StoredResult>,
}

/// A message's Kafka headers copied out of the client: name and value (absent for a null value).
pub type HeaderList = Vec<(String, Option<Vec<u8>>)>;

/// Looks a header up in Kafka headers by name, ignoring ASCII case as HTTP does; a header whose
/// value is absent or not UTF-8 counts as missing.
pub fn header_lookup<'a>(
    headers: &'a [(String, Option<Vec<u8>>)],
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value.as_deref())
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .map(str::to_owned)
    }
}

/// Decodes and verifies one results message: the signature headers, the agent's key, the
/// signature over the canonical form of the value, then the records and when they ended
/// (`bounds`, whose clock is the message's arrival), in that order.
pub fn decode_results(
    agents_by_key: &HashMap<String, Agent>,
    header: impl Fn(&str) -> Option<String>,
    payload: Option<&[u8]>,
    bounds: TimeBounds,
) -> Result<ResultsMessage, Rejection> {
    let received_at_unix_ms = bounds.now_ms;
    let payload = payload.ok_or_else(|| Rejection::Malformed("the message has no value".into()))?;
    let signature = BatchSignature::from_headers(header)
        .map_err(|error| Rejection::Malformed(error.to_string()))?;
    let agent = agents_by_key.get(&signature.key_id).ok_or_else(|| {
        Rejection::UnknownKey(format!(
            "no configured agent has key id {}",
            signature.key_id
        ))
    })?;
    let value: Value = serde_json::from_slice(payload)
        .map_err(|error| Rejection::Malformed(format!("the value is not JSON: {error}")))?;
    sign::verify_batch(&agent.public_key, &value, &signature)
        .map_err(|error| Rejection::BadSignature(error.to_string()))?;
    let results = validate_records(&value)
        .and_then(|results| bounds.check(&results).map(|()| results))
        .map_err(|error| {
            Rejection::Malformed(format!("{} (at {:?})", error.detail(), error.pointer()))
        })?;
    let canonical_sha256 = hex::encode(Sha256::digest(sign::canonical_bytes(&value)));
    let batch = StoredBatch::signed(
        &agent.id,
        signature,
        canonical_sha256,
        &results,
        received_at_unix_ms,
    );
    Ok(ResultsMessage { batch, results })
}

/// Decodes one events message: a single envelope object (what go-livepeer publishes) or an
/// array of envelopes. Unknown families and payloads of the wrong shape are not rejections; they
/// come back marked to be kept aside.
pub fn decode_events(payload: Option<&[u8]>) -> Result<Vec<StoredEvent>, Rejection> {
    let payload = payload.ok_or_else(|| Rejection::Malformed("the message has no value".into()))?;
    let value: Value = serde_json::from_slice(payload)
        .map_err(|error| Rejection::Malformed(format!("the value is not JSON: {error}")))?;
    let array = match value {
        Value::Object(_) => Value::Array(vec![value]),
        other => other,
    };
    validate_events(&array).map_err(|error| {
        Rejection::Malformed(format!("{} (at {:?})", error.detail(), error.pointer()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvt_schema::sign::SigningKey;
    use serde_json::json;

    fn agent(seed: u8) -> Agent {
        let public_key = SigningKey::from_bytes(&[seed; 32]).verifying_key();
        Agent {
            id: format!("agent-{seed}"),
            region: None,
            key_id: sign::key_id(&public_key),
            public_key,
        }
    }

    fn agents() -> HashMap<String, Agent> {
        let agent = agent(1);
        HashMap::from([(agent.key_id.clone(), agent)])
    }

    /// The default settings' bounds at `now_ms`: 5 minutes of skew, 90 days of retention.
    fn bounds(now_ms: i64) -> TimeBounds {
        TimeBounds {
            now_ms,
            skew_ms: 300_000,
            retention_ms: 90 * 86_400_000,
        }
    }

    #[test]
    fn a_record_that_ends_in_the_future_or_before_the_retention_is_rejected() {
        let records = json!([record("s-1")]);
        let (value, headers) = signed(1, &records);
        // The record ended at 1 s after the epoch.
        let decode = |now_ms| {
            decode_results(
                &agents(),
                header_lookup(&headers),
                Some(&value),
                bounds(now_ms),
            )
        };
        assert!(decode(1_000 - 300_000).is_ok(), "within the skew");
        let future = decode(1_000 - 300_001).expect_err("too far ahead");
        assert_eq!(future.label(), "malformed");
        assert!(future.to_string().contains("clock skew"), "{future}");
        let old = decode(1_000 + 90 * 86_400_000 + 1).expect_err("too old");
        assert!(old.to_string().contains("retention"), "{old}");
    }

    fn record(session_id: &str) -> Value {
        let report = lvt_schema::SessionReport::new(session_id, "noop", 1_000);
        serde_json::to_value(report).expect("a report serializes")
    }

    /// The value and Kafka headers of `records` signed by the key of `seed`.
    fn signed(seed: u8, records: &Value) -> (Vec<u8>, HeaderList) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let signature = sign::sign_batch(&key, records, 5_000, [3; sign::NONCE_BYTES]);
        let headers = signature
            .to_headers()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Some(value.into_bytes())))
            .collect();
        (serde_json::to_vec(records).expect("json"), headers)
    }

    #[test]
    fn a_signed_batch_decodes_whatever_its_timestamp() {
        let records = json!([record("s-1"), record("s-2")]);
        let (value, headers) = signed(1, &records);
        // The signature is from 5 s after the epoch: far outside the HTTP window, fine here.
        let message = decode_results(
            &agents(),
            header_lookup(&headers),
            Some(&value),
            bounds(9_999),
        )
        .expect("a valid batch");
        assert_eq!(message.batch.agent_id, "agent-1");
        assert_eq!(message.batch.timestamp_ms, 5_000);
        assert_eq!(message.batch.received_at_unix_ms, 9_999);
        assert_eq!(message.batch.session_ids, vec!["s-1", "s-2"]);
        assert_eq!(message.results.len(), 2);
    }

    #[test]
    fn header_names_match_in_any_case() {
        let records = json!([record("s-1")]);
        let (value, headers) = signed(1, &records);
        let lower: Vec<_> = headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        assert!(decode_results(&agents(), header_lookup(&lower), Some(&value), bounds(0)).is_ok());
    }

    #[test]
    fn forged_and_malformed_batches_are_rejected_with_their_class() {
        let records = json!([record("s-1")]);
        let (value, headers) = signed(1, &records);
        let decode = |headers: &[(String, Option<Vec<u8>>)], value: Option<&[u8]>| {
            decode_results(&agents(), header_lookup(headers), value, bounds(0))
                .expect_err("rejected")
                .label()
        };

        let (_, stranger_headers) = signed(2, &records);
        assert_eq!(decode(&stranger_headers, Some(&value)), "unknown_key");

        let altered = serde_json::to_vec(&json!([record("s-other")])).expect("json");
        assert_eq!(decode(&headers, Some(&altered)), "bad_signature");

        assert_eq!(decode(&headers[1..], Some(&value)), "malformed");
        assert_eq!(decode(&headers, None), "malformed");
        let (not_json_value, not_json_headers) = (b"{".to_vec(), headers.clone());
        assert_eq!(
            decode(&not_json_headers, Some(&not_json_value)),
            "malformed"
        );

        // Signed correctly, but not records: no redelivery can fix it.
        let (bad_value, bad_headers) = signed(1, &json!([{"session_id": "x"}]));
        assert_eq!(decode(&bad_headers, Some(&bad_value)), "malformed");
    }

    fn envelope(id: &str, family: &str) -> Value {
        json!({
            "id": id,
            "type": family,
            "timestamp": "1732700000000",
            "gateway": "gw-1",
            "data": {"type": "gateway_receive_stream_request", "stream_id": "s"}
        })
    }

    #[test]
    fn events_come_one_per_message_or_as_an_array() {
        let one = serde_json::to_vec(&envelope("e-1", "stream_trace")).expect("json");
        let events = decode_events(Some(&one)).expect("one envelope");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id, "e-1");

        let many = serde_json::to_vec(&json!([
            envelope("e-2", "stream_trace"),
            envelope("e-3", "made_up_family")
        ]))
        .expect("json");
        let events = decode_events(Some(&many)).expect("an array of envelopes");
        assert_eq!(events.len(), 2);
        assert!(
            events[1]
                .aside_reason
                .as_deref()
                .is_some_and(|reason| reason.contains("unknown event family")),
            "{:?}",
            events[1]
        );
    }

    #[test]
    fn unusable_event_messages_are_malformed() {
        for value in [
            b"not json".to_vec(),
            b"7".to_vec(),
            serde_json::to_vec(&json!({"type": "stream_trace"})).expect("json"),
        ] {
            assert_eq!(
                decode_events(Some(&value)).expect_err("malformed").label(),
                "malformed",
                "{}",
                String::from_utf8_lossy(&value)
            );
        }
        assert!(decode_events(None).is_err());
    }
}
