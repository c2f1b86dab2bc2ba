//! An in-process identity provider for tests: signing keys of every
//! supported kind, a JWKS endpoint that counts its fetches and can be taken
//! down, OIDC discovery, and token minting.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;

struct SigningKey {
    alg: Algorithm,
    key: EncodingKey,
    /// The private key in PKCS#8 PEM (for confusion tests: its public half).
    public_pem: String,
    jwk: Jwk,
    published: bool,
}

#[derive(Default)]
struct State {
    keys: Mutex<BTreeMap<String, SigningKey>>,
    down: AtomicBool,
    jwks_fetches: AtomicUsize,
    next_kid: AtomicUsize,
    /// Opaque tokens and what introspection says of them.
    opaque: Mutex<BTreeMap<String, Value>>,
    introspections: AtomicUsize,
    introspect_delay_ms: AtomicUsize,
}

/// The client credentials the introspection endpoint accepts.
pub const CLIENT_ID: &str = "portcullis";
pub const CLIENT_SECRET: &str = "s3cret-for-introspection";

pub struct Idp {
    pub addr: SocketAddr,
    /// The `iss` of minted tokens: this server's base URL.
    pub issuer: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// base64url without padding, as JWTs use it.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn generate(alg: Algorithm) -> (EncodingKey, String, Vec<u8>) {
    let sig = match alg {
        Algorithm::RS256 | Algorithm::PS256 => &rcgen::PKCS_RSA_SHA256,
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::EdDSA => &rcgen::PKCS_ED25519,
        other => panic!("the test IdP does not generate {other:?} keys"),
    };
    let pair = rcgen::KeyPair::generate_for(sig).unwrap();
    let pem = pair.serialize_pem();
    let key = match alg {
        Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        _ => EncodingKey::from_ed_pem(pem.as_bytes()),
    }
    .unwrap();
    (key, pair.public_key_pem(), pair.public_key_raw().to_vec())
}

impl Idp {
    pub async fn start() -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let state = Arc::new(State::default());
        let st = state.clone();
        let iss = issuer.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let iss = iss.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(req, st.clone(), iss.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Idp {
            addr,
            issuer,
            state,
            task,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// A new key; published in the JWKS when `publish`. Returns its kid.
    pub fn add_key(&self, alg: Algorithm, publish: bool) -> String {
        let n = self.state.next_kid.fetch_add(1, Ordering::SeqCst);
        let kid = format!("k{n}-{alg:?}").to_lowercase();
        let (key, public_pem, raw) = generate(alg);
        let mut jwk = if alg == Algorithm::EdDSA {
            serde_json::from_value(json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": b64url(&raw)
            }))
            .unwrap()
        } else {
            Jwk::from_encoding_key(&key, alg).unwrap()
        };
        jwk.common.key_id = Some(kid.clone());
        self.state.keys.lock().unwrap().insert(
            kid.clone(),
            SigningKey {
                alg,
                key,
                public_pem,
                jwk,
                published: publish,
            },
        );
        kid
    }

    pub fn publish(&self, kid: &str, published: bool) {
        if let Some(k) = self.state.keys.lock().unwrap().get_mut(kid) {
            k.published = published;
        }
    }

    pub fn public_pem(&self, kid: &str) -> String {
        self.state.keys.lock().unwrap()[kid].public_pem.clone()
    }

    /// Signs `claims` with the key `kid` (its algorithm, its kid).
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let keys = self.state.keys.lock().unwrap();
        let k = &keys[kid];
        let mut header = Header::new(k.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &k.key).unwrap()
    }

    /// Standard claims for `aud`: iss, sub, iat, exp in five minutes.
    pub fn claims(&self, aud: &str, sub: &str) -> Value {
        let now = now();
        json!({"iss": self.issuer, "aud": aud, "sub": sub, "iat": now, "exp": now + 300})
    }

    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.issuer)
    }

    /// An opaque token that introspects as active with these claims.
    pub fn issue_opaque(&self, sub: &str, scope: &str, ttl: i64) -> String {
        let n = self.state.next_kid.fetch_add(1, Ordering::SeqCst);
        let token = format!("opaque-{n}-{}", now());
        let claims = json!({"active": true, "sub": sub, "scope": scope, "exp": now() + ttl, "aud": "orders-api"});
        self.state
            .opaque
            .lock()
            .unwrap()
            .insert(token.clone(), claims);
        token
    }

    /// The token introspects as inactive from now on.
    pub fn revoke_opaque(&self, token: &str) {
        self.state.opaque.lock().unwrap().remove(token);
    }

    pub fn introspections(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }

    /// Makes introspection answers wait (to let lookups pile up).
    pub fn set_introspect_delay(&self, ms: usize) {
        self.state.introspect_delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Makes every endpoint answer 503.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn answer(
    req: Request<Incoming>,
    st: Arc<State>,
    issuer: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: Value| {
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = status;
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        Ok(r)
    };
    if st.down.load(Ordering::SeqCst) {
        return reply(StatusCode::SERVICE_UNAVAILABLE, json!({}));
    }
    match req.uri().path() {
        "/jwks" => {
            st.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let keys = st.keys.lock().unwrap();
            let set = JwkSet {
                keys: keys
                    .values()
                    .filter(|k| k.published)
                    .map(|k| k.jwk.clone())
                    .collect(),
            };
            reply(StatusCode::OK, serde_json::to_value(&set).unwrap())
        }
        "/introspect" => {
            st.introspections.fetch_add(1, Ordering::SeqCst);
            let expected = format!(
                "Basic {}",
                base64_std(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
            );
            let authorized = req
                .headers()
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == expected.as_bytes());
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if !authorized {
                return reply(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
            }
            let delay = st.introspect_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay as u64)).await;
            }
            let form = String::from_utf8_lossy(&body).into_owned();
            let token = form
                .split('&')
                .find_map(|p| p.strip_prefix("token="))
                .unwrap_or("");
            let answer = st
                .opaque
                .lock()
                .unwrap()
                .get(token)
                .cloned()
                .unwrap_or(json!({"active": false}));
            reply(StatusCode::OK, answer)
        }
        "/.well-known/openid-configuration" => reply(
            StatusCode::OK,
            json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}),
        ),
        _ => reply(StatusCode::NOT_FOUND, json!({})),
    }
}
