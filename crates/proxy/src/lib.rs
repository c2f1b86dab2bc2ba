//! The proxy: listeners (plain and TLS, HTTP/1.1 and HTTP/2), the request
//! pipeline, upstream pools with health checks, the admin listener, and the
//! lifecycle (hot reload, graceful shutdown).
//!
//! The path of one request, file by file: `server` accepts the connection
//! and hands it to `h1` (HTTP/1.1, the gateway's own codec) or hyper
//! (HTTP/2); `service::handle` runs the phases,
//! with `pipeline` dispatching to the route's filters and `upstream`
//! forwarding; `body` carries the bodies and completes the request's
//! accounting when the response ends.

mod admin;
mod body;
mod bufpool;
mod chunked;
mod files;
mod gateway;
mod h1;
mod headers;
mod names;
mod pipeline;
mod server;
mod service;
mod state;
mod stop;
mod timer;
mod tls;
mod upstream;
pub mod watch;

pub use gateway::{Gateway, StartError};

/// The status the gateway's HTTP/1 front end answers a raw request with
/// when it refuses the head before any filter sees it, under the default
/// listener limits; `None` when the head is accepted. The WAF conformance
/// runner uses it to replay tests exactly as the gateway would receive them.
pub fn refused_head_status(raw: &[u8]) -> Option<u16> {
    use crate::h1::head::{HeadError, HeadLimits, Parsed, parse};
    let mut buf = bytes::BytesMut::from(raw);
    let limits = HeadLimits {
        max_headers: 100,
        max_head_bytes: 32 * 1024,
        h2c: false,
    };
    match parse(&mut buf, limits) {
        Ok(Parsed::Head(_)) | Ok(Parsed::H2Preface) => None,
        // The head never ends: the client is answered once it gives up.
        Ok(Parsed::Partial) => Some(400),
        Err(HeadError::Malformed(_) | HeadError::ConflictingFraming | HeadError::BadHost) => {
            Some(400)
        }
        Err(HeadError::TooManyHeaders) | Err(HeadError::TooLarge) => Some(431),
        Err(HeadError::UnsupportedExpectation) => Some(417),
        Err(HeadError::UnsupportedVersion) => Some(505),
    }
}

/// Entry points for the fuzz targets in `fuzz/`: the parsers that see
/// network bytes first. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::BytesMut;

    /// Parses `data` as the start of an HTTP/1 request; never panics.
    /// Returns how many bytes a complete head took.
    pub fn request_head(data: &[u8]) -> Option<usize> {
        let mut buf = BytesMut::from(data);
        let limits = crate::h1::head::HeadLimits {
            max_headers: 100,
            max_head_bytes: 16 * 1024,
            h2c: true,
        };
        match crate::h1::head::parse(&mut buf, limits) {
            Ok(crate::h1::head::Parsed::Head(_)) => Some(data.len() - buf.len()),
            _ => None,
        }
    }

    /// A header field as parsed: name (lower case) and value.
    pub type Field = (String, Vec<u8>);

    /// Parses `data` as the start of an upstream's response head; never
    /// panics. Returns how many bytes a complete head took and the fields
    /// kept (names, values) in order.
    pub fn response_head(data: &[u8]) -> Option<(usize, Vec<Field>)> {
        let mut buf = BytesMut::from(data);
        match crate::upstream::parse_head(&mut buf, false) {
            Ok(Some(h)) => Some((
                data.len() - buf.len(),
                h.parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect(),
            )),
            _ => None,
        }
    }

    /// Decodes `data` as a chunked body, fed in pieces split at `cuts`.
    /// Returns the body and whether it ended, or `None` when malformed.
    pub fn chunked(data: &[u8], cuts: &[usize]) -> Option<(Vec<u8>, bool)> {
        use crate::chunked::{Chunk, Decoded, decode};
        let mut buf = BytesMut::new();
        let mut chunk = Chunk::Size;
        let mut out = Vec::new();
        let mut at = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.sort_unstable();
        points.push(data.len());
        for p in points {
            if p < at {
                continue;
            }
            buf.extend_from_slice(data.get(at..p)?);
            at = p;
            loop {
                match decode(&mut buf, &mut chunk).ok()? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::NeedMore => break,
                    Decoded::End => return Some((out, true)),
                }
            }
        }
        Some((out, false))
    }
}
