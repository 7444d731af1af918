//! A person's addresses: the contact points linked to a subject (by blind index, with their
//! kind and when they were linked), the events recorded against each address itself while it
//! was linked to the person (an unsubscribe link, a text STOP), and what a check by each
//! address reads (rule 6: its own events and those of every subject linked to it).

use chrono::{DateTime, Utc};

use super::{Service, ServiceError};
use domain::{Channel, ContactKind, ControllerId, EventType, Fact, SubjectId};
use format::{ContactRef, Receipt};
use projection::{facts_key, linked_subjects, merge_facts, TargetKey};

/// One contact point that is or was linked to a subject.
#[derive(Debug, Clone)]
pub struct Address {
    pub contact: ContactRef,
    /// Seq ranges `[from, to)` while it was linked to the subject (`to` is `u64::MAX` while
    /// it still is).
    periods: Spans,
    pub linked_at: DateTime<Utc>,
    pub unlinked_at: Option<DateTime<Utc>>,
    /// Linked now to another subject as well (a household's shared email address).
    pub shared: bool,
    /// What a check by this address reads: its own facts and those of every subject linked
    /// to it, in seq order.
    pub(super) facts: Vec<Fact>,
}

impl Address {
    /// Linked to the subject now.
    pub fn current(&self) -> bool {
        self.periods.last().is_some_and(|p| p.1 == u64::MAX)
    }

    pub fn reaches(&self, channel: Channel) -> bool {
        self.contact.kind.reaches(channel)
    }

    /// Whether an event at `seq` was recorded while the address was linked to the subject.
    fn linked_during(&self, seq: u64) -> bool {
        self.periods.iter().any(|&(from, to)| from <= seq && seq < to)
    }

    /// The events recorded against the address itself (no subject named) while it was linked
    /// to the subject: what the person did at that address.
    pub(super) fn own_events(&self) -> impl Iterator<Item = &Fact> {
        self.facts.iter().filter(|f| {
            f.subject.is_none()
                && f.contact.as_deref() == Some(self.contact.index.as_str())
                && self.linked_during(f.seq)
        })
    }
}

#[cfg(test)]
impl Address {
    /// An address linked to the subject since before any of `facts` (its own events merged
    /// with the subject's), for tests of what reads it.
    pub(super) fn linked_throughout(contact: ContactRef, shared: bool, facts: Vec<Fact>) -> Self {
        let at = facts.first().map_or_else(Utc::now, |f| f.recorded_at);
        Address { contact, periods: vec![(0, u64::MAX)], linked_at: at, unlinked_at: None, shared, facts }
    }
}

/// How an event reached a person's history: recorded against one of their addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Via {
    #[serde(rename = "contact_kind")]
    pub kind: ContactKind,
    /// The address is linked to someone else as well.
    pub shared: bool,
}

/// One entry of a person's history: a receipt, and how it reached the person.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    #[serde(flatten)]
    pub receipt: Receipt,
    /// Set when the event was recorded against one of the person's addresses, not the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

/// Seq ranges `[from, to)` while an address was linked (`to` is `u64::MAX` while it still is).
type Spans = Vec<(u64, u64)>;

/// The periods each address (by blind index) was linked to `subject`, from the subject's own
/// facts, in the order they were first linked.
fn periods(subject: &SubjectId, own: &[Fact]) -> Vec<(String, Spans)> {
    let mut out: Vec<(String, Spans)> = Vec::new();
    for f in own {
        let (Some(c), true) = (&f.contact, f.subject.as_ref() == Some(subject)) else { continue };
        let at = out.iter().position(|(i, _)| i == c);
        match (f.kind, at) {
            (EventType::ContactLinked, None) => out.push((c.clone(), vec![(f.seq, u64::MAX)])),
            (EventType::ContactLinked, Some(i)) if out[i].1.last().is_some_and(|p| p.1 != u64::MAX) => {
                out[i].1.push((f.seq, u64::MAX));
            }
            (EventType::ContactUnlinked, Some(i)) => {
                if let Some(p) = out[i].1.last_mut().filter(|p| p.1 == u64::MAX) {
                    p.1 = f.seq;
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether someone other than `subject` is linked to the address now, from its own facts.
fn shared_with_others(subject: &SubjectId, index: &str, facts: &[Fact]) -> bool {
    let mut others: Vec<&SubjectId> = Vec::new();
    for f in facts.iter().filter(|f| f.contact.as_deref() == Some(index)) {
        match (f.kind, &f.subject) {
            (EventType::ContactLinked, Some(s)) if s != subject && !others.contains(&s) => others.push(s),
            (EventType::ContactUnlinked, Some(s)) => others.retain(|o| *o != s),
            _ => {}
        }
    }
    !others.is_empty()
}

impl Service {
    /// Every address ever linked to the subject (whose own facts are `own`), with what a
    /// check by each reads.
    pub(super) fn addresses(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        own: &[Fact],
    ) -> Result<Vec<Address>, ServiceError> {
        let periods = periods(subject, own);
        if periods.is_empty() {
            return Ok(Vec::new());
        }
        let proj = self.projections();
        let keys: Vec<Vec<u8>> = periods.iter().map(|(i, _)| facts_key(controller, TargetKey::Contact(i))).collect();
        let rows = proj.facts_many(&keys)?;
        let first_links: Vec<u64> = periods.iter().map(|(_, spans)| spans[0].0).collect();
        let links = self.receipts(&first_links, "a subject's links")?;
        let mut out = Vec::with_capacity(periods.len());
        for (((index, spans), row), link) in periods.into_iter().zip(rows.iter()).zip(links) {
            let Some(contact) = link.event.contact.clone().filter(|c| c.index == index) else {
                return Err(ServiceError::Internal("a link names another address".into()));
            };
            let others: Vec<Vec<u8>> = linked_subjects(row)
                .into_iter()
                .filter(|s| *s != subject)
                .map(|s| facts_key(controller, TargetKey::Subject(s)))
                .collect();
            let other_facts = if others.is_empty() { Vec::new() } else { proj.facts_many(&others)? };
            let facts: Vec<Fact> =
                merge_facts([row.as_slice(), own].into_iter().chain(other_facts.iter().map(|f| f.as_slice())))
                    .into_iter()
                    .cloned()
                    .collect();
            let time_of = |seq: u64| own.iter().find(|f| f.seq == seq).map(|f| f.recorded_at);
            let linked_at = time_of(spans[0].0).unwrap_or(link.event.recorded_at);
            let unlinked_at = spans.last().filter(|p| p.1 != u64::MAX).and_then(|p| time_of(p.1));
            out.push(Address {
                shared: shared_with_others(subject, &index, row),
                contact,
                periods: spans,
                linked_at,
                unlinked_at,
                facts,
            });
        }
        Ok(out)
    }

    /// A person's history: the events recorded against the subject and those recorded
    /// against one of their addresses while it was linked to them, oldest first, optionally
    /// as of `at`.
    pub fn history(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Vec<HistoryEntry>, ServiceError> {
        Ok(self.history_page(controller, subject, at, 0, usize::MAX)?.0)
    }

    /// One page of a person's history: entries with a seq after `after` (and recorded by
    /// `at`), at most `limit`, oldest first, and whether more follow.
    pub fn history_page(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        at: Option<DateTime<Utc>>,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<HistoryEntry>, bool), ServiceError> {
        let own = self.projections().facts(controller, TargetKey::Subject(subject))?;
        if own.is_empty() {
            return Err(ServiceError::NotFound("subject"));
        }
        let addresses = self.addresses(controller, subject, &own)?;
        let mut seqs: Vec<(u64, Option<Via>)> = own.iter().map(|f| (f.seq, None)).collect();
        for a in &addresses {
            let via = Via { kind: a.contact.kind, shared: a.shared };
            seqs.extend(a.own_events().map(|f| (f.seq, Some(via))));
        }
        seqs.sort_by_key(|(seq, _)| *seq);
        seqs.dedup_by_key(|(seq, _)| *seq);
        let times: std::collections::HashMap<u64, DateTime<Utc>> =
            own.iter().chain(addresses.iter().flat_map(|a| a.facts.iter())).map(|f| (f.seq, f.recorded_at)).collect();
        let mut wanted = seqs
            .into_iter()
            .filter(|(seq, _)| *seq > after && at.is_none_or(|t| times.get(seq).is_some_and(|r| *r <= t)));
        let page: Vec<(u64, Option<Via>)> = wanted.by_ref().take(limit).collect();
        let more = wanted.next().is_some();
        let just_seqs: Vec<u64> = page.iter().map(|(s, _)| *s).collect();
        let receipts = self.receipts(&just_seqs, "history")?;
        let entries = receipts.into_iter().zip(page).map(|(receipt, (_, via))| HistoryEntry { receipt, via }).collect();
        Ok((entries, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn fact(seq: u64, kind: EventType, subject: Option<&str>, contact: Option<&str>) -> Fact {
        let t = Utc.timestamp_opt(1_700_000_000 + seq as i64, 0).unwrap();
        Fact {
            seq,
            id: Uuid::from_u128(u128::from(seq)),
            kind,
            subject: subject.map(|s| SubjectId::parse(s).unwrap()),
            contact: contact.map(str::to_owned),
            purpose: None,
            channel: None,
            recipient: None,
            occurred_at: t,
            recorded_at: t,
            expires_at: None,
        }
    }

    #[test]
    fn an_address_relinked_has_two_periods_and_events_between_them_are_not_the_persons() {
        let s = SubjectId::parse("t-1").unwrap();
        let own = vec![
            fact(1, EventType::ContactLinked, Some("t-1"), Some("ix")),
            fact(3, EventType::ContactUnlinked, Some("t-1"), Some("ix")),
            fact(5, EventType::ContactLinked, Some("t-1"), Some("ix")),
        ];
        let p = periods(&s, &own);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].1, vec![(1, 3), (5, u64::MAX)]);
        let a = Address {
            contact: ContactRef { kind: ContactKind::Email, index: "ix".into() },
            periods: p[0].1.clone(),
            linked_at: own[0].recorded_at,
            unlinked_at: None,
            shared: false,
            facts: vec![
                own[0].clone(),
                fact(2, EventType::ConsentWithdrawn, None, Some("ix")),
                own[1].clone(),
                fact(4, EventType::ConsentWithdrawn, None, Some("ix")),
                own[2].clone(),
                fact(6, EventType::ObjectionRaised, None, Some("ix")),
            ],
        };
        let seen: Vec<u64> = a.own_events().map(|f| f.seq).collect();
        assert_eq!(seen, vec![2, 6]);
        assert!(a.current());
    }

    #[test]
    fn an_address_another_person_still_holds_is_shared_until_they_unlink_it() {
        let s = SubjectId::parse("t-1").unwrap();
        let mut facts = vec![
            fact(1, EventType::ContactLinked, Some("t-1"), Some("ix")),
            fact(2, EventType::ContactLinked, Some("t-2"), Some("ix")),
        ];
        assert!(shared_with_others(&s, "ix", &facts));
        facts.push(fact(3, EventType::ContactUnlinked, Some("t-2"), Some("ix")));
        assert!(!shared_with_others(&s, "ix", &facts));
    }
}
