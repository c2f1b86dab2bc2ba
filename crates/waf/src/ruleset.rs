//! Loading: SecLang directives in order become a [`RuleSet`], all or
//! nothing. Every directive the engine does not fully understand is an
//! error naming its file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::LoadError;
use crate::operators::Operator;
use crate::prefilter::{ChainTrie, Chains, Prefilter};
use crate::rule::{Defaults, Disruptive, EngineMode, Rule, in_ranges, parse_id_ranges};
use crate::seclang::{Line, lines, split_actions};
use crate::tx::TxNames;
use crate::tx::prologue::Prologue;
use crate::union::{Members, Union};
use crate::variables::parse_targets;

/// What to do with a body larger than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitAction {
    Reject,
    ProcessPartial,
}

/// Engine settings from `Sec*` directives.
#[derive(Debug, Clone)]
pub struct Settings {
    pub engine: EngineMode,
    pub request_body_access: bool,
    pub request_body_limit: usize,
    pub request_body_no_files_limit: usize,
    pub request_body_limit_action: LimitAction,
    pub response_body_access: bool,
    pub response_body_limit: usize,
    pub response_body_limit_action: LimitAction,
    pub response_mime_types: Vec<String>,
    pub argument_separator: u8,
    pub arguments_limit: usize,
    pub json_depth_limit: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            engine: EngineMode::Off,
            request_body_access: false,
            request_body_limit: 13_107_200,
            request_body_no_files_limit: 1_048_576,
            request_body_limit_action: LimitAction::Reject,
            response_body_access: false,
            response_body_limit: 524_288,
            response_body_limit_action: LimitAction::ProcessPartial,
            response_mime_types: vec!["text/plain".into(), "text/html".into()],
            argument_separator: b'&',
            arguments_limit: 1000,
            json_depth_limit: 512,
        }
    }
}

#[derive(Debug)]
pub enum Entry {
    Rule(
        Box<Rule>,
        /* index to continue at after skipAfter */ Option<usize>,
        /* the rule's prefilter slot and group, when they alone can rule
         * it out (see `Rule::group`): kept here so that a rule ruled out
         * is passed over without being read */
        Option<(u32, u32)>,
    ),
    Marker(Arc<str>),
}

/// A loaded rule set: rules per phase in order, and the engine settings.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) phases: [Vec<Entry>; 5],
    /// Which rules a value may match, by the literals they need.
    pub(crate) prefilter: Option<Prefilter>,
    /// The long expressions as one set (see `union`).
    pub(crate) union: Option<Union>,
    /// The rules' transformation chains (`Rule::chain_id` is a node).
    pub(crate) chains: ChainTrie,
    /// The TX keys the rules name, numbered (see `tx::vars`).
    pub(crate) tx_names: Arc<TxNames>,
    /// Phase 1's opening rules, run once at load (see `tx::prologue`).
    pub(crate) prologue: Option<Prologue>,
    pub settings: Settings,
    rules: usize,
}

/// Where `@pmFromFile` finds its data files.
#[derive(Debug, Clone)]
pub enum DataFiles {
    /// Relative to this directory.
    Dir(PathBuf),
    /// Built into the binary: (file name, contents).
    Embedded(&'static [(&'static str, &'static str)]),
}

impl DataFiles {
    pub fn read(&self, name: &str) -> Result<String, String> {
        match self {
            DataFiles::Dir(d) => {
                let path = d.join(name);
                std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            DataFiles::Embedded(files) => files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| (*text).to_string())
                .ok_or_else(|| format!("no data file {name} in the built-in rule set")),
        }
    }
}

/// One source to load: a name for errors, its text, and where its data
/// files (`@pmFromFile`) are.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
    pub data: DataFiles,
}

impl Source {
    pub fn file(path: &Path) -> Result<Source, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            LoadError::at(&path.display().to_string(), 0, format!("cannot read: {e}"))
        })?;
        Ok(Source {
            name: path.display().to_string(),
            text,
            data: DataFiles::Dir(path.parent().map(Path::to_path_buf).unwrap_or_default()),
        })
    }

    pub fn text(name: &str, text: &str) -> Source {
        Source {
            name: name.to_string(),
            text: text.to_string(),
            data: DataFiles::Dir(PathBuf::from(".")),
        }
    }
}

enum Item {
    Rule(Box<Rule>),
    Marker(Arc<str>),
}

#[derive(Default)]
struct Builder {
    items: Vec<Item>,
    settings: Settings,
    defaults: HashMap<u8, Defaults>,
    ids: HashMap<u32, (Arc<str>, usize)>,
}

impl RuleSet {
    /// Loads the sources in order as one rule set.
    pub fn load(sources: &[Source]) -> Result<RuleSet, LoadError> {
        let mut b = Builder::default();
        for src in sources {
            let file: Arc<str> = src.name.as_str().into();
            for line in lines(&src.name, &src.text)? {
                b.directive(&file, &src.data, &line)
                    .map_err(|m| LoadError::at(&src.name, line.line, m))?;
            }
            if let Some(Item::Rule(r)) = b.items.last()
                && open_chain(r)
            {
                return Err(LoadError::at(
                    &src.name,
                    r.line,
                    "the rule asks for a chain but no rule follows it",
                ));
            }
        }
        Ok(b.finish())
    }

    /// The number of rules (chains count once).
    pub fn len(&self) -> usize {
        self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// Every rule, phase by phase.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.phases.iter().flatten().filter_map(|e| match e {
            Entry::Rule(r, ..) => Some(r.as_ref()),
            Entry::Marker(_) => None,
        })
    }
}

fn open_chain(r: &Rule) -> bool {
    match &r.chain {
        Some(c) => open_chain(c),
        None => r.wants_chain,
    }
}

fn last_open(r: &mut Rule) -> &mut Rule {
    match r.chain {
        Some(ref mut c) => last_open(c),
        None => r,
    }
}

fn arg<'a>(line: &'a Line, i: usize, what: &str) -> Result<&'a str, String> {
    line.words.get(i).map(String::as_str).ok_or_else(|| {
        format!(
            "{} needs {what}",
            line.words.first().map_or("", |w| w.as_str())
        )
    })
}

fn number(line: &Line) -> Result<usize, String> {
    arg(line, 1, "a number")?.parse().map_err(|_| {
        format!(
            "{} needs a number",
            line.words.first().map_or("", |w| w.as_str())
        )
    })
}

fn on_off(line: &Line) -> Result<bool, String> {
    match arg(line, 1, "On or Off")?.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected On or Off, got {other:?}")),
    }
}

fn limit_action(line: &Line) -> Result<LimitAction, String> {
    match arg(line, 1, "Reject or ProcessPartial")?
        .to_ascii_lowercase()
        .as_str()
    {
        "reject" => Ok(LimitAction::Reject),
        "processpartial" => Ok(LimitAction::ProcessPartial),
        other => Err(format!("expected Reject or ProcessPartial, got {other:?}")),
    }
}

impl Builder {
    fn defaults_for(&self) -> impl Fn(u8) -> Defaults + '_ {
        |phase| self.defaults.get(&phase).cloned().unwrap_or_default()
    }

    fn directive(&mut self, file: &Arc<str>, dir: &DataFiles, line: &Line) -> Result<(), String> {
        let name = line.words.first().map(String::as_str).unwrap_or("");
        let max_args = |n: usize| {
            if line.words.len() > n + 1 {
                Err(format!("{name} takes at most {n} arguments"))
            } else {
                Ok(())
            }
        };
        let s = &mut self.settings;
        match name.to_ascii_lowercase().as_str() {
            "secrule" => {
                max_args(3)?;
                let targets = parse_targets(arg(line, 1, "variables")?)?;
                let op = Operator::parse(arg(line, 2, "an operator")?, dir)?;
                let actions = line.words.get(3).map(String::as_str).unwrap_or("");
                self.add_rule(file, line.line, targets, op, actions)?;
            }
            "secaction" => {
                max_args(1)?;
                let op = Operator::parse("@unconditionalMatch", dir)?;
                let actions = arg(line, 1, "actions")?;
                self.add_rule(file, line.line, Default::default(), op, actions)?;
            }
            "secmarker" => {
                max_args(1)?;
                self.no_open_chain()?;
                self.items
                    .push(Item::Marker(arg(line, 1, "a name")?.into()));
            }
            "secdefaultaction" => {
                max_args(1)?;
                let actions = split_actions(arg(line, 1, "actions")?)?;
                let op = Operator::parse("@unconditionalMatch", dir)?;
                let mut r = Rule::new(file.clone(), line.line, Default::default(), op);
                let mut explicit = None;
                r.apply_actions(&actions, &|_| Defaults::default())?;
                for a in &actions {
                    match a.name.to_ascii_lowercase().as_str() {
                        "pass" | "deny" | "drop" | "block" | "allow" | "redirect" => {
                            explicit = Some(r.disruptive)
                        }
                        "phase" | "t" | "log" | "nolog" | "auditlog" | "noauditlog" | "status" => {}
                        other => {
                            return Err(format!(
                                "SecDefaultAction cannot carry the action {other}"
                            ));
                        }
                    }
                }
                if !actions.iter().any(|a| a.name.eq_ignore_ascii_case("phase")) {
                    return Err("SecDefaultAction must name a phase".into());
                }
                let disruptive = explicit
                    .ok_or("SecDefaultAction must name a disruptive action (pass, deny, ...)")?;
                if disruptive == Disruptive::Block {
                    return Err("SecDefaultAction cannot use block".into());
                }
                self.defaults.insert(
                    r.phase,
                    Defaults {
                        disruptive,
                        transforms: r.transforms,
                        log: r.log,
                        status: r.status,
                    },
                );
            }
            "secruleupdatetargetbyid" => {
                max_args(2)?;
                let ids = parse_id_ranges(arg(line, 1, "a rule id")?)?;
                let more = parse_targets(arg(line, 2, "variables")?)?;
                self.update(
                    |r| in_ranges(&ids, r.id),
                    |r| {
                        r.targets.include.extend(more.include.iter().cloned());
                        r.targets.exclude.extend(more.exclude.iter().cloned());
                        Ok(())
                    },
                )?;
            }
            "secruleupdatetargetbytag" => {
                max_args(2)?;
                let tag = arg(line, 1, "a tag")?.to_string();
                let more = parse_targets(arg(line, 2, "variables")?)?;
                self.update_many(
                    |r| r.tags.contains(&tag),
                    |r| {
                        r.targets.include.extend(more.include.iter().cloned());
                        r.targets.exclude.extend(more.exclude.iter().cloned());
                    },
                );
            }
            "secruleupdateactionbyid" => {
                max_args(2)?;
                let ids = parse_id_ranges(arg(line, 1, "a rule id")?)?;
                let actions = split_actions(arg(line, 2, "actions")?)?;
                if actions.iter().any(|a| {
                    matches!(
                        a.name.to_ascii_lowercase().as_str(),
                        "id" | "phase" | "chain"
                    )
                }) {
                    return Err("SecRuleUpdateActionById cannot change id, phase or chain".into());
                }
                let defaults = self.defaults.clone();
                self.update(
                    |r| in_ranges(&ids, r.id),
                    |r| {
                        let keep = r.transforms.clone();
                        let has_t = actions.iter().any(|a| a.name.eq_ignore_ascii_case("t"));
                        let before = r.disruptive;
                        let explicit = actions.iter().any(|a| {
                            matches!(
                                a.name.to_ascii_lowercase().as_str(),
                                "pass" | "deny" | "drop" | "block" | "allow" | "redirect"
                            )
                        });
                        r.apply_actions(&actions, &|p| {
                            defaults.get(&p).cloned().unwrap_or_default()
                        })?;
                        if !has_t {
                            r.transforms = keep;
                        }
                        if !explicit {
                            r.disruptive = before;
                        }
                        Ok(())
                    },
                )?;
            }
            "secruleremovebyid" => {
                let mut ids = Vec::new();
                for w in line.words.iter().skip(1) {
                    ids.extend(parse_id_ranges(w)?);
                }
                self.no_open_chain()?;
                self.items
                    .retain(|i| !matches!(i, Item::Rule(r) if in_ranges(&ids, r.id)));
            }
            "secruleremovebytag" => {
                max_args(1)?;
                let tag = arg(line, 1, "a tag")?;
                self.no_open_chain()?;
                self.items
                    .retain(|i| !matches!(i, Item::Rule(r) if r.tags.iter().any(|t| t == tag)));
            }
            "secruleengine" => {
                max_args(1)?;
                let v = arg(line, 1, "On, Off or DetectionOnly")?;
                s.engine = EngineMode::parse(v).ok_or_else(|| format!("bad engine mode {v:?}"))?;
            }
            "secrequestbodyaccess" => s.request_body_access = on_off(line)?,
            "secresponsebodyaccess" => s.response_body_access = on_off(line)?,
            "secrequestbodylimit" => s.request_body_limit = number(line)?,
            "secrequestbodynofileslimit" => s.request_body_no_files_limit = number(line)?,
            "secrequestbodylimitaction" => s.request_body_limit_action = limit_action(line)?,
            "secresponsebodylimit" => s.response_body_limit = number(line)?,
            "secresponsebodylimitaction" => s.response_body_limit_action = limit_action(line)?,
            "secresponsebodymimetype" => {
                s.response_mime_types
                    .extend(line.words.iter().skip(1).map(|w| w.to_ascii_lowercase()));
            }
            "secresponsebodymimetypesclear" => s.response_mime_types.clear(),
            "secargumentseparator" => {
                let v = arg(line, 1, "one character")?;
                s.argument_separator = match v.as_bytes() {
                    [c] => *c,
                    _ => return Err("SecArgumentSeparator takes one character".into()),
                };
            }
            "secargumentslimit" => s.arguments_limit = number(line)?,
            "secrequestbodyjsondepthlimit" => s.json_depth_limit = number(line)?,
            "seccookieformat" => {
                if arg(line, 1, "0")? != "0" {
                    return Err("only SecCookieFormat 0 is supported".into());
                }
            }
            // Regexes run in linear time, so backtracking limits have
            // nothing to limit; storage, audit and debug logging belong
            // to the gateway, not to the rule set.
            "seccomponentsignature"
            | "secpcrematchlimit"
            | "secpcrematchlimitrecursion"
            | "secrequestbodyinmemorylimit"
            | "sectmpdir"
            | "secdatadir"
            | "secuploaddir"
            | "secuploadkeepfiles"
            | "secuploadfilemode"
            | "sectmpsaveuploadedfiles"
            | "secauditengine"
            | "secauditlog"
            | "secauditlog2"
            | "secauditlogparts"
            | "secauditlogtype"
            | "secauditlogformat"
            | "secauditlogstoragedir"
            | "secauditlogdirmode"
            | "secauditlogfilemode"
            | "secauditlogrelevantstatus"
            | "secdebuglog"
            | "secdebugloglevel"
            | "secstatusengine"
            | "secunicodemapfile"
            | "seccollectiontimeout"
            | "secserversignature"
            | "secwebappid"
            | "secsensorid" => {}
            _ => return Err(format!("directive {name} is not supported")),
        }
        Ok(())
    }

    fn no_open_chain(&self) -> Result<(), String> {
        match self.items.last() {
            Some(Item::Rule(r)) if open_chain(r) => {
                Err("a rule chain must be followed by its next rule".into())
            }
            _ => Ok(()),
        }
    }

    fn add_rule(
        &mut self,
        file: &Arc<str>,
        line: usize,
        targets: crate::variables::Targets,
        op: Operator,
        actions: &str,
    ) -> Result<(), String> {
        let actions = split_actions(actions)?;
        let mut rule = Rule::new(file.clone(), line, targets, op);
        let parent_open = matches!(self.items.last(), Some(Item::Rule(r)) if open_chain(r));
        if parent_open {
            for a in &actions {
                let n = a.name.to_ascii_lowercase();
                if matches!(
                    n.as_str(),
                    "id" | "phase"
                        | "skipafter"
                        | "skip"
                        | "pass"
                        | "deny"
                        | "block"
                        | "drop"
                        | "allow"
                        | "redirect"
                ) {
                    return Err(format!("a chained rule cannot carry the action {n}"));
                }
            }
        }
        rule.apply_actions(&actions, &self.defaults_for())?;
        if parent_open {
            if let Some(Item::Rule(head)) = self.items.last_mut() {
                rule.phase = head.phase;
                rule.id = head.id;
                let tail = last_open(head);
                tail.wants_chain = false;
                tail.chain = Some(Box::new(rule));
            }
            return Ok(());
        }
        if rule.id == 0 {
            return Err("the rule has no id".into());
        }
        if let Some((f, l)) = self.ids.get(&rule.id) {
            return Err(format!("rule id {} is already used at {f}:{l}", rule.id));
        }
        self.ids.insert(rule.id, (file.clone(), line));
        self.items.push(Item::Rule(Box::new(rule)));
        Ok(())
    }

    fn update(
        &mut self,
        which: impl Fn(&Rule) -> bool,
        mut change: impl FnMut(&mut Rule) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut found = false;
        for item in &mut self.items {
            if let Item::Rule(r) = item
                && which(r)
            {
                change(r)?;
                found = true;
            }
        }
        if found {
            Ok(())
        } else {
            Err("no rule defined before this line has that id".into())
        }
    }

    fn update_many(&mut self, which: impl Fn(&Rule) -> bool, mut change: impl FnMut(&mut Rule)) {
        for item in &mut self.items {
            if let Item::Rule(r) = item
                && which(r)
            {
                change(r);
            }
        }
    }

    fn finish(self) -> RuleSet {
        let mut phases: [Vec<Entry>; 5] = Default::default();
        let mut rules = 0;
        let mut chains = Chains::default();
        let mut members = Members::default();
        let mut tx_names = TxNames::default();
        for item in self.items {
            match item {
                Item::Rule(mut r) => {
                    chains.number(&mut r);
                    tx_names.number(&mut r);
                    rules += 1;
                    let p = usize::from(r.phase.clamp(1, 5) - 1);
                    // The same condition under which `filtered_out` asks
                    // the group's bits.
                    let gate = r
                        .slot
                        .zip(r.group)
                        .filter(|_| r.var_keys.len() == r.targets.include.len());
                    if let Some(list) = phases.get_mut(p) {
                        list.push(Entry::Rule(r, None, gate));
                    }
                }
                Item::Marker(m) => {
                    for list in &mut phases {
                        list.push(Entry::Marker(m.clone()));
                    }
                }
            }
        }
        for list in &mut phases {
            let markers: Vec<(usize, Arc<str>)> = list
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match e {
                    Entry::Marker(m) => Some((i, m.clone())),
                    Entry::Rule(..) => None,
                })
                .collect();
            let len = list.len();
            for (i, e) in list.iter_mut().enumerate() {
                if let Entry::Rule(r, to, _) = e
                    && let Some(name) = &r.skip_after
                {
                    *to = Some(
                        markers
                            .iter()
                            .find(|(at, m)| *at > i && **m == **name)
                            .map_or(len, |(at, _)| *at),
                    );
                }
            }
        }
        // Members join once the skips are known: a gate's reach gives
        // each its paranoia floor.
        for list in &mut phases {
            let floors = crate::union::floors(list);
            for (e, floor) in list.iter_mut().zip(floors) {
                if let Entry::Rule(r, ..) = e {
                    members.add(r, floor);
                }
            }
        }
        let (chains, prefilter) = chains.build();
        let mut set = RuleSet {
            phases,
            prefilter,
            union: members.build(),
            chains,
            tx_names: Arc::new(tx_names),
            prologue: None,
            settings: self.settings,
            rules,
        };
        set.prologue = crate::tx::prologue::work_out(&set);
        set
    }
}
