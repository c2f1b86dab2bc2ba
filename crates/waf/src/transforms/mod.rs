//! Transformations (`t:...`): how a value is normalised before an operator
//! looks at it.

mod decode;
mod text;

pub use decode::is_space;
pub use text::trim_left as trim_start;

macro_rules! transforms {
    ($( $t:ident = $($name:literal)|+; )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Transform { $( $t, )* }

        impl Transform {
            /// How many transformations there are.
            pub const COUNT: usize = [$( stringify!($t), )*].len();

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

impl Scratch {
    /// A buffer to transform into, emptied.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        let [a, _] = &mut self.bufs;
        a.clear();
        a
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
