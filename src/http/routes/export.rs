//! `GET /v1/export`: the controller's audit export as streamed NDJSON (see `docs/FORMAT.md`).

use actix_web::{get, web, HttpResponse};

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::AppState;
use service::access::Role;

/// Lines buffered between the reader thread and the response.
const EXPORT_BUFFER_LINES: usize = 1024;

/// The export of the caller's controller up to the latest checkpoint, streamed as NDJSON.
#[utoipa::path(
    get,
    path = "/v1/export",
    tag = "log",
    operation_id = "get_export",
    responses(
        (status = 200, description = "NDJSON: header, keys, checkpoints, then one line per leaf", content_type = "application/x-ndjson", body = String),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Needs the audit role", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
#[get("/v1/export")]
pub async fn get_export(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let controller = caller.require(&[Role::Audit])?.controller.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(EXPORT_BUFFER_LINES);
    let service = state.service.clone();
    tokio::task::spawn_blocking(move || {
        let result = service.export(&controller, |line| {
            let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
            tx.blocking_send(Ok(web::Bytes::from(bytes))).map_err(|_| std::io::Error::other("client went away"))
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "export failed");
            let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(HttpResponse::Ok().content_type("application/x-ndjson").streaming(stream))
}
