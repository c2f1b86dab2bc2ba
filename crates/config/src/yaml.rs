//! A YAML loader that remembers where every value came from.
//!
//! The document becomes a `serde_json::Value` (what the schema check and
//! serde see) plus an index from JSON pointers (`/routes/2/upstream`) to
//! source positions, so any later error can point at a line and column.
//!
//! Scalars are resolved with the YAML 1.2 core schema: only plain scalars
//! can be numbers, booleans or null; quoted ones are always strings.
//! Duplicate keys, custom tags and multiple documents are refused, and
//! nesting depth and alias expansion are bounded so hostile input cannot
//! exhaust the stack or memory.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

const MAX_DEPTH: usize = 64;
const MAX_NODES: usize = 1_000_000;

/// A position in the source, both 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Where a value (and, for a mapping entry, its key) starts and ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSpan {
    pub key: Option<Pos>,
    pub start: Pos,
    /// Where the value ends on its first line (for underlining scalars).
    pub width: usize,
}

/// A YAML syntax error or a refused construct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// A parsed document and its position index.
#[derive(Debug, Default)]
pub struct Document {
    pub value: Value,
    spans: HashMap<String, NodeSpan>,
}

impl Document {
    /// The span of the value at a JSON pointer, or of its nearest ancestor.
    pub fn span(&self, pointer: &str) -> Option<(NodeSpan, bool)> {
        let mut p = pointer;
        let mut exact = true;
        loop {
            if let Some(s) = self.spans.get(p) {
                return Some((*s, exact));
            }
            exact = false;
            match p.rfind('/') {
                Some(i) => p = p.get(..i).unwrap_or(""),
                None => return None,
            }
        }
    }
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

fn width(span: &Span) -> usize {
    if span.end.line() == span.start.line() {
        span.end.col().saturating_sub(span.start.col()).max(1)
    } else {
        1
    }
}

/// Escapes a mapping key as one JSON pointer token.
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

struct Loader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    spans: HashMap<String, NodeSpan>,
    anchors: HashMap<usize, Value>,
    nodes: usize,
}

enum Item {
    Node(Value),
    End,
}

pub fn parse(src: &str) -> Result<Document, YamlError> {
    let mut loader = Loader {
        parser: Parser::new_from_str(src),
        spans: HashMap::new(),
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut value = None;
    loop {
        let (event, span) = loader.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                if value.is_some() {
                    return Err(YamlError {
                        pos: pos(&span),
                        message: "only one YAML document is allowed".into(),
                    });
                }
                match loader.node("", None, 0)? {
                    Item::Node(v) => value = Some(v),
                    Item::End => {}
                }
            }
            Event::StreamEnd => break,
            _ => {
                return Err(YamlError {
                    pos: pos(&span),
                    message: "unexpected YAML structure".into(),
                });
            }
        }
    }
    Ok(Document {
        value: value.unwrap_or(Value::Null),
        spans: loader.spans,
    })
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(YamlError {
                pos: Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                message: e.info().to_owned(),
            }),
            None => Err(YamlError {
                pos: Pos::default(),
                message: "unexpected end of the document".into(),
            }),
        }
    }

    fn count(&mut self, span: &Span) -> Result<(), YamlError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                pos: pos(span),
                message: "the document is too large (aliases expand too far)".into(),
            });
        }
        Ok(())
    }

    /// Reads one node; `key` is the position of its mapping key, if any.
    fn node(&mut self, pointer: &str, key: Option<Pos>, depth: usize) -> Result<Item, YamlError> {
        let (event, span) = self.next()?;
        if depth > MAX_DEPTH {
            return Err(YamlError {
                pos: pos(&span),
                message: format!("the document is nested deeper than {MAX_DEPTH} levels"),
            });
        }
        self.count(&span)?;
        let record = |spans: &mut HashMap<String, NodeSpan>| {
            spans.insert(
                pointer.to_owned(),
                NodeSpan {
                    key,
                    start: pos(&span),
                    width: width(&span),
                },
            );
        };
        let value = match event {
            Event::Scalar(text, style, anchor, tag) => {
                record(&mut self.spans);
                let v =
                    resolve_scalar(&text, style, tag.as_deref()).map_err(|message| YamlError {
                        pos: pos(&span),
                        message,
                    })?;
                self.remember(anchor, &v);
                v
            }
            Event::SequenceStart(anchor, tag) => {
                check_tag(tag.as_deref(), "seq", &span)?;
                record(&mut self.spans);
                let mut items = Vec::new();
                loop {
                    let child = format!("{pointer}/{}", items.len());
                    match self.node(&child, None, depth + 1)? {
                        Item::Node(v) => items.push(v),
                        Item::End => break,
                    }
                }
                let v = Value::Array(items);
                self.remember(anchor, &v);
                v
            }
            Event::MappingStart(anchor, tag) => {
                check_tag(tag.as_deref(), "map", &span)?;
                record(&mut self.spans);
                let v = Value::Object(self.mapping(pointer, depth)?);
                self.remember(anchor, &v);
                v
            }
            Event::Alias(id) => {
                record(&mut self.spans);
                let v = self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    pos: pos(&span),
                    message: "unknown alias".into(),
                })?;
                // Count the expansion so alias bombs stop early.
                let size = approx_size(&v);
                self.nodes = self.nodes.saturating_add(size);
                if self.nodes > MAX_NODES {
                    return Err(YamlError {
                        pos: pos(&span),
                        message: "the document is too large (aliases expand too far)".into(),
                    });
                }
                v
            }
            Event::SequenceEnd | Event::MappingEnd => return Ok(Item::End),
            _ => {
                return Err(YamlError {
                    pos: pos(&span),
                    message: "unexpected YAML structure".into(),
                });
            }
        };
        Ok(Item::Node(value))
    }

    fn mapping(&mut self, pointer: &str, depth: usize) -> Result<Map<String, Value>, YamlError> {
        let mut map = Map::new();
        loop {
            let (event, span) = self.next()?;
            let key = match event {
                Event::MappingEnd => return Ok(map),
                Event::Scalar(text, _, _, _) => text.into_owned(),
                _ => {
                    return Err(YamlError {
                        pos: pos(&span),
                        message: "mapping keys must be plain strings".into(),
                    });
                }
            };
            if map.contains_key(&key) {
                return Err(YamlError {
                    pos: pos(&span),
                    message: format!("the key \"{key}\" appears twice in this mapping"),
                });
            }
            let child = format!("{pointer}/{}", pointer_token(&key));
            match self.node(&child, Some(pos(&span)), depth + 1)? {
                Item::Node(v) => {
                    map.insert(key, v);
                }
                Item::End => {
                    return Err(YamlError {
                        pos: pos(&span),
                        message: "a mapping key has no value".into(),
                    });
                }
            }
        }
    }

    fn remember(&mut self, anchor: usize, v: &Value) {
        if anchor != 0 {
            self.anchors.insert(anchor, v.clone());
        }
    }
}

fn approx_size(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(approx_size).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(approx_size).sum::<usize>(),
        _ => 1,
    }
}

fn check_tag(tag: Option<&Tag>, expected: &str, span: &Span) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => Err(YamlError {
            pos: pos(span),
            message: format!("the tag {}{} is not supported", t.handle, t.suffix),
        }),
    }
}

fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(t) = tag {
        if !t.is_yaml_core_schema() {
            return Err(format!("the tag {}{} is not supported", t.handle, t.suffix));
        }
        return match t.suffix.as_str() {
            "str" => Ok(Value::String(text.to_owned())),
            "int" | "float" => {
                plain_number(text).ok_or_else(|| format!("\"{text}\" is not a number"))
            }
            "bool" => plain_bool(text).ok_or_else(|| format!("\"{text}\" is not a boolean")),
            "null" => Ok(Value::Null),
            other => Err(format!("the tag !!{other} is not supported")),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = plain_bool(text) {
        return Ok(b);
    }
    Ok(plain_number(text).unwrap_or_else(|| Value::String(text.to_owned())))
}

fn plain_bool(text: &str) -> Option<Value> {
    match text {
        "true" | "True" | "TRUE" => Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => Some(Value::Bool(false)),
        _ => None,
    }
}

fn plain_number(text: &str) -> Option<Value> {
    let t = text.strip_prefix('+').unwrap_or(text);
    if let Some(hex) = t.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(Value::from);
    }
    if let Some(oct) = t.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(Value::from);
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(u) = t.parse::<u64>() {
            return Some(Value::from(u));
        }
        if let Ok(i) = t.parse::<i64>() {
            return Some(Value::from(i));
        }
    }
    let is_float_syntax = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if is_float_syntax && let Ok(f) = t.parse::<f64>() {
        return Number::from_f64(f).map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_positions() {
        let doc = parse("version: 1\nname: \"8080\"\nlist:\n  - a\n  - b: true\n").unwrap();
        assert_eq!(doc.value["version"], 1);
        assert_eq!(doc.value["name"], "8080");
        assert_eq!(doc.value["list"][1]["b"], true);
        let (s, exact) = doc.span("/list/1/b").unwrap();
        assert!(exact);
        assert_eq!(s.start, Pos { line: 5, column: 8 });
        assert_eq!(s.key, Some(Pos { line: 5, column: 5 }));
        let (s, exact) = doc.span("/list/1/missing").unwrap();
        assert!(!exact);
        assert_eq!(s.start.line, 5);
    }

    #[test]
    fn core_schema_scalars() {
        let doc = parse("a: ~\nb: 'true'\nc: 0x10\nd: 1.5\ne: yes\nf: -3\ng: 1.2.3\n").unwrap();
        assert_eq!(doc.value["a"], Value::Null);
        assert_eq!(doc.value["b"], "true");
        assert_eq!(doc.value["c"], 16);
        assert_eq!(doc.value["d"], 1.5);
        assert_eq!(doc.value["e"], "yes"); // YAML 1.2: not a boolean
        assert_eq!(doc.value["f"], -3);
        assert_eq!(doc.value["g"], "1.2.3");
    }

    #[test]
    fn duplicate_keys_are_refused_with_position() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, column: 1 });
        assert!(err.message.contains("twice"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
        let err = parse("a: 1\n  b: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
    }

    #[test]
    fn aliases_expand_but_bombs_stop() {
        let doc = parse("x: &a [1, 2]\ny: *a\n").unwrap();
        assert_eq!(doc.value["y"][1], 2);
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&bomb).unwrap_err().message.contains("too large"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
    }

    #[test]
    fn custom_tags_and_multiple_documents_are_refused() {
        assert!(parse("a: !custom x\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert_eq!(parse("a: !!str 12\n").unwrap().value["a"], "12");
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(parse("").unwrap().value, Value::Null);
        assert_eq!(parse("# only a comment\n").unwrap().value, Value::Null);
    }
}
