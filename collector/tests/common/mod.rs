//! Shared harness of the collector's integration tests: sample records, agent keys, signed
//! posts, and an in-process collector on 127.0.0.1:0 backed by a temporary SQLite file.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lvt_collector::app::{open_store, system_clock};
use lvt_collector::config::{Settings, StoreSpec};
use lvt_collector::server::serve;
use lvt_schema::sign::{self, SigningKey};
use lvt_schema::{
    Complexity, Gpu, OrchestratorRef, Outcome, PromptRef, SessionMetrics, SessionReport,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

/// The body limit the in-process collector runs with, small so that oversized tests are cheap.
pub const TEST_MAX_BODY_BYTES: usize = 64 * 1024;

/// The key of the configured test agent.
pub fn agent_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A key no agent is configured with.
pub fn stranger_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// Milliseconds since the Unix epoch, from the wall clock the server also reads.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A deterministic nonce: the counter's bytes, so every call with a new counter is fresh.
pub fn nonce(counter: u64) -> [u8; sign::NONCE_BYTES] {
    let mut nonce = [0u8; sign::NONCE_BYTES];
    nonce[..8].copy_from_slice(&counter.to_be_bytes());
    nonce[8..].copy_from_slice(&0x5eed_u64.to_be_bytes());
    nonce
}

/// A valid record for session `session_id` that ended at `ended_at_unix_ms`.
pub fn report(session_id: &str, ended_at_unix_ms: i64) -> SessionReport {
    SessionReport {
        ended_at_unix_ms,
        orchestrator: Some(OrchestratorRef {
            address: Some("0xabc".to_owned()),
            uri: "https://orch.example:8935".to_owned(),
            cert_sha256: None,
            cert_trust: None,
            address_check: Some(lvt_schema::AddressCheck::Verified),
        }),
        gpu: Some(Gpu {
            name: "NVIDIA GeForce RTX 4090".to_owned(),
            memory_bytes: Some(24 << 30),
        }),
        prompt: Some(PromptRef {
            id: Some("watercolor".to_owned()),
            complexity: Some(Complexity::Low),
            params_hash: "0123456789abcdef0123456789abcdef".to_owned(),
        }),
        outcome: Outcome::Passed,
        metrics: SessionMetrics {
            startup_ms: Some(812.25),
            input_fps: Some(30.0),
            ..SessionMetrics::default()
        },
        region: Some("eu-west".to_owned()),
        tester_version: Some("lvt test".to_owned()),
        ..SessionReport::new(session_id, "noop", ended_at_unix_ms - 30_000)
    }
}

/// A batch of `count` records with ids `{prefix}-{i}`, as a JSON array.
pub fn batch(prefix: &str, count: usize, ended_at_unix_ms: i64) -> Value {
    let reports: Vec<SessionReport> = (0..count)
        .map(|i| report(&format!("{prefix}-{i}"), ended_at_unix_ms + i as i64))
        .collect();
    serde_json::to_value(reports).expect("records serialize")
}

/// The settings of the in-process collector: one agent with [`agent_key`].
pub fn settings() -> Settings {
    settings_with("")
}

/// [`settings`] followed by `tables`, more TOML tables of the settings file.
pub fn settings_with(tables: &str) -> Settings {
    let line = sign::public_key_line(&agent_key().verifying_key());
    let text = format!(
        "max_body_bytes = {TEST_MAX_BODY_BYTES}\n[[agents]]\nid = \"agent-1\"\nregion = \"eu-west\"\npublic_key = \"{}\"\n{tables}",
        line.trim()
    );
    Settings::parse(&text, std::path::Path::new("test.toml")).expect("test settings are valid")
}

/// A collector running in this process until dropped.
pub struct TestCollector {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestCollector {
    /// Starts a collector on 127.0.0.1:0 with a fresh SQLite file.
    pub async fn start() -> Self {
        Self::start_with(settings()).await
    }

    /// [`TestCollector::start`] with these settings.
    pub async fn start_with(settings: Settings) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut collector = Self::start_at(&dir.path().join("lvt.db"), settings).await;
        collector._dir = Some(dir);
        collector
    }

    /// A collector with these settings on the SQLite file `db` (which outlives it, so that a
    /// test can stop one collector and start another on the same data).
    pub async fn start_at(db: &std::path::Path, settings: Settings) -> Self {
        let spec: StoreSpec = format!("sqlite:{}", db.display())
            .parse()
            .expect("store spec");
        let store = open_store(&spec).await.expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("local address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, settings, store, system_clock(), async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        Self {
            address,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            task: Some(task),
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

/// The body and signature headers of a batch signed by `key` at `timestamp_ms`.
pub fn signed(
    key: &SigningKey,
    records: &Value,
    timestamp_ms: i64,
    counter: u64,
) -> (Vec<u8>, Vec<(&'static str, String)>) {
    let signature = sign::sign_batch(key, records, timestamp_ms, nonce(counter));
    let body = serde_json::to_vec(records).expect("records serialize");
    (body, signature.to_headers())
}

/// Posts `body` with `headers` to `/v1/results` at `url_base`; returns status and JSON body.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(&'static str, String)],
) -> reqwest::Result<(u16, Value, Option<String>)> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await?;
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, value, content_type))
}

/// Walks `/v1/results` from the start with `limit`, returning every item in order.
pub async fn all_results(client: &reqwest::Client, base: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/results?limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = client
            .get(&url)
            .send()
            .await
            .expect("get results")
            .json()
            .await
            .expect("results json");
        items.extend(page["results"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Shares a value between test tasks.
pub type Shared<T> = Arc<std::sync::Mutex<T>>;

/// The media type of every error answer (RFC 7807).
pub const PROBLEM: &str = "application/problem+json";

/// Asserts that an answer is an RFC 7807 problem of type `slug` with `status`.
pub fn assert_problem(status: u16, body: &Value, content_type: Option<&str>, slug: &str) {
    assert_eq!(content_type, Some(PROBLEM), "{body}");
    assert_eq!(
        body["type"],
        json!(format!("https://lvt.invalid/problems/{slug}")),
        "{body}"
    );
    assert_eq!(body["status"], json!(status), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}

/// Writes `request` on a fresh connection and returns what the server answered (head and
/// whatever body arrived), reading until the connection closes. A failed write is fine: the
/// server may answer and close before reading everything.
pub async fn raw_exchange(address: std::net::SocketAddr, request: Vec<u8>) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buffer[..n]),
        }
        // The problem body is small; stop once the head and some body are in.
        if response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}
