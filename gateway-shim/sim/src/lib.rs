//! lvt-sim (`lvt sim`): a protocol-faithful simulated Livepeer orchestrator for live
//! video-to-video. It owns the orchestrator side only, built on `lvt-wire`'s protocols; it is not
//! part of the gateway and depends on no gateway decision.
//!
//! A simulated orchestrator speaks exactly what a go-livepeer orchestrator with an ai-runner
//! behind it speaks: `GetOrchestrator` over gRPC (capability 35, models, capacity, hardware, an
//! auth token), `POST /live-video-to-video` with go-livepeer's checks and status codes, and the
//! four trickle channels of each session. Instead of running a model it passes the input video
//! through (keeping PTS and DTS) while injecting what a [`Profile`] asks for: latency and seeded
//! jitter, a lower output frame rate, model load time (longer on a cold start), limited
//! capacity, refused starts, stalls, crashes and a processing speed below real time. Status,
//! restart, error and trace events go out on the events channel as ai-runner sends them.
//!
//! Layout: [`profile`] and [`fleet`] are the configuration, [`pipeline`] the sans-IO session core
//! and [`warmth`] the sans-IO cold/warm start decision (both unit-tested with explicit times),
//! [`events`] the event documents and the params hash; `server` (the orchestrator) and
//! `session` (the per-session driver) are the tokio edges.

pub mod events;
pub mod fleet;
pub mod gateway;
pub mod pipeline;
pub mod profile;
mod server;
mod session;
pub mod warmth;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use fleet::{
    FleetConfig, FleetError, GpuConfig, OrchestratorConfig, OrchestratorEntry, ProfileRef,
    TicketEntry, TicketTerms, derive_eth_address, format_eth_address, parse_eth_address,
};
pub use pipeline::{
    Decision, DropReason, InputFrame, PipelineConfig, PipelineCore, PipelineOutput, PipelineStats,
    ScheduledOutput,
};
pub use profile::{BUILTIN_PROFILES, DEFAULT_COLD_AFTER_IDLE_S, Profile, ProfileError};
pub use server::{
    LIVE_PIPELINE, MISSING_PAYMENT, NODE_VERSION, RUNNER_VERSION, RunningOrchestrator, start,
};
pub use warmth::{StartDecision, StartKind, WarmthConfig, WarmthTracker};

/// Why a simulated orchestrator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("listener unusable: {0}")]
    Listener(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] lvt_wire::tls::TlsError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("server task failed: {0}")]
    Task(String),
    /// One orchestrator of a running fleet stopped with an error.
    #[error("simulated orchestrator `{name}`")]
    Orchestrator {
        name: String,
        #[source]
        source: Box<SimError>,
    },
    /// A single profile was named beside a fleet file, which sets every orchestrator's profile.
    #[error("a profile cannot be combined with a fleet file (profiles are set in the fleet file)")]
    ProfileWithFleet,
    /// A listen address with a port beside a fleet file, whose entries set the ports.
    #[error(
        "with a fleet file, the listen address {addr} only gives the bind address; use port 0 \
         (ports come from the fleet file)"
    )]
    PortWithFleet { addr: SocketAddr },
    /// A profile argument that is neither a built-in name nor an existing file.
    #[error(
        "profile `{name}` is neither a built-in profile ({}) nor an existing file",
        BUILTIN_PROFILES.join(", ")
    )]
    UnknownProfile { name: String },
    /// The orchestrator listing could not be written as JSON.
    #[error(transparent)]
    Listing(#[from] serde_json::Error),
}

impl SimError {
    /// Whether the error is in what the simulator was asked to run (options, a profile or a
    /// fleet file) rather than in the environment (a port that cannot be bound, a failed
    /// server).
    pub fn is_configuration(&self) -> bool {
        match self {
            SimError::Profile(_)
            | SimError::Fleet(_)
            | SimError::ProfileWithFleet
            | SimError::PortWithFleet { .. }
            | SimError::UnknownProfile { .. } => true,
            SimError::Orchestrator { source, .. } => source.is_configuration(),
            SimError::Bind { .. }
            | SimError::Listener(_)
            | SimError::Tls(_)
            | SimError::Serve(_)
            | SimError::Task(_)
            | SimError::Listing(_) => false,
        }
    }
}

/// Starts every orchestrator of a fleet on `bind_ip` (ports from the fleet file, 0 = any free
/// port). They all stop when `shutdown` completes. If one cannot start, the ones already
/// started are stopped and the error is returned.
pub async fn start_fleet(
    cfg: &FleetConfig,
    bind_ip: IpAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Vec<RunningOrchestrator>, SimError> {
    cfg.validate("fleet")?;
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let mut running = Vec::new();
    for (orch_cfg, port) in cfg.orchestrator_configs()? {
        let addr = SocketAddr::new(bind_ip, port);
        let started = async {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| SimError::Bind { addr, source })?;
            start(orch_cfg, listener, stop.clone().cancelled_owned()).await
        }
        .await;
        match started {
            Ok(orch) => running.push(orch),
            Err(e) => {
                stop.cancel();
                for orch in running {
                    let _ = orch.join().await;
                }
                return Err(e);
            }
        }
    }
    Ok(running)
}

/// Options of `lvt sim` (the binary maps its flags onto these).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimOptions {
    /// Run one orchestrator on this address (with `--profile`, default profile `good`). With
    /// `--config` only its IP is used, as the bind address of the fleet.
    pub listen: Option<SocketAddr>,
    /// Built-in profile name or path of a profile TOML file.
    pub profile: Option<String>,
    /// A fleet TOML file.
    pub config: Option<PathBuf>,
    /// Serve plain `http://` instead of self-signed `https://`.
    pub plaintext: bool,
    /// Override the period of status events, in seconds.
    pub status_interval_s: Option<u64>,
    /// Print the orchestrator list as a JSON array instead of text lines.
    pub json: bool,
    /// Host put into the advertised URIs (needed when listening on 0.0.0.0 for remote
    /// testers); default the listen address, 127.0.0.1 for 0.0.0.0.
    pub advertise_host: Option<String>,
}

/// Runs `lvt sim` until `shutdown` completes: `listen`/`profile` start one orchestrator,
/// `config` a fleet from a file, neither the built-in fleet on 127.0.0.1 with free ports.
/// Prints one line per orchestrator (or a JSON array) once they all listen.
pub async fn run(
    opts: SimOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    let running = start_from_options(&opts, shutdown).await?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&listing_json(&running))?);
    } else {
        print!("{}", listing_text(&running));
    }
    for orch in running {
        let name = orch.name.clone();
        orch.join().await.map_err(|source| SimError::Orchestrator {
            name,
            source: Box::new(source),
        })?;
    }
    Ok(())
}

/// The part of [`run`] that starts the orchestrators, without printing or waiting.
pub async fn start_from_options(
    opts: &SimOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Vec<RunningOrchestrator>, SimError> {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if let Some(path) = &opts.config {
        if opts.profile.is_some() {
            return Err(SimError::ProfileWithFleet);
        }
        let bind_ip = match opts.listen {
            Some(addr) if addr.port() != 0 => return Err(SimError::PortWithFleet { addr }),
            Some(addr) => addr.ip(),
            None => localhost,
        };
        let mut fleet = FleetConfig::from_file(path)?;
        apply_overrides(&mut fleet, opts);
        return start_fleet(&fleet, bind_ip, shutdown).await;
    }
    if opts.listen.is_none() && opts.profile.is_none() {
        let mut fleet = FleetConfig::builtin();
        apply_overrides(&mut fleet, opts);
        return start_fleet(&fleet, localhost, shutdown).await;
    }

    let (profile, label, name) = resolve_profile_arg(opts.profile.as_deref().unwrap_or("good"))?;
    let mut cfg = OrchestratorConfig::new(&name, profile);
    cfg.profile_label = label;
    cfg.plaintext = opts.plaintext;
    cfg.advertise_host = opts.advertise_host.clone();
    if let Some(s) = opts.status_interval_s {
        cfg.status_interval = Duration::from_secs(s.max(1));
    }
    let addr = opts.listen.unwrap_or_else(|| SocketAddr::new(localhost, 0));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    Ok(vec![start(cfg, listener, shutdown).await?])
}

fn apply_overrides(fleet: &mut FleetConfig, opts: &SimOptions) {
    fleet.plaintext |= opts.plaintext;
    if opts.advertise_host.is_some() {
        fleet.advertise_host = opts.advertise_host.clone();
    }
    if let Some(s) = opts.status_interval_s {
        fleet.status_interval_s = s.max(1) as f64;
    }
}

/// A `--profile` value: a built-in name, else a file. Returns the profile, its label and the
/// orchestrator name to use.
fn resolve_profile_arg(arg: &str) -> Result<(Profile, String, String), SimError> {
    if let Ok(profile) = Profile::builtin(arg) {
        return Ok((profile, arg.to_string(), arg.to_string()));
    }
    let path = Path::new(arg);
    if !path.exists() {
        return Err(SimError::UnknownProfile {
            name: arg.to_owned(),
        });
    }
    let profile = Profile::from_file(path)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sim".into());
    Ok((profile, arg.to_string(), name))
}

/// One line per orchestrator: name, eth address, URI, profile, GPU.
pub fn listing_text(orchestrators: &[RunningOrchestrator]) -> String {
    let width = orchestrators
        .iter()
        .map(|o| o.name.len())
        .max()
        .unwrap_or(0);
    let uri_width = orchestrators.iter().map(|o| o.uri.len()).max().unwrap_or(0);
    orchestrators
        .iter()
        .map(|o| {
            format!(
                "{:width$}  {}  {:uri_width$}  profile={}  gpu=\"{}\" ({} GiB)\n",
                o.name, o.eth_address, o.uri, o.profile_label, o.gpu.name, o.gpu.memory_gb
            )
        })
        .collect()
}

/// The same listing as JSON: `[{name, eth_address, uri, profile, gpu{name, memory_gb},
/// cert_fingerprint}]`.
pub fn listing_json(orchestrators: &[RunningOrchestrator]) -> serde_json::Value {
    orchestrators
        .iter()
        .map(|o| {
            json!({
                "name": o.name,
                "eth_address": o.eth_address,
                "uri": o.uri,
                "profile": o.profile_label,
                "gpu": {"name": o.gpu.name, "memory_gb": o.gpu.memory_gb},
                "cert_fingerprint": o.cert_fingerprint,
            })
        })
        .collect()
}
