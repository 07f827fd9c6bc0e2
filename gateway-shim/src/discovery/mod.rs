//! Discovery: where a gateway learns which orchestrators exist, and what each one offers.
//!
//! It owns the discovery sources (a static list, a go-livepeer style webhook, a NaaP discovery
//! API, and the on-chain transcoder pool read through an Ethereum JSON-RPC node), all behind
//! one trait, [`DiscoverySource`], each in its own file, all described by one type,
//! [`SourceSpec`] (`kind:value` on a command line, a table in a scenario), with the shared
//! pieces of those descriptions in [`config`]; and the inventory ([`inventory`]), which asks
//! every candidate `GetOrchestrator` in parallel and keeps what a selection needs (latency, live
//! models, capacity, prices, hardware) or why the candidate was dropped.

#[cfg(feature = "chain")]
pub mod chain;
#[cfg(not(feature = "chain"))]
#[path = "chain_disabled.rs"]
pub mod chain;
pub mod config;
pub mod inventory;
mod naap;
pub mod spec;
mod static_list;
mod webhook;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use lvt_wire::live::{OrchestratorUri, UriError};

pub use chain::{ChainDiscovery, ChainError, ChainSource};
pub use config::{ChainConfig, ChainConfigError, StaticEntry};
pub use inventory::{
    DropReason, Inventory, InventoryEntry, InventoryOptions, Status, classify, inventory,
    order_entries, selection_order,
};
pub use naap::NaapSource;
pub use spec::{CheckError, SourceSpec, SpecError, SpecOptions};
pub use static_list::StaticSource;
pub use webhook::WebhookSource;

/// An answer of a discovery source larger than this is not a list of orchestrators.
pub const MAX_SOURCE_BODY_BYTES: usize = 4 << 20;

/// One orchestrator a source named: where to reach it, the source's score for it (when the
/// source gives one), and which kind of source named it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub uri: OrchestratorUri,
    /// The source's own score (webhook and NaaP scores are 0-1, higher is better).
    pub score: Option<f64>,
    /// `static`, `webhook`, `naap` or `chain`.
    pub source: &'static str,
}

/// Why a source could not produce its candidates. Every variant names the source (its URL, or
/// `static list`) and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An address the source gave is not an orchestrator URI.
    #[error("{origin}: {address:?} is not an orchestrator address: {source}")]
    BadAddress {
        origin: String,
        address: String,
        #[source]
        source: UriError,
    },
    /// The source could not be reached, or did not answer in time.
    #[error("{origin}: {detail}")]
    Request { origin: String, detail: String },
    /// The source answered with a status other than 200.
    #[error("{origin} answered HTTP {status}, expected 200 with a JSON array")]
    Status { origin: String, status: u16 },
    /// The body is not what this kind of source returns.
    #[error("{origin}: {detail}")]
    Body { origin: String, detail: String },
    /// The body is larger than [`MAX_SOURCE_BODY_BYTES`].
    #[error("{origin}: the body is larger than {limit_bytes} bytes")]
    TooLarge { origin: String, limit_bytes: usize },
}

/// A place that lists orchestrators. Sources only name candidates; whether a candidate can
/// serve is for [`inventory()`] to find out.
pub trait DiscoverySource {
    /// Which kind of source this is, recorded in every [`Candidate`] it returns.
    fn kind(&self) -> &'static str;

    /// The candidates, in the source's order, each orchestrator once.
    fn candidates<'a>(
        &'a self,
        http: &'a reqwest::Client,
    ) -> impl Future<Output = Result<Vec<Candidate>, SourceError>> + Send + 'a;
}

/// Any of the built-in sources, so that callers can hold a list of mixed sources.
#[derive(Clone, Debug)]
pub enum Source {
    Static(StaticSource),
    Webhook(WebhookSource),
    Naap(NaapSource),
    Chain(ChainSource),
}

impl DiscoverySource for Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Static(s) => s.kind(),
            Source::Webhook(s) => s.kind(),
            Source::Naap(s) => s.kind(),
            Source::Chain(s) => s.kind(),
        }
    }

    async fn candidates(&self, http: &reqwest::Client) -> Result<Vec<Candidate>, SourceError> {
        match self {
            Source::Static(s) => s.candidates(http).await,
            Source::Webhook(s) => s.candidates(http).await,
            Source::Naap(s) => s.candidates(http).await,
            Source::Chain(s) => s.candidates(http).await,
        }
    }
}

/// Candidates of several sources, each orchestrator once: the first source to name it wins,
/// because testing (or selecting) one orchestrator twice would count it twice.
pub fn merge(lists: impl IntoIterator<Item = Vec<Candidate>>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for candidate in lists.into_iter().flatten() {
        if !out.iter().any(|c| c.uri == candidate.uri) {
            out.push(candidate);
        }
    }
    out
}

/// One source's candidates with each orchestrator once, at its first position, with the best
/// score any of its entries had: a source that lists an orchestrator twice (NaaP lists one row
/// per pipeline) means one orchestrator.
fn dedup_best(candidates: Vec<Candidate>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        match out.iter_mut().find(|c| c.uri == candidate.uri) {
            Some(seen) => {
                seen.score = match (seen.score, candidate.score) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            None => out.push(candidate),
        }
    }
    out
}

/// Parses `address` as an orchestrator URI, naming `origin` in the error.
fn parse_address(origin: &str, address: &str) -> Result<OrchestratorUri, SourceError> {
    address.parse().map_err(|source| SourceError::BadAddress {
        origin: origin.to_string(),
        address: address.to_string(),
        source,
    })
}

/// GETs `url` and returns its body: 200 only, at most [`MAX_SOURCE_BODY_BYTES`], within
/// `timeout`. `origin` names the source in errors.
async fn fetch_body(
    http: &reqwest::Client,
    origin: &str,
    url: &str,
    timeout: Duration,
) -> Result<Vec<u8>, SourceError> {
    let request_error = |e: reqwest::Error| SourceError::Request {
        origin: origin.to_string(),
        detail: if e.is_timeout() {
            format!("no answer within {} ms", timeout.as_millis())
        } else {
            format!("request failed: {}", error_chain(&e))
        },
    };
    // The timeout covers the body too: a source that sends headers and then stalls is as
    // unusable as one that never answers.
    let fetch = async {
        let mut resp = http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(request_error)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(SourceError::Status {
                origin: origin.to_string(),
                status: resp.status().as_u16(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(request_error)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_SOURCE_BODY_BYTES {
                return Err(SourceError::TooLarge {
                    origin: origin.to_string(),
                    limit_bytes: MAX_SOURCE_BODY_BYTES,
                });
            }
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| SourceError::Request {
            origin: origin.to_string(),
            detail: format!("no answer within {} ms", timeout.as_millis()),
        })?
}

/// The error and its causes on one line: reqwest's own message alone ("error sending request")
/// hides whether the connection was refused or the name did not resolve.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
