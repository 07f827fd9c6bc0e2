//! The inventory: `GetOrchestrator` to every candidate in parallel, and what each answer says
//! about serving live video-to-video with one model.
//!
//! The network part ([`inventory()`]) is a thin driver; what an answer means ([`classify`]) and
//! in which order a gateway would try the usable ones ([`selection_order`]) are pure functions.
//!
//! The request carries no capabilities, so that the orchestrator includes its hardware and
//! per-model prices (it leaves both out when asked with capabilities). The capacity check a
//! capability request would make on the orchestrator (`OrchestratorCapped`) is therefore made
//! here, from the advertised idle capacity of the model.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use futures::StreamExt as _;
use serde::Serialize;

use super::Candidate;
use lvt_wire::grpc::{
    GrpcError, LiveModelSummary, OrchestratorClient, OrchestratorSummary, live_request, summarize,
};

/// How long one candidate gets to answer `GetOrchestrator`, connection included: go-livepeer's
/// discovery gives a round of `GetOrchestrator` calls 3 s (`getOrchestratorsTimeoutLoop` in
/// discovery/discovery.go) and drops whoever has not answered by then.
pub const DEFAULT_GET_ORCHESTRATOR_TIMEOUT: Duration = Duration::from_secs(3);

/// How many candidates are asked at once by default. go-livepeer asks all at once; a bound
/// keeps a tester from opening thousands of connections for a large on-chain pool.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// What to ask and how patiently.
#[derive(Clone, Debug, PartialEq)]
pub struct InventoryOptions {
    /// The live video-to-video model a candidate must offer to be usable.
    pub model_id: String,
    /// Bound on each candidate's connect plus `GetOrchestrator`.
    pub timeout: Duration,
    /// How many candidates are asked at once (at least one).
    pub concurrency: usize,
    /// The gateway's address sent in the request (offchain it is not checked).
    pub gateway_address: [u8; 20],
}

impl Default for InventoryOptions {
    fn default() -> Self {
        InventoryOptions {
            model_id: "noop".to_string(),
            timeout: DEFAULT_GET_ORCHESTRATOR_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            gateway_address: [0; 20],
        }
    }
}

/// Why a candidate cannot be selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// No gRPC connection: refused, unresolvable, TLS or HTTP/2 handshake failed.
    Unreachable,
    /// No answer within the timeout.
    Timeout,
    /// It answered but does not offer live video-to-video with the model.
    Incapable,
    /// It offers the model but has no idle runner (or answered `OrchestratorCapped`).
    NoCapacity,
    /// It answered with an error status or an answer a gateway cannot use.
    BadResponse,
}

impl DropReason {
    /// The snake_case name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Unreachable => "unreachable",
            DropReason::Timeout => "timeout",
            DropReason::Incapable => "incapable",
            DropReason::NoCapacity => "no_capacity",
            DropReason::BadResponse => "bad_response",
        }
    }
}

/// Whether a candidate can be selected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Usable,
    Dropped { reason: DropReason, detail: String },
}

impl Status {
    pub fn is_usable(&self) -> bool {
        matches!(self, Status::Usable)
    }
}

/// What the inventory learned about one candidate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InventoryEntry {
    #[serde(flatten)]
    pub candidate: Candidate,
    /// From the start of the connection to the `GetOrchestrator` answer, on the tester's
    /// clock; absent when no answer came.
    pub latency_ms: Option<u64>,
    /// SHA-256 of the TLS certificate (https only), for trust on first use.
    pub cert_fingerprint: Option<String>,
    /// The answer, when there was one.
    pub info: Option<OrchestratorSummary>,
    #[serde(flatten)]
    pub status: Status,
}

impl InventoryEntry {
    /// The advertised state of `model_id`, when the orchestrator answered and offers it.
    pub fn model(&self, model_id: &str) -> Option<&LiveModelSummary> {
        self.info
            .as_ref()
            .and_then(|i| i.live_models.iter().find(|m| m.model_id == model_id))
    }
}

/// Every candidate with its status: the usable ones first, in the order a go-livepeer gateway
/// would try them ([`selection_order`]), then the dropped ones in candidate order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inventory {
    pub model_id: String,
    pub timeout_ms: u64,
    pub entries: Vec<InventoryEntry>,
}

impl Inventory {
    /// The usable candidates in selection order.
    pub fn usable(&self) -> impl Iterator<Item = &InventoryEntry> {
        self.entries.iter().filter(|e| e.status.is_usable())
    }

    /// The dropped candidates.
    pub fn dropped(&self) -> impl Iterator<Item = &InventoryEntry> {
        self.entries.iter().filter(|e| !e.status.is_usable())
    }

    /// A text table: one row per candidate with its address, latency, models, GPUs, price and
    /// status.
    pub fn table(&self) -> String {
        let header = [
            "URI",
            "ADDRESS",
            "LATENCY MS",
            "MODELS",
            "GPUS",
            "PRICE",
            "STATUS",
        ];
        let rows: Vec<[String; 7]> = self.entries.iter().map(|e| self.row(e)).collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[&str]| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<w$}  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&header);
        for row in &rows {
            line(&row.each_ref().map(String::as_str));
        }
        let usable = self.usable().count();
        let _ = writeln!(
            out,
            "{usable} of {} candidate(s) usable for live-video-to-video/{}",
            self.entries.len(),
            self.model_id
        );
        out
    }

    fn row(&self, e: &InventoryEntry) -> [String; 7] {
        let none = || "-".to_string();
        let info = e.info.as_ref();
        let address = info
            .and_then(|i| i.eth_address.clone())
            .unwrap_or_else(none);
        let latency = e.latency_ms.map_or_else(none, |l| l.to_string());
        let models = info
            .filter(|i| !i.live_models.is_empty())
            .map_or_else(none, |i| {
                i.live_models
                    .iter()
                    .map(|m| {
                        format!(
                            "{}({}, {} idle, {} in use)",
                            m.model_id,
                            if m.warm { "warm" } else { "cold" },
                            m.capacity,
                            m.capacity_in_use
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        let gpus = info.filter(|i| !i.gpus.is_empty()).map_or_else(none, |i| {
            // The hardware report repeats a GPU once per model it serves; count each GPU once.
            let mut by_name: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
            for gpu in &i.gpus {
                by_name.entry(&gpu.name).or_default().insert(&gpu.id);
            }
            by_name
                .iter()
                .map(|(name, ids)| format!("{}x {name}", ids.len()))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let price = info
            .and_then(|i| price_text(i, &self.model_id))
            .unwrap_or_else(none);
        let status = match &e.status {
            Status::Usable => "usable".to_string(),
            Status::Dropped { reason, detail } => {
                format!("dropped: {} ({detail})", reason.as_str())
            }
        };
        [
            e.candidate.uri.to_string(),
            address,
            latency,
            models,
            gpus,
            price,
            status,
        ]
    }
}

/// The price for `model_id`: its live price when listed, else the general price.
fn price_text(info: &OrchestratorSummary, model_id: &str) -> Option<String> {
    let live = info
        .live_prices
        .iter()
        .find(|p| p.model_id == model_id)
        .or_else(|| info.live_prices.iter().find(|p| p.model_id.is_empty()));
    match (live, info.price_per_unit, info.pixels_per_unit) {
        (Some(p), _, _) => Some(format!("{} wei/{} px", p.price_per_unit, p.pixels_per_unit)),
        (None, Some(price), Some(pixels)) => Some(format!("{price} wei/{pixels} px")),
        _ => None,
    }
}

/// What an answer (or the failure to get one) means for serving `model_id`.
pub fn classify(answer: Result<&OrchestratorSummary, &GrpcError>, model_id: &str) -> Status {
    let dropped = |reason, detail: String| Status::Dropped { reason, detail };
    let info = match answer {
        Ok(info) => info,
        Err(error) => {
            let reason = match error {
                GrpcError::Timeout { .. } => DropReason::Timeout,
                GrpcError::Status { .. } if error.is_capped() => DropReason::NoCapacity,
                GrpcError::Status { .. } => DropReason::BadResponse,
                GrpcError::InvalidUri { .. }
                | GrpcError::Connect { .. }
                | GrpcError::Tls { .. }
                | GrpcError::Handshake { .. } => DropReason::Unreachable,
            };
            return dropped(reason, error.to_string());
        }
    };
    if info.transcoder_uri.is_empty() {
        return dropped(
            DropReason::BadResponse,
            "the answer has no transcoder URI to start jobs at".to_string(),
        );
    }
    let Some(model) = info.live_models.iter().find(|m| m.model_id == model_id) else {
        let detail = if !info.advertises_live_video_to_video && info.live_models.is_empty() {
            "does not offer live-video-to-video (capability 35)".to_string()
        } else {
            let offered: Vec<&str> = info
                .live_models
                .iter()
                .map(|m| m.model_id.as_str())
                .collect();
            format!(
                "model {model_id} not offered (offers: {})",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )
        };
        return dropped(DropReason::Incapable, detail);
    };
    if model.capacity == 0 {
        return dropped(
            DropReason::NoCapacity,
            format!(
                "model {model_id} has no idle runner ({} in use)",
                model.capacity_in_use
            ),
        );
    }
    Status::Usable
}

/// The order in which go-livepeer's live gateway tries usable orchestrators for `model_id`:
/// warm ones (the model already loaded) before cold ones, since its selector takes from the
/// warm pool first; within each, by discovery latency, fastest first, since its pool keeps
/// orchestrators in the order their `GetOrchestrator` answers arrived. Ties, which the
/// gateway breaks by arrival, are broken by URI so the order is stable.
pub fn selection_order(a: &InventoryEntry, b: &InventoryEntry, model_id: &str) -> Ordering {
    let warm = |e: &InventoryEntry| e.model(model_id).is_some_and(|m| m.warm);
    // An entry without a latency never answered; it cannot be usable, but sort it last anyway.
    let latency = |e: &InventoryEntry| e.latency_ms.unwrap_or(u64::MAX);
    warm(b)
        .cmp(&warm(a))
        .then_with(|| latency(a).cmp(&latency(b)))
        .then_with(|| {
            a.candidate
                .uri
                .to_string()
                .cmp(&b.candidate.uri.to_string())
        })
}

/// Orders entries as [`Inventory::entries`] promises: usable ones by [`selection_order`], then
/// dropped ones, keeping their relative (candidate) order.
pub fn order_entries(entries: &mut [InventoryEntry], model_id: &str) {
    entries.sort_by(|a, b| match (a.status.is_usable(), b.status.is_usable()) {
        (true, true) => selection_order(a, b, model_id),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => Ordering::Equal,
    });
}

/// Asks every candidate `GetOrchestrator` (at most `opts.concurrency` at once, each within
/// `opts.timeout`) and returns the inventory. A failing candidate is data, never an error.
pub async fn inventory(candidates: Vec<Candidate>, opts: &InventoryOptions) -> Inventory {
    let concurrency = opts.concurrency.max(1);
    let mut entries: Vec<(usize, InventoryEntry)> =
        futures::stream::iter(candidates.into_iter().enumerate())
            .map(|(index, candidate)| async move { (index, inspect(candidate, opts).await) })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    // Completion order is arbitrary; candidate order is what dropped entries keep.
    entries.sort_by_key(|(index, _)| *index);
    let mut entries: Vec<InventoryEntry> = entries.into_iter().map(|(_, e)| e).collect();
    order_entries(&mut entries, &opts.model_id);
    Inventory {
        model_id: opts.model_id.clone(),
        timeout_ms: u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX),
        entries,
    }
}

/// One candidate: connect, `GetOrchestrator`, classify.
async fn inspect(candidate: Candidate, opts: &InventoryOptions) -> InventoryEntry {
    let started = tokio::time::Instant::now();
    let uri = candidate.uri.clone();
    let ask = async {
        let mut client = OrchestratorClient::connect(&uri, opts.timeout).await?;
        let info = client
            .get_orchestrator(live_request(opts.gateway_address, None))
            .await?;
        Ok::<_, GrpcError>((info, client.cert_fingerprint()))
    };
    // The client bounds the connect and the call separately; the candidate gets one budget.
    let answer = tokio::time::timeout(opts.timeout, ask)
        .await
        .unwrap_or_else(|_| {
            Err(GrpcError::Timeout {
                stage: lvt_wire::grpc::GrpcStage::Call,
                addr: uri.to_string(),
                timeout_ms: u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX),
            })
        });
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match answer {
        Ok((info, cert_fingerprint)) => {
            let summary = summarize(&info);
            let status = classify(Ok(&summary), &opts.model_id);
            InventoryEntry {
                candidate,
                latency_ms: Some(elapsed_ms),
                cert_fingerprint,
                info: Some(summary),
                status,
            }
        }
        Err(error) => {
            // An error status is an answer too: its latency is as real as a success's.
            let answered = matches!(error, GrpcError::Status { .. });
            InventoryEntry {
                candidate,
                latency_ms: answered.then_some(elapsed_ms),
                cert_fingerprint: None,
                info: None,
                status: classify(Err(&error), &opts.model_id),
            }
        }
    }
}
