//! Services as listeners of the embedded proxy: one [`Listener`] per service port on
//! 127.0.0.1, its port from the annotation `slipway.dev/local-port` (a number for the first
//! port, or `name=port,name=port`), else a free one, reported in `status.localAddress`.
//!
//! Backends are the ready replicas in the Service's namespace whose labels match
//! `spec.selector`, at the loopback port their replica got for `targetPort` (by name or
//! number; default: `port`). [`Service::set_backends`] is called on every replica change.
//! A replica being removed stays in the set as not ready until it is gone, so the proxy
//! keeps counting its in-flight requests while it drains (see `deployment.rs`).
//!
//! Rollouts: pods of a Rollout carry `rollouts-pod-template-hash` and become backends tagged
//! with that revision, so the rollout controller's [`Routing`] (the split, header and mirror
//! routes) can tell stable from canary. The controller may also pin a Service to a revision
//! (Argo injects the hash into the `canaryService`/`stableService`/`activeService`/
//! `previewService` selectors). The pin is kept beside the applied selector, never written
//! into the manifest, so the reconciler sees no drift; `status.selectorPin` shows it. A pinned
//! Service still reaches the revisions its routing names: the `stableService` is where
//! clients come in, and with Slipway the proxy behind it *is* the traffic router that splits.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use slipway_model::ResId;
use slipway_traffic::{Backend, DrainOutcome, Listener, Routing, RoutingError, ServiceStats};

use super::pod::Pod;
use super::spec::IntOrString;
use crate::POD_TEMPLATE_HASH_LABEL;

/// The annotation that pins local ports.
pub const LOCAL_PORT_ANNOTATION: &str = "slipway.dev/local-port";

/// `spec.ports[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortSpec {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Service port.
    pub port: u16,
    /// Container port by number or name (default: `port`).
    #[serde(default)]
    pub target_port: Option<IntOrString>,
}

/// What the runtime reads of a Service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceSpec {
    /// Selector.
    pub selector: BTreeMap<String, String>,
    /// Ports.
    pub ports: Vec<ServicePortSpec>,
    /// Local port per port index (from the annotation).
    pub local_ports: BTreeMap<usize, u16>,
}

impl ServicePortSpec {
    /// The port's name, or its number as text.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.port.to_string())
    }
}

/// Parses the local-port annotation against the ports (pure).
pub fn parse_local_ports(
    annotation: Option<&str>,
    ports: &[ServicePortSpec],
) -> Result<BTreeMap<usize, u16>, String> {
    let mut out = BTreeMap::new();
    let Some(text) = annotation.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(out);
    };
    let bad = |what: &str| format!("annotation {LOCAL_PORT_ANNOTATION}: {what}");
    if let Ok(n) = text.parse::<u16>() {
        if ports.is_empty() {
            return Err(bad("the Service has no ports"));
        }
        out.insert(0, n);
        return Ok(out);
    }
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, port) = part
            .split_once('=')
            .ok_or_else(|| bad(&format!("expected a port or name=port, got {part:?}")))?;
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| bad(&format!("{:?} is not a port number", port.trim())))?;
        let name = name.trim();
        let idx = ports
            .iter()
            .position(|p| p.label() == name)
            .ok_or_else(|| bad(&format!("no service port named {name:?}")))?;
        out.insert(idx, port);
    }
    Ok(out)
}

/// Reads a Service manifest; the error is for `RuntimeError::Invalid`.
pub fn parse(manifest: &serde_json::Value) -> Result<ServiceSpec, String> {
    let spec = manifest.get("spec").cloned().unwrap_or_default();
    let selector: BTreeMap<String, String> = match spec.get("selector") {
        None | Some(serde_json::Value::Null) => BTreeMap::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("spec.selector: {e}"))?,
    };
    let ports: Vec<ServicePortSpec> = match spec.get("ports") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("spec.ports: {e}"))?,
    };
    let annotation = manifest
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LOCAL_PORT_ANNOTATION))
        .and_then(|v| v.as_str());
    let local_ports = parse_local_ports(annotation, &ports)?;
    Ok(ServiceSpec {
        selector,
        ports,
        local_ports,
    })
}

/// One bound (or failed) service port.
#[derive(Debug)]
struct PortState {
    spec: ServicePortSpec,
    wanted: Option<u16>,
    listener: Option<Listener>,
    error: Option<String>,
}

/// What the rollout controller set on a Service.
#[derive(Debug, Default)]
struct RolloutSide {
    /// Only pods of this revision (plus those the routing names) are backends.
    pin: Option<String>,
    /// The routing every listener applies.
    routing: Option<Routing>,
}

/// A live Service.
#[derive(Debug)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    state: Mutex<(BTreeMap<String, String>, Vec<PortState>)>,
    rollout: Mutex<RolloutSide>,
}

fn bind(name: &str, port: Option<u16>) -> Result<Listener, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port.unwrap_or(0)));
    Listener::bind(addr, name).map_err(|e| e.to_string())
}

impl Service {
    /// Binds the listeners of `spec` (a port that cannot bind is reported, not fatal).
    pub fn new(id: &ResId, namespace: &str, spec: &ServiceSpec) -> Service {
        let s = Service {
            name: id.name.clone(),
            namespace: namespace.to_string(),
            state: Mutex::new((BTreeMap::new(), Vec::new())),
            rollout: Mutex::new(RolloutSide::default()),
        };
        s.update(spec);
        s
    }

    fn proxy_name(&self, port: &ServicePortSpec) -> String {
        format!("{}/{}:{}", self.namespace, self.name, port.label())
    }

    /// Applies a changed spec: selector and targets change at once; a listener is rebound
    /// only when its local port changed.
    pub fn update(&self, spec: &ServiceSpec) {
        let mut old = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.0 = spec.selector.clone();
            std::mem::take(&mut st.1)
        };
        let mut ports = Vec::new();
        for (i, p) in spec.ports.iter().enumerate() {
            let wanted = spec.local_ports.get(&i).copied();
            let reuse = old
                .iter()
                .position(|o| {
                    o.spec.label() == p.label() && o.wanted == wanted && o.listener.is_some()
                })
                .map(|at| old.remove(at));
            let state = match reuse {
                Some(mut o) => {
                    o.spec = p.clone();
                    o
                }
                None => {
                    let (listener, error) = match bind(&self.proxy_name(p), wanted) {
                        Ok(l) => (Some(l), None),
                        Err(e) => (None, Some(format!("port {}: {e}", p.label()))),
                    };
                    PortState {
                        spec: p.clone(),
                        wanted,
                        listener,
                        error,
                    }
                }
            };
            ports.push(state);
        }
        let routing = self.side().routing.clone();
        if let Some(r) = routing {
            for l in ports.iter().filter_map(|p| p.listener.as_ref()) {
                // It was accepted before; a listener that refuses it keeps the default.
                let _ = l.set_routing(r.clone());
            }
        }
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = ports;
        // Dropping the replaced listeners shuts them down gracefully in the background.
        drop(old);
    }

    fn side(&self) -> std::sync::MutexGuard<'_, RolloutSide> {
        self.rollout.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the selector (without pin) selects pods labelled `labels`.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        !st.0.is_empty()
            && st
                .0
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    }

    /// Pins the Service to a revision (see [`crate::RolloutHost::pin_service`]); answers
    /// whether anything changed.
    pub fn pin(&self, revision: Option<&str>) -> bool {
        let mut side = self.side();
        if side.pin.as_deref() == revision {
            return false;
        }
        side.pin = revision.map(str::to_string);
        true
    }

    /// The pinned revision.
    pub fn pinned(&self) -> Option<String> {
        self.side().pin.clone()
    }

    /// Sets the routing of every listener (kept for listeners bound later); answers whether
    /// anything changed.
    pub fn set_routing(&self, routing: Routing) -> Result<bool, RoutingError> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut side = self.side();
        if side.routing.as_ref() == Some(&routing) {
            return Ok(false);
        }
        for l in st.1.iter().filter_map(|p| p.listener.as_ref()) {
            l.set_routing(routing.clone())?;
        }
        side.routing = Some(routing);
        Ok(true)
    }

    /// Sets every listener's backends from `pods` (all pods of the namespace). Pods of a
    /// Rollout (labelled `rollouts-pod-template-hash`) are tagged with their revision; a
    /// pinned Service takes only its revision's pods and those of revisions its routing names.
    pub fn set_backends(&self, pods: &[Arc<Pod>]) {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (pin, routed): (Option<String>, Vec<String>) = {
            let side = self.side();
            let routed = side
                .routing
                .as_ref()
                .map(|r| {
                    r.split
                        .iter()
                        .filter(|w| w.weight > 0)
                        .map(|w| w.revision.clone())
                        .chain(r.header_routes.iter().map(|h| h.revision.clone()))
                        .chain(r.mirror_routes.iter().map(|m| m.revision.clone()))
                        .collect()
                })
                .unwrap_or_default();
            (side.pin.clone(), routed)
        };
        let revision = |p: &Pod| p.labels.get(POD_TEMPLATE_HASH_LABEL).cloned();
        let selected: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| p.matches(&st.0) && !p.gone.load(Ordering::SeqCst))
            .filter(|p| match (&pin, revision(p)) {
                (None, _) => true,
                (Some(pin), Some(rev)) => *pin == rev || routed.contains(&rev),
                (Some(_), None) => false,
            })
            .collect();
        for port in &st.1 {
            let Some(listener) = &port.listener else {
                continue;
            };
            let target = port
                .spec
                .target_port
                .clone()
                .unwrap_or(IntOrString::Int(port.spec.port.into()));
            let backends = selected
                .iter()
                .filter_map(|p| {
                    let draining = p.draining.load(Ordering::SeqCst);
                    let ready = p.snapshot().ready;
                    if !ready && !draining {
                        return None;
                    }
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, p.ports.resolve(&target)?));
                    let b = Backend::new(p.name.clone(), addr).with_ready(ready && !draining);
                    Some(match revision(p) {
                        Some(rev) => b.with_revision(rev),
                        None => b,
                    })
                })
                .collect();
            listener.set_backends(backends);
        }
    }

    /// Takes `pod` out of rotation on every listener; resolves when its in-flight requests
    /// are done (or `timeout`).
    pub fn drain(
        &self,
        pod: &str,
        timeout: Duration,
    ) -> Vec<impl std::future::Future<Output = DrainOutcome>> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.1.iter()
            .filter_map(|p| p.listener.as_ref())
            .map(|l| l.drain(pod, timeout))
            .collect()
    }

    /// `(port label, address)` of the bound ports.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.1.iter()
            .filter_map(|p| {
                p.listener
                    .as_ref()
                    .map(|l| (p.spec.label(), l.local_addr()))
            })
            .collect()
    }

    /// Why ports could not bind.
    pub fn errors(&self) -> Vec<String> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.1.iter().filter_map(|p| p.error.clone()).collect()
    }

    /// Proxy counters of every listener.
    pub fn stats(&self) -> Vec<ServiceStats> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.1.iter()
            .filter_map(|p| p.listener.as_ref().map(Listener::stats))
            .collect()
    }

    /// Closes every listener gracefully (in-flight requests finish, bounded by `timeout`).
    pub async fn close(&self, timeout: Duration) {
        let ports =
            std::mem::take(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner).1);
        for p in ports {
            if let Some(l) = p.listener {
                l.shutdown(timeout).await;
            }
        }
    }

    /// `status` for `observe`.
    pub fn status(&self) -> serde_json::Value {
        let addrs = self.addresses();
        let mut status = serde_json::json!({
            "localAddress": addrs.first().map(|(_, a)| a.to_string()),
            "localPorts": addrs.iter().map(|(n, a)| serde_json::json!({"name": n, "address": a.to_string()})).collect::<Vec<_>>(),
        });
        let errors = self.errors();
        if !errors.is_empty() {
            status["errors"] = serde_json::json!(errors);
        }
        if let Some(pin) = self.pinned() {
            status["selectorPin"] = serde_json::json!({ POD_TEMPLATE_HASH_LABEL: pin });
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> Vec<ServicePortSpec> {
        serde_json::from_value(serde_json::json!([
            {"name": "http", "port": 80, "targetPort": "web"},
            {"port": 9090}
        ]))
        .expect("ports")
    }

    #[test]
    fn local_port_annotation_forms() {
        let p = ports();
        assert_eq!(parse_local_ports(None, &p), Ok(BTreeMap::new()));
        assert_eq!(
            parse_local_ports(Some("8080"), &p),
            Ok(BTreeMap::from([(0, 8080)]))
        );
        assert_eq!(
            parse_local_ports(Some("http=8080, 9090=19090"), &p),
            Ok(BTreeMap::from([(0, 8080), (1, 19090)]))
        );
        assert!(parse_local_ports(Some("admin=1"), &p)
            .expect_err("unknown")
            .contains("no service port named \"admin\""));
        assert!(parse_local_ports(Some("http=x"), &p).is_err());
        assert!(parse_local_ports(Some("80"), &[]).is_err());
    }
}
