//! Tampering: a byte changed in a stored event, or a projection row rewritten, is found by
//! `consent-ledger verify`, which names the event.

use consent_ledger::format::StoredEvent;
use consent_ledger::ledger::DataDir;
use consent_ledger::store::{Batch, Cf, Store};
use serde_json::json;

use crate::helpers::{bin, spawn_app, staff};

fn verify(dir: &std::path::Path) -> (bool, String) {
    let out = bin().args(["verify", "--data-dir"]).arg(dir).output().expect("run verify");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn ledger_with_events() -> (crate::helpers::TestApp, std::path::PathBuf) {
    let app = spawn_app().await;
    app.with_purposes().await;
    for i in 0..5 {
        app.record(
            json!({"type": "consent.granted", "subject": format!("T-{i}"), "purpose": "newsletter", "actor": staff()}),
        )
        .await;
    }
    let dir = app.dir.path().to_path_buf();
    (app, dir)
}

/// Rewrites the stored record at `seq` with `f` applied (as an attacker with disk access could).
fn rewrite(dir: &std::path::Path, seq: u64, f: impl FnOnce(&mut StoredEvent)) {
    let store = Store::open(&DataDir::new(dir).db()).expect("open");
    let raw = store.get(Cf::Events, &seq.to_be_bytes()).expect("get").expect("present");
    let mut ev = StoredEvent::decode(&raw).expect("decode");
    f(&mut ev);
    let mut b = Batch::default();
    b.put(Cf::Events, seq.to_be_bytes().to_vec(), ev.encode());
    store.write_synced(&b).expect("write");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// A copy of the live data directory, taken while the server keeps running (RocksDB files are
/// append-only or immutable, and the WAL was synced before each answer).
fn snapshot(dir: &std::path::Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(dir, copy.path());
    let _ = std::fs::remove_file(copy.path().join("db/LOCK"));
    copy
}

#[tokio::test]
async fn verify_accepts_an_untouched_store_and_names_a_flipped_byte() {
    let (_app, dir) = ledger_with_events().await;
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    assert!(out.contains("7 events"), "{out}");

    let copy = snapshot(&dir);
    rewrite(copy.path(), 4, |ev| {
        // Flip one byte inside the subject id of the signed JSON.
        let at = ev.bytes.windows(3).position(|w| w == b"T-1").expect("subject in bytes");
        ev.bytes[at + 2] ^= 0x01;
    });
    let (ok, out) = verify(copy.path());
    assert!(!ok, "{out}");
    assert!(out.contains("event seq 4"), "{out}");
}

/// An export reads the events in one pass: one gone from the store stops it, named, instead
/// of the export skipping it or answering another event in its place.
#[tokio::test]
async fn an_export_of_a_store_missing_an_event_fails_naming_it() {
    let (app, dir) = ledger_with_events().await;
    crate::audit::checkpoint_covering(&app, app.log_size().await).await;
    let export = |from: &std::path::Path| {
        let out = bin().args(["export", "--controller", "council", "--data-dir"]).arg(from).output().expect("export");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).lines().count(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let copy = snapshot(&dir);
    let (ok, lines, err) = export(copy.path());
    assert!(ok, "{err}");
    assert!(lines >= 7, "{lines} lines");
    let store = Store::open(&DataDir::new(copy.path()).db()).expect("open");
    let mut b = Batch::default();
    b.delete(Cf::Events, 4u64.to_be_bytes().to_vec());
    store.write_synced(&b).expect("write");
    drop(store);
    let (ok, _, err) = export(copy.path());
    assert!(!ok, "an export of a log with a hole succeeded");
    assert!(err.contains("stored event 4 is missing"), "{err}");
}

#[tokio::test]
async fn verify_names_a_forged_signature_and_a_rewritten_projection() {
    let (_app, dir) = ledger_with_events().await;
    let copy = snapshot(&dir);
    rewrite(copy.path(), 5, |ev| ev.signature[10] ^= 0x80);
    let (ok, out) = verify(copy.path());
    assert!(!ok);
    assert!(out.contains("event seq 5") && out.contains("signature"), "{out}");

    // Re-signing is impossible without the key, but an attacker could rewrite a projection
    // (say, turn a withdrawal into nothing): the rebuild comparison catches it.
    let copy = snapshot(&dir);
    {
        let store = Store::open(&DataDir::new(copy.path()).db()).expect("open");
        let key = b"council\0sT-2\0".to_vec();
        assert!(store.get(Cf::Facts, &key).expect("get").is_some_and(|row| !row.is_empty()));
        let mut b = Batch::default();
        b.put(Cf::Facts, key, Vec::new());
        store.write_synced(&b).expect("write");
    }
    let (ok, out) = verify(copy.path());
    assert!(!ok);
    assert!(out.contains("projection facts") && out.contains("seq 5"), "{out}");

    // The comparison row by row (which names the row once the sums differ), held to a sliver
    // of memory, compares the rows in many passes (a few hundred bytes: one pass for every few
    // rows): the untouched store still verifies and the rewritten row is still named. Through
    // `verify_within`, the sums answer for the untouched store and the rows name the rewrite.
    use consent_ledger::ledger::verify::{verify_row_by_row, verify_within};
    let open = |dir: &std::path::Path| {
        let data = DataDir::new(dir);
        let keys = consent_ledger::ledger::keys::read_valid_keys(&data).expect("keys");
        (Store::open_read_only(&data.db()).expect("open"), keys)
    };
    // The progress says which stage it reports: a second read of the log is announced.
    use consent_ledger::ledger::verify::Stage;
    for memory in [400, 3000] {
        for row_by_row in [true, false] {
            let check = |dir: &std::path::Path| {
                let (store, keys) = open(dir);
                let mut stages = Vec::new();
                let mut note = |stage, _| {
                    if stages.last() != Some(&stage) {
                        stages.push(stage)
                    }
                };
                let report = if row_by_row {
                    verify_row_by_row(&store, &keys, memory, &mut note)
                } else {
                    verify_within(&store, &keys, memory, &mut note)
                };
                (report.expect("verify"), stages)
            };
            let (report, stages) = check(&dir);
            assert_eq!((report.events, report.failure), (7, None), "with {memory} bytes");
            if !row_by_row {
                assert_eq!(stages, [Stage::Checking]);
            }
            let (report, stages) = check(copy.path());
            let failure = report.failure.map(|f| f.to_string()).unwrap_or_default();
            assert!(failure.contains("projection facts") && failure.contains("seq 5"), "{failure}");
            match stages.as_slice() {
                [Stage::Comparing { pass: 1, .. }, ..] if row_by_row => {}
                [Stage::Checking, Stage::Comparing { pass: 1, .. }, ..] if !row_by_row => {}
                other => panic!("{other:?}"),
            }
        }
    }
    // The command line takes the bound in megabytes.
    let out = bin().args(["verify", "--memory-mb", "1", "--data-dir"]).arg(&dir).output().expect("run verify");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_store_of_another_format_is_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    drop(consent_ledger::ledger::Ledger::open(&data, "t/ledger").expect("a new store opens"));
    {
        let store = Store::open(&data.db()).unwrap();
        let mut b = Batch::default();
        b.put(Cf::Meta, b"format".to_vec(), b"99".to_vec());
        store.write_synced(&b).unwrap();
    }
    let err = consent_ledger::ledger::Ledger::open(&data, "t/ledger").err().expect("refused");
    let ours = format!("store format {}", consent_ledger::ledger::STORE_FORMAT);
    let said = err.to_string();
    assert!(said.contains("format 99") && said.contains(&ours), "{said}");
    // A newer format is not one a rebuild brings up: the message does not send the user there.
    assert!(said.contains("serve it with that build") && !said.contains("rebuild"), "{said}");
}

/// Every projection row of a store, by column family, in key order.
fn projections(dir: &std::path::Path) -> Vec<(Cf, Vec<u8>, Vec<u8>)> {
    let store = Store::open_read_only(&DataDir::new(dir).db()).expect("open");
    let mut rows = Vec::new();
    for cf in Cf::PROJECTIONS {
        for item in store.iter_from(cf, &[]).expect("iter") {
            let (k, v) = item.expect("row");
            rows.push((cf, k.to_vec(), v.to_vec()));
        }
    }
    rows
}

fn rebuild(dir: &std::path::Path) -> (bool, String) {
    let out = bin().args(["rebuild", "--data-dir"]).arg(dir).output().expect("run rebuild");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn rebuild_restores_damaged_projections_exactly_and_a_cut_off_rebuild_is_refused_until_redone() {
    let (app, dir) = ledger_with_events().await;
    // A rebuild needs the store alone: with the server running it refuses. (Checked before
    // any snapshot: copying the LOCK file closes a descriptor of it in this process, which
    // drops this process's POSIX lock.)
    let (ok, out) = rebuild(&dir);
    assert!(!ok, "the running server holds the store: {out}");
    app.record(json!({"type": "contact.linked", "subject": "T-1", "contact": {"channel": "email", "address": "jane@example.org"}, "actor": staff()}))
        .await;
    app.record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    let copy = snapshot(&dir);
    let before = projections(copy.path());
    assert!(before.iter().any(|(cf, ..)| *cf == Cf::Merkle) && before.iter().any(|(cf, ..)| *cf == Cf::Facts));

    // Damage: a withdrawal's facts row emptied, a feed row dropped, a stray row added.
    {
        let store = Store::open(&DataDir::new(copy.path()).db()).expect("open");
        let mut b = Batch::default();
        b.put(Cf::Facts, b"council\0sT-1\0".to_vec(), Vec::new());
        let (feed_key, _) = store.last(Cf::Feed).expect("last").expect("a feed row");
        b.delete(Cf::Feed, feed_key.to_vec());
        b.put(Cf::EventIds, vec![0xff; 16], 9u64.to_be_bytes().to_vec());
        store.write_synced(&b).expect("write");
    }
    assert!(!verify(copy.path()).0);
    let (ok, out) = rebuild(copy.path());
    assert!(ok, "{out}");
    assert!(out.contains("rebuilt from 9 events") && out.contains("verifies"), "{out}");
    assert!(projections(copy.path()) == before, "the rebuilt projections are the ones the writer wrote");
    assert!(verify(copy.path()).0);

    // A rebuild cut off half way (its marker left behind) keeps the server from starting.
    {
        let store = Store::open(&DataDir::new(copy.path()).db()).expect("open");
        let mut b = Batch::default();
        b.put(Cf::Meta, b"rebuilding".to_vec(), b"1".to_vec());
        store.write_synced(&b).expect("write");
    }
    let data = DataDir::new(copy.path());
    let err = consent_ledger::ledger::Ledger::open(&data, "test.example/consent-ledger").err().expect("refused");
    assert!(err.to_string().contains("consent-ledger rebuild"), "{err}");
    let (ok, out) = rebuild(copy.path());
    assert!(ok, "{out}");
    assert!(projections(copy.path()) == before);
    drop(consent_ledger::ledger::Ledger::open(&data, "test.example/consent-ledger").expect("opens after the rebuild"));
}

#[tokio::test]
async fn verify_names_a_deleted_projection_row_and_a_row_with_no_event() {
    let (_app, dir) = ledger_with_events().await;
    let edit = |f: &dyn Fn(&mut Batch)| {
        let copy = snapshot(&dir);
        let store = Store::open(&DataDir::new(copy.path()).db()).expect("open");
        let mut b = Batch::default();
        f(&mut b);
        store.write_synced(&b).expect("write");
        drop(store);
        copy
    };
    // T-3's facts row gone, as if its consent had never been given: named by its last event.
    let copy = edit(&|b| b.delete(Cf::Facts, b"council\0sT-3\0".to_vec()));
    let (ok, out) = verify(copy.path());
    assert!(!ok);
    assert!(out.contains("projection facts") && out.contains("seq 6") && out.contains("missing"), "{out}");
    // A facts row for a subject the log never mentions.
    let copy = edit(&|b| b.put(Cf::Facts, b"council\0sT-9\0".to_vec(), Vec::new()));
    let (ok, out) = verify(copy.path());
    assert!(!ok);
    assert!(out.contains("projection facts") && out.contains("no event in the log"), "{out}");
}
