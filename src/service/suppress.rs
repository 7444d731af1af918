//! Suppression lists: addresses that must never receive marketing (complaints, a previous
//! system's unsubscribe list, people who asked by letter). Each address becomes an objection
//! to all direct marketing recorded against it, which the rules already honour; its id derives
//! from the list's name and the address's blind index, so sending a list again records nothing
//! new (as for a list imported from a file in the import's suppressions mode).

use chrono::{DateTime, Utc};

use super::import::read_date;
use super::record::{ContactInput, ContactRequest, EventInput};
use super::{invalid, Service, ServiceError, MAX_EVENTS_AT_ONCE};
use domain::{Actor, ActorKind, Channel, ControllerId, EventType, Evidence, Method, Token};

/// A suppression list (the body of `POST /v1/suppressions`).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionList {
    /// The list's name, e.g. `mailchimp-unsubscribes-2024`: with each address it makes the
    /// events' ids.
    pub source: Token,
    /// What kind of addresses the list holds (`sms` and `phone` both mean phone numbers).
    pub channel: Channel,
    /// 1 to 1000 addresses (emails, phone numbers in E.164 or UK form, postal addresses).
    pub addresses: Vec<String>,
    /// When the list was made (RFC 3339, or a UK date); defaults to now.
    pub occurred_at: Option<String>,
    pub evidence: Option<Evidence>,
    /// Who records it (set by the caller of the service, never by a client).
    #[serde(skip)]
    pub recorded_by: Option<Token>,
}

/// What a suppression list recorded.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Suppressed {
    /// Addresses newly suppressed by this list.
    pub recorded: u64,
    /// Addresses this list had suppressed already (sent before).
    pub already: u64,
}

impl Service {
    /// Records a suppression list all or nothing: an address that is not one refuses the
    /// whole list, naming its position (never the address).
    pub async fn suppress(
        &self,
        controller: &ControllerId,
        list: SuppressionList,
        now: DateTime<Utc>,
    ) -> Result<Suppressed, ServiceError> {
        if list.addresses.is_empty() || list.addresses.len() > MAX_EVENTS_AT_ONCE {
            return Err(invalid(format!("a list holds 1 to {MAX_EVENTS_AT_ONCE} addresses")));
        }
        let occurred_at = list
            .occurred_at
            .as_deref()
            .map(|d| read_date(d).ok_or_else(|| invalid("occurred_at is not a date")))
            .transpose()?;
        // Said of the list, not of its first address.
        if occurred_at.is_some_and(|t| t > now + super::MAX_CLOCK_SKEW) {
            return Err(invalid("occurred_at is in the future"));
        }
        let actor = Actor { kind: ActorKind::System, id: Token::parse("suppression-list").ok(), authority: None };
        let mut drafts = Vec::with_capacity(list.addresses.len());
        let mut seen = std::collections::HashSet::new();
        for (i, address) in list.addresses.into_iter().enumerate() {
            let input = EventInput {
                contact: Some(ContactInput::Unchecked(ContactRequest { channel: list.channel, address })),
                occurred_at,
                evidence: list.evidence.clone(),
                actor: actor.clone(),
                recorded_by: list.recorded_by.clone(),
                ..EventInput::by_person(EventType::ObjectionRaised, Method::Api)
            };
            let mut draft = self.draft(controller, input, now).map_err(|e| invalid(format!("address {i}: {e}")))?;
            let index = draft.doc.contact.as_ref().map(|c| c.index.clone()).unwrap_or_default();
            if !seen.insert(index.clone()) {
                continue;
            }
            draft.doc.id = super::import::suppression_id(list.source.as_str(), &index);
            draft.fresh_id = false;
            drafts.push(draft);
        }
        let appended = self.ledger.append_reporting(drafts).await?;
        let recorded = appended.iter().filter(|(_, new)| *new).count() as u64;
        Ok(Suppressed { recorded, already: appended.len() as u64 - recorded })
    }
}
