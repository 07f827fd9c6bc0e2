//! Organic load: sessions of real gateway traffic, derived from the go-livepeer events the
//! collector stores, so that the SLA has organic-load cells (`test_load = false`) beside the
//! tester's test-load cells and never mixed with them.
//!
//! [`OrganicFold`] is the sans-IO core: it folds `stream_trace`, `ai_stream_status` and
//! `ai_stream_events` envelopes per (gateway, stream) and, once a stream is finished, turns it
//! into a [`SessionReport`] with `is_test_load = false` and `mode = network`; the GPUs come from
//! the orchestrators' `network_capabilities` snapshots. A stream is
//! finished at `gateway_ingest_stream_closed`, or when no event of it arrived for the idle
//! timeout: go-livepeer delivers events at most once, so a lost close must not keep a stream
//! open forever. Time is an input (the collector's arrival clock), never read here.
//!
//! [`OrganicLoad`] is the thin edge the server holds: the events ingest feeds it what it stored,
//! and it ships finished sessions through the normal [`crate::store::Store::insert_batch`], so their SLA cells
//! follow like any record's. docs/sla.md ("Organic load") states every rule, and
//! [`OrganicFold::take_finished`] and `build_report` implement them.

use std::collections::HashSet;

mod fold;
mod load;
mod report;

pub use fold::{FoldStats, OrganicFold};
pub use load::OrganicLoad;

/// How long a stream may go without any event before it is finished anyway, in milliseconds.
/// A running stream sends a status event every 10 s and the gateway stops a job that sent none
/// for 30 s, so two minutes of silence means the stream is over and its close was lost.
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 120_000;

/// How many streams may be open at once by default; events of further streams are dropped and
/// counted, so a flood of bogus stream ids cannot grow the collector without bound.
pub const DEFAULT_MAX_OPEN_STREAMS: usize = 100_000;

/// The agent id the stored organic batches carry: they are derived by the collector, not shipped
/// by an agent, and `/v1/agents` lists them under this id.
pub const ORGANIC_AGENT_ID: &str = "organic";

/// The pipeline of every organic session: the gateway events describe live video-to-video
/// streams only.
pub const LIVE_PIPELINE: &str = "live-video-to-video";

/// The model id of a session whose events never named one.
pub const UNKNOWN_MODEL: &str = "unknown";

/// The most entries one stream keeps per list (traces, errors, status samples, orchestrator
/// sightings), so that one very long or very chatty stream stays bounded in memory.
const MAX_ITEMS_PER_STREAM: usize = 4096;

/// How many orchestrators' hardware the fold remembers at most (the network has a few hundred).
const MAX_KNOWN_ORCHESTRATORS: usize = 10_000;

/// How many finished sessions wait for the store at most when it keeps failing; beyond this the
/// oldest are dropped (and logged) rather than held forever.
const MAX_PENDING_SESSIONS: usize = 100_000;

/// The runner states whose `inference_status.fps` is not output of the stream yet.
const NOT_SERVING_STATES: [&str; 2] = ["LOADING", "OFFLINE"];

/// Whether the fold reads events of `family` (the envelope `type`): the stream-scoped families,
/// and `network_capabilities` for the orchestrators' GPUs. A caller can skip handing it anything
/// else.
pub fn folds_family(family: &str) -> bool {
    matches!(
        family,
        "stream_trace" | "ai_stream_status" | "ai_stream_events" | "network_capabilities"
    )
}

/// What the fold is told to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganicSettings {
    /// See [`DEFAULT_IDLE_TIMEOUT_MS`].
    pub idle_timeout_ms: i64,
    /// See [`DEFAULT_MAX_OPEN_STREAMS`].
    pub max_open_streams: usize,
    /// Gateways whose traffic is test load (lvt's own gateways): their events never become
    /// organic sessions. Compared with the envelope's `gateway` exactly.
    pub test_gateways: HashSet<String>,
}

impl Default for OrganicSettings {
    fn default() -> Self {
        Self {
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_open_streams: DEFAULT_MAX_OPEN_STREAMS,
            test_gateways: HashSet::new(),
        }
    }
}

#[cfg(test)]
mod tests;
