//! Header names read off the wire. Both heads (the client's request and
//! the upstream's response) turn every field name into a `HeaderName`;
//! the general conversion lower-cases the name through a table and then
//! matches it against the standard names, about a hundred instructions a
//! field. The names nearly every head carries are recognised here first,
//! by their length and then by fixed-length compares.

use http::header::{self, HeaderName, InvalidHeaderName};

/// The `HeaderName` for `name` as it came in a head: the same value
/// `HeaderName::from_bytes` gives, and the same refusal of invalid names.
pub fn from_wire(name: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    // Each known name is compared as written in its usual spelling, then in
    // lower case (both compares of fixed length), then in any case.
    let is = |canonical: &[u8], lower: &[u8]| {
        name == canonical || name == lower || name.eq_ignore_ascii_case(lower)
    };
    let known = match name.len() {
        4 if is(b"Host", b"host") => Some(header::HOST),
        4 if is(b"Date", b"date") => Some(header::DATE),
        4 if is(b"Vary", b"vary") => Some(header::VARY),
        4 if is(b"ETag", b"etag") => Some(header::ETAG),
        6 if is(b"Accept", b"accept") => Some(header::ACCEPT),
        6 if is(b"Cookie", b"cookie") => Some(header::COOKIE),
        10 if is(b"User-Agent", b"user-agent") => Some(header::USER_AGENT),
        10 if is(b"Set-Cookie", b"set-cookie") => Some(header::SET_COOKIE),
        12 if is(b"Content-Type", b"content-type") => Some(header::CONTENT_TYPE),
        13 if is(b"Authorization", b"authorization") => Some(header::AUTHORIZATION),
        13 if is(b"Cache-Control", b"cache-control") => Some(header::CACHE_CONTROL),
        13 if is(b"Last-Modified", b"last-modified") => Some(header::LAST_MODIFIED),
        14 if is(b"Content-Length", b"content-length") => Some(header::CONTENT_LENGTH),
        15 if is(b"Accept-Encoding", b"accept-encoding") => Some(header::ACCEPT_ENCODING),
        15 if is(b"Accept-Language", b"accept-language") => Some(header::ACCEPT_LANGUAGE),
        _ => None,
    };
    match known {
        Some(n) => Ok(n),
        None => HeaderName::from_bytes(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling of a recognised name, and names beside them, give
    /// what the general conversion gives.
    #[test]
    fn agrees_with_the_general_conversion() {
        let names: &[&[u8]] = &[
            b"host",
            b"Host",
            b"HOST",
            b"date",
            b"Date",
            b"vary",
            b"ETag",
            b"Accept",
            b"cookie",
            b"User-Agent",
            b"Set-Cookie",
            b"Content-Type",
            b"CONTENT-type",
            b"Authorization",
            b"Cache-Control",
            b"Last-Modified",
            b"Content-Length",
            b"Accept-Encoding",
            b"Accept-Language",
            // Same lengths, other names.
            b"hosu",
            b"x-id",
            b"content-typo",
            b"X-Request-Id",
            b"X-Custom-Header",
        ];
        for n in names {
            assert_eq!(
                from_wire(n).ok(),
                HeaderName::from_bytes(n).ok(),
                "{}",
                String::from_utf8_lossy(n)
            );
            assert!(from_wire(n).is_ok());
        }
    }

    #[test]
    fn invalid_names_are_refused_as_before() {
        for n in [&b""[..], b"ho st", b"host:", b"dat\xe9", b"content\0length"] {
            assert!(HeaderName::from_bytes(n).is_err());
            assert!(from_wire(n).is_err(), "{}", String::from_utf8_lossy(n));
        }
    }
}
