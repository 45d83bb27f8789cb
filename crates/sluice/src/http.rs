//! The HTTP API (axum): health, search, versions, quarantine, metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_core::{ChunkId, Version};
use sluice_pipeline::{Engine, PipelineError};
use sluice_store::SearchMode;
use tokio::sync::mpsc;

use crate::metrics::{Metrics, ModeLabels};

const MAX_K: usize = 1000;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    /// Quarantined paths to process again, for the scheduler (which serialises them with runs).
    pub retries: mpsc::Sender<String>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/search", get(search))
        .route("/v1/versions", get(versions))
        .route("/v1/versions/{version}", get(version_info))
        .route("/v1/versions/{version}/promote", post(promote))
        .route("/v1/versions/{version}/pin", post(pin).delete(unpin))
        .route("/v1/rollback", post(rollback))
        .route("/v1/gc", post(collect_garbage))
        .route("/v1/verify", get(verify))
        .route("/v1/diff", get(diff))
        .route("/v1/chunks/{chunk_id}/lineage", get(lineage))
        .route("/v1/quarantine", get(quarantine))
        .route("/v1/quarantine/retry", post(retry_quarantined))
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

async fn search(State(state): State<AppState>, Query(params): Query<SearchParams>) -> Result<Response, ApiError> {
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
    let response = blocking(move || engine.search(&query, params.version, k, mode)).await?;
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

async fn promote(State(state): State<AppState>, Path(version): Path<Version>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    blocking(move || engine.promote(version)).await?;
    Ok(Json(json!({ "live": version })).into_response())
}

async fn rollback(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let live = blocking(move || engine.roll_back_live()).await?;
    Ok(Json(json!({ "live": live })).into_response())
}

async fn pin(State(state): State<AppState>, Path(version): Path<Version>) -> Result<Response, ApiError> {
    set_pinned(state, version, true).await
}

async fn unpin(State(state): State<AppState>, Path(version): Path<Version>) -> Result<Response, ApiError> {
    set_pinned(state, version, false).await
}

async fn set_pinned(state: AppState, version: Version, pinned: bool) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    blocking(move || engine.pin(version, pinned)).await?;
    Ok(Json(json!({ "version": version, "pinned": pinned })).into_response())
}

async fn collect_garbage(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    Ok(Json(blocking(move || engine.collect_garbage()).await?).into_response())
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

async fn lineage(State(state): State<AppState>, Path(chunk_id): Path<String>) -> Result<Response, ApiError> {
    let Some(id) = ChunkId::parse(&chunk_id) else {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("{chunk_id:?} is not a chunk id (64 hex digits)")));
    };
    let engine = state.engine.clone();
    match blocking(move || engine.lineage(id)).await? {
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
    Json(request): Json<RetryRequest>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let path = request.path.clone();
    let entry = blocking(move || engine.quarantine_entry(&path)).await?;
    if entry.is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("{} is not in quarantine", request.path)));
    }
    state
        .retries
        .send(request.path.clone())
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "the daemon is shutting down".into()))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": request.path }))).into_response())
}
