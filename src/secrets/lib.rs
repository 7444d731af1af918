//! The per-deployment blind-index secret and the blind index of a contact point:
//! HMAC-SHA-256(secret, controller ‖ 0x00 ‖ kind ‖ ":" ‖ normalised address), base64url.
//!
//! Only this module sees a plain address on its way into the log; the controller is part of
//! the input so the same address has unrelated indexes under different controllers.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use domain::{ContactPoint, ControllerId};
use signing::load_or_create_secret;

/// The secret, kept as the HMAC state it keys (its inner and outer pads already hashed), so
/// that an index hashes only its message: two of SHA-256's blocks instead of four.
pub struct BlindIndexKey(Hmac<Sha256>);

impl BlindIndexKey {
    /// Loads the secret at `path`, or creates a random one (mode 0600).
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        load_or_create_secret(path).map(Self::from_bytes)
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        match <Hmac<Sha256> as Mac>::new_from_slice(&key) {
            Ok(m) => Self(m),
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }

    /// The blind index of `contact` under `controller`.
    pub fn index(&self, controller: &ControllerId, contact: &ContactPoint) -> String {
        let mut mac = self.0.clone();
        mac.update(controller.as_str().as_bytes());
        mac.update(&[0]);
        mac.update(contact.kind().as_str().as_bytes());
        mac.update(b":");
        mac.update(contact.address().as_bytes());
        B64URL.encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Channel;

    #[test]
    fn same_address_same_index_other_controller_other_index() {
        let k = BlindIndexKey::from_bytes([7; 32]);
        let a = ControllerId::parse("a").unwrap();
        let b = ControllerId::parse("b").unwrap();
        let e1 = ContactPoint::parse(Channel::Email, "Jane@Example.org").unwrap();
        let e2 = ContactPoint::parse(Channel::Email, "jane@example.org").unwrap();
        assert_eq!(k.index(&a, &e1), k.index(&a, &e2));
        assert_ne!(k.index(&a, &e1), k.index(&b, &e1));
        assert!(!k.index(&a, &e1).contains("jane"));
        assert_eq!(k.index(&a, &e1).len(), 43);
    }

    #[test]
    fn an_index_is_hmac_sha256_of_controller_kind_and_address_as_stored_indexes_were_made() {
        // Python's hmac.new(bytes([7] * 32), b"a\x00email:jane@example.org", sha256), base64url
        // without padding: every index already in a store was made so, every check finds it.
        let k = BlindIndexKey::from_bytes([7; 32]);
        let a = ControllerId::parse("a").unwrap();
        let e = ContactPoint::parse(Channel::Email, "Jane@Example.org").unwrap();
        assert_eq!(k.index(&a, &e), "hkqEYuqDZ61slGbyGjx4NxwDu7GRnp1DhZU2WRiZIBE");
        assert_eq!(k.index(&a, &e), k.index(&a, &e), "the keyed state is reused, not consumed");
    }
}
