//! Shipping results to a collector: a small collector in the test (axum on 127.0.0.1:0) verifies
//! every batch's signature, timestamp and nonce the way the real one must, stores records by
//! session id, and can be told to fail; the shipper must deliver, batch, retry, spool and
//! re-send, and `lvt keygen` / `lvt probe --collector` / `lvt ship-spool` must work as a user
//! runs them.

mod common;

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use lvt_schema::sign::{self, BatchSignature, SigningKey, VerifyingKey};
use lvt_schema::{Outcome, SessionMetrics, SessionReport};
use lvt_sim::Profile;
use lvt_tester::ship::{SendError, ShipError, ShipOptions, Shipper, spool_batch, spool_files};

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

/// The collector's timestamp window: 5 minutes either way.
const WINDOW_MS: u64 = 5 * 60 * 1000;

/// What the test collector saw and holds.
#[derive(Default)]
struct Seen {
    /// The nonce of every request whose signature verified, in arrival order.
    nonces: Vec<String>,
    /// Session ids stored.
    stored: HashSet<String>,
    /// Record counts of the batches stored, in order.
    batches: Vec<usize>,
    /// Answers to give (after verification) instead of storing, one per request.
    script: VecDeque<(StatusCode, &'static str)>,
    /// Requests refused because they did not verify (must stay 0).
    rejected: usize,
}

struct TestCollector {
    public: VerifyingKey,
    seen: Mutex<Seen>,
}

impl TestCollector {
    fn seen<T>(&self, f: impl FnOnce(&mut Seen) -> T) -> T {
        f(&mut self.seen.lock().unwrap())
    }
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn results(
    State(collector): State<Arc<TestCollector>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let refuse = |status, detail: String| {
        collector.seen(|s| s.rejected += 1);
        problem(status, &detail)
    };
    if headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()) != Some(b"application/json") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not JSON".into());
    }
    let sig = match BatchSignature::from_headers(|name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }) {
        Ok(sig) => sig,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if sig.key_id != sign::key_id(&collector.public) {
        return refuse(StatusCode::FORBIDDEN, "unknown key".into());
    }
    let records: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Err(e) = sign::verify_batch(&collector.public, &records, &sig) {
        return refuse(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    if let Err(e) = sign::check_timestamp(sig.timestamp_ms, now_ms, WINDOW_MS) {
        return refuse(StatusCode::CONFLICT, e.to_string());
    }
    let mut seen = collector.seen.lock().unwrap();
    if seen.nonces.contains(&sig.nonce) {
        seen.rejected += 1;
        return problem(StatusCode::CONFLICT, "nonce reused");
    }
    seen.nonces.push(sig.nonce.clone());
    if let Some((status, detail)) = seen.script.pop_front() {
        return problem(status, detail);
    }
    let records: Vec<SessionReport> = match serde_json::from_value(records) {
        Ok(r) => r,
        Err(e) => {
            seen.rejected += 1;
            return problem(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let mut inserted = 0;
    for record in &records {
        if seen.stored.insert(record.session_id.clone()) {
            inserted += 1;
        }
    }
    seen.batches.push(records.len());
    let body = serde_json::json!({"inserted": inserted, "duplicates": records.len() - inserted});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Starts the test collector on 127.0.0.1:0, trusting `public`.
async fn start_collector(public: VerifyingKey) -> (Arc<TestCollector>, String) {
    let collector = Arc::new(TestCollector {
        public,
        seen: Mutex::new(Seen::default()),
    });
    let app = Router::new()
        .route("/v1/results", post(results))
        .layer(DefaultBodyLimit::max(5 * 1024 * 1024))
        .with_state(collector.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (collector, format!("http://{addr}"))
}

fn test_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn record(n: usize) -> SessionReport {
    SessionReport {
        ended_at_unix_ms: 1_764_270_030_000 + n as i64,
        outcome: Outcome::Passed,
        metrics: SessionMetrics {
            startup_ms: Some(2100.5),
            ..SessionMetrics::default()
        },
        region: Some("eu-west".into()),
        tester_version: Some("lvt test".into()),
        ..SessionReport::new(
            format!("00000000-0000-4000-8000-{n:012}"),
            "noop",
            1_764_270_000_000 + n as i64,
        )
    }
}

fn records(count: usize) -> Vec<SessionReport> {
    (0..count).map(record).collect()
}

fn options(spool: &Path) -> ShipOptions {
    ShipOptions {
        spool_dir: spool.to_owned(),
        jitter_seed: Some(1),
        ..ShipOptions::default()
    }
}

/// A port nothing listens on: bound and released at once.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test(start_paused = true)]
async fn records_arrive_verified_and_a_resend_stores_nothing_twice() {
    let spool = tempfile::tempdir().unwrap();
    let (collector, url) = start_collector(test_key().verifying_key()).await;
    let shipper = Shipper::new(&url, test_key(), options(spool.path())).unwrap();

    let outcome = shipper.ship(&records(3)).await.expect("delivered");
    assert_eq!(
        (
            outcome.records,
            outcome.batches,
            outcome.inserted,
            outcome.duplicates
        ),
        (3, 1, 3, 0)
    );
    assert_eq!(outcome.retries, 0);
    // Idempotency: the same records again are all duplicates.
    let again = shipper.ship(&records(3)).await.expect("delivered");
    assert_eq!((again.inserted, again.duplicates), (0, 3));

    collector.seen(|s| {
        assert_eq!(s.rejected, 0);
        assert_eq!(
            s.stored,
            records(3).into_iter().map(|r| r.session_id).collect()
        );
        assert_eq!(s.batches, vec![3, 3]);
        assert_eq!(s.nonces.len(), 2);
        assert_ne!(s.nonces[0], s.nonces[1]);
    });
    assert!(spool_files(spool.path()).unwrap().is_empty());
    // Nothing to ship is a success that sends nothing.
    assert_eq!(shipper.ship(&[]).await.unwrap().batches, 0);
}

#[tokio::test(start_paused = true)]
async fn twelve_hundred_records_go_in_three_batches() {
    let spool = tempfile::tempdir().unwrap();
    let (collector, url) = start_collector(test_key().verifying_key()).await;
    let shipper = Shipper::new(&url, test_key(), options(spool.path())).unwrap();

    let outcome = shipper.ship(&records(1200)).await.expect("delivered");
    assert_eq!(
        (outcome.records, outcome.batches, outcome.inserted),
        (1200, 3, 1200)
    );
    collector.seen(|s| {
        assert_eq!(s.batches, vec![500, 500, 200]);
        assert_eq!(s.stored.len(), 1200);
        assert_eq!(s.rejected, 0);
    });
}

#[tokio::test(start_paused = true)]
async fn a_byte_limit_splits_batches_too() {
    let spool = tempfile::tempdir().unwrap();
    let (collector, url) = start_collector(test_key().verifying_key()).await;
    let one = serde_json::to_vec(&record(0)).unwrap().len();
    let shipper = Shipper::new(
        &url,
        test_key(),
        ShipOptions {
            // Room for two records (and brackets and a comma) but not three.
            max_batch_bytes: 2 * one + 10,
            ..options(spool.path())
        },
    )
    .unwrap();
    let outcome = shipper.ship(&records(5)).await.expect("delivered");
    assert_eq!(outcome.batches, 3);
    collector.seen(|s| assert_eq!(s.batches, vec![2, 2, 1]));
}

#[tokio::test(start_paused = true)]
async fn unavailable_and_conflict_are_retried_with_fresh_signatures_and_backoff() {
    let spool = tempfile::tempdir().unwrap();
    let (collector, url) = start_collector(test_key().verifying_key()).await;
    collector.seen(|s| {
        s.script
            .push_back((StatusCode::SERVICE_UNAVAILABLE, "restarting"));
        s.script
            .push_back((StatusCode::CONFLICT, "timestamp too old"));
    });
    let shipper = Shipper::new(&url, test_key(), options(spool.path())).unwrap();

    let started = tokio::time::Instant::now();
    let outcome = shipper.ship(&records(4)).await.expect("delivered on retry");
    let waited = started.elapsed();
    assert_eq!((outcome.inserted, outcome.retries), (4, 2));
    // Backoff before retry 1 is 250..=500 ms and before retry 2 500..=1000 ms.
    assert!(
        (Duration::from_millis(750)..=Duration::from_millis(1600)).contains(&waited),
        "waited {waited:?}"
    );
    collector.seen(|s| {
        assert_eq!(s.nonces.len(), 3, "three attempts, each signed");
        let distinct: HashSet<&String> = s.nonces.iter().collect();
        assert_eq!(distinct.len(), 3, "a fresh nonce per attempt");
        assert_eq!(s.batches, vec![4]);
        assert_eq!(s.rejected, 0);
    });
    assert!(spool_files(spool.path()).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_permanent_refusal_spools_everything_and_ship_spool_delivers_it_later() {
    let spool = tempfile::tempdir().unwrap();
    let (collector, url) = start_collector(test_key().verifying_key()).await;
    collector.seen(|s| {
        s.script
            .push_back((StatusCode::UNAUTHORIZED, "signature does not verify"))
    });
    let shipper = Shipper::new(
        &url,
        test_key(),
        ShipOptions {
            max_batch_records: 2,
            ..options(spool.path())
        },
    )
    .unwrap();

    let error = shipper.ship(&records(5)).await.expect_err("refused");
    let message = error.to_string();
    let ShipError::Spooled {
        cause,
        delivered,
        spooled,
        records_spooled,
    } = error
    else {
        panic!("expected Spooled, got {message}");
    };
    assert_eq!(
        cause,
        SendError::Rejected {
            status: 401,
            detail: "signature does not verify".into()
        }
    );
    assert_eq!(delivered.records, 0);
    assert_eq!(records_spooled, 5);
    // After a refusal of the agent itself the other two batches are spooled without a try.
    assert_eq!(spooled.len(), 3);
    assert_eq!(spool_files(spool.path()).unwrap(), spooled);
    assert!(message.contains("signature does not verify"), "{message}");
    for path in &spooled {
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
    collector.seen(|s| {
        assert_eq!(s.nonces.len(), 1, "a 401 is not retried");
        assert!(s.stored.is_empty());
    });

    let delivery = shipper.ship_spool(spool.path()).await.unwrap();
    assert!(delivery.is_complete(), "{delivery:?}");
    assert_eq!((delivery.records, delivery.inserted()), (5, 5));
    assert_eq!(delivery.delivered.len(), 3);
    assert!(spool_files(spool.path()).unwrap().is_empty());
    collector.seen(|s| {
        assert_eq!(s.stored.len(), 5);
        assert_eq!(s.batches, vec![2, 2, 1], "oldest spool file first");
    });
}

#[tokio::test(start_paused = true)]
async fn a_bad_batch_is_spooled_and_the_next_batches_still_go() {
    let spool = tempfile::tempdir().unwrap();
    let (collector, url) = start_collector(test_key().verifying_key()).await;
    collector.seen(|s| {
        s.script
            .push_back((StatusCode::BAD_REQUEST, "/0/metrics: invalid type"))
    });
    let shipper = Shipper::new(
        &url,
        test_key(),
        ShipOptions {
            max_batch_records: 2,
            ..options(spool.path())
        },
    )
    .unwrap();
    let error = shipper
        .ship(&records(5))
        .await
        .expect_err("one batch refused");
    assert_eq!(error.delivered().records, 3);
    assert_eq!(error.spooled().len(), 1);
    assert!(error.to_string().contains("/0/metrics: invalid type"));
    collector.seen(|s| assert_eq!(s.batches, vec![2, 1]));
}

#[tokio::test(start_paused = true)]
async fn a_collector_that_is_down_gets_the_batch_spooled_until_it_is_up() {
    let spool = tempfile::tempdir().unwrap();
    let down = closed_port_url().await;
    let shipper = Shipper::new(&down, test_key(), options(spool.path())).unwrap();
    let started = tokio::time::Instant::now();
    let error = shipper.ship(&records(2)).await.expect_err("down");
    assert!(
        matches!(
            &error,
            ShipError::Spooled {
                cause: SendError::Unreachable { attempts: 5, .. },
                ..
            }
        ),
        "{error}"
    );
    // Four backoffs of at least 250, 500, 1000 and 2000 ms.
    assert!(started.elapsed() >= Duration::from_millis(3750));
    let files = spool_files(spool.path()).unwrap();
    assert_eq!(files.len(), 1);
    let spooled: Vec<SessionReport> =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(
        spooled,
        records(2),
        "the spool file holds the records whole"
    );

    let (collector, url) = start_collector(test_key().verifying_key()).await;
    let later = Shipper::new(&url, test_key(), options(spool.path())).unwrap();
    let delivery = later.ship_spool(spool.path()).await.unwrap();
    assert!(delivery.is_complete(), "{delivery:?}");
    assert!(spool_files(spool.path()).unwrap().is_empty());
    collector.seen(|s| assert_eq!(s.stored.len(), 2));
}

#[tokio::test(start_paused = true)]
async fn ship_spool_keeps_files_the_collector_refuses() {
    let spool = tempfile::tempdir().unwrap();
    let batch = serde_json::to_value(records(1)).unwrap();
    let path = spool_batch(spool.path(), &batch).unwrap();
    // The collector does not know this key: 403, and the file stays.
    let (collector, url) = start_collector(SigningKey::from_bytes(&[9; 32]).verifying_key()).await;
    let shipper = Shipper::new(&url, test_key(), options(spool.path())).unwrap();
    let delivery = shipper.ship_spool(spool.path()).await.unwrap();
    assert!(!delivery.is_complete());
    assert!(matches!(
        delivery.failed.as_slice(),
        [(p, SendError::Rejected { status: 403, .. })] if *p == path
    ));
    assert!(path.exists());
    collector.seen(|s| assert!(s.stored.is_empty()));
}

async fn lvt(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(LVT).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_writes_a_pair_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("agent1");
    let prefix_text = prefix.display().to_string();

    let out = lvt(args(&["keygen", "--out", &prefix_text])).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let secret = sign::read_signing_key(&dir.path().join("agent1.key")).unwrap();
    let public_line = std::fs::read_to_string(dir.path().join("agent1.pub")).unwrap();
    assert_eq!(
        sign::parse_verifying_key(&public_line).unwrap(),
        secret.verifying_key()
    );
    assert!(
        stdout.contains(&sign::key_id(&secret.verifying_key())),
        "{stdout}"
    );
    assert!(stdout.contains(public_line.trim()), "{stdout}");
    assert!(stdout.contains("agent1.key") && stdout.contains("agent1.pub"));

    let out = lvt(args(&["keygen", "--out", &prefix_text])).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(
        sign::read_signing_key(&dir.path().join("agent1.key")).unwrap(),
        secret,
        "the existing key is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_ships_its_record_and_ship_spool_resends_spooled_batches() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("lvt.key");
    let (secret, _) = sign::write_keypair(dir.path()).unwrap();
    assert_eq!(secret, key_path);
    let key = sign::read_signing_key(&key_path).unwrap();
    let (collector, url) = start_collector(key.verifying_key()).await;
    let spool = dir.path().join("spool");
    let key_text = key_path.display().to_string();
    let spool_text = spool.display().to_string();

    // --collector without --key is a usage error, before any session runs.
    let out = lvt(args(&["probe", "127.0.0.1:1", "--collector", &url])).await;
    assert_eq!(out.status.code(), Some(2));

    let (orch, stop) = common::start_sim(
        Profile {
            capacity: 1,
            ..Profile::default()
        },
        true,
    )
    .await;
    let out = lvt(args(&[
        "probe",
        &orch.uri,
        "--duration",
        "2s",
        "--json",
        "--collector",
        &url,
        "--key",
        &key_text,
        "--spool",
        &spool_text,
    ]))
    .await;
    stop.cancel();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let record: SessionReport = serde_json::from_slice(&out.stdout).expect("JSON record");
    assert!(
        stderr.contains(&format!(
            "shipped 1 record(s) to {url} (inserted 1, duplicates 0)"
        )),
        "{stderr}"
    );
    collector.seen(|s| {
        assert_eq!(s.rejected, 0);
        assert_eq!(s.stored, HashSet::from([record.session_id.clone()]));
    });
    assert!(!spool.exists(), "nothing was spooled");

    // A batch left in the spool by an earlier failure is re-sent and removed.
    let path = spool_batch(&spool, &serde_json::to_value(records(2)).unwrap()).unwrap();
    let out = lvt(args(&[
        "ship-spool",
        &spool_text,
        "--collector",
        &url,
        "--key",
        &key_text,
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("shipped 2 record(s) from 1 file(s)"),
        "{stderr}"
    );
    assert!(!path.exists());
    collector.seen(|s| assert_eq!(s.stored.len(), 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_shipment_turns_a_passing_probe_into_exit_1_and_spools() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, _) = sign::write_keypair(dir.path()).unwrap();
    // The collector knows another key: 403, a permanent error, so no backoff is waited for.
    let (collector, url) = start_collector(SigningKey::from_bytes(&[9; 32]).verifying_key()).await;
    let spool = dir.path().join("spool");
    let (orch, stop) = common::start_sim(
        Profile {
            capacity: 1,
            ..Profile::default()
        },
        true,
    )
    .await;
    let out = lvt(args(&[
        "probe",
        &orch.uri,
        "--duration",
        "1s",
        "--collector",
        &url,
        "--key",
        &key_path.display().to_string(),
        "--spool",
        &spool.display().to_string(),
    ]))
    .await;
    stop.cancel();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let files = spool_files(&spool).unwrap();
    assert_eq!(files.len(), 1, "{stderr}");
    assert!(stderr.contains(&files[0].display().to_string()), "{stderr}");
    assert!(stderr.contains("(403)"), "{stderr}");
    collector.seen(|s| assert!(s.stored.is_empty()));
}

/// A two-session scenario against `uri` with one threshold.
fn run_scenario(dir: &Path, uri: &str, threshold: &str) -> std::path::PathBuf {
    let toml = format!(
        r#"id = "ship-run"
version = "1.0.0"
description = "lvt run --collector test"
pipeline = "live-video-to-video"
model_id = "noop"

[[prompts]]
id = "calm-lake"
complexity = "low"
params = {{ prompt = "a calm lake at dawn" }}

[input]
width = 256
height = 256
fps = 15
segment_ms = 1000
bitrate_kbps = 300

[session]
duration_s = 2

[targets]
source = "explicit"
uris = ["{uri}"]

[load]
executor = "closed"
sessions_per_target = 2
concurrency = 2

[[thresholds]]
expr = "{threshold}"
"#
    );
    let path = dir.join("ship-run.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_ships_every_session_and_a_failed_threshold_keeps_exit_99() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, _) = sign::write_keypair(dir.path()).unwrap();
    let key = sign::read_signing_key(&key_path).unwrap();
    let (collector, url) = start_collector(key.verifying_key()).await;
    let (orch, stop) = common::start_sim(
        Profile {
            capacity: 2,
            ..Profile::default()
        },
        true,
    )
    .await;
    let key_text = key_path.display().to_string();
    let spool = dir.path().join("spool");
    let spool_text = spool.display().to_string();

    let scenario = run_scenario(dir.path(), &orch.uri, "failure_rate < 0.5");
    let out_dir = dir.path().join("out");
    let out = lvt(args(&[
        "run",
        &scenario.display().to_string(),
        "--out",
        &out_dir.display().to_string(),
        "--progress",
        "off",
        "--collector",
        &url,
        "--key",
        &key_text,
        "--spool",
        &spool_text,
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "shipped 2 record(s) to {url} (inserted 2, duplicates 0)"
        )),
        "{stderr}"
    );
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("run.json")).unwrap()).unwrap();
    let ids: HashSet<String> = run["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["report"]["session_id"].as_str().unwrap().to_owned())
        .collect();
    collector.seen(|s| assert_eq!(s.stored, ids));

    // A threshold that fails, and a collector that refuses the key: 99 stays 99.
    let other = start_collector(SigningKey::from_bytes(&[9; 32]).verifying_key()).await;
    let scenario = run_scenario(dir.path(), &orch.uri, "failure_rate > 0.5");
    let out = lvt(args(&[
        "run",
        &scenario.display().to_string(),
        "--out",
        &dir.path().join("out2").display().to_string(),
        "--progress",
        "off",
        "--collector",
        &other.1,
        "--key",
        &key_text,
        "--spool",
        &spool_text,
    ]))
    .await;
    stop.cancel();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(99), "{stderr}");
    assert!(stderr.contains("shipping to"), "{stderr}");
    // Each session is shipped as it ends, so its batch is refused and spooled on its own, or
    // with the other if both ended together: the two records are spooled either way.
    let spooled: usize = spool_files(&spool)
        .unwrap()
        .iter()
        .map(|path| {
            let batch: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            batch.as_array().map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(spooled, 2, "{stderr}");
}
