//! Recording: purposes defined and events recorded, each checked against what its event type
//! requires and allows (the domain's event shapes) and against the controller's catalogue.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{invalid, PurposeVersion, Service, ServiceError};
use domain::{
    Actor, ActorKind, Channel, ContactKind, ContactPoint, ControllerId, EventType, Evidence, Method, Preference,
    Present, PurposeDefinition, PurposeId, RecipientId, Representative, SubjectId, Token,
};
use format::{to_micros, ContactRef, EventDoc, Receipt, FORMAT_VERSION};
use ledger::commit::Draft;
use ledger::MAX_APPEND_EVENTS;

/// Most events one recording (a batch request) may carry.
pub const MAX_EVENTS_AT_ONCE: usize = MAX_APPEND_EVENTS;

/// How far in the future an `occurred_at` may be (clock skew between systems).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// Receipts of a recording, and whether any of its events is new (not a retry of an id
/// already in the log).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub receipts: Vec<Receipt>,
    pub new: bool,
}

// An event as a client asks to record it (the body of `POST /v1/events`, named
// `EventRequest` on the wire and in the OpenAPI document), parsed but not yet checked against
// its shape and the catalogue. The same type serves the service's own callers (links, SMS
// keywords, the preference page). The doc line below is the schema's description.
/// An event to record.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename = "EventRequest", expecting = "struct EventRequest")]
#[schema(as = EventRequest)]
pub struct EventInput {
    /// Client-chosen id (a UUIDv7 is best); a retry with the same id returns the original
    /// receipt and records nothing.
    pub id: Option<Uuid>,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub subject: Option<SubjectId>,
    #[schema(value_type = Option<ContactRequest>)]
    pub contact: Option<ContactInput>,
    pub purpose: Option<PurposeId>,
    /// Channel scope; absent means every channel of the purpose.
    pub channel: Option<Channel>,
    pub recipient: Option<RecipientId>,
    /// When it happened (e.g. the date a paper form was signed); defaults to when recorded.
    #[serde(default, deserialize_with = "rfc3339_opt")]
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default = "default_method")]
    pub method: Method,
    pub actor: Actor,
    pub evidence: Option<Evidence>,
    pub notice_version: Option<Token>,
    /// When a consent lapses on its own (only for `consent.granted`).
    #[serde(default, deserialize_with = "rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub preference: Option<Preference>,
    pub representative: Option<Representative>,
    /// Who records it (see [`Recorder`]); set by the caller of the service, never by a client.
    #[serde(skip)]
    pub recorded_by: Option<Token>,
}

/// Who records events, as the signed event names it (`recorded_by`).
pub enum Recorder<'a> {
    /// An API key, by its id.
    ApiKey(&'a str),
    TenantPage,
    UnsubscribeLink,
    SmsProvider,
    CommandLine,
}

impl Recorder<'_> {
    pub fn token(&self) -> Option<Token> {
        let name = match self {
            Recorder::ApiKey(id) => format!("apikey:{id}"),
            Recorder::TenantPage => "tenant-page".into(),
            Recorder::UnsubscribeLink => "unsubscribe-link".into(),
            Recorder::SmsProvider => "sms-provider".into(),
            Recorder::CommandLine => "command-line".into(),
        };
        Token::parse(name).ok()
    }
}

/// Reads an optional RFC 3339 time with an error that says what is expected.
fn rfc3339_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    use serde::Deserialize;
    Option::<String>::deserialize(d)?
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| serde::de::Error::custom("times must be RFC 3339, such as 2026-01-31T12:00:00Z"))
        })
        .transpose()
}

fn default_method() -> Method {
    Method::Api
}

/// A contact point as a client sends it. The address is personal data: it is turned into a
/// blind index and never stored in the log.
#[derive(Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    pub channel: Channel,
    /// Email address, E.164 phone number, or postal address.
    pub address: String,
}

impl std::fmt::Debug for ContactRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Redacted so a stray `{:?}` cannot put an address in a log.
        write!(f, "ContactRequest({}, <redacted>)", self.channel)
    }
}

impl EventInput {
    /// An event of `kind` the person made themselves by `method`; the caller fills in whom
    /// it is about and its scope.
    pub fn by_person(kind: EventType, method: Method) -> Self {
        EventInput {
            id: None,
            kind,
            subject: None,
            contact: None,
            purpose: None,
            channel: None,
            recipient: None,
            occurred_at: None,
            method,
            actor: Actor { kind: ActorKind::Subject, id: None, authority: None },
            evidence: None,
            notice_version: None,
            expires_at: None,
            preference: None,
            representative: None,
            recorded_by: None,
        }
    }

    /// An event the person at a contact point made themselves (an unsubscribe link, an SMS
    /// keyword), scoped to one channel; `id` makes a repeat of the same request idempotent.
    pub fn by_contact(
        id: Option<Uuid>,
        kind: EventType,
        contact: ContactInput,
        channel: Channel,
        method: Method,
    ) -> Self {
        EventInput { id, contact: Some(contact), channel: Some(channel), ..Self::by_person(kind, method) }
    }
}

/// The contact point of an event: an address as a client sent it (not yet checked), a
/// checked address, or a blind index from a signed link (the ledger then never sees the
/// address).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "ContactRequest")]
pub enum ContactInput {
    Unchecked(ContactRequest),
    Address(ContactPoint),
    Index(ContactRef),
}

impl From<ContactRequest> for ContactInput {
    fn from(c: ContactRequest) -> Self {
        ContactInput::Unchecked(c)
    }
}

impl ContactInput {
    /// The checked contact point (an address that is not one is refused with the reason).
    fn checked(self) -> Result<Self, ServiceError> {
        match self {
            ContactInput::Unchecked(c) => ContactPoint::parse(c.channel, &c.address)
                .map(ContactInput::Address)
                .map_err(|e| invalid(e.to_string())),
            checked => Ok(checked),
        }
    }

    pub fn kind(&self) -> ContactKind {
        match self {
            ContactInput::Unchecked(c) => c.channel.kind(),
            ContactInput::Address(c) => c.kind(),
            ContactInput::Index(r) => r.kind,
        }
    }
}

impl Service {
    /// Defines or revises a purpose by recording a signed `purpose.defined` event.
    pub async fn define_purpose(
        &self,
        controller: &ControllerId,
        purpose: PurposeId,
        definition: PurposeDefinition,
        by: Recorder<'_>,
        now: DateTime<Utc>,
    ) -> Result<Receipt, ServiceError> {
        let definition = definition.validated().map_err(|e| invalid(e.to_string()))?;
        // On a database ledger another node may have defined it a moment ago.
        self.ledger.catch_up().await?;
        self.check_notice(controller, definition.notice.as_ref(), "notice")?;
        if let Some(current) = self.current_purpose(controller, &purpose)? {
            if current.definition == definition {
                // Nothing changed: answer with the receipt of the version in force.
                return self.receipt_by_seq(current.seq);
            }
        }
        self.record_by_ledger(controller, EventType::PurposeDefined, None, by, now, |doc| {
            doc.purpose = Some(purpose);
            doc.basis = Some(definition.basis);
            doc.definition = Some(definition);
        })
        .await
    }

    /// Every version of the controller's purposes in force now.
    pub fn purposes(&self, controller: &ControllerId) -> Result<Vec<PurposeVersion>, ServiceError> {
        Ok(self.projections().purposes(controller)?)
    }

    /// Records events all or nothing, answering once they are durable.
    pub async fn record(
        &self,
        controller: &ControllerId,
        inputs: Vec<EventInput>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Receipt>, ServiceError> {
        Ok(self.record_reporting(controller, inputs, now).await?.into_iter().map(|(r, _)| r).collect())
    }

    /// Records as [`Service::record`] does, saying for each event whether this call wrote it.
    async fn record_reporting(
        &self,
        controller: &ControllerId,
        inputs: Vec<EventInput>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Receipt, bool)>, ServiceError> {
        if inputs.is_empty() {
            return Err(invalid("at least one event is needed"));
        }
        if inputs.len() > MAX_APPEND_EVENTS {
            return Err(invalid(format!("at most {MAX_APPEND_EVENTS} events may be recorded at once")));
        }
        let drafts = if self.ledger.follows_database() {
            // On a database ledger the catalogue may have changed on another node a moment
            // ago: when the events do not pass, look once more with all the database holds.
            match self.drafts(controller, inputs.clone(), now) {
                Ok(drafts) => drafts,
                Err(_) => {
                    self.ledger.catch_up().await?;
                    self.drafts(controller, inputs, now)?
                }
            }
        } else {
            self.drafts(controller, inputs, now)?
        };
        Ok(self.ledger.append_reporting(drafts).await?)
    }

    /// The drafts of a request's events, each checked against its shape and the catalogue.
    fn drafts(
        &self,
        controller: &ControllerId,
        inputs: Vec<EventInput>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Draft>, ServiceError> {
        let many = inputs.len() > 1;
        let mut seen = HashSet::new();
        let mut drafts = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.into_iter().enumerate() {
            if let Some(id) = input.id {
                if !seen.insert(id) {
                    return Err(invalid(format!("event {i}: the id is repeated within the batch")));
                }
            }
            let draft = self.draft(controller, input, now).map_err(|e| match e {
                ServiceError::Invalid(m) if many => invalid(format!("event {i}: {m}")),
                ServiceError::Shape { error, .. } if many => ServiceError::Shape { index: Some(i), error },
                other => other,
            })?;
            drafts.push(draft);
        }
        Ok(drafts)
    }

    /// Records events as [`Service::record`] does, and says whether any of them is new.
    pub async fn record_new(
        &self,
        controller: &ControllerId,
        inputs: Vec<EventInput>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, ServiceError> {
        // Whether this call wrote any of them, as the writer saw it (on a database ledger an
        // event another node wrote is not new here, whatever this node had applied).
        let appended = self.record_reporting(controller, inputs, now).await?;
        let new = appended.iter().any(|(_, new)| *new);
        Ok(Recorded { receipts: appended.into_iter().map(|(r, _)| r).collect(), new })
    }

    /// Checks one event against the rules of its type and the catalogue.
    pub(crate) fn draft(
        &self,
        controller: &ControllerId,
        mut e: EventInput,
        now: DateTime<Utc>,
    ) -> Result<Draft, ServiceError> {
        // An address as the client sent it is checked first, as a request's parse would.
        e.contact = e.contact.map(ContactInput::checked).transpose()?;
        let present = Present {
            subject: e.subject.is_some(),
            contact: e.contact.is_some(),
            purpose: e.purpose.is_some(),
            channel: e.channel.is_some(),
            preference: e.preference.is_some(),
            representative: e.representative.is_some(),
            expires_at: e.expires_at.is_some(),
        };
        present.check(e.kind).map_err(|error| ServiceError::Shape { index: None, error })?;
        if let (Some(c), Some(k)) = (&e.contact, e.channel) {
            if !c.kind().reaches(k) {
                return Err(invalid(format!(
                    "channel {k} does not reach a contact point of kind {}",
                    c.kind().as_str()
                )));
            }
        }
        let basis = match &e.purpose {
            Some(p) => {
                let pv = self
                    .current_purpose(controller, p)?
                    .ok_or_else(|| invalid("unknown purpose: define it in the catalogue first"))?;
                if let Some(k) = e.channel {
                    if !pv.definition.allows_channel(k) {
                        return Err(invalid(format!("purpose {p} does not use channel {k}")));
                    }
                }
                if let Some(r) = &e.recipient {
                    if !pv.definition.allows_recipient(r) {
                        return Err(invalid(format!("purpose {p} does not list recipient {r}")));
                    }
                }
                Some(pv.definition.basis)
            }
            None if e.recipient.is_some() => return Err(invalid("a recipient needs a purpose")),
            None => None,
        };
        match e.actor.kind {
            ActorKind::Representative if e.actor.authority.is_none() => {
                return Err(invalid("a representative actor needs the authority they act under"))
            }
            ActorKind::Staff if e.actor.id.is_none() => return Err(invalid("a staff actor needs an id")),
            _ => {}
        }
        self.check_representation(controller, &e, e.occurred_at.map(to_micros).unwrap_or(now))?;
        self.check_notice(controller, e.notice_version.as_ref(), "notice_version")?;
        if let Some(ev) = &e.evidence {
            if ev.sha256.as_deref().is_some_and(|h| !domain::event::is_sha256_hex(h)) {
                return Err(invalid("evidence.sha256 must be 64 lower-case hex digits"));
            }
        }
        let occurred_at = e.occurred_at.map(to_micros);
        if occurred_at.is_some_and(|t| t > now + MAX_CLOCK_SKEW) {
            return Err(invalid("occurred_at is in the future"));
        }
        let expires_at = e.expires_at.map(to_micros);
        if let Some(x) = expires_at {
            if x <= occurred_at.unwrap_or(now) {
                return Err(invalid("expires_at must be after occurred_at"));
            }
        }
        let contact = e
            .contact
            .as_ref()
            .map(|c| match c {
                ContactInput::Address(c) => {
                    Ok(ContactRef { kind: c.kind(), index: self.ledger.blind_index().index(controller, c) })
                }
                ContactInput::Index(r) => Ok(r.clone()),
                // Checked at the start of the draft.
                ContactInput::Unchecked(_) => Err(ServiceError::Internal("a contact was not checked".into())),
            })
            .transpose()?;
        let fresh_id = e.id.is_none();
        let doc = EventDoc {
            v: FORMAT_VERSION,
            id: e.id.unwrap_or_else(|| self.new_id()),
            seq: 0,
            controller: Some(controller.clone()),
            kind: e.kind,
            subject: e.subject,
            contact,
            purpose: e.purpose,
            channel: e.channel,
            recipient: e.recipient,
            basis,
            occurred_at: occurred_at.unwrap_or_else(|| to_micros(now)),
            recorded_at: to_micros(now),
            method: e.method,
            actor: e.actor,
            evidence: e.evidence,
            notice_version: e.notice_version,
            expires_at,
            preference: e.preference,
            representative: e.representative,
            definition: None,
            notice: None,
            downstream: None,
            acknowledgement: None,
            next_key: None,
            recorded_by: e.recorded_by,
        };
        Ok(Draft { doc, occurred_now: occurred_at.is_none(), fresh_id })
    }
}
