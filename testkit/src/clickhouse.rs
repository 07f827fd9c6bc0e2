//! The ClickHouse engine for tests: PyPI's chdb behind `ci/clickhouse-adapter`, started once
//! per test process through `ci/clickhouse` on a free loopback port. The adapter exits when the
//! process does (it watches its stdin, which only this process holds) and deletes its data.
//! The collector's ClickHouse store tests and the tester's fleet test (collector replicas on one
//! ClickHouse) use it.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

/// The adapter of this test binary.
struct Adapter {
    url: String,
    /// Kept so that the adapter outlives every test; it is never waited for.
    _child: Child,
    /// Closing it (when this process exits) stops the adapter.
    _stdin: ChildStdin,
}

static ADAPTER: OnceLock<Result<Adapter, String>> = OnceLock::new();

fn start_adapter() -> Result<Adapter, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/clickhouse");
    let mut child = Command::new(&script)
        .args(["--no-install", "--exit-on-stdin-eof", "--port", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Piped rather than inherited: a child holding this process's stderr open after it
        // exits is reported as a leak by cargo-nextest.
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
    let stdin = child.stdin.take().ok_or("adapter stdin missing")?;
    let stdout = child.stdout.take().ok_or("adapter stdout missing")?;
    let mut stderr = child.stderr.take().ok_or("adapter stderr missing")?;
    // The adapter prints its URL once it serves: reading that line is the wait for readiness.
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|error| format!("reading the adapter's URL: {error}"))?;
    let url = line.trim().to_owned();
    if url.is_empty() {
        let status = child.wait().map_err(|error| error.to_string())?;
        let mut output = String::new();
        // The adapter has exited, so this read ends; what it wrote explains the failure.
        let _ = stderr.read_to_string(&mut output);
        return Err(if status.code() == Some(3) {
            format!("run ci/setup (chdb missing): {}", output.trim())
        } else {
            format!(
                "ci/clickhouse exited ({status}) before serving: {}",
                output.trim()
            )
        });
    }
    // Drain the adapter's diagnostics into this process's stderr so a full pipe never blocks it.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("clickhouse-adapter: {line}");
        }
    });
    Ok(Adapter {
        url,
        _child: child,
        _stdin: stdin,
    })
}

/// The URL of the adapter of this process (started at the first call, shared by every test).
///
/// # Panics
/// When the adapter cannot start (chdb missing: run `ci/setup`).
pub fn url() -> String {
    match ADAPTER.get_or_init(start_adapter) {
        Ok(adapter) => adapter.url.clone(),
        Err(reason) => panic!("ClickHouse adapter unavailable: {reason}"),
    }
}
