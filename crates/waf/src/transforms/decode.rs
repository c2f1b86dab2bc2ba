//! Decoding transformations: URL, HTML entity, JavaScript, CSS and C escape
//! decoding, base64 and hex. Each follows the reference engines' lenient
//! behaviour: what does not decode is copied through unchanged.

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn is_hex(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_hexdigit)
}

/// Two hex digits at `i` as a byte (callers check they are hex).
fn x2c(s: &[u8], i: usize) -> u8 {
    (hex_val(at(s, i)).unwrap_or(0) << 4) | hex_val(at(s, i + 1)).unwrap_or(0)
}

fn is_f(b: u8) -> bool {
    b == b'f' || b == b'F'
}

/// The byte a 16-bit escape stands for: its lower byte, with full-width
/// ASCII (U+FF01..U+FF5E) mapped to plain ASCII.
fn wide_to_byte(s: &[u8], hex4: usize) -> u8 {
    let mut c = x2c(s, hex4 + 2);
    if c > 0 && c < 0x5f && is_f(at(s, hex4)) && is_f(at(s, hex4 + 1)) {
        c += 0x20;
    }
    c
}

pub fn url_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr2(b'%', b'+', s).is_none() {
        return false;
    }
    let mut i = 0;
    while i < s.len() {
        let c = at(s, i);
        if c == b'%' && i + 2 < s.len() && is_hex(s, i + 1) && is_hex(s, i + 2) {
            out.push(x2c(s, i + 1));
            i += 3;
        } else {
            out.push(if c == b'+' { b' ' } else { c });
            i += 1;
        }
    }
    true
}

pub fn url_decode_uni(s: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr2(b'%', b'+', s).is_none() {
        return false;
    }
    let mut i = 0;
    while i < s.len() {
        let c = at(s, i);
        if c == b'%' {
            if matches!(at(s, i + 1), b'u' | b'U') && i + 1 < s.len() {
                if i + 5 < s.len() && (2..6).all(|k| is_hex(s, i + k)) {
                    out.push(wide_to_byte(s, i + 2));
                    i += 6;
                } else {
                    // Not a valid %u escape: both characters stay.
                    out.extend_from_slice(s.get(i..i + 2).unwrap_or(&[]));
                    i += 2;
                }
            } else if i + 2 < s.len() && is_hex(s, i + 1) && is_hex(s, i + 2) {
                out.push(x2c(s, i + 1));
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(if c == b'+' { b' ' } else { c });
            i += 1;
        }
    }
    true
}

/// Copies `s` to `out`, decoding at each `marker` byte: `escape(s, i,
/// out)` writes what the escape starting at `s[i]` stands for and returns
/// where the text goes on (always past `i`). Text between escapes is
/// copied whole. False, with nothing written, when `s` has no marker.
fn decode_escapes(
    s: &[u8],
    out: &mut Vec<u8>,
    marker: u8,
    escape: impl Fn(&[u8], usize, &mut Vec<u8>) -> usize,
) -> bool {
    let Some(first) = memchr::memchr(marker, s) else {
        return false;
    };
    let mut i = 0;
    let mut next = Some(first);
    while let Some(pos) = next {
        out.extend_from_slice(s.get(i..pos).unwrap_or(&[]));
        i = escape(s, pos, out).max(pos + 1);
        next = s
            .get(i..)
            .and_then(|rest| memchr::memchr(marker, rest))
            .map(|p| i + p);
    }
    out.extend_from_slice(s.get(i..).unwrap_or(&[]));
    true
}

/// The byte of a one-letter C escape (`\n`, `\t`, ...).
fn c_escape(n: u8) -> Option<u8> {
    Some(match n {
        b'a' => 7,
        b'b' => 8,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        _ => return None,
    })
}

pub fn html_entity_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    decode_escapes(s, out, b'&', |s, i, out| match entity(s, i) {
        Some((byte, used)) => {
            out.push(byte);
            let end = i + used;
            if at(s, end) == b';' && end < s.len() {
                end + 1
            } else {
                end
            }
        }
        None => {
            out.push(b'&');
            i + 1
        }
    })
}

/// The entity at `s[i] == '&'`: its byte and length without the `;`.
fn entity(s: &[u8], i: usize) -> Option<(u8, usize)> {
    if at(s, i + 1) == b'#' {
        let (radix, start) = if matches!(at(s, i + 2), b'x' | b'X') {
            (16, i + 3)
        } else {
            (10, i + 2)
        };
        let mut j = start;
        let mut value: u32 = 0;
        while j < s.len() {
            let d = at(s, j);
            let v = if radix == 16 {
                hex_val(d)
            } else {
                d.is_ascii_digit().then(|| d - b'0')
            };
            let Some(v) = v else { break };
            // Only the lowest byte survives, so wrapping is harmless.
            value = value.wrapping_mul(radix).wrapping_add(u32::from(v));
            j += 1;
        }
        if j == start {
            return None;
        }
        return Some(((value & 0xff) as u8, j - i));
    }
    let start = i + 1;
    let mut j = start;
    while j < s.len() && at(s, j).is_ascii_alphanumeric() {
        j += 1;
    }
    let name = s.get(start..j)?;
    let byte = match name.to_ascii_lowercase().as_slice() {
        b"quot" => b'"',
        b"amp" => b'&',
        b"lt" => b'<',
        b"gt" => b'>',
        b"nbsp" => 0xa0,
        _ => return None,
    };
    Some((byte, j - i))
}

pub fn js_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    decode_escapes(s, out, b'\\', |s, i, out| {
        let n = at(s, i + 1);
        if i + 5 < s.len() && n == b'u' && (2..6).all(|k| is_hex(s, i + k)) {
            out.push(wide_to_byte(s, i + 2));
            i + 6
        } else if i + 3 < s.len() && n == b'x' && is_hex(s, i + 2) && is_hex(s, i + 3) {
            out.push(x2c(s, i + 2));
            i + 4
        } else if i + 1 < s.len() && is_octal(n) {
            let (v, used) = octal(s, i + 1, true);
            out.push(v);
            i + 1 + used
        } else if i + 1 < s.len() {
            out.push(c_escape(n).unwrap_or(n));
            i + 2
        } else {
            out.push(b'\\');
            i + 1
        }
    })
}

fn is_octal(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

/// Up to three octal digits at `i`. With `one_byte`, a third digit that
/// would take the value past 0o377 is left out.
fn octal(s: &[u8], i: usize, one_byte: bool) -> (u8, usize) {
    let mut n = 0;
    while n < 3 && is_octal(at(s, i + n)) && i + n < s.len() {
        n += 1;
    }
    if one_byte && n == 3 && at(s, i) > b'3' {
        n = 2;
    }
    let mut v: u32 = 0;
    for k in 0..n {
        v = v * 8 + u32::from(at(s, i + k) - b'0');
    }
    ((v & 0xff) as u8, n)
}

pub fn css_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    decode_escapes(s, out, b'\\', |s, at_backslash, out| {
        // A backslash at the very end is dropped.
        let i = at_backslash + 1;
        if i >= s.len() {
            return i;
        }
        let mut j = 0;
        while j < 6 && i + j < s.len() && is_hex(s, i + j) {
            j += 1;
        }
        if j == 0 {
            // An escaped new line is a line continuation.
            if at(s, i) != b'\n' {
                out.push(at(s, i));
            }
            return i + 1;
        }
        let (mut byte, full) = match j {
            1 => (hex_val(at(s, i)).unwrap_or(0), false),
            2 | 3 => (x2c(s, i + j - 2), false),
            4 => (x2c(s, i + 2), true),
            5 => (x2c(s, i + 3), at(s, i) == b'0'),
            _ => (x2c(s, i + 4), at(s, i) == b'0' && at(s, i + 1) == b'0'),
        };
        if full && byte > 0 && byte < 0x5f && is_f(at(s, i + j - 3)) && is_f(at(s, i + j - 4)) {
            byte += 0x20;
        }
        out.push(byte);
        // One white-space character after a hex escape belongs to it.
        if i + j < s.len() && is_space(at(s, i + j)) {
            j += 1;
        }
        i + j
    })
}

/// C's `isspace` in the C locale.
pub const fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

pub fn escape_seq_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    decode_escapes(s, out, b'\\', |s, i, out| {
        if i + 1 >= s.len() {
            out.push(b'\\');
            return i + 1;
        }
        let n = at(s, i + 1);
        let simple = match n {
            b'\\' | b'?' | b'\'' | b'"' => Some(n),
            _ => c_escape(n),
        };
        if let Some(v) = simple {
            out.push(v);
            i + 2
        } else if matches!(n, b'x' | b'X')
            && i + 3 < s.len()
            && is_hex(s, i + 2)
            && is_hex(s, i + 3)
        {
            out.push(x2c(s, i + 2));
            i + 4
        } else if is_octal(n) {
            let (v, used) = octal(s, i + 1, false);
            out.push(v);
            i + 1 + used
        } else {
            // Not an escape the engine knows: the backslash goes.
            out.push(n);
            i + 2
        }
    })
}

fn b64_val(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Base64 up to the first character outside the alphabet (`=` included);
/// with `skip_invalid`, such characters are passed over instead.
pub fn base64_decode(s: &[u8], out: &mut Vec<u8>, skip_invalid: bool) -> bool {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in s {
        let Some(v) = b64_val(b) else {
            if skip_invalid {
                continue;
            }
            break;
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    true
}

pub fn base64_encode(s: &[u8], out: &mut Vec<u8>) -> bool {
    use base64::Engine as _;
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(s)
            .as_bytes(),
    );
    true
}

pub fn hex_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    for pair in s.chunks(2) {
        match pair {
            [a, b] => match (hex_val(*a), hex_val(*b)) {
                (Some(a), Some(b)) => out.push((a << 4) | b),
                _ => {
                    out.clear();
                    return false;
                }
            },
            _ => {
                out.clear();
                return false;
            }
        }
    }
    true
}

/// The lower-case hex digit for the low four bits of `n`.
pub fn hex_digit(n: u8) -> u8 {
    b"0123456789abcdef"
        .get(usize::from(n & 15))
        .copied()
        .unwrap_or(b'0')
}

pub fn hex_encode(s: &[u8], out: &mut Vec<u8>) -> bool {
    for &b in s {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b));
    }
    true
}

/// `0x414243` inside text becomes `ABC`.
pub fn sql_hex_decode(s: &[u8], out: &mut Vec<u8>) -> bool {
    // Every escape starts with a 0 followed by x.
    if memchr::memmem::find(s, b"0x").is_none() && memchr::memmem::find(s, b"0X").is_none() {
        return false;
    }
    let mut i = 0;
    let mut changed = false;
    while i < s.len() {
        if at(s, i) == b'0'
            && matches!(at(s, i + 1), b'x' | b'X')
            && is_hex(s, i + 2)
            && is_hex(s, i + 3)
        {
            i += 2;
            while is_hex(s, i) && is_hex(s, i + 1) {
                out.push(x2c(s, i));
                i += 2;
            }
            changed = true;
        } else {
            out.push(at(s, i));
            i += 1;
        }
    }
    changed
}

/// UTF-8 sequences become `%uXXXX` (lower-case hex, at least four digits);
/// bytes that are not valid UTF-8 pass through.
pub fn utf8_to_unicode(s: &[u8], out: &mut Vec<u8>) -> bool {
    if s.is_ascii() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                push_unicode(valid, out);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                push_unicode(std::str::from_utf8(good).unwrap_or(""), out);
                let skip = e.error_len().unwrap_or(bad.len()).max(1);
                out.extend_from_slice(bad.get(..skip).unwrap_or(bad));
                rest = bad.get(skip..).unwrap_or(&[]);
            }
        }
    }
    true
}

fn push_unicode(text: &str, out: &mut Vec<u8>) {
    for ch in text.chars() {
        if ch.is_ascii() {
            out.push(ch as u8);
        } else {
            out.extend_from_slice(format!("%u{:04x}", u32::from(ch)).as_bytes());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(f: fn(&[u8], &mut Vec<u8>) -> bool, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if f(input, &mut out) {
            out
        } else {
            input.to_vec()
        }
    }

    #[test]
    fn url_decoding() {
        assert_eq!(run(url_decode, b"a%20b+c%2"), b"a b c%2");
        assert_eq!(run(url_decode, b"%zz%41"), b"%zzA");
        assert_eq!(run(url_decode_uni, b"%u0041%uff1c%u12%41+"), b"A<%u12A ");
        assert_eq!(run(url_decode_uni, b"%U0027x"), b"'x");
        assert_eq!(run(url_decode_uni, b"%"), b"%");
    }

    #[test]
    fn html_entities() {
        assert_eq!(
            run(
                html_entity_decode,
                b"&lt;a&gt;&#x41;&#66&quot;&nbsp;&foo;&#;"
            ),
            b"<a>AB\"\xa0&foo;&#;"
        );
        assert_eq!(
            run(html_entity_decode, b"&#X6a;avascript&colon;"),
            b"javascript&colon;"
        );
        assert_eq!(run(html_entity_decode, b"&#0000106"), b"j");
    }

    #[test]
    fn javascript_escapes() {
        assert_eq!(
            run(js_decode, b"\\x3cscript\\u003e\\uff1c\\101\\'\\n\\q\\"),
            b"<script><A'\nq\\"
        );
        assert_eq!(run(js_decode, b"\\777"), b"?7");
    }

    #[test]
    fn css_escapes() {
        assert_eq!(run(css_decode, b"\\6a \\61vascript"), b"javascript");
        assert_eq!(run(css_decode, b"\\ff1c\\00003c\\\nx\\-\\"), b"<<x-");
        assert_eq!(run(css_decode, b"\\1"), b"\x01");
    }

    #[test]
    fn c_escapes() {
        assert_eq!(run(escape_seq_decode, b"\\x41\\101\\n\\q\\xZ"), b"AA\nqxZ");
    }

    #[test]
    fn base64_and_hex() {
        let mut out = Vec::new();
        base64_decode(b"SGVsbG8=garbage", &mut out, false);
        assert_eq!(out, b"Hello");
        out.clear();
        base64_decode(b"SGV.sbG8", &mut out, true);
        assert_eq!(out, b"Hello");
        assert_eq!(run(hex_encode, b"\x00A"), b"0041");
        assert_eq!(run(hex_decode, b"4142"), b"AB");
        assert_eq!(run(hex_decode, b"414"), b"414");
        assert_eq!(
            run(sql_hex_decode, b"select 0x414243,0x4"),
            b"select ABC,0x4"
        );
    }

    #[test]
    fn utf8_to_unicode_escapes() {
        assert_eq!(
            run(utf8_to_unicode, "a\u{e9}\u{1f600}".as_bytes()),
            b"a%u00e9%u1f600"
        );
        assert_eq!(run(utf8_to_unicode, b"a\xc0\xafb"), b"a\xc0\xafb");
    }
}
