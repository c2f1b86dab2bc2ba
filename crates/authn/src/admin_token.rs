//! The management API's bearer token: random, shown once, configured only
//! as its SHA-256 (a 256-bit random token needs no slow hash).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new token and the `token_hash` line for the configuration.
pub fn generate() -> Result<(String, String), getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    let token = format!("pca_{}", hex(&raw));
    let hash = format!("sha256:{}", hex(&sha256(&token)));
    Ok((token, hash))
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether an `Authorization` header value carries the token.
pub fn verify(authorization: Option<&[u8]>, expected: &[u8; 32]) -> bool {
    let Some(token) = authorization
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    else {
        return false;
    };
    sha256(token).ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_verify_against_their_hash_only() {
        let (token, line) = generate().unwrap();
        let hex_part = line.strip_prefix("sha256:").unwrap();
        let mut expected = [0u8; 32];
        for (i, slot) in expected.iter_mut().enumerate() {
            *slot = u8::from_str_radix(&hex_part[i * 2..i * 2 + 2], 16).unwrap();
        }
        let header = format!("Bearer {token}");
        assert!(verify(Some(header.as_bytes()), &expected));
        assert!(verify(
            Some(format!("bearer  {token} ").as_bytes()),
            &expected
        ));
        assert!(!verify(Some(token.as_bytes()), &expected));
        assert!(!verify(Some(b"Bearer pca_wrong"), &expected));
        assert!(!verify(None, &expected));
        let (other, _) = generate().unwrap();
        assert_ne!(token, other);
    }
}
