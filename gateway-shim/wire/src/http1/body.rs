//! The request body handed to handlers: frames arrive through a channel from the connection
//! driver as they are read off the socket, so large or slow uploads are never buffered whole.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{mpsc, oneshot};

/// Streams a request body from the connection driver to a handler.
pub(crate) struct IncomingBody {
    frames: mpsc::Receiver<Result<Bytes, io::Error>>,
    /// Fired on the first poll so the driver knows the handler wants the body (this is when an
    /// `Expect: 100-continue` request gets its `100 Continue`).
    wanted: Option<oneshot::Sender<()>>,
    /// Bytes still expected for a `Content-Length` body; `None` for chunked bodies.
    remaining_bytes: Option<u64>,
}

impl IncomingBody {
    pub(crate) fn new(
        frames: mpsc::Receiver<Result<Bytes, io::Error>>,
        wanted: oneshot::Sender<()>,
        length_bytes: Option<u64>,
    ) -> Self {
        Self {
            frames,
            wanted: Some(wanted),
            remaining_bytes: length_bytes,
        }
    }
}

impl http_body::Body for IncomingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(wanted) = self.wanted.take() {
            // The driver may have stopped waiting already; that is fine.
            let _ = wanted.send(());
        }
        match self.frames.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => {
                if let Some(remaining) = self.remaining_bytes.as_mut() {
                    *remaining = remaining.saturating_sub(data.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining_bytes {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}
