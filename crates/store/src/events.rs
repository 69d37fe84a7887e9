//! The event log behind the API's server-sent events.

use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};

use crate::{now_millis, sql_limit, Store, StoreError};

/// An event's id: the SSE `id:` field. Ids only grow, and are never reused, even after
/// [`Store::prune_events`] removed every row; within a process's history they have no gaps
/// except those left by pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub i64);

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewEvent {
    /// When it happened (unix ms).
    pub at: i64,
    /// What happened, dotted, for example `sync.started` or `rollout.step`.
    pub kind: String,
    /// The application it concerns, if any.
    pub application: Option<String>,
    /// One line for people.
    pub message: String,
    /// Structured details for programs; `null` when there are none.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event of `kind` happening now, about no application, without data.
    pub fn now(kind: impl Into<String>, message: impl Into<String>) -> NewEvent {
        NewEvent {
            at: now_millis(),
            kind: kind.into(),
            application: None,
            message: message.into(),
            data: serde_json::Value::Null,
        }
    }

    /// Sets the application.
    pub fn application(mut self, application: impl Into<String>) -> NewEvent {
        self.application = Some(application.into());
        self
    }

    /// Sets the data.
    pub fn data(mut self, data: serde_json::Value) -> NewEvent {
        self.data = data;
        self
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Its id.
    pub id: EventId,
    /// When it happened (unix ms).
    pub at: i64,
    /// What happened.
    pub kind: String,
    /// The application it concerns, if any.
    pub application: Option<String>,
    /// One line for people.
    pub message: String,
    /// Structured details.
    pub data: serde_json::Value,
}

const COLUMNS: &str = "id, at, kind, application, message, data";

/// A row with the data column still as text: JSON is parsed outside the connection's lock.
type RawEvent = (Event, String);

fn from_row(r: &Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok((
        Event {
            id: EventId(r.get(0)?),
            at: r.get(1)?,
            kind: r.get(2)?,
            application: r.get(3)?,
            message: r.get(4)?,
            data: serde_json::Value::Null,
        },
        r.get(5)?,
    ))
}

impl Store {
    /// Appends an event and returns its id.
    pub fn append_event(&self, e: &NewEvent) -> Result<EventId, StoreError> {
        let op = "appending an event";
        let data = serde_json::to_string(&e.data).map_err(self.json_err(op, || e.kind.clone()))?;
        self.write(op, |tx| {
            tx.execute(
                "INSERT INTO events (at, kind, application, message, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.at, e.kind, e.application, e.message, data],
            )?;
            Ok(EventId(tx.last_insert_rowid()))
        })
    }

    /// Events with an id greater than `after` (all, when `None`), oldest first, at most
    /// `limit`: the SSE resume query. Page by passing the last id returned.
    pub fn events_since(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let op = "reading events";
        let after = after.map_or(0, |id| id.0);
        let raw = self.read(op, |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, sql_limit(limit)], from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        self.parse_events(op, raw)
    }

    /// The application's events, newest first, at most `limit`.
    pub fn events_for(&self, application: &str, limit: usize) -> Result<Vec<Event>, StoreError> {
        let op = "reading an application's events";
        let raw = self.read(op, |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events WHERE application = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![application, sql_limit(limit)], from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        self.parse_events(op, raw)
    }

    /// The id of the newest event, if any: where a new SSE client without `Last-Event-ID`
    /// starts.
    pub fn last_event_id(&self) -> Result<Option<EventId>, StoreError> {
        self.read("reading the last event id", |c| {
            c.query_row("SELECT max(id) FROM events", [], |r| {
                Ok(r.get::<_, Option<i64>>(0)?.map(EventId))
            })
        })
    }

    /// Deletes all but the newest `keep_last` events and returns how many were deleted.
    /// Ids of later events keep growing from where they were.
    pub fn prune_events(&self, keep_last: u64) -> Result<u64, StoreError> {
        let offset = i64::try_from(keep_last).unwrap_or(i64::MAX);
        self.write("pruning events", |tx| {
            // The subquery is the newest id that goes (NULL, deleting nothing, when there are
            // at most `keep_last` rows).
            let n = tx.execute(
                "DELETE FROM events WHERE id <= \
                 (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                params![offset],
            )?;
            Ok(n as u64)
        })
    }

    fn parse_events(&self, op: &'static str, raw: Vec<RawEvent>) -> Result<Vec<Event>, StoreError> {
        raw.into_iter()
            .map(|(mut e, data)| {
                e.data = serde_json::from_str(&data)
                    .map_err(self.json_err(op, || format!("event {}", e.id)))?;
                Ok(e)
            })
            .collect()
    }
}
