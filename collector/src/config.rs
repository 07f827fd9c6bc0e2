//! The collector's configuration: the `--store` spec and the TOML settings file.
//!
//! The file names the agents allowed to ship results (by public key), the replay window, the body
//! limit and the retention. Loading resolves every agent key so that a bad key is reported at
//! start with the file and line it came from, never at the first request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lvt_schema::sign;
use serde::Deserialize;

use crate::store::sqlite::SqliteConfig;
use crate::verify::TimeBounds;

/// The settings file (`--config FILE`), TOML.
///
/// Example:
///
/// ```toml
/// timestamp_window_s = 300
/// max_body_bytes = 5242880
/// retention_days = 90
///
/// [[agents]]
/// id = "eu-west-1"
/// region = "eu-west"
/// public_key = "lvt-ed25519 BASE64 key_id=HEX"
///
/// [[agents]]
/// id = "us-east-1"
/// public_key_file = "keys/us-east-1.pub"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    /// The agents allowed to ship results. A batch signed by any other key is refused (403).
    #[serde(default)]
    pub agents: Vec<AgentFileEntry>,
    /// How far (in seconds, either way) a batch's signed timestamp may be from the collector's
    /// clock. Nonces are remembered for this long, so a replay is refused either as stale or as
    /// a reused nonce. Default 300 (5 minutes).
    #[serde(default = "default_timestamp_window_s")]
    pub timestamp_window_s: u64,
    /// The largest request body accepted, in bytes; larger bodies are refused (413) without
    /// reading more than this much. Default 5 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Results whose session ended more than this many days ago are deleted by a periodic sweep.
    /// Default 90.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// The Kafka consumer ([`KafkaConfig`]); absent means the collector reads no Kafka topic.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// How gateway events become organic sessions ([`OrganicConfig`]).
    #[serde(default)]
    pub organic: OrganicConfig,
}

/// The `[organic]` table of the settings file: how go-livepeer gateway events are folded into
/// organic-load sessions (see docs/sla.md, "Organic load").
///
/// ```toml
/// [organic]
/// test_gateways = ["staging-gateway"]
/// idle_timeout_s = 120
/// replay_window_s = 7200
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganicConfig {
    /// Gateways whose events describe test load and never become organic sessions, besides
    /// every configured agent's own gateway (`lvt-<key id>`), which is always test load.
    #[serde(default)]
    pub test_gateways: Vec<String>,
    /// A stream with no event for this long is finished as it stands, in seconds. Default 120.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: u64,
    /// At start, the stored events of this many past seconds (by envelope timestamp) are folded
    /// again, so that streams open when the collector stopped go on. 0 turns the replay off.
    /// Default 7200.
    #[serde(default = "default_replay_window_s")]
    pub replay_window_s: u64,
}

fn default_replay_window_s() -> u64 {
    7_200
}

/// The longest organic replay window: a week.
const MAX_REPLAY_WINDOW_S: u64 = 7 * 86_400;

impl Default for OrganicConfig {
    fn default() -> Self {
        Self {
            test_gateways: Vec::new(),
            idle_timeout_s: default_idle_timeout_s(),
            replay_window_s: default_replay_window_s(),
        }
    }
}

fn default_idle_timeout_s() -> u64 {
    u64::try_from(crate::organic::DEFAULT_IDLE_TIMEOUT_MS / 1000).unwrap_or(120)
}

impl OrganicConfig {
    fn validate(&self) -> Result<(), String> {
        if self.idle_timeout_s == 0 || self.idle_timeout_s > 86_400 {
            return Err(format!(
                "[organic] idle_timeout_s must be between 1 and 86400, not {}",
                self.idle_timeout_s
            ));
        }
        if self.replay_window_s > MAX_REPLAY_WINDOW_S {
            return Err(format!(
                "[organic] replay_window_s must be at most {MAX_REPLAY_WINDOW_S} (a week), not {}",
                self.replay_window_s
            ));
        }
        if self.test_gateways.iter().any(|name| name.trim().is_empty()) {
            return Err("[organic] test_gateways must not name an empty gateway".to_owned());
        }
        Ok(())
    }
}

/// The `[kafka]` table of the settings file: where the collector consumes result batches and
/// go-livepeer events from (see docs/collector.md, "Kafka ingest").
///
/// ```toml
/// [kafka]
/// brokers = "127.0.0.1:9092"
/// group_id = "lvt-collector"
/// results_topic = "lvt-results"
/// events_topic = "livepeer-events"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// The bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The consumer group; every collector of one deployment shares it so that each message is
    /// stored by one of them. Default `lvt-collector`.
    #[serde(default = "default_kafka_group_id")]
    pub group_id: String,
    /// The topic of signed result batches, when results are consumed.
    #[serde(default)]
    pub results_topic: Option<String>,
    /// The topic go-livepeer publishes its analytics events to, when events are consumed.
    #[serde(default)]
    pub events_topic: Option<String>,
    /// This collector's static membership id in the group (Kafka's `group.instance.id`): a
    /// collector restarted with the same id takes its own partitions back at once, even after a
    /// `kill -9`, instead of waiting for the broker to expire the dead member. Unique per
    /// replica and stable across its restarts; absent means dynamic membership.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Kafka's `session.timeout.ms`, in seconds: how long the group waits for a replica that
    /// stopped answering, and how long a broker may hang before the replicas' sessions end.
    /// 6 to 1800 (the brokers' default bounds); absent means 10.
    #[serde(default)]
    pub session_timeout_s: Option<u64>,
}

fn default_kafka_group_id() -> String {
    "lvt-collector".to_owned()
}

impl KafkaConfig {
    /// Checks what the consumer cannot start without: brokers, a group and at least one topic,
    /// and two distinct topics when both are set (a message is read as one kind only).
    fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("[kafka] brokers must name at least one broker".to_owned());
        }
        if self.group_id.trim().is_empty() {
            return Err("[kafka] group_id must not be empty".to_owned());
        }
        if self
            .instance_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err("[kafka] instance_id must not be empty when set".to_owned());
        }
        if let Some(seconds) = self.session_timeout_s
            && !(6..=1800).contains(&seconds)
        {
            return Err(format!(
                "[kafka] session_timeout_s is {seconds}; it must be 6 to 1800 seconds"
            ));
        }
        let topics = [&self.results_topic, &self.events_topic];
        if topics
            .iter()
            .any(|topic| topic.as_deref().is_some_and(|t| t.trim().is_empty()))
        {
            return Err("[kafka] topic names must not be empty".to_owned());
        }
        match (&self.results_topic, &self.events_topic) {
            (None, None) => Err("[kafka] needs results_topic, events_topic or both".to_owned()),
            (Some(results), Some(events)) if results == events => Err(format!(
                "[kafka] results_topic and events_topic are both {results:?}; they must differ"
            )),
            _ => Ok(()),
        }
    }
}

/// One `[[agents]]` entry of the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFileEntry {
    /// A unique name for the agent, shown in `/v1/agents` and stored with its results.
    pub id: String,
    /// The agent's region label, for example `eu-west`.
    #[serde(default)]
    pub region: Option<String>,
    /// The agent's public key as the one line of its `.pub` file
    /// (`lvt-ed25519 BASE64 key_id=HEX`, written by `lvt keygen`).
    #[serde(default)]
    pub public_key: Option<toml::Spanned<String>>,
    /// A path to the agent's `.pub` file instead of `public_key`; relative paths are read from
    /// the directory of the settings file.
    #[serde(default)]
    pub public_key_file: Option<toml::Spanned<PathBuf>>,
}

fn default_timestamp_window_s() -> u64 {
    300
}

fn default_max_body_bytes() -> usize {
    5 * 1024 * 1024
}

fn default_retention_days() -> u32 {
    90
}

impl Default for SettingsFile {
    fn default() -> Self {
        Self {
            agents: Vec::new(),
            timestamp_window_s: default_timestamp_window_s(),
            max_body_bytes: default_max_body_bytes(),
            retention_days: default_retention_days(),
            kafka: None,
            organic: OrganicConfig::default(),
        }
    }
}

/// An agent with its key resolved: the signature checks' own type, named here too because the
/// settings file is where agents come from.
pub use crate::verify::Agent;

/// The resolved settings the server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The known agents, in file order.
    pub agents: Vec<Agent>,
    /// The accepted timestamp distance, in milliseconds.
    pub timestamp_window_ms: u64,
    /// The body limit, in bytes.
    pub max_body_bytes: usize,
    /// The retention, in days.
    pub retention_days: u32,
    /// The Kafka consumer, when one is configured.
    pub kafka: Option<KafkaConfig>,
    /// The organic-load fold's settings.
    pub organic: OrganicConfig,
}

impl Default for Settings {
    fn default() -> Self {
        // An empty file resolves without touching the file system, so this cannot fail.
        Self::resolve(SettingsFile::default(), "", Path::new(".")).unwrap_or(Self {
            agents: Vec::new(),
            timestamp_window_ms: default_timestamp_window_s() * 1000,
            max_body_bytes: default_max_body_bytes(),
            retention_days: default_retention_days(),
            kafka: None,
            organic: OrganicConfig::default(),
        })
    }
}

/// Where results are stored (`--store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `sqlite:PATH`: an SQLite database file.
    Sqlite(SqliteConfig),
    /// `clickhouse:URL`: a ClickHouse server over HTTP (docs/collector.md, "ClickHouse backend").
    ClickHouse(String),
}

impl std::str::FromStr for StoreSpec {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(ConfigError::StoreSpec(text.to_owned()));
            }
            return Ok(Self::Sqlite(SqliteConfig::new(PathBuf::from(path))));
        }
        if let Some(url) = text.strip_prefix("clickhouse:") {
            return Ok(Self::ClickHouse(url.to_owned()));
        }
        Err(ConfigError::StoreSpec(text.to_owned()))
    }
}

/// The whole configuration of one collector process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Where results are stored.
    pub store: StoreSpec,
    /// The resolved settings.
    pub settings: Settings,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The settings file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The settings file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The settings file is not valid TOML or has unknown or mistyped keys.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The settings file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// An agent entry is invalid (bad key, duplicate id or key, no key).
    #[error("{}:{line}: agent {agent:?}: {message}", path.display())]
    Agent {
        /// The settings file.
        path: PathBuf,
        /// 1-based line of the offending entry.
        line: usize,
        /// The agent id.
        agent: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("{}: {message}", path.display())]
    Value {
        /// The settings file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `--store` is neither `sqlite:PATH` nor `clickhouse:URL`.
    #[error("store {0:?} is neither sqlite:PATH nor clickhouse:URL")]
    StoreSpec(String),
}

impl Settings {
    /// When a stored record may have ended, at `now_ms`: no later than the signed-timestamp skew
    /// allowed after now, no earlier than the retention before it.
    pub fn time_bounds(&self, now_ms: i64) -> TimeBounds {
        TimeBounds {
            now_ms,
            skew_ms: i64::try_from(self.timestamp_window_ms).unwrap_or(i64::MAX),
            retention_ms: i64::from(self.retention_days) * 86_400_000,
        }
    }

    /// Reads and resolves a settings file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and resolves the text of a settings file; `path` names it in errors and anchors
    /// relative `public_key_file` paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: SettingsFile = toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: error.message().to_owned(),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::resolve(file, text, base).map_err(|error| error.with_path(path))
    }

    /// Resolves agent keys; errors carry an empty path that [`Settings::parse`] fills in.
    fn resolve(file: SettingsFile, text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut agents: Vec<Agent> = Vec::with_capacity(file.agents.len());
        let mut by_key: HashMap<String, String> = HashMap::new();
        for entry in file.agents {
            let agent_error = |span_start: usize, message: String| ConfigError::Agent {
                path: PathBuf::new(),
                line: line_column(text, span_start).0,
                agent: entry.id.clone(),
                message,
            };
            let public_key = match (&entry.public_key, &entry.public_key_file) {
                (Some(line), None) => sign::parse_verifying_key(line.get_ref())
                    .map_err(|error| agent_error(line.span().start, error.to_string()))?,
                (None, Some(file_path)) => {
                    let full = base.join(file_path.get_ref());
                    sign::read_verifying_key(&full)
                        .map_err(|error| agent_error(file_path.span().start, error.to_string()))?
                }
                (Some(line), Some(_)) => {
                    return Err(agent_error(
                        line.span().start,
                        "set either public_key or public_key_file, not both".to_owned(),
                    ));
                }
                (None, None) => {
                    // Without a span for the entry itself, point at the first occurrence of its
                    // id, which is where a reader would look.
                    let at = text.find(&format!("\"{}\"", entry.id)).unwrap_or(0);
                    return Err(agent_error(
                        at,
                        "needs public_key or public_key_file".to_owned(),
                    ));
                }
            };
            let key_id = sign::key_id(&public_key);
            let at = entry
                .public_key
                .as_ref()
                .map(|s| s.span().start)
                .or(entry.public_key_file.as_ref().map(|s| s.span().start))
                .unwrap_or(0);
            if agents.iter().any(|agent| agent.id == entry.id) {
                return Err(agent_error(
                    at,
                    "the id is used by another agent".to_owned(),
                ));
            }
            if let Some(other) = by_key.insert(key_id.clone(), entry.id.clone()) {
                return Err(agent_error(
                    at,
                    format!("the key {key_id} is already the key of agent {other:?}"),
                ));
            }
            agents.push(Agent {
                id: entry.id.clone(),
                region: entry.region.clone(),
                public_key,
                key_id,
            });
        }
        if file.max_body_bytes == 0 {
            return Err(ConfigError::Value {
                path: PathBuf::new(),
                message: "max_body_bytes must be positive".to_owned(),
            });
        }
        file.organic
            .validate()
            .map_err(|message| ConfigError::Value {
                path: PathBuf::new(),
                message,
            })?;
        if let Some(kafka) = &file.kafka {
            kafka.validate().map_err(|message| ConfigError::Value {
                path: PathBuf::new(),
                message,
            })?;
        }
        Ok(Self {
            agents,
            timestamp_window_ms: file.timestamp_window_s.saturating_mul(1000),
            max_body_bytes: file.max_body_bytes,
            retention_days: file.retention_days,
            kafka: file.kafka,
            organic: file.organic,
        })
    }
}

impl ConfigError {
    fn with_path(self, file: &Path) -> Self {
        match self {
            Self::Agent {
                line,
                agent,
                message,
                ..
            } => Self::Agent {
                path: file.to_owned(),
                line,
                agent,
                message,
            },
            Self::Value { message, .. } => Self::Value {
                path: file.to_owned(),
                message,
            },
            other => other,
        }
    }
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_line(seed: u8) -> String {
        let key = sign::SigningKey::from_bytes(&[seed; 32]);
        sign::public_key_line(&key.verifying_key())
            .trim()
            .to_owned()
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let settings = Settings::parse("", Path::new("c.toml")).expect("empty file is valid");
        assert_eq!(settings.timestamp_window_ms, 300_000);
        assert_eq!(settings.max_body_bytes, 5 * 1024 * 1024);
        assert_eq!(settings.retention_days, 90);
        assert!(settings.agents.is_empty());
    }

    #[test]
    fn agents_resolve_inline_and_file_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("b.pub"), key_line(2)).expect("write key");
        let text = format!(
            "[[agents]]\nid = \"a\"\nregion = \"eu\"\npublic_key = \"{}\"\n\n[[agents]]\nid = \"b\"\npublic_key_file = \"b.pub\"\n",
            key_line(1)
        );
        let settings = Settings::parse(&text, &dir.path().join("c.toml")).expect("valid");
        assert_eq!(settings.agents.len(), 2);
        assert_eq!(settings.agents[0].region.as_deref(), Some("eu"));
        assert_eq!(
            settings.agents[1].key_id,
            sign::key_id(&sign::SigningKey::from_bytes(&[2; 32]).verifying_key())
        );
    }

    #[test]
    fn unknown_key_reports_file_and_line() {
        let error = Settings::parse("retention_days = 3\nbogus = 1\n", Path::new("c.toml"))
            .expect_err("unknown key");
        let text = error.to_string();
        assert!(text.starts_with("c.toml:2:"), "{text}");
        assert!(text.contains("bogus"), "{text}");
    }

    #[test]
    fn bad_public_key_reports_its_line() {
        let text = "[[agents]]\nid = \"a\"\npublic_key = \"lvt-ed25519 notbase64\"\n";
        let error = Settings::parse(text, Path::new("c.toml")).expect_err("bad key");
        assert!(
            error.to_string().starts_with("c.toml:3: agent \"a\""),
            "{error}"
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let text = format!(
            "[[agents]]\nid = \"a\"\npublic_key = \"{k}\"\n[[agents]]\nid = \"b\"\npublic_key = \"{k}\"\n",
            k = key_line(1)
        );
        let error = Settings::parse(&text, Path::new("c.toml")).expect_err("duplicate");
        assert!(error.to_string().contains("already the key"), "{error}");
    }

    #[test]
    fn kafka_table_parses_with_defaults() {
        let text = "[kafka]\nbrokers = \"127.0.0.1:9092\"\nevents_topic = \"livepeer-events\"\n";
        let settings = Settings::parse(text, Path::new("c.toml")).expect("valid");
        assert_eq!(
            settings.kafka,
            Some(KafkaConfig {
                brokers: "127.0.0.1:9092".to_owned(),
                group_id: "lvt-collector".to_owned(),
                results_topic: None,
                events_topic: Some("livepeer-events".to_owned()),
                instance_id: None,
                session_timeout_s: None,
            })
        );
        assert_eq!(Settings::default().kafka, None);
    }

    #[test]
    fn organic_table_names_test_gateways_and_the_idle_timeout() {
        let text = "[organic]\ntest_gateways = [\"staging\", \"canary\"]\nidle_timeout_s = 30\n";
        let settings = Settings::parse(text, Path::new("c.toml")).expect("valid");
        assert_eq!(
            settings.organic,
            OrganicConfig {
                test_gateways: vec!["staging".to_owned(), "canary".to_owned()],
                idle_timeout_s: 30,
                replay_window_s: 7_200,
            }
        );
        assert_eq!(Settings::default().organic.idle_timeout_s, 120);
        assert!(Settings::default().organic.test_gateways.is_empty());
        let refused = |text: &str| {
            Settings::parse(text, Path::new("c.toml"))
                .expect_err("invalid [organic]")
                .to_string()
        };
        assert_eq!(
            refused("[organic]\nidle_timeout_s = 0\n"),
            "c.toml: [organic] idle_timeout_s must be between 1 and 86400, not 0"
        );
        assert!(refused("[organic]\ntest_gateways = [\" \"]\n").contains("empty gateway"));
        assert!(refused("[organic]\nreplay_window_s = 604801\n").contains("at most 604800"));
        let off = Settings::parse("[organic]\nreplay_window_s = 0\n", Path::new("c.toml"));
        assert_eq!(off.expect("valid").organic.replay_window_s, 0);
        assert!(refused("[organic]\nidle_timeout = 5\n").starts_with("c.toml:2:"));
    }

    #[test]
    fn bad_kafka_tables_are_refused_with_the_reason() {
        let refused = |text: &str| {
            Settings::parse(text, Path::new("c.toml"))
                .expect_err("invalid [kafka]")
                .to_string()
        };
        assert!(refused("[kafka]\nbrokers = \"b:9092\"\n").contains("needs results_topic"));
        assert!(
            refused("[kafka]\nbrokers = \"b:1\"\nresults_topic = \"t\"\ninstance_id = \" \"\n")
                .contains("instance_id")
        );
        assert!(
            refused("[kafka]\nbrokers = \"b:1\"\nresults_topic = \"t\"\nsession_timeout_s = 5\n")
                .contains("session_timeout_s is 5; it must be 6 to 1800")
        );
        assert!(refused("[kafka]\nbrokers = \" \"\nresults_topic = \"r\"\n").contains("brokers"));
        assert!(
            refused("[kafka]\nbrokers = \"b:1\"\nresults_topic = \"t\"\nevents_topic = \"t\"\n")
                .contains("must differ")
        );
        assert!(refused("[kafka]\nbroker = \"b:1\"\n").starts_with("c.toml:2:"));
    }

    #[test]
    fn store_specs_parse() {
        assert_eq!(
            "sqlite:/tmp/x.db".parse::<StoreSpec>().expect("sqlite"),
            StoreSpec::Sqlite(SqliteConfig::new(PathBuf::from("/tmp/x.db")))
        );
        assert!(matches!(
            "clickhouse:http://h:8123".parse::<StoreSpec>(),
            Ok(StoreSpec::ClickHouse(_))
        ));
        assert!("postgres:x".parse::<StoreSpec>().is_err());
        assert!("sqlite:".parse::<StoreSpec>().is_err());
    }
}
