//! The public transparency-log endpoints: the latest signed checkpoint (C2SP tlog-checkpoint
//! as a C2SP signed note), RFC 6962 inclusion and consistency proofs. Hashes in JSON are
//! lower-case hex.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::AppState;
use service::access::Role;
use service::{InclusionBy, ServiceError};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// Zero-based leaf index (give this or `id`).
    pub leaf_index: Option<u64>,
    /// Event id (give this or `leaf_index`); needs the controller's API key, as ids are the
    /// controller's own.
    pub id: Option<Uuid>,
    /// Tree size to prove against; default the latest checkpoint's.
    pub tree_size: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Lower-case hex leaf hash SHA-256(0x00 ‖ canonical event bytes).
    pub leaf_hash: String,
    /// The RFC 6962 audit path, lower-case hex, leaf to root.
    pub hashes: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size (≥ 1).
    #[param(minimum = 1)]
    pub from: u64,
    /// The newer tree size; default the latest checkpoint's.
    pub to: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// The RFC 6962 consistency proof, lower-case hex.
    pub hashes: Vec<String>,
}

pub fn hexes(hashes: Vec<[u8; 32]>) -> Vec<String> {
    hashes.into_iter().map(hex::encode).collect()
}

/// The latest signed checkpoint.
#[utoipa::path(
    get,
    path = "/v1/log/checkpoint",
    tag = "log",
    operation_id = "get_checkpoint",
    responses(
        (status = 200, description = "A C2SP tlog-checkpoint signed note", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 503, description = "No checkpoint yet", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/log/checkpoint")]
pub async fn get_checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (_, note) =
        state.service.latest_checkpoint()?.ok_or(ServiceError::NotYet("no checkpoint has been signed yet"))?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(note))
}

/// Proof that an event is in the log at a tree size.
#[utoipa::path(
    get,
    path = "/v1/log/proof/inclusion",
    tag = "log",
    operation_id = "get_inclusion_proof",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The audit path", body = InclusionProof),
        (status = 400, description = "Malformed query or out of range", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A proof by id without the controller's API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No event of the caller's controller with that id", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []))
)]
#[get("/v1/log/proof/inclusion")]
pub async fn get_inclusion_proof(
    state: web::Data<AppState>,
    caller: Option<Caller>,
    query: crate::query::Query<InclusionQuery>,
) -> Result<HttpResponse, ApiError> {
    let by = match (query.leaf_index, query.id) {
        (Some(i), None) => InclusionBy::Index(i),
        (None, Some(id)) => {
            // An id is the controller's own: only its key may ask by one (a proof by id must
            // not tell anyone else that the id exists).
            let caller = caller.ok_or_else(|| {
                ApiError::new(Kind::Unauthorized, "a proof by event id needs the controller's API key")
            })?;
            let p = caller.require(&[Role::Check, Role::Record, Role::Audit, Role::Admin])?;
            InclusionBy::Id(p.controller.clone(), id)
        }
        _ => return Err(ApiError::new(Kind::InvalidQuery, "give exactly one of leaf_index or id")),
    };
    let proof = state.service.inclusion_proof(by, query.tree_size)?;
    Ok(HttpResponse::Ok().json(InclusionProof {
        leaf_index: proof.leaf_index,
        tree_size: proof.tree_size,
        leaf_hash: hex::encode(proof.leaf_hash),
        hashes: hexes(proof.hashes),
    }))
}

/// Proof that the log at one size is a prefix of the log at a later size.
#[utoipa::path(
    get,
    path = "/v1/log/proof/consistency",
    tag = "log",
    operation_id = "get_consistency_proof",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The consistency proof", body = ConsistencyProof),
        (status = 400, description = "Malformed query or out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/log/proof/consistency")]
pub async fn get_consistency_proof(
    state: web::Data<AppState>,
    query: crate::query::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    let (to, hashes) = state.service.consistency_proof(query.from, query.to)?;
    Ok(HttpResponse::Ok().json(ConsistencyProof { from: query.from, to, hashes: hexes(hashes) }))
}
