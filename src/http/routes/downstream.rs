//! Downstream systems: `PUT /v1/downstream/{system}` registers one (a `downstream.registered`
//! event), `GET /v1/downstream` lists them; with a key bound to a system (role `downstream`),
//! `GET /v1/downstream/feed` (and `/feed/stream`, server-sent events) gives the events that
//! concern it, `POST /v1/downstream/acknowledgements` takes its signed acknowledgement (a
//! `downstream.acknowledged` event) and `POST /v1/downstream/lookup` the blind indexes of
//! addresses it holds; `GET /v1/downstream/overdue` (role `audit`) lists what is overdue.

use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::routes::feed::{receipt_stream, stream_start, FeedQuery, DEFAULT_FEED_LIMIT, MAX_FEED_LIMIT, MAX_SEQ};
use crate::AppState;
use domain::downstream::DEFAULT_DEADLINE_SECONDS;
use domain::{Acknowledgement, Channel, DownstreamSystem, EventType, PurposeId, Token};
use service::access::{Principal, Role};
use service::{ContactRef, ContactRequest, Receipt, Recorder, MAX_LOOKUP};

/// Most bytes of an acknowledgement or a lookup: 1000 event ids or addresses and the rest
/// (the events' 16 KiB would refuse a list the API promises to take).
pub const MAX_LIST_BODY: usize = 256 * 1024;

/// Path segments the API uses under `/v1/downstream/`, which no system may take as its id.
const RESERVED: [&str; 4] = ["feed", "overdue", "acknowledgements", "lookup"];

fn default_deadline() -> u32 {
    DEFAULT_DEADLINE_SECONDS
}

/// A downstream system as a controller registers it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownstreamRequest {
    /// Its name as people know it, e.g. "Acme Mailing Ltd".
    #[schema(max_length = 200)]
    pub name: String,
    /// The purposes it acts on (at least one, each in the catalogue).
    pub purposes: Vec<PurposeId>,
    /// The channels it acts on; empty or absent: every channel.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Seconds it has to apply a change: default 172800 (48 hours), at most 30 days.
    #[serde(default = "default_deadline")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub deadline_seconds: u32,
    /// The Ed25519 key it signs acknowledgements with, as a C2SP verifier key.
    pub vkey: String,
    /// Where to push its events (Standard Webhooks); fetch the signing secret from
    /// `GET /v1/downstream/{system}/webhook-secret`.
    #[schema(max_length = 2000)]
    pub webhook_url: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DownstreamView {
    #[serde(flatten)]
    pub system: DownstreamSystem,
    /// Seq of the `downstream.registered` event in force.
    pub version_seq: u64,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DownstreamList {
    pub systems: Vec<DownstreamView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SystemFeedPage {
    /// The events that concern the system, in seq order, as receipts.
    pub events: Vec<Receipt>,
    /// Pass as `after` for the next page (the last seq read, which may be past the last event).
    pub next_after: u64,
    pub has_more: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OverdueEventView {
    pub id: Uuid,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub recorded_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OverdueSystem {
    pub system: Token,
    pub name: String,
    pub deadline_seconds: u32,
    /// Its events past their deadline without an acknowledgement, oldest first.
    pub overdue: Vec<OverdueEventView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OverdueList {
    pub as_of: DateTime<Utc>,
    pub systems: Vec<OverdueSystem>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// 1 to 1000 addresses the system holds.
    #[schema(value_type = Vec<ContactRequest>)]
    pub addresses: Vec<ContactRequest>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LookupAnswer {
    /// The blind index of each address, in request order, as feed events name contacts.
    pub contacts: Vec<ContactRef>,
}

/// The system a `downstream` key is bound to.
fn bound(p: &Principal) -> Result<&Token, ApiError> {
    p.system.as_ref().ok_or_else(|| ApiError::new(Kind::Forbidden, "this key is bound to no downstream system"))
}

/// Register or revise a downstream system, signed into the log as `downstream.registered`.
/// The same registration again answers 200 and records nothing.
#[utoipa::path(
    put,
    path = "/v1/downstream/{system}",
    tag = "downstream",
    operation_id = "put_downstream",
    params(("system" = String, Path, description = "System id, e.g. `acme-mailing`")),
    request_body = DownstreamRequest,
    responses(
        (status = 201, description = "Registered: the receipt of its `downstream.registered` event", body = Receipt),
        (status = 200, description = "Already registered so: its receipt", body = Receipt),
        (status = 400, description = "Malformed path or body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The registration breaks a rule (an unknown purpose, a key that is not one)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn put_downstream(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<DownstreamRequest>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Admin])?;
    let id = Token::parse(path.into_inner()).map_err(|e| ApiError::new(Kind::InvalidPath, e.to_string()))?;
    if RESERVED.contains(&id.as_str()) {
        return Err(ApiError::new(Kind::InvalidPath, format!("{id} is a word the API uses; choose another system id")));
    }
    let r = body.into_inner();
    let system = DownstreamSystem {
        id,
        name: r.name,
        purposes: r.purposes,
        channels: r.channels,
        deadline_seconds: r.deadline_seconds,
        vkey: r.vkey,
        webhook_url: r.webhook_url,
    };
    let by = Recorder::ApiKey(&p.key_id);
    let published = state.service.register_downstream(&p.controller, system, by, Utc::now()).await?;
    let mut answer = if published.new { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(answer.json(published.receipt))
}

/// The controller's downstream systems, as registered now.
#[utoipa::path(
    get,
    path = "/v1/downstream",
    tag = "downstream",
    operation_id = "list_downstream",
    responses(
        (status = 200, description = "The systems", body = DownstreamList),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin or audit role", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/downstream")]
pub async fn list_downstream(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Admin, Role::Audit])?;
    let systems = state
        .service
        .downstream_systems(&p.controller)?
        .into_iter()
        .map(|v| DownstreamView { system: v.system, version_seq: v.seq, registered_at: v.recorded_at })
        .collect();
    Ok(HttpResponse::Ok().json(DownstreamList { systems }))
}

/// The events that concern the caller's system (the purposes and channels it acts on,
/// objections to all marketing, restrictions, erasures), a page at a time.
#[utoipa::path(
    get,
    path = "/v1/downstream/feed",
    tag = "downstream",
    operation_id = "get_downstream_feed",
    params(FeedQuery),
    responses(
        (status = 200, description = "A page of the system's events", body = SystemFeedPage),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs a downstream system's key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The key's system is not registered", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/downstream/feed")]
pub async fn get_downstream_feed(
    state: web::Data<AppState>,
    caller: Caller,
    query: crate::query::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Downstream])?;
    let system = bound(p)?.clone();
    let limit = query.limit.unwrap_or(DEFAULT_FEED_LIMIT);
    let after = query.after.unwrap_or(0);
    if limit == 0 || limit > MAX_FEED_LIMIT || after > MAX_SEQ {
        return Err(ApiError::new(
            Kind::InvalidQuery,
            format!("limit must be 1 to {MAX_FEED_LIMIT}, after 0 to {MAX_SEQ}"),
        ));
    }
    let (service, controller) = (state.service.clone(), p.controller.clone());
    let page = web::block(move || service.downstream_feed(&controller, &system, after, limit))
        .await
        .map_err(|_| ApiError::bare(Kind::Internal))??;
    Ok(HttpResponse::Ok().json(SystemFeedPage {
        events: page.events,
        next_after: page.next_after,
        has_more: page.has_more,
    }))
}

/// The caller's system's events as server-sent events, resuming from `Last-Event-ID`.
#[utoipa::path(
    get,
    path = "/v1/downstream/feed/stream",
    tag = "downstream",
    operation_id = "get_downstream_feed_stream",
    params(("after" = Option<u64>, Query, description = "Start after this seq when there is no Last-Event-ID")),
    responses(
        (status = 200, description = "text/event-stream of receipts, one message per event", content_type = "text/event-stream", body = crate::routes::feed::FeedMessage),
        (status = 400, description = "Malformed query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs a downstream system's key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The key's system is not registered", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/downstream/feed/stream")]
pub async fn get_downstream_feed_stream(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: crate::query::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Downstream])?;
    let (controller, system) = (p.controller.clone(), bound(p)?.clone());
    let after = stream_start(&req, query.after)?;
    // A system that is not registered gets its 404 now, not an empty stream.
    state.service.downstream_feed(&controller, &system, after, 1)?;
    let stream = receipt_stream(state.service.clone(), after, move |service, after| {
        let page = service.downstream_feed(&controller, &system, after, crate::routes::feed::STREAM_PAGE)?;
        Ok((page.events, page.next_after))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream))
}

/// The caller's system acknowledges, with its own signature, events it applied; recorded in
/// the log as `downstream.acknowledged`. The same acknowledgement again answers the same
/// receipt.
#[utoipa::path(
    post,
    path = "/v1/downstream/acknowledgements",
    tag = "downstream",
    operation_id = "create_downstream_acknowledgement",
    request_body = Acknowledgement,
    responses(
        (status = 201, description = "Recorded: the receipt of its `downstream.acknowledged` event", body = Receipt),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key, or the statement is not signed with the system's registered key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs a downstream system's key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The key's system is not registered", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 256 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The statement names another system or an event not in the system's feed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_downstream_acknowledgement(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Acknowledgement>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Downstream])?;
    let system = bound(p)?;
    let by = Recorder::ApiKey(&p.key_id);
    let receipt = state.service.acknowledge(&p.controller, system, body.into_inner(), by, Utc::now()).await?;
    Ok(HttpResponse::Created().json(receipt))
}

/// Per downstream system, the events past their deadline without an acknowledgement.
#[utoipa::path(
    get,
    path = "/v1/downstream/overdue",
    tag = "downstream",
    operation_id = "get_downstream_overdue",
    responses(
        (status = 200, description = "What is overdue, per system", body = OverdueList),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the audit role", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/downstream/overdue")]
pub async fn get_downstream_overdue(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Audit])?;
    let (service, controller, now) = (state.service.clone(), p.controller.clone(), Utc::now());
    let overdue =
        web::block(move || service.overdue(&controller, now)).await.map_err(|_| ApiError::bare(Kind::Internal))??;
    let systems = overdue
        .into_iter()
        .map(|o| OverdueSystem {
            system: o.system,
            name: o.name,
            deadline_seconds: o.deadline_seconds,
            overdue: o
                .events
                .into_iter()
                .map(|e| OverdueEventView {
                    id: e.id,
                    seq: e.seq,
                    kind: e.kind,
                    recorded_at: e.recorded_at,
                    due_at: e.due_at,
                })
                .collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(OverdueList { as_of: now, systems }))
}

/// The blind indexes of addresses the caller's system holds, so it can match feed events to
/// its own list; the ledger never hands out an address.
#[utoipa::path(
    post,
    path = "/v1/downstream/lookup",
    tag = "downstream",
    operation_id = "create_downstream_lookup",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "The blind indexes, in request order", body = LookupAnswer),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs a downstream system's key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 256 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An address is not one, or more than 1000", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_downstream_lookup(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<LookupRequest>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Downstream])?;
    bound(p)?;
    let addresses = body.into_inner().addresses;
    if addresses.len() > MAX_LOOKUP {
        return Err(ApiError::new(Kind::Validation, format!("name 1 to {MAX_LOOKUP} addresses")));
    }
    let contacts = state.service.lookup_indexes(&p.controller, addresses)?;
    Ok(HttpResponse::Ok().json(LookupAnswer { contacts }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookSecret {
    /// The Standard Webhooks secret (`whsec_` and base64) the system's receiver verifies
    /// deliveries with. Registering the system anew under another id gives another.
    pub secret: String,
}

/// The secret a system's webhook receiver verifies deliveries with (Standard Webhooks).
#[utoipa::path(
    get,
    path = "/v1/downstream/{system}/webhook-secret",
    tag = "downstream",
    operation_id = "get_downstream_webhook_secret",
    params(("system" = String, Path, description = "System id")),
    responses(
        (status = 200, description = "The secret", body = WebhookSecret),
        (status = 400, description = "Malformed path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such system, or it has no webhook", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/downstream/{system}/webhook-secret")]
pub async fn get_downstream_webhook_secret(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Admin])?;
    let id = Token::parse(path.into_inner()).map_err(|e| ApiError::new(Kind::InvalidPath, e.to_string()))?;
    let secret = state.service.webhook_secret(&p.controller, &id)?;
    Ok(HttpResponse::Ok().insert_header(("cache-control", "no-store")).json(WebhookSecret { secret }))
}
