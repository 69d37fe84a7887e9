//! The HTTP surface over a real socket, a real store and real log files, with the controller
//! and the runtime replaced by recording stand-ins (the controller-backed end-to-end tests
//! are in `controller.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_reconcile::{
    AppDetail, AppSummary, OperationPhase, OperationState, ReconcileError, RollbackResult,
    SyncRequest, SyncStatus,
};
use slipway_runtime::{Health, HealthStatus, ServiceEndpoint};
use slipway_server::{
    Applications, BoxFuture, RuntimeView, Server, ServerConfig, StatusReport, WebhookReply,
};
use slipway_store::{NewEvent, Store, SyncRecord};

#[derive(Default)]
struct Calls {
    refreshes: Vec<String>,
    syncs: Vec<(String, SyncRequest)>,
    rollbacks: Vec<(String, Option<String>, String)>,
}

#[derive(Clone, Default)]
struct FakeApps {
    calls: Arc<Mutex<Calls>>,
}

fn summary(name: &str) -> AppSummary {
    AppSummary {
        name: name.into(),
        project: "default".into(),
        repo_url: "/srv/gitops".into(),
        path: format!("apps/{name}"),
        target_revision: "HEAD".into(),
        namespace: "default".into(),
        sync: SyncStatus::Synced,
        health: Health::healthy(),
        revision: Some("a".repeat(40)),
        synced_revision: Some("a".repeat(40)),
        automated: true,
        prune: false,
        self_heal: false,
        error: None,
        operation: None,
    }
}

impl Applications for FakeApps {
    fn list(&self) -> Vec<AppSummary> {
        vec![summary("hello"), {
            let mut s = summary("web");
            s.sync = SyncStatus::OutOfSync;
            s.health = Health {
                status: HealthStatus::Progressing,
                message: "1/2 replicas ready".into(),
            };
            s
        }]
    }

    fn get(&self, name: &str) -> Result<AppDetail, ReconcileError> {
        self.list()
            .into_iter()
            .find(|a| a.name == name)
            .map(|summary| AppDetail {
                summary,
                resources: vec![],
                diff: String::new(),
            })
            .ok_or_else(|| ReconcileError::NotFound(name.into()))
    }

    fn history(&self, name: &str, _limit: usize) -> Result<Vec<SyncRecord>, ReconcileError> {
        self.get(name).map(|_| vec![])
    }

    fn refresh(&self, reason: &str) {
        self.calls.lock().unwrap().refreshes.push(reason.into());
    }

    fn sync<'a>(
        &'a self,
        name: &'a str,
        request: SyncRequest,
    ) -> BoxFuture<'a, Result<OperationState, ReconcileError>> {
        Box::pin(async move {
            self.get(name)?;
            self.calls
                .lock()
                .unwrap()
                .syncs
                .push((name.into(), request.clone()));
            Ok(OperationState {
                kind: "sync".into(),
                phase: OperationPhase::Succeeded,
                message: "synced".into(),
                revision: "a".repeat(40),
                initiated_by: request.initiated_by,
                started_at: 1,
                finished_at: Some(2),
            })
        })
    }

    fn rollback<'a>(
        &'a self,
        name: &'a str,
        to: Option<String>,
        author: &'a str,
    ) -> BoxFuture<'a, Result<RollbackResult, ReconcileError>> {
        Box::pin(async move {
            self.get(name)?;
            self.calls
                .lock()
                .unwrap()
                .rollbacks
                .push((name.into(), to.clone(), author.into()));
            Ok(RollbackResult {
                commit: "c".repeat(40),
                restored: to.unwrap_or_else(|| "b".repeat(40)),
                reverted: vec!["a".repeat(40)],
            })
        })
    }
}

struct FakeRuntime {
    logs: Vec<(String, PathBuf)>,
}

impl RuntimeView for FakeRuntime {
    fn endpoints(&self, _owner: Option<&str>) -> Vec<ServiceEndpoint> {
        vec![ServiceEndpoint {
            owner: "hello".into(),
            namespace: "default".into(),
            name: "hello".into(),
            ports: vec![("http".into(), "127.0.0.1:18080".parse().unwrap())],
        }]
    }

    fn log_files(&self, owner: &str) -> Vec<(String, PathBuf)> {
        if owner == "hello" {
            self.logs.clone()
        } else {
            vec![]
        }
    }

    fn metrics(&self) -> String {
        "# TYPE slipway_proxy_requests_total counter\nslipway_proxy_requests_total{service=\"hello\"} 3\n".into()
    }
}

struct Running {
    base: String,
    apps: FakeApps,
    store: Store,
    log: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(Duration::from_secs(10), self.done)
            .await
            .expect("the server stops promptly, even with open streams")
            .expect("server task");
    }
}

async fn start(token: Option<&str>, secret: Option<&str>) -> Running {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("slipway.db")).expect("store");
    let log = dir.path().join("hello-1.log");
    std::fs::write(
        &log,
        "stdout starting\nstderr warming up\nstdout listening on 8080\n",
    )
    .expect("log");
    let apps = FakeApps::default();
    let runtime = Arc::new(FakeRuntime {
        logs: vec![("hello-1/hello".into(), log.clone())],
    });
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.token = token.map(str::to_string);
    config.webhook_secret = secret.map(str::to_string);
    config.data_dir = dir.path().to_owned();
    config.poll_interval = Duration::from_millis(20);
    config.keep_alive = Duration::from_millis(200);
    let server = Server::new(config, apps.clone(), runtime, store.clone());
    let listener = server.bind().await.expect("bind");
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        server
            .serve_with_shutdown(listener, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    Running {
        base: format!("http://{addr}"),
        apps,
        store,
        log,
        stop: Some(tx),
        done,
        _dir: dir,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn read_routes_answer_json() {
    let s = start(None, None).await;
    let c = client();
    let r = c.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok\n");

    let list: Vec<AppSummary> = c
        .get(format!("{}/api/v1/applications", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].sync, SyncStatus::OutOfSync);

    let detail: AppDetail = c
        .get(format!("{}/api/v1/applications/hello", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail.summary.name, "hello");

    let r = c
        .get(format!("{}/api/v1/applications/nope", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "no application named \"nope\""})
    );

    let r = c
        .get(format!(
            "{}/api/v1/applications/hello/history?limit=5",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "[]");

    let r = c.get(format!("{}/api/v2/x", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "no route for GET /api/v2/x");

    let status: StatusReport = c
        .get(format!("{}/api/v1/status", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status.applications.total, 2);
    assert_eq!(status.applications.sync.get("Synced"), Some(&1));
    assert_eq!(status.applications.health.get("Progressing"), Some(&1));
    assert_eq!(status.services[0].ports[0].address.port(), 18080);
    assert_eq!(status.version, slipway_server::VERSION);

    let metrics = c
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\nslipway_up 1\n"), "{metrics}");
    assert!(metrics.contains("slipway_applications{sync=\"OutOfSync\",health=\"Progressing\"} 1"));
    assert!(
        metrics.contains(
            "slipway_api_requests_total{method=\"GET\",route=\"/api/v1/applications/{name}\",code=\"404\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("slipway_proxy_requests_total{service=\"hello\"} 3"));
    s.stop().await;
}

#[tokio::test]
async fn sync_and_rollback_forward_their_bodies() {
    let s = start(None, None).await;
    let c = client();
    let op: OperationState = c
        .post(format!("{}/api/v1/applications/hello/sync", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(op.initiated_by, "api");
    let r = c
        .post(format!("{}/api/v1/applications/hello/sync", s.base))
        .body(r#"{"revision":"v2","prune":true,"initiatedBy":"ana"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}/api/v1/applications/hello/sync", s.base))
        .body(r#"{"revision":3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().starts_with("request body:"));
    let r = c
        .post(format!("{}/api/v1/applications/nope/sync", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let rb: RollbackResult = c
        .post(format!("{}/api/v1/applications/hello/rollback", s.base))
        .json(&serde_json::json!({"to": "v1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rb.restored, "v1");
    {
        let calls = s.apps.calls.lock().unwrap();
        assert_eq!(calls.syncs.len(), 2);
        assert_eq!(
            calls.syncs[1].1,
            SyncRequest {
                revision: Some("v2".into()),
                prune: true,
                initiated_by: "api:ana".into()
            }
        );
        assert_eq!(
            calls.rollbacks,
            vec![("hello".into(), Some("v1".into()), "api".into())]
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn token_is_required_when_set() {
    let s = start(Some("s3cret-token"), None).await;
    let c = client();
    for path in [
        "/api/v1/applications",
        "/api/v1/status",
        "/metrics",
        "/api/v1/events",
    ] {
        let r = c.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"slipway\"",
            "{path}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{path}");
        let r = c
            .get(format!("{}{path}", s.base))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = c
        .post(format!("{}/api/v1/applications/hello/sync", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(s.apps.calls.lock().unwrap().syncs.is_empty());

    let r = c
        .get(format!("{}/api/v1/applications", s.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "healthz stays open");
    s.stop().await;
}

#[tokio::test]
async fn non_loopback_without_token_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path().join("slipway.db")).expect("store");
    let config = ServerConfig::new("0.0.0.0:0".parse().unwrap());
    let server = Server::new(
        config,
        FakeApps::default(),
        Arc::new(FakeRuntime { logs: vec![] }),
        store,
    );
    let err = server.bind().await.expect_err("refused");
    assert!(err.to_string().contains("--token-file"), "{err}");
}

#[tokio::test]
async fn webhooks_need_a_valid_signature() {
    let secret = "hook-secret";
    let s = start(Some("api-token"), Some(secret)).await;
    let c = client();
    let body = r#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000",
        "after":"1111111111111111111111111111111111111111",
        "repository":{"name":"gitops","full_name":"acme/gitops","clone_url":"http://git.local/gitops.git"},
        "pusher":{"name":"ana"},"head_commit":{"message":"hello: 1.4.0"}}"#;

    // Unsigned: 401, no refresh, a webhook.rejected event naming the peer.
    let r = c
        .post(format!("{}/api/v1/webhooks/git", s.base))
        .header("x-github-event", "push")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let err: serde_json::Value = r.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("unsigned"), "{err}");

    // Signed with the wrong secret.
    let bad = slipway_git::webhook::github_signature(b"other", body.as_bytes());
    let r = c
        .post(format!("{}/api/v1/webhooks/git", s.base))
        .header("x-github-event", "push")
        .header("x-hub-signature-256", bad)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(s.apps.calls.lock().unwrap().refreshes.is_empty());
    let events = s.store.events_since(None, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.kind == "webhook.rejected"));
    assert!(
        events[0].message.starts_with("webhook from 127.0.0.1:"),
        "{}",
        events[0].message
    );

    // Ping: 200, nothing else. The API token is not needed.
    let ping = r#"{"zen":"hi"}"#;
    let r = c
        .post(format!("{}/api/v1/webhooks/git", s.base))
        .header("x-github-event", "ping")
        .header(
            "x-hub-signature-256",
            slipway_git::webhook::github_signature(secret.as_bytes(), ping.as_bytes()),
        )
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.apps.calls.lock().unwrap().refreshes.is_empty());

    // A signed push: 202 and a refresh.
    let r = c
        .post(format!("{}/api/v1/webhooks/git", s.base))
        .header("x-github-event", "push")
        .header(
            "x-hub-signature-256",
            slipway_git::webhook::github_signature(secret.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let reply: WebhookReply = r.json().await.unwrap();
    let reason = "webhook acme/gitops refs/heads/main 1111111111111111111111111111111111111111";
    assert_eq!(reply.refresh.as_deref(), Some(reason));
    assert_eq!(s.apps.calls.lock().unwrap().refreshes, vec![reason]);

    // GitLab's token.
    let gitlab = r#"{"object_kind":"push","ref":"refs/heads/main","before":"0","after":"2222222222222222222222222222222222222222",
        "project":{"path_with_namespace":"acme/gitops"},"user_username":"bo","commits":[]}"#;
    let r = c
        .post(format!("{}/api/v1/webhooks/git", s.base))
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", secret)
        .body(gitlab)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(s.apps.calls.lock().unwrap().refreshes.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn webhooks_are_refused_without_a_configured_secret() {
    let s = start(None, None).await;
    let body = "{}";
    let r = client()
        .post(format!("{}/api/v1/webhooks/git", s.base))
        .header("x-github-event", "push")
        .header(
            "x-hub-signature-256",
            slipway_git::webhook::github_signature(b"", body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let err: serde_json::Value = r.json().await.unwrap();
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("--webhook-secret-file"));
    assert!(s.apps.calls.lock().unwrap().refreshes.is_empty());
    s.stop().await;
}

/// Reads the SSE stream until `n` events arrived; returns (ids, raw text).
async fn read_events(r: &mut reqwest::Response, n: usize) -> (Vec<i64>, String) {
    let mut text = String::new();
    let read = async {
        loop {
            let ids: Vec<i64> = text
                .lines()
                .filter_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")))
                .map(|v| v.trim().parse().unwrap())
                .collect();
            if ids.len() >= n {
                return ids;
            }
            let chunk = r.chunk().await.unwrap().expect("stream still open");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    let ids = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("events arrive");
    (ids, text)
}

#[tokio::test]
async fn events_stream_with_ids_and_resume() {
    let s = start(None, None).await;
    let c = client();
    let e1 = s
        .store
        .append_event(&NewEvent::now("sync.started", "hello: sync to aaaa").application("hello"))
        .unwrap();
    let e2 = s
        .store
        .append_event(&NewEvent::now("sync.succeeded", "hello: synced"))
        .unwrap();

    // A new client starts after the newest event and sees what comes next.
    let mut live = c
        .get(format!("{}/api/v1/events", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let e3 = s
        .store
        .append_event(&NewEvent::now("sync.started", "web: sync"))
        .unwrap();
    let (ids, text) = read_events(&mut live, 1).await;
    assert_eq!(ids, vec![e3.0]);
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["kind"], "sync.started");
    assert_eq!(event["message"], "web: sync");

    // ?after=0 replays everything; Last-Event-ID resumes after that id.
    let mut all = c
        .get(format!("{}/api/v1/events?after=0", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(read_events(&mut all, 3).await.0, vec![e1.0, e2.0, e3.0]);
    let mut resumed = c
        .get(format!("{}/api/v1/events", s.base))
        .header("last-event-id", e1.0.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(read_events(&mut resumed, 2).await.0, vec![e2.0, e3.0]);

    // Silence brings keep-alive comments.
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !text.contains(": keep-alive") {
            let chunk = resumed.chunk().await.unwrap().expect("open");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("a keep-alive comment");

    let r = c
        .get(format!("{}/api/v1/events", s.base))
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Open streams end on shutdown.
    s.stop().await;
}

#[tokio::test]
async fn logs_tail_and_follow() {
    let s = start(None, None).await;
    let c = client();
    let text = c
        .get(format!("{}/api/v1/applications/hello/logs", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text,
        "hello-1/hello stdout starting\nhello-1/hello stderr warming up\nhello-1/hello stdout listening on 8080\n"
    );
    let text = c
        .get(format!("{}/api/v1/applications/hello/logs?tail=1", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "hello-1/hello stdout listening on 8080\n");
    let r = c
        .get(format!("{}/api/v1/applications/nope/logs", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let mut r = c
        .get(format!(
            "{}/api/v1/applications/hello/logs?follow=true&tail=1",
            s.base
        ))
        .send()
        .await
        .unwrap();
    let mut got = String::new();
    let mut appended = false;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !got.contains("GET /\n") {
            let chunk = r.chunk().await.unwrap().expect("open");
            got.push_str(std::str::from_utf8(&chunk).unwrap());
            if !appended {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&s.log)
                    .unwrap();
                f.write_all(b"stdout GET /\n").unwrap();
                appended = true;
            }
        }
    })
    .await
    .expect("followed lines arrive");
    assert_eq!(
        got,
        "hello-1/hello stdout listening on 8080\nhello-1/hello stdout GET /\n"
    );
    s.stop().await;
}
