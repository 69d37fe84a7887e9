//! Header and mirror routes as the proxy receives them (Argo's `setHeaderRoute` and
//! `setMirrorRoute` after validation).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a value must look: exactly one of Argo's `exact`, `prefix`, `regex`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StringMatch {
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches the regular expression.
    Regex(String),
}

/// A header condition of a header route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Header name.
    pub header: String,
    /// Its value.
    pub value: StringMatch,
}

/// Requests whose headers all match go to the canary. No matches: the step removes the
/// route (Argo's rule for `setHeaderRoute` without `match`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRoute {
    /// The managed route's name.
    pub name: String,
    /// All must match.
    pub matches: Vec<HeaderMatch>,
}

/// One request condition of a mirror route; every set field must match. An empty
/// `RouteMatch` matches every request (the shadow strategy's mirror).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteMatch {
    /// HTTP method.
    pub method: Option<StringMatch>,
    /// URL path.
    pub path: Option<StringMatch>,
    /// Headers.
    pub headers: BTreeMap<String, StringMatch>,
}

/// `percentage` % of the requests matching any of `matches` are copied to the canary, whose
/// responses are discarded. No matches: the step removes the route (Argo's rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRoute {
    /// The managed route's name.
    pub name: String,
    /// Share of matching requests mirrored, 0..=100.
    pub percentage: u32,
    /// Any may match.
    pub matches: Vec<RouteMatch>,
}

/// Set or remove `route` in `routes` by name, keeping `managedRoutes` priority order (routes
/// not listed there go last, in the order they were set).
pub(crate) fn upsert<R: Clone>(
    routes: &mut Vec<R>,
    name: &str,
    route: Option<R>,
    name_of: impl Fn(&R) -> &str,
    managed: &[String],
) {
    routes.retain(|r| name_of(r) != name);
    if let Some(r) = route {
        routes.push(r);
    }
    let rank = |n: &str| managed.iter().position(|m| m == n).unwrap_or(usize::MAX);
    routes.sort_by_key(|r| rank(name_of(r)));
}
