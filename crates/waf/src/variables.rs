//! The variables a rule can inspect, and how a rule names them
//! (`ARGS:id`, `&TX:score`, `!REQUEST_COOKIES:/^_ga/`, `XML://@*`).

use regex::bytes::{Regex, RegexBuilder};

macro_rules! variables {
    ($( $var:ident = $name:literal, $collection:literal; )*) => {
        /// Every variable the engine knows. Collections hold named values;
        /// the others hold one value (or none).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Var { $( $var, )* }

        impl Var {
            pub fn from_name(name: &str) -> Option<Var> {
                $( if name.eq_ignore_ascii_case($name) { return Some(Var::$var); } )*
                None
            }

            pub fn name(self) -> &'static str {
                match self { $( Var::$var => $name, )* }
            }

            /// How many variables there are: `index` is below it.
            pub const COUNT: usize = [$( Var::$var, )*].len();

            /// The variable's number, for tables indexed by variable.
            #[inline]
            pub fn index(self) -> usize {
                self as usize
            }

            #[inline]
            pub fn is_collection(self) -> bool {
                match self { $( Var::$var => $collection, )* }
            }
        }
    };
}

variables! {
    Args = "ARGS", true;
    ArgsGet = "ARGS_GET", true;
    ArgsPost = "ARGS_POST", true;
    ArgsNames = "ARGS_NAMES", true;
    ArgsGetNames = "ARGS_GET_NAMES", true;
    ArgsPostNames = "ARGS_POST_NAMES", true;
    ArgsCombinedSize = "ARGS_COMBINED_SIZE", false;
    RequestHeaders = "REQUEST_HEADERS", true;
    RequestHeadersNames = "REQUEST_HEADERS_NAMES", true;
    RequestCookies = "REQUEST_COOKIES", true;
    RequestCookiesNames = "REQUEST_COOKIES_NAMES", true;
    ResponseHeaders = "RESPONSE_HEADERS", true;
    ResponseHeadersNames = "RESPONSE_HEADERS_NAMES", true;
    Files = "FILES", true;
    FilesNames = "FILES_NAMES", true;
    FilesSizes = "FILES_SIZES", true;
    FilesTmpNames = "FILES_TMPNAMES", true;
    FilesTmpContent = "FILES_TMP_CONTENT", true;
    FilesCombinedSize = "FILES_COMBINED_SIZE", false;
    MultipartPartHeaders = "MULTIPART_PART_HEADERS", true;
    Tx = "TX", true;
    Ip = "IP", true;
    Global = "GLOBAL", true;
    Session = "SESSION", true;
    User = "USER", true;
    Resource = "RESOURCE", true;
    Env = "ENV", true;
    Rule = "RULE", true;
    Xml = "XML", true;
    MatchedVars = "MATCHED_VARS", true;
    MatchedVarsNames = "MATCHED_VARS_NAMES", true;
    MatchedVar = "MATCHED_VAR", false;
    MatchedVarName = "MATCHED_VAR_NAME", false;
    RequestUri = "REQUEST_URI", false;
    RequestUriRaw = "REQUEST_URI_RAW", false;
    RequestFilename = "REQUEST_FILENAME", false;
    RequestBasename = "REQUEST_BASENAME", false;
    RequestLine = "REQUEST_LINE", false;
    RequestMethod = "REQUEST_METHOD", false;
    RequestProtocol = "REQUEST_PROTOCOL", false;
    QueryString = "QUERY_STRING", false;
    RequestBody = "REQUEST_BODY", false;
    RequestBodyLength = "REQUEST_BODY_LENGTH", false;
    ReqbodyProcessor = "REQBODY_PROCESSOR", false;
    ReqbodyError = "REQBODY_ERROR", false;
    ReqbodyErrorMsg = "REQBODY_ERROR_MSG", false;
    ReqbodyProcessorError = "REQBODY_PROCESSOR_ERROR", false;
    ReqbodyProcessorErrorMsg = "REQBODY_PROCESSOR_ERROR_MSG", false;
    InboundDataError = "INBOUND_DATA_ERROR", false;
    OutboundDataError = "OUTBOUND_DATA_ERROR", false;
    ResponseBody = "RESPONSE_BODY", false;
    ResponseStatus = "RESPONSE_STATUS", false;
    ResponseProtocol = "RESPONSE_PROTOCOL", false;
    ResponseContentType = "RESPONSE_CONTENT_TYPE", false;
    ResponseContentLength = "RESPONSE_CONTENT_LENGTH", false;
    StatusLine = "STATUS_LINE", false;
    RemoteAddr = "REMOTE_ADDR", false;
    RemotePort = "REMOTE_PORT", false;
    RemoteHost = "REMOTE_HOST", false;
    RemoteUser = "REMOTE_USER", false;
    AuthType = "AUTH_TYPE", false;
    ServerAddr = "SERVER_ADDR", false;
    ServerName = "SERVER_NAME", false;
    ServerPort = "SERVER_PORT", false;
    UniqueId = "UNIQUE_ID", false;
    FullRequest = "FULL_REQUEST", false;
    FullRequestLength = "FULL_REQUEST_LENGTH", false;
    Duration = "DURATION", false;
    HighestSeverity = "HIGHEST_SEVERITY", false;
    Time = "TIME", false;
    TimeEpoch = "TIME_EPOCH", false;
    TimeYear = "TIME_YEAR", false;
    TimeMon = "TIME_MON", false;
    TimeDay = "TIME_DAY", false;
    TimeHour = "TIME_HOUR", false;
    TimeMin = "TIME_MIN", false;
    TimeSec = "TIME_SEC", false;
    TimeWday = "TIME_WDAY", false;
    MultipartBoundaryQuoted = "MULTIPART_BOUNDARY_QUOTED", false;
    MultipartBoundaryWhitespace = "MULTIPART_BOUNDARY_WHITESPACE", false;
    MultipartDataAfter = "MULTIPART_DATA_AFTER", false;
    MultipartDataBefore = "MULTIPART_DATA_BEFORE", false;
    MultipartFileLimitExceeded = "MULTIPART_FILE_LIMIT_EXCEEDED", false;
    MultipartHeaderFolding = "MULTIPART_HEADER_FOLDING", false;
    MultipartInvalidHeaderFolding = "MULTIPART_INVALID_HEADER_FOLDING", false;
    MultipartInvalidPart = "MULTIPART_INVALID_PART", false;
    MultipartInvalidQuoting = "MULTIPART_INVALID_QUOTING", false;
    MultipartLfLine = "MULTIPART_LF_LINE", false;
    MultipartMissingSemicolon = "MULTIPART_MISSING_SEMICOLON", false;
    MultipartCrlfLfLines = "MULTIPART_CRLF_LF_LINES", false;
    MultipartStrictError = "MULTIPART_STRICT_ERROR", false;
    MultipartUnmatchedBoundary = "MULTIPART_UNMATCHED_BOUNDARY", false;
    MultipartFilename = "MULTIPART_FILENAME", false;
    MultipartName = "MULTIPART_NAME", false;
    UrlencodedError = "URLENCODED_ERROR", false;
}

impl Var {
    /// Whether the variable's values are request data that stays where it
    /// is for a whole phase, so their transformations can be cached by
    /// address.
    pub fn stays_in_place(self) -> bool {
        matches!(
            self,
            Var::Args
                | Var::ArgsGet
                | Var::ArgsPost
                | Var::ArgsNames
                | Var::ArgsGetNames
                | Var::ArgsPostNames
                | Var::RequestHeaders
                | Var::RequestHeadersNames
                | Var::RequestCookies
                | Var::RequestCookiesNames
                | Var::Files
                | Var::FilesNames
                | Var::MultipartPartHeaders
                | Var::Xml
                | Var::RequestFilename
                | Var::RequestBasename
                | Var::RequestUri
                | Var::RequestUriRaw
                | Var::QueryString
                | Var::RequestBody
        )
    }
}

/// Which members of a collection a target takes.
#[derive(Debug, Clone)]
pub enum Selector {
    All,
    /// One key (in lower case), compared without regard to ASCII case.
    Key(String),
    /// Keys matching a regular expression (`/.../`).
    Regex(Regex),
    /// Keys beginning with a text (in lower case), compared without regard
    /// to ASCII case: a key expression that is only `^` and plain text
    /// (`TX:/^header_name_920450_/`), which is then no expression to run.
    Prefix(String),
    /// Keys holding a text (in lower case) anywhere, compared without
    /// regard to ASCII case: a key expression of plain text, maybe ending
    /// in a character any number of times, which a match needs none of
    /// (`TX:/MULTIPART_HEADERS_CONTENT_TYPES_*/`).
    Contains(String),
    /// An XPath expression (only for `XML`).
    XPath(String),
}

impl Selector {
    pub fn matches_key(&self, key: &[u8]) -> bool {
        match self {
            Selector::All => true,
            Selector::Key(k) => k.as_bytes().eq_ignore_ascii_case(key),
            Selector::Regex(r) => r.is_match(key),
            Selector::Prefix(p) => key
                .get(..p.len())
                .is_some_and(|k| k.eq_ignore_ascii_case(p.as_bytes())),
            Selector::Contains(t) => contains(key, t.as_bytes()),
            Selector::XPath(_) => false,
        }
    }
}

/// Whether `text` (lower case) is in `key`, ignoring ASCII case. Out of
/// line: `matches_key` is asked some 500 times a request, nearly all for
/// one key, and stays small enough to be inlined. Only where the key
/// holds `text`'s first letter (in either case) is the rest compared.
#[inline(never)]
fn contains(key: &[u8], text: &[u8]) -> bool {
    let Some((&first, rest)) = text.split_first() else {
        return true;
    };
    let Some(starts) = key.len().checked_sub(rest.len()).and_then(|n| key.get(..n)) else {
        return false;
    };
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), starts).any(|i| {
        key.get(i + 1..i + text.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(rest))
    })
}

/// One entry of a rule's target list.
#[derive(Debug, Clone)]
pub struct Target {
    pub var: Var,
    pub selector: Selector,
    /// `&VAR`: the number of values rather than the values.
    pub count: bool,
    /// With one key selected, the name its value goes by (`TX:score`),
    /// made once here rather than for every match. (Only where the key is
    /// stored as selected, in TX and its kin: a header keeps its own.)
    pub key_name: Option<bytes::Bytes>,
    /// For one TX key, its number in the rule set's `TxNames` (given
    /// when the rule set is built).
    pub slot: Option<u32>,
}

impl Target {
    /// Whether the target is `XML://@*`, the attribute values.
    pub fn takes_attributes(&self) -> bool {
        matches!(&self.selector, Selector::XPath(x) if x == "//@*")
    }
}

/// A rule's whole target list: what it inspects and what it leaves out.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub include: Vec<Target>,
    /// `!VAR:key` entries: values of `var` whose key matches are skipped.
    pub exclude: Vec<(Var, Selector)>,
}

/// Parses `ARGS|!ARGS:foo|&TX:x|REQUEST_HEADERS:/^x-/`.
pub fn parse_targets(text: &str) -> Result<Targets, String> {
    let mut out = Targets::default();
    for part in split_targets(text) {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("empty variable in {text:?}"));
        }
        let (exclude, rest) = match part.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, part),
        };
        let (count, rest) = match rest.strip_prefix('&') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (name, key) = match rest.split_once(':') {
            Some((n, k)) => (n, Some(k)),
            None => (rest, None),
        };
        let var = Var::from_name(name).ok_or_else(|| format!("unknown variable {name:?}"))?;
        let selector = match key {
            None => Selector::All,
            Some(k) => parse_selector(var, k)?,
        };
        if !var.is_collection() && !matches!(selector, Selector::All) {
            return Err(format!(
                "{} is not a collection: no key can be selected",
                var.name()
            ));
        }
        if exclude {
            if matches!(selector, Selector::All) {
                return Err(format!("!{} must name the key to leave out", var.name()));
            }
            out.exclude.push((var, selector));
        } else {
            let key_name = match &selector {
                Selector::Key(k) => Some(bytes::Bytes::from(format!("{}:{k}", var.name()))),
                _ => None,
            };
            out.include.push(Target {
                var,
                selector,
                count,
                key_name,
                slot: None,
            });
        }
    }
    Ok(out)
}

/// Splits on `|`, except inside a `/regex/` selector or quotes.
fn split_targets(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_regex = false;
    let mut in_quote = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        match b {
            b'\\' if in_regex => i += 1,
            b'\'' => in_quote = !in_quote,
            b'/' if !in_quote && !in_regex && i > 0 && bytes.get(i - 1) == Some(&b':') => {
                // XML takes an XPath expression, not a regex.
                let name = text.get(start..i - 1).unwrap_or("");
                in_regex = !name
                    .trim_start_matches(['!', '&'])
                    .eq_ignore_ascii_case("XML");
            }
            b'/' if in_regex => in_regex = false,
            b'|' if !in_regex && !in_quote => {
                parts.push(text.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(text.get(start..).unwrap_or(""));
    parts
}

fn parse_selector(var: Var, key: &str) -> Result<Selector, String> {
    let key = key
        .strip_prefix('\'')
        .and_then(|k| k.strip_suffix('\''))
        .unwrap_or(key);
    if var == Var::Xml {
        return Ok(Selector::XPath(key.to_string()));
    }
    if let Some(pattern) = key.strip_prefix('/').and_then(|k| k.strip_suffix('/'))
        && !key.is_empty()
        && key.len() >= 2
    {
        let plain = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if let Some(text) = pattern.strip_prefix('^')
            && plain(text)
        {
            return Ok(Selector::Prefix(text.to_ascii_lowercase()));
        }
        // `x*` at the end may match nothing, so it decides nothing.
        let text = match pattern.strip_suffix('*') {
            Some(t) if t.len() > 1 && plain(t) => t.get(..t.len() - 1).unwrap_or(""),
            _ => pattern,
        };
        if plain(text) {
            return Ok(Selector::Contains(text.to_ascii_lowercase()));
        }
        let re = RegexBuilder::new(pattern)
            .case_insensitive(true)
            .unicode(false)
            .build()
            .map_err(|e| format!("bad key expression /{pattern}/: {e}"))?;
        return Ok(Selector::Regex(re));
    }
    // Keys compare without case; stored in lower case so collections kept
    // in lower case (TX) are looked up directly.
    Ok(Selector::Key(key.to_ascii_lowercase()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn targets_with_counts_exclusions_and_regex_keys() {
        let t = parse_targets(
            "REQUEST_COOKIES|!REQUEST_COOKIES:/__utm/|&ARGS|ARGS:Foo|XML://@*|TX:/^MSC_|x/|XML:/*",
        )
        .unwrap();
        assert_eq!(t.include.len(), 6);
        assert!(matches!(&t.include[5].selector, Selector::XPath(x) if x == "/*"));
        assert!(t.include[1].count);
        assert!(t.include[2].selector.matches_key(b"foo"));
        assert!(matches!(&t.include[3].selector, Selector::XPath(x) if x == "//@*"));
        assert!(t.include[4].selector.matches_key(b"msc_pcre_limits"));
        assert!(t.include[4].selector.matches_key(b"MSC_x"));
        assert!(!t.include[4].selector.matches_key(b"a_msc_"));
        assert_eq!(t.exclude.len(), 1);
        assert!(t.exclude[0].1.matches_key(b"__utma"));
    }

    #[test]
    fn a_key_expression_of_plain_text_after_a_caret_is_a_prefix() {
        let t = parse_targets("TX:/^Header_Name_920450_/|TX:/^a.c/|TX:/^ab$/").unwrap();
        let sel = |i: usize| &t.include[i].selector;
        assert!(matches!(sel(0), Selector::Prefix(p) if p == "header_name_920450_"));
        assert!(sel(0).matches_key(b"header_name_920450_x-forwarded-for"));
        assert!(sel(0).matches_key(b"HEADER_NAME_920450_"));
        assert!(!sel(0).matches_key(b"header_name_920450"));
        assert!(!sel(0).matches_key(b"x_header_name_920450_a"));
        // Anything more than plain text stays an expression.
        assert!(matches!(sel(1), Selector::Regex(_)));
        assert!(sel(1).matches_key(b"abc") && sel(1).matches_key(b"axcd"));
        assert!(matches!(sel(2), Selector::Regex(_)));
        assert!(sel(2).matches_key(b"ab") && !sel(2).matches_key(b"abc"));
    }

    /// Plain text, maybe with a repeated last character, is looked for
    /// anywhere in the key, as the expression would find it.
    #[test]
    fn a_key_expression_of_plain_text_is_searched_for() {
        let text = "TX:/MULTIPART_HEADERS_CONTENT_TYPES_*/|TX:/b-c/|TX:/ab*c/|TX:/x_*_*/";
        let t = parse_targets(text).unwrap();
        let sel = |i: usize| &t.include[i].selector;
        assert!(matches!(sel(0), Selector::Contains(p) if p == "multipart_headers_content_types"));
        assert!(matches!(sel(1), Selector::Contains(p) if p == "b-c"));
        assert!(matches!(sel(2), Selector::Regex(_)));
        assert!(matches!(sel(3), Selector::Regex(_)));
        let patterns = ["MULTIPART_HEADERS_CONTENT_TYPES_*", "b-c"];
        // A first letter met where the rest does not follow, then where
        // it does; and the text cut short at the key's end.
        let keys: [&[u8]; 9] = [
            b"b-b-C",
            b"xB-",
            b"multipart_headers_content_types_x-file",
            b"MULTIPART_HEADERS_CONTENT_TYPES",
            b"x_multipart_headers_content_types",
            b"multipart_headers_content_type",
            b"ab-cd",
            b"B-C",
            b"",
        ];
        for (i, p) in patterns.iter().enumerate() {
            let re = RegexBuilder::new(p).case_insensitive(true).build().unwrap();
            for k in keys {
                assert_eq!(sel(i).matches_key(k), re.is_match(k), "{p} on {k:?}");
            }
        }
    }

    #[test]
    fn unknown_variables_and_keys_on_scalars_are_refused() {
        assert!(
            parse_targets("ARGZ")
                .unwrap_err()
                .contains("unknown variable")
        );
        assert!(
            parse_targets("REQUEST_URI:x")
                .unwrap_err()
                .contains("not a collection")
        );
        assert!(parse_targets("!ARGS").is_err());
        assert!(parse_targets("ARGS|").is_err());
    }
}
