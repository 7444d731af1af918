#!/usr/bin/env bash
# How long a server takes to fill its facts cache when it starts, and to save its keys when it
# stops (docs/PERFORMANCE.md, 2026-12-07 "ring", #14): serves the store in DIR (say, one
# benches/import.sh kept), idle, until the cache's entries stop changing; prints what the
# server logged of its warm-up (rows, seconds), the cache's bytes, its resident memory; stops it
# with SIGTERM and prints what it logged of saving the keys and the keys file's size.
# MODE=fill (default) deletes DIR/facts-cache.keys first (a first start: the key-order pass);
# MODE=keys keeps the file a previous run saved (a restart: the saved rows read back).
# Usage: [MODE=fill|keys] [BIN=...] benches/fill-start.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: $0 DIR}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/consent-ledger/target}"
if [ -z "${BIN:-}" ]; then cargo build --release -q; BIN="$CARGO_TARGET_DIR/release/consent-ledger"; fi
[ "${MODE:-fill}" = fill ] && rm -f "$dir/facts-cache.keys"
log=$(mktemp)
"$BIN" serve --data-dir "$dir" --listen 127.0.0.1:0 > "$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 600); do grep -q "listening on" "$log" && break; sleep 0.1; done
address=$(sed -n 's/^listening on //p' "$log")
metric() { curl -s "$address/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
last=-1
for _ in $(seq 600); do
  now=$(metric consent_ledger_facts_cache_entries)
  [ "$now" = "$last" ] && break
  last=$now
  sleep 1
done
plain() { sed 's/\x1b\[[0-9;]*m//g' "$log"; }
plain | grep -oE "facts cache (warmed|filled from the store).*" || echo "no warm-up logged"
echo "entries $now, bytes $(metric consent_ledger_facts_cache_bytes) of $(metric consent_ledger_facts_cache_budget_bytes)"
awk '/VmRSS/ {printf "resident %.0f MB\n", $2 / 1024}' "/proc/$server/status"
kill -TERM "$server"
wait "$server" || true
plain | grep -oE "saved the facts cache's keys for the next start.*" || echo "no keys saved"
ls -l "$dir/facts-cache.keys" | awk '{printf "keys file %.1f MB\n", $5 / 1e6}'
