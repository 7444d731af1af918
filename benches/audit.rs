//! Offline verification speed: builds a signed export of `EVENTS` events (default 1 000 000;
//! one in four another controller's, by leaf hash only) and times `audit_export` on it.
//! Run with `cargo bench --bench audit`.

use std::io::{BufWriter, Write};
use std::time::Instant;

use consent_ledger::audit::audit_export;
use consent_ledger::canonical::to_canonical_bytes;
use consent_ledger::format::export::ExportLine;
use consent_ledger::format::leaf_hash;
use consent_ledger::log::checkpoint::Checkpoint;
use consent_ledger::log::merkle::Frontier;
use consent_ledger::signing::{Ed25519Signer, Signer};
use serde_json::json;

fn main() {
    let n: u64 = std::env::var("EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let signer = Ed25519Signer::generate("bench.example/consent-ledger".into()).expect("key");
    let vkey = signer.verifier().vkey();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("export.ndjson");
    let key_id = hex::encode(signer.key_id());
    let start = Instant::now();
    let mut frontier = Frontier::default();
    let mut leaves: Vec<ExportLine> = Vec::with_capacity(n as usize);
    for i in 0..n {
        let seq = i + 1;
        let controller = if i % 4 == 3 { "other" } else { "council" };
        let event = json!({
            "v": 1, "id": format!("0192f3a4-5b6c-7d8e-9f01-{:012x}", i), "seq": seq, "controller": controller,
            "type": "consent.granted", "subject": format!("T-{i}"), "purpose": "newsletter", "basis": "consent",
            "occurred_at": "2026-11-01T10:00:00.000000Z", "recorded_at": "2026-11-01T10:00:05.123456Z",
            "method": "web_form", "actor": {"kind": "subject"}
        });
        let bytes = to_canonical_bytes(&event).expect("jcs");
        let leaf = leaf_hash(&bytes);
        frontier.push(leaf);
        leaves.push(if controller == "council" {
            let sig = signer.sign(&bytes);
            let signature = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig);
            ExportLine::Event { leaf_index: i, event, signature, key_id: key_id.clone() }
        } else {
            ExportLine::Leaf { leaf_index: i, leaf_hash: hex::encode(leaf) }
        });
    }
    let cp = Checkpoint { origin: signer.name().to_owned(), size: n, root: frontier.root() };
    let mut w = BufWriter::new(std::fs::File::create(&path).expect("create"));
    let line = |w: &mut BufWriter<std::fs::File>, l: &ExportLine| {
        serde_json::to_writer(&mut *w, l).expect("write");
        w.write_all(b"\n").expect("write");
    };
    line(
        &mut w,
        &ExportLine::Header {
            format: "consent-ledger-export".into(),
            version: 1,
            controller: "council".into(),
            tree_size: n,
            origin: signer.name().to_owned(),
        },
    );
    line(&mut w, &ExportLine::Key { vkey: vkey.clone(), first_seq: 1, last_seq: None });
    line(&mut w, &ExportLine::Checkpoint { note: cp.sign(signer.name(), &signer) });
    for l in &leaves {
        line(&mut w, l);
    }
    w.flush().expect("flush");
    drop(leaves);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("built an export of {n} leaves ({} MB) in {:.1} s", size / 1_000_000, start.elapsed().as_secs_f64());

    let verifier = consent_ledger::signing::Ed25519Verifier::from_vkey(&vkey).expect("vkey");
    let start = Instant::now();
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).expect("open"));
    let report = audit_export(file, &[verifier], None, |_, _| {}).expect("the export verifies");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "verified {} leaves ({} signed events) in {secs:.2} s: {:.0} leaves/s on {} cores",
        report.tree_size,
        report.events,
        report.tree_size as f64 / secs,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
}
