//! `PUT /v1/purposes/{purpose}` and `GET /v1/purposes`: the controller's purpose catalogue.

use actix_web::{get, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, Kind};
use crate::AppState;
use domain::{Channel, LawfulBasis, PurposeDefinition, PurposeId, RecipientId, Retention, Token};
use service::access::Role;
use service::{PurposeVersion, Recorder};

/// A purpose in the catalogue with the log position of its current version: the fields of
/// its definition, then where it was defined. (Spelled out rather than flattened: the
/// definition's schema is closed, so a flattened one would not validate.)
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurposeView {
    pub id: PurposeId,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub basis: LawfulBasis,
    pub marketing: bool,
    pub channels: Vec<Channel>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_valid_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The published notice that describes the purpose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<Token>,
    /// Seq of the `purpose.defined` event of this version.
    pub version_seq: u64,
    pub defined_at: DateTime<Utc>,
}

impl From<PurposeVersion> for PurposeView {
    fn from(v: PurposeVersion) -> Self {
        let PurposeDefinition {
            title,
            description,
            basis,
            marketing,
            channels,
            recipients,
            consent_valid_days,
            retention,
            notice,
        } = v.definition;
        Self {
            id: v.id,
            title,
            description,
            basis,
            marketing,
            channels,
            recipients,
            consent_valid_days,
            retention,
            notice,
            version_seq: v.seq,
            defined_at: v.recorded_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurposeList {
    pub purposes: Vec<PurposeView>,
}

pub fn parse_purpose(raw: &str) -> Result<PurposeId, ApiError> {
    PurposeId::parse(raw).map_err(|e| ApiError::new(Kind::InvalidPath, e.to_string()))
}

/// Define or revise a purpose. The definition is signed into the log as a `purpose.defined`
/// event; an unchanged definition records nothing.
#[utoipa::path(
    put,
    path = "/v1/purposes/{purpose}",
    tag = "purposes",
    operation_id = "put_purpose",
    params(("purpose" = PurposeId, Path, description = "Purpose id, e.g. `newsletter` or `share:contractors`")),
    request_body = PurposeDefinition,
    responses(
        (status = 200, description = "The purpose as now defined", body = PurposeView),
        (status = 400, description = "Malformed body", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The definition breaks a rule", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[put("/v1/purposes/{purpose}")]
pub async fn put_purpose(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<PurposeDefinition>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Admin])?;
    let id = parse_purpose(&path)?;
    let by = Recorder::ApiKey(&p.key_id);
    state.service.define_purpose(&p.controller, id.clone(), body.into_inner(), by, Utc::now()).await?;
    let v = state
        .service
        .purposes(&p.controller)?
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(|| ApiError::bare(Kind::Internal))?;
    Ok(HttpResponse::Ok().json(PurposeView::from(v)))
}

/// List the controller's purposes.
#[utoipa::path(
    get,
    path = "/v1/purposes",
    tag = "purposes",
    operation_id = "list_purposes",
    responses(
        (status = 200, description = "The catalogue", body = PurposeList),
        (status = 401, description = "No valid API key", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/purposes")]
pub async fn list_purposes(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Check, Role::Record, Role::Audit, Role::Admin])?;
    let purposes = state.service.purposes(&p.controller)?.into_iter().map(PurposeView::from).collect();
    Ok(HttpResponse::Ok().json(PurposeList { purposes }))
}
