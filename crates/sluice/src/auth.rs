//! Who is calling the API: bearer tokens checked against the catalog on every request (so a
//! revocation takes effect at once), and the role each group of routes requires.
//!
//! The daemon also makes a *local* admin token at start, kept only in memory and in
//! `data/daemon.json` (mode 0600): the command line on the same machine, with read access to
//! the data directory, may do anything anyway; this lets it ask the daemon without a token
//! of its own.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_core::ReadAccess;
use sluice_pipeline::Engine;
use sluice_store::Role;

/// The caller of one request, as handlers see it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who, for the audit log: the token's user, `local` or `anonymous`.
    pub principal: String,
    pub role: Role,
    pub access: ReadAccess,
}

/// What the middleware needs: the engine (its catalog holds the tokens), the daemon's local
/// token, and whether anonymous search is allowed.
#[derive(Clone)]
pub struct Gate {
    pub engine: Arc<Engine>,
    pub local_token: Arc<String>,
    pub anonymous_search: bool,
}

/// A route group's requirement.
#[derive(Clone)]
pub struct Required {
    pub gate: Gate,
    pub role: Role,
    /// Requests without a token get the anonymous caller (public documents only).
    pub anonymous: bool,
}

pub async fn require(State(required): State<Required>, mut request: Request, next: Next) -> Response {
    let caller = match identify(&required, request.headers()).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    if caller.role < required.role {
        let message = format!("this needs the {} role; the token has {}", required.role.as_str(), caller.role.as_str());
        return (StatusCode::FORBIDDEN, axum::Json(json!({ "error": message }))).into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

async fn identify(required: &Required, headers: &HeaderMap) -> Result<Caller, Response> {
    let presented = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let Some(presented) = presented else {
        if required.anonymous && required.gate.anonymous_search {
            return Ok(Caller { principal: "anonymous".into(), role: Role::Reader, access: ReadAccess::anonymous() });
        }
        return Err(unauthorized("missing `Authorization: Bearer <token>` (create one with `sluice token create`)"));
    };
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let scheme = presented.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("bearer "));
    let Some(token) = scheme.map(|scheme| presented[scheme.len()..].trim()) else {
        return Err(unauthorized("the Authorization header must be `Bearer <token>`"));
    };
    if constant_time_eq(token, &required.gate.local_token) {
        return Ok(Caller { principal: "local".into(), role: Role::Admin, access: ReadAccess::Unrestricted });
    }
    let engine = required.gate.engine.clone();
    let token = token.to_owned();
    let found = tokio::task::spawn_blocking(move || engine.store().catalog().authenticate(&token))
        .await
        .map_err(|err| server_error(&err.to_string()))?
        .map_err(|err| server_error(&err.to_string()))?;
    match found {
        Some(info) => {
            Ok(Caller { principal: info.user.clone(), role: info.role, access: ReadAccess::of(&info.principal()) })
        }
        None => Err(unauthorized("unknown or revoked token")),
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

fn unauthorized(message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], axum::Json(json!({ "error": message })))
        .into_response()
}

fn server_error(message: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "error": message }))).into_response()
}

/// A fresh random local token.
pub fn new_local_token() -> anyhow::Result<String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|err| anyhow::anyhow!("no randomness for the local token: {err}"))?;
    Ok(format!("sluice_local_{}", hex::encode(secret)))
}

/// Who runs this command line, for the audit log of what it does without the daemon.
pub fn local_principal() -> String {
    let uid = uzers::get_current_uid();
    let name = uzers::get_user_by_uid(uid).map_or_else(|| uid.to_string(), |user| user.name().to_string_lossy().into());
    format!("local:{name}")
}
