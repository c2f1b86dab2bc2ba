//! Regular expressions that test a whole value against something simple:
//! `^$`, `^.*$`, `^0$`, `^(?:GET|HEAD)$`, `^\d+$`. The Core Rule Set runs a
//! dozen of them on every request, mostly on short values, where a call
//! into the regex engine costs far more than the test itself. Such a
//! pattern is recognised from its syntax tree at load and tested directly;
//! any other stays a regular expression.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whole {
    /// The value is exactly one of these.
    OneOf(Vec<Vec<u8>>),
    /// The value is at least `min` bytes long, each of them in the set.
    Run { set: Box<[bool; 256]>, min: usize },
}

impl Whole {
    /// The test a pattern amounts to, if it is that simple, from its
    /// syntax tree as `operators::syntax_tree` reads it: bytes, `.`
    /// matching new lines, `$` only the very end.
    pub fn recognise(hir: &Hir) -> Option<Whole> {
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        let [first, middle @ .., last] = parts.as_slice() else {
            return None;
        };
        let anchored = matches!(first.kind(), HirKind::Look(Look::Start))
            && matches!(last.kind(), HirKind::Look(Look::End));
        if !anchored {
            return None;
        }
        match middle {
            [] => Some(Whole::OneOf(vec![Vec::new()])),
            [m] => inner(m),
            _ => None,
        }
    }

    /// Whether `value` matches; the match is always the whole value.
    pub fn test(&self, value: &[u8]) -> bool {
        match self {
            Whole::OneOf(values) => values.iter().any(|v| v.as_slice() == value),
            Whole::Run { set, min } => {
                value.len() >= *min
                    && value
                        .iter()
                        .all(|&b| set.get(usize::from(b)).copied().unwrap_or(false))
            }
        }
    }
}

/// What lies between the anchors: a literal, literals as alternatives, or
/// a run of one byte class.
fn inner(h: &Hir) -> Option<Whole> {
    match h.kind() {
        HirKind::Literal(l) => Some(Whole::OneOf(vec![l.0.to_vec()])),
        HirKind::Alternation(alts) => alts
            .iter()
            .map(|a| match a.kind() {
                HirKind::Literal(l) => Some(l.0.to_vec()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Whole::OneOf),
        HirKind::Repetition(r) if r.max.is_none() => {
            let HirKind::Class(Class::Bytes(c)) = r.sub.kind() else {
                return None;
            };
            let mut set = Box::new([false; 256]);
            for range in c.iter() {
                for b in range.start()..=range.end() {
                    if let Some(s) = set.get_mut(usize::from(b)) {
                        *s = true;
                    }
                }
            }
            Some(Whole::Run {
                set,
                min: usize::try_from(r.min).ok()?,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::operators::{compile_regex, syntax_tree};

    fn recognise(p: &str) -> Option<Whole> {
        Whole::recognise(&syntax_tree(p).unwrap())
    }

    /// Every recognised pattern answers as the regex engine does, on
    /// values chosen to hit each edge (empty, new lines, near misses).
    #[test]
    fn recognised_patterns_agree_with_the_regex_engine() {
        let values: [&[u8]; 14] = [
            b"",
            b"0",
            b"00",
            b"GET",
            b"get",
            b"HEAD",
            b"GETX",
            b"123",
            b"12a",
            b"\n",
            b"a\nb",
            b"x\n",
            b"\xff\x00",
            b" 1",
        ];
        let patterns = [
            "^$",
            "^.*$",
            "^0$",
            "^(?:GET|HEAD)$",
            "^\\d+$",
            "^[0-9]*$",
            "^.+$",
        ];
        for p in patterns {
            let w = recognise(p).unwrap_or_else(|| panic!("{p} not recognised"));
            let re = compile_regex(p).unwrap();
            for v in values {
                assert_eq!(w.test(v), re.is_match(v), "{p} on {v:?}");
            }
        }
    }

    #[test]
    fn anything_else_stays_a_regular_expression() {
        for p in [
            "^a|b$",
            "(?i)^get$",
            "^(a)$",
            "^a",
            "a$",
            "^a.*b$",
            "^[a-z]{2,5}$",
            "^(?:GET|H.AD)$",
            "(?m)^0$",
        ] {
            assert_eq!(recognise(p), None, "{p}");
        }
    }
}
