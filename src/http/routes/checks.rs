//! `GET /v1/check` and `POST /v1/checks`: may this contact or share happen, now or as of a
//! past moment?

use actix_web::{get, web, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::Role;
use crate::domain::{
    Channel, ContactKind, ContactPoint, ControllerId, LawfulBasis, PurposeId, Reason, RecipientId, SubjectId,
};
use crate::format::to_micros;
use crate::format::SignedDecision;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, Kind, Problem};
use crate::http::AppState;
use crate::service::{CheckInput, CheckTarget};

/// Most targets one `POST /v1/checks` may carry.
pub const MAX_CHECKS: usize = 10_000;
/// Largest body of `POST /v1/checks`, in bytes.
pub const MAX_CHECKS_BODY: usize = 4 * 1024 * 1024;

/// One permission question. Give exactly one of `subject`, `email`, `phone` or `post`.
/// Not `Debug`: it holds addresses, which must never reach a log.
#[derive(Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckRequest {
    /// Purpose id.
    #[param(value_type = PurposeId)]
    #[schema(value_type = PurposeId)]
    pub purpose: String,
    /// Channel to use; by contact point it defaults to the address's own channel (`sms` for
    /// a phone number). Without it, a check by subject asks about the purpose as a whole.
    pub channel: Option<Channel>,
    /// Subject id (only the subject's own events count).
    #[param(value_type = Option<SubjectId>)]
    #[schema(value_type = Option<SubjectId>)]
    pub subject: Option<String>,
    /// Email address about to be used (its own events and those of subjects linked to it).
    pub email: Option<String>,
    /// Phone number in E.164 about to be used.
    pub phone: Option<String>,
    /// Postal address about to be used.
    pub post: Option<String>,
    /// Recipient, for sharing purposes.
    #[param(value_type = Option<RecipientId>)]
    #[schema(value_type = Option<RecipientId>)]
    pub recipient: Option<String>,
    /// RFC 3339 time to answer "as of" (default: now). In a query string, encode `+` as `%2B`.
    #[param(value_type = Option<String>, format = DateTime)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
    /// Answer only from a state that includes the event with this seq (read your writes).
    pub min_seq: Option<u64>,
    /// Also return the decision signed with the ledger key.
    pub signed: Option<bool>,
    /// Also return RFC 8058 one-click unsubscribe header values (checks by email only).
    pub unsubscribe: Option<bool>,
}

/// The answer to a check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckResponse {
    pub permitted: bool,
    pub reason: Reason,
    pub basis: LawfulBasis,
    /// Ids of the events that decided the answer.
    pub decided_by: Vec<Uuid>,
    /// The moment the answer is for.
    pub as_of: DateTime<Utc>,
    pub purpose: PurposeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientId>,
    /// The log held at least this many events when the answer was decided.
    pub log_size: u64,
    /// The decision signed with the ledger key (when `signed=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_decision: Option<SignedDecision>,
    /// Value for the `List-Unsubscribe` header (when `unsubscribe=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_unsubscribe: Option<String>,
    /// Value for the `List-Unsubscribe-Post` header (when `unsubscribe=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_unsubscribe_post: Option<String>,
}

/// How long a check with `min_seq` waits for the log to reach it.
const MIN_SEQ_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(Kind::InvalidQuery, msg)
}

/// Parses an RFC 3339 time, accepting a space for the `+` a query string decoded.
pub fn parse_at(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(&raw.trim().replace(' ', "+"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad("at must be an RFC 3339 time such as 2026-01-31T12:00:00Z"))
}

impl CheckRequest {
    pub fn parse(&self) -> Result<CheckInput, ApiError> {
        let purpose = PurposeId::parse(self.purpose.as_str()).map_err(|e| bad(e.to_string()))?;
        let contact = |channel: Channel, raw: &str| {
            ContactPoint::parse(channel, raw).map(CheckTarget::Contact).map_err(|e| bad(e.to_string()))
        };
        let target = match (&self.subject, &self.email, &self.phone, &self.post) {
            (Some(s), None, None, None) => {
                CheckTarget::Subject(SubjectId::parse(s.as_str()).map_err(|e| bad(e.to_string()))?)
            }
            (None, Some(e), None, None) => contact(Channel::Email, e)?,
            (None, None, Some(p), None) => contact(Channel::Sms, p)?,
            (None, None, None, Some(p)) => contact(Channel::Post, p)?,
            _ => return Err(bad("give exactly one of subject, email, phone or post")),
        };
        let recipient =
            self.recipient.as_deref().map(RecipientId::parse).transpose().map_err(|e| bad(e.to_string()))?;
        let at = self.at.as_deref().map(parse_at).transpose()?;
        Ok(CheckInput { target, purpose, channel: self.channel, recipient, at })
    }
}

/// Answers one check with the extras it asked for.
pub async fn answer(
    state: &AppState,
    controller: &ControllerId,
    req: &CheckRequest,
    now: DateTime<Utc>,
) -> Result<CheckResponse, ApiError> {
    if let Some(seq) = req.min_seq {
        if !state.service.ledger().wait_for(seq, MIN_SEQ_WAIT).await {
            return Err(ApiError::new(Kind::Validation, "min_seq is beyond the log"));
        }
    }
    answer_now(state, controller, req, now)
}

/// Answers one check without waiting: a `min_seq` beyond the log is an error at once.
pub fn answer_now(
    state: &AppState,
    controller: &ControllerId,
    req: &CheckRequest,
    now: DateTime<Utc>,
) -> Result<CheckResponse, ApiError> {
    let input = input_of(state, req)?;
    let out = state.service.check(controller, &input, now)?;
    respond(state, controller, req, &input, out, now)
}

/// The question a request asks, if the log already holds its `min_seq`.
pub fn input_of(state: &AppState, req: &CheckRequest) -> Result<CheckInput, ApiError> {
    let input = req.parse()?;
    if req.min_seq.is_some_and(|seq| seq > state.service.ledger().committed_seq()) {
        return Err(ApiError::new(Kind::Validation, "min_seq is beyond the log"));
    }
    Ok(input)
}

/// The answer to a request: the decision, with a signed decision and unsubscribe headers
/// when asked for.
pub fn respond(
    state: &AppState,
    controller: &ControllerId,
    req: &CheckRequest,
    input: &CheckInput,
    out: crate::service::CheckOutcome,
    now: DateTime<Utc>,
) -> Result<CheckResponse, ApiError> {
    let signed_decision = match req.signed {
        Some(true) => Some(state.service.sign_decision(controller, input, &out, now)?),
        _ => None,
    };
    let (list_unsubscribe, list_unsubscribe_post) = match (req.unsubscribe, &out.contact) {
        (Some(true), Some(contact)) if contact.kind == ContactKind::Email => {
            let token = state.service.unsubscribe_token(controller, contact, &input.purpose, now);
            (Some(format!("<{}/u/{token}>", state.public_url)), Some("List-Unsubscribe=One-Click".to_owned()))
        }
        (Some(true), _) => {
            return Err(ApiError::new(Kind::Validation, "unsubscribe links are made for checks by email"))
        }
        _ => (None, None),
    };
    Ok(CheckResponse {
        permitted: out.decision.permitted,
        reason: out.decision.reason,
        basis: out.decision.basis,
        decided_by: out.decision.decided_by,
        as_of: out.as_of,
        purpose: input.purpose.clone(),
        channel: out.channel,
        recipient: input.recipient.clone(),
        log_size: out.log_size,
        signed_decision,
        list_unsubscribe,
        list_unsubscribe_post,
    })
}

/// Is this contact or share permitted?
#[utoipa::path(
    get,
    path = "/v1/check",
    tag = "checks",
    operation_id = "get_check",
    params(CheckRequest),
    responses(
        (status = 200, description = "The answer, its reason and the deciding events", body = CheckResponse),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the check role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown purpose (at that time)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The question breaks a rule", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/check")]
pub async fn get_check(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<CheckRequest>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Check])?;
    Ok(HttpResponse::Ok().json(answer(&state, &p.controller, &query, to_micros(Utc::now())).await?))
}

/// Many checks at once, answered in request order. As a JSON array (at most 10 000; any bad
/// item refuses the whole request), or as NDJSON (`Content-Type: application/x-ndjson`, one
/// question per line, any number of lines): the answers stream back as NDJSON, line for line,
/// a bad line answered by `{"error": <problem>}` in its place.
#[utoipa::path(
    post,
    path = "/v1/checks",
    tag = "checks",
    operation_id = "create_checks",
    request_body(content(
        (Vec<CheckRequest> = "application/json"),
        (CheckRequest = "application/x-ndjson"),
    )),
    responses(
        (status = 200, description = "One answer per question, in order (NDJSON answers NDJSON)", content(
            (Vec<CheckResponse> = "application/json"),
            (CheckResponse = "application/x-ndjson"),
        )),
        (status = 400, description = "Malformed body or item", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the check role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "An item names an unknown purpose", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "JSON body over 4 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor NDJSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A `min_seq` is beyond the log", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_checks(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Check])?;
    let content_type = req.content_type().to_owned();
    if content_type.starts_with("application/x-ndjson") {
        return Ok(super::bulk::stream_checks(state, p.controller.clone(), payload));
    }
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(Kind::UnsupportedMediaType, "send application/json or application/x-ndjson"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::new(Kind::InvalidJson, "the body could not be read"))?;
        if body.len() + chunk.len() > MAX_CHECKS_BODY {
            return Err(ApiError::new(
                Kind::PayloadTooLarge,
                format!("the body may be at most {MAX_CHECKS_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let items: Vec<CheckRequest> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(Kind::InvalidJson, crate::http::error::redact(&e.to_string())))?;
    if items.len() > MAX_CHECKS {
        return Err(ApiError::new(Kind::InvalidJson, format!("at most {MAX_CHECKS} checks per request")));
    }
    let now = to_micros(Utc::now());
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix =
            |e: ApiError| ApiError::new(e.kind, format!("check {i}: {}", e.detail.clone().unwrap_or_default()));
        out.push(answer(&state, &p.controller, item, now).await.map_err(prefix)?);
    }
    Ok(HttpResponse::Ok().json(out))
}
