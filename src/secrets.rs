//! The per-deployment blind-index secret and the blind index of a contact point:
//! HMAC-SHA-256(secret, controller ‖ 0x00 ‖ kind ‖ ":" ‖ normalised address), base64url.
//!
//! Only this module sees a plain address on its way into the log; the controller is part of
//! the input so the same address has unrelated indexes under different controllers.

use std::fs;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::{ContactPoint, ControllerId};
use crate::signing::write_secret_file;

pub struct BlindIndexKey([u8; 32]);

impl BlindIndexKey {
    /// Loads the secret at `path`, or creates a random one (mode 0600).
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "blind-index key is not 32 bytes")
                })?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_secret_file(path, &key)?;
                Ok(Self(key))
            }
            Err(e) => Err(e),
        }
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
    use crate::domain::Channel;

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
