//! The router's hot path, run for every request: path normalisation and
//! the route lookup, in tables of growing size (an API gateway in front of
//! many services or tenants carries hundreds of routes).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_router::{
    HostPattern, Lookup, Method, MethodSet, NormalizeOptions, PathPattern, RouteMatch, RouteTable,
    normalize_path,
};

fn normalize(c: &mut Criterion) {
    let opts = NormalizeOptions::default();
    let mut g = c.benchmark_group("normalize_path");
    for (name, path) in [
        ("plain", "/api/v1/users/12345/orders/678"),
        ("escaped", "/api/v1/%7Ealice/./orders//678/../679"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| normalize_path(black_box(path), opts).unwrap())
        });
    }
    g.finish();
}

/// `n` services, each with a collection, an item template and a prefix
/// for everything else under it; half of them on a host of their own.
fn table(n: usize) -> RouteTable<usize> {
    let mut routes = Vec::new();
    for i in 0..n {
        let hosts = if i % 2 == 0 {
            vec![HostPattern::parse(&format!("svc{i}.example.com")).unwrap()]
        } else {
            vec![]
        };
        let id = routes.len();
        routes.push((
            RouteMatch {
                hosts: hosts.clone(),
                path: PathPattern::parse_path(&format!("/svc{i}/items")).unwrap(),
                methods: MethodSet::of(vec![Method::GET, Method::POST]),
            },
            id,
        ));
        routes.push((
            RouteMatch {
                hosts: hosts.clone(),
                path: PathPattern::parse_path(&format!("/svc{i}/items/{{id}}")).unwrap(),
                methods: MethodSet::of(vec![Method::GET, Method::PUT, Method::DELETE]),
            },
            id + 1,
        ));
        routes.push((
            RouteMatch {
                hosts,
                path: PathPattern::parse_prefix(&format!("/svc{i}/")).unwrap(),
                methods: MethodSet::any(),
            },
            id + 2,
        ));
    }
    RouteTable::build(routes).unwrap()
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup");
    for n in [10, 100, 1000] {
        let t = table(n);
        let last = n - 1;
        let item = format!("/svc{last}/items/42");
        let host = format!("svc{last}.example.com");
        let host = (last % 2 == 0).then_some(host.as_str());
        match t.lookup(host, &item, &Method::GET) {
            Lookup::Found { route, .. } => assert_eq!(*route, 3 * last + 1),
            other => panic!("{other:?}"),
        }
        g.bench_with_input(BenchmarkId::new("last_service_item", 3 * n), &n, |b, _| {
            b.iter(|| t.lookup(black_box(host), black_box(&item), &Method::GET))
        });
        g.bench_with_input(BenchmarkId::new("not_found", 3 * n), &n, |b, _| {
            b.iter(|| t.lookup(black_box(None), black_box("/nowhere/at/all"), &Method::GET))
        });
    }
    g.finish();
}

/// `n` tenants, each on a host name of its own with everything under `/`.
fn hosts(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_lookup_by_host");
    for n in [10, 1000] {
        let t = RouteTable::build(
            (0..n)
                .map(|i| {
                    let m = RouteMatch {
                        hosts: vec![HostPattern::parse(&format!("t{i}.example.com")).unwrap()],
                        path: PathPattern::parse_prefix("/").unwrap(),
                        methods: MethodSet::any(),
                    };
                    (m, i)
                })
                .collect(),
        )
        .unwrap();
        let host = format!("t{}.example.com", n - 1);
        match t.lookup(Some(&host), "/orders/7", &Method::GET) {
            Lookup::Found { route, .. } => assert_eq!(*route, n - 1),
            other => panic!("{other:?}"),
        }
        g.bench_with_input(BenchmarkId::new("last_tenant", n), &n, |b, _| {
            b.iter(|| t.lookup(black_box(Some(&host)), black_box("/orders/7"), &Method::GET))
        });
    }
    g.finish();
}

criterion_group!(benches, normalize, lookup, hosts);
criterion_main!(benches);
