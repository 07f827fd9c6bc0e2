//! End-to-end test of the dashboard: a collector filled with signed records of orchestrators of
//! clearly different quality, the page rendered by Debian's headless Chromium, and the rendered
//! DOM checked for the ranking. The screenshot is kept under target/test-artifacts/. The same
//! check against a collector filled by a real `lvt run` is in tester/tests/collector_e2e.rs.

mod chromium;
mod common;
mod fleet;

use chromium::{keep_screenshot, leaderboard_order, rendered_dom};
use common::{TestCollector, now_ms};

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
