//! The event emitter's Kafka destination end to end: envelopes produced in go-livepeer's layout
//! (one topic, one unsigned envelope per message, key = envelope id) to a real Kafka-protocol
//! broker (Tansu, started by `ci/tansu --no-install --exit-on-stdin-eof`; run `ci/setup` once)
//! are consumed by a real collector and readable from `GET /v1/events`.

#![cfg(feature = "kafka")]

use std::path::Path;
use std::time::Duration;

use lvt_collector::app::{open_store, system_clock};
use lvt_collector::config::{Settings, StoreSpec};
use lvt_collector::server::serve;
use lvt_gateway::gateway::events::{EmitterConfig, spawn_emitter};
use lvt_gateway::gateway::observe::{Observation, OrchestratorInfo, StreamContext};
use lvt_testkit::kafka::TestBroker;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

const EVENTS_TOPIC: &str = "livepeer-gateway-events";
const RESULTS_TOPIC: &str = "lvt-results";
const PATIENCE: Duration = Duration::from_secs(30);

fn settings(brokers: &str) -> Settings {
    let line = lvt_schema::sign::public_key_line(
        &lvt_schema::sign::SigningKey::from_bytes(&[3; 32]).verifying_key(),
    );
    let text = format!(
        "[[agents]]\nid = \"agent-1\"\npublic_key = \"{}\"\n\n[kafka]\nbrokers = \"{brokers}\"\n\
         group_id = \"lvt-gateway-test\"\nresults_topic = \"{RESULTS_TOPIC}\"\n\
         events_topic = \"{EVENTS_TOPIC}\"\n",
        line.trim()
    );
    Settings::parse(&text, Path::new("kafka.toml")).expect("settings")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[tokio::test]
async fn envelopes_produced_to_kafka_are_consumed_by_the_collector() {
    let tansu = TestBroker::start();
    tansu.create_topics(&[RESULTS_TOPIC, EVENTS_TOPIC], 3).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let spec: StoreSpec = format!("sqlite:{}", dir.path().join("lvt.db").display())
        .parse()
        .expect("spec");
    let store = open_store(&spec).await.expect("store");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let collector_url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let collector = tokio::spawn(serve(
        listener,
        settings(tansu.address()),
        store,
        system_clock(),
        async {
            let _ = stopped.await;
        },
    ));

    let mut config = EmitterConfig::kafka(tansu.address(), EVENTS_TOPIC, "lvt-kafka-gw");
    config.flush_interval = Duration::from_millis(10);
    config.seed = Some(5);
    let (sink, observations) = tokio::sync::mpsc::unbounded_channel();
    let emitter = spawn_emitter(observations, config, CancellationToken::new()).expect("emitter");
    let stream = StreamContext {
        stream_id: "kafka-stream".into(),
        request_id: "kafka-session".into(),
        pipeline: "live-video-to-video".into(),
        model_id: "noop".into(),
    };
    let at = now_ms();
    for (offset, kind) in [
        "gateway_receive_stream_request",
        "gateway_send_first_ingest_segment",
        "gateway_receive_first_processed_segment",
    ]
    .into_iter()
    .enumerate()
    {
        sink.send(Observation::Trace {
            at_unix_ms: at + offset as i64,
            stream: stream.clone(),
            kind,
            orchestrator: Some(OrchestratorInfo {
                address: Some("0xabc".into()),
                url: "https://o:8935".into(),
            }),
        })
        .expect("emitter alive");
    }
    drop(sink);
    let report = tokio::time::timeout(PATIENCE, emitter)
        .await
        .expect("emitter drains")
        .expect("emitter task");
    assert_eq!(report.produced, 3, "{report:?}");
    assert_eq!(report.dropped, 0);

    // The collector consumes in its own time: poll its API until the events are there.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let events = loop {
        let page: Value = reqwest::get(format!("{collector_url}/v1/events?family=stream_trace"))
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.len() >= 3 || tokio::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(events.len(), 3, "{events:?}");
    for row in &events {
        assert_eq!(row["event"]["gateway"], "lvt-kafka-gw");
        assert_eq!(row["event"]["data"]["stream_id"], "kafka-stream");
        assert!(row["kept_aside_reason"].is_null());
    }
    let _ = stop.send(());
    collector
        .await
        .expect("collector task")
        .expect("collector ran");
}
