//! Consistent backups. A backup is a complete data directory: a RocksDB checkpoint of the
//! store (every event acknowledged before it began, with its projections, tree and
//! checkpoints; hard links where the disk allows, so it is quick and small) and copies of
//! the signing keys, keyring, blind-index and link-token secrets and API keys (mode 0600).
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
    for (from, to) in [(dir.api_keys(), target.api_keys()), (dir.providers(), target.providers())] {
        if from.is_dir() {
            std::fs::create_dir_all(&to)?;
            for entry in std::fs::read_dir(&from)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    copy_private(&entry.path(), &to.join(entry.file_name()))?;
                }
            }
        }
    }
    // The size is read from the backup itself: it is what a restore will serve.
    let log_size = super::log_size(&Store::open_read_only(&target.db())?)?;
    Ok(BackupInfo { path: target.root().to_path_buf(), log_size })
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
