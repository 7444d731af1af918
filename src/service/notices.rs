//! Notices: publishing the wording of a privacy notice (signed into the log as
//! `notice.published`, with the SHA-256 of its exact text and, when posted, the text itself),
//! reading them, and holding a consent's `notice_version` and a purpose's `notice` to a notice
//! the controller has published.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{invalid, Recorder, Service, ServiceError};
use domain::{ControllerId, EventType, Notice, Token};
use format::Receipt;
use projection::NoticeVersion;

/// A notice as a controller publishes it: its version label, title, where it is published,
/// and its text or the SHA-256 of its text (or both, which must agree).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeRequest {
    /// The controller's own label of this wording (e.g. `4.2` or `March 2026`).
    #[schema(max_length = 64)]
    pub version: String,
    #[schema(max_length = 200)]
    pub title: String,
    /// Where the notice is published (http or https).
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    /// Lower-case hex SHA-256 of the exact text; needed when `text` is not posted.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: Option<String>,
    /// The exact text (at most 256 KiB); the ledger then keeps it in the signed log and
    /// serves it.
    pub text: Option<String>,
}

/// A publication's answer: the receipt of the `notice.published` event, and whether this
/// call recorded it (an identical notice published again records nothing).
#[derive(Debug, Clone)]
pub struct Published {
    pub receipt: Receipt,
    pub new: bool,
}

/// Lower-case hex SHA-256 of a text's UTF-8 bytes.
pub fn text_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Service {
    /// Publishes notice `id` of a controller. A notice's wording never changes: the same
    /// notice again answers with its first receipt, other wording under the same id is a
    /// conflict (publish it under a new id).
    pub async fn publish_notice(
        &self,
        controller: &ControllerId,
        id: Token,
        request: NoticeRequest,
        by: Recorder<'_>,
        now: DateTime<Utc>,
    ) -> Result<Published, ServiceError> {
        let sha256 = match (&request.text, request.sha256) {
            (Some(text), given) => {
                let computed = text_sha256(text);
                if given.is_some_and(|g| g != computed) {
                    return Err(invalid("sha256 is not the SHA-256 of text"));
                }
                computed
            }
            (None, Some(given)) => given,
            (None, None) => return Err(invalid("a notice needs its text or the sha256 of its text")),
        };
        let notice =
            Notice { id, version: request.version, title: request.title, url: request.url, sha256, text: request.text }
                .validated()
                .map_err(|e| invalid(e.to_string()))?;
        // On a database ledger another node may have published it a moment ago.
        self.ledger.catch_up().await?;
        if let Some(held) = self.projections().notice(controller, &notice.id)? {
            if held.notice == notice {
                return Ok(Published { receipt: self.receipt_by_seq(held.seq)?, new: false });
            }
            return Err(ServiceError::Conflict(
                "a notice with this id was published with other wording; publish the new wording under a new id".into(),
            ));
        }
        let receipt = self
            .record_by_ledger(controller, EventType::NoticePublished, None, by, now, |d| d.notice = Some(notice))
            .await?;
        Ok(Published { receipt, new: true })
    }

    /// One published notice of a controller.
    pub fn notice(&self, controller: &ControllerId, id: &Token) -> Result<NoticeVersion, ServiceError> {
        self.projections().notice(controller, id)?.ok_or(ServiceError::NotFound("notice"))
    }

    /// Every notice a controller published, in id order.
    pub fn notices(&self, controller: &ControllerId) -> Result<Vec<NoticeVersion>, ServiceError> {
        Ok(self.projections().notices(controller)?)
    }

    /// Holds a `notice_version` (or a purpose's `notice`) to a notice the controller published.
    pub(super) fn check_notice(
        &self,
        controller: &ControllerId,
        notice: Option<&Token>,
        what: &str,
    ) -> Result<(), ServiceError> {
        match notice {
            Some(id) if self.projections().notice(controller, id)?.is_none() => {
                Err(invalid(format!("{what} must name a notice the controller has published")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_hash_is_sha256_of_its_utf8_bytes() {
        // `printf 'abc' | sha256sum`
        assert_eq!(text_sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
