//! Argo CD Applications: sources, destination, sync options and ignored differences.

use super::cx::Cx;
use super::names::{escapes, is_json_pointer, NameRule};
use super::text::{closest, join, quoted};
use crate::kinds::{Application, ApplicationSource, IntOrString, SYNC_OPTION_KEYS};
use crate::location::FieldPath;

impl Cx<'_> {
    pub(super) fn application(&mut self, a: &Application) {
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
        self.one_of_two(&spec, ("source", has_source), ("sources", has_sources));
        if let Some(src) = &s.source {
            self.app_source(&spec.key("source"), src, false);
        }
        let mut refs = Vec::new();
        for (i, src) in s.sources.iter().enumerate() {
            let at = spec.key("sources").index(i);
            self.app_source(&at, src, true);
            if let Some(r) = src.ref_.as_deref() {
                self.unique(&mut refs, &at, "ref", r, "a ref unique among sources");
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
}

#[cfg(test)]
mod tests {
    use super::super::names::DNS1123_LABEL;
    use super::super::test_support::check;

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
}
