//! The pure checks of what agents send, shared by every ingest path (HTTP and Kafka): signature
//! headers, key, timestamp and the canonical body the signature covers ([`signature`]); result
//! records and their plausibility and time bounds ([`records`]); go-livepeer event envelopes
//! ([`events`]).
//!
//! This is the bottom layer of the collector: it reads no clock (the time is an input), touches
//! no store and knows nothing of HTTP. Its errors are its own ([`RecordError`],
//! [`SignatureError`]); the HTTP layer answers each as a problem document and the Kafka consumer
//! words each as a rejection.

pub mod events;
pub mod records;
pub mod signature;

pub use events::validate_events;
pub use records::{
    MAX_BYTES_PER_S, MAX_FPS, MAX_FRAMES_PER_S, MAX_METRIC_MS, MAX_SESSION_MS, RecordError,
    TimeBounds, canonical_sha256_of, json_pointer, validate_records,
};
pub use signature::{Agent, SignatureError, SignedJson, check_signature_headers};
