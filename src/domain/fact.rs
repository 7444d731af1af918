//! The compact form of an event that the permission rules read: what, about whom, for which
//! purpose, channel and recipient, and when. Projections store facts per subject and per
//! contact point so a check never has to parse signed documents.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::contact::Channel;
use super::event::EventType;
use super::ids::{PurposeId, RecipientId, SubjectId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub seq: u64,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectId>,
    /// Blind index of the contact point the event was recorded against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<PurposeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientId>,
    #[serde(with = "micros")]
    pub occurred_at: DateTime<Utc>,
    #[serde(with = "micros")]
    pub recorded_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "micros::option")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Facts keep times as integer microseconds since the epoch: they are read on every check,
/// and an integer decodes far faster than an RFC 3339 string.
mod micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_micros())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let us = i64::deserialize(d)?;
        DateTime::from_timestamp_micros(us).ok_or_else(|| serde::de::Error::custom("time out of range"))
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_i64(t.timestamp_micros()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<i64>::deserialize(d)?
                .map(|us| {
                    DateTime::from_timestamp_micros(us).ok_or_else(|| serde::de::Error::custom("time out of range"))
                })
                .transpose()
        }
    }
}
