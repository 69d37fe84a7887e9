//! Types shared by every kind: object metadata, label selectors, int-or-string values and
//! resource quantities.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// `metadata`: the part of an object that names and labels it.
///
/// Only the fields Slipway reads; the rest stay in [`crate::Object::value`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name` (`""` when absent: validation reports it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `metadata.generateName`, a prefix the API server completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// `metadata.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A label selector: every `matchLabels` pair and every `matchExpressions` requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based requirement of a [`LabelSelector`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    #[serde(default)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(default)]
    pub operator: String,
    /// Values for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// True when the selector selects nothing in particular (no pairs, no requirements).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// The first requirement `labels` fail, written the way `kubectl` prints selectors
    /// (`app=web`, `tier in (a,b)`), or `None` when the labels match.
    pub fn first_mismatch(&self, labels: &BTreeMap<String, String>) -> Option<String> {
        for (k, v) in &self.match_labels {
            if labels.get(k) != Some(v) {
                return Some(format!("{k}={v}"));
            }
        }
        for r in &self.match_expressions {
            let have = labels.get(&r.key);
            let ok = match r.operator.as_str() {
                "In" => have.is_some_and(|h| r.values.contains(h)),
                "NotIn" => !have.is_some_and(|h| r.values.contains(h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => true, // reported by validation as an unknown operator
            };
            if !ok {
                return Some(r.to_string());
            }
        }
        None
    }
}

impl fmt::Display for LabelSelectorRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operator.as_str() {
            "In" => write!(f, "{} in ({})", self.key, self.values.join(",")),
            "NotIn" => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            "Exists" => write!(f, "{}", self.key),
            "DoesNotExist" => write!(f, "!{}", self.key),
            op => write!(f, "{} {op} ({})", self.key, self.values.join(",")),
        }
    }
}

/// Kubernetes' `IntOrString`: `8080` or `http`, `1` or `25%`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntOrString {
    /// A number.
    Int(i32),
    /// A string (a port name, a percentage, a duration...).
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => write!(f, "{s}"),
        }
    }
}

/// What an int-or-percent value (`maxSurge: 1`, `maxUnavailable: 25%`) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    /// An absolute count.
    Int(i32),
    /// A percentage of the desired replicas.
    Percent(i32),
}

impl IntOrString {
    /// Read an int-or-percent value; `None` for strings that are not `N%`.
    pub fn as_int_or_percent(&self) -> Option<IntOrPercent> {
        match self {
            IntOrString::Int(i) => Some(IntOrPercent::Int(*i)),
            IntOrString::String(s) => {
                let digits = s.strip_suffix('%')?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                digits.parse().ok().map(IntOrPercent::Percent)
            }
        }
    }

    /// The integer this value denotes: the number itself, or a string holding an integer
    /// (`"3"`, as Argo accepts for counts).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            IntOrString::Int(i) => Some(i64::from(*i)),
            IntOrString::String(s) => s.trim().parse().ok(),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i32(*i),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v).map(IntOrString::Int).map_err(|_| {
                    E::custom(format!(
                        "expected an integer between {} and {} or a string, got number {v}",
                        i32::MIN,
                        i32::MAX
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v).map(IntOrString::Int).map_err(|_| {
                    E::custom(format!(
                        "expected an integer between {} and {} or a string, got number {v}",
                        i32::MIN,
                        i32::MAX
                    ))
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A resource quantity (`500m`, `128Mi`, `2`): kept as written; numbers in YAML are accepted
/// and kept as their decimal text. [`Quantity::value`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Quantity(pub String);

impl Quantity {
    /// The quantity as a number (`500m` is 0.5, `1Ki` is 1024), or `None` when malformed.
    pub fn value(&self) -> Option<f64> {
        parse_quantity(&self.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quantity such as 500m, 128Mi or 2")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parse a Kubernetes quantity: a signed decimal number followed by an optional binary suffix
/// (`Ki`..`Ei`), decimal suffix (`n`, `u`, `m`, `k`, `M`..`E`) or exponent (`e3`, `E-2`).
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let num_end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '+' || c == '-') && i == 0)))
        .map_or(s.len(), |(i, _)| i);
    let (num, suffix) = s.split_at(num_end);
    let digits = num.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e => {
            let exp = e.strip_prefix(['e', 'E'])?;
            let body = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(exp.parse().ok()?)
        }
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_like_kubernetes() {
        for (q, v) in [
            ("500m", Some(0.5)),
            ("2", Some(2.0)),
            ("1.5", Some(1.5)),
            ("128Mi", Some(128.0 * 1024.0 * 1024.0)),
            ("1k", Some(1000.0)),
            ("1e3", Some(1000.0)),
            ("12Q", None),
            ("", None),
            ("Mi", None),
            ("1..2", None),
        ] {
            assert_eq!(parse_quantity(q), v, "{q}");
        }
    }

    #[test]
    fn int_or_percent_reads_both_forms() {
        assert_eq!(
            IntOrString::String("25%".into()).as_int_or_percent(),
            Some(IntOrPercent::Percent(25))
        );
        assert_eq!(
            IntOrString::Int(2).as_int_or_percent(),
            Some(IntOrPercent::Int(2))
        );
        assert_eq!(IntOrString::String("x%".into()).as_int_or_percent(), None);
        let v: IntOrString = serde_json::from_str("\"http\"").expect("string");
        assert_eq!(v, IntOrString::String("http".into()));
        let v: IntOrString = serde_json::from_str("80").expect("int");
        assert_eq!(serde_json::to_string(&v).expect("ser"), "80");
    }

    #[test]
    fn selectors_report_the_first_failing_requirement() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["fe","be"]}]}"#,
        )
        .expect("selector");
        let mut labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert_eq!(
            sel.first_mismatch(&labels).as_deref(),
            Some("tier in (fe,be)")
        );
        labels.insert("tier".into(), "fe".into());
        assert_eq!(sel.first_mismatch(&labels), None);
        labels.insert("app".into(), "api".into());
        assert_eq!(sel.first_mismatch(&labels).as_deref(), Some("app=web"));
    }
}
