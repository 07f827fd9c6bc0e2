//! An lvt built without the `kafka` feature (`cargo test --no-default-features`): `--kafka`
//! still parses, and using it is a usage error (exit 2) that names the missing feature and the
//! HTTP alternative; nothing is run and silently left unshipped.

#![cfg(not(feature = "kafka"))]

use std::process::Command;

const LVT: &str = env!("CARGO_BIN_EXE_lvt");

#[test]
fn probe_to_kafka_without_kafka_feature_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keygen = Command::new(LVT)
        .args(["keygen", "--out"])
        .arg(dir.path().join("agent"))
        .output()
        .expect("run lvt keygen");
    assert!(keygen.status.success());
    let out = Command::new(LVT)
        .args(["probe", "127.0.0.1:1", "--kafka", "127.0.0.1:9092", "--key"])
        .arg(dir.path().join("agent.key"))
        .output()
        .expect("run lvt probe");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("built without the `kafka` cargo feature"),
        "{stderr}"
    );
    assert!(stderr.contains("--collector"), "{stderr}");
}
