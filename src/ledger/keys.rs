//! The keyring: every signing key the log has used, with the seqs it signed, and key rotation.
//!
//! A rotation is crash-safe: the next key is written to `signing-key.next.json` first, then a
//! `key.rotated` event naming it is appended (signed by the retiring key), then the keyring
//! records both periods and the next key file replaces the current one. Opening a ledger
//! finishes a rotation whose event is in the log, and discards one whose event is not.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use format::StoredEvent;
use signing::{Ed25519Signer, Ed25519Verifier, KeyError};
use store::{Cf, Store};

use super::{DataDir, LedgerError};

/// One key and the seqs it signs (`last_seq` absent for the current key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPeriod {
    pub vkey: String,
    pub first_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

/// A verifier with the period it signed.
#[derive(Clone)]
pub struct ValidKey {
    pub verifier: Ed25519Verifier,
    pub first_seq: u64,
    pub last_seq: Option<u64>,
}

impl ValidKey {
    pub fn covers(&self, seq: u64) -> bool {
        seq >= self.first_seq && self.last_seq.is_none_or(|l| seq <= l)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    pub keys: Vec<KeyPeriod>,
}

impl Keyring {
    pub fn load(path: &Path) -> Result<Option<Self>, KeyError> {
        match fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t).map(Some).map_err(|_| KeyError::Malformed("keyring is not valid JSON")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the keyring atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|_| KeyError::Malformed("encode"))?;
        {
            use std::io::Write;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        signing::sync_parent(path)?;
        Ok(())
    }

    pub fn valid_keys(&self) -> Result<Vec<ValidKey>, KeyError> {
        self.keys
            .iter()
            .map(|k| {
                Ok(ValidKey {
                    verifier: Ed25519Verifier::from_vkey(&k.vkey)?,
                    first_seq: k.first_seq,
                    last_seq: k.last_seq,
                })
            })
            .collect()
    }
}

/// Loads the keyring of `dir`, creating it for `current` on a ledger's first start.
pub fn load_keyring(dir: &DataDir, current: &Ed25519Signer) -> Result<Keyring, KeyError> {
    let vkey = current.verifier().vkey();
    match Keyring::load(&dir.keyring())? {
        Some(ring) => {
            if ring.keys.last().map(|k| &k.vkey) != Some(&vkey) {
                return Err(KeyError::Malformed("the keyring's current key is not the signing key"));
            }
            Ok(ring)
        }
        None => {
            let ring = Keyring { keys: vec![KeyPeriod { vkey, first_seq: 1, last_seq: None }] };
            ring.save(&dir.keyring())?;
            Ok(ring)
        }
    }
}

/// The keys that sign a data directory's events, for verifying it without opening it for
/// writing.
pub fn read_valid_keys(dir: &DataDir) -> Result<Vec<ValidKey>, KeyError> {
    match Keyring::load(&dir.keyring())? {
        Some(ring) => ring.valid_keys(),
        None => {
            let current = Ed25519Signer::load_existing(&dir.signing_key())?;
            Ok(vec![ValidKey { verifier: current.verifier(), first_seq: 1, last_seq: None }])
        }
    }
}

/// Finishes or discards a rotation left by a stopped `keys rotate` (see the module docs).
pub fn recover_rotation(dir: &DataDir, store: &Store) -> Result<(), KeyError> {
    let next_path = dir.next_signing_key();
    if !next_path.exists() {
        return Ok(());
    }
    let next = Ed25519Signer::load_existing(&next_path)?;
    let next_vkey = next.verifier().vkey();
    let last = store
        .last(Cf::Events)
        .map_err(|e| KeyError::Io(std::io::Error::other(e.to_string())))?
        .and_then(|(_, v)| StoredEvent::decode(&v).ok())
        .and_then(|s| s.doc().ok());
    match last {
        Some(doc) if doc.next_key.as_deref() == Some(next_vkey.as_str()) => finish_rotation(dir, doc.seq, next_vkey),
        _ => {
            fs::remove_file(&next_path)?;
            Ok(())
        }
    }
}

/// Records the periods and makes the next key current. Safe to repeat.
pub fn finish_rotation(dir: &DataDir, rotation_seq: u64, next_vkey: String) -> Result<(), KeyError> {
    let mut ring = Keyring::load(&dir.keyring())?.ok_or(KeyError::Malformed("no keyring"))?;
    if ring.keys.last().map(|k| &k.vkey) != Some(&next_vkey) {
        if let Some(current) = ring.keys.last_mut() {
            current.last_seq = Some(rotation_seq);
        }
        ring.keys.push(KeyPeriod { vkey: next_vkey, first_seq: rotation_seq + 1, last_seq: None });
        ring.save(&dir.keyring())?;
    }
    fs::rename(dir.next_signing_key(), dir.signing_key())?;
    signing::sync_parent(&dir.signing_key())?;
    Ok(())
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub old_vkey: String,
    pub new_vkey: String,
    /// Seq of the `key.rotated` event, the last one the old key signed.
    pub seq: u64,
}

/// Rotates the signing key of the (stopped) ledger in `dir`: a new key is made, a
/// `key.rotated` event naming it is signed by the old key, and the new key signs from then on.
pub fn rotate_key(dir: &DataDir) -> Result<Rotation, LedgerError> {
    use domain::EventType;
    use format::EventDoc;

    let ledger = super::Ledger::open(dir, "unused")?;
    let old_vkey = ledger.verifier().vkey();
    let next = Ed25519Signer::generate(ledger.verifier().name().to_owned())?;
    next.save_new(&dir.next_signing_key())?;
    let new_vkey = next.verifier().vkey();
    let mut doc = EventDoc::by_ledger(None, EventType::KeyRotated, chrono::Utc::now());
    doc.next_key = Some(new_vkey.clone());
    // Rotation is a command of the stopped ledger.
    doc.recorded_by = domain::Token::parse("command-line").ok();
    let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(LedgerError::Runtime)?;
    let receipts =
        runtime.block_on(ledger.append(vec![super::commit::Draft { doc, occurred_now: true, fresh_id: false }]))?;
    let seq = receipts.first().map(|r| r.seq).unwrap_or_default();
    // Closing the ledger stops the writer and signs a last checkpoint with the old key.
    drop(ledger);
    finish_rotation(dir, seq, new_vkey.clone())?;
    Ok(Rotation { old_vkey, new_vkey, seq })
}
