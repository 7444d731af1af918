//! Who may act for a person: an event whose actor is a representative is taken only while that
//! representative holds an authorisation for the subject, as of the event's time. An
//! authorisation (`representative.authorised`) names the representative and the authority
//! they act under (one of [`domain::AUTHORITIES`]), needs evidence (the signed power of
//! attorney, the court order, the letter), and may end at a date (a guardian's at the child's
//! 18th birthday; the ledger holds no date of birth, so the recorder gives the date); a
//! `representative.revoked` ends it from its own time. Checks are unchanged: representatives
//! change who may act, not what is permitted.

use chrono::{DateTime, Utc};

use super::{invalid, EventInput, Service, ServiceError};
use domain::{ActorKind, ControllerId, EventType, SubjectId, Token, AUTHORITIES};
use projection::TargetKey;

/// One authorisation as the subject's record holds it.
struct Held {
    authority: Token,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
}

impl Service {
    /// Holds an event against the rules for representatives (before it is drafted): an
    /// authorisation names a known authority and its evidence; a representative actor names
    /// the subject and holds an authorisation for them at `at`.
    pub(crate) fn check_representation(
        &self,
        controller: &ControllerId,
        e: &EventInput,
        at: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        if e.kind == EventType::RepresentativeAuthorised {
            if let Some(r) = &e.representative {
                if !AUTHORITIES.contains(&r.authority.as_str()) {
                    return Err(invalid(format!("representative.authority must be one of {}", AUTHORITIES.join(", "))));
                }
            }
            if e.evidence.is_none() {
                return Err(invalid("an authorisation needs evidence: a reference to the document that gives it"));
            }
        }
        if e.actor.kind != ActorKind::Representative {
            return Ok(());
        }
        let (Some(id), Some(authority)) = (&e.actor.id, &e.actor.authority) else {
            return Err(invalid("a representative actor needs their id and the authority they act under"));
        };
        let Some(subject) = &e.subject else {
            return Err(invalid("a representative acts for a subject: name the subject"));
        };
        match self.authorisation(controller, subject, id, at)? {
            Some(held) if &held.authority == authority => Ok(()),
            Some(_) => Err(invalid("the representative holds another authority for this subject")),
            None => Err(invalid(
                "the representative holds no authorisation for this subject at the event's time (record representative.authorised first)",
            )),
        }
    }

    /// The authorisation `representative` holds for `subject` at `at`, if any.
    fn authorisation(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        representative: &Token,
        at: DateTime<Utc>,
    ) -> Result<Option<Held>, ServiceError> {
        let facts = self.projections().facts(controller, TargetKey::Subject(subject))?;
        let mut held: Option<Held> = None;
        for f in facts.iter() {
            if !matches!(f.kind, EventType::RepresentativeAuthorised | EventType::RepresentativeRevoked)
                || f.occurred_at > at
            {
                continue;
            }
            let doc = self
                .ledger
                .event(f.seq)?
                .ok_or(ServiceError::Internal("a fact without its event".into()))?
                .doc()
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            let Some(r) = doc.representative.filter(|r| &r.id == representative) else { continue };
            held = match f.kind {
                EventType::RepresentativeAuthorised => {
                    Some(Held { authority: r.authority, from: f.occurred_at, until: f.expires_at })
                }
                _ => None,
            };
        }
        Ok(held.filter(|h| h.from <= at && h.until.is_none_or(|u| at < u)))
    }
}
