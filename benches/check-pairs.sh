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
# Which wrk thread's connections each server worker holds, a second into each run.
during_wrk() { echo "pairs: $(python3 benches/conn-pairs.py "$server" "$1")"; }
for r in $(seq "${RUNS:-16}"); do
  echo "run $r: $(DUR=${DUR:-5} wrk_with_cpu -s "$work/${WHAT:-check}.lua" -H "Authorization: Bearer $key" "$address" | tr -s ' \n' ' ')"
done
