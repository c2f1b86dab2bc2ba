//! The writable collections: TX, and IP, GLOBAL, SESSION, USER and
//! RESOURCE (kept for the transaction only). Keys are stored in lower
//! case, so lookups with a lower-case key need no allocation.
//!
//! A request runs some 110 rules that read one TX key and some 50
//! `setvar`s that write one, nearly all named in the rule text. Those
//! names are numbered when the rule set is loaded ([`TxNames`]) and their
//! values kept in slots: a rule that carries its key's number reads and
//! writes without hashing the name, and no name is allocated per request.
//! Names made at run time (from macros) go to a table as before.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use foldhash::fast::RandomState;

use crate::rule::{Effect, Rule};
use crate::variables::{Selector, Var};

type Map = HashMap<Box<str>, Bytes, RandomState>;

/// The TX keys a rule set names, numbered. The capture keys `0` to `9`
/// are always slots 0 to 9.
#[derive(Debug)]
pub struct TxNames {
    index: HashMap<Box<str>, u32, RandomState>,
    names: Vec<Box<str>>,
}

impl Default for TxNames {
    fn default() -> Self {
        let mut names = TxNames {
            index: HashMap::default(),
            names: Vec::new(),
        };
        for n in 0..10u8 {
            names.intern(&n.to_string());
        }
        names
    }
}

impl TxNames {
    /// The number of `name` (lower case), given it if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.index.get(name) {
            return s;
        }
        let s = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.index.insert(name.into(), s);
        self.names.push(name.into());
        s
    }

    /// Numbers the TX keys `rule` (and its chain) names in its text: a
    /// target of one key, and a `setvar` of a name without macros.
    pub fn number(&mut self, rule: &mut Rule) {
        for t in &mut rule.targets.include {
            if let (Var::Tx, Selector::Key(k)) = (t.var, &t.selector) {
                t.slot = Some(self.intern(k));
            }
        }
        for e in &mut rule.effects {
            if let Effect::SetVar(s) = e
                && s.collection == Var::Tx
                && let Some(Ok(name)) = s.name.literal().map(std::str::from_utf8)
            {
                s.slot = Some(self.intern(name));
            }
        }
        if let Some(c) = rule.chain.as_deref_mut() {
            self.number(c);
        }
    }

    fn slot(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    fn name(&self, slot: u32) -> &str {
        self.names.get(slot as usize).map_or("", |n| n)
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

#[derive(Debug, Default, Clone)]
struct Slot {
    value: Option<Bytes>,
    /// Whether the slot is in `Vars::live`.
    listed: bool,
}

#[derive(Debug, Clone)]
pub struct Vars {
    maps: [Map; 6],
    /// The numbering `slots` follows: the rule set's.
    names: Arc<TxNames>,
    slots: Vec<Slot>,
    /// The slots written since the last `clear`, in the order they were
    /// first written: what TX is enumerated in, and what `clear` visits.
    live: Vec<u32>,
}

impl Default for Vars {
    /// Vars that follow a numbering of their own until bound to a rule
    /// set's (see `bind`). That numbering is made once and shared: a
    /// transaction sets its vars aside for the next one as it ends
    /// (`mem::take`), which would otherwise number ten names, with some
    /// thirty allocations, on every request.
    fn default() -> Self {
        static UNBOUND: OnceLock<Arc<TxNames>> = OnceLock::new();
        Vars {
            maps: Default::default(),
            names: UNBOUND.get_or_init(Arc::default).clone(),
            slots: Vec::new(),
            live: Vec::new(),
        }
    }
}

fn slot(var: Var) -> Option<usize> {
    Some(match var {
        Var::Tx => 0,
        Var::Ip => 1,
        Var::Global => 2,
        Var::Session => 3,
        Var::User => 4,
        Var::Resource => 5,
        _ => return None,
    })
}

pub fn is_writable(var: Var) -> bool {
    slot(var).is_some()
}

/// `key` in lower case, allocating only when it is not.
fn lower(key: &str) -> std::borrow::Cow<'_, str> {
    if key.bytes().any(|b| b.is_ascii_uppercase()) {
        key.to_ascii_lowercase().into()
    } else {
        key.into()
    }
}

impl Vars {
    /// Follows the numbering of `names` (a transaction's rule set's).
    /// Values already held under another numbering are carried over by
    /// name.
    pub fn bind(&mut self, names: &Arc<TxNames>) {
        if Arc::ptr_eq(&self.names, names) && self.slots.len() == names.len() {
            return;
        }
        let held: Vec<(Box<str>, Bytes)> = self
            .live
            .iter()
            .filter_map(|&s| {
                let v = self.slots.get(s as usize)?.value.clone()?;
                Some((self.names.name(s).into(), v))
            })
            .collect();
        self.live.clear();
        self.slots.clear();
        self.slots.resize_with(names.len(), Slot::default);
        self.names = names.clone();
        // Names the new numbering has move from the table to slots.
        let table: Vec<(Box<str>, Bytes)> = self.maps[0].drain().collect();
        for (k, v) in held.into_iter().chain(table) {
            self.set(Var::Tx, &k, v);
        }
    }

    /// Whether no collection holds anything.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.maps.iter().all(|m| m.is_empty())
    }

    /// Whether both follow the same numbering of TX keys.
    pub fn same_numbering(&self, other: &Vars) -> bool {
        Arc::ptr_eq(&self.names, &other.names) && self.slots.len() == other.slots.len()
    }

    /// Takes what `from` holds, in its order, into these empty vars of the
    /// same numbering (see `same_numbering`): as if its writes were made
    /// here. The values are shared, not copied.
    pub fn restore(&mut self, from: &Vars) {
        for &s in &from.live {
            let value = from.slots.get(s as usize).and_then(|v| v.value.clone());
            if let Some(slot) = self.slots.get_mut(s as usize) {
                slot.value = value;
                if !std::mem::replace(&mut slot.listed, true) {
                    self.live.push(s);
                }
            }
        }
        for (to, from) in self.maps.iter_mut().zip(&from.maps) {
            to.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    fn map(&self, var: Var) -> Option<&Map> {
        self.maps.get(slot(var)?)
    }

    fn map_mut(&mut self, var: Var) -> Option<&mut Map> {
        self.maps.get_mut(slot(var)?)
    }

    /// Empties every collection, keeping the tables' room.
    pub fn clear(&mut self) {
        for m in &mut self.maps {
            m.clear();
        }
        for s in self.live.drain(..) {
            if let Some(slot) = self.slots.get_mut(s as usize) {
                *slot = Slot::default();
            }
        }
    }

    /// The slot of TX key `key` (lower case), if the numbering has one
    /// and it is held here: vars not bound yet (see `Default`) keep every
    /// key in the table, and `bind` moves them to their slots.
    fn bound_slot(&self, key: &str) -> Option<u32> {
        // The capture keys `0` to `9` (`%{tx.0}` in many a macro) are
        // always slots 0 to 9: no hashing.
        let slot = match key.as_bytes() {
            &[d @ b'0'..=b'9'] => Some(u32::from(d - b'0')),
            _ => self.names.slot(key),
        };
        slot.filter(|&s| (s as usize) < self.slots.len())
    }

    /// `key` must already be in lower case.
    pub fn get(&self, var: Var, key: &str) -> Option<&Bytes> {
        if var == Var::Tx
            && let Some(s) = self.bound_slot(key)
        {
            return self.get_slot(s);
        }
        self.map(var)?.get(key)
    }

    /// The value of TX key number `s` of the bound numbering.
    pub fn get_slot(&self, s: u32) -> Option<&Bytes> {
        self.slots.get(s as usize)?.value.as_ref()
    }

    pub fn set(&mut self, var: Var, key: &str, value: Bytes) {
        let key = lower(key);
        if var == Var::Tx
            && let Some(s) = self.bound_slot(&key)
        {
            return self.set_slot(s, value);
        }
        if let Some(m) = self.map_mut(var) {
            match m.get_mut(&*key) {
                Some(slot) => *slot = value,
                None => {
                    m.insert(key.into_owned().into_boxed_str(), value);
                }
            }
        }
    }

    /// `set` for a key made at run time, already in lower case: the key
    /// is kept as it is, with one lookup in the table.
    pub fn set_owned(&mut self, var: Var, key: String, value: Bytes) {
        if var == Var::Tx
            && let Some(s) = self.bound_slot(&key)
        {
            return self.set_slot(s, value);
        }
        if let Some(m) = self.map_mut(var) {
            m.insert(key.into_boxed_str(), value);
        }
    }

    pub fn set_slot(&mut self, s: u32, value: Bytes) {
        if let Some(slot) = self.slots.get_mut(s as usize) {
            slot.value = Some(value);
            if !std::mem::replace(&mut slot.listed, true) {
                self.live.push(s);
            }
        }
    }

    pub fn remove(&mut self, var: Var, key: &str) {
        let key = lower(key);
        if var == Var::Tx
            && let Some(s) = self.bound_slot(&key)
        {
            return self.remove_slot(s);
        }
        if let Some(m) = self.map_mut(var) {
            m.remove(&*key);
        }
    }

    pub fn remove_slot(&mut self, s: u32) {
        if let Some(slot) = self.slots.get_mut(s as usize) {
            slot.value = None;
        }
    }

    pub fn iter(&self, var: Var) -> impl Iterator<Item = (&str, &Bytes)> {
        let slots = (var == Var::Tx).then_some(&self.live).into_iter().flatten();
        let slots = slots.filter_map(|&s| Some((self.names.name(s), self.get_slot(s)?)));
        let table = self
            .map(var)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (&**k, v)));
        slots.chain(table)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Setting vars aside (`mem::take`) numbers nothing anew, and vars
    /// bound later to a rule set's numbering keep what they held.
    #[test]
    fn unbound_vars_share_one_numbering_until_bound() {
        let (a, mut b) = (Vars::default(), Vars::default());
        assert!(Arc::ptr_eq(&a.names, &b.names));
        b.set(Var::Tx, "Score", Bytes::from_static(b"5"));
        b.set(Var::Tx, "1", Bytes::from_static(b"one"));
        let mut names = TxNames::default();
        let score = names.intern("score");
        let names = Arc::new(names);
        b.bind(&names);
        assert!(Arc::ptr_eq(&b.names, &names));
        assert_eq!(b.names.name(score), "score");
        assert_eq!(b.get(Var::Tx, "score").unwrap().as_ref(), b"5");
        assert_eq!(b.get(Var::Tx, "1").unwrap().as_ref(), b"one");
        // The shared numbering is untouched.
        assert!(Arc::ptr_eq(&a.names, &Vars::default().names));
        assert_eq!(a.names.len(), 10);
    }
}
