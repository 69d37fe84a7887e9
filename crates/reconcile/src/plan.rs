//! The pure decisions: how desired objects compare with live ones (per-resource sync status,
//! the application's sync status and health), what a sync does (hooks, waves, prune), and
//! whether an automated application syncs now.
//!
//! # Decisions
//!
//! - **Comparison is cheap when nothing changed.** A live manifest is stripped of what a
//!   runtime adds (`status`, server metadata, the last-applied annotation) in place and
//!   compared with the desired value by equality; only when they differ (or
//!   `ignoreDifferences` applies to the object) does the authoritative
//!   [`slipway_render::diff::diff_objects`] run for that one pair. So a steady state of
//!   thousands of objects costs one equality check each.
//! - **Identity ignores the version** (as the diff crate pairs objects): `apps/v1beta1` to
//!   `apps/v1` is a change, not a prune plus a create.
//! - **Hooks** (`argocd.argoproj.io/hook`) are not part of the comparison, the health or the
//!   prune list; `Skip` objects are neither applied nor compared.
//! - **Order** is Argo CD's: phase (PreSync, Sync, PostSync), then `sync-wave` (default 0), then
//!   kind (gitops-engine's kind order: Namespace, ..., Secret, ConfigMap, ..., Service, ...,
//!   Deployment, ..., Job ...; unknown kinds after), then name.
//! - **Prune** lists live objects no longer in Git. They are pruned only when pruning is on
//!   (policy or request), never with `argocd.argoproj.io/sync-options: Prune=false` (they
//!   stay OutOfSync, as in Argo CD); with `PruneLast=true` after the last wave, otherwise
//!   right after the wave named by their own `sync-wave`.
//! - **Health** is the worst of the managed resources in Argo CD's order (Healthy, Suspended,
//!   Progressing, Missing, Degraded, Unknown); desired but not live is Missing. The message is
//!   the worst resource's, prefixed with its identity.
//! - **Drift counts as OutOfSync.** A resource whose manifest matches but whose runtime reports
//!   drift (a killed replica with heal off) is OutOfSync with the drift as the reason.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use slipway_model::{Object, ResId};
use slipway_render::diff::{diff_objects, DiffOptions, IgnoreRule, LAST_APPLIED_ANNOTATION};
use slipway_runtime::{Health, HealthStatus, LiveObject};

use crate::app::Policy;
use crate::status::{ResourceStatus, SyncStatus};

/// The hook annotation.
pub(crate) const HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";
/// The hook delete policy annotation.
pub(crate) const HOOK_DELETE_ANNOTATION: &str = "argocd.argoproj.io/hook-delete-policy";
/// The sync wave annotation.
pub(crate) const WAVE_ANNOTATION: &str = "argocd.argoproj.io/sync-wave";
/// Per-object sync options.
pub(crate) const SYNC_OPTIONS_ANNOTATION: &str = "argocd.argoproj.io/sync-options";

/// Metadata a runtime or API server adds.
const SERVER_METADATA: [&str; 5] = [
    "creationTimestamp",
    "resourceVersion",
    "uid",
    "generation",
    "managedFields",
];

/// gitops-engine's kind order within a wave.
const KIND_ORDER: [&str; 35] = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// Sync phases of hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum HookPhase {
    /// Before anything is applied.
    PreSync,
    /// With the wave it names.
    Sync,
    /// After every wave is healthy.
    PostSync,
    /// When the sync failed.
    SyncFail,
}

impl HookPhase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HookPhase::PreSync => "PreSync",
            HookPhase::Sync => "Sync",
            HookPhase::PostSync => "PostSync",
            HookPhase::SyncFail => "SyncFail",
        }
    }
}

/// What an object's hook annotation says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    /// A normal resource.
    None,
    /// Never applied.
    Skip,
    /// A hook of a phase.
    Hook(HookPhase),
}

fn annotation<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get("metadata")?
        .get("annotations")?
        .get(key)?
        .as_str()
}

/// The hook kind of a manifest. Several phases (`PreSync,PostSync`) use the first.
pub(crate) fn hook_kind(value: &Value) -> HookKind {
    let Some(text) = annotation(value, HOOK_ANNOTATION) else {
        return HookKind::None;
    };
    for part in text.split(',').map(str::trim) {
        match part {
            "PreSync" => return HookKind::Hook(HookPhase::PreSync),
            "Sync" => return HookKind::Hook(HookPhase::Sync),
            "PostSync" => return HookKind::Hook(HookPhase::PostSync),
            "SyncFail" => return HookKind::Hook(HookPhase::SyncFail),
            "Skip" => return HookKind::Skip,
            _ => {}
        }
    }
    HookKind::None
}

/// `sync-wave` (default 0; unparsable counts as 0).
pub(crate) fn wave_of(value: &Value) -> i64 {
    annotation(value, WAVE_ANNOTATION)
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}

/// True when the object's `sync-options` annotation has `key=value`.
fn has_sync_option(value: &Value, key: &str, want: &str) -> bool {
    annotation(value, SYNC_OPTIONS_ANNOTATION).is_some_and(|opts| {
        opts.split(',')
            .filter_map(|o| o.split_once('='))
            .any(|(k, v)| k.trim() == key && v.trim() == want)
    })
}

/// Hook delete policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DeletePolicy {
    /// Delete the previous run before creating the hook again (the default).
    pub before_creation: bool,
    /// Delete once it succeeded.
    pub succeeded: bool,
    /// Delete once it failed.
    pub failed: bool,
}

/// The delete policies of a hook; none named means `BeforeHookCreation`.
pub(crate) fn delete_policy(value: &Value) -> DeletePolicy {
    let mut p = DeletePolicy::default();
    if let Some(text) = annotation(value, HOOK_DELETE_ANNOTATION) {
        for part in text.split(',').map(str::trim) {
            match part {
                "BeforeHookCreation" => p.before_creation = true,
                "HookSucceeded" => p.succeeded = true,
                "HookFailed" => p.failed = true,
                _ => {}
            }
        }
    }
    if !(p.before_creation || p.succeeded || p.failed) {
        p.before_creation = true;
    }
    p
}

/// Identity without the version (objects pair up across versions).
pub(crate) type Key = (String, String, String, String);

pub(crate) fn key_of(id: &ResId) -> Key {
    (
        id.group.clone(),
        id.kind.clone(),
        id.namespace.clone(),
        id.name.clone(),
    )
}

/// Argo CD's severity rank of a health status.
pub(crate) fn health_rank(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Suspended => 1,
        HealthStatus::Progressing => 2,
        HealthStatus::Missing => 3,
        HealthStatus::Degraded => 4,
        HealthStatus::Unknown => 5,
    }
}

/// How one resource compares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compared {
    /// The status shown to people.
    pub status: ResourceStatus,
    /// Desired object (None for a prune candidate).
    pub desired: Option<usize>,
    /// Live but missing from Git, and may be pruned (no `Prune=false`).
    pub prunable: bool,
    /// Desired but not live.
    pub missing: bool,
    /// Live manifest differs from Git (not only runtime drift).
    pub manifest_differs: bool,
}

/// The comparison of an application's desired and live objects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comparison {
    /// Resources in sync order (desired first, then prune candidates).
    pub resources: Vec<Compared>,
    /// The application's sync status.
    pub sync: SyncStatus,
    /// The application's health.
    pub health: Health,
    /// `+added ~changed -removed` counts of the manifest differences.
    pub added: usize,
    /// Changed objects.
    pub changed: usize,
    /// Objects to remove (prune candidates, with or without `Prune=false`).
    pub removed: usize,
}

impl Comparison {
    /// `+2 ~1 -0`.
    pub fn summary(&self) -> String {
        format!("+{} ~{} -{}", self.added, self.changed, self.removed)
    }

    /// True when every out-of-sync resource is only waiting to be pruned.
    pub fn only_prune_needed(&self) -> bool {
        let mut any = false;
        for r in &self.resources {
            if r.status.sync == SyncStatus::OutOfSync {
                if !r.status.requires_pruning {
                    return false;
                }
                any = true;
            }
        }
        any
    }

    /// True when an object is missing or its manifest differs (what self-heal re-applies;
    /// runtime drift alone is the runtime's to heal).
    pub fn needs_apply(&self) -> bool {
        self.resources
            .iter()
            .any(|r| r.missing || r.manifest_differs)
    }

    /// Every drift line, prefixed with its object.
    pub fn drift(&self) -> Vec<String> {
        self.resources
            .iter()
            .flat_map(|r| {
                r.status
                    .drift
                    .iter()
                    .map(move |d| format!("{}: {d}", r.status.id))
            })
            .collect()
    }
}

/// Remove what a runtime adds to a manifest.
fn strip_live(v: &mut Value) {
    if let Some(root) = v.as_object_mut() {
        root.remove("status");
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            for k in SERVER_METADATA {
                meta.remove(k);
            }
            if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
                ann.remove(LAST_APPLIED_ANNOTATION);
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
}

/// Sort key of a desired object in sync order.
fn order_key(obj: &Object) -> (u8, i64, usize, String, String) {
    let phase = match hook_kind(&obj.value) {
        HookKind::Hook(HookPhase::PreSync) => 0,
        HookKind::Hook(HookPhase::PostSync) => 2,
        HookKind::Hook(HookPhase::SyncFail) => 3,
        _ => 1,
    };
    (
        phase,
        wave_of(&obj.value),
        kind_rank(obj.kind()),
        obj.namespace().to_string(),
        obj.name().to_string(),
    )
}

/// Compare desired objects (hooks included; they are set aside) with what the runtime holds.
pub(crate) fn compare(
    desired: &[Object],
    live: Vec<LiveObject>,
    ignore: &[IgnoreRule],
) -> Comparison {
    let mut live_by_key: HashMap<Key, LiveObject> = HashMap::with_capacity(live.len());
    for l in live {
        live_by_key.insert(key_of(&l.id), l);
    }
    let mut order: Vec<usize> = (0..desired.len())
        .filter(|&i| hook_kind(&desired[i].value) == HookKind::None)
        .collect();
    order.sort_by_cached_key(|&i| order_key(&desired[i]));
    let opts = DiffOptions {
        ignore: ignore.to_vec(),
    };
    let mut out = Comparison {
        resources: Vec::with_capacity(order.len()),
        sync: SyncStatus::Synced,
        health: Health::healthy(),
        added: 0,
        changed: 0,
        removed: 0,
    };
    let mut worst: Option<(u8, String, Health)> = None;
    let mut consider = |id: &ResId, h: &Health| {
        let rank = health_rank(h.status);
        if worst.as_ref().is_none_or(|(r, _, _)| rank > *r) {
            worst = Some((rank, id.to_string(), h.clone()));
        }
    };
    for i in order {
        let obj = &desired[i];
        let id = obj.id();
        let key = key_of(&id);
        let mut status = ResourceStatus {
            id,
            sync: SyncStatus::Synced,
            health: None,
            wave: wave_of(&obj.value),
            hook: None,
            requires_pruning: false,
            drift: Vec::new(),
        };
        let (mut missing, mut differs) = (false, false);
        match live_by_key.remove(&key) {
            None => {
                missing = true;
                out.added += 1;
                let h = Health {
                    status: HealthStatus::Missing,
                    message: "not live".to_string(),
                };
                consider(&status.id, &h);
                status.health = Some(h);
                status.sync = SyncStatus::OutOfSync;
            }
            Some(mut l) => {
                strip_live(&mut l.manifest);
                let ignored = ignore.iter().any(|r| r.matches(obj));
                let equal = !ignored && l.manifest == obj.value;
                if !equal {
                    let live_obj = [Object::new(l.manifest)];
                    differs = !diff_objects(&live_obj, std::slice::from_ref(obj), &opts).is_empty();
                }
                if differs {
                    out.changed += 1;
                }
                consider(&status.id, &l.health);
                status.health = Some(l.health);
                status.drift = l.drift;
                if differs || !status.drift.is_empty() {
                    status.sync = SyncStatus::OutOfSync;
                }
            }
        }
        out.resources.push(Compared {
            status,
            desired: Some(i),
            prunable: false,
            missing,
            manifest_differs: differs,
        });
    }
    // What is left live and is not a hook: candidates for pruning, in reverse sync order.
    let mut extra: Vec<LiveObject> = live_by_key
        .into_values()
        .filter(|l| hook_kind(&l.manifest) == HookKind::None)
        .collect();
    extra.sort_by(|a, b| {
        let ka = (
            wave_of(&a.manifest),
            kind_rank(&a.id.kind),
            &a.id.namespace,
            &a.id.name,
        );
        let kb = (
            wave_of(&b.manifest),
            kind_rank(&b.id.kind),
            &b.id.namespace,
            &b.id.name,
        );
        kb.cmp(&ka)
    });
    for l in extra {
        out.removed += 1;
        let prunable = !has_sync_option(&l.manifest, "Prune", "false");
        out.resources.push(Compared {
            status: ResourceStatus {
                id: l.id,
                sync: SyncStatus::OutOfSync,
                health: Some(l.health),
                wave: wave_of(&l.manifest),
                hook: None,
                requires_pruning: true,
                drift: l.drift,
            },
            desired: None,
            prunable,
            missing: false,
            manifest_differs: false,
        });
    }
    if out
        .resources
        .iter()
        .any(|r| r.status.sync == SyncStatus::OutOfSync)
    {
        out.sync = SyncStatus::OutOfSync;
    }
    if let Some((_, id, h)) = worst {
        if h.status != HealthStatus::Healthy {
            out.health = Health {
                status: h.status,
                message: if h.message.is_empty() {
                    id
                } else {
                    format!("{id}: {}", h.message)
                },
            };
        }
    }
    out
}

/// One hook run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HookStep {
    /// The hook object.
    pub object: Object,
    /// Its phase.
    pub phase: HookPhase,
    /// Its delete policies.
    pub delete: DeletePolicy,
}

/// One wave of the Sync phase.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Wave {
    /// The wave number.
    pub wave: i64,
    /// Objects to apply, in order.
    pub apply: Vec<Object>,
    /// Every object of the wave whose health the sync waits for (applied or not).
    pub wait: Vec<ResId>,
    /// Sync hooks of the wave (run after the wave's objects are applied).
    pub hooks: Vec<HookStep>,
    /// Live objects pruned after the wave.
    pub prune: Vec<ResId>,
}

/// What a sync does, in order: PreSync hooks, the waves, the late prune, PostSync hooks;
/// SyncFail hooks when anything fails.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SyncPlan {
    /// PreSync hooks, in order.
    pub pre_sync: Vec<HookStep>,
    /// Waves, ascending.
    pub waves: Vec<Wave>,
    /// Pruned after the last wave (`PruneLast=true`).
    pub prune_last: Vec<ResId>,
    /// PostSync hooks.
    pub post_sync: Vec<HookStep>,
    /// SyncFail hooks.
    pub sync_fail: Vec<HookStep>,
    /// Pass `create_namespace` to the runtime.
    pub create_namespace: bool,
    /// Live objects left in place because pruning is off or refused (`Prune=false`).
    pub skipped_prune: Vec<ResId>,
}

impl SyncPlan {
    /// Every object the plan applies (not hooks), for tests and messages.
    #[cfg(test)]
    pub fn applied_names(&self) -> Vec<Vec<String>> {
        self.waves
            .iter()
            .map(|w| w.apply.iter().map(|o| o.name().to_string()).collect())
            .collect()
    }
}

/// Build the plan of a sync of `desired` given the comparison with live state.
pub(crate) fn plan(desired: &[Object], cmp: &Comparison, policy: &Policy, prune: bool) -> SyncPlan {
    let mut p = SyncPlan {
        create_namespace: policy.create_namespace,
        ..SyncPlan::default()
    };
    let mut waves: BTreeMap<i64, Wave> = BTreeMap::new();
    let mut hooks: Vec<&Object> = desired
        .iter()
        .filter(|o| matches!(hook_kind(&o.value), HookKind::Hook(_)))
        .collect();
    hooks.sort_by_cached_key(|o| order_key(o));
    for h in hooks {
        let HookKind::Hook(phase) = hook_kind(&h.value) else {
            continue;
        };
        let step = HookStep {
            object: h.clone(),
            phase,
            delete: delete_policy(&h.value),
        };
        match phase {
            HookPhase::PreSync => p.pre_sync.push(step),
            HookPhase::PostSync => p.post_sync.push(step),
            HookPhase::SyncFail => p.sync_fail.push(step),
            HookPhase::Sync => {
                let w = wave_of(&h.value);
                waves
                    .entry(w)
                    .or_insert_with(|| Wave {
                        wave: w,
                        ..Wave::default()
                    })
                    .hooks
                    .push(step);
            }
        }
    }
    for r in &cmp.resources {
        let w = r.status.wave;
        match r.desired {
            Some(i) => {
                let wave = waves.entry(w).or_insert_with(|| Wave {
                    wave: w,
                    ..Wave::default()
                });
                wave.wait.push(r.status.id.clone());
                if !policy.apply_out_of_sync_only || r.status.sync == SyncStatus::OutOfSync {
                    wave.apply.push(desired[i].clone());
                }
            }
            None => {
                if !(prune && r.prunable) {
                    p.skipped_prune.push(r.status.id.clone());
                } else if policy.prune_last {
                    p.prune_last.push(r.status.id.clone());
                } else {
                    waves
                        .entry(w)
                        .or_insert_with(|| Wave {
                            wave: w,
                            ..Wave::default()
                        })
                        .prune
                        .push(r.status.id.clone());
                }
            }
        }
    }
    p.waves = waves.into_values().collect();
    p
}

/// Everything the automated policy looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AutoInput {
    /// The application's policy.
    pub policy: Policy,
    /// The revision Git's tracked ref resolves to now.
    pub revision: String,
    /// The revision last synced successfully.
    pub synced_revision: Option<String>,
    /// Whether what the app renders changed since the synced revision (false when the new
    /// commit did not touch the app's inputs).
    pub inputs_changed: bool,
    /// The last sync attempted by automation, and whether it failed.
    pub last_attempt: Option<(String, bool)>,
    /// The comparison's sync status.
    pub sync: SyncStatus,
    /// Only prune candidates are out of sync.
    pub only_prune_needed: bool,
    /// A desired object is missing or its manifest differs.
    pub needs_apply: bool,
    /// The runtime was last told another `heal` than the policy says now.
    pub heal_changed: bool,
    /// The render is empty.
    pub empty: bool,
}

/// What automation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AutoDecision {
    /// Sync now, initiated by this (`auto` or `selfHeal`).
    Sync(&'static str),
    /// Do not sync; tell people why (shown as the app's condition, recorded once).
    Hold(String),
    /// Nothing to do.
    Nothing,
}

/// Argo CD's automated sync rule.
pub(crate) fn decide(input: &AutoInput) -> AutoDecision {
    if !input.policy.automated {
        return AutoDecision::Nothing;
    }
    let new_revision = input.synced_revision.as_deref() != Some(input.revision.as_str())
        && (input.inputs_changed || input.synced_revision.is_none());
    let would_sync = new_revision || input.heal_changed || input.sync == SyncStatus::OutOfSync;
    if would_sync && input.empty && !input.policy.allow_empty {
        return AutoDecision::Hold(
            "automated sync would leave the application empty and allowEmpty is off".into(),
        );
    }
    if new_revision {
        if input.last_attempt.as_ref() == Some(&(input.revision.clone(), true)) {
            return AutoDecision::Hold(format!(
                "the last automated sync of {} failed; not retrying the same revision",
                short(&input.revision)
            ));
        }
        return AutoDecision::Sync("auto");
    }
    if input.sync != SyncStatus::OutOfSync {
        return if input.heal_changed && input.policy.self_heal {
            AutoDecision::Sync("selfHeal")
        } else {
            AutoDecision::Nothing
        };
    }
    if input.only_prune_needed && !input.policy.prune {
        return AutoDecision::Hold(
            "OutOfSync: extra resources need pruning but automated prune is off".into(),
        );
    }
    if !input.policy.self_heal {
        return AutoDecision::Hold(format!(
            "OutOfSync at the synced revision {}; selfHeal is off",
            short(&input.revision)
        ));
    }
    if input.needs_apply || input.heal_changed || (input.only_prune_needed && input.policy.prune) {
        return AutoDecision::Sync("selfHeal");
    }
    // Runtime drift only: the runtime heals processes itself.
    AutoDecision::Nothing
}

/// First seven characters of a revision.
pub(crate) fn short(rev: &str) -> &str {
    rev.get(..7).unwrap_or(rev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, annotations: &[(&str, &str)]) -> Object {
        let mut ann = serde_json::Map::new();
        for (k, v) in annotations {
            ann.insert((*k).to_string(), json!(v));
        }
        let api = match kind {
            "Deployment" => "apps/v1",
            "Job" => "batch/v1",
            _ => "v1",
        };
        let mut v = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": {"x": 1}});
        if kind == "Namespace" {
            v["metadata"].as_object_mut().unwrap().remove("namespace");
        }
        if !ann.is_empty() {
            v["metadata"]["annotations"] = Value::Object(ann);
        }
        Object::new(v)
    }

    fn live(o: &Object, health: HealthStatus) -> LiveObject {
        let mut manifest = o.value.clone();
        manifest["status"] = json!({"readyReplicas": 1});
        LiveObject {
            id: o.id(),
            owner: "app".into(),
            manifest,
            health: Health {
                status: health,
                message: if health == HealthStatus::Healthy {
                    String::new()
                } else {
                    "why".into()
                },
            },
            drift: vec![],
        }
    }

    fn names(cmp: &Comparison) -> Vec<String> {
        cmp.resources
            .iter()
            .map(|r| format!("{}/{}", r.status.id.kind, r.status.id.name))
            .collect()
    }

    #[test]
    fn sync_order_is_phase_wave_kind_name() {
        let desired = vec![
            obj("Deployment", "web", &[]),
            obj("Service", "web", &[]),
            obj("ConfigMap", "b", &[]),
            obj("ConfigMap", "a", &[]),
            obj("Job", "migrate", &[(WAVE_ANNOTATION, "-1")]),
            obj("Namespace", "prod", &[]),
            obj("Secret", "s", &[(WAVE_ANNOTATION, "2")]),
            obj("Widget", "w", &[]),
        ];
        let cmp = compare(&desired, vec![], &[]);
        assert_eq!(
            names(&cmp),
            [
                "Job/migrate",
                "Namespace/prod",
                "ConfigMap/a",
                "ConfigMap/b",
                "Service/web",
                "Deployment/web",
                "Widget/w",
                "Secret/s"
            ]
        );
        let p = plan(&desired, &cmp, &Policy::default(), false);
        let waves: Vec<i64> = p.waves.iter().map(|w| w.wave).collect();
        assert_eq!(waves, [-1, 0, 2]);
        assert_eq!(
            p.applied_names(),
            [
                vec!["migrate"],
                vec!["prod", "a", "b", "web", "web", "w"],
                vec!["s"]
            ]
        );
    }

    #[test]
    fn hooks_are_set_aside_by_phase() {
        let desired = vec![
            obj("Deployment", "web", &[]),
            obj(
                "Job",
                "pre",
                &[
                    (HOOK_ANNOTATION, "PreSync"),
                    (HOOK_DELETE_ANNOTATION, "HookSucceeded"),
                ],
            ),
            obj("Job", "post", &[(HOOK_ANNOTATION, "PostSync")]),
            obj("Job", "fail", &[(HOOK_ANNOTATION, "SyncFail")]),
            obj(
                "Job",
                "during",
                &[(HOOK_ANNOTATION, "Sync"), (WAVE_ANNOTATION, "1")],
            ),
            obj("ConfigMap", "skipped", &[(HOOK_ANNOTATION, "Skip")]),
        ];
        let cmp = compare(&desired, vec![], &[]);
        assert_eq!(names(&cmp), ["Deployment/web"], "hooks are not compared");
        let p = plan(&desired, &cmp, &Policy::default(), false);
        assert_eq!(p.pre_sync.len(), 1);
        assert_eq!(
            p.pre_sync[0].delete,
            DeletePolicy {
                before_creation: false,
                succeeded: true,
                failed: false
            }
        );
        assert_eq!(p.post_sync[0].object.name(), "post");
        assert!(p.post_sync[0].delete.before_creation);
        assert_eq!(p.sync_fail[0].object.name(), "fail");
        assert_eq!(p.waves.len(), 2);
        assert_eq!(p.waves[1].wave, 1);
        assert_eq!(p.waves[1].hooks[0].object.name(), "during");
        assert!(p.waves[1].apply.is_empty());
    }

    #[test]
    fn live_hooks_are_neither_compared_nor_pruned() {
        let hook = obj("Job", "pre", &[(HOOK_ANNOTATION, "PreSync")]);
        let cmp = compare(&[], vec![live(&hook, HealthStatus::Healthy)], &[]);
        assert!(cmp.resources.is_empty());
        assert_eq!(cmp.sync, SyncStatus::Synced);
    }

    #[test]
    fn synced_when_live_equals_desired_apart_from_status() {
        let d = obj("Deployment", "web", &[]);
        let mut l = live(&d, HealthStatus::Healthy);
        l.manifest["metadata"]["uid"] = json!("123");
        let cmp = compare(std::slice::from_ref(&d), vec![l], &[]);
        assert_eq!(cmp.sync, SyncStatus::Synced);
        assert_eq!(cmp.health.status, HealthStatus::Healthy);
        assert_eq!(cmp.summary(), "+0 ~0 -0");
    }

    #[test]
    fn changed_missing_and_ignored_fields() {
        let d = obj("Deployment", "web", &[]);
        let mut l = live(&d, HealthStatus::Healthy);
        l.manifest["spec"]["x"] = json!(2);
        let cmp = compare(
            &[d.clone(), obj("ConfigMap", "c", &[])],
            vec![l.clone()],
            &[],
        );
        assert_eq!(cmp.sync, SyncStatus::OutOfSync);
        assert_eq!(cmp.summary(), "+1 ~1 -0");
        assert!(cmp.needs_apply());
        assert_eq!(cmp.health.status, HealthStatus::Missing);
        assert!(cmp.health.message.starts_with("ConfigMap default/c"));
        let rule = IgnoreRule {
            group: Some("apps".into()),
            kind: "Deployment".into(),
            json_pointers: vec!["/spec/x".into()],
            ..IgnoreRule::default()
        };
        let cmp = compare(std::slice::from_ref(&d), vec![l], &[rule]);
        assert_eq!(cmp.sync, SyncStatus::Synced);
    }

    #[test]
    fn drift_is_out_of_sync_but_not_a_manifest_change() {
        let d = obj("Deployment", "web", &[]);
        let mut l = live(&d, HealthStatus::Degraded);
        l.drift = vec!["replica web-1 exited: killed by signal 9".into()];
        let cmp = compare(std::slice::from_ref(&d), vec![l], &[]);
        assert_eq!(cmp.sync, SyncStatus::OutOfSync);
        assert!(!cmp.needs_apply());
        assert_eq!(
            cmp.drift(),
            ["Deployment.apps default/web: replica web-1 exited: killed by signal 9"]
        );
        assert_eq!(cmp.health.status, HealthStatus::Degraded);
        assert_eq!(cmp.health.message, "Deployment.apps default/web: why");
    }

    #[test]
    fn health_is_the_worst_in_argo_order() {
        let table = [
            (
                vec![HealthStatus::Healthy, HealthStatus::Healthy],
                HealthStatus::Healthy,
            ),
            (
                vec![HealthStatus::Progressing, HealthStatus::Suspended],
                HealthStatus::Progressing,
            ),
            (
                vec![HealthStatus::Degraded, HealthStatus::Progressing],
                HealthStatus::Degraded,
            ),
            (
                vec![HealthStatus::Unknown, HealthStatus::Degraded],
                HealthStatus::Unknown,
            ),
            (vec![], HealthStatus::Healthy),
        ];
        for (states, want) in table {
            let desired: Vec<Object> = (0..states.len())
                .map(|i| obj("ConfigMap", &format!("c{i}"), &[]))
                .collect();
            let live: Vec<LiveObject> = desired
                .iter()
                .zip(&states)
                .map(|(o, s)| live(o, *s))
                .collect();
            assert_eq!(
                compare(&desired, live, &[]).health.status,
                want,
                "{states:?}"
            );
        }
    }

    #[test]
    fn prune_rules() {
        let keep = obj("ConfigMap", "keep", &[]);
        let old = obj("ConfigMap", "old", &[(WAVE_ANNOTATION, "3")]);
        let pinned = obj(
            "ConfigMap",
            "pinned",
            &[(SYNC_OPTIONS_ANNOTATION, "Prune=false")],
        );
        let hook = obj("Job", "hook", &[(HOOK_ANNOTATION, "PostSync")]);
        let lives = || {
            vec![
                live(&keep, HealthStatus::Healthy),
                live(&old, HealthStatus::Healthy),
                live(&pinned, HealthStatus::Healthy),
                live(&hook, HealthStatus::Healthy),
            ]
        };
        let desired = [keep.clone()];
        let cmp = compare(&desired, lives(), &[]);
        assert_eq!(cmp.sync, SyncStatus::OutOfSync);
        assert!(cmp.only_prune_needed());
        assert_eq!(cmp.summary(), "+0 ~0 -2");

        // Prune off: nothing pruned, both reported.
        let p = plan(&desired, &cmp, &Policy::default(), false);
        assert_eq!(p.skipped_prune.len(), 2);
        assert!(p.waves.iter().all(|w| w.prune.is_empty()));

        // Prune on: the old one in its own wave; Prune=false stays.
        let p = plan(&desired, &cmp, &Policy::default(), true);
        let pruned: Vec<(i64, &str)> = p
            .waves
            .iter()
            .flat_map(|w| w.prune.iter().map(move |id| (w.wave, id.name.as_str())))
            .collect();
        assert_eq!(pruned, [(3, "old")]);
        assert_eq!(p.skipped_prune[0].name, "pinned");

        // PruneLast: after every wave.
        let policy = Policy {
            prune_last: true,
            ..Policy::default()
        };
        let p = plan(&desired, &cmp, &policy, true);
        assert_eq!(p.prune_last.len(), 1);
        assert!(p.waves.iter().all(|w| w.prune.is_empty()));
    }

    #[test]
    fn apply_out_of_sync_only() {
        let a = obj("ConfigMap", "a", &[]);
        let b = obj("ConfigMap", "b", &[]);
        let desired = [a.clone(), b.clone()];
        let cmp = compare(&desired, vec![live(&a, HealthStatus::Healthy)], &[]);
        let policy = Policy {
            apply_out_of_sync_only: true,
            create_namespace: true,
            ..Policy::default()
        };
        let p = plan(&desired, &cmp, &policy, false);
        assert_eq!(p.applied_names(), [vec!["b"]]);
        assert_eq!(p.waves[0].wait.len(), 2);
        assert!(p.create_namespace);
        let p = plan(&desired, &cmp, &Policy::default(), false);
        assert_eq!(p.applied_names(), [vec!["a", "b"]]);
    }

    fn auto(f: impl FnOnce(&mut AutoInput)) -> AutoDecision {
        let mut input = AutoInput {
            policy: Policy {
                automated: true,
                ..Policy::default()
            },
            revision: "bbbbbbbbbb".into(),
            synced_revision: Some("aaaaaaaaaa".into()),
            inputs_changed: true,
            last_attempt: None,
            sync: SyncStatus::Synced,
            only_prune_needed: false,
            needs_apply: false,
            heal_changed: false,
            empty: false,
        };
        f(&mut input);
        decide(&input)
    }

    #[test]
    fn automated_sync_rules() {
        assert_eq!(auto(|_| {}), AutoDecision::Sync("auto"));
        assert_eq!(auto(|i| i.policy.automated = false), AutoDecision::Nothing);
        assert_eq!(
            auto(|i| i.synced_revision = None),
            AutoDecision::Sync("auto")
        );
        // A commit that did not touch the app's inputs is no reason to sync.
        assert_eq!(auto(|i| i.inputs_changed = false), AutoDecision::Nothing);
        assert!(matches!(
            auto(|i| i.last_attempt = Some(("bbbbbbbbbb".into(), true))),
            AutoDecision::Hold(_)
        ));
        let same = |i: &mut AutoInput| i.synced_revision = Some("bbbbbbbbbb".into());
        assert_eq!(auto(same), AutoDecision::Nothing);
        // OutOfSync at the synced revision: Argo's rule, report unless selfHeal.
        let oos = |i: &mut AutoInput| {
            same(i);
            i.sync = SyncStatus::OutOfSync;
            i.needs_apply = true;
        };
        assert!(matches!(auto(oos), AutoDecision::Hold(m) if m.contains("selfHeal is off")));
        assert_eq!(
            auto(|i| {
                oos(i);
                i.policy.self_heal = true;
            }),
            AutoDecision::Sync("selfHeal")
        );
        // Drift only: the runtime heals.
        assert_eq!(
            auto(|i| {
                oos(i);
                i.needs_apply = false;
                i.policy.self_heal = true;
            }),
            AutoDecision::Nothing
        );
        // Prune-only differences and prune off.
        assert!(matches!(
            auto(|i| {
                oos(i);
                i.needs_apply = false;
                i.only_prune_needed = true;
                i.policy.self_heal = true;
            }),
            AutoDecision::Hold(m) if m.contains("prune is off")
        ));
        assert!(matches!(
            auto(|i| i.empty = true),
            AutoDecision::Hold(m) if m.contains("allowEmpty")
        ));
    }
}
