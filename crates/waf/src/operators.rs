//! Operators (`@rx`, `@pm`, `@eq`, ...): the test a rule applies to each
//! transformed value. Parameters are checked and compiled at load, so a
//! running rule never meets a bad pattern.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use ipnet::IpNet;
use regex::bytes::{Regex, RegexBuilder};

use crate::macros::Macro;
use crate::prefilter;
use crate::ruleset::DataFiles;
use crate::rx::Rx;
use crate::whole::Whole;

/// Capture groups of a match, for the `capture` action (`TX.0` .. `TX.9`).
pub type Captures = Vec<Vec<u8>>;

#[derive(Debug, Clone)]
pub enum Op {
    Rx(Rx),
    /// An `@rx` pattern that only tests the whole value simply (see
    /// `whole`).
    Whole(Whole),
    Pm(Arc<AhoCorasick>),
    StrEq(Macro),
    Contains(Macro),
    ContainsWord(Macro),
    BeginsWith(Macro),
    EndsWith(Macro),
    Within(Macro),
    Eq(Macro),
    Ge(Macro),
    Gt(Macro),
    Le(Macro),
    Lt(Macro),
    ValidateByteRange(Box<[bool; 256]>),
    ValidateUrlEncoding,
    ValidateUtf8Encoding,
    IpMatch(Vec<IpNet>),
    DetectSqli,
    DetectXss,
    Unconditional,
    NoMatch,
}

#[derive(Debug, Clone)]
pub struct Operator {
    pub op: Op,
    pub negated: bool,
    /// As written, for `waf eval` and errors.
    pub text: String,
    /// Literals one of which a value must contain (ignoring case) for the
    /// operator to match, when there is such a list (see `prefilter`).
    pub literals: Option<Vec<Vec<u8>>>,
}

/// Compiles a rule pattern: byte-oriented (no Unicode classes, `\xHH` is a
/// byte), `.` matches new lines, `$` only the very end.
pub fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&byte_escapes(pattern))
        .unicode(false)
        .dot_matches_new_line(true)
        .size_limit(256 << 20)
        .dfa_size_limit(64 << 20)
        .build()
        .map_err(|e| format!("cannot compile regular expression: {e}"))
}

/// The syntax tree of a pattern as `compile_regex` reads it (escapes
/// already rewritten): bytes, `.` matching new lines, `$` only the very
/// end. What the load-time analyses of patterns look at.
pub fn syntax_tree(pattern: &str) -> Option<regex_syntax::hir::Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .dot_matches_new_line(true)
        .build()
        .parse(pattern)
        .ok()
}

/// Compiles patterns already compiled alone (by `compile_regex`, so
/// escapes rewritten) into one set with the same options: a set that read
/// them differently would let values through that a rule matches.
pub fn compile_regex_set<S: AsRef<str>>(patterns: &[S]) -> Result<regex::bytes::RegexSet, String> {
    regex::bytes::RegexSetBuilder::new(patterns)
        .unicode(false)
        .dot_matches_new_line(true)
        .size_limit(256 << 20)
        .dfa_size_limit(128 << 20)
        .build()
        .map_err(|e| format!("cannot compile regular expression set: {e}"))
}

/// `\x{ff}` means the byte 0xff to the reference engines; Rust's regex
/// reads the braced form as a code point, so it is rewritten as `\xff`.
fn byte_escapes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(pos) = rest.find('\\') {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let after = rest.get(pos + 1..).unwrap_or("");
        if let Some(body) = after.strip_prefix("x{")
            && let Some(end) = body.find('}')
        {
            let hex = body.get(..end).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push_str(&format!("\\x{v:02x}"));
                rest = body.get(end + 1..).unwrap_or("");
                continue;
            }
        }
        // Any other escape is copied with its escaped character.
        let mut chars = after.chars();
        out.push('\\');
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out
}

impl Operator {
    /// Parses `"!@rx ..."`; `dir` is where `@pmFromFile` looks for files.
    pub fn parse(text: &str, data: &DataFiles) -> Result<Operator, String> {
        let t = text.trim_start();
        let (negated, t) = match t.strip_prefix('!') {
            Some(r) => (true, r.trim_start()),
            None => (false, t),
        };
        let (name, param) = match t.strip_prefix('@') {
            Some(r) => match r.split_once(|c: char| c.is_ascii_whitespace()) {
                Some((n, p)) => (n, p.trim_start()),
                None => (r, ""),
            },
            // No operator named: a regular expression.
            None => ("rx", t),
        };
        let mac = || Macro::parse(param);
        let mut literals = None;
        let op = match name.to_ascii_lowercase().as_str() {
            "rx" => {
                if param.contains("%{") {
                    return Err("macros inside @rx patterns are not supported".into());
                }
                let re = compile_regex(param)?;
                // The pattern compiled, so its syntax tree reads; it is
                // read once for every load-time analysis.
                match syntax_tree(&byte_escapes(param)) {
                    Some(hir) => {
                        literals = prefilter::regex_literals(&hir);
                        match Whole::recognise(&hir) {
                            Some(w) => Op::Whole(w),
                            None => Op::Rx(Rx::new(&hir, re, compile_regex)),
                        }
                    }
                    None => Op::Rx(Rx::whole(re)),
                }
            }
            "pm" => {
                literals = prefilter::phrase_literals(param.split_ascii_whitespace());
                Op::Pm(Arc::new(phrases(param.split_ascii_whitespace())?))
            }
            "pmfromfile" | "pmf" => {
                let mut words = Vec::new();
                for file in param.split_ascii_whitespace() {
                    let text = data.read(file)?;
                    words.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(str::to_string),
                    );
                }
                literals = prefilter::phrase_literals(words.iter().map(String::as_str));
                Op::Pm(Arc::new(phrases(words.iter().map(String::as_str))?))
            }
            "streq" => Op::StrEq(mac()?),
            "contains" => Op::Contains(mac()?),
            "containsword" => Op::ContainsWord(mac()?),
            "beginswith" => Op::BeginsWith(mac()?),
            "endswith" => Op::EndsWith(mac()?),
            "within" => Op::Within(mac()?),
            "eq" => Op::Eq(mac()?),
            "ge" => Op::Ge(mac()?),
            "gt" => Op::Gt(mac()?),
            "le" => Op::Le(mac()?),
            "lt" => Op::Lt(mac()?),
            "validatebyterange" => Op::ValidateByteRange(byte_ranges(param)?),
            "validateurlencoding" => Op::ValidateUrlEncoding,
            "validateutf8encoding" => Op::ValidateUtf8Encoding,
            "ipmatch" => Op::IpMatch(networks(param)?),
            "detectsqli" => Op::DetectSqli,
            "detectxss" => Op::DetectXss,
            "unconditionalmatch" => Op::Unconditional,
            "nomatch" => Op::NoMatch,
            other => return Err(format!("operator @{other} is not supported")),
        };
        Ok(Operator {
            op,
            // A negated operator matches where its literals are missing.
            literals: literals.filter(|_| !negated),
            negated,
            text: text.to_string(),
        })
    }
}

fn phrases<'a>(words: impl Iterator<Item = &'a str>) -> Result<AhoCorasick, String> {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(words)
        .map_err(|e| format!("cannot build the phrase matcher: {e}"))
}

fn byte_ranges(param: &str) -> Result<Box<[bool; 256]>, String> {
    let mut allowed = Box::new([false; 256]);
    for part in param.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let lo: u8 = lo.parse().map_err(|_| format!("bad byte range {part:?}"))?;
        let hi: u8 = hi.parse().map_err(|_| format!("bad byte range {part:?}"))?;
        if lo > hi {
            return Err(format!("bad byte range {part:?}"));
        }
        for b in lo..=hi {
            if let Some(slot) = allowed.get_mut(usize::from(b)) {
                *slot = true;
            }
        }
    }
    Ok(allowed)
}

fn networks(param: &str) -> Result<Vec<IpNet>, String> {
    param
        .split([',', ' '])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("bad address or network {p:?}"))
        })
        .collect()
}

/// C's `atoi`: optional sign and leading digits, anything else is 0.
pub fn atoi(s: &[u8]) -> i64 {
    let s = crate::transforms::trim_start(s);
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..).unwrap_or(&[])),
        Some(b'+') => (false, s.get(1..).unwrap_or(&[])),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if neg { -v } else { v }
}

/// What the engine needs from a transaction to run an operator.
pub trait Context {
    fn expand(&self, m: &Macro) -> Vec<u8>;
    fn remote_addr(&self) -> Option<std::net::IpAddr>;
    /// What a macro of one reference to a key of a writable collection
    /// (`%{tx.allowed_methods}`) expands to, lent rather than copied; `None`
    /// when the macro is not such a reference.
    fn lend<'a>(&'a self, _m: &Macro) -> Option<&'a [u8]> {
        None
    }
}

impl Operator {
    /// For a comparison of numbers with a literal operand (`@lt 2`,
    /// `@eq 0`), whether `value` matches (before negation); `None` for
    /// any other operator. Some ninety such checks of the paranoia level,
    /// the anomaly scores and the settings run per request: this answers
    /// them without `test`'s frame, which is sized for the searches.
    #[inline]
    pub fn compare_literal(&self, value: &[u8]) -> Option<bool> {
        let (m, cmp): (&Macro, fn(&i64, &i64) -> bool) = match &self.op {
            Op::Eq(m) => (m, i64::eq),
            Op::Ge(m) => (m, i64::ge),
            Op::Gt(m) => (m, i64::gt),
            Op::Le(m) => (m, i64::le),
            Op::Lt(m) => (m, i64::lt),
            _ => return None,
        };
        Some(cmp(&atoi(value), &atoi(m.literal()?)))
    }

    /// Whether `value` matches (before negation). Fills `captures` when
    /// given and the operator captures.
    pub fn test(&self, value: &[u8], cx: &dyn Context, captures: Option<&mut Captures>) -> bool {
        match &self.op {
            Op::Rx(re) => match captures {
                None => re.is_match(value),
                // Most values do not match: the fast test first, the
                // capturing search only for a match.
                Some(_) if !re.is_match(value) => false,
                // Without groups, `TX.0` is the match alone, which a plain
                // search finds at a fraction of a capturing one's cost.
                Some(caps) if re.regex().captures_len() == 1 => match re.regex().find(value) {
                    None => false,
                    Some(m) => {
                        caps.clear();
                        caps.push(m.as_bytes().to_vec());
                        true
                    }
                },
                Some(caps) => match re.regex().captures(value) {
                    None => false,
                    Some(c) => {
                        caps.clear();
                        for g in c.iter().take(10) {
                            caps.push(g.map(|m| m.as_bytes().to_vec()).unwrap_or_default());
                        }
                        true
                    }
                },
            },
            Op::Whole(w) => {
                let m = w.test(value);
                // The whole value is the match, and there are no groups.
                if let (true, Some(caps)) = (m, captures) {
                    caps.clear();
                    caps.push(value.to_vec());
                }
                m
            }
            Op::Pm(ac) => match ac.find(value) {
                None => false,
                Some(m) => {
                    if let Some(caps) = captures {
                        caps.clear();
                        caps.push(value.get(m.range()).unwrap_or(&[]).to_vec());
                    }
                    true
                }
            },
            Op::StrEq(m) => value == &*with(cx, m),
            Op::Contains(m) => {
                let p = with(cx, m);
                found(value, &p, captures)
            }
            Op::ContainsWord(m) => contains_word(value, &with(cx, m)),
            Op::BeginsWith(m) => value.starts_with(&with(cx, m)),
            Op::EndsWith(m) => value.ends_with(&with(cx, m)),
            Op::Within(m) => {
                value.is_empty() || memchr::memmem::find(&with(cx, m), value).is_some()
            }
            Op::Eq(m) => atoi(value) == atoi(&with(cx, m)),
            Op::Ge(m) => atoi(value) >= atoi(&with(cx, m)),
            Op::Gt(m) => atoi(value) > atoi(&with(cx, m)),
            Op::Le(m) => atoi(value) <= atoi(&with(cx, m)),
            Op::Lt(m) => atoi(value) < atoi(&with(cx, m)),
            Op::ValidateByteRange(allowed) => value
                .iter()
                .any(|&b| !allowed.get(usize::from(b)).copied().unwrap_or(false)),
            Op::ValidateUrlEncoding => invalid_url_encoding(value),
            Op::ValidateUtf8Encoding => std::str::from_utf8(value).is_err(),
            Op::IpMatch(nets) => {
                let addr = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                    .or_else(|| cx.remote_addr());
                addr.is_some_and(|a| nets.iter().any(|n| n.contains(&a)))
            }
            Op::DetectSqli => match crate::libinjection::sqli::detect(value) {
                None => false,
                Some(fingerprint) => {
                    if let Some(caps) = captures {
                        caps.clear();
                        caps.push(fingerprint);
                    }
                    true
                }
            },
            Op::DetectXss => crate::libinjection::xss::detect(value),
            Op::Unconditional => true,
            Op::NoMatch => false,
        }
    }
}

/// A parameter's value: borrowed when it is literal text (the common
/// case), expanded when it holds macros.
fn with<'a>(cx: &'a dyn Context, m: &'a Macro) -> std::borrow::Cow<'a, [u8]> {
    match m.literal().or_else(|| cx.lend(m)) {
        Some(l) => std::borrow::Cow::Borrowed(l),
        None => std::borrow::Cow::Owned(cx.expand(m)),
    }
}

fn found(value: &[u8], needle: &[u8], captures: Option<&mut Captures>) -> bool {
    let hit = memchr::memmem::find(value, needle).is_some();
    if hit && let Some(caps) = captures {
        caps.clear();
        caps.push(needle.to_vec());
    }
    hit
}

fn contains_word(value: &[u8], word: &[u8]) -> bool {
    if word.is_empty() {
        return true;
    }
    let is_word = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    memchr::memmem::find_iter(value, word).any(|at| {
        let before = at.checked_sub(1).and_then(|i| value.get(i));
        !is_word(before) && !is_word(value.get(at + word.len()))
    })
}

fn invalid_url_encoding(value: &[u8]) -> bool {
    let mut i = 0;
    while i < value.len() {
        if value.get(i) == Some(&b'%') {
            let ok = value.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && value.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn here() -> DataFiles {
        DataFiles::Dir(".".into())
    }

    struct Cx;
    impl Context for Cx {
        fn expand(&self, m: &Macro) -> Vec<u8> {
            m.expand(|_, _, out| out.extend_from_slice(b"GET HEAD POST"))
        }
        fn remote_addr(&self) -> Option<std::net::IpAddr> {
            "10.1.2.3".parse().ok()
        }
    }

    fn op(text: &str) -> Operator {
        Operator::parse(text, &here()).unwrap()
    }

    #[test]
    fn regex_is_byte_oriented_with_captures() {
        let o = op("@rx (?i)^(a.)\\xff");
        let mut caps = Vec::new();
        assert!(o.test(b"A\n\xff", &Cx, Some(&mut caps)));
        assert_eq!(caps, vec![b"A\n\xff".to_vec(), b"A\n".to_vec()]);
        // Without groups, the leftmost first match alone, in place of
        // what an earlier match left.
        let o = op("@rx (?:[0-9]+|b1)x?");
        assert!(o.test(b"ab12x 7", &Cx, Some(&mut caps)));
        assert_eq!(caps, vec![b"b1".to_vec()]);
        assert!(!o.test(b"abc", &Cx, Some(&mut caps)));
        assert!(op("^x$").test(b"x", &Cx, None));
        assert!(!op("^x$").test(b"x\n", &Cx, None));
        assert!(op("!@rx a").negated);
        assert!(op("[\\x7f-\\x{ff}]").test(b"\xfe", &Cx, None));
        assert_eq!(byte_escapes(r"\\x{41}\x{41}\x{100}"), r"\\x{41}\x41\x{100}");
    }

    #[test]
    fn phrases_and_strings() {
        let o = op("@pm SELECT union");
        let mut caps = Vec::new();
        assert!(o.test(b"1 UNION 2", &Cx, Some(&mut caps)));
        assert_eq!(caps, vec![b"UNION".to_vec()]);
        assert!(op("@within %{tx.allowed_methods}").test(b"POST", &Cx, None));
        assert!(!op("@within %{tx.allowed_methods}").test(b"PUT", &Cx, None));
        assert!(op("@containsWord select").test(b"a select b", &Cx, None));
        assert!(!op("@containsWord select").test(b"selected", &Cx, None));
        assert!(op("@beginsWith ab").test(b"abc", &Cx, None));
        assert!(op("@endsWith bc").test(b"abc", &Cx, None));
        assert!(op("@streq abc").test(b"abc", &Cx, None));
    }

    #[test]
    fn literal_comparisons_answer_as_the_general_test_does() {
        let values: [&[u8]; 8] = [b"0", b"1", b"2", b" 2", b"-3", b"12abc", b"", b"x"];
        for o in [
            "@eq 2", "@ge 2", "@gt 2", "@le 2", "@lt 2", "@lt -1", "!@eq 0", "@eq",
        ] {
            let o = op(o);
            for v in values {
                assert_eq!(
                    o.compare_literal(v),
                    Some(o.test(v, &Cx, None)),
                    "{} {v:?}",
                    o.text
                );
            }
        }
        // Not a comparison, or an operand read at run time: the general
        // test answers.
        for o in ["@rx 2", "@streq 2", "@lt %{tx.n}"] {
            assert_eq!(op(o).compare_literal(b"1"), None, "{o}");
        }
    }

    #[test]
    fn numbers_bytes_encodings_addresses() {
        assert!(op("@ge 5").test(b"12abc", &Cx, None));
        assert!(op("@eq 0").test(b"abc", &Cx, None));
        assert!(op("@lt -1").test(b"-2", &Cx, None));
        assert!(op("@validateByteRange 32-126").test(b"a\x01", &Cx, None));
        assert!(!op("@validateByteRange 9,10,32-126").test(b"a\tb", &Cx, None));
        assert!(op("@validateUrlEncoding").test(b"a%2", &Cx, None));
        assert!(op("@validateUrlEncoding").test(b"%zz", &Cx, None));
        assert!(!op("@validateUrlEncoding").test(b"%41%42", &Cx, None));
        assert!(op("@validateUtf8Encoding").test(b"\xc0\xaf", &Cx, None));
        assert!(op("@ipMatch 10.0.0.0/8,::1").test(b"10.9.9.9", &Cx, None));
        let mut caps = Vec::new();
        assert!(op("@detectSQLi").test(b"1' OR '1'='1", &Cx, Some(&mut caps)));
        assert_eq!(caps, vec![b"s&sos".to_vec()]);
        assert!(!op("@detectSQLi").test(b"O'Brien", &Cx, None));
        assert!(op("@detectXSS").test(b"<script>alert(1)</script>", &Cx, None));
        assert!(!op("@detectXSS").test(b"<b>hi</b>", &Cx, None));
        assert!(!op("@ipMatch 192.168.0.1").test(b"10.9.9.9", &Cx, None));
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(Operator::parse("@rx (", &here()).is_err());
        assert!(Operator::parse("@validateByteRange 9-3", &here()).is_err());
        assert!(Operator::parse("@ipMatch nope", &here()).is_err());
        assert!(Operator::parse("@geoLookup", &here()).is_err());
        assert!(Operator::parse("@pmFromFile missing.data", &here()).is_err());
    }
}
