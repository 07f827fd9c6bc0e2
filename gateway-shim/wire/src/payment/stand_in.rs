//! A remote signer stand-in for tests: the two endpoints of go-livepeer's remote signer with
//! deterministic answers, a record of every call, and a switch that answers the next payment
//! requests with 480 (refresh the orchestrator info).
//!
//! It signs nothing for real. Its `Livepeer-Payment` is a well-formed `net.Payment` built from
//! the ticket parameters it was given (sender [`STAND_IN_ADDRESS`], one ticket whose nonce
//! counts up), its `Livepeer-Segment` carries the orchestrator's auth token, and its state is a
//! counter with a keccak "signature" that it checks on the next request, the way a real signer
//! rejects tampered state.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message as _;
use serde_json::{Value, json};
use sha3::{Digest as _, Keccak256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::signer::{
    GENERATE_LIVE_PAYMENT_PATH, HTTP_STATUS_REFRESH_SESSION, SIGN_ORCHESTRATOR_INFO_PATH,
};
use crate::grpc::proto;
use crate::live::encode_segment_header;

/// The gateway address the stand-in reports and pays from.
pub const STAND_IN_ADDRESS: [u8; 20] = [0x5a; 20];

/// One request the stand-in received.
#[derive(Debug, Clone, PartialEq)]
pub struct SignerCall {
    /// The path called.
    pub path: &'static str,
    /// The JSON body.
    pub body: Value,
    /// For payment requests, the orchestrator info it carried.
    pub orchestrator: Option<proto::OrchestratorInfo>,
    /// The HTTP status the stand-in answered.
    pub status: u16,
}

struct Shared {
    calls: Mutex<Vec<SignerCall>>,
    refresh_next: AtomicU32,
    nonce: AtomicU64,
    changed: tokio::sync::watch::Sender<usize>,
}

impl Shared {
    fn record(&self, call: SignerCall) {
        // Recording cannot leave the list half-updated, so a poisoned lock is still usable.
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(call);
        self.changed.send_replace(calls.len());
    }
}

/// A running stand-in signer.
pub struct StandInSigner {
    url: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl StandInSigner {
    /// Serves the stand-in on `listener` (bind 127.0.0.1:0 in tests) until [`Self::stop`].
    pub fn start(listener: TcpListener) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            calls: Mutex::new(Vec::new()),
            refresh_next: AtomicU32::new(0),
            nonce: AtomicU64::new(0),
            changed: tokio::sync::watch::Sender::new(0),
        });
        let router = axum::Router::new()
            .route(SIGN_ORCHESTRATOR_INFO_PATH, post(sign_orchestrator_info))
            .route(GENERATE_LIVE_PAYMENT_PATH, post(generate_live_payment))
            .with_state(Arc::clone(&shared));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::warn!(message = "Stand-in signer stopped with an error.", error = %error);
            }
        });
        Ok(Self {
            url: format!("http://{address}"),
            shared,
            stop,
            task,
        })
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers the next `n` payment requests with 480.
    pub fn refresh_next(&self, n: u32) {
        self.shared.refresh_next.store(n, Ordering::SeqCst);
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<SignerCall> {
        self.shared
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until at least `n` calls were recorded.
    pub async fn wait_calls(&self, n: usize) {
        let mut rx = self.shared.changed.subscribe();
        // The sender lives in `self.shared`, so waiting cannot fail while `self` is borrowed.
        let _ = rx.wait_for(|&count| count >= n).await;
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn sign_orchestrator_info(
    State(shared): State<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.record(SignerCall {
        path: SIGN_ORCHESTRATOR_INFO_PATH,
        body,
        orchestrator: None,
        status: 200,
    });
    let signature: Vec<u8> = Keccak256::digest(STAND_IN_ADDRESS)
        .iter()
        .chain(Keccak256::digest(b"lvt stand-in").iter())
        .copied()
        .chain([27u8])
        .collect();
    Json(json!({
        "address": format!("0x{}", hex::encode(STAND_IN_ADDRESS)),
        "signature": format!("0x{}", hex::encode(signature)),
    }))
    .into_response()
}

/// The stand-in's state blob and its "signature".
fn state_value(nonce: u64) -> Value {
    let state = json!({"nonce": nonce}).to_string();
    let sig = Keccak256::digest(state.as_bytes());
    json!({"State": BASE64.encode(state.as_bytes()), "Sig": BASE64.encode(sig)})
}

/// Checks a state sent back: its signature must match its bytes.
fn state_is_valid(state: &Value) -> bool {
    let read = |name: &str| {
        state
            .get(name)
            .and_then(Value::as_str)
            .and_then(|text| BASE64.decode(text).ok())
    };
    match (read("State"), read("Sig")) {
        (Some(bytes), Some(sig)) => Keccak256::digest(&bytes).as_slice() == sig.as_slice(),
        _ => false,
    }
}

async fn generate_live_payment(
    State(shared): State<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let orchestrator = body
        .get("orchestrator")
        .and_then(Value::as_str)
        .and_then(|text| BASE64.decode(text).ok())
        .and_then(|bytes| proto::OrchestratorInfo::decode(bytes.as_slice()).ok());
    let answer = |status: u16, response: Response| {
        shared.record(SignerCall {
            path: GENERATE_LIVE_PAYMENT_PATH,
            body: body.clone(),
            orchestrator: orchestrator.clone(),
            status,
        });
        response
    };
    let Some(info) = orchestrator.clone() else {
        return answer(
            400,
            (
                StatusCode::BAD_REQUEST,
                "missing or invalid orchestrator info",
            )
                .into_response(),
        );
    };
    if let Some(state) = body.get("state")
        && !state_is_valid(state)
    {
        return answer(
            400,
            (StatusCode::BAD_REQUEST, "invalid signer state").into_response(),
        );
    }
    let refresh = shared
        .refresh_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refresh {
        let status = StatusCode::from_u16(HTTP_STATUS_REFRESH_SESSION)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return answer(
            HTTP_STATUS_REFRESH_SESSION,
            (status, "refresh session").into_response(),
        );
    }
    let nonce = shared.nonce.fetch_add(1, Ordering::SeqCst) + 1;
    let ticket_sig: Vec<u8> = Keccak256::digest(nonce.to_be_bytes())
        .iter()
        .chain(Keccak256::digest(STAND_IN_ADDRESS).iter())
        .copied()
        .chain([28u8])
        .collect();
    let payment = proto::Payment {
        ticket_params: info.ticket_params.clone(),
        sender: STAND_IN_ADDRESS.to_vec(),
        expiration_params: info
            .ticket_params
            .as_ref()
            .and_then(|t| t.expiration_params.clone()),
        ticket_sender_params: vec![proto::TicketSenderParams {
            sender_nonce: u32::try_from(nonce).unwrap_or(u32::MAX),
            sig: ticket_sig,
        }],
        expected_price: info.price_info.clone(),
    };
    let manifest_id = body
        .get("manifestID")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| info.auth_token.as_ref().map(|t| t.session_id.clone()))
        .unwrap_or_default();
    let seg_creds = encode_segment_header(&proto::SegData {
        manifest_id: manifest_id.into_bytes(),
        auth_token: info.auth_token.clone(),
        ..Default::default()
    });
    answer(
        200,
        Json(json!({
            "payment": BASE64.encode(payment.encode_to_vec()),
            "segCreds": seg_creds,
            "state": state_value(nonce),
        }))
        .into_response(),
    )
}
