#!/usr/bin/env bash
# Times `consent-ledger verify` and `consent-ledger rebuild` on a store of ROWS imported rows
# (1.5 events a row; default 200 000), with their peak memory. Usage: benches/verify.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/consent-ledger/target}"
bin="$CARGO_TARGET_DIR/release/consent-ledger"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
KEEP="$dir/data" benches/import.sh "$rows" > /dev/null
echo "store of $rows rows"
for cmd in verify rebuild; do
  /usr/bin/time -f "$cmd: wall %e s, max resident %M KiB" "$bin" $cmd --data-dir "$dir/data"
done
