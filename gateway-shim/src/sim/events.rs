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

/// Serialises JSON exactly like Python's `json.dumps(value, sort_keys=True)`: object keys sorted
/// recursively by code point, `", "` and `": "` separators, non-ASCII escaped as `\uXXXX`, and
/// floats written the way Python's `repr` writes them.
///
/// ai-runner computes `last_params_hash` as the hex MD5 of exactly this text, so a tester that
/// hashes the params it sent with this function gets the hash a real runner reports (the
/// compact, whitespace-free form would not match real runners, which is why it is not used).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Hex MD5 of [`canonical_json`], ai-runner's `last_params_hash`.
pub fn params_hash(params: &Value) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(canonical_json(params).as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&python_float_repr(f));
            } else {
                // serde_json numbers are always one of the three above unless the
                // arbitrary_precision feature is on; its own text is the best fallback then.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_python_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_string(key, out);
                out.push_str(": ");
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// A JSON string as Python's `json.dumps` writes it with `ensure_ascii=True`.
fn write_python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest round-trip digits, in fixed notation when the decimal
/// exponent is between -4 and 16, otherwise as `d.ddde+XX`.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Position of the decimal point relative to the digit string: value = 0.DIGITS * 10^decpt.
    let decpt = exp + 1;
    if (-4 < decpt) && (decpt <= 16) {
        let mut text = String::from(sign);
        if decpt <= 0 {
            text.push_str("0.");
            for _ in 0..(-decpt) {
                text.push('0');
            }
            text.push_str(&digits);
        } else {
            let point = decpt as usize;
            if digits.len() <= point {
                text.push_str(&digits);
                for _ in digits.len()..point {
                    text.push('0');
                }
                text.push_str(".0");
            } else {
                text.push_str(&digits[..point]);
                text.push('.');
                text.push_str(&digits[point..]);
            }
        }
        text
    } else {
        let mut text = String::from(sign);
        text.push_str(&digits[..1]);
        if digits.len() > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        text.push_str(&format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()));
        text
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
    fn canonical_json_matches_python_json_dumps_sort_keys() {
        // Expected strings are what CPython 3's json.dumps(v, sort_keys=True) prints.
        let cases = [
            (
                json!({"b": 1, "a": [1, 2.5, "x"]}),
                r#"{"a": [1, 2.5, "x"], "b": 1}"#,
            ),
            (
                json!({"z": {"y": null, "x": true}}),
                r#"{"z": {"x": true, "y": null}}"#,
            ),
            (json!({}), "{}"),
            (json!([]), "[]"),
            (json!("é\"\\\n\u{1}"), r#""\u00e9\"\\\n\u0001""#),
            (json!("😀"), r#""\ud83d\ude00""#),
            (json!(1.0), "1.0"),
            (json!(-0.5), "-0.5"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1e16), "1e+16"),
            (json!(1.5e16), "1.5e+16"),
            (json!(1e15), "1000000000000000.0"),
            (json!(123.456), "123.456"),
            (json!(-7), "-7"),
            (json!(u64::MAX), "18446744073709551615"),
        ];
        for (value, expected) in cases {
            assert_eq!(canonical_json(&value), expected, "{value}");
        }
    }

    #[test]
    fn params_hash_is_md5_of_canonical_text() {
        // md5('{"prompt": "a cat"}') computed with Python's hashlib.
        let hash = params_hash(&json!({"prompt": "a cat"}));
        assert_eq!(hash.len(), 32);
        use md5::{Digest, Md5};
        assert_eq!(
            hash,
            hex::encode(Md5::digest(br#"{"prompt": "a cat"}"#)),
            "hash covers the Python-style text"
        );
        assert_eq!(
            params_hash(&json!({"b": 1, "a": 2})),
            params_hash(&json!({"a": 2, "b": 1}))
        );
    }

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
