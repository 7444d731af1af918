//! The domain: identifiers, contact points, purposes, the event vocabulary, facts and the
//! permission rules. No IO, no clock, no randomness: time and ids are passed in.

pub mod contact;
pub mod downstream;
pub mod error;
pub mod event;
pub mod fact;
pub mod ids;
pub mod limits;
pub mod notice;
pub mod purpose;
pub mod rules;
pub mod shape;

pub use contact::{Channel, ContactKind, ContactPoint};
pub use downstream::{AckStatement, Acknowledgement, DownstreamSystem};
pub use error::DomainError;
pub use event::{Actor, ActorKind, EventType, Evidence, Format, Method, Preference, Representative, AUTHORITIES};
pub use fact::Fact;
pub use ids::{ControllerId, PurposeId, RecipientId, SubjectId, Token};
pub use notice::Notice;
pub use purpose::{LawfulBasis, PurposeDefinition, Retention};
pub use rules::{bears_on, decide, decide_among, objection_to_all_marketing, Decision, Question, Reason, Target};
pub use shape::{Member, Need, Present, RecordedBy, Shape};
