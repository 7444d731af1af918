//! Channels and contact points: an email address (case-folded), a phone number in E.164 (used
//! by both the `sms` and `phone` channels), or a postal address.
//!
//! A contact point's plain address never reaches the signed log; only its blind index does
//! (see `secrets`). This module only parses and normalises.

use super::error::DomainError;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
pub use super::limits::MAX_POST_LEN;

/// A way of contacting a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    Phone,
    Post,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Sms, Channel::Phone, Channel::Post];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Phone => "phone",
            Channel::Post => "post",
        }
    }

    /// The kind of contact point this channel reaches.
    pub fn kind(self) -> ContactKind {
        match self {
            Channel::Email => ContactKind::Email,
            Channel::Sms | Channel::Phone => ContactKind::Tel,
            Channel::Post => ContactKind::Post,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a contact point is: the same phone number is one contact point for SMS and calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    Email,
    Tel,
    Post,
}

impl ContactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Email => "email",
            ContactKind::Tel => "tel",
            ContactKind::Post => "post",
        }
    }

    /// The channel a check by this kind of contact point means when none is given.
    pub fn default_channel(self) -> Channel {
        match self {
            ContactKind::Email => Channel::Email,
            ContactKind::Tel => Channel::Sms,
            ContactKind::Post => Channel::Post,
        }
    }

    pub fn reaches(self, channel: Channel) -> bool {
        channel.kind() == self
    }
}

/// A normalised contact point. Its `address` is personal data: it is hashed into a blind
/// index and never logged, signed or put in an error message.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ContactPoint {
    kind: ContactKind,
    address: String,
}

impl fmt::Debug for ContactPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately redacted so a stray `{:?}` cannot leak an address into a log.
        write!(f, "ContactPoint({}, <redacted>)", self.kind.as_str())
    }
}

impl ContactPoint {
    /// Parses an address for a channel: emails are trimmed and case-folded, phone numbers
    /// lose spaces, dashes, dots and brackets and must then be E.164 (a number in UK
    /// national form, `07700 900123`, or dialled with `00`, becomes E.164), postal addresses have
    /// their whitespace collapsed and are case-folded.
    pub fn parse(channel: Channel, address: &str) -> Result<Self, DomainError> {
        let kind = channel.kind();
        let address = match kind {
            ContactKind::Email => normalise_email(address)?,
            ContactKind::Tel => normalise_phone(address)?,
            ContactKind::Post => normalise_post(address)?,
        };
        Ok(Self { kind, address })
    }

    pub fn kind(&self) -> ContactKind {
        self.kind
    }

    /// The normalised address. Only the blind index and the encrypted side store may see it.
    pub fn address(&self) -> &str {
        &self.address
    }
}

fn normalise_email(raw: &str) -> Result<String, DomainError> {
    let s = raw.trim().to_lowercase();
    if s.is_empty() || s.len() > MAX_EMAIL_LEN {
        return Err(DomainError::Email);
    }
    let (local, domain) = s.split_once('@').ok_or(DomainError::Email)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(s)
    } else {
        Err(DomainError::Email)
    }
}

fn normalise_phone(raw: &str) -> Result<String, DomainError> {
    let mut s: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '\u{a0}')).collect();
    // "+44 (0)7700 900123": the trunk prefix in brackets after a country code is not dialled
    // from abroad; anywhere else brackets only group digits.
    if s.starts_with('+') {
        if let Some(at) = s.find("(0)") {
            s.replace_range(at..at + 3, "");
        }
    }
    s.retain(|c| !matches!(c, '(' | ')'));
    if let Some(rest) = s.strip_prefix("00") {
        // The international prefix dialled from the UK.
        s = format!("+{rest}");
    } else if s.starts_with('0') {
        return national_uk(&s);
    }
    let digits = s.strip_prefix('+').ok_or(DomainError::Phone)?;
    let ok = (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
    if ok {
        Ok(s)
    } else {
        Err(DomainError::Phone)
    }
}

/// A number in UK national form (`07700 900123`, `020 7946 0000`) in E.164, read by
/// libphonenumber with the UK as the region. The UK plan's numbers have 9 or 10 digits after
/// the trunk `0`; Ofcom's ranges for drama and tests (`07700 900xxx`) count as numbers, though
/// libphonenumber's metadata calls them invalid, because lists hold them and a STOP from one
/// must be honoured like any other.
fn national_uk(digits: &str) -> Result<String, DomainError> {
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(DomainError::Phone);
    }
    let n = phonenumber::parse(Some(phonenumber::country::Id::GB), digits).map_err(|_| DomainError::Phone)?;
    let e164 = n.format().mode(phonenumber::Mode::E164).to_string();
    let national = e164.strip_prefix("+44").ok_or(DomainError::Phone)?;
    if (9..=10).contains(&national.len()) && !national.starts_with('0') && national.bytes().all(|b| b.is_ascii_digit())
    {
        Ok(e164)
    } else {
        Err(DomainError::Phone)
    }
}

fn normalise_post(raw: &str) -> Result<String, DomainError> {
    let s = raw.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    if s.is_empty() || s.len() > MAX_POST_LEN || s.chars().any(char::is_control) {
        return Err(DomainError::Post);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_case_folded_and_trimmed() {
        let a = ContactPoint::parse(Channel::Email, " Jane@Example.org ").unwrap();
        let b = ContactPoint::parse(Channel::Email, "jane@example.org").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in ["", "jane", "jane@", "@example.org", "jane@example", "ja ne@example.org", "a..b@x.org"] {
            assert!(ContactPoint::parse(Channel::Email, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_is_e164_and_shared_by_sms_and_phone() {
        let a = ContactPoint::parse(Channel::Sms, "+44 7700 900-123").unwrap();
        let b = ContactPoint::parse(Channel::Phone, "+447700900123").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.address(), "+447700900123");
        for bad in ["+44", "+44abc7700900", "+0447700900123", "0", "07700", "0770090012345", "07700 9OO123"] {
            assert!(ContactPoint::parse(Channel::Sms, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uk_numbers_as_people_write_them_are_e164() {
        for written in [
            "07700 900123",
            "07700-900-123",
            "(07700) 900123",
            "+44 (0)7700 900123",
            "0044 7700 900123",
            "+44 7700\u{a0}900123",
        ] {
            let a = ContactPoint::parse(Channel::Sms, written).unwrap();
            assert_eq!(a.address(), "+447700900123", "{written}");
        }
        assert_eq!(ContactPoint::parse(Channel::Phone, "020 7946 0000").unwrap().address(), "+442079460000");
        assert_eq!(ContactPoint::parse(Channel::Phone, "0161 496 0000").unwrap().address(), "+441614960000");
    }

    #[test]
    fn debug_never_shows_the_address() {
        let a = ContactPoint::parse(Channel::Email, "jane@example.org").unwrap();
        assert!(!format!("{a:?}").contains("jane"));
    }
}
