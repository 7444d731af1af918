#!/usr/bin/env bash
# Imports ROWS (default 1 000 000) rows of consent records, as benches/import-gen.py writes
# them, into a new embedded ledger with `consent-ledger import`, and prints the command's
# summary (rows/s) and the store's size. Usage: benches/import.sh [ROWS]
# BIN imports with another build. With KEEP=DIR the imported data directory is moved to DIR (benches/verify.sh uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/consent-ledger/target}"
if [ -z "${BIN:-}" ]; then cargo build --release -q; fi
bin="${BIN:-$CARGO_TARGET_DIR/release/consent-ledger}"
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
python3 benches/import-gen.py "$rows" > "$work/rows.csv"
"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 > "$work/serve.out" 2>/dev/null &
server=$!
for _ in $(seq 100); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
address=$(sed -n 's/^listening on //p' "$work/serve.out")
key=$("$bin" apikey create --data-dir "$work/data" --controller bench --role admin | grep -o 'clk_[A-Za-z0-9_-]*' | head -1)
for p in newsletter events surveys; do
  curl -sf --retry 5 --retry-all-errors --retry-delay 1 -X PUT -H "Authorization: Bearer $key" -H 'content-type: application/json' "$address/v1/purposes/$p" \
    -d '{"title":"'$p'","basis":"consent","marketing":true,"channels":["email","sms","post"]}' > /dev/null
done
kill $server; wait $server 2>/dev/null || true
echo "file: $(du -h "$work/rows.csv" | cut -f1), $rows rows"
/usr/bin/time -f "wall %e s, max resident %M KiB" "$bin" import --controller bench --data-dir "$work/data" \
  --file "$work/rows.csv" --mapping benches/import.toml
echo "store: $(du -sh "$work/data/db" | cut -f1)"
if [ -n "${KEEP:-}" ]; then rm -rf "$KEEP"; mv "$work/data" "$KEEP"; fi
