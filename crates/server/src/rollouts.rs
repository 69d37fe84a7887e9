//! `/api/v1/rollouts`: the rollout controller's Rollouts, their status and the
//! `slipway rollout` commands.
//!
//! Every command is recorded in the store as a `rollout.command` event naming who asked
//! (`api` or `api:<name>`); the controller records what the command did (`rollout.paused`,
//! `rollout.aborted`, `rollout.command-ignored`, ...). A command is answered once the
//! controller applied it (normally within one round, 100 ms), with the Rollout after it.
//!
//! `undo` is Argo's `kubectl argo rollouts undo` the GitOps way: the Rollout's application
//! (the runtime knows which applied it) is rolled back, by a revert commit in the GitOps
//! repository, to the last revision synced successfully before the one Git asks for now (the
//! stable revision's commit during an update), and the controller syncs that commit like any
//! other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use slipway_rollout::machine::{CommandKind, StatusView};
use slipway_runtime::RolloutObject;
use slipway_store::{NewEvent, SyncResult};

use crate::api::{initiator, optional_json, ApiError};
use crate::types::{
    AnalysisRunInfo, MirrorRouteInfo, RevisionReplicas, RolloutCommandBody, RolloutCommandReply,
    RolloutCounts, RolloutDetail, RolloutSummary, ScaleDown,
};
use crate::{Rollouts, State};

/// How long a command may wait for the controller to apply it before the answer says it is
/// still queued.
const APPLY_WAIT: Duration = Duration::from_secs(10);
/// The event kind of every command.
pub(crate) const COMMAND_EVENT: &str = "rollout.command";

fn backend(state: &State) -> Option<&Arc<dyn Rollouts>> {
    state.rollouts.get()
}

fn not_found(key: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no rollout named {key:?}"))
}

/// Counts by phase, for `/api/v1/status`.
pub(crate) fn counts(state: &State) -> RolloutCounts {
    let mut out = RolloutCounts::default();
    if let Some(r) = backend(state) {
        for (_, v) in r.list() {
            out.total += 1;
            *out.phase.entry(format!("{:?}", v.phase)).or_default() += 1;
        }
    }
    out
}

/// `GET /api/v1/rollouts`.
pub(crate) async fn list(AxState(state): AxState<Arc<State>>) -> Response {
    let Some(r) = backend(&state) else {
        return Json(Vec::<RolloutSummary>::new()).into_response();
    };
    let objects = by_key(r.objects());
    let rows: Vec<RolloutSummary> = r
        .list()
        .into_iter()
        .map(|(key, view)| summary(&key, &view, objects.get(&key)))
        .collect();
    Json(rows).into_response()
}

/// `GET /api/v1/rollouts/{namespace}/{name}`.
pub(crate) async fn get(
    AxState(state): AxState<Arc<State>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let key = format!("{namespace}/{name}");
    Ok(Json(detail_of(&state, &key)?).into_response())
}

fn detail_of(state: &State, key: &str) -> Result<RolloutDetail, ApiError> {
    let r = backend(state).ok_or_else(|| not_found(key))?;
    let view = r.get(key).ok_or_else(|| not_found(key))?;
    let object = r
        .objects()
        .into_iter()
        .find(|o| format!("{}/{}", o.namespace, o.name) == key);
    Ok(detail(key, &view, object.as_ref()))
}

/// `POST /api/v1/rollouts/{namespace}/{name}/{command}`.
pub(crate) async fn command(
    AxState(state): AxState<Arc<State>>,
    Path((namespace, name, verb)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = format!("{namespace}/{name}");
    // Empty, `null` or an object.
    let body: RolloutCommandBody = optional_json::<Option<_>>(&body)?.unwrap_or_default();
    let by = initiator(body.initiated_by.as_deref());
    let kind = match (verb.as_str(), body.full) {
        ("promote", false) => CommandKind::Promote,
        ("promote", true) => CommandKind::PromoteFull,
        ("abort", _) => CommandKind::Abort,
        ("retry", _) => CommandKind::Retry,
        ("pause", _) => CommandKind::Pause,
        ("resume", _) => CommandKind::Resume,
        ("undo", _) => return undo(&state, &key, &by).await,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no rollout command {verb:?} (promote, abort, retry, pause, resume or undo)"
                ),
            ))
        }
    };
    let r = backend(&state).ok_or_else(|| not_found(&key))?.clone();
    let verb = command_name(kind);
    let before = state.store.last_event_id().map_err(ApiError::internal)?;
    let id = r.command(&key, kind).map_err(|_| not_found(&key))?;
    record(&state, &r, &key, verb, &by, Some(id));
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    let applied = loop {
        if r.applied(&key).is_some_and(|a| a >= id) {
            break true;
        }
        if r.get(&key).is_none() || tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ignored = if applied {
        ignored_since(&state, before, &key)
    } else {
        None
    };
    let status = detail_of(&state, &key).ok();
    let reply = RolloutCommandReply {
        rollout: key,
        command: verb.to_string(),
        id,
        by,
        applied,
        ignored,
        status,
    };
    let code = if applied {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((code, Json(reply)).into_response())
}

fn command_name(kind: CommandKind) -> &'static str {
    match kind {
        CommandKind::Promote => "promote",
        CommandKind::PromoteFull => "promote-full",
        CommandKind::Abort => "abort",
        CommandKind::Retry => "retry",
        CommandKind::Pause => "pause",
        CommandKind::Resume => "resume",
    }
}

/// The `rollout.command` event.
fn record(state: &State, r: &Arc<dyn Rollouts>, key: &str, verb: &str, by: &str, id: Option<u64>) {
    let owner = r
        .objects()
        .into_iter()
        .find(|o| format!("{}/{}", o.namespace, o.name) == key)
        .map(|o| o.owner);
    let mut e = NewEvent::now(COMMAND_EVENT, format!("{key}: {verb} by {by}"))
        .data(serde_json::json!({ "rollout": key, "command": verb, "by": by, "id": id }));
    if let Some(owner) = owner {
        e = e.application(owner);
    }
    if let Err(err) = state.store.append_event(&e) {
        tracing::warn!("rollout {key}: recording the command: {err}");
    }
}

/// The controller's `rollout.command-ignored` message for this Rollout since `before`.
fn ignored_since(
    state: &State,
    before: Option<slipway_store::EventId>,
    key: &str,
) -> Option<String> {
    let events = state.store.events_since(before, 1000).ok()?;
    events
        .into_iter()
        .filter(|e| e.kind == "rollout.command-ignored" && e.data["rollout"] == key)
        .map(|e| {
            e.message
                .strip_prefix(&format!("{key}: "))
                .unwrap_or(&e.message)
                .to_string()
        })
        .next_back()
}

/// `undo`: the GitOps rollback of the application that owns the Rollout.
async fn undo(state: &State, key: &str, by: &str) -> Result<Response, ApiError> {
    let r = backend(state).ok_or_else(|| not_found(key))?.clone();
    let object = r
        .objects()
        .into_iter()
        .find(|o| format!("{}/{}", o.namespace, o.name) == key);
    let Some(object) = object else {
        return Err(not_found(key));
    };
    if object.owner.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("rollout {key:?} belongs to no application: nothing to roll back in Git"),
        ));
    }
    record(state, &r, key, "undo", by, None);
    // Back to the last revision synced successfully before the one Git asks for now: during
    // an update that is the stable revision's commit, even when the update's own sync failed
    // (an aborted canary fails it), which the controller's default (the revision synced
    // before the last successful one) would skip past.
    let owner = object.owner.as_str();
    let current = state
        .apps
        .list()
        .into_iter()
        .find(|a| a.name == owner)
        .and_then(|a| a.revision);
    let to = state
        .apps
        .history(owner, 200)?
        .into_iter()
        .find(|h| h.result == SyncResult::Succeeded && Some(&h.revision) != current.as_ref())
        .map(|h| h.revision);
    let result = state.apps.rollback(owner, to, by).await?;
    Ok(Json(result).into_response())
}

fn by_key(objects: Vec<RolloutObject>) -> BTreeMap<String, RolloutObject> {
    objects
        .into_iter()
        .map(|o| (format!("{}/{}", o.namespace, o.name), o))
        .collect()
}

fn steps_of(object: Option<&RolloutObject>) -> Vec<Value> {
    object
        .and_then(|o| o.manifest["spec"]["strategy"]["canary"]["steps"].as_array())
        .cloned()
        .unwrap_or_default()
}

/// Argo's `SetWeight`: what the steps ask for at the current step.
fn set_weight(view: &StatusView, steps: &[Value]) -> Option<u32> {
    if view.strategy != "Canary" {
        return None;
    }
    if view.aborted {
        return Some(0);
    }
    let Some((current, _)) = view.step else {
        return Some(100);
    };
    let upto = (current as usize).min(steps.len());
    Some(
        steps[..upto]
            .iter()
            .filter_map(|s| s.get("setWeight").and_then(Value::as_u64))
            .next_back()
            .map_or(0, |w| w.min(100) as u32),
    )
}

fn summary(key: &str, view: &StatusView, object: Option<&RolloutObject>) -> RolloutSummary {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    RolloutSummary {
        namespace: namespace.to_string(),
        name: name.to_string(),
        application: object.map(|o| o.owner.clone()).filter(|o| !o.is_empty()),
        phase: format!("{:?}", view.phase),
        message: view.message.clone(),
        strategy: view.strategy.clone(),
        step: view.step.map(|(i, _)| i),
        steps_total: view.step.map(|(_, n)| n),
        set_weight: set_weight(view, &steps_of(object)),
        canary_weight: view.canary_weight,
        stable_weight: view.stable_weight,
        stable: view.stable.clone(),
        canary: view.updating_to.clone(),
        aborted: view.aborted,
    }
}

/// One line per canary step.
fn step_text(step: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(w) = step.get("setWeight") {
        return format!("setWeight: {}", text(w));
    }
    if let Some(p) = step.get("pause") {
        return match p.get("duration") {
            Some(Value::Number(n)) => format!("pause: {n}s"),
            Some(d) => format!("pause: {}", text(d)),
            None => "pause".to_string(),
        };
    }
    if let Some(a) = step.get("analysis") {
        let names: Vec<String> = a["templates"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["templateName"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        return format!("analysis: {}", names.join(", "));
    }
    if let Some(s) = step.get("setCanaryScale") {
        if let Some(r) = s.get("replicas") {
            return format!("setCanaryScale: replicas {}", text(r));
        }
        if let Some(w) = s.get("weight") {
            return format!("setCanaryScale: weight {}", text(w));
        }
        return "setCanaryScale: matchTrafficWeight".to_string();
    }
    if let Some(h) = step.get("setHeaderRoute") {
        return format!("setHeaderRoute: {}", text(&h["name"]));
    }
    if let Some(m) = step.get("setMirrorRoute") {
        return format!("setMirrorRoute: {}", text(&m["name"]));
    }
    step.to_string()
}

fn images(object: &RolloutObject) -> Vec<String> {
    object.manifest["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["image"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn detail(key: &str, view: &StatusView, object: Option<&RolloutObject>) -> RolloutDetail {
    RolloutDetail {
        summary: summary(key, view, object),
        revision: object.map(|o| o.revision.clone()),
        images: object.map(images).unwrap_or_default(),
        steps: steps_of(object).iter().map(step_text).collect(),
        header_routes: view.header_routes.clone(),
        mirror_routes: view
            .mirror_routes
            .iter()
            .map(|(name, percentage)| MirrorRouteInfo {
                name: name.clone(),
                percentage: *percentage,
            })
            .collect(),
        active: view.active.clone(),
        preview: view.preview.clone(),
        analyses: view
            .analyses
            .iter()
            .map(|a| AnalysisRunInfo {
                name: a.name.clone(),
                kind: format!("{:?}", a.kind),
                phase: format!("{:?}", a.phase),
                message: a.message.clone(),
            })
            .collect(),
        replicas: view
            .replicas
            .iter()
            .map(|(revision, replicas)| RevisionReplicas {
                revision: revision.clone(),
                replicas: *replicas,
            })
            .collect(),
        scale_downs: view
            .scale_down_at
            .iter()
            .map(|(revision, at_ms)| ScaleDown {
                revision: revision.clone(),
                at_ms: *at_ms,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_read_as_lines() {
        assert_eq!(step_text(&json!({"setWeight": 20})), "setWeight: 20");
        assert_eq!(step_text(&json!({"pause": {}})), "pause");
        assert_eq!(step_text(&json!({"pause": {"duration": 30}})), "pause: 30s");
        assert_eq!(
            step_text(&json!({"pause": {"duration": "1m"}})),
            "pause: 1m"
        );
        assert_eq!(
            step_text(&json!({"analysis": {"templates": [{"templateName": "errors"}]}})),
            "analysis: errors"
        );
        assert_eq!(
            step_text(&json!({"setCanaryScale": {"replicas": 2}})),
            "setCanaryScale: replicas 2"
        );
    }
}
