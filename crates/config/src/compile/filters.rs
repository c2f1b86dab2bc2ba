//! The built-in filters' policies: limits, CORS, security headers.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

use super::Cx;
use super::route::parse_method;
use crate::file::{CorsFile, FrameOptions, RouteLimitsFile, SecurityHeadersFile};
use crate::runtime::{CorsPolicy, LimitsPolicy, OriginPattern, SecurityHeadersPolicy};

const REFERRER_POLICIES: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

/// Headers that frame the message or belong to one hop; a filter must not
/// set them.
pub(super) const FRAMING_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(super) fn limits(f: &RouteLimitsFile) -> LimitsPolicy {
    LimitsPolicy {
        max_body: f.max_body.0,
    }
}

fn header_names(list: &[String], at: &str, cx: &mut Cx<'_>) -> Option<Vec<HeaderName>> {
    let mut ok = true;
    let names = list
        .iter()
        .enumerate()
        .filter_map(|(i, h)| match HeaderName::from_bytes(h.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                cx.d.error(
                    &format!("{at}/{i}"),
                    format!("\"{h}\" is not a header name"),
                );
                ok = false;
                None
            }
        })
        .collect();
    ok.then_some(names)
}

fn parse_origin(s: &str) -> Result<OriginPattern, &'static str> {
    let lower = s.to_ascii_lowercase();
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or("an origin is scheme://host[:port]")?;
    if scheme != "http" && scheme != "https" {
        return Err("the scheme must be http or https");
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err("an origin has no path, query or user part");
    }
    let (host, port) = if rest.starts_with('[') {
        match rest.split_once("]:") {
            Some((h, p)) => (rest.get(..h.len() + 1).unwrap_or(rest), Some(p)),
            None => (rest, None),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if let Some(p) = port
        && p.parse::<u16>().is_err()
    {
        return Err("the port is not a number");
    }
    let port_part = port.map(|p| format!(":{p}")).unwrap_or_default();
    if let Some(suffix) = host.strip_prefix("*.") {
        if portcullis_router::normalize_host(suffix).is_err() || suffix.is_empty() {
            return Err("the host after \"*.\" is not a host name");
        }
        return Ok(OriginPattern::Subdomains {
            prefix: format!("{scheme}://"),
            suffix: format!(".{suffix}{port_part}"),
        });
    }
    if host.contains('*') {
        return Err("a wildcard may only stand for the first label, as in https://*.example.com");
    }
    if portcullis_router::normalize_host(host).is_err() {
        return Err("the host is not a host name");
    }
    Ok(OriginPattern::Exact(lower))
}

pub(super) fn cors(f: &CorsFile, at: &str, cx: &mut Cx<'_>) -> Option<CorsPolicy> {
    let mut ok = true;
    let mut any_origin = false;
    let mut origins = Vec::new();
    if f.allow_origins.is_empty() {
        cx.d.error_hint(
            &format!("{at}/allow_origins"),
            "allow_origins is empty",
            "list the origins allowed to call this route",
        );
        ok = false;
    }
    for (i, o) in f.allow_origins.iter().enumerate() {
        let oat = format!("{at}/allow_origins/{i}");
        if o == "*" {
            if f.allow_credentials {
                cx.d.error_hint(
                    &oat,
                    "\"*\" cannot be combined with allow_credentials: true",
                    "list the exact origins that may send credentials",
                );
                ok = false;
            }
            if f.allow_origins.len() > 1 {
                cx.d.error(
                    &oat,
                    "\"*\" allows every origin; the other entries are pointless",
                );
                ok = false;
            }
            any_origin = true;
        } else if o == "null" {
            cx.d.error_hint(
                &oat,
                "the \"null\" origin cannot be allowed",
                "browsers send \"null\" from sandboxed frames and local files; allowing it allows all of them",
            );
            ok = false;
        } else {
            match parse_origin(o) {
                Ok(p) => origins.push(p),
                Err(e) => {
                    cx.d.error_hint(
                        &oat,
                        format!("\"{o}\" is not an origin: {e}"),
                        "write it like \"https://app.example.com\"",
                    );
                    ok = false;
                }
            }
        }
    }
    let mut allow_methods = Vec::new();
    for (i, m) in f.allow_methods.iter().enumerate() {
        match parse_method(m) {
            Some(method) => allow_methods.push(method),
            None => {
                cx.d.error(
                    &format!("{at}/allow_methods/{i}"),
                    format!("\"{m}\" is not a method"),
                );
                ok = false;
            }
        }
    }
    if allow_methods.is_empty() {
        allow_methods = vec![Method::GET, Method::HEAD, Method::POST];
    }
    if f.allow_headers.iter().any(|h| h == "*") {
        let i = f.allow_headers.iter().position(|h| h == "*").unwrap_or(0);
        cx.d.error_hint(
            &format!("{at}/allow_headers/{i}"),
            "\"*\" is not allowed here",
            "list the request headers the route accepts",
        );
        ok = false;
    }
    let allow_headers = header_names(&f.allow_headers, &format!("{at}/allow_headers"), cx);
    let expose_headers = header_names(&f.expose_headers, &format!("{at}/expose_headers"), cx);
    let max_age = f.max_age.map_or(Duration::from_secs(600), |d| d.0);
    if max_age > Duration::from_secs(86_400) {
        cx.d.error(
            &format!("{at}/max_age"),
            "max_age must be at most 24h (browsers cap it lower anyway)",
        );
        ok = false;
    }
    let (Some(allow_headers), Some(expose_headers)) = (allow_headers, expose_headers) else {
        return None;
    };
    ok.then_some(CorsPolicy {
        any_origin,
        origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials: f.allow_credentials,
        max_age,
    })
}

pub(super) fn security_headers(
    f: &SecurityHeadersFile,
    at: &str,
    cx: &mut Cx<'_>,
) -> Option<SecurityHeadersPolicy> {
    let mut ok = true;
    let mut set: Vec<(HeaderName, HeaderValue)> = Vec::new();
    if f.content_type_options {
        set.push((
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ));
    }
    match f.frame_options {
        FrameOptions::Deny => set.push((
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        )),
        FrameOptions::SameOrigin => {
            set.push((
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("SAMEORIGIN"),
            ));
        }
        FrameOptions::Off => {}
    }
    if f.referrer_policy != "off" {
        if REFERRER_POLICIES.contains(&f.referrer_policy.as_str()) {
            if let Ok(v) = HeaderValue::from_str(&f.referrer_policy) {
                set.push((HeaderName::from_static("referrer-policy"), v));
            }
        } else {
            cx.d.error_hint(
                &format!("{at}/referrer_policy"),
                format!("\"{}\" is not a referrer policy", f.referrer_policy),
                format!(
                    "use one of {}, or \"off\"",
                    crate::diag::quoted_list(REFERRER_POLICIES.iter().copied())
                ),
            );
            ok = false;
        }
    }
    if let Some(csp) = &f.content_security_policy {
        match HeaderValue::from_str(csp) {
            Ok(v) => set.push((HeaderName::from_static("content-security-policy"), v)),
            Err(_) => {
                cx.d.error(
                    &format!("{at}/content_security_policy"),
                    "the policy has characters a header cannot carry",
                );
                ok = false;
            }
        }
    }
    for (name, value) in &f.set {
        let vat = format!("{at}/set/{}", crate::yaml::pointer_token(name));
        let parsed = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        );
        match parsed {
            (Ok(n), _) if FRAMING_HEADERS.contains(&n.as_str()) => {
                cx.d.error(
                    &vat,
                    format!("\"{name}\" frames the message and cannot be set"),
                );
                ok = false;
            }
            (Ok(n), Ok(v)) => {
                set.retain(|(existing, _)| existing != n);
                set.push((n, v));
            }
            (Err(_), _) => {
                cx.d.key_error(&vat, format!("\"{name}\" is not a header name"), None);
                ok = false;
            }
            (_, Err(_)) => {
                cx.d.error(&vat, "the value has characters a header cannot carry");
                ok = false;
            }
        }
    }
    let hsts = match &f.hsts {
        None => None,
        Some(h) => {
            let secs = h.max_age.0.as_secs();
            if h.preload && (!h.include_subdomains || secs < 31_536_000) {
                cx.d.error_hint(
                    &format!("{at}/hsts/preload"),
                    "preload needs include_subdomains and a max_age of at least 365d",
                    "browsers' preload lists refuse anything less",
                );
                ok = false;
            }
            let mut v = format!("max-age={secs}");
            if h.include_subdomains {
                v.push_str("; includeSubDomains");
            }
            if h.preload {
                v.push_str("; preload");
            }
            HeaderValue::from_str(&v).ok()
        }
    };
    let remove = header_names(&f.remove, &format!("{at}/remove"), cx)?;
    ok.then_some(SecurityHeadersPolicy { set, hsts, remove })
}

#[cfg(test)]
mod tests {
    use super::parse_origin;
    use crate::runtime::OriginPattern;

    #[test]
    fn origins() {
        assert_eq!(
            parse_origin("https://App.Example.com").unwrap(),
            OriginPattern::Exact("https://app.example.com".into())
        );
        assert!(parse_origin("https://app.example.com:8443").is_ok());
        assert!(parse_origin("ftp://x").is_err());
        assert!(parse_origin("https://x/path").is_err());
        assert!(parse_origin("https://a*.example.com").is_err());
        let w = parse_origin("https://*.example.com").unwrap();
        assert!(w.matches("https://app.example.com"));
        assert!(w.matches("https://a.b.example.com"));
        assert!(!w.matches("https://example.com"));
        assert!(!w.matches("http://app.example.com"));
        assert!(!w.matches("https://evil.com/.example.com"));
        assert!(!w.matches("https://app.example.com.evil.com"));
    }
}
