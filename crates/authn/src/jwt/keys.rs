//! An issuer's verification keys: loaded once (PEM, JWKS file, secret) or
//! fetched from a JWKS URL / OIDC discovery, refreshed in the background,
//! refetched on an unknown `kid` at a bounded rate, and kept when the key
//! server fails (stale-if-error).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use portcullis_config::runtime::{JwtIssuer, JwtKeySource};

use super::fetch;

/// One verification key.
pub struct Key {
    pub kid: Option<String>,
    /// The algorithm the key is pinned to, when the JWK says.
    pub alg: Option<Algorithm>,
    pub key: DecodingKey,
}

/// The keys in force.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
}

impl KeySet {
    /// Keys that may verify a token with this `kid` and algorithm.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |k| {
            let kid_ok = match (kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                // A token without kid is tried against every key.
                (None, _) => true,
                (Some(_), None) => false,
            };
            kid_ok && k.alg.is_none_or(|a| a == alg) && k.key.family() == alg.family()
        })
    }

    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn key_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
    Some(match a {
        KeyAlgorithm::HS256 => Algorithm::HS256,
        KeyAlgorithm::HS384 => Algorithm::HS384,
        KeyAlgorithm::HS512 => Algorithm::HS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Parses a JWKS document. Symmetric (`oct`) keys in a published set are
/// ignored: a key anyone can read must never verify an HS token.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(
            jwk.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
        ) {
            continue;
        }
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
        {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg: jwk.common.key_algorithm.and_then(key_algorithm),
            key,
        });
    }
    if keys.is_empty() {
        return Err("the JWKS holds no usable signing key".into());
    }
    Ok(KeySet { keys })
}

fn load_pem(path: &Path) -> Result<Key, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .or_else(|_| DecodingKey::from_ed_pem(&pem))
        .map_err(|_| format!("{}: not an RSA, EC or Ed25519 public key", path.display()))?;
    Ok(Key {
        kid: None,
        alg: None,
        key,
    })
}

/// Where the keys come from at run time.
enum Remote {
    Jwks(String),
    /// The discovery URL; the JWKS URL it names is found on each fetch.
    Discovery(String),
}

/// An issuer's keys, swapped whole on each successful fetch.
pub struct IssuerKeys {
    pub config: Arc<JwtIssuer>,
    current: ArcSwap<KeySet>,
    remote: Option<Remote>,
    /// Serialises fetches; holds when the last fetch for an unknown kid
    /// started (background refreshes do not count against that rate).
    fetch_gate: tokio::sync::Mutex<Option<Instant>>,
    /// Successful key set swaps, to tell waiters someone else fetched.
    generation: AtomicU64,
    /// Fetch attempts (for tests and metrics).
    pub fetches: AtomicU64,
}

impl IssuerKeys {
    /// Loads local keys now; for remote ones, starts the background
    /// refresh (when a runtime is running) and returns at once.
    pub fn new(config: Arc<JwtIssuer>) -> Result<Arc<IssuerKeys>, String> {
        let (set, remote) = match &config.keys {
            JwtKeySource::JwksUrl(u) => (KeySet::default(), Some(Remote::Jwks(u.clone()))),
            JwtKeySource::OidcDiscovery(u) => (
                KeySet::default(),
                Some(Remote::Discovery(format!(
                    "{u}/.well-known/openid-configuration"
                ))),
            ),
            JwtKeySource::PemFiles(paths) => (
                KeySet {
                    keys: paths
                        .iter()
                        .map(|p| load_pem(p))
                        .collect::<Result<_, _>>()?,
                },
                None,
            ),
            JwtKeySource::JwksFile(p) => {
                let body = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                (
                    parse_jwks(&body).map_err(|e| format!("{}: {e}", p.display()))?,
                    None,
                )
            }
            JwtKeySource::Secret(src) => {
                let secret = crate::secret::load_bytes(src)?;
                (
                    KeySet {
                        keys: vec![Key {
                            kid: None,
                            alg: None,
                            key: DecodingKey::from_secret(&secret),
                        }],
                    },
                    None,
                )
            }
        };
        let keys = Arc::new(IssuerKeys {
            config,
            current: ArcSwap::from_pointee(set),
            remote,
            fetch_gate: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
        });
        if keys.remote.is_some()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(refresh_loop(Arc::downgrade(&keys)));
        }
        Ok(keys)
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let url = match &self.remote {
            None => return Err("the keys are not fetched".into()),
            Some(Remote::Jwks(u)) => u.clone(),
            Some(Remote::Discovery(d)) => {
                #[derive(serde::Deserialize)]
                struct Discovery {
                    issuer: String,
                    jwks_uri: String,
                }
                let doc: Discovery = serde_json::from_slice(&fetch::get(d).await?)
                    .map_err(|e| format!("discovery document: {e}"))?;
                if doc.issuer != self.config.issuer {
                    return Err("the discovery document names another issuer".into());
                }
                if portcullis_config::runtime::check_key_url(&doc.jwks_uri).is_err() {
                    return Err(format!(
                        "the discovery document's jwks_uri \"{}\" is not https",
                        doc.jwks_uri
                    ));
                }
                doc.jwks_uri
            }
        };
        parse_jwks(&fetch::get(&url).await?)
    }

    /// Fetches now and swaps the keys in; on failure the old keys stay.
    async fn refresh(&self) -> Result<(), String> {
        let set = self.fetch().await?;
        self.current.store(Arc::new(set));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// For a token whose `kid` is unknown: fetch again, unless a fetch
    /// started less than `min_refetch_interval` ago. Concurrent callers
    /// share one fetch. Returns whether the keys changed.
    pub async fn refetch_for_unknown_kid(&self) -> bool {
        if self.remote.is_none() {
            return false;
        }
        let seen = self.generation.load(Ordering::Acquire);
        let mut last = self.fetch_gate.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.config.min_refetch_interval) {
            return false;
        }
        *last = Some(now);
        match self.refresh().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(issuer = %self.config.name, error = %e, "key refetch failed; the cached keys stay in use");
                false
            }
        }
    }
}

/// Fetches at start, then every refresh interval; after a failure it
/// retries sooner (1s doubling up to the interval), keeping the old keys.
async fn refresh_loop(keys: Weak<IssuerKeys>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = {
            let Some(k) = keys.upgrade() else { return };
            let result = {
                let _serialised = k.fetch_gate.lock().await;
                k.refresh().await
            };
            match result {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    k.config.refresh_interval
                }
                Err(e) => {
                    tracing::warn!(issuer = %k.config.name, error = %e, "cannot fetch the issuer's keys; the cached keys stay in use");
                    let w = backoff.min(k.config.refresh_interval);
                    backoff = (backoff * 2).min(k.config.refresh_interval);
                    w
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}
