//! `lvt discover`: lists orchestrators from discovery sources with what each offers and
//! whether it is usable for a model.

use std::time::Duration;

use clap::Args;

use super::common::{CliError, EXIT_FAILED, EXIT_OK, parse_duration};
use crate::probe;

/// The long help of `lvt discover` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "List orchestrators from discovery sources, ask each one \
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

/// `lvt discover`: reads the sources, asks every candidate GetOrchestrator, prints the
/// inventory, and exits 0 only when some orchestrator is usable.
pub async fn run(args: DiscoverArgs) -> Result<u8, CliError> {
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
        for line in found.report_lines() {
            eprintln!("lvt: {line}");
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
