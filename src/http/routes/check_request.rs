//! A check as a client asks it (`CheckRequest`, in a query string, a JSON array or an NDJSON
//! line) and the answer as it gets it (`CheckResponse`): shared by the single, array and bulk
//! check routes, so that none of them imports another.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, Kind};
use crate::AppState;
use domain::{Channel, ContactPoint, LawfulBasis, PurposeId, Reason, RecipientId, SubjectId};
use service::{CheckAnswer, CheckInput, CheckQuery, CheckTarget, SignedDecision};

/// One permission question. Give exactly one of `subject`, `email`, `phone` or `post`.
/// Not `Debug`: it holds addresses, which must never reach a log.
#[derive(Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckRequest {
    /// Purpose id.
    #[param(value_type = PurposeId)]
    #[schema(value_type = PurposeId)]
    pub purpose: String,
    /// Channel to use; by contact point it defaults to the address's own channel (`sms` for
    /// a phone number). Without it, a check by subject asks about the purpose as a whole.
    pub channel: Option<Channel>,
    /// Subject id (only the subject's own events count).
    #[param(value_type = Option<SubjectId>)]
    #[schema(value_type = Option<SubjectId>)]
    pub subject: Option<String>,
    /// Email address about to be used (its own events and those of subjects linked to it).
    pub email: Option<String>,
    /// Phone number in E.164 about to be used.
    pub phone: Option<String>,
    /// Postal address about to be used.
    pub post: Option<String>,
    /// Recipient, for sharing purposes.
    #[param(value_type = Option<RecipientId>)]
    #[schema(value_type = Option<RecipientId>)]
    pub recipient: Option<String>,
    /// RFC 3339 time to answer "as of" (default: now). In a query string, encode `+` as `%2B`.
    #[param(value_type = Option<String>, format = DateTime)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
    /// Answer only from a state that includes the event with this seq (read your writes).
    pub min_seq: Option<u64>,
    /// Also return the decision signed with the ledger key.
    pub signed: Option<bool>,
    /// Also return RFC 8058 one-click unsubscribe header values (checks by email only).
    pub unsubscribe: Option<bool>,
}

/// The answer to a check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckResponse {
    pub permitted: bool,
    pub reason: Reason,
    pub basis: LawfulBasis,
    /// Ids of the events that decided the answer.
    pub decided_by: Vec<Uuid>,
    /// The moment the answer is for.
    pub as_of: DateTime<Utc>,
    pub purpose: PurposeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientId>,
    /// The log held at least this many events when the answer was decided.
    pub log_size: u64,
    /// The decision signed with the ledger key (when `signed=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_decision: Option<SignedDecision>,
    /// Value for the `List-Unsubscribe` header (when `unsubscribe=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_unsubscribe: Option<String>,
    /// Value for the `List-Unsubscribe-Post` header (when `unsubscribe=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_unsubscribe_post: Option<String>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(Kind::InvalidQuery, msg)
}

/// Parses an RFC 3339 time, accepting a space for the `+` a query string decoded.
pub fn parse_at(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(&raw.trim().replace(' ', "+"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad("at must be an RFC 3339 time such as 2026-01-31T12:00:00Z"))
}

impl CheckRequest {
    /// The question this request asks, with the extras it wants.
    pub fn parse(&self) -> Result<CheckQuery, ApiError> {
        let purpose = PurposeId::parse(self.purpose.as_str()).map_err(|e| bad(e.to_string()))?;
        let contact = |channel: Channel, raw: &str| {
            ContactPoint::parse(channel, raw).map(CheckTarget::Contact).map_err(|e| bad(e.to_string()))
        };
        let target = match (&self.subject, &self.email, &self.phone, &self.post) {
            (Some(s), None, None, None) => {
                CheckTarget::Subject(SubjectId::parse(s.as_str()).map_err(|e| bad(e.to_string()))?)
            }
            (None, Some(e), None, None) => contact(Channel::Email, e)?,
            (None, None, Some(p), None) => contact(Channel::Sms, p)?,
            (None, None, None, Some(p)) => contact(Channel::Post, p)?,
            _ => return Err(bad("give exactly one of subject, email, phone or post")),
        };
        let recipient =
            self.recipient.as_deref().map(RecipientId::parse).transpose().map_err(|e| bad(e.to_string()))?;
        let at = self.at.as_deref().map(parse_at).transpose()?;
        Ok(CheckQuery {
            input: CheckInput { target, purpose, channel: self.channel, recipient, at },
            min_seq: self.min_seq,
            signed: self.signed == Some(true),
            unsubscribe: self.unsubscribe == Some(true),
        })
    }
}

/// The response to a query from the service's answer: the decision, with a signed decision
/// and unsubscribe headers when asked for.
pub fn respond(state: &AppState, q: &CheckQuery, answer: CheckAnswer) -> CheckResponse {
    let (list_unsubscribe, list_unsubscribe_post) = match answer.unsubscribe_token {
        Some(token) => {
            (Some(format!("<{}/u/{token}>", state.public_url)), Some("List-Unsubscribe=One-Click".to_owned()))
        }
        None => (None, None),
    };
    let out = answer.outcome;
    CheckResponse {
        permitted: out.decision.permitted,
        reason: out.decision.reason,
        basis: out.decision.basis,
        decided_by: out.decision.decided_by,
        as_of: out.as_of,
        purpose: q.input.purpose.clone(),
        channel: out.channel,
        recipient: q.input.recipient.clone(),
        log_size: out.log_size,
        signed_decision: answer.signed,
        list_unsubscribe,
        list_unsubscribe_post,
    }
}
