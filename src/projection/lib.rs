//! Projections of the log: the event-id index, per-subject and per-contact-point history (the
//! facts the permission rules read) and the purpose catalogue with every version.
//!
//! [`project`] is the one function that turns an event into projection rows. The writer calls
//! it inside the same write batch as the event, and `verify`/rebuild call it over the whole
//! log, so the two can never disagree about what a projection should hold.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use metrics::PerThread;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use domain::{
    AckStatement, ControllerId, DownstreamSystem, EventType, Fact, Notice, PurposeDefinition, PurposeId, SubjectId,
    Token,
};
use format::EventDoc;
use store::{Cf, Store, StoreError};

mod cache_codec;
mod fact_codec;
mod facts_cache;
mod ring;
mod slots;
pub use fact_codec::{decode_facts, encode_fact, fact_records, for_each_record, kind_marker};
pub use facts_cache::{FactsCache, FactsCacheUsage, FACTS_CACHE_BYTES};

/// What a history row is about.
#[derive(Debug, Clone, Copy)]
pub enum TargetKey<'a> {
    Subject(&'a SubjectId),
    /// A contact point by blind index.
    Contact(&'a str),
}

pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// `controller 0x00 id`: the key of an event id's row. Ids are unique within a controller
/// (the ledger's own events, which have none, share the empty controller): one controller's
/// ids neither collide with nor reveal another's.
pub fn event_id_key(controller: Option<&ControllerId>, id: &uuid::Uuid) -> Vec<u8> {
    let c = controller.map_or("", |c| c.as_str());
    let mut k = Vec::with_capacity(c.len() + 17);
    k.extend_from_slice(c.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// `controller 0x00 tag target 0x00`: the key of a target's facts row (and of its entry in
/// the facts cache).
pub fn facts_key(controller: &ControllerId, target: TargetKey<'_>) -> Vec<u8> {
    let (tag, id) = match target {
        TargetKey::Subject(s) => (b's', s.as_str()),
        TargetKey::Contact(c) => (b'c', c),
    };
    let mut k = Vec::with_capacity(controller.as_str().len() + id.len() + 12);
    k.extend_from_slice(controller.as_str().as_bytes());
    k.push(0);
    k.push(tag);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k
}

/// `controller 0x00`: the prefix of a controller's rows in `feed` (the seq follows) and in
/// `purposes` (`purpose 0x00 seq` follows).
pub fn controller_prefix(controller: &ControllerId) -> Vec<u8> {
    let mut k = controller.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

pub fn purpose_prefix(controller: &ControllerId, purpose: &PurposeId) -> Vec<u8> {
    let mut k = controller_prefix(controller);
    k.extend_from_slice(purpose.as_str().as_bytes());
    k.push(0);
    k
}

/// `controller 0x00 notice 0x00`: the prefix of a notice's rows in `notices` (the seq of each
/// publication follows; the first holds, see [`Projections::notice`]).
pub fn notice_prefix(controller: &ControllerId, notice: &Token) -> Vec<u8> {
    let mut k = controller_prefix(controller);
    k.extend_from_slice(notice.as_str().as_bytes());
    k.push(0);
    k
}

/// A published notice as the catalogue keeps it: the notice and its `notice.published` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeVersion {
    pub seq: u64,
    pub event: uuid::Uuid,
    pub recorded_at: DateTime<Utc>,
    pub notice: Notice,
}

/// `controller 0x00 system 0x00`: the prefix of a downstream system's rows in `downstream`
/// (`r` or `a`, then the seq, follow).
pub fn downstream_prefix(controller: &ControllerId, system: &Token) -> Vec<u8> {
    let mut k = controller_prefix(controller);
    k.extend_from_slice(system.as_str().as_bytes());
    k.push(0);
    k
}

/// A registration of a downstream system: the system as registered and its event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemVersion {
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    pub system: DownstreamSystem,
}

/// A downstream system as the projection holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRows {
    /// The seq of its first registration: it answers for the events after it.
    pub first_seq: u64,
    pub current: SystemVersion,
    pub acks: Vec<AckRow>,
}

/// What an acknowledgement covers, as the projection keeps it (the signed statement stays in
/// the event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRow {
    pub seq: u64,
    pub event: uuid::Uuid,
    pub recorded_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<uuid::Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_seq: Option<u64>,
}

/// One version of a purpose as the catalogue keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeVersion {
    pub id: PurposeId,
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    pub definition: PurposeDefinition,
}

/// One row an event adds: its column family, key and value.
pub type Row = (Cf, Vec<u8>, Vec<u8>);

/// The projection rows for one event. Rows of appending column families ([`Cf::appends`])
/// are appended to, the others set.
pub fn project(doc: &EventDoc) -> Result<Vec<Row>, ProjectionError> {
    let mut rows = vec![(Cf::EventIds, event_id_key(doc.controller.as_ref(), &doc.id), seq_key(doc.seq).to_vec())];
    let Some(controller) = &doc.controller else {
        return Ok(rows);
    };
    let mut k = controller_prefix(controller);
    k.extend_from_slice(&seq_key(doc.seq));
    rows.push((Cf::Feed, k, Vec::new()));
    let mut fact = Vec::with_capacity(128);
    encode_fact(&doc.fact(), &mut fact);
    if let Some(s) = &doc.subject {
        rows.push((Cf::Facts, facts_key(controller, TargetKey::Subject(s)), fact.clone()));
    }
    if let Some(c) = &doc.contact {
        rows.push((Cf::Facts, facts_key(controller, TargetKey::Contact(&c.index)), fact));
    }
    if let (EventType::PurposeDefined, Some(p), Some(def)) = (doc.kind, &doc.purpose, &doc.definition) {
        let mut k = purpose_prefix(controller, p);
        k.extend_from_slice(&seq_key(doc.seq));
        let v = PurposeVersion { id: p.clone(), seq: doc.seq, recorded_at: doc.recorded_at, definition: def.clone() };
        rows.push((Cf::Purposes, k, serde_json::to_vec(&v).map_err(|_| ProjectionError::Unserialisable(doc.seq))?));
    }
    if let (EventType::DownstreamRegistered, Some(d)) = (doc.kind, &doc.downstream) {
        let mut k = downstream_prefix(controller, &d.id);
        k.push(b'r');
        k.extend_from_slice(&seq_key(doc.seq));
        let v = SystemVersion { seq: doc.seq, recorded_at: doc.recorded_at, system: d.clone() };
        rows.push((Cf::Downstream, k, serde_json::to_vec(&v).map_err(|_| ProjectionError::Unserialisable(doc.seq))?));
    }
    if let (EventType::DownstreamAcknowledged, Some(a)) = (doc.kind, &doc.acknowledgement) {
        // Recorded only after the ledger parsed and checked the statement.
        let statement: AckStatement =
            serde_json::from_value(a.statement.clone()).map_err(|_| ProjectionError::Unserialisable(doc.seq))?;
        let mut k = downstream_prefix(controller, &statement.system);
        k.push(b'a');
        k.extend_from_slice(&seq_key(doc.seq));
        let v = AckRow {
            seq: doc.seq,
            event: doc.id,
            recorded_at: doc.recorded_at,
            event_ids: statement.event_ids.unwrap_or_default(),
            up_to_seq: statement.up_to_seq,
        };
        rows.push((Cf::Downstream, k, serde_json::to_vec(&v).map_err(|_| ProjectionError::Unserialisable(doc.seq))?));
    }
    if let (EventType::NoticePublished, Some(n)) = (doc.kind, &doc.notice) {
        let mut k = notice_prefix(controller, &n.id);
        k.extend_from_slice(&seq_key(doc.seq));
        let v = NoticeVersion { seq: doc.seq, event: doc.id, recorded_at: doc.recorded_at, notice: n.clone() };
        rows.push((Cf::Notices, k, serde_json::to_vec(&v).map_err(|_| ProjectionError::Unserialisable(doc.seq))?));
    }
    Ok(rows)
}

/// The subjects ever linked to a contact point, from its own facts (the rules decide which
/// links held when).
pub fn linked_subjects(contact_facts: &[Fact]) -> Vec<&SubjectId> {
    let mut subjects: Vec<&SubjectId> = Vec::new();
    for f in contact_facts {
        if let (EventType::ContactLinked | EventType::ContactUnlinked, Some(s)) = (f.kind, &f.subject) {
            if !subjects.contains(&s) {
                subjects.push(s);
            }
        }
    }
    subjects
}

/// A contact point's own facts merged with those of its linked subjects, in seq order (an
/// event about both appears once).
pub fn merge_facts<'f>(lists: impl IntoIterator<Item = &'f [Fact]>) -> Vec<&'f Fact> {
    let mut facts: Vec<&Fact> = lists.into_iter().flatten().collect();
    facts.sort_unstable_by_key(|f| f.seq);
    facts.dedup_by_key(|f| f.seq);
    facts
}

/// The projections' one error type.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a projection row does not decode")]
    Corrupt,
    /// An event whose projection rows cannot be written (a value failed to serialise). The
    /// event is then not written either: a projection never silently lacks a row.
    #[error("the projection rows of event seq {0} could not be serialised")]
    Unserialisable(u64),
}

/// controller -> purpose id -> the version in force (only purposes that exist).
type PurposesByController = HashMap<String, HashMap<String, Arc<PurposeVersion>>>;

/// Current purpose versions by controller, then purpose id (looked up by `&str`, so a check
/// allocates nothing to find its purpose): a map per thread slot, each filled from the store
/// on its own, so that a check's lock and its clone of the version write only lines of its
/// own core.
#[derive(Default)]
struct PurposeCache {
    maps: PerThread<RwLock<PurposesByController>>,
}

/// What checks read without touching the store: facts rows and current purposes. The
/// group-commit writer invalidates what a commit changed after the write and before it
/// publishes the new log size, so any reader that can know of an event (its receipt, the feed,
/// `min_seq`) finds the cache already without the stale entry. `generation` moves on every
/// invalidation, and a read fills the cache only if none happened while it read the store.
#[derive(Default)]
pub struct Caches {
    generation: AtomicU64,
    facts: FactsCache,
    purposes: PurposeCache,
}

impl Caches {
    /// Caches whose facts rows take at most about `facts_bytes`.
    pub fn with_facts_budget(facts_bytes: usize) -> Self {
        Self::for_store(facts_bytes, None)
    }

    /// Caches whose facts rows take at most about `facts_bytes`, for a store of about
    /// `facts_rows` facts rows (its tables made for them: `FactsCache::for_rows`).
    pub fn for_store(facts_bytes: usize, facts_rows: Option<u64>) -> Self {
        Self {
            generation: AtomicU64::new(0),
            facts: FactsCache::for_rows(facts_bytes, facts_rows),
            purposes: Default::default(),
        }
    }

    /// Forgets what the committed `docs` change: their targets' facts, and the controller's
    /// purposes when one is (re)defined.
    pub fn invalidate<'d>(&self, docs: impl IntoIterator<Item = &'d EventDoc>) {
        let (mut keys, mut controllers) = (Vec::new(), Vec::new());
        for doc in docs {
            let Some(controller) = &doc.controller else { continue };
            if let Some(s) = &doc.subject {
                keys.push(facts_key(controller, TargetKey::Subject(s)));
            }
            if let Some(c) = &doc.contact {
                keys.push(facts_key(controller, TargetKey::Contact(&c.index)));
            }
            if doc.kind == EventType::PurposeDefined {
                controllers.push(controller.as_str());
            }
        }
        // The generation moves before the entries go, so a read that began before this
        // commit cannot put a stale entry back (see `fill_facts`).
        self.generation.fetch_add(1, Ordering::AcqRel);
        for k in keys {
            self.facts.remove(&k);
        }
        if !controllers.is_empty() {
            for map in self.purposes.maps.all() {
                if let Ok(mut purposes) = map.write() {
                    for c in &controllers {
                        purposes.remove(*c);
                    }
                }
            }
        }
    }

    /// Fills the facts cache with `entries` (keys and their facts) read at `generation`,
    /// unless a commit has invalidated anything since (checked under each entry's shard lock).
    fn fill_facts<'e>(&self, generation: u64, entries: impl IntoIterator<Item = (&'e [u8], &'e [Fact])>) {
        for (k, facts) in entries {
            self.facts.insert(k, facts, || self.generation.load(Ordering::Acquire) == generation);
        }
    }

    /// Gives the facts cache's tables room for a store of about `facts_rows` facts rows, if
    /// they have less (`FactsCache::make_room_for`).
    pub fn make_room_for(&self, facts_rows: Option<u64>) {
        if let Some(rows) = facts_rows {
            self.facts.make_room_for(rows);
        }
    }

    /// What the facts cache holds, its budget and its hits and misses so far.
    pub fn facts_usage(&self) -> FactsCacheUsage {
        self.facts.figures()
    }

    /// Calls `f` with the key of every facts row the cache holds (see
    /// [`FactsCache::for_each_key`]): what [`Projections::warm_facts`] can put back.
    pub fn for_each_facts_key(&self, f: impl FnMut(&[u8])) {
        self.facts.for_each_key(f);
    }

    /// Whether the facts cache takes more rows without evicting any.
    pub fn facts_have_room(&self) -> bool {
        self.facts.has_room()
    }
}

/// Reads of the projections, through the caches.
pub struct Projections<'a> {
    store: &'a Store,
    caches: &'a Caches,
}

impl<'a> Projections<'a> {
    pub fn new(store: &'a Store, caches: &'a Caches) -> Self {
        Self { store, caches }
    }

    /// The facts recorded against one target, in seq order.
    pub fn facts(&self, controller: &ControllerId, target: TargetKey<'_>) -> Result<Vec<Fact>, ProjectionError> {
        let mut one = self.facts_many(&[facts_key(controller, target)])?;
        one.pop().ok_or(ProjectionError::Corrupt)
    }

    /// The version of a purpose in force now.
    pub fn current_purpose(
        &self,
        controller: &ControllerId,
        purpose: &PurposeId,
    ) -> Result<Option<Arc<PurposeVersion>>, ProjectionError> {
        let cached =
            |map: &PurposesByController| map.get(controller.as_str()).and_then(|m| m.get(purpose.as_str())).cloned();
        let map = self.caches.purposes.maps.mine();
        if let Some(hit) = map.read().ok().and_then(|m| cached(&m)) {
            return Ok(Some(hit));
        }
        let generation = self.caches.generation.load(Ordering::Acquire);
        // Only purposes that exist are cached: a name is the client's to choose, so caching
        // misses would let one client grow the cache without bound.
        let Some(found) = self.purpose(controller, purpose, None)?.map(Arc::new) else {
            return Ok(None);
        };
        if let Ok(mut map) = map.write() {
            if self.caches.generation.load(Ordering::Acquire) == generation {
                map.entry(controller.as_str().to_owned())
                    .or_default()
                    .insert(purpose.as_str().to_owned(), found.clone());
            }
        }
        Ok(Some(found))
    }

    /// The facts of many targets (keys from [`facts_key`]) at once: cache hits first,
    /// then one RocksDB multi-get for the rest. Targets with facts are cached (unknown ones
    /// are not: a campaign list is mostly addresses the ledger never saw, and the bloom
    /// filters answer those cheaply).
    pub fn facts_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Vec<Fact>>, ProjectionError> {
        self.facts_many_about(keys, None)
    }

    /// [`Projections::facts_many`] for questions about `purpose` when one is given: of each
    /// row, only the facts that bear on it ([`domain::bears_on`]; the rules decide the same
    /// over them). A row read from the store goes into the cache whole.
    pub fn facts_many_about<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        purpose: Option<&PurposeId>,
    ) -> Result<Vec<Vec<Fact>>, ProjectionError> {
        let keep = |kind: EventType, p: Option<&str>| purpose.is_none_or(|asked| domain::bears_on(kind, p, asked));
        let generation = self.caches.generation.load(Ordering::Acquire);
        let mut out: Vec<Option<Vec<Fact>>> =
            keys.iter().map(|k| self.caches.facts.get_where(k.as_ref(), keep)).collect();
        let misses: Vec<usize> = (0..keys.len()).filter(|i| out[*i].is_none()).collect();
        self.caches.facts.count(keys.len() - misses.len(), misses.len());
        if !misses.is_empty() {
            let miss_keys: Vec<&[u8]> = misses.iter().map(|i| keys[*i].as_ref()).collect();
            let mut read = Vec::with_capacity(misses.len());
            for row in self.store.multi_get(Cf::Facts, &miss_keys)? {
                read.push(match row {
                    Some(row) => decode_facts(&row)?,
                    None => Vec::new(),
                });
            }
            let fresh = miss_keys.iter().zip(&read).map(|(k, facts)| (*k, facts.as_slice()));
            self.caches.fill_facts(generation, fresh.filter(|(_, facts)| !facts.is_empty()));
            for (i, mut facts) in misses.into_iter().zip(read) {
                facts.retain(|f| keep(f.kind, f.purpose.as_ref().map(PurposeId::as_str)));
                out[i] = Some(facts);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Reads the facts rows of `keys` that the cache does not hold into it, as checks that
    /// missed them would (a row changed by a commit meanwhile is not put in; keys of no row
    /// put nothing in), without counting lookups. Rows read.
    pub fn warm_facts(&self, keys: &[&[u8]]) -> Result<usize, ProjectionError> {
        let generation = self.caches.generation.load(Ordering::Acquire);
        let missing: Vec<&[u8]> = keys.iter().copied().filter(|k| !self.caches.facts.contains(k)).collect();
        let mut read = Vec::with_capacity(missing.len());
        for (k, row) in missing.iter().zip(self.store.multi_get(Cf::Facts, &missing)?) {
            if let Some(row) = row {
                read.push((*k, decode_facts(&row)?));
            }
        }
        self.caches.fill_facts(generation, read.iter().map(|(k, facts)| (*k, facts.as_slice())));
        Ok(read.len())
    }

    /// Reads the facts rows `keep` takes of the next `most` in key order, from `from` on, into
    /// the cache, as checks that missed them would (unless a commit changes anything
    /// meanwhile), without counting lookups: a server's cache filled from the store when it
    /// has no saved keys (`keep` takes every row), or refilled with the rows whose keys it
    /// saved when they are most of the store's. One pass read once (it leaves the block cache
    /// to the checks' point reads), begun after the generation is read, so a commit it does
    /// not see is one that moves the generation. Rows put in, rows read (`most` unless the
    /// store ended), and the key to go on from (`None` at the end).
    pub fn warm_facts_from(
        &self,
        from: &[u8],
        most: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<(usize, usize, Option<Vec<u8>>), ProjectionError> {
        let generation = self.caches.generation.load(Ordering::Acquire);
        let mut read = Vec::with_capacity(most.min(4096));
        let (mut scanned, mut next) = (0, None);
        for item in self.store.scan_once_from(Cf::Facts, from)? {
            let (k, v) = item?;
            if scanned == most {
                next = Some(k.into_vec());
                break;
            }
            scanned += 1;
            if keep(&k) {
                read.push((k, decode_facts(&v)?));
            }
        }
        self.caches.fill_facts(generation, read.iter().map(|(k, facts)| (&**k, facts.as_slice())));
        Ok((read.len(), scanned, next))
    }

    /// Calls `f` with the facts of each of the controller's subjects whose facts row may hold
    /// an event of type `kind` (its row holds the type's bytes; `f` decides), in subject
    /// order. One scan of the controller's subject rows, read once (it leaves the block cache
    /// to the checks' point reads); only those rows are decoded.
    pub fn subjects_with(
        &self,
        controller: &ControllerId,
        kind: EventType,
        mut f: impl FnMut(Vec<Fact>),
    ) -> Result<(), ProjectionError> {
        let mut prefix = controller_prefix(controller);
        prefix.push(b's');
        let marker = kind_marker(kind);
        let finder = memchr::memmem::Finder::new(&marker);
        for item in self.store.scan_once_from(Cf::Facts, &prefix)? {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            if finder.find(&v).is_some() {
                f(decode_facts(&v)?);
            }
        }
        Ok(())
    }

    /// Seqs of the controller's events after `after`, at most `limit`, in order.
    pub fn log_after(&self, controller: &ControllerId, after: u64, limit: usize) -> Result<Vec<u64>, ProjectionError> {
        let prefix = controller_prefix(controller);
        let mut start = prefix.clone();
        start.extend_from_slice(&seq_key(after.saturating_add(1)));
        let mut out = Vec::new();
        for item in self.store.iter_from(Cf::Feed, &start)? {
            let (k, _) = item?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let tail: [u8; 8] = k[k.len() - 8..].try_into().map_err(|_| ProjectionError::Corrupt)?;
            out.push(u64::from_be_bytes(tail));
        }
        Ok(out)
    }

    /// The version of a purpose in force at `at` (the latest when `at` is `None`).
    pub fn purpose(
        &self,
        controller: &ControllerId,
        purpose: &PurposeId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<PurposeVersion>, ProjectionError> {
        let prefix = purpose_prefix(controller, purpose);
        let decode = |v: &[u8]| serde_json::from_slice::<PurposeVersion>(v).map_err(|_| ProjectionError::Corrupt);
        match at {
            None => match self.store.last_with_prefix(Cf::Purposes, &prefix)? {
                Some((_, v)) => Ok(Some(decode(&v)?)),
                None => Ok(None),
            },
            Some(t) => {
                let mut found = None;
                for (_, v) in self.store.scan_prefix(Cf::Purposes, &prefix)? {
                    let pv = decode(&v)?;
                    if pv.recorded_at <= t {
                        found = Some(pv);
                    }
                }
                Ok(found)
            }
        }
    }

    /// A published notice of a controller. A notice's wording never changes: should an id
    /// ever be published twice (two nodes at once), the first publication holds.
    pub fn notice(&self, controller: &ControllerId, id: &Token) -> Result<Option<NoticeVersion>, ProjectionError> {
        match self.store.scan_prefix(Cf::Notices, &notice_prefix(controller, id))?.into_iter().next() {
            Some((_, v)) => Ok(Some(serde_json::from_slice(&v).map_err(|_| ProjectionError::Corrupt)?)),
            None => Ok(None),
        }
    }

    /// A downstream system: the registration in force now, the seq of its first, and its
    /// acknowledgements in seq order.
    pub fn downstream(&self, controller: &ControllerId, system: &Token) -> Result<Option<SystemRows>, ProjectionError> {
        let (mut current, mut first, mut acks): (Option<SystemVersion>, Option<u64>, Vec<AckRow>) =
            (None, None, Vec::new());
        let prefix = downstream_prefix(controller, system);
        for (k, v) in self.store.scan_prefix(Cf::Downstream, &prefix)? {
            match k.get(prefix.len()) {
                Some(b'r') => {
                    let sv: SystemVersion = serde_json::from_slice(&v).map_err(|_| ProjectionError::Corrupt)?;
                    first = first.or(Some(sv.seq));
                    current = Some(sv);
                }
                Some(b'a') => acks.push(serde_json::from_slice(&v).map_err(|_| ProjectionError::Corrupt)?),
                _ => return Err(ProjectionError::Corrupt),
            }
        }
        Ok(current.map(|current| SystemRows { first_seq: first.unwrap_or(current.seq), current, acks }))
    }

    /// Every downstream system of every controller (each as registered now), for metrics and
    /// the list; `controller` narrows it to one.
    pub fn downstream_systems(
        &self,
        controller: Option<&ControllerId>,
    ) -> Result<Vec<(ControllerId, SystemVersion)>, ProjectionError> {
        let prefix = controller.map(controller_prefix).unwrap_or_default();
        let mut out: Vec<(ControllerId, SystemVersion)> = Vec::new();
        for (k, v) in self.store.scan_prefix(Cf::Downstream, &prefix)? {
            let Some(c) = k.iter().position(|b| *b == 0) else { return Err(ProjectionError::Corrupt) };
            let tag_at = k[c + 1..].iter().position(|b| *b == 0).map(|p| c + 2 + p);
            if tag_at.and_then(|t| k.get(t)) != Some(&b'r') {
                continue;
            }
            let owner = std::str::from_utf8(&k[..c]).ok().and_then(|s| ControllerId::parse(s).ok());
            let Some(owner) = owner else { return Err(ProjectionError::Corrupt) };
            let sv: SystemVersion = serde_json::from_slice(&v).map_err(|_| ProjectionError::Corrupt)?;
            match out.last_mut() {
                Some((o, last)) if *o == owner && last.system.id == sv.system.id => *last = sv,
                _ => out.push((owner, sv)),
            }
        }
        Ok(out)
    }

    /// Every notice a controller published, in id order.
    pub fn notices(&self, controller: &ControllerId) -> Result<Vec<NoticeVersion>, ProjectionError> {
        let mut out: Vec<NoticeVersion> = Vec::new();
        for (_, v) in self.store.scan_prefix(Cf::Notices, &controller_prefix(controller))? {
            let nv: NoticeVersion = serde_json::from_slice(&v).map_err(|_| ProjectionError::Corrupt)?;
            if out.last().is_none_or(|last| last.notice.id != nv.notice.id) {
                out.push(nv);
            }
        }
        Ok(out)
    }

    /// The current version of every purpose of a controller, in id order.
    pub fn purposes(&self, controller: &ControllerId) -> Result<Vec<PurposeVersion>, ProjectionError> {
        let mut out: Vec<PurposeVersion> = Vec::new();
        for (_, v) in self.store.scan_prefix(Cf::Purposes, &controller_prefix(controller))? {
            let pv: PurposeVersion = serde_json::from_slice(&v).map_err(|_| ProjectionError::Corrupt)?;
            match out.last_mut() {
                Some(last) if last.id == pv.id => *last = pv,
                _ => out.push(pv),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn fact(seq: u64, subject: Option<&str>) -> Fact {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Fact {
            seq,
            id: Uuid::from_u128(u128::from(seq)),
            kind: EventType::ContactLinked,
            subject: subject.map(|s| SubjectId::parse(s).unwrap()),
            contact: Some("idx".into()),
            purpose: None,
            channel: None,
            recipient: None,
            occurred_at: t,
            recorded_at: t,
            expires_at: None,
        }
    }

    #[test]
    fn a_facts_row_is_its_appended_records_in_order() {
        let mut row = Vec::new();
        for seq in [3, 9, 12] {
            encode_fact(&fact(seq, Some("T-1")), &mut row);
        }
        let facts = decode_facts(&row).unwrap();
        assert_eq!(facts.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![3, 9, 12]);
        assert!(decode_facts(b"{}\n").is_err());
        assert!(decode_facts(b"").unwrap().is_empty());
    }

    #[test]
    fn merged_facts_are_in_seq_order_and_an_event_on_both_lists_counts_once() {
        let contact = vec![fact(2, Some("T-1")), fact(7, None)];
        let subject = vec![fact(2, Some("T-1")), fact(4, Some("T-1")), fact(9, Some("T-1"))];
        let merged = merge_facts([contact.as_slice(), subject.as_slice()]);
        assert_eq!(merged.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![2, 4, 7, 9]);
        assert_eq!(linked_subjects(&contact).len(), 1);
    }

    #[test]
    fn a_fill_read_before_a_commit_is_refused_after_it() {
        let caches = Caches::default();
        let facts = [fact(2, Some("T-1"))];
        let entry = |k: &'static str| [(k.as_bytes(), &facts[..])];
        caches.fill_facts(0, entry("a"));
        assert!(caches.facts.get(b"a").is_some());
        caches.invalidate(std::iter::empty());
        caches.fill_facts(0, entry("b"));
        assert!(caches.facts.get(b"b").is_none(), "a read from before the commit went into the cache");
        caches.fill_facts(1, entry("b"));
        assert!(caches.facts.get(b"b").is_some());
    }

    #[test]
    fn names_of_purposes_that_do_not_exist_are_not_cached() {
        let store = Store::memory(&store::memory::MemoryStore::new());
        let caches = Caches::default();
        let proj = Projections::new(&store, &caches);
        let c = ControllerId::parse("council").unwrap();
        for i in 0..1000 {
            let p = PurposeId::parse(format!("made-up-{i}")).unwrap();
            assert!(proj.current_purpose(&c, &p).unwrap().is_none());
        }
        let cached: usize =
            caches.purposes.maps.all().map(|m| m.read().unwrap().values().map(HashMap::len).sum::<usize>()).sum();
        assert_eq!(cached, 0, "a client's made-up names grew the purpose cache");
    }
}
