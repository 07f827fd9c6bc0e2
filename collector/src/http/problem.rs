//! RFC 7807 problem documents: the one shape every error answer of the collector takes.
//!
//! Each kind of problem has a stable `type` URI under `https://lvt.invalid/problems/`; clients key
//! on that URI (or the status), never on the human-readable `detail`. The `.invalid` domain makes
//! clear that the URI is an identifier and needs no network access.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::app::ingest::IngestError;
use crate::sla::query::QueryError;
use crate::store::StoreError;
use crate::verify::{RecordError, SignatureError};

/// The media type of a problem document.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The prefix of every problem `type` URI.
pub const PROBLEM_TYPE_BASE: &str = "https://lvt.invalid/problems/";

/// The fixed set of problems the collector answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The request body is larger than `max_body_bytes` (413).
    BodyTooLarge,
    /// A signature header is missing (401).
    MissingSignature,
    /// A signature header is present but malformed (401).
    MalformedSignature,
    /// The key id names no configured agent (403).
    UnknownKey,
    /// The signed timestamp is outside the accepted window (409).
    StaleTimestamp,
    /// The nonce was already used by this key (409).
    ReplayedNonce,
    /// The signature does not verify (401).
    BadSignature,
    /// The body is not JSON (400).
    MalformedJson,
    /// The body is JSON but not an array of valid records (400).
    InvalidRecord,
    /// A query parameter is invalid (400).
    InvalidQuery,
    /// No such route (404).
    NotFound,
    /// The store failed; the request may be retried (503).
    StoreUnavailable,
}

impl ProblemKind {
    /// The last segment of the `type` URI.
    pub fn slug(self) -> &'static str {
        match self {
            Self::BodyTooLarge => "body-too-large",
            Self::MissingSignature => "missing-signature",
            Self::MalformedSignature => "malformed-signature",
            Self::UnknownKey => "unknown-key",
            Self::StaleTimestamp => "stale-timestamp",
            Self::ReplayedNonce => "replayed-nonce",
            Self::BadSignature => "bad-signature",
            Self::MalformedJson => "malformed-json",
            Self::InvalidRecord => "invalid-record",
            Self::InvalidQuery => "invalid-query",
            Self::NotFound => "not-found",
            Self::StoreUnavailable => "store-unavailable",
        }
    }

    /// The HTTP status this problem is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MissingSignature | Self::MalformedSignature | Self::BadSignature => {
                StatusCode::UNAUTHORIZED
            }
            Self::UnknownKey => StatusCode::FORBIDDEN,
            Self::StaleTimestamp | Self::ReplayedNonce => StatusCode::CONFLICT,
            Self::MalformedJson | Self::InvalidRecord | Self::InvalidQuery => {
                StatusCode::BAD_REQUEST
            }
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The short, fixed summary of the problem (the RFC 7807 `title`).
    pub fn title(self) -> &'static str {
        match self {
            Self::BodyTooLarge => "Request body too large",
            Self::MissingSignature => "Missing signature header",
            Self::MalformedSignature => "Malformed signature header",
            Self::UnknownKey => "Unknown agent key",
            Self::StaleTimestamp => "Timestamp outside the accepted window",
            Self::ReplayedNonce => "Nonce already used",
            Self::BadSignature => "Signature does not verify",
            Self::MalformedJson => "Body is not JSON",
            Self::InvalidRecord => "Invalid result record",
            Self::InvalidQuery => "Invalid query parameter",
            Self::NotFound => "Not found",
            Self::StoreUnavailable => "Store unavailable",
        }
    }

    /// The full `type` URI.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_TYPE_BASE}{}", self.slug())
    }
}

/// One problem answer: a kind, a detail for humans and, for invalid records, the JSON pointer
/// (RFC 6901) of the offending value in the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What went wrong.
    pub kind: ProblemKind,
    /// A human-readable explanation of this occurrence.
    pub detail: String,
    /// The RFC 6901 pointer into the request body, for [`ProblemKind::InvalidRecord`].
    pub pointer: Option<String>,
}

impl Problem {
    /// A problem without a pointer.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            pointer: None,
        }
    }

    /// A problem pointing at a value of the request body.
    pub fn at(kind: ProblemKind, pointer: String, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            pointer: Some(pointer),
        }
    }

    /// The JSON document sent to the client.
    pub fn body(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct Document<'a> {
            #[serde(rename = "type")]
            type_uri: String,
            title: &'a str,
            status: u16,
            detail: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            pointer: Option<&'a str>,
        }
        let document = Document {
            type_uri: self.kind.type_uri(),
            title: self.kind.title(),
            status: self.kind.status().as_u16(),
            detail: &self.detail,
            pointer: self.pointer.as_deref(),
        };
        // A struct of strings and an integer always serializes.
        serde_json::to_value(document).unwrap_or_default()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.kind.status(), self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        response
    }
}

/// A refused body is a 400 problem of the same kind, pointing where the error points.
impl From<RecordError> for Problem {
    fn from(error: RecordError) -> Problem {
        match error {
            RecordError::MalformedJson { pointer, detail } => {
                Problem::at(ProblemKind::MalformedJson, pointer, detail)
            }
            RecordError::InvalidRecord { pointer, detail } => {
                Problem::at(ProblemKind::InvalidRecord, pointer, detail)
            }
        }
    }
}

/// Each signature refusal is the problem of the same name, with the error's text as detail.
impl From<SignatureError> for Problem {
    fn from(error: SignatureError) -> Problem {
        let kind = match &error {
            SignatureError::MissingSignature(_) => ProblemKind::MissingSignature,
            SignatureError::MalformedSignature(_) => ProblemKind::MalformedSignature,
            SignatureError::UnknownKey(_) => ProblemKind::UnknownKey,
            SignatureError::StaleTimestamp(_) => ProblemKind::StaleTimestamp,
            SignatureError::ReplayedNonce(_) => ProblemKind::ReplayedNonce,
            SignatureError::BadSignature(_) => ProblemKind::BadSignature,
        };
        Problem::new(kind, error.to_string())
    }
}

/// A store that fails is a 503: the request may succeed later, unchanged.
impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        Problem::new(ProblemKind::StoreUnavailable, error.to_string())
    }
}

/// An ingest refusal is the problem of the check that refused it.
impl From<IngestError> for Problem {
    fn from(error: IngestError) -> Problem {
        match error {
            IngestError::Signature(error) => error.into(),
            IngestError::Record(error) => error.into(),
            IngestError::Store(error) => error.into(),
        }
    }
}

/// A refused query parameter is an invalid-query problem whose detail names the parameter.
impl From<QueryError> for Problem {
    fn from(error: QueryError) -> Problem {
        Problem::new(ProblemKind::InvalidQuery, error.to_string())
    }
}
