//! The permission rules of SPEC section 3, as one pure function: [`decide`].
//!
//! The current answer and every "as of" answer come from this function over a target's facts;
//! nothing else in the code base decides whether a contact or share is permitted.
//!
//! Choices the specification leaves open, made here once:
//! - A check without a channel asks about the purpose as a whole, so every event of the
//!   purpose covers it, whatever its channel scope. Likewise for a check without a recipient.
//! - Objections and restrictions are switches held per person (per subject, or per contact
//!   point for events recorded against the address itself): a `.lifted` ends only the same
//!   person's `.raised`/`.applied` of the same purpose scope, and only on the channel it
//!   names (on every channel if it names none). Asked by contact point, any active switch of
//!   any linked subject denies, because a shared household address reaches them all.
//! - An objection scoped to a purpose denies that purpose on every basis but legal
//!   obligation and vital interests.
//! - A contact point is suppressed when a subject linked to it is erased.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::contact::Channel;
use super::event::EventType;
use super::fact::Fact;
use super::ids::{PurposeId, RecipientId, SubjectId};
use super::purpose::{LawfulBasis, PurposeDefinition};

/// Whom a check is about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Subject(&'a SubjectId),
    /// A contact point, by blind index.
    Contact(&'a str),
}

/// One permission question.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub target: Target<'a>,
    pub purpose_id: &'a PurposeId,
    pub purpose: &'a PurposeDefinition,
    pub channel: Option<Channel>,
    pub recipient: Option<&'a RecipientId>,
    pub at: DateTime<Utc>,
}

/// Machine-readable reason of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    SubjectErased,
    ContactSuppressed,
    ChannelNotInPurpose,
    RecipientNotListed,
    MarketingObjection,
    Restricted,
    Objection,
    ConsentGranted,
    NoConsent,
    ConsentWithdrawn,
    ConsentExpired,
    OptedOut,
    LegitimateInterests,
    Contract,
    PublicTask,
    LegalObligation,
    VitalInterests,
}

/// The answer to a [`Question`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub permitted: bool,
    pub reason: Reason,
    pub basis: LawfulBasis,
    /// Ids of the events that decided the answer (empty when no event did).
    pub decided_by: Vec<Uuid>,
}

impl Decision {
    fn deny(basis: LawfulBasis, reason: Reason, by: Option<&Fact>) -> Self {
        Self { permitted: false, reason, basis, decided_by: by.map(|f| vec![f.id]).unwrap_or_default() }
    }

    fn allow(basis: LawfulBasis, reason: Reason, by: Option<&Fact>) -> Self {
        Self { permitted: true, reason, basis, decided_by: by.map(|f| vec![f.id]).unwrap_or_default() }
    }
}

/// Who an event speaks for: a subject, or the contact point itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Person<'a> {
    Subject(&'a SubjectId),
    Contact(&'a str),
}

fn person(f: &Fact) -> Option<Person<'_>> {
    match (&f.subject, &f.contact) {
        (Some(s), _) => Some(Person::Subject(s)),
        (None, Some(c)) => Some(Person::Contact(c)),
        (None, None) => None,
    }
}

/// Whether a fact of type `kind`, scoped to `purpose` (none: to no purpose), can bear on a
/// question about the purpose `asked`. Every rule reads the consents, objections and
/// restrictions of the purpose asked about or of none, and the other events (erasure, links)
/// whatever their purpose; so [`decide`] answers the same over the facts this keeps as over
/// all of them (a property test holds it). A check reads only these, so a tenant's events
/// about other purposes are read past, never built.
pub fn bears_on(kind: EventType, purpose: Option<&str>, asked: &PurposeId) -> bool {
    match kind {
        EventType::ConsentGranted
        | EventType::ConsentWithdrawn
        | EventType::ObjectionRaised
        | EventType::ObjectionLifted
        | EventType::RestrictionApplied
        | EventType::RestrictionLifted => purpose.is_none_or(|p| p == asked.as_str()),
        _ => true,
    }
}

/// Decides `q` over `facts`: the facts recorded against the target and, for a contact point,
/// those of every subject ever linked to it, in ascending `seq` order. Facts recorded after
/// `q.at` are ignored, so the same call answers "now" and "as of".
pub fn decide(q: &Question<'_>, facts: &[Fact]) -> Decision {
    decide_among(q, facts.iter())
}

/// [`decide`] over facts given by reference, in seq order (a contact point's own facts
/// merged with its linked subjects', say, without copying them).
pub fn decide_among<'f>(q: &Question<'_>, facts: impl Iterator<Item = &'f Fact>) -> Decision {
    let basis = q.purpose.basis;
    let known: Vec<&Fact> = facts.filter(|f| f.recorded_at <= q.at).collect();

    if let Some(k) = q.channel {
        if !q.purpose.allows_channel(k) {
            return Decision::deny(basis, Reason::ChannelNotInPurpose, None);
        }
    }
    if let Some(r) = q.recipient {
        if !q.purpose.allows_recipient(r) {
            return Decision::deny(basis, Reason::RecipientNotListed, None);
        }
    }

    // Rule 1 and rule 6: erasure, suppression and who the target's events are.
    let relevant: Vec<&Fact> = match q.target {
        Target::Subject(s) => {
            let own: Vec<&Fact> = known.iter().copied().filter(|f| f.subject.as_ref() == Some(s)).collect();
            if let Some(e) = own.iter().find(|f| f.kind == EventType::SubjectErased) {
                return Decision::deny(basis, Reason::SubjectErased, Some(e));
            }
            own
        }
        Target::Contact(c) => {
            let mut linked: Vec<&SubjectId> = Vec::new();
            let mut suppressed_by: Option<&Fact> = None;
            for f in &known {
                let on_contact = f.contact.as_deref() == Some(c);
                match (f.kind, &f.subject) {
                    (EventType::ContactLinked, Some(s)) if on_contact && !linked.contains(&s) => linked.push(s),
                    (EventType::ContactUnlinked, Some(s)) if on_contact => linked.retain(|x| *x != s),
                    (EventType::SubjectErased, Some(s)) if linked.contains(&s) => {
                        suppressed_by = suppressed_by.or(Some(f));
                    }
                    _ => {}
                }
            }
            if let Some(e) = suppressed_by {
                return Decision::deny(basis, Reason::ContactSuppressed, Some(e));
            }
            known
                .iter()
                .copied()
                .filter(|f| f.contact.as_deref() == Some(c) || f.subject.as_ref().is_some_and(|s| linked.contains(&s)))
                .collect()
        }
    };

    let covers = |f: &Fact| {
        let channel_ok = match (q.channel, f.channel) {
            (Some(k), Some(fk)) => k == fk,
            _ => true,
        };
        let recipient_ok = match (q.recipient, &f.recipient) {
            (Some(r), Some(fr)) => r == fr,
            _ => true,
        };
        channel_ok && recipient_ok
    };

    // Rule 2: the Art. 21(3) objection to all direct marketing.
    if q.purpose.marketing {
        if let Some(o) = active_switch(&relevant, EventType::ObjectionRaised, EventType::ObjectionLifted, |f| {
            f.purpose.is_none() && covers(f)
        }) {
            return Decision::deny(basis, Reason::MarketingObjection, Some(o));
        }
    }

    if !basis.overrides_restriction() {
        // Rule 3: restriction of processing (Art. 18), of everything or of this purpose.
        if let Some(r) = active_switch(&relevant, EventType::RestrictionApplied, EventType::RestrictionLifted, |f| {
            f.purpose.is_none() || f.purpose.as_ref() == Some(q.purpose_id)
        }) {
            return Decision::deny(basis, Reason::Restricted, Some(r));
        }
        // An objection to this purpose only.
        if let Some(o) = active_switch(&relevant, EventType::ObjectionRaised, EventType::ObjectionLifted, |f| {
            f.purpose.as_ref() == Some(q.purpose_id) && covers(f)
        }) {
            return Decision::deny(basis, Reason::Objection, Some(o));
        }
    }

    // Rules 4 and 5: the most recent covering grant or withdrawal.
    let is_consent_event = |f: &Fact| {
        matches!(f.kind, EventType::ConsentGranted | EventType::ConsentWithdrawn)
            && f.purpose.as_ref() == Some(q.purpose_id)
            && covers(f)
    };
    let latest_of_all = || relevant.iter().copied().rfind(|f| is_consent_event(f));
    let latest = match q.target {
        Target::Contact(c) => {
            // Rule 6: a denial recorded against the address itself holds until a later grant
            // on that same address, whatever linked subjects recorded since.
            let own_latest = relevant
                .iter()
                .copied()
                .rfind(|f| f.contact.as_deref() == Some(c) && f.subject.is_none() && is_consent_event(f));
            match own_latest {
                Some(f) if f.kind == EventType::ConsentWithdrawn => Some(f),
                _ => latest_of_all(),
            }
        }
        Target::Subject(_) => latest_of_all(),
    };
    let withdrawn = latest.filter(|f| f.kind == EventType::ConsentWithdrawn);

    match basis {
        LawfulBasis::Consent => match latest {
            None => Decision::deny(basis, Reason::NoConsent, None),
            Some(f) if f.kind == EventType::ConsentWithdrawn => {
                Decision::deny(basis, Reason::ConsentWithdrawn, Some(f))
            }
            Some(f) if expired(f, q.purpose, q.at) => Decision::deny(basis, Reason::ConsentExpired, Some(f)),
            Some(f) => Decision::allow(basis, Reason::ConsentGranted, Some(f)),
        },
        LawfulBasis::LegitimateInterests | LawfulBasis::Contract | LawfulBasis::PublicTask => {
            if let Some(w) = withdrawn {
                return Decision::deny(basis, Reason::OptedOut, Some(w));
            }
            let reason = match basis {
                LawfulBasis::LegitimateInterests => Reason::LegitimateInterests,
                LawfulBasis::Contract => Reason::Contract,
                _ => Reason::PublicTask,
            };
            Decision::allow(basis, reason, latest)
        }
        LawfulBasis::LegalObligation => Decision::allow(basis, Reason::LegalObligation, None),
        LawfulBasis::VitalInterests => Decision::allow(basis, Reason::VitalInterests, None),
    }
}

/// Whether a grant has lapsed at `at`: at its own `expires_at`, or `consent_valid_days` after
/// it was given, whichever comes first.
fn expired(grant: &Fact, purpose: &PurposeDefinition, at: DateTime<Utc>) -> bool {
    let by_own = grant.expires_at.is_some_and(|e| e <= at);
    let by_validity =
        purpose.consent_valid_days.is_some_and(|d| grant.occurred_at + Duration::days(i64::from(d)) <= at);
    by_own || by_validity
}

/// The objection to all direct marketing on every channel (Art. 21(3): no purpose, no
/// channel) that is in force at `at` among `facts`, if any: the switch rule 2 reads, asked
/// for all channels at once (the tenant page shows it and offers to lift it).
pub fn objection_to_all_marketing(facts: &[Fact], at: DateTime<Utc>) -> Option<&Fact> {
    let known: Vec<&Fact> = facts.iter().filter(|f| f.recorded_at <= at).collect();
    active_switch(&known, EventType::ObjectionRaised, EventType::ObjectionLifted, |f| {
        f.purpose.is_none() && f.channel.is_none()
    })
}

/// The most recent still-active `raise` among `facts` that `scope` selects. A `lift` ends the
/// earlier raises of the same person and the same purpose scope whose channel it covers: a
/// lift without a channel ends them on every channel, a lift on one channel ends only the
/// raises on that channel (so lifting an email objection leaves an SMS stop, or an objection
/// on every channel, in force).
fn active_switch<'f>(
    facts: &[&'f Fact],
    raise: EventType,
    lift: EventType,
    scope: impl Fn(&Fact) -> bool,
) -> Option<&'f Fact> {
    let mut active: Vec<&'f Fact> = Vec::new();
    for f in facts.iter().copied().filter(|f| (f.kind == raise || f.kind == lift) && scope(f)) {
        let Some(p) = person(f) else { continue };
        if f.kind == raise {
            active.push(f);
        } else {
            active.retain(|r| {
                let ended =
                    person(r) == Some(p) && r.purpose == f.purpose && (f.channel.is_none() || f.channel == r.channel);
                !ended
            });
        }
    }
    active.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Channel, ContactKind};
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(i64::from(day))
    }

    fn pid(s: &str) -> PurposeId {
        PurposeId::parse(s).unwrap()
    }

    fn sid(s: &str) -> SubjectId {
        SubjectId::parse(s).unwrap()
    }

    fn purpose(basis: LawfulBasis, marketing: bool, valid_days: Option<u32>) -> PurposeDefinition {
        PurposeDefinition {
            title: "p".into(),
            description: None,
            basis,
            marketing,
            channels: vec![Channel::Email, Channel::Sms, Channel::Post],
            recipients: vec![],
            consent_valid_days: valid_days,
            retention: None,
            notice: None,
        }
    }

    /// Builds facts in seq order, one day apart.
    #[derive(Default)]
    struct Given {
        facts: Vec<Fact>,
    }

    impl Given {
        fn event(mut self, kind: EventType, f: impl FnOnce(&mut Fact)) -> Self {
            let seq = self.facts.len() as u64 + 1;
            let mut fact = Fact {
                seq,
                id: Uuid::from_u128(u128::from(seq)),
                kind,
                subject: Some(sid("T-1")),
                contact: None,
                purpose: Some(pid("newsletter")),
                channel: None,
                recipient: None,
                occurred_at: t(seq as u32),
                recorded_at: t(seq as u32),
                expires_at: None,
            };
            f(&mut fact);
            self.facts.push(fact);
            self
        }

        fn check(
            &self,
            p: &PurposeDefinition,
            target: Target<'_>,
            channel: Option<Channel>,
            at: DateTime<Utc>,
        ) -> Decision {
            let id = pid("newsletter");
            decide(&Question { target, purpose_id: &id, purpose: p, channel, recipient: None, at }, &self.facts)
        }
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn no_record_means_no_consent() {
        let s = sid("T-1");
        let d = Given::default().check(&purpose(LawfulBasis::Consent, true, None), Target::Subject(&s), None, t(10));
        assert_eq!((d.permitted, d.reason), (false, Reason::NoConsent));
    }

    #[test]
    fn grant_then_withdraw_then_as_of_before() {
        let s = sid("T-1");
        let p = purpose(LawfulBasis::Consent, true, None);
        let g = Given::default().event(EventType::ConsentGranted, |_| {}).event(EventType::ConsentWithdrawn, |_| {});
        let now = g.check(&p, Target::Subject(&s), Some(Channel::Email), t(10));
        assert_eq!((now.permitted, now.reason, now.decided_by.clone()), (false, Reason::ConsentWithdrawn, vec![id(2)]));
        let before = g.check(&p, Target::Subject(&s), Some(Channel::Email), t(1));
        assert_eq!((before.permitted, before.reason, before.decided_by), (true, Reason::ConsentGranted, vec![id(1)]));
    }

    #[test]
    fn channel_scoped_withdrawal_covers_only_that_channel() {
        let s = sid("T-1");
        let p = purpose(LawfulBasis::Consent, true, None);
        let g = Given::default()
            .event(EventType::ConsentGranted, |_| {})
            .event(EventType::ConsentWithdrawn, |f| f.channel = Some(Channel::Sms));
        assert!(g.check(&p, Target::Subject(&s), Some(Channel::Email), t(10)).permitted);
        assert!(!g.check(&p, Target::Subject(&s), Some(Channel::Sms), t(10)).permitted);
        // A channel not in the purpose is never permitted.
        assert_eq!(g.check(&p, Target::Subject(&s), Some(Channel::Phone), t(10)).reason, Reason::ChannelNotInPurpose);
    }

    #[test]
    fn consent_expires_by_validity_or_own_expiry_whichever_first() {
        let s = sid("T-1");
        let g = Given::default().event(EventType::ConsentGranted, |f| f.expires_at = Some(t(5)));
        let p = purpose(LawfulBasis::Consent, true, Some(30));
        assert!(g.check(&p, Target::Subject(&s), None, t(4)).permitted);
        assert_eq!(g.check(&p, Target::Subject(&s), None, t(5)).reason, Reason::ConsentExpired);
        let g = Given::default().event(EventType::ConsentGranted, |_| {});
        let p = purpose(LawfulBasis::Consent, true, Some(3));
        assert!(g.check(&p, Target::Subject(&s), None, t(3)).permitted);
        assert_eq!(g.check(&p, Target::Subject(&s), None, t(4)).reason, Reason::ConsentExpired);
    }

    #[test]
    fn marketing_objection_is_absolute_until_lifted() {
        let s = sid("T-1");
        let p = purpose(LawfulBasis::Consent, true, None);
        let g = Given::default()
            .event(EventType::ConsentGranted, |_| {})
            .event(EventType::ObjectionRaised, |f| f.purpose = None)
            .event(EventType::ConsentGranted, |_| {});
        let d = g.check(&p, Target::Subject(&s), None, t(10));
        assert_eq!((d.permitted, d.reason, d.decided_by), (false, Reason::MarketingObjection, vec![id(2)]));
        // Not a marketing purpose: the general objection does not apply.
        assert!(g.check(&purpose(LawfulBasis::Consent, false, None), Target::Subject(&s), None, t(10)).permitted);
        let g = g.event(EventType::ObjectionLifted, |f| f.purpose = None);
        assert!(g.check(&p, Target::Subject(&s), None, t(10)).permitted);
    }

    #[test]
    fn the_objection_to_all_marketing_is_the_one_rule_2_applies() {
        let s = sid("T-1");
        let p = purpose(LawfulBasis::Consent, true, None);
        let g = Given::default()
            .event(EventType::ConsentGranted, |_| {})
            .event(EventType::ObjectionRaised, |_| {}) // to the newsletter only
            .event(EventType::ObjectionRaised, |f| {
                f.purpose = None;
                f.channel = Some(Channel::Sms) // all marketing, by SMS only
            });
        assert!(objection_to_all_marketing(&g.facts, t(10)).is_none());
        let g = g.event(EventType::ObjectionRaised, |f| f.purpose = None);
        assert_eq!(objection_to_all_marketing(&g.facts, t(10)).map(|f| f.id), Some(id(4)));
        assert_eq!(g.check(&p, Target::Subject(&s), None, t(10)).reason, Reason::MarketingObjection);
        assert!(objection_to_all_marketing(&g.facts, t(3)).is_none(), "as of before it was recorded");
        let g = g.event(EventType::ObjectionLifted, |f| f.purpose = None);
        assert!(objection_to_all_marketing(&g.facts, t(10)).is_none());
    }

    #[test]
    fn a_lift_ends_objections_only_on_the_channel_it_names() {
        let s = sid("T-1");
        let p = purpose(LawfulBasis::Consent, true, None);
        let sms = |f: &mut Fact| {
            f.purpose = None;
            f.channel = Some(Channel::Sms)
        };
        let email = |f: &mut Fact| {
            f.purpose = None;
            f.channel = Some(Channel::Email)
        };
        let g = Given::default()
            .event(EventType::ConsentGranted, |_| {})
            .event(EventType::ObjectionRaised, sms)
            .event(EventType::ObjectionRaised, email)
            .event(EventType::ObjectionLifted, email);
        let by = |k| g.check(&p, Target::Subject(&s), k, t(10));
        assert!(by(Some(Channel::Email)).permitted, "the email objection is lifted");
        assert_eq!(by(Some(Channel::Sms)).decided_by, vec![id(2)], "the SMS one still holds");
        assert_eq!(by(None).reason, Reason::MarketingObjection, "the purpose as a whole is still objected to");

        // An objection on every channel is not ended by lifting one channel.
        let g = Given::default()
            .event(EventType::ConsentGranted, |_| {})
            .event(EventType::ObjectionRaised, |f| f.purpose = None)
            .event(EventType::ObjectionLifted, email);
        assert_eq!(g.check(&p, Target::Subject(&s), Some(Channel::Email), t(10)).reason, Reason::MarketingObjection);
        // A lift without a channel ends them on every channel.
        let g = g.event(EventType::ObjectionRaised, sms).event(EventType::ObjectionLifted, |f| f.purpose = None);
        for k in [None, Some(Channel::Email), Some(Channel::Sms)] {
            assert!(g.check(&p, Target::Subject(&s), k, t(10)).permitted);
        }
    }

    #[test]
    fn restriction_denies_all_but_legal_obligation_and_vital_interests() {
        let s = sid("T-1");
        let g = Given::default().event(EventType::RestrictionApplied, |f| f.purpose = None);
        for basis in [LawfulBasis::Contract, LawfulBasis::PublicTask, LawfulBasis::LegitimateInterests] {
            assert_eq!(
                g.check(&purpose(basis, false, None), Target::Subject(&s), None, t(9)).reason,
                Reason::Restricted
            );
        }
        let d = g.check(&purpose(LawfulBasis::LegalObligation, false, None), Target::Subject(&s), None, t(9));
        assert_eq!((d.permitted, d.basis), (true, LawfulBasis::LegalObligation));
        assert!(g.check(&purpose(LawfulBasis::VitalInterests, false, None), Target::Subject(&s), None, t(9)).permitted);
        let g = g.event(EventType::RestrictionLifted, |f| f.purpose = None);
        assert!(g.check(&purpose(LawfulBasis::Contract, false, None), Target::Subject(&s), None, t(9)).permitted);
    }

    #[test]
    fn legitimate_interests_and_contract_need_an_opt_out_to_deny() {
        let s = sid("T-1");
        for basis in [LawfulBasis::LegitimateInterests, LawfulBasis::Contract, LawfulBasis::PublicTask] {
            let p = purpose(basis, false, None);
            let g = Given::default();
            assert!(g.check(&p, Target::Subject(&s), Some(Channel::Sms), t(9)).permitted);
            let g = g.event(EventType::ConsentWithdrawn, |f| f.channel = Some(Channel::Sms));
            assert_eq!(g.check(&p, Target::Subject(&s), Some(Channel::Sms), t(9)).reason, Reason::OptedOut);
            assert!(g.check(&p, Target::Subject(&s), Some(Channel::Email), t(9)).permitted);
        }
        let p = purpose(LawfulBasis::LegitimateInterests, false, None);
        let g = Given::default().event(EventType::ObjectionRaised, |_| {});
        assert_eq!(g.check(&p, Target::Subject(&s), None, t(9)).reason, Reason::Objection);
    }

    #[test]
    fn erasure_denies_everything_and_suppresses_linked_contact_points() {
        let s = sid("T-1");
        let g = Given::default()
            .event(EventType::ContactLinked, |f| {
                f.purpose = None;
                f.contact = Some("idx".into())
            })
            .event(EventType::ConsentGranted, |_| {})
            .event(EventType::SubjectErased, |f| f.purpose = None);
        let p = purpose(LawfulBasis::LegalObligation, false, None);
        assert_eq!(g.check(&p, Target::Subject(&s), None, t(9)).reason, Reason::SubjectErased);
        assert_eq!(g.check(&p, Target::Contact("idx"), None, t(9)).reason, Reason::ContactSuppressed);
        // Before the erasure the address was mailable.
        let p = purpose(LawfulBasis::Consent, true, None);
        assert!(g.check(&p, Target::Contact("idx"), Some(Channel::Email), t(2)).permitted);
    }

    #[test]
    fn contact_denial_holds_until_a_grant_on_the_same_address() {
        let p = purpose(LawfulBasis::Consent, true, None);
        let on_contact = |f: &mut Fact| {
            f.subject = None;
            f.contact = Some("idx".into());
        };
        let g = Given::default()
            .event(EventType::ContactLinked, |f| {
                f.purpose = None;
                f.contact = Some("idx".into())
            })
            .event(EventType::ConsentWithdrawn, on_contact)
            .event(EventType::ConsentGranted, |_| {});
        let d = g.check(&p, Target::Contact("idx"), Some(Channel::Email), t(9));
        assert_eq!((d.permitted, d.decided_by), (false, vec![id(2)]));
        // Asked by subject, only the subject's own events count.
        let s = sid("T-1");
        assert!(g.check(&p, Target::Subject(&s), Some(Channel::Email), t(9)).permitted);
        let g = g.event(EventType::ConsentGranted, on_contact);
        assert!(g.check(&p, Target::Contact("idx"), Some(Channel::Email), t(9)).permitted);
    }

    #[test]
    fn unlinked_subjects_no_longer_speak_for_the_address() {
        let p = purpose(LawfulBasis::Consent, true, None);
        let link = |f: &mut Fact| {
            f.purpose = None;
            f.contact = Some("idx".into())
        };
        let g = Given::default()
            .event(EventType::ContactLinked, link)
            .event(EventType::ConsentGranted, |_| {})
            .event(EventType::ContactUnlinked, link);
        assert!(g.check(&p, Target::Contact("idx"), Some(Channel::Email), t(2)).permitted);
        assert_eq!(g.check(&p, Target::Contact("idx"), Some(Channel::Email), t(9)).reason, Reason::NoConsent);
        let _ = ContactKind::Email;
    }

    // Property tests.

    fn arb_kind() -> impl Strategy<Value = EventType> {
        prop_oneof![
            4 => Just(EventType::ConsentGranted),
            4 => Just(EventType::ConsentWithdrawn),
            1 => Just(EventType::ObjectionRaised),
            1 => Just(EventType::ObjectionLifted),
            1 => Just(EventType::RestrictionApplied),
            1 => Just(EventType::RestrictionLifted),
            1 => Just(EventType::ContactLinked),
            1 => Just(EventType::ContactUnlinked),
            1 => Just(EventType::SubjectErased),
        ]
    }

    fn arb_facts() -> impl Strategy<Value = Vec<Fact>> {
        arb_facts_of(arb_kind())
    }

    /// Mostly objections and restrictions, raised and lifted on different channels and
    /// scopes, so the way lifts pair with raises is exercised hard.
    fn arb_switches() -> impl Strategy<Value = Vec<Fact>> {
        arb_facts_of(prop_oneof![
            1 => Just(EventType::ConsentGranted),
            3 => Just(EventType::ObjectionRaised),
            3 => Just(EventType::ObjectionLifted),
            1 => Just(EventType::RestrictionApplied),
            1 => Just(EventType::RestrictionLifted),
        ])
    }

    fn arb_facts_of(kinds: impl Strategy<Value = EventType>) -> impl Strategy<Value = Vec<Fact>> {
        let one = (
            kinds,
            0..3usize, // subject: T-1, T-2, or none (contact only)
            prop::option::of(prop_oneof![Just(Channel::Email), Just(Channel::Sms)]),
            any::<bool>(),              // purpose-scoped or not (switches)
            any::<bool>(),              // on the contact point
            prop::option::of(1..40u32), // own expiry in days after
        );
        prop::collection::vec(one, 0..40).prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (kind, subj, channel, scoped, on_contact, exp))| {
                    let seq = i as u64 + 1;
                    let subject = match subj {
                        0 => Some(sid("T-1")),
                        1 => Some(sid("T-2")),
                        _ => None,
                    };
                    let is_consent = matches!(kind, EventType::ConsentGranted | EventType::ConsentWithdrawn);
                    let is_objection = matches!(kind, EventType::ObjectionRaised | EventType::ObjectionLifted);
                    let is_link = matches!(kind, EventType::ContactLinked | EventType::ContactUnlinked);
                    let subject = if is_link || kind == EventType::SubjectErased {
                        subject.or(Some(sid("T-1")))
                    } else {
                        subject
                    };
                    let contact = (on_contact || subject.is_none() || is_link).then(|| "idx".to_owned());
                    Fact {
                        seq,
                        id: Uuid::from_u128(u128::from(seq)),
                        kind,
                        subject,
                        contact,
                        purpose: (is_consent || scoped)
                            .then(|| pid("newsletter"))
                            .filter(|_| !is_link && kind != EventType::SubjectErased),
                        channel: if is_consent || is_objection { channel } else { None },
                        recipient: None,
                        occurred_at: t(seq as u32),
                        recorded_at: t(seq as u32),
                        expires_at: exp.filter(|_| kind == EventType::ConsentGranted).map(|d| t(seq as u32 + d)),
                    }
                })
                .collect()
        })
    }

    fn arb_purpose() -> impl Strategy<Value = PurposeDefinition> {
        (
            prop_oneof![
                Just(LawfulBasis::Consent),
                Just(LawfulBasis::LegitimateInterests),
                Just(LawfulBasis::Contract),
                Just(LawfulBasis::LegalObligation)
            ],
            any::<bool>(),
            prop::option::of(1..30u32),
        )
            .prop_map(|(b, m, v)| purpose(b, m, v))
    }

    /// A deliberately naive model of the rules for subject targets, written as a fold over
    /// events (the way a projection would apply them) rather than as a search.
    fn model(
        p: &PurposeDefinition,
        s: &SubjectId,
        channel: Option<Channel>,
        at: DateTime<Utc>,
        facts: &[Fact],
    ) -> (bool, Reason) {
        let mut erased = false;
        // The channels of the objections in force (None: every channel), to all marketing
        // and to the purpose.
        let mut general: Vec<Option<Channel>> = Vec::new();
        let mut to_purpose: Vec<Option<Channel>> = Vec::new();
        let mut restricted_all = false;
        let mut restricted_p = false;
        let mut latest: Option<&Fact> = None;
        for f in facts.iter().filter(|f| f.recorded_at <= at && f.subject.as_ref() == Some(s)) {
            let covers = channel.is_none() || f.channel.is_none() || f.channel == channel;
            let scoped = f.purpose.is_some();
            let lifts = |c: &Option<Channel>| f.channel.is_none() || *c == f.channel;
            match f.kind {
                EventType::SubjectErased => erased = true,
                EventType::ObjectionRaised if !scoped => general.push(f.channel),
                EventType::ObjectionLifted if !scoped => general.retain(|c| !lifts(c)),
                EventType::ObjectionRaised => to_purpose.push(f.channel),
                EventType::ObjectionLifted => to_purpose.retain(|c| !lifts(c)),
                EventType::RestrictionApplied if !scoped => restricted_all = true,
                EventType::RestrictionLifted if !scoped => restricted_all = false,
                EventType::RestrictionApplied => restricted_p = true,
                EventType::RestrictionLifted => restricted_p = false,
                EventType::ConsentGranted | EventType::ConsentWithdrawn if covers => latest = Some(f),
                _ => {}
            }
        }
        let in_force =
            |held: &[Option<Channel>]| held.iter().any(|c| channel.is_none() || c.is_none() || *c == channel);
        let general_objection = in_force(&general);
        let objection_p = in_force(&to_purpose);
        let exempt = p.basis.overrides_restriction();
        if erased {
            return (false, Reason::SubjectErased);
        }
        if p.marketing && general_objection {
            return (false, Reason::MarketingObjection);
        }
        if !exempt && (restricted_all || restricted_p) {
            return (false, Reason::Restricted);
        }
        if !exempt && objection_p {
            return (false, Reason::Objection);
        }
        let withdrawn = latest.is_some_and(|f| f.kind == EventType::ConsentWithdrawn);
        match p.basis {
            LawfulBasis::Consent => match latest {
                None => (false, Reason::NoConsent),
                Some(_) if withdrawn => (false, Reason::ConsentWithdrawn),
                Some(f) if expired(f, p, at) => (false, Reason::ConsentExpired),
                Some(_) => (true, Reason::ConsentGranted),
            },
            LawfulBasis::LegalObligation => (true, Reason::LegalObligation),
            _ if withdrawn => (false, Reason::OptedOut),
            LawfulBasis::Contract => (true, Reason::Contract),
            _ => (true, Reason::LegitimateInterests),
        }
    }

    proptest! {
        /// The rules function agrees with an event-by-event fold (projection equals replay).
        #[test]
        fn decide_matches_the_fold_model(facts in arb_facts(), p in arb_purpose(), day in 0..60u32, ch in prop::option::of(prop_oneof![Just(Channel::Email), Just(Channel::Sms)])) {
            let s = sid("T-1");
            let d = Given { facts: facts.clone() }.check(&p, Target::Subject(&s), ch, t(day));
            prop_assert_eq!((d.permitted, d.reason), model(&p, &s, ch, t(day), &facts));
        }

        /// The same, over logs made mostly of switches.
        #[test]
        fn switches_match_the_fold_model(facts in arb_switches(), p in arb_purpose(), ch in prop::option::of(prop_oneof![Just(Channel::Email), Just(Channel::Sms)])) {
            let s = sid("T-1");
            let d = Given { facts: facts.clone() }.check(&p, Target::Subject(&s), ch, t(60));
            prop_assert_eq!((d.permitted, d.reason), model(&p, &s, ch, t(60), &facts));
        }

        /// The facts [`bears_on`] keeps decide every question about a purpose as all of them
        /// do, whatever other purposes the log's consents, objections and restrictions name.
        #[test]
        fn facts_of_other_purposes_change_no_answer(
            facts in arb_facts(),
            other in prop::collection::vec(any::<bool>(), 40),
            p in arb_purpose(),
            day in 0..60u32,
            ch in prop::option::of(prop_oneof![Just(Channel::Email), Just(Channel::Sms)]),
            contact in any::<bool>(),
        ) {
            let facts: Vec<Fact> = facts
                .into_iter()
                .zip(other)
                .map(|(f, other)| Fact { purpose: f.purpose.map(|p| if other { pid("events") } else { p }), ..f })
                .collect();
            let s = sid("T-1");
            let id = pid("newsletter");
            let target = if contact { Target::Contact("idx") } else { Target::Subject(&s) };
            let q = Question { target, purpose_id: &id, purpose: &p, channel: ch, recipient: None, at: t(day) };
            let kept: Vec<Fact> =
                facts.iter().filter(|f| bears_on(f.kind, f.purpose.as_ref().map(PurposeId::as_str), &id)).cloned().collect();
            prop_assert!(kept.len() < facts.len() || facts.iter().all(|f| f.purpose.as_ref().is_none_or(|p| *p == id)));
            prop_assert_eq!(decide(&q, &kept), decide(&q, &facts));
        }

        /// "As of" a past moment equals the answer the log gave at that moment, when it held
        /// only the events recorded until then.
        #[test]
        fn as_of_equals_the_answer_at_that_point(facts in arb_facts(), p in arb_purpose(), cut in 0..40usize, contact in any::<bool>()) {
            let s = sid("T-1");
            let cut = cut.min(facts.len());
            let at = t(cut as u32);
            let target = if contact { Target::Contact("idx") } else { Target::Subject(&s) };
            let ch = Some(Channel::Email);
            let full = Given { facts: facts.clone() }.check(&p, target, ch, at);
            let then = Given { facts: facts[..cut].to_vec() }.check(&p, target, ch, at);
            prop_assert_eq!(full, then);
        }

        /// Every denial but a catalogue mismatch names the events that decided it, and every
        /// named event is one of the target's facts known at that time.
        #[test]
        fn decided_by_names_known_events(facts in arb_facts(), p in arb_purpose(), day in 0..60u32) {
            let d = Given { facts: facts.clone() }.check(&p, Target::Contact("idx"), Some(Channel::Email), t(day));
            for id in &d.decided_by {
                prop_assert!(facts.iter().any(|f| f.id == *id && f.recorded_at <= t(day)));
            }
            let needs_event = matches!(d.reason, Reason::ConsentGranted | Reason::ConsentWithdrawn | Reason::ConsentExpired | Reason::OptedOut | Reason::MarketingObjection | Reason::Restricted | Reason::Objection | Reason::ContactSuppressed | Reason::SubjectErased);
            if needs_event {
                prop_assert!(!d.decided_by.is_empty());
            }
            if matches!(d.reason, Reason::NoConsent | Reason::ChannelNotInPurpose | Reason::LegalObligation) {
                prop_assert!(d.decided_by.is_empty());
            }
        }
    }
}
