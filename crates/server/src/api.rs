//! Routes, handlers and the JSON error answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State as AxState};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use slipway_reconcile::{ReconcileError, SyncRequest};
use tracing::Instrument;

use crate::types::{AppCounts, ErrorBody, PortInfo, ServiceInfo, StatusReport};
use crate::{
    auth, deliveries, events, logs, metrics, rollouts, webhook, RollbackBody, State, SyncBody,
};

/// Default and largest `?limit=` for history.
const HISTORY_DEFAULT: usize = 50;
const HISTORY_MAX: usize = 1000;

pub(crate) fn router(state: Arc<State>) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/api/v1/applications", get(list))
        .route("/api/v1/applications/{name}", get(detail))
        .route("/api/v1/applications/{name}/history", get(history))
        .route("/api/v1/applications/{name}/sync", post(sync))
        .route("/api/v1/applications/{name}/rollback", post(rollback))
        .route("/api/v1/applications/{name}/logs", get(logs))
        .route("/api/v1/rollouts", get(rollouts::list))
        .route("/api/v1/rollouts/{namespace}/{name}", get(rollouts::get))
        .route(
            "/api/v1/rollouts/{namespace}/{name}/{command}",
            post(rollouts::command),
        )
        .route("/api/v1/deliveries", get(deliveries::list))
        .route("/api/v1/deliveries/{name}", get(deliveries::get))
        .route(
            "/api/v1/deliveries/{name}/stages/{stage}/promote",
            post(deliveries::promote),
        )
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events::events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/webhooks/git", post(webhook::receive))
        .merge(protected)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), trace))
        .with_state(state)
}

/// A span per request, a log line per mutation (and per failure), and the request counter.
async fn trace(AxState(state): AxState<Arc<State>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let span = tracing::info_span!("request", %method, path = %request.uri().path());
    let start = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(
                status = status.as_u16(),
                "{method} {route} {status} {ms:.1} ms"
            );
        } else if method != Method::GET || status.is_client_error() {
            tracing::info!(
                status = status.as_u16(),
                "{method} {route} {status} {ms:.1} ms"
            );
        } else {
            tracing::debug!(
                status = status.as_u16(),
                "{method} {route} {status} {ms:.1} ms"
            );
        }
    });
    state
        .metrics
        .request(method.as_str(), &route, status.as_u16());
    response
}

/// An error answer: the status and `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<ReconcileError> for ApiError {
    fn from(e: ReconcileError) -> ApiError {
        let status = match &e {
            ReconcileError::NotFound(_) => StatusCode::NOT_FOUND,
            ReconcileError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReconcileError::Git(_) => StatusCode::BAD_GATEWAY,
            ReconcileError::Runtime(_) | ReconcileError::Store(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}

/// An optional JSON body: empty means the default.
pub(crate) fn optional_json<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}

/// `api` or `api:<who>`.
pub(crate) fn initiator(who: Option<&str>) -> String {
    match who.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => format!("api:{w}"),
        None => "api".to_string(),
    }
}

fn known(state: &State, name: &str) -> Result<(), ApiError> {
    if state.apps.list().iter().any(|a| a.name == name) {
        Ok(())
    } else {
        Err(ReconcileError::NotFound(name.to_string()).into())
    }
}

async fn metrics_text(AxState(state): AxState<Arc<State>>) -> Response {
    let apps = state.apps.list();
    let mut series = state.apps.metrics();
    series.push_str(&state.runtime.metrics());
    let text = state.metrics.render(&apps, &series);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn list(AxState(state): AxState<Arc<State>>) -> Response {
    Json(state.apps.list()).into_response()
}

async fn detail(
    AxState(state): AxState<Arc<State>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(state.apps.get(&name)?).into_response())
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    AxState(state): AxState<Arc<State>>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(HISTORY_DEFAULT).min(HISTORY_MAX);
    Ok(Json(state.apps.history(&name, limit)?).into_response())
}

async fn sync(
    AxState(state): AxState<Arc<State>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: SyncBody = optional_json(&body)?;
    let request = SyncRequest {
        revision: body.revision.filter(|r| !r.is_empty()),
        prune: body.prune,
        initiated_by: initiator(body.initiated_by.as_deref()),
    };
    let op = state.apps.sync(&name, request).await?;
    Ok(Json(op).into_response())
}

async fn rollback(
    AxState(state): AxState<Arc<State>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: RollbackBody = optional_json(&body)?;
    let author = initiator(body.author.as_deref());
    let to = body.to.filter(|t| !t.is_empty());
    let result = state.apps.rollback(&name, to, &author).await?;
    Ok(Json(result).into_response())
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    tail: Option<usize>,
}

async fn logs(
    AxState(state): AxState<Arc<State>>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    known(&state, &name)?;
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    )];
    if q.follow {
        let rx = logs::follow(state, name, q.tail);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        return Ok((content_type, Body::from_stream(stream)).into_response());
    }
    let files = state.runtime.log_files(&name);
    let tail = q.tail;
    let (_, text) = tokio::task::spawn_blocking(move || logs::Tail::start(files, tail, false))
        .await
        .map_err(ApiError::internal)?;
    Ok((content_type, text).into_response())
}

async fn status(AxState(state): AxState<Arc<State>>) -> Response {
    let apps = state.apps.list();
    let mut counts = AppCounts {
        total: apps.len(),
        sync: BTreeMap::new(),
        health: BTreeMap::new(),
    };
    for a in &apps {
        *counts
            .sync
            .entry(metrics::sync_str(a.sync).to_string())
            .or_default() += 1;
        *counts
            .health
            .entry(a.health.status.as_str().to_string())
            .or_default() += 1;
    }
    let services = state
        .runtime
        .endpoints(None)
        .into_iter()
        .map(|e| ServiceInfo {
            application: e.owner,
            namespace: e.namespace,
            name: e.name,
            ports: e
                .ports
                .into_iter()
                .map(|(name, address)| PortInfo { name, address })
                .collect(),
        })
        .collect();
    Json(StatusReport {
        version: crate::VERSION.to_string(),
        data_dir: state.config.data_dir.clone(),
        applications: counts,
        services,
        rollouts: rollouts::counts(&state),
    })
    .into_response()
}
