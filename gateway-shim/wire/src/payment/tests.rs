//! The payment loop's schedule on paused time, and the signer protocol's JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

use super::signer::{LivePaymentRequest, parse_live_payment};
use super::*;

#[tokio::test(start_paused = true)]
async fn loop_pays_every_interval_after_the_first_and_stops_on_cancel() {
    let cancel = CancellationToken::new();
    let ticks = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&ticks);
    let task = tokio::spawn(run_every(PAYMENT_INTERVAL, cancel.clone(), move || {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }));
    // Let the loop start its timer.
    tokio::task::yield_now().await;
    tokio::time::advance(Duration::from_millis(4_999)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        0,
        "the job start paid the first 5 s"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(ticks.load(Ordering::SeqCst), 1);
    for expected in 2..=4 {
        tokio::time::advance(PAYMENT_INTERVAL).await;
        tokio::task::yield_now().await;
        assert_eq!(ticks.load(Ordering::SeqCst), expected);
    }
    cancel.cancel();
    let report = task.await.expect("loop task");
    assert_eq!(report.payments, 4);
    assert_eq!(report.failures, 0);
    tokio::time::advance(PAYMENT_INTERVAL * 3).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        4,
        "nothing is paid after cancel"
    );
}

#[tokio::test(start_paused = true)]
async fn loop_counts_failures_and_goes_on() {
    let cancel = CancellationToken::new();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let task = tokio::spawn(run_every(PAYMENT_INTERVAL, cancel.clone(), move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n.is_multiple_of(2) {
                Err(PaymentError::Orchestrator {
                    status: 400,
                    body: "Insufficient balance".into(),
                })
            } else {
                Ok(())
            }
        }
    }));
    tokio::task::yield_now().await;
    for _ in 0..4 {
        tokio::time::advance(PAYMENT_INTERVAL).await;
        tokio::task::yield_now().await;
    }
    cancel.cancel();
    let report = task.await.expect("loop task");
    assert_eq!((report.payments, report.failures), (2, 2));
    assert!(
        report
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Insufficient balance"))
    );
}

#[test]
fn payment_request_json_matches_go_livepeer() {
    let request = LivePaymentRequest {
        orchestrator: vec![1, 2, 3],
        manifest_id: Some("abcd1234".into()),
        state: Some(json!({"State": "AQ==", "Sig": "Ag=="})),
        payment_type: LIVE_PAYMENT_TYPE.into(),
    };
    assert_eq!(
        request.to_json(),
        json!({
            "orchestrator": "AQID",
            "type": "lv2v",
            "inPixels": 0,
            "manifestID": "abcd1234",
            "state": {"State": "AQ==", "Sig": "Ag=="},
        })
    );
    let first = LivePaymentRequest {
        manifest_id: None,
        state: None,
        ..request
    };
    let body = first.to_json();
    assert!(body.get("state").is_none() && body.get("manifestID").is_none());
}

#[test]
fn payment_answers_are_checked() {
    let ok = parse_live_payment(
        br#"{"payment":"cA==","segCreds":"cw==","state":{"State":"","Sig":""}}"#,
    )
    .expect("valid");
    assert_eq!(ok.payment, "cA==");
    assert_eq!(ok.seg_creds.as_deref(), Some("cw=="));
    let no_creds = parse_live_payment(br#"{"payment":"cA==","state":{}}"#).expect("valid");
    assert_eq!(no_creds.seg_creds, None);
    for bad in [
        &br#"{"payment":"","state":{}}"#[..],
        br#"{"state":{}}"#,
        br#"{"payment":"cA=="}"#,
        br#"{"payment":"cA==","state":{},"segCreds":3}"#,
        b"not json",
    ] {
        assert!(
            parse_live_payment(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn offchain_headers_carry_the_auth_token_and_an_empty_payment() {
    let token = proto::AuthToken {
        token: vec![9; 32],
        session_id: "sess".into(),
        expiration: 42,
    };
    let info = proto::OrchestratorInfo {
        auth_token: Some(token.clone()),
        ..Default::default()
    };
    let mut payer = Payer::new(&PaymentConfig::default(), reqwest::Client::new(), info);
    assert!(!payer.is_onchain());
    let headers = payer.job_headers().await.expect("offchain headers");
    assert_eq!(headers.payment, "");
    let seg = crate::live::decode_segment_header(&headers.segment).expect("segment");
    assert_eq!(seg.auth_token, Some(token));
    payer
        .pay("http://127.0.0.1:9")
        .await
        .expect("offchain pays nothing");
    let report = spawn_loop(
        payer,
        "http://127.0.0.1:9".into(),
        PAYMENT_INTERVAL,
        CancellationToken::new(),
    )
    .await
    .expect("task");
    assert_eq!(report, PaymentLoopReport::default());

    let mut no_token = Payer::new(
        &PaymentConfig::default(),
        reqwest::Client::new(),
        proto::OrchestratorInfo::default(),
    );
    assert!(matches!(
        no_token.job_headers().await,
        Err(PaymentError::NoAuthToken)
    ));
}
