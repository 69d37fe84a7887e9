//! The Kustomize build: accumulate resources, components and generators, run the built-in
//! transformers in Kustomize's order, then add content hashes and fix name references.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use slipway_model::{
    load_objects, parse_documents, Diagnostic, FieldPath, Location, Object, Origin,
};

use super::config::{Kustomization, Patch};
use super::generators::{self, GenKind};
use super::resource::Resource;
use super::{json6902, nameref, select, smp, sort, transform};
use crate::files::{normalize, Files};
use crate::RenderError;

/// The names a kustomization file may have, in Kustomize's order of preference.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Find the kustomization file of a directory: `Ok(None)` when there is none, an error when
/// there are several.
pub fn find_kustomization(files: &dyn Files, dir: &Path) -> Result<Option<PathBuf>, RenderError> {
    Ok(locate_kustomization(files, dir)?.map(|(path, _)| path))
}

/// The kustomization file of a directory and its bytes, read once.
fn locate_kustomization(
    files: &dyn Files,
    dir: &Path,
) -> Result<Option<(PathBuf, Vec<u8>)>, RenderError> {
    let mut found: Vec<(PathBuf, Vec<u8>)> = KUSTOMIZATION_FILES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| !files.is_dir(p))
        .filter_map(|p| files.read(&p).ok().flatten().map(|bytes| (p, bytes)))
        .collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(RenderError::at(
            Location::file(files.display(dir)),
            format!(
                "found multiple kustomization files ({}); keep one",
                found
                    .iter()
                    .filter_map(|(p, _)| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// A parsed kustomization with the positions of its fields.
struct Loaded {
    k: Kustomization,
    origin: Origin,
}

impl Loaded {
    fn err(&self, field: FieldPath, msg: impl Into<String>) -> RenderError {
        RenderError::Input(
            Diagnostic::new(msg)
                .field(field.clone())
                .at(self.origin.locate(&field)),
        )
    }
}

/// Runs one build over a file tree.
pub struct Build<'f> {
    files: &'f dyn Files,
    stack: Vec<PathBuf>,
}

impl<'f> Build<'f> {
    /// A build reading from `files`.
    pub fn new(files: &'f dyn Files) -> Self {
        Build {
            files,
            stack: Vec::new(),
        }
    }

    /// Build the kustomization in `dir` into the final, ordered objects.
    pub fn run(&mut self, dir: &Path) -> Result<Vec<Object>, RenderError> {
        let loaded = self.load(dir, None)?;
        self.build_loaded(dir, loaded)
    }

    /// Like [`Build::run`], but `Ok(None)` when `dir` has no kustomization file (so a caller
    /// can fall back to a plain directory without looking for the file twice).
    pub fn run_if_kustomization(&mut self, dir: &Path) -> Result<Option<Vec<Object>>, RenderError> {
        match locate_kustomization(self.files, dir)? {
            None => Ok(None),
            Some((file, bytes)) => {
                let loaded = self.parse_kustomization(&file, bytes)?;
                self.build_loaded(dir, loaded).map(Some)
            }
        }
    }

    fn build_loaded(&mut self, dir: &Path, loaded: Loaded) -> Result<Vec<Object>, RenderError> {
        let mut acc = Vec::new();
        self.accumulate(dir, &loaded, &mut acc)?;
        for r in acc.iter_mut().filter(|r| r.needs_hash) {
            let hash = generators::content_hash(&r.obj);
            let name = format!("{}-{hash}", r.obj.name());
            r.rename(&name);
        }
        nameref::fix_references(&mut acc);
        let mut objs: Vec<Object> = acc.into_iter().map(|r| r.obj).collect();
        let order = loaded
            .k
            .sort_options
            .as_ref()
            .and_then(|s| s.order.as_deref())
            .unwrap_or("legacy");
        match order {
            "fifo" => {}
            "legacy" => {
                let legacy = loaded
                    .k
                    .sort_options
                    .as_ref()
                    .and_then(|s| s.legacy_sort_options.as_ref());
                sort::legacy(
                    &mut objs,
                    legacy
                        .map(|l| l.order_first.as_slice())
                        .filter(|l| !l.is_empty()),
                    legacy
                        .map(|l| l.order_last.as_slice())
                        .filter(|l| !l.is_empty()),
                );
            }
            other => {
                return Err(loaded.err(
                    FieldPath::parse("sortOptions.order"),
                    format!("expected fifo or legacy, got {other:?}"),
                ))
            }
        }
        Ok(objs)
    }

    fn load(
        &self,
        dir: &Path,
        referenced_from: Option<(&Loaded, FieldPath)>,
    ) -> Result<Loaded, RenderError> {
        let Some((file, bytes)) = locate_kustomization(self.files, dir)? else {
            let msg = format!(
                "no kustomization.yaml, kustomization.yml or Kustomization in {}",
                self.files.display(dir)
            );
            return Err(match referenced_from {
                Some((parent, field)) => parent.err(field, msg),
                None => RenderError::Input(Diagnostic::new(msg)),
            });
        };
        self.parse_kustomization(&file, bytes)
    }

    fn parse_kustomization(&self, file: &Path, bytes: Vec<u8>) -> Result<Loaded, RenderError> {
        let shown = self.files.display(file);
        let text = String::from_utf8(bytes)
            .map_err(|_| RenderError::at(Location::file(shown.clone()), "not UTF-8"))?;
        let mut docs = parse_documents(&shown, &text).map_err(|e| RenderError::Input(e.into()))?;
        let doc = match docs.len() {
            0 => slipway_model::yaml::ParsedDoc {
                value: Value::Object(Default::default()),
                spans: Default::default(),
                start: slipway_model::Pos { line: 1, column: 1 },
            },
            1 => docs.remove(0),
            _ => {
                return Err(RenderError::at(
                    Location::file(shown),
                    "a kustomization file holds one document",
                ))
            }
        };
        let origin = Origin {
            file: Arc::from(shown.as_str()),
            start: doc.start,
            spans: Arc::new(doc.spans),
            prefix: FieldPath::root(),
        };
        let mut value = doc.value;
        stringify_string_maps(&mut value);
        let k: Kustomization = serde_path_to_error::deserialize(&value).map_err(|e| {
            let field = FieldPath::parse(&e.path().to_string().replace("?", ""));
            let msg = e.inner().to_string();
            let msg = msg.split(" at line").next().unwrap_or(&msg).to_string();
            RenderError::Input(
                Diagnostic::new(msg)
                    .field(field.clone())
                    .at(origin.locate(&field)),
            )
        })?;
        Ok(Loaded { k, origin })
    }

    fn accumulate(
        &mut self,
        dir: &Path,
        kz: &Loaded,
        acc: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        self.stack.push(dir.to_path_buf());
        let result = self.accumulate_inner(dir, kz, acc);
        self.stack.pop();
        result
    }

    /// Refuse to enter a kustomization that is already being built further up.
    fn check_cycle(&self, kz: &Loaded, field: &FieldPath, path: &Path) -> Result<(), RenderError> {
        let Some(start) = self.stack.iter().position(|d| d == path) else {
            return Ok(());
        };
        let chain: Vec<String> = self.stack[start..]
            .iter()
            .chain(std::iter::once(&path.to_path_buf()))
            .map(|d| self.files.display(d))
            .collect();
        Err(kz.err(
            field.clone(),
            format!("cycle between kustomizations: {}", chain.join(" -> ")),
        ))
    }

    fn accumulate_inner(
        &mut self,
        dir: &Path,
        kz: &Loaded,
        acc: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let k = &kz.k;
        let unsupported = [
            ("vars", &k.vars),
            ("replacements", &k.replacements),
            ("transformers", &k.transformers),
            ("generators", &k.generators),
            ("validators", &k.validators),
            ("helmCharts", &k.helm_charts),
            ("helmGlobals", &k.helm_globals),
            ("openapi", &k.openapi),
            ("configurations", &k.configurations),
            ("crds", &k.crds),
        ];
        for (name, v) in unsupported {
            if v.as_ref()
                .is_some_and(|v| !v.is_null() && v != &Value::Array(vec![]))
            {
                return Err(kz.err(
                    FieldPath::root().key(name),
                    format!("`{name}` is not supported by Slipway yet"),
                ));
            }
        }
        let entries = k
            .resources
            .iter()
            .enumerate()
            .map(|(i, e)| (FieldPath::root().key("resources").index(i), e))
            .chain(
                k.bases
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (FieldPath::root().key("bases").index(i), e)),
            );
        for (field, entry) in entries {
            self.add_resource(dir, kz, field, entry, acc)?;
        }
        for (i, entry) in k.components.iter().enumerate() {
            let field = FieldPath::root().key("components").index(i);
            let path = self.resolve_dir(dir, kz, &field, entry)?;
            self.check_cycle(kz, &field, &path)?;
            let comp = self.load(&path, Some((kz, field.clone())))?;
            if comp.k.kind.as_deref() != Some("Component") {
                return Err(kz.err(
                    field,
                    format!(
                        "{entry:?} is a {}, expected a Component",
                        comp.k.kind.as_deref().unwrap_or("Kustomization")
                    ),
                ));
            }
            self.accumulate(&path, &comp, acc)?;
        }
        self.generate(dir, kz, acc)?;
        self.transform(dir, kz, acc)?;
        let layer = self.files.display(dir);
        for r in acc.iter_mut() {
            r.layers.push(layer.clone());
        }
        Ok(())
    }

    fn resolve_dir(
        &self,
        dir: &Path,
        kz: &Loaded,
        field: &FieldPath,
        entry: &str,
    ) -> Result<PathBuf, RenderError> {
        if entry.contains("://") || entry.starts_with("github.com/") || entry.starts_with("git@") {
            return Err(kz.err(
                field.clone(),
                format!(
                    "remote resource {entry:?} is not supported: vendor it into the repository"
                ),
            ));
        }
        normalize(&dir.join(entry)).ok_or_else(|| {
            kz.err(
                field.clone(),
                format!("{entry:?} climbs above the repository root"),
            )
        })
    }

    fn add_resource(
        &mut self,
        dir: &Path,
        kz: &Loaded,
        field: FieldPath,
        entry: &str,
        acc: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let path = self.resolve_dir(dir, kz, &field, entry)?;
        let mut new = Vec::new();
        if self.files.is_dir(&path) {
            self.check_cycle(kz, &field, &path)?;
            let sub = self.load(&path, Some((kz, field.clone())))?;
            if sub.k.kind.as_deref() == Some("Component") {
                return Err(kz.err(
                    field,
                    format!("{entry:?} is a Component: list it under `components`"),
                ));
            }
            self.accumulate(&path, &sub, &mut new)?;
        } else {
            if !path.starts_with(dir) {
                return Err(kz.err(
                    field,
                    format!(
                        "security: file {entry:?} is not in or below {}",
                        self.files.display(dir)
                    ),
                ));
            }
            let bytes = match self.files.read(&path) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Err(kz.err(
                        field,
                        format!(
                            "resource {entry:?} not found ({})",
                            self.files.display(&path)
                        ),
                    ))
                }
                Err(e) => return Err(kz.err(field, format!("cannot read {entry:?}: {e}"))),
            };
            let shown = self.files.display(&path);
            let text = String::from_utf8(bytes)
                .map_err(|_| RenderError::at(Location::file(shown.clone()), "not UTF-8"))?;
            for o in load_objects(&shown, &text).map_err(RenderError::from)? {
                new.push(Resource::new(o));
            }
        }
        for r in new {
            push_unique(acc, r)?;
        }
        Ok(())
    }

    fn generate(
        &self,
        dir: &Path,
        kz: &Loaded,
        acc: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let gens =
            kz.k.config_map_generator
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    (
                        GenKind::ConfigMap,
                        FieldPath::root().key("configMapGenerator").index(i),
                        g,
                    )
                })
                .chain(kz.k.secret_generator.iter().enumerate().map(|(i, g)| {
                    (
                        GenKind::Secret,
                        FieldPath::root().key("secretGenerator").index(i),
                        g,
                    )
                }));
        for (kind, field, g) in gens {
            let read = |rel: &str| self.read_local(dir, rel);
            let new = generators::generate(kind, g, kz.k.generator_options.as_ref(), &read)
                .map_err(|m| kz.err(field.clone(), m))?;
            let behavior = g.behavior.as_deref().unwrap_or("create");
            let existing = acc.iter_mut().find(|r| {
                r.obj.kind() == new.obj.kind()
                    && r.has_any_name(new.obj.name())
                    && (new.obj.namespace().is_empty() || r.has_any_namespace(new.obj.namespace()))
            });
            match (behavior, existing) {
                ("create", _) => {
                    push_unique(acc, new).map_err(|e| kz.err(field.clone(), e.to_string()))?
                }
                ("merge", Some(r)) => generators::merge_into(r, &new),
                ("replace", Some(r)) => generators::replace_into(r, &new),
                ("merge" | "replace", None) => {
                    return Err(kz.err(
                        field.key("behavior"),
                        format!(
                            "{behavior} needs an existing {} named {:?} from a base, found none",
                            new.obj.kind(),
                            new.obj.name()
                        ),
                    ))
                }
                (other, _) => {
                    return Err(kz.err(
                        field.key("behavior"),
                        format!("expected create, merge or replace, got {other:?}"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Read a file named by a kustomization, which must stay inside the kustomization's
    /// directory (Kustomize's default load restriction).
    fn read_local(&self, dir: &Path, rel: &str) -> Result<Vec<u8>, String> {
        let path = normalize(&dir.join(rel))
            .filter(|p| p.starts_with(dir))
            .ok_or_else(|| {
                format!(
                    "security: file {rel:?} is not in or below {}",
                    self.files.display(dir)
                )
            })?;
        match self.files.read(&path) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(format!(
                "file {rel:?} not found ({})",
                self.files.display(&path)
            )),
            Err(e) => Err(format!("cannot read {rel:?}: {e}")),
        }
    }

    fn transform(
        &self,
        dir: &Path,
        kz: &Loaded,
        acc: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let k = &kz.k;
        for (i, entry) in k.patches_strategic_merge.iter().enumerate() {
            let field = FieldPath::root().key("patchesStrategicMerge").index(i);
            let (text, name) = self.patch_text(dir, kz, &field, None, Some(entry), true)?;
            for doc in parse_documents(&name, &text).map_err(|e| RenderError::Input(e.into()))? {
                self.apply_smp_by_id(kz, &field, &doc.value, acc)?;
            }
        }
        for (i, p) in k.patches.iter().enumerate() {
            let field = FieldPath::root().key("patches").index(i);
            self.apply_patch(dir, kz, &field, p, acc, false)?;
        }
        if let Some(ns) = k.namespace.as_deref().filter(|n| !n.is_empty()) {
            transform::namespace(acc, ns);
        }
        transform::prefix_suffix(
            acc,
            k.name_prefix.as_deref().unwrap_or(""),
            k.name_suffix.as_deref().unwrap_or(""),
        );
        transform::common_labels(acc, &k.common_labels);
        for l in &k.labels {
            transform::labels(acc, l);
        }
        transform::annotations(acc, &k.common_annotations);
        for (i, p) in k.patches_json6902.iter().enumerate() {
            let field = FieldPath::root().key("patchesJson6902").index(i);
            self.apply_patch(dir, kz, &field, p, acc, true)?;
        }
        for (i, rep) in k.replicas.iter().enumerate() {
            let field = FieldPath::root().key("replicas").index(i);
            let matched: Vec<&Resource> =
                acc.iter().filter(|r| r.has_any_name(&rep.name)).collect();
            if matched.is_empty() {
                return Err(kz.err(
                    field.key("name"),
                    format!("no resource named {:?} to set replicas on", rep.name),
                ));
            }
            let scalable = |r: &&Resource| {
                matches!(
                    r.obj.kind(),
                    "Deployment" | "ReplicationController" | "ReplicaSet" | "StatefulSet"
                )
            };
            if !matched.iter().any(scalable) {
                return Err(kz.err(
                    field.key("name"),
                    format!("{} has no replicas field Kustomize knows (Deployment, ReplicationController, ReplicaSet, StatefulSet)", matched[0].id()),
                ));
            }
            transform::replicas(acc, rep);
        }
        transform::images(acc, &k.images);
        Ok(())
    }

    /// The text of a patch, inline or from a file; returns the text and a display name.
    fn patch_text(
        &self,
        dir: &Path,
        kz: &Loaded,
        field: &FieldPath,
        path: Option<&str>,
        inline: Option<&str>,
        guess: bool,
    ) -> Result<(String, String), RenderError> {
        let from_file = |rel: &str, f: FieldPath| -> Result<(String, String), RenderError> {
            let bytes = self
                .read_local(dir, rel)
                .map_err(|m| kz.err(f.clone(), m))?;
            let text =
                String::from_utf8(bytes).map_err(|_| kz.err(f, "patch file is not UTF-8"))?;
            Ok((text, self.files.display(&dir.join(rel))))
        };
        match (path, inline) {
            (Some(p), None) => from_file(p, field.key("path")),
            // patchesStrategicMerge entries are either a file name or an inline patch.
            (None, Some(text))
                if guess && !text.contains('\n') && !text.trim_start().starts_with('{') =>
            {
                from_file(text.trim(), field.clone())
            }
            (None, Some(text)) => Ok((text.to_string(), format!("{} ({field})", kz.origin.file))),
            (Some(_), Some(_)) => {
                Err(kz.err(field.clone(), "give either `path` or `patch`, not both"))
            }
            (None, None) => Err(kz.err(field.clone(), "a patch needs `path` or `patch`")),
        }
    }

    fn apply_patch(
        &self,
        dir: &Path,
        kz: &Loaded,
        field: &FieldPath,
        p: &Patch,
        acc: &mut Vec<Resource>,
        json_only: bool,
    ) -> Result<(), RenderError> {
        let (text, name) =
            self.patch_text(dir, kz, field, p.path.as_deref(), p.patch.as_deref(), false)?;
        let docs = parse_documents(&name, &text).map_err(|e| RenderError::Input(e.into()))?;
        let is_json = docs.len() == 1 && docs[0].value.is_array();
        if json_only && !is_json {
            return Err(kz.err(
                field.clone(),
                "expected a JSON 6902 patch (a list of operations)",
            ));
        }
        if is_json {
            let Some(target) = &p.target else {
                return Err(kz.err(field.clone(), "a JSON 6902 patch needs a `target`"));
            };
            for r in acc.iter_mut() {
                if !select::selects(target, r).map_err(|m| kz.err(field.key("target"), m))? {
                    continue;
                }
                let mut v = r.obj.value.clone();
                json6902::apply(&mut v, &docs[0].value)
                    .map_err(|e| kz.err(field.clone(), format!("applying to {}: {e}", r.id())))?;
                apply_renames(r, v);
            }
            return Ok(());
        }
        for doc in &docs {
            match &p.target {
                Some(target) => {
                    let patch = smp::without_identity(&doc.value);
                    let mut deleted = Vec::new();
                    for (idx, r) in acc.iter_mut().enumerate() {
                        if !select::selects(target, r)
                            .map_err(|m| kz.err(field.key("target"), m))?
                        {
                            continue;
                        }
                        let (kind, group) = (r.obj.kind().to_string(), r.obj.group().to_string());
                        let mut v = r.obj.value.clone();
                        if smp::apply(&mut v, &strip_type_meta(&patch), &kind, &group)
                            == smp::Outcome::Delete
                        {
                            deleted.push(idx);
                        } else {
                            r.obj.value = v;
                        }
                    }
                    for idx in deleted.into_iter().rev() {
                        acc.remove(idx);
                    }
                }
                None => self.apply_smp_by_id(kz, field, &doc.value, acc)?,
            }
        }
        Ok(())
    }

    fn apply_smp_by_id(
        &self,
        kz: &Loaded,
        field: &FieldPath,
        patch: &Value,
        acc: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let probe = Object::new(patch.clone());
        let (kind, name, ns) = (
            probe.kind().to_string(),
            probe.name().to_string(),
            probe.namespace().to_string(),
        );
        let (pg, pv) = slipway_model::split_api_version(probe.api_version());
        let hits: Vec<usize> = acc
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                let (g, v) = slipway_model::split_api_version(r.obj.api_version());
                r.obj.kind() == kind
                    && (probe.api_version().is_empty() || (g == pg && v == pv))
                    && r.has_any_name(&name)
                    && (ns.is_empty() || r.has_any_namespace(&ns))
            })
            .map(|(i, _)| i)
            .collect();
        let idx = match hits.as_slice() {
            [i] => *i,
            [] => {
                return Err(kz.err(
                    field.clone(),
                    format!("patch target {kind} {name:?} matches no resource (a patch without `target` must name an existing object by apiVersion, kind and metadata.name)"),
                ))
            }
            _ => return Err(kz.err(field.clone(), format!("patch target {kind} {name:?} matches several resources; add metadata.namespace or a `target`"))),
        };
        let r = &mut acc[idx];
        let (k, g) = (r.obj.kind().to_string(), r.obj.group().to_string());
        let mut v = r.obj.value.clone();
        if smp::apply(
            &mut v,
            &strip_type_meta(&smp::without_identity(patch)),
            &k,
            &g,
        ) == smp::Outcome::Delete
        {
            acc.remove(idx);
        } else {
            r.obj.value = v;
        }
        Ok(())
    }
}

fn strip_type_meta(patch: &Value) -> Value {
    let mut p = patch.clone();
    if let Some(m) = p.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if m.get("metadata")
            .and_then(Value::as_object)
            .is_some_and(|mm| mm.is_empty())
        {
            m.remove("metadata");
        }
    }
    p
}

/// A JSON patch may rename an object; remember the old name for references.
fn apply_renames(r: &mut Resource, v: Value) {
    let new = Object::new(v);
    let (name, ns) = (new.name().to_string(), new.namespace().to_string());
    let origin = r.obj.origin.take();
    let prev_name = r.obj.name().to_string();
    let prev_ns = r.obj.namespace().to_string();
    r.obj = Object {
        value: new.value,
        origin,
    };
    if name != prev_name || ns != prev_ns {
        r.previous.push((prev_name, prev_ns));
    }
}

fn push_unique(acc: &mut Vec<Resource>, r: Resource) -> Result<(), RenderError> {
    let id = r.id();
    if let Some(existing) = acc.iter().find(|x| x.id() == id) {
        let mut d = Diagnostic::new(format!(
            "{id} is defined twice (an object may be added only once)"
        ));
        if let Some(o) = &r.obj.origin {
            d = d.at(o.locate(&FieldPath::root()));
        }
        if let Some(o) = &existing.obj.origin {
            d.message.push_str(&format!(
                "; first defined at {}",
                o.locate(&FieldPath::root())
            ));
        }
        return Err(RenderError::Input(d));
    }
    acc.push(r);
    Ok(())
}

/// Kustomize reads label, annotation and image fields as strings even when YAML would call
/// them numbers or booleans (`version: 2`); do the same before typed parsing.
fn stringify_string_maps(v: &mut Value) {
    fn stringify(v: &mut Value) {
        match v {
            Value::Number(n) => *v = Value::String(n.to_string()),
            Value::Bool(b) => *v = Value::String(b.to_string()),
            _ => {}
        }
    }
    fn map_values(v: Option<&mut Value>) {
        if let Some(Value::Object(m)) = v {
            m.values_mut().for_each(stringify);
        }
    }
    let Some(root) = v.as_object_mut() else {
        return;
    };
    for key in ["commonLabels", "commonAnnotations"] {
        map_values(root.get_mut(key));
    }
    for key in ["namePrefix", "nameSuffix", "namespace"] {
        if let Some(x) = root.get_mut(key) {
            stringify(x);
        }
    }
    if let Some(Value::Array(ls)) = root.get_mut("labels") {
        for l in ls {
            map_values(l.get_mut("pairs"));
        }
    }
    if let Some(Value::Array(imgs)) = root.get_mut("images") {
        for i in imgs.iter_mut().filter_map(Value::as_object_mut) {
            for k in ["name", "newName", "newTag", "digest"] {
                if let Some(x) = i.get_mut(k) {
                    stringify(x);
                }
            }
        }
    }
    let mut opts: Vec<&mut Value> = Vec::new();
    if let Some(g) = root.get_mut("generatorOptions") {
        opts.push(g);
    }
    for opt in opts {
        map_values(opt.get_mut("labels"));
        map_values(opt.get_mut("annotations"));
    }
    for key in ["configMapGenerator", "secretGenerator"] {
        if let Some(Value::Array(gs)) = root.get_mut(key) {
            for g in gs {
                if let Some(o) = g.get_mut("options") {
                    map_values(o.get_mut("labels"));
                    map_values(o.get_mut("annotations"));
                }
            }
        }
    }
}
