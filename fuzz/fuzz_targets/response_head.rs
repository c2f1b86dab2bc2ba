//! Raw bytes from an upstream as the start of an HTTP/1 response head.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((used, fields)) = portcullis_proxy::fuzzing::response_head(data) {
        assert!(used <= data.len());
        let head = &data[..used];
        // A complete head ends with an empty line.
        assert!(head.ends_with(b"\n"));
        for (name, value) in fields {
            // Every kept field comes from the head itself (names folded to
            // lower case), and no hop-by-hop field or banner is kept.
            assert!(!matches!(
                name.as_str(),
                "connection" | "transfer-encoding" | "keep-alive" | "server" | "x-powered-by"
            ));
            let lower: Vec<u8> = head.to_ascii_lowercase();
            assert!(lower.windows(name.len()).any(|w| w == name.as_bytes()));
            assert!(value.is_empty() || head.windows(value.len()).any(|w| w == value));
        }
    }
});
