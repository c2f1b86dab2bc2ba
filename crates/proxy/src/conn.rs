//! A guard around each HTTP/1 connection's I/O, below the HTTP parser.
//!
//! It does three things hyper does not:
//! - **Header timeout with a 408**: a client that takes longer than
//!   `header_timeout` to send a request head (slowloris) gets a
//!   `408` problem+json and the connection is closed; a keep-alive
//!   connection idle longer than `idle_timeout` is closed quietly.
//! - **Smuggling detection**: the raw head is scanned for both
//!   `Content-Length` and `Transfer-Encoding`. hyper would resolve the
//!   conflict safely (chunked wins, the connection closes), but the gateway
//!   refuses such requests outright; the service sees the flag.
//! - **h2c prior knowledge** is recognised from its preface, after which the
//!   guard steps aside.
//!
//! The request's handler tells the guard when requests start and finish
//! (through [`ConnShared`]), so time spent by the upstream or reading a body
//! never counts against the header timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use portcullis_core::{Problem, RequestId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// State shared between a connection's guard and its request handlers.
#[derive(Debug, Default)]
pub struct ConnShared {
    started: AtomicU64,
    finished: AtomicU64,
    /// The last head scanned had both Content-Length and Transfer-Encoding.
    pub smuggling: AtomicBool,
    /// The guard answered 408 and closed the connection; the id it used.
    pub header_timed_out: OnceLock<RequestId>,
}

impl ConnShared {
    /// Marks a request as started; the returned guard marks it finished when
    /// dropped (whatever way the request ends).
    pub fn start_request(self: &Arc<Self>) -> RequestGuard {
        self.started.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    fn active(&self) -> bool {
        self.started.load(Ordering::Acquire) != self.finished.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
pub struct RequestGuard(Arc<ConnShared>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::AcqRel);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the first byte of a request.
    Idle,
    /// Some of a request head has arrived.
    Head,
    /// The head is complete; a handler runs or will run.
    Request,
    /// Not HTTP/1 (h2 prior knowledge): hands off.
    Passthrough,
}

/// Scans raw request heads for the end of the head and framing headers.
#[derive(Debug, Default)]
struct HeadScan {
    line: [u8; 20],
    len: usize,
    line_bytes: usize,
    first_line_done: bool,
    saw_cl: bool,
    saw_te: bool,
}

enum ScanResult {
    More,
    /// The head ended; `conflict` when both framing headers were present.
    Done {
        conflict: bool,
    },
    H2Preface,
}

impl HeadScan {
    fn reset(&mut self) {
        *self = HeadScan::default();
    }

    /// Keeps the start of the current line (lower-cased; only the start
    /// matters for the names looked for) and counts its length.
    fn absorb(&mut self, part: &[u8]) {
        self.line_bytes += part.len();
        let room = self.line.len() - self.len;
        for (slot, b) in self
            .line
            .iter_mut()
            .skip(self.len)
            .zip(part.iter().take(room))
        {
            *slot = b.to_ascii_lowercase();
        }
        self.len += room.min(part.len());
    }

    fn feed(&mut self, bytes: &[u8]) -> ScanResult {
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let (part, after) = rest.split_at(i);
            self.absorb(part);
            rest = after.get(1..).unwrap_or(&[]);
            let line = self.line.get(..self.len).unwrap_or(&[]);
            let empty = self.line_bytes == 0 || (self.line_bytes == 1 && line == b"\r");
            if !self.first_line_done {
                if !empty {
                    if line.starts_with(b"pri * http/2.0") {
                        return ScanResult::H2Preface;
                    }
                    self.first_line_done = true;
                }
            } else if empty {
                return ScanResult::Done {
                    conflict: self.saw_cl && self.saw_te,
                };
            } else if line.starts_with(b"content-length") {
                self.saw_cl = true;
            } else if line.starts_with(b"transfer-encoding") {
                self.saw_te = true;
            }
            self.len = 0;
            self.line_bytes = 0;
        }
        self.absorb(rest);
        ScanResult::More
    }
}

/// The I/O wrapper; see the module documentation.
pub struct ConnGuard<IO> {
    io: IO,
    shared: Arc<ConnShared>,
    header_timeout: Duration,
    idle_timeout: Duration,
    state: State,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    scan: HeadScan,
}

impl<IO> ConnGuard<IO> {
    pub fn new(
        io: IO,
        shared: Arc<ConnShared>,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        // The first request must arrive within the header timeout.
        let deadline = Instant::now() + header_timeout;
        ConnGuard {
            io,
            shared,
            header_timeout,
            idle_timeout,
            state: State::Idle,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            scan: HeadScan::default(),
        }
    }

    /// A guard that only passes bytes through (HTTP/2 over TLS).
    pub fn passthrough(io: IO, shared: Arc<ConnShared>) -> Self {
        let mut g = ConnGuard::new(io, shared, Duration::from_secs(1), Duration::from_secs(1));
        g.state = State::Passthrough;
        g
    }
}

/// A problem+json response as raw HTTP/1.1 bytes, for the few answers
/// written below the HTTP layer (a slow head, a connection over the cap).
/// The connection is closed after it.
pub(crate) fn raw_problem(problem: &Problem, id: &RequestId) -> Vec<u8> {
    let resp = problem.to_response(id);
    let status = resp.status();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in resp.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "connection: close\r\ncontent-length: {}\r\n\r\n",
            resp.body().len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(resp.body());
    out
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state == State::Passthrough {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if this.state == State::Request && !this.shared.active() {
            this.state = State::Idle;
            this.deadline = Instant::now() + this.idle_timeout;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = buf.filled().get(before..).unwrap_or(&[]);
                if new.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                if this.state == State::Idle {
                    this.state = State::Head;
                    this.deadline = Instant::now() + this.header_timeout;
                    this.scan.reset();
                }
                if this.state == State::Head {
                    match this.scan.feed(new) {
                        ScanResult::More => {}
                        ScanResult::Done { conflict } => {
                            this.shared.smuggling.store(conflict, Ordering::Release);
                            this.state = State::Request;
                        }
                        ScanResult::H2Preface => this.state = State::Passthrough,
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = match this.state {
                    State::Idle | State::Head => this.deadline,
                    // A handler runs: re-check later in case its end was
                    // missed, so an idle connection is never left unguarded.
                    _ => Instant::now() + this.idle_timeout,
                };
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                match this.state {
                    State::Idle => Poll::Ready(Ok(())), // quiet close
                    State::Head => {
                        let id = RequestId::generate();
                        // Best effort: the socket is fresh and the answer small.
                        let _ = Pin::new(&mut this.io)
                            .poll_write(cx, &raw_problem(&Problem::request_timeout(), &id));
                        let _ = this.shared.header_timed_out.set(id);
                        let _ = Pin::new(&mut this.io).poll_flush(cx);
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head timeout",
                        )))
                    }
                    _ => {
                        // Re-check: loop once more through the state logic.
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ConnGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_response_is_problem_json_with_the_request_id() {
        let id = RequestId::from_incoming(b"abc").unwrap();
        let raw = raw_problem(&Problem::request_timeout(), &id);
        let text = std::str::from_utf8(&raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 408 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("content-type: application/problem+json"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], 408);
        assert_eq!(v["request_id"], "abc");
    }

    fn scan_all(chunks: &[&[u8]]) -> Option<bool> {
        let mut s = HeadScan::default();
        for c in chunks {
            match s.feed(c) {
                ScanResult::Done { conflict } => return Some(conflict),
                ScanResult::H2Preface => return None,
                ScanResult::More => {}
            }
        }
        panic!("head not finished")
    }

    #[test]
    fn scan_finds_conflicting_framing_across_chunks() {
        assert_eq!(
            scan_all(&[b"POST / HTTP/1.1\r\nHost: a\r\n\r\n"]),
            Some(false)
        );
        assert_eq!(
            scan_all(&[
                b"POST / HTTP/1.1\r\nContent-Len",
                b"gth: 5\r\nTransfer-Encoding: chunked\r\n",
                b"\r\n"
            ]),
            Some(true)
        );
        assert_eq!(
            scan_all(&[b"\r\nGET / HTTP/1.1\nTRANSFER-ENCODING: chunked\ncontent-length: 1\n\n"]),
            Some(true)
        );
        assert_eq!(scan_all(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]), None);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_head_gets_408_and_idle_connection_closes_quietly() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(4096);
        let shared = Arc::new(ConnShared::default());
        let mut guard = ConnGuard::new(
            server,
            shared.clone(),
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
        let mut buf = [0u8; 64];
        let n = guard.read(&mut buf).await.unwrap();
        assert_eq!(n, 20);
        let err = guard.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(shared.header_timed_out.get().is_some());
        let mut got = vec![0u8; 12];
        cr.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"HTTP/1.1 408");

        // A fresh connection that never sends anything is closed without a word.
        let (_client, server) = tokio::io::duplex(4096);
        let shared = Arc::new(ConnShared::default());
        let mut guard = ConnGuard::new(
            server,
            shared.clone(),
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        assert_eq!(guard.read(&mut buf).await.unwrap(), 0);
        assert!(shared.header_timed_out.get().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn time_in_a_request_does_not_count_and_idle_follows() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(4096);
        let shared = Arc::new(ConnShared::default());
        let mut guard = ConnGuard::new(
            server,
            shared.clone(),
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        use tokio::io::AsyncReadExt;
        let n = guard.read(&mut buf).await.unwrap();
        assert_eq!(n, 27);
        let req = shared.start_request();
        // The handler takes 30s; the guard must not time out meanwhile.
        let read = tokio::time::timeout(Duration::from_secs(30), guard.read(&mut buf)).await;
        assert!(read.is_err(), "no data and no timeout while a request runs");
        drop(req);
        // Now idle: closed quietly after the idle timeout.
        let n = guard.read(&mut buf).await.unwrap();
        assert_eq!(n, 0);
        assert!(shared.header_timed_out.get().is_none());
    }
}
