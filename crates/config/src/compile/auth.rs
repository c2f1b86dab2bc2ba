//! Authentication: the shared settings and each route's policy.

use std::path::{Path, PathBuf};

use http::HeaderName;

use super::Cx;
use super::filters::FRAMING_HEADERS;
use crate::diag::{did_you_mean, quoted_list};
use crate::file::{AuthenticateFile, AuthenticationFile, RequireFile, SecretFile};
use crate::runtime::{
    AuthMethod, AuthPolicy, Authentication, IdentityHeaders, Lockout, SecretSource, StoreLocation,
};

/// The store file used when a route needs one and none is configured.
pub const DEFAULT_STORE_FILE: &str = "portcullis.db";

/// Compiles the shared settings. `store_needed` says whether some route
/// accepts a credential kept in the store.
pub(super) fn authentication(
    f: &AuthenticationFile,
    store_needed: bool,
    jwt: Vec<std::sync::Arc<crate::runtime::JwtIssuer>>,
    introspection: Vec<std::sync::Arc<crate::runtime::Introspection>>,
    cx: &mut Cx<'_>,
) -> Authentication {
    let store = match &f.store {
        Some(s) if s.sqlite.as_os_str() == ":memory:" => StoreLocation::Memory,
        Some(s) => {
            if s.sqlite.as_os_str().is_empty() {
                cx.d.error("/authentication/store/sqlite", "the store path is empty");
            }
            StoreLocation::Sqlite(cx.resolve(&s.sqlite))
        }
        None => StoreLocation::Sqlite(cx.resolve(Path::new(DEFAULT_STORE_FILE))),
    };
    let key_secret = match (&f.key_secret, &store) {
        (Some(SecretFile::File(p)), _) => SecretSource::File(cx.resolve(p)),
        (Some(SecretFile::Env(v)), _) => {
            let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                cx.d.error(
                    "/authentication/key_secret/env",
                    format!("\"{v}\" is not an environment variable name"),
                );
            }
            SecretSource::Env(v.clone())
        }
        (None, StoreLocation::Sqlite(p)) => {
            let mut name = p.clone().into_os_string();
            name.push(".key");
            SecretSource::File(PathBuf::from(name))
        }
        (None, StoreLocation::Memory) => SecretSource::Ephemeral,
    };
    let prefix = &f.api_keys.prefix;
    if !(2..=8).contains(&prefix.len())
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        cx.d.error_hint(
            "/authentication/api_keys/prefix",
            format!("\"{prefix}\" is not a key prefix"),
            "use 2 to 8 lower-case letters or digits, like \"pcl\"",
        );
    }
    let key_header = header(&f.api_keys.header, "/authentication/api_keys/header", cx);
    if key_header == http::header::AUTHORIZATION {
        cx.d.error_hint(
            "/authentication/api_keys/header",
            "the key header cannot be Authorization",
            "keys are always accepted as \"Authorization: ApiKey <key>\"; pick another header such as X-API-Key",
        );
    }
    let ih = &f.identity_headers;
    let at = "/authentication/identity_headers";
    let identity = IdentityHeaders {
        consumer_id: header(&ih.consumer_id, &format!("{at}/consumer_id"), cx),
        consumer_name: header(&ih.consumer_name, &format!("{at}/consumer_name"), cx),
        groups: header(&ih.groups, &format!("{at}/groups"), cx),
        scopes: header(&ih.scopes, &format!("{at}/scopes"), cx),
        method: header(&ih.method, &format!("{at}/method"), cx),
        strip: Vec::new(),
    };
    let mut strip: Vec<HeaderName> = ih
        .strip
        .iter()
        .enumerate()
        .map(|(i, h)| header(h, &format!("{at}/strip/{i}"), cx))
        .collect();
    for h in [
        &identity.consumer_id,
        &identity.consumer_name,
        &identity.groups,
        &identity.scopes,
        &identity.method,
    ] {
        if !strip.contains(h) {
            strip.push(h.clone());
        }
    }
    let lockout = f.lockout.enabled.then_some(Lockout {
        max_failures: f.lockout.max_failures,
        window: f.lockout.window.0,
        duration: f.lockout.duration.0,
    });
    if let Some(l) = &lockout {
        if l.max_failures == 0 {
            cx.d.error(
                "/authentication/lockout/max_failures",
                "max_failures must be at least 1",
            );
        }
        if l.window.is_zero() || l.duration.is_zero() {
            cx.d.error_hint(
                "/authentication/lockout",
                "the lock-out window and duration must be longer than zero",
                "set enabled: false to turn lock-out off",
            );
        }
    }
    Authentication {
        store,
        store_in_use: f.store.is_some() || store_needed,
        key_secret,
        key_prefix: prefix.clone(),
        key_header,
        identity: IdentityHeaders { strip, ..identity },
        lockout,
        jwt,
        introspection,
    }
}

/// A header name the gateway sets or reads; errors point at `at`.
fn header(name: &str, at: &str, cx: &mut Cx<'_>) -> HeaderName {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(n) if FRAMING_HEADERS.contains(&n.as_str()) || n == http::header::HOST => {
            cx.d.error(at, format!("\"{name}\" is a framing header"));
            n
        }
        Ok(n) => n,
        Err(_) => {
            cx.d.error(at, format!("\"{name}\" is not a header name"));
            HeaderName::from_static("x-invalid")
        }
    }
}

/// RFC 6749 scope-token characters.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// The names of the configured token verifiers, for parsing methods.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Verifiers<'a> {
    pub(crate) jwt: &'a [&'a str],
    pub(crate) introspection: &'a [&'a str],
}

/// A method as written: "api_key", "basic", "jwt:<issuer name>" or
/// "introspection:<name>".
fn parse_method(m: &str, v: Verifiers<'_>) -> Option<AuthMethod> {
    let find = |list: &[&str], name: &str| list.iter().position(|i| *i == name);
    match m.split_once(':') {
        None if m == "api_key" => Some(AuthMethod::ApiKey),
        None if m == "basic" => Some(AuthMethod::Basic),
        None if m == "mtls" => Some(AuthMethod::Mtls),
        Some(("jwt", name)) => find(v.jwt, name).map(AuthMethod::Jwt),
        Some(("introspection", name)) => find(v.introspection, name).map(AuthMethod::Introspection),
        _ => None,
    }
}

pub(super) fn policy(
    f: &AuthenticateFile,
    issuers: Verifiers<'_>,
    at: &str,
    cx: &mut Cx<'_>,
) -> Option<AuthPolicy> {
    let mut ok = true;
    let mut methods = Vec::new();
    let names: Vec<String> = ["api_key".to_owned(), "basic".to_owned(), "mtls".to_owned()]
        .into_iter()
        .chain(issuers.jwt.iter().map(|i| format!("jwt:{i}")))
        .chain(
            issuers
                .introspection
                .iter()
                .map(|i| format!("introspection:{i}")),
        )
        .collect();
    for (i, m) in f.methods.iter().enumerate() {
        match parse_method(m, issuers) {
            Some(method) if methods.contains(&method) => {
                cx.d.error(
                    &format!("{at}/methods/{i}"),
                    format!("the method \"{m}\" is listed twice"),
                );
                ok = false;
            }
            Some(method) => methods.push(method),
            None => {
                let hint = match did_you_mean(m, names.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None if issuers.jwt.is_empty() && m.starts_with("jwt") => {
                        "define the issuer under authentication.jwt and name it as jwt:<name>"
                            .to_owned()
                    }
                    None => format!(
                        "the methods are {}",
                        quoted_list(names.iter().map(String::as_str))
                    ),
                };
                cx.d.error_hint(
                    &format!("{at}/methods/{i}"),
                    format!("unknown authentication method \"{m}\""),
                    hint,
                );
                ok = false;
            }
        }
    }
    if f.methods.is_empty() && !f.anonymous {
        cx.d.error_hint(
            at,
            "no method is accepted and anonymous access is off: every request would be refused",
            "list methods, like [api_key], or set anonymous: true for a public route",
        );
        ok = false;
    }
    if f.anonymous && !f.scopes.is_empty() {
        cx.d.error_hint(
            &format!("{at}/scopes"),
            "required scopes with anonymous: true: anonymous requests hold no scopes",
            "drop anonymous, or the scopes",
        );
        ok = false;
    }
    for (i, s) in f.scopes.iter().enumerate() {
        if !is_scope_token(s) {
            cx.d.error(
                &format!("{at}/scopes/{i}"),
                format!("\"{s}\" is not a scope (no spaces, quotes or backslashes)"),
            );
            ok = false;
        }
    }
    ok.then(|| AuthPolicy {
        methods,
        require_all: f.require == RequireFile::All,
        anonymous: f.anonymous,
        scopes: f.scopes.clone(),
        forward_credential: f.forward_credential,
    })
}
