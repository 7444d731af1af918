//! `GET /v1/retention/due`: the subjects whose retention has passed.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::AppState;
use service::access::Role;
use service::RetentionDue;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetentionDueList {
    pub due: Vec<RetentionDue>,
}

/// The subjects whose relationship ended longer ago than the retention rules of the purposes
/// their record names (or, naming none, the longest rule of the catalogue). A purpose without
/// a rule keeps the record. `consent-ledger retention apply` erases them.
#[utoipa::path(
    get,
    path = "/v1/retention/due",
    tag = "subjects",
    operation_id = "get_retention_due",
    responses(
        (status = 200, description = "The subjects due for erasure", body = RetentionDueList),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the audit role", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/retention/due")]
pub async fn get_retention_due(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Audit])?;
    let service = state.service.clone();
    let controller = p.controller.clone();
    let due = web::block(move || service.retention_due(&controller, service::now()))
        .await
        .map_err(|_| ApiError::bare(Kind::Internal))??;
    Ok(HttpResponse::Ok().json(RetentionDueList { due }))
}
