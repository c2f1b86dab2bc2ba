//! Path normalisation: one canonical spelling per path, so a policy bound to
//! `/users` cannot be dodged with `/admin/../users`, `//users` or
//! `/%75sers`, and spellings that different servers read differently are
//! refused outright.
//!
//! The steps, in order:
//! 1. percent-decode unreserved characters (`A-Z a-z 0-9 - . _ ~`), keep
//!    every other escape encoded with upper-case hex;
//! 2. refuse ambiguous encodings: an encoded `/` or `\`, a raw `\`, NUL,
//!    invalid or overlong UTF-8, and (by default) double encoding (`%25`
//!    followed by two hex digits);
//! 3. collapse repeated slashes;
//! 4. remove dot segments (RFC 3986 §5.2.4), never climbing above the root;
//!    a dot segment carrying parameters (`..;x`) is refused, since some
//!    servers strip the parameter and climb.
//!
//! The normalised path is both what routes match and what is sent upstream.

use std::borrow::Cow;

/// Why a path was refused. Each maps to a 400 response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("the path has a malformed percent-encoding")]
    BadEscape,
    #[error("the path has an encoded slash or backslash")]
    EncodedSeparator,
    #[error("the path has a backslash")]
    Backslash,
    #[error("the path has a NUL byte")]
    Nul,
    #[error("the path has invalid or overlong UTF-8")]
    BadUtf8,
    #[error("the path is percent-encoded twice")]
    DoubleEncoding,
    #[error("the path has a dot segment with parameters")]
    DotSegmentParams,
    #[error("the path has a raw non-ASCII or control byte")]
    RawByte,
}

impl PathError {
    /// A short stable code for logs and problem responses.
    pub fn code(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path-not-absolute",
            PathError::BadEscape => "path-bad-escape",
            PathError::EncodedSeparator => "path-encoded-separator",
            PathError::Backslash => "path-backslash",
            PathError::Nul => "path-nul",
            PathError::BadUtf8 => "path-bad-utf8",
            PathError::DoubleEncoding => "path-double-encoding",
            PathError::DotSegmentParams => "path-dot-segment-params",
            PathError::RawByte => "path-raw-byte",
        }
    }

    /// The problem detail for clients: the error text, which names no input.
    pub fn detail(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "the path must start with '/'",
            PathError::BadEscape => "the path has a malformed percent-encoding",
            PathError::EncodedSeparator => "the path has an encoded slash or backslash",
            PathError::Backslash => "the path has a backslash",
            PathError::Nul => "the path has a NUL byte",
            PathError::BadUtf8 => "the path has invalid or overlong UTF-8",
            PathError::DoubleEncoding => "the path is percent-encoded twice",
            PathError::DotSegmentParams => "the path has a dot segment with parameters",
            PathError::RawByte => "the path has a raw non-ASCII or control byte",
        }
    }
}

/// Knobs of normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// Refuse `%25XX` (a percent sign encoding another escape). Servers that
    /// decode twice would otherwise see a different path than the routes did.
    pub reject_double_encoding: bool,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            reject_double_encoding: true,
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// True when the path certainly needs no work: no escapes, no backslash,
/// no doubled slash and no dot segment. Most real paths take this branch
/// and are returned without allocating.
fn is_plain(path: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' | b'\\' | b';' => return false,
            b'/' if prev == b'/' => return false,
            b'.' if prev == b'/' => {
                // `/.` starts a dot segment when followed by `/`, `.`, or the end.
                match path.get(i + 1) {
                    None | Some(b'/') | Some(b'.') => return false,
                    _ => {}
                }
            }
            0..=0x20 | 0x7f..=0xff => return false,
            _ => {}
        }
        prev = b;
    }
    true
}

/// Normalises a request path (without its query string).
pub fn normalize_path(path: &str, opts: NormalizeOptions) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_plain(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(bytes, opts)?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)?))
}

/// Step 1 and 2: decode unreserved escapes, canonicalise the others, refuse
/// ambiguous bytes, collapse slashes.
fn decode(bytes: &[u8], opts: NormalizeOptions) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let (value, next) = escape_at(bytes, i)?;
                if value >= 0x80 {
                    i = push_utf8_run(bytes, i, &mut out)?;
                    continue;
                }
                match value {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => push_escape(&mut out, v),
                }
                i = next;
            }
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            0x01..=0x20 | 0x7f..=0xff => return Err(PathError::RawByte),
            b'/' => {
                if !out.ends_with('/') {
                    out.push('/');
                }
                i += 1;
            }
            _ => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    // Checked on the output so that `%25` next to a decoded escape
    // (`%25%41%42` -> `%25AB`) is caught as well as a literal `%2541`.
    if opts.reject_double_encoding && has_double_encoding(out.as_bytes()) {
        return Err(PathError::DoubleEncoding);
    }
    Ok(out)
}

fn has_double_encoding(out: &[u8]) -> bool {
    out.windows(5)
        .any(|w| w.starts_with(b"%25") && w.iter().skip(3).all(|b| b.is_ascii_hexdigit()))
}

/// Reads `%XY` at `i`; returns the byte and the index after it.
fn escape_at(bytes: &[u8], i: usize) -> Result<(u8, usize), PathError> {
    match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
        (Some(b'%'), Some(&h), Some(&l)) => match (hex_value(h), hex_value(l)) {
            (Some(h), Some(l)) => Ok(((h << 4) | l, i + 3)),
            _ => Err(PathError::BadEscape),
        },
        _ => Err(PathError::BadEscape),
    }
}

fn push_escape(out: &mut String, v: u8) {
    let digit = |n: u8| char::from(if n < 10 { b'0' + n } else { b'A' + n - 10 });
    out.push('%');
    out.push(digit(v >> 4));
    out.push(digit(v & 0xf));
}

/// A run of escapes with the high bit set must be valid UTF-8 (which also
/// rules out overlong forms and surrogates); it stays encoded.
fn push_utf8_run(bytes: &[u8], start: usize, out: &mut String) -> Result<usize, PathError> {
    let mut raw = Vec::new();
    let mut i = start;
    while let Ok((value, next)) = escape_at(bytes, i) {
        if value < 0x80 {
            break;
        }
        raw.push(value);
        i = next;
    }
    if std::str::from_utf8(&raw).is_err() {
        return Err(PathError::BadUtf8);
    }
    for v in raw {
        push_escape(out, v);
    }
    Ok(i)
}

/// Step 4 on an already decoded path whose slashes are collapsed.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    let mut trailing_slash = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        let bare = seg.split(';').next().unwrap_or(seg);
        if bare != seg && (bare == "." || bare == "..") {
            return Err(PathError::DotSegmentParams);
        }
        match seg {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            "" => trailing_slash = last,
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p, NormalizeOptions::default()).map(Cow::into_owned)
    }

    #[test]
    fn plain_paths_are_borrowed() {
        let p = "/users/42/orders";
        assert!(matches!(
            normalize_path(p, NormalizeOptions::default()),
            Ok(Cow::Borrowed(_))
        ));
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("/a.b/c.json").unwrap(), "/a.b/c.json");
        assert_eq!(norm("/.well-known/x").unwrap(), "/.well-known/x");
    }

    #[test]
    fn dot_segments_and_slashes() {
        assert_eq!(norm("/admin/../users").unwrap(), "/users");
        assert_eq!(norm("/a/./b").unwrap(), "/a/b");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(norm("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(norm("//users///42").unwrap(), "/users/42");
        assert_eq!(norm("/users/").unwrap(), "/users/");
        assert_eq!(norm("/..").unwrap(), "/");
        assert_eq!(norm("/a/..b/c").unwrap(), "/a/..b/c");
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_canonicalised() {
        assert_eq!(norm("/%75sers").unwrap(), "/users");
        assert_eq!(norm("/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/a/%2E%2e/b").unwrap(), "/b");
        assert_eq!(norm("/a%20b").unwrap(), "/a%20b");
        assert_eq!(norm("/a%3fb").unwrap(), "/a%3Fb");
        assert_eq!(norm("/caf%c3%a9").unwrap(), "/caf%C3%A9");
    }

    #[test]
    fn ambiguous_encodings_are_refused() {
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSeparator));
        assert_eq!(norm("/a\\b"), Err(PathError::Backslash));
        assert_eq!(norm("/a%00b"), Err(PathError::Nul));
        assert_eq!(norm("/a%c0%afb"), Err(PathError::BadUtf8)); // overlong '/'
        assert_eq!(norm("/a%e0%80%afb"), Err(PathError::BadUtf8)); // overlong '/'
        assert_eq!(norm("/a%ed%a0%80"), Err(PathError::BadUtf8)); // surrogate
        assert_eq!(norm("/a%c3"), Err(PathError::BadUtf8)); // truncated
        assert_eq!(norm("/a%2"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(norm("/a%252e%252e/b"), Err(PathError::DoubleEncoding));
        assert_eq!(norm("/a%25%41%42"), Err(PathError::DoubleEncoding));
        assert_eq!(norm("/public/..;/admin"), Err(PathError::DotSegmentParams));
        assert_eq!(norm("/public/.;x/admin"), Err(PathError::DotSegmentParams));
        assert_eq!(norm("users"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::NotAbsolute));
    }

    #[test]
    fn double_encoding_can_be_allowed() {
        let opts = NormalizeOptions {
            reject_double_encoding: false,
        };
        assert_eq!(normalize_path("/a%252e", opts).unwrap(), "/a%252e");
        // A lone percent sign followed by non-hex is still fine to keep.
        assert_eq!(norm("/100%25").unwrap(), "/100%25");
    }

    #[test]
    fn matrix_params_on_normal_segments_are_kept() {
        assert_eq!(norm("/a;v=1/b").unwrap(), "/a;v=1/b");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Normalising is idempotent, and its output is plain: no dot
            /// segments, no doubled slashes, no decodable escapes.
            #[test]
            fn idempotent_and_canonical(p in "/[a-zA-Z0-9%./;_~-]{0,40}") {
                if let Ok(once) = normalize_path(&p, NormalizeOptions::default()) {
                    let twice = normalize_path(&once, NormalizeOptions::default()).unwrap();
                    prop_assert_eq!(&*once, &*twice);
                    prop_assert!(!once.contains("//"));
                    prop_assert!(!once.contains("/./") && !once.contains("/../"));
                    prop_assert!(!once.ends_with("/.") && !once.ends_with("/.."));
                    prop_assert!(once.starts_with('/'));
                }
            }
        }
    }
}
