//! The scenario file format: the Rust types are the single source of truth, serde reads them
//! from TOML (unknown keys are errors) and schemars generates `scenarios/schema.json` from them.
//! Doc comments on fields are written for scenario authors: they become the schema's
//! descriptions. A `network` target's `discovery` table is `lvt_gateway`'s `SourceSpec`, the
//! one description of a discovery source, which `--discovery SPEC` also parses.

use std::collections::BTreeMap;

use lvt_gateway::discovery::{SourceSpec, StaticEntry};
use lvt_schema::Complexity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One versioned scenario: what to run, against whom, how hard, and what counts as passing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "lvt scenario")]
pub struct Scenario {
    /// Stable identifier: lowercase letters, digits and dashes, unique across scenario files.
    pub id: String,
    /// Semantic version of this scenario (for example "1.2.0"). Bump it whenever what the
    /// scenario measures changes, so results of different versions are never mixed.
    #[schemars(with = "String")]
    pub version: semver::Version,
    /// What the scenario measures and why, for people reading results.
    pub description: String,
    /// Free-form labels for selecting scenarios (for example "ci", "sla").
    #[serde(default)]
    pub tags: Vec<String>,
    /// The AI pipeline under test. Only live video-to-video exists today.
    pub pipeline: Pipeline,
    /// The model the orchestrator runs (for example "streamdiffusion", or "noop" for the
    /// pass-through pipeline).
    pub model_id: String,
    /// The prompts sessions are run with. Every prompt is run against every target.
    pub prompts: Vec<Prompt>,
    /// The synthetic input stream the tester publishes.
    #[serde(default)]
    pub input: Input,
    /// How long a session lasts and when its params are updated.
    pub session: SessionPlan,
    /// Which orchestrators to test.
    pub targets: Targets,
    /// How many sessions to run and how they are scheduled.
    pub load: Load,
    /// Service-level objectives evaluated over the run's sessions; any failing threshold makes
    /// `lvt run` exit 99.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// How the end-of-run summary is grouped.
    #[serde(default)]
    pub report: ReportPlan,
}

/// The pipeline a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Pipeline {
    /// Live video-to-video over trickle (`POST /live-video-to-video`).
    #[serde(rename = "live-video-to-video")]
    LiveVideoToVideo,
}

impl Pipeline {
    /// The name used on the wire and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Pipeline::LiveVideoToVideo => "live-video-to-video",
        }
    }
}

/// One prompt: sent as the pipeline params at job start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// Identifier, unique within the scenario; recorded in every result.
    pub id: String,
    /// How demanding the prompt is: low, medium or high.
    pub complexity: Complexity,
    /// The pipeline params sent at job start, as a table (for example
    /// `{ prompt = "a watercolor painting", num_inference_steps = 2 }`).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// The synthetic input: an H.264 clip encoded once, replayed in real time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Input {
    /// Picture width in pixels (even, 64..=1920).
    pub width: u32,
    /// Picture height in pixels (even, 64..=1080).
    pub height: u32,
    /// Frames per second (1..=60).
    pub fps: u32,
    /// Segment (and GOP) duration in milliseconds; `fps * segment_ms` must be a multiple of
    /// 1000 so every segment holds a whole number of frames.
    pub segment_ms: u32,
    /// Target video bitrate in kbit/s (50..=20000).
    pub bitrate_kbps: u32,
}

impl Default for Input {
    /// 512x512 at 30 fps in 1-second segments at 1 Mbit/s: the live pipeline's default size.
    fn default() -> Self {
        Self {
            width: 512,
            height: 512,
            fps: 30,
            segment_ms: 1_000,
            bitrate_kbps: 1_000,
        }
    }
}

/// One session's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPlan {
    /// How long input is published, in seconds (1..=86400).
    pub duration_s: u32,
    /// When to send params updates (each one re-sends the prompt's params with a changed
    /// seed, and the tester measures until the runner reports the new params hash).
    #[serde(default)]
    pub params_updates: ParamsUpdates,
}

/// The params-update schedule of a session: fixed offsets, a period, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamsUpdates {
    /// Offsets from the session start, in seconds, each strictly inside the session.
    #[serde(default)]
    pub at_s: Vec<u32>,
    /// Send an update every this many seconds (the first one after one period); 0 or absent
    /// means no periodic updates.
    #[serde(default)]
    pub every_s: Option<u32>,
}

impl ParamsUpdates {
    /// Every update offset within a session of `duration_s`, in seconds, sorted, without
    /// duplicates, each strictly inside the session.
    pub fn offsets_s(&self, duration_s: u32) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .at_s
            .iter()
            .copied()
            .filter(|&t| t > 0 && t < duration_s)
            .collect();
        if let Some(every) = self.every_s.filter(|&e| e > 0) {
            let mut t = every;
            while t < duration_s {
                out.push(t);
                t = t.saturating_add(every);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Which orchestrators a run tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum Targets {
    /// Explicit orchestrator URIs (`https://host:port`, `http://host:port` or `host:port`).
    /// `lvt run --target URI` replaces any targets section with this.
    Explicit {
        /// The orchestrators' service URIs.
        uris: Vec<String>,
    },
    /// A static discovery list, in the shape go-livepeer's webhook discovery returns.
    Static {
        /// The candidate orchestrators.
        orchestrators: Vec<StaticEntry>,
        /// Test at most this many, highest score first.
        #[serde(default)]
        max_targets: Option<u32>,
        /// Skip orchestrators scoring below this.
        #[serde(default)]
        min_score: Option<f64>,
    },
    /// A discovery webhook answering `GET url` with a JSON array of `{address, score}`, as
    /// go-livepeer's `-orchWebhookUrl` expects.
    Webhook {
        /// The webhook's URL (http or https).
        url: String,
        /// Test at most this many, highest score first.
        #[serde(default)]
        max_targets: Option<u32>,
        /// Skip orchestrators scoring below this.
        #[serde(default)]
        min_score: Option<f64>,
        /// How long to wait for the webhook, in milliseconds.
        #[serde(default = "default_webhook_timeout_ms")]
        timeout_ms: u32,
    },
    /// Through network selection, as a go-livepeer gateway runs a user's stream: each session
    /// discovers candidates, orders them with `strategy`, starts on the first that accepts
    /// (up to 20 tries within 2 s) and swaps to another when the serving one fails
    /// (docs/gateway.md).
    Network {
        /// Where the candidates come from.
        discovery: SourceSpec,
        /// How candidates are ordered at start and after each swap.
        #[serde(default)]
        strategy: Strategy,
        /// Bound on each candidate's GetOrchestrator during discovery, in milliseconds
        /// (go-livepeer gives a discovery round 3000).
        #[serde(default = "default_discovery_timeout_ms")]
        discovery_timeout_ms: u32,
    },
    /// Through a go-livepeer gateway, as its users stream (docs/gateway-mode.md): each session
    /// publishes the clip over WHIP to `url` and plays the output over WHEP.
    Gateway {
        /// The gateway's base URL (`http://host:port` or `https://host:port`).
        url: String,
        /// Orchestrators to test one at a time through the gateway, each named by a substring
        /// of its URL (go-livepeer's `orchestrator` query parameter); each pin is a target of
        /// its own. Empty: one target, the gateway selects.
        #[serde(default)]
        pins: Vec<String>,
        /// Headers sent with every request to the gateway (a stream key, an API key), by
        /// header name; each value is the name of the environment variable holding it, so
        /// that keys stay out of scenario files.
        #[serde(default)]
        headers_from_env: BTreeMap<String, String>,
        /// The environment variable holding the stream key: the stream name every session
        /// publishes under (go-livepeer asks its auth webhook about the stream name). One
        /// name carries one stream at a time, so this needs closed load with concurrency 1.
        /// Unset: each session streams under a fresh random name.
        #[serde(default)]
        stream_key_from_env: Option<String>,
        /// Decode only the output's keyframes (one content sample per segment) instead of
        /// every frame: for load, where decoding every frame of every stream costs more than
        /// the rest of the session.
        #[serde(default)]
        decode_keyframes_only: bool,
    },
}

/// The `target` label of every network-mode session in a run's summaries.
pub const NETWORK_LABEL: &str = "network";

impl Targets {
    /// The `target` labels of a gateway target's sessions, one per pin (or one when
    /// unpinned): the URL as written without a trailing `/`, then `?orchestrator=PIN` when
    /// pinned. `None` for the other kinds.
    pub fn gateway_labels(&self) -> Option<Vec<String>> {
        let Targets::Gateway { url, pins, .. } = self else {
            return None;
        };
        let base = url.trim_end_matches('/');
        Some(if pins.is_empty() {
            vec![base.to_owned()]
        } else {
            pins.iter()
                .map(|pin| format!("{base}?orchestrator={pin}"))
                .collect()
        })
    }
}

/// How a gateway orders the candidates it tries: `"go-livepeer"` or
/// `{ score_weighted = { seed = 7 } }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// go-livepeer's default: warm orchestrators first, then by discovery latency.
    #[default]
    #[serde(rename = "go-livepeer")]
    GoLivepeer,
    /// Weighted random draw by SLA score, seeded: session N of a run draws with `seed + N`,
    /// so a run is repeatable. Scores come from the collector at `sla_url` when given, else
    /// from the discovery source (0-1); a candidate without any counts 50 of 100.
    ScoreWeighted {
        /// The seed of the draws.
        seed: u64,
        /// A collector's base URL: each session reads `GET {sla_url}/v1/sla/orchestrators`
        /// for the scenario's model and weighs each candidate by its `sla_score`.
        #[serde(default)]
        sla_url: Option<String>,
    },
}

fn default_discovery_timeout_ms() -> u32 {
    3_000
}

fn default_webhook_timeout_ms() -> u32 {
    lvt_gateway::discovery::config::DEFAULT_SOURCE_TIMEOUT_MS
}

/// How sessions are scheduled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "executor", rename_all = "snake_case", deny_unknown_fields)]
pub enum Load {
    /// A fixed number of sessions per target and prompt, at most `concurrency` at a time per
    /// target: the next session starts when one ends.
    Closed {
        /// Sessions per target and prompt (1..=10000).
        sessions_per_target: u32,
        /// Sessions running at once against one target (1..=1000).
        concurrency: u32,
        /// Idle time between the end of one session and the start of the next on the same
        /// slot, in seconds (lets an orchestrator go cold between sessions).
        #[serde(default)]
        pause_s: u32,
        /// Seed for the order in which prompts are run.
        #[serde(default)]
        seed: u64,
    },
    /// New sessions arrive at a rate regardless of how earlier ones fare (no coordinated
    /// omission): startup latency is measured from each session's scheduled start.
    Open {
        /// Arrival rate at the start, in sessions per minute across all targets.
        start_rate_per_min: f64,
        /// Ramp stages, run in order: the rate moves linearly to `target_rate_per_min` over
        /// `duration_s`.
        stages: Vec<Stage>,
        /// Exponential (Poisson) inter-arrival times when true; evenly spaced otherwise.
        #[serde(default)]
        poisson: bool,
        /// Cap on sessions in flight at once across all targets; arrivals beyond it are
        /// counted as dropped, never silently delayed.
        #[serde(default = "default_max_in_flight")]
        max_in_flight: u32,
        /// Stop sending new sessions to a target once it answers busy (capacity runs).
        #[serde(default)]
        stop_on_busy: bool,
        /// Seed for arrival times and target choice.
        #[serde(default)]
        seed: u64,
    },
}

fn default_max_in_flight() -> u32 {
    100
}

/// One ramp stage of the open executor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Stage length in seconds (1..=86400).
    pub duration_s: u32,
    /// Arrival rate reached at the end of the stage, in sessions per minute.
    pub target_rate_per_min: f64,
}

/// One service-level objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// `METRIC.STAT OP NUMBER` (for example `startup_ms.p95 < 8000`, `output_fps.p50 >= 12`,
    /// `swaps.max <= 1`) or `RATE OP NUMBER` (`failure_rate < 0.05`). Metrics, statistics and
    /// rates are listed in docs/scenarios.md.
    pub expr: String,
    /// Evaluate only over sessions matching all of these labels (keys: target, complexity,
    /// prompt, start; for example `{ complexity = "high" }`).
    #[serde(default)]
    pub r#where: BTreeMap<String, String>,
    /// Stop the run as soon as this threshold fails (checked after each finished session once
    /// `min_sessions` sessions match).
    #[serde(default)]
    pub abort_on_fail: bool,
    /// Sessions needed before an abort-on-fail check may stop the run.
    #[serde(default = "default_min_sessions")]
    pub min_sessions: u32,
}

fn default_min_sessions() -> u32 {
    5
}

/// How the summary table groups sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportPlan {
    /// Labels to group by, in order; any of target, complexity, prompt, start.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<Label>,
}

impl Default for ReportPlan {
    fn default() -> Self {
        Self {
            group_by: default_group_by(),
        }
    }
}

fn default_group_by() -> Vec<Label> {
    vec![Label::Target, Label::Complexity]
}

/// A label every session carries, for grouping and threshold filters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// The orchestrator URI.
    Target,
    /// The prompt's complexity: low, medium, high.
    Complexity,
    /// The prompt id.
    Prompt,
    /// `cold` for the first session of the run on a target (and any session after a pause
    /// of at least 60 s on it), `warm` otherwise.
    Start,
}

impl Label {
    /// Every label, in display order.
    pub const ALL: [Label; 4] = [
        Label::Target,
        Label::Complexity,
        Label::Prompt,
        Label::Start,
    ];

    /// The label's name in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Target => "target",
            Label::Complexity => "complexity",
            Label::Prompt => "prompt",
            Label::Start => "start",
        }
    }
}
