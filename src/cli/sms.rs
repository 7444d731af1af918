//! `consent-ledger sms twilio-token`: set or remove a controller's Twilio auth token, read from
//! standard input (so it is in no shell history). With one set, forms posted to the SMS
//! webhook for that controller must carry a valid `X-Twilio-Signature`; works while the
//! server runs.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::ControllerId;
use crate::ledger::shared_keys::SharedKeys;
use crate::service::sms::set_twilio_token;

use super::DataDirArg;

#[derive(Debug, clap::Subcommand)]
pub enum SmsCommand {
    /// Set the controller's Twilio auth token from standard input (or remove it).
    TwilioToken {
        #[command(flatten)]
        data: DataDirArg,
        #[command(flatten)]
        at: super::apikey::KeysAt,
        #[arg(long)]
        controller: String,
        /// Remove the token: forms are then taken on the webhook secret alone.
        #[arg(long)]
        remove: bool,
    },
}

pub fn run(cmd: SmsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SmsCommand::TwilioToken { data, at, controller, remove } => {
            let controller = ControllerId::parse(controller).context("--controller")?;
            // A database ledger keeps the token in its database, for every node.
            let set = |token: Option<&str>| -> anyhow::Result<()> {
                match &at.database_url {
                    Some(url) => SharedKeys::open(url)
                        .and_then(|db| db.set_provider_token(controller.as_str(), "twilio", token.map(str::as_bytes)))
                        .context("the database's provider settings"),
                    None => {
                        let dir = data.existing()?;
                        at.refuse_a_nodes_files(&dir)?;
                        Ok(set_twilio_token(&dir, &controller, token)?)
                    }
                }
            };
            if remove {
                set(None)?;
                println!("removed the Twilio auth token of {controller}");
                return Ok(ExitCode::SUCCESS);
            }
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token).context("reading the token from standard input")?;
            let token = token.trim();
            if token.is_empty() {
                anyhow::bail!("no token on standard input");
            }
            set(Some(token))?;
            println!("set the Twilio auth token of {controller}: forms must now carry X-Twilio-Signature");
            Ok(ExitCode::SUCCESS)
        }
    }
}
