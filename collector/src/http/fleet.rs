//! `POST /v1/agents/heartbeat`: an agent's signed heartbeat
//! ([`lvt_schema::heartbeat::Heartbeat`], checked like a result batch: size, signature headers,
//! key, timestamp, JSON, signature, nonce), kept as the agent's latest
//! ([`crate::app::ingest::store_heartbeat`]); [`crate::app::fleet`] derives each agent's status
//! from it at read time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ingest::{refusal_response, verified_body};
use super::problem::Problem;
use crate::app::AppState;
use crate::app::ingest::store_heartbeat;

/// `POST /v1/agents/heartbeat`: 200 `{"status": ...}` with the status the heartbeat gives the
/// agent now; refusals as for result batches.
pub async fn handle_heartbeat_post(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Response {
    match heartbeat(&state, request).await {
        Ok(response) => response,
        Err(problem) => refusal_response("Heartbeat refused.", problem),
    }
}

async fn heartbeat(state: &AppState, request: Request) -> Result<Response, Problem> {
    let verified = verified_body(state, request).await?;
    let (status, reasons) = store_heartbeat(state, verified).await?;
    let body = serde_json::json!({ "status": status, "reasons": reasons });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}
