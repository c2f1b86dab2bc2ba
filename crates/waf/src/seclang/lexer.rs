//! Splits a SecLang file into directives: logical lines (a trailing `\`
//! continues a line), comments and blank lines dropped, each line cut into
//! words the way the reference engines' configuration readers do it.

use crate::error::LoadError;

/// One directive as written: its name, its arguments, where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: usize,
    pub words: Vec<String>,
}

/// Cuts `text` into directive lines. `file` only names errors.
pub fn lines(file: &str, text: &str) -> Result<Vec<Line>, LoadError> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if logical.is_empty() {
            start = i + 1;
        }
        // A backslash as the last character joins the next line; the
        // reference readers join before looking for comments, so a comment
        // that ends in a backslash swallows the next line too.
        if let Some(head) = raw.strip_suffix('\\') {
            logical.push_str(head);
            continue;
        }
        logical.push_str(raw);
        let body = logical.trim();
        if !body.is_empty() && !body.starts_with('#') {
            let words = words(body).map_err(|m| LoadError::at(file, start, m))?;
            out.push(Line { line: start, words });
        }
        logical.clear();
    }
    let body = logical.trim();
    if !body.is_empty() && !body.starts_with('#') {
        return Err(LoadError::at(
            file,
            start,
            "the file ends inside a continued line",
        ));
    }
    Ok(out)
}

/// Words separated by white space; a word may be quoted with `"` or `'`, in
/// which case only an escaped quote of the same kind is unescaped (every
/// other backslash stays, as regular expressions need them).
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(_, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '\'' {
            let quote = c;
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                if c == '\\' && chars.peek().map(|&(_, n)| n) == Some(quote) {
                    word.push(quote);
                    chars.next();
                } else if c == quote {
                    closed = true;
                    break;
                } else {
                    word.push(c);
                }
            }
            if !closed {
                return Err(format!("unterminated {quote}-quoted argument"));
            }
            if let Some(&(_, n)) = chars.peek()
                && !n.is_whitespace()
            {
                return Err(format!(
                    "a quoted argument must be followed by white space, found {n:?}"
                ));
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn continued_lines_comments_and_quotes() {
        let text = "# a comment\n\nSecRule ARGS \"@rx a\\\"b\\x5c\" \\\n    \"id:1,\\\n    pass\"\nSecMarker END\n";
        let l = lines("t.conf", text).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].line, 3);
        assert_eq!(
            l[0].words,
            ["SecRule", "ARGS", "@rx a\"b\\x5c", "id:1,    pass"]
        );
        assert_eq!(l[1].line, 6);
        assert_eq!(l[1].words, ["SecMarker", "END"]);
    }

    #[test]
    fn unterminated_quotes_name_the_line() {
        let e = lines("t.conf", "\nSecRule ARGS \"@rx a").unwrap_err();
        assert_eq!(e.to_string(), "t.conf:2: unterminated \"-quoted argument");
        let e = lines("t.conf", "SecAction \"id:1\"x").unwrap_err();
        assert!(e.to_string().contains("followed by white space"), "{e}");
    }

    #[test]
    fn a_file_may_not_end_inside_a_continued_line() {
        assert!(lines("t.conf", "SecAction \\").is_err());
    }
}
