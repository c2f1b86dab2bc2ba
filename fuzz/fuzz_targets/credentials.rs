//! Credential parsing: API keys, Basic, bearer tokens (JWT headers and
//! claims read before verification) and keys in query strings. Nothing may
//! panic, and with nothing issued nothing may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(!portcullis_authn::fuzzing::credentials(data));
});
