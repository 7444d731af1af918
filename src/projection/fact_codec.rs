//! The bytes of a facts row (store format 4): one record per fact, appended in seq order by
//! the store's merge operator. A record is its payload's length (LEB128) and the payload:
//!
//! seq (LEB128), id (16 bytes), type (length byte and name), a byte of flags naming the
//! members present (subject, contact, purpose, channel, recipient, expires_at), occurred_at
//! and recorded_at (zigzag LEB128 microseconds since the epoch), then each member present:
//! strings as length (LEB128) and UTF-8, the channel as length byte and name, expires_at as
//! zigzag LEB128 microseconds.
//!
//! A check decodes two rows, so the format is made to decode fast and take little room
//! (format 3 kept one JSON object per line, about three times the bytes).

use chrono::{DateTime, Utc};

use domain::{Channel, EventType, Fact, PurposeId, RecipientId, SubjectId};

use super::ProjectionError;

pub(crate) const SUBJECT: u8 = 1;
pub(crate) const CONTACT: u8 = 2;
pub(crate) const PURPOSE: u8 = 4;
pub(crate) const CHANNEL: u8 = 8;
pub(crate) const RECIPIENT: u8 = 16;
pub(crate) const EXPIRES: u8 = 32;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    let us = t.timestamp_micros();
    put_varint(out, ((us << 1) ^ (us >> 63)) as u64);
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

/// The byte of flags naming the members present: the bits of those whose condition holds.
pub(crate) fn flag_byte(members: &[(bool, u8)]) -> u8 {
    members.iter().filter(|(present, _)| *present).fold(0, |acc, (_, bit)| acc | bit)
}

/// The bytes that name `kind` inside a record (to find rows that may hold it).
pub fn kind_marker(kind: EventType) -> Vec<u8> {
    let mut out = Vec::new();
    put_name(&mut out, kind.as_str());
    out
}

/// Appends the record of `f` to `out`.
pub fn encode_fact(f: &Fact, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(128);
    put_varint(&mut p, f.seq);
    p.extend_from_slice(f.id.as_bytes());
    put_name(&mut p, f.kind.as_str());
    let flags = flag_byte(&[
        (f.subject.is_some(), SUBJECT),
        (f.contact.is_some(), CONTACT),
        (f.purpose.is_some(), PURPOSE),
        (f.channel.is_some(), CHANNEL),
        (f.recipient.is_some(), RECIPIENT),
        (f.expires_at.is_some(), EXPIRES),
    ]);
    p.push(flags);
    put_time(&mut p, &f.occurred_at);
    put_time(&mut p, &f.recorded_at);
    if let Some(s) = &f.subject {
        put_str(&mut p, s.as_str());
    }
    if let Some(c) = &f.contact {
        put_str(&mut p, c);
    }
    if let Some(pu) = &f.purpose {
        put_str(&mut p, pu.as_str());
    }
    if let Some(ch) = f.channel {
        put_name(&mut p, ch.as_str());
    }
    if let Some(r) = &f.recipient {
        put_str(&mut p, r.as_str());
    }
    if let Some(t) = &f.expires_at {
        put_time(&mut p, t);
    }
    put_varint(out, p.len() as u64);
    out.extend_from_slice(&p);
}

/// The time `us` microseconds after the epoch (corrupt beyond chrono's range).
pub(crate) fn time(us: i64) -> Result<DateTime<Utc>, ProjectionError> {
    DateTime::from_timestamp_micros(us).ok_or(ProjectionError::Corrupt)
}

/// A reader over a record's or a row's bytes; every read refuses bytes that end early.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn byte(&mut self) -> Result<u8, ProjectionError> {
        self.take(1)?.first().copied().ok_or(ProjectionError::Corrupt)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ProjectionError> {
        if self.0.len() < n {
            return Err(ProjectionError::Corrupt);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, ProjectionError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ProjectionError::Corrupt)
    }

    pub(crate) fn time(&mut self) -> Result<DateTime<Utc>, ProjectionError> {
        time(self.micros()?)
    }

    /// A time as its microseconds since the epoch, not yet made a date.
    pub(crate) fn micros(&mut self) -> Result<i64, ProjectionError> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// Bytes behind a LEB128 length: a record's payload, or a string's.
    fn record(&mut self) -> Result<&'a [u8], ProjectionError> {
        let n = usize::try_from(self.varint()?).map_err(|_| ProjectionError::Corrupt)?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, ProjectionError> {
        std::str::from_utf8(self.record()?).map_err(|_| ProjectionError::Corrupt)
    }

    fn name(&mut self) -> Result<&'a [u8], ProjectionError> {
        let n = usize::from(self.byte()?);
        self.take(n)
    }
}

fn decode_record(payload: &[u8]) -> Result<Fact, ProjectionError> {
    let bad = |_| ProjectionError::Corrupt;
    let mut r = Reader(payload);
    let seq = r.varint()?;
    let id = uuid::Uuid::from_slice(r.take(16)?).map_err(|_| ProjectionError::Corrupt)?;
    let name = r.name()?;
    let kind = EventType::ALL.into_iter().find(|t| t.as_str().as_bytes() == name).ok_or(ProjectionError::Corrupt)?;
    let flags = r.byte()?;
    let occurred_at = r.time()?;
    let recorded_at = r.time()?;
    let has = |bit: u8| flags & bit != 0;
    let subject = if has(SUBJECT) { Some(SubjectId::parse(r.str()?).map_err(bad)?) } else { None };
    let contact = if has(CONTACT) { Some(r.str()?.to_owned()) } else { None };
    let purpose = if has(PURPOSE) { Some(PurposeId::parse(r.str()?).map_err(bad)?) } else { None };
    let channel = if has(CHANNEL) {
        let name = r.name()?;
        Some(Channel::ALL.into_iter().find(|c| c.as_str().as_bytes() == name).ok_or(ProjectionError::Corrupt)?)
    } else {
        None
    };
    let recipient = if has(RECIPIENT) { Some(RecipientId::parse(r.str()?).map_err(bad)?) } else { None };
    let expires_at = if has(EXPIRES) { Some(r.time()?) } else { None };
    if !r.0.is_empty() {
        return Err(ProjectionError::Corrupt);
    }
    Ok(Fact { seq, id, kind, subject, contact, purpose, channel, recipient, occurred_at, recorded_at, expires_at })
}

/// The records of a row, each with its length prefix (so two rows compare record by record).
pub fn fact_records(row: &[u8]) -> Result<Vec<&[u8]>, ProjectionError> {
    let mut out = Vec::new();
    let mut r = Reader(row);
    while !r.0.is_empty() {
        let start = r.0;
        r.record()?;
        out.push(&start[..start.len() - r.0.len()]);
    }
    Ok(out)
}

/// Calls `f` with each record of a row (with its length prefix, as [`fact_records`] gives it)
/// and the seq it names, without decoding the rest of the record.
pub fn for_each_record(row: &[u8], mut f: impl FnMut(&[u8], u64)) -> Result<(), ProjectionError> {
    let mut r = Reader(row);
    while !r.0.is_empty() {
        let start = r.0;
        let seq = Reader(r.record()?).varint()?;
        f(&start[..start.len() - r.0.len()], seq);
    }
    Ok(())
}

/// The facts of a facts row, in seq order.
pub fn decode_facts(row: &[u8]) -> Result<Vec<Fact>, ProjectionError> {
    // Counted first, so the decoded facts (which a cache may keep) take no spare room.
    let mut count = 0;
    let mut r = Reader(row);
    while !r.0.is_empty() {
        r.record()?;
        count += 1;
    }
    let mut out = Vec::with_capacity(count);
    let mut r = Reader(row);
    while !r.0.is_empty() {
        out.push(decode_record(r.record()?)?);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn any_fact() -> impl Strategy<Value = Fact> {
        (
            any::<u64>(),
            any::<u128>(),
            0..EventType::ALL.len(),
            proptest::option::of("[A-Za-z0-9][A-Za-z0-9._-]{0,40}"),
            proptest::option::of("[A-Za-z0-9_-]{43}"),
            proptest::option::of("[a-z][a-z0-9-]{0,20}"),
            proptest::option::of(0..Channel::ALL.len()),
            proptest::option::of("[a-z][a-z0-9-]{0,20}"),
            (-62_000_000_000_000_000i64..250_000_000_000_000_000, -1_000_000i64..4_000_000_000_000_000),
            proptest::option::of(0i64..4_000_000_000_000_000),
        )
            .prop_map(|(seq, id, kind, subject, contact, purpose, channel, recipient, (occ, rec), exp)| Fact {
                seq,
                id: uuid::Uuid::from_u128(id),
                kind: EventType::ALL[kind],
                subject: subject.map(|s| SubjectId::parse(s).unwrap()),
                contact,
                purpose: purpose.map(|p| PurposeId::parse(p).unwrap()),
                channel: channel.map(|c| Channel::ALL[c]),
                recipient: recipient.map(|r| RecipientId::parse(r).unwrap()),
                occurred_at: DateTime::from_timestamp_micros(occ).unwrap(),
                recorded_at: DateTime::from_timestamp_micros(rec).unwrap(),
                expires_at: exp.map(|e| DateTime::from_timestamp_micros(e).unwrap()),
            })
    }

    proptest! {
        #[test]
        fn a_row_of_facts_decodes_to_the_facts_appended(facts in proptest::collection::vec(any_fact(), 0..8)) {
            let mut row = Vec::new();
            for f in &facts {
                encode_fact(f, &mut row);
            }
            prop_assert_eq!(decode_facts(&row).unwrap(), facts.clone());
            prop_assert_eq!(fact_records(&row).unwrap().len(), facts.len());
            // Each record with the seq of its fact, read without decoding the rest.
            let mut each = Vec::new();
            for_each_record(&row, |record, seq| each.push((record.to_vec(), seq))).unwrap();
            let records: Vec<Vec<u8>> = fact_records(&row).unwrap().iter().map(|r| r.to_vec()).collect();
            prop_assert_eq!(each.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(), records);
            prop_assert_eq!(each.iter().map(|(_, s)| *s).collect::<Vec<_>>(), facts.iter().map(|f| f.seq).collect::<Vec<_>>());
            // A row cut anywhere inside a record does not decode.
            if !row.is_empty() {
                let ends: Vec<usize> = fact_records(&row).unwrap().iter()
                    .scan(0, |at, r| { *at += r.len(); Some(*at) }).collect();
                for cut in 1..row.len() {
                    if !ends.contains(&cut) {
                        prop_assert!(decode_facts(&row[..cut]).is_err(), "cut at {}", cut);
                        prop_assert!(for_each_record(&row[..cut], |_, _| ()).is_err(), "cut at {}", cut);
                    }
                }
            }
        }
    }

    #[test]
    fn a_fact_takes_a_third_of_its_json() {
        let f: Fact = serde_json::from_str(
            r#"{"seq":123456,"id":"0190a0a0-0000-7000-8000-000000000001","type":"consent.granted",
                "subject":"T-0012345","contact":"x9Rp0Lw5S4u8K3yJmDqH1aTzVcBnE7gF2iOkX6sYhQ0",
                "purpose":"newsletter","channel":"email","occurred_at":1700000000000000,
                "recorded_at":1764540000000000}"#,
        )
        .unwrap();
        let (mut binary, json) = (Vec::new(), serde_json::to_vec(&f).unwrap());
        encode_fact(&f, &mut binary);
        assert!(binary.len() * 2 < json.len(), "{} bytes against {} of JSON", binary.len(), json.len());
        assert_eq!(decode_facts(&binary).unwrap(), vec![f]);
        assert!(decode_facts(b"{}\n").is_err(), "a JSON line of format 3 is not taken for a record");
    }
}
