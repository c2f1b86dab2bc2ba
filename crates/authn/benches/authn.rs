//! The authentication hot paths: an API key looked up and verified against
//! a store of 10,000 keys; a JWT verified (RS256, ES256, EdDSA) and served
//! from the verified-token cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_authn::AuthServices;
use portcullis_authn::apikey::KeySecret;
use portcullis_authn::manage::{self, KeyRequest};
use portcullis_authn::verify::{self, Check};
use portcullis_store::{SqliteStore, Store};

fn api_key(c: &mut Criterion) {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let secret = KeySecret::generate().unwrap();
    manage::create_consumer(store.as_ref(), "bench", &[], &BTreeMap::new()).unwrap();
    let mut last = String::new();
    for _ in 0..10_000 {
        last = manage::create_key(
            store.as_ref(),
            &secret,
            "pcl",
            "bench",
            &KeyRequest::default(),
        )
        .unwrap()
        .key;
    }
    let dyn_store: Arc<dyn Store> = store;
    let services = AuthServices::with_store(dyn_store, secret.clone(), None).unwrap();
    let snapshot = services.snapshot.as_ref().unwrap().load();
    let settings = portcullis_config::load_str(
        "version: 1\nlisteners: [{name: m, address: \"127.0.0.1:0\"}]\n",
        "bench".into(),
        std::path::Path::new("."),
    )
    .unwrap()
    .authentication;
    let mut h = http::HeaderMap::new();
    h.insert("x-api-key", last.parse().unwrap());
    c.bench_function("api_key/verify_among_10k", |b| {
        b.iter(|| {
            let r = verify::api_key(&h, &settings, Some(&snapshot), &secret);
            assert!(matches!(r, Check::Valid(_)));
        });
    });
}

fn key(alg: Algorithm) -> (EncodingKey, Jwk) {
    let sig = match alg {
        Algorithm::RS256 => &rcgen::PKCS_RSA_SHA256,
        Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        _ => &rcgen::PKCS_ED25519,
    };
    let pair = rcgen::KeyPair::generate_for(sig).unwrap();
    let pem = pair.serialize_pem();
    let (enc, jwk) = match alg {
        Algorithm::RS256 => {
            let k = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
            let j = Jwk::from_encoding_key(&k, alg).unwrap();
            (k, j)
        }
        Algorithm::ES256 => {
            let k = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
            let j = Jwk::from_encoding_key(&k, alg).unwrap();
            (k, j)
        }
        _ => {
            let k = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
            let x = portcullis_testkit::idp::b64url(pair.public_key_raw());
            let j = serde_json::from_value(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": x
            }))
            .unwrap();
            (k, j)
        }
    };
    (enc, jwk)
}

fn jwt(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let algs = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
    let mut jwks = JwkSet { keys: Vec::new() };
    let mut signers = Vec::new();
    for (i, alg) in algs.iter().enumerate() {
        let (enc, mut jwk) = key(*alg);
        jwk.common.key_id = Some(format!("k{i}"));
        jwks.keys.push(jwk);
        signers.push((format!("k{i}"), *alg, enc));
    }
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_vec(&jwks).unwrap()).unwrap();
    let config = portcullis_config::load_str(
        &format!(
            "version: 1\nlisteners: [{{name: m, address: \"127.0.0.1:0\"}}]\nauthentication:\n  jwt:\n    - name: corp\n      issuer: https://id.example.com\n      audiences: [api]\n      keys: {{jwks_file: \"{}\"}}\n",
            path.display()
        ),
        "bench".into(),
        std::path::Path::new("."),
    )
    .unwrap();
    let services = AuthServices::open(&config.authentication, None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now = portcullis_store::now();
    let claims = serde_json::json!({
        "iss": "https://id.example.com", "aud": "api", "sub": "user-1",
        "scope": "orders:read", "iat": now, "exp": now + 3600,
    });
    for (kid, alg, enc) in &signers {
        let mut header = Header::new(*alg);
        header.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, enc).unwrap();
        c.bench_function(&format!("jwt/verify_{alg:?}"), |b| {
            b.iter(|| {
                let r = rt.block_on(services.jwt.verify(&token, &[0], now));
                assert!(matches!(r, Check::Valid(_)));
            });
        });
        if *alg == Algorithm::ES256 {
            c.bench_function("jwt/cache_hit", |b| {
                b.iter(|| {
                    let r = rt.block_on(services.jwt.check(&token, &[0]));
                    assert!(matches!(r, Check::Valid(_)));
                });
            });
        }
    }
}

criterion_group!(benches, api_key, jwt);
criterion_main!(benches);
