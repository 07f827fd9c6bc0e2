//! Sans-IO HTTP/1.1 message heads: parsing request heads with `httparse` under size limits,
//! deciding how a request body is framed, and encoding response heads.
//!
//! Nothing here touches a socket; the connection driver feeds bytes in and writes what comes out.

use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

/// Limits applied while reading a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest accepted request line plus headers, in bytes; larger heads get 431.
    pub max_head_bytes: usize,
    /// Largest accepted number of header fields; more get 431.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self {
            max_head_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

/// Why a request head (or its framing) was refused. Each maps to the status code answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head is longer than [`HeadLimits::max_head_bytes`].
    #[error("request head exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The head has more header fields than [`HeadLimits::max_headers`].
    #[error("request has more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    /// The head is not valid HTTP/1.x.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// A transfer coding other than `chunked` was used.
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
}

impl HeadError {
    /// The status code a server answers with before closing the connection.
    pub fn status(&self) -> StatusCode {
        match self {
            HeadError::TooLarge { .. } | HeadError::TooManyHeaders { .. } => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
            HeadError::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// A parsed request line and header section.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
}

impl RequestHead {
    /// Whether the client asked to keep the connection open after this exchange. HTTP/1.0
    /// connections are always closed: we never send `Keep-Alive` responses to 1.0 clients.
    pub fn wants_keep_alive(&self) -> bool {
        self.version == Version::HTTP_11 && !header_has_token(&self.headers, &CONNECTION, "close")
    }

    /// Whether the client sent `Expect: 100-continue` and waits for our go-ahead before the body.
    pub fn expects_continue(&self) -> bool {
        self.version == Version::HTTP_11
            && self
                .headers
                .get(EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    }
}

/// How a request body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body at all.
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, or the head and the number of bytes it used.
pub fn parse_request_head(
    buf: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut slots);
    let status = match req.parse(buf) {
        Ok(status) => status,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        Err(_) => return Err(HeadError::Malformed("invalid request line or header")),
    };
    let used = match status {
        httparse::Status::Partial => {
            if buf.len() > limits.max_head_bytes {
                return Err(HeadError::TooLarge {
                    limit: limits.max_head_bytes,
                });
            }
            return Ok(None);
        }
        httparse::Status::Complete(used) => used,
    };
    if used > limits.max_head_bytes {
        return Err(HeadError::TooLarge {
            limit: limits.max_head_bytes,
        });
    }
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let uri: Uri = req
        .path
        .unwrap_or_default()
        .parse()
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        Some(1) => Version::HTTP_11,
        _ => return Err(HeadError::Malformed("unsupported HTTP version")),
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for header in req.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| HeadError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    Ok(Some((
        RequestHead {
            method,
            uri,
            version,
            headers,
        },
        used,
    )))
}

/// Decides how the request body is framed (RFC 9112 section 6.3).
///
/// A request carrying both `Transfer-Encoding` and `Content-Length`, or disagreeing
/// `Content-Length` values, is refused: such requests are the raw material of request smuggling.
pub fn request_framing(head: &RequestHead) -> Result<RequestFraming, HeadError> {
    let has_length = head.headers.contains_key(CONTENT_LENGTH);
    if head.headers.contains_key(TRANSFER_ENCODING) {
        if has_length {
            return Err(HeadError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        // The last coding must be chunked; we implement no other coding.
        let mut codings = Vec::new();
        for value in head.headers.get_all(TRANSFER_ENCODING) {
            let text = value
                .to_str()
                .map_err(|_| HeadError::Malformed("invalid Transfer-Encoding"))?;
            codings.extend(
                text.split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            );
        }
        return match codings.as_slice() {
            [only] if only == "chunked" => Ok(RequestFraming::Chunked),
            _ => Err(HeadError::UnsupportedTransferCoding),
        };
    }
    if !has_length {
        return Ok(RequestFraming::Empty);
    }
    let mut length: Option<u64> = None;
    for value in head.headers.get_all(CONTENT_LENGTH) {
        let text = value
            .to_str()
            .map_err(|_| HeadError::Malformed("invalid Content-Length"))?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadError::Malformed("invalid Content-Length"));
            }
            let parsed: u64 = part
                .parse()
                .map_err(|_| HeadError::Malformed("invalid Content-Length"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(HeadError::Malformed("conflicting Content-Length values"));
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(0) | None => RequestFraming::Empty,
        Some(n) => RequestFraming::Length(n),
    })
}

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body bytes follow (HEAD, 204, 304); a known length may still be announced.
    NoBody { announced_length: Option<u64> },
    /// Exactly this many bytes follow.
    Length(u64),
    /// The body is sent in chunks ending with a zero-length chunk.
    Chunked,
    /// The body runs until the connection closes (HTTP/1.0 clients with an unknown length).
    UntilClose,
}

/// Encodes a response head. Hop-by-hop framing headers set by the handler are replaced with
/// the ones matching `framing`, and `Connection: close` is added when `close` is set.
pub fn encode_response_head(
    status: StatusCode,
    headers: &HeaderMap,
    framing: ResponseFraming,
    close: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::NoBody {
            announced_length: Some(n),
        }
        | ResponseFraming::Length(n) => {
            out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseFraming::NoBody {
            announced_length: None,
        }
        | ResponseFraming::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The interim response a server sends to let a client go on (or keep waiting).
pub const CONTINUE_RESPONSE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A short plain-text error response that closes the connection, for requests that never
/// reach a handler (bad heads).
pub fn encode_error_response(status: StatusCode, message: &str) -> Vec<u8> {
    let body = format!("{message}\n");
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let mut out = encode_response_head(
        status,
        &headers,
        ResponseFraming::Length(body.len() as u64),
        true,
    );
    out.extend_from_slice(body.as_bytes());
    out
}

/// The reason phrase for a status line. Codes without a registered phrase get Go's wording
/// (`status code 470`), which is what trickle peers already see from go-livepeer.
fn reason_phrase(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => reason.to_owned(),
        None => format!("status code {}", status.as_u16()),
    }
}

/// Whether a comma-separated header (such as `Connection`) lists `token`, case-insensitively.
pub fn header_has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HeadLimits {
        HeadLimits {
            max_head_bytes: 256,
            max_headers: 4,
        }
    }

    /// One harness for head parsing: feeds `input` and compares the outcome.
    fn check(input: &[u8], expected: Result<Option<usize>, HeadError>) {
        let got = parse_request_head(input, &limits()).map(|r| r.map(|(_, used)| used));
        assert_eq!(got, expected, "input {:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn parses_complete_head_and_reports_bytes_used() {
        let input = b"POST /ai/trickle/a/0 HTTP/1.1\r\nHost: x\r\n\r\nBODY";
        check(input, Ok(Some(input.len() - 4)));
        let (head, _) = parse_request_head(input, &limits()).unwrap().unwrap();
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri.path(), "/ai/trickle/a/0");
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.headers["host"], "x");
        assert!(head.wants_keep_alive());
    }

    #[test]
    fn partial_head_needs_more() {
        check(b"GET / HTTP/1.1\r\nHost: x\r\n", Ok(None));
        check(b"GE", Ok(None));
    }

    #[test]
    fn oversized_head_is_431() {
        let mut input = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 300));
        let err = parse_request_head(&input, &limits()).unwrap_err();
        assert_eq!(err, HeadError::TooLarge { limit: 256 });
        assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        // A complete head that is too long is refused as well.
        input.extend_from_slice(b"\r\n\r\n");
        check(&input, Err(HeadError::TooLarge { limit: 256 }));
    }

    #[test]
    fn too_many_headers_is_431() {
        let input = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n";
        check(input, Err(HeadError::TooManyHeaders { limit: 4 }));
    }

    #[test]
    fn garbage_is_400() {
        let err = parse_request_head(b"\x01\x02 nonsense\r\n\r\n", &limits()).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        check(
            b"GET / HTTP/2.0\r\n\r\n",
            Err(HeadError::Malformed("invalid request line or header")),
        );
    }

    fn framing_of(head: &str) -> Result<RequestFraming, HeadError> {
        let (head, _) = parse_request_head(head.as_bytes(), &HeadLimits::default())
            .unwrap()
            .unwrap();
        request_framing(&head)
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            framing_of("GET / HTTP/1.1\r\n\r\n"),
            Ok(RequestFraming::Empty)
        );
        assert_eq!(
            framing_of("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"),
            Ok(RequestFraming::Length(12))
        );
        assert_eq!(
            framing_of("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Ok(RequestFraming::Empty)
        );
        assert_eq!(
            framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"),
            Ok(RequestFraming::Chunked)
        );
        assert_eq!(
            framing_of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Err(HeadError::UnsupportedTransferCoding)
        );
        assert!(
            framing_of(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            )
            .is_err()
        );
        assert!(
            framing_of("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
                .is_err()
        );
        assert!(framing_of("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n").is_err());
    }

    #[test]
    fn keep_alive_and_expect() {
        let (head, _) = parse_request_head(
            b"POST / HTTP/1.1\r\nConnection: keep-alive, Close\r\nExpect: 100-continue\r\n\r\n",
            &HeadLimits::default(),
        )
        .unwrap()
        .unwrap();
        assert!(!head.wants_keep_alive());
        assert!(head.expects_continue());
        let (head, _) = parse_request_head(b"GET / HTTP/1.0\r\n\r\n", &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert!(!head.wants_keep_alive());
        assert!(!head.expects_continue());
    }

    #[test]
    fn response_head_encoding() {
        let mut headers = HeaderMap::new();
        headers.insert("lp-trickle-seq", HeaderValue::from_static("3"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        let head = encode_response_head(
            StatusCode::from_u16(470).unwrap(),
            &headers,
            ResponseFraming::Length(15),
            false,
        );
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 470 status code 470\r\nlp-trickle-seq: 3\r\ncontent-length: 15\r\n\r\n"
        );
        let head = encode_response_head(
            StatusCode::OK,
            &HeaderMap::new(),
            ResponseFraming::Chunked,
            true,
        );
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
    }
}
