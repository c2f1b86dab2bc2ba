//! Request body processors: URL-encoded forms, JSON, XML and multipart,
//! turning a body into the variables rules inspect.

pub mod json;
pub mod multipart;
pub mod urlencoded;
pub mod xml;

use bytes::Bytes;

use crate::tx::Pair;

/// `Cookie: a=1; b=2` as name/value pairs, values as sent.
pub fn cookies(header: &[u8]) -> Vec<Pair> {
    header
        .split(|&b| b == b';')
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty())
        .map(|c| match memchr::memchr(b'=', c) {
            Some(eq) => (
                Bytes::copy_from_slice(c.get(..eq).unwrap_or(&[])),
                Bytes::copy_from_slice(c.get(eq + 1..).unwrap_or(&[])),
            ),
            None => (Bytes::copy_from_slice(c), Bytes::new()),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn cookie_pairs() {
        let c = cookies(b"a=1; b=x=y;;flag");
        assert_eq!(c.len(), 3);
        assert_eq!(&c[1].0[..], b"b");
        assert_eq!(&c[1].1[..], b"x=y");
        assert_eq!(&c[2].0[..], b"flag");
    }
}
