//! Consistent backups. A backup is a complete data directory: a RocksDB checkpoint of the
//! store (every event acknowledged before it began, with its projections, tree and
//! checkpoints; hard links where the disk allows, so it is quick and small) and copies of
//! the signing keys, keyring, blind-index and link-token secrets, API keys, SMS providers'
//! tokens and each downstream system's webhook position (mode 0600).
//! Restoring is serving from it (or copying it into place); `verify` checks it first.
//! It can be taken while the server runs (`POST /v1/backups`) or with it stopped
//! (`consent-ledger backup`).

use std::path::{Path, PathBuf};

use store::Store;

use super::{DataDir, LedgerError};

/// What a backup holds.
#[derive(Debug, Clone)]
pub struct BackupInfo {
    pub path: PathBuf,
    /// Events in the backed-up log.
    pub log_size: u64,
}

/// Backs up the ledger in `dir`, whose store is `store`, into the new directory `to`.
pub fn backup(dir: &DataDir, store: &Store, to: &Path) -> Result<BackupInfo, LedgerError> {
    if to.exists() {
        return Err(LedgerError::BackupExists);
    }
    let target = DataDir::new(to);
    target.ensure()?;
    let result = write_backup(dir, store, &target);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(to);
    }
    result
}

fn write_backup(dir: &DataDir, store: &Store, target: &DataDir) -> Result<BackupInfo, LedgerError> {
    // Each downstream system's webhook position, before the checkpoint: a position is written
    // only after its event was committed and delivered, so the positions copied first never
    // pass the backed-up log (a position past it would skip the restored ledger's next events,
    // which take those seqs). A restore goes on delivering from there instead of sending
    // every event again.
    copy_files(&dir.webhooks(), &target.webhooks())?;
    store.checkpoint_to(&target.db())?;
    for (from, to) in [
        (dir.signing_key(), target.signing_key()),
        (dir.next_signing_key(), target.next_signing_key()),
        (dir.keyring(), target.keyring()),
        (dir.blind_index_key(), target.blind_index_key()),
        (dir.token_key(), target.token_key()),
    ] {
        if from.exists() {
            copy_private(&from, &to)?;
        }
    }
    // API keys, and the SMS providers' tokens (a restored ledger must still check Twilio's
    // signatures).
    copy_files(&dir.api_keys(), &target.api_keys())?;
    copy_files(&dir.providers(), &target.providers())?;
    // The size is read from the backup itself: it is what a restore will serve.
    let log_size = super::log_size(&Store::open_read_only(&target.db())?)?;
    Ok(BackupInfo { path: target.root().to_path_buf(), log_size })
}

/// Copies the files directly in the directory `from` (if there is one) into `to`, private.
fn copy_files(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                copy_private(&entry.path(), &to.join(entry.file_name()))?;
            }
        }
    }
    Ok(())
}

/// Copies a secret file, readable by the owner only.
fn copy_private(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::copy(from, to)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
