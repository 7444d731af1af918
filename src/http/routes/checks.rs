//! `GET /v1/check` and `POST /v1/checks`: may this contact or share happen, now or as of a
//! past moment?

use actix_web::{get, web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::AppState;
use service::access::Role;
use service::CheckQuery;

pub use super::check_request::{parse_at, respond, CheckRequest, CheckResponse};

/// Most targets one `POST /v1/checks` may carry.
pub const MAX_CHECKS: usize = 10_000;
/// Largest body of `POST /v1/checks`, in bytes.
pub const MAX_CHECKS_BODY: usize = 4 * 1024 * 1024;

/// How long a check with `min_seq` waits for the log to reach it.
const MIN_SEQ_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

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
pub async fn get_check(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // Read before the role is checked, as every other route's query extractor (`crate::query::Query`) reads it.
    let query = CheckRequest::from_query(req.query_string())?;
    let p = caller.require(&[Role::Check])?;
    let q = query.parse()?;
    let answer = state
        .service
        .check_waiting(&p.controller, std::slice::from_ref(&q), service::now(), MIN_SEQ_WAIT)
        .await?
        .pop()
        .ok_or_else(|| ApiError::bare(Kind::Internal))??;
    let body = respond(&state, &q, answer).to_json();
    // The content type as a static header value (`ContentType::json()` formats and
    // allocates one a request).
    let json = actix_web::http::header::HeaderValue::from_static("application/json");
    Ok(HttpResponse::Ok().insert_header((actix_web::http::header::CONTENT_TYPE, json)).body(body))
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
        (status = 503, description = "Too many NDJSON bulk checks at once (`/problems/busy`, with `Retry-After`)", body = Problem, content_type = "application/problem+json"),
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
        return super::bulk::stream_checks(state, p.controller.clone(), payload);
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
        .map_err(|e| ApiError::new(Kind::InvalidJson, crate::error::redact(&e.to_string())))?;
    if items.len() > MAX_CHECKS {
        return Err(ApiError::new(Kind::InvalidJson, format!("at most {MAX_CHECKS} checks per request")));
    }
    // Every item parsed, the good ones answered in one batch; the first item (in order) that
    // fails, by parse or by answer, refuses the whole request.
    let parsed: Vec<Result<CheckQuery, ApiError>> = items.iter().map(CheckRequest::parse).collect();
    let queries: Vec<CheckQuery> = parsed.iter().flatten().cloned().collect();
    // Up to 10 000 checks are answered off the async workers, once the log holds the greatest
    // `min_seq` among them.
    if let Some(seq) = queries.iter().filter_map(|q| q.min_seq).max() {
        state.service.wait_for(seq, MIN_SEQ_WAIT).await;
    }
    let (service, controller, batch) = (state.service.clone(), p.controller.clone(), queries.clone());
    let mut answers = web::block(move || service.check_batch(&controller, &batch, service::now()))
        .await
        .map_err(|_| ApiError::bare(Kind::Internal))??
        .into_iter();
    let mut out = Vec::with_capacity(items.len());
    let mut queries = queries.iter();
    for (i, item) in parsed.into_iter().enumerate() {
        let prefix =
            |e: ApiError| ApiError::new(e.kind, format!("check {i}: {}", e.detail.clone().unwrap_or_default()));
        item.map_err(prefix)?;
        let (q, answer) = queries.next().zip(answers.next()).ok_or_else(|| ApiError::bare(Kind::Internal))?;
        out.push(respond(&state, q, answer.map_err(|e| prefix(e.into()))?));
    }
    Ok(HttpResponse::Ok().json(out))
}
