//! The quickstart's timeline: for each release, the moments that matter on its critical
//! path (commit, CI start, delivery, staging synced and healthy, verification, promotion,
//! production at 100 % — or the abort and the revert), and what each stage between two of
//! them cost, split into the user's own work (their `run:` steps), configured waits (canary
//! pauses) and what is left: what Slipway itself added.
//!
//! Pure: the watcher gathers the moments (from the store's events, the CI run's result and
//! its own commits); this module only arranges and prints them.

use serde::Serialize;

/// A moment on a release's critical path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    /// What happened, for people: `CI started (run 1)`.
    pub what: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Of the time since the previous moment, what the user's own steps took.
    pub user_ms: u64,
    /// Of the time since the previous moment, what configured waits took: canary pauses,
    /// and a canary's time serving traffic until its analysis failed it.
    pub pause_ms: u64,
    /// What the stage that ends here was, for the table: `ci`, `staging`, `verification`...
    pub stage: String,
    /// Details for people: `build 2.1 s, test 5.3 s`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One release's way through the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The source commit.
    pub sha: String,
    /// Its subject.
    pub subject: String,
    /// The image built from it (`repo@sha256:...`), once known.
    pub image: Option<String>,
    /// How it ended: `production` (at 100 %), `rolled back`, or what failed.
    pub outcome: String,
    /// Its moments in order, the commit first.
    pub moments: Vec<Moment>,
}

impl Change {
    /// A change committed at `at_ms`, nothing else known yet.
    pub fn new(sha: &str, subject: &str, at_ms: i64) -> Change {
        Change {
            sha: sha.to_string(),
            subject: subject.to_string(),
            image: None,
            outcome: String::new(),
            moments: vec![Moment {
                what: format!("commit {}", &sha[..sha.len().min(12)]),
                at_ms,
                user_ms: 0,
                pause_ms: 0,
                stage: "commit".into(),
                detail: subject.to_string(),
            }],
        }
    }

    /// Appends a moment (kept in time order: a moment observed out of order is moved into
    /// place, and the stages around it are what the times say).
    pub fn push(&mut self, moment: Moment) {
        let i = self
            .moments
            .iter()
            .rposition(|m| m.at_ms <= moment.at_ms)
            .map_or(0, |i| i + 1);
        self.moments.insert(i, moment);
    }

    /// The stages: from each moment to the next.
    pub fn stages(&self) -> Vec<Stage> {
        self.moments
            .windows(2)
            .map(|w| {
                let total = u64::try_from(w[1].at_ms - w[0].at_ms).unwrap_or(0);
                Stage {
                    stage: w[1].stage.clone(),
                    to: w[1].what.clone(),
                    total_ms: total,
                    user_ms: w[1].user_ms.min(total),
                    pause_ms: w[1].pause_ms.min(total.saturating_sub(w[1].user_ms)),
                    slipway_ms: total
                        .saturating_sub(w[1].user_ms)
                        .saturating_sub(w[1].pause_ms),
                    detail: w[1].detail.clone(),
                }
            })
            .collect()
    }

    /// From the commit to the last moment.
    pub fn total_ms(&self) -> u64 {
        match (self.moments.first(), self.moments.last()) {
            (Some(a), Some(b)) => u64::try_from(b.at_ms - a.at_ms).unwrap_or(0),
            _ => 0,
        }
    }

    /// What Slipway added over the whole way.
    pub fn slipway_ms(&self) -> u64 {
        self.stages().iter().map(|s| s.slipway_ms).sum()
    }
}

/// The time between two moments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// Its name: `ci`, `staging`...
    pub stage: String,
    /// The moment it ends with.
    pub to: String,
    /// How long it took.
    pub total_ms: u64,
    /// Of that, the user's steps.
    pub user_ms: u64,
    /// Of that, configured waits.
    pub pause_ms: u64,
    /// The rest: Slipway.
    pub slipway_ms: u64,
    /// Details.
    pub detail: String,
}

/// Both releases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// The releases, in order.
    pub changes: Vec<Change>,
}

/// What the production traffic saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traffic {
    /// 2xx answers.
    pub ok: u64,
    /// 5xx answers.
    pub errors: u64,
    /// Requests without an answer.
    pub failed: u64,
    /// From the first 5xx to the last.
    pub error_window_ms: Option<u64>,
}

/// A check of the end state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What is checked.
    pub what: String,
    /// Whether it holds.
    pub ok: bool,
    /// What was found.
    pub found: String,
}

/// Everything the quickstart reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The releases.
    pub changes: Vec<ReportChange>,
    /// The GitOps repository's history, newest first: `<short sha> <subject>`.
    pub gitops_history: Vec<String>,
    /// The end state's checks.
    pub checks: Vec<Check>,
    /// What production's users saw.
    pub traffic: Traffic,
}

/// A release with its stages computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportChange {
    /// The release.
    #[serde(flatten)]
    pub change: Change,
    /// Its stages.
    pub stages: Vec<Stage>,
    /// Commit to last moment.
    pub total_ms: u64,
    /// What Slipway added.
    pub slipway_ms: u64,
}

impl Report {
    /// The report of `timeline`.
    pub fn new(
        timeline: Timeline,
        gitops_history: Vec<String>,
        checks: Vec<Check>,
        traffic: Traffic,
    ) -> Report {
        Report {
            changes: timeline
                .changes
                .into_iter()
                .map(|c| ReportChange {
                    stages: c.stages(),
                    total_ms: c.total_ms(),
                    slipway_ms: c.slipway_ms(),
                    change: c,
                })
                .collect(),
            gitops_history,
            checks,
            traffic,
        }
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.changes {
            s.push_str(&format!(
                "\n{} ({}): {} in {}, Slipway's own part {}\n",
                c.change.subject,
                &c.change.sha[..c.change.sha.len().min(12)],
                c.change.outcome,
                secs(c.total_ms),
                secs(c.slipway_ms),
            ));
            s.push_str(&format!(
                "  {:<14} {:<44} {:>8} {:>8} {:>8} {:>8}\n",
                "stage", "until", "took", "yours", "waits", "slipway"
            ));
            for st in &c.stages {
                s.push_str(&format!(
                    "  {:<14} {:<44} {:>8} {:>8} {:>8} {:>8}\n",
                    st.stage,
                    clip(&st.to, 44),
                    secs(st.total_ms),
                    dash(st.user_ms),
                    dash(st.pause_ms),
                    secs(st.slipway_ms),
                ));
                if !st.detail.is_empty() {
                    s.push_str(&format!("  {:<14} {}\n", "", st.detail));
                }
            }
        }
        s.push_str(&format!(
            "\nproduction traffic: {} ok, {} errors{}, {} without answer\n",
            self.traffic.ok,
            self.traffic.errors,
            self.traffic
                .error_window_ms
                .map(|w| format!(" (all within {})", secs(w)))
                .unwrap_or_default(),
            self.traffic.failed
        ));
        s.push_str("\ngitops history (newest first):\n");
        for h in &self.gitops_history {
            s.push_str(&format!("  {h}\n"));
        }
        s.push_str("\nchecks:\n");
        for c in &self.checks {
            s.push_str(&format!(
                "  {} {}: {}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.what,
                c.found
            ));
        }
        s
    }
}

fn secs(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

fn dash(ms: u64) -> String {
    if ms == 0 {
        "-".into()
    } else {
        secs(ms)
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moment(what: &str, at_ms: i64, user_ms: u64, pause_ms: u64) -> Moment {
        Moment {
            what: what.into(),
            at_ms,
            user_ms,
            pause_ms,
            stage: what.split(' ').next().unwrap_or("").into(),
            detail: String::new(),
        }
    }

    #[test]
    fn stages_split_user_work_pauses_and_slipway() {
        let mut c = Change::new("0123456789abcdef", "hello 0.2.0", 1_000);
        c.push(moment("ci started", 1_050, 0, 0));
        c.push(moment("delivered", 9_050, 7_500, 0));
        c.push(moment("production 100%", 16_300, 0, 6_000));
        let st = c.stages();
        assert_eq!(st.len(), 3);
        assert_eq!(st[0].slipway_ms, 50);
        assert_eq!((st[1].user_ms, st[1].slipway_ms), (7_500, 500));
        assert_eq!((st[2].pause_ms, st[2].slipway_ms), (6_000, 1_250));
        assert_eq!(c.total_ms(), 15_300);
        assert_eq!(c.slipway_ms(), 1_800);
    }

    #[test]
    fn a_moment_seen_late_goes_into_its_place() {
        let mut c = Change::new("0123456789abcdef", "x", 0);
        c.push(moment("b", 200, 0, 0));
        c.push(moment("a", 100, 0, 0));
        let order: Vec<&str> = c.moments.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(order, ["commit 0123456789ab", "a", "b"]);
    }

    #[test]
    fn user_time_never_exceeds_the_stage() {
        let mut c = Change::new("0123456789abcdef", "x", 0);
        // Clocks of different writers can disagree by a few ms.
        c.push(moment("ci", 100, 150, 0));
        let st = c.stages();
        assert_eq!((st[0].user_ms, st[0].slipway_ms), (100, 0));
    }

    #[test]
    fn the_text_report_names_every_stage_and_check() {
        let mut c = Change::new("0123456789abcdef", "hello 0.2.0", 0);
        c.outcome = "100 % in production".into();
        c.push(moment("ci started", 40, 0, 0));
        let r = Report::new(
            Timeline { changes: vec![c] },
            vec!["abc1234 promote: hello".into()],
            vec![Check {
                what: "production runs 0.2.0".into(),
                ok: true,
                found: "sha256:...".into(),
            }],
            Traffic {
                ok: 10,
                errors: 0,
                failed: 0,
                error_window_ms: None,
            },
        );
        let t = r.text();
        assert!(
            t.contains("hello 0.2.0 (0123456789ab): 100 % in production in 40 ms"),
            "{t}"
        );
        assert!(t.contains("ci started"));
        assert!(t.contains("ok   production runs 0.2.0"));
        assert!(t.contains("abc1234 promote: hello"));
    }
}
