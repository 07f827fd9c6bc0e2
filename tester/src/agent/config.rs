//! The agent's configuration file (`agent.toml`): TOML with unknown keys refused and every
//! error located at `file:line:col`, as scenario files are.
//!
//! ```toml
//! region = "eu-west"
//! key = "/etc/lvt/agent.key"
//! collector = "https://collector.example"      # and/or [kafka]
//! state_dir = "/var/lib/lvt-agent"
//! admin_listen = "127.0.0.1:9464"             # optional
//!
//! [scenarios]
//! git = "https://git.example/lvt-scenarios.git" # https, http, file:// or a plain path
//! ref = "main"
//! path = "scenarios"
//! poll_s = 300
//!
//! [[schedule]]
//! scenario = "sla-hourly"
//! cron = "0 * * * *"                          # 5 fields, or 6 with seconds first; UTC
//! jitter_s = 300
//! overlap = "skip"                            # or "queue"
//! missed = "run_once"                         # or "skip"
//!
//! remote_signer = "http://127.0.0.1:7936"        # optional: pay on chain through it
//! refuse_changed_certificates = false            # refuse, not only flag, a changed certificate
//! verify_addresses = { rpc_url = "https://arb1.arbitrum.io/rpc", service_registry = "ai" }
//!
//! [budget]
//! max_concurrent_sessions = 20
//! max_session_seconds_per_orchestrator_per_day = 7200
//! max_payment_wei_per_day = 50000000000000000     # needs remote_signer
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::schedule::{Missed, Overlap, Schedule, ScheduleSpec};
use crate::scenario::Targets;

/// The default of `[scenarios] poll_s`: five minutes.
pub const DEFAULT_POLL_S: u64 = 300;
/// The default of `shutdown_grace_s`.
pub const DEFAULT_SHUTDOWN_GRACE_S: u64 = 60;
/// The default of `spool_max_bytes`: 1 GiB, about a million session records.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1 << 30;
/// The default of `spool_drain_s`.
pub const DEFAULT_SPOOL_DRAIN_S: u64 = 30;
/// The default of `ship_timeout_s`: the shippers' own request timeout.
pub const DEFAULT_SHIP_TIMEOUT_S: u64 = 60;
/// The default of `heartbeat_s`.
pub const DEFAULT_HEARTBEAT_S: u64 = 30;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The region label written into every record (one word, for example `eu-west`).
    pub region: Spanned<String>,
    /// The signing key file from `lvt keygen`.
    pub key: PathBuf,
    /// The collector's base URL for signed results over HTTP.
    #[serde(default)]
    pub collector: Option<Spanned<String>>,
    /// Kafka instead of, or beside, HTTP (with both, results go to Kafka and heartbeats to the
    /// collector).
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// The agent's durable state and its spool.
    pub state_dir: PathBuf,
    /// Where `/healthz`, `/metrics` and `/status` are served; off when absent.
    #[serde(default)]
    pub admin_listen: Option<Spanned<String>>,
    /// How long running sessions may go on after SIGTERM before they are ended.
    #[serde(default = "default_shutdown_grace_s")]
    pub shutdown_grace_s: u64,
    /// The spool's byte cap: at or above it no new run starts (nothing is ever dropped) until
    /// the spool drains below it.
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// How often the spool is offered to the collector again while it holds batches, seconds.
    #[serde(default = "default_spool_drain_s")]
    pub spool_drain_s: Spanned<u64>,
    /// How often a signed heartbeat goes to the collector, seconds (needs `collector`).
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: Spanned<u64>,
    /// How long a batch may wait for the collector's or the brokers' acknowledgement before it
    /// goes to the spool, seconds (1 to 600).
    #[serde(default = "default_ship_timeout_s")]
    pub ship_timeout_s: Spanned<u64>,
    /// A go-livepeer remote signer that pays every session's jobs on chain; offchain when
    /// absent (an empty payment, as `lvt run` without `--remote-signer`).
    #[serde(default)]
    pub remote_signer: Option<Spanned<String>>,
    /// Refuse a session whose orchestrator presents another TLS certificate than the one
    /// trusted for its URI (state.json's `fingerprints`), instead of only flagging the record.
    #[serde(default)]
    pub refuse_changed_certificates: bool,
    /// Check each orchestrator's claimed address against the on-chain ServiceRegistry
    /// (docs/result-record.md, "Identity"); without it claims are recorded unverified, except in
    /// network runs with an on-chain source.
    #[serde(default)]
    pub verify_addresses: Option<Spanned<VerifyAddresses>>,
    pub scenarios: ScenarioSource,
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<ScheduleConfig>,
    #[serde(default)]
    pub budget: Budget,
}

/// `verify_addresses`: the chain whose ServiceRegistry vouches for orchestrators' addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyAddresses {
    /// An Ethereum JSON-RPC URL (http or https), for example an Arbitrum One node.
    pub rpc_url: String,
    /// The Livepeer Controller; default the one on Arbitrum One.
    #[serde(default)]
    pub controller: Option<String>,
    /// A ServiceRegistry instead of the Controller's: an address, or `ai` for the AI service
    /// registry on Arbitrum One.
    #[serde(default)]
    pub service_registry: Option<String>,
}

impl VerifyAddresses {
    /// The on-chain source it names.
    ///
    /// # Errors
    /// A field that cannot be used, or a build without the `chain` feature.
    pub fn chain_source(
        &self,
    ) -> Result<lvt_gateway::discovery::ChainSource, lvt_gateway::discovery::ChainConfigError> {
        let defaults = lvt_gateway::discovery::ChainConfig::default();
        lvt_gateway::discovery::ChainSource::try_from(lvt_gateway::discovery::ChainConfig {
            rpc_url: self.rpc_url.clone(),
            controller: self
                .controller
                .clone()
                .unwrap_or(defaults.controller.clone()),
            service_registry: self.service_registry.clone(),
            ..defaults
        })
    }
}

fn default_shutdown_grace_s() -> u64 {
    DEFAULT_SHUTDOWN_GRACE_S
}

fn default_spool_max_bytes() -> u64 {
    DEFAULT_SPOOL_MAX_BYTES
}

fn default_spool_drain_s() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_SPOOL_DRAIN_S)
}

fn default_ship_timeout_s() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_SHIP_TIMEOUT_S)
}

fn default_heartbeat_s() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_HEARTBEAT_S)
}

/// `[kafka]`: the brokers and topics results and gateway events go to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: Spanned<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub events_topic: Option<String>,
}

/// `[scenarios]`: the repository the scenarios come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSource {
    /// `https://`, `http://`, `file://` or a plain path.
    pub git: Spanned<String>,
    /// Branch, tag or commit.
    #[serde(default = "default_ref", rename = "ref")]
    pub git_ref: String,
    /// The folder inside the repository.
    #[serde(default = "default_path")]
    pub path: String,
    /// How often to fetch, in seconds.
    #[serde(default = "default_poll_s")]
    pub poll_s: u64,
    /// Adopt a history rewrite of the ref (not a fast-forward) instead of refusing it.
    #[serde(default)]
    pub allow_force_push: bool,
}

fn default_ref() -> String {
    "main".into()
}

fn default_path() -> String {
    "scenarios".into()
}

fn default_poll_s() -> u64 {
    DEFAULT_POLL_S
}

/// One `[[schedule]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub scenario: Spanned<String>,
    pub cron: Spanned<String>,
    /// Only UTC is built; any other zone is refused.
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub jitter_s: u64,
    /// Replaces the scenario's own `[targets]`.
    #[serde(default)]
    pub targets: Option<Targets>,
    #[serde(default = "default_overlap")]
    pub overlap: Overlap,
    #[serde(default = "default_missed")]
    pub missed: Missed,
}

fn default_overlap() -> Overlap {
    Overlap::Skip
}

fn default_missed() -> Missed {
    Missed::Skip
}

/// `[budget]`: what the agent may spend. Absent limits are unlimited.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub max_concurrent_sessions: Option<u32>,
    pub max_session_seconds_per_orchestrator_per_day: Option<u64>,
    /// The most the sessions may pay in a UTC day, in wei of ticket expected value (needs
    /// `remote_signer`).
    pub max_payment_wei_per_day: Option<Spanned<u64>>,
}

/// A configuration error at its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{col}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl AgentConfig {
    /// Why `new` cannot replace `self` while the agent runs (SIGHUP), if it cannot: the key,
    /// where results go, the state folder, the admin address, the spool, heartbeat and ship timeout settings
    /// and the repository's URL and folder are fixed for the process; schedules, the region,
    /// the ref, `poll_s`, `allow_force_push`, `shutdown_grace_s`,
    /// `refuse_changed_certificates` and `verify_addresses` can change.
    pub fn reload_refusal(&self, new: &Self) -> Option<String> {
        let fixed = |config: &Self| {
            (
                config.key.clone(),
                config.collector.as_ref().map(|c| c.get_ref().clone()),
                config.kafka.as_ref().map(|k| {
                    (
                        k.brokers.get_ref().clone(),
                        k.topic.clone(),
                        k.events_topic.clone(),
                    )
                }),
                config.state_dir.clone(),
                config.admin_listen.as_ref().map(|a| a.get_ref().clone()),
                (
                    config.spool_max_bytes,
                    *config.spool_drain_s.get_ref(),
                    *config.heartbeat_s.get_ref(),
                    *config.ship_timeout_s.get_ref(),
                ),
                (
                    config.scenarios.git.get_ref().clone(),
                    config.scenarios.path.clone(),
                ),
                (
                    config.budget.max_concurrent_sessions,
                    config.budget.max_session_seconds_per_orchestrator_per_day,
                    config
                        .budget
                        .max_payment_wei_per_day
                        .as_ref()
                        .map(|w| *w.get_ref()),
                    config.remote_signer.as_ref().map(|s| s.get_ref().clone()),
                ),
            )
        };
        if fixed(self) != fixed(new) {
            return Some(
                "only [[schedule]], region, shutdown_grace_s, refuse_changed_certificates, \
                 verify_addresses and [scenarios] ref, poll_s and allow_force_push change on \
                 reload; key, collector, [kafka], state_dir, \
                 admin_listen, spool_max_bytes, spool_drain_s, heartbeat_s, ship_timeout_s, \
                 remote_signer, [budget] and [scenarios] git and path need a restart"
                    .to_owned(),
            );
        }
        None
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.display().to_string(),
            line: 0,
            col: 0,
            message: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks `text`; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, col) = line_col(text, span.start);
            ConfigError {
                path: path.to_string(),
                line,
                col,
                message,
            }
        };
        let config: Self = toml::from_str(text).map_err(|e| {
            // toml's message repeats the excerpt; its first line is the message itself.
            let message = e.message().lines().next().unwrap_or("").to_string();
            at(e.span().unwrap_or(0..0), message)
        })?;
        let region = config.region.get_ref();
        if region.is_empty() || region.contains(char::is_whitespace) {
            return Err(at(
                config.region.span(),
                format!("region {region:?} must be one word, for example eu-west"),
            ));
        }
        if config.collector.is_none() && config.kafka.is_none() {
            return Err(at(
                0..0,
                "no destination for results: give collector = URL and/or a [kafka] table".into(),
            ));
        }
        if let Some(url) = &config.collector {
            let ok = reqwest::Url::parse(url.get_ref())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(at(
                    url.span(),
                    format!("collector {:?} is not an http(s) URL", url.get_ref()),
                ));
            }
        }
        if let Some(signer) = &config.remote_signer {
            let ok = reqwest::Url::parse(signer.get_ref())
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(at(
                    signer.span(),
                    format!("remote_signer {:?} is not an http(s) URL", signer.get_ref()),
                ));
            }
        }
        if let Some(verify) = &config.verify_addresses
            && let Err(error) = verify.get_ref().chain_source()
        {
            return Err(at(verify.span(), format!("verify_addresses: {error}")));
        }
        if let Some(limit) = &config.budget.max_payment_wei_per_day
            && config.remote_signer.is_none()
        {
            return Err(at(
                limit.span(),
                "max_payment_wei_per_day limits on-chain payments: it needs remote_signer".into(),
            ));
        }
        if *config.heartbeat_s.get_ref() == 0 {
            return Err(at(
                config.heartbeat_s.span(),
                "heartbeat_s must be at least 1 second".into(),
            ));
        }
        if !(1..=600).contains(config.ship_timeout_s.get_ref()) {
            return Err(at(
                config.ship_timeout_s.span(),
                "ship_timeout_s must be 1 to 600 seconds".into(),
            ));
        }
        if *config.spool_drain_s.get_ref() == 0 {
            return Err(at(
                config.spool_drain_s.span(),
                "spool_drain_s must be at least 1 second".into(),
            ));
        }
        if let Some(kafka) = &config.kafka
            && kafka.brokers.get_ref().trim().is_empty()
        {
            return Err(at(kafka.brokers.span(), "kafka brokers are empty".into()));
        }
        if let Some(listen) = &config.admin_listen
            && listen.get_ref().parse::<SocketAddr>().is_err()
        {
            return Err(at(
                listen.span(),
                format!(
                    "admin_listen {:?} is not an address such as 127.0.0.1:9464",
                    listen.get_ref()
                ),
            ));
        }
        let git = config.scenarios.git.get_ref();
        let scheme = git.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, None | Some("https" | "http" | "file")) || git.starts_with("git@") {
            return Err(at(
                config.scenarios.git.span(),
                format!(
                    "git {git:?}: use an https, http or file:// URL or a path (ssh is not supported)"
                ),
            ));
        }
        if config.scenarios.poll_s == 0 {
            return Err(at(0..0, "[scenarios] poll_s must be at least 1".into()));
        }
        let mut seen = HashSet::new();
        for s in &config.schedules {
            let id = s.scenario.get_ref();
            if !seen.insert(id.clone()) {
                return Err(at(
                    s.scenario.span(),
                    format!("scenario {id:?} is scheduled twice; give it one cron pattern"),
                ));
            }
            if let Some(tz) = &s.timezone
                && !matches!(tz.get_ref().as_str(), "UTC" | "Etc/UTC")
            {
                return Err(at(
                    tz.span(),
                    format!(
                        "timezone {:?}: only UTC is supported (other zones are not built yet)",
                        tz.get_ref()
                    ),
                ));
            }
            if let Err(e) = Schedule::parse(s.spec(), "check") {
                return Err(at(s.cron.span(), e.to_string()));
            }
        }
        Ok(config)
    }

    /// The schedules with the jitter of agent `agent_id`.
    pub fn schedules(&self, agent_id: &str) -> Vec<Schedule> {
        self.schedules
            .iter()
            // Invariant: every schedule was parsed by `parse` already.
            .filter_map(|s| Schedule::parse(s.spec(), agent_id).ok())
            .collect()
    }
}

impl ScheduleConfig {
    fn spec(&self) -> ScheduleSpec {
        ScheduleSpec {
            scenario: self.scenario.get_ref().clone(),
            cron: self.cron.get_ref().clone(),
            jitter_ms: self.jitter_s.saturating_mul(1000),
            overlap: self.overlap,
            missed: self.missed,
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"region = "eu-west"
key = "agent.key"
collector = "https://collector.example"
state_dir = "/var/lib/lvt-agent"
admin_listen = "127.0.0.1:9464"

[scenarios]
git = "https://git.example/scenarios.git"

[[schedule]]
scenario = "sla-hourly"
cron = "0 * * * *"
jitter_s = 300
missed = "run_once"

[[schedule]]
scenario = "smoke"
cron = "*/20 * * * * *"
overlap = "queue"
targets = { source = "explicit", uris = ["https://127.0.0.1:8935"] }

[budget]
max_concurrent_sessions = 20
"#;

    fn error(text: &str) -> String {
        AgentConfig::parse(text, "agent.toml")
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_full_file_parses_with_its_defaults() {
        let c = AgentConfig::parse(GOOD, "agent.toml").unwrap();
        assert_eq!(c.region.get_ref(), "eu-west");
        assert_eq!(c.scenarios.git_ref, "main");
        assert_eq!(c.scenarios.path, "scenarios");
        assert_eq!(c.scenarios.poll_s, DEFAULT_POLL_S);
        assert_eq!(c.shutdown_grace_s, DEFAULT_SHUTDOWN_GRACE_S);
        assert_eq!(c.spool_max_bytes, DEFAULT_SPOOL_MAX_BYTES);
        assert_eq!(*c.spool_drain_s.get_ref(), DEFAULT_SPOOL_DRAIN_S);
        assert_eq!(c.budget.max_concurrent_sessions, Some(20));
        let schedules = c.schedules("agent-1");
        assert_eq!(schedules.len(), 2);
        assert_eq!(schedules[0].spec().missed, Missed::RunOnce);
        assert_eq!(schedules[1].spec().overlap, Overlap::Queue);
        assert!(schedules[0].offset_ms() <= 300_000);
        assert!(matches!(
            c.schedules[1].targets,
            Some(Targets::Explicit { .. })
        ));
    }

    #[test]
    fn errors_are_located_at_file_line_col() {
        let unknown = GOOD.replace("jitter_s = 300", "jitter = 300");
        let e = error(&unknown);
        assert!(
            e.starts_with("agent.toml:13:1: unknown field `jitter`"),
            "{e}"
        );
        let cron = GOOD.replace("0 * * * *", "61 * * * *");
        let e = error(&cron);
        assert!(e.starts_with("agent.toml:12:8: cron \"61 * * * *\""), "{e}");
        let region = GOOD.replace("\"eu-west\"", "\"eu west\"");
        assert_eq!(
            error(&region),
            "agent.toml:1:10: region \"eu west\" must be one word, for example eu-west"
        );
        let ssh = GOOD.replace(
            "https://git.example/scenarios.git",
            "git@git.example:scenarios.git",
        );
        assert!(
            error(&ssh).contains("ssh is not supported"),
            "{}",
            error(&ssh)
        );
        let tz = GOOD.replace("missed = \"run_once\"", "timezone = \"Europe/Paris\"");
        assert!(
            error(&tz).starts_with("agent.toml:14:12: timezone \"Europe/Paris\""),
            "{}",
            error(&tz)
        );
        let twice = GOOD.replace("scenario = \"smoke\"", "scenario = \"sla-hourly\"");
        assert!(
            error(&twice).contains("scheduled twice"),
            "{}",
            error(&twice)
        );
        let listen = GOOD.replace("127.0.0.1:9464", "localhost");
        assert!(
            error(&listen).starts_with("agent.toml:5:16:"),
            "{}",
            error(&listen)
        );
    }

    #[test]
    fn a_zero_drain_interval_is_refused_at_its_value() {
        let text = GOOD.replace(
            "admin_listen = \"127.0.0.1:9464\"",
            "admin_listen = \"127.0.0.1:9464\"\nspool_drain_s = 0",
        );
        let message = error(&text);
        assert!(
            message.starts_with("agent.toml:6:17: spool_drain_s"),
            "{message}"
        );
    }

    #[test]
    fn a_ship_timeout_out_of_range_is_refused_at_its_value() {
        for bad in ["0", "601"] {
            let text = GOOD.replace(
                "admin_listen = \"127.0.0.1:9464\"",
                &format!("admin_listen = \"127.0.0.1:9464\"\nship_timeout_s = {bad}"),
            );
            let message = error(&text);
            assert!(
                message.starts_with("agent.toml:6:18: ship_timeout_s must be 1 to 600"),
                "{message}"
            );
        }
        let fine = GOOD.replace(
            "admin_listen = \"127.0.0.1:9464\"",
            "admin_listen = \"127.0.0.1:9464\"\nship_timeout_s = 5",
        );
        let config = AgentConfig::parse(&fine, "agent.toml").unwrap();
        assert_eq!(*config.ship_timeout_s.get_ref(), 5);
        let default = AgentConfig::parse(GOOD, "agent.toml").unwrap();
        assert_eq!(*default.ship_timeout_s.get_ref(), DEFAULT_SHIP_TIMEOUT_S);
    }

    #[test]
    fn results_need_somewhere_to_go() {
        let none = GOOD.replace("collector = \"https://collector.example\"\n", "");
        assert!(error(&none).contains("no destination for results"));
        let kafka = none.replace(
            "[scenarios]",
            "[kafka]\nbrokers = \"127.0.0.1:9092\"\n\n[scenarios]",
        );
        assert!(AgentConfig::parse(&kafka, "agent.toml").is_ok());
        let bad = GOOD.replace("https://collector.example", "collector.example");
        assert!(
            error(&bad).starts_with("agent.toml:3:13:"),
            "{}",
            error(&bad)
        );
    }

    #[cfg(feature = "chain")] // without it, verify_addresses is refused at its place
    #[test]
    fn verify_addresses_names_a_usable_chain_and_reloads() {
        let with = |table: &str| {
            GOOD.replace(
                "admin_listen = \"127.0.0.1:9464\"",
                &format!("admin_listen = \"127.0.0.1:9464\"\nverify_addresses = {table}"),
            )
        };
        let good = with(r#"{ rpc_url = "http://127.0.0.1:8545", service_registry = "ai" }"#);
        let config = AgentConfig::parse(&good, "agent.toml").unwrap();
        let verify = config.verify_addresses.as_ref().expect("set");
        assert_eq!(verify.get_ref().rpc_url, "http://127.0.0.1:8545");
        assert!(verify.get_ref().chain_source().is_ok());
        // Refused at its place: a URL that is not http(s), an address that is not one, a key
        // nobody reads.
        let bad = with(r#"{ rpc_url = "ws://127.0.0.1:8545" }"#);
        assert!(
            error(&bad).starts_with("agent.toml:6:20: verify_addresses:"),
            "{}",
            error(&bad)
        );
        let bad = with(r#"{ rpc_url = "http://127.0.0.1:8545", controller = "0x12" }"#);
        assert!(error(&bad).contains("controller"), "{}", error(&bad));
        let bad = with(r#"{ rpc_url = "http://127.0.0.1:8545", registry = "ai" }"#);
        assert!(
            error(&bad).contains("unknown field `registry`"),
            "{}",
            error(&bad)
        );
        // It changes on reload, as refuse_changed_certificates does.
        let before = AgentConfig::parse(GOOD, "agent.toml").unwrap();
        assert_eq!(before.reload_refusal(&config), None);
    }

    #[test]
    fn a_payment_budget_needs_a_remote_signer() {
        let budget = GOOD.replace(
            "max_concurrent_sessions = 20",
            "max_concurrent_sessions = 20\nmax_payment_wei_per_day = 1000",
        );
        let message = error(&budget);
        assert!(
            message.contains(
                "max_payment_wei_per_day limits on-chain payments: it needs remote_signer"
            ),
            "{message}"
        );
        let paid = budget.replace(
            "admin_listen = \"127.0.0.1:9464\"",
            "admin_listen = \"127.0.0.1:9464\"\nremote_signer = \"http://127.0.0.1:7936\"",
        );
        let config = AgentConfig::parse(&paid, "agent.toml").unwrap();
        assert_eq!(
            config.budget.max_payment_wei_per_day.map(|w| *w.get_ref()),
            Some(1000)
        );
        let bad = paid.replace("http://127.0.0.1:7936", "127.0.0.1:7936");
        assert!(
            error(&bad).starts_with("agent.toml:6:17: remote_signer \"127.0.0.1:7936\" is not"),
            "{}",
            error(&bad)
        );
        let negative = paid.replace("= 1000", "= -1");
        assert!(
            error(&negative).starts_with("agent.toml:25:27: invalid value: integer `-1`"),
            "{}",
            error(&negative)
        );
        // The signer and the payment budget are fixed for the process.
        let before = AgentConfig::parse(&paid, "agent.toml").unwrap();
        let after = AgentConfig::parse(&paid.replace("= 1000", "= 2000"), "agent.toml").unwrap();
        assert!(before.reload_refusal(&after).is_some());
    }
}
