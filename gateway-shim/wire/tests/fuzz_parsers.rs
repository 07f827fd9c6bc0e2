//! Property tests of the wire parsers that read what an orchestrator, a gateway or a signer
//! sends: HTTP/1.1 request heads and chunked bodies (the trickle server's framing), the
//! `Livepeer-Segment` and `Livepeer-Payment` headers, and `GetOrchestrator` answers. Whatever the
//! bytes, each parser answers (a value or a typed error with a message) without panicking,
//! and never claims more input than it was given.
//!
//! The suite runs proptest's default number of cases; `ci/fuzz` runs every `fuzz_` test with
//! many more (`PROPTEST_CASES`).

use bytes::BytesMut;
use lvt_wire::grpc::{proto, summarize};
use lvt_wire::http1::chunked::{ChunkedDecoder, Decoded};
use lvt_wire::http1::head::{HeadLimits, parse_request_head, request_framing};
use lvt_wire::live::decode_segment_header;
use lvt_wire::payment::value::{expected_value, payment_value};
use proptest::prelude::*;
use prost::Message as _;

/// Bytes that look like an HTTP request often enough to get past the request line.
fn request_like() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"POST /ai/trickle/ch/0 HTTP/1.1\r\n".to_vec()),
        Just(b"GET /ai/trickle/ch/-1 HTTP/1.1\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    let header = prop_oneof![
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Content-Length: 12\r\n".to_vec()),
        Just(b"Content-Length: -1\r\n".to_vec()),
        Just(b"Content-Length: 99999999999999999999999\r\n".to_vec()),
        Just(b"Expect: 100-continue\r\n".to_vec()),
        Just(b"Lp-Trickle-Reset: 1\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..30),
    ];
    (
        line,
        proptest::collection::vec(header, 0..6),
        proptest::option::of(Just(b"\r\n".to_vec())),
    )
        .prop_map(|(line, headers, end)| {
            let mut bytes = line;
            for h in headers {
                bytes.extend(h);
            }
            bytes.extend(end.unwrap_or_default());
            bytes
        })
}

proptest! {
    #[test]
    fn fuzz_request_heads_never_panic(bytes in prop_oneof![request_like(), proptest::collection::vec(any::<u8>(), 0..300)]) {
        let limits = HeadLimits { max_head_bytes: 256, max_headers: 8 };
        match parse_request_head(&bytes, &limits) {
            Ok(Some((head, used))) => {
                prop_assert!(used <= bytes.len());
                // Framing is decided or refused with a reason, never a panic.
                if let Err(error) = request_framing(&head) {
                    prop_assert!(!error.to_string().is_empty());
                }
            }
            Ok(None) => {}
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn fuzz_chunked_bodies_never_panic(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..400),
            proptest::collection::vec(
                prop_oneof![
                    Just(b"5\r\nhello\r\n".to_vec()),
                    Just(b"0\r\n\r\n".to_vec()),
                    Just(b"ffffffffffffffffff\r\n".to_vec()),
                    Just(b"3;ext=1\r\nabc\r\n".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..12),
                ],
                0..8,
            ).prop_map(|parts| parts.concat()),
        ],
        split in 0usize..400,
    ) {
        // Fed in two pieces, as the socket delivers them.
        let split = split.min(bytes.len());
        let mut decoder = ChunkedDecoder::new();
        let mut data = 0usize;
        for piece in [&bytes[..split], &bytes[split..]] {
            let mut buf = BytesMut::from(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Decoded::Data(chunk)) => data += chunk.len(),
                    Ok(_) => break,
                    Err(error) => {
                        prop_assert!(!error.to_string().is_empty());
                        return Ok(());
                    }
                }
                if decoder.is_done() {
                    break;
                }
            }
        }
        prop_assert!(data <= bytes.len(), "no more body than bytes");
    }

    #[test]
    fn fuzz_segment_and_payment_headers_never_panic(text in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_segment_header(&text);
        let _ = payment_value(&text);
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let _ = decode_segment_header(&encoded);
        if let Err(error) = payment_value(&encoded) {
            prop_assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn fuzz_ticket_value_is_exact_where_it_can_be_checked(face in any::<u64>(), tickets in 1u64..1_000, shift in 1u32..=255) {
        // A ticket that always wins is worth its face value, whatever the count.
        let always = [0xffu8; 32];
        prop_assert_eq!(
            expected_value(&face.to_be_bytes(), &always, tickets),
            Ok(u128::from(face) * u128::from(tickets))
        );
        // A chance of 2^-shift (win_prob 2^(256 - shift)) is worth face x tickets / 2^shift,
        // give or take the one wei that dividing by 2^256 - 1 instead of 2^256 may add.
        let mut win = [0u8; 32];
        let bit = 256 - shift;
        win[31 - (bit / 8) as usize] = 1 << (bit % 8);
        let value = expected_value(&face.to_be_bytes(), &win, tickets).unwrap();
        let total = u128::from(face) * u128::from(tickets);
        let exact = if shift < 128 { total >> shift } else { 0 };
        prop_assert!(value == exact || value == exact + 1, "{} vs {}", value, exact);
    }

    #[test]
    fn fuzz_orchestrator_answers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(info) = proto::OrchestratorInfo::decode(bytes.as_slice()) {
            // Whatever an orchestrator claims, the summary is made without a panic.
            let _ = summarize(&info);
        }
    }
}
