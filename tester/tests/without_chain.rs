//! An lvt built without the `chain` feature (`cargo test --no-default-features`): `--chain`
//! still parses and its values are still checked, and using it is a usage error (exit 2) that
//! names the missing feature.

#![cfg(not(feature = "chain"))]

use std::process::Command;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

#[test]
fn discover_on_chain_without_chain_feature_exits_2_with_the_reason() {
    let out = Command::new(LVT)
        .args(["discover", "--chain", "http://127.0.0.1:8545"])
        .output()
        .expect("run lvt discover");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("built without the `chain` cargo feature"),
        "{stderr}"
    );
    // The values are checked as in a build with the feature, before the refusal.
    let out = Command::new(LVT)
        .args(["discover", "--chain", "--controller", "0x1234"])
        .output()
        .expect("run lvt discover");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("controller \"0x1234\" is not an Ethereum address"),
        "{stderr}"
    );
}
