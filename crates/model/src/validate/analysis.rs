//! Argo Rollouts AnalysisTemplates and ClusterAnalysisTemplates: args, metrics, providers and
//! `{{args.name}}` references.

use serde_json::Value;

use super::cx::{Cx, DURATION};
use super::text::{closest, has_placeholder, join, listed, quoted};
use crate::kinds::{AnalysisTemplate, IntOrString, Metric};
use crate::location::FieldPath;

impl Cx<'_> {
    pub(super) fn analysis_template(&mut self, t: &AnalysisTemplate) {
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
                    self.field_path(&q, &f.field_path);
                }
            }
        }
        self.at_least_one(spec.key("metrics"), &s.metrics, "metric");
        let mut names = Vec::new();
        for (i, m) in s.metrics.iter().enumerate() {
            let at = spec.key("metrics").index(i);
            if self.required(at.key("name"), &m.name, "a metric name") {
                let what = "a metric name unique in the template";
                self.unique(&mut names, &at, "name", &m.name, what);
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
                let known = listed(declared, "none are declared");
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
    use super::super::test_support::{check, TEMPLATE};

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
}
