//! Header hygiene at the trust boundary: hop-by-hop headers, server
//! banners, identity headers only the gateway may set, and (in
//! [`forwarding`]) what the upstream is told about the client.

use http::header::{CONNECTION, HeaderMap, HeaderName};
use portcullis_config::runtime::IdentityHeaders;

mod forwarding;

pub use forwarding::{Forwarding, client_address, ip_value, is_forwarding, write_forwarding};

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the non-standard ones that
/// behave like them. They describe one connection and never cross the proxy.
static HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The bit of a hop-by-hop name in [`HOP_BY_HOP`] order, or 0.
fn hop_bit(name: &HeaderName) -> u16 {
    let s = name.as_str();
    // Every hop-by-hop name is 2 to 19 bytes and starts with c, k, p, t or
    // u: most names are out after one comparison.
    if !(2..=19).contains(&s.len())
        || !matches!(s.as_bytes().first(), Some(b'c' | b'k' | b'p' | b't' | b'u'))
    {
        return 0;
    }
    match s {
        "connection" => 1,
        "keep-alive" => 1 << 1,
        "proxy-connection" => 1 << 2,
        "proxy-authenticate" => 1 << 3,
        "proxy-authorization" => 1 << 4,
        "te" => 1 << 5,
        "trailer" => 1 << 6,
        "transfer-encoding" => 1 << 7,
        "upgrade" => 1 << 8,
        _ => 0,
    }
}

/// Removes hop-by-hop headers, including any named in `Connection`.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the (few) names finds which are present; most messages
    // carry none, or only `Connection: keep-alive`.
    let found = h.keys().fold(0u16, |acc, k| acc | hop_bit(k));
    if found == 0 {
        return;
    }
    if found & 1 != 0 {
        let mut named: Vec<HeaderName> = Vec::new();
        for token in h
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
        {
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
            {
                continue;
            }
            if let Ok(n) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(n);
            }
        }
        for n in named {
            // Never let `Connection: host` or similar remove end-to-end essentials.
            if n != http::header::HOST && n != http::header::CONTENT_LENGTH {
                h.remove(n);
            }
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if found & (1 << i) != 0 {
            h.remove(n);
        }
    }
}

/// Whether a response field never goes back to the client: a hop-by-hop
/// field or a server banner (name in any case, as received).
pub fn never_forwarded_back(name: &str) -> bool {
    const NAMES: [&str; 11] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "server",
        "x-powered-by",
    ];
    // All start with c, k, p, s, t, u or x: most names are out at once.
    matches!(
        name.as_bytes().first().map(u8::to_ascii_lowercase),
        Some(b'c' | b'k' | b'p' | b's' | b't' | b'u' | b'x')
    ) && NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Removes identity headers a client sent (`X-Consumer-*` and the
/// configured ones): only the gateway may say who is calling.
pub fn strip_identity(h: &mut HeaderMap, identity: &IdentityHeaders) {
    // Most requests carry none; look before collecting anything.
    if !h.keys().any(|n| identity.is_identity_header(n)) {
        return;
    }
    let names: Vec<HeaderName> = h
        .keys()
        .filter(|n| identity.is_identity_header(n))
        .cloned()
        .collect();
    for n in names {
        h.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_are_stripped_including_connection_named_ones() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));

        // Several Connection fields, mixed case; Host and Content-Length survive.
        let mut h = headers(&[
            ("connection", "Close"),
            ("connection", "X-Other, host, content-length"),
            ("x-other", "1"),
            ("host", "a"),
            ("content-length", "0"),
            ("transfer-encoding", "chunked"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "host"]);
    }
}
