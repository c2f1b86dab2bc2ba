//! What a phase learns about its values once and reuses for every rule:
//! each value as every step of every transformation chain leaves it, and
//! which rules' literals occur in each of those forms (see `prefilter`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::prefilter::{self, ChainTrie, Prefilter, VarKey};
use crate::transforms::{self, Scratch, Transform};
use crate::union::Union;
use crate::variables::Var;

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
    form_list: Vec<u32>,
    /// Per variable (and whether XML attributes): its values as they
    /// come (see `plain`).
    plain: HashMap<(Var, bool), Plain, BuildHasherDefault<AddrHasher>>,
    /// The rows of the variables' values, in order (see `Plain::rows`).
    row_list: Vec<u32>,
    /// Per rule group: where its bits start (the union of its variables'),
    /// or `NONE`.
    groups: Vec<u32>,
    /// A spare list for `steps`, kept so it allocates once.
    pub steps_buf: Vec<usize>,
}

const NONE: u32 = u32::MAX;

/// A variable's values as they come, in one phase.
#[derive(Debug, Clone, Copy)]
struct Plain {
    /// Where the rows of its values start in `row_list` (and their
    /// original forms in `form_list`), and how many.
    rows: usize,
    forms: usize,
    len: usize,
    /// Where the union of the prefilter bits of the values starts.
    bits: usize,
    /// Which transformations some value sets off
    /// (`transforms::triggers`).
    triggers: u64,
}

#[derive(Debug, Clone, Copy)]
struct Form {
    /// Where the form is in the arena (the original value is copied
    /// there too, so a form stands on its own).
    span: (usize, usize),
    /// The row's original form.
    original: u32,
    /// Whether the form equals the original but for letter case, so the
    /// original's scan (case-insensitive) speaks for it.
    folded: bool,
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
        self.form_list.clear();
        self.plain.clear();
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
        self.form_list.clear();
        self.plain.clear();
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
            original,
            folded: true,
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
        let f = if from == original {
            let first = row * Transform::COUNT + t as usize;
            match self.firsts.get(first) {
                Some(&f) if f != NONE => f as usize,
                _ => {
                    let f = self.apply(t, from, original, scratch);
                    if let Some(slot) = self.firsts.get_mut(first) {
                        *slot = index(f);
                    }
                    f
                }
            }
        } else {
            self.apply(t, from, original, scratch)
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
        let folded = out.eq_ignore_ascii_case(self.value(original));
        let start = self.arena.len();
        self.arena.extend_from_slice(out);
        self.forms.push(Form {
            span: (start, out.len()),
            original: index(original),
            folded,
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
                self.apply(t, from, original, scratch)
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
    pub fn union_may_match(&mut self, f: usize, u: &Union, member: u32) -> bool {
        let matched = match self.forms.get(f).and_then(|form| form.union) {
            Some(m) => m,
            None => {
                let m = u.matched(self.value(f));
                if let Some(form) = self.forms.get_mut(f) {
                    form.union = Some(m);
                }
                m
            }
        };
        // A member the mask has no bit for is never ruled out.
        1u128
            .checked_shl(member)
            .is_none_or(|bit| matched & bit != 0)
    }

    /// Where the prefilter bits of form `f` of `value` start, scanning it
    /// first if needed.
    fn scan(&mut self, f: usize, filter: &Prefilter) -> Option<usize> {
        let form = self.forms.get(f).copied()?;
        if let Some(start) = form.bits {
            return Some(start);
        }
        let start = if form.folded && form.original as usize != f {
            self.scan(form.original as usize, filter)?
        } else {
            let start = self.bits.len();
            self.bits.resize(start + filter.words, 0);
            let (s, len) = form.span;
            let scanned = self.arena.get(s..s + len).unwrap_or_default();
            let mut found = false;
            if let Some(bits) = self.bits.get_mut(start..) {
                filter.scan(scanned, bits);
                found = bits.iter().any(|&w| w != 0);
            }
            match self.empty {
                Some(empty) if !found => {
                    self.bits.truncate(start);
                    empty
                }
                _ => {
                    if !found {
                        self.empty = Some(start);
                    }
                    start
                }
            }
        };
        if let Some(form) = self.forms.get_mut(f) {
            form.bits = Some(start);
        }
        Some(start)
    }

    /// Where the union of the prefilter bits of a variable's values starts:
    /// their forms after the chain of `node` (or with `every_step` after
    /// each of its steps), worked out once per phase with `values` (which
    /// calls back with each value). `id` numbers the key.
    pub fn var_bits(
        &mut self,
        (id, key): (u32, VarKey),
        trie: &ChainTrie,
        filter: &Prefilter,
        scratch: &mut Scratch,
        values: &Values<'_>,
    ) -> usize {
        let (var, attrs, node, every_step) = key;
        if self.var_bits.len() < filter.var_keys {
            self.var_bits.resize(filter.var_keys, NONE);
            self.key_forms.resize(filter.var_keys, (NONE, 0));
        }
        if let Some(&start) = self.var_bits.get(id as usize)
            && start != NONE
        {
            return start as usize;
        }
        let plain = self.plain(var, attrs, trie, filter, values);
        // No value sets off any step of the chain: every form is the value
        // itself, and the plain union is the answer.
        let start = if plain.triggers & trie.mask(node) == 0 {
            self.set_key_forms(id, plain.forms, plain.len);
            plain.bits
        } else {
            let start = self.new_bits(filter.words);
            let listed = self.form_list.len();
            let mut forms = std::mem::take(&mut self.steps_buf);
            // The rows `plain` found, in order: each holds its value.
            for i in plain.rows..plain.rows + plain.len {
                let Some(row) = self.row_list.get(i).map(|&r| r as usize) else {
                    break;
                };
                if every_step {
                    self.steps_in(row, trie, node, scratch, &mut forms);
                } else {
                    forms.clear();
                    forms.push(self.form_in(row, trie, node, scratch));
                }
                for &f in &forms {
                    self.add_scan(start, f, filter);
                }
                if !every_step && let Some(&f) = forms.first() {
                    self.form_list.push(index(f));
                }
            }
            self.steps_buf = forms;
            if !every_step {
                self.set_key_forms(id, listed, self.form_list.len() - listed);
            }
            start
        };
        if let Some(slot) = self.var_bits.get_mut(id as usize) {
            *slot = index(start);
        }
        start
    }

    /// What a variable's values are as they come, worked out on the
    /// phase's first look at the variable: their rows, the union of their
    /// prefilter bits, and of the transformations they set off.
    fn plain(
        &mut self,
        var: Var,
        attrs: bool,
        trie: &ChainTrie,
        filter: &Prefilter,
        values: &Values<'_>,
    ) -> Plain {
        if let Some(&p) = self.plain.get(&(var, attrs)) {
            return p;
        }
        let mut p = Plain {
            rows: self.row_list.len(),
            forms: self.form_list.len(),
            len: 0,
            bits: self.new_bits(filter.words),
            triggers: 0,
        };
        values(&mut |v| {
            let row = self.row(v, trie);
            self.row_list.push(index(row));
            p.len += 1;
            p.triggers |= self.triggers.get(row).copied().unwrap_or(u64::MAX);
            let original = self.slots.get(row * self.width).copied().unwrap_or(0) as usize;
            self.form_list.push(index(original));
            self.add_scan(p.bits, original, filter);
        });
        self.plain.insert((var, attrs), p);
        p
    }

    /// Where the forms of the values of variable key `id` are listed (see
    /// `key_forms`), listing them first if need be, for a rule that reads
    /// every value: unlike `var_bits`, forms made for the key's chain are
    /// not scanned. `None` for keys of every step (`multiMatch`).
    pub fn list_forms(
        &mut self,
        (id, key): (u32, VarKey),
        trie: &ChainTrie,
        filter: &Prefilter,
        scratch: &mut Scratch,
        values: &Values<'_>,
    ) -> Option<(usize, usize)> {
        let (var, attrs, node, every_step) = key;
        if every_step {
            return None;
        }
        if self.key_forms.len() < filter.var_keys {
            self.var_bits.resize(filter.var_keys, NONE);
            self.key_forms.resize(filter.var_keys, (NONE, 0));
        }
        if let Some(listed) = self.key_forms(id) {
            return Some(listed);
        }
        let plain = self.plain(var, attrs, trie, filter, values);
        if plain.triggers & trie.mask(node) == 0 {
            self.set_key_forms(id, plain.forms, plain.len);
        } else {
            let listed = self.form_list.len();
            for i in plain.rows..plain.rows + plain.len {
                let Some(row) = self.row_list.get(i).map(|&r| r as usize) else {
                    break;
                };
                let f = self.form_in(row, trie, node, scratch);
                self.form_list.push(index(f));
            }
            self.set_key_forms(id, listed, self.form_list.len() - listed);
        }
        self.key_forms(id)
    }

    fn set_key_forms(&mut self, id: u32, start: usize, len: usize) {
        if let Some(k) = self.key_forms.get_mut(id as usize) {
            *k = (index(start), index(len));
        }
    }

    /// Where the forms of the values of variable key `id` (after its
    /// chain, one per value in order) are listed, and how many there are,
    /// once worked out for the phase; see `listed_form`.
    pub fn key_forms(&self, id: u32) -> Option<(usize, usize)> {
        let &(start, len) = self.key_forms.get(id as usize)?;
        (start != NONE).then_some((start as usize, len as usize))
    }

    /// The form listed at `i` (see `key_forms`).
    pub fn listed_form(&self, i: usize) -> Option<usize> {
        self.form_list.get(i).map(|&f| f as usize)
    }

    /// Whether the rule in `slot` may match form `f`, which has been
    /// scanned (a form that has not been is never ruled out).
    pub fn form_may_match(&self, f: usize, filter: &Prefilter, slot: u32) -> bool {
        match self.forms.get(f).and_then(|form| form.bits) {
            Some(start) => self.is_set(start, filter.words, slot),
            None => true,
        }
    }

    /// Adds the prefilter bits of form `f` of `v` to those at `to`; a
    /// form that cannot be scanned lets every rule by.
    fn add_scan(&mut self, to: usize, f: usize, filter: &Prefilter) {
        match self.scan(f, filter) {
            Some(from) if Some(from) == self.empty => {}
            Some(from) => self.or_bits(to, from, filter.words),
            None => self.fill_bits(to, filter.words),
        }
    }

    /// Whether the rule in `slot` may match some value of the variable
    /// key `id`: false only when that key's bits are worked out for the
    /// phase and lack the slot.
    pub fn var_may_match(&self, id: u32, slot: u32, words: usize) -> bool {
        match self.var_bits.get(id as usize) {
            Some(&start) if start != NONE => self.is_set(start as usize, words, slot),
            _ => true,
        }
    }

    /// Where the bits of rule group `group` start, once worked out.
    pub fn group_bits(&self, group: u32) -> Option<usize> {
        self.groups
            .get(group as usize)
            .filter(|&&s| s != NONE)
            .map(|&s| s as usize)
    }

    pub fn set_group_bits(&mut self, group: u32, start: usize, groups: usize) {
        if self.groups.len() < groups {
            self.groups.resize(groups, NONE);
        }
        if let Some(g) = self.groups.get_mut(group as usize) {
            *g = index(start);
        }
    }

    /// Room for a new, empty bit set.
    pub fn new_bits(&mut self, words: usize) -> usize {
        let start = self.bits.len();
        self.bits.resize(start + words, 0);
        start
    }

    /// Adds the bits at `from` to those at `to`.
    pub fn or_bits(&mut self, to: usize, from: usize, words: usize) {
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
