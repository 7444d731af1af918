//! Integrity verification of a store: every event's canonical bytes, leaf hash and signature
//! are re-derived in seq order, then the projections are rebuilt in memory from the log and
//! compared row by row with the stored ones. The first failure is named by seq.

use std::collections::BTreeMap;
use std::fmt;

use canonical::to_canonical_bytes;
use format::{leaf_hash, StoredEvent};
use log::merkle::Frontier;
use projection::seq_key;
use signing::Verifier;

use super::keys::ValidKey;
use store::{Cf, Store, StoreError};

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The event at `seq` is missing, malformed, re-encoded, mis-hashed or mis-signed.
    Event { seq: u64, what: &'static str },
    /// A projection row differs from what the log implies; `seq` is the event it belongs to
    /// when that can be told.
    Projection { cf: &'static str, seq: Option<u64>, what: &'static str },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Event { seq, what } => write!(f, "event seq {seq}: {what}"),
            Failure::Projection { cf, seq: Some(s), what } => {
                write!(f, "projection {cf}, row of event seq {s}: {what}")
            }
            Failure::Projection { cf, seq: None, what } => write!(f, "projection {cf}: {what}"),
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub events: u64,
    pub failure: Option<Failure>,
}

fn tail_seq(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The seq of the event a projection row belongs to: for a tree node, the last leaf it covers.
fn row_seq(cf: Cf, key: &[u8], value: &[u8]) -> Option<u64> {
    match cf {
        Cf::EventIds => tail_seq(value),
        Cf::Merkle => {
            let level = u32::from(*key.first()?);
            let index = tail_seq(key)?;
            index.checked_add(1)?.checked_shl(level)
        }
        Cf::Facts => projection::decode_facts(value).ok()?.last().map(|f| f.seq),
        _ => tail_seq(key),
    }
}

/// The seq of the first event on which two facts rows differ (for a rewritten row).
fn first_difference(want: &[u8], got: &[u8]) -> Option<u64> {
    let lines =
        |v: &'_ [u8]| v.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect::<Vec<_>>();
    let (w, g) = (lines(want), lines(got));
    let i = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
    let line = w.get(i).or_else(|| g.get(i))?;
    projection::decode_facts(line).ok()?.first().map(|f| f.seq)
}

/// Verifies `store` against the given public keys. `progress` is told each verified seq.
pub fn verify(store: &Store, keys: &[ValidKey], mut progress: impl FnMut(u64)) -> Result<Report, StoreError> {
    let mut expected: BTreeMap<(Cf, Vec<u8>), Vec<u8>> = BTreeMap::new();
    let mut seq = 0u64;
    let mut tree = Frontier::default();
    for item in store.iter_from(Cf::Events, &[])? {
        let (k, v) = item?;
        seq += 1;
        let fail = |what| Ok(Report { events: seq - 1, failure: Some(Failure::Event { seq, what }) });
        if *k != seq_key(seq) {
            return fail("missing from the log (the seqs have a gap)");
        }
        let Ok(stored) = StoredEvent::decode(&v) else {
            return fail("record is malformed");
        };
        let Ok(doc) = stored.doc() else {
            return fail("event does not parse");
        };
        if doc.seq != seq {
            return fail("event's seq does not match its position");
        }
        match to_canonical_bytes(&doc) {
            Ok(bytes) if bytes == stored.bytes => {}
            _ => return fail("stored bytes are not the RFC 8785 form of the event"),
        }
        if leaf_hash(&stored.bytes) != stored.leaf_hash {
            return fail("leaf hash does not match the event bytes");
        }
        let Some(key) = keys.iter().find(|k| k.verifier.key_id() == stored.key_id) else {
            return fail("signed by an unknown key");
        };
        if !key.covers(seq) {
            return fail("signed by a key outside the period it signed");
        }
        if !key.verifier.verify(&stored.bytes, &stored.signature) {
            return fail("signature does not verify");
        }
        let Ok(rows) = super::derived_rows(&doc, stored.leaf_hash, &mut tree) else {
            return fail("its projection rows cannot be derived");
        };
        for (cf, k, v) in rows {
            if cf.appends() {
                expected.entry((cf, k)).or_default().extend_from_slice(&v);
            } else {
                expected.insert((cf, k), v);
            }
        }
        progress(seq);
    }
    let events = seq;
    for cf in Cf::PROJECTIONS {
        let mut matched = 0usize;
        for item in store.iter_from(cf, &[])? {
            let (k, v) = item?;
            let row_seq = row_seq(cf, &k, &v);
            match expected.get(&(cf, k.to_vec())) {
                Some(want) if **want == *v => matched += 1,
                Some(want) => {
                    let seq = if cf.appends() { first_difference(want, &v) } else { row_seq };
                    let failure = Failure::Projection { cf: cf.name(), seq, what: "row differs from the log" };
                    return Ok(Report { events, failure: Some(failure) });
                }
                None => {
                    let failure =
                        Failure::Projection { cf: cf.name(), seq: row_seq, what: "row has no event in the log" };
                    return Ok(Report { events, failure: Some(failure) });
                }
            }
        }
        let want = expected.keys().filter(|(c, _)| *c == cf).count();
        if matched != want {
            let missing = expected
                .keys()
                .filter(|(c, _)| *c == cf)
                .find(|(c, k)| store.get(*c, k).ok().flatten().is_none())
                .and_then(|(c, k)| {
                    row_seq(*c, k, expected.get(&(*c, k.clone())).map(Vec::as_slice).unwrap_or_default())
                });
            let failure = Failure::Projection { cf: cf.name(), seq: missing, what: "row is missing" };
            return Ok(Report { events, failure: Some(failure) });
        }
    }
    Ok(Report { events, failure: None })
}
