//! Routing between revisions: the weighted split, header and cookie routes, mirror routes and
//! sticky assignment as the caller describes them ([`Routing`]), and their compiled form the
//! hot path evaluates (regular expressions compiled once, header names parsed once).

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::{self, HeaderMap, HeaderName};
use hyper::http::request::Parts;

/// How a string must look, as Argo Rollouts' `headerValue` (one of `exact`, `prefix`,
/// `regex`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatch {
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches the whole string (the pattern is anchored at both ends, as Envoy and Istio
    /// read `regex`), in `regex-lite` syntax.
    Regex(String),
}

impl StringMatch {
    /// [`StringMatch::Exact`].
    pub fn exact(value: impl Into<String>) -> StringMatch {
        StringMatch::Exact(value.into())
    }

    /// [`StringMatch::Prefix`].
    pub fn prefix(value: impl Into<String>) -> StringMatch {
        StringMatch::Prefix(value.into())
    }

    /// [`StringMatch::Regex`].
    pub fn regex(pattern: impl Into<String>) -> StringMatch {
        StringMatch::Regex(pattern.into())
    }
}

/// A header condition: some value of header `name` (case-insensitive) matches `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Header name.
    pub name: String,
    /// What one of its values must look like.
    pub value: StringMatch,
}

/// A cookie condition: the request's `Cookie` header(s) carry a cookie `name` (case-sensitive)
/// whose value matches `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieMatch {
    /// Cookie name.
    pub name: String,
    /// What its value must look like (surrounding double quotes removed).
    pub value: StringMatch,
}

/// One request condition; every field that is set must match. The default matches every
/// request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteMatch {
    /// The method (`GET`, ...).
    pub method: Option<StringMatch>,
    /// The path, without the query.
    pub path: Option<StringMatch>,
    /// Headers; all must match.
    pub headers: Vec<HeaderMatch>,
    /// Cookies; all must match.
    pub cookies: Vec<CookieMatch>,
}

impl RouteMatch {
    /// Matches every request.
    pub fn any() -> RouteMatch {
        RouteMatch::default()
    }

    /// The same condition, with the method matching too.
    pub fn method(mut self, value: StringMatch) -> RouteMatch {
        self.method = Some(value);
        self
    }

    /// The same condition, with the path matching too.
    pub fn path(mut self, value: StringMatch) -> RouteMatch {
        self.path = Some(value);
        self
    }

    /// The same condition, with header `name` matching too.
    pub fn header(mut self, name: impl Into<String>, value: StringMatch) -> RouteMatch {
        self.headers.push(HeaderMatch {
            name: name.into(),
            value,
        });
        self
    }

    /// The same condition, with cookie `name` matching too.
    pub fn cookie(mut self, name: impl Into<String>, value: StringMatch) -> RouteMatch {
        self.cookies.push(CookieMatch {
            name: name.into(),
            value,
        });
        self
    }
}

/// Argo's `setHeaderRoute`: a request matching any of `matches` goes to `revision`, before
/// (and instead of) the weighted split. Routes are evaluated in order; the first match wins.
/// No `matches`: the route matches nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRoute {
    /// The route's name (for diagnostics).
    pub name: String,
    /// Where matching requests go.
    pub revision: String,
    /// Any may match.
    pub matches: Vec<RouteMatch>,
}

impl HeaderRoute {
    /// A route to `revision` for requests matching any of `matches`.
    pub fn new(
        name: impl Into<String>,
        revision: impl Into<String>,
        matches: Vec<RouteMatch>,
    ) -> HeaderRoute {
        HeaderRoute {
            name: name.into(),
            revision: revision.into(),
            matches,
        }
    }
}

/// Argo's `setMirrorRoute`: `percentage` % of the requests matching any of `matches` are
/// also sent to `revision`, whose response is discarded. Routes are evaluated in order; a
/// request is mirrored by the first route it matches at most. No `matches`: the route
/// matches nothing; `vec![RouteMatch::any()]` matches everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorRoute {
    /// The route's name (for diagnostics).
    pub name: String,
    /// Where copies go.
    pub revision: String,
    /// Share of the matching requests copied, 0..=100; exact over every 100 matching
    /// requests (counter-based, not random).
    pub percentage: u32,
    /// Any may match.
    pub matches: Vec<RouteMatch>,
}

impl MirrorRoute {
    /// A mirror of `percentage` % of the requests matching any of `matches` to `revision`.
    pub fn new(
        name: impl Into<String>,
        revision: impl Into<String>,
        percentage: u32,
        matches: Vec<RouteMatch>,
    ) -> MirrorRoute {
        MirrorRoute {
            name: name.into(),
            revision: revision.into(),
            percentage,
            matches,
        }
    }
}

/// One revision's share of the weighted split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionWeight {
    /// The revision, as in [`crate::Backend::revision`].
    pub revision: String,
    /// Relative share (weights need not add up to 100).
    pub weight: u32,
}

/// Where a request goes when the revision chosen for it has no ready backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fallback {
    /// To the other weighted revisions in proportion to their weights, and when none of them
    /// has a ready backend either, to any ready backend of the service: never a 503 while a
    /// backend is ready. The default.
    #[default]
    AnyReadyBackend,
    /// To the other weighted revisions only; when none has a ready backend, 503. For
    /// services where a revision with weight 0 must never see traffic (a failed preview).
    WeightedRevisions,
}

/// How a service's requests are spread over its revisions. The default (no split, no
/// routes) spreads them over every ready backend by backend weight, regardless of revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// Weights per revision, applied by smooth weighted round-robin across revisions first,
    /// then round-robin (by backend weight) among the chosen revision's ready backends.
    /// Empty: no split. Backends of revisions not listed get no split traffic.
    pub split: Vec<RevisionWeight>,
    /// Evaluated in order before the split; the first match decides the revision.
    pub header_routes: Vec<HeaderRoute>,
    /// Evaluated in order; the first match may copy the request.
    pub mirror_routes: Vec<MirrorRoute>,
    /// With a cookie name, a client is kept on the revision it was first sent to by the split
    /// (the proxy sets `<name>=<revision>` on the response) for as long as that revision has
    /// weight > 0 in the split.
    pub sticky_cookie: Option<String>,
    /// What happens when the chosen revision has no ready backend.
    pub fallback: Fallback,
}

impl Routing {
    /// A routing with only a split: `[("stable", 95), ("canary", 5)]`.
    pub fn split<I, S>(weights: I) -> Routing
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        Routing {
            split: split_of(weights),
            ..Routing::default()
        }
    }

    /// The split weight of `revision`: `None` without a split, 0 for a revision not in it.
    pub fn weight(&self, revision: &str) -> Option<u32> {
        if self.split.is_empty() {
            return None;
        }
        Some(
            self.split
                .iter()
                .find(|w| w.revision == revision)
                .map_or(0, |w| w.weight),
        )
    }
}

pub(crate) fn split_of<I, S>(weights: I) -> Vec<RevisionWeight>
where
    I: IntoIterator<Item = (S, u32)>,
    S: Into<String>,
{
    weights
        .into_iter()
        .map(|(revision, weight)| RevisionWeight {
            revision: revision.into(),
            weight,
        })
        .collect()
}

/// A [`Routing`] the proxy refuses; the previous routing stays in force.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A `regex` does not compile.
    #[error("route {route}: regex {pattern:?}: {message}")]
    Regex {
        /// Route name.
        route: String,
        /// The pattern as given.
        pattern: String,
        /// The compiler's message.
        message: String,
    },
    /// A header name is not a valid HTTP header name.
    #[error("route {route}: invalid header name {name:?}")]
    HeaderName {
        /// Route name.
        route: String,
        /// The name as given.
        name: String,
    },
    /// A mirror percentage above 100.
    #[error("mirror route {route}: percentage {percentage} is not in 0..=100")]
    Percentage {
        /// Route name.
        route: String,
        /// The percentage as given.
        percentage: u32,
    },
    /// A revision listed twice in the split.
    #[error("split: revision {revision:?} listed twice")]
    DuplicateRevision {
        /// The revision.
        revision: String,
    },
    /// A sticky cookie name that cannot be a cookie name.
    #[error("sticky cookie name {name:?} is not a valid cookie name")]
    CookieName {
        /// The name as given.
        name: String,
    },
}

/// A compiled [`StringMatch`].
#[derive(Debug)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Regex(regex_lite::Regex),
}

impl Matcher {
    fn compile(m: &StringMatch, route: &str) -> Result<Matcher, RoutingError> {
        Ok(match m {
            StringMatch::Exact(s) => Matcher::Exact(s.clone()),
            StringMatch::Prefix(s) => Matcher::Prefix(s.clone()),
            StringMatch::Regex(pattern) => {
                let anchored = format!("^(?:{pattern})$");
                Matcher::Regex(regex_lite::Regex::new(&anchored).map_err(|e| {
                    RoutingError::Regex {
                        route: route.to_owned(),
                        pattern: pattern.clone(),
                        message: e.to_string(),
                    }
                })?)
            }
        })
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(v) => s == v,
            Matcher::Prefix(p) => s.starts_with(p.as_str()),
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

#[derive(Debug)]
struct CompiledMatch {
    method: Option<Matcher>,
    path: Option<Matcher>,
    headers: Vec<(HeaderName, Matcher)>,
    cookies: Vec<(String, Matcher)>,
}

impl CompiledMatch {
    fn compile(m: &RouteMatch, route: &str) -> Result<CompiledMatch, RoutingError> {
        let opt = |m: &Option<StringMatch>| m.as_ref().map(|m| Matcher::compile(m, route));
        Ok(CompiledMatch {
            method: opt(&m.method).transpose()?,
            path: opt(&m.path).transpose()?,
            headers: m
                .headers
                .iter()
                .map(|h| {
                    let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                        RoutingError::HeaderName {
                            route: route.to_owned(),
                            name: h.name.clone(),
                        }
                    })?;
                    Ok((name, Matcher::compile(&h.value, route)?))
                })
                .collect::<Result<_, RoutingError>>()?,
            cookies: m
                .cookies
                .iter()
                .map(|c| Ok((c.name.clone(), Matcher::compile(&c.value, route)?)))
                .collect::<Result<_, RoutingError>>()?,
        })
    }

    fn is_match(&self, req: &Parts) -> bool {
        if let Some(m) = &self.method {
            if !m.is_match(req.method.as_str()) {
                return false;
            }
        }
        if let Some(m) = &self.path {
            if !m.is_match(req.uri.path()) {
                return false;
            }
        }
        let headers_ok = self.headers.iter().all(|(name, m)| {
            req.headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| m.is_match(v)))
        });
        headers_ok
            && self
                .cookies
                .iter()
                .all(|(name, m)| cookies(&req.headers, name).any(|v| m.is_match(v)))
    }
}

fn any_match(matches: &[CompiledMatch], req: &Parts) -> bool {
    matches.iter().any(|m| m.is_match(req))
}

/// The values of every cookie called `name` in the request's `Cookie` headers (HTTP/2 may
/// split them into several), with surrounding double quotes removed.
pub(crate) fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
        })
}

#[derive(Debug)]
pub(crate) struct CompiledHeaderRoute {
    pub(crate) revision: String,
    matches: Vec<CompiledMatch>,
}

#[derive(Debug)]
pub(crate) struct CompiledMirrorRoute {
    pub(crate) revision: String,
    percentage: u64,
    matches: Vec<CompiledMatch>,
    /// Matching requests so far: the sampling position.
    seen: AtomicU64,
}

impl CompiledMirrorRoute {
    /// Whether the next matching request is one of the `percentage` in every 100: request
    /// `n` (from 0) is mirrored when `floor((n+1)p/100) > floor(np/100)`, so every window of
    /// 100 consecutive matching requests has exactly `p` mirrored.
    fn sample(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        (n.wrapping_add(1)).wrapping_mul(self.percentage) / 100
            > n.wrapping_mul(self.percentage) / 100
    }
}

/// A [`Routing`] ready for the hot path. Shared by every table built while it is in force, so
/// that backend changes keep the mirror sampling positions.
#[derive(Debug, Default)]
pub(crate) struct CompiledRouting {
    pub(crate) spec: Routing,
    pub(crate) header_routes: Vec<CompiledHeaderRoute>,
    pub(crate) mirror_routes: Vec<CompiledMirrorRoute>,
}

impl CompiledRouting {
    pub(crate) fn compile(spec: Routing) -> Result<CompiledRouting, RoutingError> {
        for (i, w) in spec.split.iter().enumerate() {
            if spec.split[..i].iter().any(|o| o.revision == w.revision) {
                return Err(RoutingError::DuplicateRevision {
                    revision: w.revision.clone(),
                });
            }
        }
        if let Some(name) = &spec.sticky_cookie {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if !valid {
                return Err(RoutingError::CookieName { name: name.clone() });
            }
        }
        let compile_all = |route: &str, matches: &[RouteMatch]| {
            matches
                .iter()
                .map(|m| CompiledMatch::compile(m, route))
                .collect::<Result<Vec<_>, _>>()
        };
        let header_routes = spec
            .header_routes
            .iter()
            .map(|r| {
                Ok(CompiledHeaderRoute {
                    revision: r.revision.clone(),
                    matches: compile_all(&r.name, &r.matches)?,
                })
            })
            .collect::<Result<_, RoutingError>>()?;
        let mirror_routes = spec
            .mirror_routes
            .iter()
            .map(|r| {
                if r.percentage > 100 {
                    return Err(RoutingError::Percentage {
                        route: r.name.clone(),
                        percentage: r.percentage,
                    });
                }
                Ok(CompiledMirrorRoute {
                    revision: r.revision.clone(),
                    percentage: u64::from(r.percentage),
                    matches: compile_all(&r.name, &r.matches)?,
                    seen: AtomicU64::new(0),
                })
            })
            .collect::<Result<_, RoutingError>>()?;
        Ok(CompiledRouting {
            spec,
            header_routes,
            mirror_routes,
        })
    }

    /// The index of the first header route `req` matches.
    pub(crate) fn header_route(&self, req: &Parts) -> Option<usize> {
        self.header_routes
            .iter()
            .position(|r| any_match(&r.matches, req))
    }

    /// The index of the first mirror route `req` matches, if this request is in its sample.
    pub(crate) fn mirror_route(&self, req: &Parts) -> Option<usize> {
        let i = self
            .mirror_routes
            .iter()
            .position(|r| any_match(&r.matches, req))?;
        self.mirror_routes[i].sample().then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("test request").into_parts().0
    }

    fn route(m: RouteMatch) -> CompiledRouting {
        CompiledRouting::compile(Routing {
            header_routes: vec![HeaderRoute::new("r", "canary", vec![m])],
            ..Routing::default()
        })
        .expect("valid routing")
    }

    #[test]
    fn string_matches() {
        let check = |m: StringMatch, yes: &[&str], no: &[&str]| {
            let c = Matcher::compile(&m, "r").expect("compiles");
            for s in yes {
                assert!(c.is_match(s), "{m:?} should match {s:?}");
            }
            for s in no {
                assert!(!c.is_match(s), "{m:?} should not match {s:?}");
            }
        };
        check(
            StringMatch::exact("beta"),
            &["beta"],
            &["Beta", "beta2", ""],
        );
        check(StringMatch::prefix("be"), &["be", "beta"], &["b", "abeta"]);
        check(
            StringMatch::regex("be.a|alpha[0-9]+"),
            &["beta", "bexa", "alpha12"],
            &["xbeta", "betas", "alpha"],
        );
    }

    #[test]
    fn header_cookie_method_path_conditions() {
        let r = route(
            RouteMatch::any()
                .header("X-Canary", StringMatch::exact("1"))
                .cookie("group", StringMatch::prefix("beta")),
        );
        assert_eq!(
            r.header_route(&parts(
                "GET",
                "/",
                &[
                    ("x-canary", "0"),
                    ("x-canary", "1"),
                    ("cookie", "a=b; group=\"beta-7\"")
                ]
            )),
            Some(0)
        );
        assert_eq!(
            r.header_route(&parts(
                "GET",
                "/",
                &[("x-canary", "1"), ("cookie", "grp=beta")]
            )),
            None
        );
        assert_eq!(
            r.header_route(&parts(
                "GET",
                "/",
                &[
                    ("x-canary", "1"),
                    ("cookie", "a=1"),
                    ("cookie", "group=beta")
                ]
            )),
            Some(0)
        );
        let r = route(
            RouteMatch::any()
                .method(StringMatch::exact("POST"))
                .path(StringMatch::regex("/api/.*")),
        );
        assert_eq!(r.header_route(&parts("POST", "/api/x?y=1", &[])), Some(0));
        assert_eq!(r.header_route(&parts("GET", "/api/x", &[])), None);
        assert_eq!(r.header_route(&parts("POST", "/apix", &[])), None);
        // No matches at all: never matches.
        let r = CompiledRouting::compile(Routing {
            header_routes: vec![HeaderRoute::new("r", "canary", vec![])],
            ..Routing::default()
        })
        .expect("valid");
        assert_eq!(r.header_route(&parts("GET", "/", &[])), None);
    }

    #[test]
    fn invalid_routings_are_refused() {
        let bad = |routing: Routing| CompiledRouting::compile(routing).map(|_| ());
        assert!(matches!(
            bad(Routing {
                header_routes: vec![HeaderRoute::new(
                    "r",
                    "c",
                    vec![RouteMatch::any().header("x", StringMatch::regex("("))]
                )],
                ..Routing::default()
            }),
            Err(RoutingError::Regex { .. })
        ));
        assert!(matches!(
            bad(Routing {
                header_routes: vec![HeaderRoute::new(
                    "r",
                    "c",
                    vec![RouteMatch::any().header("bad header", StringMatch::exact("1"))]
                )],
                ..Routing::default()
            }),
            Err(RoutingError::HeaderName { .. })
        ));
        assert!(matches!(
            bad(Routing {
                mirror_routes: vec![MirrorRoute::new("m", "c", 101, vec![RouteMatch::any()])],
                ..Routing::default()
            }),
            Err(RoutingError::Percentage { .. })
        ));
        assert!(matches!(
            bad(Routing::split([("a", 1), ("a", 2)])),
            Err(RoutingError::DuplicateRevision { .. })
        ));
        assert!(matches!(
            bad(Routing {
                sticky_cookie: Some("a=b".into()),
                ..Routing::default()
            }),
            Err(RoutingError::CookieName { .. })
        ));
    }

    #[test]
    fn mirror_sampling_is_exact_over_every_window_of_100() {
        for p in [0u32, 1, 5, 33, 50, 99, 100] {
            let r = CompiledRouting::compile(Routing {
                mirror_routes: vec![MirrorRoute::new("m", "c", p, vec![RouteMatch::any()])],
                ..Routing::default()
            })
            .expect("valid");
            let req = parts("GET", "/", &[]);
            let picks: Vec<bool> = (0..1000).map(|_| r.mirror_route(&req).is_some()).collect();
            for w in picks.windows(100) {
                assert_eq!(w.iter().filter(|&&x| x).count() as u32, p, "p={p}");
            }
        }
    }
}
