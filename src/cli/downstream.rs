//! `consent-ledger downstream keygen|follow`: the small client a downstream system (a mailing
//! house, an SMS contractor) runs. `keygen` makes the Ed25519 key it signs acknowledgements
//! with and prints the verifier key to register (`PUT /v1/downstream/{id}`). `follow` reads the
//! system's feed, runs a command per event (the event's receipt as JSON on standard input,
//! its type, id and seq in `CONSENT_LEDGER_EVENT_TYPE`, `_ID`, `_SEQ`), and after each page
//! acknowledges, signed with that key, the events whose command succeeded. A command that
//! fails stops the follower before that event, so nothing is acknowledged that was not
//! applied; the next run starts from the last acknowledged position (`--state`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use serde_json::{json, Value};

use crate::signing::{Ed25519Signer, Signer, Verifier};

#[derive(Debug, clap::Subcommand)]
pub enum DownstreamCommand {
    /// Make a system's signing key (a new file, mode 0600) and print its verifier key.
    Keygen {
        /// The key's name, e.g. the system's id or domain.
        #[arg(long)]
        name: String,
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Follow a system's feed: run a command per event, then acknowledge what it applied.
    Follow(FollowArgs),
}

#[derive(Debug, clap::Args)]
pub struct FollowArgs {
    /// The ledger's base URL, e.g. https://consent.example.org
    #[arg(long, env = "CONSENT_LEDGER_URL")]
    url: String,
    /// The system's API key (role downstream), from `apikey create --system`.
    #[arg(long, env = "CONSENT_LEDGER_KEY", hide_env_values = true)]
    key: String,
    /// The system's id, as registered.
    #[arg(long)]
    system: String,
    /// The signing key from `downstream keygen`.
    #[arg(long)]
    signing_key: PathBuf,
    /// The command to run per event, through `sh -c`.
    #[arg(long)]
    exec: String,
    /// A file that keeps the last acknowledged seq between runs.
    #[arg(long)]
    state: PathBuf,
    /// Stop once caught up instead of waiting for new events.
    #[arg(long)]
    once: bool,
    /// Seconds between polls once caught up.
    #[arg(long, default_value_t = 5)]
    poll_seconds: u64,
}

pub fn run(cmd: DownstreamCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DownstreamCommand::Keygen { name, out } => {
            let signer = Ed25519Signer::generate(name).context("a key name has no spaces or '+'")?;
            signer.save_new(&out).with_context(|| format!("writing {}", out.display()))?;
            println!("{}", signer.verifier().vkey());
            Ok(ExitCode::SUCCESS)
        }
        DownstreamCommand::Follow(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(follow(args))
        }
    }
}

async fn follow(args: FollowArgs) -> anyhow::Result<ExitCode> {
    let signer = Ed25519Signer::load_existing(&args.signing_key).context("reading --signing-key")?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let base = args.url.trim_end_matches('/').to_owned();
    let mut after: u64 = match std::fs::read_to_string(&args.state) {
        Ok(text) => text.trim().parse().context("--state holds no seq")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).context("reading --state"),
    };
    loop {
        let resp = client
            .get(format!("{base}/v1/downstream/feed?after={after}&limit=500"))
            .bearer_auth(&args.key)
            .send()
            .await
            .context("reading the feed")?;
        if !resp.status().is_success() {
            bail!("the feed answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        let page: Value = resp.json().await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let mut applied = Vec::new();
        let mut failed = false;
        for r in &events {
            let e = &r["event"];
            let mut child = Command::new("sh")
                .args(["-c", &args.exec])
                .env("CONSENT_LEDGER_EVENT_TYPE", e["type"].as_str().unwrap_or_default())
                .env("CONSENT_LEDGER_EVENT_ID", e["id"].as_str().unwrap_or_default())
                .env("CONSENT_LEDGER_EVENT_SEQ", r["seq"].to_string())
                .stdin(Stdio::piped())
                .spawn()
                .context("running --exec")?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(format!("{r}\n").as_bytes())?;
            }
            if !child.wait()?.success() {
                eprintln!("the command failed on event seq {}: stopping before it", r["seq"]);
                failed = true;
                break;
            }
            applied.push(e["id"].clone());
        }
        if !applied.is_empty() {
            acknowledge(&client, &base, &args, &signer, applied.clone()).await?;
        }
        // Past every event applied; on a failure, no further than the last one applied.
        let next = if failed {
            events
                .get(applied.len().saturating_sub(1))
                .filter(|_| !applied.is_empty())
                .map_or(after, |r| r["seq"].as_u64().unwrap_or(after))
        } else {
            page["next_after"].as_u64().unwrap_or(after)
        };
        if next != after {
            after = next;
            std::fs::write(&args.state, format!("{after}\n")).context("writing --state")?;
        }
        if failed {
            return Ok(ExitCode::FAILURE);
        }
        println!("applied {} event(s), up to seq {after}", applied.len());
        if page["has_more"] == true {
            continue;
        }
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(args.poll_seconds)).await;
    }
}

/// Signs and posts `{system, event_ids, applied_at}`.
async fn acknowledge(
    client: &reqwest::Client,
    base: &str,
    args: &FollowArgs,
    signer: &Ed25519Signer,
    ids: Vec<Value>,
) -> anyhow::Result<()> {
    let statement = json!({"system": args.system, "event_ids": ids, "applied_at": chrono::Utc::now().to_rfc3339()});
    let bytes = crate::canonical::to_canonical_bytes(&statement).context("canonical statement")?;
    let body = json!({
        "statement": statement,
        "signature": base64::engine::general_purpose::STANDARD.encode(signer.sign(&bytes)),
        "key_id": hex::encode(signer.verifier().key_id()),
    });
    let resp = client
        .post(format!("{base}/v1/downstream/acknowledgements"))
        .bearer_auth(&args.key)
        .json(&body)
        .send()
        .await
        .context("posting the acknowledgement")?;
    if !resp.status().is_success() {
        bail!("the acknowledgement was refused ({}): {}", resp.status(), resp.text().await.unwrap_or_default());
    }
    Ok(())
}
