//! lvt-schema: the wire contract between the lvt tester and the collector.
//!
//! It owns the versioned per-session record ([`SessionReport`]) that a tester ships after every
//! live video-to-video session, with the measured metrics ([`SessionMetrics`]) and the runner's
//! own self-reports ([`RunnerReport`]) kept side by side. The crate is serde only so that both
//! sides (and third parties verifying the numbers) can depend on it cheaply.
//!
//! Compatibility rules:
//! - Readers tolerate unknown fields, so a newer tester may add fields without breaking an older
//!   collector. Optional fields and lists may also be absent and read as `None` or empty.
//! - Removing or renaming a field, changing its meaning or unit, or adding an enum variant bumps
//!   [`SCHEMA_VERSION`], because an older reader would misread or reject the record.
//! - A metric with no data is `None` (JSON `null`), never `0`: "no output" and "zero latency"
//!   must stay distinguishable.
//!
//! Units are part of every field name (`_ms`, `_bytes`, `_unix_ms`); FPS values are frames per
//! second.
//!
//! Beside the record the crate owns the rest of the contract: [`result_schema`] (the JSON Schema
//! checked in as `schema/result.schema.json`), [`events`] (the go-livepeer analytics
//! event envelope the collector also ingests) and [`sign`] (ed25519 signatures over result
//! batches and the key files that hold the keys). docs/result-record.md describes all three for
//! third parties.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod events;
pub mod heartbeat;
pub mod sign;

/// The version of the [`SessionReport`] layout; see the crate documentation for when it changes.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema (draft 2020-12) of one [`SessionReport`], generated from the types.
///
/// Object keys are sorted at every level so that the checked-in file does not depend on whether
/// some other crate in the build enabled serde_json's `preserve_order`. No object in it forbids
/// additional properties: readers tolerate unknown fields.
pub fn result_schema() -> serde_json::Value {
    sort_keys(schemars::schema_for!(SessionReport).to_value())
}

/// Rebuilds every object of `value` with its keys inserted in sorted order.
///
/// With serde_json's default map this is already the order, but with `preserve_order` (a feature
/// any crate in a build may turn on) maps keep insertion order; rebuilding sorted makes the output
/// the same either way.
pub(crate) fn sort_keys(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, inner)| (key, sort_keys(inner)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// One measured live video-to-video session, as shipped to the collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionReport {
    /// The layout version this record was written with ([`SCHEMA_VERSION`] at the writer).
    pub schema_version: u32,
    /// A unique id for the session chosen by the tester (a UUID), used by the collector to
    /// deduplicate retried deliveries.
    pub session_id: String,
    /// Wall-clock time the session started, milliseconds since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// Wall-clock time the session ended, milliseconds since the Unix epoch.
    pub ended_at_unix_ms: i64,
    /// Whether one orchestrator was tested directly or the network through a gateway.
    pub mode: TargetMode,
    /// The orchestrator tested; `None` when the target was the network and no single
    /// orchestrator can be named (for example when discovery failed).
    pub orchestrator: Option<OrchestratorRef>,
    /// The GPU the orchestrator reported for this pipeline and model, when it reported one.
    pub gpu: Option<Gpu>,
    /// The pipeline name, for example `live-video-to-video`.
    pub pipeline: String,
    /// The model id requested in the job start, for example `noop` or `streamdiffusion`.
    pub model_id: String,
    /// The prompt (params) the session ran with, when the scenario named one.
    pub prompt: Option<PromptRef>,
    /// How the session ended, as scored.
    pub outcome: Outcome,
    /// Why the session failed; `None` when it passed.
    pub failure: Option<Failure>,
    /// The values measured on the tester's own clock.
    pub metrics: SessionMetrics,
    /// What the runner said about itself over the events channel, kept beside the measurements.
    pub runner: RunnerReport,
    /// Always `true` for records written by lvt: the load was synthetic test load, so it must
    /// never be mistaken for real demand.
    pub is_test_load: bool,
    /// The tester's region label (for example `eu-west`), when the operator configured one; SLA
    /// cohorts are cut by region.
    #[serde(default)]
    pub region: Option<String>,
    /// The version of the tester that wrote the record (for example `lvt 0.1.0`), so that a
    /// change in measurement code can be traced in the data.
    #[serde(default)]
    pub tester_version: Option<String>,
    /// The scenario the session was part of; `None` for an ad-hoc probe. Results of different
    /// scenario versions (or of edited scenario files) must never be mixed, so the canonical
    /// hash and the git commit travel with every record.
    #[serde(default)]
    pub scenario: Option<ScenarioRef>,
    /// Network mode: every orchestrator that served the session, in order, with the share of
    /// the measurements its frames produced. Empty in direct mode (the one orchestrator is
    /// `orchestrator`). The SLA attributes each share to the orchestrator that produced it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served_by: Vec<ServedBy>,
    /// On chain (a remote signer paid the jobs): what the session's payments were worth.
    /// Absent offchain, where nothing is paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentSpent>,
    /// The service-level objective the session was held to: the limits its scenario's
    /// thresholds declare for a session like it (docs/sla.md, "lvt-v1"). The collector's
    /// `lvt-v1` formula scores latency and FPS against it while the cohort is too thin to be a
    /// benchmark. Absent for an ad-hoc probe and for a scenario that declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SessionSlo>,
}

/// Per-session limits derived from a scenario's thresholds (`startup_ms.* <`, `e2e_latency_ms.*
/// <`, `output_fps.* >`, each taken from the thresholds whose `where` filter the session
/// matches, the tightest when several do). A session meets a limit when its value is at or
/// within it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionSlo {
    /// First output frame within this many ms of the first input frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<f64>,
    /// The session's median e2e frame latency at most this many ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_latency_ms: Option<f64>,
    /// The session's mean output FPS at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_fps: Option<f64>,
}

impl SessionSlo {
    /// Whether the slo names no limit at all.
    pub fn is_empty(&self) -> bool {
        self.startup_ms.is_none() && self.e2e_latency_ms.is_none() && self.output_fps.is_none()
    }
}

/// What a session paid its orchestrators, on chain: every payment the remote signer generated
/// for it (the job start's and each one of the 5 s payment loop), whether or not the
/// orchestrator accepted it, since the tickets were handed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentSpent {
    /// Probabilistic micropayment tickets sent.
    pub tickets: u64,
    /// Their expected value in wei (`face_value × win_prob / (2^256 − 1)` per ticket, summed
    /// per payment and rounded down), in decimal digits: it may exceed what a JSON number holds
    /// exactly.
    #[schemars(regex(pattern = r"^[0-9]+$"))]
    pub expected_value_wei: String,
}

impl SessionReport {
    /// A record of a live video-to-video session that has not been scored yet: test load,
    /// direct mode, outcome `unscored_indeterminate`, every metric absent, started and ended at
    /// `started_at_unix_ms`. Writers fill in what they measure.
    pub fn new(
        session_id: impl Into<String>,
        model_id: impl Into<String>,
        started_at_unix_ms: i64,
    ) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            session_id: session_id.into(),
            started_at_unix_ms,
            ended_at_unix_ms: started_at_unix_ms,
            mode: TargetMode::Direct,
            orchestrator: None,
            gpu: None,
            pipeline: "live-video-to-video".to_string(),
            model_id: model_id.into(),
            prompt: None,
            outcome: Outcome::UnscoredIndeterminate,
            failure: None,
            metrics: SessionMetrics::default(),
            runner: RunnerReport::default(),
            is_test_load: true,
            region: None,
            tester_version: None,
            scenario: None,
            served_by: Vec::new(),
            payment: None,
            slo: None,
        }
    }
}

/// The identity of the scenario a session ran under (docs/scenarios.md, "Identity").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioRef {
    /// The scenario's id, for example `sla-hourly`.
    pub id: String,
    /// The scenario's semantic version, for example `1.0.0`.
    pub version: String,
    /// SHA-256 (hex) of the scenario's canonical form (formatting and comments do not change it).
    pub sha256: String,
    /// The commit of the git repository holding the scenario file, when it is in one.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// True when the file had uncommitted changes against that commit.
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// The repository the scenario was pulled from (`lvt agent`), as configured: its URL or path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_repository: Option<String>,
    /// The scenario file's path inside that repository, for example `scenarios/sla-hourly.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_path: Option<String>,
}

/// What a session targeted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetMode {
    /// One orchestrator, contacted directly by the tester acting as a gateway.
    Direct,
    /// The network, through a gateway that selects (and may swap) orchestrators.
    Network,
    /// A gateway as users stream into it: WebRTC in over WHIP, out over WHEP
    /// (docs/gateway-mode.md). The gateway selects the orchestrator, unless the session pinned
    /// one (`orchestrator`).
    Gateway,
}

/// An orchestrator as identified on the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrchestratorRef {
    /// The orchestrator's Ethereum address (0x-prefixed hex), when known (on-chain discovery or
    /// `OrchestratorInfo.address`).
    pub address: Option<String>,
    /// The service URI the job was sent to, for example `https://o.example:8935`.
    pub uri: String,
    /// SHA-256 (lowercase hex) of the TLS certificate the orchestrator presented, recorded on
    /// first use so later sessions can tell whether the endpoint changed.
    pub cert_sha256: Option<String>,
    /// How `cert_sha256` compares with the fingerprint the tester trusted for this URI before
    /// (trust on first use: within one `lvt run`, and across runs and restarts for
    /// `lvt agent`). Absent when no certificate was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_trust: Option<CertTrust>,
    /// Whether `address` is the orchestrator's: checked against the on-chain ServiceRegistry,
    /// which must map the address to `uri` (docs/result-record.md, "Identity"). Absent when no
    /// address was claimed; a record from a tester that did not check counts as unverified. The
    /// collector keys test-load SLA cells by the address only when it is verified, else by `uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_check: Option<AddressCheck>,
}

/// How an orchestrator's claimed address was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AddressCheck {
    /// The ServiceRegistry maps the address to the URI the tester connected to.
    Verified,
    /// Not checked: no chain to check against, or the chain could not be read. The address is
    /// the orchestrator's claim (GetOrchestrator's `address`) and nothing more.
    Unverified {
        /// Why it was not checked.
        reason: String,
    },
    /// The ServiceRegistry maps the address to another URI, or to none: the claim is false
    /// (or the orchestrator moved without updating its registration).
    Mismatch {
        /// The URI registered for the address; absent when it registered none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registered_uri: Option<String>,
    },
}

impl AddressCheck {
    /// Whether the address was verified.
    pub fn is_verified(check: Option<&AddressCheck>) -> bool {
        matches!(check, Some(AddressCheck::Verified))
    }
}

/// Trust on first use of an orchestrator's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CertTrust {
    /// The first certificate seen for this URI; it is trusted from now on.
    FirstUse,
    /// The certificate trusted for this URI.
    Matches,
    /// A different certificate than the one trusted for this URI: another machine, a re-keyed
    /// orchestrator, or someone in between. The trusted one is kept.
    Changed {
        /// The fingerprint trusted for this URI.
        known_sha256: String,
    },
}

/// A GPU as reported by the orchestrator's hardware information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Gpu {
    /// The GPU model name, for example `NVIDIA GeForce RTX 4090`.
    pub name: String,
    /// Total GPU memory in bytes, when reported.
    pub memory_bytes: Option<u64>,
}

/// The prompt (params document) a session ran with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PromptRef {
    /// The scenario's id for the prompt, when it has one.
    pub id: Option<String>,
    /// The scenario author's complexity class for the prompt.
    pub complexity: Option<Complexity>,
    /// MD5 (lowercase hex) of the canonical params JSON, the value the runner echoes as
    /// `inference_status.last_params_hash`.
    pub params_hash: String,
}

/// How demanding a prompt is, as classified by the scenario author.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// A short, simple style prompt.
    Low,
    /// A typical scene description.
    Medium,
    /// A long, detailed prompt.
    High,
}

/// How a session is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The session ran and met the scenario's pass criteria.
    Passed,
    /// The session failed for a reason attributable to the target; see [`Failure`].
    Failed,
    /// The orchestrator had no free capacity; not scored, because busy is not failed.
    UnscoredBusy,
    /// The result cannot be attributed to the target (for example the tester itself failed).
    UnscoredIndeterminate,
}

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    /// The fixed class of the failure; dashboards aggregate by it.
    pub class: FailureClass,
    /// A human-readable explanation; never used as a key.
    pub detail: String,
}

/// The fixed set of failure classes; docs/metrics.md defines each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// GetOrchestrator failed or timed out.
    GrpcError,
    /// The orchestrator was busy (reported with outcome `unscored_busy`).
    Capacity,
    /// Job start answered 403 (credentials).
    Auth,
    /// Job start answered 402 or 400 (payment).
    Payment,
    /// Job start answered 500 or another status, or a malformed response.
    StartError,
    /// The input channel vanished (404) mid-stream.
    PublishLost,
    /// No output frame within the startup timeout, or output stopped for too long.
    OutputTimeout,
    /// No event for 30 s.
    EventsTimeout,
    /// The runner reported an ERROR state or error events and produced no output.
    RunnerError,
    /// The orchestrator spoke the protocol wrong.
    ProtocolError,
    /// A tester bug.
    Internal,
    /// Gateway mode: ICE found no working candidate pair within the connect timeout.
    IceFailed,
    /// Gateway mode: ICE connected but the DTLS handshake did not complete.
    DtlsFailed,
    /// Gateway mode: the WHIP `POST` was refused (any status but 201) or unreachable.
    WhipRefused,
    /// Gateway mode: the WHEP `POST` was refused (404 past the playback wait, 429 viewer limit,
    /// another status) or unreachable.
    WhepRefused,
    /// Gateway mode: the gateway closed the ingest connection after its 201 before any output
    /// (go-livepeer's answer to an auth refusal).
    AuthClosed,
    /// Gateway mode: both connections up, and no output frame within the startup timeout.
    NoOutput,
}

/// The values measured on the tester's clock for one session.
///
/// Every metric that can lack data is an `Option`; `None` means "not measured", never zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionMetrics {
    /// GetOrchestrator round trip in milliseconds.
    pub get_orchestrator_ms: Option<f64>,
    /// Job start request (`POST /live-video-to-video`) round trip in milliseconds.
    pub job_start_ms: Option<f64>,
    /// First input frame sent to first output frame arrived, in milliseconds.
    pub startup_ms: Option<f64>,
    /// Per-frame end-to-end latency distribution in milliseconds.
    pub e2e_latency_ms: Option<LatencySummary>,
    /// Output frames per second over full windows since the first output frame.
    pub output_fps: Option<FpsSummary>,
    /// Input frames sent per second over the publishing span.
    pub input_fps: Option<f64>,
    /// Population standard deviation divided by mean of the per-window output FPS
    /// (dimensionless; 0 is perfectly steady).
    pub fps_jitter: Option<f64>,
    /// Population standard deviation of output frame inter-arrival intervals, in milliseconds.
    pub frame_interval_jitter_ms: Option<f64>,
    /// Gaps in the output longer than the stall threshold.
    pub stalls: StallSummary,
    /// Input segments published.
    pub segments_sent: u64,
    /// Output segments received.
    pub segments_received: u64,
    /// Input video frames sent.
    pub frames_sent: u64,
    /// Output video frames received (duplicates and unmatched frames included).
    pub frames_received: u64,
    /// Output frames whose PTS matched no input frame still remembered.
    pub frames_unmatched: u64,
    /// Output frames whose PTS had already arrived once (only the first counts for latency).
    #[serde(default)]
    pub frames_duplicate: u64,
    /// Output video frames that were keyframes (random access points).
    #[serde(default)]
    pub output_keyframes: u64,
    /// Elementary-stream bytes of all output video frames (no TS or PES overhead).
    #[serde(default)]
    pub output_video_bytes: u64,
    /// Input bytes published.
    pub bytes_sent: u64,
    /// Output bytes received.
    pub bytes_received: u64,
    /// Width of the output video in pixels (the last one seen).
    pub output_width: Option<u32>,
    /// Height of the output video in pixels (the last one seen).
    pub output_height: Option<u32>,
    /// Always `null`, no longer measured: ai-runner confirms an update when it is
    /// queued, on a ~10 s status tick, so the old figure was that tick's phase
    /// (docs/metrics.md). Kept so that records keep their shape.
    pub params_update_latency_ms: Option<f64>,
    /// Errors found while demultiplexing the output.
    pub media_errors: MediaErrors,
    /// Orchestrator swaps during the session; always empty in direct mode.
    #[serde(default)]
    pub swaps: Vec<Swap>,
    /// What the pictures of sampled output keyframes say about which input frame they answer,
    /// against what their timestamps say (docs/metrics.md, "Content check"). Absent when no
    /// output keyframe was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_check: Option<ContentCheck>,
    /// The output's timestamps disagree with its pictures: most checked keyframes carry a PTS
    /// that names another input frame than the one they show (or one never sent), or most
    /// output frames carry a PTS that no input frame sent before their arrival had. An
    /// orchestrator that shifts its output timestamps would otherwise look faster than it is;
    /// `e2e_latency_ms` then comes from the pictures (the checked keyframes) instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pts_untrusted: bool,
    /// Loading overlay frames (docs/metrics.md, "Loading overlay"): output the runner sent in
    /// place of processed frames while its pipeline (re)loaded, told apart by their pictures.
    /// They are counted here and nowhere else: `startup_ms` is the first *processed* frame, and
    /// latency, FPS and stalls are of processed frames. Absent when none was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loading_overlay: Option<LoadingOverlay>,
    /// Gateway mode: the WebRTC legs and the gateway's own figures (docs/metrics.md, "Gateway
    /// mode"). Absent in the other modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayFigures>,
}

/// What a gateway-mode session measured of its two WebRTC legs, on the tester's clock from the
/// WHIP `POST`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GatewayFigures {
    /// The gateway the session streamed into: its base URL, without credentials or query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The `orchestrator` pin the session asked the gateway for (a substring of an
    /// orchestrator's URL), if any. Not an orchestrator's identity: the gateway does not say
    /// which one served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_pin: Option<String>,
    /// WHIP `POST` to its 201 answer, ms.
    pub whip_answer_ms: Option<f64>,
    /// WHIP `POST` to the ingest's ICE connected, ms.
    pub ice_connected_ms: Option<f64>,
    /// WHIP `POST` to the ingest's DTLS connected (media can flow), ms.
    pub dtls_connected_ms: Option<f64>,
    /// The first WHEP `POST` to its 201 answer, ms.
    pub whep_answer_ms: Option<f64>,
    /// WHEP `POST`s answered 404 before the one answered 201 (the output not ready yet).
    pub whep_not_found: u32,
    /// WHIP `POST` to the playback's DTLS connected, ms.
    pub whep_connected_ms: Option<f64>,
    /// Keyframe requests (PLI/FIR) the gateway sent to the ingest.
    pub plis_received: u64,
    /// The ingest leg as the gateway's RTCP reports it, and the playback leg as received.
    pub ingest: RtpLeg,
    pub playback: RtpLeg,
    /// The runner states the status route reported, in order, each with when it was first
    /// seen (ms from the WHIP `POST`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runner_states: Vec<StateSeen>,
    /// The gateway's own ingest figures per track, from the last `gateway_status.ingest_metrics`
    /// the status route gave (go-livepeer refreshes them every 5 s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_ingest: Vec<GatewayTrackStats>,
}

/// One track of the gateway's WHIP ingest statistics, as its status route reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GatewayTrackStats {
    /// `video` or `audio`.
    pub kind: String,
    pub packets_received: Option<u64>,
    pub packets_lost: Option<i64>,
    /// Interarrival jitter as the gateway states it.
    pub jitter: Option<f64>,
    /// Round trip as the gateway states it.
    pub rtt: Option<f64>,
    /// The gateway's own input-to-output latency, seconds (last input minus last output
    /// timestamp).
    pub latency_s: Option<f64>,
}

/// RTP figures of one video leg.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RtpLeg {
    pub packets: u64,
    pub bytes: u64,
    /// Fraction lost (0..1), as last reported.
    pub loss: Option<f64>,
    /// NACKs: received from the gateway (ingest), sent to it (playback).
    pub nacks: u64,
    /// Interarrival jitter in ms (playback: measured here; ingest: the gateway's RTCP report).
    pub jitter_ms: Option<f64>,
    /// Mean bitrate over the leg's life, kbit/s.
    pub bitrate_kbps: Option<f64>,
}

/// A runner state seen on the status route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StateSeen {
    pub state: String,
    pub at_ms: f64,
}

/// The loading overlay frames of a session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadingOverlay {
    /// Overlay frames received.
    pub frames: u64,
    /// First input frame sent to the first overlay frame's arrival, ms.
    pub first_ms: f64,
    /// First input frame sent to the last overlay frame's arrival, ms.
    pub last_ms: f64,
}

/// The content check of a session's output: sampled output keyframes decoded and the input
/// frame number drawn in the picture read back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContentCheck {
    /// Output frames sampled: the first output frame whose PTS names a frame past a step of the
    /// clip's luminance marker, at every Nth step.
    pub samples: u32,
    /// Of those, samples that gave no evidence: the frame number could not be read and no
    /// frame showed the marker's step (restyled beyond both, or not a picture of the input).
    pub unreadable: u32,
    /// Of the readable ones, those whose PTS names another input frame than the picture shows
    /// (beyond a frame and a half), or none that was sent.
    pub disagreements: u32,
    /// Of the readable ones, those decided by the luminance marker because the frame number
    /// could not be read.
    #[serde(default)]
    pub by_luminance: u32,
    /// Median latency by content: arrival of the sampled frame minus the send time of the
    /// input frame its picture shows (by the marker: arrival of the first frame showing the
    /// step minus the send time of the step's input frame), ms.
    pub latency_p50_ms: Option<f64>,
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median, in milliseconds.
    pub p50: f64,
    /// 90th percentile, in milliseconds.
    pub p90: f64,
    /// 95th percentile, in milliseconds.
    pub p95: f64,
    /// 99th percentile, in milliseconds.
    pub p99: f64,
    /// Largest sample, in milliseconds.
    pub max: f64,
    /// Arithmetic mean, in milliseconds.
    pub mean: f64,
    /// Smallest sample, in milliseconds.
    pub min: f64,
}

/// Output frame rate over fixed windows, in frames per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FpsSummary {
    /// Mean of the per-window FPS.
    pub mean: f64,
    /// 5th percentile (nearest rank) of the per-window FPS: the bad moments.
    pub p5: f64,
    /// Median (nearest rank) of the per-window FPS.
    pub p50: f64,
    /// Number of full windows the summary covers.
    pub windows: u32,
}

/// Gaps in the output longer than the stall threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StallSummary {
    /// Number of stalls.
    pub count: u32,
    /// Sum of all stall lengths, in milliseconds.
    pub total_ms: f64,
    /// The longest stall, in milliseconds (0 when there was none).
    pub longest_ms: f64,
}

/// Error counters of the MPEG-TS demultiplexer reading the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MediaErrors {
    /// TS packets whose continuity counter skipped.
    pub cc_errors: u64,
    /// Times the demultiplexer lost the 0x47 sync byte and had to search for it again.
    pub sync_losses: u64,
    /// PES packets with a bad start code or header.
    pub pes_errors: u64,
    /// Frames cut short (their PES ended before its declared length).
    pub truncated_frames: u64,
}

/// One orchestrator swap made by the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Swap {
    /// Wall-clock time of the swap, milliseconds since the Unix epoch.
    pub at_unix_ms: i64,
    /// URI of the orchestrator swapped away from.
    pub from: String,
    /// URI of the orchestrator swapped to.
    pub to: String,
    /// The gateway's stated cause (the `orchestrator_swap` trace message).
    pub cause: String,
    /// How long the output froze around the swap, in milliseconds, when measured.
    pub freeze_ms: Option<f64>,
}

/// One orchestrator's share of a network-mode session: from when the gateway chose it until
/// it was swapped away from or the session ended, with the metrics of the frames it produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServedBy {
    /// The orchestrator that served this share.
    pub orchestrator: OrchestratorRef,
    /// The GPU it reported for the model, when it reported one.
    #[serde(default)]
    pub gpu: Option<Gpu>,
    /// When the gateway's job start on it succeeded, milliseconds since the Unix epoch.
    pub from_unix_ms: i64,
    /// When its share ended (swap or session end), milliseconds since the Unix epoch.
    pub to_unix_ms: i64,
    /// From the first input frame it was sent to the first output frame it produced, in
    /// milliseconds; `None` when it produced none.
    #[serde(default)]
    pub startup_ms: Option<f64>,
    /// Output frames it produced.
    #[serde(default)]
    pub frames_received: u64,
    /// End-to-end latency of its frames, in milliseconds.
    #[serde(default)]
    pub e2e_latency_ms: Option<LatencySummary>,
    /// Output FPS over its share.
    #[serde(default)]
    pub output_fps: Option<FpsSummary>,
    /// Output stalls inside its share.
    #[serde(default)]
    pub stalls: StallSummary,
    /// The swap cause that ended its share (the `orchestrator_swap` message), or `None` when
    /// the session ended while it served.
    #[serde(default)]
    pub ended_by: Option<String>,
    /// The failure class the gateway's swap cause maps to, when the share ended in a swap.
    #[serde(default)]
    pub failure: Option<FailureClass>,
}

/// What the runner reported about itself over the events channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunnerReport {
    /// Number of `status` events received.
    pub status_events: u32,
    /// The `state` of the last status event (for example `ONLINE`).
    pub last_state: Option<String>,
    /// Distinct states in the order first seen.
    #[serde(default)]
    pub states_seen: Vec<String>,
    /// `input_status.fps` of the last status event that carried it.
    pub input_fps: Option<f64>,
    /// `inference_status.fps` of the last status event that carried it.
    pub output_fps: Option<f64>,
    /// The runner's restart count (last status or restart event).
    pub restart_count: Option<u32>,
    /// Messages of `error` events, the first ones only (bounded).
    #[serde(default)]
    pub errors: Vec<String>,
    /// `inference_status.last_params_hash` of the last status event that carried it.
    pub last_params_hash: Option<String>,
    /// Distinct `stream_trace` event types in the order first seen (bounded).
    #[serde(default)]
    pub traces: Vec<String>,
    /// All events received, malformed ones included.
    #[serde(default)]
    pub events_received: u32,
    /// Events that were not a JSON envelope `{"event": {"type": ...}, ...}`.
    #[serde(default)]
    pub events_malformed: u32,
    /// Number of `error` events (including those beyond the bound of `errors`).
    #[serde(default)]
    pub error_events: u32,
}

#[cfg(test)]
mod tests;
