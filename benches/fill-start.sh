#!/usr/bin/env bash
# How long a server takes to fill its facts cache when it starts, and to save its keys when it
# stops (docs/PERFORMANCE.md, 2026-12-07 "ring", #14): serves the store in DIR (say, one
# benches/import.sh kept), idle, until the cache's entries stop changing; prints what the
# server logged of its warm-up (rows, seconds), the cache's bytes, the store's block cache,
# its resident memory; stops it with SIGTERM and prints what it logged of saving the keys and
# the keys file's size.
# MODE=fill (default) deletes DIR/facts-cache.keys first (a first start: the key-order pass);
# MODE=keys keeps the file a previous run saved (a restart: the saved rows read back).
# Usage: [MODE=fill|keys] [SUBJECTS=200000] [BIN=...] benches/fill-start.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
open_kept_store "${1:-}"
[ "${MODE:-fill}" = fill ] && rm -f "$dir/facts-cache.keys"
SERVE_LOG="$work/serve.log" serve_ledger "$dir"
logged() { sed 's/\x1b\[[0-9;]*m//g' "$work/serve.log" | grep -oE "$1" || echo "nothing logged: $1"; }
entries=$(settled_entries)
logged "facts cache (warmed|filled from the store).*"
echo "entries $entries, bytes $(metric consent_ledger_facts_cache_bytes) of $(metric consent_ledger_facts_cache_budget_bytes)"
echo "store's block cache $(metric consent_ledger_store_cache_bytes) of $(metric consent_ledger_store_cache_capacity_bytes) bytes"
awk '/VmRSS/ {printf "resident %.0f MB\n", $2 / 1024}' "/proc/$server/status"
kill -TERM "$server"
wait "$server" || true
server=
logged "saved the facts cache's keys for the next start.*"
ls -l "$dir/facts-cache.keys" | awk '{printf "keys file %.1f MB\n", $5 / 1e6}'
