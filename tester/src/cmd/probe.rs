//! `lvt probe`: one live video-to-video session against one orchestrator (or through network
//! selection with `--network`), printed as a table or JSON and optionally shipped.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use lvt_schema::{Complexity, Outcome};
use lvt_wire::live::OrchestratorUri;

use super::common::{
    CliError, EXIT_FAILED, EXIT_OK, VerifyArgs, address_verifier, parse_duration, payment_config,
};
use super::shipping::{GatewayEvents, ShipArgs, ship_and_adjust, shipper_from};
use crate::encode::{ClipConfig, encode_clip};
use crate::probe::{self, ProbeOptions, Timeouts};
use crate::report;
use crate::shutdown::ctrl_c_token;

/// The long help of `lvt probe` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "Run one live video-to-video session against one orchestrator now and report it.\n\n\
The probe does what a gateway does: GetOrchestrator over gRPC, POST /live-video-to-video, then it \
publishes a synthetic 512x512 30 fps H.264 stream in real time over trickle, reads the output \
and events channels, sends control keepalives and one params update halfway, and stops cleanly. \
Every timing is taken on the tester's own clock.\n\n\
ORCHESTRATOR is host:port or https://host:port (TLS; the certificate is not verified but its \
SHA-256 fingerprint is recorded: trust on first use) or http://host:port (plaintext).\n\n\
With --network there is no ORCHESTRATOR: the session goes through network selection as a \
go-livepeer gateway runs a stream. It discovers candidates (--discovery static:URI,URI | \
webhook:URL | naap:URL | chain[:RPC_URL], the same specs as `lvt discover`), orders them (--strategy go-livepeer | \
score-weighted:SEED), starts on the first that accepts (20 tries within 2 s), swaps when the \
serving one fails (at most 2 swaps in 3 minutes) and reports every swap with its output freeze \
and each orchestrator's share. With --collector (or --kafka and --events-topic) it also ships \
the session's go-livepeer analytics events.\n\n\
With --gateway URL there is no ORCHESTRATOR either: the session streams into a go-livepeer \
gateway as its users do (docs/gateway-mode.md): the clip over WHIP, the output over WHEP, the \
status route polled, the params update through the update route, e2e latency read from the \
output pictures. --pin SUBSTRING asks the gateway for the orchestrator whose URL contains it \
(its `orchestrator` parameter); --header 'Name: value' adds a header to every request (a stream \
key, an API key).\n\n\
Jobs are offchain (an empty payment) unless --remote-signer URL pays them through a go-livepeer \
remote signer.\n\n\
Exit codes: 0 the session passed; 1 it failed (with a failure class) or was unscored \
(orchestrator busy); 2 usage or configuration error.";

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The orchestrator: host:port, https://host:port or http://host:port (not with --network).
    #[arg(
        required_unless_present_any = ["network", "gateway"],
        conflicts_with_all = ["network", "gateway"]
    )]
    pub orchestrator: Option<String>,
    /// Run through network selection instead of one orchestrator (needs --discovery).
    #[arg(long, requires = "discovery", conflicts_with = "gateway")]
    pub network: bool,
    /// Stream into this go-livepeer gateway over WHIP and play the output over WHEP
    /// (http://host:port or https://host:port).
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    /// With --gateway: the stream name (letters and digits; default a fresh random one).
    #[arg(long, requires = "gateway")]
    pub stream: Option<String>,
    /// With --gateway: pin the orchestrator whose URL contains this (the `orchestrator` query
    /// parameter of go-livepeer's WHIP route).
    #[arg(long, value_name = "SUBSTRING", requires = "gateway")]
    pub pin: Option<String>,
    /// With --gateway: a header sent with every request, 'Name: value' (repeatable).
    #[arg(long, value_name = "'NAME: VALUE'", requires = "gateway")]
    pub header: Vec<String>,
    /// Discovery for --network: static:URI[,URI...], webhook:URL, naap:URL, chain or
    /// chain:RPC_URL (on-chain, Arbitrum One's contracts) (repeatable; as `lvt discover`).
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
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub ship: ShipArgs,
}

/// Runs `lvt probe` and returns its exit code.
pub async fn run(args: ProbeArgs) -> Result<u8, CliError> {
    let network = if args.network {
        Some(network_probe_options(&args)?)
    } else {
        None
    };
    let gateway = args
        .gateway
        .as_deref()
        .map(|url| gateway_options(url, &args))
        .transpose()?;
    let target: OrchestratorUri = match (&args.orchestrator, &network) {
        (Some(o), _) => o
            .parse()
            .map_err(|e| CliError::Usage(format!("ORCHESTRATOR {o:?}: {e}")))?,
        // Never contacted: each try of network selection sets the candidate it starts on.
        (None, _) if network.is_some() || gateway.is_some() => {
            OrchestratorUri::new(lvt_wire::live::Scheme::Https, "network.invalid", 443)
        }
        (None, _) => return Err(CliError::Usage("ORCHESTRATOR is required".into())),
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
    opts.address_verifier = address_verifier(&args.verify, &http)?;
    let cancel = ctrl_c_token();
    let report = match (network, gateway) {
        (_, Some(gateway)) => {
            probe::gateway::probe_gateway(&opts, &gateway, clip, &http, cancel).await
        }
        (Some((sources, strategy)), None) => {
            // Through network selection with an on-chain source and no --verify-addresses,
            // claims are checked through that source.
            if opts.address_verifier.is_none() {
                opts.address_verifier =
                    lvt_gateway::identity::AddressVerifier::of_sources(&sources, &http)
                        .map(Arc::new);
            }
            let events = GatewayEvents::start(&args.ship)?;
            let net = probe::network::NetworkOptions::new(opts, sources, strategy);
            let run = probe::network::run_network(&net, clip, &http, cancel, events.sink()).await;
            events.finish().await;
            run.report
        }
        (None, None) => probe::probe(&opts, clip, &http, cancel).await,
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

/// The gateway of `lvt probe --gateway`: its URL, stream, pin and headers, each checked.
fn gateway_options(
    url: &str,
    args: &ProbeArgs,
) -> Result<probe::gateway::GatewayOptions, CliError> {
    let parsed = probe::gateway::parse_gateway_url(url)
        .map_err(|why| CliError::Usage(format!("--gateway {url:?}: {why}")))?;
    let mut gateway = probe::gateway::GatewayOptions::new(parsed);
    if let Some(stream) = &args.stream {
        probe::gateway::check_stream_name(stream)
            .map_err(|why| CliError::Usage(format!("--stream {stream:?}: {why}")))?;
        gateway.stream = stream.clone();
        gateway.stream_id = stream.clone();
    }
    gateway.orchestrator = args.pin.clone();
    for header in &args.header {
        let (name, value) = header.split_once(':').ok_or_else(|| {
            CliError::Usage(format!("--header {header:?}: expected 'Name: value'"))
        })?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| CliError::Usage(format!("--header {header:?}: {e}")))?;
        let value = http::HeaderValue::from_str(value.trim())
            .map_err(|e| CliError::Usage(format!("--header {header:?}: {e}")))?;
        gateway.headers.append(name, value);
    }
    Ok(gateway)
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
    use lvt_gateway::discovery::{SourceSpec, SpecOptions};
    use probe::network::StrategyConfig;
    let options = SpecOptions {
        model: args.model.clone(),
        timeout: Some(Duration::from_secs(5)),
        controller: None,
        service_registry: None,
    };
    let mut sources = Vec::new();
    for spec in &args.discovery {
        let source = spec
            .parse::<SourceSpec>()
            .and_then(|spec| spec.into_source(&options))
            .map_err(|e| CliError::Usage(format!("--discovery {e}")))?;
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

fn parse_complexity(s: &str) -> Result<Complexity, String> {
    match s {
        "low" => Ok(Complexity::Low),
        "medium" => Ok(Complexity::Medium),
        "high" => Ok(Complexity::High),
        other => Err(format!("{other:?} is not a complexity (low, medium, high)")),
    }
}
