#!/usr/bin/env bash
# Single checks of two or more builds, served in turn on one kept store (docs/PERFORMANCE.md,
# #14): ROUNDS times, each build is started on DIR, warmed with 8 s of wrk, then measured with
# two 10 s runs of check-vs-pg.sh's random checks by email (two threads, 32 connections),
# printing each run's rate, p50, p99 and the server's CPU per answer, then its resident memory. Builds alternate so that
# a host whose speed drifts over the minutes weighs on each alike; compare medians.
# WITH_HEALTHZ=1 runs, before each check run, 10 s of `GET /healthz` asked as the checks are
# (check-vs-pg.sh's floor), so that each check run has its ratio to the floor beside it.
# Usage: [ROUNDS=3] [SUBJECTS=200000] [PIN=1] [WORKERS=N] [WITH_HEALTHZ=1] benches/check-ab.sh DIR BIN_A BIN_B [BIN...]
# (DIR imported there with benches/import.sh by the first build if it is missing.)
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:?usage: $0 DIR BIN_A BIN_B [BIN...]}
shift
[ $# -ge 2 ] || { echo "usage: $0 DIR BIN_A BIN_B [BIN...]" >&2; exit 2; }
for round in $(seq "${ROUNDS:-3}"); do
  for build in "$@"; do
    (
      BIN=$build
      . benches/check-lib.sh
      open_kept_store "$store"
      serve_ledger "$dir"
      "${ON_LOAD[@]}" wrk -t"$LOAD_THREADS" -c32 -d8s -s "$work/check.lua" -H "Authorization: Bearer $key" "$address" > /dev/null
      for _ in 1 2; do
        if [ "${WITH_HEALTHZ:-}" = 1 ]; then
          echo "$(basename "$build") round $round: healthz as the checks: $(wrk_with_cpu -s "$work/healthz.lua" -H "Authorization: Bearer $key" "$address" | tr -s ' \n' ' ')"
        fi
        echo "$(basename "$build") round $round: $(wrk_with_cpu -s "$work/check.lua" -H "Authorization: Bearer $key" "$address" | tr -s ' \n' ' ')"
      done
      echo "$(basename "$build") round $round: resident $(($(ps -o rss= -p "$server") / 1024)) MB"
    )
    sleep 1
  done
done
