//! The transparency log and operations: checkpoints, inclusion and consistency proofs, a
//! receipt with its proof, the signing keys, the audit export, backups, readiness and
//! metrics. Public reads take no controller: the log's leaves reveal nothing but hashes.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Service, ServiceError};
use domain::ControllerId;
use format::export::ExportLine;
use format::Receipt;
use log::merkle::Hash;
use log::LogError;
use signing::Verifier;

impl From<LogError> for ServiceError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::OutOfRange => ServiceError::OutOfRange,
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

/// Which leaf an inclusion proof is for: by index (public), or by a controller's event id
/// (ids are the controller's own, so only its key may ask by one).
#[derive(Debug, Clone)]
pub enum InclusionBy {
    Index(u64),
    Id(ControllerId, Uuid),
}

/// An inclusion proof of one leaf.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_hash: Hash,
    /// The RFC 6962 audit path, leaf to root.
    pub hashes: Vec<Hash>,
}

/// A receipt with a signed checkpoint that covers it and the inclusion proof to it.
#[derive(Debug, Clone)]
pub struct ReceiptBundle {
    pub receipt: Receipt,
    pub checkpoint: String,
    pub tree_size: u64,
    pub inclusion_proof: Vec<Hash>,
    /// The C2SP verifier key of the current signing key.
    pub vkey: String,
}

/// One signing key as `GET /v1/keys` lists it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Lower-case hex C2SP key id.
    pub key_id: String,
    pub vkey: String,
    pub name: String,
    /// Base64 raw Ed25519 public key.
    pub public_key: String,
    pub current: bool,
    pub first_seq: u64,
    pub last_seq: Option<u64>,
}

/// A backup written.
#[derive(Debug, Clone)]
pub struct BackupMade {
    /// The backup's directory name under the backup directory (its time).
    pub name: String,
    pub log_size: u64,
}

/// Whether a directory name is one a backup was given (`%Y%m%dT%H%M%S%.3fZ`).
fn is_backup_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 20
        && b[8] == b'T'
        && b[15] == b'.'
        && b[19] == b'Z'
        && b.iter().enumerate().all(|(i, c)| matches!(i, 8 | 15 | 19) || c.is_ascii_digit())
}

/// Removes the oldest backups in `dir` beyond the newest `keep`; answers how many went.
fn prune_backups(dir: &Path, keep: usize) -> std::io::Result<usize> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_backup_name(n))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep.max(1));
    for name in &names[..excess] {
        std::fs::remove_dir_all(dir.join(name))?;
    }
    Ok(excess)
}

impl Service {
    /// The seq of the last durable event (0 when the log is empty).
    pub fn log_size(&self) -> u64 {
        self.ledger.committed_seq()
    }

    /// A receiver that changes whenever events become durable; its value is the last seq.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.ledger.subscribe()
    }

    /// Waits (at most `timeout`) until the log holds `seq`; true when it does.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        self.ledger.wait_for(seq, timeout).await
    }

    /// The latest signed checkpoint: its tree size and C2SP signed note.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, ServiceError> {
        Ok(self.ledger.latest_checkpoint()?)
    }

    fn latest_size(&self) -> Result<u64, ServiceError> {
        Ok(self.latest_checkpoint()?.map_or(0, |(size, _)| size))
    }

    /// Proof that a leaf is in the log at `tree_size` (default: the latest checkpoint's).
    pub fn inclusion_proof(&self, by: InclusionBy, tree_size: Option<u64>) -> Result<InclusionProof, ServiceError> {
        let index = match by {
            InclusionBy::Index(i) => i,
            InclusionBy::Id(controller, id) => {
                self.ledger.seq_of(Some(&controller), id)?.ok_or(ServiceError::NotFound("event"))? - 1
            }
        };
        let size = match tree_size {
            Some(s) => s,
            None => self.latest_size()?,
        };
        let hashes = self.ledger.inclusion_proof(index, size)?;
        let stored = self.ledger.event(index + 1)?.ok_or_else(|| ServiceError::Internal("a leaf is missing".into()))?;
        Ok(InclusionProof { leaf_index: index, tree_size: size, leaf_hash: stored.leaf_hash, hashes })
    }

    /// Proof that the log at `from` is a prefix of the log at `to` (default: the latest
    /// checkpoint's size); answers `to` and the proof.
    pub fn consistency_proof(&self, from: u64, to: Option<u64>) -> Result<(u64, Vec<Hash>), ServiceError> {
        let to = match to {
            Some(t) => t,
            None => self.latest_size()?,
        };
        Ok((to, self.ledger.consistency_proof(from, to)?))
    }

    /// The receipt of one of the controller's events with a checkpoint that covers it and
    /// the inclusion proof. A checkpoint covering a new event is signed within one interval;
    /// this waits up to two.
    pub async fn receipt_bundle(&self, controller: &ControllerId, id: Uuid) -> Result<ReceiptBundle, ServiceError> {
        let receipt = self.receipt(controller, id)?;
        let internal = |e: ServiceError| ServiceError::Internal(e.to_string());
        let (tree_size, checkpoint) = self.covering_checkpoint(receipt.seq).await?;
        let inclusion_proof =
            self.ledger.inclusion_proof(receipt.leaf_index, tree_size).map_err(|e| internal(e.into()))?;
        Ok(ReceiptBundle { receipt, checkpoint, tree_size, inclusion_proof, vkey: self.ledger.verifier().vkey() })
    }

    /// The latest signed checkpoint once it covers `seq`: one covering a new event is signed
    /// within one interval; this waits up to two. Answers its size and signed note.
    pub(super) async fn covering_checkpoint(&self, seq: u64) -> Result<(u64, String), ServiceError> {
        let internal = |e: ServiceError| ServiceError::Internal(e.to_string());
        let deadline = Instant::now() + self.ledger.checkpoint_interval() * 2 + Duration::from_millis(200);
        loop {
            match self.latest_checkpoint().map_err(internal)? {
                Some((size, note)) if size >= seq => return Ok((size, note)),
                _ if Instant::now() >= deadline => {
                    return Err(ServiceError::NotYet("no checkpoint covers these events yet; retry shortly"))
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// An inclusion proof of a leaf at `tree_size`, as hashes.
    pub(super) fn proof_at(&self, leaf_index: u64, tree_size: u64) -> Result<Vec<Hash>, ServiceError> {
        Ok(self.ledger.inclusion_proof(leaf_index, tree_size)?)
    }

    /// The public keys that sign events, newest first, each with the seqs it signed.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let b64 = base64::engine::general_purpose::STANDARD;
        self.ledger
            .keys()
            .iter()
            .rev()
            .map(|k| {
                let v = &k.verifier;
                KeyInfo {
                    key_id: hex::encode(v.key_id()),
                    vkey: v.vkey(),
                    name: v.name().to_owned(),
                    public_key: b64.encode(v.public_key().as_bytes()),
                    current: k.last_seq.is_none(),
                    first_seq: k.first_seq,
                    last_seq: k.last_seq,
                }
            })
            .collect()
    }

    /// Writes the controller's audit export (up to the latest checkpoint) line by line.
    /// Blocking: run it off the async workers.
    pub fn export(
        &self,
        controller: &ControllerId,
        out: impl FnMut(&ExportLine) -> std::io::Result<()>,
    ) -> Result<u64, ServiceError> {
        Ok(self.ledger.export(controller.as_str(), out)?)
    }

    /// Backs the running ledger up into a new directory named by `at` under `dir` (default
    /// `<data dir>/backups`), then removes the oldest backups there beyond the newest `keep`.
    /// One backup at a time: another asked for meanwhile is refused. Blocking.
    pub fn backup(&self, dir: Option<&Path>, at: DateTime<Utc>, keep: usize) -> Result<BackupMade, ServiceError> {
        use std::sync::atomic::Ordering;
        if self.backup_running.swap(true, Ordering::AcqRel) {
            return Err(ServiceError::Conflict("a backup is being written; try again when it is done".into()));
        }
        let result = self.backup_now(dir, at, keep);
        self.backup_running.store(false, Ordering::Release);
        result
    }

    fn backup_now(&self, dir: Option<&Path>, at: DateTime<Utc>, keep: usize) -> Result<BackupMade, ServiceError> {
        let internal = |e: std::io::Error| ServiceError::Internal(e.to_string());
        let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| self.ledger.data_dir().root().join("backups"));
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let name = at.format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let info = self.ledger.backup(&dir.join(&name))?;
        let removed = prune_backups(&dir, keep).map_err(internal)?;
        if removed > 0 {
            tracing::info!(removed, keep, "older backups removed");
        }
        Ok(BackupMade { name, log_size: info.log_size })
    }

    /// Readiness: the store answers a read. The log size when it does.
    pub fn ready(&self) -> Result<u64, ServiceError> {
        self.ledger.readable()?;
        Ok(self.ledger.committed_seq())
    }

    /// The Prometheus text of every metric, with the log and checkpoint sizes.
    pub fn metrics_text(&self) -> String {
        let checkpoint = self.latest_checkpoint().ok().flatten().map_or(0, |(size, _)| size);
        let cache = self.ledger.facts_cache();
        let mut text = metrics::METRICS.render(&metrics::Gauges {
            log_size: self.ledger.committed_seq(),
            checkpoint_size: checkpoint,
            storage_full: self.ledger.storage_full(),
            database: self.ledger.database(),
            facts_cache: metrics::CacheFigures {
                entries: cache.entries,
                bytes: cache.bytes,
                budget: cache.budget,
                hits: cache.hits,
                misses: cache.misses,
            },
            store_cache: self.ledger.store_cache(),
        });
        // Counted when scraped: each system's feed since its last acknowledgement.
        match self.overdue_counts(Utc::now()) {
            Ok(counts) if !counts.is_empty() => {
                text.push_str(
                    "# HELP consent_ledger_downstream_overdue Events past a downstream system's deadline without its acknowledgement.\n\
# TYPE consent_ledger_downstream_overdue gauge\n",
                );
                for (controller, system, n) in counts {
                    text.push_str(&format!(
                        "consent_ledger_downstream_overdue{{controller=\"{controller}\",system=\"{system}\"}} {n}\n"
                    ));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "downstream overdue counts failed"),
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_backup_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let memory = store::memory::MemoryStore::new();
        let ledger = ledger::Ledger::open_on(
            &ledger::DataDir::new(dir.path()),
            store::Store::memory(&memory),
            ledger::Options::new("test.example/ledger"),
        )
        .unwrap();
        let service = Service::new(ledger);
        // A backup is being written: another is refused, and nothing is written for it.
        service.backup_running.store(true, std::sync::atomic::Ordering::Release);
        let to = dir.path().join("backups");
        assert!(matches!(service.backup(Some(&to), Utc::now(), 7), Err(ServiceError::Conflict(_))));
        assert!(!to.exists());
    }
}
