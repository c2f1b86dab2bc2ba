//! Upstreams and their targets.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderValue;
use portcullis_router::{HostPattern, normalize_host};

use super::{Cx, check_name, tls};
use crate::file::UpstreamFile;
use crate::runtime::{HealthCheck, PassiveHealth, Target, Upstream, UpstreamTls};

pub(super) fn compile_all(
    files: &[UpstreamFile],
    cx: &mut Cx<'_>,
) -> BTreeMap<Arc<str>, Arc<Upstream>> {
    let mut out = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let at = format!("/upstreams/{i}");
        check_name(cx, &format!("{at}/name"), "upstream", &f.name);
        if files.iter().take(i).any(|o| o.name == f.name) {
            cx.d.error(
                &format!("{at}/name"),
                format!("the upstream name \"{}\" is used twice", f.name),
            );
            continue;
        }
        if let Some(u) = compile_one(f, &at, cx) {
            out.insert(u.name.clone(), Arc::new(u));
        }
    }
    out
}

/// Parses "host:port", "1.2.3.4:port" or "[::1]:port".
pub(crate) fn parse_target(s: &str) -> Option<Target> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let norm = normalize_host(host).ok()?;
    if norm != host.to_ascii_lowercase() || (host.contains(':') && !host.starts_with('[')) {
        return None;
    }
    Some(Target {
        authority: s.into(),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    })
}

fn compile_one(f: &UpstreamFile, at: &str, cx: &mut Cx<'_>) -> Option<Upstream> {
    let mut ok = true;
    if f.targets.is_empty() {
        cx.d.error(
            &format!("{at}/targets"),
            "an upstream needs at least one target",
        );
        ok = false;
    }
    let mut targets = Vec::new();
    for (j, t) in f.targets.iter().enumerate() {
        match parse_target(t) {
            Some(target) if targets.contains(&target) => {
                cx.d.error(
                    &format!("{at}/targets/{j}"),
                    format!("the target \"{t}\" is listed twice"),
                );
                ok = false;
            }
            Some(target) => targets.push(target),
            None => {
                cx.d.error_hint(
                    &format!("{at}/targets/{j}"),
                    format!("\"{t}\" is not a target"),
                    "write \"host:port\", like \"10.0.0.5:8080\", \"api.internal:443\" or \"[::1]:8080\"",
                );
                ok = false;
            }
        }
    }
    let tls = match &f.tls {
        None => None,
        Some(t) => {
            let ca_certs = match &t.ca_file {
                None => Vec::new(),
                Some(p) => match tls::load_ca_bundle(&cx.resolve(p)) {
                    Ok(c) => c,
                    Err(e) => {
                        cx.d.error(&format!("{at}/tls/ca_file"), e);
                        ok = false;
                        Vec::new()
                    }
                },
            };
            if let Some(n) = &t.server_name
                && !matches!(HostPattern::parse(n), Ok(HostPattern::Exact(_)))
            {
                cx.d.error(
                    &format!("{at}/tls/server_name"),
                    format!("\"{n}\" is not a host name"),
                );
                ok = false;
            }
            Some(UpstreamTls {
                ca_certs,
                server_name: t.server_name.clone(),
            })
        }
    };
    let t = &f.timeouts;
    for (key, d) in [
        ("connect", t.connect),
        ("response_header", t.response_header),
        ("idle", t.idle),
    ] {
        if d.0.is_zero() {
            cx.d.error(
                &format!("{at}/timeouts/{key}"),
                format!("the {key} timeout must be longer than zero"),
            );
            ok = false;
        }
    }
    let health_check = f.health_check.as_ref().map(|h| {
        let hat = format!("{at}/health_check");
        if !h.path.starts_with('/') {
            cx.d.error(
                &format!("{hat}/path"),
                format!("the probe path \"{}\" must start with '/'", h.path),
            );
            ok = false;
        } else if http::uri::PathAndQuery::try_from(h.path.as_str()).is_err() {
            cx.d.error(
                &format!("{hat}/path"),
                format!("\"{}\" is not a valid request path", h.path),
            );
            ok = false;
        }
        if h.interval.0 < std::time::Duration::from_millis(100) {
            cx.d.error(
                &format!("{hat}/interval"),
                "the probe interval must be at least 100ms",
            );
            ok = false;
        }
        if h.timeout.0.is_zero() || h.timeout.0 > h.interval.0 {
            cx.d.error(
                &format!("{hat}/timeout"),
                "the probe timeout must be longer than zero and at most the interval",
            );
            ok = false;
        }
        for (key, v) in [
            ("healthy_threshold", h.healthy_threshold),
            ("unhealthy_threshold", h.unhealthy_threshold),
        ] {
            if v == 0 {
                cx.d.error(&format!("{hat}/{key}"), format!("{key} must be at least 1"));
                ok = false;
            }
        }
        for (j, s) in h.expected_status.iter().enumerate() {
            if !(100..=599).contains(s) {
                cx.d.error(
                    &format!("{hat}/expected_status/{j}"),
                    format!("{s} is not an HTTP status code"),
                );
                ok = false;
            }
        }
        HealthCheck {
            path: h.path.clone(),
            interval: h.interval.0,
            timeout: h.timeout.0,
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
            expected_status: h.expected_status.clone(),
        }
    });
    let p = &f.passive_health;
    let passive_health = if p.enabled {
        if p.consecutive_failures == 0 {
            cx.d.error(
                &format!("{at}/passive_health/consecutive_failures"),
                "consecutive_failures must be at least 1",
            );
            ok = false;
        }
        Some(PassiveHealth {
            consecutive_failures: p.consecutive_failures,
            ejection_time: p.ejection_time.0,
        })
    } else {
        None
    };
    let host_header = match &f.host_header {
        None => None,
        Some(h) => match normalize_host(h)
            .ok()
            .and_then(|_| HeaderValue::from_str(h).ok())
        {
            Some(v) => Some(v),
            None => {
                cx.d.error(
                    &format!("{at}/host_header"),
                    format!("\"{h}\" is not a host"),
                );
                ok = false;
                None
            }
        },
    };
    ok.then(|| Upstream {
        name: f.name.as_str().into(),
        targets,
        balance: f.balance,
        tls,
        connect_timeout: t.connect.0,
        response_header_timeout: t.response_header.0,
        idle_timeout: t.idle.0,
        health_check,
        passive_health,
        retries: f.retries,
        max_idle_connections: f.max_idle_connections,
        host_header,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_target;

    #[test]
    fn targets() {
        let t = parse_target("127.0.0.1:8080").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        let t = parse_target("[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert!(parse_target("api.internal:443").is_some());
        assert!(parse_target("api.internal").is_none());
        assert!(parse_target("api.internal:0").is_none());
        assert!(parse_target("::1:80").is_none());
        assert!(parse_target("a b:80").is_none());
        assert!(parse_target("http://x:80").is_none());
    }
}
