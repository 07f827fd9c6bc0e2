//! The WHIP/WHEP offer/answer exchange over HTTP (RFC 9725 and the WHEP draft, as go-livepeer
//! serves them): `POST` the SDP offer with `Content-Type: application/sdp`; `201 Created` brings
//! the answer, with ICE gathered in full (no trickle ICE, no PATCH), and for WHIP `Location`,
//! `ETag` and `Livepeer-Playback-URL` (the WHEP URL of the output). Every other status is a
//! refusal, kept with its status and body so that the caller can classify it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use http::{HeaderMap, StatusCode, header};

/// The media type of an SDP body.
pub const SDP: &str = "application/sdp";
/// go-livepeer's header carrying the WHEP URL of a WHIP stream's output.
pub const PLAYBACK_URL: &str = "Livepeer-Playback-URL";
/// Refusal bodies are kept up to this many bytes.
const BODY_LIMIT: usize = 512;

/// A `201 Created` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub sdp: String,
    /// The resource URL (WHIP).
    pub location: Option<String>,
    /// The output's WHEP URL (go-livepeer's WHIP).
    pub playback_url: Option<String>,
    pub etag: Option<String>,
}

/// Why an exchange did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered {status}: {body}")]
    Refused {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("{url} answered 201 with a body that is not SDP ({content_type})")]
    NotSdp { url: String, content_type: String },
}

impl ExchangeError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ExchangeError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Posts `offer` to `url` with `headers` added (auth) and returns the answer.
pub async fn exchange(
    client: &reqwest::Client,
    url: &str,
    offer: &str,
    headers: &HeaderMap,
) -> Result<Answer, ExchangeError> {
    let unreachable = |e: reqwest::Error| ExchangeError::Unreachable {
        url: url.to_owned(),
        message: error_chain(&e),
    };
    let response = client
        .post(url)
        .headers(headers.clone())
        .header(header::CONTENT_TYPE, SDP)
        .body(offer.to_owned())
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let head = response.headers().clone();
    let text = |name: &str| {
        head.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body = response.text().await.map_err(unreachable)?;
    if status != StatusCode::CREATED {
        let mut body = body.trim().to_owned();
        if body.len() > BODY_LIMIT {
            let mut end = BODY_LIMIT;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
        }
        return Err(ExchangeError::Refused {
            url: url.to_owned(),
            status,
            body,
        });
    }
    let content_type = text(header::CONTENT_TYPE.as_str()).unwrap_or_default();
    if !body.starts_with("v=0") {
        return Err(ExchangeError::NotSdp {
            url: url.to_owned(),
            content_type,
        });
    }
    Ok(Answer {
        sdp: body,
        location: text(header::LOCATION.as_str()),
        playback_url: text(PLAYBACK_URL),
        etag: text(header::ETAG.as_str()),
    })
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The local address packets to `host:port` leave from (no packet is sent: a connected UDP
/// socket only picks the route), so the host candidate lvt offers is one the gateway can reach.
/// Loopback when the route cannot be found.
pub fn local_ip_towards(remote: SocketAddr) -> IpAddr {
    let any: SocketAddr = if remote.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    UdpSocket::bind(any)
        .and_then(|socket| {
            socket.connect(remote)?;
            socket.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
