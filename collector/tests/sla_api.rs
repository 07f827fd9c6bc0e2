//! The SLA, GPU and demand endpoints and `/openapi.json` against an in-process collector filled
//! with signed records of a fleet of clearly different quality.

mod common;
mod fleet;

use common::{TestCollector, now_ms};
use lvt_collector::sla::{CellSums, Cohort, Formula, score, score_with};
use serde_json::Value;

async fn get(collector: &TestCollector, path: &str) -> (u16, Value, String) {
    let response = collector
        .client
        .get(collector.url(path))
        .send()
        .await
        .expect("get");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, content_type)
}

fn close(a: &Value, b: Option<f64>) -> bool {
    match (a.as_f64(), b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => a.is_null(),
        _ => false,
    }
}

#[tokio::test]
async fn orchestrators_are_ranked_from_merged_sums() {
    let collector = TestCollector::start().await;
    let sessions = fleet::sessions(now_ms());
    let (inserted, duplicates) = fleet::ship_all(&collector, &sessions, 1).await;
    assert_eq!((inserted as usize, duplicates), (sessions.len(), 0));
    // A retried delivery stores nothing twice, so no figure below may change.
    let (inserted, duplicates) = fleet::ship_all(&collector, &sessions, 2).await;
    assert_eq!((inserted, duplicates as usize), (0, sessions.len()));

    let (status, body, _) = get(&collector, "/v1/sla/orchestrators").await;
    assert_eq!(status, 200, "{body}");
    let ranked = body["orchestrators"].as_array().expect("list");
    let order: Vec<&str> = ranked
        .iter()
        .map(|row| row["orchestrator"].as_str().unwrap_or_default())
        .collect();
    let expected: Vec<&str> = fleet::FLEET.iter().map(|profile| profile.address).collect();
    assert_eq!(order, expected);
    let ranks: Vec<Value> = ranked.iter().map(|row| row["rank"].clone()).collect();
    assert_eq!(
        ranks,
        [1, 2, 3]
            .map(Value::from)
            .into_iter()
            .chain([Value::Null])
            .collect::<Vec<_>>()
    );

    // The busy-only orchestrator is listed, unscored, with its busy rate as capacity signal.
    let busy = &ranked[3]["score"];
    assert!(busy["sla_score"].is_null());
    assert_eq!(busy["busy_rate"], 1.0);
    assert!(
        busy["startup_ms_mean"].is_null(),
        "no data is null, never 0"
    );

    // The third orchestrator was measured from two regions: its score is the score of the merged
    // sums of both (the cohort, seven days before the window, is empty here), not the mean of
    // two regional scores.
    let address = fleet::FLEET[2].address;
    let own: Vec<_> = sessions
        .iter()
        .filter(|report| {
            report
                .orchestrator
                .as_ref()
                .and_then(|o| o.address.clone())
                .map(|a| a.to_ascii_lowercase())
                == Some(address.to_owned())
        })
        .collect();
    let expected = score(
        &CellSums::from_sessions(own.iter().copied()),
        &Cohort::from_sums(&CellSums::default()),
    );
    assert!(
        close(&ranked[2]["score"]["sla_score"], expected.sla_score),
        "{}",
        ranked[2]
    );
    let interval = &ranked[2]["score"]["startup_success"];
    assert!(interval["ci95_low"].as_f64() < interval["rate"].as_f64());
    assert!(interval["ci95_high"].as_f64() > interval["rate"].as_f64());

    // Filtering by region ranks within it.
    let (_, body, _) = get(&collector, "/v1/sla/orchestrators?region=eu-west").await;
    let order: Vec<&str> = body["orchestrators"]
        .as_array()
        .expect("list")
        .iter()
        .map(|row| row["orchestrator"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(order, [fleet::FLEET[0].address, fleet::FLEET[2].address]);
    collector.stop().await;
}

#[tokio::test]
async fn compliance_buckets_gpu_metrics_and_demand_add_up() {
    let collector = TestCollector::start().await;
    let sessions = fleet::sessions(now_ms());
    fleet::ship_all(&collector, &sessions, 1).await;
    let best = fleet::FLEET[0]
        .address
        .to_ascii_uppercase()
        .replacen("0X", "0x", 1);

    let (status, hourly, _) = get(
        &collector,
        &format!("/v1/sla/compliance?orchestrator={best}&grain=hour"),
    )
    .await;
    assert_eq!(status, 200, "{hourly}");
    let rows = hourly["rows"].as_array().expect("rows");
    assert_eq!(rows.len() as i64, fleet::HOURS);
    for row in rows {
        assert_eq!(row["score"]["sessions"], 4);
        assert_eq!(row["region"], "eu-west");
        assert_eq!(row["complexity"], "medium");
        assert_eq!(row["test_load"], true);
        assert!(row["score"]["e2e_p50_ms_mean"].as_f64() > Some(0.0));
    }
    let (_, window, _) = get(
        &collector,
        &format!("/v1/sla/compliance?orchestrator={best}&grain=window"),
    )
    .await;
    let rows = window["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["score"]["sessions"], 4 * fleet::HOURS);
    assert_eq!(rows[0]["bucket_start"], window["start"]);
    let (_, daily, _) = get(&collector, "/v1/sla/compliance?grain=day&test_load=false").await;
    assert_eq!(
        daily["rows"],
        Value::Array(vec![]),
        "no organic load was shipped"
    );

    let (_, gpus, _) = get(&collector, "/v1/gpu/metrics").await;
    let gpus = gpus["gpus"].as_array().expect("gpus");
    let names: Vec<&str> = gpus
        .iter()
        .map(|gpu| gpu["gpu"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["NVIDIA A100", "NVIDIA A10G", "NVIDIA GeForce RTX 4090"]
    );
    assert!(gpus[0]["startup_ms_mean"].is_null() && gpus[0]["sla_score"].is_null());
    assert_eq!(gpus[2]["orchestrators"], 2);
    assert_eq!(gpus[2]["sessions"], 8 * fleet::HOURS);
    assert!(gpus[2]["output_fps_mean"].as_f64() > gpus[1]["output_fps_mean"].as_f64());

    let (_, demand, _) = get(&collector, "/v1/network/demand").await;
    let rows = demand["rows"].as_array().expect("rows");
    assert_eq!(rows.len() as i64, fleet::HOURS);
    let total: u64 = rows.iter().filter_map(|row| row["sessions"].as_u64()).sum();
    let busy: u64 = rows.iter().filter_map(|row| row["busy"].as_u64()).sum();
    assert_eq!(total as usize, sessions.len());
    assert_eq!(busy as i64, 4 * fleet::HOURS);
    collector.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_problems_naming_the_parameter() {
    let collector = TestCollector::start().await;
    for (path, name) in [
        ("/v1/sla/compliance?grain=week", "grain"),
        ("/v1/sla/compliance?start=yesterday", "start"),
        (
            "/v1/sla/orchestrators?start=2026-11-27T10:00:00Z&end=2026-11-27T09:00:00Z",
            "start",
        ),
        ("/v1/gpu/metrics?test_load=maybe", "test_load"),
        ("/v1/network/demand?end=soon", "end"),
    ] {
        let (status, body, content_type) = get(&collector, path).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("{name}:")),
            "{path}: {body}"
        );
    }
    // An empty store has no rows, not rows of zeros.
    let (status, body, _) = get(&collector, "/v1/sla/orchestrators?start=0&end=3600").await;
    assert_eq!(status, 200);
    assert_eq!(body["orchestrators"], Value::Array(vec![]));
    collector.stop().await;
}

#[tokio::test]
async fn openapi_document_is_valid_and_every_get_path_answers() {
    let collector = TestCollector::start().await;
    let (status, document, _) = get(&collector, "/openapi.json").await;
    assert_eq!(status, 200);
    let parsed: openapiv3::OpenAPI =
        serde_json::from_value(document.clone()).expect("the document is OpenAPI 3");
    assert!(parsed.openapi.starts_with("3."));
    for (path, item) in parsed.paths.iter() {
        let item = item.as_item().expect("inline path item");
        if item.get.is_none() {
            continue;
        }
        let concrete = path.replace("{id}", "1");
        let (status, body, _) = get(&collector, &concrete).await;
        // A documented GET path reaches its handler: the fallback's "no resource" never answers.
        let fallback = status == 404
            && body["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with("no resource");
        assert!(!fallback, "{path} is documented but not routed");
    }
    collector.stop().await;
}

#[tokio::test]
async fn scores_are_benchmarked_against_the_week_before() {
    let collector = TestCollector::start().await;
    let now = now_ms();
    // Two and three days ago, the fleet's passed sessions build the cohort: enough rows for its
    // percentiles to be a benchmark.
    let mut history = fleet::sessions(now - 2 * 86_400_000);
    history.extend(fleet::sessions(now - 3 * 86_400_000));
    history.retain(|report| report.outcome == lvt_schema::Outcome::Passed);
    assert!(history.len() >= 48, "{}", history.len());
    fleet::ship_all(&collector, &history, 1).await;
    fleet::ship_all(&collector, &fleet::sessions(now), 2).await;

    let best = fleet::FLEET[0].address;
    let (status, body, _) = get(
        &collector,
        &format!("/v1/sla/compliance?orchestrator={best}&grain=window"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let row = &body["rows"][0];
    assert_eq!(row["cohort"]["rows"].as_u64(), Some(history.len() as u64));
    // The best orchestrator starts faster than the cohort's median: a full startup score, where
    // an empty cohort would have left the neutral 0.5.
    assert_eq!(row["score"]["ptff_score"], 1.0, "{row}");
    let worst = fleet::FLEET[2].address;
    let (_, body, _) = get(
        &collector,
        &format!("/v1/sla/compliance?orchestrator={worst}&grain=window&region=eu-west"),
    )
    .await;
    let ptff = body["rows"][0]["score"]["ptff_score"].as_f64();
    assert!(ptff < Some(0.5), "{}", body["rows"][0]);
    collector.stop().await;
}

/// `count` passed one-minute sessions of `address`, held to a startup SLO of 8 s, an e2e SLO of
/// 500 ms and an FPS SLO of 12, each with the given e2e median, FPS and stalled time.
fn held_to_slo(
    address: &str,
    count: usize,
    e2e_ms: f64,
    fps: f64,
    stall_ms: f64,
) -> Vec<lvt_schema::SessionReport> {
    use lvt_schema::{
        FpsSummary, LatencySummary, OrchestratorRef, Outcome, SessionReport, SessionSlo,
        StallSummary,
    };
    let started = now_ms() - 120_000;
    (0..count)
        .map(|n| {
            let mut report =
                SessionReport::new(format!("{address}-{n}"), "streamdiffusion", started);
            report.ended_at_unix_ms = started + 60_000;
            report.orchestrator = Some(OrchestratorRef {
                address: Some(address.to_owned()),
                uri: format!("https://{}.example:8935", &address[..6]),
                cert_sha256: None,
                cert_trust: None,
                address_check: Some(lvt_schema::AddressCheck::Verified),
            });
            report.outcome = Outcome::Passed;
            report.metrics.startup_ms = Some(900.0);
            report.metrics.e2e_latency_ms = Some(LatencySummary {
                count: 1800,
                p50: e2e_ms,
                p90: e2e_ms,
                p95: e2e_ms,
                p99: e2e_ms,
                max: e2e_ms,
                mean: e2e_ms,
                min: e2e_ms,
            });
            report.metrics.output_fps = Some(FpsSummary {
                mean: fps,
                p5: fps,
                p50: fps,
                windows: 60,
            });
            if stall_ms > 0.0 {
                report.metrics.stalls = StallSummary {
                    count: 1,
                    total_ms: stall_ms,
                    longest_ms: stall_ms,
                };
            }
            report.slo = Some(SessionSlo {
                startup_ms: Some(8000.0),
                e2e_latency_ms: Some(500.0),
                output_fps: Some(12.0),
            });
            report
        })
        .collect()
}

#[tokio::test]
async fn lvt_v1_is_served_beside_naap_v1() {
    let collector = TestCollector::start().await;
    let good = "0x1111111111111111111111111111111111111111";
    let slow = "0x2222222222222222222222222222222222222222";
    let frozen = "0x3333333333333333333333333333333333333333";
    let mut sessions = held_to_slo(good, 10, 40.0, 30.0, 0.0);
    sessions.extend(held_to_slo(slow, 10, 710.0, 9.0, 0.0));
    sessions.extend(held_to_slo(frozen, 10, 40.0, 30.0, 15_000.0));
    let (inserted, _) = fleet::ship_all(&collector, &sessions, 1).await;
    assert_eq!(inserted as usize, sessions.len());

    // On a fresh collector NaaP's formula ties all three: latency and FPS are neutral until the
    // cohort has 48 rows, and it never sees stalls.
    let (status, naap, _) = get(&collector, "/v1/sla/orchestrators").await;
    assert_eq!(status, 200, "{naap}");
    assert_eq!(naap["formula"], "naap-v1");
    let scores: Vec<f64> = naap["orchestrators"]
        .as_array()
        .expect("list")
        .iter()
        .map(|row| row["score"]["sla_score"].as_f64().expect("scored"))
        .collect();
    assert_eq!(scores.len(), 3);
    assert!(
        scores.iter().all(|score| (score - 85.0).abs() < 1e-9),
        "{scores:?}"
    );

    // lvt-v1 tells them apart, and says what it scored against.
    let (status, lvt, _) = get(&collector, "/v1/sla/orchestrators?formula=lvt-v1").await;
    assert_eq!(status, 200, "{lvt}");
    assert_eq!(lvt["formula"], "lvt-v1");
    let ranked = lvt["orchestrators"].as_array().expect("list");
    let order: Vec<&str> = ranked
        .iter()
        .map(|row| row["orchestrator"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(order, [good, frozen, slow]);
    assert_eq!(ranked[0]["score"]["formula"], "lvt-v1");
    assert_eq!(ranked[0]["score"]["e2e_basis"], "slo");
    assert_eq!(ranked[2]["score"]["slo_e2e"]["rate"], 0.0);
    // A quarter of its time stalled (0 on that half) in one stall a minute (0.5 on the other).
    assert_eq!(ranked[1]["score"]["stall_score"], 0.25);
    let own = |address: &str| {
        CellSums::from_sessions(
            sessions
                .iter()
                .filter(|s| s.orchestrator.as_ref().unwrap().address.as_deref() == Some(address)),
        )
    };
    let empty = Cohort::from_sums(&CellSums::default());
    for (row, address) in ranked.iter().zip([good, frozen, slow]) {
        let expected = score_with(Formula::LvtV1, &own(address), &empty);
        assert!(
            close(&row["score"]["sla_score"], expected.sla_score),
            "{row}"
        );
    }

    // The other scoring endpoints take the formula too.
    let (status, compliance, _) =
        get(&collector, "/v1/sla/compliance?grain=window&formula=lvt-v1").await;
    assert_eq!(status, 200, "{compliance}");
    assert_eq!(compliance["formula"], "lvt-v1");
    assert_eq!(compliance["rows"][0]["score"]["formula"], "lvt-v1");
    let (_, gpus, _) = get(&collector, "/v1/gpu/metrics?formula=lvt-v1").await;
    assert_eq!(gpus["gpus"][0]["score"]["formula"], "lvt-v1");

    let (status, problem, _) = get(&collector, "/v1/sla/orchestrators?formula=best").await;
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("formula:")),
        "{problem}"
    );
    collector.stop().await;
}
