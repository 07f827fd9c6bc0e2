//! `/openapi.json`: the OpenAPI 3.0 description of every route, built from a typed table in code.
//!
//! The router is built from [`super::routes`], and a test checks that every path routed
//! there is described here, so the document cannot silently fall behind the server. A typed table
//! rather than a derive macro keeps the description next to what it describes without adding a
//! code generator to the build.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Map, Value, json};

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    /// The query string.
    Query,
    /// A path segment.
    Path,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// Free text.
    Text,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// RFC 3339 or integer seconds since the Unix epoch.
    Time,
    /// One of the listed values.
    OneOf(&'static [&'static str]),
}

/// One parameter of an operation.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// The parameter name.
    pub name: &'static str,
    /// Where it goes.
    pub location: ParamIn,
    /// Its type.
    pub kind: ParamType,
    /// What it does.
    pub description: &'static str,
}

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// The HTTP method, lowercase (`get`, `post`).
    pub method: &'static str,
    /// The path, with `{name}` for path parameters (axum's syntax is OpenAPI's).
    pub path: &'static str,
    /// A one-line summary.
    pub summary: &'static str,
    /// What the operation returns, in more detail.
    pub description: &'static str,
    /// Its parameters.
    pub params: &'static [Param],
    /// The media type of the success answer.
    pub content_type: &'static str,
    /// The error statuses it can answer with, each as an RFC 7807 problem.
    pub errors: &'static [u16],
}

const fn query(name: &'static str, kind: ParamType, description: &'static str) -> Param {
    Param {
        name,
        location: ParamIn::Query,
        kind,
        description,
    }
}

const START: Param = query(
    "start",
    ParamType::Time,
    "Window start, RFC 3339 or unix seconds, floored to the hour; default: 24 hours before the end.",
);
const END: Param = query(
    "end",
    ParamType::Time,
    "Window end (exclusive), RFC 3339 or unix seconds, rounded up to the hour; default: now.",
);
const ORCHESTRATOR: Param = query(
    "orchestrator",
    ParamType::Text,
    "Only this orchestrator: its address (any case) or, for one without an address, its URI.",
);
const REGION: Param = query("region", ParamType::Text, "Only this tester region.");
const PIPELINE: Param = query("pipeline", ParamType::Text, "Only this pipeline.");
const MODEL: Param = query("model", ParamType::Text, "Only this model id.");
const GPU: Param = query("gpu", ParamType::Text, "Only this GPU name.");
const COMPLEXITY: Param = query(
    "complexity",
    ParamType::OneOf(&["low", "medium", "high"]),
    "Only this prompt complexity.",
);
const TEST_LOAD: Param = query(
    "test_load",
    ParamType::Boolean,
    "Only test load (true) or only organic load (false); the two are never merged.",
);
const SLA_FILTERS: [Param; 9] = [
    START,
    END,
    ORCHESTRATOR,
    REGION,
    PIPELINE,
    MODEL,
    GPU,
    COMPLEXITY,
    TEST_LOAD,
];

const FORMULA: Param = query(
    "formula",
    ParamType::OneOf(&["naap-v1", "lvt-v1"]),
    "The SLA formula scores follow: naap-v1 (NaaP's quality-benchmark-v1, the default) or lvt-v1 \
     (completion, stalls and the declared SLO count; docs/sla.md).",
);

/// The SLA filters and the formula: the parameters of the endpoints that score.
const SCORED_PARAMS: [Param; 10] = [
    SLA_FILTERS[0],
    SLA_FILTERS[1],
    SLA_FILTERS[2],
    SLA_FILTERS[3],
    SLA_FILTERS[4],
    SLA_FILTERS[5],
    SLA_FILTERS[6],
    SLA_FILTERS[7],
    SLA_FILTERS[8],
    FORMULA,
];

const COMPLIANCE_PARAMS: [Param; 11] = [
    SLA_FILTERS[0],
    SLA_FILTERS[1],
    SLA_FILTERS[2],
    SLA_FILTERS[3],
    SLA_FILTERS[4],
    SLA_FILTERS[5],
    SLA_FILTERS[6],
    SLA_FILTERS[7],
    SLA_FILTERS[8],
    FORMULA,
    query(
        "grain",
        ParamType::OneOf(&["hour", "day", "window"]),
        "Time bucket of the rows; default hour.",
    ),
];

/// Every operation of the collector.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "post",
        path: "/v1/results",
        summary: "Ingest a signed batch of result records",
        description: "Body: a JSON array of result records, signed with the lvt-signature headers \
                      (docs/result-record.md). Answers {inserted, duplicates} once durable.",
        params: &[],
        content_type: "application/json",
        errors: &[400, 401, 403, 409, 413, 503],
    },
    Operation {
        method: "get",
        path: "/v1/results",
        summary: "Stored result records, keyset paginated",
        description: "{results: [{agent_id, batch_id, record}], next_cursor}; records are the \
                      canonical JSON that was signed.",
        params: &[
            query(
                "limit",
                ParamType::Integer,
                "Page size, 1 to 1000; default 100.",
            ),
            query(
                "cursor",
                ParamType::Text,
                "The next_cursor of the previous page.",
            ),
            ORCHESTRATOR,
            query(
                "since",
                ParamType::Integer,
                "Sessions ended at or after, ms since the epoch.",
            ),
            query(
                "until",
                ParamType::Integer,
                "Sessions ended before, ms since the epoch.",
            ),
        ],
        content_type: "application/json",
        errors: &[400, 503],
    },
    Operation {
        method: "post",
        path: "/v1/events",
        summary: "Ingest a signed batch of go-livepeer event envelopes",
        description: "Body: a JSON array of event envelopes {id, type, timestamp, gateway, data}, \
                      signed with the lvt-signature headers like /v1/results. Unknown families \
                      and payloads of the wrong shape are kept aside, never refused. Idempotent \
                      by id. Answers {stored, duplicates, kept_aside} once durable.",
        params: &[],
        content_type: "application/json",
        errors: &[400, 401, 403, 409, 413, 503],
    },
    Operation {
        method: "get",
        path: "/v1/events",
        summary: "Stored go-livepeer events in arrival order, keyset paginated",
        description: "{events: [{batch_id, kept_aside_reason, event}], next_cursor}; events are \
                      the canonical JSON that was signed.",
        params: &[
            query("family", ParamType::Text, "Only events of this type."),
            query(
                "kept_aside",
                ParamType::Boolean,
                "Read the kept-aside events (unknown family or wrong shape) instead; default false.",
            ),
            query(
                "limit",
                ParamType::Integer,
                "Page size, 1 to 1000; default 100.",
            ),
            query(
                "cursor",
                ParamType::Text,
                "The next_cursor of the previous page.",
            ),
        ],
        content_type: "application/json",
        errors: &[400, 503],
    },
    Operation {
        method: "get",
        path: "/v1/batches/{id}",
        summary: "A stored batch's signature and session ids",
        description: "Everything needed to rebuild the signed bytes and verify the batch.",
        params: &[Param {
            name: "id",
            location: ParamIn::Path,
            kind: ParamType::Integer,
            description: "The batch id of a result.",
        }],
        content_type: "application/json",
        errors: &[400, 404, 503],
    },
    Operation {
        method: "get",
        path: "/v1/agents",
        summary: "Agents, their keys, last batch, result count, latest heartbeat and status",
        description: "{agents: [{id, region, key_id, public_key, configured, last_seen_unix_ms, \
                      result_count, status, status_reasons, heartbeat, \
                      heartbeat_received_at_unix_ms}]}. status: ok; degraded (its spool is \
                      backing up, its newest scenario commit was refused, or its last pull \
                      failed); stale (no heartbeat for 3 of its intervals); unknown (no \
                      heartbeat). heartbeat is the latest one as the agent sent it.",
        params: &[],
        content_type: "application/json",
        errors: &[503],
    },
    Operation {
        method: "post",
        path: "/v1/agents/heartbeat",
        summary: "An agent's signed heartbeat",
        description: "Body: a heartbeat object {sent_at_unix_ms, interval_s, region, lvt_version, \
                      started_at_unix_ms, scenario_repository, scenario_commit, refused_commit, \
                      refused_reasons, last_pull_error, schedules: [{scenario, next_unix_ms, \
                      last_start_unix_ms}], runs_started, runs_running, runs_skipped, sessions, \
                      spool_batches, spool_bytes, spool_full, last_error}, signed with the \
                      lvt-signature headers like /v1/results (docs/agent.md). The latest per \
                      agent is kept. Answers {status, reasons}.",
        params: &[],
        content_type: "application/json",
        errors: &[400, 401, 403, 409, 413, 503],
    },
    Operation {
        method: "get",
        path: "/v1/sla/compliance",
        summary: "SLA per grain bucket x orchestrator x pipeline x model x GPU x region x complexity",
        description: "{start, end, grain, test_load, formula, rows: [{bucket_start, bucket_end, \
                      orchestrator, pipeline, model_id, gpu, region, complexity, test_load, \
                      score, cohort}]}. score is the SLA of the bucket's merged sums by the \
                      requested formula (naap-v1 by default: NaaP's quality-benchmark-v1) with \
                      Wilson 95% intervals, completion and SLO shares, FPS jitter, stall and busy \
                      rates (docs/sla.md); cohort is the same pipeline and model over the 7 days \
                      before the bucket. Missing data is null, never 0.",
        params: &COMPLIANCE_PARAMS,
        content_type: "application/json",
        errors: &[400, 503],
    },
    Operation {
        method: "get",
        path: "/v1/sla/orchestrators",
        summary: "Orchestrators ranked by SLA score over a window",
        description: "{start, end, test_load, formula, orchestrators: [{rank, orchestrator, \
                      regions, score}]}, best first by the requested formula's score; \
                      orchestrators without a score (only busy sessions) last with rank and \
                      score null. Default: the last 24 hours of test load.",
        params: &SCORED_PARAMS,
        content_type: "application/json",
        errors: &[400, 503],
    },
    Operation {
        method: "get",
        path: "/v1/gpu/metrics",
        summary: "Per GPU name: sessions, mean latencies and FPS, SLA score",
        description: "{start, end, test_load, formula, gpus: [{gpu, orchestrators, sessions, \
                      attempts, startup_ms_mean, e2e_p50_ms_mean, output_fps_mean, sla_score, \
                      score}]}. Default: the last 24 hours of test load.",
        params: &SCORED_PARAMS,
        content_type: "application/json",
        errors: &[400, 503],
    },
    Operation {
        method: "get",
        path: "/v1/network/demand",
        summary: "Sessions and busy answers per hour x pipeline x model: a capacity signal",
        description: "{start, end, test_load, rows: [{hour, hour_unix_s, pipeline, model_id, \
                      test_load, sessions, busy, busy_rate}]}",
        params: &SLA_FILTERS,
        content_type: "application/json",
        errors: &[400, 503],
    },
    Operation {
        method: "get",
        path: "/healthz",
        summary: "Liveness: 200 once the store answers; degraded while the Kafka consumer is stalled",
        description: "{status: \"ok\" | \"degraded\", kafka?: {stalled, assigned_partitions, \
                      unread_messages, unassigned_s, error}}",
        params: &[],
        content_type: "application/json",
        errors: &[503],
    },
    Operation {
        method: "get",
        path: "/metrics",
        summary: "The collector's own metrics",
        description: "Prometheus text exposition.",
        params: &[],
        content_type: "text/plain",
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        description: "OpenAPI 3.0.",
        params: &[],
        content_type: "application/json",
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/",
        summary: "The dashboard",
        description: "A self-contained HTML page reading this API: leaderboard, per-orchestrator \
                      latency and FPS over time, region x orchestrator grid.",
        params: &[],
        content_type: "text/html",
        errors: &[],
    },
];

fn param_schema(kind: ParamType) -> Value {
    match kind {
        ParamType::Text => json!({"type": "string"}),
        ParamType::Integer => json!({"type": "integer", "format": "int64"}),
        ParamType::Boolean => json!({"type": "boolean"}),
        ParamType::Time => json!({
            "type": "string",
            "description": "RFC 3339 (2026-11-27T10:00:00Z) or integer unix seconds",
        }),
        ParamType::OneOf(values) => json!({"type": "string", "enum": values}),
    }
}

fn operation_json(operation: &Operation) -> Value {
    let params: Vec<Value> = operation
        .params
        .iter()
        .map(|param| {
            json!({
                "name": param.name,
                "in": match param.location {
                    ParamIn::Query => "query",
                    ParamIn::Path => "path",
                },
                "required": param.location == ParamIn::Path,
                "description": param.description,
                "schema": param_schema(param.kind),
            })
        })
        .collect();
    let mut responses = Map::new();
    responses.insert(
        "200".to_owned(),
        json!({
            "description": operation.description,
            "content": {operation.content_type: {"schema": {}}},
        }),
    );
    for status in operation.errors {
        responses.insert(
            status.to_string(),
            json!({
                "description": "An RFC 7807 problem naming what is wrong.",
                "content": {
                    super::problem::PROBLEM_CONTENT_TYPE: {
                        "schema": {"$ref": "#/components/schemas/Problem"}
                    }
                },
            }),
        );
    }
    json!({
        "summary": operation.summary,
        "operationId": format!("{}{}", operation.method, operation.path.replace(['/', '{', '}', '.'], "_")),
        "parameters": params,
        "responses": responses,
    })
}

/// The OpenAPI 3.0 document of [`OPERATIONS`].
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for operation in OPERATIONS {
        let entry = paths
            .entry(operation.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[operation.method] = operation_json(operation);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "lvt collector",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Signed result ingest and the public SLA API of lvt (docs/collector.md).",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "pointer": {"type": "string"},
                    },
                },
            },
        },
    })
}

/// `GET /openapi.json`.
pub async fn handle_openapi_get() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        document().to_string(),
    )
        .into_response()
}
