//! The Kafka consumer against a real Kafka-protocol broker: Tansu, started per test through
//! `ci/tansu --no-install --exit-on-stdin-eof` on a free loopback port (run `ci/setup` once to
//! build it). Topics are created here with rdkafka's AdminClient; batches are produced with
//! rdkafka's producer exactly as an agent would ship them.
//!
//! Each test proves one property of docs/collector.md, "Kafka ingest": consumed results and
//! events are stored and readable while forged and malformed messages are counted and skipped;
//! a consumer killed with `kill -9` and restarted in its group stores every record exactly once;
//! while the store fails nothing is committed, and everything arrives once it recovers; and
//! consumed events feed the organic load like `POST /v1/events`.

#![cfg(feature = "kafka")]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{agent_key, all_results, batch, now_ms, signed, stranger_key};
use lvt_collector::app::{open_store, system_clock};
use lvt_collector::config::{Settings, StoreSpec};
use lvt_collector::kafka::ConsumerOptions;
use lvt_collector::server::serve_with;
use lvt_collector::store::Store;
use lvt_testkit::kafka::TestBroker;
use lvt_testkit::store_double::StoreDouble;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const BINARY: &str = env!("CARGO_BIN_EXE_lvt-collector");
const RESULTS_TOPIC: &str = "lvt-results";
const EVENTS_TOPIC: &str = "livepeer-events";
const PARTITIONS: i32 = 3;
/// How long any awaited condition may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "15000")
        .create()
        .expect("producer")
}

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &[u8],
    headers: &[(&'static str, String)],
) {
    let mut owned = OwnedHeaders::new();
    for (name, text) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(text.as_bytes()),
        });
    }
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(value)
                .headers(owned),
            Duration::from_secs(15),
        )
        .await
        .map_err(|(error, _)| error)
        .expect("produce");
}

/// Produces `records` (a JSON array) as one batch signed by the test agent; `counter` makes the
/// nonce unique. The signature is a day old: the HTTP timestamp window does not apply to Kafka.
async fn produce_batch(producer: &FutureProducer, records: &Value, counter: u64) {
    let (body, headers) = signed(&agent_key(), records, now_ms() - 86_400_000, counter);
    produce(
        producer,
        RESULTS_TOPIC,
        &format!("b{counter}"),
        &body,
        &headers,
    )
    .await;
}

fn envelope(id: &str, family: &str) -> Value {
    json!({
        "id": id,
        "type": family,
        "timestamp": "1732700000000",
        "gateway": "gw-1",
        "data": {"type": "gateway_receive_stream_request", "stream_id": "s-1"}
    })
}

fn settings_text(brokers: &str, group: &str) -> String {
    let line = lvt_schema::sign::public_key_line(&agent_key().verifying_key());
    format!(
        "[[agents]]\nid = \"agent-1\"\npublic_key = \"{}\"\n\n[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\nresults_topic = \"{RESULTS_TOPIC}\"\nevents_topic = \"{EVENTS_TOPIC}\"\n",
        line.trim()
    )
}

fn fast_options() -> ConsumerOptions {
    ConsumerOptions {
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        session_timeout: Duration::from_secs(6),
        ..ConsumerOptions::default()
    }
}

/// A collector served in this process over `store`, consuming from `brokers`.
struct InProcess {
    base: String,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    async fn start(store: Arc<dyn Store>, brokers: &str, group: &str) -> Self {
        let settings = Settings::parse(&settings_text(brokers, group), Path::new("kafka.toml"))
            .expect("settings");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_with(
                listener,
                settings,
                store,
                system_clock(),
                fast_options(),
                async {
                    let _ = stopped.await;
                },
            )
            .await
            .expect("serve");
        });
        Self {
            base,
            client: reqwest::Client::new(),
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.task).await.expect("collector task");
    }
}

async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    match client.get(format!("{base}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The value of the metric line starting with `prefix` (name and labels), 0 when absent.
fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `condition` on the metrics text until it holds; panics with the last text after
/// [`PATIENCE`]. The consumer runs asynchronously, so its effect is observed, not awaited.
async fn wait_for_metrics(
    client: &reqwest::Client,
    base: &str,
    what: &str,
    condition: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = metrics_text(client, base).await;
        if condition(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; metrics:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events(client: &reqwest::Client, base: &str, kept_aside: bool) -> Vec<Value> {
    let page: Value = client
        .get(format!(
            "{base}/v1/events?limit=1000&kept_aside={kept_aside}"
        ))
        .send()
        .await
        .expect("get events")
        .json()
        .await
        .expect("events json");
    page["events"].as_array().cloned().unwrap_or_default()
}

async fn sqlite_store(dir: &Path) -> Arc<dyn Store> {
    let spec: StoreSpec = format!("sqlite:{}", dir.join("lvt.db").display())
        .parse()
        .expect("store spec");
    open_store(&spec).await.expect("open store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_results_and_events_are_stored_and_forgeries_skipped() {
    let tansu = TestBroker::start();
    tansu
        .create_topics(&[RESULTS_TOPIC, EVENTS_TOPIC], PARTITIONS)
        .await;
    let producer = producer(tansu.address());
    for counter in 0..3 {
        let records = batch(&format!("ok{counter}"), 5, now_ms() - 60_000);
        produce_batch(&producer, &records, counter).await;
    }
    let forged_records = batch("forged", 2, now_ms());
    let (body, headers) = signed(&stranger_key(), &forged_records, now_ms(), 10);
    produce(&producer, RESULTS_TOPIC, "stranger", &body, &headers).await;
    let (_, headers) = signed(&agent_key(), &forged_records, now_ms(), 11);
    let altered = serde_json::to_vec(&batch("altered", 2, now_ms())).expect("json");
    produce(&producer, RESULTS_TOPIC, "altered", &altered, &headers).await;
    produce(&producer, RESULTS_TOPIC, "garbage", b"not json", &[]).await;

    // Seven envelopes, one per message as go-livepeer publishes them: five usable, one of an
    // unknown family (kept aside), one a redelivery of an id already sent.
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(envelope(&format!("e{i}"), "stream_trace"));
    }
    sent.push(envelope("e-future", "a_future_family"));
    sent.push(envelope("e0", "stream_trace"));
    for (i, event) in sent.iter().enumerate() {
        let value = serde_json::to_vec(event).expect("json");
        produce(&producer, EVENTS_TOPIC, &format!("gw-{i}"), &value, &[]).await;
    }
    produce(&producer, EVENTS_TOPIC, "bad", b"{\"type\": 1}", &[]).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let collector = InProcess::start(sqlite_store(dir.path()).await, tansu.address(), "g1").await;
    let text = wait_for_metrics(&collector.client, &collector.base, "every message", |text| {
        let results = ["stored", "unknown_key", "bad_signature", "malformed"]
            .map(|outcome| {
                metric(
                    text,
                    &format!("lvt_collector_kafka_messages_total{{kind=\"results\",outcome=\"{outcome}\"}}"),
                )
            })
            .iter()
            .sum::<u64>();
        let events = ["stored", "malformed"]
            .map(|outcome| {
                metric(
                    text,
                    &format!("lvt_collector_kafka_messages_total{{kind=\"events\",outcome=\"{outcome}\"}}"),
                )
            })
            .iter()
            .sum::<u64>();
        results == 6 && events == 8
    })
    .await;
    for (labels, expected) in [
        ("kind=\"results\",outcome=\"stored\"", 3),
        ("kind=\"results\",outcome=\"unknown_key\"", 1),
        ("kind=\"results\",outcome=\"bad_signature\"", 1),
        ("kind=\"results\",outcome=\"malformed\"", 1),
        ("kind=\"events\",outcome=\"stored\"", 7),
        ("kind=\"events\",outcome=\"malformed\"", 1),
    ] {
        assert_eq!(
            metric(
                &text,
                &format!("lvt_collector_kafka_messages_total{{{labels}}}")
            ),
            expected,
            "{labels}\n{text}"
        );
    }

    let results = all_results(&collector.client, &collector.base, 100).await;
    let mut ids: Vec<String> = results
        .iter()
        .filter_map(|item| item["record"]["session_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..3)
        .flat_map(|b| (0..5).map(move |i| format!("ok{b}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "only the verified batches are stored");

    let usable = events(&collector.client, &collector.base, false).await;
    let mut usable_ids: Vec<&str> = usable
        .iter()
        .filter_map(|row| row["event"]["id"].as_str())
        .collect();
    usable_ids.sort_unstable();
    assert_eq!(usable_ids, vec!["e0", "e1", "e2", "e3", "e4"], "{usable:?}");
    let aside = events(&collector.client, &collector.base, true).await;
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(metric(&text, "lvt_collector_events_duplicate_total"), 1);
    collector.stop().await;
}

/// The lvt-collector binary, killed with SIGKILL when dropped.
struct Binary {
    child: Child,
    base: String,
}

impl Binary {
    fn spawn(dir: &Path) -> Self {
        let mut child = Command::new(BINARY)
            .args(["--listen", "127.0.0.1:0", "--store"])
            .arg(format!("sqlite:{}", dir.join("lvt.db").display()))
            .arg("--config")
            .arg(dir.join("collector.toml"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn lvt-collector");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let base = line
            .trim()
            .strip_prefix("lvt-collector listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, base }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_mid_stream_stores_every_record_exactly_once() {
    const BATCHES: u64 = 40;
    const PER_BATCH: usize = 5;
    let tansu = TestBroker::start();
    tansu
        .create_topics(&[RESULTS_TOPIC, EVENTS_TOPIC], PARTITIONS)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("collector.toml"),
        settings_text(tansu.address(), "g-restart"),
    )
    .expect("write config");

    // The stream comes in two halves with the kill in between, so the kill is always mid-stream:
    // the second consumer must take over what the first left uncommitted and what came after.
    let producer = producer(tansu.address());
    let (killed, after_kill) = oneshot::channel::<()>();
    let stream = tokio::spawn(async move {
        let mut after_kill = Some(after_kill);
        for counter in 0..BATCHES {
            if counter == BATCHES / 2
                && let Some(signal) = after_kill.take()
            {
                let _ = signal.await;
            }
            let records = batch(&format!("k{counter}"), PER_BATCH, now_ms() - 60_000);
            produce_batch(&producer, &records, counter).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    let client = reqwest::Client::new();
    let first = Binary::spawn(dir.path());
    // Kill it with SIGKILL once it has stored part of the first half.
    let text = wait_for_metrics(&client, &first.base, "part of the stream", |text| {
        metric(text, "lvt_collector_results_stored") >= 20
    })
    .await;
    drop(first);
    let total = BATCHES * PER_BATCH as u64;
    assert!(metric(&text, "lvt_collector_results_stored") <= total / 2);
    let _ = killed.send(());

    let second = Binary::spawn(dir.path());
    stream.await.expect("producer task");
    let text = wait_for_metrics(&client, &second.base, "the whole stream", |text| {
        metric(text, "lvt_collector_results_stored") >= total
    })
    .await;
    assert_eq!(
        metric(&text, "lvt_collector_results_stored"),
        total,
        "{text}"
    );
    let results = all_results(&client, &second.base, 1000).await;
    let mut ids: Vec<String> = results
        .iter()
        .filter_map(|item| item["record"]["session_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, total, "every record once, none lost");
    assert_eq!(results.len() as u64, total, "nothing stored twice");
}

/// The offsets the group has committed on `topic`, by partition; `None` for none committed.
fn committed(brokers: &str, group: &str, topic: &str) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("offset reader");
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition(topic, partition);
    }
    let offsets = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    (0..PARTITIONS)
        .map(|partition| {
            match offsets
                .find_partition(topic, partition)
                .map(|element| element.offset())
            {
                Some(Offset::Offset(offset)) => Some(offset),
                _ => None,
            }
        })
        .collect()
}

/// The end offset of every partition of `topic`, summed: how many messages it holds.
fn end_offsets_sum(brokers: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("watermark reader");
    (0..PARTITIONS)
        .map(|partition| {
            consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_store_is_down_nothing_is_committed_and_then_everything_arrives() {
    let tansu = TestBroker::start();
    tansu
        .create_topics(&[RESULTS_TOPIC, EVENTS_TOPIC], PARTITIONS)
        .await;
    let producer = producer(tansu.address());
    for counter in 0..4 {
        let records = batch(&format!("d{counter}"), 5, now_ms() - 60_000);
        produce_batch(&producer, &records, counter).await;
    }
    for i in 0..6 {
        let value = serde_json::to_vec(&envelope(&format!("ev{i}"), "stream_trace")).expect("json");
        produce(&producer, EVENTS_TOPIC, &format!("k{i}"), &value, &[]).await;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(StoreDouble::with_events(sqlite_store(dir.path()).await));
    store.down.store(true, Ordering::SeqCst);
    let collector = InProcess::start(store.clone(), tansu.address(), "g-outage").await;
    wait_for_metrics(
        &collector.client,
        &collector.base,
        "failed writes",
        |text| metric(text, "lvt_collector_kafka_store_failures_total") >= 3,
    )
    .await;
    let brokers = tansu.address().to_owned();
    let (results_committed, events_committed) = tokio::task::spawn_blocking(move || {
        (
            committed(&brokers, "g-outage", RESULTS_TOPIC),
            committed(&brokers, "g-outage", EVENTS_TOPIC),
        )
    })
    .await
    .expect("offset task");
    assert!(
        results_committed
            .iter()
            .chain(&events_committed)
            .all(Option::is_none),
        "nothing is committed while the store is down: {results_committed:?} {events_committed:?}"
    );
    assert!(
        all_results(&collector.client, &collector.base, 100)
            .await
            .is_empty()
    );

    store.down.store(false, Ordering::SeqCst);
    let text = wait_for_metrics(&collector.client, &collector.base, "recovery", |text| {
        metric(text, "lvt_collector_results_stored") >= 20
            && metric(
                text,
                "lvt_collector_events_stored_total{family=\"stream_trace\"}",
            ) >= 6
    })
    .await;
    assert_eq!(metric(&text, "lvt_collector_results_stored"), 20, "{text}");
    assert_eq!(
        events(&collector.client, &collector.base, false)
            .await
            .len(),
        6
    );

    // The commit follows the write; once it lands, the group's offsets are the topics' ends.
    let brokers = tansu.address().to_owned();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let brokers = brokers.clone();
        let (committed_sum, end_sum) = tokio::task::spawn_blocking(move || {
            let sum = |topic| {
                committed(&brokers, "g-outage", topic)
                    .into_iter()
                    .map(|offset| offset.unwrap_or(0))
                    .sum::<i64>()
            };
            (
                sum(RESULTS_TOPIC) + sum(EVENTS_TOPIC),
                end_offsets_sum(&brokers, RESULTS_TOPIC) + end_offsets_sum(&brokers, EVENTS_TOPIC),
            )
        })
        .await
        .expect("offset task");
        if committed_sum == end_sum {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "committed {committed_sum} of {end_sum} offsets"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_kafka_feed_the_organic_load() {
    const ORCH: &str = "0x1111111111111111111111111111111111111111";
    let tansu = TestBroker::start();
    tansu
        .create_topics(&[RESULTS_TOPIC, EVENTS_TOPIC], PARTITIONS)
        .await;
    let producer = producer(tansu.address());
    let t0 = now_ms() - 120_000;
    let trace = |kind: &str, at: i64, orchestrator: bool| {
        let mut data = json!({
            "type": kind,
            "stream_id": "served",
            "request_id": "req-served",
            "pipeline": "streamdiffusion",
            "timestamp": at,
        });
        if orchestrator {
            data["orchestrator_info"] = json!({"address": ORCH, "url": "https://o.example:8935"});
        }
        json!({
            "id": format!("served/{kind}"),
            "type": "stream_trace",
            "timestamp": at.to_string(),
            "gateway": "0x00000000000000000000000000000000000000aa",
            "data": data,
        })
    };
    // One stream, served and closed, one envelope per message on one partition (keyed by stream)
    // so that they arrive in order, as go-livepeer's per-stream events do.
    for (kind, at, orchestrator) in [
        ("gateway_receive_stream_request", t0, false),
        ("gateway_send_first_ingest_segment", t0 + 200, true),
        ("gateway_receive_first_processed_segment", t0 + 1_400, true),
        ("gateway_ingest_stream_closed", t0 + 60_000, true),
    ] {
        let value = serde_json::to_vec(&trace(kind, at, orchestrator)).expect("json");
        produce(&producer, EVENTS_TOPIC, "served", &value, &[]).await;
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let collector =
        InProcess::start(sqlite_store(dir.path()).await, tansu.address(), "g-organic").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let rows = loop {
        let body: Value = collector
            .client
            .get(format!(
                "{}/v1/sla/compliance?grain=window&test_load=false",
                collector.base
            ))
            .send()
            .await
            .expect("get compliance")
            .json()
            .await
            .expect("compliance json");
        let rows = body["rows"].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no organic cell appeared: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["orchestrator"], ORCH);
    assert_eq!(rows[0]["score"]["sessions"], 1);
    assert_eq!(rows[0]["score"]["startup_success"]["successes"], 1);
    collector.stop().await;
}
