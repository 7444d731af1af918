//! The tenant's preference page, reached by a signed link: `GET /p/{token}` shows it,
//! `POST /p/{token}` records what changed (one signed event per change, method `web_form`,
//! actor `subject`) or stops all marketing in one step, and `GET /p/{token}/receipts/{id}`
//! shows one of the person's own receipts (`/json` downloads it). Plain HTML forms, no
//! scripts. A link reaches only its own subject of its own controller.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::pages::{download, page, page_with};
use crate::preference_html::{self as html, field_name, FORMATS};
use crate::AppState;
use domain::{Channel, PurposeId, Token};
use service::{PreferenceState, PreferenceToken, ServiceError, Wishes};

/// Largest form accepted, in bytes.
const MAX_FORM: usize = 64 * 1024;

fn link_error(e: ServiceError) -> HttpResponse {
    match e {
        ServiceError::LinkExpired => page(
            StatusCode::GONE,
            "This link has expired",
            "<p>Links to your preferences work for a limited time, to keep your details safe. \
Please contact us and we will send you a new one.</p>",
        ),
        _ => page(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "<p>The link may have been changed or cut short. Please use the full link we sent you, \
or contact us and we will send you a new one.</p>",
        ),
    }
}

fn unavailable(e: &ServiceError) -> HttpResponse {
    tracing::error!(error = %e, "preference page failed");
    unavailable_page()
}

fn unavailable_page() -> HttpResponse {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sorry, there is a problem",
        "<p>We could not show or save your choices just now. Nothing was changed. Please try again in a few minutes.</p>",
    )
}

fn erased_page() -> HttpResponse {
    page(
        StatusCode::OK,
        "We no longer hold your details",
        "<p>Your details were erased at your request, so there are no choices to show. We will not contact you.</p>",
    )
}

/// Why a page is not shown; each has a page of its own.
enum Refusal {
    /// The link does not open (`LinkInvalid` or `LinkExpired`).
    Link(ServiceError),
    ReceiptNotFound,
    Unavailable,
}

impl Refusal {
    fn page(self) -> HttpResponse {
        match self {
            Refusal::Link(e) => link_error(e),
            Refusal::ReceiptNotFound => page(
                StatusCode::NOT_FOUND,
                "Receipt not found",
                "<p>There is no receipt with this reference in your record.</p>",
            ),
            Refusal::Unavailable => unavailable_page(),
        }
    }
}

fn open(state: &AppState, token: &str) -> Result<PreferenceToken, Refusal> {
    state.service.open_preference_link(token, Utc::now()).map_err(Refusal::Link)
}

fn expiry(t: &PreferenceToken) -> DateTime<Utc> {
    DateTime::from_timestamp(t.x, 0).unwrap_or_default()
}

fn titles(state: &AppState, link: &PreferenceToken) -> HashMap<PurposeId, String> {
    state
        .service
        .purposes(&link.c)
        .map(|ps| ps.into_iter().map(|p| (p.id, p.definition.title)).collect())
        .unwrap_or_default()
}

fn show(state: &AppState, token: &str, link: &PreferenceToken, s: &PreferenceState) -> HttpResponse {
    if s.erased {
        return erased_page();
    }
    let guard = state.service.form_guard(token);
    page(StatusCode::OK, "Your contact preferences", &html::preference_page(s, token, &guard, expiry(link)))
}

/// The page.
#[get("/p/{token}")]
pub async fn get_page(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let token = path.into_inner();
    let link = match open(&state, &token) {
        Ok(l) => l,
        Err(refusal) => return refusal.page(),
    };
    match state.service.preference_state(&link.c, &link.s, service::now()) {
        Ok(s) => show(&state, &token, &link, &s),
        Err(e) => unavailable(&e),
    }
}

/// True when the browser says the post came from another site: Fetch metadata where the
/// browser sends it, else `Origin` against this service's own origin.
fn cross_site(req: &HttpRequest, public_url: &str) -> bool {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let public_origin = public_url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    !(origin == public_origin || origin == format!("http://{host}") || origin == format!("https://{host}"))
}

fn refused_post() -> HttpResponse {
    page(
        StatusCode::FORBIDDEN,
        "Your choices were not saved",
        "<p>This form can only be sent from its own page. Nothing was changed. \
Please go back to the link we sent you and try again.</p>",
    )
}

fn bad_form(what: &str) -> HttpResponse {
    page(
        StatusCode::BAD_REQUEST,
        "Your choices were not saved",
        &format!(
            "<p>{} Nothing was changed. Please go back to the link we sent you and try again.</p>",
            crate::pages::escape(what)
        ),
    )
}

/// What a posted form asks for.
enum Action {
    Save(Wishes),
    StopMarketing,
    ResumeMarketing,
}

/// Parses the posted fields against the page the person was shown; anything the page did not
/// offer is refused, so a crafted post can change nothing the person could not.
fn parse_form(fields: &[(String, String)], state: &PreferenceState) -> Result<Action, String> {
    let mut wishes = Wishes::default();
    let mut action = "save";
    let offered: HashMap<String, (PurposeId, Option<Channel>)> = state
        .sections
        .iter()
        .flat_map(|s| s.choices.iter().map(|c| (field_name(&s.id, c.channel), (s.id.clone(), c.channel))))
        .collect();
    for (name, value) in fields {
        match name.as_str() {
            "csrf" => {}
            "action" => {
                action = match value.as_str() {
                    "save" => "save",
                    "stop-marketing" => "stop-marketing",
                    "resume-marketing" => "resume-marketing",
                    _ => return Err("The form asked for something this page does not do.".into()),
                }
            }
            "preferred_channel" => {
                wishes.preferred_channel = Some(
                    Channel::ALL
                        .into_iter()
                        .find(|c| c.as_str() == value)
                        .ok_or("The preferred way to contact you was not one of those offered.")?,
                );
            }
            "format" => {
                wishes.format = Some(
                    FORMATS
                        .into_iter()
                        .find(|f| html::format_value(*f) == value)
                        .ok_or("The format was not one of those offered.")?,
                );
            }
            "language" if value.is_empty() => {}
            "language" => {
                if !is_language_tag(value) {
                    return Err("The language was not one of those offered.".into());
                }
                wishes.language = Some(Token::parse(value.clone()).map_err(|_| "The language could not be read.")?);
            }
            other => {
                let key = offered.get(other).ok_or("The form held an answer to a question this page did not ask.")?;
                let yes = match value.as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err("Each answer must be yes or no.".into()),
                };
                wishes.choices.insert(key.clone(), yes);
            }
        }
    }
    let action = match action {
        "stop-marketing" => Action::StopMarketing,
        "resume-marketing" => Action::ResumeMarketing,
        _ => Action::Save(wishes),
    };
    Ok(action)
}

/// A BCP 47 tag of the simple form the page offers: a 2-3 letter language (or `bsl`) and
/// optional subtags.
fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first_ok =
        parts.next().is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && s.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Records a submission and confirms it.
#[post("/p/{token}")]
pub async fn post_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let token = path.into_inner();
    let link = match open(&state, &token) {
        Ok(l) => l,
        Err(refusal) => return refusal.page(),
    };
    if cross_site(&req, &state.public_url) {
        return refused_post();
    }
    if body.len() > MAX_FORM {
        return bad_form("The form was too large.");
    }
    let Ok(fields) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return bad_form("The form could not be read.");
    };
    let guard = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str());
    if !guard.is_some_and(|g| state.service.check_form_guard(&token, g)) {
        return refused_post();
    }
    let now = service::now();
    let current = match state.service.preference_state(&link.c, &link.s, now) {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    if current.erased {
        return erased_page();
    }
    let action = match parse_form(&fields, &current) {
        Ok(a) => a,
        Err(why) => return bad_form(&why),
    };
    let result = match &action {
        Action::Save(w) => state.service.apply_preferences(&link.c, &link.s, &current, w, now).await,
        Action::StopMarketing => state.service.switch_marketing(&link.c, &link.s, &current, true, now).await,
        Action::ResumeMarketing => state.service.switch_marketing(&link.c, &link.s, &current, false, now).await,
    };
    match result {
        Ok(changes) => {
            let title = if changes.is_empty() { "Nothing changed" } else { "Your choices are saved" };
            page_with(StatusCode::OK, title, false, &html::confirmation(&changes, &titles(&state, &link), &token))
        }
        Err(ServiceError::Invalid(_)) => bad_form("Some of your answers could not be saved."),
        Err(e) => unavailable(&e),
    }
}

fn receipt_of(state: &AppState, link: &PreferenceToken, id: &str) -> Result<service::Receipt, Refusal> {
    let id = Uuid::parse_str(id).map_err(|_| Refusal::ReceiptNotFound)?;
    match state.service.subject_receipt(&link.c, &link.s, id) {
        Ok(r) => Ok(r),
        Err(ServiceError::NotFound(_)) => Err(Refusal::ReceiptNotFound),
        Err(e) => {
            tracing::error!(error = %e, "receipt page failed");
            Err(Refusal::Unavailable)
        }
    }
}

/// One of the person's own receipts, in words.
#[get("/p/{token}/receipts/{event_id}")]
pub async fn get_receipt(state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (token, id) = path.into_inner();
    let link = match open(&state, &token) {
        Ok(l) => l,
        Err(refusal) => return refusal.page(),
    };
    match receipt_of(&state, &link, &id) {
        Ok(r) => {
            let notice = r.event.notice_version.as_ref().and_then(|n| state.service.notice(&link.c, n).ok());
            page(StatusCode::OK, "Receipt", &html::receipt_page(&r, &titles(&state, &link), &token, notice.as_ref()))
        }
        Err(refusal) => refusal.page(),
    }
}

/// A notice of the person's controller, to read: its text when the ledger holds it.
#[get("/p/{token}/notices/{notice}")]
pub async fn get_notice(state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (token, id) = path.into_inner();
    let link = match open(&state, &token) {
        Ok(l) => l,
        Err(refusal) => return refusal.page(),
    };
    let not_found =
        || page(StatusCode::NOT_FOUND, "Notice not found", "<p>We have published no notice with this reference.</p>");
    let Ok(id) = domain::Token::parse(id) else { return not_found() };
    match state.service.notice(&link.c, &id) {
        Ok(nv) => page(StatusCode::OK, &nv.notice.title.clone(), &html::notice_page(&nv, &token)),
        Err(ServiceError::NotFound(_)) => not_found(),
        Err(e) => unavailable(&e),
    }
}

/// The signed receipt itself, as a JSON file.
#[get("/p/{token}/receipts/{event_id}/json")]
pub async fn get_receipt_json(state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (token, id) = path.into_inner();
    let link = match open(&state, &token) {
        Ok(l) => l,
        Err(refusal) => return refusal.page(),
    };
    match receipt_of(&state, &link, &id) {
        Ok(r) => match serde_json::to_string_pretty(&r) {
            Ok(json) => download(json, &format!("receipt-{}.json", r.event.id)),
            Err(e) => unavailable(&ServiceError::Internal(e.to_string())),
        },
        Err(refusal) => refusal.page(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_language_tag;

    #[test]
    fn language_tags_of_the_simple_form_only() {
        for ok in ["en", "cy", "bsl", "pt-BR", "zh-Hant"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "e", "english", "en_GB", "en-", "<b>", "en-123456789"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }
}
