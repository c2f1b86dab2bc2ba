//! `compile`: from a checked file to the runtime [`Config`], collecting every
//! semantic error (unknown references, bad addresses, unreadable
//! certificates, overlapping routes, ...) with its location.

pub mod auth;
mod filters;
mod jwt;
mod listener;
mod route;
pub mod tls;
mod upstream;
mod waf;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderName;
use portcullis_router::NormalizeOptions;

use crate::diag::{ConfigError, Diagnostic, Diagnostics};
use crate::file::{ConfigFile, LogTarget};
use crate::runtime::{Admin, Config, FilterSpec, Logging, Runtime};
use crate::{validate, yaml};

/// The file format version this build reads.
pub const VERSION: u32 = 1;

/// Header names masked in logs whatever the configuration says.
pub const BUILTIN_MASKED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

/// Query parameters masked in logged paths whatever the configuration says.
pub const BUILTIN_MASKED_PARAMS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "api-key",
    "code",
    "id_token",
    "key",
    "password",
    "refresh_token",
    "secret",
    "signature",
    "sig",
    "token",
];

/// Loads, checks and compiles a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name: Arc<str> = path.display().to_string().into();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        diagnostics: vec![Diagnostic {
            file: name.clone(),
            pos: None,
            width: 1,
            pointer: String::new(),
            message: format!("cannot read the file: {e}"),
            hint: None,
            line_text: None,
        }],
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut config = load_str(&src, name, &base)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// Compiles configuration text. `file` names it in errors; relative paths
/// in it (certificates, CA files) are resolved against `base_dir`.
pub fn load_str(src: &str, file: Arc<str>, base_dir: &Path) -> Result<Config, ConfigError> {
    let doc = yaml::parse(src).map_err(|e| ConfigError {
        diagnostics: vec![Diagnostic {
            file: file.clone(),
            pos: Some(e.pos),
            width: 1,
            pointer: String::new(),
            message: format!("invalid YAML: {}", e.message),
            hint: None,
            line_text: src
                .lines()
                .nth(e.pos.line.saturating_sub(1))
                .map(str::to_owned),
        }],
    })?;
    let mut d = Diagnostics::new(file, src, &doc);
    if !doc.value.is_object() {
        d.error(
            "",
            "the configuration must be a mapping with \"version\" and \"listeners\"",
        );
        return Err(d.fail());
    }
    validate::check(&doc.value, &mut d);
    if !d.is_empty() {
        return Err(d.fail());
    }
    let parsed: ConfigFile = match serde_json::from_value(doc.value.clone()) {
        Ok(c) => c,
        Err(e) => {
            // The schema check passed, so this is a value serde reads more
            // strictly (e.g. a number out of range); report it file-wide.
            d.error("", e.to_string());
            return Err(d.fail());
        }
    };
    let mut cx = Cx {
        d,
        base: base_dir,
        waf_rules: Default::default(),
    };
    let config = compile(parsed, &mut cx);
    cx.d.finish()?;
    Ok(config)
}

/// Compilation state: the diagnostics and where relative paths start.
pub(crate) struct Cx<'a> {
    pub(crate) d: Diagnostics<'a>,
    pub(crate) base: &'a Path,
    /// WAF rule sets already built, by their setup text: routes configured
    /// alike share one.
    pub(crate) waf_rules:
        std::collections::HashMap<String, std::sync::Arc<portcullis_waf::RuleSet>>,
}

impl Cx<'_> {
    pub(crate) fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// Names of listeners, upstreams and routes: short, safe in logs and labels.
pub(crate) fn check_name(cx: &mut Cx<'_>, pointer: &str, what: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        cx.d.error_hint(
            pointer,
            format!("\"{name}\" is not a valid {what} name"),
            "use 1 to 64 letters, digits, '-', '_' or '.'",
        );
    }
}

fn compile(file: ConfigFile, cx: &mut Cx<'_>) -> Config {
    if file.version != VERSION {
        cx.d.error_hint(
            "/version",
            format!("unsupported version {}", file.version),
            format!("this build reads version {VERSION}"),
        );
    }
    let runtime = Runtime {
        workers: file.runtime.workers,
        shutdown_timeout: file
            .runtime
            .shutdown_timeout
            .map_or(std::time::Duration::from_secs(30), |d| d.0),
    };
    if runtime.workers == Some(0) {
        cx.d.error("/runtime/workers", "workers must be at least 1");
    }

    let admin = if file.admin.enabled {
        match file.admin.address.parse::<SocketAddr>() {
            Ok(a) if !a.ip().is_loopback() && !file.admin.allow_remote => {
                cx.d.error_hint(
                    "/admin/address",
                    format!("the admin listener \"{a}\" is not on a loopback address"),
                    "bind it to 127.0.0.1 or ::1, or set allow_remote: true",
                );
                None
            }
            Ok(address) => Some(Admin {
                address,
                token_sha256: file
                    .admin
                    .token_hash
                    .as_deref()
                    .and_then(|h| token_hash(h, cx)),
            }),
            Err(_) => {
                cx.d.error_hint(
                    "/admin/address",
                    format!("\"{}\" is not a socket address", file.admin.address),
                    "write it like \"127.0.0.1:9901\"",
                );
                None
            }
        }
    } else {
        None
    };

    let admin_tls = match (&admin, &file.admin.tls) {
        // HTTP/1.1 only: the admin listener does not speak h2.
        (Some(_), Some(t)) => listener::compile_tls(t, "/admin/tls", cx).map(|mut t| {
            t.http2 = false;
            t
        }),
        _ => None,
    };
    let logging = compile_logging(&file.logging, cx);
    let upstreams = upstream::compile_all(&file.upstreams, cx);
    let issuers = jwt::issuers(&file.authentication.jwt, cx);
    let introspection = jwt::introspection(&file.authentication.introspection, cx);
    let jwt_names: Vec<&str> = file
        .authentication
        .jwt
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let introspection_names: Vec<&str> = file
        .authentication
        .introspection
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    let (routes, default_security_headers) = route::compile_all(
        &file.routes,
        &file.defaults,
        auth::Verifiers {
            jwt: &jwt_names,
            introspection: &introspection_names,
        },
        &file.listeners,
        &file
            .upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        &upstreams,
        cx,
    );
    let store_needed = routes.iter().any(|r| {
        r.route.filters.iter().any(|f| match f {
            FilterSpec::Authenticate(p) => p.methods.iter().any(|m| m.uses_store()),
            _ => false,
        })
    });
    let authentication = auth::authentication(
        &file.authentication,
        store_needed,
        issuers,
        introspection,
        cx,
    );
    let listeners = listener::compile_all(&file.listeners, &routes, cx);
    if let Some(a) = &admin
        && let Some(i) = listeners
            .iter()
            .position(|l| l.address == a.address && a.address.port() != 0)
    {
        cx.d.error(
            &format!("/listeners/{i}/address"),
            format!("the address {} is also the admin address", a.address),
        );
    }
    Config {
        source: None,
        runtime,
        admin,
        admin_tls,
        logging,
        authentication,
        listeners,
        upstreams,
        routes: routes.into_iter().map(|r| r.route).collect(),
        path_options: NormalizeOptions {
            reject_double_encoding: file.defaults.reject_double_encoding,
        },
        default_security_headers,
    }
}

/// "sha256:<64 hex digits>".
fn token_hash(text: &str, cx: &mut Cx<'_>) -> Option<[u8; 32]> {
    let parsed = text.strip_prefix("sha256:").and_then(|hex| {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let s = std::str::from_utf8(pair).ok()?;
            *slot = u8::from_str_radix(s, 16).ok()?;
        }
        Some(out)
    });
    if parsed.is_none() {
        cx.d.error_hint(
            "/admin/token_hash",
            "the token hash is not \"sha256:<64 hex digits>\"",
            "generate a token and its hash with `portcullis admin-token`",
        );
    }
    parsed
}

fn compile_logging(file: &crate::file::LoggingFile, cx: &mut Cx<'_>) -> Logging {
    let mut header_list = |list: &[String], key: &str| -> Vec<HeaderName> {
        list.iter()
            .enumerate()
            .filter_map(|(i, h)| match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => Some(n),
                Err(_) => {
                    cx.d.error(
                        &format!("/logging/{key}/{i}"),
                        format!("\"{h}\" is not a header name"),
                    );
                    None
                }
            })
            .collect()
    };
    let log_headers = header_list(&file.log_headers, "log_headers");
    let mut mask_headers = header_list(&file.mask_headers, "mask_headers");
    for h in BUILTIN_MASKED_HEADERS {
        let name = HeaderName::from_static(h);
        if !mask_headers.contains(&name) {
            mask_headers.push(name);
        }
    }
    let mut mask_query_params: Vec<String> = BUILTIN_MASKED_PARAMS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for p in &file.mask_query_params {
        let p = p.to_ascii_lowercase();
        if !mask_query_params.contains(&p) {
            mask_query_params.push(p);
        }
    }
    if let LogTarget::File(p) = &file.access_log
        && p.as_os_str().is_empty()
    {
        cx.d.error(
            "/logging/access_log/file",
            "the access log file path is empty",
        );
    }
    let access_log = match &file.access_log {
        LogTarget::File(p) => LogTarget::File(cx.resolve(p)),
        other => other.clone(),
    };
    Logging {
        access_log,
        log_headers,
        mask_headers,
        mask_query_params,
    }
}

#[cfg(test)]
mod tests;
