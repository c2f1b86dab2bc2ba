//! Encoding an HTTP/1.1 response head and choosing how its body is framed.
//!
//! The framing sent to the client is always decided here from what the
//! gateway knows about the body, never copied from the upstream: an exact
//! length becomes `Content-Length`, an unknown one `chunked` (or, for an
//! HTTP/1.0 client, the end of the connection).

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http_body::SizeHint;

/// What the request said that shapes its response.
#[derive(Clone, Copy, Debug)]
pub struct RequestMeta {
    pub is_head: bool,
    pub http10: bool,
}

/// How the body follows the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutBody {
    /// No body bytes are sent (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0, unknown length).
    UntilClose,
}

/// Writes the status line and headers into `out`. `close` says whether the
/// connection ends after this response; it is forced on when the body can
/// only be delimited by closing. Returns the body framing and the final
/// `close`.
pub fn encode_head(
    parts: &http::response::Parts,
    hint: &SizeHint,
    req: RequestMeta,
    mut close: bool,
    out: &mut Vec<u8>,
) -> (OutBody, bool) {
    let status = parts.status;
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // Whether the upstream's Content-Length stays: only where no body is
    // sent and the length describes the resource (HEAD, 304).
    let keep_length = (req.is_head && !no_body) || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body || req.is_head {
        OutBody::None
    } else if let Some(n) = hint.exact() {
        OutBody::Length(n)
    } else if req.http10 {
        close = true;
        OutBody::UntilClose
    } else {
        OutBody::Chunked
    };

    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if *name == CONNECTION
            || *name == TRANSFER_ENCODING
            || (*name == CONTENT_LENGTH && !keep_length)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        push_date(out);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        OutBody::Length(n) => push_length(out, n),
        OutBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        OutBody::None if req.is_head && !no_body && !parts.headers.contains_key(CONTENT_LENGTH) => {
            if let Some(n) = hint.exact().filter(|n| *n > 0) {
                push_length(out, n);
            }
        }
        OutBody::None | OutBody::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if req.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (framing, close)
}

fn push_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` value, formatted once a second per thread.
    static DATE_TEXT: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE_TEXT.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(d.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parts(status: u16, headers: &[(&'static str, &'static str)]) -> http::response::Parts {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, HeaderValue::from_static(v));
        }
        b.body(()).unwrap().into_parts().0
    }

    const GET: RequestMeta = RequestMeta {
        is_head: false,
        http10: false,
    };

    fn encode(
        p: &http::response::Parts,
        hint: SizeHint,
        req: RequestMeta,
        close: bool,
    ) -> (String, OutBody, bool) {
        let mut out = Vec::new();
        let (framing, close) = encode_head(p, &hint, req, close, &mut out);
        (String::from_utf8(out).unwrap(), framing, close)
    }

    #[test]
    fn lengths_are_declared_from_the_body_not_copied() {
        let p = parts(200, &[("content-length", "999"), ("x-a", "1")]);
        let (head, framing, close) = encode(&p, SizeHint::with_exact(5), GET, false);
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: "),
            "{head}"
        );
        assert!(head.ends_with("content-length: 5\r\n\r\n"), "{head}");
        assert!(!head.contains("999"));
        assert_eq!((framing, close), (OutBody::Length(5), false));

        let (head, framing, _) = encode(&p, SizeHint::default(), GET, false);
        assert!(head.contains("transfer-encoding: chunked\r\n"));
        assert_eq!(framing, OutBody::Chunked);

        let old = RequestMeta {
            is_head: false,
            http10: true,
        };
        let (head, framing, close) = encode(&p, SizeHint::default(), old, false);
        assert!(head.contains("connection: close\r\n"));
        assert!(!head.contains("transfer-encoding"));
        assert_eq!((framing, close), (OutBody::UntilClose, true));
        let (head, _, _) = encode(&p, SizeHint::with_exact(1), old, false);
        assert!(head.contains("connection: keep-alive\r\n"));
    }

    #[test]
    fn bodiless_responses() {
        let head_req = RequestMeta {
            is_head: true,
            http10: false,
        };
        let p = parts(200, &[("content-length", "42")]);
        let (head, framing, _) = encode(&p, SizeHint::with_exact(0), head_req, false);
        assert!(head.contains("content-length: 42\r\n"), "{head}");
        assert_eq!(framing, OutBody::None);
        let p = parts(
            204,
            &[("content-length", "0"), ("transfer-encoding", "chunked")],
        );
        let (head, framing, _) = encode(&p, SizeHint::default(), GET, true);
        assert!(!head.contains("content-length") && !head.contains("transfer-encoding"));
        assert!(head.contains("connection: close\r\n"));
        assert_eq!(framing, OutBody::None);
        let p = parts(304, &[("content-length", "7")]);
        let (head, _, _) = encode(&p, SizeHint::default(), GET, false);
        assert!(head.contains("content-length: 7\r\n"));
    }
}
