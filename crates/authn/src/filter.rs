//! The `authenticate` filter: proves who is calling, or refuses.
//!
//! For each method the route accepts it looks for a credential, verifies
//! what it finds, and then applies the policy: any one (or all) methods
//! must pass; without any credential, the request is anonymous if the
//! route allows it. A credential that is presented and wrong is refused
//! even on a route that allows anonymous access. Responses use the
//! standard codes only and never say which part of a credential was wrong;
//! the security event says (with the credential masked).

use std::time::Instant;

use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use portcullis_config::runtime::{AuthMethod, AuthPolicy, Authentication};
use portcullis_core::{Context, Filter, Outcome, Principal, Problem, Verdict};
use portcullis_telemetry::events::{EventKind, EventLog, SecurityEvent};
use std::sync::Arc;

use crate::lockout::Source;
use crate::services::AuthServices;
use crate::verify::{self, Check, Identity};

pub struct Authenticate {
    policy: AuthPolicy,
    settings: Arc<Authentication>,
    services: Arc<AuthServices>,
    events: EventLog,
    /// What the policy's methods come down to: API keys, and bearer
    /// tokens from these issuers (one `Authorization: Bearer` credential
    /// however many issuers are accepted).
    slots: Vec<AuthMethod>,
    jwt_issuers: Vec<usize>,
    introspection: Vec<usize>,
    /// `WWW-Authenticate` challenges, one per slot.
    challenges: Vec<HeaderValue>,
}

impl std::fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticate")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

const REALM: &str = "portcullis";

fn challenge(method: AuthMethod, error: Option<&str>, scope: Option<&str>) -> HeaderValue {
    let scheme = match method {
        AuthMethod::ApiKey => "ApiKey",
        AuthMethod::Basic => "Basic",
        // No HTTP challenge asks for a certificate; this one names the need.
        AuthMethod::Mtls => "Mutual-TLS",
        AuthMethod::Jwt(_) | AuthMethod::Introspection(_) => "Bearer",
    };
    let mut v = format!("{scheme} realm=\"{REALM}\"");
    if method == AuthMethod::Basic {
        v.push_str(", charset=\"UTF-8\"");
    }
    if let Some(e) = error {
        v.push_str(&format!(", error=\"{e}\""));
    }
    if let Some(s) = scope {
        v.push_str(&format!(", scope=\"{s}\""));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("ApiKey"))
}

impl Authenticate {
    pub fn new(
        policy: AuthPolicy,
        settings: Arc<Authentication>,
        services: Arc<AuthServices>,
        events: EventLog,
    ) -> Self {
        let jwt_issuers: Vec<usize> = policy
            .methods
            .iter()
            .filter_map(|m| match m {
                AuthMethod::Jwt(i) => Some(*i),
                _ => None,
            })
            .collect();
        let introspection: Vec<usize> = policy
            .methods
            .iter()
            .filter_map(|m| match m {
                AuthMethod::Introspection(i) => Some(*i),
                _ => None,
            })
            .collect();
        let mut slots = Vec::new();
        if policy.methods.contains(&AuthMethod::ApiKey) {
            slots.push(AuthMethod::ApiKey);
        }
        if policy.methods.contains(&AuthMethod::Basic) {
            slots.push(AuthMethod::Basic);
        }
        if policy.methods.contains(&AuthMethod::Mtls) {
            slots.push(AuthMethod::Mtls);
        }
        // One bearer slot, however many issuers and endpoints.
        if let Some(first) = jwt_issuers.first() {
            slots.push(AuthMethod::Jwt(*first));
        } else if let Some(first) = introspection.first() {
            slots.push(AuthMethod::Introspection(*first));
        }
        let challenges = slots
            .iter()
            .filter(|m| **m != AuthMethod::Mtls)
            .map(|m| challenge(*m, None, None))
            .collect();
        Authenticate {
            policy,
            settings,
            services,
            events,
            slots,
            jwt_issuers,
            introspection,
            challenges,
        }
    }

    fn event(&self, ctx: &Context, kind: EventKind, code: &'static str, detail: Option<String>) {
        let mut ev = SecurityEvent::for_request(ctx, kind, code);
        ev.detail = detail;
        self.events.emit(&ev);
    }

    /// 401 asking for a credential (RFC 6750: no error code when none was
    /// sent).
    fn missing(&self, ctx: &mut Context) -> Verdict {
        ctx.decide("authenticate", Outcome::Deny, "credential-missing");
        self.event(ctx, EventKind::AuthFailed, "credential-missing", None);
        let mut p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
        )
        .with_detail("This route needs a credential.");
        for c in &self.challenges {
            p = p.with_header(WWW_AUTHENTICATE, c.clone());
        }
        Verdict::Deny(p)
    }

    /// 401 for a credential that did not verify; counts the failure.
    fn invalid(
        &self,
        ctx: &mut Context,
        method: AuthMethod,
        reason: &'static str,
        masked: String,
        credential_id: Option<String>,
    ) -> Verdict {
        ctx.decide("authenticate", Outcome::Deny, reason);
        self.event(
            ctx,
            EventKind::AuthFailed,
            reason,
            Some(format!("{} {masked}", method.as_str())),
        );
        if let Some(lockout) = &self.services.lockout {
            let now = Instant::now();
            let mut sources = vec![Source::client(ctx.client_addr)];
            sources.extend(credential_id.map(Source::Credential));
            for s in sources {
                if let Some(d) = lockout.fail(&s, now) {
                    let what = match &s {
                        Source::Client(ip) => format!("client {ip}"),
                        Source::Credential(id) => format!("credential {id}"),
                    };
                    self.event(
                        ctx,
                        EventKind::AuthLockedOut,
                        "locked-out",
                        Some(format!("{what} for {}s", d.as_secs())),
                    );
                }
            }
        }
        let p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid-credential",
            "Invalid credential",
        )
        .with_detail("The credential presented is not valid.")
        .with_header(
            WWW_AUTHENTICATE,
            challenge(method, Some("invalid_token"), None),
        );
        Verdict::Deny(p)
    }

    fn locked_out(&self, ctx: &mut Context, secs: u64, what: String) -> Verdict {
        ctx.decide("authenticate", Outcome::Deny, "locked-out");
        self.event(
            ctx,
            EventKind::AuthLockedOut,
            "locked-out-refused",
            Some(what),
        );
        let p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked-out",
            "Too many failed authentications",
        )
        .with_detail("Try again later.")
        .with_header(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        Verdict::Deny(p)
    }

    fn locked(&self, s: &Source) -> Option<u64> {
        let l = self.services.lockout.as_ref().filter(|l| l.ever_locked())?;
        let d = l.locked(s, Instant::now())?;
        // Rounded up, so a client that waits exactly that long gets in.
        Some(d.as_secs() + u64::from(d.subsec_nanos() > 0))
    }

    fn insufficient_scope(&self, ctx: &mut Context, method: AuthMethod) -> Verdict {
        ctx.decide("authenticate", Outcome::Deny, "insufficient-scope");
        let scope = self.policy.scopes.join(" ");
        self.event(
            ctx,
            EventKind::AuthFailed,
            "insufficient-scope",
            Some(format!("needs {scope}")),
        );
        Verdict::Deny(
            Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                "Insufficient scope",
            )
            .with_detail("The credential does not grant what this route requires.")
            .with_header(
                WWW_AUTHENTICATE,
                challenge(method, Some("insufficient_scope"), Some(&scope)),
            ),
        )
    }

    /// Removes the credentials of the route's methods from what goes
    /// upstream.
    fn strip_credentials(&self, req: &mut http::request::Parts) {
        for m in &self.slots {
            let scheme = match m {
                AuthMethod::ApiKey => {
                    req.headers.remove(&self.settings.key_header);
                    "apikey"
                }
                AuthMethod::Basic => "basic",
                AuthMethod::Jwt(_) | AuthMethod::Introspection(_) => "bearer",
                AuthMethod::Mtls => continue,
            };
            if verify::authorization_scheme(&req.headers, scheme) {
                req.headers.remove(AUTHORIZATION);
            }
        }
    }

    /// A bearer token: JWTs are verified locally when the route accepts an
    /// issuer, other tokens go to introspection.
    async fn bearer(&self, req: &http::request::Parts) -> Check {
        let token = match crate::jwt::bearer(&req.headers) {
            Ok(None) => return Check::Absent,
            Ok(Some(t)) => t,
            Err(()) => {
                return Check::Invalid {
                    reason: "token-ambiguous",
                    masked: "***".into(),
                    credential_id: None,
                };
            }
        };
        if !self.introspection.is_empty()
            && (self.jwt_issuers.is_empty() || !crate::jwt::looks_like_jwt(token))
        {
            return self
                .services
                .introspection
                .check(token, &self.introspection)
                .await;
        }
        self.services.jwt.check(token, &self.jwt_issuers).await
    }

    fn unavailable(&self, ctx: &mut Context, reason: &'static str) -> Verdict {
        ctx.decide("authenticate", Outcome::Error, reason);
        self.event(ctx, EventKind::AuthFailed, reason, None);
        Verdict::Deny(
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "auth-unavailable",
                "Authentication unavailable",
            )
            .with_detail("The credential could not be checked; try again shortly.")
            .with_header(RETRY_AFTER, HeaderValue::from_static("1")),
        )
    }

    fn set_identity(&self, req: &mut http::request::Parts, id: &Identity) {
        let h = &self.settings.identity;
        let mut set = |name: &http::HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                req.headers.insert(name.clone(), v);
            }
        };
        set(&h.consumer_id, &id.consumer.id);
        set(&h.consumer_name, &id.consumer.name);
        set(&h.method, id.method.as_str());
        if !id.consumer.groups.is_empty() {
            set(&h.groups, &id.consumer.groups.join(","));
        }
        if !id.scopes.is_empty() {
            set(&h.scopes, &id.scopes.join(" "));
        }
    }
}

impl Filter for Authenticate {
    fn name(&self) -> &'static str {
        "authenticate"
    }

    async fn request_headers(&self, ctx: &mut Context, req: &mut http::request::Parts) -> Verdict {
        let client = Source::client(ctx.client_addr);
        if let Some(secs) = self.locked(&client) {
            return self.locked_out(ctx, secs, format!("client {}", ctx.client_addr));
        }
        if self.policy.methods.contains(&AuthMethod::ApiKey)
            && verify::key_in_query(req.uri.query(), &self.settings.key_prefix)
        {
            ctx.decide("authenticate", Outcome::Deny, "credential-in-query");
            self.event(ctx, EventKind::AuthFailed, "credential-in-query", None);
            return Verdict::Deny(
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "credential-in-query",
                    "Credential in the query string",
                )
                .with_detail(format!(
                    "API keys are not accepted in the URL, where they end up in logs and histories; send the key in the {} header.",
                    self.settings.key_header
                )),
            );
        }

        let mut proven: Vec<Identity> = Vec::new();
        let mut absent = 0usize;
        let snapshot = self.services.snapshot.as_ref().map(|s| s.load());
        for &m in &self.slots {
            let check = match m {
                AuthMethod::ApiKey => verify::api_key(
                    &req.headers,
                    &self.settings,
                    snapshot.as_deref(),
                    &self.services.secret,
                ),
                AuthMethod::Basic => {
                    self.services
                        .basic
                        .check(&req.headers, snapshot.as_deref())
                        .await
                }
                AuthMethod::Mtls => verify::client_certificate(
                    ctx.tls.as_ref().and_then(|t| t.client_cert.as_deref()),
                    snapshot.as_deref(),
                ),
                AuthMethod::Jwt(_) | AuthMethod::Introspection(_) => self.bearer(req).await,
            };
            match check {
                Check::Absent => absent += 1,
                Check::Unavailable { reason } => return self.unavailable(ctx, reason),
                Check::Valid(id) => proven.push(id),
                Check::Invalid {
                    reason,
                    masked,
                    credential_id,
                } => {
                    if let Some(id) = &credential_id
                        && let Some(secs) = self.locked(&Source::Credential(id.clone()))
                    {
                        return self.locked_out(ctx, secs, format!("credential {masked}"));
                    }
                    return self.invalid(ctx, m, reason, masked, credential_id);
                }
            }
        }

        let first_method = self
            .policy
            .methods
            .first()
            .copied()
            .unwrap_or(AuthMethod::ApiKey);
        if proven.is_empty() {
            if self.policy.anonymous {
                ctx.decide("authenticate", Outcome::Allow, "anonymous");
                if !self.policy.forward_credential {
                    self.strip_credentials(req);
                }
                return Verdict::Continue;
            }
            return self.missing(ctx);
        }
        if self.policy.require_all && absent > 0 {
            return self.missing(ctx);
        }
        // Under `all`, the credentials must agree on who is calling.
        let Some(who) = proven.first() else {
            return self.missing(ctx);
        };
        if proven.iter().any(|p| p.consumer.id != who.consumer.id) {
            return self.invalid(
                ctx,
                first_method,
                "credentials-disagree",
                "several consumers".to_owned(),
                None,
            );
        }
        let scopes: Vec<String> = {
            let mut all: Vec<String> = Vec::new();
            for p in &proven {
                for s in &p.scopes {
                    if !all.contains(s) {
                        all.push(s.clone());
                    }
                }
            }
            all
        };
        if !self.policy.scopes.iter().all(|s| scopes.contains(s)) {
            ctx.principal = Some(principal(who, scopes));
            return self.insufficient_scope(ctx, who.method);
        }
        if !self.policy.forward_credential {
            self.strip_credentials(req);
        }
        let identity = Identity {
            consumer: who.consumer.clone(),
            method: who.method,
            scopes,
            expires_at: proven.iter().filter_map(|p| p.expires_at).min(),
        };
        self.set_identity(req, &identity);
        ctx.principal = Some(principal(&identity, identity.scopes.clone()));
        ctx.decide("authenticate", Outcome::Allow, identity.method.as_str());
        Verdict::Continue
    }
}

fn principal(id: &Identity, scopes: Vec<String>) -> Principal {
    Principal {
        id: id.consumer.id.clone(),
        method: id.method.as_str(),
        groups: id.consumer.groups.clone(),
        scopes,
    }
}
