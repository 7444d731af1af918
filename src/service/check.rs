//! Checks: the one batched pipeline that answers a single `GET /v1/check`, a JSON array and
//! an NDJSON list alike. A batch reads its targets' facts with two multi-gets (the targets',
//! then the subjects linked to the contact points among them) and decides each question with
//! the rules; each answer carries everything a response needs: the decision, the signed
//! decision and the unsubscribe token when asked for.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{invalid, PurposeVersion, Service, ServiceError};
use domain::{
    decide, decide_among, Channel, ContactKind, ContactPoint, ControllerId, Decision, Fact, PurposeId, Question,
    RecipientId, SubjectId, Target,
};
use format::{to_micros, ContactRef, DecisionDoc, SignedDecision, DECISION_TYPE, FORMAT_VERSION};
use projection::{facts_key, linked_subjects, merge_facts, TargetKey};

/// Whom a check is about.
#[derive(Debug, Clone)]
pub enum CheckTarget {
    Subject(SubjectId),
    Contact(ContactPoint),
    /// A contact point known only by its blind index (from a signed link).
    Indexed(ContactRef),
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

impl AsRef<CheckInput> for CheckInput {
    fn as_ref(&self) -> &CheckInput {
        self
    }
}

/// A question with what its answer should carry.
#[derive(Debug, Clone)]
pub struct CheckQuery {
    pub input: CheckInput,
    /// Answer only from a state that includes this seq (read your writes).
    pub min_seq: Option<u64>,
    /// Also sign the decision.
    pub signed: bool,
    /// Also make a one-click unsubscribe token (checks by email only).
    pub unsubscribe: bool,
}

impl AsRef<CheckInput> for CheckQuery {
    fn as_ref(&self) -> &CheckInput {
        &self.input
    }
}

/// The answer to a [`CheckQuery`].
#[derive(Debug, Clone)]
pub struct CheckAnswer {
    pub outcome: CheckOutcome,
    pub signed: Option<SignedDecision>,
    /// The RFC 8058 one-click unsubscribe token, for the caller's link.
    pub unsubscribe_token: Option<String>,
}

impl Service {
    /// Answers a batch of queries after waiting (at most `wait`) until the log holds the
    /// greatest `min_seq` among them.
    pub async fn check_waiting<Q: Borrow<CheckQuery>>(
        &self,
        controller: &ControllerId,
        queries: &[Q],
        now: DateTime<Utc>,
        wait: std::time::Duration,
    ) -> Result<Vec<Result<CheckAnswer, ServiceError>>, ServiceError> {
        if let Some(seq) = queries.iter().filter_map(|q| q.borrow().min_seq).max() {
            self.ledger.wait_for(seq, wait).await;
        }
        self.check_batch(controller, queries, now)
    }

    /// Answers a batch of queries at once, each on its own (one bad question does not fail
    /// the others). A `min_seq` beyond the log is an error for its question at once.
    pub fn check_batch<Q: Borrow<CheckQuery>>(
        &self,
        controller: &ControllerId,
        queries: &[Q],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<CheckAnswer, ServiceError>>, ServiceError> {
        let log_size = self.ledger.committed_seq();
        // Questions whose min_seq the log has not reached are answered by an error, the rest
        // decided together.
        let ready: Vec<&CheckQuery> =
            queries.iter().map(Borrow::borrow).filter(|q| q.min_seq.is_none_or(|s| s <= log_size)).collect();
        let mut outcomes = self.check_many(controller, &ready, now)?.into_iter();
        let mut answers = Vec::with_capacity(queries.len());
        for q in queries.iter().map(Borrow::borrow) {
            if q.min_seq.is_some_and(|s| s > log_size) {
                answers.push(Err(invalid("min_seq is beyond the log")));
                continue;
            }
            let outcome = outcomes.next().ok_or_else(|| ServiceError::Internal("an answer is missing".into()))?;
            answers.push(outcome.and_then(|o| self.extras(controller, q, o, now)));
        }
        Ok(answers)
    }

    /// The signed decision and unsubscribe token a query asked for.
    fn extras(
        &self,
        controller: &ControllerId,
        q: &CheckQuery,
        outcome: CheckOutcome,
        now: DateTime<Utc>,
    ) -> Result<CheckAnswer, ServiceError> {
        let signed = if q.signed { Some(self.sign_decision(controller, &q.input, &outcome, now)?) } else { None };
        let unsubscribe_token = match (q.unsubscribe, &outcome.contact) {
            (false, _) => None,
            (true, Some(contact)) if contact.kind == ContactKind::Email => {
                Some(self.unsubscribe_token(controller, contact, &q.input.purpose, now))
            }
            (true, _) => return Err(invalid("unsubscribe links are made for checks by email")),
        };
        Ok(CheckAnswer { outcome, signed, unsubscribe_token })
    }

    /// Answers many questions at once, each on its own (one bad question does not fail the
    /// others): the targets' facts are read with two batched lookups (the targets', then the
    /// subjects linked to the contact points among them).
    fn check_many<'q, Q: AsRef<CheckInput>>(
        &self,
        controller: &ControllerId,
        qs: &'q [Q],
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
            facts: Vec<Fact>,
        }
        let log_size = self.ledger.committed_seq();
        let prepare = |q: &'q Q| -> Result<Prepared<'q>, ServiceError> {
            let q = q.as_ref();
            let at = match q.at {
                Some(t) if t > now => return Err(invalid("at must not be in the future")),
                Some(t) => t,
                None => now,
            };
            let pv = self.purpose_at(controller, &q.purpose, q.at)?.ok_or(ServiceError::NotFound("purpose"))?;
            Ok(match &q.target {
                CheckTarget::Subject(s) => {
                    let key = facts_key(controller, TargetKey::Subject(s));
                    Prepared { q, whom: Whom::Subject(s), pv, at, channel: q.channel, key, facts: Vec::new() }
                }
                CheckTarget::Contact(_) | CheckTarget::Indexed(_) => {
                    let contact = match &q.target {
                        CheckTarget::Contact(c) => {
                            ContactRef { kind: c.kind(), index: self.ledger.blind_index().index(controller, c) }
                        }
                        CheckTarget::Indexed(r) => r.clone(),
                        CheckTarget::Subject(_) => unreachable!("matched above"),
                    };
                    let kind = contact.kind;
                    let channel = q.channel.unwrap_or(kind.default_channel());
                    if !kind.reaches(channel) {
                        return Err(invalid(format!(
                            "channel {channel} does not reach a contact point of kind {}",
                            kind.as_str()
                        )));
                    }
                    let key = facts_key(controller, TargetKey::Contact(&contact.index));
                    let whom = Whom::Contact(contact);
                    Prepared { q, whom, pv, at, channel: Some(channel), key, facts: Vec::new() }
                }
            })
        };
        let mut prepared: Vec<Result<Prepared<'_>, ServiceError>> = qs.iter().map(prepare).collect();
        let keys: Vec<&[u8]> = prepared.iter().flatten().map(|p| p.key.as_slice()).collect();
        let proj = self.projections();
        // Questions all about one purpose (a single check, most lists) read only the facts
        // that bear on it.
        let mut purposes = prepared.iter().flatten().map(|p| &p.q.purpose);
        let first = purposes.next();
        let about = first.filter(|first| purposes.all(|p| p == *first));
        // One facts row per key, in order: each prepared question takes the next.
        let rows = proj.facts_many_about(&keys, about)?;
        if rows.len() != keys.len() {
            return Err(ServiceError::Internal("a facts row is missing".into()));
        }
        for (p, facts) in prepared.iter_mut().flatten().zip(rows) {
            p.facts = facts;
        }
        // Subjects linked to the contact points, each read once: question i's linked subjects'
        // facts are `linked[order[j]]` for j in `links[i].0..links[i].1`.
        let mut linked_once = Distinct::default();
        let mut order: Vec<usize> = Vec::new();
        let mut links: Vec<(usize, usize)> = Vec::with_capacity(qs.len());
        for p in &prepared {
            let start = order.len();
            if let Ok(Prepared { whom: Whom::Contact(_), facts, .. }) = p {
                for s in linked_subjects(facts) {
                    order.push(linked_once.index_of(s));
                }
            }
            links.push((start, order.len()));
        }
        let linked_keys: Vec<Vec<u8>> =
            linked_once.items.iter().map(|s| facts_key(controller, TargetKey::Subject(s))).collect();
        let linked = if linked_keys.is_empty() { Vec::new() } else { proj.facts_many_about(&linked_keys, about)? };
        let answer = |p: Prepared<'_>, (start, end): (usize, usize)| {
            let mine = &order[start..end];
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
        metrics::METRICS.decisions(permitted, decided - permitted);
        Ok(answers)
    }

    /// Signs a decision so a sender can later prove the message was checked.
    fn sign_decision(
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
                CheckTarget::Contact(_) | CheckTarget::Indexed(_) => None,
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
        let bytes = canonical::to_canonical_bytes(&doc).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (signature, key_id) = self.ledger.sign(&bytes);
        Ok(SignedDecision { decision: doc, signature, key_id })
    }
}

/// Distinct items in the order first seen, each with its place: a list searched in turn while
/// short (a single check links one or two subjects, and a map would cost an allocation and a
/// hash each), a map once longer (a bulk list's many).
struct Distinct<'a, T> {
    items: Vec<&'a T>,
    places: HashMap<&'a T, usize, foldhash::fast::RandomState>,
}

impl<T> Default for Distinct<'_, T> {
    fn default() -> Self {
        Self { items: Vec::new(), places: HashMap::default() }
    }
}

impl<'a, T: Eq + std::hash::Hash> Distinct<'a, T> {
    /// Items searched in turn before the map takes over.
    const LIST: usize = 16;

    /// `item`'s place, given it the next one if it is new.
    fn index_of(&mut self, item: &'a T) -> usize {
        if self.items.len() < Self::LIST {
            if let Some(i) = self.items.iter().position(|x| *x == item) {
                return i;
            }
            self.items.push(item);
            if self.items.len() == Self::LIST {
                self.places = self.items.iter().enumerate().map(|(i, x)| (*x, i)).collect();
            }
            return self.items.len() - 1;
        }
        let items = &mut self.items;
        *self.places.entry(item).or_insert_with(|| {
            items.push(item);
            items.len() - 1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Distinct;

    #[test]
    fn distinct_places_are_those_of_first_sight_before_and_after_the_map_takes_over() {
        // Repeats throughout, past the list's length, so both halves are asked again.
        let items: Vec<u32> = (0..200u32).map(|i| (i * 7919) % 41).collect();
        let mut distinct = Distinct::default();
        let mut first_seen: Vec<u32> = Vec::new();
        for item in &items {
            let expected = first_seen.iter().position(|x| x == item).unwrap_or_else(|| {
                first_seen.push(*item);
                first_seen.len() - 1
            });
            assert_eq!(distinct.index_of(item), expected);
        }
        assert_eq!(distinct.items.into_iter().copied().collect::<Vec<_>>(), first_seen);
        assert_eq!(first_seen.len(), 41);
    }
}
