//! `GET /v1/subjects/{subject}/permissions`, `GET /v1/subjects/{subject}/history`,
//! `POST /v1/subjects/{subject}/preference-links` and
//! `GET /v1/subjects/{subject}/access-report`.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::routes::check_request::parse_at;
use crate::AppState;
use domain::{ContactKind, SubjectId};
use service::access::Role;
use service::{PermissionLine, Receipt};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// RFC 3339 time to answer "as of" (default: now). Encode `+` as `%2B`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Permissions {
    pub subject: SubjectId,
    pub as_of: DateTime<Utc>,
    pub permissions: Vec<PermissionLine>,
}

/// An event recorded against one of the person's addresses while it was linked to them (an
/// unsubscribe link clicked, a STOP texted), not against the subject.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ViaAddress {
    /// The kind of address; the address itself is never stored.
    pub contact_kind: ContactKind,
    /// The address is linked to someone else as well (a household's shared email).
    pub shared: bool,
}

/// One entry of a person's history: the event's signed receipt, and `via` when it was
/// recorded against one of their addresses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub receipt: Receipt,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<ViaAddress>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    pub subject: SubjectId,
    /// The person's signed events, oldest first (at most `limit` of them): those recorded
    /// against the subject and those recorded against one of their addresses while it was
    /// linked to them.
    pub events: Vec<HistoryEntry>,
    /// Pass as `after` to get the next page.
    pub next_after: u64,
    /// Whether more events follow.
    pub has_more: bool,
}

/// Most events one page of history holds (and its default).
pub const MAX_HISTORY_PAGE: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// RFC 3339 time to answer "as of" (default: now). Encode `+` as `%2B`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
    /// Only events with a seq greater than this (default 0: from the first).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

fn parse_subject(raw: &str) -> Result<SubjectId, ApiError> {
    SubjectId::parse(raw).map_err(|e| ApiError::new(Kind::InvalidPath, e.to_string()))
}

/// Every purpose of the catalogue decided for one subject (by the subject's own events).
#[utoipa::path(
    get,
    path = "/v1/subjects/{subject}/permissions",
    tag = "subjects",
    operation_id = "get_subject_permissions",
    params(("subject" = SubjectId, Path, description = "Subject id"), AtQuery),
    responses(
        (status = 200, description = "The subject's permissions", body = Permissions),
        (status = 400, description = "Malformed path or query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the check, record or audit role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`at` is in the future", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/subjects/{subject}/permissions")]
pub async fn get_subject_permissions(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: crate::query::Query<AtQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Check, Role::Record, Role::Audit])?;
    let subject = parse_subject(&path)?;
    let at = query.at.as_deref().map(parse_at).transpose()?;
    let (rows, as_of) = state.service.permissions(&p.controller, &subject, at, service::now())?;
    let permissions = rows.into_iter().map(service::PermissionRow::line).collect();
    Ok(HttpResponse::Ok().json(Permissions { subject, as_of, permissions }))
}

/// The person's signed history, optionally as of a past moment, a page of at most 1000
/// events at a time: the events recorded against the subject and, marked with `via`, those
/// recorded against one of their addresses while it was linked to them.
#[utoipa::path(
    get,
    path = "/v1/subjects/{subject}/history",
    tag = "subjects",
    operation_id = "get_subject_history",
    params(("subject" = SubjectId, Path, description = "Subject id"), HistoryQuery),
    responses(
        (status = 200, description = "The subject's events with their receipts", body = History),
        (status = 400, description = "Malformed path or query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the audit or record role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No events for this subject of this controller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/subjects/{subject}/history")]
pub async fn get_subject_history(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: crate::query::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let controller = caller.require(&[Role::Audit, Role::Record])?.controller.clone();
    let subject = parse_subject(&path)?;
    let at = query.at.as_deref().map(parse_at).transpose()?;
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(MAX_HISTORY_PAGE);
    if limit == 0 || limit > MAX_HISTORY_PAGE || after > i64::MAX as u64 {
        return Err(ApiError::new(
            Kind::InvalidQuery,
            format!("limit must be 1 to {MAX_HISTORY_PAGE}, after 0 to 2^63 - 1"),
        ));
    }
    // A long history is read off the async workers.
    let service = state.service.clone();
    let who = subject.clone();
    let (events, has_more) = web::block(move || service.history_page(&controller, &who, at, after, limit))
        .await
        .map_err(|_| ApiError::bare(Kind::Internal))??;
    let next_after = events.last().map_or(after, |e| e.receipt.seq);
    let events = events
        .into_iter()
        .map(|e| HistoryEntry {
            receipt: e.receipt,
            via: e.via.map(|v| ViaAddress { contact_kind: v.kind, shared: v.shared }),
        })
        .collect();
    Ok(HttpResponse::Ok().json(History { subject, events, next_after, has_more }))
}

/// Optional body of a preference-link request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceLinkRequest {
    /// Days the link works (1 to 90; default: the server's `--preference-link-days`, 14).
    #[schema(minimum = 1, maximum = 90)]
    pub valid_for_days: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreferenceLink {
    /// The page the person opens: `{public URL}/p/{token}`.
    pub url: String,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// A signed link that lets one subject manage their own preferences for a limited time.
#[utoipa::path(
    post,
    path = "/v1/subjects/{subject}/preference-links",
    tag = "subjects",
    operation_id = "create_preference_link",
    params(("subject" = SubjectId, Path, description = "Subject id")),
    request_body(content = Option<PreferenceLinkRequest>, description = "Optional; an empty body takes the defaults"),
    responses(
        (status = 201, description = "The link", body = PreferenceLink),
        (status = 400, description = "Malformed path or body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the record role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "valid_for_days out of range", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[post("/v1/subjects/{subject}/preference-links")]
pub async fn create_preference_link(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Record])?;
    let subject = parse_subject(&path)?;
    // No body, or JSON `null`, takes the defaults.
    let req: PreferenceLinkRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PreferenceLinkRequest::default()
    } else {
        serde_json::from_slice::<Option<PreferenceLinkRequest>>(&body)
            .map_err(|e| ApiError::new(Kind::InvalidJson, crate::error::redact(&e.to_string())))?
            .unwrap_or_default()
    };
    let days = req.valid_for_days.unwrap_or(state.preference_link_days);
    let (token, expires_at) = state.service.preference_link(&p.controller, &subject, days, Utc::now())?;
    let url = format!("{}/p/{token}", state.public_url);
    Ok(HttpResponse::Created().json(PreferenceLink { url, token, expires_at }))
}

/// A subject access bundle: the person's whole record (their events and those at their
/// addresses while linked, the notices they were shown), each event with its receipt and an
/// inclusion proof to one signed checkpoint, the keys, their addresses by kind and dates,
/// and what is permitted now, all signed by the ledger (see docs/FORMAT.md). With
/// `Accept: text/html`, the plain-English report of the same bundle, which prints well.
#[utoipa::path(
    get,
    path = "/v1/subjects/{subject}/access-report",
    tag = "subjects",
    operation_id = "get_subject_access_report",
    params(("subject" = SubjectId, Path, description = "Subject id")),
    responses(
        (status = 200, description = "The signed bundle, or with `Accept: text/html` the report", content(
            (service::SignedAccessBundle = "application/json"),
            (String = "text/html"),
        )),
        (status = 400, description = "Malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the audit role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No events for this subject of this controller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No checkpoint covers the newest events yet; retry shortly", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/subjects/{subject}/access-report")]
pub async fn get_subject_access_report(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let controller = caller.require(&[Role::Audit])?.controller.clone();
    let subject = parse_subject(&path)?;
    let bundle = state.service.subject_access(&controller, &subject, Utc::now()).await?;
    let wants_html = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("content-security-policy", crate::access_report::report_csp()))
            .insert_header(("cache-control", "no-store"))
            .body(crate::access_report::access_report_html(&bundle)));
    }
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(bundle))
}
