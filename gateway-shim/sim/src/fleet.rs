//! Fleet files: several simulated orchestrators started together, each with its identity
//! (name, eth address, GPU, models) and a behaviour [`Profile`].
//!
//! ```toml
//! status_interval_s = 10      # status events period, seconds (default 10)
//! plaintext = false           # serve http:// instead of self-signed https:// (default false)
//!
//! [[orchestrator]]
//! name = "good"
//! port = 0                    # 0 = any free port
//! profile = "good"            # a built-in name, or an inline table { latency_ms = 40, ... }
//! gpu = { name = "NVIDIA GeForce RTX 4090", memory_gb = 24 }
//! models = ["noop", "streamdiffusion"]
//! # eth_address = "0x..."     # default: derived from the name and the profile seed
//! # ticket = { face_value_wei = 2000000000000, win_prob = 0.5 }  # what on-chain tickets are worth
//! ```
//!
//! This module is plain data plus validation; [`super::start_fleet`] turns it into servers.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};

use super::profile::{Profile, ProfileError, parse_error};

/// A fleet of simulated orchestrators, as read from a fleet TOML file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Seconds between two `status` events of a session (ai-runner reports every 10 s).
    #[serde(default = "default_status_interval_s")]
    pub status_interval_s: f64,
    /// Serve plain `http://` instead of TLS with a self-signed certificate.
    #[serde(default)]
    pub plaintext: bool,
    /// Host name or IP the orchestrators put in the URIs they hand out (service URI, trickle
    /// URLs). Default: the address they listen on, or 127.0.0.1 when that is 0.0.0.0.
    #[serde(default)]
    pub advertise_host: Option<String>,
    /// The orchestrators, one `[[orchestrator]]` table each.
    #[serde(default, rename = "orchestrator")]
    pub orchestrators: Vec<OrchestratorEntry>,
}

/// One `[[orchestrator]]` table of a fleet file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorEntry {
    /// A unique name, shown in listings and used to derive the default eth address.
    pub name: String,
    /// TCP port to listen on; 0 picks any free port.
    #[serde(default)]
    pub port: u16,
    /// The behaviour: a built-in profile name (`good`, `slow`, `flaky`, `busy`) or an inline
    /// profile table.
    pub profile: ProfileRef,
    /// The GPU the orchestrator claims to have (reported in GetOrchestrator's hardware info).
    #[serde(default)]
    pub gpu: GpuConfig,
    /// Live video-to-video models it advertises as warm.
    #[serde(default = "default_models")]
    pub models: Vec<String>,
    /// Its eth address (`0x` + 40 hex digits). Default: derived from the name and the seed.
    #[serde(default)]
    pub eth_address: Option<String>,
    /// The ticket parameters it hands out for on-chain payments. Default: a face value of
    /// 1 wei and the smallest win probability, so a payment is worth nothing.
    #[serde(default)]
    pub ticket: Option<TicketEntry>,
}

/// A `ticket = { ... }` table: what each ticket pays if it wins, and its chance of winning.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketEntry {
    /// The face value in wei.
    pub face_value_wei: u64,
    /// The chance that a ticket wins, above 0 and at most 1.
    pub win_prob: f64,
}

/// The ticket parameters a simulated orchestrator hands out, as they go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketTerms {
    /// Big-endian face value in wei.
    pub face_value: Vec<u8>,
    /// Big-endian win probability, out of `2^256 - 1`.
    pub win_prob: Vec<u8>,
}

impl Default for TicketTerms {
    /// 1 wei at a chance of 1 in `2^256 - 1`: well-formed tickets worth nothing.
    fn default() -> Self {
        Self {
            face_value: vec![0x01],
            win_prob: vec![0x01],
        }
    }
}

impl TicketTerms {
    /// Tickets of `face_value_wei` that win with `probability` (0 to 1): each is worth
    /// `face_value_wei × probability` wei.
    pub fn new(face_value_wei: u128, probability: f64) -> Self {
        let bytes = face_value_wei.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        Self {
            face_value: bytes[first..].to_vec(),
            win_prob: lvt_wire::payment::value::win_prob_bytes(probability),
        }
    }
}

/// A profile given by built-in name or inline.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileRef {
    Builtin(String),
    Inline(Box<Profile>),
}

impl ProfileRef {
    /// The profile itself.
    pub fn resolve(&self) -> Result<Profile, ProfileError> {
        match self {
            ProfileRef::Builtin(name) => Profile::builtin(name),
            ProfileRef::Inline(profile) => Ok((**profile).clone()),
        }
    }

    /// A short label: the built-in name or `inline`.
    pub fn label(&self) -> &str {
        match self {
            ProfileRef::Builtin(name) => name,
            ProfileRef::Inline(_) => "inline",
        }
    }
}

impl<'de> Deserialize<'de> for ProfileRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A hand-written visitor rather than `#[serde(untagged)]`, so that an unknown key in an
        // inline table is reported as such (with its position) instead of "did not match".
        struct RefVisitor;
        impl<'de> Visitor<'de> for RefVisitor {
            type Value = ProfileRef;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a built-in profile name (good, slow, flaky, busy) or a profile table")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<ProfileRef, E> {
                Profile::builtin(name)
                    .map(|_| ProfileRef::Builtin(name.to_string()))
                    .map_err(E::custom)
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<ProfileRef, M::Error> {
                Profile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|p| ProfileRef::Inline(Box::new(p)))
            }
        }
        deserializer.deserialize_any(RefVisitor)
    }
}

/// The GPU an orchestrator reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// Marketing name, e.g. "NVIDIA GeForce RTX 4090".
    pub name: String,
    /// Memory in GiB.
    pub memory_gb: u32,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            name: "NVIDIA GeForce RTX 4090".into(),
            memory_gb: 24,
        }
    }
}

impl GpuConfig {
    /// Total memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_gb) << 30
    }

    /// CUDA compute capability `(major, minor)` of well-known cards, 8.6 otherwise.
    pub fn compute_capability(&self) -> (u32, u32) {
        let name = self.name.to_ascii_lowercase();
        let known: [(&str, (u32, u32)); 9] = [
            ("4090", (8, 9)),
            ("4080", (8, 9)),
            ("l4", (8, 9)),
            ("l40", (8, 9)),
            ("h100", (9, 0)),
            ("a100", (8, 0)),
            ("t4", (7, 5)),
            ("3090", (8, 6)),
            ("a5000", (8, 6)),
        ];
        known
            .iter()
            .find(|(key, _)| name.split_whitespace().any(|w| w == *key))
            .map(|(_, cc)| *cc)
            .unwrap_or((8, 6))
    }
}

/// Why a fleet file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax, unknown keys, wrong types; the message starts with `file:line:column`.
    #[error(transparent)]
    Parse(ProfileError),
    /// An inline profile is invalid.
    #[error("{origin}: orchestrator `{name}`: {source}")]
    Profile {
        origin: String,
        name: String,
        #[source]
        source: ProfileError,
    },
    /// The values parse but make no sense together.
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

fn default_status_interval_s() -> f64 {
    10.0
}

fn default_models() -> Vec<String> {
    vec!["noop".into(), "streamdiffusion".into()]
}

impl FleetConfig {
    /// The built-in fleet: `good`, `slow`, `flaky` and `busy`, each with its own GPU.
    pub fn builtin() -> FleetConfig {
        let entry = |name: &str, gpu: &str, memory_gb: u32| OrchestratorEntry {
            name: name.into(),
            port: 0,
            profile: ProfileRef::Builtin(name.into()),
            gpu: GpuConfig {
                name: gpu.into(),
                memory_gb,
            },
            models: default_models(),
            eth_address: None,
            ticket: None,
        };
        FleetConfig {
            status_interval_s: default_status_interval_s(),
            plaintext: false,
            advertise_host: None,
            orchestrators: vec![
                entry("good", "NVIDIA GeForce RTX 4090", 24),
                entry("slow", "NVIDIA RTX A5000", 24),
                entry("flaky", "NVIDIA L4", 24),
                entry("busy", "Tesla T4", 16),
            ],
        }
    }

    /// Reads and validates a fleet file.
    pub fn from_file(path: &Path) -> Result<FleetConfig, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|source| FleetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        FleetConfig::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates fleet TOML; `origin` names the text in error messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<FleetConfig, FleetError> {
        let fleet: FleetConfig =
            toml::from_str(text).map_err(|e| FleetError::Parse(parse_error(origin, text, &e)))?;
        fleet.validate(origin)?;
        Ok(fleet)
    }

    /// Checks names, ports, addresses, models and inline profiles.
    pub fn validate(&self, origin: &str) -> Result<(), FleetError> {
        let invalid = |message: String| FleetError::Invalid {
            origin: origin.to_string(),
            message,
        };
        if !(self.status_interval_s.is_finite() && self.status_interval_s > 0.0) {
            return Err(invalid(format!(
                "`status_interval_s` must be a positive number of seconds, not {}",
                self.status_interval_s
            )));
        }
        if self
            .advertise_host
            .as_deref()
            .is_some_and(|h| h.trim().is_empty() || h.contains(['/', ' ']))
        {
            return Err(invalid(
                "`advertise_host` must be a bare host name or IP address".to_string(),
            ));
        }
        if self.orchestrators.is_empty() {
            return Err(invalid(
                "the fleet has no `[[orchestrator]]` table".to_string(),
            ));
        }
        let mut names = HashSet::new();
        let mut ports = HashSet::new();
        for entry in &self.orchestrators {
            if entry.name.trim().is_empty() {
                return Err(invalid("an orchestrator has an empty `name`".into()));
            }
            if !names.insert(entry.name.as_str()) {
                return Err(invalid(format!(
                    "two orchestrators are named `{}`",
                    entry.name
                )));
            }
            if entry.port != 0 && !ports.insert(entry.port) {
                return Err(invalid(format!(
                    "port {} is used by two orchestrators",
                    entry.port
                )));
            }
            if entry.models.is_empty() || entry.models.iter().any(|m| m.trim().is_empty()) {
                return Err(invalid(format!(
                    "orchestrator `{}` needs at least one non-empty model id in `models`",
                    entry.name
                )));
            }
            if let Some(ticket) = &entry.ticket
                && !(ticket.win_prob > 0.0 && ticket.win_prob <= 1.0)
            {
                return Err(invalid(format!(
                    "orchestrator `{}`: `ticket.win_prob` must be above 0 and at most 1, not {}",
                    entry.name, ticket.win_prob
                )));
            }
            if let Some(addr) = &entry.eth_address {
                parse_eth_address(addr).map_err(|message| {
                    invalid(format!("orchestrator `{}`: {message}", entry.name))
                })?;
            }
            let profile = entry
                .profile
                .resolve()
                .map_err(|source| FleetError::Profile {
                    origin: origin.to_string(),
                    name: entry.name.clone(),
                    source,
                })?;
            profile
                .validate(&format!("orchestrator `{}`", entry.name))
                .map_err(|source| FleetError::Profile {
                    origin: origin.to_string(),
                    name: entry.name.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// The runtime configuration of every orchestrator, with its port.
    pub fn orchestrator_configs(&self) -> Result<Vec<(OrchestratorConfig, u16)>, FleetError> {
        self.orchestrators
            .iter()
            .map(|entry| {
                let profile = entry
                    .profile
                    .resolve()
                    .map_err(|source| FleetError::Profile {
                        origin: "fleet".into(),
                        name: entry.name.clone(),
                        source,
                    })?;
                let eth_address = match &entry.eth_address {
                    Some(text) => {
                        parse_eth_address(text).map_err(|message| FleetError::Invalid {
                            origin: "fleet".into(),
                            message: format!("orchestrator `{}`: {message}", entry.name),
                        })?
                    }
                    None => derive_eth_address(&entry.name, profile.seed),
                };
                let mut cfg = OrchestratorConfig::new(&entry.name, profile);
                cfg.profile_label = entry.profile.label().to_string();
                cfg.gpu = entry.gpu.clone();
                cfg.models = entry.models.clone();
                cfg.eth_address = eth_address;
                if let Some(ticket) = entry.ticket {
                    cfg.ticket =
                        TicketTerms::new(u128::from(ticket.face_value_wei), ticket.win_prob);
                }
                cfg.status_interval = Duration::from_secs_f64(self.status_interval_s);
                cfg.plaintext = self.plaintext;
                cfg.advertise_host = self.advertise_host.clone();
                Ok((cfg, entry.port))
            })
            .collect()
    }
}

/// Everything one running simulated orchestrator needs.
#[derive(Debug, Clone, PartialEq)]
pub struct OrchestratorConfig {
    pub name: String,
    /// How the profile was given (built-in name, `inline`, or a file path), for listings.
    pub profile_label: String,
    pub profile: Profile,
    pub gpu: GpuConfig,
    pub models: Vec<String>,
    pub eth_address: [u8; 20],
    /// Period of `status` events.
    pub status_interval: Duration,
    /// Serve `http://` instead of self-signed `https://`.
    pub plaintext: bool,
    /// Host name put into the URIs it advertises; default the listener's IP (127.0.0.1 when it
    /// listens on all interfaces).
    pub advertise_host: Option<String>,
    /// A session ends when its input channel saw no write for this long (go-livepeer: 5 min).
    pub idle_timeout: Duration,
    /// How often idle channels are looked for.
    pub sweep_interval: Duration,
    /// Secret of the auth tokens it mints. Default: derived from the profile seed and the name,
    /// so runs repeat; set it to mint tokens elsewhere (tests mint expired ones).
    pub auth_secret: Option<[u8; 32]>,
    /// The ticket parameters in its `OrchestratorInfo`.
    pub ticket: TicketTerms,
}

impl OrchestratorConfig {
    /// Defaults for everything but the name and the profile; the eth address is derived.
    pub fn new(name: &str, profile: Profile) -> Self {
        Self {
            name: name.to_string(),
            profile_label: "custom".into(),
            eth_address: derive_eth_address(name, profile.seed),
            profile,
            gpu: GpuConfig::default(),
            models: default_models(),
            status_interval: Duration::from_secs(10),
            plaintext: false,
            advertise_host: None,
            idle_timeout: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(60),
            auth_secret: None,
            ticket: TicketTerms::default(),
        }
    }
}

/// A deterministic address: the last 20 bytes of `keccak256("lvt-sim:{name}:{seed}")`.
pub fn derive_eth_address(name: &str, seed: u64) -> [u8; 20] {
    let digest = Keccak256::digest(format!("lvt-sim:{name}:{seed}").as_bytes());
    let mut addr = [0u8; 20];
    addr.copy_from_slice(&digest[12..]);
    addr
}

/// Parses `0x` + 40 hex digits (any case; the EIP-55 checksum is not enforced).
pub fn parse_eth_address(text: &str) -> Result<[u8; 20], String> {
    let hex_part = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .ok_or_else(|| format!("eth address `{text}` must start with 0x"))?;
    let bytes =
        hex::decode(hex_part).map_err(|_| format!("eth address `{text}` is not hexadecimal"))?;
    bytes
        .try_into()
        .map_err(|_| format!("eth address `{text}` must have 40 hex digits (20 bytes)"))
}

/// The EIP-55 checksummed form, `0x` + mixed-case hex, as go-livepeer prints addresses.
pub fn format_eth_address(addr: &[u8; 20]) -> String {
    let lower = hex::encode(addr);
    let hash = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        if c.is_ascii_alphabetic() && nibble >= 8 {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_fleet_is_valid_and_distinct() {
        let fleet = FleetConfig::builtin();
        fleet.validate("builtin").unwrap();
        let configs = fleet.orchestrator_configs().unwrap();
        let names: Vec<_> = configs.iter().map(|(c, _)| c.name.as_str()).collect();
        assert_eq!(names, ["good", "slow", "flaky", "busy"]);
        let gpus: HashSet<_> = configs.iter().map(|(c, _)| c.gpu.name.clone()).collect();
        assert_eq!(gpus.len(), 4);
        let addrs: HashSet<_> = configs.iter().map(|(c, _)| c.eth_address).collect();
        assert_eq!(addrs.len(), 4);
        assert_eq!(configs[3].0.profile.capacity, 0);
        assert_eq!(configs[0].0.models, ["noop", "streamdiffusion"]);
    }

    #[test]
    fn fleet_file_with_inline_profile_and_address() {
        let text = r#"
status_interval_s = 2
plaintext = true
advertise_host = "sim.example"

[[orchestrator]]
name = "a"
port = 9935
profile = "slow"

[[orchestrator]]
name = "b"
profile = { latency_ms = 5, fps = 10, seed = 3 }
gpu = { name = "Tesla T4", memory_gb = 16 }
models = ["noop"]
eth_address = "0x00000000000000000000000000000000000000aA"
"#;
        let fleet = FleetConfig::from_toml_str(text, "fleet.toml").unwrap();
        let configs = fleet.orchestrator_configs().unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[0].1, 9935);
        assert_eq!(configs[0].0.profile, Profile::builtin("slow").unwrap());
        assert_eq!(configs[0].0.profile_label, "slow");
        assert!(configs[0].0.plaintext);
        assert_eq!(configs[0].0.status_interval, Duration::from_secs(2));
        assert_eq!(configs[1].0.advertise_host.as_deref(), Some("sim.example"));
        let b = &configs[1].0;
        assert_eq!(b.profile.latency_ms, 5);
        assert_eq!(b.profile.fps, Some(10));
        assert_eq!(b.profile_label, "inline");
        assert_eq!(b.gpu.compute_capability(), (7, 5));
        assert_eq!(b.eth_address[19], 0xaa);
        assert_eq!(b.models, ["noop"]);
        assert_eq!(b.ticket, TicketTerms::default(), "tickets worth nothing");
    }

    #[test]
    fn ticket_terms_are_what_each_ticket_is_worth() {
        let text = "[[orchestrator]]\nname = \"a\"\nprofile = \"good\"\nticket = { face_value_wei = 2000000000000, win_prob = 0.5 }\n";
        let fleet = FleetConfig::from_toml_str(text, "f.toml").unwrap();
        let ticket = &fleet.orchestrator_configs().unwrap()[0].0.ticket;
        assert_eq!(ticket, &TicketTerms::new(2_000_000_000_000, 0.5));
        assert_eq!(
            lvt_wire::payment::value::expected_value(&ticket.face_value, &ticket.win_prob, 1),
            Ok(1_000_000_000_000)
        );
        for bad in ["0.0", "1.5", "-0.1", "nan"] {
            let text = text.replace("0.5", bad);
            let err = FleetConfig::from_toml_str(&text, "f.toml").unwrap_err();
            assert!(err.to_string().contains("ticket.win_prob"), "{bad}: {err}");
        }
        let typo = text.replace("win_prob", "win_probability");
        let err = FleetConfig::from_toml_str(&typo, "f.toml").unwrap_err();
        assert!(err.to_string().contains("win_probability"), "{err}");
    }

    #[test]
    fn fleet_errors_point_at_the_problem() {
        let unknown_key = "[[orchestrator]]\nname = \"a\"\nprofile = { latency_ms = 5, fsp = 3 }\n";
        let err = FleetConfig::from_toml_str(unknown_key, "f.toml").unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("f.toml:3:"), "{shown}");
        assert!(shown.contains("fsp"), "{shown}");

        let unknown_builtin = "[[orchestrator]]\nname = \"a\"\nprofile = \"fast\"\n";
        let err = FleetConfig::from_toml_str(unknown_builtin, "f.toml").unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("f.toml:3:"), "{shown}");
        assert!(shown.contains("fast"), "{shown}");

        let dup = "[[orchestrator]]\nname = \"a\"\nprofile = \"good\"\n[[orchestrator]]\nname = \"a\"\nprofile = \"good\"\n";
        assert!(matches!(
            FleetConfig::from_toml_str(dup, "f.toml"),
            Err(FleetError::Invalid { .. })
        ));
        let bad_addr =
            "[[orchestrator]]\nname = \"a\"\nprofile = \"good\"\neth_address = \"0x12\"\n";
        assert!(matches!(
            FleetConfig::from_toml_str(bad_addr, "f.toml"),
            Err(FleetError::Invalid { .. })
        ));
        let bad_profile = "[[orchestrator]]\nname = \"a\"\nprofile = { fps = 0 }\n";
        assert!(matches!(
            FleetConfig::from_toml_str(bad_profile, "f.toml"),
            Err(FleetError::Profile { .. })
        ));
        assert!(matches!(
            FleetConfig::from_toml_str("", "f.toml"),
            Err(FleetError::Invalid { .. })
        ));
        let bad_host =
            "advertise_host = \"http://x\"\n[[orchestrator]]\nname = \"a\"\nprofile = \"good\"\n";
        assert!(matches!(
            FleetConfig::from_toml_str(bad_host, "f.toml"),
            Err(FleetError::Invalid { .. })
        ));
        let top_level_typo = "status_interval = 3\n";
        assert!(matches!(
            FleetConfig::from_toml_str(top_level_typo, "f.toml"),
            Err(FleetError::Parse(_))
        ));
    }

    #[test]
    fn eth_addresses_are_deterministic_and_checksummed() {
        assert_eq!(derive_eth_address("good", 1), derive_eth_address("good", 1));
        assert_ne!(derive_eth_address("good", 1), derive_eth_address("good", 2));
        // The EIP-55 test vector.
        let addr = parse_eth_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").unwrap();
        assert_eq!(
            format_eth_address(&addr),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        let shown = format_eth_address(&derive_eth_address("x", 0));
        assert_eq!(
            parse_eth_address(&shown).unwrap(),
            derive_eth_address("x", 0)
        );
    }
}
