//! The immutable routing table the hot path reads: the backend set grouped by revision, each
//! group with its precomputed smooth weighted round-robin schedule, the split across
//! revisions, and the compiled routes. Replaced whole on every change; requests keep the
//! table they started with.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Attempt, BackendState};
use crate::balance::smooth_schedule;
use crate::routing::{CompiledRouting, Fallback};
use crate::stats::{BackendStats, RevisionState, RevisionStats, SnapshotInput};

/// One backend of a [`Table`].
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) state: Arc<BackendState>,
    pub(crate) weight: u32,
    pub(crate) ready: bool,
    /// The label as given (`None` stays `None` in the stats).
    pub(crate) label: Option<String>,
    /// Index into [`Table::revisions`].
    pub(crate) revision: usize,
}

/// A rotation over some entries: indices into [`Table::entries`] in smooth weighted
/// round-robin order (ready, weighted, not draining entries only), and its cursor.
#[derive(Debug, Default)]
struct Group {
    schedule: Vec<u32>,
    cursor: AtomicUsize,
    /// Distinct entries in the schedule.
    ready: usize,
}

impl Group {
    fn new(entries: &[Entry], member: impl Fn(&Entry) -> bool, cursor: usize) -> Group {
        let weights: Vec<u32> = entries
            .iter()
            .map(|e| {
                if member(e) && e.ready && !e.state.is_draining() {
                    e.weight
                } else {
                    0
                }
            })
            .collect();
        Group {
            ready: weights.iter().filter(|&&w| w > 0).count(),
            schedule: smooth_schedule(&weights),
            cursor: AtomicUsize::new(cursor),
        }
    }

    fn cursor(&self) -> usize {
        self.cursor.load(Ordering::Relaxed)
    }

    /// The next entry in the rotation that is not in `excluded` and not draining, with the
    /// request counted in flight there.
    fn pick(
        &self,
        table: &Table,
        excluded: &[usize],
        mirrored: bool,
        start: Instant,
    ) -> Option<(usize, Attempt)> {
        let n = self.schedule.len();
        if n == 0 {
            return None;
        }
        let first = self.cursor.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let index = self.schedule[first.wrapping_add(i) % n] as usize;
            if excluded.contains(&index) {
                continue;
            }
            let entry = &table.entries[index];
            let revision = &table.revisions[entry.revision];
            if let Some(attempt) = entry.state.try_acquire(revision, mirrored, start) {
                return Some((index, attempt));
            }
        }
        None
    }
}

/// The split across revisions.
#[derive(Debug, Default)]
struct Split {
    /// Per revision (parallel to [`Table::revisions`]).
    weights: Vec<u32>,
    /// Revision indices, smooth weighted round-robin over `weights`.
    schedule: Vec<u32>,
    cursor: AtomicUsize,
    /// The same over the weighted revisions that have a ready backend: where the share of a
    /// revision without one goes.
    available: Vec<u32>,
    available_cursor: AtomicUsize,
}

/// Which revision a request should go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// No split: any ready backend by backend weight.
    Any,
    /// This revision (by index), falling back if it has no ready backend.
    Revision(usize),
}

/// A picked backend.
pub(crate) struct Picked {
    pub(crate) index: usize,
    pub(crate) attempt: Attempt,
    /// The wanted revision had no backend left to try; another one serves.
    pub(crate) fell_back: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) entries: Vec<Entry>,
    pub(crate) revisions: Vec<Arc<RevisionState>>,
    /// Per revision.
    groups: Vec<Group>,
    /// Every entry by backend weight: the rotation without a split, and the last resort.
    all: Group,
    split: Option<Split>,
    pub(crate) routing: Arc<CompiledRouting>,
    /// Per header route: its revision's index.
    header_targets: Vec<usize>,
    /// Per mirror route: its revision's index.
    mirror_targets: Vec<usize>,
    /// Per revision: the value of the sticky cookie that selects it.
    by_name: HashMap<String, usize>,
}

impl Table {
    /// A table over `entries` (whose `revision` fields are ignored and recomputed) and
    /// `routing`, carrying the rotation cursors and revision counters of `previous` over so
    /// that frequent updates neither favour the first backend nor reset the numbers.
    pub(crate) fn new(
        mut entries: Vec<Entry>,
        routing: Arc<CompiledRouting>,
        previous: &Table,
    ) -> Table {
        // Revisions: split order, then backends, then routes.
        fn add(name: &str, names: &mut Vec<String>) {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        let mut owned: Vec<String> = Vec::new();
        for w in &routing.spec.split {
            add(&w.revision, &mut owned);
        }
        for e in &entries {
            add(e.label.as_deref().unwrap_or(""), &mut owned);
        }
        for r in &routing.spec.header_routes {
            add(&r.revision, &mut owned);
        }
        for r in &routing.spec.mirror_routes {
            add(&r.revision, &mut owned);
        }
        let by_name: HashMap<String, usize> = owned
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let revisions: Vec<Arc<RevisionState>> = owned
            .iter()
            .map(|name| {
                previous
                    .revision(name)
                    .map(Arc::clone)
                    .unwrap_or_else(|| RevisionState::new(name))
            })
            .collect();
        for e in &mut entries {
            e.revision = by_name[e.label.as_deref().unwrap_or("")];
        }

        let groups: Vec<Group> = (0..revisions.len())
            .map(|r| {
                let cursor = previous
                    .revision_index(&revisions[r].name)
                    .and_then(|i| previous.groups.get(i))
                    .map_or(0, Group::cursor);
                Group::new(&entries, |e| e.revision == r, cursor)
            })
            .collect();
        let all = Group::new(&entries, |_| true, previous.all.cursor());

        let split = (!routing.spec.split.is_empty()).then(|| {
            let weights: Vec<u32> = owned
                .iter()
                .map(|name| routing.spec.weight(name).unwrap_or(0))
                .collect();
            let available: Vec<u32> = weights
                .iter()
                .zip(&groups)
                .map(|(&w, g)| if g.ready > 0 { w } else { 0 })
                .collect();
            let (cursor, available_cursor) = previous.split.as_ref().map_or((0, 0), |s| {
                (
                    s.cursor.load(Ordering::Relaxed),
                    s.available_cursor.load(Ordering::Relaxed),
                )
            });
            Split {
                schedule: smooth_schedule(&weights),
                weights,
                cursor: AtomicUsize::new(cursor),
                available: smooth_schedule(&available),
                available_cursor: AtomicUsize::new(available_cursor),
            }
        });
        let header_targets = routing
            .header_routes
            .iter()
            .map(|r| by_name[&r.revision])
            .collect();
        let mirror_targets = routing
            .mirror_routes
            .iter()
            .map(|r| by_name[&r.revision])
            .collect();
        Table {
            entries,
            revisions,
            groups,
            all,
            split,
            routing,
            header_targets,
            mirror_targets,
            by_name,
        }
    }

    fn revision_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    fn revision(&self, name: &str) -> Option<&Arc<RevisionState>> {
        self.revision_index(name).map(|i| &self.revisions[i])
    }

    pub(crate) fn header_target(&self, route: usize) -> usize {
        self.header_targets[route]
    }

    pub(crate) fn mirror_target(&self, route: usize) -> usize {
        self.mirror_targets[route]
    }

    /// The revision of the sticky cookie value `name`, if it has weight in the split.
    pub(crate) fn sticky_target(&self, name: &str) -> Option<usize> {
        let split = self.split.as_ref()?;
        let r = self.revision_index(name)?;
        (split.weights[r] > 0).then_some(r)
    }

    /// Whether revision `r` has weight in the split.
    pub(crate) fn is_weighted(&self, r: usize) -> bool {
        self.split.as_ref().is_some_and(|s| s.weights[r] > 0)
    }

    /// What the split says for the next request: one atomic increment.
    pub(crate) fn next_in_split(&self) -> Want {
        match &self.split {
            None => Want::Any,
            Some(split) if split.schedule.is_empty() => Want::Any,
            Some(split) => {
                let n = split.schedule.len();
                let slot = split.cursor.fetch_add(1, Ordering::Relaxed) % n;
                Want::Revision(split.schedule[slot] as usize)
            }
        }
    }

    /// A backend for `want`, not in `excluded`, with the request counted in flight there:
    /// the wanted revision's next backend; else (it has none left) the next weighted
    /// revision with one, in proportion to the weights; else, without a split or with
    /// [`Fallback::AnyReadyBackend`], any ready backend.
    pub(crate) fn pick(&self, want: Want, excluded: &[usize], start: Instant) -> Option<Picked> {
        let r = match want {
            Want::Any => None,
            Want::Revision(r) => {
                if let Some((index, attempt)) = self.groups[r].pick(self, excluded, false, start) {
                    return Some(Picked {
                        index,
                        attempt,
                        fell_back: false,
                    });
                }
                Some(r)
            }
        };
        let fell_back = r.is_some();
        if let Some(split) = &self.split {
            let n = split.available.len();
            if n > 0 {
                let first = split.available_cursor.fetch_add(1, Ordering::Relaxed);
                let mut tried = Vec::new();
                for i in 0..n {
                    let other = split.available[first.wrapping_add(i) % n] as usize;
                    if Some(other) == r || tried.contains(&other) {
                        continue;
                    }
                    tried.push(other);
                    if let Some((index, attempt)) =
                        self.groups[other].pick(self, excluded, false, start)
                    {
                        return Some(Picked {
                            index,
                            attempt,
                            fell_back,
                        });
                    }
                }
            }
            if self.routing.spec.fallback == Fallback::WeightedRevisions {
                return None;
            }
        }
        self.all
            .pick(self, excluded, false, start)
            .map(|(index, attempt)| Picked {
                index,
                attempt,
                fell_back: fell_back || self.split.is_some(),
            })
    }

    /// A backend of revision `r` for a mirrored copy (no fallback: a copy for another
    /// revision would mislead its judge).
    pub(crate) fn pick_mirror(&self, r: usize, start: Instant) -> Option<Attempt> {
        self.groups[r]
            .pick(self, &[], true, start)
            .map(|(_, attempt)| attempt)
    }

    pub(crate) fn find(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.state.id == id)
    }

    pub(crate) fn stats(&self) -> Vec<BackendStats> {
        self.entries
            .iter()
            .map(|e| {
                e.state.counters.snapshot(SnapshotInput {
                    id: &e.state.id,
                    addr: e.state.addr,
                    revision: e.label.as_deref(),
                    weight: e.weight,
                    ready: e.ready,
                    draining: e.state.is_draining(),
                    inflight: e.state.inflight(),
                })
            })
            .collect()
    }

    pub(crate) fn revision_stats(&self) -> Vec<RevisionStats> {
        self.revisions
            .iter()
            .zip(&self.groups)
            .enumerate()
            .map(|(i, (r, g))| r.snapshot(self.split.as_ref().map(|s| s.weights[i]), g.ready))
            .collect()
    }

    /// The sequence of revisions the split would choose for its next `n` requests, without
    /// any fallback (for tests of exactness).
    #[cfg(test)]
    fn split_sequence(&self, n: usize) -> Vec<usize> {
        (0..n)
            .filter_map(|_| match self.next_in_split() {
                Want::Revision(r) => Some(r),
                Want::Any => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolConfig;
    use crate::routing::Routing;
    use std::time::Duration;

    fn entry(id: &str, revision: &str, ready: bool) -> Entry {
        let config = PoolConfig {
            max_idle: 1,
            idle_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        };
        Entry {
            state: Arc::new(BackendState::new(
                id,
                "127.0.0.1:1".parse().expect("literal"),
                config,
            )),
            weight: 1,
            ready,
            label: Some(revision.to_owned()),
            revision: 0,
        }
    }

    fn table(entries: Vec<Entry>, routing: Routing) -> Table {
        let routing = CompiledRouting::compile(routing).expect("valid routing");
        Table::new(entries, Arc::new(routing), &Table::default())
    }

    /// The revision names of `n` picks, each released at once.
    fn picks(t: &Table, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let want = t.next_in_split();
                let p = t.pick(want, &[], Instant::now()).expect("a backend");
                p.attempt.revision().name.clone()
            })
            .collect()
    }

    #[test]
    fn split_is_exact_over_every_window_of_100() {
        for (s, c) in [(95, 5), (75, 25), (50, 50), (100, 0), (1, 99), (33, 67)] {
            // Pod counts that do not divide the weights.
            let t = table(
                vec![
                    entry("s1", "stable", true),
                    entry("s2", "stable", true),
                    entry("s3", "stable", true),
                    entry("c1", "canary", true),
                ],
                Routing::split([("stable", s), ("canary", c)]),
            );
            let seq = picks(&t, 1000);
            for w in seq.windows(100) {
                assert_eq!(
                    w.iter().filter(|r| *r == "canary").count(),
                    c as usize,
                    "{s}/{c}"
                );
            }
        }
    }

    #[test]
    fn backends_of_a_revision_take_turns() {
        let t = table(
            vec![
                entry("s1", "stable", true),
                entry("s2", "stable", true),
                entry("c1", "canary", true),
            ],
            Routing::split([("stable", 1), ("canary", 1)]),
        );
        let ids: Vec<String> = (0..8)
            .map(|_| {
                let p = t
                    .pick(t.next_in_split(), &[], Instant::now())
                    .expect("pick");
                p.attempt.backend().id.clone()
            })
            .collect();
        assert_eq!(ids, ["s1", "c1", "s2", "c1", "s1", "c1", "s2", "c1"]);
    }

    #[test]
    fn share_of_a_revision_without_ready_backend_goes_to_the_others() {
        let t = table(
            vec![
                entry("a1", "a", true),
                entry("b1", "b", true),
                entry("c1", "c", false),
            ],
            Routing::split([("a", 50), ("b", 25), ("c", 25)]),
        );
        let mut fell_back = 0;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..400 {
            let p = t
                .pick(t.next_in_split(), &[], Instant::now())
                .expect("pick");
            fell_back += usize::from(p.fell_back);
            *counts.entry(p.attempt.revision().name.clone()).or_default() += 1;
        }
        assert_eq!(fell_back, 100);
        // c's 100 went 2:1 to a and b.
        assert_eq!(counts["a"], 200 + 67);
        assert_eq!(counts["b"], 100 + 33);
        assert_eq!(t.split_sequence(4).len(), 4);
    }

    #[test]
    fn last_resort_is_any_ready_backend_unless_told_otherwise() {
        let entries = || vec![entry("s1", "stable", false), entry("p1", "preview", true)];
        let t = table(entries(), Routing::split([("stable", 100)]));
        let p = t
            .pick(t.next_in_split(), &[], Instant::now())
            .expect("pick");
        assert_eq!(p.attempt.backend().id, "p1");
        assert!(p.fell_back);
        drop(p);
        let t = table(
            entries(),
            Routing {
                fallback: Fallback::WeightedRevisions,
                ..Routing::split([("stable", 100)])
            },
        );
        assert!(t.pick(t.next_in_split(), &[], Instant::now()).is_none());
    }
}
