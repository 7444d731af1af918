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

use std::sync::Arc;

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
    pub own: Arc<Vec<Fact>>,
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
        let Some(k) = channel.filter(|_| own.permitted) else {
            return Choice { channel, decision: own, address: None };
        };
        for a in self.addresses.iter().filter(|a| a.current() && a.reaches(k)) {
            let index = a.contact.index.as_str();
            let q = Question { target: Target::Contact(index), ..q };
            let extra = planned
                .iter()
                .map(|p| &p.fact)
                .filter(|f| f.contact.as_deref() == Some(index) || f.subject.as_ref() == Some(&self.subject));
            let d = decide_among(&q, a.facts.iter().chain(extra.clone()));
            if !d.permitted {
                let stop =
                    d.decided_by.first().and_then(|id| a.facts.iter().chain(extra).find(|f| f.id == *id)).cloned();
                let note = AddressNote { kind: a.contact.kind, shared: a.shared, stop };
                return Choice { channel, decision: d, address: Some(note) };
            }
        }
        Choice { channel, decision: own, address: None }
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
