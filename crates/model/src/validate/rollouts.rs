//! Argo Rollouts: the workload, the canary and blue-green strategies, their steps and the
//! analyses they run.

use super::cx::Cx;
use super::names::NameRule;
use super::pod::Restart;
use super::text::{listed, quoted};
use crate::kinds::{
    AnalysisRunArgument, AnalysisTemplateRef, CanaryStep, CanaryStrategy, Rollout,
    CANARY_STEP_ACTIONS,
};
use crate::location::FieldPath;

impl Cx<'_> {
    pub(super) fn rollout(&mut self, r: &Rollout) {
        let spec = FieldPath::root().key("spec");
        let s = &r.spec;
        self.workload_counts(
            &spec,
            s.replicas,
            s.min_ready_seconds,
            s.revision_history_limit,
            s.progress_deadline_seconds,
        );

        let has_template = self.raw(&spec.key("template")).is_some();
        let has_ref = self.raw(&spec.key("workloadRef")).is_some();
        self.one_of_two(&spec, ("template", has_template), ("workloadRef", has_ref));
        if let Some(w) = &s.workload_ref {
            let at = spec.key("workloadRef");
            let kinds = ["Deployment", "ReplicaSet", "PodTemplate"];
            self.required_one_of(at.key("kind"), &w.kind, &kinds);
            self.required(at.key("name"), &w.name, "a workload name");
        }
        if let Some(t) = &s.template {
            self.workload_selector(&spec, s.selector.as_ref(), &t.metadata.labels);
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
                self.required_one_of(p.key("specRef"), &t.spec_ref, &["stable", "canary"]);
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
            let known = listed(routes, "none are listed");
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
        self.at_least_one(at.key("templates"), templates, "template");
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
        let mut names = Vec::new();
        for (i, a) in args.iter().enumerate() {
            let p = at.key("args").index(i);
            if self.required(p.key("name"), &a.name, "an arg name") {
                let what = "an arg name unique in the analysis";
                self.unique(&mut names, &p, "name", &a.name, what);
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
                    self.field_path(&q, &f.field_path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, ROLLOUT};

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
}
