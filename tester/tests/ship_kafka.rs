//! `lvt probe --kafka` end to end: a probe against the simulator ships its record as a signed
//! batch to a real Kafka-protocol broker (Tansu, started by `ci/tansu --no-install
//! --exit-on-stdin-eof`; run `ci/setup` once), and a real collector consuming the results topic
//! stores it. This is the contract between the tester's Kafka transport and the collector's
//! consumer (docs/collector.md, "Kafka ingest").

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use lvt_collector::config::{Settings, StoreSpec};
use lvt_collector::kafka::test_broker::TestBroker;
use lvt_collector::server::{open_store, serve, system_clock};
use lvt_schema::SessionReport;
use lvt_schema::sign;
use lvt_sim::Profile;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");
const TOPIC: &str = "lvt-results";

async fn lvt(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(LVT).args(&args).output().expect("run lvt"))
        .await
        .expect("lvt task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_shipped_through_kafka_is_stored_by_the_collector() {
    let tansu = TestBroker::start();
    tansu.create_topics(&[TOPIC], 1).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let (key_path, _) = sign::write_keypair(dir.path()).expect("keygen");
    let key = sign::read_signing_key(&key_path).expect("key");
    let settings = Settings::parse(
        &format!(
            "[[agents]]\nid = \"agent-k\"\npublic_key = \"{}\"\n\n[kafka]\nbrokers = \"{}\"\nresults_topic = \"{TOPIC}\"\n",
            sign::public_key_line(&key.verifying_key()).trim(),
            tansu.address()
        ),
        Path::new("kafka.toml"),
    )
    .expect("settings");
    let spec: StoreSpec = format!("sqlite:{}", dir.path().join("lvt.db").display())
        .parse()
        .expect("store spec");
    let store = open_store(&spec).await.expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(serve(
        listener,
        settings,
        store,
        system_clock(),
        async move {
            let _ = stopped.await;
        },
    ));

    let (orch, stop) = common::start_sim(
        Profile {
            capacity: 1,
            ..Profile::default()
        },
        true,
    )
    .await;
    let spool = dir.path().join("spool");
    let out = lvt([
        "probe",
        &orch.uri,
        "--duration",
        "2s",
        "--json",
        "--kafka",
        tansu.address(),
        "--key",
        &key_path.display().to_string(),
        "--spool",
        &spool.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec())
    .await;
    stop.cancel();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let record: SessionReport = serde_json::from_slice(&out.stdout).expect("JSON record");
    assert!(
        stderr.contains(&format!(
            "shipped 1 record(s) in 1 batch(es) to kafka://{}/{TOPIC}",
            tansu.address()
        )),
        "{stderr}"
    );
    assert!(!spool.exists(), "nothing was spooled");

    // The collector stores the record once it has consumed the message.
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let page: serde_json::Value = client
            .get(format!("{base}/v1/results"))
            .send()
            .await
            .expect("get results")
            .json()
            .await
            .expect("results json");
        let items = page["results"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            break items;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the collector stored nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["agent_id"], "agent-k");
    assert_eq!(
        stored[0]["record"]["session_id"],
        record.session_id.as_str()
    );

    // --key with neither destination, or both destinations, is a usage error.
    let key_text = key_path.display().to_string();
    let out = lvt(["probe", "127.0.0.1:1", "--key", &key_text]
        .map(str::to_owned)
        .to_vec())
    .await;
    assert_eq!(out.status.code(), Some(2));
    let out = lvt([
        "probe",
        "127.0.0.1:1",
        "--kafka",
        "127.0.0.1:9092",
        "--collector",
        "http://127.0.0.1:1",
        "--key",
        &key_text,
    ]
    .map(str::to_owned)
    .to_vec())
    .await;
    assert_eq!(out.status.code(), Some(2));

    let _ = shutdown.send(());
    collector
        .await
        .expect("collector task")
        .expect("collector served");
}
