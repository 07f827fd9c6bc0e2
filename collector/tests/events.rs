//! `POST /v1/events` and `GET /v1/events` end to end over loopback: every status of the signed
//! ingest contract, retry idempotency, unknown and malformed families kept aside and counted,
//! and keyset pagination.

mod common;

use common::{
    TestCollector, agent_key, assert_problem, now_ms, post, raw_exchange, signed, stranger_key,
};
use serde_json::{Value, json};

fn envelope(id: &str, family: &str, data: Value) -> Value {
    json!({
        "id": id,
        "type": family,
        // Recent, so that the retention sweep (90 days by envelope timestamp) keeps the events.
        "timestamp": now_ms().to_string(),
        "gateway": "0x00000000000000000000000000000000000000aa",
        "data": data,
    })
}

/// A batch of `count` usable `stream_trace` envelopes with ids `{prefix}-{i}`.
fn traces(prefix: &str, count: usize) -> Value {
    Value::Array(
        (0..count)
            .map(|i| {
                envelope(
                    &format!("{prefix}-{i}"),
                    "stream_trace",
                    json!({"type": "gateway_receive_stream_request", "stream_id": "s"}),
                )
            })
            .collect(),
    )
}

async fn get_json(collector: &TestCollector, path: &str) -> (u16, Value) {
    let response = collector
        .client
        .get(collector.url(path))
        .send()
        .await
        .expect("get");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

async fn metrics(collector: &TestCollector) -> String {
    collector
        .client
        .get(collector.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// Walks `GET /v1/events{query}` with `limit`, returning every item in order.
async fn all_events(collector: &TestCollector, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/events?limit={limit}{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = get_json(collector, &path).await;
        assert_eq!(status, 200, "{page}");
        let rows = page["events"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= limit);
        items.extend(rows);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test]
async fn every_status_of_the_events_contract() {
    let collector = TestCollector::start().await;
    let url = collector.url("/v1/events");
    let client = &collector.client;
    let key = agent_key();
    let events = traces("matrix", 4);

    // 413: a declared length over the limit.
    let head = raw_exchange(
        collector.address,
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            common::TEST_MAX_BODY_BYTES + 1
        )
        .into_bytes(),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        head.contains("https://lvt.invalid/problems/body-too-large"),
        "{head}"
    );

    // 401: unsigned.
    let plain = serde_json::to_vec(&events).expect("json");
    let (status, body, content_type) = post(client, &url, plain, &[]).await.expect("post");
    assert_eq!(status, 401);
    assert_problem(status, &body, content_type.as_deref(), "missing-signature");

    // 403: a key no agent has.
    let (bytes, headers) = signed(&stranger_key(), &events, now_ms(), 1);
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 403);
    assert_problem(status, &body, content_type.as_deref(), "unknown-key");

    // 409: signed ten minutes ago.
    let (bytes, headers) = signed(&key, &events, now_ms() - 600_000, 2);
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 409);
    assert_problem(status, &body, content_type.as_deref(), "stale-timestamp");

    // 400: not JSON at all.
    let (_, headers) = signed(&key, &events, now_ms(), 3);
    let (status, body, content_type) = post(client, &url, b"[{".to_vec(), &headers)
        .await
        .expect("post");
    assert_eq!(status, 400);
    assert_problem(status, &body, content_type.as_deref(), "malformed-json");

    // 401: the signature does not cover this body.
    let (_, headers) = signed(&key, &events, now_ms(), 4);
    let mut tampered = events.clone();
    tampered[1]["gateway"] = json!("0xforged");
    let bytes = serde_json::to_vec(&tampered).expect("json");
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 401);
    assert_problem(status, &body, content_type.as_deref(), "bad-signature");

    // 400 with a pointer: the third element has a number for its type.
    let mut invalid = events.clone();
    invalid[2]["type"] = json!(12);
    let (bytes, headers) = signed(&key, &invalid, now_ms(), 5);
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 400);
    assert_problem(status, &body, content_type.as_deref(), "invalid-record");
    assert_eq!(body["pointer"], json!("/2/type"), "{body}");

    // 400 with the empty pointer: an object, not an array.
    let object = json!({"events": events.clone()});
    let (bytes, headers) = signed(&key, &object, now_ms(), 6);
    let (status, body, _) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(
        (status, body["pointer"].clone()),
        (400, json!("")),
        "{body}"
    );

    // 200: stored, only after the commit.
    let (bytes, headers) = signed(&key, &events, now_ms(), 7);
    let (status, body, _) = post(client, &url, bytes.clone(), &headers)
        .await
        .expect("post");
    assert_eq!(
        (status, body),
        (200, json!({"stored": 4, "duplicates": 0, "kept_aside": 0}))
    );

    // 409: the same request again reuses its nonce.
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 409);
    assert_problem(status, &body, content_type.as_deref(), "replayed-nonce");

    // A retry with a fresh nonce, plus one new event, stores only the new one.
    let mut retried = events.clone();
    retried
        .as_array_mut()
        .expect("array")
        .push(traces("later", 1)[0].clone());
    let (bytes, headers) = signed(&key, &retried, now_ms(), 8);
    let (status, body, _) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(
        (status, body),
        (200, json!({"stored": 1, "duplicates": 4, "kept_aside": 0}))
    );

    let stored = all_events(&collector, "", 100).await;
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[0]["event"], events[0], "stored as signed");
    assert_eq!(stored[0]["kept_aside_reason"], Value::Null);

    // Results and events have separate request counters.
    let text = metrics(&collector).await;
    for line in [
        "lvt_collector_events_requests_total{status=\"200\"} 2",
        "lvt_collector_events_requests_total{status=\"400\"} 3",
        "lvt_collector_events_requests_total{status=\"401\"} 2",
        "lvt_collector_events_requests_total{status=\"403\"} 1",
        "lvt_collector_events_requests_total{status=\"409\"} 2",
        "lvt_collector_events_requests_total{status=\"413\"} 1",
        "lvt_collector_events_stored_total{family=\"stream_trace\"} 5",
        "lvt_collector_events_duplicate_total 4",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        !text.contains("lvt_collector_ingest_requests_total{"),
        "{text}"
    );
    collector.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_families_are_kept_aside_and_counted() {
    let collector = TestCollector::start().await;
    let url = collector.url("/v1/events");
    let key = agent_key();
    let batch = json!([
        envelope(
            "status-ok",
            "ai_stream_status",
            json!({"stream_id": "s", "inference_status": {"fps": 19.5}})
        ),
        envelope("future-1", "gateway_quantum_flux", json!({"level": 9})),
        envelope("future-2", "gateway_quantum_flux", json!([1, 2])),
        envelope(
            "bad-shape",
            "ai_stream_status",
            json!("a string, not an object")
        ),
        envelope(
            "discovered",
            "discovery_results",
            json!([{"address": "0x1", "url": "https://o:8935", "latency_ms": "31"}])
        ),
    ]);
    let (bytes, headers) = signed(&key, &batch, now_ms(), 1);
    let (status, body, _) = post(&collector.client, &url, bytes, &headers)
        .await
        .expect("post");
    assert_eq!(
        (status, body),
        (200, json!({"stored": 2, "duplicates": 0, "kept_aside": 3}))
    );

    let usable = all_events(&collector, "", 10).await;
    let ids: Vec<&str> = usable
        .iter()
        .filter_map(|row| row["event"]["id"].as_str())
        .collect();
    assert_eq!(ids, ["status-ok", "discovered"]);

    let aside = all_events(&collector, "&kept_aside=true", 10).await;
    let kept: Vec<(&str, &str)> = aside
        .iter()
        .map(|row| {
            (
                row["event"]["id"].as_str().unwrap_or_default(),
                row["kept_aside_reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(kept.len(), 3, "{aside:?}");
    assert_eq!(
        kept[0],
        ("future-1", "unknown event family `gateway_quantum_flux`")
    );
    assert_eq!(kept[1].0, "future-2");
    assert_eq!(kept[2].0, "bad-shape");
    assert!(kept[2].1.contains("ai_stream_status"), "{}", kept[2].1);
    // The kept-aside envelope is the one that was sent, payload and all.
    assert_eq!(aside[0]["event"], batch[1]);

    let only_unknown = all_events(
        &collector,
        "&kept_aside=true&family=gateway_quantum_flux",
        10,
    )
    .await;
    assert_eq!(only_unknown.len(), 2);

    let text = metrics(&collector).await;
    for line in [
        "lvt_collector_events_stored_total{family=\"ai_stream_status\"} 1",
        "lvt_collector_events_stored_total{family=\"discovery_results\"} 1",
        "lvt_collector_events_kept_aside_total{family=\"unknown\"} 2",
        "lvt_collector_events_kept_aside_total{family=\"ai_stream_status\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("gateway_quantum_flux"), "{text}");

    // Resending the kept-aside events keeps nothing twice.
    let (bytes, headers) = signed(&key, &batch, now_ms(), 2);
    let (status, body, _) = post(&collector.client, &url, bytes, &headers)
        .await
        .expect("post");
    assert_eq!(
        (status, body),
        (200, json!({"stored": 0, "duplicates": 5, "kept_aside": 0}))
    );
    collector.stop().await;
}

#[tokio::test]
async fn events_page_by_family_with_a_keyset_cursor() {
    let collector = TestCollector::start().await;
    let url = collector.url("/v1/events");
    let key = agent_key();
    let mut batch = traces("trace", 7);
    for i in 0..3 {
        batch.as_array_mut().expect("array").push(envelope(
            &format!("event-{i}"),
            "ai_stream_events",
            json!({"type": "error", "message": "boom"}),
        ));
    }
    let (bytes, headers) = signed(&key, &batch, now_ms(), 1);
    let (status, body, _) = post(&collector.client, &url, bytes, &headers)
        .await
        .expect("post");
    assert_eq!((status, body["stored"].clone()), (200, json!(10)));

    // Every page size walks all events once, in arrival order.
    for limit in [1, 3, 10, 11] {
        let items = all_events(&collector, "", limit).await;
        let ids: Vec<&str> = items
            .iter()
            .filter_map(|row| row["event"]["id"].as_str())
            .collect();
        let sent: Vec<&str> = batch
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|e| e["id"].as_str())
            .collect();
        assert_eq!(ids, sent, "limit {limit}");
    }
    let traces_only = all_events(&collector, "&family=stream_trace", 2).await;
    assert_eq!(traces_only.len(), 7);
    assert!(
        traces_only
            .iter()
            .all(|row| row["event"]["type"] == json!("stream_trace"))
    );
    let (_, page) = get_json(&collector, "/v1/events?family=ai_stream_events&limit=3").await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(3));
    assert_eq!(page["next_cursor"], Value::Null);

    for bad in [
        "/v1/events?limit=0",
        "/v1/events?limit=1001",
        "/v1/events?limit=many",
        "/v1/events?cursor=bm90LWEtY3Vyc29y",
        "/v1/events?kept_aside=maybe",
    ] {
        let (status, body) = get_json(&collector, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(
            body["type"],
            json!("https://lvt.invalid/problems/invalid-query"),
            "{bad}"
        );
    }
    collector.stop().await;
}

#[tokio::test]
async fn a_signed_request_cannot_be_replayed_across_endpoints() {
    // The signature covers the body, not the path, so the nonce store is what stops a captured
    // result batch from being replayed as an event batch (and the reverse): both endpoints share it.
    let collector = TestCollector::start().await;
    let key = agent_key();
    let records = common::batch("cross", 1, now_ms() - 60_000);
    let (bytes, headers) = signed(&key, &records, now_ms(), 1);
    let (status, _, _) = post(
        &collector.client,
        &collector.url("/v1/results"),
        bytes.clone(),
        &headers,
    )
    .await
    .expect("post");
    assert_eq!(status, 200);
    let (status, body, content_type) = post(
        &collector.client,
        &collector.url("/v1/events"),
        bytes,
        &headers,
    )
    .await
    .expect("post");
    assert_eq!(status, 409);
    assert_problem(status, &body, content_type.as_deref(), "replayed-nonce");

    let events = traces("first", 1);
    let (bytes, headers) = signed(&key, &events, now_ms(), 2);
    let (status, _, _) = post(
        &collector.client,
        &collector.url("/v1/events"),
        bytes.clone(),
        &headers,
    )
    .await
    .expect("post");
    assert_eq!(status, 200);
    let (status, body, content_type) = post(
        &collector.client,
        &collector.url("/v1/results"),
        bytes,
        &headers,
    )
    .await
    .expect("post");
    assert_eq!(status, 409);
    assert_problem(status, &body, content_type.as_deref(), "replayed-nonce");
    collector.stop().await;
}
