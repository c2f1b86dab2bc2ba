//! The Core Rule Set as Portcullis loads it: the engine base configuration,
//! `crs-setup.conf.example`, any extra setup, then the rule files in order.

use std::path::{Path, PathBuf};

use crate::error::LoadError;
use crate::ruleset::{DataFiles, Source};

/// The engine settings and request-body rules the rule set expects.
pub const BASE_CONF: &str = include_str!("../conf/base.conf");

/// The vendored rule set, next to this crate.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crs/v4.28.0")
}

/// Sources to load the rule set in `dir` with `setup` placed after
/// `crs-setup.conf.example` and before the rules (where the rule set
/// expects its `tx.*` settings and exclusions).
pub fn sources(dir: &Path, setup: &[Source]) -> Result<Vec<Source>, LoadError> {
    let mut out = vec![
        Source::text("base.conf", BASE_CONF),
        Source::file(&dir.join("crs-setup.conf.example"))?,
    ];
    out.extend(setup.iter().cloned());
    let rules = dir.join("rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rules)
        .map_err(|e| LoadError::at(&rules.display().to_string(), 0, format!("cannot read: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    for f in files {
        out.push(Source::file(&f)?);
    }
    Ok(out)
}

/// The built-in rule set with `setup` placed like in [`sources`].
pub fn builtin(setup: &[Source]) -> Vec<Source> {
    let embedded = |name: &str, text: &str| Source {
        name: format!("crs/{name}"),
        text: text.to_string(),
        data: DataFiles::Embedded(crate::crs_files::DATA),
    };
    let mut out = vec![
        Source::text("base.conf", BASE_CONF),
        embedded("crs-setup.conf.example", crate::crs_files::SETUP),
    ];
    out.extend(setup.iter().cloned());
    out.extend(crate::crs_files::RULES.iter().map(|(n, t)| embedded(n, t)));
    out
}
