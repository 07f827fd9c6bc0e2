//! The Kafka destination of the event emitter: go-livepeer's layout (monitor/kafka.go), one
//! topic, one unsigned envelope per message, the envelope id as the message key.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

/// A producer for one topic.
pub(super) struct KafkaSink {
    producer: FutureProducer,
    brokers: String,
    topic: String,
    timeout: Duration,
}

impl KafkaSink {
    /// A producer on `brokers` for `topic`; a message counts as delivered when every in-sync
    /// replica has it (`acks=all`), and librdkafka retries it within `timeout`.
    pub(super) fn new(brokers: &str, topic: &str, timeout: Duration) -> Result<Self, String> {
        if brokers.trim().is_empty() {
            return Err("no Kafka broker given".to_owned());
        }
        if topic.trim().is_empty() {
            return Err("no Kafka topic given".to_owned());
        }
        let timeout_ms = timeout.as_millis().max(1).to_string();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("message.timeout.ms", &timeout_ms)
            .create()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            producer,
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            timeout,
        })
    }

    /// Produces every envelope as its own message and waits for all acknowledgements; gives
    /// how many were acknowledged, or the first failure. A retry of a partly delivered batch
    /// repeats some messages, which consumers deduplicate by envelope id.
    pub(super) async fn produce(&self, envelopes: &[Value]) -> Result<u64, String> {
        let messages: Vec<(String, Vec<u8>)> = envelopes
            .iter()
            .map(|envelope| {
                let id = envelope
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                // A `Value` has string keys only, so it always serializes.
                (id, serde_json::to_vec(envelope).unwrap_or_default())
            })
            .collect();
        // The producer's own message timeout bounds each wait; this one only backs it up.
        let wait = self.timeout + Duration::from_secs(1);
        let sends = messages.iter().map(|(id, payload)| {
            self.producer
                .send(FutureRecord::to(&self.topic).key(id).payload(payload), wait)
        });
        let mut produced = 0;
        for result in futures::future::join_all(sends).await {
            match result {
                Ok(_) => produced += 1,
                Err((error, _)) => {
                    return Err(format!(
                        "kafka {} topic {}: {error}",
                        self.brokers, self.topic
                    ));
                }
            }
        }
        Ok(produced)
    }
}
