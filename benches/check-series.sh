#!/usr/bin/env bash
# Single checks by email against one server, run after run, until its caches are full
# (docs/PERFORMANCE.md, #14): serves a store of SUBJECTS tenants (imported once with
# benches/import.sh into DIR, kept for the next run), runs RUNS (default 6) 10 s wrk runs of the
# random checks of benches/check-vs-pg.sh, printing each run's rate, p50/p99, the server's
# CPU per answer and its resident memory, then where that memory is: the server's anonymous
# mappings from /proc/PID/smaps, mimalloc's arena (one reservation of 1 GiB or more: the Rust
# side, chiefly the decoded facts cache) apart from glibc's 64 MiB arenas (RocksDB's block
# cache and memtables), and the facts cache's figures from /metrics (builds from 32e71ee on).
# Usage: [SUBJECTS=200000] [RUNS=6] [CACHE_MB=N] [PIN=1] [BIN=...] benches/check-series.sh DIR
# Needs wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
open_kept_store "${1:-}"
serve_ledger "$dir" ${CACHE_MB:+--cache-mb "$CACHE_MB"}
for run in $(seq "${RUNS:-6}"); do
  echo "== run $run"
  wrk_with_cpu -s "$work/check.lua" -H "Authorization: Bearer $key" "$address"
  echo "  resident: $(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$server/status") MB"
done
curl -s "$address/metrics" | grep '^consent_ledger_facts_cache' || true
python3 - "$server" <<'PY'
import re, sys
held = {}
kind = None
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
    if m:
        size = (int(m.group(2), 16) - int(m.group(1), 16)) >> 20
        name = m.group(3).strip()
        kind = None if name else ("mimalloc arena (>= 1 GiB mapping)" if size >= 1024
                                  else "glibc arenas (64 MiB mappings)" if size >= 64 else "other anonymous")
    elif line.startswith("Rss:") and kind:
        held[kind] = held.get(kind, 0) + int(line.split()[1])
for kind, kb in sorted(held.items()):
    print(f"{kind}: {kb >> 10} MB resident")
PY
