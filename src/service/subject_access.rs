//! Subject access: one person's whole record as one signed bundle (`format::access`): every
//! event of their history (their own and those at their addresses while linked) and every
//! notice those events name, each with its receipt and an inclusion proof to one signed
//! checkpoint; the keys; their addresses by kind and dates; what is permitted now and why.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Service, ServiceError};
use domain::{ControllerId, EventType, SubjectId, Token};
use format::access::{
    AccessBundle, AddressPeriod, ProvenEvent, SignedAccessBundle, Told, ViaContact, ACCESS_TYPE, ACCESS_VERSION,
};
use format::{to_micros, Receipt};
use projection::TargetKey;

impl Service {
    /// The signed subject access bundle of one subject, made now. A subject without events
    /// is not found.
    pub async fn subject_access(
        &self,
        controller: &ControllerId,
        subject: &SubjectId,
        now: DateTime<Utc>,
    ) -> Result<SignedAccessBundle, ServiceError> {
        let history = self.history(controller, subject, None)?;
        let named: BTreeSet<&Token> = history.iter().filter_map(|e| e.receipt.event.notice_version.as_ref()).collect();
        let mut notice_seqs = Vec::new();
        for id in named {
            if let Some(nv) = self.projections().notice(controller, id)? {
                notice_seqs.push(nv.seq);
            }
        }
        let notices = self.receipts(&notice_seqs, "a notice")?;
        // Which downstream systems each stop concerns, and the acknowledgement of each.
        let systems = self.projections().downstream_systems(Some(controller))?;
        let mut rows = Vec::with_capacity(systems.len());
        for (_, sv) in &systems {
            if let Some(r) = self.projections().downstream(controller, &sv.system.id)? {
                rows.push(r);
            }
        }
        let mut ack_seqs = BTreeSet::new();
        let told: Vec<Vec<Told>> = history
            .iter()
            .map(|e| {
                let ev = &e.receipt.event;
                if !matches!(
                    ev.kind,
                    EventType::ConsentWithdrawn
                        | EventType::ObjectionRaised
                        | EventType::RestrictionApplied
                        | EventType::SubjectErased
                ) {
                    return Vec::new();
                }
                rows.iter()
                    .filter(|r| super::concerns(&r.current.system, ev))
                    .map(|r| {
                        let ack = r
                            .acks
                            .iter()
                            .find(|a| a.up_to_seq.is_some_and(|s| s >= e.receipt.seq) || a.event_ids.contains(&ev.id));
                        if let Some(a) = ack {
                            ack_seqs.insert(a.seq);
                        }
                        Told {
                            system: r.current.system.id.clone(),
                            name: r.current.system.name.clone(),
                            acknowledgement: ack.map(|a| a.event),
                        }
                    })
                    .collect()
            })
            .collect();
        let acks = self.receipts(&ack_seqs.into_iter().collect::<Vec<_>>(), "an acknowledgement")?;
        let last = history
            .iter()
            .map(|e| e.receipt.seq)
            .chain(notices.iter().map(|r| r.seq))
            .chain(acks.iter().map(|r| r.seq))
            .max()
            .unwrap_or(0);
        let (tree_size, checkpoint) = self.covering_checkpoint(last).await?;
        let prove = |receipt: Receipt, via: Option<ViaContact>, told: Vec<Told>| -> Result<ProvenEvent, ServiceError> {
            let inclusion_proof = self.proof_at(receipt.leaf_index, tree_size)?.iter().map(hex::encode).collect();
            Ok(ProvenEvent { receipt, via, inclusion_proof, told })
        };
        let events = history
            .into_iter()
            .zip(told)
            .map(|(e, told)| {
                let via = e.via.map(|v| ViaContact { contact_kind: v.kind, shared: v.shared });
                prove(e.receipt, via, told)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let notices = notices.into_iter().map(|r| prove(r, None, Vec::new())).collect::<Result<Vec<_>, _>>()?;
        let acknowledgements = acks.into_iter().map(|r| prove(r, None, Vec::new())).collect::<Result<Vec<_>, _>>()?;
        let own = self.projections().facts(controller, TargetKey::Subject(subject))?;
        let addresses = self
            .addresses(controller, subject, &own)?
            .into_iter()
            .map(|a| AddressPeriod {
                kind: a.contact.kind,
                linked_at: a.linked_at,
                unlinked_at: a.unlinked_at,
                shared: a.shared,
            })
            .collect();
        let permissions =
            self.permissions(controller, subject, None, now)?.0.into_iter().map(super::PermissionRow::line).collect();
        let bundle = AccessBundle {
            v: ACCESS_VERSION,
            kind: ACCESS_TYPE.into(),
            controller: controller.clone(),
            subject: subject.clone(),
            generated_at: to_micros(now),
            checkpoint,
            keys: self.keys().into_iter().map(|k| k.vkey).collect(),
            events,
            notices,
            acknowledgements,
            addresses,
            permissions,
        };
        let bytes = canonical::to_canonical_bytes(&bundle).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (signature, key_id) = self.ledger.sign(&bytes);
        Ok(SignedAccessBundle { bundle, signature, key_id })
    }
}
