#![no_main]
//! The SecLang reader and rule-set loader on arbitrary text: an error or a
//! rule set, never a panic.

use libfuzzer_sys::fuzz_target;
use portcullis_waf::{RuleSet, Source};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = RuleSet::load(&[Source::text("fuzz.conf", text)]);
    }
});
