//! The ledger: the data directory (database, signing key, blind-index secret), the
//! group-commit writer and the integrity verifier.

pub mod commit;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::format::{Receipt, StoredEvent};
use crate::log::merkle::Frontier;
use crate::log::StoredTree;
use crate::secrets::BlindIndexKey;
use crate::signing::{Ed25519Signer, Ed25519Verifier, KeyError};
use crate::store::{Cf, Store, StoreError};

use commit::{CommitError, Draft, Job, Writer};

/// Most events one append (a batch request) may carry.
pub const MAX_APPEND_EVENTS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the data directory: {0}")]
    Dir(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    #[error("blind-index secret: {0}")]
    Secret(std::io::Error),
    #[error("the last stored event or the tree edge does not decode")]
    Corrupt,
}

/// Paths inside a data directory.
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self(root.into())
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    pub fn db(&self) -> PathBuf {
        self.0.join("db")
    }

    pub fn signing_key(&self) -> PathBuf {
        self.0.join("signing-key.json")
    }

    pub fn blind_index_key(&self) -> PathBuf {
        self.0.join("blind-index.key")
    }

    pub fn api_keys(&self) -> PathBuf {
        self.0.join("apikeys")
    }

    /// Creates the directory (mode 0700) if it does not exist.
    pub fn ensure(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.0)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
}

/// An open ledger with its writer running.
pub struct Ledger {
    store: Arc<Store>,
    verifier: Ed25519Verifier,
    blind: BlindIndexKey,
    tx: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    committed: Arc<AtomicU64>,
}

impl Ledger {
    /// Opens (creating on first start) the ledger in `dir`. `key_name` names a new signing key.
    pub fn open(dir: &DataDir, key_name: &str) -> Result<Self, OpenError> {
        dir.ensure().map_err(OpenError::Dir)?;
        let signer = Ed25519Signer::load_or_create(&dir.signing_key(), key_name)?;
        let blind = BlindIndexKey::load_or_create(&dir.blind_index_key()).map_err(OpenError::Secret)?;
        let store = Arc::new(Store::open(&dir.db())?);
        let (last_seq, last_recorded) = match store.last(Cf::Events)? {
            Some((_, v)) => {
                let doc = StoredEvent::decode(&v).ok().and_then(|s| s.doc().ok()).ok_or(OpenError::Corrupt)?;
                (doc.seq, doc.recorded_at)
            }
            None => (0, DateTime::<Utc>::UNIX_EPOCH),
        };
        let frontier = Frontier::load(&StoredTree(&store), last_seq).map_err(|_| OpenError::Corrupt)?;
        let committed = Arc::new(AtomicU64::new(last_seq));
        let verifier = signer.verifier();
        let writer = Writer {
            store: store.clone(),
            signer: Box::new(signer),
            next_seq: last_seq + 1,
            last_recorded,
            committed: committed.clone(),
            frontier,
        };
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || writer.run(rx))
            .map_err(OpenError::Dir)?;
        Ok(Self { store, verifier, blind, tx: Some(tx), writer: Some(handle), committed })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn verifier(&self) -> &Ed25519Verifier {
        &self.verifier
    }

    pub fn blind_index(&self) -> &BlindIndexKey {
        &self.blind
    }

    /// The seq of the last durable event (0 when the log is empty).
    pub fn committed_seq(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Appends `drafts` all or nothing and answers once they are durable. An event whose id
    /// is already in the log is not written again; its original receipt is returned.
    pub async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Receipt>, CommitError> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(CommitError::Closed)?;
        tx.send(Job { drafts, reply }).map_err(|_| CommitError::Closed)?;
        rx.await.map_err(|_| CommitError::Closed)?
    }

    /// Reads one stored event by seq.
    pub fn event(&self, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self.store.get(Cf::Events, &seq.to_be_bytes())?.and_then(|raw| StoredEvent::decode(&raw).ok()))
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what it holds and stop.
        self.tx.take();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}
