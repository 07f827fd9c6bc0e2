//! WebRTC for lvt's gateway mode.
//!
//! - [`codecs`]: go-livepeer's codec set and payload types, as a str0m configuration;
//! - [`peer`]: one str0m peer on its own UDP socket, driven by a tokio task, with events
//!   stamped on arrival;
//! - [`exchange`]: the WHIP/WHEP `POST` of an offer and its `201` answer.
//!
//! The tester's WHIP publisher and WHEP player and the simulator's gateway (`lvt sim gateway`)
//! are both built from these, so the two sides share no more than the protocol does: each only
//! sees the other's SDP and packets. Interop with independent stacks is tested separately.

pub mod codecs;
pub mod exchange;
pub mod peer;

pub use exchange::{Answer, ExchangeError, exchange, local_ip_towards};
pub use peer::{
    CloseReason, EgressStats, IngressStats, Peer, PeerError, PeerEvent, PeerHandle, PeerOptions,
    PeerSender, PendingPeer, Role,
};
