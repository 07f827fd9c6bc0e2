//! `POST /v1/results` end to end over loopback: every status of the ingest contract in order,
//! retry idempotency, valid ingest surviving a flood of bad requests, and forgeries that
//! cannot grow the nonce store.

mod common;

use common::{
    PROBLEM, TestCollector, agent_key, assert_problem, batch, now_ms, post, raw_exchange, signed,
    stranger_key,
};
use serde_json::{Value, json};

#[tokio::test]
async fn every_status_of_the_ingest_contract() {
    let collector = TestCollector::start().await;
    let url = collector.url("/v1/results");
    let client = &collector.client;
    let key = agent_key();
    let records = batch("matrix", 5, now_ms() - 60_000);

    // 413: a declared length over the limit, refused before anything else is looked at (and
    // before the body is sent, so the answer is read over a raw connection).
    let head = raw_exchange(
        collector.address,
        format!(
            "POST /v1/results HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            common::TEST_MAX_BODY_BYTES + 1
        )
        .into_bytes(),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.to_ascii_lowercase().contains(PROBLEM), "{head}");
    assert!(
        head.contains("https://lvt.invalid/problems/body-too-large"),
        "{head}"
    );

    // 401: no signature headers at all.
    let plain = serde_json::to_vec(&records).expect("json");
    let (status, body, content_type) = post(client, &url, plain, &[]).await.expect("post");
    assert_eq!(status, 401);
    assert_problem(status, &body, content_type.as_deref(), "missing-signature");

    // 403: a well-formed signature by a key no agent has.
    let (bytes, headers) = signed(&stranger_key(), &records, now_ms(), 1);
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 403);
    assert_problem(status, &body, content_type.as_deref(), "unknown-key");

    // 409: signed ten minutes ago, outside the five-minute window.
    let (bytes, headers) = signed(&key, &records, now_ms() - 600_000, 2);
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 409);
    assert_problem(status, &body, content_type.as_deref(), "stale-timestamp");

    // 401: the signature does not cover this body (one record was changed after signing).
    let (_, headers) = signed(&key, &records, now_ms(), 3);
    let mut tampered = records.clone();
    tampered[0]["model_id"] = json!("other-model");
    let bytes = serde_json::to_vec(&tampered).expect("json");
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 401);
    assert_problem(status, &body, content_type.as_deref(), "bad-signature");

    // 400 with a pointer: a signed batch whose fourth record has a string for a number.
    let mut invalid = records.clone();
    invalid[3]["metrics"]["startup_ms"] = json!("fast");
    let (bytes, headers) = signed(&key, &invalid, now_ms(), 4);
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 400);
    assert_problem(status, &body, content_type.as_deref(), "invalid-record");
    assert_eq!(body["pointer"], json!("/3/metrics/startup_ms"), "{body}");

    // 400 at the record's end time: a session that ends an hour from now, far beyond the
    // five minutes of clock skew allowed.
    let mut ahead = records.clone();
    ahead[2]["ended_at_unix_ms"] = json!(now_ms() + 3_600_000);
    let (bytes, headers) = signed(&key, &ahead, now_ms(), 60);
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 400);
    assert_problem(status, &body, content_type.as_deref(), "invalid-record");
    assert_eq!(body["pointer"], json!("/2/ended_at_unix_ms"), "{body}");

    // 400: valid JSON, but not an array.
    let object = json!({"not": "an array"});
    let (bytes, headers) = signed(&key, &object, now_ms(), 5);
    let (status, body, _) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(
        (status, body["pointer"].clone()),
        (400, json!("")),
        "{body}"
    );

    // 200: the batch is stored.
    let (bytes, headers) = signed(&key, &records, now_ms(), 6);
    let (status, body, _) = post(client, &url, bytes.clone(), &headers)
        .await
        .expect("post");
    assert_eq!(
        (status, body.clone()),
        (200, json!({"inserted": 5, "duplicates": 0}))
    );

    // 409: the same request again reuses its nonce.
    let (status, body, content_type) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(status, 409);
    assert_problem(status, &body, content_type.as_deref(), "replayed-nonce");

    // A retry of the same records with a fresh nonce (and a different key order on the wire)
    // stores nothing twice.
    let (_, headers) = signed(&key, &records, now_ms(), 7);
    let reordered: Vec<Value> = records
        .as_array()
        .expect("array")
        .iter()
        .map(|record| {
            let mut pairs: Vec<_> = record
                .as_object()
                .expect("object")
                .clone()
                .into_iter()
                .collect();
            pairs.reverse();
            Value::Object(pairs.into_iter().collect())
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&reordered).expect("json");
    let (status, body, _) = post(client, &url, bytes, &headers).await.expect("post");
    assert_eq!(
        (status, body),
        (200, json!({"inserted": 0, "duplicates": 5}))
    );

    let items = common::all_results(client, &collector.url(""), 100).await;
    assert_eq!(items.len(), 5);
    // The stored record is the canonical form of what was signed.
    let first = &items[0]["record"];
    assert_eq!(first, &records[0]);
    assert_eq!(items[0]["agent_id"], json!("agent-1"));

    let metrics = collector
        .client
        .get(collector.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for line in [
        "lvt_collector_ingest_requests_total{status=\"200\"} 2",
        "lvt_collector_ingest_requests_total{status=\"400\"} 3",
        "lvt_collector_ingest_requests_total{status=\"401\"} 2",
        "lvt_collector_ingest_requests_total{status=\"403\"} 1",
        "lvt_collector_ingest_requests_total{status=\"409\"} 2",
        "lvt_collector_ingest_requests_total{status=\"413\"} 1",
        "lvt_collector_records_inserted_total 5",
        "lvt_collector_records_duplicate_total 5",
        "lvt_collector_results_stored 5",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    assert!(
        metrics.contains("lvt_collector_store_latency_seconds_count{operation=\"insert_batch\"} 2")
    );
    collector.stop().await;
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_cut_off() {
    let collector = TestCollector::start().await;
    let mut request = b"POST /v1/results HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b' '; 4096];
    let mut sent = 0;
    while sent <= common::TEST_MAX_BODY_BYTES {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
        sent += chunk.len();
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let head = raw_exchange(collector.address, request).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_requests_does_not_stop_valid_ingest() {
    let collector = TestCollector::start().await;
    let url = collector.url("/v1/results");
    let key = agent_key();
    let ended = now_ms() - 60_000;

    let mut flood = Vec::new();
    for worker in 0..4u64 {
        let client = collector.client.clone();
        let url = url.clone();
        let key = key.clone();
        flood.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for i in 0..25u64 {
                let answer = match i % 5 {
                    0 => {
                        let body = vec![b'['; common::TEST_MAX_BODY_BYTES + 10];
                        // The server answers 413 as soon as it sees the length and closes the
                        // connection, so the client may fail to write the rest: both are a
                        // refusal.
                        match post(&client, &url, body, &[]).await {
                            Ok(answer) => answer,
                            Err(error) => {
                                assert!(error.is_request(), "{error}");
                                answered.push(413);
                                continue;
                            }
                        }
                    }
                    1 => post(&client, &url, b"{not json".to_vec(), &[])
                        .await
                        .expect("answered"),
                    2 => {
                        let records = json!([{"session_id": 5}]);
                        let (bytes, headers) =
                            signed(&key, &records, now_ms(), 1_000_000 + worker * 100 + i);
                        post(&client, &url, bytes, &headers)
                            .await
                            .expect("answered")
                    }
                    3 => {
                        let records = batch("stranger", 2, ended);
                        let (bytes, headers) = signed(&stranger_key(), &records, now_ms(), i);
                        post(&client, &url, bytes, &headers)
                            .await
                            .expect("answered")
                    }
                    _ => {
                        let records = batch("garbage", 2, ended);
                        let (bytes, mut headers) =
                            signed(&key, &records, now_ms(), 2_000_000 + worker * 100 + i);
                        headers[3].1 = "AAAA".to_owned();
                        post(&client, &url, bytes, &headers)
                            .await
                            .expect("answered")
                    }
                };
                let (status, _, _) = answer;
                answered.push(status);
            }
            answered
        }));
    }

    let mut valid = Vec::new();
    for i in 0..20u64 {
        let records = batch(&format!("valid-{i}"), 10, ended);
        let (bytes, headers) = signed(&key, &records, now_ms(), 10 + i);
        let (status, body, _) = post(&collector.client, &url, bytes, &headers)
            .await
            .expect("valid post");
        valid.push((status, body));
    }
    for (status, body) in &valid {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["inserted"], json!(10), "{body}");
    }
    for task in flood {
        let statuses = task.await.expect("flood task");
        assert!(
            statuses.iter().all(|s| (400..500).contains(s)),
            "{statuses:?}"
        );
    }
    let items = common::all_results(&collector.client, &collector.url(""), 1000).await;
    assert_eq!(items.len(), 200);
    collector.stop().await;
}

/// Key ids are public (`/v1/agents`), so anyone can send a batch naming a real agent's key with
/// fresh timestamps and new nonces. Such forgeries are refused on their signature before any
/// nonce is remembered: the nonce store does not grow with them, a forger cannot burn the nonce
/// a real agent uses next, and valid ingest goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_batches_never_grow_the_nonce_store_nor_burn_a_nonce() {
    use lvt_collector::app::open_store;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("lvt.db");
    let collector = TestCollector::start_at(&db, common::settings()).await;
    let url = collector.url("/v1/results");
    let agent_key_id = lvt_schema::sign::key_id(&agent_key().verifying_key());
    let ended = now_ms() - 60_000;
    for counter in 0..300u64 {
        let records = batch(&format!("forged{counter}"), 1, ended);
        let (bytes, mut headers) = signed(&stranger_key(), &records, now_ms(), counter);
        for (name, value) in &mut headers {
            if name.eq_ignore_ascii_case("lvt-key-id") {
                value.clone_from(&agent_key_id);
            }
        }
        let (status, body, _) = post(&collector.client, &url, bytes, &headers)
            .await
            .expect("answered");
        assert_eq!(status, 401, "{body}");
        assert!(
            body["type"]
                .as_str()
                .unwrap_or("")
                .ends_with("bad-signature"),
            "{body}"
        );
    }
    // The agent's own batches, one with a nonce a forgery used: both stored.
    for (prefix, counter) in [("real-a", 7u64), ("real-b", 1_000)] {
        let records = batch(prefix, 2, ended);
        let (bytes, headers) = signed(&agent_key(), &records, now_ms(), counter);
        let (status, body, _) = post(&collector.client, &url, bytes, &headers)
            .await
            .expect("answered");
        assert_eq!(status, 200, "{prefix}: {body}");
    }
    collector.stop().await;
    let spec: lvt_collector::config::StoreSpec =
        format!("sqlite:{}", db.display()).parse().expect("spec");
    let store = open_store(&spec).await.expect("open store");
    let remembered = store.prune_nonces(i64::MAX).await.expect("count nonces");
    assert_eq!(remembered, 2, "only the two valid batches' nonces are kept");
}
