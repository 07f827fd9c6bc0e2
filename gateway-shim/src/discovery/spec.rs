//! A discovery source as written on a command line, `kind:value`, shared by `lvt discover
//! --discovery` and `lvt probe --network --discovery`:
//!
//! | spec | source |
//! |---|---|
//! | `static:URI[,URI...]` | a fixed list ([`super::StaticSource`]) |
//! | `webhook:URL` | a webhook answering `[{address, score}]` ([`super::WebhookSource`]) |
//! | `naap:URL` | a NaaP discovery API ([`super::NaapSource`]) |
//! | `chain` or `chain:RPC_URL` | the on-chain pool ([`super::ChainSource`]; Arbitrum One's public endpoint without a URL) |
//!
//! Parsing checks the form only; [`SourceSpec::into_source`] checks the values (addresses,
//! URLs, the chain configuration) and builds the source, so a typo is a usage error before
//! anything is asked.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::config::{ChainConfig, ChainConfigError, is_http_url};
use super::{ChainSource, NaapSource, Source, SourceError, StaticSource, WebhookSource};

/// The kinds, as the error of a bad spec lists them.
pub const SPEC_FORMS: &str = "static:URI[,URI...], webhook:URL, naap:URL, chain or chain:RPC_URL";

/// One `kind:value` discovery spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// `static:URI[,URI...]`.
    Static(Vec<String>),
    /// `webhook:URL`.
    Webhook(String),
    /// `naap:URL`.
    Naap(String),
    /// `chain` (Arbitrum One's public endpoint) or `chain:RPC_URL`.
    Chain(Option<String>),
}

/// Why a spec cannot be used; each names the spec as written.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not one of the forms of [`SPEC_FORMS`].
    #[error("{spec:?}: expected {SPEC_FORMS}")]
    Form {
        /// The spec as written.
        spec: String,
    },
    /// A static address is not an orchestrator URI.
    #[error("{spec}: {source}")]
    Address {
        /// The spec as written.
        spec: String,
        /// Which address and why (boxed: it is large, and rare).
        source: Box<SourceError>,
    },
    /// A webhook or NaaP URL is not an absolute http(s) URL.
    #[error("{spec}: {url:?} is not an http:// or https:// URL")]
    Url {
        /// The spec as written.
        spec: String,
        /// The URL.
        url: String,
    },
    /// The chain configuration is not usable (or this build has no on-chain discovery).
    #[error("{spec}: {source}")]
    Chain {
        /// The spec as written.
        spec: String,
        /// Why.
        source: ChainConfigError,
    },
}

impl SpecError {
    /// The reason without the spec in front, for a caller that names the source its own way.
    pub fn detail(&self) -> String {
        match self {
            Self::Form { .. } => format!("expected {SPEC_FORMS}"),
            Self::Address { source, .. } => source.to_string(),
            Self::Url { url, .. } => format!("{url:?} is not an http:// or https:// URL"),
            Self::Chain { source, .. } => source.to_string(),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(uris) => write!(f, "static:{}", uris.join(",")),
            Self::Webhook(url) => write!(f, "webhook:{url}"),
            Self::Naap(url) => write!(f, "naap:{url}"),
            Self::Chain(None) => f.write_str("chain"),
            Self::Chain(Some(url)) => write!(f, "chain:{url}"),
        }
    }
}

impl FromStr for SourceSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let form = || SpecError::Form {
            spec: spec.to_owned(),
        };
        let (kind, value) = match spec.split_once(':') {
            Some((kind, value)) => (kind, Some(value.trim())),
            None => (spec, None),
        };
        let value = value.filter(|v| !v.is_empty());
        match (kind.trim(), value) {
            ("static", Some(list)) => {
                let uris: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|uri| !uri.is_empty())
                    .map(str::to_owned)
                    .collect();
                if uris.is_empty() {
                    return Err(form());
                }
                Ok(Self::Static(uris))
            }
            ("webhook", Some(url)) => Ok(Self::Webhook(url.to_owned())),
            ("naap", Some(url)) => Ok(Self::Naap(url.to_owned())),
            ("chain", url) => Ok(Self::Chain(url.map(str::to_owned))),
            _ => Err(form()),
        }
    }
}

/// What a spec cannot say by itself, taken from the command's other flags.
#[derive(Clone, Debug)]
pub struct SpecOptions {
    /// The model a NaaP API is asked for.
    pub model: String,
    /// Bound on each source request (and each JSON-RPC call).
    pub timeout: Duration,
    /// The Controller for `chain` (default Arbitrum One's).
    pub controller: Option<String>,
    /// A ServiceRegistry for `chain` instead of the Controller's (an address or `ai`).
    pub service_registry: Option<String>,
}

fn http_url(spec: &SourceSpec, url: &str) -> Result<String, SpecError> {
    if is_http_url(url) {
        Ok(url.to_owned())
    } else {
        Err(SpecError::Url {
            spec: spec.to_string(),
            url: url.to_owned(),
        })
    }
}

impl SourceSpec {
    /// Checks the values and builds the source.
    ///
    /// # Errors
    /// The first value that cannot be used, naming the spec.
    pub fn into_source(self, options: &SpecOptions) -> Result<Source, SpecError> {
        match &self {
            Self::Static(uris) => {
                let list = StaticSource::from_addresses(uris.iter().cloned());
                list.resolve().map_err(|source| SpecError::Address {
                    spec: self.to_string(),
                    source: Box::new(source),
                })?;
                Ok(Source::Static(list))
            }
            Self::Webhook(url) => Ok(Source::Webhook(WebhookSource {
                url: http_url(&self, url)?,
                timeout: options.timeout,
            })),
            Self::Naap(url) => Ok(Source::Naap(NaapSource {
                base_url: http_url(&self, url)?,
                model: options.model.clone(),
                timeout: options.timeout,
            })),
            Self::Chain(rpc_url) => {
                let defaults = ChainConfig::default();
                let config = ChainConfig {
                    rpc_url: rpc_url.clone().unwrap_or(defaults.rpc_url.clone()),
                    controller: options
                        .controller
                        .clone()
                        .unwrap_or(defaults.controller.clone()),
                    service_registry: options.service_registry.clone(),
                    timeout_ms: u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX),
                    ..defaults
                };
                ChainSource::try_from(config)
                    .map(Source::Chain)
                    .map_err(|source| SpecError::Chain {
                        spec: self.to_string(),
                        source,
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SpecOptions {
        SpecOptions {
            model: "noop".to_owned(),
            timeout: Duration::from_secs(3),
            controller: None,
            service_registry: None,
        }
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        for (text, spec) in [
            (
                "static:a.example:8935, http://127.0.0.1:1",
                SourceSpec::Static(vec![
                    "a.example:8935".to_owned(),
                    "http://127.0.0.1:1".to_owned(),
                ]),
            ),
            (
                "webhook:https://hook.example/orchs",
                SourceSpec::Webhook("https://hook.example/orchs".to_owned()),
            ),
            (
                "naap:https://naap.example",
                SourceSpec::Naap("https://naap.example".to_owned()),
            ),
            ("chain", SourceSpec::Chain(None)),
            (
                "chain:http://127.0.0.1:8545",
                SourceSpec::Chain(Some("http://127.0.0.1:8545".to_owned())),
            ),
        ] {
            let parsed: SourceSpec = text.parse().expect(text);
            assert_eq!(parsed, spec, "{text}");
            let again: SourceSpec = parsed.to_string().parse().expect("round trip");
            assert_eq!(again, spec, "{text}");
        }
    }

    #[test]
    fn bad_forms_list_the_kinds() {
        for text in [
            "", "static", "static:", "static:,", "webhook", "naap:", "dns:x", "x",
        ] {
            let error = text.parse::<SourceSpec>().expect_err(text).to_string();
            assert!(error.contains(SPEC_FORMS), "{text}: {error}");
        }
    }

    #[test]
    fn values_are_checked_when_the_source_is_built() {
        let bad_address = SourceSpec::Static(vec!["not an address".to_owned()])
            .into_source(&options())
            .expect_err("bad address")
            .to_string();
        assert!(
            bad_address.starts_with("static:not an address: "),
            "{bad_address}"
        );
        let bad_url = SourceSpec::Webhook("ftp://x".to_owned())
            .into_source(&options())
            .expect_err("bad url")
            .to_string();
        assert!(
            bad_url.contains("\"ftp://x\" is not an http:// or https:// URL"),
            "{bad_url}"
        );
        let bad_controller = SourceSpec::Chain(None)
            .into_source(&SpecOptions {
                controller: Some("0x12".to_owned()),
                ..options()
            })
            .expect_err("bad controller")
            .to_string();
        assert!(
            bad_controller.contains("controller \"0x12\" is not an Ethereum address"),
            "{bad_controller}"
        );
        let Source::Naap(naap) = SourceSpec::Naap("https://naap.example".to_owned())
            .into_source(&options())
            .expect("naap")
        else {
            panic!("a NaaP source");
        };
        assert_eq!(
            (naap.model.as_str(), naap.timeout),
            ("noop", Duration::from_secs(3))
        );
    }
}
