//! Starting a live video-to-video job, client side, and the types both sides share.
//!
//! It owns the orchestrator address (`OrchestratorUri`), the job start request and response
//! (`POST {transcoder}/live-video-to-video`), the `Livepeer-Segment` and `Livepeer-Payment`
//! headers, and the orchestrator's auth tokens (`AuthTokens`), minted and checked exactly as
//! go-livepeer does so that the simulator and real orchestrators accept the same requests.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::grpc::proto;

pub mod params;

/// How long a gateway gives the job start request (go-livepeer uses 5 s).
pub const START_JOB_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an auth token minted by `GetOrchestrator` stays valid (go-livepeer: 30 minutes).
pub const AUTH_TOKEN_VALIDITY_S: i64 = 30 * 60;

/// Path of the job start endpoint under the orchestrator's service URI.
pub const LIVE_VIDEO_TO_VIDEO_PATH: &str = "/live-video-to-video";

/// Header carrying base64 protobuf `net.SegData` (the auth token).
pub const SEGMENT_HEADER: &str = "Livepeer-Segment";
/// Header carrying base64 protobuf `net.Payment` (empty offchain).
pub const PAYMENT_HEADER: &str = "Livepeer-Payment";
/// Value of the `Authorization` header gateways send with AI requests.
pub const AI_WORKER_AUTHORIZATION: &str = "Livepeer-AI-Worker-1.0";

/// Most bytes of an error body kept in `StartJobError::Status`; error bodies are short texts.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// Transport of an orchestrator address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// TLS (the orchestrator default, self-signed certificate).
    Https,
    /// Plaintext; HTTP/2 over it uses prior knowledge.
    Http,
}

impl Scheme {
    /// `"https"` or `"http"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Https => 443,
            Scheme::Http => 80,
        }
    }
}

/// Address of an orchestrator: `host:port` (TLS), `https://host:port` or `http://host:port`.
///
/// The host is kept without IPv6 brackets; `Display` puts them back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrchestratorUri {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

/// Why a string is not an orchestrator address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("orchestrator address is empty")]
    Empty,
    #[error("unsupported scheme '{scheme}' in '{input}': use https:// or http://")]
    UnsupportedScheme { input: String, scheme: String },
    #[error("missing host in orchestrator address '{input}'")]
    MissingHost { input: String },
    #[error("invalid host '{host}' in orchestrator address '{input}'")]
    InvalidHost { input: String, host: String },
    #[error("invalid port '{port}' in orchestrator address '{input}': expected 1-65535")]
    InvalidPort { input: String, port: String },
    #[error(
        "unexpected path, query or user info in orchestrator address '{input}': give only scheme, host and port"
    )]
    UnexpectedPath { input: String },
}

impl OrchestratorUri {
    /// Builds an address from parts.
    pub fn new(scheme: Scheme, host: impl Into<String>, port: u16) -> Self {
        Self {
            scheme,
            host: host.into(),
            port,
        }
    }

    /// True when the address uses TLS.
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::Https
    }

    /// `host:port`, with brackets around an IPv6 host.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for OrchestratorUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())
    }
}

impl FromStr for OrchestratorUri {
    type Err = UriError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(UriError::Empty);
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => {
                let parsed = if scheme.eq_ignore_ascii_case("https") {
                    Scheme::Https
                } else if scheme.eq_ignore_ascii_case("http") {
                    Scheme::Http
                } else {
                    return Err(UriError::UnsupportedScheme {
                        input: input.to_string(),
                        scheme: scheme.to_string(),
                    });
                };
                (parsed, rest)
            }
            // go-livepeer treats an address without a scheme as https.
            None => (Scheme::Https, trimmed),
        };
        // A single trailing slash is harmless and common in copied URLs; anything after it
        // would be silently dropped, so refuse it instead.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(UriError::UnexpectedPath {
                input: input.to_string(),
            });
        }
        let (host, port) = split_host_port(input, rest)?;
        let port = match port {
            None => scheme.default_port(),
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => {
                    return Err(UriError::InvalidPort {
                        input: input.to_string(),
                        port: text.to_string(),
                    });
                }
            },
        };
        Ok(Self {
            scheme,
            host: host.to_string(),
            port,
        })
    }
}

/// Splits `host[:port]` or `[v6][:port]`, checking the host.
fn split_host_port<'a>(input: &str, rest: &'a str) -> Result<(&'a str, Option<&'a str>), UriError> {
    let (host, port) = if let Some(after_bracket) = rest.strip_prefix('[') {
        let Some((host, tail)) = after_bracket.split_once(']') else {
            return Err(UriError::InvalidHost {
                input: input.to_string(),
                host: rest.to_string(),
            });
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UriError::InvalidHost {
                input: input.to_string(),
                host: host.to_string(),
            });
        }
        let port = match tail {
            "" => None,
            _ => match tail.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err(UriError::InvalidHost {
                        input: input.to_string(),
                        host: rest.to_string(),
                    });
                }
            },
        };
        (host, port)
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(UriError::MissingHost {
            input: input.to_string(),
        });
    }
    let bracketed = rest.starts_with('[');
    let valid = bracketed
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !valid {
        return Err(UriError::InvalidHost {
            input: input.to_string(),
            host: host.to_string(),
        });
    }
    Ok((host, port))
}

impl Serialize for OrchestratorUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OrchestratorUri {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Body of `POST /live-video-to-video`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveVideoToVideoRequest {
    /// Pipeline model; gateways default it to `noop`.
    pub model_id: String,
    /// Initial pipeline parameters (the first control message).
    #[serde(default)]
    pub params: serde_json::Value,
    /// The gateway's id for this request.
    #[serde(default)]
    pub gateway_request_id: String,
    /// The stream this job serves.
    #[serde(default)]
    pub stream_id: String,
}

/// 200 answer of `POST /live-video-to-video`, as it arrives: URLs may be relative.
///
/// Missing fields deserialize as empty strings so that the caller, not serde, decides which
/// ones are required (see [`LiveVideoToVideoResponse::missing_field`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveVideoToVideoResponse {
    #[serde(default)]
    pub publish_url: String,
    #[serde(default)]
    pub subscribe_url: String,
    #[serde(default)]
    pub control_url: String,
    #[serde(default)]
    pub events_url: String,
    #[serde(default)]
    pub manifest_id: String,
}

/// The four trickle channel URLs of a job, absolute, and its manifest id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobUrls {
    pub publish_url: String,
    pub subscribe_url: String,
    pub control_url: String,
    pub events_url: String,
    pub manifest_id: String,
}

impl LiveVideoToVideoResponse {
    /// The first required field that is empty, if any.
    ///
    /// go-livepeer's gateway insists on `control_url`, `events_url` and `manifest_id`; we also
    /// insist on the publish and subscribe URLs because a live job cannot run without them and
    /// a measurement should say so at job start rather than at the first segment.
    pub fn missing_field(&self) -> Option<&'static str> {
        [
            ("publish_url", &self.publish_url),
            ("subscribe_url", &self.subscribe_url),
            ("control_url", &self.control_url),
            ("events_url", &self.events_url),
            ("manifest_id", &self.manifest_id),
        ]
        .into_iter()
        .find(|(_, value)| value.is_empty())
        .map(|(name, _)| name)
    }

    /// Makes every URL absolute against `base` (the orchestrator's service URI).
    pub fn resolve(&self, base: &str) -> JobUrls {
        JobUrls {
            publish_url: resolve_url(base, &self.publish_url),
            subscribe_url: resolve_url(base, &self.subscribe_url),
            control_url: resolve_url(base, &self.control_url),
            events_url: resolve_url(base, &self.events_url),
            manifest_id: self.manifest_id.clone(),
        }
    }
}

/// Prefixes a relative URL with `base`, joining with exactly one slash; absolute URLs pass.
fn resolve_url(base: &str, url: &str) -> String {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return url.to_string();
    }
    let base = base.trim_end_matches('/');
    if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        format!("{base}/{url}")
    }
}

/// Why a `Livepeer-Segment` header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SegmentHeaderError {
    #[error("segment header is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("segment header is not a protobuf SegData: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// `Livepeer-Segment` value for a job start: base64 protobuf `SegData` carrying the token.
///
/// The manifest id is the token's session id, as go-livepeer's gateway sends it; offchain the
/// signature is left empty because orchestrators do not check it there.
pub fn segment_header(auth_token: &proto::AuthToken) -> String {
    encode_segment_header(&proto::SegData {
        manifest_id: auth_token.session_id.clone().into_bytes(),
        auth_token: Some(auth_token.clone()),
        ..Default::default()
    })
}

/// `Livepeer-Segment` value for any `SegData`.
pub fn encode_segment_header(seg: &proto::SegData) -> String {
    BASE64.encode(seg.encode_to_vec())
}

/// Reads a `Livepeer-Segment` value.
pub fn decode_segment_header(s: &str) -> Result<proto::SegData, SegmentHeaderError> {
    let bytes = BASE64.decode(s.trim())?;
    Ok(proto::SegData::decode(bytes.as_slice())?)
}

/// `Livepeer-Payment` value offchain.
///
/// An empty `Payment` encodes to zero bytes, whose base64 is the empty string; go-livepeer's
/// offchain gateway sends exactly that, and its orchestrator decodes it as an empty payment.
pub fn payment_header_empty() -> String {
    BASE64.encode(proto::Payment::default().encode_to_vec())
}

/// Why a job did not start.
///
/// `Status` is the orchestrator answering with an error; keep `status` and `body` to classify
/// it (503 `insufficient capacity`, 403 auth, 402/400 payment, 500 runner start failure).
#[derive(Debug, thiserror::Error)]
pub enum StartJobError {
    #[error("job start answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("job start timed out")]
    Timeout,
    #[error("job start request failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("job start answer is not the expected JSON: {source}")]
    BadJson {
        #[source]
        source: serde_json::Error,
        body: String,
    },
    #[error("job start answer lacks {field}")]
    MissingField { field: &'static str },
}

impl StartJobError {
    /// HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            StartJobError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn from_reqwest(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            StartJobError::Timeout
        } else {
            StartJobError::Transport(error)
        }
    }
}

/// Starts a live video-to-video job: `POST {transcoder}/live-video-to-video`.
///
/// `transcoder` is `OrchestratorInfo.transcoder`; relative URLs in the answer are resolved
/// against it. `timeout` bounds the whole exchange (use [`START_JOB_TIMEOUT`] to match
/// go-livepeer). The client must accept self-signed certificates, see [`insecure_http_client`].
pub async fn start_job(
    client: &reqwest::Client,
    transcoder: &str,
    token: &proto::AuthToken,
    req: &LiveVideoToVideoRequest,
    timeout: Duration,
) -> Result<JobUrls, StartJobError> {
    let segment = segment_header(token);
    let payment = payment_header_empty();
    start_job_with_headers(client, transcoder, &segment, &payment, req, timeout).await
}

/// [`start_job`] with explicit `Livepeer-Segment` and `Livepeer-Payment` values: the ones a
/// remote signer produced (see `crate::payment::Payer::job_headers`) when paying on-chain.
pub async fn start_job_with_headers(
    client: &reqwest::Client,
    transcoder: &str,
    segment: &str,
    payment: &str,
    req: &LiveVideoToVideoRequest,
    timeout: Duration,
) -> Result<JobUrls, StartJobError> {
    let url = format!(
        "{}{}",
        transcoder.trim_end_matches('/'),
        LIVE_VIDEO_TO_VIDEO_PATH
    );
    let exchange = async {
        let response = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SEGMENT_HEADER, segment)
            .header(PAYMENT_HEADER, payment)
            .header(reqwest::header::AUTHORIZATION, AI_WORKER_AUTHORIZATION)
            .json(req)
            .send()
            .await
            .map_err(StartJobError::from_reqwest)?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(StartJobError::from_reqwest)?;
        Ok::<_, StartJobError>((status, body))
    };
    // The timeout covers sending, waiting and reading the body, like the gateway's context.
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| StartJobError::Timeout)??;
    if status != 200 {
        let kept = &body[..body.len().min(MAX_ERROR_BODY_BYTES)];
        return Err(StartJobError::Status {
            status,
            body: String::from_utf8_lossy(kept).trim_end().to_string(),
        });
    }
    let answer: LiveVideoToVideoResponse =
        serde_json::from_slice(&body).map_err(|source| StartJobError::BadJson {
            source,
            body: String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY_BYTES)])
                .to_string(),
        })?;
    if let Some(field) = answer.missing_field() {
        return Err(StartJobError::MissingField { field });
    }
    Ok(answer.resolve(transcoder))
}

/// An HTTP client for orchestrators: accepts self-signed certificates (recording the last
/// fingerprint seen), offers HTTP/2 and HTTP/1.1 over TLS.
pub fn insecure_http_client()
-> Result<(reqwest::Client, crate::tls::FingerprintRecorder), reqwest::Error> {
    let (config, recorder) =
        crate::tls::insecure_client_config(&[crate::tls::ALPN_H2, crate::tls::ALPN_HTTP1]);
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(&config))
        .build()?;
    Ok((client, recorder))
}

/// Why an orchestrator refuses an auth token. The texts are go-livepeer's, byte for byte,
/// because gateways and reports match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing auth token")]
    Missing,
    #[error("invalid auth token")]
    Invalid,
    #[error("expired auth token")]
    Expired,
}

/// The orchestrator's auth token authority: mints tokens in `GetOrchestrator` and checks them
/// at job start.
///
/// Layout, from go-livepeer `core/orchestrator.go` (`AuthToken`): the token is
/// `HMAC-SHA256(secret, []byte(session_id) ++ big.NewInt(expiration).Bytes())`, where
/// `big.Int.Bytes()` is the big-endian magnitude without leading zero bytes (empty for 0).
/// Checks, from `server/segment_rpc.go` (`verifySegCreds`), in order: token absent
/// (`missing auth token`), HMAC mismatch (`invalid auth token`), `now` after the expiration
/// (`expired auth token`).
#[derive(Clone)]
pub struct AuthTokens {
    secret: Vec<u8>,
}

impl fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("AuthTokens").finish_non_exhaustive()
    }
}

impl AuthTokens {
    /// An authority with the given secret (go-livepeer draws 32 random bytes at start).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    fn hmac(&self, session_id: &str, expiration: i64) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC-SHA256 accepts keys of any length");
        mac.update(session_id.as_bytes());
        mac.update(&big_int_bytes(expiration));
        mac
    }

    /// Mints a token for `session_id`, valid until `now_unix_s + 30 min`.
    pub fn mint(&self, session_id: &str, now_unix_s: i64) -> proto::AuthToken {
        let expiration = now_unix_s.saturating_add(AUTH_TOKEN_VALIDITY_S);
        proto::AuthToken {
            token: self
                .hmac(session_id, expiration)
                .finalize()
                .into_bytes()
                .to_vec(),
            session_id: session_id.to_string(),
            expiration,
        }
    }

    /// Checks a token: it must be ours and not expired at `now_unix_s`.
    ///
    /// go-livepeer rejects when `time.Now()` is after the expiration second; with whole
    /// seconds that is `now_unix_s >= expiration` (any instant within that second is after it).
    pub fn verify(&self, token: &proto::AuthToken, now_unix_s: i64) -> Result<(), AuthError> {
        self.hmac(&token.session_id, token.expiration)
            .verify_slice(&token.token)
            .map_err(|_| AuthError::Invalid)?;
        if now_unix_s >= token.expiration {
            return Err(AuthError::Expired);
        }
        Ok(())
    }

    /// Checks the token carried by a `SegData`, reporting a missing one.
    pub fn verify_segment(&self, seg: &proto::SegData, now_unix_s: i64) -> Result<(), AuthError> {
        match &seg.auth_token {
            Some(token) => self.verify(token, now_unix_s),
            None => Err(AuthError::Missing),
        }
    }
}

/// Go's `big.NewInt(v).Bytes()`: big-endian magnitude, no leading zeros, empty for zero.
fn big_int_bytes(value: i64) -> Vec<u8> {
    let bytes = value.unsigned_abs().to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_int_bytes_matches_go() {
        assert_eq!(big_int_bytes(0), Vec::<u8>::new());
        assert_eq!(big_int_bytes(1), vec![1]);
        assert_eq!(big_int_bytes(256), vec![1, 0]);
        assert_eq!(big_int_bytes(1_700_000_000), vec![0x65, 0x53, 0xf1, 0x00]);
        assert_eq!(big_int_bytes(-256), vec![1, 0]);
    }

    #[test]
    fn resolve_url_joins_with_one_slash() {
        let base = "https://o.example:8935/";
        assert_eq!(
            resolve_url(base, "/ai/trickle/a"),
            "https://o.example:8935/ai/trickle/a"
        );
        assert_eq!(
            resolve_url(base, "ai/trickle/a"),
            "https://o.example:8935/ai/trickle/a"
        );
        assert_eq!(resolve_url(base, "http://x/y"), "http://x/y");
        assert_eq!(resolve_url(base, "HTTPS://x/y"), "HTTPS://x/y");
    }

    #[test]
    fn payment_header_is_empty_string() {
        assert_eq!(payment_header_empty(), "");
    }
}
