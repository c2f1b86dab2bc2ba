//! A literal prefilter over the whole rule set.
//!
//! Most rules look for something specific: a regular expression that can
//! only match where one of a few literals occurs (`select`, `<script`,
//! `/etc/`), a phrase list. A clean value contains none of them, yet
//! running each rule on it scans it once per rule. Here the literals of
//! every rule go into one Aho-Corasick automaton; each distinct form of a
//! value (as it comes, or as a transformation chain changed it) is scanned
//! once, and a rule none of whose literals occur in the form it tests
//! (with `multiMatch`, in any of the forms along its chain) is known not to
//! match without running its operator.
//!
//! Literals are lower-cased and searched case-insensitively: that can only
//! let more values through to the real operator, never fewer, so the
//! prefilter never changes a verdict.

use std::collections::HashMap;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, Hir, HirKind, Repetition};

use crate::rule::Rule;
use crate::transforms::Transform;
use crate::variables::Var;

/// Literals kept per rule; more make the shared automaton bigger for
/// little gain.
const MAX_LITERALS: usize = 128;

/// Literals at least one of which occurs (ignoring ASCII case) in every
/// value the regular expression of syntax tree `hir` matches, or
/// `None` when no such short list exists.
pub fn regex_literals(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let hir = fold_case(hir.clone());
    let ends = [ExtractKind::Prefix, ExtractKind::Suffix].map(|kind| {
        let mut ex = Extractor::new();
        ex.kind(kind).limit_total(MAX_LITERALS).limit_class(12);
        ex.extract(&hir)
            .literals()
            .and_then(|l| minimal(l.iter().map(|l| l.as_bytes().to_vec()).collect()))
    });
    ends.into_iter()
        .chain(std::iter::once(cover(&hir)))
        .flatten()
        .max_by_key(|lits| quality(lits))
        .filter(|lits| quality(lits).0 >= MIN_WEIGHT)
}

/// Literals one of which every match of `hir` contains, if few enough.
fn cover(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Literal(l) => Some(vec![l.0.to_vec()]),
        HirKind::Class(Class::Bytes(c)) => {
            let n: usize = c.iter().map(|r| usize::from(r.end() - r.start()) + 1).sum();
            (n <= 12).then(|| {
                c.iter()
                    .flat_map(|r| r.start()..=r.end())
                    .map(|b| vec![b])
                    .collect()
            })
        }
        HirKind::Repetition(r) if r.min > 0 => cover(&r.sub),
        HirKind::Capture(c) => cover(&c.sub),
        // Every match contains a match of each part: the best part speaks
        // for the whole.
        HirKind::Concat(subs) => subs
            .iter()
            .filter_map(cover)
            .max_by_key(|lits| quality(lits)),
        HirKind::Alternation(subs) => {
            let mut all = Vec::new();
            for s in subs {
                all.extend(cover(s)?);
                if all.len() > MAX_LITERALS * 4 {
                    return None;
                }
            }
            minimal(all).filter(|l| l.len() <= MAX_LITERALS)
        }
        _ => None,
    }
}

/// How selective a literal list is: by its weakest literal, then by how
/// short the list is. Letters, digits, spaces and the punctuation of
/// ordinary text count one, other bytes three: `(` or `<` is as telling as
/// `sel`, while `on` or `.` occurs in any sentence.
fn quality(lits: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>) {
    (
        lits.iter().map(|l| weight(l)).min().unwrap_or(0),
        std::cmp::Reverse(lits.len()),
    )
}

fn weight(lit: &[u8]) -> usize {
    lit.iter()
        .map(|b| {
            if b.is_ascii_alphanumeric()
                || matches!(b, b' ' | b'.' | b',' | b'-' | b'_' | b'/' | b':')
            {
                1
            } else {
                3
            }
        })
        .sum::<usize>()
        .min(8)
}

/// Below this, a list would let nearly every value through.
const MIN_WEIGHT: usize = 3;

/// Phrases of `@pm`: one of them must occur for a match.
pub fn phrase_literals<'a>(phrases: impl Iterator<Item = &'a str>) -> Option<Vec<Vec<u8>>> {
    let lits: Vec<Vec<u8>> = phrases.map(|p| p.as_bytes().to_vec()).collect();
    minimal(lits).filter(|lits| quality(lits).0 >= MIN_WEIGHT)
}

/// Lower-cases the literals and drops any that contains another (the
/// shorter one occurs whenever the longer does). `None` when a literal is
/// empty (anything matches) or there are none.
fn minimal(mut lits: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    for l in &mut lits {
        l.make_ascii_lowercase();
    }
    if lits.is_empty() || lits.iter().any(Vec::is_empty) {
        return None;
    }
    lits.sort_by_key(Vec::len);
    lits.dedup();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(lits.len());
    for l in lits {
        if !kept.iter().any(|k| memchr::memmem::find(&l, k).is_some()) {
            kept.push(l);
        }
    }
    Some(kept)
}

/// Rewrites the expression so that letters only appear in lower case:
/// `[Ss]` becomes `s`, `[A-Za-z]` becomes `[a-z]`. What it matches,
/// ignoring case, is a superset of what the original matches.
fn fold_case(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Literal(lit) => Hir::literal(lit.0.to_ascii_lowercase()),
        HirKind::Class(Class::Bytes(c)) => Hir::class(Class::Bytes(lower_class(&c))),
        HirKind::Class(c) => Hir::class(c),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(fold_case(*r.sub)),
            ..r
        }),
        HirKind::Capture(c) => fold_case(*c.sub),
        HirKind::Concat(subs) => Hir::concat(subs.into_iter().map(fold_case).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.into_iter().map(fold_case).collect()),
        HirKind::Empty => Hir::empty(),
        HirKind::Look(l) => Hir::look(l),
    }
}

fn lower_class(c: &ClassBytes) -> ClassBytes {
    // `ClassBytes::new` sorts and merges the ranges.
    ClassBytes::new(c.iter().flat_map(|r| {
        (r.start()..=r.end()).map(|b| {
            let l = b.to_ascii_lowercase();
            ClassBytesRange::new(l, l)
        })
    }))
}

/// The transformation chains of a rule set as a trie: node 0 is the empty
/// chain, every other node its parent's chain plus one transformation.
/// Chains that begin alike share those nodes, so a transaction computes
/// each step of a value once however many chains start with it.
#[derive(Debug, Default)]
pub struct ChainTrie {
    /// Node `i + 1`: its parent and its last transformation.
    steps: Vec<(u32, Transform)>,
    /// Node `i + 1`: the bits (`Transform::bit`) of every transformation
    /// of its chain.
    masks: Vec<u64>,
}

impl ChainTrie {
    /// How many nodes there are, the root included.
    pub fn len(&self) -> usize {
        self.steps.len() + 1
    }

    /// A node's parent and last transformation; `None` for the root.
    pub fn step(&self, node: u32) -> Option<(u32, Transform)> {
        let i = usize::try_from(node.checked_sub(1)?).ok()?;
        self.steps.get(i).copied()
    }

    /// The bits of the transformations of a node's chain (none for the
    /// root); every bit for a node that is not there.
    pub fn mask(&self, node: u32) -> u64 {
        match node.checked_sub(1) {
            None => 0,
            Some(i) => self.masks.get(i as usize).copied().unwrap_or(u64::MAX),
        }
    }
}

/// Numbers the transformation chains of a rule set as it is built (each
/// rule gets the trie node of its chain) and collects the literals of
/// every rule.
#[derive(Debug, Default)]
pub struct Chains {
    trie: ChainTrie,
    children: HashMap<(u32, Transform), u32>,
    all: Literals,
    slots: u32,
    groups: HashMap<GroupKey, u32>,
    var_keys: HashMap<VarKey, u32>,
}

/// What the prefilter bits of one variable depend on: the variable, whether
/// an XML target takes attributes, the chain, and every step or the last.
pub type VarKey = (Var, bool, u32, bool);

/// What a rule's prefilter verdict depends on: its variables (and whether
/// an XML target takes attributes), its chain, and whether every step of
/// the chain counts (`multiMatch`).
type GroupKey = (Vec<(Var, bool)>, u32, bool);

impl Chains {
    /// Gives `rule` and the rest of its chain their chain nodes and, where
    /// the operator has literals, their prefilter slots.
    pub fn number(&mut self, rule: &mut Rule) {
        let mut node = 0;
        for &t in &rule.transforms {
            let ChainTrie { steps, masks } = &mut self.trie;
            node = *self.children.entry((node, t)).or_insert_with(|| {
                let parent = match node.checked_sub(1) {
                    None => 0,
                    Some(i) => masks.get(i as usize).copied().unwrap_or(u64::MAX),
                };
                masks.push(parent | t.bit());
                steps.push((node, t));
                u32::try_from(steps.len()).unwrap_or(u32::MAX)
            });
        }
        rule.chain_id = node;
        // Every rule whose targets are all request data gets a key per
        // target, which its values' forms are listed under once a phase;
        // a rule with literals also gets a slot and a group.
        let targets = &rule.targets.include;
        let keyed =
            !targets.is_empty() && targets.iter().all(|t| !t.count && t.var.stays_in_place());
        let vars: Vec<(Var, bool)> = targets
            .iter()
            .map(|t| (t.var, t.takes_attributes()))
            .collect();
        if keyed {
            let multi = rule.multi_match;
            let ids = &mut self.var_keys;
            rule.var_keys = vars
                .iter()
                .map(|&(var, attrs)| {
                    let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
                    *ids.entry((var, attrs, node, multi)).or_insert(next)
                })
                .collect();
        }
        if let Some(lits) = &rule.operator.literals {
            let slot = self.slots;
            self.slots += 1;
            self.all.add(lits, slot);
            rule.slot = Some(slot);
            if keyed {
                let next = u32::try_from(self.groups.len()).unwrap_or(u32::MAX);
                let key = (vars, node, rule.multi_match);
                rule.group = Some(*self.groups.entry(key).or_insert(next));
            }
        }
        if let Some(c) = rule.chain.as_deref_mut() {
            self.number(c);
        }
    }

    /// The chain trie, and the prefilter or none at all when its automaton
    /// cannot be built (every rule then runs its operator).
    pub fn build(self) -> (ChainTrie, Option<Prefilter>) {
        let words = (self.slots as usize).div_ceil(64);
        let groups = self.groups.len();
        let var_keys = self.var_keys.len();
        let filter = self.all.build().map(|all| Prefilter {
            all,
            words,
            groups,
            var_keys,
        });
        (self.trie, filter)
    }
}

/// The prefilter of a rule set: one automaton over the literals of every
/// rule. Each distinct form of a value (as it comes, or as a chain of
/// transformations leaves it) is scanned once.
#[derive(Debug)]
pub struct Prefilter {
    all: Scanner,
    /// Words of a bit set that holds every slot.
    pub words: usize,
    /// How many rule groups there are (see `Rule::group`).
    pub groups: usize,
    /// How many variable keys there are (see `Rule::var_keys`).
    pub var_keys: usize,
}

impl Prefilter {
    /// Sets, in `bits`, the slot of every rule one of whose literals
    /// occurs in `value`.
    pub fn scan(&self, value: &[u8], bits: &mut [u64]) {
        self.all.scan(value, bits);
    }
}

/// Literals and the slots of the rules that listed them.
#[derive(Debug, Default)]
struct Literals {
    patterns: Vec<Vec<u8>>,
    index: HashMap<Vec<u8>, usize>,
    slots: Vec<Vec<u32>>,
}

impl Literals {
    fn add(&mut self, literals: &[Vec<u8>], slot: u32) {
        for l in literals {
            let l = l.get(..MAX_LITERAL_LEN).unwrap_or(l);
            match self.index.get(l) {
                Some(&i) => {
                    if let Some(s) = self.slots.get_mut(i) {
                        s.push(slot);
                    }
                }
                None => {
                    self.index.insert(l.to_vec(), self.patterns.len());
                    self.patterns.push(l.to_vec());
                    self.slots.push(vec![slot]);
                }
            }
        }
    }

    fn build(self) -> Option<Scanner> {
        if self.patterns.is_empty() {
            return None;
        }
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(&self.patterns)
            .ok()?;
        let start = dfa.start_state(Anchored::No).ok()?;
        Some(Scanner {
            overlap: dfa.max_pattern_len().saturating_sub(1),
            dfa,
            start,
            slots: self.slots,
        })
    }
}

/// Literals are cut to this length: a literal's prefix occurs wherever
/// the literal does, so the verdict stays safe, and short literals let a
/// long value be scanned as pieces side by side (see `Scanner::pieces`).
const MAX_LITERAL_LEN: usize = 32;

#[derive(Debug)]
struct Scanner {
    dfa: DFA,
    start: StateID,
    /// Per pattern, the slots of the rules that listed it.
    slots: Vec<Vec<u32>>,
    /// How far a piece reaches back into the one before it, so that every
    /// occurrence ending in the piece's share lies wholly in the piece.
    overlap: usize,
}

impl Scanner {
    fn scan(&self, value: &[u8], bits: &mut [u64]) {
        // A piece costs `overlap` extra steps: only long values are split.
        let n = value.len();
        if n >= 16 * self.overlap {
            self.pieces::<4>(value, bits);
        } else if n >= 6 * self.overlap {
            self.pieces::<2>(value, bits);
        } else {
            self.walk(value, bits);
        }
    }

    /// One walk over the whole value. Out of line, like `pieces`: in
    /// the caller the walk's state would not keep a register, and every
    /// step would wait on a store and a reload as well as on the table.
    #[inline(never)]
    fn walk(&self, value: &[u8], bits: &mut [u64]) {
        let mut sid = self.start;
        for &b in value {
            sid = self.dfa.next_state(Anchored::No, sid, b);
            if self.dfa.is_special(sid) {
                self.report(sid, bits);
            }
        }
    }

    /// Walks the automaton over `K` pieces of `value` at once. Each step
    /// of a walk waits on the memory read of the one before it; `K`
    /// independent walks keep `K` reads in flight. An occurrence seen by
    /// two pieces sets its bits twice, which changes nothing.
    #[inline(never)]
    fn pieces<const K: usize>(&self, value: &[u8], bits: &mut [u64]) {
        let share = value.len().div_ceil(K);
        // Where each piece starts and ends in `value`.
        let spans: [(usize, usize); K] = std::array::from_fn(|j| {
            let to = (j.saturating_add(1).saturating_mul(share)).min(value.len());
            let from = j.saturating_mul(share).saturating_sub(self.overlap).min(to);
            (from, to)
        });
        let together = spans.iter().map(|&(f, t)| t - f).min().unwrap_or(0);
        // The first `together` bytes of every piece, walked side by side.
        let heads: [&[u8]; K] = std::array::from_fn(|j| {
            let from = spans.get(j).map_or(0, |s| s.0);
            value.get(from..from + together).unwrap_or_default()
        });
        let mut states = [self.start; K];
        let step = |sid: StateID, b: u8| self.dfa.next_state(Anchored::No, sid, b);
        // Zipped walks share one index and keep their states in registers.
        if let Ok(&[h0, h1, h2, h3]) = <&[&[u8]; 4]>::try_from(heads.as_slice()) {
            let [mut s0, mut s1, mut s2, mut s3] = [self.start; 4];
            // The four pieces' bytes are first laid side by side, a block
            // at a time: walking them then takes one pointer, not four,
            // which (with the reports out of line) leaves registers for
            // the states, which were stored and reloaded on every step.
            let mut block = [[0u8; 4]; 256];
            let mut rest = [h0, h1, h2, h3];
            // The heads are all `together` bytes long.
            while let Some(m) = rest.first().map(|h| h.len().min(256)).filter(|&m| m > 0) {
                let [a, b, c, e] = rest.map(|h| h.split_at(m.min(h.len())));
                for ((((q, &x0), &x1), &x2), &x3) in
                    block.iter_mut().zip(a.0).zip(b.0).zip(c.0).zip(e.0)
                {
                    *q = [x0, x1, x2, x3];
                }
                rest = [a.1, b.1, c.1, e.1];
                for &[b0, b1, b2, b3] in block.iter().take(m) {
                    s0 = step(s0, b0);
                    s1 = step(s1, b1);
                    s2 = step(s2, b2);
                    s3 = step(s3, b3);
                    let d = &self.dfa;
                    if d.is_special(s0) | d.is_special(s1) | d.is_special(s2) | d.is_special(s3) {
                        self.report_all(&[s0, s1, s2, s3], bits);
                    }
                }
            }
            for (st, s) in states.iter_mut().zip([s0, s1, s2, s3]) {
                *st = s;
            }
        } else if let Ok(&[h0, h1]) = <&[&[u8]; 2]>::try_from(heads.as_slice()) {
            let [mut s0, mut s1] = [self.start; 2];
            for (&b0, &b1) in h0.iter().zip(h1) {
                s0 = step(s0, b0);
                s1 = step(s1, b1);
                if self.dfa.is_special(s0) | self.dfa.is_special(s1) {
                    self.report_all(&[s0, s1], bits);
                }
            }
            for (st, s) in states.iter_mut().zip([s0, s1]) {
                *st = s;
            }
        } else {
            for (st, head) in states.iter_mut().zip(heads) {
                for &b in head {
                    *st = step(*st, b);
                    if self.dfa.is_special(*st) {
                        self.report(*st, bits);
                    }
                }
            }
        }
        for (sid, &(from, to)) in states.iter_mut().zip(&spans) {
            for &b in value.get(from + together..to).unwrap_or_default() {
                *sid = step(*sid, b);
                if self.dfa.is_special(*sid) {
                    self.report(*sid, bits);
                }
            }
        }
    }

    /// `report` for each of the zipped walks' states. Out of line and
    /// cold: in line, the walks' states would not keep their registers.
    #[cold]
    #[inline(never)]
    fn report_all(&self, sids: &[StateID], bits: &mut [u64]) {
        for &sid in sids {
            self.report(sid, bits);
        }
    }

    /// Sets the slots of the patterns that end at `sid`, if any do.
    fn report(&self, sid: StateID, bits: &mut [u64]) {
        if !self.dfa.is_match(sid) {
            return;
        }
        for i in 0..self.dfa.match_len(sid) {
            let pattern = self.dfa.match_pattern(sid, i).as_usize();
            for &s in self.slots.get(pattern).into_iter().flatten() {
                set(bits, s);
            }
        }
    }
}

fn set(bits: &mut [u64], slot: u32) {
    if let Some(w) = bits.get_mut((slot / 64) as usize) {
        *w |= 1 << (slot % 64);
    }
}

pub fn is_set(bits: &[u64], slot: u32) -> bool {
    bits.get((slot / 64) as usize)
        .is_some_and(|w| w & (1 << (slot % 64)) != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lits(p: &str) -> Option<Vec<String>> {
        regex_literals(&crate::operators::syntax_tree(p).unwrap()).map(|v| {
            v.into_iter()
                .map(|l| String::from_utf8(l).unwrap())
                .collect()
        })
    }

    #[test]
    fn literals_are_lowered_and_minimal() {
        assert_eq!(lits("(?i)<scrIPT"), Some(vec!["<script".into()]));
        let l = lits("(?i)(?:union\\s+select|select.+from)").unwrap();
        assert!(l.contains(&"union".to_string()) || l.contains(&"select".to_string()));
        // Nothing specific to look for.
        assert_eq!(lits("[a-z]+"), None);
        assert_eq!(lits("^.*$"), None);
        assert_eq!(lits("a?"), None);
        assert_eq!(
            phrase_literals(["Foo", "foobar", "<x"].into_iter()),
            Some(vec![b"<x".to_vec(), b"foo".to_vec()])
        );
        // Too common in ordinary text to tell anything.
        assert_eq!(phrase_literals(["on", "select"].into_iter()), None);
        assert_eq!(lits("(?i)\\bon[a-z]+"), None);
        assert_eq!(lits("(?i)\\bon[a-z]+="), Some(vec!["=".into()]));
        // Punctuation is telling: the best part of the expression is used.
        assert_eq!(lits("[a-z]+\\([a-z]*\\)"), Some(vec![")".into()]));
    }

    #[test]
    fn long_values_scanned_in_pieces_miss_nothing() {
        let long = "k".repeat(MAX_LITERAL_LEN + 9);
        let lits: [&[u8]; 3] = [b"select", b"<scr", long.as_bytes()];
        let mut all = Literals::default();
        for (slot, l) in (0u32..).zip(lits) {
            all.add(&[l.to_vec()], slot);
        }
        let f = all.build().unwrap();
        // Long literals are cut, so pieces overlap by the cut length.
        assert_eq!(f.overlap, MAX_LITERAL_LEN - 1);
        // One piece, two and four: each literal at every place in the
        // value, across every boundary between pieces.
        // (1100 and 2600: the four walks take their bytes in blocks of 256.)
        for len in [60, 300, 1100, 2600] {
            for (slot, lit) in (0u32..).zip(lits) {
                let lit = lit.to_ascii_uppercase();
                for at in 0..=len - lit.len() {
                    let mut v = vec![b'.'; len];
                    v.splice(at..at + lit.len(), lit.iter().copied());
                    let mut bits = [0u64; 1];
                    f.scan(&v, &mut bits);
                    assert_eq!(bits, [1 << slot], "slot {slot} at {at} of {len}");
                }
            }
            let mut bits = [0u64; 1];
            f.scan(&vec![b'.'; len], &mut bits);
            assert_eq!(bits, [0]);
        }
    }

    #[test]
    fn the_filter_never_hides_a_match() {
        let pats = [
            "(?i)\\b(?:s(?:elect|leep)|union)\\b",
            "(?i)on(?:error|load)\\s*=",
            "/etc/(?:passwd|shadow)",
            "(?i)[Jj]ava[\\s\\S]{0,3}script:",
        ];
        let mut all = Literals::default();
        for (slot, p) in (0u32..).zip(&pats) {
            let hir = crate::operators::syntax_tree(p).unwrap();
            all.add(&regex_literals(&hir).unwrap(), slot);
        }
        let f = all.build().unwrap();
        let values: [&[u8]; 6] = [
            b"1 UNION all SELECT x",
            b"<img OnErRoR =x>",
            b"../../etc/passwd",
            b"JAVA\tscript:alert(1)",
            b"a perfectly ordinary sentence",
            b"sleeping",
        ];
        for v in values {
            let mut bits = [0u64; 1];
            f.scan(v, &mut bits);
            for (slot, p) in (0u32..).zip(&pats) {
                let re = regex::bytes::Regex::new(p).unwrap();
                if re.is_match(v) {
                    assert!(
                        is_set(&bits, slot),
                        "{p} on {:?}",
                        String::from_utf8_lossy(v)
                    );
                }
            }
        }
        let mut bits = [0u64; 1];
        f.scan(b"a perfectly ordinary sentence", &mut bits);
        assert_eq!(bits, [0]);
    }
}
