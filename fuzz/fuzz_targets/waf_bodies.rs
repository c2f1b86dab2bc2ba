#![no_main]
//! The request body processors (URL-encoded, JSON, XML, multipart) and the
//! SQLi/XSS detectors on arbitrary bytes.

use libfuzzer_sys::fuzz_target;
use portcullis_waf::body::{json, multipart, urlencoded, xml};
use portcullis_waf::libinjection::{sqli, xss};

fuzz_target!(|data: &[u8]| {
    let _ = urlencoded::parse(data, b'&');
    let _ = json::parse(data, 64, 1000);
    let _ = xml::parse(data);
    let _ = multipart::parse(b"multipart/form-data; boundary=XyZ", data);
    let _ = multipart::parse(data, data);
    let _ = sqli::detect(data);
    let _ = xss::detect(data);
});
