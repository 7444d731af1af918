//! Opaque identifiers chosen by controllers: controllers, subjects, purposes, recipients and
//! the other short tokens that may appear in the signed log.
//!
//! Every identifier is validated once, at construction, against a small character set, so no
//! name, address or free text can slip into signed bytes through an identifier field.

use super::error::DomainError;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest identifier we accept, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Checks the shared identifier grammar: `[A-Za-z0-9][A-Za-z0-9._:-]*`, at most `max` bytes.
pub fn check_token(what: &'static str, s: &str, max: usize) -> Result<(), DomainError> {
    if s.is_empty() {
        return Err(DomainError::Empty { what });
    }
    if s.len() > max {
        return Err(DomainError::TooLong { what, max });
    }
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(DomainError::BadChar { what })
    }
}

/// An identifier type: the grammar of [`check_token`] at most `$max` bytes, with the same
/// grammar as a JSON Schema `$pattern` (`{0,max-1}` after the first character).
macro_rules! token_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(pattern = $pattern)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` and wraps it.
            pub fn parse(s: impl Into<String>) -> Result<Self, DomainError> {
                let s = s.into();
                check_token($what, &s, $max)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, DomainError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_newtype!(
    /// The organisation that holds the data. Every record belongs to exactly one.
    ControllerId, "controller", 64, "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
);
token_newtype!(
    /// A person, by an opaque reference the controller chooses (tenancy reference, UUID).
    SubjectId, "subject", MAX_ID_LEN, "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
);
token_newtype!(
    /// A purpose in a controller's catalogue, e.g. `newsletter` or `share:contractors`.
    PurposeId, "purpose", 64, "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
);
token_newtype!(
    /// A named third party or category of them that a sharing purpose may disclose to.
    RecipientId, "recipient", 64, "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
);
token_newtype!(
    /// A short opaque token: staff ids, authorities, evidence references, notice versions.
    Token, "token", MAX_ID_LEN, "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_references_and_uuids() {
        for ok in ["T-1", "share:contractors", "0191b2c4-7d7e-7abc-8def-0123456789ab", "a.b_c"] {
            assert!(SubjectId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_names_spaces_and_addresses() {
        for bad in ["", "Jane Smith", "jane@example.org", "-x", "a/b", "é"] {
            assert!(SubjectId::parse(bad).is_err(), "{bad}");
        }
        assert!(SubjectId::parse("x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    fn validator<T: utoipa::PartialSchema>() -> jsonschema::Validator {
        let schema = serde_json::to_value(T::schema()).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    }

    proptest::proptest! {
        /// The published schema's pattern accepts exactly what `parse` accepts.
        #[test]
        fn the_schema_pattern_agrees_with_parse(s in "[a-zA-Z0-9._:@ -]{0,2}[a-z0-9._:-]{0,140}") {
            let v = serde_json::Value::String(s.clone());
            proptest::prop_assert_eq!(validator::<SubjectId>().is_valid(&v), SubjectId::parse(s.clone()).is_ok());
            proptest::prop_assert_eq!(validator::<PurposeId>().is_valid(&v), PurposeId::parse(s.clone()).is_ok());
            proptest::prop_assert_eq!(validator::<ControllerId>().is_valid(&v), ControllerId::parse(s).is_ok());
        }
    }

    #[test]
    fn errors_do_not_echo_the_value() {
        let err = SubjectId::parse("Jane Smith").unwrap_err().to_string();
        assert!(!err.contains("Jane"));
    }
}
