//! RFC 8058 one-click unsubscribe: `POST /u/{token}` with `List-Unsubscribe=One-Click` records
//! a withdrawal against the address (method `email_link`) and answers 200 with no redirect;
//! `GET /u/{token}` shows a plain page with a button and changes nothing, because mail
//! scanners follow links. A tampered or foreign token gets a clear page.

use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpResponse};

use crate::pages::{escape, page};
use crate::AppState;
use service::ServiceError;

/// The body a one-click POST must carry (RFC 8058 section 3.1).
const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

fn invalid_link() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "<p>The unsubscribe link may have been changed or cut short. Please use the full link from the message, \
or contact us and we will stop these messages for you.</p>",
    )
}

/// The confirmation page; records nothing.
#[get("/u/{token}")]
pub async fn get_unsubscribe(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    match state.service.open_unsubscribe(&path) {
        Ok((_, title)) => page(
            StatusCode::OK,
            "Unsubscribe",
            &format!(
                "<p>Stop sending me emails about: <strong>{}</strong>.</p>\
<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<button type=\"submit\">Unsubscribe</button></form>",
                escape(&title)
            ),
        ),
        Err(_) => invalid_link(),
    }
}

/// The one-click unsubscribe itself.
#[post("/u/{token}")]
pub async fn post_unsubscribe(state: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> HttpResponse {
    // Urlencoded bodies are exactly the marker; multipart bodies carry it as a field.
    let text = String::from_utf8_lossy(&body);
    let one_click =
        text.trim() == ONE_CLICK || (text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click"));
    if !one_click {
        return page(
            StatusCode::BAD_REQUEST,
            "Unsubscribe",
            "<p>This request did not ask to unsubscribe. Use the button on the unsubscribe page.</p>",
        );
    }
    match state.service.unsubscribe(&path, service::now()).await {
        Ok((receipt, title)) => page(
            StatusCode::OK,
            "You are unsubscribed",
            &format!(
                "<p>We will not email you about <strong>{}</strong> again unless you ask us to.</p>{}",
                escape(&title),
                receipt.map(|r| format!("<p>Your reference: <code>{}</code></p>", r.event.id)).unwrap_or_default()
            ),
        ),
        Err(ServiceError::NotFound(_)) => invalid_link(),
        Err(e) => {
            tracing::error!(error = %e, "unsubscribe failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "<p>We could not record this just now. Please try again in a minute.</p>",
            )
        }
    }
}
