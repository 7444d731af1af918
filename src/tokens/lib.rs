//! Signed, tamper-proof tokens for links that act without an API key (RFC 8058 one-click
//! unsubscribe, tenant preference links): `base64url(payload JSON) "." base64url(tag)`, where
//! tag = HMAC-SHA-256(token secret, use ‖ 0x00 ‖ payload part). The `use` separates the kinds
//! of link, so a token made for one can never be accepted as another.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

use signing::load_or_create_secret;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 2048;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    Unsubscribe,
    Preferences,
    /// The guard a preference form carries back, bound to its link.
    FormGuard,
    /// The Standard Webhooks secret of a downstream system's webhook, bound to its
    /// registration (every node derives the same one; re-registering changes it).
    WebhookSecret,
}

impl TokenUse {
    fn label(self) -> &'static [u8] {
        match self {
            TokenUse::Unsubscribe => b"consent-ledger unsubscribe v1",
            TokenUse::Preferences => b"consent-ledger preferences v1",
            TokenUse::FormGuard => b"consent-ledger form guard v1",
            TokenUse::WebhookSecret => b"consent-ledger webhook secret v1",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is not valid")]
    Invalid,
}

pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// Loads the token secret at `path`, or creates a random one (mode 0600).
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        load_or_create_secret(path).map(Self)
    }

    /// The MAC over `use ‖ 0x00 ‖ payload part`, ready to finalise or verify.
    fn mac(&self, use_: TokenUse, payload_part: &str) -> Hmac<Sha256> {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(use_.label());
        mac.update(&[0]);
        mac.update(payload_part.as_bytes());
        mac
    }

    pub fn sign<T: Serialize>(&self, use_: TokenUse, payload: &T) -> String {
        let payload_part = B64URL.encode(serde_json::to_vec(payload).unwrap_or_default());
        let tag = B64URL.encode(self.mac(use_, &payload_part).finalize().into_bytes());
        format!("{payload_part}.{tag}")
    }

    /// A bare tag over `data` (no payload travels with it).
    pub fn tag(&self, use_: TokenUse, data: &str) -> String {
        B64URL.encode(self.mac(use_, data).finalize().into_bytes())
    }

    /// Whether `tag` is this key's tag over `data` for `use_` (constant time).
    pub fn verify_tag(&self, use_: TokenUse, data: &str, tag: &str) -> bool {
        B64URL.decode(tag).is_ok_and(|t| self.mac(use_, data).verify_slice(&t).is_ok())
    }

    /// The payload of a token made by this key for `use_`, or an error that says nothing more.
    pub fn open<T: DeserializeOwned>(&self, use_: TokenUse, token: &str) -> Result<T, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let (payload_part, tag) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let tag = B64URL.decode(tag).map_err(|_| TokenError::Invalid)?;
        // Constant-time comparison.
        self.mac(use_, payload_part).verify_slice(&tag).map_err(|_| TokenError::Invalid)?;
        let payload = B64URL.decode(payload_part).map_err(|_| TokenError::Invalid)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_tampering_and_other_uses() {
        let dir = tempfile::tempdir().unwrap();
        let k = TokenKey::load_or_create(&dir.path().join("t")).unwrap();
        let t = k.sign(TokenUse::Unsubscribe, &("council", 7));
        assert_eq!(k.open::<(String, u32)>(TokenUse::Unsubscribe, &t).unwrap(), ("council".into(), 7));
        assert!(k.open::<(String, u32)>(TokenUse::Preferences, &t).is_err());
        let (p, tag) = t.split_once('.').unwrap();
        let forged = format!("{}.{tag}", B64URL.encode(serde_json::to_vec(&("council", 8)).unwrap()));
        assert!(k.open::<(String, u32)>(TokenUse::Unsubscribe, &forged).is_err());
        let mut bad_tag = tag.to_owned();
        bad_tag.replace_range(0..1, if tag.starts_with('A') { "B" } else { "A" });
        assert!(k.open::<(String, u32)>(TokenUse::Unsubscribe, &format!("{p}.{bad_tag}")).is_err());
        let other = TokenKey::load_or_create(&dir.path().join("u")).unwrap();
        assert!(other.open::<(String, u32)>(TokenUse::Unsubscribe, &t).is_err());
    }
}
