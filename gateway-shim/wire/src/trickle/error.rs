//! Errors of the trickle client.

/// Why a trickle client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrickleError {
    /// The channel no longer exists (404) or was closed (`Lp-Trickle-Closed`); the session
    /// using it is lost.
    #[error("the trickle channel is gone")]
    ChannelGone,
    /// The server answered with an unexpected status.
    #[error("trickle server answered {status}: {body}")]
    Status { status: u16, body: String },
    /// The HTTP exchange failed (connection, TLS, protocol).
    #[error("trickle HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The exchange on the client's own connection failed (connection, TLS, protocol).
    #[error("trickle request failed: {0}")]
    Connection(#[from] crate::http1::client::ClientError),
    /// A write or request did not make progress in time.
    #[error("trickle request timed out")]
    Timeout,
    /// The background request task ended without an answer (it was cancelled).
    #[error("trickle request was cancelled")]
    Cancelled,
    /// The segment already failed; it was dropped and cannot be written to any more.
    #[error("the trickle segment already failed")]
    SegmentFailed,
}
