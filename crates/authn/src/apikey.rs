//! API keys: generated here, shown once, stored only as a keyed hash.
//!
//! A key reads `<prefix>_<id>_<secret><check>`, e.g.
//! `pcl_3fK9aQ2LmZ_Vb7...` (all base62):
//! - `prefix` makes leaked keys easy to find for secret scanners;
//! - `id` (10 characters) is public: it names the key in listings, logs and
//!   lock-outs, and finds its record without a search;
//! - `secret` is 32 characters (about 190 bits) from the OS's CSPRNG;
//! - `check` is a CRC-32 of everything before it, so a mistyped key is
//!   refused without touching the store.
//!
//! The store keeps HMAC-SHA256(server secret, whole key), compared in
//! constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_LEN: usize = 10;
const SECRET_LEN: usize = 32;
const CHECK_LEN: usize = 6;

/// The server secret keys are hashed under (at least 32 bytes).
#[derive(Clone)]
pub struct KeySecret(Vec<u8>);

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySecret(***)")
    }
}

impl KeySecret {
    pub fn new(bytes: Vec<u8>) -> Result<KeySecret, &'static str> {
        if bytes.len() < 32 {
            return Err("the key-hashing secret must be at least 32 bytes");
        }
        Ok(KeySecret(bytes))
    }

    /// 32 fresh random bytes.
    pub fn generate() -> Result<KeySecret, getrandom::Error> {
        let mut b = vec![0u8; 32];
        getrandom::fill(&mut b)?;
        Ok(KeySecret(b))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The keyed hash of a whole key.
    pub fn hash(&self, key: &str) -> [u8; 32] {
        // HMAC takes keys of any length; the error case cannot happen.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0) else {
            return [0; 32];
        };
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `key` hashes to `stored`, in constant time.
    pub fn matches(&self, key: &str, stored: &[u8; 32]) -> bool {
        self.hash(key).ct_eq(stored).into()
    }
}

/// A newly generated key: the text is shown to its owner once.
#[derive(Debug)]
pub struct NewKey {
    pub id: String,
    pub text: String,
}

/// Uniform base62 characters from the OS's random source (bytes at or
/// above 248 are discarded so that every character is equally likely).
fn random_base62(n: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(n);
    let mut pool = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut pool)?;
        for b in pool {
            if out.len() == n {
                break;
            }
            if b < 248 {
                out.push(char::from(
                    BASE62.get(usize::from(b % 62)).copied().unwrap_or(b'0'),
                ));
            }
        }
    }
    Ok(out)
}

fn check_chars(body: &str) -> String {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62.get((n % 62) as usize).copied().unwrap_or(b'0');
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A new key with the given prefix.
pub fn generate(prefix: &str) -> Result<NewKey, getrandom::Error> {
    let id = random_base62(ID_LEN)?;
    let secret = random_base62(SECRET_LEN)?;
    let body = format!("{prefix}_{id}_{secret}");
    let text = format!("{body}{}", check_chars(&body));
    Ok(NewKey { id, text })
}

/// A key as presented, checked for form and checksum only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    pub id: &'a str,
    pub text: &'a str,
}

/// Why a presented key was not even looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormError {
    /// Not shaped like a key of this gateway (wrong prefix, length,
    /// characters).
    Shape,
    /// Shaped right but the checksum fails: a typo or a made-up key.
    Checksum,
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks a presented key's form and checksum.
pub fn parse<'a>(text: &'a str, prefix: &str) -> Result<Presented<'a>, FormError> {
    let rest = text
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(FormError::Shape)?;
    let (id, tail) = rest.split_once('_').ok_or(FormError::Shape)?;
    if id.len() != ID_LEN
        || tail.len() != SECRET_LEN + CHECK_LEN
        || !is_base62(id)
        || !is_base62(tail)
    {
        return Err(FormError::Shape);
    }
    let split = text.len() - CHECK_LEN;
    let (body, check) = (
        text.get(..split).unwrap_or(""),
        text.get(split..).unwrap_or(""),
    );
    if check_chars(body) != check {
        return Err(FormError::Checksum);
    }
    Ok(Presented { id, text })
}

/// A key for logs: prefix and id, never the secret.
pub fn masked(text: &str, prefix: &str) -> String {
    match parse_id(text, prefix) {
        Some(id) => format!("{prefix}_{id}_***"),
        None => "***".to_owned(),
    }
}

/// The id part of something shaped like a key, checksum or not (for
/// counting failures per key).
pub fn parse_id<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, _) = rest.split_once('_')?;
    (id.len() == ID_LEN && is_base62(id)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_typos_do_not() {
        let k = generate("pcl").unwrap();
        assert!(k.text.starts_with("pcl_"));
        assert_eq!(k.text.len(), 3 + 1 + ID_LEN + 1 + SECRET_LEN + CHECK_LEN);
        let p = parse(&k.text, "pcl").unwrap();
        assert_eq!(p.id, k.id);
        // Every single-character change is caught by shape or checksum.
        let bytes = k.text.as_bytes();
        for i in ID_LEN + 5..bytes.len() {
            let mut t = bytes.to_vec();
            t[i] = if t[i] == b'a' { b'b' } else { b'a' };
            let t = String::from_utf8(t).unwrap();
            assert!(parse(&t, "pcl").is_err(), "{t}");
        }
        assert_eq!(parse(&k.text, "other"), Err(FormError::Shape));
        assert_eq!(parse("pcl_short_x", "pcl"), Err(FormError::Shape));
        assert_eq!(parse("", "pcl"), Err(FormError::Shape));
        let two = generate("pcl").unwrap();
        assert_ne!(k.text, two.text);
        assert_ne!(k.id, two.id);
    }

    #[test]
    fn hashes_are_keyed_and_compared_whole() {
        let s1 = KeySecret::new(vec![1; 32]).unwrap();
        let s2 = KeySecret::new(vec![2; 32]).unwrap();
        let k = generate("pcl").unwrap();
        let h = s1.hash(&k.text);
        assert!(s1.matches(&k.text, &h));
        assert!(!s2.matches(&k.text, &h));
        assert!(!s1.matches(&format!("{}x", k.text), &h));
        assert!(KeySecret::new(vec![0; 16]).is_err());
        assert_eq!(format!("{s1:?}"), "KeySecret(***)");
    }

    #[test]
    fn masking_keeps_only_the_public_id() {
        let k = generate("pcl").unwrap();
        let m = masked(&k.text, "pcl");
        assert_eq!(m, format!("pcl_{}_***", k.id));
        assert!(!m.contains(&k.text[4 + ID_LEN + 1..]));
        assert_eq!(masked("garbage", "pcl"), "***");
    }
}
