//! The checking context: where one object's diagnostics go, and the checks every kind uses
//! (presence, "exactly one of", integer ranges, allowed values, durations).

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::names::NameRule;
use super::text::{has_placeholder, join, quoted, shown};
use crate::diagnostic::Diagnostic;
use crate::kinds::{decode_lenient, Duration, IntOrPercent, IntOrString};
use crate::location::FieldPath;
use crate::object::Object;

pub(super) const DURATION: &str = "a duration such as 30s, 5m or 1h";

/// The check of one object: the object, the problems found so far, and the fields with a type
/// problem (nothing more is reported inside those).
pub(super) struct Cx<'a> {
    pub(super) obj: &'a Object,
    out: Vec<Diagnostic>,
    ill_typed: Vec<FieldPath>,
}

impl<'a> Cx<'a> {
    pub(super) fn new(obj: &'a Object) -> Self {
        Cx {
            obj,
            out: Vec::new(),
            ill_typed: Vec::new(),
        }
    }

    /// Every problem found, sorted by position in the file.
    pub(super) fn finish(mut self) -> Vec<Diagnostic> {
        // Type problems are found before the rest; people read a file top to bottom.
        self.out
            .sort_by_key(|d| d.location.as_ref().and_then(|l| l.pos));
        self.out
    }

    /// Decode the object as `T` (reporting type problems) and check what that gives with
    /// `rules`.
    pub(super) fn decoded<T: DeserializeOwned>(&mut self, rules: impl FnOnce(&mut Self, &T)) {
        if let Some(v) = self.decode::<T>() {
            rules(self, &v);
        }
    }

    fn decode<T: DeserializeOwned>(&mut self) -> Option<T> {
        let d = decode_lenient::<T>(self.obj);
        for e in d.errors {
            if let Some(f) = &e.field {
                self.ill_typed.push(f.clone());
            }
            if !self.out.contains(&e) {
                self.out.push(e);
            }
        }
        d.value
    }

    /// Report a problem at a field, unless the field or one around it has a type problem or
    /// the same problem is already reported.
    pub(super) fn report(&mut self, at: FieldPath, message: impl Into<String>) {
        if self.ill_typed.iter().any(|t| at.0.starts_with(&t.0)) {
            return;
        }
        let d = self.obj.diagnostic(at, message);
        if !self.out.contains(&d) {
            self.out.push(d);
        }
    }

    /// The raw value at a path; `null` counts as absent.
    pub(super) fn raw(&self, at: &FieldPath) -> Option<&'a Value> {
        self.obj
            .value
            .pointer(&at.to_pointer())
            .filter(|v| !v.is_null())
    }

    /// The raw value at a path as messages show it (`nothing` when absent).
    pub(super) fn got(&self, at: &FieldPath) -> String {
        self.raw(at).map_or_else(|| "nothing".into(), shown)
    }

    /// Which of `names` are set (not null, not `false`) in the mapping at `at`.
    pub(super) fn set_among(&self, at: &FieldPath, names: &[&'static str]) -> Vec<&'static str> {
        let Some(Value::Object(m)) = self.raw(at) else {
            return Vec::new();
        };
        names
            .iter()
            .copied()
            .filter(|n| {
                m.get(*n)
                    .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
            })
            .collect()
    }

    /// Report unless exactly one of `names` is set in the mapping at `at`; returns the one.
    pub(super) fn exactly_one(
        &mut self,
        at: &FieldPath,
        names: &[&'static str],
    ) -> Option<&'static str> {
        let set = self.set_among(at, names);
        if set.len() == 1 {
            return Some(set[0]);
        }
        let got = match (set.len(), names.len()) {
            (0, 2) => "neither".to_string(),
            (0, _) => {
                let unknown: Vec<String> = match self.raw(at) {
                    Some(Value::Object(m)) => m
                        .keys()
                        .filter(|k| !names.contains(&k.as_str()))
                        .map(|k| format!("{k:?}"))
                        .collect(),
                    _ => Vec::new(),
                };
                if unknown.is_empty() {
                    "none".to_string()
                } else {
                    let unknown: Vec<&str> = unknown.iter().map(String::as_str).collect();
                    format!("none (unknown field {})", join(&unknown, "and"))
                }
            }
            (2, 2) => "both".to_string(),
            _ => join(&set, "and"),
        };
        self.report(
            at.clone(),
            format!("expected exactly one of {}, got {got}", join(names, "or")),
        );
        None
    }

    /// Report when both of two fields are set.
    pub(super) fn not_both(&mut self, at: &FieldPath, a: &'static str, b: &'static str) -> bool {
        if self.set_among(at, &[a, b]).len() == 2 {
            self.report(at.key(b), format!("expected either {a} or {b}, got both"));
            return false;
        }
        true
    }

    /// Report unless exactly one of two fields is present; the caller says which are (an empty
    /// list may count as absent).
    pub(super) fn one_of_two(
        &mut self,
        at: &FieldPath,
        (a, has_a): (&str, bool),
        (b, has_b): (&str, bool),
    ) {
        match (has_a, has_b) {
            (true, true) => self.report(at.key(b), format!("expected either {a} or {b}, got both")),
            (false, false) => self.report(at.clone(), format!("expected {a} or {b}, got neither")),
            _ => {}
        }
    }

    pub(super) fn min_int(&mut self, at: FieldPath, v: Option<impl Into<i64>>, min: i64) {
        if let Some(v) = v.map(Into::into) {
            if v < min {
                self.report(at, format!("expected an integer >= {min}, got {v}"));
            }
        }
    }

    pub(super) fn int_range(&mut self, at: FieldPath, v: Option<i32>, lo: i32, hi: i32) -> bool {
        match v {
            Some(v) if !(lo..=hi).contains(&v) => {
                self.report(at, format!("expected an integer {lo}..={hi}, got {v}"));
                false
            }
            _ => true,
        }
    }

    pub(super) fn required(&mut self, at: FieldPath, value: &str, what: &str) -> bool {
        if value.trim().is_empty() {
            let got = self.got(&at);
            self.report(at, format!("expected {what}, got {got}"));
            return false;
        }
        true
    }

    /// Report an empty list, saying what stands there instead (`none` for an empty sequence).
    pub(super) fn at_least_one<T>(&mut self, at: FieldPath, items: &[T], what: &str) {
        if items.is_empty() {
            let got = self.got(&at);
            let got = if got == "a sequence" {
                "none".into()
            } else {
                got
            };
            self.report(at, format!("expected at least one {what}, got {got}"));
        }
    }

    /// Report `item.field` when an item already in `seen` has the same `value`, pointing at the
    /// first; then remember this item.
    pub(super) fn unique<'v>(
        &mut self,
        seen: &mut Vec<(&'v str, FieldPath)>,
        item: &FieldPath,
        field: &str,
        value: &'v str,
        what: &str,
    ) {
        if let Some((_, first)) = seen.iter().find(|(v, _)| *v == value) {
            self.report(
                item.key(field),
                format!(
                    "expected {what}, got {} again (first at {first})",
                    quoted(value)
                ),
            );
        }
        seen.push((value, item.clone()));
    }

    pub(super) fn name_rule(&mut self, at: FieldPath, value: &str, rule: NameRule) {
        if !rule.check(value) {
            self.report(
                at,
                format!("expected {}, got {}", rule.describe(), quoted(value)),
            );
        }
    }

    pub(super) fn one_of_values(&mut self, at: FieldPath, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value {
            if !allowed.contains(&v) {
                self.report(
                    at,
                    format!("expected {}, got {}", join(allowed, "or"), quoted(v)),
                );
            }
        }
    }

    /// The `fieldRef` of a `valueFrom` (in env vars and analysis args) must say which field.
    pub(super) fn field_path(&mut self, value_from: &FieldPath, path: &str) {
        let at = value_from.key("fieldRef").key("fieldPath");
        self.required(at, path, "a field path such as metadata.name");
    }

    /// A field that must hold one of `allowed`: reports another value, then an empty one.
    pub(super) fn required_one_of(&mut self, at: FieldPath, value: &str, allowed: &[&str]) {
        self.one_of_values(at.clone(), Some(value).filter(|v| !v.is_empty()), allowed);
        self.required(at, value, &join(allowed, "or"));
    }

    pub(super) fn duration(&mut self, at: FieldPath, text: Option<&str>, seconds_ok: bool) {
        let Some(s) = text else { return };
        if has_placeholder(s) {
            return;
        }
        let parsed = if seconds_ok {
            Duration::parse_seconds_or_go(s)
        } else {
            Duration::parse(s)
        };
        if let Err(e) = parsed {
            self.report(at, format!("expected {DURATION}, got {}: {e}", quoted(s)));
        }
    }

    pub(super) fn int_or_string_duration(&mut self, at: FieldPath, v: Option<&IntOrString>) {
        match v {
            Some(IntOrString::Int(i)) if *i < 0 => {
                self.report(at, format!("expected seconds >= 0 or {DURATION}, got {i}"));
            }
            Some(IntOrString::String(s)) => self.duration(at, Some(s), true),
            _ => {}
        }
    }

    pub(super) fn int_or_percent(
        &mut self,
        at: FieldPath,
        v: Option<&IntOrString>,
    ) -> Option<IntOrPercent> {
        let v = v?;
        match v.as_int_or_percent() {
            Some(IntOrPercent::Int(n)) if n < 0 => {
                self.report(
                    at,
                    format!("expected an integer >= 0 or a percentage such as 25%, got {n}"),
                );
                None
            }
            Some(IntOrPercent::Percent(p)) if p > 100 => {
                self.report(at, format!("expected a percentage 0%..=100%, got \"{p}%\""));
                None
            }
            Some(x) => Some(x),
            None => {
                self.report(
                    at,
                    format!(
                        "expected an integer >= 0 or a percentage such as 25%, got {}",
                        quoted(&v.to_string())
                    ),
                );
                None
            }
        }
    }
}
