//! One-click unsubscribe (RFC 8058): tokens that bind a contact point (by blind index) and
//! a purpose, and the withdrawal a click records.

use chrono::{DateTime, Utc};

use super::{CheckInput, CheckQuery, CheckTarget, ContactInput, EventInput, Service, ServiceError};
use domain::{ContactKind, ControllerId, EventType, Method, PurposeId};
use format::{derived_id, ContactRef, Receipt};
use tokens::TokenUse;

/// What a one-click unsubscribe token binds (RFC 8058): controller, contact point (by blind
/// index), purpose and issue time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnsubscribeToken {
    pub c: ControllerId,
    pub k: ContactKind,
    pub i: String,
    pub p: PurposeId,
    /// Issue time, Unix seconds.
    pub t: i64,
}

impl Service {
    /// A one-click unsubscribe token for a contact point and purpose.
    pub fn unsubscribe_token(
        &self,
        controller: &ControllerId,
        contact: &ContactRef,
        purpose: &PurposeId,
        now: DateTime<Utc>,
    ) -> String {
        let payload = UnsubscribeToken {
            c: controller.clone(),
            k: contact.kind,
            i: contact.index.clone(),
            p: purpose.clone(),
            t: now.timestamp(),
        };
        self.ledger.tokens().sign(TokenUse::Unsubscribe, &payload)
    }

    /// Opens an unsubscribe token and names the purpose it is for (title).
    pub fn open_unsubscribe(&self, token: &str) -> Result<(UnsubscribeToken, String), ServiceError> {
        let payload: UnsubscribeToken =
            self.ledger.tokens().open(TokenUse::Unsubscribe, token).map_err(|_| ServiceError::NotFound("link"))?;
        let title = self
            .current_purpose(&payload.c, &payload.p)?
            .map(|p| p.definition.title.clone())
            .ok_or(ServiceError::NotFound("link"))?;
        Ok((payload, title))
    }

    /// Records the withdrawal a one-click unsubscribe asks for, against the address itself
    /// (method `email_link`), whenever the address is permitted at that moment: a click always
    /// leaves it withdrawn, also after the person opted back in since the link was sent. A
    /// repeated click while it is withdrawn records nothing. The event id derives from the
    /// token and the events that permitted the address, so two clicks at once record one
    /// withdrawal. Answers the withdrawal in force (if the log shows one) and the purpose's
    /// title.
    pub async fn unsubscribe(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Option<Receipt>, String), ServiceError> {
        let (payload, title) = self.open_unsubscribe(token)?;
        let contact = ContactRef { kind: payload.k, index: payload.i.clone() };
        let channel = payload.k.default_channel();
        let query = CheckQuery {
            input: CheckInput {
                target: CheckTarget::Indexed(contact.clone()),
                purpose: payload.p.clone(),
                channel: Some(channel),
                recipient: None,
                at: None,
            },
            min_seq: None,
            signed: false,
            unsubscribe: false,
        };
        let decision = self
            .check_batch(&payload.c, std::slice::from_ref(&query), now)?
            .pop()
            .ok_or_else(|| ServiceError::Internal("no answer".into()))??
            .outcome
            .decision;
        if !decision.permitted {
            // Already withdrawn (or never permitted): nothing to record.
            let in_force = match decision.decided_by.first() {
                Some(id) => Some(self.receipt(&payload.c, *id)?),
                None => None,
            };
            return Ok((in_force, title));
        }
        let mut seed = token.as_bytes().to_vec();
        for id in &decision.decided_by {
            seed.push(0);
            seed.extend_from_slice(id.as_bytes());
        }
        let mut input = EventInput::by_contact(
            Some(derived_id(&seed)),
            EventType::ConsentWithdrawn,
            ContactInput::Index(contact),
            channel,
            Method::EmailLink,
        );
        input.purpose = Some(payload.p.clone());
        input.recorded_by = super::Recorder::UnsubscribeLink.token();
        let mut receipts = self.record(&payload.c, vec![input], now).await?;
        let r = receipts.pop().ok_or_else(|| ServiceError::Internal("no receipt".into()))?;
        Ok((Some(r), title))
    }
}
