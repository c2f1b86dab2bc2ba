//! Splits an action list (`id:1,phase:2,msg:'a, b',t:none`) into names and
//! parameters.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAction {
    pub name: String,
    pub param: Option<String>,
}

/// Names are case-insensitive and kept as written; a parameter may be
/// single-quoted, in which case `\'` stands for a quote.
pub fn split_actions(text: &str) -> Result<Vec<RawAction>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == ':' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let name = name.trim().to_string();
        if name.is_empty() {
            return Err(format!("empty action name in {text:?}"));
        }
        let mut param = None;
        if chars.peek() == Some(&':') {
            chars.next();
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            let mut value = String::new();
            if chars.peek() == Some(&'\'') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    if c == '\\' && chars.peek() == Some(&'\'') {
                        value.push('\'');
                        chars.next();
                    } else if c == '\'' {
                        closed = true;
                        break;
                    } else {
                        value.push(c);
                    }
                }
                if !closed {
                    return Err(format!("unterminated quote in the parameter of {name}"));
                }
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|c| *c != ',') {
                    return Err(format!(
                        "unexpected text after the quoted parameter of {name}"
                    ));
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim_end().to_string();
            }
            param = Some(value);
        }
        out.push(RawAction { name, param });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_bare_parameters() {
        let a = split_actions(
            "id:1, phase:2,msg:'a, b \\'c\\'',t:none,  chain,ctl:ruleRemoveTargetById=1;ARGS:x",
        )
        .unwrap();
        assert_eq!(a.len(), 6);
        assert_eq!(
            a[0],
            RawAction {
                name: "id".into(),
                param: Some("1".into())
            }
        );
        assert_eq!(a[2].param.as_deref(), Some("a, b 'c'"));
        assert_eq!(
            a[4],
            RawAction {
                name: "chain".into(),
                param: None
            }
        );
        assert_eq!(a[5].param.as_deref(), Some("ruleRemoveTargetById=1;ARGS:x"));
    }

    #[test]
    fn broken_lists_are_refused() {
        assert!(split_actions("msg:'open").is_err());
        assert!(split_actions("msg:'a'b").is_err());
        assert!(split_actions(":x").is_err());
    }
}
