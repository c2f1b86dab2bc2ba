//! The SQL tokenizer: one token at a time from the input, under the
//! quoting and dialect flags of the current pass.

// Each parser mirrors the reference's branch for branch.
#![allow(clippy::if_same_then_else)]

use super::data::{Parser, data};
use crate::byteset::{byte_set, has};

pub const TOKEN_SIZE: usize = 32;

pub const FLAG_QUOTE_NONE: u32 = 1;
pub const FLAG_QUOTE_SINGLE: u32 = 2;
pub const FLAG_QUOTE_DOUBLE: u32 = 4;
pub const FLAG_SQL_ANSI: u32 = 8;
pub const FLAG_SQL_MYSQL: u32 = 16;

pub const KEYWORD: u8 = b'k';
pub const UNION: u8 = b'U';
pub const GROUP: u8 = b'B';
pub const EXPRESSION: u8 = b'E';
pub const SQLTYPE: u8 = b't';
pub const FUNCTION: u8 = b'f';
pub const BAREWORD: u8 = b'n';
pub const NUMBER: u8 = b'1';
pub const VARIABLE: u8 = b'v';
pub const STRING: u8 = b's';
pub const OPERATOR: u8 = b'o';
pub const LOGIC_OPERATOR: u8 = b'&';
pub const COMMENT: u8 = b'c';
pub const COLLATE: u8 = b'A';
pub const LEFTPARENS: u8 = b'(';
pub const RIGHTPARENS: u8 = b')';
pub const LEFTBRACE: u8 = b'{';
pub const RIGHTBRACE: u8 = b'}';
pub const DOT: u8 = b'.';
pub const COMMA: u8 = b',';
pub const COLON: u8 = b':';
pub const SEMICOLON: u8 = b';';
pub const TSQL: u8 = b'T';
pub const UNKNOWN: u8 = b'?';
pub const EVIL: u8 = b'X';
pub const BACKSLASH: u8 = b'\\';

const TICK: u8 = b'`';
const SINGLE: u8 = b'\'';
const DOUBLE: u8 = b'"';

/// A token; its value is kept to 31 bytes, as the fingerprints expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub pos: usize,
    pub len: usize,
    pub count: u8,
    pub kind: u8,
    pub str_open: u8,
    pub str_close: u8,
    pub val: [u8; TOKEN_SIZE],
}

impl Default for Token {
    fn default() -> Token {
        Token {
            pos: 0,
            len: 0,
            count: 0,
            kind: 0,
            str_open: 0,
            str_close: 0,
            val: [0; TOKEN_SIZE],
        }
    }
}

impl Token {
    /// The value's byte at `i` (0 past the end).
    pub fn val_at(&self, i: usize) -> u8 {
        self.val.get(i).copied().unwrap_or(0)
    }

    pub fn value(&self) -> &[u8] {
        self.val.get(..self.len).unwrap_or(&[])
    }

    pub fn assign(&mut self, kind: u8, pos: usize, value: &[u8]) {
        let n = value.len().min(TOKEN_SIZE - 1);
        self.kind = kind;
        self.pos = pos;
        self.len = n;
        self.val = [0; TOKEN_SIZE];
        if let (Some(dst), Some(src)) = (self.val.get_mut(..n), value.get(..n)) {
            dst.copy_from_slice(src);
        }
    }

    fn assign_char(&mut self, kind: u8, pos: usize, c: u8) {
        self.assign(kind, pos, &[c]);
    }

    /// The value upper-cased equals `word`.
    pub fn is(&self, word: &str) -> bool {
        self.value().eq_ignore_ascii_case(word.as_bytes())
    }

    pub fn is_unary_op(&self) -> bool {
        if self.kind != OPERATOR {
            return false;
        }
        match self.value() {
            [c] => matches!(c, b'+' | b'-' | b'!' | b'~'),
            b"!!" => true,
            v => v.len() == 3 && v.eq_ignore_ascii_case(b"NOT"),
        }
    }

    pub fn is_arithmetic_op(&self) -> bool {
        self.kind == OPERATOR
            && self.len == 1
            && matches!(self.val[0], b'*' | b'/' | b'-' | b'+' | b'%')
    }
}

/// The tokenizer's state over one input.
pub struct State<'a> {
    pub s: &'a [u8],
    pub flags: u32,
    pub pos: usize,
    pub tokens: [Token; 8],
    /// Written instead when an index would run past `tokens` (never, by
    /// construction; it keeps the code free of panicking indexing).
    pub spare: Token,
    /// Which token the parsers write (an index into `tokens`).
    pub current: usize,
    pub stats_comment_ddx: u32,
    pub stats_comment_hash: u32,
    pub stats_tokens: u32,
    pub stats_folds: u32,
}

fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn is_white(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0 | 0)
}

/// Bytes from `from` while they are in `set`.
fn span(s: &[u8], from: usize, set: &[u8]) -> usize {
    s.get(from..)
        .unwrap_or(&[])
        .iter()
        .take_while(|c| set.contains(c))
        .count()
}

/// What ends a word.
const WORD_END: [bool; 256] = byte_set(b" []{}<>:\\?=@!#~+-*/&|^%(),';\t\n\x0b\x0c\r\"\xa0\x00");
/// What ends a variable name.
const VAR_END: [bool; 256] = byte_set(b" <>:\\?=@!#~+-*/&|^%(),';\t\n\x0b\x0c\r'`\"");

/// Bytes from `from` until one is in `stop`.
fn cspan(s: &[u8], from: usize, stop: &[bool; 256]) -> usize {
    s.get(from..)
        .unwrap_or(&[])
        .iter()
        .take_while(|c| !has(stop, **c))
        .count()
}

/// The first `c0` directly followed by `c1` in `s[from..]`.
fn memchr2(s: &[u8], from: usize, c0: u8, c1: u8) -> Option<usize> {
    let hay = s.get(from..)?;
    hay.windows(2).position(|w| w == [c0, c1]).map(|p| from + p)
}

impl<'a> State<'a> {
    pub fn new(s: &'a [u8], flags: u32) -> State<'a> {
        State {
            s,
            flags: if flags == 0 {
                FLAG_QUOTE_NONE | FLAG_SQL_ANSI
            } else {
                flags
            },
            pos: 0,
            tokens: [Token::default(); 8],
            spare: Token::default(),
            current: 0,
            stats_comment_ddx: 0,
            stats_comment_hash: 0,
            stats_tokens: 0,
            stats_folds: 0,
        }
    }

    fn cur(&mut self) -> &mut Token {
        match self.tokens.get_mut(self.current) {
            Some(t) => t,
            None => &mut self.spare,
        }
    }

    /// The next token into `tokens[current]`; false at the end.
    pub fn tokenize(&mut self) -> bool {
        let slen = self.s.len();
        if slen == 0 {
            return false;
        }
        *self.cur() = Token::default();
        if self.pos == 0 && self.flags & (FLAG_QUOTE_SINGLE | FLAG_QUOTE_DOUBLE) != 0 {
            let delim = if self.flags & FLAG_QUOTE_SINGLE != 0 {
                SINGLE
            } else {
                DOUBLE
            };
            self.pos = self.string_core(0, delim, 0);
            self.stats_tokens += 1;
            return true;
        }
        while self.pos < slen {
            let ch = at(self.s, self.pos);
            let parser = data()
                .charmap
                .get(usize::from(ch))
                .copied()
                .unwrap_or(Parser::Other);
            self.pos = match parser {
                Parser::White => self.pos + 1,
                Parser::Operator1 => self.operator1(),
                Parser::Operator2 => self.operator2(),
                Parser::Str => self.string_core(self.pos, ch, 1),
                Parser::Hash => self.hash(),
                Parser::Money => self.money(),
                Parser::Char => self.single_char(),
                Parser::Dash => self.dash(),
                Parser::Number => self.number(),
                Parser::Slash => self.slash(),
                Parser::Other => self.other(),
                Parser::Var => self.var(),
                Parser::Word => self.word(),
                Parser::BString => self.bstring(),
                Parser::EString => self.estring(),
                Parser::NqString => self.nqstring(),
                Parser::QString => self.qstring_core(0),
                Parser::UString => self.ustring(),
                Parser::XString => self.xstring(),
                Parser::BWord => self.bword(),
                Parser::Backslash => self.backslash(),
                Parser::Tick => self.tick(),
            };
            if self.cur().kind != 0 {
                self.stats_tokens += 1;
                return true;
            }
        }
        false
    }

    fn operator1(&mut self) -> usize {
        let (pos, c) = (self.pos, at(self.s, self.pos));
        self.cur().assign_char(OPERATOR, pos, c);
        pos + 1
    }

    fn other(&mut self) -> usize {
        let (pos, c) = (self.pos, at(self.s, self.pos));
        self.cur().assign_char(UNKNOWN, pos, c);
        pos + 1
    }

    fn single_char(&mut self) -> usize {
        let (pos, c) = (self.pos, at(self.s, self.pos));
        self.cur().assign_char(c, pos, c);
        pos + 1
    }

    fn eol_comment(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        match memchr::memchr(b'\n', s.get(pos..).unwrap_or(&[])) {
            None => {
                self.cur().assign(COMMENT, pos, s.get(pos..).unwrap_or(&[]));
                s.len()
            }
            Some(n) => {
                self.cur()
                    .assign(COMMENT, pos, s.get(pos..pos + n).unwrap_or(&[]));
                pos + n + 1
            }
        }
    }

    fn hash(&mut self) -> usize {
        self.stats_comment_hash += 1;
        if self.flags & FLAG_SQL_MYSQL != 0 {
            self.stats_comment_hash += 1;
            self.eol_comment()
        } else {
            let pos = self.pos;
            self.cur().assign_char(OPERATOR, pos, b'#');
            pos + 1
        }
    }

    fn dash(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        let slen = s.len();
        if pos + 2 < slen && at(s, pos + 1) == b'-' && is_white(at(s, pos + 2)) {
            self.eol_comment()
        } else if pos + 2 == slen && at(s, pos + 1) == b'-' {
            self.eol_comment()
        } else if pos + 1 < slen && at(s, pos + 1) == b'-' && self.flags & FLAG_SQL_ANSI != 0 {
            self.stats_comment_ddx += 1;
            self.eol_comment()
        } else {
            self.cur().assign_char(OPERATOR, pos, b'-');
            pos + 1
        }
    }

    fn slash(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        let slen = s.len();
        if pos + 1 == slen || at(s, pos + 1) != b'*' {
            return self.operator1();
        }
        let end = memchr2(s, pos + 2, b'*', b'/');
        let clen = match end {
            None => slen - pos,
            Some(e) => e + 2 - pos,
        };
        let mut kind = COMMENT;
        // A comment opening inside a comment (nested comments in some
        // dialects) or MySQL's executable /*! ... */ cannot be parsed
        // consistently: evil.
        if let Some(e) = end
            && memchr2(s.get(..e + 1).unwrap_or(&[]), pos + 2, b'/', b'*').is_some()
        {
            kind = EVIL;
        }
        if kind == COMMENT && pos + 2 < slen && at(s, pos + 2) == b'!' {
            kind = EVIL;
        }
        self.cur()
            .assign(kind, pos, s.get(pos..pos + clen).unwrap_or(&[]));
        pos + clen
    }

    fn backslash(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 1 < s.len() && at(s, pos + 1) == b'N' {
            self.cur()
                .assign(NUMBER, pos, s.get(pos..pos + 2).unwrap_or(&[]));
            pos + 2
        } else {
            self.cur().assign_char(BACKSLASH, pos, at(s, pos));
            pos + 1
        }
    }

    fn operator2(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        let slen = s.len();
        if pos + 1 >= slen {
            return self.operator1();
        }
        if pos + 2 < slen && at(s, pos) == b'<' && at(s, pos + 1) == b'=' && at(s, pos + 2) == b'>'
        {
            self.cur()
                .assign(OPERATOR, pos, s.get(pos..pos + 3).unwrap_or(&[]));
            return pos + 3;
        }
        let two = s.get(pos..pos + 2).unwrap_or(&[]);
        if let Some(kind) = data().keyword(two) {
            self.cur().assign(kind, pos, two);
            return pos + 2;
        }
        if at(s, pos) == b':' {
            self.cur().assign(COLON, pos, b":");
            return pos + 1;
        }
        self.operator1()
    }

    /// A string closing with `delim`; `offset` is 1 when the opening
    /// quote is in the input, 0 when the input starts inside a string.
    fn string_core(&mut self, pos: usize, delim: u8, offset: usize) -> usize {
        let s = self.s;
        let slen = s.len();
        let start = pos + offset;
        let find =
            |from: usize| memchr::memchr(delim, s.get(from..).unwrap_or(&[])).map(|p| from + p);
        let mut q = find(start);
        let open = if offset > 0 { delim } else { 0 };
        loop {
            match q {
                None => {
                    let t = self.cur();
                    t.assign(STRING, start, s.get(start..).unwrap_or(&[]));
                    t.str_open = open;
                    t.str_close = 0;
                    return slen;
                }
                Some(qp) => {
                    // Escaped by an odd run of backslashes before it?
                    let mut n = 0;
                    while qp > start + n && at(s, qp - 1 - n) == b'\\' {
                        n += 1;
                    }
                    if n % 2 == 1 {
                        q = find(qp + 1);
                        continue;
                    }
                    if qp + 1 < slen && at(s, qp + 1) == delim {
                        q = find(qp + 2);
                        continue;
                    }
                    let t = self.cur();
                    t.assign(STRING, start, s.get(start..qp).unwrap_or(&[]));
                    t.str_open = open;
                    t.str_close = delim;
                    return qp + 1;
                }
            }
        }
    }

    fn estring(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 2 >= s.len() || at(s, pos + 1) != SINGLE {
            return self.word();
        }
        self.string_core(pos, SINGLE, 2)
    }

    fn ustring(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 2 < s.len() && at(s, pos + 1) == b'&' && at(s, pos + 2) == SINGLE {
            self.pos += 2;
            let p = self.string_core(self.pos, SINGLE, 1);
            let t = self.cur();
            t.str_open = b'u';
            if t.str_close == SINGLE {
                t.str_close = b'u';
            }
            p
        } else {
            self.word()
        }
    }

    fn qstring_core(&mut self, offset: usize) -> usize {
        let s = self.s;
        let slen = s.len();
        let pos = self.pos + offset;
        if pos >= slen
            || !matches!(at(s, pos), b'q' | b'Q')
            || pos + 2 >= slen
            || at(s, pos + 1) != SINGLE
        {
            return self.word();
        }
        let mut ch = at(s, pos + 2);
        // Signed chars in the reference: bytes above 127 are negative.
        if !(33..=127).contains(&ch) {
            return self.word();
        }
        ch = match ch {
            b'(' => b')',
            b'[' => b']',
            b'{' => b'}',
            b'<' => b'>',
            c => c,
        };
        match memchr2(s, pos + 3, ch, SINGLE) {
            None => {
                let t = self.cur();
                t.assign(STRING, pos + 3, s.get(pos + 3..).unwrap_or(&[]));
                t.str_open = b'q';
                t.str_close = 0;
                slen
            }
            Some(end) => {
                let t = self.cur();
                t.assign(STRING, pos + 3, s.get(pos + 3..end).unwrap_or(&[]));
                t.str_open = b'q';
                t.str_close = b'q';
                end + 2
            }
        }
    }

    fn nqstring(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        if pos + 2 < s.len() && at(s, pos + 1) == SINGLE {
            return self.estring();
        }
        self.qstring_core(1)
    }

    fn literal(&mut self, digits: &[u8]) -> usize {
        let (s, pos) = (self.s, self.pos);
        let slen = s.len();
        if pos + 2 >= slen || at(s, pos + 1) != SINGLE {
            return self.word();
        }
        let wlen = span(s, pos + 2, digits);
        if pos + 2 + wlen >= slen || at(s, pos + 2 + wlen) != SINGLE {
            return self.word();
        }
        self.cur()
            .assign(NUMBER, pos, s.get(pos..pos + wlen + 3).unwrap_or(&[]));
        pos + 2 + wlen + 1
    }

    fn bstring(&mut self) -> usize {
        self.literal(b"01")
    }

    fn xstring(&mut self) -> usize {
        self.literal(b"0123456789ABCDEFabcdef")
    }

    fn bword(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        match memchr::memchr(b']', s.get(pos..).unwrap_or(&[])) {
            None => {
                self.cur()
                    .assign(BAREWORD, pos, s.get(pos..).unwrap_or(&[]));
                s.len()
            }
            Some(n) => {
                self.cur()
                    .assign(BAREWORD, pos, s.get(pos..pos + n + 1).unwrap_or(&[]));
                pos + n + 1
            }
        }
    }

    pub fn word(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        let wlen = cspan(s, pos, &WORD_END);
        self.cur()
            .assign(BAREWORD, pos, s.get(pos..pos + wlen).unwrap_or(&[]));
        // "SELECT.1" or "SELECT`col`": a keyword before a dot or tick is
        // a token of its own.
        let t = *self.cur();
        for (i, &d) in t.value().iter().enumerate() {
            if (d == b'.' || d == b'`')
                && let Some(kind) = data().keyword(t.val.get(..i).unwrap_or(&[]))
                && kind != BAREWORD
            {
                *self.cur() = Token::default();
                self.cur()
                    .assign(kind, pos, s.get(pos..pos + i).unwrap_or(&[]));
                return pos + i;
            }
        }
        if wlen < TOKEN_SIZE {
            let kind = data().keyword(t.value()).unwrap_or(BAREWORD);
            self.cur().kind = kind;
        }
        pos + wlen
    }

    fn tick(&mut self) -> usize {
        let p = self.string_core(self.pos, TICK, 1);
        let kind = data().keyword(self.cur().value());
        self.cur().kind = if kind == Some(FUNCTION) {
            FUNCTION
        } else {
            BAREWORD
        };
        p
    }

    fn var(&mut self) -> usize {
        let s = self.s;
        let slen = s.len();
        let mut pos = self.pos + 1;
        if pos < slen && at(s, pos) == b'@' {
            pos += 1;
            self.cur().count = 2;
        } else {
            self.cur().count = 1;
        }
        if pos < slen {
            if at(s, pos) == TICK {
                self.pos = pos;
                let p = self.tick();
                self.cur().kind = VARIABLE;
                return p;
            } else if at(s, pos) == SINGLE || at(s, pos) == DOUBLE {
                self.pos = pos;
                let p = self.string_core(pos, at(s, pos), 1);
                self.cur().kind = VARIABLE;
                return p;
            }
        }
        let xlen = cspan(s, pos, &VAR_END);
        self.cur()
            .assign(VARIABLE, pos, s.get(pos..pos + xlen).unwrap_or(&[]));
        pos + xlen
    }

    fn money(&mut self) -> usize {
        let (s, pos) = (self.s, self.pos);
        let slen = s.len();
        if pos + 1 == slen {
            self.cur().assign_char(BAREWORD, pos, b'$');
            return slen;
        }
        let xlen = span(s, pos + 1, b"0123456789.,");
        if xlen == 0 {
            if at(s, pos + 1) == b'$' {
                // $$ quoted string $$
                return match memchr2(s, pos + 2, b'$', b'$') {
                    None => {
                        let t = self.cur();
                        t.assign(STRING, pos + 2, s.get(pos + 2..).unwrap_or(&[]));
                        t.str_open = b'$';
                        t.str_close = 0;
                        slen
                    }
                    Some(end) => {
                        let t = self.cur();
                        t.assign(STRING, pos + 2, s.get(pos + 2..end).unwrap_or(&[]));
                        t.str_open = b'$';
                        t.str_close = b'$';
                        end + 2
                    }
                };
            }
            // $tag$ quoted string $tag$
            let xlen = span(
                s,
                pos + 1,
                b"abcdefghjiklmnopqrstuvwxyzABCDEFGHJIKLMNOPQRSTUVWXYZ",
            );
            if xlen == 0 || pos + xlen + 1 == slen || at(s, pos + xlen + 1) != b'$' {
                self.cur().assign_char(BAREWORD, pos, b'$');
                return pos + 1;
            }
            let tag = s.get(pos..pos + xlen + 2).unwrap_or(&[]);
            let from = pos + xlen + 2;
            let end = memchr::memmem::find(s.get(from..).unwrap_or(&[]), tag).map(|p| from + p);
            return match end {
                None => {
                    let t = self.cur();
                    t.assign(STRING, from, s.get(from..).unwrap_or(&[]));
                    t.str_open = b'$';
                    t.str_close = 0;
                    slen
                }
                Some(e) => {
                    let t = self.cur();
                    t.assign(STRING, from, s.get(from..e).unwrap_or(&[]));
                    t.str_open = b'$';
                    t.str_close = b'$';
                    e + xlen + 2
                }
            };
        }
        if xlen == 1 && at(s, pos + 1) == b'.' {
            return self.word();
        }
        self.cur()
            .assign(NUMBER, pos, s.get(pos..pos + 1 + xlen).unwrap_or(&[]));
        pos + 1 + xlen
    }

    fn number(&mut self) -> usize {
        let s = self.s;
        let slen = s.len();
        let mut pos = self.pos;
        if at(s, pos) == b'0' && pos + 1 < slen {
            let digits: Option<&[u8]> = match at(s, pos + 1) {
                b'X' | b'x' => Some(b"0123456789ABCDEFabcdef"),
                b'B' | b'b' => Some(b"01"),
                _ => None,
            };
            if let Some(d) = digits {
                let xlen = span(s, pos + 2, d);
                if xlen == 0 {
                    self.cur()
                        .assign(BAREWORD, pos, s.get(pos..pos + 2).unwrap_or(&[]));
                    return pos + 2;
                }
                self.cur()
                    .assign(NUMBER, pos, s.get(pos..pos + 2 + xlen).unwrap_or(&[]));
                return pos + 2 + xlen;
            }
        }
        let start = pos;
        while pos < slen && at(s, pos).is_ascii_digit() {
            pos += 1;
        }
        if pos < slen && at(s, pos) == b'.' {
            pos += 1;
            while pos < slen && at(s, pos).is_ascii_digit() {
                pos += 1;
            }
            if pos - start == 1 {
                self.cur().assign_char(DOT, start, b'.');
                return pos;
            }
        }
        let (mut have_e, mut have_exp) = (false, false);
        if pos < slen && matches!(at(s, pos), b'E' | b'e') {
            have_e = true;
            pos += 1;
            if pos < slen && matches!(at(s, pos), b'+' | b'-') {
                pos += 1;
            }
            while pos < slen && at(s, pos).is_ascii_digit() {
                have_exp = true;
                pos += 1;
            }
        }
        if pos < slen && matches!(at(s, pos), b'd' | b'D' | b'f' | b'F') {
            if pos + 1 == slen {
                pos += 1;
            } else if is_white(at(s, pos + 1)) || at(s, pos + 1) == b';' {
                pos += 1;
            } else if matches!(at(s, pos + 1), b'u' | b'U') {
                pos += 1;
            }
        }
        let kind = if have_e && !have_exp {
            BAREWORD
        } else {
            NUMBER
        };
        self.cur()
            .assign(kind, start, s.get(start..pos).unwrap_or(&[]));
        pos
    }
}
