//! Path normalisation sees raw request targets from the network: it must
//! never panic, and what it accepts must be canonical and stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_router::{NormalizeOptions, normalize_path};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    for opts in [NormalizeOptions::default(), NormalizeOptions { reject_double_encoding: false }] {
        if let Ok(once) = normalize_path(path, opts) {
            assert!(once.starts_with('/'));
            assert!(!once.contains("//"), "{once}");
            assert!(!once.contains("/./") && !once.contains("/../"), "{once}");
            assert!(!once.ends_with("/.") && !once.ends_with("/.."), "{once}");
            assert!(!once.contains('\\'));
            let twice = normalize_path(&once, opts).expect("normal output is accepted again");
            assert_eq!(once, twice, "normalisation is idempotent");
        }
    }
});
