//! The ledger: the data directory (database, signing key, blind-index secret), the
//! group-commit writer and the integrity verifier.

pub mod backup;
mod checkpointer;
pub mod commit;
mod db_commit;
mod db_conn;
pub mod db_verify;
mod error;
pub mod export;
pub mod keys;
mod migrate;
mod options;
pub mod rebuild;
mod remote;
mod row_sums;
pub mod shared_keys;
mod tree;
pub mod verify;
mod warm;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use checkpointer::Checkpointer;
use format::{Receipt, StoredEvent};
use keys::ValidKey;
use log::merkle::Frontier;
use log::merkle::{self, Hash};
use log::LogError;
use projection::{Caches, Projections};
use secrets::BlindIndexKey;
use signing::{Ed25519Signer, Ed25519Verifier};
use store::{Batch, Cf, Store, StoreError};
use tokens::TokenKey;
use tree::StoredTree;

pub use migrate::{migrate_to_database, Migrated};
pub use remote::{init_database, is_database_node, InitInfo};

use commit::{Draft, Job, Writer};
pub use error::LedgerError;
pub use options::{
    Clock, Options, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_MEMORY, DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_FACTS_CACHE_BYTES,
};

/// Most events one append (a batch request) may carry.
pub const MAX_APPEND_EVENTS: usize = 1000;

/// Most appends waiting for the group-commit writer. Past it an append is refused at once
/// (busy, retry shortly) rather than queued without bound: a flood from one client cannot
/// grow the server's memory or delay every other writer's "ok" indefinitely.
pub const WRITER_QUEUE: usize = 4096;

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

    /// The next signing key while a rotation is under way.
    pub fn next_signing_key(&self) -> PathBuf {
        self.0.join("signing-key.next.json")
    }

    /// Every signing key with the seqs it signed.
    pub fn keyring(&self) -> PathBuf {
        self.0.join("keyring.json")
    }

    pub fn blind_index_key(&self) -> PathBuf {
        self.0.join("blind-index.key")
    }

    pub fn token_key(&self) -> PathBuf {
        self.0.join("token.key")
    }

    /// Written once the directory is a node of a ledger kept in PostgreSQL (by `init
    /// --database-url` and by the node's first start); names the ledger, never the database.
    pub fn database_marker(&self) -> PathBuf {
        self.0.join("database-node")
    }

    /// The keys of the facts rows a server's cache held when it last closed cleanly, read
    /// back into the cache on its next start (see `warm`).
    pub fn facts_cache_keys(&self) -> PathBuf {
        self.0.join("facts-cache.keys")
    }

    pub fn api_keys(&self) -> PathBuf {
        self.0.join("apikeys")
    }

    /// SMS providers' secrets (a controller's Twilio auth token), one file each.
    /// Where the webhook deliverer keeps each downstream system's position.
    pub fn webhooks(&self) -> PathBuf {
        self.0.join("webhooks")
    }

    pub fn providers(&self) -> PathBuf {
        self.0.join("providers")
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

/// An open ledger with its writer and checkpointer running.
pub struct Ledger {
    store: Arc<Store>,
    /// What checks read from memory, kept current by the writer.
    caches: Arc<Caches>,
    secrets: Secrets,
    progress: Progress,
    threads: Threads,
    checkpoint_interval: Duration,
    data: PathBuf,
    /// On a database ledger: its API key records and SMS providers' tokens.
    shared: Option<Arc<shared_keys::SharedKeys>>,
    /// A server's: where the facts cache's keys are saved on close, and the thread that
    /// reads the last saved ones back and then saves them every few minutes ([`warm`]).
    warm: Option<(PathBuf, Option<warm::Warmer>)>,
}

/// The keys of a data directory: who signs, every key that has signed, the blind-index and
/// link-token secrets.
struct Secrets {
    signer: Arc<Ed25519Signer>,
    verifier: Ed25519Verifier,
    keys: Vec<ValidKey>,
    blind: BlindIndexKey,
    tokens: TokenKey,
}

/// What the background threads publish: the last durable seq (and a receiver that changes
/// with it), and whether the checkpointer found the tree inconsistent with a signed one.
struct Progress {
    committed: Arc<AtomicU64>,
    notify: tokio::sync::watch::Receiver<u64>,
    inconsistent: Arc<std::sync::atomic::AtomicBool>,
    /// The writer found the disk full and has not recovered yet.
    storage_full: Arc<std::sync::atomic::AtomicBool>,
    /// On a database ledger: what the node knows of the database.
    database: Option<Arc<db_conn::DatabaseState>>,
}

/// The writer and checkpointer threads and the channels that stop them.
struct Threads {
    tx: Option<mpsc::SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    stop_checkpoints: Option<mpsc::Sender<()>>,
    checkpointer: Option<JoinHandle<()>>,
    /// On a database ledger: wakes the writer when another node commits.
    listener: Option<remote::Listener>,
}

impl Ledger {
    /// Opens (creating on first start) the ledger in `dir`. `key_name` names a new signing key.
    pub fn open(dir: &DataDir, key_name: &str) -> Result<Self, LedgerError> {
        Self::open_with(dir, Options::new(key_name))
    }

    /// Opens the ledger in `dir` on its RocksDB store (`dir/db`).
    pub fn open_with(dir: &DataDir, options: Options) -> Result<Self, LedgerError> {
        dir.ensure().map_err(LedgerError::Dir)?;
        let store = Store::open_with(&dir.db(), options.store_options())?;
        Self::open_on(dir, store, options)
    }

    /// Opens the ledger with its keys and secrets in `dir` and its log and projections in
    /// `store` (any engine behind the storage boundary).
    pub fn open_on(dir: &DataDir, store: Store, options: Options) -> Result<Self, LedgerError> {
        dir.ensure().map_err(LedgerError::Dir)?;
        let store = Arc::new(store);
        check_format(&store)?;
        // This process among the nodes: its commits' wake-ups and its checkpoint lease.
        let node = uuid::Uuid::now_v7().to_string();
        let db_state = Arc::new(db_conn::DatabaseState { reachable: true.into(), size: 0.into() });
        let database = match &options.database {
            Some(url) => {
                let mut db = pglog::PgLog::connect(url)?;
                let size = remote::check_node(dir, &store, &mut db)?;
                tracing::info!(database_size = size, local_size = log_size(&store)?, "the log is in PostgreSQL");
                Some(url.clone())
            }
            None => {
                // A database ledger's node never takes events of its own, even one that
                // `init --database-url` made and no node served yet (they would never reach
                // the database).
                if remote::is_node(dir, &store)? {
                    return Err(LedgerError::IsReplica);
                }
                keys::recover_rotation(dir, &store)?;
                refuse_lost_secrets(dir, &store)?;
                None
            }
        };
        let signer = Ed25519Signer::load_or_create(&dir.signing_key(), &options.key_name)?;
        let keys = keys::load_keyring(dir, &signer)?.valid_keys()?;
        let blind = BlindIndexKey::load_or_create(&dir.blind_index_key()).map_err(LedgerError::Secret)?;
        let tokens = TokenKey::load_or_create(&dir.token_key()).map_err(LedgerError::Secret)?;
        let (last_seq, last_recorded) = match store.last(Cf::Events)? {
            Some((_, v)) => {
                let doc = StoredEvent::decode(&v).ok().and_then(|s| s.doc().ok()).ok_or(LedgerError::Corrupt)?;
                (doc.seq, doc.recorded_at)
            }
            None => (0, DateTime::<Utc>::UNIX_EPOCH),
        };
        let frontier = Frontier::load(&StoredTree(&store), last_seq).map_err(|_| LedgerError::Corrupt)?;
        let committed = Arc::new(AtomicU64::new(last_seq));
        let verifier = signer.verifier();
        let signer = Arc::new(signer);
        let (notify_tx, notify) = tokio::sync::watch::channel(last_seq);
        let storage_full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The facts cache's tables made for the rows there are (a node that has still to catch
        // up with its database gives them room for the rest once it has).
        let caches = Arc::new(Caches::for_store(options.facts_cache_bytes, store.estimated_rows(Cf::Facts)));
        let mut writer = Writer {
            caches: caches.clone(),
            notify: notify_tx,
            store: store.clone(),
            signer: signer.clone(),
            next_seq: last_seq + 1,
            last_recorded,
            committed: committed.clone(),
            frontier,
            clock: options.clock.clone(),
            storage_full: storage_full.clone(),
            last_recovery: None,
            remote: database.as_deref().map(|url| db_conn::Remote::new(url, db_state.clone())),
            node: node.clone(),
        };
        if database.is_some() {
            // A new or behind node catches up before it answers anything.
            let started = std::time::Instant::now();
            let from = writer.next_seq - 1;
            writer.catch_up_at_start(options.catch_up_progress.as_deref())?;
            // The cache was made for the rows the replica held before; now for all of them.
            caches.make_room_for(store.estimated_rows(Cf::Facts));
            let applied = writer.next_seq - 1 - from;
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                applied,
                seconds = secs,
                per_second = applied as f64 / secs.max(1e-9),
                "caught up with the database"
            );
        }
        let (tx, rx) = mpsc::sync_channel(options.writer_queue.max(1));
        let listener = match &database {
            Some(url) => {
                let wake = tx.clone();
                let listener = remote::Listener::start(url, move || drop(wake.try_send(Job::wake())), node.clone());
                Some(listener.map_err(LedgerError::Dir)?)
            }
            None => None,
        };
        let handle = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || writer.run(rx))
            .map_err(LedgerError::Dir)?;
        let (stop_tx, stop_rx) = mpsc::channel();
        let inconsistent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lease_ttl = (options.checkpoint_interval * 3).max(Duration::from_secs(2));
        let mut checkpoints = Checkpointer {
            store: store.clone(),
            signer: signer.clone(),
            committed: committed.clone(),
            inconsistent: inconsistent.clone(),
            remote: database
                .as_deref()
                .map(|url| (db_conn::Remote::new(url, db_state.clone()), node.clone(), lease_ttl)),
        };
        match checkpoints.sign_if_grown() {
            // Served, but not ready and signing nothing (see `Checkpointer`).
            Ok(()) | Err(LedgerError::TreeInconsistent { .. }) => {}
            Err(_) => return Err(LedgerError::Corrupt),
        }
        let interval = options.checkpoint_interval;
        let checkpointer = std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || checkpoints.run(stop_rx, interval))
            .map_err(LedgerError::Dir)?;
        let warm = options.warm_start.then(|| {
            let file = dir.facts_cache_keys();
            (file.clone(), warm::start(file, store.clone(), caches.clone(), warm::SAVE_EVERY))
        });
        Ok(Self {
            store,
            caches,
            secrets: Secrets { signer, verifier, keys, blind, tokens },
            progress: Progress {
                committed,
                notify,
                inconsistent,
                storage_full,
                database: database.as_ref().map(|_| db_state),
            },
            threads: Threads {
                tx: Some(tx),
                writer: Some(handle),
                stop_checkpoints: Some(stop_tx),
                checkpointer: Some(checkpointer),
                listener,
            },
            checkpoint_interval: interval,
            data: dir.root().to_path_buf(),
            shared: match &database {
                Some(url) => Some(Arc::new(shared_keys::SharedKeys::open(url).map_err(LedgerError::ApiKeys)?)),
                None => None,
            },
            warm,
        })
    }

    /// Backs the running ledger up into the new directory `to` (see [`backup`]).
    pub fn backup(&self, to: &Path) -> Result<backup::BackupInfo, LedgerError> {
        backup::backup(&DataDir::new(&self.data), &self.store, to)
    }

    /// The data directory.
    pub fn data_dir(&self) -> DataDir {
        DataDir::new(&self.data)
    }

    pub fn checkpoint_interval(&self) -> Duration {
        self.checkpoint_interval
    }

    /// The latest signed checkpoint: its tree size and C2SP signed note.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, LedgerError> {
        Ok(latest_checkpoint(&self.store)?)
    }

    /// The audit path of leaf `index` in the tree of `size` leaves (size ≤ the durable log).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        if size > self.committed_seq() {
            return Err(LogError::OutOfRange);
        }
        merkle::inclusion_proof(&StoredTree(&self.store), index, size)
    }

    /// The consistency proof between tree sizes `old` and `new` (new ≤ the durable log).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        if new > self.committed_seq() {
            return Err(LogError::OutOfRange);
        }
        merkle::consistency_proof(&StoredTree(&self.store), old, new)
    }

    /// The tree head at `size` (size ≤ the durable log).
    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        if size > self.committed_seq() {
            return Err(LogError::OutOfRange);
        }
        merkle::root(&StoredTree(&self.store), size)
    }

    /// The current signing key.
    pub fn verifier(&self) -> &Ed25519Verifier {
        &self.secrets.verifier
    }

    /// Signs a document that is not a log entry (a decision): base64 signature, hex key id.
    pub fn sign(&self, bytes: &[u8]) -> (String, String) {
        use base64::Engine;
        use signing::Signer;
        let sig = self.secrets.signer.sign(bytes);
        (base64::engine::general_purpose::STANDARD.encode(sig), hex::encode(self.secrets.signer.key_id()))
    }

    /// Every key that has signed this log, with its period.
    pub fn keys(&self) -> &[ValidKey] {
        &self.secrets.keys
    }

    pub fn blind_index(&self) -> &BlindIndexKey {
        &self.secrets.blind
    }

    /// What the facts cache holds and how it has answered.
    pub fn facts_cache(&self) -> projection::FactsCacheUsage {
        self.caches.facts_usage()
    }

    /// What the store's block cache holds (its memtables, index and filter blocks charged to
    /// it) and may hold, in bytes; `None` for a store without one.
    pub fn store_cache(&self) -> Option<(u64, u64)> {
        self.store.cache_usage()
    }

    /// Reads of the projections, through the caches the writer keeps current.
    pub fn projections(&self) -> Projections<'_> {
        Projections::new(&self.store, &self.caches)
    }

    /// The key of signed link tokens.
    pub fn tokens(&self) -> &TokenKey {
        &self.secrets.tokens
    }

    /// A receiver that changes whenever events become durable; its value is the last seq.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.progress.notify.clone()
    }

    /// Waits (at most `timeout`) until the log holds `seq`; true when it does.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        if seq > self.committed_seq() && self.progress.database.is_some() {
            // Another node may have written it: look at the database now.
            if let Some(tx) = &self.threads.tx {
                let _ = tx.try_send(Job::wake());
            }
        }
        let mut rx = self.subscribe();
        let reached = async {
            loop {
                if *rx.borrow_and_update() >= seq {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(timeout, reached).await.unwrap_or(false)
    }

    /// The seq of the last durable event (0 when the log is empty).
    pub fn committed_seq(&self) -> u64 {
        self.progress.committed.load(Ordering::Acquire)
    }

    /// Appends `drafts` all or nothing and answers once they are durable. An event whose id
    /// is already in the log is not written again; its original receipt is returned.
    pub async fn append(&self, drafts: Vec<Draft>) -> Result<Vec<Receipt>, LedgerError> {
        Ok(self.append_reporting(drafts).await?.into_iter().map(|(r, _)| r).collect())
    }

    /// Appends as [`Ledger::append`] does, saying for each draft whether this append wrote it
    /// (`false`: the log already held its id, whichever node wrote it).
    pub async fn append_reporting(&self, drafts: Vec<Draft>) -> Result<Vec<commit::Appended>, LedgerError> {
        self.submit(drafts)?.await
    }

    /// Hands `drafts` to the writer at once (all or nothing) and answers with what the
    /// append will answer, so a caller can prepare the next while this one is written.
    pub fn submit(
        &self,
        drafts: Vec<Draft>,
    ) -> Result<
        impl std::future::Future<Output = Result<Vec<commit::Appended>, LedgerError>> + Send + 'static,
        LedgerError,
    > {
        let (reply, rx) = oneshot::channel();
        let tx = self.threads.tx.as_ref().ok_or(LedgerError::Closed)?;
        tx.try_send(Job { drafts, reply }).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => LedgerError::Busy,
            mpsc::TrySendError::Disconnected(_) => LedgerError::Closed,
        })?;
        Ok(async move { rx.await.map_err(|_| LedgerError::Closed)? })
    }

    /// On a database ledger: applies everything the database held when called before
    /// answering, so what any node acknowledged before is visible here. At once otherwise.
    pub async fn catch_up(&self) -> Result<(), LedgerError> {
        if self.progress.database.is_none() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        let tx = self.threads.tx.as_ref().ok_or(LedgerError::Closed)?;
        tx.try_send(Job { drafts: Vec::new(), reply }).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => LedgerError::Busy,
            mpsc::TrySendError::Disconnected(_) => LedgerError::Closed,
        })?;
        rx.await.map_err(|_| LedgerError::Closed)?.map(|_| ())
    }

    /// On a database ledger: whether the database answered last, and its log size when
    /// this node last looked.
    pub fn database(&self) -> Option<(bool, u64)> {
        self.progress.database.as_ref().map(|d| (d.reachable.load(Ordering::Acquire), d.size.load(Ordering::Acquire)))
    }

    /// On a database ledger: the API key records and SMS providers' tokens its database keeps.
    pub fn shared_records(&self) -> Option<&shared_keys::SharedKeys> {
        self.shared.as_deref()
    }

    /// Whether the log lives in a database that other nodes write too.
    pub fn follows_database(&self) -> bool {
        self.progress.database.is_some()
    }

    /// Reads one stored event by seq.
    pub fn event(&self, seq: u64) -> Result<Option<StoredEvent>, LedgerError> {
        stored_event(&self.store, seq)
    }

    /// The receipt of one event by seq.
    pub fn receipt(&self, seq: u64) -> Result<Option<Receipt>, LedgerError> {
        self.event(seq)?.map(|stored| receipt_of(seq, stored)).transpose()
    }

    /// Receipts of many events by seq (one batched read), in the order given.
    pub fn receipts(&self, seqs: &[u64]) -> Result<Vec<Option<Receipt>>, LedgerError> {
        let keys: Vec<[u8; 8]> = seqs.iter().map(|s| s.to_be_bytes()).collect();
        self.store
            .multi_get(Cf::Events, &keys)?
            .into_iter()
            .zip(seqs)
            .map(|(raw, seq)| raw.map(|raw| receipt_of(*seq, decode_event(*seq, &raw)?)).transpose())
            .collect()
    }

    /// The seq of the controller's event with this id, if the log holds it (`None` for the
    /// ledger's own events).
    pub fn seq_of(
        &self,
        controller: Option<&domain::ControllerId>,
        id: uuid::Uuid,
    ) -> Result<Option<u64>, LedgerError> {
        seq_of_id(&self.store, &projection::event_id_key(controller, &id))
    }

    /// Writes the audit export of `controller` (see [`export`]).
    pub fn export(
        &self,
        controller: &str,
        out: impl FnMut(&format::export::ExportLine) -> std::io::Result<()>,
    ) -> Result<u64, LedgerError> {
        export::export(&self.store, &self.secrets.keys, controller, out, |_, _| {})
    }

    /// Whether the writer found the disk full and has not recovered yet.
    pub fn storage_full(&self) -> bool {
        self.progress.storage_full.load(Ordering::Acquire)
    }

    /// Whether the ledger can serve: the store answers a read of the last event, and the
    /// checkpointer has not found the tree inconsistent with a signed checkpoint.
    pub fn readable(&self) -> Result<(), LedgerError> {
        if self.progress.inconsistent.load(Ordering::Acquire) {
            return Err(LedgerError::NotConsistent);
        }
        if self.progress.storage_full.load(Ordering::Acquire) {
            return Err(LedgerError::StorageFull);
        }
        if let Some(db) = &self.progress.database {
            if !db.reachable.load(Ordering::Acquire) {
                return Err(LedgerError::DatabaseUnavailable);
            }
            let behind = db.size.load(Ordering::Acquire).saturating_sub(self.committed_seq());
            if behind > db_conn::FAR_BEHIND {
                return Err(LedgerError::FarBehind(behind));
            }
        }
        self.event(self.committed_seq().max(1)).map(|_| ())
    }
}

fn decode_event(seq: u64, raw: &[u8]) -> Result<StoredEvent, LedgerError> {
    StoredEvent::decode(raw).map_err(|_| LedgerError::CorruptEvent(seq))
}

fn receipt_of(seq: u64, stored: StoredEvent) -> Result<Receipt, LedgerError> {
    let doc = stored.doc().map_err(|_| LedgerError::CorruptEvent(seq))?;
    Ok(stored.receipt(doc))
}

/// Secrets are created only with a new, empty log. On a log that holds events, a missing
/// secret is refused by name: a new blind-index secret would stop every opt-out recorded
/// against an address from matching, a new signing key or keyring would change who signed
/// seq 1 without a rotation, and a new token secret would void every link sent.
fn refuse_lost_secrets(dir: &DataDir, store: &Store) -> Result<(), LedgerError> {
    if log_size(store)? == 0 {
        return Ok(());
    }
    let files = [
        (dir.signing_key(), "signing-key.json"),
        (dir.keyring(), "keyring.json"),
        (dir.blind_index_key(), "blind-index.key"),
        (dir.token_key(), "token.key"),
    ];
    match files.into_iter().find(|(path, _)| !path.exists()) {
        Some((_, name)) => Err(LedgerError::MissingSecret(name)),
        None => Ok(()),
    }
}

/// Key of the store's format version in `meta`.
const FORMAT_KEY: &[u8] = b"format";

/// The layout of the store (column families and projection rows), recorded in `meta`.
/// 1: facts per target and seq (prefix scans); 2: one appended facts row per target; 3: event
/// ids keyed by controller; 4: facts rows as binary records (projection::fact_codec); 5: the
/// tree's nodes from level 1 up (a leaf is its event's leaf hash, [`tree::StoredTree`]).
pub const STORE_FORMAT: u32 = 5;

/// The formats `consent-ledger rebuild` brings up to [`STORE_FORMAT`] (only projection rows
/// changed since).
pub const REBUILDABLE_FORMATS: [u32; 3] = [2, 3, 4];

/// Records the format version in a new store, and refuses a store written in another one,
/// or one whose projections are half rebuilt.
fn check_format(store: &Store) -> Result<(), LedgerError> {
    if store.get(Cf::Meta, rebuild::REBUILDING_KEY)?.is_some() {
        return Err(LedgerError::RebuildInterrupted);
    }
    check_store_format(store)
}

/// Records the format version in a new store, and refuses a store written in another one.
fn check_store_format(store: &Store) -> Result<(), LedgerError> {
    let ours = STORE_FORMAT.to_string();
    match store.get(Cf::Meta, FORMAT_KEY)? {
        Some(v) if v == ours.as_bytes() => Ok(()),
        Some(v) => Err(LedgerError::Format(String::from_utf8_lossy(&v).into_owned())),
        None => {
            let mut batch = Batch::default();
            batch.put(Cf::Meta, FORMAT_KEY.to_vec(), ours.into_bytes());
            Ok(store.write_synced(&batch)?)
        }
    }
}

/// Refuses a store that a rebuild cannot bring to [`STORE_FORMAT`]: one of this format or
/// of one of [`REBUILDABLE_FORMATS`] (only projection rows changed between them) is rebuilt.
fn check_rebuildable_format(store: &Store) -> Result<(), LedgerError> {
    match store.get(Cf::Meta, FORMAT_KEY)? {
        Some(v) if REBUILDABLE_FORMATS.iter().any(|f| v == f.to_string().as_bytes()) => Ok(()),
        _ => check_store_format(store),
    }
}

/// The `meta` row that records [`STORE_FORMAT`].
fn format_row() -> (Vec<u8>, Vec<u8>) {
    (FORMAT_KEY.to_vec(), STORE_FORMAT.to_string().into_bytes())
}

/// The rows one event adds besides itself: its projection rows (`project`) and the Merkle
/// nodes it completes (`tree` is the frontier before it, and is advanced). The writer, `verify`
/// and `rebuild` all derive rows here, so they cannot disagree on what an event implies.
pub fn derived_rows(
    doc: &format::EventDoc,
    leaf_hash: Hash,
    tree: &mut Frontier,
) -> Result<Vec<projection::Row>, projection::ProjectionError> {
    let mut rows = projection::project(doc)?;
    rows.extend(tree_rows(leaf_hash, tree));
    Ok(rows)
}

/// The Merkle nodes an event's leaf completes, as rows: the second half of
/// [`derived_rows`], which `verify` calls in seq order after deriving the first half of a
/// block of events on every core.
pub fn tree_rows(leaf_hash: Hash, tree: &mut Frontier) -> Vec<projection::Row> {
    tree.push(leaf_hash)
        .into_iter()
        // A leaf is not stored as a node: it is in its event's record ([`tree::StoredTree`]).
        .filter(|&(level, ..)| level > 0)
        .map(|(level, index, hash)| (Cf::Merkle, tree::node_key(level, index).to_vec(), hash.to_vec()))
        .collect()
}

/// Stages an event with every row it implies into `batch`: how the embedded writer writes
/// an event, and how a database node's replica applies one.
fn stage_event(
    batch: &mut Batch,
    doc: &format::EventDoc,
    stored: &StoredEvent,
    tree: &mut Frontier,
) -> Result<(), LedgerError> {
    batch.put(Cf::Events, projection::seq_key(doc.seq).to_vec(), stored.encode());
    for (cf, k, v) in derived_rows(doc, stored.leaf_hash, tree).map_err(|_| LedgerError::WriteFailed)? {
        batch.row(cf, k, v);
    }
    Ok(())
}

/// Events in the log of `store` (the seq of the last one).
pub fn log_size(store: &Store) -> Result<u64, StoreError> {
    Ok(store.last(Cf::Events)?.and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok()).map_or(0, u64::from_be_bytes))
}

/// The latest signed checkpoint of a store: its tree size and C2SP signed note.
pub fn latest_checkpoint(store: &Store) -> Result<Option<(u64, String)>, StoreError> {
    Ok(store.last(Cf::Checkpoints)?.and_then(|(k, v)| {
        let size = u64::from_be_bytes(k.as_ref().try_into().ok()?);
        Some((size, String::from_utf8(v.to_vec()).ok()?))
    }))
}

/// The signed checkpoints of a store, oldest first.
pub fn checkpoints(store: &Store) -> Result<Vec<(u64, String)>, StoreError> {
    let mut out = Vec::new();
    for item in store.iter_from(Cf::Checkpoints, &[])? {
        let (k, v) = item?;
        if let (Ok(size), Ok(note)) = (<[u8; 8]>::try_from(k.as_ref()), String::from_utf8(v.to_vec())) {
            out.push((u64::from_be_bytes(size), note));
        }
    }
    Ok(out)
}

/// Reads one stored event by seq: the one place that reads the `events` family by key (an
/// event that does not decode is an error, never a missing one).
pub fn stored_event(store: &Store, seq: u64) -> Result<Option<StoredEvent>, LedgerError> {
    store.get(Cf::Events, &seq.to_be_bytes())?.map(|raw| decode_event(seq, &raw)).transpose()
}

/// The seq of a controller's event with this id: the one place that reads the `event_ids`
/// family.
pub fn seq_of_id(store: &Store, key: &[u8]) -> Result<Option<u64>, LedgerError> {
    store
        .get(Cf::EventIds, key)?
        .map(|v| <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes).map_err(|_| LedgerError::CorruptId))
        .transpose()
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // A warm-up still reading stops first; the keys it had yet to read stay saved.
        let keys_file =
            self.warm.take().and_then(|(file, warmer)| warmer.is_none_or(warm::Warmer::finish).then_some(file));
        // Closing the queue (the listener holds a sender too) lets the writer finish what it
        // holds and stop.
        self.threads.listener.take();
        self.threads.tx.take();
        if let Some(h) = self.threads.writer.take() {
            let _ = h.join();
        }
        self.threads.stop_checkpoints.take();
        if let Some(h) = self.threads.checkpointer.take() {
            let _ = h.join();
        }
        // After the writer: the cache as the last commit left it.
        if let Some(file) = keys_file {
            let started = std::time::Instant::now();
            match warm::save(&file, &self.caches) {
                Ok(keys) => tracing::info!(
                    keys,
                    seconds = started.elapsed().as_secs_f64(),
                    "saved the facts cache's keys for the next start"
                ),
                Err(e) => tracing::warn!(error = %e, "the facts cache's keys were not saved"),
            }
        }
    }
}
