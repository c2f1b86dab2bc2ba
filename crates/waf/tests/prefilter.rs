#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The literal prefilter never hides a match: for every Core Rule Set
//! expression that got a literal list, every attack sample it matches
//! (SQL injection and XSS corpora, the payloads of the CRS regression
//! tests, raw and percent-decoded) contains one of its literals.

use std::path::Path;

use portcullis_waf::operators::Op;
use portcullis_waf::rule::Rule;
use portcullis_waf::transforms::{self, Transform};
use portcullis_waf::{RuleSet, Source, crs};

fn samples() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs = vec![
        root.join("testdata/libinjection/corpus"),
        root.join("crs/v4.28.0/tests/regression/tests"),
    ];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read(&f).unwrap();
        for line in text.split(|b| *b == b'\n').filter(|l| l.len() < 4096) {
            out.push(line.to_vec());
            let decoded = percent_decode(line);
            if decoded != line {
                out.push(decoded);
            }
        }
    }
    out
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(if s[i] == b'+' { b' ' } else { s[i] });
        i += 1;
    }
    out
}

fn links(r: &Rule) -> impl Iterator<Item = &Rule> {
    std::iter::successors(Some(r), |r| r.chain.as_deref())
}

#[test]
fn no_match_is_hidden_by_the_literal_prefilter() {
    let setup = "SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=4\"";
    let rules = RuleSet::load(&crs::builtin(&[Source::text("setup.conf", setup)])).unwrap();
    let samples = samples();
    assert!(samples.len() > 20_000, "{} samples", samples.len());
    let lowered: Vec<Vec<u8>> = samples.iter().map(|s| s.to_ascii_lowercase()).collect();
    let (mut filtered, mut matched) = (0, 0);
    for rule in rules.rules().flat_map(links) {
        let (Op::Rx(re), Some(lits)) = (&rule.operator.op, &rule.operator.literals) else {
            continue;
        };
        filtered += 1;
        for (s, low) in samples.iter().zip(&lowered) {
            if !re.is_match(s) {
                continue;
            }
            matched += 1;
            assert!(
                lits.iter().any(|l| memchr::memmem::find(low, l).is_some()),
                "rule {} matches {:?} but none of its literals {:?} occur",
                rule.id,
                String::from_utf8_lossy(s),
                lits.iter()
                    .map(|l| String::from_utf8_lossy(l))
                    .collect::<Vec<_>>()
            );
        }
    }
    // Most expressions have a literal list, and the samples exercise them.
    assert!(filtered > 200, "{filtered} expressions with literals");
    assert!(matched > 10_000, "{matched} matches checked");
}

/// The cache takes a value's form after a chain to be the value itself
/// when the value sets off none of the chain's transformations
/// (`transforms::triggers`). Every sample, and each of its pieces between
/// spaces, must then come out of every transformation it does not set off
/// unchanged.
#[test]
fn values_that_set_off_no_transformation_come_out_unchanged() {
    let mut out = Vec::new();
    let mut checked = 0usize;
    for s in samples() {
        let pieces = s.split(|b| *b == b' ').map(<[u8]>::to_vec);
        for v in std::iter::once(s.clone()).chain(pieces) {
            let set_off = transforms::triggers(&v);
            for t in Transform::ALL {
                if set_off & t.bit() != 0 {
                    continue;
                }
                checked += 1;
                out.clear();
                assert!(
                    !t.apply(&v, &mut out) || out == v,
                    "{} changed {:?}",
                    t.name(),
                    String::from_utf8_lossy(&v)
                );
            }
        }
    }
    assert!(checked > 100_000, "only {checked} checks");
}
