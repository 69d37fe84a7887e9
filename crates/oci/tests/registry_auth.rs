//! Bearer-token authentication: the Docker Hub style challenge, the token endpoint, scopes
//! (pull-only tokens cannot push), skopeo and podman logging in with `--creds`, and the
//! refusal to serve beyond loopback without users.

mod registry_support;

use std::path::Path;

use base64::Engine as _;
use registry_support::*;
use serde_json::Value;
use slipway_oci::registry::{self, Config, Registry, RegistryError, ServeConfig, Users};
use slipway_oci::Digest;

const USERS: &str = "\
# name:password:permissions
alice:wonder:land:pull,push
bob:builder:pull
";

fn serve_config() -> ServeConfig {
    ServeConfig {
        users: Some(Users::parse(USERS, Path::new("users")).expect("users")),
        ..ServeConfig::default()
    }
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

async fn token(
    c: &reqwest::Client,
    s: &Server,
    creds: Option<(&str, &str)>,
    scope: &str,
) -> reqwest::Response {
    let mut req = c.get(format!("{}/token?service=slipway&scope={scope}", s.url));
    if let Some((u, p)) = creds {
        req = req.header("Authorization", basic(u, p));
    }
    req.send().await.expect("GET /token")
}

async fn bearer(
    c: &reqwest::Client,
    s: &Server,
    user: &str,
    password: &str,
    scope: &str,
) -> String {
    bearer_of(token(c, s, Some((user, password)), scope).await).await
}

async fn bearer_of(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["expires_in"], 3600);
    assert!(body["issued_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    format!("Bearer {}", body["token"].as_str().expect("token"))
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_carry_pull_and_push_scopes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(
        &dir.path().join("registry"),
        Config::default(),
        serve_config(),
    )
    .await;
    let c = reqwest::Client::new();
    let realm = format!(
        "Bearer realm=\"http://{}/token\",service=\"slipway\"",
        s.host
    );

    let resp = c
        .get(format!("{}/v2/", s.url))
        .send()
        .await
        .expect("GET /v2/");
    assert_eq!(resp.status(), 401);
    assert_eq!(challenge(&resp), realm);
    let resp = c
        .get(format!("{}/v2/team/app/manifests/v1", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        challenge(&resp),
        format!("{realm},scope=\"repository:team/app:pull\"")
    );
    assert_eq!(
        error_of(resp).await,
        (401, "UNAUTHORIZED".into(), "authentication required".into())
    );
    let resp = c
        .post(format!("{}/v2/team/app/blobs/uploads/", s.url))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        challenge(&resp),
        format!("{realm},scope=\"repository:team/app:pull,push\"")
    );

    // The token endpoint checks Basic credentials; without any, the token grants nothing.
    let resp = token(&c, &s, Some(("alice", "wrong")), "repository:team/app:pull").await;
    assert_eq!(
        (resp.status().as_u16(), challenge(&resp)),
        (401, "Basic realm=\"slipway\"".to_string())
    );
    assert_eq!(error_of(resp).await.1, "UNAUTHORIZED");
    let anonymous = bearer_of(token(&c, &s, None, "repository:team/app:pull").await).await;
    let resp = c
        .get(format!("{}/v2/team/app/manifests/v1", s.url))
        .header("Authorization", anonymous)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        challenge(&resp),
        format!("{realm},scope=\"repository:team/app:pull\"")
    );
    assert_eq!(
        error_of(resp).await,
        (401, "UNAUTHORIZED".into(), "authentication required".into())
    );

    // Alice may push (her password contains colons).
    let alice = bearer(
        &c,
        &s,
        "alice",
        "wonder:land",
        "repository:team/app:pull,push",
    )
    .await;
    let resp = c
        .get(format!("{}/v2/", s.url))
        .header("Authorization", &alice)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let data = random_bytes(1000);
    let d = Digest::sha256(&data);
    let resp = c
        .post(format!("{}/v2/team/app/blobs/uploads/?digest={d}", s.url))
        .header("Authorization", &alice)
        .body(data.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 201);

    // A token for another repository, or with pull only, does not push here: Alice may get
    // the right one, so she is challenged again with insufficient_scope.
    for scope in [
        "repository:team/other:pull,push",
        "repository:team/app:pull",
    ] {
        let t = bearer(&c, &s, "alice", "wonder:land", scope).await;
        let resp = c
            .post(format!("{}/v2/team/app/blobs/uploads/", s.url))
            .header("Authorization", &t)
            .send()
            .await
            .expect("POST");
        assert_eq!(
            challenge(&resp),
            format!("{realm},scope=\"repository:team/app:pull,push\",error=\"insufficient_scope\"")
        );
        assert_eq!(
            error_of(resp).await,
            (
                401,
                "UNAUTHORIZED".into(),
                "token does not allow to push repository team/app".into()
            )
        );
    }

    // Bob asks for push but only gets pull: he reads, and pushing is denied outright.
    let bob = bearer(&c, &s, "bob", "builder", "repository:team/app:pull,push").await;
    let got = c
        .get(format!("{}/v2/team/app/blobs/{d}", s.url))
        .header("Authorization", &bob)
        .send()
        .await
        .expect("GET");
    assert_eq!(got.bytes().await.expect("body").as_ref(), data.as_slice());
    let resp = c
        .post(format!("{}/v2/team/app/blobs/uploads/", s.url))
        .header("Authorization", &bob)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        error_of(resp).await,
        (
            403,
            "DENIED".into(),
            "user bob may not push repository team/app".into()
        )
    );
    let resp = c
        .delete(format!("{}/v2/team/app/blobs/{d}", s.url))
        .header("Authorization", &alice)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        error_of(resp).await,
        (
            403,
            "DENIED".into(),
            "user alice may not delete repository team/app".into()
        )
    );

    // A tampered token is invalid.
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    let resp = c
        .get(format!("{}/v2/", s.url))
        .header("Authorization", forged)
        .send()
        .await
        .expect("GET");
    assert_eq!(challenge(&resp), format!("{realm},error=\"invalid_token\""));

    // The catalog needs registry:catalog:*, which pull users get.
    let cat = bearer(&c, &s, "bob", "builder", "registry:catalog:*").await;
    let body: Value = c
        .get(format!("{}/v2/_catalog", s.url))
        .header("Authorization", &cat)
        .send()
        .await
        .expect("catalog")
        .json()
        .await
        .expect("json");
    assert_eq!(body["repositories"], serde_json::json!(["team/app"]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_and_podman_log_in_with_creds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(
        &dir.path().join("registry"),
        Config::default(),
        serve_config(),
    )
    .await;
    let img = build_layout(&dir.path().join("img"), "v1", &small_layers(), 6);
    let src = format!("oci:{}:v1", img.dir.display());
    let dst = format!("docker://{}/secure/app:v1", s.host);
    // Keep skopeo from finding credentials anywhere else.
    let auth_file = dir.path().join("auth.json");
    std::fs::write(&auth_file, "{}").expect("auth file");
    let auth = auth_file.display().to_string();

    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-authfile",
        &auth,
        &src,
        &dst,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authentication required"), "{stderr}");

    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "bob:builder",
        &src,
        &dst,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("user bob may not push repository secure/app"),
        "{stderr}"
    );

    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wonder:land",
        &src,
        &dst,
    ]);
    let info = skopeo_inspect(&dst, &["--creds", "bob:builder"]);
    assert_eq!(info["Digest"], img.digest.to_string());

    let root = dir.path().join("podman-root").display().to_string();
    let runroot = dir.path().join("podman-run").display().to_string();
    let reference = format!("{}/secure/app:v1", s.host);
    run_ok(
        "podman",
        &[
            "--root",
            &root,
            "--runroot",
            &runroot,
            "--storage-driver",
            "vfs",
            "pull",
            "--tls-verify=false",
            "--creds",
            "bob:builder",
            &reference,
        ],
    );
    let digest = run_ok(
        "podman",
        &[
            "--root",
            &root,
            "--runroot",
            &runroot,
            "--storage-driver",
            "vfs",
            "image",
            "inspect",
            "--format",
            "{{.Digest}}",
            &reference,
        ],
    );
    assert_eq!(digest.trim(), img.digest.to_string());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_loopback_authentication_is_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("registry");
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let registry = Registry::open(&root, Config::default()).expect("open");
    let err = registry::serve(listener, registry, ServeConfig::default())
        .await
        .expect_err("refused");
    assert!(matches!(err, RegistryError::AuthRequired { .. }));
    assert_eq!(
        err.to_string(),
        format!("refusing to serve on {addr} without authentication: a registry reachable from other machines needs a token file (--token-file), or listen on 127.0.0.1")
    );

    // With users it serves, and asks for a token.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let registry = Registry::open(&root, Config::default())
        .expect("open again: the refusal released the lock");
    let task = tokio::spawn(registry::serve(listener, registry, serve_config()));
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/v2/"))
        .await
        .expect("GET");
    assert_eq!(resp.status(), 401);
    task.abort();
}
