//! Turning a scenario's `targets` section into the orchestrators a run tests: explicit URIs as
//! given, or a discovery answer (a static list or a webhook's) ranked by score, filtered by
//! `min_score` and capped by `max_targets`. The static list and the webhook are read by
//! `lvt_gateway::discovery`, the same sources `lvt discover` uses; this module only ranks.
//! A `network` target is not resolved to orchestrators here: each of its sessions discovers
//! and selects for itself ([`crate::probe::network`]); [`resolve_run`] turns it into the
//! sources and strategy those sessions use.

use std::cmp::Ordering;
use std::time::Duration;

use lvt_gateway::discovery::{
    Candidate, CheckError, DiscoverySource as _, Source, SourceError, SourceSpec, SpecError,
    SpecOptions, StaticSource, WebhookSource,
};
use lvt_wire::live::{OrchestratorUri, UriError};
use thiserror::Error;

use crate::probe::network::StrategyConfig;
use crate::scenario::{Strategy, Targets};

/// Why the targets could not be resolved. Every variant names where the bad data came from.
#[derive(Debug, Error)]
pub enum TargetError {
    /// An address (explicit, static or from the webhook) is not an orchestrator address.
    #[error("{origin}: target {address:?} is not an orchestrator address: {source}")]
    BadAddress {
        origin: String,
        address: String,
        #[source]
        source: UriError,
    },
    /// The webhook could not be reached or did not answer in time.
    #[error("discovery webhook {url}: {detail}")]
    WebhookRequest { url: String, detail: String },
    /// The webhook answered with an error status.
    #[error("discovery webhook {url} answered HTTP {status}, expected 200 with a JSON array")]
    WebhookStatus { url: String, status: u16 },
    /// The webhook's body is not a JSON array of `{address, score}` (or is too large).
    #[error("discovery webhook {url}: {detail}")]
    WebhookBody { url: String, detail: String },
    /// A `network` target has no fixed list of orchestrators; use [`resolve_run`].
    #[error("a network target selects orchestrators per session; it has no fixed list")]
    Network,
    /// A `gateway` target streams into a gateway, not to orchestrators; use [`resolve_run`].
    #[error("a gateway target streams into a gateway; it has no list of orchestrators")]
    Gateway,
    /// A gateway target that cannot be used: its URL, or a header whose environment variable
    /// is unset or not a header value.
    #[error("targets (gateway {url}): {detail}")]
    GatewaySetting { url: String, detail: String },
    /// Nothing left to test.
    #[error("{origin}: no targets to test{why}")]
    Empty { origin: String, why: String },
    /// A discovery source whose settings do not make a source (validation catches these in
    /// files; this covers targets built in code), or on-chain discovery in a build without it.
    #[error("targets (network, {kind} discovery): {detail}")]
    Discovery { kind: &'static str, detail: String },
}

/// Resolves `targets` to the orchestrators to test, in test order.
pub async fn resolve(
    targets: &Targets,
    http: &reqwest::Client,
) -> Result<Vec<OrchestratorUri>, TargetError> {
    match targets {
        Targets::Explicit { uris } => {
            let origin = "targets (explicit)";
            let out = uris
                .iter()
                .map(|u| parse_address(origin, u))
                .collect::<Result<Vec<_>, _>>()?;
            if out.is_empty() {
                return Err(TargetError::Empty {
                    origin: origin.into(),
                    why: ": the list is empty".into(),
                });
            }
            Ok(dedup(out))
        }
        Targets::Static {
            orchestrators,
            max_targets,
            min_score,
        } => {
            let origin = "targets (static list)";
            let source = StaticSource {
                orchestrators: orchestrators.clone(),
            };
            let found = source.resolve().map_err(|e| source_error(origin, "", e))?;
            rank(origin, found, *max_targets, *min_score)
        }
        Targets::Webhook {
            url,
            max_targets,
            min_score,
            timeout_ms,
        } => {
            let origin = format!("discovery webhook {url}");
            let source = WebhookSource {
                url: url.clone(),
                timeout: Duration::from_millis(u64::from(*timeout_ms)),
            };
            let found = source
                .candidates(http)
                .await
                .map_err(|e| source_error(&origin, url, e))?;
            rank(&origin, found, *max_targets, *min_score)
        }
        Targets::Network { .. } => Err(TargetError::Network),
        Targets::Gateway { .. } => Err(TargetError::Gateway),
    }
}

/// What a run runs against: fixed orchestrators, or the network through selection.
#[derive(Debug, Clone)]
pub enum RunTargets {
    Direct(Vec<OrchestratorUri>),
    Network(NetworkTarget),
    Gateway(GatewayTarget),
}

impl RunTargets {
    /// The labels of the run's targets, in order: the URIs, or `network`.
    pub fn labels(&self) -> Vec<String> {
        match self {
            Self::Direct(uris) => uris.iter().map(ToString::to_string).collect(),
            Self::Network(_) => vec![NETWORK_LABEL.to_string()],
            Self::Gateway(g) => g.labels.clone(),
        }
    }
}

pub use crate::scenario::NETWORK_LABEL;

/// The sources and strategy of a `network` target; each session discovers with them.
#[derive(Debug, Clone)]
pub struct NetworkTarget {
    pub sources: Vec<Source>,
    pub strategy: StrategyConfig,
    pub discovery_timeout: Duration,
}

/// A `gateway` target: where its sessions stream, and one pin (or none) per run target.
#[derive(Debug, Clone)]
pub struct GatewayTarget {
    pub url: reqwest::Url,
    /// One entry per run target, in label order: the `orchestrator` pin, or `None` when the
    /// gateway selects.
    pub pins: Vec<Option<String>>,
    pub labels: Vec<String>,
    pub headers: http::HeaderMap,
    /// The stream name of every session, when the gateway authenticates by it.
    pub stream_key: Option<String>,
    pub decode_keyframes_only: bool,
}

impl GatewayTarget {
    /// The gateway options of a session on run target `index`: a fresh stream name and id.
    pub fn session(&self, index: usize) -> crate::probe::gateway::GatewayOptions {
        let mut g = crate::probe::gateway::GatewayOptions::new(self.url.clone());
        g.orchestrator = self.pins[index].clone();
        g.headers = self.headers.clone();
        g.decode_keyframes_only = self.decode_keyframes_only;
        if let Some(key) = &self.stream_key {
            g.stream = key.clone();
        }
        g
    }
}

/// Resolves a gateway target: its URL parsed, its headers read from the environment through
/// `env` (so that tests need not set process-wide variables).
pub fn resolve_gateway(
    targets: &Targets,
    env: impl Fn(&str) -> Option<String>,
) -> Result<GatewayTarget, TargetError> {
    let (
        Targets::Gateway {
            url,
            pins,
            headers_from_env,
            stream_key_from_env,
            decode_keyframes_only,
        },
        Some(labels),
    ) = (targets, targets.gateway_labels())
    else {
        return Err(TargetError::GatewaySetting {
            url: String::new(),
            detail: "not a gateway target".into(),
        });
    };
    let setting = |detail: String| TargetError::GatewaySetting {
        url: url.clone(),
        detail,
    };
    let parsed = crate::probe::gateway::parse_gateway_url(url).map_err(setting)?;
    let mut headers = http::HeaderMap::new();
    for (name, var) in headers_from_env {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| setting(format!("{name:?} is not an HTTP header name")))?;
        let value = env(var).ok_or_else(|| {
            setting(format!(
                "header {name}: environment variable {var} is not set"
            ))
        })?;
        let value = http::HeaderValue::from_str(&value).map_err(|_| {
            setting(format!(
                "header {name}: the value of {var} is not a header value"
            ))
        })?;
        headers.insert(name, value);
    }
    let stream_key = match stream_key_from_env {
        None => None,
        Some(var) => {
            let key = env(var).ok_or_else(|| {
                setting(format!("stream key: environment variable {var} is not set"))
            })?;
            crate::probe::gateway::check_stream_name(&key)
                .map_err(|why| setting(format!("stream key from {var}: {why}")))?;
            Some(key)
        }
    };
    Ok(GatewayTarget {
        url: parsed,
        stream_key,
        pins: if pins.is_empty() {
            vec![None]
        } else {
            pins.iter().cloned().map(Some).collect()
        },
        labels,
        headers,
        decode_keyframes_only: *decode_keyframes_only,
    })
}

/// Resolves `targets` for `lvt run`: a `network` target becomes its discovery source and
/// strategy (checked, not contacted: each session asks the source itself), a `gateway` target
/// its URL, pins and headers; every other kind is [`resolve`]d to its orchestrators.
pub async fn resolve_run(
    targets: &Targets,
    http: &reqwest::Client,
    model_id: &str,
) -> Result<RunTargets, TargetError> {
    let Targets::Network {
        discovery,
        strategy,
        discovery_timeout_ms,
    } = targets
    else {
        if let Targets::Gateway { .. } = targets {
            return resolve_gateway(targets, |var| std::env::var(var).ok())
                .map(RunTargets::Gateway);
        }
        return resolve(targets, http).await.map(RunTargets::Direct);
    };
    let options = SpecOptions {
        model: model_id.to_string(),
        timeout: None,
        controller: None,
        service_registry: None,
    };
    let source = discovery
        .clone()
        .into_source(&options)
        .map_err(|e| spec_error(discovery, e))?;
    Ok(RunTargets::Network(NetworkTarget {
        sources: vec![source],
        strategy: match strategy {
            Strategy::GoLivepeer => StrategyConfig::GoLivepeer,
            Strategy::ScoreWeighted { seed, sla_url } => StrategyConfig::ScoreWeighted {
                seed: *seed,
                sla_url: sla_url.clone(),
            },
        },
        discovery_timeout: Duration::from_millis(u64::from(*discovery_timeout_ms)),
    }))
}

/// Maps the error of a network target's discovery source to this module's, keeping the
/// messages a bad static list has always had.
fn spec_error(discovery: &SourceSpec, e: SpecError) -> TargetError {
    let origin = || format!("targets (network, {} discovery)", discovery.kind());
    match e {
        SpecError::Address { source, .. } => match *source {
            SourceError::BadAddress {
                address, source, ..
            } => TargetError::BadAddress {
                origin: origin(),
                address,
                source,
            },
            other => source_error(&origin(), "", other),
        },
        SpecError::Check {
            error: CheckError::NoOrchestrators,
            ..
        } => TargetError::Empty {
            origin: origin(),
            why: ": it lists no orchestrators".into(),
        },
        other => TargetError::Discovery {
            kind: discovery.kind(),
            detail: other.detail(),
        },
    }
}

/// Maps a discovery source's error to this module's, which callers and messages know.
fn source_error(origin: &str, url: &str, e: SourceError) -> TargetError {
    let url = url.to_string();
    match e {
        SourceError::BadAddress {
            address, source, ..
        } => TargetError::BadAddress {
            origin: origin.to_string(),
            address,
            source,
        },
        SourceError::Request { detail, .. } => TargetError::WebhookRequest { url, detail },
        SourceError::Status { status, .. } => TargetError::WebhookStatus { url, status },
        SourceError::Body { detail, .. } => TargetError::WebhookBody { url, detail },
        SourceError::TooLarge { limit_bytes, .. } => TargetError::WebhookBody {
            url,
            detail: format!("the body is larger than {limit_bytes} bytes"),
        },
    }
}

fn parse_address(origin: &str, address: &str) -> Result<OrchestratorUri, TargetError> {
    address.parse().map_err(|source| TargetError::BadAddress {
        origin: origin.to_string(),
        address: address.to_string(),
        source,
    })
}

/// Keeps the first occurrence of each orchestrator: testing one twice would count it twice.
fn dedup(uris: Vec<OrchestratorUri>) -> Vec<OrchestratorUri> {
    let mut out: Vec<OrchestratorUri> = Vec::with_capacity(uris.len());
    for u in uris {
        if !out.contains(&u) {
            out.push(u);
        }
    }
    out
}

/// Sorts a discovery answer by score (highest first, a missing score counting as 0, ties by
/// address), drops those below `min_score` and keeps at most `max_targets`.
fn rank(
    origin: &str,
    mut found: Vec<Candidate>,
    max_targets: Option<u32>,
    min_score: Option<f64>,
) -> Result<Vec<OrchestratorUri>, TargetError> {
    let total = found.len();
    let score = |c: &Candidate| c.score.unwrap_or(0.0);
    if let Some(min) = min_score {
        found.retain(|c| score(c) >= min);
    }
    found.sort_by(|a, b| {
        score(b)
            .partial_cmp(&score(a))
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.uri.to_string().cmp(&b.uri.to_string()))
    });
    let mut uris = dedup(found.into_iter().map(|c| c.uri).collect());
    if let Some(max) = max_targets {
        uris.truncate(max as usize);
    }
    if uris.is_empty() {
        let why = match (total, min_score) {
            (0, _) => ": it lists no orchestrators".to_string(),
            (n, Some(min)) => format!(": none of its {n} orchestrator(s) scores at least {min}"),
            (_, None) => String::new(),
        };
        return Err(TargetError::Empty {
            origin: origin.to_string(),
            why,
        });
    }
    Ok(uris)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use lvt_gateway::discovery::StaticEntry;

    fn http() -> reqwest::Client {
        reqwest::Client::builder().build().expect("a plain client")
    }

    fn o(address: &str, score: f64) -> StaticEntry {
        StaticEntry {
            address: address.into(),
            score: Some(score),
        }
    }

    fn strings(uris: &[OrchestratorUri]) -> Vec<String> {
        uris.iter().map(ToString::to_string).collect()
    }

    /// Serves `router` on 127.0.0.1:0; returns its base URL.
    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    fn webhook(url: String, max_targets: Option<u32>, min_score: Option<f64>) -> Targets {
        Targets::Webhook {
            url,
            max_targets,
            min_score,
            timeout_ms: 2_000,
        }
    }

    #[tokio::test]
    async fn explicit_targets_are_taken_as_given() {
        let t = Targets::Explicit {
            uris: vec![
                "b.example:8935".into(),
                "http://127.0.0.1:9000".into(),
                "https://b.example:8935".into(),
            ],
        };
        let got = resolve(&t, &http()).await.unwrap();
        // Order kept; the same orchestrator written twice is tested once.
        assert_eq!(
            strings(&got),
            ["https://b.example:8935", "http://127.0.0.1:9000"]
        );
        let bad = Targets::Explicit {
            uris: vec!["ftp://x:1".into()],
        };
        let e = resolve(&bad, &http()).await.unwrap_err().to_string();
        assert!(e.contains("\"ftp://x:1\""), "{e}");
        let empty = Targets::Explicit { uris: vec![] };
        assert!(matches!(
            resolve(&empty, &http()).await,
            Err(TargetError::Empty { .. })
        ));
    }

    #[tokio::test]
    async fn static_lists_rank_filter_and_cap() {
        let list = vec![
            o("c.example:1", 0.5),
            o("a.example:1", 0.9),
            o("b.example:1", 0.9),
            o("d.example:1", 0.1),
        ];
        let t = Targets::Static {
            orchestrators: list.clone(),
            max_targets: None,
            min_score: None,
        };
        assert_eq!(
            strings(&resolve(&t, &http()).await.unwrap()),
            [
                "https://a.example:1",
                "https://b.example:1",
                "https://c.example:1",
                "https://d.example:1"
            ]
        );
        let t = Targets::Static {
            orchestrators: list.clone(),
            max_targets: Some(2),
            min_score: Some(0.2),
        };
        assert_eq!(
            strings(&resolve(&t, &http()).await.unwrap()),
            ["https://a.example:1", "https://b.example:1"]
        );
        let t = Targets::Static {
            orchestrators: list,
            max_targets: None,
            min_score: Some(1.0),
        };
        let e = resolve(&t, &http()).await.unwrap_err().to_string();
        assert_eq!(
            e,
            "targets (static list): no targets to test: none of its 4 orchestrator(s) scores at least 1"
        );
    }

    #[tokio::test]
    async fn network_targets_become_sources_and_a_strategy() {
        let t = Targets::Network {
            discovery: SourceSpec::Static {
                orchestrators: vec![o("a.example:1", 0.9), o("http://127.0.0.1:9", 0.1)],
            },
            strategy: Strategy::ScoreWeighted {
                seed: 9,
                sla_url: Some("http://collector.example".into()),
            },
            discovery_timeout_ms: 1_500,
        };
        assert!(matches!(
            resolve(&t, &http()).await,
            Err(TargetError::Network)
        ));
        let RunTargets::Network(n) = resolve_run(&t, &http(), "noop").await.unwrap() else {
            panic!("a network target");
        };
        assert_eq!(
            n.strategy,
            StrategyConfig::ScoreWeighted {
                seed: 9,
                sla_url: Some("http://collector.example".into())
            }
        );
        assert_eq!(n.discovery_timeout, Duration::from_millis(1_500));
        let [Source::Static(s)] = n.sources.as_slice() else {
            panic!("one static source: {:?}", n.sources);
        };
        assert_eq!(s.orchestrators.len(), 2);
        assert_eq!(
            RunTargets::Network(n.clone()).labels(),
            vec!["network".to_string()]
        );

        let naap = Targets::Network {
            discovery: SourceSpec::Naap {
                base_url: "http://naap.example".into(),
                timeout_ms: 700,
            },
            strategy: Strategy::GoLivepeer,
            discovery_timeout_ms: 3_000,
        };
        let RunTargets::Network(n) = resolve_run(&naap, &http(), "streamdiffusion")
            .await
            .unwrap()
        else {
            panic!("a network target");
        };
        let [Source::Naap(s)] = n.sources.as_slice() else {
            panic!("one NaaP source: {:?}", n.sources);
        };
        assert_eq!(
            s.model, "streamdiffusion",
            "NaaP is asked for the scenario's model"
        );
        assert_eq!(s.timeout, Duration::from_millis(700));

        #[cfg(feature = "chain")]
        {
            let chain = |controller: Option<&str>| Targets::Network {
                discovery: SourceSpec::Chain {
                    rpc_url: Some("http://127.0.0.1:8545".into()),
                    controller: controller.map(str::to_string),
                    service_registry: Some("ai".into()),
                    timeout_ms: 900,
                },
                strategy: Strategy::GoLivepeer,
                discovery_timeout_ms: 3_000,
            };
            let RunTargets::Network(n) = resolve_run(&chain(None), &http(), "noop").await.unwrap()
            else {
                panic!("a network target");
            };
            let [Source::Chain(c)] = n.sources.as_slice() else {
                panic!("one chain source: {:?}", n.sources);
            };
            assert_eq!(c.rpc_url, "http://127.0.0.1:8545");
            assert_eq!(
                c.controller,
                lvt_gateway::discovery::chain::ARBITRUM_ONE_CONTROLLER
            );
            assert_eq!(
                c.service_registry,
                Some(lvt_gateway::discovery::chain::ARBITRUM_ONE_AI_SERVICE_REGISTRY)
            );
            assert_eq!(c.timeout, Duration::from_millis(900));
            assert!(matches!(
                resolve_run(&chain(Some("0x12")), &http(), "noop").await,
                Err(TargetError::Discovery { kind: "chain", .. })
            ));
        }

        let bad = Targets::Network {
            discovery: SourceSpec::Static {
                orchestrators: vec![o("ftp://x:1", 1.0)],
            },
            strategy: Strategy::GoLivepeer,
            discovery_timeout_ms: 3_000,
        };
        assert!(matches!(
            resolve_run(&bad, &http(), "noop").await,
            Err(TargetError::BadAddress { .. })
        ));
        // Direct targets resolve as before.
        let direct = Targets::Explicit {
            uris: vec!["b.example:8935".into()],
        };
        let RunTargets::Direct(uris) = resolve_run(&direct, &http(), "noop").await.unwrap() else {
            panic!("direct targets");
        };
        assert_eq!(strings(&uris), ["https://b.example:8935"]);
    }

    fn gateway(pins: &[&str], headers: &[(&str, &str)]) -> Targets {
        Targets::Gateway {
            url: "http://gw.example:8937/".into(),
            pins: pins.iter().map(ToString::to_string).collect(),
            headers_from_env: headers
                .iter()
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect(),
            stream_key_from_env: None,
            decode_keyframes_only: false,
        }
    }

    #[tokio::test]
    async fn gateway_targets_are_one_per_pin_with_headers_from_the_environment() {
        let env = |var: &str| (var == "KEY").then(|| "Bearer k".to_owned());
        let unpinned = resolve_gateway(&gateway(&[], &[]), env).unwrap();
        assert_eq!(unpinned.labels, ["http://gw.example:8937"]);
        assert_eq!(unpinned.pins, [None]);
        assert_eq!(unpinned.session(0).orchestrator, None);

        let pinned = resolve_gateway(
            &gateway(&["orch-1", "orch-2"], &[("Authorization", "KEY")]),
            env,
        )
        .unwrap();
        assert_eq!(
            pinned.labels,
            [
                "http://gw.example:8937?orchestrator=orch-1",
                "http://gw.example:8937?orchestrator=orch-2"
            ]
        );
        let second = pinned.session(1);
        assert_eq!(second.orchestrator.as_deref(), Some("orch-2"));
        assert_eq!(second.headers["authorization"], "Bearer k");
        assert_eq!(second.url.as_str(), "http://gw.example:8937/");
        // Each session streams under a name of its own.
        assert_ne!(pinned.session(1).stream, second.stream);

        let unset = resolve_gateway(&gateway(&[], &[("Authorization", "NOPE")]), env)
            .unwrap_err()
            .to_string();
        assert!(
            unset.contains("environment variable NOPE is not set"),
            "{unset}"
        );
        let bad_value = resolve_gateway(&gateway(&[], &[("Authorization", "KEY")]), |_| {
            Some("line\nbreak".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(bad_value.contains("not a header value"), "{bad_value}");
        let mut bad_url = gateway(&[], &[]);
        if let Targets::Gateway { url, .. } = &mut bad_url {
            *url = "gw.example:8937".into();
        }
        assert!(matches!(
            resolve_gateway(&bad_url, env),
            Err(TargetError::GatewaySetting { .. })
        ));
        // The run's resolution gives the same; the fixed-list resolution refuses it.
        assert!(matches!(
            resolve_run(&gateway(&[], &[]), &http(), "noop")
                .await
                .unwrap(),
            RunTargets::Gateway(_)
        ));
        assert!(matches!(
            resolve(&gateway(&[], &[]), &http()).await,
            Err(TargetError::Gateway)
        ));
    }

    #[tokio::test]
    async fn webhook_answer_is_ranked_and_tolerates_unknown_fields() {
        let body = r#"[
            {"address": "https://low.example:8935", "score": 0.2, "region": "eu"},
            {"address": "http://127.0.0.1:7000"},
            {"address": "high.example:8935", "score": 0.8, "extra": {"nested": true}},
            {"address": "null.example:8935", "score": null}
        ]"#;
        let base = serve(Router::new().route("/orchs", get(move || async move { body }))).await;
        let got = resolve(&webhook(format!("{base}/orchs"), Some(3), None), &http())
            .await
            .unwrap();
        // Missing and null scores are 0; ties are ordered by address.
        assert_eq!(
            strings(&got),
            [
                "https://high.example:8935",
                "https://low.example:8935",
                "http://127.0.0.1:7000"
            ]
        );
        let got = resolve(&webhook(format!("{base}/orchs"), None, Some(0.5)), &http())
            .await
            .unwrap();
        assert_eq!(strings(&got), ["https://high.example:8935"]);
    }

    /// How each source error reaches the user through `resolve`; the source's own parsing is
    /// tested in `lvt_gateway::discovery`.
    #[tokio::test]
    async fn webhook_errors_name_the_url_and_the_problem() {
        let base = serve(
            Router::new()
                .route(
                    "/fail",
                    get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
                )
                .route("/garbage", get(|| async { "<html>not json</html>" }))
                .route(
                    "/badaddr",
                    get(|| async { r#"[{"address": "ftp://a:1"}]"# }),
                )
                .route("/empty", get(|| async { "[]" }))
                .route("/hang", get(std::future::pending::<&'static str>)),
        )
        .await;
        let err = |path: &str| {
            let url = format!("{base}{path}");
            async move {
                let t = Targets::Webhook {
                    url: url.clone(),
                    max_targets: None,
                    min_score: None,
                    timeout_ms: 300,
                };
                let e = resolve(&t, &http()).await.unwrap_err();
                let text = e.to_string();
                assert!(text.contains(&url), "{text}");
                (e, text)
            }
        };
        let (e, text) = err("/fail").await;
        assert!(
            matches!(e, TargetError::WebhookStatus { status: 500, .. }),
            "{text}"
        );
        let (e, text) = err("/garbage").await;
        assert!(matches!(e, TargetError::WebhookBody { .. }), "{text}");
        assert!(text.contains("not a JSON array"), "{text}");
        let (e, text) = err("/badaddr").await;
        assert!(matches!(e, TargetError::BadAddress { .. }), "{text}");
        let (e, text) = err("/empty").await;
        assert!(matches!(e, TargetError::Empty { .. }), "{text}");
        assert!(text.contains("lists no orchestrators"), "{text}");
        let (e, text) = err("/hang").await;
        assert!(matches!(e, TargetError::WebhookRequest { .. }), "{text}");
        assert!(text.contains("no answer within 300 ms"), "{text}");
    }

    #[tokio::test]
    async fn unreachable_webhook_says_why() {
        // A port that was just free: nothing listens there.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let url = format!("http://{addr}/orchs");
        let e = resolve(&webhook(url.clone(), None, None), &http())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("discovery webhook {url}: request failed")),
            "{e}"
        );
    }
}
