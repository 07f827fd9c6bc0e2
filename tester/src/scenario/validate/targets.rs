//! Checks of a scenario's `[targets]`: explicit URIs, discovery sources, network selection
//! and its filters.

use lvt_wire::live::OrchestratorUri;

use super::checks::Checker;
use super::locate::Seg::{self, Index as I, Key as K};
use crate::scenario::{NetworkDiscovery, Targets};

impl Checker<'_, '_> {
    pub(super) fn check_targets(&mut self, targets: &Targets) {
        let max_targets = match targets {
            Targets::Explicit { uris } => {
                if uris.is_empty() {
                    self.error(
                        &[K("targets"), K("uris")],
                        "no target uris".to_string(),
                        "at least one orchestrator URI",
                        "or leave the list to `lvt run --target URI`: write a placeholder such as \"127.0.0.1:8935\"",
                    );
                }
                for (i, uri) in uris.iter().enumerate() {
                    self.check_uri(&[K("targets"), K("uris"), I(i)], uri);
                }
                None
            }
            Targets::Static {
                orchestrators,
                max_targets,
                min_score,
            } => {
                if orchestrators.is_empty() {
                    self.error(
                        &[K("targets"), K("orchestrators")],
                        "no orchestrators in the static list".to_string(),
                        "at least one `{ address = \"host:port\", score = 1.0 }`",
                        "or use `source = \"explicit\"` with a list of uris",
                    );
                }
                for (i, o) in orchestrators.iter().enumerate() {
                    let path = [K("targets"), K("orchestrators"), I(i), K("address")];
                    self.check_uri(&path, &o.address);
                    if !o.score.is_finite() {
                        self.error(
                            &[K("targets"), K("orchestrators"), I(i), K("score")],
                            "score is not a finite number".to_string(),
                            "a finite number",
                            "scores order the candidates; write a plain number such as 0.5",
                        );
                    }
                }
                self.check_min_score(*min_score);
                *max_targets
            }
            Targets::Webhook {
                url,
                max_targets,
                min_score,
                timeout_ms,
            } => {
                self.check_http_url(&[K("targets"), K("url")], "webhook url", url);
                self.check_min_score(*min_score);
                self.range(
                    &[K("targets"), K("timeout_ms")],
                    "targets.timeout_ms",
                    (*timeout_ms).into(),
                    1,
                    600_000,
                    "the timeout is in milliseconds",
                );
                *max_targets
            }
            Targets::Network {
                discovery,
                strategy: _,
                discovery_timeout_ms,
            } => {
                self.check_network_discovery(discovery);
                self.range(
                    &[K("targets"), K("discovery_timeout_ms")],
                    "targets.discovery_timeout_ms",
                    (*discovery_timeout_ms).into(),
                    1,
                    60_000,
                    "the timeout is in milliseconds; go-livepeer gives discovery 3000",
                );
                None
            }
        };
        if max_targets == Some(0) {
            self.error(
                &[K("targets"), K("max_targets")],
                "targets.max_targets = 0 tests nothing".to_string(),
                "at least 1",
                "remove max_targets to test every discovered orchestrator",
            );
        }
    }

    pub(super) fn check_network_discovery(&mut self, discovery: &NetworkDiscovery) {
        match discovery {
            NetworkDiscovery::Static { orchestrators } => {
                if orchestrators.is_empty() {
                    self.error(
                        &[K("targets"), K("discovery"), K("orchestrators")],
                        "no orchestrators in the static discovery list".to_string(),
                        "at least one `{ address = \"host:port\", score = 1.0 }`",
                        "a network target selects among these candidates",
                    );
                }
                for (i, o) in orchestrators.iter().enumerate() {
                    let path = [
                        K("targets"),
                        K("discovery"),
                        K("orchestrators"),
                        I(i),
                        K("address"),
                    ];
                    self.check_uri(&path, &o.address);
                    if !o.score.is_finite() {
                        self.error(
                            &[
                                K("targets"),
                                K("discovery"),
                                K("orchestrators"),
                                I(i),
                                K("score"),
                            ],
                            "score is not a finite number".to_string(),
                            "a finite number",
                            "scores weigh score-weighted selection; write a plain number such as 0.5",
                        );
                    }
                }
            }
            NetworkDiscovery::Webhook { url, timeout_ms } => {
                self.check_http_url(
                    &[K("targets"), K("discovery"), K("url")],
                    "webhook url",
                    url,
                );
                self.discovery_timeout(*timeout_ms);
            }
            NetworkDiscovery::Naap {
                base_url,
                timeout_ms,
            } => {
                self.check_http_url(
                    &[K("targets"), K("discovery"), K("base_url")],
                    "NaaP base_url",
                    base_url,
                );
                self.discovery_timeout(*timeout_ms);
            }
            NetworkDiscovery::Chain {
                rpc_url,
                controller,
                service_registry,
                timeout_ms,
            } => {
                self.check_http_url(
                    &[K("targets"), K("discovery"), K("rpc_url")],
                    "chain rpc_url",
                    rpc_url,
                );
                let addresses = [
                    ("controller", controller.as_deref()),
                    (
                        "service_registry",
                        service_registry.as_deref().filter(|v| *v != "ai"),
                    ),
                ];
                for (field, value) in addresses {
                    if let Some(value) = value
                        && let Err(e) =
                            lvt_gateway::discovery::config::parse_eth_address(field, value)
                    {
                        self.error(
                            &[K("targets"), K("discovery"), K(field)],
                            e.to_string(),
                            "a 0x-prefixed 20-byte hex address",
                            "write the contract address as 0x followed by 40 hex digits",
                        );
                    }
                }
                self.discovery_timeout(*timeout_ms);
            }
        }
    }

    pub(super) fn discovery_timeout(&mut self, timeout_ms: u32) {
        self.range(
            &[K("targets"), K("discovery"), K("timeout_ms")],
            "targets.discovery.timeout_ms",
            timeout_ms.into(),
            1,
            600_000,
            "the timeout is in milliseconds",
        );
    }

    pub(super) fn check_uri(&mut self, path: &[Seg<'_>], uri: &str) {
        if let Err(error) = uri.parse::<OrchestratorUri>() {
            self.error(
                path,
                format!("invalid orchestrator address: {error}"),
                "`host:port`, `https://host:port` or `http://host:port`",
                "an address without a scheme means https, as in go-livepeer",
            );
        }
    }

    /// Sessions are labelled with the target's normalized URI (`https://host:port`), and
    /// `where` compares labels exactly, so the filter must be written in that form.
    pub(super) fn check_where_target(&mut self, path: &[Seg<'_>], value: &str) {
        match value.parse::<OrchestratorUri>() {
            Err(_) => self.check_uri(path, value),
            Ok(uri) if uri.to_string() != value => self.error(
                path,
                format!("target `{value}` would never match: sessions are labelled `{uri}`"),
                &format!("the normalized URI `{uri}`"),
                "results label each session with the target's full URI, scheme and port included",
            ),
            Ok(_) => {}
        }
    }

    pub(super) fn check_http_url(&mut self, path: &[Seg<'_>], name: &str, url: &str) {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|host| host.trim().is_empty()) {
            self.error(
                path,
                format!("{name} `{url}` is not an http(s) URL"),
                "a URL starting with http:// or https:// and naming a host",
                "write the full URL, for example \"http://127.0.0.1:9000/orchestrators\"",
            );
        }
    }

    pub(super) fn check_min_score(&mut self, min_score: Option<f64>) {
        if min_score.is_some_and(|m| !m.is_finite()) {
            self.error(
                &[K("targets"), K("min_score")],
                "targets.min_score is not a finite number".to_string(),
                "a finite number",
                "write a plain number such as 0.5",
            );
        }
    }
}
