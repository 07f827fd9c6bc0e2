//! `lvt discover`: lists orchestrators from discovery sources with what each offers and
//! whether it is usable for a model.

use std::time::Duration;

use clap::Args;

use lvt_gateway::discovery::{SourceSpec, SpecOptions};

use super::common::{CliError, EXIT_FAILED, EXIT_OK, parse_duration};
use crate::probe;

/// The long help of `lvt discover` (`--help`): what it does, its inputs and its exit codes.
pub const HELP: &str = "List orchestrators from discovery sources, ask each one \
GetOrchestrator in parallel (as a gateway does) and print what it offers: eth address, \
discovery latency, live-video-to-video models with warm/idle/in-use capacity, GPUs, price, and \
whether it is usable for --model or why it was dropped (unreachable, timeout, incapable, \
no_capacity, bad_response). Usable orchestrators come first, in the order a go-livepeer \
gateway would try them: warm first, then lowest latency.\n\n\
Sources are given as --discovery SPEC, the same specs as `lvt probe --network` takes \
(static:URI[,URI...], webhook:URL, naap:URL, chain or chain:RPC_URL), or with one flag per kind \
below; they can be combined, and an orchestrator named twice is asked once:\n\
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
    /// A discovery source as `lvt probe --network` takes it: static:URI[,URI...], webhook:URL,
    /// naap:URL, chain or chain:RPC_URL (repeatable; combines with the flags below, which are
    /// the same sources by kind).
    #[arg(long, value_name = "SPEC")]
    pub discovery: Vec<String>,
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
    /// The Livepeer Controller address for an on-chain source (default: Arbitrum One's).
    #[arg(long, value_name = "ADDR")]
    pub controller: Option<String>,
    /// Read service URIs from this ServiceRegistry for an on-chain source instead of the
    /// Controller's; `ai` is the AI service registry on Arbitrum One.
    #[arg(long, value_name = "ADDR")]
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

/// The sources the flags name, each with the flag that named it (for error messages):
/// `--discovery SPEC`s first, then the older per-kind flags, which are the same specs.
fn specs(args: &DiscoverArgs) -> Result<Vec<(&'static str, SourceSpec)>, CliError> {
    let mut specs = Vec::new();
    for text in &args.discovery {
        let spec = text
            .parse::<SourceSpec>()
            .map_err(|e| CliError::Usage(format!("--discovery {e}")))?;
        specs.push(("--discovery", spec));
    }
    if !args.static_uris.is_empty() {
        specs.push((
            "--static",
            SourceSpec::static_list(args.static_uris.iter().cloned()),
        ));
    }
    if let Some(url) = &args.webhook {
        specs.push(("--webhook", SourceSpec::webhook(url.clone())));
    }
    if let Some(url) = &args.naap {
        specs.push(("--naap", SourceSpec::naap(url.clone())));
    }
    if let Some(rpc_url) = &args.chain {
        let rpc_url = (!rpc_url.is_empty()).then(|| rpc_url.clone());
        specs.push(("--chain", SourceSpec::chain(rpc_url)));
    }
    if specs.is_empty() {
        return Err(CliError::Usage(
            "no discovery source: give --discovery SPEC (static:URI,..., webhook:URL, naap:URL, \
             chain[:RPC_URL]) or --static URI..., --webhook URL, --naap URL, --chain [RPC_URL]"
                .into(),
        ));
    }
    let on_chain = specs
        .iter()
        .any(|(_, spec)| matches!(spec, SourceSpec::Chain { .. }));
    if !on_chain && (args.controller.is_some() || args.service_registry.is_some()) {
        return Err(CliError::Usage(
            "--controller and --service-registry go with an on-chain source (--chain or \
             --discovery chain[:RPC_URL])"
                .into(),
        ));
    }
    Ok(specs)
}

/// `lvt discover`: reads the sources, asks every candidate GetOrchestrator, prints the
/// inventory, and exits 0 only when some orchestrator is usable.
pub async fn run(args: DiscoverArgs) -> Result<u8, CliError> {
    use lvt_gateway::discovery::{self, DiscoverySource as _, InventoryOptions, Source};
    let options = SpecOptions {
        model: args.model.clone(),
        timeout: Some(args.timeout),
        controller: args.controller.clone(),
        service_registry: args.service_registry.clone(),
    };
    // Every value is checked before anything is asked, so that a typo is a usage error.
    let mut sources = Vec::new();
    for (flag, spec) in specs(&args)? {
        let source = spec.into_source(&options).map_err(|e| {
            CliError::Usage(if flag == "--discovery" {
                format!("--discovery {e}")
            } else {
                format!("{flag}: {}", e.detail())
            })
        })?;
        sources.push(source);
    }
    let http = probe::http_client()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot build the HTTP client: {e}")))?;
    let mut lists = Vec::with_capacity(sources.len());
    for source in &sources {
        let found = match source {
            // The on-chain walk says what it found and what it skipped, on stderr so that
            // --json output stays one document.
            Source::Chain(chain) => {
                let found = chain
                    .discover(&http)
                    .await
                    .map_err(|e| CliError::Failed(anyhow::anyhow!("{}: {e}", chain.origin())))?;
                for line in found.report_lines() {
                    eprintln!("lvt: {line}");
                }
                found.candidates()
            }
            other => other
                .candidates(&http)
                .await
                .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?,
        };
        lists.push(found);
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
