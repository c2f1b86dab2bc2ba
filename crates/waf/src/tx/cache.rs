//! What a phase learns about its values once and reuses for every rule:
//! each value as every step of every transformation chain leaves it, and
//! which rules' literals occur in each of those forms (see `prefilter`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::prefilter::{self, ChainTrie, Prefilter};
use crate::transforms::{self, Scratch, Transform};
use crate::union::Union;

mod vars;

use vars::Plain;

/// The forms of the values of one phase. Each value has a row, found by
/// its address and length: per node of the chain trie, the form the value
/// takes after that node's chain. A step that leaves its input as it is
/// shares its parent's form, and a chain none of whose steps the value
/// sets off (`transforms::triggers`) leaves it whole, so a clean value has
/// one form for nearly every chain, scanned once. A row's value is copied
/// into the arena, so every form is bytes of its own. Only values that
/// stay in place for the whole phase (request data) are kept here, as the
/// address finds the row, and the cache is emptied when a phase starts
/// (but for phase 2, which keeps phase 1's rows: see `next_phase`).
#[derive(Debug, Default)]
pub struct Cache {
    rows: HashMap<(usize, usize), usize, BuildHasherDefault<AddrHasher>>,
    /// Nodes per row: the trie's size when the first row was made.
    width: usize,
    /// Per row and trie node: the form (index into `forms`), or `NONE`.
    slots: Vec<u32>,
    /// Per row: which transformations its value may set off
    /// (`transforms::triggers`).
    triggers: Vec<u64>,
    /// Per row and transformation: the form the transformation makes of
    /// the original value, or `NONE`. Many chains begin differently yet
    /// leave a clean value as it is; this asks each transformation once.
    firsts: Vec<u32>,
    forms: Vec<Form>,
    arena: Vec<u8>,
    bits: Vec<u64>,
    /// Where an empty bit set starts, once a form has no literal at all
    /// (most clean ones): such forms share it, and add nothing to a
    /// variable's bits.
    empty: Option<usize>,
    /// Per variable key (`prefilter::VarKey`, numbered by the rule set):
    /// where the union of the bits of all its values' forms starts, or
    /// `NONE`.
    var_bits: Vec<u32>,
    /// Per variable key, where its forms are listed in `form_list` and how
    /// many there are: one per value, in order, after the key's chain
    /// (none for keys of every step).
    key_forms: Vec<(u32, u32)>,
    /// Per variable key, which of the union's members match some form of
    /// its listed values, once asked (see `key_union_may_match`).
    key_union: Vec<Option<u128>>,
    form_list: Vec<u32>,
    /// Per variable (and whether XML attributes, see `plain_index`): its
    /// values as they come (see `plain`), once looked at this phase. A
    /// table rather than a map: rules ask for it a few hundred times a
    /// request, mostly finding it.
    plain: Vec<Option<Plain>>,
    /// Which entries of `plain` are filled, to empty just those.
    plain_filled: Vec<usize>,
    /// The rows of the variables' values, in order (see `Plain::rows`).
    row_list: Vec<u32>,
    /// Per rule group: where its bits start (the union of its variables'),
    /// or `NONE`.
    groups: Vec<u32>,
    /// A spare list for `steps`, kept so it allocates once.
    pub steps_buf: Vec<usize>,
}

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Form {
    /// Where the form is in the arena (the original value is copied
    /// there too, so a form stands on its own).
    span: (usize, usize),
    /// An earlier form of the row (the original, or the form this one
    /// was made from) that equals this one but for letter case, so its
    /// scan (case-insensitive) speaks for this one; or `NONE`.
    fold: u32,
    /// Where the prefilter's bits for this form start, once scanned.
    bits: Option<usize>,
    /// Which of the union's expressions match this form, once tested.
    union: Option<u128>,
    /// Which transformations the form may set off
    /// (`transforms::triggers`).
    triggers: u64,
}

/// Calls back with each value of a variable.
pub type Values<'a> = dyn Fn(&mut dyn FnMut(&[u8])) + 'a;

fn index(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(NONE)
}

impl Cache {
    /// Empties the cache for the next transaction; a cache grown past a
    /// megabyte by a large body is given up rather than kept.
    pub fn reset(&mut self) {
        if self.arena.capacity() > 1 << 20 || self.slots.capacity() > 1 << 18 {
            *self = Cache::default();
        } else {
            self.clear();
        }
    }

    /// Starts phase 2 from phase 1's cache. Values phase 1 saw (the
    /// request line, headers, cookies and query) stay where they were, so
    /// their rows, forms and scans still hold; only what is per variable
    /// goes, as the body adds values to ARGS and its kin.
    pub fn next_phase(&mut self) {
        self.var_bits.clear();
        self.key_forms.clear();
        self.key_union.clear();
        self.form_list.clear();
        self.clear_plain();
        self.row_list.clear();
        self.groups.clear();
    }

    pub fn clear(&mut self) {
        self.rows.clear();
        self.triggers.clear();
        self.slots.clear();
        self.firsts.clear();
        self.forms.clear();
        self.arena.clear();
        self.bits.clear();
        self.empty = None;
        self.var_bits.clear();
        self.key_forms.clear();
        self.key_union.clear();
        self.form_list.clear();
        self.clear_plain();
        self.row_list.clear();
        self.groups.clear();
    }

    /// The row of `value`, made if needed.
    fn row(&mut self, value: &[u8], trie: &ChainTrie) -> usize {
        let key = (value.as_ptr() as usize, value.len());
        if let Some(r) = self.rows.get(&key) {
            return *r;
        }
        if self.rows.is_empty() {
            self.width = trie.len();
        }
        let r = self.rows.len();
        let original = index(self.forms.len());
        let triggers = transforms::triggers(value);
        let start = self.arena.len();
        self.arena.extend_from_slice(value);
        self.forms.push(Form {
            span: (start, value.len()),
            fold: NONE,
            bits: None,
            union: None,
            triggers,
        });
        let at = self.slots.len();
        self.slots.resize(at + self.width, NONE);
        if let Some(s) = self.slots.get_mut(at) {
            *s = original;
        }
        self.firsts
            .resize(self.firsts.len() + Transform::COUNT, NONE);
        self.triggers.push(triggers);
        self.rows.insert(key, r);
        r
    }

    /// The form `value` takes after the chain of trie node `node`.
    pub fn form(
        &mut self,
        trie: &ChainTrie,
        node: u32,
        value: &[u8],
        scratch: &mut Scratch,
    ) -> usize {
        let row = self.row(value, trie);
        self.form_in(row, trie, node, scratch)
    }

    /// The form of row `row` after the chain of `node`: most often known
    /// already, so that case is looked up in line.
    #[inline]
    fn form_in(&mut self, row: usize, trie: &ChainTrie, node: u32, scratch: &mut Scratch) -> usize {
        if (node as usize) < self.width
            && let Some(&f) = self.slots.get(row * self.width + node as usize)
            && f != NONE
        {
            return f as usize;
        }
        self.work_out(row, trie, node, scratch)
    }

    /// `form_in` for a form not known yet: worked out from its parent's.
    #[inline(never)]
    fn work_out(
        &mut self,
        row: usize,
        trie: &ChainTrie,
        node: u32,
        scratch: &mut Scratch,
    ) -> usize {
        // A node the row has no room for (a trie from another rule set):
        // computed each time rather than misread.
        if node as usize >= self.width {
            return self.uncached(row, trie, node, scratch);
        }
        let at = row * self.width + node as usize;
        let original = self.slots.get(row * self.width).copied().unwrap_or(0) as usize;
        // A chain none of whose steps the value sets off leaves it whole.
        let triggers = self.triggers.get(row).copied().unwrap_or(u64::MAX);
        if triggers & trie.mask(node) == 0 {
            if let Some(slot) = self.slots.get_mut(at) {
                *slot = index(original);
            }
            return original;
        }
        let Some((parent, t)) = trie.step(node) else {
            return original;
        };
        let from = self.form_in(row, trie, parent, scratch);
        let first = row * Transform::COUNT + t as usize;
        let f = if from == original {
            match self.firsts.get(first) {
                Some(&f) if f != NONE => f as usize,
                _ => {
                    let f = self.apply(t, from, original, NONE, scratch);
                    if let Some(slot) = self.firsts.get_mut(first) {
                        *slot = index(f);
                    }
                    f
                }
            }
        } else {
            // When `from` is the original but for case, `t` of the
            // original (if made) may be this form but for case.
            let sibling = match self.forms.get(from) {
                Some(f) if f.fold == index(original) => {
                    self.firsts.get(first).copied().unwrap_or(NONE)
                }
                _ => NONE,
            };
            self.apply(t, from, original, sibling, scratch)
        };
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = index(f);
        }
        f
    }

    /// The form `t` makes of form `from`: `from` itself when `t` leaves
    /// it as it is.
    fn apply(
        &mut self,
        t: Transform,
        from: usize,
        original: usize,
        sibling: u32,
        scratch: &mut Scratch,
    ) -> usize {
        // A form that does not set `t` off stays as it is.
        if self
            .forms
            .get(from)
            .is_some_and(|f| f.triggers & t.bit() == 0)
        {
            return from;
        }
        let out = scratch.buf();
        if !t.apply(self.value(from), out) {
            return from;
        }
        // A form that differs only in letter case from the original, from
        // the form it was made from (`t:lowercase` late in a chain), or
        // from its sibling needs no scan of its own.
        let fold = [index(original), index(from), sibling]
            .into_iter()
            .filter(|&c| c != NONE)
            .find(|&c| out.eq_ignore_ascii_case(self.value(c as usize)))
            .map_or(NONE, |c| match self.forms.get(c as usize) {
                Some(f) if f.fold != NONE => f.fold,
                _ => c,
            });
        let start = self.arena.len();
        self.arena.extend_from_slice(out);
        self.forms.push(Form {
            span: (start, out.len()),
            fold,
            bits: None,
            union: None,
            triggers: transforms::triggers(out),
        });
        self.forms.len() - 1
    }

    /// A form computed along the whole chain without the row's memory.
    fn uncached(
        &mut self,
        row: usize,
        trie: &ChainTrie,
        node: u32,
        scratch: &mut Scratch,
    ) -> usize {
        let original = self.slots.get(row * self.width).copied().unwrap_or(0) as usize;
        match trie.step(node) {
            None => original,
            Some((parent, t)) => {
                let from = self.uncached(row, trie, parent, scratch);
                self.apply(t, from, original, NONE, scratch)
            }
        }
    }

    /// The forms of `value` along the chain of `node`, in order and each
    /// once: the value as it comes, then after every step that changed it
    /// (what `multiMatch` tests).
    pub fn steps(
        &mut self,
        trie: &ChainTrie,
        node: u32,
        value: &[u8],
        scratch: &mut Scratch,
        out: &mut Vec<usize>,
    ) {
        let row = self.row(value, trie);
        self.steps_in(row, trie, node, scratch, out);
    }

    fn steps_in(
        &mut self,
        row: usize,
        trie: &ChainTrie,
        node: u32,
        scratch: &mut Scratch,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        // A value that sets off no step of the chain has one form.
        let triggers = self.triggers.get(row).copied().unwrap_or(u64::MAX);
        if triggers & trie.mask(node) == 0
            && let Some(&original) = self.slots.get(row * self.width)
        {
            out.push(original as usize);
            return;
        }
        let mut n = node;
        loop {
            let f = self.form_in(row, trie, n, scratch);
            if out.last() != Some(&f) {
                out.push(f);
            }
            match trie.step(n) {
                Some((parent, _)) => n = parent,
                None => break,
            }
        }
        out.reverse();
    }

    /// The bytes of form `f` of `value`.
    pub fn value(&self, f: usize) -> &[u8] {
        self.forms
            .get(f)
            .and_then(|f| self.arena.get(f.span.0..f.span.0 + f.span.1))
            .unwrap_or_default()
    }

    /// Whether the rule in `slot` may match form `f` of `value`: false
    /// only when none of its literals occur.
    pub fn may_match(&mut self, f: usize, filter: &Prefilter, slot: u32) -> bool {
        self.scan(f, filter)
            .and_then(|start| self.bits.get(start..start + filter.words))
            .is_none_or(|bits| prefilter::is_set(bits, slot))
    }

    /// Whether the union's member `member` may match form `f` of
    /// `value`: false only when its expression does not. Each form goes
    /// through the union once.
    #[inline]
    pub fn union_may_match(&mut self, f: usize, u: &Union, member: u32, paranoia: u8) -> bool {
        let matched = self.union_verdict(f, u, paranoia);
        // A member the mask has no bit for is never ruled out.
        1u128
            .checked_shl(member)
            .is_none_or(|bit| matched & bit != 0)
    }

    /// Which of the union's members match form `f`.
    #[inline]
    fn union_verdict(&mut self, f: usize, u: &Union, paranoia: u8) -> u128 {
        match self.forms.get(f).and_then(|form| form.union) {
            Some(m) => m,
            None => self.union_new(f, u, paranoia),
        }
    }

    /// The union's verdict on a form it has not seen yet.
    #[inline(never)]
    fn union_new(&mut self, f: usize, u: &Union, paranoia: u8) -> u128 {
        let m = u.matched(self.value(f), paranoia);
        if let Some(form) = self.forms.get_mut(f) {
            form.union = Some(m);
        }
        m
    }

    /// Where the prefilter bits of form `f` of `value` start, scanning it
    /// first if needed. Most calls find the form scanned already: that
    /// case is looked up in line, without the scan's frame.
    #[inline]
    fn scan(&mut self, f: usize, filter: &Prefilter) -> Option<usize> {
        match self.forms.get(f)?.bits {
            Some(start) => Some(start),
            None => self.scan_new(f, filter),
        }
    }

    /// `scan` for a form not scanned yet.
    #[inline(never)]
    fn scan_new(&mut self, f: usize, filter: &Prefilter) -> Option<usize> {
        let form = self.forms.get(f).copied()?;
        let start = if form.fold != NONE && form.fold as usize != f {
            self.scan(form.fold as usize, filter)?
        } else {
            let start = self.bits.len();
            self.bits.resize(start + filter.words, 0);
            let (s, len) = form.span;
            let scanned = self.arena.get(s..s + len).unwrap_or_default();
            if let Some(bits) = self.bits.get_mut(start..) {
                filter.scan(scanned, bits);
            }
            self.share_if_empty(start, filter.words)
        };
        if let Some(form) = self.forms.get_mut(f) {
            form.bits = Some(start);
        }
        Some(start)
    }

    /// Room for a new, empty bit set.
    pub fn new_bits(&mut self, words: usize) -> usize {
        let start = self.bits.len();
        self.bits.resize(start + words, 0);
        start
    }

    /// Adds the bits at `from` to those at `to`.
    pub fn or_bits(&mut self, to: usize, from: usize, words: usize) {
        // The usual case, a new set made from earlier ones: two separate
        // runs of words, which the compiler ORs a vector at a time.
        if from + words <= to
            && let Some((head, tail)) = self.bits.split_at_mut_checked(to)
            && let (Some(src), Some(dst)) = (head.get(from..from + words), tail.get_mut(..words))
        {
            for (d, s) in dst.iter_mut().zip(src) {
                *d |= *s;
            }
            return;
        }
        for i in 0..words {
            let w = self.bits.get(from + i).copied().unwrap_or(u64::MAX);
            if let Some(acc) = self.bits.get_mut(to + i) {
                *acc |= w;
            }
        }
    }

    fn fill_bits(&mut self, to: usize, words: usize) {
        if let Some(bits) = self.bits.get_mut(to..to + words) {
            bits.fill(u64::MAX);
        }
    }

    /// The set at `start` (`words` long), or the shared empty set in its
    /// place when it has no bit (the set is then given up if it is the
    /// last one made; the first such set becomes the shared one).
    fn share_if_empty(&mut self, start: usize, words: usize) -> usize {
        let none = self
            .bits
            .get(start..start + words)
            .is_some_and(|b| b.iter().all(|&w| w == 0));
        match self.empty {
            _ if !none => start,
            Some(empty) => {
                if start + words == self.bits.len() {
                    self.bits.truncate(start);
                }
                empty
            }
            None => {
                self.empty = Some(start);
                start
            }
        }
    }

    /// Whether the bits at `start` are the shared empty set (see
    /// `empty`).
    pub fn is_empty_set(&self, start: usize) -> bool {
        self.empty == Some(start)
    }

    /// Where the shared empty set starts, made if need be.
    pub fn empty_set(&mut self, words: usize) -> usize {
        match self.empty {
            Some(start) => start,
            None => {
                let start = self.new_bits(words);
                self.empty = Some(start);
                start
            }
        }
    }

    /// Whether `slot` is set in the bits at `start` (or they are missing).
    pub fn is_set(&self, start: usize, words: usize, slot: u32) -> bool {
        self.bits
            .get(start..start + words)
            .is_none_or(|bits| prefilter::is_set(bits, slot))
    }
}

/// Keys are an address, a length and a small id: a multiply-and-rotate
/// mix is enough, and much cheaper than the default keyed hasher.
#[derive(Debug, Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
}
