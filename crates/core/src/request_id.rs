//! Request ids: generated per request, or taken from a trusted hop.

use std::fmt;

/// Longest incoming request id we accept from a trusted proxy.
const MAX_INCOMING_LEN: usize = 128;

/// The id that ties a request's log line, security events, upstream request
/// and error body together. Held as a header value, since that is where it
/// goes most often (upstream and back); clones share the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(http::HeaderValue);

impl RequestId {
    /// A fresh random id: 128 bits as 32 lowercase hex digits.
    ///
    /// Uniqueness is what matters here, not secrecy, so a fast
    /// non-cryptographic generator (seeded per thread from the OS) is enough.
    pub fn generate() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        let value = fastrand::u128(..);
        for (i, slot) in out.iter_mut().enumerate() {
            let nibble = (value >> ((31 - i) * 4)) & 0xf;
            *slot = HEX.get(nibble as usize).copied().unwrap_or(b'0');
        }
        // Hex digits are always a valid header value. An owned array: one
        // allocation, and clones (upstream, response, log) only count
        // references, where a copied slice would allocate again on its
        // first clone.
        RequestId(
            http::HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(out))
                .unwrap_or(http::HeaderValue::from_static("0")),
        )
    }

    /// Takes an incoming id if it is well-formed (see
    /// [`is_acceptable_request_id`]); otherwise `None`.
    pub fn from_incoming(value: &[u8]) -> Option<Self> {
        if !is_acceptable_request_id(value) {
            return None;
        }
        http::HeaderValue::from_bytes(value).ok().map(RequestId)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII ids are ever made (see `is_acceptable_request_id`).
        self.0.to_str().unwrap_or("")
    }

    /// The id as a header value (a cheap clone).
    pub fn header_value(&self) -> http::HeaderValue {
        self.0.clone()
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
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_str())
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
