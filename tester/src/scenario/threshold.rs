//! Threshold expressions: the catalog of metrics, statistics and rates a scenario may name, the
//! parsed form of `METRIC.STAT OP NUMBER` / `RATE OP NUMBER`, and how each metric is read from
//! one session record. Evaluation over a run lives in `crate::run::verdict`.

use std::fmt;

use lvt_schema::Outcome;

use crate::run::record::SessionRecord;

/// A per-session metric a threshold aggregates across sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Startup latency in ms: first input frame sent to first output frame, plus the time the
    /// session waited past its scheduled start (open executor), so queueing cannot hide.
    StartupMs,
    /// The session's median end-to-end frame latency, ms.
    E2eLatencyMs,
    /// The session's 95th percentile end-to-end frame latency, ms.
    E2eLatencyP95Ms,
    /// The session's mean output FPS.
    OutputFps,
    /// The session's 5th percentile of per-second output FPS.
    OutputFpsP5,
    /// Standard deviation over mean of the session's per-second output FPS.
    FpsJitter,
    /// Standard deviation of output frame intervals, ms.
    FrameIntervalJitterMs,
    /// Number of output stalls in the session.
    Stalls,
    /// Total stalled time in the session, ms.
    StallMs,
    /// GetOrchestrator round trip, ms.
    GetOrchestratorMs,
    /// Job start (`POST /live-video-to-video`) round trip, ms.
    JobStartMs,
    /// Orchestrator swaps in the session.
    Swaps,
    /// Output media errors (continuity, sync, PES, truncation) in the session.
    MediaErrors,
    /// How late the session started against its schedule, ms.
    QueueDelayMs,
}

/// A metric the record still carries (always `null`) that no threshold may use: it measured
/// the phase of the runner's status tick, not the update (docs/metrics.md).
const RETIRED_PARAMS_UPDATE_LATENCY: &str = "params_update_latency_ms";

impl Metric {
    /// Every metric, in the order docs/scenarios.md lists them.
    pub const ALL: [Metric; 14] = [
        Metric::StartupMs,
        Metric::E2eLatencyMs,
        Metric::E2eLatencyP95Ms,
        Metric::OutputFps,
        Metric::OutputFpsP5,
        Metric::FpsJitter,
        Metric::FrameIntervalJitterMs,
        Metric::Stalls,
        Metric::StallMs,
        Metric::GetOrchestratorMs,
        Metric::JobStartMs,
        Metric::Swaps,
        Metric::MediaErrors,
        Metric::QueueDelayMs,
    ];

    /// The name used in threshold expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::StartupMs => "startup_ms",
            Metric::E2eLatencyMs => "e2e_latency_ms",
            Metric::E2eLatencyP95Ms => "e2e_latency_p95_ms",
            Metric::OutputFps => "output_fps",
            Metric::OutputFpsP5 => "output_fps_p5",
            Metric::FpsJitter => "fps_jitter",
            Metric::FrameIntervalJitterMs => "frame_interval_jitter_ms",
            Metric::Stalls => "stalls",
            Metric::StallMs => "stall_ms",
            Metric::GetOrchestratorMs => "get_orchestrator_ms",
            Metric::JobStartMs => "job_start_ms",
            Metric::Swaps => "swaps",
            Metric::MediaErrors => "media_errors",
            Metric::QueueDelayMs => "queue_delay_ms",
        }
    }

    /// The metric named `name`, if any.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The metric's value for one session; `None` when the session has no such measurement
    /// (no output, call not made): such sessions are left out of the statistic, never
    /// counted as 0. Counters (stalls, swaps, media errors) only count for sessions that got
    /// past job start, since a session refused at the door had no chance to stall.
    pub fn session_value(self, s: &SessionRecord) -> Option<f64> {
        let m = &s.report.metrics;
        let started = m.job_start_ms.is_some();
        match self {
            Metric::StartupMs => s.startup_from_schedule_ms,
            Metric::E2eLatencyMs => m.e2e_latency_ms.map(|l| l.p50),
            Metric::E2eLatencyP95Ms => m.e2e_latency_ms.map(|l| l.p95),
            Metric::OutputFps => m.output_fps.map(|f| f.mean),
            Metric::OutputFpsP5 => m.output_fps.map(|f| f.p5),
            Metric::FpsJitter => m.fps_jitter,
            Metric::FrameIntervalJitterMs => m.frame_interval_jitter_ms,
            Metric::Stalls => started.then_some(m.stalls.count as f64),
            Metric::StallMs => started.then_some(m.stalls.total_ms),
            Metric::GetOrchestratorMs => m.get_orchestrator_ms,
            Metric::JobStartMs => m.job_start_ms,
            Metric::Swaps => started.then_some(m.swaps.len() as f64),
            Metric::MediaErrors => started.then_some(
                (m.media_errors.cc_errors
                    + m.media_errors.sync_losses
                    + m.media_errors.pes_errors
                    + m.media_errors.truncated_frames) as f64,
            ),
            Metric::QueueDelayMs => Some(s.queue_delay_ms),
        }
    }
}

/// A statistic over the sessions' values of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    Min,
    Max,
    Mean,
    P5,
    P10,
    P50,
    P90,
    P95,
    P99,
    /// Number of sessions that have a value.
    Count,
}

impl Stat {
    /// Every statistic.
    pub const ALL: [Stat; 10] = [
        Stat::Min,
        Stat::Max,
        Stat::Mean,
        Stat::P5,
        Stat::P10,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::Count,
    ];

    /// The name used in threshold expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Mean => "mean",
            Stat::P5 => "p5",
            Stat::P10 => "p10",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::Count => "count",
        }
    }

    /// The statistic named `name`, if any.
    pub fn from_name(name: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The percentile this statistic stands for, if it is one.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Stat::P5 => Some(0.05),
            Stat::P10 => Some(0.10),
            Stat::P50 => Some(0.50),
            Stat::P90 => Some(0.90),
            Stat::P95 => Some(0.95),
            Stat::P99 => Some(0.99),
            _ => None,
        }
    }
}

/// A run-level proportion of sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rate {
    /// failed / (passed + failed): busy and indeterminate sessions are not scored.
    FailureRate,
    /// passed / (passed + failed).
    SuccessRate,
    /// unscored_busy / all sessions: how often targets refused for capacity.
    BusyRate,
    /// (unscored_busy + unscored_indeterminate) / all sessions.
    UnscoredRate,
}

impl Rate {
    /// Every rate.
    pub const ALL: [Rate; 4] = [
        Rate::FailureRate,
        Rate::SuccessRate,
        Rate::BusyRate,
        Rate::UnscoredRate,
    ];

    /// The name used in threshold expressions.
    pub fn as_str(self) -> &'static str {
        match self {
            Rate::FailureRate => "failure_rate",
            Rate::SuccessRate => "success_rate",
            Rate::BusyRate => "busy_rate",
            Rate::UnscoredRate => "unscored_rate",
        }
    }

    /// The rate named `name`, if any.
    pub fn from_name(name: &str) -> Option<Rate> {
        Rate::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// (numerator, denominator) over `outcomes`; the denominator may be 0 (no data).
    pub fn counts<'a>(self, outcomes: impl IntoIterator<Item = &'a Outcome>) -> (u64, u64) {
        let (mut passed, mut failed, mut busy, mut indeterminate) = (0u64, 0u64, 0u64, 0u64);
        for o in outcomes {
            match o {
                Outcome::Passed => passed += 1,
                Outcome::Failed => failed += 1,
                Outcome::UnscoredBusy => busy += 1,
                Outcome::UnscoredIndeterminate => indeterminate += 1,
            }
        }
        let all = passed + failed + busy + indeterminate;
        match self {
            Rate::FailureRate => (failed, passed + failed),
            Rate::SuccessRate => (passed, passed + failed),
            Rate::BusyRate => (busy, all),
            Rate::UnscoredRate => (busy + indeterminate, all),
        }
    }
}

/// What a threshold compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A statistic of a per-session metric across sessions.
    Metric { metric: Metric, stat: Stat },
    /// A proportion of sessions.
    Rate(Rate),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Metric { metric, stat } => write!(f, "{}.{}", metric.as_str(), stat.as_str()),
            Subject::Rate(r) => f.write_str(r.as_str()),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// Whether `observed OP limit` holds.
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
            Op::Eq => observed == limit,
            Op::Ne => observed != limit,
        }
    }
}

/// A parsed threshold expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdExpr {
    pub subject: Subject,
    pub op: Op,
    pub limit: f64,
}

impl fmt::Display for ThresholdExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.subject, self.op.as_str(), self.limit)
    }
}

/// Why a threshold expression does not parse: where (a byte offset into the expression),
/// what is wrong, what was expected there and, when one helps, a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct ExprError {
    /// Byte offset within the expression of the offending token (or of its end when
    /// something is missing).
    pub offset: usize,
    /// What is wrong, as a sentence fragment (for example "unknown metric `startup`").
    pub message: String,
    /// What the parser expected at `offset`.
    pub expected: String,
    /// How to fix it, when there is something better to say than `expected`.
    pub hint: Option<String>,
}

impl ExprError {
    fn new(offset: usize, message: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
            expected: expected.into(),
            hint: None,
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl ThresholdExpr {
    /// Parses `METRIC.STAT OP NUMBER` or `RATE OP NUMBER`; whitespace between the parts is
    /// optional. The number is a finite decimal (`8000`, `0.05`, `1.5e3`).
    pub fn parse(s: &str) -> Result<ThresholdExpr, ExprError> {
        let mut cursor = Cursor { text: s, pos: 0 };
        cursor.skip_whitespace();
        let subject = parse_subject(&mut cursor)?;
        cursor.skip_whitespace();
        let op = parse_op(&mut cursor)?;
        cursor.skip_whitespace();
        let limit = parse_number(&mut cursor)?;
        cursor.skip_whitespace();
        if cursor.pos < s.len() {
            let rest = cursor.rest().trim_end();
            return Err(ExprError::new(
                cursor.pos,
                format!("unexpected `{rest}` after the number"),
                "the end of the expression",
            )
            .with_hint(
                "a threshold compares one subject with one number; write one threshold per condition",
            ));
        }
        Ok(ThresholdExpr { subject, op, limit })
    }
}

/// A position in the expression being parsed.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Consumes a run of characters matching `accept` and returns it with its start offset.
    fn take_while(&mut self, accept: impl Fn(char) -> bool) -> (usize, &'a str) {
        let start = self.pos;
        let rest = self.rest();
        let len = rest.find(|c: char| !accept(c)).unwrap_or(rest.len());
        self.pos += len;
        (start, &self.text[start..self.pos])
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn stat_list() -> String {
    Stat::ALL.map(Stat::as_str).join(", ")
}

fn parse_subject(cursor: &mut Cursor<'_>) -> Result<Subject, ExprError> {
    let (name_at, name) = cursor.take_while(is_name_char);
    if name.is_empty() {
        return Err(ExprError::new(
            name_at,
            "expected a metric or a rate",
            "METRIC.STAT or RATE, for example `startup_ms.p95` or `failure_rate`",
        ));
    }
    let has_stat = cursor.rest().starts_with('.');
    if let Some(rate) = Rate::from_name(name) {
        if has_stat {
            let dot_at = cursor.pos;
            cursor.pos += 1;
            let (_, stat) = cursor.take_while(is_name_char);
            return Err(ExprError::new(
                dot_at,
                format!("`{name}` is a rate and takes no statistic"),
                "a comparison operator after the rate",
            )
            .with_hint(format!(
                "remove `.{stat}`: rates compare directly, as in `{} < 0.05`",
                rate.as_str()
            )));
        }
        return Ok(Subject::Rate(rate));
    }
    if name == RETIRED_PARAMS_UPDATE_LATENCY {
        return Err(ExprError::new(
            name_at,
            format!("`{name}` is no longer measured"),
            "a metric (see docs/scenarios.md)",
        )
        .with_hint(
            "ai-runner confirms a params update when it is queued and reports status about \
             every 10 s, so the figure was the phase of that tick; remove this threshold",
        ));
    }
    let Some(metric) = Metric::from_name(name) else {
        let candidates = Metric::ALL
            .iter()
            .map(|m| m.as_str())
            .chain(Rate::ALL.iter().map(|r| r.as_str()));
        let error = ExprError::new(
            name_at,
            format!("unknown metric `{name}`"),
            "a metric (see docs/scenarios.md) followed by `.STAT`, or a rate: failure_rate, success_rate, busy_rate, unscored_rate",
        );
        return Err(match nearest(name, candidates) {
            Some(best) => error.with_hint(format!("did you mean `{best}`?")),
            None => error.with_hint(format!(
                "metrics are {}",
                Metric::ALL.map(Metric::as_str).join(", ")
            )),
        });
    };
    if !has_stat {
        return Err(ExprError::new(
            cursor.pos,
            format!("metric `{name}` needs a statistic"),
            "`.` followed by a statistic",
        )
        .with_hint(format!(
            "add a statistic: {} (for example `{name}.p95`)",
            stat_list()
        )));
    }
    cursor.pos += 1;
    let (stat_at, stat_name) = cursor.take_while(is_name_char);
    match Stat::from_name(stat_name) {
        Some(stat) => Ok(Subject::Metric { metric, stat }),
        None if stat_name.is_empty() => Err(ExprError::new(
            stat_at,
            format!("missing statistic after `{name}.`"),
            format!("a statistic: {}", stat_list()),
        )),
        None => {
            let error = ExprError::new(
                stat_at,
                format!("unknown statistic `{stat_name}`"),
                format!("a statistic: {}", stat_list()),
            );
            Err(match nearest(stat_name, Stat::ALL.iter().map(|s| s.as_str())) {
                Some(best) => error.with_hint(format!("did you mean `{best}`?")),
                None => error.with_hint(
                    "percentiles are p5, p10, p50, p90, p95 and p99; other percentiles are not computed",
                ),
            })
        }
    }
}

fn parse_op(cursor: &mut Cursor<'_>) -> Result<Op, ExprError> {
    const OPS: [(&str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let at = cursor.pos;
    for (text, op) in OPS {
        if cursor.rest().starts_with(text) {
            cursor.pos += text.len();
            return Ok(op);
        }
    }
    let expected = "a comparison operator: <, <=, >, >=, == or !=";
    let (_, token) = cursor.take_while(|c| !c.is_whitespace() && !c.is_ascii_digit());
    if token.is_empty() {
        return Err(ExprError::new(at, "missing comparison operator", expected)
            .with_hint("write for example `startup_ms.p95 < 8000`"));
    }
    let hint = match token {
        "=" => "use `==` to compare for equality",
        "=<" => "write `<=`",
        "=>" => "write `>=`",
        "<>" => "write `!=`",
        _ => "write for example `startup_ms.p95 < 8000`",
    };
    Err(ExprError::new(at, format!("unknown operator `{token}`"), expected).with_hint(hint))
}

fn parse_number(cursor: &mut Cursor<'_>) -> Result<f64, ExprError> {
    let (at, token) = cursor.take_while(|c| !c.is_whitespace());
    let expected = "a finite decimal number, for example `8000`, `0.05` or `1.5e3`";
    if token.is_empty() {
        return Err(ExprError::new(at, "missing number", expected));
    }
    // Rust's float parser also accepts `inf` and `NaN`; a limit must be a plain decimal, so
    // the shape is checked first.
    let parsed = is_decimal(token)
        .then(|| token.parse::<f64>().ok())
        .flatten()
        .filter(|v| v.is_finite());
    match parsed {
        Some(value) => Ok(value),
        None => {
            let error = ExprError::new(at, format!("`{token}` is not a number"), expected);
            let hint = if token.ends_with('%') {
                "write rates as fractions: 5 % is `0.05`"
            } else if token.contains('_') {
                "digit separators are not allowed: write `10000`"
            } else {
                "units are implied by the metric's name (ms, fps, count); write only the number"
            };
            Err(error.with_hint(hint))
        }
    }
}

/// `[+-]? digits ('.' digits?)? ([eE] [+-]? digits)?`, also allowing `.5`.
fn is_decimal(token: &str) -> bool {
    let bytes = token.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        i += 1;
        if i < bytes.len() && matches!(bytes[i], b'+' | b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == bytes.len()
}

/// The candidate closest to `name` by edit distance, when it is close enough to be a likely
/// typo (or when `name` is a prefix of it, as in `startup` for `startup_ms`).
pub(crate) fn nearest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let budget = (name.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let distance = edit_distance(name, candidate);
            let close = distance <= budget || (name.len() >= 3 && candidate.starts_with(name));
            close.then_some((distance, candidate))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}
