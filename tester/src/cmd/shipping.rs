//! The shipping flags that `lvt probe` and `lvt run` share (`--collector`, `--kafka`, `--key`,
//! `--spool`, `--region`, `--events-topic`): building the transport they ask for, shipping the
//! records with a report on stderr, and the network sessions' analytics events.

use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::common::{CliError, EXIT_FAILED, EXIT_OK};

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
    /// How long one batch may take to be acknowledged before it is spooled (the agent's
    /// `ship_timeout_s`); the shippers' default when absent.
    #[arg(skip)]
    pub request_timeout: Option<std::time::Duration>,
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

/// Builds the transport `--collector URL --key FILE` or `--kafka BROKERS --key FILE` ask for,
/// or `None` without them. A bad URL, empty brokers or an unreadable key is a usage error.
pub(super) fn shipper_from(args: &ShipArgs) -> Result<Option<crate::ship::Transport>, CliError> {
    use crate::ship::Transport;
    use crate::ship::kafka::{DEFAULT_KAFKA_TOPIC, KafkaSetupError, KafkaShipper};
    let mut options = crate::ship::ShipOptions {
        spool_dir: args.spool.clone(),
        ..Default::default()
    };
    if let Some(timeout) = args.request_timeout {
        options.request_timeout = timeout;
    }
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
                    // librdkafka refusing the producer; only a build with Kafka has that cause.
                    #[allow(unreachable_patterns)]
                    other => CliError::Failed(anyhow::anyhow!("{other}")),
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
pub(super) struct GatewayEvents {
    sink: Option<lvt_gateway::gateway::observe::ObservationSink>,
    emitter: Option<tokio::task::JoinHandle<lvt_gateway::gateway::events::EmitterReport>>,
}

impl GatewayEvents {
    pub(super) fn start(args: &ShipArgs) -> Result<Self, CliError> {
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

    pub(super) fn sink(&self) -> Option<lvt_gateway::gateway::observe::ObservationSink> {
        self.sink.clone()
    }

    /// Closes the sink and waits until the emitter delivered (or gave up on) what it holds.
    pub(super) async fn finish(self) {
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

pub(super) fn shipper(
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
pub(super) async fn ship_and_adjust(
    shipper: Option<&crate::ship::Transport>,
    records: &[lvt_schema::SessionReport],
    code: u8,
) -> u8 {
    let Some(shipper) = shipper else {
        return code;
    };
    let shipped = match shipper.ship(records).await {
        Ok(delivered) => crate::ship::Shipped {
            offered: records.len(),
            delivered,
            failures: Vec::new(),
        },
        Err(error) => crate::ship::Shipped {
            offered: records.len(),
            delivered: error.delivered(),
            failures: vec![error],
        },
    };
    report_shipped(shipper, &shipped, code)
}

/// Prints what a shipment delivered and where the rest was spooled, and adjusts the exit code
/// as [`ship_and_adjust`] says.
pub(super) fn report_shipped(
    shipper: &crate::ship::Transport,
    shipped: &crate::ship::Shipped,
    code: u8,
) -> u8 {
    let outcome = shipped.delivered;
    if shipped.failures.is_empty() {
        match shipper {
            crate::ship::Transport::Http(http) => eprintln!(
                "lvt: shipped {} record(s) to {} (inserted {}, duplicates {})",
                outcome.records,
                http.url(),
                outcome.inserted,
                outcome.duplicates
            ),
            // The collector stores them when it consumes the topic, so there is no
            // inserted/duplicate count to report here.
            crate::ship::Transport::Kafka(_) => eprintln!(
                "lvt: shipped {} record(s) in {} batch(es) to {}",
                outcome.records,
                outcome.batches,
                shipper.destination()
            ),
        }
        return code;
    }
    for error in &shipped.failures {
        eprintln!(
            "lvt: shipping to {} failed: {error} ({} of {} record(s) delivered)",
            shipper.destination(),
            outcome.records,
            shipped.offered
        );
        for path in error.spooled() {
            eprintln!("lvt: spooled {}", path.display());
        }
    }
    if code == EXIT_OK { EXIT_FAILED } else { code }
}
