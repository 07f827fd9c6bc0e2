//! The semantic checks serde cannot express, section by section: ids, prompts, input, session,
//! load and report (targets and thresholds have files of their own). [`Checker`] collects every
//! problem, located at the offending value.

use std::collections::{BTreeMap, BTreeSet};

use lvt_schema::Complexity;

use super::locate::Locator;
use super::locate::Seg::{self, Index as I, Key as K};
use super::{Diagnostic, MAX_PLANNED_RUN_S};
use crate::scenario::{Load, Scenario};

/// Collects every semantic problem of a scenario that parsed.
pub(super) struct Checker<'a, 't> {
    pub(super) label: &'a str,
    pub(super) locator: &'a Locator<'t>,
    pub(super) diagnostics: Vec<Diagnostic>,
}

impl Checker<'_, '_> {
    pub(super) fn error_at(&mut self, offset: usize, message: String, expected: &str, hint: &str) {
        let diagnostic = self.locator.diagnostic(
            self.label,
            offset,
            message,
            Some(expected.to_string()),
            Some(hint.to_string()),
        );
        self.diagnostics.push(diagnostic);
    }

    /// An error located at the value at `path`.
    pub(super) fn error(&mut self, path: &[Seg<'_>], message: String, expected: &str, hint: &str) {
        let offset = self.locator.value_offset(path);
        self.error_at(offset, message, expected, hint);
    }

    /// Checks `lo <= value <= hi` for the value at `path`, named `name` in the message.
    pub(super) fn range(
        &mut self,
        path: &[Seg<'_>],
        name: &str,
        value: u64,
        lo: u64,
        hi: u64,
        hint: &str,
    ) {
        if value < lo || value > hi {
            self.error(
                path,
                format!("{name} = {value} is out of range"),
                &format!("an integer from {lo} to {hi}"),
                hint,
            );
        }
    }

    pub(super) fn check(&mut self, s: &Scenario) {
        self.check_header(s);
        self.check_prompts(s);
        self.check_input(s);
        self.check_session(s);
        self.check_targets(&s.targets);
        self.check_load(s);
        self.check_thresholds(s);
        self.check_report(s);
    }

    pub(super) fn check_header(&mut self, s: &Scenario) {
        if !is_valid_id(&s.id) {
            self.error(
                &[K("id")],
                format!("invalid scenario id `{}`", s.id),
                "lowercase letters, digits and dashes, starting with a letter or digit",
                "ids appear in file names and URLs; write for example `sla-hourly`",
            );
        }
        if s.description.trim().is_empty() {
            self.error(
                &[K("description")],
                "description is empty".to_string(),
                "a sentence saying what the scenario measures and why",
                "people reading results only see the id and this text",
            );
        }
        if s.model_id.trim().is_empty() {
            self.error(
                &[K("model_id")],
                "model_id is empty".to_string(),
                "the model the orchestrator runs, for example \"streamdiffusion\" or \"noop\"",
                "\"noop\" is the pass-through pipeline, handy for testing the path without a GPU",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, tag) in s.tags.iter().enumerate() {
            if !seen.insert(tag.as_str()) {
                self.error(
                    &[K("tags"), I(i)],
                    format!("duplicate tag `{tag}`"),
                    "each tag once",
                    "remove the repeated tag",
                );
            }
        }
    }

    pub(super) fn check_prompts(&mut self, s: &Scenario) {
        if s.prompts.is_empty() {
            self.error(
                &[K("prompts")],
                "no prompts".to_string(),
                "at least one [[prompts]] entry",
                "add `[[prompts]]` with id, complexity and params",
            );
        }
        let mut first_at: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, prompt) in s.prompts.iter().enumerate() {
            if prompt.id.trim().is_empty() {
                self.error(
                    &[K("prompts"), I(i), K("id")],
                    "prompt id is empty".to_string(),
                    "a short name recorded in every result, for example \"portrait-low\"",
                    "every prompt needs an id so results can be told apart",
                );
                continue;
            }
            if let Some(&first) = first_at.get(prompt.id.as_str()) {
                let first_offset = self
                    .locator
                    .value_offset(&[K("prompts"), I(first), K("id")]);
                let (line, _) = self.locator.position(first_offset);
                self.error(
                    &[K("prompts"), I(i), K("id")],
                    format!("duplicate prompt id `{}`", prompt.id),
                    "a prompt id unique within the scenario",
                    &format!("`{}` is first declared on line {line}", prompt.id),
                );
            } else {
                first_at.insert(&prompt.id, i);
            }
        }
    }

    pub(super) fn check_input(&mut self, s: &Scenario) {
        let input = &s.input;
        let even_hint = "H.264 4:2:0 needs even dimensions";
        for (key, value, hi) in [
            ("width", input.width, 1920u32),
            ("height", input.height, 1080),
        ] {
            let path = [K("input"), K(key)];
            if !(64..=hi).contains(&value) || value % 2 != 0 {
                self.error(
                    &path,
                    format!(
                        "input.{key} = {value} is not an even number of pixels from 64 to {hi}"
                    ),
                    &format!("an even integer from 64 to {hi}"),
                    even_hint,
                );
            }
        }
        let fps_ok = (1..=60).contains(&input.fps);
        self.range(
            &[K("input"), K("fps")],
            "input.fps",
            input.fps.into(),
            1,
            60,
            "live pipelines run at up to 30 fps",
        );
        let segment_ok = (250..=10_000).contains(&input.segment_ms);
        self.range(
            &[K("input"), K("segment_ms")],
            "input.segment_ms",
            input.segment_ms.into(),
            250,
            10_000,
            "segments are GOPs; 1000 ms is what go-livepeer gateways send",
        );
        if fps_ok && segment_ok && (u64::from(input.fps) * u64::from(input.segment_ms)) % 1000 != 0
        {
            let frames = f64::from(input.fps) * f64::from(input.segment_ms) / 1000.0;
            self.error(
                &[K("input"), K("segment_ms")],
                format!(
                    "a {} ms segment at {} fps holds {frames} frames",
                    input.segment_ms, input.fps
                ),
                "a segment_ms for which fps * segment_ms is a multiple of 1000 (a whole number of frames)",
                &format!(
                    "at {} fps, use a multiple of {} ms",
                    input.fps,
                    1000 / gcd(1000, input.fps)
                ),
            );
        }
        self.range(
            &[K("input"), K("bitrate_kbps")],
            "input.bitrate_kbps",
            input.bitrate_kbps.into(),
            50,
            20_000,
            "the bitrate is in kbit/s: 1000 is 1 Mbit/s",
        );
    }

    pub(super) fn check_session(&mut self, s: &Scenario) {
        let duration_s = s.session.duration_s;
        self.range(
            &[K("session"), K("duration_s")],
            "session.duration_s",
            duration_s.into(),
            1,
            86_400,
            "durations are in seconds",
        );
        let updates = &s.session.params_updates;
        for (i, &at) in updates.at_s.iter().enumerate() {
            if at == 0 || at >= duration_s {
                self.error(
                    &[K("session"), K("params_updates"), K("at_s"), I(i)],
                    format!("params update at {at} s is outside the {duration_s} s session"),
                    &format!(
                        "an offset in seconds strictly between 0 and {duration_s} (session.duration_s)"
                    ),
                    "the initial params are sent at job start; updates come after it and before the session ends",
                );
            }
        }
        if let Some(every) = updates.every_s {
            let path = [K("session"), K("params_updates"), K("every_s")];
            if every == 0 {
                self.error(
                    &path,
                    "params_updates.every_s = 0".to_string(),
                    "a period of at least 1 second",
                    "remove every_s for no periodic updates",
                );
            } else if every >= duration_s {
                self.error(
                    &path,
                    format!(
                        "params_updates.every_s = {every} never fires in a {duration_s} s session"
                    ),
                    &format!("a period shorter than session.duration_s ({duration_s} s)"),
                    "remove every_s for no periodic updates",
                );
            }
        }
    }

    pub(super) fn check_load(&mut self, s: &Scenario) {
        if let crate::scenario::Targets::Gateway {
            stream_key_from_env: Some(_),
            pins,
            ..
        } = &s.targets
        {
            let one_at_a_time =
                pins.len() <= 1 && matches!(s.load, Load::Closed { concurrency: 1, .. });
            if !one_at_a_time {
                self.error(
                    &[K("targets"), K("stream_key_from_env")],
                    "one stream key carries one stream at a time, and this scenario runs sessions at once".to_string(),
                    "closed load with concurrency = 1 and at most one pin",
                    "go-livepeer keeps one stream per name: a second session under the same key would replace the first",
                );
            }
        }
        match &s.load {
            Load::Closed {
                sessions_per_target,
                concurrency,
                pause_s,
                ..
            } => {
                self.range(
                    &[K("load"), K("sessions_per_target")],
                    "load.sessions_per_target",
                    (*sessions_per_target).into(),
                    1,
                    10_000,
                    "it counts sessions per target and prompt",
                );
                self.range(
                    &[K("load"), K("concurrency")],
                    "load.concurrency",
                    (*concurrency).into(),
                    1,
                    1_000,
                    "concurrency is sessions running at once against one target; 1 runs them one after another",
                );
                if (1..=1_000).contains(concurrency) && *sessions_per_target >= 1 {
                    let sessions = u64::from(*sessions_per_target) * s.prompts.len() as u64;
                    let rounds = sessions.div_ceil(u64::from(*concurrency));
                    let per_round_s = u64::from(s.session.duration_s) + u64::from(*pause_s);
                    self.check_planned_time(rounds * per_round_s);
                }
            }
            Load::Open {
                start_rate_per_min,
                stages,
                max_in_flight,
                ..
            } => {
                let rate_expected = "a finite rate of at least 0 sessions per minute";
                if !start_rate_per_min.is_finite() || *start_rate_per_min < 0.0 {
                    self.error(
                        &[K("load"), K("start_rate_per_min")],
                        format!(
                            "load.start_rate_per_min = {start_rate_per_min} is not a valid rate"
                        ),
                        rate_expected,
                        "rates are sessions per minute, for example 1.0; 0 starts the ramp from nothing",
                    );
                }
                if stages.is_empty() {
                    self.error(
                        &[K("load"), K("stages")],
                        "the open executor has no stages".to_string(),
                        "at least one `{ duration_s = ..., target_rate_per_min = ... }` stage",
                        "a constant rate is one stage whose target_rate_per_min equals start_rate_per_min",
                    );
                }
                for (i, stage) in stages.iter().enumerate() {
                    self.range(
                        &[K("load"), K("stages"), I(i), K("duration_s")],
                        &format!("load.stages[{i}].duration_s"),
                        stage.duration_s.into(),
                        1,
                        86_400,
                        "stage durations are in seconds",
                    );
                    let rate = stage.target_rate_per_min;
                    if !rate.is_finite() || rate < 0.0 {
                        self.error(
                            &[K("load"), K("stages"), I(i), K("target_rate_per_min")],
                            format!(
                                "load.stages[{i}].target_rate_per_min = {rate} is not a valid rate"
                            ),
                            rate_expected,
                            "rates are sessions per minute, for example 6.0",
                        );
                    }
                }
                let any_positive = std::iter::once(*start_rate_per_min)
                    .chain(stages.iter().map(|st| st.target_rate_per_min))
                    .any(|r| r > 0.0);
                if !stages.is_empty() && !any_positive {
                    self.error(
                        &[K("load"), K("start_rate_per_min")],
                        "every rate is 0: no session would ever start".to_string(),
                        "a start or stage rate above 0 sessions per minute",
                        "raise start_rate_per_min or a stage's target_rate_per_min",
                    );
                }
                if *max_in_flight == 0 {
                    self.error(
                        &[K("load"), K("max_in_flight")],
                        "load.max_in_flight = 0 would drop every arrival".to_string(),
                        "at least 1",
                        "remove it for the default of 100",
                    );
                }
                let total: u64 = stages.iter().map(|st| u64::from(st.duration_s)).sum();
                self.check_planned_time(total);
            }
        }
    }

    pub(super) fn check_planned_time(&mut self, total_s: u64) {
        if total_s > MAX_PLANNED_RUN_S {
            self.error(
                &[K("load")],
                format!(
                    "the run is planned to take {total_s} s ({:.1} days)",
                    total_s as f64 / 86_400.0
                ),
                "a plan of at most 7 days (604800 s)",
                "check the units (durations are in seconds) or lower the session count",
            );
        }
    }

    pub(super) fn check_report(&mut self, s: &Scenario) {
        let group_by = &s.report.group_by;
        if group_by.is_empty() {
            self.error(
                &[K("report"), K("group_by")],
                "report.group_by is empty".to_string(),
                "one or more of target, complexity, prompt, start",
                "remove group_by for the default [\"target\", \"complexity\"]",
            );
        }
        let mut seen = BTreeSet::new();
        for (i, label) in group_by.iter().enumerate() {
            if !seen.insert(*label) {
                self.error(
                    &[K("report"), K("group_by"), I(i)],
                    format!("`{}` appears twice in report.group_by", label.as_str()),
                    "each label at most once",
                    "remove the repeated label",
                );
            }
        }
    }
}

pub(super) fn complexity_name(c: Complexity) -> &'static str {
    match c {
        Complexity::Low => "low",
        Complexity::Medium => "medium",
        Complexity::High => "high",
    }
}

/// `^[a-z0-9][a-z0-9-]*$`.
pub(super) fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
