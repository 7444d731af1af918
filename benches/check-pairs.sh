#!/usr/bin/env bash
# Runs of checks (or /healthz asked as the checks) one after another against one server, each
# with which wrk thread's connections each worker holds (benches/conn-pairs.py, read a second
# into the run), its rate, p99 and the server's CPU per answer (docs/PERFORMANCE.md
# '2026-12-08 (steering)', #14).
# Usage: [SUBJECTS=200000] [RUNS=16] [DUR=5] [WHAT=check|healthz] [BIN=...] benches/check-pairs.sh DIR
# Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
open_kept_store "${1:-}"
serve_ledger "$dir"
settled_entries > /dev/null
for r in $(seq "${RUNS:-16}"); do
  before=$(cpu_ticks "$server")
  wrk -t2 -c32 -d"${DUR:-5}"s --latency -s "$work/${WHAT:-check}.lua" -H "Authorization: Bearer $key" "$address" > "$work/out" &
  w=$!
  sleep 1
  pairs=$(python3 benches/conn-pairs.py "$server" "$w")
  wait "$w"
  after=$(cpu_ticks "$server")
  requests=$(awk '/requests in/ {print $1}' "$work/out")
  echo "run $r: $(awk '/Requests\/sec/ {print $2}' "$work/out")/s p99 $(awk '$1 == "99%" {print $2}' "$work/out") server CPU per answer $(per_answer $((after - before)) "$requests") pairs [$pairs]"
done
