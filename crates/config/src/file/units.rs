//! Sizes and durations as people write them: `16KiB`, `1MiB`, `500ms`, `30s`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

pub(crate) const BYTE_SIZE_PATTERN: &str = r"^[0-9]+ ?(B|KB|KiB|MB|MiB|GB|GiB)?$";
pub(crate) const DURATION_PATTERN: &str = r"^[0-9]+(ms|s|m|h|d)$";

/// A number of bytes: an integer, or a string with a unit
/// (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> Self {
        ByteSize(n * 1024)
    }
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024)
    }

    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let mult: u64 = match unit.trim_start() {
            "" | "B" => 1,
            "KB" => 1000,
            "KiB" => 1024,
            "MB" => 1000 * 1000,
            "MiB" => 1024 * 1024,
            "GB" => 1000 * 1000 * 1000,
            "GiB" => 1024 * 1024 * 1024,
            _ => return None,
        };
        n.checked_mul(mult).map(ByteSize)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n != 0 && n.is_multiple_of(1024 * 1024 * 1024) {
            write!(f, "{}GiB", n / (1024 * 1024 * 1024))
        } else if n != 0 && n.is_multiple_of(1024 * 1024) {
            write!(f, "{}MiB", n / (1024 * 1024))
        } else if n != 0 && n.is_multiple_of(1024) {
            write!(f, "{}KiB", n / 1024)
        } else {
            write!(f, "{n}")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like 16KiB or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v)
                    .ok_or_else(|| E::custom(format!("\"{v}\" is not a size like 16KiB")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: a number of bytes, or a string like \"16KiB\" or \"1MiB\".",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": BYTE_SIZE_PATTERN }
            ]
        })
    }
}

/// A duration written with a unit: `500ms`, `30s`, `5m`, `1h`, `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationStr(pub Duration);

impl DurationStr {
    pub const fn secs(n: u64) -> Self {
        DurationStr(Duration::from_secs(n))
    }
    pub const fn millis(n: u64) -> Self {
        DurationStr(Duration::from_millis(n))
    }

    pub fn parse(s: &str) -> Option<Self> {
        let split = s.find(|c: char| !c.is_ascii_digit())?;
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        };
        Some(DurationStr(d))
    }
}

impl fmt::Display for DurationStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        DurationStr::parse(&s).ok_or_else(|| {
            de::Error::custom(format!("\"{s}\" is not a duration like 10s or 500ms"))
        })
    }
}

impl Serialize for DurationStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for DurationStr {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration with a unit: \"500ms\", \"30s\", \"5m\", \"1h\", \"1d\".",
            "type": "string",
            "pattern": DURATION_PATTERN
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("16KiB"), Some(ByteSize(16 * 1024)));
        assert_eq!(ByteSize::parse("1 MiB"), Some(ByteSize(1 << 20)));
        assert_eq!(ByteSize::parse("10KB"), Some(ByteSize(10_000)));
        assert_eq!(ByteSize::parse("512"), Some(ByteSize(512)));
        assert_eq!(ByteSize::parse("5XB"), None);
        assert_eq!(ByteSize::parse("99999999999999999999GiB"), None);
        assert_eq!(ByteSize::mib(2).to_string(), "2MiB");
    }

    #[test]
    fn durations() {
        assert_eq!(DurationStr::parse("500ms"), Some(DurationStr::millis(500)));
        assert_eq!(DurationStr::parse("2m"), Some(DurationStr::secs(120)));
        assert_eq!(DurationStr::parse("1d"), Some(DurationStr::secs(86_400)));
        assert_eq!(DurationStr::parse("10"), None);
        assert_eq!(DurationStr::parse("s"), None);
        assert_eq!(DurationStr::parse("1w"), None);
        assert_eq!(DurationStr::secs(30).to_string(), "30s");
    }

    #[test]
    fn patterns_agree_with_parsers() {
        for ok in ["16KiB", "1 MiB", "10", "3GB"] {
            assert!(ByteSize::parse(ok).is_some(), "{ok}");
        }
        for ok in ["1ms", "30s", "5m", "1h", "7d"] {
            assert!(DurationStr::parse(ok).is_some(), "{ok}");
        }
    }
}
