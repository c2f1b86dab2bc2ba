use std::path::Path;
use std::sync::Arc;

use crate::runtime::{
    AuthMethod, FilterSpec, JwtKeySource, LogTarget, SecretSource, StoreLocation,
};
use crate::{ConfigError, load_str};

fn compile(src: &str) -> Result<crate::Config, ConfigError> {
    load_str(src, Arc::from("test.yaml"), Path::new("."))
}

fn errors(src: &str) -> Vec<(usize, usize, String)> {
    let err = compile(src).expect_err("the config should be refused");
    err.diagnostics
        .iter()
        .map(|d| {
            let p = d.pos.unwrap_or_default();
            (p.line, p.column, d.message.clone())
        })
        .collect()
}

const GOOD: &str = r#"
version: 1
listeners:
  - name: main
    address: "127.0.0.1:0"
upstreams:
  - name: api
    targets: ["127.0.0.1:3000"]
defaults:
  authenticate: { anonymous: true }
routes:
  - id: users
    match: { path: "/users/{id}", methods: [GET] }
    upstream: api
    filters:
      - kind: cors
        allow_origins: ["https://app.example.com"]
      - kind: authenticate
        methods: [api_key]
        scopes: ["users:read"]
  - id: all
    match: { path_prefix: / }
    upstream: api
"#;

#[test]
fn a_good_config_compiles_with_defaults() {
    let c = compile(GOOD).unwrap();
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.routes.len(), 2);
    let users = &c.routes[0];
    let kinds: Vec<&str> = users.filters.iter().map(FilterSpec::kind).collect();
    assert_eq!(
        kinds,
        ["limits", "cors", "authenticate", "security_headers"]
    );
    let all: Vec<&str> = c.routes[1].filters.iter().map(FilterSpec::kind).collect();
    assert_eq!(all, ["limits", "authenticate", "security_headers"]);
    // A route takes API keys, so the store opens at its default place,
    // with its secret beside it.
    let auth = &c.authentication;
    assert_eq!(
        auth.store,
        StoreLocation::Sqlite(Path::new("./portcullis.db").into())
    );
    assert!(auth.store_in_use);
    assert_eq!(
        auth.key_secret,
        SecretSource::File(Path::new("./portcullis.db.key").into())
    );
    assert_eq!(
        (auth.key_prefix.as_str(), auth.key_header.as_str()),
        ("pcl", "x-api-key")
    );
    assert!(auth.lockout.is_some(), "lock-out is on by default");
    assert_eq!(users.max_body(), 1024 * 1024);
    assert_eq!(
        c.admin.as_ref().unwrap().address.to_string(),
        "127.0.0.1:9901"
    );
    assert_eq!(c.logging.access_log, LogTarget::Stdout);
    assert!(c.logging.mask_headers.iter().any(|h| h == "authorization"));
    assert!(c.logging.mask_query_params.iter().any(|p| p == "api_key"));
    assert!(
        c.path_options.reject_double_encoding,
        "secure default when `defaults` is absent"
    );
}

#[test]
fn unknown_keys_are_reported_all_at_once_with_suggestions() {
    let src = "version: 1\nlisteners:\n  - name: main\n    adress: \"127.0.0.1:0\"\n    limits:\n      header_timout: 5s\nbogus: 1\n";
    let err = compile(src).unwrap_err();
    let text = err.to_string();
    let msgs: Vec<_> = err
        .diagnostics
        .iter()
        .map(|d| (d.pos.unwrap().line, d.message.as_str()))
        .collect();
    assert!(msgs.contains(&(4, "unknown key \"adress\"")), "{text}");
    assert!(
        msgs.contains(&(6, "unknown key \"header_timout\"")),
        "{text}"
    );
    assert!(msgs.contains(&(7, "unknown key \"bogus\"")), "{text}");
    assert!(
        msgs.contains(&(3, "missing required key \"address\"")),
        "{text}"
    );
    assert!(text.contains("did you mean \"address\"?"), "{text}");
    assert!(text.contains("did you mean \"header_timeout\"?"), "{text}");
}

#[test]
fn wrong_types_and_formats_are_located() {
    let src = "version: 1\nlisteners:\n  - name: main\n    address: \"127.0.0.1:0\"\n    limits:\n      header_timeout: 10\n      max_header_bytes: 16 kilobytes\n      max_headers: many\n";
    let errs = errors(src);
    assert!(
        errs.iter().any(|(l, c, m)| *l == 6
            && *c == 23
            && m.contains("expected a string, found an integer")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 7 && m.contains("is not a size like")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 8 && m.contains("expected an integer, found a string")),
        "{errs:?}"
    );
}

#[test]
fn filter_kinds_are_checked_by_tag() {
    let src = "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\nupstreams: [{name: api, targets: [\"127.0.0.1:1\"]}]\nroutes:\n  - id: r\n    match: {path_prefix: /}\n    upstream: api\n    filters:\n      - kind: corz\n      - kind: cors\n        allow_origin: [x]\n";
    let errs = errors(src);
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 9 && m == "unknown kind \"corz\""),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 11 && m == "unknown key \"allow_origin\""),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 10 && m == "missing required key \"allow_origins\""),
        "{errs:?}"
    );
}

#[test]
fn semantic_errors_are_all_reported() {
    let src = r#"version: 1
listeners:
  - name: main
    address: "localhost:80"
    trusted_proxies: ["10.0.0.0/33"]
upstreams:
  - name: api
    targets: ["127.0.0.1"]
routes:
  - id: r1
    match: { path: "/a/../b" }
    upstream: apii
  - id: r2
    match: { path: "/x", path_prefix: "/y", methods: [get] }
    upstream: api
    filters:
      - kind: cors
        allow_origins: ["*"]
        allow_credentials: true
  - id: r3
    match: {}
    upstream: api
"#;
    let errs = errors(src);
    let has = |line: usize, needle: &str| {
        errs.iter()
            .any(|(l, _, m)| *l == line && m.contains(needle))
    };
    assert!(
        has(4, "\"localhost:80\" is not a socket address"),
        "{errs:?}"
    );
    assert!(
        has(5, "\"10.0.0.0/33\" is not an IP address or network"),
        "{errs:?}"
    );
    assert!(has(8, "\"127.0.0.1\" is not a target"), "{errs:?}");
    assert!(has(11, "not in normal form"), "{errs:?}");
    assert!(has(12, "unknown upstream \"apii\""), "{errs:?}");
    assert!(has(14, "either path or path_prefix"), "{errs:?}");
    assert!(has(14, "\"get\" is not a method"), "{errs:?}");
    assert!(
        has(18, "\"*\" cannot be combined with allow_credentials"),
        "{errs:?}"
    );
    assert!(has(21, "a route needs path or path_prefix"), "{errs:?}");
}

#[test]
fn overlapping_routes_are_refused() {
    let src = "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\nupstreams: [{name: api, targets: [\"127.0.0.1:1\"]}]\nroutes:\n  - id: a\n    match: {path: /x}\n    upstream: api\n  - id: b\n    match: {path: /x}\n    upstream: api\ndefaults: {authenticate: {anonymous: true}}\n";
    let errs = errors(src);
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 9 && m.contains("\"a\", \"b\" match the same requests")),
        "{errs:?}"
    );
}

#[test]
fn admin_must_stay_on_loopback_unless_allowed() {
    let base = "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\n";
    let errs = errors(&format!("{base}admin: {{address: \"0.0.0.0:9901\"}}\n"));
    assert!(errs[0].2.contains("not on a loopback address"), "{errs:?}");
    let ok = compile(&format!(
        "{base}admin: {{address: \"0.0.0.0:9901\", allow_remote: true}}\n"
    ))
    .unwrap();
    assert!(ok.admin.is_some());
}

#[test]
fn version_and_shape() {
    assert!(
        errors("version: 2\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\n")[0]
            .2
            .contains("unsupported version 2")
    );
    assert!(errors("- a\n- b\n")[0].2.contains("must be a mapping"));
    assert!(
        errors("version: 1\nlisteners: []\n")[0]
            .2
            .contains("no listener")
    );
    let e = compile("version: 1\nlisteners: [\n").unwrap_err();
    assert!(e.diagnostics[0].message.starts_with("invalid YAML"));
}

#[test]
fn security_headers_policy() {
    let src = "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\nupstreams: [{name: api, targets: [\"127.0.0.1:1\"]}]\ndefaults:\n  security_headers:\n    frame_options: same_origin\n    referrer_policy: strict-origin\n    set: {permissions-policy: \"camera=()\"}\n  authenticate: {anonymous: true}\nroutes:\n  - id: a\n    match: {path: /x}\n    upstream: api\n";
    let c = compile(src).unwrap();
    let FilterSpec::SecurityHeaders(h) = c.routes[0].filters.last().unwrap() else {
        panic!("security headers are last")
    };
    let get = |n: &str| {
        h.set
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
    };
    assert_eq!(get("x-frame-options").as_deref(), Some("SAMEORIGIN"));
    assert_eq!(get("referrer-policy").as_deref(), Some("strict-origin"));
    assert_eq!(get("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(get("permissions-policy").as_deref(), Some("camera=()"));
    assert_eq!(
        h.hsts.as_ref().unwrap(),
        "max-age=31536000; includeSubDomains"
    );

    let bad = "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\ndefaults:\n  security_headers:\n    referrer_policy: sometimes\n    set: {content-length: \"5\"}\n";
    let errs = errors(bad);
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 5 && m.contains("not a referrer policy")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 6 && m.contains("cannot be set")),
        "{errs:?}"
    );
}

mod tls {
    use super::*;

    fn write_cert(dir: &Path, name: &str, hosts: &[&str]) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            hosts.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    #[test]
    fn certificates_load_with_their_names_and_mismatches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_cert(dir.path(), "a", &["a.example.com", "*.a.example.com"]);
        write_cert(dir.path(), "b", &["b.example.com"]);
        let src = "version: 1\nlisteners:\n  - name: tls\n    address: \"127.0.0.1:0\"\n    tls:\n      certificates:\n        - {cert: a.pem, key: a.key}\n        - {cert: b.pem, key: b.key}\n";
        let c = load_str(src, Arc::from("t.yaml"), dir.path()).unwrap();
        let tls = c.listeners[0].tls.as_ref().unwrap();
        assert_eq!(
            tls.certificates[0].names,
            ["a.example.com", "*.a.example.com"]
        );
        assert_eq!(tls.certificates[1].names, ["b.example.com"]);

        let mismatched = src.replace("{cert: b.pem, key: b.key}", "{cert: b.pem, key: a.key}");
        let err = load_str(&mismatched, Arc::from("t.yaml"), dir.path()).unwrap_err();
        assert_eq!(err.diagnostics[0].pos.unwrap().line, 8);
        assert!(err.diagnostics[0].message.contains("does not fit"), "{err}");

        let missing = src.replace("a.pem", "nope.pem");
        let err = load_str(&missing, Arc::from("t.yaml"), dir.path()).unwrap_err();
        assert!(
            err.diagnostics[0]
                .message
                .contains("cannot read the certificate file"),
            "{err}"
        );
    }
}

const AUTH_BASE: &str = "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\nupstreams: [{name: api, targets: [\"127.0.0.1:1\"]}]\n";

#[test]
fn every_route_needs_an_authentication_policy() {
    let errs = errors(&format!(
        "{AUTH_BASE}routes:\n  - id: open\n    match: {{path: /x}}\n    upstream: api\n"
    ));
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 5 && m.contains("no authentication policy")),
        "{errs:?}"
    );
    // An explicit public route is fine, and needs no store.
    let c = compile(&format!(
        "{AUTH_BASE}routes:\n  - id: open\n    match: {{path: /x}}\n    upstream: api\n    filters: [{{kind: authenticate, anonymous: true}}]\n"
    ))
    .unwrap();
    assert!(!c.authentication.store_in_use);
}

#[test]
fn authentication_policies_are_checked() {
    let src = format!(
        "{AUTH_BASE}authentication:\n  api_keys: {{prefix: \"P_\", header: authorization}}\n  lockout: {{max_failures: 0}}\nroutes:\n  - id: a\n    match: {{path: /a}}\n    upstream: api\n    filters:\n      - {{kind: authenticate, methods: [api_kye]}}\n  - id: b\n    match: {{path: /b}}\n    upstream: api\n    filters:\n      - {{kind: authenticate}}\n  - id: c\n    match: {{path: /c}}\n    upstream: api\n    filters:\n      - {{kind: authenticate, anonymous: true, scopes: [x]}}\n  - id: d\n    match: {{path: /d}}\n    upstream: api\n    filters:\n      - {{kind: authenticate, methods: [api_key]}}\n      - {{kind: cors, allow_origins: [\"https://a.example\"]}}\n"
    );
    let errs = errors(&src);
    let has = |line: usize, text: &str| errs.iter().any(|(l, _, m)| *l == line && m.contains(text));
    assert!(has(5, "is not a key prefix"), "{errs:?}");
    assert!(has(5, "cannot be Authorization"), "{errs:?}");
    assert!(has(6, "max_failures must be at least 1"), "{errs:?}");
    assert!(
        has(12, "unknown authentication method \"api_kye\""),
        "{errs:?}"
    );
    assert!(has(17, "no method is accepted"), "{errs:?}");
    assert!(has(22, "anonymous requests hold no scopes"), "{errs:?}");
    assert!(has(27, "runs before cors"), "{errs:?}");
    let hint = compile(&src).unwrap_err().to_string();
    assert!(hint.contains("did you mean \"api_key\""), "{hint}");
}

#[test]
fn an_in_memory_store_gets_a_secret_of_its_own() {
    let c = compile(&format!(
        "{AUTH_BASE}authentication: {{store: {{sqlite: \":memory:\"}}}}\ndefaults: {{authenticate: {{methods: [api_key]}}}}\nroutes:\n  - id: a\n    match: {{path: /a}}\n    upstream: api\n"
    ))
    .unwrap();
    assert_eq!(c.authentication.store, StoreLocation::Memory);
    assert!(c.authentication.store_in_use);
    assert_eq!(c.authentication.key_secret, SecretSource::Ephemeral);
}

#[test]
fn jwt_issuers_are_checked() {
    let src = format!(
        "{AUTH_BASE}authentication:\n  jwt:\n    - name: a\n      issuer: https://id.example.com\n      audiences: []\n      algorithms: [none, HS256, RS257]\n      keys: {{jwks_url: \"http://id.example.com/jwks\"}}\n    - name: b\n      issuer: https://id.example.com\n      audiences: [api]\n      algorithms: [RS256]\n      keys: {{secret: {{env: JWT_SECRET}}}}\n      clock_skew: 1h\n    - name: c\n      issuer: https://c.example.com\n      audiences: [api]\n      keys: {{}}\nroutes:\n  - id: a\n    match: {{path: /a}}\n    upstream: api\n    filters: [{{kind: authenticate, methods: [\"jwt:z\"]}}]\n"
    );
    let errs = errors(&src);
    let has = |text: &str| errs.iter().any(|(_, _, m)| m.contains(text));
    assert!(has("a token's audience must be checked"), "{errs:?}");
    assert!(has("\"none\") are never accepted"), "{errs:?}");
    assert!(has("unknown algorithm \"RS257\""), "{errs:?}");
    assert!(has("HS algorithms need keys.secret"), "{errs:?}");
    assert!(has("keys must be fetched over https"), "{errs:?}");
    assert!(
        has("a shared secret verifies HS algorithms only"),
        "{errs:?}"
    );
    assert!(has("the clock skew is at most 5m"), "{errs:?}");
    assert!(has("exactly one key source"), "{errs:?}");
    assert!(has("unknown authentication method \"jwt:z\""), "{errs:?}");

    let ok = compile(&format!(
        "{AUTH_BASE}authentication:\n  jwt:\n    - name: corp\n      issuer: https://id.example.com\n      audiences: [api]\n      keys: {{oidc_discovery: \"https://id.example.com/\"}}\ndefaults: {{authenticate: {{methods: [api_key, \"jwt:corp\"], require: all}}}}\nroutes:\n  - id: a\n    match: {{path: /a}}\n    upstream: api\n"
    ))
    .unwrap();
    let FilterSpec::Authenticate(p) = &ok.routes[0].filters[1] else {
        panic!("authenticate comes after limits")
    };
    assert_eq!(p.methods, [AuthMethod::ApiKey, AuthMethod::Jwt(0)]);
    assert!(p.require_all);
    let corp = &ok.authentication.jwt[0];
    assert_eq!(
        corp.keys,
        JwtKeySource::OidcDiscovery("https://id.example.com".into())
    );
    assert_eq!(corp.algorithms, ["RS256", "PS256", "ES256", "EdDSA"]);
    assert_eq!(corp.clock_skew, std::time::Duration::from_secs(30));
}

#[test]
fn certificate_only_routes_need_a_listener_that_asks_for_certificates() {
    let errs = errors(&format!(
        "{AUTH_BASE}routes:\n  - id: partners\n    match: {{path: /p}}\n    upstream: api\n    filters: [{{kind: authenticate, methods: [mtls]}}]\n"
    ));
    assert!(
        errs.iter().any(|(l, _, m)| *l == 5
            && m.contains("needs a client certificate, but listener \"m\" asks for none")),
        "{errs:?}"
    );
    // Mixed with another method it can still be entered.
    compile(&format!(
        "{AUTH_BASE}routes:\n  - id: partners\n    match: {{path: /p}}\n    upstream: api\n    filters: [{{kind: authenticate, methods: [mtls, api_key]}}]\n"
    ))
    .unwrap();
}
