//! JSON bodies flattened into arguments: `{"a":{"b":[1,"x"]}}` gives
//! `json.a.b.0 = 1` and `json.a.b.1 = x`.

use bytes::Bytes;
use serde_json::Value;

use crate::tx::Pair;

pub fn parse(body: &[u8], depth_limit: usize) -> Result<Vec<Pair>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut key = b"json".to_vec();
    flatten(&value, &mut key, &mut out, 0, depth_limit)?;
    Ok(out)
}

fn flatten(
    v: &Value,
    key: &mut Vec<u8>,
    out: &mut Vec<Pair>,
    depth: usize,
    limit: usize,
) -> Result<(), String> {
    if depth > limit {
        return Err(format!("nesting deeper than {limit}"));
    }
    let scalar = |s: &[u8]| Bytes::copy_from_slice(s);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let len = key.len();
                key.push(b'.');
                key.extend_from_slice(k.as_bytes());
                flatten(v, key, out, depth + 1, limit)?;
                key.truncate(len);
            }
        }
        Value::Array(items) => {
            // The array itself is an argument too (its length), so its name
            // is inspected like any other.
            if !items.is_empty() {
                out.push((scalar(key), scalar(items.len().to_string().as_bytes())));
            }
            for (i, v) in items.iter().enumerate() {
                let len = key.len();
                key.push(b'.');
                key.extend_from_slice(i.to_string().as_bytes());
                flatten(v, key, out, depth + 1, limit)?;
                key.truncate(len);
            }
        }
        Value::String(s) => out.push((scalar(key), scalar(s.as_bytes()))),
        Value::Null => out.push((scalar(key), Bytes::new())),
        other => out.push((scalar(key), scalar(other.to_string().as_bytes()))),
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_are_flattened() {
        let p = parse(br#"{"a":{"b":[1,"x",null,true]},"c":"d"}"#, 10).unwrap();
        let flat: Vec<(String, String)> = p
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect();
        assert_eq!(
            flat,
            vec![
                ("json.a.b".into(), "4".into()),
                ("json.a.b.0".into(), "1".into()),
                ("json.a.b.1".into(), "x".into()),
                ("json.a.b.2".into(), "".into()),
                ("json.a.b.3".into(), "true".into()),
                ("json.c".into(), "d".into()),
            ]
        );
    }

    #[test]
    fn broken_or_too_deep_json_is_an_error() {
        assert!(parse(b"{\"a\":", 10).is_err());
        assert!(parse(b"[[[[1]]]]", 2).unwrap_err().contains("deeper"));
    }
}
