//! A real Kafka-protocol broker for tests: Tansu, started through `ci/tansu --no-install
//! --exit-on-stdin-eof` on a free loopback port (`ci/setup` builds it once), and topic creation
//! through rdkafka's AdminClient. The collector's, the gateway's and the tester's Kafka tests all
//! start their broker here, so there is one harness to keep right.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A Tansu broker; dropping it closes its stdin, which stops it (and the test then waits for it).
pub struct TestBroker {
    child: Child,
    /// True between [`TestBroker::pause`] and [`TestBroker::resume`].
    paused: bool,
    stdin: Option<ChildStdin>,
    address: String,
}

impl TestBroker {
    /// Starts a broker with memory storage on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When the broker cannot be started; with "run ci/setup" when Tansu is not installed. A test
    /// without its broker cannot proceed, and failing loudly is how it says so.
    pub fn start() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/tansu");
        let mut child = Command::new(&script)
            .args(["--no-install", "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            panic!("ci/tansu's stdout was not piped");
        };
        let mut line = String::new();
        if BufReader::new(stdout).read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            if status.contains("exit status: 3") {
                panic!("run ci/setup (tansu missing)");
            }
            panic!("ci/tansu exited ({status}) before printing its address");
        }
        Self {
            child,
            paused: false,
            stdin,
            address: line.trim().to_owned(),
        }
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Creates `topics` with `partitions` partitions each (Tansu wants topics made first).
    ///
    /// # Panics
    /// When a topic cannot be created.
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()
            .unwrap_or_else(|e| panic!("admin client for {}: {e}", self.address));
        let topics: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
            .collect();
        let created = admin
            .create_topics(&topics, &AdminOptions::new())
            .await
            .unwrap_or_else(|e| panic!("create topics on {}: {e}", self.address));
        for outcome in created {
            if let Err((topic, code)) = outcome {
                panic!("topic {topic} not created: {code}");
            }
        }
    }
}

impl TestBroker {
    /// Writes one message with `payload` (no key, no headers) to `partition` of `topic` and
    /// waits for the broker's acknowledgement.
    ///
    /// # Panics
    /// When the broker does not acknowledge it within 10 s.
    pub async fn produce_to(&self, topic: &str, partition: i32, payload: &[u8]) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("message.timeout.ms", "10000")
            .create()
            .unwrap_or_else(|e| panic!("producer for {}: {e}", self.address));
        let record = FutureRecord::<(), [u8]>::to(topic)
            .partition(partition)
            .payload(payload);
        producer
            .send(record, std::time::Duration::from_secs(10))
            .await
            .unwrap_or_else(|(e, _)| panic!("producing to {topic}/{partition}: {e}"));
    }
}

impl TestBroker {
    /// Freezes the broker process (SIGSTOP): it keeps its sockets and its in-memory topics but
    /// answers nothing, as a hung or partitioned broker does, until [`TestBroker::resume`].
    ///
    /// # Panics
    /// When the broker process cannot be found or signalled.
    pub fn pause(&mut self) {
        self.signal_broker("STOP")
            .unwrap_or_else(|e| panic!("pausing the broker: {e}"));
        self.paused = true;
    }

    /// Lets a paused broker go on (SIGCONT).
    ///
    /// # Panics
    /// When the broker process cannot be found or signalled.
    pub fn resume(&mut self) {
        self.signal_broker("CONT")
            .unwrap_or_else(|e| panic!("resuming the broker: {e}"));
        self.paused = false;
    }

    /// Sends `signal` to the Tansu process, the child of the `ci/tansu` script.
    fn signal_broker(&self, signal: &str) -> Result<(), String> {
        let script = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{script}/task/{script}/children"))
            .map_err(|e| format!("the children of ci/tansu ({script}): {e}"))?;
        let tansu: Vec<&str> = children
            .split_whitespace()
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|name| name.trim() == "tansu")
            })
            .collect();
        let [pid] = tansu.as_slice() else {
            return Err(format!(
                "not one tansu process under ci/tansu: {children:?}"
            ));
        };
        let status = Command::new("kill")
            .args([&format!("-{signal}"), *pid])
            .status()
            .map_err(|e| format!("kill -{signal} {pid}: {e}"))?;
        if !status.success() {
            return Err(format!("kill -{signal} {pid}: {status}"));
        }
        Ok(())
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // A stopped process would hold SIGTERM pending and never exit.
        if self.paused {
            let _ = self.signal_broker("CONT");
        }
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
