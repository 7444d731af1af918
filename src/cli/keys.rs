//! `consent-ledger keys list | rotate`: the signing keys and their rotation.

use std::process::ExitCode;

use anyhow::Context;

use crate::ledger::keys::{read_valid_keys, rotate_key};
use crate::ledger::DataDir;
use crate::signing::Verifier;

use super::DataDirArg;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Print every signing key (C2SP verifier key) with the seqs it signed.
    List {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Make a new signing key; the old key signs a `key.rotated` event naming it. Stop the
    /// server first.
    Rotate {
        #[command(flatten)]
        data: DataDirArg,
    },
}

pub fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::List { data } => {
            for k in read_valid_keys(&DataDir::new(&data.data_dir)).context("reading the keys")? {
                let until = k.last_seq.map(|l| l.to_string()).unwrap_or_else(|| "now".into());
                println!(
                    "{}  id {}  seqs {}..{}",
                    k.verifier.vkey(),
                    hex::encode(k.verifier.key_id()),
                    k.first_seq,
                    until
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate { data } => {
            let dir = data.existing()?;
            let r = rotate_key(&dir).context("rotating the key (is the server still running? stop it first)")?;
            println!("old key {} signed its last event, the rotation, at seq {}", r.old_vkey, r.seq);
            println!("new key {}", r.new_vkey);
            Ok(ExitCode::SUCCESS)
        }
    }
}
