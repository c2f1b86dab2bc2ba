//! JWT bearer tokens: per issuer, the allowed algorithms (never `none`, HS
//! only with a configured secret), `iss` and `aud`, `exp`/`nbf`/`iat` with
//! bounded clock skew, required claims, and claims mapped to the caller.
//! Verified tokens are cached until they expire, keyed by their SHA-256.

pub mod fetch;
pub mod keys;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use portcullis_config::runtime::{AuthMethod, JwtIssuer};
use portcullis_store::Consumer;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::cache::ExpiringCache;
use crate::verify::{Check, Identity};
pub use keys::IssuerKeys;

const TOKEN_CACHE_CAPACITY: usize = 65_536;

/// Tokens longer than this are refused unread.
const MAX_TOKEN: usize = 8 * 1024;

/// Whether a bearer token is shaped like a JWT (three parts, a header that
/// decodes); other tokens are opaque and go to introspection.
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2 && jsonwebtoken::decode_header(token).is_ok()
}

/// The bearer token of a request, if it carries one.
pub(crate) fn bearer(h: &HeaderMap) -> Result<Option<&str>, ()> {
    let mut values = h.get_all(AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let text = v.to_str().map_err(|_| ())?.trim();
    let Some((scheme, token)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    if values.next().is_some() {
        return Err(());
    }
    Ok(Some(token.trim()))
}

fn algorithm(name: &str) -> Option<Algorithm> {
    name.parse().ok()
}

pub(crate) fn invalid(reason: &'static str, token: &str) -> Check {
    Check::Invalid {
        reason,
        masked: format!("token sha256:{}", &fingerprint(token)),
        credential_id: None,
    }
}

/// A short, irreversible name for a token in logs.
pub fn fingerprint(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(serde::Deserialize)]
struct Unverified {
    #[serde(default)]
    iss: Option<String>,
}

/// Strings from a claim that is a space-separated string or a list.
pub(crate) fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Printable, header-safe, short: what identity headers may carry.
pub(crate) fn safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// JWT verification for every issuer of a configuration.
pub struct JwtAuth {
    pub issuers: Vec<Arc<IssuerKeys>>,
    /// Verified tokens: (issuer index, identity), until the token expires.
    cache: ExpiringCache<(usize, Identity)>,
}

impl JwtAuth {
    pub fn new(issuers: Vec<Arc<IssuerKeys>>) -> JwtAuth {
        JwtAuth {
            issuers,
            cache: ExpiringCache::new(TOKEN_CACHE_CAPACITY),
        }
    }

    /// Checks a bearer token against the issuers `accepted` (indexes into
    /// the configuration's issuer list).
    pub async fn check(&self, token: &str, accepted: &[usize]) -> Check {
        if token.len() > MAX_TOKEN {
            return invalid("token-too-large", token);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = portcullis_store::now();
        if let Some((issuer, identity)) = self.cache.get(&digest, now)
            && accepted.contains(&issuer)
        {
            return Check::Valid(identity);
        }
        // Boxed: verification (and a key fetch it may wait for) is the rare
        // path, and inline it would enlarge every request's future.
        let checked = Box::pin(self.verify(token, accepted, now)).await;
        if let Check::Valid(identity) = &checked
            && let AuthMethod::Jwt(index) = identity.method
        {
            let exp = identity.expires_at.unwrap_or(now);
            self.cache
                .insert(digest, (index, identity.clone()), exp, now);
        }
        checked
    }

    /// Verifies a token without the cache (signature, claims, mapping).
    pub async fn verify(&self, token: &str, accepted: &[usize], now: i64) -> Check {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return invalid("token-malformed", token);
        };
        // The issuer is read before verification only to pick its keys;
        // verification then requires exactly that `iss`.
        let Ok(claims) = jsonwebtoken::dangerous::insecure_decode_claims::<Unverified>(token)
        else {
            return invalid("token-malformed", token);
        };
        let Some(&index) = accepted.iter().find(|&&i| {
            self.issuers
                .get(i)
                .is_some_and(|k| Some(k.config.issuer.as_str()) == claims.iss.as_deref())
        }) else {
            return invalid("issuer-not-accepted", token);
        };
        let Some(keys) = self.issuers.get(index) else {
            return invalid("issuer-not-accepted", token);
        };
        let cfg = &keys.config;
        if !cfg
            .algorithms
            .iter()
            .any(|a| algorithm(a) == Some(header.alg))
        {
            return invalid("algorithm-not-allowed", token);
        }
        let kid = header.kid.as_deref();
        if let Some(k) = kid
            && !keys.load().has_kid(k)
            && !(keys.refetch_for_unknown_kid().await && keys.load().has_kid(k))
        {
            return invalid("unknown-kid", token);
        }
        let validation = validation(cfg, header.alg);
        let set = keys.load();
        let mut outcome = Err(ErrorKind::InvalidSignature);
        for key in set.candidates(kid, header.alg) {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(e) => outcome = Err(e.into_kind()),
            }
        }
        let claims = match outcome {
            Ok(c) => c,
            Err(kind) => return invalid(reason(&kind), token),
        };
        let skew = i64::try_from(cfg.clock_skew.as_secs()).unwrap_or(0);
        if claims
            .get("iat")
            .and_then(Value::as_i64)
            .is_some_and(|iat| iat > now + skew)
        {
            return invalid("issued-in-the-future", token);
        }
        if cfg.required_claims.iter().any(|c| !claims.contains_key(c)) {
            return invalid("missing-claim", token);
        }
        let Some(subject) = claims
            .get(&cfg.consumer_claim)
            .and_then(Value::as_str)
            .filter(|s| safe(s))
        else {
            return invalid("no-consumer-claim", token);
        };
        let pick = |names: &[String]| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for n in names {
                for s in strings(claims.get(n)) {
                    if safe(&s) && !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
            out
        };
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
        Check::Valid(Identity {
            expires_at: Some(exp),
            consumer: Arc::new(Consumer {
                id: subject.to_owned(),
                name: subject.to_owned(),
                groups: pick(&cfg.group_claims),
                metadata: BTreeMap::from([("issuer".to_owned(), cfg.name.to_string())]),
                created_at: 0,
            }),
            method: AuthMethod::Jwt(index),
            scopes: pick(&cfg.scope_claims),
        })
    }
}

fn validation(cfg: &JwtIssuer, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.leeway = cfg.clock_skew.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.set_issuer(&[cfg.issuer.as_str()]);
    v.set_audience(&cfg.audiences);
    let mut required = vec!["exp", "iss", "aud"];
    for c in &cfg.required_claims {
        if matches!(c.as_str(), "sub" | "nbf") {
            required.push(c.as_str());
        }
    }
    v.set_required_spec_claims(&required);
    v
}

/// Reason codes for the log; the response only says `invalid_token`.
fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "token-expired",
        ErrorKind::ImmatureSignature => "token-not-yet-valid",
        ErrorKind::InvalidAudience => "wrong-audience",
        ErrorKind::InvalidIssuer => "wrong-issuer",
        ErrorKind::InvalidSignature => "bad-signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "algorithm-not-allowed",
        ErrorKind::MissingRequiredClaim(_) => "missing-claim",
        _ => "token-invalid",
    }
}
