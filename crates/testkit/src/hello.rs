//! The demo service for tests: its binary, and a registry serving images of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use slipway_oci::build::{self, BuildOptions, BuildSpec, CopySpec};
use slipway_oci::client::{Client, ClientOptions, Reference};
use slipway_oci::layout::Layout;
use slipway_oci::registry::{self, Config, Registry, ServeConfig};

/// 2024-01-01T00:00:00Z: every test image has this timestamp, so images are reproducible.
const EPOCH: i64 = 1_704_067_200;

/// The `target` directory the running test binary was built into (tests run from
/// `<target>/debug/deps/`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{} is not under a target directory", exe.display()))
}

/// The `hello` binary (package `slipway-hello`): `<target>/debug/hello` when it was built
/// (a workspace `cargo test`/`cargo build` builds it), else built once by this process with
/// `cargo build -p slipway-hello` into `<target>/testkit/`. A separate target directory
/// because the outer `cargo test` may hold the lock on the main one: building there from a
/// test would wait forever. Cargo's own lock serializes test binaries racing to build it.
pub fn hello_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = target_dir();
        let built = target.join("debug").join("hello");
        if built.is_file() {
            return built;
        }
        let own = target.join("testkit");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "slipway-hello", "--target-dir"])
            .arg(&own)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build -p slipway-hello");
        assert!(status.success(), "cargo build -p slipway-hello failed");
        let bin = own.join("debug").join("hello");
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// Slipway's embedded registry on a free loopback port, in this process, with images of the
/// hello binary. Stops when dropped.
#[derive(Debug)]
pub struct HelloRegistry {
    host: String,
    dir: tempfile::TempDir,
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HelloRegistry {
    /// Starts the registry (needs a tokio runtime).
    pub async fn start() -> HelloRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry =
            Registry::open(dir.path().join("registry"), Config::default()).expect("open registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind registry");
        let host = listener.local_addr().expect("registry address").to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(registry::serve_with_shutdown(
            listener,
            registry,
            ServeConfig::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let client = Client::new(ClientOptions {
            insecure_http: true,
            ..ClientOptions::default()
        })
        .expect("registry client");
        HelloRegistry {
            host,
            dir,
            client,
            stop: Some(stop),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Builds a reproducible image of the hello binary (entrypoint `/app/hello`, env
    /// `VERSION=<tag>` so responses name the version, `PORT=8080`) and pushes it as
    /// `hello:<tag>`; answers the pullable reference `127.0.0.1:PORT/hello@sha256:...`.
    /// Different tags give different digests (through `VERSION`).
    pub async fn push_hello(&self, tag: &str) -> String {
        let layout_dir = self.build_hello(tag);
        let destination: Reference = format!("{}/hello:{tag}", self.host)
            .parse()
            .expect("reference");
        let digest = self
            .client
            .push_image(&layout_dir, Some(tag), &destination)
            .await
            .expect("push hello image");
        format!("{}/hello@{digest}", self.host)
    }

    /// Builds the hello image for `tag` into an OCI layout directory (tagged `tag`) and
    /// answers the directory (for `oci:DIR:TAG` references).
    pub fn build_hello(&self, tag: &str) -> PathBuf {
        let bin = hello_binary();
        let context = self.dir.path().join(format!("context-{tag}"));
        std::fs::create_dir_all(&context).expect("context dir");
        std::fs::copy(&bin, context.join("hello")).expect("copy hello");
        let spec = BuildSpec {
            copy: vec![CopySpec {
                mode: Some(0o755),
                ..CopySpec::new("hello", "/app/hello")
            }],
            entrypoint: Some(vec!["/app/hello".to_string()]),
            env: vec![
                ("PORT".to_string(), "8080".to_string()),
                ("VERSION".to_string(), tag.to_string()),
            ],
            labels: BTreeMap::from([(
                "org.opencontainers.image.title".to_string(),
                "hello".to_string(),
            )]),
            ..BuildSpec::default()
        };
        let layout_dir = self.dir.path().join(format!("layout-{tag}"));
        let layout = Layout::create(&layout_dir).expect("create layout");
        build::build(
            &spec,
            &context,
            &BuildOptions {
                source_date_epoch: Some(EPOCH),
                git: None,
                reference: Some(tag.to_string()),
            },
            &layout,
        )
        .expect("build hello image");
        layout_dir
    }
}

impl Drop for HelloRegistry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
