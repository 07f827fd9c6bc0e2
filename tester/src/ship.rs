//! Shipping result records to a collector: batching, signing, retrying and spooling.
//!
//! A [`Shipper`] sends [`SessionReport`]s to `POST {collector}/v1/results` in batches of at most
//! [`ShipOptions::max_batch_records`] records and [`ShipOptions::max_batch_bytes`] bytes of
//! JSON, each batch signed with the agent's ed25519 key (`lvt_schema::sign`). Transient failures
//! (connection errors, 5xx, 409) are retried with exponential backoff and a fresh signature; the
//! collector is idempotent by `session_id`, so a retry after a lost acknowledgement stores
//! nothing twice. A batch that still fails is written to a spool directory, one JSON file per
//! batch, so that no result is lost; [`Shipper::ship_spool`] sends such files later.
//!
//! The decisions are plain functions ([`split_batches`], [`RetryPolicy::backoff`],
//! [`disposition`], [`problem_detail`]) so they test without a network; the `Shipper` is the thin
//! driver that reads the wall clock, draws nonces and talks HTTP.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use lvt_schema::SessionReport;
use lvt_schema::sign::{self, SigningKey};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::Value;

/// The collector's ingest path, appended to the collector URL.
pub const RESULTS_PATH: &str = "/v1/results";
/// Most records in one batch.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 500;
/// Most bytes of JSON in one batch: under the collector's 5 MB body limit with room to spare.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Attempts per batch, the first one included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The backoff before the first retry; each further retry doubles it.
pub const DEFAULT_BASE_BACKOFF: Duration = Duration::from_millis(500);
/// How long one request may take before it counts as a connection failure.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Where failed batches are written when no spool directory is given.
pub const DEFAULT_SPOOL_DIR: &str = "lvt-spool";

/// How a [`Shipper`] batches, retries and spools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipOptions {
    /// Most records in one batch (at least 1 is used).
    pub max_batch_records: usize,
    /// Most bytes of JSON in one batch; a single record larger than this travels alone.
    pub max_batch_bytes: usize,
    /// When and how often a failed attempt is retried.
    pub retry: RetryPolicy,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Where batches that could not be delivered are written.
    pub spool_dir: PathBuf,
    /// Seed of the backoff jitter; `None` derives it from the key id, so that agents sharing a
    /// collector spread their retries while each one stays reproducible.
    pub jitter_seed: Option<u64>,
}

impl Default for ShipOptions {
    fn default() -> Self {
        Self {
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            retry: RetryPolicy::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            spool_dir: PathBuf::from(DEFAULT_SPOOL_DIR),
            jitter_seed: None,
        }
    }
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per batch, the first one included (at least 1 is used).
    pub max_attempts: u32,
    /// The backoff before the first retry, before jitter.
    pub base_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_backoff: DEFAULT_BASE_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry): `base * 2^(retry-1)` scaled
    /// by `0.5 + jitter / 2` for `jitter` in `[0, 1]`, so waits never collapse to zero and
    /// agents that failed together do not retry together.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(20);
        let full = self.base_backoff.saturating_mul(1u32 << doublings);
        full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// What to do after the collector answered with an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The batch is stored.
    Delivered,
    /// Worth another attempt with a fresh signature: the collector is overloaded or restarting
    /// (5xx), or the timestamp or nonce was refused (409), which a re-signed attempt cures
    /// unless the clocks disagree by more than the window.
    Retry,
    /// Retrying cannot help: the signature or key is refused (401, 403), the batch is malformed
    /// or too large (400, 413), or the URL is wrong.
    Permanent,
}

/// How the collector's answer `status` is handled.
pub fn disposition(status: u16) -> Disposition {
    match status {
        200..=299 => Disposition::Delivered,
        409 | 500..=599 => Disposition::Retry,
        _ => Disposition::Permanent,
    }
}

/// The human-readable reason in an error body: the problem+json `detail`, else its `title`, else
/// the body's text (shortened).
pub fn problem_detail(body: &[u8]) -> String {
    const MAX_CHARS: usize = 300;
    if let Ok(Value::Object(problem)) = serde_json::from_slice::<Value>(body) {
        for field in ["detail", "title"] {
            if let Some(Value::String(text)) = problem.get(field) {
                return text.clone();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut short: String = text.chars().take(MAX_CHARS).collect();
    if text.chars().count() > MAX_CHARS {
        short.push('…');
    }
    short
}

/// Splits records of the given JSON sizes into consecutive batches of at most `max_records`
/// records and at most `max_bytes` bytes of JSON array (brackets and commas counted). A record
/// larger than `max_bytes` forms a batch of its own: it cannot be split, and the collector
/// decides whether to take it.
pub fn split_batches(sizes: &[usize], max_records: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let max_records = max_records.max(1);
    let mut batches = Vec::new();
    let mut start = 0;
    // The bytes of "[" + records + commas so far, plus the closing "]".
    let mut bytes = 2;
    for (index, &size) in sizes.iter().enumerate() {
        let count = index - start;
        let added = size + usize::from(count > 0);
        if count > 0 && (count >= max_records || bytes + added > max_bytes) {
            batches.push(start..index);
            start = index;
            bytes = 2 + size;
        } else {
            bytes += added;
        }
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

/// The collector's acknowledgement of a stored batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Ack {
    /// Records stored by this request.
    pub inserted: u64,
    /// Records the collector already had (by `session_id`), stored nothing for.
    pub duplicates: u64,
}

/// What a [`Shipper::ship`] delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipOutcome {
    /// Records acknowledged by the collector.
    pub records: usize,
    /// Batches acknowledged by the collector.
    pub batches: usize,
    /// Records the collector newly stored.
    pub inserted: u64,
    /// Records the collector already had.
    pub duplicates: u64,
    /// Attempts beyond the first, over all batches.
    pub retries: u32,
}

impl ShipOutcome {
    fn add(&mut self, records: usize, delivery: Delivery) {
        self.records += records;
        self.batches += 1;
        self.inserted += delivery.ack.inserted;
        self.duplicates += delivery.ack.duplicates;
        self.retries += delivery.attempts.saturating_sub(1);
    }
}

/// Why one batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The collector refused the batch in a way a retry cannot change.
    #[error("the collector rejected the batch ({status}): {detail}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The problem+json `detail` (or the body text).
        detail: String,
    },
    /// Every attempt ended in a retryable status.
    #[error("the collector answered {status} on each of {attempts} attempt(s), last: {detail}")]
    Unavailable {
        /// The last HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The last problem+json `detail` (or the body text).
        detail: String,
    },
    /// Every attempt failed to get an answer at all.
    #[error("the collector could not be reached in {attempts} attempt(s), last: {error}")]
    Unreachable {
        /// Attempts made.
        attempts: u32,
        /// The last connection error.
        error: String,
    },
    /// The collector said 2xx but its body is not `{"inserted":n,"duplicates":m}`; the batch is
    /// probably stored, and re-sending it later stores nothing twice.
    #[error("the collector answered {status} with an unreadable acknowledgement: {error}")]
    BadAck {
        /// The HTTP status.
        status: u16,
        /// Why the body could not be read.
        error: String,
    },
}

impl SendError {
    /// Whether the failure concerns this batch only (malformed or too large), so that the next
    /// batches are still worth sending; otherwise the collector is down or refuses this agent,
    /// and the remaining batches go straight to the spool.
    pub fn is_batch_specific(&self) -> bool {
        matches!(
            self,
            SendError::Rejected {
                status: 400 | 413,
                ..
            }
        )
    }
}

/// Why a batch could not be written to, or read from, the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file system operation failed.
    #[error("spool {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A spool file does not hold a JSON array of records.
    #[error("spool file {}: not a JSON array of records: {detail}", path.display())]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

/// Why a [`Shipper`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The collector URL is not an absolute http(s) URL.
    #[error("collector URL {url:?} is not an http:// or https:// URL{reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused, with a leading separator, or empty.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why [`Shipper::ship`] did not deliver every record.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Some batches failed and were written to the spool: nothing is lost.
    #[error(
        "{cause}; {records_spooled} record(s) not delivered were spooled to {}; \
         send them later with `lvt ship-spool DIR --collector URL --key FILE`",
        display_paths(spooled)
    )]
    Spooled {
        /// The first failure.
        cause: SendError,
        /// What was delivered before and after it.
        delivered: ShipOutcome,
        /// The spool files written, in order.
        spooled: Vec<PathBuf>,
        /// Records in those files.
        records_spooled: usize,
    },
    /// A batch failed and could not be spooled either: its records and those after it are
    /// neither delivered nor saved (they remain in the command's own outputs, if any).
    #[error(
        "{cause}; spooling failed too ({spool_error}): {records_lost} record(s) are not \
         delivered and not spooled{}",
        if spooled.is_empty() { String::new() } else { format!("; earlier failed batches were spooled to {}", display_paths(spooled)) }
    )]
    NotSpooled {
        /// The first failure.
        cause: SendError,
        /// Why the spool write failed.
        spool_error: SpoolError,
        /// What was delivered.
        delivered: ShipOutcome,
        /// Spool files written before the spool failed.
        spooled: Vec<PathBuf>,
        /// Records neither delivered nor spooled.
        records_lost: usize,
    },
    /// A record could not be turned into JSON (a float that is not finite, for example).
    #[error("cannot encode a record as JSON: {0}")]
    Encode(String),
}

impl ShipError {
    /// What was delivered despite the error.
    pub fn delivered(&self) -> ShipOutcome {
        match self {
            ShipError::Spooled { delivered, .. } | ShipError::NotSpooled { delivered, .. } => {
                *delivered
            }
            ShipError::Encode(_) => ShipOutcome::default(),
        }
    }

    /// The spool files holding the records that were not delivered.
    pub fn spooled(&self) -> &[PathBuf] {
        match self {
            ShipError::Spooled { spooled, .. } | ShipError::NotSpooled { spooled, .. } => spooled,
            ShipError::Encode(_) => &[],
        }
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`Shipper::ship_spool`] did with a spool directory.
#[derive(Debug, Default)]
pub struct SpoolDelivery {
    /// Files delivered and removed, with what the collector said.
    pub delivered: Vec<(PathBuf, Ack)>,
    /// Files not delivered (kept), with why.
    pub failed: Vec<(PathBuf, SendError)>,
    /// Files that could not be read or parsed, or not removed after delivery (kept).
    pub unreadable: Vec<SpoolError>,
    /// Files not tried because the collector was unreachable or refused this agent.
    pub skipped: Vec<PathBuf>,
    /// Records delivered.
    pub records: usize,
}

impl SpoolDelivery {
    /// Whether every spool file was delivered and removed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.unreadable.is_empty() && self.skipped.is_empty()
    }

    /// Records the collector newly stored.
    pub fn inserted(&self) -> u64 {
        self.delivered.iter().map(|(_, ack)| ack.inserted).sum()
    }

    /// Records the collector already had.
    pub fn duplicates(&self) -> u64 {
        self.delivered.iter().map(|(_, ack)| ack.duplicates).sum()
    }
}

/// One delivered batch: the acknowledgement and how many attempts it took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery {
    pub(crate) ack: Ack,
    pub(crate) attempts: u32,
}

/// Sends `values` in `batches` through `send` and spools every batch that was not delivered,
/// whatever the transport. After a failure that is not specific to one batch (the destination
/// unreachable, the key refused) the remaining batches are spooled without being tried. The
/// error names the spool files, or says how many records were lost when spooling failed too.
pub(crate) async fn send_or_spool<'s>(
    values: &[Value],
    batches: Vec<Range<usize>>,
    spool_dir: &Path,
    mut send: impl FnMut(Value) -> futures::future::BoxFuture<'s, Result<Delivery, SendError>>,
) -> Result<ShipOutcome, ShipError> {
    let mut delivered = ShipOutcome::default();
    let mut first_error: Option<SendError> = None;
    let mut give_up = false;
    let mut spooled = Vec::new();
    let mut records_spooled = 0;
    for range in batches {
        let count = range.len();
        let batch = Value::Array(values[range].to_vec());
        if !give_up {
            match send(batch.clone()).await {
                Ok(delivery) => {
                    delivered.add(count, delivery);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(
                        message = "Batch not delivered; spooling it.",
                        records = count,
                        error = %error
                    );
                    give_up = !error.is_batch_specific();
                    first_error.get_or_insert(error);
                }
            }
        }
        match spool_batch(spool_dir, &batch) {
            Ok(path) => {
                spooled.push(path);
                records_spooled += count;
            }
            Err(spool_error) => {
                // A batch is spooled only after a failure, so there is always a cause; the
                // fallback merely keeps this path free of panics.
                let cause = first_error.unwrap_or_else(|| SendError::Unreachable {
                    attempts: 0,
                    error: "not sent".to_owned(),
                });
                let records_lost = values.len() - delivered.records - records_spooled;
                return Err(ShipError::NotSpooled {
                    cause,
                    spool_error,
                    delivered,
                    spooled,
                    records_lost,
                });
            }
        }
    }
    match first_error {
        None => Ok(delivered),
        Some(cause) => Err(ShipError::Spooled {
            cause,
            delivered,
            spooled,
            records_spooled,
        }),
    }
}

/// Ships signed batches of result records to one collector.
pub struct Shipper {
    /// The collector URL as given (for messages).
    url: String,
    /// `{url}/v1/results`.
    endpoint: reqwest::Url,
    key: SigningKey,
    http: reqwest::Client,
    options: ShipOptions,
    /// The jitter source; a mutex because `ship` takes `&self` and a shipper may be shared.
    jitter: Mutex<ChaCha8Rng>,
}

impl std::fmt::Debug for Shipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key is secret and must never reach a log.
        f.debug_struct("Shipper")
            .field("url", &self.url)
            .field("key_id", &sign::key_id(&self.key.verifying_key()))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Shipper {
    /// A shipper for the collector at `url` (`http://host:port`, optionally with a path
    /// prefix), signing with `key`.
    pub fn new(url: &str, key: SigningKey, options: ShipOptions) -> Result<Self, SetupError> {
        let bad_url = |reason: String| SetupError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let base = reqwest::Url::parse(url).map_err(|e| bad_url(format!(": {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad_url(String::new()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(bad_url(": it must not have a query or fragment".to_owned()));
        }
        let endpoint_text = format!("{}{RESULTS_PATH}", base.as_str().trim_end_matches('/'));
        let endpoint =
            reqwest::Url::parse(&endpoint_text).map_err(|e| bad_url(format!(": {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .build()?;
        let seed = options.jitter_seed.unwrap_or_else(|| {
            let id = sign::key_id(&key.verifying_key());
            // A key id is 16 hex digits, so it parses as a u64; 0 is only a fallback seed.
            u64::from_str_radix(&id, 16).unwrap_or(0)
        });
        Ok(Self {
            url: url.to_owned(),
            endpoint,
            key,
            http,
            options,
            jitter: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        })
    }

    /// The collector URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The endpoint batches are posted to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// The options in force.
    pub fn options(&self) -> &ShipOptions {
        &self.options
    }

    /// Ships `records` in signed batches. Batches that cannot be delivered are spooled (see the
    /// module documentation) and the error names the files; after a failure that is not
    /// specific to one batch (collector unreachable, key refused) the remaining batches are
    /// spooled without being tried.
    pub async fn ship(&self, records: &[SessionReport]) -> Result<ShipOutcome, ShipError> {
        let values = records
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<Value>, _>>()
            .map_err(|e| ShipError::Encode(e.to_string()))?;
        let sizes: Vec<usize> = values.iter().map(json_len).collect();
        let batches = split_batches(
            &sizes,
            self.options.max_batch_records,
            self.options.max_batch_bytes,
        );

        send_or_spool(&values, batches, &self.options.spool_dir, |batch| {
            Box::pin(async move { self.send_batch(&batch).await })
        })
        .await
    }

    /// Sends every spool file (`batch-*.json`) in `dir`, oldest first, and removes each one only
    /// after the collector acknowledged it. Files that fail stay for a later attempt; after a
    /// failure that is not specific to one batch the remaining files are skipped.
    pub async fn ship_spool(&self, dir: &Path) -> Result<SpoolDelivery, SpoolError> {
        let mut delivery = SpoolDelivery::default();
        let files = spool_files(dir)?;
        let mut give_up = false;
        for path in files {
            if give_up {
                delivery.skipped.push(path);
                continue;
            }
            let batch = match read_spool_file(&path) {
                Ok(batch) => batch,
                Err(error) => {
                    delivery.unreadable.push(error);
                    continue;
                }
            };
            let count = batch.as_array().map_or(0, Vec::len);
            match self.send_batch(&batch).await {
                Ok(sent) => {
                    delivery.records += count;
                    match std::fs::remove_file(&path) {
                        Ok(()) => delivery.delivered.push((path, sent.ack)),
                        Err(source) => delivery.unreadable.push(SpoolError::Io { path, source }),
                    }
                }
                Err(error) => {
                    give_up = !error.is_batch_specific();
                    delivery.failed.push((path, error));
                }
            }
        }
        Ok(delivery)
    }

    /// Delivers one batch (a JSON array), retrying by [`RetryPolicy`] with a fresh signature
    /// each attempt.
    async fn send_batch(&self, batch: &Value) -> Result<Delivery, SendError> {
        // Serializing a `Value` cannot fail: it has string keys only.
        let body = Bytes::from(serde_json::to_vec(batch).unwrap_or_default());
        let max_attempts = self.options.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let result = self.attempt(batch, body.clone()).await;
            let last = match result {
                Ok(ack) => {
                    return Ok(Delivery {
                        ack,
                        attempts: attempt,
                    });
                }
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::Retryable(last)) => last,
            };
            if attempt >= max_attempts {
                return Err(match last {
                    Retryable::Status { status, detail } => SendError::Unavailable {
                        status,
                        attempts: attempt,
                        detail,
                    },
                    Retryable::Connection(error) => SendError::Unreachable {
                        attempts: attempt,
                        error,
                    },
                });
            }
            let jitter = match self.jitter.lock() {
                Ok(mut rng) => rng.random::<f64>(),
                // A poisoned lock only means another thread panicked mid-draw; any jitter works.
                Err(poisoned) => poisoned.into_inner().random::<f64>(),
            };
            let wait = self.options.retry.backoff(attempt, jitter);
            tracing::info!(
                message = "Batch attempt failed; retrying.",
                attempt,
                wait_ms = wait.as_millis() as u64,
                error = %last
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One signed POST of `body` (the serialization of `batch`).
    async fn attempt(&self, batch: &Value, body: Bytes) -> Result<Ack, Attempt> {
        let signature = sign::sign_batch(&self.key, batch, now_unix_ms(), sign::random_nonce());
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in signature.to_headers() {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| Attempt::Retryable(Retryable::Connection(error_chain(&e))))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Attempt::Retryable(Retryable::Connection(error_chain(&e))))?;
        match disposition(status) {
            Disposition::Delivered => serde_json::from_slice::<Ack>(&body).map_err(|e| {
                Attempt::Final(SendError::BadAck {
                    status,
                    error: e.to_string(),
                })
            }),
            Disposition::Retry => Err(Attempt::Retryable(Retryable::Status {
                status,
                detail: problem_detail(&body),
            })),
            Disposition::Permanent => Err(Attempt::Final(SendError::Rejected {
                status,
                detail: problem_detail(&body),
            })),
        }
    }
}

/// How one attempt failed.
enum Attempt {
    Retryable(Retryable),
    Final(SendError),
}

/// A failure worth another attempt.
enum Retryable {
    Status { status: u16, detail: String },
    Connection(String),
}

impl std::fmt::Display for Retryable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retryable::Status { status, detail } => write!(f, "{status}: {detail}"),
            Retryable::Connection(error) => f.write_str(error),
        }
    }
}

/// An error with its sources, because reqwest's own message ("error sending request") hides
/// the useful part ("connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Milliseconds since the Unix epoch on the wall clock (the collector checks the signing time
/// against its own wall clock).
fn now_unix_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// The length of `value` serialized compactly.
fn json_len(value: &Value) -> usize {
    // Serializing a `Value` cannot fail: it has string keys only.
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
}

/// Writes `batch` to a new file `batch-{uuid v7}.json` in `dir` (created if missing) and returns
/// its path. The file appears whole or not at all: it is written under a temporary name, synced
/// and renamed.
pub fn spool_batch(dir: &Path, batch: &Value) -> Result<PathBuf, SpoolError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SpoolError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // UUIDv7 names sort by creation time, so `ship_spool` sends the oldest batch first.
    let name = format!("batch-{}.json", uuid::Uuid::now_v7());
    let path = dir.join(&name);
    let temporary = dir.join(format!(".{name}.tmp"));
    // Serializing a `Value` cannot fail: it has string keys only.
    let bytes = serde_json::to_vec(batch).unwrap_or_default();
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(&bytes).map_err(io(&temporary))?;
        file.sync_all().map_err(io(&temporary))?;
    }
    std::fs::rename(&temporary, &path).map_err(io(&path))?;
    // Syncing the directory makes the rename itself durable; not every platform allows opening
    // a directory, and the file's data is already synced, so a failure here is not fatal.
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(path)
}

/// The spool files in `dir`, oldest first.
pub fn spool_files(dir: &Path) -> Result<Vec<PathBuf>, SpoolError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SpoolError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SpoolError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("batch-") && name.ends_with(".json") {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a spool file: a JSON array of records, kept as JSON so that fields this version of lvt
/// does not know survive the round trip.
fn read_spool_file(path: &Path) -> Result<Value, SpoolError> {
    let bytes = std::fs::read(path).map_err(|source| SpoolError::Io {
        path: path.to_owned(),
        source,
    })?;
    let format = |detail: String| SpoolError::Format {
        path: path.to_owned(),
        detail,
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format(e.to_string()))?;
    match &value {
        Value::Array(items) if items.iter().all(Value::is_object) => Ok(value),
        _ => Err(format("expected an array of objects".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_record_limit() {
        let sizes = vec![10; 1200];
        let batches = split_batches(&sizes, 500, usize::MAX);
        assert_eq!(batches, vec![0..500, 500..1000, 1000..1200]);
    }

    #[test]
    fn batches_respect_the_byte_limit_counting_brackets_and_commas() {
        // [a,b] with records of 10 bytes is 2 + 10 + 1 + 10 = 23 bytes.
        assert_eq!(split_batches(&[10, 10], 100, 23), vec![0..2]);
        assert_eq!(split_batches(&[10, 10], 100, 22), vec![0..1, 1..2]);
        assert_eq!(
            split_batches(&[10, 10, 10, 10, 10], 100, 34),
            vec![0..3, 3..5]
        );
    }

    #[test]
    fn an_oversized_record_travels_alone() {
        assert_eq!(split_batches(&[5, 100, 5], 100, 50), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn no_records_no_batches() {
        assert!(split_batches(&[], 500, 1000).is_empty());
        // A zero record limit would loop forever; it is treated as one.
        assert_eq!(split_batches(&[1, 1], 0, 1000), vec![0..1, 1..2]);
    }

    #[test]
    fn backoff_doubles_within_the_jitter_band() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1, 0.0), Duration::from_millis(250));
        assert_eq!(policy.backoff(1, 1.0), Duration::from_millis(500));
        assert_eq!(policy.backoff(2, 1.0), Duration::from_millis(1000));
        assert_eq!(policy.backoff(4, 1.0), Duration::from_millis(4000));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(1500));
        // Out-of-range jitter is clamped rather than producing a negative or huge wait.
        assert_eq!(policy.backoff(1, 7.0), Duration::from_millis(500));
        // Absurd retry numbers saturate instead of overflowing.
        assert!(policy.backoff(u32::MAX, 1.0) >= Duration::from_secs(3600));
    }

    #[test]
    fn statuses_map_to_dispositions() {
        assert_eq!(disposition(200), Disposition::Delivered);
        for status in [409, 500, 502, 503, 504] {
            assert_eq!(disposition(status), Disposition::Retry, "{status}");
        }
        for status in [400, 401, 403, 404, 413] {
            assert_eq!(disposition(status), Disposition::Permanent, "{status}");
        }
    }

    #[test]
    fn problem_detail_prefers_detail_then_title_then_text() {
        let problem = br#"{"type":"about:blank","title":"Unauthorized","detail":"signature does not verify"}"#;
        assert_eq!(problem_detail(problem), "signature does not verify");
        assert_eq!(problem_detail(br#"{"title":"Conflict"}"#), "Conflict");
        assert_eq!(problem_detail(b"  bad gateway \n"), "bad gateway");
        assert_eq!(problem_detail(b""), "(empty body)");
        let long = "x".repeat(1000);
        assert_eq!(problem_detail(long.as_bytes()).chars().count(), 301);
    }

    #[test]
    fn batch_specific_errors_are_400_and_413_only() {
        let rejected = |status| SendError::Rejected {
            status,
            detail: String::new(),
        };
        assert!(rejected(400).is_batch_specific());
        assert!(rejected(413).is_batch_specific());
        assert!(!rejected(401).is_batch_specific());
        assert!(!rejected(403).is_batch_specific());
        assert!(
            !SendError::Unreachable {
                attempts: 5,
                error: String::new()
            }
            .is_batch_specific()
        );
    }

    #[test]
    fn spooled_batches_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let first = spool_batch(&spool, &serde_json::json!([{"session_id": "a"}])).unwrap();
        let second = spool_batch(&spool, &serde_json::json!([{"session_id": "b"}])).unwrap();
        // A leftover temporary file from an interrupted write is not a spool file.
        std::fs::write(spool.join(".batch-x.json.tmp"), b"[").unwrap();
        assert_eq!(spool_files(&spool).unwrap(), vec![first.clone(), second]);
        assert_eq!(
            read_spool_file(&first).unwrap(),
            serde_json::json!([{"session_id": "a"}])
        );
        std::fs::write(&first, b"{\"not\": \"an array\"}").unwrap();
        assert!(matches!(
            read_spool_file(&first),
            Err(SpoolError::Format { .. })
        ));
    }

    #[test]
    fn setup_refuses_urls_that_are_not_http() {
        let key = SigningKey::from_bytes(&[1; 32]);
        for url in ["ftp://x", "not a url", "http://x/?a=b"] {
            assert!(
                Shipper::new(url, key.clone(), ShipOptions::default()).is_err(),
                "{url}"
            );
        }
        let shipper = Shipper::new("http://127.0.0.1:9/prefix/", key, ShipOptions::default())
            .expect("valid URL");
        assert_eq!(shipper.endpoint(), "http://127.0.0.1:9/prefix/v1/results");
        // The secret key never appears in debug output.
        assert!(!format!("{shipper:?}").contains("AQEB"));
    }
}
