//! The distributed path with Kafka (issue 13, section 7): three regional agents ship their
//! results to a Kafka-protocol broker (Tansu) and their heartbeats to a collector; two
//! `lvt-collector` replicas consume the topic as one group and write one ClickHouse (PyPI's chdb
//! behind `ci/clickhouse-adapter`). Both tests check that every region's results are in
//! `/v1/sla/compliance` as either replica serves it, that every agent's heartbeat shows `ok` from
//! the replica it does not talk to, and that nothing is stored twice. Then:
//!
//! - replica A killed with `kill -9` and restarted with its static group membership
//!   (`instance_id`) while B goes on: every region's later records are stored;
//! - replica A killed and left down, with dynamic membership, while each replica holds one of
//!   the two partitions: B ends up holding both (Tansu 0.6.0 needs the collector's orphan rule
//!   for that, docs/collector.md "A stalled consumer");
//! - the broker hangs for 30 s (SIGSTOP: its sockets stay open and nothing answers): the agents
//!   spool what it does not acknowledge within their `ship_timeout_s` and drain it once it
//!   answers again.
//!
//! Each test ends with the agents stopped and every session they ran stored exactly once, with
//! the group's lag at 0.

#![cfg(feature = "kafka")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::agents::{
    FleetRepository, admin_address, agent_keys, all_results, get_json, serve_fleet_repository,
    sigterm, spawn_agent, stored_once, wait_for, write_fleet_agent_config,
};
use common::{collector_beside, start_sim};
use lvt_sim::Profile;
use lvt_testkit::clickhouse as test_adapter;
use lvt_testkit::kafka::TestBroker;
use serde_json::Value;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];
const TOPIC: &str = "lvt-results";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `lvt-collector` replica on `port`, consuming the topic and writing ClickHouse, with the
/// settings `dir/{name}.toml`.
fn start_replica(dir: &Path, name: &str, clickhouse: &str, port: u16) -> (Child, String) {
    let child = common::dies_with_test(&mut Command::new(collector_beside(LVT)))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--store")
        .arg(format!("clickhouse:{clickhouse}"))
        .arg("--config")
        .arg(dir.join(format!("{name}.toml")))
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{name}.log")))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

async fn regions_in_grid(collector: &str) -> std::collections::BTreeSet<String> {
    let Ok(response) = reqwest::get(format!("{collector}/v1/sla/compliance?grain=window")).await
    else {
        return std::collections::BTreeSet::new();
    };
    let grid: Value = response.json().await.unwrap_or_default();
    grid["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["region"].as_str().map(str::to_owned))
        .collect()
}

/// Everything one Kafka fleet test runs, started and checked up to the point where the tests
/// part: both replicas serving every region, every agent `ok`.
struct Fleet {
    dir: tempfile::TempDir,
    tansu: TestBroker,
    clickhouse: String,
    replicas: Vec<(Child, String, u16)>,
    agents: Vec<(Child, std::path::PathBuf, String)>,
    stop_sim: tokio_util::sync::CancellationToken,
    _repository: FleetRepository,
}

impl Fleet {
    /// Starts the fleet; `replica_extra` is added to each replica's `[kafka]` table (with
    /// `{name}` replaced by the replica's name) and `agent_extra` to each agent's config.
    async fn start(replica_extra: &str, agent_extra: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let tansu = TestBroker::start();
        tansu.create_topics(&[TOPIC], 2).await;
        let clickhouse = test_adapter::url();
        let (orch, stop_sim) = start_sim(
            Profile {
                capacity: 8,
                ..Profile::default()
            },
            true,
        )
        .await;

        let repository = serve_fleet_repository(&dir, std::slice::from_ref(&orch.uri));

        let settings = agent_keys(&dir, &REGIONS);
        let mut replicas = Vec::new();
        for name in ["replica-a", "replica-b"] {
            std::fs::write(
                dir.join(format!("{name}.toml")),
                format!(
                    "{settings}\n[kafka]\nbrokers = \"{}\"\nresults_topic = \"{TOPIC}\"\ngroup_id = \"lvt-fleet\"\n{}",
                    tansu.address(),
                    replica_extra.replace("{name}", name),
                ),
            )
            .unwrap();
            let port = free_port();
            let (child, url) = start_replica(&dir, name, &clickhouse, port);
            replicas.push((child, url, port));
        }
        let (a, b) = (replicas[0].1.clone(), replicas[1].1.clone());
        let log_b = dir.join("replica-b.log");
        wait_for(30, "both replicas serving", &log_b, || async {
            let up =
                |url: String| async move { reqwest::get(format!("{url}/healthz")).await.is_ok() };
            (up(a.clone()).await && up(b.clone()).await).then_some(())
        })
        .await;

        // Results to Kafka; heartbeats to replica B.
        eprintln!("fleet-kafka: replicas up; starting the agents");
        let mut agents = Vec::new();
        for region in REGIONS {
            let config = write_fleet_agent_config(
                &dir,
                region,
                &b,
                &repository.url,
                &format!(
                    "{agent_extra}\n[kafka]\nbrokers = \"{}\"\ntopic = \"{TOPIC}\"\n",
                    tansu.address()
                ),
            );
            let log = dir.join(format!("agent-{region}.log"));
            let child = spawn_agent(&config, &log);
            let admin = admin_address(&log).await;
            agents.push((child, log, admin));
        }
        let fleet = Self {
            dir: temp,
            tansu,
            clickhouse,
            replicas,
            agents,
            stop_sim,
            _repository: repository,
        };

        // Every region's results, from either replica: they share one ClickHouse.
        eprintln!("fleet-kafka: waiting for the regions in both replicas' grids");
        for replica in [fleet.a(), fleet.b()] {
            wait_for(
                50,
                "all three regions in the compliance grid",
                fleet.agent_log(),
                || async {
                    let regions = regions_in_grid(replica).await;
                    REGIONS.iter().all(|r| regions.contains(*r)).then_some(())
                },
            )
            .await;
        }
        // Heartbeats went to B; A reads them from the shared store. On a loaded machine a
        // heartbeat can come late for a moment (stale after 3 intervals of 1 s), so wait for all
        // three to be `ok` at once.
        wait_for(
            30,
            "every agent ok, seen from A",
            fleet.agent_log(),
            || async {
                let listed = get_json(format!("{}/v1/agents", fleet.a())).await;
                let ok = listed["agents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|agent| agent["status"] == "ok")
                    .count();
                (ok == 3).then_some(())
            },
        )
        .await;
        fleet
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn a(&self) -> &str {
        &self.replicas[0].1
    }

    fn b(&self) -> &str {
        &self.replicas[1].1
    }

    fn log_b(&self) -> std::path::PathBuf {
        self.dir().join("replica-b.log")
    }

    fn agent_log(&self) -> &Path {
        &self.agents[0].1
    }

    fn kill_replica_a(&mut self) {
        eprintln!("fleet-kafka: killing replica A");
        let replica = &mut self.replicas[0].0;
        replica.kill().unwrap();
        replica.wait().unwrap();
    }

    /// Waits until `records after` `since` (unix ms) from every region are stored, read via B.
    async fn wait_for_every_region_after(&self, since: i64, what: &str) {
        wait_for(50, what, &self.log_b(), || async {
            let stored = all_results(self.b()).await;
            REGIONS
                .iter()
                .all(|region| {
                    stored.iter().any(|item| {
                        item["record"]["region"] == *region
                            && item["record"]["started_at_unix_ms"].as_i64() > Some(since)
                    })
                })
                .then_some(())
        })
        .await;
    }

    /// Stops the agents with SIGTERM (each exits 0 with an empty spool) and gives how many
    /// sessions they ran together, from their last words.
    async fn stop_agents(&mut self) -> u64 {
        let mut sessions = 0;
        for (child, log, _) in self.agents.drain(..) {
            let exit = tokio::task::spawn_blocking(move || sigterm(child))
                .await
                .unwrap();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert_eq!(exit.code(), Some(0), "{text}");
            assert!(
                text.contains("the spool holds 0 batch(es)"),
                "every batch delivered:\n{text}"
            );
            sessions += text
                .lines()
                .find_map(|line| line.strip_prefix("lvt: agent stopped after "))
                .and_then(|rest| rest.split(" run(s) and ").nth(1))
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("a session count in the agent's log:\n{text}"));
        }
        sessions
    }

    /// Stops the agents; then every session they ran is stored once, and the group has read the
    /// topic to its end.
    async fn stop_agents_and_find_every_session(&mut self) {
        let sessions = self.stop_agents().await;
        wait_for(30, "every session stored", &self.log_b(), || async {
            let lag = metric_sum(self.b(), "lvt_collector_kafka_lag").await;
            let stored = stored_once(self.b()).await;
            (lag == Some(0) && u64::try_from(stored).ok() == Some(sessions)).then_some(())
        })
        .await;
    }

    fn stop(mut self) {
        for (replica, _, _) in &mut self.replicas {
            let _ = replica.kill();
            let _ = replica.wait();
        }
        self.stop_sim.cancel();
    }
}

fn unix_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `text` without the ANSI colour sequences (`ESC [ ... m`) the collector's log has.
fn without_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for inner in chars.by_ref() {
                if inner == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The sum of a metric's samples (all labels) in a replica's `/metrics`.
async fn metric_sum(replica: &str, name: &str) -> Option<u64> {
    let text = reqwest::get(format!("{replica}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: u64 = rest.rsplit(' ').next()?.trim().parse().ok()?;
        *found.get_or_insert(0) += value;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_and_restarted_with_its_instance_id_loses_nothing() {
    // Static membership: A restarted with its instance id takes its partitions back at once.
    let mut fleet = Fleet::start("instance_id = \"{name}\"\n", "").await;
    // Replica A killed with -9: B goes on; A restarted joins the group again, and every
    // region's records after the kill are stored.
    fleet.kill_replica_a();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    eprintln!("fleet-kafka: restarting replica A");
    let port_a = fleet.replicas[0].2;
    let (restarted, _) = start_replica(fleet.dir(), "replica-a", &fleet.clickhouse, port_a);
    fleet.replicas[0].0 = restarted;
    let killed_at = unix_ms();
    fleet
        .wait_for_every_region_after(killed_at, "records after the kill from every region, via B")
        .await;
    fleet.stop_agents_and_find_every_session().await;
    fleet.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_hung_for_30_s_delays_results_and_loses_none() {
    // Each batch the broker does not acknowledge within 3 s goes to the spool, drained every
    // second. The replicas' group sessions outlast the hang (45 s, Kafka's default), so the
    // group resumes as it was instead of forming again.
    let mut fleet = Fleet::start(
        "session_timeout_s = 45\n",
        "ship_timeout_s = 3\nspool_drain_s = 1\n",
    )
    .await;

    // The broker hangs for 30 s: every agent spools.
    eprintln!("fleet-kafka: pausing the broker for 30 s");
    fleet.tansu.pause();
    let paused = std::time::Instant::now();
    for (_, log, admin) in &fleet.agents {
        wait_for(
            28,
            "a spooled batch while the broker hangs",
            log,
            || async {
                let status = get_json(format!("{admin}/status")).await;
                (status["spool"]["batches"].as_u64().unwrap_or(0) >= 1).then_some(())
            },
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(30).saturating_sub(paused.elapsed())).await;
    fleet.tansu.resume();
    let resumed_at = unix_ms();
    eprintln!("fleet-kafka: the broker answers again; waiting for the spools to drain");
    for (_, log, admin) in &fleet.agents {
        wait_for(40, "the spool drained", log, || async {
            let status = get_json(format!("{admin}/status")).await;
            (status["spool"]["batches"] == 0).then_some(())
        })
        .await;
    }
    fleet
        .wait_for_every_region_after(resumed_at, "records after the outage from every region")
        .await;

    fleet.stop_agents_and_find_every_session().await;
    fleet.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_and_left_down_hands_its_partition_to_the_other() {
    // Dynamic membership: the broker expires the dead member after the session timeout (10 s).
    let mut fleet = Fleet::start("", "").await;
    wait_for(
        30,
        "each replica holding a partition",
        &fleet.log_b(),
        || async {
            let a = metric_sum(fleet.a(), "lvt_collector_kafka_assigned_partitions").await;
            let b = metric_sum(fleet.b(), "lvt_collector_kafka_assigned_partitions").await;
            (a == Some(1) && b == Some(1)).then_some(())
        },
    )
    .await;
    fleet.kill_replica_a();
    let killed = std::time::Instant::now();
    // The agents key their messages by their signing keys, which are new in every run, so all
    // three may land in one partition, and A's may get nothing: nothing would then be lost and
    // nothing would make B take it. One message that is not a result batch, written to each
    // partition, gives A's partition something unread whichever one A held.
    for partition in 0..2 {
        fleet
            .tansu
            .produce_to(TOPIC, partition, b"not a result batch")
            .await;
    }
    // Tansu 0.6.0 rebalances after expiring A but leaves A's share assigned to it; B's orphan
    // rule (docs/collector.md, "A stalled consumer") sees that partition unread for three
    // session timeouts, rejoins, and takes it. About 55 s here on an idle machine, over 85 s
    // once beside the rest of the suite; the bound leaves room for a loaded machine within the
    // four minutes .config/nextest.toml gives this test.
    wait_for(180, "B holding both partitions", &fleet.log_b(), || async {
        let held = metric_sum(fleet.b(), "lvt_collector_kafka_assigned_partitions").await;
        (held == Some(2)).then_some(())
    })
    .await;
    eprintln!(
        "fleet-kafka: B holds both partitions {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    // B read both partitions: it skipped the message written to each.
    wait_for(
        30,
        "B skipping the message on each partition",
        &fleet.log_b(),
        || async {
            let log = without_ansi(&std::fs::read_to_string(fleet.log_b()).unwrap_or_default());
            (0..2)
                .all(|partition| {
                    log.lines().any(|line| {
                        line.contains("Kafka message skipped.")
                            && line.contains(&format!("partition={partition} "))
                    })
                })
                .then_some(())
        },
    )
    .await;
    fleet.stop_agents_and_find_every_session().await;
    fleet.stop();
}
