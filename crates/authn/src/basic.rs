//! HTTP Basic for legacy clients: argon2id password hashes, with a short
//! cache of successful verifications so a client that sends the same
//! credentials on every request does not pay the hash every time.
//!
//! Hashing is deliberately slow, so verifications run on blocking threads
//! and at most a few at once; an unknown username costs the same as a wrong
//! password, so responses do not reveal which usernames exist.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use portcullis_config::runtime::AuthMethod;
use portcullis_store::Snapshot;
use sha2::{Digest, Sha256};

use crate::cache::ExpiringCache;
use crate::verify::{Check, Identity};

/// How long a verified username/password pair is remembered (seconds).
const CACHE_SECONDS: i64 = 60;
const CACHE_CAPACITY: usize = 10_000;

/// An argon2id hash (PHC string) of a new password.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("portcullis-dummy-password").unwrap_or_default())
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// `Authorization: Basic` credentials, if the request carries them.
fn credentials(h: &HeaderMap) -> Result<Option<(String, String)>, &'static str> {
    let Some(v) = h.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let Ok(text) = v.to_str() else {
        return Ok(None);
    };
    let Some((scheme, rest)) = text.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    if h.get_all(AUTHORIZATION).iter().count() > 1 {
        return Err("basic-ambiguous");
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| "basic-malformed")?;
    let text = String::from_utf8(raw).map_err(|_| "basic-malformed")?;
    let (user, pass) = text.split_once(':').ok_or("basic-malformed")?;
    Ok(Some((user.to_owned(), pass.to_owned())))
}

pub struct BasicAuth {
    /// Cache key (hash of username, password and stored hash) -> expiry.
    cache: ExpiringCache<()>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Default for BasicAuth {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        BasicAuth {
            cache: ExpiringCache::new(CACHE_CAPACITY),
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }
}

fn invalid(reason: &'static str, user: Option<&str>) -> Check {
    Check::Invalid {
        reason,
        masked: match user {
            Some(u) => format!("user {u}"),
            None => "***".to_owned(),
        },
        credential_id: user.map(|u| format!("basic:{u}")),
    }
}

impl BasicAuth {
    /// Callers box this future: it waits on a blocking thread, and inline
    /// it would enlarge the future of every request, cached ones too.
    async fn slow_verify(&self, password: String, hash: String) -> bool {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false)
    }

    pub async fn check(&self, h: &HeaderMap, snapshot: Option<&Snapshot>) -> Check {
        let (user, pass) = match credentials(h) {
            Ok(None) => return Check::Absent,
            Ok(Some(c)) => c,
            Err(reason) => return invalid(reason, None),
        };
        let shown = (user.len() <= 64 && user.bytes().all(|b| b.is_ascii_graphic()))
            .then_some(user.as_str());
        let Some(entry) = snapshot.and_then(|s| s.basic(&user)) else {
            // The same work as a wrong password.
            Box::pin(self.slow_verify(pass, dummy_hash().to_owned())).await;
            return invalid("unknown-user", shown);
        };
        let mut d = Sha256::new();
        for part in [
            user.as_bytes(),
            pass.as_bytes(),
            entry.password_hash.as_bytes(),
        ] {
            d.update((part.len() as u64).to_be_bytes());
            d.update(part);
        }
        let key: [u8; 32] = d.finalize().into();
        let now = portcullis_store::now();
        if self.cache.get(&key, now).is_none() {
            if !Box::pin(self.slow_verify(pass, entry.password_hash.clone())).await {
                return invalid("wrong-password", shown);
            }
            self.cache.insert(key, (), now + CACHE_SECONDS, now);
        }
        Check::Valid(Identity {
            consumer: entry.consumer.clone(),
            method: AuthMethod::Basic,
            scopes: Vec::new(),
            expires_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn credentials_are_parsed_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(credentials(&h), Ok(None));
        h.insert(AUTHORIZATION, "Basic dXNlcjpwYXNzOndvcmQ=".parse().unwrap());
        assert_eq!(
            credentials(&h),
            Ok(Some(("user".into(), "pass:word".into())))
        );
        h.insert(AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(credentials(&h), Err("basic-malformed"));
        h.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(credentials(&h), Ok(None));
    }
}
