//! The `needs` graph: checks (unknown jobs, cycles) and the scheduling plan.

use serde::Serialize;

use super::matrix::{instances, Instance};
use super::Workflow;

/// What to run and in which order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Job ids by layer: every job's `needs` lie in earlier layers, so the jobs of one layer
    /// may run in parallel. Within a layer, jobs keep file order.
    pub layers: Vec<Vec<String>>,
    /// Every job with its instances, in file order.
    pub jobs: Vec<PlannedJob>,
}

/// One job of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedJob {
    /// The job id.
    pub id: String,
    /// The jobs it waits for.
    pub needs: Vec<String>,
    /// Its instances (one per matrix combination).
    pub instances: Vec<Instance>,
}

/// The plan of a parsed (hence acyclic) workflow.
pub fn plan(wf: &Workflow) -> Plan {
    let jobs: Vec<PlannedJob> = wf
        .jobs
        .iter()
        .map(|j| PlannedJob {
            id: j.id.clone(),
            needs: j.needs.clone(),
            instances: instances(j),
        })
        .collect();
    let ids: Vec<&str> = wf.jobs.iter().map(|j| j.id.as_str()).collect();
    let deps: Vec<Vec<usize>> = wf
        .jobs
        .iter()
        .map(|j| {
            j.needs
                .iter()
                .filter_map(|n| ids.iter().position(|i| i == n))
                .collect()
        })
        .collect();
    let mut depth: Vec<Option<usize>> = vec![None; ids.len()];
    // Longest path from a root; the graph is acyclic, so this settles in `len` rounds.
    for _ in 0..=ids.len() {
        let mut changed = false;
        for i in 0..ids.len() {
            if depth[i].is_some() {
                continue;
            }
            if deps[i].iter().all(|&d| depth[d].is_some()) {
                depth[i] = Some(
                    deps[i]
                        .iter()
                        .map(|&d| depth[d].unwrap_or(0) + 1)
                        .max()
                        .unwrap_or(0),
                );
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let top = depth.iter().flatten().max().map_or(0, |d| d + 1);
    let mut layers = vec![Vec::new(); top];
    for (i, d) in depth.iter().enumerate() {
        if let Some(d) = d {
            layers[*d].push(ids[i].to_string());
        }
    }
    Plan { layers, jobs }
}

/// The first cycle in `needs` (ids in order, the first repeated at the end), starting at the
/// job of the cycle that comes first in the file. `needs` of unknown jobs are ignored.
pub(crate) fn find_cycle(ids: &[&str], needs: &[Vec<String>]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        ids: &[&str],
        needs: &[Vec<String>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Open;
        stack.push(i);
        for n in &needs[i] {
            let Some(j) = ids.iter().position(|id| id == n) else {
                continue;
            };
            match marks[j] {
                Mark::Open => {
                    let start = stack.iter().position(|&s| s == j).unwrap_or(0);
                    return Some(stack[start..].to_vec());
                }
                Mark::New => {
                    if let Some(c) = visit(j, ids, needs, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; ids.len()];
    for i in 0..ids.len() {
        if marks[i] != Mark::New {
            continue;
        }
        if let Some(mut cycle) = visit(i, ids, needs, &mut marks, &mut Vec::new()) {
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, &j)| j)
                .map_or(0, |(k, _)| k);
            cycle.rotate_left(first);
            let mut names: Vec<String> = cycle.iter().map(|&j| ids[j].to_string()).collect();
            names.push(names[0].clone());
            return Some(names);
        }
    }
    None
}
