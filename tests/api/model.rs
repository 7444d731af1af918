//! The storage boundary's model test at the ledger's level: random sequences of appends,
//! batches, checks, "as of" checks and reopenings run against a ledger on RocksDB and one on
//! the in-memory model, with the same keys, secrets and clock. Every answer must agree,
//! byte for byte: receipts (signatures, leaf hashes, seqs), refusals, decisions, history, the
//! feed and the Merkle tree. The model side keeps no facts cache, so every one of its checks
//! reads the store: a check answered from a cached row that a commit should have put out
//! (a "no" answered with an old "yes") disagrees with it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use consent_ledger::domain::{Channel, ContactPoint, ControllerId, EventType, Method, PurposeId, SubjectId};
use consent_ledger::ledger::{Clock, DataDir, Ledger, Options};
use consent_ledger::service::{CheckInput, CheckQuery, CheckTarget, ContactInput, EventInput, InclusionBy, Service};
use consent_ledger::store::memory::MemoryStore;
use consent_ledger::store::Store;
use proptest::prelude::*;
use serde_json::json;

const T0: i64 = 1_790_000_000; // 2026-09-22

#[derive(Debug, Clone)]
struct Ev {
    kind: EventType,
    subject: Option<u8>,
    contact: Option<u8>,
    purpose: Option<u8>,
    channel: Option<Channel>,
    /// Minutes before now that it occurred.
    ago: Option<u8>,
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Ev>),
    Check { subject: Option<u8>, contact: Option<u8>, purpose: u8, channel: Option<Channel>, minutes_ago: Option<u16> },
    Tick(u16),
    Reopen,
}

const PURPOSES: [&str; 3] = ["newsletter", "repairs", "surveys"];
const CONTACTS: [(Channel, &str); 3] =
    [(Channel::Email, "jane@example.org"), (Channel::Sms, "+447700900123"), (Channel::Email, "home@example.org")];

fn kind() -> impl Strategy<Value = EventType> {
    use EventType as T;
    prop_oneof![
        4 => Just(T::ConsentGranted),
        3 => Just(T::ConsentWithdrawn),
        2 => Just(T::ObjectionRaised),
        1 => Just(T::ObjectionLifted),
        1 => Just(T::RestrictionApplied),
        1 => Just(T::RestrictionLifted),
        2 => Just(T::ContactLinked),
        1 => Just(T::ContactUnlinked),
        1 => Just(T::SubjectErased),
        1 => Just(T::PurposeDefined),
    ]
}

fn channel() -> impl Strategy<Value = Option<Channel>> {
    prop_oneof![2 => Just(None), 1 => Just(Some(Channel::Email)), 1 => Just(Some(Channel::Sms)), 1 => Just(Some(Channel::Post))]
}

/// An event, most of them shaped to be recorded (its type's required members there, its
/// forbidden ones left out, a channel its contact point and purpose take): a tenth left as drawn,
/// whose refusals both sides must word alike.
fn ev() -> impl Strategy<Value = Ev> {
    (
        kind(),
        proptest::option::of(0u8..3),
        proptest::option::weighted(0.4, 0u8..3),
        proptest::option::weighted(0.8, 0u8..3),
        channel(),
        proptest::option::weighted(0.2, 0u8..60),
        proptest::bool::weighted(0.9),
    )
        .prop_map(|(kind, subject, contact, purpose, channel, ago, shaped)| {
            let e = Ev { kind, subject, contact, purpose, channel, ago };
            if shaped {
                shape(e)
            } else {
                e
            }
        })
}

/// `e` as its type's shape has it (see [`ev`]).
fn shape(mut e: Ev) -> Ev {
    use consent_ledger::domain::shape::Need;
    if e.kind == EventType::PurposeDefined {
        // Recorded by the ledger when a purpose is defined, never by a client.
        e.kind = EventType::ConsentGranted;
    }
    let shape = e.kind.shape();
    fn fit(member: Option<u8>, need: Need) -> Option<u8> {
        match need {
            Need::Required => member.or(Some(0)),
            Need::Allowed => member,
            Need::Forbidden => None,
        }
    }
    e.subject = fit(e.subject, shape.subject);
    e.contact = fit(e.contact, shape.contact);
    e.purpose = fit(e.purpose, shape.purpose);
    e.channel = e.channel.filter(|_| shape.channel != Need::Forbidden);
    if e.subject.is_none() && e.contact.is_none() {
        e.subject = Some(0);
    }
    // A channel the contact point reaches and the purpose uses (repairs: email and sms;
    // surveys: email and post).
    let reaches = |c: Channel| e.contact.is_none_or(|k| CONTACTS[k as usize].0 == c);
    let used = |c: Channel| match e.purpose {
        Some(1) => c != Channel::Post,
        Some(2) => c != Channel::Sms,
        _ => true,
    };
    e.channel = e.channel.filter(|c| reaches(*c) && used(*c));
    e
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => ev().prop_map(|e| Op::Append(vec![e])),
        1 => proptest::collection::vec(ev(), 2..5).prop_map(Op::Append),
        5 => (proptest::option::of(0u8..3), proptest::option::of(0u8..3), 0u8..3, channel(), proptest::option::weighted(0.3, 0u16..600), proptest::bool::weighted(0.9))
            .prop_map(|(subject, contact, purpose, channel, minutes_ago, shaped)| {
                // Most checks ask by a channel their contact point takes (the others are refused).
                let channel = channel.filter(|c| !shaped || contact.is_none_or(|k| CONTACTS[k as usize].0 == *c));
                Op::Check { subject, contact, purpose, channel, minutes_ago }
            }),
        2 => (1u16..600).prop_map(Op::Tick),
        1 => Just(Op::Reopen),
    ]
}

fn subject(i: u8) -> SubjectId {
    SubjectId::parse(format!("T-{i}")).unwrap()
}

fn contact(i: u8) -> ContactPoint {
    let (c, a) = CONTACTS[i as usize];
    ContactPoint::parse(c, a).unwrap()
}

fn input(e: &Ev, now: DateTime<Utc>) -> EventInput {
    let mut i = EventInput::by_person(e.kind, Method::Api);
    i.subject = e.subject.map(subject);
    i.contact = e.contact.map(|c| ContactInput::Address(contact(c)));
    i.purpose = e.purpose.map(|p| PurposeId::parse(PURPOSES[p as usize]).unwrap());
    i.channel = e.channel;
    i.occurred_at = e.ago.map(|m| now - Duration::minutes(m.into()));
    i
}

/// One ledger with its clock.
struct Side {
    service: Option<Service>,
    dir: DataDir,
    memory: Option<MemoryStore>,
    clock: Arc<AtomicI64>,
    /// The next event id (each side counts its own, in the same order).
    ids: Arc<std::sync::atomic::AtomicU64>,
    /// Bytes of facts rows the side's checks may keep (`None`: the ledger's default).
    facts_cache_bytes: Option<usize>,
}

impl Side {
    fn open(&mut self) {
        let clock = self.clock.clone();
        let defaults = Options::new("model.example/consent-ledger");
        let options = Options {
            clock: Clock::Fixed(Arc::new(move || DateTime::from_timestamp(clock.load(Ordering::SeqCst), 0).unwrap())),
            facts_cache_bytes: self.facts_cache_bytes.unwrap_or(defaults.facts_cache_bytes),
            ..defaults
        };
        let ledger = match &self.memory {
            Some(m) => Ledger::open_on(&self.dir, Store::memory(m), options),
            None => Ledger::open_with(&self.dir, options),
        };
        let ids = self.ids.clone();
        let service = Service::new(ledger.expect("open ledger")).with_ids(move || {
            uuid::Uuid::from_u128(
                0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(ids.fetch_add(1, Ordering::SeqCst)),
            )
        });
        self.service = Some(service);
    }

    fn service(&self) -> &Service {
        self.service.as_ref().expect("open")
    }
}

fn answer<T: serde::Serialize, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => serde_json::to_string(&v).unwrap(),
        Err(e) => format!("error: {e}"),
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rocks_dir = tempfile::tempdir().unwrap();
    let memory_dir = tempfile::tempdir().unwrap();
    // The purposes are defined 11 hours before the first step, so that a check "as of" up to
    // 600 minutes ago asks about a purpose that existed then (not one refused as unknown).
    let clock = Arc::new(AtomicI64::new(T0 - 11 * 3600));
    let mut rocks = Side {
        service: None,
        dir: DataDir::new(rocks_dir.path()),
        memory: None,
        clock: clock.clone(),
        ids: Arc::default(),
        facts_cache_bytes: None,
    };
    rocks.open();
    // The same keys and secrets on both sides, so signatures and blind indexes agree.
    for f in ["signing-key.json", "keyring.json", "blind-index.key", "token.key"] {
        std::fs::copy(rocks_dir.path().join(f), memory_dir.path().join(f)).unwrap();
    }
    let mut memory = Side {
        service: None,
        dir: DataDir::new(memory_dir.path()),
        memory: Some(MemoryStore::new()),
        clock: clock.clone(),
        ids: Arc::default(),
        facts_cache_bytes: Some(0),
    };
    memory.open();
    let c = ControllerId::parse("council").unwrap();
    let now = || DateTime::from_timestamp(clock.load(Ordering::SeqCst), 0).unwrap();
    let definitions = [
        json!({"title": "Newsletter", "basis": "consent", "marketing": true, "channels": ["email", "sms", "post"]}),
        json!({"title": "Repairs", "basis": "contract", "marketing": false, "channels": ["email", "sms"]}),
        json!({"title": "Surveys", "basis": "legitimate_interests", "marketing": true, "channels": ["email", "post"]}),
    ];
    for (id, def) in PURPOSES.iter().zip(definitions) {
        for side in [&rocks, &memory] {
            let def = serde_json::from_value(def.clone()).unwrap();
            rt.block_on(side.service().define_purpose(
                &c,
                PurposeId::parse(*id).unwrap(),
                def,
                consent_ledger::service::Recorder::CommandLine,
                now(),
            ))
            .unwrap();
        }
    }
    clock.store(T0, Ordering::SeqCst);
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Append(evs) => {
                let inputs: Vec<EventInput> = evs.iter().map(|e| input(e, now())).collect();
                let a = answer(rt.block_on(rocks.service().record(&c, inputs.clone(), now())));
                let b = answer(rt.block_on(memory.service().record(&c, inputs, now())));
                prop_assert_eq!(a, b, "step {}: {:?}", step, op);
            }
            Op::Check { subject: s, contact: k, purpose, channel, minutes_ago } => {
                let target = match (s, k) {
                    (_, Some(k)) => CheckTarget::Contact(contact(*k)),
                    (Some(s), None) => CheckTarget::Subject(subject(*s)),
                    (None, None) => CheckTarget::Subject(subject(0)),
                };
                let q = CheckQuery {
                    input: CheckInput {
                        target,
                        purpose: PurposeId::parse(PURPOSES[*purpose as usize]).unwrap(),
                        channel: *channel,
                        recipient: None,
                        at: minutes_ago.map(|m| now() - Duration::minutes(m.into())),
                    },
                    min_seq: None,
                    signed: true,
                    unsubscribe: false,
                };
                let ask = |side: &Side| {
                    let mut r = side.service().check_batch(&c, std::slice::from_ref(&q), now()).unwrap();
                    match r.pop().unwrap() {
                        Ok(a) => format!("{:?} {}", a.outcome.decision, answer::<_, String>(Ok(a.signed))),
                        Err(e) => format!("error: {e}"),
                    }
                };
                prop_assert_eq!(ask(&rocks), ask(&memory), "step {}: {:?}", step, op);
            }
            Op::Tick(minutes) => {
                clock.fetch_add(i64::from(*minutes) * 60, Ordering::SeqCst);
            }
            Op::Reopen => {
                for side in [&mut rocks, &mut memory] {
                    side.service = None;
                    side.open();
                }
            }
        }
    }
    // The whole state agrees: every subject's history, the feed, the tree over every event.
    let (a, b) = (rocks.service(), memory.service());
    for s in 0..3 {
        prop_assert_eq!(answer(a.history(&c, &subject(s), None)), answer(b.history(&c, &subject(s), None)));
    }
    prop_assert_eq!(answer(a.feed(&c, 0, 10_000)), answer(b.feed(&c, 0, 10_000)));
    prop_assert_eq!(a.log_size(), b.log_size());
    let size = a.log_size();
    let proof = |s: &Service| s.inclusion_proof(InclusionBy::Index(0), Some(size)).map(|p| (p.leaf_hash, p.hashes));
    prop_assert_eq!(proof(a).unwrap(), proof(b).unwrap());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_ledger_on_rocksdb_answers_as_one_on_the_in_memory_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
