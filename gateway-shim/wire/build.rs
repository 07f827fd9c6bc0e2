//! Generates the `net` protobuf messages and the `net.Orchestrator` gRPC client and server
//! from `proto/lp_rpc.proto` (field numbers identical to go-livepeer's `net/lp_rpc.proto`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Debian's `protobuf-compiler` puts protoc on PATH; prost-build finds it there, or through
    // PROTOC when a developer points it somewhere else.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/lp_rpc.proto"], &["proto"])?;
    Ok(())
}
