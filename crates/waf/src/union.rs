//! One pass for the long expressions the literal prefilter cannot rule out.
//!
//! Some rules' expressions offer the literal prefilter nothing specific to
//! look for: every part of a match may be spelled many ways (a command
//! name with quotes or `$@` between its letters, a path separator in a
//! dozen encodings). Others only offer punctuation that ordinary text has
//! too (a `;` before a shell command). They are long, so each costs a pass
//! over every value it inspects. Long expressions are joined into one set,
//! and each form of a value goes through the set once, which tells which
//! of them match it; a rule whose expression is not among those is known
//! not to match that form without running its own. One pass of the set
//! over a value costs about what one of its expressions alone does. A rule
//! with literals still asks the prefilter first, so the set only runs over
//! forms some member could match.

use regex::bytes::RegexSet;

use crate::operators::{Op, Operator, compile_regex_set};
use crate::rule::Rule;

/// Shorter expressions cost little alone; a member makes every pass of
/// the set a little dearer.
const MIN_PATTERN_LEN: usize = 256;

/// A form's verdict is a bit per member.
const MAX_MEMBERS: usize = 128;

/// The pattern an operator brings to the union, if it joins it: a long
/// regular expression that cannot match the empty value.
pub fn member(op: &Operator) -> Option<&str> {
    let Op::Rx(re) = &op.op else {
        return None;
    };
    let joins = !op.negated && re.as_str().len() >= MIN_PATTERN_LEN && !re.is_match(b"");
    joins.then(|| re.as_str())
}

/// Gathers the members as a rule set is built.
#[derive(Debug, Default)]
pub struct Members {
    patterns: Vec<String>,
}

impl Members {
    /// Makes `rule` (and each rule of its chain) a member if its
    /// expression joins, while there is room.
    pub fn add(&mut self, rule: &mut Rule) {
        if let Some(p) = member(&rule.operator)
            && self.patterns.len() < MAX_MEMBERS
        {
            rule.union = u32::try_from(self.patterns.len()).ok();
            self.patterns.push(p.to_owned());
        }
        if let Some(c) = rule.chain.as_deref_mut() {
            self.add(c);
        }
    }

    /// The union, or none when there are fewer than two members or the
    /// set cannot be built: every rule then runs its own expression.
    pub fn build(self) -> Option<Union> {
        if self.patterns.len() < 2 {
            return None;
        }
        let set = compile_regex_set(&self.patterns).ok()?;
        Some(Union { set })
    }
}

/// The members' expressions as one set.
#[derive(Debug)]
pub struct Union {
    set: RegexSet,
}

impl Union {
    /// Which members' expressions match `value`: bit `i` for member `i`
    /// (`Rule::union`). A member past the mask's width (there are none:
    /// see `MAX_MEMBERS`) would set every bit, never hide a match.
    pub fn matched(&self, value: &[u8]) -> u128 {
        // Most values match no member: a plain search says so without
        // the overlapping one's bookkeeping.
        if !self.set.is_match(value) {
            return 0;
        }
        self.set.matches(value).iter().fold(0, |m, i| {
            m | 1u128
                .checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
                .unwrap_or(u128::MAX)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ruleset::DataFiles;

    fn op(text: &str) -> Operator {
        Operator::parse(text, &DataFiles::Embedded(&[])).unwrap()
    }

    /// A long expression with nothing to prefilter on: `ab` or `ba`, with
    /// any of many separators between the letters, until it is long.
    fn long(a: char, b: char) -> String {
        long_after("(?:[;|&`]|^)", a, b)
    }

    /// The same after `start` (a separator) instead.
    fn long_after(start: &str, a: char, b: char) -> String {
        let sep = "[\"'\\)\\[\\x5c]*(?:\\$[!#\\(\\*\\-0-9\\?@_a-z]*)?";
        let mut p = format!("(?i){start}[\\s\\x0b]*");
        while p.len() < MIN_PATTERN_LEN {
            p.push_str(&format!("(?:{a}{sep}{b}|{b}{sep}{a}){sep}"));
        }
        p
    }

    #[test]
    fn only_long_expressions_join() {
        let l = long('x', 'y');
        assert!(op(&format!("@rx {l}")).literals.is_none());
        assert!(member(&op(&format!("@rx {l}"))).is_some());
        // With a literal the prefilter looks for first, too.
        let semi = format!("@rx {}", long_after(";", 'x', 'y'));
        assert!(op(&semi).literals.is_some());
        assert!(member(&op(&semi)).is_some());
        assert!(member(&op(&format!("!@rx {l}"))).is_none());
        assert!(member(&op("@rx ^$")).is_none());
        assert!(member(&op("@rx (?i)union\\s+select")).is_none());
        assert!(member(&op(&format!("@rx (?:{l})?"))).is_none());
        assert!(member(&op("@pm select union")).is_none());
    }

    #[test]
    fn the_union_tells_which_members_match() {
        // The last one needs `.` to match a new line, as rules read it.
        let pats = [
            long('x', 'y'),
            long('p', 'q'),
            long('x', 'q'),
            long_after("a.b", 'm', 'n'),
        ];
        let mut members = Members::default();
        for p in &pats {
            members.patterns.push(p.clone());
        }
        let u = members.build().unwrap();
        // Each as the rule's own operator compiles it.
        let res: Vec<regex::bytes::Regex> = pats
            .iter()
            .map(|p| crate::operators::compile_regex(p).unwrap())
            .collect();
        let values: [&[u8]; 7] = [
            b"a\nb mnmnmnmnmnmnmnmnmnmnmnmnmnmnmnmnmnmnmnmnmnmnmn",
            b"an ordinary sentence; with a semicolon",
            b";xyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxy",
            b"| p\"q$@qpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqp",
            b"xyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxy without a separator first",
            b"&qxqxqxqxqxqxqxqxqxqxqxqxqxqxqxqxqxqxqxqxqxqxqx",
            b"",
        ];
        let mut seen = 0;
        for v in values {
            let m = u.matched(v);
            seen |= m;
            for (i, re) in res.iter().enumerate() {
                assert_eq!(
                    m & (1 << i) != 0,
                    re.is_match(v),
                    "member {i} on {:?}",
                    String::from_utf8_lossy(v)
                );
            }
        }
        // Each member matched something: the test tells them apart.
        assert_eq!(seen, 0b1111);
        let mut one = Members::default();
        one.patterns.push(pats[0].clone());
        assert!(one.build().is_none());
    }
}
