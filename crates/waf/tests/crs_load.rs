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
