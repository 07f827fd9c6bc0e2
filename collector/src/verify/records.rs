//! The result records of a signed body: what they must be to be stored (types, schema version,
//! session id, plausibility bounds, time bounds), and their stored form. Pure functions: no
//! clock (the time is an input), no store, no HTTP; errors point at the offending value with an
//! RFC 6901 pointer.

use std::collections::BTreeMap;
use std::ops::Range;

use lvt_schema::sign;
use lvt_schema::{SCHEMA_VERSION, SessionReport};
use serde::Deserialize as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::stored::StoredResult;

/// Why a body's records (results, or go-livepeer event envelopes in [`super::events`]) were
/// refused, before any HTTP: the pure validation's own error. The HTTP
/// layer answers it as a problem of the same kind at the same JSON pointer
/// (`From<RecordError> for Problem`); the Kafka consumer words it as a rejection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The body is not JSON.
    #[error("{detail}")]
    MalformedJson {
        /// Where, as an RFC 6901 pointer (empty: the whole body).
        pointer: String,
        /// What is wrong.
        detail: String,
    },
    /// The body is JSON but not an array of valid records.
    #[error("{detail}")]
    InvalidRecord {
        /// The offending value, as an RFC 6901 pointer (`/3/metrics/startup_ms`).
        pointer: String,
        /// What is wrong.
        detail: String,
    },
}

impl RecordError {
    /// The RFC 6901 pointer of the offending value (empty: the whole body).
    pub fn pointer(&self) -> &str {
        match self {
            Self::MalformedJson { pointer, .. } | Self::InvalidRecord { pointer, .. } => pointer,
        }
    }

    /// What is wrong.
    pub fn detail(&self) -> &str {
        match self {
            Self::MalformedJson { detail, .. } | Self::InvalidRecord { detail, .. } => detail,
        }
    }

    pub(super) fn malformed(detail: impl Into<String>) -> Self {
        Self::MalformedJson {
            pointer: String::new(),
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(pointer: String, detail: impl Into<String>) -> Self {
        Self::InvalidRecord {
            pointer,
            detail: detail.into(),
        }
    }
}

/// Lowercase hex SHA-256 of the canonical bytes of the array of `results`' records, from their
/// stored canonical bytes. A canonical array is its items' canonical bytes joined by `,` inside
/// `[` and `]` (compact JSON), so this equals the digest of the signed body
/// (`app::ingest::VerifiedBody::canonical_sha256`) without canonicalising the whole batch a
/// third time (the signature check and the per-record stored form already did it twice).
pub fn canonical_sha256_of(results: &[StoredResult]) -> String {
    let mut digest = Sha256::new();
    digest.update(b"[");
    for (index, result) in results.iter().enumerate() {
        if index > 0 {
            digest.update(b",");
        }
        digest.update(result.record_json.as_bytes());
    }
    digest.update(b"]");
    hex::encode(digest.finalize())
}

/// Checks that `value` is a JSON array of valid records and turns each into its stored form.
///
/// Errors point at the offending value with an RFC 6901 pointer (`/3/metrics/startup_ms`).
pub fn validate_records(value: &Value) -> Result<Vec<StoredResult>, RecordError> {
    let Value::Array(items) = value else {
        return Err(RecordError::invalid(
            String::new(),
            "the body must be a JSON array of result records",
        ));
    };
    // Tracking the path costs as much again as the parse, so it is only done to explain a
    // failure: a body that does not deserialize is deserialized a second time with tracking.
    let reports = match Vec::<SessionReport>::deserialize(value) {
        Ok(reports) => reports,
        Err(plain) => {
            return Err(
                match serde_path_to_error::deserialize::<_, Vec<SessionReport>>(value) {
                    Err(error) => {
                        RecordError::invalid(json_pointer(error.path()), error.inner().to_string())
                    }
                    // Cannot happen (the same value, the same types), but if it did the plain
                    // error still says what is wrong.
                    Ok(_) => RecordError::invalid(String::new(), plain.to_string()),
                },
            );
        }
    };
    let mut results = Vec::with_capacity(reports.len());
    for (index, (report, item)) in reports.into_iter().zip(items).enumerate() {
        check_report(index, &report)?;
        results.push(stored_result(report, sign::canonical_bytes(item)));
    }
    Ok(results)
}

/// [`validate_records`] of a body whose items are already canonical (`items` are their ranges in
/// `body`): each item is read straight into a record, and its bytes are its stored form. The
/// answers are the same as for the parsed body; a failure is explained by [`validate_records`]
/// on the parsed body, so its pointer is the same too.
pub(super) fn validate_canonical_records(
    body: &str,
    items: &[Range<usize>],
) -> Result<Vec<StoredResult>, RecordError> {
    let mut results = Vec::with_capacity(items.len());
    for (index, range) in items.iter().enumerate() {
        let text = &body[range.clone()];
        let Ok(report) = serde_json::from_str::<SessionReport>(text) else {
            let value: Value = serde_json::from_str(body)
                .map_err(|error| RecordError::malformed(error.to_string()))?;
            return validate_records(&value);
        };
        check_report(index, &report)?;
        results.push(stored_result(report, text.as_bytes().to_vec()));
    }
    Ok(results)
}

/// What a record must be beyond its types: this collector's schema version, a session id.
fn check_report(index: usize, report: &SessionReport) -> Result<(), RecordError> {
    if report.schema_version != SCHEMA_VERSION {
        return Err(RecordError::invalid(
            format!("/{index}/schema_version"),
            format!(
                "schema_version {} is not supported (this collector reads {SCHEMA_VERSION})",
                report.schema_version
            ),
        ));
    }
    if report.session_id.trim().is_empty() {
        return Err(RecordError::invalid(
            format!("/{index}/session_id"),
            "session_id must not be empty",
        ));
    }
    check_bounds(index, report)
}

/// When a stored record may have ended, against the collector's clock: not later than the
/// signed-timestamp skew allowed (`timestamp_window_s`) after now, since a tester cannot report a
/// session that has not ended, and not earlier than the retention (`retention_days`) before now,
/// since the sweep would delete it at once and, until then, it would land in an hour nobody
/// reads any more. Checked after [`validate_records`] by both ingest paths, HTTP and Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    /// The collector's clock, milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// How far in the future a session may have ended (clock skew), milliseconds.
    pub skew_ms: i64,
    /// How long ago a session may have ended, milliseconds.
    pub retention_ms: i64,
}

impl TimeBounds {
    /// Refuses the first record that ended outside the bounds, at its `ended_at_unix_ms`.
    ///
    /// # Errors
    /// A record ended in the future beyond the skew, or before the retention window.
    pub fn check(&self, results: &[StoredResult]) -> Result<(), RecordError> {
        let latest = self.now_ms.saturating_add(self.skew_ms);
        let earliest = self.now_ms.saturating_sub(self.retention_ms);
        for (index, result) in results.iter().enumerate() {
            let ended = result.ended_at_unix_ms;
            let pointer = format!("/{index}/ended_at_unix_ms");
            if ended > latest {
                return Err(RecordError::invalid(
                    pointer,
                    format!(
                        "ended_at_unix_ms {ended} is {} ms after the collector's clock ({}); at \
                         most {} ms of clock skew are allowed",
                        ended - self.now_ms,
                        self.now_ms,
                        self.skew_ms
                    ),
                ));
            }
            if ended < earliest {
                return Err(RecordError::invalid(
                    pointer,
                    format!(
                        "ended_at_unix_ms {ended} is before the retention window (records that \
                         ended before {earliest} are deleted)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The longest a session may last, and the largest duration a record may state: a week.
pub const MAX_SESSION_MS: i64 = 7 * 24 * 3_600_000;
/// The largest time in ms a metric may state (startup, latency, stalls, freezes): an hour.
pub const MAX_METRIC_MS: f64 = 3_600_000.0;
/// The largest frame rate a record may state.
pub const MAX_FPS: f64 = 1_000.0;
/// Frames (or segments, keyframes) a session may count per second it lasted, at most.
pub const MAX_FRAMES_PER_S: u64 = 1_000;
/// Bytes a session may count per second it lasted, at most (1 Gbit/s).
pub const MAX_BYTES_PER_S: u64 = 125_000_000;

/// Plausibility bounds (issue 16 section 4): one record must not be able to wreck the SLA sums
/// (which saturate) or land anywhere in time. Every failure points at the value. The bounds are
/// far above anything a real session produces and are documented in docs/collector.md.
fn check_bounds(index: usize, report: &SessionReport) -> Result<(), RecordError> {
    let at = |field: &str| format!("/{index}/{field}");
    let started = report.started_at_unix_ms;
    let ended = report.ended_at_unix_ms;
    if started <= 0 {
        return Err(RecordError::invalid(
            at("started_at_unix_ms"),
            format!("started_at_unix_ms {started} is not a time after 1970"),
        ));
    }
    if ended < started || ended - started > MAX_SESSION_MS {
        return Err(RecordError::invalid(
            at("ended_at_unix_ms"),
            format!(
                "ended_at_unix_ms {ended} must be at or after started_at_unix_ms {started} and \
                 at most {MAX_SESSION_MS} ms later"
            ),
        ));
    }
    let seconds = u64::try_from((ended - started) / 1000 + 1).unwrap_or(1);
    let ms = |field: &str, value: f64| -> Result<(), RecordError> {
        if value.is_finite() && (0.0..=MAX_METRIC_MS).contains(&value) {
            Ok(())
        } else {
            Err(RecordError::invalid(
                at(field),
                format!("{value} ms is out of bounds (0 to {MAX_METRIC_MS} ms)"),
            ))
        }
    };
    let fps = |field: &str, value: f64| -> Result<(), RecordError> {
        if value.is_finite() && (0.0..=MAX_FPS).contains(&value) {
            Ok(())
        } else {
            Err(RecordError::invalid(
                at(field),
                format!("{value} fps is out of bounds (0 to {MAX_FPS})"),
            ))
        }
    };
    let count = |field: &str, value: u64, per_s: u64| -> Result<(), RecordError> {
        let limit = per_s.saturating_mul(seconds);
        if value <= limit {
            Ok(())
        } else {
            Err(RecordError::invalid(
                at(field),
                format!("{value} is more than a session of {seconds} s can count ({limit})"),
            ))
        }
    };
    let m = &report.metrics;
    for (field, value) in [
        ("metrics/get_orchestrator_ms", m.get_orchestrator_ms),
        ("metrics/job_start_ms", m.job_start_ms),
        ("metrics/startup_ms", m.startup_ms),
        (
            "metrics/frame_interval_jitter_ms",
            m.frame_interval_jitter_ms,
        ),
        (
            "metrics/params_update_latency_ms",
            m.params_update_latency_ms,
        ),
    ] {
        if let Some(value) = value {
            ms(field, value)?;
        }
    }
    if let Some(e2e) = &m.e2e_latency_ms {
        for (name, value) in [
            ("p50", e2e.p50),
            ("p90", e2e.p90),
            ("p95", e2e.p95),
            ("p99", e2e.p99),
            ("max", e2e.max),
            ("mean", e2e.mean),
            ("min", e2e.min),
        ] {
            ms(&format!("metrics/e2e_latency_ms/{name}"), value)?;
        }
        count("metrics/e2e_latency_ms/count", e2e.count, MAX_FRAMES_PER_S)?;
    }
    ms("metrics/stalls/total_ms", m.stalls.total_ms)?;
    ms("metrics/stalls/longest_ms", m.stalls.longest_ms)?;
    for (field, value) in [
        ("metrics/input_fps", m.input_fps),
        ("metrics/fps_jitter", m.fps_jitter),
    ] {
        if let Some(value) = value {
            fps(field, value)?;
        }
    }
    if let Some(output) = &m.output_fps {
        fps("metrics/output_fps/mean", output.mean)?;
        fps("metrics/output_fps/p5", output.p5)?;
        fps("metrics/output_fps/p50", output.p50)?;
    }
    for (field, value) in [
        ("metrics/segments_sent", m.segments_sent),
        ("metrics/segments_received", m.segments_received),
        ("metrics/frames_sent", m.frames_sent),
        ("metrics/frames_received", m.frames_received),
        ("metrics/frames_unmatched", m.frames_unmatched),
        ("metrics/frames_duplicate", m.frames_duplicate),
        ("metrics/output_keyframes", m.output_keyframes),
    ] {
        count(field, value, MAX_FRAMES_PER_S)?;
    }
    for (field, value) in [
        ("metrics/output_video_bytes", m.output_video_bytes),
        ("metrics/bytes_sent", m.bytes_sent),
        ("metrics/bytes_received", m.bytes_received),
    ] {
        count(field, value, MAX_BYTES_PER_S)?;
    }
    for (i, swap) in m.swaps.iter().enumerate() {
        if let Some(freeze) = swap.freeze_ms {
            ms(&format!("metrics/swaps/{i}/freeze_ms"), freeze)?;
        }
    }
    if let Some(overlay) = &m.loading_overlay {
        count(
            "metrics/loading_overlay/frames",
            overlay.frames,
            MAX_FRAMES_PER_S,
        )?;
        ms("metrics/loading_overlay/first_ms", overlay.first_ms)?;
        ms("metrics/loading_overlay/last_ms", overlay.last_ms)?;
    }
    if let Some(latency) = report
        .metrics
        .content_check
        .as_ref()
        .and_then(|check| check.latency_p50_ms)
    {
        ms("metrics/content_check/latency_p50_ms", latency)?;
    }
    if let Some(slo) = &report.slo {
        for (field, value) in [
            ("slo/startup_ms", slo.startup_ms),
            ("slo/e2e_latency_ms", slo.e2e_latency_ms),
        ] {
            if let Some(value) = value {
                ms(field, value)?;
            }
        }
        if let Some(value) = slo.output_fps {
            fps("slo/output_fps", value)?;
        }
    }
    Ok(())
}

/// The serde name of a unit enum variant (`passed`, `low`).
fn variant_name(value: impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(error) => error.to_string(),
    }
}

/// The stored form of `report`, whose canonical bytes are `canonical`.
fn stored_result(report: SessionReport, canonical: Vec<u8>) -> StoredResult {
    let mut cells = BTreeMap::new();
    crate::sla::add_session(&mut cells, &report);
    StoredResult {
        sla_cells: Some(cells.into_iter().collect()),
        orchestrator_address: report.orchestrator.as_ref().and_then(|o| o.address.clone()),
        orchestrator_uri: report.orchestrator.map(|o| o.uri),
        gpu: report.gpu.map(|gpu| gpu.name),
        region: report.region,
        pipeline: report.pipeline,
        model_id: report.model_id,
        complexity: report
            .prompt
            .and_then(|prompt| prompt.complexity)
            .map(variant_name),
        outcome: variant_name(report.outcome),
        started_at_unix_ms: report.started_at_unix_ms,
        ended_at_unix_ms: report.ended_at_unix_ms,
        session_id: report.session_id,
        // Canonical bytes are serde_json output, which is always UTF-8.
        record_json: String::from_utf8(canonical)
            .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()),
    }
}

/// Converts a `serde_path_to_error` path into an RFC 6901 JSON pointer (`/3/metrics/startup_ms`).
///
/// Map keys are escaped (`~` as `~0`, `/` as `~1`); enum variant and unknown segments do not
/// name a location in the JSON text and are left out.
pub fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::signature::SignedJson;
    use super::*;

    /// The smallest valid record: every required field, no optional one.
    fn minimal(session_id: &str) -> Value {
        json!({
            "schema_version": SCHEMA_VERSION,
            "session_id": session_id,
            "started_at_unix_ms": 1_000,
            "ended_at_unix_ms": 31_000,
            "mode": "network",
            "pipeline": "live-video-to-video",
            "model_id": "noop",
            "outcome": "unscored_busy",
            "metrics": {
                "stalls": {"count": 0, "total_ms": 0.0, "longest_ms": 0.0},
                "segments_sent": 0, "segments_received": 0, "frames_sent": 0,
                "frames_received": 0, "frames_unmatched": 0, "bytes_sent": 0,
                "bytes_received": 0,
                "media_errors": {"cc_errors": 0, "sync_losses": 0, "pes_errors": 0,
                                 "truncated_frames": 0}
            },
            "runner": {"status_events": 0},
            "is_test_load": true,
            "a_future_field": {"readers": "tolerate it"}
        })
    }

    /// The kind of a refusal, as the HTTP layer names its problem.
    #[derive(Debug, PartialEq, Eq)]
    enum Kind {
        MalformedJson,
        InvalidRecord,
    }

    fn kind(error: &RecordError) -> Kind {
        match error {
            RecordError::MalformedJson { .. } => Kind::MalformedJson,
            RecordError::InvalidRecord { .. } => Kind::InvalidRecord,
        }
    }

    fn pointer_of(value: Value) -> (Kind, Option<String>) {
        let error = validate_records(&value).expect_err("invalid");
        (kind(&error), Some(error.pointer().to_owned()))
    }

    #[test]
    fn minimal_records_become_stored_results() {
        let results = validate_records(&json!([minimal("a"), minimal("b")])).expect("valid");
        assert_eq!(results.len(), 2);
        let first = &results[0];
        assert_eq!(first.session_id, "a");
        assert_eq!(first.outcome, "unscored_busy");
        assert_eq!(
            (first.orchestrator_uri.clone(), first.complexity.clone()),
            (None, None)
        );
        assert_eq!(first.ended_at_unix_ms, 31_000);
        // The stored JSON is canonical and keeps fields this collector does not know.
        assert_eq!(
            first.record_json.as_bytes(),
            sign::canonical_bytes(&minimal("a")).as_slice()
        );
        assert!(first.record_json.contains("a_future_field"));
    }

    #[test]
    fn gateway_records_are_stored_with_no_sla_cell() {
        let mut record = minimal("g");
        record["mode"] = json!("gateway");
        record["outcome"] = json!("passed");
        record["metrics"]["gateway"] = json!({
            "url": "http://gw.example:8937", "orchestrator_pin": "orch-1",
            "whip_answer_ms": 41.5, "whep_not_found": 2, "plis_received": 3,
            "ingest": {"packets": 900, "bytes": 1_000_000, "nacks": 0},
            "playback": {"packets": 880, "bytes": 990_000, "nacks": 1}
        });
        let results = validate_records(&json!([record])).expect("valid");
        let stored = &results[0];
        assert_eq!(stored.outcome, "passed");
        assert_eq!(stored.orchestrator_uri, None);
        assert_eq!(stored.sla_cells.as_ref().map(Vec::len), Some(0));
        assert!(
            stored
                .record_json
                .contains("\"orchestrator_pin\":\"orch-1\"")
        );
    }

    /// lvt's shippers send canonical JSON, which is read without a `Value`; any other spelling
    /// of the same records (whitespace, key order, escapes, number forms) takes the parsing
    /// path. Both must store the same records, digest and sign the same bytes, and explain a bad
    /// record with the same pointer.
    #[test]
    fn canonical_bodies_are_read_the_cheap_way_with_the_same_outcome() {
        let mut nested = minimal("b");
        nested["z_first"] = json!({"y": [3, {"b": 1, "a": "é\u{1}\"/"}], "x": 1.5e300});
        let body = json!([minimal("a"), nested, minimal("c")]);
        let canonical = sign::canonical_bytes(&body);
        let spellings = [
            serde_json::to_vec_pretty(&body).expect("pretty"),
            String::from_utf8(canonical.clone())
                .expect("utf-8")
                .replace("\"x\":1.5e+300", "\"x\":15e299")
                .into_bytes(),
            String::from_utf8(canonical.clone())
                .expect("utf-8")
                .replace('/', "\\/")
                .into_bytes(),
        ];
        let read = |bytes: &[u8]| SignedJson::read(bytes.to_vec()).expect("JSON");
        let fast = read(&canonical);
        let SignedJson::CanonicalArray { body: text, items } = &fast else {
            panic!("a canonical body is read without a Value");
        };
        let expected = validate_canonical_records(text, items).expect("valid");
        assert_eq!(fast.canonical_bytes(), canonical);
        for spelling in &spellings {
            assert_ne!(spelling, &canonical);
            let slow = read(spelling);
            let SignedJson::Value(value) = &slow else {
                panic!("{}", String::from_utf8_lossy(spelling));
            };
            assert_eq!(slow.canonical_bytes(), canonical);
            let results = validate_records(value).expect("valid");
            assert_eq!(format!("{results:?}"), format!("{expected:?}"));
        }

        let mut bad = body.clone();
        bad[1]["metrics"]["frames_sent"] = json!(-1);
        let bad_canonical = sign::canonical_bytes(&bad);
        let SignedJson::CanonicalArray { body: text, items } = read(&bad_canonical) else {
            panic!("still canonical");
        };
        let fast_error = validate_canonical_records(&text, &items).expect_err("invalid");
        let slow_error = validate_records(&bad).expect_err("invalid");
        assert_eq!(fast_error.pointer(), "/1/metrics/frames_sent");
        assert_eq!(fast_error, slow_error);
        let mut old = minimal("d");
        old["schema_version"] = json!(SCHEMA_VERSION + 1);
        let SignedJson::CanonicalArray { body: text, items } =
            read(&sign::canonical_bytes(&json!([minimal("a"), old])))
        else {
            panic!("still canonical");
        };
        let error = validate_canonical_records(&text, &items).expect_err("unsupported");
        assert_eq!(error.pointer(), "/1/schema_version");
        // Not JSON at all is still refused as such.
        assert_eq!(
            SignedJson::read(b"[{".to_vec()).err().map(|e| kind(&e)),
            Some(Kind::MalformedJson)
        );
    }

    #[test]
    fn batch_digest_from_stored_records_equals_the_canonical_body_digest() {
        let mut nested = minimal("b");
        nested["z_first"] = json!({"y": [3, {"b": 1, "a": "é\u{1}\""}], "x": 1.5e300});
        let body = json!([minimal("a"), nested, minimal("c")]);
        let results = validate_records(&body).expect("valid");
        assert_eq!(
            canonical_sha256_of(&results),
            hex::encode(Sha256::digest(sign::canonical_bytes(&body)))
        );
    }

    #[test]
    fn errors_point_at_the_offending_value() {
        let mut wrong_type = minimal("a");
        wrong_type["metrics"]["frames_sent"] = json!(-1);
        assert_eq!(
            pointer_of(json!([minimal("x"), wrong_type])),
            (Kind::InvalidRecord, Some("/1/metrics/frames_sent".into()))
        );
        let mut bad_enum = minimal("a");
        bad_enum["outcome"] = json!("great");
        assert_eq!(pointer_of(json!([bad_enum])).1, Some("/0/outcome".into()));
        let mut future = minimal("a");
        future["schema_version"] = json!(SCHEMA_VERSION + 1);
        assert_eq!(
            pointer_of(json!([future])).1,
            Some("/0/schema_version".into())
        );
        assert_eq!(
            pointer_of(json!([minimal(" ")])).1,
            Some("/0/session_id".into())
        );
        assert_eq!(pointer_of(json!({"a": 1})).1, Some(String::new()));
        assert_eq!(pointer_of(json!([1])).1, Some("/0".into()));
    }

    #[test]
    fn implausible_values_are_refused_at_their_pointer() {
        let with = |path: &[&str], value: Value| {
            let mut record = minimal("a");
            let mut slot = &mut record;
            for key in path {
                slot = &mut slot[*key];
            }
            *slot = value;
            pointer_of(json!([minimal("x"), record]))
        };
        // A startup of 31 years would saturate the SLA sums for good.
        assert_eq!(
            with(&["metrics", "startup_ms"], json!(1e15)),
            (Kind::InvalidRecord, Some("/1/metrics/startup_ms".into()))
        );
        assert_eq!(
            with(&["metrics", "startup_ms"], json!(-5.0)).1,
            Some("/1/metrics/startup_ms".into())
        );
        // A declared limit is bounded like the value it limits.
        assert_eq!(
            with(&["slo"], json!({"output_fps": 1e9})).1,
            Some("/1/slo/output_fps".into())
        );
        assert_eq!(
            with(&["slo"], json!({"startup_ms": -1.0})).1,
            Some("/1/slo/startup_ms".into())
        );
        assert_eq!(
            with(
                &["metrics", "output_fps"],
                json!({"mean": 5000.0, "p5": 1.0, "p50": 1.0, "windows": 1})
            )
            .1,
            Some("/1/metrics/output_fps/mean".into())
        );
        assert_eq!(
            with(&["metrics", "frames_received"], json!(u64::MAX)).1,
            Some("/1/metrics/frames_received".into())
        );
        assert_eq!(
            with(
                &["metrics", "stalls"],
                json!({"count": 1, "total_ms": 1e12, "longest_ms": 1.0})
            )
            .1,
            Some("/1/metrics/stalls/total_ms".into())
        );
        assert_eq!(
            with(
                &["metrics", "loading_overlay"],
                json!({"frames": u64::MAX, "first_ms": 0.0, "last_ms": 1.0})
            )
            .1,
            Some("/1/metrics/loading_overlay/frames".into())
        );
        assert_eq!(
            with(
                &["metrics", "loading_overlay"],
                json!({"frames": 3, "first_ms": 0.0, "last_ms": 1e13})
            )
            .1,
            Some("/1/metrics/loading_overlay/last_ms".into())
        );
        assert_eq!(
            with(&["ended_at_unix_ms"], json!(1)).1,
            Some("/1/ended_at_unix_ms".into()),
            "a session cannot end before it starts"
        );
        assert_eq!(
            with(&["started_at_unix_ms"], json!(-1)).1,
            Some("/1/started_at_unix_ms".into())
        );
        // At the bounds: an hour of startup and a thousand frames a second are still accepted.
        let mut edge = minimal("edge");
        edge["metrics"]["startup_ms"] = json!(MAX_METRIC_MS);
        let seconds = (edge["ended_at_unix_ms"].as_i64().unwrap_or(0)
            - edge["started_at_unix_ms"].as_i64().unwrap_or(0))
            / 1000
            + 1;
        edge["metrics"]["frames_received"] =
            json!(MAX_FRAMES_PER_S * u64::try_from(seconds).unwrap_or(1));
        assert!(validate_records(&json!([edge])).is_ok());
    }

    #[test]
    fn pointer_segments_are_escaped() {
        let text = r#"{"a/b~c": "not a number"}"#;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let error = serde_path_to_error::deserialize::<_, std::collections::HashMap<String, u32>>(
            &mut deserializer,
        )
        .expect_err("invalid");
        assert_eq!(json_pointer(error.path()), "/a~1b~0c");
    }
}
