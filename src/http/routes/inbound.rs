//! `POST /v1/inbound/sms`: the inbound-SMS webhook. It takes the form-encoded webhook of the
//! common SMS providers (`From`, `To`, `Body`, optionally `MessageSid`) or JSON, authenticated
//! by a per-controller webhook secret (an API key with the `sms-webhook` role, sent as a
//! Bearer token or as `?key=` for providers that can only be given a URL).
//!
//! STOP, STOPALL, UNSUBSCRIBE, END, QUIT, CANCEL, REVOKE, OPTOUT stop all marketing SMS to the
//! number (an Art. 21(3) objection scoped to SMS, recorded against the number itself); START,
//! UNSTOP lift that stop (not YES: a reply to an unrelated text); HELP answers with help text.
//! Anything else is ignored.

use actix_web::{post, web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::domain::{Channel, ContactPoint, EventType};
use crate::http::auth::{bearer, Caller};
use crate::http::error::{redact, ApiError, Kind, Problem};
use crate::http::pages::escape;
use crate::http::AppState;
use crate::service::access::Role;

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
    #[serde(alias = "From")]
    pub from: String,
    #[serde(default, alias = "To")]
    pub to: Option<String>,
    #[serde(alias = "Body")]
    pub body: String,
    /// The provider's message id; a retried delivery with the same id records nothing new.
    #[serde(default, alias = "MessageSid", alias = "message_id")]
    pub message_sid: Option<String>,
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

fn webhook_key(req: &HttpRequest) -> Option<String> {
    bearer(req).map(str::to_owned).or_else(|| {
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("key").cloned())
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
    let key = webhook_key(&req).ok_or_else(|| ApiError::new(Kind::Unauthorized, "send the webhook secret"))?;
    let caller = Caller(
        state
            .keys
            .authenticate(&key)
            .ok_or_else(|| ApiError::new(Kind::Unauthorized, "the webhook secret is not valid"))?,
    );
    let principal = caller.require(&[Role::SmsWebhook])?;
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
        let contact =
            ContactPoint::parse(Channel::Sms, &sms.from).map_err(|e| ApiError::new(Kind::Validation, e.to_string()))?;
        let receipt = state
            .service
            .sms_keyword(&principal.controller, contact, kind, sms.message_sid.as_deref(), crate::service::now())
            .await?;
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
