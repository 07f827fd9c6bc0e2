//! The SLA read API: `/v1/sla/compliance`, `/v1/sla/orchestrators`, `/v1/gpu/metrics` and
//! `/v1/network/demand`, all computed on the server from the store's hourly cell sums.
//!
//! Every figure is computed from merged sums: cells are merged into the requested grain first and
//! each merged group is scored once against its cohort (the same pipeline and model over the
//! seven days before the group's bucket starts, test load and organic load apart). Scores are
//! never averaged. The query parsing ([`SlaQuery::parse`]) and the aggregation ([`aggregate`])
//! are pure functions; the handlers only add the clock and the store.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::ingest::timed;
use crate::problem::{Problem, ProblemKind};
use crate::server::AppState;
use crate::sla::{CellKey, CellSums, Cohort, SlaScore, cohort_window_unix_s, score};
use crate::store::SlaFilter;

const HOUR_S: i64 = 3600;
const DAY_S: i64 = 86_400;
/// The window every endpoint covers when `start` is not given: the 24 hours before `end`.
pub const DEFAULT_SPAN_S: i64 = DAY_S;
/// The longest span one request may cover (a little over a year), so that one request cannot
/// make the server merge an unbounded number of buckets.
pub const MAX_SPAN_S: i64 = 400 * DAY_S;

/// How `/v1/sla/compliance` buckets time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    /// One bucket per hour (the stored grain).
    Hour,
    /// One bucket per UTC day.
    Day,
    /// One bucket for the whole requested window.
    Window,
}

impl Grain {
    /// The name used in the `grain` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
            Grain::Window => "window",
        }
    }
}

/// The parsed parameters shared by the SLA endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaQuery {
    /// Start of the window, seconds since the Unix epoch, floored to the hour.
    pub start_unix_s: i64,
    /// End of the window (exclusive), seconds since the Unix epoch, rounded up to the hour.
    pub end_unix_s: i64,
    /// The time bucketing (only `/v1/sla/compliance` reads it).
    pub grain: Grain,
    /// Cell filters; the time range is filled from the window.
    pub filter: SlaFilter,
}

fn invalid(name: &str, detail: impl std::fmt::Display) -> Problem {
    Problem::new(ProblemKind::InvalidQuery, format!("{name}: {detail}"))
}

/// Parses a time parameter: RFC 3339 (`2026-11-27T10:00:00Z`) or integer seconds since the Unix
/// epoch.
pub fn parse_time_unix_s(name: &str, text: &str) -> Result<i64, Problem> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| at.unix_timestamp())
        .map_err(|_| {
            invalid(
                name,
                format!("{text:?} is neither RFC 3339 nor integer unix seconds"),
            )
        })
}

/// Formats seconds since the Unix epoch as RFC 3339 in UTC (`2026-11-27T10:00:00Z`).
pub fn format_rfc3339(unix_s: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

impl SlaQuery {
    /// Parses the query string of an SLA endpoint at wall-clock time `now_unix_s`.
    ///
    /// `default_test_load` applies when the request has no `test_load` parameter (`None` keeps
    /// both kinds of load, as separate rows).
    pub fn parse(
        query: &HashMap<String, String>,
        now_unix_s: i64,
        default_test_load: Option<bool>,
    ) -> Result<SlaQuery, Problem> {
        let text = |name: &str| query.get(name).filter(|value| !value.is_empty());
        let end = match text("end") {
            Some(value) => parse_time_unix_s("end", value)?,
            None => now_unix_s,
        };
        let start = match text("start") {
            Some(value) => parse_time_unix_s("start", value)?,
            // The default window is whole hours: the 24 that end with the current one.
            None => ceil_hour(end).saturating_sub(DEFAULT_SPAN_S),
        };
        if start >= end {
            return Err(invalid("start", "start must be before end"));
        }
        let start_unix_s = start.div_euclid(HOUR_S) * HOUR_S;
        let end_unix_s = ceil_hour(end);
        if end_unix_s - start_unix_s > MAX_SPAN_S {
            return Err(invalid(
                "end",
                format!("the window may span at most {} days", MAX_SPAN_S / DAY_S),
            ));
        }
        let grain = match text("grain").map(String::as_str) {
            None | Some("hour") => Grain::Hour,
            Some("day") => Grain::Day,
            Some("window") => Grain::Window,
            Some(other) => {
                return Err(invalid(
                    "grain",
                    format!("{other:?} is not one of hour, day, window"),
                ));
            }
        };
        let test_load = match text("test_load").map(String::as_str) {
            None => default_test_load,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => return Err(invalid("test_load", format!("{other:?} is not a boolean"))),
        };
        let complexity = text("complexity").cloned();
        if let Some(value) = &complexity
            && !matches!(value.as_str(), "low" | "medium" | "high")
        {
            return Err(invalid(
                "complexity",
                format!("{value:?} is not one of low, medium, high"),
            ));
        }
        // Cells key orchestrators by lowercase address; an address given in checksum case must
        // find them.
        let orchestrator = text("orchestrator").map(|value| {
            if value.starts_with("0x") || value.starts_with("0X") {
                value.to_ascii_lowercase()
            } else {
                value.clone()
            }
        });
        Ok(SlaQuery {
            start_unix_s,
            end_unix_s,
            grain,
            filter: SlaFilter {
                start_unix_s: Some(start_unix_s),
                end_unix_s: Some(end_unix_s),
                orchestrator,
                region: text("region").cloned(),
                pipeline: text("pipeline").cloned(),
                model_id: text("model").cloned(),
                gpu: text("gpu").cloned(),
                complexity,
                test_load,
            },
        })
    }

    /// The start of the bucket an hour belongs to. A day bucket is clipped to the window, so that
    /// no bucket claims hours the request did not cover (and its cohort starts where it does).
    pub fn bucket_start_unix_s(&self, hour_unix_s: i64) -> i64 {
        match self.grain {
            Grain::Hour => hour_unix_s,
            Grain::Day => (hour_unix_s.div_euclid(DAY_S) * DAY_S).max(self.start_unix_s),
            Grain::Window => self.start_unix_s,
        }
    }

    /// The end (exclusive) of the bucket starting at `bucket_start_unix_s`, clipped to the
    /// window.
    pub fn bucket_end_unix_s(&self, bucket_start_unix_s: i64) -> i64 {
        let end = match self.grain {
            Grain::Hour => bucket_start_unix_s + HOUR_S,
            Grain::Day => bucket_start_unix_s.div_euclid(DAY_S) * DAY_S + DAY_S,
            Grain::Window => self.end_unix_s,
        };
        end.min(self.end_unix_s)
    }
}

fn ceil_hour(unix_s: i64) -> i64 {
    let floor = unix_s.div_euclid(HOUR_S) * HOUR_S;
    if floor == unix_s {
        floor
    } else {
        floor.saturating_add(HOUR_S)
    }
}

/// A cohort's identity: the pipeline, model and load kind whose cells form it.
type CohortKey = (String, String, bool);

/// One merged group: its sums and the cohorts its cells belong to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    /// The merged sums of the group's cells.
    pub sums: CellSums,
    /// The (pipeline, model, test load) of every cell merged in.
    pub cohorts: BTreeSet<CohortKey>,
}

/// Merges cells into groups: `group` maps a cell to its group key (`None` drops the cell).
pub fn aggregate<G: Ord>(
    cells: &[(CellKey, CellSums)],
    mut group: impl FnMut(&CellKey) -> Option<G>,
) -> BTreeMap<G, Merged> {
    let mut groups: BTreeMap<G, Merged> = BTreeMap::new();
    for (key, sums) in cells {
        let Some(group_key) = group(key) else {
            continue;
        };
        let merged = groups.entry(group_key).or_default();
        merged.sums.merge(sums);
        // Most cells of a group share its cohort; looking before inserting spares two string
        // copies per cell.
        let known = merged
            .cohorts
            .iter()
            .any(|(pipeline, model_id, test_load)| {
                *pipeline == key.pipeline
                    && *model_id == key.model_id
                    && *test_load == key.test_load
            });
        if !known {
            merged
                .cohorts
                .insert((key.pipeline.clone(), key.model_id.clone(), key.test_load));
        }
    }
    groups
}

/// The cohort cells of every (pipeline, model) a request touches, from which the cohort of any
/// bucket is merged.
#[derive(Debug, Default)]
pub struct CohortCells {
    cells: BTreeMap<(String, String), Vec<(CellKey, CellSums)>>,
    cache: HashMap<(i64, BTreeSet<CohortKey>), Cohort>,
}

impl CohortCells {
    /// Adds the cells of one (pipeline, model) read from the store.
    pub fn insert(&mut self, pipeline: String, model_id: String, cells: Vec<(CellKey, CellSums)>) {
        self.cells.insert((pipeline, model_id), cells);
    }

    /// The cohort of a group whose bucket starts at `bucket_start_unix_s`: the merged cells of
    /// its cohorts over the seven days before the bucket (a group spanning several pipelines or
    /// models is benchmarked against all of them together).
    pub fn cohort(&mut self, bucket_start_unix_s: i64, cohorts: &BTreeSet<CohortKey>) -> Cohort {
        let cache_key = (bucket_start_unix_s, cohorts.clone());
        if let Some(cohort) = self.cache.get(&cache_key) {
            return *cohort;
        }
        let window = cohort_window_unix_s(bucket_start_unix_s);
        let mut sums = CellSums::default();
        for (pipeline, model_id, test_load) in cohorts {
            let Some(cells) = self.cells.get(&(pipeline.clone(), model_id.clone())) else {
                continue;
            };
            for (key, cell) in cells {
                if key.test_load == *test_load && window.contains(&key.hour_unix_s) {
                    sums.merge(cell);
                }
            }
        }
        let cohort = Cohort::from_sums(&sums);
        self.cache.insert(cache_key, cohort);
        cohort
    }
}

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

/// How many answers the cache keeps before it starts over: enough for the dashboard's and the
/// public API's usual queries, small enough that a crawler's distinct queries cannot grow it.
const CACHE_ENTRIES: usize = 256;

/// SLA answers computed for one data version of the store ([`crate::store::Store::sla_generation`]),
/// by endpoint and parsed query. An answer depends only on the stored sums and the parsed query
/// (whose window is already resolved against the clock), so it stays exact until the data
/// version changes; the cache is then emptied.
#[derive(Debug, Default)]
pub struct ResponseCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    generation: u64,
    bodies: HashMap<String, Arc<str>>,
}

impl ResponseCache {
    /// The answer stored under `key` for data version `generation`.
    pub fn get(&self, generation: u64, key: &str) -> Option<Arc<str>> {
        let inner = self.lock();
        (inner.generation == generation)
            .then(|| inner.bodies.get(key).cloned())
            .flatten()
    }

    /// Stores an answer computed at data version `generation`.
    pub fn put(&self, generation: u64, key: String, body: Arc<str>) {
        let mut inner = self.lock();
        if inner.generation != generation || inner.bodies.len() >= CACHE_ENTRIES {
            inner.bodies.clear();
            inner.generation = generation;
        }
        inner.bodies.insert(key, body);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding the lock can only leave a half-updated map of complete answers;
        // every entry is still a whole answer, so the cache stays usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
    SlaQuery::parse(&query, now_unix_s, default_test_load)
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
                "score": score(&merged.sums, &cohort),
                "cohort": cohort,
            })
        })
        .collect();
    let mut body = window_json(query);
    body["grain"] = json!(query.grain.name());
    body["rows"] = json!(rows);
    Ok(body)
}

/// One orchestrator of the ranking.
#[derive(Debug, Clone, Serialize)]
pub struct RankedOrchestrator {
    /// 1 for the best score; `None` for an orchestrator without a score.
    pub rank: Option<usize>,
    /// The orchestrator (lowercase address, else URI); `None` for sessions naming none.
    pub orchestrator: Option<String>,
    /// The regions its sessions were measured from.
    pub regions: Vec<String>,
    /// The SLA over the window.
    pub score: SlaScore,
}

/// Ranks merged per-orchestrator groups: by score, best first; ties by orchestrator; unscored
/// orchestrators (only busy or excused sessions) last with rank `None`.
pub fn rank(mut rows: Vec<(String, Vec<String>, SlaScore)>) -> Vec<RankedOrchestrator> {
    rows.sort_by(|a, b| match (a.2.sla_score, b.2.sla_score) {
        (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.0.cmp(&b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    rows.into_iter()
        .enumerate()
        .map(
            |(index, (orchestrator, regions, score))| RankedOrchestrator {
                rank: score.sla_score.map(|_| index + 1),
                orchestrator: (!orchestrator.is_empty()).then_some(orchestrator),
                regions,
                score,
            },
        )
        .collect()
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
                score(&group.sums, &cohort),
            )
        })
        .collect();
    let mut body = window_json(query);
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
            let scored = score(&merged.sums, &cohort);
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
    let mut body = window_json(query);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Twenty minutes into an hour.
    const NOW_UNIX_S: i64 = 1_764_001_200;

    fn parse(pairs: &[(&str, &str)]) -> Result<SlaQuery, Problem> {
        let query = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        SlaQuery::parse(&query, NOW_UNIX_S, None)
    }

    #[test]
    fn times_parse_as_rfc3339_or_unix_seconds() {
        assert_eq!(
            parse_time_unix_s("start", "2026-11-27T10:00:00Z"),
            Ok(1_795_773_600)
        );
        assert_eq!(
            parse_time_unix_s("start", "2026-11-27T11:00:00+01:00"),
            Ok(1_795_773_600)
        );
        assert_eq!(parse_time_unix_s("start", "1795773600"), Ok(1_795_773_600));
        let problem = parse_time_unix_s("start", "yesterday").expect_err("invalid");
        assert_eq!(problem.kind, ProblemKind::InvalidQuery);
        assert!(problem.detail.starts_with("start:"), "{}", problem.detail);
        assert_eq!(format_rfc3339(1_795_773_600), json!("2026-11-27T10:00:00Z"));
    }

    #[test]
    fn windows_default_to_the_last_day_and_align_to_hours() {
        let query = parse(&[]).expect("valid");
        // The window ends at the end of the current hour.
        assert_eq!(query.end_unix_s, 1_764_003_600);
        assert_eq!(query.start_unix_s, query.end_unix_s - DAY_S);
        assert_eq!(query.grain, Grain::Hour);
        assert_eq!(query.filter.test_load, None);

        let query = parse(&[("start", "7201"), ("end", "10800"), ("grain", "day")]).expect("valid");
        assert_eq!((query.start_unix_s, query.end_unix_s), (7200, 10_800));
        assert_eq!(
            query.bucket_start_unix_s(7200),
            7200,
            "clipped to the window"
        );
        assert_eq!(
            query.bucket_end_unix_s(7200),
            10_800,
            "clipped to the window"
        );
        let query = parse(&[("start", "0"), ("end", "172800"), ("grain", "day")]).expect("valid");
        assert_eq!(query.bucket_start_unix_s(DAY_S + 3600), DAY_S);
        assert_eq!(query.bucket_end_unix_s(DAY_S), 2 * DAY_S);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        let name_of = |pairs: &[(&str, &str)]| {
            let detail = parse(pairs).expect_err("invalid").detail;
            detail.split(':').next().unwrap_or_default().to_owned()
        };
        assert_eq!(name_of(&[("grain", "week")]), "grain");
        assert_eq!(name_of(&[("start", "20"), ("end", "10")]), "start");
        assert_eq!(name_of(&[("end", "x")]), "end");
        assert_eq!(name_of(&[("test_load", "yes")]), "test_load");
        assert_eq!(name_of(&[("complexity", "extreme")]), "complexity");
        assert_eq!(name_of(&[("start", "0"), ("end", "99999999")]), "end");
    }

    #[test]
    fn orchestrator_addresses_are_matched_in_lowercase() {
        let query = parse(&[("orchestrator", "0xABC")]).expect("valid");
        assert_eq!(query.filter.orchestrator.as_deref(), Some("0xabc"));
        let query = parse(&[("orchestrator", "https://O:8935")]).expect("valid");
        assert_eq!(query.filter.orchestrator.as_deref(), Some("https://O:8935"));
    }

    fn scored(value: Option<f64>) -> SlaScore {
        let mut sums = CellSums::default();
        if value.is_some() {
            sums.startup_attempts = 1;
        }
        let mut result = score(&sums, &Cohort::from_sums(&CellSums::default()));
        result.sla_score = value;
        result
    }

    #[test]
    fn ranking_puts_unscored_orchestrators_last() {
        let ranked = rank(vec![
            ("0xb".into(), vec![], scored(Some(50.0))),
            ("0xc".into(), vec![], scored(None)),
            ("0xa".into(), vec![], scored(Some(90.0))),
            ("0xd".into(), vec![], scored(Some(50.0))),
        ]);
        let order: Vec<_> = ranked
            .iter()
            .map(|row| (row.orchestrator.clone().unwrap_or_default(), row.rank))
            .collect();
        assert_eq!(
            order,
            [
                ("0xa".to_owned(), Some(1)),
                ("0xb".to_owned(), Some(2)),
                ("0xd".to_owned(), Some(3)),
                ("0xc".to_owned(), None),
            ]
        );
    }

    fn key(hour_unix_s: i64, orchestrator: &str, test_load: bool) -> CellKey {
        CellKey {
            hour_unix_s,
            orchestrator: orchestrator.to_owned(),
            pipeline: "p".to_owned(),
            model_id: "m".to_owned(),
            gpu: String::new(),
            region: String::new(),
            complexity: String::new(),
            test_load,
        }
    }

    fn sums(sessions: u64) -> CellSums {
        CellSums {
            sessions,
            startup_attempts: sessions,
            ..CellSums::default()
        }
    }

    #[test]
    fn the_cache_answers_only_for_the_data_version_it_was_filled_at() {
        let cache = ResponseCache::default();
        assert_eq!(cache.get(1, "a"), None);
        cache.put(1, "a".into(), "one".into());
        assert_eq!(cache.get(1, "a").as_deref(), Some("one"));
        assert_eq!(cache.get(1, "b"), None);
        assert_eq!(cache.get(2, "a"), None, "a new data version misses");
        cache.put(2, "b".into(), "two".into());
        assert_eq!(
            cache.get(1, "a"),
            None,
            "entries of the old version are gone"
        );
        assert_eq!(cache.get(2, "b").as_deref(), Some("two"));
        for index in 0..CACHE_ENTRIES * 2 {
            cache.put(2, format!("k{index}"), "x".into());
        }
        assert!(cache.lock().bodies.len() <= CACHE_ENTRIES, "bounded");
    }

    #[test]
    fn groups_merge_sums_and_cohorts_cover_the_week_before() {
        let cells = vec![
            (key(0, "a", true), sums(1)),
            (key(3600, "a", true), sums(2)),
            (key(3600, "b", true), sums(4)),
        ];
        let groups = aggregate(&cells, |key| Some(key.orchestrator.clone()));
        assert_eq!(groups["a"].sums.sessions, 3);
        assert_eq!(groups["b"].sums.sessions, 4);

        let mut cohorts = CohortCells::default();
        let mut history = cells.clone();
        history.push((key(-3600, "c", true), sums(8)));
        history.push((key(-3600, "c", false), sums(16)));
        history.push((key(-8 * DAY_S, "c", true), sums(32)));
        cohorts.insert("p".into(), "m".into(), history);
        let test_load: BTreeSet<CohortKey> = [("p".into(), "m".into(), true)].into();
        // The cohort of hour 7200 is the week before it: hours -3600, 0 and 3600 of test load;
        // organic load and the cell eight days back are out.
        assert_eq!(cohorts.cohort(7200, &test_load).rows, 8 + 1 + 2 + 4);
        assert_eq!(cohorts.cohort(0, &test_load).rows, 8);
    }
}
