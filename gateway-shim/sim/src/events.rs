//! The JSON documents a simulated runner publishes on the `-events` channel, and the params hash.
//!
//! Shapes follow ai-runner (`live/streamer/status.py`, `process_guardian.py`, `streamer.py`):
//! each trickle segment carries `{"event": {...}, "queue_event_type": "ai_stream_events" |
//! "stream_trace"}` and every event has `timestamp` in unix milliseconds. Pure functions only.

use serde_json::{Map, Value, json};

/// Which Kafka queue the gateway forwards an event to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueEventType {
    /// Status, restart and error events.
    AiStreamEvents,
    /// Trace points such as `runner_receive_stream_request`.
    StreamTrace,
}

impl QueueEventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueEventType::AiStreamEvents => "ai_stream_events",
            QueueEventType::StreamTrace => "stream_trace",
        }
    }
}

/// One document for the events channel.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDoc {
    pub queue_event_type: QueueEventType,
    /// The event object; it always has `type` and `timestamp`.
    pub event: Value,
}

impl EventDoc {
    /// The event's `type` field.
    pub fn kind(&self) -> &str {
        self.event.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// The segment body: `{"event": ..., "queue_event_type": ...}`.
    pub fn to_json(&self) -> String {
        json!({"event": self.event, "queue_event_type": self.queue_event_type.as_str()}).to_string()
    }
}

/// Pipeline states ai-runner reports (`PipelineState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineState {
    Loading,
    Online,
    DegradedInference,
    Error,
}

impl PipelineState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineState::Loading => "LOADING",
            PipelineState::Online => "ONLINE",
            PipelineState::DegradedInference => "DEGRADED_INFERENCE",
            PipelineState::Error => "ERROR",
        }
    }
}

/// Everything a status event reports, in ai-runner's units (times as unix milliseconds).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusSnapshot {
    pub pipeline: String,
    pub start_time_ms: i64,
    pub state: Option<PipelineState>,
    pub last_state_update_time_ms: Option<i64>,
    pub last_input_time_ms: Option<i64>,
    pub input_fps: f64,
    pub last_output_time_ms: Option<i64>,
    pub output_fps: f64,
    pub last_params_update_time_ms: Option<i64>,
    pub last_params: Option<Value>,
    pub last_params_hash: Option<String>,
    pub last_error_time_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_restart_time_ms: Option<i64>,
    pub last_restart_logs: Option<Vec<String>>,
    pub restart_count: u32,
}

/// Builds the `status` event (`PipelineStatus.model_dump()` plus `timestamp`).
/// `last_status_timestamp_s` is ai-runner's extra field: the previous report time in float
/// unix seconds (it is not converted to milliseconds there either).
pub fn status_event(s: &StatusSnapshot, now_ms: i64, last_status_timestamp_s: f64) -> EventDoc {
    let event = json!({
        "type": "status",
        "pipeline": s.pipeline,
        "start_time": s.start_time_ms,
        "state": s.state.unwrap_or(PipelineState::Loading).as_str(),
        "last_state_update_time": s.last_state_update_time_ms,
        "input_status": {
            "last_input_time": s.last_input_time_ms,
            "fps": s.input_fps,
        },
        "inference_status": {
            "last_output_time": s.last_output_time_ms,
            "fps": s.output_fps,
            "last_params_update_time": s.last_params_update_time_ms,
            "last_params": s.last_params,
            "last_params_hash": s.last_params_hash,
            "last_error_time": s.last_error_time_ms,
            "last_error": s.last_error,
            "last_restart_time": s.last_restart_time_ms,
            "last_restart_logs": s.last_restart_logs,
            "restart_count": s.restart_count,
        },
        "last_status_timestamp": last_status_timestamp_s,
        "timestamp": now_ms,
    });
    EventDoc {
        queue_event_type: QueueEventType::AiStreamEvents,
        event,
    }
}

/// The `restart` event. ai-runner sends `restart_time` as float unix seconds (`time.time()`).
pub fn restart_event(pipeline: &str, restart_count: u32, logs: &[String], now_ms: i64) -> EventDoc {
    EventDoc {
        queue_event_type: QueueEventType::AiStreamEvents,
        event: json!({
            "type": "restart",
            "pipeline": pipeline,
            "restart_count": restart_count,
            "restart_time": now_ms as f64 / 1000.0,
            "restart_logs": logs,
            "timestamp": now_ms,
        }),
    }
}

/// The `error` event. ai-runner sends `time` as float unix seconds.
pub fn error_event(pipeline: &str, message: &str, now_ms: i64) -> EventDoc {
    EventDoc {
        queue_event_type: QueueEventType::AiStreamEvents,
        event: json!({
            "type": "error",
            "pipeline": pipeline,
            "message": message,
            "time": now_ms as f64 / 1000.0,
            "timestamp": now_ms,
        }),
    }
}

/// A `stream_trace` event such as `runner_receive_first_ingest_segment`.
pub fn trace_event(kind: &str, now_ms: i64) -> EventDoc {
    let mut event = Map::new();
    event.insert("type".into(), Value::from(kind));
    event.insert("timestamp".into(), Value::from(now_ms));
    EventDoc {
        queue_event_type: QueueEventType::StreamTrace,
        event: Value::Object(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_documents_have_type_and_timestamp() {
        let doc = trace_event("runner_receive_stream_request", 1_700_000_000_123);
        let parsed: Value = serde_json::from_str(&doc.to_json()).unwrap();
        assert_eq!(parsed["queue_event_type"], "stream_trace");
        assert_eq!(parsed["event"]["type"], "runner_receive_stream_request");
        assert_eq!(parsed["event"]["timestamp"], 1_700_000_000_123i64);
        let doc = error_event("noop", "boom", 2_000);
        assert_eq!(doc.kind(), "error");
        assert_eq!(doc.event["time"], 2.0);
        let status = status_event(&StatusSnapshot::default(), 5, 0.0);
        assert_eq!(status.event["state"], "LOADING");
        assert_eq!(status.event["inference_status"]["restart_count"], 0);
    }
}
