//! The API over the real controller, the local runtime and the store, on a real GitOps
//! repository: what `slipway up` serves, driven end to end by a signed webhook that makes a
//! new image run.

mod support;

use std::time::Duration;

use slipway_reconcile::{AppDetail, AppSummary};
use slipway_runtime::HealthStatus;
use slipway_store::SyncRecord;
use slipway_testkit::http_get;
use support::*;

const SECRET: &str = "webhook-secret";
const TOKEN: &str = "api-token";

async fn get<T: serde::de::DeserializeOwned>(env: &Env, path: &str) -> T {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", env.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.expect("json")
}

async fn hello(env: &Env) -> AppSummary {
    let apps: Vec<AppSummary> = get(env, "/api/v1/applications").await;
    apps.into_iter()
        .find(|a| a.name == "hello")
        .expect("hello is listed")
}

fn push_body(repo: &str, after: &str) -> String {
    serde_json::json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": after,
        "repository": {"name": "gitops", "full_name": repo, "clone_url": "http://git.local/gitops.git"},
        "pusher": {"name": "ana"},
        "head_commit": {"id": after, "message": "hello v2"}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_history_events_and_webhook_driven_syncs() {
    let env = Env::start(Options {
        token: Some(TOKEN),
        secret: Some(SECRET),
        hello: true,
    })
    .await;
    let v1 = env.first.clone();

    // List, get, history.
    let listed = hello(&env).await;
    assert_eq!(listed.synced_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(listed.health.status, HealthStatus::Healthy);
    let detail: AppDetail = get(&env, "/api/v1/applications/hello").await;
    assert_eq!(detail.summary.revision.as_deref(), Some(v1.as_str()));
    assert!(detail.resources.iter().any(|r| r.id.kind == "Deployment"));
    let history: Vec<SyncRecord> = get(&env, "/api/v1/applications/hello/history").await;
    assert!(!history.is_empty());
    assert_eq!(history[0].revision, v1);
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/applications/nope", env.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::get(format!("{}/api/v1/applications", env.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the token is enforced");

    // The controller's events are in the stream, with ids.
    let mut all = reqwest::Client::new()
        .get(format!("{}/api/v1/events?after=0", env.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !text.contains("\nid: ") && !text.starts_with("id: ") {
            let chunk = all.chunk().await.unwrap().expect("open");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("events with ids");
    drop(all);

    // A new commit the controller does not know of yet (polling is hourly).
    let registry = env.registry.as_ref().expect("registry");
    let v2_image = registry.push_hello("v2").await;
    env.repo
        .write("apps/hello/deployment.yaml", &hello_deployment(&v2_image));
    let v2 = env.repo.commit("hello v2");
    let syncs_before = env.store.sync_history("hello", 100).unwrap().len();

    // Unsigned: 401, recorded, and nothing syncs (the controller has handled everything
    // asked of it when `settled` answers, a refresh included).
    let body = push_body("acme/gitops", &v2);
    let r = env.github_webhook("push", &body, None).await;
    assert_eq!(r.status(), 401);
    env.handle.settled().await;
    let now = hello(&env).await;
    assert_eq!(now.revision.as_deref(), Some(v1.as_str()));
    assert_eq!(now.synced_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(
        env.store.sync_history("hello", 100).unwrap().len(),
        syncs_before
    );
    let rejected = env
        .store
        .events_since(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "webhook.rejected")
        .count();
    assert_eq!(rejected, 1);

    // Signed: 202, and hello reaches v2 and serves it through its Service.
    let r = env
        .github_webhook("push", &body, Some(SECRET.as_bytes()))
        .await;
    assert_eq!(r.status(), 202);
    env.wait_synced_to(&v2).await;
    let addr = format!("127.0.0.1:{}", env.service_port).parse().unwrap();
    let (status, answer) = http_get(addr, "/")
        .await
        .expect("GET / through the Service");
    assert_eq!(status, 200, "{answer}");
    assert!(answer.starts_with("hello from v2"), "{answer}");
    let history: Vec<SyncRecord> = get(&env, "/api/v1/applications/hello/history").await;
    assert_eq!(history[0].revision, v2);
    assert_eq!(history[0].message, "hello v2");
    env.stop().await;
}
