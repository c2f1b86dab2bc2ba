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
use crate::ruleset::Entry;
use crate::variables::{Selector, Var};

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
    let re = re.regex();
    let joins = !op.negated && re.as_str().len() >= MIN_PATTERN_LEN && !re.is_match(b"");
    joins.then(|| re.as_str())
}

/// The level a gate rule holds the rules after it back to: a rule that
/// skips ahead when `TX:DETECTION_PARANOIA_LEVEL` is below `n` (how the
/// Core Rule Set gates its higher paranoia levels) lets the rules up to
/// its marker run only at level `n` or above.
fn gate_level(r: &Rule) -> Option<u8> {
    let [t] = r.targets.include.as_slice() else {
        return None;
    };
    let gates = r.chain.is_none()
        && !r.operator.negated
        && r.transforms.is_empty()
        && t.var == Var::Tx
        && !t.count
        && matches!(&t.selector, Selector::Key(k) if k == "detection_paranoia_level");
    let Op::Lt(m) = &r.operator.op else {
        return None;
    };
    if !gates {
        return None;
    }
    std::str::from_utf8(m.literal()?).ok()?.trim().parse().ok()
}

/// Each entry's paranoia floor in a phase's list (the lowest detection
/// paranoia level at which the list's gates let it run; 0 when none holds
/// it back). Only a cost hint for the union (see `Union::matched`).
pub fn floors(list: &[Entry]) -> Vec<u8> {
    let mut floors = vec![0u8; list.len()];
    for (i, e) in list.iter().enumerate() {
        if let Entry::Rule(r, Some(to), _) = e
            && let Some(n) = gate_level(r)
        {
            for f in floors.iter_mut().take(*to).skip(i + 1) {
                *f = (*f).max(n);
            }
        }
    }
    floors
}

/// Gathers the members as a rule set is built.
#[derive(Debug, Default)]
pub struct Members {
    patterns: Vec<String>,
    /// Each member's paranoia floor (see `add`).
    floors: Vec<u8>,
}

impl Members {
    /// Makes `rule` (and each rule of its chain) a member if its
    /// expression joins, while there is room. `floor`: the lowest
    /// detection paranoia level at which the rule set's own gates let the
    /// rule run (0 when no gate holds it back).
    pub fn add(&mut self, rule: &mut Rule, floor: u8) {
        if let Some(p) = member(&rule.operator)
            && self.patterns.len() < MAX_MEMBERS
        {
            rule.union = u32::try_from(self.patterns.len()).ok();
            self.patterns.push(p.to_owned());
            self.floors.push(floor);
        }
        if let Some(c) = rule.chain.as_deref_mut() {
            self.add(c, floor);
        }
    }

    /// The union, or none when there are fewer than two members or the
    /// set cannot be built: every rule then runs its own expression.
    ///
    /// One set per paranoia level that holds fewer members than the next:
    /// at paranoia 1 the expressions of rules gated to levels 2 to 4 would
    /// only make each pass dearer, and a match of theirs would cost the
    /// overlapping search for nothing.
    pub fn build(self) -> Option<Union> {
        if self.patterns.len() < 2 {
            return None;
        }
        let mut levels = Vec::new();
        let top = self.floors.iter().copied().max().unwrap_or(0);
        let mut last = usize::MAX;
        for level in 0..=top {
            let members: Vec<usize> = (0..self.patterns.len())
                .filter(|&i| self.floors.get(i).is_some_and(|&f| f <= level))
                .collect();
            if members.len() == last || members.is_empty() {
                continue;
            }
            last = members.len();
            let patterns: Vec<&String> = members
                .iter()
                .filter_map(|&i| self.patterns.get(i))
                .collect();
            let set = compile_regex_set(&patterns).ok()?;
            let absent = (0..self.patterns.len())
                .filter(|&i| self.floors.get(i).is_none_or(|&f| f > level))
                .fold(0, |m, i| m | bit(i));
            levels.push(Level {
                up_to: level,
                set,
                members,
                absent,
            });
        }
        Some(Union { levels })
    }
}

/// Member `i`'s bit in a verdict: every bit for a member past the mask's
/// width (there are none: see `MAX_MEMBERS`), which never hides a match.
fn bit(i: usize) -> u128 {
    1u128
        .checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
        .unwrap_or(u128::MAX)
}

/// The members' expressions as one set: for each paranoia level where the
/// membership grows, the set of the members that level lets run.
#[derive(Debug)]
pub struct Union {
    /// By rising level; the last holds every member.
    levels: Vec<Level>,
}

#[derive(Debug)]
struct Level {
    /// The highest paranoia level this set is made for.
    up_to: u8,
    set: RegexSet,
    /// The member each of the set's expressions stands for.
    members: Vec<usize>,
    /// The bits of the members not in the set: always "may match".
    absent: u128,
}

impl Union {
    /// Which members' expressions may match `value` at detection paranoia
    /// level `paranoia`: bit `i` for member `i` (`Rule::union`), clear
    /// only when its expression does not match. A member the level's gates
    /// hold back is not searched for and keeps its bit, so a rule that
    /// runs all the same (its gate removed, the level raised in between)
    /// runs its own expression: the level only decides the cost.
    pub fn matched(&self, value: &[u8], paranoia: u8) -> u128 {
        let Some(level) = self
            .levels
            .iter()
            .find(|l| l.up_to >= paranoia)
            .or(self.levels.last())
        else {
            return u128::MAX;
        };
        // Most values match no member: a plain search says so without
        // the overlapping one's bookkeeping.
        if !level.set.is_match(value) {
            return level.absent;
        }
        level.set.matches(value).iter().fold(level.absent, |m, i| {
            m | level
                .members
                .get(i)
                .map_or(u128::MAX, |&member| bit(member))
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

    /// The Core Rule Set tags each rule with its paranoia level; the
    /// floors read off its gates agree with every tag (but in files with
    /// no gates, such as the multipart rules, which run at every level).
    #[test]
    fn floors_follow_the_core_rule_sets_gates() {
        let rules = crate::RuleSet::load(&crate::crs::builtin(&[])).unwrap();
        let mut checked = 0;
        let mut above_one = 0;
        for list in &rules.phases {
            for (e, floor) in list.iter().zip(floors(list)) {
                let Entry::Rule(r, ..) = e else { continue };
                let Some(level) = r
                    .tags
                    .iter()
                    .find_map(|t| t.strip_prefix("paranoia-level/"))
                else {
                    continue;
                };
                assert!(floor == 0 || level == floor.to_string(), "rule {}", r.id);
                checked += usize::from(floor > 0);
                above_one += usize::from(floor > 1);
            }
        }
        assert!(checked > 300 && above_one > 100, "{checked} {above_one}");
        // Its long expressions come in a set per level.
        assert!(rules.union.as_ref().unwrap().levels.len() >= 3);
    }

    /// A member without literals passes over a variable none of whose
    /// values its expression matches, and still finds the one value that
    /// does among many.
    #[test]
    fn members_find_their_value_among_many() {
        let text = format!(
            "SecRuleEngine On\n\
             SecRule ARGS \"@rx {}\" \"id:10,phase:2,pass,log\"\n\
             SecRule ARGS_NAMES|ARGS \"@rx {}\" \"id:11,phase:2,pass,log\"\n\
             SecRule ARGS \"@rx (?i)select\" \"id:12,phase:2,pass,log\"",
            long('x', 'y').replace('"', "\\\""),
            long('p', 'q').replace('"', "\\\"")
        );
        let rules = crate::RuleSet::load(&[crate::Source::text("t.conf", &text)]).unwrap();
        // With a prefilter (for the third rule's literal), the members
        // read the variables' listed forms.
        assert!(rules.union.is_some() && rules.prefilter.is_some());
        let run = |query: &str| {
            let mut tx = rules.transaction();
            tx.request_line(b"GET", format!("/?{query}").as_bytes(), b"HTTP/1.1");
            tx.process_request(b"");
            tx.matches().iter().map(|m| m.id).collect::<Vec<_>>()
        };
        let clean: Vec<String> = (0..20).map(|i| format!("k{i}=plain+value+{i}")).collect();
        let clean = clean.join("&");
        assert_eq!(run(&clean), Vec::<u32>::new());
        let xy = "%3Bxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxy";
        assert_eq!(run(&format!("{clean}&last={xy}")), vec![10]);
        assert_eq!(run(&format!("first={xy}&{clean}")), vec![10]);
        // A name is one of the second rule's values, not the first's.
        let pq = "%7Cpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpqpq";
        assert_eq!(run(&format!("{clean}&{pq}=1")), vec![11]);
        assert_eq!(run(&format!("{clean}&a={pq}&b={xy}")), vec![10, 11]);
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
        // Two members are held back to levels 2 and 3 by gates.
        let floors = [0, 2, 3, 1];
        let mut members = Members::default();
        for (p, f) in pats.iter().zip(floors) {
            members.patterns.push(p.clone());
            members.floors.push(f);
        }
        let u = members.build().unwrap();
        assert_eq!(u.levels.len(), 4);
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
            for paranoia in [0, 1, 2, 3, 4, u8::MAX] {
                let m = u.matched(v, paranoia);
                if paranoia == u8::MAX {
                    seen |= m;
                }
                for (i, re) in res.iter().enumerate() {
                    // A member above the level is not searched for: its
                    // bit stays set, so its rule runs its own expression.
                    let expected = re.is_match(v) || floors[i] > paranoia;
                    assert_eq!(
                        m & (1 << i) != 0,
                        expected,
                        "member {i} at paranoia {paranoia} on {:?}",
                        String::from_utf8_lossy(v)
                    );
                }
            }
        }
        // Each member matched something: the test tells them apart.
        assert_eq!(seen, 0b1111);
        let mut one = Members::default();
        one.patterns.push(pats[0].clone());
        one.floors.push(0);
        assert!(one.build().is_none());
    }
}
