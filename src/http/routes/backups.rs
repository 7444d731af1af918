//! `POST /v1/backups`: a consistent backup of the running ledger (admin role).

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::http::auth::Caller;
use crate::http::error::{ApiError, Kind, Problem};
use crate::http::AppState;
use crate::service::access::Role;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Backup {
    /// The new backup directory: a complete data directory (store, keys, secrets, API keys).
    pub path: String,
    /// Events in the backed-up log: every event acknowledged before the request.
    pub log_size: u64,
    pub created_at: DateTime<Utc>,
}

/// Back the ledger up while it runs. The backup is a new directory under the server's
/// `--backup-dir`, named by the time; restore by serving from it (`consent-ledger verify
/// --data-dir DIR` checks it first). It holds the signing key and secrets: keep it as safe
/// as the data directory.
#[utoipa::path(
    post,
    path = "/v1/backups",
    tag = "operations",
    operation_id = "create_backup",
    responses(
        (status = 201, description = "Backed up", body = Backup),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A backup of that name exists (two in the same millisecond)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[post("/v1/backups")]
pub async fn create_backup(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let created_at = Utc::now();
    let service = state.service.clone();
    let dir = state.backup_dir.clone();
    let info = web::block(move || service.backup(dir.as_deref(), created_at))
        .await
        .map_err(|_| ApiError::bare(Kind::Internal))??;
    tracing::info!(log_size = info.log_size, "backup written");
    Ok(HttpResponse::Created().json(Backup {
        path: info.path.display().to_string(),
        log_size: info.log_size,
        created_at,
    }))
}
