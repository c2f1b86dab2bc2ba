//! Macro text: `%{TX.anomaly_score}`, `%{MATCHED_VAR}`, `%{rule.id}` inside
//! action and operator arguments, expanded when the rule runs.

use bytes::Bytes;

use crate::variables::Var;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(Bytes),
    /// A variable, with a key for collections (kept in lower case).
    Var(Var, Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Macro {
    pub parts: Vec<Part>,
}

impl Macro {
    /// Parses text with `%{...}` references. A reference to an unknown
    /// variable is an error; a lone `%` is literal text.
    pub fn parse(text: &str) -> Result<Macro, String> {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut rest = text;
        while let Some(pos) = rest.find("%{") {
            let after = rest.get(pos + 2..).unwrap_or("");
            let Some(end) = after.find('}') else { break };
            lit.extend_from_slice(rest.get(..pos).unwrap_or("").as_bytes());
            let inner = after.get(..end).unwrap_or("");
            let (name, key) = match inner.split_once(['.', ':']) {
                Some((n, k)) => (n, Some(k.to_ascii_lowercase())),
                None => (inner, None),
            };
            let var = Var::from_name(name.trim())
                .ok_or_else(|| format!("unknown variable {name:?} in macro %{{{inner}}}"))?;
            if !lit.is_empty() {
                parts.push(Part::Lit(crate::value::bytes(std::mem::take(&mut lit))));
            }
            parts.push(Part::Var(var, key));
            rest = after.get(end + 1..).unwrap_or("");
        }
        lit.extend_from_slice(rest.as_bytes());
        if !lit.is_empty() {
            parts.push(Part::Lit(crate::value::bytes(lit)));
        }
        Ok(Macro { parts })
    }

    /// The text as it is when it holds no references.
    pub fn literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [Part::Lit(l)] => Some(l),
            _ => None,
        }
    }

    /// Expands with `lookup`; text without references is shared, not
    /// copied.
    pub fn expand_bytes(&self, lookup: impl FnMut(Var, Option<&str>, &mut Vec<u8>)) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [Part::Lit(l)] => l.clone(),
            _ => crate::value::bytes(self.expand(lookup)),
        }
    }

    /// Expands with `lookup` answering each reference (first value, or empty).
    pub fn expand(&self, mut lookup: impl FnMut(Var, Option<&str>, &mut Vec<u8>)) -> Vec<u8> {
        // Room for the usual result (a score, a name) in one allocation
        // rather than growing from nothing byte run by byte run.
        let mut out = Vec::with_capacity(32);
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Var(v, k) => lookup(*v, k.as_deref(), &mut out),
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn references_and_literals() {
        let m = Macro::parse("Total: %{TX.Anomaly_Score} at %{matched_var_name}%").unwrap();
        assert_eq!(
            m.parts,
            vec![
                Part::Lit(Bytes::from_static(b"Total: ")),
                Part::Var(Var::Tx, Some("anomaly_score".into())),
                Part::Lit(Bytes::from_static(b" at ")),
                Part::Var(Var::MatchedVarName, None),
                Part::Lit(Bytes::from_static(b"%")),
            ]
        );
        let out = m.expand(|v, k, out| {
            out.extend_from_slice(format!("<{}:{}>", v.name(), k.unwrap_or("")).as_bytes())
        });
        assert_eq!(out, b"Total: <TX:anomaly_score> at <MATCHED_VAR_NAME:>%");
        assert_eq!(
            Macro::parse("plain").unwrap().literal(),
            Some(&b"plain"[..])
        );
        assert!(Macro::parse("%{nope.x}").is_err());
    }
}
