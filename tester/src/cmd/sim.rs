//! `lvt sim`: simulated orchestrators (one, a fleet from a file, or the built-in fleet) until
//! Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use lvt_sim::{BUILTIN_PROFILES, SimError};

use super::common::{CliError, EXIT_OK};
use crate::shutdown::ctrl_c_token;

/// The long help of `lvt sim` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "Run simulated orchestrators that speak Livepeer's protocols: \
GetOrchestrator (gRPC) and HTTP share one port, TLS with a self-signed certificate by default.\n\n\
  lvt sim --listen 127.0.0.1:8935 --profile good     one orchestrator\n\
  lvt sim --config fleet.toml                        a fleet described in a file\n\
  lvt sim                                            the built-in fleet: good, slow, flaky, busy\n\
  lvt sim gateway --listen 127.0.0.1:8937            a go-livepeer gateway: WHIP in, WHEP out\n\
  lvt sim gateway --orchestrator https://127.0.0.1:8935 ...   the same, relaying to orchestrators\n\n\
Profiles are TOML tables with the keys latency_ms, latency_jitter_ms, fps, startup_ms, \
cold_startup_ms, cold_after_idle_s, capacity, start_status, crash_after_s, stall_at_s, stall_s, slow, \
seed, get_orchestrator_delay_ms, require_payment, payment_status; a cold start (the first session, or the first after cold_after_idle_s, default 60, with \
nothing running) loads for cold_startup_ms, a warm one for startup_ms. Built-in profiles are good, \
slow, flaky and busy. It prints each orchestrator's name, address and URI, then runs until Ctrl-C.";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    /// Another role than orchestrators.
    #[command(subcommand)]
    pub role: Option<SimRole>,
    /// Run one orchestrator on this address (with --profile); with --config only its IP is used,
    /// as the bind address of the fleet.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Profile of the single orchestrator: a built-in name (good, slow, flaky, busy) or a TOML file.
    #[arg(long, requires = "listen")]
    pub profile: Option<String>,
    /// A fleet file ([[orchestrator]] tables) to run several orchestrators in one process.
    #[arg(long, conflicts_with = "profile")]
    pub config: Option<PathBuf>,
    /// Host to put into advertised URIs (when listening on 0.0.0.0 for remote testers).
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// Serve plaintext HTTP/gRPC instead of TLS with a self-signed certificate.
    #[arg(long)]
    pub plaintext: bool,
    /// Seconds between status events on the events channel (default 10, like ai-runner).
    #[arg(long)]
    pub status_interval: Option<u64>,
    /// Print the orchestrator list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The simulator's other roles.
#[derive(Debug, clap::Subcommand)]
pub enum SimRole {
    /// A go-livepeer gateway as users stream into it: WHIP in, WHEP out, status and update
    /// routes (docs/gateway-mode.md); a built-in runner gives the output back after --latency-ms,
    /// or with --orchestrator each stream is relayed to orchestrators over trickle.
    Gateway(GatewayArgs),
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// HTTP address of the gateway.
    #[arg(long, default_value = "127.0.0.1:8937")]
    pub listen: SocketAddr,
    /// Relay each stream to these orchestrators over trickle (repeat the option for several):
    /// selection, job start and swaps as go-livepeer's gateway does them, instead of the
    /// built-in runner.
    #[arg(long = "orchestrator", value_name = "URI")]
    pub orchestrators: Vec<String>,
    /// The built-in runner's processing time per frame, ms.
    #[arg(long, default_value_t = 100, conflicts_with = "orchestrators")]
    pub latency_ms: u64,
    /// From the first video until the runner is ONLINE (no output before), ms.
    #[arg(long, default_value_t = 500, conflicts_with = "orchestrators")]
    pub startup_ms: u64,
    /// Hold every SDP answer this long (a slow gateway), ms.
    #[arg(long, default_value_t = 0)]
    pub answer_delay_ms: u64,
    /// Play a swap of orchestrators this many seconds into each stream: the output stops, input
    /// is dropped for --swap-freeze-ms, and output resumes from the next input keyframe.
    #[arg(long, value_name = "S", conflicts_with = "orchestrators")]
    pub swap_at_s: Option<f64>,
    /// How long the played swap takes no input, ms.
    #[arg(long, default_value_t = 500, requires = "swap_at_s")]
    pub swap_freeze_ms: u64,
    /// Answer, then never read the peer's socket: ICE never connects.
    #[arg(long)]
    pub ice_never: bool,
    /// Close each ingest connection once it is up, as go-livepeer does when its auth webhook
    /// refuses a WHIP stream.
    #[arg(long)]
    pub refuse_auth: bool,
    /// POST each WHIP stream to this auth webhook, as go-livepeer's -liveAIAuthWebhookUrl: an
    /// answer other than 2xx closes the ingest connection after its 201.
    #[arg(long, value_name = "URL")]
    pub auth_webhook: Option<String>,
    /// The key sent to the auth webhook as x-api-key and Authorization (go-livepeer's
    /// -liveAIAuthApiKey).
    #[arg(
        long,
        value_name = "KEY",
        default_value = "",
        requires = "auth_webhook"
    )]
    pub auth_api_key: String,
    /// CORS headers on OPTIONS, WHEP and update answers, so that a browser page from another
    /// origin can play (go-livepeer's LIVE_AI_ALLOW_CORS).
    #[arg(long)]
    pub allow_cors: bool,
    /// Viewers per stream: a number, or unlimited (go-livepeer's LIVE_AI_WHEP_MAX_SESSIONS).
    #[arg(long, default_value = "5")]
    pub viewer_limit: String,
    /// The address the media (UDP) sockets bind to and announce as their ICE candidate
    /// (default: the IP of --listen, or 127.0.0.1 when that is unspecified).
    #[arg(long)]
    pub media_ip: Option<std::net::IpAddr>,
}

/// Runs `lvt sim gateway` until Ctrl-C.
async fn run_gateway(args: GatewayArgs) -> Result<u8, CliError> {
    use lvt_sim::gateway::{BuiltInRunner, GatewayConfig, Runner, start_gateway_with};
    use std::time::Duration;
    for uri in &args.orchestrators {
        if let Err(e) = uri.parse::<lvt_wire::live::OrchestratorUri>() {
            return Err(CliError::Usage(format!("--orchestrator {uri:?}: {e}")));
        }
    }
    let viewer_limit = match args.viewer_limit.as_str() {
        "unlimited" => None,
        n => match n.parse::<usize>() {
            Ok(limit) if limit > 0 => Some(limit),
            _ => {
                return Err(CliError::Usage(format!(
                    "--viewer-limit {n:?}: a positive number or unlimited"
                )));
            }
        },
    };
    let media_ip = args.media_ip.unwrap_or_else(|| {
        if args.listen.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            args.listen.ip()
        }
    });
    let config = GatewayConfig {
        latency: Duration::from_millis(args.latency_ms),
        startup: Duration::from_millis(args.startup_ms),
        answer_delay: Duration::from_millis(args.answer_delay_ms),
        swap: match args.swap_at_s {
            Some(s) if s.is_finite() && s >= 0.0 => Some(lvt_sim::gateway::InjectedSwap {
                at: Duration::from_secs_f64(s),
                freeze: Duration::from_millis(args.swap_freeze_ms),
            }),
            Some(s) => {
                return Err(CliError::Usage(format!(
                    "--swap-at-s {s}: a number of seconds, 0 or more"
                )));
            }
            None => None,
        },
        ice_never: args.ice_never,
        refuse_auth: args.refuse_auth,
        auth_webhook: match args.auth_webhook {
            Some(url) if lvt_gateway::discovery::config::is_http_url(&url) => Some(url),
            Some(url) => {
                return Err(CliError::Usage(format!(
                    "--auth-webhook {url:?}: expected an http:// or https:// URL"
                )));
            }
            None => None,
        },
        auth_api_key: args.auth_api_key,
        allow_cors: args.allow_cors,
        viewer_limit,
        media_ip,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("binding {}: {e}", args.listen)))?;
    let cancel = ctrl_c_token();
    let runner: std::sync::Arc<dyn Runner> = if args.orchestrators.is_empty() {
        std::sync::Arc::new(BuiltInRunner::new(&config))
    } else {
        let relay = lvt_gateway::gateway::relay::RelayConfig::new(args.orchestrators.clone());
        let http = crate::probe::http_client()
            .map_err(|e| CliError::Failed(anyhow::anyhow!("HTTP client: {e}")))?;
        std::sync::Arc::new(crate::relay::RelayRunner::new(relay, http))
    };
    let running = start_gateway_with(
        config,
        runner,
        listener,
        async move { cancel.cancelled().await },
    )
    .await
    .map_err(|e| CliError::Failed(e.into()))?;
    println!("gateway {}", running.url);
    println!(
        "  WHIP  {}/live/video-to-video/STREAM/whip   (WHEP URL in Livepeer-Playback-URL)",
        running.url
    );
    running
        .join()
        .await
        .map_err(|e| CliError::Failed(e.into()))?;
    Ok(EXIT_OK)
}

/// Runs `lvt sim` and returns its exit code.
pub async fn run(args: SimArgs) -> Result<u8, CliError> {
    if let Some(SimRole::Gateway(gateway)) = args.role {
        return run_gateway(gateway).await;
    }
    let opts = lvt_sim::SimOptions {
        listen: args.listen,
        profile: args.profile,
        config: args.config,
        plaintext: args.plaintext,
        status_interval_s: args.status_interval,
        json: args.json,
        advertise_host: args.advertise_host,
    };
    let cancel = ctrl_c_token();
    lvt_sim::run(opts, async move { cancel.cancelled().await })
        .await
        .map_err(cli_error)?;
    Ok(EXIT_OK)
}

/// Words a simulator error for the user in terms of the flags. A bad profile or fleet file, or
/// flags that do not fit together, is the user's input (exit 2); a port that cannot be bound or
/// a failed server is not (exit 1). Causes are joined as `anyhow` prints them.
fn cli_error(error: SimError) -> CliError {
    match error {
        SimError::ProfileWithFleet => CliError::Usage(
            "--profile cannot be combined with --config (profiles are set in the fleet file)"
                .to_owned(),
        ),
        SimError::PortWithFleet { .. } => CliError::Usage(
            "with --config, --listen only gives the bind address; use port 0 (ports come from \
             the fleet file)"
                .to_owned(),
        ),
        SimError::UnknownProfile { name } => CliError::Usage(format!(
            "--profile `{name}` is neither a built-in profile ({}) nor an existing file",
            BUILTIN_PROFILES.join(", ")
        )),
        error if error.is_configuration() => {
            CliError::Usage(format!("{:#}", anyhow::Error::from(error)))
        }
        error => CliError::Failed(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(error: SimError) -> String {
        match cli_error(error) {
            CliError::Usage(message) => message,
            CliError::Failed(e) => panic!("expected a usage error, got a failure: {e:#}"),
        }
    }

    #[test]
    fn simulator_errors_are_worded_with_the_flags() {
        assert_eq!(
            usage(SimError::UnknownProfile {
                name: "nosuch".into()
            }),
            "--profile `nosuch` is neither a built-in profile (good, slow, flaky, busy) nor an \
             existing file"
        );
        assert_eq!(
            usage(SimError::PortWithFleet {
                addr: "127.0.0.1:5".parse().expect("an address")
            }),
            "with --config, --listen only gives the bind address; use port 0 (ports come from \
             the fleet file)"
        );
        assert!(usage(SimError::ProfileWithFleet).starts_with("--profile cannot be combined"));
        let unknown = SimError::Orchestrator {
            name: "a".into(),
            source: Box::new(SimError::UnknownProfile { name: "x".into() }),
        };
        assert_eq!(
            usage(unknown),
            "simulated orchestrator `a`: profile `x` is neither a built-in profile (good, slow, \
             flaky, busy) nor an existing file"
        );
    }

    #[test]
    fn an_unbindable_port_is_a_failure_with_its_cause() {
        let error = SimError::Bind {
            addr: "127.0.0.1:1".parse().expect("an address"),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        match cli_error(error) {
            CliError::Failed(e) => {
                assert_eq!(
                    format!("{e:#}"),
                    "cannot listen on 127.0.0.1:1: address in use: address in use"
                );
            }
            CliError::Usage(message) => panic!("expected a failure, got usage: {message}"),
        }
    }
}
