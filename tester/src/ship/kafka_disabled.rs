//! Shipping through Kafka in a build without the `kafka` feature: `--kafka` and agent.toml's
//! `[kafka]` still parse, and using them is a usage error that says how to get Kafka support.

use lvt_schema::SessionReport;
use lvt_schema::sign::SigningKey;

use super::{ShipError, ShipOptions, ShipOutcome};

/// The results topic when `--kafka-topic` is not given.
pub const DEFAULT_KAFKA_TOPIC: &str = "lvt-results";

/// Why a [`KafkaShipper`] could not be built: here, always the missing feature.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// The `kafka` feature is off.
    #[error("{0}")]
    Usage(String),
}

/// Stands for the Kafka shipper; it cannot be made.
#[derive(Debug)]
pub enum KafkaShipper {}

impl KafkaShipper {
    /// Always [`KafkaSetupError::Usage`] naming the missing feature.
    ///
    /// # Errors
    /// Always: the `kafka` feature is off.
    pub fn new(
        _brokers: &str,
        _topic: &str,
        _key: SigningKey,
        _options: ShipOptions,
    ) -> Result<Self, KafkaSetupError> {
        Err(KafkaSetupError::Usage(
            "--kafka: this lvt was built without the `kafka` cargo feature (on by default); \
             rebuild it with `cargo build --features kafka`, or ship with --collector URL"
                .to_owned(),
        ))
    }

    /// Never called: no value of this type exists.
    pub fn brokers(&self) -> &str {
        match *self {}
    }

    /// Never called: no value of this type exists.
    pub fn topic(&self) -> &str {
        match *self {}
    }

    /// Never called: no value of this type exists.
    ///
    /// # Errors
    /// Never.
    pub async fn ship(&self, _records: &[SessionReport]) -> Result<ShipOutcome, ShipError> {
        match *self {}
    }

    /// Never called: no value of this type exists.
    ///
    /// # Errors
    /// Never.
    pub async fn ship_spool(
        &self,
        _dir: &std::path::Path,
    ) -> Result<super::SpoolDelivery, super::SpoolError> {
        match *self {}
    }
}
