//! The full Core Rule Set on typical API requests, at paranoia levels 1
//! and 4: a small GET with a query, a 1 KB JSON POST, a form POST and a
//! 64 KB JSON POST.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_waf::{RuleSet, Source, crs};

// The gateway's allocator: the engine is measured as it runs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rules(paranoia: u8) -> RuleSet {
    let setup = format!(
        "SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level={paranoia}\""
    );
    let sources = crs::builtin(&[Source::text("bench.conf", &setup)]);
    RuleSet::load(&sources).unwrap()
}

struct Req {
    method: &'static str,
    uri: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

const DESCRIPTION: &str = "A sturdy everyday item made from recycled materials, with a \
    two year warranty. Ships in plain packaging within two working days of the order being \
    placed; returns are free within thirty days for any reason at all.";

/// An order of as many items as fit in `size` bytes (at least one), each
/// with an 880-byte English description: one item for the 1 KB request,
/// as in `bench/waf.sh`, and some sixty for the 64 KB one.
fn json_body(size: usize) -> Vec<u8> {
    let doc = |items: &[String]| {
        format!(
            "{{\"order\":\"A-1001\",\"customer\":{{\"email\":\"ada@example.com\"}},\"items\":[{}]}}",
            items.join(",")
        )
    };
    let item = |n: usize| {
        format!(
            "{{\"id\":{n},\"name\":\"Item number {n}\",\"price\":{}.99,\"tags\":[\"red\",\"large\"],\"in_stock\":true,\"description\":\"{}\"}}",
            n * 3,
            DESCRIPTION.repeat(4)
        )
    };
    let mut items = vec![item(0)];
    loop {
        items.push(item(items.len()));
        if doc(&items).len() > size {
            items.pop();
            return doc(&items).into_bytes();
        }
    }
}

fn requests() -> Vec<(&'static str, Req)> {
    let base = || {
        vec![
            ("Host", "api.example.com".to_string()),
            ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36".to_string()),
            ("Accept", "application/json".to_string()),
            ("Accept-Encoding", "gzip, deflate, br".to_string()),
            ("Authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl".to_string()),
        ]
    };
    let with = |mut h: Vec<(&'static str, String)>, ct: &str, len: usize| {
        h.push(("Content-Type", ct.to_string()));
        h.push(("Content-Length", len.to_string()));
        h
    };
    let json1k = json_body(1024);
    let json64k = json_body(64 * 1024);
    let form = b"name=Ada+Lovelace&email=ada%40example.com&address=12+St+James%27s+Square&city=London&notes=Ring+twice".to_vec();
    vec![
        (
            "get_with_query",
            Req {
                method: "GET",
                uri: "/api/v1/orders?status=shipped&page=2&sort=-created_at".into(),
                headers: base(),
                body: Vec::new(),
            },
        ),
        (
            "json_post_1k",
            Req {
                method: "POST",
                uri: "/api/v1/orders".into(),
                headers: with(base(), "application/json", json1k.len()),
                body: json1k,
            },
        ),
        (
            "form_post",
            Req {
                method: "POST",
                uri: "/account/profile".into(),
                headers: with(base(), "application/x-www-form-urlencoded", form.len()),
                body: form,
            },
        ),
        (
            "json_post_64k",
            Req {
                method: "POST",
                uri: "/api/v1/orders/bulk".into(),
                headers: with(base(), "application/json", json64k.len()),
                body: json64k,
            },
        ),
    ]
}

/// One request through phases 1 and 2; the ids of the rules that logged.
fn run(rules: &RuleSet, r: &Req) -> Vec<u32> {
    let mut tx = rules.transaction();
    tx.connection(
        SocketAddr::from(([10, 0, 0, 7], 51000)),
        SocketAddr::from(([10, 0, 0, 1], 443)),
    );
    tx.request_line(r.method.as_bytes(), r.uri.as_bytes(), b"HTTP/1.1");
    for (k, v) in &r.headers {
        tx.request_header(k.as_bytes(), v.as_bytes());
    }
    tx.process_request(&r.body);
    tx.matches()
        .iter()
        .filter(|m| m.logged)
        .map(|m| m.id)
        .collect()
}

fn bench(c: &mut Criterion) {
    let reqs = requests();
    for paranoia in [1u8, 4] {
        let rules = rules(paranoia);
        for (name, r) in &reqs {
            // Typical traffic is clean: no rule may match at paranoia 1.
            if paranoia == 1 {
                let ids = run(&rules, r);
                assert!(
                    ids.is_empty(),
                    "{name} matched rules at paranoia 1: {ids:?}"
                );
            }
            c.bench_function(&format!("crs_pl{paranoia}/{name}"), |b| {
                b.iter(|| black_box(run(&rules, black_box(r))))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
