//! Slipway's `ImageBuild` (`slipway.dev/v1alpha1`): what goes into an image that Slipway
//! builds itself, without running containers.
//!
//! ```yaml
//! apiVersion: slipway.dev/v1alpha1
//! kind: ImageBuild
//! metadata:
//!   name: web
//! spec:
//!   from: scratch                # or oci:DIR[:TAG], relative to the context
//!   context: .                   # where copy sources are read, relative to this file
//!   copy:
//!   - src: target/release/web    # or a list of sources; dst then ends with /
//!     dst: /bin/web
//!     mode: 0755                 # optional: files 0644 (0755 if executable), dirs 0755
//!     owner: "1000:1000"         # optional, numeric uid[:gid]; default 0:0
//!   entrypoint: ["/bin/web"]
//!   cmd: ["--port", "8080"]
//!   env:                         # a list of {name, value} or a mapping
//!   - {name: RUST_LOG, value: info}
//!   workdir: /
//!   user: "1000:1000"
//!   ports: [8080, "9090/udp"]
//!   labels: {team: web}
//!   platform: {os: linux, architecture: amd64}
//! ```
//!
//! There is no Kubernetes or Docker kind for an image build, so this is one of the few kinds
//! of Slipway's own. [`ImageBuild::from_object`] decodes and checks it, reporting every
//! problem with `file:line:column: field: message`; the parsing helpers ([`parse_owner`],
//! [`parse_port`], [`parse_mode`]) are shared with the Dockerfile reader so both front ends
//! accept exactly the same values.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::diagnostic::Diagnostics;
use crate::kinds::{decode_lenient, IntOrString, ObjectMeta};
use crate::location::FieldPath;
use crate::object::{describe, Object};

/// The `apiVersion` of [`ImageBuild`].
pub const IMAGE_BUILD_API_VERSION: &str = "slipway.dev/v1alpha1";
/// The `kind` of [`ImageBuild`].
pub const IMAGE_BUILD_KIND: &str = "ImageBuild";

/// An `ImageBuild`: a base image plus files and settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuild {
    /// `slipway.dev/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// `ImageBuild`.
    #[serde(default)]
    pub kind: String,
    /// The name is the image's default name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to build.
    #[serde(default)]
    pub spec: ImageBuildSpec,
}

/// `ImageBuild.spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuildSpec {
    /// `scratch` (the default) or `oci:DIR[:TAG]`, an OCI image layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The directory copy sources are read from, relative to the file (default: the file's
    /// directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Files and directories to copy, in order (a later copy to the same path wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copy: Vec<ImageCopy>,
    /// The program and its first arguments (exec form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or the command, without an entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Environment variables, in order.
    #[serde(default, skip_serializing_if = "ImageEnv::is_empty")]
    pub env: ImageEnv,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid` the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Exposed ports: `8080`, `"8080/tcp"`, `"53/udp"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<IntOrString>,
    /// Image labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The platform the image is for (default: the base image's, else linux/amd64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<ImagePlatform>,
}

/// The fields `spec` may have; anything else is a typo worth an error.
pub const IMAGE_BUILD_SPEC_FIELDS: &[&str] = &[
    "from",
    "context",
    "copy",
    "entrypoint",
    "cmd",
    "env",
    "workdir",
    "user",
    "ports",
    "labels",
    "platform",
];

const COPY_FIELDS: &[&str] = &["src", "dst", "mode", "owner"];
const PLATFORM_FIELDS: &[&str] = &["os", "architecture", "variant"];

/// `spec.copy[]`: sources in the context and where they go in the image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageCopy {
    /// One path or several, relative to the context. A directory's contents are copied.
    #[serde(default)]
    pub src: Sources,
    /// The destination: a file path, or a directory when it ends with `/` (required with
    /// several sources). Relative destinations are relative to `workdir`.
    #[serde(default)]
    pub dst: String,
    /// Permission bits for everything copied (`0755`, `"755"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// Numeric `uid[:gid]` for everything copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One source path or a list of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources(pub Vec<String>);

impl Serialize for Sources {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sources;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path or a sequence of paths")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Sources, E> {
                Ok(Sources(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sources, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Sources(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Permission bits. In YAML, `0755` is octal (as Kubernetes reads `defaultMode`) and a
/// string is always octal (`"755"`); a bare `755` is refused, since it is decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(pub u32);

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mode such as 0755 or \"644\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FileMode, E> {
                mode_from_number(v).map(FileMode).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FileMode, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "expected a mode such as 0755 or \"644\", got number {v}"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileMode, E> {
                parse_mode(v).map(FileMode).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A mode written as a YAML number (already read as octal when it had a leading zero).
fn mode_from_number(v: u64) -> Result<u32, String> {
    let digits = v.to_string();
    if v > 0o777 && digits.len() == 3 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!(
            "mode {v} is a decimal number (octal {v:o}); write it as 0{v} or \"{v}\""
        ));
    }
    match u32::try_from(v) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "expected a mode between 0000 and 07777, got number {v}"
        )),
    }
}

/// Parse a mode written as octal text: `755`, `0755`, `0o755`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "expected an octal mode such as 755 or 0644, got {s:?}"
        )),
    }
}

/// Parse a numeric owner `uid[:gid]`; a missing gid is the uid, as Docker's `--chown` does.
/// Names are refused: resolving them needs the image's `/etc/passwd`, which a build from
/// scratch does not have.
pub fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let num = |x: &str| -> Result<u32, String> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "expected a numeric owner uid[:gid] such as 1000:1000, got {s:?} (names need the image's /etc/passwd: use numbers)"
            ));
        }
        x.parse()
            .map_err(|_| format!("expected uid and gid between 0 and {}, got {s:?}", u32::MAX))
    };
    let uid = num(u)?;
    let gid = match g {
        Some(g) => num(g)?,
        None => uid,
    };
    Ok((uid, gid))
}

/// A transport protocol of an exposed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortProtocol {
    /// `tcp`, the default.
    Tcp,
    /// `udp`.
    Udp,
    /// `sctp`.
    Sctp,
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
            PortProtocol::Sctp => "sctp",
        })
    }
}

/// Parse an exposed port: `8080`, `8080/tcp`, `53/udp`.
pub fn parse_port(s: &str) -> Result<(u16, PortProtocol), String> {
    let (num, proto) = match s.split_once('/') {
        Some((n, p)) => (n, p),
        None => (s, "tcp"),
    };
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => PortProtocol::Tcp,
        "udp" => PortProtocol::Udp,
        "sctp" => PortProtocol::Sctp,
        _ => {
            return Err(format!(
                "expected a port such as 8080 or 53/udp (protocol tcp, udp or sctp), got {s:?}"
            ))
        }
    };
    match num.parse::<u16>() {
        Ok(n) if n > 0 && num.bytes().all(|b| b.is_ascii_digit()) => Ok((n, proto)),
        _ => Err(format!(
            "expected a port number between 1 and 65535 such as 8080 or 53/udp, got {s:?}"
        )),
    }
}

/// `spec.env`: a list of `{name, value}` or a mapping, kept in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageEnv(pub Vec<(String, String)>);

impl ImageEnv {
    /// True when there are no variables.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ImageEnv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Pair<'a> {
            name: &'a str,
            value: &'a str,
        }
        let pairs: Vec<Pair<'_>> = self
            .0
            .iter()
            .map(|(name, value)| Pair { name, value })
            .collect();
        pairs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ImageEnv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Pair {
            name: String,
            #[serde(default)]
            value: EnvValue,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ImageEnv;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence of {name, value} or a mapping")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ImageEnv, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<Pair>()? {
                    out.push((p.name, p.value.0));
                }
                Ok(ImageEnv(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ImageEnv, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, EnvValue>()? {
                    out.push((k, v.0));
                }
                Ok(ImageEnv(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// An environment value: strings, and numbers or booleans as their text (`PORT: 8080`).
#[derive(Default)]
struct EnvValue(String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(EnvValue(s)),
            Value::Number(n) => Ok(EnvValue(n.to_string())),
            Value::Bool(b) => Ok(EnvValue(b.to_string())),
            Value::Null => Ok(EnvValue(String::new())),
            other => Err(de::Error::custom(format!(
                "expected a string, got {}",
                describe(&other)
            ))),
        }
    }
}

/// `spec.platform`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePlatform {
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `amd64`, `arm64`, ...
    #[serde(default)]
    pub architecture: String,
    /// `v7`, `v8`, ... for ARM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// What `spec.from` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSpec {
    /// An empty file system.
    Scratch,
    /// An OCI image layout directory and an optional tag (or digest) in it.
    Layout {
        /// The directory, as written.
        dir: String,
        /// The reference inside the layout.
        reference: Option<String>,
    },
}

/// Parse a base reference: `scratch` or `oci:DIR[:TAG]` (the tag starts after the first `:`
/// following the directory, as skopeo reads `oci:` references). Registry references are
/// refused for now, with a message that says what to do instead.
pub fn parse_base(s: &str) -> Result<BaseSpec, String> {
    let s = s.trim();
    if s == "scratch" {
        return Ok(BaseSpec::Scratch);
    }
    if let Some(rest) = s.strip_prefix("oci:") {
        let (dir, reference) = match rest.split_once(':') {
            Some((d, r)) => (d, Some(r.to_string()).filter(|r| !r.is_empty())),
            None => (rest, None),
        };
        if dir.is_empty() {
            return Err(format!(
                "expected oci:DIR[:TAG] with a directory, got {s:?}"
            ));
        }
        return Ok(BaseSpec::Layout {
            dir: dir.to_string(),
            reference,
        });
    }
    Err(format!(
        "base image {s:?} is in a registry, and registry base images arrive with Slipway's registry client; use scratch or an OCI image layout (oci:DIR[:TAG], for example made with `skopeo copy docker://{s} oci:base:latest`)"
    ))
}

impl ImageBuild {
    /// Decode and check an `ImageBuild` object, reporting every problem (sorted by position).
    pub fn from_object(obj: &Object) -> Result<ImageBuild, Diagnostics> {
        let decoded = decode_lenient::<ImageBuild>(obj);
        let mut out = decoded.errors;
        let ill_typed: Vec<FieldPath> = out.iter().filter_map(|d| d.field.clone()).collect();
        // The checks report through a closure that borrows `out`; the block ends it.
        {
            let mut report = |at: FieldPath, msg: String| {
                if ill_typed.iter().any(|t| at.0.starts_with(&t.0)) {
                    return;
                }
                let d = obj.diagnostic(at, msg);
                if !out.contains(&d) {
                    out.push(d);
                }
            };
            if obj.api_version() != IMAGE_BUILD_API_VERSION || obj.kind() != IMAGE_BUILD_KIND {
                report(
                    FieldPath::root().key("kind"),
                    format!(
                        "expected apiVersion {IMAGE_BUILD_API_VERSION} and kind {IMAGE_BUILD_KIND}, got {} {}",
                        obj.api_version(),
                        obj.kind()
                    ),
                );
            }
            unknown_fields(
                obj,
                &FieldPath::root().key("spec"),
                IMAGE_BUILD_SPEC_FIELDS,
                &mut report,
            );
            if let Some(copies) = obj.value.pointer("/spec/copy").and_then(Value::as_array) {
                for i in 0..copies.len() {
                    let at = FieldPath::root().key("spec").key("copy").index(i);
                    unknown_fields(obj, &at, COPY_FIELDS, &mut report);
                }
            }
            unknown_fields(
                obj,
                &FieldPath::root().key("spec").key("platform"),
                PLATFORM_FIELDS,
                &mut report,
            );
            if let Some(b) = &decoded.value {
                check(b, &mut report);
            }
        }
        match decoded.value {
            Some(b) if out.is_empty() => Ok(b),
            _ => {
                out.sort_by_key(|d| d.location.as_ref().and_then(|l| l.pos));
                Err(Diagnostics(out))
            }
        }
    }
}

fn unknown_fields(
    obj: &Object,
    at: &FieldPath,
    known: &[&str],
    report: &mut impl FnMut(FieldPath, String),
) {
    let Some(map) = obj
        .value
        .pointer(&at.to_pointer())
        .and_then(Value::as_object)
    else {
        return;
    };
    for k in map.keys() {
        if !known.contains(&k.as_str()) {
            report(
                at.key(k.clone()),
                format!("unknown field {k:?} (known: {})", known.join(", ")),
            );
        }
    }
}

fn check(b: &ImageBuild, report: &mut impl FnMut(FieldPath, String)) {
    let meta = FieldPath::root().key("metadata");
    if b.metadata.name.is_empty() {
        report(meta.key("name"), "expected a name, got nothing".into());
    }
    let spec = FieldPath::root().key("spec");
    let s = &b.spec;
    if let Some(from) = &s.from {
        if let Err(e) = parse_base(from) {
            report(spec.key("from"), e);
        }
    }
    for (i, c) in s.copy.iter().enumerate() {
        let at = spec.key("copy").index(i);
        if c.src.0.is_empty() {
            report(at.key("src"), "expected a path, got nothing".into());
        }
        for (j, src) in c.src.0.iter().enumerate() {
            let src_at = if c.src.0.len() == 1 {
                at.key("src")
            } else {
                at.key("src").index(j)
            };
            if src.trim().is_empty() {
                report(src_at, "expected a path, got an empty string".into());
            }
        }
        if c.dst.is_empty() {
            report(at.key("dst"), "expected a path, got nothing".into());
        } else if c.src.0.len() > 1 && !c.dst.ends_with('/') {
            report(
                at.key("dst"),
                format!(
                    "with several sources the destination is a directory and must end with /, got {:?}",
                    c.dst
                ),
            );
        }
        if let Some(o) = &c.owner {
            if let Err(e) = parse_owner(o) {
                report(at.key("owner"), e);
            }
        }
    }
    for (i, (name, _)) in s.env.0.iter().enumerate() {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            report(
                spec.key("env").index(i),
                format!("expected a variable name without = or NUL, got {name:?}"),
            );
        }
    }
    for (i, p) in s.ports.iter().enumerate() {
        if let Err(e) = parse_port(&p.to_string()) {
            report(spec.key("ports").index(i), e);
        }
    }
    for k in s.labels.keys() {
        if k.is_empty() {
            report(
                spec.key("labels"),
                "expected label keys, got an empty key".into(),
            );
        }
    }
    if let Some(w) = &s.workdir {
        if w.is_empty() {
            report(
                spec.key("workdir"),
                "expected a path, got an empty string".into(),
            );
        }
    }
    if let Some(p) = &s.platform {
        let at = spec.key("platform");
        if p.os.is_empty() {
            report(
                at.key("os"),
                "expected an operating system such as linux, got nothing".into(),
            );
        }
        if p.architecture.is_empty() {
            report(
                at.key("architecture"),
                "expected an architecture such as amd64 or arm64, got nothing".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::load_objects;

    fn read(yaml: &str) -> Result<ImageBuild, Vec<String>> {
        let obj = load_objects("build.yaml", yaml)
            .expect("loads")
            .into_iter()
            .next()
            .expect("one object");
        ImageBuild::from_object(&obj).map_err(|d| d.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_full_spec_reads_with_both_env_forms() {
        let b = read(concat!(
            "apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: web}\nspec:\n",
            "  from: oci:base:v1\n  copy:\n  - {src: web, dst: /bin/web, mode: 0755, owner: '1000'}\n",
            "  - {src: [a, b], dst: /srv/, mode: '644'}\n",
            "  entrypoint: [/bin/web]\n  env: {PORT: 8080, MODE: prod}\n  ports: [8080, 53/udp]\n",
            "  platform: {os: linux, architecture: arm64}\n",
        ))
        .expect("valid");
        assert_eq!(b.spec.copy[0].mode, Some(FileMode(0o755)));
        assert_eq!(b.spec.copy[1].mode, Some(FileMode(0o644)));
        assert_eq!(b.spec.copy[1].src.0, ["a", "b"]);
        assert_eq!(
            b.spec.env.0,
            [
                ("PORT".into(), "8080".into()),
                ("MODE".into(), "prod".into())
            ]
        );
        let list = read(concat!(
            "apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: web}\nspec:\n",
            "  env:\n  - {name: PORT, value: '8080'}\n  - {name: MODE, value: prod}\n",
        ))
        .expect("valid");
        assert_eq!(list.spec.env, b.spec.env);
        assert_eq!(
            parse_base("oci:base:v1"),
            Ok(BaseSpec::Layout {
                dir: "base".into(),
                reference: Some("v1".into())
            })
        );
    }

    #[test]
    fn every_problem_is_reported_at_its_line() {
        let errs = read(concat!(
            "apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: web}\nspec:\n",
            "  from: alpine:3\n",
            "  copy:\n  - src: [a, b]\n    dst: /srv\n    owner: web\n    mode: 755\n",
            "  ports: [70000]\n",
            "  entrypont: [/bin/web]\n",
        ))
        .expect_err("invalid");
        assert_eq!(errs.len(), 6, "{errs:#?}");
        assert!(
            errs[0]
                .starts_with("build.yaml:5:3: spec.from: base image \"alpine:3\" is in a registry"),
            "{}",
            errs[0]
        );
        assert_eq!(errs[1], "build.yaml:8:5: spec.copy[0].dst: with several sources the destination is a directory and must end with /, got \"/srv\"");
        assert!(
            errs[2].starts_with("build.yaml:9:5: spec.copy[0].owner: expected a numeric owner"),
            "{}",
            errs[2]
        );
        assert_eq!(errs[3], "build.yaml:10:5: spec.copy[0].mode: mode 755 is a decimal number (octal 1363); write it as 0755 or \"755\"");
        assert_eq!(errs[4], "build.yaml:11:11: spec.ports[0]: expected a port number between 1 and 65535 such as 8080 or 53/udp, got \"70000\"");
        assert!(
            errs[5].starts_with("build.yaml:12:3: spec.entrypont: unknown field \"entrypont\""),
            "{}",
            errs[5]
        );
    }

    #[test]
    fn helpers_accept_what_docker_accepts() {
        assert_eq!(parse_owner("10"), Ok((10, 10)));
        assert_eq!(parse_owner("10:20"), Ok((10, 20)));
        assert!(parse_owner("root").is_err());
        assert_eq!(parse_port("53/udp"), Ok((53, PortProtocol::Udp)));
        assert_eq!(parse_port("8080"), Ok((8080, PortProtocol::Tcp)));
        assert!(parse_port("0").is_err());
        assert_eq!(parse_mode("0o755"), Ok(0o755));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        assert!(parse_mode("8").is_err());
        assert!(parse_base("").is_err());
    }
}
