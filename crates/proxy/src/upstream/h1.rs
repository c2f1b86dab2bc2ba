//! The HTTP/1.1 client side, written for the proxy's hot path: the request
//! is written and the response read inline in the request's own task (no
//! connection task, no channel), and the framing sent upstream is always
//! decided here, never copied from the client, so a smuggled
//! `Content-Length`/`Transfer-Encoding` cannot reach the upstream.
//!
//! Response framing follows RFC 9112 §6.3; a response the upstream frames
//! ambiguously (conflicting lengths, a bad chunk) is an error, and its
//! connection is never reused.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::time::Sleep;

use super::pool::Pool;
use super::stream::Stream;
use crate::body::{BodyError, UpstreamBody};
use crate::chunked::{self, Chunk, Decoded};
use crate::headers::{self, Forwarding};
use crate::timer::LazyTimer;

/// The longest response head accepted from an upstream.
const MAX_HEAD: usize = 64 * 1024;
/// The most response headers accepted.
const MAX_HEADERS: usize = 128;
const READ_CHUNK: usize = 16 * 1024;

/// Why an exchange with an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection closed before any response byte: a pooled connection
    /// the upstream had already closed. Safe to retry when the request is.
    #[error("the connection was closed before a response")]
    Closed,
    #[error("upstream I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("the upstream's response is malformed: {0}")]
    BadResponse(&'static str),
    #[error("{0}")]
    Body(#[from] BodyError),
}

/// An open connection to a target.
pub struct Conn {
    pub(super) io: Stream,
    pub(super) buf: BytesMut,
    pub(super) idle_since: Instant,
    /// The response-header timer, kept with the connection so that it is
    /// not registered anew for every request.
    pub(super) timer: Option<LazyTimer>,
}

/// How the request body is framed towards the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutFraming {
    /// No body and no framing header (GET, HEAD, ...).
    None,
    Length(u64),
    Chunked,
}

impl OutFraming {
    /// The framing for `body`: exact lengths are declared, streams of
    /// unknown length are chunked, and methods that carry bodies declare an
    /// empty one explicitly.
    pub fn for_body(method: &Method, body: &UpstreamBody<'_>) -> OutFraming {
        let len = match body {
            UpstreamBody::Empty => Some(0),
            UpstreamBody::Full(b) => Some(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpstreamBody::Stream(s) => s.size_hint().exact(),
        };
        match len {
            Some(0) if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {
                OutFraming::None
            }
            Some(n) => OutFraming::Length(n),
            None => OutFraming::Chunked,
        }
    }
}

/// Writes the request line and headers. The caller has removed hop-by-hop
/// headers; framing headers are dropped here and replaced by `framing`.
/// With `forwarding`, the gateway's own fields (`X-Forwarded-*`,
/// `Forwarded`, `X-Real-IP`, `X-Request-Id`) are written from it and the
/// map's copies of them are left out.
pub fn encode_head(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    forwarding: Option<&Forwarding<'_>>,
    framing: OutFraming,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if *name == CONTENT_LENGTH
            || *name == TRANSFER_ENCODING
            || name == "expect"
            || (forwarding.is_some() && headers::is_forwarding(name))
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(f) = forwarding {
        headers::write_forwarding(out, headers, f);
    }
    match framing {
        OutFraming::None => {}
        OutFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        OutFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed response head.
pub struct Head {
    pub parts: http::response::Parts,
    pub framing: Framing,
    pub keep_alive: bool,
}

/// Parses a complete head at the start of `buf`; `Ok(None)` when more bytes
/// are needed. On success the head's bytes are consumed. The head comes
/// out already clean: hop-by-hop fields (with those `Connection` names) and
/// server banners are left out, so nothing downstream strips them again.
pub fn parse_head(
    buf: &mut BytesMut,
    is_head_request: bool,
) -> Result<Option<Head>, ExchangeError> {
    // Uninitialised slots: filling 128 empty headers for every response
    // costs more than parsing a small head.
    let mut slots: [std::mem::MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] =
        [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HEAD {
                Err(ExchangeError::BadResponse("the response head is too large"))
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ExchangeError::BadResponse("too many response headers"));
        }
        Err(_) => {
            return Err(ExchangeError::BadResponse(
                "the response head cannot be parsed",
            ));
        }
    };
    let code = resp.code.unwrap_or(0);
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // First the fields that decide framing and reuse, read from the raw
    // head; hop-by-hop fields and server banners never reach the map.
    let mut conn = Tokens::default();
    // Whether the last transfer coding seen is `chunked`, if any was sent.
    let mut te_chunked: Option<bool> = None;
    let mut length: Result<Option<u64>, &'static str> = Ok(None);
    let mut has_length = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            conn.observe(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h
                .value
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .rfind(|t| !t.is_empty());
            te_chunked = Some(last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            has_length = true;
            length = length.and_then(|l| merge_length(l, h.value));
        }
    }
    // With both, the length is ignored (and the connection not reused).
    let drop_length = te_chunked.is_some() && has_length;
    // Remember where each kept field lies, then take the head out of the
    // buffer and slice the values from it without copying.
    let base = buf.as_ptr() as usize;
    // On the stack for a usual head: a head is at most MAX_HEAD (64 KiB)
    // long, so offsets fit in 16 bits.
    let mut spans: smallvec::SmallVec<[(u16, u16, u16, u16); 24]> = smallvec::SmallVec::new();
    for h in resp.headers.iter() {
        if headers::never_forwarded_back(h.name)
            || conn.names(h.name)
            || (drop_length && h.name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        let offset = |p: *const u8| u16::try_from(p as usize - base);
        let (Ok(ns), Ok(nl), Ok(vs), Ok(vl)) = (
            offset(h.name.as_ptr()),
            u16::try_from(h.name.len()),
            offset(h.value.as_ptr()),
            u16::try_from(h.value.len()),
        ) else {
            return Err(ExchangeError::BadResponse("the response head is too large"));
        };
        spans.push((ns, nl, vs, vl));
    }
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code)
        .map_err(|_| ExchangeError::BadResponse("invalid status code"))?;
    // Room for the headers the gateway adds on the way back.
    let mut headers = crate::bufpool::header_map(spans.len() + 6);
    for &(ns, nl, vs, vl) in &spans {
        let (ns, nl, vs, vl) = (
            usize::from(ns),
            usize::from(nl),
            usize::from(vs),
            usize::from(vl),
        );
        let name = head
            .get(ns..ns + nl)
            .and_then(|n| crate::names::from_wire(n).ok())
            .ok_or(ExchangeError::BadResponse("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..vs + vl))
            .map_err(|_| ExchangeError::BadResponse("invalid header value"))?;
        headers.append(name, value);
    }
    let mut keep_alive = match version {
        Version::HTTP_10 => conn.keep_alive,
        _ => !conn.close,
    };
    let framing = if is_head_request || code < 200 || code == 204 || code == 304 {
        Framing::Empty
    } else if let Some(chunked_last) = te_chunked {
        if has_length {
            keep_alive = false;
        }
        if chunked_last {
            Framing::Chunked
        } else {
            keep_alive = false;
            Framing::UntilClose
        }
    } else {
        match length.map_err(ExchangeError::BadResponse)? {
            Some(n) => Framing::Length(n),
            None => {
                keep_alive = false;
                Framing::UntilClose
            }
        }
    };
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Head {
        parts,
        framing,
        keep_alive,
    }))
}

/// What the `Connection` fields say: the options that matter for reuse,
/// and the other fields they name (hop-by-hop, never forwarded).
#[derive(Default)]
struct Tokens {
    close: bool,
    keep_alive: bool,
    /// Rare; empty for almost every response.
    named: Vec<Vec<u8>>,
}

impl Tokens {
    fn observe(&mut self, value: &[u8]) {
        for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !token.is_empty()
                // End-to-end essentials are never dropped on request.
                && !token.eq_ignore_ascii_case(b"content-length")
                && !token.eq_ignore_ascii_case(b"content-type")
            {
                self.named.push(token.to_ascii_lowercase());
            }
        }
    }

    /// Whether `name` is one the `Connection` fields named.
    fn names(&self, name: &str) -> bool {
        !self.named.is_empty()
            && self
                .named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Adds one `Content-Length` field (possibly a list) to what was seen:
/// every value must be a plain decimal, and all must agree.
fn merge_length(seen: Option<u64>, value: &[u8]) -> Result<Option<u64>, &'static str> {
    let mut length = seen;
    for part in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
        let n = (!part.is_empty() && part.len() <= 19 && part.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(part).ok()?.parse::<u64>().ok())
            .flatten()
            .ok_or("invalid content-length")?;
        if length.is_some_and(|l| l != n) {
            return Err("conflicting content-length values");
        }
        length = Some(n);
    }
    Ok(length)
}

impl Conn {
    pub fn new(io: Stream) -> Self {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            idle_since: Instant::now(),
            timer: None,
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    /// Sends a request: head, then body in the given framing.
    pub async fn send(
        &mut self,
        head: &[u8],
        body: UpstreamBody<'_>,
        framing: OutFraming,
    ) -> Result<(), ExchangeError> {
        match body {
            UpstreamBody::Empty | UpstreamBody::Full(None) => {
                self.io.write_all(head).await.map_err(closed_or_io)?
            }
            UpstreamBody::Full(Some(b)) => {
                // One write for head and body.
                let mut all = Vec::with_capacity(head.len() + b.len());
                all.extend_from_slice(head);
                all.extend_from_slice(&b);
                self.io.write_all(&all).await.map_err(closed_or_io)?;
            }
            // Boxed: a streamed body is the rare case, and its state would
            // otherwise enlarge every request's future.
            UpstreamBody::Stream(s) => Box::pin(self.send_stream(head, s, framing)).await?,
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Sends the head, then a streamed body in `framing`.
    async fn send_stream(
        &mut self,
        head: &[u8],
        mut s: Box<crate::body::StreamingBody<'_>>,
        framing: OutFraming,
    ) -> Result<(), ExchangeError> {
        self.io.write_all(head).await.map_err(closed_or_io)?;
        let chunked = framing == OutFraming::Chunked;
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut s).poll_frame(cx)).await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if chunked {
                let mut line = Vec::with_capacity(18);
                chunked::push_size_line(&mut line, data.len());
                self.io.write_all(&line).await?;
                self.io.write_all(&data).await?;
                self.io.write_all(b"\r\n").await?;
            } else {
                self.io.write_all(&data).await?;
            }
        }
        if chunked {
            self.io.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Reads the response head, skipping interim (1xx) responses.
    pub async fn read_head(&mut self, is_head_request: bool) -> Result<Head, ExchangeError> {
        let mut received = false;
        loop {
            if !self.buf.is_empty() {
                received = true;
                if let Some(head) = parse_head(&mut self.buf, is_head_request)? {
                    let code = head.parts.status.as_u16();
                    if (100..200).contains(&code) && code != 101 {
                        continue;
                    }
                    return Ok(head);
                }
            }
            let n = poll_fn(|cx| self.poll_fill(cx)).await.map_err(|e| {
                if received {
                    ExchangeError::Io(e)
                } else {
                    closed_or_io(e)
                }
            })?;
            if n == 0 {
                return Err(if received {
                    ExchangeError::BadResponse("the response head is truncated")
                } else {
                    ExchangeError::Closed
                });
            }
        }
    }

    /// Whether an idle connection still looks usable: not closed by the
    /// upstream and with no unsolicited bytes.
    pub fn is_alive(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        matches!(self.poll_fill(&mut cx), Poll::Pending)
    }
}

fn closed_or_io(e: io::Error) -> ExchangeError {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ExchangeError::Closed,
        _ => ExchangeError::Io(e),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// A response body read from the upstream connection. When it has been
/// read to its end, the connection goes back to the pool.
pub struct ResponseStream {
    conn: Option<Conn>,
    state: State,
    reusable: bool,
    pool: Arc<Pool>,
    read_timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl ResponseStream {
    pub fn new(conn: Conn, head: &Head, pool: Arc<Pool>, read_timeout: Duration) -> Self {
        let state = match head.framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::Size),
            Framing::UntilClose => State::UntilClose,
        };
        ResponseStream {
            conn: Some(conn),
            state,
            reusable: head.keep_alive,
            pool,
            read_timeout,
            sleep: None,
        }
    }

    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, ExchangeError>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        match conn.poll_fill(cx) {
            Poll::Ready(r) => {
                if let Some(s) = self.sleep.as_mut() {
                    s.as_mut()
                        .reset(tokio::time::Instant::now() + self.read_timeout);
                }
                Poll::Ready(r.map_err(ExchangeError::Io))
            }
            Poll::Pending => {
                let timeout = self.read_timeout;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(ExchangeError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the upstream paused too long in its response body",
                    ))));
                }
                Poll::Pending
            }
        }
    }
}

impl Body for ResponseStream {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(n) => {
                    if !conn.buf.is_empty() {
                        let take = usize::try_from(n).unwrap_or(usize::MAX).min(conn.buf.len());
                        let data = conn.buf.split_to(take).freeze();
                        let left = n - take as u64;
                        this.state = if left == 0 {
                            State::Done
                        } else {
                            State::Length(left)
                        };
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(mut chunk) => {
                    let got = chunked::decode(&mut conn.buf, &mut chunk)
                        .map_err(|e| ExchangeError::BadResponse(e.0));
                    this.state = State::Chunked(chunk);
                    match got {
                        Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Ok(Decoded::End) => {
                            this.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Ok(Decoded::NeedMore) => {}
                        Err(e) => {
                            this.reusable = false;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                State::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            match ready!(this.fill(cx)) {
                Ok(0) => {
                    return if this.state == State::UntilClose {
                        this.state = State::Done;
                        this.reusable = false;
                        Poll::Ready(None)
                    } else {
                        this.reusable = false;
                        Poll::Ready(Some(Err(ExchangeError::BadResponse(
                            "the response body is truncated",
                        ))))
                    };
                }
                Ok(_) => {}
                Err(e) => {
                    this.reusable = false;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl ResponseStream {
    /// Records when the response head arrived. A body read without waiting
    /// leaves the connection idle from then on; one that had to wait reads
    /// the clock again when it ends.
    pub fn head_arrived(&mut self, at: Instant) {
        if let Some(conn) = self.conn.as_mut() {
            conn.idle_since = at;
        }
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if self.state == State::Done
            && self.reusable
            && let Some(mut conn) = self.conn.take()
            && conn.buf.is_empty()
        {
            if self.sleep.is_some() {
                conn.idle_since = Instant::now();
            }
            self.pool.put(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, is_head: bool) -> Result<Option<Head>, ExchangeError> {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_head(&mut buf, is_head)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
        let h = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        assert!(!h.parts.headers.contains_key(CONTENT_LENGTH));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = head(
            "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = head(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(h.keep_alive);
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(4));
    }

    #[test]
    fn ambiguous_or_malformed_heads_are_errors() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            "HTTP/1.1 999999 OK\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert!(head(raw, false).is_err(), "{raw:?}");
        }
        assert!(
            head("HTTP/1.1 200 OK\r\nContent-", false)
                .unwrap()
                .is_none()
        );
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(head(&huge, false).is_err());
    }

    #[test]
    fn head_values_are_kept_and_the_body_is_left_in_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 201 Created\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nhi"[..],
        );
        let h = parse_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.parts.status, 201);
        let values: Vec<_> = h.parts.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&buf[..], b"hi");
    }

    #[test]
    fn hop_by_hop_fields_and_banners_are_left_out() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
             Server: nginx/1.2\r\nX-Powered-By: PHP\r\nUpgrade: h2c\r\nTrailer: x\r\n\
             Content-Type: text/plain\r\nContent-Length: 2\r\nX-Kept: yes\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        let mut names: Vec<&str> = h.parts.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "content-type", "x-kept"]);
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(2), true));
        // `Connection` cannot take end-to-end essentials with it.
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(h.parts.headers.contains_key(CONTENT_LENGTH));
    }

    #[test]
    fn the_gateways_forwarding_fields_replace_the_maps_copies() {
        let mut h = HeaderMap::new();
        h.insert("host", "api".parse().unwrap());
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("x-request-id", "forged".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        let peer_value = HeaderValue::from_static("192.0.2.1");
        let f = Forwarding {
            peer: "192.0.2.1".parse().unwrap(),
            peer_value: &peer_value,
            client: "192.0.2.1".parse().unwrap(),
            trusted_peer: false,
            proto: "http",
            host: None,
            request_id: b"rid",
        };
        let mut out = Vec::new();
        encode_head(&Method::GET, "/", &h, Some(&f), OutFraming::None, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("GET / HTTP/1.1\r\nhost: api\r\nx-kept: 1\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(text.contains("\r\nx-forwarded-for: 192.0.2.1\r\n"));
        assert!(text.contains("\r\nx-request-id: rid\r\n"));
        assert!(
            !text.contains("6.6.6.6") && !text.contains("forged"),
            "{text}"
        );
        // Without forwarding (health probes) the map is written as it is.
        let mut out = Vec::new();
        encode_head(&Method::GET, "/", &h, None, OutFraming::None, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("x-request-id: forged")
        );
    }

    #[test]
    fn request_framing_is_decided_here() {
        let mut h = HeaderMap::new();
        h.insert("host", "api".parse().unwrap());
        h.insert("content-length", "999".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("expect", "100-continue".parse().unwrap());
        let mut out = Vec::new();
        encode_head(
            &Method::POST,
            "/x?y=1",
            &h,
            None,
            OutFraming::Length(3),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /x?y=1 HTTP/1.1\r\nhost: api\r\ncontent-length: 3\r\n\r\n"
        );
        assert_eq!(
            OutFraming::for_body(&Method::GET, &UpstreamBody::Empty),
            OutFraming::None
        );
        assert_eq!(
            OutFraming::for_body(&Method::POST, &UpstreamBody::Empty),
            OutFraming::Length(0)
        );
        assert_eq!(
            OutFraming::for_body(
                &Method::PUT,
                &UpstreamBody::Full(Some(Bytes::from_static(b"abc")))
            ),
            OutFraming::Length(3)
        );
    }
}
