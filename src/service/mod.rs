//! Use cases: define purposes, record events, check permissions (now and as of a past
//! moment), list a subject's permissions and history. Every use case takes the caller's
//! controller, and no read or write crosses from one controller to another.

mod preferences;

pub use preferences::{
    Choice, LinkError, PreferenceState, PreferenceToken, PurposeSection, Wishes, DEFAULT_LINK_DAYS, MAX_LINK_DAYS,
};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::{
    decide, decide_among, Actor, ActorKind, Channel, ContactKind, ContactPoint, ControllerId, Decision, EventType,
    Evidence, Fact, Method, Preference, PurposeDefinition, PurposeId, Question, RecipientId, Representative, SubjectId,
    Target, Token,
};
use crate::format::{
    derived_id, to_micros, ContactRef, DecisionDoc, EventDoc, Receipt, SignedDecision, StoredEvent, DECISION_TYPE,
    FORMAT_VERSION,
};
use crate::ledger::commit::{CommitError, Draft};
use crate::ledger::{Ledger, MAX_APPEND_EVENTS};
use crate::projection::{
    facts_key, linked_subjects, merge_facts, seq_key, Projections, PurposeVersion, ReadError, TargetKey,
};
use crate::store::{Cf, StoreError};
use crate::tokens::TokenUse;

/// How far in the future an `occurred_at` may be (clock skew between systems).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is well-formed but breaks a rule; nothing was written.
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("the ledger is shutting down")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<ReadError> for ServiceError {
    fn from(e: ReadError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<CommitError> for ServiceError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::IdConflict(_) => ServiceError::Conflict(e.to_string()),
            CommitError::Closed => ServiceError::Unavailable,
            CommitError::Storage => ServiceError::Internal(e.to_string()),
        }
    }
}

fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(msg.into())
}

/// An event as a client asks to record it, parsed but not yet checked against the catalogue.
#[derive(Debug, Clone)]
pub struct EventInput {
    pub id: Option<Uuid>,
    pub kind: EventType,
    pub subject: Option<SubjectId>,
    pub contact: Option<ContactInput>,
    pub purpose: Option<PurposeId>,
    pub channel: Option<Channel>,
    pub recipient: Option<RecipientId>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub method: Method,
    pub actor: Actor,
    pub evidence: Option<Evidence>,
    pub notice_version: Option<Token>,
    pub expires_at: Option<DateTime<Utc>>,
    pub preference: Option<Preference>,
    pub representative: Option<Representative>,
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

/// The contact point of an event: an address a client sent, or a blind index from a signed
/// link (the ledger then never sees the address).
#[derive(Debug, Clone)]
pub enum ContactInput {
    Address(ContactPoint),
    Index(ContactRef),
}

impl ContactInput {
    pub fn kind(&self) -> ContactKind {
        match self {
            ContactInput::Address(c) => c.kind(),
            ContactInput::Index(r) => r.kind,
        }
    }
}

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

/// Whom a check is about.
#[derive(Debug, Clone)]
pub enum CheckTarget {
    Subject(SubjectId),
    Contact(ContactPoint),
}

#[derive(Debug, Clone)]
pub struct CheckInput {
    pub target: CheckTarget,
    pub purpose: PurposeId,
    pub channel: Option<Channel>,
    pub recipient: Option<RecipientId>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub decision: Decision,
    pub channel: Option<Channel>,
    pub as_of: DateTime<Utc>,
    /// The contact point, as the log knows it, when the check was by contact point.
    pub contact: Option<ContactRef>,
    /// Size of the log the answer was decided from (it includes at least these events).
    pub log_size: u64,
}

/// One line of a subject's permissions.
#[derive(Debug, Clone)]
pub struct PermissionRow {
    pub purpose: PurposeId,
    pub title: String,
    pub channel: Option<Channel>,
    pub recipient: Option<RecipientId>,
    pub decision: Decision,
}

pub struct Service {
    ledger: Ledger,
}

impl Service {
    pub fn new(ledger: Ledger) -> Self {
        Self { ledger }
    }

    /// The version of a purpose in force now.
    fn current_purpose(
        &self,
        controller: &ControllerId,
        purpose: &PurposeId,
    ) -> Result<Option<Arc<PurposeVersion>>, ServiceError> {
        Ok(self.projections().current_purpose(controller, purpose)?)
    }

    /// The version of a purpose in force at `at` (now when `None`).
    fn purpose_at(
        &self,
        controller: &ControllerId,
        purpose: &PurposeId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<Arc<PurposeVersion>>, ServiceError> {
        match at {
            None => self.current_purpose(controller, purpose),
            Some(t) => Ok(self.projections().purpose(controller, purpose, Some(t))?.map(Arc::new)),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn projections(&self) -> Projections<'_> {
        self.ledger.projections()
    }

    /// Defines or revises a purpose by recording a signed `purpose.defined` event.
    pub async fn define_purpose(
        &self,
        controller: &ControllerId,
        purpose: PurposeId,
        definition: PurposeDefinition,
        now: DateTime<Utc>,
    ) -> Result<Receipt, ServiceError> {
        let definition = definition.validated().map_err(|e| invalid(e.to_string()))?;
        if let Some(current) = self.current_purpose(controller, &purpose)? {
            if current.definition == definition {
                // Nothing changed: answer with the receipt of the version in force.
                return self.receipt_by_seq(current.seq);
            }
        }
        let mut doc = EventDoc::by_ledger(Some(controller.clone()), EventType::PurposeDefined, now);
        doc.purpose = Some(purpose);
        doc.basis = Some(definition.basis);
        doc.definition = Some(definition);
        self.ledger
            .append(vec![Draft { doc, occurred_now: true }])
            .await?
            .pop()
            .ok_or_else(|| ServiceError::Internal("no receipt".into()))
    }

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
        if inputs.is_empty() {
            return Err(invalid("at least one event is needed"));
        }
        if inputs.len() > MAX_APPEND_EVENTS {
            return Err(invalid(format!("at most {MAX_APPEND_EVENTS} events may be recorded at once")));
        }
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
                other => other,
            })?;
            drafts.push(draft);
        }
        Ok(self.ledger.append(drafts).await?)
    }

    /// Checks one event against the rules of its type and the catalogue.
    fn draft(&self, controller: &ControllerId, e: EventInput, now: DateTime<Utc>) -> Result<Draft, ServiceError> {
        use EventType as T;
        if e.subject.is_none() && e.contact.is_none() {
            return Err(invalid("an event needs a subject, a contact, or both"));
        }
        let needs_purpose = matches!(e.kind, T::ConsentGranted | T::ConsentWithdrawn);
        let allows_purpose = needs_purpose
            || matches!(e.kind, T::ObjectionRaised | T::ObjectionLifted | T::RestrictionApplied | T::RestrictionLifted);
        let needs_subject = matches!(
            e.kind,
            T::RestrictionApplied
                | T::RestrictionLifted
                | T::PreferenceSet
                | T::ContactLinked
                | T::ContactUnlinked
                | T::RepresentativeAuthorised
                | T::RepresentativeRevoked
                | T::SubjectErased
        );
        let allows_channel =
            matches!(e.kind, T::ConsentGranted | T::ConsentWithdrawn | T::ObjectionRaised | T::ObjectionLifted);
        let kind = e.kind.as_str();
        match e.kind {
            T::PurposeDefined => return Err(invalid("purpose.defined is recorded through PUT /v1/purposes/{purpose}")),
            T::KeyRotated => return Err(invalid("key.rotated is recorded by `consent-ledger keys rotate`")),
            _ if needs_purpose && e.purpose.is_none() => return Err(invalid(format!("{kind} needs a purpose"))),
            _ if !allows_purpose && e.purpose.is_some() => return Err(invalid(format!("{kind} takes no purpose"))),
            _ if needs_subject && e.subject.is_none() => return Err(invalid(format!("{kind} needs a subject"))),
            _ if !allows_channel && e.channel.is_some() => return Err(invalid(format!("{kind} takes no channel"))),
            T::ContactLinked | T::ContactUnlinked if e.contact.is_none() => {
                return Err(invalid(format!("{kind} needs a contact")))
            }
            T::SubjectErased if e.contact.is_some() => {
                return Err(invalid(
                    "subject.erased takes no contact: the subject's linked contact points are suppressed",
                ))
            }
            T::PreferenceSet if e.preference.is_none() => return Err(invalid("preference.set needs a preference")),
            T::RepresentativeAuthorised | T::RepresentativeRevoked if e.representative.is_none() => {
                return Err(invalid(format!("{kind} needs a representative")))
            }
            _ => {}
        }
        if e.preference.is_some() && e.kind != T::PreferenceSet {
            return Err(invalid(format!("{kind} takes no preference")));
        }
        if e.representative.is_some() && !matches!(e.kind, T::RepresentativeAuthorised | T::RepresentativeRevoked) {
            return Err(invalid(format!("{kind} takes no representative")));
        }
        if e.expires_at.is_some() && e.kind != T::ConsentGranted {
            return Err(invalid("only consent.granted takes expires_at"));
        }
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
                    .ok_or_else(|| invalid("unknown purpose: define it first with PUT /v1/purposes/{purpose}"))?;
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
        if let Some(ev) = &e.evidence {
            if ev.sha256.as_deref().is_some_and(|h| !crate::domain::event::is_sha256_hex(h)) {
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
        let contact = e.contact.as_ref().map(|c| match c {
            ContactInput::Address(c) => {
                ContactRef { kind: c.kind(), index: self.ledger.blind_index().index(controller, c) }
            }
            ContactInput::Index(r) => r.clone(),
        });
        let doc = EventDoc {
            v: FORMAT_VERSION,
            id: e.id.unwrap_or_else(Uuid::now_v7),
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
            next_key: None,
        };
        Ok(Draft { doc, occurred_now: occurred_at.is_none() })
    }

    /// Answers one permission question, now or as of `at`.
    pub fn check(
        &self,
        controller: &ControllerId,
        q: &CheckInput,
        now: DateTime<Utc>,
    ) -> Result<CheckOutcome, ServiceError> {
        self.check_many(controller, std::slice::from_ref(q), now)?
            .pop()
            .unwrap_or_else(|| Err(ServiceError::Internal("no answer".into())))
    }

    /// Answers many questions at once, each on its own (one bad question does not fail the
    /// others): the targets' facts are read with two batched lookups (the targets', then the
    /// subjects linked to the contact points among them).
    pub fn check_many<'q>(
        &self,
        controller: &ControllerId,
        qs: &'q [CheckInput],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<CheckOutcome, ServiceError>>, ServiceError> {
        /// Whom a question is about, once its contact point (if any) is blind-indexed.
        enum Whom<'a> {
            Subject(&'a SubjectId),
            Contact(ContactRef),
        }
        struct Prepared<'a> {
            q: &'a CheckInput,
            whom: Whom<'a>,
            pv: Arc<PurposeVersion>,
            at: DateTime<Utc>,
            channel: Option<Channel>,
            key: Vec<u8>,
            /// The target's own facts, once read.
            facts: Arc<Vec<Fact>>,
        }
        let log_size = self.ledger.committed_seq();
        let prepare = |q: &'q CheckInput| -> Result<Prepared<'q>, ServiceError> {
            let at = match q.at {
                Some(t) if t > now => return Err(invalid("at must not be in the future")),
                Some(t) => t,
                None => now,
            };
            let pv = self.purpose_at(controller, &q.purpose, q.at)?.ok_or(ServiceError::NotFound("purpose"))?;
            Ok(match &q.target {
                CheckTarget::Subject(s) => {
                    let key = facts_key(controller, TargetKey::Subject(s));
                    Prepared { q, whom: Whom::Subject(s), pv, at, channel: q.channel, key, facts: Arc::default() }
                }
                CheckTarget::Contact(c) => {
                    let channel = q.channel.unwrap_or(c.kind().default_channel());
                    if !c.kind().reaches(channel) {
                        return Err(invalid(format!(
                            "channel {channel} does not reach a contact point of kind {}",
                            c.kind().as_str()
                        )));
                    }
                    let index = self.ledger.blind_index().index(controller, c);
                    let key = facts_key(controller, TargetKey::Contact(&index));
                    let whom = Whom::Contact(ContactRef { kind: c.kind(), index });
                    Prepared { q, whom, pv, at, channel: Some(channel), key, facts: Arc::default() }
                }
            })
        };
        let mut prepared: Vec<Result<Prepared<'_>, ServiceError>> = qs.iter().map(prepare).collect();
        let keys: Vec<&[u8]> = prepared.iter().flatten().map(|p| p.key.as_slice()).collect();
        let proj = self.projections();
        // One facts row per key, in order: each prepared question takes the next.
        let rows = proj.facts_many(&keys)?;
        if rows.len() != keys.len() {
            return Err(ServiceError::Internal("a facts row is missing".into()));
        }
        for (p, facts) in prepared.iter_mut().flatten().zip(rows) {
            p.facts = facts;
        }
        // Subjects linked to the contact points, each read once.
        let mut linked_keys: Vec<Vec<u8>> = Vec::new();
        let mut linked_at: HashMap<&SubjectId, usize, foldhash::fast::RandomState> = HashMap::default();
        let mut links: Vec<Vec<usize>> = Vec::with_capacity(qs.len());
        for p in &prepared {
            let mut mine = Vec::new();
            if let Ok(Prepared { whom: Whom::Contact(_), facts, .. }) = p {
                for s in linked_subjects(facts) {
                    let at = *linked_at.entry(s).or_insert_with(|| {
                        linked_keys.push(facts_key(controller, TargetKey::Subject(s)));
                        linked_keys.len() - 1
                    });
                    mine.push(at);
                }
            }
            links.push(mine);
        }
        let linked = if linked_keys.is_empty() { Vec::new() } else { proj.facts_many(&linked_keys)? };
        let answer = |p: Prepared<'_>, mine: Vec<usize>| {
            let target = match &p.whom {
                Whom::Subject(s) => Target::Subject(s),
                Whom::Contact(c) => Target::Contact(&c.index),
            };
            let question = Question {
                target,
                purpose_id: &p.q.purpose,
                purpose: &p.pv.definition,
                channel: p.channel,
                recipient: p.q.recipient.as_ref(),
                at: p.at,
            };
            let decision = if mine.is_empty() {
                decide(&question, &p.facts)
            } else {
                let merged =
                    merge_facts(std::iter::once(p.facts.as_slice()).chain(mine.iter().map(|i| linked[*i].as_slice())));
                decide_among(&question, merged.into_iter())
            };
            let contact = match p.whom {
                Whom::Contact(c) => Some(c),
                Whom::Subject(_) => None,
            };
            CheckOutcome { decision, channel: p.channel, as_of: p.at, contact, log_size }
        };
        let answers: Vec<Result<CheckOutcome, ServiceError>> =
            prepared.into_iter().zip(links).map(|(p, mine)| p.map(|p| answer(p, mine))).collect();
        let permitted = answers.iter().flatten().filter(|a| a.decision.permitted).count() as u64;
        let decided = answers.iter().flatten().count() as u64;
        crate::metrics::METRICS.decisions(permitted, decided - permitted);
        Ok(answers)
    }

    /// Signs a decision so a sender can later prove the message was checked.
    pub fn sign_decision(
        &self,
        controller: &ControllerId,
        q: &CheckInput,
        out: &CheckOutcome,
        now: DateTime<Utc>,
    ) -> Result<SignedDecision, ServiceError> {
        let doc = DecisionDoc {
            v: FORMAT_VERSION,
            kind: DECISION_TYPE.into(),
            controller: controller.clone(),
            subject: match &q.target {
                CheckTarget::Subject(s) => Some(s.clone()),
                CheckTarget::Contact(_) => None,
            },
            contact: out.contact.clone(),
            purpose: q.purpose.clone(),
            channel: out.channel,
            recipient: q.recipient.clone(),
            permitted: out.decision.permitted,
            reason: out.decision.reason,
            basis: out.decision.basis,
            decided_by: out.decision.decided_by.clone(),
            as_of: out.as_of,
            log_size: out.log_size,
            decided_at: to_micros(now),
        };
        let bytes = crate::canonical::to_canonical_bytes(&doc).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (signature, key_id) = self.ledger.sign(&bytes);
        Ok(SignedDecision { decision: doc, signature, key_id })
    }

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
    /// (method `email_link`). The event id derives from the token, so a repeated POST records
    /// nothing new.
    pub async fn unsubscribe(&self, token: &str, now: DateTime<Utc>) -> Result<(Receipt, String), ServiceError> {
        let (payload, title) = self.open_unsubscribe(token)?;
        let mut input = EventInput::by_contact(
            Some(derived_id(token.as_bytes())),
            EventType::ConsentWithdrawn,
            ContactInput::Index(ContactRef { kind: payload.k, index: payload.i.clone() }),
            payload.k.default_channel(),
            Method::EmailLink,
        );
        input.purpose = Some(payload.p.clone());
        let mut receipts = self.record(&payload.c, vec![input], now).await?;
        let r = receipts.pop().ok_or_else(|| ServiceError::Internal("no receipt".into()))?;
        Ok((r, title))
    }

    /// Every purpose, channel and recipient of the catalogue, decided for one subject.
    pub fn permissions(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<PermissionRow>, DateTime<Utc>), ServiceError> {
        let at = match at {
            Some(t) if t > now => return Err(invalid("at must not be in the future")),
            Some(t) => t,
            None => now,
        };
        let proj = self.projections();
        let facts = proj.facts(controller, TargetKey::Subject(subject))?;
        let mut rows = Vec::new();
        for pv in proj.purposes(controller)? {
            let Some(pv) = (if pv.recorded_at <= at { Some(pv) } else { proj.purpose(controller, &pv.id, Some(at))? })
            else {
                continue;
            };
            let channels = pv.definition.channel_scopes();
            let recipients: Vec<Option<RecipientId>> = if pv.definition.recipients.is_empty() {
                vec![None]
            } else {
                pv.definition.recipients.iter().cloned().map(Some).collect()
            };
            for channel in &channels {
                for recipient in &recipients {
                    let q = Question {
                        target: Target::Subject(subject),
                        purpose_id: &pv.id,
                        purpose: &pv.definition,
                        channel: *channel,
                        recipient: recipient.as_ref(),
                        at,
                    };
                    rows.push(PermissionRow {
                        purpose: pv.id.clone(),
                        title: pv.definition.title.clone(),
                        channel: *channel,
                        recipient: recipient.clone(),
                        decision: decide(&q, &facts),
                    });
                }
            }
        }
        Ok((rows, at))
    }

    /// The signed events recorded against a subject, oldest first, optionally as of `at`.
    pub fn history(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Receipt>, ServiceError> {
        let facts = self.projections().facts(controller, TargetKey::Subject(subject))?;
        if facts.is_empty() {
            return Err(ServiceError::NotFound("subject"));
        }
        let keys: Vec<Vec<u8>> =
            facts.iter().filter(|f| at.is_none_or(|t| f.recorded_at <= t)).map(|f| seq_key(f.seq).to_vec()).collect();
        self.ledger
            .store()
            .multi_get(Cf::Events, &keys)?
            .into_iter()
            .map(|raw| {
                let raw = raw.ok_or_else(|| ServiceError::Internal("history names a missing event".into()))?;
                receipt_of(&raw)
            })
            .collect()
    }

    /// The controller's events after `after` in seq order (at most `limit`), and whether more
    /// follow.
    pub fn feed(
        &self,
        controller: &ControllerId,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Receipt>, bool), ServiceError> {
        let mut seqs = self.projections().log_after(controller, after, limit + 1)?;
        let more = seqs.len() > limit;
        seqs.truncate(limit);
        let keys: Vec<Vec<u8>> = seqs.iter().map(|s| seq_key(*s).to_vec()).collect();
        let receipts = self
            .ledger
            .store()
            .multi_get(Cf::Events, &keys)?
            .into_iter()
            .map(|raw| receipt_of(&raw.ok_or_else(|| ServiceError::Internal("feed names a missing event".into()))?))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((receipts, more))
    }

    /// The receipt of one event of the caller's controller.
    pub fn receipt(&self, controller: &ControllerId, id: Uuid) -> Result<Receipt, ServiceError> {
        let seq = self.ledger.store().get(Cf::EventIds, id.as_bytes())?.ok_or(ServiceError::NotFound("event"))?;
        let seq = u64::from_be_bytes(seq.try_into().map_err(|_| ServiceError::Internal("bad seq".into()))?);
        let r = self.receipt_by_seq(seq)?;
        if r.event.controller.as_ref() != Some(controller) {
            // Another controller's event is reported exactly like a missing one.
            return Err(ServiceError::NotFound("event"));
        }
        Ok(r)
    }

    fn receipt_by_seq(&self, seq: u64) -> Result<Receipt, ServiceError> {
        let raw = self.ledger.store().get(Cf::Events, &seq_key(seq))?.ok_or(ServiceError::NotFound("event"))?;
        receipt_of(&raw)
    }
}

fn receipt_of(raw: &[u8]) -> Result<Receipt, ServiceError> {
    let stored = StoredEvent::decode(raw).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let doc = stored.doc().map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(stored.receipt(doc))
}
