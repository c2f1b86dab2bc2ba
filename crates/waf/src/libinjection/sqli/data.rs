//! libinjection's tables: which parser each byte starts, the keyword
//! table (words and two-character operators with their token types) and
//! the fingerprints of known SQL injection.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;
use std::sync::OnceLock;

const JSON: &str = include_str!("../../../data/libinjection/sqlparse_data.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    White,
    Operator1,
    Operator2,
    Str,
    Hash,
    Money,
    Char,
    Dash,
    Number,
    Slash,
    Other,
    Var,
    Word,
    BString,
    EString,
    NqString,
    QString,
    UString,
    XString,
    BWord,
    Backslash,
    Tick,
}

#[derive(Debug)]
pub struct Data {
    pub charmap: [Parser; 256],
    keywords: HashMap<Vec<u8>, u8, RandomState>,
    longest: usize,
    fingerprints: HashSet<u64, RandomState>,
}

/// A fingerprint (at most 5 token types, upper-cased) as one number: a
/// lookup per reading of every value inspected hashes a word, not bytes.
fn packed(fp: &[u8]) -> Option<u64> {
    if fp.len() > 7 {
        return None;
    }
    Some(
        fp.iter()
            .fold(0u64, |n, &b| n << 8 | u64::from(b.to_ascii_uppercase())),
    )
}

impl Data {
    /// The token type of a word or operator, compared without case.
    pub fn keyword(&self, word: &[u8]) -> Option<u8> {
        if word.is_empty() || word.len() > self.longest {
            return None;
        }
        let mut buf = [0u8; 64];
        let upper = buf.get_mut(..word.len())?;
        for (d, s) in upper.iter_mut().zip(word) {
            *d = s.to_ascii_uppercase();
        }
        self.keywords.get(&*upper).copied()
    }

    /// Whether a fingerprint is one of the known injections.
    pub fn is_fingerprint(&self, fp: &[u8]) -> bool {
        packed(fp).is_some_and(|n| self.fingerprints.contains(&n))
    }
}

fn parser(name: &str) -> Parser {
    match name {
        "CHAR_WHITE" => Parser::White,
        "CHAR_OP1" | "CHAR_UNARY" => Parser::Operator1,
        "CHAR_OP2" | "CHAR_BANG" => Parser::Operator2,
        "CHAR_STR" => Parser::Str,
        "CHAR_HASH" => Parser::Hash,
        "CHAR_MONEY" => Parser::Money,
        "CHAR_LEFTPARENS" | "CHAR_RIGHTPARENS" | "CHAR_COMMA" | "CHAR_SEMICOLON"
        | "CHAR_LEFTBRACE" | "CHAR_RIGHTBRACE" => Parser::Char,
        "CHAR_DASH" => Parser::Dash,
        "CHAR_NUM" => Parser::Number,
        "CHAR_SLASH" => Parser::Slash,
        "CHAR_VAR" => Parser::Var,
        "CHAR_WORD" => Parser::Word,
        "CHAR_BSTRING" => Parser::BString,
        "CHAR_ESTRING" => Parser::EString,
        "CHAR_NQSTRING" => Parser::NqString,
        "CHAR_QSTRING" => Parser::QString,
        "CHAR_USTRING" => Parser::UString,
        "CHAR_XSTRING" => Parser::XString,
        "CHAR_BWORD" => Parser::BWord,
        "CHAR_BACK" => Parser::Backslash,
        "CHAR_TICK" => Parser::Tick,
        // CHAR_OTHER, and anything unknown, is a one-byte unknown token.
        _ => Parser::Other,
    }
}

fn load() -> Data {
    let v: serde_json::Value = serde_json::from_str(JSON).unwrap_or_default();
    let mut charmap = [Parser::Other; 256];
    if let Some(list) = v.get("charmap").and_then(serde_json::Value::as_array) {
        for (slot, name) in charmap.iter_mut().zip(list) {
            *slot = parser(name.as_str().unwrap_or(""));
        }
    }
    let mut keywords = HashMap::default();
    let mut longest = 0;
    if let Some(map) = v.get("keywords").and_then(serde_json::Value::as_object) {
        for (word, kind) in map {
            let kind = kind.as_str().and_then(|k| k.bytes().next()).unwrap_or(0);
            longest = longest.max(word.len());
            keywords.insert(word.to_ascii_uppercase().into_bytes(), kind);
        }
    }
    let fingerprints = v
        .get("fingerprints")
        .and_then(serde_json::Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|f| packed(f.as_str()?.as_bytes()))
                .collect()
        })
        .unwrap_or_default();
    Data {
        charmap,
        keywords,
        longest,
        fingerprints,
    }
}

pub fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(load)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_load() {
        let d = data();
        assert_eq!(d.charmap[usize::from(b' ')], Parser::White);
        assert_eq!(d.charmap[usize::from(b'@')], Parser::Var);
        assert_eq!(d.keyword(b"select"), Some(b'E'));
        assert_eq!(d.keyword(b"&&"), Some(b'&'));
        assert_eq!(d.keyword(b"nonsense"), None);
        assert!(d.fingerprints.len() > 8000);
        assert!(d.is_fingerprint(b"1&1"));
    }
}
