//! `consent-ledger verify`: re-derive every event's canonical bytes, leaf hash and signature
//! and compare the projections with a rebuild from the log; exit 0 only when all hold.
//! With `--export`, verify an export offline instead: signatures, leaf hashes, the tree head
//! against the signed checkpoints, and consistency with an older checkpoint (`--checkpoint`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::audit::audit_export;
use crate::ledger::keys::read_valid_keys;
use crate::ledger::log_size;
use crate::ledger::verify::{verify_within, Report, Stage};
use crate::ledger::DataDir;
use crate::signing::Ed25519Verifier;
use crate::store::{Store, StoreOptions};

use super::{progress_bar, DataDirArg};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Verify this export file (from `consent-ledger export`) instead of a data directory.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Verify this subject access bundle (`access.json`, from `consent-ledger subject-access`
    /// or `GET /v1/subjects/{s}/access-report`) instead of a data directory.
    #[arg(long, conflicts_with = "export")]
    pub access: Option<PathBuf>,
    /// An older signed checkpoint you kept; the export must be consistent with it.
    #[arg(long, requires = "export")]
    pub checkpoint: Option<PathBuf>,
    /// A verifier key (C2SP `name+id+base64`) you trust, e.g. from `GET /v1/keys`; repeat for
    /// several. Without it, the file's own keys are used.
    #[arg(long = "key")]
    pub keys: Vec<String>,
    /// Megabytes the row-by-row comparison of a data directory's projections may hold. The
    /// projections are compared with the log by sums in constant memory; only when those
    /// differ are the rows compared one by one, to name the first wrong, and past this figure
    /// in several passes over the log (the first checks every event again, the others derive
    /// the rows again), so memory stays bounded however long the log is.
    #[arg(long, default_value_t = (crate::ledger::verify::VERIFY_MEMORY >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub memory_mb: u64,
    /// Verify the log a PostgreSQL database holds (as `serve --database-url`) instead of a
    /// data directory, without a node: every event, the Merkle nodes, the checkpoints and
    /// the head row. Runs against a live database (it checks the log up to the head it
    /// finds first). Not read from the environment, so that `verify --data-dir` on a node
    /// still checks the node's replica.
    #[arg(long, conflicts_with_all = ["export", "access", "memory_mb"])]
    pub database_url: Option<String>,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.database_url {
        return verify_database(url);
    }
    match (&args.export, &args.access) {
        (Some(path), _) => verify_export(path, &args),
        (None, Some(path)) => verify_access_bundle(path, &args),
        (None, None) => verify_store(&args),
    }
}

fn trusted_keys(args: &VerifyArgs) -> anyhow::Result<Vec<Ed25519Verifier>> {
    args.keys
        .iter()
        .map(|k| Ed25519Verifier::from_vkey(k).with_context(|| "--key is not a C2SP Ed25519 verifier key"))
        .collect()
}

fn verify_access_bundle(path: &PathBuf, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match crate::audit::verify_access(&text, &trusted_keys(args)?) {
        Ok(r) => {
            println!(
                "ok: the bundle's signature, {} event(s) and {} notice(s) verify, each in the log at the checkpoint of size {}",
                r.events, r.notices, r.tree_size
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn verify_export(path: &PathBuf, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let keys = trusted_keys(args)?;
    let kept = match &args.checkpoint {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let bar = progress_bar("verifying");
    let result = audit_export(std::io::BufReader::new(file), &keys, kept.as_deref(), |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    if keys.is_empty() {
        eprintln!("note: checked against the keys inside the export; pass --key with the published key to pin it");
    }
    match result {
        Ok(r) => {
            println!(
                "ok: {} leaves, {} events of the controller; every signature verifies and the tree head matches {} signed checkpoint(s){}",
                r.tree_size,
                r.events,
                r.checkpoints,
                if kept.is_some() { "; consistent with the kept checkpoint" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAILED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn verify_database(url: &str) -> anyhow::Result<ExitCode> {
    let bar = progress_bar("verifying");
    let report = crate::ledger::db_verify::verify_database(url, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .context("reading the database")?;
    bar.finish_and_clear();
    match report.failure {
        None => {
            println!(
                "ok: {} events in the database verified; signatures, leaf hashes, {} Merkle nodes, {} signed checkpoint(s) and the head hold",
                report.events, report.nodes, report.checkpoints
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(f) => {
            println!("FAILED: {f}");
            Ok(ExitCode::from(1))
        }
    }
}

fn verify_store(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data.existing()?;
    // One pass over every row: the scans leave the block cache alone.
    let store = Store::open_read_only_with(&dir.db(), StoreOptions::one_pass()).context("opening the store")?;
    let memory = usize::try_from(args.memory_mb << 20).unwrap_or(usize::MAX);
    let report = verify_with_progress(&dir, &store, memory)?;
    match report.failure {
        None => {
            println!("ok: {} events verified; signatures, leaf hashes, tree and projections hold", report.events);
            Ok(ExitCode::SUCCESS)
        }
        Some(f) => {
            println!("FAILED: {f}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Verifies the store of `dir` against its keyring, with a progress bar on a terminal; the
/// comparison holds at most about `memory` bytes of expected rows.
pub(super) fn verify_with_progress(dir: &DataDir, store: &Store, memory: usize) -> anyhow::Result<Report> {
    let keys = read_valid_keys(dir).context("reading the signing keys")?;
    let bar = progress_bar("verifying");
    bar.set_length(log_size(store)?);
    let mut comparing = None;
    let report = verify_within(store, &keys, memory, |stage, seq| {
        if let Stage::Comparing { pass, passes } = stage {
            if comparing != Some(pass) {
                comparing = Some(pass);
                bar.set_message(format!(
                    "the projections differ from the log: comparing row by row to name the first (pass {pass} of {passes})"
                ));
            }
        }
        bar.set_position(seq)
    })?;
    bar.finish_and_clear();
    Ok(report)
}
