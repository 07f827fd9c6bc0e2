//! Job start, client side: orchestrator addresses, auth tokens, the segment header, and
//! `start_job` against a small axum orchestrator.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use lvt_wire::grpc::proto;
use lvt_wire::live::{
    AUTH_TOKEN_VALIDITY_S, AuthError, AuthTokens, JobUrls, LiveVideoToVideoRequest,
    OrchestratorUri, Scheme, StartJobError, UriError, decode_segment_header, segment_header,
    start_job,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const NOW_UNIX_S: i64 = 1_700_000_000;

#[test]
fn orchestrator_uri_parsing() {
    use Scheme::{Http, Https};
    let ok: &[(&str, Scheme, &str, u16, &str)] = &[
        (
            "o.example:8935",
            Https,
            "o.example",
            8935,
            "https://o.example:8935",
        ),
        (
            "https://o.example:8935",
            Https,
            "o.example",
            8935,
            "https://o.example:8935",
        ),
        (
            "HTTPS://o.example:8935/",
            Https,
            "o.example",
            8935,
            "https://o.example:8935",
        ),
        (
            "http://10.0.0.1:9000",
            Http,
            "10.0.0.1",
            9000,
            "http://10.0.0.1:9000",
        ),
        (
            "https://o.example",
            Https,
            "o.example",
            443,
            "https://o.example:443",
        ),
        (
            "http://o.example",
            Http,
            "o.example",
            80,
            "http://o.example:80",
        ),
        (
            "  127.0.0.1:1  ",
            Https,
            "127.0.0.1",
            1,
            "https://127.0.0.1:1",
        ),
        ("[::1]:8935", Https, "::1", 8935, "https://[::1]:8935"),
        (
            "http://[2001:db8::2]",
            Http,
            "2001:db8::2",
            80,
            "http://[2001:db8::2]:80",
        ),
        (
            "orch_1.local:65535",
            Https,
            "orch_1.local",
            65535,
            "https://orch_1.local:65535",
        ),
    ];
    for &(input, scheme, host, port, display) in ok {
        let parsed: OrchestratorUri = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(parsed, OrchestratorUri::new(scheme, host, port), "{input}");
        assert_eq!(parsed.to_string(), display, "{input}");
        // Display output parses back to the same address.
        assert_eq!(
            display.parse::<OrchestratorUri>().expect("round trip"),
            parsed
        );
    }

    type Check = fn(&UriError) -> bool;
    let bad: &[(&str, Check)] = &[
        ("", |e| matches!(e, UriError::Empty)),
        ("   ", |e| matches!(e, UriError::Empty)),
        ("ftp://o.example:21", |e| {
            matches!(e, UriError::UnsupportedScheme { .. })
        }),
        ("https://:8935", |e| {
            matches!(e, UriError::MissingHost { .. })
        }),
        ("o.example:0", |e| matches!(e, UriError::InvalidPort { .. })),
        ("o.example:65536", |e| {
            matches!(e, UriError::InvalidPort { .. })
        }),
        ("o.example:", |e| matches!(e, UriError::InvalidPort { .. })),
        ("o.example:http", |e| {
            matches!(e, UriError::InvalidPort { .. })
        }),
        ("https://o.example:8935/ai", |e| {
            matches!(e, UriError::UnexpectedPath { .. })
        }),
        ("https://user@o.example:8935", |e| {
            matches!(e, UriError::UnexpectedPath { .. })
        }),
        ("o.example:8935?x=1", |e| {
            matches!(e, UriError::UnexpectedPath { .. })
        }),
        ("o example:8935", |e| {
            matches!(e, UriError::InvalidHost { .. })
        }),
        ("::1:8935", |e| matches!(e, UriError::InvalidHost { .. })),
        ("[nothex]:8935", |e| {
            matches!(e, UriError::InvalidHost { .. })
        }),
        ("[::1", |e| matches!(e, UriError::InvalidHost { .. })),
    ];
    for (input, check) in bad {
        let error = input
            .parse::<OrchestratorUri>()
            .expect_err(&format!("{input:?} must not parse"));
        assert!(check(&error), "{input:?}: unexpected {error:?}");
        assert!(!error.to_string().is_empty());
    }

    let parsed: OrchestratorUri = serde_json::from_str("\"http://o.example:1\"").expect("serde");
    assert_eq!(
        serde_json::to_string(&parsed).expect("serde"),
        "\"http://o.example:1\""
    );
    assert!(serde_json::from_str::<OrchestratorUri>("\"ftp://x:1\"").is_err());
}

#[test]
fn auth_tokens_mint_and_verify() {
    let tokens = AuthTokens::new(b"secret".to_vec());
    let token = tokens.mint("session-1", NOW_UNIX_S);
    assert_eq!(token.session_id, "session-1");
    assert_eq!(token.expiration, NOW_UNIX_S + AUTH_TOKEN_VALIDITY_S);
    assert_eq!(token.token.len(), 32);

    assert_eq!(tokens.verify(&token, NOW_UNIX_S), Ok(()));
    assert_eq!(tokens.verify(&token, token.expiration - 1), Ok(()));
    assert_eq!(
        tokens.verify(&token, token.expiration),
        Err(AuthError::Expired)
    );
    assert_eq!(
        tokens.verify(&token, token.expiration + 3600),
        Err(AuthError::Expired)
    );

    let mut tampered = token.clone();
    tampered.token[0] ^= 1;
    assert_eq!(
        tokens.verify(&tampered, NOW_UNIX_S),
        Err(AuthError::Invalid)
    );
    let mut extended = token.clone();
    extended.expiration += 60;
    assert_eq!(
        tokens.verify(&extended, NOW_UNIX_S),
        Err(AuthError::Invalid)
    );
    let mut other_session = token.clone();
    other_session.session_id = "session-2".to_string();
    assert_eq!(
        tokens.verify(&other_session, NOW_UNIX_S),
        Err(AuthError::Invalid)
    );
    let other_secret = AuthTokens::new(b"other".to_vec());
    assert_eq!(
        other_secret.verify(&token, NOW_UNIX_S),
        Err(AuthError::Invalid)
    );
    // A forged token that is also expired is reported as invalid, as go-livepeer checks the
    // HMAC first.
    assert_eq!(
        tokens.verify(&tampered, token.expiration + 1),
        Err(AuthError::Invalid)
    );

    let missing = proto::SegData::default();
    assert_eq!(
        tokens.verify_segment(&missing, NOW_UNIX_S),
        Err(AuthError::Missing)
    );
    let carried = decode_segment_header(&segment_header(&token)).expect("decode");
    assert_eq!(tokens.verify_segment(&carried, NOW_UNIX_S), Ok(()));

    assert_eq!(AuthError::Missing.to_string(), "missing auth token");
    assert_eq!(AuthError::Invalid.to_string(), "invalid auth token");
    assert_eq!(AuthError::Expired.to_string(), "expired auth token");
}

#[test]
fn auth_token_bytes_follow_go_livepeer_layout() {
    use hmac::{Hmac, Mac};
    // HMAC-SHA256(secret, session_id ++ big-endian expiration without leading zero bytes).
    let tokens = AuthTokens::new(b"k".to_vec());
    let token = tokens.mint("abc", NOW_UNIX_S);
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(b"k").expect("key");
    mac.update(b"abc");
    let expiration = (NOW_UNIX_S + AUTH_TOKEN_VALIDITY_S) as u64;
    assert_eq!(
        expiration >> 32,
        0,
        "fits four bytes, so no leading zeros to strip below"
    );
    mac.update(&(expiration as u32).to_be_bytes());
    assert_eq!(token.token, mac.finalize().into_bytes().to_vec());
}

#[test]
fn segment_header_round_trip() {
    let token = AuthTokens::new(b"s".to_vec()).mint("deadbeef", NOW_UNIX_S);
    let header = segment_header(&token);
    assert!(!header.is_empty());
    let seg = decode_segment_header(&header).expect("decode");
    assert_eq!(seg.auth_token.as_ref(), Some(&token));
    assert_eq!(seg.manifest_id, b"deadbeef");
    assert!(decode_segment_header("not base64!").is_err());
    // Valid base64, but a truncated protobuf (field 8, length 200, no bytes).
    assert!(decode_segment_header("QsgB").is_err());
}

struct Orchestrator {
    base: String,
    requests: mpsc::UnboundedReceiver<(HeaderMap, serde_json::Value)>,
}

/// Serves `POST /live-video-to-video` with `answer`, reporting each request it sees.
async fn orchestrator<F>(answer: F) -> Orchestrator
where
    F: Fn(&str) -> (StatusCode, String) + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let (seen, requests) = mpsc::unbounded_channel();
    let base_for_handler = base.clone();
    let app = axum::Router::new().route(
        "/live-video-to-video",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let answer = answer.clone();
            let seen = seen.clone();
            let base = base_for_handler.clone();
            async move {
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let _ = seen.send((headers, json));
                let (status, body) = answer(&base);
                if status == StatusCode::GATEWAY_TIMEOUT {
                    // Stand-in for an orchestrator that never answers.
                    std::future::pending::<()>().await;
                }
                (status, body)
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Orchestrator { base, requests }
}

fn request() -> LiveVideoToVideoRequest {
    LiveVideoToVideoRequest {
        model_id: "noop".to_string(),
        params: serde_json::json!({"prompt": "a cat"}),
        gateway_request_id: "req-1".to_string(),
        stream_id: "stream-1".to_string(),
    }
}

#[tokio::test]
async fn start_job_resolves_relative_urls_and_sends_credentials() {
    let mut orch = orchestrator(|base| {
        let body = serde_json::json!({
            "publish_url": "/ai/trickle/abcd1234",
            "subscribe_url": "ai/trickle/abcd1234-out",
            "control_url": format!("{base}/ai/trickle/abcd1234-control"),
            "events_url": "/ai/trickle/abcd1234-events",
            "manifest_id": "abcd1234",
        });
        (StatusCode::OK, body.to_string())
    })
    .await;
    let token = AuthTokens::new(b"s".to_vec()).mint("sess", NOW_UNIX_S);
    let client = reqwest::Client::new();
    // A trailing slash on the service URI must not double the slash.
    let transcoder = format!("{}/", orch.base);
    let urls = start_job(
        &client,
        &transcoder,
        &token,
        &request(),
        Duration::from_secs(5),
    )
    .await
    .expect("job starts");
    let b = &orch.base;
    assert_eq!(
        urls,
        JobUrls {
            publish_url: format!("{b}/ai/trickle/abcd1234"),
            subscribe_url: format!("{b}/ai/trickle/abcd1234-out"),
            control_url: format!("{b}/ai/trickle/abcd1234-control"),
            events_url: format!("{b}/ai/trickle/abcd1234-events"),
            manifest_id: "abcd1234".to_string(),
        }
    );

    let (headers, body) = orch.requests.recv().await.expect("request seen");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["authorization"], "Livepeer-AI-Worker-1.0");
    assert_eq!(headers["livepeer-payment"], "");
    let seg = decode_segment_header(headers["livepeer-segment"].to_str().expect("ascii"))
        .expect("segment header");
    assert_eq!(seg.auth_token, Some(token));
    assert_eq!(
        body,
        serde_json::json!({
            "model_id": "noop",
            "params": {"prompt": "a cat"},
            "gateway_request_id": "req-1",
            "stream_id": "stream-1",
        })
    );
}

#[tokio::test]
async fn start_job_keeps_status_and_body_of_refusals() {
    for (status, text) in [
        (StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity"),
        (StatusCode::FORBIDDEN, "expired auth token"),
        (StatusCode::INTERNAL_SERVER_ERROR, "runner failed to start"),
    ] {
        let orch = orchestrator(move |_| (status, format!("{text}\n"))).await;
        let token = AuthTokens::new(b"s".to_vec()).mint("sess", NOW_UNIX_S);
        let error = start_job(
            &reqwest::Client::new(),
            &orch.base,
            &token,
            &request(),
            Duration::from_secs(5),
        )
        .await
        .expect_err("refused");
        match &error {
            StartJobError::Status { status: code, body } => {
                assert_eq!(*code, status.as_u16());
                assert_eq!(body, text);
            }
            other => panic!("expected a status error, got {other:?}"),
        }
        assert_eq!(error.status(), Some(status.as_u16()));
    }
}

#[tokio::test]
async fn start_job_rejects_incomplete_or_malformed_answers() {
    let orch = orchestrator(|_| {
        let body = serde_json::json!({
            "publish_url": "/a", "subscribe_url": "/b", "control_url": "/c", "manifest_id": "m",
        });
        (StatusCode::OK, body.to_string())
    })
    .await;
    let token = AuthTokens::new(b"s".to_vec()).mint("sess", NOW_UNIX_S);
    let client = reqwest::Client::new();
    let error = start_job(
        &client,
        &orch.base,
        &token,
        &request(),
        Duration::from_secs(5),
    )
    .await
    .expect_err("no events_url");
    assert!(
        matches!(
            error,
            StartJobError::MissingField {
                field: "events_url"
            }
        ),
        "{error:?}"
    );

    let orch = orchestrator(|_| (StatusCode::OK, "<html>".to_string())).await;
    let error = start_job(
        &client,
        &orch.base,
        &token,
        &request(),
        Duration::from_secs(5),
    )
    .await
    .expect_err("not JSON");
    assert!(
        matches!(error, StartJobError::BadJson { ref body, .. } if body == "<html>"),
        "{error:?}"
    );
}

#[tokio::test]
async fn start_job_times_out() {
    let mut orch = orchestrator(|_| (StatusCode::GATEWAY_TIMEOUT, String::new())).await;
    let token = AuthTokens::new(b"s".to_vec()).mint("sess", NOW_UNIX_S);
    let error = start_job(
        &reqwest::Client::new(),
        &orch.base,
        &token,
        &request(),
        Duration::from_millis(200),
    )
    .await
    .expect_err("timeout");
    assert!(matches!(error, StartJobError::Timeout), "{error:?}");
    // The request did reach the orchestrator; it just never answered.
    assert!(orch.requests.try_recv().is_ok());
}

#[tokio::test]
async fn start_job_reports_transport_failure() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let token = AuthTokens::new(b"s".to_vec()).mint("sess", NOW_UNIX_S);
    let error = start_job(
        &reqwest::Client::new(),
        &format!("http://{closed}"),
        &token,
        &request(),
        Duration::from_secs(5),
    )
    .await
    .expect_err("refused");
    assert!(matches!(error, StartJobError::Transport(_)), "{error:?}");
}
