//! The webhook source: `GET url` answering a JSON array of `{address, score}`, the format of
//! go-livepeer's `-orchWebhookUrl` (doc/orchwebhook.md there). Unknown fields are tolerated
//! because webhook implementations add their own (regions, names); a missing or null score is
//! no score.

use std::time::Duration;

use serde::Deserialize;

use super::{Candidate, DiscoverySource, SourceError, fetch_body, parse_address};

/// A discovery webhook.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSource {
    pub url: String,
    /// Bound on the whole request, body included.
    pub timeout: Duration,
}

/// One entry of a webhook answer.
#[derive(Debug, Deserialize)]
struct WebhookEntry {
    address: String,
    #[serde(default)]
    score: Option<f64>,
}

impl WebhookSource {
    /// How errors name this source.
    pub fn origin(&self) -> String {
        format!("discovery webhook {}", self.url)
    }
}

/// Parses a webhook answer. `origin` names the webhook in errors.
pub(super) fn parse_webhook_body(origin: &str, body: &[u8]) -> Result<Vec<Candidate>, SourceError> {
    let entries: Vec<WebhookEntry> =
        serde_json::from_slice(body).map_err(|e| SourceError::Body {
            origin: origin.to_string(),
            detail: format!("the answer is not a JSON array of {{address, score}}: {e}"),
        })?;
    let candidates = entries
        .into_iter()
        .map(|e| {
            Ok(Candidate {
                uri: parse_address(origin, &e.address)?,
                score: e.score,
                source: "webhook",
            })
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    Ok(super::dedup_best(candidates))
}

impl DiscoverySource for WebhookSource {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn candidates(&self, http: &reqwest::Client) -> Result<Vec<Candidate>, SourceError> {
        let origin = self.origin();
        let body = fetch_body(http, &origin, &self.url, self.timeout).await?;
        parse_webhook_body(&origin, &body)
    }
}
