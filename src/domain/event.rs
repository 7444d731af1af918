//! The vocabulary of events: their types, how they were captured, who acted, the evidence and
//! the channel preferences. These are facts: once signed they never change meaning.

use serde::{Deserialize, Serialize};

use super::contact::Channel;
use super::ids::Token;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "consent.granted")]
    ConsentGranted,
    #[serde(rename = "consent.withdrawn")]
    ConsentWithdrawn,
    #[serde(rename = "objection.raised")]
    ObjectionRaised,
    #[serde(rename = "objection.lifted")]
    ObjectionLifted,
    #[serde(rename = "restriction.applied")]
    RestrictionApplied,
    #[serde(rename = "restriction.lifted")]
    RestrictionLifted,
    #[serde(rename = "preference.set")]
    PreferenceSet,
    #[serde(rename = "contact.linked")]
    ContactLinked,
    #[serde(rename = "contact.unlinked")]
    ContactUnlinked,
    #[serde(rename = "representative.authorised")]
    RepresentativeAuthorised,
    #[serde(rename = "representative.revoked")]
    RepresentativeRevoked,
    #[serde(rename = "subject.erased")]
    SubjectErased,
    /// The subject's relationship with the controller (a tenancy, a membership) began again
    /// after it had ended: the retention clock stops.
    #[serde(rename = "relationship.started")]
    RelationshipStarted,
    /// The subject's relationship with the controller ended (the tenancy ended): the clock of
    /// the purposes' retention rules starts.
    #[serde(rename = "relationship.ended")]
    RelationshipEnded,
    /// Recorded by the ledger itself when a purpose is defined or revised.
    #[serde(rename = "purpose.defined")]
    PurposeDefined,
    /// Recorded by the ledger itself when a controller publishes a notice (`PUT /v1/notices`).
    #[serde(rename = "notice.published")]
    NoticePublished,
    /// Recorded by the ledger itself when a controller registers (or revises) a downstream system.
    #[serde(rename = "downstream.registered")]
    DownstreamRegistered,
    /// Recorded by the ledger itself when a downstream system acknowledges, with its own
    /// signature, that it applied events.
    #[serde(rename = "downstream.acknowledged")]
    DownstreamAcknowledged,
    /// Recorded by the ledger itself, signed by the retiring key, naming the next key.
    #[serde(rename = "key.rotated")]
    KeyRotated,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConsentGranted => "consent.granted",
            EventType::ConsentWithdrawn => "consent.withdrawn",
            EventType::ObjectionRaised => "objection.raised",
            EventType::ObjectionLifted => "objection.lifted",
            EventType::RestrictionApplied => "restriction.applied",
            EventType::RestrictionLifted => "restriction.lifted",
            EventType::PreferenceSet => "preference.set",
            EventType::ContactLinked => "contact.linked",
            EventType::ContactUnlinked => "contact.unlinked",
            EventType::RepresentativeAuthorised => "representative.authorised",
            EventType::RepresentativeRevoked => "representative.revoked",
            EventType::SubjectErased => "subject.erased",
            EventType::RelationshipStarted => "relationship.started",
            EventType::RelationshipEnded => "relationship.ended",
            EventType::PurposeDefined => "purpose.defined",
            EventType::NoticePublished => "notice.published",
            EventType::DownstreamRegistered => "downstream.registered",
            EventType::DownstreamAcknowledged => "downstream.acknowledged",
            EventType::KeyRotated => "key.rotated",
        }
    }
}

/// How the event was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    WebForm,
    PaperForm,
    PhoneCall,
    FaceToFace,
    SmsKeyword,
    EmailLink,
    Import,
    Api,
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Subject,
    Staff,
    Representative,
    System,
}

/// The person or system that acted, by opaque id, and for a representative the authority
/// they act under (e.g. `lasting-power-of-attorney`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub kind: ActorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Token>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<Token>,
}

/// A reference to evidence kept elsewhere (a scanned form, a call recording) and its SHA-256,
/// so the evidence can later be shown to be the one recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    #[serde(rename = "ref")]
    pub reference: Token,
    /// Lower-case hex SHA-256 of the evidence document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Formats a person may ask to be written to in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Standard,
    LargePrint,
    Braille,
    Audio,
    EasyRead,
}

/// Channel preferences of a subject (`preference.set`). Absent fields are left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// A BCP 47 language tag such as `en`, `cy` or `pl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Token>,
}

/// The authorities a representative may act under (`representative.authority`): a lasting or
/// enduring power of attorney, a deputy appointed by the Court of Protection, a DWP appointee,
/// a parent or guardian of a child, the person's own written authorisation, an advocate.
pub const AUTHORITIES: [&str; 7] = [
    "lasting-power-of-attorney",
    "enduring-power-of-attorney",
    "deputy",
    "appointee",
    "parent-or-guardian",
    "written-authorisation",
    "advocate",
];

/// A representative authorised to act for a subject (`representative.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Representative {
    pub id: Token,
    pub authority: Token,
}

/// True when `s` is 64 lower-case hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
