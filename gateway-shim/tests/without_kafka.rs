//! A build without the `kafka` feature (`cargo test --no-default-features`): asking the event
//! emitter for go-livepeer's Kafka destination is an error that names the missing feature, not
//! a silent drop of the events.

#![cfg(not(feature = "kafka"))]

use lvt_gateway::gateway::events::{EmitterConfig, spawn_emitter};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn events_to_kafka_without_kafka_feature_are_refused_with_the_reason() {
    let (_observations, receiver) = tokio::sync::mpsc::unbounded_channel();
    let config = EmitterConfig::kafka("127.0.0.1:9092", "livepeer-events", "gw-1");
    let Err(error) = spawn_emitter(receiver, config, CancellationToken::new()) else {
        panic!("a Kafka destination cannot start without the kafka feature");
    };
    let text = error.to_string();
    assert!(text.contains("127.0.0.1:9092"), "{text}");
    assert!(text.contains("without the `kafka` cargo feature"), "{text}");
}
