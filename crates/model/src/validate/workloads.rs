//! Deployments, Services, ConfigMaps, Secrets and Jobs.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::cx::Cx;
use super::names::{is_config_key, NameRule};
use super::pod::Restart;
use super::text::quoted;
use crate::kinds::{
    ConfigMap, Deployment, IntOrPercent, IntOrString, Job, JobSpec, Secret, Service,
};
use crate::location::FieldPath;

impl Cx<'_> {
    pub(super) fn deployment(&mut self, d: &Deployment) {
        let spec = FieldPath::root().key("spec");
        let s = &d.spec;
        self.workload_counts(
            &spec,
            s.replicas,
            s.min_ready_seconds,
            s.revision_history_limit,
            s.progress_deadline_seconds,
        );
        self.workload_selector(&spec, s.selector.as_ref(), &s.template.metadata.labels);
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

    /// The counts Deployments and Rollouts share: none below 0, and a progress deadline past
    /// minReadySeconds.
    pub(super) fn workload_counts(
        &mut self,
        spec: &FieldPath,
        replicas: Option<i32>,
        min_ready: Option<i32>,
        history_limit: Option<i32>,
        progress_deadline: Option<i32>,
    ) {
        self.min_int(spec.key("replicas"), replicas, 0);
        self.min_int(spec.key("minReadySeconds"), min_ready, 0);
        self.min_int(spec.key("revisionHistoryLimit"), history_limit, 0);
        if let Some(d) = progress_deadline {
            let min_ready = min_ready.unwrap_or(0);
            if d <= min_ready {
                self.report(
                    spec.key("progressDeadlineSeconds"),
                    format!("expected more than minReadySeconds ({min_ready}), got {d}"),
                );
            }
        }
    }

    /// `maxSurge` and `maxUnavailable` may not both be zero (nothing could ever move).
    pub(super) fn surge_and_unavailable(
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

    pub(super) fn service(&mut self, s: &Service) {
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
        let mut names = Vec::new();
        let mut seen: Vec<(i32, &str, usize)> = Vec::new();
        for (i, p) in s.spec.ports.iter().enumerate() {
            let at = spec.key("ports").index(i);
            self.port_number(at.key("port"), p.port);
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
                    let what = "a port name unique in the Service";
                    self.unique(&mut names, &at, "name", name, what);
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

    pub(super) fn config_map(&mut self, c: &ConfigMap) {
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

    pub(super) fn secret(&mut self, s: &Secret) {
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

    pub(super) fn job(&mut self, j: &Job) {
        self.job_spec(&FieldPath::root().key("spec"), &j.spec);
    }

    pub(super) fn job_spec(&mut self, at: &FieldPath, j: &JobSpec) {
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
}

#[cfg(test)]
mod tests {
    use super::super::names::PORT_NAME;
    use super::super::test_support::{check, DEPLOYMENT};

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
}
