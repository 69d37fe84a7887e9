//! The delivery routes: Deliveries with their stages, and `slipway promote`.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/v1/deliveries` | [`DeliveryStatus`] list (broken files included, with their error) |
//! | `GET /api/v1/deliveries/{name}` | [`DeliveryDetail`]: the status plus recent verifications and promotions (404 when unknown) |
//! | `POST /api/v1/deliveries/{name}/stages/{stage}/promote` | body [`PromoteRequest`] (`{"digest"?, "approver", "force"?}`); the [`PromoteOutcome`] (404 unknown delivery or stage, 409 refused, 422 invalid) |
//!
//! Without a delivery controller ([`Server::with_deliveries`](crate::Server::with_deliveries))
//! the list is empty and everything else is 404.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use slipway_delivery::{
    DeliveryError, DeliveryHandle, DeliveryStatus, PromoteOutcome, PromoteRequest,
};
use slipway_store::{PromotionRecord, VerificationRecord};

use crate::api::ApiError;
use crate::backend::BoxFuture;
use crate::State;

/// How many verifications and promotions a detail lists.
const RECENT: usize = 20;

/// The delivery controller as the API sees it. Implemented by [`DeliveryHandle`].
pub trait Deliveries: Send + Sync + 'static {
    /// Every Delivery, by name.
    fn list(&self) -> Vec<DeliveryStatus>;
    /// One Delivery.
    fn get(&self, name: &str) -> Option<DeliveryStatus>;
    /// Promote by hand.
    fn promote<'a>(
        &'a self,
        delivery: &'a str,
        stage: &'a str,
        request: PromoteRequest,
    ) -> BoxFuture<'a, Result<PromoteOutcome, DeliveryError>>;
}

impl Deliveries for DeliveryHandle {
    fn list(&self) -> Vec<DeliveryStatus> {
        DeliveryHandle::list(self)
    }

    fn get(&self, name: &str) -> Option<DeliveryStatus> {
        DeliveryHandle::get(self, name)
    }

    fn promote<'a>(
        &'a self,
        delivery: &'a str,
        stage: &'a str,
        request: PromoteRequest,
    ) -> BoxFuture<'a, Result<PromoteOutcome, DeliveryError>> {
        Box::pin(DeliveryHandle::promote(self, delivery, stage, request))
    }
}

/// `GET /api/v1/deliveries/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    /// Where it stands.
    #[serde(flatten)]
    pub status: DeliveryStatus,
    /// Recent verifications, newest first.
    pub verifications: Vec<VerificationRecord>,
    /// Recent promotions, newest first.
    pub promotions: Vec<PromotionRecord>,
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> ApiError {
        let status = match &e {
            DeliveryError::NotFound(_) => StatusCode::NOT_FOUND,
            DeliveryError::Refused(_) => StatusCode::CONFLICT,
            DeliveryError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DeliveryError::Git(_) => StatusCode::BAD_GATEWAY,
            DeliveryError::Store(_) | DeliveryError::Stopped => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no Delivery named {name:?}"))
}

/// `GET /api/v1/deliveries`.
pub(crate) async fn list(AxState(state): AxState<Arc<State>>) -> Response {
    let list = state.deliveries.get().map(|d| d.list()).unwrap_or_default();
    Json(list).into_response()
}

/// `GET /api/v1/deliveries/{name}`.
pub(crate) async fn get(
    AxState(state): AxState<Arc<State>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let status = state
        .deliveries
        .get()
        .and_then(|d| d.get(&name))
        .ok_or_else(|| not_found(&name))?;
    let verifications = state
        .store
        .verifications(&name, RECENT)
        .map_err(ApiError::internal)?;
    let promotions = state
        .store
        .promotions(&name, RECENT)
        .map_err(ApiError::internal)?;
    Ok(Json(DeliveryDetail {
        status,
        verifications,
        promotions,
    })
    .into_response())
}

/// `POST /api/v1/deliveries/{name}/stages/{stage}/promote`.
pub(crate) async fn promote(
    AxState(state): AxState<Arc<State>>,
    Path((name, stage)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: PromoteRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("request body: {e}")))?;
    if request.approver.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "request body: `approver` must name who approves the promotion",
        ));
    }
    let d = state
        .deliveries
        .get()
        .ok_or_else(|| not_found(&name))?
        .clone();
    let outcome = d.promote(&name, &stage, request).await?;
    Ok(Json(outcome).into_response())
}
