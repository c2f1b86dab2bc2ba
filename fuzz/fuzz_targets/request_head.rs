//! Raw bytes from a client as the start of an HTTP/1 request head.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(used) = portcullis_proxy::fuzzing::request_head(data) {
        assert!(used <= data.len());
        // A complete head ends with an empty line.
        assert!(data[..used].ends_with(b"\n"));
    }
});
