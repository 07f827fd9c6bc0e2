//! The read API over loopback: keyset pagination under concurrent inserts, re-verifying a stored
//! batch from what the API serves, agents, health, CORS and problem answers.

mod common;

use std::collections::HashSet;

use base64::Engine as _;
use common::{TestCollector, agent_key, batch, now_ms, post, signed};
use lvt_schema::sign::{self, BatchSignature};
use serde_json::{Value, json};

async fn ingest(collector: &TestCollector, records: &Value, counter: u64) {
    let (bytes, headers) = signed(&agent_key(), records, now_ms(), counter);
    let (status, body, _) = post(
        &collector.client,
        &collector.url("/v1/results"),
        bytes,
        &headers,
    )
    .await
    .expect("post");
    assert_eq!(status, 200, "{body}");
}

async fn get(collector: &TestCollector, path: &str) -> reqwest::Response {
    collector
        .client
        .get(collector.url(path))
        .send()
        .await
        .expect("get")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_record_once_during_inserts() {
    let collector = TestCollector::start().await;
    let base = now_ms() - 3_600_000;
    // 30 batches of 10 with interleaved end times, so pages cut across batches and ties.
    let mut existing = HashSet::new();
    for b in 0..30u64 {
        let records = batch(&format!("old-{b:02}"), 10, base + (b as i64 % 7) * 1000);
        for record in records.as_array().expect("array") {
            existing.insert(record["session_id"].as_str().expect("id").to_owned());
        }
        ingest(&collector, &records, b).await;
    }

    let writer = {
        let client = collector.client.clone();
        let url = collector.url("/v1/results");
        tokio::spawn(async move {
            for b in 0..20u64 {
                // New records land both before and after the reader's position.
                let records = batch(
                    &format!("new-{b:02}"),
                    5,
                    base + (b as i64 % 9) * 1000 - 500,
                );
                let (bytes, headers) = signed(&agent_key(), &records, now_ms(), 1000 + b);
                let (status, body, _) = post(&client, &url, bytes, &headers).await.expect("post");
                assert_eq!(status, 200, "{body}");
            }
        })
    };
    let items = common::all_results(&collector.client, &collector.url(""), 7).await;
    writer.await.expect("writer");

    let ids: Vec<&str> = items
        .iter()
        .map(|item| item["record"]["session_id"].as_str().expect("id"))
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a record was served twice");
    for id in &existing {
        assert!(unique.contains(id.as_str()), "{id} was skipped");
    }
    let keys: Vec<(i64, &str)> = items
        .iter()
        .map(|item| {
            (
                item["record"]["ended_at_unix_ms"].as_i64().expect("end"),
                item["record"]["session_id"].as_str().expect("id"),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "pages are in key order"
    );

    // Filters: by orchestrator (address or URI) and by end time.
    let page: Value = get(
        &collector,
        &format!(
            "/v1/results?limit=1000&orchestrator=0xabc&since={}&until={}",
            base + 1000,
            base + 2000
        ),
    )
    .await
    .json()
    .await
    .expect("json");
    let filtered = page["results"].as_array().expect("results");
    assert!(!filtered.is_empty());
    assert!(filtered.iter().all(|item| {
        let end = item["record"]["ended_at_unix_ms"].as_i64().unwrap_or(0);
        (base + 1000..base + 2000).contains(&end)
    }));
    let none: Value = get(&collector, "/v1/results?orchestrator=https://nobody:1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none, json!({"results": [], "next_cursor": null}));
    collector.stop().await;
}

#[tokio::test]
async fn a_stored_batch_can_be_verified_again() {
    let collector = TestCollector::start().await;
    let records = batch("verify", 3, now_ms() - 10_000);
    ingest(&collector, &records, 1).await;

    let items = common::all_results(&collector.client, &collector.url(""), 100).await;
    let batch_id = items[0]["batch_id"].as_i64().expect("batch id");
    let stored: Value = get(&collector, &format!("/v1/batches/{batch_id}"))
        .await
        .json()
        .await
        .expect("json");
    let agents: Value = get(&collector, "/v1/agents")
        .await
        .json()
        .await
        .expect("json");
    let agent = &agents["agents"][0];
    assert_eq!(agent["id"], json!("agent-1"));
    assert_eq!(agent["region"], json!("eu-west"));
    assert_eq!(agent["result_count"], json!(3));
    assert!(agent["last_seen_unix_ms"].is_i64());

    // Rebuild the signed array from the stored records in batch order and check the signature
    // with the public key the API lists, exactly as a third party would.
    let by_id: std::collections::HashMap<&str, &Value> = items
        .iter()
        .map(|item| {
            (
                item["record"]["session_id"].as_str().unwrap_or(""),
                &item["record"],
            )
        })
        .collect();
    let rebuilt: Vec<Value> = stored["session_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| (*by_id[id.as_str().expect("id")]).clone())
        .collect();
    let rebuilt = Value::Array(rebuilt);
    let public =
        sign::parse_verifying_key(agent["public_key"].as_str().expect("key")).expect("key");
    let signature = BatchSignature {
        key_id: stored["key_id"].as_str().expect("key id").to_owned(),
        public_key: String::new(),
        timestamp_ms: stored["timestamp_ms"].as_i64().expect("timestamp"),
        nonce: stored["nonce"].as_str().expect("nonce").to_owned(),
        signature: stored["signature"].as_str().expect("signature").to_owned(),
    };
    sign::verify_batch(&public, &rebuilt, &signature).expect("the stored batch verifies");
    use sha2::Digest as _;
    assert_eq!(
        stored["canonical_sha256"],
        json!(hex::encode(sha2::Sha256::digest(sign::canonical_bytes(
            &rebuilt
        ))))
    );
    collector.stop().await;
}

#[tokio::test]
async fn health_cors_and_problems() {
    let collector = TestCollector::start().await;

    let health = get(&collector, "/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(
        health.headers()["access-control-allow-origin"]
            .to_str()
            .ok(),
        Some("*")
    );
    assert_eq!(
        health.json::<Value>().await.expect("json"),
        json!({"status": "ok"})
    );

    let preflight = collector
        .client
        .request(reqwest::Method::OPTIONS, collector.url("/v1/results"))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status().as_u16(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .expect("methods");
    assert!(
        methods.contains("GET") && !methods.contains("POST"),
        "{methods}"
    );

    for (path, slug) in [
        ("/v1/results?limit=0", "invalid-query"),
        ("/v1/results?limit=1001", "invalid-query"),
        ("/v1/results?since=yesterday", "invalid-query"),
        ("/v1/results?cursor=%21%21", "invalid-query"),
        ("/v1/batches/404", "not-found"),
        ("/v1/nothing", "not-found"),
    ] {
        let response = get(&collector, path).await;
        let status = response.status().as_u16();
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body["type"],
            json!(format!("https://lvt.invalid/problems/{slug}")),
            "{path}"
        );
        assert_eq!(body["status"], json!(status), "{path}");
    }
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("0:");
    let response = get(&collector, &format!("/v1/results?cursor={cursor}")).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "any well-formed cursor is a position"
    );
    collector.stop().await;
}

/// A heartbeat as an agent sends it, sent `age_ms` ago with interval `interval_s`.
fn heartbeat(age_ms: i64, interval_s: u64) -> Value {
    json!({
        "sent_at_unix_ms": now_ms() - age_ms,
        "interval_s": interval_s,
        "region": "eu-west",
        "lvt_version": "lvt 0.1.0",
        "started_at_unix_ms": now_ms() - 60_000,
        "scenario_repository": "https://git.example/s.git",
        "scenario_commit": "a".repeat(40),
        "schedules": [{"scenario": "smoke", "next_unix_ms": now_ms() + 20_000}],
        "runs_started": 3,
        "runs_running": 1,
        "spool_batches": 0,
        "spool_bytes": 0,
        "spool_full": false,
    })
}

#[tokio::test]
async fn heartbeats_are_signed_kept_per_agent_and_give_a_status() {
    let collector = TestCollector::start().await;
    let url = collector.url("/v1/agents/heartbeat");
    let agents = || async {
        get(&collector, "/v1/agents")
            .await
            .json::<Value>()
            .await
            .expect("json")
    };
    // Before any heartbeat the configured agent is unknown.
    let listed = agents().await;
    assert_eq!(listed["agents"][0]["status"], json!("unknown"), "{listed}");

    let beat = heartbeat(0, 30);
    let (body, headers) = signed(&agent_key(), &beat, now_ms(), 1);
    let (status, answer, _) = post(&collector.client, &url, body.clone(), &headers)
        .await
        .expect("post");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], json!("ok"), "{answer}");
    let listed = agents().await;
    let agent = &listed["agents"][0];
    assert_eq!(agent["status"], json!("ok"), "{listed}");
    assert_eq!(agent["heartbeat"]["scenario_commit"], json!("a".repeat(40)));
    assert_eq!(agent["heartbeat"]["runs_running"], json!(1));
    assert!(agent["heartbeat_received_at_unix_ms"].is_i64(), "{listed}");

    // Replay protection and the signature are those of result batches.
    let (status, answer, content_type) = post(&collector.client, &url, body, &headers)
        .await
        .expect("post");
    common::assert_problem(status, &answer, content_type.as_deref(), "replayed-nonce");
    let (body, headers) = signed(&common::stranger_key(), &beat, now_ms(), 2);
    let (status, answer, content_type) = post(&collector.client, &url, body, &headers)
        .await
        .expect("post");
    common::assert_problem(status, &answer, content_type.as_deref(), "unknown-key");
    assert_eq!(status, 403);

    // A heartbeat of the wrong shape is refused at its pointer.
    let mut wrong = heartbeat(0, 30);
    wrong["spool_batches"] = json!("many");
    let (body, headers) = signed(&agent_key(), &wrong, now_ms(), 3);
    let (status, answer, content_type) = post(&collector.client, &url, body, &headers)
        .await
        .expect("post");
    common::assert_problem(status, &answer, content_type.as_deref(), "invalid-record");
    assert_eq!(answer["pointer"], json!("/spool_batches"), "{answer}");

    // A backed-up spool makes it degraded, with the reason.
    let mut backed_up = heartbeat(0, 30);
    backed_up["spool_batches"] = json!(4);
    backed_up["spool_bytes"] = json!(8000);
    let (body, headers) = signed(&agent_key(), &backed_up, now_ms(), 4);
    let (status, _, _) = post(&collector.client, &url, body, &headers)
        .await
        .expect("post");
    assert_eq!(status, 200);
    let listed = agents().await;
    let agent = &listed["agents"][0];
    assert_eq!(agent["status"], json!("degraded"), "{listed}");
    assert!(
        agent["status_reasons"][0]
            .as_str()
            .unwrap_or("")
            .contains("spool is backing up"),
        "{listed}"
    );

    // With a one-second interval, three silent seconds make it stale.
    let (body, headers) = signed(&agent_key(), &heartbeat(0, 1), now_ms(), 5);
    let (status, _, _) = post(&collector.client, &url, body, &headers)
        .await
        .expect("post");
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(3_300)).await;
    let listed = agents().await;
    assert_eq!(listed["agents"][0]["status"], json!("stale"), "{listed}");
    let metrics = get(&collector, "/metrics")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("lvt_collector_agents{status=\"stale\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lvt_collector_agents{status=\"ok\"} 0"),
        "{metrics}"
    );
    collector.stop().await;
}
