//! An HTML5 tokenizer after the WHATWG state machine, reduced to what XSS
//! detection needs: text, tag names, attribute names and values, comments
//! and doctypes. It can start inside an attribute value, which is where
//! reflected input often lands.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    DataText,
    TagNameOpen,
    TagNameClose,
    TagNameSelfClose,
    TagData,
    TagClose,
    AttrName,
    AttrValue,
    TagComment,
    Doctype,
}

impl TokenType {
    pub fn name(self) -> &'static str {
        match self {
            TokenType::DataText => "DATA_TEXT",
            TokenType::TagNameOpen => "TAG_NAME_OPEN",
            TokenType::TagNameClose => "TAG_NAME_CLOSE",
            TokenType::TagNameSelfClose => "TAG_NAME_SELFCLOSE",
            TokenType::TagData => "TAG_DATA",
            TokenType::TagClose => "TAG_CLOSE",
            TokenType::AttrName => "ATTR_NAME",
            TokenType::AttrValue => "ATTR_VALUE",
            TokenType::TagComment => "TAG_COMMENT",
            TokenType::Doctype => "DOCTYPE",
        }
    }
}

/// Where the input is taken to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Data,
    ValueNoQuote,
    ValueSingleQuote,
    ValueDoubleQuote,
    ValueBackQuote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Eof,
    Data,
    TagOpen,
    TagNameClose,
    BeforeAttributeName,
    AfterAttributeName,
    BeforeAttributeValue,
    AttrValueQuote(u8),
    AfterAttributeValueQuoted,
    SelfClosingStartTag,
}

pub struct Html5<'a> {
    s: &'a [u8],
    pos: usize,
    is_close: bool,
    state: St,
    pub token_start: usize,
    pub token_len: usize,
    pub token_type: TokenType,
}

fn is_white(c: u8) -> bool {
    // The reference uses strchr, which also finds the terminating NUL.
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0)
}

impl<'a> Html5<'a> {
    pub fn new(s: &'a [u8], start: Start) -> Html5<'a> {
        Html5 {
            s,
            pos: 0,
            is_close: false,
            state: match start {
                Start::Data => St::Data,
                Start::ValueNoQuote => St::BeforeAttributeName,
                Start::ValueSingleQuote => St::AttrValueQuote(b'\''),
                Start::ValueDoubleQuote => St::AttrValueQuote(b'"'),
                Start::ValueBackQuote => St::AttrValueQuote(b'`'),
            },
            token_start: 0,
            token_len: 0,
            token_type: TokenType::DataText,
        }
    }

    pub fn token(&self) -> &'a [u8] {
        self.s
            .get(self.token_start..self.token_start + self.token_len)
            .unwrap_or(&[])
    }

    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn len(&self) -> usize {
        self.s.len()
    }

    /// Sets the token and the state to continue in.
    fn emit(&mut self, t: TokenType, start: usize, len: usize, next: St) -> bool {
        self.token_type = t;
        self.token_start = start;
        self.token_len = len;
        self.state = next;
        true
    }

    fn find(&self, from: usize, c: u8) -> Option<usize> {
        memchr::memchr(c, self.s.get(from..).unwrap_or(&[])).map(|p| from + p)
    }

    /// The next token; false at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> bool {
        match self.state {
            St::Eof => false,
            St::Data => self.data(),
            St::TagOpen => self.tag_open(),
            St::TagNameClose => self.tag_name_close(),
            St::BeforeAttributeName => self.before_attribute_name(),
            St::AfterAttributeName => self.after_attribute_name(),
            St::BeforeAttributeValue => self.before_attribute_value(),
            St::AttrValueQuote(q) => self.attribute_value_quote(q),
            St::AfterAttributeValueQuoted => self.after_attribute_value_quoted(),
            St::SelfClosingStartTag => self.self_closing_start_tag(),
        }
    }

    fn skip_white(&mut self) -> Option<u8> {
        while self.pos < self.len() {
            let c = self.at(self.pos);
            match c {
                0x00 | 0x20 | 0x09 | 0x0a | 0x0b | 0x0c | 0x0d => self.pos += 1,
                _ => return Some(c),
            }
        }
        None
    }

    fn data(&mut self) -> bool {
        match self.find(self.pos, b'<') {
            None => {
                let (start, len) = (self.pos, self.len() - self.pos);
                self.state = St::Eof;
                if len == 0 {
                    return false;
                }
                self.emit(TokenType::DataText, start, len, St::Eof)
            }
            Some(lt) => {
                let (start, len) = (self.pos, lt - self.pos);
                self.pos = lt + 1;
                self.state = St::TagOpen;
                if len == 0 {
                    return self.tag_open();
                }
                self.emit(TokenType::DataText, start, len, St::TagOpen)
            }
        }
    }

    fn tag_open(&mut self) -> bool {
        if self.pos >= self.len() {
            return false;
        }
        match self.at(self.pos) {
            b'!' => {
                self.pos += 1;
                self.markup_declaration_open()
            }
            b'/' => {
                self.pos += 1;
                self.is_close = true;
                self.end_tag_open()
            }
            b'?' => {
                self.pos += 1;
                self.bogus_comment()
            }
            b'%' => {
                // Not in the standard: the <% ... %> comments of old IE and Safari.
                self.pos += 1;
                self.bogus_comment2()
            }
            c if c.is_ascii_alphabetic() || c == 0 => self.tag_name(),
            _ => {
                if self.pos == 0 {
                    return self.data();
                }
                self.emit(TokenType::DataText, self.pos - 1, 1, St::Data)
            }
        }
    }

    fn end_tag_open(&mut self) -> bool {
        if self.pos >= self.len() {
            return false;
        }
        let c = self.at(self.pos);
        if c == b'>' {
            return self.data();
        } else if c.is_ascii_alphabetic() {
            return self.tag_name();
        }
        self.is_close = false;
        self.bogus_comment()
    }

    fn tag_name_close(&mut self) -> bool {
        self.is_close = false;
        let start = self.pos;
        self.pos += 1;
        let next = if self.pos < self.len() {
            St::Data
        } else {
            St::Eof
        };
        self.emit(TokenType::TagNameClose, start, 1, next)
    }

    fn tag_name(&mut self) -> bool {
        let mut pos = self.pos;
        let start = self.pos;
        while pos < self.len() {
            let c = self.at(pos);
            if c == 0 {
                // Old browsers ignore NULs in tag names.
                pos += 1;
            } else if is_white(c) {
                self.pos = pos + 1;
                return self.emit(
                    TokenType::TagNameOpen,
                    start,
                    pos - start,
                    St::BeforeAttributeName,
                );
            } else if c == b'/' {
                self.pos = pos + 1;
                return self.emit(
                    TokenType::TagNameOpen,
                    start,
                    pos - start,
                    St::SelfClosingStartTag,
                );
            } else if c == b'>' {
                if self.is_close {
                    self.pos = pos + 1;
                    self.is_close = false;
                    return self.emit(TokenType::TagClose, start, pos - start, St::Data);
                }
                self.pos = pos;
                return self.emit(TokenType::TagNameOpen, start, pos - start, St::TagNameClose);
            } else {
                pos += 1;
            }
        }
        self.emit(TokenType::TagNameOpen, start, self.len() - start, St::Eof)
    }

    fn before_attribute_name(&mut self) -> bool {
        match self.skip_white() {
            None => false,
            Some(b'/') => {
                self.pos += 1;
                self.self_closing_start_tag()
            }
            Some(b'>') => {
                let start = self.pos;
                self.pos += 1;
                self.emit(TokenType::TagNameClose, start, 1, St::Data)
            }
            Some(_) => self.attribute_name(),
        }
    }

    fn attribute_name(&mut self) -> bool {
        let start = self.pos;
        let mut pos = self.pos + 1;
        while pos < self.len() {
            let c = self.at(pos);
            if is_white(c) {
                self.pos = pos + 1;
                return self.emit(
                    TokenType::AttrName,
                    start,
                    pos - start,
                    St::AfterAttributeName,
                );
            } else if c == b'/' {
                self.pos = pos + 1;
                return self.emit(
                    TokenType::AttrName,
                    start,
                    pos - start,
                    St::SelfClosingStartTag,
                );
            } else if c == b'=' {
                self.pos = pos + 1;
                return self.emit(
                    TokenType::AttrName,
                    start,
                    pos - start,
                    St::BeforeAttributeValue,
                );
            } else if c == b'>' {
                self.pos = pos;
                return self.emit(TokenType::AttrName, start, pos - start, St::TagNameClose);
            }
            pos += 1;
        }
        self.pos = self.len();
        self.emit(TokenType::AttrName, start, self.len() - start, St::Eof)
    }

    fn after_attribute_name(&mut self) -> bool {
        match self.skip_white() {
            None => false,
            Some(b'/') => {
                self.pos += 1;
                self.self_closing_start_tag()
            }
            Some(b'=') => {
                self.pos += 1;
                self.before_attribute_value()
            }
            Some(b'>') => self.tag_name_close(),
            Some(_) => self.attribute_name(),
        }
    }

    fn before_attribute_value(&mut self) -> bool {
        match self.skip_white() {
            None => {
                self.state = St::Eof;
                false
            }
            Some(q @ (b'"' | b'\'' | b'`')) => self.attribute_value_quote(q),
            Some(_) => self.attribute_value_no_quote(),
        }
    }

    fn attribute_value_quote(&mut self, q: u8) -> bool {
        // Starting inside a value (position 0) there is no quote to skip.
        if self.pos > 0 {
            self.pos += 1;
        }
        let start = self.pos;
        match self.find(self.pos, q) {
            None => self.emit(TokenType::AttrValue, start, self.len() - start, St::Eof),
            Some(end) => {
                self.pos = end + 1;
                self.emit(
                    TokenType::AttrValue,
                    start,
                    end - start,
                    St::AfterAttributeValueQuoted,
                )
            }
        }
    }

    fn attribute_value_no_quote(&mut self) -> bool {
        let start = self.pos;
        let mut pos = self.pos;
        while pos < self.len() {
            let c = self.at(pos);
            if is_white(c) {
                self.pos = pos + 1;
                return self.emit(
                    TokenType::AttrValue,
                    start,
                    pos - start,
                    St::BeforeAttributeName,
                );
            } else if c == b'>' {
                self.pos = pos;
                return self.emit(TokenType::AttrValue, start, pos - start, St::TagNameClose);
            }
            pos += 1;
        }
        self.emit(TokenType::AttrValue, start, self.len() - start, St::Eof)
    }

    fn after_attribute_value_quoted(&mut self) -> bool {
        if self.pos >= self.len() {
            return false;
        }
        let c = self.at(self.pos);
        if is_white(c) {
            self.pos += 1;
            self.before_attribute_name()
        } else if c == b'/' {
            self.pos += 1;
            self.self_closing_start_tag()
        } else if c == b'>' {
            let start = self.pos;
            self.pos += 1;
            self.emit(TokenType::TagNameClose, start, 1, St::Data)
        } else {
            self.before_attribute_name()
        }
    }

    fn self_closing_start_tag(&mut self) -> bool {
        if self.pos >= self.len() {
            return false;
        }
        if self.at(self.pos) == b'>' {
            let start = self.pos.saturating_sub(1);
            self.pos += 1;
            return self.emit(TokenType::TagNameSelfClose, start, 2, St::Data);
        }
        self.before_attribute_name()
    }

    fn bogus_comment(&mut self) -> bool {
        let start = self.pos;
        match self.find(self.pos, b'>') {
            None => {
                self.pos = self.len();
                self.emit(TokenType::TagComment, start, self.len() - start, St::Eof)
            }
            Some(gt) => {
                self.pos = gt + 1;
                self.emit(TokenType::TagComment, start, gt - start, St::Data)
            }
        }
    }

    fn bogus_comment2(&mut self) -> bool {
        let start = self.pos;
        let mut pos = self.pos;
        loop {
            match self.find(pos, b'%') {
                Some(p) if p + 1 < self.len() => {
                    if self.at(p + 1) != b'>' {
                        pos = p + 1;
                        continue;
                    }
                    self.pos = p + 2;
                    return self.emit(TokenType::TagComment, start, p - start, St::Data);
                }
                _ => {
                    self.pos = self.len();
                    return self.emit(TokenType::TagComment, start, self.len() - start, St::Eof);
                }
            }
        }
    }

    fn markup_declaration_open(&mut self) -> bool {
        let rest = self.s.get(self.pos..).unwrap_or(&[]);
        if rest.len() >= 7
            && rest
                .get(..7)
                .is_some_and(|r| r.eq_ignore_ascii_case(b"DOCTYPE"))
        {
            return self.doctype();
        } else if rest.starts_with(b"[CDATA[") {
            self.pos += 7;
            return self.cdata();
        } else if rest.starts_with(b"--") {
            self.pos += 2;
            return self.comment();
        }
        self.bogus_comment()
    }

    /// Comments end at EOF, `-->` or `-!>` (NULs between are ignored).
    fn comment(&mut self) -> bool {
        let start = self.pos;
        let end = self.len();
        let mut pos = self.pos;
        let to_eof = |me: &mut Self| me.emit(TokenType::TagComment, start, end - start, St::Eof);
        loop {
            let Some(dash) = self.find(pos, b'-') else {
                return to_eof(self);
            };
            if dash + 3 > end {
                return to_eof(self);
            }
            let mut off = 1;
            while dash + off < end && self.at(dash + off) == 0 {
                off += 1;
            }
            if dash + off == end {
                return to_eof(self);
            }
            let c = self.at(dash + off);
            if c != b'-' && c != b'!' {
                pos = dash + 1;
                continue;
            }
            off += 1;
            if dash + off == end {
                return to_eof(self);
            }
            if self.at(dash + off) != b'>' {
                pos = dash + 1;
                continue;
            }
            off += 1;
            self.pos = dash + off;
            return self.emit(TokenType::TagComment, start, dash - start, St::Data);
        }
    }

    fn cdata(&mut self) -> bool {
        let start = self.pos;
        let mut pos = self.pos;
        loop {
            match self.find(pos, b']') {
                Some(p) if p + 3 <= self.len() => {
                    if self.at(p + 1) == b']' && self.at(p + 2) == b'>' {
                        self.pos = p + 3;
                        return self.emit(TokenType::DataText, start, p - start, St::Data);
                    }
                    pos = p + 1;
                }
                _ => return self.emit(TokenType::DataText, start, self.len() - start, St::Eof),
            }
        }
    }

    fn doctype(&mut self) -> bool {
        let start = self.pos;
        match self.find(self.pos, b'>') {
            None => self.emit(TokenType::Doctype, start, self.len() - start, St::Eof),
            Some(gt) => {
                self.pos = gt + 1;
                self.emit(TokenType::Doctype, start, gt - start, St::Data)
            }
        }
    }
}
