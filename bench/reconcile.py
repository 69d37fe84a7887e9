#!/usr/bin/env python3
"""Reconciliation benchmarks against a real `slipway up` (release build), stdlib only.

  drift    kill -9 one replica of a 3-replica Deployment, time until its replacement answers
           /healthz and the application is Healthy with 3 ready replicas again
  webhook  commit a config change, POST a signed GitHub push webhook, time until the
           application is Synced at the new revision (and until Healthy: rolled and ready)
  scale    1,000 applications x 20 ConfigMaps (20,000 objects): steady-state cycle time from
           Slipway's own metric and the server's peak RSS (VmHWM)

The peers cannot run here (no Kubernetes): their figures are their documented defaults
(Argo CD self-heal waits 5 s after the last sync, `--self-heal-timeout-seconds`; Flux
reconciles on its `interval`, 1-10 min in its examples; Argo CD's webhook path is a refresh
then a sync, documented as "within seconds"), printed beside ours.

usage: bench/reconcile.py SLIPWAY HELLO_IMAGE_LAYOUT [--runs N] [--only drift,webhook,scale]
(bench/reconcile.sh builds what it needs and calls this.)
"""

import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait(what, pred, timeout=120, step=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
        except (OSError, ValueError, KeyError):
            v = None
        if v:
            return v
        time.sleep(step)
    sys.exit(f"error: timed out waiting for {what}")


def git(repo, *args):
    subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True)


def git_out(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def init_repo(path):
    os.makedirs(path)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "bench")
    git(path, "config", "user.email", "bench@example.com")
    git(path, "config", "commit.gpgsign", "false")


def commit(repo, msg):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", msg)
    return git_out(repo, "rev-parse", "HEAD")


class Server:
    """`slipway up` in the background, with its API address."""

    def __init__(self, slipway, repo, data, extra=()):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(data + ".log"), "w")
        self.proc = subprocess.Popen(
            [slipway, "up", "--repo", repo, "--data-dir", data,
             "--listen", f"127.0.0.1:{self.port}", *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait("the API", lambda: http("GET", self.base + "/healthz")[0] == 200)

    def app(self, name):
        status, body = http("GET", f"{self.base}/api/v1/applications/{name}")
        return json.loads(body) if status == 200 else None

    def apps(self):
        return json.loads(http("GET", self.base + "/api/v1/applications", timeout=30)[1])

    def vm_hwm_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def metrics(self):
        return http("GET", self.base + "/metrics", timeout=30)[1].decode()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def healthy(app, replicas=None, revision=None):
    if not app or app["health"]["status"] != "Healthy" or app["sync"] != "Synced":
        return False
    if revision and app.get("syncedRevision") != revision:
        return False
    if replicas is not None:
        for r in app.get("resources", []):
            if r["id"]["kind"] == "Deployment":
                live = r.get("health") or {}
                if live.get("status") != "Healthy":
                    return False
    return True


def replica_pids(data_dir):
    """hello processes started by this data dir's runtime: {pid: (pod, port)}."""
    marker = os.path.realpath(data_dir).encode()
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if env.get(b"SLIPWAY_RUNTIME") == marker and b"PORT" in env:
            found[int(pid)] = (env.get(b"HOSTNAME", b"?").decode(), int(env[b"PORT"]))
    return found


def answers(port):
    try:
        return http("GET", f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200
    except OSError:
        return False


HELLO_APP = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: hello
spec:
  project: default
  source:
    repoURL: {repo}
    targetRevision: main
    path: apps/hello
  destination:
    server: https://kubernetes.default.svc
    namespace: hello
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
    - CreateNamespace=true
"""

HELLO_KUSTOMIZATION = """resources:
- deployment.yaml
- service.yaml
configMapGenerator:
- name: hello-config
  literals:
  - GREETING={greeting}
images:
- name: hello
  newName: {name}
  digest: {digest}
"""

HELLO_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 3
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: hello
        image: hello
        ports:
        - {name: http, containerPort: 8080}
        envFrom:
        - configMapRef: {name: hello-config}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
"""

HELLO_SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector: {app: hello}
  ports:
  - {name: http, port: 80, targetPort: http}
"""


def hello_repo(work, image):
    repo = os.path.join(work, "gitops")
    init_repo(repo)
    write(f"{repo}/applications/hello.yaml", HELLO_APP.format(repo=repo))
    write(f"{repo}/apps/hello/kustomization.yaml",
          HELLO_KUSTOMIZATION.format(greeting="hello-0", name=image.split("@")[0],
                                     digest=image.split("@")[1]))
    write(f"{repo}/apps/hello/deployment.yaml", HELLO_DEPLOYMENT)
    write(f"{repo}/apps/hello/service.yaml", HELLO_SERVICE)
    commit(repo, "hello")
    return repo


def bench_drift(server, data, runs, gap):
    """Kill replicas in turn, `gap` seconds apart: a replica killed again within 10 s of its
    restart is treated as crash-looping and backs off (see crates/runtime/src/local/replica.rs),
    which is a different thing from drift."""
    times = []
    for i in range(runs):
        if i:
            time.sleep(gap)
        wait("3 ready replicas", lambda: healthy(server.app("hello"), 3)
             and len(replica_pids(data)) == 3)
        before = replica_pids(data)
        # By pod name: a restarted pod keeps its name (not its pid), so each pod is killed
        # every third run.
        by_pod = sorted(before, key=lambda pid: before[pid][0])
        victim = by_pod[i % len(by_pod)]
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        def replaced():
            now = replica_pids(data)
            new = [p for p in now if p not in before]
            return new and all(answers(now[p][1]) for p in new) and \
                healthy(server.app("hello"), 3)
        wait("the replacement", replaced, timeout=60, step=0.002)
        times.append((time.monotonic() - t0) * 1000)
    return times


def bench_webhook(server, repo, runs, secret):
    to_synced, to_healthy = [], []
    for i in range(1, runs + 1):
        wait("a settled application", lambda: healthy(server.app("hello"), 3))
        path = f"{repo}/apps/hello/kustomization.yaml"
        with open(path) as f:
            text = f.read()
        import re
        text = re.sub(r"GREETING=\S+", f"GREETING=hello-{i}", text)
        write(path, text)
        sha = commit(repo, f"greeting {i}")
        before = git_out(repo, "rev-parse", "HEAD~1")
        payload = json.dumps({
            "ref": "refs/heads/main", "before": before, "after": sha,
            "repository": {"full_name": "bench/gitops", "clone_url": repo},
            "pusher": {"name": "bench"},
            "head_commit": {"id": sha, "message": f"greeting {i}"},
        }).encode()
        sig = "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        t0 = time.monotonic()
        status, body = http("POST", server.base + "/api/v1/webhooks/git", payload, {
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-Hub-Signature-256": sig})
        if status != 202:
            sys.exit(f"error: webhook answered {status}: {body!r}")

        def synced():
            a = server.app("hello")
            return a and a.get("syncedRevision") == sha and a["sync"] == "Synced"
        wait("Synced at the new revision", synced, timeout=60, step=0.002)
        to_synced.append((time.monotonic() - t0) * 1000)
        wait("Healthy at the new revision",
             lambda: healthy(server.app("hello"), 3, sha), timeout=60, step=0.002)
        to_healthy.append((time.monotonic() - t0) * 1000)
    return to_synced, to_healthy


def scale_repo(work, apps, per_app):
    repo = os.path.join(work, "scale")
    init_repo(repo)
    for a in range(apps):
        name = f"app-{a:04d}"
        write(f"{repo}/applications/{name}.yaml", f"""apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
spec:
  project: default
  source: {{repoURL: {repo}, targetRevision: main, path: apps/{name}}}
  destination: {{server: https://kubernetes.default.svc, namespace: {name}}}
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
""")
        docs = []
        for c in range(per_app):
            docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: config-{c:02d}
  labels: {{app: {name}}}
data:
  index: "{c}"
  owner: {name}
  payload: "{'x' * 200}"
""")
        write(f"{repo}/apps/{name}/objects.yaml", "---\n".join(docs))
    commit(repo, f"{apps} applications")
    return repo


def cycle_seconds(metrics):
    """The last cycle's duration from slipway_reconcile_last_cycle_seconds."""
    for line in metrics.splitlines():
        if line.startswith("slipway_reconcile_last_cycle_seconds "):
            return float(line.split()[1])
    return None


def cycles_total(metrics):
    for line in metrics.splitlines():
        if line.startswith("slipway_reconcile_cycle_seconds_count "):
            return int(float(line.split()[1]))
    return 0


def bench_scale(slipway, work, apps, per_app, samples):
    repo = scale_repo(work, apps, per_app)
    data = os.path.join(work, "scale-data")
    t0 = time.monotonic()
    server = Server(slipway, repo, data, ["--poll-interval", "1s"])
    try:
        def all_synced():
            listed = server.apps()
            return len(listed) == apps and all(
                a["sync"] == "Synced" and a["health"]["status"] == "Healthy" for a in listed)
        wait(f"{apps} applications Synced", all_synced, timeout=600, step=0.5)
        first_sync = time.monotonic() - t0
        cycles = []
        seen = cycles_total(server.metrics())
        while len(cycles) < samples:
            m = server.metrics()
            n = cycles_total(m)
            if n > seen:
                seen = n
                cycles.append(cycle_seconds(m))
            time.sleep(0.2)
        return first_sync, cycles, server.vm_hwm_mib()
    finally:
        server.stop()


def summary(label, xs, unit="ms"):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(len(xs) * 0.9))]
    return (f"{label:<44} median {statistics.median(xs):8.1f} {unit}   "
            f"p90 {p90:8.1f} {unit}   max {xs[-1]:8.1f} {unit}   (n={len(xs)})\n"
            f"{'':<44} all: {' '.join(f'{x:.0f}' for x in xs)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("slipway")
    ap.add_argument("image", help="pullable reference of the hello image")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--apps", type=int, default=1000)
    ap.add_argument("--objects-per-app", type=int, default=20)
    ap.add_argument("--only", default="drift,webhook,scale")
    ap.add_argument("--drift-gap", type=float, default=4.0,
                    help="seconds between kills (each of 3 replicas is killed every 3rd run)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    work = tempfile.mkdtemp(prefix="slipway-bench-")
    lines = []
    if only & {"drift", "webhook"}:
        repo = hello_repo(work, args.image)
        data = os.path.join(work, "data")
        secret = "bench-secret"
        write(f"{work}/secret", secret)
        server = Server(args.slipway, repo, data,
                        ["--poll-interval", "300s", "--webhook-secret-file", f"{work}/secret"])
        try:
            wait("hello Synced and Healthy", lambda: healthy(server.app("hello"), 3))
            if "drift" in only:
                d = bench_drift(server, data, args.runs, args.drift_gap)
                lines.append(summary("drift: kill -9 a replica -> replacement ready", d))
                lines.append(f"{'  Argo CD (self-heal timeout default)':<44} 5000 ms + sync; "
                             "Flux: its interval (minutes)")
            if "webhook" in only:
                s, h = bench_webhook(server, repo, args.runs, secret)
                lines.append(summary("webhook -> Synced (config change)", s))
                lines.append(summary("webhook -> Healthy (3 replicas rolled)", h))
                lines.append(f"{'  Argo CD (webhook: refresh, then sync)':<44} documented "
                             "'within seconds'; 3 min poll without webhook")
        finally:
            server.stop()
            left = replica_pids(data)
            if left:
                lines.append(f"WARNING: {len(left)} replica processes left after stop: {left}")
    if "scale" in only:
        first, cycles, hwm = bench_scale(args.slipway, work, args.apps, args.objects_per_app,
                                         samples=max(5, args.runs // 4))
        n = args.apps * args.objects_per_app
        lines.append(f"scale: {args.apps} apps / {n} objects: first sync of everything "
                     f"{first:.1f} s")
        lines.append(summary("scale: steady-state cycle", [c * 1000 for c in cycles]))
        lines.append(f"{'scale: peak RSS (VmHWM) of slipway up':<44} {hwm:8.1f} MiB "
                     "(goal < 300 MiB; goal cycle < 2 s)")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
