//! `consent-ledger apikey create|list|revoke`: make an API key for one controller and print it
//! once; list the keys (never a secret); revoke one (a running server stops taking it within a
//! second).

use std::process::ExitCode;

use anyhow::Context;

use crate::domain::{ControllerId, Token};
use crate::ledger::DataDir;
use crate::service::access::{KeyStore, Role};

use super::DataDirArg;

/// Where the keys are: the data directory's `apikeys/`, or a database ledger's database.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysAt {
    /// The keys of a ledger kept in PostgreSQL live in its database, shared by every node.
    #[arg(long, env = "CONSENT_LEDGER_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl KeysAt {
    /// Refuses the files of a database ledger's node: its keys and providers' tokens are in
    /// the database, and a key revoked only in the node's files would go on working.
    pub fn refuse_a_nodes_files(&self, dir: &DataDir) -> anyhow::Result<()> {
        if self.database_url.is_none() && crate::ledger::is_database_node(dir).context("reading the data directory")? {
            anyhow::bail!(
                "this data directory is a node of a ledger kept in PostgreSQL: its API keys and SMS providers' \
                 tokens are kept in the database for every node; give --database-url (or \
                 CONSENT_LEDGER_DATABASE_URL)"
            );
        }
        Ok(())
    }
}

fn key_store(data: &DataDirArg, at: &KeysAt, creating: bool) -> anyhow::Result<KeyStore> {
    if let Some(url) = &at.database_url {
        return KeyStore::on_database(url).context("opening the database's API keys");
    }
    let dir = if creating {
        let dir = DataDir::new(&data.data_dir);
        dir.ensure().context("creating the data directory")?;
        dir
    } else {
        data.existing()?
    };
    at.refuse_a_nodes_files(&dir)?;
    Ok(KeyStore::open(dir.api_keys())?)
}

#[derive(Debug, clap::Subcommand)]
pub enum ApikeyCommand {
    /// Create a key; it is printed once and stored only as a hash.
    Create {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        at: KeysAt,
        /// The controller (organisation) the key belongs to.
        #[arg(long, required_unless_present = "operator", conflicts_with = "operator")]
        controller: Option<String>,
        /// A role of the key; repeat for several.
        #[arg(long = "role", value_enum, required_unless_present_any = ["operator", "system"], conflicts_with = "operator")]
        roles: Vec<Role>,
        /// A downstream system's key instead (role `downstream` only), bound to this system id
        /// (`PUT /v1/downstream/{id}` registers it).
        #[arg(long, conflicts_with_all = ["operator", "roles"], requires = "controller")]
        system: Option<String>,
        /// A key of the deployment's operator instead: it belongs to no controller and may
        /// only do deployment-wide operations (backups).
        #[arg(long)]
        operator: bool,
    },
    /// List every key: id, controller, roles, created, last used, revoked. Never a secret.
    List {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        at: KeysAt,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (the 16 hex digits after `clk_`); works while the server runs.
    Revoke {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        at: KeysAt,
        id: String,
    },
}

pub fn run(cmd: ApikeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApikeyCommand::Create { data, at, controller, roles, operator, system } => {
            let store = key_store(&data, &at, true)?;
            let key = match (operator, controller, system) {
                (true, _, _) => store.create_operator()?,
                (false, Some(c), Some(s)) => store.create_for_system(
                    &ControllerId::parse(c).context("--controller")?,
                    &Token::parse(s).context("--system")?,
                )?,
                (false, Some(c), None) => store.create(&ControllerId::parse(c).context("--controller")?, &roles)?,
                (false, None, _) => anyhow::bail!("give --controller (or --operator)"),
            };
            println!("{key}");
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::List { data, at, json } => {
            let store = key_store(&data, &at, false)?;
            let keys = store.list()?;
            let day = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
            };
            if !json {
                println!(
                    "{:<16}  {:<20}  {:<28}  {:<16}  {:<16}  REVOKED",
                    "ID", "CONTROLLER", "ROLES", "CREATED", "LAST USED"
                );
            }
            for k in keys {
                if json {
                    println!("{}", serde_json::to_string(&k)?);
                    continue;
                }
                let roles: Vec<String> = k
                    .roles
                    .iter()
                    .map(|r| {
                        serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                    })
                    .collect();
                println!(
                    "{:<16}  {:<20}  {:<28}  {:<16}  {:<16}  {}",
                    k.id,
                    k.controller.as_ref().map_or("(operator)", |c| c.as_str()),
                    roles.join(","),
                    day(Some(k.created_at)),
                    day(k.last_used),
                    day(k.revoked_at)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::Revoke { data, at, id } => {
            let store = key_store(&data, &at, false)?;
            let at = store.revoke(&id).with_context(|| "revoking the key (give the 16 hex digits after clk_)")?;
            println!("revoked {id} at {}", at.to_rfc3339());
            Ok(ExitCode::SUCCESS)
        }
    }
}
