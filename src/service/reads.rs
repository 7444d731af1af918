//! Reads: a subject's permissions and history, the controller's feed, receipts by id.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{invalid, Service, ServiceError};
use domain::{decide, Channel, ControllerId, Decision, PurposeId, Question, RecipientId, SubjectId, Target};
use format::Receipt;
use projection::TargetKey;

/// One line of a subject's permissions.
#[derive(Debug, Clone)]
pub struct PermissionRow {
    pub purpose: PurposeId,
    pub title: String,
    pub channel: Option<Channel>,
    pub recipient: Option<RecipientId>,
    pub decision: Decision,
}

impl Service {
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
        Ok(self.history_page(controller, subject, at, 0, usize::MAX)?.0)
    }

    /// One page of a subject's history: its events with a seq after `after` (and recorded by
    /// `at`), at most `limit`, oldest first, and whether more follow.
    pub fn history_page(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        at: Option<DateTime<Utc>>,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Receipt>, bool), ServiceError> {
        let facts = self.projections().facts(controller, TargetKey::Subject(subject))?;
        if facts.is_empty() {
            return Err(ServiceError::NotFound("subject"));
        }
        let mut seqs = facts.iter().filter(|f| f.seq > after && at.is_none_or(|t| f.recorded_at <= t)).map(|f| f.seq);
        let page: Vec<u64> = seqs.by_ref().take(limit).collect();
        let more = seqs.next().is_some();
        Ok((self.receipts(&page, "history")?, more))
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
        let receipts = self.receipts(&seqs, "feed")?;
        Ok((receipts, more))
    }

    /// The receipt of one event of the caller's controller.
    pub fn receipt(&self, controller: &ControllerId, id: Uuid) -> Result<Receipt, ServiceError> {
        let seq = self.ledger.seq_of(Some(controller), id)?.ok_or(ServiceError::NotFound("event"))?;
        let r = self.receipt_by_seq(seq)?;
        if r.event.controller.as_ref() != Some(controller) {
            // Another controller's event is reported exactly like a missing one.
            return Err(ServiceError::NotFound("event"));
        }
        Ok(r)
    }

    pub(super) fn receipt_by_seq(&self, seq: u64) -> Result<Receipt, ServiceError> {
        self.ledger.receipt(seq)?.ok_or(ServiceError::NotFound("event"))
    }

    /// Receipts of events a projection named; a missing one is an internal error of `what`.
    fn receipts(&self, seqs: &[u64], what: &str) -> Result<Vec<Receipt>, ServiceError> {
        self.ledger
            .receipts(seqs)?
            .into_iter()
            .map(|r| r.ok_or_else(|| ServiceError::Internal(format!("{what} names a missing event"))))
            .collect()
    }
}
