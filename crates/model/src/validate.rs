//! Validation: what Kubernetes, Argo CD or Argo Rollouts would refuse, and the mistakes they
//! accept but that break a delivery, reported all at once and each located at its field.
//!
//! Every message says what was expected and what was found, without a trailing period:
//! `spec.strategy.canary.steps[2].setWeight: expected an integer 0..=100, got 140`.
//!
//! How a check is written:
//! - type problems come from decoding the typed view leniently
//!   ([`crate::kinds::decode_lenient`]); a check about a field that already has a type problem
//!   is not reported again;
//! - "exactly one of" checks read the raw value, so a field that is present but ill-typed still
//!   counts as present;
//! - values are shown as written: strings quoted, numbers bare, `nothing` when absent.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::kinds::{
    decode_lenient, AnalysisRunArgument, AnalysisTemplate, AnalysisTemplateRef, Application,
    ApplicationSource, CanaryStep, CanaryStrategy, ConfigMap, Container, Deployment, Duration,
    IntOrPercent, IntOrString, Job, JobSpec, KnownKind, LabelSelector, Metric, ObjectMeta, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Rollout, Secret, Service, CANARY_STEP_ACTIONS,
    SYNC_OPTION_KEYS,
};
use crate::location::FieldPath;
use crate::object::Object;

/// Check one object: generic metadata rules for every kind, plus the rules of its kind when
/// Slipway knows it. Returns every problem found, sorted by position in the file.
pub fn validate(obj: &Object) -> Vec<Diagnostic> {
    let mut cx = Cx::new(obj);
    if let Some(m) = cx.decode::<MetaView>() {
        cx.metadata(&m.metadata);
    }
    match KnownKind::of_object(obj) {
        Some(KnownKind::Deployment) => {
            if let Some(d) = cx.decode::<Deployment>() {
                cx.deployment(&d);
            }
        }
        Some(KnownKind::Service) => {
            if let Some(s) = cx.decode::<Service>() {
                cx.service(&s);
            }
        }
        Some(KnownKind::ConfigMap) => {
            if let Some(c) = cx.decode::<ConfigMap>() {
                cx.config_map(&c);
            }
        }
        Some(KnownKind::Secret) => {
            if let Some(s) = cx.decode::<Secret>() {
                cx.secret(&s);
            }
        }
        Some(KnownKind::Job) => {
            if let Some(j) = cx.decode::<Job>() {
                let at = FieldPath::root().key("spec");
                cx.job_spec(&at, &j.spec);
            }
        }
        Some(KnownKind::Application) => {
            if let Some(a) = cx.decode::<Application>() {
                cx.application(&a);
            }
        }
        Some(KnownKind::Rollout) => {
            if let Some(r) = cx.decode::<Rollout>() {
                cx.rollout(&r);
            }
        }
        Some(KnownKind::AnalysisTemplate | KnownKind::ClusterAnalysisTemplate) => {
            if let Some(t) = cx.decode::<AnalysisTemplate>() {
                cx.analysis_template(&t);
            }
        }
        None => {}
    }
    // Type problems are found before the rest; people read a file top to bottom.
    cx.out
        .sort_by_key(|d| d.location.as_ref().and_then(|l| l.pos));
    cx.out
}

/// Check a set of objects (one application's rendered manifests, one directory): every
/// object as [`validate`] does, then the rules that span objects:
/// - no two objects share group, kind, namespace and name;
/// - a Rollout's analysis passes every arg that a referenced template present in the set
///   declares without a value.
pub fn validate_all(objs: &[Object]) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = objs.iter().flat_map(validate).collect();
    duplicates(objs, &mut out);
    rollout_template_args(objs, &mut out);
    out
}

fn identity(obj: &Object) -> Option<(String, String, String, String)> {
    if obj.name().is_empty() {
        return None;
    }
    let cluster_scoped = KnownKind::of_object(obj).is_some_and(KnownKind::is_cluster_scoped);
    let namespace = if cluster_scoped { "" } else { obj.namespace() };
    Some((
        obj.group().to_string(),
        obj.kind().to_string(),
        namespace.to_string(),
        obj.name().to_string(),
    ))
}

fn duplicates(objs: &[Object], out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<(String, String, String, String), &Object> = HashMap::new();
    let name = FieldPath::root().key("metadata").key("name");
    for obj in objs {
        let Some(id) = identity(obj) else { continue };
        match first.get(&id) {
            None => {
                first.insert(id, obj);
            }
            Some(earlier) => {
                let mut what = obj.id();
                what.version.clear();
                let at = match &earlier.origin {
                    Some(o) => format!(" (first at {})", o.locate(&name)),
                    None => String::new(),
                };
                out.push(obj.diagnostic(
                    name.clone(),
                    format!(
                        "expected a unique group, kind, namespace and name, got {what} again{at}"
                    ),
                ));
            }
        }
    }
}

/// A Rollout's analyses must give a value to every arg a template in the same set declares
/// without one; templates that are not in the set may live in the cluster and are not checked.
fn rollout_template_args(objs: &[Object], out: &mut Vec<Diagnostic>) {
    let mut templates: HashMap<(bool, String, String), AnalysisTemplate> = HashMap::new();
    for obj in objs {
        let cluster = match KnownKind::of_object(obj) {
            Some(KnownKind::AnalysisTemplate) => false,
            Some(KnownKind::ClusterAnalysisTemplate) => true,
            _ => continue,
        };
        if let Some(t) = decode_lenient::<AnalysisTemplate>(obj).value {
            let ns = if cluster { "" } else { obj.namespace() };
            templates.insert((cluster, ns.to_string(), obj.name().to_string()), t);
        }
    }
    if templates.is_empty() {
        return;
    }
    for obj in objs {
        if KnownKind::of_object(obj) != Some(KnownKind::Rollout) {
            continue;
        }
        let Some(r) = decode_lenient::<Rollout>(obj).value else {
            continue;
        };
        let spec = FieldPath::root().key("spec").key("strategy");
        let mut uses: Vec<(FieldPath, &[AnalysisTemplateRef], &[AnalysisRunArgument])> = Vec::new();
        if let Some(c) = &r.spec.strategy.canary {
            let at = spec.key("canary");
            if let Some(a) = &c.analysis {
                uses.push((at.key("analysis"), &a.templates, &a.args));
            }
            for (i, s) in c.steps.iter().enumerate() {
                if let Some(a) = &s.analysis {
                    let p = at.key("steps").index(i).key("analysis");
                    uses.push((p, &a.templates, &a.args));
                }
            }
        }
        if let Some(b) = &r.spec.strategy.blue_green {
            let at = spec.key("blueGreen");
            for (key, a) in [
                ("prePromotionAnalysis", &b.pre_promotion_analysis),
                ("postPromotionAnalysis", &b.post_promotion_analysis),
            ] {
                if let Some(a) = a {
                    uses.push((at.key(key), &a.templates, &a.args));
                }
            }
        }
        for (at, refs, args) in uses {
            for (j, tref) in refs.iter().enumerate() {
                let cluster = tref.cluster_scope.unwrap_or(false);
                let ns = if cluster { "" } else { obj.namespace() };
                let key = (cluster, ns.to_string(), tref.template_name.clone());
                let Some(t) = templates.get(&key) else {
                    continue;
                };
                for arg in &t.spec.args {
                    let given = args.iter().any(|a| a.name == arg.name);
                    if arg.value.is_none() && arg.value_from.is_none() && !given {
                        out.push(obj.diagnostic(
                            at.key("templates").index(j),
                            format!(
                                "expected args to set {:?}, which {} {} declares without a value, got nothing",
                                arg.name, t.kind, t.metadata.name
                            ),
                        ));
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct MetaView {
    #[serde(default)]
    metadata: ObjectMeta,
}

/// What a name must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Most objects: `[a-z0-9]([-a-z0-9.]*[a-z0-9])?`, at most 253 characters.
    Dns1123Subdomain,
    /// Namespaces, containers, ports: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
    Dns1123Label,
    /// Services: a DNS-1123 label that starts with a letter.
    Dns1035Label,
    /// RBAC objects: anything but `/`, `%`, `.` and `..`.
    PathSegment,
}

impl NameRule {
    /// The rule Kubernetes applies to `metadata.name` of a kind.
    pub fn for_kind(api_version: &str, kind: &str) -> NameRule {
        let group = crate::object::split_api_version(api_version).0;
        match (group, kind) {
            ("", "Service") => NameRule::Dns1035Label,
            ("", "Namespace") => NameRule::Dns1123Label,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            _ => NameRule::Dns1123Subdomain,
        }
    }

    /// Whether `s` follows the rule.
    pub fn check(self, s: &str) -> bool {
        match self {
            NameRule::Dns1123Subdomain => is_dns1123_subdomain(s),
            NameRule::Dns1123Label => is_dns1123_label(s),
            NameRule::Dns1035Label => is_dns1035_label(s),
            NameRule::PathSegment => {
                !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%'])
            }
        }
    }

    /// The rule in words, for "expected ..." messages.
    pub fn describe(self) -> &'static str {
        match self {
            NameRule::Dns1123Subdomain => DNS1123_SUBDOMAIN,
            NameRule::Dns1123Label => DNS1123_LABEL,
            NameRule::Dns1035Label => {
                "a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit)"
            }
            NameRule::PathSegment => "a name without '/' or '%' that is not '.' or '..'",
        }
    }
}

const DNS1123_SUBDOMAIN: &str = "a DNS-1123 subdomain (at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)";
const DNS1123_LABEL: &str = "a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)";
const LABEL_KEY: &str = "a label key (an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)";
const LABEL_VALUE: &str = "a label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, or empty)";
const PORT_NAME: &str =
    "a port name (at most 15 lowercase letters, digits and '-', with at least one letter)";
const DURATION: &str = "a duration such as 30s, 5m or 1h";

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A DNS-1123 label: at most 63 lowercase letters, digits and `-`, starting and ending with a
/// letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
}

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters in all.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
                && is_lower_alnum(b[0])
                && is_lower_alnum(b[b.len() - 1])
        })
}

/// A DNS-1035 label: a DNS-1123 label that starts with a letter (Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A qualified name (label and annotation keys): `[prefix/]name`, the prefix a DNS-1123
/// subdomain, the name at most 63 letters, digits, `-`, `_` and `.`, alphanumeric at both ends.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_name_part(name),
        None => is_name_part(s),
    }
}

/// A label value: empty, or a name part (at most 63 characters).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

/// An IANA service name (container and Service port names): at most 15 lowercase letters,
/// digits and `-`, at least one letter, no `-` at either end nor `--`.
pub fn is_iana_svc_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// A ConfigMap or Secret key: at most 253 letters, digits, `-`, `_` and `.`, not `.` or `..`.
pub fn is_config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && s != "."
        && !s.starts_with("..")
}

/// An RFC 6901 JSON pointer: empty, or `/`-prefixed tokens where `~` is always `~0` or `~1`.
pub fn is_json_pointer(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if !s.starts_with('/') {
        return false;
    }
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, &c)| c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

/// A value as a message shows it: strings quoted (long ones cut), numbers and booleans bare.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => quoted(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "nothing".into(),
        Value::Array(_) => "a sequence".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn quoted(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
}

fn join(items: &[&str], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

fn fmt_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "no labels".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn has_placeholder(s: &str) -> bool {
    s.contains("{{")
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

/// Whether `path` climbs out of the directory it is relative to.
fn escapes(path: &str) -> bool {
    let mut depth = 0i32;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// Deployments and Rollouts: only `Always`.
    Always(&'static str),
    /// Jobs: `Never` or `OnFailure`, required.
    Job,
}

struct Cx<'a> {
    obj: &'a Object,
    out: Vec<Diagnostic>,
    ill_typed: Vec<FieldPath>,
}

impl<'a> Cx<'a> {
    fn new(obj: &'a Object) -> Self {
        Cx {
            obj,
            out: Vec::new(),
            ill_typed: Vec::new(),
        }
    }

    fn decode<T: DeserializeOwned>(&mut self) -> Option<T> {
        let d = decode_lenient::<T>(self.obj);
        for e in d.errors {
            if let Some(f) = &e.field {
                self.ill_typed.push(f.clone());
            }
            if !self.out.contains(&e) {
                self.out.push(e);
            }
        }
        d.value
    }

    fn report(&mut self, at: FieldPath, message: impl Into<String>) {
        if self.ill_typed.iter().any(|t| at.0.starts_with(&t.0)) {
            return;
        }
        let d = self.obj.diagnostic(at, message);
        if !self.out.contains(&d) {
            self.out.push(d);
        }
    }

    /// The raw value at a path; `null` counts as absent.
    fn raw(&self, at: &FieldPath) -> Option<&'a Value> {
        self.obj
            .value
            .pointer(&at.to_pointer())
            .filter(|v| !v.is_null())
    }

    /// The raw value at a path as messages show it (`nothing` when absent).
    fn got(&self, at: &FieldPath) -> String {
        self.raw(at).map_or_else(|| "nothing".into(), shown)
    }

    /// Which of `names` are set (not null, not `false`) in the mapping at `at`.
    fn set_among(&self, at: &FieldPath, names: &[&'static str]) -> Vec<&'static str> {
        let Some(Value::Object(m)) = self.raw(at) else {
            return Vec::new();
        };
        names
            .iter()
            .copied()
            .filter(|n| {
                m.get(*n)
                    .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
            })
            .collect()
    }

    /// Report unless exactly one of `names` is set in the mapping at `at`; returns the one.
    fn exactly_one(&mut self, at: &FieldPath, names: &[&'static str]) -> Option<&'static str> {
        let set = self.set_among(at, names);
        if set.len() == 1 {
            return Some(set[0]);
        }
        let got = match (set.len(), names.len()) {
            (0, 2) => "neither".to_string(),
            (0, _) => {
                let unknown: Vec<String> = match self.raw(at) {
                    Some(Value::Object(m)) => m
                        .keys()
                        .filter(|k| !names.contains(&k.as_str()))
                        .map(|k| format!("{k:?}"))
                        .collect(),
                    _ => Vec::new(),
                };
                if unknown.is_empty() {
                    "none".to_string()
                } else {
                    let unknown: Vec<&str> = unknown.iter().map(String::as_str).collect();
                    format!("none (unknown field {})", join(&unknown, "and"))
                }
            }
            (2, 2) => "both".to_string(),
            _ => join(&set, "and"),
        };
        self.report(
            at.clone(),
            format!("expected exactly one of {}, got {got}", join(names, "or")),
        );
        None
    }

    /// Report when both of two fields are set.
    fn not_both(&mut self, at: &FieldPath, a: &'static str, b: &'static str) -> bool {
        if self.set_among(at, &[a, b]).len() == 2 {
            self.report(at.key(b), format!("expected either {a} or {b}, got both"));
            return false;
        }
        true
    }

    fn min_int(&mut self, at: FieldPath, v: Option<impl Into<i64>>, min: i64) {
        if let Some(v) = v.map(Into::into) {
            if v < min {
                self.report(at, format!("expected an integer >= {min}, got {v}"));
            }
        }
    }

    fn int_range(&mut self, at: FieldPath, v: Option<i32>, lo: i32, hi: i32) -> bool {
        match v {
            Some(v) if !(lo..=hi).contains(&v) => {
                self.report(at, format!("expected an integer {lo}..={hi}, got {v}"));
                false
            }
            _ => true,
        }
    }

    fn required(&mut self, at: FieldPath, value: &str, what: &str) -> bool {
        if value.trim().is_empty() {
            let got = self.got(&at);
            self.report(at, format!("expected {what}, got {got}"));
            return false;
        }
        true
    }

    fn name_rule(&mut self, at: FieldPath, value: &str, rule: NameRule) {
        if !rule.check(value) {
            self.report(
                at,
                format!("expected {}, got {}", rule.describe(), quoted(value)),
            );
        }
    }

    fn one_of_values(&mut self, at: FieldPath, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value {
            if !allowed.contains(&v) {
                self.report(
                    at,
                    format!("expected {}, got {}", join(allowed, "or"), quoted(v)),
                );
            }
        }
    }

    fn duration(&mut self, at: FieldPath, text: Option<&str>, seconds_ok: bool) {
        let Some(s) = text else { return };
        if has_placeholder(s) {
            return;
        }
        let parsed = if seconds_ok {
            Duration::parse_seconds_or_go(s)
        } else {
            Duration::parse(s)
        };
        if let Err(e) = parsed {
            self.report(at, format!("expected {DURATION}, got {}: {e}", quoted(s)));
        }
    }

    fn int_or_string_duration(&mut self, at: FieldPath, v: Option<&IntOrString>) {
        match v {
            Some(IntOrString::Int(i)) if *i < 0 => {
                self.report(at, format!("expected seconds >= 0 or {DURATION}, got {i}"));
            }
            Some(IntOrString::String(s)) => self.duration(at, Some(s), true),
            _ => {}
        }
    }

    // ---- metadata, labels, selectors ----------------------------------------------------

    fn metadata(&mut self, m: &ObjectMeta) {
        let at = FieldPath::root().key("metadata");
        if m.name.is_empty() {
            // Kustomize's own files look like objects but are never applied, and are unnamed.
            let kustomize_file = self.obj.group() == "kustomize.config.k8s.io";
            if m.generate_name.is_none() && !kustomize_file {
                let got = self.got(&at.key("name"));
                self.report(at.key("name"), format!("expected a name, got {got}"));
            }
        } else {
            let rule = NameRule::for_kind(self.obj.api_version(), self.obj.kind());
            self.name_rule(at.key("name"), &m.name, rule);
        }
        if let Some(ns) = &m.namespace {
            self.name_rule(at.key("namespace"), ns, NameRule::Dns1123Label);
        }
        self.labels(&at.key("labels"), &m.labels);
        self.annotation_keys(&at.key("annotations"), &m.annotations);
    }

    fn labels(&mut self, at: &FieldPath, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                self.report(
                    at.key(k),
                    format!("expected {LABEL_KEY}, got {}", quoted(k)),
                );
            }
            if !is_label_value(v) {
                self.report(
                    at.key(k),
                    format!("expected {LABEL_VALUE}, got {}", quoted(v)),
                );
            }
        }
    }

    fn annotation_keys(&mut self, at: &FieldPath, annotations: &BTreeMap<String, String>) {
        for k in annotations.keys() {
            if !is_qualified_name(k) {
                self.report(
                    at.key(k),
                    format!(
                        "expected an annotation key (an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.'), got {}",
                        quoted(k)
                    ),
                );
            }
        }
    }

    fn selector(&mut self, at: &FieldPath, s: &LabelSelector) {
        if s.is_empty() {
            self.report(
                at.clone(),
                "expected matchLabels or matchExpressions, got an empty selector",
            );
        }
        self.labels(&at.key("matchLabels"), &s.match_labels);
        for (i, r) in s.match_expressions.iter().enumerate() {
            let p = at.key("matchExpressions").index(i);
            if !is_qualified_name(&r.key) {
                let got = self.got(&p.key("key"));
                self.report(p.key("key"), format!("expected {LABEL_KEY}, got {got}"));
            }
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => self.report(
                    p.key("values"),
                    format!(
                        "expected at least one value for operator {}, got none",
                        r.operator
                    ),
                ),
                "Exists" | "DoesNotExist" if !r.values.is_empty() => self.report(
                    p.key("values"),
                    format!(
                        "expected no values for operator {}, got {}",
                        r.operator,
                        r.values.len()
                    ),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                _ => {
                    let got = self.got(&p.key("operator"));
                    self.report(
                        p.key("operator"),
                        format!("expected In, NotIn, Exists or DoesNotExist, got {got}"),
                    );
                }
            }
        }
    }

    /// The workload's selector must select its own pod template.
    fn selector_matches_template(
        &mut self,
        spec: &FieldPath,
        selector: &LabelSelector,
        template_labels: &BTreeMap<String, String>,
    ) {
        if let Some(req) = selector.first_mismatch(template_labels) {
            let sel = spec.key("selector");
            self.report(
                spec.key("template").key("metadata").key("labels"),
                format!(
                    "expected labels matching {sel} ({req}), got {}",
                    fmt_labels(template_labels)
                ),
            );
        }
    }

    fn int_or_percent(&mut self, at: FieldPath, v: Option<&IntOrString>) -> Option<IntOrPercent> {
        let v = v?;
        match v.as_int_or_percent() {
            Some(IntOrPercent::Int(n)) if n < 0 => {
                self.report(
                    at,
                    format!("expected an integer >= 0 or a percentage such as 25%, got {n}"),
                );
                None
            }
            Some(IntOrPercent::Percent(p)) if p > 100 => {
                self.report(at, format!("expected a percentage 0%..=100%, got \"{p}%\""));
                None
            }
            Some(x) => Some(x),
            None => {
                self.report(
                    at,
                    format!(
                        "expected an integer >= 0 or a percentage such as 25%, got {}",
                        quoted(&v.to_string())
                    ),
                );
                None
            }
        }
    }

    /// `maxSurge` and `maxUnavailable` may not both be zero (nothing could ever move).
    fn surge_and_unavailable(
        &mut self,
        at: &FieldPath,
        surge: Option<&IntOrString>,
        unavailable: Option<&IntOrString>,
    ) {
        let s = self.int_or_percent(at.key("maxSurge"), surge);
        let u = self.int_or_percent(at.key("maxUnavailable"), unavailable);
        let zero = |x: Option<IntOrPercent>| {
            matches!(x, Some(IntOrPercent::Int(0) | IntOrPercent::Percent(0)))
        };
        if zero(s) && zero(u) {
            let got = self.got(&at.key("maxUnavailable"));
            self.report(
                at.key("maxUnavailable"),
                format!("expected a value above 0 when maxSurge is 0, got {got}"),
            );
        }
    }

    // ---- pods ----------------------------------------------------------------------------

    fn pod_template(&mut self, at: &FieldPath, t: &PodTemplateSpec, restart: Restart) {
        self.labels(&at.key("metadata").key("labels"), &t.metadata.labels);
        self.annotation_keys(
            &at.key("metadata").key("annotations"),
            &t.metadata.annotations,
        );
        self.pod_spec(&at.key("spec"), &t.spec, restart);
    }

    fn pod_spec(&mut self, at: &FieldPath, s: &PodSpec, restart: Restart) {
        let policy = at.key("restartPolicy");
        match (restart, s.restart_policy.as_deref()) {
            (Restart::Always(_), None | Some("Always")) => {}
            (Restart::Always(kind), Some(p)) => self.report(
                policy,
                format!(
                    "expected Always (the only restartPolicy a {kind} allows), got {}",
                    quoted(p)
                ),
            ),
            (Restart::Job, Some("Never" | "OnFailure")) => {}
            (Restart::Job, _) => {
                let got = self.got(&policy);
                self.report(policy, format!("expected Never or OnFailure, got {got}"));
            }
        }
        if s.containers.is_empty() {
            let got = self.got(&at.key("containers"));
            let got = if got == "a sequence" {
                "none".into()
            } else {
                got
            };
            self.report(
                at.key("containers"),
                format!("expected at least one container, got {got}"),
            );
        }

        let mut volumes: Vec<&str> = Vec::new();
        for (i, v) in s.volumes.iter().enumerate() {
            let p = at.key("volumes").index(i);
            if self.required(p.key("name"), &v.name, "a volume name") {
                self.name_rule(p.key("name"), &v.name, NameRule::Dns1123Label);
                if let Some(first) = volumes.iter().position(|n| *n == v.name) {
                    self.report(
                        p.key("name"),
                        format!(
                            "expected a unique volume name, got {} again (first at {})",
                            quoted(&v.name),
                            at.key("volumes").index(first)
                        ),
                    );
                }
            }
            volumes.push(&v.name);
            let sources: Vec<&str> = match self.raw(&p) {
                Some(Value::Object(m)) => m
                    .iter()
                    .filter(|(k, v)| k.as_str() != "name" && !v.is_null())
                    .map(|(k, _)| k.as_str())
                    .collect(),
                _ => Vec::new(),
            };
            if sources.len() > 1 {
                self.report(
                    p.clone(),
                    format!(
                        "expected exactly one volume source, got {}",
                        join(&sources, "and")
                    ),
                );
            }
            if let Some(c) = &v.config_map {
                let q = p.key("configMap");
                self.required(q.key("name"), &c.name, "a ConfigMap name");
                self.file_mode(q.key("defaultMode"), c.default_mode);
                self.key_paths(&q, &c.items);
            }
            if let Some(c) = &v.secret {
                let q = p.key("secret");
                self.required(q.key("secretName"), &c.secret_name, "a Secret name");
                self.file_mode(q.key("defaultMode"), c.default_mode);
                self.key_paths(&q, &c.items);
            }
            if let Some(c) = &v.persistent_volume_claim {
                let q = p.key("persistentVolumeClaim");
                self.required(
                    q.key("claimName"),
                    &c.claim_name,
                    "a PersistentVolumeClaim name",
                );
            }
            if let Some(e) = &v.empty_dir {
                let q = p.key("emptyDir");
                self.one_of_values(
                    q.key("medium"),
                    e.medium.as_deref().filter(|m| !m.is_empty()),
                    &["Memory"],
                );
                self.quantity(q.key("sizeLimit"), e.size_limit.as_ref());
            }
        }

        let mut names: Vec<(String, FieldPath)> = Vec::new();
        for (list, containers) in [
            ("initContainers", &s.init_containers),
            ("containers", &s.containers),
        ] {
            for (i, c) in containers.iter().enumerate() {
                let p = at.key(list).index(i);
                if self.required(p.key("name"), &c.name, "a container name") {
                    self.name_rule(p.key("name"), &c.name, NameRule::Dns1123Label);
                    if let Some((_, first)) = names.iter().find(|(n, _)| *n == c.name) {
                        let first = first.clone();
                        self.report(
                            p.key("name"),
                            format!(
                                "expected a container name unique in the pod, got {} again (first at {first})",
                                quoted(&c.name)
                            ),
                        );
                    }
                    names.push((c.name.clone(), p.clone()));
                }
                self.container(&p, c, &volumes, &at.key("volumes"));
            }
        }
    }

    fn file_mode(&mut self, at: FieldPath, mode: Option<i32>) {
        if let Some(m) = mode {
            if !(0..=0o777).contains(&m) {
                self.report(
                    at,
                    format!("expected file mode bits 0..=0777 (octal; 511 in decimal), got {m}"),
                );
            }
        }
    }

    fn key_paths(&mut self, at: &FieldPath, items: &[crate::kinds::KeyToPath]) {
        for (i, item) in items.iter().enumerate() {
            let p = at.key("items").index(i);
            self.required(p.key("key"), &item.key, "a key");
            if self.required(p.key("path"), &item.path, "a relative file path")
                && (item.path.starts_with('/') || escapes(&item.path))
            {
                self.report(
                    p.key("path"),
                    format!(
                        "expected a relative file path inside the volume, got {}",
                        quoted(&item.path)
                    ),
                );
            }
            self.file_mode(p.key("mode"), item.mode);
        }
    }

    fn quantity(&mut self, at: FieldPath, q: Option<&crate::kinds::Quantity>) -> Option<f64> {
        let q = q?;
        match q.value() {
            Some(v) if v >= 0.0 => Some(v),
            Some(_) => {
                self.report(
                    at,
                    format!("expected a quantity >= 0, got {}", quoted(&q.0)),
                );
                None
            }
            None => {
                self.report(
                    at,
                    format!(
                        "expected a quantity such as 500m, 128Mi or 2, got {}",
                        quoted(&q.0)
                    ),
                );
                None
            }
        }
    }

    fn container(
        &mut self,
        at: &FieldPath,
        c: &Container,
        volumes: &[&str],
        volumes_at: &FieldPath,
    ) {
        let image = c.image.as_deref().unwrap_or("");
        if self.required(at.key("image"), image, "an image reference")
            && image.contains(char::is_whitespace)
        {
            self.report(
                at.key("image"),
                format!(
                    "expected an image reference without spaces, got {}",
                    quoted(image)
                ),
            );
        }
        self.one_of_values(
            at.key("imagePullPolicy"),
            c.image_pull_policy.as_deref(),
            &["Always", "IfNotPresent", "Never"],
        );

        let mut port_names: Vec<&str> = Vec::new();
        for (i, p) in c.ports.iter().enumerate() {
            let q = at.key("ports").index(i);
            match p.container_port {
                None => {
                    let got = self.got(&q.key("containerPort"));
                    self.report(
                        q.key("containerPort"),
                        format!("expected a port number 1..=65535, got {got}"),
                    );
                }
                Some(n) => {
                    self.int_range(q.key("containerPort"), Some(n), 1, 65535);
                }
            }
            self.int_range(q.key("hostPort"), p.host_port, 1, 65535);
            self.one_of_values(
                q.key("protocol"),
                p.protocol.as_deref(),
                &["TCP", "UDP", "SCTP"],
            );
            if let Some(name) = &p.name {
                if !is_iana_svc_name(name) {
                    self.report(
                        q.key("name"),
                        format!("expected {PORT_NAME}, got {}", quoted(name)),
                    );
                } else if port_names.contains(&name.as_str()) {
                    self.report(
                        q.key("name"),
                        format!(
                            "expected a port name unique in the container, got {} again",
                            quoted(name)
                        ),
                    );
                }
                port_names.push(name);
            }
        }

        for (i, e) in c.env.iter().enumerate() {
            let q = at.key("env").index(i);
            self.required(q.key("name"), &e.name, "a variable name");
            if !self.not_both(&q, "value", "valueFrom") {
                continue;
            }
            if let Some(from) = &e.value_from {
                let f = q.key("valueFrom");
                self.exactly_one(
                    &f,
                    &[
                        "configMapKeyRef",
                        "secretKeyRef",
                        "fieldRef",
                        "resourceFieldRef",
                    ],
                );
                for (key, r, what) in [
                    (
                        "configMapKeyRef",
                        &from.config_map_key_ref,
                        "a ConfigMap name",
                    ),
                    ("secretKeyRef", &from.secret_key_ref, "a Secret name"),
                ] {
                    if let Some(r) = r {
                        self.required(f.key(key).key("name"), &r.name, what);
                        self.required(f.key(key).key("key"), &r.key, "a key");
                    }
                }
                if let Some(r) = &from.field_ref {
                    self.required(
                        f.key("fieldRef").key("fieldPath"),
                        &r.field_path,
                        "a field path such as metadata.name",
                    );
                }
                if let Some(r) = &from.resource_field_ref {
                    self.required(
                        f.key("resourceFieldRef").key("resource"),
                        &r.resource,
                        "a resource such as limits.cpu",
                    );
                }
            }
        }
        for (i, e) in c.env_from.iter().enumerate() {
            let q = at.key("envFrom").index(i);
            self.exactly_one(&q, &["configMapRef", "secretRef"]);
            if let Some(r) = &e.config_map_ref {
                self.required(
                    q.key("configMapRef").key("name"),
                    &r.name,
                    "a ConfigMap name",
                );
            }
            if let Some(r) = &e.secret_ref {
                self.required(q.key("secretRef").key("name"), &r.name, "a Secret name");
            }
        }

        for (key, probe) in [
            ("readinessProbe", &c.readiness_probe),
            ("livenessProbe", &c.liveness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                self.probe(&at.key(key), key, p, &port_names);
            }
        }

        if let Some(r) = &c.resources {
            self.resources(&at.key("resources"), r);
        }

        let mut mount_paths: Vec<&str> = Vec::new();
        for (i, m) in c.volume_mounts.iter().enumerate() {
            let q = at.key("volumeMounts").index(i);
            if self.required(q.key("name"), &m.name, "a volume name")
                && !volumes.contains(&m.name.as_str())
            {
                let mut known: Vec<&str> = volumes.to_vec();
                known.dedup();
                let known = if known.is_empty() {
                    "none are declared".to_string()
                } else {
                    known.join(", ")
                };
                self.report(
                    q.key("name"),
                    format!(
                        "expected the name of a volume in {volumes_at} ({known}), got {}",
                        quoted(&m.name)
                    ),
                );
            }
            if self.required(q.key("mountPath"), &m.mount_path, "a mount path") {
                if mount_paths.contains(&m.mount_path.as_str()) {
                    self.report(
                        q.key("mountPath"),
                        format!(
                            "expected a mount path unique in the container, got {} again",
                            quoted(&m.mount_path)
                        ),
                    );
                }
                mount_paths.push(&m.mount_path);
            }
        }
    }

    fn probe(&mut self, at: &FieldPath, kind: &str, p: &Probe, port_names: &[&str]) {
        match self.exactly_one(at, &["httpGet", "tcpSocket", "exec", "grpc"]) {
            Some("httpGet") => {
                if let Some(h) = &p.http_get {
                    self.port_ref(
                        at.key("httpGet").key("port"),
                        h.port.as_ref(),
                        Some(port_names),
                    );
                    self.one_of_values(
                        at.key("httpGet").key("scheme"),
                        h.scheme.as_deref(),
                        &["HTTP", "HTTPS"],
                    );
                    if let Some(path) = &h.path {
                        if !path.is_empty() && !path.starts_with('/') {
                            self.report(
                                at.key("httpGet").key("path"),
                                format!("expected a path starting with /, got {}", quoted(path)),
                            );
                        }
                    }
                }
            }
            Some("tcpSocket") => {
                if let Some(t) = &p.tcp_socket {
                    self.port_ref(
                        at.key("tcpSocket").key("port"),
                        t.port.as_ref(),
                        Some(port_names),
                    );
                }
            }
            Some("exec") if p.exec.as_ref().is_some_and(|e| e.command.is_empty()) => {
                self.report(
                    at.key("exec").key("command"),
                    "expected a command (a non-empty sequence), got nothing",
                );
            }
            Some("grpc") => {
                if let Some(g) = &p.grpc {
                    let q = at.key("grpc").key("port");
                    if g.port.is_none() {
                        let got = self.got(&q);
                        self.report(q, format!("expected a port number 1..=65535, got {got}"));
                    } else {
                        self.int_range(q, g.port, 1, 65535);
                    }
                }
            }
            _ => {}
        }
        self.min_int(at.key("initialDelaySeconds"), p.initial_delay_seconds, 0);
        self.min_int(at.key("periodSeconds"), p.period_seconds, 1);
        self.min_int(at.key("timeoutSeconds"), p.timeout_seconds, 1);
        self.min_int(at.key("failureThreshold"), p.failure_threshold, 1);
        match p.success_threshold {
            Some(n) if kind != "readinessProbe" && n != 1 => self.report(
                at.key("successThreshold"),
                format!("expected 1 (the only value a {kind} allows), got {n}"),
            ),
            n => self.min_int(at.key("successThreshold"), n, 1),
        }
    }

    /// A port given by number or by name; `names` are the names it may use, when known.
    fn port_ref(&mut self, at: FieldPath, port: Option<&IntOrString>, names: Option<&[&str]>) {
        match port {
            None => {
                let got = self.got(&at);
                self.report(
                    at,
                    format!("expected a port number 1..=65535 or a port name, got {got}"),
                );
            }
            Some(IntOrString::Int(n)) => {
                self.int_range(at, Some(*n), 1, 65535);
            }
            Some(IntOrString::String(s)) => {
                if !is_iana_svc_name(s) {
                    self.report(
                        at,
                        format!(
                            "expected a port number 1..=65535 or {PORT_NAME}, got {}",
                            quoted(s)
                        ),
                    );
                } else if let Some(names) = names {
                    if !names.contains(&s.as_str()) {
                        let known = if names.is_empty() {
                            "it names none".to_string()
                        } else {
                            names.join(", ")
                        };
                        self.report(
                            at,
                            format!(
                                "expected a port number or the name of a port of this container ({known}), got {}",
                                quoted(s)
                            ),
                        );
                    }
                }
            }
        }
    }

    fn resources(&mut self, at: &FieldPath, r: &ResourceRequirements) {
        let mut limits: BTreeMap<&str, f64> = BTreeMap::new();
        for (k, q) in &r.limits {
            if let Some(v) = self.quantity(at.key("limits").key(k), Some(q)) {
                limits.insert(k, v);
            }
        }
        for (k, q) in &r.requests {
            let p = at.key("requests").key(k);
            if let Some(v) = self.quantity(p.clone(), Some(q)) {
                if let Some(&lim) = limits.get(k.as_str()) {
                    if v > lim {
                        self.report(
                            p,
                            format!("expected at most the limit {}, got {}", r.limits[k], q),
                        );
                    }
                }
            }
        }
    }

    // ---- core kinds ----------------------------------------------------------------------

    fn deployment(&mut self, d: &Deployment) {
        let spec = FieldPath::root().key("spec");
        let s = &d.spec;
        self.min_int(spec.key("replicas"), s.replicas, 0);
        self.min_int(spec.key("minReadySeconds"), s.min_ready_seconds, 0);
        self.min_int(
            spec.key("revisionHistoryLimit"),
            s.revision_history_limit,
            0,
        );
        self.progress_deadline(&spec, s.progress_deadline_seconds, s.min_ready_seconds);
        match &s.selector {
            None => {
                let got = self.got(&spec.key("selector"));
                self.report(
                    spec.key("selector"),
                    format!("expected a label selector matching spec.template.metadata.labels, got {got}"),
                );
            }
            Some(sel) => {
                self.selector(&spec.key("selector"), sel);
                if !sel.is_empty() {
                    self.selector_matches_template(&spec, sel, &s.template.metadata.labels);
                }
            }
        }
        if let Some(st) = &s.strategy {
            let at = spec.key("strategy");
            self.one_of_values(
                at.key("type"),
                st.type_.as_deref(),
                &["RollingUpdate", "Recreate"],
            );
            if let Some(ru) = &st.rolling_update {
                if st.type_.as_deref() == Some("Recreate") {
                    self.report(
                        at.key("rollingUpdate"),
                        "expected no rollingUpdate with type Recreate, got a mapping",
                    );
                } else {
                    self.surge_and_unavailable(
                        &at.key("rollingUpdate"),
                        ru.max_surge.as_ref(),
                        ru.max_unavailable.as_ref(),
                    );
                }
            }
        }
        self.pod_template(
            &spec.key("template"),
            &s.template,
            Restart::Always("Deployment"),
        );
    }

    fn progress_deadline(
        &mut self,
        spec: &FieldPath,
        deadline: Option<i32>,
        min_ready: Option<i32>,
    ) {
        if let Some(d) = deadline {
            let min_ready = min_ready.unwrap_or(0);
            if d <= min_ready {
                self.report(
                    spec.key("progressDeadlineSeconds"),
                    format!("expected more than minReadySeconds ({min_ready}), got {d}"),
                );
            }
        }
    }

    fn service(&mut self, s: &Service) {
        let spec = FieldPath::root().key("spec");
        let ty = s.spec.type_.as_deref().unwrap_or("ClusterIP");
        self.one_of_values(
            spec.key("type"),
            s.spec.type_.as_deref(),
            &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        );
        if ty == "ExternalName" {
            let name = s.spec.external_name.as_deref().unwrap_or("");
            if self.required(
                spec.key("externalName"),
                name,
                "a DNS name (type ExternalName)",
            ) {
                self.name_rule(spec.key("externalName"), name, NameRule::Dns1123Subdomain);
            }
        }
        let headless = s.spec.cluster_ip.as_deref() == Some("None");
        if s.spec.ports.is_empty() && ty != "ExternalName" && !headless {
            self.report(spec.key("ports"), "expected at least one port, got none");
        }
        self.labels(&spec.key("selector"), &s.spec.selector);
        let several = s.spec.ports.len() > 1;
        let mut names: Vec<(&str, usize)> = Vec::new();
        let mut seen: Vec<(i32, &str, usize)> = Vec::new();
        for (i, p) in s.spec.ports.iter().enumerate() {
            let at = spec.key("ports").index(i);
            match p.port {
                None => {
                    let got = self.got(&at.key("port"));
                    self.report(
                        at.key("port"),
                        format!("expected a port number 1..=65535, got {got}"),
                    );
                }
                Some(n) => {
                    self.int_range(at.key("port"), Some(n), 1, 65535);
                }
            }
            if p.target_port.is_some() {
                self.port_ref(at.key("targetPort"), p.target_port.as_ref(), None);
            }
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            self.one_of_values(
                at.key("protocol"),
                p.protocol.as_deref(),
                &["TCP", "UDP", "SCTP"],
            );
            if let Some(np) = p.node_port {
                if ty != "NodePort" && ty != "LoadBalancer" {
                    self.report(
                        at.key("nodePort"),
                        format!("expected no nodePort for a Service of type {ty}, got {np}"),
                    );
                } else {
                    self.int_range(at.key("nodePort"), Some(np), 1, 65535);
                }
            }
            match p.name.as_deref() {
                None | Some("") if several => {
                    let got = self.got(&at.key("name"));
                    self.report(
                        at.key("name"),
                        format!("expected a port name (required when a Service has several ports), got {got}"),
                    );
                }
                None | Some("") => {}
                Some(name) => {
                    self.name_rule(at.key("name"), name, NameRule::Dns1123Label);
                    if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
                        self.report(
                            at.key("name"),
                            format!(
                                "expected a port name unique in the Service, got {} again (first at spec.ports[{first}])",
                                quoted(name)
                            ),
                        );
                    }
                    names.push((name, i));
                }
            }
            if let Some(n) = p.port {
                if let Some((_, _, first)) =
                    seen.iter().find(|(q, pr, _)| *q == n && *pr == protocol)
                {
                    self.report(
                        at.key("port"),
                        format!(
                            "expected a port and protocol unique in the Service, got {n}/{protocol} again (first at spec.ports[{first}])"
                        ),
                    );
                }
                seen.push((n, protocol, i));
            }
        }
    }

    fn config_keys<'m>(&mut self, at: &FieldPath, keys: impl Iterator<Item = &'m String>) {
        for k in keys {
            if !is_config_key(k) {
                self.report(
                    at.key(k),
                    format!(
                        "expected a key of at most 253 letters, digits, '-', '_' and '.', got {}",
                        quoted(k)
                    ),
                );
            }
        }
    }

    fn base64_values(&mut self, at: &FieldPath, data: &BTreeMap<String, String>) {
        for (k, v) in data {
            let compact: String = v.chars().filter(|c| *c != '\n' && *c != '\r').collect();
            if base64::engine::general_purpose::STANDARD
                .decode(compact)
                .is_err()
            {
                self.report(
                    at.key(k),
                    format!("expected base64-encoded data, got {}", quoted(v)),
                );
            }
        }
    }

    fn config_map(&mut self, c: &ConfigMap) {
        let data = FieldPath::root().key("data");
        let binary = FieldPath::root().key("binaryData");
        self.config_keys(&data, c.data.keys());
        self.config_keys(&binary, c.binary_data.keys());
        for k in c.binary_data.keys() {
            if c.data.contains_key(k) {
                self.report(
                    binary.key(k),
                    format!("expected a key not also in data, got {}", quoted(k)),
                );
            }
        }
        self.base64_values(&binary, &c.binary_data);
    }

    fn secret(&mut self, s: &Secret) {
        let data = FieldPath::root().key("data");
        self.config_keys(&data, s.data.keys());
        self.config_keys(&FieldPath::root().key("stringData"), s.string_data.keys());
        self.base64_values(&data, &s.data);
        let has = |k: &str| s.data.contains_key(k) || s.string_data.contains_key(k);
        let Some(ty) = s.type_.as_deref() else { return };
        let required: &[&str] = match ty {
            "kubernetes.io/tls" => &["tls.crt", "tls.key"],
            "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
            "kubernetes.io/dockercfg" => &[".dockercfg"],
            "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
            "kubernetes.io/basic-auth" => {
                if !has("username") && !has("password") {
                    self.report(
                        data.clone(),
                        "expected username or password (required by type kubernetes.io/basic-auth), got neither",
                    );
                }
                &[]
            }
            _ => &[],
        };
        for k in required {
            if !has(k) {
                self.report(
                    data.key(*k),
                    format!("expected a value (required by type {ty}), got nothing"),
                );
            }
        }
    }

    fn job_spec(&mut self, at: &FieldPath, j: &JobSpec) {
        self.min_int(at.key("backoffLimit"), j.backoff_limit, 0);
        self.min_int(at.key("completions"), j.completions, 0);
        self.min_int(at.key("parallelism"), j.parallelism, 0);
        self.min_int(
            at.key("activeDeadlineSeconds"),
            j.active_deadline_seconds,
            1,
        );
        self.min_int(
            at.key("ttlSecondsAfterFinished"),
            j.ttl_seconds_after_finished,
            0,
        );
        if let Some(sel) = &j.selector {
            self.selector(&at.key("selector"), sel);
        }
        self.pod_template(&at.key("template"), &j.template, Restart::Job);
    }

    // ---- Argo CD -------------------------------------------------------------------------

    fn application(&mut self, a: &Application) {
        let spec = FieldPath::root().key("spec");
        let s = &a.spec;
        self.required(
            spec.key("project"),
            &s.project,
            "a project name (usually default)",
        );

        let has_source = self.raw(&spec.key("source")).is_some();
        let has_sources = self
            .raw(&spec.key("sources"))
            .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()));
        match (has_source, has_sources) {
            (true, true) => self.report(
                spec.key("sources"),
                "expected either source or sources, got both",
            ),
            (false, false) => self.report(spec.clone(), "expected source or sources, got neither"),
            _ => {}
        }
        if let Some(src) = &s.source {
            self.app_source(&spec.key("source"), src, false);
        }
        let mut refs: Vec<(&str, usize)> = Vec::new();
        for (i, src) in s.sources.iter().enumerate() {
            let at = spec.key("sources").index(i);
            self.app_source(&at, src, true);
            if let Some(r) = src.ref_.as_deref() {
                if let Some((_, first)) = refs.iter().find(|(n, _)| *n == r) {
                    self.report(
                        at.key("ref"),
                        format!("expected a ref unique among sources, got {} again (first at spec.sources[{first}])", quoted(r)),
                    );
                }
                refs.push((r, i));
            }
        }

        let dest = spec.key("destination");
        match self.set_among(&dest, &["server", "name"]).len() {
            0 => {
                let got = if self.raw(&dest).is_some() {
                    "neither"
                } else {
                    "nothing"
                };
                self.report(dest.clone(), format!("expected server or name, got {got}"));
            }
            2 => self.report(dest.key("name"), "expected either server or name, got both"),
            _ => {}
        }
        if let Some(server) = s.destination.server.as_deref() {
            if !(server.starts_with("https://") || server.starts_with("http://")) {
                self.report(
                    dest.key("server"),
                    format!(
                        "expected a cluster API URL such as https://kubernetes.default.svc, got {}",
                        quoted(server)
                    ),
                );
            }
        }
        if let Some(ns) = s.destination.namespace.as_deref() {
            self.name_rule(dest.key("namespace"), ns, NameRule::Dns1123Label);
        }

        if let Some(sp) = &s.sync_policy {
            let at = spec.key("syncPolicy");
            self.sync_options(&at.key("syncOptions"), &sp.sync_options);
            if let Some(b) = sp.retry.as_ref().and_then(|r| r.backoff.as_ref()) {
                let q = at.key("retry").key("backoff");
                self.int_or_string_duration(q.key("duration"), b.duration.as_ref());
                self.int_or_string_duration(q.key("maxDuration"), b.max_duration.as_ref());
                self.min_int(q.key("factor"), b.factor, 1);
            }
        }

        for (i, d) in s.ignore_differences.iter().enumerate() {
            let at = spec.key("ignoreDifferences").index(i);
            self.required(at.key("kind"), &d.kind, "a kind");
            for (j, p) in d.json_pointers.iter().enumerate() {
                if !is_json_pointer(p) {
                    self.report(
                        at.key("jsonPointers").index(j),
                        format!(
                            "expected an RFC 6901 JSON pointer such as /spec/replicas, got {}",
                            quoted(p)
                        ),
                    );
                }
            }
            for (j, e) in d.jq_path_expressions.iter().enumerate() {
                self.required(
                    at.key("jqPathExpressions").index(j),
                    e,
                    "a jq path expression",
                );
            }
        }
        self.min_int(
            spec.key("revisionHistoryLimit"),
            s.revision_history_limit,
            0,
        );
    }

    fn app_source(&mut self, at: &FieldPath, s: &ApplicationSource, multi: bool) {
        if self.required(
            at.key("repoURL"),
            &s.repo_url,
            "a Git or Helm repository URL",
        ) && s.repo_url.contains(char::is_whitespace)
        {
            self.report(
                at.key("repoURL"),
                format!(
                    "expected a repository URL without spaces, got {}",
                    quoted(&s.repo_url)
                ),
            );
        }
        self.not_both(at, "path", "chart");
        if let Some(p) = s.path.as_deref() {
            if escapes(p) {
                self.report(
                    at.key("path"),
                    format!("expected a path inside the repository, got {}", quoted(p)),
                );
            }
        }
        if !multi && s.ref_.is_some() {
            self.report(
                at.key("ref"),
                "expected ref only in spec.sources, got a ref in spec.source",
            );
        }
        let tools = self.set_among(at, &["directory", "helm", "kustomize", "plugin"]);
        if tools.len() > 1 {
            self.report(
                at.clone(),
                format!(
                    "expected at most one of directory, helm, kustomize or plugin, got {}",
                    join(&tools, "and")
                ),
            );
        }
        if let Some(k) = &s.kustomize {
            let q = at.key("kustomize");
            for (i, img) in k.images.iter().enumerate() {
                if img.trim().is_empty() || img.contains(char::is_whitespace) {
                    self.report(
                        q.key("images").index(i),
                        format!(
                            "expected an image override such as app=registry/app:1.2, got {}",
                            quoted(img)
                        ),
                    );
                }
            }
            self.labels(&q.key("commonLabels"), &k.common_labels);
            self.annotation_keys(&q.key("commonAnnotations"), &k.common_annotations);
            if let Some(ns) = k.namespace.as_deref() {
                self.name_rule(q.key("namespace"), ns, NameRule::Dns1123Label);
            }
            for (i, r) in k.replicas.iter().enumerate() {
                let p = q.key("replicas").index(i);
                self.required(p.key("name"), &r.name, "a workload name");
                match r.count.as_ref().map(|c| (c, c.as_int())) {
                    None => {
                        let got = self.got(&p.key("count"));
                        self.report(
                            p.key("count"),
                            format!("expected an integer >= 0, got {got}"),
                        );
                    }
                    Some((_, Some(n))) if n >= 0 => {}
                    Some((c, _)) => {
                        let got = match c {
                            IntOrString::Int(n) => n.to_string(),
                            IntOrString::String(s) => quoted(s),
                        };
                        self.report(
                            p.key("count"),
                            format!("expected an integer >= 0, got {got}"),
                        );
                    }
                }
            }
        }
    }

    fn sync_options(&mut self, at: &FieldPath, options: &[String]) {
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for (i, opt) in options.iter().enumerate() {
            let p = at.index(i);
            let Some((key, value)) = opt.split_once('=') else {
                let hint = closest(opt.trim(), &SYNC_OPTION_KEYS)
                    .map(|k| format!(" (did you mean {k}=true?)"))
                    .unwrap_or_default();
                self.report(
                    p,
                    format!(
                        "expected Key=Value such as CreateNamespace=true, got {}{hint}",
                        quoted(opt)
                    ),
                );
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if !SYNC_OPTION_KEYS.contains(&key) {
                let message = match closest(key, &SYNC_OPTION_KEYS) {
                    Some(k) => format!(
                        "expected a known sync option, got {} (did you mean {k}?)",
                        quoted(key)
                    ),
                    None => format!(
                        "expected a known sync option ({}), got {}",
                        join(&SYNC_OPTION_KEYS, "or"),
                        quoted(key)
                    ),
                };
                self.report(p, message);
                continue;
            }
            let allowed: &[&str] = match key {
                "Prune" | "Delete" => &["true", "false", "confirm"],
                "PrunePropagationPolicy" => &["foreground", "background", "orphan"],
                _ => &["true", "false"],
            };
            if !allowed.contains(&value) {
                let forms: Vec<String> = allowed.iter().map(|v| format!("{key}={v}")).collect();
                let forms: Vec<&str> = forms.iter().map(String::as_str).collect();
                self.report(
                    p.clone(),
                    format!("expected {}, got {}", join(&forms, "or"), quoted(opt)),
                );
            }
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                self.report(
                    p,
                    format!(
                        "expected each sync option once, got {key} again (first at {})",
                        at.index(*first)
                    ),
                );
            }
            seen.push((key, i));
        }
    }

    // ---- Argo Rollouts -------------------------------------------------------------------

    fn rollout(&mut self, r: &Rollout) {
        let spec = FieldPath::root().key("spec");
        let s = &r.spec;
        self.min_int(spec.key("replicas"), s.replicas, 0);
        self.min_int(spec.key("minReadySeconds"), s.min_ready_seconds, 0);
        self.min_int(
            spec.key("revisionHistoryLimit"),
            s.revision_history_limit,
            0,
        );
        self.progress_deadline(&spec, s.progress_deadline_seconds, s.min_ready_seconds);

        let has_template = self.raw(&spec.key("template")).is_some();
        let has_ref = self.raw(&spec.key("workloadRef")).is_some();
        match (has_template, has_ref) {
            (true, true) => self.report(
                spec.key("workloadRef"),
                "expected either template or workloadRef, got both",
            ),
            (false, false) => self.report(
                spec.clone(),
                "expected template or workloadRef, got neither",
            ),
            _ => {}
        }
        if let Some(w) = &s.workload_ref {
            let at = spec.key("workloadRef");
            self.one_of_values(
                at.key("kind"),
                Some(w.kind.as_str()).filter(|k| !k.is_empty()),
                &["Deployment", "ReplicaSet", "PodTemplate"],
            );
            self.required(
                at.key("kind"),
                &w.kind,
                "Deployment, ReplicaSet or PodTemplate",
            );
            self.required(at.key("name"), &w.name, "a workload name");
        }
        if let Some(t) = &s.template {
            match &s.selector {
                None => {
                    let got = self.got(&spec.key("selector"));
                    self.report(
                        spec.key("selector"),
                        format!("expected a label selector matching spec.template.metadata.labels, got {got}"),
                    );
                }
                Some(sel) => {
                    self.selector(&spec.key("selector"), sel);
                    if !sel.is_empty() {
                        self.selector_matches_template(&spec, sel, &t.metadata.labels);
                    }
                }
            }
            self.pod_template(&spec.key("template"), t, Restart::Always("Rollout"));
        } else if let Some(sel) = &s.selector {
            self.selector(&spec.key("selector"), sel);
        }

        let strategy = spec.key("strategy");
        self.exactly_one(&strategy, &["canary", "blueGreen"]);
        if let Some(c) = &s.strategy.canary {
            self.canary(&strategy.key("canary"), c);
        }
        if let Some(b) = &s.strategy.blue_green {
            let at = strategy.key("blueGreen");
            if self.required(at.key("activeService"), &b.active_service, "a Service name") {
                self.name_rule(
                    at.key("activeService"),
                    &b.active_service,
                    NameRule::Dns1035Label,
                );
            }
            if let Some(p) = b.preview_service.as_deref().filter(|p| !p.is_empty()) {
                self.name_rule(at.key("previewService"), p, NameRule::Dns1035Label);
                if p == b.active_service {
                    self.report(
                        at.key("previewService"),
                        format!(
                            "expected a Service other than activeService, got {} for both",
                            quoted(p)
                        ),
                    );
                }
            }
            self.min_int(at.key("autoPromotionSeconds"), b.auto_promotion_seconds, 0);
            self.min_int(
                at.key("scaleDownDelaySeconds"),
                b.scale_down_delay_seconds,
                0,
            );
            self.min_int(
                at.key("abortScaleDownDelaySeconds"),
                b.abort_scale_down_delay_seconds,
                0,
            );
            self.min_int(at.key("previewReplicaCount"), b.preview_replica_count, 0);
            self.int_or_percent(at.key("maxUnavailable"), b.max_unavailable.as_ref());
            for (key, a) in [
                ("prePromotionAnalysis", &b.pre_promotion_analysis),
                ("postPromotionAnalysis", &b.post_promotion_analysis),
            ] {
                if let Some(a) = a {
                    self.rollout_analysis(&at.key(key), &a.templates, &a.args);
                }
            }
        }
    }

    fn canary(&mut self, at: &FieldPath, c: &CanaryStrategy) {
        let canary = c.canary_service.as_deref().filter(|s| !s.is_empty());
        let stable = c.stable_service.as_deref().filter(|s| !s.is_empty());
        if let Some(s) = canary {
            self.name_rule(at.key("canaryService"), s, NameRule::Dns1035Label);
        }
        if let Some(s) = stable {
            self.name_rule(at.key("stableService"), s, NameRule::Dns1035Label);
        }
        if let (Some(a), Some(b)) = (canary, stable) {
            if a == b {
                self.report(
                    at.key("canaryService"),
                    format!(
                        "expected a Service other than stableService, got {} for both",
                        quoted(a)
                    ),
                );
            }
        }
        // Istio subset routing (a DestinationRule) splits traffic without the two Services.
        let subset_routing = c
            .traffic_routing
            .as_ref()
            .and_then(|t| t.istio.as_ref())
            .is_some_and(|i| i.get("destinationRule").is_some());
        if c.traffic_routing.is_some() && !subset_routing {
            for (key, v) in [("canaryService", canary), ("stableService", stable)] {
                if v.is_none() {
                    let got = self.got(&at.key(key));
                    self.report(
                        at.key(key),
                        format!(
                            "expected a Service name (required with trafficRouting), got {got}"
                        ),
                    );
                }
            }
        }
        self.surge_and_unavailable(at, c.max_surge.as_ref(), c.max_unavailable.as_ref());
        self.min_int(
            at.key("scaleDownDelaySeconds"),
            c.scale_down_delay_seconds,
            0,
        );
        self.min_int(
            at.key("abortScaleDownDelaySeconds"),
            c.abort_scale_down_delay_seconds,
            0,
        );

        let routes: Vec<&str> = c
            .traffic_routing
            .as_ref()
            .map(|t| t.managed_routes.iter().map(|r| r.name.as_str()).collect())
            .unwrap_or_default();
        for (i, step) in c.steps.iter().enumerate() {
            self.canary_step(&at.key("steps").index(i), step, &routes);
        }
        if let Some(a) = &c.analysis {
            let q = at.key("analysis");
            self.rollout_analysis(&q, &a.templates, &a.args);
            if let Some(n) = a.starting_step {
                let last = c.steps.len().saturating_sub(1);
                if n < 0 || n as usize > last {
                    self.report(
                        q.key("startingStep"),
                        format!("expected a step index 0..={last}, got {n}"),
                    );
                }
            }
        }
    }

    fn canary_step(&mut self, at: &FieldPath, step: &CanaryStep, routes: &[&str]) {
        self.exactly_one(at, &CANARY_STEP_ACTIONS);
        self.int_range(at.key("setWeight"), step.set_weight, 0, 100);
        if let Some(p) = &step.pause {
            self.int_or_string_duration(at.key("pause").key("duration"), p.duration.as_ref());
        }
        if let Some(s) = &step.set_canary_scale {
            let q = at.key("setCanaryScale");
            self.exactly_one(&q, &["weight", "replicas", "matchTrafficWeight"]);
            self.int_range(q.key("weight"), s.weight, 0, 100);
            self.min_int(q.key("replicas"), s.replicas, 0);
        }
        if let Some(a) = &step.analysis {
            self.rollout_analysis(&at.key("analysis"), &a.templates, &a.args);
        }
        if let Some(e) = &step.experiment {
            let q = at.key("experiment");
            if e.templates.is_empty() {
                self.report(
                    q.key("templates"),
                    "expected at least one template, got none",
                );
            }
            for (i, t) in e.templates.iter().enumerate() {
                let p = q.key("templates").index(i);
                self.required(p.key("name"), &t.name, "a template name");
                let spec_ref = Some(t.spec_ref.as_str()).filter(|s| !s.is_empty());
                self.one_of_values(p.key("specRef"), spec_ref, &["stable", "canary"]);
                self.required(p.key("specRef"), &t.spec_ref, "stable or canary");
                self.min_int(p.key("replicas"), t.replicas, 0);
                self.int_range(p.key("weight"), t.weight, 0, 100);
            }
            self.duration(q.key("duration"), e.duration.as_deref(), false);
            for (i, a) in e.analyses.iter().enumerate() {
                let p = q.key("analyses").index(i);
                self.required(p.key("name"), &a.name, "an analysis name");
                self.required(
                    p.key("templateName"),
                    &a.template_name,
                    "an AnalysisTemplate name",
                );
                self.run_args(&p, &a.args);
            }
        }
        if let Some(h) = &step.set_header_route {
            let q = at.key("setHeaderRoute");
            self.managed_route(&q, &h.name, routes);
            for (i, m) in h.r#match.iter().enumerate() {
                let p = q.key("match").index(i);
                self.required(p.key("headerName"), &m.header_name, "a header name");
                self.exactly_one(&p.key("headerValue"), &["exact", "prefix", "regex"]);
            }
        }
        if let Some(m) = &step.set_mirror_route {
            let q = at.key("setMirrorRoute");
            self.managed_route(&q, &m.name, routes);
            self.int_range(q.key("percentage"), m.percentage, 0, 100);
        }
    }

    fn managed_route(&mut self, at: &FieldPath, name: &str, routes: &[&str]) {
        if !self.required(
            at.key("name"),
            name,
            "a route listed in trafficRouting.managedRoutes",
        ) {
            return;
        }
        if !routes.contains(&name) {
            let known = if routes.is_empty() {
                "none are listed".to_string()
            } else {
                routes.join(", ")
            };
            self.report(
                at.key("name"),
                format!(
                    "expected a route listed in spec.strategy.canary.trafficRouting.managedRoutes ({known}), got {}",
                    quoted(name)
                ),
            );
        }
    }

    fn rollout_analysis(
        &mut self,
        at: &FieldPath,
        templates: &[AnalysisTemplateRef],
        args: &[AnalysisRunArgument],
    ) {
        if templates.is_empty() {
            let got = self.got(&at.key("templates"));
            let got = if got == "a sequence" {
                "none".into()
            } else {
                got
            };
            self.report(
                at.key("templates"),
                format!("expected at least one template, got {got}"),
            );
        }
        for (i, t) in templates.iter().enumerate() {
            let p = at.key("templates").index(i).key("templateName");
            let what = if t.cluster_scope == Some(true) {
                "a ClusterAnalysisTemplate name"
            } else {
                "an AnalysisTemplate name"
            };
            if self.required(p.clone(), &t.template_name, what) {
                self.name_rule(p, &t.template_name, NameRule::Dns1123Subdomain);
            }
        }
        self.run_args(at, args);
    }

    fn run_args(&mut self, at: &FieldPath, args: &[AnalysisRunArgument]) {
        let mut names: Vec<(&str, usize)> = Vec::new();
        for (i, a) in args.iter().enumerate() {
            let p = at.key("args").index(i);
            if self.required(p.key("name"), &a.name, "an arg name") {
                if let Some((_, first)) = names.iter().find(|(n, _)| *n == a.name) {
                    self.report(
                        p.key("name"),
                        format!("expected an arg name unique in the analysis, got {} again (first at {})", quoted(&a.name), at.key("args").index(*first)),
                    );
                }
                names.push((&a.name, i));
            }
            if !self.not_both(&p, "value", "valueFrom") {
                continue;
            }
            if let Some(v) = &a.value_from {
                let q = p.key("valueFrom");
                self.exactly_one(&q, &["podTemplateHashValue", "fieldRef"]);
                self.one_of_values(
                    q.key("podTemplateHashValue"),
                    v.pod_template_hash_value.as_deref(),
                    &["Stable", "Latest"],
                );
                if let Some(f) = &v.field_ref {
                    self.required(
                        q.key("fieldRef").key("fieldPath"),
                        &f.field_path,
                        "a field path such as metadata.name",
                    );
                }
            }
        }
    }

    fn analysis_template(&mut self, t: &AnalysisTemplate) {
        let spec = FieldPath::root().key("spec");
        let s = &t.spec;
        let mut declared: Vec<&str> = Vec::new();
        for (i, a) in s.args.iter().enumerate() {
            let p = spec.key("args").index(i);
            if self.required(p.key("name"), &a.name, "an arg name") {
                if declared.contains(&a.name.as_str()) {
                    self.report(
                        p.key("name"),
                        format!(
                            "expected an arg name unique in the template, got {} again",
                            quoted(&a.name)
                        ),
                    );
                }
                declared.push(&a.name);
            }
            if !self.not_both(&p, "value", "valueFrom") {
                continue;
            }
            if let Some(v) = &a.value_from {
                let q = p.key("valueFrom");
                self.exactly_one(&q, &["secretKeyRef", "fieldRef"]);
                if let Some(r) = &v.secret_key_ref {
                    self.required(q.key("secretKeyRef").key("name"), &r.name, "a Secret name");
                    self.required(q.key("secretKeyRef").key("key"), &r.key, "a key");
                }
                if let Some(f) = &v.field_ref {
                    self.required(
                        q.key("fieldRef").key("fieldPath"),
                        &f.field_path,
                        "a field path such as metadata.name",
                    );
                }
            }
        }
        if s.metrics.is_empty() {
            let got = self.got(&spec.key("metrics"));
            let got = if got == "a sequence" {
                "none".into()
            } else {
                got
            };
            self.report(
                spec.key("metrics"),
                format!("expected at least one metric, got {got}"),
            );
        }
        let mut names: Vec<(&str, usize)> = Vec::new();
        for (i, m) in s.metrics.iter().enumerate() {
            let at = spec.key("metrics").index(i);
            if self.required(at.key("name"), &m.name, "a metric name") {
                if let Some((_, first)) = names.iter().find(|(n, _)| *n == m.name) {
                    self.report(
                        at.key("name"),
                        format!(
                            "expected a metric name unique in the template, got {} again (first at spec.metrics[{first}])",
                            quoted(&m.name)
                        ),
                    );
                }
                names.push((&m.name, i));
            }
            self.metric(&at, m);
            self.arg_references(&at, &declared);
        }
    }

    fn count_like(&mut self, at: FieldPath, v: Option<&IntOrString>) -> Option<i64> {
        match v? {
            IntOrString::Int(n) if *n < 0 => {
                self.report(at, format!("expected an integer >= 0, got {n}"));
                None
            }
            IntOrString::Int(n) => Some(i64::from(*n)),
            IntOrString::String(s) if has_placeholder(s) => None,
            IntOrString::String(s) => {
                match s.trim().parse::<i64>() {
                    Ok(n) if n >= 0 => Some(n),
                    _ => {
                        self.report(
                        at,
                        format!("expected an integer >= 0 or an {{{{args.name}}}} placeholder, got {}", quoted(s)),
                    );
                        None
                    }
                }
            }
        }
    }

    fn metric(&mut self, at: &FieldPath, m: &Metric) {
        self.duration(at.key("interval"), m.interval.as_deref(), false);
        self.duration(at.key("initialDelay"), m.initial_delay.as_deref(), false);
        let count = self.count_like(at.key("count"), m.count.as_ref());
        let failure = self.count_like(at.key("failureLimit"), m.failure_limit.as_ref());
        let inconclusive =
            self.count_like(at.key("inconclusiveLimit"), m.inconclusive_limit.as_ref());
        self.count_like(
            at.key("consecutiveErrorLimit"),
            m.consecutive_error_limit.as_ref(),
        );
        if let Some(c) = count.filter(|c| *c > 0) {
            if c > 1 && m.interval.is_none() {
                self.report(
                    at.key("interval"),
                    format!("expected {DURATION} (required when count is above 1), got nothing"),
                );
            }
            for (key, limit) in [
                ("failureLimit", failure),
                ("inconclusiveLimit", inconclusive),
            ] {
                if let Some(l) = limit.filter(|l| *l > c) {
                    self.report(
                        at.key(key),
                        format!("expected at most count ({c}), got {l}"),
                    );
                }
            }
        }

        let provider = at.key("provider");
        const PROVIDERS: [&str; 12] = [
            "prometheus",
            "web",
            "job",
            "datadog",
            "newRelic",
            "wavefront",
            "kayenta",
            "cloudWatch",
            "graphite",
            "influxdb",
            "skywalking",
            "plugin",
        ];
        let set: Vec<String> = match self.raw(&provider) {
            Some(Value::Object(map)) => map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        };
        match set.as_slice() {
            [] => {
                let got = self.got(&provider);
                let got = if got == "a mapping" {
                    "none".into()
                } else {
                    got
                };
                self.report(
                    provider.clone(),
                    format!(
                        "expected exactly one provider (such as prometheus, web or job), got {got}"
                    ),
                );
            }
            [one] if !PROVIDERS.contains(&one.as_str()) => {
                let hint = closest(one, &PROVIDERS)
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                self.report(
                    provider.key(one),
                    format!(
                        "expected a known provider ({}), got {}{hint}",
                        join(&PROVIDERS, "or"),
                        quoted(one)
                    ),
                );
            }
            [_] => {}
            many => {
                let many: Vec<&str> = many.iter().map(String::as_str).collect();
                self.report(
                    provider.clone(),
                    format!("expected exactly one provider, got {}", join(&many, "and")),
                );
            }
        }
        if let Some(p) = &m.provider.prometheus {
            let q = provider.key("prometheus");
            self.required(q.key("query"), &p.query, "a PromQL query");
            self.http_url(q.key("address"), Some(&p.address).filter(|a| !a.is_empty()));
            self.min_int(q.key("timeout"), p.timeout, 0);
        }
        if let Some(w) = &m.provider.web {
            let q = provider.key("web");
            if self.required(q.key("url"), &w.url, "an http:// or https:// URL") {
                self.http_url(q.key("url"), Some(&w.url));
            }
            self.one_of_values(
                q.key("method"),
                w.method.as_deref(),
                &["GET", "POST", "PUT"],
            );
            self.min_int(q.key("timeoutSeconds"), w.timeout_seconds, 0);
            self.not_both(&q, "body", "jsonBody");
        }
        if let Some(j) = &m.provider.job {
            self.job_spec(&provider.key("job").key("spec"), &j.spec);
        }
    }

    fn http_url(&mut self, at: FieldPath, url: Option<&String>) {
        if let Some(u) = url {
            if !(has_placeholder(u) || u.starts_with("http://") || u.starts_with("https://")) {
                self.report(
                    at,
                    format!("expected an http:// or https:// URL, got {}", quoted(u)),
                );
            }
        }
    }

    /// Every `{{args.name}}` in a metric must name a declared arg.
    fn arg_references(&mut self, at: &FieldPath, declared: &[&str]) {
        let Some(v) = self.raw(at) else { return };
        let mut found: Vec<(FieldPath, String)> = Vec::new();
        collect_arg_refs(v, at.clone(), &mut found);
        for (p, name) in found {
            if !declared.contains(&name.as_str()) {
                let known = if declared.is_empty() {
                    "none are declared".to_string()
                } else {
                    declared.join(", ")
                };
                self.report(
                    p,
                    format!(
                        "expected an arg declared in spec.args ({known}), got {{{{args.{name}}}}}"
                    ),
                );
            }
        }
    }
}

fn collect_arg_refs(v: &Value, at: FieldPath, out: &mut Vec<(FieldPath, String)>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("{{") {
                let after = &rest[start + 2..];
                let Some(end) = after.find("}}") else { break };
                let inner = after[..end].trim();
                if let Some(name) = inner.strip_prefix("args.") {
                    if !out.iter().any(|(p, n)| *p == at && n == name) {
                        out.push((at.clone(), name.to_string()));
                    }
                }
                rest = &after[end + 2..];
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_arg_refs(item, at.index(i), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                collect_arg_refs(item, at.key(k), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::load_objects;

    /// Validate `yaml` (one or more documents) and compare `field: message` of every
    /// diagnostic, in order. Positions are proven by the integration tests.
    fn check(yaml: &str, expected: &[&str]) {
        let objs = load_objects("t.yaml", yaml).expect("test input loads");
        let got: Vec<String> = validate_all(&objs)
            .into_iter()
            .map(|d| {
                let mut d = d;
                d.location = None;
                d.to_string()
            })
            .collect();
        assert_eq!(got, expected, "\ninput:\n{yaml}");
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web@sha256:0123
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: http}
";

    #[test]
    fn valid_objects_have_no_diagnostics() {
        check(DEPLOYMENT, &[]);
        check(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n",
            &[],
        );
        check(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w.example, labels: {app.kubernetes.io/name: w}}\n",
            &[],
        );
        check(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: 'system:reader'}\n",
            &[],
        );
        check(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\n",
            &[],
        );
    }

    #[test]
    fn generic_metadata_rules() {
        check(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {labels: {app: web}}\n",
            &["metadata.name: expected a name, got nothing"],
        );
        check(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: Web_1, namespace: Prod}\n",
            &[
                &format!("metadata.name: expected {DNS1123_SUBDOMAIN}, got \"Web_1\""),
                &format!("metadata.namespace: expected {DNS1123_LABEL}, got \"Prod\""),
            ],
        );
        check(
            "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {clusterIP: None}\n",
            &["metadata.name: expected a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit), got \"1web\""],
        );
        check(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  labels: {'bad key': x, ok: -x, n: 1}\n  annotations: {'/x': y}\n",
            &[
                &format!("metadata.labels[\"bad key\"]: expected {LABEL_KEY}, got \"bad key\""),
                &format!("metadata.labels.ok: expected {LABEL_VALUE}, got \"-x\""),
                "metadata.labels.n: expected a string, got number 1",
                "metadata.annotations[\"/x\"]: expected an annotation key (an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.'), got \"/x\"",
            ],
        );
        check(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: migrate-}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: m}]\n",
            &[],
        );
    }

    #[test]
    fn deployments() {
        check(
            &DEPLOYMENT.replace("labels: {app: web}\n    spec", "labels: {app: api}\n    spec"),
            &["spec.template.metadata.labels: expected labels matching spec.selector (app=web), got app=api"],
        );
        check(
            &DEPLOYMENT
                .replace("replicas: 2", "replicas: -1\n  progressDeadlineSeconds: 5\n  minReadySeconds: 10\n  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}")
                .replace("        image: registry.local/web@sha256:0123\n", "")
                .replace("port: http}", "port: htp}"),
            &[
                "spec.replicas: expected an integer >= 0, got -1",
                "spec.progressDeadlineSeconds: expected more than minReadySeconds (10), got 5",
                "spec.strategy.rollingUpdate: expected no rollingUpdate with type Recreate, got a mapping",
                "spec.template.spec.containers[0].image: expected an image reference, got nothing",
                "spec.template.spec.containers[0].readinessProbe.httpGet.port: expected a port number or the name of a port of this container (http), got \"htp\"",
            ],
        );
        check(
            &DEPLOYMENT.replace(
                "replicas: 2",
                "strategy: {type: Rolling, rollingUpdate: {maxSurge: 0, maxUnavailable: '0%'}}",
            ),
            &[
                "spec.strategy.type: expected RollingUpdate or Recreate, got \"Rolling\"",
                "spec.strategy.rollingUpdate.maxUnavailable: expected a value above 0 when maxSurge is 0, got \"0%\"",
            ],
        );
        check(
            &DEPLOYMENT.replace("replicas: 2", "strategy: {rollingUpdate: {maxSurge: '25', maxUnavailable: 150%}}"),
            &[
                "spec.strategy.rollingUpdate.maxSurge: expected an integer >= 0 or a percentage such as 25%, got \"25\"",
                "spec.strategy.rollingUpdate.maxUnavailable: expected a percentage 0%..=100%, got \"150%\"",
            ],
        );
        check(
            &DEPLOYMENT.replace("  selector:\n    matchLabels: {app: web}\n", ""),
            &["spec.selector: expected a label selector matching spec.template.metadata.labels, got nothing"],
        );
    }

    #[test]
    fn containers_and_volumes() {
        let pod = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: Never
      volumes:
      - {name: config, configMap: {name: cfg, defaultMode: 1000}, secret: {secretName: s}}
      - {name: config, emptyDir: {}}
      initContainers:
      - {name: web, image: init}
      containers:
      - name: web
        image: 'nginx latest'
        imagePullPolicy: Sometimes
        ports: [{containerPort: 70000, protocol: tcp, name: HTTP}]
        env:
        - {name: A, value: x, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: B, valueFrom: {}}
        - {name: C, valueFrom: {secretKeyRef: {name: s}}}
        envFrom: [{configMapRef: {name: c}, secretRef: {name: s}}]
        livenessProbe: {exec: {command: [/bin/true]}, tcpSocket: {port: 80}, successThreshold: 2, periodSeconds: 0}
        startupProbe: {}
        resources: {limits: {cpu: 500m, memory: lots}, requests: {cpu: '1'}}
        volumeMounts:
        - {name: cfg, mountPath: /etc/cfg}
        - {name: config, mountPath: /etc/cfg}
";
        check(
            pod,
            &[
                "spec.template.spec.restartPolicy: expected Always (the only restartPolicy a Deployment allows), got \"Never\"",
                "spec.template.spec.volumes[0]: expected exactly one volume source, got configMap and secret",
                "spec.template.spec.volumes[0].configMap.defaultMode: expected file mode bits 0..=0777 (octal; 511 in decimal), got 1000",
                "spec.template.spec.volumes[1].name: expected a unique volume name, got \"config\" again (first at spec.template.spec.volumes[0])",
                "spec.template.spec.containers[0].name: expected a container name unique in the pod, got \"web\" again (first at spec.template.spec.initContainers[0])",
                "spec.template.spec.containers[0].image: expected an image reference without spaces, got \"nginx latest\"",
                "spec.template.spec.containers[0].imagePullPolicy: expected Always, IfNotPresent or Never, got \"Sometimes\"",
                "spec.template.spec.containers[0].ports[0].containerPort: expected an integer 1..=65535, got 70000",
                "spec.template.spec.containers[0].ports[0].protocol: expected TCP, UDP or SCTP, got \"tcp\"",
                &format!("spec.template.spec.containers[0].ports[0].name: expected {PORT_NAME}, got \"HTTP\""),
                "spec.template.spec.containers[0].env[0].valueFrom: expected either value or valueFrom, got both",
                "spec.template.spec.containers[0].env[1].valueFrom: expected exactly one of configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef, got none",
                "spec.template.spec.containers[0].env[2].valueFrom.secretKeyRef.key: expected a key, got nothing",
                "spec.template.spec.containers[0].envFrom[0]: expected exactly one of configMapRef or secretRef, got both",
                "spec.template.spec.containers[0].livenessProbe: expected exactly one of httpGet, tcpSocket, exec or grpc, got tcpSocket and exec",
                "spec.template.spec.containers[0].livenessProbe.successThreshold: expected 1 (the only value a livenessProbe allows), got 2",
                "spec.template.spec.containers[0].livenessProbe.periodSeconds: expected an integer >= 1, got 0",
                "spec.template.spec.containers[0].startupProbe: expected exactly one of httpGet, tcpSocket, exec or grpc, got none",
                "spec.template.spec.containers[0].resources.limits.memory: expected a quantity such as 500m, 128Mi or 2, got \"lots\"",
                "spec.template.spec.containers[0].resources.requests.cpu: expected at most the limit 500m, got 1",
                "spec.template.spec.containers[0].volumeMounts[0].name: expected the name of a volume in spec.template.spec.volumes (config), got \"cfg\"",
                "spec.template.spec.containers[0].volumeMounts[1].mountPath: expected a mount path unique in the container, got \"/etc/cfg\" again",
            ],
        );
        check(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: []}\n",
            &["spec.template.spec.containers: expected at least one container, got none"],
        );
    }

    #[test]
    fn services() {
        check(
            "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: Internal
  ports:
  - {port: 0, targetPort: '8080', protocol: HTTP, nodePort: 30000}
  - {name: http, port: 80, targetPort: 70000}
  - {name: http, port: 80}
",
            &[
                "spec.type: expected ClusterIP, NodePort, LoadBalancer or ExternalName, got \"Internal\"",
                "spec.ports[0].port: expected an integer 1..=65535, got 0",
                "spec.ports[0].name: expected a port name (required when a Service has several ports), got nothing",
                &format!("spec.ports[0].targetPort: expected a port number 1..=65535 or {PORT_NAME}, got \"8080\""),
                "spec.ports[0].protocol: expected TCP, UDP or SCTP, got \"HTTP\"",
                "spec.ports[0].nodePort: expected no nodePort for a Service of type Internal, got 30000",
                "spec.ports[1].targetPort: expected an integer 1..=65535, got 70000",
                "spec.ports[2].name: expected a port name unique in the Service, got \"http\" again (first at spec.ports[1])",
                "spec.ports[2].port: expected a port and protocol unique in the Service, got 80/TCP again (first at spec.ports[1])",
            ],
        );
        check(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}}\n",
            &["spec.ports: expected at least one port, got none"],
        );
        check(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: ExternalName}\n",
            &["spec.externalName: expected a DNS name (type ExternalName), got nothing"],
        );
    }

    #[test]
    fn config_maps_and_secrets() {
        check(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {port: 8080, 'a/b': x, ok: y}\nbinaryData: {ok: 'not base64!', bin: aGVsbG8=}\n",
            &[
                "data.port: expected a string, got number 8080",
                "data[\"a/b\"]: expected a key of at most 253 letters, digits, '-', '_' and '.', got \"a/b\"",
                "binaryData.ok: expected a key not also in data, got \"ok\"",
                "binaryData.ok: expected base64-encoded data, got \"not base64!\"",
            ],
        );
        check(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata: {tls.crt: '%%%'}\n",
            &[
                "data[\"tls.key\"]: expected a value (required by type kubernetes.io/tls), got nothing",
                "data[\"tls.crt\"]: expected base64-encoded data, got \"%%%\"",
            ],
        );
        check(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/basic-auth\nstringData: {user: x}\n",
            &["data: expected username or password (required by type kubernetes.io/basic-auth), got neither"],
        );
    }

    #[test]
    fn jobs() {
        check(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  backoffLimit: -1\n  activeDeadlineSeconds: 0\n  template:\n    spec:\n      containers: [{name: m, image: m}]\n",
            &[
                "spec.backoffLimit: expected an integer >= 0, got -1",
                "spec.activeDeadlineSeconds: expected an integer >= 1, got 0",
                "spec.template.spec.restartPolicy: expected Never or OnFailure, got nothing",
            ],
        );
    }

    const APP: &str = "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: hello, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://git.example.com/gitops.git
    targetRevision: main
    path: apps/hello/overlays/prod
  destination:
    server: https://kubernetes.default.svc
    namespace: hello
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true, PruneLast=true]
";

    #[test]
    fn applications() {
        check(APP, &[]);
        check(&APP.replace("argoproj.io", "slipway.dev"), &[]);
        check(
            &APP.replace("    server: https://kubernetes.default.svc\n", "    server: kubernetes\n    name: in-cluster\n")
                .replace("path: apps/hello/overlays/prod", "path: ../other\n    chart: hello\n    helm: {}\n    kustomize: {namePrefix: x-}")
                .replace("repoURL: https://git.example.com/gitops.git", "repoURL: ''")
                .replace("project: default", "project: ''")
                .replace(
                    "[CreateNamespace=true, PruneLast=true]",
                    "[CreateNamespace, CreateNamespaces=true, Foo=1, PruneLast=yes, PrunePropagationPolicy=background, Prune=confirm, PruneLast=false]",
                ),
            &[
                "spec.project: expected a project name (usually default), got \"\"",
                "spec.source: expected at most one of directory, helm, kustomize or plugin, got helm and kustomize",
                "spec.source.repoURL: expected a Git or Helm repository URL, got \"\"",
                "spec.source.path: expected a path inside the repository, got \"../other\"",
                "spec.source.chart: expected either path or chart, got both",
                "spec.destination.server: expected a cluster API URL such as https://kubernetes.default.svc, got \"kubernetes\"",
                "spec.destination.name: expected either server or name, got both",
                "spec.syncPolicy.syncOptions[0]: expected Key=Value such as CreateNamespace=true, got \"CreateNamespace\" (did you mean CreateNamespace=true?)",
                "spec.syncPolicy.syncOptions[1]: expected a known sync option, got \"CreateNamespaces\" (did you mean CreateNamespace?)",
                "spec.syncPolicy.syncOptions[2]: expected a known sync option (ApplyOutOfSyncOnly, CreateNamespace, Delete, FailOnSharedResource, Prune, PruneLast, PrunePropagationPolicy, Replace, RespectIgnoreDifferences, ServerSideApply, SkipDryRunOnMissingResource or Validate), got \"Foo\"",
                "spec.syncPolicy.syncOptions[3]: expected PruneLast=true or PruneLast=false, got \"PruneLast=yes\"",
                "spec.syncPolicy.syncOptions[6]: expected each sync option once, got PruneLast again (first at spec.syncPolicy.syncOptions[3])",
            ],
        );
        check(
            "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: hello}
spec:
  project: default
  source: {repoURL: https://a.git, path: a}
  sources:
  - {repoURL: https://b.git, ref: values}
  - {repoURL: https://c.git, ref: values}
  destination: {namespace: Hello}
  syncPolicy:
    retry: {limit: 3, backoff: {duration: 5 secs, factor: 0, maxDuration: 3m}}
  ignoreDifferences:
  - group: apps
    jsonPointers: [/spec/replicas, spec.replicas, /a~2b]
  revisionHistoryLimit: -1
",
            &[
                "spec.sources: expected either source or sources, got both",
                "spec.sources[1].ref: expected a ref unique among sources, got \"values\" again (first at spec.sources[0])",
                "spec.destination: expected server or name, got neither",
                &format!("spec.destination.namespace: expected {DNS1123_LABEL}, got \"Hello\""),
                "spec.syncPolicy.retry.backoff.duration: expected a duration such as 30s, 5m or 1h, got \"5 secs\": unknown unit \" secs\" (use ns, us, ms, s, m or h)",
                "spec.syncPolicy.retry.backoff.factor: expected an integer >= 1, got 0",
                "spec.ignoreDifferences[0].kind: expected a kind, got nothing",
                "spec.ignoreDifferences[0].jsonPointers[1]: expected an RFC 6901 JSON pointer such as /spec/replicas, got \"spec.replicas\"",
                "spec.ignoreDifferences[0].jsonPointers[2]: expected an RFC 6901 JSON pointer such as /spec/replicas, got \"/a~2b\"",
                "spec.revisionHistoryLimit: expected an integer >= 0, got -1",
            ],
        );
        check(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  project: default\n  destination: {name: in-cluster}\n",
            &["spec: expected source or sources, got neither"],
        );
        check(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a}\nspec:\n  project: default\n  source: {repoURL: 5}\n  destination: {server: 6}\n",
            &[
                "spec.source.repoURL: expected a string, got number 5",
                "spec.destination.server: expected a string, got number 6",
            ],
        );
    }

    const ROLLOUT: &str = "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: web:1}]
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        managedRoutes: [{name: header}]
      steps:
      - setWeight: 5
      - pause: {duration: 30s}
      - setHeaderRoute: {name: header, match: [{headerName: x-canary, headerValue: {exact: 'yes'}}]}
      - analysis: {templates: [{templateName: success-rate}], args: [{name: service, value: web}]}
      - setWeight: 50
      - pause: {}
";

    #[test]
    fn rollouts() {
        check(ROLLOUT, &[]);
        check(
            &ROLLOUT
                .replace("canaryService: web-canary", "canaryService: web-stable")
                .replace(
                    "      - setWeight: 50\n",
                    "      - setWeight: 140\n      - {setWeight: 10, pause: {}}\n      - setweight: 10\n      - pause: {duration: 5 minutes}\n      - pause: {duration: -3}\n      - setCanaryScale: {weight: 10, replicas: 2}\n      - setMirrorRoute: {name: mirror, percentage: 101}\n      - analysis: {templates: [{templateName: ''}], args: [{name: a, value: x, valueFrom: {podTemplateHashValue: Stable}}]}\n      - experiment: {duration: 1x, templates: [{name: exp, specRef: beta}]}\n",
                ),
            &[
                "spec.strategy.canary.canaryService: expected a Service other than stableService, got \"web-stable\" for both",
                "spec.strategy.canary.steps[4].setWeight: expected an integer 0..=100, got 140",
                "spec.strategy.canary.steps[5]: expected exactly one of setWeight, pause, setCanaryScale, analysis, experiment, setHeaderRoute, setMirrorRoute or plugin, got setWeight and pause",
                "spec.strategy.canary.steps[6]: expected exactly one of setWeight, pause, setCanaryScale, analysis, experiment, setHeaderRoute, setMirrorRoute or plugin, got none (unknown field \"setweight\")",
                "spec.strategy.canary.steps[7].pause.duration: expected a duration such as 30s, 5m or 1h, got \"5 minutes\": unknown unit \" minutes\" (use ns, us, ms, s, m or h)",
                "spec.strategy.canary.steps[8].pause.duration: expected seconds >= 0 or a duration such as 30s, 5m or 1h, got -3",
                "spec.strategy.canary.steps[9].setCanaryScale: expected exactly one of weight, replicas or matchTrafficWeight, got weight and replicas",
                "spec.strategy.canary.steps[10].setMirrorRoute.name: expected a route listed in spec.strategy.canary.trafficRouting.managedRoutes (header), got \"mirror\"",
                "spec.strategy.canary.steps[10].setMirrorRoute.percentage: expected an integer 0..=100, got 101",
                "spec.strategy.canary.steps[11].analysis.templates[0].templateName: expected an AnalysisTemplate name, got \"\"",
                "spec.strategy.canary.steps[11].analysis.args[0].valueFrom: expected either value or valueFrom, got both",
                "spec.strategy.canary.steps[12].experiment.duration: expected a duration such as 30s, 5m or 1h, got \"1x\": unknown unit \"x\" (use ns, us, ms, s, m or h)",
                "spec.strategy.canary.steps[12].experiment.templates[0].specRef: expected stable or canary, got \"beta\"",
            ],
        );
        check(
            &ROLLOUT.replace("      canaryService: web-canary\n", "").replace("app: web}}\n  template", "app: api}}\n  template"),
            &[
                "spec.template.metadata.labels: expected labels matching spec.selector (app=api), got app=web",
                "spec.strategy.canary.canaryService: expected a Service name (required with trafficRouting), got nothing",
            ],
        );
        check(
            "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  strategy:
    canary: {steps: [{setWeight: 10}]}
    blueGreen: {activeService: web}
",
            &["spec.strategy: expected exactly one of canary or blueGreen, got both"],
        );
        check(
            "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  workloadRef: {kind: StatefulSet, name: web}
  strategy:
    blueGreen:
      previewService: ''
      autoPromotionSeconds: -1
      prePromotionAnalysis: {templates: []}
",
            &[
                "spec.workloadRef.kind: expected Deployment, ReplicaSet or PodTemplate, got \"StatefulSet\"",
                "spec.strategy.blueGreen.activeService: expected a Service name, got nothing",
                "spec.strategy.blueGreen.autoPromotionSeconds: expected an integer >= 0, got -1",
                "spec.strategy.blueGreen.prePromotionAnalysis.templates: expected at least one template, got none",
            ],
        );
        check(
            "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  strategy:
    blueGreen: {activeService: web, previewService: web}
",
            &[
                "spec: expected template or workloadRef, got neither",
                "spec.strategy.blueGreen.previewService: expected a Service other than activeService, got \"web\" for both",
            ],
        );
        check(
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec:\n  workloadRef: {kind: Deployment, name: web}\n  strategy: {}\n",
            &["spec.strategy: expected exactly one of canary or blueGreen, got neither"],
        );
        check(
            &ROLLOUT
                .replace("      canaryService: web-canary\n      stableService: web-stable\n", "")
                .replace("managedRoutes: [{name: header}]", "managedRoutes: [{name: header}]\n        istio: {virtualService: {name: web}, destinationRule: {name: web, canarySubsetName: canary, stableSubsetName: stable}}"),
            &[],
        );
    }

    const TEMPLATE: &str = "apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args:
  - name: service
  metrics:
  - name: success-rate
    interval: 1m
    count: 5
    failureLimit: 1
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        query: sum(rate(http_requests_total{service=\"{{args.service}}\",code!~\"5..\"}[5m])) / sum(rate(http_requests_total{service=\"{{args.service}}\"}[5m]))
";

    #[test]
    fn analysis_templates() {
        check(TEMPLATE, &[]);
        check(
            "apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata: {name: checks}
spec:
  args: [{name: a, value: x, valueFrom: {fieldRef: {fieldPath: x}}}, {name: b, valueFrom: {}}]
  metrics:
  - name: m
    interval: 5 minutes
    initialDelay: '{{args.delay}}'
    count: -1
    failureLimit: three
    provider: {}
  - name: m
    count: 3
    failureLimit: 4
    provider:
      prometheus: {address: prometheus:9090, query: up}
      web: {url: 'http://x/{{args.a}}'}
  - name: n
    provider: {promethus: {query: up}}
  - name: j
    provider:
      job:
        spec:
          template:
            spec:
              containers: [{name: c, image: c}]
",
            &[
                "spec.args[0].valueFrom: expected either value or valueFrom, got both",
                "spec.args[1].valueFrom: expected exactly one of secretKeyRef or fieldRef, got neither",
                "spec.metrics[0].interval: expected a duration such as 30s, 5m or 1h, got \"5 minutes\": unknown unit \" minutes\" (use ns, us, ms, s, m or h)",
                "spec.metrics[0].initialDelay: expected an arg declared in spec.args (a, b), got {{args.delay}}",
                "spec.metrics[0].count: expected an integer >= 0, got -1",
                "spec.metrics[0].failureLimit: expected an integer >= 0 or an {{args.name}} placeholder, got \"three\"",
                "spec.metrics[0].provider: expected exactly one provider (such as prometheus, web or job), got none",
                "spec.metrics[1].name: expected a metric name unique in the template, got \"m\" again (first at spec.metrics[0])",
                "spec.metrics[1].interval: expected a duration such as 30s, 5m or 1h (required when count is above 1), got nothing",
                "spec.metrics[1].failureLimit: expected at most count (3), got 4",
                "spec.metrics[1].provider: expected exactly one provider, got prometheus and web",
                "spec.metrics[1].provider.prometheus.address: expected an http:// or https:// URL, got \"prometheus:9090\"",
                "spec.metrics[2].provider.promethus: expected a known provider (prometheus, web, job, datadog, newRelic, wavefront, kayenta, cloudWatch, graphite, influxdb, skywalking or plugin), got \"promethus\" (did you mean prometheus?)",
                "spec.metrics[3].provider.job.spec.template.spec.restartPolicy: expected Never or OnFailure, got nothing",
            ],
        );
        check(
            "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: t}\nspec: {}\n",
            &["spec.metrics: expected at least one metric, got nothing"],
        );
    }

    #[test]
    fn sets_of_objects() {
        check(
            &format!("{DEPLOYMENT}---\n{DEPLOYMENT}---\n{}", DEPLOYMENT.replace("name: web\n  labels", "name: web\n  namespace: prod\n  labels")),
            &["metadata.name: expected a unique group, kind, namespace and name, got Deployment.apps web again (first at t.yaml:4:3)"],
        );
        check(
            &format!("{TEMPLATE}---\n{}", ROLLOUT.replace("args: [{name: service, value: web}]", "args: []")),
            &["spec.strategy.canary.steps[3].analysis.templates[0]: expected args to set \"service\", which AnalysisTemplate success-rate declares without a value, got nothing"],
        );
        check(&format!("{TEMPLATE}---\n{ROLLOUT}"), &[]);
    }

    #[test]
    fn name_rules() {
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("-web"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(!is_qualified_name("app.kubernetes.io/"));
        assert!(is_iana_svc_name("http-metrics"));
        assert!(!is_iana_svc_name("8080"));
        assert!(!is_iana_svc_name("a--b"));
        assert!(is_json_pointer("/metadata/annotations/a~1b"));
        assert!(!is_json_pointer("/a~"));
        assert!(is_config_key("tls.crt"));
        assert!(!is_config_key(".."));
    }
}
