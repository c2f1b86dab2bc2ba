//! SQL injection detection the libinjection way: tokenize the input as SQL
//! (as-is, and as if it started inside a quoted string), fold the tokens
//! into at most five, and look the resulting fingerprint up among those
//! of known attacks.

// The folding rules are a port: each branch mirrors one case of the
// reference in the reference's order, which decides which case wins, so
// branches with equal bodies stay apart.
#![allow(clippy::if_same_then_else)]

mod data;
pub mod tokens;

use tokens::*;

const MAX_TOKENS: usize = 5;

impl<'a> State<'a> {
    fn tokenize_into(&mut self, slot: usize) -> bool {
        self.current = slot;
        self.tokenize()
    }

    fn t(&self, i: usize) -> &Token {
        self.tokens.get(i).unwrap_or(&self.spare)
    }

    fn tm(&mut self, i: usize) -> &mut Token {
        match self.tokens.get_mut(i) {
            Some(t) => t,
            None => &mut self.spare,
        }
    }

    fn copy(&mut self, to: usize, from: usize) {
        let t = *self.t(from);
        *self.tm(to) = t;
    }

    /// Two words that together form a keyword ("UNION ALL") become one.
    fn merge_words(&mut self, a: usize, b: usize) -> bool {
        let (ta, tb) = (*self.t(a), *self.t(b));
        let word_a = matches!(
            ta.kind,
            KEYWORD | BAREWORD | OPERATOR | UNION | FUNCTION | EXPRESSION | TSQL | SQLTYPE
        );
        let word_b = matches!(
            tb.kind,
            KEYWORD
                | BAREWORD
                | OPERATOR
                | UNION
                | FUNCTION
                | EXPRESSION
                | TSQL
                | SQLTYPE
                | LOGIC_OPERATOR
        );
        if !word_a || !word_b {
            return false;
        }
        let size = ta.len + tb.len + 1;
        if size >= TOKEN_SIZE {
            return false;
        }
        // On the stack: most pairs of words are not a keyword, and an
        // allocation per pair would cost more than the lookup.
        let mut buf = [0u8; TOKEN_SIZE];
        let words = ta.value().iter().chain(b" ").chain(tb.value());
        for (d, s) in buf.iter_mut().zip(words) {
            *d = *s;
        }
        let joined = buf.get(..size).unwrap_or(&[]);
        match data::data().keyword(joined) {
            Some(kind) => {
                self.tm(a).assign(kind, ta.pos, joined);
                true
            }
            None => false,
        }
    }

    /// Tokenizes into `tokens[pos..]` until there are `upto` tokens (or the
    /// vector is full); comments are set aside in `last_comment` rather
    /// than kept. Returns whether the input has more.
    fn fetch(
        &mut self,
        mut more: bool,
        pos: &mut usize,
        upto: usize,
        last_comment: &mut Token,
    ) -> bool {
        while more && *pos <= MAX_TOKENS && *pos < upto {
            more = self.tokenize_into(*pos);
            if more {
                if self.t(*pos).kind == COMMENT {
                    *last_comment = *self.t(*pos);
                } else {
                    last_comment.kind = 0;
                    *pos += 1;
                }
            }
        }
        more
    }

    /// Folds the token stream; returns how many tokens make the fingerprint.
    pub fn fold(&mut self) -> usize {
        let mut last_comment = Token::default();
        let mut pos = 0usize;
        let mut left = 0usize;
        let mut more;
        // Skip leading comments, '(' , SQL types and unary operators.
        loop {
            more = self.tokenize_into(0);
            let t = self.t(0);
            if !(t.kind == COMMENT || t.kind == LEFTPARENS || t.kind == SQLTYPE || t.is_unary_op())
                || !more
            {
                break;
            }
        }
        if !more {
            return 0;
        }
        pos += 1;
        loop {
            if pos >= MAX_TOKENS {
                let k = |i: usize| self.t(i).kind;
                if (k(0) == NUMBER
                    && (k(1) == OPERATOR || k(1) == COMMA)
                    && k(2) == LEFTPARENS
                    && k(3) == NUMBER
                    && k(4) == RIGHTPARENS)
                    || (k(0) == BAREWORD
                        && k(1) == OPERATOR
                        && k(2) == LEFTPARENS
                        && (k(3) == BAREWORD || k(3) == NUMBER)
                        && k(4) == RIGHTPARENS)
                    || (k(0) == NUMBER
                        && k(1) == RIGHTPARENS
                        && k(2) == COMMA
                        && k(3) == LEFTPARENS
                        && k(4) == NUMBER)
                    || (k(0) == BAREWORD
                        && k(1) == RIGHTPARENS
                        && k(2) == OPERATOR
                        && k(3) == LEFTPARENS
                        && k(4) == BAREWORD)
                {
                    if pos > MAX_TOKENS {
                        self.copy(1, MAX_TOKENS);
                        pos = 2;
                    } else {
                        pos = 1;
                    }
                    left = 0;
                }
            }
            if !more || left >= MAX_TOKENS {
                left = pos;
                break;
            }
            // Up to two tokens.
            more = self.fetch(more, &mut pos, left + 2, &mut last_comment);
            if pos - left < 2 {
                left = pos;
                continue;
            }
            let (a, b) = (*self.t(left), *self.t(left + 1));
            if a.kind == STRING && b.kind == STRING {
                pos -= 1;
                self.stats_folds += 1;
                continue;
            } else if a.kind == SEMICOLON && b.kind == SEMICOLON {
                pos -= 1;
                self.stats_folds += 1;
                continue;
            } else if (a.kind == OPERATOR || a.kind == LOGIC_OPERATOR)
                && (b.is_unary_op() || b.kind == SQLTYPE)
            {
                pos -= 1;
                self.stats_folds += 1;
                left = 0;
                continue;
            } else if a.kind == LEFTPARENS && b.is_unary_op() {
                pos -= 1;
                self.stats_folds += 1;
                left = left.saturating_sub(1);
                continue;
            } else if self.merge_words(left, left + 1) {
                pos -= 1;
                self.stats_folds += 1;
                left = left.saturating_sub(1);
                continue;
            } else if a.kind == SEMICOLON
                && b.kind == FUNCTION
                && matches!(b.val_at(0), b'I' | b'i')
                && matches!(b.val_at(1), b'F' | b'f')
            {
                // T-SQL's IF statement after a semicolon.
                self.tm(left + 1).kind = TSQL;
                continue;
            } else if (a.kind == BAREWORD || a.kind == VARIABLE)
                && b.kind == LEFTPARENS
                && [
                    "USER_ID",
                    "USER_NAME",
                    "DATABASE",
                    "PASSWORD",
                    "USER",
                    "CURRENT_USER",
                    "CURRENT_DATE",
                    "CURRENT_TIME",
                    "CURRENT_TIMESTAMP",
                    "LOCALTIME",
                    "LOCALTIMESTAMP",
                ]
                .iter()
                .any(|w| a.is(w))
            {
                self.tm(left).kind = FUNCTION;
                continue;
            } else if a.kind == KEYWORD && (a.is("IN") || a.is("NOT IN")) {
                self.tm(left).kind = if b.kind == LEFTPARENS {
                    OPERATOR
                } else {
                    BAREWORD
                };
                continue;
            } else if a.kind == OPERATOR && (a.is("LIKE") || a.is("NOT LIKE")) {
                if b.kind == LEFTPARENS {
                    self.tm(left).kind = FUNCTION;
                }
            } else if a.kind == SQLTYPE
                && matches!(
                    b.kind,
                    BAREWORD | NUMBER | SQLTYPE | LEFTPARENS | FUNCTION | VARIABLE | STRING
                )
            {
                self.copy(left, left + 1);
                pos -= 1;
                self.stats_folds += 1;
                left = 0;
                continue;
            } else if a.kind == COLLATE && b.kind == BAREWORD {
                if b.value().contains(&b'_') {
                    self.tm(left + 1).kind = SQLTYPE;
                    left = 0;
                }
            } else if a.kind == BACKSLASH {
                if b.is_arithmetic_op() {
                    self.tm(left).kind = NUMBER;
                } else {
                    self.copy(left, left + 1);
                    pos -= 1;
                    self.stats_folds += 1;
                }
                left = 0;
                continue;
            } else if (a.kind == LEFTPARENS && b.kind == LEFTPARENS)
                || (a.kind == RIGHTPARENS && b.kind == RIGHTPARENS)
            {
                pos -= 1;
                left = 0;
                self.stats_folds += 1;
                continue;
            } else if a.kind == LEFTBRACE && b.kind == BAREWORD {
                if b.len == 0 {
                    self.tm(left + 1).kind = EVIL;
                    return left + 2;
                }
                left = 0;
                pos -= 2;
                self.stats_folds += 2;
                continue;
            } else if b.kind == RIGHTBRACE {
                pos -= 1;
                left = 0;
                self.stats_folds += 1;
                continue;
            }
            // Nothing folded two tokens: get a third.
            more = self.fetch(more, &mut pos, left + 3, &mut last_comment);
            if pos - left < 3 {
                left = pos;
                continue;
            }
            let (a, b, c) = (*self.t(left), *self.t(left + 1), *self.t(left + 2));
            if a.kind == NUMBER && b.kind == OPERATOR && c.kind == NUMBER {
                pos -= 2;
                left = 0;
                continue;
            } else if a.kind == OPERATOR && b.kind != LEFTPARENS && c.kind == OPERATOR {
                left = 0;
                pos -= 2;
                continue;
            } else if a.kind == LOGIC_OPERATOR && c.kind == LOGIC_OPERATOR {
                pos -= 2;
                left = 0;
                continue;
            } else if a.kind == VARIABLE
                && b.kind == OPERATOR
                && matches!(c.kind, VARIABLE | NUMBER | BAREWORD)
            {
                pos -= 2;
                left = 0;
                continue;
            } else if matches!(a.kind, BAREWORD | NUMBER)
                && b.kind == OPERATOR
                && matches!(c.kind, NUMBER | BAREWORD)
            {
                pos -= 2;
                left = 0;
                continue;
            } else if matches!(a.kind, BAREWORD | NUMBER | VARIABLE | STRING)
                && b.kind == OPERATOR
                && b.value() == b"::"
                && c.kind == SQLTYPE
            {
                pos -= 2;
                left = 0;
                self.stats_folds += 2;
                continue;
            } else if matches!(a.kind, BAREWORD | NUMBER | STRING | VARIABLE)
                && b.kind == COMMA
                && matches!(c.kind, NUMBER | BAREWORD | STRING | VARIABLE)
            {
                pos -= 2;
                left = 0;
                continue;
            } else if matches!(a.kind, EXPRESSION | GROUP | COMMA)
                && b.is_unary_op()
                && c.kind == LEFTPARENS
            {
                self.copy(left + 1, left + 2);
                pos -= 1;
                left = 0;
                continue;
            } else if matches!(a.kind, KEYWORD | EXPRESSION | GROUP)
                && b.is_unary_op()
                && matches!(c.kind, NUMBER | BAREWORD | VARIABLE | STRING | FUNCTION)
            {
                self.copy(left + 1, left + 2);
                pos -= 1;
                left = 0;
                continue;
            } else if a.kind == COMMA
                && b.is_unary_op()
                && matches!(c.kind, NUMBER | BAREWORD | VARIABLE | STRING)
            {
                self.copy(left + 1, left + 2);
                left = 0;
                pos = pos.saturating_sub(3);
                continue;
            } else if a.kind == COMMA && b.is_unary_op() && c.kind == FUNCTION {
                self.copy(left + 1, left + 2);
                pos -= 1;
                left = 0;
                continue;
            } else if a.kind == BAREWORD && b.kind == DOT && c.kind == BAREWORD {
                pos -= 2;
                left = 0;
                continue;
            } else if a.kind == EXPRESSION && b.kind == DOT && c.kind == BAREWORD {
                self.copy(left + 1, left + 2);
                pos -= 1;
                left = 0;
                continue;
            } else if a.kind == FUNCTION && b.kind == LEFTPARENS && c.kind != RIGHTPARENS {
                // USER(x) is not the zero-argument function.
                if a.is("USER") {
                    self.tm(left).kind = BAREWORD;
                }
            }
            left += 1;
        }
        if left < MAX_TOKENS && last_comment.kind == COMMENT {
            *self.tm(left) = last_comment;
            left += 1;
        }
        left.min(MAX_TOKENS)
    }

    /// Tokenizes and folds `s` under `flags`: the state it leaves, and
    /// the fingerprint.
    pub fn fingerprint(s: &'a [u8], flags: u32) -> (State<'a>, Fingerprint) {
        let mut st = State::new(s, flags);
        let n = st.fold();
        if n > 2 {
            let last = st.t(n - 1);
            if last.kind == BAREWORD
                && last.str_open == b'`'
                && last.len == 0
                && last.str_close == 0
            {
                st.tm(n - 1).kind = COMMENT;
            }
        }
        let mut fp = Fingerprint::default();
        for i in 0..n {
            let kind = st.t(i).kind;
            fp.push(kind);
        }
        if fp.as_bytes().contains(&EVIL) {
            let first = st.tm(0);
            *first = Token::default();
            first.assign(EVIL, 0, &[EVIL]);
            st.tm(1).kind = 0;
            fp = Fingerprint::default();
            fp.push(EVIL);
        }
        (st, fp)
    }

    /// A known injection fingerprint, not explained away by the
    /// false-positive checks.
    fn is_attack(&self, fp: &[u8]) -> bool {
        if fp.is_empty() {
            return false;
        }
        if !data::data().is_fingerprint(fp) {
            return false;
        }
        self.not_whitelisted(fp)
    }

    fn not_whitelisted(&self, fp: &[u8]) -> bool {
        let n = fp.len();
        if n > 1
            && fp.last() == Some(&COMMENT)
            && memchr::memmem::find(self.s, b"sp_password").is_some()
        {
            return true;
        }
        let (t0, t1, t2) = (self.t(0), self.t(1), self.t(2));
        match n {
            2 => {
                if fp.get(1) == Some(&UNION) {
                    return self.stats_tokens != 2;
                }
                if t1.val_at(0) == b'#' {
                    return false;
                }
                if t0.kind == BAREWORD && t1.kind == COMMENT && t1.val_at(0) != b'/' {
                    return false;
                }
                if t0.kind == NUMBER && t1.kind == COMMENT && t1.val_at(0) == b'/' {
                    return true;
                }
                if t0.kind == NUMBER && t1.kind == COMMENT {
                    if self.stats_tokens > 2 {
                        return true;
                    }
                    let at = |i: usize| self.s.get(i).copied().unwrap_or(0);
                    let ch = at(t0.len);
                    if ch <= 32 {
                        return true;
                    }
                    if ch == b'/' && at(t0.len + 1) == b'*' {
                        return true;
                    }
                    if ch == b'-' && at(t0.len + 1) == b'-' {
                        return true;
                    }
                    return false;
                }
                if t1.len > 2 && t1.val_at(0) == b'-' {
                    return false;
                }
            }
            3 => {
                if fp == b"sos" || fp == b"s&s" {
                    return t0.str_open == 0 && t2.str_close == 0 && t0.str_close == t2.str_open;
                } else if [&b"s&n"[..], b"n&1", b"1&1", b"1&v", b"1&s"].contains(&fp) {
                    if self.stats_tokens == 3 {
                        return false;
                    }
                } else if t1.kind == KEYWORD
                    && (t1.len < 5 || !t1.val.get(..4).unwrap_or(&[]).eq_ignore_ascii_case(b"INTO"))
                {
                    // Only INTO OUTFILE / INTO DUMPFILE is an attack here.
                    return false;
                }
            }
            _ => {}
        }
        true
    }
}

/// The outcome of a detection: whether it is an attack and the
/// fingerprint that decided it.
pub fn detect(input: &[u8]) -> Option<Vec<u8>> {
    if input.is_empty() {
        return None;
    }
    let attack = |flags: u32| {
        let (st, fp) = State::fingerprint(input, flags);
        let mysql_again = st.stats_comment_ddx > 0 || st.stats_comment_hash > 0;
        (st.is_attack(fp.as_bytes()).then_some(fp), mysql_again)
    };
    // A quoting context is read as ANSI SQL, and again as MySQL when the
    // first reading met a comment MySQL reads otherwise (`--` with no
    // space after it, `#`).
    let in_context = |quote: u32| match attack(quote | FLAG_SQL_ANSI) {
        (Some(fp), _) => Some(fp),
        (None, true) => attack(quote | FLAG_SQL_MYSQL).0,
        (None, false) => None,
    };
    let found = |fp: Fingerprint| Some(fp.as_bytes().to_vec());
    if let Some(fp) = in_context(FLAG_QUOTE_NONE) {
        return found(fp);
    }
    let (single, double) = quotes(input);
    if single && let Some(fp) = in_context(FLAG_QUOTE_SINGLE) {
        return found(fp);
    }
    if double && let (Some(fp), _) = attack(FLAG_QUOTE_DOUBLE | FLAG_SQL_MYSQL) {
        return found(fp);
    }
    None
}

/// Whether `input` holds a single quote, and a double one. Most values
/// inspected are short, where one plain pass costs less than setting up
/// two vector searches.
fn quotes(input: &[u8]) -> (bool, bool) {
    if input.len() > 64 {
        return (
            memchr::memchr(b'\'', input).is_some(),
            memchr::memchr(b'"', input).is_some(),
        );
    }
    input.iter().fold((false, false), |(s, d), &c| {
        (s || c == b'\'', d || c == b'"')
    })
}

/// The token types of a folded input, at most `MAX_TOKENS`, kept in
/// place rather than on the heap: most inputs are not attacks, and their
/// fingerprint is only looked up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fingerprint {
    kinds: [u8; 8],
    len: usize,
}

impl Fingerprint {
    fn push(&mut self, kind: u8) {
        if let Some(k) = self.kinds.get_mut(self.len) {
            *k = kind;
            self.len += 1;
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.kinds.get(..self.len).unwrap_or(&[])
    }
}
