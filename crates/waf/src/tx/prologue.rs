//! The start of phase 1 that no request changes, worked out once when the
//! rule set is built.
//!
//! A rule set opens with rules that read only TX and write only TX: the
//! Core Rule Set's setup actions and its initialisation (`901xxx`: "if
//! `TX:blocking_paranoia_level` is unset, set it to 1", and some thirty
//! more), which every request runs to the same end. Run at load on a
//! transaction with no request, they leave TX, the list of matches and
//! MATCHED_VAR as every request would; a request then starts from that
//! state and goes on after them.
//!
//! Only rules before which nothing can have differed qualify: the rules
//! ahead of them may read the request (the base configuration picks the
//! body processor from `Content-Type`) but must write no TX and steer
//! nothing (no skip, no capture, no rule removal, no disruptive action);
//! those still run for each request. The state is taken over only when
//! the request could not have changed it: its TX is empty when phase 1
//! starts, and no exclusion set for the transaction touches one of these
//! rules. Otherwise the rules run one by one as ever.

use super::{Pair, Transaction, eval::Match, vars::Vars};
use crate::macros::{Macro, Part};
use crate::operators::Op;
use crate::rule::{Ctl, Disruptive, Effect, Rule, SetOp, in_ranges};
use crate::ruleset::{Entry, RuleSet};
use crate::variables::Var;

#[derive(Debug)]
pub(crate) struct Prologue {
    /// Phase 1's entries before it run as usual.
    pub start: usize,
    /// Where phase 1 goes on after it (past its rules, or where their
    /// `skipAfter` leads).
    pub resume: usize,
    vars: Vars,
    matches: Vec<Match>,
    severity: u8,
    /// MATCHED_VAR and MATCHED_VARS as the last of its rules leaves them,
    /// if one of them matched a value.
    matched: Option<(Option<Pair>, Vec<Pair>, bool)>,
}

/// Whether a macro reads nothing but TX.
fn tx_only(m: &Macro) -> bool {
    m.parts.iter().all(|p| match p {
        Part::Lit(_) => true,
        Part::Var(v, _) => *v == Var::Tx,
    })
}

/// Whether `rule` (and its chain) reads only TX and literal text, and
/// changes only TX: what it does is the same for every request that
/// reaches it with the same TX.
fn reads_and_writes_tx(rule: &Rule) -> bool {
    let targets = rule.targets.include.iter().all(|t| t.var == Var::Tx)
        && rule.targets.exclude.iter().all(|(v, _)| *v == Var::Tx);
    let operator = match &rule.operator.op {
        Op::StrEq(m)
        | Op::Contains(m)
        | Op::ContainsWord(m)
        | Op::BeginsWith(m)
        | Op::EndsWith(m)
        | Op::Within(m)
        | Op::Eq(m)
        | Op::Ge(m)
        | Op::Gt(m)
        | Op::Le(m)
        | Op::Lt(m) => tx_only(m),
        // Falls back on the client's address.
        Op::IpMatch(_) => false,
        _ => true,
    };
    let effects = rule.effects.iter().all(|e| match e {
        Effect::SetVar(s) => {
            s.collection == Var::Tx
                && tx_only(&s.name)
                && match &s.op {
                    SetOp::Set(m) | SetOp::Add(m) | SetOp::Sub(m) => tx_only(m),
                    SetOp::Delete => true,
                }
        }
        Effect::Ctl(_) | Effect::Collection => false,
    });
    // A rule the prefilter may rule out depends on the request's values.
    targets
        && operator
        && effects
        && rule.group.is_none()
        && rule.chain.as_deref().is_none_or(reads_and_writes_tx)
}

/// Whether `rule` (and its chain) leaves TX and the order of the rules
/// alone, whatever it matches: it may read the request and set how the
/// body is read, but writes no TX (no `setvar`, no `capture`), skips
/// nothing, removes no rule and does not stop the exchange.
fn inert(rule: &Rule) -> bool {
    !rule.capture
        && rule.skip == 0
        && rule.skip_after.is_none()
        && matches!(rule.disruptive, Disruptive::Pass | Disruptive::Block)
        && rule.effects.iter().all(|e| match e {
            Effect::Ctl(c) => !matches!(
                c,
                Ctl::RuleRemoveById(_)
                    | Ctl::RuleRemoveByTag(_)
                    | Ctl::RuleRemoveTargetById(..)
                    | Ctl::RuleRemoveTargetByTag(..)
            ),
            Effect::SetVar(_) | Effect::Collection => false,
        })
        && rule.chain.as_deref().is_none_or(inert)
}

/// The prologue of `rules`, if its phase 1 opens with one: its rules run
/// on a transaction with no request.
pub(crate) fn work_out(rules: &RuleSet) -> Option<Prologue> {
    let list = rules.phases.first()?;
    let start = list
        .iter()
        .position(|e| match e {
            Entry::Marker(_) => false,
            Entry::Rule(r, ..) => !inert(r),
        })
        .unwrap_or(list.len());
    let mut tx = rules.transaction();
    let mut i = start;
    let mut touched = false;
    while let Some(entry) = list.get(i) {
        let (rule, skip_to) = match entry {
            Entry::Marker(_) => {
                i += 1;
                continue;
            }
            // (A rule with a prefilter gate has a group, which rules it out.)
            Entry::Rule(r, to, _) if reads_and_writes_tx(r) => (r, to),
            Entry::Rule(..) => break,
        };
        i += 1;
        tx.retire_matched_vars();
        tx.current = Some(rule);
        let hit = tx.eval_rule(rule, rule);
        touched |= !tx.matched_vars.is_empty();
        if !hit {
            continue;
        }
        // A rule that stops the exchange, skips by count or logs (its
        // message may name the request) keeps its place in every request:
        // then there is no prologue at all.
        let steers = !matches!(rule.disruptive, Disruptive::Pass | Disruptive::Block);
        if steers || rule.skip > 0 || rule.log {
            return None;
        }
        tx.record(rule, 1);
        if let Some(to) = skip_to {
            i = *to;
        }
    }
    if i == start {
        return None;
    }
    let matched = touched.then(|| {
        (
            tx.matched_var.clone(),
            tx.matched_vars.clone(),
            tx.matched_var_is_last,
        )
    });
    Some(Prologue {
        start,
        resume: i,
        vars: tx.vars.clone(),
        matches: std::mem::take(&mut tx.matches),
        severity: tx.highest_severity,
        matched,
    })
}

impl Transaction<'_> {
    /// Whether this transaction may take the prologue's state: nothing has
    /// written its TX (or any writable collection), and no exclusion set
    /// for it names one of the prologue's rules.
    pub(super) fn prologue_applies(&self, p: &Prologue) -> bool {
        if !self.vars.is_empty() || !self.vars.same_numbering(&p.vars) {
            return false;
        }
        let o = &self.overrides;
        if o.removed_ids.is_empty()
            && o.removed_tags.is_empty()
            && o.removed_targets_by_id.is_empty()
            && o.removed_targets_by_tag.is_empty()
        {
            return true;
        }
        let rules = self.rules.phases.first().into_iter().flatten();
        let named = |r: &Rule| {
            in_ranges(&o.removed_ids, r.id)
                || o.removed_targets_by_id
                    .iter()
                    .any(|(ids, ..)| in_ranges(ids, r.id))
                || r.tags.iter().any(|t| {
                    o.removed_tags.contains(t)
                        || o.removed_targets_by_tag.iter().any(|(tag, ..)| tag == t)
                })
        };
        !rules
            .skip(p.start)
            .take(p.resume.saturating_sub(p.start))
            .any(|e| matches!(e, Entry::Rule(r, ..) if named(r)))
    }

    /// Takes the prologue's state, as its rules would have left it after
    /// the rules before it (which have run).
    pub(super) fn take_prologue(&mut self, p: &Prologue) {
        // What the first of its rules does on starting.
        self.retire_matched_vars();
        self.vars.restore(&p.vars);
        self.matches.extend(p.matches.iter().cloned());
        self.highest_severity = self.highest_severity.min(p.severity);
        if let Some((var, vars, last)) = &p.matched {
            // Set by a later rule of the prologue than any before it.
            if var.is_some() {
                self.matched_var.clone_from(var);
            }
            self.matched_vars.clone_from(vars);
            self.matched_var_is_last = *last;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{RuleSet, Source, crs};

    /// Method, URI, headers and body.
    type Request<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

    /// The Core Rule Set with `setup`, and again with a first phase 1 rule
    /// that reads the request and writes TX: nothing can be worked out
    /// ahead of that one, so the second set runs every rule in turn.
    fn both(setup: &str) -> (RuleSet, RuleSet) {
        let load = |extra: &str| {
            let mut sources = vec![Source::text(
                "first.conf",
                &format!("{extra}\nSecRuleEngine On"),
            )];
            sources.extend(crs::builtin(&[Source::text("setup.conf", setup)]));
            RuleSet::load(&sources).unwrap()
        };
        let blocker = "SecRule REQUEST_METHOD \"@rx .\" \
                       \"id:1,phase:1,pass,nolog,setvar:tx.first=1\"";
        (load(""), load(blocker))
    }

    /// What a request leaves: the matched rules in order (the first rule
    /// left out), TX (its key left out), and MATCHED_VAR.
    fn outcome(rules: &RuleSet, req: Request<'_>) -> String {
        let (method, uri, headers, body) = req;
        let mut tx = rules.transaction();
        tx.connection(
            "10.0.0.7:51000".parse().unwrap(),
            "10.0.0.1:443".parse().unwrap(),
        );
        tx.request_line(method.as_bytes(), uri.as_bytes(), b"HTTP/1.1");
        for (k, v) in headers {
            tx.request_header(k.as_bytes(), v.as_bytes());
        }
        tx.process_request(body.as_bytes());
        let ids: Vec<u32> = tx
            .matches()
            .iter()
            .map(|m| m.id)
            .filter(|&id| id != 1)
            .collect();
        // Keys made at run time are kept in a hash table, whose order is
        // its own.
        let mut txv: Vec<String> = tx
            .vars
            .iter(Var::Tx)
            .filter(|(k, _)| *k != "first")
            .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
            .collect();
        txv.sort();
        let mv = tx
            .matched_var()
            .map(|(n, v)| format!("{n:?}={v:?}"))
            .unwrap_or_default();
        format!("{ids:?}\n{txv:?}\n{mv}\n{:?}", tx.interruption())
    }

    #[test]
    fn a_request_ends_as_if_every_rule_had_run() {
        let setup = "SecAction \"id:900000,phase:1,pass,nolog,\
                     setvar:tx.blocking_paranoia_level=2\"";
        let (fast, slow) = both(setup);
        let p = fast.prologue.as_ref().unwrap();
        // The base configuration's three body-processor rules run first;
        // the setup actions and the initialisation are the prologue.
        assert_eq!(p.start, 3);
        assert!(p.resume > p.start + 20 && p.matches.len() > 20);
        assert!(slow.prologue.is_none());
        let json = [("Host", "a"), ("Content-Type", "application/json")];
        let requests: [Request<'_>; 4] = [
            ("GET", "/", &[("Host", "a")], ""),
            (
                "GET",
                "/x?id=1%27%20OR%20%271%27%3D%271",
                &[("Host", "a")],
                "",
            ),
            ("POST", "/o", &json, "{\"a\":\"<script>alert(1)</script>\"}"),
            (
                "POST",
                "/o",
                &[("Host", "a"), ("Content-Type", "text/xml")],
                "<a>b</a>",
            ),
        ];
        for r in requests {
            let (a, b) = (outcome(&fast, r), outcome(&slow, r));
            assert_eq!(a, b, "{r:?}");
            assert!(a.contains("blocking_paranoia_level=2"), "{a}");
        }
    }

    #[test]
    fn exclusions_of_its_rules_and_earlier_writes_make_each_rule_run() {
        let (fast, _) = both("");
        let p = fast.prologue.as_ref().unwrap();
        let mut tx = fast.transaction();
        assert!(tx.prologue_applies(p));
        // An exclusion of a rule after it changes nothing.
        tx.overrides.removed_ids = crate::rule::parse_id_ranges("942100").unwrap();
        assert!(tx.prologue_applies(p));
        tx.overrides.removed_ids = crate::rule::parse_id_ranges("901100").unwrap();
        assert!(!tx.prologue_applies(p));
        tx.overrides.removed_ids = Default::default();
        tx.overrides.removed_tags = vec!["OWASP_CRS".into()];
        assert!(!tx.prologue_applies(p));
        tx.overrides.removed_tags.clear();
        tx.vars.set(Var::Tx, "blocking_paranoia_level", "3".into());
        assert!(!tx.prologue_applies(p));
    }

    #[test]
    fn rules_that_steer_or_read_the_request_are_not_taken_ahead() {
        let parse = |text: &str| {
            let rules = RuleSet::load(&[Source::text("t.conf", text)]).unwrap();
            rules.prologue.map(|p| (p.start, p.resume))
        };
        // A rule that sets TX from the request ends it; one that only
        // picks the body processor runs before it.
        let text = "SecRule REQUEST_HEADERS:Content-Type \"@rx json\" \
                    \"id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON\"\n\
                    SecAction \"id:2,phase:1,pass,nolog,setvar:tx.a=1\"\n\
                    SecRule &TX:b \"@eq 0\" \"id:3,phase:1,pass,nolog,setvar:tx.b=%{tx.a}\"\n\
                    SecRule REQUEST_URI \"@rx x\" \"id:4,phase:1,pass,nolog,setvar:tx.c=1\"\n\
                    SecAction \"id:5,phase:1,pass,nolog,setvar:tx.d=1\"";
        assert_eq!(parse(text), Some((1, 3)));
        // A rule that removes rules cannot run ahead of it.
        let text = "SecAction \"id:1,phase:1,pass,nolog,ctl:ruleRemoveById=2\"\n\
                    SecAction \"id:2,phase:1,pass,nolog,setvar:tx.a=1\"";
        assert_eq!(parse(text), None);
        // Nor can one that denies, or logs, when it matches.
        let text = "SecAction \"id:1,phase:1,deny,nolog\"";
        assert_eq!(parse(text), None);
        let text = "SecAction \"id:1,phase:1,pass,log,msg:'hi'\"";
        assert_eq!(parse(text), None);
        // A denying rule that cannot match is no obstacle.
        let text = "SecRule &TX:a \"@eq 1\" \"id:1,phase:1,deny,log\"\n\
                    SecAction \"id:2,phase:1,pass,nolog,setvar:tx.a=1\"";
        assert_eq!(parse(text), Some((0, 2)));
    }
}
