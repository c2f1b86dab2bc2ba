#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What a transaction sees is its own request: values transformed and
//! scanned once per phase are found again under the right chain, counts
//! are not mistaken for one another, and nothing carries over to the next
//! transaction on the same thread (which reuses the last one's tables).

use portcullis_waf::{RuleSet, Source};

fn rules(text: &str) -> RuleSet {
    let base = "SecRuleEngine On\nSecRequestBodyAccess On\n";
    RuleSet::load(&[Source::text("t.conf", &format!("{base}{text}"))]).unwrap()
}

/// The ids of the rules that matched a GET of `uri` with `headers`.
fn matched(rules: &RuleSet, uri: &str, headers: &[(&str, &str)]) -> Vec<u32> {
    let mut tx = rules.transaction();
    tx.request_line(b"GET", uri.as_bytes(), b"HTTP/1.1");
    for (k, v) in headers {
        tx.request_header(k.as_bytes(), v.as_bytes());
    }
    tx.process_request(b"");
    tx.matches().iter().map(|m| m.id).collect()
}

#[test]
fn literals_are_looked_for_after_each_chain() {
    let r = rules(
        r#"
SecRule ARGS "@rx select" "id:1,phase:2,pass,t:none,t:urlDecode"
SecRule ARGS "@rx select" "id:2,phase:2,pass,t:none,t:lowercase"
SecRule ARGS "@rx select" "id:3,phase:2,pass,t:none"
SecRule ARGS "@pm union" "id:4,phase:2,pass,t:none,t:urlDecode,t:lowercase"
"#,
    );
    // Only decoding reveals the word (arguments arrive decoded once, so
    // this one is encoded twice): the chain's own scan must find it.
    assert_eq!(matched(&r, "/?q=%2573elect", &[]), vec![1]);
    // Letter case differs: the scan ignores case, the expression does not.
    assert_eq!(matched(&r, "/?q=SELECT", &[]), vec![2]);
    assert_eq!(matched(&r, "/?q=select", &[]), vec![1, 2, 3]);
    assert_eq!(matched(&r, "/?q=%2555NION", &[]), vec![4]);
    assert_eq!(matched(&r, "/?q=ordinary+words", &[]), Vec::<u32>::new());
}

/// A form that differs from another only in letter case takes that
/// form's scan (the scan ignores case): the one it was made from
/// (`t:removeWhitespace,t:lowercase`), or the same step's result on the
/// original when it was made from the lower-cased original
/// (`t:lowercase,t:removeWhitespace` after `t:removeWhitespace`). The
/// scan it borrows must be one that holds its literals, whichever rule
/// made the forms first.
#[test]
fn a_form_differing_only_in_case_is_scanned_as_its_twin() {
    let chains = [
        "t:none,t:removeWhitespace",
        "t:none,t:removeWhitespace,t:lowercase",
        "t:none,t:lowercase,t:removeWhitespace",
    ];
    // Each order of the three rules: whichever comes first makes the
    // forms the others may borrow a scan from.
    for order in [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let text: String = order
            .iter()
            .map(|&i| {
                let (id, re) = (i + 1, ["UNIONSELECT", "unionselect", "unionselect"][i]);
                format!(
                    "SecRule ARGS \"@rx {re}\" \"id:{id},phase:2,pass,{}\"\n",
                    chains[i]
                )
            })
            .collect();
        let r = rules(&text);
        let mut ids = matched(&r, "/?q=UNION+SELECT", &[]);
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2, 3], "rules in order {order:?}");
        // Without the words, no form holds the literals.
        assert_eq!(matched(&r, "/?q=UNION+ALL", &[]), Vec::<u32>::new());
    }
}

/// Chains that begin alike share their first steps; each rule must still
/// see its own chain's result, and a step that changes nothing must not
/// hide a later one that does.
#[test]
fn chains_sharing_their_first_steps_each_see_their_own_result() {
    let r = rules(
        r#"
SecRule ARGS "@streq %41bc" "id:1,phase:2,pass,t:none,t:lowercase"
SecRule ARGS "@streq Abc" "id:2,phase:2,pass,t:none,t:lowercase,t:urlDecode"
SecRule ARGS "@streq ABC" "id:3,phase:2,pass,t:none,t:urlDecode"
SecRule ARGS "@streq abc" "id:4,phase:2,pass,t:none,t:removeNulls,t:urlDecode,t:lowercase"
SecRule ARGS "@streq %41BC" "id:5,phase:2,pass,t:none,t:removeNulls"
"#,
    );
    // The argument arrives decoded once: `%2541BC` is `%41BC`.
    assert_eq!(matched(&r, "/?q=%2541BC", &[]), vec![1, 2, 3, 4, 5]);
    assert_eq!(matched(&r, "/?q=xyz", &[]), Vec::<u32>::new());
}

/// `multiMatch` tests the value at every step of its chain: a literal that
/// only an intermediate step shows must still let the rule run, while the
/// same rule without `multiMatch` sees only the end of the chain.
#[test]
fn multi_match_is_prefiltered_at_every_step() {
    let r = rules(
        r#"
SecRule ARGS "@rx <script" "id:1,phase:2,pass,t:none,t:urlDecode,t:base64Encode,multiMatch"
SecRule ARGS "@rx <script" "id:2,phase:2,pass,t:none,t:urlDecode,t:base64Encode"
SecRule ARGS "@rx <script" "id:3,phase:2,pass,t:none,t:urlDecode,multiMatch"
"#,
    );
    // `%253Cscript` arrives as `%3Cscript`; only the decoding step shows
    // `<script`, which base64Encode then hides again.
    assert_eq!(matched(&r, "/?q=%253Cscript", &[]), vec![1, 3]);
    // The value as it comes is a step too.
    assert_eq!(matched(&r, "/?q=%3Cscript", &[]), vec![1, 3]);
    assert_eq!(matched(&r, "/?q=script", &[]), Vec::<u32>::new());
}

/// When no value sets off a step of a `multiMatch` chain, each value has
/// one form, taken from the variable's list: the rule must still find
/// its value among the others, under its own name, as it does when some
/// value has several forms.
#[test]
fn multi_match_finds_its_value_whether_or_not_the_chain_changes_any() {
    let r = rules(
        r#"
SecRule ARGS "@rx select" "id:1,phase:2,pass,log,t:none,t:urlDecode,t:lowercase,multiMatch"
SecRule ARGS_NAMES|ARGS "@detectSQLi" "id:2,phase:2,pass,log,t:none,t:urlDecode,multiMatch"
"#,
    );
    let hits = |uri: &str| {
        let mut tx = r.transaction();
        tx.request_line(b"GET", uri.as_bytes(), b"HTTP/1.1");
        tx.process_request(b"");
        tx.matches()
            .iter()
            .map(|m| format!("{}:{}", m.id, m.var_name))
            .collect::<Vec<_>>()
    };
    // Lower case, nothing to decode: one form per value.
    assert_eq!(hits("/?a=plain&b=select+x&c=word"), ["1:ARGS:b"]);
    assert_eq!(hits("/?a=plain&c=word&b=select+x"), ["1:ARGS:b"]);
    assert_eq!(hits("/?a=plain&c=word&b=1+or+1%3D1"), ["2:ARGS:b"]);
    // `C` sets off the lowercase step.
    assert_eq!(hits("/?a=plain&b=select+x&c=Word"), ["1:ARGS:b"]);
    assert_eq!(hits("/?a=plain&b=1+or+1%3D1&c=word"), ["2:ARGS:b"]);
    assert_eq!(hits("/?a=plain&b=1+or+1%3D1&c=W%2541"), ["2:ARGS:b"]);
    assert!(hits("/?a=plain&b=words&c=word").is_empty());
}

/// Rules that inspect the same variables through the same chain share
/// one prefilter verdict per phase: each must still be ruled in by its own
/// literal, found in any of those variables.
#[test]
fn rules_sharing_variables_are_each_ruled_in_by_their_own_literal() {
    let r = rules(
        r#"
SecRule ARGS|REQUEST_HEADERS "@rx select" "id:1,phase:2,pass,t:none"
SecRule ARGS|REQUEST_HEADERS "@rx union" "id:2,phase:2,pass,t:none"
SecRule ARGS|REQUEST_HEADERS "@rx sleep" "id:3,phase:2,pass,t:none"
"#,
    );
    assert_eq!(matched(&r, "/?q=select", &[("X-A", "union")]), vec![1, 2]);
    assert_eq!(matched(&r, "/?q=a", &[("X-A", "sleep")]), vec![3]);
    assert_eq!(matched(&r, "/?q=a", &[("X-A", "b")]), Vec::<u32>::new());
}

/// A rule with several variables looks only through those whose values
/// hold one of its literals (after its own chain): each variable must
/// still be found when it alone holds one.
#[test]
fn each_variable_of_a_rule_is_ruled_in_on_its_own() {
    let r = rules(
        r#"
SecRule REQUEST_HEADERS|ARGS_NAMES|ARGS "@rx select" "id:1,phase:2,pass,t:none,t:urlDecode"
SecRule ARGS_NAMES|ARGS "@rx union" "id:2,phase:2,pass,t:none"
SecRule ARGS|ARGS_NAMES "@rx union" "id:3,phase:2,pass,t:none,t:lowercase"
"#,
    );
    let none = Vec::<u32>::new();
    assert_eq!(matched(&r, "/?a=1&b=2", &[("X-A", "b")]), none);
    assert_eq!(matched(&r, "/?select=1&b=2", &[]), vec![1]);
    assert_eq!(matched(&r, "/?a=1&b=select", &[]), vec![1]);
    assert_eq!(matched(&r, "/?a=1", &[("X-A", "select")]), vec![1]);
    // Only the rule's own chain reveals it (encoded twice in a name).
    assert_eq!(matched(&r, "/?%2573elect=1", &[]), vec![1]);
    assert_eq!(matched(&r, "/?UNION=x&b=2", &[]), vec![3]);
    assert_eq!(matched(&r, "/?a=x&b=UNION", &[]), vec![3]);
    assert_eq!(matched(&r, "/?a=union&b=2", &[]), vec![2, 3]);
    assert_eq!(matched(&r, "/?union=a&b=2", &[]), vec![2, 3]);
}

/// Counts are made on the spot, each in a new buffer that may sit where
/// the last one did: a transformed count must never be taken for another.
#[test]
fn counts_are_told_apart() {
    // Rules alternate between two counts, 1 and 2.
    let text: String = (1..=12)
        .map(|id| {
            let (var, b64) = if id % 2 == 1 {
                ("ARGS", "MQ==")
            } else {
                ("REQUEST_HEADERS", "Mg==")
            };
            format!(
                "SecRule &{var} \"@streq {b64}\" \"id:{id},phase:2,pass,t:none,t:base64Encode\"\n"
            )
        })
        .collect();
    let r = rules(&text);
    for _ in 0..20 {
        let ids = matched(&r, "/?a=1", &[("Host", "x"), ("Accept", "*/*")]);
        assert_eq!(ids, (1..=12).collect::<Vec<u32>>());
    }
}

#[test]
fn nothing_carries_over_to_the_next_transaction() {
    let r = rules(
        r#"
SecRule ARGS:mark "@streq set" "id:1,phase:1,pass,t:none,setvar:tx.marked=1"
SecRule TX:marked "@eq 1" "id:2,phase:2,pass,t:none"
SecRule ARGS "@rx attack" "id:3,phase:2,pass,t:none,t:urlDecode"
"#,
    );
    assert_eq!(matched(&r, "/?mark=set&x=attack", &[]), vec![1, 2, 3]);
    assert_eq!(matched(&r, "/?x=calm", &[]), Vec::<u32>::new());
    let mut tx = r.transaction();
    tx.request_line(b"GET", b"/?x=calm", b"HTTP/1.1");
    tx.process_request(b"");
    assert_eq!(tx.tx("marked"), None);
    drop(tx);
    assert_eq!(matched(&r, "/?x=%2561ttack", &[]), vec![3]);
}

#[test]
fn a_suspended_transaction_resumes_with_its_state_for_the_response() {
    let r = rules(
        r#"
SecResponseBodyAccess On
SecResponseBodyMimeType text/html
SecRule ARGS:user "@rx ^(.+)$" "id:1,phase:1,pass,t:none,capture,setvar:tx.user=%{tx.1}"
SecRule RESPONSE_STATUS "@streq 200" "id:2,phase:3,pass,t:none"
SecRule RESPONSE_BODY "@contains secret of %{tx.user}" "id:3,phase:4,deny,status:403,t:none"
"#,
    );
    let mut tx = r.transaction();
    tx.request_line(b"GET", b"/?user=ada", b"HTTP/1.1");
    assert_eq!(tx.process_request(b""), None);
    let waiting = tx.suspend();
    // Another transaction runs on the thread in between.
    assert_eq!(matched(&r, "/?user=bob", &[]), vec![1]);

    let mut tx = r.resume(waiting);
    tx.response_status(200, b"HTTP/1.1");
    tx.response_header(b"Content-Type", b"text/html");
    assert_eq!(tx.process_response_headers(), None);
    assert!(tx.wants_response_body());
    assert_eq!(tx.response_body(b"<p>the secret of ada</p>"), None);
    let iv = tx.process_response_body().expect("blocked");
    assert_eq!((iv.status, iv.rule_id), (403, 3));
    let ids: Vec<u32> = tx.matches().iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
}

/// MATCHED_VAR is the last match of the rule that matched last, also in
/// later rules; MATCHED_VARS holds the current rule's matches only.
#[test]
fn matched_var_outlives_its_rule_and_matched_vars_does_not() {
    let r = rules(
        r#"
SecRule ARGS "@rx ^x" "id:1,phase:2,pass,t:none"
SecRule ARGS:none "@rx ." "id:2,phase:2,pass,t:none"
SecRule MATCHED_VAR "@streq xb" "id:3,phase:2,pass,t:none"
SecRule MATCHED_VAR_NAME "@streq MATCHED_VAR" "id:4,phase:2,pass,t:none"
SecRule &MATCHED_VARS "@eq 0" "id:5,phase:2,pass,t:none"
SecRule ARGS:a "@rx ^x" "id:6,phase:2,pass,t:none,chain"
  SecRule MATCHED_VARS "@streq xa" "t:none"
SecRule MATCHED_VAR "@streq xa" "id:7,phase:2,pass,t:none"
"#,
    );
    // Rule 1 matches a then b; rule 2 matches nothing; 3 sees b, the last
    // match, and 4 sees 3's own match. 5 starts with no matches of its own.
    // 6's chain sees its head's match, and 7 sees that match as the last.
    assert_eq!(matched(&r, "/?a=xa&b=xb", &[]), vec![1, 3, 4, 5, 6, 7]);
}

#[test]
fn phase_two_reuses_the_heads_forms_and_still_sees_the_body() {
    // Both phases inspect ARGS and a header through the same chain: phase
    // 2 starts from phase 1's forms of the query and the header, and must
    // still take in the arguments the body adds.
    let r = rules(
        r#"
SecRule ARGS|REQUEST_HEADERS:X-Note "@rx select" "id:1,phase:1,pass,t:none,t:urlDecode,t:lowercase"
SecRule ARGS|REQUEST_HEADERS:X-Note "@rx select" "id:2,phase:2,pass,t:none,t:urlDecode,t:lowercase"
SecRule ARGS "@rx union" "id:3,phase:2,pass,t:none,t:urlDecode,t:lowercase"
SecRule REQUEST_HEADERS:X-Note "@rx drop" "id:4,phase:2,pass,t:none,t:urlDecode,t:lowercase"
"#,
    );
    let run = |uri: &str, note: &str, body: &[u8]| {
        let mut tx = r.transaction();
        tx.request_line(b"POST", uri.as_bytes(), b"HTTP/1.1");
        tx.request_header(b"Content-Type", b"application/x-www-form-urlencoded");
        tx.request_header(b"X-Note", note.as_bytes());
        tx.process_request(body);
        tx.matches().iter().map(|m| m.id).collect::<Vec<_>>()
    };
    // In the query: seen by both phases.
    assert_eq!(run("/?q=SELECT", "hello", b"a=b"), vec![1, 2]);
    // In the header, encoded: phase 2 reads phase 1's decoded form.
    assert_eq!(run("/?q=1", "%53elect %44rop", b"a=b"), vec![1, 2, 4]);
    // Only in the body: phase 1 cannot see it, phase 2 must.
    assert_eq!(run("/?q=1", "hello", b"a=%55nion+SELECT"), vec![2, 3]);
    assert_eq!(run("/?q=1", "hello", b"a=b"), Vec::<u32>::new());
}

/// A rule whose only target is one TX key runs on a path of its own; it
/// must name, count, capture and honour exclusions as every other rule.
#[test]
fn single_tx_keys_are_named_counted_and_excluded_like_any_target() {
    let r = rules(
        r#"
SecRule &TX:missing "@eq 0" "id:1,phase:1,pass,t:none,setvar:tx.count_name=%{MATCHED_VAR_NAME}"
SecRule &TX:count_name "@eq 1" "id:2,phase:1,pass,t:none"
SecAction "id:3,phase:1,pass,setvar:tx.level=3"
SecRule TX:level "@ge 2" "id:4,phase:1,pass,t:none,setvar:tx.name=%{MATCHED_VAR_NAME},setvar:tx.seen=%{MATCHED_VAR}"
SecRule TX:LEVEL "@rx ^(\d)$" "id:5,phase:1,pass,capture,t:none,setvar:tx.digit=%{TX.1}"
SecRule TX:level "@lt 2" "id:6,phase:1,pass,t:none"
SecRule TX:absent "@eq 0" "id:7,phase:1,pass,t:none"
SecRule ARGS:off "@streq 1" "id:8,phase:1,pass,t:none,ctl:ruleRemoveTargetById=9;TX:level"
SecRule TX:level "@ge 2" "id:9,phase:1,pass,t:none"
SecRule TX:level "!@ge 2" "id:10,phase:1,pass,t:none"
SecRule TX:level "@ge 2" "id:11,phase:1,pass,t:none,chain"
  SecRule TX:digit "@streq 3" "t:none"
"#,
    );
    let run = |uri: &str| {
        let mut tx = r.transaction();
        tx.request_line(b"GET", uri.as_bytes(), b"HTTP/1.1");
        tx.process_request(b"");
        let ids: Vec<u32> = tx.matches().iter().map(|m| m.id).collect();
        let tx_var = |k: &str| tx.tx(k).map(|v| String::from_utf8_lossy(v).into_owned());
        (
            ids,
            [
                tx_var("count_name"),
                tx_var("name"),
                tx_var("seen"),
                tx_var("digit"),
            ],
        )
    };
    let want = |s: &str| Some(s.to_string());
    let (ids, vars) = run("/");
    // An absent key is no value at all (7), and a count of it is 0 (1).
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 9, 11]);
    assert_eq!(vars, [want("TX"), want("TX:level"), want("3"), want("3")]);
    // Excluded for rule 9 only, by a ctl earlier in the phase.
    let (ids, _) = run("/?off=1");
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 8, 11]);
}

/// A TX key named in the rule text is numbered at load and read and
/// written by number; a name made at run time by a macro is the same
/// variable when it spells the same key, and a new one otherwise.
#[test]
fn tx_keys_named_in_rules_and_made_by_macros_are_one_variable() {
    let r = rules(
        r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.key=score,setvar:tx.score=1"
SecAction "id:2,phase:1,pass,nolog,setvar:'tx.%{tx.key}=+4',setvar:'tx.other_%{tx.key}=7'"
SecRule TX:score "@eq 5" "id:3,phase:1,pass,t:none"
SecRule &TX:/^score$/ "@eq 1" "id:4,phase:1,pass,t:none"
SecRule TX:/^other_/ "@eq 7" "id:5,phase:1,pass,t:none,setvar:tx.seen=%{MATCHED_VAR_NAME}"
SecRule TX:SCORE "@streq %{tx.other_score}" "id:6,phase:1,pass,t:none"
SecAction "id:7,phase:1,pass,nolog,setvar:'!tx.%{tx.key}'"
SecRule &TX:score "@eq 0" "id:8,phase:1,pass,t:none"
SecAction "id:9,phase:1,pass,nolog,setvar:tx.score=2,setvar:!tx.score"
SecRule &TX:/^score$/ "@eq 0" "id:10,phase:1,pass,t:none"
SecAction "id:11,phase:1,pass,nolog,setvar:tx.key2=Made_Key,setvar:'tx.%{tx.key2}=1',setvar:'tx.%{tx.key2}=2'"
SecRule TX:made_key "@eq 2" "id:12,phase:1,pass,t:none"
SecRule &TX:/^made_key$/ "@eq 1" "id:13,phase:1,pass,t:none"
SecRule REQUEST_METHOD "@rx ^(G)(E)T$" "id:14,phase:1,pass,nolog,capture,t:none,setvar:'tx.cap_%{tx.2}%{tx.1}=%{tx.0}'"
SecRule TX:cap_eg "@streq GET" "id:15,phase:1,pass,t:none"
"#,
    );
    let mut tx = r.transaction();
    tx.request_line(b"GET", b"/", b"HTTP/1.1");
    tx.process_request(b"");
    let ids: Vec<u32> = tx.matches().iter().map(|m| m.id).collect();
    // 6 does not match: 5 is not 7. A made name is kept in lower case,
    // once however often it is set; capture keys read from their slots.
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    assert_eq!(tx.tx("seen"), Some(&b"TX:other_score"[..]));
    assert_eq!(tx.tx("Other_Score"), Some(&b"7"[..]));
    assert_eq!(tx.tx("score"), None);
}

/// Each rule set numbers its own keys: transactions of two rule sets
/// taking turns on one thread (and so handing each other their tables)
/// each read their own values.
#[test]
fn rule_sets_taking_turns_on_a_thread_keep_their_own_tx_keys() {
    let a = rules(
        r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.alpha=a"
SecRule TX:alpha "@streq a" "id:2,phase:1,pass,t:none"
SecRule TX:beta "@rx ." "id:3,phase:1,pass,t:none"
"#,
    );
    let b = rules(
        r#"
SecRule TX:alpha "@rx ." "id:11,phase:1,pass,t:none"
SecAction "id:12,phase:1,pass,nolog,setvar:tx.gamma=1,setvar:tx.beta=b"
SecRule TX:beta "@streq b" "id:13,phase:1,pass,t:none"
"#,
    );
    for _ in 0..3 {
        assert_eq!(matched(&a, "/", &[]), vec![1, 2]);
        assert_eq!(matched(&b, "/", &[]), vec![12, 13]);
    }
    // A transaction set aside on one rule set and another run on the
    // other in between.
    let mut tx = a.transaction();
    tx.request_line(b"GET", b"/", b"HTTP/1.1");
    tx.process_request(b"");
    let waiting = tx.suspend();
    assert_eq!(matched(&b, "/", &[]), vec![12, 13]);
    let tx = a.resume(waiting);
    assert_eq!(tx.tx("alpha"), Some(&b"a"[..]));
    assert_eq!(tx.tx("beta"), None);
}

/// A rule takes the values it reads by their place among the variable's
/// values (one whose literals occur, only those whose forms hold them):
/// each hit must name its own value, in order, across the query and the
/// body, with the rule's selectors and exclusions applied, for rules with
/// literals (1-3) and without (5).
#[test]
fn values_found_by_place_are_the_right_ones() {
    let r = rules(
        r#"
SecRule ARGS|!ARGS:skip "@rx select" "id:1,phase:2,pass,t:none,t:lowercase,setvar:tx.n=+1"
SecRule ARGS:/^b/ "@rx select" "id:2,phase:2,pass,t:none,t:lowercase"
SecRule ARGS_NAMES "@rx union" "id:3,phase:2,pass,t:none,t:lowercase"
SecRule TX:n "@eq 3" "id:4,phase:2,pass"
SecRule ARGS|!ARGS:skip "@streq select" "id:5,phase:2,pass,t:none,t:lowercase,setvar:tx.m=+1"
SecRule TX:m "@eq 2" "id:6,phase:2,pass"
"#,
    );
    let mut tx = r.transaction();
    tx.request_line(
        b"POST",
        b"/?a=SELECT&skip=select&b=x+select&d=plain",
        b"HTTP/1.1",
    );
    tx.request_header(b"Content-Type", b"application/x-www-form-urlencoded");
    tx.process_request(b"c=Select&bb=no&Union=1");
    let got: Vec<(u32, String, String)> = tx
        .matches()
        .iter()
        .map(|m| {
            let value = String::from_utf8_lossy(&m.value).into_owned();
            (m.id, m.var_name.clone(), value)
        })
        .collect();
    let want = [
        (1, "ARGS:c", "select"),
        (2, "ARGS:b", "x select"),
        (3, "ARGS_NAMES:Union", "union"),
        (4, "TX:n", "3"),
        (5, "ARGS:c", "select"),
        (6, "TX:m", "2"),
    ];
    let want: Vec<(u32, String, String)> = want
        .iter()
        .map(|(id, n, v)| (*id, n.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want);
}

/// A silent (`nolog`) rule's match keeps its id, phase and severity and
/// nothing else; its severity still counts for HIGHEST_SEVERITY. A
/// logged rule's match carries its expanded message and data, its tags
/// and the variable it matched.
#[test]
fn silent_and_logged_matches_carry_what_they_should() {
    let r = rules(
        r#"
SecRule ARGS:a "@rx secret" "id:1,phase:1,pass,nolog,severity:CRITICAL,msg:'quiet %{MATCHED_VAR}',tag:'t1'"
SecRule ARGS:b "@rx loud" "id:2,phase:1,pass,log,severity:WARNING,msg:'heard %{MATCHED_VAR}',logdata:'in %{MATCHED_VAR_NAME}',tag:'t2'"
SecRule HIGHEST_SEVERITY "@eq 2" "id:3,phase:1,pass,nolog"
"#,
    );
    let mut tx = r.transaction();
    tx.request_line(b"GET", b"/?a=secret&b=loud", b"HTTP/1.1");
    tx.process_request(b"");
    let m = tx.matches();
    let ids: Vec<u32> = m.iter().map(|m| m.id).collect();
    assert_eq!(
        ids,
        [1, 2, 3],
        "the critical silent rule sets HIGHEST_SEVERITY"
    );
    let quiet = &m[0];
    assert!(!quiet.logged);
    assert_eq!((quiet.phase, quiet.severity), (1, Some(2)));
    assert!(quiet.msg.is_empty() && quiet.logdata.is_empty() && quiet.tags.is_empty());
    assert!(quiet.var_name.is_empty() && quiet.value.is_empty());
    let loud = &m[1];
    assert!(loud.logged);
    assert_eq!(loud.msg, "heard loud");
    assert_eq!(loud.logdata, "in ARGS:b");
    assert_eq!(loud.tags, ["t2"]);
    assert_eq!(loud.severity, Some(4));
    assert_eq!(
        (loud.var_name.as_str(), &loud.value[..]),
        ("ARGS:b", &b"loud"[..])
    );
}
