//! Header hygiene at the trust boundary: hop-by-hop headers, the client
//! address behind trusted proxies, `X-Forwarded-*`/`Forwarded`, and what the
//! upstream must never see from the client.

use std::net::IpAddr;

use http::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue};
use portcullis_config::runtime::{IdentityHeaders, Listener};

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
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
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

/// The client address: the peer, unless the peer is a trusted proxy, in
/// which case `X-Forwarded-For` is walked from the right, skipping trusted
/// hops, and the first untrusted address is the client. A malformed entry
/// stops the walk at the last address known to be real.
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

pub fn client_address(listener: &Listener, peer: IpAddr, h: &HeaderMap) -> IpAddr {
    if !listener.is_trusted_proxy(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = h
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !listener.is_trusted_proxy(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// What the upstream is told about the original request.
#[derive(Debug)]
pub struct Forwarding<'a> {
    pub peer: IpAddr,
    /// The peer's address as a header value, made once per connection.
    pub peer_value: &'a HeaderValue,
    pub client: IpAddr,
    pub trusted_peer: bool,
    pub proto: &'static str,
    /// The `Host` the client sent, as received.
    pub host: Option<&'a HeaderValue>,
}

/// Sets `X-Forwarded-For/Proto/Host`, `Forwarded` and `X-Real-IP` on a
/// request going upstream. Incoming values are kept (and appended to) only
/// when the peer is a trusted proxy; otherwise they are replaced, so a
/// client cannot forge its address.
pub fn set_forwarding(h: &mut HeaderMap, f: &Forwarding<'_>) {
    // Runs for every request: values are shared or built by hand, without
    // `format!` and, for an untrusted peer, without reading what came in.
    let peer = f.peer_value.to_str().unwrap_or("");
    match f
        .trusted_peer
        .then(|| joined(h, &X_FORWARDED_FOR))
        .flatten()
    {
        Some(mut prev) => {
            prev.push_str(", ");
            prev.push_str(peer);
            insert(h, &X_FORWARDED_FOR, &prev);
        }
        None => {
            h.insert(X_FORWARDED_FOR.clone(), f.peer_value.clone());
        }
    }
    if !(f.trusted_peer && h.contains_key(&X_FORWARDED_PROTO)) {
        h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(f.proto));
    }
    if !(f.trusted_peer && h.contains_key(&X_FORWARDED_HOST)) {
        match f.host {
            Some(host) => {
                h.insert(X_FORWARDED_HOST.clone(), host.clone());
            }
            None => {
                h.remove(&X_FORWARDED_HOST);
            }
        }
    }
    let host = f.host.and_then(|v| v.to_str().ok());
    let mut element = String::with_capacity(32 + host.map_or(0, str::len));
    element.push_str("for=");
    match f.peer {
        IpAddr::V4(_) => element.push_str(peer),
        IpAddr::V6(_) => {
            element.push_str("\"[");
            element.push_str(peer);
            element.push_str("]\"");
        }
    }
    element.push_str(";proto=");
    element.push_str(f.proto);
    if let Some(host) = host {
        element.push_str(";host=");
        push_token_or_quoted(&mut element, host);
    }
    match f.trusted_peer.then(|| joined(h, &FORWARDED)).flatten() {
        Some(mut prev) => {
            prev.push_str(", ");
            prev.push_str(&element);
            insert(h, &FORWARDED, &prev);
        }
        None => match HeaderValue::from_maybe_shared(bytes::Bytes::from(element)) {
            Ok(v) => {
                h.insert(FORWARDED.clone(), v);
            }
            Err(_) => {
                h.remove(&FORWARDED);
            }
        },
    }
    if f.client == f.peer {
        h.insert(X_REAL_IP.clone(), f.peer_value.clone());
    } else {
        insert(h, &X_REAL_IP, &ip_string(f.client));
    }
}

/// An address as a header value (made once per connection).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(ip_string(ip)))
        .unwrap_or(HeaderValue::from_static(""))
}

/// An address as text; IPv4 without the formatting machinery (it runs for
/// every request).
fn ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if *o >= 100 {
                    s.push(char::from(b'0' + o / 100));
                }
                if *o >= 10 {
                    s.push(char::from(b'0' + (o / 10) % 10));
                }
                s.push(char::from(b'0' + o % 10));
            }
            s
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// Appends `v` as a `Forwarded` value: bare when it is a token, quoted
/// (with `\\` and `"` escaped) otherwise.
fn push_token_or_quoted(out: &mut String, v: &str) {
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn joined(h: &HeaderMap, name: &HeaderName) -> Option<String> {
    let parts: Vec<&str> = h
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn insert(h: &mut HeaderMap, name: &HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(v) => {
            h.insert(name.clone(), v);
        }
        Err(_) => {
            h.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_config::runtime::ListenerLimits;
    use portcullis_router::RouteTable;
    use std::time::Duration;

    fn listener(trusted: &[&str]) -> Listener {
        Listener {
            name: "l".into(),
            address: "127.0.0.1:0".parse().unwrap(),
            tls: None,
            h2c: false,
            redirect_https: None,
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            limits: ListenerLimits {
                max_connections: 1,
                max_header_bytes: 1024,
                max_headers: 10,
                header_timeout: Duration::from_secs(1),
                body_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(1),
                max_concurrent_streams: 1,
            },
            routes: RouteTable::build(vec![]).unwrap(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
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

    #[test]
    fn client_address_trusts_only_configured_proxies() {
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(client_address(&listener(&[]), peer, &h), peer);
        let l = listener(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(&l, peer, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let bad = headers(&[("x-forwarded-for", "203.0.113.9, garbage")]);
        assert_eq!(client_address(&l, peer, &bad), peer);
    }

    #[test]
    fn forwarding_headers_are_replaced_for_untrusted_peers_and_appended_for_trusted() {
        let mut h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let peer_value = ip_value("192.0.2.1".parse().unwrap());
        let host = HeaderValue::from_static("api.example.com");
        let f = Forwarding {
            peer: "192.0.2.1".parse().unwrap(),
            peer_value: &peer_value,
            client: "192.0.2.1".parse().unwrap(),
            trusted_peer: false,
            proto: "http",
            host: Some(&host),
        };
        set_forwarding(&mut h, &f);
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.1;proto=http;host=api.example.com"
        );
        assert_eq!(h["x-real-ip"], "192.0.2.1");

        let mut h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")]);
        let peer_value = ip_value("::1".parse().unwrap());
        let f = Forwarding {
            peer: "::1".parse().unwrap(),
            peer_value: &peer_value,
            client: "1.2.3.4".parse().unwrap(),
            trusted_peer: true,
            proto: "https",
            host: None,
        };
        set_forwarding(&mut h, &f);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, ::1");
        let mut quoted = HeaderMap::new();
        let host = HeaderValue::from_static("api.example.com:8443");
        set_forwarding(
            &mut quoted,
            &Forwarding {
                host: Some(&host),
                ..f
            },
        );
        assert_eq!(
            quoted["forwarded"],
            "for=\"[::1]\";proto=https;host=\"api.example.com:8443\""
        );
        assert_eq!(h["forwarded"], "for=1.2.3.4, for=\"[::1]\";proto=https");
        assert_eq!(h["x-real-ip"], "1.2.3.4");
    }
}

#[cfg(test)]
mod ip_tests {
    use super::ip_string;

    #[test]
    fn ipv4_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "192.168.100.9",
        ] {
            let parsed: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_string(parsed), ip);
        }
        assert_eq!(ip_string("::1".parse().unwrap()), "::1");
    }
}
