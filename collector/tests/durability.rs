//! The `lvt-collector` binary as a process: configuration errors exit 2, and a `kill -9` in the
//! middle of a stream of batches loses no acknowledged record and stores nothing twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{agent_key, batch, now_ms, post, signed};
use serde_json::{Value, json};
use tokio::sync::watch;

const BINARY: &str = env!("CARGO_BIN_EXE_lvt-collector");

/// Kills the child when dropped, so a failing test leaves no collector behind.
struct Collector {
    child: Child,
    base: String,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let line = lvt_schema::sign::public_key_line(&agent_key().verifying_key());
    std::fs::write(dir.join("agent-1.pub"), line).expect("write key");
    let path = dir.join("collector.toml");
    std::fs::write(
        &path,
        "timestamp_window_s = 300\n\n[[agents]]\nid = \"agent-1\"\nregion = \"eu-west\"\npublic_key_file = \"agent-1.pub\"\n",
    )
    .expect("write config");
    path
}

/// Starts the binary on 127.0.0.1:0 and reads the address it prints.
fn spawn(dir: &Path, config: &Path) -> Collector {
    let mut child = Command::new(BINARY)
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(format!("sqlite:{}", dir.join("lvt.db").display()))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
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
    Collector { child, base }
}

#[test]
fn configuration_errors_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let output = Command::new(BINARY).args(args).output().expect("run");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, stderr) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--store",
        "clickhouse:http://127.0.0.1:1",
    ]);
    // A ClickHouse server that is not there is not a configuration error: the collector
    // cannot proceed, says which store, and exits 1.
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("opening the store: clickhouse:"),
        "{stderr}"
    );

    let (code, stderr) = run(&["--listen", "127.0.0.1:0", "--store", "postgres:x"]);
    assert_eq!(code, Some(2), "{stderr}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "retention_days = 30\nretention_dayz = 3\n").expect("write");
    let db = format!("sqlite:{}", dir.path().join("x.db").display());
    let (code, stderr) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--store",
        &db,
        "--config",
        bad.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:2:", bad.display())),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_batch() {
    const RECORDS_PER_BATCH: usize = 8;
    const KILL_AFTER_ACKS: usize = 15;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let mut collector = spawn(dir.path(), &config);

    // Two client tasks stream batches until the collector dies; each remembers which batches
    // got a 200 and which were sent without one.
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let sent: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (ack_count_tx, mut ack_count) = watch::channel(0usize);
    let ack_count_tx = Arc::new(ack_count_tx);
    let ended = now_ms() - 60_000;
    let mut clients = Vec::new();
    for worker in 0..2usize {
        let url = format!("{}/v1/results", collector.base);
        let (acked, sent, ack_count_tx) = (acked.clone(), sent.clone(), ack_count_tx.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0.. {
                let index = n * 2 + worker;
                let records = batch(
                    &format!("b{index}"),
                    RECORDS_PER_BATCH,
                    ended + index as i64,
                );
                let (bytes, headers) = signed(&agent_key(), &records, now_ms(), index as u64);
                sent.lock().expect("lock").push(index);
                match post(&client, &url, bytes, &headers).await {
                    Ok((200, _, _)) => {
                        let mut acked = acked.lock().expect("lock");
                        acked.push(index);
                        ack_count_tx.send_replace(acked.len());
                    }
                    Ok((status, body, _)) => panic!("unexpected {status}: {body}"),
                    Err(_) => return,
                }
            }
        }));
    }
    ack_count
        .wait_for(|count| *count >= KILL_AFTER_ACKS)
        .await
        .expect("acknowledgements arrive");
    // Child::kill sends SIGKILL: no shutdown code runs.
    collector.child.kill().expect("kill -9");
    collector.child.wait().expect("reap");
    for client in clients {
        client.await.expect("client task");
    }

    let collector = spawn(dir.path(), &config);
    let client = reqwest::Client::new();
    let items = common::all_results(&client, &collector.base, 1000).await;
    let ids: Vec<String> = items
        .iter()
        .map(|item| {
            item["record"]["session_id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    let unique: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), ids.len(), "a record is stored twice");
    let mut per_batch: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let prefix = id.split('-').next().expect("prefix").to_owned();
        *per_batch.entry(prefix).or_default() += 1;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= KILL_AFTER_ACKS);
    for index in &acked {
        assert_eq!(
            per_batch.get(&format!("b{index}")).copied(),
            Some(RECORDS_PER_BATCH),
            "acknowledged batch {index} is not fully stored"
        );
    }
    // A batch in flight at the kill is stored entirely or not at all.
    for (prefix, count) in &per_batch {
        assert_eq!(
            *count, RECORDS_PER_BATCH,
            "batch {prefix} is stored in part"
        );
    }

    // Every batch sent, retried with a fresh nonce, stores nothing twice.
    let url = format!("{}/v1/results", collector.base);
    let sent = sent.lock().expect("lock").clone();
    let mut inserted_on_retry = 0;
    for index in &sent {
        let records = batch(
            &format!("b{index}"),
            RECORDS_PER_BATCH,
            ended + *index as i64,
        );
        let (bytes, headers) = signed(&agent_key(), &records, now_ms(), 1_000_000 + *index as u64);
        let (status, body, _) = post(&client, &url, bytes, &headers).await.expect("retry");
        assert_eq!(status, 200, "{body}");
        if acked.contains(index) {
            assert_eq!(
                body,
                json!({"inserted": 0, "duplicates": RECORDS_PER_BATCH})
            );
        }
        inserted_on_retry += body["inserted"].as_u64().unwrap_or(0);
    }
    let after: Value = client
        .get(format!("{}/metrics", collector.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .map(Value::String)
        .expect("text");
    let expected = ids.len() as u64 + inserted_on_retry;
    assert!(
        after
            .as_str()
            .unwrap_or("")
            .contains(&format!("lvt_collector_results_stored {expected}\n")),
        "{after}"
    );
    assert_eq!(expected as usize, sent.len() * RECORDS_PER_BATCH);
}
