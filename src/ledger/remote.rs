//! A ledger whose log lives in PostgreSQL (`Options::database`). Any node may write: its group
//! commit locks the database's head row, first applies what other nodes committed, then
//! takes the next seqs and commits the signed events and the Merkle nodes they complete (see
//! `commit.rs`). Every node keeps the whole log and its projections in its local store, a
//! replica that follows the database in seq order, so checks, proofs, receipts and exports
//! read locally. Only the node holding the database's checkpoint lease signs checkpoints.
//!
//! This module holds what that needs besides the writer: a connection that reconnects, the
//! conversion between stored events and database rows, the start-up checks (the same
//! ledger, the same secrets, a replica not ahead of the database), and the listener that
//! wakes the writer when another node commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

use format::StoredEvent;
use pglog::{LogRow, PgError, PgLog};
use signing::Ed25519Signer;
use store::{Batch, Cf, Store};

use super::db_conn::{Remote, RECONNECT_AFTER};
use super::{DataDir, LedgerError};

/// `meta` key of the database ledger a local replica follows.
pub const FOLLOWS_KEY: &[u8] = b"follows";

/// Whether the data directory is a node of a ledger kept in PostgreSQL, whose API keys and
/// SMS providers' tokens are then kept in the database for every node (files of its own
/// would be ignored): `init --database-url` or the node's start marked it, or its store
/// follows a database ledger (a node of an earlier version, which wrote no mark). Read-only:
/// the node may be serving.
pub fn is_database_node(dir: &DataDir) -> Result<bool, LedgerError> {
    if dir.database_marker().exists() {
        return Ok(true);
    }
    if !dir.db().exists() {
        return Ok(false);
    }
    is_node(dir, &Store::open_read_only(&dir.db())?)
}

/// Whether `dir`, whose store is `store`, is a database ledger's node (see
/// [`is_database_node`]): such a directory never takes events of its own.
pub(crate) fn is_node(dir: &DataDir, store: &Store) -> Result<bool, LedgerError> {
    Ok(dir.database_marker().exists() || is_replica(store)?)
}

/// Marks `dir` as a node of the database ledger `ledger_id` (see [`is_database_node`]).
pub(crate) fn mark_database_node(dir: &DataDir, ledger_id: &str) -> Result<(), LedgerError> {
    let path = dir.database_marker();
    if path.exists() {
        return Ok(());
    }
    let text = format!(
        "{ledger_id}\nThis directory is a node of the ledger above, whose log, API keys and SMS providers' \
         tokens are kept in PostgreSQL: run consent-ledger commands on it with --database-url.\n"
    );
    std::fs::write(&path, text).map_err(LedgerError::Dir)
}

/// Whether `store` is a replica of a database ledger (it names the ledger it follows).
pub(crate) fn is_replica(store: &Store) -> Result<bool, store::StoreError> {
    Ok(store.get(Cf::Meta, FOLLOWS_KEY)?.is_some())
}

/// Copies the database's checkpoints up to `up_to` (the replica's size) into `store`, in
/// order of size after the last one it holds, so none is ever skipped.
pub fn copy_checkpoints(store: &Store, remote: &mut Remote, up_to: u64) -> Result<(), LedgerError> {
    let local = super::latest_checkpoint(store)?.map(|(s, _)| s);
    let signed = match remote.conn()?.checkpoints(local, up_to) {
        Ok(c) => c,
        Err(e) => {
            remote.failed(&e);
            return Err(LedgerError::DatabaseUnavailable);
        }
    };
    if !signed.is_empty() {
        let mut batch = Batch::default();
        for (size, note) in signed {
            batch.put(Cf::Checkpoints, size.to_be_bytes().to_vec(), note.into_bytes());
        }
        store.write_synced(&batch)?;
    }
    Ok(())
}

/// The database row of a sealed event.
pub fn row_of(seq: u64, id_key: Vec<u8>, stored: &StoredEvent) -> LogRow {
    LogRow {
        seq,
        id_key,
        key_id: stored.key_id.to_vec(),
        signature: stored.signature.to_vec(),
        leaf_hash: stored.leaf_hash.to_vec(),
        event: stored.bytes.clone(),
    }
}

/// The stored event of a database row as the row has it, `None` when a field is not of its
/// length (nothing else checked).
pub fn record_of(row: LogRow) -> Option<StoredEvent> {
    Some(StoredEvent {
        key_id: row.key_id.try_into().ok()?,
        signature: row.signature.try_into().ok()?,
        leaf_hash: row.leaf_hash.try_into().ok()?,
        bytes: row.event,
    })
}

/// The stored event of a database row; its leaf hash must be the hash of its bytes.
pub fn stored_of(row: LogRow) -> Result<StoredEvent, LedgerError> {
    let seq = row.seq;
    let stored = record_of(row).ok_or(LedgerError::CorruptEvent(seq))?;
    if format::leaf_hash(&stored.bytes) != stored.leaf_hash {
        return Err(LedgerError::CorruptEvent(seq));
    }
    Ok(stored)
}

/// The data directory's keyring as the database keeps it.
pub fn local_keyring(dir: &DataDir) -> Result<Vec<pglog::KeyPeriod>, LedgerError> {
    let ring = super::keys::Keyring::load(&dir.keyring())?.ok_or(LedgerError::SecretMismatch("keyring.json"))?;
    Ok(ring
        .keys
        .iter()
        .map(|k| pglog::KeyPeriod { vkey: k.vkey.clone(), first_seq: k.first_seq, last_seq: k.last_seq })
        .collect())
}

/// The files every node must share, and what the database records of each: the signing
/// key's public form, and a hash of each secret (never the secret). The keyring itself is in
/// the database (`local_keyring`).
pub fn fingerprints(dir: &DataDir) -> Result<Vec<(String, String)>, LedgerError> {
    let signer = Ed25519Signer::load_existing(&dir.signing_key())?;
    let mut out = vec![("signing-key.json".to_owned(), signer.verifier().vkey())];
    for (name, path) in [("blind-index.key", dir.blind_index_key()), ("token.key", dir.token_key())] {
        let bytes = std::fs::read(&path).map_err(LedgerError::Secret)?;
        let mut h = Sha256::new();
        h.update(b"consent-ledger secret fingerprint\0");
        h.update(name.as_bytes());
        h.update([0]);
        h.update(&bytes);
        out.push((name.to_owned(), format!("sha256:{}", hex::encode(h.finalize()))));
    }
    Ok(out)
}

/// The files a node of a database ledger must have before it opens (none is created: they
/// come from the node that ran `init`).
pub const SHARED_FILES: [&str; 4] = ["signing-key.json", "keyring.json", "blind-index.key", "token.key"];

/// Start-up checks of a node: the database holds a ledger, this data directory holds its
/// secrets, and the local store follows that ledger and is not ahead of it. Returns the
/// database's log size.
pub fn check_node(dir: &DataDir, store: &Store, db: &mut PgLog) -> Result<u64, LedgerError> {
    for name in SHARED_FILES {
        if !dir.root().join(name).exists() {
            return Err(LedgerError::SecretMismatch(name));
        }
    }
    db.migrate()?;
    let head = db.head()?.ok_or(LedgerError::Database(PgError::NotInitialised))?;
    let recorded = db.fingerprints()?;
    for (name, ours) in fingerprints(dir)? {
        let theirs = recorded.iter().find(|(n, _)| *n == name).map(|(_, f)| f);
        if theirs != Some(&ours) {
            let name = SHARED_FILES.into_iter().find(|n| *n == name).unwrap_or("a shared secret");
            return Err(LedgerError::SecretMismatch(name));
        }
    }
    // The keyring the database holds (every key and its seqs) is the one this node signs
    // and verifies with.
    if db.keyring()? != local_keyring(dir)? {
        return Err(LedgerError::SecretMismatch("keyring.json"));
    }
    match store.get(Cf::Meta, FOLLOWS_KEY)? {
        Some(id) if id == head.ledger_id.as_bytes() => {}
        Some(_) => return Err(LedgerError::OtherLedger),
        None => {
            if super::log_size(store)? > 0 {
                return Err(LedgerError::OtherLedger);
            }
            let mut batch = Batch::default();
            batch.put(Cf::Meta, FOLLOWS_KEY.to_vec(), head.ledger_id.clone().into_bytes());
            store.write_synced(&batch)?;
        }
    }
    let local = super::log_size(store)?;
    if local > head.size {
        return Err(LedgerError::AheadOfDatabase { local, database: head.size });
    }
    mark_database_node(dir, &head.ledger_id)?;
    Ok(head.size)
}

/// Listens for other nodes' commits and wakes the writer, which then applies them. Only a
/// wake-up: the writer also looks on its own every [`super::commit::FOLLOW_INTERVAL`].
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub fn start(url: &str, wake: impl Fn() + Send + 'static, node: String) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let url = url.to_owned();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new().name("log-listener".into()).spawn(move || {
            let mut conn: Option<PgLog> = None;
            while !stopping.load(Ordering::Acquire) {
                if conn.is_none() {
                    conn = PgLog::connect(&url).and_then(|mut c| c.listen().map(|()| c)).ok();
                    if conn.is_none() {
                        // Unreachable, or a database without LISTEN: the writer's own looks
                        // every few hundred milliseconds carry on without the wake-up.
                        for _ in 0..10 {
                            if stopping.load(Ordering::Acquire) {
                                return;
                            }
                            std::thread::sleep(RECONNECT_AFTER);
                        }
                        continue;
                    }
                }
                match conn.as_mut().map(|c| c.wait_for_notice(Duration::from_millis(500), &node)) {
                    Some(Ok(true)) => {
                        wake();
                    }
                    Some(Ok(false)) | None => {}
                    Some(Err(_)) => conn = None,
                }
            }
        })?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What `consent-ledger init` made.
pub struct InitInfo {
    pub ledger_id: String,
    pub created: bool,
}

/// Creates a database ledger: the shared files in `dir` (unless there), the schema, the
/// head, and the fingerprints of the files. Run once; on a database that holds a ledger
/// already it only checks that `dir` holds that ledger's files.
pub fn init_database(dir: &DataDir, url: &str, key_name: &str) -> Result<InitInfo, LedgerError> {
    dir.ensure().map_err(LedgerError::Dir)?;
    let mut db = PgLog::connect(url)?;
    db.migrate()?;
    let existing = db.head()?;
    if existing.is_none() {
        let signer = Ed25519Signer::load_or_create(&dir.signing_key(), key_name)?;
        super::keys::load_keyring(dir, &signer)?;
        secrets::BlindIndexKey::load_or_create(&dir.blind_index_key()).map_err(LedgerError::Secret)?;
        tokens::TokenKey::load_or_create(&dir.token_key()).map_err(LedgerError::Secret)?;
    }
    for name in SHARED_FILES {
        if !dir.root().join(name).exists() {
            return Err(LedgerError::SecretMismatch(name));
        }
    }
    let ours = fingerprints(dir)?;
    let keyring = local_keyring(dir)?;
    let id = uuid::Uuid::now_v7().to_string();
    let (head, theirs) = db.init(&id, &ours, &keyring)?;
    if db.keyring()? != keyring {
        return Err(LedgerError::SecretMismatch("keyring.json"));
    }
    for (name, fp) in &ours {
        if theirs.iter().find(|(n, _)| n == name).map(|(_, f)| f) != Some(fp) {
            let name = SHARED_FILES.into_iter().find(|n| n == name).unwrap_or("a shared secret");
            return Err(LedgerError::SecretMismatch(name));
        }
    }
    mark_database_node(dir, &head.ledger_id)?;
    Ok(InitInfo { created: head.ledger_id == id, ledger_id: head.ledger_id })
}
