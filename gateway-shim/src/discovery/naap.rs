//! The NaaP source: a Livepeer Network-as-a-Product discovery API,
//! `GET {base}/v1/discover/orchestrators?caps=live-video-to-video/{model}`.
//!
//! The answer matched here is the one of livepeer/naap-analytics (`DiscoverOrchestrators`): a
//! JSON array with one row per (orchestrator, pipeline), each
//! `{address, score, capabilities: ["pipeline/model", ...], last_seen_ms, last_seen,
//! recent_work}`, where `address` is the orchestrator's service URI and `score` its SLA score
//! over the last two hours, 0-1 (0 with `recent_work: false` when it has no recent work). Some
//! deployments wrap the array as `{"data": [...]}`; both are accepted. For other
//! implementations, `url` or `uri` is accepted in place of `address`, a missing score is no
//! score, and unknown fields are ignored. Rows whose `capabilities` list does not contain the
//! asked-for model are dropped, in case the server ignored the filter.

use std::time::Duration;

use serde::Deserialize;

use super::{Candidate, DiscoverySource, SourceError, fetch_body, parse_address};

/// The pipeline name NaaP uses for live video-to-video capabilities.
const LIVE_PIPELINE: &str = "live-video-to-video";

/// A NaaP discovery API.
#[derive(Clone, Debug, PartialEq)]
pub struct NaapSource {
    /// For example `https://naap-api.example.com` (a trailing slash is fine).
    pub base_url: String,
    /// The live video-to-video model id to ask for.
    pub model: String,
    /// Bound on the whole request, body included.
    pub timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NaapAnswer {
    Rows(Vec<NaapRow>),
    Wrapped { data: Vec<NaapRow> },
}

#[derive(Debug, Deserialize)]
struct NaapRow {
    #[serde(default, alias = "url", alias = "uri")]
    address: Option<String>,
    #[serde(default)]
    score: Option<f64>,
    #[serde(default)]
    capabilities: Option<Vec<String>>,
}

impl NaapSource {
    /// The request URL: the discovery path under the base, with the capability filter.
    pub fn request_url(&self) -> Result<reqwest::Url, SourceError> {
        let base = self.base_url.trim_end_matches('/');
        let mut url =
            reqwest::Url::parse(&format!("{base}/v1/discover/orchestrators")).map_err(|e| {
                SourceError::Request {
                    origin: format!("NaaP discovery {}", self.base_url),
                    detail: format!("invalid base URL: {e}"),
                }
            })?;
        url.query_pairs_mut()
            .append_pair("caps", &format!("{LIVE_PIPELINE}/{}", self.model));
        Ok(url)
    }
}

/// Parses a NaaP answer, keeping rows that offer live video-to-video with `model`.
pub(super) fn parse_naap_body(
    origin: &str,
    model: &str,
    body: &[u8],
) -> Result<Vec<Candidate>, SourceError> {
    let answer: NaapAnswer = serde_json::from_slice(body).map_err(|e| SourceError::Body {
        origin: origin.to_string(),
        detail: format!(
            "the answer is not a JSON array of {{address, score, capabilities}} \
             (nor one under \"data\"): {e}"
        ),
    })?;
    let rows = match answer {
        NaapAnswer::Rows(rows) | NaapAnswer::Wrapped { data: rows } => rows,
    };
    let wanted = format!("{LIVE_PIPELINE}/{model}");
    let mut candidates = Vec::with_capacity(rows.len());
    for (index, row) in rows.into_iter().enumerate() {
        if let Some(caps) = &row.capabilities
            && !caps.is_empty()
            && !caps.iter().any(|c| c == &wanted)
        {
            continue;
        }
        let Some(address) = row.address else {
            return Err(SourceError::Body {
                origin: origin.to_string(),
                detail: format!("row {index} has no address (nor url or uri)"),
            });
        };
        candidates.push(Candidate {
            uri: parse_address(origin, &address)?,
            score: row.score,
            source: "naap",
        });
    }
    Ok(super::dedup_best(candidates))
}

impl DiscoverySource for NaapSource {
    fn kind(&self) -> &'static str {
        "naap"
    }

    async fn candidates(&self, http: &reqwest::Client) -> Result<Vec<Candidate>, SourceError> {
        let url = self.request_url()?;
        let origin = format!("NaaP discovery {url}");
        let body = fetch_body(http, &origin, url.as_str(), self.timeout).await?;
        parse_naap_body(&origin, &self.model, &body)
    }
}
