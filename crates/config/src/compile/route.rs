//! Routes: matchers, upstream references, and the filter list with defaults.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Method;
use portcullis_router::{HostPattern, MethodSet, PathPattern, RouteMatch};

use super::{Cx, auth, check_name, filters};
use crate::diag::{did_you_mean, quoted_list};
use crate::file::{DefaultsFile, FilterFile, ListenerFile, MatchFile, RouteFile};
use crate::runtime::{FilterSpec, Route, SecurityHeadersPolicy, Upstream};

/// A compiled route with where it came from and which listeners serve it.
pub(crate) struct CompiledRoute {
    /// Its index in the file, for locating later errors.
    pub(crate) index: usize,
    /// Empty means every listener.
    pub(crate) listeners: Vec<Arc<str>>,
    pub(crate) route: Arc<Route>,
}

/// Compiles the routes; also returns the default security headers policy.
pub(super) fn compile_all(
    files: &[RouteFile],
    defaults: &DefaultsFile,
    issuers: auth::Verifiers<'_>,
    listeners: &[ListenerFile],
    upstream_names: &[&str],
    upstreams: &BTreeMap<Arc<str>, Arc<Upstream>>,
    cx: &mut Cx<'_>,
) -> (Vec<CompiledRoute>, Option<SecurityHeadersPolicy>) {
    // A route naming an upstream that exists in the file but failed to
    // compile is skipped quietly: that upstream's own error says why.
    let default_limits = filters::limits(&defaults.limits);
    let default_headers =
        filters::security_headers(&defaults.security_headers, "/defaults/security_headers", cx);
    let default_auth = defaults
        .authenticate
        .as_ref()
        .and_then(|a| auth::policy(a, issuers, "/defaults/authenticate", cx));
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let at = format!("/routes/{i}");
        check_name(cx, &format!("{at}/id"), "route", &f.id);
        if files.iter().take(i).any(|o| o.id == f.id) {
            cx.d.error(
                &format!("{at}/id"),
                format!("the route id \"{}\" is used twice", f.id),
            );
        }
        let mut ok = true;
        for (j, l) in f.listeners.iter().enumerate() {
            if !listeners.iter().any(|x| &x.name == l) {
                let names: Vec<&str> = listeners.iter().map(|x| x.name.as_str()).collect();
                cx.d.error_hint(
                    &format!("{at}/listeners/{j}"),
                    format!("unknown listener \"{l}\""),
                    suggestion(l, &names, "listeners"),
                );
                ok = false;
            }
        }
        if !upstreams.contains_key(f.upstream.as_str()) {
            ok = false;
        }
        if !upstream_names.contains(&f.upstream.as_str()) {
            let names: Vec<&str> = upstream_names.to_vec();
            cx.d.error_hint(
                &format!("{at}/upstream"),
                format!("unknown upstream \"{}\"", f.upstream),
                suggestion(&f.upstream, &names, "upstreams"),
            );
            ok = false;
        }
        let matcher = compile_match(&f.matcher, &format!("{at}/match"), cx);
        let filter_list = compile_filters(&f.filters, issuers, &at, cx);
        let (Some(matcher), Some(mut filter_list)) = (matcher, filter_list) else {
            continue;
        };
        // Defaults: limits run first on the request, security headers last
        // (so first on the response).
        if !filter_list
            .iter()
            .any(|s| matches!(s, FilterSpec::Limits(_)))
        {
            filter_list.insert(0, FilterSpec::Limits(default_limits.clone()));
        }
        if !filter_list
            .iter()
            .any(|s| matches!(s, FilterSpec::SecurityHeaders(_)))
            && let Some(h) = &default_headers
        {
            filter_list.push(FilterSpec::SecurityHeaders(h.clone()));
        }
        if !place_authentication(&mut filter_list, default_auth.as_ref(), &at, cx) {
            ok = false;
        }
        if ok {
            out.push(CompiledRoute {
                index: i,
                listeners: f.listeners.iter().map(|l| l.as_str().into()).collect(),
                route: Arc::new(Route {
                    id: f.id.as_str().into(),
                    matcher,
                    upstream: f.upstream.as_str().into(),
                    filters: filter_list,
                }),
            });
        }
    }
    (out, default_headers)
}

/// Makes sure the route has an authentication policy, its own or the
/// default, and that it runs after CORS: preflights carry no credentials
/// and must be answered before authentication asks for one.
fn place_authentication(
    list: &mut Vec<FilterSpec>,
    default: Option<&crate::runtime::AuthPolicy>,
    at: &str,
    cx: &mut Cx<'_>,
) -> bool {
    let kind = |k: &str| list.iter().position(|s| s.kind() == k);
    match (kind("authenticate"), kind("cors")) {
        (Some(a), Some(c)) if a < c => {
            cx.d.error_hint(
                &format!("{at}/filters"),
                "the authenticate filter runs before cors",
                "list cors first: CORS preflights carry no credentials",
            );
            false
        }
        (Some(_), _) => true,
        (None, cors) => {
            let Some(policy) = default else {
                cx.d.error_hint(
                    at,
                    "the route has no authentication policy",
                    "add a filter {kind: authenticate, methods: [api_key]}, or {kind: authenticate, anonymous: true} for a public route, or set defaults.authenticate",
                );
                return false;
            };
            let after = cors.or_else(|| kind("limits")).map_or(0, |i| i + 1);
            list.insert(after, FilterSpec::Authenticate(policy.clone()));
            true
        }
    }
}

fn suggestion(word: &str, names: &[&str], what: &str) -> String {
    match did_you_mean(word, names.iter().copied()) {
        Some(s) => format!("did you mean \"{s}\"?"),
        None if names.is_empty() => format!("no {what} are defined"),
        None => format!(
            "the defined {what} are {}",
            quoted_list(names.iter().copied())
        ),
    }
}

pub(crate) fn parse_method(m: &str) -> Option<Method> {
    let ok = !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_');
    ok.then(|| Method::from_bytes(m.as_bytes()).ok()).flatten()
}

fn compile_match(f: &MatchFile, at: &str, cx: &mut Cx<'_>) -> Option<RouteMatch> {
    let mut ok = true;
    let hosts = f
        .hosts
        .iter()
        .enumerate()
        .filter_map(|(j, h)| match HostPattern::parse(h) {
            Ok(p) => Some(p),
            Err(e) => {
                cx.d.error_hint(
                    &format!("{at}/hosts/{j}"),
                    format!("\"{h}\" is not a host pattern: {e}"),
                    "write a host name like \"api.example.com\" or \"*.example.com\", without a port",
                );
                ok = false;
                None
            }
        })
        .collect();
    let path = match (&f.path, &f.path_prefix) {
        (Some(_), Some(_)) => {
            cx.d.error_hint(
                &format!("{at}/path_prefix"),
                "a route has either path or path_prefix, not both",
                "keep one of them",
            );
            None
        }
        (None, None) => {
            cx.d.error_hint(
                at,
                "a route needs path or path_prefix",
                "use path_prefix: / to match every path",
            );
            None
        }
        (Some(p), None) => PathPattern::parse_path(p)
            .map_err(|e| cx.d.error(&format!("{at}/path"), format!("\"{p}\": {e}")))
            .ok(),
        (None, Some(p)) => PathPattern::parse_prefix(p)
            .map_err(|e| {
                cx.d.error(&format!("{at}/path_prefix"), format!("\"{p}\": {e}"))
            })
            .ok(),
    };
    let mut methods = Vec::new();
    for (j, m) in f.methods.iter().enumerate() {
        match parse_method(m) {
            Some(method) if methods.contains(&method) => {
                cx.d.error(
                    &format!("{at}/methods/{j}"),
                    format!("the method \"{m}\" is listed twice"),
                );
                ok = false;
            }
            Some(method) => methods.push(method),
            None => {
                cx.d.error_hint(
                    &format!("{at}/methods/{j}"),
                    format!("\"{m}\" is not a method"),
                    "write methods in upper case, like \"GET\" or \"POST\"",
                );
                ok = false;
            }
        }
    }
    let path = path?;
    ok.then(|| RouteMatch {
        hosts,
        path,
        methods: MethodSet::of(methods),
    })
}

fn compile_filters(
    files: &[FilterFile],
    issuers: auth::Verifiers<'_>,
    at: &str,
    cx: &mut Cx<'_>,
) -> Option<Vec<FilterSpec>> {
    let mut out: Vec<FilterSpec> = Vec::new();
    let mut ok = true;
    for (j, f) in files.iter().enumerate() {
        let fat = format!("{at}/filters/{j}");
        let spec = match f {
            FilterFile::Cors(c) => filters::cors(c, &fat, cx).map(FilterSpec::Cors),
            FilterFile::SecurityHeaders(h) => {
                filters::security_headers(h, &fat, cx).map(FilterSpec::SecurityHeaders)
            }
            FilterFile::Limits(l) => Some(FilterSpec::Limits(filters::limits(l))),
            FilterFile::Waf(w) => super::waf::policy(w, &fat, cx).map(FilterSpec::Waf),
            FilterFile::Authenticate(a) => {
                auth::policy(a, issuers, &fat, cx).map(FilterSpec::Authenticate)
            }
        };
        let Some(spec) = spec else {
            ok = false;
            continue;
        };
        if out.iter().any(|s| s.kind() == spec.kind()) {
            cx.d.error(
                &format!("{fat}/kind"),
                format!(
                    "a route can have one \"{}\" filter; this is the second",
                    spec.kind()
                ),
            );
            ok = false;
            continue;
        }
        out.push(spec);
    }
    ok.then_some(out)
}
