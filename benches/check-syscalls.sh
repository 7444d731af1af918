#!/usr/bin/env bash
# The system calls a single check and /healthz each cost the server (docs/PERFORMANCE.md, #14):
# serves a store of SUBJECTS tenants (imported once with benches/import.sh into DIR, kept for
# the next run), asks one check by email (as benches/check-vs-pg.sh's checks) and then
# /healthz with the same query and Authorization header, each once and then twice more on a
# new connection under `strace -f` (the server's threads; received and sent bytes left out),
# once the facts cache's warm-up has ended. A check's calls include reading the API key's
# record when the worker that answers has not checked the key within the last second (each
# worker's cache keeps a key a second, so that a revocation holds within one).
# Usage: [SUBJECTS=200000] [BIN=...] benches/check-syscalls.sh DIR
# Needs strace and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
open_kept_store "${1:-}"
serve_ledger "$dir"
# Once the facts cache has settled (its warm-up's reads are not the checks').
settled_entries > /dev/null
query="purpose=newsletter&channel=email&email=tenant7%40example.org"
for what in /v1/check /healthz; do
  url="$address$what?$query"
  curl -s -o /dev/null -H "Authorization: Bearer $key" "$url"
  strace -f -qq -e trace='!futex,epoll_wait,clock_gettime,sched_yield' -o "$work/trace" -p "$server" &
  tracer=$!
  sleep 1
  curl -s -o /dev/null -o /dev/null -H "Authorization: Bearer $key" "$url" "$url"
  sleep 0.5
  kill -INT "$tracer"
  wait "$tracer" 2>/dev/null || true
  echo "== $what, two requests on one connection:"
  sed -E 's/^[0-9]+ +//; s/\(([0-9]+), "[^"]*"\.*/(\1, …/' "$work/trace" | awk '{print "  " $0}'
done
