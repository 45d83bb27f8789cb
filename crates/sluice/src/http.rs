//! The HTTP API (axum): health, search, versions, quarantine, audit, tokens, metrics.
//!
//! Every `/v1` route needs a bearer token whose role is at least its group's (`auth.rs`);
//! `/healthz` and `/metrics` (which carry no document content) do not.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_core::{ChunkId, Version};
use sluice_pipeline::{Engine, PipelineError};
use sluice_store::{ExportFormat, Role, SearchMode};
use tokio::sync::mpsc;

use crate::auth::{self, Caller, Gate, Required};
use crate::metrics::{Metrics, ModeLabels};

const MAX_K: usize = 1000;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// Quarantined paths to process again, for the scheduler (which serialises them with runs).
    pub retries: mpsc::Sender<String>,
    pub gate: Gate,
}

pub fn router(state: AppState) -> Router {
    let requiring = |role: Role, anonymous: bool| {
        let required = Required { gate: state.gate.clone(), role, anonymous };
        middleware::from_fn_with_state(required, auth::require)
    };
    let search_routes = Router::new().route("/v1/search", get(search)).layer(requiring(Role::Reader, true));
    let reader = Router::new()
        .route("/v1/versions", get(versions))
        .route("/v1/versions/{version}", get(version_info))
        .route("/v1/chunks/{chunk_id}/lineage", get(lineage))
        .layer(requiring(Role::Reader, false));
    let operator = Router::new()
        .route("/v1/versions/{version}/promote", post(promote))
        .route("/v1/versions/{version}/pin", post(pin).delete(unpin))
        .route("/v1/rollback", post(rollback))
        .route("/v1/gc", post(collect_garbage))
        .route("/v1/verify", get(verify))
        .route("/v1/diff", get(diff))
        .route("/v1/quarantine", get(quarantine))
        .route("/v1/quarantine/retry", post(retry_quarantined))
        .layer(requiring(Role::Operator, false));
    let admin = Router::new()
        .route("/v1/audit", get(audit))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/export", get(export))
        .layer(requiring(Role::Admin, false));
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .merge(search_routes)
        .merge(reader)
        .merge(operator)
        .merge(admin)
        .with_state(state)
}

/// An error as the API reports it: a status and `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<PipelineError> for ApiError {
    fn from(err: PipelineError) -> Self {
        match err {
            PipelineError::Invalid(message) => ApiError(StatusCode::NOT_FOUND, message),
            // A request naming a version that cannot take it (expired, pending, none earlier).
            PipelineError::Store(sluice_store::StoreError::Invalid(message)) => {
                ApiError(StatusCode::BAD_REQUEST, message)
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("request task failed: {err}")))?
        .map_err(ApiError::from)
}

async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let engine = state.engine.clone();
    let live = blocking(move || Ok(engine.store().live_version()?)).await?;
    Ok(Json(json!({ "status": "ok", "pipeline": state.engine.plan().name, "live_version": live })))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    k: Option<usize>,
    version: Option<Version>,
    mode: Option<SearchMode>,
}

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let query = params.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "missing query parameter `q`".into()));
    }
    let k = params.k.unwrap_or(10);
    if !(1..=MAX_K).contains(&k) {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("`k` must be between 1 and {MAX_K}")));
    }
    let mode = params.mode.unwrap_or_default();
    let started = Instant::now();
    let engine = state.engine.clone();
    let response =
        blocking(move || engine.search(&query, params.version, k, mode, &caller.access, &caller.principal)).await?;
    let label = match mode {
        SearchMode::Hybrid => "hybrid",
        SearchMode::Lexical => "lexical",
        SearchMode::Dense => "dense",
    };
    state.metrics.search_duration.get_or_create(&ModeLabels { mode: label }).observe(started.elapsed().as_secs_f64());
    Ok(Json(response).into_response())
}

async fn versions(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let versions = blocking(move || engine.versions()).await?;
    Ok(Json(json!({ "pipeline": state.engine.plan().name, "versions": versions })).into_response())
}

async fn version_info(State(state): State<AppState>, Path(version): Path<Version>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let info = blocking(move || engine.versions()).await?.into_iter().find(|info| info.version == version);
    match info {
        Some(info) => Ok(Json(info).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("version {version} does not exist"))),
    }
}

#[derive(Deserialize)]
struct PromoteParams {
    /// Promote a version the evaluation gate held.
    #[serde(default)]
    force: bool,
}

async fn promote(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<Version>,
    Query(params): Query<PromoteParams>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    blocking(move || engine.promote(version, &caller.principal, params.force)).await?;
    Ok(Json(json!({ "live": version })).into_response())
}

async fn rollback(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let live = blocking(move || engine.roll_back_live(&caller.principal)).await?;
    Ok(Json(json!({ "live": live })).into_response())
}

async fn pin(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<Version>,
) -> Result<Response, ApiError> {
    set_pinned(state, caller, version, true).await
}

async fn unpin(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<Version>,
) -> Result<Response, ApiError> {
    set_pinned(state, caller, version, false).await
}

async fn set_pinned(state: AppState, caller: Caller, version: Version, pinned: bool) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    blocking(move || engine.pin(version, pinned, &caller.principal)).await?;
    Ok(Json(json!({ "version": version, "pinned": pinned })).into_response())
}

async fn collect_garbage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    Ok(Json(blocking(move || engine.collect_garbage(&caller.principal)).await?).into_response())
}

#[derive(Deserialize)]
struct VerifyParams {
    version: Option<Version>,
}

async fn verify(State(state): State<AppState>, Query(params): Query<VerifyParams>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    Ok(Json(blocking(move || engine.verify(params.version)).await?).into_response())
}

#[derive(Deserialize)]
struct DiffParams {
    from: Version,
    to: Version,
}

async fn diff(State(state): State<AppState>, Query(params): Query<DiffParams>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    Ok(Json(blocking(move || engine.diff(params.from, params.to)).await?).into_response())
}

async fn lineage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(chunk_id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = ChunkId::parse(&chunk_id) else {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("{chunk_id:?} is not a chunk id (64 hex digits)")));
    };
    let engine = state.engine.clone();
    match blocking(move || engine.lineage(id, &caller.access)).await? {
        Some(lineage) => Ok(Json(lineage).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no chunk {chunk_id}"))),
    }
}

async fn quarantine(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let entries = blocking(move || engine.quarantine()).await?;
    Ok(Json(json!({ "pipeline": state.engine.plan().name, "quarantined": entries })).into_response())
}

#[derive(Deserialize)]
struct RetryRequest {
    path: String,
}

/// Queues a quarantined file for the next run: 202 once queued, 404 if it is not in quarantine.
async fn retry_quarantined(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<RetryRequest>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let path = request.path.clone();
    let entry = blocking(move || engine.quarantine_entry(&path)).await?;
    if entry.is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("{} is not in quarantine", request.path)));
    }
    let engine = state.engine.clone();
    let path = request.path.clone();
    blocking(move || engine.audit(&caller.principal, "quarantine_retry", path, json!({}))).await?;
    state
        .retries
        .send(request.path.clone())
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down".into()))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": request.path }))).into_response())
}

#[derive(Deserialize)]
struct AuditParams {
    /// Unix milliseconds, inclusive.
    since: Option<i64>,
    /// Entries after this sequence number (paging).
    after: Option<i64>,
    limit: Option<usize>,
}

/// `GET /v1/audit`: entries oldest first, a page at a time (`after` = the last `seq` seen).
async fn audit(State(state): State<AppState>, Query(params): Query<AuditParams>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let limit = params.limit.unwrap_or(1000).clamp(1, 10_000);
    let entries =
        blocking(move || Ok(engine.store().catalog().audit_entries(params.since, params.after.unwrap_or(0), limit)?))
            .await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

async fn audit_verify(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    Ok(Json(blocking(move || Ok(engine.store().catalog().verify_audit()?)).await?).into_response())
}

async fn list_tokens(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let tokens = blocking(move || Ok(engine.store().catalog().tokens()?)).await?;
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

#[derive(Deserialize)]
struct TokenRequest {
    user: String,
    #[serde(default)]
    groups: Vec<String>,
    role: Role,
}

/// `POST /v1/tokens`: the answer holds the secret, the only time it is shown.
async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<TokenRequest>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let (info, token) = blocking(move || {
        let created = engine.store().catalog().create_token(&request.user, &request.groups, request.role)?;
        let detail =
            json!({"id": created.0.id, "user": created.0.user, "groups": created.0.groups, "role": created.0.role});
        engine.audit(&caller.principal, "token_created", created.0.id.clone(), detail)?;
        Ok(created)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token, "info": info }))).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let token_id = id.clone();
    let revoked = blocking(move || {
        let revoked = engine.store().catalog().revoke_token(&token_id)?;
        if revoked {
            engine.audit(&caller.principal, "token_revoked", token_id, json!({}))?;
        }
        Ok(revoked)
    })
    .await?;
    if !revoked {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no live token {id}")));
    }
    Ok(Json(json!({ "revoked": id })).into_response())
}

#[derive(Deserialize)]
struct ExportParams {
    version: Option<Version>,
    format: Option<String>,
    #[serde(default)]
    vectors: bool,
}

/// `GET /v1/export`: the chunks of a version the caller may read, as JSONL or Parquet.
async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let format = match params.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => ExportFormat::Jsonl,
        "parquet" => ExportFormat::Parquet,
        other => return Err(ApiError(StatusCode::BAD_REQUEST, format!("unknown format {other:?} (jsonl, parquet)"))),
    };
    let engine = state.engine.clone();
    let bytes = blocking(move || {
        let file = export_path(&engine)?;
        let summary = engine.export(params.version, &caller.access, format, params.vectors, &file)?;
        let bytes = std::fs::read(&file).map_err(sluice_pipeline::PipelineError::io(&file));
        let _ = std::fs::remove_file(&file);
        let detail = json!({"version": summary.version, "chunks": summary.chunks, "format": params.format});
        engine.audit(&caller.principal, "exported", format!("version {}", summary.version), detail)?;
        bytes
    })
    .await?;
    let content_type =
        if format == ExportFormat::Jsonl { "application/x-ndjson" } else { "application/vnd.apache.parquet" };
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// A fresh path for an export under the system's temporary folder (read back, then removed:
/// the answer is built in memory).
fn export_path(engine: &Engine) -> Result<std::path::PathBuf, sluice_pipeline::PipelineError> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|err| sluice_pipeline::PipelineError::Invalid(err.to_string()))?;
    Ok(std::env::temp_dir().join(format!("sluice-export-{}-{}", engine.plan().name, hex::encode(random))))
}
