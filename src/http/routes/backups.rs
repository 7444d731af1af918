//! `POST /v1/backups`: a consistent backup of the running ledger (admin role).

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Backup {
    /// The new backup's name: a directory of that name under the server's `--backup-dir`,
    /// holding a complete data directory (store, keys, secrets, API keys).
    pub name: String,
    /// Events in the backed-up log: every event acknowledged before the request.
    pub log_size: u64,
    pub created_at: DateTime<Utc>,
}

/// Back the ledger up while it runs (an operator key: a backup holds every controller's data,
/// the signing key and the secrets). The backup is a new directory under the server's
/// `--backup-dir`, named by the time; one is written at a time, and the oldest beyond
/// `--backup-keep` are removed. Restore by serving from it (`consent-ledger verify --data-dir
/// DIR` checks it first). Keep it as safe as the data directory.
#[utoipa::path(
    post,
    path = "/v1/backups",
    tag = "operations",
    operation_id = "create_backup",
    responses(
        (status = 201, description = "Backed up", body = Backup),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs an operator key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A backup is being written, or one of that name exists", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[post("/v1/backups")]
pub async fn create_backup(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_operator()?;
    let created_at = Utc::now();
    let service = state.service.clone();
    let dir = state.backup_dir.clone();
    let keep = state.backup_keep;
    let info = web::block(move || service.backup(dir.as_deref(), created_at, keep))
        .await
        .map_err(|_| ApiError::bare(Kind::Internal))??;
    tracing::info!(log_size = info.log_size, "backup written");
    Ok(HttpResponse::Created().json(Backup { name: info.name, log_size: info.log_size, created_at }))
}
