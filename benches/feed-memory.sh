#!/usr/bin/env bash
# A server's resident memory once both of its caches are full (docs/PERFORMANCE.md, 2026-12-07
# "memory", #14): serves the store in DIR (imported there with benches/import.sh on the first
# run, SUBJECTS tenants, kept), fills the facts cache with four 15 s runs of random checks by
# email (wrk, two threads, 32 connections), then reads the whole feed (`GET /v1/feed/stream`
# from the start, for at most FEED_S seconds), which fills the store's block cache, and checks
# once more; prints the check rates and the server's resident memory after each step, and
# at the end what /metrics says the two caches hold.
# READ=export takes the audit export (`GET /v1/export`, whole, timed, with checks running
# for its first 10 s) instead of the feed.
# Usage: [SUBJECTS=1000000] [FEED_S=120] [READ=feed|export] [BIN=...] [EXTRA="--cache-mb N"] benches/feed-memory.sh DIR
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS=${SUBJECTS:-1000000}
. benches/check-lib.sh
open_kept_store "${1:-}"
# shellcheck disable=SC2086
serve_ledger "$dir" ${EXTRA:-}
rss() { echo "$(($(awk '/VmRSS/ {print $2}' "/proc/$server/status") / 1024)) MB resident"; }
run() { wrk -t2 -c32 -d"$1" -s "$work/check.lua" -H "Authorization: Bearer $key" "$address" | grep Requests/sec; }
for i in 1 2 3 4; do echo "checks $i: $(run 15s), $(rss)"; done
if [ "${READ:-feed}" = export ]; then
  audit=$("$BIN" apikey create --data-dir "$dir" --controller bench --role audit | grep -o 'clk_[A-Za-z0-9_-]*' | head -1)
  started=$(date +%s.%N)
  curl -s -o /dev/null -H "Authorization: Bearer $audit" "$address/v1/export" &
  export_pid=$!
  echo "checks during the export: $(run 10s)"
  wait "$export_pid"
  echo "the export read in $(echo "$(date +%s.%N) - $started" | bc) s: $(rss)"
else
  bytes=$(timeout "${FEED_S:-120}" curl -sN -H "Authorization: Bearer $key" "$address/v1/feed/stream?after=0" | wc -c || true)
  echo "the feed read ($bytes bytes): $(rss)"
fi
echo "checks after: $(run 10s), $(rss)"
curl -s "$address/metrics" | grep -E '^consent_ledger_(facts_cache_entries|facts_cache_bytes|facts_cache_budget_bytes|store_cache_bytes|store_cache_capacity_bytes) '
