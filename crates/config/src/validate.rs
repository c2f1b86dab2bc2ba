//! The structural pass: the file is checked against the JSON Schema derived
//! from the file types, so *every* unknown key, missing key and wrongly typed
//! value is reported at once (serde alone stops at the first).
//!
//! jsonschema's own messages are generic; this module turns each error kind
//! into a message for a person editing YAML, with a hint where one helps.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::diag::{Diagnostics, did_you_mean, quoted_list};
use crate::file::{BYTE_SIZE_PATTERN, ConfigFile, DURATION_PATTERN};
use crate::yaml::pointer_token;

/// The JSON Schema of the configuration file.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let s = schemars::schema_for!(ConfigFile);
        serde_json::to_value(s).unwrap_or(Value::Null)
    })
}

fn validator() -> Option<&'static Validator> {
    static VALIDATOR: OnceLock<Option<Validator>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::validator_for(schema()).ok())
        .as_ref()
}

/// Reports every structural error of `instance` into `diags`.
pub(crate) fn check(instance: &Value, diags: &mut Diagnostics<'_>) {
    let Some(v) = validator() else {
        diags.error(
            "",
            "internal error: the configuration schema does not compile",
        );
        return;
    };
    for err in v.iter_errors(instance) {
        report(&err, instance, diags);
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn type_kind_name(kind: &TypeKind) -> String {
    let one = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "a mapping".to_owned(),
        "array" => "a list".to_owned(),
        "string" => "a string".to_owned(),
        "integer" => "an integer".to_owned(),
        "number" => "a number".to_owned(),
        "boolean" => "a boolean (true or false)".to_owned(),
        "null" => "nothing".to_owned(),
        other => other.to_owned(),
    };
    match kind {
        TypeKind::Single(t) => one(t),
        TypeKind::Multiple(ts) => ts.iter().map(|t| one(&t)).collect::<Vec<_>>().join(" or "),
    }
}

/// The subschema an error's keyword belongs to, found through the error's
/// schema path (which jsonschema reports with `$ref`s resolved).
fn owning_schema(err: &ValidationError<'_>, keyword: &str) -> Option<&'static Value> {
    let path = err.schema_path().as_str();
    let parent = path.strip_suffix(keyword)?.trim_end_matches('/');
    schema().pointer(parent)
}

fn lookup<'v>(instance: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        Some(instance)
    } else {
        instance.pointer(pointer)
    }
}

fn report(err: &ValidationError<'_>, root: &Value, diags: &mut Diagnostics<'_>) {
    let pointer = err.instance_path().as_str().to_owned();
    let found = lookup(root, &pointer);
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed: Vec<String> = owning_schema(err, "additionalProperties")
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            for key in unexpected {
                let hint = match did_you_mean(key, allowed.iter().map(String::as_str)) {
                    Some(s) => Some(format!("did you mean \"{s}\"?")),
                    None if !allowed.is_empty() => Some(format!(
                        "the keys allowed here are {}",
                        quoted_list(allowed.iter().map(String::as_str))
                    )),
                    None => None,
                };
                diags.key_error(
                    &format!("{pointer}/{}", pointer_token(key)),
                    format!("unknown key \"{key}\""),
                    hint,
                );
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            diags.error(&pointer, format!("missing required key \"{name}\""));
        }
        ValidationErrorKind::Type { kind } => {
            let found = found.map_or("nothing", type_name);
            diags.error(
                &pointer,
                format!("expected {}, found {found}", type_kind_name(kind)),
            );
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<&str> = options
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let got = found.and_then(Value::as_str).unwrap_or("");
            let message = format!(
                "{} is not one of {}",
                show(found),
                quoted_list(opts.iter().copied())
            );
            match did_you_mean(got, opts.iter().copied()) {
                Some(s) => diags.error_hint(&pointer, message, format!("did you mean \"{s}\"?")),
                None => diags.error(&pointer, message),
            }
        }
        ValidationErrorKind::Constant { expected_value } => {
            diags.error(
                &pointer,
                format!("expected {expected_value}, found {}", show(found)),
            );
        }
        ValidationErrorKind::Pattern { pattern } => {
            let what = if pattern == BYTE_SIZE_PATTERN {
                "a size like \"16KiB\", \"1MiB\" or a number of bytes"
            } else if pattern == DURATION_PATTERN {
                "a duration like \"500ms\", \"30s\", \"5m\" or \"1h\""
            } else {
                "a value of the documented form"
            };
            diags.error(&pointer, format!("{} is not {what}", show(found)));
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            diags.error(
                &pointer,
                format!("{} is too small; the minimum is {limit}", show(found)),
            );
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            diags.error(
                &pointer,
                format!("{} is too large; the maximum is {limit}", show(found)),
            );
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            report_alternatives(&pointer, found, context, root, diags);
        }
        _ => diags.error(&pointer, err.to_string()),
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => format!("\"{s}\""),
        Some(other) => other.to_string(),
        None => "nothing".to_owned(),
    }
}

/// `oneOf`/`anyOf` failures: tagged unions (`kind: cors`) report the errors of
/// the branch the tag selects; other unions (a size as number or string, an
/// optional value) report the branch whose type matched.
fn report_alternatives(
    pointer: &str,
    found: Option<&Value>,
    branches: &[Vec<ValidationError<'static>>],
    root: &Value,
    diags: &mut Diagnostics<'_>,
) {
    let kind_pointer = format!("{pointer}/kind");
    let is_tag_error = |e: &ValidationError<'_>| {
        e.instance_path().as_str() == kind_pointer
            && matches!(e.kind(), ValidationErrorKind::Constant { .. })
    };
    let tagged = branches.iter().any(|b| b.iter().any(&is_tag_error));
    if tagged {
        if let Some(branch) = branches.iter().find(|b| !b.iter().any(&is_tag_error)) {
            for e in branch {
                report(e, root, diags);
            }
            return;
        }
        let kinds: Vec<String> = branches
            .iter()
            .flatten()
            .filter(|e| is_tag_error(e))
            .filter_map(|e| match e.kind() {
                ValidationErrorKind::Constant { expected_value } => {
                    expected_value.as_str().map(str::to_owned)
                }
                _ => None,
            })
            .collect();
        match found.and_then(|f| f.get("kind")) {
            None => diags.error_hint(
                pointer,
                "missing required key \"kind\"",
                format!(
                    "kind is one of {}",
                    quoted_list(kinds.iter().map(String::as_str))
                ),
            ),
            Some(k) => {
                let got = k.as_str().unwrap_or("");
                let hint = match did_you_mean(got, kinds.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean \"{s}\"?"),
                    None => format!(
                        "kind is one of {}",
                        quoted_list(kinds.iter().map(String::as_str))
                    ),
                };
                diags.error_hint(
                    &kind_pointer,
                    format!("unknown kind {}", show(Some(k))),
                    hint,
                );
            }
        }
        return;
    }
    let type_matched = branches.iter().find(|b| {
        !b.iter().any(|e| {
            e.instance_path().as_str() == pointer
                && matches!(e.kind(), ValidationErrorKind::Type { .. })
        })
    });
    match type_matched {
        Some(branch) => {
            for e in branch {
                report(e, root, diags);
            }
        }
        None => {
            let expected: Vec<String> = branches
                .iter()
                .flatten()
                .filter_map(|e| match e.kind() {
                    ValidationErrorKind::Type { kind } if e.instance_path().as_str() == pointer => {
                        Some(type_kind_name(kind))
                    }
                    _ => None,
                })
                .collect();
            diags.error(
                pointer,
                format!(
                    "expected {}, found {}",
                    expected.join(" or "),
                    found.map_or("nothing", type_name)
                ),
            );
        }
    }
}
