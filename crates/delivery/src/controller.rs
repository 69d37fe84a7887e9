//! The delivery loop and its handle.
//!
//! One tokio task owns everything. Every `interval` (100 ms by default) it resolves the
//! tracked branch (re-reading Delivery files and overlay digests when the tip moved), takes
//! the GitOps controller's view of the applications, asks [`crate::plan::decide`] per
//! Delivery, and acts. Verifications run as their own tasks and report back; promotions are
//! commits made in the loop (they are small), followed by a refresh of the GitOps
//! controller so the new commit syncs at once. `slipway promote` comes in as a command, so
//! it is serialised with the loop's own commits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde_json::json;
use slipway_git::{cache_dir_name, is_url, CloneOptions, CommitId, Repo};
use slipway_reconcile::{AppSummary, ControllerHandle};
use slipway_runtime::Runtime;
use slipway_store::{now_millis, NewEvent, NewPromotion, NewVerification, PromotionPolicy, Store};
use tokio::sync::{mpsc, oneshot};

use crate::plan::{
    decide, promotion_branch, short_digest, Action, AppObservation, PriorPromotion,
    PromotionMessage, StageInput,
};
use crate::promote::{self, BrokenFile};
use crate::spec::Delivery;
use crate::verify::{self, ServiceAddr, VerifyContext};
use crate::{DeliveryError, DeliveryStatus, PromoteOutcome, PromoteRequest, StageStatus};

/// How long a promotion that failed waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where Deliveries come from.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The GitOps repository: a local path (work tree or bare), or a URL whose clone under
    /// `git_dir` (the GitOps controller's, which fetches it) is read, and where promotion
    /// commits are made and pushed from.
    pub repo: String,
    /// Where clones of URLs live (`DATA_DIR/git`, shared with the GitOps controller).
    pub git_dir: PathBuf,
    /// Credentials for a URL.
    pub clone: CloneOptions,
    /// The tracked revision: a branch, or `HEAD` (the branch it names).
    pub revision: String,
    /// The directory holding the Applications (Delivery files live there too).
    pub apps_path: String,
    /// How often to look (default 100 ms).
    pub interval: Duration,
}

impl DeliveryConfig {
    /// The defaults for everything but the repository.
    pub fn new(repo: &str, revision: &str, apps_path: &str, data_dir: &Path) -> DeliveryConfig {
        DeliveryConfig {
            repo: repo.to_string(),
            git_dir: data_dir.join("git"),
            clone: CloneOptions::default(),
            revision: revision.to_string(),
            apps_path: apps_path.to_string(),
            interval: Duration::from_millis(100),
        }
    }
}

/// The GitOps controller as deliveries see it: what is synced and healthy, and a way to make
/// it look at Git now. Implemented by [`ControllerHandle`].
pub trait GitOps: Send + Sync + 'static {
    /// Every application.
    fn applications(&self) -> Vec<AppSummary>;
    /// Fetch Git and reconcile soon.
    fn refresh(&self, reason: &str);
}

impl GitOps for ControllerHandle {
    fn applications(&self) -> Vec<AppSummary> {
        ControllerHandle::applications(self)
    }

    fn refresh(&self, reason: &str) {
        ControllerHandle::refresh(self, reason);
    }
}

/// The Services of an application and where the embedded proxy listens for them.
/// Implemented by every [`Runtime`].
pub trait Services: Send + Sync + 'static {
    /// Each Service of `application` with its first port's address.
    fn services(&self, application: &str) -> Vec<ServiceAddr>;
}

impl<R: Runtime> Services for R {
    fn services(&self, application: &str) -> Vec<ServiceAddr> {
        self.endpoints(Some(application))
            .into_iter()
            .filter_map(|e| {
                let (_, addr) = e.ports.first()?;
                Some(ServiceAddr {
                    name: e.name,
                    addr: *addr,
                })
            })
            .collect()
    }
}

/// Starts delivery controllers.
pub struct DeliveryController;

impl DeliveryController {
    /// Open the repository, read the Deliveries once, and start the loop.
    pub async fn start(
        config: DeliveryConfig,
        gitops: Arc<dyn GitOps>,
        services: Arc<dyn Services>,
        store: Store,
    ) -> Result<DeliveryHandle, DeliveryError> {
        let (repo, remote) = if is_url(&config.repo) {
            let dest = config.git_dir.join(cache_dir_name(&config.repo));
            let repo = Repo::open_or_clone(&config.repo, &dest, &config.clone)?;
            (repo, Some(config.clone.clone()))
        } else {
            (Repo::open(Path::new(&config.repo))?, None)
        };
        let branch = promote::tracked_branch(&repo, &config.revision)?;
        let shared = Arc::new(RwLock::new(BTreeMap::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut engine = Engine {
            config,
            repo,
            remote,
            branch,
            gitops,
            services,
            store,
            shared: shared.clone(),
            tip: None,
            deliveries: Vec::new(),
            broken: Vec::new(),
            tip_digests: HashMap::new(),
            synced_digests: HashMap::new(),
            verified: HashMap::new(),
            promoted: HashMap::new(),
            running: HashSet::new(),
            announced: HashSet::new(),
            reported: HashSet::new(),
            errors: HashMap::new(),
            read_error: None,
            done_tx,
        };
        engine.tick();
        tokio::spawn(engine.run(rx, done_rx));
        Ok(DeliveryHandle { tx, shared })
    }
}

/// A cheap, cloneable handle on a running delivery controller.
#[derive(Clone)]
pub struct DeliveryHandle {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<RwLock<BTreeMap<String, DeliveryStatus>>>,
}

enum Command {
    Promote {
        delivery: String,
        stage: String,
        request: PromoteRequest,
        reply: oneshot::Sender<Result<PromoteOutcome, DeliveryError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

impl DeliveryHandle {
    /// Every Delivery (broken files included, with their error), by name.
    pub fn list(&self) -> Vec<DeliveryStatus> {
        self.shared
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// One Delivery.
    pub fn get(&self, name: &str) -> Option<DeliveryStatus> {
        self.shared
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Promote a digest into a stage by hand (`slipway promote`): a commit with
    /// `Approved-by: <approver> (manual)`. Refused when the stage's policy is not `manual`,
    /// the digest is not verified in the previous stage (both unless `force`), or the
    /// digest is already in the stage.
    pub async fn promote(
        &self,
        delivery: &str,
        stage: &str,
        request: PromoteRequest,
    ) -> Result<PromoteOutcome, DeliveryError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Promote {
                delivery: delivery.to_string(),
                stage: stage.to_string(),
                request,
                reply,
            })
            .map_err(|_| DeliveryError::Stopped)?;
        rx.await.map_err(|_| DeliveryError::Stopped)?
    }

    /// Stop the loop (verifications in flight are dropped, their commands killed).
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(reply)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A finished verification, reported to the loop.
struct Done {
    record: NewVerification,
    application: String,
}

/// `(delivery, stage, digest)`.
type Key = (String, String, String);

struct Engine {
    config: DeliveryConfig,
    repo: Repo,
    /// Credentials when `repo` is a clone of a URL (commits are pushed).
    remote: Option<CloneOptions>,
    branch: String,
    gitops: Arc<dyn GitOps>,
    services: Arc<dyn Services>,
    store: Store,
    shared: Arc<RwLock<BTreeMap<String, DeliveryStatus>>>,
    /// The tip the Deliveries and digests below were read at.
    tip: Option<CommitId>,
    deliveries: Vec<Delivery>,
    broken: Vec<BrokenFile>,
    /// `(delivery, stage)` → digest in the overlay at the tip.
    tip_digests: HashMap<(String, String), Option<String>>,
    /// `(revision, overlay, image)` → digest: what a synced revision runs.
    synced_digests: HashMap<(String, String, String), Option<String>>,
    /// Verification outcomes (`Some((passed, summary))`), read from the store once.
    verified: HashMap<Key, Option<(bool, String)>>,
    /// Latest promotions, read from the store once.
    promoted: HashMap<Key, Option<PriorPromotion>>,
    running: HashSet<Key>,
    /// Manual waits already announced.
    announced: HashSet<Key>,
    /// Broken files already reported, by error text.
    reported: HashSet<String>,
    /// The last failure to read the repository.
    read_error: Option<String>,
    /// The last failure to act, per `(delivery, stage)`.
    errors: HashMap<(String, String), (String, Instant)>,
    done_tx: mpsc::UnboundedSender<Done>,
}

impl Engine {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
    ) {
        let mut interval = tokio::time::interval(self.config.interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => self.tick(),
                Some(done) = done_rx.recv() => {
                    self.finished(done);
                    self.tick();
                }
                cmd = rx.recv() => match cmd {
                    Some(Command::Promote { delivery, stage, request, reply }) => {
                        let r = self.manual(&delivery, &stage, &request);
                        let _ = reply.send(r);
                        self.tick();
                    }
                    Some(Command::Shutdown(reply)) => {
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
            }
        }
    }

    fn event(&self, kind: &str, application: &str, message: String, data: serde_json::Value) {
        tracing::info!(kind, application, "{message}");
        let mut e = NewEvent::now(kind, message).data(data);
        if !application.is_empty() {
            e = e.application(application);
        }
        if let Err(e) = self.store.append_event(&e) {
            tracing::warn!("recording a delivery event: {e}");
        }
    }

    /// Re-read the Deliveries and their overlay digests when the tip moved.
    fn refresh_tip(&mut self) -> Result<(), DeliveryError> {
        let tip = self.repo.resolve(&self.branch)?;
        if self.tip == Some(tip) {
            return Ok(());
        }
        let snapshot = self.repo.snapshot(&tip.to_string())?;
        let (deliveries, broken) = promote::read_deliveries(&snapshot, &self.config.apps_path);
        let mut digests = HashMap::new();
        for d in &deliveries {
            for s in &d.stages {
                digests.insert(
                    (d.name.clone(), s.name.clone()),
                    promote::digest_at(&snapshot, &s.overlay, &d.image.name),
                );
            }
        }
        drop(snapshot);
        for b in &broken {
            if self.reported.insert(b.error.clone()) {
                let name = b.names.first().cloned().unwrap_or_else(|| b.file.clone());
                let first = b.error.lines().next().unwrap_or_default().to_string();
                self.event(
                    "delivery.error",
                    "",
                    format!("Delivery {name} is broken: {first}"),
                    json!({"delivery": name, "file": b.file, "error": b.error}),
                );
            }
        }
        self.deliveries = deliveries;
        self.broken = broken;
        self.tip_digests = digests;
        self.tip = Some(tip);
        Ok(())
    }

    fn synced_digest(&mut self, revision: &str, overlay: &str, image: &str) -> Option<String> {
        let key = (revision.to_string(), overlay.to_string(), image.to_string());
        if let Some(d) = self.synced_digests.get(&key) {
            return d.clone();
        }
        let d = self
            .repo
            .snapshot(revision)
            .ok()
            .and_then(|s| promote::digest_at(&s, overlay, image));
        if self.synced_digests.len() > 10_000 {
            self.synced_digests.clear();
        }
        self.synced_digests.insert(key, d.clone());
        d
    }

    fn verification(&mut self, key: &Key) -> Option<(bool, String)> {
        if let Some(v) = self.verified.get(key) {
            return v.clone();
        }
        match self.store.verification(&key.0, &key.1, &key.2) {
            Ok(v) => {
                let v = v.map(|r| (r.verification.passed, r.verification.summary));
                self.verified.insert(key.clone(), v.clone());
                v
            }
            Err(e) => {
                tracing::warn!("reading a verification: {e}");
                None
            }
        }
    }

    fn promotion(&mut self, key: &Key) -> Option<PriorPromotion> {
        if let Some(p) = self.promoted.get(key) {
            return p.clone();
        }
        match self.store.promotion(&key.0, &key.1, &key.2) {
            Ok(p) => {
                let p = p.map(|r| PriorPromotion {
                    policy: r.promotion.policy,
                    branch: r.promotion.branch,
                    commit: r.promotion.commit,
                });
                self.promoted.insert(key.clone(), p.clone());
                p
            }
            Err(e) => {
                tracing::warn!("reading a promotion: {e}");
                None
            }
        }
    }

    /// One look at everything. A promotion commit moves the tip, so the status is computed
    /// again at once rather than showing the tip before the commit until the next tick.
    fn tick(&mut self) {
        self.look();
        if self.tip.is_none() {
            self.look();
        }
    }

    fn look(&mut self) {
        if let Err(e) = self.refresh_tip() {
            // Said once per distinct problem (a deleted branch would otherwise be a warning
            // every tick); the last good status stays.
            let text = e.to_string();
            if self.read_error.as_ref() != Some(&text) {
                tracing::warn!("deliveries: reading {}: {text}", self.config.repo);
                self.read_error = Some(text);
            }
            return;
        }
        self.read_error = None;
        let apps: HashMap<String, AppSummary> = self
            .gitops
            .applications()
            .into_iter()
            .map(|a| (a.name.clone(), a))
            .collect();
        let mut view = BTreeMap::new();
        let revision = self.tip.map(|t| t.to_string());
        for b in &self.broken {
            let names = if b.names.is_empty() {
                vec![b.file.clone()]
            } else {
                b.names.clone()
            };
            for name in names {
                view.insert(
                    name.clone(),
                    DeliveryStatus {
                        name,
                        file: b.file.clone(),
                        repository: String::new(),
                        image: String::new(),
                        error: Some(b.error.clone()),
                        revision: revision.clone(),
                        stages: Vec::new(),
                    },
                );
            }
        }
        let deliveries = self.deliveries.clone();
        for d in &deliveries {
            if view.contains_key(&d.name) {
                // Defined twice: the first file (in path order) wins; say so.
                if let Some(v) = view.get_mut(&d.name) {
                    v.error = Some(format!(
                        "Delivery {} is defined twice ({} and {}); using {}",
                        d.name, v.file, d.file, v.file
                    ));
                }
                continue;
            }
            let status = self.follow(d, &apps, revision.clone());
            view.insert(d.name.clone(), status);
        }
        *self.shared.write().unwrap_or_else(PoisonError::into_inner) = view;
    }

    /// Observe, decide and act for one Delivery; answers its status.
    fn follow(
        &mut self,
        d: &Delivery,
        apps: &HashMap<String, AppSummary>,
        revision: Option<String>,
    ) -> DeliveryStatus {
        let mut inputs = Vec::new();
        let mut promoted = HashMap::new();
        for (i, s) in d.stages.iter().enumerate() {
            let digest = self
                .tip_digests
                .get(&(d.name.clone(), s.name.clone()))
                .cloned()
                .flatten();
            let app = apps.get(&s.application).map(|a| AppObservation {
                sync: a.sync,
                health: a.health.status,
                health_message: a.health.message.clone(),
                synced_digest: a
                    .synced_revision
                    .clone()
                    .and_then(|r| self.synced_digest(&r, &s.overlay, &d.image.name)),
            });
            let (verified, summary, verifying) = match &digest {
                Some(digest) => {
                    let key = (d.name.clone(), s.name.clone(), digest.clone());
                    let v = self.verification(&key);
                    (
                        v.as_ref().map(|v| v.0),
                        v.map(|v| v.1),
                        self.running.contains(&key),
                    )
                }
                None => (None, None, false),
            };
            if i > 0 {
                if let Some(candidate) = inputs
                    .last()
                    .and_then(|prev: &StageInput| prev.digest.clone())
                {
                    let key = (d.name.clone(), s.name.clone(), candidate.clone());
                    if let Some(p) = self.promotion(&key) {
                        promoted.insert((i, candidate), p);
                    }
                }
            }
            inputs.push(StageInput {
                digest,
                app,
                verified,
                verification_summary: summary,
                verifying,
            });
        }
        self.notice_merges(d, &inputs);
        let plan = decide(d, &inputs, &promoted);
        for action in plan.actions {
            self.act(d, action);
        }
        let stages = d
            .stages
            .iter()
            .zip(plan.stages)
            .zip(inputs)
            .map(|((s, v), input)| StageStatus {
                name: s.name.clone(),
                application: s.application.clone(),
                overlay: s.overlay.clone(),
                promotion: s.promotion,
                digest: input.digest,
                phase: v.phase,
                message: v.message,
                pending: v.pending,
                error: self
                    .errors
                    .get(&(d.name.clone(), s.name.clone()))
                    .map(|(e, _)| e.clone()),
            })
            .collect();
        DeliveryStatus {
            name: d.name.clone(),
            file: d.file.clone(),
            repository: d.image.repository.clone(),
            image: d.image.name.clone(),
            error: None,
            revision,
            stages,
        }
    }

    /// A digest promoted by a branch that is now in the stage's overlay on the tracked
    /// branch was merged: record who merged it (once) and announce it.
    fn notice_merges(&mut self, d: &Delivery, inputs: &[StageInput]) {
        for (i, input) in inputs.iter().enumerate().skip(1) {
            let Some(digest) = &input.digest else {
                continue;
            };
            let s = &d.stages[i];
            let key = (d.name.clone(), s.name.clone(), digest.clone());
            let Some(p) = self.promotion(&key) else {
                continue;
            };
            if p.policy != PromotionPolicy::PullRequest || p.branch == self.branch {
                continue;
            }
            let Some((commit, approver)) = promote::merged_by(&self.repo, &self.branch, &s.overlay)
            else {
                continue;
            };
            let branch = self.branch.clone();
            self.record_promotion(
                d,
                i,
                digest,
                &commit,
                &branch,
                PromotionPolicy::PullRequest,
                &approver,
            );
            self.event(
                "delivery.promotion.merged",
                &s.application,
                format!(
                    "{} {}: {} {} into {branch} ({}, {approver})",
                    d.name,
                    s.name,
                    p.branch,
                    short_digest(digest),
                    commit.short()
                ),
                json!({
                    "delivery": d.name, "stage": s.name, "digest": digest,
                    "commit": commit.to_string(), "branch": p.branch, "approvedBy": approver,
                }),
            );
        }
    }

    fn act(&mut self, d: &Delivery, action: Action) {
        match action {
            Action::Verify { stage, digest } => self.start_verification(d, stage, digest),
            Action::Fail {
                stage,
                digest,
                reason,
            } => {
                let now = now_millis();
                let record = NewVerification {
                    delivery: d.name.clone(),
                    stage: d.stages[stage].name.clone(),
                    digest,
                    passed: false,
                    summary: reason,
                    results: json!([]),
                    started_at: now,
                    finished_at: now,
                };
                self.finished(Done {
                    record,
                    application: d.stages[stage].application.clone(),
                });
            }
            Action::Promote { stage, digest } => {
                if self.backing_off(d, stage) {
                    return;
                }
                let approver = "slipway (auto)".to_string();
                let r = self.commit(d, stage, &digest, &approver, PromotionPolicy::Auto);
                self.note(d, stage, &digest, r.err().map(|e| e.to_string()));
            }
            Action::OpenBranch { stage, digest } => {
                if self.backing_off(d, stage) {
                    return;
                }
                let r = self.open_branch(d, stage, &digest);
                self.note(d, stage, &digest, r.err().map(|e| e.to_string()));
            }
            Action::AwaitApproval { stage, digest } => {
                let s = &d.stages[stage];
                let key = (d.name.clone(), s.name.clone(), digest.clone());
                if self.announced.insert(key) {
                    let from = &d.stages[stage - 1].name;
                    self.event(
                        "delivery.promotion.waiting",
                        &s.application,
                        format!(
                            "{} {}: {} verified in {from}; waiting for `slipway promote {} {}`",
                            d.name,
                            s.name,
                            short_digest(&digest),
                            d.name,
                            s.name
                        ),
                        json!({"delivery": d.name, "stage": s.name, "fromStage": from, "digest": digest}),
                    );
                }
            }
        }
    }

    /// Whether the last failure to promote into a stage is too recent to try again (a
    /// promotion that cannot commit, say into a dirty work tree, is not retried every tick).
    fn backing_off(&self, d: &Delivery, stage: usize) -> bool {
        self.errors
            .get(&(d.name.clone(), d.stages[stage].name.clone()))
            .is_some_and(|(_, at)| at.elapsed() < RETRY_AFTER)
    }

    /// Remember the last failure to promote into a stage (announced once per distinct
    /// message, as `delivery.promotion.failed`); clear it on success.
    fn note(&mut self, d: &Delivery, stage: usize, digest: &str, error: Option<String>) {
        let key = (d.name.clone(), d.stages[stage].name.clone());
        let Some(text) = error else {
            self.errors.remove(&key);
            return;
        };
        if self.errors.get(&key).map(|(t, _)| t) != Some(&text) {
            self.event(
                "delivery.promotion.failed",
                &d.stages[stage].application,
                format!(
                    "{} {}: cannot promote {}: {text} (retrying every {} s)",
                    d.name,
                    d.stages[stage].name,
                    short_digest(digest),
                    RETRY_AFTER.as_secs()
                ),
                json!({"delivery": d.name, "stage": d.stages[stage].name, "digest": digest, "error": text}),
            );
        }
        self.errors.insert(key, (text, Instant::now()));
    }

    fn start_verification(&mut self, d: &Delivery, stage: usize, digest: String) {
        let s = &d.stages[stage];
        let key = (d.name.clone(), s.name.clone(), digest.clone());
        if !self.running.insert(key) {
            return;
        }
        let checks = s
            .verification
            .as_ref()
            .map_or(0, |v| v.http.len() + v.commands.len());
        self.event(
            "delivery.verification.started",
            &s.application,
            format!(
                "{} {}: verifying {} ({} check{})",
                d.name,
                s.name,
                short_digest(&digest),
                checks,
                if checks == 1 { "" } else { "s" }
            ),
            json!({"delivery": d.name, "stage": s.name, "digest": digest}),
        );
        let cx = VerifyContext {
            stage: s.name.clone(),
            image: format!("{}@{digest}", d.image.repository),
            digest: digest.clone(),
            services: self.services.services(&s.application),
        };
        let verification = s.verification.clone();
        let tx = self.done_tx.clone();
        let (delivery, stage_name, application) =
            (d.name.clone(), s.name.clone(), s.application.clone());
        tokio::spawn(async move {
            let started_at = now_millis();
            let outcome = verify::run(verification.as_ref(), &cx).await;
            let _ = tx.send(Done {
                record: NewVerification {
                    delivery,
                    stage: stage_name,
                    digest,
                    passed: outcome.passed,
                    summary: outcome.summary,
                    results: outcome.results,
                    started_at,
                    finished_at: now_millis(),
                },
                application,
            });
        });
    }

    fn finished(&mut self, done: Done) {
        let r = done.record;
        let key = (r.delivery.clone(), r.stage.clone(), r.digest.clone());
        self.running.remove(&key);
        match self.store.record_verification(&r) {
            Ok(true) => {
                let ms = r.finished_at - r.started_at;
                let (kind, verdict) = if r.passed {
                    ("delivery.verification.passed", "passed verification")
                } else {
                    ("delivery.verification.failed", "failed verification")
                };
                self.event(
                    kind,
                    &done.application,
                    format!(
                        "{} {}: {} {verdict} in {ms} ms: {}",
                        r.delivery,
                        r.stage,
                        short_digest(&r.digest),
                        r.summary
                    ),
                    json!({
                        "delivery": r.delivery, "stage": r.stage, "digest": r.digest,
                        "passed": r.passed, "durationMs": ms, "results": r.results,
                    }),
                );
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!("recording a verification: {e}");
                return;
            }
        }
        self.verified.remove(&key);
    }

    /// The `Verification:` trailer of a promotion from stage `stage - 1`.
    fn verification_line(&mut self, d: &Delivery, stage: usize, digest: &str) -> String {
        let key = (
            d.name.clone(),
            d.stages[stage - 1].name.clone(),
            digest.to_string(),
        );
        match self.verification(&key) {
            Some((true, summary)) => summary,
            Some((false, summary)) => format!("FAILED ({summary}); forced"),
            None => "not verified; forced".to_string(),
        }
    }

    fn message(&mut self, d: &Delivery, stage: usize, digest: &str, approved_by: &str) -> String {
        let (source_repository, source_commit) =
            promote::source_of(&self.repo, &self.branch, d, digest);
        let verification = self.verification_line(d, stage, digest);
        PromotionMessage {
            delivery: d,
            stage,
            digest,
            source_repository: &source_repository,
            source_commit: &source_commit,
            verification: &verification,
            approved_by,
        }
        .text()
    }

    /// Commit a promotion on the tracked branch, record it, announce it, refresh GitOps.
    fn commit(
        &mut self,
        d: &Delivery,
        stage: usize,
        digest: &str,
        approved_by: &str,
        policy: PromotionPolicy,
    ) -> Result<PromoteOutcome, DeliveryError> {
        let started = Instant::now();
        let message = self.message(d, stage, digest, approved_by);
        let branch = self.branch.clone();
        let commit = promote::publish(&self.repo, self.remote.as_ref(), &branch, |repo| {
            promote::commit_promotion(repo, &branch, d, stage, digest, &message)
        })?;
        let s = &d.stages[stage];
        let from = d.stages[stage - 1].name.clone();
        self.record_promotion(d, stage, digest, &commit, &branch, policy, approved_by);
        self.gitops.refresh("delivery promotion");
        self.tip = None;
        let ms = started.elapsed().as_millis();
        self.event(
            "delivery.promotion.committed",
            &s.application,
            format!(
                "{} {}: promoted {} from {from} in {} ({approved_by})",
                d.name,
                s.name,
                short_digest(digest),
                commit.short()
            ),
            json!({
                "delivery": d.name, "stage": s.name, "fromStage": from, "digest": digest,
                "commit": commit.to_string(), "branch": branch, "policy": policy,
                "approvedBy": approved_by, "durationMs": ms,
            }),
        );
        Ok(PromoteOutcome {
            delivery: d.name.clone(),
            stage: s.name.clone(),
            digest: digest.to_string(),
            commit: commit.to_string(),
            branch,
            message,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn record_promotion(
        &mut self,
        d: &Delivery,
        stage: usize,
        digest: &str,
        commit: &CommitId,
        branch: &str,
        policy: PromotionPolicy,
        approver: &str,
    ) {
        let p = NewPromotion {
            delivery: d.name.clone(),
            stage: d.stages[stage].name.clone(),
            from_stage: d.stages[stage - 1].name.clone(),
            digest: digest.to_string(),
            commit: commit.to_string(),
            branch: branch.to_string(),
            policy,
            approver: approver.to_string(),
            at: now_millis(),
        };
        if let Err(e) = self.store.record_promotion(&p) {
            tracing::warn!("recording a promotion: {e}");
        }
        self.promoted.insert(
            (p.delivery.clone(), p.stage.clone(), p.digest.clone()),
            Some(PriorPromotion {
                policy,
                branch: p.branch,
                commit: p.commit,
            }),
        );
    }

    fn open_branch(
        &mut self,
        d: &Delivery,
        stage: usize,
        digest: &str,
    ) -> Result<(), DeliveryError> {
        let started = Instant::now();
        let name = promotion_branch(&d.stages[stage].name, digest);
        let approved_by = format!("merge of {name} (pull-request)");
        let message = self.message(d, stage, digest, &approved_by);
        let branch = self.branch.clone();
        let commit = promote::publish(&self.repo, self.remote.as_ref(), &name, |repo| {
            promote::open_branch(repo, &branch, &name, d, stage, digest, &message)
        })?;
        self.record_promotion(
            d,
            stage,
            digest,
            &commit,
            &name,
            PromotionPolicy::PullRequest,
            "pending merge",
        );
        let s = &d.stages[stage];
        let from = &d.stages[stage - 1].name;
        self.event(
            "delivery.promotion.branch",
            &s.application,
            format!(
                "{} {}: {} verified in {from}; merge {name} ({}) to promote it",
                d.name,
                s.name,
                short_digest(digest),
                commit.short()
            ),
            json!({
                "delivery": d.name, "stage": s.name, "fromStage": from, "digest": digest,
                "commit": commit.to_string(), "branch": name,
                "durationMs": started.elapsed().as_millis(),
            }),
        );
        Ok(())
    }

    /// `slipway promote`.
    fn manual(
        &mut self,
        delivery: &str,
        stage: &str,
        request: &PromoteRequest,
    ) -> Result<PromoteOutcome, DeliveryError> {
        self.refresh_tip()?;
        let d = self
            .deliveries
            .iter()
            .find(|d| d.name == delivery)
            .cloned()
            .ok_or_else(|| {
                match self
                    .broken
                    .iter()
                    .find(|b| b.names.iter().any(|n| n == delivery))
                {
                    Some(b) => DeliveryError::Invalid(format!(
                        "Delivery {delivery} is broken: {}",
                        b.error
                    )),
                    None => DeliveryError::NotFound(format!("no Delivery named {delivery:?}")),
                }
            })?;
        let i = d
            .stages
            .iter()
            .position(|s| s.name == stage)
            .ok_or_else(|| {
                let names: Vec<&str> = d.stages.iter().map(|s| s.name.as_str()).collect();
                DeliveryError::NotFound(format!(
                    "Delivery {delivery} has no stage {stage:?} (stages: {})",
                    names.join(", ")
                ))
            })?;
        if i == 0 {
            return Err(DeliveryError::Refused(format!(
                "{stage} is the first stage of {delivery}: images enter it through CI's \
                 slipway/deliver step, not by promotion"
            )));
        }
        let s = &d.stages[i];
        let from = &d.stages[i - 1];
        let policy = s.promotion.unwrap_or(PromotionPolicy::Auto);
        if policy != PromotionPolicy::Manual && !request.force {
            return Err(DeliveryError::Refused(format!(
                "stage {stage} is promoted {policy}, not manual: {}; pass --force to promote by \
                 hand anyway",
                if policy == PromotionPolicy::Auto {
                    "the controller promotes verified digests by itself"
                } else {
                    "merge the promotion branch"
                }
            )));
        }
        let digest = match &request.digest {
            Some(d) => normalize_digest(d)?,
            None => self
                .tip_digests
                .get(&(d.name.clone(), from.name.clone()))
                .cloned()
                .flatten()
                .ok_or_else(|| {
                    DeliveryError::Refused(format!(
                        "no digest to promote: {}'s overlay {} names none for {}",
                        from.name, from.overlay, d.image.name
                    ))
                })?,
        };
        let short = short_digest(&digest);
        let here = self
            .tip_digests
            .get(&(d.name.clone(), s.name.clone()))
            .cloned()
            .flatten();
        if here.as_deref() == Some(digest.as_str()) {
            return Err(DeliveryError::Refused(format!(
                "{short} is already in {stage} (overlay {})",
                s.overlay
            )));
        }
        let key = (d.name.clone(), from.name.clone(), digest.clone());
        match self.verification(&key) {
            Some((true, _)) => {}
            _ if request.force => {}
            Some((false, summary)) => {
                return Err(DeliveryError::Refused(format!(
                    "{short} failed verification in {}: {summary}",
                    from.name
                )))
            }
            None => {
                return Err(DeliveryError::Refused(format!(
                    "{short} is not verified in {} yet{}",
                    from.name,
                    if self.running.contains(&key) {
                        " (its verification is running)"
                    } else {
                        ""
                    }
                )))
            }
        }
        let approver = request.approver.trim();
        let approver = if approver.is_empty() {
            "unknown"
        } else {
            approver
        };
        let approved_by = if request.force {
            format!("{approver} (manual, forced)")
        } else {
            format!("{approver} (manual)")
        };
        let r = self.commit(&d, i, &digest, &approved_by, PromotionPolicy::Manual);
        if r.is_ok() {
            self.errors.remove(&(d.name.clone(), s.name.clone()));
        }
        r
    }
}

/// `sha256:<64 hex>`, lower case.
fn normalize_digest(d: &str) -> Result<String, DeliveryError> {
    let d = d.trim();
    let d = d.rsplit_once('@').map_or(d, |(_, x)| x);
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
    } else {
        Err(DeliveryError::Invalid(format!(
            "{d:?} is not an image digest; expected sha256: and 64 hex digits"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_normalized() {
        let hex = "A".repeat(64);
        assert_eq!(
            normalize_digest(&format!("r/hello@sha256:{hex}")).unwrap(),
            format!("sha256:{}", "a".repeat(64))
        );
        assert_eq!(
            normalize_digest(&hex).unwrap(),
            format!("sha256:{}", "a".repeat(64))
        );
        assert!(normalize_digest("sha256:abc").is_err());
    }
}
