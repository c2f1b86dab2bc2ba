//! Request ids: generated per request, or taken from a trusted hop.

use std::fmt;

/// Longest incoming request id we accept from a trusted proxy.
const MAX_INCOMING_LEN: usize = 128;

/// The id that ties a request's log line, security events, upstream request
/// and error body together.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(Box<str>);

impl RequestId {
    /// A fresh random id: 128 bits as 32 lowercase hex digits.
    ///
    /// Uniqueness is what matters here, not secrecy, so a fast
    /// non-cryptographic generator (seeded per thread from the OS) is enough.
    pub fn generate() -> Self {
        let mut out = String::with_capacity(32);
        let value = fastrand::u128(..);
        for shift in (0..32).rev() {
            let nibble = ((value >> (shift * 4)) & 0xf) as u8;
            out.push(char::from(if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            }));
        }
        RequestId(out.into_boxed_str())
    }

    /// Takes an incoming id if it is well-formed (see
    /// [`is_acceptable_request_id`]); otherwise `None`.
    pub fn from_incoming(value: &[u8]) -> Option<Self> {
        if !is_acceptable_request_id(value) {
            return None;
        }
        std::str::from_utf8(value).ok().map(|s| RequestId(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An incoming id is only reused when it is short and made of characters that
/// cannot break a log line or a header: `[A-Za-z0-9._:-]`, 1 to 128 bytes.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_INCOMING_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn incoming_ids_are_checked() {
        assert!(RequestId::from_incoming(b"abc-123_x.y:z").is_some());
        assert!(RequestId::from_incoming(b"").is_none());
        assert!(RequestId::from_incoming(b"has space").is_none());
        assert!(RequestId::from_incoming(b"new\nline").is_none());
        assert!(RequestId::from_incoming(&[b'a'; 129]).is_none());
        assert!(RequestId::from_incoming(&[b'a'; 128]).is_some());
    }
}
