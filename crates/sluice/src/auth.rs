//! Who is calling the API: bearer tokens checked against the catalog on every request (so a
//! revocation takes effect at once), and the role each group of routes requires.
//!
//! The daemon also makes a *local* admin token at start, kept only in memory and in
//! `data/daemon.json` (mode 0600): the command line on the same machine, with read access to
//! the data directory, may do anything anyway; this lets it ask the daemon without a token
//! of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_core::ReadAccess;
use sluice_pipeline::Engine;
use sluice_store::Role;

use crate::problem::Problem;

/// The caller of one request, as handlers see it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who, for the audit log: the token's user, `local` or `anonymous`.
    pub principal: String,
    pub role: Role,
    pub access: ReadAccess,
}

/// What the middleware needs: the engine (its catalog holds the tokens), the daemon's local
/// token, whether anonymous search is allowed, and the requests each token has in flight.
#[derive(Clone)]
pub struct Gate {
    pub engine: Arc<Engine>,
    pub local_token: Arc<String>,
    pub anonymous_search: bool,
    pub in_flight: Arc<InFlight>,
}

/// Requests in flight per token (the local token and anonymous callers count as one each):
/// one client cannot hold every connection and thread with its own requests.
pub struct InFlight {
    limit: usize,
    by_token: Mutex<HashMap<String, usize>>,
}

impl InFlight {
    pub fn new(limit: usize) -> Self {
        Self { limit, by_token: Mutex::new(HashMap::new()) }
    }

    /// A slot for one more request of `token`, or `None` when it has `limit` already.
    fn enter(self: &Arc<Self>, token: &str) -> Option<Slot> {
        let mut by_token = self.by_token.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = by_token.entry(token.to_owned()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot { in_flight: self.clone(), token: token.to_owned() })
    }
}

/// Held while a request runs.
struct Slot {
    in_flight: Arc<InFlight>,
    token: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_token = self.in_flight.by_token.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = by_token.get_mut(&self.token) {
            *count -= 1;
            if *count == 0 {
                by_token.remove(&self.token);
            }
        }
    }
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
    let (caller, token_key) = match identify(&required, request.headers()).await {
        Ok(identified) => identified,
        Err(response) => return response,
    };
    if caller.role < required.role {
        let message = format!("this needs the {} role; the token has {}", required.role.as_str(), caller.role.as_str());
        return Problem::new(StatusCode::FORBIDDEN, message).into_response();
    }
    let Some(_slot) = required.gate.in_flight.enter(&token_key) else {
        let message = format!(
            "this token has {} requests in flight already (server.max_requests_per_token)",
            required.gate.in_flight.limit
        );
        return Problem::new(StatusCode::TOO_MANY_REQUESTS, message).retry_after(1).into_response();
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller, and the key its in-flight requests are counted under.
async fn identify(required: &Required, headers: &HeaderMap) -> Result<(Caller, String), Response> {
    let presented = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let Some(presented) = presented else {
        if required.anonymous && required.gate.anonymous_search {
            let caller = Caller { principal: "anonymous".into(), role: Role::Reader, access: ReadAccess::anonymous() };
            return Ok((caller, "anonymous".into()));
        }
        return Err(unauthorized("missing `Authorization: Bearer <token>` (create one with `sluice token create`)"));
    };
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let scheme = presented.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("bearer "));
    let Some(token) = scheme.map(|scheme| presented[scheme.len()..].trim()) else {
        return Err(unauthorized("the Authorization header must be `Bearer <token>`"));
    };
    if constant_time_eq(token, &required.gate.local_token) {
        return Ok((
            Caller { principal: "local".into(), role: Role::Admin, access: ReadAccess::Unrestricted },
            "local".into(),
        ));
    }
    let engine = required.gate.engine.clone();
    let token = token.to_owned();
    let found = tokio::task::spawn_blocking(move || engine.store().catalog().authenticate(&token))
        .await
        .map_err(|err| Problem::internal(err).into_response())?
        .map_err(|err| Problem::internal(err).into_response())?;
    match found {
        Some(info) => {
            let caller =
                Caller { principal: info.user.clone(), role: info.role, access: ReadAccess::of(&info.principal()) };
            Ok((caller, format!("token:{}", info.id)))
        }
        None => Err(unauthorized("unknown or revoked token")),
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

fn unauthorized(message: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
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
