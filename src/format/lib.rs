//! The stored, signed event format (version 1) and the receipt.
//!
//! An event document is serialised with RFC 8785; those canonical bytes are what is signed
//! (Ed25519), what is hashed into the RFC 6962 leaf hash SHA-256(0x00 ‖ bytes), and what is
//! stored. The document never holds a name, a plain address or free text: subjects are opaque
//! ids and contact points appear only as blind indexes. Once written, a field never changes
//! meaning; a new meaning gets a new format version `v`.

pub mod access;
pub mod export;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use domain::{
    Acknowledgement, Actor, Channel, ContactKind, ControllerId, DownstreamSystem, EventType, Evidence, Fact,
    LawfulBasis, Method, Notice, Preference, PurposeDefinition, PurposeId, RecipientId, Representative, SubjectId,
    Token,
};

/// The format version this code writes.
pub const FORMAT_VERSION: u32 = 1;

/// Timestamps are RFC 3339 in UTC with exactly six fractional digits, so their canonical
/// text is fixed.
pub mod timestamp {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&format(t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| {
                    DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
                })
                .transpose()
        }
    }
}

/// A UUID derived from `input` (the first 16 bytes of its SHA-256, as a version 8 UUID), for
/// events whose retries must be recognised: a one-click unsubscribe, a provider's SMS id.
pub fn derived_id(input: &[u8]) -> Uuid {
    let digest = Sha256::digest(input);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The short reference people are shown for an event instead of its UUID: the first 40 bits
/// of SHA-256 of the id's 16 bytes in Crockford base32 (no I, L, O, U), as `XXXX-XXXX`. Anyone
/// holding the receipt can recompute it; the UUID stays the event's identifier.
pub fn short_ref(id: &Uuid) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let digest = Sha256::digest(id.as_bytes());
    let bits = digest[..5].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut out = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize]));
    }
    out
}

/// Truncates a time to whole microseconds, the precision of the log.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// A contact point as the log holds it: its kind and blind index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRef {
    pub kind: ContactKind,
    /// Base64url (no padding) HMAC-SHA-256 blind index of the normalised address.
    pub index: String,
}

/// One signed event, format version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDoc {
    /// Format version; always 1 for this layout.
    pub v: u32,
    pub id: Uuid,
    /// Position in the log, from 1; the Merkle leaf index is `seq - 1`.
    pub seq: u64,
    /// The controller the event belongs to; absent only on the ledger's own `key.rotated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerId>,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<PurposeId>,
    /// Channel scope; absent means every channel of the purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientId>,
    /// Lawful basis of the purpose when the event was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LawfulBasis>,
    #[serde(with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: DateTime<Utc>,
    #[serde(with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
    pub method: Method,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_version: Option<Token>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "timestamp::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<Preference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representative: Option<Representative>,
    /// The definition, for `purpose.defined` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<PurposeDefinition>,
    /// The notice, for `notice.published` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Notice>,
    /// The system, for `downstream.registered` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<DownstreamSystem>,
    /// The system's signed statement, for `downstream.acknowledged` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<Acknowledgement>,
    /// The next signing key in C2SP verifier-key form, for `key.rotated` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_key: Option<String>,
    /// Who recorded it: `apikey:` and the API key's id, or `tenant-page`, `unsubscribe-link`,
    /// `sms-provider`, `command-line`. Absent on events recorded before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_by: Option<Token>,
}

impl EventDoc {
    /// An event the ledger records itself (a purpose definition, a key rotation): acted by the
    /// system through the API, everything optional left out. Seq and times are set on append.
    pub fn by_ledger(controller: Option<ControllerId>, kind: EventType, now: DateTime<Utc>) -> Self {
        let now = to_micros(now);
        EventDoc {
            v: FORMAT_VERSION,
            id: Uuid::now_v7(),
            seq: 0,
            controller,
            kind,
            subject: None,
            contact: None,
            purpose: None,
            channel: None,
            recipient: None,
            basis: None,
            occurred_at: now,
            recorded_at: now,
            method: Method::Api,
            actor: Actor { kind: domain::ActorKind::System, id: None, authority: None },
            evidence: None,
            notice_version: None,
            expires_at: None,
            preference: None,
            representative: None,
            definition: None,
            notice: None,
            downstream: None,
            acknowledgement: None,
            next_key: None,
            recorded_by: None,
        }
    }

    /// The compact fact the permission rules read.
    pub fn fact(&self) -> Fact {
        Fact {
            seq: self.seq,
            id: self.id,
            kind: self.kind,
            subject: self.subject.clone(),
            contact: self.contact.as_ref().map(|c| c.index.clone()),
            purpose: self.purpose.clone(),
            channel: self.channel,
            recipient: self.recipient.clone(),
            occurred_at: self.occurred_at,
            recorded_at: self.recorded_at,
            expires_at: self.expires_at,
        }
    }
}

/// The `type` of a signed decision document.
pub const DECISION_TYPE: &str = "check.decision";

/// A signed answer to a check: what was asked, the answer, and the log size it was decided
/// at. Signed with the ledger key over its RFC 8785 bytes, like an event, but never a leaf
/// of the log (its `type` is no event type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionDoc {
    pub v: u32,
    /// Always `check.decision`.
    #[serde(rename = "type")]
    pub kind: String,
    pub controller: ControllerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactRef>,
    pub purpose: PurposeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientId>,
    pub permitted: bool,
    pub reason: domain::Reason,
    pub basis: LawfulBasis,
    pub decided_by: Vec<Uuid>,
    #[serde(with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub as_of: DateTime<Utc>,
    /// The log held at least this many events when the answer was decided.
    pub log_size: u64,
    #[serde(with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub decided_at: DateTime<Utc>,
}

/// A decision document with its Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedDecision {
    pub decision: DecisionDoc,
    /// Base64 Ed25519 signature over the RFC 8785 bytes of `decision`.
    pub signature: String,
    /// Lower-case hex C2SP key id of the signing key.
    pub key_id: String,
}

/// RFC 6962 leaf hash: SHA-256(0x00 ‖ leaf bytes).
pub fn leaf_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

/// An event as stored: the canonical bytes with their signature, signing key id and leaf hash.
///
/// On disk: `0x01 ‖ key id (4) ‖ signature (64) ‖ leaf hash (32) ‖ canonical bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub key_id: [u8; 4],
    pub signature: [u8; 64],
    pub leaf_hash: [u8; 32],
    pub bytes: Vec<u8>,
}

const STORED_TAG: u8 = 0x01;
const STORED_HEADER: usize = 1 + 4 + 64 + 32;

#[derive(Debug, thiserror::Error)]
#[error("stored event record is malformed")]
pub struct MalformedRecord;

impl StoredEvent {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STORED_HEADER + self.bytes.len());
        out.push(STORED_TAG);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.leaf_hash);
        out.extend_from_slice(&self.bytes);
        out
    }

    pub fn decode(raw: &[u8]) -> Result<Self, MalformedRecord> {
        if raw.len() < STORED_HEADER || raw[0] != STORED_TAG {
            return Err(MalformedRecord);
        }
        let key_id = raw[1..5].try_into().map_err(|_| MalformedRecord)?;
        let signature = raw[5..69].try_into().map_err(|_| MalformedRecord)?;
        let leaf_hash = raw[69..101].try_into().map_err(|_| MalformedRecord)?;
        Ok(Self { key_id, signature, leaf_hash, bytes: raw[STORED_HEADER..].to_vec() })
    }

    pub fn doc(&self) -> Result<EventDoc, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// The receipt a client keeps.
    pub fn receipt(&self, doc: EventDoc) -> Receipt {
        Receipt {
            seq: doc.seq,
            leaf_index: doc.seq.saturating_sub(1),
            leaf_hash: hex::encode(self.leaf_hash),
            signature: B64.encode(self.signature),
            key_id: hex::encode(self.key_id),
            event: doc,
        }
    }
}

/// What a person or auditor keeps: the event as signed, where it sits in the log and the
/// signature over its RFC 8785 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The signed event. Its RFC 8785 canonical form is the signed message.
    pub event: EventDoc,
    pub seq: u64,
    /// Zero-based index of the event's leaf in the RFC 6962 Merkle tree.
    pub leaf_index: u64,
    /// Lower-case hex SHA-256(0x00 ‖ canonical event bytes).
    pub leaf_hash: String,
    /// Base64 Ed25519 signature over the canonical event bytes.
    pub signature: String,
    /// Lower-case hex C2SP key id of the signing key (see `GET /v1/keys`).
    pub key_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_reference_is_eight_unambiguous_characters_fixed_by_the_id() {
        let id = Uuid::parse_str("01a22c5a-d9b2-7560-9cf3-2b13e0e9ea66").unwrap();
        let r = short_ref(&id);
        assert_eq!(r.len(), 9);
        assert_eq!(&r[4..5], "-");
        assert!(r.chars().filter(|c| *c != '-').all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
        assert_eq!(r, short_ref(&id));
        // Computed independently (Python's hashlib) from the published rule.
        assert_eq!(r, "G270-EZCG");
        assert_ne!(r, short_ref(&Uuid::from_u128(id.as_u128() ^ 1)));
    }
}
