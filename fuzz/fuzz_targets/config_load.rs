//! The configuration loader must turn any text into a config or located
//! errors, never a panic, a hang or unbounded memory.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = Path::new("/nonexistent-portcullis-fuzz");
    if let Err(e) = portcullis_config::load_str(text, Arc::from("fuzz.yaml"), dir) {
        assert!(!e.diagnostics.is_empty());
        let _ = e.to_string();
    }
});
