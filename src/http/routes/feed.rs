//! The change feed: `GET /v1/feed` pages through the controller's events in seq order, and
//! `GET /v1/feed/stream` is a server-sent-events stream that resumes from `Last-Event-ID`.
//! A downstream suppression list kept from either is exactly the ledger's.

use std::time::Duration;

use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::AppState;
use service::access::Role;
use service::Receipt;

/// Default and largest page of `GET /v1/feed`.
pub const DEFAULT_FEED_LIMIT: usize = 100;
pub const MAX_FEED_LIMIT: usize = 1000;
/// The greatest seq a query may name (2^63 - 1), as the OpenAPI document says.
pub const MAX_SEQ: u64 = i64::MAX as u64;
/// Events sent per read while a stream catches up.
pub const STREAM_PAGE: usize = 500;
/// A comment line keeps idle streams open through proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Return events with a seq greater than this (default 0: from the start). Seqs are
    /// below 2^63.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub after: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// One message of `GET /v1/feed/stream`, as its server-sent-event fields (documentation only:
/// the stream is `text/event-stream`, not JSON).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedMessage {
    /// The event's seq (send it back as `Last-Event-ID` to resume).
    pub id: String,
    /// The event's type, e.g. `consent.withdrawn`.
    pub event: String,
    /// The event's receipt, as JSON (as `GET /v1/feed` gives it).
    pub data: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedPage {
    /// The events, in seq order, as receipts.
    pub events: Vec<Receipt>,
    /// Pass as `after` to get the next page.
    pub next_after: u64,
    pub has_more: bool,
}

/// One page of the controller's events after a seq.
#[utoipa::path(
    get,
    path = "/v1/feed",
    tag = "feed",
    operation_id = "get_feed",
    params(FeedQuery),
    responses(
        (status = 200, description = "A page of events", body = FeedPage),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/feed")]
pub async fn get_feed(
    state: web::Data<AppState>,
    caller: Caller,
    query: crate::query::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Check, Role::Audit, Role::Record])?;
    let limit = query.limit.unwrap_or(DEFAULT_FEED_LIMIT);
    if limit == 0 || limit > MAX_FEED_LIMIT {
        return Err(ApiError::new(Kind::InvalidQuery, format!("limit must be 1 to {MAX_FEED_LIMIT}")));
    }
    let after = query.after.unwrap_or(0);
    if after > MAX_SEQ {
        return Err(ApiError::new(Kind::InvalidQuery, format!("after must be 0 to {MAX_SEQ}")));
    }
    // A page of up to 1000 receipts is read off the async workers.
    let (service, controller) = (state.service.clone(), p.controller.clone());
    let (events, has_more) = web::block(move || service.feed(&controller, after, limit))
        .await
        .map_err(|_| ApiError::bare(Kind::Internal))??;
    let next_after = events.last().map(|r| r.seq).unwrap_or(after);
    Ok(HttpResponse::Ok().json(FeedPage { events, next_after, has_more }))
}

fn sse_event(r: &Receipt) -> web::Bytes {
    let data = serde_json::to_string(r).unwrap_or_default();
    web::Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", r.seq, r.event.kind.as_str()))
}

/// One read of a stream: the events after a seq, and the seq read up to (past the last event
/// when the rest were not for this reader).
pub type StreamPage = Result<(Vec<Receipt>, u64), service::ServiceError>;

/// A server-sent-events body of receipts: each page `page` reads after the last seq, then,
/// once caught up, each new page as events become durable; a comment every 15 s keeps idle
/// streams open through proxies.
pub fn receipt_stream<F>(
    service: std::sync::Arc<service::Service>,
    after: u64,
    page: F,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>>
where
    F: Fn(&service::Service, u64) -> StreamPage + 'static,
{
    let rx = service.subscribe();
    futures_util::stream::unfold((after, rx, service, page), |(after, mut rx, service, page)| async move {
        let mut after = after;
        loop {
            rx.borrow_and_update();
            match page(&service, after) {
                Ok((events, next)) if !events.is_empty() => {
                    let mut out = Vec::new();
                    for r in &events {
                        out.extend_from_slice(&sse_event(r));
                    }
                    return Some((Ok(web::Bytes::from(out)), (next, rx, service, page)));
                }
                Ok((_, next)) if next > after => {
                    // Read past events that were not for this reader: read on.
                    after = next;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "feed stream read failed");
                    return None;
                }
            }
            match tokio::time::timeout(KEEP_ALIVE, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return None,
                Err(_) => return Some((Ok(web::Bytes::from_static(b": keep-alive\n\n")), (after, rx, service, page))),
            }
        }
    })
}

/// The `after` of a stream: `Last-Event-ID` when the client resumes, else the query's.
pub fn stream_start(req: &HttpRequest, after: Option<u64>) -> Result<u64, ApiError> {
    let after = match req.headers().get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::new(Kind::InvalidQuery, "Last-Event-ID must be a seq"))?,
        None => after.unwrap_or(0),
    };
    if after > MAX_SEQ {
        return Err(ApiError::new(Kind::InvalidQuery, format!("after must be 0 to {MAX_SEQ}")));
    }
    Ok(after)
}

/// Server-sent events: every event of the controller after `Last-Event-ID` (or `after`), then
/// each new one as it becomes durable. Each message's `id` is the event's seq.
#[utoipa::path(
    get,
    path = "/v1/feed/stream",
    tag = "feed",
    operation_id = "get_feed_stream",
    params(("after" = Option<u64>, Query, description = "Start after this seq when there is no Last-Event-ID")),
    responses(
        (status = 200, description = "text/event-stream of receipts, one message per event", content_type = "text/event-stream", body = FeedMessage),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/feed/stream")]
pub async fn get_feed_stream(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: crate::query::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let controller = caller.require(&[Role::Check, Role::Audit, Role::Record])?.controller.clone();
    let after = stream_start(&req, query.after)?;
    let stream = receipt_stream(state.service.clone(), after, move |service, after| {
        let (events, _) = service.feed(&controller, after, STREAM_PAGE)?;
        let next = events.last().map_or(after, |r| r.seq);
        Ok((events, next))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream))
}
