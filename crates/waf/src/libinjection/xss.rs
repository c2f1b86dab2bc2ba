//! Cross-site scripting detection: the input is tokenized as HTML from
//! each place reflected input can land (text, and inside unquoted, single,
//! double and back-quoted attribute values); any dangerous tag, event
//! handler or style attribute, script URL, doctype or IE-specific comment
//! is an attack.

use super::html5::{Html5, Start, TokenType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attr {
    None,
    Black,
    Url,
    Style,
    Indirect,
}

/// What an attribute named `upper` (in upper case) is.
fn attr_named(upper: &[u8]) -> Attr {
    match upper {
        b"ACTION" | b"BY" | b"BACKGROUND" | b"DYNSRC" | b"FORMACTION" | b"FOLDER" | b"FROM"
        | b"HANDLER" | b"HREF" | b"LOWSRC" | b"POSTER" | b"SRC" | b"TO" | b"VALUES"
        | b"XLINK:HREF" => Attr::Url,
        b"ATTRIBUTENAME" => Attr::Indirect,
        b"DATAFORMATAS" | b"DATASRC" => Attr::Black,
        b"FILTER" | b"STYLE" => Attr::Style,
        _ => Attr::None,
    }
}

const BLACK_TAGS: &[&str] = &[
    "APPLET", "BASE", "COMMENT", "EMBED", "FRAME", "FRAMESET", "HANDLER", "IFRAME", "IMPORT",
    "ISINDEX", "LINK", "LISTENER", "META", "NOSCRIPT", "OBJECT", "SCRIPT", "STYLE", "VMLFRAME",
    "XML", "XSS",
];

/// `word` (upper case) equals `s` compared without case, NULs in `s` skipped.
/// `nul`: whether `s` holds a NUL at all (asked once per word, as a word
/// is compared with whole lists).
fn equals_ignoring_nuls(word: &str, s: &[u8], nul: bool) -> bool {
    match s.len().cmp(&word.len()) {
        std::cmp::Ordering::Less => return false,
        // A NUL would make `s` shorter than `word`: a plain comparison.
        std::cmp::Ordering::Equal => return s.eq_ignore_ascii_case(word.as_bytes()),
        std::cmp::Ordering::Greater if !nul => return false,
        std::cmp::Ordering::Greater => {}
    }
    let mut w = word.bytes();
    for &c in s {
        if c == 0 {
            continue;
        }
        match w.next() {
            Some(wc) if wc == c.to_ascii_uppercase() => {}
            _ => return false,
        }
    }
    w.next().is_none()
}

fn black_tag(s: &[u8]) -> bool {
    if s.len() < 3 {
        return false;
    }
    let nul = memchr::memchr(0, s).is_some();
    if BLACK_TAGS.iter().any(|t| equals_ignoring_nuls(t, s, nul)) {
        return true;
    }
    let head = s.get(..3).unwrap_or(&[]);
    // Anything SVG or XSL(T).
    head.eq_ignore_ascii_case(b"svg") || head.eq_ignore_ascii_case(b"xsl")
}

fn black_attr(s: &[u8]) -> Attr {
    if s.len() < 2 {
        return Attr::None;
    }
    let nul = memchr::memchr(0, s).is_some();
    if s.len() >= 5 {
        // Event handlers: on*.
        if s.get(..2).is_some_and(|h| h.eq_ignore_ascii_case(b"on")) {
            return Attr::Black;
        }
        let head = s.get(..5).unwrap_or(&[]);
        let head_nul = nul && head.contains(&0);
        if equals_ignoring_nuls("XMLNS", head, head_nul)
            || equals_ignoring_nuls("XLINK", head, head_nul)
        {
            return Attr::Black;
        }
    }
    // The name without NULs, in upper case; no listed name is longer.
    let mut upper = [0u8; 16];
    let mut n = 0;
    for &c in s.iter().filter(|&&c| c != 0) {
        match upper.get_mut(n) {
            Some(u) => *u = c.to_ascii_uppercase(),
            None => return Attr::None,
        }
        n += 1;
    }
    attr_named(upper.get(..n).unwrap_or(&[]))
}

/// The character at the start of `s` with HTML numeric entities decoded,
/// and how many bytes it took.
fn decode_char_at(s: &[u8]) -> (i32, usize) {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let Some(&first) = s.first() else {
        return (-1, 0);
    };
    if first != b'&' || s.len() < 2 {
        return (i32::from(first), 1);
    }
    if at(1) != b'#' {
        return (i32::from(b'&'), 1);
    }
    let hex = matches!(at(2), b'x' | b'X');
    let radix = if hex { 16 } else { 10 };
    let first_digit = if hex { 3 } else { 2 };
    let Some(mut val) = (at(first_digit) as char).to_digit(radix).map(|d| d as i32) else {
        return (i32::from(b'&'), 1);
    };
    let mut i = first_digit + 1;
    while i < s.len() {
        let c = at(i);
        if c == b';' {
            return (val, i + 1);
        }
        let Some(d) = (c as char).to_digit(radix) else {
            return (val, i);
        };
        val = val * radix as i32 + d as i32;
        if val > 0x1000ff {
            return (i32::from(b'&'), 1);
        }
        i += 1;
    }
    (val, i)
}

/// Whether HTML-encoded `s` starts with `prefix` (upper case), ignoring
/// leading control characters and white space, NULs and new lines.
fn encoded_starts_with(prefix: &str, s: &[u8]) -> bool {
    let mut p = prefix.bytes().peekable();
    let mut rest = s;
    let mut first = true;
    while !rest.is_empty() {
        let Some(&want) = p.peek() else { return true };
        let (c, used) = decode_char_at(rest);
        rest = rest.get(used.max(1)..).unwrap_or(&[]);
        if first && c <= 32 {
            continue;
        }
        first = false;
        if c == 0 || c == 10 {
            continue;
        }
        let c = if (i32::from(b'a')..=i32::from(b'z')).contains(&c) {
            c - 0x20
        } else {
            c
        };
        if c != i32::from(want) {
            return false;
        }
        p.next();
    }
    p.peek().is_none()
}

fn black_url(s: &[u8]) -> bool {
    let start = s.iter().position(|&c| c > 32 && c < 127).unwrap_or(s.len());
    let s = s.get(start..).unwrap_or(&[]);
    ["DATA", "VIEW-SOURCE", "JAVA", "VBSCRIPT"]
        .iter()
        .any(|p| encoded_starts_with(p, s))
}

fn is_xss_from(s: &[u8], start: Start) -> bool {
    let mut h = Html5::new(s, start);
    let mut attr = Attr::None;
    while h.next() {
        let t = h.token();
        if h.token_type != TokenType::AttrValue {
            attr = Attr::None;
        }
        match h.token_type {
            TokenType::Doctype => return true,
            TokenType::TagNameOpen if black_tag(t) => return true,
            TokenType::AttrName => attr = black_attr(t),
            TokenType::AttrValue => {
                match attr {
                    Attr::None => {}
                    Attr::Black | Attr::Style => return true,
                    Attr::Url => {
                        if black_url(t) {
                            return true;
                        }
                    }
                    Attr::Indirect => {
                        if black_attr(t) != Attr::None {
                            return true;
                        }
                    }
                }
                attr = Attr::None;
            }
            TokenType::TagComment => {
                // IE ends tags with a back quote.
                if t.contains(&b'`') {
                    return true;
                }
                if t.len() > 3 {
                    let head = t.get(..3).unwrap_or(&[]);
                    // IE conditional comments and XML processing instructions.
                    if (t.first() == Some(&b'[')
                        && t.get(1..3).is_some_and(|h| h.eq_ignore_ascii_case(b"if")))
                        || head.eq_ignore_ascii_case(b"xml")
                    {
                        return true;
                    }
                }
                if t.len() > 5 {
                    let head = t.get(..6).unwrap_or(&[]);
                    let nul = head.contains(&0);
                    if equals_ignoring_nuls("IMPORT", head, nul)
                        || equals_ignoring_nuls("ENTITY", head, nul)
                    {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// Whether `s` is a cross-site scripting attack from any starting context.
pub fn detect(s: &[u8]) -> bool {
    // Every verdict needs a tag, a doctype or a comment (each opened by
    // `<`), or an attribute given a value (by `=`): text with neither,
    // from any context, is only text, attribute names and values nothing
    // names. Most clean values end here.
    memchr::memchr2(b'<', b'=', s).is_some() && detect_in_every_context(s)
}

/// `detect` without its shortcut: `s` tokenized from every context.
pub fn detect_in_every_context(s: &[u8]) -> bool {
    [
        Start::Data,
        Start::ValueNoQuote,
        Start::ValueSingleQuote,
        Start::ValueDoubleQuote,
        Start::ValueBackQuote,
    ]
    .into_iter()
    .any(|start| is_xss_from(s, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_and_harmless_markup() {
        for attack in [
            &b"<script>alert(1)</script>"[..],
            b"<img src=x onerror=alert(1)>",
            b"<a href=\"&#x6A;avascript:alert(1)\">",
            b"\" onmouseover=\"alert(1)",
            b"<svg/onload=alert(1)>",
            b"<!DOCTYPE html>",
            b"<div style=\"x\">",
        ] {
            assert!(detect(attack), "{}", String::from_utf8_lossy(attack));
        }
        for benign in [
            &b"hello world"[..],
            b"<b>bold</b>",
            b"<a href=\"/x\">x</a>",
            b"1 < 2 > 0",
        ] {
            assert!(!detect(benign), "{}", String::from_utf8_lossy(benign));
        }
    }
}
