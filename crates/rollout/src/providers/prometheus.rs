//! The `prometheus` provider: an instant query on the Prometheus HTTP API.
//!
//! ```yaml
//! provider:
//!   prometheus:
//!     address: http://127.0.0.1:9090
//!     query: sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))
//!     timeout: 10            # seconds (optional; default 30)
//!     headers: [{key: X-Scope-OrgID, value: team-a}]
//! successCondition: result[0] < 0.001
//! ```
//!
//! `GET {address}/api/v1/query?query=...`. The result follows Argo's provider
//! (`metricproviders/prometheus`): a **vector** becomes an array of its samples' values, in
//! the order Prometheus returns them (`result[0]` is the first series; an empty vector is an
//! empty array, so `result[0]` is then an evaluation error and `len(result) == 0` can test
//! for it); a **scalar** becomes a number. `NaN`, `+Inf` and `-Inf` are kept as such (a `0/0`
//! ratio is `NaN`; use `isNaN(result[0])` to treat it). Matrices and strings are refused as
//! Argo does. An HTTP failure, a Prometheus error (`bad_data`, `timeout`...) or an unreadable
//! answer is an Error measurement carrying Prometheus' message.
//!
//! `timeout` is sent as the query's own `timeout` parameter and also bounds the whole HTTP
//! request. `insecure` is accepted and ignored (plain HTTP only in this build).

use std::time::Duration;

use slipway_model::kinds::PrometheusMetric;

use super::{error_chain, http_url, snippet, BoxFuture, Measured, Provider, Request};
use crate::condition::Value;

/// The request timeout when the metric sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The provider (cheap to clone: the client is shared).
#[derive(Clone, Debug)]
pub struct Prometheus {
    client: reqwest::Client,
}

impl Prometheus {
    /// A provider using `client`.
    pub fn new(client: reqwest::Client) -> Self {
        Prometheus { client }
    }

    /// Runs `query` against the server at `address` now.
    pub async fn query(&self, metric: &PrometheusMetric) -> Measured {
        match self.query_inner(metric).await {
            Ok(v) => Measured::value(v),
            Err(e) => Measured::error(e),
        }
    }

    async fn query_inner(&self, m: &PrometheusMetric) -> Result<Value, String> {
        let base = http_url(&m.address, "prometheus.address")?;
        let url = format!("{}/api/v1/query", base.as_str().trim_end_matches('/'));
        let timeout = match m.timeout {
            Some(t) if t > 0 => Duration::from_secs(t as u64),
            _ => DEFAULT_TIMEOUT,
        };
        let mut req = self
            .client
            .get(&url)
            .query(&[("query", m.query.as_str())])
            .timeout(timeout);
        if let Some(t) = m.timeout.filter(|t| *t > 0) {
            req = req.query(&[("timeout", format!("{t}s"))]);
        }
        for h in &m.headers {
            req = req.header(h.key.as_str(), h.value.as_str());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("prometheus query failed: {}", error_chain(&e)))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("prometheus answer unreadable: {}", error_chain(&e)))?;
        let json: serde_json::Value = match serde_json::from_str(&body) {
            Ok(j) => j,
            Err(_) if !status.is_success() => {
                return Err(format!(
                    "prometheus answered {status}: {}",
                    snippet(&body, 300)
                ))
            }
            Err(e) => return Err(format!("prometheus answer is not JSON: {e}")),
        };
        // A non-2xx answer carries Prometheus' own error JSON, which says it all.
        parse_response(&json)
    }
}

/// A Prometheus API answer (`{"status": "success", "data": {...}}`) as Argo's `result`.
pub fn parse_response(json: &serde_json::Value) -> Result<Value, String> {
    if json["status"] != "success" {
        let kind = json["errorType"].as_str().unwrap_or("error");
        let msg = json["error"].as_str().unwrap_or("unknown error");
        return Err(format!("prometheus query error ({kind}): {msg}"));
    }
    let data = &json["data"];
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("vector") => {
            let items = result
                .as_array()
                .ok_or("prometheus vector result is not an array")?;
            let values = items
                .iter()
                .map(|s| sample(&s["value"]))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(values.into_iter().map(Value::Float).collect()))
        }
        Some("scalar") => Ok(Value::Float(sample(result)?)),
        Some(other) => Err(format!(
            "prometheus result type {other:?} is not supported (use a query that returns a vector or a scalar)"
        )),
        None => Err("prometheus answer has no data.resultType".into()),
    }
}

/// `[<unix time>, "<value>"]`.
fn sample(v: &serde_json::Value) -> Result<f64, String> {
    let text = v[1]
        .as_str()
        .ok_or_else(|| format!("prometheus sample {v} has no value"))?;
    parse_float(text).ok_or_else(|| format!("prometheus sample value {text:?} is not a number"))
}

/// Prometheus' float text: Go's `strconv.FormatFloat` plus `NaN`, `+Inf`, `-Inf`.
pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn config(config: &serde_json::Value) -> Result<PrometheusMetric, String> {
    let m: PrometheusMetric =
        serde_json::from_value(config.clone()).map_err(|e| format!("prometheus: {e}"))?;
    http_url(&m.address, "prometheus.address")?;
    if m.query.trim().is_empty() {
        return Err("prometheus.query: required".into());
    }
    Ok(m)
}

impl Provider for Prometheus {
    fn check(&self, cfg: &serde_json::Value) -> Result<(), String> {
        config(cfg).map(|_| ())
    }

    fn measure<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Measured> {
        Box::pin(async move {
            match config(req.config) {
                Ok(m) => self.query(&m).await,
                Err(e) => Measured::error(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_scalars_and_specials() {
        let v = parse_response(&json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1.0, "0.5"]}, {"metric": {"a": "b"}, "value": [1.0, "NaN"]},
                       {"metric": {}, "value": [1.0, "+Inf"]}]}}))
        .unwrap();
        let Value::Array(items) = v else { panic!() };
        assert_eq!(items[0], Value::Float(0.5));
        assert!(matches!(items[1], Value::Float(x) if x.is_nan()));
        assert_eq!(items[2], Value::Float(f64::INFINITY));
        assert_eq!(
            parse_response(
                &json!({"status": "success", "data": {"resultType": "vector", "result": []}})
            )
            .unwrap(),
            Value::Array(vec![])
        );
        assert_eq!(
            parse_response(&json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}})).unwrap(),
            Value::Float(3.0)
        );
        assert_eq!(
            parse_response(&json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}))
                .unwrap_err(),
            "prometheus query error (bad_data): parse error at char 5"
        );
        assert!(parse_response(
            &json!({"status": "success", "data": {"resultType": "matrix", "result": []}})
        )
        .unwrap_err()
        .contains("not supported"));
    }
}
