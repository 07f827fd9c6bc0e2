//! Command-line interface of `lvt`: option parsing and dispatch to the library.
//!
//! Exit codes are part of the interface: 0 success (a probe passed), 1 the command ran but the
//! system under test failed or was unscored, or the command could not proceed, 2 bad usage or
//! configuration (clap's own usage errors also exit 2), 99 (`lvt run`) a threshold failed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lvt_gateway::live::OrchestratorUri;
use lvt_schema::{Complexity, Outcome};
use tokio_util::sync::CancellationToken;

use crate::cmd::trickle::{self, TrickleCommand};
use crate::encode::{ClipConfig, encode_clip};
use crate::probe::{self, ProbeOptions, Timeouts};
use crate::report;

/// Exit code: the command succeeded (for a probe: the session passed).
pub const EXIT_OK: u8 = 0;
/// Exit code: the session failed or was unscored, or the command could not proceed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage, input or configuration.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "lvt",
    version,
    about = "Measures how well Livepeer orchestrators serve live AI video-to-video.",
    long_about = "Measures how well Livepeer orchestrators serve live AI video-to-video.\n\n\
        Logs go to stderr and follow RUST_LOG (for example RUST_LOG=lvt_tester=debug); \
        reports go to stdout."
)]
pub struct Cli {
    /// Write logs as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one live video-to-video session against one orchestrator now and report it.
    #[command(long_about = PROBE_HELP)]
    Probe(ProbeArgs),
    /// Run simulated orchestrators (one, a fleet from a file, or the built-in fleet).
    #[command(long_about = SIM_HELP)]
    Sim(SimArgs),
    /// Trickle protocol tools for debugging a real node: serve, publish, subscribe.
    #[command(subcommand)]
    Trickle(TrickleCommand),
    /// Run sla-hourly against the built-in simulated fleet, rank it, ship it to an embedded
    /// collector and print its SLA table (the dashboard stays up on a terminal until Ctrl-C).
    Demo(DemoArgs),
    /// Ramp concurrent probe sessions against a local simulator and print capacity figures.
    #[command(long_about = BENCH_HELP)]
    Bench(crate::bench::BenchArgs),
    /// Check scenario files: syntax, unknown keys, thresholds, ranges, unique ids.
    #[command(long_about = VALIDATE_HELP)]
    Validate(ValidateArgs),
    /// Run a scenario against its targets and judge its thresholds.
    #[command(long_about = RUN_HELP)]
    Run(RunArgs),
    /// Write a new signing key pair for shipping results to a collector.
    #[command(long_about = KEYGEN_HELP)]
    Keygen(KeygenArgs),
    /// Send batches spooled by a failed shipment to a collector, removing each one it accepts.
    #[command(name = "ship-spool", long_about = SHIP_SPOOL_HELP)]
    ShipSpool(ShipSpoolArgs),
    /// List orchestrators from discovery sources: what each offers and whether it is usable.
    #[command(long_about = DISCOVER_HELP)]
    Discover(DiscoverArgs),
}

const PROBE_HELP: &str = "Run one live video-to-video session against one orchestrator now and report it.\n\n\
The probe does what a gateway does: GetOrchestrator over gRPC, POST /live-video-to-video, then it \
publishes a synthetic 512x512 30 fps H.264 stream in real time over trickle, reads the output \
and events channels, sends control keepalives and one params update halfway, and stops cleanly. \
Every timing is taken on the tester's own clock.\n\n\
ORCHESTRATOR is host:port or https://host:port (TLS; the certificate is not verified but its \
SHA-256 fingerprint is recorded: trust on first use) or http://host:port (plaintext).\n\n\
With --network there is no ORCHESTRATOR: the session goes through network selection as a \
go-livepeer gateway runs a stream. It discovers candidates (--discovery static:URI,URI | \
webhook:URL | naap:URL | chain:RPC_URL), orders them (--strategy go-livepeer | \
score-weighted:SEED), starts on the first that accepts (20 tries within 2 s), swaps when the \
serving one fails (at most 2 swaps in 3 minutes) and reports every swap with its output freeze \
and each orchestrator's share. With --collector (or --kafka and --events-topic) it also ships \
the session's go-livepeer analytics events.\n\n\
Jobs are offchain (an empty payment) unless --remote-signer URL pays them through a go-livepeer \
remote signer.\n\n\
Exit codes: 0 the session passed; 1 it failed (with a failure class) or was unscored \
(orchestrator busy); 2 usage or configuration error.";

const SIM_HELP: &str = "Run simulated orchestrators that speak Livepeer's protocols: \
GetOrchestrator (gRPC) and HTTP share one port, TLS with a self-signed certificate by default.\n\n\
  lvt sim --listen 127.0.0.1:8935 --profile good     one orchestrator\n\
  lvt sim --config fleet.toml                        a fleet described in a file\n\
  lvt sim                                            the built-in fleet: good, slow, flaky, busy\n\n\
Profiles are TOML tables with the keys latency_ms, latency_jitter_ms, fps, startup_ms, \
cold_startup_ms, cold_after_idle_s, capacity, start_status, crash_after_s, stall_at_s, stall_s, slow, \
seed, get_orchestrator_delay_ms, require_payment, payment_status; a cold start (the first session, or the first after cold_after_idle_s, default 60, with \
nothing running) loads for cold_startup_ms, a warm one for startup_ms. Built-in profiles are good, \
slow, flaky and busy. It prints each orchestrator's name, address and URI, then runs until Ctrl-C.";

const BENCH_HELP: &str = "Ramp concurrent probe sessions against a local simulator and print \
how many sessions one tester holds, the tester's CPU time per stream-second (measured with \
getrusage on this process only; the simulator runs as a separate process), and the error of \
the measured e2e latency against the simulator's injected latency.";

const VALIDATE_HELP: &str = "Check scenario files: TOML syntax and types, unknown keys, threshold \
expressions (real metrics, statistics and rates), label filters, input and load ranges, and that \
scenario ids are unique across all files. Directories are searched for *.toml files (not \
recursively).\n\n\
Every problem is printed to stderr as file:line:column with what was expected and a hint.\n\n\
Exit codes: 0 every scenario is valid; 2 at least one error.";

const RUN_HELP: &str = "Run a scenario: resolve its targets, run its sessions under its load \
(closed: sessions per target at a fixed concurrency; open: an arrival rate with ramp stages, \
startup measured from each session's scheduled start), then print a summary per group and \
each threshold's verdict.\n\n\
SCENARIO is a scenario file, or the id of a scenario shipped with lvt (smoke, sla-hourly, soak, \
capacity, startup). --target replaces the scenario's targets with explicit orchestrators.\n\n\
Writes run.json (every session record), junit.xml (one test case per threshold) and \
report.html to --out (default lvt-runs/ID-TIMESTAMP). Ctrl-C stops the sessions in flight \
cleanly and still writes the report.\n\n\
Exit codes: 0 every threshold passed; 99 a threshold failed or had no data; 1 the run could \
not proceed (targets unresolvable, input clip not encodable, output directory not writable); \
2 bad input (an invalid scenario, a bad --target).";

const KEYGEN_HELP: &str = "Write a new ed25519 key pair for signing result batches: \
PATH.key (the secret, mode 0600) and PATH.pub (the public key line). When PATH is a directory \
the files are lvt.key and lvt.pub inside it. Existing files are never overwritten.\n\n\
It prints the key id and the public key line to add to the collector's configuration, \
which is how the collector knows this agent.\n\n\
Exit codes: 0 written; 1 the files could not be written; 2 a file already exists.";

const SHIP_SPOOL_HELP: &str = "Send result batches that a probe or run could not deliver \
(written to its --spool directory, one batch-*.json file per batch) to a collector, oldest \
first, signing each afresh. A file is removed only after the collector acknowledged it; the \
collector deduplicates by session id, so sending a batch twice stores nothing twice.\n\n\
Exit codes: 0 every file delivered (or none there); 1 some file not delivered (it is kept); \
2 usage error (a missing directory or key).";

const DISCOVER_HELP: &str = "List orchestrators from discovery sources, ask each one \
GetOrchestrator in parallel (as a gateway does) and print what it offers: eth address, \
discovery latency, live-video-to-video models with warm/idle/in-use capacity, GPUs, price, and \
whether it is usable for --model or why it was dropped (unreachable, timeout, incapable, \
no_capacity, bad_response). Usable orchestrators come first, in the order a go-livepeer \
gateway would try them: warm first, then lowest latency.\n\n\
Sources can be combined; an orchestrator named twice is asked once:\n\
  --static URI...   a fixed list (like go-livepeer's -orchAddr)\n\
  --webhook URL     GET answering [{address, score}] (like -orchWebhookUrl)\n\
  --naap URL        a NaaP API: GET URL/v1/discover/orchestrators?caps=live-video-to-video/MODEL\n\
  --chain [RPC_URL] the Livepeer transcoder pool on chain (Arbitrum One by default): \
Controller.getContract -> BondingManager pool walk -> ServiceRegistry.getServiceURI, eth_call \
only; --controller and --service-registry (an address, or `ai` for the AI service registry) \
override the contracts. Pool members without a usable URI are listed on stderr.\n\n\
Exit codes: 0 at least one orchestrator is usable; 1 none is, or a source failed; 2 usage \
error (no source, a bad address or URL).";

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Orchestrators to ask: host:port, https://host:port or http://host:port (repeatable).
    #[arg(long = "static", value_name = "URI", num_args = 1..)]
    pub static_uris: Vec<String>,
    /// A discovery webhook answering a JSON array of {address, score}.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// The base URL of a NaaP discovery API.
    #[arg(long, value_name = "URL")]
    pub naap: Option<String>,
    /// On-chain discovery through an Ethereum JSON-RPC URL (without a URL: Arbitrum One's
    /// public endpoint, which is rate-limited).
    #[arg(long, value_name = "RPC_URL", num_args = 0..=1, default_missing_value = "")]
    pub chain: Option<String>,
    /// The Livepeer Controller address for --chain (default: Arbitrum One's).
    #[arg(long, value_name = "ADDR", requires = "chain")]
    pub controller: Option<String>,
    /// Read service URIs from this ServiceRegistry for --chain instead of the Controller's;
    /// `ai` is the AI service registry on Arbitrum One.
    #[arg(long, value_name = "ADDR", requires = "chain")]
    pub service_registry: Option<String>,
    /// The live video-to-video model an orchestrator must offer to be usable.
    #[arg(long, default_value = "noop")]
    pub model: String,
    /// Timeout of each source request and of each GetOrchestrator (connection included).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the inventory as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Where a probe or run ships its records: `--collector URL --key FILE [--spool DIR]`, or
/// `--kafka BROKERS [--kafka-topic TOPIC] --key FILE [--spool DIR]`.
#[derive(Debug, Clone, Args)]
pub struct ShipArgs {
    /// Ship the session record(s) to this collector (http(s)://host:port) when done.
    #[arg(long, value_name = "URL", requires = "key")]
    pub collector: Option<String>,
    /// Ship the session record(s) as signed batches to this Kafka cluster (host:port[,...])
    /// instead, for a collector consuming its results topic.
    #[arg(
        long,
        value_name = "BROKERS",
        requires = "key",
        conflicts_with = "collector"
    )]
    pub kafka: Option<String>,
    /// The Kafka results topic (with --kafka; default lvt-results).
    #[arg(long, value_name = "TOPIC", requires = "kafka")]
    pub kafka_topic: Option<String>,
    /// Network sessions' go-livepeer analytics events go to this Kafka topic (with --kafka);
    /// with --collector they go signed to its /v1/events. Without either they are not emitted.
    #[arg(long, value_name = "TOPIC", requires = "kafka")]
    pub events_topic: Option<String>,
    /// The secret key file (from `lvt keygen`) that signs shipped batches (with --collector or
    /// --kafka).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Where batches that cannot be delivered are kept for `lvt ship-spool`.
    #[arg(long, value_name = "DIR", default_value = crate::ship::DEFAULT_SPOOL_DIR)]
    pub spool: PathBuf,
    /// The tester's region label (for example eu-west), written into every record; the
    /// collector cuts SLA scores and the dashboard's grid by it. Without it records name none.
    #[arg(long, value_name = "LABEL", value_parser = region_label)]
    pub region: Option<String>,
}

/// A `--region` label: non-empty, without whitespace or control characters.
fn region_label(text: &str) -> Result<String, String> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "a region label is a non-empty word such as eu-west, not {text:?}"
        ));
    }
    Ok(text.to_owned())
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path prefix of the key files (PATH.key, PATH.pub), or a directory for lvt.key/lvt.pub.
    #[arg(long, value_name = "PATH", default_value = "./lvt")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ShipSpoolArgs {
    /// The spool directory (a probe's or run's --spool, default lvt-spool).
    pub dir: PathBuf,
    /// The collector to send to.
    #[arg(long, value_name = "URL")]
    pub collector: String,
    /// The secret key file that signs the batches.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files or directories of them.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A scenario file, or the id of a shipped scenario.
    pub scenario: String,
    /// Run against this orchestrator instead of the scenario's targets (repeatable).
    #[arg(long = "target", value_name = "URI")]
    pub targets: Vec<String>,
    /// Output directory for run.json, junit.xml and report.html.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print run.json to stdout instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Live progress on stderr: a redrawn line on a terminal, log lines otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,
    /// Pay every session's jobs on chain through this remote signer (go-livepeer's
    /// /sign-orchestrator-info and /generate-live-payment). Default: offchain.
    #[arg(long, value_name = "URL")]
    pub remote_signer: Option<String>,
    #[command(flatten)]
    pub ship: ShipArgs,
}

/// The `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    Auto,
    Terminal,
    Lines,
    Off,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The orchestrator: host:port, https://host:port or http://host:port (not with --network).
    #[arg(required_unless_present = "network", conflicts_with = "network")]
    pub orchestrator: Option<String>,
    /// Run through network selection instead of one orchestrator (needs --discovery).
    #[arg(long, requires = "discovery")]
    pub network: bool,
    /// Discovery for --network: static:URI[,URI...], webhook:URL, naap:URL or chain:RPC_URL
    /// (on-chain, Arbitrum One's contracts) (repeatable).
    #[arg(long, requires = "network")]
    pub discovery: Vec<String>,
    /// Selection strategy for --network: go-livepeer, or score-weighted:SEED.
    #[arg(long, default_value = "go-livepeer")]
    pub strategy: String,
    /// Pay jobs on chain through this remote signer (go-livepeer's /sign-orchestrator-info and
    /// /generate-live-payment), so the agent holds no keys. Default: offchain, an empty payment.
    #[arg(long, value_name = "URL")]
    pub remote_signer: Option<String>,
    /// Model id sent at job start.
    #[arg(long, default_value = "noop")]
    pub model: String,
    /// Pipeline params as a JSON object, sent at job start.
    #[arg(long, conflicts_with = "prompt")]
    pub params: Option<String>,
    /// Shorthand for --params '{"prompt": TEXT}'.
    #[arg(long)]
    pub prompt: Option<String>,
    /// The prompt complexity this probe represents, recorded in the report.
    #[arg(long, value_parser = parse_complexity)]
    pub complexity: Option<Complexity>,
    /// How long to publish input, e.g. 30s, 2m, 500ms.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Do not send the params update halfway through.
    #[arg(long)]
    pub no_params_update: bool,
    /// Timeout of GetOrchestrator and of the job start request.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub start_timeout: Duration,
    /// Longest wait for the first output frame after the first input frame.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub output_timeout: Duration,
    /// Longest silence on the events channel (go-livepeer stops a job after 30 s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub events_timeout: Duration,
    /// Print the full session record as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub ship: ShipArgs,
}

#[derive(Debug, Args)]
pub struct SimArgs {
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

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Override the session length of the sla-hourly scenario (default: the scenario's 30 s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print the run report as JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Also write run.json, junit.xml and report.html into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit after printing; by default, on a terminal, the embedded collector and its dashboard
    /// keep running until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

/// Sets up `tracing` from RUST_LOG. Without it: `lvt sim` and `lvt trickle serve` log at info
/// (they are servers, their log is their output), `demo` and `bench` only errors (their
/// simulators' injected faults would drown the table), everything else warnings.
pub fn init_tracing(json: bool, command: &Command) {
    use std::io::IsTerminal;
    let default = match command {
        Command::Sim(_) | Command::Trickle(TrickleCommand::Serve { .. }) => "info",
        // A run reports every session itself; the probe's per-session warnings would repeat it.
        Command::Demo(_) | Command::Bench(_) | Command::Run(_) => "error",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs a parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let result = match cli.command {
        Command::Probe(args) => run_probe(args).await,
        Command::Sim(args) => run_sim(args).await,
        Command::Trickle(cmd) => trickle::run(cmd).await,
        Command::Demo(args) => {
            crate::demo::run(crate::demo::DemoOptions {
                session_duration: args.duration,
                json: args.json,
                out: args.out,
                exit: args.exit,
            })
            .await
        }
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Validate(args) => Ok(run_validate(&args)),
        Command::Run(args) => run_scenario(args).await,
        Command::Keygen(args) => run_keygen(&args),
        Command::ShipSpool(args) => run_ship_spool(args).await,
        Command::Discover(args) => run_discover(args).await,
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(msg)) => {
            eprintln!("lvt: {msg}");
            EXIT_USAGE
        }
        Err(CliError::Failed(e)) => {
            eprintln!("lvt: {e:#}");
            EXIT_FAILED
        }
    }
}

/// Why a command stopped: the user's input, or something that kept it from proceeding.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failed(e)
    }
}

/// A token cancelled on Ctrl-C, so long commands stop cleanly and still report.
pub fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("lvt: stopping (Ctrl-C)");
            t.cancel();
        }
    });
    token
}

async fn run_probe(args: ProbeArgs) -> Result<u8, CliError> {
    let network = if args.network {
        Some(network_probe_options(&args)?)
    } else {
        None
    };
    let target: OrchestratorUri = match (&args.orchestrator, &network) {
        (Some(o), _) => o
            .parse()
            .map_err(|e| CliError::Usage(format!("ORCHESTRATOR {o:?}: {e}")))?,
        // Never contacted: each try of network selection sets the candidate it starts on.
        (None, Some(_)) => {
            OrchestratorUri::new(lvt_gateway::live::Scheme::Https, "network.invalid", 443)
        }
        (None, None) => return Err(CliError::Usage("ORCHESTRATOR is required".into())),
    };
    // The key and URL are checked before the session so that a typo does not cost a session.
    let shipper = shipper_from(&args.ship)?;
    let params = match (&args.params, &args.prompt) {
        (Some(p), _) => {
            let v: serde_json::Value = serde_json::from_str(p)
                .map_err(|e| CliError::Usage(format!("--params is not valid JSON: {e}")))?;
            if !v.is_object() {
                return Err(CliError::Usage("--params must be a JSON object".into()));
            }
            v
        }
        (None, Some(prompt)) => serde_json::json!({ "prompt": prompt }),
        (None, None) => serde_json::json!({}),
    };
    let mut opts = ProbeOptions::new(target);
    opts.payment = payment_config(args.remote_signer.as_deref())?;
    opts.region = args.ship.region.clone();
    opts.model_id = args.model;
    opts.params = params;
    opts.complexity = args.complexity;
    opts.duration = args.duration;
    opts.params_update_offsets = if args.no_params_update {
        Vec::new()
    } else {
        vec![args.duration / 2]
    };
    opts.timeouts = Timeouts {
        grpc: args.start_timeout,
        start: args.start_timeout,
        first_output: args.output_timeout,
        events: args.events_timeout,
        ..Timeouts::default()
    };
    let clip = Arc::new(
        encode_clip(&ClipConfig::default())
            .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot encode the input clip: {e}")))?,
    );
    let http = probe::http_client()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot build the HTTP client: {e}")))?;
    let cancel = ctrl_c_token();
    let report = match network {
        Some((sources, strategy)) => {
            let events = GatewayEvents::start(&args.ship)?;
            let net = probe::network::NetworkOptions::new(opts, sources, strategy);
            let run = probe::network::run_network(&net, clip, &http, cancel, events.sink()).await;
            events.finish().await;
            run.report
        }
        None => probe::probe(&opts, clip, &http, cancel).await,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| CliError::Failed(e.into()))?
        );
    } else {
        print!("{}", report::session_table(&report));
    }
    let code = if report.outcome == Outcome::Passed {
        EXIT_OK
    } else {
        EXIT_FAILED
    };
    Ok(ship_and_adjust(shipper.as_ref(), std::slice::from_ref(&report), code).await)
}

/// Offchain without `--remote-signer`, else paid through that signer.
fn payment_config(
    remote_signer: Option<&str>,
) -> Result<lvt_gateway::payment::PaymentConfig, CliError> {
    let Some(url) = remote_signer else {
        return Ok(lvt_gateway::payment::PaymentConfig::default());
    };
    let signer_url = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            CliError::Usage(format!("--remote-signer {url:?}: expected an http(s) URL"))
        })?;
    Ok(lvt_gateway::payment::PaymentConfig {
        signer_url: Some(signer_url),
    })
}

/// The discovery sources and strategy of `lvt probe --network`.
fn network_probe_options(
    args: &ProbeArgs,
) -> Result<
    (
        Vec<lvt_gateway::discovery::Source>,
        probe::network::StrategyConfig,
    ),
    CliError,
> {
    use lvt_gateway::discovery::{NaapSource, Source, StaticSource, WebhookSource};
    use probe::network::StrategyConfig;
    let timeout = Duration::from_secs(5);
    let mut sources = Vec::new();
    for spec in &args.discovery {
        let usage = || {
            CliError::Usage(format!(
                "--discovery {spec:?}: expected static:URI[,URI...], webhook:URL, naap:URL or chain:RPC_URL"
            ))
        };
        let (kind, value) = spec.split_once(':').ok_or_else(usage)?;
        let source = match kind {
            "static" => {
                let list = StaticSource::from_addresses(value.split(',').map(str::trim));
                list.resolve()
                    .map_err(|e| CliError::Usage(format!("--discovery {spec:?}: {e}")))?;
                Source::Static(list)
            }
            "webhook" => Source::Webhook(WebhookSource {
                url: value.to_string(),
                timeout,
            }),
            "naap" => Source::Naap(NaapSource {
                base_url: value.to_string(),
                model: args.model.clone(),
                timeout,
            }),
            "chain" => {
                let config = lvt_gateway::discovery::ChainConfig {
                    rpc_url: value.to_string(),
                    ..Default::default()
                };
                Source::Chain(
                    lvt_gateway::discovery::ChainSource::try_from(config)
                        .map_err(|e| CliError::Usage(format!("--discovery {spec:?}: {e}")))?,
                )
            }
            _ => return Err(usage()),
        };
        sources.push(source);
    }
    if sources.is_empty() {
        return Err(CliError::Usage("--network needs --discovery".into()));
    }
    let strategy = match args.strategy.split_once(':') {
        None if args.strategy == "go-livepeer" => StrategyConfig::GoLivepeer,
        Some(("score-weighted", seed)) => StrategyConfig::ScoreWeighted {
            sla_url: None,
            seed: seed.parse().map_err(|_| {
                CliError::Usage(format!(
                    "--strategy {:?}: the seed must be a whole number",
                    args.strategy
                ))
            })?,
        },
        _ => {
            return Err(CliError::Usage(format!(
                "--strategy {:?}: expected go-livepeer or score-weighted:SEED",
                args.strategy
            )));
        }
    };
    Ok((sources, strategy))
}

/// Builds the transport `--collector URL --key FILE` or `--kafka BROKERS --key FILE` ask for,
/// or `None` without them. A bad URL, empty brokers or an unreadable key is a usage error.
fn shipper_from(args: &ShipArgs) -> Result<Option<crate::ship_kafka::Transport>, CliError> {
    use crate::ship_kafka::{DEFAULT_KAFKA_TOPIC, KafkaSetupError, KafkaShipper, Transport};
    let options = crate::ship::ShipOptions {
        spool_dir: args.spool.clone(),
        ..Default::default()
    };
    match (&args.collector, &args.kafka, &args.key) {
        (Some(url), None, Some(key_path)) => {
            shipper(url, key_path, options).map(|s| Some(Transport::Http(Box::new(s))))
        }
        (None, Some(brokers), Some(key_path)) => {
            let key = lvt_schema::sign::read_signing_key(key_path)
                .map_err(|e| CliError::Usage(format!("--key: {e}")))?;
            let topic = args.kafka_topic.as_deref().unwrap_or(DEFAULT_KAFKA_TOPIC);
            KafkaShipper::new(brokers, topic, key, options)
                .map(|s| Some(Transport::Kafka(Box::new(s))))
                .map_err(|e| match e {
                    KafkaSetupError::Usage(message) => CliError::Usage(message),
                    KafkaSetupError::Client { .. } => CliError::Failed(anyhow::anyhow!("{e}")),
                })
        }
        // clap's `requires` and `conflicts_with` rule the rest out; this covers library callers
        // and a lone --key.
        (None, None, None) => Ok(None),
        _ => Err(CliError::Usage(
            "--key goes with exactly one of --collector and --kafka".to_owned(),
        )),
    }
}

/// The analytics events of network sessions on their way out: go-livepeer envelopes built from
/// the driver's observations, shipped where the records go (`--collector`: signed to its
/// `/v1/events`; `--kafka` with `--events-topic`: to that topic). Default: not emitted.
#[derive(Default)]
struct GatewayEvents {
    sink: Option<lvt_gateway::gateway::observe::ObservationSink>,
    emitter: Option<tokio::task::JoinHandle<lvt_gateway::gateway::events::EmitterReport>>,
}

impl GatewayEvents {
    fn start(args: &ShipArgs) -> Result<Self, CliError> {
        use lvt_gateway::gateway::events::{EmitterConfig, spawn_emitter};
        let Some(key_path) = &args.key else {
            return Ok(Self::default());
        };
        let key = lvt_schema::sign::read_signing_key(key_path)
            .map_err(|e| CliError::Usage(format!("--key: {e}")))?;
        // The envelope's `gateway` names the publisher; lvt's gateway is this agent, known to
        // the collector by its key id, which keeps these test-load events out of organic load.
        let gateway =
            lvt_schema::events::agent_gateway_name(&lvt_schema::sign::key_id(&key.verifying_key()));
        let config = match (&args.collector, &args.kafka, &args.events_topic) {
            (Some(url), _, _) => EmitterConfig::new(url.clone(), key, gateway),
            (None, Some(brokers), Some(topic)) => {
                EmitterConfig::kafka(brokers.clone(), topic.clone(), gateway)
            }
            _ => return Ok(Self::default()),
        };
        let (sink, observations) = tokio::sync::mpsc::unbounded_channel();
        // The emitter drains what it has when every sender is gone; the token is only for an
        // emitter that must stop at once, which a finishing command never needs.
        let emitter = spawn_emitter(observations, config, CancellationToken::new())
            .map_err(|e| CliError::Usage(format!("gateway events: {e}")))?;
        Ok(Self {
            sink: Some(sink),
            emitter: Some(emitter),
        })
    }

    fn sink(&self) -> Option<lvt_gateway::gateway::observe::ObservationSink> {
        self.sink.clone()
    }

    /// Closes the sink and waits until the emitter delivered (or gave up on) what it holds.
    async fn finish(self) {
        drop(self.sink);
        if let Some(emitter) = self.emitter {
            match emitter.await {
                Ok(report) => eprintln!(
                    "lvt: gateway events: {} envelope(s), {} delivered, {} dropped",
                    report.envelopes,
                    report.stored + report.duplicates + report.produced,
                    report.dropped
                ),
                Err(e) => eprintln!("lvt: gateway events: the emitter stopped: {e}"),
            }
        }
    }
}

fn shipper(
    url: &str,
    key_path: &std::path::Path,
    options: crate::ship::ShipOptions,
) -> Result<crate::ship::Shipper, CliError> {
    use crate::ship::{SetupError, Shipper};
    let key = lvt_schema::sign::read_signing_key(key_path)
        .map_err(|e| CliError::Usage(format!("--key: {e}")))?;
    Shipper::new(url, key, options).map_err(|e| match e {
        SetupError::BadUrl { .. } => CliError::Usage(format!("--collector: {e}")),
        SetupError::Client(_) => CliError::Failed(anyhow::anyhow!("{e}")),
    })
}

/// Ships `records` when a shipper is configured and prints what happened. A failed shipment
/// turns an exit code of 0 into 1 and leaves any other code alone (a failed threshold stays
/// 99): the records are spooled, not lost, but the operator must learn they are not delivered.
async fn ship_and_adjust(
    shipper: Option<&crate::ship_kafka::Transport>,
    records: &[lvt_schema::SessionReport],
    code: u8,
) -> u8 {
    let Some(shipper) = shipper else {
        return code;
    };
    match shipper.ship(records).await {
        Ok(outcome) => {
            match shipper {
                crate::ship_kafka::Transport::Http(http) => eprintln!(
                    "lvt: shipped {} record(s) to {} (inserted {}, duplicates {})",
                    outcome.records,
                    http.url(),
                    outcome.inserted,
                    outcome.duplicates
                ),
                // The collector stores them when it consumes the topic, so there is no
                // inserted/duplicate count to report here.
                crate::ship_kafka::Transport::Kafka(_) => eprintln!(
                    "lvt: shipped {} record(s) in {} batch(es) to {}",
                    outcome.records,
                    outcome.batches,
                    shipper.destination()
                ),
            }
            code
        }
        Err(error) => {
            let delivered = error.delivered();
            eprintln!(
                "lvt: shipping to {} failed: {error} ({} of {} record(s) delivered)",
                shipper.destination(),
                delivered.records,
                records.len()
            );
            for path in error.spooled() {
                eprintln!("lvt: spooled {}", path.display());
            }
            if code == EXIT_OK { EXIT_FAILED } else { code }
        }
    }
}

/// `lvt discover`: reads the sources, asks every candidate GetOrchestrator, prints the
/// inventory, and exits 0 only when some orchestrator is usable.
async fn run_discover(args: DiscoverArgs) -> Result<u8, CliError> {
    use lvt_gateway::discovery::{
        self, ChainConfig, ChainSource, DiscoverySource as _, InventoryOptions, NaapSource, Source,
        StaticSource, WebhookSource,
    };
    let check_url = |flag: &str, url: &str| {
        reqwest::Url::parse(url)
            .map(|_| ())
            .map_err(|e| CliError::Usage(format!("--{flag} {url:?}: {e}")))
    };
    let mut sources = Vec::new();
    if !args.static_uris.is_empty() {
        let source = StaticSource::from_addresses(args.static_uris.iter().cloned());
        // Addresses are checked here so that a typo is a usage error, not a failed source.
        source
            .resolve()
            .map_err(|e| CliError::Usage(format!("--static: {e}")))?;
        sources.push(Source::Static(source));
    }
    if let Some(url) = &args.webhook {
        check_url("webhook", url)?;
        sources.push(Source::Webhook(WebhookSource {
            url: url.clone(),
            timeout: args.timeout,
        }));
    }
    if let Some(base_url) = &args.naap {
        check_url("naap", base_url)?;
        sources.push(Source::Naap(NaapSource {
            base_url: base_url.clone(),
            model: args.model.clone(),
            timeout: args.timeout,
        }));
    }
    let chain = match &args.chain {
        None => None,
        Some(rpc_url) => {
            let defaults = ChainConfig::default();
            let config = ChainConfig {
                rpc_url: if rpc_url.is_empty() {
                    defaults.rpc_url.clone()
                } else {
                    rpc_url.clone()
                },
                controller: args
                    .controller
                    .clone()
                    .unwrap_or(defaults.controller.clone()),
                service_registry: args.service_registry.clone(),
                timeout_ms: u64::try_from(args.timeout.as_millis()).unwrap_or(u64::MAX),
                ..defaults
            };
            Some(
                ChainSource::try_from(config)
                    .map_err(|e| CliError::Usage(format!("--chain: {e}")))?,
            )
        }
    };
    if sources.is_empty() && chain.is_none() {
        return Err(CliError::Usage(
            "no discovery source: give --static URI..., --webhook URL, --naap URL or --chain [RPC_URL]"
                .into(),
        ));
    }
    let http = probe::http_client()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot build the HTTP client: {e}")))?;
    let mut lists = Vec::with_capacity(sources.len());
    for source in &sources {
        let found = source
            .candidates(&http)
            .await
            .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?;
        lists.push(found);
    }
    if let Some(chain) = &chain {
        let found = chain
            .discover(&http)
            .await
            .map_err(|e| CliError::Failed(anyhow::anyhow!("{}: {e}", chain.origin())))?;
        // Stderr, so that --json output stays one document.
        eprintln!(
            "lvt: on chain at block {}: BondingManager {}, ServiceRegistry {}, {} orchestrator(s) \
             with a URI, {} skipped, pool walk {}",
            found.block_number,
            found.bonding_manager,
            found.service_registry,
            found.orchestrators.len(),
            found.skipped.len(),
            found.walk_end
        );
        for skipped in &found.skipped {
            eprintln!(
                "lvt: skipped {}: {} ({})",
                skipped.eth_address,
                skipped.reason.as_str(),
                skipped.detail
            );
        }
        lists.push(found.candidates());
    }
    let candidates = discovery::merge(lists);
    let opts = InventoryOptions {
        model_id: args.model,
        timeout: args.timeout,
        ..InventoryOptions::default()
    };
    let inventory = discovery::inventory(candidates, &opts).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&inventory).map_err(|e| CliError::Failed(e.into()))?
        );
    } else {
        print!("{}", inventory.table());
    }
    Ok(if inventory.usable().next().is_some() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// `lvt keygen`: writes the key pair and prints what the collector's operator needs.
fn run_keygen(args: &KeygenArgs) -> Result<u8, CliError> {
    use lvt_schema::sign::{self, KeyError};
    // A prefix in a directory that does not exist yet (`--out keys/agent1`) gets the directory.
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            CliError::Failed(anyhow::anyhow!("cannot create {}: {e}", parent.display()))
        })?;
    }
    // The key errors' messages already include their cause, so only the message is kept.
    let (secret, public) = sign::write_keypair(&args.out).map_err(|e| match e {
        KeyError::Exists { .. } => CliError::Usage(e.to_string()),
        other => CliError::Failed(anyhow::anyhow!("{other}")),
    })?;
    let verifying =
        sign::read_verifying_key(&public).map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?;
    println!("secret key: {} (keep it private)", secret.display());
    println!("public key: {}", public.display());
    println!("key id:     {}", sign::key_id(&verifying));
    println!();
    println!("Add this line to the collector's agent keys:");
    print!("{}", sign::public_key_line(&verifying));
    Ok(EXIT_OK)
}

/// `lvt ship-spool DIR`: re-sends spooled batches, deleting each after the collector took it.
async fn run_ship_spool(args: ShipSpoolArgs) -> Result<u8, CliError> {
    if !args.dir.is_dir() {
        return Err(CliError::Usage(format!(
            "spool directory {} does not exist",
            args.dir.display()
        )));
    }
    let shipper = shipper(
        &args.collector,
        &args.key,
        crate::ship::ShipOptions::default(),
    )?;
    let delivery = shipper
        .ship_spool(&args.dir)
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?;
    for (path, error) in &delivery.failed {
        eprintln!("lvt: {} not delivered (kept): {error}", path.display());
    }
    for error in &delivery.unreadable {
        eprintln!("lvt: {error} (kept)");
    }
    if !delivery.skipped.is_empty() {
        eprintln!(
            "lvt: {} more file(s) not tried after that failure (kept)",
            delivery.skipped.len()
        );
    }
    eprintln!(
        "lvt: shipped {} record(s) from {} file(s) to {} (inserted {}, duplicates {})",
        delivery.records,
        delivery.delivered.len(),
        shipper.url(),
        delivery.inserted(),
        delivery.duplicates()
    );
    Ok(if delivery.is_complete() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

fn run_validate(args: &ValidateArgs) -> u8 {
    let report = crate::scenario::validate::validate_paths(&args.paths);
    for d in &report.diagnostics {
        eprintln!("{d}");
    }
    let files = report.files.len();
    if report.is_ok() {
        if files == 0 {
            let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
            eprintln!("lvt: no scenario files (*.toml) in {}", paths.join(", "));
            return EXIT_USAGE;
        }
        eprintln!("{} scenario(s) valid", report.scenarios.len());
        EXIT_OK
    } else {
        eprintln!(
            "{} error(s) in {} of {} file(s)",
            report.diagnostics.len(),
            report.files_with_errors(),
            files
        );
        EXIT_USAGE
    }
}

/// `lvt run`: load and validate, resolve targets, check the output directory, execute, write
/// the outputs, print the tables, exit by the thresholds.
async fn run_scenario(args: RunArgs) -> Result<u8, CliError> {
    use crate::run::{executor, output, summary, targets, verdict};
    use crate::scenario::{Targets, identity, validate};

    let (mut scenario, identity) = {
        let path = std::path::Path::new(&args.scenario);
        let shipped = crate::scenario::shipped::shipped(&args.scenario);
        // A file of that name wins over a shipped id, so a local edit is always what runs.
        let loaded = match shipped {
            Some(text) if !path.is_file() => {
                let label = format!("scenarios/{}.toml (shipped)", args.scenario);
                validate::load_str(&label, text).map(|s| {
                    let id = identity::identify(&s, None);
                    (s, id)
                })
            }
            _ => validate::load_file(path).map(|s| {
                let id = identity::identify(&s, Some(path));
                (s, id)
            }),
        };
        match loaded {
            Ok(v) => v,
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                if !path.exists() && shipped.is_none() {
                    let ids: Vec<&str> = crate::scenario::shipped::SHIPPED
                        .iter()
                        .map(|(id, _)| *id)
                        .collect();
                    return Err(CliError::Usage(format!(
                        "SCENARIO {:?} is neither a file nor a shipped scenario ({})",
                        args.scenario,
                        ids.join(", ")
                    )));
                }
                return Err(CliError::Usage(format!(
                    "{} error(s) in {}",
                    diagnostics.len(),
                    args.scenario
                )));
            }
        }
    };
    if !args.targets.is_empty() {
        for t in &args.targets {
            t.parse::<OrchestratorUri>()
                .map_err(|e| CliError::Usage(format!("--target {t:?}: {e}")))?;
        }
        scenario.targets = Targets::Explicit {
            uris: args.targets.clone(),
        };
    }

    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&scenario.id));
    check_writable(&out_dir).map_err(CliError::Failed)?;
    let shipper = shipper_from(&args.ship)?;

    let http = probe::http_client()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot build the HTTP client: {e}")))?;
    let resolved = targets::resolve_run(&scenario.targets, &http, &scenario.model_id)
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot resolve the targets: {e}")))?;
    let labels = resolved.labels();
    eprintln!(
        "lvt: running {}@{} against {} target(s): {}",
        identity.id,
        identity.version,
        labels.len(),
        labels.join(", ")
    );

    let opts = executor::RunOptions {
        progress: match args.progress {
            ProgressArg::Auto => crate::run::progress::ProgressMode::Auto,
            ProgressArg::Terminal => crate::run::progress::ProgressMode::Terminal,
            ProgressArg::Lines => crate::run::progress::ProgressMode::Lines,
            ProgressArg::Off => crate::run::progress::ProgressMode::Off,
        },
        payment: payment_config(args.remote_signer.as_deref())?,
        region: args.ship.region.clone(),
        ..Default::default()
    };
    let events = if matches!(resolved, targets::RunTargets::Network(_)) {
        GatewayEvents::start(&args.ship)?
    } else {
        GatewayEvents::default()
    };
    let opts = executor::RunOptions {
        observations: events.sink(),
        ..opts
    };
    let cancel = ctrl_c_token();
    let report = executor::execute_targets(&scenario, identity, resolved, &opts, cancel).await;
    drop(opts);
    events.finish().await;
    let report = report.map_err(|e| CliError::Failed(e.into()))?;
    let paths = output::write_outputs(&report, &out_dir)
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot write the outputs: {e}")))?;

    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| CliError::Failed(e.into()))?
        );
    } else {
        println!("{}", run_headline(&report));
        println!();
        print!("{}", summary::summary_table(&report.groups));
        println!();
        if report.verdicts.is_empty() {
            println!("no thresholds");
        } else {
            print!("{}", verdict::verdict_table(&report.verdicts));
        }
    }
    for p in [&paths.run_json, &paths.junit_xml, &paths.report_html] {
        eprintln!("lvt: wrote {}", p.display());
    }
    for v in report.verdicts.iter().filter(|v| v.failed()) {
        eprintln!(
            "lvt: threshold {} {}: {}",
            v.name(),
            v.status.as_str(),
            v.message
        );
    }
    let records: Vec<lvt_schema::SessionReport> =
        report.sessions.iter().map(|s| s.report.clone()).collect();
    Ok(ship_and_adjust(shipper.as_ref(), &records, output::exit_code(&report)).await)
}

/// One line saying what ran, how it ended and how many sessions it had.
fn run_headline(report: &crate::run::output::RunReport) -> String {
    use crate::run::record::StopReason;
    let stop = match &report.stop {
        StopReason::Completed => "completed".to_string(),
        StopReason::Interrupted => "interrupted".to_string(),
        StopReason::Aborted { threshold } => format!("aborted: threshold {threshold} failed"),
    };
    let mut line = format!(
        "{}@{}: {} session(s) against {} target(s) in {:.1} s, {stop}; peak {} in flight",
        report.scenario.id,
        report.scenario.version,
        report.sessions.len(),
        report.targets.len(),
        report.duration_s(),
        report.peak_in_flight
    );
    if report.dropped_arrivals > 0 {
        line.push_str(&format!(
            ", {} arrival(s) dropped (max_in_flight reached)",
            report.dropped_arrivals
        ));
    }
    line
}

/// `lvt-runs/{id}-{UTC yyyymmddThhmmssZ}`.
fn default_out_dir(id: &str) -> PathBuf {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    PathBuf::from("lvt-runs").join(format!("{id}-{stamp}"))
}

/// Creates `dir` and proves a file can be written in it, before a run that may last hours.
fn check_writable(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create output directory {}: {e}", dir.display()))?;
    let probe_file = dir.join(".lvt-write-check");
    std::fs::write(&probe_file, b"")
        .map_err(|e| anyhow::anyhow!("output directory {} is not writable: {e}", dir.display()))?;
    // The check file is empty and ours; failing to remove it changes nothing about the run.
    let _ = std::fs::remove_file(&probe_file);
    Ok(())
}

async fn run_sim(args: SimArgs) -> Result<u8, CliError> {
    let opts = lvt_gateway::sim::SimOptions {
        listen: args.listen,
        profile: args.profile,
        config: args.config,
        plaintext: args.plaintext,
        status_interval_s: args.status_interval,
        json: args.json,
        advertise_host: args.advertise_host,
    };
    let cancel = ctrl_c_token();
    lvt_gateway::sim::run(opts, async move { cancel.cancelled().await })
        .await
        .map_err(|e| {
            use lvt_gateway::sim::{FleetError, ProfileError, SimError};
            // A bad profile or fleet file, or options that do not fit together (the
            // simulator's own checks, plain messages without a cause), is the user's input;
            // a port that cannot be bound is not.
            let config_error = e.chain().any(|c| {
                c.is::<ProfileError>()
                    || c.is::<FleetError>()
                    || matches!(
                        c.downcast_ref::<SimError>(),
                        Some(SimError::Profile(_) | SimError::Fleet(_))
                    )
            }) || (e.source().is_none()
                && e.downcast_ref::<SimError>().is_none());
            if config_error {
                CliError::Usage(format!("{e:#}"))
            } else {
                CliError::Failed(e)
            }
        })?;
    Ok(EXIT_OK)
}

/// Parses `30s`, `2m`, `500ms`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 30s, 2m, 500ms)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_complexity(s: &str) -> Result<Complexity, String> {
    match s {
        "low" => Ok(Complexity::Low),
        "medium" => Ok(Complexity::Medium),
        "high" => Ok(Complexity::High),
        other => Err(format!("{other:?} is not a complexity (low, medium, high)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn region_labels_are_single_words() {
        use clap::Parser;
        let region = |args: &[&str]| {
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Run(run) => run.ship.region,
                Command::Probe(probe) => probe.ship.region,
                _ => unreachable!("only run and probe are parsed here"),
            })
        };
        assert_eq!(
            region(&["lvt", "run", "s.toml", "--region", "eu-west"]).expect("valid"),
            Some("eu-west".to_owned())
        );
        assert_eq!(
            region(&["lvt", "probe", "o:8935", "--region", "us-east"]).expect("valid"),
            Some("us-east".to_owned())
        );
        assert_eq!(region(&["lvt", "run", "s.toml"]).expect("valid"), None);
        for bad in ["", "eu west", "eu\twest"] {
            let error = region(&["lvt", "run", "s.toml", "--region", bad]).expect_err(bad);
            assert!(
                error
                    .to_string()
                    .contains("a region label is a non-empty word"),
                "{error}"
            );
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
