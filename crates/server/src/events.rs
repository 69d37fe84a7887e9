//! `GET /api/v1/events`: the store's event log as server-sent events.
//!
//! Each event is `id: <event id>` and `data: <the event as JSON>` (its `kind` is inside the
//! data, so `EventSource.onmessage` sees every event). A client that reconnects with
//! `Last-Event-ID` (browsers do it on their own) gets every event after that id, so nothing
//! is lost across reconnects as long as the store kept it. A new client without it starts
//! after the newest event, unless it asks `?after=<id>` (`?after=0` replays everything
//! kept). The stream polls the store every [`crate::ServerConfig::poll_interval`] and sends a
//! keep-alive comment after [`crate::ServerConfig::keep_alive`] of silence.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use slipway_store::{Event, EventId};

use crate::api::ApiError;
use crate::State;

/// How many events one store read returns.
const PAGE: usize = 200;

/// `?after=<id>`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    after: Option<i64>,
}

pub(crate) async fn events(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let last = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "Last-Event-ID must be an event id (an integer)",
                    )
                })?,
        ),
        None => q.after,
    };
    let after = match last {
        Some(id) => Some(EventId(id)),
        None => state.store.last_event_id().map_err(ApiError::internal)?,
    };
    let keep_alive = KeepAlive::new()
        .interval(state.config.keep_alive)
        .text("keep-alive");
    Ok(Sse::new(stream(state, after)).keep_alive(keep_alive))
}

struct Cursor {
    state: Arc<State>,
    after: Option<EventId>,
    pending: VecDeque<Event>,
    stopping: tokio::sync::watch::Receiver<bool>,
}

fn stream(
    state: Arc<State>,
    after: Option<EventId>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let stopping = state.stopping.subscribe();
    let cursor = Cursor {
        state,
        after,
        pending: VecDeque::new(),
        stopping,
    };
    futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if *c.stopping.borrow() {
                return None;
            }
            if let Some(e) = c.pending.pop_front() {
                c.after = Some(e.id);
                return Some((Ok(to_sse(&e)), c));
            }
            match c.state.store.events_since(c.after, PAGE) {
                Ok(page) if !page.is_empty() => c.pending.extend(page),
                Ok(_) => {}
                Err(e) => tracing::warn!("event stream: {e}"),
            }
            if c.pending.is_empty() {
                let interval = c.state.config.poll_interval;
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = c.stopping.changed() => return None,
                }
            }
        }
    })
}

fn to_sse(e: &Event) -> SseEvent {
    let data = serde_json::to_string(e).unwrap_or_else(|_| "{}".to_string());
    SseEvent::default().id(e.id.to_string()).data(data)
}
