//! `POST /api/v1/webhooks/git`: GitHub and GitLab deliveries.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::{ConnectInfo, Request, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use slipway_git::webhook::{self, WebhookEvent};
use slipway_store::NewEvent;

use crate::api::ApiError;
use crate::{State, WebhookReply};

/// GitHub caps deliveries at 25 MiB.
const MAX_BODY: usize = 25 * 1024 * 1024;

/// Source repositories watched for CI (`slipway up --source`): an authentic push is offered
/// to them before the GitOps controller refreshes.
pub trait Sources: Send + Sync + 'static {
    /// Called for every authentic push; true when the push is about a watched source
    /// repository (which then fetches at once and runs what the push triggers).
    fn push(&self, event: &webhook::PushEvent) -> bool;
}

pub(crate) async fn receive(AxState(state): AxState<Arc<State>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("webhook body larger than {MAX_BODY} bytes or unreadable"),
            )
            .into_response()
        }
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let result = match state.config.webhook_secret.as_deref() {
        Some(secret) if !secret.is_empty() => webhook::receive(header, &body, secret.as_bytes()),
        _ => {
            return reject(
                &state,
                peer,
                header,
                "no webhook secret is configured (start slipway up with --webhook-secret-file)",
            )
        }
    };
    match result {
        Ok(WebhookEvent::Push(push)) => {
            let reason = format!(
                "webhook {} {} {}",
                push.repository, push.git_ref, push.after
            );
            // A source repository's push starts its CI runs; the GitOps controller still
            // refreshes (the same repository may be both, and a fetch that finds nothing
            // new costs little).
            let source = state.sources.get().is_some_and(|s| s.push(&push));
            if source {
                tracing::info!(pusher = %push.pusher, "{reason}: a watched source: fetching");
            }
            tracing::info!(pusher = %push.pusher, "{reason}: refreshing");
            state.apps.refresh(&reason);
            state.metrics.webhook("push");
            let mut data = serde_json::to_value(&push).unwrap_or_default();
            if let Some(d) = data.as_object_mut() {
                d.insert("source".into(), serde_json::Value::Bool(source));
            }
            let event = NewEvent::now(
                "webhook.push",
                format!(
                    "{} push to {} {} by {}",
                    push.source,
                    push.repository,
                    push.git_ref,
                    if push.pusher.is_empty() {
                        "?"
                    } else {
                        &push.pusher
                    }
                ),
            )
            .data(data);
            if let Err(e) = state.store.append_event(&event) {
                tracing::warn!("recording the webhook: {e}");
            }
            (
                StatusCode::ACCEPTED,
                Json(WebhookReply {
                    event: "push".into(),
                    refresh: Some(reason),
                }),
            )
                .into_response()
        }
        Ok(WebhookEvent::Ping { .. }) => {
            state.metrics.webhook("ping");
            Json(WebhookReply {
                event: "ping".into(),
                refresh: None,
            })
            .into_response()
        }
        Ok(WebhookEvent::Ignored { event, .. }) => {
            tracing::debug!("webhook {event:?} ignored");
            state.metrics.webhook("ignored");
            Json(WebhookReply {
                event: "ignored".into(),
                refresh: None,
            })
            .into_response()
        }
        Err(e) if e.is_unauthorized() => reject(&state, peer, header, &e.to_string()),
        Err(e) => {
            state.metrics.webhook("invalid");
            ApiError::new(StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
    }
}

fn reject<'h>(
    state: &State,
    peer: Option<SocketAddr>,
    header: impl Fn(&str) -> Option<&'h str>,
    reason: &str,
) -> Response {
    let from = peer.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
    let sender = webhook::claimed_source(&header).map(|s| s.as_str());
    tracing::warn!(peer = %from, "webhook rejected: {reason}");
    state.metrics.webhook("rejected");
    let event = NewEvent::now(
        "webhook.rejected",
        format!("webhook from {from} rejected: {reason}"),
    )
    .data(serde_json::json!({
        "peer": peer.map(|a| a.to_string()),
        "claimedSender": sender,
        "event": header("x-github-event").or_else(|| header("x-gitlab-event")),
        "reason": reason,
    }));
    if let Err(e) = state.store.append_event(&event) {
        tracing::warn!("recording the rejected webhook: {e}");
    }
    ApiError::new(StatusCode::UNAUTHORIZED, reason).into_response()
}
