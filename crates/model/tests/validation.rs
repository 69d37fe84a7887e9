//! Validation of realistic manifests, end to end: YAML text in, `file:line:column: field:
//! message` out. Valid manifests give no diagnostics; each broken variant gives exactly the
//! expected lines, positions included.

use slipway_model::{load_objects, validate_all};

/// Load `text` as `file`, validate the whole set, and compare the rendered diagnostics.
fn check(file: &str, text: &str, expected: &[&str]) {
    let objs = load_objects(file, text).expect("manifest loads");
    let got: Vec<String> = validate_all(&objs)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got, expected, "\n{file}:\n{text}");
}

/// `base` with `from` replaced by `to`, which must occur exactly once.
fn edit(base: &str, from: &str, to: &str) -> String {
    assert_eq!(base.matches(from).count(), 1, "{from:?} must occur once");
    base.replacen(from, to, 1)
}

const APPLICATION: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: hello-prod
  namespace: argocd
  labels:
    app.kubernetes.io/part-of: hello
  finalizers:
  - resources-finalizer.argocd.argoproj.io
spec:
  project: default
  source:
    repoURL: https://git.example.com/platform/gitops.git
    targetRevision: main
    path: apps/hello/overlays/prod
    kustomize:
      images:
      - hello=registry.example.com/hello@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
      commonLabels:
        env: prod
  destination:
    server: https://kubernetes.default.svc
    namespace: hello
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
    - CreateNamespace=true
    - PruneLast=true
    - ServerSideApply=true
    retry:
      limit: 5
      backoff:
        duration: 5s
        factor: 2
        maxDuration: 3m
  ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers:
    - /spec/replicas
  revisionHistoryLimit: 10
"#;

#[test]
fn argo_cd_application() {
    const F: &str = "apps/hello/application.yaml";
    check(F, APPLICATION, &[]);
    check(
        F,
        &edit(APPLICATION, "- CreateNamespace=true", "- CreateNamespace=yes"),
        &[
            "apps/hello/application.yaml:29:7: spec.syncPolicy.syncOptions[0]: expected CreateNamespace=true or CreateNamespace=false, got \"CreateNamespace=yes\"",
        ],
    );
    check(
        F,
        &edit(
            APPLICATION,
            "    server: https://kubernetes.default.svc\n",
            "    server: https://kubernetes.default.svc\n    name: in-cluster\n",
        ),
        &["apps/hello/application.yaml:23:5: spec.destination.name: expected either server or name, got both"],
    );
    check(
        F,
        &edit(APPLICATION, "    - /spec/replicas", "    - spec.replicas"),
        &["apps/hello/application.yaml:42:7: spec.ignoreDifferences[0].jsonPointers[0]: expected an RFC 6901 JSON pointer such as /spec/replicas, got \"spec.replicas\""],
    );
    check(
        F,
        &edit(
            APPLICATION,
            "    repoURL: https://git.example.com/platform/gitops.git\n",
            "",
        ),
        &["apps/hello/application.yaml:12:3: spec.source.repoURL: expected a Git or Helm repository URL, got nothing"],
    );
    check(
        F,
        &edit(APPLICATION, "        duration: 5s", "        duration: 5 secs")
            .replacen("    - PruneLast=true", "    - PruneLst=true", 1),
        &[
            "apps/hello/application.yaml:30:7: spec.syncPolicy.syncOptions[1]: expected a known sync option, got \"PruneLst\" (did you mean PruneLast?)",
            "apps/hello/application.yaml:35:9: spec.syncPolicy.retry.backoff.duration: expected a duration such as 30s, 5m or 1h, got \"5 secs\": unknown unit \" secs\" (use ns, us, ms, s, m or h)",
        ],
    );
}

const ROLLOUT: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: hello
  namespace: hello
spec:
  replicas: 4
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      app: hello
  template:
    metadata:
      labels:
        app: hello
    spec:
      containers:
      - name: hello
        image: registry.example.com/hello@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
        ports:
        - name: http
          containerPort: 8080
        readinessProbe:
          httpGet:
            path: /healthz
            port: http
          periodSeconds: 5
        resources:
          requests:
            cpu: 100m
            memory: 64Mi
          limits:
            memory: 128Mi
  strategy:
    canary:
      canaryService: hello-canary
      stableService: hello-stable
      trafficRouting:
        managedRoutes:
        - name: canary-header
        plugins:
          slipway.dev/proxy: {}
      analysis:
        templates:
        - templateName: error-rate
        startingStep: 1
        args:
        - name: service
          value: hello-canary
      steps:
      - setWeight: 5
      - setHeaderRoute:
          name: canary-header
          match:
          - headerName: x-canary
            headerValue:
              exact: "true"
      - pause:
          duration: 2m
      - setWeight: 25
      - analysis:
          templates:
          - templateName: error-rate
          args:
          - name: service
            value: hello-canary
      - setWeight: 100
"#;

const ANALYSIS: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-rate
  namespace: hello
spec:
  args:
  - name: service
  - name: threshold
    value: "0.05"
  metrics:
  - name: error-rate
    interval: 30s
    initialDelay: 1m
    count: 6
    failureLimit: 1
    successCondition: result[0] <= {{args.threshold}}
    provider:
      prometheus:
        address: http://prometheus.monitoring.svc:9090
        timeout: 10
        query: |
          sum(rate(http_requests_total{service="{{args.service}}",code=~"5.."}[1m]))
          /
          sum(rate(http_requests_total{service="{{args.service}}"}[1m]))
"#;

#[test]
fn argo_rollouts_canary_with_analysis() {
    const F: &str = "apps/hello/rollout.yaml";
    check(F, ROLLOUT, &[]);
    check("apps/hello/analysis.yaml", ANALYSIS, &[]);
    let both = format!("{ROLLOUT}---\n{ANALYSIS}");
    check(F, &both, &[]);

    check(
        F,
        &edit(ROLLOUT, "      - setWeight: 25", "      - setWeight: 140"),
        &["apps/hello/rollout.yaml:60:9: spec.strategy.canary.steps[3].setWeight: expected an integer 0..=100, got 140"],
    );
    check(
        F,
        &edit(ROLLOUT, "          duration: 2m", "          duration: 2 minutes")
            .replacen("      - setWeight: 100", "      - setWeight: 100\n        pause: {}", 1)
            .replacen("      canaryService: hello-canary", "      canaryService: hello-stable", 1),
        &[
            "apps/hello/rollout.yaml:36:7: spec.strategy.canary.canaryService: expected a Service other than stableService, got \"hello-stable\" for both",
            "apps/hello/rollout.yaml:59:11: spec.strategy.canary.steps[2].pause.duration: expected a duration such as 30s, 5m or 1h, got \"2 minutes\": unknown unit \" minutes\" (use ns, us, ms, s, m or h)",
            "apps/hello/rollout.yaml:67:9: spec.strategy.canary.steps[5]: expected exactly one of setWeight, pause, setCanaryScale, analysis, experiment, setHeaderRoute, setMirrorRoute or plugin, got setWeight and pause",
        ],
    );
    check(
        F,
        &edit(ROLLOUT, "          name: canary-header", "          name: canary-hdr")
            .replacen("      app: hello\n  template", "      app: hello-web\n  template", 1)
            .replacen("replicas: 4", "replicas: four", 1),
        &[
            "apps/hello/rollout.yaml:7:3: spec.replicas: expected an integer, got string \"four\"",
            "apps/hello/rollout.yaml:14:7: spec.template.metadata.labels: expected labels matching spec.selector (app=hello-web), got app=hello",
            "apps/hello/rollout.yaml:53:11: spec.strategy.canary.steps[1].setHeaderRoute.name: expected a route listed in spec.strategy.canary.trafficRouting.managedRoutes (canary-header), got \"canary-hdr\"",
        ],
    );
    // The analysis step no longer passes `service`, which the template needs.
    let missing_arg = edit(
        &both,
        "          args:\n          - name: service\n            value: hello-canary\n",
        "",
    );
    check(
        F,
        &missing_arg,
        &["apps/hello/rollout.yaml:63:13: spec.strategy.canary.steps[4].analysis.templates[0]: expected args to set \"service\", which AnalysisTemplate error-rate declares without a value, got nothing"],
    );
}

#[test]
fn analysis_template_with_prometheus() {
    const F: &str = "apps/hello/analysis.yaml";
    check(
        F,
        &edit(ANALYSIS, "    interval: 30s", "    interval: 30 seconds")
            .replacen("{{args.threshold}}", "{{args.treshold}}", 1)
            .replacen("    failureLimit: 1", "    failureLimit: -1", 1),
        &[
            "apps/hello/analysis.yaml:13:5: spec.metrics[0].interval: expected a duration such as 30s, 5m or 1h, got \"30 seconds\": unknown unit \" seconds\" (use ns, us, ms, s, m or h)",
            "apps/hello/analysis.yaml:16:5: spec.metrics[0].failureLimit: expected an integer >= 0, got -1",
            "apps/hello/analysis.yaml:17:5: spec.metrics[0].successCondition: expected an arg declared in spec.args (service, threshold), got {{args.treshold}}",
        ],
    );
    check(
        F,
        &edit(
            ANALYSIS,
            "    provider:\n      prometheus:",
            "    provider:\n      web:\n        url: http://hello/metrics\n      prometheus:",
        ),
        &["apps/hello/analysis.yaml:18:5: spec.metrics[0].provider: expected exactly one provider, got web and prometheus"],
    );
    check(
        F,
        &format!("{ANALYSIS}  - name: error-rate\n    provider: {{}}\n"),
        &[
            "apps/hello/analysis.yaml:26:5: spec.metrics[1].name: expected a metric name unique in the template, got \"error-rate\" again (first at spec.metrics[0])",
            "apps/hello/analysis.yaml:27:5: spec.metrics[1].provider: expected exactly one provider (such as prometheus, web or job), got none",
        ],
    );
}

const DEPLOYMENT_AND_SERVICE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  namespace: hello
  labels:
    app.kubernetes.io/name: hello
spec:
  replicas: 2
  selector:
    matchLabels:
      app: hello
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: hello
    spec:
      containers:
      - name: hello
        image: registry.example.com/hello:1.4.2
        args: ["--listen", "0.0.0.0:$(PORT)"]
        env:
        - name: PORT
          value: "8080"
        - name: DATABASE_URL
          valueFrom:
            secretKeyRef:
              name: hello-db
              key: url
        envFrom:
        - configMapRef:
            name: hello-config
        ports:
        - name: http
          containerPort: 8080
        readinessProbe:
          httpGet:
            path: /healthz
            port: http
        livenessProbe:
          tcpSocket:
            port: 8080
          initialDelaySeconds: 5
        volumeMounts:
        - name: config
          mountPath: /etc/hello
          readOnly: true
      volumes:
      - name: config
        configMap:
          name: hello-config
          defaultMode: 0644
---
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: hello
spec:
  selector:
    app: hello
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: hello-config
  namespace: hello
data:
  LOG_LEVEL: info
  GREETING: hello
"#;

#[test]
fn deployment_and_service() {
    const F: &str = "apps/hello/base/hello.yaml";
    check(F, DEPLOYMENT_AND_SERVICE, &[]);
    check(
        F,
        &edit(DEPLOYMENT_AND_SERVICE, "      labels:\n        app: hello\n", "      labels:\n        app: hello-v2\n")
            .replacen("    port: 80\n", "    port: 0\n", 1)
            .replacen("    targetPort: http\n", "    targetPort: \"8080\"\n", 1),
        &[
            "apps/hello/base/hello.yaml:20:7: spec.template.metadata.labels: expected labels matching spec.selector (app=hello), got app=hello-v2",
            "apps/hello/base/hello.yaml:69:5: spec.ports[0].port: expected an integer 1..=65535, got 0",
            "apps/hello/base/hello.yaml:70:5: spec.ports[0].targetPort: expected a port number 1..=65535 or a port name (at most 15 lowercase letters, digits and '-', with at least one letter), got \"8080\"",
        ],
    );
    check(
        F,
        &edit(DEPLOYMENT_AND_SERVICE, "  replicas: 2\n", "  replicas: two\n")
            .replacen("            port: http\n", "            port: metrics\n", 1)
            .replacen("        - name: config\n          mountPath", "        - name: cfg\n          mountPath", 1)
            .replacen("  LOG_LEVEL: info", "  LOG_LEVEL: 3", 1),
        &[
            "apps/hello/base/hello.yaml:9:3: spec.replicas: expected an integer, got string \"two\"",
            "apps/hello/base/hello.yaml:44:13: spec.template.spec.containers[0].readinessProbe.httpGet.port: expected a port number or the name of a port of this container (http), got \"metrics\"",
            "apps/hello/base/hello.yaml:50:11: spec.template.spec.containers[0].volumeMounts[0].name: expected the name of a volume in spec.template.spec.volumes (config), got \"cfg\"",
            "apps/hello/base/hello.yaml:78:3: data.LOG_LEVEL: expected a string, got number 3",
        ],
    );
    // The same Service twice in one set.
    let service = &DEPLOYMENT_AND_SERVICE[DEPLOYMENT_AND_SERVICE
        .find("apiVersion: v1\nkind: Service")
        .expect("service")
        ..DEPLOYMENT_AND_SERVICE
            .find("---\napiVersion: v1\nkind: ConfigMap")
            .expect("configmap")];
    check(
        F,
        &format!("{DEPLOYMENT_AND_SERVICE}---\n{service}"),
        &["apps/hello/base/hello.yaml:84:3: metadata.name: expected a unique group, kind, namespace and name, got Service hello/hello again (first at apps/hello/base/hello.yaml:62:3)"],
    );
}
