//! Shipping result records: batching, signing, retrying and spooling, over HTTP or Kafka.
//!
//! Records go in batches of at most [`ShipOptions::max_batch_records`] records and
//! [`ShipOptions::max_batch_bytes`] bytes of JSON ([`split_batches`]), each batch signed with
//! the agent's ed25519 key (`lvt_schema::sign`). Whatever the transport, a batch that cannot be
//! delivered is written to a spool directory (`send_or_spool`), so that no result is lost.
//!
//! - `http`: [`Shipper`], `POST {collector}/v1/results` with retries and fresh signatures, and
//!   the sending of spooled files (`lvt ship-spool`);
//! - `kafka`: [`kafka::KafkaShipper`], the same batches produced to a results topic;
//! - `spool`: the on-disk spool (atomic batch files, read back oldest first).
//!
//! This module holds what they share: options, the batch split, outcomes and errors, the
//! send-or-spool loop and [`Transport`], the choice between the two.

mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(not(feature = "kafka"))]
#[path = "kafka_disabled.rs"]
pub mod kafka;
mod spool;
mod stream;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvt_schema::SessionReport;
use serde::Deserialize;
use serde_json::Value;

pub use http::{Disposition, RESULTS_PATH, SetupError, Shipper, disposition, problem_detail};
pub use kafka::KafkaShipper;
pub use spool::{DEFAULT_SPOOL_DIR, SpoolDelivery, SpoolError, spool_batch, spool_files};
pub use stream::{SessionShipper, Shipped};

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

/// The records as JSON values and their split into batches of at most `max_records` records
/// and `max_bytes` bytes, as every transport sends them.
pub(crate) fn encode_batches(
    records: &[SessionReport],
    max_records: usize,
    max_bytes: usize,
) -> Result<(Vec<Value>, Vec<Range<usize>>), serde_json::Error> {
    let values = records
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<Value>, _>>()?;
    let sizes: Vec<usize> = values.iter().map(json_len).collect();
    Ok((values, split_batches(&sizes, max_records, max_bytes)))
}

/// The length of `value` serialized compactly.
fn json_len(value: &Value) -> usize {
    // Serializing a `Value` cannot fail: it has string keys only.
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
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
    /// Adds what another shipment delivered.
    pub fn merge(&mut self, other: ShipOutcome) {
        self.records += other.records;
        self.batches += other.batches;
        self.inserted += other.inserted;
        self.duplicates += other.duplicates;
        self.retries += other.retries;
    }

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

/// Where `lvt probe` and `lvt run` ship: a collector over HTTP, or a Kafka results topic.
#[derive(Debug)]
pub enum Transport {
    /// `--collector URL`. Both shippers are boxed: they are hundreds of bytes each.
    Http(Box<Shipper>),
    /// `--kafka BROKERS [--kafka-topic TOPIC]`.
    Kafka(Box<KafkaShipper>),
}

impl Transport {
    /// Ships `records` over this transport.
    pub async fn ship(&self, records: &[SessionReport]) -> Result<ShipOutcome, ShipError> {
        match self {
            Self::Http(shipper) => shipper.ship(records).await,
            Self::Kafka(shipper) => shipper.ship(records).await,
        }
    }

    /// Sends the spool files of `dir` over this transport, removing each once delivered.
    pub async fn ship_spool(&self, dir: &Path) -> Result<SpoolDelivery, SpoolError> {
        match self {
            Self::Http(shipper) => shipper.ship_spool(dir).await,
            Self::Kafka(shipper) => shipper.ship_spool(dir).await,
        }
    }

    /// Where records go, for messages: the collector URL or `kafka://BROKERS/TOPIC`.
    pub fn destination(&self) -> String {
        match self {
            Self::Http(shipper) => shipper.url().to_owned(),
            Self::Kafka(shipper) => format!("kafka://{}/{}", shipper.brokers(), shipper.topic()),
        }
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
}
