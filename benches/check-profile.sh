#!/usr/bin/env bash
# Where a single check's server time goes (docs/PERFORMANCE.md, #14): serves a store of
# SUBJECTS tenants (imported once with benches/import.sh into DIR, kept for the next run),
# warms it with WARM (default 1) times 15 s of wrk (two threads, 32 connections, the random
# checks by email of benches/check-vs-pg.sh; at 1 million tenants the caches take about 4), records the server with `perf record --call-graph dwarf` for 6 s
# under the same load and prints the share of the server's samples of the check path's parts.
# Usage: [SUBJECTS=200000] [WHAT=check|healthz] [WARM=N] [PIN=1] [FREQ=300] [PERF_DATA=FILE] [BIN=...] benches/check-profile.sh DIR
# WHAT=healthz profiles /healthz asked the way the checks are (the floor, for comparison);
# WARM=0 leaves out the warm-up (a cold start: the profile begins 2 s after the server);
# PIN=1 gives the server and wrk a core each (check-lib.sh); FREQ is perf's sampling rate;
# PERF_DATA=FILE keeps the samples there, to be read whole (`perf report -i FILE --children
# --stdio -g none --sort symbol`) rather than as the shares printed below.
# Needs wrk and perf. Compare two builds by their shares, not their rates, on a noisy host.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
open_kept_store "${1:-}"
serve_ledger "$dir"
load() {
  "${ON_LOAD[@]}" wrk -t"$LOAD_THREADS" -c32 -d"$1" -s "$work/${WHAT:-check}.lua" -H "Authorization: Bearer $key" "$address" |
    grep Requests/sec
}
for _ in $(seq "${WARM:-1}"); do echo "warming: $(load 15s)"; done
load 10s > "$work/rate" &
loader=$!
sleep 2
data=${PERF_DATA:-$work/perf.data}
perf record -F "${FREQ:-300}" --call-graph dwarf,32768 -p "$server" -o "$data" -- sleep 6 > /dev/null 2>&1
wait "$loader"
echo "under the profiler: $(cat "$work/rate")"
perf report -i "$data" --children --percent-limit 0.3 --stdio -g none --sort symbol 2>/dev/null |
  grep -E "\] (consent_ledger_service::check::.*check_many|consent_ledger_projection::Projections::facts_many|consent_ledger_store::Store::multi_get|consent_ledger_projection::Caches::fill_facts|consent_ledger_projection::facts_cache::FactsCache::get|consent_ledger_projection::fact_codec::decode_facts|consent_ledger_http::routes::check_request|<consent_ledger_http::auth::Caller|__libc_recv|__send|__libc_send|rocksdb::BlockBasedTable::MultiGet|rocksdb::BlockBasedTable::RetrieveMultipleBlocks|sock_def_readable|finish_task_switch.*|clear_page_erms)" |
  cut -c1-140
