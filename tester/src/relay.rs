//! `lvt sim gateway --orchestrator`: the simulated gateway's streams relayed to orchestrators
//! over trickle by `lvt_gateway::gateway::relay`, through lvt's selection and swap cores.
//!
//! The simulator defines what runs a stream ([`Runner`]) and knows nothing of gateway
//! decisions; the relay knows nothing of the simulator. This adapter joins the two.

use std::sync::{Arc, Mutex};

use lvt_gateway::gateway::relay::{RelayConfig, RelayInput, RelayOutput, RelayStream, relay};
use lvt_gateway::gateway::swap::SwapRecord;
use lvt_sim::gateway::{Runner, RunnerInput, RunnerLink, RunnerOutput, StreamStart};
use tokio::sync::mpsc;

/// Runs each stream of a simulated gateway through the relay.
pub struct RelayRunner {
    config: Arc<RelayConfig>,
    http: reqwest::Client,
    /// Every swap of every stream, in the order they finished (for tests and the demo).
    swaps: Arc<Mutex<Vec<SwapRecord>>>,
    /// The orchestrators that served, in the order they started serving.
    served: Arc<Mutex<Vec<String>>>,
}

impl RelayRunner {
    /// A runner relaying over `http` (the probe's client, [`crate::probe::http_client`]:
    /// orchestrators serve self-signed certificates).
    pub fn new(config: RelayConfig, http: reqwest::Client) -> Self {
        Self {
            config: Arc::new(config),
            http,
            swaps: Arc::default(),
            served: Arc::default(),
        }
    }

    /// Every swap so far, of every stream.
    pub fn swaps(&self) -> Vec<SwapRecord> {
        self.swaps.lock().expect("swaps lock").clone()
    }

    /// The orchestrators that started serving a stream, in order.
    pub fn served(&self) -> Vec<String> {
        self.served.lock().expect("served lock").clone()
    }
}

impl Runner for RelayRunner {
    fn start(&self, stream: StreamStart) -> RunnerLink {
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let relayed = RelayStream {
            request_id: stream.request_id,
            stream_id: stream.stream_id,
            model_id: stream.pipeline,
            params: stream.params,
            pin: stream.orchestrator,
        };
        let (swaps, served) = (Arc::clone(&self.swaps), Arc::clone(&self.served));
        let name = stream.name;
        let output = move |out: RelayOutput| {
            let given = match out {
                RelayOutput::Video {
                    pts,
                    data,
                    keyframe,
                } => RunnerOutput::Video {
                    pts,
                    data,
                    keyframe,
                },
                RelayOutput::Status(event) => RunnerOutput::Status(event),
                RelayOutput::Ended(why) => RunnerOutput::Ended(why),
                RelayOutput::Serving { orchestrator } => {
                    tracing::info!(message = "Stream served.", stream = %name, %orchestrator);
                    served.lock().expect("served lock").push(orchestrator);
                    return true;
                }
                RelayOutput::Swapped(record) => {
                    tracing::info!(message = "Orchestrator swapped.", stream = %name, from = %record.from, to = ?record.to, cause = record.cause.as_str());
                    swaps.lock().expect("swaps lock").push(record);
                    return true;
                }
            };
            out_tx.send(given).is_ok()
        };
        tokio::spawn(relay(
            Arc::clone(&self.config),
            self.http.clone(),
            relayed,
            in_rx,
            output,
        ));
        RunnerLink {
            input: Box::new(move |input| {
                let relayed = match input {
                    RunnerInput::Video {
                        pts,
                        data,
                        keyframe,
                        ..
                    } => RelayInput::Video {
                        pts,
                        data,
                        keyframe,
                    },
                    RunnerInput::Audio { pts, data } => RelayInput::Audio { pts, data },
                    RunnerInput::Params(params) => RelayInput::Params(params),
                };
                in_tx.send(relayed).is_ok()
            }),
            output: out_rx,
        }
    }
}
