//! Body plumbing: the request body on its way upstream (limited, timed,
//! counted), and the response body on its way to the client (counted, and
//! finishing the request's accounting when it ends or is dropped).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context as TaskCx, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::service::Completion;
use crate::upstream::{ExchangeError, ResponseStream};

/// What happened to a request body, shared with the request's handler
/// (the body itself is consumed by the upstream connection).
#[derive(Debug, Default)]
pub struct RequestStats {
    pub bytes: AtomicU64,
    pub too_large: AtomicBool,
    pub timed_out: AtomicBool,
    /// The client's body was malformed or cut off.
    pub broken: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body is larger than the route allows")]
    TooLarge,
    #[error("the client paused too long while sending the body")]
    Timeout,
    #[error("reading the request body failed: {0}")]
    Client(#[from] Box<dyn std::error::Error + Send + Sync>),
}

/// A request body as the client sends it: read from the HTTP/1
/// connection by the request's own task, or from an HTTP/2 stream.
pub enum ClientBody<'c> {
    H1(crate::h1::RequestBody<'c>),
    H2(Incoming),
}

impl Body for ClientBody<'_> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let next = match self.get_mut() {
            ClientBody::H1(b) => ready!(Pin::new(b).poll_frame(cx))
                .map(|r| r.map_err(|e| BodyError::Client(e.into()))),
            ClientBody::H2(b) => ready!(Pin::new(b).poll_frame(cx))
                .map(|r| r.map_err(|e| BodyError::Client(e.into()))),
        };
        Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::H1(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::H1(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
        }
    }
}

/// The client's body, streamed: refuses to go past `limit` bytes and fails
/// when the client pauses longer than `timeout` between chunks.
pub struct StreamingBody<'c> {
    inner: ClientBody<'c>,
    limit: u64,
    seen: u64,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    stats: Arc<RequestStats>,
}

impl<'c> StreamingBody<'c> {
    pub fn new(
        inner: ClientBody<'c>,
        limit: u64,
        timeout: Duration,
        stats: Arc<RequestStats>,
    ) -> Self {
        StreamingBody {
            inner,
            limit,
            seen: 0,
            timeout,
            sleep: None,
            stats,
        }
    }
}

impl Body for StreamingBody<'_> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.seen += n;
                    this.stats.bytes.fetch_add(n, Ordering::Relaxed);
                    if this.seen > this.limit {
                        this.stats.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                }
                if let Some(s) = this.sleep.as_mut() {
                    s.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.stats.broken.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.stats.timed_out.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(BodyError::Timeout)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body sent upstream. A stream is boxed: this value is moved down
/// through the futures that send a request, and most requests have no body
/// or a buffered one.
pub enum UpstreamBody<'c> {
    Empty,
    Full(Option<Bytes>),
    Stream(Box<StreamingBody<'c>>),
}

impl<'c> UpstreamBody<'c> {
    /// Whether the body can be sent again (for a retry).
    pub fn replay(&self) -> Option<UpstreamBody<'c>> {
        match self {
            UpstreamBody::Empty => Some(UpstreamBody::Empty),
            UpstreamBody::Full(b) => Some(UpstreamBody::Full(b.clone())),
            UpstreamBody::Stream(_) => None,
        }
    }
}

impl Body for UpstreamBody<'_> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Stream(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Full(b) => b.is_none(),
            UpstreamBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpstreamBody::Stream(s) => s.size_hint(),
        }
    }
}

/// Reads a whole body into memory, within the stream's limit and timeout.
pub async fn collect(mut body: Box<StreamingBody<'_>>) -> Result<Bytes, BodyError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

enum Inner {
    Upstream(ResponseStream),
    Full(Option<Bytes>),
}

/// The body sent to the client. Counts bytes and, when it ends or is dropped
/// (the client went away), completes the request: log phase, access log,
/// metrics.
pub struct ResponseBody {
    inner: Inner,
    sent: u64,
    ended: bool,
    completion: Option<Box<Completion>>,
    completed_at: Option<std::time::Instant>,
}

impl ResponseBody {
    pub fn upstream(body: ResponseStream, completion: Box<Completion>) -> Self {
        ResponseBody {
            inner: Inner::Upstream(body),
            sent: 0,
            ended: false,
            completion: Some(completion),
            completed_at: None,
        }
    }

    pub fn full(body: Bytes, completion: Option<Box<Completion>>) -> Self {
        ResponseBody {
            inner: Inner::Full(Some(body)),
            sent: 0,
            ended: false,
            completion,
            completed_at: None,
        }
    }

    fn finish(&mut self, aborted: bool) {
        if let Some(c) = self.completion.take() {
            self.completed_at = Some(c.complete(self.sent, aborted));
        }
    }

    /// When the request's accounting completed (the body ended or was
    /// discarded), if it has.
    pub fn completed_at(&self) -> Option<std::time::Instant> {
        self.completed_at
    }

    /// Ends a body that is not sent (a response to HEAD, a 204 or 304).
    pub fn discard(&mut self) {
        let aborted = !self.ended && !self.is_end_stream();
        self.finish(aborted);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = self.get_mut();
        let next = match &mut this.inner {
            Inner::Full(b) => b.take().map(|b| Ok(Frame::data(b))),
            Inner::Upstream(body) => ready!(Pin::new(body).poll_frame(cx)),
        };
        match &next {
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Some(Err(_)) => this.finish(true),
            None => {
                this.ended = true;
                this.finish(false);
            }
        }
        Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Inner::Upstream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Upstream(b) => b.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Ended, or never needed polling (an empty body): complete; dropped
        // midway: the client or upstream went away.
        let aborted = !self.ended && !self.is_end_stream();
        self.finish(aborted);
    }
}
