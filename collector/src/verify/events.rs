//! The go-livepeer event envelopes of a signed body: which are usable, which are kept aside and
//! why, and their stored form.

use lvt_schema::events::{EventEnvelope, EventFamily};
use lvt_schema::sign;
use serde_json::Value;

use super::records::{RecordError, json_pointer};
use crate::stored::StoredEvent;

/// Checks that `value` is a JSON array of event envelopes and turns each into its stored form,
/// deciding which are kept aside.
///
/// Only what makes an element unusable as an envelope is an error (a pointer such as `/2/id`):
/// not an object, a missing or non-string `id` or `type`, an empty `id`. Families and payloads
/// never are.
pub fn validate_events(value: &Value) -> Result<Vec<StoredEvent>, RecordError> {
    let Value::Array(items) = value else {
        return Err(RecordError::invalid(
            String::new(),
            "the body must be a JSON array of go-livepeer event envelopes",
        ));
    };
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let envelope: EventEnvelope = serde_path_to_error::deserialize(item).map_err(|error| {
            RecordError::invalid(
                format!("/{index}{}", json_pointer(error.path())),
                format!("not an event envelope: {}", error.inner()),
            )
        })?;
        if envelope.id.trim().is_empty() {
            return Err(RecordError::invalid(
                format!("/{index}/id"),
                "the event id must not be empty",
            ));
        }
        events.push(stored_event(envelope, item));
    }
    Ok(events)
}

fn stored_event(envelope: EventEnvelope, item: &Value) -> StoredEvent {
    let aside_reason = match envelope.family() {
        EventFamily::Unknown(name) => Some(format!("unknown event family `{name}`")),
        // Only a payload of the wrong shape for its family fails here (`EventError::View`).
        _ => envelope.view().err().map(|error| error.to_string()),
    };
    let canonical = sign::canonical_bytes(item);
    StoredEvent {
        timestamp_ms: envelope.timestamp_unix_ms(),
        id: envelope.id,
        family: envelope.family,
        gateway: envelope.gateway,
        // Canonical bytes are serde_json output, which is always UTF-8.
        envelope_json: String::from_utf8_lossy(&canonical).into_owned(),
        aside_reason,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(id: &str, family: &str, data: Value) -> Value {
        json!({
            "id": id,
            "type": family,
            "timestamp": "1732700000000",
            "gateway": "0xgateway",
            "data": data,
        })
    }

    #[test]
    fn families_decide_what_is_kept_aside() {
        let body = json!([
            envelope(
                "a",
                "stream_trace",
                json!({"type": "gateway_receive_stream_request"})
            ),
            envelope("b", "brand_new_family", json!({"anything": 1})),
            envelope("c", "ai_stream_status", json!("not an object")),
            envelope("d", "create_new_payment", json!({"sender": "0x1"})),
        ]);
        let events = validate_events(&body).expect("valid");
        let reasons: Vec<(&str, Option<&str>)> = events
            .iter()
            .map(|e| (e.id.as_str(), e.aside_reason.as_deref()))
            .collect();
        assert_eq!(reasons[0], ("a", None));
        assert_eq!(
            reasons[1],
            ("b", Some("unknown event family `brand_new_family`"))
        );
        assert_eq!(reasons[2].0, "c");
        assert!(
            reasons[2]
                .1
                .is_some_and(|reason| reason.contains("ai_stream_status")),
            "{reasons:?}"
        );
        // A known family without a typed view is usable as it is.
        assert_eq!(reasons[3], ("d", None));
        assert_eq!(events[0].timestamp_ms, Some(1_732_700_000_000));
        assert_eq!(events[0].family, "stream_trace");
        assert_eq!(
            events[0].envelope_json.as_bytes(),
            sign::canonical_bytes(&body[0]).as_slice()
        );
    }

    #[test]
    fn unusable_envelopes_are_refused_with_a_pointer() {
        let pointer = |body: Value| {
            validate_events(&body)
                .expect_err("invalid")
                .pointer()
                .to_owned()
        };
        assert_eq!(pointer(json!({"id": "x"})), "");
        assert_eq!(pointer(json!([envelope("a", "x", json!({})), 7])), "/1");
        let mut no_id = envelope("a", "stream_trace", json!({}));
        no_id.as_object_mut().expect("object").remove("id");
        assert_eq!(pointer(json!([no_id])), "/0");
        let mut number_type = envelope("a", "stream_trace", json!({}));
        number_type["type"] = json!(5);
        assert_eq!(pointer(json!([number_type])), "/0/type");
        assert_eq!(
            pointer(json!([envelope(" ", "stream_trace", json!({}))])),
            "/0/id"
        );
    }
}
