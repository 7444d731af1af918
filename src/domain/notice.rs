//! Notices: the wording of a privacy notice people were shown, as the controller publishes it
//! (`notice.published`): its id, its own version label, title, where it is published, and the
//! SHA-256 of its exact text. A consent's `notice_version` names one, so an auditor can prove
//! which wording the person relied on. A notice's wording never changes: a new wording is a
//! new notice.

use serde::{Deserialize, Serialize};

use super::error::DomainError;
use super::event::is_sha256_hex;
use super::ids::Token;
use super::limits::{MAX_NOTICE_TEXT, MAX_NOTICE_URL, MAX_NOTICE_VERSION, MAX_TITLE_LEN};

/// A published notice, as the `notice.published` event signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// The notice's id, which consents name as their `notice_version`.
    pub id: Token,
    /// The controller's own label of this wording (e.g. `4.2` or `March 2026`): 1 to 64
    /// characters, no control characters.
    #[schema(max_length = 64)]
    pub version: String,
    /// The notice's title as people see it: 1 to 200 characters, no control characters.
    #[schema(max_length = 200)]
    pub title: String,
    /// Where the notice is published (an `https://` or `http://` URL, at most 2000 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    /// Lower-case hex SHA-256 of the notice's exact text (its UTF-8 bytes).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// The text itself, when the controller published it through the ledger (at most 256
    /// KiB); its SHA-256 is `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

fn one_line(s: &str, max: usize) -> Option<String> {
    let t = s.trim();
    (!t.is_empty() && t.chars().count() <= max && !t.chars().any(char::is_control)).then(|| t.to_owned())
}

impl Notice {
    /// Checks what serde cannot express. The hash of `text`, when present, is the caller's to
    /// compare (the domain computes no digests).
    pub fn validated(mut self) -> Result<Self, DomainError> {
        self.version = one_line(&self.version, MAX_NOTICE_VERSION).ok_or(DomainError::NoticeVersion)?;
        self.title = one_line(&self.title, MAX_TITLE_LEN).ok_or(DomainError::Title)?;
        if let Some(u) = &self.url {
            let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
            if !scheme_ok || u.len() > MAX_NOTICE_URL || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(DomainError::NoticeUrl);
            }
        }
        if !is_sha256_hex(&self.sha256) {
            return Err(DomainError::NoticeHash);
        }
        if self.text.as_ref().is_some_and(|t| t.len() > MAX_NOTICE_TEXT) {
            return Err(DomainError::NoticeText);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            id: Token::parse("privacy-2026").unwrap(),
            version: " 4.2 ".into(),
            title: "How we use your information".into(),
            url: Some("https://example.org/privacy".into()),
            sha256: "a".repeat(64),
            text: None,
        }
    }

    #[test]
    fn a_notice_is_trimmed_and_its_members_checked() {
        assert_eq!(notice().validated().unwrap().version, "4.2");
        let bad = [
            Notice { version: "".into(), ..notice() },
            Notice { title: "a\u{7}".into(), ..notice() },
            Notice { url: Some("javascript:alert(1)".into()), ..notice() },
            Notice { url: Some("https://example.org/a b".into()), ..notice() },
            Notice { sha256: "A".repeat(64), ..notice() },
            Notice { text: Some("x".repeat(MAX_NOTICE_TEXT + 1)), ..notice() },
        ];
        for n in bad {
            assert!(n.validated().is_err());
        }
    }
}
