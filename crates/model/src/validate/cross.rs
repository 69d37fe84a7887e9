//! Rules that span objects: unique identities, and Rollout analyses that give every arg a
//! template in the same set requires.

use std::collections::HashMap;

use crate::diagnostic::Diagnostic;
use crate::kinds::{
    decode_lenient, AnalysisRunArgument, AnalysisTemplate, AnalysisTemplateRef, KnownKind, Rollout,
};
use crate::location::FieldPath;
use crate::object::Object;

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

pub(super) fn duplicates(objs: &[Object], out: &mut Vec<Diagnostic>) {
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
pub(super) fn rollout_template_args(objs: &[Object], out: &mut Vec<Diagnostic>) {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, DEPLOYMENT, ROLLOUT, TEMPLATE};

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
}
