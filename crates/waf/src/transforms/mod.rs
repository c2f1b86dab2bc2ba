//! Transformations (`t:...`): how a value is normalised before an operator
//! looks at it.

mod decode;
mod text;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::prefilter::{self, Prefilter};

pub use decode::is_space;
pub use text::trim_left as trim_start;

macro_rules! transforms {
    ($( $t:ident = $($name:literal)|+; )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Transform { $( $t, )* }

        impl Transform {
            /// `t:none` is not a transformation but a reset, so it is not here.
            pub fn from_name(name: &str) -> Option<Transform> {
                $( $( if name.eq_ignore_ascii_case($name) { return Some(Transform::$t); } )+ )*
                None
            }

            pub fn name(self) -> &'static str {
                match self { $( Transform::$t => [$($name),+][0], )* }
            }
        }
    };
}

transforms! {
    Base64Decode = "base64Decode";
    Base64DecodeExt = "base64DecodeExt";
    Base64Encode = "base64Encode";
    CmdLine = "cmdLine";
    CompressWhitespace = "compressWhitespace";
    CssDecode = "cssDecode";
    EscapeSeqDecode = "escapeSeqDecode";
    HexDecode = "hexDecode";
    HexEncode = "hexEncode";
    HtmlEntityDecode = "htmlEntityDecode";
    JsDecode = "jsDecode";
    Length = "length";
    Lowercase = "lowercase";
    Md5 = "md5";
    NormalizePath = "normalizePath" | "normalisePath";
    NormalizePathWin = "normalizePathWin" | "normalisePathWin";
    RemoveComments = "removeComments";
    RemoveCommentsChar = "removeCommentsChar";
    RemoveNulls = "removeNulls";
    RemoveWhitespace = "removeWhitespace";
    ReplaceComments = "replaceComments";
    ReplaceNulls = "replaceNulls";
    Sha1 = "sha1";
    SqlHexDecode = "sqlHexDecode";
    Trim = "trim";
    TrimLeft = "trimLeft";
    TrimRight = "trimRight";
    Uppercase = "uppercase";
    UrlDecode = "urlDecode";
    UrlDecodeUni = "urlDecodeUni";
    UrlEncode = "urlEncode";
    Utf8ToUnicode = "utf8toUnicode";
}

impl Transform {
    /// Writes the transformed value to `out` (empty on entry) and returns
    /// true, or returns false when the value would come out unchanged.
    pub fn apply(self, s: &[u8], out: &mut Vec<u8>) -> bool {
        use Transform as T;
        match self {
            T::Base64Decode => decode::base64_decode(s, out, false),
            T::Base64DecodeExt => decode::base64_decode(s, out, true),
            T::Base64Encode => decode::base64_encode(s, out),
            T::CmdLine => text::cmd_line(s, out),
            T::CompressWhitespace => text::compress_whitespace(s, out),
            T::CssDecode => decode::css_decode(s, out),
            T::EscapeSeqDecode => decode::escape_seq_decode(s, out),
            T::HexDecode => decode::hex_decode(s, out),
            T::HexEncode => decode::hex_encode(s, out),
            T::HtmlEntityDecode => decode::html_entity_decode(s, out),
            T::JsDecode => decode::js_decode(s, out),
            T::Length => {
                out.extend_from_slice(s.len().to_string().as_bytes());
                true
            }
            T::Lowercase => text::lowercase(s, out),
            T::Md5 => {
                use md5::Digest as _;
                out.extend_from_slice(&md5::Md5::digest(s));
                true
            }
            T::NormalizePath => text::normalize_path(s, out, false),
            T::NormalizePathWin => text::normalize_path(s, out, true),
            T::RemoveComments => text::remove_comments(s, out),
            T::RemoveCommentsChar => text::remove_comments_char(s, out),
            T::RemoveNulls => text::remove_nulls(s, out),
            T::RemoveWhitespace => text::remove_whitespace(s, out),
            T::ReplaceComments => text::replace_comments(s, out),
            T::ReplaceNulls => text::replace_nulls(s, out),
            T::Sha1 => {
                use sha1::Digest as _;
                out.extend_from_slice(&sha1::Sha1::digest(s));
                true
            }
            T::SqlHexDecode => decode::sql_hex_decode(s, out),
            T::Trim => copy_if_shorter(s, text::trim_right(text::trim_left(s)), out),
            T::TrimLeft => copy_if_shorter(s, text::trim_left(s), out),
            T::TrimRight => copy_if_shorter(s, text::trim_right(s), out),
            T::Uppercase => text::uppercase(s, out),
            T::UrlDecode => decode::url_decode(s, out),
            T::UrlDecodeUni => decode::url_decode_uni(s, out),
            T::UrlEncode => url_encode(s, out),
            T::Utf8ToUnicode => decode::utf8_to_unicode(s, out),
        }
    }
}

fn copy_if_shorter(whole: &[u8], part: &[u8], out: &mut Vec<u8>) -> bool {
    if part.len() == whole.len() {
        return false;
    }
    out.extend_from_slice(part);
    true
}

fn url_encode(s: &[u8], out: &mut Vec<u8>) -> bool {
    for &b in s {
        if b == b' ' {
            out.push(b'+');
        } else if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', decode::hex_digit(b >> 4), decode::hex_digit(b)]);
        }
    }
    out.as_slice() != s
}

/// Two buffers a chain of transformations alternates between, kept by
/// the transaction so that transforming a value allocates nothing once
/// they have grown.
#[derive(Debug, Default)]
pub struct Scratch {
    bufs: [Vec<u8>; 2],
}

/// Transformed values of one phase, by (value address, length, chain id):
/// rules sharing a chain transform each value once, and the chain's
/// literal prefilter scans it once. Only values that stay in place for the
/// whole phase (request data) are kept here, and the cache is emptied when
/// a phase starts.
#[derive(Debug, Default)]
pub struct Cache {
    index: HashMap<(usize, usize, u32), usize, BuildHasherDefault<AddrHasher>>,
    entries: Vec<CacheEntry>,
    arena: Vec<u8>,
    bits: Vec<u64>,
}

#[derive(Debug)]
struct CacheEntry {
    /// Where the transformed value is in the arena; `None`: the chain
    /// leaves the value as it is.
    value: Option<(usize, usize)>,
    /// Whether the transformed value equals the original but for letter
    /// case, so the scan of the original for every rule's literals
    /// speaks for it.
    raw: bool,
    /// Where the prefilter's bits for this value start, once scanned.
    bits: Option<usize>,
}

/// The chain id under which the original value's scan is kept.
const RAW: u32 = 0;

impl Cache {
    pub fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.arena.clear();
        self.bits.clear();
    }

    /// The entry of `value` transformed by `chain` (with id `id`), found
    /// or computed and remembered.
    pub fn entry(
        &mut self,
        chain: &[Transform],
        id: u32,
        value: &[u8],
        scratch: &mut Scratch,
    ) -> usize {
        let key = (value.as_ptr() as usize, value.len(), id);
        if let Some(e) = self.index.get(&key) {
            return *e;
        }
        let out = apply_all(chain, value, scratch);
        let entry = if std::ptr::eq(out, value) {
            CacheEntry {
                value: None,
                raw: true,
                bits: None,
            }
        } else {
            let start = self.arena.len();
            self.arena.extend_from_slice(out);
            CacheEntry {
                value: Some((start, out.len())),
                raw: out.eq_ignore_ascii_case(value),
                bits: None,
            }
        };
        let e = self.entries.len();
        self.entries.push(entry);
        self.index.insert(key, e);
        e
    }

    /// The transformed value of entry `e`, made from `value`.
    pub fn value<'v>(&'v self, e: usize, value: &'v [u8]) -> &'v [u8] {
        match self.entries.get(e).and_then(|e| e.value) {
            None => value,
            Some((start, len)) => self.arena.get(start..start + len).unwrap_or(value),
        }
    }

    /// Whether the rule in `slot` (of chain `chain`) may match entry `e`,
    /// made from `value`: false only when none of its literals occur.
    pub fn may_match(
        &mut self,
        e: usize,
        value: &[u8],
        filter: &Prefilter,
        chain: u32,
        slot: u32,
    ) -> bool {
        let Some(entry) = self.entries.get(e) else {
            return true;
        };
        let (e, chain) = if entry.raw {
            let key = (value.as_ptr() as usize, value.len(), RAW);
            let raw = match self.index.get(&key) {
                Some(raw) => *raw,
                None => {
                    let raw = self.entries.len();
                    self.entries.push(CacheEntry {
                        value: None,
                        raw: true,
                        bits: None,
                    });
                    self.index.insert(key, raw);
                    raw
                }
            };
            (raw, None)
        } else {
            (e, Some(chain))
        };
        let start = match self.entries.get(e).and_then(|x| x.bits) {
            Some(start) => start,
            None => {
                let start = self.bits.len();
                self.bits.resize(start + filter.words, 0);
                let scanned = match self.entries.get(e).and_then(|x| x.value) {
                    None => value,
                    Some((s, len)) => self.arena.get(s..s + len).unwrap_or(value),
                };
                if let Some(bits) = self.bits.get_mut(start..) {
                    filter.scan(chain, scanned, bits);
                }
                if let Some(entry) = self.entries.get_mut(e) {
                    entry.bits = Some(start);
                }
                start
            }
        };
        self.bits
            .get(start..start + filter.words)
            .is_none_or(|bits| prefilter::is_set(bits, slot))
    }
}

/// Keys are an address, a length and a small id: a multiply-and-rotate
/// mix is enough, and much cheaper than the default keyed hasher.
#[derive(Debug, Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// Runs a chain of transformations and returns the result, which is
/// `value` itself when nothing changed it.
pub fn apply_all<'v>(chain: &[Transform], value: &'v [u8], scratch: &'v mut Scratch) -> &'v [u8] {
    // Which buffer holds the current value (none: `value`).
    let mut cur: Option<bool> = None;
    let [a, b] = &mut scratch.bufs;
    for t in chain {
        let (input, out, into_b): (&[u8], &mut Vec<u8>, bool) = match cur {
            None => (value, &mut *a, false),
            Some(false) => (&a[..], &mut *b, true),
            Some(true) => (&b[..], &mut *a, false),
        };
        out.clear();
        if t.apply(input, out) {
            cur = Some(into_b);
        }
    }
    match cur {
        None => value,
        Some(false) => a,
        Some(true) => b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_chains_compose() {
        assert_eq!(
            Transform::from_name("base64decode"),
            Some(Transform::Base64Decode)
        );
        assert_eq!(
            Transform::from_name("normalisePath"),
            Some(Transform::NormalizePath)
        );
        assert_eq!(Transform::from_name("none"), None);
        let chain = [
            Transform::UrlDecodeUni,
            Transform::Lowercase,
            Transform::Length,
        ];
        let mut scratch = Scratch::default();
        assert_eq!(apply_all(&chain, b"%41BC", &mut scratch), b"3");
        let chain = [Transform::UrlDecodeUni, Transform::Lowercase];
        assert_eq!(apply_all(&chain, b"%41B%43d", &mut scratch), b"abcd");
        assert_eq!(
            apply_all(&[Transform::Lowercase], b"abc", &mut scratch),
            b"abc"
        );
    }

    #[test]
    fn hashes_trims_and_url_encoding() {
        let mut out = Vec::new();
        assert!(Transform::Sha1.apply(b"abc", &mut out));
        assert_eq!(out.len(), 20);
        out.clear();
        assert!(Transform::Trim.apply(b" a ", &mut out));
        assert_eq!(out, b"a");
        out.clear();
        assert!(Transform::UrlEncode.apply(b"a b/", &mut out));
        assert_eq!(out, b"a+b%2f");
    }
}
