//! `concurrency`: GitHub's groups of runs (or jobs) of which at most one runs at a time.
//!
//! A group holds at most one *running* and one *pending* member. A newcomer to a busy group
//! becomes the pending one and cancels the member that was pending before (its conclusion
//! is `cancelled`; it never starts). With `cancel-in-progress: true` the newcomer also
//! cancels the running member; it still waits for that member to finish (its `always()`
//! steps run) before it starts. When the running member finishes, the pending one starts.
//!
//! [`Machine`] is that rule as a pure state machine (tickets in, actions out); [`Groups`] is
//! the async wrapper a process shares between its runs: [`Groups::acquire`] waits for the
//! turn and hands back a [`Slot`] that says when the member is cancelled and frees the
//! group when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::expr::{self, Context, Template};
use crate::runner::{Annotation, Conclusion, JobResult, LogEvent, RunOptions, RunResult};
use crate::workflow::{Concurrency, Flag, Workflow};

/// A member of a group (a run or a job), numbered by whoever asks.
pub type Ticket = u64;

/// What the owner of a [`Machine`] must do after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let this member start.
    Start(Ticket),
    /// Cancel this member: a pending one never starts; a running one is told to stop and
    /// keeps its place until it reports [`Machine::finished`].
    Cancel(Ticket),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Group {
    running: Option<Ticket>,
    pending: Option<Ticket>,
}

/// The pure state of every group: who runs and who waits.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Machine {
    groups: HashMap<String, Group>,
}

impl Machine {
    /// An empty machine.
    pub fn new() -> Machine {
        Machine::default()
    }

    /// `ticket` asks to run in `group`.
    pub fn request(
        &mut self,
        group: &str,
        ticket: Ticket,
        cancel_in_progress: bool,
    ) -> Vec<Action> {
        let g = self.groups.entry(group.to_string()).or_default();
        let mut actions = Vec::new();
        let Some(running) = g.running else {
            g.running = Some(ticket);
            return vec![Action::Start(ticket)];
        };
        if let Some(old) = g.pending.replace(ticket) {
            actions.push(Action::Cancel(old));
        }
        if cancel_in_progress {
            actions.push(Action::Cancel(running));
        }
        actions
    }

    /// `ticket` is done (finished, cancelled, or gave up waiting): its place is freed and
    /// the pending member, if any, starts. Unknown tickets are ignored.
    pub fn finished(&mut self, group: &str, ticket: Ticket) -> Vec<Action> {
        let Some(g) = self.groups.get_mut(group) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        if g.pending == Some(ticket) {
            g.pending = None;
        } else if g.running == Some(ticket) {
            g.running = g.pending.take();
            if let Some(next) = g.running {
                actions.push(Action::Start(next));
            }
        }
        if g.running.is_none() && g.pending.is_none() {
            self.groups.remove(group);
        }
        actions
    }

    /// The running and the pending member of `group`.
    pub fn members(&self, group: &str) -> (Option<Ticket>, Option<Ticket>) {
        self.groups
            .get(group)
            .map_or((None, None), |g| (g.running, g.pending))
    }

    /// True when no group has a member.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// How a waiting member's turn ended.
#[derive(Debug)]
enum Turn {
    /// Start, with the receiver a later `cancel-in-progress` flips.
    Start(watch::Receiver<bool>),
    Cancelled,
}

#[derive(Default)]
struct Inner {
    machine: Machine,
    next: Ticket,
    waiting: HashMap<Ticket, oneshot::Sender<Turn>>,
    running: HashMap<Ticket, watch::Sender<bool>>,
}

impl Inner {
    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Start(t) => {
                    if let Some(w) = self.waiting.remove(&t) {
                        // Registered as running before the waiter hears of it, so a cancel
                        // arriving in between is not lost.
                        let (tx, rx) = watch::channel(false);
                        self.running.insert(t, tx);
                        let _ = w.send(Turn::Start(rx));
                    }
                }
                Action::Cancel(t) => {
                    if let Some(w) = self.waiting.remove(&t) {
                        let _ = w.send(Turn::Cancelled);
                    } else if let Some(r) = self.running.get(&t) {
                        r.send_replace(true);
                    }
                }
            }
        }
    }
}

/// Concurrency groups shared by the runs of a process (see the module docs).
#[derive(Default)]
pub struct Groups {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").finish_non_exhaustive()
    }
}

/// A member's place in a group while it runs. Dropping it frees the group.
#[derive(Debug)]
pub struct Slot {
    groups: Arc<Groups>,
    group: String,
    ticket: Ticket,
    cancelled: watch::Receiver<bool>,
}

impl Slot {
    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Turns `true` when a newer member with `cancel-in-progress` cancels this one.
    pub fn cancelled(&self) -> watch::Receiver<bool> {
        self.cancelled.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.groups.release(&self.group, self.ticket);
    }
}

/// Gives up a place on drop (a waiter whose future was dropped).
struct Waiting<'a> {
    groups: &'a Arc<Groups>,
    group: &'a str,
    ticket: Ticket,
    armed: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.groups.release(self.group, self.ticket);
        }
    }
}

impl Groups {
    /// No groups yet.
    pub fn new() -> Groups {
        Groups::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, group: &str, ticket: Ticket) {
        let mut inner = self.lock();
        inner.waiting.remove(&ticket);
        inner.running.remove(&ticket);
        let actions = inner.machine.finished(group, ticket);
        inner.apply(actions);
    }

    /// Waits for a turn in `group`: `Some(slot)` when it may start, `None` when a newer
    /// member cancelled it while it waited (its conclusion is `cancelled`).
    pub async fn acquire(self: &Arc<Self>, group: &str, cancel_in_progress: bool) -> Option<Slot> {
        let (ticket, rx) = {
            let mut inner = self.lock();
            inner.next += 1;
            let ticket = inner.next;
            let (tx, rx) = oneshot::channel();
            inner.waiting.insert(ticket, tx);
            let actions = inner.machine.request(group, ticket, cancel_in_progress);
            inner.apply(actions);
            (ticket, rx)
        };
        let mut guard = Waiting {
            groups: self,
            group,
            ticket,
            armed: true,
        };
        let turn = rx.await.unwrap_or(Turn::Cancelled);
        match turn {
            Turn::Start(cancelled) => {
                guard.armed = false;
                Some(Slot {
                    groups: Arc::clone(self),
                    group: group.to_string(),
                    ticket,
                    cancelled,
                })
            }
            Turn::Cancelled => {
                // The machine already dropped it from the group.
                guard.armed = false;
                None
            }
        }
    }

    /// True when no group has a member (every slot was dropped).
    pub fn is_idle(&self) -> bool {
        self.lock().machine.is_empty()
    }
}

/// A `concurrency` block evaluated in `ctx`: the group name and `cancel-in-progress`.
/// An empty group name means no group (as on GitHub, where it is an error; here the run
/// simply is not grouped).
pub fn evaluate(c: &Concurrency, ctx: &Context) -> Result<(String, bool), String> {
    let group = Template::parse(&c.group)
        .and_then(|t| t.render(ctx, &expr::NoHost))
        .map_err(|e| format!("concurrency.group: {e}"))?;
    let cancel = match &c.cancel_in_progress {
        Flag::Bool(b) => *b,
        Flag::Expr(text) => {
            let v: Value = Template::parse(text)
                .and_then(|t| t.eval(ctx, &expr::NoHost))
                .map_err(|e| format!("concurrency.cancel-in-progress: {e}"))?;
            expr::truthy(&v)
        }
    };
    Ok((group, cancel))
}

/// Forwarding tasks that end when this is dropped.
#[derive(Debug, Default)]
pub(crate) struct Forward(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Forward {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// One switch that turns `true` as soon as any of `inputs` does (a closed input never
/// does). Lives as long as the returned [`Forward`].
pub(crate) fn any_of(inputs: Vec<watch::Receiver<bool>>) -> (watch::Receiver<bool>, Forward) {
    let already = inputs.iter().any(|r| *r.borrow());
    let (tx, rx) = watch::channel(already);
    let mut tasks = Vec::new();
    if !already {
        for mut input in inputs {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                if input.wait_for(|v| *v).await.is_ok() {
                    tx.send_replace(true);
                }
            }));
        }
    }
    (rx, Forward(tasks))
}

/// Resolves when `cancel` turns `true`; never when its sender is gone.
pub(crate) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How entering a `concurrency` group went.
pub(crate) enum Entry {
    /// Go ahead, holding this place (none without a group).
    Go(Option<Slot>),
    /// Cancelled before it started (superseded, or the run was cancelled while waiting).
    Cancelled(String),
    /// The group expression failed.
    Failed(String),
}

/// Waits for the turn of a run or job with this `concurrency` (evaluated in `ctx`),
/// giving up when `cancel` turns `true`.
pub(crate) async fn enter(
    groups: &Arc<Groups>,
    what: &str,
    c: Option<&Concurrency>,
    ctx: &Context,
    cancel: &watch::Receiver<bool>,
) -> Entry {
    let Some(c) = c else {
        return Entry::Go(None);
    };
    let (group, cancel_in_progress) = match evaluate(c, ctx) {
        Ok(g) => g,
        Err(e) => return Entry::Failed(e),
    };
    if group.is_empty() {
        return Entry::Go(None);
    }
    let mut cancel = cancel.clone();
    tokio::select! {
        slot = groups.acquire(&group, cancel_in_progress) => match slot {
            Some(slot) => Entry::Go(Some(slot)),
            None => Entry::Cancelled(format!(
                "{what} cancelled: a newer one is waiting in concurrency group {group:?}"
            )),
        },
        () = cancelled(&mut cancel) => Entry::Cancelled(format!(
            "{what} cancelled while waiting for concurrency group {group:?}"
        )),
    }
}

/// What a running workflow holds: its cancel switch (the caller's, or the workflow's
/// concurrency group cancelling it in progress) and its group place.
pub(crate) struct RunGate {
    /// Turns `true` when the run is cancelled.
    pub cancel: watch::Receiver<bool>,
    /// The groups jobs take their places in.
    pub groups: Arc<Groups>,
    _slot: Option<Slot>,
    _forward: Vec<Forward>,
}

/// Enters the workflow's `concurrency` group (if any) for a run with these contexts. `Err`
/// is the result of a run that never started: cancelled (superseded, or cancelled while it
/// waited) or failed (the group expression).
pub(crate) async fn enter_run(
    wf: &Workflow,
    opts: &RunOptions,
    github: &Value,
    inputs: &Value,
    started: std::time::Instant,
) -> Result<RunGate, RunResult> {
    let groups = opts.concurrency.clone().unwrap_or_default();
    let (cancel, outer) = any_of(opts.cancel.iter().cloned().collect());
    let vars: serde_json::Map<String, Value> = opts
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let ctx = Context::new()
        .with("github", github.clone())
        .with("inputs", inputs.clone())
        .with("vars", Value::Object(vars));
    let unstarted = |conclusion: Conclusion, level: &str, message: String| {
        let emit = |e: LogEvent| {
            if let Some(sink) = &opts.logs {
                sink.event(&e);
            }
        };
        let jobs = wf
            .jobs
            .iter()
            .map(|j| {
                emit(LogEvent::JobFinished {
                    job: j.id.clone(),
                    result: conclusion,
                });
                JobResult {
                    id: j.id.clone(),
                    result: conclusion,
                    outputs: Default::default(),
                    instances: Vec::new(),
                    duration_ms: 0,
                }
            })
            .collect();
        RunResult {
            conclusion,
            jobs,
            annotations: vec![Annotation {
                level: level.to_string(),
                message,
                job: String::new(),
                step: None,
                file: None,
                line: None,
            }],
            duration_ms: crate::runner::millis(started.elapsed()),
        }
    };
    if *cancel.borrow() {
        return Err(unstarted(
            Conclusion::Cancelled,
            "error",
            "the run was cancelled before it started".to_string(),
        ));
    }
    match enter(&groups, "the run", wf.concurrency.as_ref(), &ctx, &cancel).await {
        Entry::Go(slot) => {
            let mut forward = vec![outer];
            let cancel = match &slot {
                Some(s) => {
                    let (c, f) = any_of(vec![cancel, s.cancelled()]);
                    forward.push(f);
                    c
                }
                None => cancel,
            };
            Ok(RunGate {
                cancel,
                groups,
                _slot: slot,
                _forward: forward,
            })
        }
        Entry::Cancelled(m) => Err(unstarted(Conclusion::Cancelled, "error", m)),
        Entry::Failed(m) => Err(unstarted(Conclusion::Failure, "error", m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_member_starts_at_once() {
        let mut m = Machine::new();
        assert_eq!(m.request("g", 1, false), vec![Action::Start(1)]);
        assert_eq!(m.members("g"), (Some(1), None));
    }

    #[test]
    fn groups_are_independent() {
        let mut m = Machine::new();
        assert_eq!(m.request("a", 1, false), vec![Action::Start(1)]);
        assert_eq!(m.request("b", 2, true), vec![Action::Start(2)]);
    }

    #[test]
    fn newcomer_waits_and_starts_when_the_running_one_finishes() {
        let mut m = Machine::new();
        m.request("g", 1, false);
        assert_eq!(m.request("g", 2, false), vec![]);
        assert_eq!(m.members("g"), (Some(1), Some(2)));
        assert_eq!(m.finished("g", 1), vec![Action::Start(2)]);
        assert_eq!(m.members("g"), (Some(2), None));
        assert_eq!(m.finished("g", 2), vec![]);
        assert!(m.is_empty());
    }

    #[test]
    fn a_new_pending_member_cancels_the_old_pending_one() {
        let mut m = Machine::new();
        m.request("g", 1, false);
        m.request("g", 2, false);
        assert_eq!(m.request("g", 3, false), vec![Action::Cancel(2)]);
        assert_eq!(m.members("g"), (Some(1), Some(3)));
        // The cancelled one reporting in changes nothing.
        assert_eq!(m.finished("g", 2), vec![]);
        assert_eq!(m.finished("g", 1), vec![Action::Start(3)]);
    }

    #[test]
    fn cancel_in_progress_cancels_the_running_one_which_keeps_its_place() {
        let mut m = Machine::new();
        m.request("g", 1, false);
        assert_eq!(m.request("g", 2, true), vec![Action::Cancel(1)]);
        assert_eq!(m.members("g"), (Some(1), Some(2)));
        assert_eq!(m.finished("g", 1), vec![Action::Start(2)]);
    }

    #[test]
    fn cancel_in_progress_with_a_pending_one_cancels_both() {
        let mut m = Machine::new();
        m.request("g", 1, false);
        m.request("g", 2, false);
        assert_eq!(
            m.request("g", 3, true),
            vec![Action::Cancel(2), Action::Cancel(1)]
        );
        assert_eq!(m.finished("g", 1), vec![Action::Start(3)]);
        assert_eq!(m.finished("g", 3), vec![]);
        assert!(m.is_empty());
    }

    #[test]
    fn a_pending_member_giving_up_leaves_the_running_one_alone() {
        let mut m = Machine::new();
        m.request("g", 1, false);
        m.request("g", 2, false);
        assert_eq!(m.finished("g", 2), vec![]);
        assert_eq!(m.members("g"), (Some(1), None));
        assert_eq!(m.finished("g", 1), vec![]);
        assert!(m.is_empty());
    }

    #[test]
    fn unknown_tickets_and_groups_are_ignored() {
        let mut m = Machine::new();
        assert_eq!(m.finished("nope", 9), vec![]);
        m.request("g", 1, false);
        assert_eq!(m.finished("g", 9), vec![]);
        assert_eq!(m.members("g"), (Some(1), None));
    }

    #[test]
    fn many_newcomers_leave_only_the_last_pending() {
        let mut m = Machine::new();
        m.request("g", 1, false);
        let mut cancelled = Vec::new();
        for t in 2..=10 {
            for a in m.request("g", t, false) {
                if let Action::Cancel(c) = a {
                    cancelled.push(c);
                }
            }
        }
        assert_eq!(cancelled, (2..=9).collect::<Vec<_>>());
        assert_eq!(m.finished("g", 1), vec![Action::Start(10)]);
    }

    #[tokio::test]
    async fn groups_hand_over_in_order_and_cancel() {
        let groups = Arc::new(Groups::new());
        let first = groups.acquire("g", false).await.expect("first starts");
        let g2 = Arc::clone(&groups);
        let second = tokio::spawn(async move { g2.acquire("g", false).await.is_some() });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let g3 = Arc::clone(&groups);
        let third = tokio::spawn(async move { g3.acquire("g", true).await });
        assert!(
            !second.await.unwrap(),
            "the second is superseded while pending"
        );
        let mut c = first.cancelled();
        tokio::time::timeout(std::time::Duration::from_secs(5), c.wait_for(|v| *v))
            .await
            .expect("cancel-in-progress reaches the running member")
            .unwrap();
        assert!(!third.is_finished(), "the third waits for the first to end");
        drop(first);
        let third = third.await.unwrap().expect("third starts");
        assert!(!*third.cancelled().borrow());
        drop(third);
        assert!(groups.is_idle());
    }

    #[tokio::test]
    async fn a_dropped_waiter_frees_its_place() {
        let groups = Arc::new(Groups::new());
        let first = groups.acquire("g", false).await.unwrap();
        let waiting = groups.acquire("g", false);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), waiting)
                .await
                .is_err()
        );
        drop(first);
        assert!(groups.is_idle());
    }
}
