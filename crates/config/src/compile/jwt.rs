//! Token verifiers: JWT issuers (algorithms, key sources, claims and
//! timings) and introspection endpoints.

use std::sync::Arc;
use std::time::Duration;

use super::Cx;
use crate::file::{IntrospectionFile, JwtIssuerFile, SecretFile};
use crate::runtime::{Introspection, JwtIssuer, JwtKeySource, SecretSource, check_key_url};

const ASYMMETRIC: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];
const SYMMETRIC: &[&str] = &["HS256", "HS384", "HS512"];
const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "PS256", "ES256", "EdDSA"];
const MAX_SKEW: Duration = Duration::from_secs(300);

pub(super) fn issuers(files: &[JwtIssuerFile], cx: &mut Cx<'_>) -> Vec<Arc<JwtIssuer>> {
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let at = format!("/authentication/jwt/{i}");
        super::check_name(cx, &format!("{at}/name"), "issuer", &f.name);
        if files.iter().take(i).any(|o| o.name == f.name) {
            cx.d.error(
                &format!("{at}/name"),
                format!("the issuer name \"{}\" is used twice", f.name),
            );
        }
        if f.issuer.is_empty() {
            cx.d.error(&format!("{at}/issuer"), "the issuer is empty");
        }
        if f.audiences.is_empty() || f.audiences.iter().any(String::is_empty) {
            cx.d.error_hint(
                &format!("{at}/audiences"),
                "a token's audience must be checked",
                "list the aud values this gateway's APIs go by",
            );
        }
        let algorithms: Vec<String> = if f.algorithms.is_empty() {
            DEFAULT_ALGORITHMS.iter().map(|s| (*s).to_owned()).collect()
        } else {
            f.algorithms.clone()
        };
        for (j, a) in f.algorithms.iter().enumerate() {
            let aat = format!("{at}/algorithms/{j}");
            if a.eq_ignore_ascii_case("none") {
                cx.d.error(&aat, "unsigned tokens (\"none\") are never accepted");
            } else if !ASYMMETRIC.contains(&a.as_str()) && !SYMMETRIC.contains(&a.as_str()) {
                cx.d.error_hint(
                    &aat,
                    format!("unknown algorithm \"{a}\""),
                    format!("use {}", [ASYMMETRIC, SYMMETRIC].concat().join(", ")),
                );
            }
        }
        let symmetric = algorithms.iter().any(|a| SYMMETRIC.contains(&a.as_str()));
        let asymmetric = algorithms.iter().any(|a| ASYMMETRIC.contains(&a.as_str()));
        let k = &f.keys;
        let sources = [
            k.jwks_url.is_some(),
            k.oidc_discovery.is_some(),
            !k.pem_files.is_empty(),
            k.jwks_file.is_some(),
            k.secret.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources != 1 {
            cx.d.error_hint(
                &format!("{at}/keys"),
                "an issuer needs exactly one key source",
                "set one of jwks_url, oidc_discovery, pem_files, jwks_file or secret",
            );
        }
        // Algorithm confusion: a secret only with HS algorithms, and HS
        // algorithms only with a secret.
        if k.secret.is_some() && asymmetric {
            cx.d.error_hint(
                &format!("{at}/algorithms"),
                "a shared secret verifies HS algorithms only",
                "list only HS256, HS384 or HS512 for this issuer",
            );
        }
        if k.secret.is_none() && symmetric {
            cx.d.error_hint(
                &format!("{at}/algorithms"),
                "HS algorithms need keys.secret",
                "public keys never verify HS tokens (that would be algorithm confusion)",
            );
        }
        for (key, url) in [
            ("jwks_url", &k.jwks_url),
            ("oidc_discovery", &k.oidc_discovery),
        ] {
            if let Some(u) = url
                && let Err(e) = check_key_url(u)
            {
                cx.d.error(&format!("{at}/keys/{key}"), format!("\"{u}\": {e}"));
            }
        }
        let keys = if let Some(u) = &k.jwks_url {
            JwtKeySource::JwksUrl(u.clone())
        } else if let Some(u) = &k.oidc_discovery {
            JwtKeySource::OidcDiscovery(u.trim_end_matches('/').to_owned())
        } else if let Some(p) = &k.jwks_file {
            JwtKeySource::JwksFile(cx.resolve(p))
        } else if let Some(s) = &k.secret {
            JwtKeySource::Secret(match s {
                SecretFile::File(p) => SecretSource::File(cx.resolve(p)),
                SecretFile::Env(v) => SecretSource::Env(v.clone()),
            })
        } else {
            JwtKeySource::PemFiles(k.pem_files.iter().map(|p| cx.resolve(p)).collect())
        };
        let clock_skew = f.clock_skew.map_or(Duration::from_secs(30), |d| d.0);
        if clock_skew > MAX_SKEW {
            cx.d.error(&format!("{at}/clock_skew"), "the clock skew is at most 5m");
        }
        let duration =
            |d: Option<crate::file::DurationStr>, default: u64, key: &str, cx: &mut Cx<'_>| {
                let v = d.map_or(Duration::from_secs(default), |d| d.0);
                if v < Duration::from_secs(1) {
                    cx.d.error(&format!("{at}/{key}"), format!("{key} is at least 1s"));
                }
                v
            };
        let refresh_interval = duration(f.refresh_interval, 600, "refresh_interval", cx);
        let min_refetch_interval = duration(f.min_refetch_interval, 30, "min_refetch_interval", cx);
        out.push(Arc::new(JwtIssuer {
            name: f.name.as_str().into(),
            issuer: f.issuer.clone(),
            audiences: f.audiences.clone(),
            algorithms,
            keys,
            clock_skew,
            required_claims: f.required_claims.clone(),
            consumer_claim: f.claims.consumer.clone(),
            scope_claims: f.claims.scopes.clone(),
            group_claims: f.claims.groups.clone(),
            refresh_interval,
            min_refetch_interval,
        }));
    }
    out
}

pub(super) fn introspection(
    files: &[IntrospectionFile],
    cx: &mut Cx<'_>,
) -> Vec<Arc<Introspection>> {
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let at = format!("/authentication/introspection/{i}");
        super::check_name(cx, &format!("{at}/name"), "introspection", &f.name);
        if files.iter().take(i).any(|o| o.name == f.name) {
            cx.d.error(
                &format!("{at}/name"),
                format!("the introspection name \"{}\" is used twice", f.name),
            );
        }
        if let Err(e) = check_key_url(&f.endpoint) {
            cx.d.error(
                &format!("{at}/endpoint"),
                format!("\"{}\": {}", f.endpoint, e.replace("keys", "tokens")),
            );
        }
        if f.client_id.is_empty() || f.client_id.contains(':') {
            cx.d.error(
                &format!("{at}/client_id"),
                "the client id is empty or holds ':'",
            );
        }
        let secs = |d: Option<crate::file::DurationStr>, default: u64| {
            d.map_or(Duration::from_secs(default), |d| d.0)
        };
        let timeout = secs(f.timeout, 2);
        if timeout.is_zero() || timeout > Duration::from_secs(30) {
            cx.d.error(
                &format!("{at}/timeout"),
                "the timeout is between 1ms and 30s",
            );
        }
        out.push(Arc::new(Introspection {
            name: f.name.as_str().into(),
            endpoint: f.endpoint.clone(),
            client_id: f.client_id.clone(),
            client_secret: match &f.client_secret {
                SecretFile::File(p) => SecretSource::File(cx.resolve(p)),
                SecretFile::Env(v) => SecretSource::Env(v.clone()),
            },
            audiences: f.audiences.clone(),
            cache_ttl: secs(f.cache_ttl, 60),
            negative_cache_ttl: secs(f.negative_cache_ttl, 10),
            timeout,
        }));
    }
    out
}
