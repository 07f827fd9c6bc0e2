//! The analytics event emitter end to end into a real collector (`lvt_collector` on
//! 127.0.0.1:0 with a SQLite file): envelopes are signed, stored and readable from
//! `GET /v1/events`; a 503, a lost acknowledgement and a collector restart are retried with
//! fresh signatures, and nothing is lost or stored twice.
//!
//! A small proxy sits between the emitter and the collector so that the test decides what each
//! attempt meets.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lvt_collector::app::{open_store, system_clock};
use lvt_collector::config::{Settings, StoreSpec};
use lvt_collector::server::serve;
use lvt_gateway::gateway::events::{EmitterConfig, spawn_emitter};
use lvt_gateway::gateway::observe::{
    DiscoveredCandidate, Observation, OrchestratorInfo, StreamContext,
};
use lvt_schema::events::{EventEnvelope, EventView, TraceKind};
use lvt_schema::sign::{self, SigningKey};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn gateway_key() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}

fn settings() -> Settings {
    let line = sign::public_key_line(&gateway_key().verifying_key());
    let text = format!(
        "[[agents]]\nid = \"gateway-1\"\nregion = \"eu-west\"\npublic_key = \"{}\"\n",
        line.trim()
    );
    Settings::parse(&text, Path::new("test.toml")).expect("test settings are valid")
}

/// A collector serving one SQLite file until stopped.
struct Collector {
    address: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start(db: &Path) -> Collector {
        let spec: StoreSpec = format!("sqlite:{}", db.display())
            .parse()
            .expect("store spec");
        let store = open_store(&spec).await.expect("open store");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(listener, settings(), store, system_clock(), async {
                let _ = stopped.await;
            })
            .await
            .expect("collector serves");
        });
        Collector {
            address,
            shutdown,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.expect("collector task");
    }
}

/// What the proxy does with one attempt.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Answer 503 without forwarding (an overloaded collector).
    Refuse,
    /// Forward, then answer 503 anyway (the acknowledgement is lost on the way back).
    LoseAnswer,
}

struct ProxyState {
    target: Mutex<Option<String>>,
    actions: Mutex<VecDeque<Action>>,
    /// Attempts finished (answered), for the test to wait on.
    finished: watch::Sender<u32>,
    client: reqwest::Client,
}

async fn proxy_handler(
    State(state): State<Arc<ProxyState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let action = state.actions.lock().expect("lock").pop_front();
    let target = state.target.lock().expect("lock").clone();
    let response = match (action, target) {
        (Some(Action::Refuse), _) => {
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded").into_response()
        }
        // No collector behind the proxy: what a restarting collector looks like.
        (_, None) => (StatusCode::BAD_GATEWAY, "collector down").into_response(),
        (action, Some(target)) => {
            let mut request = state.client.post(format!("{target}/v1/events")).body(body);
            for (name, value) in &headers {
                let name = name.as_str();
                if name.starts_with("lvt-") || name == "content-type" {
                    request = request.header(name, value.as_bytes());
                }
            }
            match request.send().await {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    let text = answer.text().await.unwrap_or_default();
                    if matches!(action, Some(Action::LoseAnswer)) {
                        (StatusCode::SERVICE_UNAVAILABLE, "answer lost").into_response()
                    } else {
                        let status =
                            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                        (status, text).into_response()
                    }
                }
                Err(_) => (StatusCode::BAD_GATEWAY, "collector down").into_response(),
            }
        }
    };
    state.finished.send_modify(|n| *n += 1);
    response
}

struct Proxy {
    url: String,
    state: Arc<ProxyState>,
}

impl Proxy {
    async fn start(target: Option<String>, actions: &[Action]) -> Proxy {
        let state = Arc::new(ProxyState {
            target: Mutex::new(target),
            actions: Mutex::new(actions.iter().copied().collect()),
            finished: watch::Sender::new(0),
            client: reqwest::Client::new(),
        });
        let router = axum::Router::new()
            .route("/v1/events", axum::routing::post(proxy_handler))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Proxy { url, state }
    }

    fn retarget(&self, target: Option<String>) {
        *self.state.target.lock().expect("lock") = target;
    }

    async fn wait_finished(&self, n: u32) {
        let mut rx = self.state.finished.subscribe();
        timeout(WAIT, rx.wait_for(|&count| count >= n))
            .await
            .expect("attempts arrive in time")
            .expect("proxy alive");
    }
}

/// The observations' base time: now, because the collector's retention sweep drops old events
/// when it restarts.
fn at() -> i64 {
    static AT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

fn stream() -> StreamContext {
    StreamContext {
        stream_id: "stream-9".into(),
        request_id: "session-9".into(),
        pipeline: "live-video-to-video".into(),
        model_id: "noop".into(),
    }
}

fn orch(n: u8) -> OrchestratorInfo {
    OrchestratorInfo {
        address: Some(format!("0x{}", hex::encode([n; 20]))),
        url: format!("https://127.0.0.1:{}", 8000 + u16::from(n)),
    }
}

fn first_batch() -> Vec<Observation> {
    vec![
        Observation::DiscoveryResults {
            at_unix_ms: at(),
            candidates: vec![DiscoveredCandidate {
                address: orch(1).address,
                url: orch(1).url,
                latency_ms: 7,
            }],
        },
        Observation::Capabilities {
            at_unix_ms: at(),
            orchestrator: orch(1),
            summary: json!({"capabilities": {"version": "0.8.5"}, "hardware": null}),
        },
        Observation::Trace {
            at_unix_ms: at() + 1,
            stream: stream(),
            kind: "gateway_receive_stream_request",
            orchestrator: None,
        },
        Observation::RunnerEvent {
            at_unix_ms: at() + 2,
            stream: stream(),
            orchestrator: orch(1),
            event: json!({"event": {"type": "status", "state": "ONLINE", "timestamp": at()},
                          "queue_event_type": "ai_stream_events"}),
        },
        Observation::Swap {
            at_unix_ms: at() + 3,
            stream: stream(),
            from: orch(1),
            to: orch(2),
            cause: "no output for 30 s".into(),
        },
    ]
}

fn second_batch() -> Vec<Observation> {
    vec![
        Observation::RunnerEvent {
            at_unix_ms: at() + 4,
            stream: stream(),
            orchestrator: orch(2),
            event: json!({"event": {"type": "error", "message": "boom"},
                          "queue_event_type": "ai_stream_events"}),
        },
        Observation::NoOrchestratorsAvailable {
            at_unix_ms: at() + 5,
            stream: stream(),
            tries: 20,
            message: "no orchestrators available".into(),
        },
        Observation::Trace {
            at_unix_ms: at() + 6,
            stream: stream(),
            kind: "gateway_ingest_stream_closed",
            orchestrator: None,
        },
    ]
}

async fn stored_events(collector_url: &str) -> Vec<Value> {
    let page: Value = reqwest::get(format!("{collector_url}/v1/events?limit=1000"))
        .await
        .expect("get events")
        .json()
        .await
        .expect("events json");
    page["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn events_reach_the_collector_through_503_lost_answers_and_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("events.db");
    let first = Collector::start(&db).await;
    // The first batch meets an overloaded collector, then one that stores it but whose answer
    // is lost, then goes through.
    let proxy = Proxy::start(Some(first.url()), &[Action::Refuse, Action::LoseAnswer]).await;

    let mut config = EmitterConfig::new(proxy.url.clone(), gateway_key(), "lvt-test-gateway");
    config.flush_interval = Duration::from_millis(10);
    config.base_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(100);
    config.seed = Some(7);
    let (sink, observations) = tokio::sync::mpsc::unbounded_channel();
    let emitter = spawn_emitter(observations, config, CancellationToken::new()).expect("emitter");

    for observation in first_batch() {
        sink.send(observation).expect("emitter alive");
    }
    proxy.wait_finished(3).await;

    // The collector restarts: while it is down the next batch fails, then a new process on the
    // same database takes it.
    first.stop().await;
    proxy.retarget(None);
    for observation in second_batch() {
        sink.send(observation).expect("emitter alive");
    }
    proxy.wait_finished(4).await;
    let second = Collector::start(&db).await;
    proxy.retarget(Some(second.url()));

    drop(sink);
    let report = timeout(WAIT, emitter)
        .await
        .expect("emitter drains in time")
        .expect("emitter task");
    assert_eq!(report.observations, 8);
    assert_eq!(report.envelopes, 8);
    assert_eq!(report.batches, 2);
    assert_eq!(report.dropped, 0);
    assert_eq!(
        (report.stored, report.duplicates),
        (3, 5),
        "the retry after the lost answer found the first batch stored: {report:?}"
    );
    assert!(report.retries >= 3, "{report:?}");

    let rows = stored_events(&second.url()).await;
    assert_eq!(rows.len(), 8, "nothing lost, nothing twice");
    let ids: HashSet<String> = rows
        .iter()
        .map(|row| row["event"]["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 8);
    assert!(rows.iter().all(|row| row["kept_aside_reason"].is_null()));

    let envelopes: Vec<EventEnvelope> = rows
        .iter()
        .map(|row| serde_json::from_value(row["event"].clone()).expect("an envelope"))
        .collect();
    let families: Vec<&str> = envelopes.iter().map(|e| e.family.as_str()).collect();
    assert_eq!(
        families,
        [
            "discovery_results",
            "network_capabilities",
            "stream_trace",
            "ai_stream_status",
            "stream_trace",
            "ai_stream_events",
            "stream_trace",
            "stream_trace",
        ]
    );
    assert!(envelopes.iter().all(|e| e.gateway == "lvt-test-gateway"));
    let EventView::StreamTrace(swap) = envelopes[4].view().expect("view") else {
        panic!("the fifth event is the swap");
    };
    assert_eq!(swap.kind(), TraceKind::OrchestratorSwap);
    assert_eq!(swap.message.as_deref(), Some("no output for 30 s"));
    assert_eq!(envelopes[4].timestamp_unix_ms(), Some(at() + 3));
    let EventView::StreamTrace(none) = envelopes[6].view().expect("view") else {
        panic!("the seventh event is a trace");
    };
    assert_eq!(none.kind(), TraceKind::GatewayNoOrchestratorsAvailable);

    second.stop().await;
}

#[tokio::test]
async fn a_refused_batch_is_dropped_and_counted_and_shutdown_stops_retrying() {
    let dir = tempfile::tempdir().expect("tempdir");
    let collector = Collector::start(&dir.path().join("events.db")).await;
    // Signed by a key the collector does not know: 401/403, which no retry can change.
    let mut config = EmitterConfig::new(
        collector.url(),
        SigningKey::from_bytes(&[99; 32]),
        "stranger",
    );
    config.flush_interval = Duration::from_millis(10);
    config.seed = Some(1);
    let (sink, observations) = tokio::sync::mpsc::unbounded_channel();
    let emitter = spawn_emitter(observations, config, CancellationToken::new()).expect("emitter");
    for observation in second_batch() {
        sink.send(observation).expect("emitter alive");
    }
    drop(sink);
    let report = timeout(WAIT, emitter)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(report.dropped, 3);
    assert_eq!(report.batches, 0);
    assert!(stored_events(&collector.url()).await.is_empty());

    // A collector that never comes back: after shutdown the emitter makes its drain attempts
    // and gives up instead of hanging.
    let proxy = Proxy::start(None, &[]).await;
    let mut config = EmitterConfig::new(proxy.url.clone(), gateway_key(), "g");
    config.flush_interval = Duration::from_millis(10);
    config.base_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_millis(20);
    config.drain_attempts = 2;
    config.seed = Some(2);
    let shutdown = CancellationToken::new();
    let (sink, observations) = tokio::sync::mpsc::unbounded_channel();
    let emitter = spawn_emitter(observations, config, shutdown.clone()).expect("emitter");
    for observation in second_batch() {
        sink.send(observation).expect("emitter alive");
    }
    proxy.wait_finished(1).await;
    shutdown.cancel();
    let report = timeout(WAIT, emitter)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(report.dropped, 3, "{report:?}");
    assert_eq!(report.batches, 0);
    collector.stop().await;
}
