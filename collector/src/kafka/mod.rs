//! The Kafka consumer: reads signed result batches and go-livepeer events from the topics of
//! `[kafka]` ([`crate::config::KafkaConfig`]) and stores them through the same store calls as
//! `POST /v1/results` and `POST /v1/events`.
//!
//! Delivery is at-least-once and storage exactly-once. The consumer (one rdkafka
//! `StreamConsumer` in a consumer group, `enable.auto.commit=false`) takes a batch of messages
//! (up to [`ConsumerOptions::max_batch_messages`], or whatever arrived within
//! [`ConsumerOptions::batch_wait`] of the first), decodes each ([`decode`]), writes the whole
//! batch durably (one `insert_batch` per signed results message, since each carries its own
//! signature, and one `insert_events` for all the envelopes of the batch), and only then commits
//! the offsets after the batch. A store error commits nothing: the same batch is written again
//! after a back-off until the store answers, so a message is never committed unstored. A message
//! that cannot be stored at any attempt (malformed, unknown key, bad signature) is counted and
//! committed with the batch. When the consumer stops or dies between the write and the commit,
//! the batch is read again and stored once more; results are idempotent by `session_id` and
//! events by envelope `id`, so nothing is stored twice.

#[cfg(feature = "kafka")]
mod consumer;
pub mod decode;
#[cfg(not(feature = "kafka"))]
mod disabled;

#[cfg(feature = "kafka")]
pub use consumer::KafkaConsumer;
#[cfg(not(feature = "kafka"))]
pub use disabled::KafkaConsumer;

use std::time::Duration;

/// How the consumer batches and retries; the defaults suit production and tests alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// The most messages written in one round.
    pub max_batch_messages: usize,
    /// How long to wait for more messages after the first of a round before writing.
    pub batch_wait: Duration,
    /// The first back-off after a failed write; it doubles on each further failure.
    pub retry_min: Duration,
    /// The longest back-off between writes.
    pub retry_max: Duration,
    /// librdkafka's `session.timeout.ms`: how long the group waits for a consumer that stopped
    /// answering (killed) before its partitions go to another one.
    pub session_timeout: Duration,
    /// How often the consumer looks at its assignment and its group's lag
    /// ([`crate::kafka_health`]); each look asks the broker for offsets.
    pub health_interval: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            max_batch_messages: 500,
            batch_wait: Duration::from_millis(20),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
            health_interval: Duration::from_secs(5),
        }
    }
}

/// Why the consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka refused the configuration or the subscription.
    #[cfg(feature = "kafka")]
    #[error("kafka consumer ({brokers}): {source}")]
    Client {
        /// The configured brokers.
        brokers: String,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// `[kafka]` is configured but this collector was built without the `kafka` feature.
    #[error(
        "[kafka] is configured, but this lvt-collector was built without the `kafka` cargo \
         feature; rebuild it with `cargo build -p lvt-collector --features kafka` (on by \
         default), or remove [kafka] and ingest over HTTP"
    )]
    NotBuilt,
}
