//! The subject access bundle (see `docs/FORMAT.md`): one person's record as the ledger signs
//! it for a subject access request. Every event is its signed receipt with an RFC 6962
//! inclusion proof to one signed checkpoint; the notices the person was shown likewise; the
//! keys are listed; and the whole bundle is signed, so a change to any byte of its content is
//! caught. `audit::verify_access` checks one with nothing but this format.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{timestamp, Receipt};
use domain::{Channel, ContactKind, ControllerId, LawfulBasis, PurposeId, Reason, RecipientId, SubjectId, Token};

/// The `type` of a subject access bundle.
pub const ACCESS_TYPE: &str = "consent-ledger/subject-access";
pub const ACCESS_VERSION: u32 = 1;

/// An event of the person's record (or a notice they were shown), with its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvenEvent {
    pub receipt: Receipt,
    /// Set when the event was recorded against one of the person's addresses while it was
    /// linked to them, not against the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<ViaContact>,
    /// RFC 6962 audit path (lower-case hex), leaf to the root of the bundle's checkpoint.
    pub inclusion_proof: Vec<String>,
    /// For a withdrawal, objection, restriction or erasure: each downstream system it
    /// concerns, and the acknowledgement (a `downstream.acknowledged` event in the bundle's
    /// `acknowledgements`) in which the system said it applied it, if it has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<Told>,
}

/// A downstream system an event concerns, and whether it acknowledged applying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Told {
    pub system: Token,
    pub name: String,
    /// The id of the `downstream.acknowledged` event, when the system acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<Uuid>,
}

/// The kind of address an event was recorded against (the address itself is never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViaContact {
    pub contact_kind: ContactKind,
    /// The address is linked to someone else as well.
    pub shared: bool,
}

/// One of the person's addresses: its kind and when it was linked, never the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressPeriod {
    pub kind: ContactKind,
    #[serde(with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub linked_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "timestamp::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub unlinked_at: Option<DateTime<Utc>>,
    pub shared: bool,
}

/// What the rules answer for the person when the bundle was made, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionLine {
    pub purpose: PurposeId,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientId>,
    pub permitted: bool,
    pub reason: Reason,
    pub basis: LawfulBasis,
    pub decided_by: Vec<Uuid>,
}

/// One person's record, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessBundle {
    /// Always 1 for this layout.
    pub v: u32,
    /// Always `consent-ledger/subject-access`.
    #[serde(rename = "type")]
    pub kind: String,
    pub controller: ControllerId,
    pub subject: SubjectId,
    #[serde(with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: DateTime<Utc>,
    /// A C2SP signed checkpoint; every inclusion proof leads to its root.
    pub checkpoint: String,
    /// Every signing key, in C2SP verifier-key form.
    pub keys: Vec<String>,
    /// The person's events, oldest first: those recorded against the subject and those
    /// recorded against their addresses while linked to them.
    pub events: Vec<ProvenEvent>,
    /// The `notice.published` events of the notices their events name.
    pub notices: Vec<ProvenEvent>,
    /// The `downstream.acknowledged` events that `told` names.
    #[serde(default)]
    pub acknowledgements: Vec<ProvenEvent>,
    pub addresses: Vec<AddressPeriod>,
    pub permissions: Vec<PermissionLine>,
}

/// A bundle with the ledger's Ed25519 signature over its RFC 8785 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedAccessBundle {
    pub bundle: AccessBundle,
    /// Base64 Ed25519 signature over the RFC 8785 bytes of `bundle`.
    pub signature: String,
    /// Lower-case hex C2SP key id of the signing key.
    pub key_id: String,
}
