#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The Core Rule Set loads unmodified, and a broken file is refused whole.

use std::path::{Path, PathBuf};

use portcullis_waf::{RuleSet, Source};

fn crs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crs/v4.28.0")
}

fn crs_sources() -> Vec<Source> {
    let dir = crs();
    let mut sources = vec![
        Source::text("base.conf", include_str!("../conf/base.conf")),
        Source::file(&dir.join("crs-setup.conf.example")).unwrap(),
    ];
    let mut files: Vec<_> = std::fs::read_dir(dir.join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    sources.extend(files.iter().map(|p| Source::file(p).unwrap()));
    sources
}

#[test]
fn the_core_rule_set_loads_unmodified() {
    let rs = RuleSet::load(&crs_sources()).unwrap_or_else(|e| panic!("{e}"));
    assert!(rs.len() > 600, "{} rules", rs.len());
}

#[test]
fn the_built_in_rule_set_is_the_same_rule_set() {
    let from_files = RuleSet::load(&crs_sources()).unwrap();
    let built_in = RuleSet::load(&portcullis_waf::crs::builtin(&[])).unwrap();
    assert_eq!(built_in.len(), from_files.len());
    let ids = |r: &RuleSet| r.rules().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&built_in), ids(&from_files));
}

#[test]
fn a_rule_file_the_engine_cannot_take_is_refused_whole_with_its_line() {
    let good = Source::text("a.conf", "SecRule ARGS \"@rx a\" \"id:1,phase:2,pass\"\n");
    let bad = Source::text(
        "b.conf",
        "SecRule ARGS \"@rx b\" \"id:2,phase:2,pass\"\n\nSecRule ARGS \"@geoLookup\" \"id:3,phase:2,pass\"\n",
    );
    let e = RuleSet::load(&[good, bad]).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("b.conf", 3));
    assert!(e.message.contains("@geolookup is not supported"), "{e}");
}
