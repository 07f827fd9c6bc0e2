//! lvt-gateway: the Livepeer gateway client side and a protocol-faithful orchestrator simulator.
//!
//! It owns everything that speaks Livepeer's wire protocols: the trickle HTTP protocol
//! (client and server), the `net.Orchestrator` gRPC service, the live-video-to-video job
//! start request, TLS with trust on first use, and `sim`, the simulated orchestrator.

pub mod discovery;
pub mod gateway;
pub mod grpc;
pub mod http1;
pub mod live;
pub mod measure;
pub mod payment;
pub mod serve;
pub mod session;
pub mod sim;
pub mod tls;
pub mod trickle;
