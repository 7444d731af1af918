//! `PUT /v1/notices/{notice}`, `GET /v1/notices/{notice}` and `GET /v1/notices`: the privacy
//! notices a controller published, each signed into the log as a `notice.published` event.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::AppState;
use domain::Token;
use service::access::Role;
use service::{NoticeRequest, NoticeVersion, Receipt, Recorder};

/// Most bytes of a notice's body: its text (256 KiB) escaped as JSON, and the rest.
pub const MAX_NOTICE_BODY: usize = 1024 * 1024;

/// A published notice: what the `notice.published` event signed, and where it sits.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoticeView {
    pub id: Token,
    pub version: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Lower-case hex SHA-256 of the notice's exact text.
    pub sha256: String,
    /// The text, when it was published through the ledger (left out of the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The `notice.published` event and its seq.
    pub event: Uuid,
    pub seq: u64,
    pub published_at: DateTime<Utc>,
}

impl NoticeView {
    fn of(nv: NoticeVersion, with_text: bool) -> Self {
        let n = nv.notice;
        Self {
            id: n.id,
            version: n.version,
            title: n.title,
            url: n.url,
            sha256: n.sha256,
            text: n.text.filter(|_| with_text),
            event: nv.event,
            seq: nv.seq,
            published_at: nv.recorded_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoticeList {
    pub notices: Vec<NoticeView>,
}

fn parse_notice(raw: &str) -> Result<Token, ApiError> {
    Token::parse(raw).map_err(|e| ApiError::new(Kind::InvalidPath, e.to_string()))
}

/// Publish a notice: its version label, title, URL and the SHA-256 of its exact text (or the
/// text itself, which the ledger then keeps and serves). Signed into the log as a
/// `notice.published` event. A notice's wording never changes: the same notice again
/// answers 200 with its first receipt; other wording under the same id is a 409.
#[utoipa::path(
    put,
    path = "/v1/notices/{notice}",
    tag = "notices",
    operation_id = "put_notice",
    params(("notice" = String, Path, description = "Notice id, e.g. `privacy-2026-04`: what consents name as `notice_version`")),
    request_body = NoticeRequest,
    responses(
        (status = 201, description = "Published: the receipt of the `notice.published` event", body = Receipt),
        (status = 200, description = "This notice was already published: its receipt", body = Receipt),
        (status = 400, description = "Malformed path or body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Published before with other wording", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The notice breaks a rule (a hash that is not the text's, say)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn put_notice(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<NoticeRequest>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Admin])?;
    let id = parse_notice(&path)?;
    let by = Recorder::ApiKey(&p.key_id);
    let published = state.service.publish_notice(&p.controller, id, body.into_inner(), by, Utc::now()).await?;
    let mut answer = if published.new { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(answer.json(published.receipt))
}

/// One published notice, with its text when the ledger holds it.
#[utoipa::path(
    get,
    path = "/v1/notices/{notice}",
    tag = "notices",
    operation_id = "get_notice",
    params(("notice" = String, Path, description = "Notice id")),
    responses(
        (status = 200, description = "The notice", body = NoticeView),
        (status = 400, description = "Malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such notice of this controller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_notice(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Check, Role::Record, Role::Audit, Role::Admin])?;
    let id = parse_notice(&path)?;
    Ok(HttpResponse::Ok().json(NoticeView::of(state.service.notice(&p.controller, &id)?, true)))
}

/// Every notice the controller published, in id order (without their texts).
#[utoipa::path(
    get,
    path = "/v1/notices",
    tag = "notices",
    operation_id = "list_notices",
    responses(
        (status = 200, description = "The notices", body = NoticeList),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/notices")]
pub async fn list_notices(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Check, Role::Record, Role::Audit, Role::Admin])?;
    let notices = state.service.notices(&p.controller)?.into_iter().map(|nv| NoticeView::of(nv, false)).collect();
    Ok(HttpResponse::Ok().json(NoticeList { notices }))
}
