//! The route table: the most specific matching route wins.
//!
//! Specificity, most important first: the host (an exact name, then the
//! longest wildcard, then any host), the path (exact, then templates with
//! more literal segments, then longer prefixes), and the methods (a route
//! naming methods beats one accepting any). Two routes that tie on all three
//! and overlap are refused when the table is built, so the winner never
//! depends on the order of the config file.
//!
//! A lookup walks the routes in that order, but only those that can match
//! the request's host name and the path's first segment (`index.rs`): a
//! table of thousands of routes costs a request two hash lookups and a few
//! matches, not thousands.

use std::sync::Arc;

use http::Method;

use crate::index::Index;
use crate::{HostPattern, MethodSet, PathPattern};

/// What one route matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// Empty means any host.
    pub hosts: Vec<HostPattern>,
    pub path: PathPattern,
    pub methods: MethodSet,
}

#[derive(Debug)]
struct Entry {
    host: Option<HostPattern>,
    route: usize,
}

/// Routes sorted for lookup. `T` is whatever the caller attaches to a route.
#[derive(Debug)]
pub struct RouteTable<T> {
    entries: Vec<Entry>,
    routes: Vec<(RouteMatch, T)>,
    /// Which entries a request can match.
    index: Index,
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup<'a, T> {
    Found {
        route: &'a T,
        params: Vec<(Arc<str>, String)>,
    },
    /// Some route matches host and path but none accepts the method; the
    /// methods that would have been accepted.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

fn methods_overlap(a: &MethodSet, b: &MethodSet) -> bool {
    (a.is_any() && b.is_any()) || a.iter().any(|m| b.iter().any(|n| n == m))
}

impl<T> RouteTable<T> {
    /// Builds the table. On overlap, returns the pairs of route indexes (in
    /// input order) that tie.
    pub fn build(routes: Vec<(RouteMatch, T)>) -> Result<Self, Vec<(usize, usize)>> {
        let mut entries = Vec::new();
        for (i, (m, _)) in routes.iter().enumerate() {
            if m.hosts.is_empty() {
                entries.push(Entry {
                    host: None,
                    route: i,
                });
            }
            for h in &m.hosts {
                entries.push(Entry {
                    host: Some(h.clone()),
                    route: i,
                });
            }
        }
        let key = |e: &Entry| {
            let m = &routes.get(e.route).map(|r| &r.0);
            (
                e.host
                    .as_ref()
                    .map(HostPattern::specificity)
                    .unwrap_or((0, 0)),
                m.map(|m| m.path.specificity()).unwrap_or((0, 0, 0)),
                m.map(|m| !m.methods.is_any()).unwrap_or(false),
            )
        };
        entries.sort_by(|a, b| key(b).cmp(&key(a)).then(a.route.cmp(&b.route)));

        let mut conflicts = Vec::new();
        for (i, a) in entries.iter().enumerate() {
            for b in entries.iter().skip(i + 1) {
                if key(a) != key(b) {
                    break;
                }
                let (Some((ma, _)), Some((mb, _))) = (routes.get(a.route), routes.get(b.route))
                else {
                    continue;
                };
                if a.route != b.route
                    && a.host == b.host
                    && ma.path == mb.path
                    && methods_overlap(&ma.methods, &mb.methods)
                {
                    let pair = (a.route.min(b.route), a.route.max(b.route));
                    if !conflicts.contains(&pair) {
                        conflicts.push(pair);
                    }
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
        let mut index = Index::default();
        for (pos, e) in entries.iter().enumerate() {
            if let Some((m, _)) = routes.get(e.route) {
                index.file(pos, e.host.as_ref(), &m.path);
            }
        }
        Ok(RouteTable {
            entries,
            routes,
            index,
        })
    }

    /// Finds the route for a normalised host (see [`crate::normalize_host`];
    /// `None` when the request had none) and a normalised path.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> Lookup<'_, T> {
        let candidates = self
            .index
            .candidates(host, path)
            .filter_map(|pos| self.entries.get(pos));
        self.first_match(candidates, host, path, method)
    }

    /// The first of `candidates` (in the table's order) matching host, path
    /// and method; or the methods that would have been accepted.
    fn first_match<'a>(
        &'a self,
        candidates: impl Iterator<Item = &'a Entry>,
        host: Option<&str>,
        path: &str,
        method: &Method,
    ) -> Lookup<'a, T> {
        let mut allowed: Vec<Method> = Vec::new();
        for entry in candidates {
            if let Some(pattern) = &entry.host {
                match host {
                    Some(h) if pattern.matches(h) => {}
                    _ => continue,
                }
            }
            let Some((m, value)) = self.routes.get(entry.route) else {
                continue;
            };
            let Some(params) = m.path.matches(path) else {
                continue;
            };
            if m.methods.contains(method) {
                return Lookup::Found {
                    route: value,
                    params,
                };
            }
            for method in m.methods.iter() {
                if !allowed.contains(method) {
                    allowed.push(method.clone());
                }
            }
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            if allowed.contains(&Method::GET) && !allowed.contains(&Method::HEAD) {
                allowed.push(Method::HEAD);
            }
            Lookup::MethodNotAllowed(allowed)
        }
    }

    /// The routes in input order.
    pub fn routes(&self) -> impl Iterator<Item = &(RouteMatch, T)> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn route(hosts: &[&str], path: &str, methods: &[Method]) -> RouteMatch {
        RouteMatch {
            hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            path: if let Some(p) = path.strip_suffix('*') {
                PathPattern::parse_prefix(p).unwrap()
            } else {
                PathPattern::parse_path(path).unwrap()
            },
            methods: MethodSet::of(methods.to_vec()),
        }
    }

    fn found<'a>(
        t: &'a RouteTable<&'static str>,
        host: Option<&str>,
        path: &str,
        m: Method,
    ) -> &'a str {
        match t.lookup(host, path, &m) {
            Lookup::Found { route, .. } => route,
            other => panic!("no route for {path}: {other:?}"),
        }
    }

    #[test]
    fn most_specific_wins_regardless_of_order() {
        let t = RouteTable::build(vec![
            (route(&[], "/*", &[]), "catch-all"),
            (route(&[], "/users*", &[]), "users-prefix"),
            (route(&[], "/users/{id}", &[]), "user"),
            (route(&[], "/users/me", &[]), "me"),
            (route(&[], "/users/{id}", &[Method::DELETE]), "delete-user"),
            (route(&["api.example.com"], "/*", &[]), "api-host"),
            (route(&["*.example.com"], "/*", &[]), "wildcard-host"),
        ])
        .unwrap();
        assert_eq!(found(&t, None, "/users/me", Method::GET), "me");
        assert_eq!(found(&t, None, "/users/7", Method::GET), "user");
        assert_eq!(found(&t, None, "/users/7", Method::DELETE), "delete-user");
        assert_eq!(found(&t, None, "/users/7/x", Method::GET), "users-prefix");
        assert_eq!(found(&t, None, "/other", Method::GET), "catch-all");
        assert_eq!(
            found(&t, Some("api.example.com"), "/users/me", Method::GET),
            "api-host"
        );
        assert_eq!(
            found(&t, Some("x.example.com"), "/users/me", Method::GET),
            "wildcard-host"
        );
        assert_eq!(
            found(&t, Some("elsewhere.org"), "/users/me", Method::GET),
            "me"
        );
    }

    #[test]
    fn method_not_allowed_lists_methods() {
        let t = RouteTable::build(vec![
            (route(&[], "/orders", &[Method::GET]), "list"),
            (route(&[], "/orders", &[Method::POST]), "create"),
        ])
        .unwrap();
        match t.lookup(None, "/orders", &Method::DELETE) {
            Lookup::MethodNotAllowed(m) => {
                assert!(
                    m.contains(&Method::GET)
                        && m.contains(&Method::POST)
                        && m.contains(&Method::HEAD)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.lookup(None, "/nope", &Method::GET),
            Lookup::NotFound
        ));
        assert_eq!(found(&t, None, "/orders", Method::HEAD), "list");
    }

    #[test]
    fn overlapping_routes_are_refused() {
        let err = RouteTable::build(vec![
            (route(&[], "/a", &[Method::GET]), 0),
            (route(&[], "/b", &[]), 1),
            (route(&[], "/a", &[Method::GET, Method::POST]), 2),
        ])
        .unwrap_err();
        assert_eq!(err, vec![(0, 2)]);
        // Different methods do not overlap.
        assert!(
            RouteTable::build(vec![
                (route(&[], "/a", &[Method::GET]), 0),
                (route(&[], "/a", &[Method::POST]), 1),
            ])
            .is_ok()
        );
    }

    #[test]
    fn template_params_are_returned() {
        let t = RouteTable::build(vec![(route(&[], "/users/{id}", &[]), "u")]).unwrap();
        match t.lookup(None, "/users/42", &Method::GET) {
            Lookup::Found { params, .. } => {
                assert_eq!(params, vec![("id".into(), "42".to_owned())])
            }
            other => panic!("{other:?}"),
        }
    }

    /// A path pattern from a small vocabulary, so that generated tables
    /// overlap and generated paths hit them.
    fn pattern() -> impl Strategy<Value = String> {
        // `{}` stands for a parameter, named after its position.
        let seg = prop_oneof![Just("a"), Just("b"), Just("ab"), Just("{}")];
        (prop::collection::vec(seg, 0..4), any::<bool>()).prop_map(|(segs, prefix)| {
            let mut p = String::new();
            for (i, s) in segs.iter().enumerate() {
                p.push('/');
                match *s {
                    "{}" => p.push_str(&format!("{{p{i}}}")),
                    literal => p.push_str(literal),
                }
            }
            match (p.is_empty(), prefix && !p.contains('{')) {
                (true, _) => "/*".to_owned(),
                (false, true) => format!("{p}*"),
                (false, false) => p,
            }
        })
    }

    fn request_path() -> impl Strategy<Value = String> {
        let seg = prop_oneof![Just("a"), Just("b"), Just("ab"), Just("abc"), Just("")];
        prop::collection::vec(seg, 0..5).prop_map(|segs| {
            if segs.is_empty() {
                "/".to_owned()
            } else {
                segs.iter().map(|s| format!("/{s}")).collect()
            }
        })
    }

    proptest! {
        /// The index changes which routes are tried, never the answer: a
        /// lookup agrees with trying every route in the table's order.
        #[test]
        fn indexed_lookup_agrees_with_trying_every_route(
            specs in prop::collection::vec(
                (pattern(), prop::sample::select(vec![0usize, 1, 2, 3]), any::<bool>()),
                1..12,
            ),
            paths in prop::collection::vec(request_path(), 1..8),
        ) {
            let routes: Vec<(RouteMatch, usize)> = specs
                .iter()
                .enumerate()
                .map(|(i, (p, host, get_only))| {
                    let hosts: &[&str] = match host {
                        0 => &[],
                        1 => &["x.example.com"],
                        2 => &["y.example.com", "x.example.com"],
                        _ => &["*.example.com"],
                    };
                    let methods: &[Method] = if *get_only { &[Method::GET] } else { &[] };
                    (route(hosts, p, methods), i)
                })
                .collect();
            let Ok(t) = RouteTable::build(routes) else {
                return Ok(());
            };
            for path in &paths {
                for host in [None, Some("x.example.com"), Some("y.example.com")] {
                    for m in [Method::GET, Method::POST] {
                        let indexed = format!("{:?}", t.lookup(host, path, &m));
                        let every = format!("{:?}", t.first_match(t.entries.iter(), host, path, &m));
                        prop_assert_eq!(indexed, every, "{} {:?} {}", path, host, m);
                    }
                }
            }
        }
    }
}
