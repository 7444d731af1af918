//! Reads: a subject's permissions, the controller's feed, receipts by id.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{invalid, Service, ServiceError};
use domain::{decide, Channel, ControllerId, Decision, PurposeId, Question, RecipientId, SubjectId, Target};
use format::access::PermissionLine;
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

impl PermissionRow {
    /// The row as answers and subject access bundles publish it.
    pub fn line(self) -> PermissionLine {
        PermissionLine {
            purpose: self.purpose,
            title: self.title,
            channel: self.channel,
            recipient: self.recipient,
            permitted: self.decision.permitted,
            reason: self.decision.reason,
            basis: self.decision.basis,
            decided_by: self.decision.decided_by,
        }
    }
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
    pub(super) fn receipts(&self, seqs: &[u64], what: &str) -> Result<Vec<Receipt>, ServiceError> {
        self.ledger
            .receipts(seqs)?
            .into_iter()
            .map(|r| r.ok_or_else(|| ServiceError::Internal(format!("{what} names a missing event"))))
            .collect()
    }
}
