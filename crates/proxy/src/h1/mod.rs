//! The HTTP/1.1 server side, written for the gateway's hot path.
//!
//! One task per connection reads a request head, runs the request's
//! handler inline (the handler reads the body straight from the
//! connection), then writes the response and, when the connection may be
//! reused, waits for the next head. There is no per-connection dispatcher,
//! channel or buffered writer: a typical proxied exchange is one read from
//! the client and one write back, head and body together.
//!
//! Beyond parsing, the loop owns what sits below the request pipeline:
//! - the header timeout (a slow head gets `408`) and the idle timeout
//!   (a quiet keep-alive connection is closed without a word), with one
//!   timer per connection that is re-armed lazily;
//! - refusal of ambiguous framing before anything is routed (`head.rs`);
//! - `100 Continue`, sent only when the handler starts reading the body;
//! - graceful shutdown: an idle connection closes at once, a busy one after
//!   its current response (marked `Connection: close`);
//! - h2c by prior knowledge: the HTTP/2 preface hands the connection, with
//!   the bytes already read, to the HTTP/2 server.
//!
//! An idle connection holds no buffer: reads start on the stack and the
//! buffer is allocated only when a request arrives.

mod body;
pub(crate) mod head;
pub mod io;
mod write;

use std::future::{Future, poll_fn};
use std::io as stdio;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use http::header::CONNECTION;
use http::{Method, Response, Version};
use http_body::Body;
use portcullis_config::runtime::ListenerLimits;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use body::BodyState;
pub use body::RequestBody;
pub use head::HeadError;
use head::{BodyFraming, HeadLimits, Parsed};
use io::{ClientIo, Rewind};
use write::{OutBody, RequestMeta};

use crate::body::{ClientBody, ResponseBody};
use crate::chunked::Chunk;
use crate::service::{self, ConnInfo};
use crate::state::{ListenerCounters, Shared};
use crate::stop::StopWaiter;
use crate::timer::LazyTimer;

/// Bytes of response collected before they are written out.
const WRITE_BATCH: usize = 64 * 1024;
/// How much the read buffer grows by while a body streams in.
const READ_CHUNK: usize = 16 * 1024;

/// The connection's state between and during requests.
pub struct Connection {
    io: ClientIo,
    /// Bytes read and not yet consumed (the rest of a head, body bytes, a
    /// pipelined request). Empty and unallocated while idle.
    rbuf: BytesMut,
    /// How much of the current request's body is still unread.
    body: BodyState,
    /// The client sent `Expect: 100-continue` and has not been answered.
    expect_continue: bool,
    continue_sent: usize,
    /// How long one write of the response may wait for the client to take
    /// it: a client that stops reading does not hold the connection.
    send_timeout: Duration,
}

impl Connection {
    fn new(io: ClientIo, send_timeout: Duration) -> Self {
        Connection {
            io,
            rbuf: BytesMut::new(),
            body: BodyState::Done,
            expect_continue: false,
            continue_sent: 0,
            send_timeout,
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the end of the stream.
    /// With no buffer allocated, the read lands on the stack first, so a
    /// connection waiting for its next request owns no buffer.
    fn poll_fill(&mut self, cx: &mut Context<'_>, grow: usize) -> Poll<stdio::Result<usize>> {
        if self.rbuf.capacity() == 0 {
            let mut stack = [MaybeUninit::<u8>::uninit(); 4096];
            let mut rb = ReadBuf::uninit(&mut stack);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            let got = rb.filled();
            self.rbuf = BytesMut::with_capacity(got.len().max(1024));
            self.rbuf.extend_from_slice(got);
            return Poll::Ready(Ok(got.len()));
        }
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(grow);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }

    /// Consumes whatever of the request body is already buffered, so a
    /// small body the handler did not read does not cost the connection.
    fn skip_buffered_body(&mut self) {
        // Each piece taken consumes buffered bytes, so this ends.
        while let Some(Ok(Some(_))) = self.next_piece() {}
    }

    /// Ends the connection. Bounded: a TLS close_notify to a client that
    /// stopped reading must not hold it.
    async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
    }

    /// Writes `bytes`. Usually the socket takes them at once and no timer
    /// is involved; when it does not, the rest must go within the send
    /// timeout (each write batch gets its own, so a slow client that keeps
    /// reading is served).
    async fn write_all(&mut self, bytes: &[u8]) -> bool {
        let timeout = self.send_timeout;
        let mut write = pin!(self.io.write_all(bytes));
        if let Poll::Ready(r) = poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
            return r.is_ok();
        }
        matches!(tokio::time::timeout(timeout, write).await, Ok(Ok(())))
    }

    /// Flushes the connection (TLS may hold bytes), bounded the same way.
    async fn flush_io(&mut self) -> bool {
        let timeout = self.send_timeout;
        let mut flush = pin!(self.io.flush());
        if let Poll::Ready(r) = poll_fn(|cx| Poll::Ready(flush.as_mut().poll(cx))).await {
            return r.is_ok();
        }
        matches!(tokio::time::timeout(timeout, flush).await, Ok(Ok(())))
    }
}

enum Wake {
    Data,
    Closed,
    TimedOut,
    Stop,
}

/// Waits for bytes from the client, the timer, or the stop signal.
async fn wait(
    c: &mut Connection,
    timer: &mut LazyTimer,
    stop: &StopWaiter,
    stopping: &mut bool,
) -> Wake {
    poll_fn(|cx| {
        if !*stopping && stop.poll_stopped(cx).is_ready() {
            *stopping = true;
            return Poll::Ready(Wake::Stop);
        }
        match c.poll_fill(cx, READ_CHUNK) {
            Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Wake::Closed),
            Poll::Ready(Ok(_)) => return Poll::Ready(Wake::Data),
            Poll::Pending => {}
        }
        timer.poll(cx).map(|()| Wake::TimedOut)
    })
    .await
}

/// What a connection needs from its listener.
pub struct Settings {
    pub limits: ListenerLimits,
    pub h2c: bool,
}

/// Serves HTTP/1 requests on `io` until the connection closes. Returns the
/// stream when it turned out to carry HTTP/2 (h2c by prior knowledge).
pub async fn serve(
    io: ClientIo,
    conn: &ConnInfo,
    shared: &Shared,
    settings: &Settings,
    counters: &ListenerCounters,
    stop: &StopWaiter,
) -> Option<Rewind<ClientIo>> {
    let limits = &settings.limits;
    let head_limits = HeadLimits {
        max_headers: limits.max_headers,
        max_head_bytes: limits.max_header_bytes + 1024,
        h2c: settings.h2c,
    };
    let mut c = Connection::new(io, limits.body_timeout);
    // The first request must start within the header timeout.
    let mut timer = LazyTimer::new(Instant::now() + limits.header_timeout);
    // A head has begun and its deadline is not set yet. It is set only when
    // the head needs another read, so a head that arrives whole costs no
    // clock read.
    let mut head_begun = false;
    let mut stopping = stop.is_stopped();

    loop {
        let head = loop {
            if !c.rbuf.is_empty() {
                match head::parse(&mut c.rbuf, head_limits) {
                    Ok(Parsed::Head(h)) => break h,
                    Ok(Parsed::H2Preface) => {
                        let seen = c.rbuf.split().freeze();
                        return Some(Rewind::new(seen, c.io));
                    }
                    Ok(Parsed::Partial) => {}
                    Err(e) => {
                        // Boxed, as every rare path here: the connection's
                        // task stays small.
                        Box::pin(refuse(&mut c, conn, shared, service::Refusal::Head(e))).await;
                        return None;
                    }
                }
            } else if stopping {
                return None;
            }
            let was_empty = c.rbuf.is_empty();
            if head_begun && !was_empty {
                timer.set(Instant::now() + limits.header_timeout);
                head_begun = false;
            }
            match wait(&mut c, &mut timer, stop, &mut stopping).await {
                Wake::Data if was_empty => head_begun = true,
                Wake::Data | Wake::Stop => {}
                Wake::Closed => return None,
                Wake::TimedOut if c.rbuf.is_empty() => return None,
                Wake::TimedOut => {
                    counters.header_timeouts.inc();
                    Box::pin(refuse(
                        &mut c,
                        conn,
                        shared,
                        service::Refusal::HeaderTimeout,
                    ))
                    .await;
                    return None;
                }
            }
        };

        let (mut parts, framing) = (head.parts, head.body);
        let meta = RequestMeta {
            is_head: parts.method == Method::HEAD,
            http10: parts.version == Version::HTTP_10,
        };
        c.body = match framing {
            BodyFraming::None => BodyState::Done,
            BodyFraming::Length(n) => BodyState::Length(n),
            BodyFraming::Chunked => BodyState::Chunked(Chunk::Size),
        };
        c.expect_continue = head.expect_continue && c.body != BodyState::Done;
        c.continue_sent = 0;
        // The request's handling and its response's writing are boxed
        // together (one allocation): an idle connection's task then holds
        // only what waits for the next head.
        let (whole, completed_at, close) = Box::pin(async {
            let body = ClientBody::H1(RequestBody::new(&mut c));
            // The response is looked at in a block of its own: a borrowed
            // local keeps its room in the future until its scope ends, and
            // this one is moved into the writing future below.
            let (resp, asks_close) = {
                let resp = service::handle(&mut parts, body, conn, shared).await;
                let asks = asks_to_close(&resp);
                (resp, asks)
            };
            crate::bufpool::give_header_map(std::mem::take(&mut parts.headers));
            c.skip_buffered_body();
            if !stopping && stop.is_stopped() {
                stopping = true;
            }
            let close = !head.keep_alive || stopping || c.body != BodyState::Done || asks_close;
            let (whole, completed_at) = write_response(&mut c, resp, meta, close).await;
            (whole, completed_at, close)
        })
        .await;
        if !whole || close {
            c.close().await;
            return None;
        }
        if c.rbuf.is_empty() {
            // Idle: give the buffer back.
            c.rbuf = BytesMut::new();
        }
        // The idle time counts from the end of the response (the instant
        // its accounting already read, when there is one).
        let ended = completed_at.map_or_else(Instant::now, Instant::from_std);
        timer.set(ended + limits.idle_timeout);
        // Bytes already here are the start of a pipelined request.
        head_begun = !c.rbuf.is_empty();
    }
}

fn asks_to_close(resp: &Response<ResponseBody>) -> bool {
    resp.headers()
        .get(CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// Answers a request refused below the pipeline, then the connection ends.
async fn refuse(c: &mut Connection, conn: &ConnInfo, shared: &Shared, why: service::Refusal) {
    let resp = service::refuse(conn, shared, why);
    let meta = RequestMeta {
        is_head: false,
        http10: false,
    };
    let _ = write_response(c, resp, meta, true).await;
    c.close().await;
}

/// Writes one response. Returns whether it went out whole (the connection
/// may then be reused if `close` is false), and when its accounting
/// completed.
async fn write_response(
    c: &mut Connection,
    resp: Response<ResponseBody>,
    meta: RequestMeta,
    close: bool,
) -> (bool, Option<std::time::Instant>) {
    let (parts, mut body) = resp.into_parts();
    let mut out = crate::bufpool::take(1024);
    let (framing, _) = write::encode_head(&parts, &body.size_hint(), meta, close, &mut out);
    crate::bufpool::give_header_map(parts.headers);
    // One function for the head and the body (no nested future to move
    // into this one's state); every way out of the block says whether the
    // response went out whole.
    let whole = 'send: {
        if framing == OutBody::None {
            // Nothing of the body is sent; its accounting ends here.
            body.discard();
            break 'send c.write_all(&out).await && c.flush_io().await;
        }
        let mut sent: u64 = 0;
        loop {
            // Take what the body has ready; write out only before waiting,
            // so a response that is all there goes out in one write.
            let next = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(next) => next,
                Poll::Pending => {
                    if !out.is_empty() && !flush(c, &mut out).await {
                        break 'send false;
                    }
                    poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                }
            };
            match next {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    sent += data.len() as u64;
                    match framing {
                        OutBody::Length(n) if sent > n => {
                            // More than declared: the rest cannot be framed.
                            let _ = flush(c, &mut out).await;
                            break 'send false;
                        }
                        OutBody::Chunked => {
                            crate::chunked::push_size_line(&mut out, data.len());
                            out.extend_from_slice(&data);
                            out.extend_from_slice(b"\r\n");
                        }
                        _ => out.extend_from_slice(&data),
                    }
                    if out.len() >= WRITE_BATCH && !flush(c, &mut out).await {
                        break 'send false;
                    }
                }
                Some(Err(_)) => {
                    // The upstream failed mid-body: what was sent stands,
                    // the connection ends so the client sees the truncation.
                    let _ = flush(c, &mut out).await;
                    break 'send false;
                }
                None => {
                    if framing == OutBody::Chunked {
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                    let complete = match framing {
                        OutBody::Length(n) => sent == n,
                        OutBody::UntilClose => false,
                        _ => true,
                    };
                    break 'send flush(c, &mut out).await && c.flush_io().await && complete;
                }
            }
        }
    };
    (whole, body.completed_at())
}

async fn flush(c: &mut Connection, out: &mut Vec<u8>) -> bool {
    let ok = c.write_all(out).await;
    out.clear();
    ok
}
