//! Downstream systems: the systems a controller's data reaches (a mailing house, an SMS
//! contractor, a CRM), registered in the log with the purposes and channels they act on, the
//! time they have to apply a change, and the Ed25519 key they sign acknowledgements with; and
//! their acknowledgements, each a statement the system signed, which the ledger records.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::contact::Channel;
use super::error::DomainError;
use super::ids::{PurposeId, Token};
use super::limits::{MAX_NOTICE_URL, MAX_TITLE_LEN};

/// The deadline when a registration names none: 48 hours (what Gmail and Yahoo ask of a
/// one-click unsubscribe).
pub const DEFAULT_DEADLINE_SECONDS: u32 = 48 * 3600;
/// The longest deadline: 30 days.
pub const MAX_DEADLINE_SECONDS: u32 = 30 * 24 * 3600;
/// Most event ids one acknowledgement may name.
pub const MAX_ACK_EVENTS: usize = 1000;

fn default_deadline() -> u32 {
    DEFAULT_DEADLINE_SECONDS
}

/// A downstream system as the `downstream.registered` event signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownstreamSystem {
    pub id: Token,
    /// Its name as people know it (e.g. "Acme Mailing Ltd"): 1 to 200 characters.
    #[schema(max_length = 200)]
    pub name: String,
    /// The purposes it acts on (at least one).
    pub purposes: Vec<PurposeId>,
    /// The channels it acts on; empty means every channel of its purposes.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Seconds it has to apply a change (default 172800: 48 hours; at most 30 days).
    #[serde(default = "default_deadline")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub deadline_seconds: u32,
    /// The Ed25519 key it signs acknowledgements with, as a C2SP verifier key.
    pub vkey: String,
    /// Where the ledger pushes its events (Standard Webhooks: an https or http URL), if it
    /// wants them pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub webhook_url: Option<String>,
}

impl DownstreamSystem {
    /// Checks what serde cannot express; purposes and channels in a stable order. The key's
    /// form is the caller's to check (the domain parses no keys).
    pub fn validated(mut self) -> Result<Self, DomainError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > MAX_TITLE_LEN || name.chars().any(char::is_control) {
            return Err(DomainError::Title);
        }
        self.name = name.to_owned();
        self.purposes.sort();
        self.purposes.dedup();
        if self.purposes.is_empty() {
            return Err(DomainError::Needs("downstream.registered", "a purpose"));
        }
        self.channels.sort();
        self.channels.dedup();
        if self.deadline_seconds == 0 || self.deadline_seconds > MAX_DEADLINE_SECONDS {
            return Err(DomainError::Deadline);
        }
        if let Some(u) = &self.webhook_url {
            let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
            if !scheme_ok || u.len() > MAX_NOTICE_URL || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(DomainError::NoticeUrl);
            }
        }
        Ok(self)
    }

    /// Whether an event of `purpose` over `channel` (none: every channel) concerns it.
    pub fn acts_on(&self, purpose: &PurposeId, channel: Option<Channel>) -> bool {
        self.purposes.contains(purpose) && self.covers(channel)
    }

    /// Whether a change scoped to `channel` (none: every channel) reaches a channel it uses.
    pub fn covers(&self, channel: Option<Channel>) -> bool {
        match channel {
            Some(k) => self.channels.is_empty() || self.channels.contains(&k),
            None => true,
        }
    }
}

/// What a downstream system signs: that it applied the named events, or every event of its
/// feed up to a seq, at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckStatement {
    pub system: Token,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_ids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to_seq: Option<u64>,
    /// RFC 3339.
    pub applied_at: String,
}

/// An acknowledgement as the `downstream.acknowledged` event signs it: the system's statement
/// exactly as it sent it, and its Ed25519 signature over the statement's RFC 8785 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// `{"system", "event_ids"? | "up_to_seq"?, "applied_at"}` as the system signed it.
    #[schema(value_type = Object)]
    pub statement: serde_json::Value,
    /// Base64 Ed25519 signature over the RFC 8785 bytes of `statement`.
    pub signature: String,
    /// Lower-case hex C2SP key id of the system's key.
    pub key_id: String,
}
