//! The public read API: `/v1/results`, `/v1/batches/{id}`, `/v1/agents`, `/healthz`,
//! `/metrics`, and the CORS layer that opens every GET to any origin.
//!
//! Results are served as stored: each item carries the record's canonical JSON untouched, so a
//! reader can rebuild a batch's signed bytes from `/v1/batches/{id}` and the records and check
//! the signature with the agent key listed in `/v1/agents`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;

use super::problem::{Problem, ProblemKind};
use crate::app::AppState;
use crate::app::timed;
use crate::store::{ResultCursor, ResultFilter};

/// Results per page when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_PAGE_LIMIT: usize = 1000;

fn json_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Encodes a keyset position as the opaque `cursor` parameter.
pub fn encode_cursor(cursor: &ResultCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", cursor.ended_at_unix_ms, cursor.session_id))
}

/// Decodes a `cursor` parameter written by [`encode_cursor`].
pub fn decode_cursor(text: &str) -> Option<ResultCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    // The end time comes first and has no colon, so the first colon splits even when the
    // session id contains colons.
    let (ended, session_id) = text.split_once(':')?;
    Some(ResultCursor {
        ended_at_unix_ms: ended.parse().ok()?,
        session_id: session_id.to_owned(),
    })
}

fn query_integer<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, Problem> {
    query
        .get(name)
        .map(|text| {
            text.parse().map_err(|_| {
                Problem::new(
                    ProblemKind::InvalidQuery,
                    format!("{name}={text:?} is not an integer"),
                )
            })
        })
        .transpose()
}

/// `GET /v1/results?limit=&cursor=&orchestrator=&since=&until=` (`since` and `until` in
/// milliseconds since the Unix epoch, on the session end time).
pub async fn handle_results_get(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) =
        query.map_err(|error| Problem::new(ProblemKind::InvalidQuery, error.body_text()))?;
    let limit = query_integer::<usize>(&query, "limit")?.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(Problem::new(
            ProblemKind::InvalidQuery,
            format!("limit must be between 1 and {MAX_PAGE_LIMIT}"),
        ));
    }
    let cursor = match query.get("cursor").filter(|text| !text.is_empty()) {
        Some(text) => Some(decode_cursor(text).ok_or_else(|| {
            Problem::new(
                ProblemKind::InvalidQuery,
                "cursor is not one this API returned",
            )
        })?),
        None => None,
    };
    let filter = ResultFilter {
        orchestrator: query.get("orchestrator").cloned(),
        since_unix_ms: query_integer(&query, "since")?,
        until_unix_ms: query_integer(&query, "until")?,
    };
    let page = timed(
        &state,
        "results_page",
        state.store.results_page(filter, cursor, limit),
    )
    .await?;
    // The records are spliced in as stored (they are canonical JSON written by the ingest), so
    // they reach the reader byte for byte as they were signed.
    let mut body = String::from("{\"results\":[");
    for (index, row) in page.rows.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"agent_id\":{},\"batch_id\":{},\"record\":{}}}",
            json!(row.agent_id),
            row.batch_id,
            row.record_json
        ));
    }
    body.push_str("],\"next_cursor\":");
    body.push_str(&json!(page.next.as_ref().map(encode_cursor)).to_string());
    body.push('}');
    Ok(json_response(body))
}

/// `GET /v1/batches/{id}`: a stored batch's signature fields and session ids.
pub async fn handle_batch_get(
    State(state): State<Arc<AppState>>,
    Path(batch_id): Path<String>,
) -> Result<Response, Problem> {
    let batch_id: i64 = batch_id
        .parse()
        .map_err(|_| Problem::new(ProblemKind::InvalidQuery, "the batch id is not an integer"))?;
    let batch = timed(&state, "batch", state.store.batch(batch_id))
        .await?
        .ok_or_else(|| Problem::new(ProblemKind::NotFound, format!("no batch {batch_id}")))?;
    let body = json!({
        "batch_id": batch_id,
        "agent_id": batch.agent_id,
        "key_id": batch.key_id,
        "timestamp_ms": batch.timestamp_ms,
        "nonce": batch.nonce,
        "signature": batch.signature,
        "canonical_sha256": batch.canonical_sha256,
        "session_ids": batch.session_ids,
        "received_at_unix_ms": batch.received_at_unix_ms,
    });
    Ok(json_response(body.to_string()))
}

/// `GET /v1/agents`: configured agents and any agent with stored batches or a heartbeat, with
/// their keys, last batch time, stored result count, latest heartbeat and status (`ok`,
/// `degraded`, `stale`, `unknown`; [`crate::app::fleet`]).
pub async fn handle_agents_get(State(state): State<Arc<AppState>>) -> Result<Response, Problem> {
    let stats = timed(&state, "agents", state.store.agents()).await?;
    let mut agents: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for agent in &state.settings.agents {
        agents.insert(
            agent.id.clone(),
            json!({
                "id": agent.id,
                "region": agent.region,
                "key_id": agent.key_id,
                "public_key": lvt_schema::sign::public_key_line(&agent.public_key).trim(),
                "configured": true,
                "last_seen_unix_ms": null,
                "result_count": 0,
            }),
        );
    }
    for stat in stats {
        let entry = agents.entry(stat.agent_id.clone()).or_insert_with(|| {
            json!({
                "id": stat.agent_id,
                "region": null,
                "key_id": null,
                "public_key": null,
                "configured": false,
            })
        });
        entry["last_seen_unix_ms"] = json!(stat.last_seen_unix_ms);
        entry["result_count"] = json!(stat.result_count);
    }
    let beats = timed(&state, "heartbeats", state.store.heartbeats()).await?;
    let statuses = crate::app::fleet::agent_statuses(&beats, (state.clock)());
    for entry in agents.values_mut() {
        entry["status"] = json!("unknown");
        entry["status_reasons"] = json!(["no heartbeat received"]);
        entry["heartbeat"] = json!(null);
        entry["heartbeat_received_at_unix_ms"] = json!(null);
    }
    for (id, status) in statuses {
        let entry = agents.entry(id.clone()).or_insert_with(|| {
            json!({
                "id": id,
                "region": null,
                "key_id": null,
                "public_key": null,
                "configured": false,
                "last_seen_unix_ms": null,
                "result_count": 0,
            })
        });
        entry["status"] = json!(status.health);
        entry["status_reasons"] = json!(status.reasons);
        entry["heartbeat"] = status.heartbeat.unwrap_or(serde_json::Value::Null);
        entry["heartbeat_received_at_unix_ms"] = json!(status.received_at_unix_ms);
    }
    let list: Vec<_> = agents.into_values().collect();
    Ok(json_response(json!({ "agents": list }).to_string()))
}

/// `GET /healthz`: 200 once the store answers, with `status` `ok`, or `degraded` while the Kafka
/// consumer is stalled ([`crate::kafka_health`]); with a Kafka consumer, a `kafka` object says
/// what it holds and how far behind its group is.
pub async fn handle_healthz(State(state): State<Arc<AppState>>) -> Result<Response, Problem> {
    timed(&state, "ping", state.store.ping()).await?;
    let mut body = json!({ "status": "ok" });
    if let Some(health) = state.metrics.kafka_health() {
        if health.stalled {
            body["status"] = json!("degraded");
        }
        body["kafka"] = kafka_health_json(&health);
    }
    Ok(json_response(body.to_string()))
}

fn kafka_health_json(health: &crate::kafka_health::KafkaHealth) -> serde_json::Value {
    let observation = health.observation.as_ref();
    json!({
        "stalled": health.stalled,
        "assigned_partitions": observation.map(|seen| seen.assigned.len()),
        "unread_messages": observation.map(crate::kafka_health::Observation::unread),
        "unassigned_s": health.unassigned_for.map(|held| held.as_secs()),
        "error": health.error,
    })
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn handle_metrics(State(state): State<Arc<AppState>>) -> Response {
    // A failing store must not hide the other metrics: the gauge is left out instead.
    let stored = timed(&state, "count_results", state.store.count_results())
        .await
        .ok();
    let agents = match timed(&state, "heartbeats", state.store.heartbeats()).await {
        Ok(beats) => {
            let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
            for status in crate::app::fleet::agent_statuses(&beats, (state.clock)()).values() {
                *counts.entry(status.health.as_str()).or_default() += 1;
            }
            Some(counts)
        }
        Err(_) => None,
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = state.metrics.render(stored);
            if let Some(counts) = agents {
                text.push_str(&crate::app::fleet::render_metrics(&counts));
            }
            text
        },
    )
        .into_response()
}

/// Any other path: a 404 problem.
pub async fn handle_not_found(request: Request) -> Problem {
    Problem::new(
        ProblemKind::NotFound,
        format!("no resource at {}", request.uri().path()),
    )
}

/// Opens every GET to any origin: answers CORS preflights for GET itself and adds
/// `Access-Control-Allow-Origin: *` to GET and HEAD responses. POST is deliberately not opened:
/// agents are not browsers.
pub async fn cors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if method == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        let requested = request
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("*"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return response;
    }
    let mut response = next.run(request).await;
    if method == Method::GET || method == Method::HEAD {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_with_colons_in_ids() {
        let cursor = ResultCursor {
            ended_at_unix_ms: 1_764_270_000_000,
            session_id: "a:b:c".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)), Some(cursor));
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:y")), None);
    }
}
