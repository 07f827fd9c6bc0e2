//! Shipping result records through Kafka instead of HTTP (`--kafka BROKERS`).
//!
//! A [`KafkaShipper`] batches records like the HTTP [`Shipper`](super::Shipper)
//! ([`split_batches`](super::split_batches), at most [`KAFKA_MAX_BATCH_BYTES`] per batch so a
//! batch fits Kafka's default 1 MB message limit), signs each batch exactly as for
//! `POST /v1/results`, and produces it as one message to the results
//! topic: the value is the JSON array of records and the four signature headers (`Lvt-Key-Id`,
//! `Lvt-Timestamp`, `Lvt-Nonce`, `Lvt-Signature`) are Kafka headers; the message key is the key
//! id, so one agent's batches stay in order on one partition. A batch counts as delivered when
//! the broker acknowledged it (`acks=all`); the collector's consumer stores it afterwards, once,
//! by `session_id` (docs/collector.md, "Kafka ingest"). A batch the broker did not acknowledge
//! within the request timeout (librdkafka retries within it) is written to the spool, so that
//! `lvt ship-spool` can deliver it later over HTTP.

use std::time::Duration;

use lvt_schema::SessionReport;
use lvt_schema::sign::{self, SigningKey};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use super::spool::drain_spool;
use super::{
    Ack, Delivery, SendError, ShipError, ShipOptions, ShipOutcome, SpoolDelivery, SpoolError,
    encode_batches, send_or_spool,
};

/// The results topic when `--kafka-topic` is not given.
pub const DEFAULT_KAFKA_TOPIC: &str = "lvt-results";
/// Most bytes of JSON in one Kafka batch: under the brokers' default `message.max.bytes` (about
/// 1 MB) with room for headers and framing.
pub const KAFKA_MAX_BATCH_BYTES: usize = 900 * 1024;

/// Why a [`KafkaShipper`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// No broker or no topic was given.
    #[error("{0}")]
    Usage(String),
    /// librdkafka refused the producer configuration.
    #[error("kafka producer ({brokers}): {source}")]
    Client {
        /// The brokers as given.
        brokers: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
}

/// Produces signed batches of records to a Kafka results topic.
pub struct KafkaShipper {
    producer: FutureProducer,
    brokers: String,
    topic: String,
    key: SigningKey,
    key_id: String,
    options: ShipOptions,
}

impl std::fmt::Debug for KafkaShipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key is deliberately left out.
        f.debug_struct("KafkaShipper")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KafkaShipper {
    /// A shipper producing to `topic` on `brokers` (`host:port[,host:port...]`), signing with
    /// `key`; `options` give the batch limits, the spool directory and the request timeout (how
    /// long a batch may wait for the broker's acknowledgement).
    pub fn new(
        brokers: &str,
        topic: &str,
        key: SigningKey,
        options: ShipOptions,
    ) -> Result<Self, KafkaSetupError> {
        if brokers.trim().is_empty() {
            return Err(KafkaSetupError::Usage(
                "--kafka needs host:port of at least one broker".into(),
            ));
        }
        if topic.trim().is_empty() {
            return Err(KafkaSetupError::Usage(
                "--kafka-topic must not be empty".into(),
            ));
        }
        let timeout_ms = options.request_timeout.as_millis().max(1).to_string();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("message.timeout.ms", &timeout_ms)
            .create()
            .map_err(|source| KafkaSetupError::Client {
                brokers: brokers.to_owned(),
                source,
            })?;
        let key_id = sign::key_id(&key.verifying_key());
        Ok(Self {
            producer,
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            key,
            key_id,
            options,
        })
    }

    /// The brokers as given.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The results topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Produces `records` in signed batches. Batches the broker does not acknowledge are
    /// spooled; after the first such failure the remaining batches are spooled without being
    /// tried, since the brokers are then unreachable or refusing. `inserted` and `duplicates`
    /// of the outcome stay 0: the collector stores the batches later, out of band.
    pub async fn ship(&self, records: &[SessionReport]) -> Result<ShipOutcome, ShipError> {
        let max_bytes = self.options.max_batch_bytes.min(KAFKA_MAX_BATCH_BYTES);
        let (values, batches) = encode_batches(records, self.options.max_batch_records, max_bytes)
            .map_err(|e| ShipError::Encode(e.to_string()))?;

        // A broker's refusal is never specific to one batch, so the first one spools the rest.
        send_or_spool(&values, batches, &self.options.spool_dir, |batch| {
            Box::pin(async move {
                self.produce(&batch).await.map(|()| Delivery {
                    ack: Ack::default(),
                    attempts: 1,
                })
            })
        })
        .await
    }

    /// Produces every spool file in `dir` (oldest first) and removes each one once the broker
    /// acknowledged it, as [`super::Shipper::ship_spool`] does over HTTP: the agent drains a
    /// Kafka spool with it. A broker's refusal is never specific to one batch, so the first one
    /// leaves the rest for later.
    pub async fn ship_spool(&self, dir: &std::path::Path) -> Result<SpoolDelivery, SpoolError> {
        drain_spool(dir, |batch| async move {
            self.produce(&batch).await.map(|()| Ack::default())
        })
        .await
    }

    /// Signs `batch` now with a fresh nonce and waits for the broker's acknowledgement.
    async fn produce(&self, batch: &Value) -> Result<(), SendError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let signature = sign::sign_batch(&self.key, batch, now_ms, sign::random_nonce());
        let mut headers = OwnedHeaders::new_with_capacity(4);
        for (name, value) in signature.to_headers() {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        // Serializing a `Value` cannot fail: it has string keys only.
        let payload = serde_json::to_vec(batch).unwrap_or_default();
        let record = FutureRecord::to(&self.topic)
            .key(&self.key_id)
            .payload(&payload)
            .headers(headers);
        // The producer's own message timeout bounds the wait; this one only backs it up.
        let wait = self.options.request_timeout + Duration::from_secs(1);
        self.producer
            .send(record, wait)
            .await
            .map(|_| ())
            .map_err(|(error, _)| SendError::Unreachable {
                attempts: 1,
                error: format!("kafka {} topic {}: {error}", self.brokers, self.topic),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Message as _;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::Headers as _;
    use rdkafka::mocking::MockCluster;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    fn records(count: usize) -> Vec<SessionReport> {
        (0..count)
            .map(|i| SessionReport::new(format!("k-{i}"), "noop", 1_000))
            .collect()
    }

    fn options(dir: &std::path::Path, timeout: Duration) -> ShipOptions {
        ShipOptions {
            max_batch_records: 2,
            request_timeout: timeout,
            spool_dir: dir.to_owned(),
            ..ShipOptions::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_are_produced_signed_with_the_http_headers() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster
            .create_topic(DEFAULT_KAFKA_TOPIC, 1, 1)
            .expect("topic");
        let brokers = cluster.bootstrap_servers();
        let dir = tempfile::tempdir().expect("tempdir");
        let shipper = KafkaShipper::new(
            &brokers,
            DEFAULT_KAFKA_TOPIC,
            key(),
            options(dir.path(), Duration::from_secs(10)),
        )
        .expect("shipper");
        let outcome = shipper.ship(&records(3)).await.expect("delivered");
        assert_eq!((outcome.records, outcome.batches), (3, 2));

        let mut sessions = consume_verified(&brokers, 3);
        sessions.sort();
        assert_eq!(sessions, vec!["k-0", "k-1", "k-2"]);
        assert!(
            std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
            "nothing spooled"
        );
    }

    /// The session ids of the first `count` records on the results topic of `brokers`, each
    /// batch's signature verified with [`key`].
    fn consume_verified(brokers: &str, count: usize) -> Vec<String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "check")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer
            .subscribe(&[DEFAULT_KAFKA_TOPIC])
            .expect("subscribe");
        let mut sessions = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while sessions.len() < count && std::time::Instant::now() < deadline {
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.expect("message");
            let headers: Vec<(String, String)> = message
                .headers()
                .expect("headers")
                .iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8(h.value.expect("value").to_vec()).expect("utf-8"),
                    )
                })
                .collect();
            let signature = sign::BatchSignature::from_headers(|name| {
                headers
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value.clone())
            })
            .expect("the four signature headers");
            let value: Value =
                serde_json::from_slice(message.payload().expect("payload")).expect("json");
            sign::verify_batch(&key().verifying_key(), &value, &signature).expect("verifies");
            assert_eq!(message.key(), Some(signature.key_id.as_bytes()));
            for record in value.as_array().expect("array") {
                sessions.push(record["session_id"].as_str().expect("id").to_owned());
            }
        }
        sessions
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unacknowledged_batches_are_spooled_and_the_spool_drains_to_the_brokers_later() {
        // Nothing listens on port 1 of the loopback, so no batch is ever acknowledged.
        let dir = tempfile::tempdir().expect("tempdir");
        let shipper = KafkaShipper::new(
            "127.0.0.1:1",
            DEFAULT_KAFKA_TOPIC,
            key(),
            options(dir.path(), Duration::from_millis(500)),
        )
        .expect("shipper");
        let error = shipper.ship(&records(3)).await.expect_err("undelivered");
        assert_eq!(error.delivered().records, 0);
        assert_eq!(error.spooled().len(), 2, "{error}");
        let spooled: usize = error
            .spooled()
            .iter()
            .map(|path| {
                let value: Value =
                    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
                value.as_array().map_or(0, Vec::len)
            })
            .sum();
        assert_eq!(spooled, 3);

        // The brokers are up: draining the spool produces every batch, signed afresh, and
        // empties it.
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster
            .create_topic(DEFAULT_KAFKA_TOPIC, 1, 1)
            .expect("topic");
        let brokers = cluster.bootstrap_servers();
        let shipper = KafkaShipper::new(
            &brokers,
            DEFAULT_KAFKA_TOPIC,
            key(),
            options(dir.path(), Duration::from_secs(10)),
        )
        .expect("shipper");
        let delivery = shipper.ship_spool(dir.path()).await.expect("spool read");
        assert!(delivery.is_complete(), "{delivery:?}");
        assert_eq!(delivery.records, 3);
        assert!(
            super::super::spool_files(dir.path())
                .expect("dir")
                .is_empty()
        );
        let mut sessions = consume_verified(&brokers, 3);
        sessions.sort();
        assert_eq!(sessions, vec!["k-0", "k-1", "k-2"]);
    }

    #[test]
    fn empty_brokers_or_topic_are_usage_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), Duration::from_secs(1));
        assert!(matches!(
            KafkaShipper::new(" ", "t", key(), opts.clone()),
            Err(KafkaSetupError::Usage(_))
        ));
        assert!(matches!(
            KafkaShipper::new("127.0.0.1:9092", "", key(), opts),
            Err(KafkaSetupError::Usage(_))
        ));
    }
}
