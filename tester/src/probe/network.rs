//! The network-selection session: one measured session run through lvt's gateway side the
//! way go-livepeer's gateway runs a user's stream.
//!
//! Discovery happens here (through `lvt_gateway::discovery::inventory`, and the collector's SLA
//! scores for score-weighted selection); everything after it is the same
//! `lvt_gateway::session::SessionCore` a direct probe runs, in network mode: the start loop
//! over a [`SelectionStrategy`]'s order, mid-stream swaps on go-livepeer's triggers, one
//! recorder per orchestrator share (`served_by`), and `Observation`s for the analytics events.
//!
//! One session publishes ONE clip stream from start to end: after a swap the next input
//! segment goes to the new orchestrator with its PTS continuing, so end-to-end matching goes
//! on. Every output frame is attributed to the orchestrator whose channel delivered it.
//!
//! Like a probe, a session never fails with an `Err`: discovery finding nobody, every
//! orchestrator busy, or the swap limit are outcomes of the report.

use std::sync::Arc;
use std::time::Duration;

use lvt_gateway::discovery::{
    self, DiscoverySource as _, Inventory, InventoryEntry, InventoryOptions, Source,
};
use lvt_gateway::gateway::observe::{
    DiscoveredCandidate, Observation, ObservationSink, OrchestratorInfo, observe,
};
use lvt_gateway::gateway::select::{
    Candidate, GoLivepeerDefault, Price, ScoreWeightedRandom, SelectionStrategy, StartLimits,
};
use lvt_gateway::gateway::swap::SwapConfig;
use lvt_gateway::session::Mode;
use lvt_schema::{Failure, FailureClass, Outcome, TargetMode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::driver::{Edge, Starter, drive};
use super::{ProbeOptions, ProbeRun, fail, report_template, session_plan, unix_ms};
use crate::encode::Clip;

pub use lvt_gateway::session::NO_ORCHESTRATORS_AVAILABLE;

/// How a gateway orders the candidates it tries.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategyConfig {
    /// go-livepeer's default: warm first, then by discovery latency ([`GoLivepeerDefault`]).
    GoLivepeer,
    /// Weighted random by SLA score, seeded ([`ScoreWeightedRandom`]). Each candidate's score
    /// is the collector's `sla_score` when `sla_url` is given and ranks it, else its discovery
    /// source's score (0-1, scaled to 0-100).
    ScoreWeighted {
        seed: u64,
        /// A collector's base URL, read at `GET /v1/sla/orchestrators`.
        sla_url: Option<String>,
    },
}

impl StrategyConfig {
    fn build(&self) -> Box<dyn SelectionStrategy + Send> {
        match self {
            Self::GoLivepeer => Box::new(GoLivepeerDefault::default()),
            Self::ScoreWeighted { seed, .. } => Box::new(ScoreWeightedRandom::new(*seed)),
        }
    }

    /// The strategy's report name (`go-livepeer`, `score-weighted-random`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::GoLivepeer => "go-livepeer",
            Self::ScoreWeighted { .. } => "score-weighted-random",
        }
    }
}

/// What to run through network selection.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// The session itself: model, params, duration, params updates, timeouts. Its `target` is
    /// not used: each try sets the candidate it starts on.
    pub session: ProbeOptions,
    /// Where candidates come from; several sources are merged, the first naming an
    /// orchestrator keeping it.
    pub sources: Vec<Source>,
    pub strategy: StrategyConfig,
    /// Bound on each candidate's GetOrchestrator during discovery (go-livepeer: 3 s).
    pub discovery_timeout: Duration,
    /// The swap triggers and chain limit; go-livepeer's by default.
    pub swap: SwapConfig,
    /// The start loop's limits; go-livepeer's by default (20 tries, 2 s).
    pub start: StartLimits,
}

impl NetworkOptions {
    pub fn new(session: ProbeOptions, sources: Vec<Source>, strategy: StrategyConfig) -> Self {
        Self {
            session,
            sources,
            strategy,
            discovery_timeout: discovery::inventory::DEFAULT_GET_ORCHESTRATOR_TIMEOUT,
            swap: SwapConfig::default(),
            start: StartLimits::default(),
        }
    }
}

/// Runs one session through network selection and reports it; observations go to `sink`
/// when there is one. Never fails: every problem becomes the report's outcome.
pub async fn run_network(
    opts: &NetworkOptions,
    clip: Arc<Clip>,
    http: &reqwest::Client,
    cancel: CancellationToken,
    sink: Option<ObservationSink>,
) -> ProbeRun {
    let s = &opts.session;
    let mut report = report_template(s, TargetMode::Network);
    let candidates = match discover(opts, http, sink.as_ref()).await {
        Ok(c) => c,
        Err(failure) => {
            warn!(message = "Discovery failed.", detail = %failure.detail);
            report.outcome = Outcome::UnscoredIndeterminate;
            report.failure = Some(failure);
            report.ended_at_unix_ms = unix_ms();
            return ProbeRun {
                report,
                interrupted: false,
            };
        }
    };
    let mode = Mode::Network {
        strategy: opts.strategy.build(),
        swap: opts.swap,
        start: opts.start,
    };
    let edge = Edge {
        opts: s,
        clip: clip.clone(),
        http,
        starter: Starter::Gateway,
        sink,
    };
    let mut run = drive(
        mode,
        session_plan(s, &clip),
        candidates,
        report,
        edge,
        cancel,
    )
    .await;
    super::check_identities(&mut run.report, s).await;
    run
}

/// Reads every source and asks every candidate, reporting `discovery_results` and each usable
/// orchestrator's capabilities. Sources that fail are skipped when another one answered.
async fn discover(
    opts: &NetworkOptions,
    http: &reqwest::Client,
    sink: Option<&ObservationSink>,
) -> Result<Vec<Candidate>, Failure> {
    let mut lists = Vec::with_capacity(opts.sources.len());
    let mut errors = Vec::new();
    for source in &opts.sources {
        match source.candidates(http).await {
            Ok(found) => lists.push(found),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if lists.is_empty() {
        let detail = if errors.is_empty() {
            "no discovery source configured".to_string()
        } else {
            format!("discovery failed: {}", errors.join("; "))
        };
        return Err(fail(FailureClass::Internal, detail));
    }
    let inventory = discovery::inventory(
        discovery::merge(lists),
        &InventoryOptions {
            model_id: opts.session.model_id.clone(),
            timeout: opts.discovery_timeout,
            gateway_address: opts.session.gateway_address,
            ..InventoryOptions::default()
        },
    )
    .await;
    for dropped in inventory.dropped() {
        info!(
            message = "Candidate dropped by discovery.",
            uri = %dropped.candidate.uri,
            status = ?dropped.status
        );
    }
    report_inventory(&inventory, sink);
    let mut candidates: Vec<Candidate> = inventory
        .usable()
        .map(|e| candidate(e, &inventory.model_id))
        .collect();
    if let StrategyConfig::ScoreWeighted {
        sla_url: Some(url), ..
    } = &opts.strategy
    {
        match sla_scores(http, url, &opts.session.model_id).await {
            Ok(scores) => {
                for (c, e) in candidates.iter_mut().zip(inventory.usable()) {
                    // The collector keys a test-load score by address only when the address
                    // was verified, so a score is looked up by address only when this one is:
                    // a claimed address would let an orchestrator borrow another's score.
                    let claimed = e.info.as_ref().and_then(|i| i.eth_address.as_deref());
                    let verified = match (claimed, opts.session.address_verifier.as_deref()) {
                        (Some(claimed), Some(verifier)) => lvt_schema::AddressCheck::is_verified(
                            Some(&verifier.check(claimed, &c.uri).await),
                        ),
                        _ => false,
                    };
                    let address = claimed.filter(|_| verified).map(str::to_ascii_lowercase);
                    let known = address
                        .and_then(|a| scores.get(&a))
                        .or_else(|| scores.get(&c.uri.to_ascii_lowercase()));
                    if let Some(score) = known {
                        c.sla_score = Some(*score);
                    }
                }
            }
            // Selection still works without the collector: the discovery scores stand.
            Err(error) => warn!(message = "SLA scores unavailable.", url, %error),
        }
    }
    Ok(candidates)
}

/// How long the collector's SLA ranking may take.
const SLA_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the collector's SLA ranking could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    #[error("GET {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: the body is not an SLA ranking: {source}")]
    Body {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The collector's SLA scores (0-100) by orchestrator, from `GET {base}/v1/sla/orchestrators`
/// for `model_id` (docs/collector.md). Keys are as the collector keeps them: the lowercase
/// address, or the URI of an orchestrator without one. Unscored orchestrators are left out.
pub async fn sla_scores(
    http: &reqwest::Client,
    base: &str,
    model_id: &str,
) -> Result<std::collections::HashMap<String, f64>, SlaError> {
    #[derive(serde::Deserialize)]
    struct Ranking {
        orchestrators: Vec<Ranked>,
    }
    #[derive(serde::Deserialize)]
    struct Ranked {
        orchestrator: Option<String>,
        score: RankedScore,
    }
    #[derive(serde::Deserialize)]
    struct RankedScore {
        sla_score: Option<f64>,
    }
    let url = format!("{}/v1/sla/orchestrators", base.trim_end_matches('/'));
    let request = |url: String| async move {
        let response = http
            .get(&url)
            .query(&[("model", model_id)])
            .timeout(SLA_TIMEOUT)
            .send()
            .await
            .map_err(|source| SlaError::Request {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(SlaError::Status { url, status });
        }
        let body = response.bytes().await.map_err(|source| SlaError::Request {
            url: url.clone(),
            source,
        })?;
        serde_json::from_slice::<Ranking>(&body).map_err(|source| SlaError::Body { url, source })
    };
    let ranking = request(url).await?;
    Ok(ranking
        .orchestrators
        .into_iter()
        .filter_map(|r| {
            let score = r.score.sla_score.filter(|s| s.is_finite())?;
            Some((r.orchestrator?.to_ascii_lowercase(), score))
        })
        .collect())
}

fn report_inventory(inventory: &Inventory, sink: Option<&ObservationSink>) {
    let at_unix_ms = unix_ms();
    observe(
        sink,
        Observation::DiscoveryResults {
            at_unix_ms,
            candidates: inventory
                .usable()
                .map(|e| DiscoveredCandidate {
                    address: e.info.as_ref().and_then(|i| i.eth_address.clone()),
                    url: e.candidate.uri.to_string(),
                    latency_ms: e.latency_ms.unwrap_or(0),
                })
                .collect(),
        },
    );
    for entry in inventory.usable() {
        let Some(info) = &entry.info else { continue };
        observe(
            sink,
            Observation::Capabilities {
                at_unix_ms,
                orchestrator: OrchestratorInfo {
                    address: info.eth_address.clone(),
                    url: entry.candidate.uri.to_string(),
                },
                summary: serde_json::to_value(info).unwrap_or(Value::Null),
            },
        );
    }
}

/// What selection knows about one usable inventory entry. A discovery score (0-1, as webhooks
/// and NaaP give it) becomes an SLA score on the 0-100 scale.
fn candidate(entry: &InventoryEntry, model_id: &str) -> Candidate {
    let model = entry.model(model_id);
    let price = entry.info.as_ref().and_then(|i| {
        i.live_prices
            .iter()
            .find(|p| p.model_id == model_id)
            .and_then(|p| Price::new(p.price_per_unit, p.pixels_per_unit))
    });
    Candidate {
        uri: entry.candidate.uri.to_string(),
        latency_ms: entry.latency_ms.unwrap_or(u64::MAX),
        warm: model.is_some_and(|m| m.warm),
        idle_capacity: model.map(|m| m.capacity),
        capacity_in_use: model.map(|m| m.capacity_in_use),
        price,
        sla_score: entry.candidate.score.map(|s| (s * 100.0).clamp(0.0, 100.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvt_gateway::discovery::{Candidate as Discovered, Status};
    use lvt_wire::grpc::{LiveModelSummary, LivePrice, OrchestratorSummary};

    fn entry(score: Option<f64>, models: Vec<LiveModelSummary>) -> InventoryEntry {
        InventoryEntry {
            candidate: Discovered {
                uri: "https://o.example:8935".parse().unwrap(),
                score,
                source: "static",
            },
            latency_ms: Some(42),
            cert_fingerprint: None,
            info: Some(OrchestratorSummary {
                transcoder_uri: "https://o.example:8935".into(),
                eth_address: Some("0xAbC".into()),
                advertises_live_video_to_video: true,
                live_models: models,
                gpus: Vec::new(),
                price_per_unit: None,
                pixels_per_unit: None,
                live_prices: vec![LivePrice {
                    model_id: "noop".into(),
                    price_per_unit: 3,
                    pixels_per_unit: 2,
                }],
                auth_token_present: true,
                auth_token_expiration_unix_s: None,
                nodes: Vec::new(),
            }),
            status: Status::Usable,
        }
    }

    fn model(id: &str, warm: bool, capacity: u32, in_use: u32) -> LiveModelSummary {
        LiveModelSummary {
            model_id: id.into(),
            warm,
            capacity,
            capacity_in_use: in_use,
            runner_version: String::new(),
        }
    }

    #[test]
    fn candidates_carry_what_selection_needs_for_the_model() {
        let e = entry(
            Some(0.8),
            vec![model("other", false, 0, 3), model("noop", true, 2, 1)],
        );
        let c = candidate(&e, "noop");
        assert_eq!(c.uri, "https://o.example:8935");
        assert_eq!(c.latency_ms, 42);
        assert!(c.warm);
        assert_eq!((c.idle_capacity, c.capacity_in_use), (Some(2), Some(1)));
        assert_eq!(c.price, Price::new(3, 2));
        // A discovery score of 0-1 becomes an SLA score of 0-100.
        assert_eq!(c.sla_score, Some(80.0));
        let c = candidate(&entry(Some(7.0), Vec::new()), "noop");
        assert_eq!(c.sla_score, Some(100.0), "clamped to the scale");
        assert!(!c.warm && c.idle_capacity.is_none());
        assert_eq!(candidate(&entry(None, Vec::new()), "noop").sla_score, None);
    }

    #[test]
    fn stream_ids_are_the_probes() {
        use lvt_gateway::session::stream_id;
        assert_eq!(
            stream_id("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            "lvt-0c1d2e3f4a5b"
        );
        assert_eq!(stream_id("short"), "lvt-short");
    }
}
