//! lvt-wire: Livepeer's wire protocols, spoken faithfully and deciding nothing.
//!
//! It owns the bytes on the wire between a gateway and an orchestrator: [`http1`] (our own
//! HTTP/1.1 connection driver, for the repeated `100 Continue` responses trickle needs),
//! [`trickle`] (the server and the publisher/subscriber client), [`grpc`] (the
//! `net.Orchestrator` service from `proto/lp_rpc.proto`), [`live`] (orchestrator URIs, the
//! live-video-to-video job start, segment headers, auth tokens and ai-runner's params hash),
//! [`tls`] (self-signed certificates, trust on first use), [`serve`] (one listener for gRPC and
//! HTTP/1.1) and [`payment`] (offchain and remote-signer payments). Which orchestrator to use,
//! when to swap and what a session measured are decided above it, in `lvt-gateway`; the
//! simulated orchestrator in `lvt-sim` speaks these same protocols from the other side.

pub mod grpc;
pub mod http1;
pub mod live;
pub mod payment;
pub mod serve;
pub mod tls;
pub mod trickle;
