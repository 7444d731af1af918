//! `consent-ledger apikey create`: make an API key for one controller and print it once.

use std::process::ExitCode;

use anyhow::Context;

use crate::access::{KeyStore, Role};
use crate::domain::ControllerId;
use crate::ledger::DataDir;

use super::DataDirArg;

#[derive(Debug, clap::Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; it is printed once and stored only as a hash.
    Create {
        #[command(flatten)]
        data: DataDirArg,
        /// The controller (organisation) the key belongs to.
        #[arg(long)]
        controller: String,
        /// A role of the key; repeat for several.
        #[arg(long = "role", value_enum, required = true)]
        roles: Vec<Role>,
    },
}

pub fn run(cmd: ApikeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApikeyCommand::Create { data, controller, roles } => {
            let controller = ControllerId::parse(controller).context("--controller")?;
            let dir = DataDir::new(&data.data_dir);
            dir.ensure().context("creating the data directory")?;
            let store = KeyStore::open(dir.api_keys())?;
            println!("{}", store.create(&controller, &roles)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
