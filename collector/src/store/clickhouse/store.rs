//! [`ClickHouseStore`]: the [`Store`] trait over ClickHouse's HTTP interface.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use lvt_schema::SessionReport;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use super::{ClickHouseConfig, sql};
use crate::sla::{CellKey, CellSums};
use crate::store::{
    AgentStats, EventBatch, EventFilter, EventInsertOutcome, EventsPage, InsertOutcome,
    ResultCursor, ResultFilter, ResultRow, ResultsPage, SlaFilter, Store, StoreError, StoreFuture,
    StoredBatch, StoredEvent, StoredHeartbeat, StoredResult,
};

/// How many session ids one duplicate check names: it keeps the `IN (...)` list well under
/// ClickHouse's default `max_query_size` (256 KiB) for ids of any sane length.
const SESSION_CHECK_CHUNK: usize = 1000;

/// Appended to every read so that 64-bit integers come back as JSON numbers: ClickHouse before
/// 25.x quotes them by default, newer versions do not.
const READ_FORMAT: &str = "SETTINGS output_format_json_quote_64bit_integers = 0 FORMAT JSONEachRow";

/// Why a request to ClickHouse failed.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// The configured database name would have to be quoted; it is refused instead.
    #[error("database name {0:?} must be letters, digits and _, not starting with a digit")]
    InvalidDatabase(String),
    /// The HTTP client could not be built (its TLS backend failed to initialise).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The server could not be reached or the answer was cut off.
    #[error("request to {url} failed: {source}")]
    Transport {
        /// The server's URL.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error (ClickHouse's `Code: N. DB::Exception: ...` text).
    #[error("clickhouse answered HTTP {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The body of the answer, trimmed.
        message: String,
    },
    /// A row of an answer did not have the expected columns.
    #[error("unreadable row {line:?}: {reason}")]
    Decode {
        /// The row as received.
        line: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// A ClickHouse database holding the collector's data.
pub struct ClickHouseStore {
    client: reqwest::Client,
    pub(super) config: ClickHouseConfig,
    /// The server URL with exactly one trailing `/`.
    endpoint: String,
    /// Serialises this process's check-then-insert sequences (duplicate sessions, nonces) and
    /// deletions, which ClickHouse cannot make atomic on its own.
    pub(super) write_lock: Mutex<()>,
    /// The last event arrival sequence number handed out, read from the table on first use.
    /// Only touched while `write_lock` is held.
    pub(super) event_seq: std::sync::Mutex<Option<i64>>,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("ClickHouseStore")
            .field("url", &self.config.url)
            .field("database", &self.config.database)
            .finish_non_exhaustive()
    }
}

/// One row of `results` as inserted.
#[derive(Serialize)]
struct ResultLine<'a> {
    session_id: &'a str,
    batch_id: i64,
    agent_id: &'a str,
    orchestrator_address: Option<&'a str>,
    orchestrator_uri: Option<&'a str>,
    gpu: Option<&'a str>,
    region: Option<&'a str>,
    pipeline: &'a str,
    model_id: &'a str,
    complexity: Option<&'a str>,
    outcome: &'a str,
    started_at_unix_ms: i64,
    ended_at_unix_ms: i64,
    record_json: &'a str,
    keep_rank: u64,
}

/// One row of `batches`, as inserted and as read back.
#[derive(Serialize, Deserialize)]
struct BatchLine {
    batch_id: i64,
    agent_id: String,
    key_id: String,
    timestamp_ms: i64,
    nonce: String,
    signature: String,
    canonical_sha256: String,
    session_ids: Vec<String>,
    received_at_unix_ms: i64,
}

#[derive(Serialize)]
struct NonceLine<'a> {
    key_id: &'a str,
    nonce: &'a str,
    timestamp_ms: i64,
}

/// One row of `sla_partials`, as inserted and as read back.
#[derive(Serialize, Deserialize)]
struct PartialLine {
    hour_unix_s: i64,
    orchestrator: String,
    pipeline: String,
    model_id: String,
    gpu: String,
    region: String,
    complexity: String,
    test_load: bool,
    batch_id: i64,
    sums: String,
}

#[derive(Deserialize)]
struct SessionLine {
    session_id: String,
}

#[derive(Deserialize)]
struct CountLine {
    n: u64,
}

#[derive(Deserialize)]
struct PageLine {
    agent_id: String,
    batch_id: i64,
    ended_at_unix_ms: i64,
    session_id: String,
    record_json: String,
}

/// One row of `agent_heartbeats`, as inserted and as read back.
#[derive(Serialize, Deserialize)]
struct HeartbeatLine {
    agent_id: String,
    received_at_unix_ms: i64,
    heartbeat_json: String,
}

#[derive(Deserialize)]
struct AgentLine {
    agent_id: String,
    last_seen_unix_ms: i64,
    result_count: u64,
}

/// Sessions counted in one cell of the hourly rollup (`results_hourly`). Labels a record did
/// not have are `""`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HourlyCount {
    /// The start of the UTC hour the sessions started in, seconds since the Unix epoch.
    pub hour_unix_s: i64,
    /// The orchestrator's Ethereum address.
    pub orchestrator_address: String,
    /// The orchestrator's service URI.
    pub orchestrator_uri: String,
    /// The pipeline name.
    pub pipeline: String,
    /// The model id.
    pub model_id: String,
    /// The GPU name.
    pub gpu: String,
    /// The tester's region label.
    pub region: String,
    /// The prompt complexity.
    pub complexity: String,
    /// The outcome.
    pub outcome: String,
    /// How many sessions fall in this cell.
    pub sessions: u64,
}

/// The batch id of the batch signed by `key_id` with `nonce`: ClickHouse has no sequences, and
/// (key id, nonce) is unique among accepted batches because a reused nonce is refused, so 63 bits
/// of its hash name the batch without coordination between collectors.
fn batch_id(key_id: &str, nonce: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(key_id.as_bytes())
        .chain_update([0])
        .chain_update(nonce.as_bytes())
        .finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first) & i64::MAX
}

/// The `keep_rank` of a row received at `received_at_unix_ms`: higher for earlier copies, so
/// that `ReplacingMergeTree(keep_rank)` keeps the first stored copy of a session.
pub(super) fn keep_rank(received_at_unix_ms: i64) -> u64 {
    u64::MAX - received_at_unix_ms.max(0).unsigned_abs()
}

/// The SLA cell sums of `results`. The ingest stores only records that parsed as a
/// [`SessionReport`], so one that does not parse can only come from a caller that bypassed it (a
/// test, a manual import); it is stored but adds to no cell, and says so.
fn cell_sums<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<CellKey, CellSums> {
    let mut cells: BTreeMap<CellKey, CellSums> = BTreeMap::new();
    for (session_id, record_json) in records {
        match serde_json::from_str::<SessionReport>(record_json) {
            Ok(report) => crate::sla::add_session(&mut cells, &report),
            Err(error) => tracing::warn!(
                message = "Stored record is not a session report; it adds to no SLA cell.",
                session_id,
                error = %error
            ),
        }
    }
    cells
}

/// `rows` as `JSONEachRow` text.
pub(super) fn json_lines<T: Serialize>(
    rows: impl IntoIterator<Item = T>,
) -> Result<String, StoreError> {
    let mut text = String::new();
    for row in rows {
        let line = serde_json::to_string(&row)
            .map_err(|error| StoreError::Corrupt(format!("cannot encode a row: {error}")))?;
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// A whole-second `DateTime('UTC')` literal for `unix_ms`, clamped to the type's range.
fn date_time(unix_ms: i64) -> String {
    let seconds = (unix_ms.max(0) / 1000).min(i64::from(u32::MAX));
    format!("toDateTime({seconds}, 'UTC')")
}

impl ClickHouseStore {
    /// Connects to the server of `config` and creates the database and tables when missing.
    pub async fn open(config: ClickHouseConfig) -> Result<Self, StoreError> {
        if !sql::valid_database(&config.database) {
            return Err(ClickHouseError::InvalidDatabase(config.database).into());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(ClickHouseError::Client)?;
        let endpoint = format!("{}/", config.url.trim_end_matches('/'));
        let store = Self {
            client,
            config,
            endpoint,
            write_lock: Mutex::new(()),
            event_seq: std::sync::Mutex::new(None),
        };
        for statement in sql::schema(&store.config.database) {
            store.execute(&statement, None).await?;
        }
        Ok(store)
    }

    /// Runs `sql` and returns the answer's body. With `data`, `sql` goes in the `query`
    /// parameter and `data` in the body, which is how ClickHouse takes `INSERT ... FORMAT` rows.
    pub(super) async fn execute(
        &self,
        sql: &str,
        data: Option<String>,
    ) -> Result<String, ClickHouseError> {
        // `wait_end_of_query` makes ClickHouse buffer the answer, so that an error raised
        // mid-query arrives as an HTTP 500 rather than as text after a 200's first rows.
        let mut request = self
            .client
            .post(&self.endpoint)
            .query(&[("wait_end_of_query", "1")]);
        request = match data {
            Some(data) => request.query(&[("query", sql)]).body(data),
            None => request.body(sql.to_owned()),
        };
        if let Some(user) = &self.config.user {
            request = request.header("X-ClickHouse-User", user);
        }
        if let Some(password) = &self.config.password {
            request = request.header("X-ClickHouse-Key", password);
        }
        let transport = |source| ClickHouseError::Transport {
            url: self.config.url.clone(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.text().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ClickHouseError::Server {
                status: status.as_u16(),
                message: body.trim().to_owned(),
            });
        }
        Ok(body)
    }

    /// Runs the `SELECT` `sql` (without `SETTINGS` or `FORMAT`) and decodes each row.
    pub(super) async fn rows<T: DeserializeOwned>(
        &self,
        sql: &str,
    ) -> Result<Vec<T>, ClickHouseError> {
        let body = self.execute(&format!("{sql} {READ_FORMAT}"), None).await?;
        body.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|error| ClickHouseError::Decode {
                    line: line.to_owned(),
                    reason: error.to_string(),
                })
            })
            .collect()
    }

    /// Runs a `SELECT count() AS n ...` and returns `n`.
    pub(super) async fn count(&self, sql: &str) -> Result<u64, ClickHouseError> {
        let rows: Vec<CountLine> = self.rows(sql).await?;
        Ok(rows.first().map_or(0, |row| row.n))
    }

    /// Inserts `rows` (`JSONEachRow` text) into `table` of the collector's database.
    pub(super) async fn insert(&self, table: &str, rows: String) -> Result<(), ClickHouseError> {
        let db = &self.config.database;
        self.execute(
            &format!("INSERT INTO {db}.{table} FORMAT JSONEachRow"),
            Some(rows),
        )
        .await
        .map(drop)
    }

    /// The session ids among `ids` that `results` already holds.
    async fn stored_sessions(&self, ids: &[&str]) -> Result<HashSet<String>, ClickHouseError> {
        let db = &self.config.database;
        let mut stored = HashSet::new();
        for chunk in ids.chunks(SESSION_CHECK_CHUNK) {
            let list = chunk
                .iter()
                .map(|id| sql::string(id))
                .collect::<Vec<_>>()
                .join(",");
            let rows: Vec<SessionLine> = self
                .rows(&format!(
                    "SELECT DISTINCT session_id FROM {db}.results WHERE session_id IN ({list})"
                ))
                .await?;
            stored.extend(rows.into_iter().map(|row| row.session_id));
        }
        Ok(stored)
    }

    async fn insert_batch_now(
        &self,
        batch: StoredBatch,
        results: Vec<StoredResult>,
    ) -> Result<InsertOutcome, StoreError> {
        let _writer = self.write_lock.lock().await;
        let mut outcome = InsertOutcome::default();
        // The first copy of a session repeated within the batch is the one kept.
        let mut in_batch = HashSet::new();
        let mut fresh: Vec<&StoredResult> = Vec::with_capacity(results.len());
        for result in &results {
            if in_batch.insert(result.session_id.as_str()) {
                fresh.push(result);
            } else {
                outcome.duplicates += 1;
            }
        }
        let ids: Vec<&str> = fresh.iter().map(|r| r.session_id.as_str()).collect();
        let stored = self.stored_sessions(&ids).await?;
        fresh.retain(|result| !stored.contains(&result.session_id));
        outcome.duplicates += u64::try_from(stored.len()).unwrap_or(u64::MAX);

        // The batch row goes first: a failure between the two inserts leaves a batch without
        // results (harmless, and removed by retention), never results without their batch.
        let id = batch_id(&batch.key_id, &batch.nonce);
        let rank = keep_rank(batch.received_at_unix_ms);
        let batch_row = json_lines([BatchLine {
            batch_id: id,
            agent_id: batch.agent_id.clone(),
            key_id: batch.key_id,
            timestamp_ms: batch.timestamp_ms,
            nonce: batch.nonce,
            signature: batch.signature,
            canonical_sha256: batch.canonical_sha256,
            session_ids: batch.session_ids,
            received_at_unix_ms: batch.received_at_unix_ms,
        }])?;
        self.insert("batches", batch_row).await?;
        if !fresh.is_empty() {
            let lines = json_lines(fresh.iter().map(|result| ResultLine {
                session_id: &result.session_id,
                batch_id: id,
                agent_id: &batch.agent_id,
                orchestrator_address: result.orchestrator_address.as_deref(),
                orchestrator_uri: result.orchestrator_uri.as_deref(),
                gpu: result.gpu.as_deref(),
                region: result.region.as_deref(),
                pipeline: &result.pipeline,
                model_id: &result.model_id,
                complexity: result.complexity.as_deref(),
                outcome: &result.outcome,
                started_at_unix_ms: result.started_at_unix_ms,
                ended_at_unix_ms: result.ended_at_unix_ms,
                record_json: &result.record_json,
                keep_rank: rank,
            }))?;
            // One INSERT is one block and one part: ClickHouse writes it wholly or not at all,
            // and (async_insert being off) answers only once the part is on disk.
            self.insert("results", lines).await?;
            // Only newly stored records add to the rollup, so a retried batch changes no sum.
            // The partial sums go in after the records: if the collector dies between the two
            // inserts, the records are stored but under-counted in the rollup until
            // `rebuild_sla_cells` runs, which is better than ever counting a record twice.
            let cells = cell_sums(
                fresh
                    .iter()
                    .map(|result| (result.session_id.as_str(), result.record_json.as_str())),
            );
            self.insert_partials(id, cells).await?;
        }
        outcome.inserted = u64::try_from(fresh.len()).unwrap_or(u64::MAX);
        Ok(outcome)
    }

    /// Stores `cells` as partial sums contributed by batch `batch_id`.
    async fn insert_partials(
        &self,
        batch_id: i64,
        cells: BTreeMap<CellKey, CellSums>,
    ) -> Result<(), StoreError> {
        if cells.is_empty() {
            return Ok(());
        }
        let mut partials = Vec::with_capacity(cells.len());
        for (key, sums) in cells {
            let sums = serde_json::to_string(&sums).map_err(|error| {
                StoreError::Corrupt(format!("cannot encode cell sums: {error}"))
            })?;
            partials.push(PartialLine {
                hour_unix_s: key.hour_unix_s,
                orchestrator: key.orchestrator,
                pipeline: key.pipeline,
                model_id: key.model_id,
                gpu: key.gpu,
                region: key.region,
                complexity: key.complexity,
                test_load: key.test_load,
                batch_id,
                sums,
            });
        }
        self.insert("sla_partials", json_lines(partials)?).await?;
        Ok(())
    }

    /// Rebuilds the SLA rollup from every stored record and returns how many records it read.
    ///
    /// This is the repair after a collector died between storing a batch's records and their
    /// partial sums (see `insert_batch`). It holds the write lock throughout, so no batch is
    /// stored meanwhile; reads made during the rebuild may see a partial rollup. Rebuilt rows
    /// carry batch id 0.
    pub async fn rebuild_sla_cells(&self) -> Result<u64, StoreError> {
        const PAGE: usize = 10_000;
        let _writer = self.write_lock.lock().await;
        let db = &self.config.database;
        self.execute(&format!("TRUNCATE TABLE {db}.sla_partials"), None)
            .await?;
        let mut cursor = None;
        let mut records = 0_u64;
        loop {
            let page = self
                .results_page_now(ResultFilter::default(), cursor, PAGE)
                .await?;
            records += u64::try_from(page.rows.len()).unwrap_or(u64::MAX);
            let cells = cell_sums(
                page.rows
                    .iter()
                    .map(|row| (row.session_id.as_str(), row.record_json.as_str())),
            );
            self.insert_partials(0, cells).await?;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(records)
    }

    async fn remember_nonce_now(
        &self,
        key_id: String,
        nonce: String,
        timestamp_ms: i64,
    ) -> Result<bool, StoreError> {
        let _writer = self.write_lock.lock().await;
        let db = &self.config.database;
        let known = self
            .count(&format!(
                "SELECT count() AS n FROM {db}.nonces WHERE key_id = {} AND nonce = {}",
                sql::string(&key_id),
                sql::string(&nonce)
            ))
            .await?;
        if known > 0 {
            return Ok(false);
        }
        let line = json_lines([NonceLine {
            key_id: &key_id,
            nonce: &nonce,
            timestamp_ms,
        }])?;
        self.insert("nonces", line).await?;
        Ok(true)
    }

    /// Counts the rows of `table` matching `condition`, then deletes them (a lightweight
    /// `DELETE`, which returns once the rows are hidden from every later read). Rows of a
    /// `ReplacingMergeTree` are counted after deduplication, as every read sees them.
    pub(super) async fn delete_where(
        &self,
        table: &str,
        condition: &str,
    ) -> Result<u64, ClickHouseError> {
        let db = &self.config.database;
        // Only the ReplacingMergeTree tables deduplicate; plain MergeTree ones refuse `FINAL`.
        let dedup = if matches!(table, "sla_partials" | "events") {
            ""
        } else {
            "FINAL"
        };
        let matching = self
            .count(&format!(
                "SELECT count() AS n FROM {db}.{table} {dedup} WHERE {condition}"
            ))
            .await?;
        if matching > 0 {
            self.execute(&format!("DELETE FROM {db}.{table} WHERE {condition}"), None)
                .await?;
        }
        Ok(matching)
    }

    async fn results_page_now(
        &self,
        filter: ResultFilter,
        cursor: Option<ResultCursor>,
        limit: usize,
    ) -> Result<ResultsPage, StoreError> {
        let db = &self.config.database;
        let mut conditions = vec!["1".to_owned()];
        if let Some(orchestrator) = &filter.orchestrator {
            let value = sql::string(orchestrator);
            conditions.push(format!(
                "(orchestrator_uri = {value} OR orchestrator_address = {value})"
            ));
        }
        if let Some(since) = filter.since_unix_ms {
            conditions.push(format!("ended_at_unix_ms >= {since}"));
        }
        if let Some(until) = filter.until_unix_ms {
            conditions.push(format!("ended_at_unix_ms < {until}"));
        }
        if let Some(cursor) = &cursor {
            conditions.push(format!(
                "(ended_at_unix_ms > {at} OR (ended_at_unix_ms = {at} AND session_id > {id}))",
                at = cursor.ended_at_unix_ms,
                id = sql::string(&cursor.session_id)
            ));
        }
        // One row more than asked tells whether another page follows.
        let fetch = limit.saturating_add(1);
        let lines: Vec<PageLine> = self
            .rows(&format!(
                "SELECT agent_id, batch_id, ended_at_unix_ms, session_id, record_json
                 FROM {db}.results FINAL
                 WHERE {}
                 ORDER BY ended_at_unix_ms, session_id
                 LIMIT {fetch}",
                conditions.join(" AND ")
            ))
            .await?;
        let mut rows: Vec<ResultRow> = lines
            .into_iter()
            .map(|line| ResultRow {
                agent_id: line.agent_id,
                batch_id: line.batch_id,
                ended_at_unix_ms: line.ended_at_unix_ms,
                session_id: line.session_id,
                record_json: line.record_json,
            })
            .collect();
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| ResultCursor {
                ended_at_unix_ms: row.ended_at_unix_ms,
                session_id: row.session_id.clone(),
            })
        } else {
            None
        };
        Ok(ResultsPage { rows, next })
    }

    async fn sla_cells_now(
        &self,
        filter: SlaFilter,
    ) -> Result<Vec<(CellKey, CellSums)>, StoreError> {
        let db = &self.config.database;
        let mut conditions = vec!["1".to_owned()];
        if let Some(start) = filter.start_unix_s {
            conditions.push(format!("hour_unix_s >= {start}"));
        }
        if let Some(end) = filter.end_unix_s {
            conditions.push(format!("hour_unix_s < {end}"));
        }
        let labels = [
            ("orchestrator", &filter.orchestrator),
            ("region", &filter.region),
            ("pipeline", &filter.pipeline),
            ("model_id", &filter.model_id),
            ("gpu", &filter.gpu),
            ("complexity", &filter.complexity),
        ];
        for (column, value) in labels {
            if let Some(value) = value {
                conditions.push(format!("{column} = {}", sql::string(value)));
            }
        }
        if let Some(test_load) = filter.test_load {
            conditions.push(format!("test_load = {test_load}"));
        }
        let rows: Vec<PartialLine> = self
            .rows(&format!(
                "SELECT hour_unix_s, orchestrator, pipeline, model_id, gpu, region, complexity,
                        test_load, batch_id, sums
                 FROM {db}.sla_partials
                 WHERE {}",
                conditions.join(" AND ")
            ))
            .await?;
        let mut cells: BTreeMap<CellKey, CellSums> = BTreeMap::new();
        for row in rows {
            let sums: CellSums = serde_json::from_str(&row.sums)
                .map_err(|error| StoreError::Corrupt(format!("stored cell sums: {error}")))?;
            let key = CellKey {
                hour_unix_s: row.hour_unix_s,
                orchestrator: row.orchestrator,
                pipeline: row.pipeline,
                model_id: row.model_id,
                gpu: row.gpu,
                region: row.region,
                complexity: row.complexity,
                test_load: row.test_load,
            };
            cells.entry(key).or_default().merge(&sums);
        }
        Ok(cells.into_iter().collect())
    }

    /// Session counts of the hourly rollup for hours starting in
    /// `[since_unix_ms, until_unix_ms)` (whole seconds), summed per cell and ordered by hour and
    /// then by every label.
    pub async fn hourly_counts(
        &self,
        since_unix_ms: i64,
        until_unix_ms: i64,
    ) -> Result<Vec<HourlyCount>, StoreError> {
        let db = &self.config.database;
        // SummingMergeTree sums rows of a cell only when it merges parts, so the query sums too.
        let rows = self
            .rows(&format!(
                "SELECT toInt64(toUnixTimestamp(hour)) AS hour_unix_s, orchestrator_address,
                        orchestrator_uri, pipeline, model_id, gpu, region, complexity, outcome,
                        sum(sessions) AS sessions
                 FROM {db}.results_hourly
                 WHERE hour >= {since} AND hour < {until}
                 GROUP BY hour, orchestrator_address, orchestrator_uri, pipeline, model_id, gpu,
                          region, complexity, outcome
                 ORDER BY hour, orchestrator_address, orchestrator_uri, pipeline, model_id, gpu,
                          region, complexity, outcome",
                since = date_time(since_unix_ms),
                until = date_time(until_unix_ms),
            ))
            .await?;
        Ok(rows)
    }
}

impl Store for ClickHouseStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.execute("SELECT 1", None).await?;
            Ok(())
        })
    }

    fn insert_batch(
        &self,
        batch: StoredBatch,
        results: Vec<StoredResult>,
    ) -> StoreFuture<'_, InsertOutcome> {
        Box::pin(self.insert_batch_now(batch, results))
    }

    fn remember_nonce(
        &self,
        key_id: String,
        nonce: String,
        timestamp_ms: i64,
    ) -> StoreFuture<'_, bool> {
        Box::pin(self.remember_nonce_now(key_id, nonce, timestamp_ms))
    }

    fn prune_nonces(&self, before_unix_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let _writer = self.write_lock.lock().await;
            Ok(self
                .delete_where("nonces", &format!("timestamp_ms < {before_unix_ms}"))
                .await?)
        })
    }

    fn results_page(
        &self,
        filter: ResultFilter,
        cursor: Option<ResultCursor>,
        limit: usize,
    ) -> StoreFuture<'_, ResultsPage> {
        Box::pin(self.results_page_now(filter, cursor, limit))
    }

    fn batch(&self, batch_id: i64) -> StoreFuture<'_, Option<StoredBatch>> {
        Box::pin(async move {
            let db = &self.config.database;
            let rows: Vec<BatchLine> = self
                .rows(&format!(
                    "SELECT * FROM {db}.batches FINAL WHERE batch_id = {batch_id} LIMIT 1"
                ))
                .await?;
            Ok(rows.into_iter().next().map(|line| StoredBatch {
                agent_id: line.agent_id,
                key_id: line.key_id,
                timestamp_ms: line.timestamp_ms,
                nonce: line.nonce,
                signature: line.signature,
                canonical_sha256: line.canonical_sha256,
                session_ids: line.session_ids,
                received_at_unix_ms: line.received_at_unix_ms,
            }))
        })
    }

    fn agents(&self) -> StoreFuture<'_, Vec<AgentStats>> {
        Box::pin(async move {
            let db = &self.config.database;
            // An agent whose results were all deleted gets 0 from the LEFT JOIN
            // (`join_use_nulls` is off by default, so a missing right side reads as 0).
            let rows: Vec<AgentLine> = self
                .rows(&format!(
                    "SELECT b.agent_id AS agent_id, b.last_seen AS last_seen_unix_ms,
                            r.n AS result_count
                     FROM (SELECT agent_id, max(received_at_unix_ms) AS last_seen
                           FROM {db}.batches FINAL GROUP BY agent_id) AS b
                     LEFT JOIN (SELECT agent_id, count() AS n
                                FROM {db}.results FINAL GROUP BY agent_id) AS r
                     ON b.agent_id = r.agent_id
                     ORDER BY agent_id"
                ))
                .await?;
            Ok(rows
                .into_iter()
                .map(|row| AgentStats {
                    agent_id: row.agent_id,
                    last_seen_unix_ms: Some(row.last_seen_unix_ms),
                    result_count: row.result_count,
                })
                .collect())
        })
    }

    fn put_heartbeat(
        &self,
        agent_id: String,
        received_at_unix_ms: i64,
        heartbeat_json: String,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // ReplacingMergeTree(received_at_unix_ms) keyed by agent: reads with FINAL see
            // the row received last, whatever order the inserts came in.
            let line = json_lines([HeartbeatLine {
                agent_id,
                received_at_unix_ms,
                heartbeat_json,
            }])?;
            self.insert("agent_heartbeats", line).await?;
            Ok(())
        })
    }

    fn heartbeats(&self) -> StoreFuture<'_, Vec<StoredHeartbeat>> {
        Box::pin(async move {
            let db = &self.config.database;
            let rows: Vec<HeartbeatLine> = self
                .rows(&format!(
                    "SELECT agent_id, received_at_unix_ms, heartbeat_json
                     FROM {db}.agent_heartbeats FINAL ORDER BY agent_id"
                ))
                .await?;
            Ok(rows
                .into_iter()
                .map(|row| StoredHeartbeat {
                    agent_id: row.agent_id,
                    received_at_unix_ms: row.received_at_unix_ms,
                    heartbeat_json: row.heartbeat_json,
                })
                .collect())
        })
    }

    fn count_results(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let db = &self.config.database;
            Ok(self
                .count(&format!("SELECT count() AS n FROM {db}.results FINAL"))
                .await?)
        })
    }

    fn sla_cells(&self, filter: &SlaFilter) -> StoreFuture<'_, Vec<(CellKey, CellSums)>> {
        Box::pin(self.sla_cells_now(filter.clone()))
    }

    fn insert_events(
        &self,
        batch: EventBatch,
        events: Vec<StoredEvent>,
    ) -> StoreFuture<'_, EventInsertOutcome> {
        Box::pin(self.insert_events_now(batch, events))
    }

    fn events_page(
        &self,
        filter: EventFilter,
        after_seq: Option<i64>,
        limit: usize,
    ) -> StoreFuture<'_, EventsPage> {
        Box::pin(self.events_page_now(filter, after_seq, limit))
    }

    fn first_event_seq_since(&self, unix_ms: i64) -> StoreFuture<'_, Option<i64>> {
        Box::pin(self.first_event_seq_since_now(unix_ms))
    }

    fn delete_events_older_than(&self, unix_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(self.delete_events_older_than_now(unix_ms))
    }

    fn delete_older_than(&self, unix_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let _writer = self.write_lock.lock().await;
            let db = &self.config.database;
            let deleted = self
                .delete_where("results", &format!("ended_at_unix_ms < {unix_ms}"))
                .await?;
            // Cells are dropped once their whole hour is past the cutoff, so the SLA rollup
            // covers the same span as the records (as in the SQLite backend). The simple
            // `results_hourly` counts are kept: they are the long-term history.
            self.delete_where(
                "sla_partials",
                &format!("(hour_unix_s + 3600) * 1000 <= {unix_ms}"),
            )
            .await?;
            self.delete_where(
                "batches",
                &format!(
                    "received_at_unix_ms < {unix_ms}
                     AND batch_id NOT IN (SELECT batch_id FROM {db}.results)"
                ),
            )
            .await?;
            Ok(deleted)
        })
    }
}
