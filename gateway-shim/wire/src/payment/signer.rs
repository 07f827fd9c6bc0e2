//! The HTTP client of go-livepeer's remote signer: `POST /sign-orchestrator-info` and
//! `POST /generate-live-payment`, with the JSON go-livepeer's `server/remote_signer.go` reads
//! and writes (`[]byte` fields travel as base64, the signer's address and signature as `0x` hex).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use super::{PaymentError, short_text};
use crate::grpc::proto;

/// Path of the signer's orchestrator-info signature endpoint.
pub const SIGN_ORCHESTRATOR_INFO_PATH: &str = "/sign-orchestrator-info";
/// Path of the signer's live payment endpoint.
pub const GENERATE_LIVE_PAYMENT_PATH: &str = "/generate-live-payment";
/// The status a signer answers when the gateway must refresh the orchestrator info
/// (go-livepeer's `HTTPStatusRefreshSession`).
pub const HTTP_STATUS_REFRESH_SESSION: u16 = 480;

/// The signer's Ethereum address and its signature for `GetOrchestrator`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerMaterial {
    /// The 20-byte gateway (sender) address.
    pub address: Vec<u8>,
    /// The signature (65 bytes for an EIP-191 ECDSA signature).
    pub signature: Vec<u8>,
}

impl SignerMaterial {
    /// Puts the address and signature into a `GetOrchestrator` request.
    pub fn apply(&self, request: &mut proto::OrchestratorRequest) {
        request.address = self.address.clone();
        request.sig = self.signature.clone();
    }
}

/// A `/generate-live-payment` request (go-livepeer's `RemotePaymentRequest`).
#[derive(Debug, Clone, PartialEq)]
pub struct LivePaymentRequest {
    /// Protobuf bytes of the orchestrator's `OrchestratorInfo`.
    pub orchestrator: Vec<u8>,
    /// The manifest id the orchestrator accounts the session under, once known.
    pub manifest_id: Option<String>,
    /// The signer's state from its previous answer, verbatim.
    pub state: Option<Value>,
    /// The job type, `lv2v` for live video-to-video.
    pub payment_type: String,
}

impl LivePaymentRequest {
    /// The JSON body.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "orchestrator".into(),
            json!(BASE64.encode(&self.orchestrator)),
        );
        body.insert("type".into(), json!(self.payment_type));
        // With a type the signer computes the pixels itself; go-livepeer still sends the field.
        body.insert("inPixels".into(), json!(0));
        if let Some(manifest_id) = &self.manifest_id {
            body.insert("manifestID".into(), json!(manifest_id));
        }
        if let Some(state) = &self.state {
            body.insert("state".into(), state.clone());
        }
        Value::Object(body)
    }
}

/// A `/generate-live-payment` answer (go-livepeer's `RemotePaymentResponse`).
#[derive(Debug, Clone, PartialEq)]
pub struct LivePaymentResponse {
    /// The `Livepeer-Payment` value.
    pub payment: String,
    /// The `Livepeer-Segment` value, when the signer made one.
    pub seg_creds: Option<String>,
    /// The signer's new state, to send back next time.
    pub state: Value,
}

/// How `/generate-live-payment` failed.
#[derive(Debug)]
pub enum GenerateError {
    /// HTTP 480: refresh the orchestrator info and ask again.
    RefreshSession,
    /// Any other failure.
    Payment(PaymentError),
}

/// A remote signer at one base URL.
#[derive(Clone)]
pub struct SignerClient {
    base: reqwest::Url,
    http: reqwest::Client,
}

impl std::fmt::Debug for SignerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl SignerClient {
    /// A client for the signer at `base` (`http://host:port`, optionally with a path prefix).
    pub fn new(base: reqwest::Url, http: reqwest::Client) -> Self {
        Self { base, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// POSTs `body` to `endpoint`; gives the status and the body bytes.
    async fn post(
        &self,
        endpoint: &'static str,
        body: &Value,
    ) -> Result<(u16, bytes::Bytes), PaymentError> {
        let unreachable = |e: reqwest::Error| PaymentError::SignerUnreachable {
            endpoint,
            error: e.to_string(),
        };
        let response = self
            .http
            .post(self.url(endpoint))
            .json(body)
            .timeout(super::PAYMENT_REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok((status, bytes))
    }

    /// `POST /sign-orchestrator-info`: the gateway's address and `GetOrchestrator` signature.
    pub async fn sign_orchestrator_info(&self) -> Result<SignerMaterial, PaymentError> {
        let endpoint = SIGN_ORCHESTRATOR_INFO_PATH;
        let (status, body) = self.post(endpoint, &json!({})).await?;
        if status != 200 {
            return Err(PaymentError::Signer {
                endpoint,
                status,
                body: short_text(&body),
            });
        }
        let answer_error = |detail: String| PaymentError::SignerAnswer { endpoint, detail };
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| answer_error(e.to_string()))?;
        let field = |name: &str| -> Result<Vec<u8>, PaymentError> {
            let text = value
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| answer_error(format!("`{name}` is missing or not a string")))?;
            let digits = text
                .strip_prefix("0x")
                .or_else(|| text.strip_prefix("0X"))
                .unwrap_or(text);
            hex::decode(digits).map_err(|e| answer_error(format!("`{name}` is not hex: {e}")))
        };
        Ok(SignerMaterial {
            address: field("address")?,
            signature: field("signature")?,
        })
    }

    /// `POST /generate-live-payment`.
    pub async fn generate_live_payment(
        &self,
        request: &LivePaymentRequest,
    ) -> Result<LivePaymentResponse, GenerateError> {
        let endpoint = GENERATE_LIVE_PAYMENT_PATH;
        let (status, body) = self
            .post(endpoint, &request.to_json())
            .await
            .map_err(GenerateError::Payment)?;
        if status == HTTP_STATUS_REFRESH_SESSION {
            return Err(GenerateError::RefreshSession);
        }
        if status != 200 {
            return Err(GenerateError::Payment(PaymentError::Signer {
                endpoint,
                status,
                body: short_text(&body),
            }));
        }
        parse_live_payment(&body).map_err(|detail| {
            GenerateError::Payment(PaymentError::SignerAnswer { endpoint, detail })
        })
    }
}

/// Reads a `/generate-live-payment` answer: `payment` must be a non-empty string, `segCreds` a
/// string when present, `state` an object.
pub fn parse_live_payment(body: &[u8]) -> Result<LivePaymentResponse, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let payment = match value.get("payment") {
        Some(Value::String(payment)) if !payment.is_empty() => payment.clone(),
        _ => return Err("`payment` is missing or empty".into()),
    };
    let seg_creds = match value.get("segCreds") {
        None | Some(Value::Null) => None,
        Some(Value::String(creds)) => Some(creds.clone()),
        Some(_) => return Err("`segCreds` is not a string".into()),
    };
    let state = match value.get("state") {
        Some(state @ Value::Object(_)) => state.clone(),
        _ => return Err("`state` is missing or not an object".into()),
    };
    Ok(LivePaymentResponse {
        payment,
        seg_creds,
        state,
    })
}
