//! Located diagnostics: every config error names the file, line and column,
//! shows the line, and says what to do about it.

use std::fmt;
use std::sync::Arc;

use crate::yaml::{Document, Pos};

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: Arc<str>,
    /// Where in the file; `None` when the problem is about the whole file.
    pub pos: Option<Pos>,
    /// How many columns to underline.
    pub width: usize,
    /// The JSON pointer of the offending value, e.g. `/routes/0/upstream`.
    pub pointer: String,
    pub message: String,
    pub hint: Option<String>,
    /// The source line, for display.
    pub line_text: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        match self.pos {
            Some(p) => writeln!(f, "  --> {}:{}:{}", self.file, p.line, p.column)?,
            None => writeln!(f, "  --> {}", self.file)?,
        }
        if let (Some(p), Some(text)) = (self.pos, &self.line_text) {
            let num = p.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {text}")?;
            let lead: String = text
                .chars()
                .take(p.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {lead}{}", "^".repeat(self.width.max(1)))?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "  = hint: {h}")?;
        }
        Ok(())
    }
}

/// All the problems found in one load, in file order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        let n = self.diagnostics.len();
        write!(
            f,
            "{n} error{} in the configuration",
            if n == 1 { "" } else { "s" }
        )
    }
}

/// Collects diagnostics against one parsed file.
pub(crate) struct Diagnostics<'a> {
    file: Arc<str>,
    src: &'a str,
    doc: &'a Document,
    pub(crate) items: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(file: Arc<str>, src: &'a str, doc: &'a Document) -> Self {
        Diagnostics {
            file,
            src,
            doc,
            items: Vec::new(),
        }
    }

    fn push(&mut self, pointer: &str, on_key: bool, message: String, hint: Option<String>) {
        let (pos, width) = match self.doc.span(pointer) {
            Some((span, exact)) => match (on_key && exact, span.key) {
                (true, Some(k)) => (Some(k), pointer.rsplit('/').next().map_or(1, str::len)),
                _ => (Some(span.start), if exact { span.width } else { 1 }),
            },
            None => (None, 1),
        };
        let line_text = pos.and_then(|p| {
            self.src
                .lines()
                .nth(p.line.saturating_sub(1))
                .map(str::to_owned)
        });
        self.items.push(Diagnostic {
            file: self.file.clone(),
            pos,
            width,
            pointer: pointer.to_owned(),
            message,
            hint,
            line_text,
        });
    }

    /// A problem with the value at `pointer`.
    pub(crate) fn error(&mut self, pointer: &str, message: impl Into<String>) {
        self.push(pointer, false, message.into(), None);
    }

    pub(crate) fn error_hint(
        &mut self,
        pointer: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(pointer, false, message.into(), Some(hint.into()));
    }

    /// A problem with the key of the entry at `pointer` (e.g. an unknown key).
    pub(crate) fn key_error(
        &mut self,
        pointer: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.push(pointer, true, message.into(), hint);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        if self.items.is_empty() {
            return Ok(());
        }
        Err(self.fail())
    }

    /// The error made of everything collected so far, in file order.
    pub(crate) fn fail(mut self) -> ConfigError {
        self.items.sort_by_key(|d| d.pos);
        self.items.dedup();
        ConfigError {
            diagnostics: self.items,
        }
    }
}

/// "did you mean ...?" for a misspelt word among the candidates.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = sub.min(del).min(ins);
            }
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// Quotes and joins a list for messages: `"a", "b", "c"`.
pub(crate) fn quoted_list<'i>(items: impl IntoIterator<Item = &'i str>) -> String {
    items
        .into_iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("timout", ["timeout", "targets"]),
            Some("timeout")
        );
        assert_eq!(did_you_mean("zzz", ["timeout", "targets"]), None);
        assert_eq!(did_you_mean("apii", ["api", "web"]), Some("api"));
    }

    #[test]
    fn renders_with_caret() {
        let src = "routes:\n  - upstream: apii\n";
        let doc = crate::yaml::parse(src).unwrap();
        let mut d = Diagnostics::new("cfg.yaml".into(), src, &doc);
        d.error_hint(
            "/routes/0/upstream",
            "unknown upstream \"apii\"",
            "did you mean \"api\"?",
        );
        let err = d.finish().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--> cfg.yaml:2:15"), "{text}");
        assert!(text.contains("2 |   - upstream: apii"), "{text}");
        assert!(text.contains("  |               ^^^^"), "{text}");
        assert!(text.contains("hint: did you mean \"api\"?"), "{text}");
        assert!(text.ends_with("1 error in the configuration"));
    }
}
