//! The registry client against Slipway's own registry (`registry::serve_with_shutdown`), for
//! what docker-registry 2.8 cannot show: Docker-Hub-style bearer tokens and tag pagination.

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use slipway_oci::client::{
    Client, ClientError, ClientOptions, Credentials, PushOutcome, Reference,
};
use slipway_oci::registry::{self, Config, Registry, ServeConfig, Users};
use slipway_oci::{media, Digest};

/// A Slipway registry on a free loopback port; stopped on drop.
struct Server {
    host: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    async fn start(users: Option<&str>) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry =
            Registry::open(dir.path().join("registry"), Config::default()).expect("open");
        let users = users.map(|text| Users::parse(text, Path::new("users")).expect("users"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = ServeConfig {
            users,
            ..ServeConfig::default()
        };
        tokio::spawn(registry::serve_with_shutdown(
            listener,
            registry,
            config,
            async {
                let _ = stopped.await;
            },
        ));
        Server {
            host,
            _dir: dir,
            stop: Some(stop),
        }
    }

    fn reference(&self, rest: &str) -> Reference {
        format!("{}/{rest}", self.host).parse().expect("reference")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn client(credentials: Credentials) -> Client {
    Client::new(ClientOptions {
        insecure_http: true,
        credentials,
        ..ClientOptions::default()
    })
    .expect("client")
}

/// Pushes a one-layer image to `reference`; answers the manifest digest and bytes.
async fn push_image(
    client: &Client,
    reference: &Reference,
) -> Result<(Digest, Vec<u8>), ClientError> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("hello").expect("path");
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"hi"[..]).expect("append");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().expect("tar")).expect("gzip");
    let layer = Bytes::from(gz.finish().expect("gzip"));
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let repo = reference.repo_only();
    let (layer_digest, _) = client.push_blob_bytes(&repo, layer.clone()).await?;
    let (config_digest, _) = client.push_blob_bytes(&repo, config.clone()).await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": layer_digest.to_string(), "size": layer.len()}],
    }))
    .expect("manifest");
    let digest = client
        .push_manifest(
            reference,
            media::OCI_MANIFEST,
            Bytes::from(manifest.clone()),
        )
        .await?;
    Ok((digest, manifest))
}

const USERS: &str = "alice:wonderland:*\nreader:books:pull\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_with_wrong_and_right_credentials() {
    let server = Server::start(Some(USERS)).await;
    let app = server.reference("team/app:v1");

    let anonymous = client(Credentials::none());
    let err = anonymous.resolve(&app).await.expect_err("anonymous");
    assert!(
        matches!(&err, ClientError::AuthenticationFailed { registry, scope, .. }
            if *registry == server.host && scope == "repository:team/app:pull"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("no credentials are configured"),
        "{err}"
    );

    let wrong = client(Credentials::none().with(&server.host, "alice", "queen of hearts"));
    let err = push_image(&wrong, &app).await.expect_err("wrong password");
    assert!(
        matches!(err, ClientError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("refused the credentials"), "{err}");

    let alice = client(Credentials::none().with(&server.host, "alice", "wonderland"));
    let (digest, manifest) = push_image(&alice, &app).await.expect("push with a token");
    let m = alice.pull_manifest(&app).await.expect("pull");
    assert_eq!(&m.bytes[..], &manifest[..]);
    assert_eq!(alice.resolve(&app).await.expect("resolve").digest, digest);

    // A mount asks for a token over two repositories at once.
    let config = serde_json::from_slice::<serde_json::Value>(&manifest).expect("json")["config"]
        ["digest"]
        .as_str()
        .expect("config digest")
        .parse::<Digest>()
        .expect("digest");
    let other = server.reference("team/other");
    assert!(alice
        .mount_blob(&other, &config, "team/app")
        .await
        .expect("mount"));
    let copied = alice
        .copy(&app, &server.reference("team/copy"))
        .await
        .expect("copy within the registry");
    assert_eq!(copied, digest);

    // A reader may pull but not push: the registry's DENIED comes through.
    let reader = client(Credentials::none().with(&server.host, "reader", "books"));
    let out = tempfile::tempdir().expect("out");
    reader
        .pull_image(&app, out.path())
        .await
        .expect("reader pulls");
    let err = reader
        .push_blob_bytes(&server.reference("team/app"), Bytes::from_static(b"new"))
        .await
        .expect_err("reader pushes");
    assert!(
        err.code() == Some("DENIED") && err.status() == Some(403),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_follow_link_pagination() {
    let server = Server::start(None).await;
    let client = client(Credentials::none());
    let repo = server.reference("paged");
    let (_, manifest) = push_image(&client, &repo.with_tag("t00").expect("tag"))
        .await
        .expect("push");
    let mut expected = vec!["t00".to_string()];
    for i in 1..12 {
        let tag = format!("t{i:02}");
        client
            .push_manifest(
                &repo.with_tag(&tag).expect("tag"),
                media::OCI_MANIFEST,
                Bytes::from(manifest.clone()),
            )
            .await
            .expect("tag");
        expected.push(tag);
    }
    assert_eq!(
        client
            .list_tags_paged(&repo, Some(5))
            .await
            .expect("pages of 5"),
        expected
    );
    assert_eq!(
        client
            .list_tags_paged(&repo, Some(1))
            .await
            .expect("pages of 1"),
        expected
    );
    assert_eq!(client.list_tags(&repo).await.expect("one page"), expected);

    let err = client
        .list_tags(&server.reference("nothing-here"))
        .await
        .expect_err("unknown repository");
    assert_eq!(err.code(), Some("NAME_UNKNOWN"), "{err:?}");

    // Pushing what is there is a no-op.
    let (d, outcome) = client
        .push_blob_bytes(&repo, Bytes::from_static(b"x"))
        .await
        .expect("push");
    assert_eq!(outcome, PushOutcome::Uploaded { chunks: 0 });
    assert_eq!(
        client
            .push_blob(&repo, &d, 1, &b"x"[..])
            .await
            .expect("again"),
        PushOutcome::Existed
    );
}
