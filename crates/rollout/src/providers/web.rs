//! The `web` provider: an HTTP request whose JSON answer is the measurement.
//!
//! ```yaml
//! provider:
//!   web:
//!     url: http://127.0.0.1:8080/api/health?service={{args.service}}
//!     method: POST               # GET (default), POST or PUT
//!     headers: [{key: Authorization, value: "Bearer {{args.token}}"}]
//!     jsonBody: {service: hello} # or body: "raw text" (not both)
//!     timeoutSeconds: 5          # default 10, as Argo
//!     jsonPath: "{$.data.ok}"
//! successCondition: result == true
//! ```
//!
//! As Argo's `metricproviders/webmetric`: a non-2xx status is an Error measurement
//! (`received non 2xx response code: 503`), the body must be JSON, and `jsonPath` selects the
//! value (Kubernetes JSONPath; Slipway supports the common subset `{$.a.b[0].c}`, `{.a}`,
//! `['key']` and `[*]`). One selected value is `result` itself (number, bool, string, object
//! or array); `[*]` selecting several gives an array. Without `jsonPath` the whole body is
//! `result`. A `jsonBody` is sent with `Content-Type: application/json` unless a header sets
//! it. `insecure` is accepted and ignored (plain HTTP only in this build).

use std::time::Duration;

use slipway_model::kinds::WebMetric;

use super::jsonpath::JsonPath;
use super::{error_chain, http_url, snippet, to_value, BoxFuture, Measured, Provider, Request};
use crate::condition::Value;

/// Argo's default `timeoutSeconds`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The provider (cheap to clone: the client is shared).
#[derive(Clone, Debug)]
pub struct Web {
    client: reqwest::Client,
}

struct Config {
    metric: WebMetric,
    method: reqwest::Method,
    path: Option<JsonPath>,
}

fn config(cfg: &serde_json::Value) -> Result<Config, String> {
    let metric: WebMetric = serde_json::from_value(cfg.clone()).map_err(|e| format!("web: {e}"))?;
    http_url(&metric.url, "web.url")?;
    let method = match metric
        .method
        .as_deref()
        .unwrap_or("GET")
        .to_ascii_uppercase()
        .as_str()
    {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        other => {
            return Err(format!(
                "web.method: expected GET, POST or PUT, got {other:?}"
            ))
        }
    };
    if metric.body.is_some() && metric.json_body.is_some() {
        return Err("web: body and jsonBody are mutually exclusive".into());
    }
    if method == reqwest::Method::GET && (metric.body.is_some() || metric.json_body.is_some()) {
        return Err("web: a GET request has no body (use method: POST or PUT)".into());
    }
    let path = match metric.json_path.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(JsonPath::parse(p)?),
    };
    Ok(Config {
        metric,
        method,
        path,
    })
}

impl Web {
    /// A provider using `client`.
    pub fn new(client: reqwest::Client) -> Self {
        Web { client }
    }

    async fn fetch(&self, c: &Config) -> Result<Value, String> {
        let m = &c.metric;
        let timeout = match m.timeout_seconds {
            Some(t) if t > 0 => Duration::from_secs(t as u64),
            _ => DEFAULT_TIMEOUT,
        };
        let mut req = self
            .client
            .request(c.method.clone(), &m.url)
            .timeout(timeout);
        let mut has_content_type = false;
        for h in &m.headers {
            has_content_type |= h.key.eq_ignore_ascii_case("content-type");
            req = req.header(h.key.as_str(), h.value.as_str());
        }
        if let Some(body) = &m.body {
            req = req.body(body.clone());
        }
        if let Some(json) = &m.json_body {
            if !has_content_type {
                req = req.header("content-type", "application/json");
            }
            req = req.body(json.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "web request to {} timed out after {} s",
                    m.url,
                    timeout.as_secs()
                )
            } else {
                format!("web request to {} failed: {}", m.url, error_chain(&e))
            }
        })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "web answer from {} timed out after {} s",
                    m.url,
                    timeout.as_secs()
                )
            } else {
                format!("web answer from {} unreadable: {}", m.url, error_chain(&e))
            }
        })?;
        if !status.is_success() {
            return Err(format!(
                "received non 2xx response code: {}{}",
                status.as_u16(),
                if body.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", snippet(&body, 200))
                }
            ));
        }
        let json: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| format!("could not parse JSON body: {e}: {}", snippet(&body, 200)))?;
        let Some(path) = &c.path else {
            return Ok(to_value(&json));
        };
        let found = path.select(&json)?;
        Ok(match found.as_slice() {
            [one] => to_value(one),
            many => Value::Array(many.iter().map(|v| to_value(v)).collect()),
        })
    }
}

impl Provider for Web {
    fn check(&self, cfg: &serde_json::Value) -> Result<(), String> {
        config(cfg).map(|_| ())
    }

    fn measure<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Measured> {
        Box::pin(async move {
            let c = match config(req.config) {
                Ok(c) => c,
                Err(e) => return Measured::error(e),
            };
            match self.fetch(&c).await {
                Ok(v) => Measured::value(v),
                Err(e) => Measured::error(e),
            }
        })
    }
}
