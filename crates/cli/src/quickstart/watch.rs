//! Following a release through the running `slipway up`: what the quickstart reads is what
//! a user can read too — the store's events (`slipway` writes one for every sync, health
//! change, verification, promotion and rollout step), the CI runs in the store, the API's
//! applications, and the GitOps repository's history.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use slipway_git::Repo;
use slipway_reconcile::{AppSummary, SyncStatus};
use slipway_runtime::HealthStatus;
use slipway_store::{Event, EventId, Store};

use super::timeline::{Change, Check, Moment, Timeline};
use super::{layout, say, Committed};
use crate::Global;

/// The applications of the two stages.
const STAGING: &str = "hello-staging";
const PRODUCTION: &str = "hello-production";

/// How often the watcher looks.
const TICK: Duration = Duration::from_millis(25);

/// The watcher's view of the running system.
pub struct Watch {
    api: String,
    http: reqwest::Client,
    gitops: PathBuf,
    store: Store,
    events: Vec<Event>,
    cursor: Option<EventId>,
    log: PathBuf,
}

impl Watch {
    /// Over the API at `api`, the GitOps repository and the data directory of `slipway up`.
    pub fn new(api: &str, gitops: &Path, data_dir: &Path, log: &Path) -> anyhow::Result<Watch> {
        let store = Store::open(data_dir.join("slipway.db"))?;
        Ok(Watch {
            api: api.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            gitops: gitops.to_path_buf(),
            store,
            events: Vec::new(),
            cursor: None,
            log: log.to_path_buf(),
        })
    }

    async fn applications(&self) -> anyhow::Result<Vec<AppSummary>> {
        let r = self
            .http
            .get(format!("{}/api/v1/applications", self.api))
            .send()
            .await
            .context("slipway up does not answer")?;
        Ok(r.json().await?)
    }

    fn app<'a>(apps: &'a [AppSummary], name: &str) -> Option<&'a AppSummary> {
        apps.iter().find(|a| a.name == name)
    }

    fn gitops(&self) -> anyhow::Result<Repo> {
        Ok(Repo::open(&self.gitops)?)
    }

    /// The digest in `apps/hello/<stage>/kustomization.yaml` at the tip of main.
    pub fn overlay_digest(&self, stage: &str) -> anyhow::Result<String> {
        let repo = self.gitops()?;
        let snap = repo.snapshot("main")?;
        let path = format!("apps/hello/{stage}/kustomization.yaml");
        let text = snap
            .read_file(&path)?
            .with_context(|| format!("no {path} in the GitOps repository"))?;
        digest_in(&String::from_utf8_lossy(&text)).with_context(|| format!("{path} pins no digest"))
    }

    fn tip(&self) -> anyhow::Result<String> {
        Ok(self.gitops()?.resolve("main")?.to_string())
    }

    /// Waits until both stages are Synced to the tip of main and Healthy.
    pub async fn synced_and_healthy(
        &mut self,
        what: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let tip = self.tip()?;
            let apps = self.applications().await.unwrap_or_default();
            let ready = [STAGING, PRODUCTION].iter().all(|n| {
                Self::app(&apps, n).is_some_and(|a| {
                    a.sync == SyncStatus::Synced
                        && a.health.status == HealthStatus::Healthy
                        && a.synced_revision.as_deref() == Some(tip.as_str())
                })
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "staging and production are not Synced and Healthy on {what} after {timeout:?}: {}",
                    describe(&apps)
                );
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// Commits `files` in the source repository and announces the push as GitHub would (a
    /// signed webhook), so the workflow starts without waiting for a poll.
    pub async fn commit_source(
        &self,
        source: &Repo,
        files: &[(String, String)],
        message: &str,
        secret: &str,
    ) -> anyhow::Result<Committed> {
        let before = source.resolve("main")?.to_string();
        let at_ms = slipway_store::now_millis();
        let sha = layout::commit(source, files, message)?.to_string();
        let body = serde_json::to_vec(&json!({
            "ref": "refs/heads/main",
            "before": before,
            "after": sha,
            "repository": {
                "name": "hello",
                "full_name": "quickstart/hello",
                "clone_url": source.path().display().to_string(),
            },
            "pusher": {"name": "quickstart"},
            "head_commit": {"id": sha, "message": message},
        }))?;
        let signature = slipway_git::webhook::github_signature(secret.as_bytes(), &body);
        let r = self
            .http
            .post(format!("{}/api/v1/webhooks/git", self.api))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("quickstart-{sha}"))
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .context("the webhook")?;
        if !r.status().is_success() {
            bail!(
                "the push webhook was refused: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(Committed {
            sha,
            subject: message.to_string(),
            at_ms,
        })
    }

    /// Reads the events written since the last call.
    fn pull_events(&mut self) -> anyhow::Result<()> {
        loop {
            let batch = self.store.events_since(self.cursor, 500)?;
            let Some(last) = batch.last() else { break };
            self.cursor = Some(last.id);
            let n = batch.len();
            self.events.extend(batch);
            if n < 500 {
                break;
            }
        }
        Ok(())
    }

    /// The first event after `after_ms` that `pick` accepts.
    fn find(&self, after_ms: i64, pick: impl Fn(&Event) -> bool) -> Option<&Event> {
        self.events.iter().find(|e| e.at >= after_ms && pick(e))
    }

    /// Follows one release from its commit to its end: 100 % in production, or (`faulty`)
    /// the canary's abort and the revert in Git.
    pub async fn follow(
        &mut self,
        global: &Global,
        commit: Committed,
        faulty: bool,
        timeout: Duration,
    ) -> anyhow::Result<Change> {
        let deadline = Instant::now() + timeout;
        let mut change = Change::from(&commit);
        let mut f = Follow::default();
        let mut progress = Progress::default();
        loop {
            self.pull_events()?;
            self.step(&commit, faulty, &mut change, &mut f)?;
            for m in &change.moments[progress.printed.min(change.moments.len())..] {
                say(
                    global,
                    &format!(
                        "  +{:>6.2} s  {}",
                        (m.at_ms - commit.at_ms) as f64 / 1000.0,
                        m.what
                    ),
                );
            }
            progress.printed = change.moments.len();
            if f.done {
                change.outcome = if faulty {
                    "caught by the canary and rolled back".into()
                } else {
                    "100 % in production".into()
                };
                return Ok(change);
            }
            if let Some(why) = f.failed.take() {
                bail!("{}: {why}", commit.subject);
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: not through after {timeout:?} (last: {}); see {}",
                    commit.subject,
                    change.moments.last().map_or("", |m| m.what.as_str()),
                    self.log.display()
                );
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// One look: adds every moment that has happened since the last look.
    fn step(
        &mut self,
        commit: &Committed,
        faulty: bool,
        change: &mut Change,
        f: &mut Follow,
    ) -> anyhow::Result<()> {
        let since = commit.at_ms;
        // CI: the run of this commit.
        if f.run.is_none() {
            if let Some(run) = self
                .store
                .ci_runs(50)?
                .into_iter()
                .find(|r| r.sha == commit.sha)
            {
                f.run = Some(run.id);
            }
        }
        // One read of the run per look while CI is going: its start, then its end.
        if let (Some(id), false) = (f.run, f.ci_done) {
            if let Some(run) = self.store.ci_run(id)? {
                if let (false, Some(started)) = (f.ci_started, run.started_ms) {
                    change.push(moment(
                        "trigger",
                        format!("CI run {id} started ({})", run.workflow),
                        started,
                    ));
                    f.ci_started = true;
                }
                if f.ci_started && run.finished_ms.is_some() {
                    if run.conclusion.as_deref() != Some("success") {
                        f.failed = Some(format!(
                            "CI run {id} ended {} (slipway ci logs {id})",
                            run.conclusion.as_deref().unwrap_or("?")
                        ));
                        return Ok(());
                    }
                    let ci = ci_summary(run.result.as_ref().unwrap_or(&Value::Null));
                    change.image = ci.image.clone();
                    let mut m = moment(
                        "ci",
                        format!("delivered to staging by run {id}"),
                        ci.delivered_ms.unwrap_or(run.finished_ms.unwrap_or(since)),
                    );
                    m.user_ms = ci.user_ms;
                    m.detail = ci.detail;
                    change.push(m);
                    f.ci_done = true;
                }
            }
        }
        // The delivery commit in the GitOps repository.
        if f.ci_done && f.delivered.is_none() {
            let repo = self.gitops()?;
            for e in repo.log("main", Some(30))? {
                if trailer(&e.message, "Source-Commit") == Some(commit.sha.as_str())
                    && e.summary.starts_with("deliver")
                {
                    f.delivered = Some(e.id.to_string());
                    f.digest = trailer(&e.message, "Image")
                        .and_then(|i| i.split_once('@'))
                        .map(|(_, d)| d.to_string());
                    break;
                }
            }
        }
        let Some(delivered) = f.delivered.clone() else {
            return Ok(());
        };
        // Staging.
        if !f.staging_synced {
            if let Some(e) = self.find(since, |e| {
                e.kind == "sync.succeeded"
                    && e.application.as_deref() == Some(STAGING)
                    && e.data["revision"].as_str() == Some(delivered.as_str())
            }) {
                let at = e.at;
                change.push(moment(
                    "staging",
                    format!("staging synced ({})", short(&delivered)),
                    at,
                ));
                f.staging_synced = true;
                f.staging_synced_at = at;
            }
        }
        if f.staging_synced && !f.staging_healthy {
            let at = f.staging_synced_at;
            let healthy = self
                .find(at, |e| {
                    e.kind == "app.health"
                        && e.application.as_deref() == Some(STAGING)
                        && e.data["status"] == "Healthy"
                })
                .map(|e| e.at);
            if let Some(h) = healthy {
                change.push(moment("staging", "staging healthy".into(), h));
                f.staging_healthy = true;
            }
        }
        // Verification of staging and promotion into production.
        let digest = f.digest.clone().unwrap_or_default();
        let about = |e: &Event, stage: &str| {
            e.data["stage"].as_str() == Some(stage)
                && e.data["digest"].as_str() == Some(digest.as_str())
        };
        if !f.verified {
            if let Some(e) = self.find(since, |e| {
                e.kind.starts_with("delivery.verification") && about(e, "staging")
            }) {
                if e.kind.ends_with("failed") {
                    f.failed = Some(format!("staging verification failed: {}", e.message));
                    return Ok(());
                }
            }
            if let Some(e) = self.find(since, |e| {
                e.kind == "delivery.verification.passed" && about(e, "staging")
            }) {
                let mut m = moment("verification", "staging verified".into(), e.at);
                m.detail = e.message.clone();
                change.push(m);
                f.verified = true;
            }
        }
        if f.verified && f.promoted.is_none() {
            if let Some(e) = self.find(since, |e| {
                e.kind.starts_with("delivery.promot")
                    && e.kind.ends_with("committed")
                    && about(e, "production")
            }) {
                let c = e.data["commit"].as_str().unwrap_or_default().to_string();
                change.push(moment(
                    "promotion",
                    format!("promoted to production ({})", short(&c)),
                    e.at,
                ));
                f.promoted = Some(c);
            }
        }
        let Some(promoted) = f.promoted.clone() else {
            return Ok(());
        };
        // Production: the sync of the promotion, the canary's steps, and its end.
        if f.production_synced_at == 0 {
            if let Some(e) = self.find(since, |e| {
                e.kind == "sync.succeeded"
                    && e.application.as_deref() == Some(PRODUCTION)
                    && e.data["revision"].as_str() == Some(promoted.as_str())
            }) {
                let at = e.at;
                change.push(moment(
                    "production",
                    "production synced: canary starts".into(),
                    at,
                ));
                f.production_synced_at = at;
            }
        }
        if f.production_synced_at == 0 {
            return Ok(());
        }
        let from = f.production_synced_at;
        let rollout_events: Vec<Event> = self
            .events
            .iter()
            .filter(|e| {
                e.at >= from
                    && e.application.as_deref() == Some(PRODUCTION)
                    && e.kind.starts_with("rollout.")
            })
            .cloned()
            .collect();
        for e in rollout_events.iter().skip(f.rollout_seen) {
            match e.kind.as_str() {
                "rollout.step-completed" => {
                    let mut m = moment("canary", canary_step(&e.message), e.at);
                    m.pause_ms = pause_ms(&e.message);
                    change.push(m);
                }
                "rollout.aborted" => {
                    let mut m = moment(
                        "analysis",
                        "canary aborted: traffic back on stable".into(),
                        e.at,
                    );
                    // Until the abort, the canary served traffic and the analysis waited
                    // for evidence: time the release's own fault and the analysis
                    // interval decide, not Slipway; the abort itself is the moment.
                    m.pause_ms = u64::try_from(e.at - from).unwrap_or(0);
                    m.detail = e.message.clone();
                    change.push(m);
                    f.aborted_at = Some(e.at);
                }
                "rollout.completed" => {
                    change.push(moment("canary", "production at 100 %".into(), e.at));
                    f.completed = true;
                }
                _ => {}
            }
        }
        f.rollout_seen = rollout_events.len();
        if !faulty && f.aborted_at.is_some() {
            f.failed = Some("the production canary was aborted".into());
        }
        if faulty && f.completed {
            f.failed = Some("the faulty release reached 100 % in production".into());
        }
        if !faulty && f.completed {
            f.done = true;
        }
        if let (Some(aborted), false) = (f.aborted_at, f.reverted) {
            if let Some(e) = self.find(aborted, |e| {
                e.kind == "rollback" && e.application.as_deref() == Some(PRODUCTION)
            }) {
                let mut m = moment("revert", "revert commit in Git".into(), e.at);
                m.detail = e.message.clone();
                change.push(m);
                f.reverted = true;
            }
        }
        if let (Some(aborted), true) = (f.aborted_at, f.reverted) {
            // The revert commit: a sync of production to a revision after the promotion.
            if let Some(e) = self.find(aborted, |e| {
                e.kind == "sync.succeeded"
                    && e.application.as_deref() == Some(PRODUCTION)
                    && e.data["revision"].as_str().is_some_and(|r| r != promoted)
            }) {
                let r = e.data["revision"].as_str().unwrap_or_default().to_string();
                let at = e.at;
                change.push(moment(
                    "revert",
                    format!("revert commit {} synced: Git says what runs", short(&r)),
                    at,
                ));
                f.done = true;
            }
        }
        Ok(())
    }

    /// The GitOps repository's history, newest first.
    pub fn gitops_history(&self, n: usize) -> anyhow::Result<Vec<String>> {
        Ok(self
            .gitops()?
            .log("main", Some(n))?
            .into_iter()
            .map(|e| format!("{} {}", short(&e.id.to_string()), e.summary))
            .collect())
    }

    /// What must hold at the end: production and staging on the good release, the faulty
    /// image out of production, Git's history telling the story.
    pub async fn final_checks(&self, timeline: &Timeline) -> anyhow::Result<Vec<Check>> {
        let good = timeline
            .changes
            .first()
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let bad = timeline
            .changes
            .get(1)
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let digest = |image: &str| {
            image
                .split_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default()
        };
        let production = self.overlay_digest("production")?;
        let staging = self.overlay_digest("staging")?;
        let apps = self.applications().await?;
        let tip = self.tip()?;
        let prod = Self::app(&apps, PRODUCTION);
        let log: Vec<String> = self
            .gitops()?
            .log("main", Some(20))?
            .into_iter()
            .map(|e| e.summary)
            .collect();
        let count = |prefix: &str| log.iter().filter(|s| s.starts_with(prefix)).count();
        Ok(vec![
            Check {
                what: "production runs the good release (0.2.0)".into(),
                ok: !good.is_empty() && production == digest(&good),
                found: format!("production overlay pins {}", short_digest(&production)),
            },
            Check {
                what: "the faulty release (0.3.0) is not in production".into(),
                ok: !bad.is_empty() && production != digest(&bad),
                found: format!("faulty image {}", short_digest(&digest(&bad))),
            },
            Check {
                what: "production is Synced to Git's tip and Healthy".into(),
                ok: prod.is_some_and(|a| {
                    a.sync == SyncStatus::Synced
                        && a.health.status == HealthStatus::Healthy
                        && a.synced_revision.as_deref() == Some(tip.as_str())
                }),
                found: describe(&apps),
            },
            Check {
                what: "staging holds the last delivered image (0.3.0)".into(),
                ok: !bad.is_empty() && staging == digest(&bad),
                found: format!("staging overlay pins {}", short_digest(&staging)),
            },
            Check {
                what: "Git has 2 deliveries, 2 promotions and the revert".into(),
                ok: count("deliver") == 2
                    && count("promote") == 2
                    && log.first().is_some_and(|s| !s.starts_with("promote")),
                found: format!(
                    "{} deliver, {} promote, newest: {}",
                    count("deliver"),
                    count("promote"),
                    log.first().cloned().unwrap_or_default()
                ),
            },
        ])
    }
}

/// What the watcher found so far for one release.
#[derive(Debug, Default)]
struct Follow {
    run: Option<i64>,
    ci_started: bool,
    ci_done: bool,
    delivered: Option<String>,
    digest: Option<String>,
    staging_synced: bool,
    staging_synced_at: i64,
    staging_healthy: bool,
    verified: bool,
    promoted: Option<String>,
    production_synced_at: i64,
    rollout_seen: usize,
    completed: bool,
    aborted_at: Option<i64>,
    reverted: bool,
    done: bool,
    failed: Option<String>,
}

#[derive(Debug, Default)]
struct Progress {
    printed: usize,
}

fn moment(stage: &str, what: String, at_ms: i64) -> Moment {
    Moment {
        what,
        at_ms,
        user_ms: 0,
        pause_ms: 0,
        stage: stage.to_string(),
        detail: String::new(),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn short_digest(d: &str) -> String {
    d.strip_prefix("sha256:").map_or_else(
        || d.to_string(),
        |h| format!("sha256:{}", &h[..h.len().min(12)]),
    )
}

/// `sha256:<64 hex>` in the `images:` part of a kustomization.
pub fn digest_in(kustomization: &str) -> Option<String> {
    let images = kustomization.find("images:")?;
    let rest = &kustomization[images..];
    let at = rest.find("sha256:")?;
    let hex: String = rest[at + 7..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (hex.len() == 64).then(|| format!("sha256:{hex}"))
}

/// The value of `Key: value` among a commit message's lines.
pub fn trailer<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// One line per application: `name sync/health`.
fn describe(apps: &[AppSummary]) -> String {
    apps.iter()
        .map(|a| format!("{} {:?}/{}", a.name, a.sync, a.health.status.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `canary 5 %` from a step-completed message, else the message.
fn canary_step(message: &str) -> String {
    let m = message.split_once(": ").map_or(message, |(_, m)| m);
    format!("canary: {m}")
}

/// The configured pause a step-completed message names (`pause 3s`), in ms.
fn pause_ms(message: &str) -> u64 {
    let Some(i) = message.find("pause") else {
        return 0;
    };
    let rest = &message[i + 5..];
    let rest = rest.trim_start_matches(|c: char| !c.is_ascii_digit());
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    let unit = &rest[digits.len()..];
    if unit.starts_with("ms") {
        n
    } else if unit.starts_with('s') {
        n * 1000
    } else if unit.starts_with('m') {
        n * 60_000
    } else {
        0
    }
}

/// From a CI run's result: what the user's `run:` steps took, when the deliver step ended,
/// the image it delivered, and a one-line summary of the steps.
struct CiSummary {
    user_ms: u64,
    delivered_ms: Option<i64>,
    image: Option<String>,
    detail: String,
}

fn ci_summary(result: &Value) -> CiSummary {
    let mut user_ms = 0;
    let mut delivered_ms = None;
    let mut image = None;
    let mut parts = Vec::new();
    for job in result["jobs"].as_array().into_iter().flatten() {
        for instance in job["instances"].as_array().into_iter().flatten() {
            for step in instance["steps"].as_array().into_iter().flatten() {
                let name = step["name"].as_str().unwrap_or("");
                let ms = step["duration_ms"].as_u64().unwrap_or(0);
                let uses = step["uses"].as_str();
                if uses.is_none() {
                    user_ms += ms;
                }
                parts.push(format!("{name} {}", fmt_ms(ms)));
                if let Some(i) = step["outputs"]["image"].as_str() {
                    image = Some(i.to_string());
                }
                if uses.is_some_and(|u| u.starts_with("slipway/deliver")) {
                    delivered_ms = step["started_ms"]
                        .as_i64()
                        .map(|s| s + i64::try_from(ms).unwrap_or(0));
                }
            }
        }
    }
    CiSummary {
        user_ms,
        delivered_ms,
        image,
        detail: parts.join(", "),
    }
}

fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_read_from_the_images_part() {
        let d = "ab".repeat(32);
        let k = format!(
            "resources:\n- x\nimages:\n- name: hello\n  newName: r/hello\n  digest: sha256:{d}\n"
        );
        assert_eq!(digest_in(&k), Some(format!("sha256:{d}")));
        assert_eq!(digest_in("images:\n- name: hello\n  newTag: 1.0\n"), None);
    }

    #[test]
    fn trailers_are_read_from_messages() {
        let m = "deliver: hello sha256:ab to staging\n\nDelivery: hello\nSource-Commit: 0123\nImage: r/hello@sha256:ab\n";
        assert_eq!(trailer(m, "Source-Commit"), Some("0123"));
        assert_eq!(trailer(m, "Image"), Some("r/hello@sha256:ab"));
        assert_eq!(trailer(m, "Stage"), None);
    }

    #[test]
    fn pauses_are_read_from_step_messages() {
        assert_eq!(
            pause_ms("hello-production/hello: step 2/4 completed: pause 3s"),
            3000
        );
        assert_eq!(pause_ms("step 1/4 completed: setWeight 5"), 0);
        assert_eq!(pause_ms("pause 500ms"), 500);
    }

    #[test]
    fn ci_summaries_split_user_steps_from_slipway_steps() {
        let r = json!({"jobs": [{"instances": [{"steps": [
            {"name": "build", "duration_ms": 2000, "started_ms": 10},
            {"name": "image", "uses": "slipway/image-build@v1", "duration_ms": 100, "started_ms": 2010},
            {"name": "push", "uses": "slipway/push@v1", "duration_ms": 50, "started_ms": 2110,
             "outputs": {"image": "r/hello@sha256:ab"}},
            {"name": "deliver", "uses": "slipway/deliver@v1", "duration_ms": 30, "started_ms": 2160}
        ]}]}]});
        let s = ci_summary(&r);
        assert_eq!(s.user_ms, 2000);
        assert_eq!(s.delivered_ms, Some(2190));
        assert_eq!(s.image.as_deref(), Some("r/hello@sha256:ab"));
        assert!(s.detail.starts_with("build 2.0 s, image 100 ms"));
    }
}
