//! The runner's self-reports: parses events-channel documents (protocol section 4) into a
//! [`RunnerReport`].
//!
//! Events are network input, so nothing here fails: a document that is not the expected
//! envelope is counted as malformed, fields of the wrong type are ignored, and every kept string
//! and list is bounded.

use lvt_schema::RunnerReport;
use serde_json::Value;

/// Longest runner-provided string kept (error messages, states, trace types), in bytes.
const MAX_TEXT_BYTES: usize = 512;

/// Placeholder kept for an `error` event that carried no message string.
const NO_MESSAGE: &str = "(error event without a message)";

/// Builds a [`RunnerReport`] from events.
#[derive(Debug)]
pub(super) struct RunnerTracker {
    report: RunnerReport,
    max_kept: usize,
    last_event_at_us: Option<u64>,
}

impl RunnerTracker {
    pub(super) fn new(max_kept: usize) -> Self {
        Self {
            report: RunnerReport::default(),
            max_kept,
            last_event_at_us: None,
        }
    }

    pub(super) fn report(&self) -> RunnerReport {
        self.report.clone()
    }

    pub(super) fn last_event_at_us(&self) -> Option<u64> {
        self.last_event_at_us
    }

    pub(super) fn last_state(&self) -> Option<&str> {
        self.report.last_state.as_deref()
    }

    /// Counts a document that could not even be parsed as JSON.
    pub(super) fn handle_malformed(&mut self, at_us: u64) {
        self.note_received(at_us);
        self.report.events_malformed = self.report.events_malformed.saturating_add(1);
    }

    pub(super) fn handle_event(&mut self, document: &Value, at_us: u64) {
        self.note_received(at_us);
        let Some((event, event_type)) = envelope(document) else {
            self.report.events_malformed = self.report.events_malformed.saturating_add(1);
            return;
        };
        let queue = document.get("queue_event_type").and_then(Value::as_str);
        if queue == Some("stream_trace") {
            push_distinct(&mut self.report.traces, event_type, self.max_kept);
            return;
        }
        match event_type {
            "status" => self.handle_status(event),
            "restart" => self.handle_restart(event),
            "error" => self.handle_error(event),
            // Other event types (params updates, future additions) carry nothing we report.
            _ => {}
        }
    }

    fn note_received(&mut self, at_us: u64) {
        self.report.events_received = self.report.events_received.saturating_add(1);
        self.last_event_at_us = Some(self.last_event_at_us.map_or(at_us, |last| last.max(at_us)));
    }

    fn handle_status(&mut self, status: &Value) {
        let report = &mut self.report;
        report.status_events = report.status_events.saturating_add(1);
        if let Some(state) = status.get("state").and_then(Value::as_str) {
            push_distinct(&mut report.states_seen, state, self.max_kept);
            report.last_state = Some(bounded(state));
        }
        if let Some(fps) = status.pointer("/input_status/fps").and_then(Value::as_f64) {
            report.input_fps = Some(fps);
        }
        let inference = status.get("inference_status");
        if let Some(fps) = inference.and_then(|i| i.get("fps")).and_then(Value::as_f64) {
            report.output_fps = Some(fps);
        }
        if let Some(count) = inference
            .and_then(|i| i.get("restart_count"))
            .and_then(as_u32)
        {
            report.restart_count = Some(count);
        }
        if let Some(hash) = inference
            .and_then(|i| i.get("last_params_hash"))
            .and_then(Value::as_str)
        {
            report.last_params_hash = Some(bounded(hash));
        }
    }

    fn handle_restart(&mut self, restart: &Value) {
        let count = restart.get("restart_count").and_then(as_u32);
        // Without its own count, a restart event still means one more restart.
        let count =
            count.unwrap_or_else(|| self.report.restart_count.unwrap_or(0).saturating_add(1));
        self.report.restart_count = Some(count);
    }

    fn handle_error(&mut self, error: &Value) {
        self.report.error_events = self.report.error_events.saturating_add(1);
        if self.report.errors.len() < self.max_kept {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or(NO_MESSAGE);
            self.report.errors.push(bounded(message));
        }
    }
}

/// The inner event and its type, when `document` is `{"event": {"type": "<string>", ...}}`
/// (ai-runner's events channel).
pub fn envelope(document: &Value) -> Option<(&Value, &str)> {
    let event = document.get("event").filter(|event| event.is_object())?;
    let event_type = event.get("type").and_then(Value::as_str)?;
    Some((event, event_type))
}

fn as_u32(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|count| u32::try_from(count).ok())
}

/// Appends `text` to `list` unless it is already there or the list holds `max_kept` items.
fn push_distinct(list: &mut Vec<String>, text: &str, max_kept: usize) {
    let text = bounded(text);
    if list.len() < max_kept && !list.contains(&text) {
        list.push(text);
    }
}

/// `text` cut to at most [`MAX_TEXT_BYTES`] bytes on a character boundary.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
