#![no_main]
//! The literal prefilter never hides a match: for an arbitrary expression
//! and an arbitrary value, if the expression matches the value then one of
//! the literals the prefilter would look for occurs in it (ignoring case).
//! Input: the expression, a 0xff byte, the value.

use libfuzzer_sys::fuzz_target;
use portcullis_waf::DataFiles;
use portcullis_waf::operators::{Op, Operator};

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0xff) else { return };
    let (pattern, value) = data.split_at(split);
    let value = &value[1..];
    let Ok(pattern) = std::str::from_utf8(pattern) else { return };
    if pattern.contains("%{") {
        return;
    }
    let Ok(op) = Operator::parse(&format!("@rx {pattern}"), &DataFiles::Dir(".".into())) else {
        return;
    };
    let (Op::Rx(re), Some(lits)) = (&op.op, &op.literals) else { return };
    if re.is_match(value) {
        let low = value.to_ascii_lowercase();
        assert!(
            lits.iter().any(|l| memchr::memmem::find(&low, l).is_some()),
            "{pattern:?} matches {value:?} but none of {lits:?} occurs"
        );
    }
});
