//! Loading scenario files with located diagnostics: TOML syntax and type errors from serde,
//! then the semantic checks serde cannot express (ranges, cross-references between sections,
//! threshold expressions, ids unique across files). Every diagnostic names the file, the line
//! and column of the offending key or value, what was expected there and how to fix it.
//! `lvt validate` and `lvt run` both load scenarios through here, so a file that validates is
//! exactly a file that runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use lvt_gateway::live::OrchestratorUri;
use lvt_schema::Complexity;
use toml_edit::{ImDocument, Item};

use super::threshold::{ThresholdExpr, nearest};
use super::{Label, Load, NetworkDiscovery, Scenario, Targets};

/// The longest run a scenario may plan: a week. Anything longer is almost certainly a typo
/// (seconds written as milliseconds) and would tie up a regional runner indefinitely.
pub const MAX_PLANNED_RUN_S: u64 = 7 * 86_400;

/// One problem in one scenario file, located at the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as it was given (or as found in a directory that was given).
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What was expected at that place.
    pub expected: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.path, self.line, self.column, self.message
        )?;
        if let Some(expected) = &self.expected {
            write!(f, "\n  expected: {expected}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Parses and checks one scenario held in memory; `path_label` is only used in diagnostics.
pub fn load_str(path_label: &str, text: &str) -> Result<Scenario, Vec<Diagnostic>> {
    let locator = Locator::new(text);
    let scenario: Scenario = match toml::from_str(text) {
        Ok(scenario) => scenario,
        Err(error) => return Err(vec![serde_diagnostic(path_label, &locator, &error)]),
    };
    let mut checker = Checker {
        label: path_label,
        locator: &locator,
        diagnostics: Vec::new(),
    };
    checker.check(&scenario);
    // The checks run section by section; report in file order, as a reader scans the file.
    checker.diagnostics.sort_by_key(|d| (d.line, d.column));
    if checker.diagnostics.is_empty() {
        Ok(scenario)
    } else {
        Err(checker.diagnostics)
    }
}

/// Reads and checks one scenario file; an unreadable file is one diagnostic at 1:1.
pub fn load_file(path: &Path) -> Result<Scenario, Vec<Diagnostic>> {
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&label, &text),
        Err(error) => Err(vec![file_diagnostic(&label, &error)]),
    }
}

/// What validating a set of paths found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every scenario that loaded, with the file it came from, in the order the files were
    /// examined.
    pub scenarios: Vec<(PathBuf, Scenario)>,
    /// Every problem found, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// Every scenario file examined (directories expanded), valid or not.
    pub files: Vec<PathBuf>,
}

impl Report {
    /// True when no file had a problem.
    pub fn is_ok(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// How many distinct files have at least one diagnostic.
    pub fn files_with_errors(&self) -> usize {
        self.diagnostics
            .iter()
            .map(|d| d.path.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// Validates every given file, and every `*.toml` file directly inside every given directory
/// (sorted by name), then checks that scenario ids are unique across all of them. Calling it
/// with no paths yields an empty report: the caller decides what the default is.
pub fn validate_paths(paths: &[PathBuf]) -> Report {
    let mut report = Report::default();
    // The id's location in each loaded file, for the cross-file duplicate check.
    let mut first_by_id: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in expand_paths(paths, &mut report.diagnostics) {
        report.files.push(file.clone());
        let label = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) => {
                report.diagnostics.push(file_diagnostic(&label, &error));
                continue;
            }
        };
        match load_str(&label, &text) {
            Ok(scenario) => {
                if let Some(first) = first_by_id.get(&scenario.id) {
                    let locator = Locator::new(&text);
                    let offset = locator.value_offset(&[Seg::Key("id")]);
                    report.diagnostics.push(locator.diagnostic(
                        &label,
                        offset,
                        format!(
                            "scenario id `{}` is already used by {}",
                            scenario.id,
                            first.display()
                        ),
                        Some("an id no other scenario file uses".to_string()),
                        Some(
                            "ids name a scenario's results across versions; give this one its own id"
                                .to_string(),
                        ),
                    ));
                } else {
                    first_by_id.insert(scenario.id.clone(), file.clone());
                }
                report.scenarios.push((file, scenario));
            }
            Err(mut diagnostics) => report.diagnostics.append(&mut diagnostics),
        }
    }
    report
}

/// The files to validate: files as given, directories expanded to their `*.toml` entries.
fn expand_paths(paths: &[PathBuf], diagnostics: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        let label = path.display().to_string();
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) => {
                diagnostics.push(file_diagnostic(&label, &error));
                continue;
            }
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
            .collect();
        found.sort();
        if found.is_empty() {
            diagnostics.push(Diagnostic {
                path: label,
                line: 1,
                column: 1,
                message: "no scenario files in this directory".to_string(),
                expected: Some("at least one `*.toml` file".to_string()),
                hint: Some("pass the scenario files or the directory holding them".to_string()),
            });
        }
        files.extend(found);
    }
    files
}

fn file_diagnostic(label: &str, error: &std::io::Error) -> Diagnostic {
    Diagnostic {
        path: label.to_string(),
        line: 1,
        column: 1,
        message: format!("cannot read the file: {error}"),
        expected: Some("a readable UTF-8 TOML file".to_string()),
        hint: Some("check the path and its permissions".to_string()),
    }
}

/// One step of a path into the TOML document.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

use Seg::{Index as I, Key as K};

/// Finds the source position of keys and values, from a span-preserving parse of the text.
struct Locator<'t> {
    text: &'t str,
    document: Option<ImDocument<&'t str>>,
}

impl<'t> Locator<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text,
            document: ImDocument::parse(text).ok(),
        }
    }

    /// The item at `path` (`None` when it is not in the document), and the span of the
    /// deepest item on the way that has one: implicit tables (`[a.b]` makes `a` implicit) and
    /// missing keys have none, so an error falls back to the nearest located ancestor.
    fn walk(&self, path: &[Seg<'_>]) -> (Option<&Item>, Option<Range<usize>>) {
        let Some(document) = &self.document else {
            return (None, None);
        };
        let mut item = document.as_item();
        let mut span = None;
        for seg in path {
            let next = match *seg {
                Seg::Key(key) => item.get(key),
                Seg::Index(index) => item.get(index),
            };
            let Some(next) = next else {
                return (None, span);
            };
            span = next.span().or(span);
            item = next;
        }
        (Some(item), span)
    }

    /// The byte offset of the value at `path` (or of its nearest located ancestor; 0 when
    /// nothing is located).
    fn value_offset(&self, path: &[Seg<'_>]) -> usize {
        self.walk(path).1.map_or(0, |span| span.start)
    }

    /// The byte offset of the key ending `path` (falling back to the value's ancestors).
    fn key_offset(&self, path: &[Seg<'_>]) -> usize {
        if let Some((Seg::Key(key), parent)) = path.split_last()
            && let (Some(table), _) = self.walk(parent)
            && let Some(span) = table
                .as_table_like()
                .and_then(|t| t.key(key))
                .and_then(|k| k.span())
        {
            return span.start;
        }
        self.value_offset(path)
    }

    /// The raw source text of the value at `path`, when it is located exactly.
    fn value_source(&self, path: &[Seg<'_>]) -> Option<(usize, &'t str)> {
        let span = self.walk(path).0?.span()?;
        self.text.get(span.clone()).map(|raw| (span.start, raw))
    }

    /// Every key in the document named `name`, with the byte offset of the key, in file
    /// order.
    fn keys_named(&self, name: &str) -> Vec<usize> {
        fn visit_item(item: &Item, name: &str, out: &mut Vec<usize>) {
            match item {
                Item::Table(table) => visit_table(table, name, out),
                Item::ArrayOfTables(array) => {
                    for table in array.iter() {
                        visit_table(table, name, out);
                    }
                }
                Item::Value(value) => visit_value(value, name, out),
                Item::None => {}
            }
        }
        fn visit_table(table: &toml_edit::Table, name: &str, out: &mut Vec<usize>) {
            for (key, child) in table.iter() {
                if key == name {
                    out.extend(table.key(key).and_then(|k| k.span()).map(|s| s.start));
                }
                visit_item(child, name, out);
            }
        }
        fn visit_value(value: &toml_edit::Value, name: &str, out: &mut Vec<usize>) {
            match value {
                toml_edit::Value::InlineTable(table) => {
                    for (key, child) in table.iter() {
                        if key == name {
                            out.extend(table.key(key).and_then(|k| k.span()).map(|s| s.start));
                        }
                        visit_value(child, name, out);
                    }
                }
                toml_edit::Value::Array(array) => {
                    for child in array.iter() {
                        visit_value(child, name, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        if let Some(document) = &self.document {
            visit_item(document.as_item(), name, &mut out);
        }
        out.sort_unstable();
        out
    }

    /// 1-based line and character column of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    fn diagnostic(
        &self,
        label: &str,
        offset: usize,
        message: String,
        expected: Option<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let (line, column) = self.position(offset);
        Diagnostic {
            path: label.to_string(),
            line,
            column,
            message,
            expected,
            hint,
        }
    }
}

/// Turns serde's first error (syntax, type, unknown or missing key) into a diagnostic with an
/// expectation and a hint.
fn serde_diagnostic(label: &str, locator: &Locator<'_>, error: &toml::de::Error) -> Diagnostic {
    let raw = error.message().trim();
    let span_start = error.span().map(|s| s.start);
    let span = error.span();
    let mut offset = span_start.unwrap_or(0);

    // Syntax errors come as "what\nexpected ..." lines.
    let mut lines = raw.lines();
    let first = lines.next().unwrap_or_default().trim().to_string();
    let expected_line = lines
        .map(str::trim)
        .find_map(|l| l.strip_prefix("expected "))
        .map(str::to_string);

    let (message, expected, hint) = if let Some(rest) = first.strip_prefix("unknown field ") {
        let (name, valid) = split_expected(rest);
        let name = unquote(&name);
        // Inside internally tagged sections serde only knows the section's span: point at the
        // key itself, the first key of that name inside the span.
        if let Some(found) = locator
            .keys_named(&name)
            .into_iter()
            .find(|&k| span.as_ref().is_none_or(|s| s.contains(&k)))
        {
            offset = found;
        }
        let candidates = quoted_words(valid.as_deref().unwrap_or_default());
        let hint = match nearest(&name, candidates.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "remove it; docs/scenarios.md lists every key".to_string(),
        };
        let expected = match valid.as_deref() {
            Some(v) if candidates.is_empty() => v.to_string(),
            Some(_) => format!("one of the keys {}", candidates.join(", ")),
            None => "no other keys here".to_string(),
        };
        (format!("unknown key `{name}`"), Some(expected), Some(hint))
    } else if let Some(rest) = first.strip_prefix("unknown variant ") {
        let (name, valid) = split_expected(rest);
        let name = unquote(&name);
        let candidates = quoted_words(valid.as_deref().unwrap_or_default());
        let hint = match nearest(&name, candidates.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => "docs/scenarios.md lists the allowed values".to_string(),
        };
        (
            format!("unknown value `{name}`"),
            Some(format!("one of {}", candidates.join(", "))),
            Some(hint),
        )
    } else if let Some(rest) = first.strip_prefix("missing field ") {
        let name = unquote(rest);
        let hint = match name.as_str() {
            "source" => {
                "add `source = \"explicit\"` (or \"static\", \"webhook\", \"network\")".to_string()
            }
            "executor" => "add `executor = \"closed\"` or `executor = \"open\"`".to_string(),
            _ => format!("add `{name} = ...`; docs/scenarios.md describes it"),
        };
        (
            format!("missing required key `{name}`"),
            Some(if offset == 0 {
                format!("the top-level key `{name}`")
            } else {
                format!("the key `{name}` in this table")
            }),
            Some(hint),
        )
    } else if let Some(rest) = first.strip_prefix("invalid type: ") {
        let (found, expected) = split_expected(rest);
        let expected = expected.map(|e| plain_type(&e));
        (
            format!("wrong type: found {found}"),
            expected,
            Some("docs/scenarios.md gives every key's type".to_string()),
        )
    } else if span.is_some() && span_start == locator.value_source(&[K("version")]).map(|v| v.0) {
        (
            format!("invalid version: {first}"),
            Some("a semantic version MAJOR.MINOR.PATCH, for example \"1.0.0\"".to_string()),
            Some("bump MAJOR when results stop being comparable with earlier ones".to_string()),
        )
    } else if let Some(rest) = first.strip_prefix("invalid value: ") {
        let (found, expected) = split_expected(rest);
        (
            format!("invalid value: {found}"),
            expected.map(|e| plain_type(&e)),
            Some("docs/scenarios.md gives every key's range".to_string()),
        )
    } else if first.starts_with("duplicate key") {
        (
            first.clone(),
            Some("each key at most once per table".to_string()),
            Some("remove one of the two; TOML tables cannot repeat a key".to_string()),
        )
    } else {
        let (expected, hint) = match first.as_str() {
            "invalid basic string" | "invalid literal string" => (
                "the string's closing quote on the same line".to_string(),
                "use `\"\"\"` quotes for text spanning several lines",
            ),
            "invalid array" => (
                expected_line.unwrap_or_else(|| "`]`".to_string()),
                "close the array with `]` before the next key",
            ),
            "invalid string" => (
                expected_line.unwrap_or_else(|| "a value".to_string()),
                "text values need quotes; booleans are `true` or `false`",
            ),
            _ => (
                expected_line.unwrap_or_else(|| "valid TOML (see https://toml.io)".to_string()),
                "check quoting, brackets and `=` around this position",
            ),
        };
        (
            format!("invalid TOML: {first}"),
            Some(expected),
            Some(hint.to_string()),
        )
    };
    locator.diagnostic(label, offset, message, expected, hint)
}

/// Splits "X, expected Y" into X and Y.
fn split_expected(text: &str) -> (String, Option<String>) {
    match text.split_once(", expected ") {
        Some((found, expected)) => (found.to_string(), Some(expected.to_string())),
        None => match text.split_once(", there are no fields") {
            Some((found, _)) => (found.to_string(), None),
            None => (text.to_string(), None),
        },
    }
}

/// `` `name` `` to `name`.
fn unquote(text: &str) -> String {
    text.trim().trim_matches('`').to_string()
}

/// The back-quoted words of serde's "one of `a`, `b`" lists.
fn quoted_words(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Serde's Rust-flavoured type names in words a scenario author knows.
fn plain_type(expected: &str) -> String {
    match expected {
        "u32" | "u64" | "u16" | "u8" => "a non-negative integer".to_string(),
        "f64" | "f32" => "a number".to_string(),
        "a sequence" => "a list, `[...]`".to_string(),
        "a boolean" => "true or false".to_string(),
        other => other.to_string(),
    }
}

/// Collects every semantic problem of a scenario that parsed.
struct Checker<'a, 't> {
    label: &'a str,
    locator: &'a Locator<'t>,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_, '_> {
    fn error_at(&mut self, offset: usize, message: String, expected: &str, hint: &str) {
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
    fn error(&mut self, path: &[Seg<'_>], message: String, expected: &str, hint: &str) {
        let offset = self.locator.value_offset(path);
        self.error_at(offset, message, expected, hint);
    }

    /// Checks `lo <= value <= hi` for the value at `path`, named `name` in the message.
    fn range(&mut self, path: &[Seg<'_>], name: &str, value: u64, lo: u64, hi: u64, hint: &str) {
        if value < lo || value > hi {
            self.error(
                path,
                format!("{name} = {value} is out of range"),
                &format!("an integer from {lo} to {hi}"),
                hint,
            );
        }
    }

    fn check(&mut self, s: &Scenario) {
        self.check_header(s);
        self.check_prompts(s);
        self.check_input(s);
        self.check_session(s);
        self.check_targets(&s.targets);
        self.check_load(s);
        self.check_thresholds(s);
        self.check_report(s);
    }

    fn check_header(&mut self, s: &Scenario) {
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

    fn check_prompts(&mut self, s: &Scenario) {
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

    fn check_input(&mut self, s: &Scenario) {
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

    fn check_session(&mut self, s: &Scenario) {
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

    fn check_targets(&mut self, targets: &Targets) {
        let max_targets = match targets {
            Targets::Explicit { uris } => {
                if uris.is_empty() {
                    self.error(
                        &[K("targets"), K("uris")],
                        "no target uris".to_string(),
                        "at least one orchestrator URI",
                        "or leave the list to `lvt run --target URI`: write a placeholder such as \"127.0.0.1:8935\"",
                    );
                }
                for (i, uri) in uris.iter().enumerate() {
                    self.check_uri(&[K("targets"), K("uris"), I(i)], uri);
                }
                None
            }
            Targets::Static {
                orchestrators,
                max_targets,
                min_score,
            } => {
                if orchestrators.is_empty() {
                    self.error(
                        &[K("targets"), K("orchestrators")],
                        "no orchestrators in the static list".to_string(),
                        "at least one `{ address = \"host:port\", score = 1.0 }`",
                        "or use `source = \"explicit\"` with a list of uris",
                    );
                }
                for (i, o) in orchestrators.iter().enumerate() {
                    let path = [K("targets"), K("orchestrators"), I(i), K("address")];
                    self.check_uri(&path, &o.address);
                    if !o.score.is_finite() {
                        self.error(
                            &[K("targets"), K("orchestrators"), I(i), K("score")],
                            "score is not a finite number".to_string(),
                            "a finite number",
                            "scores order the candidates; write a plain number such as 0.5",
                        );
                    }
                }
                self.check_min_score(*min_score);
                *max_targets
            }
            Targets::Webhook {
                url,
                max_targets,
                min_score,
                timeout_ms,
            } => {
                self.check_http_url(&[K("targets"), K("url")], "webhook url", url);
                self.check_min_score(*min_score);
                self.range(
                    &[K("targets"), K("timeout_ms")],
                    "targets.timeout_ms",
                    (*timeout_ms).into(),
                    1,
                    600_000,
                    "the timeout is in milliseconds",
                );
                *max_targets
            }
            Targets::Network {
                discovery,
                strategy: _,
                discovery_timeout_ms,
            } => {
                self.check_network_discovery(discovery);
                self.range(
                    &[K("targets"), K("discovery_timeout_ms")],
                    "targets.discovery_timeout_ms",
                    (*discovery_timeout_ms).into(),
                    1,
                    60_000,
                    "the timeout is in milliseconds; go-livepeer gives discovery 3000",
                );
                None
            }
        };
        if max_targets == Some(0) {
            self.error(
                &[K("targets"), K("max_targets")],
                "targets.max_targets = 0 tests nothing".to_string(),
                "at least 1",
                "remove max_targets to test every discovered orchestrator",
            );
        }
    }

    fn check_network_discovery(&mut self, discovery: &NetworkDiscovery) {
        match discovery {
            NetworkDiscovery::Static { orchestrators } => {
                if orchestrators.is_empty() {
                    self.error(
                        &[K("targets"), K("discovery"), K("orchestrators")],
                        "no orchestrators in the static discovery list".to_string(),
                        "at least one `{ address = \"host:port\", score = 1.0 }`",
                        "a network target selects among these candidates",
                    );
                }
                for (i, o) in orchestrators.iter().enumerate() {
                    let path = [
                        K("targets"),
                        K("discovery"),
                        K("orchestrators"),
                        I(i),
                        K("address"),
                    ];
                    self.check_uri(&path, &o.address);
                    if !o.score.is_finite() {
                        self.error(
                            &[
                                K("targets"),
                                K("discovery"),
                                K("orchestrators"),
                                I(i),
                                K("score"),
                            ],
                            "score is not a finite number".to_string(),
                            "a finite number",
                            "scores weigh score-weighted selection; write a plain number such as 0.5",
                        );
                    }
                }
            }
            NetworkDiscovery::Webhook { url, timeout_ms } => {
                self.check_http_url(
                    &[K("targets"), K("discovery"), K("url")],
                    "webhook url",
                    url,
                );
                self.discovery_timeout(*timeout_ms);
            }
            NetworkDiscovery::Naap {
                base_url,
                timeout_ms,
            } => {
                self.check_http_url(
                    &[K("targets"), K("discovery"), K("base_url")],
                    "NaaP base_url",
                    base_url,
                );
                self.discovery_timeout(*timeout_ms);
            }
            NetworkDiscovery::Chain {
                rpc_url,
                controller,
                service_registry,
                timeout_ms,
            } => {
                self.check_http_url(
                    &[K("targets"), K("discovery"), K("rpc_url")],
                    "chain rpc_url",
                    rpc_url,
                );
                let addresses = [
                    ("controller", controller.as_deref()),
                    (
                        "service_registry",
                        service_registry.as_deref().filter(|v| *v != "ai"),
                    ),
                ];
                for (field, value) in addresses {
                    if let Some(value) = value
                        && let Err(e) =
                            lvt_gateway::discovery::config::parse_eth_address(field, value)
                    {
                        self.error(
                            &[K("targets"), K("discovery"), K(field)],
                            e.to_string(),
                            "a 0x-prefixed 20-byte hex address",
                            "write the contract address as 0x followed by 40 hex digits",
                        );
                    }
                }
                self.discovery_timeout(*timeout_ms);
            }
        }
    }

    fn discovery_timeout(&mut self, timeout_ms: u32) {
        self.range(
            &[K("targets"), K("discovery"), K("timeout_ms")],
            "targets.discovery.timeout_ms",
            timeout_ms.into(),
            1,
            600_000,
            "the timeout is in milliseconds",
        );
    }

    fn check_uri(&mut self, path: &[Seg<'_>], uri: &str) {
        if let Err(error) = uri.parse::<OrchestratorUri>() {
            self.error(
                path,
                format!("invalid orchestrator address: {error}"),
                "`host:port`, `https://host:port` or `http://host:port`",
                "an address without a scheme means https, as in go-livepeer",
            );
        }
    }

    /// Sessions are labelled with the target's normalized URI (`https://host:port`), and
    /// `where` compares labels exactly, so the filter must be written in that form.
    fn check_where_target(&mut self, path: &[Seg<'_>], value: &str) {
        match value.parse::<OrchestratorUri>() {
            Err(_) => self.check_uri(path, value),
            Ok(uri) if uri.to_string() != value => self.error(
                path,
                format!("target `{value}` would never match: sessions are labelled `{uri}`"),
                &format!("the normalized URI `{uri}`"),
                "results label each session with the target's full URI, scheme and port included",
            ),
            Ok(_) => {}
        }
    }

    fn check_http_url(&mut self, path: &[Seg<'_>], name: &str, url: &str) {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(|host| host.trim().is_empty()) {
            self.error(
                path,
                format!("{name} `{url}` is not an http(s) URL"),
                "a URL starting with http:// or https:// and naming a host",
                "write the full URL, for example \"http://127.0.0.1:9000/orchestrators\"",
            );
        }
    }

    fn check_min_score(&mut self, min_score: Option<f64>) {
        if min_score.is_some_and(|m| !m.is_finite()) {
            self.error(
                &[K("targets"), K("min_score")],
                "targets.min_score is not a finite number".to_string(),
                "a finite number",
                "write a plain number such as 0.5",
            );
        }
    }

    fn check_load(&mut self, s: &Scenario) {
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

    fn check_planned_time(&mut self, total_s: u64) {
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

    fn check_thresholds(&mut self, s: &Scenario) {
        let complexities: BTreeSet<Complexity> = s.prompts.iter().map(|p| p.complexity).collect();
        let prompt_ids: BTreeSet<&str> = s.prompts.iter().map(|p| p.id.as_str()).collect();
        for (i, threshold) in s.thresholds.iter().enumerate() {
            let expr_path = [K("thresholds"), I(i), K("expr")];
            if let Err(error) = ThresholdExpr::parse(&threshold.expr) {
                let offset = self.expr_offset(&expr_path, &threshold.expr, error.offset);
                let diagnostic = self.locator.diagnostic(
                    self.label,
                    offset,
                    error.message,
                    Some(error.expected),
                    error.hint,
                );
                self.diagnostics.push(diagnostic);
            }
            for (key, value) in &threshold.r#where {
                let key_path = [K("thresholds"), I(i), K("where"), K(key.as_str())];
                let Some(label) = Label::ALL.into_iter().find(|l| l.as_str() == key) else {
                    let hint = match nearest(key, Label::ALL.map(Label::as_str)) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => "thresholds filter sessions by their labels only".to_string(),
                    };
                    let offset = self.locator.key_offset(&key_path);
                    self.error_at(
                        offset,
                        format!("unknown label `{key}` in `where`"),
                        "one of the labels target, complexity, prompt, start",
                        &hint,
                    );
                    continue;
                };
                match label {
                    Label::Complexity => {
                        self.check_where_complexity(&key_path, value, &complexities)
                    }
                    Label::Prompt => {
                        if !prompt_ids.contains(value.as_str()) {
                            let declared: Vec<&str> = prompt_ids.iter().copied().collect();
                            let hint = match nearest(value, declared.iter().copied()) {
                                Some(best) => format!("did you mean `{best}`?"),
                                None => "this threshold would never match a session".to_string(),
                            };
                            self.error(
                                &key_path,
                                format!("no prompt has id `{value}`"),
                                &format!("one of the declared prompt ids: {}", declared.join(", ")),
                                &hint,
                            );
                        }
                    }
                    Label::Start => {
                        if value != "cold" && value != "warm" {
                            self.error(
                                &key_path,
                                format!("unknown start kind `{value}`"),
                                "cold or warm",
                                "a session is cold when it is the first on its target or follows a pause of 60 s or more",
                            );
                        }
                    }
                    Label::Target => self.check_where_target(&key_path, value),
                }
            }
        }
    }

    fn check_where_complexity(
        &mut self,
        path: &[Seg<'_>],
        value: &str,
        declared: &BTreeSet<Complexity>,
    ) {
        let names: Vec<&str> = declared.iter().map(|c| complexity_name(*c)).collect();
        let known = ["low", "medium", "high"];
        if !known.contains(&value) {
            let hint = match nearest(value, known) {
                Some(best) => format!("did you mean `{best}`?"),
                None => "complexities are low, medium and high".to_string(),
            };
            self.error(
                path,
                format!("unknown complexity `{value}`"),
                &format!("one of the declared complexities: {}", names.join(", ")),
                &hint,
            );
        } else if !names.contains(&value) {
            self.error(
                path,
                format!("no prompt has complexity `{value}`"),
                &format!("one of the declared complexities: {}", names.join(", ")),
                &format!(
                    "add a prompt with complexity = \"{value}\" or change the filter: this threshold would never match a session"
                ),
            );
        }
    }

    /// Where, in the file, byte `offset` of a threshold expression is: inside the string when
    /// it is written as a plain one-line string, at the string otherwise.
    fn expr_offset(&self, path: &[Seg<'_>], expr: &str, offset: usize) -> usize {
        match self.locator.value_source(path) {
            Some((start, raw)) => {
                let plain = raw.len() >= 2
                    && !raw.starts_with("\"\"\"")
                    && !raw.starts_with("'''")
                    && raw.get(1..raw.len() - 1) == Some(expr);
                if plain { start + 1 + offset } else { start }
            }
            None => self.locator.value_offset(path),
        }
    }

    fn check_report(&mut self, s: &Scenario) {
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

fn complexity_name(c: Complexity) -> &'static str {
    match c {
        Complexity::Low => "low",
        Complexity::Medium => "medium",
        Complexity::High => "high",
    }
}

/// `^[a-z0-9][a-z0-9-]*$`.
fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
pub(crate) fn position_for_tests(text: &str, offset: usize) -> (usize, usize) {
    Locator::new(text).position(offset)
}
