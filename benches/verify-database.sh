#!/usr/bin/env bash
# `consent-ledger verify --database-url` (docs/PERFORMANCE.md, #13): copies the embedded ledger
# in DIR (e.g. the store of `KEEP=DIR benches/import.sh 600000`; one of the build's store format),
# migrates the copy into a PostgreSQL cluster of the script's own (benches/pg-lib.sh), then
# verifies the database RUNS times, printing each run's time and peak resident memory.
# Usage: [RUNS=2] [BIN=...] benches/verify-database.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/consent-ledger/target}"
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin="${BIN:-$CARGO_TARGET_DIR/release/consent-ledger}"
. benches/pg-lib.sh
copy="$PGDIR/ledger"
cp -r "$1" "$copy"
url=$(database ledger)
/usr/bin/time -f "migrate: %e s" "$bin" migrate --data-dir "$copy" --database-url "$url" 2>&1 | grep -E '^ok|migrate:'
for run in $(seq "${RUNS:-2}"); do
  /usr/bin/time -f "run $run: %e s, %M KB at most" "$bin" verify --database-url "$url" 2>&1 | grep -E '^ok|FAILED|run '
done
