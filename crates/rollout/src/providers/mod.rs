//! Analysis providers: where a metric's measurements come from.
//!
//! A metric names exactly one provider in `metrics[].provider`, with Argo Rollouts' field
//! names. Slipway runs:
//!
//! | YAML | kind | module |
//! | --- | --- | --- |
//! | `prometheus: {address, query, timeout, headers}` | `prometheus` | [`prometheus`] |
//! | `web: {url, method, headers, body, jsonBody, timeoutSeconds, jsonPath}` | `web` | [`web`] |
//! | `job: {spec: {template: {spec: {containers: [{command, args, env}]}}}}` or `job: {command: [...]}` | `job` | [`job`] |
//! | `plugin: {slipway/metrics: {service, revision}}` | `slipway/metrics` | [`builtin`] |
//! | `plugin: {slipway/judge: {service, alpha, sloErrorRate}}` | `slipway/judge` | [`builtin`] |
//!
//! Slipway's own providers use Argo's metric-plugin shape (`provider.plugin.<name>`), so a
//! template that uses them still validates against Argo's schema.
//!
//! Decisions:
//!
//! - **One small trait.** [`Provider::measure`] takes the provider's configuration block (the
//!   value under `provider.<kind>`, with `{{args.x}}` already substituted, as Argo does before
//!   calling its providers) and a per-metric [`ProviderState`], and answers an [`Outcome`].
//!   It returns a boxed `Send` future so that providers are object safe (`Arc<dyn Provider>`)
//!   on Rust 1.85. [`Provider::check`] validates the block when the run is built, so a bad
//!   template is refused before anything is measured.
//! - **Errors are measurements.** A provider never fails the driver: an unreachable server, a
//!   non-2xx answer or a timeout is an [`Outcome::Error`] with the message, which Argo's
//!   `consecutiveErrorLimit` then judges.
//! - **State is data.** Providers that need memory across measurements (the built-in counters
//!   take deltas, the judge accumulates evidence) keep it in [`ProviderState::data`], plain
//!   JSON that the driver checkpoints with the run, so a resumed run continues where it was.
//!   A provider may also keep a cache beside it (not persisted) and rebuild it from the data.
//! - **Plain HTTP only.** The workspace builds reqwest without TLS; an `https://` address is
//!   refused with a message that says so, rather than failing at connect time.

pub mod builtin;
pub mod job;
mod jsonpath;
pub mod prometheus;
pub mod web;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::analysis::Phase;
use crate::condition::Value;

pub use builtin::{Counters, Revision, TrafficStats};

/// A boxed, sendable future: what [`Provider::measure`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a provider found.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A value for the metric's conditions (`result`): the driver evaluates
    /// `successCondition` / `failureCondition` over it.
    Value(Value),
    /// The provider decided the phase itself (a job's exit status, the judge's verdict);
    /// conditions are not evaluated. `value` is recorded for people.
    Decided {
        /// Successful, Failed or Inconclusive.
        phase: Phase,
        /// What was measured, if anything.
        value: Option<Value>,
    },
    /// Nothing could be measured: an Error measurement.
    Error(String),
}

/// A provider's answer: the outcome and an optional message for people (a job's last output
/// lines, the judge's reason).
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// What was found.
    pub outcome: Outcome,
    /// Why, for people.
    pub message: Option<String>,
}

impl Measured {
    /// A value for the conditions.
    pub fn value(value: impl Into<Value>) -> Self {
        Measured {
            outcome: Outcome::Value(value.into()),
            message: None,
        }
    }

    /// An Error measurement.
    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        Measured {
            outcome: Outcome::Error(message.clone()),
            message: Some(message),
        }
    }

    /// A phase decided by the provider.
    pub fn decided(phase: Phase, value: Option<Value>, message: Option<String>) -> Self {
        Measured {
            outcome: Outcome::Decided { phase, value },
            message,
        }
    }
}

/// What a provider remembers between measurements of one metric.
///
/// `data` is persisted with the run (JSON); the cache is not: a provider must be able to
/// rebuild it from `data` (after a restart it finds it empty).
#[derive(Default)]
pub struct ProviderState {
    /// Persisted with the run's checkpoint. `Null` before the first measurement.
    pub data: serde_json::Value,
    /// In-memory only; lost on restart and on clone.
    pub cache: Option<Box<dyn Any + Send + Sync>>,
}

impl ProviderState {
    /// True before the provider stored anything.
    pub fn is_empty(&self) -> bool {
        self.data.is_null()
    }
}

impl Clone for ProviderState {
    fn clone(&self) -> Self {
        ProviderState {
            data: self.data.clone(),
            cache: None,
        }
    }
}

impl fmt::Debug for ProviderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderState")
            .field("data", &self.data)
            .field("cached", &self.cache.is_some())
            .finish()
    }
}

impl PartialEq for ProviderState {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
    }
}

impl Serialize for ProviderState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ProviderState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ProviderState {
            data: serde_json::Value::deserialize(d)?,
            cache: None,
        })
    }
}

/// One measurement to take.
#[derive(Debug)]
pub struct Request<'a> {
    /// The metric's name (for messages).
    pub metric: &'a str,
    /// The provider's block (`provider.prometheus`, `provider.plugin."slipway/judge"`), with
    /// args substituted.
    pub config: &'a serde_json::Value,
    /// The metric's memory.
    pub state: &'a mut ProviderState,
}

/// A source of measurements.
pub trait Provider: Send + Sync {
    /// Checks the provider's block when the run is built; the message names the field.
    fn check(&self, config: &serde_json::Value) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// True when a metric of this provider must not have `successCondition` /
    /// `failureCondition` (the provider decides each phase itself and conditions would be
    /// silently ignored); the run refuses such a metric when it is compiled. The `job`
    /// provider also decides phases but accepts conditions, as Argo does.
    fn refuses_conditions(&self) -> bool {
        false
    }

    /// Takes one measurement.
    fn measure<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Measured>;
}

/// The providers a run may use, by kind (`prometheus`, `web`, `job`, `slipway/judge`...).
#[derive(Clone, Default)]
pub struct Providers {
    by_kind: BTreeMap<String, Arc<dyn Provider>>,
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_kind.keys()).finish()
    }
}

impl Providers {
    /// No providers.
    pub fn new() -> Self {
        Providers::default()
    }

    /// `prometheus`, `web` and `job`, the first two sharing one HTTP client (one connection
    /// pool).
    pub fn standard() -> Self {
        let client = http_client();
        Providers::new()
            .with("prometheus", prometheus::Prometheus::new(client.clone()))
            .with("web", web::Web::new(client))
            .with("job", job::Job)
    }

    /// Adds Slipway's built-in providers over the proxy's counters: `slipway/metrics` and
    /// `slipway/judge`.
    pub fn with_traffic(self, stats: Arc<dyn TrafficStats>) -> Self {
        self.with(
            builtin::METRICS_PLUGIN,
            builtin::TrafficMetrics::new(stats.clone()),
        )
        .with(builtin::JUDGE_PLUGIN, builtin::JudgeProvider::new(stats))
    }

    /// Adds (or replaces) a provider.
    pub fn with(mut self, kind: &str, provider: impl Provider + 'static) -> Self {
        self.by_kind.insert(kind.to_owned(), Arc::new(provider));
        self
    }

    /// The provider of a kind.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Provider>> {
        self.by_kind.get(kind)
    }

    /// The kinds available, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.by_kind.keys().map(String::as_str).collect()
    }
}

/// The provider kind and block of a metric's `provider` value: the one field that is set, or
/// for `plugin`, the one plugin named inside it.
pub fn provider_kind(provider: &serde_json::Value) -> Result<(String, serde_json::Value), String> {
    let obj = provider
        .as_object()
        .ok_or_else(|| "provider: expected an object".to_owned())?;
    let set: Vec<_> = obj.iter().filter(|(_, v)| !v.is_null()).collect();
    match set.as_slice() {
        [] => Err("provider: no provider given".into()),
        [(k, v)] if k.as_str() == "plugin" => {
            let plugins = v
                .as_object()
                .ok_or_else(|| "provider.plugin: expected an object".to_owned())?;
            match plugins.iter().collect::<Vec<_>>().as_slice() {
                [(name, cfg)] => Ok(((*name).clone(), (*cfg).clone())),
                [] => Err("provider.plugin: no plugin given".into()),
                many => Err(format!(
                    "provider.plugin: exactly one plugin expected, got {}",
                    many.iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        [(k, v)] => Ok(((*k).clone(), (*v).clone())),
        many => Err(format!(
            "provider: exactly one provider expected, got {}",
            many.iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The shared HTTP client: no TLS in this build, no default timeout (each provider sets its
/// own per request).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("slipway-rollout/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// Checks that `url` is an `http://` URL this build can reach; `what` names the field.
pub(crate) fn http_url(url: &str, what: &str) -> Result<reqwest::Url, String> {
    if url.is_empty() {
        return Err(format!("{what}: required"));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{what}: invalid URL {url:?}: {e}"))?;
    match parsed.scheme() {
        "http" => Ok(parsed),
        "https" => Err(format!(
            "{what}: {url:?} is https, and this build of Slipway has no TLS: use an http:// address (a local server, or a TLS-terminating sidecar)"
        )),
        other => Err(format!(
            "{what}: unsupported scheme {other:?} in {url:?} (use http://)"
        )),
    }
}

/// An error with its causes (`error sending request: connection refused`).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The first `max` characters of `s`, with `…` when cut.
pub(crate) fn snippet(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A JSON value as a condition value.
pub(crate) fn to_value(v: &serde_json::Value) -> Value {
    Value::from(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds() {
        let k = |v: serde_json::Value| provider_kind(&v).map(|(k, _)| k);
        assert_eq!(
            k(json!({"prometheus": {"query": "x"}})).unwrap(),
            "prometheus"
        );
        assert_eq!(
            k(json!({"plugin": {"slipway/judge": {"service": "a"}}})).unwrap(),
            "slipway/judge"
        );
        assert_eq!(k(json!({})).unwrap_err(), "provider: no provider given");
        assert_eq!(
            k(json!({"web": {}, "job": {}})).unwrap_err(),
            "provider: exactly one provider expected, got web, job"
        );
    }

    #[test]
    fn urls() {
        assert!(http_url("http://127.0.0.1:9090", "address").is_ok());
        let e = http_url("https://prom:9090", "address").unwrap_err();
        assert!(e.contains("no TLS"), "{e}");
        assert_eq!(http_url("", "url").unwrap_err(), "url: required");
    }
}
