//! Tests of batch signing and key files. Keys and nonces are fixed bytes so every signature is
//! reproducible; only the key file tests touch the disk (a temporary directory).

use super::*;
use serde_json::json;

const TIMESTAMP_MS: i64 = 1_764_270_000_000;
const NONCE: [u8; NONCE_BYTES] = [7; NONCE_BYTES];

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn records() -> Value {
    json!([
        {"schema_version": 1, "session_id": "a", "metrics": {"startup_ms": 2100.5, "swaps": []}},
        {"schema_version": 1, "session_id": "b", "metrics": {"startup_ms": null, "swaps": [{"at_unix_ms": 5}]}}
    ])
}

#[test]
fn sign_then_verify_round_trips() {
    let key = key(1);
    let sig = sign_batch(&key, &records(), TIMESTAMP_MS, NONCE);
    assert_eq!(sig.timestamp_ms, TIMESTAMP_MS);
    assert_eq!(sig.nonce, "07".repeat(16));
    assert_eq!(sig.key_id, key_id(&key.verifying_key()));
    assert_eq!(sig.public_key, public_key_base64(&key.verifying_key()));
    assert_eq!(verify_batch(&key.verifying_key(), &records(), &sig), Ok(()));
}

#[test]
fn signing_is_deterministic_for_fixed_inputs() {
    let first = sign_batch(&key(1), &records(), TIMESTAMP_MS, NONCE);
    let second = sign_batch(&key(1), &records(), TIMESTAMP_MS, NONCE);
    assert_eq!(first, second);
}

#[test]
fn a_changed_record_fails_verification() {
    let key = key(1);
    let sig = sign_batch(&key, &records(), TIMESTAMP_MS, NONCE);
    let mut changed = records();
    changed[1]["metrics"]["swaps"][0]["at_unix_ms"] = json!(6);
    assert_eq!(
        verify_batch(&key.verifying_key(), &changed, &sig),
        Err(SignError::BadSignature)
    );
    let mut dropped = records();
    if let Some(list) = dropped.as_array_mut() {
        list.pop();
    }
    assert_eq!(
        verify_batch(&key.verifying_key(), &dropped, &sig),
        Err(SignError::BadSignature)
    );
}

#[test]
fn a_changed_timestamp_or_nonce_fails_verification() {
    let key = key(1);
    let sig = sign_batch(&key, &records(), TIMESTAMP_MS, NONCE);
    let later = BatchSignature {
        timestamp_ms: TIMESTAMP_MS + 1,
        ..sig.clone()
    };
    assert_eq!(
        verify_batch(&key.verifying_key(), &records(), &later),
        Err(SignError::BadSignature)
    );
    let other_nonce = BatchSignature {
        nonce: "08".repeat(16),
        ..sig
    };
    assert_eq!(
        verify_batch(&key.verifying_key(), &records(), &other_nonce),
        Err(SignError::BadSignature)
    );
}

#[test]
fn another_key_fails_verification() {
    let sig = sign_batch(&key(1), &records(), TIMESTAMP_MS, NONCE);
    let other = key(2).verifying_key();
    assert!(matches!(
        verify_batch(&other, &records(), &sig),
        Err(SignError::KeyMismatch { .. })
    ));
    // Even a signature relabelled with the other key's id and public key must not verify.
    let relabelled = BatchSignature {
        key_id: key_id(&other),
        public_key: public_key_base64(&other),
        ..sig
    };
    assert_eq!(
        verify_batch(&other, &records(), &relabelled),
        Err(SignError::BadSignature)
    );
}

#[test]
fn a_mismatched_public_key_field_is_rejected() {
    let key = key(1);
    let sig = BatchSignature {
        public_key: public_key_base64(&self::key(2).verifying_key()),
        ..sign_batch(&key, &records(), TIMESTAMP_MS, NONCE)
    };
    assert!(matches!(
        verify_batch(&key.verifying_key(), &records(), &sig),
        Err(SignError::KeyMismatch { .. })
    ));
}

#[test]
fn key_order_and_whitespace_do_not_matter() {
    let key = key(3);
    let one: Value =
        serde_json::from_str(r#"[{"b": 1, "a": {"y": [1, {"q": 2, "p": 1}], "x": "s"}}]"#)
            .expect("valid JSON");
    let other: Value = serde_json::from_str(r#"[{"a":{"x":"s","y":[1,{"p":1,"q":2}]},"b":1}]"#)
        .expect("valid JSON");
    assert_eq!(
        canonical_bytes(&one),
        br#"[{"a":{"x":"s","y":[1,{"p":1,"q":2}]},"b":1}]"#.to_vec()
    );
    assert_eq!(canonical_bytes(&one), canonical_bytes(&other));
    let sig = sign_batch(&key, &one, TIMESTAMP_MS, NONCE);
    assert_eq!(verify_batch(&key.verifying_key(), &other, &sig), Ok(()));
}

#[test]
fn canonical_bytes_print_numbers_and_strings_as_documented() {
    let value = json!({
        "f": 2000.0, "g": 0.1, "h": 2100.5, "e": 1e-7, "x": 1e21, "i": -3, "m": 0.00001, "k": 1e16,
        "u": 25_757_220_864u64, "s": "é\"\n\u{1}\u{8}\u{1f}", "n": null, "t": true
    });
    assert_eq!(
        String::from_utf8(canonical_bytes(&value)).expect("UTF-8"),
        concat!(
            r#"{"e":1e-7,"f":2000.0,"g":0.1,"h":2100.5,"i":-3,"k":1e+16,"m":0.00001,"n":null,"#,
            r#""s":"é\"\n\u0001\b\u001f","t":true,"u":25757220864,"x":1e+21}"#
        )
    );
}

#[test]
fn the_signed_message_has_the_documented_layout() {
    let message = signed_message(&json!([{"b": 2, "a": 1}]), 42, "00ff");
    assert_eq!(
        message,
        b"lvt-results-v1\n42\n00ff\n[{\"a\":1,\"b\":2}]".to_vec()
    );
}

/// The signature must survive the trip the collector makes: the body is sent as text, parsed
/// back, and re-canonicalized. Floats are the risky part, so many seeded random ones are tried.
#[test]
fn signatures_survive_a_text_round_trip_of_random_floats() {
    let key = key(4);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // SplitMix64: a fixed, seeded sequence so the test is deterministic.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut floats = Vec::new();
    while floats.len() < 2000 {
        let value = f64::from_bits(next());
        if value.is_finite() {
            floats.push(json!(value));
        }
        // Also ordinary magnitudes, like latencies in milliseconds with fractions.
        floats.push(json!((next() % 10_000_000) as f64 / 1000.0));
    }
    let batch = json!([{ "values": floats }]);
    let sig = sign_batch(&key, &batch, TIMESTAMP_MS, NONCE);
    let body = serde_json::to_string_pretty(&batch).expect("a Value serializes");
    let received: Value = serde_json::from_str(&body).expect("own output parses");
    assert_eq!(verify_batch(&key.verifying_key(), &received, &sig), Ok(()));
}

#[test]
fn headers_round_trip_without_the_public_key() {
    let sig = sign_batch(&key(1), &records(), TIMESTAMP_MS, NONCE);
    let headers = sig.to_headers();
    let names: Vec<&str> = headers.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        vec!["Lvt-Key-Id", "Lvt-Timestamp", "Lvt-Nonce", "Lvt-Signature"]
    );
    assert!(headers.iter().all(|(_, value)| *value != sig.public_key));
    let lookup = |name: &str| {
        headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let back = BatchSignature::from_headers(lookup).expect("own headers parse");
    assert_eq!(
        back,
        BatchSignature {
            public_key: String::new(),
            ..sig
        }
    );
    assert_eq!(
        verify_batch(&key(1).verifying_key(), &records(), &back),
        Ok(())
    );
}

#[test]
fn malformed_headers_give_precise_errors() {
    let good = sign_batch(&key(1), &records(), TIMESTAMP_MS, NONCE).to_headers();
    let with = |name: &'static str, value: Option<&str>| {
        let mut headers = good.clone();
        headers.retain(|(header, _)| *header != name);
        let value = value.map(str::to_owned);
        move |wanted: &str| {
            if wanted == name {
                value.clone()
            } else {
                headers
                    .iter()
                    .find(|(header, _)| *header == wanted)
                    .map(|(_, value)| value.clone())
            }
        }
    };
    let cases = [
        (
            with(HEADER_KEY_ID, None),
            SignError::MissingHeader("Lvt-Key-Id"),
        ),
        (
            with(HEADER_NONCE, None),
            SignError::MissingHeader("Lvt-Nonce"),
        ),
        (
            with(HEADER_SIGNATURE, None),
            SignError::MissingHeader("Lvt-Signature"),
        ),
        (
            with(HEADER_TIMESTAMP, None),
            SignError::MissingHeader("Lvt-Timestamp"),
        ),
        (
            with(HEADER_KEY_ID, Some("XYZ")),
            SignError::BadKeyId("XYZ".to_owned()),
        ),
        (
            with(HEADER_TIMESTAMP, Some("12e3")),
            SignError::BadTimestamp("12e3".to_owned()),
        ),
        (
            with(HEADER_TIMESTAMP, Some("99999999999999999999")),
            SignError::BadTimestamp("99999999999999999999".to_owned()),
        ),
        (
            with(HEADER_NONCE, Some("0707")),
            SignError::BadNonce("0707".to_owned()),
        ),
        (
            with(HEADER_NONCE, Some(&"0A".repeat(16))),
            SignError::BadNonce("0A".repeat(16)),
        ),
        (
            with(HEADER_SIGNATURE, Some("not base64!")),
            SignError::MalformedSignature,
        ),
        (
            with(HEADER_SIGNATURE, Some("AAAA")),
            SignError::MalformedSignature,
        ),
    ];
    for (lookup, expected) in cases {
        assert_eq!(BatchSignature::from_headers(lookup), Err(expected));
    }
    let negative = BatchSignature::from_headers(with(HEADER_TIMESTAMP, Some("-5")))
        .expect("a negative timestamp is well formed");
    assert_eq!(negative.timestamp_ms, -5);
}

#[test]
fn check_timestamp_accepts_the_window_inclusive_either_way() {
    let window_ms = 300_000;
    let now_ms = TIMESTAMP_MS;
    assert_eq!(check_timestamp(now_ms, now_ms, window_ms), Ok(()));
    assert_eq!(check_timestamp(now_ms - 300_000, now_ms, window_ms), Ok(()));
    assert_eq!(check_timestamp(now_ms + 300_000, now_ms, window_ms), Ok(()));
    assert_eq!(
        check_timestamp(now_ms - 300_001, now_ms, window_ms),
        Err(SignError::StaleTimestamp {
            timestamp_ms: now_ms - 300_001,
            now_ms,
            window_ms
        })
    );
    assert!(check_timestamp(now_ms + 300_001, now_ms, window_ms).is_err());
    assert!(check_timestamp(i64::MIN, i64::MAX, window_ms).is_err());
}

#[test]
fn random_keys_and_nonces_differ() {
    let (first, first_public) = generate_keypair();
    let (second, _) = generate_keypair();
    assert_eq!(first.verifying_key(), first_public);
    assert_ne!(first.to_bytes(), second.to_bytes());
    assert_ne!(random_nonce(), random_nonce());
}

#[test]
fn key_files_round_trip_in_a_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (secret_path, public_path) = write_keypair(dir.path()).expect("keys are written");
    assert_eq!(secret_path, dir.path().join("lvt.key"));
    assert_eq!(public_path, dir.path().join("lvt.pub"));
    let key = read_signing_key(&secret_path).expect("the secret key reads back");
    let public = read_verifying_key(&public_path).expect("the public key reads back");
    assert_eq!(key.verifying_key(), public);

    let public_text = std::fs::read_to_string(&public_path).expect("readable");
    assert_eq!(public_text, public_key_line(&public));
    assert!(public_text.starts_with("lvt-ed25519 "));
    assert!(public_text.ends_with(&format!(" key_id={}\n", key_id(&public))));
    let secret_text = std::fs::read_to_string(&secret_path).expect("readable");
    assert!(secret_text.ends_with('\n'));
    assert_eq!(secret_text.trim().len(), 44, "base64 of 32 bytes");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret_path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let sig = sign_batch(&key, &records(), TIMESTAMP_MS, NONCE);
    assert_eq!(verify_batch(&public, &records(), &sig), Ok(()));
}

#[test]
fn key_files_use_a_prefix_and_never_overwrite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let prefix = dir.path().join("agent1");
    let key = key(9);
    let (secret_path, public_path) = write_keypair_from(&key, &prefix).expect("keys are written");
    assert_eq!(secret_path, dir.path().join("agent1.key"));
    assert_eq!(public_path, dir.path().join("agent1.pub"));
    assert_eq!(
        read_signing_key(&secret_path).expect("reads").to_bytes(),
        key.to_bytes()
    );
    match write_keypair(&prefix) {
        Err(KeyError::Exists { path }) => assert_eq!(path, secret_path),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(
        read_signing_key(&secret_path)
            .expect("still the first key")
            .to_bytes(),
        key.to_bytes()
    );
}

#[test]
fn malformed_key_files_give_precise_errors() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("writable");
        path
    };
    let format_error = |result: Result<(), KeyError>| match result {
        Err(KeyError::Format { source, .. }) => source,
        other => panic!("expected a format error, got {other:?}"),
    };
    let secret = |path: &Path| read_signing_key(path).map(|_| ());
    let public = |path: &Path| read_verifying_key(path).map(|_| ());

    match read_signing_key(&dir.path().join("absent.key")) {
        Err(KeyError::Missing { path }) => assert_eq!(path, dir.path().join("absent.key")),
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(matches!(
        read_verifying_key(&dir.path().join("absent.pub")),
        Err(KeyError::Missing { .. })
    ));
    assert!(matches!(
        read_verifying_key(dir.path()),
        Err(KeyError::Io { .. })
    ));

    assert_eq!(
        format_error(secret(&write("empty.key", "\n"))),
        KeyFormatError::Empty
    );
    assert_eq!(
        format_error(secret(&write("bad.key", "not*base64\n"))),
        KeyFormatError::BadBase64
    );
    assert_eq!(
        format_error(secret(&write("short.key", "AAAA\n"))),
        KeyFormatError::WrongLength {
            expected: 32,
            actual: 3
        }
    );

    let good = public_key_line(&key(5).verifying_key());
    let encoded = good
        .split_whitespace()
        .nth(1)
        .expect("a key word")
        .to_owned();
    assert_eq!(
        format_error(public(&write(
            "prefix.pub",
            &format!("ssh-ed25519 {encoded}\n")
        ))),
        KeyFormatError::WrongPrefix {
            found: "ssh-ed25519".to_owned()
        }
    );
    assert_eq!(
        format_error(public(&write("nokey.pub", "lvt-ed25519\n"))),
        KeyFormatError::Empty
    );
    assert_eq!(
        format_error(public(&write("badb64.pub", "lvt-ed25519 %%%\n"))),
        KeyFormatError::BadBase64
    );
    assert_eq!(
        format_error(public(&write("len.pub", "lvt-ed25519 AAAAAAAA\n"))),
        KeyFormatError::WrongLength {
            expected: 32,
            actual: 6
        }
    );
    let other_id = key_id(&key(6).verifying_key());
    assert_eq!(
        format_error(public(&write(
            "id.pub",
            &format!("lvt-ed25519 {encoded} key_id={other_id}\n")
        ))),
        KeyFormatError::KeyIdMismatch {
            stated: other_id,
            computed: key_id(&key(5).verifying_key()),
        }
    );
    assert_eq!(
        format_error(public(&write(
            "extra.pub",
            &format!("lvt-ed25519 {encoded} comment\n")
        ))),
        KeyFormatError::UnexpectedWord("comment".to_owned())
    );
    // A secret key file is not a public key file, and the other way round.
    assert!(matches!(
        format_error(public(&write("swap.pub", &format!("{encoded}\n")))),
        KeyFormatError::WrongPrefix { .. }
    ));
    assert_eq!(
        format_error(secret(&write("swap.key", &good))),
        KeyFormatError::BadBase64
    );
    // Without the key_id word the line is still accepted.
    let bare = write("bare.pub", &format!("lvt-ed25519 {encoded}\n"));
    assert_eq!(
        read_verifying_key(&bare).expect("key_id is optional"),
        key(5).verifying_key()
    );
}

#[test]
fn an_invalid_curve_point_is_rejected() {
    // Not every 32-byte string is a point on the curve; find one deterministically.
    let invalid = (0u8..=255)
        .map(|byte| {
            let mut bytes = [byte; 32];
            bytes[31] &= 0x7f;
            bytes
        })
        .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
        .expect("some byte pattern is not a curve point");
    let line = format!("lvt-ed25519 {}", BASE64.encode(invalid));
    assert_eq!(
        parse_verifying_key(&line),
        Err(KeyFormatError::InvalidPublicKey)
    );
}

/// The worked example of docs/result-record.md; if this changes, the document must change too.
#[test]
fn documented_test_vector() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let records: Value = serde_json::from_str(
        r#"[{"session_id": "s1", "schema_version": 1, "metrics": {"startup_ms": 2100.5}}]"#,
    )
    .expect("valid JSON");
    let sig = sign_batch(&key, &records, 1_764_270_000_000, [0xab; NONCE_BYTES]);
    let public = key.verifying_key();
    assert_eq!(
        (
            public_key_line(&public).as_str(),
            BASE64.encode(key.to_bytes()).as_str(),
            sig.key_id.as_str(),
            sig.nonce.as_str(),
            sig.signature.as_str(),
        ),
        (
            "lvt-ed25519 iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w= key_id=34750f98bd59fcfc\n",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            "34750f98bd59fcfc",
            "abababababababababababababababab",
            "B296e4oGpBRrXlWxT/pxwpRMjon/oM8UvljyxgW93fMk3csI1D1w1Cdqenm2p0wk2jIyffhuACFZQbbJ9ZwBCQ==",
        )
    );
    assert_eq!(
        signed_message(&records, sig.timestamp_ms, &sig.nonce),
        b"lvt-results-v1\n1764270000000\nabababababababababababababababab\n[{\"metrics\":{\"startup_ms\":2100.5},\"schema_version\":1,\"session_id\":\"s1\"}]".to_vec()
    );
    assert_eq!(verify_batch(&public, &records, &sig), Ok(()));
}

#[test]
fn the_fast_canonical_path_equals_sorting_every_map() {
    let nested =
        json!({"z": [3, {"b": 1, "a": "é\u{1}\""}], "x": 1.5e300, "m": {"k2": null, "k1": [true]}});
    let sorted = serde_json::to_vec(&crate::sort_keys(nested.clone())).expect("a value serializes");
    assert_eq!(canonical_bytes(&nested), sorted);
    assert_eq!(
        String::from_utf8(canonical_bytes(&nested)).expect("utf-8"),
        r#"{"m":{"k1":[true],"k2":null},"x":1.5e+300,"z":[3,{"a":"é\u0001\"","b":1}]}"#
    );
}
