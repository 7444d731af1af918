//! The tenant's own preference page, as use cases: signed, expiring links that reach one
//! subject of one controller; the page's state (every purpose a person may say yes or no to,
//! decided now by the rules, and their channel preferences); and recording what a person
//! changed, one signed event per change (method `web_form`, actor `subject`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::addresses::{Address, HistoryEntry};
use super::choices::{Choice, Person};
use super::{ContactInput, EventInput, NoticeVersion, Service, ServiceError};
use domain::{
    objection_to_all_marketing, Channel, ControllerId, EventType, Format, LawfulBasis, Method, Preference,
    PurposeDefinition, PurposeId, SubjectId, Token,
};
use format::Receipt;
use tokens::TokenUse;

/// How long a preference link works unless the request says otherwise.
pub const DEFAULT_LINK_DAYS: u32 = 14;
/// The longest a preference link may work.
pub const MAX_LINK_DAYS: u32 = 90;

/// What a preference link binds: controller, subject, expiry and issue time (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreferenceToken {
    pub c: ControllerId,
    pub s: SubjectId,
    /// Expiry, Unix seconds.
    pub x: i64,
    /// Issue time, Unix seconds.
    pub t: i64,
}

/// A purpose a person may say yes or no to (basis consent or legitimate interests).
#[derive(Debug, Clone)]
pub struct PurposeSection {
    pub id: PurposeId,
    pub definition: PurposeDefinition,
    /// The `purpose.defined` event whose wording the person is shown, and when it was recorded.
    pub described: Uuid,
    pub described_at: DateTime<Utc>,
    /// The published notice the purpose names, if any: shown and linked on the page, and
    /// recorded as the `notice_version` of what the person says.
    pub notice: Option<NoticeVersion>,
    pub choices: Vec<Choice>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct PreferenceState {
    pub sections: Vec<PurposeSection>,
    /// The subject's own objection to all direct marketing (Art. 21(3)), if one is in force.
    pub marketing_objection: Option<Uuid>,
    pub erased: bool,
    pub preference: Preference,
    /// The person's history (their events and those at their addresses), newest first.
    pub history: Vec<HistoryEntry>,
    /// What the answers were read from: the person's facts and addresses.
    pub(super) person: Person,
}

impl PreferenceState {
    /// Every address ever linked to the person (kind, when linked, whether shared).
    pub fn addresses(&self) -> &[Address] {
        &self.person.addresses
    }
}

/// What a person asked for on the page. Absent entries are left as they are.
#[derive(Debug, Clone, Default)]
pub struct Wishes {
    pub choices: BTreeMap<(PurposeId, Option<Channel>), bool>,
    pub preferred_channel: Option<Channel>,
    pub format: Option<Format>,
    pub language: Option<Token>,
}

/// An event the subject made on the page.
fn by_subject(kind: EventType, subject: &SubjectId) -> EventInput {
    EventInput {
        subject: Some(subject.clone()),
        recorded_by: super::Recorder::TenantPage.token(),
        ..EventInput::by_person(kind, Method::WebForm)
    }
}

impl Service {
    /// A signed link token for one subject, working until `now + days`.
    pub fn preference_link(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        days: u32,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), ServiceError> {
        if days == 0 || days > MAX_LINK_DAYS {
            return Err(ServiceError::Invalid(format!("valid_for_days must be 1 to {MAX_LINK_DAYS}")));
        }
        let expires = now + Duration::days(i64::from(days));
        let payload =
            PreferenceToken { c: controller.clone(), s: subject.clone(), x: expires.timestamp(), t: now.timestamp() };
        let expires = DateTime::from_timestamp(payload.x, 0).unwrap_or(expires);
        Ok((self.ledger.tokens().sign(TokenUse::Preferences, &payload), expires))
    }

    /// Opens a preference link; an expired one is told apart only after its signature checks.
    /// Opens a preference link: `ServiceError::LinkInvalid` when it is not ours or was
    /// changed, `LinkExpired` after its time (told apart only once its MAC holds).
    pub fn open_preference_link(&self, token: &str, now: DateTime<Utc>) -> Result<PreferenceToken, ServiceError> {
        let payload: PreferenceToken =
            self.ledger.tokens().open(TokenUse::Preferences, token).map_err(|_| ServiceError::LinkInvalid)?;
        if payload.x <= now.timestamp() {
            return Err(ServiceError::LinkExpired);
        }
        Ok(payload)
    }

    /// A value a form posted under `token` must carry back (a guard against cross-site posts).
    pub fn form_guard(&self, token: &str) -> String {
        self.ledger.tokens().tag(TokenUse::FormGuard, token)
    }

    pub fn check_form_guard(&self, token: &str, guard: &str) -> bool {
        self.ledger.tokens().verify_tag(TokenUse::FormGuard, token, guard)
    }

    /// The page's state for one subject, now.
    pub fn preference_state(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        now: DateTime<Utc>,
    ) -> Result<PreferenceState, ServiceError> {
        let proj = self.projections();
        let facts = proj.facts(controller, projection::TargetKey::Subject(subject))?;
        let erased = facts.iter().any(|f| f.kind == EventType::SubjectErased);
        let marketing_objection = objection_to_all_marketing(&facts, now).map(|f| f.id);
        let person =
            Person { subject: subject.clone(), addresses: self.addresses(controller, subject, &facts)?, own: facts };
        let mut sections = Vec::new();
        for pv in proj.purposes(controller)? {
            if !matches!(pv.definition.basis, LawfulBasis::Consent | LawfulBasis::LegitimateInterests) {
                continue;
            }
            let choices: Vec<Choice> = pv
                .definition
                .channel_scopes()
                .into_iter()
                .map(|channel| person.choice(&pv.id, &pv.definition, channel, now, &[]))
                .collect();
            let described = self.receipt_by_seq(pv.seq)?;
            let notice = match &pv.definition.notice {
                Some(id) => proj.notice(controller, id)?,
                None => None,
            };
            sections.push(PurposeSection {
                id: pv.id,
                described: described.event.id,
                described_at: pv.recorded_at,
                notice,
                definition: pv.definition,
                choices,
            });
        }
        let mut history = if person.own.is_empty() { Vec::new() } else { self.history(controller, subject, None)? };
        let mut preference = Preference { preferred_channel: None, format: None, language: None };
        for r in &history {
            if let Some(p) = &r.receipt.event.preference {
                preference.preferred_channel = p.preferred_channel.or(preference.preferred_channel);
                preference.format = p.format.or(preference.format);
                preference.language = p.language.clone().or(preference.language.take());
            }
        }
        history.reverse();
        Ok(PreferenceState { sections, marketing_objection, erased, preference, history, person })
    }

    /// Records what changed between `state` (the page's state, read just now) and `wishes`:
    /// one event per change, all in one durable batch. A repeated submission changes nothing
    /// the second time.
    pub async fn apply_preferences(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        state: &PreferenceState,
        wishes: &Wishes,
        now: DateTime<Utc>,
    ) -> Result<Vec<Receipt>, ServiceError> {
        if state.erased {
            return Err(ServiceError::Invalid("this person's details were erased".into()));
        }
        let wished = state.sections.iter().flat_map(|section| {
            section.choices.iter().filter_map(move |choice| {
                let yes = *wishes.choices.get(&(section.id.clone(), choice.channel))?;
                Some((&section.id, &section.definition, choice.channel, yes))
            })
        });
        let notices: BTreeMap<&PurposeId, &Token> =
            state.sections.iter().filter_map(|s| Some((&s.id, &s.notice.as_ref()?.notice.id))).collect();
        let mut inputs = Vec::new();
        for p in state.person.changes(wished, now) {
            let mut e = match p.contact {
                None => by_subject(p.kind, subject),
                Some(c) => EventInput {
                    contact: Some(ContactInput::Index(c)),
                    recorded_by: super::Recorder::TenantPage.token(),
                    ..EventInput::by_person(p.kind, Method::WebForm)
                },
            };
            if matches!(p.kind, EventType::ConsentGranted | EventType::ConsentWithdrawn) {
                e.notice_version = p.purpose.as_ref().and_then(|id| notices.get(id)).map(|n| (*n).clone());
            }
            e.purpose = p.purpose;
            e.channel = p.channel;
            inputs.push(e);
        }
        let current = &state.preference;
        let mut pref = |p: Preference| {
            let mut e = by_subject(EventType::PreferenceSet, subject);
            e.preference = Some(p);
            inputs.push(e);
        };
        if wishes.preferred_channel.is_some() && wishes.preferred_channel != current.preferred_channel {
            pref(Preference { preferred_channel: wishes.preferred_channel, format: None, language: None });
        }
        if wishes.format.is_some() && wishes.format != current.format.or(Some(Format::Standard)) {
            pref(Preference { preferred_channel: None, format: wishes.format, language: None });
        }
        if wishes.language.is_some() && wishes.language != current.language {
            pref(Preference { preferred_channel: None, format: None, language: wishes.language.clone() });
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        self.record(controller, inputs, now).await
    }

    /// "Stop all marketing" (`stop`: the Art. 21(3) objection, in one step) or "allow
    /// marketing again" (lifts the subject's own). Nothing is recorded when `state` (read just
    /// now) already is as asked.
    pub async fn switch_marketing(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        state: &PreferenceState,
        stop: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Receipt>, ServiceError> {
        if state.erased {
            return Err(ServiceError::Invalid("this person's details were erased".into()));
        }
        if state.marketing_objection.is_some() == stop {
            return Ok(Vec::new());
        }
        let kind = if stop { EventType::ObjectionRaised } else { EventType::ObjectionLifted };
        self.record(controller, vec![by_subject(kind, subject)], now).await
    }

    /// One event of the person's history (their own, or one recorded against one of their
    /// addresses while it was linked to them), with its receipt; any other is not found.
    pub fn subject_receipt(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        id: Uuid,
    ) -> Result<Receipt, ServiceError> {
        let r = self.receipt(controller, id)?;
        if r.event.subject.as_ref() == Some(subject) {
            return Ok(r);
        }
        if r.event.subject.is_none() && r.event.contact.is_some() {
            let own = self.projections().facts(controller, projection::TargetKey::Subject(subject))?;
            let addresses = self.addresses(controller, subject, &own)?;
            if addresses.iter().any(|a| a.own_events().any(|f| f.seq == r.seq)) {
                return Ok(r);
            }
        }
        Err(ServiceError::NotFound("event"))
    }
}
