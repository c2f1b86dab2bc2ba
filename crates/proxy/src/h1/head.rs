//! Parsing an HTTP/1 request head (RFC 9112) and deciding how its body is
//! framed. Everything ambiguous is refused here, before any filter or
//! upstream sees the request: conflicting or repeated framing headers,
//! transfer codings other than `chunked`, a missing or repeated `Host`.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri, Version};

/// The HTTP/2 connection preface; on a plain listener that allows h2c it
/// means the client speaks HTTP/2 by prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The most header fields parsed; the listener's own limit is lower.
const HEADER_SLOTS: usize = 1001;

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no framing header, or `Content-Length: 0`).
    None,
    Length(u64),
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug)]
pub struct RequestHead {
    pub parts: http::request::Parts,
    pub body: BodyFraming,
    /// Whether the client allows the connection to be reused.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub expect_continue: bool,
}

/// What the buffer holds. The head is the common case, so it is not boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    Head(RequestHead),
    /// Not a whole head yet.
    Partial,
    /// The HTTP/2 preface (only looked for when h2c is allowed).
    H2Preface,
}

/// Why a head is refused. Each maps to one problem in `service`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Unparseable, or a rule of RFC 9112 broken; the text says which.
    Malformed(&'static str),
    /// Both `Content-Length` and `Transfer-Encoding` (request smuggling).
    ConflictingFraming,
    TooManyHeaders,
    TooLarge,
    /// An `Expect` other than `100-continue`.
    UnsupportedExpectation,
    UnsupportedVersion,
    /// A `Host` that is not a host name (or address) with an optional port.
    BadHost,
}

/// The limits a head is parsed under.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_headers: usize,
    /// Beyond this many bytes without a complete head, stop waiting.
    pub max_head_bytes: usize,
    pub h2c: bool,
}

/// A version httparse does not take: a well-formed `HTTP/x.y` from a
/// later major version is unsupported (505); anything else, including
/// `HTTP/0.x` (HTTP/0.9 request lines carry no version), is malformed.
fn version_error(buf: &[u8]) -> HeadError {
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    let line = buf.get(..line_end).unwrap_or(&[]);
    let token = line.rsplit(|&b| b == b' ').next().unwrap_or(&[]);
    match token {
        [
            b'H',
            b'T',
            b'T',
            b'P',
            b'/',
            major @ b'1'..=b'9',
            b'.',
            b'0'..=b'9',
        ] if *major >= b'2' => HeadError::UnsupportedVersion,
        _ => HeadError::Malformed("invalid HTTP version"),
    }
}

/// Parses the head at the start of `buf`. On success its bytes are taken
/// out of the buffer (header values share them without copying); what
/// follows (body bytes, a pipelined request) stays.
pub fn parse(buf: &mut BytesMut, limits: HeadLimits) -> Result<Parsed, HeadError> {
    if limits.h2c && buf.first() == Some(&b'P') {
        let n = buf.len().min(H2_PREFACE.len());
        if buf.get(..n) == H2_PREFACE.get(..n) {
            return Ok(if n == H2_PREFACE.len() {
                Parsed::H2Preface
            } else {
                Parsed::Partial
            });
        }
    }
    let mut slots: [MaybeUninit<httparse::Header<'_>>; HEADER_SLOTS] =
        [const { MaybeUninit::uninit() }; HEADER_SLOTS];
    let slots = slots
        .get_mut(..limits.max_headers.saturating_add(1).min(HEADER_SLOTS))
        .unwrap_or(&mut []);
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_head_bytes {
                Err(HeadError::TooLarge)
            } else {
                Ok(Parsed::Partial)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(e) => return Err(HeadError::Malformed(parse_error(e))),
    };
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;

    // Where each piece lies, so the head can be frozen and shared.
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let target = span(req.path.unwrap_or("").as_bytes());
    // On the stack for a usual head.
    let mut fields: smallvec::SmallVec<[(Span, Span); 24]> = smallvec::SmallVec::new();
    for h in req.headers.iter() {
        fields.push((span(h.name.as_bytes()), span(h.value)));
    }
    let head = buf.split_to(len).freeze();
    let slice = |(start, len): (usize, usize)| head.slice(start..start + len);

    let target = slice(target);
    // Clients never send a fragment; one here is an attempt to make the
    // gateway and the upstream read the target differently.
    if target.contains(&b'#') {
        return Err(HeadError::Malformed("a fragment in the request target"));
    }
    if method == Method::CONNECT && !is_authority_with_port(&target) {
        return Err(HeadError::Malformed("CONNECT needs host:port"));
    }
    let uri = Uri::from_maybe_shared(target)
        .map_err(|_| HeadError::Malformed("invalid request target"))?;
    // Room for the forwarding headers added before the request goes on.
    let mut headers = crate::bufpool::header_map(fields.len() + 12);
    let mut framing = Framing::default();
    for (name, value) in fields {
        let name = head
            .get(name.0..name.0 + name.1)
            .and_then(|n| crate::names::from_wire(n).ok())
            .ok_or(HeadError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(slice(value))
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        framing.observe(&name, &value)?;
        headers.append(name, value);
    }
    let body = framing.body(version)?;
    if version == Version::HTTP_11 && framing.hosts != 1 {
        return Err(HeadError::Malformed(if framing.hosts == 0 {
            "an HTTP/1.1 request needs a Host header"
        } else {
            "more than one Host header"
        }));
    }
    let keep_alive = match version {
        Version::HTTP_10 => framing.keep_alive_token,
        _ => !framing.close_token,
    };
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Parsed::Head(RequestHead {
        parts,
        body,
        keep_alive,
        expect_continue: framing.expect_continue,
    }))
}

/// Where a piece of the head lies in the buffer: offset and length.
type Span = (usize, usize);

/// A Host value: a DNS name, IPv4 address or bracketed IPv6 address, with
/// an optional port. Empty values and percent-escapes (which would decode
/// to something else, NUL included) are refused.
fn is_host(v: &[u8]) -> bool {
    let (host, port) = match v.first() {
        Some(b'[') => match memchr::memchr(b']', v) {
            Some(end) => (
                v.get(..=end).unwrap_or(&[]),
                v.get(end + 1..).unwrap_or(&[]),
            ),
            None => return false,
        },
        _ => match memchr::memrchr(b':', v) {
            Some(c) => (v.get(..c).unwrap_or(&[]), v.get(c..).unwrap_or(&[])),
            None => (v, &[][..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => {
            !digits.is_empty() && digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    let host_ok = match host {
        [] => false,
        [b'[', inner @ .., b']'] => inner
            .iter()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')),
        name => name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')),
    };
    host_ok && port_ok
}

/// `host:port`, the only target form CONNECT has.
fn is_authority_with_port(t: &[u8]) -> bool {
    memchr::memrchr(b':', t).is_some() && !t.starts_with(b"/") && is_host(t)
}

fn parse_error(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine | httparse::Error::Status => "invalid line ending",
        httparse::Error::Token => "invalid request line",
        _ => "malformed request head",
    }
}

/// What the head says about framing and the connection.
#[derive(Default)]
struct Framing {
    length: Option<u64>,
    chunked: bool,
    transfer_encoding: bool,
    hosts: u32,
    close_token: bool,
    keep_alive_token: bool,
    expect_continue: bool,
}

impl Framing {
    fn observe(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), HeadError> {
        match name.as_str() {
            "content-length" => {
                // Repeats (`4, 4` or two fields) are accepted only when equal.
                for part in value.as_bytes().split(|b| *b == b',') {
                    let n = parse_length(part.trim_ascii())
                        .ok_or(HeadError::Malformed("invalid Content-Length"))?;
                    if self.length.is_some_and(|l| l != n) {
                        return Err(HeadError::Malformed("conflicting Content-Length values"));
                    }
                    self.length = Some(n);
                }
            }
            "transfer-encoding" => {
                // Only `chunked`, once, is supported: the gateway forwards
                // bodies decoded and re-framed, so any other coding would
                // reach the upstream undeclared.
                for coding in value.as_bytes().split(|b| *b == b',') {
                    let coding = coding.trim_ascii();
                    if coding.is_empty() {
                        continue;
                    }
                    if !coding.eq_ignore_ascii_case(b"chunked") || self.chunked {
                        return Err(HeadError::Malformed("unsupported transfer coding"));
                    }
                    self.chunked = true;
                }
                self.transfer_encoding = true;
            }
            "host" => {
                if !is_host(value.as_bytes()) {
                    return Err(HeadError::BadHost);
                }
                self.hosts += 1
            }
            "connection" => {
                for token in value.as_bytes().split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close_token = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive_token = true;
                    }
                }
            }
            "expect" => {
                if value.as_bytes().eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                } else {
                    return Err(HeadError::UnsupportedExpectation);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn body(&self, version: Version) -> Result<BodyFraming, HeadError> {
        if self.transfer_encoding {
            if self.length.is_some() {
                return Err(HeadError::ConflictingFraming);
            }
            if version == Version::HTTP_10 {
                return Err(HeadError::Malformed(
                    "Transfer-Encoding is not allowed in HTTP/1.0",
                ));
            }
            if !self.chunked {
                return Err(HeadError::Malformed("unsupported transfer coding"));
            }
            return Ok(BodyFraming::Chunked);
        }
        Ok(match self.length {
            None | Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        })
    }
}

/// A decimal length: digits only (no sign, no spaces inside), at most 19.
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_headers: 10,
        max_head_bytes: 200,
        h2c: true,
    };

    fn parse_str(raw: &str) -> Result<Parsed, HeadError> {
        parse(&mut BytesMut::from(raw.as_bytes()), LIMITS)
    }

    fn head(raw: &str) -> RequestHead {
        match parse_str(raw) {
            Ok(Parsed::Head(h)) => h,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn a_simple_head_and_what_follows_it() {
        let mut buf = BytesMut::from(
            &b"GET /users/1?x=2 HTTP/1.1\r\nHost: api\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next"[..],
        );
        let Ok(Parsed::Head(h)) = parse(&mut buf, LIMITS) else {
            panic!("complete")
        };
        assert_eq!(h.parts.method, Method::GET);
        assert_eq!(h.parts.uri.path(), "/users/1");
        assert_eq!(h.parts.uri.query(), Some("x=2"));
        assert_eq!(h.parts.version, Version::HTTP_11);
        assert_eq!(h.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!((h.body, h.keep_alive), (BodyFraming::None, true));
        assert_eq!(&buf[..], b"GET /next");
    }

    #[test]
    fn body_framing() {
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Length(5));
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Length(5));
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.body, BodyFraming::None);
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Chunked);
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
        assert!(h.expect_continue);
    }

    #[test]
    fn connection_reuse() {
        assert!(!head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        let conflicting = [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        ];
        for raw in conflicting {
            assert_eq!(parse_str(raw).unwrap_err(), HeadError::ConflictingFraming);
        }
        let malformed = [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4 4\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n",
            "G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for raw in malformed {
            assert!(
                matches!(parse_str(raw), Err(HeadError::Malformed(_))),
                "{raw:?}: {:?}",
                parse_str(raw)
            );
        }
        assert_eq!(
            parse_str("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n").unwrap_err(),
            HeadError::UnsupportedExpectation
        );
        assert_eq!(
            parse_str("GET / HTTP/2.0\r\nHost: a\r\n\r\n").unwrap_err(),
            HeadError::UnsupportedVersion
        );
        for (raw, why) in [
            (
                "GET /#x HTTP/1.1\r\nHost: a\r\n\r\n",
                "a fragment in the request target",
            ),
            (
                "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n",
                "CONNECT needs host:port",
            ),
        ] {
            assert_eq!(
                parse_str(raw).unwrap_err(),
                HeadError::Malformed(why),
                "{raw:?}"
            );
        }
        for bad in ["a%00", "", "a:80x", "bad host"] {
            assert_eq!(
                parse_str(&format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n")).unwrap_err(),
                HeadError::BadHost,
                "{bad:?}"
            );
        }
        for ok in ["a", "a.example:8080", "127.0.0.1:80", "[::1]:443", "[::1]"] {
            assert!(super::is_host(ok.as_bytes()), "{ok}");
        }
        assert!(matches!(
            parse_str("CONNECT 1.2.3.4:80 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(Parsed::Head(_))
        ));
        for bad in ["HTTP/0.9", "HTTP/0.8", "JUNK/1.0", "1.1", "TEST"] {
            assert_eq!(
                parse_str(&format!("GET / {bad}\r\nHost: a\r\n\r\n")).unwrap_err(),
                HeadError::Malformed("invalid HTTP version"),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_and_partial_heads() {
        assert!(matches!(
            parse_str("GET / HTTP/1.1\r\nHo"),
            Ok(Parsed::Partial)
        ));
        let many: String = (0..11).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            parse_str(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooManyHeaders
        );
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(300));
        assert_eq!(parse_str(&long).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn the_h2_preface_is_recognised_only_when_allowed() {
        assert!(matches!(
            parse_str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Ok(Parsed::H2Preface)
        ));
        assert!(matches!(parse_str("PRI * HTTP/2"), Ok(Parsed::Partial)));
        let off = HeadLimits {
            h2c: false,
            ..LIMITS
        };
        let mut buf = BytesMut::from(&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..]);
        assert!(parse(&mut buf, off).is_err());
    }
}
