//! OAuth 2.0 token introspection (RFC 7662) for opaque bearer tokens.
//!
//! The gateway asks the authorization server with its client credentials,
//! honours `active`, `scope` and `exp`, and remembers the answer: an active
//! token no longer than it lives (and the configured TTL), an inactive one
//! briefly. Concurrent requests with the same token share one lookup. If
//! the server cannot be asked, the request is refused (503), never let
//! through.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use portcullis_config::runtime::{AuthMethod, Introspection};
use portcullis_store::Consumer;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::cache::ExpiringCache;
use crate::jwt::{fetch, invalid, safe, strings};
use crate::verify::{Check, Identity};

const CACHE_CAPACITY: usize = 50_000;

/// What the server said about a token.
#[derive(Clone, Debug)]
enum Answer {
    Active(Identity),
    Inactive(&'static str),
    Unavailable,
}

/// A lookup in flight that concurrent requests for the same token share:
/// the answer and until when it may be reused.
type Lookup = Arc<OnceCell<(Answer, i64)>>;

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct Introspector {
    pub config: Arc<Introspection>,
    index: usize,
    authorization: String,
    cache: ExpiringCache<Answer>,
    inflight: Mutex<HashMap<[u8; 32], Lookup>>,
    /// Calls made to the endpoint (for tests and metrics).
    pub calls: AtomicU64,
}

impl Introspector {
    pub fn new(config: Arc<Introspection>, index: usize) -> Result<Introspector, String> {
        let secret = crate::secret::load_text(&config.client_secret)?;
        // RFC 6749 2.3.1: both parts form-encoded, then Basic.
        let pair = format!(
            "{}:{}",
            form_encode(&config.client_id),
            form_encode(&secret)
        );
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        Ok(Introspector {
            config,
            index,
            authorization,
            cache: ExpiringCache::new(CACHE_CAPACITY),
            inflight: Mutex::default(),
            calls: AtomicU64::new(0),
        })
    }

    async fn ask(&self, token: &str, now: i64) -> (Answer, i64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let form = format!("token={}&token_type_hint=access_token", form_encode(token));
        let body = match fetch::post_form(
            &self.config.endpoint,
            &self.authorization,
            form,
            self.config.timeout,
        )
        .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(introspection = %self.config.name, error = %e, "token introspection failed");
                return (Answer::Unavailable, now);
            }
        };
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            tracing::warn!(introspection = %self.config.name, "the introspection answer is not JSON");
            return (Answer::Unavailable, now);
        };
        let negative = now + i64::try_from(self.config.negative_cache_ttl.as_secs()).unwrap_or(0);
        if v.get("active").and_then(Value::as_bool) != Some(true) {
            return (Answer::Inactive("token-inactive"), negative);
        }
        let exp = v.get("exp").and_then(Value::as_i64);
        if exp.is_some_and(|e| e <= now) {
            return (Answer::Inactive("token-expired"), negative);
        }
        if !self.config.audiences.is_empty() {
            let aud = strings(v.get("aud"));
            if !aud.iter().any(|a| self.config.audiences.contains(a)) {
                return (Answer::Inactive("wrong-audience"), negative);
            }
        }
        let Some(subject) = ["sub", "username", "client_id"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .filter(|s| safe(s))
        else {
            return (Answer::Inactive("no-consumer-claim"), negative);
        };
        let ttl = i64::try_from(self.config.cache_ttl.as_secs()).unwrap_or(0);
        let until = exp.map_or(now + ttl, |e| e.min(now + ttl));
        let identity = Identity {
            consumer: Arc::new(Consumer {
                id: subject.to_owned(),
                name: subject.to_owned(),
                groups: Vec::new(),
                metadata: BTreeMap::from([(
                    "introspection".to_owned(),
                    self.config.name.to_string(),
                )]),
                created_at: 0,
            }),
            method: AuthMethod::Introspection(self.index),
            expires_at: exp,
            scopes: strings(v.get("scope"))
                .into_iter()
                .filter(|s| safe(s))
                .collect(),
        };
        (Answer::Active(identity), until)
    }

    /// The answer for a token: cached, shared with a lookup in flight, or
    /// asked now.
    async fn answer(&self, token: &str) -> Answer {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = portcullis_store::now();
        if let Some(answer) = self.cache.get(&digest, now) {
            return answer;
        }
        let cell = self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(digest)
            .or_default()
            .clone();
        // Boxed: the request to the server is the rare path, and inline
        // it would enlarge every request's future, cached answers too.
        let (answer, until) = Box::pin(cell.get_or_init(|| self.ask(token, now)))
            .await
            .clone();
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&digest);
        self.cache.insert(digest, answer.clone(), until, now);
        answer
    }
}

/// The introspection endpoints of a configuration.
#[derive(Default)]
pub struct IntrospectionAuth {
    pub endpoints: Vec<Arc<Introspector>>,
}

impl IntrospectionAuth {
    /// Asks the accepted endpoints in turn until one knows the token.
    pub async fn check(&self, token: &str, accepted: &[usize]) -> Check {
        let mut unavailable = false;
        let mut reason = "token-inactive";
        for i in accepted {
            let Some(e) = self.endpoints.get(*i) else {
                continue;
            };
            match e.answer(token).await {
                Answer::Active(id) => return Check::Valid(id),
                Answer::Inactive(r) => reason = r,
                Answer::Unavailable => unavailable = true,
            }
        }
        if unavailable {
            return Check::Unavailable {
                reason: "introspection-unavailable",
            };
        }
        invalid(reason, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form_encode("a b+c/d"), "a%20b%2Bc%2Fd");
        assert_eq!(form_encode("Az09-._~"), "Az09-._~");
    }
}
