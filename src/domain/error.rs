//! The domain's one error type: an identifier, contact point, purpose definition or event
//! shape that breaks a rule. Messages name no value a client sent (a value may be personal
//! data), no route and no command.

use super::limits::{
    MAX_CONSENT_VALID_DAYS, MAX_DESCRIPTION_LEN, MAX_NOTICE_TEXT, MAX_NOTICE_URL, MAX_NOTICE_VERSION, MAX_POST_LEN,
    MAX_RECIPIENTS, MAX_TITLE_LEN,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    // Identifiers.
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} may contain only letters, digits and . _ : - (and must start with a letter or digit)")]
    BadChar { what: &'static str },
    // Contact points.
    #[error("the email address is not valid")]
    Email,
    #[error("the phone number must be in E.164 form, e.g. +447700900123, or a UK number such as 07700 900123")]
    Phone,
    #[error("the postal address must not be empty and must be at most {MAX_POST_LEN} bytes")]
    Post,
    // Purpose definitions.
    #[error("title must be 1 to {MAX_TITLE_LEN} characters with no control characters")]
    Title,
    #[error(
        "description must be at most {MAX_DESCRIPTION_LEN} characters with no control characters other than newlines"
    )]
    Description,
    #[error("channels must not repeat")]
    DuplicateChannel,
    #[error("recipients must not repeat and at most {MAX_RECIPIENTS} may be listed")]
    Recipients,
    #[error("consent_valid_days must be between 1 and {MAX_CONSENT_VALID_DAYS}")]
    ValidDays,
    #[error("retention must be between 1 month and 100 years")]
    Retention,
    // Notices.
    #[error("version must be 1 to {MAX_NOTICE_VERSION} characters with no control characters")]
    NoticeVersion,
    #[error("the URL must be an http or https URL of at most {MAX_NOTICE_URL} bytes without spaces")]
    NoticeUrl,
    #[error("sha256 must be 64 lower-case hex digits")]
    NoticeHash,
    #[error("text must be at most {MAX_NOTICE_TEXT} bytes")]
    NoticeText,
    // Downstream systems.
    #[error("deadline_seconds must be 1 to 2592000 (30 days)")]
    Deadline,
    // Event shapes: the event type and the member, by their names (`EventType::as_str`,
    // `shape::Member::as_str`).
    /// Only the ledger records it, when a purpose is defined or revised.
    #[error("{0} is recorded by the ledger when a purpose is defined")]
    ByPurposeCatalogue(&'static str),
    /// Only the ledger records it, when a notice is published.
    #[error("{0} is recorded by the ledger when a notice is published")]
    ByNoticeCatalogue(&'static str),
    /// Only the ledger records it, for a downstream system's registration or acknowledgement.
    #[error("{0} is recorded by the ledger for a downstream system")]
    ByDownstream(&'static str),
    /// Only the ledger records it, when its key is rotated.
    #[error("{0} is recorded by the ledger when its key is rotated")]
    ByKeyRotation(&'static str),
    #[error("an event needs a subject, a contact, or both")]
    NoSubjectOrContact,
    #[error("{0} needs {1}")]
    Needs(&'static str, &'static str),
    #[error("{}", takes_no(.0, .1))]
    TakesNo(&'static str, &'static str),
}

fn takes_no(kind: &str, member: &str) -> String {
    match (kind, member) {
        ("subject.erased", "a contact") => {
            "subject.erased takes no contact: the subject's linked contact points are suppressed".into()
        }
        (_, "expires_at") => "only consent.granted and representative.authorised take expires_at".into(),
        (k, m) => format!("{k} takes no {}", m.trim_start_matches("a ")),
    }
}
