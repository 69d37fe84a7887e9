//! The Dockerfile subset that maps onto a [`BuildSpec`] without running anything.
//!
//! Supported: `FROM` (`scratch` or `oci:DIR[:TAG]`, one stage, `--platform`), `COPY` and
//! local `ADD` (`--chmod`, `--chown` with numeric ids, several sources, wildcards, JSON
//! form), `ENV`, `LABEL`, `WORKDIR`, `USER`, `EXPOSE`, `ENTRYPOINT` and `CMD` (exec form,
//! and shell form as `["/bin/sh", "-c", ...]`), `SHELL`, `ARG` with `$VAR`, `${VAR}`,
//! `${VAR:-default}` and `${VAR:+alt}` substitution, comments, line continuations and the
//! `escape` parser directive.
//!
//! Refused, each with `file:line` and the reason: `RUN` (nothing runs during a Slipway
//! build), multi-stage builds (a second `FROM`, `COPY --from`), `ADD` of URLs and archives,
//! registry base images (until the registry client lands), and instructions without an
//! OCI-config meaning (`HEALTHCHECK`, `VOLUME`, `ONBUILD`, ...).

use std::collections::BTreeMap;

use slipway_model::kinds::image_build::{parse_mode, parse_owner, parse_port};

use crate::build::tree::{image_path, join_image_path};
use crate::build::{Base, BuildSpec, CopySpec};
use crate::layout::Platform;

/// A problem in a Dockerfile, rendered as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct DockerfileError {
    /// The Dockerfile as named to the user.
    pub file: String,
    /// The 1-based line where the instruction starts.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Why `RUN` is refused.
pub const RUN_REFUSED: &str = "RUN is not supported: Slipway builds images without running containers, so a build is reproducible and needs no daemon; build the artifact in a CI step and COPY it";

const MULTI_STAGE: &str = "multi-stage builds are not supported: Slipway builds one image from files that already exist; build the artifact in a CI step and COPY it";

/// One logical instruction.
struct Instruction {
    line: usize,
    keyword: String,
    rest: String,
}

/// Parse a Dockerfile into a spec. `file` names it in messages; `build_args` are the values
/// of `ARG`s (`--build-arg NAME=VALUE`).
pub fn parse(
    file: &str,
    text: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<BuildSpec, DockerfileError> {
    let (escape, instructions) = split(text);
    let mut p = Parser {
        file,
        escape,
        build_args,
        global_args: BTreeMap::new(),
        vars: BTreeMap::new(),
        spec: BuildSpec::default(),
        seen_from: false,
        workdir: None,
        shell: vec!["/bin/sh".into(), "-c".into()],
        copy_workdirs: Vec::new(),
    };
    for ins in &instructions {
        p.instruction(ins)?;
    }
    if !p.seen_from {
        return Err(DockerfileError {
            file: file.to_string(),
            line: instructions.first().map_or(1, |i| i.line),
            message:
                "expected FROM before any other instruction (FROM scratch, or FROM oci:DIR[:TAG])"
                    .into(),
        });
    }
    p.finish_copies()?;
    Ok(p.spec)
}

struct Parser<'a> {
    file: &'a str,
    escape: char,
    build_args: &'a BTreeMap<String, String>,
    /// `ARG`s before `FROM` (usable in `FROM` only, or after redeclaration).
    global_args: BTreeMap<String, String>,
    /// `ARG`s and `ENV`s of the stage, for substitution.
    vars: BTreeMap<String, String>,
    spec: BuildSpec,
    seen_from: bool,
    /// The working directory so far (relative while only relative WORKDIRs were seen).
    workdir: Option<String>,
    shell: Vec<String>,
    /// For each copy: its line and the working directory when it was written.
    copy_workdirs: Vec<(usize, Option<String>)>,
}

impl Parser<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> DockerfileError {
        DockerfileError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }

    fn instruction(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let line = ins.line;
        let kw = ins.keyword.to_ascii_uppercase();
        if !self.seen_from && kw != "FROM" && kw != "ARG" {
            return Err(self.err(
                line,
                format!("expected FROM before {kw} (FROM scratch, or FROM oci:DIR[:TAG])"),
            ));
        }
        let rest = ins.rest.trim();
        match kw.as_str() {
            "FROM" => self.from(line, rest),
            "ARG" => self.arg(line, rest),
            "COPY" => self.copy(line, rest, false),
            "ADD" => self.copy(line, rest, true),
            "ENV" => {
                for (k, v) in self.pairs(line, rest, "ENV")? {
                    self.vars.insert(k.clone(), v.clone());
                    match self.spec.env.iter_mut().find(|(n, _)| *n == k) {
                        Some(slot) => slot.1 = v,
                        None => self.spec.env.push((k, v)),
                    }
                }
                Ok(())
            }
            "LABEL" => {
                for (k, v) in self.pairs(line, rest, "LABEL")? {
                    self.spec.labels.insert(k, v);
                }
                Ok(())
            }
            "WORKDIR" => {
                let w = self.one_word(line, rest, "WORKDIR", "a path")?;
                let next = match (&self.workdir, w.starts_with('/')) {
                    (_, true) | (None, false) => w,
                    (Some(cur), false) => format!("{}/{w}", cur.trim_end_matches('/')),
                };
                self.workdir = Some(next.clone());
                self.spec.workdir = Some(next);
                Ok(())
            }
            "USER" => {
                let u = self.one_word(line, rest, "USER", "a user such as 1000 or 1000:1000")?;
                self.spec.user = Some(u);
                Ok(())
            }
            "EXPOSE" => {
                let words = self.words(line, rest)?;
                if words.is_empty() {
                    return Err(self.err(line, "EXPOSE needs at least one port"));
                }
                for w in words {
                    let port = parse_port(&w).map_err(|e| self.err(line, format!("EXPOSE: {e}")))?;
                    if !self.spec.ports.contains(&port) {
                        self.spec.ports.push(port);
                    }
                }
                Ok(())
            }
            "ENTRYPOINT" => {
                let v = self.command(line, rest, "ENTRYPOINT")?;
                self.spec.entrypoint = Some(v);
                // As in Docker, an ENTRYPOINT resets a CMD set earlier in the file or
                // inherited; a CMD after it sets it again.
                self.spec.cmd = None;
                Ok(())
            }
            "CMD" => {
                let v = self.command(line, rest, "CMD")?;
                self.spec.cmd = Some(v);
                Ok(())
            }
            "SHELL" => {
                match json_array(rest) {
                    Some(v) if !v.is_empty() => self.shell = v,
                    _ => {
                        return Err(self.err(
                            line,
                            "SHELL needs the JSON form, such as SHELL [\"/bin/bash\", \"-c\"]",
                        ))
                    }
                }
                Ok(())
            }
            "RUN" => Err(self.err(line, RUN_REFUSED)),
            "HEALTHCHECK" => Err(self.err(line, "HEALTHCHECK is not supported: it is not part of the OCI image config; declare readiness and liveness probes in the Deployment")),
            "VOLUME" => Err(self.err(line, "VOLUME is not supported: declare volumes in the pod spec, where they are mounted")),
            "ONBUILD" => Err(self.err(line, "ONBUILD is not supported: it adds instructions to other builds, and Slipway's builds run none")),
            "STOPSIGNAL" => Err(self.err(line, "STOPSIGNAL is not supported yet: the runtime sends SIGTERM")),
            "MAINTAINER" => Err(self.err(line, "MAINTAINER is not supported (deprecated in Docker): use LABEL org.opencontainers.image.authors=...")),
            _ => Err(self.err(
                line,
                format!("unknown instruction {}", ins.keyword),
            )),
        }
    }

    fn from(&mut self, line: usize, rest: &str) -> Result<(), DockerfileError> {
        if self.seen_from {
            return Err(self.err(line, format!("a second FROM: {MULTI_STAGE}")));
        }
        self.seen_from = true;
        let (flags, rest) = flags(rest);
        for f in flags {
            match f.split_once('=') {
                Some(("--platform", v)) => {
                    let v = self.expand_with(line, v, &self.global_args.clone())?;
                    let p = Platform::parse(&v).ok_or_else(|| {
                        self.err(
                            line,
                            format!("FROM --platform: expected os/arch[/variant], got {v:?}"),
                        )
                    })?;
                    self.spec.platform = Some(p);
                }
                _ => return Err(self.err(line, format!("FROM: unknown flag {f}"))),
            }
        }
        let globals = self.global_args.clone();
        let words = self.words_with(line, rest, &globals)?;
        let image = match words.as_slice() {
            [image] => image.clone(),
            [image, as_kw, _name] if as_kw.eq_ignore_ascii_case("as") => image.clone(),
            _ => {
                return Err(self.err(
                    line,
                    "FROM expects an image, optionally followed by AS name",
                ))
            }
        };
        self.spec.from = Base::parse(&image).map_err(|e| self.err(line, format!("FROM: {e}")))?;
        Ok(())
    }

    fn arg(&mut self, line: usize, rest: &str) -> Result<(), DockerfileError> {
        let words = self.words(line, rest)?;
        if words.is_empty() {
            return Err(self.err(
                line,
                "ARG needs a name, as in ARG VERSION or ARG VERSION=1.0",
            ));
        }
        for w in words {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w.clone(), None),
            };
            if !is_var_name(&name) {
                return Err(self.err(line, format!("ARG: invalid name {name:?}")));
            }
            let value = self.build_args.get(&name).cloned().or(default).or_else(|| {
                if self.seen_from {
                    self.global_args.get(&name).cloned()
                } else {
                    None
                }
            });
            if self.seen_from {
                // An ENV of the same name wins over the ARG, as in Docker.
                if let Some(v) = value {
                    if !self.spec.env.iter().any(|(n, _)| *n == name) {
                        self.vars.insert(name, v);
                    }
                }
            } else if let Some(v) = value {
                self.global_args.insert(name, v);
            }
        }
        Ok(())
    }

    fn copy(&mut self, line: usize, rest: &str, is_add: bool) -> Result<(), DockerfileError> {
        let kw = if is_add { "ADD" } else { "COPY" };
        let (flags, rest) = flags(rest);
        let mut mode = None;
        let mut owner = None;
        for f in flags {
            let (name, value) = f.split_once('=').unwrap_or((f.as_str(), ""));
            let value = self.expand(line, value)?;
            match name {
                "--chmod" => {
                    mode = Some(
                        parse_mode(&value)
                            .map_err(|e| self.err(line, format!("{kw} --chmod: {e}")))?,
                    );
                }
                "--chown" => {
                    owner = Some(
                        parse_owner(&value)
                            .map_err(|e| self.err(line, format!("{kw} --chown: {e}")))?,
                    );
                }
                "--from" => return Err(self.err(line, format!("{kw} --from: {MULTI_STAGE}"))),
                "--link" => {}
                _ => return Err(self.err(line, format!("{kw}: unsupported flag {name}"))),
            }
        }
        let mut args = match json_array(rest) {
            Some(v) => v
                .iter()
                .map(|s| self.expand(line, s))
                .collect::<Result<Vec<_>, _>>()?,
            None => self.words(line, rest)?,
        };
        if args.len() < 2 {
            return Err(self.err(
                line,
                format!("{kw} needs at least one source and a destination"),
            ));
        }
        let dst = args.pop().unwrap_or_default();
        if args.len() > 1 && !dst.ends_with('/') {
            return Err(self.err(
                line,
                format!("{kw} with several sources needs a destination directory ending with /, got {dst:?}"),
            ));
        }
        if is_add {
            for s in &args {
                if s.contains("://") || s.starts_with("git@") {
                    return Err(self.err(line, format!("ADD of a URL ({s}) is not supported: a download during the build is not reproducible; fetch it in a CI step, check its digest, and COPY it")));
                }
                let lower = s.to_ascii_lowercase();
                if [
                    ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst",
                ]
                .iter()
                .any(|ext| lower.ends_with(ext))
                {
                    return Err(self.err(line, format!("ADD of an archive ({s}) is not supported: ADD would unpack it; unpack it in a CI step and COPY the directory, or COPY the archive as a file")));
                }
            }
        }
        // A relative destination is relative to the working directory of this line.
        let dst = match (&self.workdir, dst.starts_with('/')) {
            (Some(w), false) if w.starts_with('/') => {
                let mut joined = format!("/{}", image_path(&join_image_path(w, &dst)));
                let is_dir = dst.ends_with('/') || dst == "." || dst.ends_with("/.");
                if is_dir && !joined.ends_with('/') {
                    joined.push('/');
                }
                joined
            }
            _ => dst,
        };
        self.copy_workdirs.push((line, self.workdir.clone()));
        self.spec.copy.push(CopySpec {
            src: args,
            dst,
            mode,
            owner,
            origin: Some(format!("{}:{line}", self.file)),
        });
        Ok(())
    }

    /// Relative destinations left relative resolve against the final working directory;
    /// that is right only if the working directory did not change after the copy.
    fn finish_copies(&self) -> Result<(), DockerfileError> {
        for (c, (line, wd)) in self.spec.copy.iter().zip(&self.copy_workdirs) {
            if !c.dst.starts_with('/') && *wd != self.workdir {
                return Err(self.err(
                    *line,
                    format!("COPY to the relative destination {:?} before a later WORKDIR, while the base image's working directory is unknown here: use an absolute destination", c.dst),
                ));
            }
        }
        Ok(())
    }

    fn command(&self, line: usize, rest: &str, kw: &str) -> Result<Vec<String>, DockerfileError> {
        if let Some(v) = json_array(rest) {
            return Ok(v);
        }
        if rest.is_empty() {
            return Err(self.err(line, format!("{kw} needs a command")));
        }
        let mut v = self.shell.clone();
        v.push(rest.to_string());
        Ok(v)
    }

    /// `KEY=VALUE ...` pairs, or the legacy `KEY VALUE WITH SPACES`.
    fn pairs(
        &self,
        line: usize,
        rest: &str,
        kw: &str,
    ) -> Result<Vec<(String, String)>, DockerfileError> {
        let raw = raw_words(rest, self.escape);
        let Some(first) = raw.first() else {
            return Err(self.err(line, format!("{kw} needs KEY=VALUE")));
        };
        if !first.contains('=') {
            let key = self.expand(line, first)?;
            let value_text =
                rest[rest.find(first.as_str()).map_or(0, |i| i + first.len())..].trim();
            if value_text.is_empty() {
                return Err(self.err(line, format!("{kw} {key} needs a value (KEY=VALUE)")));
            }
            let value = self.process(line, value_text, false, &self.vars)?.join("");
            return Ok(vec![(key, value)]);
        }
        let mut out = Vec::new();
        for w in raw {
            let Some((k, v)) = w.split_once('=') else {
                return Err(self.err(line, format!("{kw}: expected KEY=VALUE, got {w:?}")));
            };
            let k = self.expand(line, k)?;
            if k.is_empty() {
                return Err(self.err(line, format!("{kw}: empty key in {w:?}")));
            }
            let v = self.expand(line, v)?;
            out.push((k, v));
        }
        Ok(out)
    }

    fn one_word(
        &self,
        line: usize,
        rest: &str,
        kw: &str,
        what: &str,
    ) -> Result<String, DockerfileError> {
        match self.words(line, rest)?.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(self.err(line, format!("{kw} expects {what}"))),
        }
    }

    fn words(&self, line: usize, s: &str) -> Result<Vec<String>, DockerfileError> {
        self.process(line, s, true, &self.vars)
    }

    fn words_with(
        &self,
        line: usize,
        s: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, DockerfileError> {
        self.process(line, s, true, vars)
    }

    fn expand(&self, line: usize, s: &str) -> Result<String, DockerfileError> {
        Ok(self.process(line, s, false, &self.vars)?.join(""))
    }

    fn expand_with(
        &self,
        line: usize,
        s: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, DockerfileError> {
        Ok(self.process(line, s, false, vars)?.join(""))
    }

    fn process(
        &self,
        line: usize,
        s: &str,
        split: bool,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, DockerfileError> {
        process(s, split, vars, self.escape).map_err(|e| self.err(line, e))
    }
}

fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A JSON array of strings, if `s` is one.
fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str(t).ok()
}

/// Leading `--flag[=value]` words and the rest.
fn flags(s: &str) -> (Vec<String>, &str) {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while rest.starts_with("--") {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = rest[end..].trim_start();
    }
    (out, rest)
}

/// Words split at unquoted whitespace, quotes kept (for `KEY=VALUE` pairs).
fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Remove quotes and expand variables, as Docker's shell lexer does for instruction
/// arguments; with `split`, unquoted whitespace separates words.
fn process(
    s: &str,
    split: bool,
    vars: &BTreeMap<String, String>,
    escape: char,
) -> Result<Vec<String>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if split && c.is_whitespace() {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            i += 1;
            continue;
        }
        in_word = true;
        if c == escape {
            if let Some(&n) = chars.get(i + 1) {
                cur.push(n);
            }
            i += 2;
        } else if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&x| x == '\'')
                .ok_or("unterminated single quote")?;
            cur.extend(&chars[i + 1..i + 1 + end]);
            i += end + 2;
        } else if c == '"' {
            i += 1;
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err("unterminated double quote".into());
                };
                if ch == '"' {
                    i += 1;
                    break;
                }
                if ch == escape
                    && matches!(chars.get(i + 1), Some(&n) if n == '"' || n == '$' || n == escape)
                {
                    cur.push(chars[i + 1]);
                    i += 2;
                } else if ch == '$' {
                    i = variable(&chars, i, vars, escape, &mut cur)?;
                } else {
                    cur.push(ch);
                    i += 1;
                }
            }
        } else if c == '$' {
            i = variable(&chars, i, vars, escape, &mut cur)?;
        } else {
            cur.push(c);
            i += 1;
        }
    }
    if in_word || !split {
        out.push(cur);
    }
    Ok(out)
}

/// Expand the variable at `chars[i] == '$'` into `out`; returns the index after it.
fn variable(
    chars: &[char],
    i: usize,
    vars: &BTreeMap<String, String>,
    escape: char,
    out: &mut String,
) -> Result<usize, String> {
    let name_end = |from: usize| {
        let mut j = from;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        j
    };
    match chars.get(i + 1) {
        Some('{') => {
            let start = i + 2;
            let end = name_end(start);
            let name: String = chars[start..end].iter().collect();
            if name.is_empty() {
                return Err("bad substitution: expected a variable name after ${".into());
            }
            // Find the closing brace, allowing nested ${...} in the word.
            let mut depth = 1;
            let mut j = end;
            while j < chars.len() {
                match chars[j] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j >= chars.len() {
                return Err(format!("bad substitution: missing }} after ${{{name}"));
            }
            let modifier: String = chars[end..j].iter().collect();
            let value = vars.get(&name);
            let word = |w: &str| -> Result<String, String> {
                Ok(process(w, false, vars, escape)?.join(""))
            };
            let text = if modifier.is_empty() {
                value.cloned().unwrap_or_default()
            } else if let Some(w) = modifier.strip_prefix(":-") {
                match value.filter(|v| !v.is_empty()) {
                    Some(v) => v.clone(),
                    None => word(w)?,
                }
            } else if let Some(w) = modifier.strip_prefix(":+") {
                match value.filter(|v| !v.is_empty()) {
                    Some(_) => word(w)?,
                    None => String::new(),
                }
            } else if let Some(w) = modifier.strip_prefix('-') {
                match value {
                    Some(v) => v.clone(),
                    None => word(w)?,
                }
            } else if let Some(w) = modifier.strip_prefix('+') {
                match value {
                    Some(_) => word(w)?,
                    None => String::new(),
                }
            } else if let Some(w) = modifier.strip_prefix(":?") {
                match value.filter(|v| !v.is_empty()) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(format!(
                            "{name}: {}",
                            if w.is_empty() { "is not set" } else { w }
                        ))
                    }
                }
            } else {
                return Err(format!(
                    "bad substitution: unsupported modifier in ${{{name}{modifier}}}"
                ));
            };
            out.push_str(&text);
            Ok(j + 1)
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let end = name_end(i + 1);
            let name: String = chars[i + 1..end].iter().collect();
            out.push_str(vars.get(&name).map_or("", String::as_str));
            Ok(end)
        }
        _ => {
            out.push('$');
            Ok(i + 1)
        }
    }
}

/// Split a Dockerfile into logical instructions (continuations joined, comments and blank
/// lines dropped), after reading the `escape` parser directive.
fn split(text: &str) -> (char, Vec<Instruction>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut escape = '\\';
    let mut first = 0;
    // Parser directives: `# name=value` lines at the very top.
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        let Some(body) = t.strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = body.split_once('=') else {
            break;
        };
        let k = k.trim().to_ascii_lowercase();
        if k.contains(char::is_whitespace) || k.is_empty() {
            break;
        }
        if k == "escape" && v.trim() == "`" {
            escape = '`';
        }
        first = i + 1;
    }
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, l) in lines.iter().enumerate().skip(first) {
        let t = l.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        // As in Docker, the escape and the newline are removed and the lines joined as
        // they are (`hel\` + `lo` is `hello`).
        let trimmed = l.trim_end();
        let (body, continues) = match trimmed.strip_suffix(escape) {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        let entry = cur.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push_str(if entry.1.is_empty() {
            body.trim_start()
        } else {
            body
        });
        if !continues {
            if let Some((line, text)) = cur.take() {
                out.push(instruction(line, &text));
            }
        }
    }
    if let Some((line, text)) = cur.take() {
        out.push(instruction(line, &text));
    }
    (escape, out)
}

fn instruction(line: usize, text: &str) -> Instruction {
    let t = text.trim();
    let end = t.find(char::is_whitespace).unwrap_or(t.len());
    Instruction {
        line,
        keyword: t[..end].to_string(),
        rest: t[end..].trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<BuildSpec, String> {
        parse("Dockerfile", text, &BTreeMap::new()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_subset_maps_onto_a_spec() {
        let s = spec(concat!(
            "# syntax=docker/dockerfile:1\n",
            "ARG BASE=scratch\nFROM ${BASE}\n",
            "ARG VERSION=1.2\n",
            "# a comment\n",
            "ENV APP_VERSION=$VERSION MODE=\"prod mode\"\n",
            "ENV LEGACY value with spaces\n",
            "LABEL org.example.version=${VERSION:-0} team=web\n",
            "WORKDIR /app\n",
            "COPY --chmod=755 --chown=1000:1000 bin/web \\\n    bin/tool ./bin/\n",
            "COPY [\"a b.txt\", \"/etc/a.txt\"]\n",
            "USER 1000:1000\nEXPOSE 8080 53/udp\n",
            "ENTRYPOINT [\"/app/bin/web\"]\nCMD --port 8080\n",
        ))
        .expect("parses");
        assert_eq!(s.from, Base::Scratch);
        assert_eq!(
            s.env,
            [
                ("APP_VERSION".to_string(), "1.2".to_string()),
                ("MODE".into(), "prod mode".into()),
                ("LEGACY".into(), "value with spaces".into())
            ]
        );
        assert_eq!(s.labels["org.example.version"], "1.2");
        assert_eq!(s.copy[0].src, ["bin/web", "bin/tool"]);
        assert_eq!(s.copy[0].dst, "/app/bin/");
        assert_eq!(s.copy[0].mode, Some(0o755));
        assert_eq!(s.copy[0].owner, Some((1000, 1000)));
        assert_eq!(s.copy[0].origin.as_deref(), Some("Dockerfile:10"));
        assert_eq!(s.copy[1].src, ["a b.txt"]);
        assert_eq!(s.ports.len(), 2);
        assert_eq!(s.entrypoint, Some(vec!["/app/bin/web".to_string()]));
        assert_eq!(
            s.cmd,
            Some(vec!["/bin/sh".into(), "-c".into(), "--port 8080".into()])
        );
        assert_eq!(s.workdir.as_deref(), Some("/app"));
    }

    #[test]
    fn refusals_name_the_line_and_say_why() {
        assert_eq!(
            spec("FROM scratch\nCOPY a /a\n\n\nRUN make\n").expect_err("RUN"),
            format!("Dockerfile:5: {RUN_REFUSED}")
        );
        let e = spec("FROM scratch\nFROM scratch\n").expect_err("two stages");
        assert!(
            e.starts_with("Dockerfile:2: a second FROM: multi-stage builds are not supported"),
            "{e}"
        );
        let e = spec("FROM scratch\nCOPY --from=build /a /a\n").expect_err("--from");
        assert!(
            e.starts_with("Dockerfile:2: COPY --from: multi-stage"),
            "{e}"
        );
        let e = spec("FROM scratch\nADD https://example.com/x /x\n").expect_err("url");
        assert!(e.starts_with("Dockerfile:2: ADD of a URL"), "{e}");
        let e = spec("FROM alpine:3.19\n").expect_err("registry");
        assert!(
            e.contains("Dockerfile:1: FROM: base image \"alpine:3.19\" is in a registry"),
            "{e}"
        );
        assert_eq!(
            spec("FROM scratch\nFROBNICATE x\n").expect_err("unknown"),
            "Dockerfile:2: unknown instruction FROBNICATE"
        );
        let e = spec("COPY a /a\n").expect_err("no FROM");
        assert!(
            e.starts_with("Dockerfile:1: expected FROM before COPY"),
            "{e}"
        );
        let e = spec("FROM scratch\nCOPY a b\nWORKDIR /x\n").expect_err("relative");
        assert!(
            e.starts_with("Dockerfile:2: COPY to the relative destination"),
            "{e}"
        );
    }

    #[test]
    fn continuations_keep_the_first_line_and_skip_comments() {
        let s =
            spec("FROM scratch\nENV A=1 \\\n# inside\n    B=2\nEXPOSE \\\n 80\n").expect("parses");
        assert_eq!(s.env.len(), 2);
        let e = spec("FROM scratch\nENV A=1 \\\n  B=2\nRUN x\n").expect_err("run");
        assert!(e.starts_with("Dockerfile:4: RUN"), "{e}");
    }

    #[test]
    fn substitution_follows_docker() {
        let vars = BTreeMap::from([
            ("A".to_string(), "x".to_string()),
            ("E".to_string(), String::new()),
        ]);
        let p = |s: &str| process(s, false, &vars, '\\').expect("expands").join("");
        assert_eq!(
            p("$A/${A}/${B:-d}/${A:+alt}/${E:-empty}/${E-set}"),
            "x/x/d/alt/empty/"
        );
        assert_eq!(p("'$A' \"$A\" \\$A"), "$A x $A");
        let args = BTreeMap::from([("V".to_string(), "9".to_string())]);
        let s = parse("Dockerfile", "FROM scratch\nARG V=1\nLABEL v=$V\n", &args).expect("parses");
        assert_eq!(s.labels["v"], "9");
    }
}
