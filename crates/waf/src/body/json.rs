//! JSON bodies flattened into arguments: `{"a":{"b":[1,"x"]}}` gives
//! `json.a.b = 2` (an array's length), `json.a.b.0 = 1` and
//! `json.a.b.1 = x`.
//!
//! A small strict parser (RFC 8259) rather than a document tree: members
//! come out in the order the body gives them, duplicate names each give
//! an argument, numbers keep the text they were written with (as the
//! reference engines report them), and nesting is followed with a stack of
//! its own, so no depth of input can exhaust the thread's stack. Every
//! name and value is written into one buffer that the arguments share.
//!
//! Each argument carries its whole name, so a long name over many values
//! would multiply the body's size: only the first `max_args` arguments are
//! kept (the rest are parsed, for validity, and dropped, as the arguments
//! limit would drop them anyway), and names and values together may not
//! exceed twice the body and a megabyte.

use bytes::Bytes;

use crate::tx::Pair;

pub fn parse(body: &[u8], depth_limit: usize, max_args: usize) -> Result<Vec<Pair>, String> {
    // Strings may hold any UTF-8 but nothing else; outside them only ASCII
    // is valid, so checking the whole body once covers both.
    if let Err(e) = std::str::from_utf8(body) {
        return Err(format!("invalid UTF-8 at byte {}", e.valid_up_to()));
    }
    let mut p = Parser {
        r: Reader { s: body, i: 0 },
        key: b"json".to_vec(),
        buf: Vec::with_capacity(body.len().saturating_mul(2).saturating_add(64)),
        pairs: Vec::new(),
        max_args,
        max_bytes: body.len().saturating_mul(2).saturating_add(1 << 20),
        scratch: Vec::new(),
    };
    p.document(depth_limit)?;
    let buf = Bytes::from(p.buf);
    Ok(p.pairs
        .into_iter()
        .map(|(k, v)| (buf.slice(k.0..k.1), buf.slice(v.0..v.1)))
        .collect())
}

type Span = (usize, usize);

/// What is built from the body, beside the reader that reads it (apart,
/// so a string can be read straight into the key or the buffer).
struct Parser<'a> {
    r: Reader<'a>,
    /// The name of the value being read: `json` and the path to it.
    key: Vec<u8>,
    /// Every argument's name and value, one after the other.
    buf: Vec<u8>,
    pairs: Vec<(Span, Span)>,
    max_args: usize,
    max_bytes: usize,
    /// Where strings of arguments past `max_args` are read.
    scratch: Vec<u8>,
}

/// An open object or array, with the length of the name it was opened
/// under.
enum Frame {
    Object {
        key_len: usize,
    },
    Array {
        key_len: usize,
        next: usize,
        /// The argument that will hold the array's length, if kept.
        count: Option<usize>,
    },
}

impl Parser<'_> {
    fn document(&mut self, limit: usize) -> Result<(), String> {
        let mut stack: Vec<Frame> = Vec::new();
        self.r.ws();
        loop {
            // A value is expected here, inside `stack.len()` containers.
            if stack.len() > limit {
                return Err(format!("nesting deeper than {limit}"));
            }
            match self.r.peek() {
                Some(b'{') => {
                    self.r.i += 1;
                    self.r.ws();
                    if !self.r.eat(b'}') {
                        stack.push(Frame::Object {
                            key_len: self.key.len(),
                        });
                        self.member_name()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.r.i += 1;
                    self.r.ws();
                    if !self.r.eat(b']') {
                        // The array itself is an argument too (its
                        // length), so its name is inspected like any other.
                        let count = self.keep().then(|| {
                            let key = self.put_key();
                            self.pairs.push((key, (0, 0)));
                            self.pairs.len() - 1
                        });
                        self.check_size()?;
                        stack.push(Frame::Array {
                            key_len: self.key.len(),
                            next: 0,
                            count,
                        });
                        self.key.extend_from_slice(b".0");
                        continue;
                    }
                }
                Some(b'"') => {
                    self.r.i += 1;
                    if self.keep() {
                        let key = self.put_key();
                        let start = self.buf.len();
                        self.r.string(&mut self.buf)?;
                        self.pairs.push((key, (start, self.buf.len())));
                        self.check_size()?;
                    } else {
                        let read = self.r.string(&mut self.scratch);
                        self.scratch.clear();
                        read?;
                    }
                }
                Some(b't') => self.literal(b"true", b"true")?,
                Some(b'f') => self.literal(b"false", b"false")?,
                Some(b'n') => self.literal(b"null", b"")?,
                Some(b'-' | b'0'..=b'9') => {
                    let text = self.r.number()?;
                    self.scalar(text)?;
                }
                _ => return Err(self.r.error("a value")),
            }
            // A value is complete: close the containers it completes, up to
            // the next one that goes on.
            loop {
                self.r.ws();
                match stack.last_mut() {
                    None => {
                        return match self.r.peek() {
                            None => Ok(()),
                            Some(_) => Err(self.r.error("the end of the body")),
                        };
                    }
                    Some(Frame::Object { key_len }) => {
                        self.key.truncate(*key_len);
                        if self.r.eat(b',') {
                            self.r.ws();
                            self.member_name()?;
                            break;
                        }
                        if !self.r.eat(b'}') {
                            return Err(self.r.error("',' or '}'"));
                        }
                        stack.pop();
                    }
                    Some(Frame::Array {
                        key_len,
                        next,
                        count,
                    }) => {
                        self.key.truncate(*key_len);
                        *next += 1;
                        if self.r.eat(b',') {
                            self.r.ws();
                            self.key.push(b'.');
                            self.key.extend_from_slice(next.to_string().as_bytes());
                            break;
                        }
                        if !self.r.eat(b']') {
                            return Err(self.r.error("',' or ']'"));
                        }
                        if let Some(count) = *count {
                            let start = self.buf.len();
                            self.buf.extend_from_slice(next.to_string().as_bytes());
                            let len = (start, self.buf.len());
                            if let Some(pair) = self.pairs.get_mut(count) {
                                pair.1 = len;
                            }
                        }
                        stack.pop();
                    }
                }
            }
        }
    }

    /// `"name"` and the colon after it: the name joins the key.
    fn member_name(&mut self) -> Result<(), String> {
        if !self.r.eat(b'"') {
            return Err(self.r.error("a member name"));
        }
        self.key.push(b'.');
        self.r.string(&mut self.key)?;
        self.r.ws();
        if !self.r.eat(b':') {
            return Err(self.r.error("':'"));
        }
        self.r.ws();
        Ok(())
    }

    /// Copies the current key into the buffer.
    fn put_key(&mut self) -> Span {
        let start = self.buf.len();
        self.buf.extend_from_slice(&self.key);
        (start, self.buf.len())
    }

    /// `true`, `false` or `null`, given as `value`.
    fn literal(&mut self, word: &[u8], value: &[u8]) -> Result<(), String> {
        if !self.r.rest().starts_with(word) {
            return Err(self.r.error("a value"));
        }
        self.r.i += word.len();
        self.scalar(value)
    }

    /// An argument of the current key with `value`.
    fn scalar(&mut self, value: &[u8]) -> Result<(), String> {
        if self.keep() {
            let key = self.put_key();
            let start = self.buf.len();
            self.buf.extend_from_slice(value);
            self.pairs.push((key, (start, self.buf.len())));
        }
        self.check_size()
    }

    /// Whether one more argument is kept.
    fn keep(&self) -> bool {
        self.pairs.len() < self.max_args
    }

    fn check_size(&self) -> Result<(), String> {
        if self.buf.len() > self.max_bytes {
            return Err(format!(
                "names and values larger than {} bytes",
                self.max_bytes
            ));
        }
        Ok(())
    }
}

/// The body and how far it has been read.
struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    /// The rest of a string whose opening quote was read, unescaped onto
    /// `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        loop {
            let rest = self.rest();
            let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
            let run = rest.get(..end).unwrap_or_default();
            // A control character ends the run (and the string, in error).
            // `any` is vectorised; `position` runs only when there is one.
            let plain = if run.iter().any(|&b| b < 0x20) {
                run.iter().position(|&b| b < 0x20).unwrap_or(end)
            } else {
                end
            };
            out.extend_from_slice(rest.get(..plain).unwrap_or_default());
            self.i += plain;
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    self.escape(out)?;
                }
                Some(_) => return Err(self.error("no control character in a string")),
                None => return Err(self.error("the closing quote")),
            }
        }
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let b = match self.next() {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 0x08,
            Some(b'f') => 0x0c,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let c = self.unicode_escape()?;
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("a valid escape")),
        };
        out.push(b);
        Ok(())
    }

    /// The code point of `\uXXXX` (the `\u` read), or of a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !(self.eat(b'\\') && self.eat(b'u')) {
                    return Err(self.error("the second half of a surrogate pair"));
                }
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error("the second half of a surrogate pair"));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("no lone surrogate")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.error("a code point"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .next()
                .and_then(|b| (b as char).to_digit(16))
                .ok_or_else(|| self.error("four hex digits"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    /// A number, as written: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<&'a [u8], String> {
        let start = self.i;
        self.eat(b'-');
        match self.next() {
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("a digit")),
        }
        if self.eat(b'.') {
            self.some_digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.some_digits()?;
        }
        Ok(self.s.get(start..self.i).unwrap_or_default())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), String> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error("a digit"));
        }
        self.digits();
        Ok(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.s.get(self.i..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> bool {
        let yes = self.peek() == Some(b);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn error(&self, expected: &str) -> String {
        match self.peek() {
            Some(b) => format!(
                "expected {expected} at byte {}, found {:?}",
                self.i, b as char
            ),
            None => format!("expected {expected} at byte {}, found the end", self.i),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn flat(body: &str) -> Vec<(String, String)> {
        parse(body.as_bytes(), 10, 1000)
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nested_values_are_flattened() {
        assert_eq!(
            flat(r#"{"a":{"b":[1,"x",null,true]},"c":"d"}"#),
            pairs(&[
                ("json.a.b", "4"),
                ("json.a.b.0", "1"),
                ("json.a.b.1", "x"),
                ("json.a.b.2", ""),
                ("json.a.b.3", "true"),
                ("json.c", "d"),
            ])
        );
    }

    #[test]
    fn members_keep_their_order_duplicates_and_number_text() {
        assert_eq!(
            flat(r#" { "z" : 1.50 , "a" : -0 , "z" : 1E+2, "e": [], "o": {}, "f": false } "#),
            pairs(&[
                ("json.z", "1.50"),
                ("json.a", "-0"),
                ("json.z", "1E+2"),
                ("json.f", "false"),
            ])
        );
        assert_eq!(flat(r#""top""#), pairs(&[("json", "top")]));
        assert_eq!(
            flat(r#"[[],[7,[8]]]"#),
            pairs(&[
                ("json", "2"),
                ("json.1", "2"),
                ("json.1.0", "7"),
                ("json.1.1", "1"),
                ("json.1.1.0", "8"),
            ])
        );
    }

    #[test]
    fn escapes_are_decoded_in_names_and_values() {
        assert_eq!(
            flat(r#"{"a\"b\u00e9":"\\ \/ \b\f\n\r\t \u0027 \ud83d\ude00"}"#),
            pairs(&[("json.a\"bé", "\\ / \u{8}\u{c}\n\r\t ' 😀")])
        );
    }

    #[test]
    fn broken_or_too_deep_json_is_an_error() {
        for bad in [
            "{\"a\":",
            "",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "[1 2]",
            "[1,]",
            "{a:1}",
            "01",
            "1.",
            "-",
            "1e",
            "tru",
            "nul",
            "\"a",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\nb\"",
            "{} {}",
            "[1]]",
            "\u{feff}{}",
        ] {
            assert!(
                parse(bad.as_bytes(), 10, 1000).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(parse(b"\"\xff\"", 10, 1000).is_err());
        assert!(parse(b"[[[[1]]]]", 2, 1000).unwrap_err().contains("deeper"));
        assert!(parse(b"[[[1]]]", 2, 1000).unwrap_err().contains("deeper"));
        assert!(parse(b"[[1]]", 2, 1000).is_ok());
        // Depth is followed without recursion: no input exhausts the stack.
        let deep = "[".repeat(1_000_000);
        assert!(parse(deep.as_bytes(), usize::MAX, 1000).is_err());
        assert!(
            parse(deep.as_bytes(), 512, 1000)
                .unwrap_err()
                .contains("deeper")
        );
    }

    #[test]
    fn arguments_past_the_limit_are_dropped_and_size_is_bounded() {
        let body = br#"{"a":[1,"two",{"b":3}],"c":4}"#;
        let all = parse(body, 10, 1000).unwrap();
        assert_eq!(all.len(), 5);
        for n in 0..all.len() {
            assert_eq!(parse(body, 10, n).unwrap(), all[..n].to_vec());
        }
        // Past the limit the body must still be valid.
        assert!(parse(br#"{"a":1,"b":"x\q"}"#, 10, 1).is_err());
        // A long name over many small values would multiply the body.
        let name = "n".repeat(100_000);
        let body = format!(r#"{{"{name}":[{}1]}}"#, "1,".repeat(100));
        let err = parse(body.as_bytes(), 10, 1000).unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        assert_eq!(parse(body.as_bytes(), 10, 5).unwrap().len(), 5);
    }
}
