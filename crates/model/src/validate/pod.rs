//! Pod templates: restart policy, volumes, containers, ports, environment, probes and
//! resources.

use std::collections::BTreeMap;

use serde_json::Value;

use super::cx::Cx;
use super::names::{escapes, is_iana_svc_name, NameRule, PORT_NAME};
use super::text::{join, listed, quoted};
use crate::kinds::{
    Container, IntOrString, KeyToPath, PodSpec, PodTemplateSpec, Probe, Quantity,
    ResourceRequirements,
};
use crate::location::FieldPath;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Restart {
    /// Deployments and Rollouts: only `Always`.
    Always(&'static str),
    /// Jobs: `Never` or `OnFailure`, required.
    Job,
}

impl Cx<'_> {
    pub(super) fn pod_template(&mut self, at: &FieldPath, t: &PodTemplateSpec, restart: Restart) {
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
        self.at_least_one(at.key("containers"), &s.containers, "container");

        let mut seen = Vec::new();
        for (i, v) in s.volumes.iter().enumerate() {
            let p = at.key("volumes").index(i);
            if self.required(p.key("name"), &v.name, "a volume name") {
                self.name_rule(p.key("name"), &v.name, NameRule::Dns1123Label);
                self.unique(&mut seen, &p, "name", &v.name, "a unique volume name");
            }
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

        let volumes: Vec<&str> = s.volumes.iter().map(|v| v.name.as_str()).collect();
        let mut names = Vec::new();
        for (list, containers) in [
            ("initContainers", &s.init_containers),
            ("containers", &s.containers),
        ] {
            for (i, c) in containers.iter().enumerate() {
                let p = at.key(list).index(i);
                if self.required(p.key("name"), &c.name, "a container name") {
                    self.name_rule(p.key("name"), &c.name, NameRule::Dns1123Label);
                    let what = "a container name unique in the pod";
                    self.unique(&mut names, &p, "name", &c.name, what);
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

    fn key_paths(&mut self, at: &FieldPath, items: &[KeyToPath]) {
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

    fn quantity(&mut self, at: FieldPath, q: Option<&Quantity>) -> Option<f64> {
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
            self.port_number(q.key("containerPort"), p.container_port);
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
                    self.field_path(&f, &r.field_path);
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
                let known = listed(&known, "none are declared");
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
                    self.port_number(at.key("grpc").key("port"), g.port);
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

    /// A port given by number, which must be there.
    pub(super) fn port_number(&mut self, at: FieldPath, port: Option<i32>) {
        if port.is_none() {
            let got = self.got(&at);
            self.report(at, format!("expected a port number 1..=65535, got {got}"));
        } else {
            self.int_range(at, port, 1, 65535);
        }
    }

    /// A port given by number or by name; `names` are the names it may use, when known.
    pub(super) fn port_ref(
        &mut self,
        at: FieldPath,
        port: Option<&IntOrString>,
        names: Option<&[&str]>,
    ) {
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
                        let known = listed(names, "it names none");
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
}

#[cfg(test)]
mod tests {
    use super::super::names::PORT_NAME;
    use super::super::test_support::check;

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
}
