//! The demo's built-in token issuer: an ES256 key made at start, its JWKS
//! served by the sample API, and tokens minted for the tour.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// The `iss` of demo tokens.
pub const ISSUER: &str = "https://issuer.demo.portcullis";
/// The `aud` the demo gateway requires.
pub const AUDIENCE: &str = "sample-api";
const KID: &str = "demo-1";

pub struct DemoIssuer {
    key: EncodingKey,
    jwks: String,
}

impl std::fmt::Debug for DemoIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DemoIssuer")
    }
}

impl DemoIssuer {
    pub fn generate() -> Result<DemoIssuer, String> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| "cannot generate the demo issuer's key")?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|_| "cannot encode the demo issuer's key")?;
        let key = EncodingKey::from_ec_der(der.as_ref());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|e| e.to_string())?;
        jwk.common.key_id = Some(KID.to_owned());
        let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).map_err(|e| e.to_string())?;
        Ok(DemoIssuer { key, jwks })
    }

    /// The JWKS document the sample API serves.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// A token for `sub` with these scopes, valid for an hour.
    pub fn token(&self, sub: &str, scope: &str) -> Result<String, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope,
            "iat": now, "exp": now + 3600,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_the_published_key() {
        let issuer = DemoIssuer::generate().unwrap();
        let set: JwkSet = serde_json::from_str(issuer.jwks()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).unwrap();
        let token = issuer.token("demo-user", "orders:read").unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&[ISSUER]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).unwrap();
        assert_eq!(data.claims["sub"], "demo-user");
    }
}
