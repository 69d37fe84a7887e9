#!/usr/bin/env python3
"""Generate a GitOps tree for the render benchmark: N applications, each a Kustomize base
plus `staging` and `production` overlays of about 20 objects each.

usage: gen_render_tree.py OUT_DIR [--apps 200]
"""
import argparse
import os
import textwrap


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip())


def base(root, app):
    d = os.path.join(root, "apps", app, "base")
    write(f"{d}/kustomization.yaml", f"""
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        commonLabels:
          app.kubernetes.io/name: {app}
        resources:
        - deployment.yaml
        - service.yaml
        - rbac.yaml
        - policy.yaml
        - workers.yaml
        configMapGenerator:
        - name: {app}-config
          literals:
          - LOG_LEVEL=info
          - FEATURE_X=false
    """)
    write(f"{d}/deployment.yaml", f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {app}
        spec:
          replicas: 2
          selector:
            matchLabels:
              component: web
          template:
            metadata:
              labels:
                component: web
            spec:
              serviceAccountName: {app}
              containers:
              - name: app
                image: registry.local/{app}:1.0.0
                ports:
                - containerPort: 8080
                  name: http
                envFrom:
                - configMapRef:
                    name: {app}-config
                env:
                - name: DB_PASSWORD
                  valueFrom:
                    secretKeyRef:
                      name: {app}-db
                      key: password
                readinessProbe:
                  httpGet:
                    path: /healthz
                    port: http
                resources:
                  requests:
                    cpu: 100m
                    memory: 128Mi
              - name: sidecar
                image: registry.local/proxy:2.1
    """)
    write(f"{d}/service.yaml", f"""
        apiVersion: v1
        kind: Service
        metadata:
          name: {app}
        spec:
          selector:
            component: web
          ports:
          - name: http
            port: 80
            targetPort: http
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: {app}
        spec:
          rules:
          - host: {app}.example.com
            http:
              paths:
              - path: /
                pathType: Prefix
                backend:
                  service:
                    name: {app}
                    port:
                      name: http
    """)
    write(f"{d}/rbac.yaml", f"""
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: {app}
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata:
          name: {app}-reader
        rules:
        - apiGroups: [""]
          resources: ["configmaps"]
          verbs: ["get", "list"]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata:
          name: {app}-reader
        roleRef:
          apiGroup: rbac.authorization.k8s.io
          kind: Role
          name: {app}-reader
        subjects:
        - kind: ServiceAccount
          name: {app}
    """)
    write(f"{d}/policy.yaml", f"""
        apiVersion: autoscaling/v2
        kind: HorizontalPodAutoscaler
        metadata:
          name: {app}
        spec:
          scaleTargetRef:
            apiVersion: apps/v1
            kind: Deployment
            name: {app}
          minReplicas: 2
          maxReplicas: 10
        ---
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata:
          name: {app}
        spec:
          minAvailable: 1
          selector:
            matchLabels:
              component: web
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata:
          name: {app}
        spec:
          podSelector:
            matchLabels:
              component: web
          ingress:
          - from:
            - podSelector: {{}}
    """)
    docs = []
    for i in range(6):
        docs.append(f"""
        apiVersion: batch/v1
        kind: CronJob
        metadata:
          name: {app}-job-{i}
        spec:
          schedule: "*/{10 + i} * * * *"
          jobTemplate:
            spec:
              template:
                spec:
                  restartPolicy: OnFailure
                  containers:
                  - name: job
                    image: registry.local/{app}:1.0.0
                    args: ["task-{i}"]
        """)
    write(f"{d}/workers.yaml", "---\n".join(textwrap.dedent(x).lstrip() for x in docs))


def overlay(root, app, env, replicas, tag):
    d = os.path.join(root, "apps", app, "overlays", env)
    write(f"{d}/kustomization.yaml", f"""
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        namespace: {app}-{env}
        namePrefix: {env[:4]}-
        commonAnnotations:
          slipway.dev/environment: {env}
        resources:
        - ../../base
        - extra.yaml
        replicas:
        - name: {app}
          count: {replicas}
        images:
        - name: registry.local/{app}
          newTag: "{tag}"
        configMapGenerator:
        - name: {app}-config
          behavior: merge
          literals:
          - LOG_LEVEL={'debug' if env == 'staging' else 'warn'}
        secretGenerator:
        - name: {app}-db
          literals:
          - password=not-a-secret-{env}
        patches:
        - path: resources.yaml
        - target:
            kind: Ingress
          patch: |-
            - op: replace
              path: /spec/rules/0/host
              value: {app}.{env}.example.com
    """)
    write(f"{d}/resources.yaml", f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {app}
        spec:
          template:
            spec:
              containers:
              - name: app
                resources:
                  limits:
                    memory: 256Mi
    """)
    write(f"{d}/extra.yaml", f"""
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {app}-dashboards
        data:
          env: {env}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {app}-alerts
        data:
          severity: page
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: {app}-metrics
        spec:
          selector:
            component: web
          ports:
          - name: metrics
            port: 9090
    """)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--apps", type=int, default=200)
    a = p.parse_args()
    for i in range(a.apps):
        app = f"svc{i:03d}"
        base(a.out, app)
        overlay(a.out, app, "staging", 1, f"1.{i}.0-rc")
        overlay(a.out, app, "production", 3, f"1.{i}.0")


if __name__ == "__main__":
    main()
