//! A transaction: one request (and its response) followed through the five
//! phases. The caller feeds it what it has and asks it to run each phase;
//! the answer is whether to interrupt the exchange.

mod cache;
mod collect;
mod eval;
pub(crate) mod prologue;
mod request;
mod vars;

pub(crate) use vars::TxNames;

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;

use crate::rule::{BodyProcessor, Ctl, EngineMode, IdRanges};
use crate::ruleset::RuleSet;
use crate::variables::{Selector, Var};

pub use eval::Match;

/// Name and value, as the variables hold them.
pub type Pair = (Bytes, Bytes);

/// The engine's decision to stop the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervention {
    pub status: u16,
    pub rule_id: u32,
    /// Close the connection without a response (`drop`).
    pub drop: bool,
}

/// Multipart and body-processing flags a rule can test.
#[derive(Debug, Default, Clone)]
pub struct BodyFlags {
    pub error: Option<String>,
    pub processor_error: Option<String>,
    pub multipart: HashMap<Var, u8>,
}

/// What one transaction knows; the phases fill it in order.
#[derive(Debug, Default)]
pub(crate) struct Data {
    pub remote_addr: Option<IpAddr>,
    pub remote_port: u16,
    pub server_addr: Option<IpAddr>,
    pub server_port: u16,
    pub method: Bytes,
    pub uri: Bytes,
    pub protocol: Bytes,
    pub filename: Bytes,
    pub basename: Bytes,
    pub query: Bytes,
    pub request_headers: Vec<Pair>,
    pub cookies: Vec<Pair>,
    pub args_get: Vec<Pair>,
    pub args_post: Vec<Pair>,
    pub request_body: Vec<u8>,
    pub request_body_var: Option<Bytes>,
    pub body_flags: BodyFlags,
    pub files: Vec<Pair>,
    pub file_sizes: Vec<Pair>,
    pub part_headers: Vec<Pair>,
    pub xml_text: Vec<Bytes>,
    pub xml_attrs: Vec<Bytes>,
    pub response_status: Option<u16>,
    pub response_protocol: Bytes,
    pub response_headers: Vec<Pair>,
    pub response_body: Vec<u8>,
    pub response_body_var: Option<Bytes>,
    pub unique_id: Bytes,
}

/// Per-transaction changes made by `ctl` actions.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    pub engine: Option<EngineMode>,
    pub removed_ids: IdRanges,
    pub removed_tags: Vec<String>,
    pub removed_targets_by_id: Vec<(IdRanges, Var, Selector)>,
    pub removed_targets_by_tag: Vec<(String, Var, Selector)>,
    pub body_processor: Option<BodyProcessor>,
    pub force_body_variable: bool,
    pub request_body_access: Option<bool>,
    pub response_body_access: Option<bool>,
}

pub struct Transaction<'r> {
    pub(crate) rules: &'r RuleSet,
    pub(crate) data: Data,
    /// TX and the other writable collections, keys in lower case.
    pub(crate) vars: vars::Vars,
    pub(crate) overrides: Overrides,
    /// MATCHED_VAR as an earlier rule left it. While `matched_var_is_last`
    /// is set, the current rule has matched, and MATCHED_VAR is the last of
    /// `matched_vars` (kept once, not cloned for every hit).
    pub(crate) matched_var: Option<Pair>,
    pub(crate) matched_var_is_last: bool,
    pub(crate) matched_vars: Vec<Pair>,
    pub(crate) matches: Vec<Match>,
    pub(crate) interruption: Option<Intervention>,
    /// `allow` reached: the phases it covers are skipped.
    pub(crate) allowed: Option<crate::rule::AllowScope>,
    pub(crate) highest_severity: u8,
    /// Transformation buffers and the phase's cache. Rules borrow them
    /// while they read the transaction's values; a cell rather than moving
    /// them out and back for every rule.
    pub(crate) work: std::cell::RefCell<Work>,
    pub(crate) hits: Vec<eval::Hit>,
    /// The chain head being evaluated, for `%{rule.*}` macros.
    pub(crate) current: Option<&'r crate::rule::Rule>,
    pub(crate) phase_done: u8,
    /// The cache holds phase 1's forms of the request head, and the head
    /// has not been fed since (see `run_phase`).
    pub(crate) head_cached: bool,
    /// `TX:detection_paranoia_level` as the phase began (`u8::MAX` when
    /// unset or not a level): which of the union's sets to search.
    pub(crate) paranoia: u8,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("uri", &self.data.uri)
            .field("matches", &self.matches.len())
            .field("interruption", &self.interruption)
            .finish()
    }
}

/// What a transaction builds up and can hand to the next one on the same
/// thread: hash tables and arenas that have grown to a request's size.
#[derive(Default)]
struct Spare {
    vars: vars::Vars,
    work: Work,
    hits: Vec<eval::Hit>,
}

#[derive(Debug, Default)]
pub(crate) struct Work {
    pub scratch: crate::transforms::Scratch,
    pub cache: cache::Cache,
}

thread_local! {
    static SPARE: std::cell::RefCell<Option<Spare>> = const { std::cell::RefCell::new(None) };
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        let mut spare = Spare {
            vars: std::mem::take(&mut self.vars),
            work: std::mem::take(self.work.get_mut()),
            hits: std::mem::take(&mut self.hits),
        };
        spare.vars.clear();
        spare.work.cache.reset();
        spare.hits.clear();
        // During thread teardown the slot may be gone: the buffers are
        // then simply dropped.
        let _ = SPARE.try_with(|s| {
            if let Ok(mut slot) = s.try_borrow_mut() {
                *slot = Some(spare);
            }
        });
    }
}

/// A transaction between the request and the response phases, owning its
/// state so that it can wait (in the gateway, across the upstream call)
/// without holding on to the rule set. [`RuleSet::resume`] takes it up
/// again, with the rule set it was started on.
#[derive(Debug)]
pub struct Suspended {
    data: Data,
    vars: vars::Vars,
    overrides: Overrides,
    matches: Vec<Match>,
    interruption: Option<Intervention>,
    allowed: Option<crate::rule::AllowScope>,
    highest_severity: u8,
    phase_done: u8,
}

impl<'r> Transaction<'r> {
    /// Sets the transaction aside after the request phases.
    pub fn suspend(mut self) -> Suspended {
        Suspended {
            data: std::mem::take(&mut self.data),
            vars: std::mem::take(&mut self.vars),
            overrides: std::mem::take(&mut self.overrides),
            matches: std::mem::take(&mut self.matches),
            interruption: self.interruption.take(),
            allowed: self.allowed.take(),
            highest_severity: self.highest_severity,
            phase_done: self.phase_done,
        }
    }
}

impl RuleSet {
    /// Takes a suspended transaction up again; it must have been started
    /// on this rule set.
    pub fn resume(&self, s: Suspended) -> Transaction<'_> {
        let mut tx = self.transaction();
        tx.data = s.data;
        tx.vars = s.vars;
        tx.vars.bind(&self.tx_names);
        tx.overrides = s.overrides;
        tx.matches = s.matches;
        tx.interruption = s.interruption;
        tx.allowed = s.allowed;
        tx.highest_severity = s.highest_severity;
        tx.phase_done = s.phase_done;
        tx
    }

    pub fn transaction(&self) -> Transaction<'_> {
        let spare = SPARE
            .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.take()))
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut vars = spare.vars;
        vars.bind(&self.tx_names);
        Transaction {
            rules: self,
            data: Data::default(),
            vars,
            overrides: Overrides::default(),
            matched_var: None,
            matched_var_is_last: false,
            matched_vars: Vec::new(),
            // The Core Rule Set's silent rules alone match some 90 times
            // per request: room for them up front saves regrowing.
            matches: Vec::with_capacity(128),
            interruption: None,
            allowed: None,
            highest_severity: 255,
            work: std::cell::RefCell::new(spare.work),
            hits: spare.hits,
            current: None,
            phase_done: 0,
            head_cached: false,
            paranoia: u8::MAX,
        }
    }
}

impl Transaction<'_> {
    /// The engine mode in force (the rule set's, unless `ctl` changed it).
    pub fn engine(&self) -> EngineMode {
        self.overrides.engine.unwrap_or(self.rules.settings.engine)
    }

    /// Every rule that matched, in order.
    pub fn matches(&self) -> &[Match] {
        &self.matches
    }

    pub fn interruption(&self) -> Option<&Intervention> {
        self.interruption.as_ref()
    }

    /// A TX variable's value (keys are case-insensitive).
    pub fn tx(&self, name: &str) -> Option<&[u8]> {
        self.vars
            .get(Var::Tx, &name.to_ascii_lowercase())
            .map(|b| b.as_ref())
    }

    pub(crate) fn apply_ctl(&mut self, ctl: &Ctl) {
        let o = &mut self.overrides;
        match ctl {
            Ctl::RuleEngine(m) => o.engine = Some(*m),
            Ctl::RuleRemoveById(r) => o.removed_ids.extend(r.iter().copied()),
            Ctl::RuleRemoveByTag(t) => o.removed_tags.push(t.clone()),
            Ctl::RuleRemoveTargetById(r, v, s) => {
                o.removed_targets_by_id.push((r.clone(), *v, s.clone()))
            }
            Ctl::RuleRemoveTargetByTag(t, v, s) => {
                o.removed_targets_by_tag.push((t.clone(), *v, s.clone()))
            }
            Ctl::RequestBodyProcessor(p) => o.body_processor = Some(*p),
            Ctl::ForceRequestBodyVariable(f) => o.force_body_variable = *f,
            Ctl::RequestBodyAccess(a) => o.request_body_access = Some(*a),
            Ctl::ResponseBodyAccess(a) => o.response_body_access = Some(*a),
            Ctl::Audit => {}
        }
    }
}
