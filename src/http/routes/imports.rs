//! `POST /v1/imports` and `GET /v1/imports/{id}`: a CSV file of consent records or a
//! suppression list, uploaded with its mapping and imported while the server serves; and
//! `POST /v1/suppressions`, a suppression list as JSON.

use actix_multipart::Multipart;
use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, Kind, Problem};
use crate::spool::spill;
use crate::AppState;
use service::access::Role;
use service::import::{ImportJob, ImportMode, ImportOptions, Mapping};
use service::{Recorder, Suppressed, SuppressionList};

/// Largest uploaded file, in bytes.
pub const MAX_IMPORT_FILE: usize = 512 * 1024 * 1024;
/// Bytes of an upload gathered before they are written to its file.
const SPOOL_AT: usize = 1 << 20;
/// Largest mapping, in bytes.
const MAX_MAPPING: usize = 64 * 1024;
/// Largest body of `POST /v1/suppressions`, in bytes (at most 1000 addresses).
pub const MAX_SUPPRESSION_BODY: usize = 1024 * 1024;

/// The parts of an import upload (`multipart/form-data`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ImportUpload {
    /// The mapping, TOML as for `consent-ledger import --mapping` (docs/IMPORT.md).
    mapping: String,
    /// The CSV file (UTF-8 with a header row); its name is the source's name unless the
    /// mapping says `source`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `records` (the default) or `suppressions`.
    mode: Option<ImportMode>,
    /// `true`: check every row and count what would be recorded; write nothing.
    dry_run: Option<bool>,
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::new(Kind::BadRequest, m)
}

/// Import a CSV file of consent records, or a suppression list, through a mapping. Answers at
/// once with the job; poll it for progress, the counts and the refused rows (row, column,
/// reason). Event ids derive from the source and each row's source id, so uploading the same
/// file again records nothing new.
#[utoipa::path(
    post,
    path = "/v1/imports",
    tag = "imports",
    operation_id = "create_import",
    request_body(content = ImportUpload, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Importing; poll the job at Location", body = ImportJob),
        (status = 400, description = "Not a multipart form with a mapping and a file", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the record role", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "File over 512 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not multipart/form-data", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The mapping is not valid, or names a column the file lacks", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Two imports are running; retry later", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[post("/v1/imports")]
pub async fn create_import(
    state: web::Data<AppState>,
    caller: Caller,
    request: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Record])?;
    let multipart = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        return Err(ApiError::new(
            Kind::UnsupportedMediaType,
            "the body must be multipart/form-data with a mapping and a file",
        ));
    }
    let mut form = Multipart::new(request.headers(), payload);
    let (mut mapping, mut file, mut name, mut mode, mut dry_run) = (None, None, None, ImportMode::Records, false);
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|_| bad("the body is not a valid multipart form"))?;
        let part = field.name().unwrap_or_default().to_string();
        match part.as_str() {
            "file" => {
                name = field.content_disposition().and_then(|d| d.get_filename()).map(str::to_string);
                // Spooled to an unlinked temporary file on the blocking pool, a MiB at a time,
                // off this async worker.
                let (mut spooled, mut at, mut buffer) = (None, 0u64, Vec::new());
                loop {
                    let chunk =
                        field.next().await.transpose().map_err(|_| bad("the body is not a valid multipart form"))?;
                    if let Some(chunk) = &chunk {
                        if at as usize + buffer.len() + chunk.len() > MAX_IMPORT_FILE {
                            return Err(ApiError::new(Kind::PayloadTooLarge, "the file is over 512 MiB: split it"));
                        }
                        buffer.extend_from_slice(chunk);
                    }
                    if buffer.len() >= SPOOL_AT || (chunk.is_none() && (spooled.is_none() || !buffer.is_empty())) {
                        let bytes = web::Bytes::from(std::mem::take(&mut buffer));
                        let n = bytes.len() as u64;
                        spooled = Some(spill(spooled, bytes, at).await.map_err(|_| ApiError::bare(Kind::Internal))?);
                        at += n;
                    }
                    if chunk.is_none() {
                        break;
                    }
                }
                file = spooled.and_then(|f| std::sync::Arc::try_unwrap(f).ok());
            }
            "mapping" | "mode" | "dry_run" => {
                let mut text = Vec::new();
                while let Some(chunk) = field.next().await {
                    text.extend_from_slice(&chunk.map_err(|_| bad("the body is not a valid multipart form"))?);
                    if text.len() > MAX_MAPPING {
                        return Err(ApiError::new(Kind::PayloadTooLarge, format!("the {part} part is over 64 KiB")));
                    }
                }
                let text = String::from_utf8(text).map_err(|_| bad(format!("the {part} part is not UTF-8 text")))?;
                match part.as_str() {
                    "mapping" => mapping = Some(Mapping::parse(&text).map_err(|m| ApiError::new(Kind::Validation, m))?),
                    "mode" => {
                        mode = match text.trim() {
                            "records" => ImportMode::Records,
                            "suppressions" => ImportMode::Suppressions,
                            _ => return Err(ApiError::new(Kind::Validation, "mode is records or suppressions")),
                        }
                    }
                    _ => {
                        dry_run = match text.trim() {
                            "true" => true,
                            "false" => false,
                            _ => return Err(ApiError::new(Kind::Validation, "dry_run is true or false")),
                        }
                    }
                }
            }
            _ => {
                let m = "the form's parts are mapping, file, mode and dry_run";
                return Err(bad(m));
            }
        }
    }
    let (Some(mapping), Some(file)) = (mapping, file) else {
        return Err(bad("the form needs a mapping part and a file part"));
    };
    let source = mapping.source.clone().or(name).unwrap_or_else(|| "upload".into());
    let options = ImportOptions { mode, source, dry_run, recorded_by: Recorder::ApiKey(&p.key_id).token() };
    // Reading the header and starting the job's thread happen on the blocking pool.
    let (service, controller) = (state.service.clone(), p.controller.clone());
    let job = web::block(move || service.start_import(&controller, file, mapping, options))
        .await
        .map_err(|_| ApiError::bare(Kind::Internal))??;
    Ok(HttpResponse::Accepted().insert_header(("Location", format!("/v1/imports/{}", job.id))).json(job))
}

/// An import job: running, done or failed, its counts so far and the rows it refused.
#[utoipa::path(
    get,
    path = "/v1/imports/{id}",
    tag = "imports",
    operation_id = "get_import",
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = ImportJob),
        (status = 400, description = "Not a job id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the record or audit role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job of this controller (jobs are kept in memory until the server restarts)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/imports/{id}")]
pub async fn get_import(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Record, Role::Audit])?;
    let job = state
        .service
        .import_job(&p.controller, id.into_inner())
        .ok_or_else(|| ApiError::new(Kind::NotFound, "import job not found"))?;
    Ok(HttpResponse::Ok().json(job))
}

/// Suppress a list of addresses: each must never receive marketing again (an objection to all
/// direct marketing recorded against it). All or nothing; sending the same list again records
/// nothing new.
#[utoipa::path(
    post,
    path = "/v1/suppressions",
    tag = "imports",
    operation_id = "create_suppressions",
    request_body = SuppressionList,
    responses(
        (status = 200, description = "Suppressed", body = Suppressed),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the record role", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An address is not one (by its position), or the list is empty or over 1000", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many writes waiting, or the disk is full; with `Retry-After`, nothing written", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_suppressions(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<SuppressionList>,
) -> Result<HttpResponse, ApiError> {
    let p = caller.require(&[Role::Record])?;
    let mut list = body.into_inner();
    list.recorded_by = Recorder::ApiKey(&p.key_id).token();
    let done = state.service.suppress(&p.controller, list, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(done))
}
