//! Retention: purposes may say how long a person's record is kept once their relationship
//! with the controller has ended (`relationship.ended`). A subject is due to be forgotten when
//! that time has passed for every purpose their record names; forgetting records
//! `subject.erased`, which the rules already honour (their addresses stay suppressed).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{EventInput, Service, ServiceError};
use domain::{Actor, ActorKind, ControllerId, EventType, Fact, Method, PurposeId, Retention, SubjectId, Token};
use format::Receipt;

/// The namespace of the ids of erasures by retention (UUIDv5 of the subject and the end of
/// their relationship), so applying retention twice records each erasure once.
const RETENTION_IDS: Uuid = Uuid::from_u128(0x0b8f_71c2_5d4e_4a93_8e21_77c0_d35a_19e6);

/// A subject whose retention has passed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RetentionDue {
    pub subject: SubjectId,
    /// When their relationship ended (the latest `relationship.ended` not followed by a
    /// `relationship.started`).
    pub relationship_ended_at: DateTime<Utc>,
    /// When the longest retention rule that applies ran out.
    pub due_at: DateTime<Utc>,
    /// The purposes whose rules were counted: those the subject's record names, or every
    /// purpose with a rule when it names none.
    pub purposes: Vec<PurposeId>,
}

/// When a subject's record is due, from their facts (in seq order) and the catalogue's rules;
/// `None` while they have a relationship, once erased, or when a purpose their record names
/// sets no limit.
fn due(
    facts: &[Fact],
    rules: &HashMap<PurposeId, Option<Retention>>,
) -> Option<(DateTime<Utc>, DateTime<Utc>, Vec<PurposeId>)> {
    let mut ended = None;
    let mut named = BTreeSet::new();
    for f in facts {
        match f.kind {
            EventType::SubjectErased => return None,
            EventType::RelationshipEnded => ended = Some(f.occurred_at),
            EventType::RelationshipStarted => ended = None,
            _ => {}
        }
        if let Some(p) = &f.purpose {
            named.insert(p.clone());
        }
    }
    let ended = ended?;
    let counted: Vec<(PurposeId, Retention)> = if named.is_empty() {
        rules.iter().filter_map(|(p, r)| r.map(|r| (p.clone(), r))).collect()
    } else {
        named.into_iter().map(|p| rules.get(&p).copied().flatten().map(|r| (p, r))).collect::<Option<_>>()?
    };
    let due = counted.iter().map(|(_, r)| r.due(ended)).max()?;
    let mut purposes: Vec<PurposeId> = counted.into_iter().map(|(p, _)| p).collect();
    purposes.sort();
    Some((ended, due, purposes))
}

impl Service {
    /// The controller's subjects whose retention has passed at `now`, in subject order.
    pub fn retention_due(
        &self,
        controller: &ControllerId,
        now: DateTime<Utc>,
    ) -> Result<Vec<RetentionDue>, ServiceError> {
        let rules: HashMap<PurposeId, Option<Retention>> =
            self.purposes(controller)?.into_iter().map(|v| (v.id, v.definition.retention)).collect();
        let mut out = Vec::new();
        self.projections().subjects_with(controller, EventType::RelationshipEnded, |facts| {
            let subject = facts.iter().find_map(|f| f.subject.clone());
            if let (Some(subject), Some((ended, due_at, purposes))) = (subject, due(&facts, &rules)) {
                if due_at <= now {
                    out.push(RetentionDue { subject, relationship_ended_at: ended, due_at, purposes });
                }
            }
        })?;
        Ok(out)
    }

    /// Records `subject.erased` for each subject whose retention has passed (by the ledger's
    /// retention, as a system actor), answering with the subjects and the erasures' receipts.
    pub async fn apply_retention(
        &self,
        controller: &ControllerId,
        now: DateTime<Utc>,
    ) -> Result<(Vec<RetentionDue>, Vec<Receipt>), ServiceError> {
        let due = self.retention_due(controller, now)?;
        let actor = Actor { kind: ActorKind::System, id: Token::parse("retention").ok(), authority: None };
        let mut receipts = Vec::with_capacity(due.len());
        for group in due.chunks(super::MAX_EVENTS_AT_ONCE) {
            let inputs = group
                .iter()
                .map(|d| {
                    let key = format!("{}\u{1f}{}", d.subject, d.relationship_ended_at.timestamp_micros());
                    EventInput {
                        id: Some(Uuid::new_v5(&RETENTION_IDS, key.as_bytes())),
                        subject: Some(d.subject.clone()),
                        actor: actor.clone(),
                        recorded_by: super::Recorder::CommandLine.token(),
                        ..EventInput::by_person(EventType::SubjectErased, Method::Api)
                    }
                })
                .collect();
            receipts.extend(self.record(controller, inputs, now).await?);
        }
        Ok((due, receipts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(seq: u64, kind: EventType, purpose: Option<&str>, at: &str) -> Fact {
        let t = DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc);
        Fact {
            seq,
            id: Uuid::nil(),
            kind,
            subject: Some(SubjectId::parse("t-1").unwrap()),
            contact: None,
            purpose: purpose.map(|p| PurposeId::parse(p).unwrap()),
            channel: None,
            recipient: None,
            occurred_at: t,
            recorded_at: t,
            expires_at: None,
        }
    }

    #[test]
    fn the_longest_rule_of_the_named_purposes_counts_from_the_last_end() {
        let six = Some(Retention { years: Some(6), months: None });
        let one = Some(Retention { years: Some(1), months: None });
        let rules = HashMap::from([
            (PurposeId::parse("tenancy").unwrap(), six),
            (PurposeId::parse("newsletter").unwrap(), one),
            (PurposeId::parse("research").unwrap(), None),
        ]);
        let granted = fact(1, EventType::ConsentGranted, Some("newsletter"), "2015-01-01T00:00:00Z");
        let ended = fact(2, EventType::RelationshipEnded, None, "2018-03-31T00:00:00Z");
        let (e, d, p) = due(&[granted.clone(), ended.clone()], &rules).unwrap();
        assert_eq!(
            (e.to_rfc3339(), d.to_rfc3339()),
            (ended.occurred_at.to_rfc3339(), "2019-03-31T00:00:00+00:00".into())
        );
        assert_eq!(p, vec![PurposeId::parse("newsletter").unwrap()]);
        // Named nothing: the longest rule of the catalogue.
        assert_eq!(due(std::slice::from_ref(&ended), &rules).unwrap().1.to_rfc3339(), "2024-03-31T00:00:00+00:00");
        // A purpose without a rule keeps the record; a relationship that began again stops the clock.
        let research = fact(3, EventType::ConsentGranted, Some("research"), "2016-01-01T00:00:00Z");
        assert_eq!(due(&[granted.clone(), research, ended.clone()], &rules), None);
        let again = fact(3, EventType::RelationshipStarted, None, "2019-01-01T00:00:00Z");
        assert_eq!(due(&[granted.clone(), ended.clone(), again], &rules), None);
        let erased = fact(3, EventType::SubjectErased, None, "2019-01-01T00:00:00Z");
        assert_eq!(due(&[granted, ended, erased], &rules), None);
    }
}
