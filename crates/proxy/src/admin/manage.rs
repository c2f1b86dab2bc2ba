//! The management API on the admin listener: consumers and API keys, the
//! same operations as `portcullis consumers` and `portcullis keys`.
//!
//! Every call needs `Authorization: Bearer <token>`, checked against the
//! configured SHA-256 of the token; without a configured hash the API is
//! off. Changes are applied to the gateway's snapshot before the response
//! goes out, so a revoked key is refused from the next request on.
//!
//! - `GET /v1/consumers`, `POST /v1/consumers` `{name, groups?, metadata?}`
//! - `GET|DELETE /v1/consumers/{id or name}`
//! - `GET /v1/keys[?consumer=...]`
//! - `POST /v1/keys` `{consumer, label?, scopes?, expires_in?}` (201, the key
//!   shown once)
//! - `POST /v1/keys/{id}/rotate` `{overlap?}`, `POST /v1/keys/{id}/revoke`
//! - `PUT /v1/basic/{username}` `{consumer, password}`, `DELETE /v1/basic/{username}`

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use portcullis_authn::manage::{self, KeyRequest, ManageError};
use portcullis_authn::{AuthServices, admin_token};
use portcullis_config::file::DurationStr;
use portcullis_core::{Problem, RequestId};
use portcullis_store::{Store, StoreError};
use serde::Deserialize;

use super::text;
use crate::state::Shared;

const MAX_BODY: usize = 64 * 1024;

type Reply = Response<Full<Bytes>>;

fn problem(p: Problem) -> Reply {
    let (parts, body) = p.to_response(&RequestId::generate()).into_parts();
    Response::from_parts(parts, Full::new(body))
}

fn json(status: StatusCode, v: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(v) {
        Ok(b) => text(status, "application/json", b),
        Err(_) => problem(Problem::internal()),
    }
}

fn bad_request(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-request", "Bad request").with_detail(detail)
}

fn failed(e: ManageError) -> Reply {
    let (status, code, title) = match &e {
        ManageError::Store(StoreError::NoSuchConsumer(_) | StoreError::NoSuchKey(_)) => {
            (StatusCode::NOT_FOUND, "not-found", "Not found")
        }
        ManageError::Store(StoreError::DuplicateConsumer(_) | StoreError::DuplicateUsername(_)) => {
            (StatusCode::CONFLICT, "conflict", "Already exists")
        }
        ManageError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
        _ => {
            tracing::error!(error = %e, "management API: store failure");
            return problem(Problem::internal());
        }
    };
    problem(Problem::new(status, code, title).with_detail(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewConsumer {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    consumer: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// Like "90d".
    #[serde(default)]
    expires_in: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    consumer: String,
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default)]
    overlap: Option<String>,
}

fn seconds(text: &str) -> Result<i64, ManageError> {
    DurationStr::parse(text)
        .map(|d| i64::try_from(d.0.as_secs()).unwrap_or(i64::MAX))
        .ok_or_else(|| ManageError::Invalid(format!("\"{text}\" is not a duration (like 1h, 90d)")))
}

/// A parsed call, run on a blocking thread (SQLite).
enum Call {
    ListConsumers,
    CreateConsumer(NewConsumer),
    GetConsumer(String),
    DeleteConsumer(String),
    ListKeys(Option<String>),
    CreateKey(NewKey),
    RotateKey(String, Rotate),
    RevokeKey(String),
    SetPassword(String, SetPassword),
    DeleteBasic(String),
}

fn parse_body<T: serde::de::DeserializeOwned + Default>(b: &[u8]) -> Result<T, Problem> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(b).map_err(|e| bad_request(format!("the JSON body is not valid: {e}")))
}

fn parse_required<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(b).map_err(|e| bad_request(format!("the JSON body is not valid: {e}")))
}

fn route(method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> Result<Call, Problem> {
    let segs: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    let not_found = Problem::route_not_found;
    let allow = |m: &'static str| Problem::method_not_allowed(HeaderValue::from_static(m));
    Ok(match (segs.as_slice(), method) {
        (["consumers"], &Method::GET) => Call::ListConsumers,
        (["consumers"], &Method::POST) => Call::CreateConsumer(parse_required(body)?),
        (["consumers"], _) => return Err(allow("GET, POST")),
        (["consumers", c], &Method::GET) => Call::GetConsumer((*c).to_owned()),
        (["consumers", c], &Method::DELETE) => Call::DeleteConsumer((*c).to_owned()),
        (["consumers", _], _) => return Err(allow("GET, DELETE")),
        (["keys"], &Method::GET) => Call::ListKeys(query.and_then(|q| {
            q.split('&')
                .find_map(|p| p.strip_prefix("consumer="))
                .map(str::to_owned)
        })),
        (["keys"], &Method::POST) => Call::CreateKey(parse_required(body)?),
        (["keys"], _) => return Err(allow("GET, POST")),
        (["keys", id, "rotate"], &Method::POST) => {
            Call::RotateKey((*id).to_owned(), parse_body(body)?)
        }
        (["keys", id, "revoke"], &Method::POST) => Call::RevokeKey((*id).to_owned()),
        (["keys", _, "rotate" | "revoke"], _) => return Err(allow("POST")),
        (["basic", u], &Method::PUT) => Call::SetPassword((*u).to_owned(), parse_required(body)?),
        (["basic", u], &Method::DELETE) => Call::DeleteBasic((*u).to_owned()),
        (["basic", _], _) => return Err(allow("PUT, DELETE")),
        _ => return Err(not_found()),
    })
}

fn run(
    call: Call,
    store: &dyn Store,
    auth: &AuthServices,
    prefix: &str,
) -> Result<Reply, ManageError> {
    Ok(match call {
        Call::ListConsumers => json(StatusCode::OK, &store.consumers()?),
        Call::CreateConsumer(c) => json(
            StatusCode::CREATED,
            &manage::create_consumer(store, &c.name, &c.groups, &c.metadata)?,
        ),
        Call::GetConsumer(c) => {
            let consumer = store.consumer(&c)?;
            let keys = manage::list_keys(store, Some(&consumer.id))?;
            json(
                StatusCode::OK,
                &serde_json::json!({"consumer": consumer, "keys": keys}),
            )
        }
        Call::DeleteConsumer(c) => {
            store.delete_consumer(&c)?;
            text(StatusCode::NO_CONTENT, "application/json", Bytes::new())
        }
        Call::ListKeys(c) => json(StatusCode::OK, &manage::list_keys(store, c.as_deref())?),
        Call::CreateKey(k) => {
            let req = KeyRequest {
                label: k.label,
                scopes: k.scopes,
                expires_in: k.expires_in.as_deref().map(seconds).transpose()?,
            };
            json(
                StatusCode::CREATED,
                &manage::create_key(store, &auth.secret, prefix, &k.consumer, &req)?,
            )
        }
        Call::RotateKey(id, r) => {
            let overlap = r.overlap.as_deref().map(seconds).transpose()?.unwrap_or(0);
            json(
                StatusCode::CREATED,
                &manage::rotate_key(store, &auth.secret, prefix, &id, overlap)?,
            )
        }
        Call::RevokeKey(id) => json(StatusCode::OK, &manage::revoke_key(store, &id)?),
        Call::SetPassword(user, p) => {
            manage::set_password(store, &p.consumer, &user, &p.password)?;
            text(StatusCode::NO_CONTENT, "application/json", Bytes::new())
        }
        Call::DeleteBasic(user) => {
            store.delete_basic(&user)?;
            text(StatusCode::NO_CONTENT, "application/json", Bytes::new())
        }
    })
}

/// `client_cert`: the connection presented a certificate the admin
/// listener's client CA verified, which authorizes the call by itself.
pub async fn handle(req: Request<Incoming>, shared: &Shared, client_cert: bool) -> Reply {
    let generation = shared.current.load_full();
    let token = generation
        .config
        .admin
        .as_ref()
        .and_then(|a| a.token_sha256);
    let certificates = generation
        .config
        .admin_tls
        .as_ref()
        .is_some_and(|t| t.client_auth.is_some());
    if token.is_none() && !certificates {
        return problem(
            Problem::new(
                StatusCode::NOT_FOUND,
                "management-off",
                "Management API is off",
            )
            .with_detail("Set admin.token_hash to turn it on (see `portcullis admin-token`)."),
        );
    }
    let authz = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let authorized =
        client_cert || token.is_some_and(|expected| admin_token::verify(authz, &expected));
    if !authorized {
        return problem(
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
            )
            .with_header(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portcullis-admin\""),
            ),
        );
    }
    let Some(snapshot) = generation.auth.snapshot.clone() else {
        return problem(
            Problem::new(StatusCode::NOT_FOUND, "no-store", "No credential store").with_detail(
                "No route accepts stored credentials and authentication.store is not set.",
            ),
        );
    };
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return problem(Problem::payload_too_large(MAX_BODY as u64)),
    };
    let call = match route(&parts.method, parts.uri.path(), parts.uri.query(), &body) {
        Ok(c) => c,
        Err(p) => return problem(p),
    };
    let auth: Arc<AuthServices> = generation.auth.clone();
    let prefix = generation.authentication.key_prefix.clone();
    let writes = !matches!(
        call,
        Call::ListConsumers | Call::GetConsumer(_) | Call::ListKeys(_)
    );
    let outcome = tokio::task::spawn_blocking(move || {
        let store = snapshot.store().clone();
        let result = run(call, store.as_ref(), &auth, &prefix);
        // Applied before answering: the next request sees the change.
        if writes && let Err(e) = snapshot.reload() {
            tracing::error!(error = %e, "cannot rebuild the credential snapshot");
        }
        result
    })
    .await;
    match outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => failed(e),
        Err(_) => problem(Problem::internal()),
    }
}
