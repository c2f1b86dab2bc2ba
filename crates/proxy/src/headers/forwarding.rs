//! What the upstream is told about the original request: the client
//! address behind trusted proxies, `X-Forwarded-*`, `Forwarded`,
//! `X-Real-IP` and `X-Request-Id`.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use portcullis_config::runtime::Listener;

use super::{FORWARDED, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};

/// The client address: the peer, unless the peer is a trusted proxy, in
/// which case `X-Forwarded-For` is walked from the right, skipping trusted
/// hops, and the first untrusted address is the client. A malformed entry
/// stops the walk at the last address known to be real.
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
    /// The request id, sent as `X-Request-Id`.
    pub request_id: &'a [u8],
}

/// Whether a request field is one [`write_forwarding`] writes: the copy in
/// the request's map is never sent as it is, so neither a client nor a
/// filter can set it.
pub fn is_forwarding(name: &HeaderName) -> bool {
    let s = name.as_str();
    matches!(s.as_bytes().first(), Some(b'x' | b'f'))
        && matches!(
            s,
            "x-forwarded-for"
                | "x-forwarded-proto"
                | "x-forwarded-host"
                | "forwarded"
                | "x-real-ip"
                | "x-request-id"
        )
}

/// Writes `X-Forwarded-For/Proto/Host`, `Forwarded`, `X-Real-IP` and
/// `X-Request-Id` as field lines of the upstream request head. Incoming
/// values (from `h`) are kept and appended to only when the peer is a
/// trusted proxy; otherwise they are replaced, so a client cannot forge its
/// address.
pub fn write_forwarding(out: &mut Vec<u8>, h: &HeaderMap, f: &Forwarding<'_>) {
    // Runs for every request: the lines go straight into the head, with no
    // header map inserts and, for an untrusted peer, without reading what
    // came in. Every value written is a valid field value (incoming values
    // were checked by the parser, the rest is built here), so no line can
    // break the head.
    let peer = f.peer_value.as_bytes();
    field(out, "x-forwarded-for", |out| {
        if f.trusted_peer && push_joined(out, h, &X_FORWARDED_FOR) {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(peer);
    });
    if !(f.trusted_peer && copy_all(out, h, &X_FORWARDED_PROTO)) {
        field(out, "x-forwarded-proto", |out| {
            out.extend_from_slice(f.proto.as_bytes())
        });
    }
    if !(f.trusted_peer && copy_all(out, h, &X_FORWARDED_HOST))
        && let Some(host) = f.host
    {
        field(out, "x-forwarded-host", |out| {
            out.extend_from_slice(host.as_bytes())
        });
    }
    field(out, "forwarded", |out| {
        if f.trusted_peer && push_joined(out, h, &FORWARDED) {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"for=");
        match f.peer {
            IpAddr::V4(_) => out.extend_from_slice(peer),
            IpAddr::V6(_) => {
                out.extend_from_slice(b"\"[");
                out.extend_from_slice(peer);
                out.extend_from_slice(b"]\"");
            }
        }
        out.extend_from_slice(b";proto=");
        out.extend_from_slice(f.proto.as_bytes());
        if let Some(host) = f.host.and_then(|v| v.to_str().ok()) {
            out.extend_from_slice(b";host=");
            push_token_or_quoted(out, host);
        }
    });
    field(out, "x-real-ip", |out| {
        if f.client == f.peer {
            out.extend_from_slice(peer);
        } else {
            out.extend_from_slice(ip_string(f.client).as_bytes());
        }
    });
    field(out, "x-request-id", |out| {
        out.extend_from_slice(f.request_id)
    });
}

/// One field line: `name: value\r\n`.
fn field(out: &mut Vec<u8>, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    value(out);
    out.extend_from_slice(b"\r\n");
}

/// Appends the incoming values of `name` joined by `, ` (those that are
/// visible text); whether there were any.
fn push_joined(out: &mut Vec<u8>, h: &HeaderMap, name: &HeaderName) -> bool {
    let mut any = false;
    for v in h.get_all(name).iter().filter(|v| v.to_str().is_ok()) {
        if any {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(v.as_bytes());
        any = true;
    }
    any
}

/// Copies every incoming field of `name` as it came; whether there was one.
fn copy_all(out: &mut Vec<u8>, h: &HeaderMap, name: &HeaderName) -> bool {
    let mut any = false;
    for v in h.get_all(name) {
        field(out, name.as_str(), |out| {
            out.extend_from_slice(v.as_bytes())
        });
        any = true;
    }
    any
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
fn push_token_or_quoted(out: &mut Vec<u8>, v: &str) {
    if v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        out.extend_from_slice(v.as_bytes());
        return;
    }
    out.push(b'"');
    for b in v.bytes() {
        if b == b'\\' || b == b'"' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::tests::headers;
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

    /// The field lines `write_forwarding` writes, as (name, value) pairs.
    fn forwarded(h: &HeaderMap, f: &Forwarding<'_>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        write_forwarding(&mut out, h, f);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("\r\n"), "whole lines: {text:?}");
        text.split_terminator("\r\n")
            .map(|line| {
                let (n, v) = line.split_once(": ").unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect()
    }

    fn value<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn forwarding_headers_are_replaced_for_untrusted_peers_and_appended_for_trusted() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-real-ip", "1.2.3.4"),
            ("x-request-id", "forged"),
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
            request_id: b"rid-1",
        };
        let out = forwarded(&h, &f);
        assert_eq!(value(&out, "x-forwarded-for"), ["192.0.2.1"]);
        assert_eq!(value(&out, "x-forwarded-proto"), ["http"]);
        assert_eq!(value(&out, "x-forwarded-host"), ["api.example.com"]);
        assert_eq!(
            value(&out, "forwarded"),
            ["for=192.0.2.1;proto=http;host=api.example.com"]
        );
        assert_eq!(value(&out, "x-real-ip"), ["192.0.2.1"]);
        assert_eq!(value(&out, "x-request-id"), ["rid-1"]);
        assert_eq!(out.len(), 6, "one line each: {out:?}");
        // Every name written is one the encoder leaves out of the map.
        for (n, _) in &out {
            assert!(is_forwarding(
                &HeaderName::from_bytes(n.as_bytes()).unwrap()
            ));
        }
        assert!(!is_forwarding(&http::header::HOST));
        assert!(!is_forwarding(&HeaderName::from_static("x-forwarded")));

        // Without a Host, no X-Forwarded-Host: not even the client's.
        let f = Forwarding { host: None, ..f };
        let out = forwarded(&h, &f);
        assert!(value(&out, "x-forwarded-host").is_empty());
        assert_eq!(value(&out, "forwarded"), ["for=192.0.2.1;proto=http"]);

        // A trusted proxy's values are kept and appended to.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "10.0.0.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example.com"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        let peer_value = ip_value("::1".parse().unwrap());
        let f = Forwarding {
            peer: "::1".parse().unwrap(),
            peer_value: &peer_value,
            client: "1.2.3.4".parse().unwrap(),
            trusted_peer: true,
            proto: "http",
            host: None,
            request_id: b"rid-2",
        };
        let out = forwarded(&h, &f);
        assert_eq!(value(&out, "x-forwarded-for"), ["1.2.3.4, 10.0.0.9, ::1"]);
        assert_eq!(value(&out, "x-forwarded-proto"), ["https"]);
        assert_eq!(value(&out, "x-forwarded-host"), ["api.example.com"]);
        assert_eq!(
            value(&out, "forwarded"),
            ["for=1.2.3.4, for=\"[::1]\";proto=http"]
        );
        assert_eq!(value(&out, "x-real-ip"), ["1.2.3.4"]);

        // A host that is not a token is quoted in Forwarded.
        let host = HeaderValue::from_static("api.example.com:8443");
        let out = forwarded(
            &HeaderMap::new(),
            &Forwarding {
                host: Some(&host),
                proto: "https",
                ..f
            },
        );
        assert_eq!(
            value(&out, "forwarded"),
            ["for=\"[::1]\";proto=https;host=\"api.example.com:8443\""]
        );
        assert_eq!(value(&out, "x-forwarded-for"), ["::1"]);
        assert_eq!(value(&out, "x-forwarded-proto"), ["https"]);
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
