//! The facts cache's form of a row: one target's facts, encoded for room rather than for
//! appending. Against the store's records (`fact_codec`): one count before the records
//! instead of a length before each, the type and the channel as their place in
//! `EventType::ALL` and `Channel::ALL` instead of their names, and a subject or contact point
//! that is the row's own target (nearly every fact of a row names it) left out, with a flag
//! saying so. A tenant's row takes about two thirds of its stored bytes.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use domain::{Channel, EventType, Fact, PurposeId, RecipientId, SubjectId};

use super::fact_codec::{
    flag_byte, put_str, put_varint, Reader, CHANNEL, CONTACT, EXPIRES, PURPOSE, RECIPIENT, SUBJECT,
};
use super::ProjectionError;

/// The subject is the row's own (left out).
const OWN_SUBJECT: u8 = 64;
/// The contact point is the row's own (left out).
const OWN_CONTACT: u8 = 128;

/// Whose row it is, as its key says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Own<'a> {
    Subject(&'a str),
    Contact(&'a str),
    /// Not a facts row's key: nothing is left out.
    Unknown,
}

impl<'a> Own<'a> {
    /// Reads a facts row's key, `controller 0x00 tag target 0x00` (`facts_key`).
    pub fn of_key(key: &'a [u8]) -> Self {
        let Some(at) = key.iter().position(|b| *b == 0) else { return Own::Unknown };
        let rest = &key[at + 1..];
        let (Some((tag, id)), Some(0)) = (rest.split_first(), rest.last()) else { return Own::Unknown };
        let Ok(id) = std::str::from_utf8(&id[..id.len().saturating_sub(1)]) else { return Own::Unknown };
        match tag {
            b's' => Own::Subject(id),
            b'c' => Own::Contact(id),
            _ => Own::Unknown,
        }
    }
}

/// The cache's bytes of `facts`, the row of `own`.
pub fn encode(facts: &[Fact], own: Own<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 64 * facts.len());
    put_varint(&mut out, facts.len() as u64);
    for f in facts {
        let subject = f.subject.as_ref().map(SubjectId::as_str);
        let own_subject = matches!((own, subject), (Own::Subject(o), Some(s)) if o == s);
        let own_contact = matches!((own, f.contact.as_deref()), (Own::Contact(o), Some(c)) if o == c);
        let flags = flag_byte(&[
            (subject.is_some() && !own_subject, SUBJECT),
            (own_subject, OWN_SUBJECT),
            (f.contact.is_some() && !own_contact, CONTACT),
            (own_contact, OWN_CONTACT),
            (f.purpose.is_some(), PURPOSE),
            (f.channel.is_some(), CHANNEL),
            (f.recipient.is_some(), RECIPIENT),
            (f.expires_at.is_some(), EXPIRES),
        ]);
        put_varint(&mut out, f.seq);
        out.extend_from_slice(f.id.as_bytes());
        out.push(EventType::ALL.iter().position(|t| *t == f.kind).unwrap_or(usize::MAX) as u8);
        out.push(flags);
        put_micros(&mut out, &f.occurred_at);
        put_micros(&mut out, &f.recorded_at);
        if let (Some(s), false) = (subject, own_subject) {
            put_str(&mut out, s);
        }
        if let (Some(c), false) = (&f.contact, own_contact) {
            put_str(&mut out, c);
        }
        if let Some(p) = &f.purpose {
            put_str(&mut out, p.as_str());
        }
        if let Some(ch) = f.channel {
            out.push(Channel::ALL.iter().position(|c| *c == ch).unwrap_or(usize::MAX) as u8);
        }
        if let Some(r) = &f.recipient {
            put_str(&mut out, r.as_str());
        }
        if let Some(t) = &f.expires_at {
            put_micros(&mut out, t);
        }
    }
    out
}

/// A time as its microseconds since the epoch in eight bytes, little-endian: no larger than
/// the store's LEB128 form of any time from 1979 to past the year 3000 (eight bytes too), and
/// read with one load rather than a byte at a time.
fn put_micros(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    out.extend_from_slice(&t.timestamp_micros().to_le_bytes());
}

/// The time [`put_micros`] wrote, as its microseconds.
fn micros(r: &mut Reader<'_>) -> Result<i64, ProjectionError> {
    let bytes: [u8; 8] = r.take(8)?.try_into().map_err(|_| ProjectionError::Corrupt)?;
    Ok(i64::from_le_bytes(bytes))
}

/// Microseconds made times, the last day's date kept: a row's times mostly fall on few days
/// (an event's occurred and recorded times nearly always on one), and the calendar sum that
/// makes a day number a date is most of a conversion's cost.
#[derive(Default)]
struct Dates {
    last: Option<(i64, NaiveDate)>,
}

impl Dates {
    const DAY: i64 = 86_400_000_000;

    /// What `DateTime::from_timestamp_micros(us)` gives, or `Corrupt` where it gives none.
    fn time(&mut self, us: i64) -> Result<DateTime<Utc>, ProjectionError> {
        let (day, within) = (us.div_euclid(Self::DAY), us.rem_euclid(Self::DAY));
        let date = match self.last {
            Some((d, date)) if d == day => date,
            _ => {
                // The day of the epoch counted from 1 January of year 1 (chrono's reckoning).
                let date = i32::try_from(day + 719_163)
                    .ok()
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .ok_or(ProjectionError::Corrupt)?;
                self.last = Some((day, date));
                date
            }
        };
        let secs = u32::try_from(within / 1_000_000).map_err(|_| ProjectionError::Corrupt)?;
        let nanos = u32::try_from(within % 1_000_000 * 1_000).map_err(|_| ProjectionError::Corrupt)?;
        let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos).ok_or(ProjectionError::Corrupt)?;
        Ok(NaiveDateTime::new(date, time).and_utc())
    }
}

/// Every fact of the cache's bytes of `own`'s row (reads go through [`decode_where`]).
#[cfg(test)]
pub fn decode(bytes: &[u8], own: Own<'_>) -> Result<Vec<Fact>, ProjectionError> {
    decode_where(bytes, own, |_, _| true)
}

/// [`decode`], keeping only the facts `keep` takes by their type and purpose: the others are
/// read past (their bytes checked as far as to find the next), never built.
pub fn decode_where(
    bytes: &[u8],
    own: Own<'_>,
    keep: impl Fn(EventType, Option<&str>) -> bool,
) -> Result<Vec<Fact>, ProjectionError> {
    let bad = |_| ProjectionError::Corrupt;
    let mut r = Reader(bytes);
    let n = usize::try_from(r.varint()?).map_err(|_| ProjectionError::Corrupt)?;
    // A record takes at least 35 bytes: a count past what the bytes can hold is corrupt.
    if n > bytes.len() / 35 {
        return Err(ProjectionError::Corrupt);
    }
    // The row's own subject, parsed once for all the facts that name it.
    let mut own_subject: Option<SubjectId> = None;
    let mut dates = Dates::default();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let seq = r.varint()?;
        let id = r.take(16)?;
        let at = |list_len: usize, i: u8| (usize::from(i) < list_len).then_some(usize::from(i));
        let kind = at(EventType::ALL.len(), r.byte()?).map(|i| EventType::ALL[i]).ok_or(ProjectionError::Corrupt)?;
        let flags = r.byte()?;
        let has = |bit: u8| flags & bit != 0;
        let occurred_at = micros(&mut r)?;
        let recorded_at = micros(&mut r)?;
        let subject = match (has(SUBJECT), has(OWN_SUBJECT), own) {
            (false, false, _) => None,
            (true, false, _) => Some(r.str()?),
            (false, true, Own::Subject(s)) => Some(s),
            _ => return Err(ProjectionError::Corrupt),
        };
        let contact = match (has(CONTACT), has(OWN_CONTACT), own) {
            (false, false, _) => None,
            (true, false, _) => Some(r.str()?),
            (false, true, Own::Contact(c)) => Some(c),
            _ => return Err(ProjectionError::Corrupt),
        };
        let purpose = if has(PURPOSE) { Some(r.str()?) } else { None };
        let channel = if has(CHANNEL) {
            Some(at(Channel::ALL.len(), r.byte()?).map(|i| Channel::ALL[i]).ok_or(ProjectionError::Corrupt)?)
        } else {
            None
        };
        let recipient = if has(RECIPIENT) { Some(r.str()?) } else { None };
        let expires_at = if has(EXPIRES) { Some(micros(&mut r)?) } else { None };
        if !keep(kind, purpose) {
            continue;
        }
        let subject = match subject {
            None => None,
            Some(s) if has(OWN_SUBJECT) => Some(match &own_subject {
                Some(parsed) => parsed.clone(),
                None => own_subject.insert(SubjectId::parse(s).map_err(bad)?).clone(),
            }),
            Some(s) => Some(SubjectId::parse(s).map_err(bad)?),
        };
        out.push(Fact {
            seq,
            id: uuid::Uuid::from_slice(id).map_err(|_| ProjectionError::Corrupt)?,
            kind,
            subject,
            contact: contact.map(str::to_owned),
            purpose: purpose.map(PurposeId::parse).transpose().map_err(bad)?,
            channel,
            recipient: recipient.map(RecipientId::parse).transpose().map_err(bad)?,
            occurred_at: dates.time(occurred_at)?,
            recorded_at: dates.time(recorded_at)?,
            expires_at: expires_at.map(|t| dates.time(t)).transpose()?,
        });
    }
    if !r.0.is_empty() {
        return Err(ProjectionError::Corrupt);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact_codec::{encode_fact, tests::any_fact};
    use proptest::prelude::*;

    /// Whose row: nobody's, or a subject or contact point named by some of the facts (or by none).
    fn any_own(facts: &[Fact], pick: usize, kind: u8) -> Own<'_> {
        let subjects: Vec<&str> = facts.iter().filter_map(|f| f.subject.as_ref().map(SubjectId::as_str)).collect();
        let contacts: Vec<&str> = facts.iter().filter_map(|f| f.contact.as_deref()).collect();
        match kind % 4 {
            0 => Own::Unknown,
            1 if !subjects.is_empty() => Own::Subject(subjects[pick % subjects.len()]),
            2 if !contacts.is_empty() => Own::Contact(contacts[pick % contacts.len()]),
            1 => Own::Subject("someone-else"),
            _ => Own::Contact("another-address"),
        }
    }

    proptest! {
        /// A run of conversions (days repeating, as a row's do) gives what chrono gives for
        /// each, whatever the day before, refusing exactly the times chrono cannot make.
        #[test]
        fn times_made_through_the_last_date_are_chronos(
            runs in proptest::collection::vec(
                prop_oneof![
                    any::<i64>(),
                    -100_000_000_000_000_000i64..300_000_000_000_000_000,
                    1_700_000_000_000_000i64..1_700_000_000_000_000 + 3 * 86_400_000_000,
                ],
                1..12,
            ),
        ) {
            let mut dates = Dates::default();
            for us in runs {
                let ours = dates.time(us).ok();
                prop_assert_eq!(ours, chrono::DateTime::from_timestamp_micros(us), "{} us", us);
            }
        }

        #[test]
        fn cached_facts_decode_to_the_facts_and_take_no_more_than_the_stored_row(
            facts in proptest::collection::vec(any_fact(), 0..8), pick in any::<usize>(), kind in any::<u8>(),
        ) {
            let own = any_own(&facts, pick, kind);
            let bytes = encode(&facts, own);
            prop_assert_eq!(decode(&bytes, own).unwrap(), facts.clone());
            let mut stored = Vec::new();
            for f in &facts {
                encode_fact(f, &mut stored);
            }
            // Times take eight bytes here, one to nine there: eight or more for any since 1979.
            let varint_len = |t: &chrono::DateTime<chrono::Utc>| {
                let mut b = Vec::new();
                crate::fact_codec::put_time(&mut b, t);
                b.len()
            };
            let times_over: usize = facts
                .iter()
                .flat_map(|f| [Some(&f.occurred_at), Some(&f.recorded_at), f.expires_at.as_ref()].into_iter().flatten())
                .map(|t| 8usize.saturating_sub(varint_len(t)))
                .sum();
            prop_assert!(
                bytes.len() <= stored.len() + 1 + times_over,
                "{} cached bytes, {} stored, {} more for times", bytes.len(), stored.len(), times_over
            );
            // Cut anywhere, or read as another target's row where something was left out, the
            // bytes do not decode: a cache entry never answers facts that were not put in.
            for cut in 0..bytes.len() {
                prop_assert!(decode(&bytes[..cut], own).is_err(), "cut at {}", cut);
            }
            let left_out = facts.iter().any(|f| match own {
                Own::Subject(s) => f.subject.as_ref().is_some_and(|x| x.as_str() == s),
                Own::Contact(c) => f.contact.as_deref() == Some(c),
                Own::Unknown => false,
            });
            if left_out {
                prop_assert!(decode(&bytes, Own::Unknown).is_err());
            }
        }

        /// Decoding only the facts a filter keeps gives the facts it keeps, in order.
        #[test]
        fn a_filtered_decode_keeps_what_the_filter_keeps(
            facts in proptest::collection::vec(any_fact(), 0..8), pick in any::<usize>(), kind in any::<u8>(),
        ) {
            let own = any_own(&facts, pick, kind);
            let bytes = encode(&facts, own);
            // A purpose some facts name, or one none does.
            let named: Vec<&PurposeId> = facts.iter().filter_map(|f| f.purpose.as_ref()).collect();
            let asked = named.get(pick % 3).map_or_else(|| PurposeId::parse("none-named").unwrap(), |p| (*p).clone());
            let keep = |k: EventType, p: Option<&str>| domain::bears_on(k, p, &asked);
            let want: Vec<Fact> =
                facts.iter().filter(|f| keep(f.kind, f.purpose.as_ref().map(PurposeId::as_str))).cloned().collect();
            prop_assert_eq!(decode_where(&bytes, own, keep).unwrap(), want);
        }
    }

    #[test]
    fn a_key_names_its_own_target() {
        let c = domain::ControllerId::parse("council").unwrap();
        let s = SubjectId::parse("T-1").unwrap();
        let subject_key = crate::facts_key(&c, crate::TargetKey::Subject(&s));
        assert_eq!(Own::of_key(&subject_key), Own::Subject("T-1"));
        let contact_key = crate::facts_key(&c, crate::TargetKey::Contact("abc_DEF-1"));
        assert_eq!(Own::of_key(&contact_key), Own::Contact("abc_DEF-1"));
        for other in [&b""[..], b"council", b"council\0", b"council\0x1\0", b"council\0sT-1"] {
            assert_eq!(Own::of_key(other), Own::Unknown, "{other:?}");
        }
    }

    #[test]
    fn a_tenants_row_takes_two_thirds_of_its_stored_bytes() {
        let fact = |seq: u64, kind: &str, purpose: Option<&str>| -> Fact {
            serde_json::from_value(serde_json::json!({
                "seq": seq, "id": uuid::Uuid::from_u128(u128::from(seq)), "type": kind,
                "subject": "tenant-123456", "purpose": purpose, "channel": purpose.map(|_| "email"),
                "occurred_at": 1_700_000_000_000_000i64, "recorded_at": 1_764_540_000_000_000i64,
            }))
            .unwrap()
        };
        let mut facts = vec![fact(10, "contact.linked", None)];
        facts[0].contact = Some("x9Rp0Lw5S4u8K3yJmDqH1aTzVcBnE7gF2iOkX6sYhQ0".into());
        for (i, p) in ["newsletter", "tenant-survey", "community-events"].into_iter().enumerate() {
            facts.push(fact(11 + i as u64, "consent.granted", Some(p)));
        }
        let mut stored = Vec::new();
        for f in &facts {
            encode_fact(f, &mut stored);
        }
        let cached = encode(&facts, Own::Subject("tenant-123456"));
        assert!(3 * cached.len() <= 2 * stored.len(), "{} cached bytes, {} stored", cached.len(), stored.len());
        assert_eq!(decode(&cached, Own::Subject("tenant-123456")).unwrap(), facts);
    }
}
