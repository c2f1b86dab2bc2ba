//! A route's WAF policy: checked, then compiled into a rule set (the
//! Core Rule Set with the route's settings and exclusions) at config time,
//! so a rule the engine cannot take is a config error, not a request error.

use std::sync::Arc;

use portcullis_waf::{RuleSet, Source, crs};

use super::Cx;
use crate::file::{WafBodyLimitActionFile, WafFile, WafModeFile};
use crate::runtime::WafPolicy;

/// A tag or target goes inside a quoted SecLang argument.
fn quotable(s: &str) -> bool {
    !s.is_empty() && !s.contains(['"', '\n', '\r', '\\'])
}

/// Response inspection: bodies of these types, up to 512KiB each, the
/// rest let through uninspected.
const RESPONSES: &str = "SecResponseBodyAccess On\n\
    SecResponseBodyMimeTypesClear\n\
    SecResponseBodyMimeType text/plain text/html text/xml application/xml application/json\n\
    SecResponseBodyLimit 524288\n\
    SecResponseBodyLimitAction ProcessPartial\n";

pub(super) fn policy(f: &WafFile, at: &str, cx: &mut Cx<'_>) -> Option<WafPolicy> {
    let mut ok = true;
    if !(1..=4).contains(&f.paranoia) {
        cx.d.error(
            &format!("{at}/paranoia"),
            "the paranoia level is 1, 2, 3 or 4",
        );
        ok = false;
    }
    if f.inbound_threshold == 0 {
        cx.d.error(
            &format!("{at}/inbound_threshold"),
            "the threshold must be at least 1",
        );
        ok = false;
    }
    if f.body_limit.0 == 0 {
        cx.d.error(
            &format!("{at}/body_limit"),
            "the body limit must be more than 0",
        );
        ok = false;
    }
    let mut exclusions = String::new();
    for (i, e) in f.exclusions.iter().enumerate() {
        let eat = format!("{at}/exclusions/{i}");
        if let Some(t) = &e.target {
            let valid = quotable(t)
                && portcullis_waf::variables::parse_targets(t).is_ok_and(|p| {
                    p.include.len() == 1
                        && p.exclude.is_empty()
                        && !p.include.iter().any(|x| x.count)
                });
            if !valid {
                cx.d.error_hint(
                    &format!("{eat}/target"),
                    format!("{t:?} is not one variable the WAF knows"),
                    "e.g. ARGS:password, REQUEST_HEADERS:User-Agent, REQUEST_COOKIES:/^_ga/",
                );
                ok = false;
                continue;
            }
        }
        if let Some(tag) = &e.tag
            && (!quotable(tag) || tag.contains(char::is_whitespace))
        {
            cx.d.error(&format!("{eat}/tag"), format!("{tag:?} is not a tag"));
            ok = false;
            continue;
        }
        let line = match (e.rule, &e.tag, &e.target) {
            (Some(id), None, None) => format!("SecRuleRemoveById {id}\n"),
            (None, Some(tag), None) => format!("SecRuleRemoveByTag \"{tag}\"\n"),
            (Some(id), None, Some(t)) => format!("SecRuleUpdateTargetById {id} \"!{t}\"\n"),
            (None, Some(tag), Some(t)) => format!("SecRuleUpdateTargetByTag \"{tag}\" \"!{t}\"\n"),
            _ => {
                cx.d.error_hint(
                    &eat,
                    "an exclusion names a rule or a tag (one of them), and optionally a target",
                    "e.g. {rule: 942100} or {tag: attack-sqli, target: ARGS:query}",
                );
                ok = false;
                continue;
            }
        };
        exclusions.push_str(&line);
    }
    if !ok {
        return None;
    }
    let block = f.mode == WafModeFile::Block;
    let reject_oversized = f.body_limit_action == WafBodyLimitActionFile::Reject;
    let setup = format!(
        "SecRuleEngine {engine}\n\
         SecRequestBodyLimit {limit}\n\
         SecRequestBodyNoFilesLimit {limit}\n\
         SecRequestBodyLimitAction {action}\n\
         SecAction \"id:900000,phase:1,pass,nolog,\
         setvar:tx.blocking_paranoia_level={pl},\
         setvar:tx.inbound_anomaly_score_threshold={th}\"\n\
         {responses}",
        engine = if block { "On" } else { "DetectionOnly" },
        limit = f.body_limit.0,
        action = if reject_oversized {
            "Reject"
        } else {
            "ProcessPartial"
        },
        pl = f.paranoia,
        th = f.inbound_threshold,
        responses = if f.responses { RESPONSES } else { "" },
    );
    let key = format!("{setup}\0{exclusions}");
    let rules = match cx.waf_rules.get(&key) {
        Some(r) => r.clone(),
        None => {
            // The rule set built into the binary: nothing to find on disk.
            let mut sources = crs::builtin(&[Source::text("waf-setup.conf", &setup)]);
            sources.push(Source::text("waf-exclusions.conf", &exclusions));
            let built = RuleSet::load(&sources);
            match built {
                Ok(r) => {
                    let r = Arc::new(r);
                    cx.waf_rules.insert(key, r.clone());
                    r
                }
                Err(e) => {
                    // An exclusion naming a rule that does not exist lands
                    // here, with the generated line.
                    cx.d.error(at, format!("the WAF rule set cannot be built: {e}"));
                    return None;
                }
            }
        }
    };
    Some(WafPolicy {
        block,
        paranoia: f.paranoia,
        inbound_threshold: f.inbound_threshold,
        body_limit: f.body_limit.0,
        reject_oversized,
        exclusions,
        responses: f.responses,
        rules,
    })
}
