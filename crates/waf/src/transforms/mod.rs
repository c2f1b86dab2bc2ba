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

            /// Every transformation, in declaration order.
            pub const ALL: [Transform; Self::COUNT] = [$( Transform::$t, )*];

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

/// What a value holds that transformations could act on: one bit per
/// transformation (`Transform::bit`), set when some byte of the value (or
/// where it stands: see `in_place`) may set it off, and always set for
/// those that change any value. A
/// transformation whose bit is clear leaves the value as it is, so a chain
/// none of whose bits are set leaves it whole (each step sees the value
/// itself): a clean value's forms are known without running the chain.
pub fn triggers(value: &[u8]) -> u64 {
    let m = value.iter().fold(ALWAYS, |m, &b| {
        m | TRIGGERS.get(usize::from(b)).copied().unwrap_or(u64::MAX)
    });
    m | in_place(value)
}

/// The transformations a value sets off by where its bytes stand rather
/// than by which they are: white space at either end for the trims, and
/// a path that is only `.` or `..`.
fn in_place(value: &[u8]) -> u64 {
    use Transform as T;
    let end_space = |b: Option<&u8>| b.is_some_and(|&b| is_space(b));
    let mut set = 0;
    if end_space(value.first()) {
        set |= T::Trim.bit() | T::TrimLeft.bit();
    }
    if end_space(value.last()) {
        set |= T::Trim.bit() | T::TrimRight.bit();
    }
    if value == b"." || value == b".." {
        set |= T::NormalizePath.bit() | T::NormalizePathWin.bit();
    }
    set
}

/// The transformations that may change a value whatever bytes it holds.
#[allow(clippy::indexing_slicing)] // `i` stays below COUNT
const ALWAYS: u64 = {
    let mut m = 0;
    let mut i = 0;
    while i < Transform::COUNT {
        if Transform::ALL[i].set_off_by(0).is_none() {
            m |= Transform::ALL[i].bit();
        }
        i += 1;
    }
    m
};

/// Per byte, the transformations it may set off.
#[allow(clippy::indexing_slicing)] // a byte indexes 256 entries; `i` stays below COUNT
const TRIGGERS: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < Transform::COUNT {
            if let Some(true) = Transform::ALL[i].set_off_by(b as u8) {
                t[b] |= Transform::ALL[i].bit();
            }
            i += 1;
        }
        b += 1;
    }
    t
};

impl Transform {
    /// This transformation's bit in the masks of `triggers`.
    pub const fn bit(self) -> u64 {
        1 << (self as u32)
    }

    /// Whether byte `b` may set this transformation off: a value holding
    /// no such byte (and none in the places `in_place` looks at) comes out
    /// as it went in. Each is a necessary condition
    /// of the transformation's own "unchanged" check. `None`: any value may
    /// change (hashes, encodings, base64 and hex decoding, length).
    const fn set_off_by(self, b: u8) -> Option<bool> {
        use Transform as T;
        Some(match self {
            T::Base64Decode
            | T::Base64DecodeExt
            | T::Base64Encode
            | T::HexDecode
            | T::HexEncode
            | T::Length
            | T::Md5
            | T::Sha1
            | T::UrlEncode => return None,
            // Dropped, folded or lower-cased bytes, and the spaces that
            // fold together or before `/` and `(`.
            T::CmdLine => {
                matches!(
                    b,
                    b'"' | b'\'' | b'\\' | b'^' | b',' | b';' | b' ' | b'\t' | b'\r' | b'\n'
                ) || b.is_ascii_uppercase()
            }
            T::CompressWhitespace | T::RemoveWhitespace => is_space(b) || b == 0xa0,
            T::CssDecode | T::EscapeSeqDecode | T::JsDecode => b == b'\\',
            T::HtmlEntityDecode => b == b'&',
            T::Lowercase => b.is_ascii_uppercase(),
            T::Uppercase => b.is_ascii_lowercase(),
            // Without a separator only `.` and `..` change: a place.
            T::NormalizePath => b == b'/',
            T::NormalizePathWin => matches!(b, b'/' | b'\\'),
            T::RemoveComments => matches!(b, b'/' | b'<' | b'-' | b'#'),
            T::RemoveCommentsChar => matches!(b, b'/' | b'*' | b'<' | b'-' | b'#'),
            T::RemoveNulls | T::ReplaceNulls => b == 0,
            T::ReplaceComments => b == b'/',
            T::SqlHexDecode => matches!(b, b'x' | b'X'),
            // White space at either end: a place.
            T::Trim | T::TrimLeft | T::TrimRight => false,
            T::UrlDecode | T::UrlDecodeUni => matches!(b, b'%' | b'+'),
            T::Utf8ToUnicode => b >= 0x80,
        })
    }

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

    /// A value holding none of a transformation's trigger bytes must come
    /// out unchanged: values are built from pieces that set one
    /// transformation or another off, and random bytes, and each is run
    /// through every transformation it does not set off.
    #[test]
    fn a_value_without_a_transformations_triggers_comes_out_unchanged() {
        const PIECES: &[&[u8]] = &[
            b"%41",
            b"%u0041",
            b"%uff21",
            b"+",
            b"&amp;",
            b"&#x41;",
            b"&#65",
            b"&lt",
            b"\\x41",
            b"\\u0041",
            b"\\101",
            b"\\n",
            b"\\",
            b"/*",
            b"*/",
            b"<!--",
            b"-->",
            b"--",
            b"#",
            b"/",
            b"//",
            b".",
            b"..",
            b"/./",
            b"/../",
            b"0x41",
            b"0X4a",
            b" ",
            b"  ",
            b"\t",
            b"\r\n",
            b"\x0b",
            b"\xa0",
            b"\0",
            b"A",
            b"a",
            b"\"",
            b"'",
            b"^",
            b",",
            b";",
            b"(",
            b"\xc3\xa9",
            b"\xff",
            b"x",
            b"=",
            b"abc",
            b"Z9",
            b"QUJD",
            b"4142",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut out = Vec::new();
        for t in Transform::ALL {
            if t.set_off_by(0).is_none() {
                assert_ne!(triggers(b"") & t.bit(), 0, "{}", t.name());
                continue;
            }
            let mut checked = 0;
            for _ in 0..20_000 {
                let mut v = Vec::new();
                for _ in 0..next() % 7 {
                    let r = next();
                    match PIECES.get((r >> 8) as usize % (PIECES.len() + 8)) {
                        Some(p) => v.extend_from_slice(p),
                        None => v.push((r >> 24) as u8),
                    }
                }
                if triggers(&v) & t.bit() != 0 {
                    continue;
                }
                checked += 1;
                out.clear();
                assert!(
                    !t.apply(&v, &mut out) || out == v,
                    "{} changed {:?}",
                    t.name(),
                    String::from_utf8_lossy(&v)
                );
            }
            assert!(checked > 500, "{}: {checked} values", t.name());
        }
        // And a value that holds one is not taken for clean.
        assert_ne!(triggers(b"a%41") & Transform::UrlDecodeUni.bit(), 0);
        assert_ne!(triggers(b"..") & Transform::NormalizePath.bit(), 0);
        assert_eq!(triggers(b"abc") & Transform::Lowercase.bit(), 0);
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
