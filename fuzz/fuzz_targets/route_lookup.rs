//! Host and path input from the network through the route table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_router::{HostPattern, MethodSet, PathPattern, RouteMatch, RouteTable, normalize_host, normalize_path};

fuzz_target!(|data: (&str, &str)| {
    let (host, path) = data;
    let table = RouteTable::build(vec![
        (
            RouteMatch {
                hosts: vec![HostPattern::parse("*.example.com").unwrap()],
                path: PathPattern::parse_path("/users/{id}/orders/{order}").unwrap(),
                methods: MethodSet::any(),
            },
            0,
        ),
        (
            RouteMatch {
                hosts: vec![],
                path: PathPattern::parse_prefix("/api").unwrap(),
                methods: MethodSet::of(vec![http_get()]),
            },
            1,
        ),
    ])
    .unwrap();
    let host = normalize_host(host).ok();
    if let Ok(p) = normalize_path(path, Default::default()) {
        let _ = table.lookup(host.as_deref(), &p, &http_get());
    }
});

fn http_get() -> portcullis_router::Method {
    portcullis_router::Method::GET
}
