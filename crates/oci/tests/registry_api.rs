//! The registry's HTTP API, spoken to by reqwest over loopback: uploads (monolithic,
//! chunked, out of order, resumed after a restart), ranges, mounts, manifests and their
//! validation, immutable tags, deletes, pagination and the referrers API.

mod registry_support;

use registry_support::*;
use serde_json::{json, Value};
use slipway_oci::registry::{Config, ServeConfig};
use slipway_oci::{media, Digest};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn server(dir: &tempfile::TempDir) -> Server {
    Server::start(
        &dir.path().join("registry"),
        Config::default(),
        ServeConfig::default(),
    )
    .await
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn base_endpoint_and_bad_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let resp = c
        .get(format!("{}/v2/", s.url))
        .send()
        .await
        .expect("GET /v2/");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );

    let resp = c
        .get(format!("{}/v2/Bad_Name/tags/list", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(error_of(resp).await.1, "NAME_INVALID");
    let resp = c
        .get(format!("{}/v2/app/blobs/sha256:123", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(error_of(resp).await.0, 400);
    let resp = c
        .get(format!("{}/v2/app/nothing", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 404);
    let resp = c
        .get(format!("{}/v2/never/pushed/tags/list", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        error_of(resp).await,
        (
            404,
            "NAME_UNKNOWN".into(),
            "repository never/pushed is unknown".into()
        )
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn monolithic_and_chunked_uploads_store_the_exact_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();

    // Monolithic: one POST with the digest.
    let data = random_bytes(300_000);
    let d = Digest::sha256(&data);
    let resp = c
        .post(format!("{}/v2/lib/app/blobs/uploads/?digest={d}", s.url))
        .body(data.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "location"), format!("/v2/lib/app/blobs/{d}"));
    assert_eq!(header(&resp, "docker-content-digest"), d.to_string());
    let resp = c
        .head(format!("{}/v2/lib/app/blobs/{d}", s.url))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), "300000");
    assert_eq!(header(&resp, "docker-content-digest"), d.to_string());
    let got = c
        .get(format!("{}/v2/lib/app/blobs/{d}", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(got.bytes().await.expect("body").as_ref(), data.as_slice());

    // Chunked: POST, PATCH with Content-Range, an out-of-order chunk, status, PATCH
    // without Content-Range, PUT with the last chunk.
    let data = random_bytes(1_000_000);
    let d = Digest::sha256(&data);
    let resp = c
        .post(format!("{}/v2/lib/app/blobs/uploads/", s.url))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 202);
    let location = header(&resp, "location");
    let uuid = header(&resp, "docker-upload-uuid");
    assert_eq!(location, format!("/v2/lib/app/blobs/uploads/{uuid}"));
    assert_eq!(header(&resp, "range"), "0-0");
    let at = |path: &str| format!("{}{path}", s.url);

    let resp = c
        .patch(at(&location))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", "0-399999")
        .body(data[..400_000].to_vec())
        .send()
        .await
        .expect("PATCH 1");
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), "0-399999");

    let resp = c
        .patch(at(&location))
        .header("Content-Range", "500000-599999")
        .body(data[500_000..600_000].to_vec())
        .send()
        .await
        .expect("PATCH out of order");
    assert_eq!(resp.status(), 416);
    assert_eq!(header(&resp, "range"), "0-399999");
    assert_eq!(error_of(resp).await.1, "BLOB_UPLOAD_INVALID");

    let resp = c.get(at(&location)).send().await.expect("status");
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "range"), "0-399999");
    assert_eq!(header(&resp, "docker-upload-uuid"), uuid);

    let resp = c
        .patch(at(&location))
        .body(data[400_000..800_000].to_vec())
        .send()
        .await
        .expect("PATCH 2");
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), "0-799999");

    let resp = c
        .put(format!("{}?digest={d}", at(&location)))
        .body(data[800_000..].to_vec())
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "docker-content-digest"), d.to_string());
    let got = c
        .get(format!("{}/v2/lib/app/blobs/{d}", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(got.bytes().await.expect("body").as_ref(), data.as_slice());
    assert_eq!(std::fs::read(blob_file(&s.root, &d)).expect("stored"), data);

    // The finished session is gone, and nothing is left under uploads/.
    let resp = c.get(at(&location)).send().await.expect("status");
    assert_eq!(error_of(resp).await.1, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        std::fs::read_dir(s.root.join("uploads"))
            .expect("uploads")
            .count(),
        0
    );

    // Cancelling a session deletes it.
    let resp = c
        .post(format!("{}/v2/lib/app/blobs/uploads/", s.url))
        .send()
        .await
        .expect("POST");
    let location = header(&resp, "location");
    c.patch(at(&location))
        .body(vec![1u8; 10])
        .send()
        .await
        .expect("PATCH");
    let resp = c.delete(at(&location)).send().await.expect("DELETE");
    assert_eq!(resp.status(), 204);
    let resp = c.get(at(&location)).send().await.expect("status");
    assert_eq!(resp.status(), 404);
    // Another repository cannot use someone else's session.
    let resp = c
        .post(format!("{}/v2/lib/app/blobs/uploads/", s.url))
        .send()
        .await
        .expect("POST");
    let uuid = header(&resp, "docker-upload-uuid");
    let resp = c
        .get(format!("{}/v2/other/blobs/uploads/{uuid}", s.url))
        .send()
        .await
        .expect("status");
    assert_eq!(error_of(resp).await.1, "BLOB_UPLOAD_UNKNOWN");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn digest_mismatch_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let data = random_bytes(50_000);
    let real = Digest::sha256(&data);
    let claimed = Digest::sha256(b"something else");

    let resp = c
        .post(format!("{}/v2/app/blobs/uploads/?digest={claimed}", s.url))
        .body(data.clone())
        .send()
        .await
        .expect("POST");
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (400, "DIGEST_INVALID"));
    assert!(message.contains(&real.to_string()), "{message}");

    // Chunked, then a PUT with the wrong digest.
    let resp = c
        .post(format!("{}/v2/app/blobs/uploads/", s.url))
        .send()
        .await
        .expect("POST");
    let location = format!("{}{}", s.url, header(&resp, "location"));
    c.patch(&location)
        .body(data.clone())
        .send()
        .await
        .expect("PATCH");
    let resp = c
        .put(format!("{location}?digest={claimed}"))
        .send()
        .await
        .expect("PUT");
    assert_eq!(error_of(resp).await.1, "DIGEST_INVALID");
    let resp = c.get(&location).send().await.expect("status");
    assert_eq!(resp.status(), 404, "a failed upload is gone");

    for d in [&real, &claimed] {
        let resp = c
            .head(format!("{}/v2/app/blobs/{d}", s.url))
            .send()
            .await
            .expect("HEAD");
        assert_eq!(resp.status(), 404);
        assert!(!blob_file(&s.root, d).exists());
    }
    assert_eq!(
        std::fs::read_dir(s.root.join("uploads"))
            .expect("uploads")
            .count(),
        0
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn range_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let data = random_bytes(1000);
    let d = put_blob(&c, &s.url, "app", &data).await;
    let url = format!("{}/v2/app/blobs/{d}", s.url);
    let cases: &[(&str, usize, usize)] = &[
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-5000", 500, 999),
    ];
    for &(range, a, b) in cases {
        let resp = c
            .get(&url)
            .header("Range", range)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            header(&resp, "content-range"),
            format!("bytes {a}-{b}/1000")
        );
        assert_eq!(header(&resp, "content-length"), (b - a + 1).to_string());
        assert_eq!(
            resp.bytes().await.expect("body").as_ref(),
            &data[a..=b],
            "{range}"
        );
    }
    let resp = c
        .get(&url)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 416);
    assert_eq!(header(&resp, "content-range"), "bytes */1000");
    let resp = c.head(&url).send().await.expect("HEAD");
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_repository_mount() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let data = random_bytes(10_000);
    let d = put_blob(&c, &s.url, "team/base", &data).await;

    // Knowing a digest is not enough to read it through another repository.
    let resp = c
        .head(format!("{}/v2/team/app/blobs/{d}", s.url))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(resp.status(), 404);

    let resp = c
        .post(format!(
            "{}/v2/team/app/blobs/uploads/?mount={d}&from=team/base",
            s.url
        ))
        .send()
        .await
        .expect("mount");
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "location"), format!("/v2/team/app/blobs/{d}"));
    assert_eq!(header(&resp, "docker-content-digest"), d.to_string());
    let got = c
        .get(format!("{}/v2/team/app/blobs/{d}", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(got.bytes().await.expect("body").as_ref(), data.as_slice());

    // Not in the source repository: an ordinary upload session starts instead.
    let unknown = Digest::sha256(b"nobody pushed this");
    for from in ["team/base", "does/not/exist"] {
        let resp = c
            .post(format!(
                "{}/v2/team/app/blobs/uploads/?mount={unknown}&from={from}",
                s.url
            ))
            .send()
            .await
            .expect("mount");
        assert_eq!(resp.status(), 202);
        assert!(header(&resp, "location").starts_with("/v2/team/app/blobs/uploads/"));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_are_returned_exactly_as_pushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = random_bytes(2000);
    put_blob(&c, &s.url, "app", config).await;
    put_blob(&c, &s.url, "app", &layer).await;

    // Odd whitespace and key order: the digest is over these bytes, and they come back.
    let cfg = descriptor(media::OCI_CONFIG, config);
    let lay = descriptor(media::OCI_LAYER_GZIP, &layer);
    let text = format!(
        "{{\n  \"layers\": [ {lay} ],\n  \"config\": {cfg},\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{}\"\n}}\n",
        media::OCI_MANIFEST
    );
    let d = Digest::sha256(text.as_bytes());
    let resp = put_manifest(
        &c,
        &s.url,
        "app",
        "v1",
        media::OCI_MANIFEST,
        text.as_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "docker-content-digest"), d.to_string());
    assert_eq!(header(&resp, "location"), format!("/v2/app/manifests/{d}"));
    for reference in ["v1".to_string(), d.to_string()] {
        let resp = c
            .get(format!("{}/v2/app/manifests/{reference}", s.url))
            .header("Accept", media::OCI_MANIFEST)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "content-type"), media::OCI_MANIFEST);
        assert_eq!(header(&resp, "docker-content-digest"), d.to_string());
        assert_eq!(resp.bytes().await.expect("body").as_ref(), text.as_bytes());
    }
    let resp = c
        .head(format!("{}/v2/app/manifests/v1", s.url))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(header(&resp, "content-length"), text.len().to_string());
    assert_eq!(header(&resp, "docker-content-digest"), d.to_string());

    // PUT by digest.
    let text2 = text.replace("\n", "\r\n");
    let d2 = Digest::sha256(text2.as_bytes());
    let resp = put_manifest(
        &c,
        &s.url,
        "app",
        &d2.to_string(),
        media::OCI_MANIFEST,
        text2.as_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 201);

    // Docker schema 2 manifest and manifest list.
    let docker = json!({
        "schemaVersion": 2, "mediaType": media::DOCKER_MANIFEST,
        "config": descriptor(media::DOCKER_CONFIG, config),
        "layers": [descriptor(media::DOCKER_LAYER_GZIP, &layer)],
    })
    .to_string();
    let resp = put_manifest(
        &c,
        &s.url,
        "app",
        "docker",
        media::DOCKER_MANIFEST,
        docker.as_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let list = json!({
        "schemaVersion": 2, "mediaType": media::DOCKER_MANIFEST_LIST,
        "manifests": [{ "mediaType": media::DOCKER_MANIFEST, "digest": Digest::sha256(docker.as_bytes()).to_string(), "size": docker.len(),
                        "platform": { "architecture": "amd64", "os": "linux" } }],
    })
    .to_string();
    let resp = put_manifest(
        &c,
        &s.url,
        "app",
        "list",
        media::DOCKER_MANIFEST_LIST,
        list.as_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let resp = c
        .get(format!("{}/v2/app/manifests/list", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(header(&resp, "content-type"), media::DOCKER_MANIFEST_LIST);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), list.as_bytes());

    // An OCI index over the OCI manifest.
    let index = json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [descriptor(media::OCI_MANIFEST, text.as_bytes())],
    })
    .to_string();
    let resp = put_manifest(
        &c,
        &s.url,
        "app",
        "multi",
        media::OCI_INDEX,
        index.as_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let resp = c
        .get(format!("{}/v2/app/manifests/multi", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(header(&resp, "content-type"), media::OCI_INDEX);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn manifest_validation_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let config = b"{}".to_vec();
    let layer = random_bytes(100);
    put_blob(&c, &s.url, "app", &config).await;
    let missing_layer = image_manifest(&config, &[&layer]);

    let resp = put_manifest(&c, &s.url, "app", "v1", media::OCI_MANIFEST, &missing_layer).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        body["errors"][0]["detail"]["digest"],
        Digest::sha256(&layer).to_string()
    );

    // The layer exists in another repository only: still unknown here.
    put_blob(&c, &s.url, "elsewhere", &layer).await;
    let resp = put_manifest(&c, &s.url, "app", "v1", media::OCI_MANIFEST, &missing_layer).await;
    assert_eq!(error_of(resp).await.1, "MANIFEST_BLOB_UNKNOWN");

    let index = json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX,
        "manifests": [descriptor(media::OCI_MANIFEST, b"not pushed")],
    })
    .to_string();
    let resp = put_manifest(&c, &s.url, "app", "idx", media::OCI_INDEX, index.as_bytes()).await;
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
    assert!(message.starts_with("manifest sha256:"), "{message}");

    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"{not json".to_vec(), media::OCI_MANIFEST, "not valid JSON"),
        (
            image_manifest(&config, &[]),
            media::DOCKER_MANIFEST,
            "does not match the Content-Type",
        ),
        (
            b"{\"schemaVersion\":2}".to_vec(),
            "application/vnd.example+json",
            "unsupported manifest media type",
        ),
        (
            b"{\"schemaVersion\":1,\"fsLayers\":[]}".to_vec(),
            media::OCI_MANIFEST,
            "schemaVersion 1",
        ),
        (
            b"{\"schemaVersion\":2,\"layers\":[]}".to_vec(),
            media::OCI_MANIFEST,
            "missing field `config`",
        ),
    ];
    for (body, ct, want) in cases {
        let resp = put_manifest(&c, &s.url, "app", "v1", ct, &body).await;
        let (status, code, message) = error_of(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "MANIFEST_INVALID"),
            "{message}"
        );
        assert!(message.contains(want), "{message} should contain {want}");
    }

    // PUT by digest verifies it.
    let good = image_manifest(&config, &[]);
    let wrong = Digest::sha256(b"other");
    let resp = put_manifest(
        &c,
        &s.url,
        "app",
        &wrong.to_string(),
        media::OCI_MANIFEST,
        &good,
    )
    .await;
    assert_eq!(error_of(resp).await.1, "DIGEST_INVALID");
    assert!(
        !blob_file(&s.root, &Digest::sha256(&good)).exists(),
        "nothing stored"
    );

    let resp = put_manifest(&c, &s.url, "app", "-bad-tag", media::OCI_MANIFEST, &good).await;
    assert_eq!(error_of(resp).await.1, "MANIFEST_INVALID");
    let resp = put_manifest(&c, &s.url, "App", "v1", media::OCI_MANIFEST, &good).await;
    assert_eq!(error_of(resp).await.1, "NAME_INVALID");
    // A manifest declared larger than 4 MiB is refused before its body is read (a raw
    // request: the server answers without waiting for the body, which would break the pipe
    // of a client still sending it).
    let head = format!(
        "PUT /v2/app/manifests/v1 HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        s.host,
        media::OCI_MANIFEST,
        5 << 20
    );
    let answer = tokio::task::spawn_blocking({
        let host = s.host.clone();
        move || {
            use std::io::{Read, Write};
            let mut tcp = std::net::TcpStream::connect(host).expect("connect");
            tcp.write_all(head.as_bytes()).expect("write");
            let mut buf = vec![0u8; 4096];
            let n = tcp.read(&mut buf).expect("read");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        }
    })
    .await
    .expect("raw request");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(
            r#"{"code":"SIZE_INVALID","message":"manifest is larger than 4194304 bytes"}"#
        ),
        "{answer}"
    );

    let resp = c
        .get(format!("{}/v2/app/manifests/v1", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(error_of(resp).await.1, "MANIFEST_UNKNOWN");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_are_immutable_unless_the_repository_is_mutable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        mutable_tags: vec!["dev/*".into()],
        ..Config::default()
    };
    let s = Server::start(&dir.path().join("registry"), config, ServeConfig::default()).await;
    let c = client();
    let a = push_image(&c, &s.url, "prod/app", "v1", 1, 100).await;
    let b = push_image(&c, &s.url, "prod/app", "other", 1, 100).await;

    for tag in ["v1", "latest"] {
        if tag == "latest" {
            let resp = put_manifest(
                &c,
                &s.url,
                "prod/app",
                tag,
                media::OCI_MANIFEST,
                &a.manifest,
            )
            .await;
            assert_eq!(resp.status(), 201);
        }
        let resp = put_manifest(
            &c,
            &s.url,
            "prod/app",
            tag,
            media::OCI_MANIFEST,
            &b.manifest,
        )
        .await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("json");
        assert_eq!(status, 409, "{tag}");
        assert_eq!(
            body["errors"][0],
            json!({
                "code": "DENIED",
                "message": format!("tag {tag} is immutable: it already points to {}", a.digest),
                "detail": { "tag": tag, "digest": a.digest.to_string(), "rejected": b.digest.to_string() },
            })
        );
        // The same digest again is fine.
        let resp = put_manifest(
            &c,
            &s.url,
            "prod/app",
            tag,
            media::OCI_MANIFEST,
            &a.manifest,
        )
        .await;
        assert_eq!(resp.status(), 201);
        let resp = c
            .head(format!("{}/v2/prod/app/manifests/{tag}", s.url))
            .send()
            .await
            .expect("HEAD");
        assert_eq!(header(&resp, "docker-content-digest"), a.digest.to_string());
    }

    // Tags cannot be deleted, and deleting the manifest keeps the tag reserved.
    let resp = c
        .delete(format!("{}/v2/prod/app/manifests/v1", s.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(error_of(resp).await.0, 405);
    let resp = c
        .delete(format!("{}/v2/prod/app/manifests/{}", s.url, a.digest))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 202);
    let resp = c
        .get(format!("{}/v2/prod/app/manifests/v1", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(error_of(resp).await.1, "MANIFEST_UNKNOWN");
    let resp = put_manifest(
        &c,
        &s.url,
        "prod/app",
        "v1",
        media::OCI_MANIFEST,
        &b.manifest,
    )
    .await;
    assert_eq!(error_of(resp).await.0, 409);
    let resp = put_manifest(
        &c,
        &s.url,
        "prod/app",
        "v1",
        media::OCI_MANIFEST,
        &a.manifest,
    )
    .await;
    assert_eq!(resp.status(), 201, "the original digest may come back");

    // `dev/*` repositories move tags; `dev/*` does not reach `dev/a/b`.
    let x = push_image(&c, &s.url, "dev/app", "v1", 1, 100).await;
    let y = push_image(&c, &s.url, "dev/app", "other", 1, 100).await;
    let resp = put_manifest(
        &c,
        &s.url,
        "dev/app",
        "v1",
        media::OCI_MANIFEST,
        &y.manifest,
    )
    .await;
    assert_eq!(resp.status(), 201);
    let resp = c
        .head(format!("{}/v2/dev/app/manifests/v1", s.url))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(header(&resp, "docker-content-digest"), y.digest.to_string());
    assert_ne!(x.digest, y.digest);
    let resp = c
        .delete(format!("{}/v2/dev/app/manifests/v1", s.url))
        .send()
        .await
        .expect("DELETE tag");
    assert_eq!(resp.status(), 202);
    let resp = c
        .head(format!("{}/v2/dev/app/manifests/v1", s.url))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(resp.status(), 404);
    let resp = c
        .head(format!("{}/v2/dev/app/manifests/{}", s.url, y.digest))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(resp.status(), 200, "deleting a tag keeps the manifest");

    push_image(&c, &s.url, "dev/a/b", "v1", 1, 100).await;
    let z = push_image(&c, &s.url, "dev/a/b", "other", 1, 100).await;
    let resp = put_manifest(
        &c,
        &s.url,
        "dev/a/b",
        "v1",
        media::OCI_MANIFEST,
        &z.manifest,
    )
    .await;
    assert_eq!(error_of(resp).await.0, 409);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_then_404() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let img = push_image(&c, &s.url, "app", "v1", 2, 100).await;
    push_image(&c, &s.url, "app", "v2", 1, 100).await;

    let url = format!("{}/v2/app/manifests/{}", s.url, img.digest);
    assert_eq!(c.delete(&url).send().await.expect("DELETE").status(), 202);
    let resp = c.get(&url).send().await.expect("GET");
    assert_eq!(
        error_of(resp).await,
        (
            404,
            "MANIFEST_UNKNOWN".into(),
            format!("manifest {} is unknown to this repository", img.digest)
        )
    );
    let resp = c.delete(&url).send().await.expect("DELETE again");
    assert_eq!(error_of(resp).await.1, "MANIFEST_UNKNOWN");
    let tags: Value = c
        .get(format!("{}/v2/app/tags/list", s.url))
        .send()
        .await
        .expect("tags")
        .json()
        .await
        .expect("json");
    assert_eq!(tags, json!({ "name": "app", "tags": ["v2"] }));

    let layer = Digest::sha256(&img.layers[0]);
    let blob = format!("{}/v2/app/blobs/{layer}", s.url);
    assert_eq!(c.delete(&blob).send().await.expect("DELETE").status(), 202);
    assert_eq!(c.head(&blob).send().await.expect("HEAD").status(), 404);
    let resp = c.delete(&blob).send().await.expect("DELETE again");
    assert_eq!(error_of(resp).await.1, "BLOB_UNKNOWN");
    s.stop().await;

    // With deletes disabled.
    let config = Config {
        allow_delete: false,
        ..Config::default()
    };
    let s = Server::start(&dir.path().join("registry"), config, ServeConfig::default()).await;
    let resp = c
        .delete(format!("{}/v2/app/manifests/v2", s.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        error_of(resp).await,
        (
            405,
            "UNSUPPORTED".into(),
            "deleting is disabled on this registry".into()
        )
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tag_and_catalog_pagination() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let img = push_image(&c, &s.url, "pages", "t0", 1, 10).await;
    let mut want = vec!["t0".to_string()];
    for t in ["b", "a", "c2", "c10", "Z"] {
        let resp = put_manifest(&c, &s.url, "pages", t, media::OCI_MANIFEST, &img.manifest).await;
        assert_eq!(resp.status(), 201);
        want.push(t.to_string());
    }
    want.sort();

    let mut got = Vec::new();
    let mut next = Some("/v2/pages/tags/list?n=2".to_string());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let resp = c
            .get(format!("{}{path}", s.url))
            .send()
            .await
            .expect("GET tags");
        assert_eq!(resp.status(), 200);
        if let Some(link) = resp.headers().get("link") {
            let link = link.to_str().expect("ascii");
            let (target, rel) = link.split_once("; ").expect("link format");
            assert_eq!(rel, "rel=\"next\"");
            next = Some(target.trim_matches(['<', '>']).to_string());
        }
        let body: Value = resp.json().await.expect("json");
        let page: Vec<String> = serde_json::from_value(body["tags"].clone()).expect("tags");
        assert!(page.len() <= 2);
        got.extend(page);
        pages += 1;
    }
    assert_eq!(got, want);
    assert_eq!(pages, 3);
    let body: Value = c
        .get(format!("{}/v2/pages/tags/list?n=2&last=c2", s.url))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(body["tags"], json!(["t0"]));

    push_image(&c, &s.url, "a/nested/repo", "v1", 1, 10).await;
    let resp = c
        .get(format!("{}/v2/_catalog?n=1", s.url))
        .send()
        .await
        .expect("catalog");
    assert_eq!(
        header(&resp, "link"),
        "</v2/_catalog?n=1&last=a/nested/repo>; rel=\"next\""
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body, json!({ "repositories": ["a/nested/repo"] }));
    let body: Value = c
        .get(format!("{}/v2/_catalog", s.url))
        .send()
        .await
        .expect("catalog")
        .json()
        .await
        .expect("json");
    assert_eq!(body, json!({ "repositories": ["a/nested/repo", "pages"] }));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn referrers_api_lists_manifests_with_a_subject() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = server(&dir).await;
    let c = client();
    let img = push_image(&c, &s.url, "app", "v1", 1, 100).await;
    let subject = descriptor(media::OCI_MANIFEST, &img.manifest);

    // A signature: an artifact with the empty config and an explicit artifactType.
    let empty = b"{}";
    let sig = b"signature bytes";
    put_blob(&c, &s.url, "app", empty).await;
    put_blob(&c, &s.url, "app", sig).await;
    let signature = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": descriptor(media::OCI_EMPTY, empty),
        "layers": [descriptor("application/vnd.example.signature.v1", sig)],
        "subject": subject,
        "annotations": { "org.example.signer": "ci" },
    }))
    .expect("json");
    let sig_digest = Digest::sha256(&signature);
    let resp = put_manifest(
        &c,
        &s.url,
        "app",
        &sig_digest.to_string(),
        media::OCI_MANIFEST,
        &signature,
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), img.digest.to_string());

    // An SBOM without artifactType: the config's media type stands in.
    let sbom_config = br#"{"format":"cyclonedx"}"#;
    put_blob(&c, &s.url, "app", sbom_config).await;
    let sbom = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": descriptor("application/vnd.example.sbom.config", sbom_config),
        "layers": [],
        "subject": subject,
    }))
    .expect("json");
    let sbom_digest = Digest::sha256(&sbom);
    let resp = put_manifest(
        &c,
        &s.url,
        "app",
        &sbom_digest.to_string(),
        media::OCI_MANIFEST,
        &sbom,
    )
    .await;
    assert_eq!(resp.status(), 201);

    let url = format!("{}/v2/app/referrers/{}", s.url, img.digest);
    let resp = c.get(&url).send().await.expect("referrers");
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), media::OCI_INDEX);
    assert!(resp.headers().get("oci-filters-applied").is_none());
    let index: Value = resp.json().await.expect("json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], media::OCI_INDEX);
    let mut want = vec![
        json!({ "mediaType": media::OCI_MANIFEST, "digest": sig_digest.to_string(), "size": signature.len(),
                "artifactType": "application/vnd.example.signature", "annotations": { "org.example.signer": "ci" } }),
        json!({ "mediaType": media::OCI_MANIFEST, "digest": sbom_digest.to_string(), "size": sbom.len(),
                "artifactType": "application/vnd.example.sbom.config" }),
    ];
    want.sort_by_key(|v| v["digest"].as_str().unwrap_or_default().to_string());
    assert_eq!(index["manifests"], Value::Array(want));

    let resp = c
        .get(format!(
            "{url}?artifactType=application/vnd.example.signature"
        ))
        .send()
        .await
        .expect("filtered");
    assert_eq!(header(&resp, "oci-filters-applied"), "artifactType");
    let index: Value = resp.json().await.expect("json");
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(1));
    assert_eq!(index["manifests"][0]["digest"], sig_digest.to_string());

    // Deleting a referrer removes it from the list; unknown subjects have none.
    let resp = c
        .delete(format!("{}/v2/app/manifests/{sig_digest}", s.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 202);
    let index: Value = c
        .get(&url)
        .send()
        .await
        .expect("referrers")
        .json()
        .await
        .expect("json");
    assert_eq!(index["manifests"][0]["digest"], sbom_digest.to_string());
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(1));
    let none: Value = c
        .get(format!(
            "{}/v2/app/referrers/{}",
            s.url,
            Digest::sha256(b"x")
        ))
        .send()
        .await
        .expect("referrers")
        .json()
        .await
        .expect("json");
    assert_eq!(none["manifests"], json!([]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_session_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("registry");
    let c = client();
    let data = random_bytes(3_000_000);
    let d = Digest::sha256(&data);

    let s = Server::start(&root, Config::default(), ServeConfig::default()).await;
    let resp = c
        .post(format!("{}/v2/app/blobs/uploads/", s.url))
        .send()
        .await
        .expect("POST");
    let location = header(&resp, "location");
    let resp = c
        .patch(format!("{}{location}", s.url))
        .header("Content-Range", "0-1999999")
        .body(data[..2_000_000].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(resp.status(), 202);
    s.stop().await;

    // A new server on the same storage knows the session and its offset (the running hash
    // is rebuilt from disk).
    let s = Server::start(&root, Config::default(), ServeConfig::default()).await;
    let resp = c
        .get(format!("{}{location}", s.url))
        .send()
        .await
        .expect("status");
    assert_eq!(resp.status(), 204);
    assert_eq!(header(&resp, "range"), "0-1999999");
    let resp = c
        .patch(format!("{}{location}", s.url))
        .header("Content-Range", "2000000-2999999")
        .body(data[2_000_000..].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(resp.status(), 202);
    let resp = c
        .put(format!("{}{location}?digest={d}", s.url))
        .send()
        .await
        .expect("PUT");
    assert_eq!(resp.status(), 201);
    let got = c
        .get(format!("{}/v2/app/blobs/{d}", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(got.bytes().await.expect("body").as_ref(), data.as_slice());
    s.stop().await;
}
