//! `consent-ledger backup --to DIR`: a consistent backup of a stopped ledger. While the
//! server runs, use `POST /v1/backups` instead (the server holds the store).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::ledger::backup::backup;
use crate::store::Store;

use super::DataDirArg;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// The new directory to write the backup to (must not exist).
    #[arg(long)]
    pub to: PathBuf,
}

pub fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data.existing()?;
    let store = Store::open(&dir.db())
        .context("opening the store (if the server is running, ask it: POST /v1/backups with an admin key)")?;
    let info = backup(&dir, &store, &args.to).context("backing up")?;
    println!(
        "ok: {} events backed up to {}; check it with `consent-ledger verify --data-dir {}`, restore by serving from it",
        info.log_size,
        info.path.display(),
        info.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
