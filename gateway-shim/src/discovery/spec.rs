//! A discovery source as a user describes it: one type, [`SourceSpec`], with two forms.
//!
//! On a command line (`lvt discover --discovery`, `lvt probe --network --discovery`) it is
//! written `kind:value` ([`FromStr`] and [`Display`](fmt::Display), which give each other back):
//!
//! | spec | source |
//! |---|---|
//! | `static:URI[,URI...]` | a fixed list ([`super::StaticSource`]) |
//! | `webhook:URL` | a webhook answering `[{address, score}]` ([`super::WebhookSource`]) |
//! | `naap:URL` | a NaaP discovery API ([`super::NaapSource`]) |
//! | `chain` or `chain:RPC_URL` | the on-chain pool ([`super::ChainSource`]; Arbitrum One's public endpoint without a URL) |
//!
//! In a scenario it is the table `[targets] discovery = { source = "static" | "webhook" | "naap"
//! | "chain", ... }` (serde, unknown keys rejected; its schema is part of
//! `scenarios/schema.json`), which can also say each source's timeout, the chain's contracts
//! and a score per static entry. What the `kind:value` form cannot say comes from the
//! defaults, and from the command's flags through [`SpecOptions`].
//!
//! Parsing checks the form only; [`SourceSpec::check`] checks the values of either form and
//! names the field of each bad one, and [`SourceSpec::into_source`] checks and builds the
//! source, so a typo is an error before anything is asked. A new kind of source is a variant
//! here (its two forms, its checks and how it is built) and a file of its own beside this one
//! (the source, and its variant of [`super::Source`]); the tester needs no change unless the
//! source brings a new kind of [`CheckError`].

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use lvt_wire::live::{OrchestratorUri, UriError};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::config::{
    ARBITRUM_ONE_CONTROLLER_HEX, ChainConfig, ChainConfigError, DEFAULT_RPC_URL,
    DEFAULT_SOURCE_TIMEOUT_MS, StaticEntry, is_http_url, parse_eth_address, parse_service_registry,
};
use super::{
    ChainSource, NaapSource, Source, SourceError, StaticSource, WebhookSource, static_list,
};

/// The kinds, as the error of a bad spec lists them.
pub const SPEC_FORMS: &str = "static:URI[,URI...], webhook:URL, naap:URL, chain or chain:RPC_URL";

/// The `timeout_ms` a source may be given, in milliseconds: at least one, at most ten minutes.
pub const TIMEOUT_MS_RANGE: RangeInclusive<u32> = 1..=600_000;

/// How long each JSON-RPC call of the on-chain source may take unless configured otherwise,
/// in milliseconds: [`super::config::DEFAULT_CALL_TIMEOUT`].
pub const DEFAULT_CHAIN_TIMEOUT_MS: u32 = 10_000;

/// One discovery source as a user describes it, on a command line or in a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "source",
    rename_all = "snake_case",
    deny_unknown_fields,
    rename = "NetworkDiscovery"
)]
#[schemars(description = "The discovery source of a `network` target.")]
pub enum SourceSpec {
    /// A fixed list, like go-livepeer's `-orchAddr`; scores (0-1) feed score-weighted selection.
    Static {
        /// The candidate orchestrators.
        orchestrators: Vec<StaticEntry>,
    },
    /// A webhook answering `GET url` with a JSON array of `{address, score}`, as go-livepeer's
    /// `-orchWebhookUrl`.
    Webhook {
        /// The webhook's URL (http or https).
        url: String,
        /// How long to wait for the webhook, in milliseconds.
        #[serde(default = "default_source_timeout_ms")]
        timeout_ms: u32,
    },
    /// A NaaP discovery API: `GET {base_url}/v1/discover/orchestrators?caps=live-video-to-video/MODEL`
    /// with the scenario's model.
    Naap {
        /// The API's base URL (http or https).
        base_url: String,
        /// How long to wait for the API, in milliseconds.
        #[serde(default = "default_source_timeout_ms")]
        timeout_ms: u32,
    },
    /// The Livepeer orchestrator pool on chain, read with `eth_call` through an Ethereum
    /// JSON-RPC node: Controller, BondingManager pool walk, ServiceRegistry URIs
    /// (docs/discovery.md).
    Chain {
        /// The JSON-RPC URL (http or https), for example an Arbitrum One node.
        // Required in a scenario; absent only in the bare `chain` spec, which means
        // Arbitrum's public endpoint and prints back as `chain`.
        #[serde(deserialize_with = "some_string")]
        #[schemars(with = "String")]
        rpc_url: Option<String>,
        /// The Livepeer Controller's address; default the one on Arbitrum One.
        #[serde(default)]
        controller: Option<String>,
        /// A ServiceRegistry to read URIs from instead of the Controller's: an address, or
        /// `ai` for the AI service registry on Arbitrum One.
        #[serde(default)]
        service_registry: Option<String>,
        /// How long each JSON-RPC call may take, in milliseconds.
        #[serde(default = "default_chain_timeout_ms")]
        timeout_ms: u32,
    },
}

fn default_source_timeout_ms() -> u32 {
    DEFAULT_SOURCE_TIMEOUT_MS
}

fn default_chain_timeout_ms() -> u32 {
    DEFAULT_CHAIN_TIMEOUT_MS
}

/// Reads a required string into an `Option`: a field with its own deserializer and no
/// default must be present, so a scenario cannot leave `rpc_url` out.
fn some_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

/// One value of a [`SourceSpec`] that cannot be used. [`CheckError::field`] and
/// [`CheckError::entry`] say where it is, so that a scenario's diagnostics can point at it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A static list with no entry.
    #[error("no orchestrators in the static discovery list")]
    NoOrchestrators,
    /// A static entry's address is not an orchestrator URI.
    #[error("invalid orchestrator address: {error}")]
    Address {
        /// Which entry.
        index: usize,
        /// The address as written.
        address: String,
        /// Why.
        error: UriError,
    },
    /// A static entry's score is NaN or infinite.
    #[error("score is not a finite number")]
    Score {
        /// Which entry.
        index: usize,
    },
    /// A URL is not an absolute http(s) URL.
    #[error("{kind} {field} `{url}` is not an http(s) URL")]
    Url {
        /// The kind of source, as messages name it (`webhook`, `NaaP`, `chain`).
        kind: &'static str,
        /// The field (`url`, `base_url`, `rpc_url`).
        field: &'static str,
        /// The URL as written.
        url: String,
    },
    /// A contract address (`controller`, `service_registry`) is not an Ethereum address.
    #[error("{error}")]
    Contract {
        /// The field.
        field: &'static str,
        /// Why, as the chain configuration says it.
        error: ChainConfigError,
    },
    /// A `timeout_ms` outside [`TIMEOUT_MS_RANGE`].
    #[error(
        "timeout_ms = {value} is out of range ({} to {} ms)",
        TIMEOUT_MS_RANGE.start(),
        TIMEOUT_MS_RANGE.end()
    )]
    Timeout {
        /// The timeout as written.
        value: u32,
    },
}

impl CheckError {
    /// The field the error is about, as the scenario form names it (within the static entry
    /// [`CheckError::entry`] gives, for `address` and `score`).
    pub fn field(&self) -> &'static str {
        match self {
            Self::NoOrchestrators => "orchestrators",
            Self::Address { .. } => "address",
            Self::Score { .. } => "score",
            Self::Url { field, .. } | Self::Contract { field, .. } => field,
            Self::Timeout { .. } => "timeout_ms",
        }
    }

    /// The index of the static entry the error is about, if it is about one.
    pub fn entry(&self) -> Option<usize> {
        match self {
            Self::Address { index, .. } | Self::Score { index } => Some(*index),
            _ => None,
        }
    }
}

/// Why a spec cannot be used; each names the spec as written on the command line.
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
    /// Any other value that [`SourceSpec::check`] refuses (only the scenario form can write
    /// these: an empty list, a score, a timeout).
    #[error("{spec}: {error}")]
    Check {
        /// The spec as written.
        spec: String,
        /// Which value and why.
        error: CheckError,
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
            Self::Check { error, .. } => error.to_string(),
        }
    }

    /// The first of `errors` as the command line has always said it.
    fn from_check(spec: String, error: CheckError) -> Self {
        match error {
            CheckError::Address { address, error, .. } => Self::Address {
                spec,
                source: Box::new(SourceError::BadAddress {
                    origin: static_list::ORIGIN.to_owned(),
                    address,
                    source: error,
                }),
            },
            CheckError::Url {
                field: "rpc_url",
                url,
                ..
            } => Self::Chain {
                spec,
                source: ChainConfigError::BadRpcUrl { value: url },
            },
            CheckError::Url { url, .. } => Self::Url { spec, url },
            CheckError::Contract { error, .. } => Self::Chain {
                spec,
                source: error,
            },
            error => Self::Check { spec, error },
        }
    }
}

impl fmt::Display for SourceSpec {
    /// The `kind:value` form; what it cannot say (timeouts, scores, contracts) is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static { orchestrators } => {
                f.write_str("static:")?;
                for (i, entry) in orchestrators.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(&entry.address)?;
                }
                Ok(())
            }
            Self::Webhook { url, .. } => write!(f, "webhook:{url}"),
            Self::Naap { base_url, .. } => write!(f, "naap:{base_url}"),
            Self::Chain { rpc_url: None, .. } => f.write_str("chain"),
            Self::Chain {
                rpc_url: Some(url), ..
            } => write!(f, "chain:{url}"),
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
                let uris: Vec<&str> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|uri| !uri.is_empty())
                    .collect();
                if uris.is_empty() {
                    return Err(form());
                }
                Ok(Self::static_list(uris))
            }
            ("webhook", Some(url)) => Ok(Self::webhook(url)),
            ("naap", Some(url)) => Ok(Self::naap(url)),
            ("chain", url) => Ok(Self::chain(url)),
            _ => Err(form()),
        }
    }
}

/// What a spec does not say itself, taken from the command's flags (or the scenario).
#[derive(Clone, Debug)]
pub struct SpecOptions {
    /// The model a NaaP API is asked for.
    pub model: String,
    /// Bound on each source request (and each JSON-RPC call), replacing the spec's own
    /// `timeout_ms` when given: a command's `--timeout` applies to every source it names.
    pub timeout: Option<Duration>,
    /// The Controller for `chain` when the spec names none (default Arbitrum One's).
    pub controller: Option<String>,
    /// A ServiceRegistry for `chain` when the spec names none (an address or `ai`).
    pub service_registry: Option<String>,
}

impl SourceSpec {
    /// `static:URI,...`: the addresses, without scores.
    pub fn static_list<S: Into<String>>(addresses: impl IntoIterator<Item = S>) -> Self {
        Self::Static {
            orchestrators: StaticSource::from_addresses(addresses).orchestrators,
        }
    }

    /// `webhook:URL`, with the default timeout.
    pub fn webhook(url: impl Into<String>) -> Self {
        Self::Webhook {
            url: url.into(),
            timeout_ms: DEFAULT_SOURCE_TIMEOUT_MS,
        }
    }

    /// `naap:URL`, with the default timeout.
    pub fn naap(base_url: impl Into<String>) -> Self {
        Self::Naap {
            base_url: base_url.into(),
            timeout_ms: DEFAULT_SOURCE_TIMEOUT_MS,
        }
    }

    /// `chain` (Arbitrum One's public endpoint) or `chain:RPC_URL`, with the default contracts
    /// and timeout.
    pub fn chain<S: Into<String>>(rpc_url: Option<S>) -> Self {
        Self::Chain {
            rpc_url: rpc_url.map(Into::into),
            controller: None,
            service_registry: None,
            timeout_ms: DEFAULT_CHAIN_TIMEOUT_MS,
        }
    }

    /// The kind, as `source = "..."` names it in a scenario and `kind:` on a command line.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Static { .. } => "static",
            Self::Webhook { .. } => "webhook",
            Self::Naap { .. } => "naap",
            Self::Chain { .. } => "chain",
        }
    }

    /// Checks every value, without asking anything.
    ///
    /// # Errors
    /// Every value that cannot be used, each naming its field.
    pub fn check(&self) -> Result<(), Vec<CheckError>> {
        let mut errors = Vec::new();
        match self {
            Self::Static { orchestrators } => {
                if orchestrators.is_empty() {
                    errors.push(CheckError::NoOrchestrators);
                }
                errors.extend(check_entries(orchestrators));
            }
            Self::Webhook { url, timeout_ms } => {
                errors.extend(check_url("webhook", "url", url).err());
                errors.extend(check_timeout(*timeout_ms).err());
            }
            Self::Naap {
                base_url,
                timeout_ms,
            } => {
                errors.extend(check_url("NaaP", "base_url", base_url).err());
                errors.extend(check_timeout(*timeout_ms).err());
            }
            Self::Chain {
                rpc_url,
                controller,
                service_registry,
                timeout_ms,
            } => {
                if let Some(url) = rpc_url {
                    errors.extend(check_url("chain", "rpc_url", url).err());
                }
                // In the order the chain configuration checks them, so that the command line
                // names the same first error as it always has.
                let contract = |field, error| CheckError::Contract { field, error };
                if let Some(value) = service_registry
                    && let Err(e) = parse_service_registry(value)
                {
                    errors.push(contract("service_registry", e));
                }
                if let Some(value) = controller
                    && let Err(e) = parse_eth_address("controller", value)
                {
                    errors.push(contract("controller", e));
                }
                errors.extend(check_timeout(*timeout_ms).err());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Checks the values (after filling in what `options` give) and builds the source.
    ///
    /// # Errors
    /// The first value that cannot be used, naming the spec; or, for `chain`, a build
    /// without on-chain discovery.
    pub fn into_source(mut self, options: &SpecOptions) -> Result<Source, SpecError> {
        if let Self::Chain {
            controller,
            service_registry,
            ..
        } = &mut self
        {
            if controller.is_none() {
                controller.clone_from(&options.controller);
            }
            if service_registry.is_none() {
                service_registry.clone_from(&options.service_registry);
            }
        }
        let spec = self.to_string();
        if let Some(first) = self.check().err().and_then(|e| e.into_iter().next()) {
            return Err(SpecError::from_check(spec, first));
        }
        let timeout = |ms: u32| {
            options
                .timeout
                .unwrap_or(Duration::from_millis(u64::from(ms)))
        };
        Ok(match self {
            Self::Static { orchestrators } => Source::Static(StaticSource { orchestrators }),
            Self::Webhook { url, timeout_ms } => Source::Webhook(WebhookSource {
                url,
                timeout: timeout(timeout_ms),
            }),
            Self::Naap {
                base_url,
                timeout_ms,
            } => Source::Naap(NaapSource {
                base_url,
                model: options.model.clone(),
                timeout: timeout(timeout_ms),
            }),
            Self::Chain {
                rpc_url,
                controller,
                service_registry,
                timeout_ms,
            } => {
                let config = ChainConfig {
                    rpc_url: rpc_url.unwrap_or_else(|| DEFAULT_RPC_URL.to_owned()),
                    controller: controller
                        .unwrap_or_else(|| ARBITRUM_ONE_CONTROLLER_HEX.to_owned()),
                    service_registry,
                    timeout_ms: u64::try_from(timeout(timeout_ms).as_millis()).unwrap_or(u64::MAX),
                    ..ChainConfig::default()
                };
                ChainSource::try_from(config)
                    .map(Source::Chain)
                    .map_err(|source| SpecError::Chain { spec, source })?
            }
        })
    }
}

/// Checks a static list's entries: each address an orchestrator URI, each score finite. An
/// empty list is for the caller to judge.
pub fn check_entries(entries: &[StaticEntry]) -> Vec<CheckError> {
    let mut errors = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if let Err(error) = entry.address.parse::<OrchestratorUri>() {
            errors.push(CheckError::Address {
                index,
                address: entry.address.clone(),
                error,
            });
        }
        if entry.score.is_some_and(|s| !s.is_finite()) {
            errors.push(CheckError::Score { index });
        }
    }
    errors
}

/// Checks that `url`, the `field` of a `kind` source, is an absolute http(s) URL.
///
/// # Errors
/// [`CheckError::Url`] naming the field.
pub fn check_url(kind: &'static str, field: &'static str, url: &str) -> Result<(), CheckError> {
    if is_http_url(url) {
        Ok(())
    } else {
        Err(CheckError::Url {
            kind,
            field,
            url: url.to_owned(),
        })
    }
}

/// Checks a `timeout_ms` against [`TIMEOUT_MS_RANGE`].
///
/// # Errors
/// [`CheckError::Timeout`].
pub fn check_timeout(value: u32) -> Result<(), CheckError> {
    if TIMEOUT_MS_RANGE.contains(&value) {
        Ok(())
    } else {
        Err(CheckError::Timeout { value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SpecOptions {
        SpecOptions {
            model: "noop".to_owned(),
            timeout: Some(Duration::from_secs(3)),
            controller: None,
            service_registry: None,
        }
    }

    fn entry(address: &str, score: Option<f64>) -> StaticEntry {
        StaticEntry {
            address: address.to_owned(),
            score,
        }
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        for (text, spec) in [
            (
                "static:a.example:8935, http://127.0.0.1:1",
                SourceSpec::Static {
                    orchestrators: vec![
                        entry("a.example:8935", None),
                        entry("http://127.0.0.1:1", None),
                    ],
                },
            ),
            (
                "webhook:https://hook.example/orchs",
                SourceSpec::webhook("https://hook.example/orchs"),
            ),
            (
                "naap:https://naap.example",
                SourceSpec::naap("https://naap.example"),
            ),
            ("chain", SourceSpec::chain(None::<String>)),
            (
                "chain:http://127.0.0.1:8545",
                SourceSpec::chain(Some("http://127.0.0.1:8545")),
            ),
        ] {
            let parsed: SourceSpec = text.parse().expect(text);
            assert_eq!(parsed, spec, "{text}");
            let again: SourceSpec = parsed.to_string().parse().expect("round trip");
            assert_eq!(again, spec, "{text}");
        }
        assert_eq!(
            "chain".parse::<SourceSpec>().expect("chain").to_string(),
            "chain"
        );
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
        let bad_address = SourceSpec::static_list(["not an address"])
            .into_source(&options())
            .expect_err("bad address")
            .to_string();
        assert!(
            bad_address.starts_with("static:not an address: static list: \"not an address\""),
            "{bad_address}"
        );
        let bad_url = SourceSpec::webhook("ftp://x")
            .into_source(&options())
            .expect_err("bad url")
            .to_string();
        assert_eq!(
            bad_url,
            "webhook:ftp://x: \"ftp://x\" is not an http:// or https:// URL"
        );
        let bad_rpc = SourceSpec::chain(Some("ws://x"))
            .into_source(&options())
            .expect_err("bad rpc url")
            .to_string();
        assert_eq!(
            bad_rpc,
            "chain:ws://x: rpc_url \"ws://x\" is not an http(s) URL"
        );
        let bad_controller = SourceSpec::chain(None::<String>)
            .into_source(&SpecOptions {
                controller: Some("0x12".to_owned()),
                ..options()
            })
            .expect_err("bad controller")
            .to_string();
        assert_eq!(
            bad_controller,
            "chain: controller \"0x12\" is not an Ethereum address (0x and 40 hex digits)"
        );
        let Source::Naap(naap) = SourceSpec::naap("https://naap.example")
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

    /// The scenario form and the command-line form of one source build the same source.
    #[test]
    fn the_toml_and_the_command_line_forms_build_the_same_source() {
        let toml_spec = |text: &str| -> SourceSpec { toml::from_str(text).expect(text) };
        let built = |spec: SourceSpec, timeout: Option<Duration>| {
            let options = SpecOptions {
                timeout,
                ..options()
            };
            format!("{:?}", spec.into_source(&options).expect("a source"))
        };
        let cases = [
            (
                "source = \"webhook\"\nurl = \"http://h.example/o\"\ntimeout_ms = 3000",
                "webhook:http://h.example/o",
            ),
            (
                "source = \"naap\"\nbase_url = \"https://naap.example\"\ntimeout_ms = 3000",
                "naap:https://naap.example",
            ),
            (
                "source = \"static\"\norchestrators = [{ address = \"a.example:1\" }]",
                "static:a.example:1",
            ),
        ];
        for (toml_text, cli) in cases {
            let from_toml = toml_spec(toml_text);
            let from_cli: SourceSpec = cli.parse().expect(cli);
            assert_eq!(from_toml.kind(), from_cli.kind());
            assert_eq!(
                from_toml.to_string(),
                cli,
                "the TOML form prints as the CLI form"
            );
            if from_toml.kind() == "static" {
                // A written list without scores means 0 each; `static:URI` has no score.
                let (Source::Static(t), Source::Static(c)) = (
                    from_toml.into_source(&options()).expect("static"),
                    from_cli.into_source(&options()).expect("static"),
                ) else {
                    panic!("static sources");
                };
                assert_eq!(t.orchestrators, [entry("a.example:1", Some(0.0))]);
                assert_eq!(c.orchestrators, [entry("a.example:1", None)]);
                continue;
            }
            assert_eq!(
                built(from_toml, None),
                built(from_cli, Some(Duration::from_secs(3))),
                "{cli}"
            );
        }
        let chain = toml_spec(
            "source = \"chain\"\nrpc_url = \"http://127.0.0.1:8545\"\ncontroller = \"0xD8E8328501E9645d16Cf49539efC04f734606ee4\"",
        );
        assert_eq!(chain, {
            let mut cli: SourceSpec = "chain:http://127.0.0.1:8545".parse().expect("chain");
            if let SourceSpec::Chain { controller, .. } = &mut cli {
                *controller = Some(ARBITRUM_ONE_CONTROLLER_HEX.to_owned());
            }
            cli
        });
        assert!(
            toml::from_str::<SourceSpec>("source = \"chain\"").is_err(),
            "a scenario names its RPC URL"
        );
        assert!(
            toml::from_str::<SourceSpec>("source = \"webhook\"\nurl = \"http://h\"\ntimeout = 3")
                .is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn check_names_the_field_of_each_bad_value() {
        let fields = |spec: SourceSpec| -> Vec<(Option<usize>, &'static str, String)> {
            spec.check()
                .expect_err("bad values")
                .iter()
                .map(|e| (e.entry(), e.field(), e.to_string()))
                .collect()
        };
        assert_eq!(
            fields(SourceSpec::Static {
                orchestrators: vec![]
            }),
            [(
                None,
                "orchestrators",
                "no orchestrators in the static discovery list".to_owned()
            )]
        );
        let got = fields(SourceSpec::Static {
            orchestrators: vec![
                entry("a.example:1", Some(1.0)),
                entry("ftp://x:1", Some(f64::NAN)),
            ],
        });
        assert_eq!(
            got.iter().map(|(i, f, _)| (*i, *f)).collect::<Vec<_>>(),
            [(Some(1), "address"), (Some(1), "score")]
        );
        assert!(
            got[0].2.starts_with("invalid orchestrator address: "),
            "{got:?}"
        );
        assert_eq!(
            fields(SourceSpec::Webhook {
                url: "ftp://x".to_owned(),
                timeout_ms: 0
            }),
            [
                (
                    None,
                    "url",
                    "webhook url `ftp://x` is not an http(s) URL".to_owned()
                ),
                (
                    None,
                    "timeout_ms",
                    "timeout_ms = 0 is out of range (1 to 600000 ms)".to_owned()
                ),
            ]
        );
        assert_eq!(
            fields(SourceSpec::naap("naap.example")),
            [(
                None,
                "base_url",
                "NaaP base_url `naap.example` is not an http(s) URL".to_owned()
            )]
        );
        let chain = SourceSpec::Chain {
            rpc_url: Some("ws://x".to_owned()),
            controller: Some("0x1234".to_owned()),
            service_registry: Some("nope".to_owned()),
            timeout_ms: 600_001,
        };
        assert_eq!(
            fields(chain).iter().map(|(_, f, _)| *f).collect::<Vec<_>>(),
            ["rpc_url", "service_registry", "controller", "timeout_ms"]
        );
        assert_eq!(
            Duration::from_millis(DEFAULT_CHAIN_TIMEOUT_MS.into()),
            crate::discovery::config::DEFAULT_CALL_TIMEOUT
        );
        let ai = SourceSpec::Chain {
            rpc_url: None,
            controller: None,
            service_registry: Some("ai".to_owned()),
            timeout_ms: 1,
        };
        assert!(ai.check().is_ok());
    }
}
