//! `consent-ledger verify`: re-derive every event's canonical bytes, leaf hash and signature
//! and compare the projections with a rebuild from the log. Exit 0 only when all hold.

use std::process::ExitCode;

use anyhow::Context;

use crate::ledger::verify::verify;
use crate::ledger::DataDir;
use crate::signing::Ed25519Signer;
use crate::store::Store;

use super::DataDirArg;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub data: DataDirArg,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(&args.data.data_dir);
    if !dir.db().exists() {
        anyhow::bail!("no ledger in {}", dir.root().display());
    }
    let signer = Ed25519Signer::load_or_create(&dir.signing_key(), "unused").context("reading the signing key")?;
    let store = Store::open_read_only(&dir.db()).context("opening the store")?;
    let mut last_report = std::time::Instant::now();
    let report = verify(&store, &[signer.verifier()], |seq| {
        if last_report.elapsed().as_secs() >= 2 {
            eprintln!("verified {seq} events…");
            last_report = std::time::Instant::now();
        }
    })?;
    match report.failure {
        None => {
            println!("ok: {} events verified; signatures, leaf hashes and projections hold", report.events);
            Ok(ExitCode::SUCCESS)
        }
        Some(f) => {
            println!("FAILED: {f}");
            Ok(ExitCode::from(1))
        }
    }
}
