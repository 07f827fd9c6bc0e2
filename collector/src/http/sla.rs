//! The SLA read API: `/v1/sla/compliance`, `/v1/sla/orchestrators`, `/v1/gpu/metrics` and
//! `/v1/network/demand`, all computed on the server from the store's hourly cell sums.
//!
//! Every figure is computed from merged sums: cells are merged into the requested grain first and
//! each merged group is scored once against its cohort (the same pipeline and model over the
//! seven days before the group's bucket starts, test load and organic load apart). Scores are
//! never averaged. The query parsing ([`SlaQuery::parse`]) and the aggregation ([`aggregate`],
//! [`rank`]) are pure and live in [`crate::sla::query`] and [`crate::sla::aggregate`]; this
//! module holds only the handlers, which add the clock, the store, the answer cache and the
//! mapping of refused parameters to problems.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde_json::{Value, json};

use super::problem::{Problem, ProblemKind};
use crate::app::AppState;
use crate::app::timed;
use crate::sla::aggregate::{CohortCells, aggregate, rank};
use crate::sla::query::{SlaFilter, SlaQuery, format_rfc3339};
use crate::sla::{CellKey, CellSums, cohort_window_unix_s, score_with};

/// Reads the cells a request covers and the cohort cells its groups are scored against.
async fn read_cells(
    state: &AppState,
    query: &SlaQuery,
    earliest_bucket_start_unix_s: i64,
) -> Result<(Vec<(CellKey, CellSums)>, CohortCells), Problem> {
    // The request's own cells are only scored (their cohorts come from the rollup), so their
    // histograms need not be read.
    let cells = timed(
        state,
        "sla_cells",
        state.store.sla_cells_for_scoring(&query.filter),
    )
    .await?;
    let pairs: BTreeSet<(String, String)> = cells
        .iter()
        .map(|(key, _)| (key.pipeline.clone(), key.model_id.clone()))
        .collect();
    let cohorts = read_cohorts(state, query, pairs, earliest_bucket_start_unix_s).await?;
    Ok((cells, cohorts))
}

/// Reads the cohort cells of every (pipeline, model) in `pairs`, for buckets starting at
/// `earliest_bucket_start_unix_s` or later.
async fn read_cohorts(
    state: &AppState,
    query: &SlaQuery,
    pairs: BTreeSet<(String, String)>,
    earliest_bucket_start_unix_s: i64,
) -> Result<CohortCells, Problem> {
    let mut cohorts = CohortCells::default();
    for (pipeline, model_id) in pairs {
        // The cohort is fleet-wide: every orchestrator, GPU, region and complexity of the same
        // pipeline and model, whatever the request filtered on.
        let filter = SlaFilter {
            start_unix_s: Some(cohort_window_unix_s(earliest_bucket_start_unix_s).start),
            end_unix_s: Some(query.end_unix_s),
            pipeline: Some(pipeline.clone()),
            model_id: Some(model_id.clone()),
            test_load: query.filter.test_load,
            ..SlaFilter::default()
        };
        // The precomputed cohort rollup holds the same sums merged per hour, so a request reads
        // one row per hour of the cohort window instead of every cell of the fleet.
        let cohort_cells = timed(
            state,
            "sla_cohort_cells",
            state.store.sla_cohort_cells(&filter),
        )
        .await?;
        cohorts.insert(pipeline, model_id, cohort_cells);
    }
    Ok(cohorts)
}

/// Answers from the cache when the store's data version has an answer for `endpoint` and
/// `query`, else computes the body with `compute` and caches it.
async fn cached<F>(
    state: &AppState,
    endpoint: &str,
    query: &SlaQuery,
    compute: F,
) -> Result<Response, Problem>
where
    F: std::future::Future<Output = Result<Value, Problem>>,
{
    let generation = timed(state, "sla_generation", state.store.sla_generation()).await?;
    let key = format!("{endpoint} {query:?}");
    if let Some(generation) = generation
        && let Some(body) = state.sla_cache.get(generation, &key)
    {
        return Ok(text_response(body.to_string()));
    }
    let body: Arc<str> = compute.await?.to_string().into();
    if let Some(generation) = generation {
        state.sla_cache.put(generation, key, Arc::clone(&body));
    }
    Ok(text_response(body.to_string()))
}

fn text_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn text_or_null(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_owned())
    }
}

fn parse_request(
    state: &AppState,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    default_test_load: Option<bool>,
) -> Result<SlaQuery, Problem> {
    let Query(query) =
        query.map_err(|error| Problem::new(ProblemKind::InvalidQuery, error.body_text()))?;
    let now_unix_s = (state.clock)().div_euclid(1000);
    Ok(SlaQuery::parse(&query, now_unix_s, default_test_load)?)
}

fn window_json(query: &SlaQuery) -> Value {
    json!({
        "start": format_rfc3339(query.start_unix_s),
        "end": format_rfc3339(query.end_unix_s),
        "start_unix_s": query.start_unix_s,
        "end_unix_s": query.end_unix_s,
        "test_load": query.filter.test_load,
    })
}

/// [`window_json`] of an endpoint that scores: with the formula its scores follow.
fn scored_window_json(query: &SlaQuery) -> Value {
    let mut body = window_json(query);
    body["formula"] = json!(query.formula.name());
    body
}

/// The group key of a compliance row: bucket start, then the cell key without its hour.
type ComplianceKey = (i64, String, String, String, String, String, String, bool);

/// `GET /v1/sla/compliance`: SLA rows per grain bucket x orchestrator x pipeline x model x GPU x
/// region x complexity x load kind.
pub async fn handle_compliance_get(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let query = parse_request(&state, query, None)?;
    cached(
        &state,
        "compliance",
        &query,
        compliance_body(&state, &query),
    )
    .await
}

async fn compliance_body(state: &AppState, query: &SlaQuery) -> Result<Value, Problem> {
    let (cells, mut cohorts) = read_cells(state, query, query.start_unix_s).await?;
    let groups = aggregate(&cells, |key| -> Option<ComplianceKey> {
        Some((
            query.bucket_start_unix_s(key.hour_unix_s),
            key.orchestrator.clone(),
            key.pipeline.clone(),
            key.model_id.clone(),
            key.gpu.clone(),
            key.region.clone(),
            key.complexity.clone(),
            key.test_load,
        ))
    });
    let rows: Vec<Value> = groups
        .into_iter()
        .map(|(key, merged)| {
            let (bucket, orchestrator, pipeline, model_id, gpu, region, complexity, test_load) =
                key;
            let cohort = cohorts.cohort(bucket, &merged.cohorts);
            let bucket_end = query.bucket_end_unix_s(bucket);
            json!({
                "bucket_start": format_rfc3339(bucket),
                "bucket_end": format_rfc3339(bucket_end),
                "bucket_start_unix_s": bucket,
                "bucket_end_unix_s": bucket_end,
                "orchestrator": text_or_null(&orchestrator),
                "pipeline": pipeline,
                "model_id": model_id,
                "gpu": text_or_null(&gpu),
                "region": text_or_null(&region),
                "complexity": text_or_null(&complexity),
                "test_load": test_load,
                "score": score_with(query.formula, &merged.sums, &cohort),
                "cohort": cohort,
            })
        })
        .collect();
    let mut body = scored_window_json(query);
    body["grain"] = json!(query.grain.name());
    body["rows"] = json!(rows);
    Ok(body)
}

/// `GET /v1/sla/orchestrators`: orchestrators ranked by SLA score over a window (default the
/// last 24 h of test load).
pub async fn handle_orchestrators_get(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let query = parse_request(&state, query, Some(true))?;
    cached(
        &state,
        "orchestrators",
        &query,
        orchestrators_body(&state, &query),
    )
    .await
}

async fn orchestrators_body(state: &AppState, query: &SlaQuery) -> Result<Value, Problem> {
    // The store folds the window's cells per orchestrator as it reads them.
    let groups = timed(
        state,
        "sla_orchestrator_sums",
        state.store.sla_orchestrator_sums(&query.filter),
    )
    .await?;
    let pairs = groups
        .iter()
        .flat_map(|group| {
            group
                .cohorts
                .iter()
                .map(|(pipeline, model_id, _)| (pipeline.clone(), model_id.clone()))
        })
        .collect();
    let mut cohorts = read_cohorts(state, query, pairs, query.start_unix_s).await?;
    let rows = groups
        .into_iter()
        .map(|group| {
            let cohort = cohorts.cohort(query.start_unix_s, &group.cohorts);
            (
                group.orchestrator,
                group.regions.into_iter().collect(),
                score_with(query.formula, &group.sums, &cohort),
            )
        })
        .collect();
    let mut body = scored_window_json(query);
    body["orchestrators"] = json!(rank(rows));
    Ok(body)
}

/// `GET /v1/gpu/metrics`: per GPU name, sessions, mean startup and e2e latency, mean FPS and the
/// SLA score of all its sessions over a window (default the last 24 h of test load).
pub async fn handle_gpu_metrics_get(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let query = parse_request(&state, query, Some(true))?;
    cached(&state, "gpu", &query, gpu_body(&state, &query)).await
}

async fn gpu_body(state: &AppState, query: &SlaQuery) -> Result<Value, Problem> {
    let (cells, mut cohorts) = read_cells(state, query, query.start_unix_s).await?;
    let mut orchestrators: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, _) in &cells {
        orchestrators
            .entry(key.gpu.clone())
            .or_default()
            .insert(key.orchestrator.clone());
    }
    let groups = aggregate(&cells, |key| Some(key.gpu.clone()));
    let gpus: Vec<Value> = groups
        .into_iter()
        .map(|(gpu, merged)| {
            let cohort = cohorts.cohort(query.start_unix_s, &merged.cohorts);
            let scored = score_with(query.formula, &merged.sums, &cohort);
            json!({
                "gpu": text_or_null(&gpu),
                "orchestrators": orchestrators.get(&gpu).map_or(0, BTreeSet::len),
                "sessions": scored.sessions,
                "attempts": scored.attempts,
                "startup_ms_mean": scored.startup_ms_mean,
                "e2e_p50_ms_mean": scored.e2e_p50_ms_mean,
                "output_fps_mean": scored.output_fps_mean,
                "sla_score": scored.sla_score,
                "score": scored,
            })
        })
        .collect();
    let mut body = scored_window_json(query);
    body["gpus"] = json!(gpus);
    Ok(body)
}

/// `GET /v1/network/demand`: per hour x pipeline x model x load kind, sessions and busy
/// answers, a capacity signal (default the last 24 h, both kinds of load).
pub async fn handle_demand_get(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Problem> {
    let query = parse_request(&state, query, None)?;
    cached(&state, "demand", &query, demand_body(&state, &query)).await
}

async fn demand_body(state: &AppState, query: &SlaQuery) -> Result<Value, Problem> {
    let cells = timed(
        state,
        "sla_cells",
        state.store.sla_cells_for_scoring(&query.filter),
    )
    .await?;
    let groups = aggregate(&cells, |key| {
        Some((
            key.hour_unix_s,
            key.pipeline.clone(),
            key.model_id.clone(),
            key.test_load,
        ))
    });
    let rows: Vec<Value> = groups
        .into_iter()
        .map(|((hour, pipeline, model_id, test_load), merged)| {
            let sums = merged.sums;
            json!({
                "hour": format_rfc3339(hour),
                "hour_unix_s": hour,
                "pipeline": pipeline,
                "model_id": model_id,
                "test_load": test_load,
                "sessions": sums.sessions,
                "busy": sums.unscored_busy,
                "busy_rate": (sums.sessions > 0)
                    .then(|| sums.unscored_busy as f64 / sums.sessions as f64),
            })
        })
        .collect();
    let mut body = window_json(query);
    body["rows"] = json!(rows);
    Ok(body)
}
