//! The request body of an HTTP/1 request, read from the connection while
//! the request's handler runs.
//!
//! The body borrows the connection: the handler runs inline in the
//! connection's task, and the response is written only after the handler
//! has returned, so reading the body and writing the response never
//! overlap. What is left of the body afterwards is in
//! [`Connection::body`](super::Connection).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::Connection;
use crate::chunked::{self, Chunk, Decoded};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How much of the current request's body is still to come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyState {
    /// Read to its end (or there was none).
    Done,
    Length(u64),
    Chunked(Chunk),
    /// Reading failed; the connection cannot be reused.
    Broken,
}

/// Why reading a request body failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the client closed the connection before the body ended")]
    Truncated,
    #[error("the request body's chunked framing is malformed: {0}")]
    Chunked(#[from] chunked::ChunkError),
    #[error("reading the request body failed: {0}")]
    Io(#[from] io::Error),
}

/// The body of the request being handled.
pub struct RequestBody<'c> {
    conn: &'c mut Connection,
}

impl<'c> RequestBody<'c> {
    pub(super) fn new(conn: &'c mut Connection) -> Self {
        RequestBody { conn }
    }
}

impl Connection {
    /// Takes the next piece of body from the buffer: `None` when more
    /// bytes must be read first, `Some(Ok(None))` at the end.
    pub(super) fn next_piece(&mut self) -> Option<Result<Option<Bytes>, ReadError>> {
        match self.body {
            BodyState::Done | BodyState::Broken => Some(Ok(None)),
            BodyState::Length(n) => {
                if self.rbuf.is_empty() {
                    return None;
                }
                let take = usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(self.rbuf.len());
                let data = self.rbuf.split_to(take).freeze();
                let left = n - take as u64;
                self.body = if left == 0 {
                    BodyState::Done
                } else {
                    BodyState::Length(left)
                };
                Some(Ok(Some(data)))
            }
            BodyState::Chunked(mut chunk) => {
                let got = chunked::decode(&mut self.rbuf, &mut chunk);
                self.body = BodyState::Chunked(chunk);
                match got {
                    Ok(Decoded::Data(d)) => Some(Ok(Some(d))),
                    Ok(Decoded::End) => {
                        self.body = BodyState::Done;
                        Some(Ok(None))
                    }
                    Ok(Decoded::NeedMore) => None,
                    Err(e) => {
                        self.body = BodyState::Broken;
                        Some(Err(e.into()))
                    }
                }
            }
        }
    }

    /// Sends `100 Continue` if the client waits for it (once, before the
    /// first read of the body).
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.continue_sent < CONTINUE.len() && self.expect_continue {
            let rest = CONTINUE.get(self.continue_sent..).unwrap_or(&[]);
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.continue_sent += n;
        }
        if self.expect_continue && self.continue_sent == CONTINUE.len() {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.expect_continue = false;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, ReadError>> {
        loop {
            if let Some(piece) = self.next_piece() {
                return Poll::Ready(piece);
            }
            if let Err(e) = ready!(self.poll_continue(cx)) {
                self.body = BodyState::Broken;
                return Poll::Ready(Err(e.into()));
            }
            match ready!(self.poll_fill(cx, 16 * 1024)) {
                Ok(0) => {
                    self.body = BodyState::Broken;
                    return Poll::Ready(Err(ReadError::Truncated));
                }
                Ok(_) => {}
                Err(e) => {
                    self.body = BodyState::Broken;
                    return Poll::Ready(Err(e.into()));
                }
            }
        }
    }
}

impl Body for RequestBody<'_> {
    type Data = Bytes;
    type Error = ReadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReadError>>> {
        let conn = &mut *self.get_mut().conn;
        match ready!(conn.poll_body(cx)) {
            Ok(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.conn.body, BodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.conn.body {
            BodyState::Length(n) => SizeHint::with_exact(n),
            BodyState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
