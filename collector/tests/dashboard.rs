//! End-to-end test of the dashboard: a collector filled with signed records of orchestrators of
//! clearly different quality, the page rendered by Debian's headless Chromium, and the rendered
//! DOM checked for the ranking. The screenshot is kept under target/test-artifacts/.
//!
//! Chromium is a test dependency like any other (ci/setup installs it): when it is missing the
//! test fails, it never skips.

mod common;
mod fleet;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{TestCollector, now_ms};

/// How long one Chromium run may take before the test fails (it needs about a second).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artifacts")
}

/// Runs headless Chromium on `url` with `extra` arguments; returns its standard output.
async fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut command = tokio::process::Command::new("chromium");
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--hide-scrollbars",
            // Virtual time lets the page's fetches finish before the DOM is dumped or the
            // screenshot taken, without the test waiting on a wall-clock guess.
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("chromium is not installed: install chromium (ci/setup)")
        }
        Err(error) => panic!("chromium could not start: {error}"),
    };
    let output = tokio::time::timeout(CHROMIUM_TIMEOUT, child.wait_with_output())
        .await
        .expect("chromium finishes in time")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The orchestrator of every leaderboard row, in page order (each row names its orchestrator in
/// full in `data-orchestrator`; the visible cell abbreviates it).
fn leaderboard_order(dom: &str) -> Vec<String> {
    const ROW: &str = "<tr class=\"pick";
    const ATTRIBUTE: &str = "data-orchestrator=\"";
    dom.split(ROW)
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            let start = tag.find(ATTRIBUTE)? + ATTRIBUTE.len();
            let end = tag[start..].find('"')? + start;
            Some(tag[start..end].to_owned())
        })
        .collect()
}

// Multi-threaded so that the collector keeps answering while the test awaits Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_lists_orchestrators_in_score_order() {
    let collector = TestCollector::start().await;
    let sessions = fleet::sessions(now_ms());
    fleet::ship_all(&collector, &sessions, 1).await;
    let url = collector.url("/");

    let dom = chromium(&url, &["--dump-dom".to_owned()]).await;
    assert!(
        dom.contains("data-state=\"ready\""),
        "the page did not finish rendering: {dom}"
    );
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

    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        &url,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900".to_owned(),
        ],
    )
    .await;
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_of_an_empty_collector_says_so() {
    let collector = TestCollector::start().await;
    let dom = chromium(&collector.url("/"), &["--dump-dom".to_owned()]).await;
    assert!(dom.contains("data-state=\"ready\""), "{dom}");
    assert!(dom.contains("no sessions in this window"), "{dom}");
    assert!(leaderboard_order(&dom).is_empty());
    collector.stop().await;
}
