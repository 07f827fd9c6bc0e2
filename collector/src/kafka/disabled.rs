//! The consumer of a collector built without the `kafka` feature: the settings still parse,
//! and a configured `[kafka]` is refused at start with [`KafkaError::NotBuilt`].

use std::future::Future;
use std::sync::Arc;

use super::{ConsumerOptions, KafkaError};
use crate::app::AppState;
use crate::config::KafkaConfig;

/// Stands for the Kafka consumer; it cannot be made.
pub enum KafkaConsumer {}

impl KafkaConsumer {
    /// Always [`KafkaError::NotBuilt`].
    ///
    /// # Errors
    /// Always: the `kafka` feature is off.
    pub fn new(
        _state: Arc<AppState>,
        _config: &KafkaConfig,
        _options: ConsumerOptions,
    ) -> Result<Self, KafkaError> {
        Err(KafkaError::NotBuilt)
    }

    /// Never runs: no value of this type exists.
    pub async fn run(self, _shutdown: impl Future<Output = ()> + Send) {
        match self {}
    }
}
