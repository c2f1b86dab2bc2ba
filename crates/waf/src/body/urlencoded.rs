//! `a=1&b=2` (query strings and form bodies).

use bytes::Bytes;

use crate::transforms::Transform;
use crate::tx::Pair;

fn decode(s: &[u8]) -> Bytes {
    let mut out = Vec::new();
    if Transform::UrlDecode.apply(s, &mut out) {
        Bytes::from(out)
    } else {
        Bytes::copy_from_slice(s)
    }
}

/// Name/value pairs, both URL-decoded; a pair without `=` has an empty
/// value; empty pairs are skipped.
pub fn parse(data: &[u8], separator: u8) -> Vec<Pair> {
    data.split(|&b| b == separator)
        .filter(|p| !p.is_empty())
        .map(|p| match memchr::memchr(b'=', p) {
            Some(eq) => (
                decode(p.get(..eq).unwrap_or(&[])),
                decode(p.get(eq + 1..).unwrap_or(&[])),
            ),
            None => (decode(p), Bytes::new()),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded() {
        let p = parse(b"a=1+2&b%5B%5D=%27x&&flag&=v", b'&');
        assert_eq!(p.len(), 4);
        assert_eq!((&p[0].0[..], &p[0].1[..]), (&b"a"[..], &b"1 2"[..]));
        assert_eq!((&p[1].0[..], &p[1].1[..]), (&b"b[]"[..], &b"'x"[..]));
        assert_eq!((&p[2].0[..], &p[2].1[..]), (&b"flag"[..], &b""[..]));
        assert_eq!((&p[3].0[..], &p[3].1[..]), (&b""[..], &b"v"[..]));
    }
}
