//! The `Delivery` kind (`slipway.dev/v1alpha1`), parsed strictly: every unknown field, wrong
//! type, missing field, duplicate stage and unknown promotion policy is a
//! `file:line:col: field: message` diagnostic, all of them reported at once (the same
//! machinery as workflows and the Kubernetes kinds: `slipway_model`'s spans).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use slipway_model::strict::{kind, Strict};
use slipway_model::{parse_documents, Diagnostics, FieldPath};
pub use slipway_store::PromotionPolicy;

/// The API version of the kind.
pub const API_VERSION: &str = "slipway.dev/v1alpha1";
/// The kind.
pub const KIND: &str = "Delivery";
/// A verification's time budget when `timeout` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One Delivery: an image and the stages its digests go through, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `metadata.name`.
    pub name: String,
    /// The file it was read from (relative to the repository root).
    pub file: String,
    /// The image that moves through the stages.
    pub image: ImageRef,
    /// The stages, first to last.
    pub stages: Vec<Stage>,
}

/// `spec.image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    /// The repository images come from (`127.0.0.1:5000/hello`).
    pub repository: String,
    /// The image's name in the overlays' kustomize `images:` (default: the repository's
    /// last path segment).
    pub name: String,
}

/// One stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Its name, unique in the Delivery.
    pub name: String,
    /// The Application the GitOps controller syncs for it.
    pub application: String,
    /// The directory of the overlay whose kustomization carries the digest.
    pub overlay: String,
    /// Checks run once per digest after the application is Synced and Healthy on it.
    pub verification: Option<Verification>,
    /// How a digest verified in the previous stage enters this one (`None` for the first
    /// stage: CI's deliver step feeds it).
    pub promotion: Option<PromotionPolicy>,
}

/// `verification`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Budget for all checks together.
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// HTTP checks, in order.
    pub http: Vec<HttpCheck>,
    /// Commands, in order, after the HTTP checks.
    pub commands: Vec<CommandCheck>,
}

/// One HTTP check: `GET` a Service of the stage's application or a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// What to ask.
    pub target: HttpTarget,
    /// The status expected (default 200).
    pub expect_status: u16,
    /// Text the body must contain, if any.
    pub expect_body: Option<String>,
}

/// Where an HTTP check goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HttpTarget {
    /// A Service of the stage's application, through the embedded proxy, and a path.
    Service {
        /// The Service's name.
        service: String,
        /// The path (`/` by default).
        path: String,
    },
    /// An absolute `http://` URL.
    Url(String),
}

/// One command, run with `sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandCheck {
    /// Its name in results and commit trailers.
    pub name: String,
    /// The script.
    pub run: String,
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// True when a parsed document is a Delivery (whatever else is wrong with it).
pub fn is_delivery(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some(KIND)
        && v.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION)
}

/// Every Delivery in a YAML stream; other kinds are skipped. All problems of all its
/// Delivery documents are reported. A stream that is not YAML at all is only an error when
/// it mentions `kind: Delivery` (other files are the GitOps controller's to report).
pub fn parse(file: &str, text: &str) -> Result<Vec<Delivery>, Diagnostics> {
    let docs = match parse_documents(file, text) {
        Ok(docs) => docs,
        Err(e) if mentions_delivery(text) => return Err(Diagnostics(vec![e.into()])),
        Err(_) => return Ok(Vec::new()),
    };
    let file_arc: Arc<str> = Arc::from(file);
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for doc in docs.iter().filter(|d| is_delivery(&d.value)) {
        let mut cx = Cx(Strict::new(file_arc.clone(), doc.start, &doc.spans));
        let d = cx.delivery(&doc.value, file);
        if cx.diags.is_empty() {
            out.extend(d);
        }
        diags.append(&mut cx.diags);
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        diags.sort_by_key(|d| d.location.as_ref().and_then(|l| l.pos));
        diags.dedup();
        Err(Diagnostics(diags))
    }
}

fn mentions_delivery(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        l.starts_with("kind:") && l.trim_start_matches("kind:").trim().trim_matches('"') == KIND
    })
}

/// `60s`, `2m`, `500ms`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const SPEC: &[&str] = &["image", "stages"];
const IMAGE: &[&str] = &["repository", "name"];
const STAGE: &[&str] = &[
    "name",
    "application",
    "overlay",
    "verification",
    "promotion",
];
const VERIFICATION: &[&str] = &["timeout", "http", "commands"];
const HTTP: &[&str] = &["service", "path", "url", "expectStatus", "expectBody"];
const COMMAND: &[&str] = &["name", "run"];

/// The Delivery reader: [`Strict`]'s located errors plus the Delivery's rules below.
struct Cx<'a>(Strict<'a>);

impl<'a> std::ops::Deref for Cx<'a> {
    type Target = Strict<'a>;
    fn deref(&self) -> &Strict<'a> {
        &self.0
    }
}

impl std::ops::DerefMut for Cx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Cx<'_> {
    fn list<'v>(&mut self, v: &'v Value, path: &FieldPath) -> &'v [Value] {
        match v {
            Value::Array(items) => items,
            Value::Null => &[],
            other => {
                self.err(path, format!("expected a list, got {}", kind(other)));
                &[]
            }
        }
    }

    /// An optional non-empty string field.
    fn opt_string(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        path: &FieldPath,
    ) -> Option<String> {
        match m.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::String(_) => {
                self.err(&path.key(key), "expected a non-empty string");
                None
            }
            other => {
                self.err(
                    &path.key(key),
                    format!("expected a string, got {}", kind(other)),
                );
                None
            }
        }
    }

    /// A required non-empty string field.
    fn string(&mut self, m: &Map<String, Value>, key: &str, path: &FieldPath) -> Option<String> {
        if !m.contains_key(key) {
            self.err(path, format!("missing field `{key}`"));
            return None;
        }
        self.opt_string(m, key, path)
    }

    fn delivery(&mut self, v: &Value, file: &str) -> Option<Delivery> {
        let root = FieldPath::root();
        let top = self.map(v, &root, TOP)?;
        let meta_path = root.key("metadata");
        let name = match top.get("metadata") {
            Some(meta) => {
                let meta = self.map(
                    meta,
                    &meta_path,
                    &["name", "namespace", "labels", "annotations"],
                )?;
                self.string(meta, "name", &meta_path)
            }
            None => {
                self.err(&root, "missing field `metadata`");
                None
            }
        };
        let spec_path = root.key("spec");
        let Some(spec) = top.get("spec") else {
            self.err(&root, "missing field `spec`");
            return None;
        };
        let spec = self.map(spec, &spec_path, SPEC)?;
        let image = self.image(spec, &spec_path);
        let stages = self.stages(spec, &spec_path);
        Some(Delivery {
            name: name?,
            file: file.to_string(),
            image: image?,
            stages,
        })
    }

    fn image(&mut self, spec: &Map<String, Value>, path: &FieldPath) -> Option<ImageRef> {
        let Some(v) = spec.get("image") else {
            self.err(path, "missing field `image`");
            return None;
        };
        let path = path.key("image");
        let m = self.map(v, &path, IMAGE)?;
        let repository = self.string(m, "repository", &path)?;
        if repository.contains('@')
            || repository
                .rsplit('/')
                .next()
                .is_some_and(|l| l.contains(':'))
        {
            self.err(
                &path.key("repository"),
                "expected a repository without tag or digest (the digests come from the stages)",
            );
        }
        let default = repository
            .rsplit('/')
            .next()
            .unwrap_or(&repository)
            .to_string();
        let name = self.opt_string(m, "name", &path).unwrap_or(default);
        Some(ImageRef { repository, name })
    }

    fn stages(&mut self, spec: &Map<String, Value>, path: &FieldPath) -> Vec<Stage> {
        let Some(v) = spec.get("stages") else {
            self.err(path, "missing field `stages`");
            return Vec::new();
        };
        let path = path.key("stages");
        let items = self.list(v, &path);
        if items.is_empty() {
            self.err(&path, "expected at least one stage");
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = path.index(i);
            if let Some(name) = item.get("name").and_then(Value::as_str) {
                if !seen.insert(name.to_string()) {
                    self.err(
                        &p.key("name"),
                        format!("duplicate stage name {name:?}; stage names must be unique"),
                    );
                }
            }
            if let Some(stage) = self.stage(item, &p, i == 0) {
                out.push(stage);
            }
        }
        out
    }

    fn stage(&mut self, v: &Value, path: &FieldPath, first: bool) -> Option<Stage> {
        let m = self.map(v, path, STAGE)?;
        let name = self.string(m, "name", path);
        let application = self.string(m, "application", path);
        let overlay = self
            .string(m, "overlay", path)
            .map(|o| o.trim_matches('/').trim_start_matches("./").to_string());
        let verification = m
            .get("verification")
            .and_then(|v| self.verification(v, &path.key("verification")));
        let promotion = match m.get("promotion") {
            None if first => None,
            None => Some(PromotionPolicy::Auto),
            Some(_) if first => {
                self.err(
                    &path.key("promotion"),
                    "the first stage takes images from CI's slipway/deliver step; \
                     promotion applies to later stages only",
                );
                None
            }
            Some(Value::String(s)) => {
                match s.parse::<PromotionPolicy>() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        self.err(
                        &path.key("promotion"),
                        format!("unknown promotion {s:?}; expected one of: auto, manual, pull-request"),
                    );
                        None
                    }
                }
            }
            Some(other) => {
                self.err(
                    &path.key("promotion"),
                    format!("expected auto, manual or pull-request, got {}", kind(other)),
                );
                None
            }
        };
        Some(Stage {
            name: name?,
            application: application?,
            overlay: overlay?,
            verification,
            promotion,
        })
    }

    fn verification(&mut self, v: &Value, path: &FieldPath) -> Option<Verification> {
        let m = self.map(v, path, VERIFICATION)?;
        let timeout = match m.get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(t) => {
                let text = match t {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => String::new(),
                };
                match parse_duration(&text).filter(|d| !d.is_zero()) {
                    Some(d) => d,
                    None => {
                        self.err(
                            &path.key("timeout"),
                            format!(
                                "expected a duration such as 60s, 2m or 500ms, got {}",
                                show(t)
                            ),
                        );
                        DEFAULT_TIMEOUT
                    }
                }
            }
        };
        let mut http = Vec::new();
        if let Some(list) = m.get("http") {
            let p = path.key("http");
            for (i, item) in self.list(list, &p).iter().enumerate() {
                if let Some(c) = self.http(item, &p.index(i)) {
                    http.push(c);
                }
            }
        }
        let mut commands = Vec::new();
        if let Some(list) = m.get("commands") {
            let p = path.key("commands");
            for (i, item) in self.list(list, &p).iter().enumerate() {
                let ip = p.index(i);
                let Some(c) = self.map(item, &ip, COMMAND) else {
                    continue;
                };
                let run = self.string(c, "run", &ip);
                let name = self
                    .opt_string(c, "name", &ip)
                    .unwrap_or_else(|| format!("command {}", i + 1));
                if let Some(run) = run {
                    commands.push(CommandCheck { name, run });
                }
            }
        }
        Some(Verification {
            timeout,
            http,
            commands,
        })
    }

    fn http(&mut self, v: &Value, path: &FieldPath) -> Option<HttpCheck> {
        let m = self.map(v, path, HTTP)?;
        let service = self.opt_string(m, "service", path);
        let url = self.opt_string(m, "url", path);
        let p = self.opt_string(m, "path", path);
        let target = match (service, url) {
            (Some(service), None) => {
                let p = p.unwrap_or_else(|| "/".to_string());
                if !p.starts_with('/') {
                    self.err(
                        &path.key("path"),
                        format!("expected a path starting with /, got {p:?}"),
                    );
                }
                HttpTarget::Service { service, path: p }
            }
            (None, Some(url)) => {
                if p.is_some() {
                    self.err(
                        &path.key("path"),
                        "`path` goes with `service`; put it in `url`",
                    );
                }
                if !url.starts_with("http://") {
                    self.err(
                        &path.key("url"),
                        format!("expected an http:// URL (TLS is not built in), got {url:?}"),
                    );
                }
                HttpTarget::Url(url)
            }
            (Some(_), Some(_)) => {
                self.err(path, "expected one of `service` and `url`, not both");
                return None;
            }
            (None, None) => {
                self.err(path, "missing field `service` or `url`");
                return None;
            }
        };
        let expect_status = match m.get("expectStatus") {
            None => 200,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|s| (100..=599).contains(&s)) => {
                u16::try_from(n.as_u64().unwrap_or(200)).unwrap_or(200)
            }
            Some(other) => {
                self.err(
                    &path.key("expectStatus"),
                    format!("expected an HTTP status 100..=599, got {}", show(other)),
                );
                200
            }
        };
        let expect_body = match m.get("expectBody") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(other) => {
                self.err(
                    &path.key("expectBody"),
                    format!("expected a string, got {}", kind(other)),
                );
                None
            }
        };
        Some(HttpCheck {
            target,
            expect_status,
            expect_body,
        })
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
apiVersion: slipway.dev/v1alpha1
kind: Delivery
metadata: {name: hello}
spec:
  image:
    repository: 127.0.0.1:5000/hello
  stages:
  - name: staging
    application: hello-staging
    overlay: apps/hello/overlays/staging
    verification:
      timeout: 30s
      http:
      - {service: hello, path: /healthz, expectStatus: 200, expectBody: ok}
      - {url: \"http://127.0.0.1:18081/\"}
      commands:
      - {name: smoke, run: 'curl -fsS \"$SLIPWAY_SERVICE_HELLO_URL/healthz\"'}
  - name: production
    application: hello-production
    overlay: ./apps/hello/overlays/production/
    promotion: manual
";

    fn errors(text: &str) -> Vec<String> {
        parse("deliveries/hello.yaml", text)
            .expect_err("must fail")
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_full_delivery_parses_with_defaults() {
        let d = parse("d.yaml", GOOD).unwrap();
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.name, "hello");
        assert_eq!(
            d.image.name, "hello",
            "default: the repository's last segment"
        );
        assert_eq!(d.stages.len(), 2);
        let s = &d.stages[0];
        assert_eq!(s.promotion, None);
        let v = s.verification.as_ref().unwrap();
        assert_eq!(v.timeout, Duration::from_secs(30));
        assert_eq!(
            v.http[0],
            HttpCheck {
                target: HttpTarget::Service {
                    service: "hello".into(),
                    path: "/healthz".into()
                },
                expect_status: 200,
                expect_body: Some("ok".into()),
            }
        );
        assert_eq!(
            v.http[1].target,
            HttpTarget::Url("http://127.0.0.1:18081/".into())
        );
        assert_eq!(v.commands[0].name, "smoke");
        let p = &d.stages[1];
        assert_eq!(p.overlay, "apps/hello/overlays/production");
        assert_eq!(p.promotion, Some(PromotionPolicy::Manual));
        assert!(p.verification.is_none());
    }

    #[test]
    fn other_kinds_and_non_yaml_files_without_deliveries_are_skipped() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n".to_string() + GOOD;
        assert_eq!(parse("d.yaml", &text).unwrap().len(), 1);
        assert!(parse("x.yaml", "a: [unclosed\n").unwrap().is_empty());
        let broken = errors("kind: Delivery\nspec: [unclosed\n");
        assert_eq!(broken.len(), 1);
        assert!(
            broken[0].starts_with("deliveries/hello.yaml:"),
            "{broken:?}"
        );
    }

    #[test]
    fn unknown_fields_missing_fields_duplicates_and_bad_policies_are_located() {
        let text = "\
apiVersion: slipway.dev/v1alpha1
kind: Delivery
metadata: {name: hello}
spec:
  image: {repository: r/hello}
  stages:
  - name: staging
    application: hello-staging
    overlay: apps/s
    promotion: auto
  - name: staging
    overlay: apps/p
    promotion: sometimes
    verifcation: {}
";
        assert_eq!(
            errors(text),
            [
                "deliveries/hello.yaml:10:5: spec.stages[0].promotion: the first stage takes images \
                 from CI's slipway/deliver step; promotion applies to later stages only",
                "deliveries/hello.yaml:11:5: spec.stages[1].name: duplicate stage name \"staging\"; \
                 stage names must be unique",
                "deliveries/hello.yaml:11:5: spec.stages[1]: missing field `application`",
                "deliveries/hello.yaml:13:5: spec.stages[1].promotion: unknown promotion \"sometimes\"; \
                 expected one of: auto, manual, pull-request",
                "deliveries/hello.yaml:14:5: spec.stages[1].verifcation: unknown field; expected one \
                 of: name, application, overlay, verification, promotion",
            ]
        );
    }

    #[test]
    fn verification_fields_are_checked() {
        let text = "\
apiVersion: slipway.dev/v1alpha1
kind: Delivery
metadata: {name: hello}
spec:
  image: {repository: r/hello:v1}
  stages:
  - name: staging
    application: a
    overlay: o
    verification:
      timeout: soon
      http:
      - {service: hello, url: \"http://x/\"}
      - {service: hello, expectStatus: 999}
      - {url: \"https://x/\"}
      commands:
      - {name: smoke}
";
        assert_eq!(
            errors(text),
            [
                "deliveries/hello.yaml:5:11: spec.image.repository: expected a repository without \
                 tag or digest (the digests come from the stages)",
                "deliveries/hello.yaml:11:7: spec.stages[0].verification.timeout: expected a \
                 duration such as 60s, 2m or 500ms, got \"soon\"",
                "deliveries/hello.yaml:13:10: spec.stages[0].verification.http[0]: expected one of \
                 `service` and `url`, not both",
                "deliveries/hello.yaml:14:26: spec.stages[0].verification.http[1].expectStatus: \
                 expected an HTTP status 100..=599, got 999",
                "deliveries/hello.yaml:15:10: spec.stages[0].verification.http[2].url: expected an \
                 http:// URL (TLS is not built in), got \"https://x/\"",
                "deliveries/hello.yaml:17:10: spec.stages[0].verification.commands[0]: missing \
                 field `run`",
            ]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("5 days"), None);
        assert_eq!(parse_duration(""), None);
    }
}
