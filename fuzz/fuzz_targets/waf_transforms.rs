#![no_main]
//! Every transformation, alone and chained, on arbitrary bytes.

use libfuzzer_sys::fuzz_target;
use portcullis_waf::transforms::{Scratch, Transform, apply_all};

const NAMES: &[&str] = &[
    "base64Decode", "base64DecodeExt", "base64Encode", "cmdLine", "compressWhitespace",
    "cssDecode", "escapeSeqDecode", "hexDecode", "hexEncode", "htmlEntityDecode", "jsDecode",
    "length", "lowercase", "md5", "normalizePath", "normalizePathWin", "removeComments",
    "removeCommentsChar", "removeNulls", "removeWhitespace", "replaceComments", "replaceNulls",
    "sha1", "sqlHexDecode", "trim", "trimLeft", "trimRight", "uppercase", "urlDecode",
    "urlDecodeUni", "urlEncode", "utf8toUnicode",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, value)) = data.split_first() else { return };
    let all: Vec<Transform> = NAMES.iter().filter_map(|n| Transform::from_name(n)).collect();
    for t in &all {
        let mut out = Vec::new();
        let _ = t.apply(value, &mut out);
    }
    // A chain picked by the first byte.
    let chain: Vec<Transform> = (0..4)
        .filter_map(|i| all.get(usize::from(pick.rotate_left(i * 2)) % all.len()).copied())
        .collect();
    let mut scratch = Scratch::default();
    let _ = apply_all(&chain, value, &mut scratch);
});
