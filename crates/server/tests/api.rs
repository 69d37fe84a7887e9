//! The HTTP surface over a real socket, backed by the real controller, the real local
//! runtime, a real GitOps repository and a real store (see `support`). Every request that
//! asks for something is checked by its effect: history rows, objects live in the runtime,
//! commits in the repository, lines in log files.

mod support;

use std::time::Duration;

use slipway_reconcile::{
    AppDetail, AppSummary, OperationPhase, OperationState, RollbackResult, SyncStatus,
};
use slipway_runtime::HealthStatus;
use slipway_server::{Server, ServerConfig, StatusReport, WebhookReply};
use slipway_store::{SyncOperation, SyncRecord, SyncResult};
use slipway_testkit::{http_get, wait_until};
use support::*;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_answer_json() {
    let s = Env::start(Options {
        hello: true,
        ..Options::default()
    })
    .await;
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
    let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["hello", "web"]);
    assert_eq!(list[0].sync, SyncStatus::Synced);
    assert_eq!(list[0].health.status, HealthStatus::Healthy);
    assert_eq!(list[1].sync, SyncStatus::OutOfSync);
    assert_eq!(list[1].health.status, HealthStatus::Missing);

    let detail: AppDetail = c
        .get(format!("{}/api/v1/applications/hello", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail.summary.name, "hello");
    let mut kinds: Vec<&str> = detail
        .resources
        .iter()
        .map(|r| r.id.kind.as_str())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Service"]);
    assert!(detail.diff.is_empty(), "{}", detail.diff);

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

    let history: Vec<SyncRecord> = c
        .get(format!(
            "{}/api/v1/applications/hello/history?limit=5",
            s.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].revision, s.first);
    assert_eq!(history[0].operation, SyncOperation::Auto);
    let r = c
        .get(format!("{}/api/v1/applications/web/history", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "[]", "web never synced");

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
    assert_eq!(status.applications.sync.get("OutOfSync"), Some(&1));
    assert_eq!(status.applications.health.get("Healthy"), Some(&1));
    assert_eq!(status.applications.health.get("Missing"), Some(&1));
    assert_eq!(status.services.len(), 1);
    assert_eq!(status.services[0].application, "hello");
    assert_eq!(status.services[0].namespace, "hello");
    assert_eq!(status.services[0].ports[0].address.port(), s.service_port);
    assert_eq!(status.version, slipway_server::VERSION);

    // Three requests through the Service, as the proxy counts them.
    let addr = status.services[0].ports[0].address;
    for _ in 0..3 {
        let (code, body) = http_get(addr, "/")
            .await
            .expect("GET / through the Service");
        assert_eq!(code, 200, "{body}");
        assert!(body.starts_with("hello from v1"), "{body}");
    }
    let metrics = c
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("\nslipway_up 1\n"), "{metrics}");
    assert!(
        metrics.contains("slipway_applications{sync=\"OutOfSync\",health=\"Missing\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "slipway_api_requests_total{method=\"GET\",route=\"/api/v1/applications/{name}\",code=\"404\"} 1"
        ),
        "{metrics}"
    );
    // The controller's series and the proxy's.
    assert!(
        metrics.contains("slipway_syncs_total{result=\"Succeeded\"} 1"),
        "{metrics}"
    );
    let proxied: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("slipway_requests_total{") && l.contains("code_class=\"2xx\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(proxied, 3, "{metrics}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_rollback_forward_their_bodies() {
    let s = Env::start(Options::default()).await;
    let c = client();
    s.repo.git(&["tag", "v1"]);

    // No body: a manual sync of HEAD by "api".
    let op: OperationState = c
        .post(format!("{}/api/v1/applications/web/sync", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(op.initiated_by, "api");
    assert_eq!(op.phase, OperationPhase::Succeeded);
    assert_eq!(op.revision, s.first);
    assert_eq!(s.live("web"), ["ConfigMap/web-a", "ConfigMap/web-b"]);
    let h = s.handle.history("web", 10).unwrap();
    assert_eq!(
        (
            h[0].operation,
            h[0].initiated_by.as_str(),
            h[0].revision.as_str()
        ),
        (SyncOperation::Manual, "api", s.first.as_str())
    );

    // A revision, prune and who: web-b is gone at v2, web-c only comes after it.
    s.repo.remove("apps/web/b.yaml");
    let v2 = s.repo.commit("web: drop b");
    s.repo.git(&["tag", "v2"]);
    s.repo.write("apps/web/c.yaml", &config_map("web-c", "c"));
    let v3 = s.repo.commit("web: add c");
    let r = c
        .post(format!("{}/api/v1/applications/web/sync", s.base))
        .body(r#"{"revision":"v2","prune":true,"initiatedBy":"ana"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let op: OperationState = r.json().await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded);
    assert_eq!(op.revision, v2);
    assert_eq!(op.initiated_by, "api:ana");
    assert_eq!(s.live("web"), ["ConfigMap/web-a"], "pruned, and v2 only");
    let h = s.handle.history("web", 10).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].revision.as_str(), h[0].initiated_by.as_str()),
        (v2.as_str(), "api:ana")
    );
    assert_eq!(h[0].diff_summary, "+0 ~0 -1");

    let r = c
        .post(format!("{}/api/v1/applications/web/sync", s.base))
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
    assert_eq!(s.handle.history("web", 10).unwrap().len(), 2, "no sync");

    // Rollback to v1: a commit that restores apps/web as it was, then synced.
    let rb: RollbackResult = c
        .post(format!("{}/api/v1/applications/web/rollback", s.base))
        .json(&serde_json::json!({"to": "v1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rb.restored, s.first);
    assert_eq!(rb.reverted, [v3.clone(), v2.clone()]);
    assert_eq!(s.repo.git(&["rev-parse", "HEAD"]).trim(), rb.commit);
    let message = s.repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with(&format!("Rollback web to {}", &s.first[..7])),
        "{message}"
    );
    assert!(message.contains("Reverted-by: api\n"), "{message}");
    s.handle.settled().await;
    assert_eq!(s.live("web"), ["ConfigMap/web-a", "ConfigMap/web-b"]);
    let h = s.handle.history("web", 10).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].operation, SyncOperation::Rollback);
    assert_eq!(h[0].revision, rb.commit);
    assert_eq!(h[0].result, SyncResult::Succeeded);

    let r = c
        .post(format!("{}/api/v1/applications/nope/rollback", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_when_set() {
    let s = Env::start(Options {
        token: Some("s3cret-token"),
        ..Options::default()
    })
    .await;
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
        .post(format!("{}/api/v1/applications/web/sync", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    s.handle.settled().await;
    assert!(s.handle.history("web", 10).unwrap().is_empty(), "no sync");
    assert!(s.live("web").is_empty());

    let r = c
        .get(format!("{}/api/v1/applications", s.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}/api/v1/applications/web/sync", s.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.handle.history("web", 10).unwrap().len(), 1);
    let r = c.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200, "healthz stays open");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_without_token_is_refused() {
    let s = Env::start(Options::default()).await;
    let config = ServerConfig::new("0.0.0.0:0".parse().unwrap());
    let server = Server::new(config, s.handle.clone(), s.runtime.clone(), s.store.clone());
    let err = server.bind().await.expect_err("refused");
    assert!(err.to_string().contains("--token-file"), "{err}");
    s.stop().await;
}

/// Commits a new greeting for `hello` (the controller only sees it when asked to look).
fn new_hello_commit(s: &Env, greeting: &str) -> String {
    s.repo
        .write("apps/hello/configmap.yaml", &config_map("hello", greeting));
    s.repo.commit(&format!("hello: {greeting}"))
}

/// The controller has handled every request made so far and still tracks `revision`.
async fn still_at(s: &Env, revision: &str) {
    s.handle.settled().await;
    let a = s.summary("hello");
    assert_eq!(a.revision.as_deref(), Some(revision), "{a:?}");
    assert_eq!(a.synced_revision.as_deref(), Some(revision), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_need_a_valid_signature() {
    let secret = "hook-secret";
    let s = Env::start(Options {
        token: Some("api-token"),
        secret: Some(secret),
        ..Options::default()
    })
    .await;
    let c = client();
    let next = new_hello_commit(&s, "howdy");
    let body = format!(
        r#"{{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000",
        "after":"{next}",
        "repository":{{"name":"gitops","full_name":"acme/gitops","clone_url":"http://git.local/gitops.git"}},
        "pusher":{{"name":"ana"}},"head_commit":{{"message":"hello: howdy"}}}}"#
    );

    // Unsigned: 401, no refresh, a webhook.rejected event naming the peer.
    let r = s.github_webhook("push", &body, None).await;
    assert_eq!(r.status(), 401);
    let err: serde_json::Value = r.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("unsigned"), "{err}");

    // Signed with the wrong secret.
    let r = s.github_webhook("push", &body, Some(b"other")).await;
    assert_eq!(r.status(), 401);
    still_at(&s, &s.first).await;
    let webhooks: Vec<_> = s
        .store
        .events_since(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.starts_with("webhook"))
        .collect();
    assert_eq!(webhooks.len(), 2);
    assert!(webhooks.iter().all(|e| e.kind == "webhook.rejected"));
    assert!(
        webhooks[0].message.starts_with("webhook from 127.0.0.1:"),
        "{}",
        webhooks[0].message
    );

    // Ping: 200, nothing else. The API token is not needed.
    let ping = r#"{"zen":"hi"}"#;
    let r = s
        .github_webhook("ping", ping, Some(secret.as_bytes()))
        .await;
    assert_eq!(r.status(), 200);
    still_at(&s, &s.first).await;

    // A signed push: 202, and the controller fetches and syncs the new commit.
    let r = s
        .github_webhook("push", &body, Some(secret.as_bytes()))
        .await;
    assert_eq!(r.status(), 202);
    let reply: WebhookReply = r.json().await.unwrap();
    let reason = format!("webhook acme/gitops refs/heads/main {next}");
    assert_eq!(reply.refresh.as_deref(), Some(reason.as_str()));
    s.wait_synced_to(&next).await;
    assert_eq!(
        s.handle.history("hello", 1).unwrap()[0].message,
        "hello: howdy"
    );

    // GitLab's token.
    let after = new_hello_commit(&s, "hey");
    let gitlab = format!(
        r#"{{"object_kind":"push","ref":"refs/heads/main","before":"0","after":"{after}",
        "project":{{"path_with_namespace":"acme/gitops"}},"user_username":"bo","commits":[]}}"#
    );
    let r = c
        .post(format!("{}/api/v1/webhooks/git", s.base))
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", secret)
        .body(gitlab)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    s.wait_synced_to(&after).await;
    let pushes = s
        .store
        .events_since(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "webhook.push")
        .count();
    assert_eq!(pushes, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_refused_without_a_configured_secret() {
    let s = Env::start(Options::default()).await;
    new_hello_commit(&s, "howdy");
    let body = "{}";
    let r = s.github_webhook("push", body, Some(b"")).await;
    assert_eq!(r.status(), 401);
    let err: serde_json::Value = r.json().await.unwrap();
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("--webhook-secret-file"));
    still_at(&s, &s.first).await;
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

fn ids_after(s: &Env, after: Option<i64>) -> Vec<i64> {
    s.store
        .events_since(after.map(slipway_store::EventId), 1000)
        .unwrap()
        .into_iter()
        .map(|e| e.id.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_with_ids_and_resume() {
    let s = Env::start(Options::default()).await;
    let c = client();
    let startup = ids_after(&s, None);
    assert!(!startup.is_empty(), "the first syncs are recorded");
    let newest = *startup.last().unwrap();

    // A new client starts after the newest event and sees what comes next: the events of a
    // sync asked for through the API.
    let mut live = c
        .get(format!("{}/api/v1/events", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let r = c
        .post(format!("{}/api/v1/applications/web/sync", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.handle.settled().await;
    let new = ids_after(&s, Some(newest));
    assert!(new.len() >= 3, "{new:?}");
    let (ids, text) = read_events(&mut live, new.len()).await;
    assert_eq!(ids[..new.len()], new[..]);
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["kind"], "sync.started");
    assert_eq!(event["application"], "web");
    assert!(
        event["message"].as_str().unwrap().contains("by api"),
        "{event}"
    );

    // ?after=0 replays everything; Last-Event-ID resumes after that id.
    let everything = ids_after(&s, None);
    let mut all = c
        .get(format!("{}/api/v1/events?after=0", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_events(&mut all, everything.len()).await.0[..everything.len()],
        everything[..]
    );
    let mut resumed = c
        .get(format!("{}/api/v1/events", s.base))
        .header("last-event-id", new[0].to_string())
        .send()
        .await
        .unwrap();
    let rest = ids_after(&s, Some(new[0]));
    assert_eq!(rest[..], new[1..]);
    assert_eq!(
        read_events(&mut resumed, rest.len()).await.0[..rest.len()],
        rest[..]
    );

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_and_follow() {
    let s = Env::start(Options {
        hello: true,
        ..Options::default()
    })
    .await;
    let c = client();
    let files = slipway_runtime::Runtime::log_files(&*s.runtime, "hello");
    assert_eq!(files.len(), 1, "{files:?}");
    let (label, log) = files[0].clone();
    assert!(label.ends_with("/hello"), "{label}");
    let service = format!("127.0.0.1:{}", s.service_port).parse().unwrap();
    let logs = |query: &'static str| {
        let c = c.clone();
        let url = format!("{}/api/v1/applications/hello/logs{query}", s.base);
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    };
    // hello logs every request it serves (the readiness probe's too, every 300 s once
    // ready); one through the Service is the last line of the file.
    let (code, _) = http_get(service, "/").await.expect("GET /");
    assert_eq!(code, 200);
    let logged = wait_until(PATIENCE, || async {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("stdout GET / 200 "))
    })
    .await;
    assert!(logged, "{:?}", std::fs::read_to_string(&log));

    // Every captured line, prefixed with the replica and container.
    let text = logs("").await;
    let captured = std::fs::read_to_string(&log).unwrap();
    let expected: String = captured.lines().map(|l| format!("{label} {l}\n")).collect();
    assert_eq!(text, expected);
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "{label} stderr hello v1 listening on http://127.0.0.1:"
        ))),
        "{text}"
    );
    let last = text.lines().last().unwrap().to_string();
    assert!(
        last.starts_with(&format!("{label} stdout GET / 200 ")),
        "{text}"
    );
    assert_eq!(logs("?tail=1").await, format!("{last}\n"));
    let r = c
        .get(format!("{}/api/v1/applications/nope/logs", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Following: the last line, then what the next request through the Service writes.
    let mut r = c
        .get(format!(
            "{}/api/v1/applications/hello/logs?follow=true&tail=1",
            s.base
        ))
        .send()
        .await
        .unwrap();
    let mut got = String::new();
    let mut requested = false;
    tokio::time::timeout(Duration::from_secs(30), async {
        while !got.contains("GET /again") {
            let chunk = r.chunk().await.unwrap().expect("open");
            got.push_str(std::str::from_utf8(&chunk).unwrap());
            if !requested && got.ends_with('\n') {
                assert_eq!(got, format!("{last}\n"));
                let (code, _) = http_get(service, "/again").await.expect("GET /again");
                assert_eq!(code, 404);
                requested = true;
            }
        }
    })
    .await
    .expect("followed lines arrive");
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 2, "{got}");
    assert_eq!(lines[0], last);
    assert!(
        lines[1].starts_with(&format!("{label} stdout GET /again 404 ")),
        "{got}"
    );
    assert!(got.ends_with('\n'));
    s.stop().await;
}
