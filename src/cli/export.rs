//! `consent-ledger export --controller C`: write the controller's signed events, the leaf
//! hashes of everyone else's, the checkpoints and the keys as NDJSON (see `docs/FORMAT.md`).
//! Works while a server runs (the store is opened read-only).

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::ControllerId;
use crate::ledger::export::export;
use crate::ledger::keys::read_valid_keys;
use crate::store::Store;

use super::{progress_bar, DataDirArg};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// The controller whose events are exported in full.
    #[arg(long)]
    pub controller: String,
    /// Output file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let controller = ControllerId::parse(args.controller).context("--controller")?;
    let dir = args.data.existing()?;
    let keys = read_valid_keys(&dir).context("reading the signing keys")?;
    let store = Store::open_read_only(&dir.db()).context("opening the store")?;
    let sink: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = BufWriter::new(sink);
    let bar = progress_bar("exporting");
    let size = export(
        &store,
        &keys,
        controller.as_str(),
        |line| {
            serde_json::to_writer(&mut w, line)?;
            w.write_all(b"\n")
        },
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    w.flush()?;
    bar.finish_and_clear();
    eprintln!("exported a log of {size} events for controller {controller}");
    Ok(ExitCode::SUCCESS)
}
