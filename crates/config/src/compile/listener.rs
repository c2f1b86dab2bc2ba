//! Listeners, their TLS settings, and their route tables.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use portcullis_router::{HostPattern, RouteTable};

use super::route::CompiledRoute;
use super::{Cx, check_name, tls};
use crate::diag::quoted_list;
use crate::file::{ListenerFile, ListenerLimitsFile, TlsFile};
use crate::runtime::{Certificate, Listener, ListenerLimits, Tls};

pub(super) fn compile_all(
    files: &[ListenerFile],
    routes: &[CompiledRoute],
    cx: &mut Cx<'_>,
) -> Vec<Arc<Listener>> {
    if files.is_empty() {
        cx.d.error_hint(
            "/listeners",
            "no listener is configured",
            "add one, e.g. name: main, address: \"0.0.0.0:8080\"",
        );
    }
    let mut out = Vec::new();
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let at = format!("/listeners/{i}");
        check_name(cx, &format!("{at}/name"), "listener", &f.name);
        if files.iter().take(i).any(|o| o.name == f.name) {
            cx.d.error(
                &format!("{at}/name"),
                format!("the listener name \"{}\" is used twice", f.name),
            );
        }
        let address = match f.address.parse::<SocketAddr>() {
            Ok(a) => {
                if a.port() != 0 && addresses.contains(&a) {
                    cx.d.error(
                        &format!("{at}/address"),
                        format!("the address {a} is used by two listeners"),
                    );
                }
                addresses.push(a);
                Some(a)
            }
            Err(_) => {
                cx.d.error_hint(
                    &format!("{at}/address"),
                    format!("\"{}\" is not a socket address", f.address),
                    "write an IP address and port, like \"0.0.0.0:8080\" or \"[::]:8443\"",
                );
                None
            }
        };
        let tls = f
            .tls
            .as_ref()
            .and_then(|t| compile_tls(t, &format!("{at}/tls"), cx));
        if f.redirect_https.is_some() && f.tls.is_some() {
            cx.d.error_hint(
                &format!("{at}/redirect_https"),
                "a TLS listener cannot redirect to HTTPS",
                "put redirect_https on a plain listener",
            );
        }
        if f.h2c && f.tls.is_some() {
            cx.d.error_hint(
                &format!("{at}/h2c"),
                "h2c is for plain listeners",
                "TLS listeners offer HTTP/2 through ALPN (tls.http2)",
            );
        }
        let trusted_proxies = f
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(j, p)| {
                parse_net(p).or_else(|| {
                    cx.d.error_hint(
                        &format!("{at}/trusted_proxies/{j}"),
                        format!("\"{p}\" is not an IP address or network"),
                        "write it like \"10.0.0.0/8\" or \"192.168.1.10\"",
                    );
                    None
                })
            })
            .collect();
        let limits = compile_limits(&f.limits, &format!("{at}/limits"), cx);
        let table = route_table(&f.name, routes, cx);
        let asks_certificates = tls.as_ref().is_some_and(|t| t.client_auth.is_some());
        check_certificate_routes(&f.name, asks_certificates, routes, cx);
        if let (Some(address), Some(routes)) = (address, table) {
            out.push(Arc::new(Listener {
                name: f.name.as_str().into(),
                address,
                tls,
                h2c: f.h2c,
                redirect_https: f.redirect_https.as_ref().map(|r| r.port),
                trusted_proxies,
                limits,
                routes,
            }));
        }
    }
    out
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn compile_limits(f: &ListenerLimitsFile, at: &str, cx: &mut Cx<'_>) -> ListenerLimits {
    if f.max_connections == 0 {
        cx.d.error(
            &format!("{at}/max_connections"),
            "max_connections must be at least 1",
        );
    }
    if f.max_header_bytes.0 < 1024 || f.max_header_bytes.0 > 1024 * 1024 {
        cx.d.error(
            &format!("{at}/max_header_bytes"),
            format!(
                "max_header_bytes must be between 1KiB and 1MiB, not {}",
                f.max_header_bytes
            ),
        );
    }
    if f.max_headers == 0 || f.max_headers > 1000 {
        cx.d.error(
            &format!("{at}/max_headers"),
            "max_headers must be between 1 and 1000",
        );
    }
    for (key, d) in [
        ("header_timeout", f.header_timeout),
        ("body_timeout", f.body_timeout),
        ("idle_timeout", f.idle_timeout),
    ] {
        if d.0.is_zero() {
            cx.d.error(
                &format!("{at}/{key}"),
                format!("{key} must be longer than zero"),
            );
        }
    }
    if f.max_concurrent_streams == 0 {
        cx.d.error(
            &format!("{at}/max_concurrent_streams"),
            "max_concurrent_streams must be at least 1",
        );
    }
    ListenerLimits {
        max_connections: f.max_connections,
        max_header_bytes: usize::try_from(f.max_header_bytes.0).unwrap_or(usize::MAX),
        max_headers: f.max_headers,
        header_timeout: f.header_timeout.0,
        body_timeout: f.body_timeout.0,
        idle_timeout: f.idle_timeout.0,
        max_concurrent_streams: f.max_concurrent_streams,
    }
}

pub(super) fn compile_tls(f: &TlsFile, at: &str, cx: &mut Cx<'_>) -> Option<Tls> {
    if f.certificates.is_empty() {
        cx.d.error(
            &format!("{at}/certificates"),
            "a TLS listener needs at least one certificate",
        );
        return None;
    }
    let mut certificates = Vec::new();
    for (i, c) in f.certificates.iter().enumerate() {
        let cat = format!("{at}/certificates/{i}");
        let cert_path = cx.resolve(&c.cert);
        let key_path = cx.resolve(&c.key);
        let (key, found_names) = match tls::load_certificate(&cert_path, &key_path) {
            Ok(k) => k,
            Err(e) => {
                cx.d.error(&format!("{cat}/cert"), e);
                continue;
            }
        };
        let names = match &c.server_names {
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, n)| {
                    let lower = n.to_ascii_lowercase();
                    if HostPattern::parse(&lower).is_ok() {
                        Some(lower)
                    } else {
                        cx.d.error(
                            &format!("{cat}/server_names/{j}"),
                            format!("\"{n}\" is not a host name"),
                        );
                        None
                    }
                })
                .collect(),
            None => found_names,
        };
        if names.is_empty() && i > 0 {
            cx.d.error_hint(
                &format!("{cat}/cert"),
                "this certificate names no DNS host, so it could never be chosen",
                "set server_names, or make it the first (default) certificate",
            );
        }
        certificates.push(Certificate {
            cert_path,
            key_path,
            names,
            names_from_cert: c.server_names.is_none(),
            key,
        });
    }
    let client_auth = match &f.client_auth {
        None => None,
        Some(ca) => {
            let cat = format!("{at}/client_auth");
            let ca_certs = match super::tls::load_ca_bundle(&cx.resolve(&ca.ca_file)) {
                Ok(c) => c,
                Err(e) => {
                    cx.d.error(&format!("{cat}/ca_file"), e);
                    return None;
                }
            };
            let mut crls = Vec::new();
            for (j, p) in ca.crl_files.iter().enumerate() {
                match super::tls::load_crls(&cx.resolve(p)) {
                    Ok(mut c) => crls.append(&mut c),
                    Err(e) => {
                        cx.d.error(&format!("{cat}/crl_files/{j}"), e);
                        return None;
                    }
                }
            }
            Some(crate::runtime::ClientAuth {
                ca_certs,
                crls,
                required: ca.required,
            })
        }
    };
    (certificates.len() == f.certificates.len()).then(|| Tls {
        certificates,
        min_version: f.min_version,
        http2: f.http2,
        hsts: f.hsts,
        client_auth,
    })
}

/// Builds one listener's table from the routes that apply to it; reports
/// routes that tie.
/// A route that can only be entered with a client certificate must not be
/// served by a listener that asks for none: no request could pass.
fn check_certificate_routes(
    listener: &str,
    asks_certificates: bool,
    routes: &[CompiledRoute],
    cx: &mut Cx<'_>,
) {
    if asks_certificates {
        return;
    }
    for r in routes
        .iter()
        .filter(|r| r.listeners.is_empty() || r.listeners.iter().any(|l| &**l == listener))
    {
        let needs_cert = r.route.filters.iter().any(|f| match f {
            crate::runtime::FilterSpec::Authenticate(p) => {
                p.methods.contains(&crate::runtime::AuthMethod::Mtls)
                    && (p.require_all || p.methods.len() == 1)
                    && !p.anonymous
            }
            _ => false,
        });
        if needs_cert {
            cx.d.error_hint(
                &format!("/routes/{}", r.index),
                format!(
                    "the route \"{}\" needs a client certificate, but listener \"{listener}\" asks for none",
                    r.route.id
                ),
                "add tls.client_auth to the listener, or limit the route to listeners that have it",
            );
        }
    }
}

fn route_table(
    listener: &str,
    routes: &[CompiledRoute],
    cx: &mut Cx<'_>,
) -> Option<RouteTable<usize>> {
    let mine: Vec<(usize, &CompiledRoute)> = routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.listeners.is_empty() || r.listeners.iter().any(|l| &**l == listener))
        .collect();
    let entries = mine
        .iter()
        .map(|(i, r)| (r.route.matcher.clone(), *i))
        .collect();
    match RouteTable::build(entries) {
        Ok(t) => Some(t),
        Err(pairs) => {
            for (a, b) in pairs {
                let (Some((_, ra)), Some((_, rb))) = (mine.get(a), mine.get(b)) else {
                    continue;
                };
                cx.d.error_hint(
                    &format!("/routes/{}/match", rb.index),
                    format!(
                        "the routes {} match the same requests on listener \"{listener}\"",
                        quoted_list([&*ra.route.id, &*rb.route.id])
                    ),
                    "give one of them a more specific host, path or method list",
                );
            }
            None
        }
    }
}
