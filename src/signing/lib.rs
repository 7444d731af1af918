//! Ed25519 signing keys, their C2SP signed-note key ids and verifier-key strings, and the key
//! file kept in the data directory.
//!
//! Key id (C2SP signed-note): the first four bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key),
//! where 0x01 is the Ed25519 signature type. The verifier key is
//! `name+hex(key id)+base64(0x01 ‖ public key)`.

mod batch;
pub use batch::{failing_signatures, verify_batch};

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The C2SP signed-note signature type byte of Ed25519.
pub const ED25519_ALG: u8 = 0x01;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file io: {0}")]
    Io(#[from] std::io::Error),
    #[error("key file is malformed: {0}")]
    Malformed(&'static str),
    #[error("key name must be non-empty printable ASCII without spaces or '+'")]
    BadName,
}

/// Something that signs: the ledger's own key today, an HSM tomorrow.
pub trait Signer: Send + Sync {
    fn key_id(&self) -> [u8; 4];
    fn sign(&self, msg: &[u8]) -> [u8; 64];
}

/// Something that checks a signature made by one key.
pub trait Verifier: Send + Sync {
    fn key_id(&self) -> [u8; 4];
    fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool;
}

/// Checks a C2SP key name: non-empty, no whitespace, no `+`.
pub fn check_key_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b'+');
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadName)
    }
}

/// The C2SP key id of an Ed25519 key of that name.
pub fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519_ALG]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// An Ed25519 key with its C2SP name.
pub struct Ed25519Signer {
    name: String,
    key: SigningKey,
    id: [u8; 4],
}

impl Ed25519Signer {
    pub fn new(name: String, key: SigningKey) -> Result<Self, KeyError> {
        check_key_name(&name)?;
        let id = key_id(&name, key.verifying_key().as_bytes());
        Ok(Self { name, key, id })
    }

    pub fn generate(name: String) -> Result<Self, KeyError> {
        Self::new(name, SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> Ed25519Verifier {
        Ed25519Verifier { name: self.name.clone(), key: self.key.verifying_key(), id: self.id }
    }

    /// Writes this key to a new file at `path` (mode 0600); fails if the file exists.
    pub fn save_new(&self, path: &Path) -> Result<(), KeyError> {
        let file = KeyFile { name: self.name.clone(), seed: B64.encode(self.key.to_bytes()) };
        let text = serde_json::to_string_pretty(&file).map_err(|_| KeyError::Malformed("encode"))?;
        write_secret_file(path, text.as_bytes())?;
        Ok(())
    }

    /// Loads the key file at `path`, which must exist.
    pub fn load_existing(path: &Path) -> Result<Self, KeyError> {
        if !path.exists() {
            return Err(KeyError::Io(std::io::Error::new(std::io::ErrorKind::NotFound, "no signing key")));
        }
        Self::load_or_create(path, "unused")
    }

    /// Loads the key file at `path`, or creates it (mode 0600) with a new key named `name`.
    pub fn load_or_create(path: &Path, name: &str) -> Result<Self, KeyError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let file: KeyFile = serde_json::from_str(&text).map_err(|_| KeyError::Malformed("not JSON"))?;
                let seed: [u8; 32] = B64
                    .decode(file.seed)
                    .map_err(|_| KeyError::Malformed("seed is not base64"))?
                    .try_into()
                    .map_err(|_| KeyError::Malformed("seed is not 32 bytes"))?;
                Self::new(file.name, SigningKey::from_bytes(&seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer = Self::generate(name.to_owned())?;
                signer.save_new(path)?;
                Ok(signer)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Signer for Ed25519Signer {
    fn key_id(&self) -> [u8; 4] {
        self.id
    }

    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// The public half of an [`Ed25519Signer`].
#[derive(Clone)]
pub struct Ed25519Verifier {
    name: String,
    key: VerifyingKey,
    id: [u8; 4],
}

impl Ed25519Verifier {
    /// Parses a C2SP verifier key `name+hexid+base64(0x01 ‖ key)`, checking that the id matches.
    pub fn from_vkey(vkey: &str) -> Result<Self, KeyError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::Malformed("verifier key needs three '+'-separated parts"));
        };
        check_key_name(name)?;
        let raw = B64.decode(b64).map_err(|_| KeyError::Malformed("key is not base64"))?;
        let (alg, key) = raw.split_first().ok_or(KeyError::Malformed("empty key"))?;
        if *alg != ED25519_ALG {
            return Err(KeyError::Malformed("not an Ed25519 key"));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| KeyError::Malformed("key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| KeyError::Malformed("not a valid point"))?;
        let id = key_id(name, key.as_bytes());
        if hex::encode(id) != id_hex {
            return Err(KeyError::Malformed("key id does not match the key"));
        }
        Ok(Self { name: name.to_owned(), key, id })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The C2SP verifier-key string.
    pub fn vkey(&self) -> String {
        let mut raw = vec![ED25519_ALG];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(raw))
    }
}

impl Verifier for Ed25519Verifier {
    fn key_id(&self) -> [u8; 4] {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.key.verify(msg, &Signature::from_bytes(sig)).is_ok()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    name: String,
    seed: String,
}

/// Loads a 32-byte secret from `path`, or creates a random one there (mode 0600).
pub fn load_or_create_secret(path: &Path) -> std::io::Result<[u8; 32]> {
    match fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "a secret file is not 32 bytes")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            write_secret_file(path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Writes a file readable only by its owner, creating it exclusively and syncing it.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_parent(path)
}

/// Makes a file's creation or renaming durable: fsyncs the directory that holds it.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vkey_round_trips_and_verifies() {
        let s = Ed25519Signer::generate("example.org/ledger".into()).unwrap();
        let v = Ed25519Verifier::from_vkey(&s.verifier().vkey()).unwrap();
        let sig = s.sign(b"hello");
        assert!(v.verify(b"hello", &sig));
        assert!(!v.verify(b"hellp", &sig));
        assert_eq!(Verifier::key_id(&v), Signer::key_id(&s));
    }

    #[test]
    fn c2sp_key_id_vector() {
        // The example key of the C2SP signed-note specification:
        // PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW
        let v = Ed25519Verifier::from_vkey("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
        assert!(v.is_ok());
    }

    #[test]
    fn key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let a = Ed25519Signer::load_or_create(&path, "n").unwrap();
        let b = Ed25519Signer::load_or_create(&path, "ignored").unwrap();
        assert_eq!(a.verifier().vkey(), b.verifier().vkey());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
