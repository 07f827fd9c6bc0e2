//! The trickle protocol: Livepeer's segmented HTTP publish/subscribe for live media, control
//! and events channels.
//!
//! - [`TrickleServer`]: a server with go-livepeer's semantics (five-segment ring per channel,
//!   preconnected reads and writes, 470 / `Lp-Trickle-*` headers, keepalive `100 Continue`,
//!   idle sweep) and a local API ([`LocalPublisher`], [`LocalSubscriber`]) for the simulator.
//! - [`TricklePublisher`] and [`TrickleSubscriber`]: the client side, on `reqwest` (which skips
//!   any number of interim `100 Continue` responses), or for the subscriber on the client's
//!   own connections ([`TrickleSubscriber::over_sockets`]).
//! - [`SocketPublisher`]: the publisher on the client's own connections
//!   ([`crate::http1::client`]), each frame one write on the caller's task. Not used by the
//!   tester yet: under load some runs stalled (docs/benchmarks.md).
//!
//! The per-channel state machine lives in `channel`; handlers and clients are thin drivers.

mod channel;
mod error;
mod local;
mod publisher;
mod server;
mod sockets;
mod subscriber;

pub use channel::RING_SEGMENTS;
pub use error::TrickleError;
pub use local::{LocalPublisher, LocalSegmentReader, LocalSegmentWriter, LocalSubscriber};
pub use publisher::{
    PublisherConfig, PublisherStats, SegmentOutcome, SegmentWriter, TricklePublisher,
};
pub use server::{TrickleConfig, TrickleServer};
pub use sockets::{SocketPublisher, SocketSegmentWriter, client_tls};
pub use subscriber::{SubscribedSegment, SubscriberConfig, SubscriberStats, TrickleSubscriber};

/// Where the trickle routes are mounted.
pub const BASE_PATH: &str = "/ai/trickle/";
/// Response header: the segment's sequence number.
pub const HEADER_SEQ: &str = "lp-trickle-seq";
/// Response header: the channel's next sequence number (the live edge).
pub const HEADER_LATEST: &str = "lp-trickle-latest";
/// Response header: the channel was closed (`terminated`).
pub const HEADER_CLOSED: &str = "lp-trickle-closed";
/// Request header: the publisher restarts its numbering; older segments are closed.
pub const HEADER_RESET: &str = "lp-trickle-reset";
