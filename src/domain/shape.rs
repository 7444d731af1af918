//! What each event type requires and allows: the event shapes. One table, [`EventType::shape`],
//! says which members an event of a type needs, may carry or must not carry, and whether a
//! client may record it at all; [`Present::check`] holds an event's members against it and
//! answers with a typed [`DomainError`] that names no route and no command.

use super::error::DomainError;
use super::event::EventType;

/// Whether an event of a type carries a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    Allowed,
    Forbidden,
}

/// Who records an event of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedBy {
    /// A client, through the events API.
    Client,
    /// The ledger, when a purpose is defined or revised.
    PurposeCatalogue,
    /// The ledger, when a notice is published.
    NoticeCatalogue,
    /// The ledger, for a downstream system.
    Downstream,
    /// The ledger, when its signing key is rotated.
    KeyRotation,
}

/// What an event type requires and allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub recorded_by: RecordedBy,
    pub subject: Need,
    pub contact: Need,
    pub purpose: Need,
    pub channel: Need,
    pub preference: Need,
    pub representative: Need,
    pub expires_at: Need,
}

/// The members of an event that take part in its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Subject,
    Contact,
    Purpose,
    Channel,
    Preference,
    Representative,
    ExpiresAt,
}

impl Member {
    pub fn as_str(self) -> &'static str {
        match self {
            Member::Subject => "a subject",
            Member::Contact => "a contact",
            Member::Purpose => "a purpose",
            Member::Channel => "a channel",
            Member::Preference => "a preference",
            Member::Representative => "a representative",
            Member::ExpiresAt => "expires_at",
        }
    }
}

/// Which members an event carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Present {
    pub subject: bool,
    pub contact: bool,
    pub purpose: bool,
    pub channel: bool,
    pub preference: bool,
    pub representative: bool,
    pub expires_at: bool,
}

impl EventType {
    /// The shape of this type's events.
    pub fn shape(self) -> Shape {
        use EventType as T;
        use Need::{Allowed as A, Forbidden as F, Required as R};
        let by_client = |subject, contact, purpose, channel| Shape {
            recorded_by: RecordedBy::Client,
            subject,
            contact,
            purpose,
            channel,
            preference: F,
            representative: F,
            expires_at: F,
        };
        match self {
            T::ConsentGranted => Shape { expires_at: A, ..by_client(A, A, R, A) },
            T::ConsentWithdrawn => by_client(A, A, R, A),
            T::ObjectionRaised | T::ObjectionLifted => by_client(A, A, A, A),
            T::RestrictionApplied | T::RestrictionLifted => by_client(R, A, A, F),
            T::PreferenceSet => Shape { preference: R, ..by_client(R, A, F, F) },
            T::ContactLinked | T::ContactUnlinked => by_client(R, R, F, F),
            // An authorisation may end at a date (a guardian's at the child's 18th birthday).
            T::RepresentativeAuthorised => Shape { representative: R, expires_at: A, ..by_client(R, A, F, F) },
            T::RepresentativeRevoked => Shape { representative: R, ..by_client(R, A, F, F) },
            T::SubjectErased | T::RelationshipStarted | T::RelationshipEnded => by_client(R, F, F, F),
            T::PurposeDefined => Shape { recorded_by: RecordedBy::PurposeCatalogue, ..by_client(F, F, R, F) },
            T::DownstreamRegistered | T::DownstreamAcknowledged => {
                Shape { recorded_by: RecordedBy::Downstream, ..by_client(F, F, F, F) }
            }
            T::NoticePublished => Shape { recorded_by: RecordedBy::NoticeCatalogue, ..by_client(F, F, F, F) },
            T::KeyRotated => Shape { recorded_by: RecordedBy::KeyRotation, ..by_client(F, F, F, F) },
        }
    }

    /// Every event type.
    pub const ALL: [EventType; 19] = [
        EventType::ConsentGranted,
        EventType::ConsentWithdrawn,
        EventType::ObjectionRaised,
        EventType::ObjectionLifted,
        EventType::RestrictionApplied,
        EventType::RestrictionLifted,
        EventType::PreferenceSet,
        EventType::ContactLinked,
        EventType::ContactUnlinked,
        EventType::RepresentativeAuthorised,
        EventType::RepresentativeRevoked,
        EventType::SubjectErased,
        EventType::RelationshipStarted,
        EventType::RelationshipEnded,
        EventType::PurposeDefined,
        EventType::NoticePublished,
        EventType::DownstreamRegistered,
        EventType::DownstreamAcknowledged,
        EventType::KeyRotated,
    ];
}

impl Present {
    /// Holds a client's event of type `kind` against its shape: the first member out of
    /// place, in a fixed order (who records it, subject or contact, then member by member).
    pub fn check(&self, kind: EventType) -> Result<(), DomainError> {
        let shape = kind.shape();
        match shape.recorded_by {
            RecordedBy::Client => {}
            RecordedBy::PurposeCatalogue => return Err(DomainError::ByPurposeCatalogue(kind.as_str())),
            RecordedBy::NoticeCatalogue => return Err(DomainError::ByNoticeCatalogue(kind.as_str())),
            RecordedBy::Downstream => return Err(DomainError::ByDownstream(kind.as_str())),
            RecordedBy::KeyRotation => return Err(DomainError::ByKeyRotation(kind.as_str())),
        }
        if !self.subject && !self.contact {
            return Err(DomainError::NoSubjectOrContact);
        }
        let members = [
            (Member::Purpose, shape.purpose, self.purpose),
            (Member::Subject, shape.subject, self.subject),
            (Member::Channel, shape.channel, self.channel),
            (Member::Contact, shape.contact, self.contact),
            (Member::Preference, shape.preference, self.preference),
            (Member::Representative, shape.representative, self.representative),
            (Member::ExpiresAt, shape.expires_at, self.expires_at),
        ];
        for (member, need, present) in members {
            match (need, present) {
                (Need::Required, false) => return Err(DomainError::Needs(kind.as_str(), member.as_str())),
                (Need::Forbidden, true) => return Err(DomainError::TakesNo(kind.as_str(), member.as_str())),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_no_route_and_no_command() {
        for kind in EventType::ALL {
            for p in [Present::default(), Present { subject: true, ..Present::default() }] {
                if let Err(e) = p.check(kind) {
                    let m = e.to_string();
                    assert!(!m.contains('/') && !m.contains("consent-ledger"), "{m}");
                }
            }
        }
    }

    #[test]
    fn the_table_says_what_each_type_needs() {
        let s = Present { subject: true, ..Present::default() };
        assert_eq!(
            s.check(EventType::ConsentGranted),
            Err(DomainError::Needs(EventType::ConsentGranted.as_str(), Member::Purpose.as_str()))
        );
        assert_eq!(
            Present { purpose: true, ..s }.check(EventType::SubjectErased),
            Err(DomainError::TakesNo(EventType::SubjectErased.as_str(), Member::Purpose.as_str()))
        );
        assert_eq!(
            Present { contact: true, ..s }.check(EventType::SubjectErased),
            Err(DomainError::TakesNo(EventType::SubjectErased.as_str(), Member::Contact.as_str()))
        );
        assert_eq!(
            s.check(EventType::ContactLinked),
            Err(DomainError::Needs(EventType::ContactLinked.as_str(), Member::Contact.as_str()))
        );
        assert!(Present { contact: true, ..s }.check(EventType::ContactLinked).is_ok());
        assert_eq!(
            Present { expires_at: true, purpose: true, ..s }.check(EventType::ConsentWithdrawn),
            Err(DomainError::TakesNo(EventType::ConsentWithdrawn.as_str(), Member::ExpiresAt.as_str()))
        );
        assert!(matches!(s.check(EventType::PurposeDefined), Err(DomainError::ByPurposeCatalogue(_))));
        assert!(matches!(s.check(EventType::KeyRotated), Err(DomainError::ByKeyRotation(_))));
        assert_eq!(Present::default().check(EventType::ObjectionRaised), Err(DomainError::NoSubjectOrContact));
    }
}
