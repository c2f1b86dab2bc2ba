//! `@rx` patterns, and the ones whose branches are found faster apart.
//!
//! The regex engine skips ahead to where a match can begin by searching
//! for the literals every match starts with. A pattern such as
//! `(?i)create[\s]+function...|;[\s]*?(?:alter|...)` has such literals in
//! each branch (`create` in any case; `;`), but not together: the engine
//! weighs the joint list (64 spellings of `create`, and `;`) as too poor
//! to skip with and walks its automaton over every byte instead, some 1.5
//! µs for an 880-byte description against some 0.17 µs for the two
//! branches searched one after the other. So when the pattern as a whole
//! offers no fast search for its first literals and each of a few
//! top-level branches does, "does it match" is asked of the branches in
//! turn. A value matches the pattern exactly when it matches one of its
//! branches; captures still come from the whole pattern, whose leftmost
//! first match decides `TX.0`.

use regex::bytes::Regex;
use regex_automata::MatchKind;
use regex_automata::util::prefilter::Prefilter;
use regex_syntax::hir::{Hir, HirKind};

/// More branches than this cost more passes than a walk saves.
const MAX_BRANCHES: usize = 8;

/// The shortest value searched branch by branch, per branch.
const BYTES_PER_BRANCH: usize = 32;

#[derive(Debug, Clone)]
pub struct Rx {
    re: Regex,
    /// The top-level branches, searched in turn for `is_match`; empty when
    /// the whole pattern is searched.
    branches: Box<[Regex]>,
}

impl Rx {
    /// `re` compiled, by `compile`, from the pattern `hir` is the syntax
    /// tree of; each branch is compiled the same way.
    pub fn new(hir: &Hir, re: Regex, compile: impl Fn(&str) -> Result<Regex, String>) -> Rx {
        let branches = split(hir)
            .and_then(|bs| bs.iter().map(|b| compile(b).ok()).collect())
            .unwrap_or_default();
        Rx { re, branches }
    }

    /// `re`, always searched whole.
    pub fn whole(re: Regex) -> Rx {
        Rx {
            re,
            branches: Box::default(),
        }
    }

    pub fn is_match(&self, value: &[u8]) -> bool {
        // Each search has a fixed cost (some 15 ns) that a short value does
        // not win back: measured on the Core Rule Set's split patterns, the
        // branches pay off from about 32 bytes a branch.
        if self.branches.is_empty()
            || value.len() < BYTES_PER_BRANCH.saturating_mul(self.branches.len())
        {
            self.re.is_match(value)
        } else {
            self.branches.iter().any(|b| b.is_match(value))
        }
    }

    /// The whole pattern, for captures and for joining the union.
    pub fn regex(&self) -> &Regex {
        &self.re
    }

    /// How many branches are searched apart (0: the whole pattern).
    pub fn branches(&self) -> usize {
        self.branches.len()
    }
}

/// The top-level branches of a pattern as patterns of their own, when the
/// whole offers no fast search for its first literals and each branch
/// does.
fn split(hir: &Hir) -> Option<Vec<String>> {
    if fast_start(hir) {
        return None;
    }
    // A group around the whole pattern changes nothing for a yes or no.
    let mut top = hir;
    while let HirKind::Capture(c) = top.kind() {
        top = &c.sub;
    }
    let HirKind::Alternation(alts) = top.kind() else {
        return None;
    };
    if alts.len() > MAX_BRANCHES || !alts.iter().all(fast_start) {
        return None;
    }
    // The printed syntax tree reads back as the same tree.
    Some(alts.iter().map(Hir::to_string).collect())
}

/// Whether the regex engine searches fast for where a match of `hir` may
/// start (it decides the same way, from the same literals).
fn fast_start(hir: &Hir) -> bool {
    Prefilter::from_hir_prefix(MatchKind::LeftmostFirst, hir).is_some_and(|p| p.is_fast())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::operators::{compile_regex, syntax_tree};

    /// Long enough to be searched branch by branch.
    fn long(v: &str) -> String {
        format!("{v:<300}")
    }

    fn rx(p: &str) -> Rx {
        Rx::new(
            &syntax_tree(p).unwrap(),
            compile_regex(p).unwrap(),
            compile_regex,
        )
    }

    /// Rule 942350's pattern, as the Core Rule Set writes it.
    const UDF: &str = r"(?i)create[\s\x0b]+function[\s\x0b].+[\s\x0b]returns|;[\s\x0b]*?(?:alter|(?:(?:cre|trunc|upd)at|re(?:nam|plac))e|d(?:e(?:lete|sc)|rop)|(?:inser|selec)t|load)\b[\s\x0b]*?[\(\[]?[0-9A-Z_a-z]{2,}";

    #[test]
    fn branches_answer_as_the_whole_pattern_does() {
        let cases: &[(&str, &[&str])] = &[
            (
                UDF,
                &[
                    "CREATE FUNCTION f RETURNS integer",
                    "create\tfunction x\nreturns",
                    "1; DROP table_users",
                    "x;insert(ab",
                    "x;  Load\x0bdata",
                    "; drop x",
                    "a;dropped table",
                    "placed; returns are free within thirty days",
                    "create function without the keyword",
                    "",
                ],
            ),
            (
                r"(ab+c|x[yz]{2}w)",
                &["abbbc", "ac", "xyzw", "xyw", "zzabc", "abxzzw", ""],
            ),
        ];
        for (pattern, values) in cases {
            let split = rx(pattern);
            assert!(split.branches() >= 2, "{pattern}");
            for v in *values {
                for v in [v.to_string(), long(v), format!("{v:>300}")] {
                    assert_eq!(
                        split.is_match(v.as_bytes()),
                        split.regex().is_match(v.as_bytes()),
                        "{pattern} on {v:?}"
                    );
                }
            }
        }
        let udf = rx(UDF);
        assert!(udf.is_match(long("1; DROP table_users").as_bytes()));
        assert!(!udf.is_match(long("placed; returns are free").as_bytes()));
    }

    #[test]
    fn a_pattern_fast_to_search_or_without_branches_stays_whole() {
        // One literal list the engine searches for well.
        assert_eq!(rx(r"(?i)union\s+select|select\s+from").branches(), 0);
        // No top-level alternation.
        assert_eq!(rx(r"[a-z]+=(?:x|y)").branches(), 0);
        // A branch that can start anywhere.
        assert_eq!(rx(r"(?i)create\s+function|[a-z]+;").branches(), 0);
        // Too many branches: one more than may be split splits no more.
        let branches = |n: usize| {
            let mut p = String::from(r"(?i)create\s+function");
            for i in 1..n {
                p.push_str(&format!(r"|;\s*k{i}"));
            }
            p
        };
        assert_eq!(rx(&branches(MAX_BRANCHES)).branches(), MAX_BRANCHES);
        assert_eq!(rx(&branches(MAX_BRANCHES + 1)).branches(), 0);
    }
}
