//! What the tenant page answers for each of its choices, and what a change records.
//!
//! A choice's answer is what the rules decide for the person: over their own record, and,
//! when the choice names a channel, over each of their addresses that channel reaches, as a
//! mailing system asking by that address would be answered (rule 6). So an unsubscribe link
//! clicked in an email or a STOP texted from their phone shows as "no". Saying "yes" again
//! records what the rules need for it to be permitted: a grant by the person, and on the
//! address itself a grant (after an unsubscribe) or the end of the objection (after a STOP).
//! An address shared with someone else is not switched back on from one person's page: the
//! stop may have been theirs.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::addresses::Address;
use domain::{
    decide_among, Channel, ContactKind, Decision, EventType, Fact, PurposeDefinition, PurposeId, Question, Reason,
    SubjectId, Target,
};
use format::ContactRef;

/// Why an address, not the person's own record, answers "no".
#[derive(Debug, Clone)]
pub struct AddressNote {
    pub kind: ContactKind,
    /// The address is linked to someone else as well.
    pub shared: bool,
    /// The event that stopped it, when the log holds one (an erasure of a linked person
    /// suppresses the address without an event of its own).
    pub(super) stop: Option<Fact>,
}

impl AddressNote {
    /// What stopped it: the event's type, when it was recorded against the address itself
    /// (an unsubscribe link, a text STOP) rather than by someone linked to it.
    pub fn stopped_at_address(&self) -> Option<EventType> {
        self.stop.as_ref().filter(|f| f.subject.is_none()).map(|f| f.kind)
    }

    /// Whether the person may switch it back on from their page.
    pub fn changeable(&self) -> bool {
        !self.shared
            && matches!(self.stopped_at_address(), Some(EventType::ConsentWithdrawn | EventType::ObjectionRaised))
    }
}

/// One question on the page: a purpose, and a channel when the purpose uses channels.
#[derive(Debug, Clone)]
pub struct Choice {
    pub channel: Option<Channel>,
    /// What the rules answer now for the person.
    pub decision: Decision,
    /// Set when one of their addresses answers "no" while their own record would say yes.
    pub address: Option<AddressNote>,
}

impl Choice {
    /// Set by something the page cannot change (an objection to all marketing, a restriction
    /// of processing, an objection staff recorded, a stop at a shared address): shown, not
    /// offered.
    pub fn locked(&self) -> bool {
        match &self.address {
            Some(note) => !note.changeable(),
            None => matches!(
                self.decision.reason,
                Reason::MarketingObjection | Reason::Restricted | Reason::Objection | Reason::SubjectErased
            ),
        }
    }
}

/// What the page reads about one person: their own facts and their addresses.
#[derive(Debug, Clone)]
pub(super) struct Person {
    pub subject: SubjectId,
    pub own: Vec<Fact>,
    pub addresses: Vec<Address>,
}

/// An event the page plans to record, and the fact it will add.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub kind: EventType,
    /// Against the address itself (by blind index), or else against the person.
    pub contact: Option<ContactRef>,
    pub purpose: Option<PurposeId>,
    pub channel: Option<Channel>,
    fact: Fact,
}

impl Person {
    /// The page's answer for `purpose` over `channel` at `at`, with `planned` facts as if
    /// already recorded.
    pub fn choice(
        &self,
        purpose_id: &PurposeId,
        purpose: &PurposeDefinition,
        channel: Option<Channel>,
        at: DateTime<Utc>,
        planned: &[Planned],
    ) -> Choice {
        let q = Question { target: Target::Subject(&self.subject), purpose_id, purpose, channel, recipient: None, at };
        let mine = planned.iter().map(|p| &p.fact).filter(|f| f.subject.as_ref() == Some(&self.subject));
        let own = decide_among(&q, self.own.iter().chain(mine));
        let own_choice = Choice { channel, decision: own, address: None };
        let Some(k) = channel.filter(|_| !own_choice.locked()) else {
            return own_choice;
        };
        for a in self.addresses.iter().filter(|a| a.current() && a.reaches(k)) {
            let index = a.contact.index.as_str();
            let q = Question { target: Target::Contact(index), ..q };
            let extra = planned
                .iter()
                .map(|p| &p.fact)
                .filter(|f| f.contact.as_deref() == Some(index) || f.subject.as_ref() == Some(&self.subject));
            let d = decide_among(&q, a.facts.iter().chain(extra.clone()));
            if d.permitted {
                continue;
            }
            let stop = d.decided_by.first().and_then(|id| a.facts.iter().chain(extra).find(|f| f.id == *id)).cloned();
            let note = AddressNote { kind: a.contact.kind, shared: a.shared, stop };
            // While the person's own record says no, an address matters only when it stops
            // them whatever they say (a stop at a shared address, a suppression): the page
            // then says so rather than offer a yes that could not take effect.
            let stops_anyway = note.stopped_at_address().is_some()
                || matches!(
                    d.reason,
                    Reason::ContactSuppressed | Reason::MarketingObjection | Reason::Restricted | Reason::Objection
                );
            if own_choice.decision.permitted || (stops_anyway && !note.changeable()) {
                return Choice { channel, decision: d, address: Some(note) };
            }
        }
        own_choice
    }

    fn plan(
        &self,
        planned: &mut Vec<Planned>,
        kind: EventType,
        contact: Option<&ContactRef>,
        purpose: Option<&PurposeId>,
        channel: Option<Channel>,
        at: DateTime<Utc>,
    ) {
        let same = |p: &Planned| {
            p.kind == kind
                && p.contact.as_ref().map(|c| &c.index) == contact.map(|c| &c.index)
                && p.purpose.as_ref() == purpose
                && p.channel == channel
        };
        if planned.iter().any(same) {
            return;
        }
        let n = planned.len() as u64;
        let fact = Fact {
            seq: u64::MAX / 2 + n,
            id: Uuid::from_u128(u128::from(n) + 1),
            kind,
            subject: contact.is_none().then(|| self.subject.clone()),
            contact: contact.map(|c| c.index.clone()),
            purpose: purpose.cloned(),
            channel,
            recipient: None,
            occurred_at: at,
            recorded_at: at,
            expires_at: None,
        };
        planned.push(Planned { kind, contact: contact.cloned(), purpose: purpose.cloned(), channel, fact });
    }

    /// The events that make each wished choice answer as wished: `wishes` names a purpose,
    /// its definition, a channel and yes or no. Changes the page cannot make (locked
    /// choices) are left alone; a choice already as wished records nothing.
    pub fn changes<'a>(
        &self,
        wishes: impl Iterator<Item = (&'a PurposeId, &'a PurposeDefinition, Option<Channel>, bool)> + Clone,
        at: DateTime<Utc>,
    ) -> Vec<Planned> {
        let mut planned: Vec<Planned> = Vec::new();
        // Each round fixes what the last one left: lifting a STOP can turn another choice
        // of that channel back on, which the person may have wished off. Three rounds reach
        // every state the page can ask for (person, then address, then person again).
        for _ in 0..4 {
            let before = planned.len();
            for (id, def, channel, yes) in wishes.clone() {
                let c = self.choice(id, def, channel, at, &planned);
                if c.locked() || c.decision.permitted == yes {
                    continue;
                }
                match (&c.address, yes) {
                    (None, true) => self.plan(&mut planned, EventType::ConsentGranted, None, Some(id), channel, at),
                    (_, false) => self.plan(&mut planned, EventType::ConsentWithdrawn, None, Some(id), channel, at),
                    (Some(note), true) => {
                        let Some(stop) = &note.stop else { continue };
                        let Some(contact) =
                            self.addresses.iter().find(|a| Some(&a.contact.index) == stop.contact.as_ref())
                        else {
                            continue;
                        };
                        let contact = contact.contact.clone();
                        match stop.kind {
                            EventType::ConsentWithdrawn => self.plan(
                                &mut planned,
                                EventType::ConsentGranted,
                                Some(&contact),
                                Some(id),
                                channel,
                                at,
                            ),
                            EventType::ObjectionRaised => self.plan(
                                &mut planned,
                                EventType::ObjectionLifted,
                                Some(&contact),
                                stop.purpose.as_ref(),
                                stop.channel,
                                at,
                            ),
                            _ => {}
                        }
                    }
                }
            }
            if planned.len() == before {
                break;
            }
        }
        planned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use domain::{LawfulBasis, PurposeDefinition};
    use proptest::prelude::*;

    fn purposes() -> Vec<(PurposeId, PurposeDefinition)> {
        let def = |basis, marketing| PurposeDefinition {
            title: "p".into(),
            description: None,
            basis,
            marketing,
            channels: vec![Channel::Email, Channel::Sms],
            recipients: vec![],
            consent_valid_days: None,
            retention: None,
            notice: None,
        };
        vec![
            (PurposeId::parse("news").unwrap(), def(LawfulBasis::Consent, true)),
            (PurposeId::parse("events").unwrap(), def(LawfulBasis::Consent, true)),
            (PurposeId::parse("surveys").unwrap(), def(LawfulBasis::LegitimateInterests, false)),
        ]
    }

    /// What happened before the page opened: by the person, or at one of their addresses.
    #[derive(Debug, Clone)]
    enum Op {
        Person(EventType, usize, Option<Channel>),
        Unsubscribe(usize),
        Stop,
        Start,
    }

    fn op() -> impl Strategy<Value = Op> {
        let channel = prop_oneof![Just(None), Just(Some(Channel::Email)), Just(Some(Channel::Sms))];
        let kind = prop_oneof![Just(EventType::ConsentGranted), Just(EventType::ConsentWithdrawn)];
        prop_oneof![
            4 => (kind, 0..3usize, channel).prop_map(|(k, p, c)| Op::Person(k, p, c)),
            1 => (0..3usize).prop_map(Op::Unsubscribe),
            1 => Just(Op::Stop),
            1 => Just(Op::Start),
        ]
    }

    fn person(ops: &[Op], shared_phone: bool) -> Person {
        let subject = SubjectId::parse("t-1").unwrap();
        let ps = purposes();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let (mut own, mut email, mut phone) = (Vec::new(), Vec::new(), Vec::new());
        // Both addresses are linked first, as the log would hold it.
        let links = [Op::Person(EventType::ContactLinked, 0, None), Op::Person(EventType::ContactLinked, 1, None)];
        for (i, op) in links.iter().chain(ops).enumerate() {
            let seq = i as u64 + 1;
            let fact =
                |kind, subject: Option<SubjectId>, contact: Option<&str>, purpose: Option<PurposeId>, channel| Fact {
                    seq,
                    id: Uuid::from_u128(u128::from(seq) << 64),
                    kind,
                    subject,
                    contact: contact.map(str::to_owned),
                    purpose,
                    channel,
                    recipient: None,
                    occurred_at: t0 + Duration::minutes(seq as i64),
                    recorded_at: t0 + Duration::minutes(seq as i64),
                    expires_at: None,
                };
            match op {
                Op::Person(EventType::ContactLinked, at, _) => {
                    own.push(fact(EventType::ContactLinked, Some(subject.clone()), Some(["e", "t"][*at]), None, None))
                }
                Op::Person(k, p, c) => own.push(fact(*k, Some(subject.clone()), None, Some(ps[*p].0.clone()), *c)),
                Op::Unsubscribe(p) => email.push(fact(
                    EventType::ConsentWithdrawn,
                    None,
                    Some("e"),
                    Some(ps[*p].0.clone()),
                    Some(Channel::Email),
                )),
                Op::Stop => phone.push(fact(EventType::ObjectionRaised, None, Some("t"), None, Some(Channel::Sms))),
                Op::Start => phone.push(fact(EventType::ObjectionLifted, None, Some("t"), None, Some(Channel::Sms))),
            }
        }
        let merged = |at: &[Fact]| {
            let mut all: Vec<Fact> = own.iter().chain(at).cloned().collect();
            all.sort_by_key(|f| f.seq);
            all
        };
        let addresses = vec![
            Address::linked_throughout(
                ContactRef { kind: ContactKind::Email, index: "e".into() },
                false,
                merged(&email),
            ),
            Address::linked_throughout(
                ContactRef { kind: ContactKind::Tel, index: "t".into() },
                shared_phone,
                merged(&phone),
            ),
        ];
        Person { subject, own, addresses }
    }

    proptest! {
        /// Whatever happened before, the events the page plans make every choice it offers
        /// answer as the person asked; a choice it does not offer (a stop at a shared
        /// address) is left as it was; and asking for what already holds records nothing.
        #[test]
        fn a_saved_page_answers_as_the_person_asked(
            ops in proptest::collection::vec(op(), 0..12),
            wishes in proptest::collection::vec(any::<bool>(), 6),
            shared_phone in any::<bool>(),
        ) {
            let p = person(&ops, shared_phone);
            let ps = purposes();
            let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
            let asked: Vec<(&PurposeId, &PurposeDefinition, Option<Channel>, bool)> = ps
                .iter()
                .flat_map(|(id, def)| [Some(Channel::Email), Some(Channel::Sms)].map(move |c| (id, def, c)))
                .zip(wishes)
                .map(|((id, def, c), yes)| (id, def, c, yes))
                .collect();
            let planned = p.changes(asked.iter().copied(), now);
            for &(id, def, channel, yes) in &asked {
                let before = p.choice(id, def, channel, now, &[]);
                let after = p.choice(id, def, channel, now, &planned);
                if before.locked() {
                    prop_assert_eq!(after.decision.permitted, before.decision.permitted, "{} {:?}", id, channel);
                } else {
                    prop_assert_eq!(after.decision.permitted, yes, "{} {:?} planned {:?}", id, channel, planned);
                }
            }
            let current: Vec<_> = asked
                .iter()
                .map(|&(id, def, c, _)| (id, def, c, p.choice(id, def, c, now, &[]).decision.permitted))
                .collect();
            prop_assert!(p.changes(current.into_iter(), now).is_empty());
        }
    }
}
