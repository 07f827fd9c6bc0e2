//! `POST /v1/results`: signed batch ingest, and the reading of a signed body every signed
//! endpoint shares (`POST /v1/events` in [`super::events`], heartbeats in [`super::fleet`]).
//!
//! The checks run in a fixed order, each answered with its own problem type, so that a client
//! can tell what to fix: body size (413), signature headers (401), key (403), timestamp (409),
//! signature (401), nonce (409; after the signature, so that forgeries remember nothing),
//! records (400, with a JSON pointer), then the durable insert (200). The body size is checked
//! here while reading; the rest are the application's ([`crate::app::ingest`]) over the pure
//! checks of [`crate::verify`], and this module only maps their errors to problems.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt as _;

use super::problem::{Problem, ProblemKind};
use crate::app::AppState;
use crate::app::ingest::{VerifiedBody, store_results, verify_signed};

/// Answers one ingest request and counts the answer by status.
pub async fn handle_results_post(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let response = match ingest(&state, request).await {
        Ok(response) => response,
        Err(problem) => refusal_response("Result batch refused.", problem),
    };
    state
        .metrics
        .handle_ingest_response(response.status().as_u16());
    response
}

/// The answer to a refused signed batch: the problem, plus `Connection: close` when the body was
/// left unread.
pub(crate) fn refusal_response(message: &'static str, problem: Problem) -> Response {
    tracing::debug!(
        message,
        status = problem.kind.status().as_u16(),
        error = %problem.detail
    );
    let unread_body = problem.kind == ProblemKind::BodyTooLarge;
    let mut response = problem.into_response();
    if unread_body {
        // The rest of the body was never read, so the connection cannot carry another
        // request; saying so keeps clients from reusing it and failing their next request.
        response
            .headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    response
}

async fn ingest(state: &AppState, request: Request) -> Result<Response, Problem> {
    let verified = verified_body(state, request).await?;
    let outcome = store_results(state, verified).await?;
    Ok(inserted_response(outcome.inserted, outcome.duplicates))
}

/// Reads a signed request's body within the size limit (413) and runs the checks every signed
/// endpoint shares ([`verify_signed`]).
pub(crate) async fn verified_body(
    state: &AppState,
    request: Request,
) -> Result<VerifiedBody, Problem> {
    let (parts, body) = request.into_parts();
    let body = read_limited(&parts.headers, body, state.settings.max_body_bytes).await?;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    Ok(verify_signed(state, header, body).await?)
}

fn inserted_response(inserted: u64, duplicates: u64) -> Response {
    let body = serde_json::json!({ "inserted": inserted, "duplicates": duplicates });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Reads the body, never holding more than `limit` bytes: a declared length above the limit is
/// refused before reading, and a streamed body is cut off as soon as it passes the limit.
async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, Problem> {
    let too_large = || {
        Problem::new(
            ProblemKind::BodyTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => Err(Problem::new(
            ProblemKind::MalformedJson,
            format!("the body could not be read: {error}"),
        )),
    }
}
