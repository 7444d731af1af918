#!/usr/bin/env bash
# What each answer costs the kernel and the scheduler (docs/PERFORMANCE.md, #14): serves a kept
# store (as check-profile.sh does), runs 10 s of wrk (two threads, 32 connections) of random
# checks by email, or of /healthz asked the same way (WHAT=healthz), and over 5 s of it counts
# the server's sendto, recvfrom and epoll_wait calls (perf stat on their tracepoints) and the
# voluntary and involuntary context switches of the server's and wrk's threads (from
# /proc/PID/task/*/status), each per answer. The counting slows the server: the rate printed
# is of the whole run.
# Usage: [SUBJECTS=200000] [WHAT=check|healthz] [WORKERS=N] [BIN=...] benches/check-switches.sh DIR
# Needs wrk and perf.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/check-lib.sh
open_kept_store "${1:-}"
serve_ledger "$dir"
what=${WHAT:-check}
# The window counted: the answers (from /metrics: every route's requests, so far) and the
# switches of both, before and after 5 s; run as perf's workload, so the system calls perf
# counts are of the same window.
cat > "$work/window.sh" <<WINDOW
#!/usr/bin/env bash
switches() { cat /proc/"\$1"/task/*/status | awk '/^voluntary_ctxt/ {v += \$2} /^nonvoluntary_ctxt/ {n += \$2} END {print v, n}'; }
answers() { curl -s "$address/metrics" | awk '/^consent_ledger_http_request_seconds_count/ {n += \$2} END {print n + 0}'; }
echo "\$(answers) \$(switches $server) \$(switches \$(pgrep -n -x wrk))" > "$work/before"
sleep 5
echo "\$(answers) \$(switches $server) \$(switches \$(pgrep -n -x wrk))" > "$work/after"
WINDOW
chmod +x "$work/window.sh"
wrk -t2 -c32 -d10s -s "$work/$what.lua" -H "Authorization: Bearer $key" "$address" > "$work/wrk.out" &
loader=$!
sleep 2
perf stat -x, -e syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait -p "$server" \
  -o "$work/stat" -- "$work/window.sh"
wait "$loader"
read -r before sv0 sn0 wv0 wn0 < "$work/before"
read -r after sv1 sn1 wv1 wn1 < "$work/after"
answers=$((after - before - 1))
echo "$what: $(grep Requests/sec "$work/wrk.out" | tr -s ' ') (the whole run); $answers answers counted"
awk -F, -v n="$answers" '/syscalls:/ {sub(/.*sys_enter_/, "", $3); printf "  %s per answer: %.3f\n", $3, $1 / n}' "$work/stat"
awk -v n="$answers" -v a="$sv0 $sn0 $wv0 $wn0" -v b="$sv1 $sn1 $wv1 $wn1" 'BEGIN {
  split(a, x, " "); split(b, y, " ")
  printf "  server switches per answer: voluntary %.3f, involuntary %.3f\n", (y[1] - x[1]) / n, (y[2] - x[2]) / n
  printf "  wrk switches per answer: voluntary %.3f, involuntary %.3f\n", (y[3] - x[3]) / n, (y[4] - x[4]) / n }'
