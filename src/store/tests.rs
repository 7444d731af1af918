//! The two engines behind the storage boundary agree: random sequences of batches (puts,
//! appends, deletes), column families cleared, and reads (points, batched, scans,
//! last-with-prefix), with the RocksDB engine closed and reopened in between, give the same
//! answer from RocksDB as from the in-memory model.

use proptest::prelude::*;

use super::memory::MemoryStore;
use super::*;

#[derive(Debug, Clone)]
enum Step {
    Write(Vec<(Cf, Vec<u8>, Vec<u8>, Op)>),
    Get(Cf, Vec<u8>),
    MultiGet(Cf, Vec<Vec<u8>>),
    Scan(Cf, Vec<u8>),
    Last(Cf, Option<Vec<u8>>),
    Clear(Cf),
    Reopen,
}

fn cf() -> impl Strategy<Value = Cf> {
    prop_oneof![Just(Cf::Events), Just(Cf::Facts), Just(Cf::Feed)]
}

/// Short keys over a tiny alphabet so reads hit written keys and prefixes overlap.
fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(b'a'), Just(0xff)], 0..4)
}

fn op() -> impl Strategy<Value = (Cf, Vec<u8>, Vec<u8>, Op)> {
    let ops = prop_oneof![4 => Just(Op::Put), 2 => Just(Op::Delete), 1 => Just(Op::DeleteRange)];
    (cf(), key(), key(), ops).prop_map(|(cf, k, v, op)| match op {
        // A range runs from the lower key to the higher (the value holds its end).
        Op::DeleteRange => (cf, k.clone().min(v.clone()), k.max(v), op),
        // The facts family appends, as the ledger uses it; the others put and delete.
        _ if cf.appends() => (cf, k, v, Op::Append),
        _ => (cf, k, v, op),
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => proptest::collection::vec(op(), 1..6).prop_map(Step::Write),
        2 => (cf(), key()).prop_map(|(c, k)| Step::Get(c, k)),
        1 => (cf(), proptest::collection::vec(key(), 0..4)).prop_map(|(c, k)| Step::MultiGet(c, k)),
        2 => (cf(), key()).prop_map(|(c, k)| Step::Scan(c, k)),
        2 => (cf(), proptest::option::of(key())).prop_map(|(c, k)| Step::Last(c, k)),
        1 => cf().prop_map(Step::Clear),
        1 => Just(Step::Reopen),
    ]
}

#[derive(Debug, PartialEq)]
enum Answer {
    None,
    Value(Option<Vec<u8>>),
    Values(Vec<Option<Vec<u8>>>),
    Pairs(Vec<Pair>),
    Pair(Option<Pair>),
}

/// A batch of `ops`, in their order.
fn batch_of(ops: &[(Cf, Vec<u8>, Vec<u8>, Op)]) -> Batch {
    let mut b = Batch::default();
    for (cf, k, v, op) in ops {
        match op {
            Op::Put => b.put(*cf, k.clone(), v.clone()),
            Op::Append => b.append(*cf, k.clone(), v.clone()),
            Op::Delete => b.delete(*cf, k.clone()),
            Op::DeleteRange => b.delete_range(*cf, k.clone(), v.clone()),
        }
    }
    b
}

fn run(store: &Store, step: &Step) -> Answer {
    match step {
        Step::Write(ops) => {
            store.write_synced(&batch_of(ops)).expect("write");
            Answer::None
        }
        Step::Get(cf, k) => Answer::Value(store.get(*cf, k).expect("get")),
        Step::MultiGet(cf, ks) => Answer::Values(store.multi_get(*cf, ks).expect("multi_get")),
        Step::Scan(cf, p) => Answer::Pairs(store.scan_prefix(*cf, p).expect("scan")),
        Step::Last(cf, Some(p)) => Answer::Pair(store.last_with_prefix(*cf, p).expect("last")),
        Step::Last(cf, None) => Answer::Pair(store.last(*cf).expect("last")),
        Step::Clear(cf) => {
            store.clear(*cf).expect("clear");
            Answer::None
        }
        Step::Reopen => Answer::None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn rocksdb_answers_as_the_in_memory_model(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = Store::memory(&MemoryStore::new());
        let mut rocks = Store::open(dir.path()).expect("open");
        for (i, step) in steps.iter().enumerate() {
            if let Step::Reopen = step {
                drop(rocks);
                rocks = Store::open(dir.path()).expect("reopen");
                continue;
            }
            prop_assert_eq!(run(&rocks, step), run(&model, step), "step {}: {:?}", i, step);
        }
        // Whole contents agree at the end, every column family.
        for cf in [Cf::Events, Cf::Facts, Cf::Feed] {
            prop_assert_eq!(rocks.scan_prefix(cf, &[]).expect("scan"), model.scan_prefix(cf, &[]).expect("scan"));
        }
    }

    #[test]
    fn a_batch_sorted_by_row_leaves_the_same_rows(
        before in proptest::collection::vec(op(), 0..12),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let (as_added, sorted) = (Store::memory(&MemoryStore::new()), Store::memory(&MemoryStore::new()));
        for store in [&as_added, &sorted] {
            store.write_synced(&batch_of(&before)).expect("write");
        }
        as_added.write_synced(&batch_of(&ops)).expect("write");
        let mut b = batch_of(&ops);
        b.sort_by_row();
        sorted.write_synced(&b).expect("write");
        for cf in [Cf::Events, Cf::Facts, Cf::Feed] {
            prop_assert_eq!(sorted.scan_prefix(cf, &[]).expect("scan"), as_added.scan_prefix(cf, &[]).expect("scan"));
        }
        // Without a range deletion, the writes come in key order, a run of appends to one row
        // folded into one.
        if ops.iter().all(|o| o.3 != Op::DeleteRange) {
            let written: Vec<(Cf, &[u8], Op)> = b.ops().map(|(cf, k, _, op)| (cf, k, op)).collect();
            prop_assert!(written.windows(2).all(|w| (w[0].0 as usize, w[0].1) <= (w[1].0 as usize, w[1].1)));
            prop_assert!(written.windows(2).all(|w| !(w[0].2 == Op::Append && w[1].2 == Op::Append && w[0].0 == w[1].0 && w[0].1 == w[1].1)));
        }
    }
}
