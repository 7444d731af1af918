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

pub struct BlindIndexKey([u8; 32]);

impl BlindIndexKey {
    /// Loads the secret at `path`, or creates a random one (mode 0600).
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        load_or_create_secret(path).map(Self)
    }

    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// The blind index of `contact` under `controller`.
    pub fn index(&self, controller: &ControllerId, contact: &ContactPoint) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
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
}
