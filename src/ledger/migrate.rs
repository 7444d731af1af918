//! `consent-ledger migrate`: an embedded ledger moves into PostgreSQL whole. Every event is
//! verified first (bytes, leaf hash, signature by the key of its period, projections), then
//! the events, the Merkle nodes and every signed checkpoint go into an empty database in one
//! transaction, so the same receipts and checkpoints verify afterwards. The data directory's
//! secrets become the shared files, and its store becomes the first node's replica.

use format::StoredEvent;
use log::merkle::Frontier;
use pglog::{LogRow, Node, PgLog};
use projection::event_id_key;
use store::{Batch, Cf, Store};

use super::remote::{fingerprints, is_replica, local_keyring, row_of, FOLLOWS_KEY, SHARED_FILES};
use super::shared_keys::SharedKeys;
use super::tree::StoredTree;
use super::{DataDir, LedgerError};

/// Rows per statement.
const CHUNK: usize = 5000;

/// What a migration brought in.
pub struct Migrated {
    pub ledger_id: String,
    pub events: u64,
    pub checkpoints: u64,
}

/// Moves the stopped embedded ledger in `dir` into the empty database at `url`. `progress`
/// hears (what, done, total) as each stage goes.
pub fn migrate_to_database(
    dir: &DataDir,
    url: &str,
    mut progress: impl FnMut(&'static str, u64, u64),
) -> Result<Migrated, LedgerError> {
    let store = Store::open(&dir.db())?;
    super::check_format(&store)?;
    if is_replica(&store)? {
        return Err(LedgerError::Database(pglog::PgError::NotEmpty));
    }
    for name in SHARED_FILES {
        if !dir.root().join(name).exists() {
            return Err(LedgerError::MissingSecret(name));
        }
    }
    let size = super::log_size(&store)?;
    let keys = super::keys::read_valid_keys(dir)?;
    let report = super::verify::verify(&store, &keys, |_, seq| progress("verifying", seq, size))?;
    if let Some(failure) = report.failure {
        return Err(LedgerError::NotVerified(failure.to_string()));
    }
    let mut db = PgLog::connect(url)?;
    db.migrate()?;
    let ledger_id = uuid::Uuid::now_v7().to_string();
    let mut import = db.begin_import(&ledger_id, &fingerprints(dir)?, &local_keyring(dir)?)?;
    let mut rows = Vec::with_capacity(CHUNK);
    let mut last_recorded = 0;
    let mut done = 0;
    for item in store.iter_from(Cf::Events, &[])? {
        let (key, value) = item?;
        let seq = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes).map_err(|_| LedgerError::Corrupt)?;
        let stored = StoredEvent::decode(&value).map_err(|_| LedgerError::CorruptEvent(seq))?;
        let doc = stored.doc().map_err(|_| LedgerError::CorruptEvent(seq))?;
        last_recorded = doc.recorded_at.timestamp_micros();
        rows.push(row_of(seq, event_id_key(doc.controller.as_ref(), &doc.id), &stored));
        if rows.len() == CHUNK {
            import.events(&rows)?;
            import.nodes(&leaves(&rows))?;
            done += rows.len() as u64;
            progress("copying", done, size);
            rows.clear();
        }
    }
    import.events(&rows)?;
    import.nodes(&leaves(&rows))?;
    progress("copying", size, size);
    // The tree's nodes from level 1 up; the database keeps the leaves as nodes too (above).
    let mut nodes: Vec<Node> = Vec::with_capacity(CHUNK);
    for item in store.iter_from(Cf::Merkle, &[])? {
        let (key, hash) = item?;
        let (&level, index) = key.split_first().ok_or(LedgerError::Corrupt)?;
        let index = <[u8; 8]>::try_from(index).map(u64::from_be_bytes).map_err(|_| LedgerError::Corrupt)?;
        nodes.push(Node { level, index, hash: hash.to_vec() });
        if nodes.len() == CHUNK {
            import.nodes(&nodes)?;
            nodes.clear();
        }
    }
    import.nodes(&nodes)?;
    let checkpoints = super::checkpoints(&store)?;
    for (cp_size, note) in &checkpoints {
        import.checkpoint(*cp_size, note)?;
    }
    let frontier = Frontier::load(&StoredTree(&store), size)?.to_bytes();
    import.finish(size, last_recorded, &frontier)?;
    let keys = copy_api_keys(dir, url)?;
    let mut batch = Batch::default();
    batch.put(Cf::Meta, FOLLOWS_KEY.to_vec(), ledger_id.clone().into_bytes());
    store.write_synced(&batch)?;
    super::remote::mark_database_node(dir, &ledger_id)?;
    progress("API keys", keys, keys);
    Ok(Migrated { ledger_id, events: size, checkpoints: checkpoints.len() as u64 })
}

/// Copies the data directory's API key records (`apikeys/ID.json`, revoked ones
/// `ID.revoked.json`, their last use `ID.last-used`) into the database as they are, so the
/// same keys work on every node. Returns how many.
fn copy_api_keys(dir: &DataDir, url: &str) -> Result<u64, LedgerError> {
    let Ok(entries) = std::fs::read_dir(dir.api_keys()) else { return Ok(0) };
    let keys = SharedKeys::open(url).map_err(LedgerError::ApiKeys)?;
    let mut copied = 0;
    for entry in entries {
        let path = entry.map_err(LedgerError::ApiKeys)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let (id, revoked) = match (name.strip_suffix(".revoked.json"), name.strip_suffix(".json")) {
            (Some(id), _) => (id, true),
            (None, Some(id)) => (id, false),
            _ => continue,
        };
        let record = std::fs::read(&path).map_err(LedgerError::ApiKeys)?;
        keys.insert(id, &record).map_err(LedgerError::ApiKeys)?;
        if revoked {
            keys.revoke(id, &record).map_err(LedgerError::ApiKeys)?;
        }
        if let Ok(at) = std::fs::read_to_string(dir.api_keys().join(format!("{id}.last-used"))) {
            keys.note_use(id, at.trim()).map_err(LedgerError::ApiKeys)?;
        }
        copied += 1;
    }
    Ok(copied)
}

/// The tree's leaves over `rows` as the database's nodes of level 0 (the embedded store keeps
/// them only in the events' records, [`super::tree::StoredTree`]).
fn leaves(rows: &[LogRow]) -> Vec<Node> {
    rows.iter().map(|r| Node { level: 0, index: r.seq.saturating_sub(1), hash: r.leaf_hash.clone() }).collect()
}
