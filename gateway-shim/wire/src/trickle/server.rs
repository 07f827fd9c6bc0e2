//! The trickle HTTP server with go-livepeer's semantics (`trickle/trickle_server.go`), mounted
//! at `/ai/trickle/`, plus the idle sweeper and the entry points of the local API.
//!
//! Deliberate differences from go-livepeer, each to avoid a stuck reader: a POST to an index
//! whose segment is already closed gets a fresh segment (a retried upload reaches new
//! readers); writes to a closed segment are dropped; an empty segment uses up its index only
//! while it still holds its ring slot (so a reset's new numbering is not undone); and
//! `Lp-Trickle-Reset` closes every segment except the posted one and the one after it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use futures::StreamExt;
use http::header::{CONNECTION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::time::{Instant, MissedTickBehavior};

use super::channel::{Channel, Segment};
use super::local::{LocalPublisher, LocalSubscriber};
use super::{BASE_PATH, HEADER_CLOSED, HEADER_LATEST, HEADER_RESET, HEADER_SEQ};
use crate::http1::Interim;

/// Server settings; the defaults are go-livepeer's.
#[derive(Debug, Clone)]
pub struct TrickleConfig {
    /// Create unknown channels on first publish (`POST /{ch}` or `POST /{ch}/{seq}`).
    /// Orchestrators leave this off and create channels themselves.
    pub autocreate: bool,
    /// A channel without writes for this long is deleted by the sweeper.
    pub idle_timeout: Duration,
    /// How often the sweeper looks for idle channels.
    pub sweep_interval: Duration,
    /// How often a POST that has not received its first body byte gets `100 Continue`.
    pub keepalive_interval: Duration,
}

impl Default for TrickleConfig {
    fn default() -> Self {
        Self {
            autocreate: false,
            idle_timeout: Duration::from_secs(5 * 60),
            sweep_interval: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(10),
        }
    }
}

/// A trickle server: channels, their segment rings, the HTTP routes and a local API.
/// Cloning is cheap; clones share state.
#[derive(Clone)]
pub struct TrickleServer {
    inner: Arc<Inner>,
}

struct Inner {
    config: TrickleConfig,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
}

impl std::fmt::Debug for TrickleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrickleServer")
            .field("config", &self.inner.config)
            .field("channels", &self.channels().len())
            .finish()
    }
}

impl TrickleServer {
    pub fn new(config: TrickleConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &TrickleConfig {
        &self.inner.config
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<String, Arc<Channel>>> {
        // A poisoned map is still a valid map: inserts and removes are single statements.
        self.inner
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        self.channels().get(name).cloned()
    }

    /// The channel, created when missing if `create` is set (local callers, or autocreate).
    fn channel_or_create(&self, name: &str, mime: &str, create: bool) -> Option<Arc<Channel>> {
        let mut channels = self.channels();
        if let Some(channel) = channels.get(name) {
            return Some(channel.clone());
        }
        if !create {
            return None;
        }
        let channel = Channel::new(name, mime, Instant::now());
        channels.insert(name.to_owned(), channel.clone());
        tracing::info!(message = "Trickle channel created.", channel = name, mime);
        Some(channel)
    }

    /// The HTTP routes, mounted at `/ai/trickle/`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                &format!("{BASE_PATH}{{channel}}"),
                post(handle_create).delete(handle_delete_channel),
            )
            .route(
                &format!("{BASE_PATH}{{channel}}/{{seq}}"),
                post(handle_post)
                    .get(handle_get)
                    .delete(handle_delete_segment),
            )
            .with_state(self.clone())
    }

    /// Starts the idle sweeper: every `sweep_interval`, channels without a write for longer
    /// than `idle_timeout` are deleted. Abort the handle to stop it.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let server = self.clone();
        let period = self
            .inner
            .config
            .sweep_interval
            .max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                server.sweep_idle(Instant::now());
            }
        })
    }

    /// Deletes channels idle for longer than `idle_timeout` at `now` and returns their names.
    /// Internal channels (names starting with `_`) are never swept.
    pub fn sweep_idle(&self, now: Instant) -> Vec<String> {
        let idle_timeout = self.inner.config.idle_timeout;
        let idle: Vec<String> = self
            .channels()
            .values()
            .filter(|channel| !channel.name().starts_with('_'))
            .filter(|channel| now.saturating_duration_since(channel.write_time()) > idle_timeout)
            .map(|channel| channel.name().to_owned())
            .collect();
        for name in &idle {
            if self.delete_channel(name) {
                tracing::info!(message = "Idle trickle channel closed.", channel = %name);
            }
        }
        idle
    }

    /// Creates a channel with this MIME type; an existing channel is kept as it is.
    pub fn create_channel(&self, name: &str, mime: &str) {
        self.channel_or_create(name, mime, true);
    }

    /// Closes and removes a channel, waking every blocked reader and publisher. False when
    /// there was no such channel.
    pub fn delete_channel(&self, name: &str) -> bool {
        let removed = self.channels().remove(name);
        match removed {
            Some(channel) => {
                channel.close();
                tracing::info!(message = "Trickle channel deleted.", channel = name);
                true
            }
            None => false,
        }
    }

    pub fn channel_exists(&self, name: &str) -> bool {
        self.channels().contains_key(name)
    }

    /// Names of the open channels, sorted.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.channels().keys().cloned().collect();
        names.sort();
        names
    }

    /// A publisher writing segments straight into an existing channel.
    pub fn local_publisher(&self, name: &str) -> Option<LocalPublisher> {
        self.channel(name).map(LocalPublisher::new)
    }

    /// A subscriber reading an existing channel from its next segment on.
    pub fn local_subscriber(&self, name: &str) -> Option<LocalSubscriber> {
        self.channel(name).map(LocalSubscriber::new)
    }

    /// Completes once the channel is deleted or closed (at once if it does not exist).
    pub async fn closed(&self, name: &str) {
        if let Some(channel) = self.channel(name) {
            channel.wait_closed().await;
        }
    }
}

/// A plain-text error like Go's `http.Error`: the message plus a newline.
fn text_error(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn stream_not_found() -> Response {
    text_error(StatusCode::NOT_FOUND, "Stream not found")
}

fn invalid_idx() -> Response {
    text_error(StatusCode::BAD_REQUEST, "Invalid idx")
}

/// Status 470, which go-livepeer uses for "channel exists, segment does not".
fn status_entry_not_found() -> StatusCode {
    // 470 lies in the 100..=999 range `from_u16` accepts, so this cannot fail.
    StatusCode::from_u16(470).expect("470 is a valid status code")
}

fn set_int(headers: &mut HeaderMap, name: &'static str, value: i64) {
    headers.insert(name, HeaderValue::from(value));
}

/// Parses a segment index; `allow` is the lowest accepted value (-1 for POST, -2 for GET).
fn parse_idx(text: &str, lowest: i64) -> Option<i64> {
    text.parse::<i64>().ok().filter(|idx| *idx >= lowest)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &http::HeaderName) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

async fn handle_create(
    State(server): State<TrickleServer>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mime = header_text(&headers, &http::HeaderName::from_static("expect-content"));
    match server.channel_or_create(&channel, mime, server.config().autocreate) {
        Some(_) => Response::new(Body::empty()),
        None => stream_not_found(),
    }
}

async fn handle_delete_channel(
    State(server): State<TrickleServer>,
    Path(channel): Path<String>,
) -> Response {
    if server.delete_channel(&channel) {
        Response::new(Body::empty())
    } else {
        text_error(StatusCode::BAD_REQUEST, "Invalid stream")
    }
}

async fn handle_delete_segment(
    State(server): State<TrickleServer>,
    Path((channel, seq)): Path<(String, String)>,
) -> Response {
    let Some(channel) = server.channel(&channel) else {
        return stream_not_found();
    };
    let Some(idx) = parse_idx(&seq, 0) else {
        return invalid_idx();
    };
    if channel.close_segment(idx) {
        tracing::debug!(
            message = "Trickle segment closed by DELETE.",
            channel = channel.name(),
            seq = idx
        );
        Response::new(Body::empty())
    } else {
        text_error(StatusCode::BAD_REQUEST, "Nonexistent segment")
    }
}

async fn handle_get(
    State(server): State<TrickleServer>,
    Path((channel, seq)): Path<(String, String)>,
) -> Response {
    let Some(channel) = server.channel(&channel) else {
        return stream_not_found();
    };
    if seq == "next" {
        return next_response(&channel);
    }
    let Some(idx) = parse_idx(&seq, -2) else {
        return invalid_idx();
    };
    let lookup = channel.segment_for_read(idx);
    let Some(segment) = lookup.segment else {
        let mut response = Response::new(Body::from("Entry not found"));
        let headers = response.headers_mut();
        set_int(headers, HEADER_LATEST, lookup.latest);
        set_int(headers, HEADER_SEQ, lookup.idx);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if lookup.closed {
            headers.insert(HEADER_CLOSED, HeaderValue::from_static("terminated"));
        } else {
            *response.status_mut() = status_entry_not_found();
        }
        return response;
    };

    // Headers go out only once the first bytes exist: a blocked reader sees nothing at all.
    let mut pos = 0;
    let Some(first) = segment.next_chunk(&mut pos).await else {
        return empty_segment_response(&channel, segment.idx());
    };
    let mut response = Response::new(segment_body(segment.clone(), pos, first));
    let headers = response.headers_mut();
    if segment.idx() != lookup.latest {
        set_int(headers, HEADER_LATEST, lookup.latest);
    }
    set_int(headers, HEADER_SEQ, segment.idx());
    if let Ok(mime) = HeaderValue::from_str(channel.mime())
        && !channel.mime().is_empty()
    {
        headers.insert(CONTENT_TYPE, mime);
    }
    response
}

/// The answer for a segment that ended without a byte: the channel closed (200 with
/// `Lp-Trickle-Closed`) or the segment was dropped or fell out of the window (470 with the
/// latest index, so slow readers can jump to the live edge).
fn empty_segment_response(channel: &Channel, idx: i64) -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    set_int(headers, HEADER_SEQ, idx);
    if channel.is_closed() {
        headers.insert(HEADER_CLOSED, HeaderValue::from_static("terminated"));
    } else {
        set_int(headers, HEADER_LATEST, channel.next_write());
        *response.status_mut() = status_entry_not_found();
    }
    response
}

/// A streaming body that starts with `first` and follows the segment's live tail.
fn segment_body(segment: Arc<Segment>, pos: usize, first: bytes::Bytes) -> Body {
    let stream = futures::stream::unfold(
        (segment, pos, Some(first)),
        |(segment, mut pos, first)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, Infallible>(first), (segment, pos, None)));
            }
            let chunk = segment.next_chunk(&mut pos).await?;
            Some((Ok(chunk), (segment, pos, None)))
        },
    );
    Body::from_stream(stream)
}

fn next_response(channel: &Channel) -> Response {
    let next = channel.next_write();
    let mut response = Response::new(Body::from(next.to_string()));
    let headers = response.headers_mut();
    set_int(headers, HEADER_LATEST, next);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if channel.is_closed() {
        headers.insert(HEADER_CLOSED, HeaderValue::from_static("terminated"));
    }
    response
}

async fn handle_post(
    State(server): State<TrickleServer>,
    Path((channel, seq)): Path<(String, String)>,
    interim: Option<Extension<Interim>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mime = header_text(&headers, &CONTENT_TYPE);
    let Some(channel) = server.channel_or_create(&channel, mime, server.config().autocreate) else {
        // Connection: close wakes up preconnected publishers blocked on this request.
        let mut response = stream_not_found();
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let Some(idx) = parse_idx(&seq, -1) else {
        return invalid_idx();
    };
    let reset = headers.contains_key(HEADER_RESET);
    let (segment, idx) = channel.segment_for_write(idx, reset);
    let keepalive = server.config().keepalive_interval;
    receive_segment(
        &channel,
        segment,
        idx,
        interim.map(|e| e.0),
        keepalive,
        body,
    )
    .await
}

/// Reads a POST body into `segment`. Until the first byte arrives the client gets
/// `100 Continue` every `keepalive`, and a closed segment ends the wait.
async fn receive_segment(
    channel: &Channel,
    segment: Arc<Segment>,
    idx: i64,
    interim: Option<Interim>,
    keepalive: Duration,
    body: Body,
) -> Response {
    let mut stream = body.into_data_stream();
    let period = keepalive.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);

    // Phase 1: no byte yet.
    let mut total_bytes: u64 = 0;
    loop {
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(data)) if data.is_empty() => {}
                Some(Ok(data)) => {
                    channel.note_write(idx, true, Instant::now());
                    total_bytes += data.len() as u64;
                    segment.write(data);
                    break;
                }
                Some(Err(error)) => {
                    tracing::info!(message = "Trickle POST body failed.", channel = channel.name(), seq = idx, %error);
                    return text_error(StatusCode::INTERNAL_SERVER_ERROR, "Server error");
                }
                None => return ended_without_data(channel, segment, idx),
            },
            () = segment.wait_closed() => return ended_without_data(channel, segment, idx),
            _ = ticker.tick() => {
                if let Some(interim) = &interim {
                    // The final response may have begun elsewhere; a failed keepalive is harmless.
                    if let Err(error) = interim.send_continue().await {
                        tracing::debug!(message = "Trickle keepalive not sent.", %error);
                    }
                }
            }
        }
    }

    // Phase 2: stream the rest.
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(data) => {
                if data.is_empty() {
                    continue;
                }
                channel.note_write(idx, false, Instant::now());
                total_bytes += data.len() as u64;
                segment.write(data);
            }
            Err(error) => {
                tracing::info!(message = "Trickle POST body failed.", channel = channel.name(), seq = idx, bytes = total_bytes, %error);
                return text_error(StatusCode::INTERNAL_SERVER_ERROR, "Server error");
            }
        }
    }
    segment.close();
    tracing::debug!(
        message = "Trickle segment received.",
        channel = channel.name(),
        seq = idx,
        bytes = total_bytes
    );
    let mut response = Response::new(Body::empty());
    set_int(response.headers_mut(), HEADER_SEQ, idx);
    response
}

/// A POST that ended (or whose segment was closed) before any byte: the index is used up
/// anyway so readers do not stall on it, and the connection is closed, as go-livepeer does.
fn ended_without_data(channel: &Channel, segment: Arc<Segment>, idx: i64) -> Response {
    channel.note_empty_segment(&segment, Instant::now());
    segment.close();
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    set_int(headers, HEADER_SEQ, idx);
    if channel.is_closed() {
        headers.insert(HEADER_CLOSED, HeaderValue::from_static("terminated"));
    }
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
