//! The `net.Orchestrator` gRPC service: generated protobuf types, a client for gateways
//! (discovery through `GetOrchestrator`), the server half for the simulator, and a summary of an
//! `OrchestratorInfo` for reports.
//!
//! The messages come from `proto/lp_rpc.proto`, whose field numbers and types are identical to
//! go-livepeer's `net/lp_rpc.proto`. The client speaks TLS without certificate verification
//! (recording the certificate fingerprint for trust on first use) or plaintext HTTP/2; the
//! server is an `axum::Router` so that gRPC and HTTP share one port (see [`crate::serve`]).

mod client;
mod server;
mod summary;

pub use client::{GrpcError, GrpcStage, OrchestratorClient};
pub use server::grpc_router;
pub use summary::{GpuSummary, LiveModelSummary, LivePrice, OrchestratorSummary, summarize};

/// Generated `net` protobuf messages, client and server.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("net");
}

pub use proto::orchestrator_server::{Orchestrator, OrchestratorServer};

/// Capability id of live video-to-video in go-livepeer's `core/capabilities.go`.
pub const CAPABILITY_LIVE_VIDEO_TO_VIDEO: u32 = 35;

/// True when capability `cap` is set in a capabilities bit string (64 capabilities per word,
/// least significant bit first, as go-livepeer packs them).
pub fn has_capability(bitstring: &[u64], cap: u32) -> bool {
    let word = (cap / 64) as usize;
    let bit = cap % 64;
    bitstring.get(word).is_some_and(|w| w & (1u64 << bit) != 0)
}

/// The bit string with exactly the given capabilities set.
pub fn capability_bitstring(caps: &[u32]) -> Vec<u64> {
    let words = caps.iter().map(|&c| c as usize / 64 + 1).max().unwrap_or(0);
    let mut bitstring = vec![0u64; words];
    for &cap in caps {
        bitstring[cap as usize / 64] |= 1u64 << (cap % 64);
    }
    bitstring
}

/// Capabilities a gateway sends to ask for live video-to-video with `model_id`, shaped like
/// go-livepeer's `newAICapabilities`: capability 35 in the bit string with capacity 1, and a
/// per-model constraint. `warm: false` asks for any orchestrator serving the model, loaded or
/// not, which is what a prober wants.
pub fn live_capabilities(model_id: &str) -> proto::Capabilities {
    let cap = CAPABILITY_LIVE_VIDEO_TO_VIDEO;
    let model = proto::capabilities::capability_constraints::ModelConstraint {
        warm: false,
        ..Default::default()
    };
    let per_capability = proto::capabilities::CapabilityConstraints {
        models: [(model_id.to_string(), model)].into_iter().collect(),
    };
    proto::Capabilities {
        bitstring: capability_bitstring(&[cap]),
        mandatories: Vec::new(),
        capacities: [(cap, 1)].into_iter().collect(),
        version: String::new(),
        constraints: Some(proto::capabilities::Constraints {
            min_version: String::new(),
            per_capability: [(cap, per_capability)].into_iter().collect(),
        }),
    }
}

/// A `GetOrchestrator` request from `gateway_address`.
///
/// Offchain the signature is not checked, so it is left empty. With `capabilities` the
/// orchestrator checks capacity for them (unless `ignore_capacity_check`) and answers without
/// hardware and per-capability prices; without, it answers with both.
pub fn orchestrator_request(
    gateway_address: [u8; 20],
    capabilities: Option<proto::Capabilities>,
    ignore_capacity_check: bool,
) -> proto::OrchestratorRequest {
    proto::OrchestratorRequest {
        address: gateway_address.to_vec(),
        sig: Vec::new(),
        capabilities,
        ignore_capacity_check,
    }
}

/// A `GetOrchestrator` request for live video-to-video.
///
/// With `Some(model)` the request carries live capabilities for that model, so a full
/// orchestrator answers `OrchestratorCapped`, and hardware and prices are left out. With `None`
/// it carries no capabilities and the answer includes hardware and `capabilities_prices`
/// (what a discovery report wants).
pub fn live_request(
    gateway_address: [u8; 20],
    model_id: Option<&str>,
) -> proto::OrchestratorRequest {
    orchestrator_request(gateway_address, model_id.map(live_capabilities), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitstring_round_trip() {
        let bits = capability_bitstring(&[0, 35, 64, 70]);
        assert_eq!(bits, vec![1 | (1 << 35), 1 | (1 << 6)]);
        for cap in [0, 35, 64, 70] {
            assert!(has_capability(&bits, cap), "cap {cap}");
        }
        for cap in [1, 34, 36, 63, 65, 200] {
            assert!(!has_capability(&bits, cap), "cap {cap}");
        }
        assert!(capability_bitstring(&[]).is_empty());
    }

    #[test]
    fn live_request_carries_capabilities_only_with_a_model() {
        let addr = [7u8; 20];
        let bare = live_request(addr, None);
        assert_eq!(bare.address, addr.to_vec());
        assert!(bare.capabilities.is_none());
        let with = live_request(addr, Some("streamdiffusion"));
        let caps = with.capabilities.expect("capabilities");
        assert!(has_capability(
            &caps.bitstring,
            CAPABILITY_LIVE_VIDEO_TO_VIDEO
        ));
        let models = &caps.constraints.expect("constraints").per_capability
            [&CAPABILITY_LIVE_VIDEO_TO_VIDEO]
            .models;
        assert!(models.contains_key("streamdiffusion"));
    }
}
