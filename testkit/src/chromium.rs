//! Headless Chromium for the dashboard's end-to-end tests: rendering the page and reading the
//! leaderboard out of the rendered DOM. Used by `collector/tests/dashboard.rs` and the tester's
//! `tester/tests/collector_e2e.rs`.
//!
//! Chromium is a test dependency like any other (ci/setup installs it): when it is missing the
//! test fails, it never skips.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// How long one Chromium run may take before the test fails (it needs about a second).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artifacts")
}

/// A headless Chromium command with a fresh profile (kept until the returned directory is
/// dropped); the caller adds its own arguments and the URL.
fn headless() -> (tokio::process::Command, tempfile::TempDir) {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut command = tokio::process::Command::new("chromium");
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    (command, profile)
}

/// Starts `command` (a Chromium), failing the test with what to do when it cannot.
fn spawn(command: &mut tokio::process::Command) -> tokio::process::Child {
    match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!("chromium is not installed: install chromium (ci/setup)")
        }
        Err(error) => panic!("chromium could not start: {error}"),
    }
}

/// Runs headless Chromium on `url` with `extra` arguments; returns its standard output.
pub async fn chromium(url: &str, extra: &[String]) -> String {
    let (mut command, _profile) = headless();
    command
        .args([
            "--hide-scrollbars",
            // Virtual time lets the page's fetches finish before the DOM is dumped or the
            // screenshot taken, without the test waiting on a wall-clock guess.
            "--virtual-time-budget=15000",
        ])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = spawn(&mut command);
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
pub fn leaderboard_order(dom: &str) -> Vec<String> {
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

/// Renders `url` and returns the DOM once the page says it is ready; fails the test otherwise.
pub async fn rendered_dom(url: &str) -> String {
    let dom = chromium(url, &["--dump-dom".to_owned()]).await;
    assert!(
        dom.contains("data-state=\"ready\""),
        "the page did not finish rendering: {dom}"
    );
    dom
}

/// Takes a 1280x900 screenshot of `url` into the test artefacts as `name`; returns its path.
pub async fn keep_screenshot(url: &str, name: &str) -> PathBuf {
    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let screenshot = artifacts.join(name);
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        url,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900".to_owned(),
        ],
    )
    .await;
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    screenshot
}

/// Headless Chromium showing `url` in real time (no virtual time: WebRTC and media need the
/// real clock) until the returned child is dropped. For pages that report what they saw by
/// themselves (a `fetch` to the test's server). Media plays without a user gesture; peer
/// connections may use loopback and announce plain IP candidates, so that a WebRTC peer on
/// 127.0.0.1 is reachable.
pub fn open_page(url: &str) -> (tokio::process::Child, tempfile::TempDir) {
    let (mut command, profile) = headless();
    command
        .args([
            "--autoplay-policy=no-user-gesture-required",
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            // Keeps the browser open on its page until the test ends it.
            "--remote-debugging-port=0",
        ])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let child = spawn(&mut command);
    (child, profile)
}
