//! Checks of a scenario's `[targets]`: explicit URIs, discovery sources, network selection
//! and its filters.

use lvt_gateway::discovery::spec::{self, CheckError, SourceSpec};
use lvt_wire::live::OrchestratorUri;

use super::checks::Checker;
use super::locate::Seg::{self, Index as I, Key as K};
use crate::scenario::Targets;

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
                self.check_entries(
                    &[K("targets"), K("orchestrators")],
                    spec::check_entries(orchestrators),
                    "scores order the candidates; write a plain number such as 0.5",
                );
                self.check_min_score(*min_score);
                *max_targets
            }
            Targets::Webhook {
                url,
                max_targets,
                min_score,
                timeout_ms,
            } => {
                if let Err(e) = spec::check_url("webhook", "url", url) {
                    self.url_error(&[K("targets"), K("url")], &e);
                }
                self.check_min_score(*min_score);
                self.range(
                    &[K("targets"), K("timeout_ms")],
                    "targets.timeout_ms",
                    (*timeout_ms).into(),
                    (*spec::TIMEOUT_MS_RANGE.start()).into(),
                    (*spec::TIMEOUT_MS_RANGE.end()).into(),
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
            Targets::Gateway {
                url,
                pins,
                headers_from_env,
                stream_key_from_env,
                decode_keyframes_only: _,
            } => {
                self.check_gateway(url, pins, headers_from_env);
                if let Some(var) = stream_key_from_env {
                    self.check_env_name(&[K("targets"), K("stream_key_from_env")], var);
                }
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

    /// Checks a network target's discovery source with [`SourceSpec::check`], pointing each
    /// error at its field.
    pub(super) fn check_network_discovery(&mut self, discovery: &SourceSpec) {
        let Err(errors) = discovery.check() else {
            return;
        };
        let mut entry_errors = Vec::new();
        for e in errors {
            let path = [K("targets"), K("discovery"), K(e.field())];
            match &e {
                CheckError::NoOrchestrators => self.error(
                    &path,
                    e.to_string(),
                    "at least one `{ address = \"host:port\", score = 1.0 }`",
                    "a network target selects among these candidates",
                ),
                CheckError::Address { .. } | CheckError::Score { .. } => entry_errors.push(e),
                CheckError::Url { .. } => self.url_error(&path, &e),
                CheckError::Contract { .. } => self.error(
                    &path,
                    e.to_string(),
                    "a 0x-prefixed 20-byte hex address",
                    "write the contract address as 0x followed by 40 hex digits",
                ),
                CheckError::Timeout { value } => self.range(
                    &path,
                    "targets.discovery.timeout_ms",
                    (*value).into(),
                    (*spec::TIMEOUT_MS_RANGE.start()).into(),
                    (*spec::TIMEOUT_MS_RANGE.end()).into(),
                    "the timeout is in milliseconds",
                ),
            }
        }
        self.check_entries(
            &[K("targets"), K("discovery"), K("orchestrators")],
            entry_errors,
            "scores weigh score-weighted selection; write a plain number such as 0.5",
        );
    }

    /// Points each error of a static list's entries at its entry under `list`; `score_hint`
    /// says what the scores are for there.
    fn check_entries(&mut self, list: &[Seg<'_>], errors: Vec<CheckError>, score_hint: &str) {
        for e in errors {
            let Some(index) = e.entry() else { continue };
            let mut path = list.to_vec();
            path.extend([I(index), K(e.field())]);
            match e {
                CheckError::Address { .. } => self.uri_error(&path, e.to_string()),
                _ => self.error(&path, e.to_string(), "a finite number", score_hint),
            }
        }
    }

    pub(super) fn check_uri(&mut self, path: &[Seg<'_>], uri: &str) {
        if let Err(error) = uri.parse::<OrchestratorUri>() {
            self.uri_error(path, format!("invalid orchestrator address: {error}"));
        }
    }

    fn uri_error(&mut self, path: &[Seg<'_>], message: String) {
        self.error(
            path,
            message,
            "`host:port`, `https://host:port` or `http://host:port`",
            "an address without a scheme means https, as in go-livepeer",
        );
    }

    /// Sessions are labelled with the target's normalized URI (`https://host:port`), and
    /// `where` compares labels exactly, so the filter must be written in that form.
    pub(super) fn check_where_target(&mut self, path: &[Seg<'_>], value: &str, targets: &Targets) {
        let labels = match targets {
            Targets::Network { .. } => Some(vec![crate::scenario::NETWORK_LABEL.to_owned()]),
            _ => targets.gateway_labels(),
        };
        if let Some(labels) = labels {
            if !labels.iter().any(|l| l == value) {
                self.error(
                    path,
                    format!("target `{value}` would never match: this scenario's sessions are labelled {}", labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")),
                    "one of those labels",
                    "a network session is labelled `network`; a gateway session with the gateway's URL, and `?orchestrator=PIN` when pinned",
                );
            }
            return;
        }
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

    fn check_gateway(
        &mut self,
        url: &str,
        pins: &[String],
        headers_from_env: &std::collections::BTreeMap<String, String>,
    ) {
        if let Err(e) = spec::check_url("gateway", "url", url) {
            self.error(
                &[K("targets"), K("url")],
                e.to_string(),
                "a URL starting with http:// or https:// and naming a host",
                "the gateway's base URL, for example \"http://127.0.0.1:8937\"",
            );
        }
        for (i, pin) in pins.iter().enumerate() {
            let path = [K("targets"), K("pins"), I(i)];
            if pin.trim().is_empty() {
                self.error(
                    &path,
                    "an empty pin matches every orchestrator".to_string(),
                    "a substring of the orchestrator's URL, such as \"orch-1.example.com:8935\"",
                    "leave `pins` out to let the gateway select",
                );
            } else if pins[..i].contains(pin) {
                self.error(
                    &path,
                    format!("pin {pin:?} is listed twice"),
                    "each orchestrator once",
                    "remove the repeat",
                );
            }
        }
        for (name, var) in headers_from_env {
            let path = [K("targets"), K("headers_from_env"), K(name)];
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.error(
                    &path,
                    format!("{name:?} is not an HTTP header name"),
                    "a header name such as \"Authorization\"",
                    "header names are letters, digits and `-`",
                );
            }
            self.check_env_name(&path, var);
        }
    }

    fn check_env_name(&mut self, path: &[Seg<'_>], var: &str) {
        if var.is_empty() || var.contains(['=', '\0']) {
            self.error(
                path,
                format!("{var:?} is not an environment variable name"),
                "the name of the environment variable holding the value, such as \"LVT_GATEWAY_KEY\"",
                "the value itself stays out of the scenario file",
            );
        }
    }

    fn url_error(&mut self, path: &[Seg<'_>], error: &CheckError) {
        self.error(
            path,
            error.to_string(),
            "a URL starting with http:// or https:// and naming a host",
            "write the full URL, for example \"http://127.0.0.1:9000/orchestrators\"",
        );
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
