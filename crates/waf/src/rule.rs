//! A compiled rule and its actions.

use std::sync::Arc;

use crate::macros::Macro;
use crate::operators::Operator;
use crate::seclang::RawAction;
use crate::transforms::Transform;
use crate::variables::{Selector, Targets, Var, parse_targets};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruptive {
    Pass,
    /// Whatever the phase's default action says.
    Block,
    Deny,
    Drop,
    Allow(AllowScope),
    Redirect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowScope {
    /// Skip every remaining rule of the transaction.
    Transaction,
    /// Skip the rest of the current phase.
    Phase,
    /// Skip the rest of the request phases.
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    On,
    Off,
    DetectionOnly,
}

impl EngineMode {
    pub fn parse(s: &str) -> Option<EngineMode> {
        match s.to_ascii_lowercase().as_str() {
            "on" => Some(EngineMode::On),
            "off" => Some(EngineMode::Off),
            "detectiononly" => Some(EngineMode::DetectionOnly),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProcessor {
    UrlEncoded,
    Multipart,
    Json,
    Xml,
}

impl BodyProcessor {
    pub fn parse(s: &str) -> Option<BodyProcessor> {
        match s.to_ascii_uppercase().as_str() {
            "URLENCODED" => Some(BodyProcessor::UrlEncoded),
            "MULTIPART" => Some(BodyProcessor::Multipart),
            "JSON" => Some(BodyProcessor::Json),
            "XML" => Some(BodyProcessor::Xml),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BodyProcessor::UrlEncoded => "URLENCODED",
            BodyProcessor::Multipart => "MULTIPART",
            BodyProcessor::Json => "JSON",
            BodyProcessor::Xml => "XML",
        }
    }
}

/// Rule ids as `ctl:ruleRemoveById` and friends name them: ids and ranges.
pub type IdRanges = Vec<(u32, u32)>;

pub fn parse_id_ranges(text: &str) -> Result<IdRanges, String> {
    let mut out = Vec::new();
    for part in text
        .split([' ', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let part = part.trim_matches(['"', '\'']);
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let lo: u32 = lo
            .trim()
            .parse()
            .map_err(|_| format!("bad rule id {part:?}"))?;
        let hi: u32 = hi
            .trim()
            .parse()
            .map_err(|_| format!("bad rule id {part:?}"))?;
        if lo > hi {
            return Err(format!("bad rule id range {part:?}"));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

pub fn in_ranges(ranges: &[(u32, u32)], id: u32) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&id))
}

#[derive(Debug, Clone)]
pub enum Ctl {
    RuleEngine(EngineMode),
    RuleRemoveById(IdRanges),
    RuleRemoveByTag(String),
    RuleRemoveTargetById(IdRanges, Var, Selector),
    RuleRemoveTargetByTag(String, Var, Selector),
    RequestBodyProcessor(BodyProcessor),
    ForceRequestBodyVariable(bool),
    RequestBodyAccess(bool),
    ResponseBodyAccess(bool),
    /// Audit logging is the gateway's business; accepted and ignored.
    Audit,
}

#[derive(Debug, Clone)]
pub enum SetOp {
    Set(Macro),
    Add(Macro),
    Sub(Macro),
    Delete,
}

#[derive(Debug, Clone)]
pub struct SetVar {
    pub collection: Var,
    pub name: Macro,
    pub op: SetOp,
    /// For a TX key named in the rule text, its number in the rule set's
    /// `TxNames` (given when the rule set is built).
    pub slot: Option<u32>,
}

/// Actions that change transaction state when the rule matches, in the
/// order they were written.
#[derive(Debug, Clone)]
pub enum Effect {
    SetVar(SetVar),
    Ctl(Ctl),
    /// `initcol` and `expirevar`: collections persist only within a
    /// transaction here, so these need no work.
    Collection,
}

/// The fields a phase reads for every rule come first, in declaration
/// order (`repr(C)`): a request visits some 300 rules, and each rule's
/// first cache lines are then nearly the only ones it touches unless its
/// operator runs or it matches.
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Rule {
    pub id: u32,
    /// The rule's transformation chain as a node of the rule set's chain
    /// trie (0, the root, is the empty chain; rules are numbered when the
    /// rule set is built), so a transaction transforms each value once per
    /// chain step, whichever rules share it.
    pub chain_id: u32,
    /// The rule's place in its chain's literal prefilter, when its operator
    /// can only match values containing one of a few literals.
    pub slot: Option<u32>,
    /// Rules with a slot whose prefilter verdict depends on the same
    /// things (variables, chain, every step or the last) share a group, so
    /// a phase works out that verdict's bits once for all of them. `None`:
    /// the rule is never ruled out (a count, or a variable made on the spot).
    pub group: Option<u32>,
    /// The rule's place among the rule set's long expressions (see
    /// `union`): one pass of them all over a form tells whether this one
    /// needs to run.
    pub union: Option<u32>,
    pub skip: u32,
    pub phase: u8,
    pub log: bool,
    pub capture: bool,
    pub multi_match: bool,
    pub targets: Targets,
    pub transforms: Vec<Transform>,
    /// With a group: per target, the number of what its variable's bits
    /// depend on (`prefilter::VarKey`), so a phase keeps them in a list.
    pub var_keys: Vec<u32>,
    pub chain: Option<Box<Rule>>,
    pub operator: Operator,
    pub effects: Vec<Effect>,
    pub disruptive: Disruptive,
    pub status: Option<u16>,
    pub severity: Option<u8>,
    /// Set while building: the next rule becomes this one's chain.
    pub wants_chain: bool,
    pub msg: Option<Macro>,
    pub logdata: Option<Macro>,
    pub tags: Vec<String>,
    pub skip_after: Option<String>,
    pub file: Arc<str>,
    pub line: usize,
}

/// What `SecDefaultAction` gives the rules of one phase.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub disruptive: Disruptive,
    pub transforms: Vec<Transform>,
    pub log: bool,
    pub status: Option<u16>,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            disruptive: Disruptive::Pass,
            transforms: Vec::new(),
            log: true,
            status: None,
        }
    }
}

pub fn severity(s: &str) -> Option<u8> {
    let names = [
        "EMERGENCY",
        "ALERT",
        "CRITICAL",
        "ERROR",
        "WARNING",
        "NOTICE",
        "INFO",
        "DEBUG",
    ];
    if let Ok(n) = s.parse::<u8>() {
        return (n < 8).then_some(n);
    }
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .and_then(|p| u8::try_from(p).ok())
}

pub fn phase(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "1" => Some(1),
        "2" | "request" => Some(2),
        "3" => Some(3),
        "4" | "response" => Some(4),
        "5" | "logging" => Some(5),
        _ => None,
    }
}

impl Rule {
    pub fn new(file: Arc<str>, line: usize, targets: Targets, operator: Operator) -> Rule {
        Rule {
            id: 0,
            phase: 2,
            file,
            line,
            targets,
            operator,
            transforms: Vec::new(),
            disruptive: Disruptive::Pass,
            status: None,
            msg: None,
            logdata: None,
            tags: Vec::new(),
            severity: None,
            log: true,
            capture: false,
            multi_match: false,
            effects: Vec::new(),
            skip: 0,
            skip_after: None,
            chain: None,
            wants_chain: false,
            chain_id: 0,
            slot: None,
            group: None,
            var_keys: Vec::new(),
            union: None,
        }
    }

    /// Applies an action list over the phase's defaults: their
    /// transformations come first unless `t:none` resets the list, and
    /// `block` (or no disruptive action) takes their disruptive action.
    pub fn apply_actions(
        &mut self,
        actions: &[RawAction],
        defaults: &dyn Fn(u8) -> Defaults,
    ) -> Result<(), String> {
        let mut disruptive = None;
        let mut log = None;
        let mut transforms = Vec::new();
        for a in actions {
            self.apply_one(a, &mut disruptive, &mut log, &mut transforms)?;
        }
        let d = defaults(self.phase);
        let mut chain = d.transforms.clone();
        for t in transforms {
            match t {
                None => chain.clear(),
                Some(t) => chain.push(t),
            }
        }
        self.transforms = chain;
        self.disruptive = match disruptive {
            Some(Disruptive::Block) | None => d.disruptive,
            Some(other) => other,
        };
        if self.status.is_none() {
            self.status = d.status;
        }
        self.log = log.unwrap_or(d.log);
        Ok(())
    }

    fn apply_one(
        &mut self,
        a: &RawAction,
        disruptive: &mut Option<Disruptive>,
        log: &mut Option<bool>,
        transforms: &mut Vec<Option<Transform>>,
    ) -> Result<(), String> {
        let name = a.name.to_ascii_lowercase();
        let param = a.param.as_deref();
        let need = || param.ok_or_else(|| format!("action {} needs a parameter", a.name));
        match name.as_str() {
            "id" => {
                self.id = need()?
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad rule id {:?}", param))?;
                if self.id == 0 {
                    return Err("rule id 0 is not allowed".into());
                }
            }
            "phase" => self.phase = phase(need()?).ok_or_else(|| format!("bad phase {param:?}"))?,
            "msg" => self.msg = Some(Macro::parse(need()?)?),
            "logdata" => self.logdata = Some(Macro::parse(need()?)?),
            "tag" => self.tags.push(need()?.to_string()),
            "severity" => {
                self.severity =
                    Some(severity(need()?).ok_or_else(|| format!("bad severity {param:?}"))?)
            }
            "ver" | "rev" | "maturity" | "accuracy" => {}
            "chain" => self.wants_chain = true,
            "skip" => self.skip = need()?.parse().map_err(|_| format!("bad skip {param:?}"))?,
            "skipafter" => self.skip_after = Some(need()?.to_string()),
            "pass" => *disruptive = Some(Disruptive::Pass),
            "block" => *disruptive = Some(Disruptive::Block),
            "deny" => *disruptive = Some(Disruptive::Deny),
            "drop" => *disruptive = Some(Disruptive::Drop),
            "redirect" => *disruptive = Some(Disruptive::Redirect),
            "allow" => {
                let scope = match param.map(str::to_ascii_lowercase).as_deref() {
                    None => AllowScope::Transaction,
                    Some("phase") => AllowScope::Phase,
                    Some("request") => AllowScope::Request,
                    Some(other) => return Err(format!("bad allow scope {other:?}")),
                };
                *disruptive = Some(Disruptive::Allow(scope));
            }
            "status" => {
                self.status = Some(
                    need()?
                        .parse()
                        .map_err(|_| format!("bad status {param:?}"))?,
                )
            }
            "t" => {
                let p = need()?;
                if p.eq_ignore_ascii_case("none") {
                    transforms.push(None);
                } else {
                    let t = Transform::from_name(p)
                        .ok_or_else(|| format!("transformation {p} is not supported"))?;
                    transforms.push(Some(t));
                }
            }
            "capture" => self.capture = true,
            "multimatch" => self.multi_match = true,
            "log" => *log = Some(true),
            "nolog" => *log = Some(false),
            "auditlog" | "noauditlog" | "sanitisematched" | "sanitizematched" => {}
            "setvar" => self.effects.push(Effect::SetVar(parse_setvar(need()?)?)),
            "ctl" => self.effects.push(Effect::Ctl(parse_ctl(need()?)?)),
            "initcol" | "expirevar" => self.effects.push(Effect::Collection),
            other => return Err(format!("action {other} is not supported")),
        }
        Ok(())
    }
}

/// `tx.name=value`, `tx.name=+5`, `tx.name=-%{tx.x}`, `!tx.name`, `tx.name`.
pub fn parse_setvar(text: &str) -> Result<SetVar, String> {
    let text = text.trim();
    let (delete, text) = match text.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (target, value) = match text.split_once('=') {
        Some((t, v)) => (t.trim(), Some(v)),
        None => (text, None),
    };
    let (coll, name) = target
        .split_once('.')
        .ok_or_else(|| format!("setvar needs collection.name, got {target:?}"))?;
    let collection = match Var::from_name(coll) {
        Some(v @ (Var::Tx | Var::Ip | Var::Global | Var::Session | Var::User | Var::Resource)) => v,
        _ => return Err(format!("setvar cannot write to {coll:?}")),
    };
    let name = Macro::parse(&name.to_ascii_lowercase())?;
    let op = match (delete, value) {
        (true, _) => SetOp::Delete,
        (false, None) => SetOp::Set(Macro::default()),
        (false, Some(v)) => {
            if let Some(n) = v.strip_prefix('+') {
                SetOp::Add(Macro::parse(n)?)
            } else if let Some(n) = v.strip_prefix('-') {
                SetOp::Sub(Macro::parse(n)?)
            } else {
                SetOp::Set(Macro::parse(v)?)
            }
        }
    };
    Ok(SetVar {
        collection,
        name,
        op,
        slot: None,
    })
}

fn on_off(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("expected On or Off, got {v:?}")),
    }
}

/// One excluded target of `ruleRemoveTarget...` (`ARGS:password`).
fn one_target(text: &str) -> Result<(Var, Selector), String> {
    let t = parse_targets(text)?;
    match (t.include.as_slice(), t.exclude.is_empty()) {
        ([one], true) if !one.count => Ok((one.var, one.selector.clone())),
        _ => Err(format!("expected one variable, got {text:?}")),
    }
}

pub fn parse_ctl(text: &str) -> Result<Ctl, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("ctl needs name=value, got {text:?}"))?;
    let value = value.trim();
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "ruleengine" => Ctl::RuleEngine(
            EngineMode::parse(value).ok_or_else(|| format!("bad rule engine mode {value:?}"))?,
        ),
        "ruleremovebyid" => Ctl::RuleRemoveById(parse_id_ranges(value)?),
        "ruleremovebytag" => Ctl::RuleRemoveByTag(value.to_string()),
        "ruleremovetargetbyid" => {
            let (ids, target) = value
                .split_once(';')
                .ok_or_else(|| format!("ruleRemoveTargetById needs id;target, got {value:?}"))?;
            let (var, sel) = one_target(target)?;
            Ctl::RuleRemoveTargetById(parse_id_ranges(ids)?, var, sel)
        }
        "ruleremovetargetbytag" => {
            let (tag, target) = value
                .split_once(';')
                .ok_or_else(|| format!("ruleRemoveTargetByTag needs tag;target, got {value:?}"))?;
            let (var, sel) = one_target(target)?;
            Ctl::RuleRemoveTargetByTag(tag.to_string(), var, sel)
        }
        "requestbodyprocessor" => Ctl::RequestBodyProcessor(
            BodyProcessor::parse(value).ok_or_else(|| format!("bad body processor {value:?}"))?,
        ),
        "forcerequestbodyvariable" => Ctl::ForceRequestBodyVariable(on_off(value)?),
        "requestbodyaccess" => Ctl::RequestBodyAccess(on_off(value)?),
        "responsebodyaccess" => Ctl::ResponseBodyAccess(on_off(value)?),
        "auditengine" | "auditlogparts" => Ctl::Audit,
        other => return Err(format!("ctl:{other} is not supported")),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::seclang::split_actions;

    fn rule(actions: &str, defaults: Defaults) -> Result<Rule, String> {
        let op = Operator::parse(
            "@unconditionalMatch",
            &crate::ruleset::DataFiles::Dir(".".into()),
        )?;
        let mut r = Rule::new("t.conf".into(), 1, Targets::default(), op);
        r.apply_actions(&split_actions(actions)?, &|_| defaults.clone())?;
        Ok(r)
    }

    #[test]
    fn defaults_fill_in_and_t_none_resets() {
        let d = Defaults {
            disruptive: Disruptive::Deny,
            transforms: vec![Transform::Lowercase],
            log: false,
            status: Some(403),
        };
        let r = rule("id:5,phase:1,block,t:urlDecode", d.clone()).unwrap();
        assert_eq!(r.disruptive, Disruptive::Deny);
        assert_eq!(
            r.transforms,
            vec![Transform::Lowercase, Transform::UrlDecode]
        );
        assert!(!r.log);
        let r = rule("id:5,pass,t:none,t:length,log", d).unwrap();
        assert_eq!(r.disruptive, Disruptive::Pass);
        assert_eq!(r.transforms, vec![Transform::Length]);
        assert!(r.log);
        assert_eq!(r.phase, 2);
    }

    #[test]
    fn setvar_and_ctl_forms() {
        let s = parse_setvar("tx.Score=+%{tx.critical_anomaly_score}").unwrap();
        assert_eq!(s.collection, Var::Tx);
        assert!(matches!(s.op, SetOp::Add(_)));
        assert!(matches!(parse_setvar("!tx.x").unwrap().op, SetOp::Delete));
        assert!(parse_setvar("args.x=1").is_err());
        assert!(matches!(
            parse_ctl("ruleRemoveTargetById=942100;ARGS:password").unwrap(),
            Ctl::RuleRemoveTargetById(ids, Var::Args, Selector::Key(k)) if ids == vec![(942100, 942100)] && k == "password"
        ));
        assert!(
            matches!(parse_ctl("ruleRemoveById=1-999").unwrap(), Ctl::RuleRemoveById(r) if r == vec![(1, 999)])
        );
        assert!(parse_ctl("ruleEngine=Sometimes").is_err());
        assert!(parse_ctl("debugLogLevel=9").is_err());
    }

    #[test]
    fn unknown_actions_and_bad_values_are_refused() {
        assert!(
            rule("id:1,explode", Defaults::default())
                .unwrap_err()
                .contains("not supported")
        );
        assert!(rule("id:1,t:rot13", Defaults::default()).is_err());
        assert!(rule("id:x", Defaults::default()).is_err());
        assert!(rule("id:1,phase:9", Defaults::default()).is_err());
        assert!(rule("id:1,severity:HUGE", Defaults::default()).is_err());
    }
}
