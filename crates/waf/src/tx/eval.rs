//! Running the rules of a phase: targets, transformations, operator, then
//! the actions of a matching rule (or chain).

use std::borrow::Cow;

use bytes::Bytes;

use super::cache::Cache;
use super::{Intervention, Pair, Transaction, Work};
use crate::macros::{Macro, Part};
use crate::operators::{Captures, Context, atoi};
use crate::prefilter::VarKey;
use crate::rule::{AllowScope, Disruptive, Effect, EngineMode, Rule, SetOp, SetVar, in_ranges};
use crate::ruleset::Entry;
use crate::transforms::{Scratch, apply_all};
use crate::variables::{Selector, Target, Var};

/// A rule (or chain) that matched.
#[derive(Debug, Clone)]
pub struct Match {
    pub id: u32,
    pub phase: u8,
    pub msg: String,
    pub logdata: String,
    pub tags: Vec<String>,
    pub severity: Option<u8>,
    /// The last variable the rule matched, as `ARGS:id`.
    pub var_name: String,
    /// The value it matched (after transformations).
    pub value: Vec<u8>,
    /// Whether the rule logs (`nolog` rules match silently).
    pub logged: bool,
    /// Whether the rule's action stops the exchange when the engine blocks.
    pub disruptive: bool,
}

impl Context for Transaction<'_> {
    fn expand(&self, m: &Macro) -> Vec<u8> {
        m.expand(|var, key, out| self.lookup(var, key, out))
    }

    fn remote_addr(&self) -> Option<std::net::IpAddr> {
        self.data.remote_addr
    }

    fn lend<'a>(&'a self, m: &Macro) -> Option<&'a [u8]> {
        // Keys are kept in lower case, as `lookup` finds them.
        match m.parts.as_slice() {
            [Part::Var(var, Some(key))] if super::vars::is_writable(*var) => {
                Some(self.vars.get(*var, key).map_or(&b""[..], |v| &v[..]))
            }
            _ => None,
        }
    }
}

impl<'r> Transaction<'r> {
    /// The first value of a variable, for macros.
    fn lookup(&self, var: Var, key: Option<&str>, out: &mut Vec<u8>) {
        if var == Var::Rule {
            if let Some(rule) = self.current {
                match key.unwrap_or("") {
                    "id" => out.extend_from_slice(rule.id.to_string().as_bytes()),
                    "phase" => out.extend_from_slice(rule.phase.to_string().as_bytes()),
                    "severity" => {
                        if let Some(s) = rule.severity {
                            out.extend_from_slice(s.to_string().as_bytes())
                        }
                    }
                    "msg" => {
                        if let Some(m) = &rule.msg {
                            let text = self.expand(m);
                            out.extend_from_slice(&text);
                        }
                    }
                    _ => {}
                }
            }
            return;
        }
        if !var.is_collection() {
            if let Some(v) = self.scalar(var) {
                out.extend_from_slice(&v);
            }
            return;
        }
        if let Some(k) = key
            && super::vars::is_writable(var)
        {
            if let Some(v) = self.vars.get(var, k) {
                out.extend_from_slice(v);
            }
            return;
        }
        let sel = match key {
            Some(k) => Selector::Key(k.to_ascii_lowercase()),
            None => Selector::All,
        };
        let mut found = false;
        self.each(var, &sel, &mut |k, v| {
            if !found && sel.matches_key(k) {
                out.extend_from_slice(v);
                found = true;
            }
        });
    }

    fn removed(&self, rule: &Rule) -> bool {
        in_ranges(&self.overrides.removed_ids, rule.id)
            || self
                .overrides
                .removed_tags
                .iter()
                .any(|t| rule.tags.iter().any(|rt| rt == t))
    }

    /// Runs the rules of `phase` (1-5). Returns the interruption, if one
    /// happened in this phase.
    pub(crate) fn run_phase(&mut self, phase: u8) -> Option<Intervention> {
        if self.engine() == EngineMode::Off || self.interruption.is_some() {
            return None;
        }
        match self.allowed {
            Some(AllowScope::Transaction) if phase < 5 => return None,
            Some(AllowScope::Request) if phase <= 2 => return None,
            _ => {}
        }
        if phase > 1 && self.allowed == Some(AllowScope::Phase) {
            self.allowed = None;
        }
        // The cache is keyed by where values are. Phase 2 only adds the
        // body's values to what phase 1 saw, so phase 1's forms hold
        // (unless the head was fed again in between, which may have freed
        // values); every other phase starts over.
        let cache = &mut self.work.get_mut().cache;
        if phase == 2 && self.head_cached {
            cache.next_phase();
        } else {
            cache.clear();
        }
        self.head_cached = phase == 1;
        self.paranoia = self
            .vars
            .get(Var::Tx, "detection_paranoia_level")
            .and_then(|v| u8::try_from(atoi(v)).ok())
            .unwrap_or(u8::MAX);
        let rules = self.rules;
        let list = rules.phases.get(usize::from(phase.saturating_sub(1)))?;
        // Phase 1's opening rules that every request runs to the same end
        // are taken as worked out at load, when nothing has changed them
        // (see `prologue`).
        let prologue = rules
            .prologue
            .as_ref()
            .filter(|p| phase == 1 && self.prologue_applies(p));
        let mut i = 0;
        let mut skip = 0u32;
        while let Some(entry) = list.get(i) {
            if let Some(p) = prologue
                && i == p.start
            {
                self.take_prologue(p);
                i = p.resume;
                continue;
            }
            i += 1;
            let Entry::Rule(rule, skip_to, gate) = entry else {
                continue;
            };
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if let Some((slot, group)) = *gate
                && self.ruled_out(slot, group)
            {
                continue;
            }
            if self.removed(rule) {
                continue;
            }
            self.retire_matched_vars();
            self.current = Some(rule);
            let hit = self.eval_rule(rule, rule);
            if !hit {
                continue;
            }
            self.record(rule, phase);
            let blocking = self.engine() == EngineMode::On;
            match rule.disruptive {
                Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect if blocking => {
                    let status = match rule.disruptive {
                        Disruptive::Redirect => rule.status.unwrap_or(302),
                        _ => rule.status.unwrap_or(403),
                    };
                    let iv = Intervention {
                        status,
                        rule_id: rule.id,
                        drop: rule.disruptive == Disruptive::Drop,
                    };
                    self.interruption = Some(iv.clone());
                    return Some(iv);
                }
                Disruptive::Allow(scope) if blocking => {
                    self.allowed = Some(scope);
                    return None;
                }
                _ => {}
            }
            if let Some(to) = skip_to {
                i = *to;
            } else if rule.skip > 0 {
                skip = rule.skip;
            }
        }
        None
    }

    pub(super) fn record(&mut self, rule: &Rule, phase: u8) {
        if let Some(s) = rule.severity {
            self.highest_severity = self.highest_severity.min(s);
        }
        // Silent (`nolog`) rules match some forty times on every request
        // (initialisation, paranoia-level skips): only their id is kept,
        // with no text expanded and no matched variable read.
        let (msg, logdata, tags, (var_name, value)) = if rule.log {
            let text = |m: &Option<crate::macros::Macro>| match m {
                Some(m) => String::from_utf8_lossy(&self.expand(m)).into_owned(),
                None => String::new(),
            };
            let matched = match self.matched_var() {
                Some((n, v)) => (String::from_utf8_lossy(n).into_owned(), v.to_vec()),
                None => Default::default(),
            };
            (
                text(&rule.msg),
                text(&rule.logdata),
                rule.tags.clone(),
                matched,
            )
        } else {
            Default::default()
        };
        self.matches.push(Match {
            id: rule.id,
            phase,
            msg,
            logdata,
            tags,
            severity: rule.severity,
            var_name,
            value,
            logged: rule.log,
            disruptive: matches!(
                rule.disruptive,
                Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect
            ),
        });
    }

    /// MATCHED_VAR: the current rule's last match, or the one an earlier
    /// rule left.
    pub(crate) fn matched_var(&self) -> Option<&Pair> {
        match self.matched_vars.last() {
            Some(p) if self.matched_var_is_last => Some(p),
            _ => self.matched_var.as_ref(),
        }
    }

    /// Before the next rule: MATCHED_VARS starts empty, MATCHED_VAR keeps
    /// the last match.
    pub(super) fn retire_matched_vars(&mut self) {
        if std::mem::take(&mut self.matched_var_is_last)
            && let Some(last) = self.matched_vars.pop()
        {
            self.matched_var = Some(last);
        }
        // Called before every rule; most find the list empty already.
        if !self.matched_vars.is_empty() {
            self.matched_vars.clear();
        }
    }

    /// Whether `rule` and the rest of its chain match. Every value is
    /// tested first (lending values, allocating nothing); then, for each
    /// match in order, the matched variable and captures are set and the
    /// rule's non-disruptive actions run, as the reference engines do.
    pub(super) fn eval_rule(&mut self, rule: &'r Rule, head: &'r Rule) -> bool {
        if rule.targets.include.is_empty() {
            // SecAction, or a rule whose targets were all removed.
            if rule.operator.test(b"", &*self, None) == rule.operator.negated {
                return false;
            }
            self.run_effects(rule);
        } else if let Some(single) = self.single_key(rule) {
            if !self.eval_single_key(rule, single) {
                return false;
            }
        } else {
            if self.filtered_out(rule) {
                return false;
            }
            let mut hits = std::mem::take(&mut self.hits);
            hits.clear();
            {
                let mut work = self.work.borrow_mut();
                let Work { scratch, cache } = &mut *work;
                // The prefilter's verdict per variable (worked out by
                // `filtered_out`): a variable none of whose values holds
                // one of the rule's literals is not enumerated.
                let keyed = rule.var_keys.len() == rule.targets.include.len();
                let filter = rule.slot.zip(self.rules.prefilter.as_ref());
                for (i, t) in rule.targets.include.iter().enumerate() {
                    let id = rule.var_keys.get(i).copied().filter(|_| keyed);
                    if let (Some(id), Some((slot, f))) = (id, filter)
                        && !cache.var_may_match(id, slot, f.words)
                    {
                        continue;
                    }
                    // The variable's forms after the rule's chain are
                    // listed by place: with literals, only values whose
                    // form holds one of them are looked at.
                    if let (Some(id), Some(pf)) = (id, &self.rules.prefilter)
                        && !t.count
                        && t.var.is_collection()
                    {
                        let values = |f: &mut dyn FnMut(&[u8])| self.each_value(t, f);
                        let trie = &self.rules.chains;
                        if let Some((start, len)) =
                            cache.list_forms((id, var_key(rule, t)), trie, pf, scratch, &values)
                        {
                            // A member of the union without literals takes
                            // the union's word for the whole variable when
                            // it reads all of it (a key it does not read
                            // would be asked about for nothing).
                            let union = rule.union.zip(self.rules.union.as_ref());
                            if filter.is_none()
                                && matches!(t.selector, Selector::All)
                                && let Some((member, u)) = union
                                && !cache.key_union_may_match(
                                    (id, start, len),
                                    u,
                                    member,
                                    self.paranoia,
                                )
                            {
                                continue;
                            }
                            let can_exclude = self.can_exclude(rule, t);
                            for p in 0..len {
                                let Some(form) = cache.listed_form(start + p) else {
                                    break;
                                };
                                if filter
                                    .is_some_and(|(slot, f)| !cache.form_may_match(form, f, slot))
                                {
                                    continue;
                                }
                                if let Some(k) = self.key_at((rule, head), t, p, can_exclude) {
                                    test_form(self, rule, (t.var, k), form, cache, &mut hits);
                                }
                            }
                            continue;
                        }
                    }
                    // A count is made on the spot: it does not stay in place.
                    let cacheable = !t.count;
                    self.values(rule, head, t, &mut |var, key, value| {
                        let bufs = (&mut *scratch, &mut *cache);
                        let cached = cacheable && var.stays_in_place();
                        test_value(self, rule, (var, key, value, cached), bufs, &mut hits);
                    });
                }
            }
            if hits.is_empty() {
                self.hits = hits;
                return false;
            }
            for hit in hits.drain(..) {
                self.apply_hit(rule, hit);
            }
            self.hits = hits;
        }
        match &rule.chain {
            Some(next) => self.eval_rule(next, head),
            None => true,
        }
    }

    /// The one value a rule inspects when its only target is one key of
    /// a writable collection (`TX:name`, or its count `&TX:name`), taken
    /// as it stands: no transformation, no exclusion of that collection,
    /// a single step. Some 110 rules a request runs are such checks of
    /// the paranoia level, the anomaly scores or a setting, and this path
    /// spares them the general one's enumeration and buffers.
    fn single_key(&self, rule: &'r Rule) -> Option<(&'r Target, &'r str)> {
        let [t] = rule.targets.include.as_slice() else {
            return None;
        };
        let Selector::Key(key) = &t.selector else {
            return None;
        };
        if !rule.transforms.is_empty() || rule.multi_match || !super::vars::is_writable(t.var) {
            return None;
        }
        let o = &self.overrides;
        let excludable = rule.targets.exclude.iter().any(|(v, _)| *v == t.var)
            || o.removed_targets_by_id.iter().any(|(_, v, _)| *v == t.var)
            || o.removed_targets_by_tag.iter().any(|(_, v, _)| *v == t.var);
        (!excludable).then_some((t, key.as_str()))
    }

    /// What the general path does for such a rule: the value under `key`
    /// (or, for a count, whether there is one) tested, and the rule's
    /// actions run on a match. The value is shared, not copied, and the
    /// name was made when the rule was loaded.
    fn eval_single_key(&mut self, rule: &Rule, (t, key): (&Target, &str)) -> bool {
        let found = match t.slot {
            Some(s) => self.vars.get_slot(s),
            None => self.vars.get(t.var, key),
        };
        let stored = match (found, t.count) {
            (Some(v), false) => v,
            (None, false) => return false,
            (Some(_), true) => &Bytes::from_static(b"1"),
            (None, true) => &Bytes::from_static(b"0"),
        };
        let mut caps = rule.capture.then(Captures::new);
        let matched = match rule.operator.compare_literal(stored) {
            Some(m) => m,
            None => rule.operator.test(stored, &*self, caps.as_mut()),
        };
        if matched == rule.operator.negated {
            return false;
        }
        // Shared only on a match: most such checks fail, and sharing
        // costs two atomic updates of the value's count.
        let value = stored.clone();
        // A count is named after the collection alone, as the general
        // path names it.
        let name = match (&t.key_name, t.count) {
            (Some(name), false) => name.clone(),
            _ => super::collect::value_name(t.var, b""),
        };
        self.apply_hit(rule, Hit { name, value, caps });
        true
    }

    /// Calls `f` with each value of `t`'s variable, whatever its key: what
    /// the cache learns a variable's values from.
    fn each_value(&self, t: &Target, f: &mut dyn FnMut(&[u8])) {
        if t.var.is_collection() {
            self.each(t.var, &t.selector, &mut |_, v| f(v));
        } else if let Some(v) = self.scalar(t.var) {
            f(&v);
        }
    }

    /// Whether the prefilter has ruled out the rules of group `group` in
    /// slot `slot` for this phase: the group's bits are worked out (by its
    /// first rule) and lack the slot. Such a rule cannot match, as
    /// `filtered_out` would find.
    fn ruled_out(&self, slot: u32, group: u32) -> bool {
        let Some(filter) = &self.rules.prefilter else {
            return false;
        };
        let work = self.work.borrow();
        work.cache
            .group_bits(group)
            .is_some_and(|start| !work.cache.is_set(start, filter.words, slot))
    }

    /// Whether the prefilter rules out every value `rule` inspects: none
    /// of its literals occurs in any value of any variable it targets.
    /// Key selectors and exclusions only narrow what a rule sees, so the
    /// whole variable speaks for them.
    fn filtered_out(&self, rule: &Rule) -> bool {
        let (Some(slot), Some(group), Some(filter)) =
            (rule.slot, rule.group, &self.rules.prefilter)
        else {
            return false;
        };
        // Each target has its key; a rule without them is never ruled out.
        if rule.var_keys.len() != rule.targets.include.len() {
            return false;
        }
        let mut work = self.work.borrow_mut();
        let Work { scratch, cache } = &mut *work;
        let start = match cache.group_bits(group) {
            Some(start) => start,
            None => {
                // The union of the variables' bits. Most variables of a
                // clean request have none: they add nothing, and a group
                // with one variable that has some takes its bits as they
                // are; a new set is made only to join two.
                let mut gathered = Gathered::Nothing;
                for (t, &id) in rule.targets.include.iter().zip(&rule.var_keys) {
                    let values = |f: &mut dyn FnMut(&[u8])| self.each_value(t, f);
                    let key = var_key(rule, t);
                    let trie = &self.rules.chains;
                    let from = cache.var_bits((id, key), trie, filter, scratch, &values);
                    if cache.is_empty_set(from) {
                        continue;
                    }
                    gathered = match gathered {
                        Gathered::Nothing => Gathered::Shared(from),
                        Gathered::Shared(one) => {
                            let start = cache.new_bits(filter.words);
                            cache.or_bits(start, one, filter.words);
                            cache.or_bits(start, from, filter.words);
                            Gathered::Own(start)
                        }
                        Gathered::Own(start) => {
                            cache.or_bits(start, from, filter.words);
                            Gathered::Own(start)
                        }
                    };
                }
                let start = match gathered {
                    Gathered::Shared(start) | Gathered::Own(start) => start,
                    Gathered::Nothing => cache.empty_set(filter.words),
                };
                cache.set_group_bits(group, start, filter.groups);
                start
            }
        };
        !cache.is_set(start, filter.words, slot)
    }

    fn apply_hit(&mut self, rule: &Rule, hit: Hit) {
        self.matched_vars.push((hit.name, hit.value));
        self.matched_var_is_last = true;
        if let Some(caps) = hit.caps.filter(|c| !c.is_empty()) {
            // TX:0 to TX:9 are always slots 0 to 9. The groups were made
            // for the hit and are taken over, not copied.
            let mut groups = caps.into_iter();
            for n in 0..10u32 {
                match groups.next() {
                    Some(c) => self.vars.set_slot(n, Bytes::from(c)),
                    None => self.vars.remove_slot(n),
                }
            }
        }
        self.run_effects(rule);
    }

    /// Runs a `setvar`. A TX key named in the rule text has a number
    /// (given at load), so no name is made or hashed for it.
    fn set_var(&mut self, s: &SetVar) {
        enum Key<'a> {
            Slot(u32),
            Name(Cow<'a, str>),
        }
        let key = match s.slot {
            Some(n) => Key::Slot(n),
            // Names are lower-cased when the rule is loaded; only names
            // built from macros need work here.
            None => match s.name.literal().map(std::str::from_utf8) {
                Some(Ok(n)) => Key::Name(n.into()),
                _ => Key::Name(made_name(self.expand(&s.name)).into()),
            },
        };
        let value = match &s.op {
            SetOp::Delete => None,
            SetOp::Set(v) => Some(v.expand_bytes(|var, key, out| self.lookup(var, key, out))),
            SetOp::Add(v) | SetOp::Sub(v) => {
                let delta = match self.lend(v) {
                    Some(lent) => atoi(lent),
                    None => atoi(&self.expand(v)),
                };
                let now = match &key {
                    Key::Slot(n) => self.vars.get_slot(*n),
                    Key::Name(n) => self.vars.get(s.collection, n),
                };
                let now = now.map_or(0, |b| atoi(b));
                let next = if matches!(s.op, SetOp::Add(_)) {
                    now.saturating_add(delta)
                } else {
                    now.saturating_sub(delta)
                };
                Some(crate::value::number(next))
            }
        };
        match (key, value) {
            (Key::Slot(n), Some(v)) => self.vars.set_slot(n, v),
            (Key::Slot(n), None) => self.vars.remove_slot(n),
            (Key::Name(Cow::Owned(n)), Some(v)) => self.vars.set_owned(s.collection, n, v),
            (Key::Name(n), Some(v)) => self.vars.set(s.collection, &n, v),
            (Key::Name(n), None) => self.vars.remove(s.collection, &n),
        }
    }

    fn run_effects(&mut self, rule: &Rule) {
        for e in &rule.effects {
            match e {
                Effect::SetVar(s) => self.set_var(s),
                Effect::Ctl(c) => self.apply_ctl(c),
                Effect::Collection => {}
            }
        }
    }
}

/// A value a rule's operator matched.
#[derive(Debug)]
pub(crate) struct Hit {
    name: Bytes,
    /// After transformations.
    value: Bytes,
    caps: Option<Captures>,
}

/// A rule group's bits as they are gathered (see `filtered_out`).
enum Gathered {
    /// No variable has any bit so far.
    Nothing,
    /// One variable's bits, shared, not copied: they are not written to.
    Shared(usize),
    /// A set of the group's own.
    Own(usize),
}

/// The variable key of `rule`'s target `t`, as the rule set numbered it
/// (`Chains::number`).
fn var_key(rule: &Rule, t: &Target) -> VarKey {
    (t.var, t.takes_attributes(), rule.chain_id, rule.multi_match)
}

/// A key made by a macro, in lower case as keys are kept. Made names are
/// nearly always valid UTF-8; the check then costs one pass, not the
/// lossy conversion's chunking.
fn made_name(mut raw: Vec<u8>) -> String {
    raw.make_ascii_lowercase();
    String::from_utf8(raw).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Tests `v` (the value of `var` under `key`, transformed), recording a
/// hit on a match.
fn test_one(
    tx: &Transaction<'_>,
    rule: &Rule,
    (var, key, v): (Var, &[u8], &[u8]),
    hits: &mut Vec<Hit>,
) {
    let mut caps = rule.capture.then(Captures::new);
    if rule.operator.test(v, tx, caps.as_mut()) != rule.operator.negated {
        hits.push(Hit {
            name: super::collect::value_name(var, key),
            value: Bytes::copy_from_slice(v),
            caps,
        });
    }
}

/// Tests form `f` of the value of `var` under `key` (for a rule with
/// literals, a form the prefilter found some of them in): the union has
/// its say first, for a rule among its members, then the rule's operator.
fn test_form(
    tx: &Transaction<'_>,
    rule: &Rule,
    (var, key): (Var, &[u8]),
    f: usize,
    cache: &mut Cache,
    hits: &mut Vec<Hit>,
) {
    let union = rule.union.zip(tx.rules.union.as_ref());
    if union.is_none_or(|(member, u)| cache.union_may_match(f, u, member, tx.paranoia)) {
        test_one(tx, rule, (var, key, cache.value(f)), hits);
    }
}

/// Transforms one value and tests it (at every step of the chain with
/// `multiMatch`), recording a hit for each match.
/// `cached`: the value stays in place for the phase, so its transformed
/// forms can be kept by address.
fn test_value(
    tx: &Transaction<'_>,
    rule: &Rule,
    (var, key, value, cached): (Var, &[u8], &[u8], bool),
    (scratch, cache): (&mut Scratch, &mut Cache),
    hits: &mut Vec<Hit>,
) {
    let test = |v: &[u8], hits: &mut Vec<Hit>| test_one(tx, rule, (var, key, v), hits);
    // Rules are numbered when their rule set is built; the root (0) is
    // the empty chain.
    let cached = cached && (rule.chain_id != 0 || rule.transforms.is_empty());
    let filter = rule.slot.zip(tx.rules.prefilter.as_ref());
    let union = rule.union.zip(tx.rules.union.as_ref());
    // Whether the rule may match form `f`: its literals occur in it, and
    // the union says its expression matches it.
    let may_match = |cache: &mut Cache, f: usize| {
        filter.is_none_or(|(slot, filter)| cache.may_match(f, filter, slot))
            && union.is_none_or(|(member, u)| cache.union_may_match(f, u, member, tx.paranoia))
    };
    if cached {
        let trie = &tx.rules.chains;
        if rule.multi_match {
            // The value as it comes, then after every transformation that
            // changes it.
            let mut steps = std::mem::take(&mut cache.steps_buf);
            cache.steps(trie, rule.chain_id, value, scratch, &mut steps);
            for &f in &steps {
                if may_match(cache, f) {
                    test(cache.value(f), hits);
                }
            }
            cache.steps_buf = steps;
        } else {
            let f = cache.form(trie, rule.chain_id, value, scratch);
            if may_match(cache, f) {
                test(cache.value(f), hits);
            }
        }
    } else if rule.multi_match {
        let mut current = value.to_vec();
        let mut out = Vec::new();
        test(&current, hits);
        for t in &rule.transforms {
            out.clear();
            if t.apply(&current, &mut out) {
                std::mem::swap(&mut current, &mut out);
                test(&current, hits);
            }
        }
    } else {
        test(apply_all(&rule.transforms, value, scratch), hits);
    }
}
