//! `/healthz` (the process answers) and `/readyz` (the store answers reads). Public.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;

use crate::error::{ApiError, Kind, Problem};
use crate::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    /// Number of durable events in the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_size: Option<u64>,
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "get_healthz",
    responses((status = 200, description = "The process is up", body = Health)))]
#[get("/healthz")]
pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok".into(), log_size: None })
}

/// Counters and latency histograms in the Prometheus text format: log and checkpoint size,
/// group commits and their time, decisions, bulk lines, HTTP requests by route name. Public,
/// like the health checks: it holds counts only, never an identifier.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "get_metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
#[get("/metrics")]
pub async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.service.metrics_text())
}

/// Readiness: the store answers a read.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "get_readyz",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json"),
    ))]
#[get("/readyz")]
pub async fn get_readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let log_size = state.service.ready().map_err(|_| ApiError::bare(Kind::Unavailable))?;
    Ok(HttpResponse::Ok().json(Health { status: "ready".into(), log_size: Some(log_size) }))
}
