//! Bearer-token authentication for the API.

use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::State;

/// Middleware: pass when no token is configured or the request carries it.
pub(crate) async fn require_token(
    AxState(state): AxState<Arc<State>>,
    request: Request,
    next: Next,
) -> Response {
    match check(state.config.token.as_deref(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(message) => {
            let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"slipway\""),
            );
            response
        }
    }
}

/// The pure check: `Ok` when `expected` is unset (or empty) or the `Authorization` header is
/// `Bearer <expected>` (the comparison takes the same time wherever the tokens differ).
pub(crate) fn check(expected: Option<&str>, headers: &HeaderMap) -> Result<(), &'static str> {
    let Some(expected) = expected.filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err("this server requires a token: send `Authorization: Bearer <token>` (slipway --token-file or SLIPWAY_TOKEN)");
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .ok_or("the Authorization header is not `Bearer <token>`")?;
    if slipway_git::webhook::constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err("invalid token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().expect("header"));
        }
        h
    }

    #[test]
    fn token_check() {
        assert_eq!(check(None, &headers(None)), Ok(()));
        assert_eq!(check(Some(""), &headers(None)), Ok(()));
        assert_eq!(check(Some("t0k"), &headers(Some("Bearer t0k"))), Ok(()));
        assert_eq!(check(Some("t0k"), &headers(Some("bearer  t0k "))), Ok(()));
        assert_eq!(
            check(Some("t0k"), &headers(Some("Bearer t0K"))),
            Err("invalid token")
        );
        assert_eq!(
            check(Some("t0k"), &headers(Some("Bearer t0k0"))),
            Err("invalid token")
        );
        assert!(check(Some("t0k"), &headers(Some("Basic dDBrOg=="))).is_err());
        assert!(check(Some("t0k"), &headers(None))
            .expect_err("missing")
            .contains("Bearer"));
    }
}
