//! `consent-ledger generate`: write `openapi/openapi.json` and `schemas/*.json` from the code.
//! A test fails when the committed files differ from what this writes.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::http::openapi::{json_schemas, openapi_json};

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The project root to write into.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
}

/// The generated files: path relative to the project root, and content.
pub fn generated_files() -> Vec<(String, String)> {
    let mut files = vec![("openapi/openapi.json".to_owned(), openapi_json())];
    for (name, text) in json_schemas() {
        files.push((format!("schemas/{name}"), text));
    }
    files
}

pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    for (path, text) in generated_files() {
        let full = args.out.join(&path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, text)?;
        println!("wrote {path}");
    }
    Ok(ExitCode::SUCCESS)
}
