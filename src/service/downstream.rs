//! Downstream systems: registering the systems a controller's data reaches (signed into the
//! log as `downstream.registered`), the feed of the events that concern each, their signed
//! acknowledgements (checked against the system's own key and recorded in the log as
//! `downstream.acknowledged`, so the proof that a mailing house applied an opt-out is itself
//! in the Merkle tree), what is overdue, and the blind indexes of the addresses a system holds.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{invalid, ContactRequest, Published, Recorder, Service, ServiceError, MAX_CLOCK_SKEW};
use domain::downstream::MAX_ACK_EVENTS;
use domain::{AckStatement, Acknowledgement, ContactPoint, ControllerId, DownstreamSystem, EventType, Token};
use format::{derived_id, ContactRef, EventDoc, Receipt};
use projection::{SystemRows, SystemVersion};
use signing::{Ed25519Verifier, Verifier};

/// Events of the controller's log read per step while looking for a system's events.
const SCAN_PAGE: usize = 1000;
/// Most events of the controller's log one feed request reads before it answers (with
/// `has_more`), so a system that acts on little never makes one request read the whole log.
const SCAN_LIMIT: usize = 20_000;
/// Most addresses one lookup may name.
pub const MAX_LOOKUP: usize = 1000;

/// Where each downstream system's overdue scan got to, so that `/metrics` and the overdue
/// list read only the events recorded since the last look, not every event since the
/// system's registration or last `up_to_seq` (a system that acknowledges by id, or never,
/// would make every scrape read its whole feed). Lost with the process; rebuilt by the next
/// look.
#[derive(Default)]
pub(crate) struct OverdueScans(Mutex<HashMap<(ControllerId, Token), Scan>>);

struct Scan {
    /// The registration (its seq) it was made for: a new one may concern other events, or
    /// give them another deadline.
    version: u64,
    /// Every event of the controller's log up to this seq was due when looked at.
    after: u64,
    /// Those of them that concern the system, past its `up_to_seq` and not acknowledged by
    /// id when looked at (acknowledgements only grow, so each look filters them again).
    pending: Vec<OverdueEvent>,
}

/// Whether an event concerns a downstream system: a consent, objection or restriction of a
/// purpose it acts on over a channel it uses; an objection to all marketing or a restriction
/// of all processing (no purpose) over a channel it uses; an erasure.
pub fn concerns(system: &DownstreamSystem, e: &EventDoc) -> bool {
    match e.kind {
        EventType::ConsentGranted
        | EventType::ConsentWithdrawn
        | EventType::ObjectionRaised
        | EventType::ObjectionLifted
        | EventType::RestrictionApplied
        | EventType::RestrictionLifted => match &e.purpose {
            Some(p) => system.acts_on(p, e.channel),
            None => system.covers(e.channel),
        },
        EventType::SubjectErased => true,
        _ => false,
    }
}

/// A page of a system's feed.
#[derive(Debug, Clone)]
pub struct SystemFeed {
    pub events: Vec<Receipt>,
    /// Pass as `after` for the next page: the last seq read, which may be past the last event
    /// returned when the rest did not concern the system.
    pub next_after: u64,
    pub has_more: bool,
}

/// The events of one system past their deadline without an acknowledgement.
#[derive(Debug, Clone)]
pub struct Overdue {
    pub system: Token,
    pub name: String,
    pub deadline_seconds: u32,
    pub events: Vec<OverdueEvent>,
}

#[derive(Debug, Clone)]
pub struct OverdueEvent {
    pub id: Uuid,
    pub seq: u64,
    pub kind: EventType,
    pub recorded_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

impl Service {
    /// Registers (or revises) a downstream system of a controller; the same registration
    /// again records nothing and answers its receipt.
    pub async fn register_downstream(
        &self,
        controller: &ControllerId,
        system: DownstreamSystem,
        by: Recorder<'_>,
        now: DateTime<Utc>,
    ) -> Result<Published, ServiceError> {
        let system = system.validated().map_err(|e| invalid(e.to_string()))?;
        Ed25519Verifier::from_vkey(&system.vkey)
            .map_err(|_| invalid("vkey must be a C2SP Ed25519 verifier key (name+id+base64)"))?;
        self.ledger.catch_up().await?;
        for p in &system.purposes {
            if self.current_purpose(controller, p)?.is_none() {
                return Err(invalid(format!("purpose {p} is not in the catalogue")));
            }
        }
        if let Some(held) = self.projections().downstream(controller, &system.id)? {
            if held.current.system == system {
                return Ok(Published { receipt: self.receipt_by_seq(held.current.seq)?, new: false });
            }
        }
        let receipt = self
            .record_by_ledger(controller, EventType::DownstreamRegistered, None, by, now, |d| {
                d.downstream = Some(system)
            })
            .await?;
        Ok(Published { receipt, new: true })
    }

    /// Every downstream system of a controller, as registered now.
    pub fn downstream_systems(&self, controller: &ControllerId) -> Result<Vec<SystemVersion>, ServiceError> {
        Ok(self.projections().downstream_systems(Some(controller))?.into_iter().map(|(_, s)| s).collect())
    }

    fn system(&self, controller: &ControllerId, id: &Token) -> Result<SystemRows, ServiceError> {
        self.projections().downstream(controller, id)?.ok_or(ServiceError::NotFound("downstream system"))
    }

    /// The events after `after` that concern one system, at most `limit`.
    pub fn downstream_feed(
        &self,
        controller: &ControllerId,
        system: &Token,
        after: u64,
        limit: usize,
    ) -> Result<SystemFeed, ServiceError> {
        let rows = self.system(controller, system)?;
        let (mut events, mut next_after, mut scanned) = (Vec::new(), after, 0);
        loop {
            let (page, more) = self.feed(controller, next_after, SCAN_PAGE)?;
            for r in page {
                next_after = r.seq;
                scanned += 1;
                if concerns(&rows.current.system, &r.event) {
                    events.push(r);
                    if events.len() == limit {
                        let has_more = more || self.feed(controller, next_after, 1)?.0.len() == 1;
                        return Ok(SystemFeed { events, next_after, has_more });
                    }
                }
            }
            if !more {
                return Ok(SystemFeed { events, next_after, has_more: false });
            }
            if scanned >= SCAN_LIMIT {
                return Ok(SystemFeed { events, next_after, has_more: true });
            }
        }
    }

    /// Checks a system's signed acknowledgement and records it in the log. `system` is the
    /// system the caller's key is bound to.
    pub async fn acknowledge(
        &self,
        controller: &ControllerId,
        system: &Token,
        ack: Acknowledgement,
        by: Recorder<'_>,
        now: DateTime<Utc>,
    ) -> Result<Receipt, ServiceError> {
        let rows = self.system(controller, system)?;
        let statement: AckStatement = serde_json::from_value(ack.statement.clone())
            .map_err(|_| invalid("statement must be {\"system\", \"event_ids\" or \"up_to_seq\", \"applied_at\"}"))?;
        if &statement.system != system {
            return Err(invalid("the statement names another system than the key's"));
        }
        // The system's own signature, over the statement exactly as it sent it.
        let key = Ed25519Verifier::from_vkey(&rows.current.system.vkey)
            .map_err(|_| ServiceError::Internal("a registered key does not parse".into()))?;
        let signature: [u8; 64] = base64::engine::general_purpose::STANDARD
            .decode(&ack.signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or(ServiceError::Unauthenticated("the acknowledgement's signature is not 64 base64 bytes"))?;
        let bytes = canonical::to_canonical_bytes(&ack.statement).map_err(|_| invalid("statement is not JSON"))?;
        if ack.key_id != hex::encode(key.key_id()) || !key.verify(&bytes, &signature) {
            return Err(ServiceError::Unauthenticated(
                "the acknowledgement is not signed with the system's registered key",
            ));
        }
        let applied_at = DateTime::parse_from_rfc3339(&statement.applied_at)
            .map_err(|_| invalid("applied_at must be an RFC 3339 time"))?
            .with_timezone(&Utc);
        if applied_at > now + MAX_CLOCK_SKEW {
            return Err(invalid("applied_at is in the future"));
        }
        match (&statement.event_ids, statement.up_to_seq) {
            (Some(ids), None) => {
                if ids.is_empty() || ids.len() > MAX_ACK_EVENTS {
                    return Err(invalid(format!("event_ids must name 1 to {MAX_ACK_EVENTS} events")));
                }
                let mut seen = HashSet::new();
                for id in ids {
                    if !seen.insert(id) {
                        return Err(invalid("event_ids repeats an event"));
                    }
                    let theirs = match self.ledger.seq_of(Some(controller), *id)? {
                        Some(seq) => concerns(&rows.current.system, &self.receipt_by_seq(seq)?.event),
                        None => false,
                    };
                    if !theirs {
                        return Err(invalid(format!("event {id} is not in this system's feed")));
                    }
                }
            }
            (None, Some(seq)) if seq >= 1 && seq <= self.log_size() => {}
            (None, Some(_)) => return Err(invalid("up_to_seq must be a seq of the log")),
            _ => return Err(invalid("a statement names either event_ids or up_to_seq")),
        }
        // The same signed statement posted again is the same event.
        let id = derived_id(format!("ack\0{controller}\0{}", ack.signature).as_bytes());
        self.record_by_ledger(controller, EventType::DownstreamAcknowledged, Some(id), by, now, |d| {
            d.acknowledgement = Some(ack)
        })
        .await
    }

    /// Per system, the events it answers for (recorded since it was first registered) past
    /// their deadline at `now` without an acknowledgement.
    pub fn overdue(&self, controller: &ControllerId, now: DateTime<Utc>) -> Result<Vec<Overdue>, ServiceError> {
        let mut out = Vec::new();
        for sv in self.downstream_systems(controller)? {
            let rows = self.system(controller, &sv.system.id)?;
            out.push(self.overdue_of(controller, &rows, now)?);
        }
        Ok(out)
    }

    fn overdue_of(
        &self,
        controller: &ControllerId,
        rows: &SystemRows,
        now: DateTime<Utc>,
    ) -> Result<Overdue, ServiceError> {
        let system = &rows.current.system;
        let deadline = Duration::seconds(i64::from(system.deadline_seconds));
        let up_to = rows.acks.iter().filter_map(|a| a.up_to_seq).max().unwrap_or(0);
        let acked: HashSet<Uuid> = rows.acks.iter().flat_map(|a| a.event_ids.iter().copied()).collect();
        // Taken out while scanning (a concurrent look starts over, and either result put
        // back is right), and put back only once the scan succeeded.
        let key = (controller.clone(), system.id.clone());
        let version = rows.current.seq;
        let taken = self.overdue_scans.0.lock().ok().and_then(|mut scans| scans.remove(&key));
        let (mut after, mut events) = match taken {
            Some(scan) if scan.version == version => (scan.after, scan.pending),
            _ => (rows.first_seq, Vec::new()),
        };
        if up_to > after {
            after = up_to;
            events.clear();
        }
        events.retain(|e| e.seq > up_to && !acked.contains(&e.id));
        'scan: loop {
            let (page, more) = self.feed(controller, after, SCAN_PAGE)?;
            for r in page {
                let due_at = r.event.recorded_at + deadline;
                if due_at > now {
                    // Later events were recorded later still: none is due yet.
                    break 'scan;
                }
                after = r.seq;
                if concerns(system, &r.event) && !acked.contains(&r.event.id) {
                    events.push(OverdueEvent {
                        id: r.event.id,
                        seq: r.seq,
                        kind: r.event.kind,
                        recorded_at: r.event.recorded_at,
                        due_at,
                    });
                }
            }
            if !more {
                break;
            }
        }
        // What was due at a later look is kept, but answered only once due at `now`.
        let due: Vec<OverdueEvent> = events.iter().filter(|e| e.due_at <= now).cloned().collect();
        if let Ok(mut scans) = self.overdue_scans.0.lock() {
            scans.insert(key, Scan { version, after, pending: events });
        }
        let events = due;
        Ok(Overdue {
            system: system.id.clone(),
            name: system.name.clone(),
            deadline_seconds: system.deadline_seconds,
            events,
        })
    }

    /// How many events are overdue, per controller and system, over every controller (for
    /// `/metrics`).
    pub fn overdue_counts(&self, now: DateTime<Utc>) -> Result<Vec<(ControllerId, Token, usize)>, ServiceError> {
        let mut out = Vec::new();
        for (controller, sv) in self.projections().downstream_systems(None)? {
            let rows = self.system(&controller, &sv.system.id)?;
            let n = self.overdue_of(&controller, &rows, now)?.events.len();
            out.push((controller, sv.system.id, n));
        }
        Ok(out)
    }

    /// The blind indexes of addresses a downstream system holds, in order, so it can match
    /// the feed's events to its own list without the ledger ever handing out an address.
    pub fn lookup_indexes(
        &self,
        controller: &ControllerId,
        addresses: Vec<ContactRequest>,
    ) -> Result<Vec<ContactRef>, ServiceError> {
        if addresses.is_empty() || addresses.len() > MAX_LOOKUP {
            return Err(invalid(format!("name 1 to {MAX_LOOKUP} addresses")));
        }
        addresses
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let point =
                    ContactPoint::parse(c.channel, &c.address).map_err(|e| invalid(format!("address {i}: {e}")))?;
                Ok(ContactRef { kind: point.kind(), index: self.ledger.blind_index().index(controller, &point) })
            })
            .collect()
    }
}
