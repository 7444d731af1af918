//! `POST /v1/events`, `POST /v1/events/batch` and `GET /v1/events/{id}`: recording events and
//! reading their receipts.

use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{too_many_events, ApiError, Kind, Problem};
use crate::AppState;
use service::access::Role;
use service::Receipt;
use service::{EventInput, Recorder, MAX_EVENTS_AT_ONCE};

/// Largest body of `POST /v1/events`, in bytes.
pub const MAX_EVENT_BODY: usize = 16 * 1024;
/// Largest body of `POST /v1/events/batch`, in bytes (at most 1000 events).
pub const MAX_BATCH_BODY: usize = 4 * 1024 * 1024;

/// The body of `POST /v1/events/batch`, parsed no further than its limit: the event after the
/// last one allowed stops the parse, so an oversized batch costs one event's parsing more,
/// not 4 MiB of it.
pub struct EventBatch(pub Vec<EventInput>);

impl<'de> Deserialize<'de> for EventBatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Events;
        impl<'de> serde::de::Visitor<'de> for Events {
            type Value = EventBatch;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of events")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<EventBatch, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element::<EventInput>()? {
                    if out.len() == MAX_EVENTS_AT_ONCE {
                        return Err(serde::de::Error::custom(too_many_events()));
                    }
                    out.push(e);
                }
                Ok(EventBatch(out))
            }
        }
        d.deserialize_seq(Events)
    }
}

/// Record one event. Answers once the event is durable, with its signed receipt.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    operation_id = "create_event",
    request_body = EventInput,
    responses(
        (status = 201, description = "Recorded; the signed receipt", body = Receipt),
        (status = 200, description = "The id was already recorded; the original receipt", body = Receipt),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the record role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id was used for a different event", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 16 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The event breaks a rule", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many writes waiting (`/problems/busy`), or the disk is full (`/problems/storage-full`); with `Retry-After`, nothing written", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[post("/v1/events")]
pub async fn create_event(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<EventInput>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Record])?;
    let mut input = body.into_inner();
    input.recorded_by = Recorder::ApiKey(&p.key_id).token();
    let mut recorded = state.service.record_new(&p.controller, vec![input], Utc::now()).await?;
    let r = recorded.receipts.pop().ok_or_else(|| ApiError::bare(Kind::Internal))?;
    let mut resp = if recorded.new { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(resp.json(r))
}

/// Record up to 1000 events, all or nothing.
#[utoipa::path(
    post,
    path = "/v1/events/batch",
    tag = "events",
    operation_id = "create_events_batch",
    request_body = Vec<EventInput>,
    responses(
        (status = 201, description = "All recorded; their receipts in request order", body = Vec<Receipt>),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the record role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An id was used for a different event", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 4 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An event breaks a rule; nothing was recorded", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many writes waiting (`/problems/busy`), or the disk is full (`/problems/storage-full`); with `Retry-After`, nothing written", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_events_batch(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<EventBatch>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Record])?;
    let mut inputs = body.into_inner().0;
    for input in &mut inputs {
        input.recorded_by = Recorder::ApiKey(&p.key_id).token();
    }
    let receipts = state.service.record(&p.controller, inputs, Utc::now()).await?;
    Ok(HttpResponse::Created().json(receipts))
}

fn parse_event_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::new(Kind::InvalidPath, "the event id must be a UUID"))
}

/// The receipt of one event.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    operation_id = "get_event",
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "The signed receipt", body = Receipt),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the record or audit role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event for this controller", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/events/{id}")]
pub async fn get_event(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Record, Role::Audit])?;
    let id = parse_event_id(&path)?;
    Ok(HttpResponse::Ok().json(state.service.receipt(&p.controller, id)?))
}

/// Everything a person needs to verify alone that an event is in the log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiptBundle {
    /// The signed receipt.
    pub receipt: Receipt,
    /// A signed checkpoint (C2SP signed note) whose tree contains the event.
    pub checkpoint: String,
    /// Tree size of that checkpoint.
    pub tree_size: u64,
    /// RFC 6962 audit path from the event's leaf to the checkpoint's root, lower-case hex.
    pub inclusion_proof: Vec<String>,
    /// The signing key in C2SP verifier-key form.
    pub vkey: String,
}

/// The receipt with a checkpoint and the inclusion proof to it.
#[utoipa::path(
    get,
    path = "/v1/events/{id}/receipt",
    tag = "events",
    operation_id = "get_event_receipt",
    params(("id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 200, description = "Receipt, checkpoint and inclusion proof", body = ReceiptBundle),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the record or audit role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event for this controller", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No checkpoint covers the event yet; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/events/{id}/receipt")]
pub async fn get_event_receipt(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Record, Role::Audit])?;
    let id = parse_event_id(&path)?;
    let b = state.service.receipt_bundle(&p.controller, id).await?;
    Ok(HttpResponse::Ok().json(ReceiptBundle {
        receipt: b.receipt,
        checkpoint: b.checkpoint,
        tree_size: b.tree_size,
        inclusion_proof: crate::routes::log::hexes(b.inclusion_proof),
        vkey: b.vkey,
    }))
}
