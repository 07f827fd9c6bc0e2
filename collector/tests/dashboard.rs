//! End-to-end test of the dashboard: a collector filled with signed records of orchestrators of
//! clearly different quality, the page rendered by Debian's headless Chromium, and the rendered
//! DOM checked for the ranking. The screenshot is kept under target/test-artifacts/. The same
//! check against a collector filled by a real `lvt run` is in tester/tests/collector_e2e.rs.

mod common;
mod fleet;

use common::{TestCollector, now_ms};
use lvt_testkit::chromium::{keep_screenshot, leaderboard_order, rendered_dom};

// Multi-threaded so that the collector keeps answering while the test awaits Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_lists_orchestrators_in_score_order() {
    let collector = TestCollector::start().await;
    let sessions = fleet::sessions(now_ms());
    fleet::ship_all(&collector, &sessions, 1).await;
    let url = collector.url("/");

    let dom = rendered_dom(&url).await;
    let expected: Vec<String> = fleet::FLEET
        .iter()
        .map(|profile| profile.address.to_owned())
        .collect();
    assert_eq!(leaderboard_order(&dom), expected);
    // Ranked by lvt-v1, with NaaP's formula beside it: a score for every orchestrator but the
    // busy-only one, equal to what the API answers for naap-v1.
    assert!(dom.contains("ranked by lvt-v1"), "{dom}");
    for header in ["lvt-v1", "naap-v1", "completion"] {
        assert!(
            dom.contains(&format!("<th class=\"num\">{header}</th>")),
            "{header}"
        );
    }
    let naap: serde_json::Value = collector
        .client
        .get(collector.url("/v1/sla/orchestrators?formula=naap-v1"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let shown: Vec<&str> = dom
        .split("<td class=\"num naap\">")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .collect();
    let expected_naap: Vec<String> = expected
        .iter()
        .map(|address| {
            naap["orchestrators"]
                .as_array()
                .expect("list")
                .iter()
                .find(|row| row["orchestrator"] == address.as_str())
                .and_then(|row| row["score"]["sla_score"].as_f64())
                .map_or_else(|| "-".to_owned(), |score| format!("{score:.1}"))
        })
        .collect();
    assert_eq!(shown, expected_naap);
    // The per-orchestrator view drew its charts and the grid has a column per region.
    assert!(dom.contains("<polyline"), "no chart was drawn");
    assert!(dom.contains("id=\"grid-table\""));
    for region in ["eu-west", "us-east"] {
        assert!(
            dom.contains(&format!("<th class=\"num\">{region}</th>")),
            "{region}"
        );
    }

    keep_screenshot(&url, "dashboard.png").await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_of_an_empty_collector_says_so() {
    let collector = TestCollector::start().await;
    let dom = rendered_dom(&collector.url("/")).await;
    assert!(dom.contains("no sessions in this window"), "{dom}");
    assert!(leaderboard_order(&dom).is_empty());
    collector.stop().await;
}

/// A heartbeat with interval `interval_s`, as an agent in `region` sends it.
fn heartbeat(region: &str, interval_s: u64) -> serde_json::Value {
    serde_json::json!({
        "sent_at_unix_ms": now_ms(),
        "interval_s": interval_s,
        "region": region,
        "lvt_version": "lvt 0.1.0",
        "started_at_unix_ms": now_ms() - 60_000,
        "scenario_commit": "0123456789abcdef0123456789abcdef01234567",
        "runs_started": 2,
        "runs_running": 0,
        "spool_batches": 0,
        "spool_bytes": 0,
        "spool_full": false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_panel_shows_a_stale_and_a_healthy_agent() {
    let second = lvt_schema::sign::SigningKey::from_bytes(&[8; 32]);
    let line = lvt_schema::sign::public_key_line(&second.verifying_key());
    let collector = TestCollector::start_with(common::settings_with(&format!(
        "[[agents]]\nid = \"agent-2\"\nregion = \"us-east\"\npublic_key = \"{}\"\n",
        line.trim()
    )))
    .await;
    let url = collector.url("/v1/agents/heartbeat");
    // agent-2 beats once with a one-second interval and falls silent: stale after 3 s.
    let (body, headers) = common::signed(&second, &heartbeat("us-east", 1), now_ms(), 1);
    let (status, _, _) = common::post(&collector.client, &url, body, &headers)
        .await
        .expect("post");
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(3_300)).await;
    let (body, headers) =
        common::signed(&common::agent_key(), &heartbeat("eu-west", 30), now_ms(), 2);
    let (status, _, _) = common::post(&collector.client, &url, body, &headers)
        .await
        .expect("post");
    assert_eq!(status, 200);

    let page = collector.url("/");
    let dom = rendered_dom(&page).await;
    assert!(dom.contains("id=\"fleet-table\""), "{dom}");
    assert!(
        dom.contains("data-agent=\"agent-1\" data-status=\"ok\""),
        "{dom}"
    );
    assert!(
        dom.contains("data-agent=\"agent-2\" data-status=\"stale\""),
        "{dom}"
    );
    assert!(
        dom.contains("no heartbeat for"),
        "the stale agent says why: {dom}"
    );
    // Sorted by region: eu-west's agent first.
    let first = dom.find("data-agent=\"agent-1\"").expect("agent-1 row");
    let second_row = dom.find("data-agent=\"agent-2\"").expect("agent-2 row");
    assert!(first < second_row, "rows by region");
    keep_screenshot(&page, "dashboard-fleet.png").await;
    collector.stop().await;
}
