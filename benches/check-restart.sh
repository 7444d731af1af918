#!/usr/bin/env bash
# A server's facts cache across a restart (docs/PERFORMANCE.md, #14): serves a store of
# SUBJECTS tenants (imported once with benches/import.sh into DIR, kept for the next run),
# fills its cache with RUNS (default 3) 10 s wrk runs of the random checks of
# benches/check-vs-pg.sh, stops it with SIGTERM (it saves its cache's keys), starts it again
# and prints the facts cache's entries each second until they stop growing (the rows read back
# in the background), then AFTER (default 2) runs more. Each run prints its rate, p50/p99 and
# the server's CPU per answer. Compare the first runs before the stop (a cold cache) with the
# first after the restart.
# Usage: [SUBJECTS=200000] [RUNS=3] [AFTER=2] [PIN=1] [BIN=...] benches/check-restart.sh DIR
# Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
open_kept_store "${1:-}"
entries() { metric consent_ledger_facts_cache_entries; }
runs() {
  for run in $(seq "$2"); do
    echo "== $1 run $run"
    wrk_with_cpu -s "$work/check.lua" -H "Authorization: Bearer $key" "$address"
  done
}
serve_ledger "$dir"
runs "cold start:" "${RUNS:-3}"
echo "entries held: $(entries)"
started=$(date +%s.%N)
kill -TERM "$server"
wait "$server" || true
echo "stopped in $(echo "$(date +%s.%N) - $started" | bc) s; saved keys: $(stat -c %s "$dir/facts-cache.keys") bytes"
sleep 2
started=$(date +%s.%N)
serve_ledger "$dir"
echo "listening again after $(echo "$(date +%s.%N) - $started" | bc) s"
last=-1
for _ in $(seq 600); do
  now=$(entries)
  echo "  $(echo "$(date +%s.%N) - $started" | bc | cut -c1-5) s: $now entries"
  [ "$now" = "$last" ] && break
  last=$now
  sleep 1
done
runs "after the restart:" "${AFTER:-2}"
