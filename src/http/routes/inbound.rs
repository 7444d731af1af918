//! `POST /v1/inbound/sms`: the inbound-SMS webhook. It takes Twilio's form-encoded webhook
//! (`From`, `To`, `Body`, `MessageSid`), GOV.UK Notify's received-text callback (JSON `id`,
//! `source_number` without a plus, `destination_number`, `message`, `date_received`), or our
//! own JSON (`from`, `to`, `body`, `message_id`), authenticated by a per-controller webhook
//! secret (an API key with the `sms-webhook` role, sent as a Bearer token, which is how Notify
//! sends the token it is configured with, or as `?key=` for providers that can only be given a
//! URL; a key in the URL must have no other role). When the controller has configured its
//! Twilio auth token (`consent-ledger sms twilio-token`), a form must carry a valid
//! `X-Twilio-Signature`. A keyword that would record something needs the provider's message
//! id, so a retried delivery never records twice.
//!
//! STOP, STOPALL, UNSUBSCRIBE, END, QUIT, CANCEL, REVOKE, OPTOUT stop all marketing SMS to the
//! number (an Art. 21(3) objection scoped to SMS, recorded against the number itself); START,
//! UNSTOP lift that stop (not YES: a reply to an unrelated text); HELP answers with help text.
//! Anything else is ignored.

use actix_web::{post, web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{bearer, Caller};
use crate::error::{redact, ApiError, Kind, Problem};
use crate::pages::escape;
use crate::AppState;
use domain::{Channel, ContactPoint, EventType};
use service::access::Role;

/// Largest webhook body accepted, in bytes.
pub const MAX_SMS_BODY: usize = 16 * 1024;

const STOP_WORDS: [&str; 8] = ["STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT"];
/// The opt-in words. Not YES: people answer YES to unrelated texts ("Is Tuesday fine for the
/// repair?"), and that must never lift a STOP.
const START_WORDS: [&str; 2] = ["START", "UNSTOP"];
const STOPPED: &str = "You will get no more marketing texts from us. Reply START to opt back in.";
const STARTED: &str = "You can get marketing texts from us again. Reply STOP to opt out.";
const HELP: &str =
    "Reply STOP to stop marketing texts, START to get them again. Texts about your home and tenancy still come.";

/// What the keyword asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmsAction {
    Stop,
    Start,
    Help,
    Ignored,
}

/// An inbound message as JSON. Not `Debug`: it holds a phone number.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct InboundSms {
    /// The sender's number in E.164 (GOV.UK Notify's `source_number`, which has no plus, is
    /// taken too).
    #[serde(alias = "From", alias = "source_number")]
    pub from: String,
    #[serde(default, alias = "To", alias = "destination_number")]
    pub to: Option<String>,
    #[serde(alias = "Body", alias = "message")]
    pub body: String,
    /// The provider's message id (Twilio's `MessageSid`, Notify's `id`); needed when the
    /// message records something, and a retried delivery with the same id records nothing new.
    #[serde(default, alias = "MessageSid", alias = "message_id", alias = "id")]
    pub message_sid: Option<String>,
}

/// The sender's number as E.164: a number of digits only that does not start with 0 (as
/// GOV.UK Notify sends it, `447700900123`) gets its plus.
fn sender(from: &str) -> String {
    let t = from.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && !t.starts_with('0') {
        format!("+{t}")
    } else {
        t.to_owned()
    }
}

/// Where the webhook secret came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyFrom {
    Bearer,
    Url,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InboundReply {
    pub action: SmsAction,
    /// Text to send back to the number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Id of the event recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<uuid::Uuid>,
}

pub fn classify(body: &str) -> SmsAction {
    let word = body.trim().to_uppercase();
    if STOP_WORDS.contains(&word.as_str()) {
        SmsAction::Stop
    } else if START_WORDS.contains(&word.as_str()) {
        SmsAction::Start
    } else if word == "HELP" {
        SmsAction::Help
    } else {
        SmsAction::Ignored
    }
}

fn webhook_key(req: &HttpRequest) -> Option<(String, KeyFrom)> {
    bearer(req).map(|k| (k.to_owned(), KeyFrom::Bearer)).or_else(|| {
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("key").cloned())
            .map(|k| (k, KeyFrom::Url))
    })
}

/// Handle an inbound SMS.
#[utoipa::path(
    post,
    path = "/v1/inbound/sms",
    tag = "inbound",
    operation_id = "create_inbound_sms",
    request_body(content = InboundSms, description = "JSON, or the same fields form-encoded as From, To, Body, MessageSid"),
    params(("key" = Option<String>, Query, description = "The webhook secret, when it cannot be sent as a Bearer token")),
    responses(
        (status = 200, description = "What was done (TwiML `<Response><Message>` for form-encoded requests)", body = InboundReply),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid webhook secret", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The key is not a webhook secret", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither a form nor JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The sender is not an E.164 number", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/inbound/sms")]
pub async fn create_inbound_sms(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (key, from) = webhook_key(&req).ok_or_else(|| ApiError::new(Kind::Unauthorized, "send the webhook secret"))?;
    let caller = Caller(
        state
            .keys
            .authenticate_checked(&key)?
            .ok_or_else(|| ApiError::new(Kind::Unauthorized, "the webhook secret is not valid"))?,
    );
    let principal = caller.require(&[Role::SmsWebhook])?;
    // A URL ends up in logs and browser histories: only a key that can do nothing but deliver
    // texts may travel in one.
    if from == KeyFrom::Url && principal.roles.iter().any(|r| *r != Role::SmsWebhook) {
        return Err(ApiError::new(
            Kind::Forbidden,
            "a key in the URL must be a webhook secret only (role sms-webhook and no other)",
        ));
    }
    if body.len() > MAX_SMS_BODY {
        return Err(ApiError::new(Kind::PayloadTooLarge, format!("the body may be at most {MAX_SMS_BODY} bytes")));
    }
    let form = req.content_type().starts_with("application/x-www-form-urlencoded");
    if !form && !req.content_type().starts_with("application/json") {
        return Err(ApiError::new(
            Kind::UnsupportedMediaType,
            "send the provider's form (application/x-www-form-urlencoded) or application/json",
        ));
    }
    let sms: InboundSms = if form {
        let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::new(Kind::InvalidJson, redact(&e.to_string())))?;
        let url = format!("{}{}", state.public_url, req.uri().path_and_query().map_or("", |p| p.as_str()));
        let signature = req.headers().get("x-twilio-signature").and_then(|v| v.to_str().ok());
        state.service.check_twilio_signature(&principal.controller, &url, &params, signature)?;
        serde_urlencoded::from_bytes(&body).map_err(|e| ApiError::new(Kind::InvalidJson, redact(&e.to_string())))?
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(Kind::InvalidJson, redact(&e.to_string())))?
    };
    let action = classify(&sms.body);
    let (kind, reply) = match action {
        SmsAction::Stop => (Some(EventType::ObjectionRaised), Some(STOPPED)),
        SmsAction::Start => (Some(EventType::ObjectionLifted), Some(STARTED)),
        SmsAction::Help => (None, Some(HELP)),
        SmsAction::Ignored => (None, None),
    };
    let mut event_id = None;
    if let Some(kind) = kind {
        let contact = ContactPoint::parse(Channel::Sms, &sender(&sms.from))
            .map_err(|e| ApiError::new(Kind::Validation, e.to_string()))?;
        let message_id = sms.message_sid.as_deref().filter(|id| !id.trim().is_empty()).ok_or_else(|| {
            ApiError::new(
                Kind::InvalidJson,
                "the provider's message id is needed (MessageSid, id or message_id), so a retried delivery cannot record twice",
            )
        })?;
        let receipt =
            state.service.sms_keyword(&principal.controller, contact, kind, message_id, service::now()).await?;
        event_id = Some(receipt.event.id);
    }
    if form {
        let message = reply.map(|r| format!("<Message>{}</Message>", escape(r))).unwrap_or_default();
        return Ok(HttpResponse::Ok()
            .content_type("text/xml; charset=utf-8")
            .body(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{message}</Response>")));
    }
    Ok(HttpResponse::Ok().json(InboundReply { action, reply: reply.map(str::to_owned), event_id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_in_any_case_with_spaces() {
        for w in ["stop", " Stop ", "STOPALL", "unsubscribe", "end", "Quit", "cancel", "revoke", "optout"] {
            assert_eq!(classify(w), SmsAction::Stop, "{w}");
        }
        for w in ["start", " UNSTOP"] {
            assert_eq!(classify(w), SmsAction::Start, "{w}");
        }
        // YES answers other texts; it never lifts a STOP.
        assert_eq!(classify("yes "), SmsAction::Ignored);
        assert_eq!(classify(" help "), SmsAction::Help);
        assert_eq!(classify("stop please"), SmsAction::Ignored);
        assert_eq!(classify("what time is my repair"), SmsAction::Ignored);
    }
}
