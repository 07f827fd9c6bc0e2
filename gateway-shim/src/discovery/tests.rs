//! Tests of the discovery sources against HTTP servers on 127.0.0.1:0, and of the pure parts
//! of the inventory (classification and selection order).

use std::cmp::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::routing::get;

use super::inventory::{order_entries, selection_order};
use super::*;
use lvt_wire::grpc::{GrpcError, GrpcStage, LiveModelSummary, OrchestratorSummary};

fn http() -> reqwest::Client {
    reqwest::Client::builder().build().expect("a plain client")
}

/// Serves `router` on 127.0.0.1:0; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn uris(candidates: &[Candidate]) -> Vec<String> {
    candidates.iter().map(|c| c.uri.to_string()).collect()
}

fn webhook(url: String, timeout_ms: u64) -> WebhookSource {
    WebhookSource {
        url,
        timeout: Duration::from_millis(timeout_ms),
    }
}

#[tokio::test]
async fn static_list_parses_dedups_and_keeps_order() {
    let source = StaticSource {
        orchestrators: vec![
            StaticEntry {
                address: "b.example:8935".into(),
                score: Some(0.2),
            },
            StaticEntry {
                address: "http://127.0.0.1:9000".into(),
                score: None,
            },
            StaticEntry {
                address: "https://b.example:8935/".into(),
                score: Some(0.7),
            },
        ],
    };
    let got = source.candidates(&http()).await.unwrap();
    assert_eq!(
        uris(&got),
        ["https://b.example:8935", "http://127.0.0.1:9000"]
    );
    // The same orchestrator written twice keeps its first place and its best score.
    assert_eq!(got[0].score, Some(0.7));
    assert!(got.iter().all(|c| c.source == "static"));
    let bad = StaticSource::from_addresses(["ftp://x:1"]);
    let e = bad.resolve().unwrap_err();
    assert!(matches!(e, SourceError::BadAddress { .. }), "{e}");
    assert!(
        e.to_string().starts_with("static list: \"ftp://x:1\""),
        "{e}"
    );
}

#[test]
fn static_entries_reject_unknown_keys_and_default_the_score_to_zero() {
    #[derive(serde::Deserialize)]
    struct List {
        orchestrators: Vec<StaticEntry>,
    }
    let list: List = toml::from_str("[[orchestrators]]\naddress = \"a:1\"").unwrap();
    assert_eq!(list.orchestrators[0].score, Some(0.0));
    assert!(toml::from_str::<List>("[[orchestrators]]\naddress = \"a:1\"\nscor = 1").is_err());
}

#[tokio::test]
async fn webhook_tolerates_unknown_fields_and_missing_scores() {
    let body = r#"[
        {"address": "https://low.example:8935", "score": 0.2, "region": "eu"},
        {"address": "http://127.0.0.1:7000"},
        {"address": "high.example:8935", "score": 0.8, "extra": {"nested": true}},
        {"address": "null.example:8935", "score": null}
    ]"#;
    let base = serve(Router::new().route("/orchs", get(move || async move { body }))).await;
    let got = webhook(format!("{base}/orchs"), 2_000)
        .candidates(&http())
        .await
        .unwrap();
    // Source order is kept: ranking by score is the caller's business.
    assert_eq!(
        uris(&got),
        [
            "https://low.example:8935",
            "http://127.0.0.1:7000",
            "https://high.example:8935",
            "https://null.example:8935"
        ]
    );
    let scores: Vec<Option<f64>> = got.iter().map(|c| c.score).collect();
    assert_eq!(scores, [Some(0.2), None, Some(0.8), None]);
    assert!(got.iter().all(|c| c.source == "webhook"));
}

#[tokio::test]
async fn webhook_errors_name_the_url_and_the_problem() {
    let big = format!("[{}]", "{\"address\": \"a.example:1\"},".repeat(200_000));
    let base = serve(
        Router::new()
            .route(
                "/fail",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route("/garbage", get(|| async { "<html>not json</html>" }))
            .route("/object", get(|| async { r#"{"address": "a:1"}"# }))
            .route(
                "/badaddr",
                get(|| async { r#"[{"address": "ftp://a:1"}]"# }),
            )
            .route("/big", get(move || async move { big }))
            .route("/hang", get(std::future::pending::<&'static str>)),
    )
    .await;
    let err = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let e = webhook(url.clone(), 300)
                .candidates(&http())
                .await
                .unwrap_err();
            let text = e.to_string();
            assert!(text.contains(&url), "{text}");
            (e, text)
        }
    };
    let (e, text) = err("/fail").await;
    assert!(
        matches!(e, SourceError::Status { status: 500, .. }),
        "{text}"
    );
    let (e, text) = err("/garbage").await;
    assert!(matches!(e, SourceError::Body { .. }), "{text}");
    assert!(text.contains("not a JSON array"), "{text}");
    let (e, _) = err("/object").await;
    assert!(matches!(e, SourceError::Body { .. }));
    let (e, text) = err("/badaddr").await;
    assert!(matches!(e, SourceError::BadAddress { .. }), "{text}");
    let (e, text) = err("/big").await;
    assert!(matches!(e, SourceError::TooLarge { .. }), "{text}");
    let (e, text) = err("/hang").await;
    assert!(matches!(e, SourceError::Request { .. }), "{text}");
    assert!(text.contains("no answer within 300 ms"), "{text}");
}

#[tokio::test]
async fn naap_asks_for_the_model_and_keeps_matching_rows() {
    // Rows as livepeer/naap-analytics serves them: one per (orchestrator, pipeline).
    let body = r#"[
        {"address": "https://a.example:8935", "score": 0.91,
         "capabilities": ["live-video-to-video/streamdiffusion", "live-video-to-video/noop"],
         "last_seen_ms": 1700000000000, "last_seen": "2023-11-14T22:13:20.000Z", "recent_work": true},
        {"address": "https://a.example:8935", "score": 0.5,
         "capabilities": ["text-to-image/sdxl"], "last_seen_ms": 1, "recent_work": false},
        {"address": "https://b.example:8935", "score": 0.0,
         "capabilities": ["live-video-to-video/noop"], "recent_work": false},
        {"url": "https://c.example:8935", "capabilities": []}
    ]"#;
    let router = Router::new().route(
        "/v1/discover/orchestrators",
        get(move |RawQuery(q): RawQuery| async move {
            // The server must see the capability filter; answer 400 otherwise.
            let q = q.unwrap_or_default();
            if q == "caps=live-video-to-video%2Fstreamdiffusion" {
                (StatusCode::OK, body)
            } else {
                (StatusCode::BAD_REQUEST, "bad caps")
            }
        }),
    );
    let base = serve(router).await;
    let source = NaapSource {
        base_url: format!("{base}/"),
        model: "streamdiffusion".into(),
        timeout: Duration::from_secs(2),
    };
    let got = source.candidates(&http()).await.unwrap();
    // b does not list the model; c lists no capabilities at all and is trusted to match.
    assert_eq!(
        uris(&got),
        ["https://a.example:8935", "https://c.example:8935"]
    );
    assert_eq!(got[0].score, Some(0.91));
    assert_eq!(got[1].score, None);
    assert!(got.iter().all(|c| c.source == "naap"));
}

#[test]
fn naap_accepts_the_wrapped_shape_and_rejects_others() {
    let wrapped = br#"{"data": [{"address": "a.example:1", "score": 0.3}], "meta": {}}"#;
    let got = naap::parse_naap_body("naap", "noop", wrapped).unwrap();
    assert_eq!(uris(&got), ["https://a.example:1"]);
    let e = naap::parse_naap_body("naap X", "noop", br#"{"orchestrators": []}"#).unwrap_err();
    assert!(matches!(e, SourceError::Body { .. }), "{e}");
    assert!(e.to_string().starts_with("naap X: "), "{e}");
    let e = naap::parse_naap_body("naap", "noop", br#"[{"score": 1}]"#).unwrap_err();
    assert!(e.to_string().contains("row 0 has no address"), "{e}");
}

#[tokio::test]
async fn naap_errors_name_the_request_url() {
    let base = serve(Router::new()).await;
    let source = NaapSource {
        base_url: base.clone(),
        model: "noop".into(),
        timeout: Duration::from_secs(2),
    };
    let e = source.candidates(&http()).await.unwrap_err();
    assert!(matches!(e, SourceError::Status { status: 404, .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("{base}/v1/discover/orchestrators?caps=")),
        "{e}"
    );
}

#[test]
fn merge_keeps_the_first_source_of_each_orchestrator() {
    let c = |uri: &str, source| Candidate {
        uri: uri.parse().unwrap(),
        score: None,
        source,
    };
    let merged = merge([
        vec![c("a.example:1", "static"), c("b.example:1", "static")],
        vec![
            c("https://b.example:1", "webhook"),
            c("c.example:1", "webhook"),
        ],
    ]);
    let got: Vec<(String, &str)> = merged
        .iter()
        .map(|c| (c.uri.to_string(), c.source))
        .collect();
    assert_eq!(
        got,
        [
            ("https://a.example:1".to_string(), "static"),
            ("https://b.example:1".to_string(), "static"),
            ("https://c.example:1".to_string(), "webhook")
        ]
    );
}

fn summary(models: &[(&str, bool, u32, u32)]) -> OrchestratorSummary {
    OrchestratorSummary {
        transcoder_uri: "https://o.example:8935".into(),
        eth_address: None,
        advertises_live_video_to_video: !models.is_empty(),
        live_models: models
            .iter()
            .map(|&(id, warm, capacity, in_use)| LiveModelSummary {
                model_id: id.into(),
                warm,
                capacity,
                capacity_in_use: in_use,
                runner_version: String::new(),
            })
            .collect(),
        gpus: Vec::new(),
        price_per_unit: None,
        pixels_per_unit: None,
        live_prices: Vec::new(),
        auth_token_present: true,
        auth_token_expiration_unix_s: None,
        nodes: Vec::new(),
    }
}

fn reason(status: Status) -> Option<DropReason> {
    match status {
        Status::Usable => None,
        Status::Dropped { reason, .. } => Some(reason),
    }
}

#[test]
fn classify_maps_answers_and_errors_to_reasons() {
    let ok = |models: &[(&str, bool, u32, u32)]| reason(classify(Ok(&summary(models)), "noop"));
    assert_eq!(ok(&[("noop", true, 1, 0)]), None);
    assert_eq!(ok(&[("noop", false, 2, 3)]), None);
    assert_eq!(
        ok(&[("streamdiffusion", true, 1, 0)]),
        Some(DropReason::Incapable)
    );
    assert_eq!(ok(&[]), Some(DropReason::Incapable));
    assert_eq!(ok(&[("noop", true, 0, 4)]), Some(DropReason::NoCapacity));
    let mut no_uri = summary(&[("noop", true, 1, 0)]);
    no_uri.transcoder_uri.clear();
    assert_eq!(
        reason(classify(Ok(&no_uri), "noop")),
        Some(DropReason::BadResponse)
    );
    let Status::Dropped { detail, .. } = classify(
        Ok(&summary(&[("a", true, 1, 0), ("b", true, 1, 0)])),
        "noop",
    ) else {
        panic!("an orchestrator without the model is not usable");
    };
    assert_eq!(detail, "model noop not offered (offers: a, b)");

    let err = |e: GrpcError| reason(classify(Err(&e), "noop"));
    assert_eq!(
        err(GrpcError::Connect {
            addr: "x".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
        }),
        Some(DropReason::Unreachable)
    );
    assert_eq!(
        err(GrpcError::Timeout {
            stage: GrpcStage::Call,
            addr: "x".into(),
            timeout_ms: 5
        }),
        Some(DropReason::Timeout)
    );
    assert_eq!(
        err(GrpcError::Status {
            code: tonic::Code::Unknown,
            message: "Invalid orchestrator request (OrchestratorCapped)".into()
        }),
        Some(DropReason::NoCapacity)
    );
    assert_eq!(
        err(GrpcError::Status {
            code: tonic::Code::Unimplemented,
            message: String::new()
        }),
        Some(DropReason::BadResponse)
    );
}

fn entry(uri: &str, warm: Option<bool>, latency_ms: Option<u64>, usable: bool) -> InventoryEntry {
    InventoryEntry {
        candidate: Candidate {
            uri: uri.parse().unwrap(),
            score: None,
            source: "static",
        },
        latency_ms,
        cert_fingerprint: None,
        info: warm.map(|w| summary(&[("noop", w, 1, 0)])),
        status: if usable {
            Status::Usable
        } else {
            Status::Dropped {
                reason: DropReason::Timeout,
                detail: String::new(),
            }
        },
    }
}

#[test]
fn selection_puts_warm_first_then_lowest_latency() {
    let mut entries = vec![
        entry("dropped-1.example:1", None, None, false),
        entry("cold-fast.example:1", Some(false), Some(5), true),
        entry("warm-slow.example:1", Some(true), Some(900), true),
        entry("dropped-0.example:1", None, None, false),
        entry("warm-fast.example:1", Some(true), Some(40), true),
        entry("warm-tie-b.example:1", Some(true), Some(40), true),
        entry("cold-slow.example:1", Some(false), Some(60), true),
    ];
    order_entries(&mut entries, "noop");
    let order: Vec<String> = entries
        .iter()
        .map(|e| e.candidate.uri.host.clone())
        .collect();
    assert_eq!(
        order,
        [
            "warm-fast.example",
            "warm-tie-b.example",
            "warm-slow.example",
            "cold-fast.example",
            "cold-slow.example",
            "dropped-1.example",
            "dropped-0.example"
        ]
    );
    // Warmth is judged for the model asked for: for another model nobody is warm.
    let a = entry("a.example:1", Some(true), Some(50), true);
    let b = entry("b.example:1", Some(false), Some(10), true);
    assert_eq!(selection_order(&a, &b, "noop"), Ordering::Less);
    assert_eq!(selection_order(&a, &b, "other"), Ordering::Greater);
}

#[test]
fn table_shows_one_row_per_candidate_and_a_summary() {
    let inv = Inventory {
        model_id: "noop".into(),
        timeout_ms: 3_000,
        entries: vec![
            entry("a.example:1", Some(true), Some(12), true),
            InventoryEntry {
                status: Status::Dropped {
                    reason: DropReason::Unreachable,
                    detail: "refused".into(),
                },
                ..entry("b.example:1", None, None, false)
            },
        ],
    };
    let table = inv.table();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("URI"), "{table}");
    assert!(lines[1].starts_with("https://a.example:1"), "{table}");
    assert!(lines[1].contains("noop(warm, 1 idle, 0 in use)"), "{table}");
    assert!(lines[1].ends_with("usable"), "{table}");
    assert!(
        lines[2].ends_with("dropped: unreachable (refused)"),
        "{table}"
    );
    assert_eq!(
        lines[3],
        "1 of 2 candidate(s) usable for live-video-to-video/noop"
    );
    let json = serde_json::to_value(&inv).unwrap();
    assert_eq!(json["entries"][0]["status"], "usable");
    assert_eq!(json["entries"][0]["uri"], "https://a.example:1");
    assert_eq!(json["entries"][1]["reason"], "unreachable");
}

#[tokio::test]
async fn timeouts_apply_to_stalled_bodies() {
    // Headers at once, then a body that never ends.
    let router = Router::new().route(
        "/slow",
        get(|| async {
            use futures::StreamExt as _;
            let first: Result<bytes::Bytes, std::io::Error> =
                Ok(bytes::Bytes::from_static(b"[{\"address\":"));
            let stream = futures::stream::iter([first]).chain(futures::stream::pending());
            axum::body::Body::from_stream(stream)
        }),
    );
    let base = serve(router).await;
    let started = std::time::Instant::now();
    let e = webhook(format!("{base}/slow"), 200)
        .candidates(&http())
        .await
        .unwrap_err();
    assert!(matches!(e, SourceError::Request { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[cfg(feature = "chain")]
#[test]
fn the_configuration_addresses_are_the_chain_constants() {
    use super::chain::{ARBITRUM_ONE_AI_SERVICE_REGISTRY, ARBITRUM_ONE_CONTROLLER};
    use super::config::{
        ARBITRUM_ONE_AI_SERVICE_REGISTRY_HEX, ARBITRUM_ONE_CONTROLLER_HEX, parse_eth_address,
    };
    assert_eq!(
        ARBITRUM_ONE_CONTROLLER.to_string(),
        ARBITRUM_ONE_CONTROLLER_HEX
    );
    assert_eq!(
        ARBITRUM_ONE_AI_SERVICE_REGISTRY.to_string(),
        ARBITRUM_ONE_AI_SERVICE_REGISTRY_HEX
    );
    // The configuration's own parser reads what alloy reads, with or without 0x, any case.
    for text in [
        "0xD8E8328501E9645d16Cf49539efC04f734606ee4",
        "d8e8328501e9645d16cf49539efc04f734606ee4",
        " 0XD8E8328501E9645D16CF49539EFC04F734606EE4 ",
    ] {
        let parsed = parse_eth_address("controller", text).expect(text);
        assert_eq!(
            alloy_primitives::Address::from(parsed),
            ARBITRUM_ONE_CONTROLLER
        );
    }
    for bad in ["0x1234", "0xZZE8328501E9645d16Cf49539efC04f734606ee4", ""] {
        assert!(parse_eth_address("controller", bad).is_err(), "{bad:?}");
    }
}
