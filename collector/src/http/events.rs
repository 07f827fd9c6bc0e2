//! `POST /v1/events` and `GET /v1/events`: go-livepeer analytics event envelopes (protocol
//! reference section 7) shipped over HTTP, and read back.
//!
//! The POST body is a JSON array of envelopes, signed like a result batch and refused by the same
//! checks in the same order ([`super::ingest`]). Each element must be an envelope with a
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

use serde_json::json;

use super::ingest::{refusal_response, verified_body};
use super::problem::{Problem, ProblemKind};
use crate::app::ingest::{EventsStored, store_events};
use crate::app::{AppState, timed};
use crate::store::EventFilter;

/// Events per page when `limit` is not given.
pub const DEFAULT_EVENTS_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_EVENTS_LIMIT: usize = 1000;

/// What one `POST /v1/events` did, as answered.
struct EventsAnswer(EventsStored);

impl IntoResponse for EventsAnswer {
    fn into_response(self) -> Response {
        let Self(stored) = self;
        let body = json!({
            "stored": stored.stored,
            "duplicates": stored.duplicates,
            "kept_aside": stored.kept_aside,
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
    let verified = verified_body(state, request).await?;
    let stored = store_events(state, verified).await?;
    Ok(EventsAnswer(stored))
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

    #[test]
    fn cursors_round_trip_and_reject_foreign_text() {
        assert_eq!(decode_events_cursor(&encode_events_cursor(42)), Some(42));
        assert_eq!(decode_events_cursor("not-a-cursor!"), None);
        assert_eq!(decode_events_cursor(&URL_SAFE_NO_PAD.encode("x1")), None);
    }
}
