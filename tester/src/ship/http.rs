//! Shipping to a collector over HTTP.
//!
//! A [`Shipper`] sends [`SessionReport`]s to `POST {collector}/v1/results` in batches, each
//! signed with the agent's key. Transient failures (connection errors, 5xx, 409) are retried
//! with exponential backoff and a fresh signature; the collector is idempotent by
//! `session_id`, so a retry after a lost acknowledgement stores nothing twice. A batch that still
//! fails is spooled; [`Shipper::ship_spool`] sends such files later.
//!
//! The decisions are plain functions ([`split_batches`](super::split_batches),
//! [`RetryPolicy::backoff`](super::RetryPolicy::backoff), [`disposition`], [`problem_detail`])
//! so they test without a network; the `Shipper` is the thin driver that reads the wall clock,
//! draws nonces and talks HTTP.

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use lvt_schema::SessionReport;
use lvt_schema::sign::{self, SigningKey};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::spool::drain_spool;
use super::{
    Ack, Delivery, SendError, ShipError, ShipOptions, ShipOutcome, SpoolDelivery, SpoolError,
    encode_batches, send_or_spool,
};

/// The collector's ingest path, appended to the collector URL.
pub const RESULTS_PATH: &str = "/v1/results";

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
        let (values, batches) = encode_batches(
            records,
            self.options.max_batch_records,
            self.options.max_batch_bytes,
        )
        .map_err(|e| ShipError::Encode(e.to_string()))?;

        send_or_spool(&values, batches, &self.options.spool_dir, |batch| {
            Box::pin(async move { self.send_batch(&batch).await })
        })
        .await
    }

    /// Sends every spool file (`batch-*.json`) in `dir`, oldest first, and removes each one only
    /// after the collector acknowledged it. Files that fail stay for a later attempt; after a
    /// failure that is not specific to one batch the remaining files are skipped.
    pub async fn ship_spool(&self, dir: &Path) -> Result<SpoolDelivery, SpoolError> {
        drain_spool(dir, |batch| async move {
            self.send_batch(&batch).await.map(|sent| sent.ack)
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

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
