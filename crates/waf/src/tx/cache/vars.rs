//! What a phase learns per variable: its values as they come (`Plain`),
//! the prefilter verdict of each variable key (a variable through a
//! chain) and of each rule group, and the forms of a key's values listed
//! by place.

use super::{Cache, NONE, Values, index};
use crate::prefilter::{ChainTrie, Prefilter, VarKey};
use crate::transforms::Scratch;
use crate::union::Union;
use crate::variables::Var;

/// A variable's values as they come, in one phase.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plain {
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

/// Where a variable's `Plain` is kept in `Cache::plain`.
fn plain_index(var: Var, attrs: bool) -> usize {
    var.index() * 2 + usize::from(attrs)
}

impl Cache {
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
        self.size_keys(filter);
        if let Some(&start) = self.var_bits.get(id as usize)
            && start != NONE
        {
            return start as usize;
        }
        let plain = self.plain(var, attrs, trie, filter, values);
        // No value sets off any step of the chain: every form is the value
        // itself, and the plain union is the answer.
        let start = if plain.triggers & trie.mask(node) == 0 {
            plain.bits
        } else if every_step {
            let start = self.new_bits(filter.words);
            let mut forms = std::mem::take(&mut self.steps_buf);
            // The rows `plain` found, in order: each holds its value.
            for i in plain.rows..plain.rows + plain.len {
                let Some(row) = self.row_list.get(i).map(|&r| r as usize) else {
                    break;
                };
                self.steps_in(row, trie, node, scratch, &mut forms);
                for &f in &forms {
                    self.add_scan(start, f, filter);
                }
            }
            self.steps_buf = forms;
            start
        } else {
            let start = self.new_bits(filter.words);
            let (from, len) = self.listed(id, node, plain, trie, scratch);
            for i in from..from + len {
                if let Some(f) = self.listed_form(i) {
                    self.add_scan(start, f, filter);
                }
            }
            start
        };
        if let Some(slot) = self.var_bits.get_mut(id as usize) {
            *slot = index(start);
        }
        start
    }

    /// Room for every variable key's bits and forms (made once a phase;
    /// every later call finds it, in line).
    #[inline]
    fn size_keys(&mut self, filter: &Prefilter) {
        if self.var_bits.len() < filter.var_keys {
            self.grow_keys(filter.var_keys);
        }
    }

    #[inline(never)]
    fn grow_keys(&mut self, keys: usize) {
        self.var_bits.resize(keys, NONE);
        self.key_forms.resize(keys, (NONE, 0));
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
        let at = plain_index(var, attrs);
        if let Some(&Some(p)) = self.plain.get(at) {
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
        // Values none of whose forms as they come hold a literal (most
        // variables of a clean request) share the empty set, which those
        // who gather bits pass over.
        p.bits = self.share_if_empty(p.bits, filter.words);
        if self.plain.len() <= at {
            self.plain.resize(2 * Var::COUNT, None);
        }
        if let Some(slot) = self.plain.get_mut(at) {
            *slot = Some(p);
            self.plain_filled.push(at);
        }
        p
    }

    /// Forgets every variable's `Plain`.
    pub(super) fn clear_plain(&mut self) {
        for at in self.plain_filled.drain(..) {
            if let Some(slot) = self.plain.get_mut(at) {
                *slot = None;
            }
        }
    }

    /// Where the forms of the values of variable key `id` are listed (see
    /// `key_forms`), listing them first if need be, for a rule that reads
    /// every value: unlike `var_bits`, forms made for the key's chain are
    /// not scanned. For keys of every step (`multiMatch`), only when each
    /// value has one form along the chain; `None` otherwise.
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
            // Each value has one form along the chain when none of them
            // sets off one of its steps: the values as they come.
            let plain = self.plain(var, attrs, trie, filter, values);
            return (plain.triggers & trie.mask(node) == 0).then_some((plain.forms, plain.len));
        }
        self.size_keys(filter);
        if let Some(listed) = self.key_forms(id) {
            return Some(listed);
        }
        let plain = self.plain(var, attrs, trie, filter, values);
        Some(self.listed(id, node, plain, trie, scratch))
    }

    /// The forms of key `id` (the variable `plain` describes through the
    /// chain of `node`), one per value in order, listed once a phase.
    fn listed(
        &mut self,
        id: u32,
        node: u32,
        plain: Plain,
        trie: &ChainTrie,
        scratch: &mut Scratch,
    ) -> (usize, usize) {
        if let Some(listed) = self.key_forms(id) {
            return listed;
        }
        let listed = if plain.triggers & trie.mask(node) == 0 {
            (plain.forms, plain.len)
        } else {
            let from = self.form_list.len();
            for i in plain.rows..plain.rows + plain.len {
                let Some(row) = self.row_list.get(i).map(|&r| r as usize) else {
                    break;
                };
                let f = self.form_in(row, trie, node, scratch);
                self.form_list.push(index(f));
            }
            (from, self.form_list.len() - from)
        };
        if let Some(k) = self.key_forms.get_mut(id as usize) {
            *k = (index(listed.0), index(listed.1));
        }
        listed
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

    /// Whether the union's member `member` may match a form listed for
    /// variable key `id` (`len` of them from `start`, see `key_forms`):
    /// false only when its expression matches none of them. The union's
    /// verdicts on the key's forms are gathered once a phase, so the
    /// members without literals, which would each ask it form by form,
    /// pass over a variable none of whose values concerns them at once.
    pub fn key_union_may_match(
        &mut self,
        (id, start, len): (u32, usize, usize),
        u: &Union,
        member: u32,
        paranoia: u8,
    ) -> bool {
        let known = self.key_union.get(id as usize).copied().flatten();
        let matched = match known {
            Some(m) => m,
            None => {
                let mut m = 0;
                for i in start..start + len {
                    if let Some(f) = self.listed_form(i) {
                        m |= self.union_verdict(f, u, paranoia);
                    }
                }
                if self.key_union.len() <= id as usize {
                    self.key_union.resize(id as usize + 1, None);
                }
                if let Some(k) = self.key_union.get_mut(id as usize) {
                    *k = Some(m);
                }
                m
            }
        };
        1u128
            .checked_shl(member)
            .is_none_or(|bit| matched & bit != 0)
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
}
