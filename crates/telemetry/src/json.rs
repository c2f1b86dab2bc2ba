//! A small JSON object writer for log lines. The access log writes one line
//! per request; this writer appends straight into the output buffer, skips
//! escaping for the common case of plain text, and formats numbers without
//! the `fmt` machinery. Keys are static and trusted; values are escaped.

use std::net::IpAddr;

/// Writes one JSON object into a buffer.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `x` is below `n` (`n` at most 128).
fn any_below(x: u64, n: u8) -> bool {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0
}

fn any_equal(x: u64, b: u8) -> bool {
    any_below(x ^ (ONES * u64::from(b)), 1)
}

fn word_needs_escape(x: u64) -> bool {
    any_below(x, 0x20) || any_equal(x, b'"') || any_equal(x, b'\\') || any_equal(x, 0x7f)
}

/// Whether `bytes` holds anything JSON strings must escape, eight bytes at
/// a time (every log line runs this over a dozen values). The bytes past
/// the last whole word are read as the last eight bytes, overlapping it,
/// and a value shorter than a word is padded with spaces: no byte loop.
fn any_needs_escape(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        let mut w = [b' '; 8];
        if let Some(head) = w.get_mut(..bytes.len()) {
            head.copy_from_slice(bytes);
        }
        return word_needs_escape(u64::from_le_bytes(w));
    }
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        if word_needs_escape(u64::from_le_bytes(<[u8; 8]>::try_from(w).unwrap_or([0; 8]))) {
            return true;
        }
    }
    if words.remainder().is_empty() {
        return false;
    }
    let tail = bytes.get(bytes.len() - 8..).unwrap_or(&[]);
    // Fail safe: an unreadable tail counts as needing the byte-wise path.
    <[u8; 8]>::try_from(tail).map_or(true, |t| word_needs_escape(u64::from_le_bytes(t)))
}

/// Appends `s` as a JSON string (with quotes).
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if !any_needs_escape(bytes) {
        out.extend_from_slice(bytes);
    } else {
        for &b in bytes {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b if needs_escape(b) => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'));
                    out.push(HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'));
                }
                b => out.push(b),
            }
        }
    }
    out.push(b'"');
}

/// Appends a decimal integer.
pub fn uint(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or(&[]));
}

/// Appends `n / 1000` with three decimals (e.g. microseconds as
/// milliseconds).
pub fn thousandths(out: &mut Vec<u8>, n: u64) {
    uint(out, n / 1000);
    let frac = n % 1000;
    out.push(b'.');
    out.push(b'0' + (frac / 100) as u8);
    out.push(b'0' + ((frac / 10) % 10) as u8);
    out.push(b'0' + (frac % 10) as u8);
}

/// Appends an IP address (IPv4 written directly, IPv6 through `Display`).
pub fn ip(out: &mut Vec<u8>, addr: IpAddr) {
    out.push(b'"');
    match addr {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                uint(out, u64::from(*o));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    // Inlined (as are the value writers below) so that each static key's
    // length is known where it is written and the copies become moves.
    #[inline]
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        let sep: &[u8] = if self.first { b"\"" } else { b",\"" };
        self.first = false;
        self.out.reserve(key.len() + 4);
        self.out.extend_from_slice(sep);
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    #[inline]
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        string(self.key(key), value);
        self
    }

    #[inline]
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(key, v);
        }
        self
    }

    /// A string or `null`.
    #[inline]
    pub fn str_or_null(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => string(self.key(key), v),
            None => self.key(key).extend_from_slice(b"null"),
        }
        self
    }

    #[inline]
    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        uint(self.key(key), value);
        self
    }

    #[inline]
    pub fn thousandths(&mut self, key: &str, value: u64) -> &mut Self {
        thousandths(self.key(key), value);
        self
    }

    #[inline]
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key)
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    #[inline]
    pub fn ip(&mut self, key: &str, value: IpAddr) -> &mut Self {
        ip(self.key(key), value);
        self
    }

    /// A nested object of string values.
    pub fn map<'k>(
        &mut self,
        key: &str,
        entries: impl Iterator<Item = (&'k str, &'k str)>,
    ) -> &mut Self {
        let out = self.key(key);
        out.push(b'{');
        for (i, (k, v)) in entries.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, k);
            out.push(b':');
            string(out, v);
        }
        out.push(b'}');
        self
    }

    /// Writes a value through a closure (for pre-formatted parts).
    pub fn with(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        write(self.key(key));
        self
    }

    pub fn end(&mut self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_scan_agrees_with_the_byte_rule() {
        // Every byte value, at every position of words and remainders.
        for b in 0..=255u8 {
            let expected = needs_escape(b);
            for len in 1..20 {
                for pos in 0..len {
                    let mut s = vec![b'a'; len];
                    s[pos] = b;
                    assert_eq!(
                        any_needs_escape(&s),
                        expected,
                        "byte {b:#x} at {pos} of {len}"
                    );
                }
            }
        }
        assert!(!any_needs_escape(b""));
    }

    #[test]
    fn output_is_json_that_round_trips() {
        let mut buf = Vec::new();
        let tricky = "quote \" backslash \\ newline \n tab \t nul \u{0} del \u{7f} é ✓";
        Object::new(&mut buf)
            .str("s", tricky)
            .opt_str("none", None)
            .str_or_null("null", None)
            .uint("n", 18_446_744_073_709_551_615)
            .uint("zero", 0)
            .thousandths("ms", 1_234_567)
            .thousandths("small", 5)
            .bool("b", true)
            .ip("v4", "10.0.0.255".parse().unwrap())
            .ip("v6", "2001:db8::1".parse().unwrap())
            .map("h", [("a", "1"), ("b\"", "x\ny")].into_iter())
            .end();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["s"], tricky);
        assert!(v.get("none").is_none());
        assert!(v["null"].is_null());
        assert_eq!(v["n"], 18_446_744_073_709_551_615u64);
        assert_eq!(v["zero"], 0);
        assert_eq!(v["ms"], 1234.567);
        assert_eq!(v["small"], 0.005);
        assert_eq!(v["b"], true);
        assert_eq!(v["v4"], "10.0.0.255");
        assert_eq!(v["v6"], "2001:db8::1");
        assert_eq!(v["h"]["b\""], "x\ny");
    }
}
