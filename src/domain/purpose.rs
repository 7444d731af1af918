//! Purposes: what processing is for, its lawful basis (UK GDPR Art. 6), whether it is direct
//! marketing, the channels it may use, the recipients it may share with, how long a consent
//! for it stays valid, and how long a person's record is kept once they have left.

use super::error::DomainError;
use serde::{Deserialize, Serialize};

use super::contact::Channel;
use super::ids::{RecipientId, Token};

pub use super::limits::{MAX_CONSENT_VALID_DAYS, MAX_DESCRIPTION_LEN, MAX_RECIPIENTS, MAX_TITLE_LEN};

/// The longest retention rule: 100 years.
pub const MAX_RETENTION_MONTHS: u32 = 1200;

/// The lawful basis of a purpose (UK GDPR Art. 6(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LawfulBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            LawfulBasis::Consent => "consent",
            LawfulBasis::Contract => "contract",
            LawfulBasis::LegalObligation => "legal_obligation",
            LawfulBasis::VitalInterests => "vital_interests",
            LawfulBasis::PublicTask => "public_task",
            LawfulBasis::LegitimateInterests => "legitimate_interests",
        }
    }

    /// Bases that a restriction of processing (Art. 18) or an objection does not stop.
    pub fn overrides_restriction(self) -> bool {
        matches!(self, LawfulBasis::LegalObligation | LawfulBasis::VitalInterests)
    }
}

/// A purpose as a controller defines it. It is signed into the log as a `purpose.defined`
/// event, so an auditor sees what people were asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurposeDefinition {
    /// Plain-language title shown to people: 1 to 200 characters, not blank, no control
    /// characters (surrounding spaces are trimmed).
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub title: String,
    /// Plain-language description shown to people: at most 2000 characters, no control
    /// characters but newlines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000, pattern = r"^[^\u0000-\u0009\u000B-\u001F\u007F-\u009F]*$")]
    pub description: Option<String>,
    pub basis: LawfulBasis,
    /// Direct marketing (PECR / UK GDPR Art. 21(3)): an objection to marketing stops it.
    pub marketing: bool,
    /// Channels the purpose may use; empty for sharing purposes.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// Recipients a sharing purpose may disclose to; empty for non-sharing purposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientId>,
    /// Days a consent stays valid from when it was given; none means until withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3650)]
    pub consent_valid_days: Option<u32>,
    /// How long a person's record is kept for this purpose once their relationship with the
    /// controller has ended (`relationship.ended`); none means the purpose sets no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The published notice (`PUT /v1/notices/{id}`) that describes this purpose to people;
    /// the tenant page shows and links it, and records it as the consent's `notice_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<Token>,
}

/// A retention rule: years and months after the subject's relationship ended (e.g. "six years
/// after you leave" is `{"years": 6}`). Together 1 month to 100 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub years: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1200)]
    pub months: Option<u32>,
}

impl Retention {
    /// The rule in whole months (at least 1, at most 1200 when valid).
    pub fn months(self) -> u32 {
        self.years.unwrap_or(0).saturating_mul(12).saturating_add(self.months.unwrap_or(0))
    }

    /// When the record is due to be forgotten, for a relationship that ended at `ended`
    /// (calendar months: the 31st counts to the month's last day).
    pub fn due(self, ended: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        ended.checked_add_months(chrono::Months::new(self.months())).unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }
}

impl PurposeDefinition {
    /// Checks the invariants serde cannot express and returns the definition with its
    /// channels and recipients in a stable order.
    pub fn validated(mut self) -> Result<Self, DomainError> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_LEN || title.chars().any(char::is_control) {
            return Err(DomainError::Title);
        }
        self.title = title.to_owned();
        if let Some(d) = &self.description {
            if d.chars().count() > MAX_DESCRIPTION_LEN || d.chars().any(|c| c.is_control() && c != '\n') {
                return Err(DomainError::Description);
            }
        }
        let n = self.channels.len();
        self.channels.sort();
        self.channels.dedup();
        if self.channels.len() != n {
            return Err(DomainError::DuplicateChannel);
        }
        let n = self.recipients.len();
        self.recipients.sort();
        self.recipients.dedup();
        if self.recipients.len() != n || n > MAX_RECIPIENTS {
            return Err(DomainError::Recipients);
        }
        if let Some(d) = self.consent_valid_days {
            if d == 0 || d > MAX_CONSENT_VALID_DAYS {
                return Err(DomainError::ValidDays);
            }
        }
        if let Some(r) = self.retention {
            if !(1..=MAX_RETENTION_MONTHS).contains(&r.months()) {
                return Err(DomainError::Retention);
            }
        }
        Ok(self)
    }

    pub fn allows_channel(&self, channel: Channel) -> bool {
        self.channels.contains(&channel)
    }

    /// The channel scopes a question about this purpose can have: each of its channels, or
    /// the purpose as a whole when it uses none (a sharing purpose).
    pub fn channel_scopes(&self) -> Vec<Option<Channel>> {
        if self.channels.is_empty() {
            vec![None]
        } else {
            self.channels.iter().copied().map(Some).collect()
        }
    }

    /// Whether the purpose restricts sharing to a list of recipients.
    pub fn is_sharing(&self) -> bool {
        !self.recipients.is_empty()
    }

    pub fn allows_recipient(&self, recipient: &RecipientId) -> bool {
        self.recipients.contains(recipient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(title: &str, description: Option<&str>) -> PurposeDefinition {
        PurposeDefinition {
            title: title.into(),
            description: description.map(Into::into),
            basis: LawfulBasis::Consent,
            marketing: true,
            channels: vec![Channel::Email],
            recipients: vec![],
            consent_valid_days: None,
            retention: None,
            notice: None,
        }
    }

    fn property(name: &str) -> jsonschema::Validator {
        let schema = serde_json::to_value(<PurposeDefinition as utoipa::PartialSchema>::schema()).unwrap();
        jsonschema::validator_for(&schema["properties"][name]).unwrap()
    }

    proptest::proptest! {
        /// What the published schema accepts as a title or description, the ledger accepts
        /// (the schema may be stricter: it does not trim, so a title with a leading tab
        /// fails the schema and is trimmed by the ledger).
        #[test]
        fn what_the_schema_accepts_is_accepted(s in "[ a-zA-Z\\n\\t\\u{7}\\u{85}\\u{a0}\\u{feff}é]{0,12}", long in 190..210usize) {
            let v = serde_json::Value::String(s.clone());
            if property("title").is_valid(&v) {
                proptest::prop_assert!(definition(&s, None).validated().is_ok());
            }
            if property("description").is_valid(&v) {
                proptest::prop_assert!(definition("t", Some(&s)).validated().is_ok());
            }
            let t = "é".repeat(long);
            proptest::prop_assert_eq!(property("title").is_valid(&serde_json::Value::String(t.clone())), definition(&t, None).validated().is_ok());
        }
    }

    #[test]
    fn the_schema_refuses_what_the_ledger_refuses() {
        for bad in ["", "   ", "a\u{7}b", "line\nbreak", "\u{85}"] {
            assert!(!property("title").is_valid(&serde_json::json!(bad)), "{bad:?}");
            assert!(definition(bad, None).validated().is_err(), "{bad:?}");
        }
        assert!(property("title").is_valid(&serde_json::json!("The Voice newsletter")));
    }
}

#[cfg(test)]
mod retention_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retention_counts_calendar_months_from_the_end() {
        let ended = chrono::Utc.with_ymd_and_hms(2020, 2, 29, 10, 0, 0).unwrap();
        let six_years = Retention { years: Some(6), months: None };
        assert_eq!(six_years.due(ended), chrono::Utc.with_ymd_and_hms(2026, 2, 28, 10, 0, 0).unwrap());
        let eighteen_months = Retention { years: Some(1), months: Some(6) };
        assert_eq!(eighteen_months.due(ended), chrono::Utc.with_ymd_and_hms(2021, 8, 29, 10, 0, 0).unwrap());
    }

    #[test]
    fn a_rule_of_nothing_or_over_a_century_is_refused() {
        let mut d: PurposeDefinition = serde_json::from_value(serde_json::json!({
            "title": "Tenancy records", "basis": "contract", "marketing": false
        }))
        .unwrap();
        for (years, months, ok) in [
            (None, None, false),
            (Some(0), Some(0), false),
            (Some(101), None, false),
            (Some(100), None, true),
            (None, Some(1), true),
        ] {
            d.retention = Some(Retention { years, months });
            assert_eq!(d.clone().validated().is_ok(), ok, "{years:?} {months:?}");
        }
    }
}
