//! RFC 8785 canonical bytes of an event (the bytes every append signs and every `verify`
//! checks): this crate's `to_canonical_bytes` against `serde_json_canonicalizer` (which it
//! used before; the property tests in `src/canonical` hold both to the same bytes) and against
//! plain `serde_json::to_vec` (no sorting: the floor). Run with `cargo bench --bench canonical`
//! (`ROUNDS`, default 200 000 per measurement, three measurements each).

use std::hint::black_box;
use std::time::{Duration, Instant};

use consent_ledger::canonical::to_canonical_bytes;
use consent_ledger::format::EventDoc;

fn per_call(rounds: u32, f: impl Fn() -> Vec<u8>) -> Duration {
    let started = Instant::now();
    for _ in 0..rounds {
        black_box(f());
    }
    started.elapsed() / rounds
}

fn main() {
    let rounds: u32 = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let example = include_str!("../schemas/examples/event.consent-granted.json");
    let doc: EventDoc = serde_json::from_str(example).expect("the schema's example is an event");
    let value: serde_json::Value = serde_json::from_str(example).expect("JSON");
    assert_eq!(
        to_canonical_bytes(&doc).expect("canonical"),
        serde_json_canonicalizer::to_vec(&doc).expect("canonical")
    );
    println!(
        "one event ({} canonical bytes), {rounds} calls a measurement:",
        to_canonical_bytes(&doc).expect("canonical").len()
    );
    for round in 1..=3 {
        let ours = per_call(rounds, || to_canonical_bytes(black_box(&doc)).expect("canonical"));
        let before = per_call(rounds, || serde_json_canonicalizer::to_vec(black_box(&doc)).expect("canonical"));
        let plain = per_call(rounds, || serde_json::to_vec(black_box(&doc)).expect("canonical"));
        let of_value = per_call(rounds, || to_canonical_bytes(black_box(&value)).expect("canonical"));
        println!(
            "  {round}: to_canonical_bytes {ours:?}, serde_json_canonicalizer {before:?}, serde_json (unsorted) {plain:?}; of a serde_json::Value (as `verify --export` reads) {of_value:?}"
        );
    }
}
