//! `POST /v1/events` and `GET /v1/events`: go-livepeer analytics event envelopes (protocol
//! reference section 7) shipped over HTTP, and read back.
//!
//! The POST body is a JSON array of envelopes, signed like a result batch and refused by the same
//! checks in the same order ([`crate::ingest`]). Each element must be an envelope with a
//! non-empty `id` (else 400 with a JSON pointer); its family then decides where it goes. A known
//! family whose payload reads as its typed view is stored with the events; an unknown family, or
//! a known one whose payload has the wrong shape, is kept aside with the reason and counted,
//! never an error, so that a gateway upgrade cannot make the collector refuse its events. The id
//! is the idempotency key: a retried batch stores nothing twice. The answer comes only after the
//! store's durable commit.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{StatusCode, header};
use lvt_schema::events::{EventEnvelope, EventFamily};
use lvt_schema::sign;
use serde_json::{Value, json};

use crate::ingest::{RecordError, VerifiedBody, refusal_response, timed, verify_signed_body};
use crate::problem::{Problem, ProblemKind, json_pointer};
use crate::server::AppState;
use crate::store::{EventBatch, EventFilter, StoredEvent};

/// Events per page when `limit` is not given.
pub const DEFAULT_EVENTS_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_EVENTS_LIMIT: usize = 1000;

/// What one `POST /v1/events` did, as answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsAnswer {
    /// Usable events newly stored.
    pub stored: u64,
    /// Events whose id was already stored (or repeated within the batch).
    pub duplicates: u64,
    /// Events newly kept aside.
    pub kept_aside: u64,
}

impl IntoResponse for EventsAnswer {
    fn into_response(self) -> Response {
        let body = json!({
            "stored": self.stored,
            "duplicates": self.duplicates,
            "kept_aside": self.kept_aside,
        });
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// Answers one event batch and counts the answer by status.
pub async fn handle_events_post(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let response = match ingest_events(&state, request).await {
        Ok(answer) => answer.into_response(),
        Err(problem) => refusal_response("Event batch refused.", problem),
    };
    state
        .metrics
        .handle_events_response(response.status().as_u16());
    response
}

async fn ingest_events(state: &AppState, request: Request) -> Result<EventsAnswer, Problem> {
    let verified = verify_signed_body(state, request).await?;
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
        return Ok(EventsAnswer::default());
    }
    let batch = EventBatch {
        agent_id: agent.id.clone(),
        key_id: signature.key_id,
        timestamp_ms: signature.timestamp_ms,
        nonce: signature.nonce,
        signature: signature.signature,
        canonical_sha256,
        received_at_unix_ms: now_ms,
    };
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
    let answer = EventsAnswer {
        stored: outcome.stored_total(),
        duplicates: outcome.duplicates,
        kept_aside: outcome.kept_aside_total(),
    };
    tracing::debug!(
        message = "Event batch stored.",
        agent = %agent.id,
        stored = answer.stored,
        duplicates = answer.duplicates,
        kept_aside = answer.kept_aside
    );
    Ok(answer)
}

/// Folds durably stored, usable envelopes (their stored JSON) into the organic-load sessions and
/// stores the streams that are now finished. This is the one path every event ingest (HTTP here,
/// Kafka through the same store path) calls after its insert. A failure to store the sessions is
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

/// Checks that `value` is a JSON array of event envelopes and turns each into its stored form,
/// deciding which are kept aside.
///
/// Only what makes an element unusable as an envelope is an error (a pointer such as `/2/id`):
/// not an object, a missing or non-string `id` or `type`, an empty `id`. Families and payloads
/// never are.
pub fn validate_events(value: &Value) -> Result<Vec<StoredEvent>, RecordError> {
    let Value::Array(items) = value else {
        return Err(RecordError::invalid(
            String::new(),
            "the body must be a JSON array of go-livepeer event envelopes",
        ));
    };
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let envelope: EventEnvelope = serde_path_to_error::deserialize(item).map_err(|error| {
            RecordError::invalid(
                format!("/{index}{}", json_pointer(error.path())),
                format!("not an event envelope: {}", error.inner()),
            )
        })?;
        if envelope.id.trim().is_empty() {
            return Err(RecordError::invalid(
                format!("/{index}/id"),
                "the event id must not be empty",
            ));
        }
        events.push(stored_event(envelope, item));
    }
    Ok(events)
}

fn stored_event(envelope: EventEnvelope, item: &Value) -> StoredEvent {
    let aside_reason = match envelope.family() {
        EventFamily::Unknown(name) => Some(format!("unknown event family `{name}`")),
        // Only a payload of the wrong shape for its family fails here (`EventError::View`).
        _ => envelope.view().err().map(|error| error.to_string()),
    };
    let canonical = sign::canonical_bytes(item);
    StoredEvent {
        timestamp_ms: envelope.timestamp_unix_ms(),
        id: envelope.id,
        family: envelope.family,
        gateway: envelope.gateway,
        // Canonical bytes are serde_json output, which is always UTF-8.
        envelope_json: String::from_utf8_lossy(&canonical).into_owned(),
        aside_reason,
    }
}

/// Encodes an arrival position as the opaque `cursor` parameter.
pub fn encode_events_cursor(after_seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("e{after_seq}"))
}

/// Decodes a `cursor` parameter written by [`encode_events_cursor`].
pub fn decode_events_cursor(text: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix('e')?.parse().ok()
}

fn invalid_query(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemKind::InvalidQuery, detail)
}

/// `GET /v1/events?family=&kept_aside=&limit=&cursor=`: stored events in arrival order, keyset
/// paginated; `kept_aside=true` reads the kept-aside events with their reasons instead.
pub async fn handle_events_get(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|error| invalid_query(error.body_text()))?;
    let limit = match query.get("limit") {
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| invalid_query(format!("limit={text:?} is not an integer")))?,
        None => DEFAULT_EVENTS_LIMIT,
    };
    if !(1..=MAX_EVENTS_LIMIT).contains(&limit) {
        return Err(invalid_query(format!(
            "limit must be between 1 and {MAX_EVENTS_LIMIT}"
        )));
    }
    let after_seq = match query.get("cursor").filter(|text| !text.is_empty()) {
        Some(text) => Some(
            decode_events_cursor(text)
                .ok_or_else(|| invalid_query("cursor is not one this API returned"))?,
        ),
        None => None,
    };
    let kept_aside = match query.get("kept_aside").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid_query(format!(
                "kept_aside={other:?} is not true or false"
            )));
        }
    };
    let filter = EventFilter {
        family: query.get("family").filter(|text| !text.is_empty()).cloned(),
        kept_aside,
    };
    let page = timed(
        &state,
        "events_page",
        state.store.events_page(filter, after_seq, limit),
    )
    .await?;
    // Envelopes are spliced in as stored (canonical JSON written by the ingest), so they reach
    // the reader byte for byte as they were signed.
    let mut body = String::from("{\"events\":[");
    for (index, row) in page.rows.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"batch_id\":{},\"kept_aside_reason\":{},\"event\":{}}}",
            row.batch_id,
            json!(row.event.aside_reason),
            row.event.envelope_json
        ));
    }
    body.push_str("],\"next_cursor\":");
    body.push_str(&json!(page.next_after_seq.map(encode_events_cursor)).to_string());
    body.push('}');
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(id: &str, family: &str, data: Value) -> Value {
        json!({
            "id": id,
            "type": family,
            "timestamp": "1732700000000",
            "gateway": "0xgateway",
            "data": data,
        })
    }

    #[test]
    fn families_decide_what_is_kept_aside() {
        let body = json!([
            envelope(
                "a",
                "stream_trace",
                json!({"type": "gateway_receive_stream_request"})
            ),
            envelope("b", "brand_new_family", json!({"anything": 1})),
            envelope("c", "ai_stream_status", json!("not an object")),
            envelope("d", "create_new_payment", json!({"sender": "0x1"})),
        ]);
        let events = validate_events(&body).expect("valid");
        let reasons: Vec<(&str, Option<&str>)> = events
            .iter()
            .map(|e| (e.id.as_str(), e.aside_reason.as_deref()))
            .collect();
        assert_eq!(reasons[0], ("a", None));
        assert_eq!(
            reasons[1],
            ("b", Some("unknown event family `brand_new_family`"))
        );
        assert_eq!(reasons[2].0, "c");
        assert!(
            reasons[2]
                .1
                .is_some_and(|reason| reason.contains("ai_stream_status")),
            "{reasons:?}"
        );
        // A known family without a typed view is usable as it is.
        assert_eq!(reasons[3], ("d", None));
        assert_eq!(events[0].timestamp_ms, Some(1_732_700_000_000));
        assert_eq!(events[0].family, "stream_trace");
        assert_eq!(
            events[0].envelope_json.as_bytes(),
            sign::canonical_bytes(&body[0]).as_slice()
        );
    }

    #[test]
    fn unusable_envelopes_are_refused_with_a_pointer() {
        let pointer =
            |body: Value| Problem::from(validate_events(&body).expect_err("invalid")).pointer;
        assert_eq!(pointer(json!({"id": "x"})), Some(String::new()));
        assert_eq!(
            pointer(json!([envelope("a", "x", json!({})), 7])),
            Some("/1".into())
        );
        let mut no_id = envelope("a", "stream_trace", json!({}));
        no_id.as_object_mut().expect("object").remove("id");
        assert_eq!(pointer(json!([no_id])), Some("/0".into()));
        let mut number_type = envelope("a", "stream_trace", json!({}));
        number_type["type"] = json!(5);
        assert_eq!(pointer(json!([number_type])), Some("/0/type".into()));
        assert_eq!(
            pointer(json!([envelope(" ", "stream_trace", json!({}))])),
            Some("/0/id".into())
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_foreign_text() {
        assert_eq!(decode_events_cursor(&encode_events_cursor(42)), Some(42));
        assert_eq!(decode_events_cursor("not-a-cursor!"), None);
        assert_eq!(decode_events_cursor(&URL_SAFE_NO_PAD.encode("x1")), None);
    }
}
