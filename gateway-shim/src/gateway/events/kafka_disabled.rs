//! The Kafka destination of a build without the `kafka` feature: asking for it is an error
//! that says how to get it.

use std::time::Duration;

use serde_json::Value;

/// Stands for the Kafka producer; it cannot be made.
pub(super) enum KafkaSink {}

impl KafkaSink {
    /// Always an error: the `kafka` feature is off.
    pub(super) fn new(_brokers: &str, _topic: &str, _timeout: Duration) -> Result<Self, String> {
        Err(
            "this build has no Kafka support: it was built without the `kafka` cargo feature \
             (on by default); rebuild with `--features kafka`"
                .to_owned(),
        )
    }

    /// Never called: no value of this type exists.
    pub(super) async fn produce(&self, _envelopes: &[Value]) -> Result<u64, String> {
        match *self {}
    }
}
