//! The served API against its own OpenAPI document, with schemathesis (installed by
//! `.ci/setup`): every operation, every check but one, with a key of every kind (a
//! controller's key with every role, the operator's, an SMS webhook secret). Zero server
//! errors and zero answers outside the document.
//!
//! The one check left out is "a schema-valid request must be accepted": the document cannot
//! say the rules that span fields (exactly one of subject/email/phone/post per check, exactly
//! one of `leaf_index`/`id`, a staff actor needs an id, a purpose's channels do not repeat,
//! `at` not in the future, proofs within the current log, `1.0` is not an integer here); they
//! are in `docs/API.md`, and their refusals are still checked to be documented 4xx problems.

use std::path::PathBuf;
use std::process::Command;

use consent_ledger::ledger::DataDir;
use consent_ledger::service::access::{KeyStore, Role};

use crate::helpers::{new_keys, newsletter, start_server};

fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    cache.join("consent-ledger/venv/bin/st")
}

#[test]
fn the_served_api_matches_its_openapi_document() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run .ci/setup (it installs it in a virtual environment)",
        st.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let all = new_keys(dir.path(), "council", &[Role::Check, Role::Record, Role::Audit, Role::Admin]);
    let webhook = new_keys(dir.path(), "council", &[Role::SmsWebhook]);
    let operator =
        KeyStore::open(DataDir::new(dir.path()).api_keys()).expect("keys").create_operator().expect("operator");
    let mut server = start_server(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let r = reqwest::Client::new()
            .put(format!("{}/v1/purposes/newsletter", server.address))
            .bearer_auth(&all)
            .json(&newsletter())
            .send()
            .await
            .expect("purpose");
        assert!(r.status().is_success());
    });
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let runs: [(&str, &str, &[&str]); 3] = [
        ("every controller role", &all, &[]),
        ("the operator", &operator, &["--include-path", "/v1/backups"]),
        ("an SMS webhook secret", &webhook, &["--include-path", "/v1/inbound/sms"]),
    ];
    let mut failed = Vec::new();
    for (who, key, only) in runs {
        let out = Command::new(&st)
            .args(["run"])
            .arg(&doc)
            .args(["--url", &server.address, "-H", &format!("Authorization: Bearer {key}")])
            .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
            .args(["--max-examples", "10", "--no-color", "--seed", "20261130"])
            .args(only)
            .output()
            .expect("run schemathesis");
        let text = String::from_utf8_lossy(&out.stdout);
        // A run that tested nothing (no server, no operation selected) proves nothing.
        let tested = text.lines().any(|l| l.trim_start().starts_with("Tested:") && !l.contains("Tested: 0"));
        if !out.status.success() || !tested {
            let tail: Vec<&str> = text.lines().rev().take(300).collect::<Vec<_>>().into_iter().rev().collect();
            failed.push(format!("with {who}:\n{}\n{}", tail.join("\n"), String::from_utf8_lossy(&out.stderr)));
        }
    }
    server.stop();
    assert!(failed.is_empty(), "schemathesis found answers outside the document:\n{}", failed.join("\n\n"));
}
