#!/usr/bin/env bash
# A server's first runs of random checks after it starts (docs/PERFORMANCE.md, #14): serves
# the store of SUBJECTS tenants in DIR (imported once with benches/import.sh, kept), started
# cold (MODE=cold: no saved facts cache keys), on saved keys and asked at once (MODE=warm), or
# on saved keys left to read them back first (MODE=warm-wait); then RUNS (default 4) 10 s wrk
# runs, each with its rate, p50/p99, the server's CPU per answer, its resident memory and the
# facts cache's entries. KEYS is a keys file saved by an earlier stop (say, a copy of
# DIR/facts-cache.keys), copied in before each warm start so every start reads the same keys.
# Usage: [MODE=cold] [RUNS=4] [PIN=1] [BIN=...] [KEYS=file] [SUBJECTS=200000] [EXTRA="--workers 1"]
#        benches/check-start.sh DIR
# Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
open_kept_store "${1:-}"
MODE=${MODE:-cold}
case "$MODE" in
  cold) rm -f "$dir/facts-cache.keys" ;;
  warm | warm-wait) cp "${KEYS:?KEYS: a saved keys file}" "$dir/facts-cache.keys" ;;
  *) echo "MODE is cold, warm or warm-wait" >&2; exit 2 ;;
esac
entries() { metric consent_ledger_facts_cache_entries; }
resident() { awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status"; }
started=$(date +%s.%N)
# shellcheck disable=SC2086
serve_ledger "$dir" ${EXTRA:-}
if [ "$MODE" = warm-wait ]; then
  now=$(settled_entries)
  echo "read back: $now entries after $(echo "$(date +%s.%N) - $started" | bc | cut -c1-5) s, resident $(resident)"
fi
for run in $(seq "${RUNS:-4}"); do
  echo "== $MODE start, run $run"
  wrk_with_cpu -s "$work/check.lua" -H "Authorization: Bearer $key" "$address"
  echo "  resident $(resident), facts cache entries $(entries)"
done
# Stopped and waited for, so that the next start finds the store free.
kill "$server"
wait "$server" || true
server=
