//! A chunked body (request or upstream response), delivered whole and in
//! arbitrary pieces: the decoder must give the same answer either way.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, Vec<usize>)| {
    let (data, cuts) = input;
    let whole = portcullis_proxy::fuzzing::chunked(&data, &[]);
    let pieces = portcullis_proxy::fuzzing::chunked(&data, &cuts);
    assert_eq!(whole, pieces);
});
